//! The outbox's lab (DESIGN.md, "Capabilities"): a Kafka member's `cdc`
//! names the PostgreSQL member whose outbox table Debezium captures. Only
//! the lab of labs sees both members, so the cross-member checks live
//! here; the Kafka store checks the `cdc` table's own keys.

use crate::capability::MemberSpec;
use crate::{Diagnostic, LabSpec, LoadedSpec, Stores};

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
