//! Signed consensus statements (votes and proposals) and equivocation evidence: their canonical bytes, signatures and checks.
//!
//! The consensus engine (`credence-node`) signs these statements; the ledger rules
//! check equivocation evidence built from them, so their format lives in this crate
//! and in docs/encoding.md §10.
//!
//! * A **proposal** is signed under [`Domain::Proposal`] over its canonical bytes.
//! * A **prevote**, and a **nil precommit**, are signed under [`Domain::Vote`].
//! * A **non-nil precommit** is the validator's C2SP signed-note signature over the
//!   checkpoint text of the block (see [`crate::checkpoint`]): 2f+1 of them are the
//!   block's commit certificate as they stand, with no second signing round.
//!
//! Every signature is bound to the chain: binary statements through the genesis hash
//! in the signed message, checkpoint text through its origin line and block hash
//! (whose chain of `prev` links ends at the genesis hash).

use serde::{Deserialize, Serialize};

use crate::block::{BlockHash, BlockHeader};
use crate::checkpoint::{self, CheckpointBody};
use crate::codec;
use crate::governance::GovState;
use crate::hash::Hash;
use crate::ids::MemberName;
use crate::sig::{Domain, SecretKey, SigError, Signature, VerifyingKey};

/// What a vote or proposal names: the block hash plus the two tree fields a checkpoint
/// states, so that a precommit's signature can be checked without the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BlockId {
    pub hash: BlockHash,
    pub tree_size: u64,
    pub root: Hash,
}

impl BlockId {
    pub fn of(header: &BlockHeader) -> BlockId {
        BlockId { hash: header.hash(), tree_size: header.tree_size, root: header.tree_root }
    }

    /// The checkpoint text validators sign to precommit this block at `height` and `round`.
    /// Equals [`BlockHeader::checkpoint_body`] of the block's header.
    pub fn checkpoint_body(&self, origin: &str, height: u64, round: u32) -> CheckpointBody {
        CheckpointBody {
            origin: origin.to_owned(),
            tree_size: self.tree_size,
            root: self.root.0,
            height,
            round,
            block_hash: *self.hash.bytes(),
        }
    }
}

/// The two voting steps of a Tendermint round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum VoteKind {
    Prevote,
    Precommit,
}

/// A prevote or precommit for a block (`Some`) or for nothing (`None`, "nil").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Vote {
    pub height: u64,
    pub round: u32,
    pub kind: VoteKind,
    pub value: Option<BlockId>,
}

impl Vote {
    /// The checkpoint text a non-nil precommit signs; `None` for votes signed as binary messages.
    pub fn checkpoint_body(&self, origin: &str) -> Option<CheckpointBody> {
        match (self.kind, &self.value) {
            (VoteKind::Precommit, Some(id)) => Some(id.checkpoint_body(origin, self.height, self.round)),
            _ => None,
        }
    }

    /// Signs as validator `name`: a non-nil precommit is a checkpoint signature
    /// ([`checkpoint::sign`]), anything else a [`Domain::Vote`] message.
    pub fn sign(&self, origin: &str, chain_id: &Hash, name: &str, key: &SecretKey) -> Signature {
        match self.checkpoint_body(origin) {
            Some(body) => checkpoint::sign(&body, name, key).signature,
            None => key.sign(Domain::Vote, &chain_id.0, &codec::encode(self)),
        }
    }

    pub fn verify(&self, origin: &str, chain_id: &Hash, key: &VerifyingKey, sig: &Signature) -> Result<(), SigError> {
        match self.checkpoint_body(origin) {
            Some(body) => key.verify_raw(body.to_text().as_bytes(), sig),
            None => key.verify(Domain::Vote, &chain_id.0, &codec::encode(self), sig),
        }
    }
}

/// The signed part of a block proposal: the proposer of `round` offers `block`,
/// which had a polka (2f+1 prevotes) in `valid_round` if that is `Some`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Proposal {
    pub height: u64,
    pub round: u32,
    pub block: BlockId,
    pub valid_round: Option<u32>,
}

impl Proposal {
    pub fn sign(&self, chain_id: &Hash, key: &SecretKey) -> Signature {
        key.sign(Domain::Proposal, &chain_id.0, &codec::encode(self))
    }

    pub fn verify(&self, chain_id: &Hash, key: &VerifyingKey, sig: &Signature) -> Result<(), SigError> {
        key.verify(Domain::Proposal, &chain_id.0, &codec::encode(self), sig)
    }
}

/// A statement a validator signs during consensus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Statement {
    Vote(Vote),
    Proposal(Proposal),
}

/// Which of a round's signing slots a statement fills; a validator signs each slot once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Slot {
    Proposal,
    Prevote,
    Precommit,
}

impl Statement {
    /// (height, round, slot): two different statements with the same key are an equivocation.
    pub fn slot(&self) -> (u64, u32, Slot) {
        match self {
            Statement::Vote(v) => {
                let slot = match v.kind {
                    VoteKind::Prevote => Slot::Prevote,
                    VoteKind::Precommit => Slot::Precommit,
                };
                (v.height, v.round, slot)
            }
            Statement::Proposal(p) => (p.height, p.round, Slot::Proposal),
        }
    }

    pub fn verify(&self, origin: &str, chain_id: &Hash, key: &VerifyingKey, sig: &Signature) -> Result<(), SigError> {
        match self {
            Statement::Vote(v) => v.verify(origin, chain_id, key, sig),
            Statement::Proposal(p) => p.verify(chain_id, key, sig),
        }
    }
}

/// A statement with its signature, as it travelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedStatement {
    pub statement: Statement,
    pub signature: Signature,
}

/// Proof that `validator` signed two different statements for one slot (height,
/// round, and proposal, prevote or precommit). Canonical: `first`'s encoding sorts
/// strictly before `second`'s, so one offence pair has exactly one record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Equivocation {
    pub validator: MemberName,
    pub first: SignedStatement,
    pub second: SignedStatement,
}

/// Why equivocation evidence does not prove an offence.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum EvidenceError {
    #[error("'{0}' is not a validator")]
    NotValidator(String),
    #[error("the two statements are not for one height, round and step")]
    DifferentSlots,
    #[error("the two statements must differ, the first sorting before the second (canonical order)")]
    NotCanonical,
    #[error("{which} statement: {reason}")]
    Signature { which: &'static str, reason: SigError },
}

impl Equivocation {
    /// Evidence from two conflicting statements in either order; `None` if they do not conflict.
    pub fn new(validator: MemberName, a: SignedStatement, b: SignedStatement) -> Option<Equivocation> {
        if a.statement.slot() != b.statement.slot() {
            return None;
        }
        let (ea, eb) = (codec::encode(&a.statement), codec::encode(&b.statement));
        match ea.cmp(&eb) {
            std::cmp::Ordering::Less => Some(Equivocation { validator, first: a, second: b }),
            std::cmp::Ordering::Greater => Some(Equivocation { validator, first: b, second: a }),
            std::cmp::Ordering::Equal => None,
        }
    }

    /// Checks that this proves an offence on the chain whose genesis hash is `chain_id`
    /// and checkpoint origin `origin`: `validator` was in the validator set certifying
    /// the statements' height (the history in `gov`), the statements fill one slot,
    /// differ, are in canonical order, and both signatures are valid under the key the
    /// validator held in that set.
    pub fn check(&self, gov: &GovState, origin: &str, chain_id: &Hash) -> Result<(), EvidenceError> {
        let (height, _, _) = self.first.statement.slot();
        let public = gov
            .epoch_at(height)
            .and_then(|e| e.validators.iter().find(|(n, _)| *n == self.validator))
            .map(|(_, k)| *k)
            .ok_or_else(|| EvidenceError::NotValidator(self.validator.to_string()))?;
        if self.first.statement.slot() != self.second.statement.slot() {
            return Err(EvidenceError::DifferentSlots);
        }
        if codec::encode(&self.first.statement) >= codec::encode(&self.second.statement) {
            return Err(EvidenceError::NotCanonical);
        }
        let key = VerifyingKey::new(&public).map_err(|reason| EvidenceError::Signature { which: "first", reason })?;
        for (which, s) in [("first", &self.first), ("second", &self.second)] {
            s.statement
                .verify(origin, chain_id, &key, &s.signature)
                .map_err(|reason| EvidenceError::Signature { which, reason })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attestation::{Attestation, AttestationBody, Claim};
    use crate::demo;
    use crate::genesis::Genesis;
    use crate::hash::HashOf;
    use crate::rules::{self, MemState, Rejection, RuleError};

    fn id(n: u8) -> BlockId {
        BlockId { hash: HashOf::from_hash(Hash([n; 32])), tree_size: 3, root: Hash([n; 32]) }
    }

    struct Fixture {
        genesis: Genesis,
        keys: Vec<SecretKey>,
    }

    impl Fixture {
        fn new() -> Fixture {
            let (genesis, keys) = demo::genesis(9, demo::EXAMPLE_GENESIS_TIME_MS).unwrap();
            Fixture { genesis, keys }
        }
        /// Member `i`'s name and key.
        fn member(&self, i: usize) -> (&MemberName, &SecretKey) {
            (&self.genesis.members[i].name, &self.keys[i])
        }
        fn validator(&self) -> usize {
            self.genesis.members.iter().position(|m| m.validator).unwrap()
        }
        fn non_validator(&self) -> usize {
            self.genesis.members.iter().position(|m| !m.validator).unwrap()
        }
        fn signed_vote(&self, who: usize, v: Vote) -> SignedStatement {
            let (name, key) = self.member(who);
            let sig = v.sign(&self.genesis.checkpoint_origin, &self.genesis.hash(), name.as_str(), key);
            SignedStatement { statement: Statement::Vote(v), signature: sig }
        }
        fn evidence(&self, who: usize, kind: VoteKind) -> Equivocation {
            let a = Vote { height: 7, round: 2, kind, value: Some(id(1)) };
            let b = Vote { value: Some(id(2)), ..a };
            let name = self.member(who).0.clone();
            Equivocation::new(name, self.signed_vote(who, a), self.signed_vote(who, b)).unwrap()
        }
        fn check(&self, e: &Equivocation) -> Result<(), EvidenceError> {
            e.check(&self.genesis.governance(), &self.genesis.checkpoint_origin, &self.genesis.hash())
        }
    }

    #[test]
    fn precommit_signatures_are_checkpoint_signatures() {
        let f = Fixture::new();
        let v = f.validator();
        let (name, key) = f.member(v);
        let vote = Vote { height: 4, round: 1, kind: VoteKind::Precommit, value: Some(id(5)) };
        let sig = vote.sign(&f.genesis.checkpoint_origin, &f.genesis.hash(), name.as_str(), key);
        let body = id(5).checkpoint_body(&f.genesis.checkpoint_origin, 4, 1);
        assert_eq!(checkpoint::sign(&body, name.as_str(), key).signature, sig);
        let vk = VerifyingKey::new(&key.public()).unwrap();
        assert_eq!(vote.verify(&f.genesis.checkpoint_origin, &f.genesis.hash(), &vk, &sig), Ok(()));
        // A nil precommit and a prevote are binary Vote-domain messages, not checkpoint text.
        let nil = Vote { value: None, ..vote };
        assert!(nil.checkpoint_body(&f.genesis.checkpoint_origin).is_none());
        let prevote = Vote { kind: VoteKind::Prevote, ..vote };
        let psig = prevote.sign(&f.genesis.checkpoint_origin, &f.genesis.hash(), name.as_str(), key);
        assert_ne!(psig, sig);
        assert!(vote.verify(&f.genesis.checkpoint_origin, &f.genesis.hash(), &vk, &psig).is_err());
        // Bound to the chain: another genesis hash fails.
        assert!(prevote.verify(&f.genesis.checkpoint_origin, &Hash([1; 32]), &vk, &psig).is_err());
    }

    #[test]
    fn block_id_matches_the_header_checkpoint() {
        let mut b = demo::ChainBuilder::new(3, demo::EXAMPLE_GENESIS_TIME_MS).unwrap();
        let vb = b.next_block(2).unwrap();
        let h = vb.header();
        let origin = &b.genesis().checkpoint_origin;
        assert_eq!(BlockId::of(h).checkpoint_body(origin, h.height, 3), h.checkpoint_body(b.genesis(), 3));
    }

    #[test]
    fn valid_evidence_is_accepted_for_votes_and_proposals() {
        let f = Fixture::new();
        let v = f.validator();
        assert_eq!(f.check(&f.evidence(v, VoteKind::Prevote)), Ok(()));
        assert_eq!(f.check(&f.evidence(v, VoteKind::Precommit)), Ok(()));
        let (name, key) = f.member(v);
        let p = Proposal { height: 3, round: 0, block: id(1), valid_round: None };
        let q = Proposal { block: id(2), ..p };
        let s = |p: Proposal| SignedStatement {
            statement: Statement::Proposal(p),
            signature: p.sign(&f.genesis.hash(), key),
        };
        let e = Equivocation::new(name.clone(), s(p), s(q)).unwrap();
        assert_eq!(f.check(&e), Ok(()));
    }

    #[test]
    fn evidence_that_proves_nothing_is_refused() {
        let f = Fixture::new();
        let v = f.validator();
        let good = f.evidence(v, VoteKind::Prevote);
        // Not a validator.
        let outsider = f.non_validator();
        assert!(matches!(f.check(&f.evidence(outsider, VoteKind::Prevote)), Err(EvidenceError::NotValidator(_))));
        // Another validator's name on this validator's signatures.
        let other = f.genesis.members.iter().rposition(|m| m.validator).unwrap();
        assert_ne!(other, v);
        let renamed = Equivocation { validator: f.member(other).0.clone(), ..good.clone() };
        assert!(matches!(f.check(&renamed), Err(EvidenceError::Signature { which: "first", .. })));
        // Different slots are no conflict.
        let a = f.signed_vote(v, Vote { height: 7, round: 2, kind: VoteKind::Prevote, value: None });
        let b = f.signed_vote(v, Vote { height: 7, round: 3, kind: VoteKind::Prevote, value: Some(id(1)) });
        assert!(Equivocation::new(f.member(v).0.clone(), a, b).is_none());
        let forced = Equivocation { validator: f.member(v).0.clone(), first: a, second: b };
        assert_eq!(f.check(&forced), Err(EvidenceError::DifferentSlots));
        // The same statement twice, or the pair out of canonical order.
        let same = Equivocation { second: good.first, ..good.clone() };
        assert_eq!(f.check(&same), Err(EvidenceError::NotCanonical));
        let swapped = Equivocation { first: good.second, second: good.first, ..good.clone() };
        assert_eq!(f.check(&swapped), Err(EvidenceError::NotCanonical));
        // A forged second signature.
        let mut forged = good.clone();
        forged.second.signature.0[0] ^= 1;
        assert!(matches!(f.check(&forged), Err(EvidenceError::Signature { which: "second", .. })));
    }

    #[test]
    fn ledger_rules_accept_evidence_from_validators_only() {
        let f = Fixture::new();
        let chain = f.genesis.hash();
        let state = MemState::default();
        let record = |attester: usize, e: Equivocation| -> Attestation {
            let (name, key) = f.member(attester);
            AttestationBody {
                attester: name.clone(),
                sequence: 1,
                issued_at_ms: 1,
                claim: Claim::Equivocation(Box::new(e)),
            }
            .sign(key, &chain)
        };
        let v = f.validator();
        let reporter = f.genesis.members.iter().rposition(|m| m.validator).unwrap();
        let ok = record(reporter, f.evidence(v, VoteKind::Precommit));
        assert!(rules::check_attestation(&f.genesis, &state, 1, 10, &ok.id(), &ok).is_ok());
        // Only validators report evidence.
        let by_outsider = record(f.non_validator(), f.evidence(v, VoteKind::Precommit));
        assert!(matches!(
            rules::check_attestation(&f.genesis, &state, 1, 10, &by_outsider.id(), &by_outsider),
            Err(RuleError::Record { rejection: Rejection::RoleNotPermitted { .. }, .. })
        ));
        // Evidence that proves nothing is R023.
        let mut bad = f.evidence(v, VoteKind::Precommit);
        bad.first.signature.0[5] ^= 1;
        let bad = record(reporter, bad);
        let err = rules::check_attestation(&f.genesis, &state, 1, 10, &bad.id(), &bad).unwrap_err();
        assert!(matches!(&err, RuleError::Record { rejection: Rejection::Evidence(_), .. }));
        assert!(err.to_string().contains("R023"), "{err}");
        // Round trip through the attestation encoding.
        assert_eq!(Attestation::from_bytes(&ok.to_bytes()), Ok(ok));
    }
}
