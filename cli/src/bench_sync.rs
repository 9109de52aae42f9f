//! `credence bench sync`: catch-up of a fresh node from 1..=3 serving node processes on a stored ledger, against the ed25519 batch ceiling measured in the same run (docs/BENCHMARKS.md §Catch-up).
//!
//! From a data directory of `credence generate` (genesis.toml, keys/, ledger.redb):
//!
//! 1. **Ceilings** first, on a quiet machine: dalek's distinct-key batch ceiling and the
//!    same-signers ceiling ([`crate::ceiling`]).
//! 2. **Profile** (`--profile-blocks`, in this process, one phase at a time over the
//!    chain's first blocks, with the node's own code): a server's read and encoding, the
//!    decode, the signatures checked ahead (all cores), the rules (links, Merkle root,
//!    certificate quorum, ledger rules), and the commit into a fresh store two ways: one
//!    durable transaction per block (what sync did before) and deferred commits with one
//!    flush per run of [`PROFILE_RUN_BLOCKS`].
//! 3. **Catch-up**: `--peers` serving nodes (the genesis's non-validating members, so no
//!    quorum forms and the tip stays put; each on its own copy of the ledger) are started
//!    and waited for (each re-verifies its store at start, outside the figure). Then a
//!    fresh node (a validator's key, alone: no quorum either) with an empty store is
//!    started; the time runs from its process start to its API reporting the servers'
//!    tip. Its peak RSS is `VmHWM` (`/proc/<pid>/status`) at the tip; its sync counters
//!    (fetch, check and apply seconds, summed over overlapping answers) come from `/metrics`.
//!
//! Loopback ports: p2p `--base-port + i`, API `--base-port + 100 + i` (i = 0 is the fresh
//! node), below 30,800. The work directory (copies of the ledger) is removed at the end
//! unless `--work-dir` names one.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use credence_ledger::block::{self, CertifiedBlock};
use credence_ledger::genesis::Genesis;
use credence_ledger::store::{RedbOptions, RedbStore, Store};
use credence_ledger::verify::{self, Ahead, ChainContext, Tip};
use serde_json::json;

/// Most serving nodes: the demo genesis has three non-validating members.
pub const PEERS_MAX: usize = 3;
/// Highest port the bench may use (the shared loopback scheme stays below 30,800).
pub const PORT_MAX: u16 = 30_799;
/// Blocks per flush in the profile's deferred-commit phase (about one sync answer).
pub const PROFILE_RUN_BLOCKS: usize = 16;
/// How long the servers may take to start (each re-verifies its copy of the ledger).
pub const SERVERS_START_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the fresh node may take to reach the tip.
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(1_800);
/// How often the fresh node's height and memory are read.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

#[derive(Args, Debug)]
pub struct SyncBenchArgs {
    /// A data directory from `credence generate` (genesis.toml, keys/, ledger.redb).
    #[arg(long)]
    data_dir: PathBuf,
    /// Serving nodes (1..=3), each on a copy of the ledger.
    #[arg(long, default_value_t = 3)]
    peers: usize,
    /// Seconds spent measuring each ceiling.
    #[arg(long, default_value_t = 5.0)]
    ceiling_seconds: f64,
    /// Blocks of the chain the in-process profile runs over (0: no profile).
    #[arg(long, default_value_t = 200)]
    profile_blocks: u64,
    /// First loopback port: node i uses base+i (p2p) and base+100+i (API); i = 0 is the fresh node.
    #[arg(long, default_value_t = 29_600)]
    base_port: u16,
    /// Directory for the nodes (kept); default: a temporary one, removed at the end.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Run the nodes with this `credence` binary instead of this one (e.g. an older build,
    /// for a before/after figure on the same machine and chain).
    #[arg(long)]
    node_exe: Option<PathBuf>,
}

pub fn run(a: &SyncBenchArgs) -> Result<ExitCode> {
    if a.peers == 0 || a.peers > PEERS_MAX {
        bail!("--peers: must be between 1 and {PEERS_MAX}");
    }
    if usize::from(a.base_port) + 100 + a.peers > usize::from(PORT_MAX) {
        bail!("--base-port: ports must stay below {}", PORT_MAX + 1);
    }
    let genesis_path = fs::canonicalize(a.data_dir.join("genesis.toml"))
        .with_context(|| format!("--data-dir: no genesis.toml in {}", a.data_dir.display()))?;
    let genesis = Genesis::load(&genesis_path)?;
    let servers: Vec<String> =
        genesis.members.iter().filter(|m| !m.validator).map(|m| m.name.to_string()).take(a.peers).collect();
    if servers.len() < a.peers {
        bail!("--peers: the genesis has only {} non-validating members to serve", servers.len());
    }
    let Some(fresh) = genesis.members.iter().find(|m| m.validator).map(|m| m.name.to_string()) else {
        bail!("--data-dir: the genesis has no validator");
    };
    let (head_height, records) = {
        let (_, store) = crate::chain::load_data_dir(&a.data_dir)?;
        let Some(head) = store.head()? else { bail!("--data-dir: the ledger is empty") };
        (head.height, head.tree_size)
    };
    for i in 0..=a.peers as u16 {
        for port in [a.base_port + i, a.base_port + 100 + i] {
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
                bail!("--base-port: port {port} is in use; choose another base");
            }
        }
    }

    eprintln!("measuring the ceilings ({} s each)", a.ceiling_seconds);
    let load_before = load_average();
    let ceiling = crate::ceiling::dalek_batch_ceiling(a.ceiling_seconds);
    let signers = genesis.members.len();
    let same = crate::ceiling::same_signers_ceiling(signers, a.ceiling_seconds);
    let (work, temporary) = match &a.work_dir {
        Some(d) => (d.clone(), false),
        None => (std::env::temp_dir().join(format!("credence-bench-sync-{}", std::process::id())), true),
    };
    fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let work = fs::canonicalize(&work)?;
    let result = (|| {
        let profile = if a.profile_blocks > 0 {
            eprintln!("profiling the first {} blocks in this process", a.profile_blocks.min(head_height));
            let dir = work.join("profile");
            fs::create_dir_all(&dir)?;
            let p = profile(&a.data_dir, &genesis, a.profile_blocks.min(head_height), &dir)?;
            fs::remove_dir_all(&dir)?;
            Some(p)
        } else {
            None
        };
        Ok::<_, anyhow::Error>((profile, catch_up(a, &genesis_path, &work, &servers, &fresh, head_height)?))
    })();
    if temporary {
        let _ = fs::remove_dir_all(&work);
    }
    let (profile, run) = result?;
    let rate = records as f64 / run.seconds;
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "records": records,
            "blocks": head_height,
            "peers": a.peers,
            "node_exe": a.node_exe.as_ref().map(|p| p.display().to_string()),
            "threads": credence_ledger::sig::available_threads(),
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "ceiling_signatures_per_second": ceiling,
            "same_signers_ceiling_signatures_per_second": same.best(),
            "catch_up_seconds": run.seconds,
            "first_block_seconds": run.first_block_seconds,
            "catch_up_attestations_per_second": rate,
            "ratio": rate / ceiling,
            "ratio_same_signers": rate / same.best(),
            "after_first_block_attestations_per_second": records as f64 / (run.seconds - run.first_block_seconds).max(1e-9),
            "fresh_node_peak_rss_mib": run.peak_rss_kib as f64 / 1024.0,
            "fresh_node_sync_seconds": run.sync_seconds,
            "catch_up_cpu_seconds": run.cpu_seconds,
            "profile": profile,
        }))?
    );
    Ok(ExitCode::SUCCESS)
}

/// The catch-up run's figures.
struct CatchUp {
    seconds: f64,
    first_block_seconds: f64,
    peak_rss_kib: u64,
    sync_seconds: serde_json::Value,
    /// CPU seconds of the fresh node and of the serving nodes over the catch-up, and their
    /// share of the machine's cores over that time.
    cpu_seconds: serde_json::Value,
}

/// Node processes, stopped (SIGTERM, then SIGKILL) when dropped.
struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        crate::node::stop_nodes(&mut self.0);
    }
}

fn catch_up(
    a: &SyncBenchArgs,
    genesis_path: &Path,
    work: &Path,
    servers: &[String],
    fresh: &str,
    head_height: u64,
) -> Result<CatchUp> {
    let keys = fs::canonicalize(a.data_dir.join("keys"))?;
    let p2p = |i: usize| std::net::SocketAddr::from(([127, 0, 0, 1], a.base_port + i as u16));
    let api = |i: usize| std::net::SocketAddr::from(([127, 0, 0, 1], a.base_port + 100 + i as u16));
    let names: Vec<&str> = std::iter::once(fresh).chain(servers.iter().map(String::as_str)).collect();
    let mut configs = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let dir = work.join(format!("node-{i}"));
        fs::create_dir_all(dir.join("data"))?;
        if i > 0 {
            eprintln!("copying the ledger for {name}");
            fs::copy(a.data_dir.join("ledger.redb"), dir.join("data/ledger.redb"))
                .with_context(|| format!("cannot copy the ledger into {}", dir.display()))?;
        }
        let config = crate::node::local_node_config(
            dir.join("data"),
            genesis_path.to_path_buf(),
            keys.join(format!("{name}.key")),
            p2p(i),
            (0..names.len()).filter(|j| *j != i).map(p2p).collect(),
            api(i),
        );
        let path = dir.join("node.toml");
        fs::write(&path, config.to_toml(&dir))?;
        configs.push((dir, path));
    }
    let start = |i: usize| -> Result<Child> {
        let (dir, config) = &configs[i];
        let log = fs::File::create(dir.join("node.log"))?;
        let exe = match &a.node_exe {
            Some(p) => p.clone(),
            None => std::env::current_exe()?,
        };
        Command::new(exe)
            .args(["node", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", names[i]))
    };
    let mut nodes = Nodes(Vec::new());
    for i in 1..names.len() {
        nodes.0.push(start(i)?);
    }
    eprintln!("waiting for {} serving nodes (each re-verifies its ledger)", servers.len());
    let started = Instant::now();
    for (i, name) in names.iter().enumerate().skip(1) {
        let url = format!("http://{}", api(i));
        while status_height(&url) != Some(head_height) {
            if started.elapsed() > SERVERS_START_TIMEOUT {
                bail!("{name} did not serve height {head_height} within {SERVERS_START_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    eprintln!("servers up after {:.1} s; starting the fresh node", started.elapsed().as_secs_f64());
    let url = format!("http://{}", api(0));
    let cpu_of = |children: &[Child]| children.iter().filter_map(|c| crate::load::cpu_seconds(c.id())).sum::<f64>();
    let servers_cpu_before = cpu_of(&nodes.0);
    let t0 = Instant::now();
    let child = start(0)?;
    let pid = child.id();
    nodes.0.push(child);
    let mut first_block = None;
    let mut peak_rss_kib = 0;
    loop {
        peak_rss_kib = peak_rss_kib.max(proc_status_kib(pid, "VmHWM:").unwrap_or(0));
        let h = status_height(&url).unwrap_or(0);
        if h > 0 && first_block.is_none() {
            first_block = Some(t0.elapsed().as_secs_f64());
        }
        if h >= head_height {
            break;
        }
        if t0.elapsed() > CATCH_UP_TIMEOUT {
            bail!("the fresh node reached only height {h} of {head_height} in {CATCH_UP_TIMEOUT:?}");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    let seconds = t0.elapsed().as_secs_f64();
    let fresh_cpu = crate::load::cpu_seconds(pid).unwrap_or(f64::NAN);
    // `nodes` now holds the fresh node too: take its part out of the sum.
    let servers_cpu = cpu_of(&nodes.0) - fresh_cpu - servers_cpu_before;
    peak_rss_kib = peak_rss_kib.max(proc_status_kib(pid, "VmHWM:").unwrap_or(0));
    let metrics = crate::http::get(&url, "/metrics").map(|r| r.text()).unwrap_or_default();
    let metric =
        |name: &str| metrics.lines().find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok()).unwrap_or(f64::NAN);
    let sync_seconds = json!({
        "fetch": metric("credence_sync_fetch_seconds_total "),
        "check_signatures": metric("credence_sync_check_seconds_total "),
        "apply_and_commit": metric("credence_sync_apply_seconds_total "),
        "blocks": metric("credence_synced_blocks_total "),
    });
    let cores = credence_ledger::sig::available_threads() as f64;
    let cpu_seconds = json!({
        "fresh_node": fresh_cpu,
        "servers": servers_cpu,
        "share_of_machine": (fresh_cpu + servers_cpu) / (seconds * cores),
    });
    drop(nodes);
    Ok(CatchUp {
        seconds,
        first_block_seconds: first_block.unwrap_or(seconds),
        peak_rss_kib,
        sync_seconds,
        cpu_seconds,
    })
}

/// The height a node's `/v1/status` reports, if it answers.
fn status_height(url: &str) -> Option<u64> {
    crate::http::get(url, "/v1/status").ok()?.json().ok()?["height"].as_u64()
}

/// A `/proc/<pid>/status` field in KiB (Linux).
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok())
}

/// The 1-minute load average (Linux), as `uptime` shows it.
fn load_average() -> Option<f64> {
    fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// Seconds per phase over the chain's first `blocks` blocks, with the node's code, one
/// phase at a time (so each has the machine to itself), per 1,000 records.
fn profile(data_dir: &Path, genesis: &Genesis, blocks: u64, dir: &Path) -> Result<serde_json::Value> {
    let (_, source) = crate::chain::load_data_dir(data_dir)?;
    let ctx = ChainContext::new(genesis.clone());
    let records_max = genesis.consensus.block_records_max as usize;
    let timed = |f: &mut dyn FnMut() -> Result<()>| -> Result<f64> {
        let t = Instant::now();
        f()?;
        Ok(t.elapsed().as_secs_f64())
    };
    // Serving: read and encode, as the sync server does.
    let mut encoded = Vec::new();
    let serve = timed(&mut || {
        for h in 1..=blocks {
            let cb = source.block(h)?.with_context(|| format!("block {h} missing"))?;
            let mut buf = Vec::new();
            block::encode_certified(&cb, &mut buf);
            encoded.push(buf);
        }
        Ok(())
    })?;
    drop(source);
    let mut decoded: Vec<CertifiedBlock> = Vec::new();
    let decode = timed(&mut || {
        for b in &encoded {
            decoded.push(block::decode_certified_exact(b, records_max)?);
        }
        Ok(())
    })?;
    let records: u64 = decoded.iter().map(|cb| cb.block.leaves.len() as u64).sum();
    let roster = std::sync::Arc::clone(ctx.genesis_roster());
    let mut ahead: Vec<Ahead> = Vec::new();
    let signatures = timed(&mut || {
        for cb in decoded.drain(..) {
            ahead.push(verify::check_signatures_ahead(&ctx, &roster, cb, ctx.threads));
        }
        Ok(())
    })?;
    let unchecked = ahead.iter().filter(|a| matches!(a, Ahead::Unchecked(_))).count();
    // Rules, then the commit, into fresh stores: durable per block, then deferred in runs.
    let mut phases = Vec::new();
    for (name, run) in [("durable_per_block", 1usize), ("deferred_runs", PROFILE_RUN_BLOCKS)] {
        let mut store = RedbStore::open_with(&dir.join(format!("{name}.redb")), genesis, RedbOptions::default())?;
        let mut tip = Tip::genesis(&ctx);
        let (mut rules, mut commit, mut flush) = (0.0, 0.0, 0.0);
        for (i, cb) in encoded.iter().enumerate() {
            let cb = block::decode_certified_exact(cb, records_max)?;
            let a = verify::check_signatures_ahead(&ctx, &roster, cb, ctx.threads);
            let t = Instant::now();
            let vb = verify::verify_signatures_checked(&ctx, &tip, &store, a).map_err(|e| anyhow::anyhow!("{e}"))?;
            rules += t.elapsed().as_secs_f64();
            let t = Instant::now();
            if run == 1 {
                store.commit(&vb)?;
            } else {
                store.commit_deferred(&vb)?;
            }
            commit += t.elapsed().as_secs_f64();
            if run > 1 && ((i + 1) % run == 0 || i + 1 == encoded.len()) {
                let t = Instant::now();
                store.flush()?;
                flush += t.elapsed().as_secs_f64();
            }
            tip.advance(&vb);
        }
        phases.push((name, rules, commit, flush));
    }
    let per_k = |s: f64| s / (records.max(1) as f64 / 1_000.0) * 1_000.0;
    let (_, rules, durable, _) = phases[0];
    let (_, _, deferred, flush) = phases[1];
    Ok(json!({
        "blocks": blocks,
        "records": records,
        "signatures_left_unchecked": unchecked,
        "ms_per_1000_records": {
            "serve_read_and_encode": per_k(serve),
            "decode": per_k(decode),
            "signatures_all_cores": per_k(signatures),
            "rules_merkle_certificate_quorum": per_k(rules),
            "commit_durable_per_block": per_k(durable),
            "commit_deferred": per_k(deferred),
            "flush_per_run": per_k(flush),
        },
        "run_blocks": PROFILE_RUN_BLOCKS,
    }))
}
