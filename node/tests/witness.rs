//! The witness server over HTTP: cosignatures per C2SP tlog-cosignature, its state persisted across restarts, and every forked history refused with the tlog-witness status codes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use credence_ledger::checkpoint::Checkpoint;
use credence_ledger::demo::{ChainBuilder, EXAMPLE_GENESIS_TIME_MS};
use credence_ledger::merkle;
use credence_ledger::sig::SecretKey;
use credence_ledger::store::{MemStore, Store};
use credence_ledger::witness::{AddCheckpoint, parse_witnessed_note, verified_witnesses};
use credence_node::witness::{self, Witness};

/// A loopback listener below the ephemeral range (offsets 600..1,000 of this process's region,
/// as `tests/api.rs`).
async fn bind_loopback() -> TcpListener {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let region = 10_000 + (std::process::id() % 13) as u16 * 1_600;
    for _ in 0..400 {
        let port = region + 600 + NEXT.fetch_add(1, Ordering::Relaxed) % 400;
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)).await {
            return l;
        }
    }
    panic!("no free port");
}

/// POST /add-checkpoint: (status, content type, body).
async fn post(addr: SocketAddr, body: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /add-checkpoint HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.expect("write");
    s.write_all(body.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8(raw).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("head");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status");
    let ct = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type:").map(|v| v.trim().to_string()))
        .unwrap_or_default();
    (status, ct, body.to_string())
}

async fn start(w: Arc<Witness>) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = bind_loopback().await;
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(witness::serve(listener, w, async move {
        let _ = rx.await;
    }));
    (addr, tx)
}

#[tokio::test]
async fn a_witness_cosigns_one_history_persists_it_and_refuses_forks() {
    let mut b = ChainBuilder::new(5, EXAMPLE_GENESIS_TIME_MS).expect("chain");
    let mut store = MemStore::new(b.genesis());
    for _ in 0..3 {
        store.commit(&b.next_block(7).expect("block")).expect("commit");
    }
    let genesis = b.genesis().clone();
    let cert = |h: u64| store.certificate(h).expect("store").expect("cert");
    let req = |old: u64, h: u64| {
        let n = cert(h).body.tree_size;
        let proof =
            if old == 0 || old == n { vec![] } else { merkle::consistency_proof(old, n, &store).expect("proof") };
        AddCheckpoint { old_size: old, proof, note: cert(h).to_note() }.to_body()
    };
    let dir = tempfile::tempdir().expect("dir");

    let w = Arc::new(
        Witness::new("witness.example/w1", SecretKey::from_seed([42; 32]), std::slice::from_ref(&genesis), dir.path())
            .expect("witness"),
    );
    let wk = w.key().clone();
    let (addr, stop) = start(w).await;

    let (status, _, body) = post(addr, &req(0, 1)).await;
    assert_eq!(status, 200, "{body}");
    // The answer is one cosignature line on the submitted checkpoint.
    let (cp, cosigs) = parse_witnessed_note(&format!("{}{body}", cert(1).to_note())).expect("note");
    assert_eq!(verified_witnesses(&cp.body, &cosigs, std::slice::from_ref(&wk)).expect("valid"), vec![wk.name.clone()]);
    let s1 = cert(1).body.tree_size;
    assert_eq!(post(addr, &req(s1, 3)).await.0, 200);
    let s3 = cert(3).body.tree_size;

    // A stale old size: 409 with the latest size, as text/x.tlog.size.
    let (status, ct, body) = post(addr, &req(s1, 2)).await;
    assert_eq!((status, ct.as_str(), body.as_str()), (409, "text/x.tlog.size", format!("{s3}\n").as_str()));
    // A bad proof: 422. Old size above the checkpoint's: 400. Garbage: 400.
    let mut bad = AddCheckpoint::parse(req(s1, 3).as_bytes()).expect("parse");
    bad.old_size = s3;
    bad.proof = vec![[1; 32]];
    assert_eq!(post(addr, &bad.to_body()).await.0, 422);
    let over = AddCheckpoint { old_size: s3 + 1, proof: vec![], note: cert(3).to_note() };
    assert_eq!(post(addr, &over.to_body()).await.0, 400);
    assert_eq!(post(addr, "hello").await.0, 400);
    // Not signed by a quorum of the validators: 403.
    let mut under: Checkpoint = cert(3);
    under.signatures.truncate(1);
    let r = AddCheckpoint { old_size: s3, proof: vec![], note: under.to_note() };
    assert_eq!(post(addr, &r.to_body()).await.0, 403);
    let _ = stop.send(());

    // Restarted on the same state: it still knows the latest size; another chain's origin is 404.
    let w = Arc::new(
        Witness::new("witness.example/w1", SecretKey::from_seed([42; 32]), std::slice::from_ref(&genesis), dir.path())
            .expect("witness"),
    );
    let (addr, stop) = start(w).await;
    let (status, _, body) = post(addr, &req(0, 3)).await;
    assert_eq!((status, body), (409, format!("{s3}\n")));
    assert_eq!(post(addr, &req(s3, 3)).await.0, 200);
    let other = ChainBuilder::new(6, EXAMPLE_GENESIS_TIME_MS).expect("chain");
    let mut other_genesis = other.genesis().clone();
    other_genesis.checkpoint_origin = "other.example/log".into();
    let mut foreign = cert(3);
    foreign.body.origin = other_genesis.checkpoint_origin.clone();
    let r = AddCheckpoint { old_size: 0, proof: vec![], note: foreign.to_note() };
    assert_eq!(post(addr, &r.to_body()).await.0, 404);
    let _ = stop.send(());
}
