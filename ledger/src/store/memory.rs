//! In-memory store: the reference the durable store is tested against, and the store of simulations.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::{Head, IndexKey, Location, QUERY_LIMIT_MAX, Store, StoreError};
use crate::attestation::{AttestationId, Claim};
use crate::block::{BlockHeader, CertifiedBlock, Leaf, ValidBlock};
use crate::checkpoint::Checkpoint;
use crate::governance::GovState;
use crate::hash::Hash;
use crate::ids::{PatentNumber, Uscc};
use crate::loan_rules::{Fact, FactKey};
use crate::merkle::{MerkleError, NodeHash, NodeReader};
use crate::rules::{MemState, RecordMeta, StateView};

#[derive(Debug)]
pub struct MemStore {
    genesis_hash: Hash,
    blocks: Vec<CertifiedBlock>,
    /// First leaf index of each block, by height - 1.
    first_leaf: Vec<u64>,
    nodes: HashMap<(u8, u64), NodeHash>,
    ids: HashMap<AttestationId, Location>,
    enterprise: BTreeSet<(Uscc, u64)>,
    patent: BTreeSet<(PatentNumber, u64)>,
    attester: BTreeSet<(u16, u64)>,
    refers: BTreeSet<(AttestationId, u64)>,
    consents: BTreeSet<(Uscc, u64)>,
    readers: BTreeSet<(u16, u64)>,
    state: MemState,
    /// Governance at genesis (the state's until a block changes it).
    genesis_governance: Arc<GovState>,
}

impl MemStore {
    /// An empty store for the chain of `genesis`.
    pub fn new(genesis: &crate::genesis::Genesis) -> MemStore {
        MemStore {
            genesis_hash: genesis.hash(),
            blocks: Vec::new(),
            first_leaf: Vec::new(),
            nodes: HashMap::new(),
            ids: HashMap::new(),
            enterprise: BTreeSet::new(),
            patent: BTreeSet::new(),
            attester: BTreeSet::new(),
            refers: BTreeSet::new(),
            consents: BTreeSet::new(),
            readers: BTreeSet::new(),
            state: MemState::default(),
            genesis_governance: genesis.governance(),
        }
    }

    fn leaf_location(&self, index: u64) -> Option<(usize, usize)> {
        // The block holding leaf `index` is the last one whose first leaf is <= index.
        let b = self.first_leaf.partition_point(|f| *f <= index).checked_sub(1)?;
        let offset = usize::try_from(index - self.first_leaf[b]).ok()?;
        (offset < self.blocks[b].block.leaves.len()).then_some((b, offset))
    }
}

impl NodeReader for MemStore {
    fn node(&self, level: u8, index: u64) -> Result<NodeHash, MerkleError> {
        self.nodes.get(&(level, index)).copied().ok_or(MerkleError::MissingNode { level, index })
    }
}

impl StateView for MemStore {
    type Error = StoreError;
    fn next_sequence(&self, attester: u16) -> Result<u64, StoreError> {
        Ok(self.state.next_sequence(attester).unwrap_or_else(|e| match e {}))
    }
    fn record(&self, id: &AttestationId) -> Result<Option<RecordMeta>, StoreError> {
        Ok(self.state.record(id).unwrap_or_else(|e| match e {}))
    }
    fn active_pledge(&self, patent: &PatentNumber) -> Result<Option<AttestationId>, StoreError> {
        Ok(self.state.active_pledge(patent).unwrap_or_else(|e| match e {}))
    }
    fn governance(&self) -> Result<Option<Arc<GovState>>, StoreError> {
        Ok(self.state.governance.clone())
    }
    fn fact(&self, key: &FactKey) -> Result<Option<Fact>, StoreError> {
        Ok(self.state.fact(key).unwrap_or_else(|e| match e {}))
    }
}

impl Store for MemStore {
    fn genesis_hash(&self) -> Hash {
        self.genesis_hash
    }

    fn head(&self) -> Result<Option<Head>, StoreError> {
        Ok(self.blocks.last().map(|cb| {
            let h = &cb.block.header;
            Head {
                height: h.height,
                hash: h.hash(),
                time_ms: h.time_ms,
                tree_size: h.tree_size,
                tree_root: h.tree_root,
            }
        }))
    }

    fn commit(&mut self, vb: &ValidBlock) -> Result<(), StoreError> {
        let header = vb.header();
        let head = self.head()?;
        let head_height = head.map_or(0, |h| h.height);
        if header.height != head_height + 1 {
            return Err(StoreError::NotNext { head: head_height, got: header.height });
        }
        let expected_prev = head.map_or(self.genesis_hash, |h| *h.hash.hash());
        if *header.prev.hash() != expected_prev {
            return Err(StoreError::BrokenLink { height: header.height });
        }
        let first = head.map_or(0, |h| h.tree_size);
        let height = header.height;
        // Names are never reused, so the state after the block knows every attester.
        let gov = vb.delta().governance.clone().or_else(|| self.state.governance.clone());
        let gov = gov.unwrap_or_else(|| Arc::clone(&self.genesis_governance));
        for (offset, leaf) in vb.certified().block.leaves.iter().enumerate() {
            let leaf_index = first + offset as u64;
            self.ids.insert(leaf.id, Location { height, leaf_index });
            let claim = &leaf.attestation.body.claim;
            if let Some(e) = claim.enterprise() {
                self.enterprise.insert((*e, leaf_index));
            }
            if let Some(p) = claim.patent() {
                self.patent.insert((*p, leaf_index));
            }
            for r in claim.references() {
                self.refers.insert((r, leaf_index));
            }
            if let Claim::Consent(c) = claim {
                self.consents.insert((c.enterprise, leaf_index));
            }
            // R026: a query record's reader is a member (indexes are never reused).
            if let Claim::Query(q) = claim
                && let Some(m) = gov.member_index(&q.reader)
            {
                self.readers.insert((m, leaf_index));
            }
            if let Some(m) = gov.member_index(&leaf.attestation.body.attester) {
                self.attester.insert((m, leaf_index));
            }
        }
        for (level, index, hash) in vb.merkle_nodes() {
            self.nodes.insert((*level, *index), *hash);
        }
        self.state.apply(vb.delta());
        self.first_leaf.push(first);
        self.blocks.push(vb.certified().clone());
        debug_assert_eq!(self.head()?.map(|h| h.tree_size), Some(header.tree_size));
        Ok(())
    }

    fn header(&self, height: u64) -> Result<Option<BlockHeader>, StoreError> {
        Ok(self.block(height)?.map(|b| b.block.header))
    }

    fn certificate(&self, height: u64) -> Result<Option<Checkpoint>, StoreError> {
        Ok(self.block(height)?.map(|b| b.certificate))
    }

    fn block(&self, height: u64) -> Result<Option<CertifiedBlock>, StoreError> {
        let i = height.checked_sub(1).and_then(|i| usize::try_from(i).ok());
        Ok(i.and_then(|i| self.blocks.get(i)).cloned())
    }

    fn leaf(&self, index: u64) -> Result<Option<Leaf>, StoreError> {
        Ok(self.leaf_location(index).map(|(b, o)| self.blocks[b].block.leaves[o].clone()))
    }

    fn locate(&self, id: &AttestationId) -> Result<Option<Location>, StoreError> {
        Ok(self.ids.get(id).copied())
    }

    fn query(&self, key: IndexKey<'_>, after: Option<u64>, limit: usize) -> Result<Vec<u64>, StoreError> {
        let limit = limit.min(QUERY_LIMIT_MAX);
        let start = after.map_or(0, |a| a.saturating_add(1));
        if after == Some(u64::MAX) {
            return Ok(Vec::new());
        }
        Ok(match key {
            IndexKey::Enterprise(e) => {
                self.enterprise.range((*e, start)..=(*e, u64::MAX)).take(limit).map(|k| k.1).collect()
            }
            IndexKey::Patent(p) => self.patent.range((*p, start)..=(*p, u64::MAX)).take(limit).map(|k| k.1).collect(),
            IndexKey::Attester(m) => self.attester.range((m, start)..=(m, u64::MAX)).take(limit).map(|k| k.1).collect(),
            IndexKey::Refers(id) => {
                self.refers.range((*id, start)..=(*id, u64::MAX)).take(limit).map(|k| k.1).collect()
            }
            IndexKey::Consents(e) => {
                self.consents.range((*e, start)..=(*e, u64::MAX)).take(limit).map(|k| k.1).collect()
            }
            IndexKey::Reader(m) => self.readers.range((m, start)..=(m, u64::MAX)).take(limit).map(|k| k.1).collect(),
        })
    }
}
