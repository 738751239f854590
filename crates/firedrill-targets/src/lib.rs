//! The target traits: what the engine asks of any store. The adapters
//! live in their store's folder in `firedrill-stores`.
//!
//! A target knows three things about its store: how a workload client
//! writes one ledger entry (and what the answer means: ok, fail or
//! unknown), how to read back what survived (the audit), and how to
//! inspect and steer the nodes (roles, lag, promotion, replication cut).
//! The engine sees every store through [`Target`], so a drill, its fault
//! schedule and its analysis are the same whatever the store.

pub mod http;

use async_trait::async_trait;
use firedrill_ledger::Outcome;
pub use firedrill_ledger::Position;
use std::time::Duration;
use tokio::time::Instant;

/// A workload client's payload: xorshift bytes seeded by the client, so
/// payloads are incompressible-ish and differ between clients. The same
/// for every store, so drills compare like with like.
pub fn payload(salt: u64, len: usize) -> Vec<u8> {
    let mut x = salt.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Role of a node as the store reports it right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveRole {
    /// Accepts writes (PostgreSQL primary, Raft leader, Redis master).
    Primary,
    /// Replicates from the primary (standby, follower, replica).
    Standby,
    /// Not reachable (crashed, stopped, paused or partitioned).
    Unreachable,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{node}: {msg}")]
    Node { node: String, msg: String },
    #[error("bad connection settings for {node}: {msg}")]
    Config { node: String, msg: String },
    #[error("{kind} targets cannot {what}")]
    Unsupported {
        kind: &'static str,
        what: &'static str,
    },
    #[error("{0}")]
    Other(String),
}

/// One node as a trial addresses it, in the store's own syntax (a libpq
/// conninfo, `host:port`, …).
#[derive(Debug, Clone)]
pub struct TargetNode {
    pub name: String,
    /// firedrill's own path: roles, lag, promotion, audit. Never through a
    /// fault proxy.
    pub control: String,
    /// The workload's path (through the clients' proxy in a proxied lab).
    pub client: String,
}

/// A failover signal from the store's own control plane (a new Raft
/// leader, Sentinel's `+switch-master`, a Patroni leader change). The first
/// one after the disaster is the `detected` phase.
#[derive(Debug, Clone, PartialEq)]
pub struct FailoverSignal {
    /// What was seen, for the timeline ("+odown master n1", "leader n2").
    pub how: String,
    /// The node that is primary now, when the signal names one.
    pub new_primary: Option<String>,
}

/// Everything the engine does to a store.
#[async_trait]
pub trait Target: Send + Sync {
    /// `postgres`, `etcd`, `redis`: for messages and run records.
    fn kind(&self) -> &'static str;
    /// Distinguishes this trial's data from any other run's.
    fn run_id(&self) -> &str;
    /// Node names, in the order the spec or lab gave them.
    fn node_names(&self) -> Vec<String>;

    /// The role of every node, asked concurrently; a node that does not
    /// answer within `limit` is unreachable.
    async fn roles(&self, limit: Duration) -> Vec<(String, LiveRole)>;
    async fn role(&self, node: &str, limit: Duration) -> LiveRole {
        self.roles(limit)
            .await
            .into_iter()
            .find(|(n, _)| n == node)
            .map(|(_, r)| r)
            .unwrap_or(LiveRole::Unreachable)
    }

    /// Prepares the store for this run (tables, heartbeat), on the primary.
    async fn setup(&self, primary: &str) -> Result<(), TargetError>;
    /// Waits until `node` has what `setup` wrote, so lag sampling can start.
    async fn wait_replicated(&self, node: &str, limit: Duration) -> Result<(), TargetError>;

    /// A workload client (one connection). `primary` is the node to try
    /// first; clients find a new primary by themselves after a failover.
    fn client(
        &self,
        primary: &str,
        id: u64,
        payload_bytes: usize,
        op_timeout: Duration,
    ) -> Result<Box<dyn WorkloadClient>, TargetError>;
    /// The heartbeat writer for predicted RPO, if the store has one.
    fn heartbeat(&self, primary: &str) -> Result<Option<Box<dyn Heartbeat>>, TargetError>;
    /// Reads the heartbeat as replicated to `node`.
    fn heartbeat_reader(&self, node: &str)
        -> Result<Option<Box<dyn HeartbeatReader>>, TargetError>;
    /// A consumer group reading the run's records for the whole trial, for
    /// a stream: when it delivers each record gives consumer_rto,
    /// redelivered and skipped (DESIGN.md, "Streams"). It follows the
    /// target's failover itself.
    fn consumer(&self) -> Result<Option<Box<dyn StreamConsumer>>, TargetError> {
        Ok(None)
    }
    /// The lag the store reports about itself for `node` (MM2's
    /// heartbeats), sampled beside firedrill's own heartbeat.
    fn reported_lag(&self, _node: &str) -> Result<Option<Box<dyn ReportedLag>>, TargetError> {
        Ok(None)
    }

    /// The nodes a role the store resolves itself stands for right now
    /// (Kafka's `leader` of `partition`, its active `controller`).
    async fn resolve_role(
        &self,
        role: &str,
        _partition: Option<u32>,
    ) -> Result<Vec<String>, TargetError> {
        Err(TargetError::Other(format!(
            "a {} target has no role {role:?}",
            self.kind()
        )))
    }

    /// Standbys the primary waits for before acknowledging.
    async fn sync_standbys(&self, _primary: &str) -> Result<Vec<String>, TargetError> {
        Ok(Vec::new())
    }
    /// How much of the primary's history `node` holds (WAL position,
    /// replication offset, raft index), for picking the most advanced.
    async fn position(&self, _node: &str) -> Option<u64> {
        None
    }
    /// Starts a killed process of the store again (`recovery.restart`)
    /// and returns once it serves.
    async fn restart(&self, _node: &str) -> Result<(), TargetError> {
        Err(TargetError::Unsupported {
            kind: self.kind(),
            what: "restart a process (recovery.restart)",
        })
    }
    /// Makes `node` the primary and returns once it accepts writes.
    async fn promote(&self, _node: &str) -> Result<(), TargetError> {
        Err(TargetError::Unsupported {
            kind: self.kind(),
            what: "promote a node (use recovery.automatic)",
        })
    }
    /// What `cut_replication` must put back to heal (saved before the cut).
    async fn replication_source(&self, _node: &str) -> Result<String, TargetError> {
        Err(TargetError::Unsupported {
            kind: self.kind(),
            what: "cut replication",
        })
    }
    /// Stops `node` receiving from its primary; returns when in effect.
    async fn cut_replication(&self, _node: &str) -> Result<(), TargetError> {
        Err(TargetError::Unsupported {
            kind: self.kind(),
            what: "cut replication",
        })
    }

    /// Heals a replication cut: puts back what `replication_source` saved.
    async fn restore_replication(&self, _node: &str, _saved: &str) -> Result<(), TargetError> {
        Err(TargetError::Unsupported {
            kind: self.kind(),
            what: "cut replication",
        })
    }

    /// Every ledger id of this run present on `node` (and intact, for a
    /// store that can tell).
    async fn audit(&self, node: &str) -> Result<Vec<u64>, TargetError>;
    /// The audit with the ids present but garbled set apart. A store that
    /// cannot tell a garbled row from a good one has none.
    async fn audit_read(&self, node: &str) -> Result<AuditRead, TargetError> {
        Ok(AuditRead {
            ids: self.audit(node).await?,
            garbled: Vec::new(),
        })
    }
    /// Removes this run's data (drills against the user's own store).
    async fn cleanup(&self, node: &str) -> Result<(), TargetError>;
    /// "PostgreSQL 15.18", "etcd 3.4.23", …
    async fn server_version(&self, node: &str) -> Result<String, TargetError>;

    /// Subscribes to the store's own failover signals, if it has any. The
    /// engine opens it before the disaster and reads it until the end.
    async fn failover_watch(&self) -> Option<Box<dyn FailoverWatch>> {
        None
    }

    /// Runs a data disaster's bad transaction on `node` (the primary) and
    /// returns what it destroyed, as the store identifies it.
    async fn corrupt(
        &self,
        _node: &str,
        _c: &Corruption,
    ) -> Result<firedrill_ledger::Damage, TargetError> {
        Err(TargetError::Unsupported {
            kind: self.kind(),
            what: "run a corruption fault",
        })
    }

    /// Takes in a node a recovery started outside the trial's nodes (a
    /// restore into a new node): from now on it is one of the store's
    /// nodes (roles, audit). With `move_clients`, the workload's clients
    /// leave the nodes they had and use it alone, as an application is
    /// repointed at a restored server; without, they stay where they are
    /// (a restore test's copy beside a healthy primary).
    async fn adopt(&self, _node: &TargetNode, _move_clients: bool) -> Result<(), TargetError> {
        Err(TargetError::Unsupported {
            kind: self.kind(),
            what: "take in a restored node",
        })
    }

    /// Why the store cannot recover on its own, when it can tell (a lost
    /// quorum): asked at the audit of a trial that never recovered, so the
    /// verdict says why instead of only that it did not.
    async fn unrecovered_reason(&self) -> Option<String> {
        None
    }
}

/// One workload client: one connection, reconnecting with a short backoff.
#[async_trait]
pub trait WorkloadClient: Send {
    /// Waits out the reconnect backoff, before an operation is invoked.
    async fn ready(&mut self);
    /// Writes ledger entry `seq`, giving up at `deadline`. `Ok` only when
    /// the store acknowledged it durably by its own definition; `Fail` when
    /// it was definitely not applied; `Unknown` otherwise.
    async fn write(&mut self, seq: u64, deadline: Instant) -> Outcome;
    /// Where the store put the write `write` last acknowledged, in its own
    /// order (etcd: the cluster and revision of the put), for stores that
    /// say: a restore's loss is then checked against the store's own
    /// point, not only against the clock.
    /// Where this client writes from, when the store has several homes
    /// (an active-active mirror's regions): the figures are also given per
    /// home, so B's own producers are seen apart from A's.
    fn home(&self) -> Option<String> {
        None
    }
    fn acked_position(&self) -> Option<Position> {
        None
    }
}

/// Writes an increasing counter on the primary; the engine notes when each
/// value was acknowledged.
#[async_trait]
pub trait Heartbeat: Send {
    async fn beat(&mut self, n: i64, limit: Duration) -> bool;
}

/// Reads the heartbeat counter as one node has it.
#[async_trait]
pub trait HeartbeatReader: Send {
    async fn read(&mut self, limit: Duration) -> Option<i64>;
}

/// A lag figure the store itself publishes.
#[async_trait]
pub trait ReportedLag: Send {
    /// Where the figure comes from, for the report.
    fn source(&self) -> String;
    /// The lag now, when it can be read within `limit`.
    async fn read(&mut self, limit: Duration) -> Option<Duration>;
}

/// An outbox's delivery path (DESIGN.md, "Capabilities"): the log
/// Debezium publishes the source's events to, and the consumer firedrill
/// runs to apply each event to a projection, idempotently or not.
#[async_trait]
pub trait OutboxPipeline: Send + Sync {
    /// The log, the projection and the consumer, for the report.
    fn describe(&self) -> String;
    /// Starts the consumer for the source's run `run_id` (its events
    /// carry it), from the start of the log.
    async fn start(&self, run_id: &str) -> Result<(), TargetError>;
    /// What the log and the projection hold now; the consumer runs on.
    async fn read(
        &self,
        limit: Duration,
    ) -> Result<firedrill_ledger::outbox::OutboxRead, TargetError>;
    /// Stops the consumer and removes the run's projection.
    async fn stop(&self);
}

/// The drill's consumer group on a stream.
#[async_trait]
pub trait StreamConsumer: Send {
    /// The group id, and the settings that move its figures.
    fn describe(&self) -> (String, String);
    /// The seqs delivered within `limit` (none is an answer too).
    async fn poll(&mut self, limit: Duration) -> Vec<u64>;
    /// What it did since the last call that explains its figures (where
    /// it resumed after a failover, from which offsets).
    fn notes(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// A stream of failover signals.
#[async_trait]
pub trait FailoverWatch: Send {
    /// The next signal, or None when the watch has ended.
    async fn next(&mut self) -> Option<FailoverSignal>;
}

/// Opens a [`Target`] for one trial. The store registry gives the engine
/// one of these, so the engine never names a kind of store.
pub trait TargetOpener: Send + Sync + std::fmt::Debug {
    /// The kind of store, for messages and run records.
    fn kind(&self) -> &'static str;
    /// `password` comes from the environment or a file, never from a spec.
    fn open(
        &self,
        nodes: &[TargetNode],
        password: Option<&str>,
        run_id: &str,
    ) -> Result<Box<dyn Target>, TargetError>;
}

/// A data disaster's bad transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Corruption {
    /// Deletes these of the run's rows, in one transaction.
    DeleteRows { rows: RowPick },
    /// Garbles the payload of these of the run's rows, in one transaction:
    /// the rows stay, holding bytes the workload never wrote.
    UpdateRows { rows: RowPick },
    /// Empties the ledger table.
    Truncate,
    /// Drops the ledger table.
    DropTable,
    /// The user's own statement, run in one transaction. `source` names
    /// where it came from (its file), for the record; the statement itself
    /// is never logged.
    Sql { statement: String, source: String },
}

/// Which of the run's rows a corruption hits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RowPick {
    /// This share of them, spread evenly over the run.
    Fraction(f64),
    /// Those whose seq is in `[from, to]`.
    Seqs { from: u64, to: u64 },
}

/// What an audit read back from one node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditRead {
    /// Ids present and intact.
    pub ids: Vec<u64>,
    /// Ids present whose content is not what the workload wrote (a
    /// garbled row). Not in `ids`: an acknowledged write whose bytes are
    /// wrong did not survive, so it counts as lost.
    pub garbled: Vec<u64>,
}

/// One archived WAL segment that a restore past the present needs, found
/// in the lab's backup repository.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchivedSegment {
    /// The segment's name (`000000010000000000000004`).
    pub segment: String,
    /// Its file in the repository.
    pub path: std::path::PathBuf,
    /// Where a fault may move it aside (same filesystem, in the lab).
    pub aside: std::path::PathBuf,
}

/// Where a restore should stop.
#[derive(Debug, Clone, PartialEq)]
pub enum RestorePoint {
    /// Just before this transaction (exclusive).
    BeforeXid(u64),
    /// The end of the archive.
    Latest,
    /// A wall-clock time, RFC 3339.
    Time(String),
}

/// What a restore is asked to do.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    pub point: RestorePoint,
    /// Force the current WAL segment into the archive first, and wait.
    pub flush_archive: bool,
    /// Over the node's own data directory, or into a scratch node.
    pub into: RestoreInto,
    /// Told of a scratch node's server the moment its pid exists.
    pub scratch: Option<ScratchHook>,
}

/// Where a restore puts the restored server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestoreInto {
    /// Over the node's own data directory: the clients find it where it was.
    #[default]
    InPlace,
    /// Into a new node with its own data directory and port.
    NewNode,
}

/// Whoever runs the drill owes a scratch node's teardown on every exit
/// path, and the watchdog's if firedrill dies: a restore tells it of the
/// server before it waits on it.
pub trait ScratchGuard: Send + Sync {
    fn started(&self, node: &str, proc: firedrill_proc::ProcHandle);
    /// The trial is over (or ending): start no scratch server any more.
    fn closed(&self) -> bool {
        false
    }
}

/// A [`ScratchGuard`] a request can carry (cloned with it, shown by name).
#[derive(Clone)]
pub struct ScratchHook(pub std::sync::Arc<dyn ScratchGuard>);

impl std::fmt::Debug for ScratchHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScratchHook")
    }
}

/// What a restore did, its phases as instants (the engine puts them on the
/// trial's clock).
#[derive(Debug, Clone, Default)]
pub struct RestoreReport {
    /// How the tool was told the target (`--type=xid --target=925 ...`).
    pub tool_target: String,
    pub flushed: Option<std::time::Instant>,
    pub fetched: Option<std::time::Instant>,
    pub replayed: Option<std::time::Instant>,
    pub promoted: Option<std::time::Instant>,
    /// The server's log says it stopped at the target.
    pub reached: bool,
    /// The server's own words about where it stopped, or why it failed.
    pub detail: String,
    /// The point restored in the store's own order (etcd: the snapshot's
    /// cluster and revision), when the store has one.
    pub position: Option<Position>,
    /// The node that accepts writes after the restore, when the store
    /// elects it rather than taking the one restored (an etcd leader).
    pub primary: Option<String>,
    /// A restore into a new node: how the drill reaches it.
    pub new_node: Option<TargetNode>,
}

/// A backup a drill's `backup` step took.
#[derive(Debug, Clone, Default)]
pub struct BackupReport {
    /// The tool's name for it (a snapshot file).
    pub label: String,
    /// Its point in the store's own order (etcd: the snapshot's revision).
    pub position: Option<Position>,
    /// What the tool said of it.
    pub detail: String,
}

/// Restores a node of a lab from its backups, and takes them. A lab's, not
/// a target's: it stops and starts the node's server, whose pids the lab
/// records, and keeps its backups in the lab directory.
#[async_trait]
pub trait Restorer: Send + Sync {
    async fn restore(&self, node: &str, req: &RestoreRequest)
        -> Result<RestoreReport, TargetError>;
    /// Takes a backup now, of `node`'s data, while the workload goes on (a
    /// drill's `backup` step).
    async fn backup(&self, _node: &str) -> Result<BackupReport, TargetError> {
        Err(TargetError::Unsupported {
            kind: "this lab's",
            what: "take a backup during a drill",
        })
    }
    /// Tears down every scratch node the lab's restores made (server, data
    /// directory, record), after waiting for a restore still running;
    /// returns their names. Idempotent.
    async fn discard_all(&self) -> Result<Vec<String>, TargetError> {
        Ok(Vec::new())
    }

    /// Makes sure the archive holds WAL written since the backup (it
    /// switches to a new segment and waits for the old one to land), and
    /// names that segment: a restore past now must replay it.
    async fn needed_segment(&self, _node: &str) -> Result<ArchivedSegment, TargetError> {
        Err(TargetError::Other(
            "this lab's backups cannot name an archived WAL segment".into(),
        ))
    }

    /// The backup tool's own check of its repository (it never restores),
    /// shown beside a restore's verdict. None: the tool has no such check.
    async fn check(&self) -> Option<firedrill_ledger::BackupCheck> {
        None
    }
}
