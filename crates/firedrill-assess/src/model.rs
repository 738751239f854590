//! The validated architecture: runtime types, separate from what TOML
//! deserializes into, so derivation never sees an unchecked value.

use crate::kind::{FailoverKind, Knowledge, Params};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The failure models firedrill knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standard {
    Process,
    Node,
    Zone,
    Region,
    Corruption,
}

impl Standard {
    pub const ALL: [Standard; 5] = [
        Standard::Process,
        Standard::Node,
        Standard::Zone,
        Standard::Region,
        Standard::Corruption,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Standard::Process => "process",
            Standard::Node => "node",
            Standard::Zone => "zone",
            Standard::Region => "region",
            Standard::Corruption => "corruption",
        }
    }
    /// `node` and, as version 1 files name them, `node_loss`.
    pub fn parse(s: &str) -> Option<Standard> {
        let base = s.strip_suffix("_loss").unwrap_or(s);
        Standard::ALL.into_iter().find(|d| d.as_str() == base)
    }
}

/// What an objective covers.
#[derive(Debug, Clone, PartialEq)]
pub enum Disruption {
    Standard(Standard),
    /// A `[[disruption]]`: the zones it takes out (regions expanded).
    Custom {
        name: String,
        zones: Vec<String>,
    },
}

impl Disruption {
    pub fn name(&self) -> &str {
        match self {
            Disruption::Standard(s) => s.as_str(),
            Disruption::Custom { name, .. } => name,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Replication {
    /// Not declared: nothing can be derived from it.
    Undeclared,
    /// One copy: the node is the data.
    None,
    Async,
    /// Every commit waits for `quorum` of `standbys`.
    Sync {
        quorum: u32,
        standbys: Vec<String>,
    },
    /// Raft: a commit is on a majority of the members.
    Quorum,
}

/// What brings a replica into service.
#[derive(Clone)]
pub enum Failover {
    Undeclared,
    /// A human notices and promotes.
    Manual {
        response: Option<Duration>,
    },
    /// A mechanism of the store's ([`FailoverKind`]), with its settings.
    Automatic {
        kind: &'static dyn FailoverKind,
        params: Params,
    },
}

impl Failover {
    pub fn automatic(&self) -> Option<(&'static dyn FailoverKind, &Params)> {
        match self {
            Failover::Automatic { kind, params } => Some((*kind, params)),
            _ => None,
        }
    }
}

impl PartialEq for Failover {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Failover::Undeclared, Failover::Undeclared) => true,
            (Failover::Manual { response: a }, Failover::Manual { response: b }) => a == b,
            (
                Failover::Automatic { kind: a, params: p },
                Failover::Automatic { kind: b, params: q },
            ) => a.name() == b.name() && p == q,
            _ => false,
        }
    }
}

impl fmt::Debug for Failover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failover::Undeclared => f.write_str("Undeclared"),
            Failover::Manual { response } => f
                .debug_struct("Manual")
                .field("response", response)
                .finish(),
            Failover::Automatic { kind, params } => f
                .debug_struct("Automatic")
                .field("kind", &kind.name())
                .field("params", params)
                .finish(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Backups {
    pub tool: String,
    pub interval: Duration,
    pub archive_timeout: Option<Duration>,
    pub retention: Option<Duration>,
    pub restore: Option<Duration>,
}

/// One objective of a domain or capability under one disruption.
#[derive(Debug, Clone)]
pub struct Objective {
    /// The key as written (`node_loss`, `node`, `az-a-outage`).
    pub key: String,
    pub disruption: Disruption,
    pub rpo: Option<Duration>,
    pub rto: Option<Duration>,
    /// Drills whose recorded runs are this objective's evidence.
    pub drills: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Domain {
    pub name: String,
    /// The store kind (`postgres`, `redis`, ...).
    pub kind: String,
    pub nodes: Vec<String>,
    pub replication: Replication,
    pub failover: Failover,
    pub backups: Option<Backups>,
    /// Node → zone; empty when placement is not declared.
    pub zones: BTreeMap<String, String>,
    pub objectives: Vec<Objective>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// Every acknowledged write must survive: its RPO counts.
    MustSurvive,
    /// Rebuilt from another domain after the disruption: its RPO does not
    /// count, its rebuild adds to the RTO.
    Rebuildable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Domain(usize),
    Capability(usize),
}

#[derive(Debug, Clone)]
pub struct Dependency {
    pub name: String,
    pub target: Target,
    pub how: How,
    pub rebuild: Option<Duration>,
    pub from: Option<String>,
    /// Indices into the capability's dependencies this one waits for.
    pub after: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct Capability {
    pub name: String,
    pub depends: Vec<Dependency>,
    pub objectives: Vec<Objective>,
}

/// The whole validated file.
#[derive(Debug, Clone)]
pub struct Architecture {
    pub path: PathBuf,
    pub domains: Vec<Domain>,
    pub capabilities: Vec<Capability>,
    /// Zone → region (`None` without a `[topology]`).
    pub regions: BTreeMap<String, String>,
    /// Capabilities in an order where each comes after those it depends on.
    pub order: Vec<usize>,
    /// The store kinds and mechanisms the file was checked against.
    pub knowledge: Knowledge,
}

impl Architecture {
    pub fn region_of(&self, zone: &str) -> Option<&str> {
        self.regions.get(zone).map(String::as_str)
    }
}
