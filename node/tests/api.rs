//! HTTP API tests against a real server on 127.0.0.1 over a committed demo chain in a redb store, using a minimal HTTP/1.1 client.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

use credence_ledger::access::{AccessKeyGrant, Consent, FactKind, Purpose, QueryRecord, ReadKind, Scope};
use credence_ledger::attestation::{AttestationBody, AttestationId, Claim, RdCategory, RdSpend, Revocation};
use credence_ledger::block::Leaf;
use credence_ledger::checkpoint::Checkpoint;
use credence_ledger::demo::{self, ChainBuilder};
use credence_ledger::hash::Hash;
use credence_ledger::ids::{Currency, MemberName, Money, Period, Uscc};
use credence_ledger::merkle::{self, NodeHash};
use credence_ledger::sig::SecretKey;
use credence_ledger::store::{IndexKey, RedbStore, Store};
use credence_ledger::tiles::{self, Tile, TileKind};
use credence_ledger::verify::ChainContext;
use credence_node::api::{self, ApiConfig, ApiState, NodeStatus, SharedStore};
use credence_node::httpsig;
use credence_node::mempool::{Mempool, MempoolLimits};
use credence_node::metrics::{METRIC_NAMES, Metrics};

const BLOCKS: usize = 4;
const PER_BLOCK: usize = 30;
const CENTRE: &str = "sz-tech-finance-centre";

/// Records of the chain's last block (docs/ACCESS.md): who may read what.
struct Access {
    /// bank-icbc-sz's access key with the member and restricted scopes.
    officer: (AttestationId, SecretKey),
    /// The regulator's access key with the regulator scope.
    regulator: (AttestationId, SecretKey),
    /// The busiest enterprise, and its consent for bank-icbc-sz (loan-application, all facts).
    enterprise: Uscc,
    consent: AttestationId,
    /// bank-icbc-sz's keys: one that expired a millisecond after its grant, one revoked.
    expired: Key,
    revoked: Key,
}

/// Height of the last access block (grants and consent, then a revocation), after the demo blocks.
const HEIGHT: usize = BLOCKS + 2;
/// Records of the access blocks: four grants and a consent, then a revocation.
const ACCESS_RECORDS: usize = 6;
/// Leaves on the chain.
const TREE_SIZE: usize = BLOCKS * PER_BLOCK + ACCESS_RECORDS;

/// A running API over a committed chain.
struct Node {
    addr: SocketAddr,
    access: Access,
    ctx: Arc<ChainContext>,
    keys: Vec<SecretKey>,
    store: SharedStore,
    gossip: mpsc::Receiver<Leaf>,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The chain's builder, to commit further blocks.
    builder: ChainBuilder,
    _dir: tempfile::TempDir,
}

async fn start() -> Node {
    start_with(ApiConfig { request_timeout: Duration::from_secs(5), ..ApiConfig::default() }).await
}

async fn start_with(config: ApiConfig) -> Node {
    // A recent genesis: access keys and consents are valid only for a while after their time.
    let mut builder = ChainBuilder::with_regulator(11, now_ms() - 3_600_000).expect("demo chain");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = RedbStore::open(&dir.path().join("ledger.redb"), builder.genesis()).expect("store");
    for _ in 0..BLOCKS {
        let vb = builder.next_block(PER_BLOCK).expect("block");
        store.commit(&vb).expect("commit");
    }
    let enterprise = busiest_enterprise(&store);
    let (officer, regulator) = (SecretKey::from_seed([21; 32]), SecretKey::from_seed([22; 32]));
    let (expired, revoked) = (SecretKey::from_seed([23; 32]), SecretKey::from_seed([24; 32]));
    // The access block's time (next_block_of steps 1 to 1.5 s; its records are issued 0.5 s before).
    let days = |d: u64| builder.time_ms() + 2_000 + d * 86_400_000;
    let grant_until = |holder: &str, key: &SecretKey, scopes: Vec<Scope>, expires_at_ms: u64| {
        Claim::AccessKey(AccessKeyGrant { holder: holder.into(), key: key.public(), scopes, expires_at_ms })
    };
    let grant = |holder: &str, key: &SecretKey, scopes: Vec<Scope>| grant_until(holder, key, scopes, days(30));
    let name = |n: &str| MemberName::parse("member", n).expect("name");
    let member = |n: &str| usize::from(builder.genesis().member_index(&name(n)).expect("member"));
    let (bank, reg) = (member("bank-icbc-sz"), member(demo::REGULATOR));
    let consent = Claim::Consent(Consent {
        enterprise,
        recipient: name("bank-icbc-sz"),
        purpose: Purpose::LoanApplication,
        scope: FactKind::ALL.to_vec(),
        expires_at_ms: days(365),
        evidence: Hash([9; 32]),
    });
    let claims = vec![
        (bank, grant("loan-officer-zhang", &officer, vec![Scope::Member, Scope::Restricted])),
        (reg, grant("inspector-li", &regulator, vec![Scope::Regulator])),
        (bank, consent),
        (bank, grant_until("expired", &expired, vec![Scope::Member], builder.time_ms() + 1_000)),
        (bank, grant("revoked", &revoked, vec![Scope::Member])),
    ];
    let vb = builder.next_block_of(claims).expect("access block");
    let ids: Vec<AttestationId> = vb.certified().block.leaves.iter().map(|l| l.id).collect();
    store.commit(&vb).expect("commit");
    let revocation = Claim::Revocation(Revocation { target: ids[4], superseded_by: None });
    store.commit(&builder.next_block_of(vec![(bank, revocation)]).expect("revocation block")).expect("commit");
    let access = Access {
        officer: (ids[0], officer),
        regulator: (ids[1], regulator),
        enterprise,
        consent: ids[2],
        expired: (ids[3], expired),
        revoked: (ids[4], revoked),
    };
    let ctx = Arc::new(ChainContext::new(builder.genesis().clone()));
    let keys = builder.genesis().members.iter().map(|m| demo::member_key(11, m.name.as_str())).collect();
    let store: SharedStore = Arc::new(RwLock::new(store));
    let mempool = Arc::new(Mutex::new(Mempool::new(ctx.clone(), MempoolLimits::default())));
    let status =
        NodeStatus { peers: 3, syncing: false, member: Some("bank-icbc-sz".into()), validator: true, round: Some(0) };
    let (_status_tx, status_rx) = watch::channel(status);
    let (gossip_tx, gossip) = mpsc::channel(256);
    let state = ApiState::new(ctx.clone(), store.clone(), mempool, status_rx, Arc::new(Metrics::new()))
        .with_gossip(gossip_tx)
        .with_config(config);
    // This node is bank-icbc-sz's: it logs the restricted reads it serves, signed with its key.
    let signer = api::query_log::Signer { name: name("bank-icbc-sz"), key: demo::member_key(11, "bank-icbc-sz") };
    let (state, _query_log) = state.with_query_log(signer);
    let listener = bind_loopback().await;
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    Node { addr, access, ctx, keys, store, gossip, stop: Some(stop), server, builder, _dir: dir }
}

/// The enterprise with the most records.
fn busiest_enterprise(store: &RedbStore) -> Uscc {
    let mut best = (0, None);
    for i in 0..(BLOCKS * PER_BLOCK) as u64 {
        let leaf = store.leaf(i).expect("store").expect("leaf");
        if let Some(e) = leaf.attestation.body.claim.enterprise() {
            let c = store.query(IndexKey::Enterprise(e), None, 1000).expect("query").len();
            if c > best.0 {
                best = (c, Some(*e));
            }
        }
    }
    best.1.expect("an enterprise")
}

/// A listener on 127.0.0.1 below the ephemeral range, in the port scheme of
/// `tests/common/net.rs`: this process's region starts at 10,000 + (pid mod 13) × 1,600; the
/// end-to-end tests' slots use its offsets 0..600 (p2p, proxies) and 1,000..1,600 (APIs), so
/// these in-process servers take offsets 600..1,000, skipping ports in use.
async fn bind_loopback() -> TcpListener {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let region = 10_000 + (std::process::id() % 13) as u16 * 1_600;
    for _ in 0..400 {
        let port = region + 600 + NEXT.fetch_add(1, Ordering::Relaxed) % 400;
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)).await {
            return listener;
        }
    }
    panic!("no free port in {}..{}", region + 600, region + 1000);
}

struct Reply {
    status: u16,
    content_type: String,
    retry_after: Option<String>,
    cache_control: String,
    /// The server announced it closes the connection (`Connection: close`).
    close: bool,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("utf-8")
    }
    /// `(code, field)` of an error body.
    fn error(&self) -> (String, String) {
        let v = self.json();
        let e = &v["error"];
        assert!(e["rule"].as_str().is_some_and(|r| !r.is_empty()), "error names a rule: {v}");
        assert!(e["message"].is_string(), "{v}");
        (e["code"].as_str().unwrap_or_default().to_string(), e["field"].as_str().unwrap_or_default().to_string())
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`).
async fn request(addr: SocketAddr, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> Reply {
    request_as(addr, None, method, path, content_type, body).await
}

/// An access key: its grant's id and its secret key.
type Key = (AttestationId, SecretKey);

/// The RFC 9421 fields that sign `method path` with `key` now (docs/ACCESS.md).
fn signature_fields(key: &Key, method: &str, path: &str, body: &[u8]) -> Vec<(String, String)> {
    let now_s = (now_ms() / 1000) as i64;
    httpsig::signed_headers(method, path, Some(body), &key.0.to_string(), &key.1, now_s)
        .expect("signed")
        .into_iter()
        .map(|(n, v)| (n.to_string(), v))
        .collect()
}

/// [`request`], signed (RFC 9421, docs/ACCESS.md) with `key` if given.
async fn request_as(
    addr: SocketAddr,
    key: Option<&Key>,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Reply {
    let fields = key.map(|k| signature_fields(k, method, path, body)).unwrap_or_default();
    request_with(addr, &fields, method, path, content_type, body).await
}

/// [`request`] with these extra header fields.
async fn request_with(
    addr: SocketAddr,
    fields: &[(String, String)],
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Reply {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in fields {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    if method == "POST" || !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.expect("write");
    // A server may answer (e.g. 413) before reading the whole body; ignore a reset then.
    let _ = s.write_all(body).await;
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status");
    let mut content_type = String::new();
    let mut retry_after = None;
    let mut cache_control = String::new();
    let mut close = false;
    let mut chunked = false;
    for l in lines {
        let (k, v) = l.split_once(':').expect("header");
        match k.to_ascii_lowercase().as_str() {
            "content-type" => content_type = v.trim().to_string(),
            "retry-after" => retry_after = Some(v.trim().to_string()),
            "cache-control" => cache_control = v.trim().to_string(),
            "connection" => close = v.trim().eq_ignore_ascii_case("close"),
            "transfer-encoding" => chunked = v.trim().eq_ignore_ascii_case("chunked"),
            _ => {}
        }
    }
    let mut body = raw[split + 4..].to_vec();
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let end = rest.windows(2).position(|w| w == b"\r\n").expect("chunk size");
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..end]).expect("hex").trim(), 16).expect("hex");
            rest = &rest[end + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = out;
    }
    Reply { status, content_type, retry_after, cache_control, close, body }
}

/// A GET signed with the loan officer's key (member and restricted scopes).
async fn get(n: &Node, path: &str) -> Reply {
    request_as(n.addr, Some(&n.access.officer), "GET", path, None, b"").await
}

/// A GET signed with `key`, or unsigned.
async fn get_as(n: &Node, key: Option<&Key>, path: &str) -> Reply {
    request_as(n.addr, key, "GET", path, None, b"").await
}

async fn post_json(n: &Node, path: &str, v: &Value) -> Reply {
    request(n.addr, "POST", path, Some("application/json"), v.to_string().as_bytes()).await
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn rd(n: u64) -> Claim {
    Claim::RdSpend(RdSpend {
        enterprise: Uscc::parse("enterprise", demo::REAL_USCCS[2]).expect("uscc"),
        period: Period::new("period", 2024, 0).expect("period"),
        amount: Money { fen: 1_000_000 + n, currency: Currency::CNY }.into(),
        category: RdCategory::Total,
        evidence: Hash([7; 32]),
    })
}

impl Node {
    fn sign_as(&self, key_of: &str, attester: &str, sequence: u64, claim: Claim) -> Vec<u8> {
        let name = MemberName::parse("attester", key_of).expect("name");
        let i = self.ctx.genesis.member_index(&name).expect("member");
        let attester = MemberName::parse("attester", attester).expect("name");
        let body = AttestationBody { attester, sequence, issued_at_ms: now_ms() - 1000, claim };
        body.sign(&self.keys[usize::from(i)], &self.ctx.chain_id).to_bytes()
    }
    fn sign(&self, attester: &str, sequence: u64, claim: Claim) -> Vec<u8> {
        self.sign_as(attester, attester, sequence, claim)
    }
    async fn next_sequence(&self, member: &str) -> u64 {
        let r = get(self, &format!("/v1/attesters/{member}/next-sequence")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["next_sequence"].as_u64().expect("number")
    }
    async fn submit(&self, bytes: &[u8]) -> Reply {
        post_json(self, "/v1/attestations", &json!({ "attestation": B64.encode(bytes) })).await
    }
    fn leaf(&self, index: u64) -> Leaf {
        self.store.read().expect("lock").leaf(index).expect("store").expect("leaf")
    }
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let done = tokio::time::timeout(Duration::from_secs(10), self.server).await;
        assert!(matches!(done, Ok(Ok(Ok(())))), "server stops cleanly: {done:?}");
    }
}

fn unb64(s: &Value) -> NodeHash {
    let v = B64.decode(s.as_str().expect("string")).expect("base64");
    v.try_into().expect("32 bytes")
}

#[tokio::test]
async fn submit_valid_is_pending_and_advances_next_sequence() {
    let mut n = start().await;
    let seq = n.next_sequence(CENTRE).await;
    let bytes = n.sign(CENTRE, seq, rd(1));
    let r = post_json(
        &n,
        "/v1/attestations",
        &json!({ "attestation": B64.encode(&bytes), "decoded": {"note": "ignored"} }),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().expect("id").to_string();
    assert_eq!(id, Leaf::from_bytes(bytes.clone()).expect("leaf").id.to_string());

    // A pending record shows its metadata; its facts are read once committed, under consent.
    let r = get(&n, &format!("/v1/attestations/{id}")).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["status"], "pending");
    assert_eq!(v["held"], false);
    assert_eq!(v["attester"], CENTRE);
    assert_eq!(v["sequence"], seq);
    assert_eq!(v["claim"], json!({"kind": "withheld", "of": "rd-spend"}));
    assert_eq!((v["attestation"].is_null(), v["signature"].is_null()), (true, true));
    let pending = Leaf::from_bytes(bytes.clone()).expect("leaf");
    assert_eq!(pending.attestation.body.sequence, seq);
    assert_eq!(n.next_sequence(CENTRE).await, seq + 1);

    let gossiped = n.gossip.recv().await.expect("gossiped");
    assert_eq!(gossiped.bytes, bytes);

    // A held record reports what it waits for.
    let r = n.submit(&n.sign(CENTRE, seq + 2, rd(2))).await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["waiting_for_sequence"], seq + 1);
    let r = get(&n, &format!("/v1/attesters/{CENTRE}/next-sequence")).await.json();
    assert_eq!(r["held"], json!([seq + 2]));
    assert_eq!(r["committed_next"], seq);

    let status = get(&n, "/v1/status").await.json();
    assert_eq!(status["mempool"]["records"], 2);
    assert_eq!(status["mempool"]["held"], 1);
    n.stop().await;
}

#[tokio::test]
async fn refusals_name_the_field_and_rule() {
    let n = start().await;
    let seq = n.next_sequence(CENTRE).await;
    let cases: Vec<(Reply, u16, &str, &str)> = vec![
        (
            post_json(&n, "/v1/attestations", &json!({"attestation": "%%%not base64"})).await,
            400,
            "malformed",
            "attestation",
        ),
        (n.submit(&[0u8; 40]).await, 400, "malformed", "attestation"),
        (
            request(n.addr, "POST", "/v1/attestations", Some("application/json"), b"{\"attestation\": ").await,
            400,
            "bad_request",
            "body",
        ),
        (post_json(&n, "/v1/attestations", &json!({"attestation": 5})).await, 400, "bad_request", "body"),
        (post_json(&n, "/v1/attestations", &json!({"attestation": "", "extra": 1})).await, 400, "bad_request", "body"),
        (request(n.addr, "POST", "/v1/attestations", None, b"{}").await, 415, "unsupported_media_type", "content-type"),
        // Signed by another member's key.
        (n.submit(&n.sign_as("bank-icbc-sz", CENTRE, seq, rd(3))).await, 422, "R022", "signature"),
        // Not a member.
        (n.submit(&n.sign_as(CENTRE, "centre-nobody", 1, rd(4))).await, 422, "R001", "attester"),
        // Sequence far past the next one.
        (n.submit(&n.sign(CENTRE, seq + 300, rd(5))).await, 422, "R004", "sequence"),
        // A committed record sent again.
        (n.submit(&n.leaf(7).bytes).await, 422, "R003", "sequence"),
    ];
    for (i, (r, status, code, field)) in cases.into_iter().enumerate() {
        assert_eq!(r.status, status, "case {i}: {}", r.text());
        assert!(r.content_type.starts_with("application/json"), "case {i}: {}", r.content_type);
        assert_eq!(r.error(), (code.to_string(), field.to_string()), "case {i}: {}", r.text());
    }
    let ok = n.sign(CENTRE, seq, rd(6));
    assert_eq!(n.submit(&ok).await.status, 202);
    let dup = n.submit(&ok).await;
    assert_eq!((dup.status, dup.error().0.as_str()), (409, "duplicate"));
    let wrong_sequence = n.submit(&n.sign(CENTRE, seq, rd(7))).await;
    assert_eq!(wrong_sequence.status, 422);
    assert_eq!(wrong_sequence.error(), ("R003".into(), "sequence".into()));
    n.stop().await;
}

#[tokio::test]
async fn oversized_body_is_413() {
    let n = start().await;
    let big = json!({ "attestation": "A".repeat(70 * 1024) });
    let r = post_json(&n, "/v1/attestations", &big).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.error(), ("payload_too_large".into(), "body".into()));
    // Under the body limit but longer than any attestation.
    let r = post_json(&n, "/v1/attestations", &json!({ "attestation": "A".repeat(4000) })).await;
    assert_eq!((r.status, r.error().0.as_str()), (400, "malformed"));
    n.stop().await;
}

#[tokio::test]
async fn every_get_endpoint_on_committed_data() {
    let n = start().await;
    let leaf = n.leaf(33);
    let r = get(&n, &format!("/v1/attestations/{}", leaf.id)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["status"], "committed");
    assert_eq!(v["leaf_index"], 33);
    assert_eq!(v["height"], 2);
    assert!(["active", "revoked", "released"].contains(&v["record_status"].as_str().expect("status")));
    assert!(v["claim"]["kind"].is_string());

    let b = get(&n, "/v1/blocks/2").await.json();
    assert_eq!(b["height"], 2);
    assert_eq!(b["tree_size"], 2 * PER_BLOCK);
    assert_eq!(b["first_leaf_index"], PER_BLOCK);
    assert_eq!(b["attestations"].as_array().expect("ids").len(), PER_BLOCK);
    assert_eq!(b["attestations"][3], leaf.id.to_string());
    let cert = Checkpoint::parse_note(b["certificate"].as_str().expect("note")).expect("C2SP note");
    assert_eq!(cert.body.height, 2);
    assert_eq!(hex_of(&cert.body.block_hash), b["hash"].as_str().expect("hash"));
    assert_eq!(unb64(&b["tree_root"]), cert.body.root);

    let s = get(&n, "/v1/status").await.json();
    assert_eq!(s["height"], HEIGHT);
    assert_eq!(s["tree_size"], TREE_SIZE);
    assert_eq!(s["peers"], 3);
    assert_eq!(s["syncing"], false);
    assert_eq!(s["validator"], true);
    assert_eq!(s["chain_id"], n.ctx.chain_id.to_hex());

    let c = get(&n, "/v1/checkpoint").await;
    assert_eq!(c.status, 200);
    assert!(c.content_type.starts_with("text/plain"), "{}", c.content_type);
    let cp = Checkpoint::parse_note(&c.text()).expect("C2SP note");
    assert_eq!(cp.body.tree_size, TREE_SIZE as u64);
    assert_eq!(cp.body.height, HEIGHT as u64);

    // Governance: the genesis members and validators, in force at the next height; the
    // set hash is the one the committed headers carry.
    let g = get(&n, "/v1/governance").await;
    assert_eq!(g.status, 200, "{}", g.text());
    let g = g.json();
    assert_eq!(g["height"], HEIGHT);
    assert_eq!(g["in_force_at"], HEIGHT + 1);
    let genesis_validators: Vec<String> = n.ctx.genesis.validators().map(|m| m.name.to_string()).collect();
    assert_eq!(g["validators"], json!(genesis_validators));
    let header = n.store.read().expect("lock").block(2).expect("store").expect("block").block.header;
    assert_eq!(g["validator_set_hash"], header.validator_set.to_hex());
    assert_eq!(g["members"].as_array().expect("members").len(), n.ctx.genesis.members.len());
    assert_eq!(g["members"][0]["key"], hex::encode(n.ctx.genesis.members[0].public_key.0));
    assert_eq!(g["quorum"], credence_ledger::checkpoint::quorum_threshold(genesis_validators.len()));
    assert_eq!(g["proposals"], json!([]));
    assert_eq!(g["epochs"][0]["from_height"], 1);
    assert_eq!(g["epochs"][0]["set_hash"], header.validator_set.to_hex());
    assert_eq!(g["params"]["block_records_max"], n.ctx.genesis.consensus.block_records_max);

    let h = get(&n, "/healthz").await;
    assert_eq!((h.status, h.json()["status"].as_str()), (200, Some("ok")));

    let member = n.ctx.genesis.members[0].name.to_string();
    let ns = get(&n, &format!("/v1/attesters/{member}/next-sequence")).await.json();
    assert!(ns["next_sequence"].as_u64().expect("n") >= 1);

    // Not found and bad parameters.
    let missing = "ab".repeat(32);
    for (path, status, field) in [
        (format!("/v1/attestations/{missing}"), 404, "id"),
        ("/v1/attestations/xyz".to_string(), 400, "id"),
        (format!("/v1/attestations/{}", "a".repeat(5000)), 400, "id"),
        ("/v1/blocks/99".to_string(), 404, "height"),
        ("/v1/blocks/99/certified".to_string(), 403, "scope"),
        ("/v1/members/bank-icbc-sz/queries".to_string(), 403, "scope"),
        ("/v1/blocks/0".to_string(), 404, "height"),
        ("/v1/blocks/-1".to_string(), 400, "height"),
        ("/v1/blocks/99999999999999999999999".to_string(), 400, "height"),
        ("/v1/attesters/Not_A_Name/next-sequence".to_string(), 400, "member"),
        ("/v1/attesters/bank-nobody/next-sequence".to_string(), 404, "member"),
        ("/v1/nothing/here".to_string(), 404, "path"),
    ] {
        let r = get(&n, &path).await;
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert_eq!(r.error().1, field, "{path}: {}", r.text());
    }
    let r = request(n.addr, "DELETE", "/v1/status", None, b"").await;
    assert_eq!((r.status, r.error().0.as_str()), (405, "method_not_allowed"));
    n.stop().await;
}

fn hex_of(b: &[u8; 32]) -> String {
    Hash(*b).to_hex()
}

/// Pages through `path` with `limit`, returning the leaf indexes seen.
async fn all_pages(n: &Node, path: &str, limit: usize) -> Vec<u64> {
    let mut out = Vec::new();
    let mut after: Option<u64> = None;
    for _ in 0..1000 {
        let sep = if path.contains('?') { '&' } else { '?' };
        let q = match after {
            Some(a) => format!("{path}{sep}limit={limit}&after={a}"),
            None => format!("{path}{sep}limit={limit}"),
        };
        let r = get(n, &q).await;
        assert_eq!(r.status, 200, "{q}: {}", r.text());
        let v = r.json();
        let items = v["items"].as_array().expect("items");
        assert!(items.len() <= limit);
        out.extend(items.iter().map(|i| i["leaf_index"].as_u64().expect("index")));
        match v["next_after"].as_u64() {
            Some(a) => after = Some(a),
            None => return out,
        }
    }
    panic!("paging did not end");
}

#[tokio::test]
async fn paging_by_enterprise_patent_and_attester() {
    let n = start().await;
    // The busiest enterprise, patent and attester of the chain.
    let (uscc, patent) = {
        let store = n.store.read().expect("lock");
        let mut best_e = (0, None);
        let mut best_p = (0, None);
        for i in 0..(BLOCKS * PER_BLOCK) as u64 {
            let leaf = store.leaf(i).expect("store").expect("leaf");
            if let Some(e) = leaf.attestation.body.claim.enterprise() {
                let c = store.query(IndexKey::Enterprise(e), None, 1000).expect("query").len();
                if c > best_e.0 {
                    best_e = (c, Some(*e));
                }
            }
            if let Some(p) = leaf.attestation.body.claim.patent() {
                let c = store.query(IndexKey::Patent(p), None, 1000).expect("query").len();
                if c > best_p.0 {
                    best_p = (c, Some(*p));
                }
            }
        }
        (best_e.1.expect("enterprise"), best_p.1.expect("patent"))
    };
    let attester = CENTRE;
    let index = n.ctx.genesis.member_index(&MemberName::parse("m", attester).expect("name")).expect("member");
    let expected = |key: IndexKey<'_>| n.store.read().expect("lock").query(key, None, 1000).expect("query");

    let want = expected(IndexKey::Enterprise(&uscc));
    assert!(want.len() >= 2, "a busy enterprise");
    assert_eq!(all_pages(&n, &format!("/v1/enterprises/{uscc}/attestations"), 1).await, want);
    assert_eq!(all_pages(&n, &format!("/v1/enterprises/{uscc}/attestations"), 2).await, want);
    let want = expected(IndexKey::Patent(&patent));
    assert_eq!(all_pages(&n, &format!("/v1/patents/{patent}/attestations"), 1).await, want);
    let want = expected(IndexKey::Attester(index));
    assert!(want.len() > 10);
    assert_eq!(all_pages(&n, &format!("/v1/attesters/{attester}/attestations"), 7).await, want);

    // Default limit, and the items are the attester's.
    let v = get(&n, &format!("/v1/attesters/{attester}/attestations")).await.json();
    let items = v["items"].as_array().expect("items");
    assert_eq!(items.len(), want.len().min(100));
    assert!(items.iter().all(|i| i["attester"] == attester && i["status"] == "committed"));

    for (q, field) in [
        ("?limit=0", "limit"),
        ("?limit=1001", "limit"),
        ("?limit=abc", "limit"),
        ("?limit=99999999999999999999999", "limit"),
        ("?after=-3", "after"),
        ("?colour=blue", "query"),
    ] {
        let r = get(&n, &format!("/v1/enterprises/{uscc}/attestations{q}")).await;
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        assert_eq!(r.error().1, field, "{q}");
    }
    let r = get(&n, "/v1/enterprises/914403001922038217/attestations").await;
    assert_eq!((r.status, r.error().1.as_str()), (400, "uscc"));
    assert!(r.json()["error"]["rule"].as_str().expect("rule").contains("check"), "{}", r.text());
    let r = get(&n, "/v1/patents/CN202310123456.0/attestations").await;
    assert_eq!((r.status, r.error().1.as_str()), (400, "number"));
    n.stop().await;
}

/// `from_height`/`to_height`/`since_ms`/`until_ms` select whole blocks, also across pages.
#[tokio::test]
async fn height_and_time_ranges_select_whole_blocks() {
    let n = start().await;
    let attester = CENTRE;
    let path = format!("/v1/attesters/{attester}/attestations");
    let (all, headers) = {
        let store = n.store.read().expect("lock");
        let index = n.ctx.genesis.member_index(&MemberName::parse("m", attester).expect("name")).expect("member");
        let all = store.query(IndexKey::Attester(index), None, 1000).expect("query");
        let headers: Vec<_> = (1..=BLOCKS as u64).map(|h| store.header(h).expect("store").expect("header")).collect();
        (all, headers)
    };
    // Leaves of blocks `first..=last`.
    let leaves = |first: usize, last: usize| -> Vec<u64> {
        let lo = if first == 1 { 0 } else { headers[first - 2].tree_size };
        let hi = headers[last - 1].tree_size;
        all.iter().copied().filter(|i| (lo..hi).contains(i)).collect()
    };
    let t = |h: usize| headers[h - 1].time_ms;
    assert!(!leaves(2, 3).is_empty() && leaves(2, 3).len() < all.len(), "the attester spans several blocks");
    for (query, want) in [
        ("from_height=2&to_height=3".to_string(), leaves(2, 3)),
        ("from_height=3".to_string(), leaves(3, BLOCKS)),
        ("to_height=1".to_string(), leaves(1, 1)),
        (format!("since_ms={}", t(2)), leaves(2, BLOCKS)),
        (format!("since_ms={}&until_ms={}", t(2) + 1, t(3)), leaves(3, 3)),
        (format!("until_ms={}", t(1) - 1), vec![]),
        ("from_height=3&to_height=2".to_string(), vec![]),
        ("from_height=99".to_string(), vec![]),
    ] {
        assert!(want.len() <= all.len());
        assert_eq!(all_pages(&n, &format!("{path}?{query}"), 3).await, want, "{query}");
    }
    let r = get(&n, &format!("{path}?since_ms=soon")).await;
    assert_eq!((r.status, r.error().1.as_str()), (400, "since_ms"));
    n.stop().await;
}

/// `GET /v1/blocks/{h}/certified` is the block's canonical encoding, and each read of it is
/// logged: one query record per enterprise whose withheld records the block holds.
#[tokio::test]
async fn certified_blocks_are_served_in_canonical_encoding() {
    let mut n = start().await;
    // Whole blocks hold every fact in clear: the regulator scope only.
    let r = get(&n, "/v1/blocks/2/certified").await;
    assert_eq!((r.status, r.error().1.as_str()), (403, "scope"));
    assert!(r.json()["error"]["rule"].as_str().expect("rule").contains("regulator"), "{}", r.text());
    let r = get_as(&n, Some(&n.access.regulator), "/v1/blocks/2/certified").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "application/octet-stream");
    let want = n.store.read().expect("lock").block(2).expect("store").expect("block");
    let got = credence_ledger::block::decode_certified_exact(&r.body, 10_000).expect("decodes");
    assert_eq!(got, want);
    // The enterprises of its facts (a release or a loan's record counts for its pledge's or
    // loan's enterprise; revocations and grants disclose nothing withheld).
    let expected = {
        let store = n.store.read().expect("lock");
        let mut expected = BTreeSet::new();
        for leaf in &want.block.leaves {
            let claim = &leaf.attestation.body.claim;
            if claim.kind().fact().is_none() {
                continue;
            }
            let e = claim.enterprise().copied().or_else(|| {
                claim.references().iter().find_map(|id| {
                    let at = store.locate(id).expect("store")?;
                    store.leaf(at.leaf_index).expect("store")?.attestation.body.claim.enterprise().copied()
                })
            });
            expected.extend(e);
        }
        expected
    };
    assert!(expected.len() >= 3, "block 2 holds several enterprises' facts: {expected:?}");
    let q = logged_queries(&mut n, expected.len()).await;
    assert_eq!(q.iter().map(|q| q.enterprise).collect::<BTreeSet<_>>(), expected);
    for q in &q {
        assert_eq!((q.reader.as_str(), q.access_key), (demo::REGULATOR, n.access.regulator.0));
        assert_eq!((q.purpose, q.consent, q.read), (Purpose::Supervision, None, ReadKind::Block { height: 2 }));
    }
    // The access block holds grants and a consent: one record, for the consent's enterprise;
    // the revocation block discloses nothing withheld and logs nothing.
    let r = get_as(&n, Some(&n.access.regulator), &format!("/v1/blocks/{}/certified", HEIGHT - 1)).await;
    assert_eq!(r.status, 200);
    let q = logged_queries(&mut n, 1).await;
    assert_eq!(q[0].enterprise, n.access.enterprise);
    assert_eq!(q[0].read, ReadKind::Block { height: HEIGHT as u64 - 1 });
    let r = get_as(&n, Some(&n.access.regulator), &format!("/v1/blocks/{HEIGHT}/certified")).await;
    assert_eq!(r.status, 200);
    assert!(tokio::time::timeout(Duration::from_millis(300), n.gossip.recv()).await.is_err(), "nothing logged");
    let r = get_as(&n, Some(&n.access.regulator), &format!("/v1/blocks/{}/certified", HEIGHT + 1)).await;
    assert_eq!((r.status, r.error().1.as_str()), (404, "height"));
    let r = get_as(&n, None, "/v1/blocks/2/certified").await;
    assert_eq!((r.status, r.error().1.as_str()), (401, "signature"));
    assert!(tokio::time::timeout(Duration::from_millis(300), n.gossip.recv()).await.is_err(), "refusals log nothing");
    n.stop().await;
}

/// `GET /v1/members/{member}/queries`: a regulator lists the query records of one reader
/// member, whichever node logged them; paged; 400, 401, 403 and 404 as declared.
#[tokio::test]
async fn a_regulator_lists_one_members_query_records() {
    let mut n = start().await;
    let e = n.access.enterprise;
    let member =
        |s: &str| usize::from(n.ctx.genesis.member_index(&MemberName::parse("m", s).expect("name")).expect("member"));
    let (bank, centre) = (member("bank-icbc-sz"), member(CENTRE));
    let read = |reader: &str, access_key: AttestationId, consent: Option<AttestationId>| {
        let purpose = if consent.is_some() { Purpose::LoanApplication } else { Purpose::Supervision };
        let reader = MemberName::parse("reader", reader).expect("name");
        Claim::Query(QueryRecord { reader, access_key, enterprise: e, purpose, consent, read: ReadKind::Facts })
    };
    // Query records logged by two nodes (the bank's and the centre's): three reads by the
    // bank's officer, two by the regulator.
    let (officer, regulator, consent) = (n.access.officer.0, n.access.regulator.0, n.access.consent);
    let claims = vec![
        (bank, read("bank-icbc-sz", officer, Some(consent))),
        (centre, read(demo::REGULATOR, regulator, None)),
        (centre, read("bank-icbc-sz", officer, Some(consent))),
        (bank, read(demo::REGULATOR, regulator, None)),
        (bank, read("bank-icbc-sz", officer, Some(consent))),
    ];
    let vb = n.builder.next_block_of(claims).expect("query block");
    let first = vb.header().tree_size - 5;
    n.store.write().expect("lock").commit(&vb).expect("commit");
    let path = "/v1/members/bank-icbc-sz/queries";
    let r = get_as(&n, Some(&n.access.regulator), path).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let items = v["items"].as_array().expect("items");
    let leaves: Vec<u64> = items.iter().map(|i| i["leaf_index"].as_u64().expect("leaf")).collect();
    assert_eq!(leaves, [first, first + 2, first + 4]);
    for i in items {
        let c = &i["claim"];
        assert_eq!((c["kind"].as_str(), c["reader"].as_str()), (Some("query"), Some("bank-icbc-sz")), "{i}");
        assert_eq!((c["read"].as_str(), c["block_height"].as_u64()), (Some("facts"), None));
        assert_eq!(c["access_key"], officer.to_string());
    }
    assert_eq!(all_pages_as(&n, &n.access.regulator, path, 1).await, leaves);
    let v = get_as(&n, Some(&n.access.regulator), &format!("/v1/members/{}/queries", demo::REGULATOR)).await.json();
    let regs: Vec<u64> =
        v["items"].as_array().expect("items").iter().map(|i| i["leaf_index"].as_u64().expect("l")).collect();
    assert_eq!(regs, [first + 1, first + 3]);
    // A member that read nothing: an empty page.
    let v = get_as(&n, Some(&n.access.regulator), &format!("/v1/members/{CENTRE}/queries")).await.json();
    assert_eq!((v["items"].as_array().map(Vec::len), &v["next_after"]), (Some(0), &Value::Null));
    // The listing is the regulator's supervision of the log: it is not itself logged.
    assert!(tokio::time::timeout(Duration::from_millis(300), n.gossip.recv()).await.is_err());
    for (key, path, status, field) in [
        (None, path.to_string(), 401, "signature"),
        (Some(&n.access.officer), path.to_string(), 403, "scope"),
        (Some(&n.access.regulator), "/v1/members/bank-nobody/queries".to_string(), 404, "member"),
        (Some(&n.access.regulator), "/v1/members/Not_A_Name/queries".to_string(), 400, "member"),
        (Some(&n.access.regulator), format!("{path}?limit=0"), 400, "limit"),
        (Some(&n.access.regulator), format!("{path}?limit=1001"), 400, "limit"),
        (Some(&n.access.regulator), format!("{path}?after=x"), 400, "after"),
        (Some(&n.access.regulator), format!("{path}?purpose=supervision"), 400, "purpose"),
    ] {
        let r = get_as(&n, key, &path).await;
        assert_eq!((r.status, r.error().1.as_str()), (status, field), "{path}: {}", r.text());
    }
    n.stop().await;
}

/// Pages through `path` signed with `key`, `limit` at a time, returning the leaf indexes seen.
async fn all_pages_as(n: &Node, key: &Key, path: &str, limit: usize) -> Vec<u64> {
    let mut out = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let q = match after {
            Some(a) => format!("{path}?limit={limit}&after={a}"),
            None => format!("{path}?limit={limit}"),
        };
        let r = get_as(n, Some(key), &q).await;
        assert_eq!(r.status, 200, "{q}: {}", r.text());
        let v = r.json();
        out.extend(v["items"].as_array().expect("items").iter().map(|i| i["leaf_index"].as_u64().expect("leaf")));
        match v["next_after"].as_u64() {
            Some(a) => after = Some(a),
            None => return out,
        }
    }
}

#[tokio::test]
async fn proofs_verify_against_cosigned_checkpoints() {
    let n = start().await;
    let head = Checkpoint::parse_note(&get(&n, "/v1/checkpoint").await.text()).expect("note");
    let leaf = n.leaf(45);
    let p = get(&n, &format!("/v1/proofs/inclusion/{}", leaf.id)).await;
    assert_eq!(p.status, 200, "{}", p.text());
    let v = p.json();
    assert_eq!(v["leaf_index"], 45);
    assert_eq!(v["tree_size"], head.body.tree_size);
    assert_eq!(unb64(&v["root"]), head.body.root);
    assert_eq!(unb64(&v["leaf_hash"]), merkle::leaf_hash(&leaf.bytes));
    let proof: Vec<NodeHash> = v["proof"].as_array().expect("proof").iter().map(unb64).collect();
    merkle::verify_inclusion(&merkle::leaf_hash(&leaf.bytes), 45, head.body.tree_size, &proof, &head.body.root)
        .expect("inclusion proof verifies against the checkpoint root");

    // Against an older cosigned checkpoint (block 2's certificate).
    let b2 = get(&n, "/v1/blocks/2").await.json();
    let old = Checkpoint::parse_note(b2["certificate"].as_str().expect("note")).expect("note");
    let v = get(&n, &format!("/v1/proofs/inclusion/{}?tree_size={}", leaf.id, old.body.tree_size)).await.json();
    let proof: Vec<NodeHash> = v["proof"].as_array().expect("proof").iter().map(unb64).collect();
    merkle::verify_inclusion(&merkle::leaf_hash(&leaf.bytes), 45, old.body.tree_size, &proof, &old.body.root)
        .expect("verifies against block 2's root");

    let v = get(&n, &format!("/v1/proofs/consistency?from={}", old.body.tree_size)).await.json();
    assert_eq!(v["to"], head.body.tree_size);
    assert_eq!(unb64(&v["root_from"]), old.body.root);
    assert_eq!(unb64(&v["root_to"]), head.body.root);
    let proof: Vec<NodeHash> = v["proof"].as_array().expect("proof").iter().map(unb64).collect();
    merkle::verify_consistency(old.body.tree_size, head.body.tree_size, &proof, &old.body.root, &head.body.root)
        .expect("consistency proof verifies between the two checkpoints");
    let v = get(&n, &format!("/v1/proofs/consistency?from=3&to={}", old.body.tree_size)).await.json();
    let proof: Vec<NodeHash> = v["proof"].as_array().expect("proof").iter().map(unb64).collect();
    merkle::verify_consistency(3, old.body.tree_size, &proof, &unb64(&v["root_from"]), &old.body.root)
        .expect("any older size");

    let size = head.body.tree_size;
    for (path, status, field) in [
        (format!("/v1/proofs/inclusion/{}?tree_size=45", leaf.id), 400, "tree_size"),
        (format!("/v1/proofs/inclusion/{}?tree_size={}", leaf.id, size + 1), 400, "tree_size"),
        (format!("/v1/proofs/inclusion/{}", "cd".repeat(32)), 404, "id"),
        ("/v1/proofs/consistency".to_string(), 400, "from"),
        ("/v1/proofs/consistency?from=0".to_string(), 400, "from"),
        (format!("/v1/proofs/consistency?from=5&to={}", size + 1), 400, "to"),
        ("/v1/proofs/consistency?from=9&to=8".to_string(), 400, "from"),
        ("/v1/set-changes?height=0".to_string(), 400, "height"),
        ("/v1/set-changes?height=x".to_string(), 400, "height"),
        (format!("/v1/set-changes?height={}", head.body.height + 1), 404, "height"),
    ] {
        let r = get(&n, &path).await;
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert_eq!(r.error().1, field, "{path}");
    }
    // The genesis validators are in force: no set change, for any height, to anyone.
    for path in ["/v1/set-changes".to_string(), format!("/v1/set-changes?height={}", head.body.height)] {
        let r = get_as(&n, None, &path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.json()["set_changes"].as_array().map(Vec::len), Some(0), "{path}");
        assert_eq!(r.json()["height"], head.body.height, "{path}");
    }
    n.stop().await;
}

#[tokio::test]
async fn openapi_lists_every_path() {
    let n = start().await;
    let r = get(&n, "/openapi.json").await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert!(doc["openapi"].as_str().expect("version").starts_with("3."), "{}", doc["openapi"]);
    let paths: BTreeSet<&str> = doc["paths"].as_object().expect("paths").keys().map(String::as_str).collect();
    // OpenAPI writes axum's multi-segment `{*path}` as `{path}`.
    let routes: BTreeSet<String> = api::ROUTES.iter().map(|r| r.replace("{*", "{")).collect();
    assert_eq!(paths, routes.iter().map(String::as_str).collect());
    assert!(doc["paths"]["/v1/attestations"]["post"]["responses"]["202"].is_object());
    assert!(doc["paths"]["/v1/attestations/batch"]["post"]["responses"]["200"].is_object());
    // The bounds the server enforces on request bodies are described.
    for (path, statuses) in
        [("/v1/attestations", &["408", "413", "415"][..]), ("/v1/attestations/batch", &["408", "413", "415", "503"])]
    {
        for status in statuses {
            let answer = &doc["paths"][path]["post"]["responses"][*status];
            assert!(answer["description"].is_string(), "{path} lists {status}: {}", doc["paths"][path]);
        }
    }
    assert!(doc["paths"]["/v1/genesis"]["get"]["responses"]["200"].is_object());
    // The regulator's listing of a member's reads declares every answer it gives, and the
    // security scheme; a whole-block read declares the 503 of a full query log.
    let queries = &doc["paths"]["/v1/members/{member}/queries"]["get"];
    for status in ["200", "400", "401", "403", "404"] {
        assert!(queries["responses"][status]["description"].is_string(), "{status}: {queries}");
    }
    assert!(queries["security"][0]["rfc9421"].is_array(), "{queries}");
    assert!(doc["paths"]["/v1/blocks/{height}/certified"]["get"]["responses"]["503"].is_object());
    assert!(doc["components"]["schemas"]["BatchSubmitResponse"].is_object());
    assert!(doc["components"]["schemas"]["AttestationView"].is_object());
    // The portfolio's series over time is described, down to a month's figures.
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["PortfolioView"]["properties"]["series"].is_object(), "{}", schemas["PortfolioView"]);
    assert!(schemas["PortfolioView"]["required"].as_array().unwrap().contains(&serde_json::json!("series")));
    for field in ["months_max", "months_omitted", "overall", "lenders"] {
        assert!(schemas["SeriesView"]["properties"][field].is_object(), "{field}: {}", schemas["SeriesView"]);
    }
    for field in ["month", "as_of", "loans", "outstanding", "bad", "bad_ratio_bp"] {
        assert!(
            schemas["MonthFiguresView"]["properties"][field].is_object(),
            "{field}: {}",
            schemas["MonthFiguresView"]
        );
    }
    n.stop().await;
}

#[tokio::test]
async fn metrics_text_contains_the_documented_names() {
    let n = start().await;
    assert_eq!(get(&n, "/v1/status").await.status, 200);
    assert_eq!(n.submit(&[1, 2, 3]).await.status, 400);
    let seq = n.next_sequence(CENTRE).await;
    assert_eq!(n.submit(&n.sign(CENTRE, seq, rd(1))).await.status, 202);
    let r = get(&n, "/metrics").await;
    assert_eq!(r.status, 200);
    assert!(r.content_type.starts_with("text/plain"), "{}", r.content_type);
    let text = r.text();
    for name in METRIC_NAMES {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing:\n{text}");
    }
    for line in [
        format!("credence_height {HEIGHT}"),
        format!("credence_tree_size {TREE_SIZE}"),
        "credence_peers 3".to_string(),
        "credence_mempool_records 1".to_string(),
        "credence_signatures_verified_total 1".to_string(),
        "credence_attestations_admitted_total 1".to_string(),
        "credence_attestations_refused_total{code=\"malformed\"} 1".to_string(),
        "credence_http_requests_total{method=\"GET\",route=\"/v1/status\",status=\"200\"} 1".to_string(),
        "credence_http_requests_total{method=\"POST\",route=\"/v1/attestations\",status=\"400\"} 1".to_string(),
        "credence_commit_latency_seconds_bucket{le=\"+Inf\"} 0".to_string(),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
    n.stop().await;
}

#[tokio::test]
async fn hostile_requests_do_not_break_the_server() {
    let n = start().await;
    // Garbage instead of HTTP, a truncated request and an invalid percent-encoding.
    for raw in
        [&b"\x00\x01\x02 garbage\r\n\r\n"[..], b"GET /v1/status HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab"]
    {
        let mut s = TcpStream::connect(n.addr).await.expect("connect");
        let _ = s.write_all(raw).await;
        let _ = s.shutdown().await;
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut sink)).await;
    }
    let r = get(&n, "/v1/attestations/%ZZ%00").await;
    assert!(r.status == 400 || r.status == 404, "{}", r.status);
    let r = get(&n, "/v1/enterprises/%E4%BD%A0%E5%A5%BD/attestations").await;
    assert_eq!((r.status, r.error().1.as_str()), (400, "uscc"));
    let r = request(n.addr, "POST", "/v1/attestations", Some("application/json"), b"[1,2,3]").await;
    assert_eq!(r.status, 400);
    let r = request(n.addr, "POST", "/v1/attestations", Some("application/json"), &[0xff, 0xfe, b'{']).await;
    assert_eq!(r.status, 400);
    // Still serving.
    assert_eq!(get(&n, "/healthz").await.status, 200);
    n.stop().await;
}

#[tokio::test]
async fn connections_are_capped_and_idle_ones_closed() {
    let config = ApiConfig { connections_max: 1, idle_timeout: Duration::from_millis(600), ..ApiConfig::default() };
    let n = start_with(config).await;
    // An idle connection takes the only slot ...
    let mut idle = TcpStream::connect(n.addr).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let addr = n.addr;
    let waiting = tokio::spawn(async move { request(addr, "GET", "/healthz", None, b"").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "a second connection waits while the slot is taken");
    // ... until it is closed for idling, and the waiting request is served.
    let r = tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("served").expect("task");
    assert_eq!(r.status, 200);
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(1), idle.read_to_end(&mut sink)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "the idle connection was closed: {closed:?}");
    n.stop().await;
}

#[tokio::test]
async fn genesis_is_the_chains() {
    let n = start().await;
    let r = get(&n, "/v1/genesis").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.content_type, "text/plain; charset=utf-8");
    assert_eq!(r.text(), n.ctx.genesis.to_toml());
    let genesis = credence_ledger::genesis::Genesis::from_toml(&r.text()).expect("a valid genesis");
    assert_eq!(genesis.hash(), n.ctx.chain_id);
    assert_eq!(get(&n, "/v1/status").await.json()["chain_id"], genesis.hash().to_hex());
    n.stop().await;
}

async fn post_batch(n: &Node, items: &[String]) -> Reply {
    post_json(n, "/v1/attestations/batch", &json!({ "attestations": items })).await
}

#[tokio::test]
async fn batch_gives_one_result_per_item_in_order() {
    let mut n = start().await;
    let seq = n.next_sequence(CENTRE).await;
    let good = n.sign(CENTRE, seq, rd(1));
    let items = vec![
        B64.encode(&good),
        // Signed with another member's key.
        B64.encode(n.sign_as("bank-icbc-sz", CENTRE, seq + 1, rd(2))),
        // The same attestation again: admitted once.
        B64.encode(&good),
        "%%% not base64".to_string(),
        B64.encode([0u8; 40]),
        // The next sequence, after the refused items: admitted in order.
        B64.encode(n.sign(CENTRE, seq + 1, rd(3))),
        // A gap: held.
        B64.encode(n.sign(CENTRE, seq + 3, rd(4))),
        // Already committed.
        B64.encode(&n.leaf(7).bytes),
    ];
    let r = post_batch(&n, &items).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let results = v["results"].as_array().expect("results");
    assert_eq!(results.len(), items.len(), "{v}");
    let outcome = |i: usize| -> (String, String) {
        let item = &results[i];
        match item["error"].as_object() {
            Some(e) => {
                assert!(e["rule"].as_str().is_some_and(|r| !r.is_empty()) && e["message"].is_string(), "{item}");
                (e["code"].as_str().expect("code").into(), e["field"].as_str().expect("field").into())
            }
            None => (item["status"].as_str().expect("status").into(), item["id"].as_str().expect("id").into()),
        }
    };
    let good_id = Leaf::from_bytes(good.clone()).expect("leaf").id.to_string();
    assert_eq!(outcome(0), ("pending".into(), good_id));
    assert_eq!(results[0]["waiting_for_sequence"], Value::Null);
    assert_eq!(outcome(1), ("R022".into(), "signature".into()));
    assert_eq!(outcome(2), ("duplicate".into(), "attestation".into()));
    assert_eq!(outcome(3), ("malformed".into(), "attestation".into()));
    assert_eq!(outcome(4), ("malformed".into(), "attestation".into()));
    assert_eq!(outcome(5).0, "pending");
    assert_eq!(outcome(6).0, "pending");
    assert_eq!(results[6]["waiting_for_sequence"], seq + 2);
    assert_eq!(outcome(7), ("R003".into(), "sequence".into()));

    // The mempool holds exactly the admitted three, and they were offered for gossip in order.
    assert_eq!(n.next_sequence(CENTRE).await, seq + 2);
    let status = get(&n, "/v1/status").await.json();
    assert_eq!((status["mempool"]["records"].as_u64(), status["mempool"]["held"].as_u64()), (Some(3), Some(1)));
    for i in [0, 5, 6] {
        let gossiped = n.gossip.recv().await.expect("gossiped");
        assert_eq!(gossiped.bytes, B64.decode(&items[i]).expect("b64"), "item {i}");
    }
    assert!(n.gossip.try_recv().is_err(), "refused items are not gossiped");

    // Same verdicts as the single route: a batch of one is the single path.
    let r = post_batch(&n, &[B64.encode(n.sign(CENTRE, seq + 2, rd(5)))]).await.json();
    assert_eq!(r["results"][0]["status"], "pending", "{r}");
    assert_eq!(n.next_sequence(CENTRE).await, seq + 4, "the held record was promoted");
    let r = post_batch(&n, &[]).await;
    assert_eq!((r.status, r.json()["results"].as_array().map(Vec::len)), (200, Some(0)));
    n.stop().await;
}

#[tokio::test]
async fn batch_bounds_name_the_field_and_rule() {
    let n = start().await;
    // 1,001 items: refused without admitting any.
    let items = vec!["AAAA".to_string(); 1001];
    let r = post_batch(&n, &items).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.error(), ("payload_too_large".into(), "attestations".into()));
    assert!(r.json()["error"]["rule"].as_str().expect("rule").contains("1000"), "{}", r.text());
    assert_eq!(get(&n, "/v1/status").await.json()["mempool"]["records"], 0);

    // 1,000 items far above the single route's 64 KiB body limit are read (this route has its own).
    let items = vec!["A".repeat(300); 1000];
    let r = post_batch(&n, &items).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let results = v["results"].as_array().expect("results");
    assert_eq!(results.len(), 1000);
    assert!(results.iter().all(|i| i["error"]["code"] == "malformed"), "{}", results[0]);

    // Over the batch body limit (4 MiB).
    let items = vec!["A".repeat(4500); 1000];
    let r = post_batch(&n, &items).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.error(), ("payload_too_large".into(), "body".into()));

    for (body, field) in [
        (json!({ "attestations": "AAAA" }), "body"),
        (json!({ "attestations": [1, 2] }), "body"),
        (json!({ "attestations": [], "more": 1 }), "body"),
        (json!({}), "body"),
    ] {
        let r = post_json(&n, "/v1/attestations/batch", &body).await;
        assert_eq!((r.status, r.error().1.as_str()), (400, field), "{body}: {}", r.text());
    }
    let r = request(n.addr, "POST", "/v1/attestations/batch", None, b"{}").await;
    assert_eq!(r.status, 415);
    n.stop().await;
}

#[tokio::test]
async fn batch_verdicts_equal_single_verdicts() {
    let n = start().await;
    let verifier = credence_node::mempool::Verifier::new(n.ctx.clone(), credence_node::mempool::InForce::new(&n.ctx));
    let mut tampered = n.sign(CENTRE, 50, rd(9));
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let items: Vec<Vec<u8>> = vec![
        n.sign(CENTRE, 50, rd(1)),
        n.sign_as("bank-icbc-sz", CENTRE, 51, rd(2)),
        tampered,
        vec![0u8; 40],
        n.sign_as(CENTRE, "centre-nobody", 1, rd(3)),
        n.sign("bank-icbc-sz", 9, rd(4)),
    ];
    let batch = verifier.verify_batch(items.clone());
    assert_eq!(batch.len(), items.len());
    for (i, (b, bytes)) in batch.iter().zip(items).enumerate() {
        let single = verifier.verify(bytes);
        match (b, &single) {
            (Ok(b), Ok(s)) => assert_eq!(b.id(), s.id(), "item {i}"),
            (Err(b), Err(s)) => assert_eq!(b, s, "item {i}"),
            _ => panic!("item {i}: batch {b:?} vs single {single:?}"),
        }
    }
    assert_eq!(batch.iter().filter(|r| r.is_ok()).count(), 2);
    n.stop().await;
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_naming_the_rule_and_others_are_served() {
    let rate = api::RateLimit { per_second: 2, burst: 3 };
    let n = start_with(ApiConfig { rate, ..ApiConfig::default() }).await;
    for _ in 0..3 {
        assert_eq!(get(&n, "/v1/status").await.status, 200);
    }
    let r = get(&n, "/v1/status").await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.error(), ("rate_limited".to_string(), "client".to_string()));
    let rule = r.json()["error"]["rule"].as_str().unwrap_or_default().to_string();
    assert!(
        rule.contains("2 requests per second") && rule.contains("bursts of 3") && rule.contains("127.0.0.1"),
        "{rule}"
    );
    assert_eq!(r.retry_after.as_deref(), Some("1"));
    // A refused POST is refused before its body is read or admitted.
    let r = request(n.addr, "POST", "/v1/attestations", Some("application/json"), b"{}").await;
    assert_eq!(r.status, 429);
    // Health and metrics stay reachable for the limited client.
    assert_eq!(get(&n, "/healthz").await.status, 200);
    let metrics = get(&n, "/metrics").await.text();
    assert!(metrics.contains("status=\"429\""), "429s are counted: {metrics}");
    // The bucket refills at the stated rate.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(get(&n, "/v1/status").await.status, 200);
    n.stop().await;
}

#[tokio::test]
async fn slow_headers_are_cut_off_by_the_header_read_timeout() {
    let config = ApiConfig { header_read_timeout: Duration::from_millis(400), ..ApiConfig::default() };
    let n = start_with(config).await;
    let mut slow = TcpStream::connect(n.addr).await.expect("connect");
    slow.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n").await.expect("write");
    // Trickle a header byte every 100 ms: enough to defeat the 30 s idle timeout, not this one.
    let started = std::time::Instant::now();
    let mut closed = false;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if slow.write_all(b"X").await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(1), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) => {
                closed = true;
                break;
            }
            Err(_) => {}
        }
    }
    assert!(closed, "a client that never finishes its headers is disconnected");
    assert!(started.elapsed() < Duration::from_secs(2), "within the timeout: {:?}", started.elapsed());
    assert_eq!(get(&n, "/healthz").await.status, 200);
    // An oversized head is refused with 431 (the read buffer is the bound).
    let big =
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n", "a".repeat(64 * 1024));
    let mut s = TcpStream::connect(n.addr).await.expect("connect");
    let _ = s.write_all(big.as_bytes()).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut raw)).await;
    let head = String::from_utf8_lossy(&raw);
    assert!(head.is_empty() || head.starts_with("HTTP/1.1 431"), "{head}");
    n.stop().await;
}

#[tokio::test]
async fn connections_per_client_are_capped_with_a_429() {
    let config = ApiConfig { connections_per_client_max: 2, ..ApiConfig::default() };
    let n = start_with(config).await;
    let _a = TcpStream::connect(n.addr).await.expect("connect");
    let _b = TcpStream::connect(n.addr).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(n.addr).await.expect("connect");
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), third.read_to_end(&mut raw)).await;
    let r = parse_reply(&raw);
    assert_eq!(r.status, 429);
    assert_eq!(r.error(), ("too_many_connections".to_string(), "client".to_string()));
    drop((_a, _b));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(get(&n, "/healthz").await.status, 200, "slots are given back");
    n.stop().await;
}

/// A client that sends a POST's head (stating a body of 10,000 bytes) and then its body one
/// byte every `every`, until the server answers or closes: the answer (if any) and when it came.
async fn trickle(addr: SocketAddr, path: &str, every: Duration) -> (Option<Reply>, Duration) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("write");
    let started = Instant::now();
    let mut raw = Vec::new();
    while started.elapsed() < Duration::from_secs(20) {
        if s.write_all(b"{").await.is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(every, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                raw.extend_from_slice(&buf[..n]);
                let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut raw)).await;
                break;
            }
            Err(_) => {}
        }
    }
    let took = started.elapsed();
    ((!raw.is_empty()).then(|| parse_reply(&raw)), took)
}

#[tokio::test]
async fn slow_batch_bodies_do_not_hold_batch_slots() {
    let config = ApiConfig {
        body_read_timeout: Duration::from_millis(800),
        request_timeout: Duration::from_secs(5),
        ..ApiConfig::default()
    };
    let n = start_with(config).await;
    // More slow bodies than batch slots, each sending a byte every 50 ms.
    let slow: Vec<_> = (0..api::BATCHES_MAX_DEFAULT + 2)
        .map(|_| tokio::spawn(trickle(n.addr, "/v1/attestations/batch", Duration::from_millis(50))))
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seq = n.next_sequence(CENTRE).await;
    let items = vec![B64.encode(n.sign(CENTRE, seq, rd(1))), B64.encode(n.sign(CENTRE, seq + 1, rd(2)))];
    let started = Instant::now();
    let r = post_batch(&n, &items).await;
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["results"].as_array().expect("results").iter().all(|i| i["status"] == "pending"), "{}", r.text());
    assert!(took < Duration::from_millis(500), "a normal batch waited {took:?} behind slow bodies");
    for t in slow {
        let (reply, after) = t.await.expect("task");
        let reply = reply.expect("the slow body is answered");
        assert_eq!(reply.status, 408, "{}", reply.text());
        assert_eq!(reply.error(), ("timeout".into(), "body".into()));
        assert!(reply.json()["error"]["rule"].as_str().expect("rule").contains("800 ms"), "{}", reply.text());
        assert!(reply.close, "a 408 ends the connection");
        assert!(after >= Duration::from_millis(700) && after < Duration::from_secs(3), "answered after {after:?}");
    }
    // The single route's body has the same deadline.
    let (reply, _) = trickle(n.addr, "/v1/attestations", Duration::from_millis(50)).await;
    let reply = reply.expect("answered");
    assert_eq!((reply.status, reply.error()), (408, ("timeout".into(), "body".into())));
    n.stop().await;
}

#[tokio::test]
async fn an_oversized_body_is_413_before_it_is_read() {
    let n = start().await;
    for (path, limit) in [
        ("/v1/attestations/batch", api::BATCH_BODY_BYTES_MAX_DEFAULT),
        ("/v1/attestations", api::BODY_BYTES_MAX_DEFAULT),
    ] {
        // Only the head is sent: the answer cannot wait for the body.
        let mut s = TcpStream::connect(n.addr).await.expect("connect");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            limit + 1
        );
        s.write_all(head.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut raw)).await;
        assert!(read.is_ok(), "{path}: answered and closed without waiting for the body");
        let r = parse_reply(&raw);
        assert_eq!(r.status, 413, "{path}: {}", r.text());
        assert_eq!(r.error(), ("payload_too_large".into(), "body".into()));
        assert!(r.json()["error"]["rule"].as_str().expect("rule").contains(&limit.to_string()), "{}", r.text());
        assert!(r.close, "{path}: a 413 ends the connection");
    }
    // A chunked body (no length stated) is cut off where it crosses the limit.
    let mut s = TcpStream::connect(n.addr).await.expect("connect");
    s.write_all(b"POST /v1/attestations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .expect("write");
    let chunk = format!("{:x}\r\n{}\r\n", 40 * 1024, "A".repeat(40 * 1024));
    let _ = s.write_all(chunk.as_bytes()).await;
    let _ = s.write_all(chunk.as_bytes()).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut raw)).await;
    let r = parse_reply(&raw);
    assert_eq!((r.status, r.error()), (413, ("payload_too_large".into(), "body".into())), "{}", r.text());
    assert_eq!(get(&n, "/healthz").await.status, 200);
    n.stop().await;
}

#[tokio::test]
async fn batch_bodies_in_memory_are_bounded_with_503() {
    let config = ApiConfig {
        batch_bodies_max: 2,
        body_read_timeout: Duration::from_millis(800),
        request_timeout: Duration::from_secs(5),
        ..ApiConfig::default()
    };
    let n = start_with(config).await;
    let slow: Vec<_> =
        (0..2).map(|_| tokio::spawn(trickle(n.addr, "/v1/attestations/batch", Duration::from_millis(50)))).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Both body permits are held: refused at once, without reading, with a time to retry.
    let started = Instant::now();
    let r = post_batch(&n, &[]).await;
    assert!(started.elapsed() < Duration::from_millis(500), "{:?}", started.elapsed());
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.error(), ("busy".into(), "batch".into()));
    assert_eq!(r.retry_after.as_deref(), Some("1"));
    // The single route does not use batch permits.
    assert_eq!(n.submit(&[1, 2, 3]).await.status, 400);
    for t in slow {
        assert_eq!(t.await.expect("task").0.map(|r| r.status), Some(408));
    }
    // The permits came back with the slow bodies' answers.
    let r = post_batch(&n, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    n.stop().await;
}

/// A tile recomputed from the leaves alone: hash `i` is the RFC 6962 MTH of its `256^L` leaves.
fn tile_from_leaves(tile: &Tile, leaf_hashes: &[NodeHash]) -> Vec<u8> {
    fn mth(l: &[NodeHash]) -> NodeHash {
        if l.len() == 1 {
            return l[0];
        }
        let k = 1usize << (usize::BITS - (l.len() - 1).leading_zeros() - 1);
        merkle::node_hash(&mth(&l[..k]), &mth(&l[k..]))
    }
    let span = 1usize << tile.tree_level();
    let first = usize::try_from(tile.first()).expect("small");
    (0..usize::from(tile.width)).flat_map(|i| mth(&leaf_hashes[(first + i) * span..(first + i + 1) * span])).collect()
}

#[tokio::test]
async fn tiles_after_each_block_equal_those_recomputed_from_the_leaves() {
    let mut n = start().await;
    for per_block in [0usize, 100, 1, 300] {
        if per_block > 0 {
            let vb = n.builder.next_block(per_block).expect("block");
            n.store.write().expect("lock").commit(&vb).expect("commit");
        }
        let (size, note) = {
            let s = n.store.read().expect("lock");
            let head = s.head().expect("head").expect("a block");
            (head.tree_size, s.certificate(head.height).expect("cert").expect("cert").to_note())
        };
        let cp = get(&n, "/checkpoint").await;
        assert_eq!((cp.status, cp.content_type.as_str()), (200, "text/plain; charset=utf-8"));
        assert_eq!(cp.text(), note);
        assert_eq!(cp.cache_control, "public, max-age=2");
        let leaves: Vec<Leaf> = (0..size).map(|i| n.leaf(i)).collect();
        let hashes: Vec<NodeHash> = leaves.iter().map(Leaf::leaf_hash).collect();
        for tile in tiles::tiles_of(size, true) {
            // Hash tiles are public; entry bundles hold facts in clear, so only a key with
            // the regulator scope reads them (unsigned: 401; the officer's key: 403).
            let reader = match tile.kind {
                TileKind::Hashes { .. } => None,
                TileKind::Entries => {
                    let path = format!("/{}", tile.path());
                    assert_eq!(get_as(&n, None, &path).await.status, 401, "{path}");
                    let r = get(&n, &path).await;
                    assert_eq!((r.status, r.error().1.as_str()), (403, "scope"), "{path}");
                    Some(&n.access.regulator)
                }
            };
            let r = get_as(&n, reader, &format!("/{}", tile.path())).await;
            assert_eq!(r.status, 200, "{}: {}", tile.path(), String::from_utf8_lossy(&r.body));
            assert_eq!(r.content_type, "application/octet-stream");
            let cache = if reader.is_some() { "private" } else { "public" };
            assert_eq!(r.cache_control, format!("{cache}, max-age=31536000, immutable"), "{}", tile.path());
            match tile.kind {
                TileKind::Hashes { .. } => assert_eq!(r.body, tile_from_leaves(&tile, &hashes), "{}", tile.path()),
                TileKind::Entries => {
                    let first = usize::try_from(tile.first()).expect("small");
                    let entries = tiles::parse_entry_bundle(&tile, &r.body).expect("bundle");
                    for (i, e) in entries.iter().enumerate() {
                        assert_eq!(*e, leaves[first + i].bytes.as_slice());
                    }
                }
            }
        }
        // The next partial width is not there yet; nor is a tile past the tree.
        let next = Tile::in_tree(TileKind::Hashes { level: 0 }, size / 256, size + 1).expect("tile");
        let r = get(&n, &format!("/{}", next.path())).await;
        assert_eq!((r.status, r.error().1.as_str()), (404, "path"), "{}", next.path());
        let r = get_as(&n, Some(&n.access.regulator), &format!("/{}", Tile { kind: TileKind::Entries, ..next }.path()))
            .await;
        assert_eq!(r.status, 404);
    }
    for bad in ["/tile/0/1", "/tile/0/x000/001", "/tile/64/000", "/tile/0/000.p/0", "/tile/0/000.p/256", "/tile/x/000"]
    {
        let r = get(&n, bad).await;
        assert_eq!((r.status, r.error().1.as_str()), (404, "path"), "{bad}");
    }
    n.stop().await;
}

/// Cloudflare's `tlog_tiles` (a port of Go's sumdb tlog) reads tiles from a map of the
/// node's answers by C2SP path: its own sumdb path (`tile/8/L/N[.p/W]`) less the height.
struct ThirdPartyReader<'a>(&'a std::collections::HashMap<String, Vec<u8>>);

impl tlog_tiles::TileReader for ThirdPartyReader<'_> {
    fn height(&self) -> u8 {
        8
    }
    fn read_tiles(&self, tiles: &[tlog_tiles::Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        tiles
            .iter()
            .map(|t| {
                let path = t.path().replacen("tile/8/", "tile/", 1);
                self.0.get(&path).cloned().ok_or(tlog_tiles::Error::InvalidTile)
            })
            .collect()
    }
    fn save_tiles(&self, _: &[tlog_tiles::Tile], _: &[Vec<u8>]) {}
}

#[tokio::test]
async fn third_party_code_reads_the_tiles_and_checkpoints_and_checks_proofs() {
    use signed_note::{Note, StandardVerifier, Verifier as _, VerifierList};
    let mut n = start().await;
    // Cross the first full level-0 tile.
    let vb = n.builder.next_block(200).expect("block");
    n.store.write().expect("lock").commit(&vb).expect("commit");
    let note = get(&n, "/checkpoint").await.body;

    // The validators' signatures, by signed_note with the genesis verifier keys.
    let vkeys: Vec<String> = n.ctx.genesis.verifier_keys().iter().map(|k| k.to_vkey_string()).collect();
    let verifiers: Vec<Box<dyn signed_note::Verifier>> = vkeys
        .iter()
        .map(|k| Box::new(StandardVerifier::new(k).expect("vkey")) as Box<dyn signed_note::Verifier>)
        .collect();
    let parsed = Note::from_bytes(&note).expect("a signed note");
    let (verified, unverified) = parsed.verify(&VerifierList::new(verifiers)).expect("verifies");
    assert!(3 * verified.len() > 2 * vkeys.len(), "a quorum verified: {} of {}", verified.len(), vkeys.len());
    assert!(unverified.is_empty());
    let mut forged = note.clone();
    let i = forged.iter().position(|b| *b == b'\n').expect("line") + 1;
    forged[i] = if forged[i] == b'9' { b'8' } else { b'9' };
    let vs: Vec<Box<dyn signed_note::Verifier>> = vkeys
        .iter()
        .map(|k| Box::new(StandardVerifier::new(k).expect("vkey")) as Box<dyn signed_note::Verifier>)
        .collect();
    assert!(Note::from_bytes(&forged).expect("parses").verify(&VerifierList::new(vs)).is_err());
    let verifier = StandardVerifier::new(&vkeys[0]).expect("vkey");
    assert_eq!(verifier.name(), n.ctx.genesis.verifier_keys()[0].name);

    // The checkpoint, by tlog_tiles (with our extension line).
    let cp = tlog_tiles::Checkpoint::from_bytes(parsed.text()).expect("a C2SP checkpoint");
    assert_eq!(cp.origin(), n.ctx.genesis.checkpoint_origin);
    let (size, root) = (cp.size(), *cp.hash());
    assert!(size > 256, "{size}");
    assert!(cp.extension().starts_with("credence height="), "{}", cp.extension());

    // Every tile, fetched over HTTP (entry bundles by the regulator); tlog_tiles asks for
    // them by its own coordinates.
    let mut served = std::collections::HashMap::new();
    for t in tiles::tiles_of(size, true) {
        let r = get_as(&n, Some(&n.access.regulator), &format!("/{}", t.path())).await;
        assert_eq!(r.status, 200, "{}", t.path());
        served.insert(t.path(), r.body);
    }
    let reader = ThirdPartyReader(&served);
    let hashes = tlog_tiles::TileHashReader::new(size, root, &reader);
    assert_eq!(tlog_tiles::tree_hash(size, &hashes).expect("root from tiles"), root);
    // Entry bundles: the third party hashes each entry (RFC 6962) and checks its inclusion.
    let bundle = &served["tile/entries/000"];
    let mut entries = Vec::new();
    let mut rest = &bundle[..];
    while !rest.is_empty() {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        entries.push(&rest[2..2 + len]);
        rest = &rest[2 + len..];
    }
    assert_eq!(entries.len(), 256);
    for index in [0u64, 1, 100, 255] {
        let proof = tlog_tiles::prove_record(size, index, &hashes).expect("inclusion proof from tiles");
        let leaf = tlog_tiles::record_hash(entries[index as usize]);
        tlog_tiles::check_record(&proof, size, root, index, leaf).expect("inclusion verifies");
        // The same proof as the node's own proof code gives.
        let ours =
            merkle::inclusion_proof(index, size, &credence_node::api::StoreView(&*n.store.read().expect("lock")))
                .expect("ours");
        assert_eq!(proof.iter().map(|h| h.0).collect::<Vec<_>>(), ours);
        assert!(tlog_tiles::check_record(&proof, size, root, index, tlog_tiles::record_hash(b"forged")).is_err());
    }
    // Consistency with an earlier checkpoint of the chain.
    let old =
        Checkpoint::parse_note(&n.store.read().expect("lock").certificate(2).expect("cert").expect("cert").to_note())
            .expect("old");
    let proof = tlog_tiles::prove_tree(size, old.body.tree_size, &hashes).expect("consistency proof from tiles");
    tlog_tiles::check_tree(&proof, size, root, old.body.tree_size, tlog_tiles::Hash(old.body.root))
        .expect("consistency verifies");
    assert!(tlog_tiles::check_tree(&proof, size, root, old.body.tree_size, tlog_tiles::Hash([1; 32])).is_err());
    // Paths: each of ours parses in tlog_tiles' syntax once its height is put back.
    for path in served.keys() {
        let sumdb = path.replacen("tile/", "tile/8/", 1).replacen("/entries/", "/data/", 1);
        let t = tlog_tiles::Tile::from_path(&sumdb).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(t.path(), sumdb);
    }
    n.stop().await;
}

/// The 401 of an access refusal: its field, and the rule contains `says`.
fn refused_401(r: &Reply, field: &str, says: &str) {
    assert_eq!(r.status, 401, "{}", r.text());
    let v = r.json();
    assert_eq!((v["error"]["code"].as_str(), v["error"]["field"].as_str()), (Some("unauthorized"), Some(field)), "{v}");
    let rule = v["error"]["rule"].as_str().expect("rule");
    assert!(rule.contains(says), "'{says}' not in: {rule}");
}

#[tokio::test]
async fn reads_above_public_are_refused_with_401_naming_the_reason() {
    let n = start().await;
    let path = format!("/v1/enterprises/{}/attestations", n.access.enterprise);
    // Public routes need no signature.
    assert_eq!(get_as(&n, None, "/v1/status").await.status, 200);
    assert_eq!(get_as(&n, None, "/v1/blocks/1").await.status, 200);
    // Unsigned.
    refused_401(&get_as(&n, None, &path).await, "signature", "not signed");
    // A signature over another request (another query) does not verify for this one.
    let other = signature_fields(&n.access.officer, "GET", &format!("{path}?limit=1"), b"");
    let r = request_with(n.addr, &other, "GET", &path, None, b"").await;
    refused_401(&r, "signature", "does not verify");
    // Replay: the same signed request twice.
    let fields = signature_fields(&n.access.officer, "GET", &path, b"");
    assert_eq!(request_with(n.addr, &fields, "GET", &path, None, b"").await.status, 200);
    refused_401(&request_with(n.addr, &fields, "GET", &path, None, b"").await, "signature", "replay");
    // Expired and revoked keys, and a keyid that is no grant.
    refused_401(&get_as(&n, Some(&n.access.expired), &path).await, "keyid", "expired");
    refused_401(&get_as(&n, Some(&n.access.revoked), &path).await, "keyid", "revoked");
    let stranger = (n.access.consent, SecretKey::from_seed([30; 32]));
    refused_401(&get_as(&n, Some(&stranger), &path).await, "keyid", "not an access-key grant");
    let unknown = (AttestationId::from_hash(Hash([5; 32])), SecretKey::from_seed([30; 32]));
    refused_401(&get_as(&n, Some(&unknown), &path).await, "keyid", "no access-key grant");
    // The right key id with another key's signature.
    let forged = (n.access.officer.0, SecretKey::from_seed([31; 32]));
    refused_401(&get_as(&n, Some(&forged), &path).await, "signature", "does not verify");
    // Every 401 says what to sign (RFC 9421 §5.1).
    let raw = {
        let mut s = TcpStream::connect(n.addr).await.expect("connect");
        let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(head.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw).await;
        String::from_utf8_lossy(&raw).to_ascii_lowercase()
    };
    assert!(raw.contains("accept-signature: sig1=(\"@method\" \"@path\" \"@query\")"), "{raw}");
    n.stop().await;
}

/// Query records the node logged (offered to gossip), waiting up to 5 s for `count`.
async fn logged_queries(n: &mut Node, count: usize) -> Vec<credence_ledger::access::QueryRecord> {
    let mut out = Vec::new();
    while out.len() < count {
        let leaf = tokio::time::timeout(Duration::from_secs(5), n.gossip.recv()).await.expect("logged").expect("leaf");
        assert_eq!(leaf.attestation.body.attester.as_str(), "bank-icbc-sz", "signed by the serving node's member");
        match leaf.attestation.body.claim {
            Claim::Query(q) => out.push(q),
            other => panic!("not a query record: {other:?}"),
        }
    }
    out
}

#[tokio::test]
async fn restricted_reads_need_a_live_consent_and_each_is_logged() {
    let mut n = start().await;
    let e = n.access.enterprise;
    let path = format!("/v1/enterprises/{e}/attestations");
    // The member scope: metadata, with the enterprise's facts withheld (never a zero amount).
    let v = get(&n, &path).await.json();
    let items = v["items"].as_array().expect("items");
    assert!(items.len() >= 2);
    for i in items {
        if i["claim"]["kind"] == "withheld" {
            assert!(i["attestation"].is_null() && i["claim"].get("amount").is_none(), "{i}");
        }
    }
    assert!(items.iter().any(|i| i["claim"]["kind"] == "withheld"), "{v}");
    // Under the consent: every fact, whose bytes hash to the record's id.
    let r = get(&n, &format!("{path}?purpose=loan-application")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let items = v["items"].as_array().expect("items");
    assert!(items.iter().all(|i| i["claim"]["kind"] != "withheld"), "{v}");
    for i in items {
        let bytes = B64.decode(i["attestation"].as_str().expect("bytes")).expect("b64");
        assert_eq!(Leaf::from_bytes(bytes).expect("leaf").id.to_string(), i["id"].as_str().expect("id"));
    }
    // One read, one query record: reader, key, enterprise, purpose and consent.
    let q = logged_queries(&mut n, 1).await;
    assert_eq!(q[0].reader.as_str(), "bank-icbc-sz");
    assert_eq!((q[0].access_key, q[0].enterprise, q[0].consent), (n.access.officer.0, e, Some(n.access.consent)));
    assert_eq!(q[0].purpose, Purpose::LoanApplication);
    // Another purpose, or another enterprise: 403 naming what is missing, and nothing logged.
    let r = get(&n, &format!("{path}?purpose=post-loan-monitoring")).await;
    assert_eq!((r.status, r.error().1.as_str()), (403, "consent"), "{}", r.text());
    let rule = r.json()["error"]["rule"].as_str().expect("rule").to_string();
    assert!(rule.contains(&e.to_string()) && rule.contains("post-loan-monitoring") && rule.contains("bank-icbc-sz"));
    let other = demo::REAL_USCCS.iter().find(|u| **u != e.to_string()).expect("another");
    let r = get(&n, &format!("/v1/enterprises/{other}/attestations?purpose=loan-application")).await;
    assert_eq!((r.status, r.error().1.as_str()), (403, "consent"), "{}", r.text());
    // A key without the restricted scope; supervision is for regulators.
    let r = get(&n, &format!("{path}?purpose=supervision")).await;
    assert_eq!((r.status, r.error().1.as_str()), (403, "purpose"), "{}", r.text());
    // One record by id under the consent, and the regulator without one (logged with no consent).
    let id = items[0]["id"].as_str().expect("id");
    let r = get(&n, &format!("/v1/attestations/{id}?purpose=loan-application")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["attestation"].is_string());
    let r = get_as(&n, Some(&n.access.regulator), &format!("{path}?purpose=supervision")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["items"].as_array().expect("items").iter().all(|i| i["claim"]["kind"] != "withheld"));
    let q = logged_queries(&mut n, 2).await;
    assert_eq!((q[0].access_key, q[0].consent), (n.access.officer.0, Some(n.access.consent)));
    assert_eq!((q[1].access_key, q[1].consent, q[1].reader.as_str()), (n.access.regulator.0, None, demo::REGULATOR));
    assert_eq!(q[1].purpose, Purpose::Supervision);
    // Nothing else was logged.
    assert!(tokio::time::timeout(Duration::from_millis(300), n.gossip.recv()).await.is_err());
    n.stop().await;
}
