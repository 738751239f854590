//! Lab and drill specs: parse first, validate second, and report every
//! problem at once with `file:line:column`, before anything touches a store.

mod capability;
mod checks;
mod command;
mod corruption;
mod duration;
mod fuzz;
mod outbox;
pub use outbox::{OutboxSpec, CONSUMERS};
mod store;
mod types;
mod validate;

pub use capability::{
    split_capability, CapabilitySpec, DomainSpec, DomainTargetSpec, MemberSpec, RegionSpec,
};
pub use command::{CommandSpec, DEFAULT_COMMAND_TIMEOUT, MAX_COMMAND_TIMEOUT};
pub use corruption::{RestoreInto, RestoreTarget};
pub use duration::Dur;
#[doc(hidden)]
pub use fuzz::{fuzz_check, fuzz_located};
pub use store::{field_names, lab_view, target_view, StoreSpec, Stores};
pub use types::*;
pub use validate::{
    validate_drill, validate_file, validate_lab, NodeRole, NodeUniverse, ALL_NODES, ROLES,
};

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem found in a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// 1-based; 0 when the problem has no single place in the file.
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// Every problem found in one spec file.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    pub path: PathBuf,
    pub items: Vec<Diagnostic>,
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.items.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if d.line > 0 {
                write!(
                    f,
                    "{}:{}:{}: {}",
                    self.path.display(),
                    d.line,
                    d.col,
                    d.message
                )?;
            } else {
                write!(f, "{}: {}", self.path.display(), d.message)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read spec {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// A parsed spec file with its source, so that later checks can point at
/// the place in the file they complain about.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    pub path: PathBuf,
    pub source: String,
    pub file: SpecFile,
}

impl LoadedSpec {
    pub fn load(path: &Path) -> Result<Self, SpecError> {
        let source = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, source)
    }

    pub fn parse(path: &Path, source: String) -> Result<Self, SpecError> {
        match toml::from_str::<SpecFile>(&source) {
            Ok(mut file) => {
                resolve_paths(&mut file, path);
                Ok(LoadedSpec {
                    path: path.to_path_buf(),
                    source,
                    file,
                })
            }
            Err(e) => {
                let (line, col) = e
                    .span()
                    .map(|s| line_col(&source, s.start))
                    .unwrap_or((0, 0));
                let message = toml_message(&source, &e);
                Err(SpecError::Invalid(Diagnostics {
                    path: path.to_path_buf(),
                    items: vec![Diagnostic { line, col, message }],
                }))
            }
        }
    }

    /// Where `key` is set in `[table]`, else that table's header: for the
    /// problems no single value's span covers (two keys that exclude each
    /// other, a key its table lacks); an empty `key` gives the header.
    /// 0..0 when the file has neither.
    pub fn key_span(&self, table: &str, key: &str) -> Range<usize> {
        let mut offset = 0;
        let mut header: Option<Range<usize>> = None;
        for line in self.source.split_inclusive('\n') {
            let start = offset + (line.len() - line.trim_start().len());
            offset += line.len();
            let t = line.trim();
            if t.starts_with('[') {
                if header.is_some() {
                    break;
                }
                let name = t.trim_start_matches('[').split(']').next().unwrap_or("");
                if name.trim() == table {
                    header = Some(start..start + t.len().max(1));
                }
                continue;
            }
            let set_here = !key.is_empty()
                && t.strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with('='));
            if header.is_some() && set_here {
                return start..start + key.len();
            }
        }
        header.unwrap_or(0..0)
    }

    /// A diagnostic pointing at `span` in this file.
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

    pub fn fail(&self, items: Vec<Diagnostic>) -> SpecError {
        SpecError::Invalid(Diagnostics {
            path: self.path.clone(),
            items,
        })
    }
}

/// Paths a drill reads (`sql_file`) are relative to the spec file, so a
/// spec and its statement travel together whatever the working directory.
fn resolve_paths(file: &mut SpecFile, spec_path: &Path) {
    let base = spec_path.parent().unwrap_or(Path::new(""));
    let Some(d) = file.drill.as_mut() else { return };
    for s in &mut d.faults {
        if let Some(f) = s.sql_file.as_mut() {
            let p = base.join(f.get_ref());
            *f = Spanned::new(f.span(), p.to_string_lossy().into_owned());
        }
    }
}

/// The message of a TOML syntax error. The parser leaves some empty (a
/// control character in a comment, found by the spec_check fuzz target):
/// those name the character, or the end of the file, at the error's place.
pub fn toml_message(source: &str, e: &toml::de::Error) -> String {
    let m = e.message().trim();
    if !m.is_empty() {
        return m.to_string();
    }
    let at = e.span().map(|s| s.start).unwrap_or(source.len());
    match source.get(at..).and_then(|rest| rest.chars().next()) {
        Some(c) if c.is_control() => format!(
            "invalid TOML: unexpected control character U+{:04X}",
            c as u32
        ),
        Some(c) => format!("invalid TOML: unexpected {c:?}"),
        None => "invalid TOML: unexpected end of file".to_string(),
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = source[line_start..offset].chars().count() + 1;
    (line, col)
}

pub use toml::Spanned;

/// 1-63 letters, digits, '-' or '_': names end up in paths and SQL.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
