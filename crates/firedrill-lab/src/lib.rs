//! The machinery every lab shares: a lab directory with `state.json`, the
//! servers recorded in it, free loopback ports, proxied or netns links,
//! and `up`, `down`, `reset` and `status`. What one kind of store runs in
//! it is that store's [`LabDriver`], in its folder in `firedrill-stores`.
//!
//! A lab is a directory holding `state.json`, `data/<node>/`,
//! `logs/<node>.log` and whatever else its store needs. Every server is
//! started by us through [`firedrill_proc::spawn_server`] and its
//! [`ProcHandle`] is recorded in `state.json` as soon as it exists, so that
//! `down` (in this or a later process) stops exactly what was started and
//! nothing else.
//!
//! `up`, `down` and `reset` are synchronous and never create a tokio
//! runtime, so they can be called from inside a multi-thread runtime
//! (preferably via `spawn_blocking`). `status` is async.

mod error;
pub mod links;
pub mod netns;
mod status;
mod util;

pub use error::LabError;
pub use status::{render_status, NodeStatus};
pub use util::{log_tail, poll, wait_started};

use firedrill_proc::{ProcHandle, RunAs};
use firedrill_spec::LabSpec;
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How one kind of store runs in a lab. The generic `up`, `down` and
/// `reset` below call it; it never needs to know about the others.
#[async_trait::async_trait]
pub trait LabDriver: Send + Sync {
    /// Creates the lab in an absent or empty `dir`. On failure it stops
    /// whatever it started (through [`teardown`]): there are no half labs.
    fn build(
        &self,
        spec: &LabSpec,
        dir: PathBuf,
        preferred_ports: &[u16],
        progress: &mut dyn FnMut(&str),
    ) -> Result<LabState, LabError>;
    /// Stops the lab's servers, in the order the store needs.
    fn stop(&self, state: &LabState) -> Result<(), LabError> {
        stop_nodes(&state.sentinels)?;
        stop_nodes(&state.nodes)?;
        stop_nodes(&state.dcs)
    }
    /// What each node is doing now, asked of the servers. Never fails.
    async fn status(&self, state: &LabState) -> Vec<NodeStatus>;
    /// The settings that set this lab's RPO and RTO, for run records.
    fn settings(&self, spec: &LabSpec) -> String;
}

const STATE_FILE: &str = "state.json";
/// How long a server may take to accept connections after it started.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What the lab was started as; saved as `<dir>/state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    pub name: String,
    /// Absolute.
    pub dir: PathBuf,
    /// Stored as plain JSON; see [`spec_json`] for why loading goes through TOML.
    #[serde(with = "spec_json")]
    pub spec: LabSpec,
    pub bin_dir: PathBuf,
    pub run_as: Option<RunAs>,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub nodes: Vec<NodeState>,
    /// The fault proxy of a `links = "proxied"` lab.
    #[serde(default)]
    pub proxy: Option<links::ProxyState>,
    /// Proxied links (empty for direct labs).
    #[serde(default)]
    pub links: Vec<links::LinkState>,
    /// The bridge of a `links = "netns"` lab.
    #[serde(default)]
    pub netns: Option<netns::NetnsState>,
    /// A Patroni lab's DCS: the etcd members it started for Patroni.
    #[serde(default)]
    pub dcs: Vec<NodeState>,
    /// A lab's auxiliary servers: a Redis lab's sentinels (`conninfo` is
    /// their `host:port`), a Kafka mirror lab's MirrorMaker 2.
    #[serde(default)]
    pub sentinels: Vec<NodeState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Primary,
    Standby,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeState {
    /// n1, n2, …
    pub name: String,
    /// The role at `up`; a drill may have changed it since (see `status`).
    pub initial_role: Role,
    pub host: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub log_file: PathBuf,
    /// The postmaster, recorded when we started it; None until then.
    pub proc: Option<ProcHandle>,
    /// How firedrill reaches the node, in the store's own syntax: libpq
    /// key=value, no password (the lab trusts loopback and, in a netns lab,
    /// its bridge subnet), or `http://127.0.0.1:PORT` for an etcd member.
    pub conninfo: String,
    /// etcd: the member's peer (Raft) port.
    #[serde(default)]
    pub peer_port: Option<u16>,
    /// Patroni: the node's REST API port.
    #[serde(default)]
    pub api_port: Option<u16>,
    /// `links = "netns"`: the node's namespace, veth pair and address.
    #[serde(default)]
    pub net: Option<netns::NodeNet>,
    /// The failure domain (zone, rack) the node is in, when the lab has them.
    #[serde(default)]
    pub zone: Option<String>,
}

impl LabState {
    /// Writes state.json atomically (temp file + rename), so a crash never
    /// leaves a half-written state that `down` could not read.
    pub fn save(&self) -> Result<(), LabError> {
        let path = self.dir.join(STATE_FILE);
        let tmp = self.dir.join("state.json.tmp");
        let text = serde_json::to_string_pretty(self).map_err(|e| LabError::State {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        std::fs::write(&tmp, text + "\n").map_err(LabError::io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(LabError::io(&path))
    }

    pub fn load(dir: &Path) -> Result<LabState, LabError> {
        let path = dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&path).map_err(LabError::io(&path))?;
        serde_json::from_str(&text).map_err(|e| LabError::State {
            path,
            msg: e.to_string(),
        })
    }

    pub fn node(&self, name: &str) -> Option<&NodeState> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Every port the lab holds, in the order its kind's build picks them,
    /// so a reset can ask for the same ones again.
    pub fn ports(&self) -> Vec<u16> {
        let nodes = self.nodes.iter();
        nodes
            .clone()
            .map(|n| n.port)
            .chain(nodes.clone().filter_map(|n| n.peer_port))
            .chain(nodes.filter_map(|n| n.api_port))
            .chain(self.dcs.iter().map(|n| n.port))
            .chain(self.dcs.iter().filter_map(|n| n.peer_port))
            .chain(self.sentinels.iter().map(|n| n.port))
            .collect()
    }
}

/// `LabSpec` holds `toml::Spanned` fields, whose `Deserialize` only works
/// with the TOML deserializer. So the spec is written as plain JSON and read
/// back by converting that JSON to TOML text and parsing it as TOML.
mod spec_json {
    use firedrill_spec::LabSpec;
    use serde::{de::Error, Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(spec: &LabSpec, s: S) -> Result<S::Ok, S::Error> {
        spec.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<LabSpec, D::Error> {
        let mut json = serde_json::Value::deserialize(d)?;
        strip_nulls(&mut json);
        let value: toml::Value = serde_json::from_value(json).map_err(D::Error::custom)?;
        let text = toml::to_string(&value).map_err(D::Error::custom)?;
        toml::from_str(&text).map_err(D::Error::custom)
    }

    /// TOML has no null: an absent key is how it says None.
    fn strip_nulls(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|_, v| !v.is_null());
                m.values_mut().for_each(strip_nulls);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip_nulls),
            _ => {}
        }
    }
}

/// `.firedrill/labs/<name>` under the current directory.
pub fn default_dir(name: &str) -> PathBuf {
    absolute(&Path::new(".firedrill/labs").join(name))
}

/// `p` made absolute against the current directory.
pub fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|c| c.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// Starts a lab. Refuses an existing non-empty `dir` unless `reset`, in
/// which case the old lab is brought down first. On failure, whatever was
/// started is stopped and the directory removed: there are no half labs.
pub fn up(
    driver: &dyn LabDriver,
    spec: &LabSpec,
    dir: Option<&Path>,
    reset: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<LabState, LabError> {
    check_links(spec)?;
    let dir = match dir.or(spec.dir.as_deref()) {
        Some(d) => absolute(d),
        None => default_dir(spec.name.get_ref()),
    };
    clear_dir(driver, &dir, reset, progress)?;
    driver.build(spec, dir, &[], progress)
}

/// Stops every recorded server, then removes the lab directory.
pub fn down(driver: &dyn LabDriver, state: &LabState) -> Result<(), LabError> {
    if !state.dir.join(STATE_FILE).is_file() {
        return Err(LabError::NotALab {
            dir: state.dir.clone(),
        });
    }
    teardown(driver, state)
}

/// Brings the lab down and up again with the same spec and directory, and
/// the same ports when they are still free, so a drill's clients and
/// proxies can keep their endpoints between trials.
pub fn reset(
    driver: &dyn LabDriver,
    state: &LabState,
    progress: &mut dyn FnMut(&str),
) -> Result<LabState, LabError> {
    check_links(&state.spec)?;
    progress("stopping the old lab");
    down(driver, state)?;
    driver.build(&state.spec, state.dir.clone(), &state.ports(), progress)
}

/// Checks that the machine supports the spec's links before anything is
/// created or removed: a netns lab that cannot partition is no lab.
fn check_links(spec: &LabSpec) -> Result<(), LabError> {
    if spec.links == firedrill_spec::Links::Netns {
        netns::preflight()?;
    }
    Ok(())
}

/// Makes sure `dir` is absent or empty, removing an old lab if asked to.
fn clear_dir(
    driver: &dyn LabDriver,
    dir: &Path,
    reset: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<(), LabError> {
    let non_empty = match std::fs::read_dir(dir) {
        Ok(mut rd) => rd.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(LabError::io(dir)(e)),
    };
    if !non_empty {
        return Ok(());
    }
    if !reset {
        return Err(LabError::Exists {
            dir: dir.to_path_buf(),
        });
    }
    if !dir.join(STATE_FILE).is_file() {
        // Not ours: --reset must never delete a directory we did not make.
        return Err(LabError::NotALab {
            dir: dir.to_path_buf(),
        });
    }
    progress("removing the old lab");
    match LabState::load(dir) {
        Ok(old) => {
            down(driver, &old)?;
            if dir.exists() {
                std::fs::remove_dir_all(dir).map_err(LabError::io(dir))?;
            }
        }
        // Unreadable state: nothing recorded to stop, but the dir is ours.
        Err(_) => std::fs::remove_dir_all(dir).map_err(LabError::io(dir))?,
    }
    Ok(())
}

/// Stops the recorded servers: SIGCONT first (a drill may have paused
/// them), SIGINT (fast shutdown), then SIGKILL of the whole tree for any
/// that did not exit in time.
pub fn stop_nodes(nodes: &[NodeState]) -> Result<(), LabError> {
    let live: Vec<(&str, ProcHandle)> = nodes
        .iter()
        .filter_map(|n| n.proc.map(|p| (n.name.as_str(), p)))
        .filter(|(_, p)| p.is_alive())
        .collect();
    for (_, p) in &live {
        let _ = p.signal_tree(Signal::SIGCONT);
        let _ = p.signal(Signal::SIGINT);
    }
    let end = Instant::now() + STOP_TIMEOUT;
    for (_, p) in &live {
        p.wait_exit(end.saturating_duration_since(Instant::now()));
    }
    for (name, p) in &live {
        if p.is_alive() {
            let _ = p.signal_tree(Signal::SIGKILL);
            if !p.wait_exit(Duration::from_secs(5)) {
                return Err(LabError::Replication(format!(
                    "node {name} (pid {}) survived SIGKILL",
                    p.pid
                )));
            }
        }
    }
    Ok(())
}

/// Stops everything the lab started and removes its directory.
pub fn teardown(driver: &dyn LabDriver, state: &LabState) -> Result<(), LabError> {
    driver.stop(state)?;
    links::stop(state);
    // Before the directory goes: state.json is what finds them again.
    netns::remove(state)?;
    match std::fs::remove_dir_all(&state.dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(LabError::io(&state.dir)(e)),
        _ => Ok(()),
    }
}

/// Picks one loopback port per node: the preferred ones if all are free,
/// else from `base` upwards, else whatever the kernel hands out.
fn free_default(p: u16) -> bool {
    ![5432, 6379, 26379].contains(&p)
}

pub fn pick_ports(n: usize, base: Option<u16>, preferred: &[u16]) -> Result<Vec<u16>, LabError> {
    // Never the default ports of PostgreSQL, Redis and Sentinel: a
    // distribution's own service may start there at any time.
    let free = |p: u16| free_default(p) && TcpListener::bind(("127.0.0.1", p)).is_ok();
    if preferred.len() == n && preferred.iter().all(|&p| free(p)) {
        return Ok(preferred.to_vec());
    }
    if let Some(base) = base {
        let ports: Vec<u16> = (base..=u16::MAX).filter(|&p| free(p)).take(n).collect();
        if ports.len() < n {
            return Err(LabError::NoFreePort(format!(
                "fewer than {n} free ports from base_port {base}"
            )));
        }
        return Ok(ports);
    }
    // Hold every listener until all are picked so the kernel gives distinct ports.
    let mut held = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < n {
        let l =
            TcpListener::bind(("127.0.0.1", 0)).map_err(|e| LabError::NoFreePort(e.to_string()))?;
        let p = l
            .local_addr()
            .map(|a| a.port())
            .map_err(|e| LabError::NoFreePort(e.to_string()))?;
        if free_default(p) {
            ports.push(p);
        }
        held.push(l);
    }
    Ok(ports)
}

/// The servers cannot use a directory they cannot reach: every ancestor
/// must be searchable by the run-as user (e.g. /root is not).
pub fn check_traversal(dir: &Path, ru: &RunAs, name: &str) -> Result<(), LabError> {
    let user = std::ffi::CString::new(ru.user.clone()).map_err(|_| LabError::Traverse {
        user: ru.user.clone(),
        blocked: dir.to_path_buf(),
        dir: dir.to_path_buf(),
        name: name.into(),
    })?;
    let groups: Vec<u32> = nix::unistd::getgrouplist(&user, ru.gid())
        .map(|g| g.iter().map(|g| g.as_raw()).collect())
        .unwrap_or_else(|_| vec![ru.gid]);
    for a in dir.ancestors() {
        let md = std::fs::metadata(a).map_err(LabError::io(a))?;
        let mode = md.mode();
        let ok = if md.uid() == ru.uid {
            mode & 0o100 != 0
        } else if groups.contains(&md.gid()) {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !ok {
            return Err(LabError::Traverse {
                user: ru.user.clone(),
                blocked: a.to_path_buf(),
                dir: dir.to_path_buf(),
                name: name.into(),
            });
        }
    }
    Ok(())
}

/// The lab directory (searchable by the servers' user), its `subs`, and
/// state.json, so that from here on a crash leaves a lab `down` can clean.
pub fn make_layout(state: &mut LabState, subs: &[&str]) -> Result<(), LabError> {
    let dir = state.dir.clone();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
        .map_err(LabError::io(&dir))?;
    if let Some(ru) = &state.run_as {
        check_traversal(&dir, ru, &state.name)?;
    }
    make_dirs(state, subs)?;
    state.save()
}

/// Creates `sub` directories (data ones 0700) owned by the run-as user.
fn make_dirs(state: &LabState, subs: &[&str]) -> Result<(), LabError> {
    for sub in subs {
        let p = state.dir.join(sub);
        std::fs::create_dir_all(&p).map_err(LabError::io(&p))?;
        let mode = if matches!(*sub, "data" | "dcs") {
            0o700
        } else {
            0o755
        };
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .map_err(LabError::io(&p))?;
        if let Some(ru) = &state.run_as {
            ru.chown_tree(&p)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_json() {
        let spec: LabSpec = toml::from_str(
            "name = \"rt\"\nstandbys = 2\nreplication = \"sync\"\nsync_quorum = 2\n\
             [settings]\nwork_mem = \"8MB\"\nfsync = false\nmax_connections = 50\n",
        )
        .unwrap();
        let st = LabState {
            name: "rt".into(),
            dir: "/tmp/rt".into(),
            spec,
            bin_dir: "/usr/bin".into(),
            run_as: None,
            created_at: "2026-01-01T00:00:00Z".into(),
            nodes: vec![],
            proxy: None,
            links: Vec::new(),
            netns: None,
            dcs: Vec::new(),
            sentinels: Vec::new(),
        };
        let json = serde_json::to_string(&st).unwrap();
        let back: LabState = serde_json::from_str(&json).unwrap();
        // The store's options survive the JSON round trip as written.
        assert_eq!(back.spec.options["standbys"].as_integer(), Some(2));
        assert_eq!(back.spec.options["sync_quorum"].as_integer(), Some(2));
        assert_eq!(back.spec.options, st.spec.options);
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }
}
