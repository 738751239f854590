//! NATS JetStream (Raft per stream): a lab of 3 or 5 servers in one
//! cluster, and a target that publishes one message per ledger entry to
//! a replicated file stream, over a raw-protocol client ([`proto`]) that
//! keeps "not sent" apart from "sent, no answer".

pub mod config;
pub mod lab;
pub mod proto;
pub mod target;

use crate::Store;
use config::{check_nats, NatsLab};
use firedrill_lab::{LabDriver, LabError, LabState, NodeStatus};
use firedrill_spec::{
    lab_view, Diagnostic, FaultAction, FaultStep, LabSpec, LoadedSpec, NodeUniverse, StoreSpec,
    TargetSpec, WorkloadSpec,
};
use firedrill_targets::{Target, TargetError, TargetNode, TargetOpener};
use std::path::PathBuf;
use std::sync::Arc;

pub struct NatsStore;

impl StoreSpec for NatsStore {
    fn kind(&self) -> &'static str {
        "nats"
    }
    fn lab_keys(&self) -> &'static [&'static str] {
        firedrill_spec::field_names::<NatsLab>()
    }
    fn check_lab(&self, spec: &LoadedSpec, _lab: &LabSpec, out: &mut Vec<Diagnostic>) {
        match lab_view::<NatsLab>(spec) {
            Ok(o) => check_nats(spec, &o.settings(), out),
            Err(d) => out.push(d),
        }
    }
    fn lab_universe(&self, lab: &LabSpec) -> NodeUniverse {
        crate::plain_universe(self.kind(), NatsLab::of(lab).node_names())
    }
    fn faults(&self) -> &'static [FaultAction] {
        crate::PROCESS_FAULTS
    }
    fn fault_hint(&self, action: FaultAction) -> Option<&'static str> {
        match action {
            FaultAction::CutReplication => Some(
                "cut_replication is for PostgreSQL standbys; a JetStream replica has no replication link to cut (use pause)",
            ),
            _ => Some("a NATS lab has no proxied links (links = \"direct\" only)"),
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
impl LabDriver for NatsStore {
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
        let n = NatsLab::of(spec).settings();
        format!(
            "nats: nodes {}, stream replicas {}, file storage",
            n.nodes.get_ref(),
            n.replicas.get_ref()
        )
    }
}

/// Every node's monitor port, `(node, http://127.0.0.1:PORT)`: the
/// target needs it to name the JetStream meta leader as the primary
/// before the drill's stream (and so its leader) exists.
pub fn monitors(state: &LabState) -> Vec<(String, String)> {
    state
        .nodes
        .iter()
        .filter_map(|n| Some((n.name.clone(), format!("http://127.0.0.1:{}", n.api_port?))))
        .collect()
}

/// Opens [`target::NatsStore`]s; node addresses are `nats://host:port`.
#[derive(Debug, Default)]
pub struct NatsOpener {
    /// Monitor URLs by node (empty for explicit endpoints).
    pub monitors: Vec<(String, String)>,
    /// The stream's replica count; `None` is one per node (at most 5).
    pub replicas: Option<usize>,
}

impl TargetOpener for NatsOpener {
    fn kind(&self) -> &'static str {
        "nats"
    }
    fn open(
        &self,
        nodes: &[TargetNode],
        _password: Option<&str>,
        run_id: &str,
    ) -> Result<Box<dyn Target>, TargetError> {
        Ok(Box::new(target::NatsStore::new(
            nodes,
            &self.monitors,
            self.replicas,
            run_id,
        )?))
    }
}

impl Store for NatsStore {
    fn lab_target(
        &self,
        state: &LabState,
        _t: Option<&TargetSpec>,
        _w: &WorkloadSpec,
    ) -> Arc<dyn TargetOpener> {
        let replicas = *NatsLab::of(&state.spec).settings().replicas.get_ref();
        Arc::new(NatsOpener {
            monitors: monitors(state),
            replicas: Some(replicas as usize),
        })
    }
    fn endpoint_target(&self, _t: &TargetSpec, _w: &WorkloadSpec) -> Arc<dyn TargetOpener> {
        Arc::new(NatsOpener::default())
    }
    fn client_address(&self, port: u16) -> String {
        format!("nats://127.0.0.1:{port}")
    }
}
