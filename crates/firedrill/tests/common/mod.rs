//! Shared test harness: real PostgreSQL labs in temporary directories,
//! driven through the real `firedrill` binary.
#![allow(dead_code)]

pub mod browser;
pub mod watch;

use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_firedrill");

/// Drills measure timings: one at a time, so they do not compete for the
/// two cores.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// True when PostgreSQL server binaries are installed. Under CI=true a
/// missing server fails the test instead of skipping it.
pub fn pg_available() -> bool {
    let found = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| rd.flatten().any(|e| e.path().join("bin/postgres").exists()))
        .unwrap_or(false)
        || std::env::var_os("PG_BIN").is_some();
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "PostgreSQL server binaries are missing (CI=true: this is a failure, not a skip)"
            );
        }
        eprintln!("skipping: PostgreSQL server binaries not installed");
    }
    found
}

/// True when the named server programs are installed (on PATH or in
/// /usr/bin). Under CI=true a missing one fails the test instead of
/// skipping it.
pub fn programs_available(programs: &[&str]) -> bool {
    let on_path = |p: &str| {
        std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).any(|d| d.join(p).is_file()))
            .unwrap_or(false)
            || Path::new("/usr/bin").join(p).is_file()
    };
    let missing: Vec<&str> = programs.iter().copied().filter(|p| !on_path(p)).collect();
    if !missing.is_empty() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "{} missing (CI=true: this is a failure, not a skip; scripts/install-deps.sh installs them)",
                missing.join(", ")
            );
        }
        eprintln!("skipping: {} not installed", missing.join(", "));
        return false;
    }
    true
}

/// An example spec from examples/, placed in the test's lab directory.
pub fn example(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert!(text.contains("\n[lab]\n"), "{name} has no [lab] table");
    text.replacen("\n[lab]\n", "\n[lab]\ndir = \"@DIR@\"\n", 1)
}

/// The median of some figures.
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// A temporary directory the unprivileged server user can traverse.
pub fn tempdir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("firedrill-test-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    d
}

/// The history database of test runs lives under cargo's target dir, not
/// in the source tree (tests run with the crate as working directory).
pub fn state_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("firedrill-state")
}

pub fn firedrill(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("FIREDRILL_LOG")
        .env("FIREDRILL_STATE_DIR", state_dir())
        .output()
        .expect("run firedrill")
}

/// A lab that is brought down when the test ends, whatever happens.
pub struct Lab {
    pub tmp: tempfile::TempDir,
    pub spec: PathBuf,
}

impl Lab {
    /// Writes `spec_text` (with `@DIR@` replaced by the lab directory) and
    /// runs `firedrill lab up`.
    pub fn up(spec_text: &str) -> Lab {
        let tmp = tempdir();
        let spec = tmp.path().join("drill.toml");
        let text = spec_text.replace("@DIR@", &tmp.path().join("lab").display().to_string());
        std::fs::write(&spec, text).expect("write spec");
        let lab = Lab { tmp, spec };
        let out = firedrill(&["lab", "up", lab.spec_str()]);
        assert!(
            out.status.success(),
            "lab up failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        lab
    }

    pub fn spec_str(&self) -> &str {
        self.spec.to_str().expect("utf-8 path")
    }

    pub fn lab_dir(&self) -> PathBuf {
        self.tmp.path().join("lab")
    }

    pub fn run_dir(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Runs the drill; returns the exit code, run.json, and the output.
    pub fn drill(&self, run: &str) -> Drill {
        self.drill_file(&self.spec, run)
    }

    /// Runs the drill of another spec file against this lab.
    pub fn drill_file(&self, spec: &Path, run: &str) -> Drill {
        let out_dir = self.run_dir(run);
        let out = firedrill(&[
            "drill",
            spec.to_str().expect("utf-8 path"),
            "--out",
            out_dir.to_str().expect("utf-8"),
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        eprintln!("--- drill stdout\n{stdout}\n--- drill stderr\n{stderr}");
        let run_json = std::fs::read_to_string(out_dir.join("run.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        Drill {
            code: out.status.code().unwrap_or(-1),
            run: run_json,
            stdout,
            stderr,
            dir: out_dir,
        }
    }

    pub fn state(&self) -> Value {
        let t = std::fs::read_to_string(self.lab_dir().join("state.json")).expect("state.json");
        serde_json::from_str(&t).expect("state json")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = firedrill(&["lab", "down", self.spec_str()]);
        if !out.status.success() {
            eprintln!("lab down failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

pub struct Drill {
    pub code: i32,
    pub run: Value,
    pub stdout: String,
    pub stderr: String,
    pub dir: PathBuf,
}

impl Drill {
    pub fn trial(&self, i: usize) -> &Value {
        &self.run["trials"][i]
    }
    pub fn f64(&self, i: usize, path: &str) -> Option<f64> {
        let mut v = self.trial(i);
        for k in path.split('.') {
            v = &v[k];
        }
        v.as_f64()
    }
    pub fn u64(&self, i: usize, path: &str) -> u64 {
        let mut v = self.trial(i);
        for k in path.split('.') {
            v = &v[k];
        }
        v.as_u64()
            .unwrap_or_else(|| panic!("{path} missing in trial {i}: {}", self.trial(i)))
    }
}

/// Reads /proc/PID/stat's state letter, if the process exists.
pub fn proc_state(pid: i64) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    rest.chars().next()
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// The drill process; killed if the test fails before it ends.
pub struct Drilling(pub Child);

impl Drop for Drilling {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

pub fn start_drill(lab: &Lab) -> Drilling {
    let out = lab.run_dir("run");
    Drilling(
        Command::new(BIN)
            .args(["drill", lab.spec_str(), "--out", out.to_str().unwrap()])
            .env("FIREDRILL_STATE_DIR", state_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn drill"),
    )
}

/// Waits until events.jsonl shows `n` fault injections.
pub fn wait_injected(run: &Path, n: usize) {
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        let text = std::fs::read_to_string(run.join("events.jsonl")).unwrap_or_default();
        let count = text
            .lines()
            .filter(|l| l.contains("\"fault_injected\"") && l.contains("\"error\":null"))
            .count();
        if count >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("faults were not injected within 30 s");
}

/// True when redis-server is installed (`REDIS_BIN` or /usr/bin). Under
/// CI=true a missing server fails the test instead of skipping it.
pub fn redis_available() -> bool {
    let found = std::env::var_os("REDIS_BIN")
        .map(|d| Path::new(&d).join("redis-server").is_file())
        .unwrap_or_else(|| Path::new("/usr/bin/redis-server").is_file());
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("redis-server is missing (CI=true: this is a failure, not a skip)");
        }
        eprintln!("skipping: redis-server not installed");
    }
    found
}

/// Runs `firedrill drill` (plus `extra` arguments) on a bad spec: exit 2,
/// the file:line:column of the problem, and `want` in the message.
pub fn check_bad_drill(text: &str, want: &str, extra: &[&str]) {
    let tmp = tempdir();
    let spec = tmp.path().join("bad.toml");
    std::fs::write(&spec, text).expect("write");
    let mut args = vec!["drill", spec.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    let out = firedrill(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "FIGURES bad input {want:?}: exit {:?}: {err}",
        out.status.code()
    );
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.toml:"), "no file:line:col in {err}");
    assert!(err.contains(want), "{err}");
}

/// Root, `ip`, and a trial namespace that can be made and removed. Call it
/// holding the `serial()` lock: the probe's name is per process. Under
/// CI=true their absence fails the test.
pub fn netns_usable() -> bool {
    let probe = format!("fd-test-probe-{}", std::process::id());
    let run = |args: &[&str]| {
        std::process::Command::new("ip")
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    };
    let ok = run(&["netns", "add", &probe]) && run(&["netns", "del", &probe]);
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("network namespaces are not available (needs root and iproute2; CI=true: this is a failure, not a skip)");
        }
        eprintln!("skipping: network namespaces need root and iproute2");
    }
    ok
}

/// True when java and the Kafka jars are there; under CI=true their
/// absence fails the test.
pub fn kafka_available() -> bool {
    let libs = std::env::var_os("FIREDRILL_KAFKA_LIBS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/firedrill/kafka-4.3.1/libs")
        });
    if !libs.join("kafka_2.13-4.3.1.jar").is_file() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "Kafka jars missing in {} (CI=true: this is a failure, not a skip; run scripts/install-deps.sh)",
                libs.display()
            );
        }
        eprintln!("skipping: Kafka jars not installed (scripts/install-deps.sh)");
        return false;
    }
    programs_available(&["java"])
}

/// A lab node's port, from its state.json.
pub fn port_of(state: &Value, node: &str) -> u64 {
    state["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["name"] == node)
        .and_then(|n| n["port"].as_u64())
        .unwrap_or_else(|| panic!("no port for {node}"))
}

/// psql on a lab node as `postgres` over TCP, with `password` or none
/// (never one from the environment); (succeeded, trimmed stdout).
pub fn psql_as(state: &Value, node: &str, sql: &str, password: Option<&str>) -> (bool, String) {
    let bin = Path::new(state["bin_dir"].as_str().expect("bin_dir")).join("psql");
    let mut c = Command::new(bin);
    c.args(["-h", "127.0.0.1", "-p", &port_of(state, node).to_string()])
        .args(["-U", "postgres", "-d", "postgres", "-w", "-Atc", sql])
        .env_remove("PGPASSWORD");
    if let Some(p) = password {
        c.env("PGPASSWORD", p);
    }
    let out = c.output().expect("psql");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

/// SIGSTOPs a pid the lab recorded, and SIGCONTs it when dropped, whatever
/// the test did meanwhile, so the lab can be brought down.
pub struct Stopped(i64);

impl Stopped {
    pub fn new(pid: impl Into<i64>) -> Stopped {
        let pid = pid.into();
        let ok = Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -STOP {pid}");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}
