//! Every fault module through the registry, with a fake engine context:
//! heals are journaled before the fault acts, process faults hold on a
//! real process and heal, and a replication cut heals through whatever
//! target the opener gives for the journaled kind.

use async_trait::async_trait;
use firedrill_faults::{
    fault_for, heal_entry, FaultContext, FaultError, FaultStep, HealAction, HealEntry, HealFilter,
    HealWith, NodeFacts, NodeLink, ProcSource,
};
use firedrill_proc::ProcHandle;
use firedrill_spec::{FaultAction, LinkScope};
use firedrill_targets::{
    Heartbeat, HeartbeatReader, LiveRole, Target, TargetError, TargetNode, TargetOpener,
    WorkloadClient,
};
use std::os::unix::process::CommandExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the fake target was asked to do.
type Calls = Arc<Mutex<Vec<String>>>;

struct FakeTarget {
    calls: Calls,
}

#[async_trait]
impl Target for FakeTarget {
    fn kind(&self) -> &'static str {
        "fake"
    }
    fn run_id(&self) -> &str {
        ""
    }
    fn node_names(&self) -> Vec<String> {
        vec!["n1".into(), "n2".into()]
    }
    async fn roles(&self, _: Duration) -> Vec<(String, LiveRole)> {
        vec![
            ("n1".into(), LiveRole::Primary),
            ("n2".into(), LiveRole::Standby),
        ]
    }
    async fn setup(&self, _: &str) -> Result<(), TargetError> {
        Ok(())
    }
    async fn wait_replicated(&self, _: &str, _: Duration) -> Result<(), TargetError> {
        Ok(())
    }
    fn client(
        &self,
        _: &str,
        _: u64,
        _: usize,
        _: Duration,
    ) -> Result<Box<dyn WorkloadClient>, TargetError> {
        Err(TargetError::Other("no clients".into()))
    }
    fn heartbeat(&self, _: &str) -> Result<Option<Box<dyn Heartbeat>>, TargetError> {
        Ok(None)
    }
    fn heartbeat_reader(&self, _: &str) -> Result<Option<Box<dyn HeartbeatReader>>, TargetError> {
        Ok(None)
    }
    async fn replication_source(&self, node: &str) -> Result<String, TargetError> {
        self.calls.lock().unwrap().push(format!("source {node}"));
        Ok("host=n1 port=5432".into())
    }
    async fn cut_replication(&self, node: &str) -> Result<(), TargetError> {
        self.calls.lock().unwrap().push(format!("cut {node}"));
        Ok(())
    }
    async fn restore_replication(&self, node: &str, saved: &str) -> Result<(), TargetError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("restore {node} {saved}"));
        Ok(())
    }
    async fn audit(&self, _: &str) -> Result<Vec<u64>, TargetError> {
        Ok(Vec::new())
    }
    async fn cleanup(&self, _: &str) -> Result<(), TargetError> {
        Ok(())
    }
    async fn server_version(&self, _: &str) -> Result<String, TargetError> {
        Ok("fake 1".into())
    }
}

#[derive(Debug)]
struct FakeOpener {
    calls: Calls,
}

impl TargetOpener for FakeOpener {
    fn kind(&self) -> &'static str {
        "fake"
    }
    fn open(
        &self,
        nodes: &[TargetNode],
        _: Option<&str>,
        _: &str,
    ) -> Result<Box<dyn Target>, TargetError> {
        let names: Vec<&str> = nodes.iter().map(|n| n.control.as_str()).collect();
        self.calls
            .lock()
            .unwrap()
            .push(format!("open {}", names.join(",")));
        Ok(Box::new(FakeTarget {
            calls: self.calls.clone(),
        }))
    }
}

struct Node {
    name: String,
    conninfo: String,
    proc: ProcSource,
    links: Vec<NodeLink>,
    veth: Option<String>,
    data_dir: Option<std::path::PathBuf>,
}

/// The engine's side, faked: owed heals are kept in a list, and healed
/// through `heal_entry` as the engine does.
struct Ctx {
    nodes: Vec<Node>,
    target: FakeTarget,
    calls: Calls,
    owed: Mutex<Vec<(String, Option<Duration>, HealAction)>>,
    damage: Mutex<Vec<firedrill_ledger::Damage>>,
    backups: Option<FakeBackups>,
}

/// A backup repository of one archived segment, in a temporary directory.
/// Its check finds a hole when the segment is not where it belongs.
struct FakeBackups {
    segment: std::path::PathBuf,
    aside: std::path::PathBuf,
}

#[async_trait]
impl firedrill_targets::Restorer for FakeBackups {
    async fn restore(
        &self,
        _: &str,
        _: &firedrill_targets::RestoreRequest,
    ) -> Result<firedrill_targets::RestoreReport, TargetError> {
        Err(TargetError::Other("not here".into()))
    }
    async fn needed_segment(
        &self,
        _: &str,
    ) -> Result<firedrill_targets::ArchivedSegment, TargetError> {
        Ok(firedrill_targets::ArchivedSegment {
            segment: "000000010000000000000004".into(),
            path: self.segment.clone(),
            aside: self.aside.clone(),
        })
    }
    async fn check(&self) -> Option<firedrill_ledger::BackupCheck> {
        Some(firedrill_ledger::BackupCheck {
            wal_gaps: if self.segment.exists() {
                vec![]
            } else {
                vec!["000000010000000000000004".into()]
            },
            ..Default::default()
        })
    }
}

impl Ctx {
    fn new(nodes: Vec<Node>) -> Ctx {
        let calls = Calls::default();
        Ctx {
            nodes,
            target: FakeTarget {
                calls: calls.clone(),
            },
            calls,
            owed: Mutex::new(Vec::new()),
            damage: Mutex::new(Vec::new()),
            backups: None,
        }
    }
    fn owed(&self) -> Vec<(String, Option<Duration>, HealAction)> {
        self.owed.lock().unwrap().clone()
    }
    async fn heal(&self, action: &HealAction) -> Result<(), FaultError> {
        let calls = self.calls.clone();
        let opener = move |kind: &str| -> Option<Arc<dyn TargetOpener>> {
            (kind == "fake").then(|| {
                Arc::new(FakeOpener {
                    calls: calls.clone(),
                }) as Arc<dyn TargetOpener>
            })
        };
        let entry = HealEntry {
            id: "x".into(),
            expires_at: 0,
            action: action.clone(),
        };
        heal_entry(
            &entry,
            &HealWith {
                opener: &opener,
                password: None,
                on_command: None,
            },
        )
        .await
    }
}

#[async_trait]
impl FaultContext for Ctx {
    fn nodes(&self) -> Vec<NodeFacts<'_>> {
        self.nodes
            .iter()
            .map(|n| NodeFacts {
                name: &n.name,
                conninfo: &n.conninfo,
                proc: &n.proc,
                links: &n.links,
                veth: n.veth.as_deref(),
                lab_data_dir: n.data_dir.as_deref(),
            })
            .collect()
    }
    fn target(&self) -> &dyn Target {
        &self.target
    }
    fn record_damage(&self, damage: firedrill_ledger::Damage) {
        self.damage.lock().unwrap().push(damage);
    }
    fn store_kind(&self) -> &str {
        "fake"
    }
    fn lab_backups(&self) -> Option<&dyn firedrill_targets::Restorer> {
        self.backups
            .as_ref()
            .map(|b| b as &dyn firedrill_targets::Restorer)
    }
    fn owe(&self, id: &str, ttl: Option<Duration>, action: HealAction) -> Result<(), FaultError> {
        self.owed.lock().unwrap().push((id.into(), ttl, action));
        Ok(())
    }
    async fn heal_owed(&self, which: &HealFilter<'_>) {
        let picked: Vec<_> = {
            let mut o = self.owed.lock().unwrap();
            let (picked, kept) = o.drain(..).partition(|(_, _, a)| which(a));
            *o = kept;
            picked
        };
        for (_, _, a) in picked {
            self.heal(&a).await.expect("heal");
        }
    }
}

fn node(name: &str, proc: ProcSource) -> Node {
    Node {
        name: name.into(),
        conninfo: format!("host={name}"),
        proc,
        links: Vec::new(),
        veth: None,
        data_dir: None,
    }
}

fn step<'a>(action: FaultAction, node: &'a str, attrs: &'a serde_json::Value) -> FaultStep<'a> {
    FaultStep {
        action,
        node,
        link: LinkScope::All,
        attrs,
        process: None,
        for_: None,
        trial: 1,
        index: 0,
    }
}

/// A process in its own group, like a lab node.
fn child() -> (std::process::Child, ProcHandle) {
    let c = std::process::Command::new("sleep")
        .arg("30")
        .process_group(0)
        .spawn()
        .expect("spawn sleep");
    let h = ProcHandle::of_child(c.id() as i32, true).expect("handle");
    (c, h)
}

#[tokio::test]
async fn pause_owes_a_continue_before_it_acts_and_resume_heals_it() {
    let (mut c, h) = child();
    let ctx = Ctx::new(vec![node("n1", ProcSource::Handle(h))]);
    let attrs = serde_json::Value::Null;
    let mut s = step(FaultAction::Pause, "n1", &attrs);
    s.for_ = Some(Duration::from_secs(3));
    let pause = fault_for(FaultAction::Pause);
    pause.validate(&s, &ctx).unwrap();
    pause.inject(&s, &ctx).await.unwrap();
    assert!(pause.in_effect(&s, &ctx).await.unwrap());
    let owed = ctx.owed();
    assert_eq!(owed.len(), 1);
    assert_eq!(owed[0].0, "t1-s0");
    // A timed step heals itself a little after its end.
    assert_eq!(owed[0].1, Some(Duration::from_secs(8)));
    assert!(
        matches!(&owed[0].2, HealAction::Continue { node, proc } if node == "n1" && *proc == h)
    );

    let r = step(FaultAction::Resume, "n1", &attrs);
    let resume = fault_for(FaultAction::Resume);
    resume.inject(&r, &ctx).await.unwrap();
    assert!(ctx.owed().is_empty(), "the resume healed the pause");
    assert!(resume.in_effect(&r, &ctx).await.unwrap());
    assert!(!pause.in_effect(&s, &ctx).await.unwrap());

    let k = step(FaultAction::Kill, "n1", &attrs);
    let kill = fault_for(FaultAction::Kill);
    assert!(!kill.in_effect(&k, &ctx).await.unwrap());
    kill.inject(&k, &ctx).await.unwrap();
    let _ = c.wait();
    assert!(kill.in_effect(&k, &ctx).await.unwrap());
    assert!(ctx.owed().is_empty(), "a kill owes no heal");
}

#[tokio::test]
async fn a_journaled_continue_heals_a_paused_process() {
    let (mut c, h) = child();
    let ctx = Ctx::new(vec![node("n1", ProcSource::Handle(h))]);
    let attrs = serde_json::Value::Null;
    let s = step(FaultAction::Pause, "n1", &attrs);
    fault_for(FaultAction::Pause)
        .inject(&s, &ctx)
        .await
        .unwrap();
    assert!(h.is_stopped());
    // What the watchdog does with the entry it reads back.
    ctx.heal(&ctx.owed()[0].2).await.unwrap();
    assert!(!h.is_stopped());
    // Idempotent: healing again is fine.
    ctx.heal(&ctx.owed()[0].2).await.unwrap();
    let _ = c.kill();
    let _ = c.wait();
}

#[tokio::test]
async fn process_faults_need_a_pid() {
    let ctx = Ctx::new(vec![node("n1", ProcSource::None)]);
    let attrs = serde_json::Value::Null;
    for a in [
        FaultAction::Kill,
        FaultAction::Stop,
        FaultAction::Pause,
        FaultAction::Resume,
    ] {
        let s = step(a, "n1", &attrs);
        let e = fault_for(a).validate(&s, &ctx).unwrap_err();
        assert_eq!(e.to_string(), "no pid known for n1");
        let s = step(a, "n9", &attrs);
        assert!(fault_for(a).validate(&s, &ctx).is_err());
    }
}

#[tokio::test]
async fn network_faults_need_a_proxied_link() {
    let ctx = Ctx::new(vec![node("n1", ProcSource::None)]);
    let attrs = serde_json::Value::Null;
    for a in [
        FaultAction::Partition,
        FaultAction::Latency,
        FaultAction::Bandwidth,
        FaultAction::Reset,
    ] {
        let s = step(a, "n1", &attrs);
        let e = fault_for(a).validate(&s, &ctx).unwrap_err();
        assert!(e.to_string().contains("links = \"proxied\""), "{e}");
    }
}

#[tokio::test]
async fn toxics_are_journaled_before_the_proxy_is_called() {
    // No proxy listens at port 1: the injection fails, after the heal
    // naming every toxic it would add was owed.
    let api = "127.0.0.1:1".parse().unwrap();
    let mut n1 = node("n1", ProcSource::None);
    n1.links.push(NodeLink {
        kind: LinkScope::Clients,
        proxy: "n1_clients".into(),
        peer: None,
        api,
    });
    let mut n2 = node("n2", ProcSource::None);
    n2.links.push(NodeLink {
        kind: LinkScope::Replication,
        proxy: "n2_repl".into(),
        peer: Some("n1".into()),
        api,
    });
    let ctx = Ctx::new(vec![n1, n2]);
    let attrs = serde_json::json!({"latency": 100, "jitter": 0, "rate": 0});
    let s = step(FaultAction::Latency, "n1", &attrs);
    let f = fault_for(FaultAction::Latency);
    f.validate(&s, &ctx).unwrap();
    assert!(f.inject(&s, &ctx).await.is_err());
    let owed = ctx.owed();
    let HealAction::RemoveToxics { toxics, .. } = &owed[0].2 else {
        panic!("{owed:?}")
    };
    // Both ends of n1's links, each way.
    assert_eq!(toxics.len(), 4);
    assert!(toxics
        .iter()
        .any(|(p, t)| p == "n2_repl" && t.starts_with("firedrill_t1s0_latency")));
    // Only the clients' link.
    let mut s = step(FaultAction::Reset, "n1", &attrs);
    s.link = LinkScope::Replication;
    assert!(fault_for(FaultAction::Reset).validate(&s, &ctx).is_err());
}

#[tokio::test]
async fn a_netns_partition_owes_link_up_before_setting_the_veth_down() {
    let mut n1 = node("n1", ProcSource::None);
    n1.veth = Some("fdnone0".into());
    let ctx = Ctx::new(vec![n1]);
    let attrs = serde_json::Value::Null;
    let s = step(FaultAction::Partition, "n1", &attrs);
    let f = fault_for(FaultAction::Partition);
    f.validate(&s, &ctx).unwrap();
    // No such device: `ip` fails, after the heal was owed.
    assert!(f.inject(&s, &ctx).await.is_err());
    let owed = ctx.owed();
    assert!(matches!(&owed[0].2, HealAction::LinkUp { dev, .. } if dev == "fdnone0"));
    // A partition of some links only is not a veth partition.
    let mut s = step(FaultAction::Partition, "n1", &attrs);
    s.link = LinkScope::Clients;
    assert!(f.validate(&s, &ctx).is_err());
}

#[tokio::test]
async fn a_cut_heals_through_the_target_opened_for_its_kind() {
    let ctx = Ctx::new(vec![
        node("n1", ProcSource::None),
        node("n2", ProcSource::None),
    ]);
    let attrs = serde_json::Value::Null;
    let s = step(FaultAction::CutReplication, "n2", &attrs);
    let f = fault_for(FaultAction::CutReplication);
    f.validate(&s, &ctx).unwrap();
    f.inject(&s, &ctx).await.unwrap();
    let owed = ctx.owed();
    assert_eq!(
        owed[0].2,
        HealAction::RestoreReplication {
            kind: "fake".into(),
            node: "n2".into(),
            conninfo: "host=n2".into(),
            saved: "host=n1 port=5432".into(),
        }
    );
    // Heal owed before the cut.
    assert_eq!(
        *ctx.calls.lock().unwrap(),
        vec!["source n2".to_string(), "cut n2".to_string()]
    );
    ctx.heal(&owed[0].2).await.unwrap();
    let calls = ctx.calls.lock().unwrap().clone();
    assert_eq!(
        &calls[2..],
        ["open host=n2", "restore n2 host=n1 port=5432"]
    );

    let other = HealAction::RestoreReplication {
        kind: "nosuch".into(),
        node: "n2".into(),
        conninfo: "host=n2".into(),
        saved: String::new(),
    };
    assert!(matches!(ctx.heal(&other).await, Err(FaultError::NoStore(k)) if k == "nosuch"));
}

#[test]
fn journal_names_the_generic_replication_heal() {
    let a = HealAction::RestoreReplication {
        kind: "postgres".into(),
        node: "n2".into(),
        conninfo: "host=n2".into(),
        saved: "host=n1".into(),
    };
    let v = serde_json::to_value(&a).unwrap();
    assert_eq!(v["heal"], "restore_replication");
    assert_eq!(v["kind"], "postgres");
    assert_eq!(serde_json::from_value::<HealAction>(v).unwrap(), a);
}

#[tokio::test]
async fn wipe_kills_the_node_and_removes_only_its_lab_data_dir() {
    let (mut c, h) = child();
    let lab = tempfile::tempdir().unwrap();
    let data = lab.path().join("data").join("n1");
    let other = lab.path().join("data").join("n2");
    for d in [&data, &other] {
        std::fs::create_dir_all(d.join("member")).unwrap();
        std::fs::write(d.join("member").join("db"), b"x").unwrap();
    }
    let attrs = serde_json::Value::Null;
    let s = step(FaultAction::Wipe, "n1", &attrs);
    let wipe = fault_for(FaultAction::Wipe);
    // Explicit endpoints have no lab data directory: refused untouched.
    let bare = Ctx::new(vec![node("n1", ProcSource::Handle(h))]);
    let e = wipe.validate(&s, &bare).unwrap_err().to_string();
    assert!(e.contains("a wipe needs a lab node"), "{e}");
    assert!(h.is_alive() && data.exists());

    let mut n1 = node("n1", ProcSource::Handle(h));
    n1.data_dir = Some(data.clone());
    let ctx = Ctx::new(vec![n1]);
    wipe.validate(&s, &ctx).unwrap();
    assert!(!wipe.in_effect(&s, &ctx).await.unwrap());
    wipe.inject(&s, &ctx).await.unwrap();
    let _ = c.wait();
    assert!(!h.is_alive(), "the node survived its wipe");
    assert!(!data.exists(), "its data directory is still there");
    assert!(
        other.join("member").join("db").exists(),
        "another node's data went too"
    );
    assert!(wipe.in_effect(&s, &ctx).await.unwrap());
    assert!(
        ctx.owed().is_empty(),
        "a wipe owes no heal: the restore is its heal"
    );
    let damage = ctx.damage.lock().unwrap().clone();
    assert_eq!(damage.len(), 1);
    assert!(damage[0].is_wipe());
    // Wiping what is already gone holds and fails nothing.
    wipe.inject(&s, &ctx).await.unwrap();
}

#[tokio::test]
async fn a_backup_step_needs_the_labs_backups() {
    let ctx = Ctx::new(vec![node("n1", ProcSource::None)]);
    let attrs = serde_json::Value::Null;
    let s = step(FaultAction::Backup, "n1", &attrs);
    let e = fault_for(FaultAction::Backup)
        .validate(&s, &ctx)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[lab.backup]"), "{e}");
}

/// remove_wal needs backups; it journals where the segment goes before it
/// moves it, the hole shows in the backups' own check, and the journaled
/// heal alone puts it back (twice is fine).
#[tokio::test]
async fn remove_wal_owes_the_put_back_and_heals_from_the_journal() {
    let attrs = serde_json::json!({});
    let s = step(FaultAction::RemoveWal, "n1", &attrs);
    let f = fault_for(FaultAction::RemoveWal);
    let mut ctx = Ctx::new(vec![node("n1", ProcSource::None)]);
    assert!(f.validate(&s, &ctx).is_err(), "no backups, yet valid");
    let d = tempfile::tempdir().unwrap();
    let (segment, aside) = (d.path().join("seg.gz"), d.path().join("aside.gz"));
    std::fs::write(&segment, b"wal").unwrap();
    ctx.backups = Some(FakeBackups {
        segment: segment.clone(),
        aside: aside.clone(),
    });
    f.validate(&s, &ctx).unwrap();
    assert!(!f.in_effect(&s, &ctx).await.unwrap());
    f.inject(&s, &ctx).await.unwrap();
    assert!(!segment.exists() && aside.exists());
    assert!(f.in_effect(&s, &ctx).await.unwrap());
    let owed = ctx.owed();
    assert_eq!(owed.len(), 1);
    assert_eq!(owed[0].1, None, "kept until the trial's own limit");
    let HealAction::PutBack { path, aside: a, .. } = &owed[0].2 else {
        panic!("{:?}", owed[0].2)
    };
    assert_eq!((path, a), (&segment, &aside));
    ctx.heal(&owed[0].2).await.unwrap();
    assert_eq!(std::fs::read(&segment).unwrap(), b"wal");
    assert!(!f.in_effect(&s, &ctx).await.unwrap());
    ctx.heal(&owed[0].2).await.unwrap();
}
