//! `[lab.backup] tool = "etcd-snapshot"`: `etcdctl snapshot save` into the
//! lab's `backup/` directory (one at `lab up`, one per drill `backup`
//! step), and the restore a data disaster's `restore` recovery runs: every
//! member from the newest snapshot into a new cluster.
//!
//! Each snapshot has a sidecar `NNNN.json` with its revision (from
//! `etcdctl snapshot status -w json`) and the cluster it came from: a
//! restored cluster starts again at the snapshot's revision and hands out
//! the same revisions to new puts, so only (cluster id, revision) says
//! whether an acknowledged put is in the snapshot.
//!
//! Phases: `fetch` ends when every member's data directory is restored,
//! `replay` when every member is started (an etcd snapshot has no log
//! after it to replay), `promote` when all agree on a leader.

use super::config::EtcdLab;
use super::lab::{find_program, initial_cluster, member_revision, new_token, spawn_members};
use firedrill_lab::{LabError, LabState};
use firedrill_proc::as_user;
use firedrill_targets::{BackupReport, Position, RestorePoint, RestoreReport, RestoreRequest};
use firedrill_targets::TargetError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// How long the restored cluster may take to agree on a leader.
const RESTORE_LIMIT: Duration = Duration::from_secs(30);

/// What firedrill knows of one snapshot, beside its file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SnapMeta {
    /// `backup/0001.db`, relative to the lab directory.
    pub label: String,
    /// The member it was taken from.
    pub member: String,
    pub revision: u64,
    pub cluster_id: u64,
    /// Unix milliseconds when `snapshot save` returned.
    pub taken_ms: u64,
    pub size: u64,
}

impl SnapMeta {
    fn position(&self) -> Position {
        Position {
            epoch: self.cluster_id,
            index: self.revision,
        }
    }
}

fn backup_dir(state: &LabState) -> PathBuf {
    state.dir.join("backup")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs `etcdctl` as the servers' user, in the lab directory, with none of
/// our own `ETCDCTL_*` settings: every endpoint is explicit.
fn etcdctl(state: &LabState, args: &[&str]) -> Result<String, LabError> {
    let bin = find_program("etcdctl", EtcdLab::of(&state.spec).bin_dir.as_deref())?;
    let mut cmd = Command::new(&bin);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("ETCDCTL_") {
            cmd.env_remove(&k);
        }
    }
    cmd.env("ETCDCTL_API", "3")
        .current_dir(&state.dir)
        .stdin(Stdio::null())
        .args(args);
    as_user(&mut cmd, state.run_as.as_ref());
    let out = cmd.output().map_err(LabError::io(&bin))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Err(LabError::Command {
        program: format!("etcdctl {}", args.join(" ")),
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// `etcdctl snapshot status -w json`: (revision, size in bytes). Its
/// `totalKey` counts every key of the backend's buckets (members, auth,
/// meta), not the key-value pairs, so it is not reported.
pub(crate) fn parse_status(json: &str) -> Result<(u64, u64), String> {
    let v: serde_json::Value =
        serde_json::from_str(json.trim()).map_err(|e| format!("snapshot status: {e}: {json}"))?;
    let rev = v["revision"]
        .as_u64()
        .ok_or_else(|| format!("snapshot status without a revision: {json}"))?;
    Ok((rev, v["totalSize"].as_u64().unwrap_or(0)))
}

/// Takes a snapshot of `node` now, while writes go on, and records its
/// revision and cluster beside it. Blocking.
pub(crate) fn take(state: &LabState, node: &str) -> Result<SnapMeta, LabError> {
    let m = state
        .node(node)
        .ok_or_else(|| LabError::Replication(format!("no member named {node}")))?;
    let dir = backup_dir(state);
    let n = snapshots(state)?.len() + 1;
    let label = format!("backup/{n:04}.db");
    let file = state.dir.join(&label);
    let file_s = file.to_string_lossy().into_owned();
    etcdctl(
        state,
        &[
            "--endpoints",
            &m.conninfo,
            "--dial-timeout=3s",
            "--command-timeout=60s",
            "snapshot",
            "save",
            &file_s,
        ],
    )?;
    let taken_ms = now_ms();
    let status = etcdctl(state, &["snapshot", "status", &file_s, "-w", "json"])?;
    let (revision, size) = parse_status(&status).map_err(LabError::Replication)?;
    let (cluster_id, _) = member_revision(m.port).map_err(LabError::Replication)?;
    let meta = SnapMeta {
        label,
        member: node.to_string(),
        revision,
        cluster_id,
        taken_ms,
        size,
    };
    let side = dir.join(format!("{n:04}.json"));
    let text = serde_json::to_vec_pretty(&meta).map_err(|e| LabError::Replication(e.to_string()))?;
    std::fs::write(&side, text).map_err(LabError::io(&side))?;
    Ok(meta)
}

/// Every snapshot taken, oldest first.
pub(crate) fn snapshots(state: &LabState) -> Result<Vec<SnapMeta>, LabError> {
    let dir = backup_dir(state);
    let mut metas = Vec::new();
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(metas),
        Err(e) => return Err(LabError::io(&dir)(e)),
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "json") {
            let text = std::fs::read(&p).map_err(LabError::io(&p))?;
            let meta: SnapMeta = serde_json::from_slice(&text)
                .map_err(|e| LabError::Replication(format!("{}: {e}", p.display())))?;
            metas.push(meta);
        }
    }
    metas.sort_by(|a, b| a.label.cmp(&b.label));
    Ok(metas)
}

/// Whether the lab takes backups.
pub(crate) fn enabled(state: &LabState) -> bool {
    EtcdLab::of(&state.spec).backup.is_some()
}

/// For `lab status`: the newest snapshot, its revision and its age.
pub(crate) fn status_note(state: &LabState) -> Option<String> {
    if !enabled(state) {
        return None;
    }
    Some(match snapshots(state) {
        Ok(v) => match v.last() {
            Some(s) => format!(
                "snapshot {} of {} at revision {} ({} s old)",
                s.label,
                s.member,
                s.revision,
                now_ms().saturating_sub(s.taken_ms) / 1000
            ),
            None => "no snapshot".into(),
        },
        Err(e) => format!("snapshots unreadable: {e}"),
    })
}

/// An etcd lab's backups: snapshots taken and restored in its directory.
pub struct EtcdBackups {
    /// The lab directory: the state is read from state.json at each call
    /// (a reset between trials changes pids and ports).
    pub dir: PathBuf,
}

fn err(node: &str, e: impl std::fmt::Display) -> TargetError {
    TargetError::Node {
        node: node.into(),
        msg: e.to_string(),
    }
}

#[async_trait::async_trait]
impl firedrill_targets::Restorer for EtcdBackups {
    async fn restore(
        &self,
        node: &str,
        req: &RestoreRequest,
    ) -> Result<RestoreReport, TargetError> {
        let (dir, node, req) = (self.dir.clone(), node.to_string(), req.clone());
        tokio::task::spawn_blocking(move || restore_all(&dir, &node, &req))
            .await
            .map_err(|e| TargetError::Other(e.to_string()))?
    }

    async fn backup(&self, node: &str) -> Result<BackupReport, TargetError> {
        let (dir, n) = (self.dir.clone(), node.to_string());
        let meta = tokio::task::spawn_blocking(move || {
            let state = LabState::load(&dir)?;
            take(&state, &n)
        })
        .await
        .map_err(|e| TargetError::Other(e.to_string()))?
        .map_err(|e| err(node, e))?;
        Ok(BackupReport {
            label: meta.label.clone(),
            position: Some(meta.position()),
            detail: format!(
                "etcdctl snapshot save from {}: revision {}, {} bytes",
                meta.member, meta.revision, meta.size
            ),
        })
    }
}

/// Stops whatever of the old cluster still runs (its recorded pids only)
/// and removes its data directories: a snapshot restore needs them absent.
fn clear_members(state: &LabState) -> Result<(), LabError> {
    for n in &state.nodes {
        if let Some(p) = n.proc.filter(|p| p.is_alive()) {
            p.signal_tree(nix::sys::signal::Signal::SIGKILL)?;
            if !p.wait_exit(Duration::from_secs(10)) {
                return Err(LabError::Replication(format!(
                    "{} (pid {}) survived SIGKILL",
                    n.name, p.pid
                )));
            }
        }
        // Only a data directory of this lab, never anything outside it.
        if n.data_dir.starts_with(&state.dir) && n.data_dir.exists() {
            std::fs::remove_dir_all(&n.data_dir).map_err(LabError::io(&n.data_dir))?;
        }
    }
    Ok(())
}

/// `etcdctl snapshot restore` of `snap` into every member's data directory,
/// as one new cluster named by `token`.
fn restore_members(state: &LabState, snap: &SnapMeta, token: &str) -> Result<(), LabError> {
    let cluster = initial_cluster(&state.nodes);
    let file = state.dir.join(&snap.label).to_string_lossy().into_owned();
    for n in &state.nodes {
        let data = n.data_dir.to_string_lossy().into_owned();
        let peer = format!("http://127.0.0.1:{}", n.peer_port.unwrap_or(0));
        etcdctl(
            state,
            &[
                "snapshot",
                "restore",
                &file,
                "--name",
                &n.name,
                "--data-dir",
                &data,
                "--initial-cluster",
                &cluster,
                "--initial-cluster-token",
                token,
                "--initial-advertise-peer-urls",
                &peer,
            ],
        )?;
    }
    Ok(())
}

/// Every member from the newest snapshot, into a new cluster on the same
/// addresses, started, and judged by what it serves: a new cluster id at
/// the snapshot's revision or later.
fn restore_all(dir: &Path, node: &str, req: &RestoreRequest) -> Result<RestoreReport, TargetError> {
    if req.point != RestorePoint::Latest {
        return Err(err(node, "an etcd snapshot restore brings back the newest snapshot (target = \"latest\")"));
    }
    let mut state = LabState::load(dir).map_err(|e| err(node, e))?;
    let snap = snapshots(&state)
        .map_err(|e| err(node, e))?
        .pop()
        .ok_or_else(|| err(node, "the lab has no snapshot to restore"))?;
    let token = new_token(&format!("{}-restore", state.name));
    let mut report = RestoreReport {
        tool_target: format!(
            "etcdctl snapshot restore {} (revision {}) --initial-cluster-token {token}",
            snap.label, snap.revision
        ),
        position: Some(snap.position()),
        ..RestoreReport::default()
    };
    clear_members(&state).map_err(|e| err(node, e))?;
    restore_members(&state, &snap, &token).map_err(|e| err(node, e))?;
    report.fetched = Some(Instant::now());
    let e = EtcdLab::of(&state.spec).settings();
    let raft = (
        e.heartbeat.get_ref().0.as_millis() as u64,
        e.election.get_ref().0.as_millis() as u64,
    );
    let etcd = state.bin_dir.join("etcd");
    spawn_members(&mut state, false, &etcd, raft, &token, &mut |_| {}).map_err(|e| err(node, e))?;
    report.replayed = Some(Instant::now());
    if let Err(e) = super::lab::wait_healthy(&state.nodes, RESTORE_LIMIT) {
        report.detail = format!("the restored cluster never agreed on a leader: {e}");
        return Ok(report);
    }
    report.promoted = Some(Instant::now());
    report.primary = leader_of(&state);
    let names: Vec<&str> = state.nodes.iter().map(|n| n.name.as_str()).collect();
    report.detail = match member_revision(state.nodes[0].port) {
        Ok((cluster, rev)) if cluster != snap.cluster_id && rev >= snap.revision => {
            report.reached = true;
            format!(
                "restored {} from {} (revision {}, taken from {}) into a new cluster {cluster:x}, serving revision {rev}",
                names.join(", "),
                snap.label,
                snap.revision,
                snap.member
            )
        }
        Ok((cluster, rev)) => format!(
            "the restored cluster {cluster:x} serves revision {rev}, not the snapshot's {} of a new cluster (the old one was {:x})",
            snap.revision, snap.cluster_id
        ),
        Err(e) => format!("the restored cluster does not answer: {e}"),
    };
    Ok(report)
}

/// The member that is the restored cluster's leader, as it says itself.
fn leader_of(state: &LabState) -> Option<String> {
    state.nodes.iter().find_map(|n| match super::lab::member_status(n.port) {
        Ok((id, leader)) if id == leader => Some(n.name.clone()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_snapshot_status() {
        // etcdctl 3.4.23, five puts into a fresh cluster.
        let s = r#"{"hash":407284219,"revision":6,"totalKey":11,"totalSize":20480}"#;
        assert_eq!(parse_status(s), Ok((6, 20480)));
        assert!(parse_status(r#"{"hash":1}"#).is_err());
        assert!(parse_status("Error: snapshot file not found").is_err());
    }
}
