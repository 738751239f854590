//! A node's process tree: what a crash, a pause or a resume must reach.
//!
//! The process group alone is not the tree. PostgreSQL's postmaster children
//! (backends, walsenders, the walwriter) each call `setsid()`, so a group
//! signal to a postmaster reaches the postmaster only: its backends go on
//! committing client writes until they notice it is gone, and a drill would
//! count those acknowledged, lost writes as zombies. The tree is therefore
//! the recorded process, its group's members when it leads one, and every
//! descendant of those by parent pid, each recorded with its start time.

use crate::{read_stat, ProcError, ProcHandle};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

/// Rounds of stop-and-collect before a kill: a stopped process cannot fork,
/// so the set stops growing once every member is stopped.
const FREEZE_ROUNDS: usize = 6;

/// (pid, ppid, pgrp, start time) of every live process.
fn snapshot() -> Vec<(i32, i32, i32, u64)> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter_map(|pid| {
            let st = read_stat(pid)?;
            (st.state != 'Z' && st.state != 'X').then_some((pid, st.ppid, st.pgrp, st.start_time))
        })
        .collect()
}

/// All descendants of `root`, by walking /proc parent links.
pub fn descendants(root: i32) -> Vec<i32> {
    let all = snapshot();
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(c, pp, _, _) in &all {
            if pp == p && !out.contains(&c) {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}

impl ProcHandle {
    /// The other live processes of the tree (the recorded one excluded):
    /// group members when it leads a group, and descendants of it and of
    /// them by parent pid. Empty when the recorded process is gone and its
    /// group is empty (orphans are reparented and cannot be found).
    pub fn tree(&self) -> Vec<ProcHandle> {
        let all = snapshot();
        let mut out: Vec<ProcHandle> = Vec::new();
        let mut frontier = vec![self.pid];
        if self.group_leader {
            for &(pid, _, pgrp, start) in &all {
                if pgrp == self.pid && pid != self.pid {
                    out.push(member(pid, start));
                    frontier.push(pid);
                }
            }
        }
        while let Some(p) = frontier.pop() {
            for &(c, pp, _, start) in &all {
                if pp == p && c != self.pid && !out.iter().any(|h| h.pid == c) {
                    out.push(member(c, start));
                    frontier.push(c);
                }
            }
        }
        out
    }

    /// Some process of the tree still runs. A crash is in effect only when
    /// this is false: a backend that outlives its postmaster can still
    /// answer a client.
    pub fn tree_alive(&self) -> bool {
        self.is_alive() || self.tree().iter().any(ProcHandle::is_alive)
    }

    /// Signals the whole tree, the recorded process first (for SIGSTOP and
    /// SIGKILL it then cannot fork or restart children in between).
    pub fn signal_tree(&self, sig: Signal) -> Result<(), ProcError> {
        self.check()?;
        let members = self.tree();
        self.signal_root(sig)?;
        for m in &members {
            m.signal_quiet(sig);
        }
        Ok(())
    }

    /// SIGKILL to the whole tree as at one instant, as in a machine crash:
    /// the tree is stopped first (round by round until no member forked a
    /// new one), then every member is killed. Returns every process killed,
    /// the recorded one first, so the caller can wait for all of them.
    pub fn kill_tree(&self) -> Result<Vec<ProcHandle>, ProcError> {
        self.check()?;
        self.signal_root(Signal::SIGSTOP)?;
        let mut members: Vec<ProcHandle> = Vec::new();
        for _ in 0..FREEZE_ROUNDS {
            wait_stopped(std::iter::once(self).chain(&members));
            let now = self.tree();
            let grew = now.iter().any(|h| !members.contains(h));
            for h in now {
                if !members.contains(&h) {
                    h.signal_quiet(Signal::SIGSTOP);
                    members.push(h);
                }
            }
            if !grew {
                break;
            }
        }
        self.signal_root(Signal::SIGKILL)?;
        for m in &members {
            m.signal_quiet(Signal::SIGKILL);
        }
        let mut all = vec![*self];
        all.extend(members);
        Ok(all)
    }

    /// The recorded process (and its group, when it leads one).
    fn signal_root(&self, sig: Signal) -> Result<(), ProcError> {
        let err = |source| ProcError::Signal {
            pid: self.pid,
            source,
        };
        if self.group_leader {
            killpg(Pid::from_raw(self.pid), sig).map_err(err)
        } else {
            kill(Pid::from_raw(self.pid), sig).map_err(err)
        }
    }

    /// A tree member that exited meanwhile is not an error; one whose pid
    /// was reused is not signalled.
    fn signal_quiet(&self, sig: Signal) {
        if self.is_alive() {
            let _ = kill(Pid::from_raw(self.pid), sig);
        }
    }
}

fn member(pid: i32, start_time: u64) -> ProcHandle {
    ProcHandle {
        pid,
        start_time,
        group_leader: false,
    }
}

/// Waits (briefly) until every live process is stopped; a process in
/// uninterruptible sleep stops late, and the kill that follows reaches it
/// anyway.
fn wait_stopped<'a>(hs: impl Iterator<Item = &'a ProcHandle> + Clone) {
    let end = Instant::now() + Duration::from_millis(200);
    while Instant::now() < end {
        if hs.clone().all(|h| !h.is_alive() || h.is_stopped()) {
            return;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}
