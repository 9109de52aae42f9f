//! The double-sign guard: the durable record of the last signed statement and the lock, checked before every signature.
//!
//! A validator that restarts from this record never signs two different statements
//! for one (height, round, step): it signs only at a strictly later (height, round,
//! step), or the very same value again (Ed25519 signatures are deterministic, so the
//! re-sent signature is identical). The lock of Algorithm 1 (lines 38–39) travels in
//! the same record, so a restarted validator keeps it: forgetting a lock is as unsafe
//! as double-signing. So do the votes signed at the current height: a restarted
//! validator re-sends exactly those (peers may have lost them), and nothing else.

use credence_ledger::codec::{self, DecodeError};
use credence_ledger::vote::{BlockId, VoteKind};
use serde::{Deserialize, Serialize};

use super::types::Step;

/// The last statement signed, and the lock held, at `height`. The driver stores it
/// durably (and atomically) before the statement leaves the node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// Votes of one height kept in the record for re-sending.
pub const SIGNED_VOTES_MAX: usize = 32;
/// Encoded size bound: fixed fields plus [`SIGNED_VOTES_MAX`] votes of 81 bytes.
pub const SIGN_STATE_BYTES_MAX: usize = 4096;

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

    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<SignState, DecodeError> {
        codec::decode("sign state", bytes, SIGN_STATE_BYTES_MAX)
    }
}

#[cfg(test)]
mod tests {
    use credence_ledger::hash::{Hash, HashOf};

    use super::*;

    fn id(b: u8) -> BlockId {
        BlockId { hash: HashOf::from_hash(Hash([b; 32])), tree_size: 1, root: Hash([b; 32]) }
    }

    #[test]
    fn permits_only_later_slots_or_the_same_value() {
        let s = SignState { height: 5, round: 2, step: Step::Prevote, value: Some(id(1)), locked: None, votes: vec![] };
        assert!(s.permits(5, 2, Step::Prevote, Some(id(1))), "same slot, same value: re-send");
        assert!(!s.permits(5, 2, Step::Prevote, Some(id(2))), "same slot, other value");
        assert!(!s.permits(5, 2, Step::Prevote, None), "same slot, nil instead");
        assert!(!s.permits(5, 2, Step::Propose, Some(id(1))), "earlier step");
        assert!(!s.permits(5, 1, Step::Precommit, None), "earlier round");
        assert!(!s.permits(4, 9, Step::Precommit, None), "earlier height");
        assert!(s.permits(5, 2, Step::Precommit, Some(id(2))));
        let p = SignState { step: Step::Propose, ..s.clone() };
        assert!(!p.permits(5, 2, Step::Propose, Some(id(1))), "a proposal is never signed twice");
        assert!(p.permits(5, 2, Step::Prevote, Some(id(1))));
        assert!(s.permits(5, 3, Step::Propose, Some(id(3))));
        assert!(s.permits(6, 0, Step::Propose, None));
    }

    #[test]
    fn round_trips_through_bytes() {
        let votes = (0..SIGNED_VOTES_MAX as u32).map(|r| (r, VoteKind::Precommit, Some(id(3)))).collect();
        let s = SignState {
            height: 7,
            round: 1,
            step: Step::Precommit,
            value: Some(id(3)),
            locked: Some((1, id(3))),
            votes,
        };
        assert!(s.to_bytes().len() <= SIGN_STATE_BYTES_MAX);
        assert_eq!(SignState::from_bytes(&s.to_bytes()), Ok(s));
        assert!(SignState::from_bytes(&[0; 3]).is_err());
    }
}
