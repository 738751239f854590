//! PostgreSQL: the heartbeat method (correct on an idle primary), the
//! primary's view of replication (pg_stat_replication), WAL archiving
//! (pg_stat_archiver) and, when configured, pgBackRest backups.
//!
//! Heartbeat: every round writes `ts` = the watcher's clock on the
//! primary, and every standby's exposure is the watcher's clock when it
//! read the row minus the newest `ts` it has replayed. Both instants come
//! from one clock, so server clock skew does not matter, and an idle
//! primary still gets a fresh row each interval, unlike
//! `now() - pg_last_xact_replay_timestamp()`.

use super::{labels, Round, SourceResult};
use crate::board::{Extras, BACKUP_EVERY};
use crate::plan::{PgStore, PgbackrestPlan, Settings, Source, WatchedDomain};
use firedrill_stores::postgres::target::PgMessage;
use std::time::{Duration, Instant, SystemTime};
use tokio::time::timeout;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, Statement};

/// Not the drill engine's `firedrill_heartbeat` (one counter per drill run):
/// the watcher keeps one timestamp per domain.
pub const HEARTBEAT_TABLE: &str = "firedrill_watch_heartbeat";

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

struct Conn {
    client: Client,
    node: Option<Statement>,
    beat: Option<Statement>,
    repl: Option<Statement>,
    arch: Option<Statement>,
    /// The heartbeat table was created through this connection (primary).
    created: bool,
}

struct Node {
    name: String,
    config: Config,
    conn: Option<Conn>,
}

/// What one node answered.
struct NodeAnswer {
    in_recovery: bool,
    /// Watcher clock at the read minus the replayed heartbeat.
    heartbeat_age: Option<f64>,
    replay_ts_age: Option<f64>,
}

pub struct PgProber {
    nodes: Vec<Node>,
    primary: Option<usize>,
    timeout: Duration,
    backup: Option<PgbackrestPlan>,
    last_backup: Option<Instant>,
}

fn msg(e: &tokio_postgres::Error) -> String {
    e.message()
}

impl PgProber {
    pub fn new(dom: &WatchedDomain, s: &PgStore, settings: &Settings) -> Self {
        let nodes = s
            .nodes
            .iter()
            .map(|n| {
                // Validated already; a parse failure here cannot happen,
                // but stays an error rather than a panic.
                let mut config: Config = n.conninfo.parse().unwrap_or_default();
                if let Some(u) = &s.user {
                    config.user(u);
                }
                if let Some(p) = dom.credentials.password() {
                    config.password(p);
                }
                config.application_name("firedrill-watch");
                config.connect_timeout(settings.timeout);
                Node {
                    name: n.name.clone(),
                    config,
                    conn: None,
                }
            })
            .collect();
        PgProber {
            nodes,
            primary: None,
            timeout: settings.timeout,
            backup: s.pgbackrest.clone(),
            last_backup: None,
        }
    }

    pub async fn round(&mut self, dom: &WatchedDomain) -> Round {
        let limit = self.timeout;
        let mut results = Vec::new();
        let mut extras = Extras::new();

        // 0. No primary known (first round, or lost): find it first, so
        // this round's heartbeat is written and a one-shot status is fresh.
        if self.primary.is_none() && dom.wants(Source::Heartbeat) {
            let answers = futures_util::future::join_all(
                self.nodes.iter_mut().map(|n| observe(n, &dom.name, limit)),
            )
            .await;
            let primaries: Vec<usize> = answers
                .iter()
                .enumerate()
                .filter(|(_, a)| matches!(a, Ok(a) if !a.in_recovery))
                .map(|(i, _)| i)
                .collect();
            if let [p] = primaries.as_slice() {
                self.primary = Some(*p);
            }
        }

        // 1. The heartbeat on the last known primary.
        let mut beat_error = None;
        if dom.wants(Source::Heartbeat) {
            match self.primary {
                Some(p) => {
                    if let Err(e) = beat(&mut self.nodes[p], &dom.name, limit).await {
                        beat_error = Some(format!("heartbeat on {}: {e}", self.nodes[p].name));
                    }
                }
                None => beat_error = Some("no primary known yet".to_string()),
            }
        }

        // 2. Every node: its role and its replayed heartbeat.
        let answers = futures_util::future::join_all(
            self.nodes.iter_mut().map(|n| observe(n, &dom.name, limit)),
        )
        .await;
        let primaries: Vec<usize> = answers
            .iter()
            .enumerate()
            .filter(|(_, a)| matches!(a, Ok(a) if !a.in_recovery))
            .map(|(i, _)| i)
            .collect();
        let primary = match primaries.as_slice() {
            [p] => Some(*p),
            _ => None,
        };
        if primaries.len() > 1 {
            let names: Vec<&str> = primaries
                .iter()
                .map(|i| self.nodes[*i].name.as_str())
                .collect();
            beat_error.get_or_insert(format!("several primaries: {}", names.join(", ")));
        }
        if primary != self.primary && beat_error.is_none() {
            // A failover since the beat: the beat went to a standby that is
            // no more, or to nothing. The next round writes to the new one.
            beat_error = Some("primary changed".to_string());
        }
        self.primary = primary;

        if let Some(p) = primary {
            extras.insert(
                (
                    "firedrill_pg_primary".into(),
                    labels(dom, &[("node", &self.nodes[p].name)]),
                ),
                1.0,
            );
        }
        if dom.wants(Source::Heartbeat) {
            let mut observed = Vec::new();
            let mut missing = Vec::new();
            for (i, a) in answers.iter().enumerate() {
                if Some(i) == primary {
                    continue;
                }
                let name = &self.nodes[i].name;
                match a {
                    Ok(a) => {
                        if let Some(age) = a.heartbeat_age {
                            observed.push((name.clone(), age));
                        } else {
                            missing.push(name.clone());
                        }
                    }
                    Err(_) => missing.push(name.clone()),
                }
            }
            let errors: Vec<String> = answers
                .iter()
                .zip(&self.nodes)
                .filter_map(|(a, n)| a.as_ref().err().map(|e| format!("{}: {e}", n.name)))
                .collect();
            let error = beat_error
                .clone()
                .or_else(|| (!errors.is_empty()).then(|| errors.join("; ")));
            results.push(SourceResult {
                source: Source::Heartbeat,
                observed,
                missing,
                error,
                ages: false,
            });
        }
        for (a, n) in answers.iter().zip(&self.nodes) {
            if let Ok(a) = a {
                if a.in_recovery {
                    if let Some(age) = a.replay_ts_age {
                        extras.insert(
                            (
                                "firedrill_pg_replay_timestamp_age_seconds".into(),
                                labels(dom, &[("node", &n.name)]),
                            ),
                            age,
                        );
                    }
                    if let Some(age) = a.heartbeat_age {
                        extras.insert(
                            (
                                "firedrill_pg_heartbeat_age_seconds".into(),
                                labels(dom, &[("node", &n.name)]),
                            ),
                            age,
                        );
                    }
                }
            }
        }

        // 3. The primary's view: replication and archiving.
        let wants_repl = dom.wants(Source::ReplicationLag);
        let wants_arch = dom.wants(Source::Archive);
        match primary {
            None => {
                let e = "no primary answered".to_string();
                if wants_repl {
                    results.push(SourceResult::failed(Source::ReplicationLag, e.clone()));
                }
                if wants_arch {
                    results.push(SourceResult::failed(Source::Archive, e));
                }
            }
            Some(p) => {
                let standbys: Vec<String> = self
                    .nodes
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != p)
                    .map(|(_, n)| n.name.clone())
                    .collect();
                let node = &mut self.nodes[p];
                match primary_view(node, limit, dom, &standbys, &mut extras).await {
                    Ok((repl, arch)) => {
                        if wants_repl {
                            results.push(repl);
                        }
                        if wants_arch {
                            results.push(arch);
                        }
                    }
                    Err(e) => {
                        node.conn = None;
                        let e = format!("{}: {e}", node.name);
                        if wants_repl {
                            results.push(SourceResult::failed(Source::ReplicationLag, e.clone()));
                        }
                        if wants_arch {
                            results.push(SourceResult::failed(Source::Archive, e));
                        }
                    }
                }
            }
        }

        // 4. Backups, at their own slower pace.
        let mut extra_updates = Extras::new();
        if let Some(b) = &self.backup {
            if dom.wants(Source::Backup)
                && self.last_backup.is_none_or(|t| t.elapsed() >= BACKUP_EVERY)
            {
                self.last_backup = Some(Instant::now());
                let r = crate::pgbackrest::info(
                    &b.command,
                    b.config.as_deref(),
                    &b.stanza,
                    Duration::from_secs(30).max(limit),
                )
                .await
                .and_then(|json| crate::pgbackrest::newest_backup(&json, &b.stanza));
                results.push(match r {
                    Ok(Some(nb)) => {
                        let now = unix_now();
                        let age = now - nb.stop as f64;
                        extra_updates.insert(
                            (
                                "firedrill_backup_newest_timestamp_seconds".into(),
                                labels(dom, &[]),
                            ),
                            nb.stop as f64,
                        );
                        SourceResult {
                            source: Source::Backup,
                            observed: vec![(String::new(), age)],
                            missing: vec![],
                            error: None,
                            ages: true,
                        }
                    }
                    Ok(None) => SourceResult {
                        source: Source::Backup,
                        observed: vec![(String::new(), f64::INFINITY)],
                        missing: vec![],
                        error: None,
                        ages: true,
                    },
                    Err(e) => SourceResult::failed(Source::Backup, e.to_string()),
                });
            }
        }
        Round {
            results,
            extras: Some(extras),
            extra_updates,
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

async fn connect(n: &mut Node, limit: Duration) -> Result<&mut Conn, String> {
    if n.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
        n.conn = None;
    }
    if n.conn.is_none() {
        let client = firedrill_stores::postgres::target::connect(&n.config, limit).await?;
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

async fn beat(n: &mut Node, domain: &str, limit: Duration) -> Result<(), String> {
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

async fn observe(n: &mut Node, domain: &str, limit: Duration) -> Result<NodeAnswer, String> {
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
async fn primary_view(
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
    let arch = if mode == "off" {
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
    };
    Ok((repl, arch))
}
