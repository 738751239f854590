//! The ledger of every operation, the fault timeline, the audit set, and the
//! pure analysis that turns them into RPO and RTO figures, as defined in
//! DESIGN.md's measurement semantics.
//!
//! Nothing here does I/O or reads a clock: a saved run can be re-analysed
//! and re-rendered without the store.

mod analysis;
pub mod capability;
pub mod codec;
mod command;
mod consumer;
pub mod events;
mod fuzz;
pub mod journal;
pub mod outbox;
mod restore;
mod rpo;
mod rto;
mod types;

pub use analysis::{aggregate, analyze, check, Percentiles};
pub use command::{verify_failure, CommandPurpose, CommandRun};
pub use consumer::{consumer_figures, ConsumerFigures, ConsumerLog};
#[doc(hidden)]
pub use fuzz::fuzz_decode;
pub use restore::{
    point_figures, BackupCheck, BackupMark, Damage, PointFigures, Position, RestoreFigures,
    RestoreMarks, WIPE,
};
pub use types::*;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger file is corrupt: {0}")]
    Corrupt(String),
}
