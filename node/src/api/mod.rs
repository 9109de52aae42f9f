//! The node's HTTP API (axum): submit attestations, query the ledger, fetch proofs and checkpoints, status, health, metrics and the OpenAPI document.
//!
//! The driver builds an [`ApiState`] from the shared chain context, store, mempool,
//! status channel and metrics, binds a listener (127.0.0.1 by default, see
//! [`ApiConfig`]) and runs [`serve`]. Every route is listed in [`ROUTES`] and described
//! by `GET /openapi.json`.
//!
//! # Bounds (in [`ApiConfig`] unless a constant is named)
//! * request body ≤ 64 KiB (413 above); an attestation is ≤ 2,048 bytes anyway;
//! * `POST /v1/attestations/batch`: body ≤ 4 MiB (its own limit: 1,000 of the largest
//!   attestations in base64 fit), ≤ [`BATCH_ITEMS_MAX`] (1,000) items (413 above; items past
//!   the bound are counted, never stored), and ≤ 4 batch requests read and processed at
//!   once (others wait for a slot within the request timeout), so batch bodies hold at most
//!   16 MiB;
//! * each request is answered within 10 s (504 `timeout` otherwise);
//! * ≤ 256 connections at once (further connections wait in the kernel backlog), and a
//!   connection on which no byte moves for 30 s is closed;
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

mod error;
mod handlers;
mod openapi;
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
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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
pub use openapi::ApiDoc;

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
}

impl NodeReader for StoreView<'_> {
    fn node(&self, level: u8, index: u64) -> Result<NodeHash, MerkleError> {
        self.0.node(level, index)
    }
    fn stored_size(&self) -> Option<u64> {
        self.0.stored_size()
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

/// Every route the API serves (axum path syntax). Metrics label requests by these.
pub const ROUTES: &[&str] = &[
    "/v1/attestations",
    "/v1/attestations/batch",
    "/v1/attestations/{id}",
    "/v1/enterprises/{uscc}/attestations",
    "/v1/patents/{number}/attestations",
    "/v1/attesters/{member}/attestations",
    "/v1/attesters/{member}/next-sequence",
    "/v1/blocks/{height}",
    "/v1/blocks/{height}/certified",
    "/v1/status",
    "/v1/checkpoint",
    "/v1/genesis",
    "/v1/proofs/inclusion/{id}",
    "/v1/proofs/consistency",
    "/healthz",
    "/metrics",
    "/openapi.json",
];

/// The API's listening address and bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// Largest request body; larger bodies get 413.
    pub body_bytes_max: usize,
    /// Largest body of `POST /v1/attestations/batch` (its own limit); larger bodies get 413.
    pub batch_body_bytes_max: usize,
    /// Most batch requests read and processed at once; further ones wait for a slot.
    pub batches_max: usize,
    /// Longest time to answer one request (body read included); then 504.
    pub request_timeout: Duration,
    /// Most connections served at once; further ones wait to be accepted.
    pub connections_max: usize,
    /// A connection on which no byte moves either way for this long is closed (idle
    /// keep-alive, stalled clients), so idle connections cannot hold every slot.
    pub idle_timeout: Duration,
    /// How long open connections may take to finish after shutdown is asked for.
    pub shutdown_grace: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: LISTEN_DEFAULT,
            body_bytes_max: BODY_BYTES_MAX_DEFAULT,
            batch_body_bytes_max: BATCH_BODY_BYTES_MAX_DEFAULT,
            batches_max: BATCHES_MAX_DEFAULT,
            request_timeout: REQUEST_TIMEOUT_DEFAULT,
            connections_max: CONNECTIONS_MAX_DEFAULT,
            idle_timeout: IDLE_TIMEOUT_DEFAULT,
            shutdown_grace: SHUTDOWN_GRACE_DEFAULT,
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
    /// Slots for batch requests ([`ApiConfig::batches_max`]).
    batch_slots: Arc<Semaphore>,
    /// `GET /v1/genesis`, rendered once.
    genesis_toml: Bytes,
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
        let verifier = Arc::new(Verifier::new(ctx.clone()));
        let config = ApiConfig::default();
        let batch_slots = Arc::new(Semaphore::new(config.batches_max.max(1)));
        let genesis_toml = Bytes::from(ctx.genesis.to_toml());
        ApiState { ctx, store, mempool, status, metrics, on_admit: None, config, verifier, batch_slots, genesis_toml }
    }

    /// Offers every admitted attestation to `tx` (for gossip).
    pub fn with_gossip(mut self, tx: mpsc::Sender<Leaf>) -> ApiState {
        self.on_admit = Some(tx);
        self
    }

    pub fn with_config(mut self, config: ApiConfig) -> ApiState {
        self.config = config;
        self.batch_slots = Arc::new(Semaphore::new(config.batches_max.max(1)));
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
    let batch_body_max = state.config.batch_body_bytes_max;
    Router::new()
        .route("/v1/attestations", post(handlers::submit_attestation))
        // The inner limit replaces the router-wide one for this route.
        .route("/v1/attestations/batch", post(handlers::submit_batch).layer(DefaultBodyLimit::max(batch_body_max)))
        .route("/v1/attestations/{id}", get(handlers::get_attestation))
        .route("/v1/enterprises/{uscc}/attestations", get(handlers::enterprise_attestations))
        .route("/v1/patents/{number}/attestations", get(handlers::patent_attestations))
        .route("/v1/attesters/{member}/attestations", get(handlers::attester_attestations))
        .route("/v1/attesters/{member}/next-sequence", get(handlers::next_sequence))
        .route("/v1/blocks/{height}", get(handlers::get_block))
        .route("/v1/blocks/{height}/certified", get(handlers::get_certified_block))
        .route("/v1/status", get(handlers::status))
        .route("/v1/checkpoint", get(handlers::checkpoint))
        .route("/v1/genesis", get(handlers::genesis))
        .route("/v1/proofs/inclusion/{id}", get(handlers::inclusion_proof))
        .route("/v1/proofs/consistency", get(handlers::consistency_proof))
        .route("/healthz", get(handlers::healthz))
        .route("/metrics", get(handlers::metrics))
        .route("/openapi.json", get(handlers::openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
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

/// Per-request timeout and metrics (by route template, so label values stay bounded).
async fn track(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|m| ROUTES.iter().copied().find(|r| *r == m.as_str()))
        .unwrap_or("unmatched");
    let response = match tokio::time::timeout(state.config.request_timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "request",
            format!("not answered within {} ms", state.config.request_timeout.as_millis()),
        )
        .into_response(),
    };
    state.metrics.http_request(method.as_str(), route, response.status().as_u16(), start.elapsed());
    response
}

/// Serves the API on `listener` until `shutdown` completes, then lets open connections
/// finish for at most [`ApiConfig::shutdown_grace`].
pub async fn serve(
    listener: TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let config = state.config;
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let listener = BoundedListener {
        inner: listener,
        permits: Arc::new(Semaphore::new(config.connections_max.max(1))),
        idle_timeout: config.idle_timeout,
    };
    let server = axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        })
        .into_future();
    let mut server = std::pin::pin!(server);
    tokio::select! {
        result = &mut server => return result,
        () = shutdown => {}
    }
    let _ = stop_tx.send(true);
    match tokio::time::timeout(config.shutdown_grace, server).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(
                grace_ms = config.shutdown_grace.as_millis() as u64,
                "api: connections still open at shutdown"
            );
            Ok(())
        }
    }
}

/// A TCP listener that serves at most a fixed number of connections at once: it does
/// not accept while all permits are taken.
struct BoundedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    idle_timeout: Duration,
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

impl axum::serve::Listener for BoundedListener {
    type Io = BoundedIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (BoundedIo, SocketAddr) {
        // The semaphore is never closed, so this waits for a permit.
        let permit = self.permits.clone().acquire_owned().await.ok();
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return (BoundedIo::new(stream, self.idle_timeout, permit), addr);
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

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
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
