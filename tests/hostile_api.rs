//! End-to-end: a real `credence node` under hostile HTTP clients — oversized bodies, malformed JSON, wrong types, huge `limit`s, a slow-header client and a request flood — answers each with a clear 4xx/429 naming the rule, keeps its memory bounded, stays healthy and keeps committing blocks.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::net::{Testnet, wait_until};

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

#[test]
fn a_node_under_hostile_clients_refuses_clearly_and_keeps_committing() {
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
    // Huge and malformed `limit`s: refused, not clamped.
    for limit in ["100000000000", "1001", "-1", "1e9"] {
        let r = get(&addr, &format!("/v1/enterprises/914403001922038216/attestations?limit={limit}")).expect("answer");
        assert_eq!(r.status, 400, "{limit}: {}", r.body);
        assert_eq!(r.error().1, "limit", "{}", r.body);
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
