//! The network task: builds the libp2p swarm (allow-list, connection limits, gossipsub, sync, identify) and runs its event loop, turning swarm events into `NetEvent`s and handle commands into swarm calls.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use credence_ledger::genesis::Genesis;
use credence_ledger::hash::Hash;
use credence_ledger::ids::MemberName;
use credence_ledger::sig::SecretKey;
use futures::StreamExt;
use libp2p::allow_block_list::{self, AllowedPeers};
use libp2p::connection_limits::{self, ConnectionLimits};
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId, PublishError, TopicHash};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, DialError, ListenError, NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, SwarmBuilder, identify, identity, noise, tcp, yamux};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::Instrument;

use super::sync::{SYNC_PROTOCOL, SyncCodec, response_len};
use super::{
    ATTESTATION_EVENTS_MAX, Bounds, COMMANDS_MAX, CONNECTIONS_PER_PEER_MAX, Command, EVENTS_MAX, GOSSIP_QUEUE_MAX,
    GossipId, IDLE_CONNECTION_TIMEOUT, LISTEN_TIMEOUT, NetConfig, NetError, NetEvent, NetHandle, REDIAL_DELAY_MAX,
    REDIAL_DELAY_MIN, SYNC_BLOCKS_MAX, SYNC_PENDING_INBOUND_MAX, SYNC_PENDING_OUTBOUND_MAX, SYNC_STREAMS_MAX,
    SYNC_TIMEOUT, Shared, SyncReplyToken, SyncRequest, SyncResponse, Topic, Validation, bump, chain_prefix, lock,
    peer_id_of, topic_name,
};

/// How often the task checks bootstrap dials and prunes expired sync requests.
const TICK: Duration = Duration::from_secs(1);

#[derive(NetworkBehaviour)]
struct Behaviour {
    // Order matters: the allow-list is asked first, so a stranger is refused as
    // a stranger rather than counted against the connection limits.
    allow: allow_block_list::Behaviour<AllowedPeers>,
    limits: connection_limits::Behaviour,
    gossipsub: gossipsub::Behaviour,
    sync: request_response::Behaviour<SyncCodec>,
    identify: identify::Behaviour,
}

/// The identify protocol version: names the chain, so a member key reused on
/// another chain is noticed and disconnected.
fn protocol_version(genesis: &Genesis) -> String {
    format!("/credence/{}/1", chain_prefix(genesis))
}

fn gossip_config(bounds: &Bounds) -> Result<gossipsub::Config, NetError> {
    gossipsub::ConfigBuilder::default()
        // No libp2p author, sequence number or signature: every payload carries its own
        // signatures (attestations, proposals, votes), checked by the application before
        // it reports Accept, and every peer is a genesis member authenticated by Noise.
        // Signing each message with the libp2p key would add one signing per publish and
        // one check per receipt for nothing; messages that carry those fields are refused.
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        // Nothing is forwarded before the application accepts it.
        .validate_messages()
        .max_transmit_size(bounds.gossip_transmit_max)
        .connection_handler_queue_len(GOSSIP_QUEUE_MAX)
        // Content addressing: the same bytes on the same topic are one message.
        .message_id_fn(|m: &gossipsub::Message| {
            let topic = m.topic.as_str().as_bytes();
            MessageId::new(&Hash::digest(&[&(topic.len() as u64).to_le_bytes(), topic, &m.data]).0)
        })
        .build()
        .map_err(|e| NetError::Transport(format!("gossipsub config: {e}")))
}

impl Behaviour {
    fn new(key: &identity::Keypair, config: &NetConfig, bounds: &Bounds) -> Result<Behaviour, NetError> {
        let mut allow = allow_block_list::Behaviour::<AllowedPeers>::default();
        for (_, key) in &config.members {
            allow.allow_peer(peer_id_of(key)?);
        }
        let limits = connection_limits::Behaviour::new(
            ConnectionLimits::default()
                .with_max_established(Some(config.connections_max))
                .with_max_established_per_peer(Some(CONNECTIONS_PER_PEER_MAX))
                .with_max_pending_incoming(Some(config.connections_max))
                .with_max_pending_outgoing(Some(config.connections_max)),
        );
        let gossipsub = gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, gossip_config(bounds)?)
            .map_err(|e| NetError::Transport(format!("gossipsub: {e}")))?;
        let sync = request_response::Behaviour::with_codec(
            SyncCodec { limits: bounds.sync },
            [(SYNC_PROTOCOL, ProtocolSupport::Full)],
            request_response::Config::default()
                .with_request_timeout(SYNC_TIMEOUT)
                .with_max_concurrent_streams(SYNC_STREAMS_MAX),
        );
        let identify = identify::Behaviour::new(
            identify::Config::new(protocol_version(&config.genesis), key.public())
                .with_agent_version(format!("credence/{}", env!("CARGO_PKG_VERSION"))),
        );
        Ok(Behaviour { allow, limits, gossipsub, sync, identify })
    }
}

/// A bootstrap address and its redial state.
#[derive(Debug)]
struct Bootstrap {
    addr: Multiaddr,
    /// The member found there on the last successful dial.
    peer: Option<PeerId>,
    dialing: bool,
    next_attempt: Instant,
    delay: Duration,
}

struct Task {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetEvent>,
    /// Attestation gossip, when the application takes it on a channel of its own.
    attestations: Option<mpsc::Sender<NetEvent>>,
    /// Peers' sync requests, when split: served off the consensus driver.
    sync_requests: Option<mpsc::Sender<NetEvent>>,
    shared: Arc<Shared>,
    bounds: Bounds,
    members: HashMap<PeerId, MemberName>,
    by_name: HashMap<MemberName, PeerId>,
    topics: HashMap<TopicHash, Topic>,
    topic_hashes: HashMap<Topic, TopicHash>,
    protocol_version: String,
    bootstrap: Vec<Bootstrap>,
    /// In-flight bootstrap dials: connection → index in `bootstrap`.
    dials: HashMap<ConnectionId, usize>,
    /// Our sync requests: reply channel and the (capped) block count asked for.
    outbound: HashMap<OutboundRequestId, (oneshot::Sender<Result<SyncResponse, NetError>>, u32)>,
    /// Peers' sync requests waiting for the application's answer.
    inbound: HashMap<u64, (ResponseChannel<SyncResponse>, u32)>,
    next_token: u64,
}

/// What [`spawn`] returns: the handle, the main event channel, and with `split` the
/// attestation-gossip and sync-request channels.
pub(super) type Spawned =
    (NetHandle, mpsc::Receiver<NetEvent>, Option<mpsc::Receiver<NetEvent>>, Option<mpsc::Receiver<NetEvent>>);

pub(super) async fn spawn(config: NetConfig, key: &SecretKey, split: bool) -> Result<Spawned, NetError> {
    let genesis = Arc::clone(&config.genesis);
    let public = key.public();
    let Some(me) = config.members.iter().find(|(_, k)| *k == public).map(|(n, _)| n.clone()) else {
        return Err(NetError::NotAMember);
    };
    let mut seed = key.seed();
    // `ed25519_from_bytes` zeroizes the seed copy it is given.
    let keypair = identity::Keypair::ed25519_from_bytes(&mut seed).map_err(|e| NetError::Key(e.to_string()))?;
    let local = keypair.public().to_peer_id();
    let bounds = Bounds::new(&genesis);
    let mut swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)
        .map_err(|e| NetError::Transport(e.to_string()))?
        .with_behaviour(|key| {
            Behaviour::new(key, &config, &bounds).map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
        })
        .map_err(|e| NetError::Transport(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build();

    let mut topics = HashMap::new();
    for topic in Topic::ALL {
        let t = IdentTopic::new(topic_name(&genesis, topic));
        swarm.behaviour_mut().gossipsub.subscribe(&t).map_err(|e| NetError::Transport(format!("subscribe: {e}")))?;
        topics.insert(t.hash(), topic);
    }

    let listen_err = |reason: String| NetError::Listen { addr: config.listen.to_string(), reason };
    swarm.listen_on(config.listen.clone()).map_err(|e| listen_err(e.to_string()))?;
    // Wait for the first address, so `listen_addrs` is useful (port 0 resolved) on return.
    let first = tokio::time::timeout(LISTEN_TIMEOUT, async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::NewListenAddr { address, .. } => return Ok(address),
                SwarmEvent::ListenerError { error, .. } => return Err(listen_err(error.to_string())),
                SwarmEvent::ListenerClosed { reason, .. } => return Err(listen_err(format!("{reason:?}"))),
                _ => {}
            }
        }
    })
    .await
    .map_err(|_| listen_err("no listen address within the timeout".into()))??;

    let shared = Arc::new(Shared::default());
    lock(&shared.listen).push(first.clone());
    let (commands_tx, commands) = mpsc::channel(COMMANDS_MAX);
    let (events, events_rx) = mpsc::channel(EVENTS_MAX);
    let (attestations, attestations_rx) = if split {
        let (tx, rx) = mpsc::channel(ATTESTATION_EVENTS_MAX);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let (sync_requests, sync_requests_rx) = if split {
        let (tx, rx) = mpsc::channel(SYNC_PENDING_INBOUND_MAX);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let _ = events.try_send(NetEvent::Listening(first));

    let members = config
        .members
        .iter()
        .map(|(name, key)| Ok((peer_id_of(key)?, name.clone())))
        .collect::<Result<HashMap<_, _>, NetError>>()?;
    let by_name = members.iter().map(|(p, n)| (n.clone(), *p)).collect();
    let now = Instant::now();
    let bootstrap = config
        .bootstrap
        .iter()
        .map(|addr| Bootstrap {
            addr: addr.clone(),
            peer: None,
            dialing: false,
            next_attempt: now,
            delay: REDIAL_DELAY_MIN,
        })
        .collect();
    let mut task = Task {
        swarm,
        commands,
        events,
        attestations,
        sync_requests,
        shared: Arc::clone(&shared),
        bounds,
        members,
        by_name,
        topic_hashes: topics.iter().map(|(h, t)| (*t, h.clone())).collect(),
        topics,
        protocol_version: protocol_version(&genesis),
        bootstrap,
        dials: HashMap::new(),
        outbound: HashMap::new(),
        inbound: HashMap::new(),
        next_token: 0,
    };
    task.dial_bootstrap();
    let span = tracing::info_span!("net", member = %me);
    tokio::spawn(task.run().instrument(span));
    Ok((NetHandle { commands: commands_tx, shared, bounds, local }, events_rx, attestations_rx, sync_requests_rx))
}

impl Task {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(c) => self.on_command(c),
                    // Every handle is gone: nobody can use the network any more.
                    None => break,
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = tick.tick() => {
                    self.dial_bootstrap();
                    self.inbound.retain(|_, (channel, _)| channel.is_open());
                }
            }
        }
        tracing::debug!("net: all handles dropped, network task stops");
    }

    /// Sends an event without waiting; a full channel drops it (counted).
    fn emit(&self, event: NetEvent) -> bool {
        match self.events.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(e)) => {
                bump(&self.shared.events_dropped);
                tracing::debug!(event = ?e, "net: event channel full, event dropped");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn dial_bootstrap(&mut self) {
        let now = Instant::now();
        for i in 0..self.bootstrap.len() {
            let Some(b) = self.bootstrap.get(i) else { continue };
            let connected = b.peer.is_some_and(|p| self.swarm.is_connected(&p));
            if b.dialing || connected || now < b.next_attempt {
                continue;
            }
            let opts = DialOpts::from(b.addr.clone());
            let id = opts.connection_id();
            match self.swarm.dial(opts) {
                Ok(()) => {
                    self.dials.insert(id, i);
                    if let Some(b) = self.bootstrap.get_mut(i) {
                        b.dialing = true;
                    }
                }
                Err(e) => {
                    tracing::debug!(addr = %b.addr, error = %e, "net: cannot dial bootstrap address");
                    self.backoff(i);
                }
            }
        }
    }

    fn backoff(&mut self, i: usize) {
        if let Some(b) = self.bootstrap.get_mut(i) {
            b.dialing = false;
            b.next_attempt = Instant::now() + b.delay;
            b.delay = (b.delay * 2).min(REDIAL_DELAY_MAX);
        }
    }

    fn refused(&self, peer: Option<PeerId>, address: String) {
        let peer = peer.map_or_else(|| "unknown".to_string(), |p| p.to_string());
        bump(&self.shared.peers_refused);
        tracing::warn!(%peer, %address, "net: refused a peer whose key is no member's key in force");
        self.emit(NetEvent::PeerRefused { peer, address });
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => self.on_gossip(e),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(e)) => self.on_sync(e),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                if info.protocol_version != self.protocol_version {
                    tracing::warn!(peer = %peer_id, theirs = %info.protocol_version, ours = %self.protocol_version,
                        "net: member runs another chain; disconnecting");
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => tracing::trace!(event = ?e, "net: identify"),
            SwarmEvent::Behaviour(BehaviourEvent::Allow(never))
            | SwarmEvent::Behaviour(BehaviourEvent::Limits(never)) => match never {},
            SwarmEvent::NewListenAddr { address, .. } => {
                lock(&self.shared.listen).push(address.clone());
                self.emit(NetEvent::Listening(address));
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => lock(&self.shared.listen).retain(|a| *a != address),
            SwarmEvent::ConnectionEstablished { peer_id, connection_id, num_established, endpoint, .. } => {
                if let Some(i) = self.dials.remove(&connection_id)
                    && let Some(b) = self.bootstrap.get_mut(i)
                {
                    b.peer = Some(peer_id);
                    b.dialing = false;
                    b.delay = REDIAL_DELAY_MIN;
                }
                // The allow-list admits members only, so the name is always known.
                if num_established.get() == 1
                    && let Some(name) = self.members.get(&peer_id).cloned()
                {
                    tracing::info!(peer = %name, addr = %endpoint.get_remote_address(), "net: member connected");
                    lock(&self.shared.peers).insert(name.clone());
                    self.emit(NetEvent::PeerConnected(name));
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, num_established, cause, .. } => {
                if num_established == 0
                    && let Some(name) = self.members.get(&peer_id).cloned()
                {
                    tracing::info!(peer = %name, cause = ?cause, "net: member disconnected");
                    lock(&self.shared.peers).remove(&name);
                    self.emit(NetEvent::PeerDisconnected(name));
                }
            }
            SwarmEvent::IncomingConnectionError { peer_id, send_back_addr, error, .. } => match error {
                ListenError::Denied { cause } if cause.downcast_ref::<allow_block_list::NotAllowed>().is_some() => {
                    self.refused(peer_id, send_back_addr.to_string());
                }
                error => tracing::debug!(addr = %send_back_addr, %error, "net: inbound connection failed"),
            },
            SwarmEvent::OutgoingConnectionError { connection_id, peer_id, error } => {
                let index = self.dials.remove(&connection_id);
                let addr = index.and_then(|i| self.bootstrap.get(i)).map(|b| b.addr.to_string());
                if let Some(i) = index {
                    self.backoff(i);
                }
                match error {
                    DialError::Denied { cause } if cause.downcast_ref::<allow_block_list::NotAllowed>().is_some() => {
                        self.refused(peer_id, addr.unwrap_or_else(|| "unknown".into()));
                    }
                    error => tracing::debug!(addr = ?addr, %error, "net: outbound connection failed"),
                }
            }
            other => tracing::trace!(event = ?other, "net: swarm"),
        }
    }

    fn on_gossip(&mut self, event: gossipsub::Event) {
        let gossipsub::Event::Message { propagation_source, message_id, message } = event else {
            tracing::trace!(event = ?event, "net: gossipsub");
            return;
        };
        let id = GossipId { message_id, source: propagation_source };
        let from = self.members.get(&propagation_source).cloned();
        let topic = self.topics.get(&message.topic).copied();
        // The allow-list admits members only; anonymous mode refused authored messages.
        let (Some(from), Some(topic)) = (from, topic) else {
            tracing::debug!(source = %propagation_source, "net: gossip from a non-member or on an unknown topic");
            self.validate(&id, MessageAcceptance::Reject);
            return;
        };
        let channel = match (topic, &self.attestations) {
            (Topic::Attestations, Some(tx)) => tx,
            _ => &self.events,
        };
        match channel.try_send(NetEvent::Gossip { topic, from, id: id.clone(), data: message.data }) {
            Ok(()) => {}
            Err(e) => {
                if matches!(e, mpsc::error::TrySendError::Full(_)) {
                    bump(&self.shared.gossip_dropped);
                    tracing::debug!("net: event channel full, gossip message dropped");
                }
                self.validate(&id, MessageAcceptance::Ignore);
            }
        }
    }

    fn validate(&mut self, id: &GossipId, acceptance: MessageAcceptance) {
        let gs = &mut self.swarm.behaviour_mut().gossipsub;
        if !gs.report_message_validation_result(&id.message_id, &id.source, acceptance) {
            tracing::debug!(id = %id.message_id, "net: validated message no longer cached");
        }
    }

    fn on_sync(&mut self, event: request_response::Event<SyncRequest, SyncResponse>) {
        use request_response::{Event, Message};
        match event {
            Event::Message { peer, message: Message::Request { request, channel, .. }, .. } => {
                let Some(from) = self.members.get(&peer).cloned() else { return };
                if self.inbound.len() >= SYNC_PENDING_INBOUND_MAX {
                    self.inbound.retain(|_, (c, _)| c.is_open());
                }
                if self.inbound.len() >= SYNC_PENDING_INBOUND_MAX {
                    bump(&self.shared.sync_refused);
                    tracing::debug!(peer = %from, "net: too many sync requests waiting; refused");
                    return; // dropping the channel closes the stream
                }
                let max_blocks = request.max_blocks.min(SYNC_BLOCKS_MAX);
                let request = SyncRequest { from_height: request.from_height, max_blocks };
                let token = self.next_token;
                self.next_token = self.next_token.wrapping_add(1);
                let event = NetEvent::SyncRequest { from, request, reply: SyncReplyToken(token) };
                let sent = match &self.sync_requests {
                    // Split: sync requests wait on a queue of their own, never beside votes.
                    Some(tx) => tx.try_send(event).is_ok(),
                    None => self.emit(event),
                };
                if sent {
                    self.inbound.insert(token, (channel, max_blocks));
                }
            }
            Event::Message { peer, message: Message::Response { request_id, response }, .. } => {
                let Some((reply, max_blocks)) = self.outbound.remove(&request_id) else { return };
                let result = if response.blocks.len() > max_blocks as usize {
                    tracing::debug!(%peer, got = response.blocks.len(), max_blocks, "net: sync response too long");
                    Err(NetError::Sync(format!("{} blocks answered, {max_blocks} asked", response.blocks.len())))
                } else {
                    Ok(response)
                };
                let _ = reply.send(result);
            }
            Event::OutboundFailure { peer, request_id, error, .. } => {
                tracing::debug!(%peer, %error, "net: sync request failed");
                if let Some((reply, _)) = self.outbound.remove(&request_id) {
                    let _ = reply.send(Err(match error {
                        request_response::OutboundFailure::Timeout => NetError::Timeout,
                        e => NetError::Sync(e.to_string()),
                    }));
                }
            }
            Event::InboundFailure { peer, error, .. } => tracing::debug!(%peer, %error, "net: sync answer failed"),
            Event::ResponseSent { .. } => {}
        }
    }

    /// The allow-list follows governance: peers of members no longer in force (or of
    /// a key rotated out or revoked) are refused and disconnected, new ones admitted.
    fn set_members(&mut self, list: &[(MemberName, credence_ledger::sig::PublicKey)]) {
        let mut members = HashMap::with_capacity(list.len());
        for (name, key) in list {
            match peer_id_of(key) {
                Ok(p) => {
                    members.insert(p, name.clone());
                }
                Err(e) => tracing::warn!(%name, error = %e, "net: a member key in force has no peer id"),
            }
        }
        let local = *self.swarm.local_peer_id();
        for gone in
            self.members.keys().filter(|p| !members.contains_key(p) && **p != local).copied().collect::<Vec<_>>()
        {
            self.swarm.behaviour_mut().allow.disallow_peer(gone);
            let _ = self.swarm.disconnect_peer_id(gone);
            if let Some(name) = self.members.get(&gone).cloned()
                && lock(&self.shared.peers).remove(&name)
            {
                self.emit(NetEvent::PeerDisconnected(name));
            }
            tracing::info!(peer = %gone, "net: a member left the set in force; its peer is refused");
        }
        for new in members.keys().filter(|p| !self.members.contains_key(p)).copied().collect::<Vec<_>>() {
            self.swarm.behaviour_mut().allow.allow_peer(new);
            tracing::info!(peer = %new, "net: a member joined the set in force; its peer is admitted");
        }
        // This node stays addressable by its own name while it runs.
        if let Some(me) = self.members.get(&local).cloned() {
            members.entry(local).or_insert(me);
        }
        self.by_name = members.iter().map(|(p, n)| (n.clone(), *p)).collect();
        self.members = members;
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish { topic, data, reply } => {
                let Some(hash) = self.topic_hashes.get(&topic).cloned() else { return };
                let len = data.len();
                let result =
                    self.swarm.behaviour_mut().gossipsub.publish(hash, data).map(|_| ()).map_err(|e| match e {
                        PublishError::MessageTooLarge => NetError::TooLarge { len, max: self.bounds.gossip_data_max },
                        PublishError::NoPeersSubscribedToTopic => NetError::NoPeers,
                        PublishError::Duplicate => NetError::Duplicate,
                        e => NetError::Publish(e.to_string()),
                    });
                let _ = reply.send(result);
            }
            Command::SetMembers(list) => self.set_members(&list),
            Command::Report { id, result } => {
                let acceptance = match result {
                    Validation::Accept => MessageAcceptance::Accept,
                    Validation::Reject => MessageAcceptance::Reject,
                    Validation::Ignore => MessageAcceptance::Ignore,
                };
                self.validate(&id, acceptance);
            }
            Command::Request { peer, request, reply } => {
                let result = match self.by_name.get(&peer) {
                    None => Err(NetError::UnknownMember(peer)),
                    Some(p) if !self.swarm.is_connected(p) => Err(NetError::NotConnected(peer)),
                    Some(_) if self.outbound.len() >= SYNC_PENDING_OUTBOUND_MAX => Err(NetError::Busy),
                    Some(p) => Ok(*p),
                };
                match result {
                    Ok(p) => {
                        let max_blocks = request.max_blocks.min(SYNC_BLOCKS_MAX);
                        let request = SyncRequest { from_height: request.from_height, max_blocks };
                        let id = self.swarm.behaviour_mut().sync.send_request(&p, request);
                        self.outbound.insert(id, (reply, max_blocks));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Command::Respond { token, response } => {
                let Some((channel, max_blocks)) = self.inbound.remove(&token.0) else {
                    tracing::debug!(token = token.0, "net: sync answer for an unknown or expired request");
                    return;
                };
                let response = fit(response, max_blocks, &self.bounds);
                if self.swarm.behaviour_mut().sync.send_response(channel, response).is_err() {
                    tracing::debug!(token = token.0, "net: sync requester went away before the answer");
                }
            }
        }
    }
}

/// The longest prefix of `response` within the request's count and the byte bounds.
fn fit(mut response: SyncResponse, max_blocks: u32, bounds: &Bounds) -> SyncResponse {
    let mut total = 4usize;
    let mut keep = 0usize;
    for b in response.blocks.iter().take(max_blocks as usize) {
        let next = total.saturating_add(4).saturating_add(b.len());
        if b.len() > bounds.sync.block_bytes_max || next > bounds.sync.response_bytes_max {
            break;
        }
        total = next;
        keep += 1;
    }
    if keep < response.blocks.len() {
        tracing::debug!(given = response.blocks.len(), sent = keep, "net: sync answer cut to its bounds");
        response.blocks.truncate(keep);
    }
    debug_assert_eq!(response_len(&response), total);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::SyncLimits;

    #[test]
    fn answers_are_cut_to_the_request_and_the_byte_bound() {
        let mut bounds = Bounds {
            certified_block_bytes_max: 100,
            gossip_data_max: 0,
            gossip_transmit_max: 0,
            sync: SyncLimits { block_bytes_max: 100, response_bytes_max: 4 + 3 * (4 + 50) },
        };
        let blocks = |n: usize, len: usize| SyncResponse { blocks: vec![vec![0; len]; n] };
        assert_eq!(fit(blocks(5, 50), 2, &bounds).blocks.len(), 2, "count asked");
        assert_eq!(fit(blocks(5, 50), 64, &bounds).blocks.len(), 3, "byte bound");
        assert_eq!(fit(blocks(5, 101), 64, &bounds).blocks.len(), 0, "a block above the block bound");
        bounds.sync.response_bytes_max = 1000;
        let mut mixed = blocks(3, 10);
        mixed.blocks.insert(1, vec![0; 101]);
        assert_eq!(fit(mixed, 64, &bounds).blocks.len(), 1, "blocks stay consecutive: cut at the first misfit");
    }
}
