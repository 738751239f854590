//! One PostgreSQL node as the watch probe talks to it: its connection
//! (kept open, re-opened after an error), the heartbeat write, the role and
//! replayed-heartbeat read, and the primary's replication and archiver view.
//! Every step has its own deadline, so a round stays bounded.

use crate::postgres::target::PgMessage;
use firedrill_watch::board::Extras;
use firedrill_watch::plan::{Source, WatchedDomain};
use firedrill_watch::{labels, SourceResult};
use std::time::{Duration, SystemTime};
use tokio::time::timeout;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, Statement};

const CREATE: &str =
    "CREATE TABLE IF NOT EXISTS firedrill_watch_heartbeat (domain text PRIMARY KEY, ts timestamptz NOT NULL)";
const BEAT: &str = "INSERT INTO firedrill_watch_heartbeat (domain, ts) VALUES ($1, $2) \
     ON CONFLICT (domain) DO UPDATE SET ts = EXCLUDED.ts";
/// Works on primaries and standbys: role, replayed heartbeat, and the
/// naive replay-timestamp age (exported to show the idle trap beside it).
const NODE: &str = "SELECT pg_is_in_recovery(), \
     (SELECT ts FROM firedrill_watch_heartbeat WHERE domain = $1), \
     extract(epoch from clock_timestamp() - pg_last_xact_replay_timestamp())::float8";
/// Before the heartbeat table has reached this node.
const NODE_NO_TABLE: &str = "SELECT pg_is_in_recovery(), NULL::timestamptz, \
     extract(epoch from clock_timestamp() - pg_last_xact_replay_timestamp())::float8";
const REPLICATION: &str = "SELECT application_name, state, sync_state, \
     pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn)::float8, \
     pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8, \
     extract(epoch from write_lag)::float8, extract(epoch from flush_lag)::float8, \
     extract(epoch from replay_lag)::float8 \
     FROM pg_stat_replication";
const ARCHIVER: &str =
    "SELECT extract(epoch from clock_timestamp() - last_archived_time)::float8, \
     failed_count, current_setting('archive_mode'), current_setting('synchronous_standby_names') \
     FROM pg_stat_archiver";

pub(super) struct Conn {
    pub(super) client: Client,
    node: Option<Statement>,
    beat: Option<Statement>,
    repl: Option<Statement>,
    arch: Option<Statement>,
    /// The heartbeat table was created through this connection (primary).
    created: bool,
}

pub(super) struct Node {
    pub(super) name: String,
    pub(super) config: Config,
    pub(super) conn: Option<Conn>,
}

/// What one node answered.
pub(super) struct NodeAnswer {
    pub(super) in_recovery: bool,
    /// Watcher clock at the read minus the replayed heartbeat.
    pub(super) heartbeat_age: Option<f64>,
    pub(super) replay_ts_age: Option<f64>,
}

pub(super) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn msg(e: &tokio_postgres::Error) -> String {
    e.message()
}

/// The probe's connection to `n`, for the other probes of this folder.
pub(super) async fn connect_pub(n: &mut Node, limit: Duration) -> Result<&mut Conn, String> {
    connect(n, limit).await
}

async fn connect(n: &mut Node, limit: Duration) -> Result<&mut Conn, String> {
    if n.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
        n.conn = None;
    }
    if n.conn.is_none() {
        let client = crate::postgres::target::connect(&n.config, limit).await?;
        n.conn = Some(Conn {
            client,
            node: None,
            beat: None,
            repl: None,
            arch: None,
            created: false,
        });
    }
    n.conn.as_mut().ok_or_else(|| "not connected".to_string())
}

/// Drops the connection unless the error is the server's answer to a
/// statement (the connection itself is fine then).
fn on_error(n: &mut Node, e: &tokio_postgres::Error) -> String {
    if e.as_db_error().is_none() {
        n.conn = None;
    }
    msg(e)
}

pub(super) async fn beat(n: &mut Node, domain: &str, limit: Duration) -> Result<(), String> {
    let r = timeout(limit, async {
        let c = connect(n, limit).await.map_err(Ok)?;
        if !c.created {
            match c.client.batch_execute(CREATE).await {
                Ok(()) => {}
                // Two watchers (or two domains) creating it at once.
                Err(e)
                    if e.code() == Some(&SqlState::UNIQUE_VIOLATION)
                        || e.code() == Some(&SqlState::DUPLICATE_TABLE) => {}
                Err(e) => return Err(Err(e)),
            }
            c.created = true;
        }
        if c.beat.is_none() {
            c.beat = Some(c.client.prepare(BEAT).await.map_err(Err)?);
        }
        let Some(st) = &c.beat else {
            return Err(Ok("no statement".to_string()));
        };
        let ts = SystemTime::now();
        c.client.execute(st, &[&domain, &ts]).await.map_err(Err)?;
        Ok(())
    })
    .await;
    match r {
        Ok(Ok(())) => Ok(()),
        Ok(Err(Ok(s))) => {
            n.conn = None;
            Err(s)
        }
        Ok(Err(Err(e))) => Err(on_error(n, &e)),
        Err(_) => {
            n.conn = None;
            Err(format!("timed out after {limit:?}"))
        }
    }
}

pub(super) async fn observe(
    n: &mut Node,
    domain: &str,
    limit: Duration,
) -> Result<NodeAnswer, String> {
    let r = timeout(limit, async {
        let c = connect(n, limit).await.map_err(Ok)?;
        if c.node.is_none() {
            match c.client.prepare(NODE).await {
                Ok(s) => c.node = Some(s),
                // The table has not reached this node yet.
                Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => {}
                Err(e) => return Err(Err(e)),
            }
        }
        let row = match &c.node {
            Some(st) => c.client.query_one(st, &[&domain]).await,
            None => c.client.query_one(NODE_NO_TABLE, &[]).await,
        }
        .map_err(Err)?;
        let read_at = SystemTime::now();
        let in_recovery: bool = row.get(0);
        let ts: Option<SystemTime> = row.get(1);
        let heartbeat_age = ts.map(|ts| {
            read_at
                .duration_since(ts)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0)
        });
        Ok(NodeAnswer {
            in_recovery,
            heartbeat_age,
            replay_ts_age: row.get(2),
        })
    })
    .await;
    match r {
        Ok(Ok(a)) => Ok(a),
        Ok(Err(Ok(s))) => {
            n.conn = None;
            Err(s)
        }
        Ok(Err(Err(e))) => Err(on_error(n, &e)),
        Err(_) => {
            n.conn = None;
            Err(format!("timed out after {limit:?}"))
        }
    }
}

/// pg_stat_replication and pg_stat_archiver on the primary.
pub(super) async fn primary_view(
    n: &mut Node,
    limit: Duration,
    dom: &WatchedDomain,
    standbys: &[String],
    extras: &mut Extras,
) -> Result<(SourceResult, SourceResult), String> {
    let r = timeout(limit, async {
        let c = connect(n, limit).await.map_err(|e| e.to_string())?;
        if c.repl.is_none() {
            c.repl = Some(c.client.prepare(REPLICATION).await.map_err(|e| msg(&e))?);
        }
        if c.arch.is_none() {
            c.arch = Some(c.client.prepare(ARCHIVER).await.map_err(|e| msg(&e))?);
        }
        let (Some(rs), Some(ars)) = (&c.repl, &c.arch) else {
            return Err("no statement".to_string());
        };
        let rows = c.client.query(rs, &[]).await.map_err(|e| msg(&e))?;
        let arch = c.client.query_one(ars, &[]).await.map_err(|e| msg(&e))?;
        Ok((rows, arch))
    })
    .await
    .map_err(|_| format!("timed out after {limit:?}"))??;
    let (rows, arch) = r;

    let mut observed = Vec::new();
    for row in &rows {
        let app: Option<String> = row.get(0);
        let Some(app) = app else { continue };
        if !standbys.contains(&app) {
            continue;
        }
        let state: Option<String> = row.get(1);
        let sync_state: Option<String> = row.get(2);
        let flush_bytes: Option<f64> = row.get(3);
        let replay_bytes: Option<f64> = row.get(4);
        let lags: [(&str, Option<f64>); 3] = [
            ("write", row.get(5)),
            ("flush", row.get(6)),
            ("replay", row.get(7)),
        ];
        for (kind, v) in lags {
            extras.insert(
                (
                    "firedrill_pg_replication_lag_seconds".into(),
                    labels(dom, &[("node", &app), ("kind", kind)]),
                ),
                v.unwrap_or(0.0),
            );
        }
        for (kind, v) in [("flush", flush_bytes), ("replay", replay_bytes)] {
            if let Some(v) = v {
                extras.insert(
                    (
                        "firedrill_pg_replication_lag_bytes".into(),
                        labels(dom, &[("node", &app), ("lsn", kind)]),
                    ),
                    v,
                );
            }
        }
        extras.insert(
            (
                "firedrill_pg_standby_streaming".into(),
                labels(
                    dom,
                    &[
                        ("node", &app),
                        ("sync_state", sync_state.as_deref().unwrap_or("")),
                    ],
                ),
            ),
            if state.as_deref() == Some("streaming") {
                1.0
            } else {
                0.0
            },
        );
        // Flushed WAL survives the primary's loss (it is replayed on
        // promotion), so flush lag is the data at risk; NULL = caught up.
        if state.as_deref() == Some("streaming") {
            let flush_lag: Option<f64> = row.get(6);
            observed.push((app, flush_lag.unwrap_or(0.0)));
        }
    }
    let missing: Vec<String> = standbys
        .iter()
        .filter(|s| !observed.iter().any(|(n, _)| n == *s))
        .cloned()
        .collect();
    let repl = SourceResult {
        source: Source::ReplicationLag,
        observed,
        missing,
        error: None,
        ages: false,
    };

    Ok((repl, archive_result(&arch, dom, extras)))
}

/// The archiver's row: the age of the last archived segment, and the
/// failures and synchronous_standby_names beside it.
fn archive_result(
    arch: &tokio_postgres::Row,
    dom: &WatchedDomain,
    extras: &mut Extras,
) -> SourceResult {
    let age: Option<f64> = arch.get(0);
    let failed: i64 = arch.get(1);
    let mode: String = arch.get(2);
    let ssn: String = arch.get(3);
    extras.insert(
        ("firedrill_pg_archive_failed_count".into(), labels(dom, &[])),
        failed as f64,
    );
    extras.insert(
        (
            "firedrill_pg_synchronous_standby_names".into(),
            labels(dom, &[("value", &ssn)]),
        ),
        1.0,
    );
    if mode == "off" {
        SourceResult::failed(Source::Archive, "archive_mode is off".into())
    } else {
        // Never archived: everything is at risk.
        SourceResult {
            source: Source::Archive,
            observed: vec![(String::new(), age.unwrap_or(f64::INFINITY))],
            missing: vec![],
            error: None,
            ages: false,
        }
    }
}
