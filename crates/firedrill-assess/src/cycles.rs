//! Dependency cycles: a capability that (through others) depends on
//! itself, or dependencies that wait for each other (`after`), have no
//! recovery order, so no RTO. Each cycle is reported once, at the
//! dependency that closes it.

use crate::model::{Capability, Target};
use firedrill_spec::Diagnostic;
use firedrill_watch::Loaded;

#[derive(Clone, Copy, PartialEq)]
enum Mark {
    New,
    Open,
    Done,
}

/// Depth-first search over `edges`; calls `found(from, to_index_in_edges, path)`
/// for each back edge; returns the nodes in post-order (dependencies first).
fn search(edges: &[Vec<usize>], found: &mut dyn FnMut(usize, usize, &[usize])) -> Vec<usize> {
    let n = edges.len();
    let mut mark = vec![Mark::New; n];
    let mut order = Vec::new();
    let mut path = Vec::new();
    fn visit(
        v: usize,
        edges: &[Vec<usize>],
        mark: &mut [Mark],
        path: &mut Vec<usize>,
        order: &mut Vec<usize>,
        found: &mut dyn FnMut(usize, usize, &[usize]),
    ) {
        mark[v] = Mark::Open;
        path.push(v);
        for (k, &w) in edges[v].iter().enumerate() {
            if w >= mark.len() {
                continue;
            }
            match mark[w] {
                Mark::New => visit(w, edges, mark, path, order, found),
                Mark::Open => {
                    let start = path.iter().position(|x| *x == w).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(w);
                    found(v, k, &cycle);
                }
                Mark::Done => {}
            }
        }
        path.pop();
        mark[v] = Mark::Done;
        order.push(v);
    }
    for v in 0..n {
        if mark[v] == Mark::New {
            visit(v, edges, &mut mark, &mut path, &mut order, found);
        }
    }
    order
}

/// Reports every cycle; returns the capabilities in evaluation order.
pub fn check(l: &Loaded, caps: &[Capability], out: &mut Vec<Diagnostic>) -> Vec<usize> {
    for (ci, c) in caps.iter().enumerate() {
        let edges: Vec<Vec<usize>> = c.depends.iter().map(|d| d.after.clone()).collect();
        search(&edges, &mut |from, _, cycle| {
            let names: Vec<&str> = cycle.iter().map(|i| c.depends[*i].name.as_str()).collect();
            let span = l.file.capabilities[ci].depends[from].span();
            out.push(l.at(
                span,
                format!(
                    "dependency cycle in capability {:?}: {} (each waits for the next to recover)",
                    c.name,
                    names.join(" → ")
                ),
            ));
        });
    }
    // Capability → the capabilities it depends on, and where each edge is written.
    let mut edges = Vec::new();
    let mut at = Vec::new();
    for c in caps {
        let mut e = Vec::new();
        let mut a = Vec::new();
        for (di, d) in c.depends.iter().enumerate() {
            if let Target::Capability(t) = d.target {
                e.push(t);
                a.push(di);
            }
        }
        edges.push(e);
        at.push(a);
    }
    search(&edges, &mut |from, k, cycle| {
        let names: Vec<&str> = cycle.iter().map(|i| caps[*i].name.as_str()).collect();
        let span = l.file.capabilities[from].depends[at[from][k]].span();
        out.push(l.at(
            span,
            format!(
                "dependency cycle between capabilities: {}",
                names.join(" → ")
            ),
        ));
    })
}
