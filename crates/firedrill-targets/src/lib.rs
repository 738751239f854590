//! Targets: one module per kind of store, each behind a cargo feature.
//!
//! A target knows three things about its store: how a workload client
//! writes one ledger entry (and what the answer means: ok, fail or
//! unknown), how to read back what survived (the audit), and how to
//! inspect and steer the nodes (roles, lag, promotion, replication cut).

#[cfg(feature = "postgres")]
pub mod postgres;

/// Role of a node as the store reports it right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveRole {
    Primary,
    Standby,
    /// Not reachable (crashed, stopped, paused or partitioned).
    Unreachable,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{node}: {msg}")]
    Node { node: String, msg: String },
    #[error("bad connection settings for {node}: {msg}")]
    Config { node: String, msg: String },
    #[error("{0}")]
    Other(String),
}
