//! Redis replication with Sentinel: a lab of one master, its replicas and
//! a group of sentinels, and a target that writes with SET, RPUSH or XADD
//! (optionally followed by WAIT).

pub mod config;
pub mod assess;
pub mod lab;
pub mod probe;
pub mod target;

use crate::Store;
use config::{RedisLab, RedisTarget, RedisWrite};
use firedrill_lab::{LabDriver, LabError, LabState, NodeStatus};
use firedrill_spec::{
    lab_view, target_view, Diagnostic, DrillSpec, FaultAction, FaultStep, LabSpec,
    Links, LoadedSpec, NodeUniverse, StoreSpec, TargetSpec, WorkloadSpec,
};
use firedrill_targets::{Target, TargetError, TargetNode, TargetOpener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub struct RedisSentinelStore;

impl StoreSpec for RedisSentinelStore {
    fn kind(&self) -> &'static str {
        "redis-sentinel"
    }
    fn lab_keys(&self) -> &'static [&'static str] {
        firedrill_spec::field_names::<RedisLab>()
    }
    fn target_keys(&self) -> &'static [&'static str] {
        firedrill_spec::field_names::<RedisTarget>()
    }
    fn links(&self) -> &'static [Links] {
        // Partitions go through the proxies; netns is not built for Redis.
        &[Links::Direct, Links::Proxied]
    }
    fn check_lab(&self, spec: &LoadedSpec, lab: &LabSpec, out: &mut Vec<Diagnostic>) {
        match lab_view::<RedisLab>(spec) {
            Ok(o) => {
                if o.standbys == 0 || o.standbys > 8 {
                    out.push(spec.at(lab.name.span(), "lab standbys must be between 1 and 8"));
                }
                config::check_lab(spec, &o, out)
            }
            Err(d) => out.push(d),
        }
    }
    fn lab_universe(&self, lab: &LabSpec) -> NodeUniverse {
        let names = RedisLab::of(lab).node_names();
        NodeUniverse {
            with_pid: names.iter().cloned().collect(),
            names,
            proxied: lab.links == Links::Proxied,
            kind: self.kind().into(),
            ..NodeUniverse::default()
        }
    }
    fn check_target(
        &self,
        spec: &LoadedSpec,
        d: &DrillSpec,
        t: &TargetSpec,
        _u: Option<&NodeUniverse>,
        out: &mut Vec<Diagnostic>,
    ) {
        match target_view::<RedisTarget>(spec) {
            Ok(o) => config::check_target(spec, d, t, &o, out),
            Err(e) => out.push(e),
        }
    }
    fn faults(&self) -> &'static [FaultAction] {
        crate::PROXIED_FAULTS
    }
    fn fault_hint(&self, action: FaultAction) -> Option<&'static str> {
        (action == FaultAction::CutReplication).then_some(
            "cut_replication is a PostgreSQL fault; for Redis use partition with link = \"peers\" or \"replication\" (links = \"proxied\")",
        )
    }
    fn check_step(
        &self,
        spec: &LoadedSpec,
        s: &FaultStep,
        _u: &NodeUniverse,
        out: &mut Vec<Diagnostic>,
    ) {
        crate::refuse_kill_process(spec, s, out);
        crate::refuse_replication_link(spec, s, "a Redis lab proxies each node's peers path, not each replication link: use link = \"peers\"", out);
    }
}

#[async_trait::async_trait]
impl LabDriver for RedisSentinelStore {
    fn build(
        &self,
        spec: &LabSpec,
        dir: PathBuf,
        preferred_ports: &[u16],
        progress: &mut dyn FnMut(&str),
    ) -> Result<LabState, LabError> {
        lab::build(spec, dir, preferred_ports, progress)
    }
    async fn status(&self, state: &LabState) -> Vec<NodeStatus> {
        lab::status(state).await
    }
    fn settings(&self, spec: &LabSpec) -> String {
        let r = RedisLab::of(spec).settings();
        format!(
            "redis + sentinel: down_after {}, failover_timeout {}, min_replicas_to_write {}, min_replicas_max_lag {}s, appendonly {}, appendfsync {}",
            firedrill_spec::Dur(r.down_after()),
            firedrill_spec::Dur(r.failover_timeout()),
            r.min_replicas_to_write(),
            r.min_replicas_max_lag_s(),
            if r.appendonly { "yes" } else { "no" },
            r.appendfsync.as_conf()
        )
    }
}

/// Opens [`target::RedisStore`]s: the sentinels to ask and how to write.
#[derive(Debug, Clone)]
pub struct RedisOpener {
    /// Sentinels (`host:port`) the clients ask for the master.
    pub sentinels: Vec<String>,
    /// The name the sentinels monitor the master under.
    pub master_name: String,
    /// The command each ledger write is.
    pub write: RedisWrite,
    /// `WAIT numreplicas timeout` after each write.
    pub wait: Option<(u32, Duration)>,
    /// Node name → the address the node announces to Sentinel and its
    /// replicas (`replica-announce-ip:port`), which is what Sentinel
    /// answers with; nodes absent here announce their control address.
    pub announced: Vec<(String, String)>,
}

impl TargetOpener for RedisOpener {
    fn kind(&self) -> &'static str {
        "redis"
    }
    fn open(
        &self,
        nodes: &[TargetNode],
        password: Option<&str>,
        run_id: &str,
    ) -> Result<Box<dyn Target>, TargetError> {
        Ok(Box::new(target::RedisStore::new(
            self, nodes, password, run_id,
        )?))
    }
}

impl Store for RedisSentinelStore {
    fn assess(&self) -> Option<&'static dyn firedrill_assess::AssessKind> {
        Some(&assess::RedisAssess)
    }
    fn failovers(&self) -> &'static [&'static dyn firedrill_assess::FailoverKind] {
        &[&assess::SentinelFailover]
    }
    fn watch(&self) -> Option<&'static dyn firedrill_watch::WatchKind> {
        Some(&probe::RedisWatch)
    }
    fn lab_target(
        &self,
        s: &LabState,
        t: Option<&TargetSpec>,
        w: &WorkloadSpec,
    ) -> Arc<dyn TargetOpener> {
        let o = RedisTarget::of(t);
        Arc::new(RedisOpener {
            sentinels: s.sentinels.iter().map(|n| n.conninfo.clone()).collect(),
            master_name: RedisLab::of(&s.spec).settings().master_name(),
            write: o.write(),
            wait: o.wait(w.op_timeout.get_ref().0),
            announced: s
                .nodes
                .iter()
                .filter_map(|n| {
                    s.peers_port(&n.name)
                        .map(|p| (n.name.clone(), format!("127.0.0.1:{p}")))
                })
                .collect(),
        })
    }
    fn endpoint_target(&self, t: &TargetSpec, w: &WorkloadSpec) -> Arc<dyn TargetOpener> {
        let o = RedisTarget::of(Some(t));
        Arc::new(RedisOpener {
            sentinels: o
                .redis_sentinels
                .iter()
                .map(|s| s.get_ref().clone())
                .collect(),
            master_name: o
                .redis_master_name
                .as_ref()
                .map(|n| n.get_ref().clone())
                .unwrap_or_else(|| "mymaster".into()),
            write: o.write(),
            wait: o.wait(w.op_timeout.get_ref().0),
            announced: Vec::new(),
        })
    }
}
