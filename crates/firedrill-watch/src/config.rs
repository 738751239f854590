//! The objectives file as written (serde types), and its validation into a
//! [`Plan`]. Parse first, validate second, every problem at once with
//! `file:line:column`, and nothing probed before the whole file is valid.

use crate::kind::{self, WatchKind};
use crate::plan::{Credentials, Disruption, Objective, Plan, Settings, Source, WatchedDomain};
use crate::WatchError;
use firedrill_spec::{line_col, Diagnostic, Diagnostics, Dur};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

/// One objectives file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchFile {
    /// 1 or 2; version 2 adds the architecture `firedrill assess` reads
    /// (every table of it is optional, so a version 1 file is valid as is).
    pub version: Option<Spanned<u32>>,
    #[serde(default)]
    pub watch: WatchSettings,
    #[serde(default, rename = "domain")]
    pub domains: Vec<DomainSpec>,
    pub topology: Option<TopologySpec>,
    #[serde(default, rename = "disruption")]
    pub disruptions: Vec<DisruptionSpec>,
    #[serde(default, rename = "capability")]
    pub capabilities: Vec<CapabilitySpec>,
}

pub use crate::v2::{
    BackupsSpec, CapabilityObjectiveSpec, CapabilitySpec, DependencySpec, DisruptionSpec,
    FailoverSpec, PlacementSpec, ReplicationSpec, TopologySpec,
};

/// How the watcher probes and what the generated rules assume.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WatchSettings {
    /// Probe interval (default 1 s): the heartbeat period, so the idle
    /// exposure floor.
    pub interval: Option<Spanned<Dur>>,
    /// Per-probe deadline (default: the interval).
    pub timeout: Option<Spanned<Dur>>,
    /// Default `--listen` address of `firedrill watch`.
    pub listen: Option<Spanned<String>>,
    /// Fraction of the objective at which the "approaching" ticket fires.
    pub approaching: Option<Spanned<f64>>,
    /// How long a breach must last before an alert fires (default 1m).
    #[serde(rename = "for")]
    pub for_: Option<Spanned<Dur>>,
    /// Target fraction of time the exposure stays within the objective.
    pub compliance: Option<Spanned<f64>>,
    /// SLO period of the compliance target (default 30d).
    pub period: Option<Spanned<Dur>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainSpec {
    pub name: Spanned<String>,
    pub store: StoreSpec,
    /// Keyed by disruption: node_loss, region_loss, corruption, or a name.
    pub objectives: BTreeMap<String, Spanned<ObjectiveSpec>>,
    /// Version 2: the mechanisms, for `firedrill assess`.
    pub replication: Option<ReplicationSpec>,
    pub failover: Option<FailoverSpec>,
    pub backups: Option<BackupsSpec>,
    pub placement: Option<PlacementSpec>,
    /// The drills that are this domain's restore tests, read from the
    /// run history (`firedrill_restore_test_age_seconds`).
    pub restore_test: Option<crate::restore_test::RestoreTestSpec>,
}

pub use crate::store_spec::{NodeSpec, StoreSpec};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectiveSpec {
    pub rpo: Option<Spanned<Dur>>,
    pub rto: Option<Spanned<Dur>>,
    /// What watch measures; an objective without sources is assessed
    /// (`firedrill assess`) but not watched.
    pub sources: Option<Spanned<Vec<Spanned<String>>>>,
    /// The standbys (or replicas) that survive this disruption and would be
    /// promoted; default every one.
    pub nodes: Option<Spanned<Vec<Spanned<String>>>>,
    /// Version 2: the disruption this objective covers, when its name is
    /// not one (`process`, `node`, `zone`, `region`, `corruption`, their
    /// `_loss` forms, or a `[[disruption]]`).
    pub disruption: Option<Spanned<String>>,
    /// Version 2: the drills whose runs prove it (default
    /// `<domain>-<disruption>`).
    pub drills: Option<Spanned<Vec<Spanned<String>>>>,
}

/// A loaded objectives file with its source, for diagnostics.
pub struct Loaded {
    pub path: PathBuf,
    pub source: String,
    pub file: WatchFile,
    /// Every domain's `[domain.store]` read once per view type, so
    /// [`crate::store_view`] parses the document once per kind rather than
    /// once per domain (which made large files quadratic).
    pub(crate) views: crate::kind::ViewCache,
}

impl Loaded {
    /// A problem at `span` of the file (`0..0`: the file as a whole).
    pub fn at(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        let (line, col) = if span.start == 0 && span.end == 0 {
            (0, 0)
        } else {
            line_col(&self.source, span.start)
        };
        Diagnostic {
            line,
            col,
            message: message.into(),
        }
    }
}

fn invalid(path: &Path, items: Vec<Diagnostic>) -> WatchError {
    WatchError::Invalid(Diagnostics {
        path: path.to_path_buf(),
        items,
    })
}

/// Reads, parses and validates an objectives file, knowing the stores
/// `kinds` (the binary's build decides which). Secrets are read from the
/// environment or their file here, so a missing one is an input error
/// before anything is probed.
pub fn load(kinds: &[&dyn WatchKind], path: &Path) -> Result<Plan, WatchError> {
    let source = std::fs::read_to_string(path).map_err(|source| WatchError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(kinds, path, source)
}

/// [`load`] of a text already read (`path` names it in diagnostics).
pub fn parse(kinds: &[&dyn WatchKind], path: &Path, source: String) -> Result<Plan, WatchError> {
    let (_, checked) = parse_checked(kinds, path, source)?;
    checked.map_err(|items| invalid(path, items))
}

/// Parses the file and checks what watch needs, keeping the parsed file
/// either way, so `firedrill assess` can add its own problems to watch's
/// and report them all at once. The outer error is a read error or a
/// syntax error (TOML stops at the first); the inner one is every problem
/// watch found.
pub fn parse_checked(
    kinds: &[&dyn WatchKind],
    path: &Path,
    source: String,
) -> Result<(Loaded, Result<Plan, Vec<Diagnostic>>), WatchError> {
    let store_keys = kinds.iter().flat_map(|k| k.store_keys()).copied().collect();
    let node_keys = kinds.iter().flat_map(|k| k.node_keys()).copied().collect();
    let parsed = crate::store_spec::with_kind_keys(store_keys, node_keys, || {
        toml::from_str::<WatchFile>(&source)
    });
    let file = match parsed {
        Ok(f) => f,
        Err(e) => {
            let (line, col) = e
                .span()
                .map(|s| line_col(&source, s.start))
                .unwrap_or((0, 0));
            return Err(invalid(
                path,
                vec![Diagnostic {
                    line,
                    col,
                    message: firedrill_spec::toml_message(&source, &e),
                }],
            ));
        }
    };
    let loaded = Loaded {
        path: path.to_path_buf(),
        source,
        file,
        views: Default::default(),
    };
    let checked = validate(kinds, &loaded);
    Ok((loaded, checked))
}

/// A name as metrics labels and rules take it: 1-63 letters, digits, '-' or '_'.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn validate(kinds: &[&dyn WatchKind], l: &Loaded) -> Result<Plan, Vec<Diagnostic>> {
    let mut out = Vec::new();
    if let Some(v) = &l.file.version {
        if !matches!(v.get_ref(), 1 | 2) {
            out.push(l.at(v.span(), "version must be 1 or 2"));
        }
    }
    let w = &l.file.watch;
    let interval = w
        .interval
        .as_ref()
        .map(|d| d.get_ref().0)
        .unwrap_or(Duration::from_secs(1));
    if let Some(i) = &w.interval {
        if i.get_ref().0 < Duration::from_millis(100) || i.get_ref().0 > Duration::from_secs(3600) {
            out.push(l.at(i.span(), "interval must be between 100ms and 1h"));
        }
    }
    let timeout = w
        .timeout
        .as_ref()
        .map(|d| d.get_ref().0)
        .unwrap_or(interval);
    if let Some(t) = &w.timeout {
        if t.get_ref().0 < Duration::from_millis(10) {
            out.push(l.at(t.span(), "timeout must be at least 10ms"));
        }
    }
    let listen = match &w.listen {
        Some(s) => match s.get_ref().parse() {
            Ok(a) => a,
            Err(_) => {
                out.push(l.at(
                    s.span(),
                    "listen must be an address like \"127.0.0.1:9187\"",
                ));
                default_listen()
            }
        },
        None => default_listen(),
    };
    let approaching = w.approaching.as_ref().map(|a| *a.get_ref()).unwrap_or(0.8);
    if let Some(a) = &w.approaching {
        if !(*a.get_ref() > 0.0 && *a.get_ref() < 1.0) {
            out.push(l.at(a.span(), "approaching must be a fraction between 0 and 1"));
        }
    }
    let for_ = w
        .for_
        .as_ref()
        .map(|d| d.get_ref().0)
        .unwrap_or(Duration::from_secs(60));
    let compliance = w.compliance.as_ref().map(|a| *a.get_ref()).unwrap_or(0.999);
    if let Some(c) = &w.compliance {
        // The fastest burn alert (14.4x) needs 14.4 * (1 - c) < 1 to be able to fire.
        if !(*c.get_ref() < 1.0 && 14.4 * (1.0 - *c.get_ref()) < 1.0) {
            out.push(l.at(
                c.span(),
                "compliance must be below 1 and above 0.9306 (a 14.4x burn of a larger budget cannot be observed)",
            ));
        }
    }
    let period = w
        .period
        .as_ref()
        .map(|d| d.get_ref().0)
        .unwrap_or(Duration::from_secs(30 * 86400));
    if let Some(p) = &w.period {
        if p.get_ref().0 < Duration::from_secs(7 * 86400) {
            out.push(l.at(
                p.span(),
                "period must be at least 7d (the slowest burn window is 3d)",
            ));
        }
    }

    if l.file.domains.is_empty() {
        out.push(l.at(
            0..0,
            "no [[domain]] in this file: declare at least one data domain",
        ));
    }
    let mut names = BTreeSet::new();
    let mut domains = Vec::new();
    for (i, d) in l.file.domains.iter().enumerate() {
        if let Some(dom) = validate_domain(kinds, l, i, d, &mut names, &mut out) {
            domains.push(dom);
        }
    }
    if !out.is_empty() {
        return Err(out);
    }
    Ok(Plan {
        path: l.path.clone(),
        settings: Settings {
            interval,
            timeout,
            listen,
            approaching,
            for_,
            compliance,
            period,
        },
        domains,
        restore_history: None,
    })
}

fn default_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 9187))
}

fn validate_domain(
    kinds: &[&dyn WatchKind],
    l: &Loaded,
    index: usize,
    d: &DomainSpec,
    names: &mut BTreeSet<String>,
    out: &mut Vec<Diagnostic>,
) -> Option<WatchedDomain> {
    let before = out.len();
    let name = d.name.get_ref().clone();
    if !valid_name(&name) {
        out.push(l.at(
            d.name.span(),
            "domain name must be 1-63 letters, digits, '-' or '_'",
        ));
    } else if !names.insert(name.clone()) {
        out.push(l.at(d.name.span(), format!("domain {name:?} is declared twice")));
    }
    let s = &d.store;
    let kind = kind::find(kinds, s.kind.get_ref());
    if kind.is_none() {
        out.push(l.at(
            s.kind.span(),
            format!(
                "unknown store kind {:?}: expected {}",
                s.kind.get_ref(),
                one_of(kinds.iter().map(|k| k.kind()))
            ),
        ));
    }
    let store_name = match &s.name {
        Some(n) if !valid_name(n.get_ref()) => {
            out.push(l.at(
                n.span(),
                "store name must be 1-63 letters, digits, '-' or '_'",
            ));
            name.clone()
        }
        Some(n) => n.get_ref().clone(),
        None => name.clone(),
    };
    if s.nodes.is_empty() {
        out.push(l.at(
            s.kind.span(),
            "the store needs at least one [[domain.store.nodes]]",
        ));
    }
    let mut node_names = BTreeSet::new();
    for n in &s.nodes {
        if !valid_name(n.name.get_ref()) {
            out.push(l.at(
                n.name.span(),
                "node name must be 1-63 letters, digits, '-' or '_'",
            ));
        } else if !node_names.insert(n.name.get_ref().clone()) {
            out.push(l.at(
                n.name.span(),
                format!("node {:?} is declared twice", n.name.get_ref()),
            ));
        }
    }
    let creds = credentials(l, s, out);

    let store: Option<Arc<dyn crate::WatchStore>> = kind.and_then(|k| k.plan(l, index, out));

    let mut objectives = Vec::new();
    if d.objectives.is_empty() {
        out.push(l.at(
            d.name.span(),
            "give at least one objective, e.g. [domain.objectives.node_loss]",
        ));
    }
    for (disruption, o) in &d.objectives {
        let ctx = Against {
            kind,
            store: store.as_deref(),
            node_names: &node_names,
        };
        let checked = validate_objective(l, disruption, o, &ctx, out);
        // Without sources there is nothing to watch: assess reads it.
        if o.get_ref().sources.is_some() {
            objectives.push(checked);
        }
    }
    let restore_test = d
        .restore_test
        .as_ref()
        .map(|r| crate::restore_test::validate(l, &name, r, out));
    if out.len() > before {
        return None;
    }
    Some(WatchedDomain {
        name,
        store_name,
        store: store?,
        credentials: creds?,
        objectives,
        restore_test,
    })
}

/// What an objective is checked against: its domain's kind and store (when
/// known) and the store's node names.
struct Against<'a> {
    kind: Option<&'a dyn WatchKind>,
    store: Option<&'a dyn crate::WatchStore>,
    node_names: &'a BTreeSet<String>,
}

fn validate_objective(
    l: &Loaded,
    disruption: &str,
    o: &Spanned<ObjectiveSpec>,
    ctx: &Against<'_>,
    out: &mut Vec<Diagnostic>,
) -> Objective {
    let span = o.span();
    let o = o.get_ref();
    if !valid_name(disruption) {
        out.push(l.at(
            span.clone(),
            format!("disruption name {disruption:?} must be letters, digits, '-' or '_'"),
        ));
    }
    if o.rpo.is_none() && o.rto.is_none() {
        out.push(l.at(
            span.clone(),
            format!("objective {disruption:?} needs rpo, rto, or both"),
        ));
    }
    let mut sources = Vec::new();
    let listed: &[Spanned<String>] = o.sources.as_ref().map_or(&[], |s| s.get_ref());
    if let Some(s) = o.sources.as_ref().filter(|s| s.get_ref().is_empty()) {
        out.push(l.at(s.span(), "sources must name at least one exposure source"));
    }
    for src in listed {
        match Source::parse(src.get_ref()) {
            None => out.push(l.at(
                src.span(),
                format!(
                    "unknown source {:?}: expected {}",
                    src.get_ref(),
                    one_of(Source::ALL.iter().map(|s| s.as_str()))
                ),
            )),
            Some(x) => {
                if let Some(k) = ctx.kind {
                    if !k.sources().contains(&x) {
                        out.push(l.at(
                            src.span(),
                            format!("a {} store has no {} source", k.kind(), x.as_str()),
                        ));
                    }
                }
                if let Some(why) = ctx.store.and_then(|st| st.lacks(x)) {
                    out.push(l.at(src.span(), why));
                }
                if sources.contains(&x) {
                    out.push(l.at(src.span(), "source listed twice"));
                }
                sources.push(x);
            }
        }
    }
    let nodes = match &o.nodes {
        None => None,
        Some(ns) => {
            for n in ns.get_ref() {
                if !ctx.node_names.contains(n.get_ref()) {
                    out.push(l.at(
                        n.span(),
                        format!("no node named {:?} in this store", n.get_ref()),
                    ));
                }
            }
            Some(ns.get_ref().iter().map(|n| n.get_ref().clone()).collect())
        }
    };
    Objective {
        disruption: Disruption(disruption.to_string()),
        rpo: o.rpo.as_ref().map(|r| r.get_ref().0),
        rto: o.rto.as_ref().map(|r| r.get_ref().0),
        sources,
        nodes,
    }
}

/// `a, b or c`, for "expected" in messages.
fn one_of<'a>(words: impl Iterator<Item = &'a str>) -> String {
    let words: Vec<&str> = words.collect();
    match words.as_slice() {
        [] => "none: this build watches no kind of store".to_string(),
        [w] => w.to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// `host:port` with a non-empty host and a port above 0.
pub fn valid_addr(a: &str) -> bool {
    match a.rsplit_once(':') {
        Some((h, p)) => !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}

/// Resolves the secret now, so a missing one fails validation. The value
/// only ever lives in [`Credentials`], whose Debug redacts it.
fn credentials(l: &Loaded, s: &StoreSpec, out: &mut Vec<Diagnostic>) -> Option<Credentials> {
    match (&s.password_env, &s.password_file) {
        (Some(e), Some(_)) => {
            out.push(l.at(e.span(), "give password_env or password_file, not both"));
            None
        }
        (Some(e), None) => match std::env::var(e.get_ref()) {
            Ok(v) => Some(Credentials::new(Some(v))),
            Err(_) => {
                out.push(l.at(
                    e.span(),
                    format!("environment variable {} is not set", e.get_ref()),
                ));
                None
            }
        },
        (None, Some(f)) => match std::fs::read_to_string(f.get_ref()) {
            Ok(v) => Some(Credentials::new(Some(
                v.trim_end_matches(['\n', '\r']).to_string(),
            ))),
            Err(e) => {
                out.push(l.at(
                    f.span(),
                    format!("cannot read password_file {}: {e}", f.get_ref().display()),
                ));
                None
            }
        },
        (None, None) => Some(Credentials::new(None)),
    }
}
