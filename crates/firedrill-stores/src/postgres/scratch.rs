//! `into = "new_node"`: the backups restored into a scratch node of the
//! lab, with its own data directory, loopback port and log, started as the
//! lab's servers are (its user, its own process group), promoted by its
//! recovery, and torn down at the end of the trial.
//!
//! Scratch nodes are recorded in `<lab>/scratch.json` the way `state.json`
//! records the lab's own servers: before the server starts, and again the
//! moment its pid exists. So `lab down` (in this or a later process) stops
//! exactly what was started, `lab status` lists them, and a lab reset
//! takes them with the lab directory. They are not in `state.json`: they
//! are no member of the lab the spec declares, and a reset rebuilds that.

use super::backup::{await_promotion, err, fetch, flush_archive};
use super::tools::append;
use firedrill_lab::{pick_ports, stop_nodes, LabError, LabState, NodeState, Role};
use firedrill_targets::{RestoreReport, RestoreRequest, TargetError, TargetNode};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

const SCRATCH_FILE: &str = "scratch.json";

fn file(dir: &Path) -> PathBuf {
    dir.join(SCRATCH_FILE)
}

/// The scratch nodes recorded in a lab directory (none when no restore
/// made one).
pub(crate) fn load(dir: &Path) -> Result<Vec<NodeState>, LabError> {
    let path = file(dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| LabError::State {
            path,
            msg: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(LabError::io(&path)(e)),
    }
}

/// Writes the list atomically (temp file + rename), as `state.json` is.
fn save(dir: &Path, nodes: &[NodeState]) -> Result<(), LabError> {
    let path = file(dir);
    let tmp = dir.join("scratch.json.tmp");
    let text = serde_json::to_string_pretty(nodes).map_err(|e| LabError::State {
        path: path.clone(),
        msg: e.to_string(),
    })?;
    std::fs::write(&tmp, text + "\n").map_err(LabError::io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(LabError::io(&path))
}

/// Records `n` (new or updated) in the list.
fn record(dir: &Path, n: &NodeState) -> Result<(), LabError> {
    let mut all = load(dir)?;
    all.retain(|x| x.name != n.name);
    all.push(n.clone());
    save(dir, &all)
}

/// A name (r1, r2, …) and a free loopback port no lab server holds, its
/// data directory made (0700, the servers' user's), recorded before
/// anything is written into it.
fn allocate(state: &LabState) -> Result<NodeState, LabError> {
    let taken = load(&state.dir)?;
    let name = (1..)
        .map(|i| format!("r{i}"))
        .find(|n| !taken.iter().any(|t| &t.name == n) && state.node(n).is_none())
        .unwrap_or_else(|| "r1".into());
    let lab_ports = state.ports();
    let port = loop {
        let p = pick_ports(1, None, &[])?[0];
        if !lab_ports.contains(&p) && !taken.iter().any(|t| t.port == p) {
            break p;
        }
    };
    let data_dir = state.dir.join("data").join(&name);
    if data_dir.exists() {
        std::fs::remove_dir_all(&data_dir).map_err(LabError::io(&data_dir))?;
    }
    let n = NodeState {
        conninfo: format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
        initial_role: Role::Primary,
        host: "127.0.0.1".into(),
        port,
        log_file: state.dir.join("logs").join(format!("{name}.log")),
        data_dir,
        name,
        proc: None,
        net: None,
        peer_port: None,
        api_port: None,
        zone: None,
    };
    // A log left by an earlier scratch node of the same name would be
    // read as this one's words (its "archive recovery complete").
    if n.log_file.exists() {
        std::fs::remove_file(&n.log_file).map_err(LabError::io(&n.log_file))?;
    }
    record(&state.dir, &n)?;
    std::fs::create_dir_all(&n.data_dir).map_err(LabError::io(&n.data_dir))?;
    std::fs::set_permissions(&n.data_dir, std::fs::Permissions::from_mode(0o700))
        .map_err(LabError::io(&n.data_dir))?;
    if let Some(ru) = &state.run_as {
        ru.chown_tree(&n.data_dir)?;
    }
    Ok(n)
}

/// What a restored copy of the primary must not keep: its port and
/// address (the scratch node has its own, on loopback), and synchronous
/// replication to standbys that do not follow it (every commit would wait).
fn own_settings(n: &NodeState) -> String {
    format!(
        "\n# firedrill scratch node {}\n\
         port = {}\n\
         listen_addresses = '127.0.0.1'\n\
         synchronous_standby_names = ''\n\
         primary_conninfo = ''\n",
        n.name, n.port
    )
}

/// Flush (optional) on `source`, restore the backups into a new scratch
/// node, start it, and wait until it has replayed and promoted. The
/// source keeps running: a data disaster's damaged primary, or a restore
/// test's healthy one.
pub(crate) fn restore_new_node(
    dir: &Path,
    source: &str,
    req: &RestoreRequest,
) -> Result<RestoreReport, TargetError> {
    let state = LabState::load(dir).map_err(|e| err(source, e))?;
    let i = state
        .nodes
        .iter()
        .position(|n| n.name == source)
        .ok_or_else(|| err(source, "no such node in the lab"))?;
    check_open(req, source)?;
    let mut report = RestoreReport::default();
    if req.flush_archive {
        flush_archive(&state, i).map_err(|e| {
            err(
                source,
                format!("cannot flush the archive (a lost primary has nothing to flush: set flush_archive = false): {e}"),
            )
        })?;
        report.flushed = Some(Instant::now());
    }
    let mut n = allocate(&state).map_err(|e| err(source, e))?;
    report.tool_target = fetch(&state, &n.data_dir, &req.point, false).map_err(|e| err(&n.name, e))?;
    append(&n.data_dir.join("postgresql.auto.conf"), &own_settings(&n)).map_err(|e| err(&n.name, e))?;
    if let Some(ru) = &state.run_as {
        ru.chown_tree(&n.data_dir).map_err(|e| err(&n.name, e))?;
    }
    report.fetched = Some(Instant::now());
    let log_from = std::fs::metadata(&n.log_file).map_or(0, |m| m.len());
    check_open(req, &n.name)?;
    start(&state, &mut n, req).map_err(|e| err(&n.name, e))?;
    await_promotion(&state, &n, log_from, req, &mut report)?;
    report.new_node = Some(TargetNode {
        name: n.name.clone(),
        control: n.conninfo.clone(),
        client: n.conninfo.clone(),
    });
    Ok(report)
}

/// Starts the scratch node's postmaster as the lab's servers are started
/// (its own process group, the servers' user), records its pid at once,
/// and tells the drill, which owes its teardown from then on.
fn start(state: &LabState, n: &mut NodeState, req: &RestoreRequest) -> Result<(), LabError> {
    let postgres = state.bin_dir.join("postgres");
    let data = n.data_dir.to_string_lossy().into_owned();
    let h = firedrill_proc::spawn_server(
        &postgres,
        &["-D", &data],
        state.run_as.as_ref(),
        &n.log_file,
    )?;
    n.proc = Some(h);
    let saved = record(&state.dir, n);
    if let Some(g) = &req.scratch {
        g.0.started(&n.name, h);
    }
    saved
}

/// Stops every recorded scratch node's server (fast shutdown, then
/// SIGKILL of its tree), removes its socket lock, data directory and
/// record; returns their names. None recorded: nothing to do.
pub(crate) fn discard_all(dir: &Path) -> Result<Vec<String>, LabError> {
    let all = load(dir)?;
    if all.is_empty() {
        return Ok(Vec::new());
    }
    stop_nodes(&all)?;
    for n in &all {
        remove_files(dir, n)?;
    }
    save(dir, &[])?;
    Ok(all.into_iter().map(|n| n.name).collect())
}

/// The drill's trial ended while this restore waited for the lab: it
/// must start no server nobody would stop.
fn check_open(req: &RestoreRequest, node: &str) -> Result<(), TargetError> {
    match &req.scratch {
        Some(g) if g.0.closed() => Err(err(node, "the trial ended before the restore started its server")),
        _ => Ok(()),
    }
}

/// What a stopped scratch node leaves: a killed postmaster's socket lock
/// (its pid may belong to another process by now) and its data.
fn remove_files(dir: &Path, n: &NodeState) -> Result<(), LabError> {
    let run = dir.join("run");
    for stale in [
        run.join(format!(".s.PGSQL.{}.lock", n.port)),
        run.join(format!(".s.PGSQL.{}", n.port)),
    ] {
        if stale.exists() {
            std::fs::remove_file(&stale).map_err(LabError::io(&stale))?;
        }
    }
    if n.data_dir.exists() {
        std::fs::remove_dir_all(&n.data_dir).map_err(LabError::io(&n.data_dir))?;
    }
    Ok(())
}

/// `lab down`: every recorded scratch node's server, before the lab's.
pub(crate) fn stop_all(dir: &Path) -> Result<(), LabError> {
    stop_nodes(&load(dir)?)
}

/// `lab status` rows for the scratch nodes, probed like the lab's own.
pub(crate) async fn status(state: &LabState) -> Vec<firedrill_lab::NodeStatus> {
    let nodes = load(&state.dir).unwrap_or_default();
    if nodes.is_empty() {
        return Vec::new();
    }
    let mut view = state.clone();
    view.nodes = nodes;
    let mut rows = super::status::pg_status(&view).await;
    for r in &mut rows {
        let note = "scratch node (restored from the backups)".to_string();
        r.replication = Some(match r.replication.take() {
            Some(rep) => format!("{note}; {rep}"),
            None => note,
        });
    }
    rows
}

