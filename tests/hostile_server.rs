//! End-to-end: real `credence` commands pointed with `--node` at a hostile "node" that
//! answers with an impossible chunk size, an endless body, a short body, garbage, endless
//! headers, nothing at all, or invalid JSON. Each command must fail with exit code 2, a
//! message that says what was wrong, and no panic.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::net::port_base;

/// How a hostile server answers each request (after reading the request head).
#[derive(Clone, Copy, Debug)]
enum Hostile {
    /// Chunked: a chunk of one byte, then one of 2^64 - 1 bytes, then data without end.
    ChunkSizeMax,
    /// No length: a body that goes on until the client leaves.
    EndlessBody,
    /// Content-Length: 1000, then 10 bytes and a close.
    ShortBody,
    /// A status line that is not HTTP.
    GarbageStatus,
    /// Header lines without end.
    EndlessHeaders,
    /// Accepts, reads the request, and never answers.
    Silent,
    /// A well-formed 200 whose body is not JSON.
    InvalidJson,
}

/// Serves `how` on a port of this process's test slot 0 (tests/common/net.rs), one thread
/// per connection, until the test process ends.
fn serve(offset: u16, how: Hostile) -> String {
    let port = port_base(0) + offset;
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| panic!("bind {port}: {e}"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream, how));
        }
    });
    format!("http://127.0.0.1:{port}")
}

fn answer(stream: TcpStream, how: Hostile) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    // The request head (the commands here send GETs without a body).
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => {}
        }
    }
    let mut w = stream;
    let endless = |w: &mut TcpStream, head: &str, unit: &[u8]| {
        if w.write_all(head.as_bytes()).is_err() {
            return;
        }
        // Until the client hangs up (a write fails), or far past any sane limit.
        for _ in 0..(64 * 1024 * 1024 / unit.len()) {
            if w.write_all(unit).is_err() {
                return;
            }
        }
    };
    let json = "Content-Type: application/json\r\n";
    match how {
        Hostile::ChunkSizeMax => endless(
            &mut w,
            &format!("HTTP/1.1 200 OK\r\n{json}Transfer-Encoding: chunked\r\n\r\n1\r\n[\r\nffffffffffffffff\r\n"),
            &[b'7'; 64 * 1024],
        ),
        Hostile::EndlessBody => endless(&mut w, &format!("HTTP/1.1 200 OK\r\n{json}\r\n["), &[b'['; 64 * 1024]),
        Hostile::ShortBody => {
            let _ =
                w.write_all(format!("HTTP/1.1 200 OK\r\n{json}Content-Length: 1000\r\n\r\n{{\"height\":").as_bytes());
        }
        Hostile::GarbageStatus => {
            let _ = w.write_all(b"SSH-2.0-OpenSSH_9.6 \xff\xfe\r\nhello\r\n\r\n");
        }
        Hostile::EndlessHeaders => endless(&mut w, "HTTP/1.1 200 OK\r\n", b"X-More: yes\r\n"),
        Hostile::Silent => std::thread::sleep(Duration::from_secs(60)),
        Hostile::InvalidJson => {
            let body = "{\"height\": 12, oops";
            let _ = w
                .write_all(format!("HTTP/1.1 200 OK\r\n{json}Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes());
        }
    }
    // Closing with the request read: the client sees our bytes, then the end.
}

/// Runs `credence args...` with the HTTP timeout set to `timeout_ms`.
fn run(args: &[&str], timeout_ms: u64) -> (Output, Duration) {
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_credence"))
        .args(args)
        .env("CREDENCE_HTTP_TIMEOUT_MS", timeout_ms.to_string())
        .output()
        .unwrap();
    (out, t0.elapsed())
}

/// The command failed cleanly (exit 2, one `error:` line naming the cause, no panic).
fn assert_clean_failure(what: &str, out: &Output, expect: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{what}: exit {:?}, stderr: {err}", out.status);
    assert!(!err.contains("panicked"), "{what}: panicked: {err}");
    assert!(!err.contains("RUST_BACKTRACE"), "{what}: {err}");
    assert!(err.starts_with("error: "), "{what}: {err}");
    for e in expect {
        assert!(err.contains(e), "{what}: expected {e:?} in: {err}");
    }
    eprintln!("{what}\n    {}", err.trim());
    assert!(out.stdout.is_empty(), "{what}: printed {:?}", String::from_utf8_lossy(&out.stdout));
    err
}

#[test]
fn every_credence_node_command_fails_cleanly_against_a_hostile_server() {
    let limit = "larger than the limit of 16777216 bytes";
    let cases: [(u16, Hostile, &[&str]); 6] = [
        (0, Hostile::ChunkSizeMax, &[limit]),
        (1, Hostile::EndlessBody, &[limit]),
        (2, Hostile::ShortBody, &["closed the connection before its answer was complete"]),
        (3, Hostile::GarbageStatus, &["not HTTP/1.1"]),
        (4, Hostile::EndlessHeaders, &["larger than 65536 bytes"]),
        (5, Hostile::InvalidJson, &["unexpected answer"]),
    ];
    for (offset, how, expect) in cases {
        let url = serve(offset, how);
        // A query, a credit profile and a checkpoint (which first fetches the node's genesis).
        let commands: [&[&str]; 3] = [
            &["query", "block", "1", "--json", "--node", &url],
            &["profile", "914403001922038216", "--node", &url],
            &["checkpoint", "--node", &url],
        ];
        for args in commands {
            let what = format!("{how:?}: credence {}", args.join(" "));
            let (out, took) = run(args, 10_000);
            let expect: &[&str] = match (how, args[0]) {
                // The checkpoint's first request is /v1/genesis, read as TOML, not JSON.
                (Hostile::InvalidJson, "checkpoint") => &["genesis"],
                _ => expect,
            };
            let err = assert_clean_failure(&what, &out, expect);
            if !matches!(how, Hostile::InvalidJson) {
                assert!(err.contains(&url), "{what}: the message should name the node: {err}");
            }
            assert!(took < Duration::from_secs(9), "{what}: took {took:?}");
        }
    }
}

#[test]
fn a_server_that_never_answers_times_out() {
    let url = serve(6, Hostile::Silent);
    let (out, took) = run(&["query", "block", "1", "--node", &url], 1_500);
    assert_clean_failure("silent", &out, &["did not answer within 1.5 s", &url]);
    assert!(took >= Duration::from_millis(1_400) && took < Duration::from_secs(10), "took {took:?}");
    // The variable is checked, not ignored.
    let (out, _) = run(&["query", "block", "1", "--node", &url], 0);
    assert_clean_failure("timeout 0", &out, &["CREDENCE_HTTP_TIMEOUT_MS"]);
}

#[test]
fn a_node_that_is_not_there_is_a_clear_error() {
    // Nothing listens on this port of our slot.
    let url = format!("http://127.0.0.1:{}", port_base(0) + 7);
    let (out, _) = run(&["query", "block", "1", "--node", &url], 5_000);
    assert_clean_failure("nobody", &out, &["cannot connect to the node at", &url]);
}
