//! NATS JetStream labs: 3 or 5 servers on loopback in one cluster (routes
//! to every node, itself included), JetStream on with a file store per
//! node, a fresh data directory per `up`/`reset`.

use super::config::NatsLab;
use firedrill_lab::{
    log_tail, make_layout, pick_ports, LabError, LabState, NodeState, NodeStatus, Role,
};
use firedrill_proc::RunAs;
use firedrill_spec::LabSpec;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Finds nats-server: in the spec's bin_dir, else on PATH, else in
/// /usr/sbin (where Debian's package puts it, off a non-root user's PATH),
/// else /usr/bin.
pub(crate) fn find_nats_server(spec_bin: Option<&Path>) -> Result<PathBuf, LabError> {
    spec_bin
        .map(Path::to_path_buf)
        .into_iter()
        .chain(
            std::env::var_os("PATH")
                .into_iter()
                .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>()),
        )
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            LabError::Program(
                "nats-server not found in bin_dir, PATH, /usr/sbin or /usr/bin (Debian: apt-get install nats-server)"
                    .into(),
            )
        })
}

/// One node per name: client ports first, then cluster (route) ports,
/// then monitor ports: the order `LabState::ports` gives back on reset.
fn nodes(dir: &Path, names: &[String], ports: &[u16]) -> Vec<NodeState> {
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
            api_port: Some(ports[2 * n + i]),
            zone: None,
            data_dir: dir.join("data").join(name),
            log_file: dir.join("logs").join(format!("{name}.log")),
            proc: None,
            conninfo: format!("nats://127.0.0.1:{}", ports[i]),
            net: None,
        })
        .collect()
}

/// A node's config file. `store_dir` gets a `jetstream/` subfolder from
/// the server itself. No gateway block: one cluster needs none.
pub(crate) fn config_text(node: &NodeState, all: &[NodeState], cluster: &str) -> String {
    let routes: Vec<String> = all
        .iter()
        .map(|m| format!("\"nats-route://127.0.0.1:{}\"", m.peer_port.unwrap_or(0)))
        .collect();
    format!(
        "server_name: {name}\n\
         listen: 127.0.0.1:{client}\n\
         http: 127.0.0.1:{http}\n\
         jetstream {{\n  store_dir: \"{store}\"\n  max_memory_store: 64MB\n  max_file_store: 1GB\n}}\n\
         cluster {{\n  name: {cluster}\n  listen: 127.0.0.1:{cport}\n  routes: [{routes}]\n}}\n",
        name = node.name,
        client = node.port,
        http = node.api_port.unwrap_or(0),
        store = node.data_dir.display(),
        cport = node.peer_port.unwrap_or(0),
        routes = routes.join(", "),
    )
}

fn conf_path(state: &LabState, name: &str) -> PathBuf {
    state.dir.join("conf").join(format!("{name}.conf"))
}

/// Builds a NATS lab in an absent or empty `dir`.
pub(crate) fn build(
    spec: &LabSpec,
    dir: PathBuf,
    preferred_ports: &[u16],
    progress: &mut dyn FnMut(&str),
) -> Result<LabState, LabError> {
    let o = NatsLab::of(spec);
    let program = find_nats_server(o.bin_dir.as_deref())?;
    let run_as = RunAs::resolve(spec.user.as_deref())?;
    let names = o.node_names();
    let ports = pick_ports(names.len() * 3, spec.base_port, preferred_ports)?;
    std::fs::create_dir_all(&dir).map_err(LabError::io(&dir))?;
    let mut state = LabState {
        name: spec.name.get_ref().clone(),
        dir: dir.clone(),
        spec: spec.clone(),
        bin_dir: program.parent().map(Path::to_path_buf).unwrap_or_default(),
        run_as,
        created_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        nodes: nodes(&dir, &names, &ports),
        proxy: None,
        links: Vec::new(),
        netns: None,
        dcs: Vec::new(),
        sentinels: Vec::new(),
    };
    let res = (|| {
        make_layout(&mut state, &["data", "logs", "conf"])?;
        start_cluster(&mut state, &program, progress)?;
        progress("lab is up");
        Ok(())
    })();
    match res {
        Ok(()) => Ok(state),
        Err(err) => {
            let _ = firedrill_lab::teardown(&super::NatsStore, &state);
            Err(err)
        }
    }
}

/// Writes every node's config, starts the servers and waits until the
/// JetStream meta group has one leader all nodes agree on (before that a
/// stream cannot be created).
fn start_cluster(
    state: &mut LabState,
    program: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(), LabError> {
    for i in 0..state.nodes.len() {
        let n = &state.nodes[i];
        std::fs::create_dir_all(&n.data_dir).map_err(LabError::io(&n.data_dir))?;
        if let Some(ru) = &state.run_as {
            ru.chown_tree(&n.data_dir)?;
        }
        let conf = conf_path(state, &n.name);
        std::fs::write(&conf, config_text(n, &state.nodes, "firedrill"))
            .map_err(LabError::io(&conf))?;
        progress(&format!("starting nats-server {}", n.name));
        let c = conf.to_string_lossy().into_owned();
        let h = firedrill_proc::spawn_server(
            program,
            &["-c", &c],
            state.run_as.as_ref(),
            &state.nodes[i].log_file,
        )?;
        state.nodes[i].proc = Some(h);
        state.save()?;
    }
    wait_ready(&state.nodes, READY_TIMEOUT)
}

/// A GET on a node's monitor port.
fn monitor_get(port: u16, path: &str) -> Result<(u16, Value), String> {
    firedrill_faults::proxy::request_json(
        ([127, 0, 0, 1], port).into(),
        "GET",
        path,
        None,
        Duration::from_secs(1),
        Duration::from_secs(1),
    )
}

/// The meta leader a node's `/jsz` names, after its `/healthz` is ok (in
/// 2.9 that includes "JetStream has contact with a meta leader").
fn meta_leader(port: u16) -> Result<String, String> {
    match monitor_get(port, "/healthz")? {
        (200, v) if v["status"] == "ok" => {}
        (c, v) => return Err(format!("/healthz {c} {v}")),
    }
    match monitor_get(port, "/jsz")? {
        (200, v) => v["meta_cluster"]["leader"]
            .as_str()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .ok_or_else(|| "no meta leader yet".into()),
        (c, v) => Err(format!("/jsz {c} {v}")),
    }
}

/// Every node is healthy and all name the same meta leader.
fn wait_ready(nodes: &[NodeState], limit: Duration) -> Result<(), LabError> {
    let end = Instant::now() + limit;
    let mut last = String::new();
    loop {
        let mut leaders = Vec::new();
        for n in nodes {
            if !n.proc.is_some_and(|p| p.is_alive()) {
                return Err(LabError::Exited {
                    node: n.name.clone(),
                    log: n.log_file.clone(),
                    log_tail: log_tail(&n.log_file, 20),
                });
            }
            match meta_leader(n.api_port.unwrap_or(0)) {
                Ok(l) => leaders.push(l),
                Err(e) => last = format!("{}: {e}", n.name),
            }
        }
        if leaders.len() == nodes.len() && leaders.iter().all(|l| *l == leaders[0]) {
            return Ok(());
        }
        if leaders.len() == nodes.len() {
            last = format!("the nodes disagree on the meta leader: {leaders:?}");
        }
        if Instant::now() >= end {
            let n = &nodes[0];
            return Err(LabError::Timeout {
                node: n.name.clone(),
                what: format!("JetStream cluster not ready ({last})"),
                secs: limit.as_secs(),
                log: n.log_file.clone(),
                log_tail: log_tail(&n.log_file, 20),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// NATS nodes: the JetStream meta leader (which places streams) or a
/// member, as each node's monitor says. Stream leaders are per stream and
/// per run, so the lab cannot show them.
pub(crate) fn status(state: &LabState) -> Vec<NodeStatus> {
    state
        .nodes
        .iter()
        .map(|n| {
            let alive = n.proc.is_some_and(|p| p.is_alive());
            let (role, replication) = if !alive {
                ("down".to_string(), None)
            } else {
                match meta_leader(n.api_port.unwrap_or(0)) {
                    Ok(l) if l == n.name => ("meta leader".into(), None),
                    Ok(l) => ("member".into(), Some(format!("meta leader {l}"))),
                    Err(e) => ("unreachable".into(), Some(e)),
                }
            };
            NodeStatus::of(n, role, replication)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_routes_to_every_node() {
        let names: Vec<String> = ["n1", "n2", "n3"].iter().map(|s| s.to_string()).collect();
        let ns = nodes(Path::new("/lab"), &names, &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let c = config_text(&ns[1], &ns, "C1");
        assert!(c.contains("server_name: n2\n"));
        assert!(c.contains("listen: 127.0.0.1:2\n"));
        assert!(c.contains("http: 127.0.0.1:8\n"));
        assert!(c.contains("store_dir: \"/lab/data/n2\""));
        assert!(c.contains(
            "routes: [\"nats-route://127.0.0.1:4\", \"nats-route://127.0.0.1:5\", \"nats-route://127.0.0.1:6\"]"
        ));
        assert!(!c.contains("gateway"));
        assert_eq!(ns[2].conninfo, "nats://127.0.0.1:3");
    }
}
