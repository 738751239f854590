//! etcd (Raft): a lab of 3 or 5 members, and a target that puts one key
//! per ledger entry through the v3 JSON gateway. With `[lab.backup] tool =
//! "etcd-snapshot"` the lab takes snapshots and restores every member from
//! the newest (`backup.rs`): the data disaster of losing every member.

mod backup;
pub mod config;
pub mod assess;
pub mod lab;
pub mod probe;
pub mod target;

use crate::Store;
use config::{check_backup, check_etcd, EtcdLab, SNAPSHOT_TOOL};
use firedrill_lab::{LabDriver, LabError, LabState, NodeStatus};
use firedrill_spec::{
    lab_view, Diagnostic, FaultAction, FaultStep, LabSpec, LoadedSpec, NodeUniverse, RestoreSpec,
    StoreSpec, TargetSpec, WorkloadSpec,
};
use firedrill_targets::{Target, TargetError, TargetNode, TargetOpener};
use std::path::PathBuf;
use std::sync::Arc;

pub struct EtcdStore;

/// Process faults, and the data disaster of losing members: a snapshot
/// (`backup`) and `wipe`.
const ETCD_FAULTS: &[FaultAction] = &[
    FaultAction::Kill,
    FaultAction::Stop,
    FaultAction::Pause,
    FaultAction::Resume,
    FaultAction::Backup,
    FaultAction::Wipe,
];

impl StoreSpec for EtcdStore {
    fn kind(&self) -> &'static str {
        "etcd"
    }
    fn lab_keys(&self) -> &'static [&'static str] {
        firedrill_spec::field_names::<EtcdLab>()
    }
    fn check_lab(&self, spec: &LoadedSpec, _lab: &LabSpec, out: &mut Vec<Diagnostic>) {
        match lab_view::<EtcdLab>(spec) {
            Ok(o) => {
                check_etcd(spec, &o.settings(), out);
                if let Some(b) = &o.backup {
                    check_backup(spec, b, out);
                }
            }
            Err(d) => out.push(d),
        }
    }
    fn lab_universe(&self, lab: &LabSpec) -> NodeUniverse {
        let o = EtcdLab::of(lab);
        let mut u = crate::plain_universe(self.kind(), o.node_names());
        u.backup = o.backup.map(|b| b.tool.into_inner());
        u
    }
    fn faults(&self) -> &'static [FaultAction] {
        ETCD_FAULTS
    }
    fn backup_tools(&self) -> &'static [&'static str] {
        &[SNAPSHOT_TOOL]
    }
    /// A snapshot restore brings back the newest snapshot, whole: there is
    /// no log after it to stop in, nor an archive to flush.
    fn check_restore(&self, spec: &LoadedSpec, r: &RestoreSpec, out: &mut Vec<Diagnostic>) {
        if r.target.get_ref() != "latest" {
            out.push(spec.at(
                r.target.span(),
                format!(
                    "an etcd snapshot restore brings back the newest snapshot: give target = \"latest\", not {:?}",
                    r.target.get_ref()
                ),
            ));
        }
        if let Some(f) = &r.flush_archive {
            out.push(spec.at(
                f.span(),
                "an etcd snapshot has no archive to flush: remove flush_archive",
            ));
        }
        if let Some(i) = r.into.as_ref().filter(|i| i.get_ref() == "new_node") {
            out.push(spec.at(
                i.span(),
                "an etcd snapshot restore rebuilds every member where it was: into = \"new_node\" is built for PostgreSQL labs",
            ));
        }
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
        tokio::task::spawn_blocking(move || {
            let mut rows = lab::status(&st);
            // On the first member's row: the newest snapshot and its age.
            if let (Some(note), Some(r)) = (backup::status_note(&st), rows.first_mut()) {
                r.replication = Some(match r.replication.take() {
                    Some(rep) => format!("{rep}; {note}"),
                    None => note,
                });
            }
            rows
        })
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
    fn restorer(&self, state: &LabState) -> Option<Arc<dyn firedrill_targets::Restorer>> {
        backup::enabled(state).then(|| {
            Arc::new(backup::EtcdBackups {
                dir: state.dir.clone(),
            }) as Arc<dyn firedrill_targets::Restorer>
        })
    }
}
