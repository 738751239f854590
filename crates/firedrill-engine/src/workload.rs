//! The workload and its companions: the clients that write the ledger,
//! the heartbeat and lag samplers behind predicted RPO, the store's own
//! failover signals, and progress.

use crate::trial::{lock, Shared};
use crate::{EngineError, Mode, WorkloadPlan};
use firedrill_ledger::events::DrillEvent;
use firedrill_ledger::{LagSample, Micros, Op, Outcome};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const HEARTBEAT_EVERY: Duration = Duration::from_millis(50);
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Starts the workload's clients on `primary`, in the plan's mode.
pub(crate) fn spawn_clients(
    sh: &Arc<Shared>,
    primary: &str,
    w: &WorkloadPlan,
) -> Result<Vec<JoinHandle<()>>, EngineError> {
    match w.mode {
        Mode::Closed { clients } => spawn_closed(sh, primary, clients, w),
        Mode::Rate {
            rate,
            max_in_flight,
        } => spawn_rate(
            sh,
            primary,
            rate,
            max_in_flight,
            w.op_timeout,
            w.payload_bytes,
        ),
    }
}

/// Closed loop: each client invokes its next operation when the last one
/// is done, so a stalled store stalls its clients.
fn spawn_closed(
    sh: &Arc<Shared>,
    primary: &str,
    clients: u32,
    w: &WorkloadPlan,
) -> Result<Vec<JoinHandle<()>>, EngineError> {
    let mut workers = Vec::new();
    for i in 0..clients {
        let mut c = sh
            .target
            .client(primary, i as u64 + 1, w.payload_bytes, w.op_timeout)
            .map_err(|e| EngineError::Preflight(e.to_string()))?;
        let sh2 = sh.clone();
        let op_timeout = w.op_timeout;
        let home = c.home();
        workers.push(sh.spawn(async move {
            while !sh2.stop.load(Ordering::Relaxed) {
                c.ready().await;
                if sh2.stop.load(Ordering::Relaxed) {
                    break;
                }
                let seq = sh2.next_seq.fetch_add(1, Ordering::Relaxed);
                let t_invoke = sh2.now();
                let outcome = c.write(seq, Instant::now() + op_timeout).await;
                let op = Op {
                    seq,
                    t_invoke,
                    t_done: sh2.now(),
                    outcome,
                };
                sh2.record_from(op, c.acked_position(), home.as_ref());
            }
        }));
    }
    Ok(workers)
}

/// Open loop: operations are due at a fixed rate whatever the store does;
/// `max_in_flight` clients take them. An operation that finds every client
/// busy is skipped (and warned about): the store could not keep up.
fn spawn_rate(
    sh: &Arc<Shared>,
    primary: &str,
    rate: f64,
    max_in_flight: u32,
    op_timeout: Duration,
    payload: usize,
) -> Result<Vec<JoinHandle<()>>, EngineError> {
    let (tx, rx) = tokio::sync::mpsc::channel::<(u64, Micros)>(max_in_flight as usize);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut out = Vec::new();
    for i in 0..max_in_flight {
        let rx = rx.clone();
        let sh2 = sh.clone();
        let mut c = sh
            .target
            .client(primary, i as u64 + 1, payload, op_timeout)
            .map_err(|e| EngineError::Preflight(e.to_string()))?;
        let home = c.home();
        out.push(sh.spawn(async move {
            loop {
                c.ready().await;
                let job = { rx.lock().await.recv().await };
                let Some((seq, t_invoke)) = job else { break };
                let outcome = c.write(seq, Instant::now() + op_timeout).await;
                let op = Op {
                    seq,
                    t_invoke,
                    t_done: sh2.now(),
                    outcome,
                };
                sh2.record_from(op, c.acked_position(), home.as_ref());
            }
        }));
    }
    let sh2 = sh.clone();
    out.push(sh.spawn(async move {
        let interval = Duration::from_secs_f64(1.0 / rate);
        let start = Instant::now();
        let mut k: u64 = 0;
        let mut skipped: u64 = 0;
        while !sh2.stop.load(Ordering::Relaxed) {
            let due = start + interval.mul_f64(k as f64);
            tokio::time::sleep_until(due).await;
            k += 1;
            let t_invoke = (due - sh2.t0).as_micros() as Micros;
            let seq = sh2.next_seq.fetch_add(1, Ordering::Relaxed);
            if tx.try_send((seq, t_invoke)).is_err() {
                // Not sent: record as failed so the bucket shows the outage.
                skipped += 1;
                sh2.record(Op { seq, t_invoke, t_done: t_invoke, outcome: Outcome::Fail });
            }
        }
        if skipped > 0 {
            sh2.warn(format!("{skipped} operations found all {max_in_flight} clients busy and were counted as failed (max_in_flight)"));
        }
    }));
    Ok(out)
}

pub(crate) fn spawn_heartbeat(
    sh: &Arc<Shared>,
    mut hb: Box<dyn firedrill_targets::Heartbeat>,
) -> JoinHandle<()> {
    let task_sh = sh.clone();
    sh.spawn(async move {
        let sh = task_sh;
        let mut n: i64 = 0;
        let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while sh.sampling.load(Ordering::Relaxed) {
            tick.tick().await;
            n += 1;
            if hb.beat(n, Duration::from_secs(1)).await {
                lock(&sh.heartbeats).push((n, sh.now()));
            }
        }
    })
}

/// Lag if this standby were promoted now: 0 when it has the latest
/// acknowledged heartbeat, else the time since the first heartbeat it
/// lacks was acknowledged (everything acknowledged after that may be lost).
fn lag_from(heartbeats: &[(i64, Micros)], seen: i64, now: Micros) -> Micros {
    match heartbeats.iter().find(|(n, t)| *n > seen && *t <= now) {
        Some((_, t)) => now - t,
        None => 0,
    }
}

/// `name`'s index in the target's nodes, as `LagSample::node` holds it.
fn node_index(sh: &Shared, name: &str) -> u16 {
    sh.target
        .node_names()
        .iter()
        .position(|n| n == name)
        .unwrap_or(0) as u16
}

pub(crate) fn spawn_sampler(
    sh: &Arc<Shared>,
    name: String,
    mut r: Box<dyn firedrill_targets::HeartbeatReader>,
) -> JoinHandle<()> {
    let task_sh = sh.clone();
    sh.spawn(async move {
        let sh = task_sh;
        let idx = node_index(&sh, &name);
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut k = 0u64;
        let mut last_seen: Option<i64> = None;
        while sh.sampling.load(Ordering::Relaxed) {
            tick.tick().await;
            // A standby firedrill cannot reach (partitioned, paused) may
            // still be receiving nothing: count its lag from what it had at
            // the last observation. It is an upper bound, and exact for a
            // partitioned standby, where a stale 0 would be wrong.
            let seen = match r.read(Duration::from_millis(500)).await {
                Some(v) => {
                    last_seen = Some(v);
                    v
                }
                None => match last_seen {
                    Some(v) => v,
                    None => continue,
                },
            };
            let t = sh.now();
            if !sh.sampling.load(Ordering::Relaxed) {
                break;
            }
            let lag = lag_from(&lock(&sh.heartbeats), seen, t);
            lock(&sh.timeline).lag_samples.push(LagSample {
                t,
                node: idx,
                lag_us: lag,
            });
            k += 1;
            if k.is_multiple_of(5) {
                sh.emit(DrillEvent::LagSample {
                    trial: sh.trial,
                    t_us: t,
                    node: name.clone(),
                    lag_us: lag,
                });
            }
        }
    })
}

/// Samples the lag the store reports about itself, every 250 ms until
/// the disaster, into `Timeline::reported_lag`.
pub(crate) fn spawn_reported_sampler(
    sh: &Arc<Shared>,
    name: String,
    mut r: Box<dyn firedrill_targets::ReportedLag>,
) -> JoinHandle<()> {
    let task_sh = sh.clone();
    lock(&sh.timeline).reported_by = Some(r.source());
    sh.spawn(async move {
        let sh = task_sh;
        let idx = node_index(&sh, &name);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while sh.sampling.load(Ordering::Relaxed) {
            tick.tick().await;
            let Some(lag) = r.read(Duration::from_millis(500)).await else {
                continue;
            };
            let t = sh.now();
            if !sh.sampling.load(Ordering::Relaxed) {
                break;
            }
            lock(&sh.timeline).reported_lag.push(LagSample {
                t,
                node: idx,
                lag_us: lag.as_micros() as Micros,
            });
        }
    })
}

/// Reads the store's own failover signals. The first one at or after the
/// disaster is the `detected` phase; earlier ones are only reported.
pub(crate) fn spawn_failover_watch(
    sh: &Arc<Shared>,
    mut fw: Box<dyn firedrill_targets::FailoverWatch>,
) -> JoinHandle<()> {
    let task_sh = sh.clone();
    sh.spawn(async move {
        let sh = task_sh;
        while let Some(sig) = fw.next().await {
            let t = sh.now();
            let (first, disaster) = {
                let mut tl = lock(&sh.timeline);
                let disaster = tl
                    .faults
                    .iter()
                    .filter(|f| f.disaster)
                    .map(|f| f.t_start)
                    .min();
                let first = disaster.is_some_and(|d| d <= t) && tl.detected.is_none();
                if first {
                    tl.detected = Some(t);
                }
                (first, disaster)
            };
            if first {
                sh.emit(DrillEvent::Detected {
                    trial: sh.trial,
                    t_us: t,
                    how: sig.how,
                });
            } else {
                // On the report's axis (from the disaster) when there was
                // one: the detection it did not set is already on it.
                let at = match disaster {
                    Some(d) => format!("{:+.2} s from the disaster", (t as f64 - d as f64) / 1e6),
                    None => format!("{:.2} s into the trial", t as f64 / 1e6),
                };
                sh.warn(format!("failover signal at {at}: {}", sig.how));
            }
        }
    })
}

pub(crate) fn spawn_progress(sh: &Arc<Shared>, _trials: u32) -> JoinHandle<()> {
    let task_sh = sh.clone();
    sh.spawn(async move {
        let sh = task_sh;
        let mut last = 0u64;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            let ok = sh.ok.load(Ordering::Relaxed);
            let fail = sh.fail.load(Ordering::Relaxed);
            let unknown = sh.unknown.load(Ordering::Relaxed);
            let total = ok + fail + unknown;
            sh.emit(DrillEvent::Progress {
                trial: sh.trial,
                t_us: sh.now(),
                ops_per_s: (total - last) as f64,
                ok,
                fail,
                unknown,
            });
            last = total;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::lag_from;

    #[test]
    fn lag_is_zero_when_caught_up() {
        let hb = vec![(1, 100), (2, 200), (3, 300)];
        assert_eq!(lag_from(&hb, 3, 350), 0);
    }

    #[test]
    fn lag_counts_from_first_missing_ack() {
        let hb = vec![(1, 100), (2, 200), (3, 300)];
        assert_eq!(lag_from(&hb, 1, 1_000), 800);
        // A heartbeat acknowledged after the sample does not count yet.
        assert_eq!(lag_from(&hb, 2, 250), 0);
    }
}
