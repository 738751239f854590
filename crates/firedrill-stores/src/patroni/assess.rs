//! Patroni as a failover mechanism for `firedrill assess`: its settings
//! (Patroni's own defaults), the RTO bound they allow, how to tune them to
//! an objective, its dynamic configuration in force (`GET /config` on the
//! declared `api`), and a Patroni lab like the domain.

use firedrill_assess::derive::{secs, Bound};
use firedrill_assess::kind::{
    spec_dur, FailoverKind, LabSketch, Mismatch, Moves, Params, SettingDef, SettingType,
};
use firedrill_assess::model::{Domain, Replication};
use firedrill_targets::http::request_once;
use std::collections::BTreeMap;
use std::time::Duration;

pub struct PatroniFailover;

const SETTINGS: &[SettingDef] = &[
    SettingDef {
        key: "ttl",
        ty: SettingType::Duration,
        default: Some("30s"),
    },
    SettingDef {
        key: "loop_wait",
        ty: SettingType::Duration,
        default: Some("10s"),
    },
    SettingDef {
        key: "retry_timeout",
        ty: SettingType::Duration,
        default: Some("10s"),
    },
    // The REST API (`host:port`), read for `/config` when reachable.
    SettingDef {
        key: "api",
        ty: SettingType::Text,
        default: None,
    },
];

/// The timing keys of Patroni's dynamic configuration, in seconds.
const TIMING: [&str; 3] = ["ttl", "loop_wait", "retry_timeout"];

#[async_trait::async_trait]
impl FailoverKind for PatroniFailover {
    fn name(&self) -> &'static str {
        "patroni"
    }
    fn title(&self) -> &'static str {
        "Patroni"
    }
    fn stores(&self) -> &'static [&'static str] {
        &["postgres"]
    }
    fn settings(&self) -> &'static [SettingDef] {
        SETTINGS
    }
    fn rto(&self, p: &Params) -> Bound {
        let (ttl, lw, rt) = (p.secs("ttl"), p.secs("loop_wait"), p.secs("retry_timeout"));
        let lo = (ttl - lw).max(0.0);
        let hi = ttl + lw;
        let b = Bound::range(
            lo,
            Some(hi),
            format!(
                "Patroni ttl {} + loop_wait {} → RTO ≥ ttl − loop_wait = {} (the leader key expires), typically ≈ ttl = {}, ≤ ttl + loop_wait = {}",
                secs(ttl), secs(lw), secs(lo), secs(ttl), secs(hi)
            ),
        );
        if lw + 2.0 * rt > ttl {
            return b.note(format!(
                "loop_wait + 2 × retry_timeout = {} > ttl: Patroni wants ttl ≥ loop_wait + 2 × retry_timeout",
                secs(lw + 2.0 * rt)
            ));
        }
        b
    }
    fn tune(&self, p: &Params, t: f64) -> Option<(Params, String)> {
        if t <= 0.0 {
            return None;
        }
        let lw = (t / 5.0).floor().clamp(1.0, 10.0);
        let ttl = (t - lw).max(lw + 2.0).floor().min(p.secs("ttl"));
        let rt = ((ttl - lw) / 2.0).floor().max(1.0);
        let mut q = p.clone();
        q.set_secs("ttl", ttl);
        q.set_secs("loop_wait", lw);
        q.set_secs("retry_timeout", rt);
        Some((
            q,
            format!(
                "lower ttl to {}, loop_wait to {}, retry_timeout to {} (Patroni: ttl ≥ loop_wait + 2 × retry_timeout; RTO then ≤ ttl + loop_wait = {})",
                secs(ttl), secs(lw), secs(rt), secs(ttl + lw)
            ),
        ))
    }
    /// `GET /config`: the dynamic configuration every member follows.
    async fn read_settings(
        &self,
        p: &Params,
        timeout: Duration,
    ) -> Result<BTreeMap<String, String>, String> {
        let Some(api) = p.text("api") else {
            return Ok(BTreeMap::new());
        };
        let (code, v) = request_once(api, "GET", "/config", None, timeout)
            .await
            .map_err(|e| format!("Patroni /config at {api}: {e}"))?;
        if code != 200 {
            return Err(format!("Patroni /config at {api}: HTTP {code}"));
        }
        let mut out = BTreeMap::new();
        for key in TIMING.into_iter().chain(["synchronous_mode"]) {
            if let Some(x) = v.get(key) {
                out.insert(format!("patroni.{key}"), x.to_string());
            }
        }
        Ok(out)
    }
    fn mismatches(&self, p: &Params, settings: &BTreeMap<String, String>) -> Vec<Mismatch> {
        let mut out = Vec::new();
        for key in TIMING {
            let Some(read) = settings
                .get(&format!("patroni.{key}"))
                .and_then(|v| v.parse::<f64>().ok())
            else {
                continue;
            };
            let declared = p.secs(key);
            if (read - declared).abs() > 1e-9 {
                out.push(Mismatch {
                    what: format!(
                        "declared Patroni {key} = {}, but /config has {key} = {}",
                        secs(declared),
                        secs(read)
                    ),
                    fix: format!(
                        "patronictl edit-config --set {key}={} (or correct [domain.failover])",
                        declared
                    ),
                    moves: Moves::Rto,
                    restore: false,
                });
            }
        }
        out
    }
    fn lab(&self, d: &Domain, p: &Params) -> Option<LabSketch> {
        let sync = matches!(d.replication, Replication::Sync { .. });
        let table = format!(
            "kind = \"patroni\"\nstandbys = {}\n\n[lab.patroni]\nttl = \"{}\"\nloop_wait = \"{}\"\nretry_timeout = \"{}\"\nsynchronous_mode = {sync}",
            d.nodes.len().saturating_sub(1).max(1),
            spec_dur(p.dur("ttl")),
            spec_dur(p.dur("loop_wait")),
            spec_dur(p.dur("retry_timeout")),
        );
        Some(LabSketch {
            table,
            automatic: true,
            corruption: None,
        })
    }
}
