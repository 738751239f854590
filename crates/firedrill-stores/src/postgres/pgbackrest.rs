//! The newest usable backup in `pgbackrest info --output=json`: its age is
//! the exposure of a restore from backup alone (no WAL replay).

use firedrill_watch::WatchError;
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Deserialize)]
struct Stanza {
    name: String,
    #[serde(default)]
    backup: Vec<Backup>,
}

#[derive(Debug, Deserialize)]
struct Backup {
    label: String,
    timestamp: Stamps,
    /// pgBackRest found errors (e.g. page checksums) while backing up:
    /// not a backup to count on.
    #[serde(default)]
    error: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct Stamps {
    stop: i64,
}

/// The newest backup of a stanza that completed without errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewestBackup {
    pub label: String,
    /// Unix seconds when the backup stopped (its data is as of then).
    pub stop: i64,
}

/// Parses the JSON and picks the newest error-free backup of `stanza`.
/// `Ok(None)` when the stanza exists but holds no usable backup.
pub fn newest_backup(json: &str, stanza: &str) -> Result<Option<NewestBackup>, WatchError> {
    let stanzas: Vec<Stanza> = serde_json::from_str(json)
        .map_err(|e| WatchError::Probe(format!("pgbackrest info: {e}")))?;
    let s = stanzas
        .into_iter()
        .find(|s| s.name == stanza)
        .ok_or_else(|| WatchError::Probe(format!("pgbackrest info has no stanza {stanza:?}")))?;
    Ok(s.backup
        .into_iter()
        .filter(|b| b.error != Some(true))
        .max_by_key(|b| b.timestamp.stop)
        .map(|b| NewestBackup {
            label: b.label,
            stop: b.timestamp.stop,
        }))
}

/// Runs `pgbackrest info` (with a deadline; it is killed if it hangs).
pub async fn info(
    command: &Path,
    config: Option<&Path>,
    stanza: &str,
    limit: Duration,
) -> Result<String, WatchError> {
    let mut cmd = tokio::process::Command::new(command);
    if let Some(c) = config {
        cmd.arg(format!("--config={}", c.display()));
    }
    cmd.arg(format!("--stanza={stanza}"))
        .arg("--output=json")
        .arg("info")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .map_err(|_| WatchError::Probe(format!("pgbackrest info timed out after {limit:?}")))?
        .map_err(|e| WatchError::Probe(format!("cannot run {}: {e}", command.display())))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(WatchError::Probe(format!(
            "pgbackrest info failed ({}): {}",
            out.status,
            err.trim()
        )));
    }
    String::from_utf8(out.stdout)
        .map_err(|_| WatchError::Probe("pgbackrest info: not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../tests/fixtures/pgbackrest-info.json");

    #[test]
    fn newest_error_free_backup() {
        let b = newest_backup(FIXTURE, "demo").unwrap().unwrap();
        // The 03:00 incremental has error=true: the 02:00 one counts.
        assert_eq!(b.label, "20260301-101500F_20260302-020000I");
        assert_eq!(b.stop, 1772416803);
    }

    #[test]
    fn stanza_without_backups() {
        assert_eq!(newest_backup(FIXTURE, "other").unwrap(), None);
    }

    #[test]
    fn unknown_stanza_and_garbage_are_errors() {
        assert!(newest_backup(FIXTURE, "nope").is_err());
        assert!(newest_backup("{not json", "demo").is_err());
        assert!(newest_backup("{}", "demo").is_err());
    }
}
