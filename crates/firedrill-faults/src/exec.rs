//! Runs one user command with a deadline: in its own process group (so a
//! timeout ends everything it started, and only that), its output read as
//! it comes into a short tail with known secrets blanked, its environment
//! firedrill's own plus the `FIREDRILL_*` facts the caller gives. The
//! environment is never recorded: that is where a command's secrets are.

use firedrill_ledger::{CommandPurpose, CommandRun, Micros};
use firedrill_proc::ProcHandle;
use firedrill_spec::CommandSpec;
use nix::sys::signal::Signal;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes of output a record keeps.
pub const TAIL_BYTES: usize = 2048;
/// Bytes read back before redaction, so a secret cut by the window's start
/// falls outside what is kept.
const WINDOW_BYTES: usize = 2 * TAIL_BYTES;
/// After SIGTERM, how long the group has before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);
/// After the command exits, how long its output may still arrive (a child
/// it left in the background may hold the pipe open for ever).
const DRAIN_GRACE: Duration = Duration::from_millis(300);

/// What to run, and with what.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub purpose: CommandPurpose,
    pub step: Option<usize>,
    pub node: Option<String>,
    pub command: CommandSpec,
    /// Added to firedrill's own environment (`FIREDRILL_NODE`, …).
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    /// Values to blank in the output besides the environment's secrets
    /// (the target's password).
    pub secrets: Vec<String>,
}

/// One finished run, timed on the monotonic clock.
#[derive(Debug, Clone)]
pub struct Ran {
    pub purpose: CommandPurpose,
    pub step: Option<usize>,
    pub node: Option<String>,
    pub program: String,
    pub started: Instant,
    pub ended: Instant,
    pub exit: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub error: Option<String>,
    pub output_tail: String,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.exit == Some(0)
    }

    /// The record, on a clock whose zero is `t0`.
    pub fn record(&self, t0: Instant) -> CommandRun {
        let us = |t: Instant| t.saturating_duration_since(t0).as_micros() as Micros;
        CommandRun {
            purpose: self.purpose,
            step: self.step,
            node: self.node.clone(),
            program: self.program.clone(),
            t_start: us(self.started),
            t_done: us(self.ended),
            exit: self.exit,
            signal: self.signal,
            timed_out: self.timed_out,
            error: self.error.clone(),
            output_tail: self.output_tail.clone(),
        }
    }

    /// One line on the outcome, for errors and warnings.
    pub fn outcome(&self) -> String {
        self.record(self.started).outcome()
    }
}

/// Names of environment variables whose values are secrets to blank.
fn secret_name(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    ["PASSWORD", "PASSWD", "SECRET", "TOKEN", "KEY", "CREDENTIAL"]
        .iter()
        .any(|k| n.contains(k))
}

/// The values to blank: the caller's, and those of the environment's
/// secret-looking variables (long enough not to blank common words).
fn secrets(extra: &[String]) -> Vec<String> {
    let mut v: Vec<String> = std::env::vars()
        .filter(|(k, _)| secret_name(k))
        .map(|(_, v)| v)
        .chain(extra.iter().cloned())
        .filter(|s| s.len() >= 4)
        .collect();
    // Longest first, so a secret that contains another is blanked whole.
    v.sort_by_key(|s| std::cmp::Reverse(s.len()));
    v.dedup();
    v
}

/// The kept tail of `window`, secrets blanked.
pub fn tail_of(window: &[u8], cut: bool, secrets: &[String]) -> String {
    let mut text = String::from_utf8_lossy(window).into_owned();
    for s in secrets {
        text = text.replace(s.as_str(), "[redacted]");
    }
    if !cut && text.len() <= TAIL_BYTES {
        return text;
    }
    let mut start = text.len().saturating_sub(TAIL_BYTES);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

/// The last `WINDOW_BYTES` of everything written to both streams.
#[derive(Default)]
struct Window {
    buf: std::collections::VecDeque<u8>,
    cut: bool,
}

impl Window {
    fn push(&mut self, b: &[u8]) {
        self.buf.extend(b);
        if self.buf.len() > WINDOW_BYTES {
            let excess = self.buf.len() - WINDOW_BYTES;
            self.buf.drain(..excess);
            self.cut = true;
        }
    }
}

async fn pump(mut r: impl AsyncRead + Unpin, w: Arc<Mutex<Window>>) {
    let mut b = [0u8; 4096];
    while let Ok(n) = r.read(&mut b).await {
        if n == 0 {
            break;
        }
        w.lock().unwrap_or_else(|p| p.into_inner()).push(&b[..n]);
    }
}

/// Kills the command's group if the run is abandoned (its task aborted):
/// nothing it started outlives firedrill's interest in it.
struct GroupGuard(Option<ProcHandle>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            let _ = h.signal_tree(Signal::SIGKILL);
        }
    }
}

/// Runs the command to its end or its timeout. Never fails: a command that
/// cannot start is a run with `error` set.
pub async fn run(inv: &Invocation) -> Ran {
    let argv = inv.command.argv();
    let started = Instant::now();
    let mut ran = Ran {
        purpose: inv.purpose,
        step: inv.step,
        node: inv.node.clone(),
        program: inv.command.program(),
        started,
        ended: started,
        exit: None,
        signal: None,
        timed_out: false,
        error: None,
        output_tail: String::new(),
    };
    let Some((prog, args)) = argv.split_first() else {
        ran.error = Some("empty command".into());
        return ran;
    };
    let mut cmd = tokio::process::Command::new(prog);
    cmd.args(args)
        .envs(inv.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            ran.error = Some(format!("{prog}: {e}"));
            ran.ended = Instant::now();
            return ran;
        }
    };
    let handle = child
        .id()
        .and_then(|p| ProcHandle::of_child(p as i32, true).ok());
    let mut guard = GroupGuard(handle);
    let window = Arc::new(Mutex::new(Window::default()));
    let mut readers = Vec::new();
    if let Some(o) = child.stdout.take() {
        readers.push(tokio::spawn(pump(o, window.clone())));
    }
    if let Some(e) = child.stderr.take() {
        readers.push(tokio::spawn(pump(e, window.clone())));
    }
    let status = match tokio::time::timeout(inv.timeout, child.wait()).await {
        Ok(s) => s.ok(),
        Err(_) => {
            ran.timed_out = true;
            if let Some(h) = &guard.0 {
                let _ = h.signal_tree(Signal::SIGTERM);
            }
            match tokio::time::timeout(TERM_GRACE, child.wait()).await {
                Ok(s) => s.ok(),
                Err(_) => {
                    if let Some(h) = &guard.0 {
                        let _ = h.signal_tree(Signal::SIGKILL);
                    }
                    child.wait().await.ok()
                }
            }
        }
    };
    // The leader is reaped: its pid may be reused, so the guard stands down.
    guard.0 = None;
    ran.ended = Instant::now();
    let drain = tokio::time::Instant::now() + DRAIN_GRACE;
    for r in readers {
        let abort = r.abort_handle();
        if tokio::time::timeout_at(drain, r).await.is_err() {
            abort.abort();
        }
    }
    if let Some(s) = status {
        use std::os::unix::process::ExitStatusExt;
        ran.exit = s.code();
        ran.signal = s.signal();
    }
    let w = window.lock().unwrap_or_else(|p| p.into_inner());
    let bytes: Vec<u8> = w.buf.iter().copied().collect();
    ran.output_tail = tail_of(&bytes, w.cut, &secrets(&inv.secrets));
    ran
}

/// `host:port` from a control path, when it says one plainly: libpq's
/// `host=… port=…`, a URL, or `host:port`. None for anything else (a
/// socket directory, several hosts).
pub fn node_addr(conninfo: &str) -> Option<String> {
    let c = conninfo.trim();
    if let Some((_, rest)) = c.split_once("://") {
        let hostport = rest.split(['/', '?']).next()?;
        let hostport = hostport.rsplit('@').next()?;
        return plain_hostport(hostport);
    }
    if c.contains('=') {
        let mut host = None;
        let mut port = None;
        for kv in c.split_whitespace() {
            match kv.split_once('=') {
                Some(("host" | "hostaddr", v)) => host = Some(v),
                Some(("port", v)) => port = Some(v),
                _ => {}
            }
        }
        let (h, p) = (host?, port?);
        if h.starts_with('/') || h.contains(',') || p.parse::<u16>().is_err() {
            return None;
        }
        return Some(format!("{h}:{p}"));
    }
    plain_hostport(c)
}

fn plain_hostport(s: &str) -> Option<String> {
    let (h, p) = s.rsplit_once(':')?;
    (!h.is_empty() && !h.contains(',') && p.parse::<u16>().is_ok()).then(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(command: CommandSpec, timeout: Duration) -> Invocation {
        Invocation {
            purpose: CommandPurpose::Inject,
            step: Some(0),
            node: None,
            command,
            env: vec![("FIREDRILL_NODE".into(), "n1".into())],
            timeout,
            secrets: vec!["s3cr3t-value".into()],
        }
    }

    fn sh(s: &str) -> CommandSpec {
        CommandSpec::Shell(s.into())
    }

    #[tokio::test]
    async fn exit_status_output_and_environment() {
        let r = run(&inv(
            sh("echo out; echo err >&2; echo $FIREDRILL_NODE; exit 3"),
            Duration::from_secs(10),
        ))
        .await;
        assert_eq!(r.exit, Some(3));
        assert!(!r.timed_out);
        assert!(r.output_tail.contains("out") && r.output_tail.contains("err"));
        assert!(r.output_tail.contains("n1"), "{}", r.output_tail);
        let ok = run(&inv(
            CommandSpec::Argv(vec!["true".into()]),
            Duration::from_secs(10),
        ))
        .await;
        assert!(ok.ok());
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group() {
        let d = tempfile::tempdir().unwrap();
        let pidfile = d.path().join("bg.pid");
        let text = format!("sleep 60 & echo $! > {}; wait", pidfile.display());
        let r = run(&inv(sh(&text), Duration::from_millis(500))).await;
        assert!(r.timed_out);
        assert_eq!(r.exit, None);
        assert_eq!(r.signal, Some(libc_sigterm()));
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The background sleep was in the group: it is gone too (reaped by
        // init, or a zombie until then).
        let gone = (0..50).any(|_| {
            let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let dead = st.is_empty() || st.contains(") Z");
            if !dead {
                std::thread::sleep(Duration::from_millis(100));
            }
            dead
        });
        assert!(gone, "the command's background child survived its timeout");
        assert!(r.ended.duration_since(r.started) < Duration::from_secs(5));
    }

    fn libc_sigterm() -> i32 {
        Signal::SIGTERM as i32
    }

    #[tokio::test]
    async fn a_background_child_holding_the_pipe_does_not_hang_the_run() {
        let r = run(&inv(sh("sleep 30 & echo started"), Duration::from_secs(10))).await;
        assert!(r.ok());
        assert!(r.ended.duration_since(r.started) < Duration::from_secs(5));
        assert!(r.output_tail.contains("started"));
    }

    #[tokio::test]
    async fn a_missing_program_is_a_run_with_an_error() {
        let r = run(&inv(
            CommandSpec::Argv(vec!["/nonexistent/firedrill-nope".into()]),
            Duration::from_secs(5),
        ))
        .await;
        assert!(!r.ok());
        assert!(r.error.is_some());
        assert!(r.record(r.started).outcome().contains("could not start"));
    }

    #[tokio::test]
    async fn secrets_are_blanked_and_the_tail_is_bounded() {
        let text = "echo password is s3cr3t-value; head -c 10000 /dev/zero | tr '\\0' x; echo; echo again s3cr3t-value";
        let r = run(&inv(sh(text), Duration::from_secs(10))).await;
        assert!(!r.output_tail.contains("s3cr3t-value"), "{}", r.output_tail);
        assert!(r.output_tail.contains("again [redacted]"));
        assert!(r.output_tail.len() <= TAIL_BYTES + 4);
    }

    #[test]
    fn a_secret_cut_by_the_window_is_not_kept() {
        // The window starts mid-secret: that part is never in the tail.
        let mut w = b"3cr3t-value ".to_vec();
        w.extend(std::iter::repeat_n(b'y', WINDOW_BYTES - w.len()));
        let t = tail_of(&w, true, &["s3cr3t-value".into()]);
        assert!(!t.contains("3cr3t"));
        assert!(t.starts_with('…'));
    }

    #[test]
    fn addresses_from_control_paths() {
        assert_eq!(
            node_addr("host=127.0.0.1 port=5432 user=postgres").as_deref(),
            Some("127.0.0.1:5432")
        );
        assert_eq!(
            node_addr("http://127.0.0.1:2379").as_deref(),
            Some("127.0.0.1:2379")
        );
        assert_eq!(node_addr("nats://u@h:4222/x").as_deref(), Some("h:4222"));
        assert_eq!(
            node_addr("127.0.0.1:6379").as_deref(),
            Some("127.0.0.1:6379")
        );
        assert_eq!(node_addr("host=/tmp port=5432"), None);
        assert_eq!(node_addr("host=a,b port=5432"), None);
        assert_eq!(node_addr("dbname=x"), None);
    }
}
