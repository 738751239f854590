//! `[lab]` and `[drill.target]` options of a Redis + Sentinel store.

use firedrill_spec::{Diagnostic, DrillSpec, Dur, LabSpec, LoadedSpec, Spanned, TargetSpec};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// What a Redis lab adds to `[lab]`.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct RedisLab {
    /// Replicas besides the first master.
    #[serde(default = "one")]
    pub standbys: u32,
    /// Directory of redis-server; default `REDIS_BIN`, PATH, /usr/bin.
    pub bin_dir: Option<PathBuf>,
    /// `[lab.redis]`.
    pub redis: Option<RedisLabSpec>,
}

fn one() -> u32 {
    1
}

impl RedisLab {
    pub fn of(lab: &LabSpec) -> RedisLab {
        lab.options().unwrap_or_default()
    }
    pub fn settings(&self) -> RedisLabSpec {
        self.redis.clone().unwrap_or_default()
    }
    pub fn node_names(&self) -> Vec<String> {
        (1..=self.standbys + 1).map(|i| format!("n{i}")).collect()
    }
}

/// What a Redis target adds to `[drill.target]`.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct RedisTarget {
    /// What each ledger write is (default `set`).
    pub redis_write: Option<Spanned<RedisWrite>>,
    /// `WAIT numreplicas timeout` after each write; a write counts as
    /// acknowledged only if WAIT reached this many replicas.
    pub redis_wait: Option<Spanned<u32>>,
    /// The WAIT timeout (default half of op_timeout; must be below it).
    pub redis_wait_timeout: Option<Spanned<Dur>>,
    /// Endpoints: the sentinels (`host:port`) clients ask for the master.
    #[serde(default)]
    pub redis_sentinels: Vec<Spanned<String>>,
    /// Endpoints: the master name the sentinels monitor.
    pub redis_master_name: Option<Spanned<String>>,
}

impl RedisTarget {
    pub fn of(t: Option<&TargetSpec>) -> RedisTarget {
        t.and_then(|t| t.options().ok()).unwrap_or_default()
    }
    /// The WAIT, with its timeout: half the op's budget by default, the
    /// rest is for the write itself.
    pub fn wait(&self, op_timeout: Duration) -> Option<(u32, Duration)> {
        self.redis_wait.as_ref().map(|n| {
            let t = self
                .redis_wait_timeout
                .as_ref()
                .map(|d| d.get_ref().0)
                .unwrap_or(op_timeout / 2);
            (*n.get_ref(), t)
        })
    }
    pub fn write(&self) -> RedisWrite {
        self.redis_write
            .as_ref()
            .map(|w| *w.get_ref())
            .unwrap_or_default()
    }
}

/// The command a Redis workload client writes one ledger entry with.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RedisWrite {
    /// `SET fd:<run_id>:<seq> <payload>`: one key per entry.
    #[default]
    Set,
    /// `RPUSH fd:<run_id>:list <seq>:<payload>`: one list (a queue).
    Rpush,
    /// `XADD fd:<run_id>:stream * seq <seq> p <payload>`: one stream.
    Xadd,
}

/// `[lab.redis]`: the knobs of a Redis + Sentinel lab. Every one of them
/// moves a measured figure, so each is explicit in the spec.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RedisLabSpec {
    /// Sentinel `down-after-milliseconds`: how long a master must be
    /// unreachable before a sentinel calls it down (default 1s here; 30 s
    /// in Redis).
    pub down_after: Option<Spanned<Dur>>,
    /// Sentinel `failover-timeout` (default 5s here; 3 min in Redis).
    pub failover_timeout: Option<Spanned<Dur>>,
    /// `min-replicas-to-write`: the master refuses writes when fewer
    /// replicas than this are connected with a lag within
    /// `min_replicas_max_lag` (default 0: never refuses).
    pub min_replicas_to_write: Option<Spanned<u32>>,
    /// `min-replicas-max-lag`, whole seconds (default 10s).
    pub min_replicas_max_lag: Option<Spanned<Dur>>,
    /// `appendonly` (default false).
    #[serde(default)]
    pub appendonly: bool,
    /// `appendfsync` (default everysec).
    #[serde(default)]
    pub appendfsync: AppendFsync,
    /// Number of sentinels (default 3; quorum is a majority).
    pub sentinels: Option<Spanned<u32>>,
    /// The name sentinels monitor the master under (default `firedrill`).
    pub master_name: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AppendFsync {
    Always,
    #[default]
    Everysec,
    No,
}

impl AppendFsync {
    pub fn as_conf(self) -> &'static str {
        match self {
            AppendFsync::Always => "always",
            AppendFsync::Everysec => "everysec",
            AppendFsync::No => "no",
        }
    }
}

impl RedisLabSpec {
    pub fn down_after(&self) -> std::time::Duration {
        self.down_after
            .as_ref()
            .map(|d| d.get_ref().0)
            .unwrap_or(std::time::Duration::from_secs(1))
    }
    pub fn failover_timeout(&self) -> std::time::Duration {
        self.failover_timeout
            .as_ref()
            .map(|d| d.get_ref().0)
            .unwrap_or(std::time::Duration::from_secs(5))
    }
    pub fn min_replicas_max_lag_s(&self) -> u64 {
        self.min_replicas_max_lag
            .as_ref()
            .map(|d| d.get_ref().0.as_secs())
            .unwrap_or(10)
    }
    pub fn min_replicas_to_write(&self) -> u32 {
        self.min_replicas_to_write
            .as_ref()
            .map(|v| *v.get_ref())
            .unwrap_or(0)
    }
    pub fn sentinels(&self) -> u32 {
        self.sentinels.as_ref().map(|s| *s.get_ref()).unwrap_or(3)
    }
    pub fn master_name(&self) -> String {
        self.master_name
            .as_ref()
            .map(|s| s.get_ref().clone())
            .unwrap_or_else(|| "firedrill".into())
    }
}

/// The knobs of `[lab.redis]`: what Redis and Sentinel would refuse.
pub fn check_lab(spec: &LoadedSpec, o: &RedisLab, out: &mut Vec<Diagnostic>) {
    let Some(r) = &o.redis else { return };
    let ms = |d: &Dur| d.0.as_millis();
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
        if *m.get_ref() > o.standbys {
            out.push(spec.at(
                m.span(),
                format!(
                    "min_replicas_to_write must be at most the number of replicas ({})",
                    o.standbys
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
        if !firedrill_spec::valid_name(n.get_ref()) {
            out.push(spec.at(
                n.span(),
                "master_name must be 1-63 letters, digits, '-' or '_'",
            ));
        }
    }
}

/// The `redis_*` options: a WAIT timeout that fits inside the operation's
/// timeout, and sentinels for explicit endpoints.
pub fn check_target(
    spec: &LoadedSpec,
    d: &DrillSpec,
    t: &TargetSpec,
    o: &RedisTarget,
    out: &mut Vec<Diagnostic>,
) {
    let endpoints = !t.nodes.is_empty();
    if let Some(w) = &o.redis_wait {
        if *w.get_ref() == 0 {
            out.push(spec.at(
                w.span(),
                "redis_wait is the number of replicas WAIT must reach: at least 1",
            ));
        }
    }
    if let Some(wt) = &o.redis_wait_timeout {
        if o.redis_wait.is_none() {
            out.push(spec.at(wt.span(), "redis_wait_timeout needs redis_wait"));
        }
        if wt.get_ref().is_zero() || *wt.get_ref() >= *d.workload.op_timeout.get_ref() {
            out.push(spec.at(
                wt.span(),
                format!(
                    "redis_wait_timeout must be more than 0 and less than workload.op_timeout ({})",
                    d.workload.op_timeout.get_ref()
                ),
            ));
        }
    }
    if endpoints {
        if o.redis_sentinels.is_empty() {
            out.push(spec.at(
                spec.key_span("drill.target", ""),
                "Redis endpoints need redis_sentinels = [\"host:port\", ...]: clients ask Sentinel for the master",
            ));
        }
        for s in o
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
