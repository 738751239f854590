//! Live RPO exposure per data domain and disruption: "if this disruption
//! happened now, how many seconds of acknowledged writes would we lose?",
//! probed on an interval, exported as Prometheus metrics, with generated
//! alert and SLO rules, and a one-shot status table.
//!
//! Layout: [`config`] parses and validates the objectives file into a
//! [`plan::Plan`], asking each store's [`WatchKind`] (the binary passes
//! the list) to read its own `[domain.store]` options; [`probe`] runs each
//! store's [`Probe`] and writes what it found into the
//! [`board::Board`]; [`metrics`] renders the board for `/metrics`;
//! [`rules`] writes Prometheus rule groups; [`status`] renders a table.

pub mod board;
pub mod config;
mod fuzz;
pub mod kind;
pub mod metrics;
pub mod plan;
pub mod probe;
pub mod rate;
pub mod restore_test;
pub mod rules;
pub mod status;
mod store_spec;
pub mod v2;

pub use config::{load, parse_checked, Loaded};
#[doc(hidden)]
pub use fuzz::fuzz_objectives;
pub use kind::{store_view, Probe, WatchKind, WatchStore};
pub use plan::Plan;
pub use probe::{labels, Round, SourceResult};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot read objectives file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(firedrill_spec::Diagnostics),
    #[error("{0}")]
    Probe(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("metrics server: {0}")]
    Serve(std::io::Error),
}

use board::Board;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Probes every domain on its interval and serves `/metrics` on `listen`
/// until `shutdown` completes.
pub async fn serve(
    plan: Plan,
    listen: std::net::SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), WatchError> {
    let board = Arc::new(Mutex::new(Board::new(&plan)));
    let plan = Arc::new(plan);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| WatchError::Listen {
            addr: listen,
            source,
        })?;
    let n = plan.domains.len().max(1) as u32;
    let mut tasks = Vec::new();
    if plan.domains.iter().any(|d| d.restore_test.is_some()) {
        tasks.push(tokio::spawn(restore_test::refresh(
            plan.clone(),
            board.clone(),
            plan.settings.interval.max(restore_test::REFRESH),
        )));
    }
    for (i, dom) in plan.domains.iter().enumerate() {
        let offset = plan.settings.interval / n * i as u32;
        tasks.push(tokio::spawn(probe::run_domain(
            Arc::new(dom.clone()),
            i,
            plan.settings.clone(),
            board.clone(),
            offset,
        )));
    }
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get({
                let plan = plan.clone();
                let board = board.clone();
                move || async move {
                    let text = {
                        let b = board.lock().unwrap_or_else(|p| p.into_inner());
                        metrics::render(&plan, &b, Instant::now())
                    };
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        text,
                    )
                }
            }),
        )
        .route(
            "/",
            axum::routing::get(|| async { "firedrill watch: see /metrics\n" }),
        );
    let r = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(WatchError::Serve);
    for t in tasks {
        t.abort();
    }
    r
}

/// Probes every domain once (two rounds, `settle` apart, so the heartbeat
/// written by the first is read back by the second) and renders the table.
/// Returns the table and whether every objective is within and observed.
pub async fn status_once(plan: &Plan, settle: Duration) -> (String, bool) {
    let board = Mutex::new(Board::new(plan));
    probe::probe_once(plan, &board, settle).await;
    let b = board.lock().unwrap_or_else(|p| p.into_inner());
    status::render(plan, &b, Instant::now())
}
