//! The spec as written: what TOML deserializes into. Unknown keys are errors
//! everywhere (`deny_unknown_fields`), because a misspelt knob that is
//! silently ignored produces a drill that measures something else.

use crate::Dur;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LabSpec {
    /// Lab name: the state lives in `.firedrill/labs/<name>/` unless `dir` says otherwise.
    pub name: Spanned<String>,
    #[serde(default)]
    pub kind: LabKind,
    /// Number of streaming standbys besides the primary. Nodes are named
    /// n1 (the first primary), n2, n3, …
    #[serde(default = "one")]
    pub standbys: u32,
    #[serde(default)]
    pub replication: Replication,
    /// `ANY k (...)`: how many standbys must confirm a commit (sync only).
    pub sync_quorum: Option<Spanned<u32>>,
    /// synchronous_commit level used with `replication = "sync"`.
    #[serde(default)]
    pub synchronous_commit: SyncCommit,
    /// Lab directory; default `.firedrill/labs/<name>`.
    pub dir: Option<PathBuf>,
    /// Directory of the PostgreSQL binaries; default `PG_BIN`, PATH, then
    /// `/usr/lib/postgresql/<newest>/bin`.
    pub bin_dir: Option<PathBuf>,
    /// Unprivileged user the servers run as when firedrill runs as root.
    pub user: Option<String>,
    /// First port to try; by default free loopback ports are picked.
    pub base_port: Option<u16>,
    /// Extra postgresql.conf settings for every node.
    #[serde(default)]
    pub settings: BTreeMap<String, toml::Value>,
    /// `proxied` puts a fault proxy in front of every node for client
    /// traffic and on every replication link, so network faults can cut or
    /// slow exactly one link. `netns` runs every node in its own network
    /// namespace on a lab bridge, so a partition is a kernel-level cut (its
    /// veth link set down); it needs root and iproute2.
    #[serde(default)]
    pub links: Links,
    /// `kind = "etcd"`: the cluster's size and Raft timeouts.
    pub etcd: Option<EtcdLabSpec>,
    /// `kind = "patroni"`: the failover knobs Patroni is bootstrapped with.
    pub patroni: Option<PatroniLabSpec>,
    /// `kind = "redis-sentinel"`: the Redis and Sentinel settings that set
    /// RPO and RTO (`[lab.redis]`).
    pub redis: Option<RedisLabSpec>,
}

/// `[lab.etcd]`: the Raft timeouts are what set an etcd cluster's RTO, so
/// they are the knobs a drill compares.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdLabSpec {
    /// Cluster size: 3 or 5 members (e1, e2, …).
    #[serde(default = "three")]
    pub members: Spanned<u32>,
    /// `--heartbeat-interval` (etcd's default 100ms).
    #[serde(default = "default_heartbeat")]
    pub heartbeat: Spanned<Dur>,
    /// `--election-timeout` (etcd's default 1s); at least 5 × heartbeat.
    #[serde(default = "default_election")]
    pub election: Spanned<Dur>,
}

impl Default for EtcdLabSpec {
    fn default() -> Self {
        EtcdLabSpec {
            members: three(),
            heartbeat: default_heartbeat(),
            election: default_election(),
        }
    }
}

/// `[lab.redis]`: the knobs of a Redis + Sentinel lab. Every one of them
/// moves a measured figure, so each is explicit in the spec.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RedisLabSpec {
    /// Sentinel `down-after-milliseconds`: how long a master must be
    /// unreachable before a sentinel calls it down (default 1s here; 30 s
    /// in Redis).
    pub down_after: Option<Spanned<Dur>>,
    /// Sentinel `failover-timeout` (default 5s here; 3 min in Redis).
    pub failover_timeout: Option<Spanned<Dur>>,
    /// `min-replicas-to-write`: the master refuses writes when fewer
    /// replicas than this are connected with a lag within
    /// `min_replicas_max_lag` (default 0: never refuses).
    pub min_replicas_to_write: Option<Spanned<u32>>,
    /// `min-replicas-max-lag`, whole seconds (default 10s).
    pub min_replicas_max_lag: Option<Spanned<Dur>>,
    /// `appendonly` (default false).
    #[serde(default)]
    pub appendonly: bool,
    /// `appendfsync` (default everysec).
    #[serde(default)]
    pub appendfsync: AppendFsync,
    /// Number of sentinels (default 3; quorum is a majority).
    pub sentinels: Option<Spanned<u32>>,
    /// The name sentinels monitor the master under (default `firedrill`).
    pub master_name: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AppendFsync {
    Always,
    #[default]
    Everysec,
    No,
}

impl AppendFsync {
    pub fn as_conf(self) -> &'static str {
        match self {
            AppendFsync::Always => "always",
            AppendFsync::Everysec => "everysec",
            AppendFsync::No => "no",
        }
    }
}

impl RedisLabSpec {
    pub fn down_after(&self) -> std::time::Duration {
        self.down_after
            .as_ref()
            .map(|d| d.get_ref().0)
            .unwrap_or(std::time::Duration::from_secs(1))
    }
    pub fn failover_timeout(&self) -> std::time::Duration {
        self.failover_timeout
            .as_ref()
            .map(|d| d.get_ref().0)
            .unwrap_or(std::time::Duration::from_secs(5))
    }
    pub fn min_replicas_max_lag_s(&self) -> u64 {
        self.min_replicas_max_lag
            .as_ref()
            .map(|d| d.get_ref().0.as_secs())
            .unwrap_or(10)
    }
    pub fn min_replicas_to_write(&self) -> u32 {
        self.min_replicas_to_write
            .as_ref()
            .map(|v| *v.get_ref())
            .unwrap_or(0)
    }
    pub fn sentinels(&self) -> u32 {
        self.sentinels.as_ref().map(|s| *s.get_ref()).unwrap_or(3)
    }
    pub fn master_name(&self) -> String {
        self.master_name
            .as_ref()
            .map(|s| s.get_ref().clone())
            .unwrap_or_else(|| "firedrill".into())
    }
}

fn three() -> Spanned<u32> {
    Spanned::new(0..0, 3)
}
fn default_heartbeat() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(std::time::Duration::from_millis(100)))
}
fn default_election() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(std::time::Duration::from_secs(1)))
}

/// `[lab.patroni]`: Patroni's dynamic configuration at bootstrap. Its RTO is
/// governed by ttl, loop_wait and retry_timeout; synchronous_mode trades
/// availability for RPO = 0. Defaults are Patroni's own.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PatroniLabSpec {
    /// Leader key lifetime: a dead leader is replaced after at most this.
    #[serde(default = "default_ttl")]
    pub ttl: Spanned<Dur>,
    /// Seconds between HA loop runs.
    #[serde(default = "default_loop_wait")]
    pub loop_wait: Spanned<Dur>,
    /// How long DCS and PostgreSQL operations are retried.
    #[serde(default = "default_retry_timeout")]
    pub retry_timeout: Spanned<Dur>,
    /// Bytes a replica may lag and still take over.
    #[serde(default = "default_max_lag")]
    pub maximum_lag_on_failover: u64,
    /// Patroni manages synchronous_standby_names: only the sync standby may
    /// be promoted.
    #[serde(default)]
    pub synchronous_mode: bool,
    /// With synchronous_mode: block writes rather than fall back to async
    /// when no synchronous standby is left.
    #[serde(default)]
    pub synchronous_mode_strict: Option<Spanned<bool>>,
}

impl Default for PatroniLabSpec {
    fn default() -> Self {
        PatroniLabSpec {
            ttl: default_ttl(),
            loop_wait: default_loop_wait(),
            retry_timeout: default_retry_timeout(),
            maximum_lag_on_failover: default_max_lag(),
            synchronous_mode: false,
            synchronous_mode_strict: None,
        }
    }
}

impl PatroniLabSpec {
    pub fn strict(&self) -> bool {
        self.synchronous_mode_strict
            .as_ref()
            .is_some_and(|s| *s.get_ref())
    }
}

fn secs(s: u64) -> Spanned<Dur> {
    Spanned::new(0..0, Dur(std::time::Duration::from_secs(s)))
}
fn default_ttl() -> Spanned<Dur> {
    secs(30)
}
fn default_loop_wait() -> Spanned<Dur> {
    secs(10)
}
fn default_retry_timeout() -> Spanned<Dur> {
    secs(10)
}
fn default_max_lag() -> u64 {
    1 << 20
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

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LabKind {
    /// PostgreSQL streaming replication, failover by firedrill or a command.
    #[default]
    Postgres,
    /// An etcd (Raft) cluster.
    Etcd,
    /// PostgreSQL managed by Patroni, with an etcd cluster as its DCS.
    Patroni,
    /// One Redis master, `standbys` replicas and a group of sentinels.
    #[serde(rename = "redis-sentinel")]
    RedisSentinel,
}

impl LabKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LabKind::Postgres => "postgres",
            LabKind::Etcd => "etcd",
            LabKind::Patroni => "patroni",
            LabKind::RedisSentinel => "redis-sentinel",
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Replication {
    #[default]
    Async,
    Sync,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SyncCommit {
    #[default]
    On,
    RemoteWrite,
    RemoteApply,
}

impl SyncCommit {
    pub fn as_guc(self) -> &'static str {
        match self {
            SyncCommit::On => "on",
            SyncCommit::RemoteWrite => "remote_write",
            SyncCommit::RemoteApply => "remote_apply",
        }
    }
}

impl LabSpec {
    /// Node names in creation order; the first is the initial primary.
    /// etcd members are e1, e2, …; PostgreSQL nodes (Patroni's too) n1, n2, ….
    pub fn node_names(&self) -> Vec<String> {
        match self.kind {
            LabKind::Etcd => {
                let n = self.etcd.clone().unwrap_or_default().members.into_inner();
                (1..=n).map(|i| format!("e{i}")).collect()
            }
            _ => (1..=self.standbys + 1).map(|i| format!("n{i}")).collect(),
        }
    }

    /// The Patroni settings in force (Patroni's defaults when the table is absent).
    pub fn patroni_settings(&self) -> PatroniLabSpec {
        self.patroni.clone().unwrap_or_default()
    }

    /// The etcd settings in force.
    pub fn etcd_settings(&self) -> EtcdLabSpec {
        self.etcd.clone().unwrap_or_default()
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
}

fn one_trial() -> Spanned<u32> {
    Spanned::new(0..0, 1)
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// Name of a lab started with `firedrill lab up`.
    pub lab: Option<Spanned<String>>,
    /// Store kind for explicit endpoints.
    #[serde(default)]
    pub kind: LabKind,
    /// Explicit endpoints: one per node.
    #[serde(default)]
    pub nodes: Vec<EndpointSpec>,
    /// Environment variable holding the password (never the password itself).
    pub password_env: Option<String>,
    /// File holding the password.
    pub password_file: Option<PathBuf>,
    /// Command that restores the store to healthy between trials (endpoints only).
    pub reset_command: Option<String>,
    /// Redis: what each ledger write is (default `set`).
    pub redis_write: Option<Spanned<RedisWrite>>,
    /// Redis: `WAIT numreplicas timeout` after each write; a write counts
    /// as acknowledged only if WAIT reached this many replicas.
    pub redis_wait: Option<Spanned<u32>>,
    /// Redis: the WAIT timeout (default 1s; must be below op_timeout).
    pub redis_wait_timeout: Option<Spanned<Dur>>,
    /// Redis endpoints: the sentinels (`host:port`) clients ask for the master.
    #[serde(default)]
    pub redis_sentinels: Vec<Spanned<String>>,
    /// Redis endpoints: the master name the sentinels monitor.
    pub redis_master_name: Option<Spanned<String>>,
}

/// The command a Redis workload client writes one ledger entry with.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RedisWrite {
    /// `SET fd:<run_id>:<seq> <payload>`: one key per entry.
    #[default]
    Set,
    /// `RPUSH fd:<run_id>:list <seq>:<payload>`: one list (a queue).
    Rpush,
    /// `XADD fd:<run_id>:stream * seq <seq> p <payload>`: one stream.
    Xadd,
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
    pub op_timeout: Dur,
    #[serde(default = "default_warmup")]
    pub warmup: Dur,
    pub duration: Spanned<Dur>,
    /// Bytes of payload per write.
    #[serde(default = "default_payload")]
    pub payload_bytes: u32,
}

fn default_op_timeout() -> Dur {
    Dur(std::time::Duration::from_secs(1))
}
fn default_warmup() -> Dur {
    Dur(std::time::Duration::from_secs(2))
}
fn default_payload() -> u32 {
    64
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
        }
    }
    /// Faults that need the node's pid.
    pub fn is_process_fault(self) -> bool {
        matches!(
            self,
            FaultAction::Kill | FaultAction::Stop | FaultAction::Pause | FaultAction::Resume
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
    /// A node name, or a role: `primary`, `standby`, `sync_standby`.
    pub node: Spanned<String>,
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
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RecoverySpec {
    /// A standby's name, or `most_advanced`.
    pub promote: Option<Spanned<String>>,
    /// The user's own failover command, run with `sh -c`.
    pub command: Option<Spanned<String>>,
    /// Wait for the store's own failover.
    #[serde(default)]
    pub automatic: Option<Spanned<bool>>,
    /// Wait this long after the disaster before acting (a human or a
    /// failure detector is rarely instant).
    #[serde(default)]
    pub delay: Dur,
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
    pub recovery_timeout: Dur,
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
fn default_recovery_timeout() -> Dur {
    Dur(std::time::Duration::from_secs(60))
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectivesSpec {
    pub rpo: Option<Dur>,
    pub rto: Option<Dur>,
}
