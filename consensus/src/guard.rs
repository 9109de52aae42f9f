//! The double-sign guard: the durable record of the last signed statement and the lock, checked before every signature.
//!
//! A validator that restarts from this record never signs two different statements
//! for one (height, round, step): it signs only at a strictly later (height, round,
//! step), or the very same vote again (Ed25519 signatures are deterministic, so the
//! re-sent signature is identical). The lock of Algorithm 1 (lines 38–39) travels in
//! the same record, with its block: forgetting a lock is as unsafe as double-signing,
//! and a lock whose block is lost can never be decided nor released, a permanent stall.
//! So do the votes signed at the current height: a restarted validator re-sends
//! exactly those (peers may have lost them), and nothing else.

use std::sync::Arc;

use credence_ledger::attestation::ATTESTATION_BYTES_MAX;
use credence_ledger::block::{
    self, Block, BlockDecodeError, BlockHeader, HEADER_BYTES_MAX, encode_leaves, put_chunk, take_chunk,
};
use credence_ledger::codec::{self, DecodeError};
use credence_ledger::genesis::BLOCK_RECORDS_MAX_LIMIT;
use credence_ledger::vote::{BlockId, VoteKind};
use serde::{Deserialize, Serialize};

use super::types::Step;

/// The last statement signed, and the lock held, at `height`. The driver stores it
/// durably (and atomically) before the statement leaves the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignState {
    pub height: u64,
    pub round: u32,
    pub step: Step,
    /// What was signed: the proposed block, or the vote's value (`None` = nil).
    pub value: Option<BlockId>,
    /// `(lockedRound, lockedValue)` at `height`, if locked.
    pub locked: Option<(u32, BlockId)>,
    /// Votes signed at `height`, oldest first, at most [`SIGNED_VOTES_MAX`] (the most recent).
    pub votes: Vec<(u32, VoteKind, Option<BlockId>)>,
    /// The block of `locked`.
    pub locked_block: Option<Arc<Block>>,
}

/// Votes of one height kept in the record for re-sending.
pub const SIGNED_VOTES_MAX: usize = 32;
/// Encoded size of the fixed part: fields plus [`SIGNED_VOTES_MAX`] votes of 81 bytes.
pub const SIGN_RECORD_BYTES_MAX: usize = 4096;
/// Encoded size bound of the whole record, locked block included.
pub const SIGN_STATE_BYTES_MAX: usize = 4
    + SIGN_RECORD_BYTES_MAX
    + 1
    + 4
    + HEADER_BYTES_MAX
    + 4
    + BLOCK_RECORDS_MAX_LIMIT as usize * (4 + ATTESTATION_BYTES_MAX);

/// The fixed-size part, in the canonical encoding.
#[derive(Serialize, Deserialize)]
struct Record {
    height: u64,
    round: u32,
    step: Step,
    value: Option<BlockId>,
    locked: Option<(u32, BlockId)>,
    votes: Vec<(u32, VoteKind, Option<BlockId>)>,
}

/// Why stored sign-state bytes cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum SignStateError {
    #[error("sign state: {len} bytes exceed the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("sign state: {0}")]
    Record(#[from] DecodeError),
    #[error("sign state: locked block: {0}")]
    Block(#[from] BlockDecodeError),
    #[error("sign state: the locked block is not the locked value, or there is none")]
    LockMismatch,
    #[error("sign state: bad block flag {0}")]
    Flag(u8),
    #[error("sign state: {0} trailing bytes")]
    Trailing(usize),
}

impl SignState {
    /// Whether signing `value` at (height, round, step) cannot conflict with anything
    /// signed before: a strictly later slot, or the same vote again. A proposal is
    /// never signed twice (its valid round is not recorded here); a driver re-sends
    /// the signed message instead.
    pub fn permits(&self, height: u64, round: u32, step: Step, value: Option<BlockId>) -> bool {
        let last = (self.height, self.round, self.step);
        let next = (height, round, step);
        next > last || (next == last && step != Step::Propose && value == self.value)
    }

    /// `chunk(record) ‖ 00`, or `chunk(record) ‖ 01 ‖ chunk(header) ‖ count u32 ‖ chunk(leaf) × count`
    /// (the record in the canonical encoding, chunks as in a certified block).
    pub fn to_bytes(&self) -> Vec<u8> {
        let record = Record {
            height: self.height,
            round: self.round,
            step: self.step,
            value: self.value,
            locked: self.locked,
            votes: self.votes.clone(),
        };
        let mut out = Vec::new();
        put_chunk(&mut out, &codec::encode(&record));
        match &self.locked_block {
            None => out.push(0),
            Some(b) => {
                out.push(1);
                put_chunk(&mut out, &b.header.to_bytes());
                encode_leaves(&b.leaves, &mut out);
            }
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<SignState, SignStateError> {
        if bytes.len() > SIGN_STATE_BYTES_MAX {
            return Err(SignStateError::TooLarge { len: bytes.len(), max: SIGN_STATE_BYTES_MAX });
        }
        let mut input = bytes;
        let record = take_chunk(&mut input, "sign record", SIGN_RECORD_BYTES_MAX)?;
        let r: Record = codec::decode("sign record", record, SIGN_RECORD_BYTES_MAX)?;
        let Some((&flag, rest)) = input.split_first() else { return Err(SignStateError::Flag(0xff)) };
        input = rest;
        let locked_block = match flag {
            0 => None,
            1 => {
                let header = take_chunk(&mut input, "locked header", HEADER_BYTES_MAX)?;
                let header = BlockHeader::from_bytes(header).map_err(BlockDecodeError::Header)?;
                let leaves = block::decode_leaves(&mut input, BLOCK_RECORDS_MAX_LIMIT as usize)?;
                Some(Arc::new(Block { header, leaves }))
            }
            f => return Err(SignStateError::Flag(f)),
        };
        if !input.is_empty() {
            return Err(SignStateError::Trailing(input.len()));
        }
        let id = locked_block.as_ref().map(|b| BlockId::of(&b.header));
        if id != r.locked.map(|(_, v)| v) {
            return Err(SignStateError::LockMismatch);
        }
        Ok(SignState {
            height: r.height,
            round: r.round,
            step: r.step,
            value: r.value,
            locked: r.locked,
            votes: r.votes,
            locked_block,
        })
    }
}

#[cfg(test)]
mod tests {
    use credence_ledger::hash::{Hash, HashOf};

    use super::*;

    fn id(b: u8) -> BlockId {
        BlockId { hash: HashOf::from_hash(Hash([b; 32])), tree_size: 1, root: Hash([b; 32]) }
    }

    fn state(step: Step, value: Option<BlockId>) -> SignState {
        SignState { height: 5, round: 2, step, value, locked: None, votes: vec![], locked_block: None }
    }

    #[test]
    fn permits_only_later_slots_or_the_same_vote() {
        let s = state(Step::Prevote, Some(id(1)));
        assert!(s.permits(5, 2, Step::Prevote, Some(id(1))), "same slot, same value: re-send");
        assert!(!s.permits(5, 2, Step::Prevote, Some(id(2))), "same slot, other value");
        assert!(!s.permits(5, 2, Step::Prevote, None), "same slot, nil instead");
        assert!(!s.permits(5, 2, Step::Propose, Some(id(1))), "earlier step");
        assert!(!s.permits(5, 1, Step::Precommit, None), "earlier round");
        assert!(!s.permits(4, 9, Step::Precommit, None), "earlier height");
        assert!(s.permits(5, 2, Step::Precommit, Some(id(2))));
        assert!(s.permits(5, 3, Step::Propose, Some(id(3))));
        assert!(s.permits(6, 0, Step::Propose, None));
        let p = state(Step::Propose, Some(id(1)));
        assert!(!p.permits(5, 2, Step::Propose, Some(id(1))), "a proposal is never signed twice");
        assert!(p.permits(5, 2, Step::Prevote, Some(id(1))));
    }

    #[test]
    fn round_trips_through_bytes_with_and_without_a_locked_block() {
        let votes = (0..SIGNED_VOTES_MAX as u32).map(|r| (r, VoteKind::Precommit, Some(id(3)))).collect();
        let s = SignState { votes, ..state(Step::Precommit, Some(id(3))) };
        assert_eq!(SignState::from_bytes(&s.to_bytes()), Ok(s.clone()));
        let header = BlockHeader {
            height: 5,
            prev: HashOf::from_hash(Hash([1; 32])),
            time_ms: 9,
            proposer: credence_ledger::ids::MemberName::parse("p", "val-00").unwrap(),
            tree_size: 0,
            tree_root: Hash(credence_ledger::merkle::empty_root()),
            validator_set: Hash([2; 32]),
        };
        let block = Arc::new(Block { header, leaves: vec![] });
        let lock = (2, BlockId::of(&block.header));
        let locked = SignState { locked: Some(lock), locked_block: Some(Arc::clone(&block)), ..s.clone() };
        assert_eq!(SignState::from_bytes(&locked.to_bytes()), Ok(locked.clone()));
        // The block must be the lock's, and nothing may follow.
        let wrong = SignState { locked: Some((2, id(9))), ..locked.clone() };
        assert_eq!(SignState::from_bytes(&wrong.to_bytes()), Err(SignStateError::LockMismatch));
        let mut trailing = locked.to_bytes();
        trailing.push(0);
        assert_eq!(SignState::from_bytes(&trailing), Err(SignStateError::Trailing(1)));
        assert!(SignState::from_bytes(&[0; 3]).is_err());
        assert!(SignState::from_bytes(&s.to_bytes()[..10]).is_err());
    }
}
