//! `junit.xml`: the run as JUnit test results, so a CI server lists each
//! objective of each trial as a test (`<drill>/trial-<n>/<rpo|rto>`) and
//! shows achieved against target when one fails.
//!
//! An objective a trial could not judge (the trial was inconclusive, or
//! the objective was not checked) is an `error`, not `skipped`: CI
//! dashboards count skipped tests as green, and a drill that proved nothing
//! must not look like one that passed (its exit code is 3, not 0).

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use crate::commands::CommandEntry;
use crate::outcomes::{objective_outcomes, Outcome};
use crate::record::RunRecord;
use crate::ReportError;
use firedrill_ledger::CommandPurpose;

/// File name inside the run directory.
pub const JUNIT_FILE: &str = "junit.xml";

/// Renders the run as a JUnit XML document: one suite named after the drill.
pub fn render_junit(run: &RunRecord) -> Result<String, ReportError> {
    let mut suite = TestSuite::new(run.drill.as_str());
    suite.add_property(Property::new("started_at", run.started_at.as_str()));
    suite.add_property(Property::new("target", run.target.as_str()));
    if let Some(v) = &run.server_version {
        suite.add_property(Property::new("server_version", v.as_str()));
    }
    suite.add_property(Property::new("verdict", verdict_key(run)));
    for o in objective_outcomes(run) {
        let name = format!("{}/trial-{}/{}", run.drill, o.trial, o.objective.key());
        let status = match o.outcome {
            Outcome::Met => TestCaseStatus::success(),
            Outcome::Violated => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_type("objective violated")
                    .set_message(o.message.as_str());
                s
            }
            Outcome::Inconclusive => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                s.set_type("inconclusive").set_message(o.message.as_str());
                s
            }
        };
        let mut case = TestCase::new(name, status);
        case.set_classname(run.drill.as_str());
        case.add_property(Property::new("target_s", o.target_s.to_string()));
        case.add_property(Property::new(
            "achieved_s",
            o.achieved_s.map_or("never".to_string(), |v| v.to_string()),
        ));
        suite.add_test_case(case);
    }
    for t in &run.trials {
        for c in t
            .commands
            .iter()
            .filter(|c| c.purpose == CommandPurpose::Verify)
        {
            suite.add_test_case(verify_case(run, t.trial, c));
        }
        if let Some(o) = t.capability.as_ref().and_then(|c| c.outbox.as_ref()) {
            suite.add_test_case(outbox_case(run, t.trial, o));
        }
    }
    // A run that ended before any trial finished still has to show up red.
    if run.trials.is_empty() {
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
        let why = run
            .warnings
            .first()
            .cloned()
            .unwrap_or_else(|| "no trial finished".into());
        s.set_type("inconclusive").set_message(why);
        let mut case = TestCase::new(format!("{}/run", run.drill), s);
        case.set_classname(run.drill.as_str());
        suite.add_test_case(case);
    }
    let mut report = Report::new("firedrill");
    report.add_test_suite(suite);
    report
        .to_string()
        .map_err(|e| ReportError::Junit(e.to_string()))
}

/// An outbox capability's three-way audit as its own test: a trial whose
/// RPO and RTO held fails here on an order without its event or an event
/// applied twice.
fn outbox_case(
    run: &RunRecord,
    trial: u32,
    o: &firedrill_ledger::outbox::OutboxFigures,
) -> TestCase {
    let reasons = o.reasons();
    let status = if reasons.is_empty() {
        TestCaseStatus::success()
    } else {
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
        s.set_type("outbox inconsistent")
            .set_message(reasons.join("; "));
        s
    };
    let mut case = TestCase::new(format!("{}/trial-{trial}/outbox", run.drill), status);
    case.set_classname(run.drill.as_str());
    for (k, v) in [
        ("orders_acked", o.orders_acked),
        ("events_lost", o.events_lost),
        ("delivered_twice", o.delivered_twice),
        ("applied_twice", o.applied_twice),
    ] {
        case.add_property(Property::new(k, v.to_string()));
    }
    case
}

/// The recovery's verify_command as its own test: CI shows why a trial
/// whose objectives held still failed.
fn verify_case(run: &RunRecord, trial: u32, c: &CommandEntry) -> TestCase {
    let status = if c.exit == Some(0) {
        TestCaseStatus::success()
    } else {
        let how = match (c.exit, c.timed_out, &c.error) {
            (_, _, Some(e)) => format!("could not start: {e}"),
            (_, true, _) => format!("timed out after {:.1} s", c.duration_s),
            (Some(code), _, _) => format!("exited {code}"),
            (None, _, _) => format!("killed by signal {}", c.signal.unwrap_or(0)),
        };
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
        s.set_type("verify_command failed")
            .set_message(format!("{} {how}", c.program));
        s.set_description(c.output_tail.as_str());
        s
    };
    let mut case = TestCase::new(format!("{}/trial-{trial}/verify", run.drill), status);
    case.set_classname(run.drill.as_str());
    case.set_time(std::time::Duration::from_secs_f64(c.duration_s.max(0.0)));
    case
}

fn verdict_key(run: &RunRecord) -> &'static str {
    match run.verdict {
        firedrill_ledger::Verdict::Pass => "pass",
        firedrill_ledger::Verdict::Fail => "fail",
        firedrill_ledger::Verdict::Inconclusive => "inconclusive",
    }
}
