//! Placeholder: compact binary ledger encoding.
use crate::{LedgerError, Op};

pub fn encode(_ops: &[Op]) -> Vec<u8> {
    todo!()
}

pub fn decode(_bytes: &[u8]) -> Result<Vec<Op>, LedgerError> {
    todo!()
}

pub fn encode_ids(_ids: &[u64]) -> Vec<u8> {
    todo!()
}

pub fn decode_ids(_bytes: &[u8]) -> Result<Vec<u64>, LedgerError> {
    todo!()
}
