//! `[lab]` options of a PostgreSQL lab, and their checks.

use firedrill_spec::{Diagnostic, LabSpec, LoadedSpec, Spanned};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What a PostgreSQL lab adds to `[lab]`.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct PgLab {
    /// Number of streaming standbys besides the primary. Nodes are named
    /// n1 (the first primary), n2, n3, …
    #[serde(default = "one")]
    pub standbys: u32,
    #[serde(default)]
    pub replication: Replication,
    /// `ANY k (...)`: how many standbys must confirm a commit (sync only).
    pub sync_quorum: Option<Spanned<u32>>,
    /// synchronous_commit level used with `replication = "sync"`.
    #[serde(default)]
    pub synchronous_commit: SyncCommit,
    /// Directory of the PostgreSQL binaries; default `PG_BIN`, PATH, then
    /// `/usr/lib/postgresql/<newest>/bin`.
    pub bin_dir: Option<PathBuf>,
    /// Extra postgresql.conf settings for every node.
    #[serde(default)]
    pub settings: BTreeMap<String, toml::Value>,
    /// `[lab.backup]`: WAL archiving and a full backup at `lab up`, which
    /// a `restore` recovery restores from.
    pub backup: Option<BackupSpec>,
}

/// `[lab.backup]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackupSpec {
    /// `pgbackrest` (a local repository in the lab directory) or
    /// `basebackup` (pg_basebackup into the lab directory, WAL copied to
    /// an archive directory by `archive_command`).
    pub tool: Spanned<String>,
    /// PostgreSQL's `archive_timeout`: the oldest unarchived WAL can get,
    /// so the bound of a restore's data loss without a flush (default 60 s).
    pub archive_timeout: Option<Spanned<firedrill_spec::Dur>>,
}

/// The backup tools a PostgreSQL lab runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupTool {
    PgBackRest,
    BaseBackup,
}

impl BackupTool {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pgbackrest" => Some(BackupTool::PgBackRest),
            "basebackup" => Some(BackupTool::BaseBackup),
            _ => None,
        }
    }
}

impl BackupSpec {
    /// The tool of a lab that passed validation.
    pub fn tool(&self) -> BackupTool {
        BackupTool::parse(self.tool.get_ref()).unwrap_or(BackupTool::PgBackRest)
    }

    pub fn archive_timeout(&self) -> std::time::Duration {
        self.archive_timeout
            .as_ref()
            .map(|d| d.get_ref().0)
            .unwrap_or(std::time::Duration::from_secs(60))
    }
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Replication {
    #[default]
    Async,
    Sync,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SyncCommit {
    #[default]
    On,
    RemoteWrite,
    RemoteApply,
}

impl SyncCommit {
    pub fn as_guc(self) -> &'static str {
        match self {
            SyncCommit::On => "on",
            SyncCommit::RemoteWrite => "remote_write",
            SyncCommit::RemoteApply => "remote_apply",
        }
    }
}

impl PgLab {
    /// The options of a lab that passed validation.
    pub fn of(lab: &LabSpec) -> PgLab {
        lab.options().unwrap_or_default()
    }
    /// n1 (the first primary), n2, ….
    pub fn node_names(&self) -> Vec<String> {
        (1..=self.standbys + 1).map(|i| format!("n{i}")).collect()
    }
}

/// Standbys, synchronous quorum and settings: what a PostgreSQL lab
/// (plain or under Patroni) is checked for. `max_standbys` differs.
pub fn check_pg_options(
    spec: &LoadedSpec,
    lab: &LabSpec,
    o: &PgLab,
    max_standbys: u32,
    out: &mut Vec<Diagnostic>,
) {
    if o.standbys == 0 || o.standbys > max_standbys {
        out.push(spec.at(
            lab.name.span(),
            format!("lab standbys must be between 1 and {max_standbys}"),
        ));
    }
    if let Some(q) = &o.sync_quorum {
        if o.replication != Replication::Sync {
            out.push(spec.at(q.span(), "sync_quorum needs replication = \"sync\""));
        } else if *q.get_ref() == 0 || *q.get_ref() > o.standbys {
            out.push(spec.at(
                q.span(),
                format!(
                    "sync_quorum must be between 1 and the number of standbys ({})",
                    o.standbys
                ),
            ));
        }
    }
    if let Some(b) = &o.backup {
        if BackupTool::parse(b.tool.get_ref()).is_none() {
            out.push(spec.at(
                b.tool.span(),
                format!(
                    "backup tool {:?}: give \"pgbackrest\" or \"basebackup\"",
                    b.tool.get_ref()
                ),
            ));
        }
        if let Some(t) = &b.archive_timeout {
            if t.get_ref().0 < std::time::Duration::from_secs(1) {
                out.push(spec.at(t.span(), "archive_timeout must be at least 1s"));
            }
        }
    }
    for (k, v) in &o.settings {
        if matches!(v, toml::Value::Array(_) | toml::Value::Table(_)) {
            // [lab.settings] with this key, or an inline settings = {...}.
            let span = match spec.key_span("lab.settings", k) {
                s if s != (0..0) => s,
                _ => spec.key_span("lab", "settings"),
            };
            out.push(spec.at(
                span,
                format!("lab setting {k:?} must be a string, number or boolean"),
            ));
        }
    }
}
