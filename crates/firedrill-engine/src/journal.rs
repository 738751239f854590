//! The trial journal writer: every [`FLUSH_EVERY`] it appends the ops
//! completed since the last flush, new lag samples, the timeline when it
//! changed, and a liveness mark to `trial-<n>/journal.bin`
//! (`firedrill_ledger::journal`), so a SIGKILLed drill leaves its ledger.
//!
//! The workload's write path is untouched: ops go to the in-memory ledger
//! as before and the flusher copies the new tail under the lock. One
//! `fdatasync` per flush, on the blocking pool, so the one-threaded
//! runtime never waits for the disk; never one per op.

use crate::audit::TrialFiles;
use crate::trial::{lock, Shared};
use firedrill_ledger::journal::{frame, header, Mark, Record, StartInfo};
use firedrill_ledger::Timeline;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How often the journal is appended to: the most a kill can lose.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// File name inside `trial-<n>/`.
pub const JOURNAL_FILE: &str = "journal.bin";

/// The open journal and how much of the trial it already holds.
pub(crate) struct JournalWriter {
    file: std::fs::File,
    ops_done: usize,
    lag_done: usize,
    last_timeline: Vec<u8>,
    /// Set after a write failed: warned once, then the drill goes on
    /// without a journal rather than fail for it.
    broken: bool,
}

impl JournalWriter {
    /// Creates the journal with its header and start record, synced: a
    /// journal that exists names its run id.
    pub(crate) fn create(run_dir: &Path, start: StartInfo) -> std::io::Result<JournalWriter> {
        let dir = TrialFiles::dir(run_dir, start.trial);
        std::fs::create_dir_all(&dir)?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(dir.join(JOURNAL_FILE))?;
        let mut buf = header();
        buf.extend(frame(&Record::Start(start).encode()));
        file.write_all(&buf)?;
        file.sync_data()?;
        Ok(JournalWriter {
            file,
            ops_done: 0,
            lag_done: 0,
            last_timeline: Vec::new(),
            broken: false,
        })
    }
}

/// Appends what is new since the last flush. Returns a handle to sync, so
/// the caller syncs without holding the writer.
fn append(sh: &Shared, w: &mut JournalWriter) -> Option<std::fs::File> {
    if w.broken {
        return None;
    }
    let ops = {
        let l = lock(&sh.ledger);
        l.get(w.ops_done..).map(<[_]>::to_vec).unwrap_or_default()
    };
    let (lag, tl) = {
        let mut tl = lock(&sh.timeline);
        let lag = tl
            .lag_samples
            .get(w.lag_done..)
            .map(<[_]>::to_vec)
            .unwrap_or_default();
        // Cloned without its lag samples: they are journaled as a tail.
        let all = std::mem::take(&mut tl.lag_samples);
        let bare: Timeline = tl.clone();
        tl.lag_samples = all;
        (lag, bare)
    };
    let mut buf = Vec::new();
    if !ops.is_empty() {
        buf.extend(frame(&Record::Ops(ops.clone()).encode()));
    }
    if !lag.is_empty() {
        buf.extend(frame(&Record::Lag(lag.clone()).encode()));
    }
    let tl_rec = Record::Timeline(Box::new(tl)).encode();
    let tl_changed = tl_rec != w.last_timeline;
    if tl_changed {
        buf.extend(frame(&tl_rec));
    }
    let mark = Mark {
        t_us: sh.now(),
        phase: lock(&sh.phase_now).clone(),
        issued: sh.next_seq.load(Ordering::Relaxed).saturating_sub(1),
    };
    buf.extend(frame(&Record::Mark(mark).encode()));
    if let Err(e) = w.file.write_all(&buf) {
        w.broken = true;
        sh.warn(format!(
            "the crash-safe journal could not be written ({e}); the drill goes on, but a kill would lose its ledger"
        ));
        return None;
    }
    w.ops_done += ops.len();
    w.lag_done += lag.len();
    if tl_changed {
        w.last_timeline = tl_rec;
    }
    w.file.try_clone().ok()
}

/// One flush: append, then `fdatasync` on the blocking pool.
pub(crate) async fn flush(sh: &Shared) {
    let file = {
        let mut g = lock(&sh.journal_writer);
        match g.as_mut() {
            Some(w) => append(sh, w),
            None => None,
        }
    };
    if let Some(f) = file {
        let _ = tokio::task::spawn_blocking(move || f.sync_data()).await;
    }
}

/// Flushes every [`FLUSH_EVERY`] until the trial's tasks are aborted.
pub(crate) fn spawn_flusher(sh: &Arc<Shared>) {
    let task_sh = sh.clone();
    sh.spawn(async move {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            flush(&task_sh).await;
        }
    });
}
