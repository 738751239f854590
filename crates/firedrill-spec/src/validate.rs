//! Semantic checks that serde cannot do. Every check runs, so the user sees
//! every problem in one go.

use crate::checks::{check_recovery, check_slo, check_workload, conninfo_has_password};
use crate::store::{check_unknown_keys, Stores};
use crate::{valid_name, Diagnostic, DrillSpec, FaultAction, LabSpec, LoadedSpec};
use std::collections::HashSet;

/// Roles a fault step may name instead of a node. They are resolved when the
/// step runs, against the store's roles at that moment.
pub const ROLES: &[&str] = &["primary", "standby", "sync_standby"];

/// The zone every target has: all its nodes, hit at the same instant (a
/// whole cluster lost at once).
pub const ALL_NODES: &str = "all";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    Primary,
    Standby,
    SyncStandby,
}

impl NodeRole {
    pub fn parse(s: &str) -> Option<NodeRole> {
        match s {
            "primary" => Some(NodeRole::Primary),
            "standby" => Some(NodeRole::Standby),
            "sync_standby" => Some(NodeRole::SyncStandby),
            _ => None,
        }
    }
}

/// The nodes a drill can name.
#[derive(Debug, Clone, Default)]
pub struct NodeUniverse {
    pub names: Vec<String>,
    /// Synchronous replication is configured, so `sync_standby` means something.
    pub sync: bool,
    /// Nodes whose pid firedrill knows (all lab nodes; endpoints with a pid
    /// file or data dir).
    pub with_pid: HashSet<String>,
    /// Links run through fault proxies, so network faults are possible.
    pub proxied: bool,
    /// Nodes run in network namespaces: a partition (link all) is a veth
    /// link set down; nothing else is possible without tc netem.
    pub netns: bool,
    /// Explicit endpoints: firedrill can put its embedded proxy between its
    /// own clients and each node, and nothing else (it cannot reroute the
    /// store's replication).
    pub clients_proxy: bool,
    /// The kind of store (its registry name): which faults make sense is
    /// the store's to say.
    pub kind: String,
    /// Roles the store resolves itself when the step runs (Kafka's
    /// `leader`), besides the generic ones.
    pub roles: Vec<String>,
    /// Failure domains: zone name → its nodes.
    pub zones: std::collections::BTreeMap<String, Vec<String>>,
    /// The lab's backup tool (`[lab.backup] tool`), when it takes backups:
    /// a `restore` recovery needs one.
    pub backup: Option<String>,
}

impl NodeUniverse {
    /// The universe of a lab as its store describes it (node names, sync).
    pub fn from_lab(lab: &LabSpec, stores: &Stores) -> Option<Self> {
        stores.of(lab.kind()).map(|st| st.lab_universe(lab))
    }
}

/// Checks a lab: the keys every lab has here, the store's own options in
/// its config module.
pub fn validate_lab(spec: &LoadedSpec, stores: &Stores) -> Vec<Diagnostic> {
    let mut out = validate_one_lab(spec, stores);
    let Some(lab) = spec.file.lab.as_ref().filter(|l| !l.is_multi()) else {
        return out;
    };
    crate::outbox::check_plain_lab_cdc(spec, lab, &mut out);
    out
}

/// One lab, a file's own or a member's (whose `cdc` has a source beside it).
pub(crate) fn validate_one_lab(spec: &LoadedSpec, stores: &Stores) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let Some(lab) = &spec.file.lab else {
        out.push(spec.at(0..0, "no [lab] table in this file"));
        return out;
    };
    if lab.is_multi() {
        return crate::split_capability(spec, stores, true)
            .err()
            .unwrap_or_default();
    }
    if let Some(r) = lab.region.first() {
        out.push(spec.at(
            r.name.span(),
            "[[lab.region]] groups nodes of several [[lab.member]] labs; a lab of one store has zones of its own",
        ));
    }
    if !valid_name(lab.name.get_ref()) {
        out.push(spec.at(
            lab.name.span(),
            "lab name must be 1-63 letters, digits, '-' or '_'",
        ));
    }
    let Some(store) = stores.of(lab.kind()) else {
        let span = lab.kind.as_ref().map(|k| k.span()).unwrap_or(0..0);
        out.push(spec.at(span, stores.unknown_kind(lab.kind())));
        return out;
    };
    if !store.links().contains(&lab.links) {
        out.push(spec.at(
            lab.name.span(),
            format!(
                "a {} lab supports links = {}",
                store.kind(),
                store
                    .links()
                    .iter()
                    .map(|l| format!("{:?}", l.as_str()))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        ));
    }
    check_unknown_keys(spec, &["lab"], &lab.options, store, stores, &mut out);
    store.check_lab(spec, lab, &mut out);
    out
}

/// Checks a drill. `universe` is the set of nodes of the target when it is
/// known from outside the file (a lab that is already up); otherwise it is
/// taken from the file's own lab or endpoints.
pub fn validate_drill(
    spec: &LoadedSpec,
    universe: Option<&NodeUniverse>,
    stores: &Stores,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let Some(d) = &spec.file.drill else {
        out.push(spec.at(0..0, "no [drill] table in this file"));
        return out;
    };
    if d.capability.is_some() || !d.targets.is_empty() {
        return crate::split_capability(spec, stores, false)
            .err()
            .unwrap_or_default();
    }
    if !valid_name(d.name.get_ref()) {
        out.push(spec.at(
            d.name.span(),
            "drill name must be 1-63 letters, digits, '-' or '_'",
        ));
    }
    for dom in d.faults.iter().filter_map(|s| s.domain.as_ref()) {
        out.push(spec.at(
            dom.span(),
            "a step names a domain only in a capability drill ([[drill.targets]])",
        ));
    }

    let own = own_universe(spec, d, stores, &mut out);
    let mut universe = universe.cloned().or(own);
    let store = universe.as_ref().and_then(|u| stores.get(&u.kind));
    if let (Some(u), Some(st)) = (universe.as_mut(), store) {
        u.roles = st.roles().iter().map(|r| r.to_string()).collect();
    }

    check_workload(spec, d, &mut out);
    check_target_options(spec, d, universe.as_ref(), stores, &mut out);
    check_faults(spec, d, universe.as_ref(), stores, &mut out);
    if let (Some(st), Some(u)) = (store, universe.as_ref()) {
        for s in &d.faults {
            check_supported(spec, s, st, stores, &mut out);
            st.check_step(spec, s, u, &mut out);
        }
    }
    check_recovery(spec, d, universe.as_ref(), stores, &mut out);
    check_slo(spec, d, &mut out);

    match &d.objectives {
        None => out.push(spec.at(
            0..0,
            "[drill.objectives] is missing: give rpo and/or rto, e.g. rpo = \"5s\", rto = \"1m\"",
        )),
        Some(o) if o.rpo.is_none() && o.rto.is_none() => out.push(spec.at(
            spec.key_span("drill.objectives", ""),
            "[drill.objectives] needs rpo, rto, or both",
        )),
        _ => {}
    }

    let trials = *d.trials.get_ref();
    if trials == 0 || trials > 100 {
        out.push(spec.at(d.trials.span(), "trials must be between 1 and 100"));
    }
    let endpoints = d.target.as_ref().is_some_and(|t| !t.nodes.is_empty());
    if trials > 1
        && endpoints
        && d.target
            .as_ref()
            .and_then(|t| t.reset_command.as_ref())
            .is_none()
    {
        out.push(spec.at(
            d.trials.span(),
            "trials > 1 against explicit endpoints needs target.reset_command to restore the store between trials",
        ));
    }
    out
}

/// The universe the file itself defines: its endpoints, or its own lab when
/// the target is that lab.
fn own_universe(
    spec: &LoadedSpec,
    d: &DrillSpec,
    stores: &Stores,
    out: &mut Vec<Diagnostic>,
) -> Option<NodeUniverse> {
    let Some(t) = &d.target else {
        return match &spec.file.lab {
            Some(lab) => NodeUniverse::from_lab(lab, stores),
            None => {
                out.push(spec.at(
                    d.name.span(),
                    "the drill has no [drill.target] and the file has no [lab]: name a lab (target.lab) or list endpoints (target.nodes)",
                ));
                None
            }
        };
    };
    match (&t.lab, t.nodes.is_empty()) {
        (Some(l), false) => {
            out.push(spec.at(l.span(), "target: give either lab or nodes, not both"));
            None
        }
        (Some(l), true) => match &spec.file.lab {
            Some(lab) if lab.name.get_ref() == l.get_ref() => NodeUniverse::from_lab(lab, stores),
            _ => None, // resolved by the caller from the lab's state
        },
        // Only options (redis_write, …): the target is this file's lab.
        (None, true) if spec.file.lab.is_some() => spec
            .file
            .lab
            .as_ref()
            .and_then(|l| NodeUniverse::from_lab(l, stores)),
        (None, true) => {
            out.push(spec.at(
                spec.key_span("drill.target", "lab"),
                "[drill.target] needs lab = \"NAME\" or [[drill.target.nodes]]",
            ));
            None
        }
        (None, false) => {
            if t.password_env.is_some() && t.password_file.is_some() {
                out.push(spec.at(
                    spec.key_span("drill.target", "password_file"),
                    "target: give password_env or password_file, not both",
                ));
            }
            let Some(store) = stores.of(t.kind()) else {
                let span = t.kind.as_ref().map(|k| k.span()).unwrap_or(0..0);
                out.push(spec.at(span, stores.unknown_kind(t.kind())));
                return None;
            };
            let mut u = NodeUniverse {
                clients_proxy: store.endpoint_client_proxy(),
                kind: store.kind().to_string(),
                ..NodeUniverse::default()
            };
            for n in &t.nodes {
                let name = n.name.get_ref();
                if !valid_name(name) {
                    out.push(spec.at(
                        n.name.span(),
                        "node name must be 1-63 letters, digits, '-' or '_'",
                    ));
                }
                if ROLES.contains(&name.as_str()) || name == "most_advanced" {
                    out.push(spec.at(
                        n.name.span(),
                        format!("{name:?} is a role, not a node name"),
                    ));
                }
                if u.names.contains(name) {
                    out.push(spec.at(n.name.span(), format!("node {name:?} is listed twice")));
                }
                let ci = n.conninfo.get_ref();
                if conninfo_has_password(ci) {
                    out.push(spec.at(
                        n.conninfo.span(),
                        "conninfo must not contain a password: use target.password_env or target.password_file",
                    ));
                }
                if store.check_endpoint(spec, n, out) {
                    u.with_pid.insert(name.clone());
                }
                if let Some(z) = &n.zone {
                    if !valid_name(z.get_ref()) || z.get_ref() == ALL_NODES {
                        out.push(spec.at(
                            z.span(),
                            format!("zone must be 1-63 letters, digits, '-' or '_', and not {ALL_NODES:?}"),
                        ));
                    }
                    u.zones
                        .entry(z.get_ref().clone())
                        .or_default()
                        .push(name.clone());
                }
                u.names.push(name.clone());
            }
            Some(u)
        }
    }
}

fn node_ok(u: Option<&NodeUniverse>, name: &str) -> Result<(), String> {
    let Some(u) = u else { return Ok(()) };
    if name == "sync_standby" && !u.sync {
        return Err("sync_standby needs a target with replication = \"sync\"".into());
    }
    let store_role = u.roles.iter().any(|r| r == name);
    if ROLES.contains(&name) || store_role || u.names.iter().any(|n| n == name) {
        return Ok(());
    }
    let roles: Vec<&str> = ROLES
        .iter()
        .copied()
        .chain(u.roles.iter().map(String::as_str))
        .collect();
    Err(format!(
        "no node named {name:?}; the nodes are {} (or a role: {})",
        u.names.join(", "),
        roles.join(", ")
    ))
}

/// A step names what it hits once: a node (or role), or a zone that the
/// target has; `partition` only goes with a role the store resolves.
fn check_step_target(
    spec: &LoadedSpec,
    s: &crate::FaultStep,
    u: Option<&NodeUniverse>,
    out: &mut Vec<Diagnostic>,
) {
    match (&s.node, &s.zone) {
        (Some(_), Some(z)) => out.push(spec.at(z.span(), "give node or zone, not both")),
        // A user command may hit no node of the store at all.
        (None, None) if *s.action.get_ref() == FaultAction::Command => {}
        (None, None) => out.push(spec.at(
            s.action.span(),
            "the step needs node = \"NAME\" (or a role) or zone = \"ZONE\"",
        )),
        (Some(n), None) => {
            if let Err(m) = node_ok(u, n.get_ref()) {
                out.push(spec.at(n.span(), m));
            }
        }
        (None, Some(z)) => {
            if let Some(u) = u.filter(|_| z.get_ref() != ALL_NODES) {
                if !u.zones.contains_key(z.get_ref()) {
                    let known: Vec<&str> = u.zones.keys().map(String::as_str).collect();
                    out.push(spec.at(
                        z.span(),
                        if known.is_empty() {
                            format!(
                                "no zone named {:?}: this target has no zones (zone = \"{ALL_NODES}\" is every node)",
                                z.get_ref()
                            )
                        } else {
                            format!(
                                "no zone named {:?}; the zones are {} (or \"{ALL_NODES}\", every node)",
                                z.get_ref(),
                                known.join(", ")
                            )
                        },
                    ));
                }
            }
        }
    }
    if let Some(p) = &s.partition {
        let by_store = u.is_none_or(|u| u.roles.iter().any(|r| r == s.node_name()));
        if !by_store {
            out.push(spec.at(
                p.span(),
                "partition goes with a role the store resolves per partition (e.g. node = \"leader\")",
            ));
        }
    }
}

fn check_faults(
    spec: &LoadedSpec,
    d: &DrillSpec,
    u: Option<&NodeUniverse>,
    stores: &Stores,
    out: &mut Vec<Diagnostic>,
) {
    let duration = *d.workload.duration.get_ref();
    let mut disasters = 0;
    let mut paused: HashSet<&str> = HashSet::new();
    let mut steps: Vec<_> = d.faults.iter().collect();
    steps.sort_by_key(|s| *s.at.get_ref());
    for s in steps {
        let action = *s.action.get_ref();
        let node = s.node_name();
        if *s.at.get_ref() > duration {
            out.push(spec.at(
                s.at.span(),
                format!(
                    "at = {} is after the end of the workload (duration {})",
                    s.at.get_ref(),
                    duration
                ),
            ));
        }
        check_step_target(spec, s, u, out);
        check_process_step(spec, s, u, stores, out);
        if action == FaultAction::CutReplication && node == "primary" {
            out.push(spec.at(
                s.target_span(),
                "cut_replication applies to a standby: it stops the standby receiving WAL",
            ));
        }
        check_network_step(spec, s, u, out);
        crate::command::check_command_step(spec, s, out);
        if let Some(f) = &s.for_ {
            if !matches!(
                action,
                FaultAction::Pause | FaultAction::CutReplication | FaultAction::Command
            ) && !action.is_network_fault()
            {
                out.push(spec.at(
                    f.span(),
                    format!(
                        "`for` applies to pause, cut_replication, network faults and command, not {}",
                        action.as_str()
                    ),
                ));
            } else if f.get_ref().is_zero() {
                out.push(spec.at(f.span(), "`for` must be more than 0"));
            }
        }
        match action {
            FaultAction::Pause => {
                paused.insert(node);
            }
            FaultAction::Resume => {
                if !paused.remove(node) {
                    out.push(spec.at(
                        s.target_span(),
                        format!("resume of {node:?} with no earlier pause of {node:?}"),
                    ));
                }
                if s.disaster.as_ref().is_some_and(|d| *d.get_ref()) {
                    out.push(spec.at(s.action.span(), "a resume heals; it cannot be the disaster"));
                }
            }
            FaultAction::Backup if s.disaster.as_ref().is_some_and(|d| *d.get_ref()) => {
                out.push(spec.at(
                    s.action.span(),
                    "a backup sets the stage (it saves, it breaks nothing); it cannot be the disaster",
                ));
            }
            _ => {}
        }
        if s.disaster.as_ref().is_some_and(|d| *d.get_ref()) {
            disasters += 1;
            if disasters > 1 {
                out.push(spec.at(
                    s.disaster.as_ref().map(|d| d.span()).unwrap_or(0..0),
                    "only one step can be the disaster",
                ));
            }
        }
    }
    if !d.faults.is_empty() && d.faults.iter().all(|s| s.action.get_ref().never_disaster()) {
        out.push(spec.at(
            spec.key_span("drill.faults", "action"),
            "the schedule has no fault, only resumes and backups",
        ));
    }
}

/// A process fault needs the pid of its endpoint; `kill_process` goes
/// with the process faults only.
fn check_process_step(
    spec: &LoadedSpec,
    s: &crate::FaultStep,
    u: Option<&NodeUniverse>,
    stores: &Stores,
    out: &mut Vec<Diagnostic>,
) {
    let action = *s.action.get_ref();
    let node = s.node_name();
    if action.is_process_fault() {
        if let Some(u) = u {
            if u.names.iter().any(|n| n == node) && !u.with_pid.contains(node) {
                out.push(spec.at(
                    s.target_span(),
                    format!(
                        "{} needs the pid of {node:?}: give {} for that endpoint",
                        action.as_str(),
                        stores
                            .get(&u.kind)
                            .map(|st| st.pid_source())
                            .unwrap_or("pid_file")
                    ),
                ));
            }
        }
    }
    if let Some(kp) = &s.kill_process {
        if !matches!(
            action,
            FaultAction::Kill | FaultAction::Stop | FaultAction::Pause
        ) {
            out.push(spec.at(
                kp.span(),
                format!(
                    "kill_process applies to kill, stop and pause, not {}",
                    action.as_str()
                ),
            ));
        }
    }
}

fn check_network_step(
    spec: &LoadedSpec,
    s: &crate::FaultStep,
    u: Option<&NodeUniverse>,
    out: &mut Vec<Diagnostic>,
) {
    let action = *s.action.get_ref();
    let only = |name: &str, span: std::ops::Range<usize>, out: &mut Vec<Diagnostic>| {
        out.push(spec.at(
            span,
            format!("`{name}` does not apply to {}", action.as_str()),
        ));
    };
    if !action.is_network_fault() {
        if let Some(l) = &s.link {
            only("link", l.span(), out);
        }
    }
    if action != FaultAction::Latency {
        if let Some(l) = &s.latency {
            only("latency", l.span(), out);
        }
        if let Some(j) = &s.jitter {
            only("jitter", j.span(), out);
        }
    }
    if action != FaultAction::Bandwidth {
        if let Some(r) = &s.rate_kbps {
            only("rate_kbps", r.span(), out);
        }
    }
    if !action.is_network_fault() {
        return;
    }
    if let Some(u) = u {
        if u.netns {
            if action != FaultAction::Partition {
                out.push(spec.at(
                    s.action.span(),
                    format!("{} needs links = \"proxied\": a links = \"netns\" lab can only partition a node from everyone (tc netem is not available)", action.as_str()),
                ));
            } else if let Some(l) = s
                .link
                .as_ref()
                .filter(|l| *l.get_ref() != crate::LinkScope::All)
            {
                out.push(spec.at(
                    l.span(),
                    "link = \"clients\" or \"replication\" needs links = \"proxied\" (as does \"peers\"): a links = \"netns\" lab partitions a node's whole veth link (link = \"all\")",
                ));
            }
        } else if u.clients_proxy && !u.proxied {
            if s.link.as_ref().map(|l| *l.get_ref()) != Some(crate::LinkScope::Clients) {
                out.push(spec.at(
                    s.link.as_ref().map(|l| l.span()).unwrap_or(s.action.span()),
                    format!("{} against explicit endpoints needs link = \"clients\": firedrill puts its embedded proxy between its own clients and the node, and cannot reroute the store's replication", action.as_str()),
                ));
            }
        } else if !u.proxied {
            out.push(spec.at(
                s.action.span(),
                format!("{} needs a lab with links = \"proxied\" (its traffic must run through firedrill's fault proxies)", action.as_str()),
            ));
        }
    }
    if action == FaultAction::Latency && s.latency.is_none() {
        out.push(spec.at(
            s.action.span(),
            "latency needs `latency`, e.g. latency = \"300ms\"",
        ));
    }
    if action == FaultAction::Bandwidth && s.rate_kbps.as_ref().is_none_or(|r| *r.get_ref() == 0) {
        out.push(spec.at(s.action.span(), "bandwidth needs rate_kbps > 0"));
    }
    if let Some(l) = &s.link {
        if *l.get_ref() == crate::LinkScope::Replication && s.node_name() == "primary" {
            out.push(spec.at(
                l.span(),
                "link = \"replication\" is a standby's link to its primary: name a standby",
            ));
        }
    }
}

/// The store's own `[drill.target]` options: unknown keys point at their
/// line, and the store checks the rest. When the store is not known yet
/// (a lab that is not up), every option is left to the check against the
/// lab's state.
fn check_target_options(
    spec: &LoadedSpec,
    d: &DrillSpec,
    u: Option<&NodeUniverse>,
    stores: &Stores,
    out: &mut Vec<Diagnostic>,
) {
    let Some(t) = &d.target else { return };
    let Some(store) = u.and_then(|u| stores.get(&u.kind)) else {
        return;
    };
    let path = ["drill", "target"];
    check_unknown_keys(spec, &path, &t.options, store, stores, out);
    store.check_target(spec, d, t, u, out);
}

/// A fault the store cannot take is a spec error, with the store's hint.
fn check_supported(
    spec: &LoadedSpec,
    s: &crate::FaultStep,
    store: &dyn crate::StoreSpec,
    stores: &Stores,
    out: &mut Vec<Diagnostic>,
) {
    let action = *s.action.get_ref();
    // A user command needs nothing of the store: every store takes it.
    if action != FaultAction::Command && !store.faults().contains(&action) {
        // Data disasters and backups go with a store's backup tools: the
        // kinds that declare them are named, whatever the store's hints
        // about its network faults say.
        let hint = if action.is_data_disaster()
            || action == FaultAction::Backup
            || action.is_backup_fault()
        {
            Some(stores.taking(action))
        } else {
            store.fault_hint(action).map(str::to_string)
        }
        .map(|h| format!(": {h}"))
        .unwrap_or_default();
        out.push(spec.at(
            s.action.span(),
            format!(
                "a {} store cannot take {}{hint}",
                store.kind(),
                action.as_str()
            ),
        ));
    }
}

/// What a whole file must pass before any command acts on it, lab or
/// drill: the lab's own checks, and the store's target options when the
/// file itself says which store the target is. A typo in either refuses
/// `lab up` as well as `drill` (exit 2, nothing started).
pub fn validate_file(spec: &LoadedSpec, stores: &Stores) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if spec.file.lab.as_ref().is_some_and(|l| l.is_multi()) {
        let lab_only = spec.file.drill.is_none();
        return crate::split_capability(spec, stores, lab_only)
            .err()
            .unwrap_or_default();
    }
    if spec.file.lab.is_some() {
        out.extend(validate_lab(spec, stores));
    }
    if let Some(d) = &spec.file.drill {
        let mut ignored = Vec::new();
        let u = own_universe(spec, d, stores, &mut ignored);
        check_target_options(spec, d, u.as_ref(), stores, &mut out);
    }
    out
}
