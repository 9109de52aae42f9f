//! A zero-latency cluster: n consensus machines whose messages arrive instantly and in order, for the benchmark and focused tests.
//!
//! Timeouts fire only when no message is in flight (earliest first). Blocks are
//! either empty and trusted ([`Ledger::Off`]: the consensus logic alone, signing and
//! verifying every vote) or real ([`Ledger::On`]: workload attestations, proposals
//! checked by `verify_proposal`, decisions stored through `verify_block`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use credence_ledger::block::{Block, BlockHeader, CertifiedBlock};
use credence_ledger::hash::{Hash, HashOf};
use credence_ledger::merkle;
use credence_ledger::rules::StateView;
use credence_ledger::store::{MemStore, Store};
use credence_ledger::verify::{self, Tip};

use super::chain::{SIM_GENESIS_TIME_MS, SimChain, Workload};
use crate::consensus::{Consensus, Effect, Input, Message, SignState, Signer, Timeout};

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

/// n validators wired to each other with no latency.
#[derive(Debug)]
pub struct InstantCluster {
    chain: Arc<SimChain>,
    workload: Workload,
    ledger: Ledger,
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
                if let Ok(effects) = self.members[to].consensus.step(input) {
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
