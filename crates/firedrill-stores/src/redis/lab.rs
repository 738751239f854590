//! `kind = "redis-sentinel"`: one Redis master, `standbys` replicas and a
//! group of sentinels, all on loopback, from the installed redis-server.
//!
//! Every config is written fresh at `up` and `reset`: Sentinel rewrites its
//! own config (known replicas, sentinels, epochs), so a reused one would
//! start a lab in whatever state the last drill left.
//!
//! With `links = "proxied"` every node gets two proxies: `<node>-clients`
//! (the workload's path) and `<node>-peers`, whose address the node
//! announces (`replica-announce-ip/port`) and the sentinels monitor. So
//! Sentinel's answers, replication and failover all use the peers path,
//! and `partition` with `link = "peers"` cuts a master off from sentinels
//! and replicas while its clients still reach it.

use super::config::RedisLab;
use super::config::RedisLabSpec;
use firedrill_lab::links::{self, LinkKind};
use firedrill_lab::{log_tail, LabError, LabState, NodeState, NodeStatus, Role};
use firedrill_proc::RunAs;
use firedrill_spec::{LabSpec, Links};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const HOST: &str = "127.0.0.1";

/// The directory holding redis-server: `bin_dir`, `REDIS_BIN`, PATH, /usr/bin.
fn find_bin(spec: &LabSpec) -> Result<PathBuf, LabError> {
    let has = |d: &Path| d.join("redis-server").is_file();
    let explicit = RedisLab::of(spec)
        .bin_dir
        .or_else(|| std::env::var_os("REDIS_BIN").map(PathBuf::from));
    if let Some(d) = explicit {
        return if has(&d) {
            Ok(d)
        } else {
            Err(LabError::BinDir(format!(
                "{} has no redis-server",
                d.display()
            )))
        };
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin")])
        .find(|d| has(d))
        .ok_or_else(|| {
            LabError::BinDir(
                "redis-server not found in bin_dir, REDIS_BIN, PATH or /usr/bin; \
                 install redis-server and redis-sentinel"
                    .into(),
            )
        })
}

/// The servers' user when firedrill runs as root: the spec's, else the
/// distribution's `redis` user, else the lab default.
fn run_as(spec: &LabSpec) -> Result<Option<RunAs>, LabError> {
    let redis_user = nix::unistd::User::from_name("redis")
        .ok()
        .flatten()
        .map(|_| "redis");
    Ok(RunAs::resolve(spec.user.as_deref().or(redis_user))?)
}

pub(crate) fn build(
    spec: &LabSpec,
    dir: PathBuf,
    preferred_ports: &[u16],
    progress: &mut dyn FnMut(&str),
) -> Result<LabState, LabError> {
    let bin_dir = find_bin(spec)?;
    let run_as = run_as(spec)?;
    let o = RedisLab::of(spec);
    let r = o.settings();
    let names = o.node_names();
    let sentinel_names: Vec<String> = (1..=r.sentinels()).map(|i| format!("s{i}")).collect();
    let ports = firedrill_lab::pick_ports(
        names.len() + sentinel_names.len(),
        spec.base_port,
        preferred_ports,
    )?;
    std::fs::create_dir_all(&dir).map_err(LabError::io(&dir))?;
    let node = |name: &String, port: u16, sub: &str, role: Role| NodeState {
        name: name.clone(),
        initial_role: role,
        host: HOST.into(),
        port,
        data_dir: dir.join(sub).join(name),
        log_file: dir.join("logs").join(format!("{name}.log")),
        proc: None,
        conninfo: format!("{HOST}:{port}"),
        net: None,
        peer_port: None,
        api_port: None,
        zone: None,
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
            .map(|(i, (n, &p))| {
                let role = if i == 0 { Role::Primary } else { Role::Standby };
                node(n, p, "data", role)
            })
            .collect(),
        proxy: None,
        links: Vec::new(),
        netns: None,
        dcs: Vec::new(),
        sentinels: sentinel_names
            .iter()
            .zip(&ports[names.len()..])
            .map(|(n, &p)| node(n, p, "sentinels", Role::Standby))
            .collect(),
    };
    match populate(&mut state, &r, progress) {
        Ok(()) => Ok(state),
        Err(e) => {
            let _ = firedrill_lab::teardown(&super::RedisSentinelStore, &state);
            Err(e)
        }
    }
}

/// The address a node announces to sentinels and replicas.
fn announced_port(state: &LabState, i: usize) -> u16 {
    state
        .peers_port(&state.nodes[i].name)
        .unwrap_or(state.nodes[i].port)
}

fn populate(
    state: &mut LabState,
    r: &RedisLabSpec,
    progress: &mut dyn FnMut(&str),
) -> Result<(), LabError> {
    let dir = state.dir.clone();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
        .map_err(LabError::io(&dir))?;
    if let Some(ru) = &state.run_as {
        firedrill_lab::check_traversal(&dir, ru, &state.name)?;
    }
    for sub in ["data", "sentinels", "logs"] {
        let p = dir.join(sub);
        std::fs::create_dir(&p).map_err(LabError::io(&p))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
            .map_err(LabError::io(&p))?;
    }
    for n in state.nodes.iter().chain(&state.sentinels) {
        std::fs::create_dir(&n.data_dir).map_err(LabError::io(&n.data_dir))?;
        std::fs::set_permissions(&n.data_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(LabError::io(&n.data_dir))?;
    }
    if let Some(ru) = &state.run_as {
        for sub in ["data", "sentinels", "logs"] {
            ru.chown_tree(&dir.join(sub))?;
        }
    }
    state.save()?;
    if state.spec.links == Links::Proxied {
        progress("starting the fault proxy");
        let wanted = state
            .nodes
            .iter()
            .flat_map(|n| {
                [
                    (LinkKind::Clients, n.name.clone(), None, n.port),
                    (LinkKind::Peers, n.name.clone(), None, n.port),
                ]
            })
            .collect();
        links::start_links(state, wanted)?;
    }

    let master_port = announced_port(state, 0);
    for i in 0..state.nodes.len() {
        let conf = node_conf(state, r, i, (i > 0).then_some(master_port));
        write_conf(state, &state.nodes[i].data_dir.join("redis.conf"), &conf)?;
    }
    progress(&format!("starting {}", state.nodes[0].name));
    start(state, false, 0)?;
    wait_ping(state, false, 0)?;
    for i in 1..state.nodes.len() {
        progress(&format!("starting {}", state.nodes[i].name));
        start(state, false, i)?;
    }
    for i in 1..state.nodes.len() {
        wait_ping(state, false, i)?;
    }
    progress("waiting for the replicas to sync");
    let want = state.nodes.len() - 1;
    let master = state.nodes[0].clone();
    poll(&master, "replicas not online", || {
        let info: String = query(&master.conninfo, redis::cmd("INFO").arg("replication")).ok()?;
        let online = info
            .lines()
            .filter(|l| l.starts_with("slave") && l.contains("state=online"))
            .count();
        (online == want).then_some(())
    })?;

    start_sentinels(state, r, master_port, want, progress)?;
    state.save()?;
    progress("lab is up");
    Ok(())
}

/// Writes every sentinel's config, starts them, and waits until each sees
/// the master, its `want` replicas and the other sentinels.
fn start_sentinels(
    state: &mut LabState,
    r: &RedisLabSpec,
    master_port: u16,
    want: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<(), LabError> {
    let quorum = state.sentinels.len() / 2 + 1;
    let master_name = r.master_name();
    for i in 0..state.sentinels.len() {
        let s = &state.sentinels[i];
        let conf = format!(
            "# firedrill lab: written fresh at every up and reset\n\
             bind {HOST}\n\
             port {port}\n\
             protected-mode no\n\
             daemonize no\n\
             logfile \"\"\n\
             dir \"{dir}\"\n\
             sentinel announce-ip {HOST}\n\
             sentinel monitor {master_name} {HOST} {master_port} {quorum}\n\
             sentinel down-after-milliseconds {master_name} {down}\n\
             sentinel failover-timeout {master_name} {fo}\n\
             sentinel parallel-syncs {master_name} 1\n",
            port = s.port,
            dir = s.data_dir.display(),
            down = r.down_after().as_millis(),
            fo = r.failover_timeout().as_millis(),
        );
        write_conf(state, &s.data_dir.join("sentinel.conf"), &conf)?;
    }
    for i in 0..state.sentinels.len() {
        progress(&format!("starting sentinel {}", state.sentinels[i].name));
        start(state, true, i)?;
    }
    for i in 0..state.sentinels.len() {
        wait_ping(state, true, i)?;
    }
    progress("waiting for the sentinels to discover the replicas and each other");
    let others = state.sentinels.len() - 1;
    for s in &state.sentinels {
        poll(s, "sentinel does not see the whole group", || {
            let fields: Vec<String> = query(
                &s.conninfo,
                redis::cmd("SENTINEL").arg("master").arg(&master_name),
            )
            .ok()?;
            let get = |k: &str| {
                fields
                    .chunks(2)
                    .find(|c| c.len() == 2 && c[0] == k)
                    .map(|c| c[1].clone())
            };
            let ok = get("flags").as_deref() == Some("master")
                && get("num-slaves").and_then(|v| v.parse::<usize>().ok()) == Some(want)
                && get("num-other-sentinels").and_then(|v| v.parse::<usize>().ok()) == Some(others);
            ok.then_some(())
        })?;
    }
    Ok(())
}

fn node_conf(state: &LabState, r: &RedisLabSpec, i: usize, master: Option<u16>) -> String {
    let n = &state.nodes[i];
    let mut conf = format!(
        "# firedrill lab: written fresh at every up and reset\n\
         bind {HOST}\n\
         port {port}\n\
         protected-mode no\n\
         daemonize no\n\
         logfile \"\"\n\
         dir \"{dir}\"\n\
         save \"\"\n\
         appendonly {aof}\n\
         appendfsync {fsync}\n\
         repl-diskless-sync yes\n\
         repl-diskless-sync-delay 0\n\
         min-replicas-to-write {mrw}\n\
         min-replicas-max-lag {lag}\n\
         replica-announce-ip {HOST}\n\
         replica-announce-port {announce}\n",
        port = n.port,
        dir = n.data_dir.display(),
        aof = if r.appendonly { "yes" } else { "no" },
        fsync = r.appendfsync.as_conf(),
        mrw = r.min_replicas_to_write(),
        lag = r.min_replicas_max_lag_s(),
        announce = announced_port(state, i),
    );
    if let Some(p) = master {
        conf += &format!("replicaof {HOST} {p}\n");
    }
    conf
}

fn write_conf(state: &LabState, path: &Path, text: &str) -> Result<(), LabError> {
    std::fs::write(path, text).map_err(LabError::io(path))?;
    if let Some(ru) = &state.run_as {
        ru.chown_tree(path)?;
    }
    Ok(())
}

/// Starts a node (redis-server in the foreground, so the handle is the
/// server itself) or a sentinel; records it in state.json at once.
fn start(state: &mut LabState, sentinel: bool, i: usize) -> Result<(), LabError> {
    let n = if sentinel {
        &state.sentinels[i]
    } else {
        &state.nodes[i]
    };
    let conf = if sentinel {
        n.data_dir.join("sentinel.conf")
    } else {
        n.data_dir.join("redis.conf")
    };
    let conf = conf.to_string_lossy().into_owned();
    let server = state.bin_dir.join("redis-server");
    let h = if sentinel {
        firedrill_proc::spawn_server(
            &server,
            &[&conf, "--sentinel"],
            state.run_as.as_ref(),
            &n.log_file,
        )?
    } else {
        firedrill_proc::spawn_server(&server, &[&conf], state.run_as.as_ref(), &n.log_file)?
    };
    if sentinel {
        state.sentinels[i].proc = Some(h);
    } else {
        state.nodes[i].proc = Some(h);
    }
    state.save()
}

fn wait_ping(state: &LabState, sentinel: bool, i: usize) -> Result<(), LabError> {
    let n = if sentinel {
        &state.sentinels[i]
    } else {
        &state.nodes[i]
    };
    poll(n, "not answering PING", || {
        if !n.proc.is_some_and(|p| p.is_alive()) {
            return None;
        }
        query::<String>(&n.conninfo, &redis::cmd("PING")).ok()
    })
    .map(|_| ())
}

/// Polls `check` until it answers, the node's process dies, or the timeout.
fn poll<T>(n: &NodeState, what: &str, mut check: impl FnMut() -> Option<T>) -> Result<T, LabError> {
    let end = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if n.proc.is_some_and(|p| !p.is_alive()) {
            return Err(LabError::Exited {
                node: n.name.clone(),
                log: n.log_file.clone(),
                log_tail: log_tail(&n.log_file, 20),
            });
        }
        if Instant::now() > end {
            return Err(LabError::Timeout {
                node: n.name.clone(),
                what: what.into(),
                secs: READY_TIMEOUT.as_secs(),
                log: n.log_file.clone(),
                log_tail: log_tail(&n.log_file, 20),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One command on a short-lived blocking connection (lab code is
/// synchronous).
fn query<T: redis::FromRedisValue>(addr: &str, cmd: &redis::Cmd) -> Result<T, String> {
    let client = redis::Client::open(format!("redis://{addr}/")).map_err(|e| e.to_string())?;
    let mut c = client
        .get_connection_with_timeout(Duration::from_secs(1))
        .map_err(|e| e.to_string())?;
    c.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    cmd.query(&mut c).map_err(|e| e.to_string())
}

fn info_field<'a>(info: &'a str, key: &str) -> Option<&'a str> {
    info.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .map(str::trim)
    })
}

/// `lab status` for a Redis lab: each node's role as INFO replication
/// tells it, and what each sentinel believes.
pub(crate) async fn status(state: &LabState) -> Vec<NodeStatus> {
    let st = state.clone();
    tokio::task::spawn_blocking(move || status_blocking(&st))
        .await
        .unwrap_or_default()
}

fn status_blocking(state: &LabState) -> Vec<NodeStatus> {
    let name_of = |port: &str| {
        state
            .nodes
            .iter()
            .enumerate()
            .find(|(i, n)| {
                n.port.to_string() == port || announced_port(state, *i).to_string() == port
            })
            .map(|(_, n)| n.name.clone())
            .unwrap_or_else(|| format!(":{port}"))
    };
    let mut out = Vec::new();
    let mut master_offset = None;
    for n in &state.nodes {
        let alive = n.proc.is_some_and(|p| p.is_alive());
        let info = alive
            .then(|| query::<String>(&n.conninfo, redis::cmd("INFO").arg("replication")).ok())
            .flatten();
        let (role, replication, offset) = match &info {
            None if alive => ("unreachable".to_string(), None, None),
            None => ("down".to_string(), None, None),
            Some(i) => match info_field(i, "role") {
                Some("master") => {
                    master_offset =
                        info_field(i, "master_repl_offset").and_then(|v| v.parse().ok());
                    let replicas = i
                        .lines()
                        .filter(|l| l.starts_with("slave") && l.contains("ip="))
                        .count();
                    (
                        "master".to_string(),
                        Some(format!("{replicas} replicas")),
                        None,
                    )
                }
                _ => {
                    let m = info_field(i, "master_port")
                        .map(name_of)
                        .unwrap_or_default();
                    let link = info_field(i, "master_link_status").unwrap_or("?");
                    (
                        "replica".to_string(),
                        Some(format!("replica of {m} (link {link})")),
                        info_field(i, "slave_repl_offset").and_then(|v| v.parse::<u64>().ok()),
                    )
                }
            },
        };
        out.push((n, alive, role, replication, offset));
    }
    let mut rows: Vec<NodeStatus> = out
        .into_iter()
        .map(|(n, alive, role, replication, offset)| NodeStatus {
            name: n.name.clone(),
            pid: n.proc.map(|p| p.pid),
            alive,
            port: n.port,
            role,
            replication,
            lag_bytes: offset
                .zip(master_offset)
                .map(|(o, m): (u64, u64)| m.saturating_sub(o)),
            lag_s: None,
            timeline: None,
        })
        .collect();
    let master_name = RedisLab::of(&state.spec).settings().master_name();
    for s in &state.sentinels {
        let alive = s.proc.is_some_and(|p| p.is_alive());
        let seen = alive
            .then(|| {
                query::<Vec<String>>(
                    &s.conninfo,
                    redis::cmd("SENTINEL")
                        .arg("get-master-addr-by-name")
                        .arg(&master_name),
                )
                .ok()
            })
            .flatten();
        rows.push(NodeStatus {
            name: s.name.clone(),
            pid: s.proc.map(|p| p.pid),
            alive,
            port: s.port,
            role: match (&seen, alive) {
                (Some(_), _) => "sentinel".into(),
                (None, true) => "unreachable".into(),
                (None, false) => "down".into(),
            },
            replication: seen
                .filter(|v| v.len() == 2)
                .map(|v| format!("master is {}", name_of(&v[1]))),
            lag_bytes: None,
            lag_s: None,
            timeline: None,
        });
    }
    rows
}
