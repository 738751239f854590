//! Kafka cross-region DR with MirrorMaker 2 (`kind = "kafka-mirror"`):
//! two one-broker KRaft clusters, regions A and B, and MM2 in dedicated
//! mode mirroring A to B. A region loss is `kill` with `zone = "A"` plus a
//! `partition` of the region link (`node = "b1"`, `link = "replication"`)
//! at the same instant; the failover is `failover = "B"` (or `promote =
//! "b1"`), which moves the
//! producers to B. Its own store kind (its own lab, target and options),
//! built on part 1's jars, JVM flags, producer and audit reader.

pub mod config;
pub mod lab;
pub mod mm2;
pub mod probe;
mod status;
pub mod target;

use crate::Store;
use config::MirrorLab;
use firedrill_lab::{LabDriver, LabError, LabState, NodeStatus};
use firedrill_spec::{
    lab_view, target_view, Diagnostic, DrillSpec, FaultAction, FaultStep, LabSpec, LinkScope,
    Links, LoadedSpec, NodeUniverse, StoreSpec, TargetSpec, WorkloadSpec,
};
use firedrill_targets::TargetOpener;
use std::path::PathBuf;
use std::sync::Arc;

pub struct KafkaMirrorStore;

impl StoreSpec for KafkaMirrorStore {
    fn kind(&self) -> &'static str {
        "kafka-mirror"
    }
    fn lab_keys(&self) -> &'static [&'static str] {
        firedrill_spec::field_names::<MirrorLab>()
    }
    fn target_keys(&self) -> &'static [&'static str] {
        firedrill_spec::field_names::<crate::kafka::config::KafkaTarget>()
    }
    /// The region link is always proxied (it is what a region fault
    /// cuts); the brokers' own paths are direct.
    fn links(&self) -> &'static [Links] {
        &[Links::Direct]
    }
    fn check_lab(&self, spec: &LoadedSpec, lab: &LabSpec, out: &mut Vec<Diagnostic>) {
        match lab_view::<MirrorLab>(spec) {
            Ok(o) => {
                config::check_lab(spec, &o, out);
                // Without MM2's jar nothing can mirror: say so before
                // anything starts, with the command that installs it. A
                // lab that is up had them; `lab down` must work without.
                let dir = match &lab.dir {
                    Some(d) => firedrill_lab::absolute(d),
                    None => firedrill_lab::default_dir(lab.name.get_ref()),
                };
                let up = dir.join("state.json").is_file();
                if let (false, Err(e)) = (up, lab::find_libs(&o)) {
                    let span = lab.kind.as_ref().map(|k| k.span()).unwrap_or(0..0);
                    out.push(spec.at(span, e.to_string()));
                }
            }
            Err(d) => out.push(d),
        }
    }
    fn lab_universe(&self, lab: &LabSpec) -> NodeUniverse {
        let names: Vec<String> = lab::REGIONS.iter().map(|r| lab::broker_of(r)).collect();
        let zones = lab::REGIONS
            .iter()
            .map(|r| (r.to_string(), vec![lab::broker_of(r)]))
            .collect();
        let _ = lab;
        NodeUniverse {
            with_pid: names.iter().cloned().collect(),
            names,
            proxied: true,
            kind: self.kind().into(),
            zones,
            ..NodeUniverse::default()
        }
    }
    fn check_target(
        &self,
        spec: &LoadedSpec,
        _d: &DrillSpec,
        _t: &TargetSpec,
        _u: Option<&NodeUniverse>,
        out: &mut Vec<Diagnostic>,
    ) {
        match target_view::<crate::kafka::config::KafkaTarget>(spec) {
            Ok(o) => crate::kafka::config::check_target(spec, &o, out),
            Err(e) => out.push(e),
        }
    }
    fn faults(&self) -> &'static [FaultAction] {
        crate::PROXIED_FAULTS
    }
    /// Network faults hit the one proxied link, the region link: B's MM2
    /// fetching from A.
    fn check_step(
        &self,
        spec: &LoadedSpec,
        s: &FaultStep,
        _u: &NodeUniverse,
        out: &mut Vec<Diagnostic>,
    ) {
        crate::refuse_kill_process(spec, s, out);
        if !s.action.get_ref().is_network_fault() {
            return;
        }
        let link = s.link.as_ref().map(|l| *l.get_ref()).unwrap_or_default();
        if s.node_name() != "b1" || link != LinkScope::Replication {
            out.push(spec.at(
                s.target_span(),
                "a mirror lab proxies one link, the region link MM2 fetches A through: use node = \"b1\" with link = \"replication\"",
            ));
        }
    }
}

#[async_trait::async_trait]
impl LabDriver for KafkaMirrorStore {
    fn build(
        &self,
        spec: &LabSpec,
        dir: PathBuf,
        preferred_ports: &[u16],
        progress: &mut dyn FnMut(&str),
    ) -> Result<LabState, LabError> {
        lab::build(spec, dir, preferred_ports, progress)
    }
    fn stop(&self, state: &LabState) -> Result<(), LabError> {
        lab::stop(state)
    }
    async fn status(&self, state: &LabState) -> Vec<NodeStatus> {
        let st = state.clone();
        tokio::task::spawn_blocking(move || status::status(&st))
            .await
            .unwrap_or_default()
    }
    fn settings(&self, spec: &LabSpec) -> String {
        let o = MirrorLab::of(spec);
        format!(
            "kafka {} + MirrorMaker 2: regions A and B (one broker each, replication factor 1), mirror {}, DefaultReplicationPolicy (A.<topic> on B), partitions {}, emit.checkpoints.interval {}s, sync.group.offsets.interval {}s (enabled), refresh.topics.interval {}s",
            crate::kafka::lab::KAFKA_VERSION,
            o.mirror().as_str(),
            o.partitions(),
            o.checkpoint_interval().as_secs(),
            o.sync_interval().as_secs(),
            o.refresh_interval().as_secs(),
        )
    }
}

impl Store for KafkaMirrorStore {
    fn watch(&self) -> Option<&'static dyn firedrill_watch::WatchKind> {
        Some(&probe::MirrorWatch)
    }
    fn lab_target(
        &self,
        s: &LabState,
        t: Option<&TargetSpec>,
        w: &WorkloadSpec,
    ) -> Arc<dyn TargetOpener> {
        let o = MirrorLab::of(&s.spec);
        Arc::new(target::MirrorOpener {
            partitions: o.partitions(),
            producer: crate::kafka::config::KafkaTarget::of(t).producer(w.op_timeout.get_ref().0),
            logs: s
                .nodes
                .iter()
                .map(|n| (n.name.clone(), n.log_file.clone()))
                .collect(),
            checkpoint_interval: o.checkpoint_interval(),
            mirror: o.mirror(),
        })
    }
    /// Endpoints are not supported: the lab is what knows the regions.
    fn endpoint_target(&self, t: &TargetSpec, w: &WorkloadSpec) -> Arc<dyn TargetOpener> {
        Arc::new(target::MirrorOpener {
            partitions: 3,
            producer: crate::kafka::config::KafkaTarget::of(Some(t)).producer(w.op_timeout.get_ref().0),
            logs: Vec::new(),
            checkpoint_interval: std::time::Duration::from_secs(60),
            mirror: config::Mirror::ActivePassive,
        })
    }
}
