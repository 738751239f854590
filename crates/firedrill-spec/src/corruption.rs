//! The checks of data disasters: corruption steps (`delete_rows`,
//! `update_rows`, `truncate`, `drop_table`, `sql`), wipes, backup steps,
//! faults on the backups (`remove_wal`), and the `restore` recovery, which
//! needs a lab that takes backups. Which stores take them is each store's
//! to declare.

use crate::validate::NodeUniverse;
use crate::{Diagnostic, DrillSpec, FaultAction, FaultStep, LoadedSpec, RestoreSpec, Stores};

/// What a restore `target` names, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreTarget {
    /// Exactly before the bad transaction (its xid, exclusive).
    BeforeFault,
    /// The end of the archive.
    Latest,
    /// A wall-clock time, RFC 3339.
    Time(String),
}

impl RestoreTarget {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "before_fault" => Ok(RestoreTarget::BeforeFault),
            "latest" => Ok(RestoreTarget::Latest),
            t if humantime::parse_rfc3339_weak(t).is_ok() => Ok(RestoreTarget::Time(t.into())),
            other => Err(format!(
                "restore target {other:?}: give \"before_fault\", \"latest\" or an RFC 3339 time such as \"2026-12-01T10:00:00Z\""
            )),
        }
    }
}

pub(crate) fn check_corruption_steps(
    spec: &LoadedSpec,
    d: &DrillSpec,
    u: Option<&NodeUniverse>,
    out: &mut Vec<Diagnostic>,
) {
    let endpoints = d.target.as_ref().is_some_and(|t| !t.nodes.is_empty());
    for s in &d.faults {
        let action = *s.action.get_ref();
        check_rows(spec, s, action, out);
        check_sql(spec, s, action, out);
        if action == FaultAction::UpdateRows && *d.workload.payload_bytes.get_ref() < 8 {
            out.push(spec.at(
                s.action.span(),
                format!(
                    "update_rows garbles payloads: it needs workload.payload_bytes >= 8 (it is {}), so a garbled row cannot pass for another client's",
                    d.workload.payload_bytes.get_ref()
                ),
            ));
        }
        if let Some(da) = &s.detect_after {
            if !action.is_data_disaster() {
                out.push(spec.at(
                    da.span(),
                    format!(
                        "`detect_after` applies to data disasters (delete_rows, update_rows, truncate, drop_table, sql, wipe), not {}",
                        action.as_str()
                    ),
                ));
            }
        }
        if (action.is_corruption() || action.is_backup_fault()) && s.zone.is_some() {
            out.push(spec.at(
                s.target_span(),
                format!(
                    "{} acts on the primary (its data or its archive): give node = \"primary\"",
                    action.as_str()
                ),
            ));
        }
        if action == FaultAction::Backup && u.is_some_and(|u| u.backup.is_none()) {
            out.push(spec.at(
                s.action.span(),
                "a backup step needs a lab that takes backups: add [lab.backup] to the lab",
            ));
        }
        if action == FaultAction::Wipe && endpoints {
            out.push(spec.at(
                s.action.span(),
                "wipe removes a node's data directory: it needs a lab firedrill made, not explicit endpoints",
            ));
        }
    }
    check_backup_faults(spec, d, out);
}

/// `fraction` and `seqs`: which of the run's rows a row-picking
/// corruption hits.
fn check_rows(spec: &LoadedSpec, s: &FaultStep, action: FaultAction, out: &mut Vec<Diagnostic>) {
    let picks = action.picks_rows();
    if let Some(f) = &s.fraction {
        if !picks {
            out.push(spec.at(
                f.span(),
                format!(
                    "`fraction` applies to delete_rows and update_rows, not {}",
                    action.as_str()
                ),
            ));
        } else if !(*f.get_ref() > 0.0 && *f.get_ref() <= 1.0) {
            out.push(spec.at(
                f.span(),
                format!(
                    "fraction = {} is not a share of the rows: give a number in (0, 1], e.g. 0.5",
                    f.get_ref()
                ),
            ));
        }
    }
    let Some(q) = &s.seqs else { return };
    if !picks {
        out.push(spec.at(
            q.span(),
            format!(
                "`seqs` applies to delete_rows and update_rows, not {}",
                action.as_str()
            ),
        ));
    } else if s.fraction.is_some() {
        out.push(spec.at(q.span(), "give fraction or seqs, not both"));
    } else if !matches!(q.get_ref().as_slice(), [a, b] if *a >= 1 && a <= b) {
        out.push(spec.at(
            q.span(),
            "seqs = [from, to]: two ledger seqs (from 1), from <= to, e.g. [1, 500]",
        ));
    }
}

/// `sql`: the statement comes from a file that must be readable now, so
/// a typo in its name stops the drill before anything starts.
fn check_sql(spec: &LoadedSpec, s: &FaultStep, action: FaultAction, out: &mut Vec<Diagnostic>) {
    match (&s.sql_file, action == FaultAction::Sql) {
        (None, true) => out.push(spec.at(
            s.action.span(),
            "sql reads its statement from a file: add sql_file = \"bad-migration.sql\" (relative to this spec; the statement never goes in the spec)",
        )),
        (Some(f), false) => out.push(spec.at(
            f.span(),
            format!("`sql_file` applies to sql, not {}", action.as_str()),
        )),
        (Some(f), true) => match std::fs::read_to_string(f.get_ref()) {
            Err(e) => out.push(spec.at(f.span(), format!("sql_file {}: {e}", f.get_ref()))),
            Ok(t) if t.trim().is_empty() => out.push(spec.at(
                f.span(),
                format!("sql_file {} holds no statement", f.get_ref()),
            )),
            Ok(_) => {}
        },
        (None, false) => {}
    }
}

/// A fault on the backups sets the stage for a restore: it needs the
/// restore and the data disaster it recovers from, and comes before it.
fn check_backup_faults(spec: &LoadedSpec, d: &DrillSpec, out: &mut Vec<Diagnostic>) {
    let disaster = d
        .faults
        .iter()
        .filter(|s| s.action.get_ref().is_corruption())
        .map(|s| *s.at.get_ref())
        .min();
    for s in d
        .faults
        .iter()
        .filter(|s| s.action.get_ref().is_backup_fault())
    {
        let name = s.action.get_ref().as_str();
        if d.recovery.restore.is_none() {
            out.push(spec.at(
                s.action.span(),
                format!("{name} breaks the archive a restore replays: it needs [drill.recovery] restore"),
            ));
        }
        match disaster {
            None => out.push(spec.at(
                s.action.span(),
                format!("{name} sets the stage for a data disaster's restore: the schedule needs one (delete_rows, update_rows, truncate, drop_table or sql)"),
            )),
            Some(at) if *s.at.get_ref() >= at => out.push(spec.at(
                s.at.span(),
                format!("{name} must come before the data disaster (at {at})"),
            )),
            Some(_) => {}
        }
        if let Some(dis) = s.disaster.as_ref().filter(|d| *d.get_ref()) {
            out.push(spec.at(
                dis.span(),
                format!("{name} sets the stage; it cannot be the disaster"),
            ));
        }
    }
}

pub(crate) fn check_restore(
    spec: &LoadedSpec,
    d: &DrillSpec,
    r: &RestoreSpec,
    u: Option<&NodeUniverse>,
    stores: &Stores,
    out: &mut Vec<Diagnostic>,
) {
    let store = u.and_then(|u| stores.get(&u.kind));
    match u.and_then(|u| u.backup.as_deref()) {
        None => out.push(spec.at(r.from.span(), no_backup(store, stores))),
        Some(tool) if tool != r.from.get_ref() => out.push(spec.at(
            r.from.span(),
            format!(
                "restore from {:?}, but the lab's [lab.backup] tool is {tool:?}",
                r.from.get_ref()
            ),
        )),
        Some(_) => {}
    }
    if let Some(st) = store {
        st.check_restore(spec, r, out);
    }
    match RestoreTarget::parse(r.target.get_ref()) {
        Err(m) => out.push(spec.at(r.target.span(), m)),
        Ok(RestoreTarget::BeforeFault)
            if !d.faults.iter().any(|s| s.action.get_ref().is_corruption()) =>
        {
            out.push(spec.at(
                r.target.span(),
                "target = \"before_fault\" needs a corruption step (delete_rows, update_rows, truncate, drop_table or sql) in the schedule",
            ))
        }
        Ok(_) => {}
    }
    check_into(spec, d, r, out);
}

/// Where a restore goes: `in_place` or `new_node`. A restore test (no
/// fault) must not overwrite the healthy primary it tests the backups of.
fn check_into(spec: &LoadedSpec, d: &DrillSpec, r: &RestoreSpec, out: &mut Vec<Diagnostic>) {
    let into = match &r.into {
        Some(i) => match RestoreInto::parse(i.get_ref()) {
            Ok(v) => Some((v, i.span())),
            Err(m) => {
                out.push(spec.at(i.span(), m));
                return;
            }
        },
        None => None,
    };
    if d.faults.is_empty() && !matches!(into, Some((RestoreInto::NewNode, _))) {
        out.push(spec.at(
            into.map_or(r.from.span(), |(_, s)| s),
            "a restore test (no fault) restores into a scratch node beside the primary it tests: give into = \"new_node\"",
        ));
    }
}

/// Where a restore puts the restored server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestoreInto {
    /// Over the primary's own data directory.
    #[default]
    InPlace,
    /// Into a scratch node of its own (data directory, port, process).
    NewNode,
}

impl RestoreInto {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "in_place" => Ok(RestoreInto::InPlace),
            "new_node" => Ok(RestoreInto::NewNode),
            other => Err(format!(
                "into = {other:?}: give \"in_place\" or \"new_node\""
            )),
        }
    }
}

/// Why a lab without `[lab.backup]` cannot restore, and what to add: the
/// store's own tools, or the kinds whose labs take backups at all.
fn no_backup(store: Option<&dyn crate::StoreSpec>, stores: &Stores) -> String {
    let head = "restore needs a lab that takes backups";
    match store {
        Some(st) if st.lab_keys().contains(&"backup") => {
            let tools: Vec<String> = st
                .backup_tools()
                .iter()
                .map(|t| format!("tool = \"{t}\""))
                .collect();
            if tools.is_empty() {
                format!("{head}: add [lab.backup] to the lab")
            } else {
                format!(
                    "{head}: add [lab.backup] with {} to the lab",
                    tools.join(" or ")
                )
            }
        }
        Some(st) => format!(
            "{head}, and a {} lab takes none: [lab.backup] is built for labs of kind {} so far",
            st.kind(),
            stores.owning_lab_key("backup").join(", ")
        ),
        None => format!("{head}: add [lab.backup] to the lab"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(
            RestoreTarget::parse("before_fault"),
            Ok(RestoreTarget::BeforeFault)
        );
        assert_eq!(RestoreTarget::parse("latest"), Ok(RestoreTarget::Latest));
        assert!(matches!(
            RestoreTarget::parse("2026-12-01T10:00:00Z"),
            Ok(RestoreTarget::Time(_))
        ));
        let e = RestoreTarget::parse("yesterday").unwrap_err();
        assert!(e.contains("\"yesterday\""), "{e}");
    }

    #[test]
    fn into_parses() {
        assert_eq!(RestoreInto::parse("new_node"), Ok(RestoreInto::NewNode));
        assert_eq!(RestoreInto::parse("in_place"), Ok(RestoreInto::InPlace));
        assert!(RestoreInto::parse("elsewhere")
            .unwrap_err()
            .contains("\"elsewhere\""));
    }
}
