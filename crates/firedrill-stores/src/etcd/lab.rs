//! etcd labs: 3 or 5 members on loopback, with the spec's Raft timeouts,
//! a fresh data directory per `up`/`reset`. The same code starts the etcd
//! cluster a Patroni lab uses as its DCS.

use super::config::EtcdLab;
use firedrill_lab::{
    log_tail, make_layout, pick_ports, LabError, LabState, NodeState, NodeStatus, Role,
};
use firedrill_proc::RunAs;
use firedrill_spec::LabSpec;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Finds a server program: in the spec's bin_dir, else on PATH, else in
/// /usr/bin (where Debian's packages put etcd and patroni).
pub(crate) fn find_program(name: &str, spec_bin: Option<&Path>) -> Result<PathBuf, LabError> {
    let dirs: Vec<PathBuf> = spec_bin
        .map(Path::to_path_buf)
        .into_iter()
        .chain(
            std::env::var_os("PATH")
                .into_iter()
                .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>()),
        )
        .chain(std::iter::once(PathBuf::from("/usr/bin")))
        .collect();
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            LabError::Program(format!(
                "{name} not found in bin_dir, PATH or /usr/bin (Debian: apt-get install {})",
                match name {
                    "etcd" => "etcd-server",
                    "etcdctl" => "etcd-client",
                    other => other,
                }
            ))
        })
}

/// One member per name, client ports first, then peer ports.
pub(crate) fn members(
    dir: &Path,
    names: &[String],
    ports: &[u16],
    sub: &str,
    log_prefix: &str,
) -> Vec<NodeState> {
    let n = names.len();
    names
        .iter()
        .enumerate()
        .map(|(i, name)| NodeState {
            name: name.clone(),
            initial_role: if i == 0 { Role::Primary } else { Role::Standby },
            host: "127.0.0.1".into(),
            port: ports[i],
            peer_port: Some(ports[n + i]),
            api_port: None,
            zone: None,
            data_dir: dir.join(sub).join(name),
            log_file: dir.join("logs").join(format!("{log_prefix}{name}.log")),
            proc: None,
            conninfo: format!("http://127.0.0.1:{}", ports[i]),
            net: None,
        })
        .collect()
}

/// Builds an etcd lab in an absent or empty `dir`.
pub(crate) fn build(
    spec: &LabSpec,
    dir: PathBuf,
    preferred_ports: &[u16],
    progress: &mut dyn FnMut(&str),
) -> Result<LabState, LabError> {
    let o = EtcdLab::of(spec);
    let etcd = find_program("etcd", o.bin_dir.as_deref())?;
    let run_as = RunAs::resolve(spec.user.as_deref())?;
    let names = o.node_names();
    let ports = pick_ports(names.len() * 2, spec.base_port, preferred_ports)?;
    std::fs::create_dir_all(&dir).map_err(LabError::io(&dir))?;
    let mut state = LabState {
        name: spec.name.get_ref().clone(),
        dir: dir.clone(),
        spec: spec.clone(),
        bin_dir: etcd.parent().map(Path::to_path_buf).unwrap_or_default(),
        run_as,
        created_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        nodes: members(&dir, &names, &ports, "data", ""),
        proxy: None,
        links: Vec::new(),
        netns: None,
        dcs: Vec::new(),
        sentinels: Vec::new(),
    };
    let e = o.settings();
    let res = (|| {
        let subs: &[&str] = if o.backup.is_some() {
            &["data", "logs", "backup"]
        } else {
            &["data", "logs"]
        };
        make_layout(&mut state, subs)?;
        start_cluster(
            &mut state,
            false,
            &etcd,
            e.heartbeat.get_ref().0.as_millis() as u64,
            e.election.get_ref().0.as_millis() as u64,
            progress,
        )?;
        if o.backup.is_some() {
            // As a database's full backup at `lab up`: a restore always
            // has a snapshot to bring back.
            progress("etcd: snapshot of the new cluster");
            super::backup::take(&state, &state.nodes[0].name)?;
        }
        progress("lab is up");
        Ok(())
    })();
    match res {
        Ok(()) => Ok(state),
        Err(err) => {
            let _ = firedrill_lab::teardown(&super::EtcdStore, &state);
            Err(err)
        }
    }
}

/// Starts every member of `state.nodes` (or `state.dcs`) as one new
/// cluster and waits until all are healthy and agree on one leader.
pub(crate) fn start_cluster(
    state: &mut LabState,
    dcs: bool,
    etcd: &Path,
    heartbeat_ms: u64,
    election_ms: u64,
    progress: &mut dyn FnMut(&str),
) -> Result<(), LabError> {
    let token = new_token(&state.name);
    let raft = (heartbeat_ms, election_ms);
    spawn_members(state, dcs, etcd, raft, &token, progress)?;
    let list = if dcs { &state.dcs } else { &state.nodes };
    wait_healthy(list, READY_TIMEOUT)
}

/// A cluster token no earlier cluster of this lab had: a restored cluster
/// is a new logical cluster, whose members refuse the old one's peers.
pub(crate) fn new_token(lab: &str) -> String {
    format!(
        "{lab}-{}",
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    )
}

/// `--initial-cluster`: every member's name and peer URL.
pub(crate) fn initial_cluster(list: &[NodeState]) -> String {
    list.iter()
        .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port.unwrap_or(0)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Spawns every member (a data directory a snapshot restore filled keeps
/// its own membership; etcd then ignores the initial-cluster flags) and
/// records each pid in state.json as soon as it exists. `raft` is
/// (heartbeat, election) in milliseconds.
pub(crate) fn spawn_members(
    state: &mut LabState,
    dcs: bool,
    etcd: &Path,
    raft: (u64, u64),
    token: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<(), LabError> {
    let (heartbeat_ms, election_ms) = raft;
    let list = if dcs { &state.dcs } else { &state.nodes };
    let cluster = initial_cluster(list);
    for i in 0..list.len() {
        let list = if dcs { &state.dcs } else { &state.nodes };
        let m = &list[i];
        progress(&format!("starting etcd member {}", m.name));
        let client = format!("http://127.0.0.1:{}", m.port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port.unwrap_or(0));
        let data = m.data_dir.to_string_lossy().into_owned();
        let (hb, el) = (heartbeat_ms.to_string(), election_ms.to_string());
        let args = [
            "--name",
            &m.name,
            "--data-dir",
            &data,
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &cluster,
            "--initial-cluster-token",
            token,
            "--initial-cluster-state",
            "new",
            "--heartbeat-interval",
            &hb,
            "--election-timeout",
            &el,
        ];
        let h = firedrill_proc::spawn_server(etcd, &args, state.run_as.as_ref(), &m.log_file)?;
        if dcs {
            state.dcs[i].proc = Some(h);
        } else {
            state.nodes[i].proc = Some(h);
        }
        state.save()?;
    }
    Ok(())
}

/// Every member answers and all name the same leader.
pub(crate) fn wait_healthy(members: &[NodeState], limit: Duration) -> Result<(), LabError> {
    let end = Instant::now() + limit;
    let mut last = String::new();
    loop {
        let mut leaders = Vec::new();
        for m in members {
            if !m.proc.is_some_and(|p| p.is_alive()) {
                return Err(LabError::Exited {
                    node: m.name.clone(),
                    log: m.log_file.clone(),
                    log_tail: log_tail(&m.log_file, 20),
                });
            }
            match member_status(m.port) {
                Ok((_, leader)) => leaders.push(leader),
                Err(e) => last = format!("{}: {e}", m.name),
            }
        }
        if leaders.len() == members.len()
            && leaders[0] != 0
            && leaders.iter().all(|l| *l == leaders[0])
        {
            return Ok(());
        }
        if leaders.len() == members.len() {
            last = "the members do not agree on one leader yet".into();
        }
        if Instant::now() >= end {
            let m = &members[0];
            return Err(LabError::Timeout {
                node: m.name.clone(),
                what: format!("etcd cluster not healthy ({last})"),
                secs: limit.as_secs(),
                log: m.log_file.clone(),
                log_tail: log_tail(&m.log_file, 20),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The member listening on `port`, as its `/v3/maintenance/status` says.
fn status_of(port: u16) -> Result<serde_json::Value, String> {
    let (code, v) = firedrill_faults::proxy::request_json(
        ([127, 0, 0, 1], port).into(),
        "POST",
        "/v3/maintenance/status",
        Some(&serde_json::json!({})),
        Duration::from_secs(1),
        Duration::from_secs(1),
    )?;
    if code != 200 {
        return Err(format!("HTTP {code}: {v}"));
    }
    Ok(v)
}

/// etcd writes 64-bit numbers as JSON strings.
fn num(v: &serde_json::Value) -> Option<u64> {
    v.as_str().and_then(|s| s.parse::<u64>().ok())
}

/// (member id, leader id) of the member listening on `port`.
pub(crate) fn member_status(port: u16) -> Result<(u64, u64), String> {
    let v = status_of(port)?;
    let id = num(&v["header"]["member_id"]).ok_or("no member id")?;
    Ok((id, num(&v["leader"]).unwrap_or(0)))
}

/// (cluster id, revision) the member listening on `port` serves.
pub(crate) fn member_revision(port: u16) -> Result<(u64, u64), String> {
    let v = status_of(port)?;
    let cluster = num(&v["header"]["cluster_id"]).ok_or("no cluster id")?;
    let rev = num(&v["header"]["revision"]).ok_or("no revision")?;
    Ok((cluster, rev))
}

/// etcd members: leader or follower, as each member says.
pub(crate) fn status(state: &LabState) -> Vec<NodeStatus> {
    state
        .nodes
        .iter()
        .map(|n| {
            let alive = n.proc.is_some_and(|p| p.is_alive());
            let (role, replication) = if !alive {
                ("down".to_string(), None)
            } else {
                match member_status(n.port) {
                    Ok((id, leader)) if leader != 0 && id == leader => ("leader".into(), None),
                    Ok((_, 0)) => ("follower".into(), Some("no leader".into())),
                    Ok((_, leader)) => ("follower".into(), Some(format!("leader id {leader:x}"))),
                    Err(_) => ("unreachable".into(), None),
                }
            };
            NodeStatus::of(n, role, replication)
        })
        .collect()
}
