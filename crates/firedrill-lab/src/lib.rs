//! Real local clusters for drills: PostgreSQL streaming replication, etcd
//! (`etcd.rs`), and Patroni-managed PostgreSQL with its etcd DCS
//! (`patroni.rs`).
//!
//! A lab is a directory holding `state.json`, `data/<node>/`,
//! `logs/<node>.log`, `run/` (unix sockets) and `archive/`. Every server is
//! started by us through [`firedrill_proc::spawn_server`] and its
//! [`ProcHandle`] is recorded in `state.json` as soon as it exists, so that
//! `down` (in this or a later process) stops exactly what was started and
//! nothing else.
//!
//! `up`, `down` and `reset` are synchronous and never create a tokio
//! runtime (SQL goes through `psql`), so they can be called from inside a
//! multi-thread runtime (preferably via `spawn_blocking`). `status` is async.

mod error;
mod etcd;
pub mod links;
pub mod netns;
mod patroni;
mod pg;
mod redis;
mod status;

pub use error::LabError;
pub use status::{render_status, status, NodeStatus};

use firedrill_proc::{ProcHandle, RunAs};
use firedrill_spec::{LabSpec, Replication};
use nix::sys::signal::Signal;
use pg::Tools;
use serde::{Deserialize, Serialize};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

const STATE_FILE: &str = "state.json";
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings the lab owns: overriding them would break addressing,
/// replication wiring, or make every standby inherit synchronous waits.
const LAB_OWNED: [&str; 8] = [
    "port",
    "listen_addresses",
    "unix_socket_directories",
    "primary_conninfo",
    "primary_slot_name",
    "synchronous_standby_names",
    "synchronous_commit",
    "hot_standby",
];

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
    /// A Redis lab's sentinels (`conninfo` is their `host:port`).
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

    /// One conninfo naming every node; libpq picks whichever accepts writes,
    /// so clients follow a failover without knowing which node won.
    pub fn multi_host_conninfo(&self) -> String {
        let hosts: Vec<&str> = self.nodes.iter().map(|n| n.host.as_str()).collect();
        let ports: Vec<String> = self.nodes.iter().map(|n| n.port.to_string()).collect();
        format!(
            "host={} port={} user=postgres dbname=postgres target_session_attrs=read-write",
            hosts.join(","),
            ports.join(",")
        )
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

    /// Patroni's REST API of every node, `(node, http://127.0.0.1:PORT)`.
    pub fn patroni_apis(&self) -> Vec<(String, String)> {
        self.nodes
            .iter()
            .filter_map(|n| Some((n.name.clone(), format!("http://127.0.0.1:{}", n.api_port?))))
            .collect()
    }

    fn tools(&self) -> Tools<'_> {
        Tools {
            bin: &self.bin_dir,
            run_as: self.run_as.as_ref(),
            cwd: &self.dir,
        }
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

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|c| c.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// Every program the lab runs from the bin dir.
const TOOLS: [&str; 6] = [
    "postgres",
    "pg_ctl",
    "initdb",
    "pg_basebackup",
    "psql",
    "pg_isready",
];

fn is_pg_bin(d: &Path) -> bool {
    TOOLS.iter().all(|b| d.join(b).is_file())
}

/// The full bin dir behind `d`: `d` may hold only symlinks to a few
/// programs (this machine's /usr/local/bin links pg_ctl, postgres and
/// initdb but not psql), so follow `postgres` to where it really lives.
fn resolve_bin(d: &Path) -> Option<PathBuf> {
    if !["pg_ctl", "postgres", "initdb"]
        .iter()
        .all(|b| d.join(b).is_file())
    {
        return None;
    }
    let real = std::fs::canonicalize(d.join("postgres"))
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    real.into_iter()
        .chain(std::iter::once(absolute(d)))
        .find(|c| is_pg_bin(c))
}

/// Finds the PostgreSQL server binaries. A directory counts only if
/// `postgres` and `initdb` sit next to `pg_ctl`: a lone `pg_ctl` on PATH
/// may be a distribution wrapper (Debian's pg_wrapper) that is not what we
/// would start.
pub fn find_bin_dir(spec_bin: Option<&Path>) -> Result<PathBuf, LabError> {
    let explicit = |d: PathBuf, from: &str| {
        resolve_bin(&d).ok_or_else(|| {
            LabError::BinDir(format!(
                "{from} {} lacks one of {}",
                d.display(),
                TOOLS.join(", ")
            ))
        })
    };
    if let Some(d) = spec_bin {
        return explicit(d.to_path_buf(), "bin_dir");
    }
    if let Some(d) = std::env::var_os("PG_BIN").filter(|v| !v.is_empty()) {
        return explicit(PathBuf::from(d), "PG_BIN");
    }
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(d) = std::env::split_paths(&path).find_map(|d| resolve_bin(&d)) {
            return Ok(d);
        }
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let v: Option<Vec<u32>> = name.split('.').map(|p| p.parse().ok()).collect();
            let bin = e.path().join("bin");
            v.filter(|_| is_pg_bin(&bin)).map(|v| (v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, d)| d).ok_or_else(|| {
        LabError::BinDir(
            "none in bin_dir, PG_BIN, PATH or /usr/lib/postgresql/*/bin; \
             install PostgreSQL or set bin_dir in the [lab] table"
                .into(),
        )
    })
}

/// Starts a lab. Refuses an existing non-empty `dir` unless `reset`, in
/// which case the old lab is brought down first. On failure, whatever was
/// started is stopped and the directory removed: there are no half labs.
pub fn up(
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
    clear_dir(&dir, reset, progress)?;
    build(spec, dir, &[], progress)
}

/// Stops every recorded server, then removes the lab directory.
pub fn down(state: &LabState) -> Result<(), LabError> {
    if !state.dir.join(STATE_FILE).is_file() {
        return Err(LabError::NotALab {
            dir: state.dir.clone(),
        });
    }
    teardown(state)
}

/// Brings the lab down and up again with the same spec and directory, and
/// the same ports when they are still free, so a drill's clients and
/// proxies can keep their endpoints between trials.
pub fn reset(state: &LabState, progress: &mut dyn FnMut(&str)) -> Result<LabState, LabError> {
    check_links(&state.spec)?;
    progress("stopping the old lab");
    down(state)?;
    build(&state.spec, state.dir.clone(), &state.ports(), progress)
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
fn clear_dir(dir: &Path, reset: bool, progress: &mut dyn FnMut(&str)) -> Result<(), LabError> {
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
            down(&old)?;
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
pub(crate) fn stop_nodes(nodes: &[NodeState]) -> Result<(), LabError> {
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

fn teardown(state: &LabState) -> Result<(), LabError> {
    // Sentinels first, so they do not fail over a master being stopped.
    stop_nodes(&state.sentinels)?;
    match state.spec.kind {
        firedrill_spec::LabKind::Patroni => patroni::stop(state)?,
        _ => stop_nodes(&state.nodes)?,
    }
    stop_nodes(&state.dcs)?;
    links::stop(state);
    // Before the directory goes: state.json is what finds them again.
    netns::remove(state)?;
    match std::fs::remove_dir_all(&state.dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(LabError::io(&state.dir)(e)),
        _ => Ok(()),
    }
}

/// Creates the lab in an absent or empty `dir`.
fn build(
    spec: &LabSpec,
    dir: PathBuf,
    preferred_ports: &[u16],
    progress: &mut dyn FnMut(&str),
) -> Result<LabState, LabError> {
    match spec.kind {
        firedrill_spec::LabKind::Etcd => return etcd::build(spec, dir, preferred_ports, progress),
        firedrill_spec::LabKind::Patroni => {
            return patroni::build(spec, dir, preferred_ports, progress)
        }
        firedrill_spec::LabKind::RedisSentinel => {
            return redis::build(spec, dir, preferred_ports, progress)
        }
        firedrill_spec::LabKind::Postgres => {}
    }
    let bin_dir = find_bin_dir(spec.bin_dir.as_deref())?;
    let run_as = RunAs::resolve(spec.user.as_deref())?;
    let names = spec.node_names();
    let ports = pick_ports(names.len(), spec.base_port, preferred_ports)?;

    std::fs::create_dir_all(&dir).map_err(LabError::io(&dir))?;
    let (net, mut nets) = match spec.links {
        firedrill_spec::Links::Netns => {
            let (n, v) = netns::plan(&dir, names.len());
            (Some(n), v.into_iter().map(Some).collect())
        }
        _ => (None, vec![None; names.len()]),
    };
    let mut state = LabState {
        name: spec.name.get_ref().clone(),
        dir: dir.clone(),
        spec: spec.clone(),
        bin_dir,
        run_as,
        created_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        nodes: names
            .iter()
            .zip(&ports)
            .enumerate()
            .map(|(i, (name, &port))| {
                let net = nets[i].take();
                let host = net
                    .as_ref()
                    .map(|n| n.ip.clone())
                    .unwrap_or_else(|| "127.0.0.1".into());
                NodeState {
                    name: name.clone(),
                    initial_role: if i == 0 { Role::Primary } else { Role::Standby },
                    conninfo: format!("host={host} port={port} user=postgres dbname=postgres"),
                    host,
                    port,
                    data_dir: dir.join("data").join(name),
                    log_file: dir.join("logs").join(format!("{name}.log")),
                    proc: None,
                    net,
                    peer_port: None,
                    api_port: None,
                }
            })
            .collect(),
        proxy: None,
        links: Vec::new(),
        netns: net,
        dcs: Vec::new(),
        sentinels: Vec::new(),
    };
    match populate(&mut state, progress) {
        Ok(()) => Ok(state),
        Err(e) => {
            // No half labs: stop what was started, remove what was made.
            let _ = teardown(&state);
            Err(e)
        }
    }
}

/// Picks one loopback port per node: the preferred ones if all are free,
/// else from `base` upwards, else whatever the kernel hands out.
fn free_default(p: u16) -> bool {
    ![5432, 6379, 26379].contains(&p)
}

pub(crate) fn pick_ports(
    n: usize,
    base: Option<u16>,
    preferred: &[u16],
) -> Result<Vec<u16>, LabError> {
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
pub(crate) fn check_traversal(dir: &Path, ru: &RunAs, name: &str) -> Result<(), LabError> {
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
pub(crate) fn make_layout(state: &mut LabState, subs: &[&str]) -> Result<(), LabError> {
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

/// The layout, the primary, the standbys, and synchronous replication.
fn populate(state: &mut LabState, progress: &mut dyn FnMut(&str)) -> Result<(), LabError> {
    make_layout(state, &["data", "logs", "run", "archive"])?;
    if state.spec.links == firedrill_spec::Links::Proxied {
        progress("starting the fault proxy");
        links::start(state)?;
    }
    if state.netns.is_some() {
        progress("creating the bridge and a network namespace per node");
        netns::create(state)?;
    }

    init_primary(state, progress)?;
    let primary_port = state.nodes[0].port;
    let primary_host = state.nodes[0].host.clone();
    let standbys: Vec<usize> = (1..state.nodes.len()).collect();
    for &i in &standbys {
        let name = state.nodes[i].name.clone();
        progress(&format!("base backup for {name}"));
        let tools = state.tools();
        tools.psql(
            &primary_host,
            primary_port,
            &format!("SELECT pg_create_physical_replication_slot('{name}')"),
        )?;
        let data = state.nodes[i].data_dir.to_string_lossy().into_owned();
        tools.run(
            "pg_basebackup",
            &[
                "-h",
                &primary_host,
                "-p",
                &primary_port.to_string(),
                "-U",
                "postgres",
                "-D",
                &data,
                "-R",
                "-X",
                "stream",
                "-S",
                &name,
                "-c",
                "fast",
                "-N",
            ],
        )?;
        pg::fix_standby_auto_conf(
            &state.nodes[i].data_dir,
            &name,
            state.nodes[i].port,
            state.nodes[i].net.as_ref().map(|n| n.ip.as_str()),
            &primary_host,
            state.replication_port(&name).unwrap_or(primary_port),
        )?;
    }
    for &i in &standbys {
        progress(&format!("starting {}", state.nodes[i].name));
        start_node(state, i)?;
    }
    for &i in &standbys {
        wait_node_ready(state, i)?;
    }
    for &i in &standbys {
        let n = &state.nodes[i];
        let tools = state.tools();
        let sql = format!(
            "SELECT state FROM pg_stat_replication WHERE application_name = '{}'",
            n.name
        );
        pg::poll(
            &n.name,
            "not streaming from the primary",
            &n.log_file,
            READY_TIMEOUT,
            || {
                tools
                    .psql(&primary_host, primary_port, &sql)
                    .ok()
                    .filter(|s| s == "streaming")
            },
        )?;
    }
    if state.spec.replication == Replication::Sync {
        configure_sync(state, progress)?;
    }
    state.save()?;
    progress("lab is up");
    Ok(())
}

fn init_primary(state: &mut LabState, progress: &mut dyn FnMut(&str)) -> Result<(), LabError> {
    let n1 = &state.nodes[0];
    progress(&format!("initdb {}", n1.name));
    let data = n1.data_dir.to_string_lossy().into_owned();
    // -k (checksums) lets pg_rewind bring an old primary back; -N skips
    // fsync of a disposable cluster, which halves lab start time.
    state.tools().run(
        "initdb",
        &[
            "-D",
            &data,
            "-U",
            "postgres",
            "--auth=trust",
            "-k",
            "-N",
            "-E",
            "UTF8",
            "--locale=C",
        ],
    )?;
    let run = state.dir.join("run");
    let archive = state.dir.join("archive");
    let quote = |p: &Path| p.to_string_lossy().replace('\'', "''");
    let mut conf = format!(
        "\n# firedrill lab\n\
         listen_addresses = '{listen}'\n\
         port = {port}\n\
         unix_socket_directories = '{run}'\n\
         wal_level = replica\n\
         max_wal_senders = 10\n\
         max_replication_slots = 10\n\
         hot_standby = on\n\
         hot_standby_feedback = on\n\
         wal_log_hints = on\n\
         shared_buffers = 16MB\n\
         archive_mode = on\n\
         archive_command = 'test ! -f \"{arch}/%f\" && cp \"%p\" \"{arch}/%f\"'\n\
         wal_receiver_status_interval = 1s\n\
         logging_collector = off\n",
        port = n1.port,
        listen = n1.host,
        run = quote(&run),
        arch = quote(&archive),
    );
    for (k, v) in &state.spec.settings {
        if LAB_OWNED.contains(&k.to_ascii_lowercase().as_str()) {
            return Err(LabError::Setting {
                key: k.clone(),
                msg: "is set by the lab itself (per node or by `replication`)".into(),
            });
        }
        conf.push_str(&format!("{k} = {}\n", pg::conf_literal(k, v)?));
    }
    pg::append(&n1.data_dir.join("postgresql.conf"), &conf)?;
    let mut hba = "\n# firedrill lab: trust loopback only\n\
         host all all 127.0.0.1/32 trust\n\
         host replication all 127.0.0.1/32 trust\n"
        .to_string();
    if let Some(net) = &state.netns {
        hba += &format!(
            "# and the lab bridge\n\
             host all all {0} trust\n\
             host replication all {0} trust\n",
            net.subnet
        );
    }
    pg::append(&n1.data_dir.join("pg_hba.conf"), &hba)?;
    progress(&format!("starting {}", n1.name));
    start_node(state, 0)?;
    wait_node_ready(state, 0)
}

/// Starts a postmaster directly (not via pg_ctl) so that we own its
/// process group and hold its handle; records it in state.json at once.
fn start_node(state: &mut LabState, i: usize) -> Result<(), LabError> {
    let n = &state.nodes[i];
    let postgres = state.bin_dir.join("postgres");
    let data = n.data_dir.to_string_lossy().into_owned();
    let h = match &n.net {
        Some(net) => firedrill_proc::spawn_server_in_netns(
            &postgres,
            &["-D", &data],
            state.run_as.as_ref(),
            &n.log_file,
            &netns::netns_path(&net.netns),
        )?,
        None => firedrill_proc::spawn_server(
            &postgres,
            &["-D", &data],
            state.run_as.as_ref(),
            &n.log_file,
        )?,
    };
    state.nodes[i].proc = Some(h);
    state.save()
}

fn wait_node_ready(state: &LabState, i: usize) -> Result<(), LabError> {
    let n = &state.nodes[i];
    let proc = n.proc.ok_or_else(|| LabError::Exited {
        node: n.name.clone(),
        log: n.log_file.clone(),
        log_tail: "(never started)".into(),
    })?;
    pg::wait_ready(
        &state.tools(),
        &n.name,
        &proc,
        &n.host,
        n.port,
        &n.log_file,
        READY_TIMEOUT,
    )
}

/// Turns on synchronous replication on the primary only, after the base
/// backups: a standby that inherited `synchronous_standby_names` would,
/// once promoted, hang every commit waiting for standbys it does not have.
fn configure_sync(state: &LabState, progress: &mut dyn FnMut(&str)) -> Result<(), LabError> {
    progress("enabling synchronous replication");
    let p = &state.nodes[0];
    let standbys: Vec<&str> = state.nodes[1..].iter().map(|n| n.name.as_str()).collect();
    let k = state
        .spec
        .sync_quorum
        .as_ref()
        .map(|q| *q.get_ref())
        .unwrap_or(1);
    let tools = state.tools();
    tools.psql(
        &p.host,
        p.port,
        &format!(
            "ALTER SYSTEM SET synchronous_standby_names = 'ANY {k} ({})'",
            standbys.join(", ")
        ),
    )?;
    tools.psql(
        &p.host,
        p.port,
        &format!(
            "ALTER SYSTEM SET synchronous_commit = '{}'",
            state.spec.synchronous_commit.as_guc()
        ),
    )?;
    tools.psql(&p.host, p.port, "SELECT pg_reload_conf()")?;
    let want = standbys.len().to_string();
    pg::poll(
        &p.name,
        "standbys not synchronous",
        &p.log_file,
        READY_TIMEOUT,
        || {
            tools
            .psql(
                &p.host,
                p.port,
                "SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('quorum', 'sync')",
            )
            .ok()
            .filter(|c| *c == want)
        },
    )
    .map_err(|e| LabError::Replication(e.to_string()))?;
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
        assert_eq!(back.spec.standbys, 2);
        assert_eq!(
            back.spec.sync_quorum.as_ref().map(|q| *q.get_ref()),
            Some(2)
        );
        assert_eq!(back.spec.settings, st.spec.settings);
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }

    #[test]
    fn multi_host() {
        let n = |port| NodeState {
            name: "n".into(),
            initial_role: Role::Standby,
            host: "127.0.0.1".into(),
            port,
            data_dir: "/d".into(),
            log_file: "/l".into(),
            proc: None,
            conninfo: String::new(),
            net: None,
            peer_port: None,
            api_port: None,
        };
        let st = LabState {
            name: "m".into(),
            dir: "/tmp/m".into(),
            spec: toml::from_str("name = \"m\"").unwrap(),
            bin_dir: "/usr/bin".into(),
            run_as: None,
            created_at: String::new(),
            nodes: vec![n(1), n(2)],
            proxy: None,
            links: Vec::new(),
            netns: None,
            dcs: Vec::new(),
            sentinels: Vec::new(),
        };
        assert_eq!(
            st.multi_host_conninfo(),
            "host=127.0.0.1,127.0.0.1 port=1,2 user=postgres dbname=postgres target_session_attrs=read-write"
        );
    }
}
