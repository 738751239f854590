//! `/metrics`: the board rendered at scrape time, so an exposure that grows
//! from a stale observation is current to the scrape, not to the last probe.

use crate::board::{cadence, Board};
use crate::plan::Plan;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

type Labels = Vec<(String, String)>;
type GaugeF = Gauge<f64, AtomicU64>;

/// Help text of the extra gauges the probes fill in.
fn extra_help(name: &str) -> &'static str {
    match name {
        "firedrill_pg_primary" => "1 for the node answering as primary",
        "firedrill_pg_cdc_lag_bytes" => "WAL bytes the CDC slot has not confirmed (pg_current_wal_lsn - confirmed_flush_lsn)",
        "firedrill_pg_cdc_slot_active" => "1 while a consumer (Debezium) is attached to the CDC slot",
        "firedrill_pg_replay_timestamp_age_seconds" => {
            "now() - pg_last_xact_replay_timestamp() on a standby: grows on an idle primary; not an exposure"
        }
        "firedrill_pg_heartbeat_age_seconds" => "watcher clock minus the newest heartbeat replayed on the standby",
        "firedrill_pg_replication_lag_seconds" => "pg_stat_replication write/flush/replay lag (NULL read as 0)",
        "firedrill_pg_replication_lag_bytes" => "bytes of WAL the standby has not flushed / replayed",
        "firedrill_pg_standby_streaming" => "1 when pg_stat_replication shows the standby streaming",
        "firedrill_pg_archive_failed_count" => "pg_stat_archiver.failed_count",
        "firedrill_pg_synchronous_standby_names" => "synchronous_standby_names in force on the primary",
        "firedrill_backup_newest_timestamp_seconds" => "stop time of the newest error-free backup (Unix seconds)",
        "firedrill_redis_master_repl_offset" => "the master's master_repl_offset",
        "firedrill_redis_link_up" => "a replica's master_link_status is up",
        "firedrill_redis_lag_bytes" => "master_repl_offset - slave_repl_offset",
        "firedrill_etcd_raft_index_gap" => "highest raft index of the members minus this member's",
        "firedrill_etcd_has_leader" => "a leader is seen by a quorum of the declared members",
        "firedrill_kafka_offline_partitions" => "partitions of the watched topics without a leader",
        "firedrill_kafka_under_replicated_partitions" => "partitions of the watched topics whose ISR is smaller than their replica set",
        "firedrill_kafka_under_min_isr_partitions" => "partitions of the watched topics whose ISR is below their min.insync.replicas",
        "firedrill_kafka_mirror_unmirrored_seconds" => "age of the oldest heartbeat on the source cluster that the target's copy lacks (0: all mirrored)",
        _ => "firedrill watch gauge",
    }
}

fn lbl(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Per domain with `[domain.restore_test]`: the age of the newest passing
/// restore test (`+Inf` when none passed, or the history was never read),
/// its restore's duration, and the age the stale-test alert allows.
fn restore_tests(plan: &Plan, board: &Board, reg: &mut Registry) {
    let age = Family::<Labels, GaugeF>::default();
    let duration = Family::<Labels, GaugeF>::default();
    let max_age = Family::<Labels, GaugeF>::default();
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut any = false;
    for (d, dom) in plan.domains.iter().enumerate() {
        let Some(rt) = &dom.restore_test else {
            continue;
        };
        any = true;
        let l = lbl(&[
            ("domain", dom.name.as_str()),
            ("store", dom.store_name.as_str()),
        ]);
        let st = board.domains.get(d).map(|x| &x.restore_test);
        let a = st.map_or(f64::INFINITY, |s| crate::restore_test::age(s, now_unix));
        age.get_or_create(&l).set(a);
        if let Some(v) = st
            .and_then(|s| s.newest.as_ref())
            .and_then(|n| n.duration_s)
        {
            duration.get_or_create(&l).set(v);
        }
        max_age.get_or_create(&l).set(rt.max_age.as_secs_f64());
    }
    if !any {
        return;
    }
    reg.register(
        "firedrill_restore_test_age_seconds",
        "Seconds since the newest passing restore test of the domain started (from the run history); +Inf when none passed",
        age,
    );
    reg.register(
        "firedrill_restore_test_duration_seconds",
        "Restore duration of the newest passing restore test: from its start until the restored server accepted writes",
        duration,
    );
    reg.register(
        "firedrill_restore_test_max_age_seconds",
        "How old the newest passing restore test may get before FiredrillRestoreTestStale fires",
        max_age,
    );
}

/// The Prometheus text exposition of the board at `now`.
pub fn render(plan: &Plan, board: &Board, now: Instant) -> String {
    let mut reg = Registry::default();
    let exposure = Family::<Labels, GaugeF>::default();
    let rpo = Family::<Labels, GaugeF>::default();
    let rto = Family::<Labels, GaugeF>::default();
    let up = Family::<Labels, GaugeF>::default();
    let errors = Family::<Labels, Counter>::default();
    let interval = Family::<Labels, GaugeF>::default();

    for (d, dom) in plan.domains.iter().enumerate() {
        let base = [
            ("domain", dom.name.as_str()),
            ("store", dom.store_name.as_str()),
        ];
        let mut sources = std::collections::BTreeSet::new();
        for o in &dom.objectives {
            let dis = o.disruption.0.as_str();
            let mut l = base.to_vec();
            l.push(("disruption", dis));
            if let Some(r) = o.rpo {
                rpo.get_or_create(&lbl(&l)).set(r.as_secs_f64());
            }
            if let Some(r) = o.rto {
                rto.get_or_create(&lbl(&l)).set(r.as_secs_f64());
            }
            for s in &o.sources {
                sources.insert(*s);
                let mut l = l.clone();
                l.push(("source", s.as_str()));
                exposure
                    .get_or_create(&lbl(&l))
                    .set(board.exposure(d, o, *s, now));
            }
        }
        for s in sources {
            let mut l = base.to_vec();
            l.push(("source", s.as_str()));
            up.get_or_create(&lbl(&l))
                .set(if board.up(d, s, now) { 1.0 } else { 0.0 });
            let n = board
                .domains
                .get(d)
                .and_then(|x| x.sources.get(&s))
                .map(|x| x.errors)
                .unwrap_or(0);
            errors.get_or_create(&lbl(&l)).inc_by(n);
            interval
                .get_or_create(&lbl(&l))
                .set(cadence(s, board.interval).as_secs_f64());
        }
    }
    reg.register(
        "firedrill_exposure_seconds",
        "Seconds of acknowledged writes that would be lost if the disruption happened now; grows from the last good observation while the probe fails, +Inf if never observed",
        exposure,
    );
    reg.register(
        "firedrill_objective_rpo_seconds",
        "The RPO objective of the domain for the disruption",
        rpo,
    );
    reg.register(
        "firedrill_objective_rto_seconds",
        "The RTO objective of the domain for the disruption",
        rto,
    );
    reg.register(
        "firedrill_probe_up",
        "1 when the last probe round of the source observed everything it needs, recently",
        up,
    );
    reg.register(
        "firedrill_probe_errors",
        "Probe rounds of the source that failed or missed a node",
        errors,
    );
    reg.register(
        "firedrill_probe_interval_seconds",
        "How often the source is probed",
        interval,
    );

    let mut extras: BTreeMap<&str, Family<Labels, GaugeF>> = BTreeMap::new();
    for dom in &board.domains {
        for ((name, labels), v) in &dom.extras {
            extras
                .entry(name.as_str())
                .or_default()
                .get_or_create(labels)
                .set(*v);
        }
    }
    for (name, fam) in extras {
        reg.register(name, extra_help(name), fam);
    }
    restore_tests(plan, board, &mut reg);

    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &reg).is_err() {
        out.clear();
    }
    out
}
