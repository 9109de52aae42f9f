//! The simulator's invariant checker: it sees every message sent and every block committed, and records violations.
//!
//! * Agreement: no two honest nodes commit different blocks at one height.
//! * No conflicting certificates: no two values get a quorum of precommits at one
//!   height, across all rounds and all validators (byzantine ones included), counting
//!   only the validators in force at that height (governance changes the set).
//! * Validity: every block an honest node decides or syncs passes
//!   `verify::verify_block` (reported by the driver through [`Observer::invalid`]).
//! * No double signing by honest validators, across crashes and restarts; no
//!   committed evidence accuses an honest validator.
//! * Governance agreement on witnesses: after each height, every honest node's governance
//!   holds the same outside-witness terms (names, keys, URLs, from and until heights), so
//!   every node submits each checkpoint to the same witnesses.
//! * Progress: checked by the run loop (stall and final deadline).

use std::collections::BTreeMap;

use credence_ledger::attestation::Claim;
use credence_ledger::block::{BlockHash, CertifiedBlock};
use credence_ledger::codec;
use credence_ledger::governance::WitnessTerm;
use credence_ledger::hash::Hash;
use credence_ledger::vote::{BlockId, Slot, Statement, Vote, VoteKind};

use crate::{Context, Message, ValidatorIndex};

/// Most violations of each kind kept in a report (the first is what matters).
const VIOLATIONS_KEPT: usize = 16;

/// Which nodes are validators at a height (by node index), and the quorum there.
pub type InForce = (Vec<bool>, usize);

#[derive(Debug)]
pub struct Observer {
    /// By node index (genesis validators, then joiners).
    honest: Vec<bool>,
    names: Vec<String>,
    /// Height → the set in force there, for heights an honest node committed.
    sets: BTreeMap<u64, InForce>,
    /// The set in force at the height after the highest commit: who must make progress.
    pub next_set: InForce,
    /// Height → block committed by the first honest node that got there.
    committed: BTreeMap<u64, BlockHash>,
    /// Statement digest per (validator, height, round, slot), honest validators only.
    signed: BTreeMap<(ValidatorIndex, u64, u32, Slot), Hash>,
    /// Precommit signers (by node) per (height, round, value).
    precommits: BTreeMap<(u64, u32, BlockId), Vec<bool>>,
    /// Height → the value that got a precommit quorum there.
    certified: BTreeMap<u64, BlockId>,
    /// Height → the witness terms in force at the next height by the first honest node
    /// that committed it, and that node.
    witness_terms: BTreeMap<u64, (Vec<WitnessTerm>, ValidatorIndex)>,
    pub safety: Vec<String>,
    pub evidence_committed: u64,
    /// Highest height any honest node committed, and when it first did.
    pub best_height: u64,
    pub best_at_ms: u64,
    /// Highest round any message was sent in.
    pub max_round: u32,
    /// PBTS: a committed block's time is at most this far after the real time (the
    /// honest clocks' largest drift plus the precision)...
    time_ahead_max_ms: u64,
    /// ...and at most this far before it.
    time_lag_max_ms: u64,
}

impl Observer {
    /// An observer of nodes named `names` (by node index) on a chain whose genesis
    /// validator set is `ctx`'s.
    pub fn new(honest: Vec<bool>, names: Vec<String>, ctx: &Context, time_lag_max_ms: u64) -> Observer {
        let genesis_set = names.iter().map(|n| ctx.validators.iter().any(|v| v.name.as_str() == n)).collect();
        Observer {
            sets: BTreeMap::new(),
            next_set: (genesis_set, ctx.quorum),
            max_round: 0,
            time_ahead_max_ms: ctx.time.precision_ms / 2 + ctx.time.precision_ms,
            time_lag_max_ms,
            honest,
            names,
            committed: BTreeMap::new(),
            signed: BTreeMap::new(),
            precommits: BTreeMap::new(),
            certified: BTreeMap::new(),
            witness_terms: BTreeMap::new(),
            safety: Vec::new(),
            evidence_committed: 0,
            best_height: 0,
            best_at_ms: 0,
        }
    }

    fn violation(&mut self, what: String) {
        if self.safety.len() < VIOLATIONS_KEPT {
            self.safety.push(what);
        }
    }

    /// A message leaves node `from`, signed by it (its own statement, or a byzantine variant).
    pub fn on_send(&mut self, from: ValidatorIndex, msg: &Message) {
        let statement = match msg {
            Message::Proposal(p) => Statement::Proposal(p.proposal),
            Message::Vote(v) => Statement::Vote(v.vote),
        };
        self.on_send_statement(from, statement);
    }

    /// A statement leaves node `from`, signed by it.
    pub fn on_send_statement(&mut self, from: ValidatorIndex, statement: Statement) {
        let signer = from;
        let (height, round, slot) = statement.slot();
        self.max_round = self.max_round.max(round);
        if self.honest[usize::from(signer)] {
            let digest = Hash::digest(&[&codec::encode(&statement)]);
            match self.signed.get(&(signer, height, round, slot)) {
                Some(d) if *d != digest => self.violation(format!(
                    "double signing: honest validator {signer} signed two different {slot:?} statements at height {height} round {round}"
                )),
                Some(_) => {}
                None => {
                    self.signed.insert((signer, height, round, slot), digest);
                }
            }
        }
        if let Statement::Vote(Vote { kind: VoteKind::Precommit, value: Some(id), .. }) = statement {
            let n = self.honest.len();
            let signers = self.precommits.entry((height, round, id)).or_insert_with(|| vec![false; n]);
            signers[usize::from(signer)] = true;
            self.check_certificate(height, round, id);
        }
    }

    /// Whether the precommits for `id` at (height, round) from validators in force
    /// there reach its quorum (once that height's set is known), and whether another
    /// value already did.
    fn check_certificate(&mut self, height: u64, round: u32, id: BlockId) {
        let (Some((members, quorum)), Some(signers)) =
            (self.sets.get(&height), self.precommits.get(&(height, round, id)))
        else {
            return;
        };
        let count = signers.iter().zip(members).filter(|(s, m)| **s && **m).count();
        if count < *quorum {
            return;
        }
        match self.certified.get(&height) {
            Some(other) if *other != id => self.violation(format!(
                "conflicting certificates at height {height}: quorums of precommits for blocks {} and {}",
                other.hash, id.hash
            )),
            Some(_) => {}
            None => {
                self.certified.insert(height, id);
            }
        }
    }

    /// An honest node stored `cb` (decided or synced) at virtual time `now_ms`; by its
    /// governance state, `at` is the set in force at that height and `next` at the next.
    pub fn on_commit(&mut self, node: ValidatorIndex, cb: &CertifiedBlock, now_ms: u64, at: InForce, next: InForce) {
        let h = &cb.block.header;
        let hash = h.hash();
        if let std::collections::btree_map::Entry::Vacant(e) = self.sets.entry(h.height) {
            e.insert(at);
            let keys: Vec<(u64, u32, BlockId)> = self
                .precommits
                .range((h.height, 0, BlockId::MIN)..)
                .take_while(|(k, _)| k.0 == h.height)
                .map(|(k, _)| *k)
                .collect();
            for (height, round, id) in keys {
                self.check_certificate(height, round, id);
            }
        }
        if h.height > self.best_height {
            self.next_set = next;
        }
        match self.committed.get(&h.height) {
            Some(other) if *other != hash => self.violation(format!(
                "agreement: node {node} committed block {hash} at height {}, another honest node committed {other}",
                h.height
            )),
            Some(_) => {}
            None => {
                self.committed.insert(h.height, hash);
                if h.time_ms > now_ms.saturating_add(self.time_ahead_max_ms)
                    || h.time_ms.saturating_add(self.time_lag_max_ms) < now_ms
                {
                    self.violation(format!(
                        "block time: height {} has time {} at real time {now_ms}, outside the PBTS bound of the honest clocks (-{} ms, +{} ms)",
                        h.height, h.time_ms, self.time_lag_max_ms, self.time_ahead_max_ms
                    ));
                }
                for leaf in &cb.block.leaves {
                    if let Claim::Equivocation(e) = &leaf.attestation.body.claim {
                        self.evidence_committed += 1;
                        let accused = self.names.iter().position(|n| n == e.validator.as_str());
                        if accused.is_some_and(|i| self.honest[i]) {
                            self.violation(format!(
                                "evidence at height {} accuses honest validator {}",
                                h.height, e.validator
                            ));
                        }
                    }
                }
            }
        }
        if h.height > self.best_height {
            self.best_height = h.height;
            self.best_at_ms = now_ms;
        }
    }

    /// After committing `height`, honest node `node`'s governance holds `terms` (every
    /// outside-witness term, possibly of a later head: a synced run is reported block by block
    /// once stored). As of the next height (terms begun by then, ends reached by then), they
    /// must be the ones every other honest node holds after that height.
    pub fn on_witness_terms(&mut self, node: ValidatorIndex, height: u64, terms: &[WitnessTerm]) {
        let terms = &terms_as_of(terms, height + 1);
        match self.witness_terms.get(&height) {
            Some((first, other)) if first.as_slice() != terms => {
                let what = format!(
                    "witness terms: after height {height} node {node} holds {}, node {other} held {}",
                    describe_terms(terms),
                    describe_terms(first)
                );
                self.violation(what);
            }
            Some(_) => {}
            None => {
                self.witness_terms.insert(height, (terms.to_vec(), node));
            }
        }
    }

    /// An honest node decided or received a block that fails the verification core.
    pub fn invalid(&mut self, node: ValidatorIndex, height: u64, reason: String) {
        self.violation(format!("validity: node {node}'s block at height {height} fails verification: {reason}"));
    }

    /// A validator's durable sign state moved backwards (across a restart, say): it
    /// could then sign a vote conflicting with one it already sent.
    pub fn sign_state_regressed(&mut self, node: ValidatorIndex, what: String) {
        self.violation(format!("sign state: node {node} persisted {what}"));
    }

    /// Commits in height order, for the final state hash.
    pub fn chain(&self) -> impl Iterator<Item = (&u64, &BlockHash)> {
        self.committed.iter()
    }

    /// Forgets per-height bookkeeping below `height` (bounded memory on long runs).
    pub fn prune_below(&mut self, height: u64) {
        self.signed.retain(|(_, h, _, _), _| *h >= height);
        self.precommits = self.precommits.split_off(&(height, 0, BlockId::MIN));
        self.certified = self.certified.split_off(&height);
        self.sets = self.sets.split_off(&height);
        self.witness_terms = self.witness_terms.split_off(&height);
    }
}

/// The witness terms a governance state held at `height`, from the terms of the same chain at
/// that height or later: the terms begun by `height`, each ended only if it ended by then.
pub fn terms_as_of(terms: &[WitnessTerm], height: u64) -> Vec<WitnessTerm> {
    terms
        .iter()
        .filter(|w| w.from_height <= height)
        .map(|w| WitnessTerm { until_height: w.until_height.filter(|u| *u <= height), ..w.clone() })
        .collect()
}

/// Witness terms for messages: `name key-prefix [from, until)`.
fn describe_terms(terms: &[WitnessTerm]) -> String {
    let one = |w: &WitnessTerm| {
        let until = w.until_height.map_or_else(|| "…".to_owned(), |u| u.to_string());
        format!("{} {} [{}, {until}) {}", w.name, &Hash(w.key.0).to_hex()[..8], w.from_height, w.url)
    };
    format!("[{}]", terms.iter().map(one).collect::<Vec<_>>().join("; "))
}

/// The smallest block id, for range bounds.
trait MinId {
    const MIN: BlockId;
}

impl MinId for BlockId {
    const MIN: BlockId =
        BlockId { hash: credence_ledger::hash::HashOf::from_hash(Hash::ZERO), tree_size: 0, root: Hash::ZERO };
}
