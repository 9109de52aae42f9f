//! Network-layer tests on loopback: members-only connections, gossip held back until validated, block sync with bounds, and hostile peers (strangers, garbage answers, oversized gossip).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use credence_ledger::block::{decode_certified_exact, encode_certified};
use credence_ledger::demo::{self, ChainBuilder, EXAMPLE_GENESIS_TIME_MS};
use credence_ledger::genesis::Genesis;
use credence_ledger::ids::MemberName;
use credence_ledger::sig::SecretKey;
use credence_node::net::sync::{SYNC_PROTOCOL, SyncCodec};
use credence_node::net::{
    self, NetConfig, NetError, NetEvent, NetHandle, SYNC_BLOCKS_MAX, SyncRequest, SyncResponse, Topic, Validation,
};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, Swarm, SwarmBuilder, gossipsub, identity, noise, yamux};
use tokio::sync::mpsc::Receiver;

const SEED: u64 = 7;
const LOOPBACK: &str = "/ip4/127.0.0.1/tcp/0";

fn genesis() -> (Arc<Genesis>, Vec<SecretKey>) {
    let (g, keys) = demo::genesis(SEED, EXAMPLE_GENESIS_TIME_MS).expect("demo genesis");
    (Arc::new(g), keys)
}

fn name(g: &Genesis, i: usize) -> MemberName {
    g.members[i].name.clone()
}

async fn node(g: &Arc<Genesis>, key: &SecretKey, bootstrap: Vec<Multiaddr>) -> (NetHandle, Receiver<NetEvent>) {
    node_with(g, NetConfig::genesis_members(g), key, bootstrap).await
}

async fn node_with(
    g: &Arc<Genesis>,
    members: Vec<(MemberName, credence_ledger::sig::PublicKey)>,
    key: &SecretKey,
    bootstrap: Vec<Multiaddr>,
) -> (NetHandle, Receiver<NetEvent>) {
    let config = NetConfig {
        listen: LOOPBACK.parse().expect("addr"),
        bootstrap,
        genesis: Arc::clone(g),
        members,
        connections_max: 16,
    };
    net::spawn(config, key).await.expect("spawn")
}

fn addr(h: &NetHandle) -> Multiaddr {
    h.listen_addrs().first().cloned().expect("listening")
}

/// Waits until `h` is connected to every member in `names`.
async fn connected(h: &NetHandle, names: &[MemberName]) {
    let all = async {
        while !names.iter().all(|n| h.peers().contains(n)) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), all).await.expect("peers connect");
}

/// The first event `f` maps to something within `within`; other events are dropped.
async fn next<T>(rx: &mut Receiver<NetEvent>, within: Duration, mut f: impl FnMut(NetEvent) -> Option<T>) -> Option<T> {
    let find = async {
        while let Some(e) = rx.recv().await {
            if let Some(t) = f(e) {
                return Some(t);
            }
        }
        None
    };
    tokio::time::timeout(within, find).await.ok().flatten()
}

fn gossip(e: NetEvent) -> Option<(MemberName, net::GossipId, Vec<u8>)> {
    match e {
        NetEvent::Gossip { from, id, data, .. } => Some((from, id, data)),
        _ => None,
    }
}

/// Publishes until the topic has a subscribed peer (subscriptions take a moment to arrive).
async fn publish_when_ready(h: &NetHandle, topic: Topic, data: Vec<u8>) {
    for _ in 0..100 {
        match h.publish(topic, data.clone()).await {
            Err(NetError::NoPeers) => tokio::time::sleep(Duration::from_millis(50)).await,
            other => return other.expect("publish"),
        }
    }
    panic!("no subscribed peer appeared");
}

const SHORT: Duration = Duration::from_millis(800);
const LONG: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_is_forwarded_only_after_validation() {
    let (g, keys) = genesis();
    // A line: A – B – C. Only B can carry A's messages to C.
    let (b, mut b_rx) = node(&g, &keys[1], vec![]).await;
    let (a, _a_rx) = node(&g, &keys[0], vec![addr(&b)]).await;
    let (c, mut c_rx) = node(&g, &keys[2], vec![addr(&b)]).await;
    connected(&b, &[name(&g, 0), name(&g, 2)]).await;
    connected(&a, &[name(&g, 1)]).await;
    connected(&c, &[name(&g, 1)]).await;
    assert!(!a.peers().contains(&name(&g, 2)) && !c.peers().contains(&name(&g, 0)), "A and C are not neighbours");

    // Warm up until B's mesh includes C (meshes form on gossipsub heartbeats).
    let mut warm = false;
    for i in 0..20 {
        publish_when_ready(&a, Topic::Consensus, format!("warm-up {i}").into_bytes()).await;
        if let Some((_, id, _)) = next(&mut b_rx, LONG, gossip).await {
            b.report(id, Validation::Accept);
        }
        if let Some((_, id, _)) = next(&mut c_rx, SHORT, gossip).await {
            c.report(id, Validation::Accept);
            warm = true;
            break;
        }
    }
    assert!(warm, "C never received a forwarded message");
    // Drain stragglers of the warm-up.
    while next(&mut c_rx, Duration::from_millis(300), gossip).await.is_some() {}
    while next(&mut b_rx, Duration::from_millis(100), gossip).await.is_some() {}

    // Accepted by B: reaches C, but only after B's verdict.
    a.publish(Topic::Consensus, b"proposal 1".to_vec()).await.expect("publish");
    let (from, id, data) = next(&mut b_rx, LONG, gossip).await.expect("B receives");
    assert_eq!((from, data.as_slice()), (name(&g, 0), &b"proposal 1"[..]));
    assert!(next(&mut c_rx, SHORT, gossip).await.is_none(), "C got a message B had not validated");
    b.report(id, Validation::Accept);
    let (from, id, data) = next(&mut c_rx, LONG, gossip).await.expect("C receives after B accepts");
    assert_eq!((from, data.as_slice()), (name(&g, 1), &b"proposal 1"[..]), "from = the propagation source, B");
    c.report(id, Validation::Accept);

    // The same bytes again are the same message (content-addressed id).
    assert!(matches!(a.publish(Topic::Consensus, b"proposal 1".to_vec()).await, Err(NetError::Duplicate)));

    // Rejected by B: never reaches C.
    a.publish(Topic::Attestations, b"forged attestation".to_vec()).await.expect("publish");
    let (_, id, data) = next(&mut b_rx, LONG, gossip).await.expect("B receives");
    assert_eq!(data, b"forged attestation");
    b.report(id, Validation::Reject);
    assert!(next(&mut c_rx, Duration::from_millis(1500), gossip).await.is_none(), "a rejected message was forwarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_returns_the_responders_blocks_and_caps_requests() {
    const BLOCKS: usize = 70;
    let mut chain = ChainBuilder::new(SEED, EXAMPLE_GENESIS_TIME_MS).expect("chain");
    let mut encoded = Vec::new();
    for _ in 0..BLOCKS {
        let vb = chain.next_block(2).expect("block");
        let mut bytes = Vec::new();
        encode_certified(vb.certified(), &mut bytes);
        encoded.push(bytes);
    }
    let (g, keys) = genesis();
    assert_eq!(*g, *chain.genesis());
    let (b, mut b_rx) = node(&g, &keys[1], vec![]).await;
    let (a, _a_rx) = node(&g, &keys[0], vec![addr(&b)]).await;
    connected(&a, &[name(&g, 1)]).await;

    // B answers from its chain and tells the test what it was asked.
    let (seen_tx, mut seen) = tokio::sync::mpsc::channel(16);
    let responder = b.clone();
    let blocks = encoded.clone();
    tokio::spawn(async move {
        while let Some(e) = b_rx.recv().await {
            if let NetEvent::SyncRequest { from, request, reply } = e {
                let start = usize::try_from(request.from_height.saturating_sub(1)).unwrap_or(usize::MAX);
                let answer = blocks.iter().skip(start).take(request.max_blocks as usize).cloned().collect();
                responder.respond(reply, SyncResponse { blocks: answer });
                let _ = seen_tx.send((from, request)).await;
            }
        }
    });

    let records_max = g.consensus.block_records_max as usize;
    let resp = a.request_blocks(name(&g, 1), SyncRequest { from_height: 1, max_blocks: 1000 }).await.expect("sync");
    assert_eq!(seen.recv().await, Some((name(&g, 0), SyncRequest { from_height: 1, max_blocks: SYNC_BLOCKS_MAX })));
    assert_eq!(resp.blocks.len(), SYNC_BLOCKS_MAX as usize, "a request above the bound is capped");
    for (i, bytes) in resp.blocks.iter().enumerate() {
        assert_eq!(bytes, &encoded[i]);
        let cb = decode_certified_exact(bytes, records_max).expect("a certified block");
        assert_eq!(cb.block.header.height, i as u64 + 1);
    }
    let rest = a.request_blocks(name(&g, 1), SyncRequest { from_height: 65, max_blocks: 10 }).await.expect("sync");
    assert_eq!(rest.blocks, encoded[64..].to_vec());
    let beyond = a.request_blocks(name(&g, 1), SyncRequest { from_height: 500, max_blocks: 10 }).await.expect("sync");
    assert!(beyond.blocks.is_empty());

    // Only connected members can be asked.
    let stranger = MemberName::parse("test", "nobody").expect("name");
    let req = SyncRequest { from_height: 1, max_blocks: 1 };
    assert!(matches!(a.request_blocks(stranger, req).await, Err(NetError::UnknownMember(_))));
    assert!(matches!(a.request_blocks(name(&g, 3), req).await, Err(NetError::NotConnected(_))));
}

/// Collects `warn` and `error` events process-wide, to check what is logged.
static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        *meta.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut f = Fields(String::new());
        event.record(&mut f);
        WARNINGS.lock().unwrap_or_else(|e| e.into_inner()).push(f.0);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn capture_warnings() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = tracing::subscriber::set_global_default(Capture);
    });
}

fn raw_swarm<B: NetworkBehaviour>(seed: [u8; 32], behaviour: impl FnOnce(&identity::Keypair) -> B) -> Swarm<B> {
    let mut seed = seed;
    let key = identity::Keypair::ed25519_from_bytes(&mut seed).expect("key");
    SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(Default::default(), noise::Config::new, yamux::Config::default)
        .expect("tcp")
        .with_behaviour(behaviour)
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
        .build()
}

/// A stranger running plain libp2p with the same protocols and topics.
#[derive(NetworkBehaviour)]
struct Rogue {
    gossipsub: gossipsub::Behaviour,
    sync: request_response::Behaviour<SyncCodec>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_outside_genesis_is_refused_both_ways() {
    capture_warnings();
    let (g, keys) = genesis();
    let (b, mut b_rx) = node(&g, &keys[1], vec![]).await;
    let (a, _a_rx) = node(&g, &keys[0], vec![addr(&b)]).await;
    connected(&b, &[name(&g, 0)]).await;

    let bounds = b.bounds();
    let mut rogue = raw_swarm([99; 32], |key| Rogue {
        gossipsub: gossipsub::Behaviour::new(
            gossipsub::MessageAuthenticity::Signed(key.clone()),
            gossipsub::Config::default(),
        )
        .expect("gossipsub"),
        sync: request_response::Behaviour::with_codec(
            SyncCodec { limits: bounds.sync },
            [(SYNC_PROTOCOL, ProtocolSupport::Full)],
            request_response::Config::default(),
        ),
    });
    let rogue_id = *rogue.local_peer_id();
    for t in Topic::ALL {
        rogue.behaviour_mut().gossipsub.subscribe(&gossipsub::IdentTopic::new(net::topic_name(&g, t))).expect("sub");
    }
    rogue.listen_on(LOOPBACK.parse().expect("addr")).expect("listen");
    rogue.dial(addr(&b)).expect("dial");
    rogue.behaviour_mut().sync.send_request(&b.local_peer_id(), SyncRequest { from_height: 1, max_blocks: 1 });

    // Drive the stranger while the members gossip; it must receive nothing.
    let (rogue_addr_tx, rogue_addr) = tokio::sync::oneshot::channel();
    let rogue_task = tokio::spawn(async move {
        let mut addr_tx = Some(rogue_addr_tx);
        let (mut messages, mut sync_answers, mut sync_failures) = (0, 0, 0);
        let until = tokio::time::Instant::now() + Duration::from_secs(4);
        while let Ok(e) = tokio::time::timeout_at(until, rogue.select_next_some()).await {
            match e {
                SwarmEvent::NewListenAddr { address, .. } => {
                    if let Some(tx) = addr_tx.take() {
                        let _ = tx.send(address);
                    }
                }
                SwarmEvent::Behaviour(RogueEvent::Gossipsub(gossipsub::Event::Message { .. })) => messages += 1,
                SwarmEvent::Behaviour(RogueEvent::Sync(request_response::Event::Message { .. })) => sync_answers += 1,
                SwarmEvent::Behaviour(RogueEvent::Sync(request_response::Event::OutboundFailure { .. })) => {
                    sync_failures += 1
                }
                _ => {}
            }
        }
        (messages, sync_answers, sync_failures)
    });

    let (peer, address) = next(&mut b_rx, LONG, |e| match e {
        NetEvent::PeerRefused { peer, address } => Some((peer, address)),
        _ => None,
    })
    .await
    .expect("B reports the refusal");
    assert_eq!(peer, rogue_id.to_string());
    assert!(address.starts_with("/ip4/127.0.0.1/tcp/"), "{address}");
    assert!(!b.peers().iter().any(|p| !g.members.iter().any(|m| m.name == *p)));
    assert!(b.stats().peers_refused >= 1);
    let logged = WARNINGS.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|w| w.contains(&rogue_id.to_string()));
    assert!(logged, "the refusal is logged with the stranger's PeerId");

    // Members still gossip among themselves; the stranger hears none of it.
    publish_when_ready(&a, Topic::Consensus, b"members only".to_vec()).await;
    let _ = next(&mut b_rx, LONG, gossip).await.expect("B receives");

    // A member told to dial the stranger refuses it too.
    let rogue_addr = rogue_addr.await.expect("rogue listens");
    let (_d, mut d_rx) = node(&g, &keys[2], vec![rogue_addr]).await;
    let refused = next(&mut d_rx, LONG, |e| match e {
        NetEvent::PeerRefused { peer, .. } => Some(peer),
        _ => None,
    })
    .await;
    assert_eq!(refused, Some(rogue_id.to_string()));

    let (messages, sync_answers, sync_failures) = rogue_task.await.expect("rogue task");
    assert_eq!((messages, sync_answers), (0, 0), "the stranger got nothing");
    assert_eq!(sync_failures, 1, "its sync request failed");
}

/// Answers every request with the next of a list of malformed frames.
#[derive(Clone, Debug)]
struct Garbage;

impl request_response::Codec for Garbage {
    type Protocol = libp2p::StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &Self::Protocol, io: &mut T) -> std::io::Result<Vec<u8>>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        let mut buf = Vec::new();
        io.take(64).read_to_end(&mut buf).await?;
        Ok(buf)
    }
    async fn read_response<T>(&mut self, _: &Self::Protocol, io: &mut T) -> std::io::Result<Vec<u8>>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        self.read_request(&SYNC_PROTOCOL, io).await
    }
    async fn write_request<T>(&mut self, _: &Self::Protocol, io: &mut T, req: Vec<u8>) -> std::io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        io.write_all(&req).await
    }
    async fn write_response<T>(&mut self, _: &Self::Protocol, io: &mut T, resp: Vec<u8>) -> std::io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        io.write_all(&resp).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_gossip_and_malformed_sync_answers_are_refused() {
    let (g, keys) = genesis();
    let (b, mut b_rx) = node(&g, &keys[1], vec![]).await;
    let (a, _a_rx) = node(&g, &keys[0], vec![addr(&b)]).await;
    connected(&a, &[name(&g, 1)]).await;
    let bounds = a.bounds();

    // Above the bound: refused locally, nothing sent.
    for len in [bounds.gossip_data_max + 1, bounds.gossip_transmit_max + 1] {
        let err = a.publish(Topic::Consensus, vec![1; len]).await;
        assert!(matches!(err, Err(NetError::TooLarge { .. })), "{len}: {err:?}");
    }
    // Exactly at the bound: the largest proposal fits the transport's frame limit.
    publish_when_ready(&a, Topic::Consensus, vec![2; bounds.gossip_data_max]).await;
    let (_, id, data) = next(&mut b_rx, LONG, gossip).await.expect("the largest message arrives");
    assert_eq!(data.len(), bounds.gossip_data_max);
    b.report(id, Validation::Accept);

    // A member whose sync answers are malformed (member 3's key, plain libp2p).
    let mut count_then = 1u32.to_le_bytes().to_vec();
    count_then.extend_from_slice(&[0xff; 8]);
    let mut trailing = 0u32.to_le_bytes().to_vec();
    trailing.push(0);
    let mut huge_block = 1u32.to_le_bytes().to_vec();
    huge_block.extend_from_slice(&u32::MAX.to_le_bytes());
    let answers: Vec<Vec<u8>> = vec![
        u32::MAX.to_le_bytes().to_vec(), // block count far above the bound
        vec![1, 2],                      // truncated count
        count_then,                      // block length larger than the bytes sent
        trailing,                        // bytes after the frame
        huge_block,                      // block length above the bound
        Vec::new(),                      // nothing at all
    ];
    let n = answers.len();
    let mut liar = raw_swarm(keys[3].seed(), |_| {
        request_response::Behaviour::with_codec(
            Garbage,
            [(SYNC_PROTOCOL, ProtocolSupport::Full)],
            request_response::Config::default(),
        )
    });
    liar.dial(addr(&a)).expect("dial");
    tokio::spawn(async move {
        let mut answers = answers.into_iter();
        while let Some(e) = liar.next().await {
            if let SwarmEvent::Behaviour(request_response::Event::Message {
                message: request_response::Message::Request { channel, .. },
                ..
            }) = e
            {
                let _ = liar.behaviour_mut().send_response(channel, answers.next().unwrap_or_default());
            }
        }
    });
    connected(&a, &[name(&g, 3)]).await;
    for i in 0..n {
        let got = a.request_blocks(name(&g, 3), SyncRequest { from_height: 1, max_blocks: 4 }).await;
        assert!(matches!(got, Err(NetError::Sync(_))), "answer {i}: {got:?}");
    }
    // The node is unharmed.
    assert!(a.peers().contains(&name(&g, 1)));
    publish_when_ready(&a, Topic::Attestations, b"still alive".to_vec()).await;
    assert!(next(&mut b_rx, LONG, gossip).await.is_some());
}

#[tokio::test]
async fn spawn_refuses_a_key_outside_genesis() {
    let (g, _) = genesis();
    let config = NetConfig {
        listen: LOOPBACK.parse().expect("addr"),
        bootstrap: vec![],
        members: NetConfig::genesis_members(&g),
        genesis: g,
        connections_max: 4,
    };
    assert!(matches!(net::spawn(config, &SecretKey::from_seed([99; 32])).await, Err(NetError::NotAMember)));
}

/// The allow-list follows governance: a member added after genesis is refused until
/// `set_members` admits it (its node knows the genesis members and itself), then
/// connects; once it leaves the set in force its connection is closed and refused.
#[tokio::test]
async fn the_allow_list_follows_the_members_in_force() {
    let (g, keys) = genesis();
    let joiner = SecretKey::from_seed([42; 32]);
    let jname = MemberName::parse("name", "bank-joining").expect("name");
    let mut with_joiner = NetConfig::genesis_members(&g);
    with_joiner.push((jname.clone(), joiner.public()));
    let (a, _a_rx) = node(&g, &keys[0], vec![]).await;
    let (j, _j_rx) = node_with(&g, with_joiner.clone(), &joiner, vec![addr(&a)]).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(!a.peers().contains(&jname), "a stranger to the set in force is refused");
    assert!(!j.peers().contains(&name(&g, 0)));
    a.set_members(with_joiner).await.expect("set");
    connected(&a, std::slice::from_ref(&jname)).await;
    connected(&j, &[name(&g, 0)]).await;
    a.set_members(NetConfig::genesis_members(&g)).await.expect("set");
    let gone = async {
        while a.peers().contains(&jname) || j.peers().contains(&name(&g, 0)) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), gone).await.expect("a removed member is disconnected");
}
