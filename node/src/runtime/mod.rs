//! The node's runtime, split by job: startup (this file), the consensus driver ([`driver`]), attestation gossip and ingest ([`gossip`]), sync serving ([`sync_server`]), the sign-state file ([`sign_state`]) and the store as the replica sees it ([`locked_store`]).
//!
//! Every decision about blocks, votes, sync and the mempool is made by the replica
//! core ([`credence_consensus::replica::Replica`]), the same code the simulator
//! runs; the driver carries out its actions with tokio timers, libp2p and the disk.
//!
//! Tasks: the driver owns the replica (consensus, the tip, the store's write side);
//! the API reads the store and admits into the mempool; the gossip task publishes
//! the API's admitted attestations in batches; the ingest task checks gossiped
//! batches on the blocking pool and admits them (`mempool::admit_batch`, the one
//! admission path); the sync server answers peers' block requests from a queue of
//! its own. Lock order: the mempool, then the store (ARCHITECTURE.md, "Locks").
//!
//! Invariant: a [`Action::PersistSignState`] is on disk (fsynced, renamed into
//! place) before any later action of the same step runs, so a vote never leaves
//! before the record that forbids signing a conflicting one.

pub mod driver;
pub mod gossip;
pub mod locked_store;
pub mod sign_state;
pub mod sync_server;

use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};

use credence_ledger::genesis::{Genesis, Member};
use credence_ledger::sig::SecretKey;
use credence_ledger::store::{RedbOptions, RedbStore, Store as _, StoreError};
use credence_ledger::verify::{self, ChainContext};
use libp2p::Multiaddr;
use tokio::sync::{Notify, mpsc, watch};
use tracing::{info, warn};

use crate::api::{self, ApiConfig, ApiState, NodeStatus, SharedStore};
use crate::byzantine::{self, Byzantine};
use crate::config::NodeConfig;
use crate::consensus::replica::{Identity, Replica};
use crate::keyfile;
use crate::mempool::{Mempool, MempoolLimits, Verifier};
use crate::metrics::Metrics;
use crate::net::{self, NetConfig};

pub use sign_state::SIGN_STATE_FILE;

/// File (in the data directory) of the ledger store.
pub const STORE_FILE: &str = "ledger.redb";
/// redb's page cache in a node. redb keeps the pages it writes in its cache, so with
/// the store's default (512 MiB, sized for `credence verify` and export) a node's RSS
/// grows with the chain until the cache is full: ~6 MiB/s at 10,000 attestations/s.
/// The node's reads are few and local (sequences, recent records, the Merkle frontier,
/// API queries the OS page cache also serves), so 64 MiB keeps RSS bounded.
pub const STORE_CACHE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Genesis(#[from] credence_ledger::genesis::GenesisError),
    #[error(transparent)]
    Key(#[from] keyfile::KeyFileError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Net(#[from] net::NetError),
    #[error("sign state {path}: {reason}")]
    SignState { path: String, reason: String },
    #[error("api: {0}")]
    Api(std::io::Error),
    #[error("data directory {path}: {reason}")]
    DataDir { path: String, reason: String },
    #[error("byzantine: {0}")]
    Byzantine(String),
    #[error(
        "the stored chain in {store} is damaged: {reason}. The node will not serve or extend it. To recover, \
         move that file aside (keep sign_state.bin) and start the node again: it re-syncs the chain from its \
         peers and verifies every block (docs/OPERATIONS.md, \"Corruption and recovery\")"
    )]
    Damaged { store: String, reason: String },
    #[error(transparent)]
    Replica(#[from] crate::consensus::replica::ReplicaError),
}

/// Addresses a running node listens on (known once it is up).
#[derive(Clone, Debug)]
pub struct Running {
    pub api: std::net::SocketAddr,
    pub p2p: Vec<Multiaddr>,
}

fn multiaddr(a: std::net::SocketAddr) -> Multiaddr {
    let ip = match a.ip() {
        std::net::IpAddr::V4(v4) => libp2p::multiaddr::Protocol::Ip4(v4),
        std::net::IpAddr::V6(v6) => libp2p::multiaddr::Protocol::Ip6(v6),
    };
    Multiaddr::empty().with(ip).with(libp2p::multiaddr::Protocol::Tcp(a.port()))
}

/// The wall clock in milliseconds since the Unix epoch (0 before 1970, saturating).
/// Only the driver, the API and the CLI read it; consensus and the rules are given time.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Starts a node from `config` and runs it until `shutdown` completes. `ready`
/// receives the listening addresses once the API and p2p transport are up.
pub async fn run(
    config: NodeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: Option<tokio::sync::oneshot::Sender<Running>>,
) -> Result<(), NodeError> {
    let genesis = Genesis::load(&config.genesis)?;
    let key = keyfile::read_node_key(&config)?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| NodeError::DataDir { path: config.data_dir.display().to_string(), reason: e.to_string() })?;
    let ctx = Arc::new(ChainContext::new(genesis.clone()));
    let store_path = config.data_dir.join(STORE_FILE);
    let damaged = |reason: String| NodeError::Damaged { store: store_path.display().to_string(), reason };
    let options = RedbOptions { cache_bytes: STORE_CACHE_BYTES, ..RedbOptions::default() };
    let store = match RedbStore::open_with(&store_path, &genesis, options) {
        Err(e @ StoreError::Corrupt { .. }) => return Err(damaged(e.to_string())),
        r => r?,
    };
    if let Some(from) = store.migrated_from_format() {
        let what = if from == credence_ledger::store::FORMAT_LEGACY_IDS {
            "store migrated: its record-id index is now kept in sorted runs (the old table is read as the oldest run), and Merkle nodes only at tile levels (8, 16, ...)"
        } else {
            "store migrated: Merkle nodes are now kept only at tile levels (8, 16, ...), the others computed when read"
        };
        info!(store = %store_path.display(), from_format = from, to_format = credence_ledger::store::FORMAT_VERSION, "{what}");
    }
    // Never serve or extend a damaged chain: re-verify what is stored (docs/OPERATIONS.md);
    // a store that started from a snapshot, from the kept snapshot on.
    if store.base().is_some() {
        let checked = crate::snapshot::verify_from_base(&ctx, &store, &config.data_dir).map_err(damaged)?;
        info!(
            base = checked.base,
            blocks = checked.blocks,
            attestations = checked.attestations,
            "stored chain verified from its snapshot"
        );
    } else {
        let (checked, failure) = verify::verify_store(&ctx, &store, |_| {});
        if let Some(f) = failure {
            return Err(damaged(f.to_string()));
        }
        info!(
            blocks = checked.blocks,
            attestations = checked.attestations,
            seconds = checked.seconds,
            "stored chain verified"
        );
    }
    // Who this node is, by its key in force in the stored chain (a member added by
    // governance, a rotated key), else the joining member the config names.
    let head = store.head()?.map_or(0, |h| h.height);
    let (gov, _) = ctx.in_force(&store, head + 1)?;
    let public = key.public();
    let me = gov
        .members
        .iter()
        .find(|m| m.is_active() && *m.key().ed25519() == public)
        .map(|m| Member { name: m.name.clone(), public_key: public, roles: m.roles.clone(), validator: m.validator })
        .or_else(|| {
            config.member.clone().map(|name| Member { name, public_key: public, roles: Vec::new(), validator: false })
        });
    let mut net_members = members_in_force(&gov);
    if let Some(m) = &me
        && !net_members.iter().any(|(_, k)| *k == public)
    {
        info!(member = %m.name, "joining: this key is not a member in force in the stored chain yet");
        net_members.push((m.name.clone(), public));
    }
    let store: SharedStore = Arc::new(RwLock::new(store));

    let limits = MempoolLimits {
        records_max: config.mempool.records_max as usize,
        bytes_max: usize::try_from(config.mempool.bytes_max).unwrap_or(usize::MAX),
        ahead_max: u64::from(config.mempool.ahead_max),
        reserved_percent: config.mempool.reserved_percent,
    };
    let mempool = Arc::new(Mutex::new(Mempool::new(ctx.clone(), limits)));
    let metrics = Arc::new(Metrics::new());
    let (status_tx, status_rx) = watch::channel(NodeStatus {
        member: me.as_ref().map(|m| m.name.to_string()),
        validator: me.as_ref().is_some_and(|m| m.validator),
        syncing: true,
        ..NodeStatus::default()
    });

    let net_config = NetConfig {
        listen: multiaddr(config.p2p_listen),
        bootstrap: config.peers.iter().copied().map(multiaddr).collect(),
        genesis: Arc::new(genesis.clone()),
        members: net_members,
        connections_max: config.connections_max,
    };
    let (net, split) = net::spawn_split(net_config, &key).await?;
    let pool_changed = Arc::new(Notify::new());

    let (gossip_tx, gossip_rx) = mpsc::channel(gossip::GOSSIP_QUEUE_MAX);
    let api_config = ApiConfig { listen: config.api_listen, rate: config.api.rate(), ..ApiConfig::default() };
    let listener = api::bind(&api_config).await.map_err(NodeError::Api)?;
    let api_addr = listener.local_addr().map_err(NodeError::Api)?;
    let cosignatures_path = config.data_dir.join(crate::witness_client::COSIGNATURES_FILE);
    let (cosignatures, loaded) = crate::witness_client::Cosignatures::load(&cosignatures_path, &genesis, &store)
        .map_err(|reason| NodeError::DataDir { path: cosignatures_path.display().to_string(), reason })?;
    if loaded.kept + loaded.dropped > 0 {
        info!(kept = loaded.kept, dropped = loaded.dropped, "witness cosignatures read back");
    }
    let cosignatures = Arc::new(cosignatures);
    let witness_tasks = crate::witness_client::spawn(&genesis, store.clone(), cosignatures.clone(), metrics.clone());
    // Validators state the digest of the state every `snapshot_interval_heights` heights.
    let statements = (config.snapshot_interval_heights > 0).then(|| {
        Arc::new(crate::snapshot::Statements::new(
            config.snapshot_interval_heights,
            config.data_dir.join(crate::snapshot::SNAPSHOTS_DIR),
            genesis.clone(),
            SecretKey::from_seed(key.seed()),
        ))
    });
    let api_state = ApiState::new(ctx.clone(), store.clone(), mempool.clone(), status_rx, metrics.clone())
        .with_statements(statements.clone())
        .with_gossip(gossip_tx)
        .with_config(api_config)
        .with_cosignatures(cosignatures.clone());
    // A member's node keeps the openings of its member's confidential amounts (openings.rs).
    let api_state = match &me {
        Some(m) => {
            let path = config.data_dir.join(crate::openings::OPENINGS_FILE);
            let keep = crate::openings::OpeningStore::open(&path)
                .map_err(|e| NodeError::DataDir { path: path.display().to_string(), reason: e.to_string() })?;
            api_state.with_openings(m.name.clone(), Arc::new(keep))
        }
        None => api_state,
    };
    // A member's node logs the restricted reads it serves, signed with its member key.
    let (api_state, query_log_task) = match &me {
        Some(m) => {
            let signer = api::query_log::Signer { name: m.name.clone(), key: SecretKey::from_seed(key.seed()) };
            let (state, task) = api_state.with_query_log(signer);
            (state, Some(task))
        }
        None => (api_state, None),
    };
    let gossip_task = tokio::spawn(gossip::publish(gossip_rx, net.clone(), pool_changed.clone(), mempool.clone()));
    let ingest_task = tokio::spawn(gossip::ingest(
        split.attestations,
        net.clone(),
        gossip::Admission {
            verifier: Arc::new(Verifier::new(
                ctx.clone(),
                mempool.lock().unwrap_or_else(std::sync::PoisonError::into_inner).in_force(),
            )),
            store: store.clone(),
            mempool: mempool.clone(),
            metrics: metrics.clone(),
        },
        pool_changed.clone(),
    ));
    let sync_task = tokio::spawn(sync_server::serve(split.sync_requests, net.clone(), store.clone(), metrics.clone()));
    let (stop_api_tx, stop_api_rx) = tokio::sync::oneshot::channel::<()>();
    let api_task = tokio::spawn(api::serve(listener, api_state, async move {
        let _ = stop_api_rx.await;
    }));
    info!(api = %api_addr, "HTTP API listening");
    if let Some(ready) = ready {
        let _ = ready.send(Running { api: api_addr, p2p: net.listen_addrs() });
    }

    let byzantine = match (config.byzantine, &me) {
        (None, _) => None,
        (Some(_), _) if !genesis.chain_id.starts_with(byzantine::TEST_CHAIN_PREFIX) => {
            return Err(NodeError::Byzantine(format!(
                "test-only; refused on chain '{}' (only on chains named {}*)",
                genesis.chain_id,
                byzantine::TEST_CHAIN_PREFIX
            )));
        }
        (Some(mode), Some(m)) if m.validator => {
            warn!(mode = mode.name(), "BYZANTINE TEST MODE: this validator misbehaves on purpose");
            Some(Byzantine::new(mode, m.name.to_string(), SecretKey::from_seed(key.seed())))
        }
        (Some(_), _) => return Err(NodeError::Byzantine("only a validator can misbehave in consensus".into())),
    };
    if config.clock_skew_ms != 0 && !genesis.chain_id.starts_with(byzantine::TEST_CHAIN_PREFIX) {
        return Err(NodeError::Byzantine(format!(
            "clock_skew_ms is test-only; refused on chain '{}' (only on chains named {}*)",
            genesis.chain_id,
            byzantine::TEST_CHAIN_PREFIX
        )));
    }
    let sign_state_path = config.data_dir.join(SIGN_STATE_FILE);
    let identity = me.as_ref().map(|m| Identity { name: m.name.clone(), key: SecretKey::from_seed(key.seed()) });
    let clock = driver::Clocks::new(config.clock_skew_ms);
    let replica = Replica::new(
        ctx.clone(),
        locked_store::LockedStore(store.clone()),
        mempool.clone(),
        identity,
        sign_state::load(&sign_state_path)?,
        clock.now(),
    )
    .map_err(|e| damaged(e.to_string()))?;
    info!(height = replica.tip().height, member = ?me.as_ref().map(|m| m.name.to_string()), "store opened");
    let mut driver = driver::Driver::new(driver::Parts {
        replica,
        ctx,
        net,
        sign_state_path,
        status_tx,
        metrics,
        byzantine,
        clock,
        pool_changed,
        statements,
    });
    // Stopping: the API first (no more reads), then the query log's last records are signed,
    // admitted and gossiped, and consensus keeps running until they commit (bounded by
    // QUERY_LOG_SHUTDOWN_MS), so a read served just before the stop is still logged.
    let api_abort = api_task.abort_handle();
    let query_log_abort = query_log_task.as_ref().map(|t| t.abort_handle());
    let flush_pool = mempool.clone();
    let shutdown = async move {
        shutdown.await;
        let _ = stop_api_tx.send(());
        let _ = api_task.await;
        if let Some(task) = query_log_task {
            flush_query_log(task, &flush_pool).await;
        }
    };
    let result = driver.run(split.events, shutdown).await;
    api_abort.abort();
    // These hold network handles, which keep the network task alive: stop them.
    gossip_task.abort();
    ingest_task.abort();
    if let Some(a) = query_log_abort {
        a.abort();
    }
    sync_task.abort();
    for t in witness_tasks {
        t.abort();
    }
    result
}

/// The members in force in `gov` with their keys in force: the network's allow-list.
pub(crate) fn members_in_force(
    gov: &credence_ledger::governance::GovState,
) -> Vec<(credence_ledger::ids::MemberName, credence_ledger::sig::PublicKey)> {
    gov.members.iter().filter(|m| m.is_active()).map(|m| (m.name.clone(), *m.key().ed25519())).collect()
}

/// Waits (at most `QUERY_LOG_SHUTDOWN_MS` in all) for the query log to drain and for the
/// records it admitted to leave the mempool (committed).
async fn flush_query_log(
    task: tokio::task::JoinHandle<Vec<credence_ledger::attestation::AttestationId>>,
    mempool: &std::sync::Mutex<Mempool>,
) {
    use api::query_log::QUERY_LOG_SHUTDOWN_MS;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(QUERY_LOG_SHUTDOWN_MS);
    let Ok(Ok(ids)) = tokio::time::timeout_at(deadline, task).await else {
        warn!("query log: not drained within {QUERY_LOG_SHUTDOWN_MS} ms of the stop; its last records may be lost");
        return;
    };
    loop {
        let waiting = match mempool.lock() {
            Ok(pool) => ids.iter().filter(|id| pool.contains(id)).count(),
            Err(_) => return,
        };
        if waiting == 0 {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            warn!(waiting, "query log: records not committed before the stop; they stay with the peers they reached");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
