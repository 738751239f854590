//! `[lab.backup] tool = "pgbackrest"`: WAL archived by pgBackRest into a
//! repository in the lab directory, a full backup at `lab up`, and the
//! in-place restore a data disaster's `restore` recovery runs.
//!
//! pgBackRest never starts PostgreSQL, so the restore's phases are clean:
//! `fetch` ends when `pgbackrest restore` returns, `replay` when the
//! server logs `redo done`, `promote` when it accepts writes.

use super::config::{BackupSpec, BackupTool, PgLab};
use super::lab::{start_node, tools};
use super::tools::Tools;
use firedrill_lab::{LabError, LabState, NodeState};
use firedrill_targets::{RestoreInto, RestorePoint, RestoreReport, RestoreRequest, TargetError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The lab's one stanza.
pub(crate) const STANZA: &str = "firedrill";
const RESTORE_LIMIT: Duration = Duration::from_secs(120);

fn pgbackrest_dir() -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p).find(|d| d.join("pgbackrest").is_file())
        })
        .unwrap_or_else(|| PathBuf::from("/usr/bin"))
}

fn conf_path(dir: &Path) -> PathBuf {
    dir.join("backup").join("pgbackrest.conf")
}

/// The postgresql.conf lines a backup lab adds: pgBackRest archives the WAL,
/// and `archive_timeout` bounds how old unarchived WAL gets.
/// With `basebackup`, the lab's own `archive_command` (a copy into its
/// `archive/` directory) is the archive.
pub(crate) fn archive_settings(state: &LabState, b: &BackupSpec) -> String {
    let push = match b.tool() {
        BackupTool::PgBackRest => format!(
            "archive_command = 'pgbackrest --config={} --stanza={STANZA} archive-push %p'\n",
            conf_path(&state.dir).to_string_lossy().replace('\'', "''"),
        ),
        BackupTool::BaseBackup => String::new(),
    };
    format!(
        "{push}archive_timeout = {}s\n",
        b.archive_timeout().as_secs().max(1),
    )
}

pub(crate) fn pgbackrest(state: &LabState, args: &[&str]) -> Result<String, LabError> {
    let bin = pgbackrest_dir();
    let conf = format!("--config={}", conf_path(&state.dir).display());
    let stanza = format!("--stanza={STANZA}");
    let mut all = vec![conf.as_str(), stanza.as_str()];
    all.extend_from_slice(args);
    Tools {
        bin: &bin,
        run_as: state.run_as.as_ref(),
        cwd: &state.dir,
    }
    .run("pgbackrest", &all)
}

/// The repository and its configuration, the stanza, and a full backup of
/// the running primary. Called once the primary is up, before standbys.
pub(crate) fn setup(state: &LabState, progress: &mut dyn FnMut(&str)) -> Result<(), LabError> {
    // The drill's tables predate the backup, as an application's schema
    // predates its backups: a restore that loses the run's writes still
    // finds the tables to take new ones.
    let n1 = &state.nodes[0];
    let t = tools(state);
    for stmt in super::target::SCHEMA.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        t.psql(&n1.host, n1.port, stmt)?;
    }
    match enabled(state).map(|b| b.tool()) {
        Some(BackupTool::BaseBackup) => super::basebackup::setup(state, progress),
        _ => setup_pgbackrest(state, progress),
    }
}

fn setup_pgbackrest(state: &LabState, progress: &mut dyn FnMut(&str)) -> Result<(), LabError> {
    let b = state.dir.join("backup");
    for d in ["repo", "log", "lock", "spool"] {
        let p = b.join(d);
        std::fs::create_dir_all(&p).map_err(LabError::io(&p))?;
    }
    let n1 = &state.nodes[0];
    let conf = format!(
        "[global]\n\
         repo1-path={b}/repo\n\
         log-path={b}/log\n\
         lock-path={b}/lock\n\
         spool-path={b}/spool\n\
         start-fast=y\n\
         log-level-console=warn\n\
         log-level-file=info\n\
         \n\
         [{STANZA}]\n\
         pg1-path={data}\n\
         pg1-port={port}\n\
         pg1-socket-path={run}\n",
        b = b.display(),
        data = n1.data_dir.display(),
        port = n1.port,
        run = state.dir.join("run").display(),
    );
    let path = conf_path(&state.dir);
    std::fs::write(&path, conf).map_err(LabError::io(&path))?;
    if let Some(ru) = &state.run_as {
        ru.chown_tree(&b)?;
    }
    progress("pgBackRest: stanza-create");
    pgbackrest(state, &["stanza-create"])?;
    progress("pgBackRest: full backup of the primary");
    pgbackrest(state, &["--type=full", "backup"])?;
    Ok(())
}

/// Whether the lab takes backups.
pub(crate) fn enabled(state: &LabState) -> Option<BackupSpec> {
    PgLab::of(&state.spec).backup
}

/// For `lab status`: the newest backup and its age, and the archive's
/// last segment and how long ago it was archived (the restore's RPO bound
/// without a flush). Blocking.
pub(crate) fn status_note(state: &LabState) -> Option<String> {
    let tool = enabled(state)?.tool();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let backup = match tool {
        BackupTool::BaseBackup => super::basebackup::status(state, now),
        BackupTool::PgBackRest => match pgbackrest(state, &["--output=json", "info"]) {
            Ok(json) => match super::pgbackrest::newest_backup(&json, STANZA) {
                Ok(Some(b)) => format!("backup {} ({} s old)", b.label, now - b.stop),
                Ok(None) => "no usable backup".into(),
                Err(e) => e.to_string(),
            },
            Err(e) => format!("pgbackrest info failed: {e}"),
        },
    };
    let n1 = &state.nodes[0];
    let archive = tools(state)
        .psql(
            &n1.host,
            n1.port,
            "SELECT coalesce(last_archived_wal, '-') || ' ' || coalesce(round(extract(epoch FROM now() - last_archived_time))::text, '-') FROM pg_stat_archiver",
        )
        .ok()
        .and_then(|s| {
            let (seg, age) = s.split_once(' ')?;
            Some(format!("archived {seg} ({age} s ago)"))
        })
        .unwrap_or_else(|| "archive: primary not answering".into());
    Some(format!("{backup}; {archive}"))
}

/// Restores a PostgreSQL lab's node from its backups (pgBackRest's
/// repository, or the base backup and the archive directory).
pub struct PgRestorer {
    /// The lab directory: the state is read from state.json at each
    /// restore (a reset between trials changes pids and ports).
    pub dir: PathBuf,
    /// Held for the whole of a restore, so a teardown waits for one still
    /// running (an aborted trial's) instead of racing its server's start.
    pub busy: Arc<Mutex<()>>,
}

#[async_trait::async_trait]
impl firedrill_targets::Restorer for PgRestorer {
    async fn restore(
        &self,
        node: &str,
        req: &RestoreRequest,
    ) -> Result<RestoreReport, TargetError> {
        let (dir, node, req) = (self.dir.clone(), node.to_string(), req.clone());
        let busy = self.busy.clone();
        tokio::task::spawn_blocking(move || {
            let _held = busy.lock().unwrap_or_else(|p| p.into_inner());
            match req.into {
                RestoreInto::InPlace => restore_in_place(&dir, &node, &req),
                RestoreInto::NewNode => super::scratch::restore_new_node(&dir, &node, &req),
            }
        })
        .await
        .map_err(|e| TargetError::Other(e.to_string()))?
    }

    async fn discard_all(&self) -> Result<Vec<String>, TargetError> {
        let dir = self.dir.clone();
        let busy = self.busy.clone();
        tokio::task::spawn_blocking(move || {
            let _held = busy.lock().unwrap_or_else(|p| p.into_inner());
            super::scratch::discard_all(&dir).map_err(|e| TargetError::Other(e.to_string()))
        })
        .await
        .map_err(|e| TargetError::Other(e.to_string()))?
    }

    async fn needed_segment(
        &self,
        node: &str,
    ) -> Result<firedrill_targets::ArchivedSegment, TargetError> {
        let (dir, node) = (self.dir.clone(), node.to_string());
        tokio::task::spawn_blocking(move || super::archive::needed_segment(&dir, &node))
            .await
            .map_err(|e| TargetError::Other(e.to_string()))?
    }

    async fn check(&self) -> Option<firedrill_ledger::BackupCheck> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || super::archive::verify(&dir))
            .await
            .ok()
            .flatten()
    }
}

pub(crate) fn err(node: &str, e: impl std::fmt::Display) -> TargetError {
    TargetError::Node {
        node: node.into(),
        msg: e.to_string(),
    }
}

/// Flush (optional), stop the node, `pgbackrest restore --delta` to the
/// target, start it, and wait until it has replayed and promoted.
fn restore_in_place(dir: &Path, node: &str, req: &RestoreRequest) -> Result<RestoreReport, TargetError> {
    let mut state = LabState::load(dir).map_err(|e| err(node, e))?;
    let i = state
        .nodes
        .iter()
        .position(|n| n.name == node)
        .ok_or_else(|| err(node, "no such node in the lab"))?;
    let mut report = RestoreReport::default();
    if req.flush_archive {
        flush_archive(&state, i).map_err(|e| err(node, e))?;
        report.flushed = Some(Instant::now());
    }
    let n = state.nodes[i].clone();
    if let Some(p) = n.proc.filter(|p| p.is_alive()) {
        // The data directory is about to be overwritten: nothing to keep.
        p.signal_tree(nix::sys::signal::Signal::SIGKILL)
            .map_err(|e| err(node, e))?;
        if !p.wait_exit(Duration::from_secs(10)) {
            return Err(err(node, format!("pid {} survived SIGKILL", p.pid)));
        }
        // The recorded postmaster and its children are gone (checked just
        // above), so its pid file is stale; pgBackRest refuses to restore
        // over it.
        // Its socket lock file too: PostgreSQL refuses to start over one
        // whose pid is alive, and a killed postmaster's pid may already
        // belong to another process.
        let run = state.dir.join("run");
        for stale in [
            n.data_dir.join("postmaster.pid"),
            run.join(format!(".s.PGSQL.{}.lock", n.port)),
            run.join(format!(".s.PGSQL.{}", n.port)),
        ] {
            if stale.exists() {
                std::fs::remove_file(&stale).map_err(|e| err(node, e))?;
            }
        }
    }
    report.tool_target = fetch(&state, &n.data_dir, &req.point, true).map_err(|e| err(node, e))?;
    report.fetched = Some(Instant::now());
    let log_from = std::fs::metadata(&n.log_file).map(|m| m.len()).unwrap_or(0);
    start_node(&mut state, i).map_err(|e| err(node, e))?;
    await_promotion(&state, &state.nodes[i], log_from, req, &mut report)?;
    Ok(report)
}

/// Puts the lab's backup into `data` with the recovery settings for
/// `point` (`over`: `data` holds the old server's files), by the lab's
/// tool; returns how the tool was told the target.
pub(crate) fn fetch(
    state: &LabState,
    data: &Path,
    point: &RestorePoint,
    over: bool,
) -> Result<String, LabError> {
    if enabled(state).map(|b| b.tool()) == Some(BackupTool::BaseBackup) {
        return super::basebackup::fetch(state, data, point);
    }
    let target: Vec<String> = match point {
        RestorePoint::BeforeXid(x) => vec![
            "--type=xid".into(),
            format!("--target={x}"),
            "--target-exclusive".into(),
        ],
        RestorePoint::Time(t) => vec!["--type=time".into(), format!("--target={t}")],
        RestorePoint::Latest => vec!["--type=default".into()],
    };
    let path = format!("--pg1-path={}", data.display());
    let mut args: Vec<&str> = target.iter().map(String::as_str).collect();
    if *point != RestorePoint::Latest {
        // At the end of the archive the server promotes by itself; a point
        // target needs telling (pgBackRest refuses the option otherwise).
        args.push("--target-action=promote");
    }
    if over {
        args.push("--delta");
    }
    args.extend([
        path.as_str(),
        "--target-timeline=current",
        "--archive-mode=off",
        "restore",
    ]);
    pgbackrest(state, &args)?;
    Ok(target.join(" "))
}

/// `pg_switch_wal()`, then waits until the archiver has that segment.
pub(crate) fn flush_archive(state: &LabState, i: usize) -> Result<(), LabError> {
    let n = &state.nodes[i];
    let t = tools(state);
    let seg = t.psql(&n.host, n.port, "SELECT pg_walfile_name(pg_switch_wal())")?;
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let last = t.psql(
            &n.host,
            n.port,
            "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver",
        )?;
        if last.as_str() >= seg.as_str() {
            return Ok(());
        }
        if Instant::now() > end {
            return Err(LabError::Replication(format!(
                "segment {seg} not archived within 30 s (last archived: {last:?})"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Follows the server's log from `from` until it promotes or gives up, and
/// decides from its own words whether it reached the target.
pub(crate) fn await_promotion(
    state: &LabState,
    n: &NodeState,
    from: u64,
    req: &RestoreRequest,
    report: &mut RestoreReport,
) -> Result<(), TargetError> {
    let t = tools(state);
    let end = Instant::now() + RESTORE_LIMIT;
    loop {
        let log = read_from(&n.log_file, from);
        if report.replayed.is_none() && log.contains("redo done at") {
            report.replayed = Some(Instant::now());
        }
        // The server gives up by exiting (e.g. "recovery ended before
        // configured recovery target was reached"); clients refused while
        // it starts are FATALs too, so the exit decides, not the word.
        if !n.proc.is_some_and(|p| p.is_alive()) {
            report.reached = false;
            report.detail = exit_reason(&log);
            return Ok(());
        }
        // Asked only once redo is over: it cannot have promoted before, and
        // a connection (a psql and a backend) every 50 ms would take CPU
        // from the replay being timed.
        let redo_over = report.replayed.is_some() || log.contains("redo is not required");
        let primary = redo_over
            && t.psql(&n.host, n.port, "SELECT pg_is_in_recovery()")
                .is_ok_and(|s| s == "f");
        if primary {
            report.promoted = Some(Instant::now());
            report.replayed.get_or_insert(Instant::now());
            let log = read_from(&n.log_file, from);
            let (reached, detail) = judge(&log, &req.point);
            report.reached = reached;
            report.detail = detail;
            return Ok(());
        }
        if Instant::now() > end {
            return Err(err(
                &n.name,
                format!("not promoted within {} s of the restore", RESTORE_LIMIT.as_secs()),
            ));
        }
        // Once redo is over, promotion is a matter of milliseconds: look
        // often, so the restore's end is not a poll late.
        std::thread::sleep(Duration::from_millis(if redo_over { 10 } else { 50 }));
    }
}

/// Why a restoring server exited, in its own words: its FATAL or PANIC
/// line about recovery, else the last one that is not a refused client.
fn exit_reason(log: &str) -> String {
    let fatal: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("FATAL") || l.contains("PANIC"))
        .filter(|l| !l.contains("the database system is starting up"))
        .filter(|l| !l.contains("not yet accepting connections"))
        .collect();
    fatal
        .iter()
        .find(|l| l.contains("recovery"))
        .or(fatal.last())
        .map(|l| format!("the server exited: {}", l.trim()))
        .unwrap_or_else(|| "the server exited during recovery".into())
}

fn read_from(path: &Path, from: u64) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let from = usize::try_from(from).unwrap_or(0).min(text.len());
    String::from_utf8_lossy(&text[from..]).into_owned()
}

/// Whether the log of a promoted restore says it stopped where asked: a
/// point target needs the server's "recovery stopping before/after" line
/// (without it the server ran out of WAL first); `latest` needs the end
/// of archive recovery. The detail quotes the server.
pub(crate) fn judge(log: &str, point: &RestorePoint) -> (bool, String) {
    let line = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle))
            .map(|l| l.trim().to_string())
    };
    let last = line("last completed transaction was at log time");
    let stop = line("recovery stopping");
    let with_last = |s: String| match &last {
        Some(l) => format!("{s}; {l}"),
        None => s,
    };
    match point {
        RestorePoint::BeforeXid(x) => {
            let want = format!("recovery stopping before commit of transaction {x},");
            match line(&want) {
                Some(s) => (true, with_last(s)),
                None => (
                    false,
                    with_last(format!(
                        "the server never logged \"{}\"{}",
                        want.trim_end_matches(','),
                        stop.map(|s| format!(" (it logged: {s})")).unwrap_or_default()
                    )),
                ),
            }
        }
        RestorePoint::Time(_) => match stop {
            Some(s) => (true, with_last(s)),
            None => (
                false,
                with_last("the server never logged \"recovery stopping\"".into()),
            ),
        },
        RestorePoint::Latest => match line("archive recovery complete") {
            Some(s) => (true, with_last(s)),
            None => (false, "no \"archive recovery complete\" in the server's log".into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_the_servers_words() {
        let ok = "LOG:  starting point-in-time recovery to XID 925\n\
                  LOG:  recovery stopping before commit of transaction 925, time 2026-12-01 10:00:00\n\
                  LOG:  last completed transaction was at log time 2026-12-01 09:59:59\n";
        let (r, d) = judge(ok, &RestorePoint::BeforeXid(925));
        assert!(r, "{d}");
        assert!(d.contains("transaction 925") && d.contains("last completed"), "{d}");
        // The xid must match exactly: 92 is a prefix of 925.
        let (r, d) = judge(ok, &RestorePoint::BeforeXid(92));
        assert!(!r, "{d}");
        let (r, _) = judge("LOG:  redo done at 0/3000028\n", &RestorePoint::BeforeXid(925));
        assert!(!r);
        let (r, _) = judge("LOG:  archive recovery complete\n", &RestorePoint::Latest);
        assert!(r);
    }
}
