//! In-memory store: the reference the durable store is tested against, and the store of simulations.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::{BaseAt, FactVisitor, Head, IndexKey, Location, QUERY_LIMIT_MAX, Store, StoreError, fact_key_hash};
use crate::attestation::{AttestationId, Claim};
use crate::block::{BlockHeader, CertifiedBlock, Leaf, ValidBlock};
use crate::checkpoint::Checkpoint;
use crate::governance::GovState;
use crate::hash::Hash;
use crate::ids::{PatentNumber, Uscc};
use crate::loan_rules::{Fact, FactKey};
use crate::merkle::{MerkleError, NodeHash, NodeReader};
use crate::rules::{MemState, RecordMeta, StateView};
use crate::snapshot::{Base, Item, SnapshotError};

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
    /// The snapshot this store started from, if any: its header and certificate.
    base: Option<(BaseAt, BlockHeader, Checkpoint)>,
    /// The ids of the leaves below the base, in leaf order.
    base_ids: Vec<AttestationId>,
    /// The leaf index of each imported record (not located: its block is not held).
    base_index: HashMap<AttestationId, u64>,
    /// Imported facts by their key's hash (a snapshot carries no fact keys), until a block
    /// changes them; `state.facts` holds the facts blocks set since.
    base_facts: HashMap<[u8; 32], Fact>,
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
            base: None,
            base_ids: Vec::new(),
            base_index: HashMap::new(),
            base_facts: HashMap::new(),
        }
    }

    fn base_at(&self) -> Option<BaseAt> {
        self.base.as_ref().map(|b| b.0)
    }

    /// `Err(NotHeld)` if `height` is below the base (or, with `block`, at it).
    fn check_height(&self, height: u64, what: &str, block: bool) -> Result<(), StoreError> {
        match self.base_at() {
            Some(b) if height > 0 && (height < b.height || (block && height == b.height)) => {
                Err(b.not_held(format!("{what} {height}")))
            }
            _ => Ok(()),
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
        if let Some(f) = self.state.fact(key).unwrap_or_else(|e| match e {}) {
            return Ok(Some(f));
        }
        Ok(if self.base_facts.is_empty() { None } else { self.base_facts.get(&fact_key_hash(key)).cloned() })
    }
}

impl Store for MemStore {
    fn genesis_hash(&self) -> Hash {
        self.genesis_hash
    }

    fn head(&self) -> Result<Option<Head>, StoreError> {
        let last = self.blocks.last().map(|cb| &cb.block.header).or(self.base.as_ref().map(|b| &b.1));
        Ok(last.map(|h| Head {
            height: h.height,
            hash: h.hash(),
            time_ms: h.time_ms,
            tree_size: h.tree_size,
            tree_root: h.tree_root,
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
        if !self.base_facts.is_empty() {
            for (k, _) in &vb.delta().facts {
                self.base_facts.remove(&fact_key_hash(k));
            }
        }
        self.state.apply(vb.delta());
        self.first_leaf.push(first);
        self.blocks.push(vb.certified().clone());
        debug_assert_eq!(self.head()?.map(|h| h.tree_size), Some(header.tree_size));
        Ok(())
    }

    fn header(&self, height: u64) -> Result<Option<BlockHeader>, StoreError> {
        self.check_height(height, "header", false)?;
        if let Some((b, h, _)) = &self.base
            && b.height == height
        {
            return Ok(Some(h.clone()));
        }
        Ok(self.block(height)?.map(|b| b.block.header))
    }

    fn certificate(&self, height: u64) -> Result<Option<Checkpoint>, StoreError> {
        self.check_height(height, "certificate", false)?;
        if let Some((b, _, c)) = &self.base
            && b.height == height
        {
            return Ok(Some(c.clone()));
        }
        Ok(self.block(height)?.map(|b| b.certificate))
    }

    fn block(&self, height: u64) -> Result<Option<CertifiedBlock>, StoreError> {
        self.check_height(height, "block", true)?;
        let below = self.base_at().map_or(0, |b| b.height);
        let i = height.checked_sub(1 + below).and_then(|i| usize::try_from(i).ok());
        Ok(i.and_then(|i| self.blocks.get(i)).cloned())
    }

    fn leaf(&self, index: u64) -> Result<Option<Leaf>, StoreError> {
        if let Some(b) = self.base_at()
            && index < b.tree_size
        {
            return Err(b.not_held(format!("leaf {index}")));
        }
        Ok(self.leaf_location(index).map(|(b, o)| self.blocks[b].block.leaves[o].clone()))
    }

    fn locate(&self, id: &AttestationId) -> Result<Option<Location>, StoreError> {
        if let (Some(b), Some(i)) = (self.base_at(), self.base_index.get(id)) {
            return Err(b.not_held(format!("the block of record {id} (leaf {i})")));
        }
        Ok(self.ids.get(id).copied())
    }

    fn leaf_ids(&self, start: u64, count: usize, out: &mut Vec<AttestationId>) -> Result<(), StoreError> {
        let end = start.saturating_add(count as u64);
        let below = self.base_at().map_or(0, |b| b.tree_size);
        for i in start..end.min(below) {
            out.push(self.base_ids[i as usize]);
        }
        for i in start.max(below)..end {
            match self.leaf(i)? {
                Some(l) => out.push(l.id),
                None => return Err(StoreError::Corrupt { place: format!("leaves[{i}]"), reason: "missing".into() }),
            }
        }
        Ok(())
    }

    fn for_each_fact(&self, f: &mut FactVisitor<'_>) -> Result<(), StoreError> {
        let mut all: Vec<([u8; 32], Vec<u8>)> =
            self.state.facts.iter().map(|(k, v)| (fact_key_hash(k), crate::codec::encode(v))).collect();
        all.extend(self.base_facts.iter().map(|(k, v)| (*k, crate::codec::encode(v))));
        all.sort_unstable_by_key(|a| a.0);
        for (k, v) in &all {
            f(k, v)?;
        }
        Ok(())
    }

    fn base(&self) -> Option<BaseAt> {
        self.base_at()
    }

    fn import_snapshot(
        &mut self,
        base: &Base,
        items: &mut dyn Iterator<Item = Result<Item, SnapshotError>>,
    ) -> Result<(), StoreError> {
        if self.head()?.is_some() {
            return Err(StoreError::Import(
                "the store is not empty: a snapshot is imported only into a new store".into(),
            ));
        }
        let import = |e: SnapshotError| StoreError::Import(e.to_string());
        let mut state = MemState::default();
        let mut base_ids = Vec::new();
        let mut base_index = HashMap::new();
        let mut base_facts = HashMap::new();
        for item in items {
            match item.map_err(import)? {
                Item::Sequence(m, next) => {
                    state.sequences.insert(m, next);
                }
                Item::Record(i, id, meta) => {
                    base_ids.push(id);
                    base_index.insert(id, i);
                    state.records.insert(id, meta);
                }
                Item::Pledge(p, id) => {
                    state.pledges.insert(p, id);
                }
                Item::Governance(g) => state.governance = Some(g),
                Item::Fact(k, f) => {
                    base_facts.insert(k, f);
                }
            }
        }
        let at = BaseAt { height: base.header.height, tree_size: base.header.tree_size };
        if base_ids.len() as u64 != at.tree_size {
            return Err(StoreError::Import(format!(
                "{} records for a tree of {} leaves",
                base_ids.len(),
                at.tree_size
            )));
        }
        for (level, index, hash) in &base.frontier {
            self.nodes.insert((*level, *index), *hash);
        }
        self.state = state;
        self.base_ids = base_ids;
        self.base_index = base_index;
        self.base_facts = base_facts;
        self.base = Some((at, base.header.clone(), base.certificate.clone()));
        Ok(())
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
