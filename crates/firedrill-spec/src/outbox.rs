//! The outbox's lab (DESIGN.md, "Capabilities"): a Kafka member's `cdc`
//! names the PostgreSQL member whose outbox table Debezium captures. Only
//! the lab of labs sees both members, so the cross-member checks live
//! here; the Kafka store checks the `cdc` table's own keys.

use crate::capability::MemberSpec;
use crate::types::DrillSpec;
use crate::{Diagnostic, LabSpec, LoadedSpec, Stores};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use toml::Spanned;

/// The kind whose members Debezium's PostgreSQL connector can capture.
const SOURCE_KIND: &str = "postgres";

fn kind_of(m: &MemberSpec, stores: &Stores) -> String {
    m.kind
        .as_ref()
        .map(|k| k.get_ref().clone())
        .or_else(|| stores.of(None).map(|s| s.kind().to_string()))
        .unwrap_or_default()
}

/// Every Kafka member's `cdc.source`: an existing PostgreSQL member,
/// listed before it (members start in order), with `wal_level =
/// "logical"` in its settings (Debezium decodes the WAL through a logical
/// slot). Problems are reported at the Kafka member's `domain`.
pub(crate) fn check_cdc(
    spec: &LoadedSpec,
    lab: &LabSpec,
    stores: &Stores,
    out: &mut Vec<Diagnostic>,
) {
    for (i, m) in lab.member.iter().enumerate() {
        let Some(cdc) = m.options.get("cdc") else {
            continue;
        };
        let here = m.domain.span();
        let d = m.domain.get_ref();
        let kind = kind_of(m, stores);
        if kind != "kafka" {
            out.push(spec.at(
                here,
                format!("member {d}: `cdc` runs Debezium in Kafka Connect: it belongs in a kind = \"kafka\" member, not a {kind} one"),
            ));
            continue;
        }
        let Some(source) = cdc.get("source").and_then(|v| v.as_str()) else {
            continue; // the Kafka store reports the missing key
        };
        let Some((j, src)) = lab
            .member
            .iter()
            .enumerate()
            .find(|(_, s)| s.domain.get_ref() == source)
        else {
            let names: Vec<&str> = lab
                .member
                .iter()
                .map(|s| s.domain.get_ref().as_str())
                .collect();
            out.push(spec.at(
                here,
                format!(
                    "member {d}: cdc source {source:?} is not a member; the members are {}",
                    names.join(", ")
                ),
            ));
            continue;
        };
        let src_kind = kind_of(src, stores);
        if src_kind != SOURCE_KIND {
            out.push(spec.at(
                src.domain.span(),
                format!("member {d}: an outbox needs a PostgreSQL domain, and cdc source {source:?} is a {src_kind} member (Debezium's PostgreSQL connector reads PostgreSQL's WAL)"),
            ));
            continue;
        }
        if j > i {
            out.push(spec.at(
                here,
                format!("member {d}: list the cdc source {source:?} before this member: members start in order, and Connect needs its database up"),
            ));
        }
        let wal = src
            .options
            .get("settings")
            .and_then(|s| s.get("wal_level"))
            .and_then(|v| v.as_str());
        if wal != Some("logical") {
            out.push(spec.at(
                src.domain.span(),
                format!("member {source}: Debezium reads it through a logical replication slot: set wal_level = \"logical\" in its settings ([lab.member.settings])"),
            ));
        }
    }
}

/// `[drill.capability.outbox]`: the operation writes its order and the
/// order's event in one transaction of the `source` domain; Debezium (the
/// `log` domain's `cdc` worker) publishes the event; firedrill's consumer
/// applies it to the `projection` domain. The audit compares the three.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxSpec {
    /// The PostgreSQL domain holding the orders and the outbox table.
    pub source: Spanned<String>,
    /// The Kafka domain the events are published to.
    pub log: Spanned<String>,
    /// The Redis domain the consumer keeps a projection in.
    pub projection: Spanned<String>,
    /// `idempotent` (default: an event id applied once is never applied
    /// again) or `non_idempotent` (every delivery is applied: the audit's
    /// negative control).
    pub consumer: Option<Spanned<String>>,
    /// How long the audit waits, after the workload, for the log to hold
    /// every order's event and the projection every event (default 60s).
    pub catch_up: Option<Spanned<crate::Dur>>,
}

/// The consumers an outbox can run.
pub const CONSUMERS: [&str; 2] = ["idempotent", "non_idempotent"];

impl OutboxSpec {
    pub fn idempotent(&self) -> bool {
        self.consumer
            .as_ref()
            .is_none_or(|c| c.get_ref() == "idempotent")
    }
    pub fn catch_up(&self) -> std::time::Duration {
        self.catch_up
            .as_ref()
            .map(|d| d.get_ref().0)
            .unwrap_or(std::time::Duration::from_secs(60))
    }
}

/// A domain's kind: its member's, or its endpoints'.
fn domain_kind(
    dom: &str,
    d: &DrillSpec,
    members: &BTreeMap<String, (&MemberSpec, LabSpec)>,
    stores: &Stores,
) -> Option<String> {
    if let Some((m, _)) = members.get(dom) {
        return Some(kind_of(m, stores));
    }
    let t = d.targets.iter().find(|t| t.domain.get_ref() == dom)?;
    t.kind
        .as_ref()
        .map(|k| k.get_ref().clone())
        .or_else(|| stores.of(None).map(|s| s.kind().to_string()))
}

/// Checks `[drill.capability.outbox]` against the domains; returns the
/// domains the outbox adds to the written ones (the log, the projection),
/// in that order.
pub(crate) fn check_outbox(
    spec: &LoadedSpec,
    d: &DrillSpec,
    members: &BTreeMap<String, (&MemberSpec, LabSpec)>,
    stores: &Stores,
    order: &[String],
    out: &mut Vec<Diagnostic>,
) -> Vec<String> {
    let Some(o) = d.capability.as_ref().and_then(|c| c.outbox.as_ref()) else {
        return Vec::new();
    };
    let targets: Vec<&str> = d
        .targets
        .iter()
        .map(|t| t.domain.get_ref().as_str())
        .collect();
    let mut extra = Vec::new();
    let roles = [
        (&o.source, "postgres", "an outbox's source is a PostgreSQL domain (its orders and the outbox table commit in one transaction, and Debezium reads PostgreSQL's WAL)"),
        (&o.log, "kafka", "an outbox's log is a Kafka domain (Debezium publishes to it)"),
        (&o.projection, "redis-sentinel", "an outbox's projection is a Redis domain (the consumer applies each event to it)"),
    ];
    for (i, (name, want, why)) in roles.iter().enumerate() {
        let dom = name.get_ref();
        if !targets.contains(&dom.as_str()) {
            out.push(spec.at(
                name.span(),
                format!(
                    "no [[drill.targets]] domain {dom:?}; they are {}",
                    targets.join(", ")
                ),
            ));
            continue;
        }
        match domain_kind(dom, d, members, stores) {
            Some(k) if k == *want => {}
            k => out.push(spec.at(
                name.span(),
                format!("{why}; {dom:?} is a {} domain", k.unwrap_or_default()),
            )),
        }
        if i == 0 && !order.contains(dom) {
            out.push(spec.at(
                name.span(),
                format!("the outbox's source {dom:?} is what the operation writes: put it in the write order"),
            ));
        }
        if i > 0 && order.contains(dom) {
            out.push(spec.at(
                name.span(),
                format!("{dom:?} is written by the outbox (Debezium, the consumer), not by the operation: leave it out of the write order"),
            ));
        } else if i > 0 && !extra.contains(dom) {
            extra.push(dom.clone());
        }
    }
    if let Some(c) = &o.consumer {
        if !CONSUMERS.contains(&c.get_ref().as_str()) {
            out.push(spec.at(
                c.span(),
                format!("consumer is one of {}", CONSUMERS.join(", ")),
            ));
        }
    }
    if let Some((m, _)) = members.get(o.log.get_ref()) {
        let src = m
            .options
            .get("cdc")
            .and_then(|c| c.get("source"))
            .and_then(|v| v.as_str());
        if src != Some(o.source.get_ref().as_str()) {
            out.push(spec.at(
                o.log.span(),
                format!(
                    "member {} publishes no outbox of {:?}: give it cdc = {{ source = {:?} }}",
                    o.log.get_ref(),
                    o.source.get_ref(),
                    o.source.get_ref()
                ),
            ));
        }
    }
    extra
}

/// A `cdc` in a lab of one store: Debezium reads another member's
/// PostgreSQL, so it is refused before `lab up` would start brokers and
/// then fail on the missing source.
pub(crate) fn check_plain_lab_cdc(spec: &LoadedSpec, lab: &LabSpec, out: &mut Vec<Diagnostic>) {
    if lab.options.contains_key("cdc") {
        // Debezium reads another lab's PostgreSQL: refused here, before
        // lab up would start brokers and then fail on the missing source.
        // `cdc = { … }` in [lab], or a [lab.cdc] table of its own.
        let table = spec.key_span("lab.cdc", "");
        let span = if table == (0..0) {
            spec.key_span("lab", "cdc")
        } else {
            table
        };
        out.push(spec.at(
            span,
            "`cdc` reads a PostgreSQL domain of the same lab of labs: give it to a kind = \"kafka\" [[lab.member]], with the source as another member",
        ));
    }
}
