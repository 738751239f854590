//! PostgreSQL streaming replication: a lab of a primary and standbys, and
//! a target that inserts one row per ledger entry.

mod archive;
mod backup;
pub mod assess;
mod basebackup;
pub mod config;
pub mod lab;
pub mod pgbackrest;
pub mod probe;
mod scratch;
pub mod status;
pub mod target;
mod tools;

use crate::Store;
use config::{check_pg_options, PgLab, Replication};
use firedrill_lab::{LabDriver, LabError, LabState, NodeStatus};
use firedrill_spec::{
    lab_view, Diagnostic, EndpointSpec, FaultAction, LabSpec, Links, LoadedSpec, NodeUniverse,
    StoreSpec, TargetSpec, WorkloadSpec,
};
use firedrill_targets::{Target, TargetError, TargetNode, TargetOpener};
use std::path::PathBuf;
use std::sync::Arc;

pub use lab::{find_bin_dir, multi_host_conninfo};

/// Every fault firedrill has applies to PostgreSQL.
#[cfg_attr(not(feature = "patroni"), allow(dead_code))]
pub(crate) const ALL_FAULTS: &[FaultAction] = &[
    FaultAction::Kill,
    FaultAction::Stop,
    FaultAction::Pause,
    FaultAction::Resume,
    FaultAction::CutReplication,
    FaultAction::Partition,
    FaultAction::Latency,
    FaultAction::Bandwidth,
    FaultAction::Reset,
];

/// A plain PostgreSQL lab also takes data disasters (its restore is built).
pub(crate) const PG_FAULTS: &[FaultAction] = &[
    FaultAction::Kill,
    FaultAction::Stop,
    FaultAction::Pause,
    FaultAction::Resume,
    FaultAction::CutReplication,
    FaultAction::Partition,
    FaultAction::Latency,
    FaultAction::Bandwidth,
    FaultAction::Reset,
    FaultAction::DeleteRows,
    FaultAction::UpdateRows,
    FaultAction::Truncate,
    FaultAction::DropTable,
    FaultAction::Sql,
    FaultAction::RemoveWal,
];

pub struct PostgresStore;

impl StoreSpec for PostgresStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }
    fn lab_keys(&self) -> &'static [&'static str] {
        firedrill_spec::field_names::<PgLab>()
    }
    fn target_keys(&self) -> &'static [&'static str] {
        &["outbox"]
    }
    fn links(&self) -> &'static [Links] {
        &[Links::Direct, Links::Proxied, Links::Netns]
    }
    fn check_lab(&self, spec: &LoadedSpec, lab: &LabSpec, out: &mut Vec<Diagnostic>) {
        match lab_view::<PgLab>(spec) {
            Ok(o) => check_pg_options(spec, lab, &o, 8, out),
            Err(d) => out.push(d),
        }
    }
    fn lab_universe(&self, lab: &LabSpec) -> NodeUniverse {
        let o = PgLab::of(lab);
        let mut u = pg_universe(
            lab,
            o.node_names(),
            o.replication == Replication::Sync,
            self.kind(),
        );
        u.backup = o.backup.as_ref().map(|b| b.tool.get_ref().clone());
        u
    }
    fn check_endpoint(
        &self,
        _spec: &LoadedSpec,
        n: &EndpointSpec,
        _out: &mut Vec<Diagnostic>,
    ) -> bool {
        n.pid_file.is_some() || n.data_dir.is_some()
    }
    fn pid_source(&self) -> &'static str {
        "data_dir or pid_file"
    }
    fn endpoint_client_proxy(&self) -> bool {
        // The embedded proxy rewrites libpq conninfos.
        true
    }
    fn faults(&self) -> &'static [FaultAction] {
        PG_FAULTS
    }
    fn backup_tools(&self) -> &'static [&'static str] {
        &["pgbackrest", "basebackup"]
    }
    fn check_step(
        &self,
        spec: &LoadedSpec,
        s: &firedrill_spec::FaultStep,
        u: &NodeUniverse,
        out: &mut Vec<Diagnostic>,
    ) {
        crate::refuse_kill_process(spec, s, out);
        // The archive remove_wal reaches into is pgBackRest's repository.
        if *s.action.get_ref() == FaultAction::RemoveWal
            && u.backup.as_deref().is_some_and(|t| t != "pgbackrest")
        {
            out.push(spec.at(
                s.action.span(),
                "remove_wal takes a segment out of a pgBackRest repository: it needs [lab.backup] tool = \"pgbackrest\"",
            ));
        }
    }
}

/// The universe of a PostgreSQL-based lab (plain or under Patroni).
pub(crate) fn pg_universe(
    lab: &LabSpec,
    names: Vec<String>,
    sync: bool,
    kind: &str,
) -> NodeUniverse {
    NodeUniverse {
        with_pid: names.iter().cloned().collect(),
        names,
        sync,
        proxied: lab.links == Links::Proxied,
        netns: lab.links == Links::Netns,
        clients_proxy: false,
        kind: kind.into(),
        ..NodeUniverse::default()
    }
}

#[async_trait::async_trait]
impl LabDriver for PostgresStore {
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
        // A restore's scratch nodes first: they are recorded beside
        // state.json, not in it.
        let scratch = scratch::stop_all(&state.dir);
        firedrill_lab::stop_nodes(&state.nodes)?;
        scratch
    }
    async fn status(&self, state: &LabState) -> Vec<NodeStatus> {
        let mut rows = status::pg_status(state).await;
        rows.extend(scratch::status(state).await);
        let st = state.clone();
        if let Ok(Some(note)) = tokio::task::spawn_blocking(move || backup::status_note(&st)).await {
            // On the first node's row: the lab backs up and archives n1.
            if let Some(r) = rows.first_mut() {
                r.replication = Some(match r.replication.take() {
                    Some(rep) => format!("{rep}; {note}"),
                    None => note,
                });
            }
        }
        rows
    }
    fn settings(&self, spec: &LabSpec) -> String {
        match PgLab::of(spec).replication {
            Replication::Async => "async".into(),
            Replication::Sync => "sync".into(),
        }
    }
}

/// Opens [`target::PgStore`]s.
#[derive(Debug)]
/// Opens PostgreSQL targets. `outbox`: each write also inserts its event
/// into `firedrill_outbox`, in the same transaction (an outbox capability's
/// source domain; the target option `outbox = true`).
#[derive(Default)]
pub struct PgOpener {
    pub outbox: bool,
}

impl PgOpener {
    fn of(t: Option<&TargetSpec>) -> PgOpener {
        PgOpener {
            outbox: t
                .and_then(|t| t.options.get("outbox"))
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
        }
    }
}

impl TargetOpener for PgOpener {
    fn kind(&self) -> &'static str {
        "postgres"
    }
    fn open(
        &self,
        nodes: &[TargetNode],
        password: Option<&str>,
        run_id: &str,
    ) -> Result<Box<dyn Target>, TargetError> {
        Ok(Box::new(
            target::PgStore::new(nodes, password, run_id)?.with_outbox(self.outbox),
        ))
    }
}

impl Store for PostgresStore {
    fn assess(&self) -> Option<&'static dyn firedrill_assess::AssessKind> {
        Some(&assess::PgAssess)
    }
    fn watch(&self) -> Option<&'static dyn firedrill_watch::WatchKind> {
        Some(&probe::PgWatch)
    }
    fn restorer(&self, state: &LabState) -> Option<Arc<dyn firedrill_targets::Restorer>> {
        backup::enabled(state)?;
        Some(Arc::new(backup::PgRestorer {
            dir: state.dir.clone(),
            busy: Arc::default(),
        }))
    }
    fn lab_target(
        &self,
        _state: &LabState,
        t: Option<&TargetSpec>,
        _w: &WorkloadSpec,
    ) -> Arc<dyn TargetOpener> {
        Arc::new(PgOpener::of(t))
    }
    fn endpoint_target(&self, t: &TargetSpec, _w: &WorkloadSpec) -> Arc<dyn TargetOpener> {
        Arc::new(PgOpener::of(Some(t)))
    }
    fn client_address(&self, port: u16) -> String {
        pg_client_address(port)
    }
    fn endpoint_pid_file(&self, n: &EndpointSpec) -> Option<PathBuf> {
        // PostgreSQL keeps its pid in the data directory.
        n.pid_file
            .clone()
            .or_else(|| n.data_dir.as_ref().map(|d| d.join("postmaster.pid")))
    }
    fn endpoint_redirect(
        &self,
        name: &str,
        address: &str,
        proxy_host: &str,
        proxy_port: u16,
    ) -> Result<(String, String), String> {
        let pg = target::parse_node(name, address, None).map_err(|e| e.to_string())?;
        let upstream = target::endpoint(&pg.config);
        let client = target::redirect(address, proxy_host, proxy_port)
            .map_err(|e| format!("node {name}: {e}"))?;
        Ok((upstream, client))
    }
    fn heal_target(&self) -> Option<Arc<dyn TargetOpener>> {
        Some(Arc::new(PgOpener::default()))
    }
}

/// A libpq conninfo for a clients proxy on loopback.
pub(crate) fn pg_client_address(port: u16) -> String {
    format!("host=127.0.0.1 port={port} user=postgres dbname=postgres")
}
