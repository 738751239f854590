//! The pgBackRest repository's archive, for faults on it and for the
//! tool's own check: which archived segment a restore past now needs
//! (`remove_wal` moves it aside), and `pgbackrest verify`.
//!
//! `verify` (2.45) checks checksums and sizes of what is there; a segment
//! missing from the middle of the archive leaves its status `ok`. It does
//! log the WAL ranges it found (at `detail`, into its log file): a hole
//! between two ranges is what a restore cannot replay across, so it is
//! reported beside the status.

use super::backup::{pgbackrest, STANZA};
use super::config::BackupTool;
use super::lab::tools;
use firedrill_lab::{LabError, LabState};
use firedrill_ledger::BackupCheck;
use firedrill_targets::{ArchivedSegment, TargetError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn err(node: &str, e: impl std::fmt::Display) -> TargetError {
    TargetError::Node {
        node: node.into(),
        msg: e.to_string(),
    }
}

/// Switches the backed-up node to a new WAL segment, waits until the one
/// it left is archived, and finds that segment's file in the repository.
/// It holds WAL written since the lab's newest backup (checked against
/// the backup's last segment), so a restore to any later point needs it.
pub(crate) fn needed_segment(dir: &Path, node: &str) -> Result<ArchivedSegment, TargetError> {
    let state = LabState::load(dir).map_err(|e| err(node, e))?;
    if super::backup::enabled(&state).map(|b| b.tool()) != Some(BackupTool::PgBackRest) {
        return Err(err(
            node,
            "remove_wal takes a segment out of a pgBackRest repository: this lab's [lab.backup] tool is not pgbackrest",
        ));
    }
    let n = &state.nodes[0];
    if n.name != node {
        return Err(err(
            node,
            format!("the lab archives {}'s WAL, not {node}'s", n.name),
        ));
    }
    let t = tools(&state);
    let seg = t
        .psql(&n.host, n.port, "SELECT pg_walfile_name(pg_switch_wal())")
        .map_err(|e| err(node, e))?;
    wait_archived(&state, &seg).map_err(|e| err(node, e))?;
    let info = pgbackrest(&state, &["--output=json", "info"]).map_err(|e| err(node, e))?;
    let stop = backup_stop(&info).map_err(|e| err(node, e))?;
    if seg.as_str() <= stop.as_str() {
        return Err(err(
            node,
            format!("segment {seg} is not newer than the backup's last one ({stop}): no WAL since the backup to remove"),
        ));
    }
    let path = find_segment(&state.dir.join("backup/repo/archive").join(STANZA), &seg)
        .ok_or_else(|| err(node, format!("segment {seg} is not in the repository")))?;
    let aside_dir = state.dir.join("backup/removed");
    std::fs::create_dir_all(&aside_dir).map_err(|e| err(node, e))?;
    let name = path.file_name().map(PathBuf::from).unwrap_or_default();
    Ok(ArchivedSegment {
        segment: seg,
        aside: aside_dir.join(name),
        path,
    })
}

fn wait_archived(state: &LabState, seg: &str) -> Result<(), LabError> {
    let n = &state.nodes[0];
    let t = tools(state);
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let last = t.psql(
            &n.host,
            n.port,
            "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver",
        )?;
        if last.as_str() >= seg {
            return Ok(());
        }
        if Instant::now() > end {
            return Err(LabError::Replication(format!(
                "segment {seg} not archived within 30 s (last archived: {last:?})"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last WAL segment of the newest backup, from `pgbackrest info`.
fn backup_stop(info: &str) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_str(info).map_err(|e| format!("pgbackrest info: {e}"))?;
    v.as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == STANZA))
        .and_then(|s| s["backup"].as_array())
        .and_then(|b| b.iter().max_by_key(|b| b["timestamp"]["stop"].as_i64()))
        .and_then(|b| b["archive"]["stop"].as_str())
        .map(str::to_string)
        .ok_or_else(|| "pgbackrest info lists no backup".into())
}

/// `<archive>/<archive id>/<first 16 chars>/<segment>-<sha1>[.ext]`.
fn find_segment(archive: &Path, seg: &str) -> Option<PathBuf> {
    let prefix = format!("{seg}-");
    for id in std::fs::read_dir(archive).ok()?.flatten() {
        let sub = id.path().join(seg.get(..16)?);
        let Ok(rd) = std::fs::read_dir(&sub) else {
            continue;
        };
        for f in rd.flatten() {
            if f.file_name().to_string_lossy().starts_with(&prefix) {
                return Some(f.path());
            }
        }
    }
    None
}

/// `pgbackrest verify`: its status and summary (stdout), and the holes
/// between the WAL ranges it logged. Blocking.
pub(crate) fn verify(dir: &Path) -> Option<BackupCheck> {
    let mut c = BackupCheck {
        command: "pgbackrest verify".into(),
        ..BackupCheck::default()
    };
    let state = match LabState::load(dir) {
        Ok(s) => s,
        Err(e) => {
            c.status = "failed".into();
            c.detail = e.to_string();
            return Some(c);
        }
    };
    // pg_basebackup's archive is a plain directory: no tool checks it.
    if super::backup::enabled(&state).map(|b| b.tool()) != Some(BackupTool::PgBackRest) {
        return None;
    }
    let log = state
        .dir
        .join("backup/log")
        .join(format!("{STANZA}-verify.log"));
    let from = std::fs::metadata(&log).map_or(0, |m| m.len());
    match pgbackrest(
        &state,
        &["--output=text", "--verbose", "--log-level-file=detail", "verify"],
    ) {
        Ok(out) => {
            let (status, detail) = summary(&out);
            c.status = status;
            c.detail = detail;
        }
        Err(e) => {
            c.status = "failed".into();
            c.detail = e.to_string();
        }
    }
    c.inventory = match pgbackrest(&state, &["--output=json", "info"]) {
        Ok(json) => inventory(&json),
        Err(e) => format!("pgbackrest info failed: {e}"),
    };
    let text = std::fs::read(&log).unwrap_or_default();
    let start = usize::try_from(from).unwrap_or(0).min(text.len());
    c.wal_gaps = gaps(&String::from_utf8_lossy(&text[start..]));
    Some(c)
}

/// The status word and the rest of `verify --output=text --verbose`, on
/// one line; the per-item error counts only when one is not zero.
fn summary(out: &str) -> (String, String) {
    const CLEAN: &str = "missing: 0, checksum invalid: 0, size invalid: 0, other: 0";
    let mut status = String::from("unknown");
    let mut rest = Vec::new();
    for l in out.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(s) = l.strip_prefix("status: ") {
            status = s.to_string();
        } else if !l.starts_with("stanza: ") && l != CLEAN {
            rest.push(l);
        }
    }
    (status, rest.join("; "))
}

/// `pgbackrest info` in one line: the stanza's status, its newest
/// backup, and the archive's first and last segment.
fn inventory(json: &str) -> String {
    let v: serde_json::Value = match serde_json::from_str(json) {
        Ok(v) => v,
        Err(e) => return format!("pgbackrest info: {e}"),
    };
    let Some(s) = v.as_array().and_then(|a| a.iter().find(|s| s["name"] == STANZA)) else {
        return format!("pgbackrest info has no stanza {STANZA}");
    };
    let backup = s["backup"]
        .as_array()
        .and_then(|b| b.iter().max_by_key(|b| b["timestamp"]["stop"].as_i64()))
        .and_then(|b| b["label"].as_str())
        .unwrap_or("none");
    let wal = s["archive"]
        .as_array()
        .and_then(|a| a.last())
        .map(|a| {
            format!(
                "{}/{}",
                a["min"].as_str().unwrap_or("-"),
                a["max"].as_str().unwrap_or("-")
            )
        })
        .unwrap_or_else(|| "-".into());
    format!(
        "pgbackrest info: status {}, newest backup {backup}, wal archive min/max {wal}",
        s["status"]["message"].as_str().unwrap_or("unknown")
    )
}

/// Holes between consecutive WAL ranges of the same archive id and
/// timeline, from verify's `archiveId: X, wal start: A, wal stop: B`
/// lines: `first missing` or `first..last missing`.
fn gaps(log: &str) -> Vec<String> {
    let mut ranges: Vec<(String, String, String)> = log
        .lines()
        .filter_map(|l| {
            let r = l.split("archiveId: ").nth(1)?;
            let (id, r) = r.split_once(", wal start: ")?;
            let (start, stop) = r.split_once(", wal stop: ")?;
            Some((id.into(), start.trim().into(), stop.trim().into()))
        })
        .collect();
    ranges.sort();
    ranges.dedup();
    let mut out = Vec::new();
    for w in ranges.windows(2) {
        let ((id_a, _, stop), (id_b, start, _)) = (&w[0], &w[1]);
        if id_a != id_b || stop.get(..8) != start.get(..8) {
            continue; // another archive id or timeline: no hole
        }
        let (Some(first), Some(last)) = (step(stop, 1), step(start, -1)) else {
            continue;
        };
        if first >= *start {
            continue; // contiguous
        }
        out.push(if first == last {
            first
        } else {
            format!("{first}..{last}")
        });
    }
    out
}

/// The segment `by` after `seg` (16 MB segments: 256 per log file).
fn step(seg: &str, by: i64) -> Option<String> {
    if seg.len() != 24 {
        return None;
    }
    let tli = &seg[..8];
    let log = i64::from_str_radix(&seg[8..16], 16).ok()?;
    let s = i64::from_str_radix(&seg[16..], 16).ok()?;
    let n = log * 256 + s + by;
    (n >= 0).then(|| format!("{tli}{:08X}{:08X}", n / 256, n % 256))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
2026-12-01 14:17:23.048 P00 DETAIL: archiveId: 15-1, wal start: 000000010000000000000001, wal stop: 000000010000000000000003
2026-12-01 14:17:23.048 P00 DETAIL: archiveId: 15-1, wal start: 000000010000000000000005, wal stop: 000000010000000000000006
";

    #[test]
    fn a_hole_between_ranges_is_a_gap() {
        assert_eq!(gaps(LOG), vec!["000000010000000000000004"]);
        let wide = LOG.replace("0000000005,", "0000000009,");
        assert_eq!(
            gaps(&wide),
            vec!["000000010000000000000004..000000010000000000000008"]
        );
        // One range, or ranges on two timelines: no hole.
        assert!(gaps(LOG.lines().next().unwrap()).is_empty());
        let tl = LOG.replace("wal start: 00000001000000000000000", "wal start: 00000002000000000000000");
        assert!(gaps(&tl).is_empty());
    }

    #[test]
    fn segments_step_across_log_files() {
        assert_eq!(
            step("0000000100000000000000FF", 1).as_deref(),
            Some("000000010000000100000000")
        );
        assert_eq!(
            step("000000010000000100000000", -1).as_deref(),
            Some("0000000100000000000000FF")
        );
    }

    #[test]
    fn summary_keeps_the_status_apart() {
        let out = "stanza: firedrill\nstatus: ok\n  archiveId: 15-1, total WAL checked: 4, total valid WAL: 4\n    missing: 0, checksum invalid: 0, size invalid: 0, other: 0\n";
        let (s, d) = summary(out);
        assert_eq!(s, "ok");
        assert_eq!(d, "archiveId: 15-1, total WAL checked: 4, total valid WAL: 4");
        let bad = out.replace("missing: 0,", "missing: 2,");
        assert!(summary(&bad).1.ends_with("; missing: 2, checksum invalid: 0, size invalid: 0, other: 0"));
    }

    #[test]
    fn inventory_in_one_line() {
        let info = r#"[{"name":"firedrill","status":{"code":0,"message":"ok"},
            "archive":[{"id":"15-1","min":"000000010000000000000001","max":"000000010000000000000005"}],
            "backup":[{"label":"20261201-142529F","timestamp":{"stop":9}}]}]"#;
        assert_eq!(
            inventory(info),
            "pgbackrest info: status ok, newest backup 20261201-142529F, wal archive min/max 000000010000000000000001/000000010000000000000005"
        );
    }

    #[test]
    fn newest_backup_stop() {
        let info = r#"[{"name":"firedrill","backup":[
            {"timestamp":{"stop":1},"archive":{"stop":"000000010000000000000002"}},
            {"timestamp":{"stop":9},"archive":{"stop":"000000010000000000000007"}}]}]"#;
        assert_eq!(backup_stop(info).unwrap(), "000000010000000000000007");
        assert!(backup_stop(r#"[{"name":"firedrill","backup":[]}]"#).is_err());
    }
}
