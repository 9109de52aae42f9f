//! Serves peers' sync requests off the consensus driver: on a queue of their own, from the store under a read lock on the blocking pool, within a per-peer budget (the replica core's [`SyncServer`]).

use std::sync::Arc;
use std::time::Instant;

use credence_ledger::ids::MemberName;
use tokio::sync::mpsc;
use tracing::debug;

use crate::api::SharedStore;
use crate::consensus::sync::{SyncRefused, SyncRequest, SyncServer};
use crate::metrics::Metrics;
use crate::net::{NetEvent, NetHandle, SyncResponse};

use super::locked_store::LockedStore;

/// Answers sync requests one at a time until the network stops.
pub async fn serve(mut requests: mpsc::Receiver<NetEvent>, net: NetHandle, store: SharedStore, metrics: Arc<Metrics>) {
    let origin = Instant::now();
    let server = Arc::new(std::sync::Mutex::new(SyncServer::<MemberName>::default()));
    while let Some(event) = requests.recv().await {
        let NetEvent::SyncRequest { from, request, reply } = event else { continue };
        let bytes_max = net.bounds().sync.response_bytes_max;
        let (server, store) = (server.clone(), LockedStore(store.clone()));
        let now_ms = u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        let req = SyncRequest { from_height: request.from_height, blocks_max: request.max_blocks };
        let peer = from.clone();
        let served = tokio::task::spawn_blocking(move || {
            let mut server = server.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            server.serve(&store, &peer, req, bytes_max, now_ms)
        })
        .await;
        match served {
            Ok(Ok(blocks)) => net.respond(reply, SyncResponse { blocks }),
            // Refused (over budget, or the store failed): an empty answer, at once.
            Ok(Err(e)) => {
                if e == SyncRefused::OverBudget {
                    metrics.sync_refused.inc();
                }
                debug!(peer = %from, error = %e, "sync request refused");
                net.respond(reply, SyncResponse { blocks: Vec::new() });
            }
            Err(e) => debug!(peer = %from, error = %e, "sync serving failed"),
        }
    }
}
