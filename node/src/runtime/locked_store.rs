//! The node's store as the replica core sees it: the shared store behind its lock, one short read lock per call ([`LockedStore`]), or one read lock for a whole admission ([`PinnedStore`]).
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

/// Implements [`StateView`] for a wrapper by asking the store that `$get` gives (with the
/// wrapper as `$this`) for each read.
macro_rules! state_view_via {
    ($ty:ty, $this:ident => $get:expr) => {
        impl StateView for $ty {
            type Error = StoreError;
            fn next_sequence(&self, attester: u16) -> Result<u64, StoreError> {
                let $this = self;
                $get.next_sequence(attester)
            }
            fn record(&self, id: &AttestationId) -> Result<Option<RecordMeta>, StoreError> {
                let $this = self;
                $get.record(id)
            }
            fn active_pledge(&self, patent: &PatentNumber) -> Result<Option<AttestationId>, StoreError> {
                let $this = self;
                $get.active_pledge(patent)
            }
            fn governance(&self) -> Result<Option<std::sync::Arc<credence_ledger::governance::GovState>>, StoreError> {
                let $this = self;
                $get.governance()
            }
            fn fact(
                &self,
                key: &credence_ledger::loan_rules::FactKey,
            ) -> Result<Option<credence_ledger::loan_rules::Fact>, StoreError> {
                let $this = self;
                $get.fact(key)
            }
        }
    };
}

state_view_via!(LockedStore, store => store.read());

/// The shared store pinned at its first read, for one admission (`admit_batch` under the
/// mempool lock): every rule of every record reads the same committed state. With one lock
/// per read, a block committing between two reads of one record's checks (its sequence
/// still free, then its id already recorded) would show the rules a state that never
/// existed. The read lock is taken at the first read, which comes after the mempool lock
/// (the lock order), and held until the value is dropped: a commit waits for the admission.
///
/// Each attester's committed next sequence is read from the store once per admission and
/// then remembered (the state is pinned, so it cannot change): the mempool asks for it at
/// least once per record, and a batch holds hundreds of records of a few attesters.
pub struct PinnedStore<'a> {
    store: &'a SharedStore,
    guard: std::cell::OnceCell<std::sync::RwLockReadGuard<'a, dyn Store + Send + Sync>>,
    /// Next sequences read so far, by member index (at most the members, ≤ 256).
    sequences: std::cell::RefCell<std::collections::HashMap<u16, u64>>,
}

impl<'a> PinnedStore<'a> {
    pub fn new(store: &'a SharedStore) -> PinnedStore<'a> {
        PinnedStore { store, guard: std::cell::OnceCell::new(), sequences: Default::default() }
    }

    fn get(&self) -> &(dyn Store + Send + Sync) {
        &**self.guard.get_or_init(|| self.store.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

impl std::fmt::Debug for PinnedStore<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.guard.get().is_some() { "PinnedStore(pinned)" } else { "PinnedStore" })
    }
}

impl StateView for PinnedStore<'_> {
    type Error = StoreError;
    fn next_sequence(&self, attester: u16) -> Result<u64, StoreError> {
        if let Some(next) = self.sequences.borrow().get(&attester) {
            return Ok(*next);
        }
        let next = self.get().next_sequence(attester)?;
        self.sequences.borrow_mut().insert(attester, next);
        Ok(next)
    }
    fn record(&self, id: &AttestationId) -> Result<Option<RecordMeta>, StoreError> {
        self.get().record(id)
    }
    fn active_pledge(&self, patent: &PatentNumber) -> Result<Option<AttestationId>, StoreError> {
        self.get().active_pledge(patent)
    }
    fn governance(&self) -> Result<Option<std::sync::Arc<credence_ledger::governance::GovState>>, StoreError> {
        self.get().governance()
    }
    fn fact(
        &self,
        key: &credence_ledger::loan_rules::FactKey,
    ) -> Result<Option<credence_ledger::loan_rules::Fact>, StoreError> {
        self.get().fact(key)
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
    fn commit_deferred(&mut self, block: &ValidBlock) -> Result<(), StoreError> {
        self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner).commit_deferred(block)
    }
    fn flush(&mut self) -> Result<(), StoreError> {
        self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner).flush()
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
    fn leaf_ids(&self, start: u64, count: usize, out: &mut Vec<AttestationId>) -> Result<(), StoreError> {
        self.read().leaf_ids(start, count, out)
    }
    fn for_each_fact(&self, f: &mut credence_ledger::store::FactVisitor<'_>) -> Result<(), StoreError> {
        self.read().for_each_fact(f)
    }
    fn base(&self) -> Option<credence_ledger::store::BaseAt> {
        self.read().base()
    }
    fn read_view(&self) -> Result<Option<Box<dyn Store + Send + Sync>>, StoreError> {
        self.read().read_view()
    }
    fn import_snapshot(
        &mut self,
        base: &credence_ledger::snapshot::Base,
        items: &mut dyn Iterator<
            Item = Result<credence_ledger::snapshot::Item, credence_ledger::snapshot::SnapshotError>,
        >,
    ) -> Result<(), StoreError> {
        self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner).import_snapshot(base, items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use credence_ledger::demo::{ChainBuilder, EXAMPLE_GENESIS_TIME_MS};
    use credence_ledger::store::MemStore;
    use std::sync::{Arc, RwLock};
    use std::time::Duration;

    /// Once an admission has read the store, a commit waits until the admission is done:
    /// every read of the admission sees the state of its first read.
    #[test]
    fn a_pinned_store_holds_one_state_until_dropped() {
        let mut chain = ChainBuilder::new(3, EXAMPLE_GENESIS_TIME_MS).unwrap();
        let mut mem = MemStore::new(chain.genesis());
        mem.commit(&chain.next_block(4).unwrap()).unwrap();
        let block = chain.next_block(4).unwrap();
        let id = block.certified().block.leaves[0].id;
        let block_attester =
            chain.genesis().member_index(&block.certified().block.leaves[0].attestation.body.attester).unwrap();
        let store: SharedStore = Arc::new(RwLock::new(mem));
        let pinned = PinnedStore::new(&store);
        let before = pinned.next_sequence(0).unwrap();
        let writer = {
            let store = Arc::clone(&store);
            std::thread::spawn(move || store.write().unwrap().commit(&block).unwrap())
        };
        std::thread::sleep(Duration::from_millis(200));
        assert!(!writer.is_finished(), "the commit waits for the pinned admission");
        assert_eq!(pinned.next_sequence(0).unwrap(), before);
        assert_eq!(pinned.record(&id).unwrap(), None, "the record of the waiting block is not seen");
        drop(pinned);
        writer.join().unwrap();
        let fresh = PinnedStore::new(&store);
        assert!(fresh.record(&id).unwrap().is_some(), "a new admission sees the commit");
        let attester = block_attester;
        let committed = store.read().unwrap().next_sequence(attester).unwrap();
        assert_eq!(fresh.next_sequence(attester).unwrap(), committed, "and the sequences it moved");
        assert_eq!(fresh.next_sequence(attester).unwrap(), committed, "remembered, the same");
    }
}
