//! PostgreSQL as `firedrill watch` sees it: its `[domain.store]` options
//! (a conninfo per node, `user`, `[domain.store.pgbackrest]`) and its probe:
//! the heartbeat method (correct on an idle primary), the
//! primary's view of replication (pg_stat_replication), WAL archiving
//! (pg_stat_archiver) and, when configured, pgBackRest backups.
//!
//! Heartbeat: every round writes `ts` = the watcher's clock on the
//! primary, and every standby's exposure is the watcher's clock when it
//! read the row minus the newest `ts` it has replayed. Both instants come
//! from one clock, so server clock skew does not matter, and an idle
//! primary still gets a fresh row each interval, unlike
//! `now() - pg_last_xact_replay_timestamp()`.

mod cdc;
mod node;

use super::pgbackrest;
use async_trait::async_trait;
use firedrill_spec::Diagnostic;
use firedrill_watch::board::{Extras, BACKUP_EVERY};
use firedrill_watch::config::{valid_name, Loaded};
use firedrill_watch::plan::{Settings, Source, WatchedDomain};
use firedrill_watch::{labels, store_view, Probe, Round, SourceResult, WatchKind, WatchStore};
use node::{beat, observe, primary_view, unix_now, Node, NodeAnswer};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::Config;
use toml::Spanned;

/// Not the drill engine's `firedrill_heartbeat` (one counter per drill run):
/// the watcher keeps one timestamp per domain.
pub const HEARTBEAT_TABLE: &str = "firedrill_watch_heartbeat";

/// `kind = "postgres"` in an objectives file.
pub struct PgWatch;

impl WatchKind for PgWatch {
    fn kind(&self) -> &'static str {
        "postgres"
    }
    fn sources(&self) -> &'static [Source] {
        &[
            Source::Heartbeat,
            Source::ReplicationLag,
            Source::Archive,
            Source::Backup,
            Source::Cdc,
        ]
    }
    fn store_keys(&self) -> &'static [&'static str] {
        &["user", "pgbackrest", "cdc_slot"]
    }
    fn node_keys(&self) -> &'static [&'static str] {
        &["conninfo", "addr"]
    }
    fn plan(
        &self,
        file: &Loaded,
        domain: usize,
        out: &mut Vec<Diagnostic>,
    ) -> Option<Arc<dyn WatchStore>> {
        let v = match store_view::<PgStoreView>(file, domain) {
            Ok(v) => v,
            Err(d) => {
                out.push(d);
                return None;
            }
        };
        Some(Arc::new(v.check(file, out)))
    }
}

/// `[domain.store]` of a PostgreSQL store, as written.
#[derive(Deserialize)]
struct PgStoreView {
    kind: Spanned<String>,
    #[serde(default)]
    nodes: Vec<PgNodeView>,
    user: Option<String>,
    pgbackrest: Option<PgbackrestView>,
    /// The logical slot the `cdc` source measures (default
    /// `firedrill_outbox`, the Kafka lab's Debezium slot).
    cdc_slot: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PgNodeView {
    name: Spanned<String>,
    /// libpq conninfo, without a password.
    conninfo: Option<Spanned<String>>,
    /// Read only to say it is the other stores' key.
    addr: Option<Spanned<String>>,
}

/// `[domain.store.pgbackrest]`: the backup source's repository.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PgbackrestView {
    stanza: Spanned<String>,
    config: Option<PathBuf>,
    /// Program to run (default `pgbackrest` on PATH).
    command: Option<PathBuf>,
}

impl PgStoreView {
    /// Every problem of the options, at its place; the nodes that are
    /// right are kept, so the objectives are still checked.
    fn check(self, l: &Loaded, out: &mut Vec<Diagnostic>) -> PgStore {
        let mut nodes = Vec::new();
        for n in &self.nodes {
            if let Some(a) = &n.addr {
                out.push(l.at(a.span(), "postgres nodes take conninfo, not addr"));
            }
            let Some(ci) = &n.conninfo else {
                out.push(l.at(n.name.span(), "postgres node needs conninfo"));
                continue;
            };
            match ci.get_ref().parse::<Config>() {
                Ok(c) if c.get_password().is_some() => out.push(l.at(
                    ci.span(),
                    "conninfo must not hold a password: use password_env or password_file",
                )),
                Ok(_) => nodes.push(PgNodePlan {
                    name: n.name.get_ref().clone(),
                    conninfo: ci.get_ref().clone(),
                }),
                Err(e) => out.push(l.at(ci.span(), format!("bad conninfo: {e}"))),
            }
        }
        if let Some(p) = &self.pgbackrest {
            if !valid_name(p.stanza.get_ref()) {
                out.push(l.at(
                    p.stanza.span(),
                    "stanza must be letters, digits, '-' or '_'",
                ));
            }
        }
        if let Some(s) = &self.cdc_slot {
            if !valid_name(s.get_ref()) {
                out.push(l.at(s.span(), "cdc_slot must be letters, digits, '-' or '_'"));
            }
        }
        if self.user.as_ref().is_some_and(|u| u.is_empty()) {
            out.push(l.at(self.kind.span(), "user must not be empty"));
        }
        PgStore {
            nodes,
            cdc_slot: self
                .cdc_slot
                .map_or_else(|| "firedrill_outbox".into(), Spanned::into_inner),
            user: self.user,
            pgbackrest: self.pgbackrest.map(|p| PgbackrestPlan {
                stanza: p.stanza.into_inner(),
                config: p.config,
                command: p.command.unwrap_or_else(|| PathBuf::from("pgbackrest")),
            }),
        }
    }
}

/// A validated PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pub nodes: Vec<PgNodePlan>,
    /// The logical slot of the `cdc` source.
    pub cdc_slot: String,
    pub user: Option<String>,
    pub pgbackrest: Option<PgbackrestPlan>,
}

#[derive(Debug, Clone)]
pub struct PgNodePlan {
    pub name: String,
    /// Without a password (validated).
    pub conninfo: String,
}

#[derive(Debug, Clone)]
pub struct PgbackrestPlan {
    pub stanza: String,
    pub config: Option<PathBuf>,
    pub command: PathBuf,
}

impl WatchStore for PgStore {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn lacks(&self, source: Source) -> Option<&'static str> {
        (source == Source::Backup && self.pgbackrest.is_none())
            .then_some("the backup source needs [domain.store.pgbackrest]")
    }
    fn prober(&self, dom: &WatchedDomain, settings: &Settings) -> Box<dyn Probe> {
        Box::new(PgProber::new(dom, self, settings))
    }
}

pub struct PgProber {
    nodes: Vec<Node>,
    primary: Option<usize>,
    timeout: Duration,
    backup: Option<PgbackrestPlan>,
    last_backup: Option<Instant>,
    cdc_slot: String,
    wal: cdc::WalClock,
}

impl PgProber {
    pub fn new(dom: &WatchedDomain, s: &PgStore, settings: &Settings) -> Self {
        let nodes = s
            .nodes
            .iter()
            .map(|n| {
                // Validated already; a parse failure here cannot happen,
                // but stays an error rather than a panic.
                let mut config: Config = n.conninfo.parse().unwrap_or_default();
                if let Some(u) = &s.user {
                    config.user(u);
                }
                if let Some(p) = dom.credentials.password() {
                    config.password(p);
                }
                config.application_name("firedrill-watch");
                config.connect_timeout(settings.timeout);
                Node {
                    name: n.name.clone(),
                    config,
                    conn: None,
                }
            })
            .collect();
        PgProber {
            nodes,
            primary: None,
            timeout: settings.timeout,
            backup: s.pgbackrest.clone(),
            last_backup: None,
            cdc_slot: s.cdc_slot.clone(),
            wal: cdc::WalClock::default(),
        }
    }
}

#[async_trait]
impl Probe for PgProber {
    async fn round(&mut self, dom: &WatchedDomain) -> Round {
        let limit = self.timeout;
        let mut results = Vec::new();
        let mut extras = Extras::new();

        // 0. No primary known (first round, or lost): find it first, so
        // this round's heartbeat is written and a one-shot status is fresh.
        if self.primary.is_none() && dom.wants(Source::Heartbeat) {
            let answers = self.observe_all(dom).await;
            if let [p] = primaries(&answers).as_slice() {
                self.primary = Some(*p);
            }
        }

        // 1. The heartbeat on the last known primary.
        let mut beat_error = None;
        if dom.wants(Source::Heartbeat) {
            match self.primary {
                Some(p) => {
                    if let Err(e) = beat(&mut self.nodes[p], &dom.name, limit).await {
                        beat_error = Some(format!("heartbeat on {}: {e}", self.nodes[p].name));
                    }
                }
                None => beat_error = Some("no primary known yet".to_string()),
            }
        }

        // 2. Every node: its role and its replayed heartbeat.
        let answers = self.observe_all(dom).await;
        let primary = self.settle_primary(&answers, &mut beat_error);
        if let Some(p) = primary {
            extras.insert(
                (
                    "firedrill_pg_primary".into(),
                    labels(dom, &[("node", &self.nodes[p].name)]),
                ),
                1.0,
            );
        }
        if dom.wants(Source::Heartbeat) {
            results.push(self.heartbeat_result(&answers, primary, beat_error));
        }
        self.standby_extras(dom, &answers, &mut extras);

        // 3. The primary's view: replication and archiving.
        self.primary_results(dom, primary, &mut results, &mut extras)
            .await;

        // 4. The CDC slot's lag, on the primary.
        if dom.wants(Source::Cdc) {
            results.push(match primary {
                Some(p) => {
                    cdc::cdc_result(
                        &mut self.nodes[p],
                        &mut self.wal,
                        &self.cdc_slot,
                        limit,
                        dom,
                        &mut extras,
                    )
                    .await
                }
                None => SourceResult::failed(Source::Cdc, "no primary answered".into()),
            });
        }

        // 5. Backups, at their own slower pace.
        let mut extra_updates = Extras::new();
        if let Some(r) = self.backup_result(dom, &mut extra_updates).await {
            results.push(r);
        }
        Round {
            results,
            extras: Some(extras),
            extra_updates,
        }
    }
}

type Answers = Vec<Result<NodeAnswer, String>>;

/// The nodes that answered as a primary.
fn primaries(answers: &Answers) -> Vec<usize> {
    answers
        .iter()
        .enumerate()
        .filter(|(_, a)| matches!(a, Ok(a) if !a.in_recovery))
        .map(|(i, _)| i)
        .collect()
}

impl PgProber {
    async fn observe_all(&mut self, dom: &WatchedDomain) -> Answers {
        let limit = self.timeout;
        futures_util::future::join_all(self.nodes.iter_mut().map(|n| observe(n, &dom.name, limit)))
            .await
    }

    /// The one primary of this round, if there is one; several primaries,
    /// or a primary other than the one beaten, fail the heartbeat.
    fn settle_primary(
        &mut self,
        answers: &Answers,
        beat_error: &mut Option<String>,
    ) -> Option<usize> {
        let primaries = primaries(answers);
        let primary = match primaries.as_slice() {
            [p] => Some(*p),
            _ => None,
        };
        if primaries.len() > 1 {
            let names: Vec<&str> = primaries
                .iter()
                .map(|i| self.nodes[*i].name.as_str())
                .collect();
            beat_error.get_or_insert(format!("several primaries: {}", names.join(", ")));
        }
        if primary != self.primary && beat_error.is_none() {
            // A failover since the beat: the beat went to a standby that is
            // no more, or to nothing. The next round writes to the new one.
            *beat_error = Some("primary changed".to_string());
        }
        self.primary = primary;
        primary
    }

    /// Each standby's replayed heartbeat age.
    fn heartbeat_result(
        &self,
        answers: &Answers,
        primary: Option<usize>,
        beat_error: Option<String>,
    ) -> SourceResult {
        let mut observed = Vec::new();
        let mut missing = Vec::new();
        for (i, a) in answers.iter().enumerate() {
            if Some(i) == primary {
                continue;
            }
            let name = &self.nodes[i].name;
            match a {
                Ok(a) => {
                    if let Some(age) = a.heartbeat_age {
                        observed.push((name.clone(), age));
                    } else {
                        missing.push(name.clone());
                    }
                }
                Err(_) => missing.push(name.clone()),
            }
        }
        let errors: Vec<String> = answers
            .iter()
            .zip(&self.nodes)
            .filter_map(|(a, n)| a.as_ref().err().map(|e| format!("{}: {e}", n.name)))
            .collect();
        let error = beat_error.or_else(|| (!errors.is_empty()).then(|| errors.join("; ")));
        SourceResult {
            source: Source::Heartbeat,
            observed,
            missing,
            error,
            ages: false,
        }
    }

    /// The standbys' ages, the naive one beside the heartbeat's.
    fn standby_extras(&self, dom: &WatchedDomain, answers: &Answers, extras: &mut Extras) {
        for (a, n) in answers.iter().zip(&self.nodes) {
            let Ok(a) = a else { continue };
            if !a.in_recovery {
                continue;
            }
            if let Some(age) = a.replay_ts_age {
                extras.insert(
                    (
                        "firedrill_pg_replay_timestamp_age_seconds".into(),
                        labels(dom, &[("node", &n.name)]),
                    ),
                    age,
                );
            }
            if let Some(age) = a.heartbeat_age {
                extras.insert(
                    (
                        "firedrill_pg_heartbeat_age_seconds".into(),
                        labels(dom, &[("node", &n.name)]),
                    ),
                    age,
                );
            }
        }
    }

    /// Replication lag and archiving, from the primary.
    async fn primary_results(
        &mut self,
        dom: &WatchedDomain,
        primary: Option<usize>,
        results: &mut Vec<SourceResult>,
        extras: &mut Extras,
    ) {
        let wants_repl = dom.wants(Source::ReplicationLag);
        let wants_arch = dom.wants(Source::Archive);
        let failed = |results: &mut Vec<SourceResult>, e: String| {
            if wants_repl {
                results.push(SourceResult::failed(Source::ReplicationLag, e.clone()));
            }
            if wants_arch {
                results.push(SourceResult::failed(Source::Archive, e));
            }
        };
        let Some(p) = primary else {
            failed(results, "no primary answered".to_string());
            return;
        };
        let standbys: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != p)
            .map(|(_, n)| n.name.clone())
            .collect();
        let node = &mut self.nodes[p];
        match primary_view(node, self.timeout, dom, &standbys, extras).await {
            Ok((repl, arch)) => {
                if wants_repl {
                    results.push(repl);
                }
                if wants_arch {
                    results.push(arch);
                }
            }
            Err(e) => {
                node.conn = None;
                failed(results, format!("{}: {e}", node.name));
            }
        }
    }

    /// The newest backup's age, once per [`BACKUP_EVERY`] at most.
    async fn backup_result(
        &mut self,
        dom: &WatchedDomain,
        extra_updates: &mut Extras,
    ) -> Option<SourceResult> {
        let b = self.backup.as_ref()?;
        if !dom.wants(Source::Backup)
            || self.last_backup.is_some_and(|t| t.elapsed() < BACKUP_EVERY)
        {
            return None;
        }
        self.last_backup = Some(Instant::now());
        let r = pgbackrest::info(
            &b.command,
            b.config.as_deref(),
            &b.stanza,
            Duration::from_secs(30).max(self.timeout),
        )
        .await
        .and_then(|json| pgbackrest::newest_backup(&json, &b.stanza));
        Some(match r {
            Ok(Some(nb)) => {
                let age = unix_now() - nb.stop as f64;
                extra_updates.insert(
                    (
                        "firedrill_backup_newest_timestamp_seconds".into(),
                        labels(dom, &[]),
                    ),
                    nb.stop as f64,
                );
                SourceResult {
                    source: Source::Backup,
                    observed: vec![(String::new(), age)],
                    missing: vec![],
                    error: None,
                    ages: true,
                }
            }
            Ok(None) => SourceResult {
                source: Source::Backup,
                observed: vec![(String::new(), f64::INFINITY)],
                missing: vec![],
                error: None,
                ages: true,
            },
            Err(e) => SourceResult::failed(Source::Backup, e.to_string()),
        })
    }
}
