//! `watch`, `rules` and `status`: live RPO exposure from an objectives file.

use crate::Failure;
use firedrill_watch::restore_test::{HistoryHandle, RestoreHistory, RestoreTestSeen};
use firedrill_watch::WatchError;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Validates the objectives file against the kinds of store this build
/// has; the plan then holds each domain's store, so serving, the rules and
/// the status table need nothing more.
fn load(file: &Path) -> Result<firedrill_watch::Plan, Failure> {
    let mut plan =
        firedrill_watch::load(firedrill_stores::watch_kinds(), file).map_err(|e| match e {
            WatchError::Read { .. } | WatchError::Invalid(_) => Failure::input(e.to_string()),
            other => Failure::internal(other.to_string()),
        })?;
    plan.restore_history = Some(HistoryHandle(Arc::new(HistoryReader(
        crate::runs::history_path(),
    ))));
    Ok(plan)
}

/// The run history as watch reads it: the newest passing restore test.
struct HistoryReader(PathBuf);

impl RestoreHistory for HistoryReader {
    fn newest_pass(&self, drills: &[String]) -> Result<Option<RestoreTestSeen>, String> {
        // No history yet: nothing was ever restored (it is not created here).
        if !self.0.exists() {
            return Ok(None);
        }
        let h = firedrill_report::History::open(&self.0).map_err(|e| e.to_string())?;
        let Some(row) = h.newest_restore_test(drills).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let started = humantime::parse_rfc3339(&row.started_at)
            .map_err(|e| format!("run {}: started_at {:?}: {e}", row.run_dir, row.started_at))?;
        Ok(Some(RestoreTestSeen {
            started_unix: started
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            duration_s: row.restore_s,
            run_dir: row.run_dir,
        }))
    }
}

/// Serves until SIGINT or SIGTERM.
pub async fn watch(file: &Path, listen: Option<SocketAddr>) -> Result<u8, Failure> {
    let plan = load(file)?;
    let addr = listen.unwrap_or(plan.settings.listen);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Failure::internal(e.to_string()))?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    };
    eprintln!(
        "firedrill watch: {} domain(s), every {:?}, metrics on http://{addr}/metrics",
        plan.domains.len(),
        plan.settings.interval
    );
    firedrill_watch::serve(plan, addr, shutdown)
        .await
        .map(|_| 0)
        .map_err(|e| match e {
            WatchError::Listen { .. } => Failure::input(e.to_string()),
            other => Failure::aborted(other.to_string()),
        })
}

/// Writes the rule groups to `out`, or stdout.
pub fn rules(file: &Path, out: Option<&Path>) -> Result<u8, Failure> {
    let plan = load(file)?;
    let text = firedrill_watch::rules::render(&plan);
    match out {
        Some(p) => std::fs::write(p, text)
            .map_err(|e| Failure::internal(format!("cannot write {}: {e}", p.display())))?,
        None => print!("{text}"),
    }
    Ok(0)
}

/// Exit 0 when every exposure is within its objective and observed, 1 otherwise.
pub async fn status(file: &Path) -> Result<u8, Failure> {
    let plan = load(file)?;
    let settle = plan.settings.interval.min(Duration::from_secs(1));
    let (table, ok) = firedrill_watch::status_once(&plan, settle).await;
    print!("{table}");
    Ok(if ok { 0 } else { 1 })
}
