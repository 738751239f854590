//! etcd (Raft): a lab of 3 or 5 members, and a target that puts one key
//! per ledger entry through the v3 JSON gateway.

pub mod config;
pub mod assess;
pub mod lab;
pub mod probe;
pub mod target;

use crate::Store;
use config::{check_etcd, EtcdLab};
use firedrill_lab::{LabDriver, LabError, LabState, NodeStatus};
use firedrill_spec::{
    lab_view, Diagnostic, FaultAction, FaultStep, LabSpec, LoadedSpec, NodeUniverse, StoreSpec,
    TargetSpec, WorkloadSpec,
};
use firedrill_targets::{Target, TargetError, TargetNode, TargetOpener};
use std::path::PathBuf;
use std::sync::Arc;

pub struct EtcdStore;

impl StoreSpec for EtcdStore {
    fn kind(&self) -> &'static str {
        "etcd"
    }
    fn lab_keys(&self) -> &'static [&'static str] {
        firedrill_spec::field_names::<EtcdLab>()
    }
    fn check_lab(&self, spec: &LoadedSpec, _lab: &LabSpec, out: &mut Vec<Diagnostic>) {
        match lab_view::<EtcdLab>(spec) {
            Ok(o) => check_etcd(spec, &o.settings(), out),
            Err(d) => out.push(d),
        }
    }
    fn lab_universe(&self, lab: &LabSpec) -> NodeUniverse {
        crate::plain_universe(self.kind(), EtcdLab::of(lab).node_names())
    }
    fn faults(&self) -> &'static [FaultAction] {
        crate::PROCESS_FAULTS
    }
    fn fault_hint(&self, action: FaultAction) -> Option<&'static str> {
        match action {
            FaultAction::CutReplication => Some(
                "cut_replication is for PostgreSQL standbys; an etcd follower has no replication link to cut (use pause)",
            ),
            _ => Some("an etcd lab has no proxied links (links = \"direct\" only)"),
        }
    }
    fn check_step(
        &self,
        spec: &LoadedSpec,
        s: &FaultStep,
        _u: &NodeUniverse,
        out: &mut Vec<Diagnostic>,
    ) {
        crate::refuse_kill_process(spec, s, out);
    }
}

#[async_trait::async_trait]
impl LabDriver for EtcdStore {
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
        let st = state.clone();
        tokio::task::spawn_blocking(move || lab::status(&st))
            .await
            .unwrap_or_default()
    }
    fn settings(&self, spec: &LabSpec) -> String {
        let e = EtcdLab::of(spec).settings();
        format!(
            "etcd: members {}, heartbeat {}, election {}",
            e.members.get_ref(),
            e.heartbeat.get_ref(),
            e.election.get_ref()
        )
    }
}

/// Opens [`target::EtcdStore`]s; node addresses are `http://host:port`.
#[derive(Debug)]
pub struct EtcdOpener;

impl TargetOpener for EtcdOpener {
    fn kind(&self) -> &'static str {
        "etcd"
    }
    fn open(
        &self,
        nodes: &[TargetNode],
        _password: Option<&str>,
        run_id: &str,
    ) -> Result<Box<dyn Target>, TargetError> {
        Ok(Box::new(target::EtcdStore::new(nodes, run_id)?))
    }
}

impl Store for EtcdStore {
    fn assess(&self) -> Option<&'static dyn firedrill_assess::AssessKind> {
        Some(&assess::EtcdAssess)
    }
    fn failovers(&self) -> &'static [&'static dyn firedrill_assess::FailoverKind] {
        &[&assess::RaftFailover]
    }
    fn watch(&self) -> Option<&'static dyn firedrill_watch::WatchKind> {
        Some(&probe::EtcdWatch)
    }
    fn lab_target(
        &self,
        _state: &LabState,
        _t: Option<&TargetSpec>,
        _w: &WorkloadSpec,
    ) -> Arc<dyn TargetOpener> {
        Arc::new(EtcdOpener)
    }
    fn endpoint_target(&self, _t: &TargetSpec, _w: &WorkloadSpec) -> Arc<dyn TargetOpener> {
        Arc::new(EtcdOpener)
    }
}
