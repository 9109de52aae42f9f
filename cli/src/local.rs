//! Serving a data directory offline: the node's own API code over a stopped node's store (or a `credence generate` directory) on a private loopback port, so every auditor command also works with `--data-dir` and no network.

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use anyhow::{Context, Result};
use credence_ledger::genesis::Genesis;
use credence_ledger::store::{RedbOptions, RedbStore};
use credence_ledger::verify::ChainContext;
use credence_node::api::query_log::Signer;
use credence_node::api::{self, ApiConfig, ApiState, NodeStatus, SharedStore};
use credence_node::mempool::{Mempool, MempoolLimits};
use credence_node::metrics::Metrics;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

/// An API served from a data directory until dropped.
#[derive(Debug)]
pub struct LocalApi {
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    rt: Option<Runtime>,
}

impl Drop for LocalApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Opens `dir/ledger.redb` with `dir/genesis.toml` read-only in spirit (nothing is submitted:
/// the mempool is empty and nothing gossips) and serves it on 127.0.0.1 at a free port.
pub fn serve(dir: &Path) -> Result<LocalApi> {
    let genesis = Genesis::load(&dir.join("genesis.toml")).with_context(|| format!("--data-dir: {}", dir.display()))?;
    let store =
        RedbStore::open_with(&dir.join("ledger.redb"), &genesis, RedbOptions::default()).with_context(|| {
            format!("--data-dir: cannot open {}/ledger.redb (is its node running? then use --node)", dir.display())
        })?;
    serve_store(genesis, store)
}

/// Serves an opened store (see [`serve`]).
pub fn serve_store(genesis: Genesis, store: RedbStore) -> Result<LocalApi> {
    serve_shared(genesis, Arc::new(RwLock::new(store)), None)
}

/// Serves an opened store; with `signer`, as a member's node does: reads above public need
/// signed requests and restricted reads are logged as query records signed by `signer`
/// (admitted to the mempool, which nothing commits here). Without, as [`serve`].
pub fn serve_shared(genesis: Genesis, store: SharedStore, signer: Option<Signer>) -> Result<LocalApi> {
    let ctx = Arc::new(ChainContext::new(genesis));
    let mempool = Arc::new(Mutex::new(Mempool::new(ctx.clone(), MempoolLimits::default())));
    let (_status_tx, status_rx) = tokio::sync::watch::channel(NodeStatus::default());
    // The only client is this process: no per-client rate limit to speak of.
    let max = credence_node::config::API_RATE_PER_SECOND_MAX;
    let config = ApiConfig { rate: api::RateLimit { per_second: max, burst: max }, ..ApiConfig::default() };
    let state = ApiState::new(ctx, store, mempool, status_rx, Arc::new(Metrics::new())).with_config(config);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let addr = rt.block_on(async {
        let state = match signer {
            Some(signer) => state.with_query_log(signer).0,
            // The holder of the directory reads everything, unsigned and unlogged (docs/ACCESS.md).
            None => state.offline(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(api::serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Ok::<_, std::io::Error>(addr)
    })?;
    Ok(LocalApi { url: format!("http://{addr}"), stop: Some(stop), rt: Some(rt) })
}

/// The API to talk to: `--data-dir` served locally if given, else `--node`. Keep the
/// returned guard alive while using the URL.
pub fn endpoint(node: &str, data_dir: Option<&Path>) -> Result<(String, Option<LocalApi>)> {
    match data_dir {
        Some(dir) => {
            let local = serve(dir)?;
            Ok((local.url.clone(), Some(local)))
        }
        None => Ok((node.to_string(), None)),
    }
}
