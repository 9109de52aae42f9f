//! Test-only misbehaviour of a validator — equivocate, propose invalid blocks, replay old messages — so end-to-end tests can show that honest nodes keep safety and liveness and put the evidence on the ledger.
//!
//! A node runs in a byzantine mode only when its config says `byzantine = "..."` AND its
//! chain id starts with [`TEST_CHAIN_PREFIX`] (what `credence testnet` writes); any other
//! chain refuses the setting at start. The honest consensus machine keeps running; this
//! module only rewrites what the driver broadcasts for it.

use std::collections::VecDeque;
use std::sync::Arc;

use credence_ledger::hash::Hash;
use credence_ledger::sig::SecretKey;
use credence_ledger::verify::ChainContext;
use credence_ledger::vote::{BlockId, Proposal};

use crate::consensus::{Message, SignedProposal, SignedVote};

/// Chains on which a byzantine mode may be switched on.
pub const TEST_CHAIN_PREFIX: &str = "credence-testnet";
/// Old messages kept for [`Mode::Replay`].
pub const REPLAY_MESSAGES_MAX: usize = 256;

/// How the validator misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Every vote is followed by a conflicting one (nil for a value, a made-up value for
    /// nil); every proposal by a second proposal of another block.
    Equivocate,
    /// Its proposals carry a block whose Merkle root is wrong.
    InvalidBlocks,
    /// With every message it sends, it also re-sends one it sent at an earlier height.
    Replay,
}

impl Mode {
    pub const NAMES: &'static [&'static str] = &["equivocate", "invalid-blocks", "replay"];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Equivocate => "equivocate",
            Mode::InvalidBlocks => "invalid-blocks",
            Mode::Replay => "replay",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "equivocate" => Some(Mode::Equivocate),
            "invalid-blocks" => Some(Mode::InvalidBlocks),
            "replay" => Some(Mode::Replay),
            _ => None,
        }
    }
}

/// A misbehaving validator's outbox.
#[derive(Debug)]
pub struct Byzantine {
    mode: Mode,
    name: String,
    key: SecretKey,
    /// What it sent, oldest first, at most [`REPLAY_MESSAGES_MAX`].
    sent: VecDeque<Message>,
}

impl Byzantine {
    pub fn new(mode: Mode, name: String, key: SecretKey) -> Byzantine {
        Byzantine { mode, name, key, sent: VecDeque::new() }
    }

    /// What to broadcast in place of `m`, a message the honest machine produced.
    pub fn outgoing(&mut self, ctx: &ChainContext, m: &Message) -> Vec<Message> {
        let out = match (self.mode, m) {
            (Mode::Equivocate, Message::Vote(v)) => vec![m.clone(), Message::Vote(self.conflicting_vote(ctx, v))],
            (Mode::Equivocate, Message::Proposal(p)) => {
                vec![m.clone(), Message::Proposal(self.reproposed(ctx, p, |h| h.time_ms += 1))]
            }
            (Mode::InvalidBlocks, Message::Proposal(p)) => {
                vec![Message::Proposal(self.reproposed(ctx, p, |h| h.tree_root.0[0] ^= 1))]
            }
            (Mode::Replay, _) => {
                let mut out = vec![m.clone()];
                if let Some(old) = self.sent.iter().find(|o| o.height() < m.height()) {
                    out.push(old.clone());
                }
                out
            }
            _ => vec![m.clone()],
        };
        if self.sent.len() == REPLAY_MESSAGES_MAX {
            self.sent.pop_front();
        }
        self.sent.push_back(m.clone());
        debug_assert!(self.sent.len() <= REPLAY_MESSAGES_MAX);
        out
    }

    /// The same slot (height, round, kind), another value, properly signed.
    fn conflicting_vote(&self, ctx: &ChainContext, v: &SignedVote) -> SignedVote {
        let mut vote = v.vote;
        vote.value = match vote.value {
            Some(_) => None,
            None => Some(BlockId {
                hash: credence_ledger::hash::HashOf::from_hash(Hash([0xB7; 32])),
                tree_size: 0,
                root: Hash([0xB7; 32]),
            }),
        };
        let signature = vote.sign(&ctx.genesis.checkpoint_origin, &ctx.chain_id, &self.name, &self.key);
        SignedVote { vote, validator: v.validator, signature }
    }

    /// The proposal's block with `change` applied to its header, proposed and signed anew.
    fn reproposed(
        &self,
        ctx: &ChainContext,
        p: &SignedProposal,
        change: impl FnOnce(&mut credence_ledger::block::BlockHeader),
    ) -> SignedProposal {
        let mut block = (*p.block).clone();
        change(&mut block.header);
        let proposal = Proposal { block: BlockId::of(&block.header), ..p.proposal };
        let signature = proposal.sign(&ctx.chain_id, &self.key);
        SignedProposal { proposal, signature, block: Arc::new(block) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::chain::SimChain;
    use credence_ledger::block::{Block, BlockHeader};
    use credence_ledger::hash::HashOf;
    use credence_ledger::sig::VerifyingKey;
    use credence_ledger::vote::{Vote, VoteKind};

    fn setup() -> (SimChain, Byzantine, VerifyingKey) {
        let chain = SimChain::new(5, 4).unwrap();
        let name = chain.consensus.validators[1].name.to_string();
        let vk = VerifyingKey::new(&chain.validator_key(1).public()).unwrap();
        let b = Byzantine::new(Mode::Equivocate, name, chain.validator_key(1));
        (chain, b, vk)
    }

    fn proposal(chain: &SimChain, b: &Byzantine, height: u64) -> Message {
        let g = chain.genesis();
        let header = BlockHeader {
            height,
            prev: HashOf::from_hash(g.hash()),
            time_ms: g.genesis_time_ms + 1000,
            proposer: g.members[0].name.clone(),
            tree_size: 0,
            tree_root: Hash(credence_ledger::merkle::empty_root()),
            validator_set: g.validator_set_hash(),
        };
        let proposal = Proposal { height, round: 0, block: BlockId::of(&header), valid_round: None };
        let signature = proposal.sign(&chain.ledger.chain_id, &b.key);
        Message::Proposal(SignedProposal { proposal, signature, block: Arc::new(Block { header, leaves: Vec::new() }) })
    }

    #[test]
    fn equivocation_sends_a_second_validly_signed_vote_or_proposal_for_the_same_slot() {
        let (chain, mut b, vk) = setup();
        let ctx = &chain.ledger;
        let vote = Vote { height: 3, round: 1, kind: VoteKind::Prevote, value: None };
        let signature = vote.sign(&ctx.genesis.checkpoint_origin, &ctx.chain_id, &b.name, &b.key);
        let out = b.outgoing(ctx, &Message::Vote(SignedVote { vote, validator: 1, signature }));
        assert_eq!(out.len(), 2);
        let Message::Vote(second) = &out[1] else { panic!("a vote") };
        assert_eq!((second.vote.height, second.vote.round, second.vote.kind), (3, 1, VoteKind::Prevote));
        assert_ne!(second.vote.value, vote.value);
        second.vote.verify(&ctx.genesis.checkpoint_origin, &ctx.chain_id, &vk, &second.signature).unwrap();

        let p = proposal(&chain, &b, 3);
        let out = b.outgoing(ctx, &p);
        let (Message::Proposal(first), Message::Proposal(second)) = (&out[0], &out[1]) else { panic!("proposals") };
        assert_eq!((first.proposal.height, first.proposal.round), (second.proposal.height, second.proposal.round));
        assert_ne!(first.proposal.block, second.proposal.block);
        assert_eq!(second.proposal.block, BlockId::of(&second.block.header));
        second.proposal.verify(&ctx.chain_id, &vk, &second.signature).unwrap();
    }

    #[test]
    fn invalid_block_mode_proposes_a_wrong_root_and_replay_resends_older_heights_within_bounds() {
        let (chain, _, _) = setup();
        let ctx = &chain.ledger;
        let mut bad = Byzantine::new(Mode::InvalidBlocks, "v".into(), chain.validator_key(1));
        let p = proposal(&chain, &bad, 2);
        let out = bad.outgoing(ctx, &p);
        let (Message::Proposal(orig), [Message::Proposal(sent)]) = (&p, out.as_slice()) else { panic!("one proposal") };
        assert_ne!(sent.block.header.tree_root, orig.block.header.tree_root);

        let mut replay = Byzantine::new(Mode::Replay, "v".into(), chain.validator_key(1));
        assert_eq!(replay.outgoing(ctx, &proposal(&chain, &replay, 1)).len(), 1, "nothing older yet");
        for h in 2..(REPLAY_MESSAGES_MAX as u64 + 10) {
            let out = replay.outgoing(ctx, &proposal(&chain, &replay, h));
            assert_eq!(out.len(), 2);
            assert!(out[1].height() < h);
        }
        assert_eq!(replay.sent.len(), REPLAY_MESSAGES_MAX);
    }
}
