//! The heal journal: before a fault is injected, its heal is written to a
//! file, and a detached watchdog process is started that carries the heal
//! out when the TTL passes unless the drill removed the entry first. So a
//! paused node is resumed, and a cut replication restored, even when
//! firedrill itself is SIGKILLed.

use crate::FaultError;
use firedrill_proc::ProcHandle;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "heal", rename_all = "snake_case")]
pub enum HealAction {
    /// SIGCONT to a paused process tree.
    Continue { node: String, proc: ProcHandle },
    /// Put a standby's replication back as its target saved it before the
    /// cut. The target is reopened by `kind` with `conninfo`, firedrill's
    /// control path to the standby (no password: that comes from the
    /// environment).
    RestoreReplication {
        kind: String,
        node: String,
        conninfo: String,
        saved: String,
    },
    /// Remove the toxics a network fault added, from the proxy API at `api`.
    RemoveToxics {
        node: String,
        api: std::net::SocketAddr,
        /// (proxy, toxic) pairs.
        toxics: Vec<(String, String)>,
    },
    /// Set a netns lab node's host-side veth back up (`ip link set dev up`).
    LinkUp { node: String, dev: String },
    /// Stop a server a recovery started outside the store's nodes (a
    /// restore's scratch node): SIGKILL its recorded process tree.
    StopServer { node: String, proc: ProcHandle },
    /// Move a file a fault took out of a backup repository (`aside`) back
    /// to where it was (`path`).
    PutBack {
        node: String,
        path: PathBuf,
        aside: PathBuf,
    },
    /// Run a `command` step's `heal_command`. `env` holds only the
    /// `FIREDRILL_*` facts the step gave it; its secrets come from the
    /// environment of whoever runs the heal (firedrill or its watchdog).
    RunCommand {
        node: String,
        step: usize,
        command: firedrill_spec::CommandSpec,
        timeout_ms: u64,
        env: Vec<(String, String)>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealEntry {
    pub id: String,
    /// Unix seconds after which the watchdog heals.
    pub expires_at: u64,
    pub action: HealAction,
}

#[derive(Debug, Clone)]
pub struct HealJournal {
    dir: PathBuf,
}

impl HealJournal {
    pub fn open(dir: &Path) -> Result<Self, FaultError> {
        std::fs::create_dir_all(dir).map_err(|source| FaultError::Journal {
            path: dir.display().to_string(),
            source,
        })?;
        Ok(HealJournal {
            dir: dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Records a heal that must happen within `ttl_secs`. The file is
    /// readable by its owner only: a saved replication source may hold
    /// a password.
    pub fn record(
        &self,
        id: &str,
        ttl_secs: u64,
        action: HealAction,
    ) -> Result<HealEntry, FaultError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let entry = HealEntry {
            id: id.to_string(),
            expires_at: now + ttl_secs,
            action,
        };
        let path = self.path(id);
        let io = |source| FaultError::Journal {
            path: path.display().to_string(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        let text = serde_json::to_vec(&entry).map_err(|e| io(std::io::Error::other(e)))?;
        f.write_all(&text).map_err(io)?;
        f.sync_all().map_err(io)?;
        Ok(entry)
    }

    /// The heal happened: the watchdog must not repeat it.
    pub fn remove(&self, id: &str) {
        let _ = std::fs::remove_file(self.path(id));
    }

    pub fn get(&self, id: &str) -> Option<HealEntry> {
        let text = std::fs::read(self.path(id)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Entries still waiting for their heal.
    pub fn pending(&self) -> Vec<HealEntry> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                if let Ok(text) = std::fs::read(e.path()) {
                    if let Ok(entry) = serde_json::from_slice::<HealEntry>(&text) {
                        out.push(entry);
                    }
                }
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_get_remove() {
        let d = tempfile::tempdir().unwrap();
        let j = HealJournal::open(d.path()).unwrap();
        let a = HealAction::RestoreReplication {
            kind: "postgres".into(),
            node: "n2".into(),
            conninfo: "host=127.0.0.1 port=1".into(),
            saved: "host=127.0.0.1 port=2 application_name=n2".into(),
        };
        j.record("t1-s0", 60, a.clone()).unwrap();
        assert_eq!(j.get("t1-s0").unwrap().action, a);
        assert_eq!(j.pending().len(), 1);
        j.remove("t1-s0");
        assert!(j.get("t1-s0").is_none());
        assert!(j.pending().is_empty());
    }
}
