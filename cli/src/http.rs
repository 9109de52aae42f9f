//! A small blocking HTTP/1.1 client for the node's plain-HTTP API (loopback by default): one request per connection, bounded response.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Largest response body read.
pub const RESPONSE_BYTES_MAX: usize = 16 * 1024 * 1024;
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

/// Sends one request and reads the whole response.
pub fn request(node: &str, method: &str, path: &str, body: Option<&[u8]>) -> Result<Response> {
    let host = authority(node)?;
    let addr = host
        .to_socket_addrs()
        .with_context(|| format!("--node: cannot resolve {host}"))?
        .next()
        .with_context(|| format!("--node: no address for {host}"))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, TIMEOUT).with_context(|| format!("cannot connect to the node at {node}"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let body = body.unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAccept: application/json\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("the node sent a malformed status line: {line:?}"))?;
    let mut length = None;
    let mut chunked = false;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim(), 16).context("malformed chunk size")?;
            if size == 0 {
                break;
            }
            if body.len() + size > RESPONSE_BYTES_MAX {
                bail!("the node's answer exceeds {RESPONSE_BYTES_MAX} bytes");
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            line.clear();
            reader.read_line(&mut line)?;
        }
    } else {
        let limit = length.unwrap_or(RESPONSE_BYTES_MAX).min(RESPONSE_BYTES_MAX + 1);
        reader.take(limit as u64).read_to_end(&mut body)?;
        if body.len() > RESPONSE_BYTES_MAX {
            bail!("the node's answer exceeds {RESPONSE_BYTES_MAX} bytes");
        }
    }
    Ok(Response { status, body })
}

pub fn get(node: &str, path: &str) -> Result<Response> {
    request(node, "GET", path, None)
}

pub fn post_json(node: &str, path: &str, value: &serde_json::Value) -> Result<Response> {
    request(node, "POST", path, Some(value.to_string().as_bytes()))
}
