//! `[lab]` options of an etcd lab: the cluster size and Raft timeouts, and
//! its backups (`[lab.backup] tool = "etcd-snapshot"`).

use firedrill_spec::{Diagnostic, Dur, LabSpec, LoadedSpec, Spanned};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What an etcd lab adds to `[lab]`.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct EtcdLab {
    /// `[lab.etcd]`.
    pub etcd: Option<EtcdLabSpec>,
    /// Where `etcd` and `etcdctl` are; default PATH, then /usr/bin.
    pub bin_dir: Option<PathBuf>,
    /// `[lab.backup]`: snapshots in the lab directory.
    pub backup: Option<EtcdBackup>,
}

/// The one backup tool of an etcd lab.
pub const SNAPSHOT_TOOL: &str = "etcd-snapshot";

/// `[lab.backup]` of an etcd lab: `etcdctl snapshot save` into the lab's
/// `backup/` directory, one at `lab up` and one per drill `backup` step;
/// a `restore` brings every member back from the newest.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdBackup {
    pub tool: Spanned<String>,
}

impl EtcdLab {
    /// The options of a lab that passed validation.
    pub fn of(lab: &LabSpec) -> EtcdLab {
        lab.options().unwrap_or_default()
    }
    /// The etcd settings in force.
    pub fn settings(&self) -> EtcdLabSpec {
        self.etcd.clone().unwrap_or_default()
    }
    /// e1, e2, ….
    pub fn node_names(&self) -> Vec<String> {
        let n = self.settings().members.into_inner();
        (1..=n).map(|i| format!("e{i}")).collect()
    }
}

/// `[lab.etcd]`: the Raft timeouts are what set an etcd cluster's RTO, so
/// they are the knobs a drill compares.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdLabSpec {
    /// Cluster size: 3 or 5 members (e1, e2, …).
    #[serde(default = "three")]
    pub members: Spanned<u32>,
    /// `--heartbeat-interval` (etcd's default 100ms).
    #[serde(default = "default_heartbeat")]
    pub heartbeat: Spanned<Dur>,
    /// `--election-timeout` (etcd's default 1s); at least 5 × heartbeat.
    #[serde(default = "default_election")]
    pub election: Spanned<Dur>,
}

impl Default for EtcdLabSpec {
    fn default() -> Self {
        EtcdLabSpec {
            members: three(),
            heartbeat: default_heartbeat(),
            election: default_election(),
        }
    }
}

fn three() -> Spanned<u32> {
    Spanned::new(0..0, 3)
}
fn default_heartbeat() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(std::time::Duration::from_millis(100)))
}
fn default_election() -> Spanned<Dur> {
    Spanned::new(0..0, Dur(std::time::Duration::from_secs(1)))
}

/// The backup tool must be the one an etcd lab has.
pub fn check_backup(spec: &LoadedSpec, b: &EtcdBackup, out: &mut Vec<Diagnostic>) {
    if b.tool.get_ref() != SNAPSHOT_TOOL {
        out.push(spec.at(
            b.tool.span(),
            format!(
                "an etcd lab backs up with tool = \"{SNAPSHOT_TOOL}\" (etcdctl snapshot save), not {:?}",
                b.tool.get_ref()
            ),
        ));
    }
}

/// Members, heartbeat and election: what etcd itself would refuse.
pub fn check_etcd(spec: &LoadedSpec, e: &EtcdLabSpec, out: &mut Vec<Diagnostic>) {
    let m = *e.members.get_ref();
    if m != 3 && m != 5 {
        out.push(spec.at(e.members.span(), "an etcd lab has 3 or 5 members"));
    }
    let hb = e.heartbeat.get_ref().0;
    let el = e.election.get_ref().0;
    let whole_ms =
        |d: std::time::Duration| std::time::Duration::from_millis(d.as_millis() as u64) == d;
    if hb < std::time::Duration::from_millis(1) || !whole_ms(hb) {
        out.push(spec.at(
            e.heartbeat.span(),
            "heartbeat must be a whole number of milliseconds, at least 1ms",
        ));
    } else if el < hb * 5 || !whole_ms(el) {
        out.push(spec.at(
                e.election.span(),
                format!(
                    "election must be whole milliseconds and at least 5 × heartbeat ({} here); etcd refuses less",
                    Dur(hb * 5)
                ),
            ));
    } else if el > std::time::Duration::from_secs(50) {
        out.push(spec.at(
            e.election.span(),
            "election must be at most 50s (etcd's limit)",
        ));
    }
}
