//! A bounded pool of equivocation evidence, kept until a committed block records it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use credence_ledger::attestation::Claim;
use credence_ledger::block::Block;
use credence_ledger::ids::MemberName;
use credence_ledger::vote::{Equivocation, Slot};

/// Pending evidence kept at most (further offences are dropped until some are committed).
pub const EVIDENCE_POOL_MAX: usize = 64;
/// Committed offences remembered, so that none is recorded twice by this node.
pub const COMMITTED_OFFENCES_MAX: usize = 4096;

/// Who signed twice, and where: (validator, height, round, slot).
pub type Offence = (MemberName, u64, u32, Slot);

pub fn offence(e: &Equivocation) -> Offence {
    let (height, round, slot) = e.first.statement.slot();
    (e.validator.clone(), height, round, slot)
}

#[derive(Debug, Default)]
pub struct EvidencePool {
    pending: BTreeMap<Offence, Equivocation>,
    committed: BTreeSet<Offence>,
    committed_order: VecDeque<Offence>,
}

impl EvidencePool {
    /// Keeps `e` unless its offence is known, already committed, or the pool is full.
    pub fn add(&mut self, e: Equivocation) -> bool {
        let key = offence(&e);
        if self.pending.len() >= EVIDENCE_POOL_MAX || self.committed.contains(&key) || self.pending.contains_key(&key) {
            return false;
        }
        self.pending.insert(key, e);
        true
    }

    /// Evidence to put in the next block, oldest offence first.
    pub fn pending(&self) -> impl Iterator<Item = &Equivocation> {
        self.pending.values()
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Notes the evidence a committed block records; it leaves the pool for good.
    pub fn on_commit(&mut self, block: &Block) {
        for leaf in &block.leaves {
            if let Claim::Equivocation(e) = &leaf.attestation.body.claim {
                let key = offence(e);
                self.pending.remove(&key);
                if self.committed.insert(key.clone()) {
                    self.committed_order.push_back(key);
                }
                if self.committed_order.len() > COMMITTED_OFFENCES_MAX
                    && let Some(old) = self.committed_order.pop_front()
                {
                    self.committed.remove(&old);
                }
            }
        }
    }
}
