//! Validation, derivations from the declaration alone, and the text and
//! JSON renderings of examples/checkout.toml (insta snapshots).

use firedrill_assess::evidence::{Evidence, RunFigures, TrialFigures};
use firedrill_assess::live::{DomainLive, Live};
use firedrill_assess::{assess, parse, AssessError, Verdict};
use std::path::Path;

fn load(text: &str) -> Result<firedrill_assess::Architecture, String> {
    parse(
        firedrill_stores::watch_kinds(),
        firedrill_stores::knowledge(),
        Path::new("t.toml"),
        text.to_string(),
    )
    .map(|(a, _)| a)
    .map_err(|e| match e {
        AssessError::Invalid(d) => d.to_string(),
        other => other.to_string(),
    })
}

const PG: &str = r#"
[[domain]]
name = "orders"
[domain.store]
kind = "postgres"
[[domain.store.nodes]]
name = "n1"
conninfo = "host=127.0.0.1 port=1 dbname=postgres"
[[domain.store.nodes]]
name = "n2"
conninfo = "host=127.0.0.1 port=2 dbname=postgres"
"#;

fn verdicts(text: &str) -> Vec<(String, String, Verdict)> {
    let a = load(text).expect("valid");
    assess(&a, &Evidence::default(), None)
        .rows
        .into_iter()
        .map(|r| (r.objective, r.measure.as_str().to_string(), r.verdict))
        .collect()
}

#[test]
fn async_rpo_zero_under_node_cannot_meet_sync_any_1_can() {
    let obj = "[domain.objectives.node]\nrpo = \"0s\"\n";
    let v = verdicts(&format!(
        "{PG}[domain.replication]\nmode = \"async\"\n{obj}"
    ));
    assert_eq!(v, vec![("node".into(), "RPO".into(), Verdict::CannotMeet)]);
    // Negative control: the same under sync ANY 1 fits (unproven: no drill).
    let v = verdicts(&format!(
        "{PG}[domain.replication]\nmode = \"sync\"\nquorum = 1\n{obj}"
    ));
    assert_eq!(v, vec![("node".into(), "RPO".into(), Verdict::Unproven)]);
}

#[test]
fn patroni_ttl_30_cannot_meet_rto_10s() {
    let f = |ttl: &str| {
        format!("{PG}[domain.failover]\nkind = \"patroni\"\nttl = \"{ttl}\"\nloop_wait = \"2s\"\nretry_timeout = \"3s\"\n[domain.objectives.node]\nrto = \"10s\"\n")
    };
    let a = load(&f("30s")).expect("valid");
    let rep = assess(&a, &Evidence::default(), None);
    let r = &rep.rows[0];
    assert_eq!(r.verdict, Verdict::CannotMeet);
    assert!(r.trace[0].contains("Patroni ttl 30 s"), "{:?}", r.trace);
    let adv = r.advice.as_ref().expect("advice");
    assert!(adv.change.contains("lower ttl to 8 s"), "{}", adv.change);
    assert!(adv.drill.contains("ttl = \"8s\""), "{}", adv.drill);
    // Negative control: ttl 10 s (lower bound 8 s, worst 12 s) is at risk, not cannot.
    assert_eq!(verdicts(&f("10s"))[0].2, Verdict::AtRisk);
    assert_eq!(verdicts(&f("8s"))[0].2, Verdict::Unproven);
}

#[test]
fn corruption_without_backups_cannot_meet() {
    let obj = "[domain.replication]\nmode = \"sync\"\n[domain.objectives.corruption]\nrpo = \"1h\"\nrto = \"4h\"\n";
    let v = verdicts(&format!("{PG}{obj}"));
    assert!(v.iter().all(|x| x.2 == Verdict::CannotMeet), "{v:?}");
    let with = format!("{PG}{obj}[domain.backups]\ntool = \"pgbackrest\"\ninterval = \"24h\"\narchive_timeout = \"60s\"\n");
    assert!(verdicts(&with).iter().all(|x| x.2 == Verdict::Unproven));
}

#[test]
fn one_zone_means_zone_loss_is_total_loss() {
    let text = format!(
        "{PG}[domain.replication]\nmode = \"sync\"\n[domain.placement]\nzones = [\"a\"]\n[domain.objectives.zone]\nrpo = \"0s\"\n"
    );
    let a = load(&text).expect("valid");
    let rep = assess(&a, &Evidence::default(), None);
    assert_eq!(rep.rows[0].verdict, Verdict::CannotMeet);
    assert!(rep.rows[0].trace[0].contains("replicas in one zone → zone loss = total loss"));
}

#[test]
fn every_problem_at_once_with_positions() {
    let text = format!(
        r#"[topology]
regions = {{ eu = ["a", "b"] }}

[[disruption]]
name = "dc-fire"
takes_out = ["c"]
{PG}[domain.objectives.node]
rpo = "0s"

[[capability]]
name = "checkout"
depends = [{{ domain = "ordres" }}]

[[capability]]
name = "x"
depends = [{{ capability = "y" }}]

[[capability]]
name = "y"
depends = [{{ capability = "x" }}]
"#
    );
    let err = load(&text).expect_err("invalid");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].starts_with("t.toml:6:14: unknown failure domain \"c\""),
        "{err}"
    );
    assert!(
        lines[1].starts_with(
            "t.toml:23:23: capability \"checkout\" depends on unknown domain \"ordres\""
        ),
        "{err}"
    );
    assert!(
        lines[2].contains("dependency cycle between capabilities: x → y → x"),
        "{err}"
    );
    assert!(lines[2].starts_with("t.toml:"), "{err}");
}

#[test]
fn after_cycle_is_an_error() {
    let text = format!(
        "{PG}[domain.objectives.node]\nrpo = \"0s\"\n[[capability]]\nname = \"c\"\ndepends = [\n  {{ domain = \"orders\", after = [\"orders\"] }},\n]\n"
    );
    let err = load(&text).expect_err("cycle");
    assert!(
        err.contains("dependency cycle in capability \"c\": orders → orders"),
        "{err}"
    );
    assert!(err.starts_with("t.toml:17:3:"), "{err}");
}

#[test]
fn version_1_watch_example_still_loads() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/watch-pg.toml"
    ))
    .expect("example");
    let a = load(&text).expect("v1 file");
    assert_eq!(a.domains[0].objectives.len(), 2);
}

fn checkout() -> firedrill_assess::Architecture {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/checkout.toml"
    ))
    .expect("example");
    parse(
        firedrill_stores::watch_kinds(),
        firedrill_stores::knowledge(),
        Path::new("examples/checkout.toml"),
        text,
    )
    .expect("valid")
    .0
}

/// The example with a passing orders-node drill on record and a live probe
/// that found the orders server as declared and the session exposure above its RPO.
fn checkout_report() -> firedrill_assess::Report {
    let a = checkout();
    let mut ev = Evidence::default();
    ev.drills.insert(
        "orders-node".into(),
        vec![RunFigures {
            run_dir: "runs/orders-node-1".into(),
            started_at: "2025-01-01T00:00:00Z".into(),
            trials: vec![TrialFigures {
                inconclusive: false,
                rpo_s: 0.0,
                drill_rpo_met: Some(true),
                drill_rpo_objective_s: Some(0.0),
                rto_s: Some(31.2),
            }],
        }],
    );
    let mut live = Live::default();
    for d in &a.domains {
        live.domains.insert(
            d.name.clone(),
            DomainLive {
                reached: true,
                ..Default::default()
            },
        );
    }
    let orders = live.domains.get_mut("orders").expect("orders");
    orders
        .settings
        .insert("synchronous_standby_names".into(), "ANY 1 (n2)".into());
    orders.mismatches = firedrill_stores::knowledge()
        .kind("postgres")
        .expect("postgres")
        .mismatches(&a.domains[0], &orders.settings);
    live.domains
        .get_mut("session")
        .expect("session")
        .exposure
        .insert("node".into(), (7.2, true));
    assess(&a, &ev, Some(&live))
}

#[test]
fn checkout_shows_every_verdict_kind() {
    let rep = checkout_report();
    for v in ["meets", "unproven", "at risk", "cannot meet"] {
        assert!(rep.counts[v] > 0, "{v}: {:?}", rep.counts);
    }
}

#[test]
fn checkout_offline_text_and_json_snapshots() {
    let a = checkout();
    let rep = assess(&a, &Evidence::default(), None);
    insta::assert_snapshot!(
        "checkout_offline_text",
        firedrill_assess::render::render_text(&rep, false)
    );
    let rep = checkout_report();
    insta::assert_snapshot!(
        "checkout_evidence_live_text",
        firedrill_assess::render::render_text(&rep, false)
    );
    insta::assert_snapshot!(
        "checkout_evidence_live_json",
        firedrill_assess::render::render_json(&rep)
    );
}

/// Every drill the advice proposes is a spec firedrill runs: its lab and
/// its drill validate against the stores of this build.
#[test]
fn every_advised_drill_validates() {
    let reports = [
        assess(&checkout(), &Evidence::default(), None),
        checkout_report(),
    ];
    let mut n = 0;
    for rep in &reports {
        for r in &rep.rows {
            let Some(a) = &r.advice else { continue };
            let path = Path::new("advice.toml");
            let spec = firedrill_spec::LoadedSpec::parse(path, a.drill.clone())
                .unwrap_or_else(|e| panic!("{}/{}: {e}\n{}", r.subject, r.objective, a.drill));
            let stores = firedrill_stores::specs();
            let mut errs = firedrill_spec::validate_lab(&spec, &stores);
            errs.extend(firedrill_spec::validate_drill(&spec, None, &stores));
            assert!(
                errs.is_empty(),
                "{}/{}: {}\n{}",
                r.subject,
                r.objective,
                spec.fail(errs),
                a.drill
            );
            n += 1;
        }
    }
    assert!(n > 10, "only {n} advised drills");
}

/// The derivation cites the factor table's measured rows of the domain's
/// own mechanism, and a newer run of the same drill in the history
/// replaces the table's figure.
#[test]
fn derivation_cites_the_measured_factor_table() {
    let patroni: Vec<_> = firedrill_assess::factors::table()
        .iter()
        .filter(|f| f.mechanism.as_deref() == Some("patroni"))
        .collect();
    assert!(
        !patroni.is_empty(),
        "docs/what-moves-rpo-rto.json has no Patroni row: run scripts/what-moves-rpo-rto.py"
    );
    let text = format!(
        "{PG}[domain.failover]\nkind = \"patroni\"\n[domain.objectives.node]\nrto = \"1m\"\n"
    );
    let a = load(&text).expect("valid");
    let rep = assess(&a, &Evidence::default(), None);
    let cited = rep.rows[0]
        .trace
        .iter()
        .find(|t| t.starts_with("measured, Patroni"))
        .unwrap_or_else(|| panic!("{:?}", rep.rows[0].trace))
        .clone();
    let first = &patroni[0].runs[0].figures;
    assert!(cited.contains(&first.drill), "{cited}");
    assert!(cited.contains("docs/what-moves-rpo-rto.md"), "{cited}");
    // A sentinel domain cites no Patroni row (negative control).
    let sentinel = "[[domain]]\nname = \"s\"\n[domain.store]\nkind = \"redis\"\n[[domain.store.nodes]]\nname = \"n1\"\naddr = \"127.0.0.1:1\"\n[[domain.store.nodes]]\nname = \"n2\"\naddr = \"127.0.0.1:2\"\n[domain.failover]\nkind = \"sentinel\"\n[domain.objectives.node]\nrto = \"1m\"\n";
    let rep = assess(&load(sentinel).expect("valid"), &Evidence::default(), None);
    assert!(
        rep.rows[0].trace.iter().all(|t| !t.contains("Patroni")),
        "{:?}",
        rep.rows[0].trace
    );
    // A newer run of the cited drill: its median replaces the table's.
    let mut ev = Evidence::default();
    ev.drills.insert(
        first.drill.clone(),
        vec![RunFigures {
            run_dir: "runs/newer".into(),
            started_at: "2999-01-01T00:00:00Z".into(),
            trials: [12.5, 12.25, 99.0]
                .iter()
                .map(|r| TrialFigures {
                    inconclusive: false,
                    rpo_s: 0.0,
                    drill_rpo_met: Some(true),
                    drill_rpo_objective_s: Some(0.0),
                    rto_s: Some(*r),
                })
                .collect(),
        }],
    );
    let rep = assess(&a, &ev, None);
    let cited = rep.rows[0]
        .trace
        .iter()
        .find(|t| t.starts_with("measured, Patroni"))
        .expect("cited")
        .clone();
    assert!(
        cited.contains("RTO 12.5 s") && cited.contains("history 2999-01-01T00:00:00Z"),
        "{cited}"
    );
}
