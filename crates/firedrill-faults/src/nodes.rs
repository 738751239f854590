//! Where a fault finds what it acts on: a node's processes and its proxied
//! links.

use crate::context::FaultContext;
use crate::FaultError;
use firedrill_proc::ProcHandle;
use firedrill_spec::LinkScope;
use std::path::PathBuf;

/// Where firedrill finds a node's process, for process faults.
#[derive(Debug, Clone)]
pub enum ProcSource {
    None,
    /// Recorded when firedrill started it (labs).
    Handle(ProcHandle),
    /// A pid file the user pointed at (read at injection time).
    PidFile(PathBuf),
    /// A PostgreSQL node run by a manager (Patroni): the manager recorded
    /// when firedrill started it, and the postmaster read from the data
    /// directory's postmaster.pid at injection time (the manager may have
    /// restarted it). Node death is both; `kill_process = "postgres"` only
    /// the postmaster.
    Managed {
        manager: ProcHandle,
        data_dir: PathBuf,
    },
}

/// One proxied link of a node.
#[derive(Debug, Clone)]
pub struct NodeLink {
    pub kind: LinkScope,
    /// Proxy name at `api`.
    pub proxy: String,
    /// For a replication link: the node at the other end (the primary).
    pub peer: Option<String>,
    pub api: std::net::SocketAddr,
}

/// The processes a process fault on `node` signals, in order: a managed
/// node's manager first (so it cannot restart its server in between), then
/// its postmaster as it runs now.
pub(crate) fn procs_of(
    ctx: &dyn FaultContext,
    node: &str,
    process: Option<&str>,
) -> Result<Vec<ProcHandle>, FaultError> {
    let n = ctx
        .node(node)
        .ok_or_else(|| FaultError::Invalid(format!("no node named {node}")))?;
    match n.proc {
        ProcSource::Handle(h) => Ok(vec![*h]),
        ProcSource::PidFile(p) => Ok(vec![ProcHandle::from_pid_file(p)?]),
        ProcSource::Managed { manager, data_dir } => {
            let post = ProcHandle::from_postmaster_pid(data_dir)
                .ok()
                .filter(|h| h.is_alive());
            match (process, post) {
                (Some(_), Some(p)) => Ok(vec![p]),
                (Some(_), None) => Err(FaultError::Invalid(format!(
                    "{node} has no running postmaster (postmaster.pid in {})",
                    data_dir.display()
                ))),
                (None, p) => Ok(std::iter::once(*manager).chain(p).collect()),
            }
        }
        ProcSource::None => Err(FaultError::Invalid(format!("no pid known for {node}"))),
    }
}

/// Checks that a process fault on `node` has a process to signal, without
/// reading a pid file (that happens at injection, when the pid is current).
pub(crate) fn validate_procs(ctx: &dyn FaultContext, node: &str) -> Result<(), FaultError> {
    match ctx.node(node).map(|n| n.proc) {
        None => Err(FaultError::Invalid(format!("no node named {node}"))),
        Some(ProcSource::None) => Err(FaultError::Invalid(format!("no pid known for {node}"))),
        Some(_) => Ok(()),
    }
}

/// The proxied links a network fault on `node` hits: its clients' link,
/// its own replication link, or (all) both and every replication link
/// whose other end is `node`; `peers` is all but the clients' link.
pub(crate) fn select_links(ctx: &dyn FaultContext, node: &str, scope: LinkScope) -> Vec<NodeLink> {
    let mut out = Vec::new();
    for n in ctx.nodes() {
        for l in n.links {
            let own = n.name == node;
            let hit = match scope {
                LinkScope::Clients => own && l.kind == LinkScope::Clients,
                LinkScope::Replication => own && l.kind == LinkScope::Replication,
                LinkScope::All => own || l.peer.as_deref() == Some(node),
                LinkScope::Peers => {
                    (own && l.kind != LinkScope::Clients) || l.peer.as_deref() == Some(node)
                }
            };
            if hit {
                out.push(l.clone());
            }
        }
    }
    out
}
