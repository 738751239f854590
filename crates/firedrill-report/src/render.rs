//! The human summary: printed at the end of a drill and by
//! `firedrill report RUN_DIR`. Plain, stable text (no colours, no terminal
//! width detection) so it reads the same in a CI log and snapshots cleanly.

use std::fmt::Write as _;

use firedrill_ledger::{Bucket, Percentiles, Verdict};

use crate::record::{RunRecord, TrialRecord};

/// Hard limit on line length, so the summary survives narrow CI logs.
pub const MAX_WIDTH: usize = 100;

/// Longest health strip, disaster marker included.
const STRIP_MAX: usize = 80;

/// Indent of the figures under a trial's section labels.
const INDENT: &str = "       ";

/// Renders the whole run: each trial, the cross-trial table (several
/// trials), the objectives and the verdict line.
pub fn render_summary(run: &RunRecord) -> String {
    let mut out = String::new();
    header(&mut out, run);
    if let Some(r) = &run.reaudit {
        line(
            &mut out,
            "  ",
            "  ",
            &format!("RE-AUDITED at {}: {}", r.at, r.reason),
        );
    }
    for t in &run.trials {
        out.push('\n');
        trial(&mut out, run, t);
    }
    if run.trials.len() > 1 {
        out.push('\n');
        table(&mut out, run);
    }
    out.push('\n');
    objectives(&mut out, run);
    line(&mut out, "", "         ", &verdict_line(run));
    out
}

fn header(out: &mut String, run: &RunRecord) {
    let n = run.trials.len();
    let _ = writeln!(
        out,
        "drill {} ({} trial{})",
        run.drill,
        n,
        if n == 1 { "" } else { "s" }
    );
    if let Some(d) = &run.description {
        line(out, "  ", "  ", d);
    }
    let mut target = format!("target: {}", run.target);
    if let Some(v) = &run.server_version {
        let _ = write!(target, " (server {v})");
    }
    line(out, "  ", "    ", &target);
    line(
        out,
        "  ",
        "    ",
        &format!(
            "started: {}  firedrill {}",
            run.started_at, run.firedrill_version
        ),
    );
    for w in &run.warnings {
        line(out, "  ", "    ", &format!("warning: {w}"));
    }
}

fn trial(out: &mut String, run: &RunRecord, t: &TrialRecord) {
    let _ = writeln!(
        out,
        "trial {}/{}: {}",
        t.trial,
        run.trials.len(),
        verdict_word(t.verdict)
    );

    // RPO: achieved beside predicted, the seed claim a reader checks first.
    let r = &t.rpo;
    let predicted = r.predicted_s.map_or("no prediction".to_string(), |p| {
        format!("{} predicted", secs(p))
    });
    let _ = writeln!(
        out,
        "  RPO  {} achieved, {predicted}{}",
        secs(r.achieved_s),
        crate::streams::reported(r)
    );
    let _ = writeln!(
        out,
        "{INDENT}lost {} ({} zombie), unknown {} survived / {} lost",
        r.lost, r.zombie_lost, r.unknown_survived, r.unknown_lost
    );
    let span = r.loss_span_s.map_or("-".to_string(), |[a, b]| {
        format!("{} .. {}", signed(a), signed(b))
    });
    let _ = writeln!(
        out,
        "{INDENT}duplicates {}, phantoms {}, fail survived {}, loss span {span}",
        r.duplicates, r.phantoms, r.fail_survived
    );

    // RTO and its phases, all on the disaster's clock.
    let rto = match t.rto.achieved_s {
        Some(v) => secs(v),
        None => format!(
            "never recovered (recovery_timeout {})",
            recovery_timeout(run)
        ),
    };
    let _ = writeln!(out, "  RTO  {rto}");
    let p = &t.rto.phases;
    let _ = writeln!(
        out,
        "{INDENT}impact {}  detected {}  first write {}  recovered {}",
        opt_signed(p.impact_s),
        opt_signed(p.detected_s),
        opt_signed(p.first_write_s),
        opt_signed(p.recovered_s)
    );
    if let Some(line_) = incident_line(t) {
        line(out, INDENT, INDENT, &line_);
    }
    restore_block(out, t);
    crate::streams::latency_line(out, t, INDENT);
    crate::streams::homes_block(out, t);
    crate::streams::consumer_block(out, t, INDENT);
    crate::capability::capability_block(out, t);
    if let Some(d) = &t.detected {
        line(
            out,
            INDENT,
            INDENT,
            &format!("detected at {} by: {}", signed(d.t_s), d.how),
        );
    }
    let _ = writeln!(
        out,
        "  ops  {} ok, {} fail, {} unknown",
        t.ops.ok, t.ops.fail, t.ops.unknown
    );

    faults(out, t);
    if let Some(rec) = &t.recovery {
        let node = rec
            .node
            .as_deref()
            .map_or(String::new(), |n| format!(" {n}"));
        let mut s = format!(
            "recovery {}{node}: {} .. {}",
            rec.action,
            signed(rec.start_s),
            signed(rec.done_s)
        );
        if let Some(e) = &rec.error {
            let _ = write!(s, ", error: {e}");
        }
        line(out, "  ", INDENT, &s);
    }
    health(out, t);

    let met = |m: Option<bool>| match m {
        None => "not checked",
        Some(true) => "met",
        Some(false) => "violated",
    };
    let _ = writeln!(
        out,
        "  check  rpo {}, rto {}",
        met(t.check.rpo_met),
        met(t.check.rto_met)
    );
    for w in &t.warnings {
        line(out, "  ", INDENT, &format!("warning: {w}"));
    }
}

/// "outage began 2.00 s before the disaster, at step 1 cut_replication n2":
/// a stage-setting step can start the outage itself (synchronous commit
/// with replication cut), and the RTO counts from there.
fn incident_line(t: &TrialRecord) -> Option<String> {
    let inc = t.rto.incident_s?;
    if inc > -0.005 {
        return None;
    }
    let mut s = format!("outage began {} before the disaster", secs(-inc));
    // The step in force when the outage began: the latest injection at or
    // before it.
    let cause = t
        .faults
        .iter()
        .filter(|f| f.injected_s <= inc + 1e-6)
        .max_by(|a, b| a.injected_s.total_cmp(&b.injected_s));
    if let Some(f) = cause {
        let _ = write!(s, ", at step {} {} {}", f.step + 1, f.action, f.node);
    }
    Some(s)
}

fn faults(out: &mut String, t: &TrialRecord) {
    if t.faults.is_empty() {
        let _ = writeln!(out, "  faults  none");
        return;
    }
    let _ = writeln!(out, "  faults");
    let wa = t.faults.iter().map(|f| f.action.len()).max().unwrap_or(0);
    let wn = t.faults.iter().map(|f| f.node.len()).max().unwrap_or(0);
    for f in &t.faults {
        let healed = f.healed_s.map_or("not healed".to_string(), |h| {
            format!("healed {}", signed(h))
        });
        let mut s = format!(
            "step {}  {:wa$}  {:wn$}  injected {}  in effect {}  {healed}",
            f.step + 1,
            f.action,
            f.node,
            signed(f.injected_s),
            opt_signed(f.in_effect_s),
        );
        if f.disaster {
            s.push_str("  <- disaster");
        }
        line(out, INDENT, INDENT, &s);
        if let Some(d) = &f.detail {
            line(out, INDENT, INDENT, &format!("  {d}"));
        }
        if let Some(e) = &f.error {
            line(out, INDENT, INDENT, &format!("  injection failed: {e}"));
        }
        if let Some(e) = &f.heal_error {
            line(out, INDENT, INDENT, &format!("  heal failed: {e}"));
        }
    }
}

/// One character per bucket group: a reader sees at a glance when writes
/// stalled and when they came back, relative to the disaster.
fn health(out: &mut String, t: &TrialRecord) {
    let b = &t.buckets;
    if b.is_empty() {
        return;
    }
    let mark = t.faults.iter().any(|f| f.disaster);
    let (strip, per_char) = health_strip(b, mark);
    let _ = writeln!(out, "  health  {strip}");
    let dt = bucket_width(b);
    let end = b[b.len() - 1].start_s + dt;
    let mut legend = format!(
        "{} .. {}, 1 char = {:.2} s: # healthy  . unhealthy",
        signed(b[0].start_s),
        signed(end),
        per_char as f64 * dt
    );
    if mark {
        legend.push_str("  | disaster");
    }
    line(out, "          ", "          ", &legend);
}

/// The strip and how many buckets each character stands for. A character
/// is healthy only when every bucket in it is, so a short stall survives
/// downsampling; groups are aligned on the disaster so none straddles it.
fn health_strip(b: &[Bucket], mark: bool) -> (String, usize) {
    let glyph = |c: &[Bucket]| {
        if c.iter().all(|x| x.healthy) {
            '#'
        } else {
            '.'
        }
    };
    if !mark {
        let per = b.len().div_ceil(STRIP_MAX).max(1);
        return (b.chunks(per).map(glyph).collect(), per);
    }
    let k = b.iter().position(|x| x.start_s >= -1e-9).unwrap_or(b.len());
    let (pre, post) = b.split_at(k);
    let width = |per: usize| pre.len().div_ceil(per) + post.len().div_ceil(per) + 1;
    let mut per = b.len().div_ceil(STRIP_MAX).max(1);
    while width(per) > STRIP_MAX {
        per += 1;
    }
    let mut s: String = pre.rchunks(per).rev().map(glyph).collect();
    s.push('|');
    s.extend(post.chunks(per).map(glyph));
    (s, per)
}

fn bucket_width(b: &[Bucket]) -> f64 {
    match b {
        [a, c, ..] => c.start_s - a.start_s,
        _ => 0.1,
    }
}

fn table(out: &mut String, run: &RunRecord) {
    let s = &run.summary;
    let _ = writeln!(
        out,
        "across {} trials: {} passed, {} failed, {} inconclusive",
        s.trials, s.passed, s.failed, s.inconclusive
    );
    let _ = writeln!(out, "  {:<16}{:>11}{:>11}{:>11}", "", "p50", "p95", "max");
    let row = |out: &mut String, name: &str, p: Option<Percentiles>, f: fn(f64) -> String| {
        let cells = match p {
            Some(p) => [f(p.p50), f(p.p95), f(p.max)],
            None => ["-".to_string(), "-".to_string(), "-".to_string()],
        };
        let _ = writeln!(
            out,
            "  {name:<16}{:>11}{:>11}{:>11}",
            cells[0], cells[1], cells[2]
        );
    };
    let count = |v: f64| format!("{v:.0}");
    row(out, "RPO achieved", s.rpo_achieved_s, secs);
    row(out, "RPO predicted", s.rpo_predicted_s, secs);
    row(out, "lost", s.lost, count);
    row(out, "zombie lost", s.zombie_lost, count);
    row(out, "RTO", s.rto_s, secs);
    row(out, "impact", s.phases.impact_s, signed);
    row(out, "detected", s.phases.detected_s, signed);
    row(out, "first write", s.phases.first_write_s, signed);
    row(out, "recovered", s.phases.recovered_s, signed);
    if s.not_recovered > 0 {
        let _ = writeln!(
            out,
            "  RTO over {} recovered trials; {} never recovered",
            s.trials - s.not_recovered,
            s.not_recovered
        );
    }
}

fn objectives(out: &mut String, run: &RunRecord) {
    let o = &run.objectives;
    if o.rpo_s.is_none() && o.rto_s.is_none() {
        let _ = writeln!(
            out,
            "objectives: none declared; the figures above are not checked"
        );
        return;
    }
    let _ = writeln!(out, "objectives");
    let n = run.trials.len();
    let status = |met: &dyn Fn(&TrialRecord) -> Option<bool>| {
        let violated = run.trials.iter().filter(|t| met(t) == Some(false)).count();
        // A trial that could not judge the objective (e.g. a re-audited run
        // the kill cut short) is not a trial that met it.
        let unjudged = run.trials.iter().filter(|t| met(t).is_none()).count();
        if violated == 0 && unjudged > 0 {
            format!(
                "met in {} of {n} trials, not judged in {unjudged}",
                n - unjudged
            )
        } else if violated == 0 {
            format!("met in {n} of {n} trials")
        } else {
            format!("VIOLATED in {violated} of {n} trials")
        }
    };
    if let Some(rpo) = o.rpo_s {
        let worst = run
            .summary
            .rpo_achieved_s
            .map_or(String::new(), |p| format!(" (worst {})", secs(p.max)));
        let _ = writeln!(
            out,
            "  RPO <= {}: {}{worst}",
            secs(rpo),
            status(&|t| t.check.rpo_met)
        );
    }
    if let Some(rto) = o.rto_s {
        let worst = if run.summary.not_recovered > 0 {
            " (worst: never recovered)".to_string()
        } else {
            run.summary
                .rto_s
                .map_or(String::new(), |p| format!(" (worst {})", secs(p.max)))
        };
        let _ = writeln!(
            out,
            "  RTO <= {}: {}{worst}",
            secs(rto),
            status(&|t| t.check.rto_met)
        );
    }
    for t in &run.trials {
        for r in &t.check.reasons {
            line(
                out,
                "    ",
                "      ",
                &format!("trial {} {}: {r}", t.trial, reason_label(r)),
            );
        }
    }
}

fn verdict_line(run: &RunRecord) -> String {
    let word = verdict_word(run.verdict);
    let several = run.trials.len() > 1;
    // Reasons of the trials that share the run's verdict explain it.
    let reasons: Vec<String> = run
        .trials
        .iter()
        .filter(|t| t.verdict == run.verdict)
        .flat_map(|t| {
            t.check.reasons.iter().map(move |r| {
                if several {
                    format!("trial {} {}: {r}", t.trial, reason_label(r))
                } else {
                    format!("{}: {r}", reason_label(r))
                }
            })
        })
        .collect();
    let why = match (run.verdict, reasons.first()) {
        (_, Some(first)) if reasons.len() == 1 => first.clone(),
        (_, Some(first)) => format!("{first}; and {} more", reasons.len() - 1),
        (Verdict::Pass, None) if run.objectives == Default::default() => {
            "no objectives declared".to_string()
        }
        (Verdict::Pass, None) => {
            let n = run.trials.len();
            format!("every objective met in {n} of {n} trials")
        }
        (_, None) if run.trials.is_empty() => "no trial finished".to_string(),
        (_, None) => run
            .warnings
            .first()
            .cloned()
            .unwrap_or_else(|| "see the trials above".to_string()),
    };
    format!("verdict: {word} ({why})")
}

/// Which objective a check reason is about; the ledger's check phrases each
/// reason with the figure it concerns.
pub(crate) fn reason_label(reason: &str) -> &'static str {
    // First: the command's own output, quoted in the reason, may say "RTO".
    if reason.starts_with("the recovery's verify_command") {
        "verify"
    } else if reason.contains("RTO") || reason.contains("recovery_timeout") {
        "rto"
    } else if reason.contains("RPO") || reason.contains("zombie") {
        "rpo"
    } else {
        "audit"
    }
}

pub(crate) fn recovery_timeout(run: &RunRecord) -> String {
    match run.spec.pointer("/slo/recovery_timeout") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) if !v.is_null() => v.to_string(),
        _ => "default".to_string(),
    }
}

pub(crate) fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
        Verdict::Inconclusive => "INCONCLUSIVE",
    }
}

/// A duration: `2.00 s`.
pub(crate) fn secs(v: f64) -> String {
    format!("{:.2} s", v)
}

/// A time relative to the disaster: `-2.00s`, `+1.31s` (never `-0.00s`).
pub(crate) fn signed(v: f64) -> String {
    let r = (v * 100.0).round() / 100.0;
    let r = if r == 0.0 { 0.0 } else { r };
    format!("{r:+.2}s")
}

pub(crate) fn opt_signed(v: Option<f64>) -> String {
    v.map_or("-".to_string(), signed)
}

/// Writes `text` word-wrapped to [`MAX_WIDTH`], `first` before the first
/// line and `rest` before the others; a single overlong word is cut.
fn line(out: &mut String, first: &str, rest: &str, text: &str) {
    let mut cur = first.to_string();
    let mut empty = true;
    for word in text.split(' ') {
        let need = cur.chars().count() + usize::from(!empty) + word.chars().count();
        if !empty && need > MAX_WIDTH {
            out.push_str(cur.trim_end());
            out.push('\n');
            cur = rest.to_string();
            empty = true;
        }
        if !empty {
            cur.push(' ');
        }
        cur.push_str(word);
        empty = false;
        while cur.chars().count() > MAX_WIDTH {
            let head: String = cur.chars().take(MAX_WIDTH).collect();
            let tail: String = cur.chars().skip(MAX_WIDTH).collect();
            out.push_str(&head);
            out.push('\n');
            cur = format!("{rest}{tail}");
        }
    }
    out.push_str(cur.trim_end());
    out.push('\n');
}

/// A data disaster's restore: what came back, what was rolled back, what
/// is still missing, where it really stopped, and its phases.
fn restore_block(out: &mut String, t: &TrialRecord) {
    let Some(r) = &t.restore else { return };
    if r.test {
        return restore_test_block(out, r);
    }
    let _ = writeln!(
        out,
        "  restore  target {}{}: {}",
        r.target,
        r.node
            .as_ref()
            .map_or(String::new(), |n| format!(" into new node {n}")),
        if r.reached { "reached" } else { "NOT reached" }
    );
    let span = r.rolled_back_span_s.map_or(String::new(), |[a, b]| {
        format!(" ({} .. {})", signed(a), signed(b))
    });
    line(
        out,
        INDENT,
        INDENT,
        &format!(
            "lost before the fault {}, rolled back {}{span}, damaged {}, still missing {}{}",
            r.lost_before,
            r.rolled_back,
            r.damaged,
            r.damaged_left,
            if r.garbled > 0 {
                format!(" (of the missing, {} present but garbled)", r.garbled)
            } else {
                String::new()
            }
        ),
    );
    line(
        out,
        INDENT,
        INDENT,
        &format!(
            "recovery point {} (the newest surviving write acknowledged before the fault)",
            opt_signed(r.recovery_point_s)
        ),
    );
    if let Some(p) = &r.point {
        line(
            out,
            INDENT,
            INDENT,
            &format!(
                "restore point {} in the store's order: {} acknowledged writes past it (must all be gone: {} kept), {} at or before it missing",
                p.index, p.acked_past, p.kept_past, p.lost_at_or_before
            ),
        );
    }
    let from_disc = r.rto_from_discovery_s.map_or("-".to_string(), secs);
    line(
        out,
        INDENT,
        INDENT,
        &format!(
            "discovered {}  fetch {}  replay {}  promote {}  RTO from discovery {from_disc}",
            opt_signed(r.discovered_s),
            opt_signed(r.fetch_s),
            opt_signed(r.replay_s),
            opt_signed(r.promote_s)
        ),
    );
    line(out, INDENT, INDENT, &format!("server: {}", r.detail));
    if let Some(c) = &r.backup_check {
        let gaps = if c.wal_gaps.is_empty() {
            String::new()
        } else {
            format!(
                "; WAL missing from the archive: {} (a restore cannot replay across it)",
                c.wal_gaps.join(", ")
            )
        };
        line(
            out,
            INDENT,
            INDENT,
            &format!("{}: status {}, {}{gaps}", c.command, c.status, c.detail),
        );
        if !c.inventory.is_empty() {
            line(out, INDENT, INDENT, &c.inventory);
        }
    }
}

/// A restore test: does the backup restore, how long did it take, how
/// much of what was acknowledged before it began came back. Times are
/// relative to the restore's start.
fn restore_test_block(out: &mut String, r: &firedrill_ledger::RestoreFigures) {
    let _ = writeln!(
        out,
        "  restore test  target {}{}: {}",
        r.target,
        r.node
            .as_ref()
            .map_or(String::new(), |n| format!(" into scratch node {n}")),
        if r.reached {
            "restored"
        } else {
            "NOT restored"
        }
    );
    line(
        out,
        INDENT,
        INDENT,
        &format!(
            "acknowledged before the restore began and missing from the copy {}; written while it ran, not in the copy {}",
            r.lost_before, r.rolled_back
        ),
    );
    line(
        out,
        INDENT,
        INDENT,
        &format!(
            "restore took {}: fetch {}  replay {}  promote {}",
            r.duration_s.map_or("-".to_string(), secs),
            opt_signed(r.fetch_s),
            opt_signed(r.replay_s),
            opt_signed(r.promote_s)
        ),
    );
    line(out, INDENT, INDENT, &format!("server: {}", r.detail));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_never_prints_negative_zero() {
        assert_eq!(signed(-0.001), "+0.00s");
        assert_eq!(signed(-2.0), "-2.00s");
        assert_eq!(signed(1.3149), "+1.31s");
    }

    #[test]
    fn long_text_wraps_under_the_limit() {
        let mut out = String::new();
        let text = "word ".repeat(60) + &"x".repeat(150);
        line(&mut out, "  ", "    ", &text);
        assert!(out.lines().all(|l| l.chars().count() <= MAX_WIDTH), "{out}");
        assert!(out.lines().skip(1).all(|l| l.starts_with("    ")));
    }

    fn bucket(start_s: f64, healthy: bool) -> Bucket {
        Bucket {
            start_s,
            ok: 1,
            fail: 0,
            unknown: 0,
            healthy,
        }
    }

    #[test]
    fn strip_downsamples_and_keeps_short_stalls() {
        // 600 buckets, one unhealthy in the middle, disaster at the start.
        let b: Vec<Bucket> = (0..600).map(|i| bucket(i as f64 * 0.1, i != 301)).collect();
        let (s, per) = health_strip(&b, true);
        assert!(s.chars().count() <= STRIP_MAX, "{s}");
        assert_eq!(per, 8);
        assert!(s.starts_with('|'));
        assert_eq!(s.matches('.').count(), 1);
    }
}
