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
//!
//! Signed reads: if the data directory holds `keys/officer.access` (written by
//! `credence generate --access-keys`, with the bank's consent of every enterprise), the same
//! enterprise listings are also read as restricted reads (`?purpose=loan-application`),
//! signed per RFC 9421 with the officer's key, from a second server over the same store
//! that works as a member's node does: each request's signature, key grant and replay
//! window are checked, its consent looked up, and a query record signed by the bank's key
//! and queued to the mempool (nothing commits it here). The unsigned reads come from the
//! offline server, which serves the directory's holder everything; the difference of the
//! two is what signing, access checks and logging add to a read.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use credence_ledger::access::{AccessKeyGrant, Consent, FactKind, Purpose, Scope};
use credence_ledger::attestation::Claim;
use credence_ledger::demo::{ChainBuilder, DemoRng};
use credence_ledger::genesis::Genesis;
use credence_ledger::hash::Hash;
use credence_ledger::ids::{MemberName, Uscc};
use credence_ledger::merkle;
use credence_ledger::sig::SecretKey;
use credence_ledger::store::{RedbOptions, RedbStore, Store};
use credence_node::api::query_log::Signer;
use credence_node::api::{self, StoreView};
use credence_node::bundle::Bundle;
use credence_node::keyfile;
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
pub(crate) fn summary(mut samples_us: Vec<u64>) -> serde_json::Value {
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
        let b = Bundle::new(&genesis, &leaf.bytes, index, &path, &cp, &[], Vec::new())?;
        let f = dir.join(format!("bundle-{i}.json"));
        std::fs::write(&f, b.to_json())?;
        bundle_files.push(f);
    }

    let store = Arc::new(RwLock::new(store));
    let local = crate::local::serve_shared(genesis.clone(), store.clone(), None)?;
    let mut conn = Conn::new(&local.url)?;
    // Warm-up: the first requests pay for connection setup and cold caches.
    time_gets(&mut conn, &enterprise_paths[..enterprise_paths.len().min(50)])?;
    let enterprise = time_gets(&mut conn, &enterprise_paths)?;
    let proofs = time_gets(&mut conn, &proof_paths)?;
    drop(local);

    let officer_file = a.data_dir.join("keys").join(OFFICER_KEY_FILE);
    let signed = if officer_file.is_file() {
        let officer = keyfile::read_access_key(&officer_file, None).context("keys/officer.access")?;
        let bank_file = a.data_dir.join("keys").join(format!("{OFFICER_MEMBER}.key"));
        let none = crate::keys::PassphraseArgs { passphrase_env: None, passphrase_file: None };
        let bank_key = crate::keys::read_key(&bank_file, &none)?;
        let name = MemberName::parse("member", OFFICER_MEMBER).map_err(|e| anyhow::anyhow!("{e}"))?;
        let local = crate::local::serve_shared(genesis, store, Some(Signer { name, key: bank_key }))?;
        let mut conn = Conn::new(&local.url)?.with_access(Some(officer));
        let paths: Vec<String> = enterprise_paths.iter().map(|p| format!("{p}?purpose=loan-application")).collect();
        time_gets(&mut conn, &paths[..paths.len().min(50)])?;
        let samples = time_gets(&mut conn, &paths)?;
        drop(local);
        Some(samples)
    } else {
        None
    };

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

    let p99 = |s: &[u64]| {
        let mut s = s.to_vec();
        s.sort_unstable();
        crate::load::percentile(&s, 99.0).unwrap_or(0) as f64 / 1000.0
    };
    let signed = signed.map(|s| {
        let added = p99(&s) - p99(&enterprise);
        json!({"latency": summary(s), "p99_added_ms": (added * 100.0).round() / 100.0, "target_p99_added_ms": 1})
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "ledger": {"height": head.height, "tree_size": head.tree_size},
            "enterprise_attestations": {"page_items": api::PAGE_LIMIT_DEFAULT, "latency": summary(enterprise), "target_p99_ms": 20},
            "enterprise_attestations_signed_restricted": signed,
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

/// The access-key file `credence generate --access-keys` writes into `keys/`.
pub(crate) const OFFICER_KEY_FILE: &str = "officer.access";
/// The member whose loan officer holds that key, and who holds the consents.
pub(crate) const OFFICER_MEMBER: &str = "bank-icbc-sz";
/// The officer key's lifetime from its block, in days.
const OFFICER_KEY_DAYS: u64 = 30;
/// The consents' lifetime from their block, in days.
const CONSENT_DAYS: u64 = 365;
const DAY_MS: u64 = 86_400_000;

/// `generate --access-keys`: after the chain, a block with an access key of a loan officer of
/// [`OFFICER_MEMBER`] (member and restricted scopes), then blocks of that bank's consents of
/// each of `enterprises` (all facts, for loan applications); writes the key to
/// `out/keys/officer.access`. The key's seed follows from `seed`, like the members' keys.
pub(crate) fn append_officer_access(
    builder: &mut ChainBuilder,
    store: &mut RedbStore,
    enterprises: BTreeSet<Uscc>,
    block_records: usize,
    out: &Path,
    seed: u64,
) -> Result<()> {
    let name = MemberName::parse("member", OFFICER_MEMBER).map_err(|e| anyhow::anyhow!("{e}"))?;
    let bank = builder.genesis().member_index(&name).context("the demo genesis has no bank-icbc-sz")?;
    let bank = usize::from(bank);
    let mut key_seed = [0u8; 32];
    key_seed[..8].copy_from_slice(&seed.to_le_bytes());
    key_seed[8..15].copy_from_slice(b"officer");
    let key = SecretKey::from_seed(key_seed);
    let grant = Claim::AccessKey(AccessKeyGrant {
        holder: "loan-officer-bench".into(),
        key: key.public(),
        scopes: vec![Scope::Member, Scope::Restricted],
        expires_at_ms: builder.time_ms() + OFFICER_KEY_DAYS * DAY_MS,
    });
    let vb = builder.next_block_of_over(&*store, vec![(bank, grant)])?;
    let keyid = vb.certified().block.leaves[0].id;
    store.commit(&vb)?;
    let expires_at_ms = builder.time_ms() + CONSENT_DAYS * DAY_MS;
    let consents: Vec<(usize, Claim)> = enterprises
        .into_iter()
        .map(|enterprise| {
            let evidence = Hash::digest(&[b"authorisation of ", enterprise.as_str().as_bytes()]);
            let scope = FactKind::ALL.to_vec();
            let c = Consent {
                enterprise,
                recipient: name.clone(),
                purpose: Purpose::LoanApplication,
                scope,
                expires_at_ms,
                evidence,
            };
            (bank, Claim::Consent(c))
        })
        .collect();
    for chunk in consents.chunks(block_records) {
        let vb = builder.next_block_of_over(&*store, chunk.to_vec())?;
        store.commit(&vb)?;
    }
    let comment =
        format!("Credence access key of {OFFICER_MEMBER}'s bench loan officer (TEST FIXTURE derived from seed {seed})");
    crate::keys::write_private(
        &out.join("keys").join(OFFICER_KEY_FILE),
        &keyfile::access_key_text(&comment, &keyid, &key),
    )?;
    Ok(())
}
