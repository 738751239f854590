//! Data disasters on PostgreSQL: the bad transaction itself.

use super::{node_err, PgTarget};
use firedrill_ledger::Damage;
use firedrill_targets::TargetError;
use std::time::Duration;

/// Deletes `fraction` of this run's rows (every row whose seq falls in the
/// first `fraction` of each 1000) in ONE transaction, and returns its xid,
/// the LSN after its commit, and the ids it destroyed (its RETURNING list,
/// read before the commit). The xid is what an exact restore stops before.
pub async fn delete_rows(t: &PgTarget, node: &str, fraction: f64) -> Result<Damage, TargetError> {
    let mut c = t.connect_node(node, Duration::from_secs(5)).await?;
    let per_mille = (fraction * 1000.0).round().clamp(1.0, 1000.0) as i64;
    // Before the bad transaction: how stale the archive is (NULL when
    // nothing was archived yet, or archiving is off).
    let archive_age_s: Option<f64> = c
        .query_one(
            "SELECT extract(epoch FROM now() - last_archived_time)::float8 FROM pg_stat_archiver",
            &[],
        )
        .await
        .ok()
        .and_then(|r| r.get(0));
    let tx = c.transaction().await.map_err(|e| node_err(node, e))?;
    let xid: i64 = tx
        .query_one("SELECT txid_current()", &[])
        .await
        .map_err(|e| node_err(node, e))?
        .get(0);
    let rows = tx
        .query(
            "DELETE FROM firedrill_ledger WHERE run_id = $1 AND seq % 1000 < $2 RETURNING seq",
            &[&t.run_id, &per_mille],
        )
        .await
        .map_err(|e| node_err(node, e))?;
    tx.commit().await.map_err(|e| node_err(node, e))?;
    let lsn: String = c
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .map_err(|e| node_err(node, e))?
        .get(0);
    Ok(Damage {
        action: "delete_rows".into(),
        // txid_current() carries the epoch in its high bits; recovery
        // targets take the 32-bit xid.
        xid: (xid as u64) & 0xffff_ffff,
        lsn,
        ids: rows.iter().map(|r| r.get::<_, i64>(0) as u64).collect(),
        t_commit: 0,
        archive_age_s,
    })
}
