//! The query log: every restricted read becomes a query record signed by this node's member and committed to the ledger, in batches so that reads stay fast.
//!
//! A read is served once its record is queued (≤ [`QUERY_LOG_QUEUE_MAX`] waiting; above
//! that the read is refused with 503, never served unlogged). The task takes up to
//! [`QUERY_LOG_BATCH_MAX`] records at a time, or what arrived within
//! [`QUERY_LOG_FLUSH_MS`] of the first, signs them with consecutive sequences of the node's
//! member and admits them through the API's one admission path (`admit_batch`), which
//! offers them to gossip. A record refused at admission (its sequence taken meanwhile by
//! another submission of the same member) is signed again with a fresh sequence, once.

use std::time::Duration;

use tokio::sync::mpsc;

use credence_ledger::access::QueryRecord;
use credence_ledger::attestation::{AttestationBody, AttestationId, Claim};
use credence_ledger::ids::MemberName;
use credence_ledger::sig::SecretKey;

use super::{ApiError, ApiState};
use crate::runtime::locked_store::LockedStore;
use crate::runtime::now_ms;

/// Most query records waiting to be signed and admitted.
pub const QUERY_LOG_QUEUE_MAX: usize = 10_000;
/// Most query records signed and admitted together.
pub const QUERY_LOG_BATCH_MAX: usize = 256;
/// Longest wait for a batch to fill after its first record, in milliseconds.
pub const QUERY_LOG_FLUSH_MS: u64 = 100;
/// Most ids of admitted records the task remembers, so that a stopping node can wait for
/// them to commit (the newest are kept).
pub const QUERY_LOG_RECENT_MAX: usize = QUERY_LOG_QUEUE_MAX;
/// Longest a stopping node waits for its last query records to be logged and committed, in milliseconds.
pub const QUERY_LOG_SHUTDOWN_MS: u64 = 5_000;

/// The sending side, held by the API's handlers.
#[derive(Clone, Debug)]
pub struct QueryLog {
    tx: mpsc::Sender<QueryRecord>,
}

impl QueryLog {
    /// Queues the record of one restricted read; 503 if the queue is full (the read is then refused).
    pub fn record(&self, q: QueryRecord) -> Result<(), ApiError> {
        self.tx.try_send(q).map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "query_log",
                format!("{QUERY_LOG_QUEUE_MAX} query records wait to be logged; the read is refused until they are"),
            )
        })
    }
}

impl QueryLog {
    /// Queues the records of one read that discloses several enterprises' facts at once (a
    /// whole block): all of them or none, so a refused read leaves no record and a served one
    /// leaves every record; 503 if the queue has not room for all of them.
    pub fn record_all(&self, qs: Vec<QueryRecord>) -> Result<(), ApiError> {
        let Some(n) = std::num::NonZeroUsize::new(qs.len()) else { return Ok(()) };
        let permits = self.tx.try_reserve_many(n.get()).map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "query_log",
                format!(
                    "this read needs {n} query records and the log's queue ({QUERY_LOG_QUEUE_MAX}) has not room for them; retry shortly"
                ),
            )
        })?;
        for (permit, q) in permits.zip(qs) {
            permit.send(q);
        }
        Ok(())
    }
}

/// The node's member, which signs the query records.
#[derive(Debug)]
pub struct Signer {
    pub name: MemberName,
    pub key: SecretKey,
}

/// Starts the logging task; `state` must be the API's state (its admission path and gossip).
/// The task ends once every [`QueryLog`] is dropped (the API has stopped) and its queue is
/// drained and admitted: it returns the ids of the newest records it admitted (at most
/// [`QUERY_LOG_RECENT_MAX`]), for the node to wait for their commit before it stops.
pub fn spawn(state: ApiState, signer: Signer) -> (QueryLog, tokio::task::JoinHandle<Vec<AttestationId>>) {
    let (tx, rx) = mpsc::channel(QUERY_LOG_QUEUE_MAX);
    (QueryLog { tx }, tokio::spawn(run(rx, state, signer)))
}

async fn run(mut rx: mpsc::Receiver<QueryRecord>, state: ApiState, signer: Signer) -> Vec<AttestationId> {
    let signer = std::sync::Arc::new(signer);
    let mut recent = std::collections::VecDeque::new();
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + Duration::from_millis(QUERY_LOG_FLUSH_MS);
        while batch.len() < QUERY_LOG_BATCH_MAX {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(q)) => batch.push(q),
                _ => break,
            }
        }
        let (st, sg) = (state.clone(), signer.clone());
        let count = batch.len();
        match tokio::task::spawn_blocking(move || admit(&st, &sg, batch)).await {
            Ok(Ok(leaves)) => {
                for leaf in &leaves {
                    if recent.len() == QUERY_LOG_RECENT_MAX {
                        recent.pop_front();
                    }
                    recent.push_back(leaf.id);
                }
                super::handlers::offer_for_gossip(&state, leaves)
            }
            Ok(Err(e)) => tracing::error!(count, error = %e.rule, "query log: records not admitted"),
            Err(e) => tracing::error!(count, error = %e, "query log: task failed"),
        }
    }
    recent.into()
}

/// Signs and admits `batch`, retrying refused records once with fresh sequences.
fn admit(
    st: &ApiState,
    signer: &Signer,
    batch: Vec<QueryRecord>,
) -> Result<Vec<credence_ledger::block::Leaf>, ApiError> {
    // The node's member: a genesis member or one governance added (indexes are never reused).
    let me = match st.ctx.genesis.member_index(&signer.name) {
        Some(i) => Some(i),
        None => {
            let guard = st.read_store()?;
            credence_ledger::rules::StateView::governance(&super::StoreView(&*guard))?
                .and_then(|g| g.member_index(&signer.name))
        }
    };
    let Some(me) = me else {
        return Err(ApiError::internal("query log: the node's member is not a member of this consortium"));
    };
    let mut pending = batch;
    let mut admitted = Vec::new();
    for _attempt in 0..2 {
        if pending.is_empty() {
            break;
        }
        let next = st.lock_mempool()?.next_sequence(&LockedStore(st.store.clone()), me).map_err(ApiError::internal)?;
        let now = now_ms();
        let items: Vec<Result<Vec<u8>, ApiError>> = pending
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let body = AttestationBody {
                    attester: signer.name.clone(),
                    sequence: next + i as u64,
                    issued_at_ms: now,
                    claim: Claim::Query(q.clone()),
                };
                Ok(body.sign(&signer.key, &st.ctx.chain_id).to_bytes())
            })
            .collect();
        let (outcomes, leaves) = super::handlers::admit_all(st, items)?;
        admitted.extend(leaves);
        let mut again = Vec::new();
        for (q, o) in pending.into_iter().zip(outcomes) {
            if let Err(e) = o {
                tracing::warn!(error = %e.rule, "query log: record refused; signing it again");
                again.push(q);
            }
        }
        pending = again;
    }
    if !pending.is_empty() {
        return Err(ApiError::internal(format!("query log: {} records could not be admitted", pending.len())));
    }
    Ok(admitted)
}
