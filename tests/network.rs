//! End-to-end: real `credence node` processes on loopback — four validators commit what any node is given, survive a SIGKILLed validator, and bring it back; an observer syncs and verifies the whole chain; a stranger's key is refused.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{credence, json};

/// A running node process, killed when dropped.
struct NodeProc {
    child: Child,
}

impl NodeProc {
    fn start(config: &Path, log: &Path) -> NodeProc {
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

    fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit.
    fn stop(&mut self) {
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

fn get(url: &str, path: &str) -> Option<serde_json::Value> {
    let o = credence_http_get(url, path)?;
    serde_json::from_str(&o).ok()
}

/// GET with the system's curl-free path: a raw HTTP/1.1 request.
fn credence_http_get(url: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let host = url.strip_prefix("http://")?;
    let mut s = std::net::TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
}

fn status(url: &str) -> Option<serde_json::Value> {
    get(url, "/v1/status")
}

fn height(url: &str) -> u64 {
    status(url).and_then(|s| s["height"].as_u64()).unwrap_or(0)
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}");
}

fn port_base(slot: u16) -> u16 {
    20_000 + (std::process::id() % 200) as u16 * 200 + slot * 50
}

struct Testnet {
    dir: tempfile::TempDir,
    nodes: Vec<serde_json::Value>,
}

impl Testnet {
    /// `slot` separates the port ranges of tests running at once in this process.
    fn new(slot: u16, validators: usize, observers: usize) -> Testnet {
        let dir = tempfile::tempdir().unwrap();
        // Ports from the process id, so parallel test binaries do not collide.
        let base = port_base(slot);
        let out = credence(&[
            "testnet",
            "--validators",
            &validators.to_string(),
            "--observers",
            &observers.to_string(),
            "--dir",
            dir.path().to_str().unwrap(),
            "--base-port",
            &base.to_string(),
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("testnet.json")).unwrap()).unwrap();
        Testnet { nodes: manifest["nodes"].as_array().unwrap().clone(), dir }
    }
    fn config(&self, i: usize) -> PathBuf {
        PathBuf::from(self.nodes[i]["config"].as_str().unwrap())
    }
    fn api(&self, i: usize) -> String {
        self.nodes[i]["api"].as_str().unwrap().to_string()
    }
    fn key(&self, i: usize) -> String {
        self.nodes[i]["key"].as_str().unwrap().to_string()
    }
    fn start(&self, i: usize) -> NodeProc {
        NodeProc::start(&self.config(i), &self.dir.path().join(format!("node{i}.log")))
    }
    fn genesis(&self) -> String {
        self.dir.path().join("genesis.toml").to_str().unwrap().to_string()
    }
    /// Submits an R&D attestation by member `i` through node `via`, waiting for its commit.
    fn attest(&self, i: usize, via: usize, period: &str) -> serde_json::Value {
        let out = credence(&[
            "attest",
            "rd-spend",
            "--enterprise",
            "914403001922038216",
            "--period",
            period,
            "--amount",
            "1250000.00",
            "--key",
            &self.key(i),
            "--genesis",
            &self.genesis(),
            "--node",
            &self.api(via),
            "--wait",
            "--json",
        ]);
        assert!(out.status.success(), "attest failed: {}", String::from_utf8_lossy(&out.stderr));
        json(&out)
    }
}

#[test]
fn four_validators_commit_survive_a_kill_and_an_observer_verifies() {
    let net = Testnet::new(0, 4, 1);
    let mut nodes: Vec<NodeProc> = (0..4).map(|i| net.start(i)).collect();
    wait_until("all four validators to commit blocks", Duration::from_secs(60), || {
        (0..4).all(|i| height(&net.api(i)) >= 3)
    });

    // Attestations submitted to each node in turn are committed, and every node agrees.
    for i in 0..4 {
        let r = net.attest(i, (i + 1) % 4, "2021");
        assert!(r["height"].as_u64().unwrap() >= 1, "{r}");
    }
    let target = (0..4).map(|i| height(&net.api(i))).max().unwrap();
    wait_until("agreement on a common height", Duration::from_secs(30), || {
        (0..4).all(|i| height(&net.api(i)) >= target)
    });
    let block = |i: usize| get(&net.api(i), &format!("/v1/blocks/{target}")).map(|b| b["hash"].clone());
    let first = block(0);
    assert!(first.is_some());
    for i in 1..4 {
        assert_eq!(block(i), first, "node {i} disagrees at height {target}");
    }

    // SIGKILL one validator: the other three keep committing.
    nodes[3].sigkill();
    let r = net.attest(0, 1, "2022");
    let committed_at = r["height"].as_u64().unwrap();
    // Restarted, it catches up and rejoins.
    nodes[3] = net.start(3);
    wait_until("the restarted validator to catch up", Duration::from_secs(60), || height(&net.api(3)) >= committed_at);
    let r = net.attest(3, 3, "2023");
    assert!(r["height"].as_u64().unwrap() > committed_at);

    // A fresh observer follows the chain by sync; stopped, its store verifies offline.
    let mut observer = net.start(4);
    let head = height(&net.api(0));
    wait_until("the observer to sync", Duration::from_secs(60), || height(&net.api(4)) >= head);
    assert_eq!(status(&net.api(4)).unwrap()["validator"], false);
    observer.stop();
    let data = net.nodes[4]["data_dir"].as_str().unwrap();
    let v = json(&credence(&["verify", "--data-dir", data, "--json"]));
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["blocks"].as_u64().unwrap() >= head);
    assert!(v["attestations"].as_u64().unwrap() >= 6);
    for n in &mut nodes {
        n.stop();
    }
}

#[test]
fn a_peer_with_an_unknown_key_is_refused() {
    let net = Testnet::new(1, 1, 0);
    let _v = net.start(0);
    wait_until("the validator to commit", Duration::from_secs(30), || height(&net.api(0)) >= 2);
    // A stranger with a fresh key, the chain's genesis, and the validator as its peer.
    let dir = net.dir.path().join("stranger");
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("stranger.key");
    assert!(credence(&["keys", "generate", "--out", key.to_str().unwrap()]).status.success());
    // `init` refuses a key outside genesis.
    let out = credence(&[
        "init",
        "--genesis",
        &net.genesis(),
        "--key",
        key.to_str().unwrap(),
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no member"));
    // Started by hand anyway, it is refused at start (its key is not a member).
    let api_port = port_base(1) + 49;
    let config = format!(
        "data_dir = \"data\"\ngenesis = \"{}\"\nkey = \"{}\"\np2p_listen = \"127.0.0.1:0\"\npeers = [\"{}\"]\napi_listen = \"127.0.0.1:{api_port}\"\n",
        net.genesis(),
        key.display(),
        net.nodes[0]["p2p"].as_str().unwrap()
    );
    std::fs::write(dir.join("node.toml"), config).unwrap();
    let out = credence(&["node", "--config", dir.join("node.toml").to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("member"), "{err}");
    assert!(height(&net.api(0)) >= 2);
}
