//! `[lab]` options of a NATS JetStream lab: the cluster size and the
//! drill stream's replica count.

use firedrill_spec::{Diagnostic, LabSpec, LoadedSpec, Spanned};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What a NATS lab adds to `[lab]`.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct NatsLab {
    /// `[lab.nats]`.
    pub nats: Option<NatsLabSpec>,
    /// Where `nats-server` is; default PATH, then /usr/sbin (Debian's
    /// place for it), then /usr/bin.
    pub bin_dir: Option<PathBuf>,
}

impl NatsLab {
    /// The options of a lab that passed validation.
    pub fn of(lab: &LabSpec) -> NatsLab {
        lab.options().unwrap_or_default()
    }
    /// The NATS settings in force.
    pub fn settings(&self) -> NatsLabSpec {
        self.nats.clone().unwrap_or_default()
    }
    /// n1, n2, …: also each server's `server_name`, which is how
    /// JetStream names a stream's leader.
    pub fn node_names(&self) -> Vec<String> {
        let n = self.settings().nodes.into_inner();
        (1..=n).map(|i| format!("n{i}")).collect()
    }
}

/// `[lab.nats]`. The stream's replica count is what sets a JetStream
/// drill's RPO (a PubAck waits for a quorum of the stream's Raft group),
/// so it is the knob a drill compares; the election timers are fixed in
/// nats-server 2.9 and have none.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NatsLabSpec {
    /// Cluster size: 3 or 5 servers (n1, n2, …).
    #[serde(default = "three")]
    pub nodes: Spanned<u32>,
    /// The drill stream's `num_replicas`: 1 to 5, at most `nodes`.
    #[serde(default = "three")]
    pub replicas: Spanned<u32>,
}

impl Default for NatsLabSpec {
    fn default() -> Self {
        NatsLabSpec {
            nodes: three(),
            replicas: three(),
        }
    }
}

fn three() -> Spanned<u32> {
    Spanned::new(0..0, 3)
}

/// Nodes and replicas: what a JetStream cluster would refuse or could
/// not place.
pub fn check_nats(spec: &LoadedSpec, n: &NatsLabSpec, out: &mut Vec<Diagnostic>) {
    let nodes = *n.nodes.get_ref();
    if nodes != 3 && nodes != 5 {
        out.push(spec.at(n.nodes.span(), "a NATS lab has 3 or 5 nodes"));
    }
    let r = *n.replicas.get_ref();
    if !(1..=5).contains(&r) {
        out.push(spec.at(
            n.replicas.span(),
            "replicas must be 1 to 5 (JetStream's limit for a stream)",
        ));
    } else if r > nodes {
        out.push(spec.at(
            n.replicas.span(),
            format!("replicas ({r}) cannot exceed nodes ({nodes}): JetStream could not place the stream"),
        ));
    }
}
