//! Compact proposals: a round-0 proposal that names by id the records its receivers already hold, and carries only the rest whole.
//!
//! Every validator admits each record once, from its attester's node by gossip, before
//! it is proposed; a proposal that carried every record again cost each receiver a
//! decode, a copy through libp2p and a second look-up (docs/BENCHMARKS.md §Throughput).
//! The proposer names by id each record a peer sent it, and each record a client sent
//! it once [`CLIENT_RECORD_SHARED_AFTER_MS`] have passed (its gossip batch has gone
//! out); younger client records go whole. A receiver fills the ids from its mempool
//! ([`Filling`]); while some are missing (their gossip still on its way) it keeps the
//! proposal aside, if the proposer itself sent it, and tries again whenever its mempool
//! changes. Only a complete block
//! goes on, to the same leaf check against the header as a whole proposal.
//!
//! Liveness never depends on the ids: only fresh round-0 proposals are compact; the
//! machine's re-sends after a quiet spell and every later round carry whole blocks, and
//! a proposer without a polka `COMPACT_WHOLE_AFTER_MS` after proposing sends its proposal
//! whole (`crate::replica`). A receiver that cannot fill a compact proposal (a record its
//! full mempool refused, or holds under another signature of the same body) waits for
//! that, or prevotes nil when its propose timeout ends, as for a proposal that never came.

use std::sync::Arc;

use credence_ledger::attestation::AttestationId;
use credence_ledger::block::{Block, BlockHeader, Leaf};
use credence_ledger::sig::Signature;
use credence_ledger::vote::Proposal;

use crate::SignedProposal;
use crate::mempool::Mempool;

/// A record a client sent this node is named by id in its proposals only once this many
/// milliseconds have passed since its admission: its gossip batch has gone out (the node
/// asserts that its `GOSSIP_BATCH_WAIT` is shorter) and the peers have had time to admit it.
pub const CLIENT_RECORD_SHARED_AFTER_MS: u64 = 50;

/// One record of a compact proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompactItem {
    /// Named by id: the receiver takes it from its mempool.
    Id(AttestationId),
    /// Carried whole (canonical bytes, decoded).
    Full(Box<Leaf>),
}

impl CompactItem {
    pub fn id(&self) -> AttestationId {
        match self {
            CompactItem::Id(id) => *id,
            CompactItem::Full(leaf) => leaf.id,
        }
    }
}

/// A signed round-0 proposal whose block travels as its header and [`CompactItem`]s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactProposal {
    pub proposal: Proposal,
    /// By the proposer of (height, round 0).
    pub signature: Signature,
    pub header: BlockHeader,
    pub items: Vec<CompactItem>,
}

impl CompactProposal {
    /// `sp` with the records `pool` holds and peers have had time to get named by id
    /// (see the module documentation); `now_ms` is the proposer's wall clock.
    pub fn of(sp: &SignedProposal, pool: &Mempool, now_ms: u64) -> CompactProposal {
        let items = sp
            .block
            .leaves
            .iter()
            .map(|leaf| match pool.shared_by(&leaf.id, now_ms) {
                Some(bytes) if bytes == leaf.bytes.as_slice() => CompactItem::Id(leaf.id),
                _ => CompactItem::Full(Box::new(leaf.clone())),
            })
            .collect();
        CompactProposal { proposal: sp.proposal, signature: sp.signature, header: sp.block.header.clone(), items }
    }

    /// Records named by id.
    pub fn ids(&self) -> usize {
        self.items.iter().filter(|i| matches!(i, CompactItem::Id(_))).count()
    }
}

/// A compact proposal being filled from the mempool.
#[derive(Debug)]
pub struct Filling {
    pub compact: Arc<CompactProposal>,
    leaves: Vec<Option<Leaf>>,
    /// Indexes of the ids not found yet.
    missing: Vec<usize>,
}

impl Filling {
    /// Fills what `pool` holds now.
    pub fn new(compact: Arc<CompactProposal>, pool: &Mempool) -> Filling {
        let mut leaves = Vec::with_capacity(compact.items.len());
        let mut missing = Vec::new();
        for (i, item) in compact.items.iter().enumerate() {
            match item {
                CompactItem::Full(leaf) => leaves.push(Some((**leaf).clone())),
                CompactItem::Id(_) => {
                    leaves.push(None);
                    missing.push(i);
                }
            }
        }
        let mut filling = Filling { compact, leaves, missing };
        filling.refill(pool);
        filling
    }

    /// Takes from `pool` the ids still missing.
    pub fn refill(&mut self, pool: &Mempool) {
        let Filling { compact, leaves, missing } = self;
        missing.retain(|&i| {
            let found = pool.get(&compact.items[i].id()).map(|p| p.leaf.clone());
            let still = found.is_none();
            leaves[i] = found;
            still
        });
    }

    pub fn missing(&self) -> usize {
        self.missing.len()
    }

    /// The whole proposal, once nothing is missing (its leaves not yet matched to the
    /// header); the filling back otherwise.
    pub fn into_whole(self) -> Result<SignedProposal, Filling> {
        if !self.missing.is_empty() {
            return Err(self);
        }
        let Filling { compact, leaves, .. } = self;
        let leaves: Vec<Leaf> = leaves.into_iter().flatten().collect();
        debug_assert_eq!(leaves.len(), compact.items.len(), "nothing missing");
        let block = Arc::new(Block { header: compact.header.clone(), leaves });
        Ok(SignedProposal { proposal: compact.proposal, signature: compact.signature, block })
    }
}
