//! Processes firedrill started, and only those.
//!
//! Safety rule: firedrill signals a process only through a [`ProcHandle`]
//! recorded when the process was started (or read from a pid file the user
//! pointed at). A handle carries the pid *and* the kernel's start time of
//! that pid, so a recycled pid is never signalled. Nothing matches
//! processes by name.

use nix::sys::signal::{kill, Signal};
use nix::unistd::{Gid, Pid, Uid, User};
use serde::{Deserialize, Serialize};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod tree;
pub use tree::descendants;

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("process {pid} is not the one firedrill recorded (it exited, or its pid was reused)")]
    NotOurs { pid: i32 },
    #[error("cannot signal process {pid}: {source}")]
    Signal { pid: i32, source: nix::Error },
    #[error("cannot read pid file {path}: {msg}")]
    PidFile { path: String, msg: String },
    #[error("unprivileged user {user:?}: {msg}")]
    User { user: String, msg: String },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// A process firedrill may signal: pid plus the start time the kernel gave
/// it (field 22 of /proc/PID/stat, in clock ticks since boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcHandle {
    pub pid: i32,
    pub start_time: u64,
    /// The process leads its own process group (firedrill started it with
    /// one), so the group signal reaches its whole tree at once.
    pub group_leader: bool,
}

/// Fields of /proc/PID/stat that matter here.
pub(crate) struct Stat {
    pub(crate) state: char,
    pub(crate) ppid: i32,
    pub(crate) pgrp: i32,
    pub(crate) start_time: u64,
}

pub(crate) fn read_stat(pid: i32) -> Option<Stat> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and ')': fields start after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); field N is f[N-3].
    Some(Stat {
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        pgrp: f.get(2)?.parse().ok()?,
        start_time: f.get(19)?.parse().ok()?,
    })
}

impl ProcHandle {
    /// Records a process just started by firedrill.
    pub fn of_child(pid: i32, group_leader: bool) -> Result<Self, ProcError> {
        let st = read_stat(pid).ok_or(ProcError::NotOurs { pid })?;
        Ok(ProcHandle {
            pid,
            start_time: st.start_time,
            group_leader: group_leader && st.pgrp == pid,
        })
    }

    /// Reads the first line of a pid file (PostgreSQL's postmaster.pid
    /// starts with the pid). Used for endpoints the user declared.
    pub fn from_pid_file(path: &Path) -> Result<Self, ProcError> {
        let text = std::fs::read_to_string(path).map_err(|e| ProcError::PidFile {
            path: path.display().to_string(),
            msg: e.to_string(),
        })?;
        let pid: i32 = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .filter(|p| *p > 1)
            .ok_or_else(|| ProcError::PidFile {
                path: path.display().to_string(),
                msg: "first line is not a pid".into(),
            })?;
        let st = read_stat(pid).ok_or(ProcError::NotOurs { pid })?;
        // A process writes its pid file after it starts: one that started
        // after the file was last written is not the one it names (a stale
        // file left by a crash, its pid reused). 2 s of slack: the boot
        // time is in whole seconds.
        let written = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        if let (Some(written), Some(boot)) = (written, boot_time()) {
            if boot + st.start_time / clock_ticks() > written + 2 {
                return Err(ProcError::NotOurs { pid });
            }
        }
        Ok(ProcHandle {
            pid,
            start_time: st.start_time,
            group_leader: st.pgrp == pid,
        })
    }

    /// The postmaster of a PostgreSQL data directory, from its
    /// `postmaster.pid`, for servers a manager (Patroni) starts and may
    /// restart. A stale pid file after a crash may name a recycled pid, so
    /// the file's own start time (line 3, Unix seconds) must match the
    /// process's start time within 2 s, and the pid file must name this
    /// data directory (line 2): otherwise the pid is not that postmaster.
    pub fn from_postmaster_pid(data_dir: &Path) -> Result<Self, ProcError> {
        let path = data_dir.join("postmaster.pid");
        let bad = |msg: &str| ProcError::PidFile {
            path: path.display().to_string(),
            msg: msg.into(),
        };
        let text = std::fs::read_to_string(&path).map_err(|e| bad(&e.to_string()))?;
        let lines: Vec<&str> = text.lines().collect();
        let named = lines
            .get(1)
            .map(|l| Path::new(l.trim()))
            .ok_or_else(|| bad("no data directory line"))?;
        let same_dir = named == data_dir
            || matches!((named.canonicalize(), data_dir.canonicalize()), (Ok(a), Ok(b)) if a == b);
        if !same_dir {
            return Err(bad("names another data directory"));
        }
        let started: u64 = lines
            .get(2)
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| bad("no start time line"))?;
        let h = Self::from_pid_file(&path)?;
        let boot = boot_time().ok_or_else(|| bad("cannot read the boot time from /proc/stat"))?;
        let proc_start = boot + h.start_time / clock_ticks();
        if proc_start.abs_diff(started) > 2 {
            return Err(ProcError::NotOurs { pid: h.pid });
        }
        Ok(h)
    }

    /// The process is running (not exited, not a zombie) and is still the
    /// one recorded.
    pub fn is_alive(&self) -> bool {
        match read_stat(self.pid) {
            Some(st) => st.start_time == self.start_time && st.state != 'Z' && st.state != 'X',
            None => false,
        }
    }

    /// The process is stopped (SIGSTOP).
    pub fn is_stopped(&self) -> bool {
        matches!(read_stat(self.pid), Some(st) if st.start_time == self.start_time && st.state == 'T')
    }

    pub(crate) fn check(&self) -> Result<(), ProcError> {
        if self.is_alive() {
            Ok(())
        } else {
            Err(ProcError::NotOurs { pid: self.pid })
        }
    }

    /// Signals the process only.
    pub fn signal(&self, sig: Signal) -> Result<(), ProcError> {
        self.check()?;
        kill(Pid::from_raw(self.pid), sig).map_err(|source| ProcError::Signal {
            pid: self.pid,
            source,
        })
    }

    /// Waits until the process has exited; false on timeout.
    pub fn wait_exit(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if !self.is_alive() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        !self.is_alive()
    }
}

/// Unix time of the last boot (`btime` in /proc/stat).
/// Clock ticks per second of /proc start times (USER_HZ, 100 on Linux).
fn clock_ticks() -> u64 {
    // SAFETY: sysconf takes an integer name and has no other effect.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

fn boot_time() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The user servers run as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunAs {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
}

impl RunAs {
    /// When firedrill runs as root, servers must not: pick `wanted`, else
    /// `postgres` if it exists, else create a `firedrill` system user.
    /// Returns None when firedrill is not root (servers run as us).
    pub fn resolve(wanted: Option<&str>) -> Result<Option<RunAs>, ProcError> {
        if !Uid::effective().is_root() {
            return Ok(None);
        }
        let pick = |name: &str| -> Option<RunAs> {
            User::from_name(name).ok().flatten().map(|u| RunAs {
                user: name.to_string(),
                uid: u.uid.as_raw(),
                gid: u.gid.as_raw(),
            })
        };
        if let Some(w) = wanted {
            return pick(w).map(Some).ok_or_else(|| ProcError::User {
                user: w.into(),
                msg: "no such user".into(),
            });
        }
        if let Some(r) = pick("postgres") {
            return Ok(Some(r));
        }
        if let Some(r) = pick("firedrill") {
            return Ok(Some(r));
        }
        let st = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "firedrill",
            ])
            .status()
            .map_err(|e| ProcError::User {
                user: "firedrill".into(),
                msg: format!("useradd: {e}"),
            })?;
        if !st.success() {
            return Err(ProcError::User {
                user: "firedrill".into(),
                msg: format!("useradd exited with {st}"),
            });
        }
        pick("firedrill").map(Some).ok_or_else(|| ProcError::User {
            user: "firedrill".into(),
            msg: "created but not found".into(),
        })
    }

    pub fn uid(&self) -> Uid {
        Uid::from_raw(self.uid)
    }
    pub fn gid(&self) -> Gid {
        Gid::from_raw(self.gid)
    }

    /// Gives `path` (recursively) to this user.
    pub fn chown_tree(&self, path: &Path) -> Result<(), ProcError> {
        let io = |e: std::io::Error| ProcError::Io {
            path: path.display().to_string(),
            source: e,
        };
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid)).map_err(io)?;
        if path.is_dir() {
            for e in std::fs::read_dir(path).map_err(io)? {
                let e = e.map_err(io)?;
                self.chown_tree(&e.path())?;
            }
        }
        Ok(())
    }
}

/// Applies `run_as` to a command: it runs as that user with its groups.
pub fn as_user(cmd: &mut Command, run_as: Option<&RunAs>) {
    if let Some(r) = run_as {
        cmd.uid(r.uid).gid(r.gid);
        cmd.env("USER", &r.user).env("LOGNAME", &r.user);
        // HOME of root is not readable by the server user; psqlrc & co. must not matter.
        cmd.env("HOME", "/tmp");
    }
}

/// A server command: its own process group, stdin closed, output appended
/// to `log` (owned by the server's user so it can reopen it).
fn server_command(
    program: &Path,
    args: &[&str],
    run_as: Option<&RunAs>,
    log: &Path,
) -> Result<Command, ProcError> {
    let io = |source| ProcError::Io {
        path: log.display().to_string(),
        source,
    };
    let logf = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io)?;
    if let Some(r) = run_as {
        let _ = std::os::unix::fs::chown(log, Some(r.uid), Some(r.gid));
    }
    let err = logf.try_clone().map_err(io)?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(logf)
        .stderr(err)
        .process_group(0);
    Ok(cmd)
}

/// Spawns, records the handle, and leaves a thread to reap the child so it
/// never lingers as a zombie in a long-lived firedrill process.
fn start_recorded(mut cmd: Command, program: &Path) -> Result<ProcHandle, ProcError> {
    let mut child = cmd.spawn().map_err(|source| ProcError::Spawn {
        program: program.display().to_string(),
        source,
    })?;
    let handle = ProcHandle::of_child(child.id() as i32, true);
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    handle
}

/// Starts a long-lived server in its own process group, detached from our
/// stdio, with output appended to `log`. The returned handle is what every
/// later signal goes through.
pub fn spawn_server(
    program: &Path,
    args: &[&str],
    run_as: Option<&RunAs>,
    log: &Path,
) -> Result<ProcHandle, ProcError> {
    let mut cmd = server_command(program, args, run_as, log)?;
    as_user(&mut cmd, run_as);
    start_recorded(cmd, program)
}

/// Like [`spawn_server`], but the server runs inside the network namespace
/// at `netns_path` (e.g. `/var/run/netns/<name>`). The namespace file is
/// opened before the fork; the child joins it with `setns` and only then
/// drops privileges itself (setgroups, setgid, setuid): std's
/// `Command::uid` would drop root before `pre_exec` runs, and joining a
/// namespace needs root.
pub fn spawn_server_in_netns(
    program: &Path,
    args: &[&str],
    run_as: Option<&RunAs>,
    log: &Path,
    netns_path: &Path,
) -> Result<ProcHandle, ProcError> {
    use nix::sched::{setns, CloneFlags};
    use std::os::fd::AsFd;
    let ns = std::fs::File::open(netns_path).map_err(|source| ProcError::Io {
        path: netns_path.display().to_string(),
        source,
    })?;
    let mut cmd = server_command(program, args, run_as, log)?;
    let ids = run_as.map(|r| (r.uid(), r.gid()));
    if let Some(r) = run_as {
        cmd.env("USER", &r.user)
            .env("LOGNAME", &r.user)
            .env("HOME", "/tmp");
    }
    // SAFETY: the closure only makes raw system calls (setns, setgroups,
    // setgid, setuid) on values prepared before the fork; it allocates
    // nothing and takes no lock.
    unsafe {
        cmd.pre_exec(move || {
            setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
            if let Some((uid, gid)) = ids {
                nix::unistd::setgroups(&[gid]).map_err(std::io::Error::from)?;
                nix::unistd::setgid(gid).map_err(std::io::Error::from)?;
                nix::unistd::setuid(uid).map_err(std::io::Error::from)?;
            }
            Ok(())
        });
    }
    start_recorded(cmd, program)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper() -> ProcHandle {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let h = spawn_server(
            Path::new("/bin/sh"),
            &["-c", "sleep 30 & sleep 30; wait"],
            None,
            &log,
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        h
    }

    #[test]
    fn tree_kill_reaches_children() {
        let h = sleeper();
        assert!(h.is_alive());
        assert!(h.group_leader);
        let kids = descendants(h.pid);
        assert!(!kids.is_empty());
        h.signal_tree(Signal::SIGKILL).unwrap();
        assert!(h.wait_exit(Duration::from_secs(5)));
        std::thread::sleep(Duration::from_millis(100));
        for k in kids {
            assert!(read_stat(k).is_none_or(|s| s.state == 'Z' || s.pgrp != h.pid));
        }
    }

    #[test]
    fn stop_and_continue() {
        let h = sleeper();
        h.signal_tree(Signal::SIGSTOP).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(h.is_stopped());
        h.signal_tree(Signal::SIGCONT).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(!h.is_stopped());
        h.signal_tree(Signal::SIGKILL).unwrap();
    }

    #[test]
    fn pid_file_older_than_its_process_is_refused() {
        let h = sleeper();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.pid");
        std::fs::write(&path, format!("{}\n", h.pid)).unwrap();
        let read = ProcHandle::from_pid_file(&path).unwrap();
        assert_eq!((read.pid, read.start_time), (h.pid, h.start_time));
        // The same pid, in a file written an hour before the process
        // started: a stale file naming a reused pid.
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
        assert!(matches!(
            ProcHandle::from_pid_file(&path),
            Err(ProcError::NotOurs { .. })
        ));
        h.signal_tree(Signal::SIGKILL).unwrap();
    }

    #[test]
    fn reused_pid_is_refused() {
        let h = sleeper();
        let fake = ProcHandle {
            start_time: h.start_time + 1,
            ..h
        };
        assert!(!fake.is_alive());
        assert!(matches!(
            fake.signal(Signal::SIGKILL),
            Err(ProcError::NotOurs { .. })
        ));
        h.signal_tree(Signal::SIGKILL).unwrap();
    }

    /// Needs root and iproute2; skipped otherwise.
    #[test]
    fn server_runs_in_its_namespace_as_the_user() {
        if !Uid::effective().is_root()
            || Command::new("ip")
                .args(["netns", "add", "fdproc-test"])
                .status()
                .map(|s| !s.success())
                .unwrap_or(true)
        {
            eprintln!("skipping: needs root and `ip netns`");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let nobody = User::from_name("nobody").unwrap().unwrap();
        let ru = RunAs {
            user: "nobody".into(),
            uid: nobody.uid.as_raw(),
            gid: nobody.gid.as_raw(),
        };
        let h = spawn_server_in_netns(
            Path::new("/bin/sh"),
            &["-c", "id -u; readlink /proc/self/ns/net; sleep 30"],
            Some(&ru),
            &log,
            Path::new("/var/run/netns/fdproc-test"),
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let text = std::fs::read_to_string(&log).unwrap();
        let own = std::fs::read_link("/proc/self/ns/net").unwrap();
        h.signal_tree(Signal::SIGKILL).unwrap();
        let _ = Command::new("ip")
            .args(["netns", "del", "fdproc-test"])
            .status();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(ru.uid.to_string().as_str()), "{text}");
        let ns = lines.next().unwrap_or_default();
        assert!(ns.starts_with("net:["), "{text}");
        assert_ne!(ns, own.to_string_lossy(), "{text}");
    }
}
