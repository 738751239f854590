//! The Kafka lab's CDC worker (`cdc = { source = "orders" }`): Kafka
//! Connect in standalone mode (`ConnectStandalone`, from the lab's own
//! Kafka jars) running Debezium's PostgreSQL connector with its outbox
//! `EventRouter`. It captures the source member's `firedrill_outbox`
//! table through a logical replication slot (`pgoutput`) and publishes
//! each row to `outbox.<aggregatetype>`, keyed by `aggregateid`, with the
//! row's `id` in the record's `id` header.
//!
//! The worker is the lab's auxiliary process `connect`
//! (`state.sentinels`): recorded when it starts, checked, and stopped with
//! the brokers. Its offsets live in a file in its data directory, flushed
//! every `offset_flush`: a worker killed between flushes publishes the
//! rows since the last one again when it restarts (Debezium is
//! at-least-once), which is what an outbox's consumer must absorb.

use super::config::{CdcSpec, KafkaLab};
use super::lab::{self as klab, HOST};
use firedrill_lab::{pick_ports, LabError, LabState, NodeState, Role};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The worker's name in the lab's state (not a broker).
pub const CONNECT: &str = "connect";
/// Debezium's version, as scripts/install-deps.sh fetches it.
pub const DEBEZIUM_VERSION: &str = "3.6.1.Final";
/// The outbox table in the source's `postgres` database.
pub const OUTBOX_TABLE: &str = "firedrill_outbox";
/// The connector's name at the worker's REST API.
pub const CONNECTOR: &str = "firedrill-outbox";
/// The replication slot (and publication) Debezium reads through.
pub const SLOT: &str = "firedrill_outbox";
const CLASS: &str = "org.apache.kafka.connect.cli.ConnectStandalone";
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// The topic the EventRouter routes an aggregate type's rows to.
pub fn outbox_topic(aggregate: &str) -> String {
    format!("outbox.{aggregate}")
}

/// The plugin directory (Connect's `plugin.path`): `FIREDRILL_DEBEZIUM_DIR`
/// or the cache; it holds `debezium-connector-postgres/`.
pub fn find_plugins() -> Result<PathBuf, LabError> {
    let dir = std::env::var_os("FIREDRILL_DEBEZIUM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            PathBuf::from(home).join(format!(".cache/firedrill/debezium-{DEBEZIUM_VERSION}"))
        });
    let jar = dir
        .join("debezium-connector-postgres")
        .join(format!("debezium-connector-postgres-{DEBEZIUM_VERSION}.jar"));
    if jar.is_file() {
        Ok(dir)
    } else {
        Err(LabError::Program(format!(
            "Debezium's PostgreSQL connector ({}) is not installed; install it with scripts/install-deps.sh (or set FIREDRILL_DEBEZIUM_DIR to a Connect plugin directory holding debezium-connector-postgres/)",
            jar.display()
        )))
    }
}

/// Where the source member's lab is: beside this one, in the lab of labs.
pub fn source_dir(state_dir: &Path, cdc: &CdcSpec) -> PathBuf {
    state_dir
        .parent()
        .unwrap_or(Path::new("."))
        .join(cdc.source.get_ref())
}

/// The source member's primary, checked before anything starts: a `cdc`
/// lab needs its PostgreSQL member up (listed before it).
pub fn source_primary(state_dir: &Path, cdc: &CdcSpec) -> Result<(LabState, NodeState), LabError> {
    let dir = source_dir(state_dir, cdc);
    let src = LabState::load(&dir).map_err(|e| {
        LabError::Program(format!(
            "cdc source {:?}: no PostgreSQL lab in {} ({e}); `cdc` works in a lab of labs, with the source member listed before this one",
            cdc.source.get_ref(),
            dir.display()
        ))
    })?;
    let primary = src
        .nodes
        .iter()
        .find(|n| n.initial_role == Role::Primary)
        .cloned()
        .ok_or_else(|| LabError::Program(format!("cdc source {dir:?} has no primary")))?;
    Ok((src, primary))
}

/// The worker's entry in state, before it starts.
pub(crate) fn worker_node(dir: &Path) -> Result<NodeState, LabError> {
    let rest = pick_ports(1, None, &[])?[0];
    Ok(NodeState {
        name: CONNECT.into(),
        initial_role: Role::Standby,
        host: HOST.into(),
        port: rest,
        data_dir: dir.join("data").join(CONNECT),
        log_file: dir.join("logs").join("connect.log"),
        proc: None,
        conninfo: format!("http://{HOST}:{rest}"),
        peer_port: None,
        api_port: None,
        net: None,
        zone: None,
    })
}

/// Creates the outbox table and starts the worker; returns once the
/// connector's task runs.
pub(crate) fn start(
    state: &mut LabState,
    o: &KafkaLab,
    java: &Path,
    cp: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<(), LabError> {
    let Some(cdc) = &o.cdc else { return Ok(()) };
    let (src, pg) = source_primary(&state.dir, cdc)?;
    progress(&format!(
        "creating {OUTBOX_TABLE} on {}/{}",
        cdc.source.get_ref(),
        pg.name
    ));
    create_outbox(&src, &pg)?;
    let plugins = readable_copy(state, &find_plugins()?, "plugins")?;
    let node = worker_node(&state.dir)?;
    std::fs::create_dir_all(&node.data_dir).map_err(LabError::io(&node.data_dir))?;
    if let Some(ru) = &state.run_as {
        ru.chown_tree(&node.data_dir)?;
    }
    let conf = state.dir.join("conf");
    let worker = worker_config(state, o, cdc, &node, &plugins);
    klab::write_file(state, &conf.join("connect-worker.properties"), &worker)?;
    let connector = connector_config(o, &pg);
    klab::write_file(state, &conf.join("connect-outbox.properties"), &connector)?;
    state.sentinels.push(node);
    state.save()?;
    progress("starting Kafka Connect with Debezium's PostgreSQL connector");
    spawn(state, java, cp)
}

/// Starts the worker again after it died (a killed worker's recovery),
/// on the same configuration, offsets and port; returns once its
/// connector's task runs.
pub fn restart(state: &mut LabState) -> Result<(), LabError> {
    let o = KafkaLab::of(&state.spec);
    let java = klab::find_java(&o)?;
    let cp = klab::lab_classpath(state, &klab::find_libs(&o)?)?;
    if let Some(p) = worker(state).and_then(|w| w.proc) {
        if p.is_alive() {
            return Ok(());
        }
    }
    spawn(state, &java, &cp)
}

/// `recovery.restart` of `node` in the lab at `dir`: only the worker
/// restarts (a broker's recovery is Kafka's own).
pub async fn restart_in(
    dir: Option<PathBuf>,
    node: &str,
) -> Result<(), firedrill_targets::TargetError> {
    use firedrill_targets::TargetError;
    let Some(dir) = dir else {
        return Err(TargetError::Other(
            "a restart needs a lab: firedrill started the process".into(),
        ));
    };
    if node != CONNECT {
        return Err(TargetError::Other(format!(
            "restart starts a lab's {CONNECT} worker; {node} is a broker (its recovery is Kafka's own: automatic)"
        )));
    }
    tokio::task::spawn_blocking(move || {
        let mut st = LabState::load(&dir)?;
        restart(&mut st)
    })
    .await
    .map_err(|e| TargetError::Other(e.to_string()))?
    .map_err(|e| TargetError::Other(e.to_string()))
}

/// The worker's entry, when the lab has one.
pub fn worker(state: &LabState) -> Option<&NodeState> {
    state.sentinels.iter().find(|s| s.name == CONNECT)
}

fn spawn(state: &mut LabState, java: &Path, cp: &str) -> Result<(), LabError> {
    let i = state
        .sentinels
        .iter()
        .position(|s| s.name == CONNECT)
        .ok_or_else(|| LabError::Program("this Kafka lab has no cdc worker".into()))?;
    let node = state.sentinels[i].clone();
    let conf = state.dir.join("conf");
    let mut args: Vec<String> = klab::JVM_FLAGS.iter().map(|s| s.to_string()).collect();
    args.push(format!("-Dkafka.logs.dir={}", node.data_dir.display()));
    args.push(format!(
        "-Dlog4j2.configurationFile={}",
        conf.join("log4j2.properties").display()
    ));
    args.push("-cp".into());
    args.push(cp.into());
    args.push(CLASS.into());
    args.push(conf.join("connect-worker.properties").display().to_string());
    args.push(conf.join("connect-outbox.properties").display().to_string());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let h = firedrill_proc::spawn_server(java, &refs, state.run_as.as_ref(), &node.log_file)?;
    state.sentinels[i].proc = Some(h);
    state.save()?;
    wait_running(&state.sentinels[i])
}

/// `psql` from the source's own binaries, as root over loopback (the lab
/// trusts it), so the table exists before Debezium builds its publication.
fn create_outbox(src: &LabState, pg: &NodeState) -> Result<(), LabError> {
    let psql = src.bin_dir.join("psql");
    let out = std::process::Command::new(&psql)
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", &pg.host])
        .args(["-p", &pg.port.to_string(), "-U", "postgres", "-d", "postgres"])
        .args(["-c", crate::OUTBOX_DDL])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| LabError::Program(format!("{}: {e}", psql.display())))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LabError::Command {
            program: format!("psql (creating {OUTBOX_TABLE})"),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// A copy of a directory tree the lab user can read (hard links where the
/// filesystem allows), unless it can read the original already.
fn readable_copy(state: &LabState, src: &Path, name: &str) -> Result<PathBuf, LabError> {
    let Some(ru) = &state.run_as else {
        return Ok(src.to_path_buf());
    };
    if firedrill_lab::check_traversal(src, ru, &state.name).is_ok() {
        return Ok(src.to_path_buf());
    }
    let dst = state.dir.join(name);
    copy_tree(src, &dst)?;
    ru.chown_tree(&dst)?;
    Ok(dst)
}

fn copy_tree(src: &Path, dst: &Path) -> Result<(), LabError> {
    std::fs::create_dir_all(dst).map_err(LabError::io(dst))?;
    for e in std::fs::read_dir(src).map_err(LabError::io(src))? {
        let e = e.map_err(LabError::io(src))?;
        let to = dst.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &to)?;
        } else {
            klab::link_or_copy(&e.path(), &to)?;
        }
    }
    Ok(())
}

/// The lab's brokers (not its separate controllers), as a bootstrap list.
pub(crate) fn bootstrap(state: &LabState) -> String {
    state
        .nodes
        .iter()
        .filter(|n| !klab::is_controller_only(&n.name))
        .map(|n| n.conninfo.clone())
        .collect::<Vec<_>>()
        .join(",")
}

fn worker_config(
    state: &LabState,
    o: &KafkaLab,
    cdc: &CdcSpec,
    node: &NodeState,
    plugins: &Path,
) -> String {
    let _ = o;
    format!(
        "# firedrill kafka lab: Kafka Connect (standalone) for the outbox\n\
         bootstrap.servers={boot}\n\
         key.converter=org.apache.kafka.connect.storage.StringConverter\n\
         value.converter=org.apache.kafka.connect.storage.StringConverter\n\
         offset.storage.file.filename={offsets}\n\
         offset.flush.interval.ms={flush}\n\
         plugin.path={plugins}\n\
         listeners=http://{HOST}:{port}\n\
         rest.advertised.host.name={HOST}\n\
         producer.acks=all\n",
        boot = bootstrap(state),
        offsets = node.data_dir.join("offsets").display(),
        flush = cdc.offset_flush().as_millis(),
        plugins = plugins.display(),
        port = node.port,
    )
}

fn connector_config(o: &KafkaLab, pg: &NodeState) -> String {
    let rf = o.settings().replication_factor();
    format!(
        "name={CONNECTOR}\n\
         connector.class=io.debezium.connector.postgresql.PostgresConnector\n\
         tasks.max=1\n\
         plugin.name=pgoutput\n\
         database.hostname={host}\n\
         database.port={port}\n\
         database.user=postgres\n\
         database.dbname=postgres\n\
         topic.prefix=firedrill\n\
         table.include.list=public.{OUTBOX_TABLE},public.firedrill_cdc_heartbeat\n\
         slot.name={SLOT}\n\
         publication.name={SLOT}\n\
         publication.autocreate.mode=filtered\n\
         tombstones.on.delete=false\n\
         heartbeat.interval.ms=1000\n\
         heartbeat.action.query=INSERT INTO firedrill_cdc_heartbeat (id, ts) VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET ts = EXCLUDED.ts\n\
         transforms=outbox\n\
         transforms.outbox.type=io.debezium.transforms.outbox.EventRouter\n\
         transforms.outbox.predicate=outboxTable\n\
         predicates=outboxTable\n\
         predicates.outboxTable.type=org.apache.kafka.connect.transforms.predicates.TopicNameMatches\n\
         predicates.outboxTable.pattern=firedrill\\.public\\.{OUTBOX_TABLE}\n\
         transforms.outbox.route.topic.replacement=outbox.${{routedByValue}}\n\
         topic.creation.default.replication.factor={rf}\n\
         topic.creation.default.partitions=1\n",
        host = pg.host,
        port = pg.port,
    )
}

/// The connector's status at the worker's REST API, as JSON text.
pub fn status_json(worker: &NodeState) -> Option<String> {
    let mut s = std::net::TcpStream::connect_timeout(
        &format!("{}:{}", worker.host, worker.port).parse().ok()?,
        Duration::from_secs(1),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let req = format!(
        "GET /connectors/{CONNECTOR}/status HTTP/1.0\r\nHost: {}\r\n\r\n",
        worker.host
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200")
        .then(|| body.to_string())
        .or_else(|| head.starts_with("HTTP/1.0 200").then(|| body.to_string()))
}

/// The connector and its one task both report RUNNING.
pub fn is_running(status: &str) -> bool {
    let compact: String = status.chars().filter(|c| !c.is_whitespace()).collect();
    compact.matches("\"state\":\"RUNNING\"").count() >= 2 && compact.contains("\"tasks\":[{")
}

fn wait_running(node: &NodeState) -> Result<(), LabError> {
    firedrill_lab::wait_started(
        node,
        &format!("connector {CONNECTOR} and its task not RUNNING"),
        READY_TIMEOUT,
        Duration::from_millis(250),
        || status_json(node).is_some_and(|s| is_running(&s)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_needs_the_connector_and_its_task() {
        let both = r#"{"name":"firedrill-outbox","connector":{"state":"RUNNING","worker_id":"x"},"tasks":[{"id":0,"state":"RUNNING","worker_id":"x"}],"type":"source"}"#;
        assert!(is_running(both));
        let no_task = r#"{"name":"firedrill-outbox","connector":{"state":"RUNNING","worker_id":"x"},"tasks":[],"type":"source"}"#;
        assert!(!is_running(no_task));
        let failed = r#"{"connector":{"state":"RUNNING"},"tasks":[{"id":0,"state":"FAILED","trace":"..."}]}"#;
        assert!(!is_running(failed));
    }

    #[test]
    fn linking_twice_keeps_the_source() {
        let d = std::env::temp_dir().join(format!("firedrill-link-{}", std::process::id()));
        let (src, dst) = (d.join("src"), d.join("dst"));
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("a.jar"), b"jar bytes").unwrap();
        copy_tree(&src, &dst).unwrap();
        copy_tree(&src, &dst).unwrap();
        assert_eq!(std::fs::read(src.join("a.jar")).unwrap(), b"jar bytes");
        assert_eq!(std::fs::read(dst.join("a.jar")).unwrap(), b"jar bytes");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn topics_follow_the_router() {
        assert_eq!(outbox_topic("order"), "outbox.order");
    }
}
