//! Vote bookkeeping for one height: per validator, round and kind at most two votes (a second one is an equivocation), tallied per value over distinct validators.
//!
//! Algorithm 1 counts messages per (sender, content): a validator that sent two
//! different prevotes counts towards both values (each count is over distinct
//! senders, and `∗` counts a sender once). Keeping the second vote matters for
//! liveness: an equivocator can otherwise plant a polka, and so a lock, at one
//! honest node that the others can never reproduce. A third value from the same
//! validator adds nothing and is dropped, which bounds memory.
//!
//! Bounds: a round holds at most 2n prevotes and 2n precommits. Rounds up to
//! `round_p + 1` are always admitted; beyond that each validator may open at most
//! [`CATCHUP_ROUNDS_PER_VALIDATOR`] rounds (as CometBFT's catch-up rounds), so a
//! byzantine validator cannot make a node track unboundedly many rounds, while
//! messages of honest validators that are ahead still reach the f+1 rule (line 55).

use std::collections::BTreeMap;

use credence_ledger::sig::Signature;
use credence_ledger::vote::{BlockId, VoteKind};

use super::types::ValidatorIndex;

/// Rounds above `round_p + 1` one validator may open.
pub const CATCHUP_ROUNDS_PER_VALIDATOR: usize = 2;
/// Votes kept per validator, round and kind: the first, and one conflicting.
pub const VOTES_PER_SLOT_MAX: usize = 2;

/// A counted vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoteRecord {
    pub value: Option<BlockId>,
    pub signature: Signature,
}

/// What adding a vote did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Added {
    /// The validator's first vote in this slot.
    First,
    /// A second, different vote: an equivocation against this first one.
    Conflict(VoteRecord),
    /// Already have this value from this validator, or two other values already.
    Ignored,
}

/// Votes of one kind in one round.
#[derive(Clone, Debug)]
struct KindVotes {
    /// Per validator, in arrival order.
    slots: Vec<Vec<VoteRecord>>,
    /// Distinct validators with a vote of this kind.
    total: usize,
    /// Distinct validators per value; at most 2n values.
    by_value: Vec<(Option<BlockId>, usize)>,
}

impl KindVotes {
    fn new(n: usize) -> KindVotes {
        KindVotes { slots: vec![Vec::new(); n], total: 0, by_value: Vec::new() }
    }

    fn count(&self, value: &Option<BlockId>) -> usize {
        self.by_value.iter().find(|(v, _)| v == value).map_or(0, |(_, c)| *c)
    }

    fn add(&mut self, v: usize, record: VoteRecord) -> Added {
        let slot = &mut self.slots[v];
        if slot.iter().any(|r| r.value == record.value) || slot.len() >= VOTES_PER_SLOT_MAX {
            return Added::Ignored;
        }
        let first = slot.first().copied();
        slot.push(record);
        if first.is_none() {
            self.total += 1;
        }
        match self.by_value.iter_mut().find(|(val, _)| *val == record.value) {
            Some((_, c)) => *c += 1,
            None => self.by_value.push((record.value, 1)),
        }
        debug_assert!(self.total <= self.slots.len());
        first.map_or(Added::First, Added::Conflict)
    }
}

/// The votes of one round.
#[derive(Clone, Debug)]
pub struct RoundVotes {
    prevotes: KindVotes,
    precommits: KindVotes,
    /// Validators with any message (proposal or vote) in this round, for line 55.
    senders: Vec<bool>,
    sender_count: usize,
}

impl RoundVotes {
    fn new(n: usize) -> RoundVotes {
        RoundVotes {
            prevotes: KindVotes::new(n),
            precommits: KindVotes::new(n),
            senders: vec![false; n],
            sender_count: 0,
        }
    }

    fn kind(&self, kind: VoteKind) -> &KindVotes {
        match kind {
            VoteKind::Prevote => &self.prevotes,
            VoteKind::Precommit => &self.precommits,
        }
    }

    /// Distinct validators that voted `kind` for `value` (`None` = nil).
    pub fn count(&self, kind: VoteKind, value: &Option<BlockId>) -> usize {
        self.kind(kind).count(value)
    }

    /// Distinct validators that voted `kind` for anything (`∗` in Algorithm 1).
    pub fn total(&self, kind: VoteKind) -> usize {
        self.kind(kind).total
    }

    /// A non-nil value with votes of `kind` from at least `quorum` validators.
    pub fn quorum_value(&self, kind: VoteKind, quorum: usize) -> Option<BlockId> {
        self.kind(kind).by_value.iter().find(|(v, c)| v.is_some() && *c >= quorum).and_then(|(v, _)| *v)
    }

    pub fn sender_count(&self) -> usize {
        self.sender_count
    }

    /// Every kept vote of `kind`: (validator, record).
    pub fn all(&self, kind: VoteKind) -> impl Iterator<Item = (usize, &VoteRecord)> {
        self.kind(kind).slots.iter().enumerate().flat_map(|(i, s)| s.iter().map(move |r| (i, r)))
    }

    /// The votes of `kind` for `value`, by validator index (one per validator).
    pub fn voters(&self, kind: VoteKind, value: Option<BlockId>) -> impl Iterator<Item = (usize, &VoteRecord)> {
        self.all(kind).filter(move |(_, r)| r.value == value)
    }

    fn mark_sender(&mut self, v: usize) {
        if !self.senders[v] {
            self.senders[v] = true;
            self.sender_count += 1;
        }
    }
}

/// All votes of the current height.
#[derive(Clone, Debug)]
pub struct VoteBook {
    n: usize,
    rounds: BTreeMap<u32, RoundVotes>,
}

impl VoteBook {
    pub fn new(n: usize) -> VoteBook {
        VoteBook { n, rounds: BTreeMap::new() }
    }

    pub fn round(&self, round: u32) -> Option<&RoundVotes> {
        self.rounds.get(&round)
    }

    pub fn rounds(&self) -> impl DoubleEndedIterator<Item = (&u32, &RoundVotes)> {
        self.rounds.iter()
    }

    /// Whether a message of `validator` for `round` may be tracked while at `current`.
    pub fn admits(&self, round: u32, validator: ValidatorIndex, current: u32) -> bool {
        let v = usize::from(validator);
        if v >= self.n {
            return false;
        }
        let horizon = current.saturating_add(1);
        if round <= horizon {
            return true;
        }
        let mut opened = 0;
        for (r, rv) in self.rounds.range(horizon + 1..) {
            if rv.senders[v] {
                if *r == round {
                    return true;
                }
                opened += 1;
            }
        }
        opened < CATCHUP_ROUNDS_PER_VALIDATOR
    }

    /// Whether this exact vote is already kept (then it need not be verified again).
    pub fn has(&self, round: u32, kind: VoteKind, validator: ValidatorIndex, value: &Option<BlockId>) -> bool {
        self.rounds
            .get(&round)
            .and_then(|rv| rv.kind(kind).slots.get(usize::from(validator)))
            .is_some_and(|s| s.iter().any(|r| r.value == *value))
    }

    /// Whether this validator's slot is full (a further value would be ignored).
    pub fn slot_full(&self, round: u32, kind: VoteKind, validator: ValidatorIndex) -> bool {
        self.rounds
            .get(&round)
            .and_then(|rv| rv.kind(kind).slots.get(usize::from(validator)))
            .is_some_and(|s| s.len() >= VOTES_PER_SLOT_MAX)
    }

    /// Counts a vote whose signature was checked.
    pub fn add(&mut self, round: u32, kind: VoteKind, validator: ValidatorIndex, record: VoteRecord) -> Added {
        let n = self.n;
        let rv = self.rounds.entry(round).or_insert_with(|| RoundVotes::new(n));
        let v = usize::from(validator);
        let added = match kind {
            VoteKind::Prevote => rv.prevotes.add(v, record),
            VoteKind::Precommit => rv.precommits.add(v, record),
        };
        if added != Added::Ignored {
            rv.mark_sender(v);
        }
        added
    }

    /// Notes that `validator` sent a proposal in `round` (it counts for line 55).
    pub fn mark_sender(&mut self, round: u32, validator: ValidatorIndex) {
        let n = self.n;
        self.rounds.entry(round).or_insert_with(|| RoundVotes::new(n)).mark_sender(usize::from(validator));
    }
}

#[cfg(test)]
mod tests {
    use credence_ledger::hash::{Hash, HashOf};

    use super::*;

    fn id(b: u8) -> BlockId {
        BlockId { hash: HashOf::from_hash(Hash([b; 32])), tree_size: 0, root: Hash::ZERO }
    }

    fn rec(value: Option<BlockId>) -> VoteRecord {
        VoteRecord { value, signature: Signature([0; 64]) }
    }

    #[test]
    fn tallies_per_value_and_kind() {
        let mut book = VoteBook::new(4);
        assert_eq!(book.add(0, VoteKind::Prevote, 0, rec(Some(id(1)))), Added::First);
        book.add(0, VoteKind::Prevote, 1, rec(Some(id(1))));
        book.add(0, VoteKind::Prevote, 2, rec(None));
        book.add(0, VoteKind::Precommit, 0, rec(Some(id(1))));
        let r = book.round(0).unwrap();
        assert_eq!(r.count(VoteKind::Prevote, &Some(id(1))), 2);
        assert_eq!(r.count(VoteKind::Prevote, &None), 1);
        assert_eq!(r.total(VoteKind::Prevote), 3);
        assert_eq!(r.total(VoteKind::Precommit), 1);
        assert_eq!(r.quorum_value(VoteKind::Prevote, 2), Some(id(1)));
        assert_eq!(r.quorum_value(VoteKind::Prevote, 3), None);
        assert_eq!(r.sender_count(), 3);
        assert!(book.has(0, VoteKind::Prevote, 2, &None));
        assert!(!book.has(0, VoteKind::Precommit, 2, &None));
    }

    #[test]
    fn an_equivocator_counts_once_per_value_and_once_in_the_total() {
        let mut book = VoteBook::new(4);
        book.add(0, VoteKind::Prevote, 3, rec(None));
        assert_eq!(book.add(0, VoteKind::Prevote, 3, rec(None)), Added::Ignored, "duplicate");
        assert_eq!(book.add(0, VoteKind::Prevote, 3, rec(Some(id(1)))), Added::Conflict(rec(None)));
        assert_eq!(book.add(0, VoteKind::Prevote, 3, rec(Some(id(2)))), Added::Ignored, "a third value");
        assert!(book.slot_full(0, VoteKind::Prevote, 3));
        let r = book.round(0).unwrap();
        assert_eq!(r.count(VoteKind::Prevote, &None), 1);
        assert_eq!(r.count(VoteKind::Prevote, &Some(id(1))), 1);
        assert_eq!(r.count(VoteKind::Prevote, &Some(id(2))), 0);
        assert_eq!(r.total(VoteKind::Prevote), 1, "∗ counts distinct validators");
        assert_eq!(r.all(VoteKind::Prevote).count(), 2);
    }

    #[test]
    fn each_validator_opens_at_most_two_catchup_rounds() {
        let mut book = VoteBook::new(4);
        assert!(!book.admits(0, 4, 0), "not a validator");
        assert!(book.admits(1, 3, 0), "round_p + 1 is always admitted");
        assert!(book.admits(50, 3, 0));
        book.add(50, VoteKind::Prevote, 3, rec(None));
        book.add(60, VoteKind::Prevote, 3, rec(None));
        assert!(book.admits(50, 3, 0), "an opened round stays admitted");
        assert!(!book.admits(70, 3, 0), "a third catch-up round is refused");
        assert!(book.admits(70, 2, 0), "other validators have their own allowance");
        assert!(book.admits(70, 3, 59), "rounds near the current one are always admitted");
    }
}
