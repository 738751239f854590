//! Patroni labs: 2 or 3 PostgreSQL nodes managed by Patroni, with a
//! 3-member etcd cluster (started by this lab) as the DCS through Patroni's
//! `etcd3:` section (etcd 3.4 has the v2 API off). The spec's ttl,
//! loop_wait, retry_timeout and synchronous mode go into Patroni's
//! bootstrap DCS configuration, so each lab drills exactly those knobs.
//!
//! Patroni runs as the unprivileged user (PostgreSQL refuses root). It
//! starts the postmaster in a session of its own, so the postmaster is
//! not in Patroni's process group: it is found through its
//! `postmaster.pid`, checked against the process's start time.

use super::config::PatroniLab;
use crate::etcd::lab as etcd;
use crate::postgres::find_bin_dir;
use firedrill_lab::{
    log_tail, make_layout, pick_ports, LabError, LabState, NodeState, NodeStatus, Role,
};
use firedrill_proc::{ProcHandle, RunAs};
use firedrill_spec::LabSpec;
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Patroni bootstraps (initdb, base backups) before anything answers.
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(120);
const DCS_MEMBERS: usize = 3;

/// Builds a Patroni lab in an absent or empty `dir`.
pub(crate) fn build(
    spec: &LabSpec,
    dir: PathBuf,
    preferred_ports: &[u16],
    progress: &mut dyn FnMut(&str),
) -> Result<LabState, LabError> {
    let o = PatroniLab::of(spec);
    let bin_dir = find_bin_dir(o.bin_dir.as_deref())?;
    let patroni = etcd::find_program("patroni", None)?;
    let etcd_bin = etcd::find_program("etcd", None)?;
    let run_as = RunAs::resolve(spec.user.as_deref())?;
    let names = o.node_names();
    let n = names.len();
    // pg ports, REST API ports, DCS client ports, DCS peer ports.
    let ports = pick_ports(2 * n + 2 * DCS_MEMBERS, spec.base_port, preferred_ports)?;
    std::fs::create_dir_all(&dir).map_err(LabError::io(&dir))?;
    let dcs_names: Vec<String> = (1..=DCS_MEMBERS).map(|i| format!("d{i}")).collect();
    let mut state = LabState {
        name: spec.name.get_ref().clone(),
        dir: dir.clone(),
        spec: spec.clone(),
        bin_dir,
        run_as,
        created_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        nodes: names
            .iter()
            .enumerate()
            .map(|(i, name)| NodeState {
                name: name.clone(),
                initial_role: if i == 0 { Role::Primary } else { Role::Standby },
                host: "127.0.0.1".into(),
                port: ports[i],
                peer_port: None,
                api_port: Some(ports[n + i]),
                zone: None,
                data_dir: dir.join("data").join(name),
                log_file: dir.join("logs").join(format!("{name}.log")),
                proc: None,
                conninfo: format!(
                    "host=127.0.0.1 port={} user=postgres dbname=postgres",
                    ports[i]
                ),
                net: None,
            })
            .collect(),
        proxy: None,
        links: Vec::new(),
        netns: None,
        dcs: etcd::members(&dir, &dcs_names, &ports[2 * n..], "dcs", "dcs-"),
        sentinels: Vec::new(),
    };
    let res = (|| {
        make_layout(&mut state, &["data", "dcs", "logs", "run", "patroni"])?;
        etcd::start_cluster(&mut state, true, &etcd_bin, 100, 1000, progress)?;
        for i in 0..n {
            let path = config_path(&state, i);
            std::fs::write(&path, config_yaml(&state, i)).map_err(LabError::io(&path))?;
            if let Some(ru) = &state.run_as {
                ru.chown_tree(&path)?;
            }
        }
        // The first node bootstraps alone, so it is the first leader.
        progress(&format!(
            "starting patroni {} (bootstrap)",
            state.nodes[0].name
        ));
        start_node(&mut state, &patroni, 0)?;
        wait_cluster(&state, 1, progress)?;
        for i in 1..n {
            progress(&format!("starting patroni {}", state.nodes[i].name));
            start_node(&mut state, &patroni, i)?;
        }
        wait_cluster(&state, n, progress)?;
        progress("lab is up");
        Ok(())
    })();
    match res {
        Ok(()) => Ok(state),
        Err(e) => {
            let _ = firedrill_lab::teardown(&super::PatroniStore, &state);
            Err(e)
        }
    }
}

fn config_path(state: &LabState, i: usize) -> PathBuf {
    state
        .dir
        .join("patroni")
        .join(format!("{}.yml", state.nodes[i].name))
}

fn start_node(state: &mut LabState, patroni: &Path, i: usize) -> Result<(), LabError> {
    let cfg = config_path(state, i).to_string_lossy().into_owned();
    let h = firedrill_proc::spawn_server(
        patroni,
        &[&cfg],
        state.run_as.as_ref(),
        &state.nodes[i].log_file,
    )?;
    state.nodes[i].proc = Some(h);
    state.save()
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn q(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// A postgresql.conf parameter value as a YAML string.
fn param(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => q(s),
        other => q(&other.to_string()),
    }
}

/// Patroni's configuration for node `i`, written as text.
pub(crate) fn config_yaml(state: &LabState, i: usize) -> String {
    let p = PatroniLab::of(&state.spec).settings();
    let n = &state.nodes[i];
    let api = n.api_port.unwrap_or(0);
    let hosts: Vec<String> = state
        .dcs
        .iter()
        .map(|d| format!("127.0.0.1:{}", d.port))
        .collect();
    let mut params = String::new();
    for (k, v) in &PatroniLab::of(&state.spec).settings {
        params.push_str(&format!("        {}: {}\n", q(k), param(v)));
    }
    let run = state.dir.join("run");
    let lines: Vec<String> = vec![
        format!("# firedrill lab {}: generated, do not edit", state.name),
        format!("scope: {}", q(&state.name)),
        "namespace: /firedrill/".into(),
        format!("name: {}", q(&n.name)),
        "log:".into(),
        "  level: INFO".into(),
        "restapi:".into(),
        format!("  listen: 127.0.0.1:{api}"),
        format!("  connect_address: 127.0.0.1:{api}"),
        "etcd3:".into(),
        format!("  hosts: {}", q(&hosts.join(","))),
        "bootstrap:".into(),
        "  dcs:".into(),
        format!("    ttl: {}", p.ttl.get_ref().0.as_secs()),
        format!("    loop_wait: {}", p.loop_wait.get_ref().0.as_secs()),
        format!(
            "    retry_timeout: {}",
            p.retry_timeout.get_ref().0.as_secs()
        ),
        format!("    maximum_lag_on_failover: {}", p.maximum_lag_on_failover),
        format!("    synchronous_mode: {}", p.synchronous_mode),
        format!("    synchronous_mode_strict: {}", p.strict()),
        "    postgresql:".into(),
        "      use_pg_rewind: true".into(),
        "      use_slots: true".into(),
        "      parameters:".into(),
        "        wal_log_hints: \"on\"".into(),
        "        shared_buffers: \"16MB\"".into(),
        "        max_wal_senders: 10".into(),
        "        max_replication_slots: 10".into(),
        "        hot_standby: \"on\"".into(),
        "        wal_receiver_status_interval: \"1s\"".into(),
    ];
    let mut text = lines.join("\n") + "\n" + &params;
    let rest: Vec<String> = vec![
        "  initdb:".into(),
        "  - encoding: UTF8".into(),
        "  - locale: C".into(),
        "  - data-checksums".into(),
        "  pg_hba:".into(),
        "  - local all all trust".into(),
        "  - host all all 127.0.0.1/32 trust".into(),
        "  - host replication all 127.0.0.1/32 trust".into(),
        "postgresql:".into(),
        format!("  listen: 127.0.0.1:{}", n.port),
        format!("  connect_address: 127.0.0.1:{}", n.port),
        format!("  data_dir: {}", q(&n.data_dir.to_string_lossy())),
        format!("  bin_dir: {}", q(&state.bin_dir.to_string_lossy())),
        format!(
            "  pgpass: {}",
            q(&run.join(format!("pgpass-{}", n.name)).to_string_lossy())
        ),
        "  authentication:".into(),
        "    superuser:".into(),
        "      username: postgres".into(),
        "    replication:".into(),
        "      username: replicator".into(),
        "    rewind:".into(),
        "      username: postgres".into(),
        "  parameters:".into(),
        format!("    unix_socket_directories: {}", q(&run.to_string_lossy())),
    ];
    text += &(rest.join("\n") + "\n");
    text
}

/// Patroni's `/cluster` from the first node that answers.
pub(crate) fn cluster(state: &LabState) -> Option<serde_json::Value> {
    state.nodes.iter().find_map(|n| {
        let (code, v) = firedrill_faults::proxy::request_json(
            ([127, 0, 0, 1], n.api_port?).into(),
            "GET",
            "/cluster",
            None,
            Duration::from_secs(2),
            Duration::from_secs(2),
        )
        .ok()?;
        (code == 200).then_some(v)
    })
}

/// Healthy: one leader running, every other member of the first `want`
/// nodes a replica that is streaming (or running) with lag 0, and in
/// synchronous mode one synchronous standby.
pub(crate) fn healthy(state: &LabState, v: &serde_json::Value, want: usize) -> Result<(), String> {
    let members = v["members"].as_array().cloned().unwrap_or_default();
    if members.len() < want {
        return Err(format!("{} of {want} members registered", members.len()));
    }
    let mut leaders = 0;
    let mut sync = 0;
    for m in &members {
        let name = m["name"].as_str().unwrap_or("?");
        let role = m["role"].as_str().unwrap_or("");
        let st = m["state"].as_str().unwrap_or("");
        match role {
            "leader" | "master" | "primary" => {
                if st != "running" {
                    return Err(format!("leader {name} is {st}"));
                }
                leaders += 1;
            }
            _ => {
                if role == "sync_standby" {
                    sync += 1;
                }
                if st != "streaming" && st != "running" {
                    return Err(format!("{name} is {st}"));
                }
                if m["lag"].as_u64() != Some(0) {
                    return Err(format!("{name} lags {}", m["lag"]));
                }
            }
        }
    }
    if leaders != 1 {
        return Err(format!("{leaders} leaders"));
    }
    if want > 1 && PatroniLab::of(&state.spec).settings().synchronous_mode && sync == 0 {
        return Err("no synchronous standby yet".into());
    }
    Ok(())
}

fn wait_cluster(
    state: &LabState,
    want: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<(), LabError> {
    let end = Instant::now() + BOOTSTRAP_TIMEOUT;
    let mut last = String::from("no REST API answers yet");
    let mut said = String::new();
    loop {
        for n in &state.nodes[..want] {
            if !n.proc.is_some_and(|p| p.is_alive()) {
                return Err(LabError::Exited {
                    node: n.name.clone(),
                    log: n.log_file.clone(),
                    log_tail: log_tail(&n.log_file, 30),
                });
            }
        }
        if let Some(v) = cluster(state) {
            match healthy(state, &v, want) {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
        }
        if last != said {
            progress(&format!("waiting for patroni: {last}"));
            said = last.clone();
        }
        if Instant::now() >= end {
            let n = &state.nodes[want - 1];
            return Err(LabError::Timeout {
                node: n.name.clone(),
                what: format!("patroni cluster not healthy ({last})"),
                secs: BOOTSTRAP_TIMEOUT.as_secs(),
                log: n.log_file.clone(),
                log_tail: log_tail(&n.log_file, 30),
            });
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The postmaster Patroni runs for `node` right now, if any.
pub fn postmaster(node: &NodeState) -> Option<ProcHandle> {
    ProcHandle::from_postmaster_pid(&node.data_dir)
        .ok()
        .filter(|h| h.is_alive())
}

/// Stops the Patroni nodes: wake everything (a drill may have paused it),
/// SIGTERM Patroni (it stops its postmaster), then SIGKILL whatever is
/// left, Patroni's process group and the postmaster's.
pub(crate) fn stop(state: &LabState) -> Result<(), LabError> {
    let patronis: Vec<ProcHandle> = state
        .nodes
        .iter()
        .filter_map(|n| n.proc)
        .filter(|p| p.is_alive())
        .collect();
    let posts: Vec<(String, ProcHandle)> = state
        .nodes
        .iter()
        .filter_map(|n| postmaster(n).map(|h| (n.name.clone(), h)))
        .collect();
    for p in patronis.iter().chain(posts.iter().map(|(_, h)| h)) {
        let _ = p.signal_tree(Signal::SIGCONT);
    }
    for p in &patronis {
        let _ = p.signal(Signal::SIGTERM);
    }
    let end = Instant::now() + Duration::from_secs(20);
    for p in &patronis {
        p.wait_exit(end.saturating_duration_since(Instant::now()));
    }
    for p in &patronis {
        if p.is_alive() {
            let _ = p.signal_tree(Signal::SIGKILL);
            p.wait_exit(Duration::from_secs(5));
        }
    }
    for (name, h) in &posts {
        if h.is_alive() {
            let _ = h.signal(Signal::SIGINT);
            if !h.wait_exit(Duration::from_secs(10)) {
                let _ = h.signal_tree(Signal::SIGKILL);
                if !h.wait_exit(Duration::from_secs(5)) {
                    return Err(LabError::Replication(format!(
                        "postmaster of {name} (pid {}) survived SIGKILL",
                        h.pid
                    )));
                }
            }
        }
    }
    Ok(())
}

/// PostgreSQL's view of each node, with Patroni's own view of each member
/// beside it.
pub(crate) async fn status(state: &LabState) -> Vec<NodeStatus> {
    let mut out = crate::postgres::status::pg_status(state).await;
    let st = state.clone();
    let view = tokio::task::spawn_blocking(move || cluster(&st))
        .await
        .ok()
        .flatten();
    for s in out.iter_mut() {
        let m = view.as_ref().and_then(|v| {
            v["members"]
                .as_array()?
                .iter()
                .find(|m| m["name"].as_str() == Some(s.name.as_str()))
                .cloned()
        });
        if let Some(m) = m {
            let r = format!(
                "patroni {} {}",
                m["role"].as_str().unwrap_or("?"),
                m["state"].as_str().unwrap_or("?")
            );
            s.replication = Some(match &s.replication {
                Some(x) => format!("{r}; {x}"),
                None => r,
            });
        }
    }
    out
}
