//! `links = "proxied"`: every node's client traffic, and every standby's
//! replication link, run through firedrill's fault proxy, so a drill can cut
//! or slow exactly one link. The proxy is a `firedrill proxy` process the
//! lab starts and records like its servers.

use crate::{LabError, LabState};
use firedrill_faults::proxy::ProxyApi;
use firedrill_proc::ProcHandle;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The lab's proxy process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProxyState {
    pub api: SocketAddr,
    pub proc: Option<ProcHandle>,
    pub log_file: PathBuf,
}

/// One proxied link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// Clients → node.
    Clients,
    /// Standby `node` → its primary `peer` (WAL flows back through it).
    Replication,
    /// Everyone but the clients → `node` (Redis: sentinels and replicas
    /// reach the node through it, because the node announces its address).
    Peers,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkState {
    /// Proxy name, e.g. `n1-clients`, `n2-replication`.
    pub name: String,
    pub kind: LinkKind,
    /// The node whose link it is.
    pub node: String,
    /// Replication: the primary at the other end.
    pub peer: Option<String>,
    pub listen_port: u16,
    pub upstream_port: u16,
}

/// The firedrill binary that serves the proxy: `FIREDRILL_BIN`, else the
/// running executable when it is firedrill itself.
fn proxy_bin() -> Result<PathBuf, LabError> {
    if let Some(p) = std::env::var_os("FIREDRILL_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| LabError::Proxy(e.to_string()))?;
    if exe.file_name().and_then(|n| n.to_str()) == Some("firedrill") {
        Ok(exe)
    } else {
        Err(LabError::Proxy(
            "links = \"proxied\" needs the firedrill binary to run the proxy: set FIREDRILL_BIN"
                .into(),
        ))
    }
}

/// Starts the proxy and creates a proxy per link. Called before the
/// servers start: a proxy does not need its upstream to exist yet.
pub fn start(state: &mut LabState) -> Result<(), LabError> {
    let primary = state.nodes[0].clone();
    let mut wanted = Vec::new();
    for (i, n) in state.nodes.iter().enumerate() {
        wanted.push((LinkKind::Clients, n.name.clone(), None, n.port));
        if i > 0 {
            wanted.push((
                LinkKind::Replication,
                n.name.clone(),
                Some(primary.name.clone()),
                primary.port,
            ));
        }
    }
    start_links(state, wanted)
}

/// Starts the proxy and one proxy per `(kind, node, peer, upstream port)`.
pub fn start_links(
    state: &mut LabState,
    wanted: Vec<(LinkKind, String, Option<String>, u16)>,
) -> Result<(), LabError> {
    let bin = proxy_bin()?;
    // All ports at once, so no two of them can collide: the API and one
    // per link.
    let picked = crate::pick_ports(wanted.len() + 1, None, &[])?;
    let mut ports = picked.into_iter();
    let mut free_port = || {
        ports
            .next()
            .ok_or_else(|| LabError::NoFreePort("ran out of picked ports".into()))
    };
    let api: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let log = state.dir.join("logs").join("proxy.log");
    let api_s = api.to_string();
    // The proxy runs as the servers' user: it needs no privilege.
    let proc = firedrill_proc::spawn_server(
        &bin,
        &["proxy", "--api", &api_s],
        state.run_as.as_ref(),
        &log,
    )?;
    state.proxy = Some(ProxyState {
        api,
        proc: Some(proc),
        log_file: log.clone(),
    });
    state.save()?;
    let client = ProxyApi::new(api);
    let end = Instant::now() + Duration::from_secs(10);
    while client.call("GET", "/version", None).is_err() {
        if Instant::now() > end || !proc.is_alive() {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(LabError::Proxy(format!(
                "the proxy did not start; its log:\n{tail}"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut links = Vec::new();
    for (kind, node, peer, upstream_port) in wanted {
        let suffix = match kind {
            LinkKind::Clients => "clients",
            LinkKind::Replication => "replication",
            LinkKind::Peers => "peers",
        };
        links.push(LinkState {
            name: format!("{node}-{suffix}"),
            kind,
            node,
            peer,
            listen_port: free_port()?,
            upstream_port,
        });
    }
    for l in &links {
        client
            .create_proxy(
                &l.name,
                &format!("127.0.0.1:{}", l.listen_port),
                &format!("127.0.0.1:{}", l.upstream_port),
            )
            .map_err(|e| LabError::Proxy(e.to_string()))?;
    }
    state.links = links;
    state.save()
}

/// Stops the proxy process (its links die with it).
pub fn stop(state: &LabState) {
    if let Some(p) = state.proxy.as_ref().and_then(|p| p.proc) {
        if p.is_alive() {
            let _ = p.signal_tree(nix::sys::signal::Signal::SIGCONT);
            let _ = p.signal(nix::sys::signal::Signal::SIGTERM);
            if !p.wait_exit(Duration::from_secs(5)) {
                let _ = p.signal_tree(nix::sys::signal::Signal::SIGKILL);
                p.wait_exit(Duration::from_secs(5));
            }
        }
    }
}

impl LabState {
    /// The port a standby's replication connects to: its replication
    /// proxy, or the primary itself.
    pub fn replication_port(&self, standby: &str) -> Option<u16> {
        self.links
            .iter()
            .find(|l| l.kind == LinkKind::Replication && l.node == standby)
            .map(|l| l.listen_port)
    }

    /// The port the workload's clients reach `node` on in a proxied lab:
    /// its clients proxy. The store writes it in its own address syntax.
    pub fn client_port(&self, node: &str) -> Option<u16> {
        self.links
            .iter()
            .find(|l| l.kind == LinkKind::Clients && l.node == node)
            .map(|l| l.listen_port)
    }

    /// The port a node announces to its peers: its peers proxy in a
    /// proxied Redis lab.
    pub fn peers_port(&self, node: &str) -> Option<u16> {
        self.links
            .iter()
            .find(|l| l.kind == LinkKind::Peers && l.node == node)
            .map(|l| l.listen_port)
    }
}
