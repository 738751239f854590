//! What `firedrill assess` knows of a PostgreSQL domain: the setting in
//! force that decides its replication (`synchronous_standby_names` on the
//! primary, as this round's probe read it), how it can disagree with the
//! declaration, and a lab built like the domain for the drill advice
//! proposes (its backups and, for corruption, a `delete_rows` and its
//! point-in-time restore).

use firedrill_assess::derive::secs;
use firedrill_assess::kind::{spec_dur, AssessKind, LabSketch, Mismatch, Moves};
use firedrill_assess::model::{Domain, Replication};
use firedrill_watch::board::Extras;
use firedrill_watch::plan::WatchedDomain;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

pub struct PgAssess;

#[async_trait::async_trait]
impl AssessKind for PgAssess {
    fn kind(&self) -> &'static str {
        "postgres"
    }
    fn pitr_tool(&self) -> Option<&'static str> {
        Some("pgbackrest")
    }
    fn sync_setting(&self, quorum: u32, standbys: &[String]) -> Option<String> {
        Some(format!(
            "synchronous_standby_names = 'ANY {quorum} ({})', synchronous_commit = on",
            standbys.join(", ")
        ))
    }
    /// The probe already read the primary's `synchronous_standby_names`
    /// this round; no second connection.
    async fn read_settings(
        &self,
        _d: &Domain,
        _w: &WatchedDomain,
        extras: &Extras,
        _timeout: Duration,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut s = BTreeMap::new();
        for (metric, labels) in extras.keys() {
            let label = |k: &str| labels.iter().find(|(n, _)| n == k).map(|(_, x)| x.clone());
            let key = match metric.as_str() {
                "firedrill_pg_synchronous_standby_names" => ("synchronous_standby_names", "value"),
                "firedrill_pg_primary" => ("primary", "node"),
                _ => continue,
            };
            if let Some(v) = label(key.1) {
                s.insert(key.0.to_string(), v);
            }
        }
        Ok(s)
    }
    fn mismatches(&self, d: &Domain, settings: &BTreeMap<String, String>) -> Vec<Mismatch> {
        let Some(ssn) = settings.get("synchronous_standby_names") else {
            return Vec::new();
        };
        let n = sync_count(ssn);
        let what = match &d.replication {
            Replication::Sync { quorum, .. } if n == 0 => format!(
                "declared sync ANY {quorum}, but synchronous_standby_names is '' on the primary: replication is asynchronous"
            ),
            Replication::Sync { quorum, .. } if n < *quorum => format!(
                "declared sync ANY {quorum}, but the primary waits for {n} standby(s) (synchronous_standby_names = '{ssn}')"
            ),
            Replication::Async if n > 0 => format!(
                "declared async, but synchronous_standby_names = '{ssn}': commits wait for standbys (writes stall when they are gone)"
            ),
            _ => return Vec::new(),
        };
        let fix = match &d.replication {
            Replication::Sync { quorum, standbys } => format!(
                "on the primary: ALTER SYSTEM SET synchronous_standby_names = 'ANY {quorum} ({})'; SELECT pg_reload_conf(); (or correct [domain.replication])",
                standbys.join(", ")
            ),
            _ => "on the primary: ALTER SYSTEM SET synchronous_standby_names = ''; SELECT pg_reload_conf(); (or declare mode = \"sync\")".into(),
        };
        vec![Mismatch {
            what,
            fix,
            moves: Moves::Rpo,
            restore: false,
        }]
    }
    fn lab(&self, d: &Domain) -> LabSketch {
        let mut t = format!(
            "kind = \"postgres\"\nstandbys = {}\n",
            d.nodes.len().saturating_sub(1).max(1)
        );
        match &d.replication {
            Replication::Sync { quorum, .. } => {
                let _ = writeln!(
                    t,
                    "replication = \"sync\"\nsync_quorum = {quorum}\nsynchronous_commit = \"on\""
                );
            }
            _ => t.push_str("replication = \"async\"\n"),
        }
        let archive = d
            .backups
            .as_ref()
            .and_then(|b| b.archive_timeout)
            .unwrap_or(Duration::from_secs(60));
        let _ = write!(
            t,
            "\n[lab.backup]\ntool = \"pgbackrest\"\narchive_timeout = \"{}\"",
            spec_dur(archive)
        );
        LabSketch {
            table: t,
            automatic: false,
            corruption: Some(corruption_steps(archive)),
        }
    }
}

/// A bad DELETE discovered after 5 s and the restore to just before it.
fn corruption_steps(archive: Duration) -> String {
    format!(
        "# Corruption: half the rows deleted in one transaction, discovered 5 s later,\n# restored to just before it (archive_timeout {}; the archive is flushed first).\n[[drill.faults]]\nat = \"3s\"\naction = \"delete_rows\"\nnode = \"primary\"\nfraction = 0.5\ndetect_after = \"5s\"\n\n[drill.recovery]\nrestore = {{ from = \"pgbackrest\", target = \"before_fault\", into = \"in_place\" }}",
        secs(archive.as_secs_f64())
    )
}

/// `ANY 2 (a, b)`, `FIRST 1 (a)`, `2 (a, b)`, `a, b`, `*`: how many
/// standbys each commit waits for (0: asynchronous).
pub fn sync_count(ssn: &str) -> u32 {
    let t = ssn.trim();
    if t.is_empty() {
        return 0;
    }
    let upper = t.to_ascii_uppercase();
    let rest = upper
        .strip_prefix("ANY ")
        .or_else(|| upper.strip_prefix("FIRST "))
        .unwrap_or(&upper)
        .trim();
    match rest.split_once('(') {
        Some((n, _)) => n.trim().parse().unwrap_or(1),
        // A plain list: the first one is synchronous (FIRST 1).
        None => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::sync_count;

    #[test]
    fn sync_count_reads_every_form() {
        assert_eq!(sync_count(""), 0);
        assert_eq!(sync_count("  "), 0);
        assert_eq!(sync_count("ANY 2 (a, b, c)"), 2);
        assert_eq!(sync_count("first 1 (a)"), 1);
        assert_eq!(sync_count("2 (a, b)"), 2);
        assert_eq!(sync_count("a, b"), 1);
        assert_eq!(sync_count("*"), 1);
    }
}
