//! `firedrill assess`: the objectives file's architecture against its
//! objectives, the run history and (unless --offline) a live probe.

use crate::Failure;
use firedrill_assess::{AssessError, Evidence, RunFigures, TrialFigures};
use firedrill_report::History;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Options {
    pub json: bool,
    pub html: Option<PathBuf>,
    pub strict: bool,
    pub offline: bool,
}

/// The runs of every drill the objectives link to, from the history
/// (none when it does not exist yet: nothing is proven).
fn evidence(arch: &firedrill_assess::Architecture) -> Result<Evidence, Failure> {
    let mut ev = Evidence::default();
    let path = crate::runs::history_path();
    if !path.exists() {
        return Ok(ev);
    }
    let h = History::open(&path).map_err(|e| Failure::aborted(e.to_string()))?;
    // The drills the objectives link to, and the ones the factor table
    // cites (their newer runs replace the table's figures).
    let factors = firedrill_assess::factors::drill_names();
    let mut names: Vec<&String> = arch
        .domains
        .iter()
        .flat_map(|d| d.objectives.iter())
        .chain(arch.capabilities.iter().flat_map(|c| c.objectives.iter()))
        .flat_map(|o| o.drills.iter())
        .chain(factors.iter())
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        let t = h.trend(name).map_err(|e| Failure::aborted(e.to_string()))?;
        let mut runs: Vec<RunFigures> = Vec::new();
        for p in t.points {
            if runs.last().is_none_or(|r| r.run_dir != p.run_dir) {
                runs.push(RunFigures {
                    run_dir: p.run_dir.clone(),
                    started_at: p.started_at.clone(),
                    trials: Vec::new(),
                });
            }
            if let Some(r) = runs.last_mut() {
                r.trials.push(TrialFigures {
                    inconclusive: p.verdict == "inconclusive",
                    rpo_s: p.rpo_s,
                    drill_rpo_met: p.rpo_met,
                    drill_rpo_objective_s: p.rpo_objective_s,
                    rto_s: p.rto_s,
                });
            }
        }
        if !runs.is_empty() {
            ev.drills.insert(name.clone(), runs);
        }
    }
    Ok(ev)
}

pub async fn assess(file: &Path, o: Options) -> Result<u8, Failure> {
    let (arch, plan) = firedrill_assess::load(
        firedrill_stores::watch_kinds(),
        firedrill_stores::knowledge(),
        file,
    )
    .map_err(|e| match e {
        AssessError::Read { .. } | AssessError::Invalid(_) => Failure::input(e.to_string()),
    })?;
    let ev = evidence(&arch)?;
    let live = if o.offline {
        None
    } else {
        let settle = plan.settings.interval.min(Duration::from_secs(1));
        Some(firedrill_assess::live::probe(&plan, &arch, settle).await)
    };
    let report = firedrill_assess::assess(&arch, &ev, live.as_ref());
    if let Some(p) = &o.html {
        firedrill_report::write_atomic(p, &firedrill_assess::render_html(&report))
            .map_err(|e| Failure::internal(e.to_string()))?;
    }
    if o.json {
        println!("{}", firedrill_assess::render::render_json(&report));
    } else {
        print!(
            "{}",
            firedrill_assess::render::render_text(&report, o.strict)
        );
    }
    Ok(report.exit_code(o.strict))
}
