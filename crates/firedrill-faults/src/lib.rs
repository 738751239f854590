//! Faults and heals. Every fault has the same shape: `inject`, `heal`, and a
//! TTL after which it heals itself even if firedrill died.
//!
//! Process faults live here; store-specific faults (a replication cut) are
//! carried out by the target, but their heals are journaled here like any
//! other, so one mechanism guarantees that nothing outlives the drill.

mod journal;
pub mod link;
mod process;
pub mod proxy;

pub use journal::{HealAction, HealEntry, HealJournal};
pub use process::{apply_process_fault, ProcessAction};

#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error(transparent)]
    Proc(#[from] firedrill_proc::ProcError),
    #[error("{0}")]
    NotInEffect(String),
    #[error("heal journal {path}: {source}")]
    Journal {
        path: String,
        source: std::io::Error,
    },
}
