//! Redis for `firedrill assess`: a Redis + Sentinel lab like the domain,
//! and Sentinel as its failover mechanism: its settings (Sentinel's own
//! defaults), the RTO bound they allow, how to tune them, and the settings
//! in force (`SENTINEL MASTER` on the declared `sentinel`).

use firedrill_assess::derive::{secs, Bound};
use firedrill_assess::kind::{
    spec_dur, AssessKind, FailoverKind, LabSketch, Mismatch, Moves, Params, SettingDef, SettingType,
};
use firedrill_assess::model::Domain;
use redis::{ConnectionAddr, IntoConnectionInfo};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::timeout;

pub struct RedisAssess;

#[async_trait::async_trait]
impl AssessKind for RedisAssess {
    fn kind(&self) -> &'static str {
        "redis"
    }
    /// Redis replicates asynchronously; a client's WAIT is the closest
    /// it has to a synchronous commit.
    fn sync_setting(&self, quorum: u32, _standbys: &[String]) -> Option<String> {
        Some(format!(
            "WAIT {quorum} <timeout> after every write, and min-replicas-to-write {quorum} on the master"
        ))
    }
    fn lab(&self, d: &Domain) -> LabSketch {
        let p = match d.failover.automatic() {
            Some((m, p)) if m.name() == SentinelFailover.name() => p.clone(),
            _ => firedrill_assess::kind::defaults(&SentinelFailover),
        };
        LabSketch {
            table: sentinel_lab(d, &p),
            automatic: true,
            corruption: None,
        }
    }
}

fn sentinel_lab(d: &Domain, p: &Params) -> String {
    format!(
        "kind = \"redis-sentinel\"\nstandbys = {}\n\n[lab.redis]\ndown_after = \"{}\"\nfailover_timeout = \"{}\"",
        d.nodes.len().saturating_sub(1).max(1),
        spec_dur(p.dur("down_after")),
        spec_dur(p.dur("failover_timeout"))
    )
}

pub struct SentinelFailover;

const SETTINGS: &[SettingDef] = &[
    SettingDef {
        key: "down_after",
        ty: SettingType::Duration,
        default: Some("30s"),
    },
    SettingDef {
        key: "failover_timeout",
        ty: SettingType::Duration,
        default: Some("180s"),
    },
    // A Sentinel (`host:port`), asked for the master's settings in force.
    SettingDef {
        key: "sentinel",
        ty: SettingType::Text,
        default: None,
    },
    // The monitored master's name (default: the only one the Sentinel has).
    SettingDef {
        key: "master",
        ty: SettingType::Text,
        default: None,
    },
];

/// The Sentinel keys compared with the declaration, in milliseconds.
const TIMING: [(&str, &str); 2] = [
    ("down_after", "down-after-milliseconds"),
    ("failover_timeout", "failover-timeout"),
];

#[async_trait::async_trait]
impl FailoverKind for SentinelFailover {
    fn name(&self) -> &'static str {
        "sentinel"
    }
    fn title(&self) -> &'static str {
        "Redis Sentinel"
    }
    fn stores(&self) -> &'static [&'static str] {
        &["redis"]
    }
    fn settings(&self) -> &'static [SettingDef] {
        SETTINGS
    }
    fn rto(&self, p: &Params) -> Bound {
        let (da, ft) = (p.secs("down_after"), p.secs("failover_timeout"));
        Bound::range(
            da,
            Some(da + ft),
            format!(
                "Sentinel down_after {} → RTO ≥ {} (+ the vote and promotion), ≤ down_after + failover_timeout = {}",
                secs(da), secs(da), secs(da + ft)
            ),
        )
    }
    fn tune(&self, p: &Params, t: f64) -> Option<(Params, String)> {
        let da = (t / 2.0).max(1.0);
        let mut q = p.clone();
        q.set_secs("down_after", da);
        Some((
            q,
            format!(
                "lower down_after to {} (Sentinel declares the master down after it)",
                secs(da)
            ),
        ))
    }
    async fn read_settings(
        &self,
        p: &Params,
        limit: Duration,
    ) -> Result<BTreeMap<String, String>, String> {
        let Some(addr) = p.text("sentinel") else {
            return Ok(BTreeMap::new());
        };
        let fields = timeout(limit, sentinel_master(addr, p.text("master")))
            .await
            .map_err(|_| format!("Sentinel {addr}: no answer within {limit:?}"))??;
        let mut out = BTreeMap::new();
        for (_, key) in TIMING {
            if let Some(v) = fields.get(key) {
                out.insert(format!("sentinel.{key}"), v.clone());
            }
        }
        if let Some(n) = fields.get("name") {
            out.insert("sentinel.master".into(), n.clone());
        }
        Ok(out)
    }
    fn mismatches(&self, p: &Params, settings: &BTreeMap<String, String>) -> Vec<Mismatch> {
        let master = settings
            .get("sentinel.master")
            .cloned()
            .unwrap_or_default();
        let mut out = Vec::new();
        for (key, sk) in TIMING {
            let Some(ms) = settings
                .get(&format!("sentinel.{sk}"))
                .and_then(|v| v.parse::<f64>().ok())
            else {
                continue;
            };
            let declared = p.secs(key);
            if (ms / 1000.0 - declared).abs() > 1e-6 {
                out.push(Mismatch {
                    what: format!(
                        "declared Sentinel {key} = {}, but Sentinel has {sk} {ms}",
                        secs(declared)
                    ),
                    fix: format!(
                        "on every Sentinel: SENTINEL SET {master} {sk} {} (or correct [domain.failover])",
                        (declared * 1000.0).round()
                    ),
                    moves: Moves::Rto,
                    restore: false,
                });
            }
        }
        out
    }
}

/// `SENTINEL MASTER name` as a map (the only master when no name is given).
async fn sentinel_master(
    addr: &str,
    name: Option<&str>,
) -> Result<BTreeMap<String, String>, String> {
    let (host, port) = addr
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .ok_or_else(|| format!("sentinel {addr:?} is not host:port"))?;
    let info = ConnectionAddr::Tcp(host, port)
        .into_connection_info()
        .map_err(|e| e.to_string())?;
    let client = redis::Client::open(info).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("Sentinel {addr}: {e}"))?;
    let flat: Vec<String> = match name {
        Some(n) => redis::cmd("SENTINEL")
            .arg("MASTER")
            .arg(n)
            .query_async(&mut conn)
            .await
            .map_err(|e| format!("SENTINEL MASTER {n}: {e}"))?,
        None => {
            let all: Vec<Vec<String>> = redis::cmd("SENTINEL")
                .arg("MASTERS")
                .query_async(&mut conn)
                .await
                .map_err(|e| format!("SENTINEL MASTERS: {e}"))?;
            match <[Vec<String>; 1]>::try_from(all) {
                Ok([one]) => one,
                Err(all) => {
                    return Err(format!(
                        "Sentinel {addr} monitors {} masters: name one with master = \"...\"",
                        all.len()
                    ))
                }
            }
        }
    };
    Ok(flat
        .chunks(2)
        .filter_map(|kv| Some((kv.first()?.clone(), kv.get(1)?.clone())))
        .collect())
}
