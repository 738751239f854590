//! `firedrill report` on a capability run whose process died: each
//! domain's journals (`<run>/<domain>/trial-N/journal.bin`), its heals
//! left to the watchdogs, and the verdict inconclusive. The capability's
//! own figures need every domain's audit, so a dead run has none; a
//! re-audit of a capability run is not built yet and says so.

use crate::partial::{death_reason, heals, load_trials, print_trial, trial_json, RunStart};
use crate::Failure;
use std::path::Path;

/// The report of a dead capability run; exit 3, inconclusive.
pub fn report(run_dir: &Path, start: &RunStart, json: bool) -> Result<u8, Failure> {
    let mut domains = Vec::new();
    for d in &start.domains {
        let dir = run_dir.join(d);
        domains.push((d.as_str(), load_trials(&dir, start.trials)?, heals(&dir)));
    }
    // The reason reads the liveness marks: the latest domain's is the run's.
    let latest = domains
        .iter()
        .max_by_key(|(_, ts, _)| {
            ts.last().and_then(|t| {
                let m = t.partial.last_mark.as_ref()?;
                Some((t.trial, m.t_us))
            })
        })
        .map(|(_, t, _)| t.as_slice())
        .unwrap_or(&[]);
    let reason = death_reason(start, latest);
    let (pending, watchdog) = domains
        .iter()
        .fold((0, 0), |(p, w), (_, _, (dp, dw))| (p + dp, w + dw));
    if json {
        let v = serde_json::json!({
            "drill": start.drill,
            "verdict": "inconclusive",
            "partial": true,
            "reason": reason,
            "started_at": start.started_at,
            "target": start.target,
            "heals_pending": pending,
            "watchdog_heal_commands": watchdog,
            "domains": domains.iter().map(|(d, t, _)| serde_json::json!({
                "domain": d,
                "trials": t.iter().map(trial_json).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| Failure::internal(e.to_string()))?
        );
        return Ok(3);
    }
    println!("drill {} (PARTIAL: no run.json)", start.drill);
    println!("  target: {}", start.target);
    println!("  {reason}");
    for (d, trials, _) in &domains {
        println!("\ndomain {d}:");
        for t in trials {
            print_trial(t, "  ");
        }
    }
    println!(
        "\nheals left to the watchdogs: {pending} still pending, {watchdog} command heal(s) run by them"
    );
    println!(
        "capability: no figures (they need every domain's audit, and the drill died before it)"
    );
    println!(
        "verdict: INCONCLUSIVE (a capability run cannot be re-audited yet: run the drill again)"
    );
    Ok(3)
}
