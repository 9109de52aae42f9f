//! Running real `credence` node processes on loopback for the end-to-end tests: testnets, node processes, polling their API.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{credence, json};

/// A running node process, killed when dropped.
pub struct NodeProc {
    child: Child,
}

impl NodeProc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn start(config: &Path, log: &Path) -> NodeProc {
        let log = std::fs::File::create(log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_credence"))
            .args(["node", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        NodeProc { child }
    }

    pub fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "node exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("node did not stop on SIGTERM");
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn get(url: &str, path: &str) -> Option<serde_json::Value> {
    let o = credence_http_get(url, path)?;
    serde_json::from_str(&o).ok()
}

/// GET with the system's curl-free path: a raw HTTP/1.1 request.
pub fn credence_http_get(url: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let host = url.strip_prefix("http://")?;
    let mut s = std::net::TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
}

/// A GET signed (RFC 9421) with the access key in `key_file`, or unsigned: status and JSON body.
pub fn get_as(url: &str, key_file: Option<&Path>, path: &str) -> Option<(u16, serde_json::Value)> {
    use std::io::{Read, Write};
    let host = url.strip_prefix("http://")?;
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(file) = key_file {
        let key = credence_node::keyfile::read_access_key(file, None).unwrap();
        let now_s = (credence_node::runtime::now_ms() / 1000) as i64;
        let fields =
            credence_node::httpsig::signed_headers("GET", path, None, &key.keyid.to_string(), &key.key, now_s).unwrap();
        for (name, value) in fields {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("\r\n");
    let mut s = std::net::TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(head.as_bytes()).ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, serde_json::from_str(body).ok()?))
}

/// A POST of JSON on a fresh connection; the status code.
pub fn post(url: &str, path: &str, body: &serde_json::Value) -> u16 {
    use std::io::{Read, Write};
    let host = url.strip_prefix("http://").unwrap();
    let body = body.to_string();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

pub fn status(url: &str) -> Option<serde_json::Value> {
    get(url, "/v1/status")
}

pub fn height(url: &str) -> u64 {
    status(url).and_then(|s| s["height"].as_u64()).unwrap_or(0)
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}");
}

/// First port of test slot `slot` (0..=11) of this process: p2p ports from here, API ports
/// from here + 1000 (`credence testnet --base-port`), proxies at + 20..50. Regions of 1,600
/// ports per process id stay in 10,000..30,800, below Linux's ephemeral range (32768 up), so
/// an outgoing connection's local port never takes a node's listening port.
pub fn port_base(slot: u16) -> u16 {
    assert!(slot <= 11, "test slots are 0..=11");
    10_000 + (std::process::id() % 13) as u16 * 1_600 + slot * 50
}

pub struct Testnet {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<serde_json::Value>,
}

impl Testnet {
    /// `slot` separates the port ranges of tests running at once in this process.
    /// These tests watch heights grow on idle chains: the genesis states a heartbeat
    /// block a second.
    pub fn new(slot: u16, validators: usize, observers: usize) -> Testnet {
        Testnet::with_heartbeat(slot, validators, observers, Some(1000))
    }

    /// [`Testnet::new`] with the genesis heartbeat given (`None`: the default, 60 s).
    pub fn with_heartbeat(slot: u16, validators: usize, observers: usize, heartbeat_ms: Option<u64>) -> Testnet {
        let dir = tempfile::tempdir().unwrap();
        // Ports from the process id, so parallel test binaries do not collide.
        let base = port_base(slot);
        let (validators, observers, base) = (validators.to_string(), observers.to_string(), base.to_string());
        let mut args = vec!["testnet", "--validators", &validators, "--observers", &observers];
        args.extend(["--dir", dir.path().to_str().unwrap(), "--base-port", &base]);
        let heartbeat = heartbeat_ms.map(|h| h.to_string());
        if let Some(h) = &heartbeat {
            args.extend(["--heartbeat-ms", h]);
        }
        let out = credence(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("testnet.json")).unwrap()).unwrap();
        Testnet { nodes: manifest["nodes"].as_array().unwrap().clone(), dir }
    }
    pub fn config(&self, i: usize) -> PathBuf {
        PathBuf::from(self.nodes[i]["config"].as_str().unwrap())
    }
    pub fn api(&self, i: usize) -> String {
        self.nodes[i]["api"].as_str().unwrap().to_string()
    }
    pub fn key(&self, i: usize) -> String {
        self.nodes[i]["key"].as_str().unwrap().to_string()
    }
    pub fn start(&self, i: usize) -> NodeProc {
        NodeProc::start(&self.config(i), &self.dir.path().join(format!("node{i}.log")))
    }
    /// Names a witness in the genesis before the chain starts (every copy of the file under
    /// the testnet's directory) and makes its key (`<dir>/<port>.witness.key`); returns the
    /// key file and the public key (hex).
    pub fn name_witness(&self, name: &str, port: u16) -> (PathBuf, String) {
        let key = self.dir.path().join(format!("{port}.witness.key"));
        let out = credence(&["keys", "generate", "--out", key.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let pk = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let table =
            format!("\n[[witnesses]]\nname = \"{name}\"\npublic_key = \"{pk}\"\nurl = \"http://127.0.0.1:{port}\"\n");
        let mut copies = vec![PathBuf::from(self.genesis())];
        for entry in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            let copy = entry.path().join("data/genesis.toml");
            if copy.is_file() {
                copies.push(copy);
            }
        }
        for g in copies {
            let text = std::fs::read_to_string(&g).unwrap() + &table;
            std::fs::write(&g, text).unwrap();
        }
        (key, pk)
    }
    pub fn genesis(&self) -> String {
        self.dir.path().join("genesis.toml").to_str().unwrap().to_string()
    }
    /// `credence attest` arguments for an R&D attestation by member `i` for `period`.
    pub fn rd_spend_args(&self, i: usize, period: &str) -> Vec<String> {
        let args = ["attest", "rd-spend", "--enterprise", "914403001922038216", "--period", period];
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.extend(["--amount".into(), "1250000.00".into(), "--key".into(), self.key(i)]);
        args.extend(["--genesis".into(), self.genesis()]);
        args
    }
    /// Member `i` delegates an access key to `holder` with `scopes` (comma-separated) through
    /// node `via` (`credence keys access`, which waits for the grant's commit); returns the file.
    pub fn access_key(&self, i: usize, via: usize, holder: &str, scopes: &str) -> PathBuf {
        let out = self.dir.path().join(format!("{holder}.access"));
        let o = out.to_str().unwrap();
        let args = ["keys", "access", "--key", &self.key(i), "--holder", holder, "--scopes", scopes, "--out", o];
        let out_ = credence(&[&args[..], &["--node", &self.api(via), "--genesis", &self.genesis()]].concat());
        assert!(out_.status.success(), "keys access failed: {}", String::from_utf8_lossy(&out_.stderr));
        out
    }

    /// Member `i` records, through node `via`, the consent of `enterprise` for `recipient` to
    /// read all its facts for `purpose`, waiting for its commit; returns its id.
    pub fn consent(&self, i: usize, via: usize, enterprise: &str, recipient: &str, purpose: &str) -> String {
        let evidence = self.dir.path().join(format!("authorisation-{enterprise}-{recipient}.pdf"));
        std::fs::write(&evidence, format!("{enterprise} authorises {recipient} for {purpose}")).unwrap();
        let args = ["attest", "consent", "--enterprise", enterprise, "--recipient", recipient, "--purpose", purpose];
        let rest = ["--evidence-file", evidence.to_str().unwrap(), "--key", &self.key(i), "--node", &self.api(via)];
        let out = credence(&[&args[..], &rest, &["--genesis", &self.genesis(), "--wait", "--json"]].concat());
        assert!(out.status.success(), "attest consent failed: {}", String::from_utf8_lossy(&out.stderr));
        json(&out)["id"].as_str().unwrap().to_string()
    }

    /// Submits an R&D attestation by member `i` through node `via`, waiting for its commit.
    pub fn attest(&self, i: usize, via: usize, period: &str) -> serde_json::Value {
        let mut args = self.rd_spend_args(i, period);
        args.extend(["--node".into(), self.api(via), "--wait".into(), "--json".into()]);
        let out = credence(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success(), "attest failed: {}", String::from_utf8_lossy(&out.stderr));
        json(&out)
    }
}

/// A `credence witness` process, killed when dropped.
pub struct WitnessProc(std::process::Child);

impl Drop for WitnessProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `credence witness` named `name` with `key` for the chain of `genesis` on `port`,
/// its state and log under `dir`; returns once it listens.
pub fn start_witness(dir: &Path, name: &str, key: &Path, genesis: &str, port: u16) -> WitnessProc {
    let listen = format!("127.0.0.1:{port}");
    let state = dir.join(format!("state-{port}"));
    let log = std::fs::File::create(dir.join(format!("witness-{port}.log"))).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_credence"))
        .args(["witness", "--name", name, "--key", key.to_str().unwrap(), "--genesis", genesis])
        .args(["--state", state.to_str().unwrap(), "--listen", &listen])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let guard = WitnessProc(child);
    wait_until("the witness to listen", Duration::from_secs(30), || std::net::TcpStream::connect(&listen).is_ok());
    guard
}
