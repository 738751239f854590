//! The crate's one error type: every failure names the file, command or
//! node involved, because a lab that fails to come up is debugged from the
//! message alone.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Proc(#[from] firedrill_proc::ProcError),

    #[error("fault proxy: {0}")]
    Proxy(String),

    #[error("{0}")]
    Netns(String),

    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot read lab state {}: {msg}", path.display())]
    State { path: PathBuf, msg: String },

    #[error(
        "lab directory {} already exists and is not empty; \
         use `firedrill lab up --reset` to replace it (or `firedrill lab down`)",
        dir.display()
    )]
    Exists { dir: PathBuf },

    #[error(
        "{} has no state.json: it is not a firedrill lab, so it is left alone; remove it yourself",
        dir.display()
    )]
    NotALab { dir: PathBuf },

    #[error("PostgreSQL binaries not found: {0}")]
    BinDir(String),

    #[error(
        "user {user:?} (which the servers run as) cannot traverse {}, an ancestor of the lab \
         directory {}; set e.g. `dir = \"/tmp/firedrill-{name}\"` in the [lab] table",
        blocked.display(), dir.display()
    )]
    Traverse {
        user: String,
        blocked: PathBuf,
        dir: PathBuf,
        name: String,
    },

    #[error("{program} failed ({status}): {stderr}")]
    Command {
        program: String,
        status: String,
        stderr: String,
    },

    #[error("node {node}: {what} within {secs} s; log tail ({}):\n{log_tail}", log.display())]
    Timeout {
        node: String,
        what: String,
        secs: u64,
        log: PathBuf,
        log_tail: String,
    },

    #[error("node {node}: the server exited during start; log tail ({}):\n{log_tail}", log.display())]
    Exited {
        node: String,
        log: PathBuf,
        log_tail: String,
    },

    #[error("server program not found: {0}")]
    Program(String),

    #[error("no free loopback port: {0}")]
    NoFreePort(String),

    #[error("lab setting {key:?}: {msg}")]
    Setting { key: String, msg: String },

    #[error("replication check failed: {0}")]
    Replication(String),
}

impl LabError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> LabError {
        let path = path.into();
        move |source| LabError::Io { path, source }
    }
}
