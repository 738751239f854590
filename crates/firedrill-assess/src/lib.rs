//! `firedrill assess`: can the declared architecture meet each objective
//! at all, has a drill proven it, and is it still true today.
//!
//! The objectives file (version 2, shared with `watch`) is parsed by
//! firedrill-watch; [`validate`] checks the architecture tables into an
//! [`model::Architecture`] (every problem at once, with file:line:column,
//! beside watch's own); [`derive`] bounds RPO and RTO per domain and
//! disruption with a readable trace; [`compose`] combines them per
//! capability; [`assess`] joins bounds, the [`evidence`] on record and the
//! [`live`] probe into verdicts and [`advice`]; [`render`] writes text,
//! JSON and HTML.

pub mod advice;
pub mod assess;
pub mod compose;
mod cycles;
pub mod derive;
pub mod evidence;
pub mod factors;
mod html;
pub mod kind;
pub mod live;
pub mod model;
pub mod render;
pub mod validate;

pub use assess::{assess, Report, Row, Verdict};
pub use evidence::{Evidence, RunFigures, TrialFigures};
pub use html::render_html;
pub use kind::{AssessKind, FailoverKind, Knowledge};
pub use live::Live;
pub use model::Architecture;

use firedrill_spec::Diagnostics;
use firedrill_watch::{Plan, WatchError, WatchKind};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum AssessError {
    #[error("cannot read objectives file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Every problem of the file, watch's and assess's, at once.
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Reads and validates the file: the watch plan (for the live probe) and
/// the architecture. Nothing is probed here.
pub fn load(
    kinds: &[&dyn WatchKind],
    knowledge: &Knowledge,
    path: &Path,
) -> Result<(Architecture, Plan), AssessError> {
    let source = std::fs::read_to_string(path).map_err(|source| AssessError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(kinds, knowledge, path, source)
}

/// [`load`] of a text already read.
pub fn parse(
    kinds: &[&dyn WatchKind],
    knowledge: &Knowledge,
    path: &Path,
    source: String,
) -> Result<(Architecture, Plan), AssessError> {
    let (loaded, plan) = match firedrill_watch::parse_checked(kinds, path, source) {
        Ok(x) => x,
        Err(WatchError::Invalid(d)) => return Err(AssessError::Invalid(d)),
        Err(WatchError::Read { path, source }) => return Err(AssessError::Read { path, source }),
        Err(other) => {
            return Err(AssessError::Invalid(Diagnostics {
                path: path.to_path_buf(),
                items: vec![firedrill_spec::Diagnostic {
                    line: 0,
                    col: 0,
                    message: other.to_string(),
                }],
            }))
        }
    };
    let mut items = match &plan {
        Ok(_) => Vec::new(),
        Err(d) => d.clone(),
    };
    let arch = validate::validate(&loaded, knowledge, &mut items);
    match (arch, plan) {
        (Some(a), Ok(p)) if items.is_empty() => Ok((a, p)),
        _ => {
            items.sort_by_key(|d| (d.line, d.col));
            items.dedup_by(|a, b| a.line == b.line && a.col == b.col && a.message == b.message);
            Err(AssessError::Invalid(Diagnostics {
                path: path.to_path_buf(),
                items,
            }))
        }
    }
}
