//! A zero-latency cluster: n production replicas ([`Replica`]) whose messages arrive instantly and in order, for the consensus benchmark and focused tests.
//!
//! Time advances only when no message is in flight, to the earliest moment a
//! replica asked to be woken. The genesis has no heartbeat, so a height starts as
//! soon as the last one commits. Blocks are empty ([`Ledger::Off`]: consensus,
//! block building, validation and commit with nothing in them) or carry workload
//! records submitted to every mempool ([`Ledger::On`]).
//!
//! Messages reach a member one per step ([`Delivery::OneByOne`], the default) or, as
//! the node's driver drains its inbox, all those queued for it at once up to
//! [`INBOX_MAX`] ([`Delivery::Inbox`]: their signatures checked as one batch).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use credence_ledger::block::CertifiedBlock;
use credence_ledger::genesis::TimeParams;
use credence_ledger::store::{MemStore, Store};

use super::chain::{SIM_GENESIS_TIME_MS, SimChain, Workload};
use crate::Message;
use crate::compact::CompactProposal;
use crate::mempool::{InForce, Mempool, MempoolLimits, Origin, Verifier, admit_batch};
use crate::replica::{Action, Clock, Identity, Replica};

/// Whether blocks carry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ledger {
    /// Empty blocks.
    Off,
    /// Workload records in every block.
    On,
}

/// How queued messages are handed to a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// One message per `Replica::on_messages`.
    OneByOne,
    /// Every message queued for the member, at most [`INBOX_MAX`], in one `on_messages`.
    Inbox,
}

/// Most messages handed over at once with [`Delivery::Inbox`] (the node driver's bound).
pub const INBOX_MAX: usize = 64;
/// Records per attester submitted for each height with [`Ledger::On`].
pub const RECORDS_PER_HEIGHT: u64 = 2;

/// What the cluster carries between members.
#[derive(Clone, Debug)]
enum Packet {
    Message(Message),
    Compact(Arc<CompactProposal>),
}

/// n validators wired to each other with no latency.
#[derive(Debug)]
pub struct InstantCluster {
    chain: Arc<SimChain>,
    workload: Workload,
    verifier: Verifier,
    ledger: Ledger,
    delivery: Delivery,
    members: Vec<Replica<MemStore>>,
    /// (to, from, what).
    queue: VecDeque<(usize, usize, Packet)>,
    now: u64,
    /// Heights a submission was made for; the next one's records follow on.
    submitted_for: u64,
    submissions: u64,
    /// Every certified block, in height order (from the first member to store it).
    pub decided: Vec<CertifiedBlock>,
}

impl InstantCluster {
    pub fn new(seed: u64, n: usize, ledger: Ledger) -> InstantCluster {
        let time = TimeParams { heartbeat_ms: 0, ..TimeParams::default() };
        let chain = Arc::new(SimChain::with_time(seed, n, time).unwrap_or_else(|e| panic!("{e}")));
        let workload = Workload::new(seed, &chain);
        let now = SIM_GENESIS_TIME_MS + 1_000;
        let clock = Clock { wall_ms: now, mono_ms: now };
        let members = (0..n)
            .map(|i| {
                let identity =
                    Identity { name: chain.consensus.validators[i].name.clone(), key: chain.validator_key(i) };
                let pool = Arc::new(Mutex::new(Mempool::new(Arc::clone(&chain.ledger), MempoolLimits::default())));
                let store = MemStore::new(chain.genesis());
                Replica::new(Arc::clone(&chain.ledger), store, pool, Some(identity), None, clock)
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        let mut c = InstantCluster {
            // The instant cluster's chain never changes governance: genesis keys stay in force.
            verifier: Verifier::new(Arc::clone(&chain.ledger), InForce::new(&chain.ledger)),
            chain,
            workload,
            ledger,
            delivery: Delivery::OneByOne,
            members,
            queue: VecDeque::new(),
            now,
            submitted_for: 0,
            submissions: 0,
            decided: Vec::new(),
        };
        for i in 0..n {
            let clock = c.clock();
            let actions = c.members[i].start(clock).unwrap_or_else(|e| panic!("{e}"));
            c.carry_out(i, actions);
        }
        c.submit();
        c
    }

    pub fn with_delivery(mut self, delivery: Delivery) -> InstantCluster {
        self.delivery = delivery;
        self
    }

    pub fn chain(&self) -> &SimChain {
        &self.chain
    }

    /// Each member's replica counters.
    pub fn replica_stats(&self) -> Vec<crate::replica::ReplicaStats> {
        self.members.iter().map(|m| m.stats).collect()
    }

    /// The lowest height every member stored.
    pub fn min_decided(&self) -> u64 {
        self.members.iter().map(|m| m.tip().height).min().unwrap_or(0)
    }

    fn clock(&self) -> Clock {
        Clock { wall_ms: self.now, mono_ms: self.now }
    }

    /// Runs until every member stored `heights` blocks.
    pub fn run_heights(&mut self, heights: u64) {
        let mut steps = 0u64;
        while self.min_decided() < heights {
            steps += 1;
            assert!(steps < 1_000_000 + 10_000 * heights, "no progress: {:?}", self.describe());
            if let Some((to, from, first)) = self.queue.pop_front() {
                let clock = self.clock();
                let first = match first {
                    Packet::Message(m) => m,
                    Packet::Compact(c) => {
                        let sender = &self.chain.consensus.validators[from].name;
                        let (actions, _) =
                            self.members[to].on_compact(clock, c, sender).unwrap_or_else(|e| panic!("{e}"));
                        self.carry_out(to, actions);
                        continue;
                    }
                };
                let msgs = match self.delivery {
                    Delivery::OneByOne => vec![first],
                    Delivery::Inbox => self.drain_inbox(to, first),
                };
                let (actions, _) = self.members[to].on_messages(clock, msgs).unwrap_or_else(|e| panic!("{e}"));
                self.carry_out(to, actions);
                continue;
            }
            // Nothing in flight: time moves to the earliest wake-up.
            let wake = self.members.iter().map(Replica::next_wake_mono_ms).min().unwrap_or(u64::MAX);
            self.now = wake.max(self.now + 1);
            for i in 0..self.members.len() {
                if self.members[i].next_wake_mono_ms() <= self.now {
                    let clock = self.clock();
                    let actions = self.members[i].on_tick(clock).unwrap_or_else(|e| panic!("{e}"));
                    self.carry_out(i, actions);
                }
            }
        }
    }

    fn describe(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| {
                let c = m.consensus();
                format!("h{} r{:?} {:?}", m.tip().height, c.map(|c| c.round()), c.map(|c| c.current_step()))
            })
            .collect()
    }

    /// `first` and every other message queued for `to`, in queue order, at most
    /// [`INBOX_MAX`] and none past a compact proposal for `to`.
    fn drain_inbox(&mut self, to: usize, first: Message) -> Vec<Message> {
        let mut msgs = vec![first];
        let mut rest = VecDeque::with_capacity(self.queue.len());
        let mut open = true;
        while let Some((t, f, p)) = self.queue.pop_front() {
            match p {
                Packet::Message(m) if t == to && open && msgs.len() < INBOX_MAX => msgs.push(m),
                p => {
                    open &= !(t == to && matches!(p, Packet::Compact(_)));
                    rest.push_back((t, f, p));
                }
            }
        }
        self.queue = rest;
        msgs
    }

    fn carry_out(&mut self, from: usize, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Broadcast(m) => {
                    for to in (0..self.members.len()).filter(|to| *to != from) {
                        self.queue.push_back((to, from, Packet::Message(m.clone())));
                    }
                }
                Action::BroadcastCompact(c) => {
                    for to in (0..self.members.len()).filter(|to| *to != from) {
                        self.queue.push_back((to, from, Packet::Compact(Arc::clone(&c))));
                    }
                }
                Action::Committed { height, .. } => {
                    if self.decided.len() as u64 + 1 == height
                        && let Ok(Some(cb)) = self.members[from].store().block(height)
                    {
                        self.decided.push(cb);
                        self.submit();
                    }
                }
                // Nothing is lost, nobody crashes, nobody falls behind.
                Action::PersistSignState(_) | Action::Resend(_) | Action::RequestSync(_) | Action::Notice(_) => {}
            }
        }
    }

    /// With [`Ledger::On`], the next records of each attester to every mempool.
    fn submit(&mut self) {
        if self.ledger == Ledger::Off {
            return;
        }
        let height = self.decided.len() as u64;
        if self.submitted_for > height {
            return;
        }
        self.submitted_for = height + 1;
        let k = self.submissions;
        self.submissions += 1;
        let mut items = Vec::new();
        for (a, _) in self.workload.attesters() {
            for s in 1 + k * RECORDS_PER_HEIGHT..=(k + 1) * RECORDS_PER_HEIGHT {
                items.push(self.workload.leaf(a, s).bytes);
            }
        }
        for i in 0..self.members.len() {
            let m = &self.members[i];
            let outcome = admit_batch(&self.verifier, m.store(), m.mempool(), items.clone(), Origin::Client, self.now);
            assert_eq!(outcome.invalid, 0, "workload records are valid");
            let clock = self.clock();
            let actions = self.members[i].on_pool_changed(clock).unwrap_or_else(|e| panic!("{e}"));
            self.carry_out(i, actions);
        }
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
            let mut one = InstantCluster::new(3, n, Ledger::On);
            let mut inbox = InstantCluster::new(3, n, Ledger::On).with_delivery(Delivery::Inbox);
            one.run_heights(12);
            inbox.run_heights(12);
            assert!(inbox.decided.len() >= 12, "n = {n}");
            let blocks =
                |c: &InstantCluster| c.decided.iter().take(12).map(|cb| cb.block.header.hash()).collect::<Vec<_>>();
            assert!(blocks(&inbox) == blocks(&one), "n = {n}: the same blocks");
            let with_records = inbox.decided.iter().filter(|cb| !cb.block.leaves.is_empty()).count();
            assert!(with_records >= 4, "n = {n}: the workload reaches the chain ({with_records} blocks with records)");
            for cb in &inbox.decided {
                let report = checkpoint::verify_quorum_strict(
                    &cb.certificate,
                    &inbox.chain.ledger.genesis_roster().verifier_keys,
                );
                assert!(report.is_ok_and(|r| r.signers.len() >= inbox.chain.consensus.quorum));
            }
        }
    }

    #[test]
    fn inbox_takes_a_members_messages_in_order_and_leaves_the_others() {
        let mut c = InstantCluster::new(3, 4, Ledger::Off).with_delivery(Delivery::Inbox);
        c.queue.clear();
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
            Message::Vote(crate::SignedVote { vote: v, validator: by as u16, signature })
        };
        let (v1, v2, v3) = (vote(&c, 1), vote(&c, 2), vote(&c, 3));
        c.queue.push_back((1, 0, Packet::Message(v1.clone())));
        c.queue.push_back((2, 0, Packet::Message(v2.clone())));
        c.queue.push_back((2, 0, Packet::Message(v3.clone())));
        let msgs = c.drain_inbox(2, v1.clone());
        assert_eq!(msgs, vec![v1.clone(), v2, v3], "the first, then the member's queued ones in order");
        assert_eq!(c.queue.len(), 1, "other members' messages stay queued");
        for _ in 0..2 * INBOX_MAX {
            c.queue.push_back((2, 0, Packet::Message(v1.clone())));
        }
        assert_eq!(c.drain_inbox(2, v1.clone()).len(), INBOX_MAX, "bounded");
    }
}
