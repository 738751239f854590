//! The spec as written: what TOML deserializes into. Unknown keys are errors
//! everywhere (`deny_unknown_fields`), because a misspelt knob that is
//! silently ignored produces a drill that measures something else.

use crate::Dur;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use toml::Spanned;

/// One spec file. It may hold a lab, a drill, or both (the examples do, so
/// `lab up`, `drill` and `lab down` can all take the same file).
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    pub lab: Option<LabSpec>,
    pub drill: Option<DrillSpec>,
}

// ---------------------------------------------------------------- lab

/// `[lab]`: what every lab has. The keys of its kind of store (PostgreSQL's
/// `replication`, `[lab.redis]`, …) are collected in `options` and parsed,
/// with their own file:line:column, by that store's own config module; a
/// key no store claims is an error there.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LabSpec {
    /// Lab name: the state lives in `.firedrill/labs/<name>/` unless `dir` says otherwise.
    pub name: Spanned<String>,
    /// The kind of store; when absent, the registry's first (PostgreSQL in
    /// the default build).
    #[serde(default)]
    pub kind: Option<Spanned<String>>,
    /// Lab directory; default `.firedrill/labs/<name>`.
    pub dir: Option<PathBuf>,
    /// Unprivileged user the servers run as when firedrill runs as root.
    pub user: Option<String>,
    /// First port to try; by default free loopback ports are picked.
    pub base_port: Option<u16>,
    /// `proxied` puts a fault proxy in front of every node for client
    /// traffic and on every replication link, so network faults can cut or
    /// slow exactly one link. `netns` runs every node in its own network
    /// namespace on a lab bridge, so a partition is a kernel-level cut (its
    /// veth link set down); it needs root and iproute2.
    #[serde(default)]
    pub links: Links,
    /// `[[lab.member]]`: a lab of several labs, one per domain, each of
    /// its own kind (a capability drill's stores, started as one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub member: Vec<crate::MemberSpec>,
    /// `[[lab.region]]`: nodes of several members that are lost together.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub region: Vec<crate::RegionSpec>,
    /// Every other key: the store's own options.
    #[serde(flatten)]
    pub options: toml::Table,
}

impl LabSpec {
    /// The kind of store as written; absent means the registry's first.
    pub fn kind(&self) -> Option<&str> {
        self.kind.as_ref().map(|k| k.get_ref().as_str())
    }
    /// The store's options as its own config type. Validation has already
    /// checked them against the file (with positions); this re-reads them
    /// for running, so it only fails on a spec that skipped validation.
    pub fn options<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        options_as(&self.options)
    }
}

/// Parses a table of store options through TOML text, so that `Spanned`
/// fields (which only the TOML deserializer fills) work.
pub fn options_as<T: serde::de::DeserializeOwned>(t: &toml::Table) -> Result<T, String> {
    let text = toml::to_string(t).map_err(|e| e.to_string())?;
    toml::from_str(&text).map_err(|e| e.message().to_string())
}
#[derive(Debug, Clone, Copy, Deserialize, Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Links {
    #[default]
    Direct,
    Proxied,
    /// A network namespace per node, joined by a bridge.
    Netns,
}

impl Links {
    pub fn as_str(self) -> &'static str {
        match self {
            Links::Direct => "direct",
            Links::Proxied => "proxied",
            Links::Netns => "netns",
        }
    }
}

// ---------------------------------------------------------------- drill

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DrillSpec {
    pub name: Spanned<String>,
    /// Free text shown in reports.
    pub description: Option<String>,
    /// Default: the lab in the same file.
    pub target: Option<TargetSpec>,
    pub workload: WorkloadSpec,
    #[serde(default)]
    pub faults: Vec<FaultStep>,
    #[serde(default)]
    pub recovery: RecoverySpec,
    #[serde(default)]
    pub slo: SloSpec,
    pub objectives: Option<ObjectivesSpec>,
    #[serde(default = "one_trial")]
    pub trials: Spanned<u32>,
    /// `[[drill.targets]]`: a capability drill's domains, each a member
    /// of the file's lab.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<crate::DomainTargetSpec>,
    /// `[drill.capability]`: the business operation over the domains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<crate::CapabilitySpec>,
}

fn one_trial() -> Spanned<u32> {
    Spanned::new(0..0, 1)
}

/// `[drill.target]`: a lab, or explicit endpoints. The store's own target
/// options (Redis's `redis_write`, …) are collected in `options` and
/// checked by that store's config module.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct TargetSpec {
    /// Name of a lab started with `firedrill lab up`.
    pub lab: Option<Spanned<String>>,
    /// Store kind for explicit endpoints (the registry's first when absent).
    #[serde(default)]
    pub kind: Option<Spanned<String>>,
    /// Explicit endpoints: one per node.
    #[serde(default)]
    pub nodes: Vec<EndpointSpec>,
    /// Environment variable holding the password (never the password itself).
    pub password_env: Option<String>,
    /// File holding the password.
    pub password_file: Option<PathBuf>,
    /// Command that restores the store to healthy between trials (endpoints only).
    pub reset_command: Option<String>,
    /// Every other key: the store's own target options.
    #[serde(flatten)]
    pub options: toml::Table,
}

impl TargetSpec {
    /// The endpoints' kind as written; absent means the registry's first.
    pub fn kind(&self) -> Option<&str> {
        self.kind.as_ref().map(|k| k.get_ref().as_str())
    }
    /// The store's target options as its own config type (see [`LabSpec::options`]).
    pub fn options<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        options_as(&self.options)
    }
}
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    pub name: Spanned<String>,
    /// libpq key=value conninfo, without a password.
    pub conninfo: Spanned<String>,
    /// Data directory: its postmaster.pid gives the pid for process faults,
    /// and `pg_ctl -D` is used for `stop`.
    pub data_dir: Option<PathBuf>,
    /// A pid file, when the data directory is not readable.
    pub pid_file: Option<PathBuf>,
    /// The node's failure domain: a step's `zone` hits every node of it
    /// (in a capability drill, every domain's nodes of it: a region).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadMode {
    /// Open loop: a fixed arrival rate, whatever the store does.
    Rate,
    /// N clients, each issuing its next write as soon as the last one ended.
    #[default]
    Closed,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    #[serde(default)]
    pub mode: WorkloadMode,
    /// Closed loop: number of clients (connections).
    pub clients: Option<Spanned<u32>>,
    /// Open loop: operations per second.
    pub rate: Option<Spanned<f64>>,
    /// Open loop: cap on operations in flight (= connections).
    pub max_in_flight: Option<Spanned<u32>>,
    #[serde(default = "default_op_timeout")]
    pub op_timeout: Spanned<Dur>,
    #[serde(default = "default_warmup")]
    pub warmup: Dur,
    pub duration: Spanned<Dur>,
    /// Bytes of payload per write.
    #[serde(default = "default_payload")]
    pub payload_bytes: Spanned<u32>,
}

fn default_op_timeout() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(std::time::Duration::from_secs(1)))
}
fn default_warmup() -> Dur {
    Dur(std::time::Duration::from_secs(2))
}
fn default_payload() -> Spanned<u32> {
    Spanned::new(0..0, 64)
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    /// SIGKILL of the node's whole process tree at once, as in a machine crash.
    Kill,
    /// Fast shutdown.
    Stop,
    /// SIGSTOP of the node's process tree; healed by SIGCONT.
    Pause,
    /// SIGCONT: ends an earlier pause.
    Resume,
    /// The standby stops receiving WAL; healed by restoring primary_conninfo.
    CutReplication,
    /// Network partition of the node's links: every byte dropped, connections
    /// hang (they are not reset), as on a dead network.
    Partition,
    /// Added delay on the node's links, each way.
    Latency,
    /// Limited throughput on the node's links.
    Bandwidth,
    /// Connections on the node's links are reset (TCP RST).
    Reset,
    /// Corruption: one transaction deletes a fraction of the run's rows on
    /// the primary. It replicates everywhere; only a restore undoes it.
    DeleteRows,
    /// Takes a backup now with the lab's `[lab.backup]` tool (an etcd
    /// snapshot), while the workload goes on: it sets the stage for a
    /// data disaster, whose restore can bring back no more than it holds.
    Backup,
    /// Data loss: the node is SIGKILLed and its data directory removed, as
    /// when a machine and its disk are gone. On every node at once (`zone
    /// = "all"`) only a restore brings the data back.
    Wipe,
    /// Corruption: one transaction garbles the payload of a share of the
    /// run's rows (they stay, with bytes the workload never wrote).
    UpdateRows,
    /// Corruption: TRUNCATE of the ledger table.
    Truncate,
    /// Corruption: DROP TABLE of the ledger table.
    DropTable,
    /// Corruption: the user's own statement, read from `sql_file`.
    Sql,
    /// Sets the stage for a restore: one archived WAL segment that a
    /// restore past it needs is taken out of the backup repository (put
    /// back at the heal), as a broken archive or a careless cleanup would.
    RemoveWal,
    /// The user's own injector: `command` injects, `heal_command` heals
    /// (journaled first, so the watchdog runs it if firedrill dies), an
    /// optional `in_effect_command` probes. Any store takes it.
    Command,
}

/// Which of a node's network links a network fault hits.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LinkScope {
    /// Every link of the node: its clients and its replication links.
    #[default]
    All,
    /// Only the clients' link to the node.
    Clients,
    /// Only the standby's replication link to its primary.
    Replication,
    /// Every link except the clients': the node's replication links (both
    /// ends) and, in a Redis lab, the path sentinels and replicas use to
    /// reach it. The node's clients still reach it (a zombie master).
    Peers,
}

impl FaultAction {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultAction::Kill => "kill",
            FaultAction::Stop => "stop",
            FaultAction::Pause => "pause",
            FaultAction::Resume => "resume",
            FaultAction::CutReplication => "cut_replication",
            FaultAction::Partition => "partition",
            FaultAction::Latency => "latency",
            FaultAction::Bandwidth => "bandwidth",
            FaultAction::Reset => "reset",
            FaultAction::DeleteRows => "delete_rows",
            FaultAction::Backup => "backup",
            FaultAction::Wipe => "wipe",
            FaultAction::UpdateRows => "update_rows",
            FaultAction::Truncate => "truncate",
            FaultAction::DropTable => "drop_table",
            FaultAction::Sql => "sql",
            FaultAction::RemoveWal => "remove_wal",
            FaultAction::Command => "command",
        }
    }
    /// Data disasters: a bad transaction, recovered by a restore, not a
    /// failover.
    pub fn is_corruption(self) -> bool {
        matches!(
            self,
            FaultAction::DeleteRows
                | FaultAction::UpdateRows
                | FaultAction::Truncate
                | FaultAction::DropTable
                | FaultAction::Sql
        )
    }
    /// Corruptions that pick a share of the run's rows (`fraction`, `seqs`).
    pub fn picks_rows(self) -> bool {
        matches!(self, FaultAction::DeleteRows | FaultAction::UpdateRows)
    }
    /// Faults that break the backups a restore needs (not the store):
    /// they set the stage for a data disaster's restore.
    pub fn is_backup_fault(self) -> bool {
        matches!(self, FaultAction::RemoveWal)
    }
    /// Faults that destroy data, so that only a restore brings it back: a
    /// bad transaction, or a wipe.
    pub fn is_data_disaster(self) -> bool {
        self.is_corruption() || self == FaultAction::Wipe
    }
    /// Steps that set the stage and can never be the disaster: a resume
    /// heals, a backup saves, a broken archive waits for the restore.
    pub fn never_disaster(self) -> bool {
        matches!(
            self,
            FaultAction::Resume | FaultAction::Backup | FaultAction::RemoveWal
        )
    }
    /// Faults that need the node's pid.
    pub fn is_process_fault(self) -> bool {
        matches!(
            self,
            FaultAction::Kill
                | FaultAction::Stop
                | FaultAction::Pause
                | FaultAction::Resume
                | FaultAction::Wipe
        )
    }
    /// Faults carried out by the proxies of a `links = "proxied"` lab.
    pub fn is_network_fault(self) -> bool {
        matches!(
            self,
            FaultAction::Partition
                | FaultAction::Latency
                | FaultAction::Bandwidth
                | FaultAction::Reset
        )
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultStep {
    /// Offset from the end of warmup.
    pub at: Spanned<Dur>,
    pub action: Spanned<FaultAction>,
    /// A node name, or a role: `primary`, `standby`, `sync_standby`, or
    /// one the store resolves itself (Kafka's `leader`, `controller`).
    #[serde(default)]
    pub node: Option<Spanned<String>>,
    /// Instead of `node`: every node of this zone, hit at the same instant;
    /// `"all"` ([`crate::ALL_NODES`]) is every node of the target.
    pub zone: Option<Spanned<String>>,
    /// A capability drill: the domain whose `node` the step hits (a zone
    /// step hits every domain's nodes in that region).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<Spanned<String>>,
    /// With a role the store resolves per partition (`leader`): which
    /// partition (default 0).
    pub partition: Option<Spanned<u32>>,
    /// Heal automatically after this long (pause, cut_replication).
    #[serde(rename = "for")]
    pub for_: Option<Spanned<Dur>>,
    /// Marks the step whose start is t_fault. Default: the last step.
    #[serde(default)]
    pub disaster: Option<Spanned<bool>>,
    /// Network faults: which of the node's links (default all).
    pub link: Option<Spanned<LinkScope>>,
    /// `latency`: the added delay, each way.
    pub latency: Option<Spanned<Dur>>,
    /// `latency`: random extra delay up to this much.
    pub jitter: Option<Spanned<Dur>>,
    /// `bandwidth`: KB per second.
    pub rate_kbps: Option<Spanned<u64>>,
    /// Process faults on a Patroni node: `"postgres"` signals only the
    /// postmaster (Patroni restarts it locally); by default the whole node
    /// (Patroni and its postmaster) is hit, as in a machine failure.
    pub kill_process: Option<Spanned<String>>,
    /// `delete_rows`, `update_rows`: the share of the run's rows the bad
    /// transaction hits, in (0, 1] (default 0.5).
    pub fraction: Option<Spanned<f64>>,
    /// `delete_rows`, `update_rows`: instead of a share, the rows whose
    /// seq is in `[from, to]` (inclusive).
    pub seqs: Option<Spanned<Vec<u64>>>,
    /// `sql`: the file holding the statement, relative to the spec file
    /// (the statement itself never goes in the spec). Made absolute when
    /// the spec is loaded.
    pub sql_file: Option<Spanned<String>>,
    /// Corruption: how long until someone notices (`t_discovered` =
    /// `t_fault` + this); the restore starts then.
    pub detect_after: Option<Spanned<Dur>>,
    /// `command`: what injects the fault, an argv array or a `sh -c` string.
    pub command: Option<Spanned<crate::CommandSpec>>,
    /// `command`: what undoes it (required unless `heal = "none"`).
    pub heal_command: Option<Spanned<crate::CommandSpec>>,
    /// `command`: exits 0 while the fault holds (optional).
    pub in_effect_command: Option<Spanned<crate::CommandSpec>>,
    /// `command`: `"none"` when the command changes nothing to heal.
    pub heal: Option<Spanned<String>>,
    /// `command`: the limit of each of the step's commands (default 30 s).
    pub timeout: Option<Spanned<Dur>>,
}

impl FaultStep {
    /// The node or role named, "" when the step names a zone instead.
    pub fn node_name(&self) -> &str {
        self.node
            .as_ref()
            .map(|n| n.get_ref().as_str())
            .unwrap_or("")
    }
    /// Where the step says what it hits: its node, else its zone, else the action.
    pub fn target_span(&self) -> std::ops::Range<usize> {
        self.node
            .as_ref()
            .map(|n| n.span())
            .or_else(|| self.zone.as_ref().map(|z| z.span()))
            .unwrap_or_else(|| self.action.span())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RecoverySpec {
    /// A standby's name, or `most_advanced`.
    pub promote: Option<Spanned<String>>,
    /// Fail over to another region: a zone of the lab, whose first node
    /// the disaster did not hit is promoted (a mirror lab's cluster
    /// there), and the clients move to it.
    pub failover: Option<Spanned<String>>,
    /// The user's own failover command, run with `sh -c`.
    pub command: Option<Spanned<String>>,
    /// Wait for the store's own failover.
    #[serde(default)]
    pub automatic: Option<Spanned<bool>>,
    /// Start the killed process again, as its supervisor would (systemd,
    /// Kubernetes): for auxiliary processes a lab runs, such as a Kafka
    /// lab's Connect worker (`node = "connect"`).
    #[serde(default)]
    pub restart: Option<Spanned<bool>>,
    /// Wait this long after the disaster before acting (a human or a
    /// failure detector is rarely instant).
    #[serde(default)]
    pub delay: Dur,
    /// Restore from the lab's backups (a data disaster's recovery).
    pub restore: Option<RestoreSpec>,
    /// Run once the trial has recovered (or given up): a non-zero exit
    /// fails the trial with the command's reason.
    pub verify_command: Option<Spanned<crate::CommandSpec>>,
    /// The limit of `verify_command` (default 30 s).
    pub verify_timeout: Option<Spanned<Dur>>,
}

/// `restore = { from = "pgbackrest", target = "before_fault", into = "in_place" }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreSpec {
    /// The backup tool: the lab's `[lab.backup] tool`.
    pub from: Spanned<String>,
    /// `before_fault` (exactly before the bad transaction), `latest` (the
    /// end of the archive), or an RFC 3339 time.
    pub target: Spanned<String>,
    /// `in_place`: the primary's data directory is restored and the
    /// clients find it where it was. `new_node`: into a scratch node of
    /// its own (data directory, port), promoted, the clients moved to it;
    /// it is torn down at the end of the trial. A restore test (no fault)
    /// takes `new_node` only.
    pub into: Option<Spanned<String>>,
    /// Force the current WAL segment into the archive first and wait for
    /// it (default true); false shows the archive lag as data loss.
    pub flush_archive: Option<Spanned<bool>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SloSpec {
    #[serde(default = "default_ratio")]
    pub success_ratio: Spanned<f64>,
    pub p99: Option<Dur>,
    #[serde(default = "default_stable")]
    pub stable_for: Dur,
    #[serde(default = "default_bucket")]
    pub bucket: Spanned<Dur>,
    #[serde(default = "default_recovery_timeout")]
    pub recovery_timeout: Spanned<Dur>,
}

impl Default for SloSpec {
    fn default() -> Self {
        SloSpec {
            success_ratio: default_ratio(),
            p99: None,
            stable_for: default_stable(),
            bucket: default_bucket(),
            recovery_timeout: default_recovery_timeout(),
        }
    }
}

fn default_ratio() -> Spanned<f64> {
    Spanned::new(0..0, 0.99)
}
fn default_stable() -> Dur {
    Dur(std::time::Duration::from_secs(5))
}
fn default_bucket() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(std::time::Duration::from_millis(100)))
}
fn default_recovery_timeout() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(std::time::Duration::from_secs(60)))
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectivesSpec {
    pub rpo: Option<Dur>,
    pub rto: Option<Dur>,
}
