//! Semantic checks that serde cannot do. Every check runs, so the user sees
//! every problem in one go.

use crate::{
    Diagnostic, DrillSpec, FaultAction, LabKind, LabSpec, LoadedSpec, Replication, WorkloadMode,
};
use std::collections::HashSet;

/// Roles a fault step may name instead of a node. They are resolved when the
/// step runs, against the store's roles at that moment.
pub const ROLES: &[&str] = &["primary", "standby", "sync_standby"];

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
    /// The kind of store: which faults make sense (no `cut_replication`
    /// for etcd; `kill_process` only for Patroni nodes).
    pub kind: LabKind,
    /// The store is Redis (with Sentinel): no replication cut, and the
    /// `redis_*` target options apply.
    pub redis: bool,
}

impl NodeUniverse {
    pub fn from_lab(lab: &LabSpec) -> Self {
        let names = lab.node_names();
        NodeUniverse {
            with_pid: names.iter().cloned().collect(),
            names,
            sync: match lab.kind {
                LabKind::Postgres => lab.replication == Replication::Sync,
                LabKind::Patroni => lab.patroni_settings().synchronous_mode,
                LabKind::Etcd | LabKind::RedisSentinel => false,
            },
            proxied: lab.links == crate::Links::Proxied,
            netns: lab.links == crate::Links::Netns,
            clients_proxy: false,
            kind: lab.kind,
            redis: lab.kind == LabKind::RedisSentinel,
        }
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

pub fn validate_lab(spec: &LoadedSpec) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let Some(lab) = &spec.file.lab else {
        out.push(spec.at(0..0, "no [lab] table in this file"));
        return out;
    };
    if !valid_name(lab.name.get_ref()) {
        out.push(spec.at(
            lab.name.span(),
            "lab name must be 1-63 letters, digits, '-' or '_'",
        ));
    }
    match lab.kind {
        LabKind::Postgres | LabKind::RedisSentinel => {
            if lab.standbys == 0 || lab.standbys > 8 {
                out.push(spec.at(0..0, "lab standbys must be between 1 and 8"));
            }
        }
        LabKind::Patroni => {
            if lab.standbys == 0 || lab.standbys > 2 {
                out.push(spec.at(
                    0..0,
                    "a patroni lab has 2 or 3 nodes: standbys must be 1 or 2",
                ));
            }
        }
        LabKind::Etcd => {}
    }
    check_kind_tables(spec, lab, &mut out);
    check_redis_lab(spec, lab, &mut out);
    if let Some(q) = &lab.sync_quorum {
        if lab.replication != Replication::Sync {
            out.push(spec.at(q.span(), "sync_quorum needs replication = \"sync\""));
        } else if *q.get_ref() == 0 || *q.get_ref() > lab.standbys {
            out.push(spec.at(
                q.span(),
                format!(
                    "sync_quorum must be between 1 and the number of standbys ({})",
                    lab.standbys
                ),
            ));
        }
    }
    for (k, v) in &lab.settings {
        if matches!(v, toml::Value::Array(_) | toml::Value::Table(_)) {
            out.push(spec.at(
                0..0,
                format!("lab setting {k:?} must be a string, number or boolean"),
            ));
        }
    }
    out
}

/// The `[lab.etcd]` and `[lab.patroni]` tables, and the settings that only
/// some kinds have.
fn check_kind_tables(spec: &LoadedSpec, lab: &LabSpec, out: &mut Vec<Diagnostic>) {
    let kind = lab.kind.as_str();
    if lab.etcd.is_some() && lab.kind != LabKind::Etcd {
        out.push(spec.at(
            lab.name.span(),
            format!("[lab.etcd] needs kind = \"etcd\" (this lab is {kind})"),
        ));
    }
    if lab.patroni.is_some() && lab.kind != LabKind::Patroni {
        out.push(spec.at(
            lab.name.span(),
            format!("[lab.patroni] needs kind = \"patroni\" (this lab is {kind})"),
        ));
    }
    if matches!(lab.kind, LabKind::Etcd | LabKind::Patroni) {
        if lab.links != crate::Links::Direct {
            out.push(spec.at(
                lab.name.span(),
                format!("links = proxied/netns is only for postgres labs, not {kind}"),
            ));
        }
        if lab.replication != Replication::Async || lab.sync_quorum.is_some() {
            out.push(spec.at(
                lab.name.span(),
                format!(
                    "replication and sync_quorum are for postgres labs; {kind} labs set their own (patroni: [lab.patroni] synchronous_mode)"
                ),
            ));
        }
    }
    if lab.kind == LabKind::Etcd {
        if !lab.settings.is_empty() {
            out.push(spec.at(
                lab.name.span(),
                "[lab.settings] holds postgresql.conf settings; an etcd lab has none",
            ));
        }
        let e = lab.etcd_settings();
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
                    crate::Dur(hb * 5)
                ),
            ));
        } else if el > std::time::Duration::from_secs(50) {
            out.push(spec.at(
                e.election.span(),
                "election must be at most 50s (etcd's limit)",
            ));
        }
    }
    if lab.kind == LabKind::Patroni {
        let p = lab.patroni_settings();
        let whole = |d: &toml::Spanned<crate::Dur>,
                     name: &str,
                     min: u64,
                     out: &mut Vec<Diagnostic>| {
            let v = d.get_ref().0;
            if v.subsec_nanos() != 0 || v.as_secs() < min {
                out.push(spec.at(
                    d.span(),
                    format!("{name} must be a whole number of seconds, at least {min}s (Patroni counts in seconds)"),
                ));
                false
            } else {
                true
            }
        };
        let ok = whole(&p.ttl, "ttl", 5, out)
            & whole(&p.loop_wait, "loop_wait", 1, out)
            & whole(&p.retry_timeout, "retry_timeout", 1, out);
        if ok {
            let (t, l, r) = (
                p.ttl.get_ref().0.as_secs(),
                p.loop_wait.get_ref().0.as_secs(),
                p.retry_timeout.get_ref().0.as_secs(),
            );
            if l + 2 * r > t {
                out.push(spec.at(
                    p.ttl.span(),
                    format!("Patroni needs loop_wait + 2 × retry_timeout <= ttl ({l} + 2 × {r} > {t}): the leader could lose its key while retrying"),
                ));
            }
        }
        if let Some(s) = &p.synchronous_mode_strict {
            if *s.get_ref() && !p.synchronous_mode {
                out.push(spec.at(
                    s.span(),
                    "synchronous_mode_strict needs synchronous_mode = true",
                ));
            }
        }
    }
}

/// `kind = "redis-sentinel"` and `[lab.redis]` go together; PostgreSQL
/// knobs mean nothing to Redis, and silently ignoring them would drill a
/// different setup than the one written.
fn check_redis_lab(spec: &LoadedSpec, lab: &LabSpec, out: &mut Vec<Diagnostic>) {
    let redis = lab.kind == crate::LabKind::RedisSentinel;
    if !redis {
        if lab.redis.is_some() {
            out.push(spec.at(
                lab.name.span(),
                "[lab.redis] needs kind = \"redis-sentinel\"",
            ));
        }
        return;
    }
    if lab.replication != Replication::Async || lab.sync_quorum.is_some() {
        out.push(spec.at(
            lab.name.span(),
            "replication and sync_quorum are PostgreSQL settings: a Redis lab replicates asynchronously (use [lab.redis] min_replicas_to_write, or redis_wait in the drill)",
        ));
    }
    if !lab.settings.is_empty() {
        out.push(spec.at(
            lab.name.span(),
            "[lab.settings] holds postgresql.conf settings; a Redis lab takes [lab.redis]",
        ));
    }
    if lab.links == crate::Links::Netns {
        out.push(spec.at(
            lab.name.span(),
            "a Redis lab supports links = \"direct\" or \"proxied\" (partitions go through the proxies)",
        ));
    }
    let Some(r) = &lab.redis else { return };
    let ms = |d: &crate::Dur| d.0.as_millis();
    if let Some(d) = &r.down_after {
        if ms(d.get_ref()) < 100 {
            out.push(spec.at(d.span(), "down_after must be at least 100ms"));
        }
    }
    if let Some(d) = &r.failover_timeout {
        if ms(d.get_ref()) < 1000 {
            out.push(spec.at(d.span(), "failover_timeout must be at least 1s"));
        }
    }
    if let Some(d) = &r.min_replicas_max_lag {
        let v = d.get_ref().0;
        if v.as_secs() == 0 || v.subsec_nanos() != 0 {
            out.push(spec.at(
                d.span(),
                "min_replicas_max_lag is whole seconds (Redis counts it in seconds), at least 1s",
            ));
        }
    }
    if let Some(m) = &r.min_replicas_to_write {
        if *m.get_ref() > lab.standbys {
            out.push(spec.at(
                m.span(),
                format!(
                    "min_replicas_to_write must be at most the number of replicas ({})",
                    lab.standbys
                ),
            ));
        }
    }
    if let Some(s) = &r.sentinels {
        if !(1..=7).contains(s.get_ref()) {
            out.push(spec.at(s.span(), "sentinels must be between 1 and 7"));
        }
    }
    if let Some(n) = &r.master_name {
        if !valid_name(n.get_ref()) {
            out.push(spec.at(
                n.span(),
                "master_name must be 1-63 letters, digits, '-' or '_'",
            ));
        }
    }
}

/// The `redis_*` options of `[drill.target]`: only for Redis targets, and
/// a WAIT timeout that fits inside the operation's timeout.
fn check_redis_target(
    spec: &LoadedSpec,
    d: &DrillSpec,
    u: Option<&NodeUniverse>,
    out: &mut Vec<Diagnostic>,
) {
    let Some(t) = &d.target else { return };
    let explicit_redis = !t.nodes.is_empty() && t.kind == crate::LabKind::RedisSentinel;
    let redis = explicit_redis || u.is_some_and(|u| u.redis);
    let known = explicit_redis || u.is_some();
    let opts: Vec<std::ops::Range<usize>> = [
        t.redis_write.as_ref().map(|v| v.span()),
        t.redis_wait.as_ref().map(|v| v.span()),
        t.redis_wait_timeout.as_ref().map(|v| v.span()),
        t.redis_master_name.as_ref().map(|v| v.span()),
    ]
    .into_iter()
    .flatten()
    .chain(t.redis_sentinels.iter().map(|s| s.span()))
    .collect();
    if known && !redis {
        for span in opts {
            out.push(spec.at(span, "redis_* options apply to Redis targets only"));
        }
        return;
    }
    if let Some(w) = &t.redis_wait {
        if *w.get_ref() == 0 {
            out.push(spec.at(
                w.span(),
                "redis_wait is the number of replicas WAIT must reach: at least 1",
            ));
        }
    }
    if let Some(wt) = &t.redis_wait_timeout {
        if t.redis_wait.is_none() {
            out.push(spec.at(wt.span(), "redis_wait_timeout needs redis_wait"));
        }
        if wt.get_ref().is_zero() || *wt.get_ref() >= d.workload.op_timeout {
            out.push(spec.at(
                wt.span(),
                format!(
                    "redis_wait_timeout must be more than 0 and less than workload.op_timeout ({})",
                    d.workload.op_timeout
                ),
            ));
        }
    }
    if explicit_redis {
        if t.redis_sentinels.is_empty() {
            out.push(spec.at(
                0..0,
                "Redis endpoints need redis_sentinels = [\"host:port\", ...]: clients ask Sentinel for the master",
            ));
        }
        for s in t
            .redis_sentinels
            .iter()
            .chain(t.nodes.iter().map(|n| &n.conninfo))
        {
            if !is_host_port(s.get_ref()) {
                out.push(spec.at(s.span(), "a Redis address is host:port"));
            }
        }
    }
}

fn is_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((h, p)) => !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}

/// Checks a drill. `universe` is the set of nodes of the target when it is
/// known from outside the file (a lab that is already up); otherwise it is
/// taken from the file's own lab or endpoints.
pub fn validate_drill(spec: &LoadedSpec, universe: Option<&NodeUniverse>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let Some(d) = &spec.file.drill else {
        out.push(spec.at(0..0, "no [drill] table in this file"));
        return out;
    };
    if !valid_name(d.name.get_ref()) {
        out.push(spec.at(
            d.name.span(),
            "drill name must be 1-63 letters, digits, '-' or '_'",
        ));
    }

    let own = own_universe(spec, d, &mut out);
    let universe = universe.cloned().or(own);

    check_workload(spec, d, &mut out);
    check_redis_target(spec, d, universe.as_ref(), &mut out);
    check_faults(spec, d, universe.as_ref(), &mut out);
    check_recovery(spec, d, universe.as_ref(), &mut out);
    check_slo(spec, d, &mut out);

    match &d.objectives {
        None => out.push(spec.at(
            0..0,
            "[drill.objectives] is missing: give rpo and/or rto, e.g. rpo = \"5s\", rto = \"1m\"",
        )),
        Some(o) if o.rpo.is_none() && o.rto.is_none() => {
            out.push(spec.at(0..0, "[drill.objectives] needs rpo, rto, or both"))
        }
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
    out: &mut Vec<Diagnostic>,
) -> Option<NodeUniverse> {
    let Some(t) = &d.target else {
        return match &spec.file.lab {
            Some(lab) => Some(NodeUniverse::from_lab(lab)),
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
            Some(lab) if lab.name.get_ref() == l.get_ref() => Some(NodeUniverse::from_lab(lab)),
            _ => None, // resolved by the caller from the lab's state
        },
        // Only options (redis_write, …): the target is this file's lab.
        (None, true) if spec.file.lab.is_some() => {
            spec.file.lab.as_ref().map(NodeUniverse::from_lab)
        }
        (None, true) => {
            out.push(spec.at(
                0..0,
                "[drill.target] needs lab = \"NAME\" or [[drill.target.nodes]]",
            ));
            None
        }
        (None, false) => {
            if t.password_env.is_some() && t.password_file.is_some() {
                out.push(spec.at(0..0, "target: give password_env or password_file, not both"));
            }
            let mut u = NodeUniverse {
                // The embedded proxy rewrites libpq conninfos only.
                clients_proxy: t.kind == LabKind::Postgres,
                kind: t.kind,
                redis: t.kind == LabKind::RedisSentinel,
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
                // A data directory gives a pid through PostgreSQL's
                // postmaster.pid: other stores name their pid file.
                if n.data_dir.is_some() && t.kind != LabKind::Postgres {
                    out.push(spec.at(
                        n.name.span(),
                        format!(
                            "data_dir is for PostgreSQL endpoints (its postmaster.pid): give pid_file for {name:?}"
                        ),
                    ));
                }
                if n.pid_file.is_some() || (n.data_dir.is_some() && t.kind == LabKind::Postgres) {
                    u.with_pid.insert(name.clone());
                }
                u.names.push(name.clone());
            }
            Some(u)
        }
    }
}

fn conninfo_has_password(ci: &str) -> bool {
    let lower = ci.to_ascii_lowercase();
    lower
        .split_whitespace()
        .any(|kv| kv.starts_with("password"))
        || (lower.starts_with("postgres") && lower.contains(':') && lower.contains('@') && {
            // postgresql://user:secret@host
            let after = lower.split("://").nth(1).unwrap_or("");
            after
                .split('@')
                .next()
                .is_some_and(|userinfo| userinfo.contains(':'))
        })
}

fn check_workload(spec: &LoadedSpec, d: &DrillSpec, out: &mut Vec<Diagnostic>) {
    let w = &d.workload;
    match w.mode {
        WorkloadMode::Closed => {
            if let Some(r) = &w.rate {
                out.push(spec.at(
                    r.span(),
                    "rate is for mode = \"rate\"; closed mode runs as fast as the store allows",
                ));
            }
            if let Some(m) = &w.max_in_flight {
                out.push(spec.at(
                    m.span(),
                    "max_in_flight is for mode = \"rate\"; closed mode has `clients`",
                ));
            }
            if let Some(c) = &w.clients {
                if *c.get_ref() == 0 || *c.get_ref() > 1000 {
                    out.push(spec.at(c.span(), "clients must be between 1 and 1000"));
                }
            }
        }
        WorkloadMode::Rate => {
            if let Some(c) = &w.clients {
                out.push(spec.at(
                    c.span(),
                    "clients is for mode = \"closed\"; rate mode has max_in_flight",
                ));
            }
            match &w.rate {
                None => {
                    out.push(spec.at(0..0, "mode = \"rate\" needs rate (operations per second)"))
                }
                Some(r) if !(*r.get_ref() > 0.0 && *r.get_ref() <= 1_000_000.0) => {
                    out.push(spec.at(
                        r.span(),
                        "rate must be between 0 and 1000000 operations per second",
                    ))
                }
                _ => {}
            }
            if let Some(m) = &w.max_in_flight {
                if *m.get_ref() == 0 || *m.get_ref() > 1000 {
                    out.push(spec.at(m.span(), "max_in_flight must be between 1 and 1000"));
                }
            }
        }
    }
    if w.duration.get_ref().is_zero() {
        out.push(spec.at(w.duration.span(), "duration must be more than 0"));
    }
    if w.op_timeout.is_zero() {
        out.push(spec.at(0..0, "workload.op_timeout must be more than 0"));
    }
    if w.payload_bytes > 1 << 20 {
        out.push(spec.at(0..0, "workload.payload_bytes must be at most 1048576"));
    }
}

fn node_ok(u: Option<&NodeUniverse>, name: &str) -> Result<(), String> {
    let Some(u) = u else { return Ok(()) };
    if name == "sync_standby" && !u.sync {
        return Err("sync_standby needs a target with replication = \"sync\"".into());
    }
    if ROLES.contains(&name) || u.names.iter().any(|n| n == name) {
        return Ok(());
    }
    Err(format!(
        "no node named {name:?}; the nodes are {} (or a role: {})",
        u.names.join(", "),
        ROLES.join(", ")
    ))
}

fn check_faults(
    spec: &LoadedSpec,
    d: &DrillSpec,
    u: Option<&NodeUniverse>,
    out: &mut Vec<Diagnostic>,
) {
    let duration = *d.workload.duration.get_ref();
    let mut disasters = 0;
    let mut paused: HashSet<&str> = HashSet::new();
    let mut steps: Vec<_> = d.faults.iter().collect();
    steps.sort_by_key(|s| *s.at.get_ref());
    for s in steps {
        let action = *s.action.get_ref();
        let node = s.node.get_ref().as_str();
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
        if let Err(m) = node_ok(u, node) {
            out.push(spec.at(s.node.span(), m));
        }
        if action.is_process_fault() {
            if let Some(u) = u {
                if u.names.iter().any(|n| n == node) && !u.with_pid.contains(node) {
                    out.push(spec.at(
                        s.node.span(),
                        if u.kind == LabKind::Postgres {
                            format!("{} needs the pid of {node:?}: give data_dir or pid_file for that endpoint", action.as_str())
                        } else {
                            format!("{} needs the pid of {node:?}: give pid_file for that endpoint", action.as_str())
                        },
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
            } else if kp.get_ref() != "postgres" {
                out.push(spec.at(
                    kp.span(),
                    format!("kill_process must be \"postgres\" (the postmaster alone), not {:?}; leave it out to hit the whole node", kp.get_ref()),
                ));
            } else if u.is_some_and(|u| u.kind != LabKind::Patroni) {
                out.push(spec.at(
                    kp.span(),
                    "kill_process is for Patroni nodes (a postmaster with a manager that restarts it); elsewhere the postmaster is the node",
                ));
            }
        }
        if action == FaultAction::CutReplication && u.is_some_and(|u| u.kind == LabKind::Etcd) {
            out.push(spec.at(
                s.action.span(),
                "cut_replication is for PostgreSQL standbys; an etcd follower has no replication link to cut (use pause or a network fault)",
            ));
        }
        if action == FaultAction::CutReplication && u.is_some_and(|u| u.redis) {
            out.push(spec.at(
                s.action.span(),
                "cut_replication is a PostgreSQL fault; for Redis use partition with link = \"peers\" or \"replication\" (links = \"proxied\")",
            ));
        }
        if action == FaultAction::CutReplication && node == "primary" {
            out.push(spec.at(
                s.node.span(),
                "cut_replication applies to a standby: it stops the standby receiving WAL",
            ));
        }
        check_network_step(spec, s, u, out);
        if let Some(f) = &s.for_ {
            if !matches!(action, FaultAction::Pause | FaultAction::CutReplication)
                && !action.is_network_fault()
            {
                out.push(spec.at(
                    f.span(),
                    format!(
                        "`for` applies to pause and cut_replication, not {}",
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
                        s.node.span(),
                        format!("resume of {node:?} with no earlier pause of {node:?}"),
                    ));
                }
                if s.disaster.as_ref().is_some_and(|d| *d.get_ref()) {
                    out.push(spec.at(s.action.span(), "a resume heals; it cannot be the disaster"));
                }
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
    if !d.faults.is_empty()
        && d.faults
            .iter()
            .all(|s| *s.action.get_ref() == FaultAction::Resume)
    {
        out.push(spec.at(0..0, "the schedule has no fault, only resumes"));
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
        if *l.get_ref() == crate::LinkScope::Replication && u.is_some_and(|u| u.redis) {
            out.push(spec.at(
                l.span(),
                "a Redis lab proxies each node's peers path, not each replication link: use link = \"peers\"",
            ));
        }
        if *l.get_ref() == crate::LinkScope::Replication && s.node.get_ref() == "primary" {
            out.push(spec.at(
                l.span(),
                "link = \"replication\" is a standby's link to its primary: name a standby",
            ));
        }
    }
}

fn check_recovery(
    spec: &LoadedSpec,
    d: &DrillSpec,
    u: Option<&NodeUniverse>,
    out: &mut Vec<Diagnostic>,
) {
    let r = &d.recovery;
    let automatic = r.automatic.as_ref().is_some_and(|a| *a.get_ref());
    let n = r.promote.is_some() as u8 + r.command.is_some() as u8 + automatic as u8;
    if n > 1 {
        out.push(spec.at(
            0..0,
            "[drill.recovery]: give one of promote, command or automatic",
        ));
    }
    if let Some(p) = &r.promote {
        let name = p.get_ref();
        if name != "most_advanced" {
            if ROLES.contains(&name.as_str()) {
                out.push(spec.at(
                    p.span(),
                    "promote takes a node name or \"most_advanced\", not a role",
                ));
            } else if let Some(u) = u {
                if !u.names.iter().any(|n| n == name) {
                    out.push(spec.at(
                        p.span(),
                        format!(
                            "no node named {name:?}; the nodes are {}",
                            u.names.join(", ")
                        ),
                    ));
                }
            }
        }
    }
    if let Some(c) = &r.command {
        if c.get_ref().trim().is_empty() {
            out.push(spec.at(c.span(), "recovery command is empty"));
        }
    }
}

fn check_slo(spec: &LoadedSpec, d: &DrillSpec, out: &mut Vec<Diagnostic>) {
    let s = &d.slo;
    let r = *s.success_ratio.get_ref();
    if !(r > 0.0 && r <= 1.0) {
        out.push(spec.at(s.success_ratio.span(), "success_ratio must be in (0, 1]"));
    }
    let b = *s.bucket.get_ref();
    if b.0 < std::time::Duration::from_millis(1) {
        out.push(spec.at(s.bucket.span(), "bucket must be at least 1ms"));
    } else if b > s.stable_for && !s.stable_for.is_zero() {
        out.push(spec.at(s.bucket.span(), "bucket must not be longer than stable_for"));
    }
    if s.recovery_timeout.is_zero() {
        out.push(spec.at(0..0, "slo.recovery_timeout must be more than 0"));
    }
}
