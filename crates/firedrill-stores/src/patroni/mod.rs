//! PostgreSQL managed by Patroni, with an etcd cluster as its DCS: the
//! PostgreSQL target, with Patroni's leader changes as failover signals.

pub mod config;
pub mod assess;
pub mod lab;
pub mod target;

use crate::postgres::{pg_universe, PgOpener, ALL_FAULTS};
use crate::Store;
use config::{check_patroni, PatroniLab};
use firedrill_lab::{LabDriver, LabError, LabState, NodeStatus};
use firedrill_spec::FaultAction;
use firedrill_spec::{
    lab_view, Diagnostic, FaultStep, LabSpec, LoadedSpec, NodeUniverse, StoreSpec, TargetSpec,
    WorkloadSpec,
};
use firedrill_targets::{FailoverWatch, Target, TargetError, TargetNode, TargetOpener};
use std::path::PathBuf;
use std::sync::Arc;

pub struct PatroniStore;

impl StoreSpec for PatroniStore {
    fn kind(&self) -> &'static str {
        "patroni"
    }
    fn lab_keys(&self) -> &'static [&'static str] {
        firedrill_spec::field_names::<PatroniLab>()
    }
    fn check_lab(&self, spec: &LoadedSpec, lab: &LabSpec, out: &mut Vec<Diagnostic>) {
        let o = match lab_view::<PatroniLab>(spec) {
            Ok(o) => o,
            Err(d) => return out.push(d),
        };
        if o.standbys == 0 || o.standbys > 2 {
            out.push(spec.at(
                lab.name.span(),
                "a patroni lab has 2 or 3 nodes: standbys must be 1 or 2",
            ));
        }
        for (k, v) in &o.settings {
            if matches!(v, toml::Value::Array(_) | toml::Value::Table(_)) {
                out.push(spec.at(
                    0..0,
                    format!("lab setting {k:?} must be a string, number or boolean"),
                ));
            }
        }
        check_patroni(spec, &o.settings(), out);
    }
    fn lab_universe(&self, lab: &LabSpec) -> NodeUniverse {
        let o = PatroniLab::of(lab);
        pg_universe(
            lab,
            o.node_names(),
            o.settings().synchronous_mode,
            self.kind(),
        )
    }
    fn faults(&self) -> &'static [FaultAction] {
        ALL_FAULTS
    }
    fn check_step(
        &self,
        spec: &LoadedSpec,
        s: &FaultStep,
        _u: &NodeUniverse,
        out: &mut Vec<Diagnostic>,
    ) {
        if let Some(kp) = &s.kill_process {
            if kp.get_ref() != "postgres" {
                out.push(spec.at(
                    kp.span(),
                    format!("kill_process must be \"postgres\" (the postmaster alone), not {:?}; leave it out to hit the whole node", kp.get_ref()),
                ));
            }
        }
    }
}

#[async_trait::async_trait]
impl LabDriver for PatroniStore {
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
        lab::stop(state)?;
        firedrill_lab::stop_nodes(&state.dcs)
    }
    async fn status(&self, state: &LabState) -> Vec<NodeStatus> {
        lab::status(state).await
    }
    fn settings(&self, spec: &LabSpec) -> String {
        let p = PatroniLab::of(spec).settings();
        let secs = |d: &firedrill_spec::Dur| d.0.as_secs();
        format!(
            "patroni: ttl {}, loop_wait {}, retry_timeout {}, maximum_lag_on_failover {}, synchronous_mode {}, synchronous_mode_strict {}",
            secs(p.ttl.get_ref()),
            secs(p.loop_wait.get_ref()),
            secs(p.retry_timeout.get_ref()),
            p.maximum_lag_on_failover,
            p.synchronous_mode,
            p.strict()
        )
    }
}

/// Patroni's REST API of every node, `(node, http://127.0.0.1:PORT)`.
pub fn apis(state: &LabState) -> Vec<(String, String)> {
    state
        .nodes
        .iter()
        .filter_map(|n| Some((n.name.clone(), format!("http://127.0.0.1:{}", n.api_port?))))
        .collect()
}

/// A PostgreSQL target whose failovers are watched on Patroni's REST API.
#[derive(Debug)]
pub struct PatroniOpener {
    pub api: Vec<(String, String)>,
}

struct Watch(Vec<(String, String)>);

#[async_trait::async_trait]
impl crate::postgres::target::WatchSource for Watch {
    async fn open(&self) -> Option<Box<dyn FailoverWatch>> {
        match target::PatroniWatch::new(&self.0).await {
            Ok(w) => Some(Box::new(w)),
            Err(e) => {
                tracing::warn!("patroni watch: {e}");
                None
            }
        }
    }
}

impl TargetOpener for PatroniOpener {
    fn kind(&self) -> &'static str {
        "patroni"
    }
    fn open(
        &self,
        nodes: &[TargetNode],
        password: Option<&str>,
        run_id: &str,
    ) -> Result<Box<dyn Target>, TargetError> {
        let pg = crate::postgres::target::PgStore::new(nodes, password, run_id)?;
        Ok(Box::new(pg.with_watch(Box::new(Watch(self.api.clone())))))
    }
}

impl Store for PatroniStore {
    fn failovers(&self) -> &'static [&'static dyn firedrill_assess::FailoverKind] {
        &[&assess::PatroniFailover]
    }
    fn lab_target(
        &self,
        state: &LabState,
        _t: Option<&TargetSpec>,
        _w: &WorkloadSpec,
    ) -> Arc<dyn TargetOpener> {
        Arc::new(PatroniOpener { api: apis(state) })
    }
    fn endpoint_target(&self, _t: &TargetSpec, _w: &WorkloadSpec) -> Arc<dyn TargetOpener> {
        Arc::new(PgOpener::default())
    }
    fn client_address(&self, port: u16) -> String {
        crate::postgres::pg_client_address(port)
    }
    fn managed_nodes(&self) -> bool {
        true
    }
    fn heal_target(&self) -> Option<Arc<dyn TargetOpener>> {
        Some(Arc::new(PgOpener::default()))
    }
}
