//! etcd for `firedrill assess`: Raft as its failover mechanism (the
//! election timeout bounds RTO) and an etcd lab like the domain. etcd's
//! timing is a command-line flag it does not report, so nothing is read
//! live.

use firedrill_assess::derive::{secs, Bound};
use firedrill_assess::kind::{
    spec_dur, AssessKind, FailoverKind, LabSketch, Params, SettingDef, SettingType,
};
use firedrill_assess::model::Domain;

pub struct EtcdAssess;

impl AssessKind for EtcdAssess {
    fn kind(&self) -> &'static str {
        "etcd"
    }
    fn lab(&self, d: &Domain) -> LabSketch {
        let p = match d.failover.automatic() {
            Some((m, p)) if m.name() == RaftFailover.name() => p.clone(),
            _ => firedrill_assess::kind::defaults(&RaftFailover),
        };
        LabSketch {
            table: format!(
                "kind = \"etcd\"\n\n[lab.etcd]\nmembers = {}\nelection = \"{}\"",
                if d.nodes.len() >= 5 { 5 } else { 3 },
                spec_dur(p.dur("election_timeout"))
            ),
            automatic: true,
            corruption: None,
        }
    }
}

pub struct RaftFailover;

const SETTINGS: &[SettingDef] = &[SettingDef {
    key: "election_timeout",
    ty: SettingType::Duration,
    // etcd's default.
    default: Some("1s"),
}];

impl FailoverKind for RaftFailover {
    fn name(&self) -> &'static str {
        "raft"
    }
    fn title(&self) -> &'static str {
        "Raft (built in)"
    }
    fn stores(&self) -> &'static [&'static str] {
        &["etcd"]
    }
    fn settings(&self) -> &'static [SettingDef] {
        SETTINGS
    }
    fn rto(&self, p: &Params) -> Bound {
        let e = p.secs("election_timeout");
        Bound::range(
            e,
            Some(2.0 * e),
            format!(
                "Raft election_timeout {} → RTO ≥ {} (randomized up to 2× = {})",
                secs(e),
                secs(e),
                secs(2.0 * e)
            ),
        )
    }
    fn tune(&self, p: &Params, t: f64) -> Option<(Params, String)> {
        let e = (t / 2.0).max(0.1);
        let mut q = p.clone();
        q.set_secs("election_timeout", e);
        Some((
            q,
            format!(
                "lower election_timeout to {} (heartbeat ≈ election / 10)",
                secs(e)
            ),
        ))
    }
}
