//! Apache Kafka (KRaft): a lab of 3 or 5 brokers (combined with the
//! controllers, or beside 3 separate ones), a target that produces one
//! record per ledger entry with librdkafka and audits the drill topic, and
//! a watch probe of the partitions' ISR.

pub mod config;
pub mod connect;
#[cfg(feature = "redis")]
pub mod outbox;
pub mod assess;
pub mod lab;
pub mod probe;
pub(crate) mod start;
mod status;
pub mod target;

use crate::Store;
use config::{KafkaLab, KafkaTarget as KafkaTargetOptions};
use firedrill_lab::{LabDriver, LabError, LabState, NodeStatus};
use firedrill_spec::{
    lab_view, target_view, Diagnostic, DrillSpec, FaultAction, FaultStep, LabSpec,
    Links, LoadedSpec, NodeUniverse, StoreSpec, TargetSpec, WorkloadSpec,
};
use firedrill_targets::{Target, TargetError, TargetNode, TargetOpener};
use std::path::PathBuf;
use std::sync::Arc;

pub struct KafkaStore;

impl StoreSpec for KafkaStore {
    fn kind(&self) -> &'static str {
        "kafka"
    }
    fn lab_keys(&self) -> &'static [&'static str] {
        firedrill_spec::field_names::<KafkaLab>()
    }
    fn target_keys(&self) -> &'static [&'static str] {
        firedrill_spec::field_names::<KafkaTargetOptions>()
    }
    fn links(&self) -> &'static [Links] {
        &[Links::Direct, Links::Proxied, Links::Netns]
    }
    fn check_lab(&self, spec: &LoadedSpec, _lab: &LabSpec, out: &mut Vec<Diagnostic>) {
        match lab_view::<KafkaLab>(spec) {
            Ok(o) => config::check_lab(spec, &o, out),
            Err(d) => out.push(d),
        }
    }
    /// `node = "leader"` (with `partition = N`) and `node = "controller"`.
    fn roles(&self) -> &'static [&'static str] {
        &["leader", "controller"]
    }
    fn lab_universe(&self, lab: &LabSpec) -> NodeUniverse {
        let o = KafkaLab::of(lab);
        let mut names = o.node_names();
        let mut zones = std::collections::BTreeMap::<String, Vec<String>>::new();
        for (i, n) in names.iter().enumerate() {
            if let Some(z) = o.zone_of(i) {
                zones.entry(z).or_default().push(n.clone());
            }
        }
        if o.cdc.is_some() {
            // The Connect worker: process faults only (it has no link).
            names.push(connect::CONNECT.into());
        }
        NodeUniverse {
            with_pid: names.iter().cloned().collect(),
            names,
            proxied: lab.links == Links::Proxied,
            netns: lab.links == Links::Netns,
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
        match target_view::<KafkaTargetOptions>(spec) {
            Ok(o) => config::check_target(spec, &o, out),
            Err(e) => out.push(e),
        }
    }
    fn faults(&self) -> &'static [FaultAction] {
        crate::PROXIED_FAULTS
    }
    fn fault_hint(&self, action: FaultAction) -> Option<&'static str> {
        (action == FaultAction::CutReplication).then_some(
            "cut_replication is a PostgreSQL fault; to cut a Kafka broker off from its followers use partition with link = \"peers\" (links = \"proxied\")",
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
        let process = [FaultAction::Kill, FaultAction::Stop, FaultAction::Pause];
        if s.node.as_ref().is_some_and(|n| n.get_ref() == connect::CONNECT)
            && !process.contains(s.action.get_ref())
        {
            out.push(spec.at(
                s.action.span(),
                "the Connect worker (node = \"connect\") takes process faults: kill, stop or pause",
            ));
        }
        crate::refuse_replication_link(spec, s, "a Kafka lab proxies each broker's peers path (replication and the KRaft quorum), not each replication link: use link = \"peers\"", out);
    }
}

#[async_trait::async_trait]
impl LabDriver for KafkaStore {
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
        let o = KafkaLab::of(spec);
        let k = o.settings();
        format!(
            "kafka {}: {} brokers{}, zones {}, replication_factor {}, min.insync.replicas {}, unclean.leader.election {}, replica.lag.time.max {}, broker.session.timeout {}, heartbeat {}, partitions {}",
            lab::KAFKA_VERSION,
            o.brokers(),
            if o.controller_count() > 0 {
                format!(" + {} controllers", o.controller_count())
            } else {
                " (combined with the controllers)".into()
            },
            o.zone_count(),
            k.replication_factor(),
            k.min_insync(),
            k.unclean_leader_election,
            firedrill_spec::Dur(k.replica_lag_time_max()),
            firedrill_spec::Dur(k.session_timeout()),
            firedrill_spec::Dur(k.heartbeat_interval()),
            k.partitions(),
        )
    }
}

/// Opens [`target::KafkaTarget`]s with the drill topic's settings and the
/// producer's.
#[derive(Debug, Clone)]
pub struct KafkaOpener {
    pub topic: target::TopicSettings,
    pub producer: config::Producer,
    pub lab: Option<target::LabInfo>,
}

impl TargetOpener for KafkaOpener {
    fn kind(&self) -> &'static str {
        "kafka"
    }
    fn open(
        &self,
        nodes: &[TargetNode],
        _password: Option<&str>,
        run_id: &str,
    ) -> Result<Box<dyn Target>, TargetError> {
        Ok(Box::new(target::KafkaTarget::new(
            nodes,
            run_id,
            self.topic.clone(),
            self.producer.clone(),
            self.lab.clone(),
        )?))
    }
}

impl Store for KafkaStore {
    fn fault_aux(&self) -> &'static [&'static str] {
        &[connect::CONNECT]
    }
    fn assess(&self) -> Option<&'static dyn firedrill_assess::AssessKind> {
        Some(&assess::KafkaAssess)
    }
    fn failovers(&self) -> &'static [&'static dyn firedrill_assess::FailoverKind] {
        &[&assess::KafkaFailover]
    }
    fn watch(&self) -> Option<&'static dyn firedrill_watch::WatchKind> {
        Some(&probe::KafkaWatch)
    }
    fn lab_target(
        &self,
        s: &LabState,
        t: Option<&TargetSpec>,
        w: &WorkloadSpec,
    ) -> Arc<dyn TargetOpener> {
        let o = KafkaLab::of(&s.spec);
        let k = o.settings();
        let libs = if s.dir.join("libs").is_dir() {
            s.dir.join("libs")
        } else {
            lab::find_libs(&o).unwrap_or_default()
        };
        Arc::new(KafkaOpener {
            topic: target::TopicSettings {
                partitions: k.partitions(),
                replication_factor: k.replication_factor(),
                min_insync: k.min_insync(),
                unclean: k.unclean_leader_election,
            },
            producer: KafkaTargetOptions::of(t).producer(w.op_timeout.get_ref().0),
            lab: Some(target::LabInfo {
                nodes: s
                    .nodes
                    .iter()
                    .map(|n| (n.name.clone(), n.data_dir.clone(), n.log_file.clone()))
                    .collect(),
                java: lab::find_java(&o).unwrap_or_else(|_| "java".into()),
                classpath: format!("{}/*", libs.display()),
                run_as: s.run_as.clone(),
                voters: lab::voter_addrs(s),
                dir: s.dir.clone(),
            }),
        })
    }
    fn endpoint_target(&self, t: &TargetSpec, w: &WorkloadSpec) -> Arc<dyn TargetOpener> {
        Arc::new(KafkaOpener {
            topic: target::TopicSettings {
                partitions: 3,
                replication_factor: 3,
                min_insync: 2,
                unclean: false,
            },
            producer: KafkaTargetOptions::of(Some(t)).producer(w.op_timeout.get_ref().0),
            lab: None,
        })
    }
}
