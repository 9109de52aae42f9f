//! The node's store as the replica core sees it: the shared store behind its lock, one short read lock per call.
//!
//! The API reads the same store concurrently. Lock order (ARCHITECTURE.md, "Locks"):
//! the mempool, then the store; only the driver's replica writes the store, and it
//! never holds the mempool while it does.

use credence_ledger::attestation::AttestationId;
use credence_ledger::block::{BlockHeader, CertifiedBlock, Leaf, ValidBlock};
use credence_ledger::checkpoint::Checkpoint;
use credence_ledger::hash::Hash;
use credence_ledger::ids::PatentNumber;
use credence_ledger::merkle::{MerkleError, NodeHash, NodeReader};
use credence_ledger::rules::{RecordMeta, StateView};
use credence_ledger::store::{Head, IndexKey, Location, Store, StoreError};

use crate::api::SharedStore;

/// [`SharedStore`] as a [`Store`].
#[derive(Clone)]
pub struct LockedStore(pub SharedStore);

impl std::fmt::Debug for LockedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LockedStore")
    }
}

impl LockedStore {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, dyn Store + Send + Sync> {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl StateView for LockedStore {
    type Error = StoreError;
    fn next_sequence(&self, attester: u16) -> Result<u64, StoreError> {
        self.read().next_sequence(attester)
    }
    fn record(&self, id: &AttestationId) -> Result<Option<RecordMeta>, StoreError> {
        self.read().record(id)
    }
    fn active_pledge(&self, patent: &PatentNumber) -> Result<Option<AttestationId>, StoreError> {
        self.read().active_pledge(patent)
    }
    fn governance(&self) -> Result<Option<std::sync::Arc<credence_ledger::governance::GovState>>, StoreError> {
        self.read().governance()
    }
    fn fact(
        &self,
        key: &credence_ledger::loan_rules::FactKey,
    ) -> Result<Option<credence_ledger::loan_rules::Fact>, StoreError> {
        self.read().fact(key)
    }
}

impl NodeReader for LockedStore {
    fn node(&self, level: u8, index: u64) -> Result<NodeHash, MerkleError> {
        self.read().node(level, index)
    }
    fn stored_size(&self) -> Option<u64> {
        self.read().stored_size()
    }
    fn nodes(&self, level: u8, start: u64, count: usize, out: &mut Vec<NodeHash>) -> Result<(), MerkleError> {
        self.read().nodes(level, start, count, out)
    }
}

impl Store for LockedStore {
    fn genesis_hash(&self) -> Hash {
        self.read().genesis_hash()
    }
    fn head(&self) -> Result<Option<Head>, StoreError> {
        self.read().head()
    }
    fn commit(&mut self, block: &ValidBlock) -> Result<(), StoreError> {
        self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner).commit(block)
    }
    fn header(&self, height: u64) -> Result<Option<BlockHeader>, StoreError> {
        self.read().header(height)
    }
    fn certificate(&self, height: u64) -> Result<Option<Checkpoint>, StoreError> {
        self.read().certificate(height)
    }
    fn block(&self, height: u64) -> Result<Option<CertifiedBlock>, StoreError> {
        self.read().block(height)
    }
    fn leaf(&self, index: u64) -> Result<Option<Leaf>, StoreError> {
        self.read().leaf(index)
    }
    fn locate(&self, id: &AttestationId) -> Result<Option<Location>, StoreError> {
        self.read().locate(id)
    }
    fn query(&self, key: IndexKey<'_>, after: Option<u64>, limit: usize) -> Result<Vec<u64>, StoreError> {
        self.read().query(key, after, limit)
    }
    fn leaf_bytes(&self, start: u64, count: usize, out: &mut Vec<Vec<u8>>) -> Result<(), StoreError> {
        self.read().leaf_bytes(start, count, out)
    }
}
