//! PostgreSQL target: streaming replication, physical standbys.
//!
//! The workload inserts one row per ledger entry into `firedrill_ledger`
//! (no unique index, so a duplicate would stay visible to the audit). The
//! heartbeat table holds one counter per run; its replayed value on a
//! standby tells how far behind that standby is, on the observer's clock.

mod config;
mod corrupt;

mod store;

pub use config::{endpoint, multi_host, parse_node, redirect, PgNode};
pub use store::{PgStore, WatchSource};

use firedrill_ledger::Outcome;
use firedrill_targets::{LiveRole, TargetError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::time::{timeout, Instant};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls, Statement};

pub const LEDGER_TABLE: &str = "firedrill_ledger";
pub const HEARTBEAT_TABLE: &str = "firedrill_heartbeat";

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS firedrill_ledger (run_id text NOT NULL, seq bigint NOT NULL, payload bytea);
CREATE TABLE IF NOT EXISTS firedrill_heartbeat (run_id text PRIMARY KEY, n bigint NOT NULL);
";

const INSERT: &str = "INSERT INTO firedrill_ledger (run_id, seq, payload) VALUES ($1, $2, $3)";

/// The outbox write: the ledger row and its event in one statement, so in
/// one transaction (both commit or neither). The event's id is derived
/// from (run, seq), so a consumer and the audit can tell a redelivery of
/// one event from two events; the aggregate is the ledger entry (`seq`)
/// and the payload the run, which keeps runs apart in the log.
const INSERT_WITH_OUTBOX: &str = "WITH ledger AS (INSERT INTO firedrill_ledger (run_id, seq, payload) VALUES ($1, $2, $3)) \
INSERT INTO firedrill_outbox (id, aggregatetype, aggregateid, type, payload) \
VALUES (md5($1 || ':' || $4)::uuid, 'order', $4, 'placed', $1)";


fn node_err(node: &str, e: impl PgMessage) -> TargetError {
    TargetError::Node {
        node: node.into(),
        msg: e.message(),
    }
}

/// The whole story of an error: tokio-postgres' Display says only "db
/// error" for a server error.
pub trait PgMessage {
    fn message(&self) -> String;
}

impl PgMessage for tokio_postgres::Error {
    fn message(&self) -> String {
        match self.as_db_error() {
            Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
            None => {
                let mut m = self.to_string();
                let mut src = std::error::Error::source(self);
                while let Some(s) = src {
                    m.push_str(": ");
                    m.push_str(&s.to_string());
                    src = s.source();
                }
                m
            }
        }
    }
}

impl PgMessage for &str {
    fn message(&self) -> String {
        self.to_string()
    }
}

impl PgMessage for String {
    fn message(&self) -> String {
        self.clone()
    }
}

/// Connects with a deadline and drives the connection in the background.
pub async fn connect(config: &Config, limit: Duration) -> Result<Client, String> {
    match timeout(limit, config.connect(NoTls)).await {
        Ok(Ok((client, conn))) => {
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(client)
        }
        Ok(Err(e)) => Err(e.message()),
        Err(_) => Err(format!("connect timed out after {limit:?}")),
    }
}

/// The whole store, as firedrill sees it.
#[derive(Debug, Clone)]
pub struct PgTarget {
    pub nodes: Vec<PgNode>,
    /// Distinguishes this trial's rows from any other run's in the same tables.
    pub run_id: String,
    /// Nodes a recovery added during the trial (a restore's scratch node).
    pub added: Arc<RwLock<Vec<PgNode>>>,
}

impl PgTarget {
    pub fn node(&self, name: &str) -> Result<PgNode, TargetError> {
        self.all_nodes()
            .into_iter()
            .find(|n| n.name == name)
            .ok_or_else(|| TargetError::Other(format!("no node named {name}")))
    }

    /// The trial's nodes, then those a recovery added.
    pub fn all_nodes(&self) -> Vec<PgNode> {
        let added = self.added.read().unwrap_or_else(|p| p.into_inner());
        self.nodes.iter().chain(added.iter()).cloned().collect()
    }

    pub async fn connect_node(&self, name: &str, limit: Duration) -> Result<Client, TargetError> {
        let n = self.node(name)?;
        connect(&n.config, limit)
            .await
            .map_err(|e| node_err(name, e))
    }

    /// Creates the ledger and heartbeat tables on the primary.
    /// The outbox table, for endpoints whose lab did not create it (a
    /// `cdc` lab creates it before Debezium starts).
    pub async fn setup_outbox(&self, primary: &str) -> Result<(), TargetError> {
        let c = self.connect_node(primary, Duration::from_secs(5)).await?;
        c.batch_execute(crate::OUTBOX_DDL)
            .await
            .map_err(|e| node_err(primary, e))
    }

    pub async fn setup(&self, primary: &str) -> Result<(), TargetError> {
        let c = self.connect_node(primary, Duration::from_secs(5)).await?;
        c.batch_execute(SCHEMA)
            .await
            .map_err(|e| node_err(primary, e))?;
        c.execute(
            "INSERT INTO firedrill_heartbeat (run_id, n) VALUES ($1, 0) ON CONFLICT (run_id) DO UPDATE SET n = 0",
            &[&self.run_id],
        )
        .await
        .map_err(|e| node_err(primary, e))?;
        Ok(())
    }

    /// Waits until a standby has replayed the schema and this run's
    /// heartbeat row, so lag sampling can start.
    pub async fn wait_replicated(&self, node: &str, limit: Duration) -> Result<(), TargetError> {
        let end = Instant::now() + limit;
        let mut last = String::from("not reachable");
        while Instant::now() < end {
            if let Ok(c) = self.connect_node(node, Duration::from_secs(1)).await {
                match c
                    .query_opt(
                        "SELECT n FROM firedrill_heartbeat WHERE run_id = $1",
                        &[&self.run_id],
                    )
                    .await
                {
                    Ok(Some(_)) => return Ok(()),
                    Ok(None) => last = "heartbeat row not replayed yet".into(),
                    Err(e) => last = e.to_string(),
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(node_err(
            node,
            format!("standby did not catch up within {limit:?}: {last}"),
        ))
    }

    /// The node's role right now; a node that does not answer within
    /// `limit` is unreachable.
    pub async fn role(&self, name: &str, limit: Duration) -> LiveRole {
        let Ok(c) = self.connect_node(name, limit).await else {
            return LiveRole::Unreachable;
        };
        match timeout(limit, c.query_one("SELECT pg_is_in_recovery()", &[])).await {
            Ok(Ok(row)) => {
                if row.get::<_, bool>(0) {
                    LiveRole::Standby
                } else {
                    LiveRole::Primary
                }
            }
            _ => LiveRole::Unreachable,
        }
    }

    /// Roles of all nodes, asked concurrently.
    pub async fn roles(&self, limit: Duration) -> Vec<(String, LiveRole)> {
        let nodes = self.all_nodes();
        let futs = nodes
            .iter()
            .map(|n| async move { (n.name.clone(), self.role(&n.name, limit).await) });
        futures_util::future::join_all(futs).await
    }

    /// Standbys the primary currently counts for synchronous commit.
    pub async fn sync_standbys(&self, primary: &str) -> Result<Vec<String>, TargetError> {
        let c = self.connect_node(primary, Duration::from_secs(2)).await?;
        let rows = c
            .query(
                "SELECT application_name FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum') ORDER BY application_name",
                &[],
            )
            .await
            .map_err(|e| node_err(primary, e))?;
        Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
    }

    /// WAL position a standby has received (falls back to replayed), as a
    /// number, for picking the most advanced standby.
    pub async fn received_lsn(&self, name: &str) -> Option<u64> {
        let c = self.connect_node(name, Duration::from_secs(1)).await.ok()?;
        let row = timeout(
            Duration::from_secs(2),
            c.query_one(
                "SELECT (coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) - '0/0'::pg_lsn)::text",
                &[],
            ),
        )
        .await
        .ok()?
        .ok()?;
        let s: Option<String> = row.get(0);
        s.and_then(|v| v.split('.').next().and_then(|i| i.parse().ok()))
    }

    /// Promotes a standby and waits until it accepts writes.
    pub async fn promote(&self, name: &str) -> Result<(), TargetError> {
        let c = self.connect_node(name, Duration::from_secs(2)).await?;
        let row = c
            .query_one("SELECT pg_promote(wait => true, wait_seconds => 60)", &[])
            .await
            .map_err(|e| node_err(name, e))?;
        if !row.get::<_, bool>(0) {
            return Err(node_err(name, "pg_promote() returned false"));
        }
        Ok(())
    }

    /// The standby's current primary_conninfo: what a cut must restore.
    pub async fn primary_conninfo(&self, name: &str) -> Result<String, TargetError> {
        let c = self.connect_node(name, Duration::from_secs(2)).await?;
        let saved: String = c
            .query_one(
                "SELECT setting FROM pg_settings WHERE name = 'primary_conninfo'",
                &[],
            )
            .await
            .map_err(|e| node_err(name, e))?
            .get(0);
        if saved.is_empty() {
            return Err(node_err(
                name,
                "primary_conninfo is empty: this node is not a streaming standby",
            ));
        }
        Ok(saved)
    }

    /// Stops a standby from receiving WAL: clears primary_conninfo and
    /// reloads, so its walreceiver exits. Returns once no walreceiver runs
    /// (the fault is in effect). Read [`Self::primary_conninfo`] first.
    pub async fn cut_replication(&self, name: &str) -> Result<(), TargetError> {
        let c = self.connect_node(name, Duration::from_secs(2)).await?;
        // Two round trips: ALTER SYSTEM cannot run inside the implicit
        // transaction of a multi-statement query.
        c.batch_execute("ALTER SYSTEM SET primary_conninfo = ''")
            .await
            .map_err(|e| node_err(name, e))?;
        c.batch_execute("SELECT pg_reload_conf()")
            .await
            .map_err(|e| node_err(name, e))?;
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let n: i64 = c
                .query_one("SELECT count(*) FROM pg_stat_wal_receiver", &[])
                .await
                .map_err(|e| node_err(name, e))?
                .get(0);
            if n == 0 {
                return Ok(());
            }
            if Instant::now() > end {
                return Err(node_err(
                    name,
                    "walreceiver still running 10 s after the cut",
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Heals a replication cut: puts primary_conninfo back and reloads.
    pub async fn restore_replication(&self, name: &str, saved: &str) -> Result<(), TargetError> {
        let c = self.connect_node(name, Duration::from_secs(2)).await?;
        let sql = format!(
            "ALTER SYSTEM SET primary_conninfo = '{}'",
            saved.replace('\'', "''")
        );
        c.batch_execute(&sql).await.map_err(|e| node_err(name, e))?;
        c.batch_execute("SELECT pg_reload_conf()")
            .await
            .map_err(|e| node_err(name, e))
    }

    /// Reads back every id of this run present on `name`, setting apart
    /// those whose payload is none of `payloads` (the bytes the run's
    /// clients write): a garbled row is not the acknowledged write. With
    /// no payloads known, every row present counts as intact.
    pub async fn audit(
        &self,
        name: &str,
        payloads: &[Vec<u8>],
    ) -> Result<firedrill_targets::AuditRead, TargetError> {
        let c = self.connect_node(name, Duration::from_secs(5)).await?;
        let rows = match c
            .query(
                "SELECT seq, cardinality($2::bytea[]) = 0 OR coalesce(payload = ANY($2::bytea[]), false) FROM firedrill_ledger WHERE run_id = $1",
                &[&self.run_id, &payloads],
            )
            .await
        {
            Ok(rows) => rows,
            // A restore to a point before the run created its table: not
            // one of its rows survived.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
                return Ok(firedrill_targets::AuditRead::default())
            }
            Err(e) => return Err(node_err(name, e)),
        };
        let mut read = firedrill_targets::AuditRead::default();
        for r in &rows {
            let seq = r.get::<_, i64>(0) as u64;
            if r.get::<_, bool>(1) {
                read.ids.push(seq);
            } else {
                read.garbled.push(seq);
            }
        }
        Ok(read)
    }

    /// Removes this run's rows, so repeated drills against a real database
    /// do not grow its tables.
    pub async fn cleanup(&self, name: &str) -> Result<(), TargetError> {
        let c = self.connect_node(name, Duration::from_secs(5)).await?;
        c.execute(
            "DELETE FROM firedrill_ledger WHERE run_id = $1",
            &[&self.run_id],
        )
        .await
        .map_err(|e| node_err(name, e))?;
        c.execute(
            "DELETE FROM firedrill_heartbeat WHERE run_id = $1",
            &[&self.run_id],
        )
        .await
        .map_err(|e| node_err(name, e))?;
        Ok(())
    }

    pub async fn server_version(&self, name: &str) -> Result<String, TargetError> {
        let c = self.connect_node(name, Duration::from_secs(2)).await?;
        let row = c
            .query_one("SHOW server_version", &[])
            .await
            .map_err(|e| node_err(name, e))?;
        Ok(format!("PostgreSQL {}", row.get::<_, String>(0)))
    }
}

/// Where the workload's clients connect, when a recovery moves them (a
/// restore into a new node): each client drops its connection and uses
/// the new config at its next operation after the generation changes.
#[derive(Debug, Default)]
pub struct Route {
    generation: AtomicU64,
    config: Mutex<Option<Config>>,
}

impl Route {
    /// Points every client at `config` from their next operation on.
    pub fn set(&self, config: Config) {
        *self.config.lock().unwrap_or_else(|p| p.into_inner()) = Some(config);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn current(&self) -> (u64, Option<Config>) {
        let c = self.config.lock().unwrap_or_else(|p| p.into_inner());
        (self.generation.load(Ordering::SeqCst), c.clone())
    }
}

/// One workload client: one connection, reconnecting with backoff. No
/// pool: the reconnects after a failover are part of what is measured.
pub struct WorkloadClient {
    config: Config,
    run_id: String,
    payload: Vec<u8>,
    conn: Option<(Client, Statement)>,
    backoff: Duration,
    retry_at: Option<Instant>,
    /// Moved by a recovery; `generation` is the route's as last followed.
    route: Option<(Arc<Route>, u64)>,
    /// Each write also inserts its outbox row, in the same transaction.
    outbox: bool,
}

// Short backoff: the client should notice a new primary within ~0.1 s, or
// the measured RTO would mostly be the client's own backoff.
const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_millis(100);

impl WorkloadClient {
    pub fn new(config: Config, run_id: String, payload_bytes: usize, salt: u64) -> Self {
        let payload = firedrill_targets::payload(salt, payload_bytes);
        WorkloadClient {
            config,
            run_id,
            payload,
            conn: None,
            backoff: BACKOFF_MIN,
            retry_at: None,
            route: None,
            outbox: false,
        }
    }

    /// The same client, writing each entry's outbox row with it.
    pub fn with_outbox(mut self, outbox: bool) -> Self {
        self.outbox = outbox;
        self
    }

    /// The same client, following `route` when a recovery moves it.
    pub fn following(mut self, route: Arc<Route>) -> Self {
        self.route = Some((route, 0));
        self
    }

    /// A recovery moved the clients: drop the old connection, use the new
    /// config (the next write reconnects at once, no backoff).
    fn follow_route(&mut self) {
        let Some((route, seen)) = &mut self.route else {
            return;
        };
        let (g, config) = route.current();
        if g != *seen {
            *seen = g;
            if let Some(c) = config {
                self.config = c;
                self.conn = None;
                self.retry_at = None;
                self.backoff = BACKOFF_MIN;
            }
        }
    }

    /// Waits out the reconnect backoff. Called before an operation is
    /// invoked, so a client that is backing off issues nothing: its
    /// buckets stay empty (unhealthy), instead of counting a request that
    /// merely waited for the backoff as a slow success.
    pub async fn ready(&mut self) {
        if self.conn.is_none() {
            if let Some(at) = self.retry_at {
                tokio::time::sleep_until(at).await;
            }
        }
    }

    /// Writes ledger entry `seq`, giving up at `deadline`.
    ///
    /// - `Ok`: the INSERT's commit was acknowledged.
    /// - `Fail`: definitely not applied: no connection could be made, or the
    ///   server answered with an ERROR (the statement's transaction aborted).
    /// - `Unknown`: sent, but the answer never came (timeout, reset, lost
    ///   connection, or a FATAL that may follow a local commit, as when a
    ///   backend waiting for a synchronous standby is terminated).
    pub async fn write(&mut self, seq: u64, deadline: Instant) -> Outcome {
        self.follow_route();
        if self.conn.as_ref().is_some_and(|(c, _)| c.is_closed()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt = async {
                let client = connect(&self.config, left).await?;
                let sql = if self.outbox { INSERT_WITH_OUTBOX } else { INSERT };
                let stmt = client.prepare(sql).await.map_err(|e| e.to_string())?;
                Ok::<_, String>((client, stmt))
            };
            match timeout(left, attempt).await {
                Ok(Ok(c)) => {
                    self.conn = Some(c);
                    self.backoff = BACKOFF_MIN;
                    self.retry_at = None;
                }
                _ => {
                    self.retry_at = Some(Instant::now() + self.backoff);
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                    return Outcome::Fail;
                }
            }
        }
        let Some((client, stmt)) = self.conn.as_ref() else {
            return Outcome::Fail;
        };
        let seq_i = seq as i64;
        let key = seq.to_string();
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = if self.outbox {
            vec![&self.run_id, &seq_i, &self.payload, &key]
        } else {
            vec![&self.run_id, &seq_i, &self.payload]
        };
        let fut = client.execute(stmt, &params);
        match tokio::time::timeout_at(deadline, fut).await {
            Ok(Ok(_)) => Outcome::Ok,
            Ok(Err(e)) => {
                let outcome = classify(&e);
                if outcome == Outcome::Unknown || client.is_closed() {
                    self.conn = None;
                }
                if let Some(db) = e.as_db_error() {
                    if db.code() == &SqlState::READ_ONLY_SQL_TRANSACTION {
                        // Connected to a node that has since become a standby
                        // (or never was writable): find the primary again.
                        self.conn = None;
                    }
                }
                outcome
            }
            Err(_) => {
                // The connection is now in an unknown state: drop it.
                self.conn = None;
                Outcome::Unknown
            }
        }
    }
}

fn classify(e: &tokio_postgres::Error) -> Outcome {
    match e.as_db_error() {
        Some(db) => match db.severity() {
            "ERROR" => Outcome::Fail,
            _ => Outcome::Unknown,
        },
        None => Outcome::Unknown,
    }
}

/// Heartbeat writer for predicted RPO: bumps this run's counter on the
/// primary. The engine notes when each value was acknowledged.
pub struct Heartbeat {
    config: Config,
    run_id: String,
    conn: Option<Client>,
}

impl Heartbeat {
    pub fn new(config: Config, run_id: String) -> Self {
        Heartbeat {
            config,
            run_id,
            conn: None,
        }
    }

    pub async fn beat(&mut self, n: i64, limit: Duration) -> bool {
        if self.conn.as_ref().is_none_or(|c| c.is_closed()) {
            self.conn = connect(&self.config, limit).await.ok();
        }
        let Some(c) = &self.conn else { return false };
        let r = timeout(
            limit,
            c.execute(
                "UPDATE firedrill_heartbeat SET n = $2 WHERE run_id = $1",
                &[&self.run_id, &n],
            ),
        )
        .await;
        match r {
            Ok(Ok(1)) => true,
            _ => {
                self.conn = None;
                false
            }
        }
    }
}

/// Reads the heartbeat counter replayed on one standby.
pub struct HeartbeatReader {
    node: PgNode,
    run_id: String,
    conn: Option<Client>,
}

impl HeartbeatReader {
    pub fn new(node: PgNode, run_id: String) -> Self {
        HeartbeatReader {
            node,
            run_id,
            conn: None,
        }
    }
    pub fn name(&self) -> &str {
        &self.node.name
    }

    pub async fn read(&mut self, limit: Duration) -> Option<i64> {
        if self.conn.as_ref().is_none_or(|c| c.is_closed()) {
            self.conn = connect(&self.node.config, limit).await.ok();
        }
        let c = self.conn.as_ref()?;
        match timeout(
            limit,
            c.query_opt(
                "SELECT n FROM firedrill_heartbeat WHERE run_id = $1",
                &[&self.run_id],
            ),
        )
        .await
        {
            Ok(Ok(Some(row))) => Some(row.get(0)),
            Ok(Ok(None)) => None,
            _ => {
                self.conn = None;
                None
            }
        }
    }
}
