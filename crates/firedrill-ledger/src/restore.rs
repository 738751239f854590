//! Data disasters (DESIGN.md, "Semantics for the next kinds of disaster"):
//! a bad transaction destroys rows while the workload goes on, and a
//! restore to a point before it is the recovery. What the timeline records
//! of them, and the figures the ledger gives against the restored store.

use crate::rpo::rel;
use crate::{AuditSet, Micros, Op, Outcome};
use serde::{Deserialize, Serialize};

/// The action of a [`Damage`] that destroyed every copy of a node's data
/// (the `wipe` fault) rather than chosen rows.
pub const WIPE: &str = "wipe";

/// The bad transaction, as the store identifies it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Damage {
    /// `delete_rows`, …, or [`WIPE`].
    pub action: String,
    /// The store's id of the bad change (PostgreSQL: its xid).
    pub xid: u64,
    /// Where it sits in the log (PostgreSQL: the LSN after its commit).
    pub lsn: String,
    /// The ledger ids it destroyed, read before it committed.
    pub ids: Vec<u64>,
    /// Observer time of its commit.
    pub t_commit: Micros,
    /// Seconds since the archive last took a WAL segment, read just before
    /// the bad transaction: what a restore without a flush cannot bring
    /// back (the predicted RPO of such a restore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_age_s: Option<f64>,
}

impl Damage {
    /// A wipe destroyed data, not chosen rows: nothing acknowledged after
    /// it is a restore's documented trade, so its loss is counted as a
    /// failover's (every acknowledged write missing), and without a
    /// restore it is a failover (a Raft quorum may have kept everything).
    pub fn is_wipe(&self) -> bool {
        self.action == WIPE
    }
}

/// Where the store put a write in its own order: etcd's (cluster id,
/// revision). A restore point in the same terms says exactly which
/// acknowledged writes the restore must bring back and which it must lose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Which history the index counts in (etcd: the cluster id; a restored
    /// cluster starts a new one and reuses the revisions after its point).
    pub epoch: u64,
    /// The place in that history (etcd: the revision of the put).
    pub index: u64,
}

/// A backup a drill's `backup` step took, on the observer's clock.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackupMark {
    /// The step started: the backup holds the store as of about then.
    pub t_start: Micros,
    pub t_done: Micros,
    /// The tool's name for it (a snapshot file).
    pub label: String,
    /// Its point in the store's own order, when the store has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    pub detail: String,
}

/// The restore checked against the store's own order: each acknowledged
/// write of the point's epoch belongs at or before the point (must be
/// back) or past it (must be gone).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointFigures {
    pub epoch: u64,
    /// The restore point (etcd: the snapshot's revision).
    pub index: u64,
    /// Acknowledged writes the store placed past the point: what a restore
    /// to it must lose.
    pub acked_past: u64,
    /// Of those, present after the restore (must be 0).
    pub kept_past: u64,
    /// Acknowledged at or before the point and missing (must be 0).
    pub lost_at_or_before: u64,
}

/// Classifies every acknowledged write with a position against the
/// restore `point`; writes of another epoch (the restored store's own)
/// are not the point's to judge.
pub fn point_figures(
    positions: &[(u64, Position)],
    audit: &AuditSet,
    point: Position,
) -> PointFigures {
    let present = |id: u64| audit.ids().binary_search(&id).is_ok();
    let mut f = PointFigures {
        epoch: point.epoch,
        index: point.index,
        ..PointFigures::default()
    };
    for (seq, p) in positions.iter().filter(|(_, p)| p.epoch == point.epoch) {
        if p.index > point.index {
            f.acked_past += 1;
            f.kept_past += u64::from(present(*seq));
        } else if !present(*seq) {
            f.lost_at_or_before += 1;
        }
    }
    f
}

/// What the restore did, with its phases on the observer's clock.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RestoreMarks {
    /// The target asked for, as the spec said it, and as the tool was told.
    pub target: String,
    pub tool_target: String,
    pub start: Micros,
    /// The archive flush (pg_switch_wal, then waiting for the segment).
    pub flushed: Option<Micros>,
    /// The backup is back on disk (the tool's restore command returned).
    pub fetched: Option<Micros>,
    /// The server finished replaying to its target (`redo done`).
    pub replayed: Option<Micros>,
    /// The server accepts writes (promoted).
    pub promoted: Option<Micros>,
    /// The server's log says it stopped at the target.
    pub reached: bool,
    /// The server's own words about where it stopped, or why it failed.
    pub detail: String,
    /// The point restored in the store's own order (etcd: the snapshot's
    /// cluster and revision), when the store has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    /// A restore into a new node: the scratch node's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// When the clients were moved to the new node (they wrote to the old
    /// primary until then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved: Option<Micros>,
    /// The backup tool's own check of its repository, run after the
    /// restore (before any fault on the backups was healed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<BackupCheck>,
}

/// The backup tool's own check of its repository (pgBackRest's `verify`):
/// checksums and sizes, never a restore. Shown beside the restore's
/// verdict, which is what proves the backup.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackupCheck {
    /// The command that ran (`pgbackrest verify`).
    pub command: String,
    /// The tool's own status word (`ok`, `error`), or `failed` when the
    /// command itself failed.
    pub status: String,
    /// The tool's own summary, or why it could not run.
    pub detail: String,
    /// What the tool's inventory says at the same moment (`pgbackrest
    /// info`: its status, the newest backup, the archive's first and last
    /// segment): how the backups look to someone who only lists them.
    #[serde(default)]
    pub inventory: String,
    /// Holes between the WAL ranges the tool found in its archive (first
    /// and last missing segment): a restore cannot replay across one,
    /// whatever the status says.
    #[serde(default)]
    pub wal_gaps: Vec<String>,
}

/// The figures of a restore against the ledger.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RestoreFigures {
    /// The bad change the restore undoes (`delete_rows`, `update_rows`, …).
    #[serde(default)]
    pub action: String,
    pub target: String,
    pub reached: bool,
    pub detail: String,
    /// Acknowledged before t_fault and missing after the restore: good data
    /// it did not bring back (archive lag, a broken archive).
    pub lost_before: u64,
    /// Acknowledged at or after t_fault and missing: the price of restoring
    /// to before the fault (not an RPO violation). DESIGN.md says "invoked
    /// after t_fault"; an op invoked before it and acknowledged after it is
    /// the same trade, so it is counted here too.
    pub rolled_back: u64,
    /// First and last rolled-back acknowledgement, relative to t_fault.
    pub rolled_back_span_s: Option<[f64; 2]>,
    /// Ids the fault destroyed, and those still missing after the restore
    /// (must be 0, else the target was wrong).
    pub damaged: u64,
    pub damaged_left: u64,
    /// Ids present after the restore whose payload is not what the
    /// workload wrote: counted as missing (in `lost_before`,
    /// `damaged_left`), since the acknowledged bytes did not survive.
    #[serde(default)]
    pub garbled: u64,
    /// The newest surviving write acknowledged before t_fault, relative to
    /// t_fault (≤ 0): what the restore really reached.
    pub recovery_point_s: Option<f64>,
    /// t_discovered − t_fault (`detect_after`).
    pub discovered_s: Option<f64>,
    /// Phases relative to t_fault.
    pub fetch_s: Option<f64>,
    pub replay_s: Option<f64>,
    pub promote_s: Option<f64>,
    /// RTO counted from discovery instead of from t_fault.
    pub rto_from_discovery_s: Option<f64>,
    /// Against the restore point in the store's own order, when the store
    /// records each acknowledged write's position (etcd's revision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point: Option<PointFigures>,
    /// A restore test (no fault): t_fault is the restore's start, and
    /// `lost_before` counts what the backups failed to bring back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub test: bool,
    /// The scratch node restored into (`into = "new_node"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// From the restore's start until the restored server accepted writes
    /// (promoted): a restore test's RTO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// The backup tool's own check of its repository, beside the verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_check: Option<BackupCheck>,
}

/// Classifies the ledger against the restored store. `lost_before` and its
/// window are returned for the RPO: (figures, lost_before t_done's).
pub(crate) fn figures(
    ops: &[Op],
    audit: &AuditSet,
    damage: &Damage,
    marks: Option<&RestoreMarks>,
    discovered: Option<Micros>,
    t_fault: Micros,
) -> (RestoreFigures, Vec<Micros>) {
    let present = |id: u64| audit.ids().binary_search(&id).is_ok();
    let mut lost_before = Vec::new();
    let mut rolled = Vec::new();
    let mut point: Option<Micros> = None;
    for op in ops.iter().filter(|o| o.outcome == Outcome::Ok) {
        let here = present(op.seq);
        if op.t_done < t_fault {
            if here {
                point = Some(point.map_or(op.t_done, |p| p.max(op.t_done)));
            } else {
                lost_before.push(op.t_done);
            }
        } else if !here {
            rolled.push(op.t_done);
        }
    }
    let span = match (rolled.iter().min(), rolled.iter().max()) {
        (Some(a), Some(b)) => Some([rel(*a, t_fault), rel(*b, t_fault)]),
        _ => None,
    };
    let at = |t: Option<Micros>| t.map(|t| rel(t, t_fault));
    let f = RestoreFigures {
        action: damage.action.clone(),
        target: marks.map(|m| m.target.clone()).unwrap_or_default(),
        reached: marks.is_some_and(|m| m.reached),
        detail: marks
            .map(|m| m.detail.clone())
            .unwrap_or_else(|| "no restore ran".into()),
        lost_before: lost_before.len() as u64,
        rolled_back: rolled.len() as u64,
        rolled_back_span_s: span,
        damaged: damage.ids.len() as u64,
        damaged_left: damage.ids.iter().filter(|&&id| !present(id)).count() as u64,
        garbled: audit.garbled() as u64,
        recovery_point_s: at(point),
        discovered_s: at(discovered),
        fetch_s: at(marks.and_then(|m| m.fetched)),
        replay_s: at(marks.and_then(|m| m.replayed)),
        promote_s: at(marks.and_then(|m| m.promoted)),
        rto_from_discovery_s: None,
        point: None,
        test: false,
        node: marks.and_then(|m| m.node.clone()),
        duration_s: marks.and_then(|m| Some(rel(m.promoted?, m.start))),
        backup_check: marks.and_then(|m| m.check.clone()),
    };
    (f, lost_before)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(seq: u64, t_invoke: Micros, t_done: Micros) -> Op {
        Op {
            seq,
            t_invoke,
            t_done,
            outcome: Outcome::Ok,
        }
    }

    #[test]
    fn exact_restore_rolls_back_only_what_came_after() {
        // 1..=10 before the fault at t=100, 11..=15 after it; the fault
        // deleted 2, 4, 6; the restore brought back 1..=10 and nothing after.
        let ops: Vec<Op> = (1..=15).map(|s| op(s, s * 10 - 5, s * 10)).collect();
        let damage = Damage {
            ids: vec![2, 4, 6],
            ..Damage::default()
        };
        let audit = AuditSet::new((1..=10).collect());
        let marks = RestoreMarks {
            reached: true,
            ..RestoreMarks::default()
        };
        let (f, lost) = figures(&ops, &audit, &damage, Some(&marks), Some(150), 105);
        assert_eq!(f.lost_before, 0);
        assert!(lost.is_empty());
        assert_eq!(f.rolled_back, 5);
        assert_eq!(f.damaged, 3);
        assert_eq!(f.damaged_left, 0);
        assert_eq!(f.recovery_point_s, Some((100.0 - 105.0) / 1e6));
        assert_eq!(f.rolled_back_span_s, Some([5e-6, 45e-6]));
    }

    #[test]
    fn the_point_splits_acknowledged_writes_by_position() {
        let old = 7;
        // Revisions 10..=19 in the old cluster, the snapshot at 14; the
        // restored cluster (epoch 8) reuses 15.. for its own writes.
        let mut positions: Vec<(u64, Position)> = (1..=10)
            .map(|s| {
                (
                    s,
                    Position {
                        epoch: old,
                        index: 9 + s,
                    },
                )
            })
            .collect();
        positions.extend((11..=13).map(|s| {
            (
                s,
                Position {
                    epoch: 8,
                    index: 4 + s,
                },
            )
        }));
        let point = Position {
            epoch: old,
            index: 14,
        };
        // Exact: 1..=5 back (revisions 10..=14), 6..=10 gone, 11..=13 new.
        let exact = AuditSet::new(vec![1, 2, 3, 4, 5, 11, 12, 13]);
        let f = point_figures(&positions, &exact, point);
        assert_eq!((f.acked_past, f.kept_past, f.lost_at_or_before), (5, 0, 0));
        assert_eq!((f.epoch, f.index), (old, 14));
        // A restore of a later point keeps one past it and the restored
        // cluster's writes are never judged against the old point.
        let later = AuditSet::new(vec![1, 2, 3, 4, 5, 6]);
        let f = point_figures(&positions, &later, point);
        assert_eq!((f.acked_past, f.kept_past, f.lost_at_or_before), (5, 1, 0));
        // An older one loses what the point holds.
        let older = AuditSet::new(vec![1, 2, 3]);
        let f = point_figures(&positions, &older, point);
        assert_eq!((f.kept_past, f.lost_at_or_before), (0, 2));
    }

    #[test]
    fn archive_lag_is_lost_before_and_a_wrong_target_leaves_damage() {
        let ops: Vec<Op> = (1..=10).map(|s| op(s, s * 10 - 5, s * 10)).collect();
        let damage = Damage {
            ids: vec![1, 2],
            ..Damage::default()
        };
        // Restored only up to seq 7; 1 and 2 still gone (restored past the
        // bad transaction).
        let audit = AuditSet::new((3..=7).collect());
        let (f, lost) = figures(&ops, &audit, &damage, None, None, 1000);
        assert_eq!(f.lost_before, 5, "1, 2, 8, 9, 10");
        assert_eq!(lost.len(), 5);
        assert_eq!(f.damaged_left, 2);
        assert!(!f.reached);
        assert_eq!(f.rolled_back, 0);
    }
}
