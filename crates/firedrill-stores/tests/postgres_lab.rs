//! Labs against the real PostgreSQL installed here. Without the binaries
//! the tests skip, except under CI=true, where they fail.

use firedrill_lab::{LabDriver, LabError, LabState, NodeStatus};
use firedrill_stores::postgres::{find_bin_dir, multi_host_conninfo, PostgresStore};

fn down(s: &LabState) -> Result<(), LabError> {
    firedrill_lab::down(&PostgresStore, s)
}
fn reset(s: &LabState, p: &mut dyn FnMut(&str)) -> Result<LabState, LabError> {
    firedrill_lab::reset(&PostgresStore, s, p)
}
fn up(
    spec: &LabSpec,
    dir: Option<&Path>,
    reset: bool,
    p: &mut dyn FnMut(&str),
) -> Result<LabState, LabError> {
    firedrill_lab::up(&PostgresStore, spec, dir, reset, p)
}
async fn status(s: &LabState) -> Vec<NodeStatus> {
    PostgresStore.status(s).await
}
use firedrill_spec::LabSpec;
use nix::sys::signal::Signal;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;

fn pg_available() -> bool {
    match find_bin_dir(None) {
        Ok(_) => true,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but PostgreSQL is missing: {e}")
        }
        Err(e) => {
            eprintln!("skipping: {e}");
            false
        }
    }
}

/// A fresh /tmp directory the postgres user can traverse.
fn lab_root() -> tempfile::TempDir {
    let t = tempfile::tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    t
}

fn spec(toml_text: &str) -> LabSpec {
    toml::from_str(toml_text).unwrap()
}

/// Brings the lab down whatever happens to the test.
struct Guard(Option<LabState>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            if s.dir.join("state.json").exists() {
                if let Err(e) = down(&s) {
                    eprintln!("guard: down failed: {e}");
                }
            }
        }
    }
}

impl Guard {
    fn state(&self) -> &LabState {
        self.0.as_ref().unwrap()
    }
}

fn quiet() -> impl FnMut(&str) {
    |m: &str| eprintln!("lab: {m}")
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

async fn client(conninfo: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(conninfo, NoTls).await.unwrap();
    tokio::spawn(conn);
    c
}

async fn show(conninfo: &str, guc: &str) -> String {
    let c = client(conninfo).await;
    c.query_one(&format!("SHOW {guc}"), &[])
        .await
        .unwrap()
        .get(0)
}

fn by_name<'a>(st: &'a [NodeStatus], name: &str) -> &'a NodeStatus {
    st.iter().find(|s| s.name == name).unwrap()
}

fn assert_healthy(st: &[NodeStatus], standbys: usize) {
    assert_eq!(
        st.iter().filter(|s| s.role == "primary").count(),
        1,
        "{st:#?}"
    );
    let sb: Vec<&NodeStatus> = st.iter().filter(|s| s.role == "standby").collect();
    assert_eq!(sb.len(), standbys, "{st:#?}");
    for s in sb {
        let r = s.replication.as_deref().unwrap_or("");
        assert!(r.starts_with("streaming from n1"), "{st:#?}");
        assert!(s.alive && s.timeline == Some(1), "{st:#?}");
    }
}

async fn wait_row(conninfo: &str, id: i32) {
    let c = client(conninfo).await;
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        // The table itself may not have been replayed yet: an error is "not yet".
        let n: Option<i64> = c
            .query_one("SELECT count(*) FROM t WHERE id = $1", &[&id])
            .await
            .ok()
            .map(|r| r.get(0));
        if n == Some(1) {
            return;
        }
        assert!(Instant::now() < end, "row {id} never reached {conninfo}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn all_pids(s: &LabState) -> Vec<firedrill_proc::ProcHandle> {
    s.nodes.iter().filter_map(|n| n.proc).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_lab_up_refuse_reset_down() {
    if !pg_available() {
        return;
    }
    let root = lab_root();
    let dir: PathBuf = root.path().join("lab");
    let sp = spec("name = \"async1\"\nstandbys = 2\n");
    let (s, d) = (sp.clone(), dir.clone());
    let state = blocking(move || up(&s, Some(&d), false, &mut quiet()))
        .await
        .unwrap();
    let mut guard = Guard(Some(state));
    let state = guard.state().clone();
    assert_eq!(LabState::load(&dir).unwrap().nodes.len(), 3);

    let st = status(&state).await;
    assert_healthy(&st, 2);
    eprintln!("{}", firedrill_lab::render_status(&state, &st));

    let p = client(&multi_host_conninfo(&state)).await;
    p.batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (42)")
        .await
        .unwrap();
    for n in ["n2", "n3"] {
        wait_row(&state.node(n).unwrap().conninfo, 42).await;
    }

    // A second `up` without reset is refused and touches nothing.
    let (s, d) = (sp.clone(), dir.clone());
    let err = blocking(move || up(&s, Some(&d), false, &mut quiet()))
        .await
        .unwrap_err();
    assert!(matches!(err, LabError::Exists { .. }), "{err}");
    assert!(err.to_string().contains("--reset"));
    assert!(all_pids(&state).iter().all(|p| p.is_alive()));
    assert_healthy(&status(&state).await, 2);

    // With reset: a fresh lab, the old servers gone.
    let (s, d) = (sp.clone(), dir.clone());
    let fresh = blocking(move || up(&s, Some(&d), true, &mut quiet()))
        .await
        .unwrap();
    guard.0 = Some(fresh.clone());
    assert!(all_pids(&state).iter().all(|p| !p.is_alive()));
    assert_healthy(&status(&fresh).await, 2);
    let c = client(&fresh.node("n1").unwrap().conninfo).await;
    let t: Option<String> = c
        .query_one("SELECT to_regclass('t')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(t, None, "the reset lab must be fresh");

    // reset() keeps the ports (they are free again once the old lab is down).
    let f2 = fresh.clone();
    let again = blocking(move || reset(&f2, &mut quiet())).await.unwrap();
    guard.0 = Some(again.clone());
    let ports = |s: &LabState| s.nodes.iter().map(|n| n.port).collect::<Vec<_>>();
    assert_eq!(ports(&again), ports(&fresh));
    assert_healthy(&status(&again).await, 2);

    let a = again.clone();
    blocking(move || down(&a)).await.unwrap();
    assert!(!dir.exists());
    for p in all_pids(&again).iter().chain(&all_pids(&fresh)) {
        assert!(!p.is_alive(), "pid {} still alive", p.pid);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_lab_only_primary_waits() {
    if !pg_available() {
        return;
    }
    let root = lab_root();
    let dir = root.path().join("lab");
    let sp = spec("name = \"sync1\"\nstandbys = 1\nreplication = \"sync\"\n");
    let d = dir.clone();
    let state = blocking(move || up(&sp, Some(&d), false, &mut quiet()))
        .await
        .unwrap();
    let guard = Guard(Some(state));
    let state = guard.state();
    let n1 = &state.node("n1").unwrap().conninfo;
    let n2 = &state.node("n2").unwrap().conninfo;
    assert_eq!(show(n1, "synchronous_standby_names").await, "ANY 1 (n2)");
    assert_eq!(show(n1, "synchronous_commit").await, "on");
    assert_eq!(show(n2, "synchronous_standby_names").await, "");
    let c = client(n1).await;
    let sync: String = c
        .query_one("SELECT sync_state FROM pg_stat_replication", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sync, "quorum");
    // Commits complete: the standby confirms.
    c.batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    // WAL archiving works (archive_command runs as the server user).
    c.batch_execute("SELECT pg_switch_wal()").await.unwrap();
    let archive = state.dir.join("archive");
    let end = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&archive).unwrap().next().is_none() {
        assert!(Instant::now() < end, "nothing archived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let st = status(state).await;
    assert_healthy(&st, 1);
    assert_eq!(
        by_name(&st, "n1").replication.as_deref(),
        Some("n2 streaming quorum")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_after_kill_and_promote() {
    if !pg_available() {
        return;
    }
    let root = lab_root();
    let dir = root.path().join("lab");
    let sp = spec("name = \"failover1\"\nstandbys = 1\n");
    let d = dir.clone();
    let state = blocking(move || up(&sp, Some(&d), false, &mut quiet()))
        .await
        .unwrap();
    let guard = Guard(Some(state));
    let state = guard.state().clone();

    // A crash reaches the backends too: each calls setsid(), so the
    // postmaster's process group alone would leave this one committing.
    let n1 = state.node("n1").unwrap().proc.unwrap();
    let c1 = client(&state.node("n1").unwrap().conninfo).await;
    let backend: i32 = c1
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let backend = n1
        .tree()
        .into_iter()
        .find(|h| h.pid == backend)
        .expect("the client's backend is in the node's tree");
    assert!(!backend.group_leader && backend.is_alive());
    let killed = n1.kill_tree().unwrap();
    assert!(killed.contains(&backend));
    assert!(n1.wait_exit(Duration::from_secs(5)));
    assert!(
        backend.wait_exit(Duration::from_secs(5)),
        "the backend outlived the crash"
    );
    assert!(c1.batch_execute("SELECT 1").await.is_err());
    let c = client(&state.node("n2").unwrap().conninfo).await;
    let promoted: bool = c
        .query_one("SELECT pg_promote()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(promoted);

    let st = status(&state).await;
    eprintln!("{}", firedrill_lab::render_status(&state, &st));
    assert_eq!(by_name(&st, "n1").role, "down");
    assert!(!by_name(&st, "n1").alive);
    assert_eq!(by_name(&st, "n2").role, "primary");
    assert_eq!(by_name(&st, "n2").timeline, Some(2));
    // The promoted standby takes writes (it carries no synchronous_standby_names).
    let p = client(&multi_host_conninfo(&state)).await;
    p.batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (7)")
        .await
        .unwrap();

    // A paused node answers nothing: status still returns, promptly.
    drop((c, p));
    let n2 = state.node("n2").unwrap().proc.unwrap();
    n2.signal_tree(Signal::SIGSTOP).unwrap();
    let t0 = Instant::now();
    let st = status(&state).await;
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(by_name(&st, "n2").role, "unreachable");

    // down resumes the paused tree before stopping it.
    let s = state.clone();
    blocking(move || down(&s)).await.unwrap();
    assert!(!dir.exists());
    assert!(all_pids(&state).iter().all(|p| !p.is_alive()));
}

/// A lab directory the server user cannot reach fails before starting
/// anything, names the way out, and leaves nothing behind.
#[test]
fn unreachable_dir_is_refused() {
    if !pg_available() || !nix::unistd::Uid::effective().is_root() {
        return;
    }
    let root = tempfile::tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let dir = root.path().join("lab");
    let err = up(
        &spec("name = \"hidden\"\n"),
        Some(&dir),
        false,
        &mut quiet(),
    )
    .unwrap_err();
    assert!(matches!(err, LabError::Traverse { .. }), "{err}");
    assert!(err.to_string().contains("dir = \"/tmp/"), "{err}");
    assert!(!dir.exists());
}

/// `down` never deletes a directory that is not a lab.
#[test]
fn down_refuses_foreign_dir() {
    let root = lab_root();
    let d: &Path = root.path();
    std::fs::write(d.join("precious"), "x").unwrap();
    let st: LabState = serde_json::from_value(serde_json::json!({
        "name": "x", "dir": d, "spec": {"name": "x"}, "bin_dir": "/nonexistent",
        "run_as": null, "created_at": "2026-01-01T00:00:00Z", "nodes": []
    }))
    .unwrap();
    assert!(matches!(down(&st), Err(LabError::NotALab { .. })));
    assert!(d.join("precious").exists());
    // Nor does `up --reset` over it.
    let err = up(&spec("name = \"x\"\n"), Some(d), true, &mut quiet()).unwrap_err();
    assert!(matches!(err, LabError::NotALab { .. }), "{err}");
    assert!(d.join("precious").exists());
}

/// A server that cannot start fails `up` with its log, and leaves no half lab.
#[test]
fn failed_start_leaves_nothing() {
    if !pg_available() {
        return;
    }
    let root = lab_root();
    let dir = root.path().join("lab");
    let sp = spec("name = \"broken\"\n[settings]\nshared_buffers = \"lots\"\n");
    let err = up(&sp, Some(&dir), false, &mut quiet()).unwrap_err();
    assert!(matches!(err, LabError::Exited { .. }), "{err}");
    assert!(err.to_string().contains("shared_buffers"), "{err}");
    assert!(!dir.exists());
    let sp = spec("name = \"owned\"\n[settings]\nport = 5999\n");
    let err = up(&sp, Some(&dir), false, &mut quiet()).unwrap_err();
    assert!(matches!(err, LabError::Setting { .. }), "{err}");
    assert!(!dir.exists());
}
