//! Data disasters on PostgreSQL: the bad transaction itself.
//!
//! Every corruption is ONE transaction on the primary that first takes
//! `txid_current()` (its xid is what an exact restore stops before), reads
//! the ids it destroys before it commits (a RETURNING list, or a SELECT
//! under a lock that keeps new rows out), and after the commit notes the
//! WAL position. The archive's age is read just before it begins: what a
//! restore without a flush cannot bring back.

use super::{node_err, PgTarget};
use firedrill_ledger::Damage;
use firedrill_targets::{Corruption, RowPick, TargetError};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio_postgres::types::ToSql;
use tokio_postgres::Transaction;

/// The run's rows whose payload is one the workload wrote (all of the
/// run's rows when no payload is known): the audit's notion of intact.
pub(crate) const INTACT: &str = "SELECT seq FROM firedrill_ledger WHERE run_id = $1 AND (cardinality($2::bytea[]) = 0 OR coalesce(payload = ANY($2::bytea[]), false))";

/// Flips every bit of the first byte: the row stays, its payload is bytes
/// the workload never wrote (same length, so only a content check sees
/// it). An empty payload becomes one byte.
const GARBLE: &str = "CASE WHEN length(payload) > 0 THEN set_byte(payload, 0, get_byte(payload, 0) # 255) ELSE '\\x00'::bytea END";

/// Runs `c` on `node` as one transaction and returns what it destroyed.
/// `payloads` are the bytes the run's clients write (for `sql`, whose
/// damage is the intact rows before the statement that are not intact
/// after it, in the same transaction).
pub async fn corrupt(
    t: &PgTarget,
    node: &str,
    c: &Corruption,
    payloads: &[Vec<u8>],
) -> Result<Damage, TargetError> {
    let mut conn = t.connect_node(node, Duration::from_secs(5)).await?;
    let archive_age_s: Option<f64> = conn
        .query_one(
            "SELECT extract(epoch FROM now() - last_archived_time)::float8 FROM pg_stat_archiver",
            &[],
        )
        .await
        .ok()
        .and_then(|r| r.get(0));
    let e = |err: tokio_postgres::Error| node_err(node, err);
    let tx = conn.transaction().await.map_err(e)?;
    let xid: i64 = tx
        .query_one("SELECT txid_current()", &[])
        .await
        .map_err(e)?
        .get(0);
    let ids = match c {
        Corruption::DeleteRows { rows } => {
            pick(&tx, t, "DELETE FROM firedrill_ledger", rows).await
        }
        Corruption::UpdateRows { rows } => {
            let head = format!("UPDATE firedrill_ledger SET payload = {GARBLE}");
            pick(&tx, t, &head, rows).await
        }
        Corruption::Truncate => destroy_table(&tx, t, "TRUNCATE firedrill_ledger").await,
        Corruption::DropTable => destroy_table(&tx, t, "DROP TABLE firedrill_ledger").await,
        Corruption::Sql { statement, .. } => sql(&tx, t, statement, payloads, xid).await,
    }
    .map_err(|m| node_err(node, m))?;
    tx.commit().await.map_err(e)?;
    let lsn: String = conn
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .map_err(e)?
        .get(0);
    Ok(Damage {
        action: action(c).into(),
        // txid_current() carries the epoch in its high bits; recovery
        // targets take the 32-bit xid.
        xid: (xid as u64) & 0xffff_ffff,
        lsn,
        ids,
        t_commit: 0,
        archive_age_s,
    })
}

fn action(c: &Corruption) -> &'static str {
    match c {
        Corruption::DeleteRows { .. } => "delete_rows",
        Corruption::UpdateRows { .. } => "update_rows",
        Corruption::Truncate => "truncate",
        Corruption::DropTable => "drop_table",
        Corruption::Sql { .. } => "sql",
    }
}

fn msg(e: tokio_postgres::Error) -> String {
    super::PgMessage::message(&e)
}

/// `head` (a DELETE or UPDATE of the ledger table) on the picked rows of
/// this run, RETURNING the seqs it hit. A fraction takes every row whose
/// seq falls in the first `fraction` of each 1000, so the damage spreads
/// over the whole run.
async fn pick(
    tx: &Transaction<'_>,
    t: &PgTarget,
    head: &str,
    rows: &RowPick,
) -> Result<Vec<u64>, String> {
    let found = match *rows {
        RowPick::Fraction(f) => {
            let per_mille = (f * 1000.0).round().clamp(1.0, 1000.0) as i64;
            let sql = format!("{head} WHERE run_id = $1 AND seq % 1000 < $2 RETURNING seq");
            tx.query(&sql, &[&t.run_id, &per_mille]).await
        }
        RowPick::Seqs { from, to } => {
            let (from, to) = (from as i64, to as i64);
            let sql = format!("{head} WHERE run_id = $1 AND seq BETWEEN $2 AND $3 RETURNING seq");
            tx.query(&sql, &[&t.run_id, &from, &to]).await
        }
    }
    .map_err(msg)?;
    Ok(found.iter().map(|r| r.get::<_, i64>(0) as u64).collect())
}

/// TRUNCATE or DROP of the ledger table: the lock first, so no write can
/// commit between the read of the run's ids and the statement.
async fn destroy_table(tx: &Transaction<'_>, t: &PgTarget, stmt: &str) -> Result<Vec<u64>, String> {
    tx.batch_execute("LOCK TABLE firedrill_ledger IN ACCESS EXCLUSIVE MODE")
        .await
        .map_err(msg)?;
    let ids = seqs(tx, "SELECT seq FROM firedrill_ledger WHERE run_id = $1", &[&t.run_id])
        .await
        .map_err(msg)?;
    tx.batch_execute(stmt).await.map_err(msg)?;
    Ok(ids.into_iter().collect())
}

async fn seqs(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<BTreeSet<u64>, tokio_postgres::Error> {
    let rows = tx.query(sql, params).await?;
    Ok(rows.iter().map(|r| r.get::<_, i64>(0) as u64).collect())
}

/// The user's statement, in firedrill's transaction. The ledger table is
/// locked against writes first (SHARE), so the intact rows before and
/// after the statement differ only by what it did; a statement that drops
/// the table leaves none after (read under a savepoint, since the read
/// then fails).
async fn sql(
    tx: &Transaction<'_>,
    t: &PgTarget,
    statement: &str,
    payloads: &[Vec<u8>],
    xid: i64,
) -> Result<Vec<u64>, String> {
    tx.batch_execute("LOCK TABLE firedrill_ledger IN SHARE MODE")
        .await
        .map_err(msg)?;
    let before = seqs(tx, INTACT, &[&t.run_id, &payloads]).await.map_err(msg)?;
    tx.batch_execute(statement)
        .await
        .map_err(|e| format!("the sql_file statement failed: {}", msg(e)))?;
    // A COMMIT or ROLLBACK in the file would have ended this transaction:
    // its xid would no longer be the one a restore stops before.
    let now: i64 = tx
        .query_one("SELECT txid_current()", &[])
        .await
        .map_err(msg)?
        .get(0);
    if now != xid {
        return Err(
            "the sql_file ended firedrill's transaction (COMMIT or ROLLBACK in it): give statements only".into(),
        );
    }
    tx.batch_execute("SAVEPOINT firedrill_after")
        .await
        .map_err(msg)?;
    let after = match seqs(tx, INTACT, &[&t.run_id, &payloads]).await {
        Ok(a) => a,
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
            tx.batch_execute("ROLLBACK TO SAVEPOINT firedrill_after")
                .await
                .map_err(msg)?;
            BTreeSet::new()
        }
        Err(e) => return Err(msg(e)),
    };
    Ok(before.difference(&after).copied().collect())
}
