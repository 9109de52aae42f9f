//! End-to-end: a real `credence node` under hostile HTTP clients — oversized bodies, malformed JSON, wrong types, huge `limit`s, a slow-header client, slow batch bodies and a request flood — answers each with a clear 4xx/429 naming the rule, keeps its memory bounded, stays healthy and keeps committing blocks.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::net::{Testnet, get_as, wait_until};
use common::{credence, json};

/// Requests per second one client may make in this test's node config (`[api]`).
const RATE: u32 = 20;
/// Burst of this test's node config.
const BURST: u32 = 40;

struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    /// `(code, field, rule)` of an error body.
    fn error(&self) -> (String, String, String) {
        let v = self.json();
        let e = &v["error"];
        let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
        (s("code"), s("field"), s("rule"))
    }
}

/// One request on a fresh connection (`Connection: close`), `None` if the connection failed.
fn send(addr: &str, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> Option<Reply> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(15))).ok()?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    if method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).ok()?;
    // The server may answer (413, 429) before reading the body and close: ignore a reset.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some(Reply { status, head: head.to_string(), body: body.to_string() })
}

fn get(addr: &str, path: &str) -> Option<Reply> {
    send(addr, "GET", path, None, b"")
}

fn height(addr: &str) -> u64 {
    get(addr, "/v1/status").filter(|r| r.status == 200).and_then(|r| r.json()["height"].as_u64()).unwrap_or(0)
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The tests of this file measure latencies and memory: they run one at a time, so one's
/// flood does not slow the other's measured request on a 2-core machine.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn a_node_under_hostile_clients_refuses_clearly_and_keeps_committing() {
    let _serial = serial();
    let net = Testnet::new(11, 1, 0);
    let config = net.config(0);
    // A low per-client rate, so the flood below crosses it quickly.
    let text = std::fs::read_to_string(&config).unwrap();
    let limited = text
        .replace("rate_per_second = 10000", &format!("rate_per_second = {RATE}"))
        .replace("rate_burst = 20000", &format!("rate_burst = {BURST}"));
    assert_ne!(limited, text, "the generated node.toml states the [api] defaults: {text}");
    std::fs::write(&config, limited).unwrap();
    let api_url = net.api(0);
    let addr = api_url.strip_prefix("http://").unwrap().to_string();
    let node = net.start(0);
    let pid = node.pid();
    wait_until("the node to commit blocks", Duration::from_secs(60), || height(&addr) >= 2);
    // Spend the requests below slowly enough to stay under the rate.
    let pace = || std::thread::sleep(Duration::from_millis(1000 / u64::from(RATE) + 5));

    // Oversized body: 413 before the handler reads it.
    let big = format!("{{\"attestation\": \"{}\"}}", "A".repeat(200 * 1024));
    let r = send(&addr, "POST", "/v1/attestations", Some("application/json"), big.as_bytes()).expect("answer");
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.error().0, "payload_too_large");
    pace();
    // Malformed JSON, wrong types, unknown fields, wrong content type: 400/415 naming the body.
    for (body, ct, status) in [
        (&b"{\"attestation\": "[..], "application/json", 400),
        (b"{\"attestation\": 5}", "application/json", 400),
        (b"[1, 2, 3]", "application/json", 400),
        (b"\xff\xfe{", "application/json", 400),
        (b"{\"attestation\": \"AAAA\"}", "text/plain", 415),
    ] {
        let r = send(&addr, "POST", "/v1/attestations", Some(ct), body).expect("answer");
        assert_eq!(r.status, status, "{:?}: {}", String::from_utf8_lossy(body), r.body);
        let (code, field, rule) = r.error();
        assert!(!code.is_empty() && !rule.is_empty(), "{}", r.body);
        assert!(field == "body" || field == "content-type" || field == "attestation", "{}", r.body);
        pace();
    }
    // Listings need a signed request (docs/ACCESS.md): unsigned, 401 naming the signature.
    let listing = "/v1/enterprises/914403001922038216/attestations";
    let r = get(&addr, listing).expect("answer");
    assert_eq!((r.status, r.error().1.as_str()), (401, "signature"), "{}", r.body);
    assert!(r.head.to_ascii_lowercase().contains("accept-signature:"), "{}", r.head);
    pace();
    // Huge and malformed `limit`s, signed: refused, not clamped.
    let reader = net.access_key(0, 0, "hostile-reader", "member");
    for limit in ["100000000000", "1001", "-1", "1e9"] {
        let (status, v) = get_as(&api_url, Some(&reader), &format!("{listing}?limit={limit}")).expect("answer");
        assert_eq!((status, v["error"]["field"].as_str()), (400, Some("limit")), "{limit}: {v}");
        pace();
    }

    // A slow client: headers trickled one byte per second are cut off by the header-read
    // timeout (5 s), far below the idle timeout (30 s).
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    let mut cut = false;
    slow.set_read_timeout(Some(Duration::from_millis(900))).unwrap();
    while started.elapsed() < Duration::from_secs(15) {
        if slow.write_all(b"X").is_err() {
            cut = true;
            break;
        }
        let mut buf = [0u8; 256];
        match slow.read(&mut buf) {
            Ok(_) => {
                cut = true;
                break;
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    let took = started.elapsed();
    assert!(cut && took < Duration::from_secs(10), "the slow client was cut off after {took:?}");

    // A flood: 8 clients' worth of connections from one address for 3 s. The node answers
    // 429 naming the rule beyond the stated rate, its memory stays bounded, and it keeps
    // committing meanwhile.
    let rss_before = rss_kib(pid);
    let height_before = height(&addr);
    let ok = Arc::new(AtomicU64::new(0));
    let limited = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    let flood_started = Instant::now();
    let flood = Duration::from_secs(3);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (addr, ok, limited, other) = (addr.clone(), ok.clone(), limited.clone(), other.clone());
            std::thread::spawn(move || {
                let mut rule = None;
                while flood_started.elapsed() < flood {
                    match get(&addr, "/v1/status") {
                        Some(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        Some(r) if r.status == 429 => {
                            if rule.is_none() {
                                rule = Some((r.error(), r.head.to_ascii_lowercase().contains("retry-after:")));
                            }
                            limited.fetch_add(1, Ordering::Relaxed)
                        }
                        _ => other.fetch_add(1, Ordering::Relaxed),
                    };
                }
                rule
            })
        })
        .collect();
    let rules: Vec<_> = threads.into_iter().filter_map(|t| t.join().unwrap()).collect();
    let elapsed = flood_started.elapsed().as_secs_f64();
    let (ok, limited, other) =
        (ok.load(Ordering::Relaxed), limited.load(Ordering::Relaxed), other.load(Ordering::Relaxed));
    let rss_after = rss_kib(pid);
    eprintln!(
        "flood: {ok} served, {limited} refused with 429, {other} other, in {elapsed:.1} s; RSS {rss_before} → {rss_after} KiB"
    );
    assert!(limited > 0, "the flood crossed the rate limit");
    let allowed = f64::from(BURST) + f64::from(RATE) * (elapsed + 1.0);
    assert!((ok as f64) <= allowed, "{ok} requests served, more than the limit allows ({allowed:.0})");
    assert_eq!(other, 0, "every flood request got a 200 or a 429");
    let ((code, field, rule), retry_after) = rules.first().cloned().expect("a 429 was seen");
    assert_eq!((code.as_str(), field.as_str()), ("rate_limited", "client"));
    assert!(
        rule.contains(&format!("{RATE} requests per second")) && rule.contains(&format!("bursts of {BURST}")),
        "{rule}"
    );
    assert!(retry_after, "429 carries Retry-After");
    assert!(rss_after < rss_before + 64 * 1024, "memory stayed bounded: {rss_before} → {rss_after} KiB");

    // Healthy throughout: /healthz is never rate-limited; after the bucket refills the
    // client is served again, and the node committed blocks during the flood.
    assert_eq!(get(&addr, "/healthz").map(|r| r.status), Some(200));
    std::thread::sleep(Duration::from_millis(u64::from(BURST) * 1000 / u64::from(RATE)));
    wait_until("new blocks after the flood", Duration::from_secs(30), || height(&addr) > height_before);
    let r = net.attest(0, 0, "2024");
    assert!(r["height"].as_u64().unwrap() > height_before, "attest after the flood: {r}");
}

/// How one slow-body client's request ended.
#[derive(Debug)]
enum SlowEnd {
    /// An answer: its status and body.
    Answered(u16, String),
    /// The connection was closed without an answer.
    Closed,
    /// Still open when the client gave up.
    Open,
}

/// A client that sends a batch request's head at once, then its body one byte every
/// `every`, until the server answers or closes the connection, or `give_up` passes.
/// Returns how it ended and when (from its first body byte).
fn trickle_batch(addr: &str, every: Duration, give_up: Duration) -> (SlowEnd, Duration) {
    let mut s = TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /v1/attestations/batch HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    s.set_read_timeout(Some(every)).unwrap();
    let body = b"{\"attestations\": [\"";
    let started = Instant::now();
    let mut raw = Vec::new();
    let mut sent = 0usize;
    while started.elapsed() < give_up {
        // The body never completes: after its opening, base64 letters.
        let byte = body.get(sent).copied().unwrap_or(b'A');
        if s.write_all(&[byte]).is_err() {
            break;
        }
        sent += 1;
        let mut buf = [0u8; 1024];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                // The whole answer: read until the server closes (it ends the connection).
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let _ = s.read_to_end(&mut raw);
                break;
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let took = started.elapsed();
    if took >= give_up {
        return (SlowEnd::Open, took);
    }
    let text = String::from_utf8_lossy(&raw).to_string();
    match text.split_once("\r\n\r\n") {
        Some((head, body)) => {
            let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            (SlowEnd::Answered(status, body.to_string()), took)
        }
        None => (SlowEnd::Closed, took),
    }
}

/// A signed R&D attestation by member `i` of `net` with `sequence`, as `POST
/// /v1/attestations` takes it (standard base64), built by `credence attest --dry-run`.
fn signed(net: &Testnet, i: usize, sequence: u64, period: &str) -> String {
    let mut args = net.rd_spend_args(i, period);
    args.extend(["--sequence".into(), sequence.to_string(), "--dry-run".into()]);
    let out = credence(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "attest --dry-run failed: {}", String::from_utf8_lossy(&out.stderr));
    json(&out)["attestation"].as_str().expect("base64 attestation").to_string()
}

/// Slow batch bodies (slow-POST): more clients than there are batch slots trickle batch
/// bodies a byte at a time. The node reads a batch body in full before it takes a slot, so
/// a normal batch sent meanwhile is answered at once, and the slow clients get 408 naming
/// the body's deadline (5 s by default) and lose their connection.
#[test]
fn slow_batch_bodies_do_not_delay_other_batches() {
    let _serial = serial();
    /// More than the node's batch slots (`BATCHES_MAX_DEFAULT`, 4).
    const SLOW: usize = 6;
    let net = Testnet::new(10, 1, 0);
    let api_url = net.api(0);
    let addr = api_url.strip_prefix("http://").unwrap().to_string();
    let _node = net.start(0);
    wait_until("the node to commit a block", Duration::from_secs(60), || height(&addr) >= 1);
    // A normal batch: three valid attestations, the attester's first sequences.
    let items: Vec<String> = (1..=3).map(|seq| signed(&net, 0, seq, &format!("{}", 2020 + seq))).collect();
    let batch = serde_json::json!({ "attestations": items }).to_string();

    let slow: Vec<_> = (0..SLOW)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || trickle_batch(&addr, Duration::from_millis(100), Duration::from_secs(20)))
        })
        .collect();
    // Every slow client is connected and trickling before the normal batch is sent.
    std::thread::sleep(Duration::from_millis(700));
    let started = Instant::now();
    let r = send(&addr, "POST", "/v1/attestations/batch", Some("application/json"), batch.as_bytes()).expect("answer");
    let took = started.elapsed();
    eprintln!("a batch of 3 beside {SLOW} slow batch bodies: HTTP {} in {took:?}", r.status);
    assert_eq!(r.status, 200, "{}", r.body);
    let results = r.json()["results"].as_array().cloned().expect("results");
    assert_eq!(results.len(), 3, "{}", r.body);
    assert!(results.iter().all(|i| i["status"] == "pending"), "{}", r.body);
    // Well under a second on an idle machine; 2 s leaves room for a busy 2-core one.
    assert!(took < Duration::from_secs(2), "the normal batch waited {took:?} behind slow bodies");

    for t in slow {
        let (end, after) = t.join().unwrap();
        eprintln!("slow batch body: {end:?} after {after:?}");
        match end {
            SlowEnd::Answered(status, body) => {
                assert_eq!(status, 408, "{body}");
                let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
                assert_eq!(
                    (v["error"]["code"].as_str(), v["error"]["field"].as_str()),
                    (Some("timeout"), Some("body"))
                );
                assert!(v["error"]["rule"].as_str().unwrap_or_default().contains("5000 ms"), "{body}");
            }
            SlowEnd::Closed => {}
            SlowEnd::Open => panic!("a slow batch body held its connection for {after:?}"),
        }
        // The deadline (5 s) and not the request timeout (10 s) ended it.
        assert!(after < Duration::from_secs(9), "the slow client was answered after {after:?}");
    }
    // The batch's attestations were valid: they commit.
    let last = results[2]["id"].as_str().unwrap().to_string();
    wait_until("the batch to commit", Duration::from_secs(30), || {
        get(&addr, &format!("/v1/proofs/inclusion/{last}")).is_some_and(|r| r.status == 200)
    });
}
