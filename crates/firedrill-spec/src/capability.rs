//! Capability drills (DESIGN.md, "Capabilities"): a lab of several labs
//! (`[[lab.member]]`, one per domain), regions that group nodes of several
//! members, and a drill over all of them (`[[drill.targets]]`,
//! `[drill.capability]`).
//!
//! A capability spec is split into one ordinary spec per domain: the
//! member as its `[lab]`, the drill with that domain's steps, recovery and
//! objectives. Each is then checked, started and drilled by the code every
//! other spec goes through, so a domain of a capability drill is exactly
//! the drill of that store alone. What a domain's checks find is reported
//! at the member's or the target's place in the real file.

use crate::types::{DrillSpec, FaultStep, LabSpec, Links, ObjectivesSpec, RecoverySpec, SpecFile};
use crate::{
    valid_name, validate_drill, Diagnostic, LoadedSpec, NodeUniverse, Stores, TargetSpec, ALL_NODES,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use toml::Spanned;

/// `[[lab.member]]`: one domain's lab, of its own kind.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct MemberSpec {
    /// The domain this lab holds (`orders`): its lab is `<lab>-<domain>`.
    pub domain: Spanned<String>,
    #[serde(default)]
    pub kind: Option<Spanned<String>>,
    #[serde(default)]
    pub links: Links,
    /// The store's own options, as in a `[lab]` of that kind.
    #[serde(flatten)]
    pub options: toml::Table,
}

/// `[[lab.region]]`: nodes of several members that a disaster takes out
/// together. A fault step's `zone = "<region>"` hits all of them at once.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSpec {
    pub name: Spanned<String>,
    /// `"<domain>/<node>"`, e.g. `"orders/n1"`.
    pub nodes: Vec<Spanned<String>>,
}

/// `[[drill.targets]]`: one domain of the capability, with its recovery
/// and, when given, its own objectives.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct DomainTargetSpec {
    pub domain: Spanned<String>,
    /// Explicit endpoints (your own servers) instead of a lab member: the
    /// keys of `[drill.target]`.
    #[serde(default)]
    pub kind: Option<Spanned<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<crate::EndpointSpec>,
    pub password_env: Option<String>,
    pub password_file: Option<std::path::PathBuf>,
    pub reset_command: Option<String>,
    #[serde(default)]
    pub recovery: RecoverySpec,
    pub objectives: Option<ObjectivesSpec>,
    /// The store's own target options (Redis's `redis_write`, …).
    #[serde(flatten)]
    pub options: toml::Table,
}

/// `[drill.capability]`: the business operation. It writes one entry per
/// domain in `order` and is `ok` only when every write was acknowledged.
/// `[drill.objectives]` are the capability's.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilitySpec {
    pub name: Spanned<String>,
    pub order: Spanned<Vec<Spanned<String>>>,
    /// The outbox variant: the order's event is written in its
    /// transaction and reaches the other domains through Debezium.
    #[serde(default)]
    pub outbox: Option<crate::outbox::OutboxSpec>,
}

/// One domain of a capability spec, as an ordinary spec of its own.
#[derive(Debug, Clone)]
pub struct DomainSpec {
    pub domain: String,
    /// The member's lab name (`<lab>-<domain>`); None for a domain of
    /// explicit endpoints.
    pub lab: Option<String>,
    /// `[lab]` = the member, `[drill]` = this domain's drill.
    pub spec: LoadedSpec,
    /// The domain's own objectives were given (else the domain is
    /// reported, not judged).
    pub judged: bool,
    /// Node → region, for this domain's lab nodes.
    pub regions: BTreeMap<String, String>,
    /// Every region (zone) this domain has a node in.
    pub zones: Vec<String>,
    /// The index in the real file's schedule of each of this domain's
    /// steps, in its drill's order: reports number steps as the file does.
    pub steps: Vec<usize>,
    /// The operation writes this domain (it is in the write order); an
    /// outbox's log and projection are written by Debezium and the
    /// consumer instead.
    pub written: bool,
}

impl LabSpec {
    /// A lab of several labs (`[[lab.member]]`).
    pub fn is_multi(&self) -> bool {
        !self.member.is_empty()
    }
    /// The member labs as ordinary `[lab]` specs, named `<lab>-<domain>`.
    pub fn member_labs(&self) -> Vec<(String, LabSpec)> {
        self.member
            .iter()
            .map(|m| {
                let name = format!("{}-{}", self.name.get_ref(), m.domain.get_ref());
                let lab = LabSpec {
                    name: Spanned::new(0..0, name),
                    kind: m.kind.clone(),
                    dir: None,
                    user: self.user.clone(),
                    base_port: None,
                    links: m.links,
                    member: Vec::new(),
                    region: Vec::new(),
                    options: m.options.clone(),
                };
                (m.domain.get_ref().clone(), lab)
            })
            .collect()
    }
}

/// Splits a capability spec into one spec per domain, in the capability's
/// write order, checking everything on the way. `lab_only` checks the lab
/// part alone (`lab up`). Every problem is reported, at its place in the
/// real file.
pub fn split_capability(
    spec: &LoadedSpec,
    stores: &Stores,
    lab_only: bool,
) -> Result<Vec<DomainSpec>, Vec<Diagnostic>> {
    let mut out = Vec::new();
    let lab = spec.file.lab.as_ref();
    let multi = lab.filter(|l| l.is_multi());
    if let Some(l) = lab.filter(|l| !l.is_multi()) {
        out.push(spec.at(
            l.name.span(),
            "a capability drill's lab is a lab of labs: one [[lab.member]] per domain",
        ));
    }
    if lab_only && multi.is_none() {
        return Err(vec![spec.at(0..0, "no [[lab.member]] in this file")]);
    }
    let mut members: BTreeMap<String, (&MemberSpec, LabSpec)> = BTreeMap::new();
    let mut regions = BTreeMap::new();
    if let Some(lab) = multi {
        check_lab_keys(spec, lab, &mut out);
        crate::outbox::check_cdc(spec, lab, stores, &mut out);
        members = lab
            .member
            .iter()
            .zip(lab.member_labs())
            .map(|(m, (d, l))| (d, (m, l)))
            .collect();
        regions = check_regions(spec, lab, &members, stores, &mut out);
    }
    let drill = spec.file.drill.as_ref().filter(|_| !lab_only);
    let mut written = usize::MAX;
    let order: Vec<String> = match (drill, multi) {
        (Some(d), _) => {
            let order = check_drill(spec, d, &members, &mut out);
            let extra = crate::outbox::check_outbox(spec, d, &members, stores, &order, &mut out);
            written = order.len();
            order.into_iter().chain(extra).collect()
        }
        (None, Some(lab)) if lab_only => lab
            .member
            .iter()
            .map(|m| m.domain.get_ref().clone())
            .collect(),
        _ => {
            out.push(spec.at(0..0, "no [drill] table in this file"));
            Vec::new()
        }
    };
    let mut domains = Vec::new();
    for (i, domain) in order.into_iter().enumerate() {
        let here: BTreeMap<String, String> = regions
            .iter()
            .filter_map(|(n, r)| {
                let (d, node) = n.split_once('/')?;
                (d == domain).then(|| (node.to_string(), r.clone()))
            })
            .collect();
        let member = members.get(&domain).map(|(m, l)| (*m, l));
        if let Some(mut ds) = domain_spec(spec, stores, drill, &domain, member, here, &mut out) {
            ds.written = i < written;
            domains.push(ds);
        }
    }
    if let Some(d) = drill {
        check_zone_steps(spec, d, &domains, &mut out);
    }
    if out.is_empty() {
        Ok(domains)
    } else {
        Err(out)
    }
}

/// One domain's own spec, checked by the usual path; its problems are
/// reported at the domain's target (or member) in the real file.
fn domain_spec(
    spec: &LoadedSpec,
    stores: &Stores,
    drill: Option<&DrillSpec>,
    domain: &str,
    member: Option<(&MemberSpec, &LabSpec)>,
    regions: BTreeMap<String, String>,
    out: &mut Vec<Diagnostic>,
) -> Option<DomainSpec> {
    let target = drill.and_then(|d| d.targets.iter().find(|t| t.domain.get_ref() == domain));
    let span = target
        .map(|t| t.domain.span())
        .or_else(|| member.map(|(m, _)| m.domain.span()))
        .unwrap_or(0..0);
    // The zones the domain's nodes are in: the lab's regions, or the
    // endpoints' own zones.
    let zones: Vec<String> = match target.filter(|t| !t.nodes.is_empty()) {
        Some(t) => t
            .nodes
            .iter()
            .filter_map(|n| n.zone.as_ref().map(|z| z.get_ref().clone()))
            .collect(),
        None => regions.values().cloned().collect(),
    };
    let dd = drill.map(|d| domain_drill(d, domain, &zones));
    let file = SpecFile {
        lab: member.map(|(_, l)| l.clone()),
        drill: dd.clone(),
    };
    let sub = match synthetic(spec, &file) {
        Ok(s) => s,
        Err(e) => {
            out.push(spec.at(span, format!("domain {domain}: {e}")));
            return None;
        }
    };
    if let Some((m, _)) = member {
        for e in crate::validate::validate_one_lab(&sub, stores) {
            out.push(spec.at(m.domain.span(), format!("member {domain}: {}", e.message)));
        }
    }
    if dd.is_some() {
        let mut u = member.and_then(|(_, l)| NodeUniverse::from_lab(l, stores));
        if let Some(u) = u.as_mut() {
            u.roles = stores
                .get(&u.kind)
                .map(|st| st.roles().iter().map(|r| r.to_string()).collect())
                .unwrap_or_default();
            for (n, r) in &regions {
                u.zones.entry(r.clone()).or_default().push(n.clone());
            }
        }
        for e in validate_drill(&sub, u.as_ref(), stores) {
            out.push(spec.at(span.clone(), format!("domain {domain}: {}", e.message)));
        }
    }
    let steps = drill
        .map(|d| {
            (0..d.faults.len())
                .filter(|i| hits(&d.faults[*i], domain, &zones))
                .collect()
        })
        .unwrap_or_default();
    Some(DomainSpec {
        steps,
        domain: domain.to_string(),
        lab: member.map(|(_, l)| l.name.get_ref().clone()),
        spec: sub,
        judged: target.is_some_and(|t| t.objectives.is_some()),
        regions,
        zones,
        written: true,
    })
}

/// A region step must hit some domain.
fn check_zone_steps(
    spec: &LoadedSpec,
    d: &DrillSpec,
    domains: &[DomainSpec],
    out: &mut Vec<Diagnostic>,
) {
    for s in &d.faults {
        let Some(z) = s.zone.as_ref().filter(|_| s.domain.is_none()) else {
            continue;
        };
        if z.get_ref() == ALL_NODES || domains.iter().any(|ds| ds.zones.contains(z.get_ref())) {
            continue;
        }
        let mut known: Vec<&str> = domains
            .iter()
            .flat_map(|ds| ds.zones.iter().map(String::as_str))
            .collect();
        known.sort_unstable();
        known.dedup();
        out.push(spec.at(
            z.span(),
            format!(
                "no domain has a node in region {:?}; the regions are {} (or \"{ALL_NODES}\", every node)",
                z.get_ref(),
                known.join(", ")
            ),
        ));
    }
}

/// The keys of a lab of labs: the members' domains, and nothing of a
/// single store's.
fn check_lab_keys(spec: &LoadedSpec, lab: &LabSpec, out: &mut Vec<Diagnostic>) {
    if !valid_name(lab.name.get_ref()) {
        out.push(spec.at(
            lab.name.span(),
            "lab name must be 1-63 letters, digits, '-' or '_'",
        ));
    }
    if let Some(k) = &lab.kind {
        out.push(spec.at(
            k.span(),
            "a lab of [[lab.member]] labs has no kind of its own: give each member its kind",
        ));
    }
    for k in lab.options.keys() {
        out.push(spec.at(
            spec.key_span("lab", k),
            format!("`{k}` belongs in a [[lab.member]]: a lab of members takes name, dir, user, member and region"),
        ));
    }
    let mut seen: Vec<&str> = Vec::new();
    for m in &lab.member {
        let d = m.domain.get_ref();
        if !valid_name(d) {
            out.push(spec.at(
                m.domain.span(),
                "domain must be 1-63 letters, digits, '-' or '_'",
            ));
        }
        if seen.contains(&d.as_str()) {
            out.push(spec.at(m.domain.span(), format!("domain {d:?} has two members")));
        }
        seen.push(d);
    }
}

/// Checks every region node (`domain/node`) names a node its member has;
/// returns `domain/node` → region.
fn check_regions(
    spec: &LoadedSpec,
    lab: &LabSpec,
    members: &BTreeMap<String, (&MemberSpec, LabSpec)>,
    stores: &Stores,
    out: &mut Vec<Diagnostic>,
) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut names: Vec<&str> = Vec::new();
    for r in &lab.region {
        let name = r.name.get_ref();
        if !valid_name(name) || name == ALL_NODES {
            out.push(spec.at(
                r.name.span(),
                format!(
                    "region name must be 1-63 letters, digits, '-' or '_', and not {ALL_NODES:?}"
                ),
            ));
        }
        if names.contains(&name.as_str()) {
            out.push(spec.at(r.name.span(), format!("region {name:?} is defined twice")));
        }
        names.push(name);
        for n in &r.nodes {
            let Some((d, node)) = n.get_ref().split_once('/') else {
                out.push(spec.at(
                    n.span(),
                    "a region node is \"<domain>/<node>\", e.g. \"orders/n1\"",
                ));
                continue;
            };
            let Some((_, member)) = members.get(d) else {
                let known: Vec<&str> = members.keys().map(String::as_str).collect();
                out.push(spec.at(
                    n.span(),
                    format!(
                        "no domain {d:?} in [[lab.member]]; the domains are {}",
                        known.join(", ")
                    ),
                ));
                continue;
            };
            let known = NodeUniverse::from_lab(member, stores)
                .map(|u| u.names)
                .unwrap_or_default();
            if !known.iter().any(|k| k == node) {
                out.push(spec.at(
                    n.span(),
                    format!(
                        "domain {d} has no node {node:?}; its nodes are {}",
                        known.join(", ")
                    ),
                ));
                continue;
            }
            if let Some(prev) = map.insert(n.get_ref().clone(), name.clone()) {
                out.push(spec.at(
                    n.span(),
                    format!("{} is already in region {prev}", n.get_ref()),
                ));
            }
        }
    }
    map
}

/// Checks the capability drill's own keys; returns the write order.
fn check_drill(
    spec: &LoadedSpec,
    d: &DrillSpec,
    members: &BTreeMap<String, (&MemberSpec, LabSpec)>,
    out: &mut Vec<Diagnostic>,
) -> Vec<String> {
    let known = || members.keys().cloned().collect::<Vec<_>>().join(", ");
    if let Some(t) = &d.target {
        let span = t.lab.as_ref().map(|l| l.span()).unwrap_or(0..0);
        out.push(spec.at(
            span,
            "a capability drill names its domains in [[drill.targets]], not [drill.target]",
        ));
    }
    let mut targets: Vec<&str> = Vec::new();
    for t in &d.targets {
        let dom = t.domain.get_ref();
        match (members.contains_key(dom), t.nodes.is_empty()) {
            (false, true) => out.push(spec.at(
                t.domain.span(),
                format!(
                    "no member of the lab holds domain {dom:?}; the domains are {} (or give the domain's endpoints: nodes = [...])",
                    known()
                ),
            )),
            (true, false) => out.push(spec.at(
                t.domain.span(),
                format!("domain {dom:?} has a lab member and endpoints: give one"),
            )),
            _ => {}
        }
        if targets.contains(&dom.as_str()) {
            out.push(spec.at(t.domain.span(), format!("domain {dom:?} is targeted twice")));
        }
        targets.push(dom);
    }
    for s in &d.faults {
        if let Some(dom) = &s.domain {
            if !targets.contains(&dom.get_ref().as_str()) {
                out.push(spec.at(
                    dom.span(),
                    format!("no [[drill.targets]] domain {:?}", dom.get_ref()),
                ));
            }
        } else if s.node.is_some() {
            out.push(spec.at(
                s.target_span(),
                "in a capability drill a step names its domain (domain = \"orders\") with its node, or a region (zone = \"A\")",
            ));
        }
    }
    let Some(c) = &d.capability else {
        out.push(spec.at(
            spec.key_span("drill", "name"),
            "a drill over [[drill.targets]] needs [drill.capability] with its name and write order",
        ));
        return Vec::new();
    };
    if !valid_name(c.name.get_ref()) {
        out.push(spec.at(
            c.name.span(),
            "capability name must be 1-63 letters, digits, '-' or '_'",
        ));
    }
    let mut order = Vec::new();
    for o in c.order.get_ref() {
        let dom = o.get_ref();
        if !targets.contains(&dom.as_str()) {
            out.push(spec.at(
                o.span(),
                format!(
                    "the write order names domain {dom:?}, which no [[drill.targets]] defines; they are {}",
                    targets.join(", ")
                ),
            ));
        } else if order.contains(dom) {
            out.push(spec.at(o.span(), format!("domain {dom:?} is written twice")));
        } else {
            order.push(dom.clone());
        }
    }
    // An outbox's log and projection are written by the outbox.
    let outboxed: Vec<&str> = c
        .outbox
        .iter()
        .flat_map(|o| [o.log.get_ref().as_str(), o.projection.get_ref().as_str()])
        .collect();
    for t in &targets {
        if !order.iter().any(|o| o == t) && !outboxed.contains(t) {
            out.push(spec.at(
                c.order.span(),
                format!("domain {t:?} is targeted but not in the write order"),
            ));
        }
    }
    if order.is_empty() {
        out.push(spec.at(c.order.span(), "the write order names no domain"));
    }
    order
}

/// The domain's drill: the capability's workload, SLO and trials, the
/// steps that hit this domain (its own, and every region step), its
/// recovery, and its objectives (else the capability's, for the checks).
fn domain_drill(d: &DrillSpec, domain: &str, zones: &[String]) -> DrillSpec {
    let t = d.targets.iter().find(|t| t.domain.get_ref() == domain);
    // An outbox's source writes each order's event with it.
    let outbox = d
        .capability
        .as_ref()
        .and_then(|c| c.outbox.as_ref())
        .is_some_and(|o| o.source.get_ref() == domain);
    let faults: Vec<FaultStep> = d
        .faults
        .iter()
        .filter(|s| hits(s, domain, zones))
        .cloned()
        .map(|mut s| {
            s.domain = None;
            s
        })
        .collect();
    let target = t
        .filter(|t| outbox || !t.options.is_empty() || !t.nodes.is_empty())
        .map(|t| {
            let mut options = t.options.clone();
            if outbox {
                options.insert("outbox".into(), toml::Value::Boolean(true));
            }
            TargetSpec {
                kind: t.kind.clone(),
                nodes: t.nodes.clone(),
                password_env: t.password_env.clone(),
                password_file: t.password_file.clone(),
                reset_command: t.reset_command.clone(),
                options,
                ..TargetSpec::default()
            }
        });
    DrillSpec {
        name: Spanned::new(0..0, format!("{}-{domain}", d.name.get_ref())),
        description: d.description.clone(),
        target,
        workload: d.workload.clone(),
        faults,
        recovery: t.map(|t| t.recovery.clone()).unwrap_or_default(),
        slo: d.slo.clone(),
        objectives: t
            .and_then(|t| t.objectives.clone())
            .or_else(|| d.objectives.clone()),
        trials: d.trials.clone(),
        targets: Vec::new(),
        capability: None,
    }
}

/// A step is this domain's when it names the domain, or a region the
/// domain has nodes in (`all`: every domain).
fn hits(s: &FaultStep, domain: &str, zones: &[String]) -> bool {
    match (&s.domain, &s.zone) {
        (Some(dom), _) => dom.get_ref() == domain,
        (None, Some(z)) => z.get_ref() == ALL_NODES || zones.contains(z.get_ref()),
        (None, None) => false,
    }
}

/// A spec file made of parts of the real one, written out and read back,
/// so every check and every runtime value comes from the usual path.
fn synthetic(spec: &LoadedSpec, file: &SpecFile) -> Result<LoadedSpec, String> {
    let text = toml::to_string(file).map_err(|e| e.to_string())?;
    LoadedSpec::parse(&spec.path, text).map_err(|e| e.to_string())
}
