//! A mirror lab: region A (broker `a1`) and region B (broker `b1`), each a
//! one-node KRaft cluster of its own (combined broker and controller,
//! part 1's JVM flags, jars and logging), and MirrorMaker 2 in dedicated
//! mode (`org.apache.kafka.connect.mirror.MirrorMaker --clusters A B`),
//! deployed in region B. It pulls A → B; it also runs the herder that
//! writes to A, for the flow B → A (active-active) or only that flow's
//! heartbeats (active-passive: MM2's own lag, mirrored back to B).
//!
//! Each broker has three listeners:
//! - `FIREDRILL`, firedrill's own path and the workload's, always direct;
//! - `MIRROR`, which A advertises at its region link's proxy port
//!   (`b1-replication`, in front of A's `MIRROR` listener): MM2 reaches A
//!   only through it, so `partition`/`latency` with `node = "b1"` and
//!   `link = "replication"` cut or slow the mirroring and nothing else;
//! - `CONTROLLER`, the node's own quorum.
//!
//! MM2 is recorded in `state.sentinels` (the lab's auxiliary processes),
//! started, checked and stopped like the brokers.

use super::config::MirrorLab;
use crate::kafka::lab::{self as klab, HOST};
use firedrill_lab::links::{self, LinkKind};
use firedrill_lab::{make_layout, pick_ports, LabError, LabState, NodeState, Role};
use firedrill_proc::RunAs;
use firedrill_spec::LabSpec;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

/// The regions, in order: the source first.
pub const REGIONS: [&str; 2] = ["A", "B"];
/// MM2's own node name in state (not a drill node).
pub const MM2: &str = "mm2";
const MM2_CLASS: &str = "org.apache.kafka.connect.mirror.MirrorMaker";
const MM2_READY: &str = "Kafka MirrorMaker started";
const MM2_TIMEOUT: Duration = Duration::from_secs(90);

/// The broker of region `r`: `a1`, `b1`.
pub fn broker_of(region: &str) -> String {
    format!("{}1", region.to_ascii_lowercase())
}

/// The region of broker `node`.
pub fn region_of(node: &str) -> Option<&'static str> {
    REGIONS
        .iter()
        .copied()
        .find(|r| broker_of(r) == node)
}

/// The jars, with MM2's `connect-mirror` among them.
pub fn find_libs(o: &MirrorLab) -> Result<PathBuf, LabError> {
    let dir = klab::find_libs(&o.as_kafka())?;
    let has = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten().any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with("connect-mirror-") && !n.contains("client") && n.ends_with(".jar")
            })
        })
        .unwrap_or(false);
    if has {
        Ok(dir)
    } else {
        Err(LabError::Program(format!(
            "MirrorMaker 2's jar (org.apache.kafka:connect-mirror {}) is not in {}; install it with {}",
            klab::KAFKA_VERSION,
            dir.display(),
            klab::INSTALL_HINT
        )))
    }
}

/// Three ports per broker, in the order `LabState::ports` gives them back
/// to a reset: control (`port`), mirror (`peer_port`), controller
/// (`api_port`).
pub(crate) fn build(
    spec: &LabSpec,
    dir: PathBuf,
    preferred_ports: &[u16],
    progress: &mut dyn FnMut(&str),
) -> Result<LabState, LabError> {
    let o = MirrorLab::of(spec);
    let libs = find_libs(&o)?;
    let java = klab::find_java(&o.as_kafka())?;
    let run_as = RunAs::resolve(spec.user.as_deref())?;
    // A reset's preferred ports end with MM2's (0, it listens on none).
    let preferred = preferred_ports.get(..6).unwrap_or(&[]);
    let ports = pick_ports(6, spec.base_port, preferred)?;
    std::fs::create_dir_all(&dir).map_err(LabError::io(&dir))?;
    let nodes = REGIONS
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let name = broker_of(r);
            NodeState {
                initial_role: if i == 0 { Role::Primary } else { Role::Standby },
                conninfo: format!("{HOST}:{}", ports[i]),
                host: HOST.into(),
                port: ports[i],
                peer_port: Some(ports[2 + i]),
                api_port: Some(ports[4 + i]),
                data_dir: dir.join("data").join(&name),
                log_file: dir.join("logs").join(format!("{name}.log")),
                proc: None,
                net: None,
                zone: Some(r.to_string()),
                name,
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
        netns: None,
        dcs: Vec::new(),
        sentinels: vec![NodeState {
            name: MM2.into(),
            initial_role: Role::Standby,
            host: HOST.into(),
            port: 0,
            data_dir: dir.join("data").join(MM2),
            log_file: dir.join("logs").join("mm2.log"),
            proc: None,
            conninfo: String::new(),
            peer_port: None,
            api_port: None,
            net: None,
            zone: Some(REGIONS[1].into()),
        }],
    };
    let res = (|| {
        make_layout(&mut state, &["data", "logs", "conf"])?;
        populate(&mut state, &o, &java, &libs, progress)
    })();
    match res {
        Ok(()) => Ok(state),
        Err(err) => {
            let _ = firedrill_lab::teardown(&super::KafkaMirrorStore, &state);
            Err(err)
        }
    }
}

fn populate(
    state: &mut LabState,
    o: &MirrorLab,
    java: &Path,
    libs: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(), LabError> {
    let cp = klab::lab_classpath(state, libs)?;
    progress("starting the fault proxy (the region link A → MM2)");
    let a = &state.nodes[0];
    let wanted = vec![(
        LinkKind::Replication,
        state.nodes[1].name.clone(),
        Some(a.name.clone()),
        a.peer_port.unwrap_or(0),
    )];
    links::start_links(state, wanted)?;
    write_configs(state, o)?;
    progress("formatting the KRaft storage of both regions");
    format_storage(state, java, &cp)?;
    progress("starting the brokers of regions A and B");
    for i in 0..state.nodes.len() {
        let conf = conf_path(state, &state.nodes[i].name);
        let log = state.nodes[i].log_file.clone();
        let data = state.nodes[i].data_dir.clone();
        let h = spawn_java(state, java, &cp, &data, &log, &["kafka.Kafka", &conf])?;
        state.nodes[i].proc = Some(h);
        state.save()?;
    }
    crate::kafka::start::wait_started(state, progress)?;
    progress("starting MirrorMaker 2 (dedicated mode, --clusters A B)");
    let conf = conf_path(state, MM2);
    let mm = state.sentinels[0].clone();
    std::fs::create_dir_all(&mm.data_dir).map_err(LabError::io(&mm.data_dir))?;
    if let Some(ru) = &state.run_as {
        ru.chown_tree(&mm.data_dir)?;
    }
    let h = spawn_java(
        state,
        java,
        &cp,
        &mm.data_dir,
        &mm.log_file,
        &[MM2_CLASS, &conf, "--clusters", REGIONS[0], REGIONS[1]],
    )?;
    state.sentinels[0].proc = Some(h);
    state.save()?;
    wait_mm2(state)?;
    progress("lab is up");
    Ok(())
}

fn spawn_java(
    state: &LabState,
    java: &Path,
    cp: &str,
    logs_dir: &Path,
    log: &Path,
    main: &[&str],
) -> Result<firedrill_proc::ProcHandle, LabError> {
    let mut args: Vec<String> = klab::JVM_FLAGS.iter().map(|s| s.to_string()).collect();
    args.push(format!("-Dkafka.logs.dir={}", logs_dir.display()));
    args.push(format!(
        "-Dlog4j2.configurationFile={}",
        state.dir.join("conf/log4j2.properties").display()
    ));
    args.push("-cp".into());
    args.push(cp.into());
    args.extend(main.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Ok(firedrill_proc::spawn_server(
        java,
        &refs,
        state.run_as.as_ref(),
        log,
    )?)
}

/// Until MM2 logs that it started (its connectors then start their tasks;
/// the target waits for the mirrored heartbeat before a drill).
fn wait_mm2(state: &LabState) -> Result<(), LabError> {
    let mm = &state.sentinels[0];
    firedrill_lab::wait_started(
        mm,
        &format!("no \"{MM2_READY}\" in the log"),
        MM2_TIMEOUT,
        Duration::from_millis(100),
        || {
            std::fs::read_to_string(&mm.log_file)
                .unwrap_or_default()
                .contains(MM2_READY)
        },
    )
}

fn conf_path(state: &LabState, name: &str) -> String {
    state
        .dir
        .join("conf")
        .join(format!("{name}.properties"))
        .display()
        .to_string()
}

/// The address MM2 uses for A: its region link's proxy.
fn region_link_port(state: &LabState) -> u16 {
    state
        .links
        .iter()
        .find(|l| l.kind == LinkKind::Replication)
        .map(|l| l.listen_port)
        .unwrap_or(0)
}

fn write_configs(state: &LabState, o: &MirrorLab) -> Result<(), LabError> {
    let log4j = state.dir.join("conf").join("log4j2.properties");
    klab::write_file(state, &log4j, klab::LOG4J)?;
    for (i, n) in state.nodes.iter().enumerate() {
        let mirror_adv = if i == 0 {
            region_link_port(state)
        } else {
            n.peer_port.unwrap_or(0)
        };
        let text = broker_config(n, o.partitions(), mirror_adv);
        klab::write_file(state, Path::new(&conf_path(state, &n.name)), &text)?;
    }
    let a_boot = format!("{HOST}:{}", region_link_port(state));
    let b_boot = state.nodes[1].conninfo.clone();
    let text = mm2_config(o, &a_boot, &b_boot);
    klab::write_file(state, Path::new(&conf_path(state, MM2)), &text)
}

/// One combined broker+controller, replication factor 1 everywhere.
fn broker_config(n: &NodeState, partitions: u32, mirror_adv: u16) -> String {
    let h = &n.host;
    let (control, controller, mirror) = (
        n.port,
        n.api_port.unwrap_or(0),
        n.peer_port.unwrap_or(0),
    );
    format!(
        "# firedrill mirror lab: written fresh at every up and reset\n\
         process.roles=broker,controller\n\
         node.id=1\n\
         controller.quorum.voters=1@{h}:{controller}\n\
         listeners=FIREDRILL://{h}:{control},MIRROR://{h}:{mirror},CONTROLLER://{h}:{controller}\n\
         advertised.listeners=FIREDRILL://{h}:{control},MIRROR://{h}:{mirror_adv},CONTROLLER://{h}:{controller}\n\
         controller.listener.names=CONTROLLER\n\
         inter.broker.listener.name=FIREDRILL\n\
         listener.security.protocol.map=FIREDRILL:PLAINTEXT,MIRROR:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
         log.dirs={data}\n\
         num.partitions={partitions}\n\
         default.replication.factor=1\n\
         min.insync.replicas=1\n\
         offsets.topic.replication.factor=1\n\
         transaction.state.log.replication.factor=1\n\
         transaction.state.log.min.isr=1\n\
         share.coordinator.state.topic.replication.factor=1\n\
         share.coordinator.state.topic.min.isr=1\n\
         group.initial.rebalance.delay.ms=0\n\
         auto.create.topics.enable=false\n\
         num.network.threads=2\n\
         num.io.threads=2\n\
         background.threads=2\n\
         num.recovery.threads.per.data.dir=1\n\
         log.cleaner.threads=1\n\
         log.cleaner.dedupe.buffer.size=8388608\n",
        data = n.data_dir.display(),
    )
}

/// MM2's dedicated-mode config: A → B, every firedrill topic, MM2's
/// default replication policy (`A.<topic>` on B), checkpoints and group
/// offset sync on at the lab's intervals (seconds, not MM2's 60 s), and
/// the internal topics at replication factor 1 (one broker per region).
fn mm2_config(o: &MirrorLab, a: &str, b: &str) -> String {
    let s = |d: Duration| d.as_secs().max(1);
    format!(
        "# firedrill mirror lab: MirrorMaker 2, dedicated mode\n\
         clusters=A,B\n\
         A.bootstrap.servers={a}\n\
         B.bootstrap.servers={b}\n\
         A->B.enabled=true\n\
         A->B.topics=firedrill-.*\n\
         A->B.groups=firedrill-.*\n\
         {back}\
         replication.policy.class=org.apache.kafka.connect.mirror.DefaultReplicationPolicy\n\
         replication.factor=1\n\
         checkpoints.topic.replication.factor=1\n\
         heartbeats.topic.replication.factor=1\n\
         offset-syncs.topic.replication.factor=1\n\
         offset.storage.replication.factor=1\n\
         status.storage.replication.factor=1\n\
         config.storage.replication.factor=1\n\
         refresh.topics.interval.seconds={refresh}\n\
         refresh.groups.interval.seconds={refresh}\n\
         emit.checkpoints.enabled=true\n\
         emit.checkpoints.interval.seconds={ckpt}\n\
         sync.group.offsets.enabled=true\n\
         sync.group.offsets.interval.seconds={sync}\n\
         emit.heartbeats.interval.seconds=1\n\
         sync.topic.acls.enabled=false\n\
         offset.lag.max=10\n\
         tasks.max=1\n\
         dedicated.mode.enable.internal.rest=false\n\
         A.consumer.fetch.max.wait.ms=50\n\
         A.consumer.reconnect.backoff.max.ms=200\n\
         B.producer.linger.ms=0\n",
        back = back_flow(o.mirror()),
        refresh = s(o.refresh_interval()),
        ckpt = s(o.checkpoint_interval()),
        sync = s(o.sync_interval()),
    )
}

/// The flow B → A. Active-passive: disabled, but its heartbeat connector
/// runs, so A's `heartbeats` (mirrored to B as `A.heartbeats`) carries
/// MM2's own lag. Active-active: B's topics and groups mirrored to A as
/// `B.<topic>`; the default replication policy's prefixes stop cycles.
fn back_flow(m: super::config::Mirror) -> &'static str {
    match m {
        super::config::Mirror::ActivePassive => {
            "B->A.enabled=false\nB->A.emit.heartbeats.enabled=true\n"
        }
        super::config::Mirror::ActiveActive => {
            "B->A.enabled=true\nB->A.topics=firedrill-.*\nB->A.groups=firedrill-.*\n"
        }
    }
}

/// Two cluster ids, one per region, from one `StorageTool random-uuid`
/// (B's differs in its first character, still a valid base64 UUID), then
/// both formats at once.
fn format_storage(state: &LabState, java: &Path, cp: &str) -> Result<(), LabError> {
    let logs = state.dir.join("logs");
    let out = klab::java_command(state, java, cp, &logs)
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
    let other = if cid.starts_with('B') { "C" } else { "B" };
    let ids = [cid.clone(), format!("{other}{}", &cid[1..])];
    let mut children = Vec::new();
    for (n, id) in state.nodes.iter().zip(ids) {
        let child = klab::java_command(state, java, cp, &logs)
            .args(["kafka.tools.StorageTool", "format", "-t", &id, "-c"])
            .arg(conf_path(state, &n.name))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| LabError::Program(format!("{}: {e}", java.display())))?;
        children.push((n.name.clone(), child));
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

/// SIGKILL to MM2 and both brokers at once, as part 1 does: the data is
/// removed right after, so a controlled shutdown buys nothing.
pub(crate) fn stop(state: &LabState) -> Result<(), LabError> {
    use nix::sys::signal::Signal;
    let live: Vec<_> = state
        .sentinels
        .iter()
        .chain(state.nodes.iter())
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
                "{name} (pid {}) survived SIGKILL",
                p.pid
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_and_brokers() {
        assert_eq!(broker_of("A"), "a1");
        assert_eq!(region_of("b1"), Some("B"));
        assert_eq!(region_of("c1"), None);
    }

    #[test]
    fn mm2_config_carries_the_intervals_in_seconds() {
        let o: MirrorLab = toml::from_str(
            "checkpoint_interval = \"3s\"\nsync_interval = \"2s\"\nrefresh_interval = \"1s\"",
        )
        .unwrap();
        let c = mm2_config(&o, "127.0.0.1:1", "127.0.0.1:2");
        assert!(c.contains("emit.checkpoints.interval.seconds=3\n"));
        assert!(c.contains("sync.group.offsets.interval.seconds=2\n"));
        assert!(c.contains("sync.group.offsets.enabled=true\n"));
        assert!(c.contains("A.bootstrap.servers=127.0.0.1:1\n"));
        assert!(c.contains("B->A.enabled=false\n"));
    }
}
