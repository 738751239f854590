//! `[lab]` options of a Patroni lab: PostgreSQL's, plus `[lab.patroni]`,
//! the dynamic configuration Patroni is bootstrapped with.

use firedrill_spec::{Diagnostic, Dur, LabSpec, LoadedSpec, Spanned};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What a Patroni lab adds to `[lab]`.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct PatroniLab {
    /// Standbys besides the first leader: 1 or 2 (Patroni's nodes n1…n3).
    #[serde(default = "one")]
    pub standbys: u32,
    /// Directory of the PostgreSQL binaries (as for a postgres lab).
    pub bin_dir: Option<PathBuf>,
    /// Extra postgresql.conf settings, passed as Patroni parameters.
    #[serde(default)]
    pub settings: BTreeMap<String, toml::Value>,
    /// `[lab.patroni]`.
    pub patroni: Option<PatroniLabSpec>,
}

fn one() -> u32 {
    1
}

impl PatroniLab {
    /// The options of a lab that passed validation.
    pub fn of(lab: &LabSpec) -> PatroniLab {
        lab.options().unwrap_or_default()
    }
    /// The Patroni settings in force (Patroni's defaults when the table is absent).
    pub fn settings(&self) -> PatroniLabSpec {
        self.patroni.clone().unwrap_or_default()
    }
    pub fn node_names(&self) -> Vec<String> {
        (1..=self.standbys + 1).map(|i| format!("n{i}")).collect()
    }
}

/// `[lab.patroni]`: Patroni's dynamic configuration at bootstrap. Its RTO is
/// governed by ttl, loop_wait and retry_timeout; synchronous_mode trades
/// availability for RPO = 0. Defaults are Patroni's own.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PatroniLabSpec {
    /// Leader key lifetime: a dead leader is replaced after at most this.
    #[serde(default = "default_ttl")]
    pub ttl: Spanned<Dur>,
    /// Seconds between HA loop runs.
    #[serde(default = "default_loop_wait")]
    pub loop_wait: Spanned<Dur>,
    /// How long DCS and PostgreSQL operations are retried.
    #[serde(default = "default_retry_timeout")]
    pub retry_timeout: Spanned<Dur>,
    /// Bytes a replica may lag and still take over.
    #[serde(default = "default_max_lag")]
    pub maximum_lag_on_failover: u64,
    /// Patroni manages synchronous_standby_names: only the sync standby may
    /// be promoted.
    #[serde(default)]
    pub synchronous_mode: bool,
    /// With synchronous_mode: block writes rather than fall back to async
    /// when no synchronous standby is left.
    #[serde(default)]
    pub synchronous_mode_strict: Option<Spanned<bool>>,
}

impl Default for PatroniLabSpec {
    fn default() -> Self {
        PatroniLabSpec {
            ttl: default_ttl(),
            loop_wait: default_loop_wait(),
            retry_timeout: default_retry_timeout(),
            maximum_lag_on_failover: default_max_lag(),
            synchronous_mode: false,
            synchronous_mode_strict: None,
        }
    }
}

impl PatroniLabSpec {
    pub fn strict(&self) -> bool {
        self.synchronous_mode_strict
            .as_ref()
            .is_some_and(|s| *s.get_ref())
    }
}

fn secs(s: u64) -> Spanned<Dur> {
    Spanned::new(0..0, Dur(std::time::Duration::from_secs(s)))
}
fn default_ttl() -> Spanned<Dur> {
    secs(30)
}
fn default_loop_wait() -> Spanned<Dur> {
    secs(10)
}
fn default_retry_timeout() -> Spanned<Dur> {
    secs(10)
}
fn default_max_lag() -> u64 {
    1 << 20
}

/// Patroni's own rules for ttl, loop_wait and retry_timeout.
pub fn check_patroni(spec: &LoadedSpec, p: &PatroniLabSpec, out: &mut Vec<Diagnostic>) {
    let whole = |d: &Spanned<Dur>, name: &str, min: u64, out: &mut Vec<Diagnostic>| {
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
