//! Kafka labs: 3 or 5 KRaft nodes on loopback (combined broker+controller,
//! or brokers with 3 separate controllers), run from the Maven Central jars
//! with the machine's Java, as the unprivileged lab user.
//!
//! Every broker has four listeners:
//! - `CLIENT`, the workload's, advertised through the node's clients proxy
//!   in a proxied lab;
//! - `FIREDRILL`, firedrill's own control path (admin, audit, status),
//!   always direct, so a network fault never blinds the observer;
//! - `INTERNAL`, replication between brokers, advertised through the
//!   node's peers proxy (`<node>-peers`);
//! - `CONTROLLER`, the KRaft quorum, whose voter address is the node's
//!   second peers proxy (`<node>-controller`).
//!
//! So `partition` with `link = "peers"` stops every connection *to* the node
//! from the other brokers and controllers (followers can no longer fetch
//! from it; it is cut out of the quorum), while its clients still reach it:
//! the zombie leader. Connections the node opens itself go through the
//! other nodes' proxies and keep working, so it can still heartbeat the
//! controller and shrink its ISR, as a leader cut off from its followers
//! on a one-way partition would.

use super::config::{KafkaLab, KafkaLabSpec};
use firedrill_lab::links::{self, LinkKind, LinkState};
use firedrill_lab::netns;
use firedrill_lab::{make_layout, pick_ports, LabError, LabState, NodeState, Role};
use firedrill_proc::RunAs;
use firedrill_spec::{LabSpec, Links};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

/// The version the pom fetches and install-deps.sh caches.
pub const KAFKA_VERSION: &str = "4.3.1";
pub(crate) const HOST: &str = "127.0.0.1";
/// Small heap, serial GC, C1 only: half the CPU of Kafka's defaults to
/// start, and five brokers fit in 1.5 GB.
pub(crate) const JVM_FLAGS: &[&str] = &[
    "-Xmx256m",
    "-Xms64m",
    "-XX:MaxMetaspaceSize=128m",
    "-Xss512k",
    "-XX:TieredStopAtLevel=1",
    "-XX:+UseSerialGC",
    "-Xshare:auto",
    "-XX:-UsePerfData",
    "-Djava.awt.headless=true",
];

/// The command that installs the jars, for every "not found" message.
pub const INSTALL_HINT: &str = "scripts/install-deps.sh (or set FIREDRILL_KAFKA_LIBS to a directory holding the Kafka jars)";

/// The jar directory: `libs_dir`, `FIREDRILL_KAFKA_LIBS`, the cache.
pub fn find_libs(o: &KafkaLab) -> Result<PathBuf, LabError> {
    let dir = o
        .libs_dir
        .clone()
        .or_else(|| std::env::var_os("FIREDRILL_KAFKA_LIBS").map(PathBuf::from))
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            PathBuf::from(home).join(format!(".cache/firedrill/kafka-{KAFKA_VERSION}/libs"))
        });
    let has = |prefix: &str| {
        std::fs::read_dir(&dir)
            .map(|rd| {
                rd.flatten().any(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.starts_with(prefix) && n.ends_with(".jar")
                })
            })
            .unwrap_or(false)
    };
    if has("kafka_2.13-") && has("kafka-tools-") && has("log4j-slf4j-impl-") {
        Ok(dir)
    } else {
        Err(LabError::Program(format!(
            "the Kafka jars (kafka_2.13, kafka-tools, log4j-slf4j-impl) are not in {}; install them with {INSTALL_HINT}",
            dir.display()
        )))
    }
}

/// `java`: the lab's `java`, `JAVA`, `JAVA_HOME/bin/java`, PATH, /usr/bin.
pub fn find_java(o: &KafkaLab) -> Result<PathBuf, LabError> {
    let candidates = o
        .java
        .clone()
        .into_iter()
        .chain(std::env::var_os("JAVA").map(PathBuf::from))
        .chain(std::env::var_os("JAVA_HOME").map(|h| PathBuf::from(h).join("bin/java")))
        .chain(
            std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter()
                .map(|d| d.join("java")),
        )
        .chain([PathBuf::from("/usr/bin/java")]);
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        LabError::Program(format!(
            "java not found (JAVA, JAVA_HOME, PATH); install OpenJDK 17 with {INSTALL_HINT}"
        ))
    })
}

/// The listener ports of one node, as its config uses them.
#[derive(Debug, Clone, Copy)]
struct Ports {
    client: u16,
    control: u16,
    internal: u16,
    controller: u16,
}

/// Four ports per node: control (= `NodeState::port`), internal
/// (`peer_port`), controller (`api_port`), client.
fn node_ports(ports: &[u16], n: usize, i: usize) -> Ports {
    Ports {
        control: ports[i],
        internal: ports[n + i],
        controller: ports[2 * n + i],
        client: ports[3 * n + i],
    }
}

pub(crate) fn is_controller_only(name: &str) -> bool {
    name.starts_with('c')
}

/// The node's ports, read back from state; the client ports are not in
/// `NodeState`, so the build saves them in `<lab>/client-ports`.
fn ports_of(state: &LabState, i: usize) -> Ports {
    let n = &state.nodes[i];
    Ports {
        control: n.port,
        internal: n.peer_port.unwrap_or(0),
        controller: n.api_port.unwrap_or(0),
        client: read_client_ports(&state.dir).get(i).copied().unwrap_or(0),
    }
}

fn read_client_ports(dir: &Path) -> Vec<u16> {
    std::fs::read_to_string(dir.join("client-ports"))
        .map(|t| t.split_whitespace().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

/// Builds the lab; when a port picked free was taken by someone else
/// before the slow JVM bound it (the gap is seconds on 2 cores), tries
/// again on fresh ports, twice at most.
pub(crate) fn build(
    spec: &LabSpec,
    dir: PathBuf,
    preferred_ports: &[u16],
    progress: &mut dyn FnMut(&str),
) -> Result<LabState, LabError> {
    let mut preferred = preferred_ports;
    let mut attempt = 0;
    loop {
        match build_once(spec, dir.clone(), preferred, progress) {
            Err(LabError::Exited { log_tail, .. })
                if attempt < 2 && log_tail.contains("Address already in use") =>
            {
                attempt += 1;
                progress("a picked port was taken before its JVM bound it: retrying on fresh ports");
                preferred = &[];
            }
            other => return other,
        }
    }
}

fn build_once(
    spec: &LabSpec,
    dir: PathBuf,
    preferred_ports: &[u16],
    progress: &mut dyn FnMut(&str),
) -> Result<LabState, LabError> {
    let o = KafkaLab::of(spec);
    let libs = find_libs(&o)?;
    let java = find_java(&o)?;
    if let Some(c) = &o.cdc {
        // Before anything starts: the source is up, the plugin installed.
        super::connect::source_primary(&dir, c)?;
        super::connect::find_plugins()?;
    }
    let run_as = RunAs::resolve(spec.user.as_deref())?;
    let names = o.node_names();
    let n = names.len();
    // A reset's preferred ports are 3 per node (port, peer_port,
    // api_port): with the client ports that is never all four, so a reset
    // picks fresh ports, and the target is reopened on them.
    let ports = pick_ports(n * 4, spec.base_port, preferred_ports)?;
    std::fs::create_dir_all(&dir).map_err(LabError::io(&dir))?;
    // links = "netns": each JVM in its own namespace, on its own address;
    // a partition sets its veth down, cutting it from peers and clients.
    let (netns_state, mut nets) = match spec.links {
        Links::Netns => {
            let (st, v) = netns::plan(&dir, n);
            (Some(st), v.into_iter().map(Some).collect())
        }
        _ => (None, vec![None; n]),
    };
    let nodes = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let p = node_ports(&ports, n, i);
            let net = nets[i].take();
            let host = net.as_ref().map_or_else(|| HOST.to_string(), |x| x.ip.clone());
            NodeState {
                name: name.clone(),
                initial_role: if i == 0 { Role::Primary } else { Role::Standby },
                conninfo: format!("{host}:{}", p.control),
                host,
                port: p.control,
                peer_port: Some(p.internal),
                api_port: Some(p.controller),
                data_dir: dir.join("data").join(name),
                log_file: dir.join("logs").join(format!("{name}.log")),
                proc: None,
                net,
                zone: o.zone_of(i),
            }
        })
        .collect();
    let mut state = LabState {
        name: spec.name.get_ref().clone(),
        dir: dir.clone(),
        spec: spec.clone(),
        bin_dir: java.parent().map(Path::to_path_buf).unwrap_or_default(),
        run_as,
        created_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        nodes,
        proxy: None,
        links: Vec::new(),
        netns: netns_state,
        dcs: Vec::new(),
        sentinels: Vec::new(),
    };
    let client_ports: Vec<String> = (0..n)
        .map(|i| node_ports(&ports, n, i).client.to_string())
        .collect();
    let res = (|| {
        make_layout(&mut state, &["data", "logs", "conf"])?;
        let cp = dir.join("client-ports");
        std::fs::write(&cp, client_ports.join(" ")).map_err(LabError::io(&cp))?;
        populate(&mut state, &o, &java, &libs, progress)
    })();
    match res {
        Ok(()) => Ok(state),
        Err(err) => {
            let _ = firedrill_lab::teardown(&super::KafkaStore, &state);
            Err(err)
        }
    }
}

fn populate(
    state: &mut LabState,
    o: &KafkaLab,
    java: &Path,
    libs: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(), LabError> {
    let cp = lab_classpath(state, libs)?;
    if state.spec.links == Links::Proxied {
        progress("starting the fault proxy");
        start_proxies(state)?;
    }
    if state.netns.is_some() {
        progress("creating the bridge and a network namespace per node");
        netns::create(state)?;
    }
    write_configs(state, o)?;
    progress("formatting the KRaft storage of every node");
    format_storage(state, java, &cp)?;
    progress(&format!(
        "starting {} Kafka JVMs in parallel",
        state.nodes.len()
    ));
    start_all(state, java, &cp)?;
    super::start::wait_started(state, progress)?;
    super::connect::start(state, o, java, &cp, progress)?;
    progress("lab is up");
    Ok(())
}

/// The jars as the lab user can read them. The cache usually sits under
/// root's home, which the lab user cannot traverse, so the jars are hard
/// linked (same filesystem) or copied into the lab once per build.
pub(crate) fn lab_classpath(state: &LabState, libs: &Path) -> Result<String, LabError> {
    let Some(ru) = &state.run_as else {
        return Ok(format!("{}/*", libs.display()));
    };
    if firedrill_lab::check_traversal(libs, ru, &state.name).is_ok() {
        return Ok(format!("{}/*", libs.display()));
    }
    let dst = state.dir.join("libs");
    std::fs::create_dir_all(&dst).map_err(LabError::io(&dst))?;
    for e in std::fs::read_dir(libs).map_err(LabError::io(libs))? {
        let e = e.map_err(LabError::io(libs))?;
        let name = e.file_name();
        if !name.to_string_lossy().ends_with(".jar") {
            continue;
        }
        link_or_copy(&e.path(), &dst.join(&name))?;
    }
    Ok(format!("{}/*", dst.display()))
}

/// Hard links `src` at `to` (a copy across filesystems), unless `to`
/// exists: then it is this lab's link or copy already. Copying onto an
/// existing hard link would truncate the shared inode, emptying the cache
/// it links to (a second classpath call, from a restart, did).
pub(crate) fn link_or_copy(src: &Path, to: &Path) -> Result<(), LabError> {
    if std::fs::symlink_metadata(to).is_ok() {
        return Ok(());
    }
    if std::fs::hard_link(src, to).is_err() {
        std::fs::copy(src, to).map_err(LabError::io(to))?;
    }
    Ok(())
}

/// Clients and peers proxies per broker (the peers one fronts INTERNAL),
/// plus a `<node>-controller` proxy in front of each controller listener,
/// also of kind peers so `link = "peers"` cuts it too.
fn start_proxies(state: &mut LabState) -> Result<(), LabError> {
    let mut wanted = Vec::new();
    for (i, n) in state.nodes.iter().enumerate() {
        if !is_controller_only(&n.name) {
            let p = ports_of(state, i);
            wanted.push((LinkKind::Clients, n.name.clone(), None, p.client));
            wanted.push((LinkKind::Peers, n.name.clone(), None, p.internal));
        }
    }
    links::start_links(state, wanted)?;
    let Some(api) = state.proxy.as_ref().map(|p| p.api) else {
        return Err(LabError::Proxy("the proxy did not record its API".into()));
    };
    let client = firedrill_faults::proxy::ProxyApi::new(api);
    let voters: Vec<(String, u16)> = state
        .nodes
        .iter()
        .filter(|n| is_voter(state, &n.name))
        .map(|n| (n.name.clone(), n.api_port.unwrap_or(0)))
        .collect();
    let listen = pick_ports(voters.len(), None, &[])?;
    for ((node, upstream), port) in voters.into_iter().zip(listen) {
        let l = LinkState {
            name: format!("{node}-controller"),
            kind: LinkKind::Peers,
            node,
            peer: None,
            listen_port: port,
            upstream_port: upstream,
        };
        client
            .create_proxy(
                &l.name,
                &format!("{HOST}:{}", l.listen_port),
                &format!("{HOST}:{}", l.upstream_port),
            )
            .map_err(|e| LabError::Proxy(e.to_string()))?;
        state.links.push(l);
    }
    state.save()
}

/// The KRaft voters' controller listeners, (name, host:port), for the
/// target's quorum check.
pub(crate) fn voter_addrs(state: &LabState) -> Vec<(String, String)> {
    state
        .nodes
        .iter()
        .filter(|n| is_voter(state, &n.name))
        .filter_map(|n| Some((n.name.clone(), format!("{}:{}", n.host, n.api_port?))))
        .collect()
}

/// Controllers are the separate c* nodes, else every broker.
fn is_voter(state: &LabState, name: &str) -> bool {
    let separate = state.nodes.iter().any(|n| is_controller_only(&n.name));
    !separate || is_controller_only(name)
}

fn link_port(state: &LabState, name: &str, want: &str) -> Option<u16> {
    state
        .links
        .iter()
        .find(|l| l.name == format!("{name}-{want}"))
        .map(|l| l.listen_port)
}

/// One server.properties per node, written fresh at every up and reset.
fn write_configs(state: &LabState, o: &KafkaLab) -> Result<(), LabError> {
    let k = o.settings();
    let voters: Vec<String> = state
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| is_voter(state, &n.name))
        .map(|(i, n)| {
            let port = link_port(state, &n.name, "controller").unwrap_or(ports_of(state, i).controller);
            format!("{}@{}:{port}", i + 1, n.host)
        })
        .collect();
    let log4j = state.dir.join("conf").join("log4j2.properties");
    write_file(state, &log4j, LOG4J)?;
    for i in 0..state.nodes.len() {
        let text = node_config(state, o, &k, i, &voters.join(","));
        let path = conf_path(state, i);
        write_file(state, &path, &text)?;
    }
    Ok(())
}

fn conf_path(state: &LabState, i: usize) -> PathBuf {
    state
        .dir
        .join("conf")
        .join(format!("{}.properties", state.nodes[i].name))
}

/// Log to stdout (the node's log file); the ready line comes from here.
pub(crate) const LOG4J: &str = "status = error\n\
appender.out.type = Console\n\
appender.out.name = OUT\n\
appender.out.layout.type = PatternLayout\n\
appender.out.layout.pattern = [%d] %p %m (%c)%n\n\
rootLogger.level = INFO\n\
rootLogger.appenderRef.out.ref = OUT\n\
logger.kafka.name = org.apache.kafka\n\
logger.kafka.level = INFO\n\
logger.state.name = state.change.logger\n\
logger.state.level = WARN\n";

fn node_config(state: &LabState, o: &KafkaLab, k: &KafkaLabSpec, i: usize, voters: &str) -> String {
    let n = &state.nodes[i];
    let p = ports_of(state, i);
    let controller_only = is_controller_only(&n.name);
    let voter = is_voter(state, &n.name);
    let roles = match (controller_only, voter) {
        (true, _) => "controller",
        (false, true) => "broker,controller",
        (false, false) => "broker",
    };
    let mut listeners = Vec::new();
    let mut advertised = Vec::new();
    // The node's own address: loopback, or its namespace's in a netns lab.
    let h = &n.host;
    if !controller_only {
        let client_adv = state.client_port(&n.name).unwrap_or(p.client);
        let internal_adv = state.peers_port(&n.name).unwrap_or(p.internal);
        listeners.push(format!("CLIENT://{h}:{}", p.client));
        listeners.push(format!("FIREDRILL://{h}:{}", p.control));
        listeners.push(format!("INTERNAL://{h}:{}", p.internal));
        advertised.push(format!("CLIENT://{h}:{client_adv}"));
        advertised.push(format!("FIREDRILL://{h}:{}", p.control));
        advertised.push(format!("INTERNAL://{h}:{internal_adv}"));
    }
    if voter {
        let adv = link_port(state, &n.name, "controller").unwrap_or(p.controller);
        listeners.push(format!("CONTROLLER://{h}:{}", p.controller));
        advertised.push(format!("CONTROLLER://{h}:{adv}"));
    }
    let rf = k.replication_factor();
    let mut c = format!(
        "# firedrill lab: written fresh at every up and reset\n\
         process.roles={roles}\n\
         node.id={id}\n\
         controller.quorum.voters={voters}\n\
         listeners={listeners}\n\
         advertised.listeners={advertised}\n\
         controller.listener.names=CONTROLLER\n\
         listener.security.protocol.map=CLIENT:PLAINTEXT,FIREDRILL:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
         log.dirs={data}\n\
         num.partitions={parts}\n\
         default.replication.factor={rf}\n\
         min.insync.replicas={misr}\n\
         unclean.leader.election.enable={unclean}\n\
         replica.lag.time.max.ms={lag}\n\
         broker.session.timeout.ms={session}\n\
         broker.heartbeat.interval.ms={hb}\n\
         offsets.topic.replication.factor={rf}\n\
         transaction.state.log.replication.factor={rf}\n\
         transaction.state.log.min.isr=1\n\
         share.coordinator.state.topic.replication.factor={rf}\n\
         share.coordinator.state.topic.min.isr=1\n\
         group.initial.rebalance.delay.ms=0\n\
         auto.create.topics.enable=false\n\
         num.network.threads=2\n\
         num.io.threads=2\n\
         background.threads=2\n\
         num.recovery.threads.per.data.dir=1\n\
         log.cleaner.threads=1\n\
         log.cleaner.dedupe.buffer.size=8388608\n",
        id = i + 1,
        listeners = listeners.join(","),
        advertised = advertised.join(","),
        data = n.data_dir.display(),
        parts = k.partitions(),
        misr = k.min_insync(),
        unclean = k.unclean_leader_election,
        lag = k.replica_lag_time_max().as_millis(),
        session = k.session_timeout().as_millis(),
        hb = k.heartbeat_interval().as_millis(),
    );
    if !controller_only {
        c += "inter.broker.listener.name=INTERNAL\n";
        if let Some(z) = o.zone_of(i) {
            c += &format!("broker.rack={z}\n");
        }
    }
    c
}

pub(crate) fn write_file(state: &LabState, path: &Path, text: &str) -> Result<(), LabError> {
    std::fs::write(path, text).map_err(LabError::io(path))?;
    if let Some(ru) = &state.run_as {
        ru.chown_tree(path)?;
    }
    Ok(())
}

pub(crate) fn java_command(state: &LabState, java: &Path, cp: &str, log_dir: &Path) -> Command {
    let mut cmd = Command::new(java);
    cmd.args(JVM_FLAGS)
        .arg(format!("-Dkafka.logs.dir={}", log_dir.display()))
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            state.dir.join("conf/log4j2.properties").display()
        ))
        .arg("-cp")
        .arg(cp);
    firedrill_proc::as_user(&mut cmd, state.run_as.as_ref());
    cmd
}

/// One cluster id (`StorageTool random-uuid`), then `StorageTool format`
/// for every node at once: each is a JVM start, so in parallel they take
/// the time of one.
fn format_storage(state: &LabState, java: &Path, cp: &str) -> Result<(), LabError> {
    let logs = state.dir.join("logs");
    let out = java_command(state, java, cp, &logs)
        .args(["kafka.tools.StorageTool", "random-uuid"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LabError::Program(format!("{}: {e}", java.display())))?;
    let cid = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 22)
        .map(str::to_string)
        .ok_or_else(|| LabError::Command {
            program: "kafka.tools.StorageTool random-uuid".into(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })?;
    let mut children = Vec::new();
    for i in 0..state.nodes.len() {
        let conf = conf_path(state, i);
        let child = java_command(state, java, cp, &logs)
            .args(["kafka.tools.StorageTool", "format", "-t", &cid, "-c"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| LabError::Program(format!("{}: {e}", java.display())))?;
        children.push((state.nodes[i].name.clone(), child));
    }
    let mut failed = None;
    for (name, child) in children {
        match child.wait_with_output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                failed.get_or_insert(LabError::Command {
                    program: format!("StorageTool format ({name})"),
                    status: o.status.to_string(),
                    stderr: String::from_utf8_lossy(&o.stderr).into_owned()
                        + &String::from_utf8_lossy(&o.stdout),
                });
            }
            Err(e) => {
                failed.get_or_insert(LabError::Program(format!("StorageTool format: {e}")));
            }
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Starts every node's JVM at once and records each pid in state.json as
/// soon as it exists, so `lab down` finds it even if we die here.
fn start_all(state: &mut LabState, java: &Path, cp: &str) -> Result<(), LabError> {
    for i in 0..state.nodes.len() {
        let n = &state.nodes[i];
        let mut args: Vec<String> = JVM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("-Dkafka.logs.dir={}", n.data_dir.display()));
        args.push(format!(
            "-Dlog4j2.configurationFile={}",
            state.dir.join("conf/log4j2.properties").display()
        ));
        args.push("-cp".into());
        args.push(cp.into());
        args.push("kafka.Kafka".into());
        args.push(conf_path(state, i).display().to_string());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let h = match &n.net {
            Some(net) => firedrill_proc::spawn_server_in_netns(
                java,
                &refs,
                state.run_as.as_ref(),
                &n.log_file,
                &netns::netns_path(&net.netns),
            )?,
            None => firedrill_proc::spawn_server(java, &refs, state.run_as.as_ref(), &n.log_file)?,
        };
        state.nodes[i].proc = Some(h);
        state.save()?;
    }
    Ok(())
}

/// Stops the lab's JVMs with SIGKILL at once. The lab's data is removed
/// right after, so a controlled shutdown buys nothing, and a broker whose
/// quorum is gone (after a drill killed the others) hangs in it until a
/// timeout: a reset between trials would pay that every time.
pub(crate) fn stop(state: &LabState) -> Result<(), LabError> {
    use nix::sys::signal::Signal;
    // The CDC worker first: it would only log the brokers going away.
    let live: Vec<_> = state
        .sentinels
        .iter()
        .chain(&state.nodes)
        .filter_map(|n| n.proc.map(|p| (n.name.clone(), p)))
        .filter(|(_, p)| p.is_alive())
        .collect();
    for (_, p) in &live {
        let _ = p.signal_tree(Signal::SIGCONT);
        let _ = p.signal_tree(Signal::SIGKILL);
    }
    for (name, p) in &live {
        if !p.wait_exit(Duration::from_secs(10)) {
            return Err(LabError::Replication(format!(
                "node {name} (pid {}) survived SIGKILL",
                p.pid
            )));
        }
    }
    Ok(())
}
