//! A zero-latency cluster: n consensus machines whose messages arrive instantly and in order, for the benchmark and focused tests.
//!
//! Timeouts fire only when no message is in flight (earliest first). Blocks are
//! either empty and trusted ([`Ledger::Off`]: the consensus logic alone, signing and
//! verifying every vote) or real ([`Ledger::On`]: workload attestations, proposals
//! checked by `verify_proposal`, decisions stored through `verify_block`).
//!
//! Messages reach a member one per step ([`Delivery::OneByOne`], the default) or, as a
//! driver draining its inbox would hand them over, all those queued for it up to its
//! next other input at once ([`Delivery::Inbox`], `Consensus::step_messages`: their
//! signatures checked as one batch).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use credence_ledger::block::{Block, BlockHeader, CertifiedBlock};
use credence_ledger::hash::{Hash, HashOf};
use credence_ledger::merkle;
use credence_ledger::rules::StateView;
use credence_ledger::store::{MemStore, Store};
use credence_ledger::verify::{self, Tip};

use super::chain::{SIM_GENESIS_TIME_MS, SimChain, Workload};
use crate::{Consensus, Effect, Input, Message, SignState, Signer, Timeout};

/// Whether blocks are real and checked by the verification core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ledger {
    Off,
    On,
}

#[derive(Debug)]
struct Member {
    consensus: Consensus,
    /// Last decided header (`Ledger::Off`) — the next block links to it.
    last: Option<BlockHeader>,
    store: MemStore,
    tip: Tip,
    sign_state: Option<SignState>,
    decided: u64,
}

/// How queued messages are handed to a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// One `Consensus::step` per message.
    OneByOne,
    /// Every message queued for the member, up to its next other input and at most
    /// [`INBOX_MAX`], in one `Consensus::step_messages`, in queue order.
    Inbox,
}

/// Most messages handed over at once with [`Delivery::Inbox`] (a driver's bound).
pub const INBOX_MAX: usize = 64;

/// n validators wired to each other with no latency.
#[derive(Debug)]
pub struct InstantCluster {
    chain: Arc<SimChain>,
    workload: Workload,
    ledger: Ledger,
    delivery: Delivery,
    members: Vec<Member>,
    queue: VecDeque<(usize, Input)>,
    timers: BTreeMap<(u64, u64), (usize, Timeout)>,
    now: u64,
    seq: u64,
    /// Every certified block any member decided, in order.
    pub decided: Vec<CertifiedBlock>,
}

impl InstantCluster {
    pub fn new(seed: u64, n: usize, ledger: Ledger) -> InstantCluster {
        let chain = Arc::new(SimChain::new(seed, n).unwrap_or_else(|e| panic!("{e}")));
        let workload = Workload::new(seed, &chain);
        let members = (0..n)
            .map(|i| {
                let signer = Signer { index: i as u16, key: chain.validator_key(i) };
                Member {
                    consensus: Consensus::new(Arc::clone(&chain.consensus), Some(signer), 1, None),
                    last: None,
                    store: MemStore::new(chain.genesis()),
                    tip: Tip::genesis(&chain.ledger),
                    sign_state: None,
                    decided: 0,
                }
            })
            .collect();
        let mut c = InstantCluster {
            chain,
            workload,
            ledger,
            delivery: Delivery::OneByOne,
            members,
            queue: VecDeque::new(),
            timers: BTreeMap::new(),
            now: SIM_GENESIS_TIME_MS + 1_000,
            seq: 0,
            decided: Vec::new(),
        };
        for i in 0..n {
            let effects = c.members[i].consensus.start();
            c.apply(i, effects);
        }
        c
    }

    /// Hands messages over as `delivery` says from now on.
    pub fn with_delivery(mut self, delivery: Delivery) -> InstantCluster {
        self.delivery = delivery;
        self
    }

    pub fn chain(&self) -> &SimChain {
        &self.chain
    }

    /// Heights every member has decided.
    pub fn min_decided(&self) -> u64 {
        self.members.iter().map(|m| m.decided).min().unwrap_or(0)
    }

    /// Runs until every member decided `heights` more heights; panics after a bound of steps.
    pub fn run_heights(&mut self, heights: u64) {
        let target = self.min_decided() + heights;
        let mut steps = 0u64;
        while self.min_decided() < target {
            steps += 1;
            assert!(steps < 1_000 * heights * self.members.len() as u64 + 10_000, "no progress");
            if let Some((to, input)) = self.queue.pop_front() {
                let inbox = self.delivery == Delivery::Inbox && matches!(input, Input::Proposal(_) | Input::Vote(_));
                let result = if inbox {
                    let msgs = self.drain_inbox(to, input);
                    Ok(self.members[to].consensus.step_messages(msgs).0)
                } else {
                    self.members[to].consensus.step(input)
                };
                if let Ok(effects) = result {
                    self.apply(to, effects);
                }
            } else if let Some(((at, _), (to, t))) = self.timers.pop_first() {
                self.now = self.now.max(at);
                if let Ok(effects) = self.members[to].consensus.step(Input::Timeout(t)) {
                    self.apply(to, effects);
                }
            } else {
                panic!("idle: no message and no timer");
            }
        }
    }

    /// `first` and the messages queued for `to` after it, up to `to`'s next other input
    /// (which must come after them) and at most [`INBOX_MAX`]; taken out of the queue.
    fn drain_inbox(&mut self, to: usize, first: Input) -> Vec<Message> {
        let mut msgs = vec![message_of(first).unwrap_or_else(|_| unreachable!("a message input"))];
        let mut i = 0;
        while i < self.queue.len() && msgs.len() < INBOX_MAX {
            if self.queue[i].0 != to {
                i += 1;
                continue;
            }
            if !matches!(self.queue[i].1, Input::Proposal(_) | Input::Vote(_)) {
                break;
            }
            let (_, input) = self.queue.remove(i).unwrap_or_else(|| unreachable!("index {i} is in the queue"));
            msgs.push(message_of(input).unwrap_or_else(|_| unreachable!("a message input")));
        }
        assert!((1..=INBOX_MAX).contains(&msgs.len()));
        msgs
    }

    fn apply(&mut self, from: usize, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::PersistSignState(s) => self.members[from].sign_state = Some(s),
                Effect::Broadcast(msg) => {
                    for to in (0..self.members.len()).filter(|to| *to != from) {
                        let input = match &msg {
                            Message::Proposal(p) => Input::Proposal(p.clone()),
                            Message::Vote(v) => Input::Vote(*v),
                        };
                        self.queue.push_back((to, input));
                    }
                }
                Effect::ScheduleTimeout { timeout, after_ms } => {
                    self.seq += 1;
                    self.timers.insert((self.now + after_ms, self.seq), (from, timeout));
                }
                Effect::BuildBlock { height, round } => {
                    let block = self.build(from, height);
                    self.queue.push_back((from, Input::BlockBuilt { height, round, block }));
                }
                Effect::ValidateBlock { height, id, block } => {
                    let m = &self.members[from];
                    let valid = match self.ledger {
                        Ledger::Off => true,
                        Ledger::On => {
                            verify::verify_proposal(&self.chain.ledger, &m.tip, &m.store, &block, &|_| false).is_ok()
                        }
                    };
                    self.queue.push_front((from, Input::BlockValidated { height, id, valid }));
                }
                Effect::Commit(cb) => {
                    let m = &mut self.members[from];
                    m.decided += 1;
                    m.last = Some(cb.block.header.clone());
                    if self.ledger == Ledger::On {
                        let vb = verify::verify_block(&self.chain.ledger, &m.tip, &m.store, (*cb).clone())
                            .unwrap_or_else(|e| panic!("decided block fails verification: {e}"));
                        m.store.commit(&vb).unwrap_or_else(|e| panic!("{e}"));
                        m.tip.advance(&vb);
                    }
                    if self.decided.len() < m.decided as usize {
                        self.decided.push(*cb);
                    }
                }
                Effect::Evidence(_) => {}
            }
        }
    }

    fn build(&mut self, from: usize, height: u64) -> Block {
        self.now += 1;
        let name = self.chain.consensus.validators[from].name.clone();
        let validator_set = self.chain.ledger.validator_set_hash();
        let m = &self.members[from];
        match self.ledger {
            Ledger::Off => {
                let prev = m.last.as_ref().map_or(HashOf::from_hash(self.chain.chain_id()), BlockHeader::hash);
                let header = BlockHeader {
                    height,
                    prev,
                    time_ms: self.now,
                    proposer: name,
                    tree_size: 0,
                    tree_root: Hash(merkle::empty_root()),
                    validator_set,
                };
                Block { header, leaves: Vec::new() }
            }
            Ledger::On => {
                let mut leaves = Vec::new();
                for (a, member, count) in self.workload.per_block(height) {
                    let next = m.store.next_sequence(member).unwrap_or(1);
                    for s in next..next + count {
                        leaves.push(self.workload.leaf(a, s));
                    }
                }
                let mut frontier = m.tip.frontier.clone();
                let mut scratch = Vec::new();
                for l in &leaves {
                    frontier.push_leaf_hash(l.leaf_hash(), &mut scratch).unwrap_or_else(|e| panic!("{e}"));
                }
                let header = BlockHeader {
                    height,
                    prev: m.tip.hash,
                    time_ms: self.now.max(m.tip.time_ms + 1),
                    proposer: name,
                    tree_size: frontier.size(),
                    tree_root: Hash(frontier.root()),
                    validator_set,
                };
                Block { header, leaves }
            }
        }
    }
}

/// The message an input carries, or the input back if it is not a message.
fn message_of(input: Input) -> Result<Message, Box<Input>> {
    match input {
        Input::Proposal(p) => Ok(Message::Proposal(p)),
        Input::Vote(v) => Ok(Message::Vote(v)),
        other => Err(Box::new(other)),
    }
}

#[cfg(test)]
mod tests {
    use credence_ledger::checkpoint;

    use super::*;

    /// Inbox delivery (signatures checked in batches) decides the same blocks as one
    /// message per step (the certificates may hold a different quorum of precommits:
    /// they arrive in another order), and every certificate verifies.
    #[test]
    fn inbox_delivery_decides_what_one_by_one_decides() {
        for n in [1, 4, 7] {
            let mut one = InstantCluster::new(3, n, Ledger::Off);
            let mut inbox = InstantCluster::new(3, n, Ledger::Off).with_delivery(Delivery::Inbox);
            one.run_heights(12);
            inbox.run_heights(12);
            assert_eq!(inbox.decided.len(), 12, "n = {n}");
            let blocks = |c: &InstantCluster| c.decided.iter().map(|cb| cb.block.header.hash()).collect::<Vec<_>>();
            assert!(blocks(&inbox) == blocks(&one), "n = {n}: the same blocks");
            for cb in &inbox.decided {
                let report = checkpoint::verify_quorum_strict(&cb.certificate, inbox.chain.ledger.verifier_keys());
                assert!(report.is_ok_and(|r| r.signers.len() >= inbox.chain.consensus.quorum));
            }
        }
    }

    #[test]
    fn inbox_takes_a_members_messages_up_to_its_next_other_input() {
        let mut c = InstantCluster::new(3, 4, Ledger::Off).with_delivery(Delivery::Inbox);
        // After start: member 0 (the proposer) was asked to build; nothing else queued for it.
        let m = |c: &InstantCluster, to: usize| c.queue.iter().filter(|(t, _)| *t == to).count();
        assert_eq!(m(&c, 0), 1);
        let vote = |c: &InstantCluster, by: usize| {
            let v = credence_ledger::vote::Vote {
                height: 1,
                round: 0,
                kind: credence_ledger::vote::VoteKind::Prevote,
                value: None,
            };
            let name = c.chain.consensus.validators[by].name.as_str();
            let signature =
                v.sign(&c.chain.consensus.origin, &c.chain.consensus.chain_id, name, &c.chain.validator_key(by));
            Input::Vote(crate::SignedVote { vote: v, validator: by as u16, signature })
        };
        let (v1, v2, v3) = (vote(&c, 1), vote(&c, 2), vote(&c, 3));
        c.queue.push_back((1, v1.clone()));
        c.queue.push_back((2, v2.clone()));
        c.queue.push_back((2, v3.clone()));
        c.queue.push_back((2, Input::Synced { height: 0 }));
        c.queue.push_back((2, v1.clone()));
        let first = vote(&c, 1);
        let msgs = c.drain_inbox(2, first);
        assert_eq!(msgs.len(), 3, "the first, then v2 and v3, stopping at the Synced input");
        assert_eq!(m(&c, 2), 2, "the Synced input and the vote after it stay queued");
        assert_eq!(m(&c, 1), 1, "other members' messages stay queued");
    }
}
