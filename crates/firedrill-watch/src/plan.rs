//! The validated objectives: runtime types, separate from what TOML
//! deserializes into, so the probes never see an unchecked value.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::kind::WatchStore;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Plan {
    pub path: PathBuf,
    pub settings: Settings,
    pub domains: Vec<WatchedDomain>,
    /// The run history, for restore tests; set by whoever has it (the
    /// binary), None: their age is unknown (`+Inf`).
    pub restore_history: Option<crate::restore_test::HistoryHandle>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub interval: Duration,
    pub timeout: Duration,
    pub listen: SocketAddr,
    /// Fraction of the objective for the "approaching" ticket.
    pub approaching: f64,
    /// `for:` of the threshold alerts.
    pub for_: Duration,
    /// Target fraction of time within the objective (the SLO).
    pub compliance: f64,
    pub period: Duration,
}

#[derive(Debug, Clone)]
pub struct WatchedDomain {
    pub name: String,
    pub store_name: String,
    /// The store's own validated options; it opens the probe.
    pub store: Arc<dyn WatchStore>,
    pub credentials: Credentials,
    pub objectives: Vec<Objective>,
    /// `[domain.restore_test]`: the drills that prove its backups restore.
    pub restore_test: Option<crate::restore_test::RestoreTestPlan>,
}

impl WatchedDomain {
    /// Every source some objective of this domain asks for.
    pub fn wants(&self, s: Source) -> bool {
        self.objectives.iter().any(|o| o.sources.contains(&s))
    }
}

/// A secret read from the environment or a file. Debug never shows it.
#[derive(Clone)]
pub struct Credentials {
    password: Option<String>,
}

impl Credentials {
    pub fn new(password: Option<String>) -> Self {
        Credentials { password }
    }
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.password {
            Some(_) => f.write_str("Credentials(<redacted>)"),
            None => f.write_str("Credentials(none)"),
        }
    }
}

/// The failure model an objective covers, by name (`node_loss`, ...).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Disruption(pub String);

#[derive(Debug, Clone)]
pub struct Objective {
    pub disruption: Disruption,
    pub rpo: Option<Duration>,
    pub rto: Option<Duration>,
    pub sources: Vec<Source>,
    /// Nodes that survive the disruption (promotion candidates); None = all.
    pub nodes: Option<Vec<String>>,
}

impl Objective {
    pub fn counts(&self, node: &str) -> bool {
        self.nodes
            .as_ref()
            .is_none_or(|ns| ns.iter().any(|n| n == node))
    }
}

/// Where an exposure estimate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// Age of the newest firedrill heartbeat replayed on a standby.
    Heartbeat,
    /// The store's own replication lag (pg_stat_replication, Redis offsets).
    ReplicationLag,
    /// Age of the last WAL segment archived (point-in-time recovery).
    Archive,
    /// Age of the newest completed backup (pgBackRest).
    Backup,
    /// etcd: committed entries live on a quorum while a leader exists.
    Raft,
    /// Kafka: how long a partition's in-sync replicas have been fewer than
    /// its `min.insync.replicas`.
    Isr,
    /// PostgreSQL: how far a CDC connector's logical slot is behind the
    /// WAL (an outbox's predicted gap).
    Cdc,
}

impl Source {
    pub const ALL: [Source; 7] = [
        Source::Heartbeat,
        Source::ReplicationLag,
        Source::Archive,
        Source::Backup,
        Source::Raft,
        Source::Isr,
        Source::Cdc,
    ];
    pub fn parse(s: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|x| x.as_str() == s)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Heartbeat => "heartbeat",
            Source::ReplicationLag => "replication_lag",
            Source::Archive => "archive",
            Source::Backup => "backup",
            Source::Raft => "raft",
            Source::Isr => "isr",
            Source::Cdc => "cdc",
        }
    }
}
