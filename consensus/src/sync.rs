//! Block sync, the serving side: certified blocks read from the store within a response's bounds, and a per-peer budget so no peer can keep a node busy serving it.
//!
//! The node runs this off its consensus driver (a task of its own, reading the
//! store under a read lock); the simulator runs the same code in each simulated
//! node. The asking side is in [`crate::replica`].

use std::collections::BTreeMap;

use credence_ledger::block;
use credence_ledger::store::Store;

/// Most certified blocks in one sync response (and asked for in one request).
pub const SYNC_BLOCKS_MAX: u32 = 64;
/// Most bytes of one sync answer as a server frames it (a count and each block with its
/// length), unless one block is larger: then that block alone. Askers size their requests
/// by it.
pub const SYNC_ANSWER_BYTES_MAX: usize = 8 * 1024 * 1024;
/// A peer may ask this many sync requests per [`SYNC_BUDGET_WINDOW_MS`]; more are refused.
pub const SYNC_REQUESTS_PER_WINDOW: u32 = 20;
/// The budget's window.
pub const SYNC_BUDGET_WINDOW_MS: u64 = 1_000;
/// Peers whose budgets are tracked at once; the longest idle is forgotten first.
pub const SYNC_PEERS_MAX: usize = 1_024;

/// A sync request: blocks from `from_height` on, at most `blocks_max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncRequest {
    pub from_height: u64,
    pub blocks_max: u32,
}

/// Why a request was not served.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SyncRefused {
    #[error("sync budget: more than {SYNC_REQUESTS_PER_WINDOW} requests in {SYNC_BUDGET_WINDOW_MS} ms from this peer")]
    OverBudget,
    #[error("store: {0}")]
    Store(String),
}

#[derive(Clone, Copy, Debug)]
struct Budget {
    window_start_ms: u64,
    used: u32,
}

/// Serves sync requests with a per-peer budget. `K` identifies a peer (a libp2p
/// peer id in the node, a validator index in the simulator).
#[derive(Debug)]
pub struct SyncServer<K> {
    budgets: BTreeMap<K, Budget>,
    /// Requests refused for budget since creation.
    pub refused: u64,
}

impl<K: Ord + Clone> Default for SyncServer<K> {
    fn default() -> Self {
        SyncServer { budgets: BTreeMap::new(), refused: 0 }
    }
}

impl<K: Ord + Clone> SyncServer<K> {
    /// Answers `request` from `peer` at monotonic time `now_ms`: the encoded certified
    /// blocks (`block::encode_certified`) from `from_height` on, at most
    /// min(`blocks_max`, [`SYNC_BLOCKS_MAX`]) and `bytes_max` bytes with a 4-byte length
    /// prefix each after a 4-byte count (the wire frame). Empty when the store has none.
    pub fn serve<S: Store + ?Sized>(
        &mut self,
        store: &S,
        peer: &K,
        request: SyncRequest,
        bytes_max: usize,
        now_ms: u64,
    ) -> Result<Vec<Vec<u8>>, SyncRefused> {
        self.charge(peer, now_ms)?;
        let count = u64::from(request.blocks_max.min(SYNC_BLOCKS_MAX));
        let from = request.from_height.max(1);
        let mut blocks = Vec::new();
        let mut bytes = 4usize;
        for h in from..from.saturating_add(count) {
            let cb = match store.block(h) {
                Ok(Some(cb)) => cb,
                Ok(None) => break,
                // A node that started from a snapshot holds no block at or below its base:
                // it answers nothing for those heights, as for heights above its head, so the
                // peer asks another.
                Err(credence_ledger::store::StoreError::NotHeld { .. }) => break,
                Err(e) => return Err(SyncRefused::Store(e.to_string())),
            };
            let mut buf = Vec::new();
            block::encode_certified(&cb, &mut buf);
            if bytes + 4 + buf.len() > bytes_max {
                break;
            }
            bytes += 4 + buf.len();
            blocks.push(buf);
        }
        Ok(blocks)
    }

    fn charge(&mut self, peer: &K, now_ms: u64) -> Result<(), SyncRefused> {
        if !self.budgets.contains_key(peer) && self.budgets.len() >= SYNC_PEERS_MAX {
            let oldest = self.budgets.iter().min_by_key(|(_, b)| b.window_start_ms).map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.budgets.remove(&k);
            }
        }
        let b = self.budgets.entry(peer.clone()).or_insert(Budget { window_start_ms: now_ms, used: 0 });
        if now_ms.saturating_sub(b.window_start_ms) >= SYNC_BUDGET_WINDOW_MS {
            *b = Budget { window_start_ms: now_ms, used: 0 };
        }
        if b.used >= SYNC_REQUESTS_PER_WINDOW {
            self.refused += 1;
            return Err(SyncRefused::OverBudget);
        }
        b.used += 1;
        assert!(self.budgets.len() <= SYNC_PEERS_MAX);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use credence_ledger::store::MemStore;

    #[test]
    fn a_peer_over_its_budget_is_refused_until_the_window_passes_and_others_are_not() {
        let genesis = crate::sim::chain::genesis(1, 4).expect("genesis");
        let store = MemStore::new(&genesis);
        let mut server = SyncServer::<u16>::default();
        let req = SyncRequest { from_height: 1, blocks_max: 8 };
        for _ in 0..SYNC_REQUESTS_PER_WINDOW {
            assert_eq!(server.serve(&store, &1, req, 1 << 20, 100), Ok(Vec::new()));
        }
        assert_eq!(server.serve(&store, &1, req, 1 << 20, 100), Err(SyncRefused::OverBudget));
        assert_eq!(server.serve(&store, &2, req, 1 << 20, 100), Ok(Vec::new()), "another peer's budget");
        assert_eq!(server.serve(&store, &1, req, 1 << 20, 100 + SYNC_BUDGET_WINDOW_MS), Ok(Vec::new()));
        assert_eq!(server.refused, 1);
    }

    /// A store that started from a snapshot answers nothing at or below its base (the peer
    /// asks another), and the blocks after it as any store does.
    #[test]
    fn below_a_snapshot_base_the_answer_is_empty() {
        use credence_ledger::demo::ChainBuilder;
        use credence_ledger::snapshot;
        let mut b = ChainBuilder::new(5, 1_700_000_000_000).expect("builder");
        let mut full = MemStore::new(b.genesis());
        for _ in 0..3 {
            full.commit(&b.next_block(4).expect("block")).expect("commit");
        }
        let g = b.genesis().clone();
        let (st, _) = snapshot::state_statement(&full, &g).expect("statement");
        let signed: Vec<_> = g
            .verifier_keys()
            .iter()
            .map(|v| st.sign(&v.name, &credence_ledger::demo::member_key(5, &v.name)))
            .collect();
        let mut file = Vec::new();
        snapshot::write_file(&full, &g, &[], &signed, &mut file).expect("file");
        let (prefix, mut reader) = snapshot::open(file.as_slice(), &g).expect("open");
        let base = reader.base(prefix.certificate);
        let mut based = MemStore::new(&g);
        based.import_snapshot(&base, &mut reader).expect("import");
        let vb = b.next_block(4).expect("block");
        full.commit(&vb).expect("commit");
        based.commit(&vb).expect("commit");
        let mut server = SyncServer::<u16>::default();
        for from in [1, 3] {
            let req = SyncRequest { from_height: from, blocks_max: 8 };
            assert_eq!(server.serve(&based, &1, req, 1 << 20, 100), Ok(Vec::new()), "from {from}");
        }
        let req = SyncRequest { from_height: 4, blocks_max: 8 };
        assert_eq!(server.serve(&based, &1, req, 1 << 20, 100), server.serve(&full, &2, req, 1 << 20, 100));
        assert_eq!(server.serve(&based, &1, req, 1 << 20, 100).expect("served").len(), 1);
    }
}
