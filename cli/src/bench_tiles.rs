//! `credence bench tiles`: C2SP tile serving from one node's API code on loopback (requests/s and latency of full hash tiles), and `credence verify --tiles` over a mirrored copy against `credence verify --data-dir`.
//!
//! Method (results in docs/BENCHMARKS.md): the store of `--data-dir` is served by the node's
//! own API code (`credence_node::api::serve` through [`crate::local`], default bounds and
//! tile cache) on a loopback port inside this process. `--clients` threads, each on its own
//! keep-alive connection, request full hash tiles one after another for `--seconds`; each
//! request is a random full tile of the tree (seeded), drawn uniformly over all levels'
//! full tiles, so most are level-0 tiles; each misses the node's tile cache once. The rate is
//! the answers counted over the wall time; each latency is one request's round trip.
//! Then `credence mirror` copies the log's tiles into a temporary directory, and
//! `credence verify --tiles DIR` and `credence verify --data-dir` run as separate processes
//! one after the other; their own reported rates are compared.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};

use credence_ledger::demo::DemoRng;
use credence_ledger::genesis::Genesis;
use credence_ledger::store::{RedbOptions, RedbStore, Store};
use credence_ledger::tiles::{TILE_WIDTH, Tile, tiles_of};

use crate::http::Conn;

/// Most client threads (each holds one connection).
const CLIENTS_MAX: usize = 64;
/// Longest measurement, in seconds.
const SECONDS_MAX: u64 = 600;
/// Latency samples kept per client (the rest are counted, not kept).
const SAMPLES_PER_CLIENT_MAX: usize = 1_000_000;

#[derive(Args, Debug)]
pub struct TilesBenchArgs {
    /// A data directory holding genesis.toml and ledger.redb (e.g. from `credence generate`).
    #[arg(long)]
    data_dir: PathBuf,
    /// Client threads, each on its own keep-alive connection.
    #[arg(long, default_value_t = 2)]
    clients: usize,
    /// Seconds of tile requests.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seed for the random tiles.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Skip the mirror and the two verifications.
    #[arg(long)]
    no_verify: bool,
}

pub fn run(a: &TilesBenchArgs) -> Result<ExitCode> {
    if a.clients == 0 || a.clients > CLIENTS_MAX {
        bail!("--clients: must be between 1 and {CLIENTS_MAX}");
    }
    if a.seconds == 0 || a.seconds > SECONDS_MAX {
        bail!("--seconds: must be between 1 and {SECONDS_MAX}");
    }
    let genesis_path = a.data_dir.join("genesis.toml");
    let genesis = Genesis::load(&genesis_path)?;
    let store = RedbStore::open_with(&a.data_dir.join("ledger.redb"), &genesis, RedbOptions::default())
        .with_context(|| format!("--data-dir: {}", a.data_dir.display()))?;
    let Some(head) = store.head()? else { bail!("--data-dir: the ledger is empty") };
    let full: Vec<String> = tiles_of(head.tree_size, false)
        .filter(|t| u64::from(t.width) == TILE_WIDTH)
        .map(|t: Tile| format!("/{}", t.path()))
        .collect();
    if full.is_empty() {
        bail!(
            "--data-dir: the tree of size {} has no full tile (it needs at least {TILE_WIDTH} leaves)",
            head.tree_size
        );
    }
    let level0 = full.iter().filter(|p| p.starts_with("/tile/0/")).count();
    let local = crate::local::serve_store(genesis, store)?;
    // For an outside load generator (docs/BENCHMARKS.md runs wrk against it too).
    eprintln!("serving {} full hash tiles at {}/tile/...", full.len(), local.url);

    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let started = Instant::now();
    let results: Vec<Result<(u64, Vec<u64>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..a.clients)
            .map(|c| {
                let (url, full) = (&local.url, &full);
                let seed = a.seed.wrapping_add(c as u64);
                s.spawn(move || client(url, full, seed, deadline))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a client thread panicked"))))
            .collect()
    });
    let wall = started.elapsed().as_secs_f64();
    let mut answered = 0u64;
    let mut samples = Vec::new();
    for r in results {
        let (n, s) = r?;
        answered += n;
        samples.extend(s);
    }
    let url = local.url.clone();

    let verify = if a.no_verify {
        Value::Null
    } else {
        let dir = std::env::temp_dir().join(format!("credence-bench-tiles-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let g = genesis_path.to_str().context("--data-dir: not UTF-8")?;
        let d = dir.to_str().context("temporary directory: not UTF-8")?;
        let t = Instant::now();
        let mirror = credence_json(&["mirror", "--tiles", &url, "--out", d, "--genesis", g, "--json"])?;
        let mirror_s = t.elapsed().as_secs_f64();
        drop(local);
        let tiles = credence_json(&["verify", "--tiles", d, "--genesis", g, "--json"])?;
        let data_dir = a.data_dir.to_str().context("--data-dir: not UTF-8")?;
        let store = credence_json(&["verify", "--data-dir", data_dir, "--json"])?;
        let bytes = dir_bytes(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        let rate = |v: &Value| v["attestations_per_second"].as_f64().unwrap_or(0.0);
        json!({
            "mirror": {"seconds": mirror_s, "fetched": mirror["fetched"], "bytes": bytes},
            "verify_tiles": {"attestations_per_second": rate(&tiles), "seconds": tiles["seconds"], "entries": tiles["entries"]},
            "verify_data_dir": {"attestations_per_second": rate(&store), "seconds": store["seconds"]},
            "ratio_tiles_to_data_dir": rate(&tiles) / rate(&store).max(1.0),
        })
    };

    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "ledger": {"height": head.height, "tree_size": head.tree_size, "full_hash_tiles": full.len(), "level0_full_tiles": level0},
            "tile_serving": {
                "clients": a.clients,
                "seconds": wall,
                "answered": answered,
                "requests_per_second": answered as f64 / wall,
                "latency": crate::bench_audit::summary(samples),
                "target_requests_per_second": 20_000,
                "target_p99_ms": 5,
            },
            "verify": verify,
        }))?
    );
    Ok(ExitCode::SUCCESS)
}

/// One client: random full tiles until `deadline`; every answer must be a 200 of a full tile.
fn client(url: &str, full: &[String], seed: u64, deadline: Instant) -> Result<(u64, Vec<u64>)> {
    let mut conn = Conn::new(url)?;
    let mut rng = DemoRng::new(seed);
    let (mut n, mut samples) = (0u64, Vec::new());
    let tile_bytes = TILE_WIDTH as usize * 32;
    while Instant::now() < deadline {
        let path = &full[rng.below(full.len() as u64) as usize];
        let t = Instant::now();
        let r = conn.get(path)?;
        let us = t.elapsed().as_micros() as u64;
        if r.status != 200 || r.body.len() != tile_bytes {
            bail!("GET {path}: HTTP {} with {} bytes", r.status, r.body.len());
        }
        n += 1;
        if samples.len() < SAMPLES_PER_CLIENT_MAX {
            samples.push(us);
        }
    }
    Ok((n, samples))
}

/// Runs this executable with `args`; its stdout must be one JSON object and its exit 0.
fn credence_json(args: &[&str]) -> Result<Value> {
    let out = Command::new(std::env::current_exe()?).args(args).stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        bail!("credence {}: {}\n{}", args.join(" "), out.status, String::from_utf8_lossy(&out.stdout));
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("credence {}: not one JSON object", args.join(" ")))
}

/// Bytes of the files under `dir` (the mirror's size on disk, roughly).
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}
