//! The outbox's consumer and its read-back (DESIGN.md, "Capabilities"):
//! firedrill reads `outbox.order` (what the `cdc` worker's EventRouter
//! publishes) from its start and applies each event of the run to a Redis
//! projection, one counter per order:
//! - idempotent: the event id is recorded with `SET NX` and the order's
//!   counter incremented only when it was new, in one Lua script, so a
//!   redelivered event changes nothing;
//! - non-idempotent: every delivery increments the counter (the negative
//!   control: a redelivery shows as an order applied twice).
//!
//! The consumer is one thread with its own Kafka and Redis connections; it
//! counts every delivery per event id. The read-back reads the whole log
//! again with a fresh consumer, and the projection's counters.

use super::connect::outbox_topic;
use super::target::meta;
use firedrill_ledger::outbox::OutboxRead;
use firedrill_targets::{OutboxPipeline, TargetError};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use firedrill_lab::{LabState, Role};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The aggregate type the source writes (`order`): its topic.
pub const AGGREGATE: &str = "order";

/// Applied once per event id, atomically.
const IDEMPOTENT: &str = "if redis.call('SET', KEYS[1], '1', 'NX') then return redis.call('INCR', KEYS[2]) else return 0 end";

/// The consumer's state, shared with its thread.
#[derive(Default)]
struct Progress {
    deliveries: Mutex<BTreeMap<String, u64>>,
    /// The next offset the consumer will read.
    next: AtomicI64,
    error: Mutex<Option<String>>,
}

/// Where the log and the projection are: fixed addresses, or the member
/// labs, read again at each trial's start (a lab reset moves ports).
#[derive(Clone)]
pub enum OutboxEnds {
    Fixed { bootstrap: String, redis: String },
    Labs { log: PathBuf, projection: PathBuf },
}

impl OutboxEnds {
    fn resolve(&self) -> Result<(String, String), String> {
        match self {
            OutboxEnds::Fixed { bootstrap, redis } => Ok((bootstrap.clone(), redis.clone())),
            OutboxEnds::Labs { log, projection } => {
                let k = LabState::load(log).map_err(|e| format!("{}: {e}", log.display()))?;
                let r = LabState::load(projection)
                    .map_err(|e| format!("{}: {e}", projection.display()))?;
                let boot = super::connect::bootstrap(&k);
                let master = r
                    .nodes
                    .iter()
                    .find(|n| n.initial_role == Role::Primary)
                    .map(|n| n.conninfo.clone())
                    .ok_or_else(|| format!("{}: no master", projection.display()))?;
                Ok((boot, master))
            }
        }
    }
}

pub struct KafkaRedisOutbox {
    ends: OutboxEnds,
    /// Resolved at start: the brokers and the projection's master.
    at: Mutex<(String, String)>,
    idempotent: bool,
    topic: String,
    run: Mutex<Option<String>>,
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl KafkaRedisOutbox {
    pub fn new(ends: OutboxEnds, idempotent: bool) -> KafkaRedisOutbox {
        KafkaRedisOutbox {
            ends,
            at: Mutex::default(),
            idempotent,
            topic: outbox_topic(AGGREGATE),
            run: Mutex::new(None),
            stop: Arc::default(),
            progress: Arc::default(),
            thread: Mutex::new(None),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The order and event id of a record of run `run`, or None for another
/// run's record (the payload is the run id).
fn decode(m: &impl Message, run: &str) -> Option<(u64, String)> {
    if m.payload()? != run.as_bytes() {
        return None;
    }
    let seq = std::str::from_utf8(m.key()?).ok()?.trim().parse().ok()?;
    let id = m
        .headers()?
        .iter()
        .find(|h| h.key == "id")
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())?
        .trim_matches('"')
        .to_string();
    Some((seq, id))
}

fn keys(run: &str, seq: u64, id: &str) -> (String, String) {
    (
        format!("firedrill:outbox:{run}:seen:{id}"),
        order_key(run, seq),
    )
}

fn order_key(run: &str, seq: u64) -> String {
    format!("firedrill:outbox:{run}:order:{seq}")
}

fn assigned(bootstrap: &str, topic: &str, group: &str) -> Result<BaseConsumer, String> {
    let c: BaseConsumer = meta::base_config(bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "50")
        .create()
        .map_err(|e| e.to_string())?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .map_err(|e| e.to_string())?;
    c.assign(&tpl).map_err(|e| e.to_string())?;
    Ok(c)
}

fn redis_conn(addr: &str) -> Result<redis::Connection, String> {
    redis::Client::open(format!("redis://{addr}/"))
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        .map_err(|e| format!("projection {addr}: {e}"))
}

/// The consumer's loop: poll, apply, count; reconnects to Redis when it
/// must, and retries an event until it is applied (at-least-once).
fn consume(
    c: BaseConsumer,
    redis_addr: String,
    run: String,
    idempotent: bool,
    stop: Arc<AtomicBool>,
    p: Arc<Progress>,
) {
    let mut conn: Option<redis::Connection> = None;
    while !stop.load(Ordering::Relaxed) {
        let Some(r) = c.poll(Duration::from_millis(100)) else {
            continue;
        };
        let Ok(m) = r else { continue };
        p.next.store(m.offset() + 1, Ordering::SeqCst);
        let Some((seq, id)) = decode(&m, &run) else {
            continue;
        };
        *lock(&p.deliveries).entry(id.clone()).or_default() += 1;
        let (seen, order) = keys(&run, seq, &id);
        while !stop.load(Ordering::Relaxed) {
            let con = match conn.as_mut() {
                Some(c) => c,
                None => match redis_conn(&redis_addr) {
                    Ok(c) => conn.insert(c),
                    Err(e) => {
                        *lock(&p.error) = Some(e);
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                },
            };
            let res: redis::RedisResult<i64> = if idempotent {
                redis::cmd("EVAL")
                    .arg(IDEMPOTENT)
                    .arg(2)
                    .arg(&seen)
                    .arg(&order)
                    .query(con)
            } else {
                redis::cmd("INCR").arg(&order).query(con)
            };
            match res {
                Ok(_) => break,
                Err(e) => {
                    *lock(&p.error) = Some(format!("projection: {e}"));
                    conn = None;
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl OutboxPipeline for KafkaRedisOutbox {
    fn describe(&self) -> String {
        format!(
            "{} on Kafka → {} consumer → Redis projection",
            self.topic,
            if self.idempotent {
                "idempotent"
            } else {
                "non-idempotent"
            },
        )
    }

    async fn start(&self, run_id: &str) -> Result<(), TargetError> {
        let (boot, redis) = self.ends.resolve().map_err(TargetError::Other)?;
        let c = assigned(&boot, &self.topic, &format!("firedrill-outbox-{run_id}"))
            .map_err(TargetError::Other)?;
        redis_conn(&redis).map_err(TargetError::Other)?;
        *lock(&self.at) = (boot, redis.clone());
        *lock(&self.run) = Some(run_id.to_string());
        *lock(&self.progress.deliveries) = BTreeMap::new();
        self.progress.next.store(0, Ordering::SeqCst);
        self.stop.store(false, Ordering::SeqCst);
        let (r, run, idem) = (redis, run_id.to_string(), self.idempotent);
        let (stop, p) = (self.stop.clone(), self.progress.clone());
        let h = std::thread::Builder::new()
            .name("outbox-consumer".into())
            .spawn(move || consume(c, r, run, idem, stop, p))
            .map_err(|e| TargetError::Other(format!("outbox consumer: {e}")))?;
        *lock(&self.thread) = Some(h);
        Ok(())
    }

    async fn read(&self, limit: Duration) -> Result<OutboxRead, TargetError> {
        let run = lock(&self.run)
            .clone()
            .ok_or_else(|| TargetError::Other("the outbox consumer was never started".into()))?;
        let (boot, redis) = lock(&self.at).clone();
        let topic = self.topic.clone();
        let p = self.progress.clone();
        tokio::task::spawn_blocking(move || read_back(&boot, &topic, &redis, &run, &p, limit))
            .await
            .map_err(|e| TargetError::Other(e.to_string()))?
            .map_err(TargetError::Other)
    }

    async fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let h = lock(&self.thread).take();
        if let Some(h) = h {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
        let run = lock(&self.run).clone();
        let redis = lock(&self.at).1.clone();
        if let (Some(run), Ok(mut con)) = (run, redis_conn(&redis)) {
            let pattern = format!("firedrill:outbox:{run}:*");
            let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query(&mut con).unwrap_or_default();
            for chunk in keys.chunks(500) {
                let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(chunk).query(&mut con);
            }
        }
    }
}

/// The whole log of the run (to its high watermark), the consumer's
/// deliveries and the projection's counters for every order seen.
fn read_back(
    boot: &str,
    topic: &str,
    redis_addr: &str,
    run: &str,
    p: &Progress,
    limit: Duration,
) -> Result<OutboxRead, String> {
    let end = Instant::now() + limit;
    let c = assigned(boot, topic, &format!("firedrill-outbox-audit-{run}"))?;
    let (_, high) = c
        .fetch_watermarks(topic, 0, limit)
        .map_err(|e| format!("{topic}: {e}"))?;
    let mut log = Vec::new();
    let mut next = 0;
    while next < high && Instant::now() < end {
        let Some(r) = c.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = r.map_err(|e| format!("{topic}: {e}"))?;
        next = m.offset() + 1;
        if let Some(rec) = decode(&m, run) {
            log.push(rec);
        }
    }
    if next < high {
        return Err(format!(
            "{topic}: read {next} of {high} records within {limit:?}"
        ));
    }
    let mut seqs: Vec<u64> = log.iter().map(|(s, _)| *s).collect();
    seqs.sort_unstable();
    seqs.dedup();
    let mut con = redis_conn(redis_addr)?;
    let mut applied = BTreeMap::new();
    for chunk in seqs.chunks(500) {
        let ks: Vec<String> = chunk.iter().map(|s| order_key(run, *s)).collect();
        let vals: Vec<Option<u64>> = redis::cmd("MGET")
            .arg(&ks)
            .query(&mut con)
            .map_err(|e| format!("projection: {e}"))?;
        for (s, v) in chunk.iter().zip(vals) {
            if let Some(v) = v {
                applied.insert(*s, v);
            }
        }
    }
    Ok(OutboxRead {
        log,
        deliveries: lock(&p.deliveries).clone(),
        applied,
        consumer_caught_up: p.next.load(Ordering::SeqCst) >= high,
    })
}
