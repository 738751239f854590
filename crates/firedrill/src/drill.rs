//! `firedrill drill` and `firedrill report`.

use crate::lab::load_spec;
use crate::Failure;
use firedrill_engine::{EngineError, Environment, NodeLink, NodeSpec, Plan, ProcSource};
use firedrill_lab::links::LinkKind;
use firedrill_lab::LabState;
use firedrill_ledger::events::DrillEvent;
use firedrill_ledger::Verdict;
use firedrill_report::{
    exit_code, render_html, render_junit, render_summary, write_atomic, EventsJsonl, Fanout,
    ObjectivesRecord, Progress, Reporter, RunArtifacts, RunCollector, RunMeta, RunRecord,
    HTML_FILE, JUNIT_FILE,
};
use firedrill_spec::{validate_drill, LinkScope, LoadedSpec, NodeUniverse, TargetSpec};
use firedrill_stores::Store;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// A lab target: rebuilt to healthy when a previous drill left it changed,
/// and between trials.
struct LabEnv {
    state: LabState,
    store: &'static dyn Store,
    /// What the drill says of its target and workload: the opener is
    /// rebuilt from them after each reset.
    target: Option<TargetSpec>,
    workload: firedrill_spec::WorkloadSpec,
}

/// Marks a lab a drill has touched, so the next drill rebuilds it first.
const DRILLED_MARK: &str = "drilled";

impl LabEnv {
    fn nodes(&self) -> Vec<NodeSpec> {
        let aux = self.store.fault_aux();
        self.state
            .nodes
            .iter()
            .chain(
                self.state
                    .sentinels
                    .iter()
                    .filter(|s| aux.contains(&s.name.as_str())),
            )
            .map(|n| NodeSpec {
                name: n.name.clone(),
                conninfo: n.conninfo.clone(),
                client_conninfo: self
                    .state
                    .client_port(&n.name)
                    .map(|p| self.store.client_address(p)),
                proc: match (n.proc, self.store.managed_nodes()) {
                    (Some(h), true) => ProcSource::Managed {
                        manager: h,
                        data_dir: n.data_dir.clone(),
                    },
                    (Some(h), false) => ProcSource::Handle(h),
                    (None, _) => ProcSource::None,
                },
                links: self
                    .state
                    .links
                    .iter()
                    .filter(|l| l.node == n.name)
                    .filter_map(|l| {
                        Some(NodeLink {
                            kind: match l.kind {
                                LinkKind::Clients => LinkScope::Clients,
                                LinkKind::Replication => LinkScope::Replication,
                                LinkKind::Peers => LinkScope::Peers,
                            },
                            proxy: l.name.clone(),
                            peer: l.peer.clone(),
                            api: self.state.proxy.as_ref()?.api,
                        })
                    })
                    .collect(),
                veth: n.net.as_ref().map(|net| net.veth.clone()),
                zone: n.zone.clone(),
                lab_data_dir: Some(n.data_dir.clone()),
            })
            .collect()
    }
}

impl Environment for LabEnv {
    fn prepare(
        &mut self,
        trial: u32,
        log: &mut dyn FnMut(String),
    ) -> Result<Vec<NodeSpec>, EngineError> {
        // A restore restarts a server and records its new pid in
        // state.json: the file, not this copy, is what must be reset.
        if let Ok(s) = firedrill_lab::LabState::load(&self.state.dir) {
            self.state = s;
        }
        let dead: Vec<&str> = self
            .state
            .nodes
            .iter()
            .filter(|n| !n.proc.is_some_and(|p| p.is_alive()))
            .map(|n| n.name.as_str())
            .collect();
        let drilled = self.state.dir.join(DRILLED_MARK).exists();
        if trial > 1 || drilled || !dead.is_empty() {
            let why = if trial > 1 {
                format!(
                    "resetting lab {} to healthy for trial {trial}",
                    self.state.name
                )
            } else if !dead.is_empty() {
                format!(
                    "lab {} is not healthy ({} down): rebuilding it",
                    self.state.name,
                    dead.join(", ")
                )
            } else {
                format!(
                    "lab {} was changed by an earlier drill: rebuilding it",
                    self.state.name
                )
            };
            log(why);
            let started = std::time::Instant::now();
            self.state = firedrill_lab::reset(self.store, &self.state, &mut |_| {})
                .map_err(|e| EngineError::Preflight(format!("lab reset failed: {e}")))?;
            // Rebuilding a Patroni lab takes tens of seconds: worth knowing
            // when a drill's wall time is surprising.
            log(format!(
                "lab {} reset to healthy in {:.1} s (trial {trial})",
                self.state.name,
                started.elapsed().as_secs_f64()
            ));
        }
        std::fs::write(self.state.dir.join(DRILLED_MARK), b"")
            .map_err(|e| EngineError::Preflight(format!("lab dir: {e}")))?;
        Ok(self.nodes())
    }

    fn nodes_now(&mut self) -> Vec<NodeSpec> {
        if let Ok(s) = firedrill_lab::LabState::load(&self.state.dir) {
            self.state = s;
        }
        self.nodes()
    }

    fn opener(&self) -> Option<std::sync::Arc<dyn firedrill_targets::TargetOpener>> {
        Some(
            self.store
                .lab_target(&self.state, self.target.as_ref(), &self.workload),
        )
    }
}

/// Explicit endpoints: the user's own store.
struct EndpointEnv {
    nodes: Vec<NodeSpec>,
    reset_command: Option<String>,
}

impl Environment for EndpointEnv {
    fn prepare(
        &mut self,
        trial: u32,
        log: &mut dyn FnMut(String),
    ) -> Result<Vec<NodeSpec>, EngineError> {
        if trial > 1 {
            if let Some(cmd) = &self.reset_command {
                log(format!("running target.reset_command before trial {trial}"));
                let st = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(cmd)
                    .status()
                    .map_err(|e| EngineError::Preflight(format!("reset_command: {e}")))?;
                if !st.success() {
                    return Err(EngineError::Preflight(format!(
                        "reset_command exited with {st}"
                    )));
                }
            }
        }
        Ok(self.nodes.clone())
    }

    fn nodes_now(&mut self) -> Vec<NodeSpec> {
        self.nodes.clone()
    }
}

pub(crate) enum Target {
    Lab(Box<LabState>),
    Endpoints(Box<TargetSpec>),
}

/// Finds the target and checks the whole spec against it, before anything
/// touches a store.
pub(crate) fn resolve(spec: &LoadedSpec) -> Result<Target, Failure> {
    let d = spec
        .file
        .drill
        .as_ref()
        .ok_or_else(|| Failure::input(format!("{}: no [drill] table", spec.path.display())))?;
    let endpoints = d.target.as_ref().filter(|t| !t.nodes.is_empty());
    let lab_name = d
        .target
        .as_ref()
        .and_then(|t| t.lab.as_ref().map(|l| l.get_ref().clone()))
        .or_else(|| spec.file.lab.as_ref().map(|l| l.name.get_ref().clone()));
    let mut state = None;
    let mut universe = None;
    if endpoints.is_none() {
        if let Some(name) = &lab_name {
            let dir = match spec.file.lab.as_ref().filter(|l| l.name.get_ref() == name) {
                Some(l) => l
                    .dir
                    .clone()
                    .unwrap_or_else(|| firedrill_lab::default_dir(name)),
                None => firedrill_lab::default_dir(name),
            };
            if let Ok(s) = LabState::load(&dir) {
                if let Some(mut u) = NodeUniverse::from_lab(&s.spec, &firedrill_stores::specs()) {
                    u.names = s.nodes.iter().map(|n| n.name.clone()).collect();
                    for n in &s.nodes {
                        if let Some(z) = &n.zone {
                            u.zones.entry(z.clone()).or_default().push(n.name.clone());
                        }
                    }
                    universe = Some(u);
                }
                state = Some(s);
            }
        }
    }
    let errs = validate_drill(spec, universe.as_ref(), &firedrill_stores::specs());
    if !errs.is_empty() {
        return Err(Failure::input(spec.fail(errs).to_string()));
    }
    if let Some(t) = endpoints {
        return Ok(Target::Endpoints(Box::new(t.clone())));
    }
    match (state, lab_name) {
        (Some(s), _) => Ok(Target::Lab(Box::new(s))),
        (None, Some(name)) => Err(Failure::aborted(format!(
            "lab {name} is not up: start it with `firedrill lab up {}`",
            spec.path.display()
        ))),
        (None, None) => Err(Failure::input("the drill names no target")),
    }
}

pub(crate) fn password(t: Option<&TargetSpec>) -> Result<Option<String>, Failure> {
    let Some(t) = t else { return Ok(None) };
    if let Some(var) = &t.password_env {
        return std::env::var(var).map(Some).map_err(|_| {
            Failure::input(format!(
                "target.password_env: environment variable {var} is not set"
            ))
        });
    }
    if let Some(f) = &t.password_file {
        let s = std::fs::read_to_string(f)
            .map_err(|e| Failure::input(format!("target.password_file {}: {e}", f.display())))?;
        return Ok(Some(s.trim_end_matches(['\n', '\r']).to_string()));
    }
    Ok(None)
}

pub(crate) fn default_run_dir(drill: &str) -> PathBuf {
    let ts = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let compact: String = ts.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    PathBuf::from("runs").join(format!("{compact}-{drill}"))
}

pub async fn run(file: &Path, out: Option<PathBuf>) -> Result<u8, Failure> {
    let spec = load_spec(file)?;
    if spec
        .file
        .drill
        .as_ref()
        .is_some_and(|d| d.capability.is_some())
    {
        return crate::capability::run(&spec, out).await;
    }
    let target = resolve(&spec)?;
    let d = spec
        .file
        .drill
        .as_ref()
        .ok_or_else(|| Failure::input("no [drill] table"))?;
    let pw = password(d.target.as_ref())?;
    let run_dir = out.unwrap_or_else(|| default_run_dir(d.name.get_ref()));
    if run_dir.join("run.json").exists() || run_dir.join(crate::partial::START_FILE).exists() {
        return Err(Failure::input(format!(
            "{} already holds a run; choose another --out",
            run_dir.display()
        )));
    }

    let Prepared {
        mut env,
        desc,
        cleanup,
        opener,
        embedded,
        version_nodes,
        restorer,
    } = prepare(target, d).await?;
    std::fs::create_dir_all(&run_dir)
        .map_err(|e| Failure::aborted(format!("{}: {e}", run_dir.display())))?;
    crate::partial::write_start(&run_dir, &spec, d, &desc, &[])?;
    let mut plan = Plan::build(d, desc, pw, run_dir.clone(), cleanup, opener);
    plan.restorer = restorer.map(firedrill_engine::RestorerHandle);

    let meta = RunMeta {
        drill: plan.drill.clone(),
        description: plan.description.clone(),
        objectives: ObjectivesRecord {
            rpo_s: plan.objectives.rpo_us.map(|v| v as f64 / 1e6),
            rto_s: plan.objectives.rto_us.map(|v| v as f64 / 1e6),
        },
        firedrill_version: env!("CARGO_PKG_VERSION").into(),
        server_version: None,
        spec: serde_json::to_value(d).unwrap_or(serde_json::Value::Null),
    };
    let version = server_version(&plan, &version_nodes).await;
    let (tx, consumer) = start_reporters(&run_dir, meta, version)?;
    let res = firedrill_engine::run(&plan, env.as_mut(), tx.clone()).await;
    // Only now may the embedded proxy go: every heal has run.
    drop(embedded);
    finish_run(res, &run_dir, tx, consumer).await
}

/// The reporters of a run, all consumers of one event stream: events.jsonl,
/// run.json, the HTML and JUnit files and the history, and progress.
pub(crate) fn start_reporters(
    run_dir: &Path,
    meta: RunMeta,
    server_version: Option<String>,
) -> Result<
    (
        tokio::sync::mpsc::UnboundedSender<DrillEvent>,
        tokio::task::JoinHandle<()>,
    ),
    Failure,
> {
    let mut collector = RunCollector::new(run_dir.to_path_buf(), meta);
    if let Some(v) = server_version {
        collector.set_server_version(v);
    }
    let mut fan = Fanout::new(vec![
        Box::new(EventsJsonl::create(run_dir).map_err(|e| Failure::aborted(e.to_string()))?),
        Box::new(collector),
        // After the collector: it reads the run.json the collector wrote.
        Box::new(RunArtifacts::new(
            run_dir.to_path_buf(),
            Some(crate::runs::history_path()),
        )),
        Box::new(Progress::new()),
    ]);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<DrillEvent>();
    let consumer = tokio::spawn(async move {
        let quiet = !std::io::stderr().is_terminal();
        while let Some(ev) = rx.recv().await {
            if let DrillEvent::Warning { message, .. } = &ev {
                // Warnings matter in CI logs too.
                if quiet {
                    eprintln!("warning: {message}");
                }
            }
            if let Err(e) = fan.event(&ev) {
                eprintln!("warning: reporter: {e}");
            }
        }
        if let Err(e) = fan.finish() {
            eprintln!("warning: reporter: {e}");
        }
    });
    Ok((tx, consumer))
}

/// Ends a run: an engine error still leaves run.json, marked
/// inconclusive; the summary is printed and the exit code returned.
pub(crate) async fn finish_run(
    res: Result<Verdict, EngineError>,
    run_dir: &Path,
    tx: tokio::sync::mpsc::UnboundedSender<DrillEvent>,
    consumer: tokio::task::JoinHandle<()>,
) -> Result<u8, Failure> {
    if let Err(e) = &res {
        // run.json is still written, marked inconclusive, with what was measured.
        let _ = tx.send(DrillEvent::Warning {
            trial: None,
            message: e.to_string(),
        });
        let _ = tx.send(DrillEvent::DrillFinished {
            verdict: Verdict::Inconclusive,
        });
    }
    drop(tx);
    let _ = consumer.await;

    match res {
        Ok(v) => {
            let rec = RunRecord::load(run_dir).map_err(|e| Failure::internal(e.to_string()))?;
            println!("{}", render_summary(&rec));
            println!("run directory: {}", run_dir.display());
            for f in [HTML_FILE, JUNIT_FILE] {
                if run_dir.join(f).exists() {
                    println!("  {}", run_dir.join(f).display());
                }
            }
            Ok(exit_code(v) as u8)
        }
        Err(e) => {
            if let Ok(rec) = RunRecord::load(run_dir) {
                if !rec.trials.is_empty() {
                    println!("{}", render_summary(&rec));
                }
            }
            println!("run directory: {}", run_dir.display());
            Err(Failure {
                code: e.exit_code() as u8,
                message: e.to_string(),
            })
        }
    }
}

/// What a drill runs against, made ready: the environment that prepares
/// each trial, its description, the target opener, and the embedded proxy
/// that must live until the drill ends.
pub(crate) struct Prepared {
    pub(crate) env: Box<dyn Environment>,
    pub(crate) desc: String,
    pub(crate) cleanup: bool,
    pub(crate) opener: std::sync::Arc<dyn firedrill_targets::TargetOpener>,
    pub(crate) embedded: Option<crate::embedded::EmbeddedProxy>,
    version_nodes: Vec<(String, String)>,
    /// A lab that takes backups: what a `restore` recovery runs.
    pub(crate) restorer: Option<std::sync::Arc<dyn firedrill_targets::Restorer>>,
}

/// Turns the resolved target into a [`Prepared`] one, through its store.
pub(crate) async fn prepare(
    target: Target,
    d: &firedrill_spec::DrillSpec,
) -> Result<Prepared, Failure> {
    let version_nodes: Vec<(String, String)> = match &target {
        Target::Lab(s) => s
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.conninfo.clone()))
            .collect(),
        Target::Endpoints(t) => t
            .nodes
            .iter()
            .map(|n| (n.name.get_ref().clone(), n.conninfo.get_ref().clone()))
            .collect(),
    };
    // Network faults against explicit endpoints run through the embedded
    // proxy; it lives until the drill ends.
    let mut embedded: Option<crate::embedded::EmbeddedProxy> = None;
    let mut restorer = None;
    let (env, desc, cleanup, opener): (Box<dyn Environment>, String, bool, _) = match target {
        Target::Lab(s) => {
            let store = crate::lab::store_of(&s.spec)?;
            restorer = store.restorer(&s);
            let opener = store.lab_target(&s, d.target.as_ref(), &d.workload);
            let desc = format!(
                "lab {} ({}, {})",
                s.name,
                s.nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                store.settings(&s.spec)
            );
            let env = LabEnv {
                state: *s,
                store,
                target: d.target.clone(),
                workload: d.workload.clone(),
            };
            (Box::new(env), desc, false, opener)
        }
        Target::Endpoints(t) => {
            let store = firedrill_stores::of(t.kind())
                .ok_or_else(|| Failure::input(firedrill_stores::specs().unknown_kind(t.kind())))?;
            let opener = store.endpoint_target(&t, &d.workload);
            let mut nodes: Vec<NodeSpec> = t
                .nodes
                .iter()
                .map(|n| NodeSpec {
                    name: n.name.get_ref().clone(),
                    conninfo: n.conninfo.get_ref().clone(),
                    client_conninfo: None,
                    links: Vec::new(),
                    veth: None,
                    zone: n.zone.as_ref().map(|z| z.get_ref().clone()),
                    lab_data_dir: None,
                    proc: match store.endpoint_pid_file(n) {
                        Some(p) => ProcSource::PidFile(p),
                        None => ProcSource::None,
                    },
                })
                .collect();
            if d.faults
                .iter()
                .any(|f| f.action.get_ref().is_network_fault())
            {
                let p = crate::embedded::EmbeddedProxy::start()
                    .map_err(|e| Failure::aborted(format!("embedded proxy: {e}")))?;
                p.front(store, &mut nodes).await.map_err(Failure::input)?;
                embedded = Some(p);
            }
            let desc = format!(
                "endpoints ({})",
                nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            (
                Box::new(EndpointEnv {
                    nodes,
                    reset_command: t.reset_command.clone(),
                }),
                desc,
                true,
                opener,
            )
        }
    };
    Ok(Prepared {
        env,
        desc,
        cleanup,
        opener,
        embedded,
        version_nodes,
        restorer,
    })
}

/// The server's version for run.json, asked of the first node that answers.
async fn server_version(plan: &Plan, nodes: &[(String, String)]) -> Option<String> {
    for (name, conninfo) in nodes {
        let node = firedrill_targets::TargetNode {
            name: name.clone(),
            control: conninfo.clone(),
            client: conninfo.clone(),
        };
        let Ok(t) = plan.store.open(&[node], plan.password.as_deref(), "") else {
            continue;
        };
        if let Ok(v) = t.server_version(name).await {
            return Some(v);
        }
    }
    None
}

/// Where `--html`/`--junit` write: the run directory's file when given no
/// value, standard output for `-`, else the file named.
fn emit(run_dir: &Path, arg: Option<&Path>, default: &str, text: &str) -> Result<(), Failure> {
    let path = match arg {
        Some(p) if p.as_os_str() == "-" => {
            print!("{text}");
            return Ok(());
        }
        Some(p) => p.to_path_buf(),
        None => run_dir.join(default),
    };
    let written = write_atomic(&path, text).map_err(|e| Failure::aborted(e.to_string()))?;
    eprintln!("wrote {}", written.display());
    Ok(())
}

pub async fn report(
    run_dir: &Path,
    reaudit: bool,
    json: bool,
    html: Option<Option<PathBuf>>,
    junit: Option<Option<PathBuf>>,
) -> Result<u8, Failure> {
    let finished = run_dir.join(firedrill_report::RUN_FILE).exists();
    if !finished && run_dir.join(crate::partial::START_FILE).exists() {
        if html.is_some() || junit.is_some() {
            return Err(Failure::input(format!(
                "{}: no run.json (the drill's process died): --html and --junit need a finished run; `--reaudit` completes it",
                run_dir.display()
            )));
        }
        if reaudit {
            return crate::partial::reaudit(run_dir).await;
        }
        return crate::partial::report(run_dir, json);
    }
    if reaudit {
        return Err(Failure::input(format!(
            "{}: the run finished (run.json is there): nothing to re-audit",
            run_dir.display()
        )));
    }
    let rec = RunRecord::load(run_dir).map_err(|e| Failure::input(e.to_string()))?;
    if let Some(p) = &html {
        emit(run_dir, p.as_deref(), HTML_FILE, &render_html(&rec))?;
    }
    if let Some(p) = &junit {
        let xml = render_junit(&rec).map_err(|e| Failure::internal(e.to_string()))?;
        emit(run_dir, p.as_deref(), JUNIT_FILE, &xml)?;
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rec).map_err(|e| Failure::internal(e.to_string()))?
        );
    } else if html.is_none() && junit.is_none() {
        println!("{}", render_summary(&rec));
    }
    Ok(exit_code(rec.verdict) as u8)
}
