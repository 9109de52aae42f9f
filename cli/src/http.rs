//! The CLI's HTTP client for the node's plain-HTTP API (loopback by default): one-shot
//! requests, or a keep-alive [`Conn`]. Callers are blocking; underneath it is hyper's
//! HTTP/1.1 client (`hyper::client::conn::http1`, the same hyper the node's API serves
//! with) over a tokio `TcpStream`, driven by a small current-thread runtime that each
//! [`Conn`] owns.
//!
//! A node's answer is untrusted input. Everything about it is bounded and every way it
//! can be wrong is an error, never a panic: the response head (status line and headers)
//! is at most [`HEAD_BYTES_MAX`] bytes (hyper's parser), the body is read frame by frame
//! and refused as soon as it passes [`RESPONSE_BYTES_MAX`] (a declared `Content-Length`
//! above it is refused before reading), and connecting, waiting for the head and each
//! read of the body time out after [`TIMEOUT_DEFAULT`] (or `CREDENCE_HTTP_TIMEOUT_MS`).

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1;
use hyper::header::{ACCEPT, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;

use credence_node::httpsig;
use credence_node::keyfile::AccessKeyFile;
use credence_node::runtime::now_ms;

/// Largest response body read.
pub const RESPONSE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Largest response head (status line and headers), and hyper's read buffer.
pub const HEAD_BYTES_MAX: usize = 64 * 1024;
/// Connect timeout, and how long the node may take to start answering or to send the next
/// part of its answer.
pub const TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// Environment variable overriding [`TIMEOUT_DEFAULT`], in milliseconds (a slow link, or
/// the tests' hostile servers that never answer).
pub const TIMEOUT_ENV: &str = "CREDENCE_HTTP_TIMEOUT_MS";
/// Largest timeout the variable may set: one hour.
const TIMEOUT_MS_MAX: u64 = 3_600_000;

/// A response: status code and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).context("the node's answer is not JSON")
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Splits `http://host:port` (no path) into host:port.
fn authority(node: &str) -> Result<&str> {
    let Some(rest) = node.strip_prefix("http://") else {
        bail!("--node: '{node}' must start with http:// (the API is plain HTTP on a trusted network)");
    };
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') {
        bail!("--node: '{node}' must be http://HOST:PORT, without a path");
    }
    Ok(host)
}

/// The timeout in force: [`TIMEOUT_ENV`] if set (an error if it is not a number of
/// milliseconds between 1 and an hour), else [`TIMEOUT_DEFAULT`].
fn timeout_from_env() -> Result<Duration> {
    parse_timeout(std::env::var_os(TIMEOUT_ENV).as_deref())
}

fn parse_timeout(value: Option<&std::ffi::OsStr>) -> Result<Duration> {
    let Some(value) = value else { return Ok(TIMEOUT_DEFAULT) };
    let v = value.to_string_lossy();
    match v.trim().parse::<u64>() {
        Ok(ms) if (1..=TIMEOUT_MS_MAX).contains(&ms) => Ok(Duration::from_millis(ms)),
        _ => bail!("{TIMEOUT_ENV}: '{v}' is not a number of milliseconds between 1 and {TIMEOUT_MS_MAX}"),
    }
}

type Sender = http1::SendRequest<Full<Bytes>>;

/// Where requests go and how.
#[derive(Debug)]
struct Target {
    node: String,
    host: String,
    addr: SocketAddr,
    keep_alive: bool,
    timeout: Duration,
    /// Signs every request (RFC 9421, docs/ACCESS.md) when set.
    access: Option<AccessKeyFile>,
}

/// A connection to one node that carries requests one after another (HTTP/1.1
/// keep-alive). It reconnects when the node has closed it; a request on a reused
/// connection that gets no answer at all is sent once more on a fresh one.
#[derive(Debug)]
pub struct Conn {
    target: Target,
    /// Drives the connection while a request is in flight (between requests nothing runs).
    rt: tokio::runtime::Runtime,
    sender: Option<Sender>,
}

impl Conn {
    /// Resolves the node's address; connects on the first request.
    pub fn new(node: &str) -> Result<Conn> {
        let host = authority(node)?.to_string();
        let addr = host
            .to_socket_addrs()
            .with_context(|| format!("--node: cannot resolve {host}"))?
            .next()
            .with_context(|| format!("--node: no address for {host}"))?;
        let timeout = timeout_from_env()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .context("cannot start the HTTP client's runtime")?;
        let target = Target { node: node.to_string(), host, addr, keep_alive: true, timeout, access: None };
        Ok(Conn { target, rt, sender: None })
    }

    /// Signs every request of this connection with `access` (none: unsigned). Each attempt
    /// is signed afresh, so a retried request is never refused as a replay.
    pub fn with_access(mut self, access: Option<AccessKeyFile>) -> Conn {
        self.target.access = access;
        self
    }

    /// Sends one request and reads the whole response.
    pub fn request(&mut self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Response> {
        let method =
            Method::from_bytes(method.as_bytes()).with_context(|| format!("invalid HTTP method {method:?}"))?;
        let body = Bytes::copy_from_slice(body.unwrap_or_default());
        let Conn { target, rt, sender } = self;
        rt.block_on(exchange_retrying(target, sender, &method, path, &body)).with_context(|| format!("{method} {path}"))
    }

    pub fn get(&mut self, path: &str) -> Result<Response> {
        self.request("GET", path, None)
    }
}

/// Why an exchange failed: before any answer arrived (safe to retry on a fresh connection
/// when the old one may have been closed by the node meanwhile), or later.
#[derive(Debug)]
enum Exchange {
    NoAnswer(anyhow::Error),
    Failed(anyhow::Error),
}

impl Exchange {
    fn into_error(self) -> anyhow::Error {
        match self {
            Exchange::NoAnswer(e) | Exchange::Failed(e) => e,
        }
    }
}

/// One request on the kept connection if it is still open, else on a new one; if a reused
/// connection got no answer at all, once more on a new one.
async fn exchange_retrying(
    target: &Target,
    sender: &mut Option<Sender>,
    method: &Method,
    path: &str,
    body: &Bytes,
) -> Result<Response> {
    // Taken: after an error the next request starts on a fresh connection.
    let kept = match sender.take() {
        // Between requests nothing drives the connection: let its task see a close or
        // reset that arrived meanwhile, so an idle connection the node has closed is
        // replaced here, before a request is sent on it.
        Some(mut s) => {
            tokio::task::yield_now().await;
            matches!(tokio::time::timeout(target.timeout, s.ready()).await, Ok(Ok(()))).then_some(s)
        }
        None => None,
    };
    let reused = kept.is_some();
    let mut conn = match kept {
        Some(s) => s,
        None => connect(target).await?,
    };
    let (response, reusable) = match exchange(target, &mut conn, method, path, body).await {
        Err(Exchange::NoAnswer(_)) if reused => {
            conn = connect(target).await?;
            exchange(target, &mut conn, method, path, body).await.map_err(Exchange::into_error)?
        }
        r => r.map_err(Exchange::into_error)?,
    };
    if reusable && target.keep_alive {
        *sender = Some(conn);
    }
    Ok(response)
}

/// Opens a TCP connection and hands it to hyper; the connection is driven by a task on the
/// [`Conn`]'s runtime (it ends when the connection closes or the `Conn` is dropped).
async fn connect(target: &Target) -> Result<Sender> {
    let t = target.timeout;
    let node = &target.node;
    let stream = match tokio::time::timeout(t, tokio::net::TcpStream::connect(target.addr)).await {
        Err(_) => bail!("cannot connect to the node at {node}: no connection within {}", secs(t)),
        Ok(r) => r.with_context(|| format!("cannot connect to the node at {node}"))?,
    };
    let _ = stream.set_nodelay(true);
    let handshake = http1::Builder::new().max_buf_size(HEAD_BYTES_MAX).handshake(TokioIo::new(stream));
    let (sender, connection) = handshake.await.with_context(|| format!("cannot talk HTTP to the node at {node}"))?;
    tokio::spawn(async move {
        // Its errors reach the request that was in flight; nothing more to do with them.
        let _ = connection.await;
    });
    Ok(sender)
}

/// One request and its whole, bounded response; also says whether the connection can
/// carry another request.
async fn exchange(
    target: &Target,
    sender: &mut Sender,
    method: &Method,
    path: &str,
    body: &Bytes,
) -> Result<(Response, bool), Exchange> {
    let t = target.timeout;
    let node = &target.node;
    let mut builder = Request::builder()
        .method(method.clone())
        .uri(path)
        .header(HOST, target.host.as_str())
        .header(CONNECTION, if target.keep_alive { "keep-alive" } else { "close" })
        .header(ACCEPT, "application/json")
        .header(CONTENT_TYPE, "application/json");
    if let Some(access) = &target.access {
        let now_s = i64::try_from(now_ms() / 1000).unwrap_or(i64::MAX);
        let keyid = access.keyid.to_string();
        let signed = httpsig::signed_headers(method.as_str(), path, Some(body), &keyid, &access.key, now_s)
            .map_err(|e| Exchange::Failed(anyhow!("cannot sign the request: {e}")))?;
        for (name, value) in signed {
            builder = builder.header(name, value);
        }
    }
    let request = builder
        .body(Full::new(body.clone()))
        .with_context(|| format!("invalid request path {path:?}"))
        .map_err(Exchange::Failed)?;
    let response = match tokio::time::timeout(t, sender.send_request(request)).await {
        Err(_) => {
            return Err(Exchange::Failed(anyhow!("the node at {node} did not answer within {}", secs(t))));
        }
        Ok(Err(e)) => return Err(head_error(node, e)),
        Ok(Ok(r)) => r,
    };
    let status = response.status().as_u16();
    let reusable = !response
        .headers()
        .get_all(CONNECTION)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.to_ascii_lowercase().contains("close")));
    if let Some(declared) = response.headers().get(CONTENT_LENGTH)
        && let Some(len) = declared.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok())
        && len > RESPONSE_BYTES_MAX as u64
    {
        return Err(Exchange::Failed(too_large(node, &format!(": its Content-Length is {len}"))));
    }
    let body = read_body(target, response.into_body()).await.map_err(Exchange::Failed)?;
    Ok((Response { status, body }, reusable))
}

/// Reads a body frame by frame, refusing it as soon as it passes [`RESPONSE_BYTES_MAX`].
async fn read_body(target: &Target, mut incoming: Incoming) -> Result<Vec<u8>> {
    let t = target.timeout;
    let node = &target.node;
    let mut body = Vec::new();
    loop {
        let frame = match tokio::time::timeout(t, incoming.frame()).await {
            Err(_) => bail!("the node at {node} stopped sending its answer: nothing for {}", secs(t)),
            Ok(None) => return Ok(body),
            Ok(Some(Err(e))) => return Err(body_error(node, e)),
            Ok(Some(Ok(frame))) => frame,
        };
        // Trailers carry nothing the CLI uses.
        let Ok(data) = frame.into_data() else { continue };
        if data.len() > RESPONSE_BYTES_MAX - body.len() {
            return Err(too_large(node, ""));
        }
        body.extend_from_slice(&data);
    }
}

/// The answer passed [`RESPONSE_BYTES_MAX`]; `how` says how we know, if not by reading.
fn too_large(node: &str, how: &str) -> anyhow::Error {
    anyhow!(
        "the node at {node} sent an answer larger than the limit of {RESPONSE_BYTES_MAX} bytes ({} MiB){how}",
        RESPONSE_BYTES_MAX / (1024 * 1024)
    )
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// An error before the response head was complete. A connection the node closed, reset or
/// that hyper saw close before anything was read is "no answer" (worth one retry when the
/// connection was a reused one); a malformed or oversized head is a failure.
fn head_error(node: &str, e: hyper::Error) -> Exchange {
    if e.is_parse_too_large() {
        return Exchange::Failed(anyhow::Error::new(e).context(format!(
            "the node at {node} sent a response head (status line and headers) larger than {HEAD_BYTES_MAX} bytes"
        )));
    }
    if e.is_parse() || e.is_parse_status() {
        return Exchange::Failed(
            anyhow::Error::new(e).context(format!("the node at {node} answered with something that is not HTTP/1.1")),
        );
    }
    let closed = e.is_incomplete_message() || e.is_canceled() || e.is_closed() || io_kind(&e).is_some();
    let error = anyhow::Error::new(e);
    if closed {
        Exchange::NoAnswer(error.context(format!("the node at {node} closed the connection without answering")))
    } else {
        Exchange::Failed(error.context(format!("the exchange with the node at {node} failed")))
    }
}

/// An error while reading the body.
fn body_error(node: &str, e: hyper::Error) -> anyhow::Error {
    let what = if e.is_incomplete_message() || io_kind(&e) == Some(std::io::ErrorKind::UnexpectedEof) {
        "closed the connection before its answer was complete"
    } else if e.is_parse() {
        "sent a malformed body (bad chunked encoding)"
    } else {
        "broke off its answer"
    };
    anyhow::Error::new(e).context(format!("the node at {node} {what}"))
}

/// The kind of the I/O error under a hyper error, if any.
fn io_kind(e: &hyper::Error) -> Option<std::io::ErrorKind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = s.source();
    }
    None
}

/// Sends one request on a fresh connection (`Connection: close`) and reads the whole response.
pub fn request(node: &str, method: &str, path: &str, body: Option<&[u8]>) -> Result<Response> {
    let mut conn = Conn::new(node)?;
    conn.target.keep_alive = false;
    conn.request(method, path, body)
}

pub fn get(node: &str, path: &str) -> Result<Response> {
    request(node, "GET", path, None)
}

pub fn post_json(node: &str, path: &str, value: &serde_json::Value) -> Result<Response> {
    request(node, "POST", path, Some(value.to_string().as_bytes()))
}

/// A scripted HTTP/1.1 server on a port of the shared test scheme, for tests of clients.
#[cfg(test)]
pub(crate) mod test_server {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A port of the shared test scheme (tests/common/net.rs `port_base`): this process's
    /// region below the ephemeral range, slot 11 (unit tests), plus `offset`.
    pub(crate) fn port(offset: u16) -> u16 {
        assert!(offset < 50);
        10_000 + (std::process::id() % 13) as u16 * 1_600 + 11 * 50 + offset
    }

    /// Reads one request: its head, and the body its `Content-Length` announces.
    pub(crate) fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, Vec<u8>)> {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let length = head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse::<usize>().ok())?
        });
        let mut body = vec![0; length.unwrap_or(0)];
        reader.read_exact(&mut body).ok()?;
        Some((head, body))
    }

    /// A server on `port(offset)`: it answers request n (from 0) of its connection i (from
    /// 0) with `answer(i, n)`: `None` closes the connection without answering, `Some((text,
    /// close))` sends `text` and then closes the connection if `close`. Returns the count of
    /// connections it accepted.
    pub(crate) fn serve(offset: u16, answer: fn(usize, usize) -> Option<(&'static str, bool)>) -> Arc<AtomicUsize> {
        let listener = TcpListener::bind(("127.0.0.1", port(offset))).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let i = count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut w = stream;
                    let mut n = 0;
                    while read_request(&mut reader).is_some() {
                        let Some((text, close)) = answer(i, n) else { return };
                        if w.write_all(text.as_bytes()).is_err() || close {
                            return;
                        }
                        n += 1;
                    }
                });
            }
        });
        accepted
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufReader, Write};
    use std::net::TcpListener;
    use std::sync::atomic::Ordering;

    use super::test_server::{port, read_request, serve};
    use super::*;

    const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

    #[test]
    fn a_conn_keeps_its_connection_between_requests() {
        let accepted = serve(0, |_, _| Some((OK, false)));
        let mut conn = Conn::new(&format!("http://127.0.0.1:{}", port(0))).unwrap();
        for _ in 0..5 {
            let r = conn.get("/v1/status").unwrap();
            assert_eq!((r.status, r.text().as_str()), (200, "ok"));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_request_the_reused_connection_did_not_answer_is_sent_again_on_a_fresh_one() {
        // Each connection answers its first request (keep-alive) and closes on the second
        // without answering: the client only learns it after sending.
        let accepted = serve(1, |_, n| (n == 0).then_some((OK, false)));
        let mut conn = Conn::new(&format!("http://127.0.0.1:{}", port(1))).unwrap();
        for i in 1..=4 {
            assert_eq!(conn.get("/v1/status").unwrap().text(), "ok");
            assert_eq!(accepted.load(Ordering::SeqCst), i);
        }
    }

    #[test]
    fn an_idle_connection_the_node_closed_is_replaced() {
        // Each connection answers one request, keep-alive, then closes while idle.
        let accepted = serve(4, |_, _| Some((OK, true)));
        let mut conn = Conn::new(&format!("http://127.0.0.1:{}", port(4))).unwrap();
        for i in 1..=4 {
            assert_eq!(conn.get("/v1/status").unwrap().text(), "ok");
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(accepted.load(Ordering::SeqCst), i);
        }
    }

    #[test]
    fn a_request_is_retried_once_at_most() {
        // The first connection answers once; every later one closes without answering.
        let accepted = serve(2, |i, n| (i == 0 && n == 0).then_some((OK, false)));
        let mut conn = Conn::new(&format!("http://127.0.0.1:{}", port(2))).unwrap();
        assert_eq!(conn.get("/a").unwrap().text(), "ok");
        let e = format!("{:#}", conn.get("/b").unwrap_err());
        assert!(e.contains("closed the connection without answering"), "{e}");
        // The reused connection, then one fresh one: no retry loop.
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        // A fresh connection that gets no answer is not retried.
        let e = format!("{:#}", conn.get("/c").unwrap_err());
        assert!(e.contains("closed the connection without answering"), "{e}");
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn one_shot_requests_ask_to_close_and_work_inside_a_runtime_blocking_task() {
        let listener = TcpListener::bind(("127.0.0.1", port(3))).unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (head, body) = read_request(&mut reader).unwrap();
            (&stream).write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n").unwrap();
            (head.to_ascii_lowercase(), body)
        });
        // `credence dev` posts from a blocking task of its node's runtime.
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let url = format!("http://127.0.0.1:{}", port(3));
        let r = rt
            .block_on(async {
                tokio::task::spawn_blocking(move || post_json(&url, "/v1/x", &serde_json::json!({"a": 1}))).await
            })
            .unwrap()
            .unwrap();
        assert_eq!(r.status, 202);
        let (head, body) = server.join().unwrap();
        assert!(head.starts_with("post /v1/x http/1.1\r\n"), "{head}");
        for h in ["connection: close", "content-length: 7", "content-type: application/json", "host: 127.0.0.1:"] {
            assert!(head.contains(h), "{h} missing: {head}");
        }
        assert_eq!(body, br#"{"a":1}"#);
    }

    #[test]
    fn node_urls_and_the_timeout_variable_are_checked() {
        for bad in ["127.0.0.1:8080", "https://127.0.0.1:8080", "http://", "http://127.0.0.1:8080/v1"] {
            assert!(Conn::new(bad).is_err(), "{bad}");
        }
        assert!(authority("http://127.0.0.1:8080/").is_ok());
        let t = |v: &str| parse_timeout(Some(std::ffi::OsStr::new(v)));
        assert_eq!(parse_timeout(None).unwrap(), TIMEOUT_DEFAULT);
        assert_eq!(t(" 1500 ").unwrap(), Duration::from_millis(1500));
        for bad in ["", "0", "-1", "1.5", "3600001", "soon"] {
            let e = t(bad).unwrap_err().to_string();
            assert!(e.contains(TIMEOUT_ENV), "{bad}: {e}");
        }
    }
}
