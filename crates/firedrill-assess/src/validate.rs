//! The version 2 tables of the objectives file, checked into an
//! [`Architecture`]: every problem at once, each at its file:line:column,
//! added to what watch found in the same file.

use crate::kind::{Knowledge, Param, Params, SettingDef, SettingType};
use crate::model::*;
use firedrill_spec::Diagnostic;
use firedrill_watch::config::{
    CapabilitySpec, DomainSpec, FailoverSpec, ObjectiveSpec, ReplicationSpec,
};
use firedrill_watch::Loaded;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use toml::Spanned;

fn dur(d: &Option<Spanned<firedrill_spec::Dur>>) -> Option<Duration> {
    d.as_ref().map(|d| d.get_ref().0)
}

/// What objectives and placements are checked against.
struct Known {
    /// Zone → region, from `[topology]`.
    regions: BTreeMap<String, String>,
    has_topology: bool,
    /// Custom disruptions by name: the zones they take out.
    custom: BTreeMap<String, Vec<String>>,
}

/// Checks the architecture tables; `None` when any problem was pushed.
pub fn validate(l: &Loaded, k: &Knowledge, out: &mut Vec<Diagnostic>) -> Option<Architecture> {
    let before = out.len();
    let mut known = topology(l, out);
    disruptions(l, &mut known, out);
    let mut domains = Vec::new();
    for d in &l.file.domains {
        domains.push(domain(l, d, &known, k, out));
    }
    let names: Vec<String> = domains.iter().map(|d| d.name.clone()).collect();
    let caps: Vec<String> = l
        .file
        .capabilities
        .iter()
        .map(|c| c.name.get_ref().clone())
        .collect();
    let mut capabilities = Vec::new();
    let mut seen = BTreeSet::new();
    for c in &l.file.capabilities {
        if !firedrill_watch::config::valid_name(c.name.get_ref()) {
            out.push(l.at(
                c.name.span(),
                "capability name must be 1-63 letters, digits, '-' or '_'",
            ));
        } else if !seen.insert(c.name.get_ref().clone()) || names.contains(c.name.get_ref()) {
            out.push(l.at(
                c.name.span(),
                format!(
                    "{:?} is declared twice (domain and capability names share one namespace)",
                    c.name.get_ref()
                ),
            ));
        }
        capabilities.push(capability(l, c, &names, &caps, &known, out));
    }
    let order = crate::cycles::check(l, &capabilities, out);
    if out.len() > before {
        return None;
    }
    Some(Architecture {
        path: l.path.clone(),
        domains,
        capabilities,
        regions: known.regions,
        order,
        knowledge: k.clone(),
    })
}

fn topology(l: &Loaded, out: &mut Vec<Diagnostic>) -> Known {
    let mut regions = BTreeMap::new();
    if let Some(t) = &l.file.topology {
        for (region, zones) in &t.regions {
            if zones.get_ref().is_empty() {
                out.push(l.at(zones.span(), format!("region {region:?} has no zones")));
            }
            for z in zones.get_ref() {
                if let Some(other) = regions.insert(z.get_ref().clone(), region.clone()) {
                    out.push(l.at(
                        z.span(),
                        format!("zone {:?} is already in region {other:?}", z.get_ref()),
                    ));
                }
                if t.regions.contains_key(z.get_ref()) {
                    out.push(l.at(z.span(), "a zone cannot be named like a region"));
                }
            }
        }
    }
    Known {
        regions,
        has_topology: l.file.topology.is_some(),
        custom: BTreeMap::new(),
    }
}

/// The failure domains a name may take: zones and regions of the
/// topology, else the zones the placements name.
fn failure_domains(l: &Loaded, known: &Known) -> BTreeSet<String> {
    if known.has_topology {
        let mut s: BTreeSet<String> = known.regions.keys().cloned().collect();
        s.extend(known.regions.values().cloned());
        return s;
    }
    let mut s = BTreeSet::new();
    for d in &l.file.domains {
        if let Some(p) = &d.placement {
            s.extend(p.nodes.values().map(|z| z.get_ref().clone()));
            if let Some(zs) = &p.zones {
                s.extend(zs.get_ref().iter().map(|z| z.get_ref().clone()));
            }
        }
    }
    s
}

fn disruptions(l: &Loaded, known: &mut Known, out: &mut Vec<Diagnostic>) {
    let fds = failure_domains(l, known);
    for d in &l.file.disruptions {
        let name = d.name.get_ref();
        if !firedrill_watch::config::valid_name(name) {
            out.push(l.at(
                d.name.span(),
                "disruption name must be 1-63 letters, digits, '-' or '_'",
            ));
        }
        if Standard::parse(name).is_some() {
            out.push(l.at(
                d.name.span(),
                format!("{name:?} is a standard disruption: give a custom one another name"),
            ));
        }
        if d.takes_out.get_ref().is_empty() {
            out.push(l.at(
                d.takes_out.span(),
                "takes_out must name the zones or regions the disruption takes out",
            ));
        }
        let mut zones = Vec::new();
        for fd in d.takes_out.get_ref() {
            let f = fd.get_ref();
            if !fds.contains(f) {
                let list: Vec<&str> = fds.iter().map(String::as_str).collect();
                out.push(l.at(
                    fd.span(),
                    format!(
                        "unknown failure domain {f:?}: expected a zone or region of {}",
                        if list.is_empty() {
                            "[topology] (none is declared)".to_string()
                        } else {
                            format!("[topology] ({})", list.join(", "))
                        }
                    ),
                ));
                continue;
            }
            let in_region: Vec<String> = known
                .regions
                .iter()
                .filter(|(_, r)| *r == f)
                .map(|(z, _)| z.clone())
                .collect();
            if in_region.is_empty() {
                zones.push(f.clone());
            } else {
                zones.extend(in_region);
            }
        }
        if known.custom.insert(name.clone(), zones).is_some() {
            out.push(l.at(
                d.name.span(),
                format!("disruption {name:?} is declared twice"),
            ));
        }
    }
}

fn domain(
    l: &Loaded,
    d: &DomainSpec,
    known: &Known,
    k: &Knowledge,
    out: &mut Vec<Diagnostic>,
) -> Domain {
    let nodes: Vec<String> = d
        .store
        .nodes
        .iter()
        .map(|n| n.name.get_ref().clone())
        .collect();
    let name = d.name.get_ref().clone();
    let replication = match &d.replication {
        None => Replication::Undeclared,
        Some(r) => replication(l, r, &nodes, out),
    };
    let failover = match &d.failover {
        None => Failover::Undeclared,
        Some(f) => failover(l, f, d.store.kind.get_ref(), k, out),
    };
    let backups = d.backups.as_ref().map(|b| Backups {
        tool: b.tool.get_ref().clone(),
        interval: b.interval.get_ref().0,
        archive_timeout: dur(&b.archive_timeout),
        retention: dur(&b.retention),
        restore: dur(&b.restore),
    });
    if let Some(b) = &d.backups {
        if b.interval.get_ref().0.is_zero() {
            out.push(l.at(b.interval.span(), "interval must be above 0"));
        }
    }
    let zones = placement(l, d, &nodes, known, out);
    let objectives = d
        .objectives
        .iter()
        .map(|(key, o)| domain_objective(l, &name, key, o, known, out))
        .collect();
    Domain {
        name,
        kind: d.store.kind.get_ref().clone(),
        nodes,
        replication,
        failover,
        backups,
        zones,
        objectives,
    }
}

fn replication(
    l: &Loaded,
    r: &ReplicationSpec,
    nodes: &[String],
    out: &mut Vec<Diagnostic>,
) -> Replication {
    let mode = r.mode.get_ref().as_str();
    if mode != "sync" {
        if let Some(q) = &r.quorum {
            out.push(l.at(q.span(), "quorum is for mode = \"sync\""));
        }
        if let Some(s) = &r.standbys {
            out.push(l.at(s.span(), "standbys is for mode = \"sync\""));
        }
    }
    match mode {
        "none" => Replication::None,
        "async" => Replication::Async,
        "quorum" => Replication::Quorum,
        "sync" => {
            let standbys: Vec<String> = match &r.standbys {
                Some(s) => {
                    for n in s.get_ref() {
                        if !nodes.contains(n.get_ref()) {
                            out.push(l.at(
                                n.span(),
                                format!("no node named {:?} in this store", n.get_ref()),
                            ));
                        }
                    }
                    s.get_ref().iter().map(|n| n.get_ref().clone()).collect()
                }
                None => nodes.iter().skip(1).cloned().collect(),
            };
            let quorum = r.quorum.as_ref().map(|q| *q.get_ref()).unwrap_or(1);
            if quorum == 0 || quorum as usize > standbys.len().max(1) {
                let span = r.quorum.as_ref().map_or(r.mode.span(), |q| q.span());
                out.push(l.at(
                    span,
                    format!(
                        "quorum must be between 1 and the {} standby(s) that may confirm",
                        standbys.len()
                    ),
                ));
            }
            Replication::Sync { quorum, standbys }
        }
        other => {
            out.push(l.at(
                r.mode.span(),
                format!("unknown replication mode {other:?}: expected none, async, sync or quorum"),
            ));
            Replication::Undeclared
        }
    }
}

fn failover(
    l: &Loaded,
    f: &FailoverSpec,
    store: &str,
    k: &Knowledge,
    out: &mut Vec<Diagnostic>,
) -> Failover {
    let keys = f.0.get_ref();
    let Some(kind) = keys.get("kind") else {
        out.push(l.at(f.0.span(), "[domain.failover] needs kind"));
        return Failover::Undeclared;
    };
    let Some(name) = kind.get_ref().as_str() else {
        out.push(l.at(kind.span(), "kind must be a string"));
        return Failover::Undeclared;
    };
    let mechanisms = k.failovers_of(store);
    let mut names: Vec<&str> = vec!["manual"];
    names.extend(mechanisms.iter().map(|m| m.name()));
    let settings: &[SettingDef] = if name == "manual" {
        MANUAL
    } else if let Some(m) = mechanisms.iter().find(|m| m.name() == name) {
        m.settings()
    } else {
        let other = match k.failover(name) {
            Some(m) => format!(
                "{name} fails over {}, not {store}",
                m.stores().join(" and ")
            ),
            None => format!("unknown failover kind {name:?}"),
        };
        out.push(l.at(
            kind.span(),
            format!("{other}: a {store} domain takes {}", names.join(", ")),
        ));
        return Failover::Undeclared;
    };
    let params = params(l, keys, name, settings, out);
    match mechanisms.into_iter().find(|m| m.name() == name) {
        Some(kind) => Failover::Automatic { kind, params },
        None => Failover::Manual {
            response: params.0.get("response").map(|_| params.dur("response")),
        },
    }
}

const MANUAL: &[SettingDef] = &[SettingDef {
    key: "response",
    ty: SettingType::Duration,
    default: None,
}];

/// A mechanism's settings: each declared one checked against its type,
/// the others from the mechanism's defaults.
fn params(
    l: &Loaded,
    keys: &BTreeMap<String, Spanned<toml::Value>>,
    name: &str,
    settings: &[SettingDef],
    out: &mut Vec<Diagnostic>,
) -> Params {
    let allowed: Vec<&str> = settings.iter().map(|s| s.key).collect();
    for (key, v) in keys {
        if key != "kind" && !allowed.contains(&key.as_str()) {
            out.push(l.at(
                v.span(),
                format!(
                    "{key} is not a setting of {name} failover (it takes {})",
                    if allowed.is_empty() {
                        "none".to_string()
                    } else {
                        allowed.join(", ")
                    }
                ),
            ));
        }
    }
    let mut p = Params::default();
    for s in settings {
        let declared = keys.get(s.key);
        let value = match declared {
            Some(v) => match param(s.ty, v.get_ref()) {
                Ok(x) => Some(x),
                Err(why) => {
                    out.push(l.at(v.span(), format!("{}: {why}", s.key)));
                    None
                }
            },
            None => s.default_param(),
        };
        if let Some(x) = value {
            p.0.insert(s.key.to_string(), x);
        }
    }
    p
}

fn param(ty: SettingType, v: &toml::Value) -> Result<Param, String> {
    match (ty, v) {
        (SettingType::Duration, toml::Value::String(s)) => {
            s.parse::<firedrill_spec::Dur>().map(|d| Param::Dur(d.0))
        }
        (SettingType::Duration, _) => Err("give a duration such as \"30s\"".into()),
        (SettingType::Bool, toml::Value::Boolean(b)) => Ok(Param::Bool(*b)),
        (SettingType::Bool, _) => Err("give true or false".into()),
        (SettingType::Text, toml::Value::String(s)) => Ok(Param::Text(s.clone())),
        (SettingType::Text, _) => Err("give a string".into()),
    }
}

fn placement(
    l: &Loaded,
    d: &DomainSpec,
    nodes: &[String],
    known: &Known,
    out: &mut Vec<Diagnostic>,
) -> BTreeMap<String, String> {
    let mut zones = BTreeMap::new();
    let Some(p) = &d.placement else {
        return zones;
    };
    let check_zone = |z: &Spanned<String>, out: &mut Vec<Diagnostic>| {
        if known.has_topology && !known.regions.contains_key(z.get_ref()) {
            out.push(l.at(
                z.span(),
                format!(
                    "unknown zone {:?}: it is in no region of [topology]",
                    z.get_ref()
                ),
            ));
        }
    };
    for (node, z) in &p.nodes {
        if !nodes.contains(node) {
            out.push(l.at(z.span(), format!("no node named {node:?} in this store")));
        }
        check_zone(z, out);
        zones.insert(node.clone(), z.get_ref().clone());
    }
    if let Some(zs) = &p.zones {
        if !p.nodes.is_empty() {
            out.push(l.at(zs.span(), "give zones or nodes, not both"));
        }
        if zs.get_ref().is_empty() {
            out.push(l.at(zs.span(), "zones must name at least one zone"));
        }
        for z in zs.get_ref() {
            check_zone(z, out);
        }
        // Nodes spread over the zones in order, as a lab places them.
        for (i, n) in nodes.iter().enumerate() {
            if let Some(z) = zs.get_ref().get(i % zs.get_ref().len().max(1)) {
                zones.insert(n.clone(), z.get_ref().clone());
            }
        }
    }
    zones
}

/// Which disruption an objective key covers.
fn classify(
    l: &Loaded,
    key: &str,
    explicit: &Option<Spanned<String>>,
    span: std::ops::Range<usize>,
    known: &Known,
    out: &mut Vec<Diagnostic>,
) -> Disruption {
    let (name, span) = match explicit {
        Some(e) => (e.get_ref().as_str(), e.span()),
        None => (key, span),
    };
    if let Some(s) = Standard::parse(name) {
        return Disruption::Standard(s);
    }
    if let Some(zones) = known.custom.get(name) {
        return Disruption::Custom {
            name: name.to_string(),
            zones: zones.clone(),
        };
    }
    out.push(l.at(
        span,
        format!(
            "unknown disruption {name:?}: expected process, node, zone, region, corruption (or their _loss forms), a [[disruption]], or disruption = \"...\""
        ),
    ));
    Disruption::Standard(Standard::Node)
}

fn drills(subject: &str, key: &str, d: &Option<Spanned<Vec<Spanned<String>>>>) -> Vec<String> {
    match d {
        Some(ds) => ds.get_ref().iter().map(|x| x.get_ref().clone()).collect(),
        None => vec![format!("{subject}-{key}")],
    }
}

fn domain_objective(
    l: &Loaded,
    subject: &str,
    key: &str,
    o: &Spanned<ObjectiveSpec>,
    known: &Known,
    out: &mut Vec<Diagnostic>,
) -> Objective {
    let s = o.get_ref();
    Objective {
        key: key.to_string(),
        disruption: classify(l, key, &s.disruption, o.span(), known, out),
        rpo: dur(&s.rpo),
        rto: dur(&s.rto),
        drills: drills(subject, key, &s.drills),
    }
}

fn capability(
    l: &Loaded,
    c: &CapabilitySpec,
    domains: &[String],
    caps: &[String],
    known: &Known,
    out: &mut Vec<Diagnostic>,
) -> Capability {
    let name = c.name.get_ref().clone();
    if c.depends.is_empty() {
        out.push(l.at(
            c.name.span(),
            "a capability needs at least one depends entry",
        ));
    }
    let dep_names: Vec<Option<String>> = c
        .depends
        .iter()
        .map(|d| {
            let d = d.get_ref();
            d.domain
                .as_ref()
                .or(d.capability.as_ref())
                .map(|n| n.get_ref().clone())
        })
        .collect();
    let depends: Vec<Dependency> = c
        .depends
        .iter()
        .map(|sd| dependency(l, &name, sd, &dep_names, domains, caps, out))
        .collect();
    let objectives = c
        .objectives
        .iter()
        .map(|(key, o)| {
            let s = o.get_ref();
            if s.rpo.is_none() && s.rto.is_none() {
                out.push(l.at(
                    o.span(),
                    format!("objective {key:?} needs rpo, rto, or both"),
                ));
            }
            Objective {
                key: key.clone(),
                disruption: classify(l, key, &s.disruption, o.span(), known, out),
                rpo: dur(&s.rpo),
                rto: dur(&s.rto),
                drills: drills(&name, key, &s.drills),
            }
        })
        .collect();
    Capability {
        name,
        depends,
        objectives,
    }
}

/// One `depends` entry: its target, how, rebuild and the dependencies it
/// waits for (`after`, and `from` when that is a dependency too).
fn dependency(
    l: &Loaded,
    name: &str,
    sd: &Spanned<firedrill_watch::config::DependencySpec>,
    dep_names: &[Option<String>],
    domains: &[String],
    caps: &[String],
    out: &mut Vec<Diagnostic>,
) -> Dependency {
    let d = sd.get_ref();
    let own = d
        .domain
        .as_ref()
        .or(d.capability.as_ref())
        .map(|n| n.get_ref().clone());
    let target = match (&d.domain, &d.capability) {
        (Some(n), None) => match domains.iter().position(|x| x == n.get_ref()) {
            Some(i) => Some(Target::Domain(i)),
            None => {
                out.push(l.at(
                    n.span(),
                    format!(
                        "capability {name:?} depends on unknown domain {:?}",
                        n.get_ref()
                    ),
                ));
                None
            }
        },
        (None, Some(n)) => match caps.iter().position(|x| x == n.get_ref()) {
            Some(i) => Some(Target::Capability(i)),
            None => {
                out.push(l.at(
                    n.span(),
                    format!(
                        "capability {name:?} depends on unknown capability {:?}",
                        n.get_ref()
                    ),
                ));
                None
            }
        },
        _ => {
            out.push(l.at(sd.span(), "a dependency names one domain or one capability"));
            None
        }
    };
    let how = match d.how.as_ref().map(|h| h.get_ref().as_str()) {
        None | Some("must_survive") => How::MustSurvive,
        Some("rebuildable") => How::Rebuildable,
        Some(other) => {
            let span = d.how.as_ref().map_or(sd.span(), |h| h.span());
            out.push(l.at(
                span,
                format!("unknown how {other:?}: expected must_survive or rebuildable"),
            ));
            How::MustSurvive
        }
    };
    if let Some(f) = &d.from {
        if !domains.contains(f.get_ref()) {
            out.push(l.at(
                f.span(),
                format!("rebuilt from unknown domain {:?}", f.get_ref()),
            ));
        }
        if how != How::Rebuildable {
            out.push(l.at(f.span(), "from is for how = \"rebuildable\""));
        }
    }
    let mut after = Vec::new();
    if let Some(a) = &d.after {
        for x in a.get_ref() {
            match dep_names
                .iter()
                .position(|n| n.as_deref() == Some(x.get_ref()))
            {
                Some(i) => after.push(i),
                None => out.push(l.at(
                    x.span(),
                    format!(
                        "after names {:?}, which is not a dependency of {name:?}",
                        x.get_ref()
                    ),
                )),
            }
        }
    }
    // Rebuilt from a dependency: it waits for that one to be back.
    if let Some(f) = &d.from {
        if let Some(i) = dep_names
            .iter()
            .position(|n| n.as_deref() == Some(f.get_ref()))
        {
            if !after.contains(&i) {
                after.push(i);
            }
        }
    }
    // An unresolved target keeps its index, so `after` stays aligned.
    Dependency {
        name: if target.is_some() {
            own.clone().unwrap_or_default()
        } else {
            String::new()
        },
        target: target.unwrap_or(Target::Domain(usize::MAX)),
        how,
        rebuild: dur(&d.rebuild),
        from: d.from.as_ref().map(|f| f.get_ref().clone()),
        after,
    }
}
