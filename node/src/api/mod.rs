//! The node's HTTP API (axum): submit attestations, query the ledger, fetch proofs and checkpoints, status, health, metrics, the OpenAPI document and the web console's files.
//!
//! The driver builds an [`ApiState`] from the shared chain context, store, mempool,
//! status channel and metrics, binds a listener (127.0.0.1 by default, see
//! [`ApiConfig`]) and runs [`serve`]. Every route is listed in [`ROUTES`] and described
//! by `GET /openapi.json`.
//!
//! # Bounds (in [`ApiConfig`] unless a constant is named)
//! * request body ≤ 64 KiB (413 above); an attestation is ≤ 2,048 bytes anyway;
//! * a request body is read in full, within its byte limit and within 5 s of the handler's
//!   start ([`BODY_READ_TIMEOUT_DEFAULT`]), before any work is done on it: 413
//!   `payload_too_large` above the limit (at once when `Content-Length` states more), 408
//!   `timeout` (field `body`) when it is not complete by then; either answer ends the
//!   connection. A body's buffer starts at ≤ [`BODY_PREALLOC_BYTES`] and grows only with the
//!   bytes that arrive, so a slow body costs its connection and little memory;
//! * `POST /v1/attestations/batch`: body ≤ 4 MiB (its own limit: 1,000 of the largest
//!   attestations in base64 fit), ≤ [`BATCH_ITEMS_MAX`] (1,000) items (413 above; items past
//!   the bound are counted, never stored). ≤ 64 batch bodies are read or held at once
//!   ([`BATCH_BODIES_MAX_DEFAULT`]; 503 `busy` with `Retry-After` above, without reading),
//!   so batch bodies hold at most 256 MiB (a held batch keeps its decoded items, smaller
//!   than its base64 body; parsing briefly holds both, on one runtime thread each); one
//!   client holds at most 32 of them (its connection cap: a connection reads one body at a
//!   time). Only a batch read in full takes one of 4 batch slots ([`BATCHES_MAX_DEFAULT`])
//!   for its verification and admission; others wait for a slot within the request timeout.
//!   A slow body never holds a slot;
//! * each request is answered within 10 s, body read included (504 `timeout` otherwise);
//! * a request's head (request line and headers) must arrive within 5 s of its first byte
//!   and fit in 16 KiB ([`HEADER_READ_TIMEOUT_DEFAULT`], [`HEADER_BUF_BYTES`]; the connection is
//!   closed, or 431 for an oversized head), so a slow-header client holds a slot for 5 s at most;
//! * ≤ 256 connections at once (further connections wait in the kernel backlog), ≤ 32 of them
//!   from one client (429 `too_many_connections` above), and a connection on which no byte
//!   moves for 30 s is closed. A connection reads at most one body at a time, so bodies are
//!   read on ≤ 256 connections at once, ≤ 32 per client;
//! * each client (IPv4 address or IPv6 /64) may make 100 requests per second on average, in
//!   bursts of up to 200 ([`RateLimit`]; `[api]` in node.toml); above that 429 `rate_limited`
//!   with `Retry-After`, before the body is read. `/healthz` and `/metrics` are not limited, so
//!   a limited client's monitoring still works. The limiter keeps ≤ [`limits::CLIENTS_MAX`]
//!   clients (see `limits.rs`);
//! * query pages ≤ 1,000 items (`limit` above is refused, not clamped);
//! * on shutdown, connections get 5 s to finish.
//!
//! # Concurrency
//! Store reads and admission (signature check, rules) run on tokio's blocking pool, so
//! a slow disk never stalls the runtime that also drives consensus and networking.
//! Submission, single or batched, is one path: decode every item, check all signatures
//! with one batched ZIP-215 call and no lock held, then admit in input order under one
//! store read lock and one mempool lock.
//! Locks are `std` locks held only inside those synchronous sections, never across an
//! `.await`; when both are needed, the store lock is taken before the mempool lock.

pub mod access;
pub mod console;
mod error;
mod handlers;
pub mod limits;
mod openapi;
pub mod query_log;
pub mod tiles;
pub mod views;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header::{CONNECTION, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::Sleep;

use credence_ledger::attestation::AttestationId;
use credence_ledger::block::Leaf;
use credence_ledger::ids::PatentNumber;
use credence_ledger::merkle::{MerkleError, NodeHash, NodeReader};
use credence_ledger::rules::{RecordMeta, StateView};
use credence_ledger::store::{Store, StoreError};
use credence_ledger::verify::ChainContext;

pub use error::ApiError;
pub use limits::RateLimit;
pub use openapi::ApiDoc;

use limits::{ConnectionCounter, RateLimiter};

use crate::mempool::{Mempool, Verifier};
use crate::metrics::Metrics;

/// The store as the API and the driver share it. Reads take the read lock briefly; the
/// driver takes the write lock to commit.
pub type SharedStore = Arc<RwLock<dyn Store + Send + Sync>>;

/// A sized view of a shared store for the ledger's generic functions (`verify_block`,
/// `apply_block`, `check_attestation`, the Merkle proofs), which cannot take a trait
/// object: `verify_block(&ctx, &tip, &StoreView(&*guard), cb)`.
#[derive(Clone, Copy)]
pub struct StoreView<'a>(pub &'a (dyn Store + Send + Sync));

impl std::fmt::Debug for StoreView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreView")
    }
}

impl StateView for StoreView<'_> {
    type Error = StoreError;
    fn next_sequence(&self, attester: u16) -> Result<u64, StoreError> {
        self.0.next_sequence(attester)
    }
    fn record(&self, id: &AttestationId) -> Result<Option<RecordMeta>, StoreError> {
        self.0.record(id)
    }
    fn active_pledge(&self, patent: &PatentNumber) -> Result<Option<AttestationId>, StoreError> {
        self.0.active_pledge(patent)
    }
    fn governance(&self) -> Result<Option<Arc<credence_ledger::governance::GovState>>, StoreError> {
        self.0.governance()
    }
    fn fact(
        &self,
        key: &credence_ledger::loan_rules::FactKey,
    ) -> Result<Option<credence_ledger::loan_rules::Fact>, StoreError> {
        self.0.fact(key)
    }
}

impl NodeReader for StoreView<'_> {
    fn node(&self, level: u8, index: u64) -> Result<NodeHash, MerkleError> {
        self.0.node(level, index)
    }
    fn stored_size(&self) -> Option<u64> {
        self.0.stored_size()
    }
    fn nodes(&self, level: u8, start: u64, count: usize, out: &mut Vec<NodeHash>) -> Result<(), MerkleError> {
        self.0.nodes(level, start, count, out)
    }
}

/// Default [`ApiConfig::listen`]: loopback only; expose it deliberately.
pub const LISTEN_DEFAULT: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8321);
/// Default [`ApiConfig::body_bytes_max`].
pub const BODY_BYTES_MAX_DEFAULT: usize = 64 * 1024;
/// Default [`ApiConfig::request_timeout`].
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// Default [`ApiConfig::connections_max`].
pub const CONNECTIONS_MAX_DEFAULT: usize = 256;
/// Default [`ApiConfig::idle_timeout`].
pub const IDLE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// Default [`ApiConfig::shutdown_grace`].
pub const SHUTDOWN_GRACE_DEFAULT: Duration = Duration::from_secs(5);
/// Largest `limit` of a paged query (the store's `QUERY_LIMIT_MAX`).
pub const PAGE_LIMIT_MAX: usize = credence_ledger::store::QUERY_LIMIT_MAX;
/// `limit` of a paged query when none is given.
pub const PAGE_LIMIT_DEFAULT: usize = 100;
/// Most attestations in one `POST /v1/attestations/batch`.
pub const BATCH_ITEMS_MAX: usize = 1000;
/// Default [`ApiConfig::batch_body_bytes_max`]: 1,000 base64 attestations of the largest
/// size (2,732 characters each) plus JSON punctuation fit.
pub const BATCH_BODY_BYTES_MAX_DEFAULT: usize = 4 * 1024 * 1024;
/// Default [`ApiConfig::batches_max`].
pub const BATCHES_MAX_DEFAULT: usize = 4;
/// Default [`ApiConfig::batch_bodies_max`]: twice [`CONNECTIONS_PER_CLIENT_MAX_DEFAULT`], so
/// one client's slow bodies can hold at most half of them; 64 × 4 MiB = 256 MiB at most.
pub const BATCH_BODIES_MAX_DEFAULT: usize = 64;
/// Default [`ApiConfig::body_read_timeout`]: 5 s. It must end well inside
/// [`REQUEST_TIMEOUT_DEFAULT`] (10 s) so that a slow body is answered 408 and the other 5 s are
/// left for waiting for a batch slot and for verification (tens of milliseconds for 1,000
/// signatures). At 5 s a 4 MiB batch needs 0.8 MiB/s and a typical batch (1,000 R&D
/// attestations, about 300 KB of base64) 60 KB/s, far below what members' systems on a
/// datacenter or office network send; it is also the header deadline, so a client that is
/// slow in both holds its connection 10 s at most.
pub const BODY_READ_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
/// Largest buffer reserved for a body before its bytes arrive (whatever `Content-Length`
/// states); it then grows with what is received.
pub const BODY_PREALLOC_BYTES: usize = 64 * 1024;
/// Default [`ApiConfig::rate`]: per client, 100 requests per second in bursts of up to 200.
pub const RATE_DEFAULT: RateLimit = RateLimit { per_second: 100, burst: 200 };
/// Default [`ApiConfig::header_read_timeout`].
pub const HEADER_READ_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
/// Default [`ApiConfig::connections_per_client_max`].
pub const CONNECTIONS_PER_CLIENT_MAX_DEFAULT: usize = 32;
/// Read buffer of a connection, which bounds a request's head (hyper answers 431 above it).
pub const HEADER_BUF_BYTES: usize = 16 * 1024;

// A client cannot hold every batch body with its own connections, and a slow body is
// answered 408 before the request timeout's 504.
const _: () = assert!(BATCH_BODIES_MAX_DEFAULT > CONNECTIONS_PER_CLIENT_MAX_DEFAULT);
const _: () = assert!(BODY_READ_TIMEOUT_DEFAULT.as_millis() < REQUEST_TIMEOUT_DEFAULT.as_millis());

/// Every route the API serves (axum path syntax). Metrics label requests by these.
pub const ROUTES: &[&str] = &[
    "/v1/attestations",
    "/v1/attestations/batch",
    "/v1/attestations/{id}",
    "/v1/attestations/{id}/references",
    "/v1/attestations/{id}/openings",
    "/v1/enterprises/{uscc}/attestations",
    "/v1/patents/{number}/attestations",
    "/v1/attesters/{member}/attestations",
    "/v1/attesters/{member}/next-sequence",
    "/v1/members/{member}/queries",
    "/v1/portfolio",
    "/v1/blocks/{height}",
    "/v1/blocks/{height}/certified",
    "/v1/status",
    "/v1/checkpoint",
    "/v1/genesis",
    "/v1/governance",
    "/v1/proofs/inclusion/{id}",
    "/v1/proofs/consistency",
    "/v1/set-changes",
    "/v1/snapshots/{height}/statement",
    "/healthz",
    "/metrics",
    "/openapi.json",
    "/checkpoint",
    "/tile/entries/{*path}",
    "/tile/{*path}",
    "/console",
    "/console/{asset}",
];

/// The API's listening address and bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// Largest request body; larger bodies get 413.
    pub body_bytes_max: usize,
    /// Largest body of `POST /v1/attestations/batch` (its own limit); larger bodies get 413.
    pub batch_body_bytes_max: usize,
    /// Most batches verified and admitted at once (batch slots); a batch takes one only once
    /// its body is read in full, and further ones wait for a slot.
    pub batches_max: usize,
    /// Most batch requests whose body is being read or held at once (503 `busy` above).
    pub batch_bodies_max: usize,
    /// Longest time to read a request body in full, from the handler's start; then 408.
    pub body_read_timeout: Duration,
    /// Longest time to answer one request (body read included); then 504.
    pub request_timeout: Duration,
    /// Most connections served at once; further ones wait to be accepted.
    pub connections_max: usize,
    /// A connection on which no byte moves either way for this long is closed (idle
    /// keep-alive, stalled clients), so idle connections cannot hold every slot.
    pub idle_timeout: Duration,
    /// How long open connections may take to finish after shutdown is asked for.
    pub shutdown_grace: Duration,
    /// Per-client request rate (429 `rate_limited` above it).
    pub rate: RateLimit,
    /// Longest time from a request's first byte to the end of its headers; then the
    /// connection is closed (slow-header clients).
    pub header_read_timeout: Duration,
    /// Most connections from one client at once (429 `too_many_connections` above).
    pub connections_per_client_max: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: LISTEN_DEFAULT,
            body_bytes_max: BODY_BYTES_MAX_DEFAULT,
            batch_body_bytes_max: BATCH_BODY_BYTES_MAX_DEFAULT,
            batches_max: BATCHES_MAX_DEFAULT,
            batch_bodies_max: BATCH_BODIES_MAX_DEFAULT,
            body_read_timeout: BODY_READ_TIMEOUT_DEFAULT,
            request_timeout: REQUEST_TIMEOUT_DEFAULT,
            connections_max: CONNECTIONS_MAX_DEFAULT,
            idle_timeout: IDLE_TIMEOUT_DEFAULT,
            shutdown_grace: SHUTDOWN_GRACE_DEFAULT,
            rate: RATE_DEFAULT,
            header_read_timeout: HEADER_READ_TIMEOUT_DEFAULT,
            connections_per_client_max: CONNECTIONS_PER_CLIENT_MAX_DEFAULT,
        }
    }
}

/// What the driver and the network know that the store does not; published through a
/// `tokio::sync::watch` channel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStatus {
    /// Connected peers.
    pub peers: usize,
    /// True while catching up by block sync.
    pub syncing: bool,
    /// This node's member name, if it has one.
    pub member: Option<String>,
    /// True if this node is a validator.
    pub validator: bool,
    /// The consensus round at the current height, if taking part in consensus.
    pub round: Option<u32>,
}

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    pub ctx: Arc<ChainContext>,
    pub store: SharedStore,
    pub mempool: Arc<Mutex<Mempool>>,
    pub status: watch::Receiver<NodeStatus>,
    pub metrics: Arc<Metrics>,
    /// Admitted attestations are offered here (non-blocking) for gossip. The channel's
    /// capacity is the bound; when it is full the announcement is dropped (the record
    /// stays in the mempool and is still proposed by this node).
    pub on_admit: Option<mpsc::Sender<Leaf>>,
    pub config: ApiConfig,
    verifier: Arc<Verifier>,
    /// Slots for verifying and admitting batches ([`ApiConfig::batches_max`]).
    batch_slots: Arc<Semaphore>,
    /// Permits for batch bodies being read or held ([`ApiConfig::batch_bodies_max`]).
    batch_bodies: Arc<Semaphore>,
    /// Per-client request rate ([`ApiConfig::rate`]).
    limiter: Arc<RateLimiter>,
    /// `GET /v1/genesis`, rendered once.
    genesis_toml: Bytes,
    /// Signatures seen and not yet expired ([`access::REPLAY_ENTRIES_MAX`]).
    replay: access::SharedReplay,
    /// Where restricted reads are logged; `None` on a node without a member key.
    query_log: Option<query_log::QueryLog>,
    /// This node's member and the openings of its confidential amounts; `None` on a node
    /// without a member key (it keeps no openings).
    openings: Option<(credence_ledger::ids::MemberName, Arc<crate::openings::OpeningStore>)>,
    /// Serving a data directory to its holder (`credence ... --data-dir`): no signatures,
    /// everything shown, nothing logged (whoever holds the store file holds every record).
    offline: bool,
    /// Full tiles served recently (`tiles.rs`).
    tiles: Arc<tiles::TileCache>,
    /// The cosignatures of the witnesses in force (genesis's or governance's), served with the checkpoint they sign.
    pub cosignatures: Arc<crate::witness_client::Cosignatures>,
    /// `GET /v1/portfolio`'s computation, kept between requests (memory grows with the
    /// ledger's loans, appraisals and enrolments, not with its records).
    pub(crate) portfolio: Arc<Mutex<PortfolioCache>>,
    /// This node's snapshot statements (`GET /v1/snapshots/{height}/statement`), if it makes any.
    pub statements: Option<Arc<crate::snapshot::Statements>>,
}

/// The portfolio computed over the first `tree_size` leaves.
#[derive(Debug, Default)]
pub(crate) struct PortfolioCache {
    pub(crate) tree_size: u64,
    pub(crate) portfolio: credence_ledger::portfolio::Portfolio,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("chain_id", &self.ctx.chain_id)
            .field("config", &self.config)
            .field("gossip", &self.on_admit.is_some())
            .finish_non_exhaustive()
    }
}

impl ApiState {
    pub fn new(
        ctx: Arc<ChainContext>,
        store: SharedStore,
        mempool: Arc<Mutex<Mempool>>,
        status: watch::Receiver<NodeStatus>,
        metrics: Arc<Metrics>,
    ) -> ApiState {
        let in_force = mempool.lock().unwrap_or_else(std::sync::PoisonError::into_inner).in_force();
        let verifier = Arc::new(Verifier::new(ctx.clone(), in_force));
        let config = ApiConfig::default();
        let batch_slots = Arc::new(Semaphore::new(config.batches_max.max(1)));
        let batch_bodies = Arc::new(Semaphore::new(config.batch_bodies_max.max(1)));
        let genesis_toml = Bytes::from(ctx.genesis.to_toml());
        let limiter = Arc::new(RateLimiter::new(config.rate));
        ApiState {
            ctx,
            store,
            mempool,
            status,
            metrics,
            on_admit: None,
            config,
            verifier,
            batch_slots,
            batch_bodies,
            limiter,
            genesis_toml,
            tiles: Arc::default(),
            portfolio: Arc::default(),
            cosignatures: Arc::default(),
            replay: Default::default(),
            query_log: None,
            openings: None,
            offline: false,
            statements: None,
        }
    }

    /// Serves the snapshot statements this node makes.
    pub fn with_statements(mut self, s: Option<Arc<crate::snapshot::Statements>>) -> ApiState {
        self.statements = s;
        self
    }

    /// Serves a data directory to the one who holds it (see the `offline` field): for
    /// `credence ... --data-dir` only, on a private loopback port; never for a node.
    pub fn offline(mut self) -> ApiState {
        self.offline = true;
        self
    }

    /// Logs restricted reads as query records signed by `signer` (the node's member); returns
    /// the logging task. Call after [`ApiState::with_gossip`] and [`ApiState::with_config`].
    pub fn with_query_log(
        mut self,
        signer: query_log::Signer,
    ) -> (ApiState, tokio::task::JoinHandle<Vec<credence_ledger::attestation::AttestationId>>) {
        let (log, task) = query_log::spawn(self.clone(), signer);
        self.query_log = Some(log);
        (self, task)
    }

    /// Keeps and discloses the openings of `member`'s confidential amounts (this node's member).
    pub fn with_openings(
        mut self,
        member: credence_ledger::ids::MemberName,
        store: Arc<crate::openings::OpeningStore>,
    ) -> ApiState {
        self.openings = Some((member, store));
        self
    }

    /// Serves the cosignatures the witness client collects (`witness_client.rs`).
    pub fn with_cosignatures(mut self, c: Arc<crate::witness_client::Cosignatures>) -> ApiState {
        self.cosignatures = c;
        self
    }

    /// Offers every admitted attestation to `tx` (for gossip).
    pub fn with_gossip(mut self, tx: mpsc::Sender<Leaf>) -> ApiState {
        self.on_admit = Some(tx);
        self
    }

    pub fn with_config(mut self, config: ApiConfig) -> ApiState {
        self.config = config;
        self.batch_slots = Arc::new(Semaphore::new(config.batches_max.max(1)));
        self.batch_bodies = Arc::new(Semaphore::new(config.batch_bodies_max.max(1)));
        self.limiter = Arc::new(RateLimiter::new(config.rate));
        self
    }

    pub(crate) fn read_store(&self) -> Result<RwLockReadGuard<'_, dyn Store + Send + Sync>, ApiError> {
        self.store.read().map_err(|_| ApiError::internal("store lock poisoned"))
    }

    pub(crate) fn lock_mempool(&self) -> Result<MutexGuard<'_, Mempool>, ApiError> {
        self.mempool.lock().map_err(|_| ApiError::internal("mempool lock poisoned"))
    }
}

/// Binds the configured address.
pub async fn bind(config: &ApiConfig) -> io::Result<TcpListener> {
    TcpListener::bind(config.listen).await
}

/// The API's routes with their bounds and middleware, ready to serve.
pub fn router(state: ApiState) -> Router {
    let body_max = state.config.body_bytes_max;
    Router::new()
        // The two POST routes read their bodies themselves, within their own limits and
        // deadline (`error::read_body`); the router-wide limit below is for any other
        // extractor that reads a body.
        .route("/v1/attestations", post(handlers::submit_attestation))
        .route("/v1/attestations/batch", post(handlers::submit_batch))
        .route("/v1/attestations/{id}", get(handlers::get_attestation))
        .route("/v1/attestations/{id}/references", get(handlers::attestation_references))
        .route("/v1/attestations/{id}/openings", get(handlers::attestation_openings))
        .route("/v1/enterprises/{uscc}/attestations", get(handlers::enterprise_attestations))
        .route("/v1/patents/{number}/attestations", get(handlers::patent_attestations))
        .route("/v1/attesters/{member}/attestations", get(handlers::attester_attestations))
        .route("/v1/attesters/{member}/next-sequence", get(handlers::next_sequence))
        .route("/v1/members/{member}/queries", get(handlers::member_queries))
        .route("/v1/portfolio", get(handlers::portfolio))
        .route("/v1/blocks/{height}", get(handlers::get_block))
        .route("/v1/blocks/{height}/certified", get(handlers::get_certified_block))
        .route("/v1/status", get(handlers::status))
        .route("/v1/checkpoint", get(handlers::checkpoint))
        .route("/v1/genesis", get(handlers::genesis))
        .route("/v1/governance", get(handlers::governance))
        .route("/v1/proofs/inclusion/{id}", get(handlers::inclusion_proof))
        .route("/v1/proofs/consistency", get(handlers::consistency_proof))
        .route("/v1/set-changes", get(handlers::set_changes))
        .route("/v1/snapshots/{height}/statement", get(handlers::snapshot_statement))
        .route("/healthz", get(handlers::healthz))
        .route("/metrics", get(handlers::metrics))
        .route("/openapi.json", get(handlers::openapi))
        .route("/checkpoint", get(tiles::checkpoint))
        .route("/tile/entries/{*path}", get(tiles::entry_bundle))
        .route("/tile/{*path}", get(tiles::tile))
        .route("/console", get(console::index))
        .route("/console/{asset}", get(console::asset))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), access::authenticate))
        .layer(middleware::from_fn_with_state(state.clone(), rate_limit))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .layer(DefaultBodyLimit::max(body_max))
        .with_state(state)
}

async fn not_found(req: Request) -> ApiError {
    let path: String = req.uri().path().chars().take(200).collect();
    ApiError::not_found("path", format!("no route {path}; see /openapi.json"))
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method",
        format!("{} is not allowed on this route; see /openapi.json", req.method()),
    )
}

/// The per-client request rate ([`ApiConfig::rate`]), checked before the body is read.
/// Requests without a peer address (the router used without [`serve`]) are not limited.
async fn rate_limit(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/healthz" || path == "/metrics" {
        return next.run(req).await;
    }
    let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() else {
        return next.run(req).await;
    };
    match state.limiter.check(peer.ip(), Instant::now()) {
        Ok(()) => next.run(req).await,
        Err(wait) => {
            let limit = state.limiter.limit();
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "client",
                format!(
                    "more than {} requests per second (bursts of {}) from {}; retry after {} ms",
                    limit.per_second,
                    limit.burst,
                    peer.ip(),
                    wait.as_millis().max(1)
                ),
            )
            .into_response();
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
            response
        }
    }
}

/// Per-request timeout and metrics (by route template, so label values stay bounded). A
/// request refused for its body (413 too large, 408 too slow) ends its connection: the rest
/// of that body is not read, so the connection cannot carry another request.
async fn track(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|m| ROUTES.iter().copied().find(|r| *r == m.as_str()))
        .unwrap_or("unmatched");
    let mut response = match tokio::time::timeout(state.config.request_timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "request",
            format!("not answered within {} ms", state.config.request_timeout.as_millis()),
        )
        .into_response(),
    };
    if matches!(response.status(), StatusCode::REQUEST_TIMEOUT | StatusCode::PAYLOAD_TOO_LARGE) {
        response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    }
    state.metrics.http_request(method.as_str(), route, response.status().as_u16(), start.elapsed());
    response
}

/// Serves the API on `listener` until `shutdown` completes, then lets open connections
/// finish for at most [`ApiConfig::shutdown_grace`].
///
/// The accept loop is ours rather than `axum::serve` because hyper's header-read timeout
/// needs a timer that `axum::serve` does not set. Each connection is HTTP/1.1 with a
/// [`HEADER_BUF_BYTES`] read buffer and [`ApiConfig::header_read_timeout`]; the loop takes a
/// connection permit before accepting (so at most [`ApiConfig::connections_max`] are served and
/// the rest wait in the kernel backlog) and refuses a client's connection beyond
/// [`ApiConfig::connections_per_client_max`] with a 429.
pub async fn serve(
    listener: TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let config = state.config;
    let app = router(state);
    let permits = Arc::new(Semaphore::new(config.connections_max.max(1)));
    let per_client = Arc::new(ConnectionCounter::new(config.connections_per_client_max));
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a receiver; `closed()` resolves when the last one ends.
    let (open_tx, open_rx) = watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.ok(),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = accept(&listener) => accepted,
            () = &mut shutdown => break,
        };
        let Some(slot) = per_client.open(peer.ip()) else {
            tokio::spawn(refuse_connection(stream, peer, config.connections_per_client_max));
            continue;
        };
        let io = TokioIo::new(BoundedIo::new(stream, config.idle_timeout, permit));
        let service = PeerService { router: app.clone(), peer };
        let mut stop = stop_rx.clone();
        let open = open_rx.clone();
        tokio::spawn(async move {
            let (_slot, _open) = (slot, open);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(config.header_read_timeout)
                .max_buf_size(HEADER_BUF_BYTES);
            let mut conn = std::pin::pin!(builder.serve_connection(io, service));
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = stop.wait_for(|stop| *stop) => {}
            }
            conn.as_mut().graceful_shutdown();
            let _ = conn.as_mut().await;
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(open_rx);
    if tokio::time::timeout(config.shutdown_grace, open_tx.closed()).await.is_err() {
        tracing::warn!(grace_ms = config.shutdown_grace.as_millis() as u64, "api: connections still open at shutdown");
    }
    Ok(())
}

/// The router for one connection: every request carries the peer's address.
#[derive(Clone)]
struct PeerService {
    router: Router,
    peer: SocketAddr,
}

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for PeerService {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = axum::routing::future::RouteFuture<std::convert::Infallible>;

    fn call(&self, req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let mut router = self.router.clone();
        tower_service::Service::call(&mut router, req)
    }
}

/// Accepts one connection, skipping per-connection errors and backing off on others.
async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let _ = stream.set_nodelay(true);
                return (stream, addr);
            }
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                // E.g. out of file descriptors: back off instead of spinning.
                tracing::warn!(error = %e, "api: accept failed");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Answers a connection over the per-client cap with a 429 and closes it (within 1 s).
async fn refuse_connection(mut stream: TcpStream, peer: SocketAddr, max: usize) {
    let body = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_connections",
        "client",
        format!("more than {max} open connections from {}", peer.ip()),
    )
    .into_body();
    let json = serde_json::to_vec(&body).unwrap_or_default();
    let head = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        json.len()
    );
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&json).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// A connection holding its permit until dropped, closed when no byte moves for the idle timeout.
struct BoundedIo {
    stream: TcpStream,
    idle_timeout: Duration,
    /// When the connection counts as stalled; pushed back by every byte read or written.
    deadline: Pin<Box<Sleep>>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl BoundedIo {
    fn new(stream: TcpStream, idle_timeout: Duration, permit: Option<OwnedSemaphorePermit>) -> BoundedIo {
        let deadline = Box::pin(tokio::time::sleep(idle_timeout));
        BoundedIo { stream, idle_timeout, deadline, _permit: permit }
    }

    fn progressed(&mut self) {
        let at = tokio::time::Instant::now() + self.idle_timeout;
        self.deadline.as_mut().reset(at);
    }

    /// Called when an operation would wait: an error once the connection has stalled too long.
    fn check_stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "connection idle too long"))),
            Poll::Pending => Poll::Pending,
        }
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

impl AsyncRead for BoundedIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.progressed();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.check_stalled(cx),
        }
    }
}

impl AsyncWrite for BoundedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write(cx, buf) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    self.progressed();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.check_stalled(cx),
        }
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.stream).poll_flush(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => self.check_stalled(cx),
        }
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    self.progressed();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.check_stalled(cx),
        }
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
