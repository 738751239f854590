//! The corruption class: a data disaster. One transaction on the primary
//! destroys data (`delete_rows`, `update_rows`, `truncate`, `drop_table`,
//! or the user's own `sql` from a file); it replicates to every standby,
//! so nothing heals it: firedrill journals no heal, and the recovery is a
//! restore.

use crate::context::{FaultContext, FaultStep, HealWith};
use crate::journal::HealAction;
use crate::{Fault, FaultError};
use async_trait::async_trait;
use firedrill_spec::FaultAction;
use firedrill_targets::{Corruption, RowPick};
use std::time::Duration;

pub(crate) struct Corrupt;

/// The rows a row-picking corruption hits: `seqs = [from, to]`, else
/// `fraction` (default 0.5).
fn rows(step: &FaultStep<'_>) -> RowPick {
    let seqs = step.attrs["seqs"]
        .as_array()
        .and_then(|a| match a.as_slice() {
            [f, t] => Some((f.as_u64()?, t.as_u64()?)),
            _ => None,
        });
    match seqs {
        Some((from, to)) => RowPick::Seqs { from, to },
        None => RowPick::Fraction(step.attrs["fraction"].as_f64().unwrap_or(0.5)),
    }
}

/// The step as the target carries it out. `sql` reads its statement now:
/// the spec check made sure the file was there when the drill began.
fn corruption(step: &FaultStep<'_>) -> Result<Corruption, FaultError> {
    Ok(match step.action {
        FaultAction::DeleteRows => Corruption::DeleteRows { rows: rows(step) },
        FaultAction::UpdateRows => Corruption::UpdateRows { rows: rows(step) },
        FaultAction::Truncate => Corruption::Truncate,
        FaultAction::DropTable => Corruption::DropTable,
        FaultAction::Sql => {
            let path = step.attrs["sql_file"].as_str().unwrap_or_default();
            let statement = std::fs::read_to_string(path)
                .map_err(|e| FaultError::Invalid(format!("sql_file {path}: {e}")))?;
            Corruption::Sql {
                statement,
                source: path.to_string(),
            }
        }
        other => {
            return Err(FaultError::Invalid(format!(
                "{} is not a corruption",
                other.as_str()
            )))
        }
    })
}

#[async_trait]
impl Fault for Corrupt {
    fn validate(&self, step: &FaultStep<'_>, ctx: &dyn FaultContext) -> Result<(), FaultError> {
        match rows(step) {
            RowPick::Fraction(f) if !(f > 0.0 && f <= 1.0) => {
                return Err(FaultError::Invalid(format!(
                    "{} fraction {f} is not in (0, 1]",
                    step.action.as_str()
                )))
            }
            RowPick::Seqs { from, to } if from == 0 || from > to => {
                return Err(FaultError::Invalid(format!(
                    "{} seqs [{from}, {to}] is not a range of ledger seqs",
                    step.action.as_str()
                )))
            }
            _ => {}
        }
        if ctx.node(step.node).is_none() {
            return Err(FaultError::Invalid(format!("no node named {}", step.node)));
        }
        Ok(())
    }

    async fn inject(&self, step: &FaultStep<'_>, ctx: &dyn FaultContext) -> Result<(), FaultError> {
        let c = corruption(step)?;
        let damage = ctx.target().corrupt(step.node, &c).await?;
        let source = match &c {
            Corruption::Sql { source, .. } => format!(" from {source}"),
            _ => String::new(),
        };
        ctx.record_detail(format!(
            "{}{source}: xid {}, commit LSN {}, {} of the run's rows damaged",
            step.action.as_str(),
            damage.xid,
            damage.lsn,
            damage.ids.len()
        ));
        ctx.record_damage(damage);
        Ok(())
    }

    /// The transaction committed when `inject` returned; from then on the
    /// damage is on every replica.
    async fn in_effect(
        &self,
        _step: &FaultStep<'_>,
        _ctx: &dyn FaultContext,
    ) -> Result<bool, FaultError> {
        Ok(true)
    }

    async fn heal(&self, _action: &HealAction, _with: &HealWith<'_>) -> Result<(), FaultError> {
        Err(crate::wrong_heal("corruption"))
    }

    /// Nothing is owed to the watchdog: a committed transaction cannot be
    /// healed, only restored from a backup.
    fn ttl(&self, _step: &FaultStep<'_>) -> Option<Duration> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(attrs: &serde_json::Value) -> FaultStep<'_> {
        FaultStep {
            action: FaultAction::UpdateRows,
            node: "n1",
            link: Default::default(),
            attrs,
            process: None,
            for_: None,
            trial: 1,
            index: 0,
        }
    }

    #[test]
    fn seqs_win_over_the_default_fraction() {
        let a = serde_json::json!({ "fraction": 0.5, "seqs": [10, 20] });
        assert_eq!(rows(&step(&a)), RowPick::Seqs { from: 10, to: 20 });
        let a = serde_json::json!({ "fraction": 0.25, "seqs": null });
        assert_eq!(rows(&step(&a)), RowPick::Fraction(0.25));
    }

    #[test]
    fn sql_reads_its_file_and_a_missing_one_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("bad.sql");
        std::fs::write(&p, "DELETE FROM t;").unwrap();
        let a = serde_json::json!({ "sql_file": p.to_str().unwrap() });
        let mut s = step(&a);
        s.action = FaultAction::Sql;
        match corruption(&s).unwrap() {
            Corruption::Sql { statement, source } => {
                assert_eq!(statement, "DELETE FROM t;");
                assert_eq!(source, p.to_str().unwrap());
            }
            other => panic!("{other:?}"),
        }
        let a = serde_json::json!({ "sql_file": d.path().join("nope.sql").to_str().unwrap() });
        let mut s = step(&a);
        s.action = FaultAction::Sql;
        assert!(corruption(&s).unwrap_err().to_string().contains("nope.sql"));
    }
}
