//! Version 2 of the objectives file, as written: the architecture beside
//! the objectives (the mechanisms each domain declares, the failure
//! domains, custom disruptions, capabilities). `watch`, `rules` and
//! `status` accept and ignore these tables, so one file serves every
//! command; `firedrill assess` validates them (firedrill-assess), keeping
//! each value's position for its diagnostics.

use firedrill_spec::Dur;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// `[topology]`: the failure domains, as regions and the zones in each.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TopologySpec {
    #[serde(default)]
    pub regions: BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
}

/// `[[disruption]]`: a custom disruption and the failure domains (zones or
/// regions) it takes out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisruptionSpec {
    pub name: Spanned<String>,
    pub takes_out: Spanned<Vec<Spanned<String>>>,
    pub description: Option<String>,
}

/// `[domain.replication]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationSpec {
    /// `none`, `async`, `sync` or `quorum` (Raft).
    pub mode: Spanned<String>,
    /// sync: standbys that must confirm each commit (PostgreSQL `ANY k`,
    /// Kafka `min.insync.replicas - 1`); default 1.
    pub quorum: Option<Spanned<u32>>,
    /// sync: the standbys that may confirm (default: every other node).
    pub standbys: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `[domain.failover]`: what brings a replica into service: `kind`
/// (`manual`, or a mechanism a store brings, such as `patroni`) and its
/// settings. Each mechanism lists its own settings, so the keys are checked
/// by firedrill assess against the mechanism, not here.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct FailoverSpec(pub Spanned<BTreeMap<String, Spanned<toml::Value>>>);

/// `[domain.backups]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupsSpec {
    /// pgbackrest, wal-g, barman, rdb, snapshot, ...
    pub tool: Spanned<String>,
    /// Base backup period.
    pub interval: Spanned<Dur>,
    /// Continuous archiving (PITR): the longest a WAL segment waits.
    pub archive_timeout: Option<Spanned<Dur>>,
    pub retention: Option<Spanned<Dur>>,
    /// Expected restore time (fetch + replay + promote), if known.
    pub restore: Option<Spanned<Dur>>,
}

/// `[domain.placement]`: the failure domains the replicas span.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementSpec {
    /// Node name → zone.
    #[serde(default)]
    pub nodes: BTreeMap<String, Spanned<String>>,
    /// The zones, when nodes are not placed one by one.
    pub zones: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `[[capability]]`: a user-visible workflow over domains.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilitySpec {
    pub name: Spanned<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub depends: Vec<Spanned<DependencySpec>>,
    #[serde(default)]
    pub objectives: BTreeMap<String, Spanned<CapabilityObjectiveSpec>>,
}

/// One dependency of a capability.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DependencySpec {
    pub domain: Option<Spanned<String>>,
    pub capability: Option<Spanned<String>>,
    /// `must_survive` (default) or `rebuildable`.
    pub how: Option<Spanned<String>>,
    /// rebuildable: the domain it is rebuilt from.
    pub from: Option<Spanned<String>>,
    /// rebuildable: how long the rebuild takes.
    pub rebuild: Option<Spanned<Dur>>,
    /// Sequential: recovers only after these dependencies are back.
    pub after: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `[capability.objectives.<disruption>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilityObjectiveSpec {
    pub rpo: Option<Spanned<Dur>>,
    pub rto: Option<Spanned<Dur>>,
    pub disruption: Option<Spanned<String>>,
    pub drills: Option<Spanned<Vec<Spanned<String>>>>,
}
