//! Every kind of store firedrill drills, one folder each: its `[lab]` and
//! target options with their checks (`config.rs`), its lab (`lab.rs`), its
//! target (`target/`), and its `Store`, the one value the generic crates
//! see, and the watch side (`probe.rs`: its `[domain.store]` options in an
//! objectives file and its probe). Each store is a cargo feature;
//! [`registry`] lists the ones built, [`watch_kinds`] the ones watch knows.
//!
//! Adding a store is a new folder, its feature in Cargo.toml (and in
//! `all`), and one line in the `stores!` list below (see
//! docs/adding-a-store.md).

mod watch;

/// The outbox table (DESIGN.md, "Capabilities"): an outbox capability's
/// PostgreSQL domain writes each event here in the transaction of its
/// order, and Debezium's EventRouter (a Kafka lab's `cdc` worker) reads it
/// with the router's default column names.
/// With it, the table Debezium's heartbeat query updates every second: a
/// captured change even when no order is written, so the slot's confirmed
/// position keeps up with the WAL (Debezium's remedy for WAL growth on
/// quiet databases) and the CDC lag reads 0 when nothing is pending.
pub const OUTBOX_DDL: &str = "CREATE TABLE IF NOT EXISTS firedrill_outbox (\
id uuid PRIMARY KEY, aggregatetype varchar(255) NOT NULL, \
aggregateid varchar(255) NOT NULL, type varchar(255) NOT NULL, payload text); \
CREATE TABLE IF NOT EXISTS firedrill_cdc_heartbeat (id int PRIMARY KEY, ts timestamptz NOT NULL)";

pub use watch::watch_kinds;

/// Every store kind and failover mechanism `firedrill assess` knows in
/// this build, in registry order.
pub fn knowledge() -> &'static firedrill_assess::Knowledge {
    static K: std::sync::OnceLock<firedrill_assess::Knowledge> = std::sync::OnceLock::new();
    K.get_or_init(|| firedrill_assess::Knowledge {
        kinds: registry().iter().filter_map(|s| s.assess()).collect(),
        failovers: registry()
            .iter()
            .flat_map(|s| s.failovers().iter().copied())
            .collect(),
    })
}

use firedrill_lab::{LabDriver, LabState};
use firedrill_spec::{
    Diagnostic, EndpointSpec, FaultStep, LoadedSpec, StoreSpec, Stores, TargetSpec, WorkloadSpec,
};
use firedrill_targets::TargetOpener;
use std::path::PathBuf;
use std::sync::Arc;

/// One kind of store, as the binary, the engine's wiring and the watchdog
/// see it: its spec checks, its lab, and how to open its target.
pub trait Store: StoreSpec + LabDriver {
    /// The target of a lab of this kind that is up.
    fn lab_target(
        &self,
        state: &LabState,
        t: Option<&TargetSpec>,
        w: &WorkloadSpec,
    ) -> Arc<dyn TargetOpener>;
    /// The target of explicit endpoints of this kind.
    fn endpoint_target(&self, t: &TargetSpec, w: &WorkloadSpec) -> Arc<dyn TargetOpener>;
    /// The address a workload client uses to reach a clients proxy on
    /// loopback `port`, in the store's own syntax.
    fn client_address(&self, port: u16) -> String {
        format!("127.0.0.1:{port}")
    }
    /// Restores a lab's node from its backups, for a `restore` recovery;
    /// None when the lab takes none.
    fn restorer(&self, _state: &LabState) -> Option<Arc<dyn firedrill_targets::Restorer>> {
        None
    }
    /// The lab's auxiliary processes (`state.sentinels`) a process fault
    /// may hit by name, such as a Kafka lab's Connect worker.
    fn fault_aux(&self) -> &'static [&'static str] {
        &[]
    }
    /// A lab node's recorded process is a manager that restarts its server
    /// (so a process fault may hit the server alone).
    fn managed_nodes(&self) -> bool {
        false
    }
    /// Where an endpoint's pid is, for process faults.
    fn endpoint_pid_file(&self, n: &EndpointSpec) -> Option<PathBuf> {
        n.pid_file.clone()
    }
    /// For firedrill's embedded clients proxy: the `host:port` an endpoint
    /// address points at, and the address rewritten to point at the proxy.
    fn endpoint_redirect(
        &self,
        _name: &str,
        _address: &str,
        _proxy_host: &str,
        _proxy_port: u16,
    ) -> Result<(String, String), String> {
        Err(format!("a {} target has no embedded proxy", self.kind()))
    }
    /// A target for healing a journaled fault from the detached watchdog,
    /// which knows only the kind and the node's address.
    fn heal_target(&self) -> Option<Arc<dyn TargetOpener>> {
        None
    }
    /// How `firedrill watch` probes this kind of store, if it can.
    fn watch(&self) -> Option<&'static dyn firedrill_watch::WatchKind> {
        None
    }
    /// What `firedrill assess` knows of this kind's domains, if anything.
    fn assess(&self) -> Option<&'static dyn firedrill_assess::AssessKind> {
        None
    }
    /// The failover mechanisms this store brings to assess.
    fn failovers(&self) -> &'static [&'static dyn firedrill_assess::FailoverKind] {
        &[]
    }
}

/// Declares each store's module behind its cargo feature and lists it in
/// [`registry`]: a store is one line here.
macro_rules! stores {
    ($($feature:literal => $module:ident :: $store:ident,)*) => {
        $(
            #[cfg(feature = $feature)]
            pub mod $module;
        )*
        /// Every store this build has, in registry order (the first is the
        /// default kind).
        pub fn registry() -> &'static [&'static dyn Store] {
            &[$(
                #[cfg(feature = $feature)]
                &$module::$store,
            )*]
        }
    };
}

stores! {
    "postgres" => postgres::PostgresStore,
    "patroni" => patroni::PatroniStore,
    "redis" => redis::RedisSentinelStore,
    "etcd" => etcd::EtcdStore,
    "nats" => nats::NatsStore,
    "kafka" => kafka::KafkaStore,
    "kafka" => kafka_mirror::KafkaMirrorStore,
}

/// The store of a kind, if this build has it.
pub fn get(kind: &str) -> Option<&'static dyn Store> {
    registry().iter().copied().find(|s| s.kind() == kind)
}

/// The store a spec names, or the first of the registry when it names none.
pub fn of(kind: Option<&str>) -> Option<&'static dyn Store> {
    match kind {
        Some(k) => get(k),
        None => registry().first().copied(),
    }
}

/// The registry as the spec checks see it.
pub fn specs() -> Stores {
    Stores::new(
        registry()
            .iter()
            .map(|s| *s as &'static dyn StoreSpec)
            .collect(),
    )
}

/// The faults every store whose nodes are processes firedrill started can take.
#[allow(dead_code)] // every store is a feature; some builds use none of these
pub(crate) const PROCESS_FAULTS: &[firedrill_spec::FaultAction] = &[
    firedrill_spec::FaultAction::Kill,
    firedrill_spec::FaultAction::Stop,
    firedrill_spec::FaultAction::Pause,
    firedrill_spec::FaultAction::Resume,
];

/// Process faults plus the proxied network faults: stores whose labs
/// proxy each node's clients and peers paths but have no replication cut.
#[allow(dead_code)]
pub(crate) const PROXIED_FAULTS: &[firedrill_spec::FaultAction] = &[
    firedrill_spec::FaultAction::Kill,
    firedrill_spec::FaultAction::Stop,
    firedrill_spec::FaultAction::Pause,
    firedrill_spec::FaultAction::Resume,
    firedrill_spec::FaultAction::Partition,
    firedrill_spec::FaultAction::Latency,
    firedrill_spec::FaultAction::Bandwidth,
    firedrill_spec::FaultAction::Reset,
];

/// A lab that proxies each node's peers path as one link has no single
/// replication link to fault: `link = "replication"` is refused with `why`.
#[allow(dead_code)]
pub(crate) fn refuse_replication_link(
    spec: &LoadedSpec,
    s: &FaultStep,
    why: &str,
    out: &mut Vec<Diagnostic>,
) {
    if let Some(l) = &s.link {
        if *l.get_ref() == firedrill_spec::LinkScope::Replication {
            out.push(spec.at(l.span(), why));
        }
    }
}

/// The universe of a lab whose every node is a process firedrill knows.
#[allow(dead_code)]
pub(crate) fn plain_universe(kind: &str, names: Vec<String>) -> firedrill_spec::NodeUniverse {
    firedrill_spec::NodeUniverse {
        with_pid: names.iter().cloned().collect(),
        names,
        kind: kind.into(),
        ..firedrill_spec::NodeUniverse::default()
    }
}

/// `kill_process` needs a manager that restarts the server; stores whose
/// node is the server itself refuse it here.
pub fn refuse_kill_process(spec: &LoadedSpec, s: &FaultStep, out: &mut Vec<Diagnostic>) {
    if let Some(kp) = &s.kill_process {
        out.push(spec.at(
            kp.span(),
            "kill_process is for Patroni nodes (a postmaster with a manager that restarts it); elsewhere the postmaster is the node",
        ));
    }
}
