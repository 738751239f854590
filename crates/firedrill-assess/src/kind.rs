//! The seam between assess and the stores: assess derives, composes and
//! judges, but never names a store. Each store's folder gives an
//! [`AssessKind`] (its settings in force, how they can disagree with the
//! declaration, a lab like the declared domain) and the automatic
//! [`FailoverKind`]s it brings (Patroni for PostgreSQL, Sentinel for
//! Redis, ...): their settings, the RTO bound they allow, how to tune them.
//! The binary passes them all as one [`Knowledge`].

use crate::derive::Bound;
use crate::model::Domain;
use firedrill_watch::board::Extras;
use firedrill_watch::plan::WatchedDomain;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The type of a mechanism's setting, as the file writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingType {
    /// `"30s"`, `"1500ms"`.
    Duration,
    Bool,
    Text,
}

/// One setting of a failover mechanism (`ttl` of Patroni).
#[derive(Debug, Clone, Copy)]
pub struct SettingDef {
    pub key: &'static str,
    pub ty: SettingType,
    /// The mechanism's own default, in the file's syntax; `None`: unset
    /// unless declared.
    pub default: Option<&'static str>,
}

impl SettingDef {
    /// The default as a value.
    pub fn default_param(&self) -> Option<Param> {
        let d = self.default?;
        Some(match self.ty {
            SettingType::Bool => Param::Bool(d == "true"),
            SettingType::Duration => Param::Dur(
                d.parse::<firedrill_spec::Dur>()
                    .map(|x| x.0)
                    .unwrap_or_default(),
            ),
            SettingType::Text => Param::Text(d.to_string()),
        })
    }
}

/// A mechanism at its defaults.
pub fn defaults(m: &dyn FailoverKind) -> Params {
    Params(
        m.settings()
            .iter()
            .filter_map(|s| Some((s.key.to_string(), s.default_param()?)))
            .collect(),
    )
}

/// A setting's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Dur(Duration),
    Bool(bool),
    Text(String),
}

/// A mechanism's settings, declared or defaulted.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Params(pub BTreeMap<String, Param>);

impl Params {
    /// A duration setting (zero when absent: validation fills defaults).
    pub fn dur(&self, key: &str) -> Duration {
        match self.0.get(key) {
            Some(Param::Dur(d)) => *d,
            _ => Duration::ZERO,
        }
    }
    pub fn secs(&self, key: &str) -> f64 {
        self.dur(key).as_secs_f64()
    }
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.0.get(key), Some(Param::Bool(true)))
    }
    pub fn text(&self, key: &str) -> Option<&str> {
        match self.0.get(key) {
            Some(Param::Text(t)) => Some(t),
            _ => None,
        }
    }
    pub fn set_secs(&mut self, key: &str, v: f64) {
        self.0.insert(
            key.to_string(),
            Param::Dur(Duration::from_secs_f64(v.max(0.0))),
        );
    }
}

/// An automatic failover mechanism (`[domain.failover] kind = "patroni"`).
#[async_trait::async_trait]
pub trait FailoverKind: Send + Sync {
    /// Its name in the file.
    fn name(&self) -> &'static str;
    /// How advice names it (`Patroni`, `Redis Sentinel`).
    fn title(&self) -> &'static str;
    /// The store kinds it fails over.
    fn stores(&self) -> &'static [&'static str];
    /// Its settings, with their defaults.
    fn settings(&self) -> &'static [SettingDef];
    /// The RTO bound of losing the primary (leader), with its trace.
    fn rto(&self, p: &Params) -> Bound;
    /// Why a failover may lose acknowledged writes whatever the
    /// replication (Kafka's unclean election), if it may.
    fn loses_acknowledged(&self, _p: &Params) -> Option<String> {
        None
    }
    /// The settings that stop it losing acknowledged writes, and how to
    /// say it, when [`FailoverKind::loses_acknowledged`] says it may.
    fn lossless(&self, _p: &Params) -> Option<(Params, String)> {
        None
    }
    /// The smallest change of settings whose bound fits RTO ≤ `t` s, and
    /// how to say it; `None` when none does.
    fn tune(&self, p: &Params, t: f64) -> Option<(Params, String)>;
    /// The mechanism's settings in force, read from its own API (named by
    /// a declared setting) within `timeout`: name → value.
    async fn read_settings(
        &self,
        _p: &Params,
        _timeout: Duration,
    ) -> Result<BTreeMap<String, String>, String> {
        Ok(BTreeMap::new())
    }
    /// Where the declared settings and the ones read disagree.
    fn mismatches(&self, _p: &Params, _settings: &BTreeMap<String, String>) -> Vec<Mismatch> {
        Vec::new()
    }
    /// A lab of the mechanism itself (a Patroni cluster), when it is one.
    fn lab(&self, _d: &Domain, _p: &Params) -> Option<LabSketch> {
        None
    }
}

/// The figures a setting moves, so a mismatch puts only their rows at
/// risk (a failover timing says nothing of the data a restore loses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Moves {
    Rpo,
    Rto,
    Both,
}

impl Moves {
    pub fn rpo(self) -> bool {
        self != Moves::Rto
    }
    pub fn rto(self) -> bool {
        self != Moves::Rpo
    }
}

/// A disagreement between the declaration and the server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mismatch {
    pub what: String,
    /// The change that makes them agree.
    pub fix: String,
    pub moves: Moves,
    /// The setting governs a restore from backups, not a failover: only
    /// rows recovered by a restore (corruption, total loss) are affected,
    /// and only those when false.
    pub restore: bool,
}

/// A lab like a declared domain, for the drill advice proposes.
#[derive(Debug, Clone, Default)]
pub struct LabSketch {
    /// The `[lab]` body after `name = ...` (kind, topology, mechanisms,
    /// their sub-tables).
    pub table: String,
    /// The store fails over by itself (`automatic = true` recovery).
    pub automatic: bool,
    /// A corruption drill's fault steps and recovery (`[[drill.faults]]`
    /// and `[drill.recovery]`), when the store has data-disaster faults.
    pub corruption: Option<String>,
}

/// What assess knows of one store kind.
#[async_trait::async_trait]
pub trait AssessKind: Send + Sync {
    /// The kind as written in `[domain.store] kind = "..."`.
    fn kind(&self) -> &'static str;
    /// The backup tool advice proposes for point-in-time recovery.
    fn pitr_tool(&self) -> Option<&'static str> {
        None
    }
    /// The store's own setting that makes every commit wait for `quorum`
    /// of `standbys`, for advice.
    fn sync_setting(&self, _quorum: u32, _standbys: &[String]) -> Option<String> {
        None
    }
    /// The settings in force, read from the store within `timeout`, or
    /// from what its probe found this round (`extras`): name → value.
    async fn read_settings(
        &self,
        _d: &Domain,
        _w: &WatchedDomain,
        _extras: &Extras,
        _timeout: Duration,
    ) -> Result<BTreeMap<String, String>, String> {
        Ok(BTreeMap::new())
    }
    /// Where the declaration and the settings read disagree.
    fn mismatches(&self, _d: &Domain, _settings: &BTreeMap<String, String>) -> Vec<Mismatch> {
        Vec::new()
    }
    /// A lab built like `d`.
    fn lab(&self, d: &Domain) -> LabSketch;
}

/// Every store kind and failover mechanism this build knows.
#[derive(Clone, Default)]
pub struct Knowledge {
    pub kinds: Vec<&'static dyn AssessKind>,
    pub failovers: Vec<&'static dyn FailoverKind>,
}

impl Knowledge {
    pub fn kind(&self, kind: &str) -> Option<&'static dyn AssessKind> {
        self.kinds.iter().copied().find(|k| k.kind() == kind)
    }
    /// The mechanisms a store kind can declare.
    pub fn failovers_of(&self, kind: &str) -> Vec<&'static dyn FailoverKind> {
        self.failovers
            .iter()
            .copied()
            .filter(|f| f.stores().contains(&kind))
            .collect()
    }
    pub fn failover(&self, name: &str) -> Option<&'static dyn FailoverKind> {
        self.failovers.iter().copied().find(|f| f.name() == name)
    }
}

impl fmt::Debug for Knowledge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Knowledge")
            .field(
                "kinds",
                &self.kinds.iter().map(|k| k.kind()).collect::<Vec<_>>(),
            )
            .field(
                "failovers",
                &self.failovers.iter().map(|k| k.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// `10s`, `1500ms`: a duration as a spec writes it.
pub fn spec_dur(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}
