//! The firedrill binary: command line and wiring only.

mod assess;
mod capability;
mod drill;
mod embedded;
mod heal;
mod lab;
mod partial;
mod partial_cap;
mod runs;
mod watch;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// firedrill measures what your replicated stores really lose (RPO) and how
/// long they really stay down (RTO) when something breaks, on the real
/// servers, under load.
#[derive(Parser)]
#[command(name = "firedrill", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start, inspect and remove real local clusters to drill.
    #[command(subcommand)]
    Lab(LabCmd),
    /// Run a drill: drive writes, inject the faults, recover, audit every
    /// acknowledged write, and report the achieved RPO and RTO against the
    /// objectives.
    ///
    /// Exit codes: 0 every objective met, 1 an objective violated, 2 invalid
    /// input, 3 aborted or inconclusive, 4 internal error.
    Drill {
        /// Drill spec (TOML). It may also hold the [lab] the drill targets.
        file: PathBuf,
        /// Run directory for run.json, events.jsonl and the ledgers
        /// (default: runs/<UTC time>-<drill name>/).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Start the file's [lab] first if it is not up, and take it down
        /// again afterwards (on success, failure, error and Ctrl-C). A lab
        /// that was already up is left as it was.
        #[arg(long)]
        lab: bool,
    },
    /// Re-render the summary of a finished drill from its run directory,
    /// without touching the store. Exits with the drill's verdict code.
    ///
    /// A run whose firedrill process died (no run.json) is inconclusive
    /// (exit 3), with what its crash-safe journal holds: ops acknowledged,
    /// faults injected and healed, how far it got.
    Report {
        /// A run directory written by `firedrill drill`.
        run_dir: PathBuf,
        /// For a run whose process died: read what survived from the store
        /// again (it must be reachable), complete the analysis with the
        /// journaled ledger (ops never recorded count as unknown), and write
        /// run.json marked as re-audited.
        #[arg(long)]
        reaudit: bool,
        /// Print run.json instead of the summary.
        #[arg(long)]
        json: bool,
        /// Write the self-contained HTML report: to RUN_DIR/report.html, or
        /// to FILE with --html=FILE (`-` for standard output).
        #[arg(long, value_name = "FILE", num_args = 0..=1, require_equals = true)]
        html: Option<Option<PathBuf>>,
        /// Write JUnit XML (one test per objective per trial): to
        /// RUN_DIR/junit.xml, or to FILE with --junit=FILE (`-` for standard
        /// output).
        #[arg(long, value_name = "FILE", num_args = 0..=1, require_equals = true)]
        junit: Option<Option<PathBuf>>,
    },
    /// List the runs recorded in the history database
    /// ($FIREDRILL_STATE_DIR/history.sqlite, default .firedrill/), or show
    /// one drill's trend.
    Runs(RunsArgs),
    /// Serve TCP fault proxies controlled by a Toxiproxy-compatible HTTP API
    /// (/proxies, /toxics, /populate, /reset, /version, /metrics), for
    /// firedrill's labs or for any other tool's tests, as Toxiproxy does.
    Proxy {
        /// Address of the HTTP API.
        #[arg(long, default_value = "127.0.0.1:8474")]
        api: std::net::SocketAddr,
    },
    /// Probe every data domain of FILE on an interval and export its live
    /// RPO exposure per disruption as Prometheus metrics on /metrics.
    Watch {
        /// Objectives file (TOML, see docs/watch.md).
        file: PathBuf,
        /// Address of the metrics endpoint (default: the file's, else 127.0.0.1:9187).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Write Prometheus alert and recording rules for the objectives of FILE.
    Rules {
        file: PathBuf,
        /// Output file (default: stdout).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Probe every data domain of FILE once and print its exposure against
    /// its objectives. Exit 0 when all are within and observed, 1 otherwise.
    Status { file: PathBuf },
    /// Assess the architecture declared in FILE (objectives file version 2)
    /// against its objectives: one row per (domain or capability,
    /// disruption, RPO/RTO) with the bound the mechanisms allow and its
    /// derivation, the recorded drills, the live exposure, a verdict
    /// (meets, unproven, at risk, cannot meet) and advice.
    ///
    /// Exit codes: 0 all meet (unproven too, unless --strict), 1 any at
    /// risk or cannot meet, 2 invalid input.
    Assess {
        /// Objectives file (TOML, see docs/assess.md).
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Also write a self-contained HTML page to FILE.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Unproven rows fail too (exit 1).
        #[arg(long)]
        strict: bool,
        /// Do not probe the stores: bounds and evidence only.
        #[arg(long)]
        offline: bool,
    },
    /// Watchdog that heals a journaled fault if firedrill died (internal).
    #[command(name = "__heal", hide = true)]
    Heal { journal: PathBuf, id: String },
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct RunsArgs {
    #[command(subcommand)]
    cmd: Option<RunsCmd>,
    /// Only runs of this drill.
    #[arg(long)]
    drill: Option<String>,
    /// Only runs with this verdict.
    #[arg(long, value_enum)]
    verdict: Option<VerdictArg>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum RunsCmd {
    /// RPO and RTO of every trial of DRILL over time, and how often each
    /// objective was met (recoveries within the objective / all recoveries).
    Trend {
        drill: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Index existing run directories (e.g. copied from CI) in the history.
    Add {
        #[arg(required = true)]
        run_dirs: Vec<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum VerdictArg {
    Pass,
    Fail,
    Inconclusive,
}

#[derive(Subcommand)]
enum LabCmd {
    /// Start a lab from the [lab] table of FILE: a primary and its streaming
    /// standbys on free loopback ports, run as an unprivileged user.
    Up {
        file: PathBuf,
        /// Remove an existing lab of that name first (otherwise `up` refuses).
        #[arg(long)]
        reset: bool,
        /// Lab directory (default: the spec's `dir`, else .firedrill/labs/<name>).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Stop every server of a lab and remove its directory, whatever a drill
    /// did to it (killed, paused or promoted nodes).
    Down {
        /// Lab name, lab directory, or the spec file that defines it.
        lab: String,
    },
    /// Show each node's role, pid, port, replication state and lag.
    Status {
        /// Lab name, lab directory, or the spec file that defines it.
        lab: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Restore a node of a lab that takes backups ([lab.backup]) in place,
    /// exactly as a drill's `restore` recovery does: stop it, fetch the
    /// backup, replay the archive to the target, promote. Prints the
    /// phases and whether the server's log says it reached the target.
    /// Exit 0 reached, 1 not reached, 3 the restore failed.
    Restore {
        /// Lab name, lab directory, or the spec file that defines it.
        lab: String,
        /// The node to restore (default: the node the lab backs up).
        #[arg(long)]
        node: Option<String>,
        /// Stop just before this transaction commits (exclusive).
        #[arg(long, conflicts_with = "time")]
        xid: Option<u64>,
        /// Stop at this time (RFC 3339); default: the end of the archive.
        #[arg(long)]
        time: Option<String>,
        /// Switch the running server to a new WAL segment and wait until
        /// it is archived first (as a drill does by default).
        #[arg(long)]
        flush_archive: bool,
    },
}

/// Errors carry the exit code DESIGN.md gives them.
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn input(m: impl Into<String>) -> Self {
        Failure {
            code: 2,
            message: m.into(),
        }
    }
    pub fn aborted(m: impl Into<String>) -> Self {
        Failure {
            code: 3,
            message: m.into(),
        }
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Failure {
            code: 4,
            message: m.into(),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::internal(format!("{e:#}"))
    }
}

/// Serves until SIGINT or SIGTERM.
async fn proxy(api: std::net::SocketAddr) -> Result<u8, Failure> {
    let server = firedrill_proxy::ProxyServer::new();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Failure::internal(e.to_string()))?;
    eprintln!("firedrill proxy: API on http://{api}");
    tokio::select! {
        r = server.serve(api) => r.map(|_| 0).map_err(|e| Failure::aborted(e.to_string())),
        _ = tokio::signal::ctrl_c() => Ok(0),
        _ = term.recv() => Ok(0),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FIREDRILL_LOG")
                // librdkafka reports every refused connection to a killed
                // broker as an error: in a drill those are the fault doing
                // its job, and the drill's own output says what happened.
                .unwrap_or_else(|_| "warn,rdkafka=off,librdkafka=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // One thread: the workload's clients, their connections and the
    // engine share it without cross-thread wake-ups. Measured against
    // pgbench on a 2-core machine, the multi-thread scheduler cost the
    // workload ~10 % of its throughput (scripts/bench-workload.sh); blocking
    // work (signals, lab resets) runs on the blocking pool.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(4);
        }
    };
    let res = rt.block_on(async {
        match cli.cmd {
            Cmd::Lab(LabCmd::Up { file, reset, dir }) => {
                lab::up(&file, reset, dir.as_deref()).await
            }
            Cmd::Lab(LabCmd::Down { lab: l }) => lab::down(&l),
            Cmd::Lab(LabCmd::Status { lab: l, json }) => lab::status(&l, json).await,
            Cmd::Lab(LabCmd::Restore {
                lab: l,
                node,
                xid,
                time,
                flush_archive,
            }) => lab::restore(&l, node, xid, time, flush_archive).await,
            Cmd::Drill {
                file,
                out,
                lab: false,
            } => drill::run(&file, out).await,
            Cmd::Drill {
                file,
                out,
                lab: true,
            } => lab::drill_with_lab(&file, out).await,
            Cmd::Report {
                run_dir,
                reaudit,
                json,
                html,
                junit,
            } => drill::report(&run_dir, reaudit, json, html, junit).await,
            Cmd::Runs(a) => match a.cmd {
                Some(RunsCmd::Trend { drill: d, json }) => runs::trend(&d, json),
                Some(RunsCmd::Add { run_dirs }) => runs::add(&run_dirs),
                None => runs::list(
                    a.drill,
                    a.verdict.map(|v| match v {
                        VerdictArg::Pass => firedrill_ledger::Verdict::Pass,
                        VerdictArg::Fail => firedrill_ledger::Verdict::Fail,
                        VerdictArg::Inconclusive => firedrill_ledger::Verdict::Inconclusive,
                    }),
                    a.json,
                ),
            },
            Cmd::Heal { journal, id } => heal::watchdog(&journal, &id).await,
            Cmd::Proxy { api } => proxy(api).await,
            Cmd::Watch { file, listen } => watch::watch(&file, listen).await,
            Cmd::Rules { file, out } => watch::rules(&file, out.as_deref()),
            Cmd::Status { file } => watch::status(&file).await,
            Cmd::Assess {
                file,
                json,
                html,
                strict,
                offline,
            } => {
                assess::assess(
                    &file,
                    assess::Options {
                        json,
                        html,
                        strict,
                        offline,
                    },
                )
                .await
            }
        }
    });
    match res {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
