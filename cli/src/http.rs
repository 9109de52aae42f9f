//! A small blocking HTTP/1.1 client for the node's plain-HTTP API (loopback by default): one-shot requests, or a keep-alive [`Conn`]; responses are bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Largest response body read.
pub const RESPONSE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Longest response header line read.
const HEADER_LINE_MAX: usize = 8 * 1024;
/// Connect, read and write timeout.
const TIMEOUT: Duration = Duration::from_secs(30);

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
    Ok(rest.trim_end_matches('/'))
}

/// A connection to one node that carries requests one after another (HTTP/1.1
/// keep-alive). It reconnects when the node has closed it; a request on a reused
/// connection that gets no answer at all is sent once more on a fresh one.
#[derive(Debug)]
pub struct Conn {
    node: String,
    host: String,
    addr: SocketAddr,
    keep_alive: bool,
    stream: Option<BufReader<TcpStream>>,
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
        Ok(Conn { node: node.to_string(), host, addr, keep_alive: true, stream: None })
    }

    /// Sends one request and reads the whole response.
    pub fn request(&mut self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Response> {
        let reused = self.stream.is_some();
        match self.exchange(method, path, body) {
            Err(Exchange::NoAnswer(_)) if reused => {
                self.stream = None;
                self.exchange(method, path, body).map_err(Exchange::into_error)
            }
            r => r.map_err(Exchange::into_error),
        }
    }

    pub fn get(&mut self, path: &str) -> Result<Response> {
        self.request("GET", path, None)
    }

    fn exchange(&mut self, method: &str, path: &str, body: Option<&[u8]>) -> Result<Response, Exchange> {
        let stream = match &mut self.stream {
            Some(s) => s,
            None => {
                let s = TcpStream::connect_timeout(&self.addr, TIMEOUT)
                    .with_context(|| format!("cannot connect to the node at {}", self.node))
                    .map_err(Exchange::Failed)?;
                s.set_read_timeout(Some(TIMEOUT)).and_then(|()| s.set_write_timeout(Some(TIMEOUT))).map_err(io)?;
                let _ = s.set_nodelay(true);
                self.stream.insert(BufReader::new(s))
            }
        };
        let body = body.unwrap_or_default();
        let connection = if self.keep_alive { "keep-alive" } else { "close" };
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: {connection}\r\nAccept: application/json\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.host,
            body.len()
        );
        let sent = {
            let w = stream.get_mut();
            w.write_all(head.as_bytes()).and_then(|()| w.write_all(body))
        };
        let result = match sent {
            Ok(()) => read_response(stream),
            Err(e) => Err(Exchange::NoAnswer(e.into())),
        };
        match &result {
            Ok((_, true)) if self.keep_alive => {}
            _ => self.stream = None,
        }
        result.map(|(r, _)| r)
    }
}

/// Why an exchange failed: before any byte of an answer arrived (safe to retry on a
/// fresh connection when the old one may have been closed by the node), or later.
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

fn io(e: std::io::Error) -> Exchange {
    Exchange::Failed(e.into())
}

/// Reads one bounded line (header or chunk size).
fn read_line(reader: &mut BufReader<TcpStream>, line: &mut String) -> std::io::Result<usize> {
    line.clear();
    let n = reader.by_ref().take(HEADER_LINE_MAX as u64).read_line(line)?;
    if n == HEADER_LINE_MAX && !line.ends_with('\n') {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "response line too long"));
    }
    Ok(n)
}

/// Reads a response; also says whether the connection can carry another request.
fn read_response(reader: &mut BufReader<TcpStream>) -> Result<(Response, bool), Exchange> {
    let mut line = String::new();
    match read_line(reader, &mut line) {
        Ok(0) => return Err(Exchange::NoAnswer(anyhow::anyhow!("the node closed the connection without answering"))),
        Ok(_) => {}
        Err(e) => return Err(Exchange::NoAnswer(e.into())),
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("the node sent a malformed status line: {line:?}"))
        .map_err(Exchange::Failed)?;
    let mut length = None;
    let mut chunked = false;
    let mut reusable = true;
    loop {
        if read_line(reader, &mut line).map_err(io)? == 0 || line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        } else if lower.starts_with("connection:") && lower.contains("close") {
            reusable = false;
        }
    }
    let too_large = || Exchange::Failed(anyhow::anyhow!("the node's answer exceeds {RESPONSE_BYTES_MAX} bytes"));
    let mut body = Vec::new();
    if chunked {
        loop {
            read_line(reader, &mut line).map_err(io)?;
            let size =
                usize::from_str_radix(line.trim(), 16).context("malformed chunk size").map_err(Exchange::Failed)?;
            if size == 0 {
                // Trailer section: header lines up to an empty line.
                while read_line(reader, &mut line).map_err(io)? > 0 && line != "\r\n" {}
                break;
            }
            if body.len() + size > RESPONSE_BYTES_MAX {
                return Err(too_large());
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..]).map_err(io)?;
            read_line(reader, &mut line).map_err(io)?;
        }
    } else if let Some(length) = length {
        if length > RESPONSE_BYTES_MAX {
            return Err(too_large());
        }
        body.resize(length, 0);
        reader.read_exact(&mut body).map_err(io)?;
    } else {
        // No length: the body ends when the node closes the connection.
        reusable = false;
        reader.by_ref().take(RESPONSE_BYTES_MAX as u64 + 1).read_to_end(&mut body).map_err(io)?;
        if body.len() > RESPONSE_BYTES_MAX {
            return Err(too_large());
        }
    }
    Ok((Response { status, body }, reusable))
}

/// Sends one request on a fresh connection (`Connection: close`) and reads the whole response.
pub fn request(node: &str, method: &str, path: &str, body: Option<&[u8]>) -> Result<Response> {
    let mut conn = Conn::new(node)?;
    conn.keep_alive = false;
    conn.request(method, path, body)
}

pub fn get(node: &str, path: &str) -> Result<Response> {
    request(node, "GET", path, None)
}

pub fn post_json(node: &str, path: &str, value: &serde_json::Value) -> Result<Response> {
    request(node, "POST", path, Some(value.to_string().as_bytes()))
}
