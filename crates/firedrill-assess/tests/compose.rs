//! Capability composition: RPO = worst must-survive domain, RTO = longest
//! recovery path; monotone in every domain's figure.

use firedrill_assess::compose::{rpo, rto, Part};
use firedrill_assess::derive::Bound;
use proptest::prelude::*;

fn part(name: &str, must: bool, rpo_lo: f64, rto_lo: f64, after: Vec<usize>) -> Part {
    Part {
        name: name.into(),
        must_survive: must,
        rpo: Bound::range(rpo_lo, Some(rpo_lo + 1.0), "test"),
        rto: Bound::range(rto_lo, Some(rto_lo + 1.0), "test"),
        extra: 0.0,
        after,
    }
}

#[test]
fn rpo_is_the_worst_must_survive_domain_and_names_it() {
    let parts = vec![
        part("orders", true, 0.0, 20.0, vec![]),
        part("events", true, 3.0, 6.0, vec![]),
        // Rebuildable: its (large) RPO does not count.
        part("session", false, 100.0, 5.0, vec![]),
    ];
    let c = rpo(&parts);
    assert_eq!(c.bound.lower, 3.0);
    assert_eq!(c.bound.upper, Some(4.0));
    assert_eq!(c.dominant, vec!["events".to_string()]);
    assert!(
        c.bound.trace[0].contains("events dominates"),
        "{:?}",
        c.bound.trace
    );
}

#[test]
fn rto_is_worst_of_parallel_and_sum_of_sequential() {
    // Parallel: the worst.
    let par = vec![
        part("a", true, 0.0, 20.0, vec![]),
        part("b", true, 0.0, 6.0, vec![]),
    ];
    let c = rto(&par);
    assert_eq!(c.bound.lower, 20.0);
    assert_eq!(c.dominant, vec!["a".to_string()]);
    // Sequential: b waits for a, plus a 120 s rebuild: the sum.
    let mut seq = vec![
        part("a", true, 0.0, 20.0, vec![]),
        part("b", false, 0.0, 6.0, vec![0]),
    ];
    seq[1].extra = 120.0;
    let c = rto(&seq);
    assert_eq!(c.bound.lower, 146.0);
    assert_eq!(c.bound.upper, Some(21.0 + 7.0 + 120.0));
    assert_eq!(c.dominant, vec!["a".to_string(), "b".to_string()]);
    // Negative control: without the `after`, it is parallel again.
    seq[1].after.clear();
    assert_eq!(rto(&seq).bound.lower, 126.0);
}

#[test]
fn strict_and_unreachable_propagate() {
    let mut a = part("async", true, 0.0, 1.0, vec![]);
    a.rpo = Bound::above(0.0, None, "async");
    let b = part("sync", true, 0.0, 1.0, vec![]);
    let c = rpo(&[a.clone(), b.clone()]);
    assert!(c.bound.strict && c.bound.cannot(0.0));
    assert_eq!(c.bound.upper, None);
    let mut gone = b.clone();
    gone.rpo = Bound::never("no backups");
    assert!(rpo(&[a, gone]).bound.lower.is_infinite());
}

fn arb_parts() -> impl Strategy<Value = Vec<(bool, f64, f64, f64, Vec<usize>)>> {
    prop::collection::vec(
        (
            any::<bool>(),
            0.0f64..1000.0,
            0.0f64..1000.0,
            0.0f64..100.0,
            prop::collection::vec(0usize..8, 0..3),
        ),
        1..8,
    )
}

/// Only edges to earlier parts, so the graph is acyclic (as validated).
fn build(spec: &[(bool, f64, f64, f64, Vec<usize>)]) -> Vec<Part> {
    spec.iter()
        .enumerate()
        .map(|(i, (must, r, t, extra, after))| {
            let mut p = part(
                &format!("d{i}"),
                *must,
                *r,
                *t,
                after.iter().copied().filter(|j| *j < i).collect(),
            );
            p.extra = *extra;
            p
        })
        .collect()
}

proptest! {
    #[test]
    fn never_better_than_the_worst_must_survive_domain(spec in arb_parts()) {
        let parts = build(&spec);
        let c = rpo(&parts);
        for p in parts.iter().filter(|p| p.must_survive) {
            prop_assert!(c.bound.lower >= p.rpo.lower);
            prop_assert!(c.bound.upper.unwrap_or(f64::INFINITY) >= p.rpo.upper.unwrap_or(f64::INFINITY));
        }
        let t = rto(&parts);
        for p in &parts {
            prop_assert!(t.bound.lower >= p.rto.lower + p.extra - 1e-9);
        }
    }

    #[test]
    fn monotone_in_each_domains_figure(spec in arb_parts(), which in 0usize..8, bump in 0.0f64..500.0) {
        let parts = build(&spec);
        let i = which % parts.len();
        let mut worse = parts.clone();
        worse[i].rpo.lower += bump;
        worse[i].rpo.upper = worse[i].rpo.upper.map(|u| u + bump);
        worse[i].rto.lower += bump;
        worse[i].rto.upper = worse[i].rto.upper.map(|u| u + bump);
        let (a, b) = (rpo(&parts).bound, rpo(&worse).bound);
        prop_assert!(b.lower >= a.lower);
        prop_assert!(b.upper.unwrap_or(f64::INFINITY) >= a.upper.unwrap_or(f64::INFINITY));
        let (a, b) = (rto(&parts).bound, rto(&worse).bound);
        prop_assert!(b.lower >= a.lower - 1e-9);
        prop_assert!(b.upper.unwrap_or(f64::INFINITY) >= a.upper.unwrap_or(f64::INFINITY) - 1e-9);
    }
}
