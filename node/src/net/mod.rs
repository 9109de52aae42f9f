//! The node's network layer: libp2p over TCP + Noise + Yamux, members-only (genesis allow-list), gossipsub with application validation, block sync by request-response, and identify.
//!
//! One tokio task owns the libp2p swarm. The application talks to it through a
//! cheap-to-clone [`NetHandle`] (commands over a bounded channel) and receives
//! [`NetEvent`]s on a bounded channel. Nothing here interprets ledger data:
//! gossip payloads and sync blocks are bytes the driver decodes and verifies.
//!
//! * **Identity.** A node's libp2p key is its genesis member key, so its
//!   `PeerId` derives from the public key in genesis ([`peer_id_of`]).
//! * **Allow-list.** Only genesis members may hold a connection, in either
//!   direction; an unknown peer is refused after the Noise handshake proves its
//!   key, logged (`warn`, with its `PeerId` and address) and reported as
//!   [`NetEvent::PeerRefused`]. Connections are limited in total
//!   ([`NetConfig::connections_max`]) and per peer ([`CONNECTIONS_PER_PEER_MAX`]).
//! * **Gossip.** Two topics, `credence/<genesis-hash-prefix>/attestations` and
//!   `…/consensus`. Messages carry no libp2p author or signature (anonymous
//!   mode): every payload holds its own signatures (attestations, proposals,
//!   votes), which the application checks, and every peer is a member
//!   authenticated by Noise, so a libp2p signature per message would only cost a
//!   signing and a check. Messages are identified by a hash of their content
//!   (duplicates are dropped) and held back until the application reports
//!   [`Validation::Accept`]: nothing unverified is forwarded.
//! * **Channels.** [`spawn_split`] hands attestation gossip to the application on
//!   a channel of its own ([`ATTESTATION_EVENTS_MAX`]), so a backlog of
//!   attestations never delays a consensus message or a sync request.
//! * **Sync.** `/credence/sync/1` (see [`sync`]): a request names a start height
//!   and a block count (≤ [`SYNC_BLOCKS_MAX`]); the answer is that many encoded
//!   certified blocks at most, within [`Bounds::sync`].
//!
//! Bounds: see the `*_MAX` constants and [`Bounds`]. When the event channel is
//! full the task does not wait: it drops the event and counts it
//! ([`NetStats`]); a dropped gossip message is reported `Ignore` (not forwarded,
//! no penalty), a dropped sync request is answered by closing its stream.

pub mod sync;
mod task;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use credence_ledger::block::HEADER_BYTES_MAX;
use credence_ledger::checkpoint::CHECKPOINT_BYTES_MAX;
use credence_ledger::genesis::Genesis;
use credence_ledger::ids::MemberName;
use credence_ledger::sig::{PublicKey, SecretKey};
use libp2p::gossipsub::MessageId;
pub use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

pub use sync::{SyncCodecError, SyncLimits};

/// Commands from [`NetHandle`]s to the network task. `publish` and
/// `request_blocks` wait for room; `report` and `respond` never wait: when the
/// channel is full they are dropped and counted ([`NetStats::commands_dropped`]).
pub const COMMANDS_MAX: usize = 1024;
/// Events from the network task to the application. When full, new events
/// are dropped and counted rather than blocking the swarm.
pub const EVENTS_MAX: usize = 1024;
/// Attestation gossip messages (batches of up to `wire::ATTESTATION_BATCH_MAX`)
/// waiting for the application when it takes them separately ([`spawn_split`]).
/// When full, new ones are dropped and reported `Ignore` (counted in
/// [`NetStats::gossip_dropped`]); their records stay pending at their origin.
pub const ATTESTATION_EVENTS_MAX: usize = 64;
/// Sync requests this node has outstanding at once; more fail with [`NetError::Busy`].
pub const SYNC_PENDING_OUTBOUND_MAX: usize = 8;
/// Inbound sync requests waiting for the application's answer; more are refused
/// (their stream is closed) until answers or timeouts free a slot.
pub const SYNC_PENDING_INBOUND_MAX: usize = 32;
/// Most blocks one sync request may ask for; larger requests are capped (the replica core's bound).
pub const SYNC_BLOCKS_MAX: u32 = credence_consensus::sync::SYNC_BLOCKS_MAX;
/// Most bytes of one sync response, unless one maximal block of the chain is
/// larger: then the bound is one such block (so sync always progresses). The replica
/// core's bound, by which it sizes its requests.
pub const SYNC_RESPONSE_BYTES_MAX: usize = credence_consensus::sync::SYNC_ANSWER_BYTES_MAX;
/// How long a sync request may take, end to end.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent sync streams on one connection (inbound and outbound).
pub const SYNC_STREAMS_MAX: usize = 16;
/// Connections to one peer (two allow a simultaneous dial from both sides).
pub const CONNECTIONS_PER_PEER_MAX: u32 = 2;
/// Room for a consensus message's own fields around the block it carries.
pub const GOSSIP_MESSAGE_OVERHEAD: usize = 2 * 1024;
/// Room for gossipsub's envelope (author, sequence number, signature, topic, framing).
pub const GOSSIP_ENVELOPE_BYTES: usize = 2 * 1024;
/// Messages queued for sending on one connection; when full, gossipsub drops
/// forwards first and reports the peer as slow (bounds memory per slow peer to
/// this many messages of at most [`Bounds::gossip_transmit_max`] bytes).
pub const GOSSIP_QUEUE_MAX: usize = 512;
/// A member connection that no protocol needs is closed after this long. Long on
/// purpose: a consortium has few members and consensus wants all of them at
/// hand, so connections outside the gossip mesh stay open; the connection
/// limits bound them.
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// How long `spawn` waits for the listener's first address.
pub const LISTEN_TIMEOUT: Duration = Duration::from_secs(5);
/// First and longest delay between dials of an unreachable bootstrap address.
pub const REDIAL_DELAY_MIN: Duration = Duration::from_secs(2);
pub const REDIAL_DELAY_MAX: Duration = Duration::from_secs(60);

/// Size bounds of network messages, derived from the genesis consensus parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Most bytes of one encoded certified block: header and certificate note
    /// chunks, the record count, and `block_records_max` length-prefixed records
    /// totalling at most `block_bytes_max` (docs/encoding.md §8).
    pub certified_block_bytes_max: usize,
    /// Most bytes of a gossip payload (a consensus proposal carries a whole block; an
    /// attestation batch is at most `wire::ATTESTATION_BATCH_BYTES_MAX`).
    pub gossip_data_max: usize,
    /// gossipsub's `max_transmit_size`: one payload plus the envelope. Frames
    /// larger than this are refused in both directions.
    pub gossip_transmit_max: usize,
    pub sync: SyncLimits,
}

impl Bounds {
    pub fn new(genesis: &Genesis) -> Bounds {
        let c = &genesis.consensus;
        let certified_block_bytes_max = 4
            + HEADER_BYTES_MAX
            + 4
            + CHECKPOINT_BYTES_MAX
            + 4
            + 4 * c.block_records_max as usize
            + c.block_bytes_max as usize;
        // A consensus proposal carries a whole block (a compact one at most a tag byte more
        // a record: an id's 33 bytes are fewer than any record's); an attestation batch has
        // its own bound.
        let gossip_data_max = (certified_block_bytes_max + c.block_records_max as usize + GOSSIP_MESSAGE_OVERHEAD)
            .max(crate::wire::ATTESTATION_BATCH_BYTES_MAX);
        Bounds {
            certified_block_bytes_max,
            gossip_data_max,
            gossip_transmit_max: gossip_data_max + GOSSIP_ENVELOPE_BYTES,
            sync: SyncLimits {
                block_bytes_max: certified_block_bytes_max,
                response_bytes_max: SYNC_RESPONSE_BYTES_MAX.max(8 + certified_block_bytes_max),
            },
        }
    }
}

/// How the network layer is set up.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// e.g. `/ip4/0.0.0.0/tcp/7000`; port 0 picks a free port (see [`NetHandle::listen_addrs`]).
    pub listen: Multiaddr,
    /// Addresses dialled at start and redialled (with backoff) while not connected.
    pub bootstrap: Vec<Multiaddr>,
    /// The topic names and the size bounds.
    pub genesis: Arc<Genesis>,
    /// The members in force (name, key in force): the allow-list. This node's key must
    /// be among them. [`NetHandle::set_members`] replaces it as governance changes it.
    pub members: Vec<(MemberName, PublicKey)>,
    /// Most established connections in total; also bounds pending (handshaking) ones per direction.
    pub connections_max: u32,
}

/// A gossip topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Signed attestations on their way to the mempools.
    Attestations,
    /// Tendermint proposals and votes.
    Consensus,
}

impl Topic {
    pub const ALL: [Topic; 2] = [Topic::Attestations, Topic::Consensus];

    const fn suffix(self) -> &'static str {
        match self {
            Topic::Attestations => "attestations",
            Topic::Consensus => "consensus",
        }
    }
}

/// The topic's name on this chain: `credence/<first 16 hex digits of the genesis hash>/<topic>`.
pub fn topic_name(genesis: &Genesis, topic: Topic) -> String {
    format!("credence/{}/{}", chain_prefix(genesis), topic.suffix())
}

/// The first 16 hex digits of the genesis hash: names this chain in topics and identify.
fn chain_prefix(genesis: &Genesis) -> String {
    let mut hex = genesis.hash().to_hex();
    hex.truncate(16);
    hex
}

/// The application's verdict on a gossip message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validation {
    /// Valid: deliver and forward it.
    Accept,
    /// Invalid: drop it (the sender is at fault).
    Reject,
    /// Drop it without blame (e.g. stale, or already known).
    Ignore,
}

/// Names one received gossip message for [`NetHandle::report`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GossipId {
    message_id: MessageId,
    source: PeerId,
}

/// Answers one inbound sync request through [`NetHandle::respond`]; used once.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SyncReplyToken(u64);

/// What the network layer tells the application.
#[derive(Debug)]
pub enum NetEvent {
    /// A gossip message waiting for validation: the application must call
    /// [`NetHandle::report`] with `id` (until then it is not forwarded).
    /// `from` is the member that passed it to us (the propagation source).
    Gossip { topic: Topic, from: MemberName, id: GossipId, data: Vec<u8> },
    /// A peer asks for blocks: answer with [`NetHandle::respond`] (within [`SYNC_TIMEOUT`]).
    SyncRequest { from: MemberName, request: SyncRequest, reply: SyncReplyToken },
    /// The first connection to this member is up.
    PeerConnected(MemberName),
    /// The last connection to this member is gone.
    PeerDisconnected(MemberName),
    /// A peer whose key is not in genesis tried to connect (or was dialled) and was refused.
    PeerRefused { peer: String, address: String },
    /// The node listens on this address.
    Listening(Multiaddr),
}

/// Blocks from `from_height` on, at most `max_blocks` (capped at [`SYNC_BLOCKS_MAX`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncRequest {
    pub from_height: u64,
    pub max_blocks: u32,
}

/// Consecutive certified blocks, each encoded by `ledger::block::encode_certified`.
/// Fewer than asked (or none) means the responder has no more, or hit the byte bound.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncResponse {
    pub blocks: Vec<Vec<u8>>,
}

/// Why a network operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("net: this node's key is not a member of the genesis")]
    NotAMember,
    #[error("net: cannot use the node key as a libp2p identity: {0}")]
    Key(String),
    #[error("net: cannot set up the transport: {0}")]
    Transport(String),
    #[error("net: cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error("net: gossip of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("net: no connected peer subscribes to the topic")]
    NoPeers,
    #[error("net: this message was already published")]
    Duplicate,
    #[error("net: publish failed: {0}")]
    Publish(String),
    #[error("net: '{0}' is not a member of the genesis")]
    UnknownMember(MemberName),
    #[error("net: not connected to '{0}'")]
    NotConnected(MemberName),
    #[error("net: too many sync requests outstanding (limit {SYNC_PENDING_OUTBOUND_MAX})")]
    Busy,
    #[error("net: sync request timed out")]
    Timeout,
    #[error("net: sync request failed: {0}")]
    Sync(String),
    #[error("net: the network task has stopped")]
    Closed,
}

/// Counters of what the network task dropped rather than queue without bound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Gossip messages dropped (and reported `Ignore`) because the event channel was full.
    pub gossip_dropped: u64,
    /// Other events dropped because the event channel was full.
    pub events_dropped: u64,
    /// `report`/`respond` calls dropped because the command channel was full.
    pub commands_dropped: u64,
    /// Inbound sync requests refused because [`SYNC_PENDING_INBOUND_MAX`] were waiting.
    pub sync_refused: u64,
    /// Connections refused because the peer is not a member in force (the allow-list).
    pub peers_refused: u64,
}

/// State the network task shares with the handles.
#[derive(Debug, Default)]
struct Shared {
    peers: Mutex<BTreeSet<MemberName>>,
    listen: Mutex<Vec<Multiaddr>>,
    gossip_dropped: AtomicU64,
    events_dropped: AtomicU64,
    commands_dropped: AtomicU64,
    sync_refused: AtomicU64,
    peers_refused: AtomicU64,
}

/// A poisoned lock only means another thread panicked mid-update of a plain
/// set; the data is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What a handle asks the network task to do.
#[derive(Debug)]
enum Command {
    Publish { topic: Topic, data: Vec<u8>, reply: oneshot::Sender<Result<(), NetError>> },
    Report { id: GossipId, result: Validation },
    Request { peer: MemberName, request: SyncRequest, reply: oneshot::Sender<Result<SyncResponse, NetError>> },
    Respond { token: SyncReplyToken, response: SyncResponse },
    SetMembers(Vec<(MemberName, PublicKey)>),
}

impl NetConfig {
    /// The genesis members with their genesis keys (the allow-list of a chain without
    /// governance changes).
    pub fn genesis_members(genesis: &Genesis) -> Vec<(MemberName, PublicKey)> {
        genesis.members.iter().map(|m| (m.name.clone(), m.public_key)).collect()
    }
}

/// The application's side of the network task. Cheap to clone; when every
/// handle is dropped the task shuts the swarm down.
#[derive(Clone, Debug)]
pub struct NetHandle {
    commands: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    bounds: Bounds,
    local: PeerId,
}

impl NetHandle {
    /// Publishes `data` on `topic` to the connected members subscribed to it.
    /// Fails with [`NetError::TooLarge`] above [`Bounds::gossip_data_max`],
    /// [`NetError::NoPeers`] when no connected member subscribes to the topic.
    pub async fn publish(&self, topic: Topic, data: Vec<u8>) -> Result<(), NetError> {
        if data.len() > self.bounds.gossip_data_max {
            return Err(NetError::TooLarge { len: data.len(), max: self.bounds.gossip_data_max });
        }
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Publish { topic, data, reply }).await.map_err(|_| NetError::Closed)?;
        answer.await.map_err(|_| NetError::Closed)?
    }

    /// Reports the verdict on a gossip message (once per [`NetEvent::Gossip`]).
    /// Never waits: if the command channel is full the report is dropped and
    /// counted, and the message is then neither forwarded nor penalised.
    pub fn report(&self, id: GossipId, result: Validation) {
        self.try_command(Command::Report { id, result });
    }

    /// Replaces the allow-list with the members in force (name, key in force), as
    /// governance changed them: peers no longer in it are disconnected, new ones
    /// admitted. Waits for room in the command channel.
    pub async fn set_members(&self, members: Vec<(MemberName, PublicKey)>) -> Result<(), NetError> {
        self.commands.send(Command::SetMembers(members)).await.map_err(|_| NetError::Closed)
    }

    /// Asks member `peer` for blocks; fails after [`SYNC_TIMEOUT`]. A request
    /// for more than [`SYNC_BLOCKS_MAX`] blocks is capped.
    pub async fn request_blocks(&self, peer: MemberName, request: SyncRequest) -> Result<SyncResponse, NetError> {
        let request =
            SyncRequest { from_height: request.from_height, max_blocks: request.max_blocks.min(SYNC_BLOCKS_MAX) };
        let (reply, answer) = oneshot::channel();
        let ask = async {
            self.commands.send(Command::Request { peer, request, reply }).await.map_err(|_| NetError::Closed)?;
            answer.await.map_err(|_| NetError::Closed)?
        };
        // libp2p times the request out itself; this also covers a stalled command channel.
        tokio::time::timeout(SYNC_TIMEOUT + Duration::from_secs(1), ask).await.map_err(|_| NetError::Timeout)?
    }

    /// Answers an inbound sync request. Blocks beyond the request's count or
    /// the byte bound are cut off (the prefix that fits is sent). Never waits.
    pub fn respond(&self, token: SyncReplyToken, response: SyncResponse) {
        self.try_command(Command::Respond { token, response });
    }

    /// Members currently connected.
    pub fn peers(&self) -> Vec<MemberName> {
        lock(&self.shared.peers).iter().cloned().collect()
    }

    /// Addresses this node listens on.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        lock(&self.shared.listen).clone()
    }

    /// This node's libp2p identity (derived from its member key).
    pub fn local_peer_id(&self) -> PeerId {
        self.local
    }

    pub fn bounds(&self) -> Bounds {
        self.bounds
    }

    pub fn stats(&self) -> NetStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let s = &self.shared;
        NetStats {
            gossip_dropped: get(&s.gossip_dropped),
            events_dropped: get(&s.events_dropped),
            commands_dropped: get(&s.commands_dropped),
            sync_refused: get(&s.sync_refused),
            peers_refused: get(&s.peers_refused),
        }
    }

    fn try_command(&self, command: Command) {
        if let Err(mpsc::error::TrySendError::Full(c)) = self.commands.try_send(command) {
            bump(&self.shared.commands_dropped);
            tracing::debug!(command = ?c, "net: command channel full, command dropped");
        }
    }
}

/// The libp2p `PeerId` of a genesis public key.
pub fn peer_id_of(key: &PublicKey) -> Result<PeerId, NetError> {
    let ed = libp2p::identity::ed25519::PublicKey::try_from_bytes(&key.0).map_err(|e| NetError::Key(e.to_string()))?;
    Ok(PeerId::from_public_key(&libp2p::identity::PublicKey::from(ed)))
}

/// Starts the network task: listens on `config.listen` (waiting for the first
/// address), dials the bootstrap addresses, and returns the handle and the
/// event stream. Must run inside a tokio runtime. `key` must be a genesis member's key.
pub async fn spawn(config: NetConfig, key: &SecretKey) -> Result<(NetHandle, mpsc::Receiver<NetEvent>), NetError> {
    let (handle, events, _, _) = task::spawn(config, key, false).await?;
    Ok((handle, events))
}

/// The receivers of [`spawn_split`].
#[derive(Debug)]
pub struct SplitEvents {
    /// Consensus gossip, peers, and everything else.
    pub events: mpsc::Receiver<NetEvent>,
    /// Attestation gossip (bounded by [`ATTESTATION_EVENTS_MAX`]).
    pub attestations: mpsc::Receiver<NetEvent>,
    /// Peers' sync requests (bounded by [`SYNC_PENDING_INBOUND_MAX`]), served off the driver.
    pub sync_requests: mpsc::Receiver<NetEvent>,
}

/// Like [`spawn`], but attestation gossip and sync requests arrive on receivers of
/// their own, so neither waits in the queue of consensus messages.
pub async fn spawn_split(config: NetConfig, key: &SecretKey) -> Result<(NetHandle, SplitEvents), NetError> {
    let (handle, events, attestations, sync_requests) = task::spawn(config, key, true).await?;
    let attestations = attestations.ok_or(NetError::Closed)?;
    let sync_requests = sync_requests.ok_or(NetError::Closed)?;
    Ok((handle, SplitEvents { events, attestations, sync_requests }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_id_derives_from_the_member_key() {
        let key = SecretKey::from_seed([7; 32]);
        let mut seed = key.seed();
        let kp = libp2p::identity::Keypair::ed25519_from_bytes(&mut seed);
        assert!(kp.is_ok());
        let from_keypair = kp.map(|k| k.public().to_peer_id()).ok();
        assert_eq!(peer_id_of(&key.public()).ok(), from_keypair);
    }

    #[test]
    fn bounds_follow_genesis() {
        let Ok((g, _)) = credence_ledger::demo::genesis(1, 0) else { panic!("demo genesis") };
        let b = Bounds::new(&g);
        let c = &g.consensus;
        assert!(b.certified_block_bytes_max >= c.block_bytes_max as usize + CHECKPOINT_BYTES_MAX);
        assert!(b.gossip_transmit_max > b.gossip_data_max && b.gossip_data_max > b.certified_block_bytes_max);
        assert!(b.sync.response_bytes_max >= b.certified_block_bytes_max + 8);
        assert!(topic_name(&g, Topic::Consensus).starts_with("credence/"));
        assert_ne!(topic_name(&g, Topic::Consensus), topic_name(&g, Topic::Attestations));
    }
}
