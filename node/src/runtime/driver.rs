//! The consensus driver: hosts the replica core with tokio timers, libp2p and the disk, and carries out its actions in order.
//!
//! Inputs are polled in a fixed order (`biased`): shutdown, consensus messages and
//! other network events, our sync answers, a pool that got records, the replica's
//! wake-up, then the status tick. Consensus messages waiting together (up to
//! [`CONSENSUS_DRAIN_MAX`]) are handed over as one batch, so their signatures are
//! checked with one batch equation. Peers' sync requests never come here (see
//! [`super::sync_server`]).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use credence_ledger::ids::MemberName;
use credence_ledger::verify::ChainContext;
use tokio::sync::{Notify, mpsc, watch};
use tracing::{debug, info, warn};

use crate::api::NodeStatus;
use crate::byzantine::Byzantine;
use crate::consensus::Message;
use crate::consensus::compact::{CompactProposal, Filling};
use crate::consensus::replica::{Action, Clock, Notice, Replica, SyncAnswer, Verdict};
use crate::consensus::sync::SyncRequest;
use crate::metrics::Metrics;
use crate::net::{self, NetEvent, NetHandle, SyncResponse, Topic, Validation};
use crate::wire;

use super::locked_store::LockedStore;
use super::{NodeError, now_ms, sign_state};

/// Most consensus messages taken from the inbox at once and stepped together.
pub const CONSENSUS_DRAIN_MAX: usize = 64;
/// How often the node's status (peers, syncing) is published.
pub const STATUS_INTERVAL: Duration = Duration::from_millis(1000);

/// The node's two clocks: the wall clock (with a test-only skew) and a monotonic one.
#[derive(Clone, Copy, Debug)]
pub struct Clocks {
    origin: Instant,
    skew_ms: i64,
}

impl Clocks {
    pub fn new(skew_ms: i64) -> Clocks {
        Clocks { origin: Instant::now(), skew_ms }
    }

    pub fn now(&self) -> Clock {
        let wall = now_ms();
        let wall_ms = if self.skew_ms >= 0 {
            wall.saturating_add(self.skew_ms.unsigned_abs())
        } else {
            wall.saturating_sub(self.skew_ms.unsigned_abs())
        };
        Clock { wall_ms, mono_ms: u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX) }
    }

    fn instant_at(&self, mono_ms: u64) -> tokio::time::Instant {
        let at = self
            .origin
            .checked_add(Duration::from_millis(mono_ms))
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::time::Instant::from_std(at)
    }
}

/// What the driver is built from.
#[allow(missing_debug_implementations)] // holds the network handle and the replica; nothing to print
pub struct Parts {
    pub replica: Replica<LockedStore>,
    pub ctx: Arc<ChainContext>,
    pub net: NetHandle,
    pub sign_state_path: PathBuf,
    pub status_tx: watch::Sender<NodeStatus>,
    pub metrics: Arc<Metrics>,
    pub byzantine: Option<Byzantine>,
    pub clock: Clocks,
    pub pool_changed: Arc<Notify>,
    /// Snapshot statements to compute at their heights (a node with `snapshot_interval_heights` > 0).
    pub statements: Option<Arc<crate::snapshot::Statements>>,
}

/// What a sync request task reports back: the peer, the request, and its answer with the
/// signatures checked ahead (on a `sync-check` thread), or why there is none.
type SyncResult = (MemberName, SyncRequest, Result<SyncAnswer, net::NetError>);

/// A peer that sent a block that does not decode or verify is not asked for blocks for
/// this long (unless no other peer is connected).
pub const SYNC_BAD_PEER_PAUSE: Duration = Duration::from_secs(30);

#[allow(missing_debug_implementations)]
pub struct Driver {
    replica: Replica<LockedStore>,
    ctx: Arc<ChainContext>,
    net: NetHandle,
    sign_state_path: PathBuf,
    status_tx: watch::Sender<NodeStatus>,
    metrics: Arc<Metrics>,
    byzantine: Option<Byzantine>,
    clock: Clocks,
    pool_changed: Arc<Notify>,
    /// Distinguishes re-sent consensus messages from the originals (gossip dedupes by content).
    resend_counter: u64,
    /// Rotates sync requests through the peers.
    sync_turn: usize,
    /// Who was asked for the blocks from each height (to blame a bad answer held back),
    /// at most `4 × SYNC_PENDING_OUTBOUND_MAX` entries.
    sync_asked: std::collections::HashMap<u64, MemberName>,
    /// Sync answers whose signatures are being checked at once, each on a thread of its
    /// own below the driver's priority ([`SYNC_CHECK_NICE`]): one per core.
    sync_checks: Arc<tokio::sync::Semaphore>,
    /// Peers that sent a bad block, and until when they are not asked.
    sync_paused: std::collections::HashMap<MemberName, Instant>,
    /// When the replica call whose actions are being carried out began (commit latency).
    step_started: Instant,
    /// The digest of the governance roster whose members the network's allow-list holds.
    allow_digest: Option<credence_ledger::hash::Hash>,
    statements: Option<Arc<crate::snapshot::Statements>>,
}

/// A consensus message from gossip.
fn is_consensus(e: &NetEvent) -> bool {
    matches!(e, NetEvent::Gossip { topic: Topic::Consensus, .. })
}

impl Driver {
    pub fn new(p: Parts) -> Driver {
        let checks = p.ctx.threads.max(1);
        Driver {
            replica: p.replica,
            ctx: p.ctx,
            net: p.net,
            sign_state_path: p.sign_state_path,
            allow_digest: None,
            status_tx: p.status_tx,
            metrics: p.metrics,
            byzantine: p.byzantine,
            clock: p.clock,
            pool_changed: p.pool_changed,
            resend_counter: 0,
            sync_turn: 0,
            sync_paused: std::collections::HashMap::new(),
            sync_checks: Arc::new(tokio::sync::Semaphore::new(checks)),
            sync_asked: std::collections::HashMap::new(),
            step_started: Instant::now(),
            statements: p.statements,
        }
    }

    /// After the commit of `height`: if a snapshot statement is due, takes a read view of the
    /// store (a read transaction and a copy of the staged index entries; the only work done
    /// here) and computes, signs and keeps the statement on the blocking pool, never holding
    /// the store's lock. During a synced run the head may be past `height`: then none.
    fn statement_after_commit(&self, height: u64) {
        let Some(s) = &self.statements else { return };
        if !s.due(height) {
            return;
        }
        let view = match credence_ledger::store::Store::read_view(self.replica.store()) {
            Ok(Some(v)) => v,
            Ok(None) => return,
            Err(e) => {
                warn!(height, error = %e, "no read view for the snapshot statement");
                return;
            }
        };
        if view.head().ok().flatten().map(|h| h.height) != Some(height) {
            debug!(height, "snapshot statement skipped: the store is past the height");
            return;
        }
        let s = Arc::clone(s);
        tokio::task::spawn_blocking(move || match s.compute(&*view) {
            Ok(v) => info!(height = v.height, digest = %v.digest, "snapshot statement signed"),
            Err(e) => debug!(height, error = %e, "no snapshot statement"),
        });
    }

    pub async fn run(
        &mut self,
        mut events: mpsc::Receiver<NetEvent>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), NodeError> {
        let (sync_tx, mut sync_rx) = mpsc::channel::<SyncResult>(net::SYNC_PENDING_OUTBOUND_MAX);
        self.step_started = Instant::now();
        let actions = self.replica.start(self.clock.now())?;
        self.carry_out(actions, &sync_tx).await?;
        let mut shutdown = std::pin::pin!(shutdown);
        let mut status_tick = tokio::time::interval(STATUS_INTERVAL);
        let pool_changed = Arc::clone(&self.pool_changed);
        loop {
            let wake = tokio::time::sleep_until(self.clock.instant_at(self.replica.next_wake_mono_ms()));
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
                                        self.on_net_event(e);
                                    }
                                }
                                Some(e) => self.on_net_event(e),
                                None => {
                                    warn!("network task stopped");
                                    return Ok(());
                                }
                            },
                            Some((peer, request, result)) = sync_rx.recv() => self.on_sync_response(peer, request, result, &sync_tx).await?,
                            () = pool_changed.notified() => {
                                self.step_started = Instant::now();
            let actions = self.replica.on_pool_changed(self.clock.now())?;
                                self.carry_out(actions, &sync_tx).await?;
                            }
                            () = wake => {
                                self.step_started = Instant::now();
            let actions = self.replica.on_tick(self.clock.now())?;
                                self.carry_out(actions, &sync_tx).await?;
                            }
                            _ = status_tick.tick() => self.publish_status(),
                        }
        }
    }

    fn publish_status(&self) {
        let s = &self.replica.stats;
        for (g, v) in self.metrics.compact_proposals.iter().zip([
            s.compact_filled,
            s.compact_filled_later,
            s.compact_dropped,
            s.compact_sent_whole,
        ]) {
            g.set(v);
        }
        let peers = self.net.peers().len();
        self.metrics.peers.set(peers as u64);
        let syncing = self.replica.is_behind();
        self.metrics.syncing.set(u64::from(syncing));
        self.status_tx.send_modify(|s| {
            s.peers = peers;
            s.syncing = syncing;
            s.round = self.replica.consensus().map(|c| c.round());
        });
    }

    /// Consensus gossip that arrived together: decoded, handed to the replica as one
    /// batch, each message's verdict reported to gossip validation.
    async fn on_consensus_messages(
        &mut self,
        events: Vec<NetEvent>,
        sync_tx: &mpsc::Sender<SyncResult>,
    ) -> Result<(), NodeError> {
        debug_assert!(events.len() <= CONSENSUS_DRAIN_MAX);
        let mut ids = Vec::with_capacity(events.len());
        let mut msgs = Vec::with_capacity(events.len());
        let mut compact = Vec::new();
        for event in events {
            let NetEvent::Gossip { topic: Topic::Consensus, id, data, from } = event else { continue };
            // A whole proposal's records this node holds in its mempool are taken from there,
            // not decoded a second time (the mempool lock, then nothing else: see
            // ARCHITECTURE.md §Locks).
            let decoded = data.get(8..).map(|m| {
                let pool = self.replica.mempool().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                wire::decode_reusing(m, &self.ctx.genesis, &mut |id| pool.get(id).map(|e| e.leaf.clone()))
            });
            match decoded {
                Some(Ok(wire::Gossip::Message(m))) => {
                    ids.push(id);
                    msgs.push(m);
                }
                Some(Ok(wire::Gossip::Compact(c))) => compact.push((id, c, from)),
                _ => {
                    debug!(%from, "malformed consensus message");
                    self.net.report(id, Validation::Reject);
                }
            }
        }
        self.step_started = Instant::now();
        // A compact proposal first: the votes that came with it are for its block.
        for (id, c, from) in compact {
            let (actions, verdict) = self.replica.on_compact(self.clock.now(), Arc::new(c), &from)?;
            self.carry_out(actions, sync_tx).await?;
            self.report(id, verdict);
        }
        if msgs.is_empty() {
            return Ok(());
        }
        let (actions, verdicts) = self.replica.on_messages(self.clock.now(), msgs)?;
        self.carry_out(actions, sync_tx).await?;
        debug_assert_eq!(verdicts.len(), ids.len());
        for (id, verdict) in ids.into_iter().zip(verdicts) {
            self.report(id, verdict);
        }
        Ok(())
    }

    /// The replica's verdict on a consensus message, to gossip validation.
    fn report(&self, id: net::GossipId, verdict: Verdict) {
        let v = match verdict {
            Verdict::Accept => Validation::Accept,
            Verdict::Reject(e) => {
                debug!(error = %e, "consensus message rejected");
                self.metrics.consensus_rejected.inc();
                Validation::Reject
            }
            Verdict::Ignore(_) => Validation::Ignore,
        };
        self.net.report(id, v);
    }

    fn on_net_event(&mut self, event: NetEvent) {
        match event {
            NetEvent::Gossip { topic: Topic::Attestations, id, .. } => {
                // Attestations arrive at the ingest task (`spawn_split`), never here.
                warn!("attestation gossip on the driver's channel; ignored");
                self.net.report(id, Validation::Ignore);
            }
            NetEvent::Gossip { topic: Topic::Consensus, id, .. } => self.net.report(id, Validation::Ignore),
            NetEvent::SyncRequest { reply, .. } => {
                // Sync requests arrive at the sync server (`spawn_split`), never here.
                warn!("sync request on the driver's channel; answered empty");
                self.net.respond(reply, SyncResponse { blocks: Vec::new() });
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
                warn!(%peer, %address, "refused a peer that is not a member in force")
            }
            NetEvent::Listening(addr) => info!(%addr, "p2p listening"),
        }
    }

    async fn on_sync_response(
        &mut self,
        peer: MemberName,
        request: SyncRequest,
        result: Result<SyncAnswer, net::NetError>,
        sync_tx: &mpsc::Sender<SyncResult>,
    ) -> Result<(), NodeError> {
        let answer = match result {
            Ok(a) => a,
            Err(e) => {
                debug!(%peer, error = %e, "sync request failed");
                self.replica.on_sync_failed(request);
                return Ok(());
            }
        };
        let before = self.replica.tip().height;
        self.step_started = Instant::now();
        let (actions, outcome) = self.replica.on_sync_answer(self.clock.now(), answer)?;
        self.metrics.sync_apply_us.add(micros(self.step_started.elapsed()));
        for bad in &outcome.bad {
            // The answer may be an earlier one, held until the blocks below it arrived.
            let who = self.sync_asked.remove(&bad.from_height).unwrap_or_else(|| peer.clone());
            warn!(peer = %who, from = bad.from_height, "peer sent a block that does not verify; not asked for a while");
            self.sync_paused.insert(who, Instant::now() + SYNC_BAD_PEER_PAUSE);
        }
        if outcome.stored > 0 {
            debug!(from = before + 1, to = self.replica.tip().height, %peer, "synced");
            self.metrics.synced_blocks.add(outcome.stored);
        }
        let tip = self.replica.tip().height;
        self.sync_asked.retain(|from, _| *from > tip);
        self.carry_out(actions, sync_tx).await
    }

    /// After a commit: if the members in force at the next height changed (an
    /// addition, a removal, a rotated or revoked key), the allow-list follows.
    async fn follow_members(&mut self, height: u64) {
        let (gov, roster) = match self.ctx.in_force(self.replica.store(), height + 1) {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "cannot read the governance state; the allow-list is unchanged");
                return;
            }
        };
        if self.allow_digest == Some(roster.digest) {
            return;
        }
        self.allow_digest = Some(roster.digest);
        if let Err(e) = self.net.set_members(super::members_in_force(&gov)).await {
            warn!(error = %e, "the network did not take the members in force");
        }
    }

    /// Carries out the replica's actions in order.
    async fn carry_out(&mut self, actions: Vec<Action>, sync_tx: &mpsc::Sender<SyncResult>) -> Result<(), NodeError> {
        for action in actions {
            match action {
                Action::PersistSignState(state) => sign_state::persist(&self.sign_state_path, &state)?,
                Action::Broadcast(m) => self.broadcast(&m, 0).await,
                Action::BroadcastCompact(c) => self.broadcast_compact(&c).await,
                Action::Resend(msgs) => {
                    self.resend_counter += 1;
                    for m in &msgs {
                        self.broadcast(m, self.resend_counter).await;
                    }
                }
                Action::RequestSync(request) => self.request_sync(request, sync_tx),
                Action::Committed { height, records, .. } => {
                    let tree_size = self.replica.tip().frontier.size();
                    self.metrics.observe_commit(height, tree_size, records, self.step_started.elapsed());
                    if let Ok(m) = self.replica.mempool().lock() {
                        self.metrics.observe_mempool(&m.stats());
                    }
                    debug!(height, records, "committed");
                    self.statement_after_commit(height);
                    self.follow_members(height).await;
                }
                Action::Notice(n) => match n {
                    Notice::ProposalInvalid { height, error } => {
                        self.metrics.proposals_invalid.inc();
                        warn!(height, %error, "proposed block is invalid")
                    }
                    Notice::DecidedBlockInvalid { height, error } => {
                        warn!(height, %error, "decided block does not verify; it will be fetched by sync")
                    }
                    Notice::SyncBlockInvalid { height, error } => warn!(height, %error, "synced block does not verify"),
                    Notice::BuildRecordRefused { index, error } => {
                        warn!(index, %error, "mempool record refused while building; proposing the records before it")
                    }
                    Notice::EvidenceNotAdmitted(e) => warn!(error = %e, "equivocation evidence not admitted"),
                    Notice::MempoolReset(e) => warn!(error = %e, "mempool emptied after a state read error"),
                },
            }
        }
        Ok(())
    }

    /// Our round-0 proposal, compact; a byzantine test mode rewrites the whole proposal.
    async fn broadcast_compact(&mut self, c: &Arc<CompactProposal>) {
        if self.byzantine.is_some() {
            let whole = {
                let pool = self.replica.mempool().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                Filling::new(Arc::clone(c), &pool).into_whole().ok()
            };
            if let Some(sp) = whole {
                self.broadcast(&Message::Proposal(sp), 0).await;
            }
            return;
        }
        self.publish(wire::encode_compact(c), 0).await;
    }

    async fn publish(&self, encoded: Vec<u8>, resend: u64) {
        // Gossip dedupes by content: an 8-byte resend counter in front makes a re-send new.
        let mut data = resend.to_le_bytes().to_vec();
        data.extend_from_slice(&encoded);
        if let Err(e) = self.net.publish(Topic::Consensus, data).await {
            debug!(error = %e, "consensus message not sent (no peers yet?)");
        }
    }

    async fn broadcast(&mut self, m: &Message, resend: u64) {
        let out = match self.byzantine.as_mut() {
            Some(b) => b.outgoing(&self.ctx, m),
            None => vec![m.clone()],
        };
        for m in &out {
            self.publish(wire::encode(m), resend).await;
        }
    }

    /// Asks the next peer in rotation (a silent one cannot stall us; one that sent a bad
    /// block lately is skipped while others are connected) for blocks. The answer's
    /// signatures are checked on a thread of its own ([`SyncChecker`](crate::consensus::replica::SyncChecker),
    /// at most one per core, [`SYNC_CHECK_NICE`] below the driver), in parallel with the
    /// driver applying earlier answers.
    fn request_sync(&mut self, request: SyncRequest, sync_tx: &mpsc::Sender<SyncResult>) {
        let now = Instant::now();
        self.sync_paused.retain(|_, until| *until > now);
        let all = self.net.peers();
        let good: Vec<MemberName> = all.iter().filter(|p| !self.sync_paused.contains_key(*p)).cloned().collect();
        let peers = if good.is_empty() { all } else { good };
        if peers.is_empty() {
            self.replica.on_sync_failed(request);
            return;
        }
        self.sync_turn = self.sync_turn.wrapping_add(1);
        let peer = peers[self.sync_turn % peers.len()].clone();
        if self.sync_asked.len() >= net::SYNC_PENDING_OUTBOUND_MAX * 4 {
            self.sync_asked.clear();
        }
        self.sync_asked.insert(request.from_height, peer.clone());
        let asked = net::SyncRequest { from_height: request.from_height, max_blocks: request.blocks_max };
        let net = self.net.clone();
        let tx = sync_tx.clone();
        let checker = self.replica.sync_checker();
        let metrics = Arc::clone(&self.metrics);
        let checks = Arc::clone(&self.sync_checks);
        tokio::spawn(async move {
            let sent = Instant::now();
            let fetched = net.request_blocks(peer.clone(), asked).await;
            metrics.sync_fetch_us.add(micros(sent.elapsed()));
            let result = match fetched {
                Ok(response) => {
                    let metrics = Arc::clone(&metrics);
                    // Closed never: the driver owns the semaphore for as long as it runs.
                    let permit = checks.acquire_owned().await.ok();
                    let (done, answer) = tokio::sync::oneshot::channel();
                    let spawned = std::thread::Builder::new().name("sync-check".into()).spawn(move || {
                        let _permit = permit;
                        lower_this_thread_priority();
                        let t = Instant::now();
                        let answer = checker.check(request, response.blocks);
                        metrics.sync_check_us.add(micros(t.elapsed()));
                        let _ = done.send(answer);
                    });
                    match spawned {
                        Ok(_) => answer
                            .await
                            .map_err(|_| net::NetError::Sync("checking the answer: its thread ended".into())),
                        Err(e) => Err(net::NetError::Sync(format!("cannot start a thread to check the answer: {e}"))),
                    }
                }
                Err(e) => Err(e),
            };
            let _ = tx.send((peer, request, result)).await;
        });
    }
}

/// How far below the driver's priority sync answers are checked (a nice value, Linux).
/// A check uses every core while the driver applies the answers before it: ahead of the
/// driver it would stall the commits it feeds, and consensus and the API with them.
pub const SYNC_CHECK_NICE: i32 = 10;

/// Lowers the calling thread's priority by [`SYNC_CHECK_NICE`] (threads it starts inherit
/// it). Best effort: where it cannot, the check runs at the driver's priority.
fn lower_this_thread_priority() {
    // On Linux, the calling process's priority is the calling thread's: each thread has its own.
    #[cfg(target_os = "linux")]
    let _ = rustix::process::setpriority_process(None, SYNC_CHECK_NICE);
}

/// Whole microseconds of `d` (saturating).
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
