//! Attestation gossip, off the consensus path: one task publishes the API's admitted attestations in batches, one checks and admits gossiped batches through the one admission path ([`admit_batch`]).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use credence_ledger::attestation::ATTESTATION_BYTES_MAX;
use credence_ledger::block::Leaf;
use tokio::sync::{Notify, mpsc};
use tracing::{debug, warn};

use crate::api::SharedStore;
use crate::mempool::{Mempool, Origin, Verifier, admit_batch};
use crate::metrics::Metrics;
use crate::net::{NetEvent, NetHandle, Topic, Validation};
use crate::wire;

use super::locked_store::PinnedStore;
use super::now_ms;

/// Attestations admitted through the API waiting to be gossiped (about 1.6 s at
/// 10,000/s). When full, the API drops the announcement; the record stays pending here.
pub const GOSSIP_QUEUE_MAX: usize = 16_384;
/// The gossip task waits at most this long after an attestation for more to fill its batch.
pub const GOSSIP_BATCH_WAIT: Duration = Duration::from_millis(20);

// A client's record is gossiped before this node's proposals name it by id.
const _: () = assert!(GOSSIP_BATCH_WAIT.as_millis() < crate::consensus::compact::CLIENT_RECORD_SHARED_AFTER_MS as u128);

/// Publishes the API's admitted attestations in batches: one gossip message per
/// [`GOSSIP_BATCH_WAIT`] after the first waiting record, or sooner when the batch
/// reaches `wire::ATTESTATION_BATCH_MAX` records or its byte bound. Each record
/// received also tells the driver that the pool has work ([`Notify`]). The records of a
/// batch the network refuses are unshared in `mempool` ([`Mempool::unshare`]): this node's
/// proposals then carry them whole, since its peers cannot fill them by id.
pub async fn publish(
    mut rx: mpsc::Receiver<Leaf>,
    net: NetHandle,
    pool_changed: Arc<Notify>,
    mempool: Arc<Mutex<Mempool>>,
) {
    // The tag and the count come first; each record adds its length and bytes.
    let budget = wire::ATTESTATION_BATCH_BYTES_MAX - 5;
    while let Some(first) = rx.recv().await {
        pool_changed.notify_one();
        let deadline = tokio::time::Instant::now() + GOSSIP_BATCH_WAIT;
        let mut bytes = 4 + first.bytes.len();
        let mut batch = vec![first];
        while batch.len() < wire::ATTESTATION_BATCH_MAX && bytes + 4 + ATTESTATION_BYTES_MAX <= budget {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(leaf)) => {
                    bytes += 4 + leaf.bytes.len();
                    batch.push(leaf);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let data = wire::encode_attestations(batch.iter().map(|l| l.bytes.as_slice()));
        assert!(data.len() <= wire::ATTESTATION_BATCH_BYTES_MAX, "a gossip batch stays within its byte bound");
        if let Err(e) = net.publish(Topic::Attestations, data).await {
            debug!(error = %e, records = batch.len(), "attestation gossip not sent");
            mempool.lock().unwrap_or_else(PoisonError::into_inner).unshare(batch.iter().map(|l| &l.id));
        }
    }
}

/// What admitting a gossiped batch needs.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct Admission {
    pub verifier: Arc<Verifier>,
    pub store: SharedStore,
    pub mempool: Arc<Mutex<Mempool>>,
    pub metrics: Arc<Metrics>,
}

/// Verifies and admits gossiped attestation batches, one at a time, each on the
/// blocking pool, and reports every batch's verdict to the network.
pub async fn ingest(
    mut events: mpsc::Receiver<NetEvent>,
    net: NetHandle,
    admission: Admission,
    pool_changed: Arc<Notify>,
) {
    while let Some(event) = events.recv().await {
        let NetEvent::Gossip { id, data, from, .. } = event else { continue };
        let a = admission.clone();
        let verdict =
            tokio::task::spawn_blocking(move || admit_gossiped(&a, &data)).await.unwrap_or(Validation::Ignore);
        match verdict {
            Validation::Reject => warn!(%from, "peer passed on an invalid attestation batch"),
            Validation::Accept => pool_changed.notify_one(),
            Validation::Ignore => {}
        }
        net.report(id, verdict);
    }
}

/// One gossiped batch through [`admit_batch`]. The verdict: `Reject` if any item is
/// malformed or badly signed (an honest peer forwards only what verified), `Accept` if
/// at least one record was admitted, `Ignore` otherwise (all already known, committed
/// or refused by the pool's state or bounds). Valid items of a rejected batch are still admitted.
pub fn admit_gossiped(a: &Admission, data: &[u8]) -> Validation {
    let Ok(items) = wire::decode_attestations(data) else { return Validation::Reject };
    let outcome = admit_batch(&a.verifier, &PinnedStore::new(&a.store), &a.mempool, items, Origin::Peer, now_ms());
    a.metrics.observe_admission(&outcome);
    if let Ok(pool) = a.mempool.lock() {
        a.metrics.observe_mempool(&pool.stats());
    }
    let admitted = outcome.admitted();
    match (outcome.invalid > 0, admitted) {
        (true, _) => Validation::Reject,
        (false, 0) => Validation::Ignore,
        (false, _) => Validation::Accept,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mempool::MempoolLimits;
    use credence_ledger::attestation::{AttestationBody, Claim};
    use credence_ledger::attestation::{RdCategory, RdSpend};
    use credence_ledger::demo::{self, ChainBuilder, EXAMPLE_GENESIS_TIME_MS};
    use credence_ledger::hash::Hash;
    use credence_ledger::ids::{Currency, Money, Period, Uscc};
    use credence_ledger::store::MemStore;
    use credence_ledger::verify::ChainContext;
    use std::sync::RwLock;

    struct Fixture {
        builder: ChainBuilder,
        ctx: Arc<ChainContext>,
        store: SharedStore,
        mempool: Arc<Mutex<Mempool>>,
        admission: Admission,
    }

    fn fixture() -> Fixture {
        let builder = ChainBuilder::new(5, EXAMPLE_GENESIS_TIME_MS).expect("demo chain");
        let ctx = Arc::new(ChainContext::new(builder.genesis().clone()));
        let store: SharedStore = Arc::new(RwLock::new(MemStore::new(builder.genesis())));
        let mempool = Arc::new(Mutex::new(Mempool::new(ctx.clone(), MempoolLimits::default())));
        let admission = Admission {
            verifier: Arc::new(Verifier::new(ctx.clone(), mempool.lock().unwrap().in_force())),
            store: store.clone(),
            mempool: mempool.clone(),
            metrics: Arc::new(Metrics::new()),
        };
        Fixture { builder, ctx, store, mempool, admission }
    }

    impl Fixture {
        /// `n` rd-spend attestations of the first service centre, from its next sequence.
        fn records(&self, n: u64, salt: u8) -> Vec<Vec<u8>> {
            let g = &self.ctx.genesis;
            let index = g.members.iter().position(|m| m.name.as_str() == "sz-tech-finance-centre").expect("centre");
            let attester = g.members[index].name.clone();
            let first = {
                let store = self.store.read().expect("store");
                store.next_sequence(index as u16).expect("state")
            };
            (0..n)
                .map(|i| {
                    let claim = Claim::RdSpend(RdSpend {
                        enterprise: Uscc::parse("enterprise", demo::REAL_USCCS[0]).expect("uscc"),
                        period: Period::new("period", 2024, 3).expect("period"),
                        amount: Money { fen: 100_000 + i, currency: Currency::CNY }.into(),
                        category: RdCategory::Personnel,
                        evidence: Hash([salt; 32]),
                    });
                    let body = AttestationBody {
                        attester: attester.clone(),
                        sequence: first + i,
                        issued_at_ms: now_ms() - 1000,
                        claim,
                    };
                    body.sign(&self.builder.keys()[index], &self.ctx.chain_id).to_bytes()
                })
                .collect()
        }

        fn ingest(&self, items: &[Vec<u8>]) -> Validation {
            let data = wire::encode_attestations(items.iter().map(Vec::as_slice));
            admit_gossiped(&self.admission, &data)
        }

        fn pending(&self) -> usize {
            self.mempool.lock().expect("mempool").len()
        }
    }

    #[test]
    fn a_gossiped_batch_is_verified_once_and_admitted_whole() {
        let f = fixture();
        let batch = f.records(50, 1);
        assert_eq!(f.ingest(&batch), Validation::Accept);
        assert_eq!(f.pending(), 50);
        assert_eq!(f.admission.metrics.signatures_verified.get(), 50, "one check per attestation");
        assert_eq!(f.admission.metrics.attestations_admitted.get(), 50);
        // The same records again (another peer's copy): nothing new, no blame.
        assert_eq!(f.ingest(&batch), Validation::Ignore);
        assert_eq!(f.pending(), 50);
    }

    #[test]
    fn a_batch_with_a_forged_or_malformed_item_is_rejected_and_its_valid_items_kept() {
        let f = fixture();
        let mut batch = f.records(10, 2);
        let last = batch[3].len() - 40;
        batch[3][last] ^= 1;
        assert_eq!(f.ingest(&batch), Validation::Reject, "a bad signature");
        assert_eq!(f.admission.metrics.signatures_invalid.get(), 1);
        // Records before the forged one are admitted; those after wait for its sequence.
        assert_eq!(f.pending(), 9);

        let f = fixture();
        let mut batch = f.records(3, 3);
        batch.push(vec![1, 2, 3]);
        assert_eq!(f.ingest(&batch), Validation::Reject, "not an attestation");
        assert_eq!(f.pending(), 3);

        let f = fixture();
        for garbage in [vec![], vec![0x03], vec![0x03, 5, 0, 0, 0, 1], vec![0x01; 64], vec![0x03, 0, 0, 0, 0]] {
            assert_eq!(admit_gossiped(&f.admission, &garbage), Validation::Reject);
        }
        assert_eq!(f.pending(), 0);
    }

    #[test]
    fn a_full_pool_ignores_a_valid_batch() {
        let f = fixture();
        *f.mempool.lock().expect("mempool") =
            Mempool::new(f.ctx.clone(), MempoolLimits { records_max: 5, ..MempoolLimits::default() });
        assert_eq!(f.ingest(&f.records(5, 4)), Validation::Accept);
        let more = f.records(3, 5);
        assert_eq!(f.ingest(&more), Validation::Ignore, "valid, but no room: not forwarded, no blame");
        assert_eq!(f.pending(), 5);
    }
}
