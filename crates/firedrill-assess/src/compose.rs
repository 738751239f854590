//! Capability composition, pure: RPO is the worst of the domains every
//! write must survive; RTO is the longest path through the dependencies
//! (the worst of parallel ones, the sum of sequential ones). Each result
//! names the dependency that dominates it.

use crate::derive::{secs, Bound};

/// One dependency as composition sees it.
#[derive(Debug, Clone)]
pub struct Part {
    pub name: String,
    pub must_survive: bool,
    pub rpo: Bound,
    pub rto: Bound,
    /// Added to the RTO after the part itself is back (a rebuild).
    pub extra: f64,
    /// Parts (indices) this one waits for. Must be acyclic (validated).
    pub after: Vec<usize>,
}

/// A composed figure and who dominates it.
#[derive(Debug, Clone)]
pub struct Composed {
    pub bound: Bound,
    /// The dominating dependency (RPO), or the critical path (RTO).
    pub dominant: Vec<String>,
}

fn worse(a: &Bound, b: &Bound) -> bool {
    (a.lower, a.strict as u8, a.upper.unwrap_or(f64::INFINITY))
        > (b.lower, b.strict as u8, b.upper.unwrap_or(f64::INFINITY))
}

/// The worst RPO of the must-survive parts.
pub fn rpo(parts: &[Part]) -> Composed {
    let must: Vec<&Part> = parts.iter().filter(|p| p.must_survive).collect();
    if must.is_empty() {
        return Composed {
            bound: Bound::exact(
                0.0,
                "no dependency must survive → nothing acknowledged is at stake",
            ),
            dominant: vec![],
        };
    }
    let lower = must
        .iter()
        .map(|p| p.rpo.lower)
        .fold(f64::NEG_INFINITY, f64::max);
    let strict = must.iter().any(|p| p.rpo.lower == lower && p.rpo.strict);
    let upper = must
        .iter()
        .map(|p| p.rpo.upper)
        .try_fold(0.0f64, |m, u| u.map(|u| m.max(u)));
    let mut dom = must[0];
    for p in &must[1..] {
        if worse(&p.rpo, &dom.rpo) {
            dom = p;
        }
    }
    let names: Vec<&str> = must.iter().map(|p| p.name.as_str()).collect();
    let bound = Bound {
        lower,
        strict,
        upper,
        trace: vec![format!(
            "RPO = worst of the must-survive domains ({}) → {} dominates: {}",
            names.join(", "),
            dom.name,
            dom.rpo.describe()
        )],
    };
    Composed {
        bound,
        dominant: vec![dom.name.clone()],
    }
}

/// A part's finish time (lower, upper) and the path to it.
type Finish = (f64, Option<f64>, Vec<usize>);

/// The longest recovery path.
pub fn rto(parts: &[Part]) -> Composed {
    let n = parts.len();
    // finish[i] = (lower, upper, path), memoized; `after` is acyclic.
    let mut memo: Vec<Option<Finish>> = vec![None; n];
    fn finish(i: usize, parts: &[Part], memo: &mut Vec<Option<Finish>>, depth: usize) -> Finish {
        if let Some(m) = &memo[i] {
            return m.clone();
        }
        let p = &parts[i];
        let (mut lo, mut hi, mut path) = (0.0f64, Some(0.0f64), Vec::new());
        if depth <= parts.len() {
            for &j in p.after.iter().filter(|j| **j < parts.len()) {
                let (l, h, pa) = finish(j, parts, memo, depth + 1);
                if l > lo || path.is_empty() && l >= lo {
                    lo = l;
                    path = pa;
                }
                hi = match (hi, h) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
        }
        path.push(i);
        let lo = lo + p.rto.lower + p.extra;
        let hi = match (hi, p.rto.upper) {
            (Some(a), Some(b)) => Some(a + b + p.extra),
            _ => None,
        };
        memo[i] = Some((lo, hi, path.clone()));
        (lo, hi, path)
    }
    let mut best: Option<(f64, Vec<usize>)> = None;
    let mut upper = Some(0.0f64);
    for i in 0..n {
        let (l, h, path) = finish(i, parts, &mut memo, 0);
        if best.as_ref().is_none_or(|(b, _)| l > *b) {
            best = Some((l, path));
        }
        upper = match (upper, h) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
    }
    let Some((lower, path)) = best else {
        return Composed {
            bound: Bound::exact(0.0, "no dependencies"),
            dominant: vec![],
        };
    };
    let names: Vec<String> = path.iter().map(|i| parts[*i].name.clone()).collect();
    let steps: Vec<String> = path
        .iter()
        .map(|i| {
            let p = &parts[*i];
            if p.extra > 0.0 {
                format!(
                    "{} {} + rebuild {}",
                    p.name,
                    p.rto.describe(),
                    secs(p.extra)
                )
            } else {
                format!("{} {}", p.name, p.rto.describe())
            }
        })
        .collect();
    let line = if names.len() > 1 {
        format!(
            "RTO = longest recovery path: {} (sequential: summed) → {}",
            steps.join(" then "),
            secs(lower)
        )
    } else {
        format!(
            "RTO = worst of the parallel dependencies → {} dominates: {}",
            names.first().cloned().unwrap_or_default(),
            steps.first().cloned().unwrap_or_default()
        )
    };
    Composed {
        bound: Bound {
            lower,
            strict: false,
            upper,
            trace: vec![line],
        },
        dominant: names,
    }
}
