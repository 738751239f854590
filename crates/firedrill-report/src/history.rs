//! The run history: an embedded SQLite database indexing every run, so
//! `firedrill runs` can list them and show how RPO and RTO moved over time.
//!
//! Several drills may finish at the same moment (parallel CI jobs on one
//! machine, two terminals), each in its own process. The database is in WAL
//! mode, waits for locks (`busy_timeout`) instead of failing, and every
//! write is one `BEGIN IMMEDIATE` transaction, so a writer takes the write
//! lock before it reads and two recorders never deadlock or interleave.
//! Runs are keyed by their directory: recording a run again replaces it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use firedrill_ledger::Verdict;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use crate::record::RunRecord;
use crate::ReportError;

/// File name inside the state directory.
pub const HISTORY_FILE: &str = "history.sqlite";

/// Bumped when the tables change; older files are migrated on open.
/// 2 added a trial's restore: `restore_s` and `restore_test`.
const SCHEMA: i64 = 2;

/// How long a writer waits for another one before giving up.
const BUSY: Duration = Duration::from_secs(30);

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id                INTEGER PRIMARY KEY,
    run_dir           TEXT NOT NULL UNIQUE,
    drill             TEXT NOT NULL,
    started_at        TEXT NOT NULL,
    verdict           TEXT NOT NULL,
    target            TEXT NOT NULL,
    server_version    TEXT,
    firedrill_version TEXT NOT NULL,
    rpo_objective_s   REAL,
    rto_objective_s   REAL,
    trials            INTEGER NOT NULL,
    recorded_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE INDEX IF NOT EXISTS runs_by_drill ON runs (drill, started_at);
CREATE TABLE IF NOT EXISTS trials (
    run_id          INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    trial           INTEGER NOT NULL,
    verdict         TEXT NOT NULL,
    rpo_s           REAL NOT NULL,
    rpo_predicted_s REAL,
    lost            INTEGER NOT NULL,
    zombie_lost     INTEGER NOT NULL,
    rto_s           REAL,
    rpo_met         INTEGER,
    rto_met         INTEGER,
    restore_s       REAL,
    restore_test    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, trial)
);
";

/// Columns added after schema 1, for files made before them.
const ADDED: [(&str, &str); 2] = [
    ("restore_s", "REAL"),
    ("restore_test", "INTEGER NOT NULL DEFAULT 0"),
];

/// An open history database.
pub struct History {
    conn: Connection,
    path: PathBuf,
}

/// One run as listed by `firedrill runs`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    pub drill: String,
    pub run_dir: String,
    pub started_at: String,
    pub verdict: String,
    pub trials: u32,
    pub rpo_objective_s: Option<f64>,
    pub rto_objective_s: Option<f64>,
    /// Worst trial's achieved RPO.
    pub rpo_max_s: Option<f64>,
    /// Worst recovered trial's RTO.
    pub rto_max_s: Option<f64>,
    /// Trials that never recovered.
    pub not_recovered: u32,
}

/// A passing restore test, as the history has it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestoreTestRow {
    pub drill: String,
    /// RFC 3339 UTC.
    pub started_at: String,
    pub run_dir: String,
    /// The slowest trial's restore duration.
    pub restore_s: Option<f64>,
}

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub drill: Option<String>,
    pub verdict: Option<Verdict>,
}

/// One trial on a drill's trend, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrendPoint {
    pub started_at: String,
    pub run_dir: String,
    pub trial: u32,
    pub verdict: String,
    pub rpo_s: f64,
    /// None: never recovered.
    pub rto_s: Option<f64>,
    pub rpo_objective_s: Option<f64>,
    pub rto_objective_s: Option<f64>,
    pub rpo_met: Option<bool>,
    pub rto_met: Option<bool>,
}

/// "Meets" rate of one objective: recoveries within the objective over all
/// judged recoveries (inconclusive trials and unchecked objectives are not
/// recoveries one can judge, so they count in neither).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MeetsRate {
    pub met: u32,
    pub judged: u32,
}

impl MeetsRate {
    pub fn ratio(&self) -> Option<f64> {
        (self.judged > 0).then(|| f64::from(self.met) / f64::from(self.judged))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trend {
    pub drill: String,
    pub points: Vec<TrendPoint>,
    pub rpo_meets: MeetsRate,
    pub rto_meets: MeetsRate,
}

fn verdict_key(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Inconclusive => "inconclusive",
    }
}

impl History {
    /// Opens (creating if needed) the history at `path`, its directory
    /// included.
    pub fn open(path: &Path) -> Result<History, ReportError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
                op: "create",
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let err = |e| ReportError::history(path, e);
        let mut conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(BUSY).map_err(err)?;
        // Switching to WAL needs a moment alone with the file; a second
        // process opening it at the same time can get SQLITE_BUSY without
        // the busy handler being asked, so retry within the same budget.
        let deadline = std::time::Instant::now() + BUSY;
        loop {
            match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
                Ok(_) => break,
                Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(err(e)),
            }
        }
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
            .map_err(err)?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        if version > SCHEMA {
            return Err(ReportError::HistoryVersion {
                path: path.to_path_buf(),
                found: version,
                expected: SCHEMA,
            });
        }
        tx.execute_batch(TABLES).map_err(err)?;
        let have: Vec<String> = {
            let mut st = tx.prepare("PRAGMA table_info(trials)").map_err(err)?;
            let names = st.query_map([], |r| r.get::<_, String>(1)).map_err(err)?;
            names.collect::<Result<_, _>>().map_err(err)?
        };
        for (col, ty) in ADDED {
            if !have.iter().any(|h| h == col) {
                tx.execute_batch(&format!("ALTER TABLE trials ADD COLUMN {col} {ty}"))
                    .map_err(err)?;
            }
        }
        tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA}"))
            .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(History {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Indexes one run (replacing an earlier record of the same directory)
    /// in a single immediate transaction. Returns the run's row id.
    pub fn record(&mut self, run: &RunRecord, run_dir: &Path) -> Result<i64, ReportError> {
        let key = canonical(run_dir);
        let path = self.path.clone();
        let err = |e| ReportError::history(&path, e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let id: i64 = tx
            .query_row(
                "INSERT INTO runs (run_dir, drill, started_at, verdict, target, server_version,
                                   firedrill_version, rpo_objective_s, rto_objective_s, trials)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (run_dir) DO UPDATE SET
                    drill = excluded.drill, started_at = excluded.started_at,
                    verdict = excluded.verdict, target = excluded.target,
                    server_version = excluded.server_version,
                    firedrill_version = excluded.firedrill_version,
                    rpo_objective_s = excluded.rpo_objective_s,
                    rto_objective_s = excluded.rto_objective_s,
                    trials = excluded.trials,
                    recorded_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
                 RETURNING id",
                params![
                    key,
                    run.drill,
                    run.started_at,
                    verdict_key(run.verdict),
                    run.target,
                    run.server_version,
                    run.firedrill_version,
                    run.objectives.rpo_s,
                    run.objectives.rto_s,
                    run.trials.len() as i64,
                ],
                |r| r.get(0),
            )
            .map_err(err)?;
        tx.execute("DELETE FROM trials WHERE run_id = ?1", [id])
            .map_err(err)?;
        {
            let mut ins = tx
                .prepare(
                    "INSERT INTO trials (run_id, trial, verdict, rpo_s, rpo_predicted_s, lost,
                                         zombie_lost, rto_s, rpo_met, rto_met, restore_s,
                                         restore_test)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .map_err(err)?;
            for t in &run.trials {
                ins.execute(params![
                    id,
                    t.trial,
                    verdict_key(t.verdict),
                    t.rpo.achieved_s,
                    t.rpo.predicted_s,
                    t.rpo.lost as i64,
                    t.rpo.zombie_lost as i64,
                    t.rto.achieved_s,
                    t.check.rpo_met,
                    t.check.rto_met,
                    t.restore.as_ref().and_then(|r| r.duration_s),
                    t.restore.as_ref().is_some_and(|r| r.test),
                ])
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(id)
    }

    /// Runs, newest first.
    pub fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>, ReportError> {
        let err = |e| ReportError::history(&self.path, e);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT r.drill, r.run_dir, r.started_at, r.verdict, r.trials,
                        r.rpo_objective_s, r.rto_objective_s,
                        MAX(t.rpo_s), MAX(t.rto_s),
                        COALESCE(SUM(t.trial IS NOT NULL AND t.rto_s IS NULL), 0)
                 FROM runs r LEFT JOIN trials t ON t.run_id = r.id
                 WHERE (?1 IS NULL OR r.drill = ?1) AND (?2 IS NULL OR r.verdict = ?2)
                 GROUP BY r.id
                 ORDER BY r.started_at DESC, r.id DESC",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map(
                params![filter.drill, filter.verdict.map(verdict_key)],
                |r| {
                    Ok(RunRow {
                        drill: r.get(0)?,
                        run_dir: r.get(1)?,
                        started_at: r.get(2)?,
                        verdict: r.get(3)?,
                        trials: r.get(4)?,
                        rpo_objective_s: r.get(5)?,
                        rto_objective_s: r.get(6)?,
                        rpo_max_s: r.get(7)?,
                        rto_max_s: r.get(8)?,
                        not_recovered: r.get(9)?,
                    })
                },
            )
            .map_err(err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(err)
    }

    /// Every trial of one drill, oldest first, and its meets rates.
    pub fn trend(&self, drill: &str) -> Result<Trend, ReportError> {
        let err = |e| ReportError::history(&self.path, e);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT r.started_at, r.run_dir, t.trial, t.verdict, t.rpo_s, t.rto_s,
                        r.rpo_objective_s, r.rto_objective_s, t.rpo_met, t.rto_met
                 FROM trials t JOIN runs r ON r.id = t.run_id
                 WHERE r.drill = ?1
                 ORDER BY r.started_at, r.id, t.trial",
            )
            .map_err(err)?;
        let points = stmt
            .query_map([drill], |r| {
                Ok(TrendPoint {
                    started_at: r.get(0)?,
                    run_dir: r.get(1)?,
                    trial: r.get(2)?,
                    verdict: r.get(3)?,
                    rpo_s: r.get(4)?,
                    rto_s: r.get(5)?,
                    rpo_objective_s: r.get(6)?,
                    rto_objective_s: r.get(7)?,
                    rpo_met: r.get(8)?,
                    rto_met: r.get(9)?,
                })
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let rate = |met: &dyn Fn(&TrendPoint) -> Option<bool>| {
            let judged: Vec<bool> = points
                .iter()
                .filter(|p| p.verdict != "inconclusive")
                .filter_map(met)
                .collect();
            MeetsRate {
                met: judged.iter().filter(|m| **m).count() as u32,
                judged: judged.len() as u32,
            }
        };
        Ok(Trend {
            drill: drill.to_string(),
            rpo_meets: rate(&|p| p.rpo_met),
            rto_meets: rate(&|p| p.rto_met),
            points,
        })
    }

    /// The newest passing run of any of `drills` that was a restore test
    /// (every trial restored beside a healthy primary), with its slowest
    /// restore: what `firedrill watch` ages a domain's restore tests by.
    pub fn newest_restore_test(
        &self,
        drills: &[String],
    ) -> Result<Option<RestoreTestRow>, ReportError> {
        let err = |e| ReportError::history(&self.path, e);
        let mut best: Option<RestoreTestRow> = None;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT r.started_at, r.run_dir, MAX(t.restore_s)
                 FROM runs r JOIN trials t ON t.run_id = r.id
                 WHERE r.drill = ?1 AND r.verdict = 'pass'
                 GROUP BY r.id
                 HAVING MIN(t.restore_test) = 1
                 ORDER BY r.started_at DESC, r.id DESC
                 LIMIT 1",
            )
            .map_err(err)?;
        for d in drills {
            let row = stmt
                .query_row([d], |r| {
                    Ok(RestoreTestRow {
                        drill: d.clone(),
                        started_at: r.get(0)?,
                        run_dir: r.get(1)?,
                        restore_s: r.get(2)?,
                    })
                })
                .optional()
                .map_err(err)?;
            if let Some(row) = row {
                if best.as_ref().is_none_or(|b| row.started_at > b.started_at) {
                    best = Some(row);
                }
            }
        }
        Ok(best)
    }

    /// Whether a drill name was ever recorded (to tell "no such drill"
    /// from "no runs match").
    pub fn knows_drill(&self, drill: &str) -> Result<bool, ReportError> {
        self.conn
            .query_row(
                "SELECT 1 FROM runs WHERE drill = ?1 LIMIT 1",
                [drill],
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
            .map_err(|e| ReportError::history(&self.path, e))
    }

    /// `PRAGMA integrity_check`: "ok" for a sound file.
    pub fn integrity_check(&self) -> Result<String, ReportError> {
        self.conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| ReportError::history(&self.path, e))
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// The key a run directory is recorded under: absolute and canonical, so
/// `runs/x` and `./runs/x/` are one run.
fn canonical(dir: &Path) -> String {
    let p = std::fs::canonicalize(dir).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|c| c.join(dir))
            .unwrap_or_else(|_| dir.to_path_buf())
    });
    p.display().to_string()
}

// ------------------------------------------------------------ text output

fn opt_secs(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.2} s"))
}

/// The `firedrill runs` table.
pub fn render_runs(rows: &[RunRow]) -> String {
    if rows.is_empty() {
        return "no runs recorded\n".to_string();
    }
    let wd = rows.iter().map(|r| r.drill.len()).max().unwrap_or(5).max(5);
    let mut out = format!(
        "{:<20}  {:<wd$}  {:<12}  {:>6}  {:>10}  {:>10}  {:>9}  {:>9}  run directory\n",
        "started", "drill", "verdict", "trials", "worst RPO", "worst RTO", "RPO obj", "RTO obj"
    );
    for r in rows {
        let rto = if r.not_recovered > 0 {
            "never".to_string()
        } else {
            opt_secs(r.rto_max_s)
        };
        out.push_str(&format!(
            "{:<20}  {:<wd$}  {:<12}  {:>6}  {:>10}  {:>10}  {:>9}  {:>9}  {}\n",
            r.started_at,
            r.drill,
            r.verdict.to_uppercase(),
            r.trials,
            opt_secs(r.rpo_max_s),
            rto,
            opt_secs(r.rpo_objective_s),
            opt_secs(r.rto_objective_s),
            r.run_dir
        ));
    }
    out
}

/// One character per value, eight heights, so a trend reads at a glance in
/// a terminal; `x` marks a trial that never recovered.
fn sparkline(values: &[Option<f64>]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().flatten().fold(0.0f64, |m, v| m.max(*v));
    values
        .iter()
        .map(|v| match v {
            None => 'x',
            Some(_) if max <= 0.0 => BARS[0],
            Some(v) => BARS[((v / max) * 7.0).round().clamp(0.0, 7.0) as usize],
        })
        .collect()
}

/// The `firedrill runs trend DRILL` text.
pub fn render_trend(t: &Trend) -> String {
    if t.points.is_empty() {
        return format!("no runs recorded for drill {}\n", t.drill);
    }
    let rate = |m: MeetsRate| match m.ratio() {
        Some(r) => format!("{:.0}% ({} of {} recoveries)", r * 100.0, m.met, m.judged),
        None => "no objective checked".to_string(),
    };
    let rpo: Vec<Option<f64>> = t.points.iter().map(|p| Some(p.rpo_s)).collect();
    let rto: Vec<Option<f64>> = t.points.iter().map(|p| p.rto_s).collect();
    let mut out = format!(
        "drill {}: {} trials, oldest first\n  RPO  {}\n  RTO  {}\n",
        t.drill,
        t.points.len(),
        sparkline(&rpo),
        sparkline(&rto)
    );
    out.push_str(&format!("  meets RPO objective: {}\n", rate(t.rpo_meets)));
    out.push_str(&format!("  meets RTO objective: {}\n\n", rate(t.rto_meets)));
    out.push_str(&format!(
        "{:<20}  {:>5}  {:<12}  {:>9}  {:>9}  {:>9}  {:>9}\n",
        "started", "trial", "verdict", "RPO", "RPO obj", "RTO", "RTO obj"
    ));
    for p in &t.points {
        let mark = |met: Option<bool>| match met {
            Some(false) => "!",
            _ => " ",
        };
        out.push_str(&format!(
            "{:<20}  {:>5}  {:<12}  {:>8}{}  {:>9}  {:>8}{}  {:>9}\n",
            p.started_at,
            p.trial,
            p.verdict.to_uppercase(),
            format!("{:.2} s", p.rpo_s),
            mark(p.rpo_met),
            opt_secs(p.rpo_objective_s),
            p.rto_s.map_or("never".to_string(), |v| format!("{v:.2} s")),
            mark(p.rto_met),
            opt_secs(p.rto_objective_s),
        ));
    }
    out.push_str("  (! = objective violated)\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_scales_and_marks_never() {
        assert_eq!(sparkline(&[Some(0.0), Some(1.0), None, Some(0.5)]), "▁█x▅");
        assert_eq!(sparkline(&[Some(0.0)]), "▁");
    }

    #[test]
    fn meets_rate_is_none_without_judged_trials() {
        assert_eq!(MeetsRate { met: 0, judged: 0 }.ratio(), None);
        assert_eq!(MeetsRate { met: 3, judged: 4 }.ratio(), Some(0.75));
    }
}
