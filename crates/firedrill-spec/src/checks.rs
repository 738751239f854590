//! The checks of a drill's workload, recovery and SLO: each a pure
//! function of the drill, reporting every problem it finds.

use crate::validate::ROLES;
use crate::{Diagnostic, DrillSpec, LoadedSpec, NodeUniverse, WorkloadMode};

pub(crate) fn check_workload(spec: &LoadedSpec, d: &DrillSpec, out: &mut Vec<Diagnostic>) {
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
                None => out.push(spec.at(
                    spec.key_span("drill.workload", "mode"),
                    "mode = \"rate\" needs rate (operations per second)",
                )),
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
    if w.op_timeout.get_ref().is_zero() {
        out.push(spec.at(
            w.op_timeout.span(),
            "workload.op_timeout must be more than 0",
        ));
    }
    if *w.payload_bytes.get_ref() > 1 << 20 {
        out.push(spec.at(
            w.payload_bytes.span(),
            "workload.payload_bytes must be at most 1048576",
        ));
    }
}

pub(crate) fn check_recovery(
    spec: &LoadedSpec,
    d: &DrillSpec,
    u: Option<&NodeUniverse>,
    stores: &crate::Stores,
    out: &mut Vec<Diagnostic>,
) {
    let r = &d.recovery;
    let automatic = r.automatic.as_ref().is_some_and(|a| *a.get_ref());
    let n = r.promote.is_some() as u8
        + r.failover.is_some() as u8
        + r.command.is_some() as u8
        + automatic as u8
        + r.restore.is_some() as u8
        + r.restart.as_ref().is_some_and(|a| *a.get_ref()) as u8;
    if n > 1 {
        out.push(spec.at(
            spec.key_span("drill.recovery", ""),
            "[drill.recovery]: give one of promote, failover, command, automatic, restart or restore",
        ));
    }
    if let (Some(f), Some(u)) = (&r.failover, u) {
        let z = f.get_ref();
        if u.zones.is_empty() {
            out.push(spec.at(
                f.span(),
                "failover names a region (a zone of the lab), and this lab has none: use promote",
            ));
        } else if !u.zones.contains_key(z) {
            let zones: Vec<&str> = u.zones.keys().map(String::as_str).collect();
            out.push(spec.at(
                f.span(),
                format!(
                    "no region (zone) named {z:?}; the regions are {}",
                    zones.join(", ")
                ),
            ));
        }
    }
    if let Some(rs) = &r.restore {
        crate::corruption::check_restore(spec, d, rs, u, stores, out);
    }
    crate::corruption::check_corruption_steps(spec, d, u, out);
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
    crate::command::check_recovery_commands(spec, d, out);
}

pub(crate) fn check_slo(spec: &LoadedSpec, d: &DrillSpec, out: &mut Vec<Diagnostic>) {
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
    if s.recovery_timeout.get_ref().is_zero() {
        out.push(spec.at(
            s.recovery_timeout.span(),
            "slo.recovery_timeout must be more than 0",
        ));
    }
}

pub(crate) fn conninfo_has_password(ci: &str) -> bool {
    let lower = ci.to_ascii_lowercase();
    lower
        .split_whitespace()
        .any(|kv| kv.starts_with("password"))
        || (lower.contains("://") && lower.contains('@') && {
            // scheme://user:secret@host
            let after = lower.split("://").nth(1).unwrap_or("");
            after
                .split('@')
                .next()
                .is_some_and(|userinfo| userinfo.contains(':'))
        })
}
