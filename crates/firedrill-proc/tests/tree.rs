//! The process tree a crash must reach, on real processes: a group leader
//! whose child leaves the group with `setsid` (as every PostgreSQL backend
//! does) and a child that stays in it.

use firedrill_proc::{spawn_server, ProcHandle};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::path::Path;
use std::time::{Duration, Instant};

/// Starts `sh` as a group leader with two sleeping children, one of them in
/// its own session, and returns the leader and the children's handles.
fn leader_with_children(dir: &Path) -> (ProcHandle, ProcHandle, ProcHandle) {
    let pids = dir.join("pids");
    let script = format!(
        "setsid sleep 300 & a=$!; sleep 300 & b=$!; echo $a $b > {p}.tmp; mv {p}.tmp {p}; wait",
        p = pids.display()
    );
    let leader = spawn_server(
        Path::new("/bin/sh"),
        &["-c", &script],
        None,
        &dir.join("log"),
    )
    .expect("spawn sh");
    let end = Instant::now() + Duration::from_secs(5);
    let text = loop {
        if let Ok(t) = std::fs::read_to_string(&pids) {
            break t;
        }
        assert!(Instant::now() < end, "children never started");
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut it = text.split_whitespace().map(|p| p.parse::<i32>().unwrap());
    let (a, b) = (it.next().unwrap(), it.next().unwrap());
    // `setsid` execs sleep in place (it is not a group leader when started
    // from a non-interactive shell), so the pid is the sleeper's.
    let wait_session = Instant::now() + Duration::from_secs(5);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{a}/stat")).unwrap();
        let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
            .split_whitespace()
            .collect();
        if f[3] == a.to_string() {
            break;
        }
        assert!(
            Instant::now() < wait_session,
            "child {a} never left the group"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let own = ProcHandle::of_child(a, false).unwrap();
    let stays = ProcHandle::of_child(b, false).unwrap();
    (leader, own, stays)
}

fn gone_within(h: &ProcHandle, limit: Duration) -> bool {
    h.wait_exit(limit)
}

#[test]
fn kill_tree_reaches_a_child_in_its_own_session() {
    let dir = tempfile::tempdir().unwrap();
    let (leader, own, stays) = leader_with_children(dir.path());
    let tree = leader.tree();
    assert!(tree.contains(&own), "tree {tree:?} misses the setsid child");
    assert!(
        tree.contains(&stays),
        "tree {tree:?} misses the group child"
    );

    let killed = leader.kill_tree().unwrap();
    assert_eq!(killed[0], leader, "the recorded process comes first");
    assert!(killed.contains(&own) && killed.contains(&stays));
    for h in [&leader, &own, &stays] {
        assert!(gone_within(h, Duration::from_secs(5)), "{} survived", h.pid);
    }
    assert!(!leader.tree_alive());
}

/// Negative control: the group signal alone (what firedrill sent before)
/// leaves the setsid child running, and `tree_alive` still sees it while
/// the leader lives.
#[test]
fn a_group_signal_alone_misses_the_setsid_child() {
    let dir = tempfile::tempdir().unwrap();
    let (leader, own, stays) = leader_with_children(dir.path());
    killpg(Pid::from_raw(leader.pid), Signal::SIGKILL).unwrap();
    assert!(gone_within(&leader, Duration::from_secs(5)));
    assert!(gone_within(&stays, Duration::from_secs(5)));
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        own.is_alive(),
        "the setsid child should outlive a group kill"
    );
    own.signal(Signal::SIGKILL).unwrap();
    assert!(gone_within(&own, Duration::from_secs(5)));
}

#[test]
fn pause_and_resume_reach_the_whole_tree() {
    let dir = tempfile::tempdir().unwrap();
    let (leader, own, stays) = leader_with_children(dir.path());
    leader.signal_tree(Signal::SIGSTOP).unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    while !(own.is_stopped() && stays.is_stopped() && leader.is_stopped()) {
        assert!(Instant::now() < end, "the tree did not stop");
        std::thread::sleep(Duration::from_millis(5));
    }
    leader.signal_tree(Signal::SIGCONT).unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    while own.is_stopped() || stays.is_stopped() {
        assert!(Instant::now() < end, "the tree did not resume");
        std::thread::sleep(Duration::from_millis(5));
    }
    leader.kill_tree().unwrap();
    for h in [&leader, &own, &stays] {
        assert!(gone_within(h, Duration::from_secs(5)));
    }
}
