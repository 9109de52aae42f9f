//! `credence bench audit`: latency of the auditor's reads on a stored ledger — enterprise listings and inclusion proofs over HTTP, and `credence verify-bundle` as a whole process.
//!
//! Method (results in docs/BENCHMARKS.md): the store of `--data-dir` is served by the node's
//! own API code (`credence_node::api::serve` through [`crate::local`], default bounds,
//! default redb cache) on a loopback port inside this process; one client on one keep-alive connection sends the
//! requests one after another, so each latency is one request's full HTTP round trip.
//! Subjects are drawn from random leaves of the ledger (seeded, so runs are comparable):
//! the enterprise a leaf is about (busy enterprises are drawn as often as they occur), and
//! the leaf's own id for the proof. Bundles are written for random leaves, then
//! `credence verify-bundle` is started once per bundle and timed from spawn to exit.

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use credence_ledger::demo::DemoRng;
use credence_ledger::genesis::Genesis;
use credence_ledger::merkle;
use credence_ledger::store::{RedbOptions, RedbStore, Store};
use credence_node::api::{self, StoreView};
use credence_node::bundle::Bundle;
use serde_json::json;

use crate::http::Conn;

#[derive(Args, Debug)]
pub struct AuditBenchArgs {
    /// A data directory holding genesis.toml and ledger.redb (e.g. from `credence generate`).
    #[arg(long)]
    data_dir: PathBuf,
    /// Requests per endpoint.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// `verify-bundle` processes to time.
    #[arg(long, default_value_t = 50)]
    bundles: usize,
    /// Seed for the random leaves.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

/// p50, p90, p99 and max of `samples_us` (microseconds), in milliseconds with two decimals.
fn summary(mut samples_us: Vec<u64>) -> serde_json::Value {
    samples_us.sort_unstable();
    let ms = |p: f64| crate::load::percentile(&samples_us, p).map(|us| (us as f64 / 10.0).round() / 100.0);
    json!({ "n": samples_us.len(), "p50_ms": ms(50.0), "p90_ms": ms(90.0), "p99_ms": ms(99.0), "max_ms": ms(100.0) })
}

/// Times `paths` one after another on one connection; every answer must be 200.
fn time_gets(conn: &mut Conn, paths: &[String]) -> Result<Vec<u64>> {
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        let t = Instant::now();
        let r = conn.get(p)?;
        out.push(t.elapsed().as_micros() as u64);
        if r.status != 200 {
            bail!("GET {p}: HTTP {}: {}", r.status, r.text());
        }
    }
    Ok(out)
}

pub fn run(a: &AuditBenchArgs) -> Result<ExitCode> {
    if a.requests == 0 || a.bundles == 0 {
        bail!("--requests and --bundles: must be at least 1");
    }
    let genesis_path = a.data_dir.join("genesis.toml");
    let genesis = Genesis::load(&genesis_path)?;
    let store = RedbStore::open_with(&a.data_dir.join("ledger.redb"), &genesis, RedbOptions::default())
        .with_context(|| format!("--data-dir: {}", a.data_dir.display()))?;
    let Some(head) = store.head()? else { bail!("--data-dir: the ledger is empty") };

    // Subjects from random leaves.
    let mut rng = DemoRng::new(a.seed);
    let mut enterprise_paths = Vec::with_capacity(a.requests);
    let mut proof_paths = Vec::with_capacity(a.requests);
    while enterprise_paths.len() < a.requests || proof_paths.len() < a.requests {
        let index = rng.below(head.tree_size);
        let leaf = store.leaf(index)?.with_context(|| format!("store: leaf {index} is missing"))?;
        if let (Some(e), true) = (leaf.attestation.body.claim.enterprise(), enterprise_paths.len() < a.requests) {
            enterprise_paths.push(format!("/v1/enterprises/{e}/attestations"));
        }
        if proof_paths.len() < a.requests {
            proof_paths.push(format!("/v1/proofs/inclusion/{}", leaf.id));
        }
    }

    // Bundles for random leaves, against the head's checkpoint.
    let dir = tempfile_dir()?;
    let cp = store.certificate(head.height)?.context("store: head certificate is missing")?;
    let mut bundle_files = Vec::with_capacity(a.bundles);
    for i in 0..a.bundles {
        let index = rng.below(head.tree_size);
        let leaf = store.leaf(index)?.with_context(|| format!("store: leaf {index} is missing"))?;
        let path = merkle::inclusion_proof(index, head.tree_size, &StoreView(&store))?;
        let b = Bundle::new(&genesis, &leaf.bytes, index, &path, &cp, &[])?;
        let f = dir.join(format!("bundle-{i}.json"));
        std::fs::write(&f, b.to_json())?;
        bundle_files.push(f);
    }

    let local = crate::local::serve_store(genesis, store)?;
    let mut conn = Conn::new(&local.url)?;
    // Warm-up: the first requests pay for connection setup and cold caches.
    time_gets(&mut conn, &enterprise_paths[..enterprise_paths.len().min(50)])?;
    let enterprise = time_gets(&mut conn, &enterprise_paths)?;
    let proofs = time_gets(&mut conn, &proof_paths)?;
    drop(local);

    let exe = std::env::current_exe()?;
    let mut verify = Vec::with_capacity(bundle_files.len());
    for f in &bundle_files {
        let t = Instant::now();
        let status = Command::new(&exe)
            .arg("verify-bundle")
            .arg(f)
            .arg("--genesis")
            .arg(&genesis_path)
            .stdout(Stdio::null())
            .status()?;
        verify.push(t.elapsed().as_micros() as u64);
        if !status.success() {
            bail!("verify-bundle {} failed: {status}", f.display());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "ledger": {"height": head.height, "tree_size": head.tree_size},
            "enterprise_attestations": {"page_items": api::PAGE_LIMIT_DEFAULT, "latency": summary(enterprise), "target_p99_ms": 20},
            "inclusion_proof": {"latency": summary(proofs), "target_p99_ms": 5},
            "verify_bundle_process": {"latency": summary(verify), "target_ms": 50},
        }))?
    );
    Ok(ExitCode::SUCCESS)
}

fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("credence-bench-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
