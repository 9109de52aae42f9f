//! Signature checks of consensus messages against the genesis validator set's precomputed tables, one message or several at once.
//!
//! The validators are fixed at genesis, so [`Context`] keeps a [`KeySet`]: precomputed
//! tables per validator (a check is one precomputed multiscalar multiplication) and one
//! table over the whole set, with which several messages are checked as one batch
//! equation. The batch coefficients come from the batch itself, not from randomness, so
//! this stays a pure function. Verdicts are exactly those of `Vote::verify` and
//! `Proposal::verify` (ZIP-215, `credence_ledger::sig`); the tests below assert it.

use credence_ledger::codec;
use credence_ledger::sig::{Domain, KeySetItem, SigError, Signature, SignedBytes};
use credence_ledger::vote::{Proposal, Vote};

use super::types::{Context, Message, SignedProposal, SignedVote, ValidatorIndex};

/// The bytes a consensus message's signature covers, owned.
enum Bytes {
    /// A proposal or a prevote or nil precommit: `Domain` over the statement's encoding.
    Binary(Domain, Vec<u8>),
    /// A non-nil precommit: the checkpoint note text.
    Text(String),
}

impl Bytes {
    /// As `Proposal::sign` signs it (see `credence_ledger::vote`).
    fn proposal(p: &Proposal) -> Bytes {
        Bytes::Binary(Domain::Proposal, codec::encode(p))
    }

    /// As `Vote::sign` signs it: a non-nil precommit is checkpoint text.
    fn vote(ctx: &Context, v: &Vote) -> Bytes {
        match v.checkpoint_body(&ctx.origin) {
            Some(body) => Bytes::Text(body.to_text()),
            None => Bytes::Binary(Domain::Vote, codec::encode(v)),
        }
    }

    fn of(ctx: &Context, msg: &Message) -> Bytes {
        match msg {
            Message::Proposal(p) => Bytes::proposal(&p.proposal),
            Message::Vote(v) => Bytes::vote(ctx, &v.vote),
        }
    }

    fn signed<'a>(&'a self, ctx: &'a Context) -> SignedBytes<'a> {
        match self {
            Bytes::Binary(domain, body) => SignedBytes::Binary { domain: *domain, chain_id: &ctx.chain_id.0, body },
            Bytes::Text(text) => SignedBytes::Raw(text.as_bytes()),
        }
    }

    /// Checks `sig` over these bytes as validator `signer`'s.
    ///
    /// # Panics
    /// If `signer` is not a validator: callers check the index first.
    fn verify(&self, ctx: &Context, signer: ValidatorIndex, sig: &Signature) -> Result<(), SigError> {
        let key = ctx.keys.get(usize::from(signer)).unwrap_or_else(|| panic!("signer {signer} is a validator"));
        match self.signed(ctx) {
            SignedBytes::Binary { domain, chain_id, body } => key.verify(domain, chain_id, body, sig),
            SignedBytes::Raw(text) => key.verify_raw(text, sig),
        }
    }
}

fn signature(msg: &Message) -> &Signature {
    match msg {
        Message::Proposal(p) => &p.signature,
        Message::Vote(v) => &v.signature,
    }
}

/// Checks a proposal's signature as `proposer`'s (the one the rotation names for its round).
pub(crate) fn verify_proposal(ctx: &Context, proposer: ValidatorIndex, sp: &SignedProposal) -> Result<(), SigError> {
    verify_proposal_statement(ctx, proposer, &sp.proposal, &sp.signature)
}

/// [`verify_proposal`] of the signed statement alone (a compact proposal's).
pub(crate) fn verify_proposal_statement(
    ctx: &Context,
    proposer: ValidatorIndex,
    proposal: &Proposal,
    signature: &Signature,
) -> Result<(), SigError> {
    Bytes::proposal(proposal).verify(ctx, proposer, signature)
}

/// Checks a vote's signature as its sender's.
pub(crate) fn verify_vote(ctx: &Context, sv: &SignedVote) -> Result<(), SigError> {
    Bytes::vote(ctx, &sv.vote).verify(ctx, sv.validator, &sv.signature)
}

/// [`verify_proposal`] or [`verify_vote`] for several messages at once (one batch equation when there are two or
/// more); one verdict per message, in order, each equal to the single check's.
pub(crate) fn verify_all(ctx: &Context, msgs: &[(ValidatorIndex, &Message)]) -> Vec<Result<(), SigError>> {
    if let [(signer, msg)] = msgs {
        return vec![Bytes::of(ctx, msg).verify(ctx, *signer, signature(msg))];
    }
    let bytes: Vec<Bytes> = msgs.iter().map(|(_, m)| Bytes::of(ctx, m)).collect();
    let items: Vec<KeySetItem<'_>> = msgs
        .iter()
        .zip(&bytes)
        .map(|((signer, msg), b)| {
            assert!(usize::from(*signer) < ctx.n(), "signer {signer} is a validator");
            KeySetItem { signer: usize::from(*signer), msg: b.signed(ctx), sig: signature(msg) }
        })
        .collect();
    let verdicts = ctx.keys.verify_many(&items);
    assert_eq!(verdicts.len(), msgs.len(), "one verdict per message");
    verdicts
}

/// The demo consortium's context (4 validators) and each validator's key, in validator
/// order: a fixture for this module's tests and the machine's.
#[cfg(test)]
pub(crate) fn demo_context() -> (Context, Vec<credence_ledger::sig::SecretKey>) {
    let (genesis, keys) = credence_ledger::demo::genesis(5, 1_000).unwrap_or_else(|e| panic!("{e}"));
    let ctx = Context::new(&genesis);
    let keys: Vec<_> = ctx
        .validators
        .iter()
        .map(|v| {
            let k =
                keys.iter().find(|k| k.public() == v.key.public()).unwrap_or_else(|| panic!("{} has a key", v.name));
            credence_ledger::sig::SecretKey::from_seed(k.seed())
        })
        .collect();
    assert_eq!(keys.len(), 4);
    (ctx, keys)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use credence_ledger::block::{Block, BlockHeader};
    use credence_ledger::hash::{Hash, HashOf};
    use credence_ledger::merkle;
    use credence_ledger::sig::SecretKey;
    use credence_ledger::vote::{BlockId, Proposal, Vote, VoteKind};

    use super::*;
    use crate::types::{SignedProposal, SignedVote};

    /// Every kind of consensus message by each validator, with its signer.
    fn messages(ctx: &Context, keys: &[SecretKey]) -> Vec<(ValidatorIndex, Message)> {
        let header = BlockHeader {
            height: 3,
            prev: HashOf::from_hash(ctx.chain_id),
            time_ms: 5,
            proposer: ctx.validators[2].name.clone(),
            tree_size: 0,
            tree_root: Hash(merkle::empty_root()),
            validator_set: Hash([1; 32]),
        };
        let id = BlockId::of(&header);
        let block = Arc::new(Block { header, leaves: Vec::new() });
        let mut out = Vec::new();
        for round in 0..2u32 {
            let proposer = ctx.proposer(3, round);
            let proposal = Proposal { height: 3, round, block: id, valid_round: round.checked_sub(1) };
            let signature = proposal.sign(&ctx.chain_id, &keys[usize::from(proposer)]);
            out.push((proposer, Message::Proposal(SignedProposal { proposal, signature, block: Arc::clone(&block) })));
        }
        for v in 0..4u16 {
            for (kind, value) in [
                (VoteKind::Prevote, Some(id)),
                (VoteKind::Prevote, None),
                (VoteKind::Precommit, Some(id)),
                (VoteKind::Precommit, None),
            ] {
                let vote = Vote { height: 3, round: 1, kind, value };
                let name = ctx.validators[usize::from(v)].name.as_str();
                let signature = vote.sign(&ctx.origin, &ctx.chain_id, name, &keys[usize::from(v)]);
                out.push((v, Message::Vote(SignedVote { vote, validator: v, signature })));
            }
        }
        out
    }

    /// [`verify_proposal`] or [`verify_vote`], checked as `signer`'s.
    fn verify(ctx: &Context, signer: ValidatorIndex, msg: &Message) -> Result<(), SigError> {
        match msg {
            Message::Proposal(p) => verify_proposal(ctx, signer, p),
            Message::Vote(v) => verify_vote(ctx, &SignedVote { validator: signer, ..*v }),
        }
    }

    /// The reference verdict: the ledger's own `verify` of the statement.
    fn reference(ctx: &Context, signer: ValidatorIndex, msg: &Message) -> Result<(), SigError> {
        let key = &ctx.validators[usize::from(signer)].key;
        match msg {
            Message::Proposal(p) => p.proposal.verify(&ctx.chain_id, key, &p.signature),
            Message::Vote(v) => v.vote.verify(&ctx.origin, &ctx.chain_id, key, &v.signature),
        }
    }

    fn corrupt(msg: &mut Message, how: usize) {
        let sig = match msg {
            Message::Proposal(p) => &mut p.signature,
            Message::Vote(v) => &mut v.signature,
        };
        match how % 4 {
            0 => sig.0[40] ^= 1,    // S changed
            1 => sig.0[3] ^= 0x10,  // R changed (or not a point)
            2 => sig.0[63] |= 0x80, // S not canonical
            _ => sig.0[31] ^= 0x80, // R negated
        }
    }

    #[test]
    fn verdicts_equal_the_ledgers_on_valid_and_corrupted_messages() {
        let (ctx, keys) = demo_context();
        let valid = messages(&ctx, &keys);
        let mut all = valid.clone();
        for (i, (signer, msg)) in valid.iter().enumerate() {
            let mut bad = msg.clone();
            corrupt(&mut bad, i);
            all.push((*signer, bad));
            // Checked against a validator other than the one that signed it.
            all.push(((*signer + 1) % 4, msg.clone()));
        }
        let reference: Vec<_> = all.iter().map(|(s, m)| reference(&ctx, *s, m)).collect();
        assert_eq!(reference.iter().filter(|v| v.is_ok()).count(), valid.len(), "only the originals are valid");
        for ((signer, msg), expected) in all.iter().zip(&reference) {
            assert_eq!(verify(&ctx, *signer, msg), *expected, "single: {msg:?}");
        }
        // In one batch, in small groups (as a drained inbox would have them), and alone.
        let refs: Vec<(ValidatorIndex, &Message)> = all.iter().map(|(s, m)| (*s, m)).collect();
        assert_eq!(verify_all(&ctx, &refs), reference);
        for size in [1, 2, 3, 5] {
            for (chunk, expected) in refs.chunks(size).zip(reference.chunks(size)) {
                assert_eq!(verify_all(&ctx, chunk), expected, "groups of {size}");
            }
        }
        assert!(verify_all(&ctx, &[]).is_empty());
    }

    #[test]
    #[should_panic(expected = "is a validator")]
    fn a_signer_outside_the_set_is_a_caller_bug() {
        let (ctx, keys) = demo_context();
        let (_, msg) = &messages(&ctx, &keys)[0];
        let _ = verify(&ctx, 4, msg);
    }
}
