//! A PostgreSQL streaming-replication lab: a primary, its standbys, and
//! optionally synchronous replication, proxied links or a netns per node.

use super::config::{PgLab, Replication};
use super::tools::{self, Tools};
use firedrill_lab::{
    links, make_layout, netns, pick_ports, poll, LabError, LabState, NodeState, Role, READY_TIMEOUT,
};
use firedrill_proc::RunAs;
use firedrill_spec::LabSpec;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

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

/// One conninfo naming every node; libpq picks whichever accepts writes,
/// so clients follow a failover without knowing which node won.
pub fn multi_host_conninfo(state: &LabState) -> String {
    let hosts: Vec<&str> = state.nodes.iter().map(|n| n.host.as_str()).collect();
    let ports: Vec<String> = state.nodes.iter().map(|n| n.port.to_string()).collect();
    format!(
        "host={} port={} user=postgres dbname=postgres target_session_attrs=read-write",
        hosts.join(","),
        ports.join(",")
    )
}

/// The PostgreSQL client tools of a lab, run as its servers' user.
pub(crate) fn tools(state: &LabState) -> Tools<'_> {
    Tools {
        bin: &state.bin_dir,
        run_as: state.run_as.as_ref(),
        cwd: &state.dir,
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
        .chain(std::iter::once(firedrill_lab::absolute(d)))
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

/// Creates a PostgreSQL lab in an absent or empty `dir`.
pub(crate) fn build(
    spec: &LabSpec,
    dir: PathBuf,
    preferred_ports: &[u16],
    progress: &mut dyn FnMut(&str),
) -> Result<LabState, LabError> {
    let o = PgLab::of(spec);
    let bin_dir = find_bin_dir(o.bin_dir.as_deref())?;
    let run_as = RunAs::resolve(spec.user.as_deref())?;
    let names = o.node_names();
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
                    zone: None,
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
            let _ = firedrill_lab::teardown(&super::PostgresStore, &state);
            Err(e)
        }
    }
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
    if super::backup::enabled(state).is_some() {
        super::backup::setup(state, progress)?;
    }
    let primary_port = state.nodes[0].port;
    let primary_host = state.nodes[0].host.clone();
    let standbys: Vec<usize> = (1..state.nodes.len()).collect();
    for &i in &standbys {
        let name = state.nodes[i].name.clone();
        progress(&format!("base backup for {name}"));
        let tools = tools(state);
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
        tools::fix_standby_auto_conf(
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
        let tools = tools(state);
        let sql = format!(
            "SELECT state FROM pg_stat_replication WHERE application_name = '{}'",
            n.name
        );
        poll(
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
    if PgLab::of(&state.spec).replication == Replication::Sync {
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
    tools(state).run(
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
    for (k, v) in &PgLab::of(&state.spec).settings {
        if LAB_OWNED.contains(&k.to_ascii_lowercase().as_str()) {
            return Err(LabError::Setting {
                key: k.clone(),
                msg: "is set by the lab itself (per node or by `replication`)".into(),
            });
        }
        conf.push_str(&format!("{k} = {}\n", tools::conf_literal(k, v)?));
    }
    if let Some(b) = super::backup::enabled(state) {
        // Later lines win: pgBackRest archives instead of the plain copy.
        conf.push_str(&super::backup::archive_settings(state, &b));
    }
    tools::append(&n1.data_dir.join("postgresql.conf"), &conf)?;
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
    tools::append(&n1.data_dir.join("pg_hba.conf"), &hba)?;
    progress(&format!("starting {}", n1.name));
    start_node(state, 0)?;
    wait_node_ready(state, 0)
}

/// Starts a postmaster directly (not via pg_ctl) so that we own its
/// process group and hold its handle; records it in state.json at once.
pub(crate) fn start_node(state: &mut LabState, i: usize) -> Result<(), LabError> {
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

pub(crate) fn wait_node_ready(state: &LabState, i: usize) -> Result<(), LabError> {
    let n = &state.nodes[i];
    let proc = n.proc.ok_or_else(|| LabError::Exited {
        node: n.name.clone(),
        log: n.log_file.clone(),
        log_tail: "(never started)".into(),
    })?;
    tools::wait_ready(
        &tools(state),
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
    let k = PgLab::of(&state.spec)
        .sync_quorum
        .as_ref()
        .map(|q| *q.get_ref())
        .unwrap_or(1);
    let tools = tools(state);
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
            PgLab::of(&state.spec).synchronous_commit.as_guc()
        ),
    )?;
    tools.psql(&p.host, p.port, "SELECT pg_reload_conf()")?;
    let want = standbys.len().to_string();
    poll(
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
            zone: None,
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
            multi_host_conninfo(&st),
            "host=127.0.0.1,127.0.0.1 port=1,2 user=postgres dbname=postgres target_session_attrs=read-write"
        );
    }
}
