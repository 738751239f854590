//! Restore tests, read from the run history: a backup is proven only by
//! restoring it, so the age of the newest restore test that passed is an
//! indicator like a backup's age, and a stale one alerts like a stale
//! backup.
//!
//! `[domain.restore_test]` names the drills that are the domain's restore
//! tests (default `<domain>-restore-test`) and how old the newest passing
//! one may get (`max_age`, default 7 days). The watcher re-reads the
//! history every [`REFRESH`] (or interval, if longer) through a
//! [`RestoreHistory`] the binary gives it (the history database is the
//! report crate's), and exports per domain:
//! - `firedrill_restore_test_age_seconds`: now − the start of the newest
//!   passing restore test; `+Inf` when none passed (never a zero);
//! - `firedrill_restore_test_duration_seconds`: that test's restore
//!   duration (its RTO: from the restore's start until the restored
//!   server accepted writes);
//! - `firedrill_restore_test_max_age_seconds`: the threshold of
//!   `FiredrillRestoreTestStale`.

use crate::config::Loaded;
use firedrill_spec::{Diagnostic, Dur};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

/// How often the history is read again.
pub const REFRESH: Duration = Duration::from_secs(5);
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 86400);

/// `[domain.restore_test]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreTestSpec {
    /// The drills whose runs are this domain's restore tests.
    pub drills: Option<Spanned<Vec<Spanned<String>>>>,
    /// How old the newest passing one may be (default 7d).
    pub max_age: Option<Spanned<Dur>>,
}

/// The validated table.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreTestPlan {
    pub drills: Vec<String>,
    pub max_age: Duration,
}

/// The newest passing restore test of a domain, as the history has it.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreTestSeen {
    /// Unix seconds when its run started.
    pub started_unix: f64,
    /// Its restore's duration (the slowest trial's), when it recorded one.
    pub duration_s: Option<f64>,
    pub run_dir: String,
}

/// Reads the run history: the newest passing run of any of `drills` that
/// restored (a restore test).
pub trait RestoreHistory: Send + Sync {
    fn newest_pass(&self, drills: &[String]) -> Result<Option<RestoreTestSeen>, String>;
}

/// A [`RestoreHistory`] a plan can carry.
#[derive(Clone)]
pub struct HistoryHandle(pub Arc<dyn RestoreHistory>);

impl std::fmt::Debug for HistoryHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RestoreHistory")
    }
}

/// What the board keeps per domain.
#[derive(Debug, Clone, Default)]
pub struct RestoreTestState {
    /// The history was read at least once.
    pub read: bool,
    pub newest: Option<RestoreTestSeen>,
    pub last_error: Option<String>,
}

pub(crate) fn validate(
    l: &Loaded,
    domain: &str,
    s: &RestoreTestSpec,
    out: &mut Vec<Diagnostic>,
) -> RestoreTestPlan {
    let drills = match &s.drills {
        Some(d) => {
            if d.get_ref().is_empty() {
                out.push(l.at(d.span(), "drills is empty: name the restore test drills"));
            }
            d.get_ref().iter().map(|x| x.get_ref().clone()).collect()
        }
        None => vec![format!("{domain}-restore-test")],
    };
    let max_age = match &s.max_age {
        Some(m) if m.get_ref().0 < Duration::from_secs(60) => {
            out.push(l.at(m.span(), "max_age must be at least 1m"));
            m.get_ref().0
        }
        Some(m) => m.get_ref().0,
        None => DEFAULT_MAX_AGE,
    };
    RestoreTestPlan { drills, max_age }
}

/// The age at `now_unix` of the newest passing test; `+Inf` without one.
pub fn age(state: &RestoreTestState, now_unix: f64) -> f64 {
    match &state.newest {
        Some(s) => (now_unix - s.started_unix).max(0.0),
        None => f64::INFINITY,
    }
}

/// Reads the history for every domain that has restore tests, now and
/// then every `every`, into the board.
pub(crate) async fn refresh(
    plan: Arc<crate::Plan>,
    board: Arc<std::sync::Mutex<crate::board::Board>>,
    every: Duration,
) {
    let Some(h) = plan.restore_history.clone() else {
        return;
    };
    loop {
        for (i, dom) in plan.domains.iter().enumerate() {
            let Some(rt) = &dom.restore_test else {
                continue;
            };
            let (h, drills) = (h.clone(), rt.drills.clone());
            let r = tokio::task::spawn_blocking(move || h.0.newest_pass(&drills))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            let mut b = board.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(d) = b.domains.get_mut(i) {
                match r {
                    Ok(n) => {
                        d.restore_test.read = true;
                        d.restore_test.newest = n;
                        d.restore_test.last_error = None;
                    }
                    Err(e) => d.restore_test.last_error = Some(e),
                }
            }
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_passing_test_is_infinitely_old() {
        let s = RestoreTestState::default();
        assert_eq!(age(&s, 1000.0), f64::INFINITY);
        let s = RestoreTestState {
            read: true,
            newest: Some(RestoreTestSeen {
                started_unix: 400.0,
                duration_s: Some(3.0),
                run_dir: "r".into(),
            }),
            last_error: None,
        };
        assert_eq!(age(&s, 1000.0), 600.0);
    }
}
