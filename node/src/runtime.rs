//! The node's driver: runs the pure consensus machine with real timers, the libp2p network, the durable store, the mempool, block sync and the HTTP API.
//!
//! Everything here is I/O and plumbing; every decision about blocks and votes is
//! made by [`crate::consensus::Consensus`] and every check by the ledger's
//! verification core. One task (the driver) owns the machine, the tip and the
//! store's write side; the API reads the store and admits into the mempool under
//! short locks.
//!
//! Attestations stay off the driver's path, so a backlog of them never delays a
//! vote: the API's admitted attestations go to a gossip task that publishes them
//! in batches (one message per [`GOSSIP_BATCH_WAIT`] or per
//! `wire::ATTESTATION_BATCH_MAX` records), and gossiped batches arrive on a
//! channel of their own ([`net::spawn_split`]) at an ingest task that checks each
//! batch's signatures with one `verify_batch` on the blocking pool and admits it
//! under one lock, as `POST /v1/attestations/batch` does. The driver polls its
//! inputs in a fixed order (`biased`): shutdown, consensus messages and other
//! network events, sync answers, timers, then the periodic tick. Consensus messages
//! waiting together (up to [`CONSENSUS_DRAIN_MAX`]) are stepped as one batch, so
//! their signatures are checked with one batch equation ([`Consensus::step_messages`]).
//!
//! Invariant: a [`Effect::PersistSignState`] is on disk (fsynced, renamed into
//! place) before any later effect of the same step runs, so a vote never leaves
//! before the record that forbids signing a conflicting one.
//! Invariant: a block reaches the store only through `verify::verify_block`,
//! whether it was decided here or fetched by sync.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use credence_ledger::attestation::ATTESTATION_BYTES_MAX;
use credence_ledger::attestation::{AttestationBody, Claim};
use credence_ledger::block::{self, Block, BlockHash, BlockHeader, CertifiedBlock, Leaf};
use credence_ledger::genesis::Genesis;
use credence_ledger::hash::Hash;
use credence_ledger::ids::MemberName;
use credence_ledger::rules::{self, Rejection as RejectionKind, RuleError};
use credence_ledger::sig::SecretKey;
use credence_ledger::store::{RedbOptions, RedbStore, Store, StoreError};
use credence_ledger::verify::{self, ChainContext, Tip};
use credence_ledger::vote::Equivocation;
use libp2p::Multiaddr;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::api::{self, ApiConfig, ApiState, NodeStatus, SharedStore};
use crate::byzantine::{self, Byzantine};
use crate::config::NodeConfig;
use crate::consensus::{self, Consensus, Effect, Input, Message, MessageError, SignState, Signer, Timeout};
use crate::evidence::EvidencePool;
use crate::mempool::{Mempool, MempoolLimits, Verifier};
use crate::metrics::Metrics;
use crate::net::{self, NetConfig, NetEvent, NetHandle, SyncRequest, SyncResponse, Topic, Validation};
use crate::{keyfile, wire};

/// File (in the data directory) holding what this validator last signed.
pub const SIGN_STATE_FILE: &str = "sign_state.bin";
/// File (in the data directory) of the ledger store.
pub const STORE_FILE: &str = "ledger.redb";
/// Attestations admitted through the API waiting to be gossiped (about 1.6 s at
/// 10,000/s). When full, the API drops the announcement; the record stays pending here.
pub const GOSSIP_QUEUE_MAX: usize = 16_384;
/// The gossip task waits at most this long after an attestation for more to fill its batch.
pub const GOSSIP_BATCH_WAIT: Duration = Duration::from_millis(20);
/// redb's page cache in a node. redb keeps the pages it writes in its cache, so with
/// the store's default (512 MiB, sized for `credence verify` and export) a node's RSS
/// grows with the chain until the cache is full: ~6 MiB/s at 10,000 attestations/s.
/// The node's reads are few and local (sequences, recent records, the Merkle frontier,
/// API queries the OS page cache also serves), so 64 MiB keeps RSS bounded.
pub const STORE_CACHE_BYTES: usize = 64 * 1024 * 1024;
/// Validated proposals remembered so their commit skips the signature checks.
pub const VALIDATED_BLOCKS_MAX: usize = 16;
/// Most consensus messages taken from the inbox at once and stepped together
/// ([`Consensus::step_messages`]: their signatures are checked as one batch).
pub const CONSENSUS_DRAIN_MAX: usize = 64;
/// How often a node checks whether it is behind its peers.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(1000);
/// A proposer with an empty mempool waits this long (bounded by half the propose
/// timeout) for attestations before proposing an empty block.
pub const EMPTY_BLOCK_WAIT: Duration = Duration::from_millis(1000);

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

/// Writes the sign state durably: temp file, fsync, rename, fsync the directory.
fn persist_sign_state(path: &Path, state: &SignState) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&state.to_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn load_sign_state(path: &Path) -> Result<Option<SignState>, NodeError> {
    let err = |reason: String| NodeError::SignState { path: path.display().to_string(), reason };
    match std::fs::read(path) {
        Ok(bytes) => SignState::from_bytes(&bytes).map(Some).map_err(|e| err(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(e.to_string())),
    }
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
    let me = genesis.members.iter().find(|m| m.public_key == key.public()).cloned();
    let ctx = Arc::new(ChainContext::new(genesis.clone()));
    let store_path = config.data_dir.join(STORE_FILE);
    let damaged = |reason: String| NodeError::Damaged { store: store_path.display().to_string(), reason };
    let options = RedbOptions { cache_bytes: STORE_CACHE_BYTES, ..RedbOptions::default() };
    let store = match RedbStore::open_with(&store_path, &genesis, options) {
        Err(e @ StoreError::Corrupt { .. }) => return Err(damaged(e.to_string())),
        r => r?,
    };
    // Never serve or extend a damaged chain: re-verify what is stored (docs/OPERATIONS.md).
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
    let tip = tip_of(&ctx, &store).map_err(damaged)?;
    info!(height = tip.height, member = ?me.as_ref().map(|m| m.name.to_string()), "store opened");
    let store: SharedStore = Arc::new(RwLock::new(store));

    let limits = MempoolLimits {
        records_max: config.mempool.records_max as usize,
        bytes_max: usize::try_from(config.mempool.bytes_max).unwrap_or(usize::MAX),
        ahead_max: u64::from(config.mempool.ahead_max),
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
        connections_max: config.connections_max,
    };
    let (net, net_events, attestation_events) = net::spawn_split(net_config, &key).await?;

    let (gossip_tx, gossip_rx) = mpsc::channel(GOSSIP_QUEUE_MAX);
    let api_config = ApiConfig { listen: config.api_listen, rate: config.api.rate(), ..ApiConfig::default() };
    let listener = api::bind(&api_config).await.map_err(NodeError::Api)?;
    let api_addr = listener.local_addr().map_err(NodeError::Api)?;
    let api_state = ApiState::new(ctx.clone(), store.clone(), mempool.clone(), status_rx, metrics.clone())
        .with_gossip(gossip_tx)
        .with_config(api_config);
    let gossip_task = tokio::spawn(gossip_attestations(gossip_rx, net.clone()));
    let ingest_task = tokio::spawn(ingest_attestations(
        attestation_events,
        net.clone(),
        Arc::new(Verifier::new(ctx.clone())),
        store.clone(),
        mempool.clone(),
        metrics.clone(),
    ));
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
    let cctx = Arc::new(consensus::Context::new(&genesis));
    let sign_state_path = config.data_dir.join(SIGN_STATE_FILE);
    let consensus = match &me {
        Some(m) if m.validator => {
            let index = cctx.index_of(&m.name).unwrap_or_else(|| unreachable!("a validator has an index"));
            let signer = Signer { index, key: SecretKey::from_seed(key.seed()) };
            Some(Consensus::new(cctx.clone(), Some(signer), tip.height + 1, load_sign_state(&sign_state_path)?))
        }
        _ => None,
    };
    let mut driver = Driver {
        verifier: Verifier::new(ctx.clone()),
        ctx,
        me: me.map(|m| m.name),
        key,
        store,
        tip,
        mempool,
        net,
        consensus,
        timers: BTreeMap::new(),
        timer_seq: 0,
        sign_state_path,
        status_tx,
        metrics,
        evidence: EvidencePool::default(),
        last_commit: Instant::now(),
        last_step: Instant::now(),
        resend_counter: 0,
        sync_in_flight: false,
        pending_build: None,
        validated: Vec::new(),
        byzantine,
    };
    let result = driver.run(net_events, shutdown).await;
    let _ = stop_api_tx.send(());
    let _ = api_task.await;
    // Both hold network handles, which keep the network task alive: stop them.
    gossip_task.abort();
    ingest_task.abort();
    result
}

/// Publishes the API's admitted attestations in batches: one gossip message per
/// [`GOSSIP_BATCH_WAIT`] after the first waiting record, or sooner when the batch
/// reaches `wire::ATTESTATION_BATCH_MAX` records or its byte bound.
async fn gossip_attestations(mut rx: mpsc::Receiver<Leaf>, net: NetHandle) {
    // The tag and the count come first; each record adds its length and bytes.
    let budget = wire::ATTESTATION_BATCH_BYTES_MAX - 5;
    while let Some(first) = rx.recv().await {
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
        }
    }
}

/// Verifies and admits gossiped attestation batches, one at a time, each on the
/// blocking pool, and reports every batch's verdict to the network.
async fn ingest_attestations(
    mut events: mpsc::Receiver<NetEvent>,
    net: NetHandle,
    verifier: Arc<Verifier>,
    store: SharedStore,
    mempool: Arc<Mutex<Mempool>>,
    metrics: Arc<Metrics>,
) {
    while let Some(event) = events.recv().await {
        let NetEvent::Gossip { id, data, from, .. } = event else { continue };
        let (verifier, store, mempool, metrics) = (verifier.clone(), store.clone(), mempool.clone(), metrics.clone());
        let verdict = tokio::task::spawn_blocking(move || admit_gossiped(&verifier, &store, &mempool, &metrics, &data))
            .await
            .unwrap_or(Validation::Ignore);
        if verdict == Validation::Reject {
            warn!(%from, "peer passed on an invalid attestation batch");
        }
        net.report(id, verdict);
    }
}

/// One gossiped batch: one batched signature check, then admission in order under one
/// store read lock and one mempool lock. The verdict: `Reject` if any item is malformed
/// or badly signed (an honest peer forwards only what verified), `Accept` if at least
/// one record was admitted, `Ignore` otherwise (all already known, committed or refused
/// by the pool's state or bounds). Valid items of a rejected batch are still admitted.
fn admit_gossiped(
    verifier: &Verifier,
    store: &SharedStore,
    mempool: &Mutex<Mempool>,
    metrics: &Metrics,
    data: &[u8],
) -> Validation {
    let Ok(items) = wire::decode_attestations(data) else { return Validation::Reject };
    let mut invalid = false;
    let mut verified = Vec::with_capacity(items.len());
    for v in verifier.verify_batch(items) {
        match v {
            Ok(v) => verified.push(v),
            Err(e) => {
                invalid = true;
                if matches!(e, crate::mempool::AdmitError::Rule(RejectionKind::BadSignature(_))) {
                    metrics.signatures_invalid.inc();
                }
            }
        }
    }
    metrics.signatures_verified.add(verified.len() as u64);
    let now = now_ms();
    let mut admitted = 0u64;
    {
        let store = store.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Ok(mut pool) = mempool.lock() else { return Validation::Ignore };
        for v in verified {
            if let Ok(a) = pool.admit(&*store, v, now) {
                admitted += 1;
                metrics.mempool_evicted.add(a.evicted.len() as u64);
            }
        }
        let stats = pool.stats();
        metrics.mempool_records.set(stats.records as u64);
        metrics.mempool_bytes.set(stats.bytes as u64);
        metrics.mempool_held.set(stats.held as u64);
    }
    metrics.attestations_admitted.add(admitted);
    match (invalid, admitted) {
        (true, _) => Validation::Reject,
        (false, 0) => Validation::Ignore,
        (false, _) => Validation::Accept,
    }
}

/// The verified tip of a store (its head, with the Merkle frontier rebuilt from stored
/// nodes); the error says what is inconsistent.
fn tip_of(ctx: &ChainContext, store: &RedbStore) -> Result<Tip, String> {
    let Some(head) = store.head().map_err(|e| e.to_string())? else { return Ok(Tip::genesis(ctx)) };
    let frontier = credence_ledger::merkle::Frontier::from_reader(head.tree_size, store)
        .map_err(|e| format!("merkle frontier: {e}"))?;
    if frontier.root() != head.tree_root.0 {
        return Err(format!("merkle frontier: the stored nodes give a root other than block {}'s", head.height));
    }
    Ok(Tip { height: head.height, hash: head.hash, time_ms: head.time_ms, frontier })
}

/// A block the proposer owes the machine, built once attestations arrive or the wait ends.
#[derive(Debug, Clone, Copy)]
struct PendingBuild {
    height: u64,
    round: u32,
    deadline: Instant,
}

struct Driver {
    ctx: Arc<ChainContext>,
    me: Option<MemberName>,
    key: SecretKey,
    store: SharedStore,
    tip: Tip,
    mempool: Arc<Mutex<Mempool>>,
    verifier: Verifier,
    net: NetHandle,
    consensus: Option<Consensus>,
    /// Pending timeouts by due time (ties broken by a counter).
    timers: BTreeMap<(Instant, u64), Timeout>,
    timer_seq: u64,
    sign_state_path: PathBuf,
    status_tx: watch::Sender<NodeStatus>,
    metrics: Arc<Metrics>,
    evidence: EvidencePool,
    last_commit: Instant,
    last_step: Instant,
    /// Distinguishes re-sent consensus messages from the originals (gossip dedupes by content).
    resend_counter: u64,
    sync_in_flight: bool,
    pending_build: Option<PendingBuild>,
    /// Hashes of recently validated proposals (at most [`VALIDATED_BLOCKS_MAX`]).
    validated: Vec<BlockHash>,
    /// Test-only: rewrites what this validator broadcasts ([`crate::byzantine`]).
    byzantine: Option<Byzantine>,
}

/// A consensus message from gossip.
fn is_consensus(e: &NetEvent) -> bool {
    matches!(e, NetEvent::Gossip { topic: Topic::Consensus, .. })
}

/// What a sync request task reports back.
type SyncResult = (MemberName, Result<SyncResponse, net::NetError>);

impl Driver {
    async fn run(
        &mut self,
        mut events: mpsc::Receiver<NetEvent>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), NodeError> {
        let (sync_tx, mut sync_rx) = mpsc::channel::<SyncResult>(4);
        if let Some(c) = self.consensus.as_mut() {
            let effects = c.start();
            self.apply(effects).await?;
        }
        let mut shutdown = std::pin::pin!(shutdown);
        let mut sync_tick = tokio::time::interval(SYNC_INTERVAL);
        loop {
            let next_timer = self.timers.keys().next().map(|(t, _)| *t);
            let build_due = self.pending_build.map(|b| b.deadline);
            let wake = [next_timer, build_due].into_iter().flatten().min();
            let sleep = tokio::time::sleep_until(wake.map_or_else(
                || tokio::time::Instant::now() + Duration::from_secs(3600),
                tokio::time::Instant::from_std,
            ));
            tokio::select! {
                // Fixed order: consensus before anything periodic (see the module comment).
                biased;
                () = &mut shutdown => {
                    info!("shutting down");
                    return Ok(());
                }
                event = events.recv() => match event {
                    Some(e) if is_consensus(&e) => {
                        // Whatever else consensus has waiting is stepped with it, up to a bound;
                        // the first other event is handled right after, in order.
                        let mut batch = vec![e];
                        let mut other = None;
                        while batch.len() < CONSENSUS_DRAIN_MAX {
                            match events.try_recv() {
                                Ok(e) if is_consensus(&e) => batch.push(e),
                                Ok(e) => {
                                    other = Some(e);
                                    break;
                                }
                                Err(_) => break,
                            }
                        }
                        self.on_consensus_messages(batch, &sync_tx).await?;
                        if let Some(e) = other {
                            self.on_net_event(e, &sync_tx).await?;
                        }
                    }
                    Some(e) => self.on_net_event(e, &sync_tx).await?,
                    None => {
                        warn!("network task stopped");
                        return Ok(());
                    }
                },
                Some((peer, result)) = sync_rx.recv() => {
                    self.sync_in_flight = false;
                    self.on_sync_response(peer, result).await?;
                }
                () = sleep => self.on_wake().await?,
                _ = sync_tick.tick() => {
                    self.maybe_sync(&sync_tx);
                    self.maybe_resend().await;
                    self.publish_status();
                }
            }
        }
    }

    fn publish_status(&self) {
        let peers = self.net.peers().len();
        self.metrics.peers.set(peers as u64);
        let syncing = self.is_behind();
        self.metrics.syncing.set(u64::from(syncing));
        self.status_tx.send_modify(|s| {
            s.peers = peers;
            s.syncing = syncing;
            s.round = self.consensus.as_ref().map(Consensus::round);
        });
    }

    /// No block for two full rounds: probably behind (or the network is stalled).
    fn is_behind(&self) -> bool {
        let p = &self.ctx.genesis.consensus;
        let round_ms = p.timeout_propose_ms + p.timeout_prevote_ms + p.timeout_precommit_ms;
        self.last_commit.elapsed() > Duration::from_millis(2 * round_ms)
    }

    async fn on_wake(&mut self) -> Result<(), NodeError> {
        let now = Instant::now();
        if let Some(b) = self.pending_build
            && b.deadline <= now
        {
            self.pending_build = None;
            self.build(b.height, b.round).await?;
        }
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let timeout = entry.remove();
            let _stale = self.step(Input::Timeout(timeout)).await?;
        }
        Ok(())
    }

    /// Feeds one input to the machine and carries out its effects.
    async fn step(&mut self, input: Input) -> Result<Result<(), MessageError>, NodeError> {
        let Some(c) = self.consensus.as_mut() else { return Ok(Ok(())) };
        match c.step(input) {
            Ok(effects) => {
                self.last_step = Instant::now();
                self.apply(effects).await?;
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    /// Carries out effects in order (boxed: a commit can lead to further steps).
    fn apply(
        &mut self,
        effects: Vec<Effect>,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), NodeError>> + Send + '_>> {
        Box::pin(async move {
            for effect in effects {
                match effect {
                    Effect::PersistSignState(state) => {
                        persist_sign_state(&self.sign_state_path, &state).map_err(|e| NodeError::SignState {
                            path: self.sign_state_path.display().to_string(),
                            reason: e.to_string(),
                        })?;
                    }
                    Effect::Broadcast(m) => self.broadcast(&m, 0).await,
                    Effect::ScheduleTimeout { timeout, after_ms } => {
                        self.timer_seq += 1;
                        self.timers.insert((Instant::now() + Duration::from_millis(after_ms), self.timer_seq), timeout);
                    }
                    Effect::BuildBlock { height, round } => {
                        let empty = self.mempool.lock().map(|m| m.is_empty()).unwrap_or(true);
                        if empty {
                            let half_propose = Duration::from_millis(self.ctx.genesis.consensus.timeout_propose_ms / 2);
                            let wait = EMPTY_BLOCK_WAIT.min(half_propose);
                            self.pending_build = Some(PendingBuild { height, round, deadline: Instant::now() + wait });
                        } else {
                            self.build(height, round).await?;
                        }
                    }
                    Effect::ValidateBlock { height, id, block } => {
                        let valid = {
                            let store = self.read_store();
                            // Leaves byte-identical to mempool entries were verified at admission.
                            let pool = self.mempool.lock().ok();
                            let known = |leaf: &Leaf| {
                                pool.as_ref().and_then(|p| p.get(&leaf.id)).is_some_and(|p| p.leaf.bytes == leaf.bytes)
                            };
                            verify::verify_proposal(&self.ctx, &self.tip, &*store, &block, &known)
                        };
                        match &valid {
                            Ok(()) => self.remember_valid(id.hash),
                            Err(e) => warn!(height, error = %e, "proposed block is invalid"),
                        }
                        self.step(Input::BlockValidated { height, id, valid: valid.is_ok() })
                            .await?
                            .unwrap_or_default();
                    }
                    Effect::Commit(cb) => self.commit(*cb).await?,
                    Effect::Evidence(e) => self.on_evidence(*e).await,
                }
            }
            Ok(())
        })
    }

    /// Remembers a block whose proposal passed every check, signatures included.
    fn remember_valid(&mut self, hash: BlockHash) {
        if self.validated.len() >= VALIDATED_BLOCKS_MAX {
            self.validated.remove(0);
        }
        self.validated.push(hash);
    }

    fn read_store(&self) -> std::sync::RwLockReadGuard<'_, dyn Store + Send + Sync> {
        self.store.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn broadcast(&mut self, m: &Message, resend: u64) {
        let out = match self.byzantine.as_mut() {
            Some(b) => b.outgoing(&self.ctx, m),
            None => vec![m.clone()],
        };
        for m in &out {
            // Gossip dedupes by content: an 8-byte resend counter in front makes a re-send new.
            let mut data = resend.to_le_bytes().to_vec();
            data.extend_from_slice(&wire::encode(m));
            if let Err(e) = self.net.publish(Topic::Consensus, data).await {
                debug!(error = %e, "consensus message not sent (no peers yet?)");
            }
        }
    }

    /// The paper assumes gossip delivers everything eventually; a node that restarted
    /// or was cut off missed messages, so after a quiet spell everything known is re-sent.
    async fn maybe_resend(&mut self) {
        let quiet = Duration::from_millis(self.ctx.genesis.consensus.timeout_propose_ms);
        if self.last_step.elapsed() < quiet {
            return;
        }
        let Some(c) = self.consensus.as_ref() else { return };
        let messages = c.known_messages();
        self.resend_counter += 1;
        for m in &messages {
            self.broadcast(m, self.resend_counter).await;
        }
        self.last_step = Instant::now();
    }

    /// Builds this proposer's block from the mempool on the committed chain.
    async fn build(&mut self, height: u64, round: u32) -> Result<(), NodeError> {
        if height != self.tip.height + 1 {
            return Ok(()); // The chain moved on (sync); the machine moved with it.
        }
        let Some(proposer) = self.me.clone() else { return Ok(()) };
        let params = &self.ctx.genesis.consensus;
        let mut leaves = match self.mempool.lock() {
            Ok(m) => m.take(params.block_records_max as usize, params.block_bytes_max as usize),
            Err(_) => Vec::new(),
        };
        let time_ms = now_ms().max(self.tip.time_ms + 1);
        // The mempool orders records so the rules accept them; should one still be
        // refused (a race with a commit), leave it and everything after it out.
        {
            let store = self.read_store();
            let records: Vec<_> = leaves.iter().map(|l| (l.id, &l.attestation)).collect();
            let bytes = leaves.iter().map(|l| l.bytes.len()).sum();
            if let Err(RuleError::Record { index, rejection }) =
                rules::apply_block(&self.ctx.genesis, &*store, self.tip.time_ms, time_ms, &records, bytes)
            {
                warn!(index, %rejection, "mempool record refused while building; proposing the records before it");
                leaves.truncate(index);
            }
        }
        let mut frontier = self.tip.frontier.clone();
        let mut scratch = Vec::new();
        for l in &leaves {
            if frontier.push_leaf_hash(l.leaf_hash(), &mut scratch).is_err() {
                return Ok(());
            }
        }
        let header = BlockHeader {
            height,
            prev: self.tip.hash,
            time_ms,
            proposer,
            tree_size: frontier.size(),
            tree_root: Hash(frontier.root()),
            validator_set: self.ctx.validator_set_hash(),
        };
        // Its leaves come from the mempool, whose signatures were checked at admission.
        self.remember_valid(header.hash());
        self.step(Input::BlockBuilt { height, round, block: Block { header, leaves } }).await?.unwrap_or_default();
        Ok(())
    }

    /// Verifies and stores a decided block, then updates mempool, evidence and metrics.
    async fn commit(&mut self, cb: CertifiedBlock) -> Result<(), NodeError> {
        let started = Instant::now();
        let height = cb.block.header.height;
        if height != self.tip.height + 1 {
            return Ok(()); // Already stored by sync.
        }
        // A block whose proposal this node validated has had every signature checked.
        let checked = self.validated.contains(&cb.block.header.hash());
        let vb = {
            let store = self.read_store();
            match verify::verify_block_with(&self.ctx, &self.tip, &*store, cb, &|_| checked) {
                Ok(vb) => vb,
                Err(e) => {
                    warn!(error = %e, "decided block does not verify; it will be fetched by sync");
                    return Ok(());
                }
            }
        };
        self.store_block(&vb, started)?;
        debug!(height, records = vb.certified().block.leaves.len(), "committed");
        Ok(())
    }

    /// Stores a verified block and brings the tip, mempool, evidence and metrics up to it.
    fn store_block(&mut self, vb: &credence_ledger::block::ValidBlock, started: Instant) -> Result<(), NodeError> {
        self.store.write().unwrap_or_else(std::sync::PoisonError::into_inner).commit(vb)?;
        self.tip.advance(vb);
        let leaves = &vb.certified().block.leaves;
        let store = Arc::clone(&self.store);
        let store = store.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Ok(mut m) = self.mempool.lock() {
            if let Err(e) = m.on_commit(&*store, leaves) {
                warn!(error = %e, "mempool emptied after a state read error");
            }
            let stats = m.stats();
            self.metrics.mempool_records.set(stats.records as u64);
        }
        self.evidence.on_commit(&vb.certified().block);
        self.metrics.observe_commit(vb.header().height, self.tip.frontier.size(), leaves.len(), started.elapsed());
        self.last_commit = Instant::now();
        Ok(())
    }

    /// Records an equivocation as an attestation of this validator, for a later block.
    async fn on_evidence(&mut self, e: Equivocation) {
        if !self.evidence.add(e.clone()) {
            return;
        }
        let Some(me) = self.me.clone() else { return };
        let Ok(mut pool) = self.mempool.lock() else { return };
        let store = self.read_store();
        let Some(index) = self.ctx.genesis.member_index(&me) else { return };
        let Ok(sequence) = pool.next_sequence(&*store, index) else { return };
        let body =
            AttestationBody { attester: me, sequence, issued_at_ms: now_ms(), claim: Claim::Equivocation(Box::new(e)) };
        let leaf = Leaf::new(body.sign(&self.key, &self.ctx.chain_id));
        match self.verifier.verify_leaf(leaf) {
            Ok(v) => {
                if let Err(err) = pool.admit(&*store, v, now_ms()) {
                    warn!(error = %err, "equivocation evidence not admitted");
                }
            }
            Err(err) => warn!(error = %err, "equivocation evidence does not verify"),
        }
    }

    /// Consensus gossip that arrived together: decoded, stepped as one batch (signatures
    /// checked together), each message's verdict reported to gossip validation.
    async fn on_consensus_messages(
        &mut self,
        events: Vec<NetEvent>,
        sync_tx: &mpsc::Sender<SyncResult>,
    ) -> Result<(), NodeError> {
        debug_assert!(events.len() <= CONSENSUS_DRAIN_MAX);
        let mut ids = Vec::with_capacity(events.len());
        let mut msgs = Vec::with_capacity(events.len());
        for event in events {
            let NetEvent::Gossip { topic: Topic::Consensus, id, data, from } = event else { continue };
            match data.get(8..).map(|m| wire::decode(m, &self.ctx.genesis)) {
                Some(Ok(m)) => {
                    ids.push(id);
                    msgs.push(m);
                }
                _ => {
                    debug!(%from, "malformed consensus message");
                    self.net.report(id, Validation::Reject);
                }
            }
        }
        let Some(c) = self.consensus.as_mut() else {
            // An observer relays what decodes; validators check it.
            for id in ids {
                self.net.report(id, Validation::Accept);
            }
            return Ok(());
        };
        let (effects, verdicts) = c.step_messages(msgs);
        debug_assert_eq!(verdicts.len(), ids.len());
        if verdicts.iter().any(Result::is_ok) {
            self.last_step = Instant::now();
        }
        self.apply(effects).await?;
        for (id, verdict) in ids.into_iter().zip(verdicts) {
            let verdict = match verdict {
                Ok(()) => Validation::Accept,
                Err(MessageError::FutureHeight { .. }) => {
                    self.maybe_sync(sync_tx);
                    Validation::Ignore
                }
                Err(
                    MessageError::BadSignature(_)
                    | MessageError::NotValidator(_)
                    | MessageError::BlockMismatch
                    | MessageError::BadValidRound { .. },
                ) => Validation::Reject,
                Err(_) => Validation::Ignore,
            };
            self.net.report(id, verdict);
        }
        Ok(())
    }

    async fn on_net_event(&mut self, event: NetEvent, sync_tx: &mpsc::Sender<SyncResult>) -> Result<(), NodeError> {
        match event {
            NetEvent::Gossip { topic: Topic::Attestations, id, .. } => {
                // Attestations arrive at the ingest task (`spawn_split`), never here.
                warn!("attestation gossip on the driver's channel; ignored");
                self.net.report(id, Validation::Ignore);
            }
            NetEvent::Gossip { topic: Topic::Consensus, .. } => {
                self.on_consensus_messages(vec![event], sync_tx).await?
            }
            NetEvent::SyncRequest { request, reply, .. } => {
                let response = self.serve_sync(request);
                self.net.respond(reply, response);
            }
            NetEvent::PeerConnected(peer) => {
                info!(%peer, "peer connected");
                self.publish_status();
            }
            NetEvent::PeerDisconnected(peer) => {
                info!(%peer, "peer disconnected");
                self.publish_status();
            }
            NetEvent::PeerRefused { peer, address } => {
                warn!(%peer, %address, "refused a peer that is not a genesis member")
            }
            NetEvent::Listening(addr) => info!(%addr, "p2p listening"),
        }
        Ok(())
    }

    /// Answers a sync request from the store, within the response bounds.
    fn serve_sync(&self, request: SyncRequest) -> SyncResponse {
        let bounds = self.net.bounds();
        let store = self.read_store();
        let mut blocks = Vec::new();
        // The response frame: a count, then each block with a length prefix.
        let mut bytes = 4usize;
        let count = u64::from(request.max_blocks.min(net::SYNC_BLOCKS_MAX));
        for h in request.from_height.max(1)..request.from_height.max(1).saturating_add(count) {
            let Ok(Some(cb)) = store.block(h) else { break };
            let mut buf = Vec::new();
            block::encode_certified(&cb, &mut buf);
            if bytes + 4 + buf.len() > bounds.sync.response_bytes_max {
                break;
            }
            bytes += 4 + buf.len();
            blocks.push(buf);
        }
        SyncResponse { blocks }
    }

    /// Asks a peer for the blocks after our head when we look behind.
    fn maybe_sync(&mut self, sync_tx: &mpsc::Sender<SyncResult>) {
        if self.sync_in_flight || (self.consensus.is_some() && !self.is_behind()) {
            return;
        }
        let peers = self.net.peers();
        if peers.is_empty() {
            return;
        }
        // Rotate through peers so a silent one does not stall us.
        let peer = peers[(self.tip.height as usize + self.resend_counter as usize) % peers.len()].clone();
        self.resend_counter += 1;
        let request = SyncRequest { from_height: self.tip.height + 1, max_blocks: net::SYNC_BLOCKS_MAX };
        let net = self.net.clone();
        let tx = sync_tx.clone();
        self.sync_in_flight = true;
        tokio::spawn(async move {
            let result = net.request_blocks(peer.clone(), request).await;
            let _ = tx.send((peer, result)).await;
        });
    }

    async fn on_sync_response(
        &mut self,
        peer: MemberName,
        result: Result<SyncResponse, net::NetError>,
    ) -> Result<(), NodeError> {
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                debug!(%peer, error = %e, "sync request failed");
                return Ok(());
            }
        };
        let records_max = self.ctx.genesis.consensus.block_records_max as usize;
        let before = self.tip.height;
        for bytes in response.blocks {
            let cb = match block::decode_certified_exact(&bytes, records_max) {
                Ok(cb) => cb,
                Err(e) => {
                    warn!(%peer, error = %e, "peer sent a malformed block");
                    break;
                }
            };
            if cb.block.header.height <= self.tip.height {
                continue;
            }
            let vb = {
                let store = self.read_store();
                match verify::verify_block(&self.ctx, &self.tip, &*store, cb) {
                    Ok(vb) => vb,
                    Err(e) => {
                        warn!(%peer, error = %e, "peer sent a block that does not verify");
                        break;
                    }
                }
            };
            self.store_block(&vb, Instant::now())?;
        }
        if self.tip.height > before {
            info!(from = before + 1, to = self.tip.height, %peer, "synced");
            self.pending_build = None;
            self.timers.clear();
            self.step(Input::Synced { height: self.tip.height }).await?.unwrap_or_default();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use credence_ledger::attestation::{RdCategory, RdSpend};
    use credence_ledger::demo::{self, ChainBuilder, EXAMPLE_GENESIS_TIME_MS};
    use credence_ledger::hash::Hash;
    use credence_ledger::ids::{Currency, Money, Period, Uscc};
    use credence_ledger::store::MemStore;

    struct Fixture {
        builder: ChainBuilder,
        ctx: Arc<ChainContext>,
        store: SharedStore,
        mempool: Arc<Mutex<Mempool>>,
        verifier: Verifier,
        metrics: Metrics,
    }

    fn fixture() -> Fixture {
        let builder = ChainBuilder::new(5, EXAMPLE_GENESIS_TIME_MS).expect("demo chain");
        let ctx = Arc::new(ChainContext::new(builder.genesis().clone()));
        let store: SharedStore = Arc::new(RwLock::new(MemStore::new(builder.genesis())));
        let mempool = Arc::new(Mutex::new(Mempool::new(ctx.clone(), MempoolLimits::default())));
        let verifier = Verifier::new(ctx.clone());
        Fixture { builder, ctx, store, mempool, verifier, metrics: Metrics::new() }
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
                        amount: Money { fen: 100_000 + i, currency: Currency::CNY },
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
            admit_gossiped(&self.verifier, &self.store, &self.mempool, &self.metrics, &data)
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
        assert_eq!(f.metrics.signatures_verified.get(), 50, "one check per attestation");
        assert_eq!(f.metrics.attestations_admitted.get(), 50);
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
        assert_eq!(f.metrics.signatures_invalid.get(), 1);
        // Records before the forged one are admitted; those after wait for its sequence.
        assert_eq!(f.pending(), 9);

        let f = fixture();
        let mut batch = f.records(3, 3);
        batch.push(vec![1, 2, 3]);
        assert_eq!(f.ingest(&batch), Validation::Reject, "not an attestation");
        assert_eq!(f.pending(), 3);

        let f = fixture();
        for garbage in [vec![], vec![0x03], vec![0x03, 5, 0, 0, 0, 1], vec![0x01; 64], vec![0x03, 0, 0, 0, 0]] {
            assert_eq!(admit_gossiped(&f.verifier, &f.store, &f.mempool, &f.metrics, &garbage), Validation::Reject);
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
