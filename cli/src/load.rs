//! `credence bench load`: a load generator against a real local network of validator processes, measuring committed attestations/s, submit-to-finality latency and each node's peak memory.
//!
//! # Method
//! * The network is `credence testnet`'s (same code, [`node::write_testnet`]) in a
//!   temporary directory (or `--dir`); every node runs as a separate `credence node`
//!   process of this executable. The nodes are stopped with SIGTERM at the end, and also
//!   on any error (a guard's `Drop`); none is left behind.
//! * Every validator is an attester. All records (rd-spend, sequences 1, 2, ... per
//!   attester) are signed on all cores *before* the clock starts, and request bodies are
//!   pre-encoded, so the generator does no signing while measuring.
//! * Batch `j` holds attester `j mod n`'s next records and goes to node `j mod n`: the
//!   batches go round-robin over the nodes, and each member submits through its own node,
//!   which keeps its sequences in order.
//! * `--workers` threads each hold one keep-alive connection per node. Batch `j` is due at
//!   `j · batch / rate` seconds; a worker takes the next batch, waits until it is due and
//!   posts it to `POST /v1/attestations/batch`. At most `workers` batches are in flight, so
//!   the offered rate never exceeds `--rate` (a worker behind schedule sends at once).
//! * A poller reads `GET /v1/status` on node 0 every 50 ms and fetches each new block
//!   (`GET /v1/blocks/{h}` lists its attestation ids). An attestation's commit time is
//!   when the poller first sees its block; its latency is from when its batch was sent.
//!   Accepted attestations not seen committed count as infinitely late in the percentiles.
//! * After the submit window the run drains until every accepted attestation is seen
//!   committed, or for at most 20 s. committed/s counts the attestations of blocks whose
//!   header time lies in the submit window, divided by its length.
//! * Peak RSS is each node's `VmHWM` (`/proc/<pid>/status`) at the end; CPU time from
//!   `/proc/<pid>/stat`.
//!
//! # Bounds
//! At most 5,000,000 records per run (about 300 bytes of request body each, held in
//! memory), batches of at most 1,000 (the API's limit), at most 64 workers, and
//! `workers × batch` at most the nodes' `ahead_max` (4,096) so that records of one
//! attester overtaking each other in flight are held, not refused. Waiting for the
//! network to start: 60 s; drain: 20 s.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use credence_node::runtime::now_ms;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use credence_ledger::attestation::{AttestationBody, AttestationId, Claim, RdCategory, RdSpend};
use credence_ledger::demo::REAL_USCCS;
use credence_ledger::genesis::Genesis;
use credence_ledger::hash::{DigestMap, Hash, HashOf};
use credence_ledger::ids::{Currency, MemberName, Money, Period, Uscc};
use credence_ledger::sig::SecretKey;
use credence_node::config::MempoolConfig;
use credence_node::keyfile;
use serde_json::{Value, json};

use crate::http::{self, Conn};
use crate::node::{self, TestnetLayout};

/// Most records one run signs and holds.
const RECORDS_MAX: u64 = 5_000_000;
/// Most items per batch (the API's `BATCH_ITEMS_MAX`).
const BATCH_MAX: usize = credence_node::api::BATCH_ITEMS_MAX;
const WORKERS_MAX: usize = 64;
/// Longest wait for every node to commit blocks before the run.
const START_MAX: Duration = Duration::from_secs(60);
/// Longest wait after the submit window for accepted records to commit.
const DRAIN_MAX: Duration = Duration::from_secs(20);
/// How often the poller asks node 0 for its height.
const POLL_EVERY: Duration = Duration::from_millis(50);
/// The poller gives up after failing this long in a row.
const POLL_FAILING_MAX: Duration = Duration::from_secs(10);
/// Progress lines on stderr.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
const BATCH_PATH: &str = "/v1/attestations/batch";

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Validators (each runs as its own process and attests).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Length of the submit window.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Most attestations offered per second.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Attestations per `POST /v1/attestations/batch`.
    #[arg(long, default_value_t = 200)]
    batch: usize,
    /// Submitting threads (each with a keep-alive connection per node).
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Directory for the testnet (kept); default: a temporary one, removed after a successful run.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// First port: node i uses base+i (p2p) and base+1000+i (API).
    #[arg(long, default_value_t = 27_000)]
    base_port: u16,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(a: &LoadArgs) -> Result<ExitCode> {
    let records = a.rate.saturating_mul(a.seconds);
    if a.seconds == 0 || a.rate == 0 || records > RECORDS_MAX {
        bail!("--rate × --seconds: must be between 1 and {RECORDS_MAX} records (got {records})");
    }
    if a.batch == 0 || a.batch > BATCH_MAX {
        bail!("--batch: must be between 1 and {BATCH_MAX}");
    }
    if a.workers == 0 || a.workers > WORKERS_MAX {
        bail!("--workers: must be between 1 and {WORKERS_MAX}");
    }
    let ahead_max = u64::from(MempoolConfig::default().ahead_max);
    if (a.workers * a.batch) as u64 > ahead_max {
        bail!("--workers × --batch: at most the nodes' mempool ahead_max ({ahead_max}) records in flight");
    }
    let (dir, temporary) = match &a.dir {
        Some(d) => (d.clone(), false),
        None => (std::env::temp_dir().join(format!("credence-bench-load-{}", std::process::id())), true),
    };
    let result = bench(a, &dir, records as usize);
    match &result {
        Ok(_) if temporary => {
            let _ = fs::remove_dir_all(&dir);
        }
        Ok(_) => {}
        Err(_) => eprintln!("testnet files and node logs are in {}", dir.display()),
    }
    let report = result?;
    if a.json {
        println!("{report}");
    } else {
        print_table(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn bench(a: &LoadArgs, dir: &Path, records: usize) -> Result<Value> {
    ports_free(a.base_port, a.validators)?;
    let layout = node::write_testnet(dir, a.validators, 0, a.base_port, Some(LOAD_HEARTBEAT_MS))?;
    let apis: Vec<String> = (0..a.validators)
        .map(|i| layout.manifest["nodes"][i]["api"].as_str().map(str::to_string))
        .collect::<Option<_>>()
        .context("testnet.json lacks the nodes' API addresses")?;
    let started = Instant::now();
    let work = sign_all(&layout, a, records)?;
    eprintln!(
        "signed {records} attestations in {} batches in {:.1} s; starting {} nodes",
        work.bodies.len(),
        started.elapsed().as_secs_f64(),
        a.validators
    );
    let mut nodes = Nodes { children: node::start_nodes(&layout)?, names: layout.names.clone(), dir: layout.dir };
    wait_committing(&mut nodes, &apis)?;
    let run = drive(a, &apis, &work, &mut nodes)?;
    nodes.alive()?;
    let usage = nodes.usage();
    drop(nodes);
    Ok(report(a, &work, &run, &usage))
}

/// Refuses to start when a port the testnet needs is taken.
fn ports_free(base: u16, n: usize) -> Result<()> {
    for i in 0..n as u16 {
        for port in [base.saturating_add(i), base.saturating_add(1000 + i)] {
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
                bail!("--base-port: port {port} is in use; choose another base");
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The records
// ---------------------------------------------------------------------------------------------

/// Everything submitted, signed and encoded before the clock starts.
struct Work {
    /// Request bodies, one per batch, in submission order. Batch `j` holds records
    /// `j·batch .. min((j+1)·batch, total)`.
    bodies: Vec<Vec<u8>>,
    batch: usize,
    total: usize,
    /// Record index of each attestation id.
    index: DigestMap<AttestationId, u32>,
}

impl Work {
    fn records(&self, j: usize) -> std::ops::Range<usize> {
        j * self.batch..((j + 1) * self.batch).min(self.total)
    }
}

/// A batch's request body and its records' ids.
type SignedBatch = (Vec<u8>, Vec<AttestationId>);

/// Signs every record on all cores: batch `j` is attester `j mod n`'s records
/// `k·batch + 1 ..` with `k = j div n` (only the last batch can be short, and it is its
/// attester's last, so sequences have no gaps).
fn sign_all(layout: &TestnetLayout, a: &LoadArgs, total: usize) -> Result<Work> {
    let genesis = Genesis::load(&layout.dir.join("genesis.toml"))?;
    let chain_id = genesis.hash();
    let attesters: Vec<(MemberName, SecretKey)> = layout.names[..a.validators]
        .iter()
        .map(|name| {
            let key = keyfile::read(&layout.dir.join(format!("keys/{name}.key")))?;
            Ok((MemberName::parse("member", name)?, key))
        })
        .collect::<Result<_>>()?;
    let usccs: Vec<Uscc> = REAL_USCCS.iter().map(|u| Uscc::parse("enterprise", u)).collect::<Result<_, _>>()?;
    let issued_at_ms = now_ms().saturating_sub(1000);
    let batches = total.div_ceil(a.batch);
    let sign_batch = |j: usize| -> Result<SignedBatch> {
        let (attester, key) = &attesters[j % attesters.len()];
        let first_sequence = (j / attesters.len() * a.batch) as u64 + 1;
        let n = a.batch.min(total - j * a.batch);
        let mut body = String::with_capacity(n * 300 + 32);
        let mut ids = Vec::with_capacity(n);
        body.push_str("{\"attestations\":[");
        for i in 0..n {
            let sequence = first_sequence + i as u64;
            let claim = Claim::RdSpend(RdSpend {
                enterprise: usccs[(sequence % 3) as usize],
                period: Period::new("period", 2000 + (sequence % 25) as u16, (sequence % 5) as u8)?,
                amount: Money { fen: 10_000_000 + sequence, currency: Currency::CNY },
                category: RdCategory::Total,
                evidence: Hash::ZERO,
            });
            let statement = AttestationBody { attester: attester.clone(), sequence, issued_at_ms, claim };
            let signed = statement.sign(key, &chain_id);
            ids.push(signed.id());
            if i > 0 {
                body.push(',');
            }
            body.push('"');
            B64.encode_string(signed.to_bytes(), &mut body);
            body.push('"');
        }
        body.push_str("]}");
        Ok((body.into_bytes(), ids))
    };
    let threads = credence_ledger::sig::available_threads().min(batches).max(1);
    let per_thread = batches.div_ceil(threads);
    let parts: Vec<Result<Vec<SignedBatch>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let sign_batch = &sign_batch;
                s.spawn(move || (t * per_thread..((t + 1) * per_thread).min(batches)).map(sign_batch).collect())
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a signing thread panicked"))))
            .collect()
    });
    let mut work = Work { bodies: Vec::with_capacity(batches), batch: a.batch, total, index: DigestMap::default() };
    work.index.reserve(total);
    for part in parts {
        for (body, ids) in part? {
            for id in ids {
                let i = u32::try_from(work.index.len()).context("too many records")?;
                work.index.insert(id, i);
            }
            work.bodies.push(body);
        }
    }
    if work.index.len() != total {
        bail!("signed {} distinct records, expected {total}", work.index.len());
    }
    Ok(work)
}

// ---------------------------------------------------------------------------------------------
// The nodes
// ---------------------------------------------------------------------------------------------

/// The running node processes; stopped (SIGTERM, then SIGKILL after 10 s) when dropped.
struct Nodes {
    children: Vec<Child>,
    names: Vec<String>,
    dir: PathBuf,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        node::stop_nodes(&mut self.children);
    }
}

/// A node's resource use as the kernel reports it.
#[derive(Debug, Default)]
struct Usage {
    peak_rss_kib: Option<u64>,
    rss_kib: Option<u64>,
    cpu_seconds: Option<f64>,
}

impl Nodes {
    /// An error naming the first node that has exited.
    fn alive(&mut self) -> Result<()> {
        for (child, name) in self.children.iter_mut().zip(&self.names) {
            if let Ok(Some(status)) = child.try_wait() {
                bail!("{name} exited ({status}); see {}", self.dir.join(name).join("node.log").display());
            }
        }
        Ok(())
    }

    fn usage(&self) -> Vec<Usage> {
        self.children.iter().map(|c| usage(c.id())).collect()
    }
}

fn usage(pid: u32) -> Usage {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    // Fields 14 and 15 of /proc/<pid>/stat (utime, stime) in clock ticks (100 a second on Linux),
    // counted after the parenthesised command name.
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let cpu_seconds = stat.rsplit_once(')').and_then(|(_, rest)| {
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        Some((utime + stime) as f64 / 100.0)
    });
    Usage { peak_rss_kib: kib("VmHWM:"), rss_kib: kib("VmRSS:"), cpu_seconds }
}

fn height(api: &str) -> Option<u64> {
    http::get(api, "/v1/status").ok().filter(|r| r.status == 200)?.json().ok()?["height"].as_u64()
}

/// The bench's genesis heartbeat: the warm-up (two blocks before the load starts)
/// would otherwise wait for the default 60 s one; under load every block carries records.
const LOAD_HEARTBEAT_MS: u64 = 1_000;

/// Waits until every node has committed at least two blocks.
fn wait_committing(nodes: &mut Nodes, apis: &[String]) -> Result<()> {
    let deadline = Instant::now() + START_MAX;
    loop {
        nodes.alive()?;
        if apis.iter().all(|api| height(api).is_some_and(|h| h >= 2)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the nodes did not all commit within {} s", START_MAX.as_secs());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// What the workers share.
struct Schedule<'a> {
    work: &'a Work,
    apis: &'a [String],
    t0: Instant,
    window: Duration,
    rate: f64,
    next: AtomicUsize,
    abort: AtomicBool,
    submitted: AtomicU64,
    accepted: AtomicU64,
}

impl Schedule<'_> {
    /// When batch `j` may be sent, from `t0`.
    fn due(&self, j: usize) -> Duration {
        Duration::from_secs_f64((j * self.work.batch) as f64 / self.rate)
    }
}

/// One worker's record of what it sent.
#[derive(Default)]
struct WorkerLog {
    submitted: u64,
    /// (record, µs from t0 when its batch was sent) of every accepted record.
    accepted: Vec<(u32, u64)>,
    /// Refusals by error code (`transport` and `http_<status>` for whole batches).
    refused: BTreeMap<String, u64>,
    /// µs from a batch's send to its answer.
    answer_us: Vec<u64>,
    last_sent_us: u64,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn worker(s: &Schedule<'_>) -> WorkerLog {
    let mut log = WorkerLog::default();
    let mut conns: Vec<Option<Conn>> = s.apis.iter().map(|api| Conn::new(api).ok()).collect();
    let batches = s.work.bodies.len();
    loop {
        let j = s.next.fetch_add(1, Ordering::Relaxed);
        let due = s.due(j);
        if j >= batches || due >= s.window || s.abort.load(Ordering::Relaxed) {
            break;
        }
        let now = s.t0.elapsed();
        if due > now {
            std::thread::sleep(due - now);
        }
        let sent = s.t0.elapsed();
        if sent >= s.window {
            break;
        }
        let records = s.work.records(j);
        let n = records.len() as u64;
        log.submitted += n;
        log.last_sent_us = micros(sent);
        s.submitted.fetch_add(n, Ordering::Relaxed);
        let node = j % s.apis.len();
        let answer = match conns.get_mut(node).and_then(Option::as_mut) {
            Some(conn) => conn.request("POST", BATCH_PATH, Some(&s.work.bodies[j])),
            None => Err(anyhow::anyhow!("no address for node {node}")),
        };
        log.answer_us.push(micros(s.t0.elapsed().saturating_sub(sent)));
        let mut refuse = |code: String, count: u64| *log.refused.entry(code).or_default() += count;
        let results = match answer {
            Ok(r) if r.status == 200 => r.json().ok().and_then(|v| v["results"].as_array().cloned()),
            Ok(r) => {
                refuse(format!("http_{}", r.status), n);
                continue;
            }
            Err(_) => {
                refuse("transport".into(), n);
                continue;
            }
        };
        let Some(results) = results.filter(|r| r.len() == records.len()) else {
            refuse("bad_answer".into(), n);
            continue;
        };
        let mut accepted = 0;
        for (record, result) in records.zip(&results) {
            if result["status"] == "pending" {
                log.accepted.push((record as u32, micros(sent)));
                accepted += 1;
            } else {
                refuse(result["error"]["code"].as_str().unwrap_or("unknown").to_string(), 1);
            }
        }
        s.accepted.fetch_add(accepted, Ordering::Relaxed);
    }
    log
}

/// A block as the poller saw it.
struct BlockSeen {
    time_ms: u64,
    /// Records of this run in it.
    ours: u64,
    records: u64,
}

/// What the poller saw.
struct PollLog {
    blocks: Vec<BlockSeen>,
    /// µs from t0 when each record was first seen committed (`u64::MAX`: never).
    seen_us: Vec<u64>,
}

/// Follows node 0's chain from `from_height`, until `stop`.
fn poll(
    api: &str,
    work: &Work,
    t0: Instant,
    from_height: u64,
    stop: &AtomicBool,
    committed: &AtomicU64,
) -> Result<PollLog> {
    let mut conn = Conn::new(api)?;
    let mut log = PollLog { blocks: Vec::new(), seen_us: vec![u64::MAX; work.total] };
    let mut next = from_height + 1;
    let mut failing_since: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        match poll_once(&mut conn, &mut next, work, t0, &mut log) {
            Ok(ours) => {
                failing_since = None;
                committed.fetch_add(ours, Ordering::Relaxed);
            }
            Err(e) => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() > POLL_FAILING_MAX {
                    return Err(e.context(format!("polling {api} kept failing")));
                }
            }
        }
        std::thread::sleep(POLL_EVERY);
    }
    Ok(log)
}

/// Fetches the blocks committed since the last poll; returns how many of this run's records they hold.
fn poll_once(conn: &mut Conn, next: &mut u64, work: &Work, t0: Instant, log: &mut PollLog) -> Result<u64> {
    let status = conn.get("/v1/status")?.json()?;
    let height = status["height"].as_u64().context("status without a height")?;
    let mut ours_total = 0;
    while *next <= height {
        let r = conn.get(&format!("/v1/blocks/{next}"))?;
        if r.status != 200 {
            bail!("block {next}: HTTP {}", r.status);
        }
        let seen = micros(t0.elapsed());
        let block = r.json()?;
        let ids = block["attestations"].as_array().context("block without attestation ids")?;
        let mut ours = 0;
        for id in ids {
            let Some(id) = id.as_str().and_then(|s| Hash::from_hex("id", s).ok()) else { continue };
            if let Some(&i) = work.index.get(&HashOf::from_hash(id))
                && let Some(slot) = log.seen_us.get_mut(i as usize)
                && *slot == u64::MAX
            {
                *slot = seen;
                ours += 1;
            }
        }
        log.blocks.push(BlockSeen { time_ms: block["time_ms"].as_u64().unwrap_or(0), ours, records: ids.len() as u64 });
        ours_total += ours;
        *next += 1;
    }
    Ok(ours_total)
}

/// What one run measured.
struct Run {
    workers: Vec<WorkerLog>,
    poll: PollLog,
    t0_unix_ms: u64,
    /// From t0 to when the drain ended.
    ended: Duration,
    start_height: u64,
    /// Each node's height, round and mempool when the submit window ended.
    window_end: Vec<Value>,
}

/// A node's height, consensus round and mempool occupancy (`null` if it does not answer).
fn node_state(api: &str) -> Value {
    let Some(s) = http::get(api, "/v1/status").ok().filter(|r| r.status == 200).and_then(|r| r.json().ok()) else {
        return Value::Null;
    };
    json!({
        "height": s["height"],
        "round": s["round"],
        "mempool_records": s["mempool"]["records"],
        "mempool_held": s["mempool"]["held"],
    })
}

fn drive(a: &LoadArgs, apis: &[String], work: &Work, nodes: &mut Nodes) -> Result<Run> {
    let start_height = height(&apis[0]).context("node 0 does not answer")?;
    let t0 = Instant::now();
    let t0_unix_ms = now_ms();
    let schedule = Schedule {
        work,
        apis,
        t0,
        window: Duration::from_secs(a.seconds),
        rate: a.rate as f64,
        next: AtomicUsize::new(0),
        abort: AtomicBool::new(false),
        submitted: AtomicU64::new(0),
        accepted: AtomicU64::new(0),
    };
    let stop_polling = AtomicBool::new(false);
    let committed = AtomicU64::new(0);
    std::thread::scope(|scope| {
        let poller = scope.spawn(|| poll(&apis[0], work, t0, start_height, &stop_polling, &committed));
        let workers: Vec<_> = (0..a.workers).map(|_| scope.spawn(|| worker(&schedule))).collect();
        // Watch the nodes and report progress while the workers submit, then drain.
        let mut last_progress = Instant::now();
        let mut failure = None;
        let mut drain_deadline = None;
        let mut window_end = Vec::new();
        loop {
            std::thread::sleep(Duration::from_millis(100));
            if let Err(e) = nodes.alive() {
                schedule.abort.store(true, Ordering::Relaxed);
                failure = Some(e);
                break;
            }
            let submitting = workers.iter().any(|w| !w.is_finished());
            let accepted = schedule.accepted.load(Ordering::Relaxed);
            let done = committed.load(Ordering::Relaxed);
            if last_progress.elapsed() >= PROGRESS_EVERY {
                last_progress = Instant::now();
                eprintln!(
                    "{:5.1} s  submitted {:>9}  accepted {:>9}  committed {:>9}",
                    t0.elapsed().as_secs_f64(),
                    schedule.submitted.load(Ordering::Relaxed),
                    accepted,
                    done
                );
            }
            if submitting {
                continue;
            }
            if drain_deadline.is_none() {
                window_end = apis.iter().map(|api| node_state(api)).collect();
            }
            let deadline = *drain_deadline.get_or_insert_with(|| t0.elapsed().max(schedule.window) + DRAIN_MAX);
            if done >= accepted || t0.elapsed() >= deadline || poller.is_finished() {
                break;
            }
        }
        stop_polling.store(true, Ordering::Relaxed);
        let ended = t0.elapsed();
        let logs: Vec<WorkerLog> = workers.into_iter().map(|w| w.join().unwrap_or_default()).collect();
        let poll = match poller.join() {
            Ok(r) => r?,
            Err(_) => bail!("the poller panicked"),
        };
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(Run { workers: logs, poll, t0_unix_ms, ended, start_height, window_end })
    })
}

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

/// The `p`-th percentile (0..=100) of sorted values, nearest rank.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

/// Milliseconds for the report; `null` for "never" (`u64::MAX`).
fn ms(us: Option<u64>) -> Value {
    match us {
        Some(us) if us != u64::MAX => json!((us as f64 / 1000.0 * 10.0).round() / 10.0),
        _ => Value::Null,
    }
}

fn report(a: &LoadArgs, work: &Work, run: &Run, usage: &[Usage]) -> Value {
    let submitted: u64 = run.workers.iter().map(|w| w.submitted).sum();
    let mut refused: BTreeMap<String, u64> = BTreeMap::new();
    for w in &run.workers {
        for (code, n) in &w.refused {
            *refused.entry(code.clone()).or_default() += n;
        }
    }
    let mut latencies: Vec<u64> = run
        .workers
        .iter()
        .flat_map(|w| &w.accepted)
        .map(|&(record, sent)| {
            // Never seen committed: infinitely late.
            match run.poll.seen_us.get(record as usize) {
                Some(&seen) if seen != u64::MAX => seen.saturating_sub(sent),
                _ => u64::MAX,
            }
        })
        .collect();
    latencies.sort_unstable();
    let accepted = latencies.len() as u64;
    // Sorted, so the committed ones come first.
    let committed_accepted = latencies.partition_point(|&l| l != u64::MAX);
    let committed = run.poll.seen_us.iter().filter(|&&s| s != u64::MAX).count() as u64;
    let mut answers: Vec<u64> = run.workers.iter().flat_map(|w| w.answer_us.iter().copied()).collect();
    answers.sort_unstable();
    let window_ms = a.seconds * 1000;
    let in_window = |b: &&BlockSeen| b.time_ms >= run.t0_unix_ms && b.time_ms < run.t0_unix_ms + window_ms;
    let window_blocks: Vec<&BlockSeen> = run.poll.blocks.iter().filter(in_window).collect();
    let committed_in_window: u64 = window_blocks.iter().map(|b| b.ours).sum();
    let last_sent_us = run.workers.iter().map(|w| w.last_sent_us).max().unwrap_or(0);
    let seconds = a.seconds as f64;
    let nodes: Vec<Value> = usage
        .iter()
        .enumerate()
        .map(|(i, u)| {
            json!({
                "node": format!("validator-{i}"),
                "peak_rss_mib": u.peak_rss_kib.map(|k| k / 1024),
                "rss_mib": u.rss_kib.map(|k| k / 1024),
                "cpu_seconds": u.cpu_seconds,
                "at_window_end": run.window_end.get(i).cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    json!({
        "validators": a.validators,
        "seconds": a.seconds,
        "rate": a.rate,
        "batch": a.batch,
        "workers": a.workers,
        "records_signed": work.total,
        "submitted": submitted,
        "submitted_per_second": submitted as f64 / seconds,
        "last_batch_sent_s": last_sent_us as f64 / 1e6,
        "accepted": accepted,
        "refused": refused,
        "committed": committed,
        "not_committed": accepted.saturating_sub(committed),
        "run_and_drain_seconds": run.ended.as_secs_f64(),
        "committed_in_window": committed_in_window,
        "committed_per_second": committed_in_window as f64 / seconds,
        "blocks_in_window": window_blocks.len(),
        "mean_block_records": if window_blocks.is_empty() { 0.0 } else {
            window_blocks.iter().map(|b| b.records).sum::<u64>() as f64 / window_blocks.len() as f64
        },
        "start_height": run.start_height,
        "latency_p50_ms": ms(percentile(&latencies, 50.0)),
        "latency_p99_ms": ms(percentile(&latencies, 99.0)),
        "latency_max_ms": ms(latencies.last().copied()),
        "committed_latency_p50_ms": ms(percentile(&latencies[..committed_accepted], 50.0)),
        "committed_latency_p99_ms": ms(percentile(&latencies[..committed_accepted], 99.0)),
        "batch_answer_p50_ms": ms(percentile(&answers, 50.0)),
        "batch_answer_p99_ms": ms(percentile(&answers, 99.0)),
        "nodes": nodes,
    })
}

fn print_table(r: &Value) {
    let num = |k: &str| r[k].as_f64().unwrap_or(0.0);
    let lat = |k: &str| match r[k].as_f64() {
        Some(v) => format!("{v:.0} ms"),
        None => "never (not committed)".to_string(),
    };
    println!(
        "credence bench load: {} validators, {} s at up to {}/s, batches of {}, {} workers",
        r["validators"], r["seconds"], r["rate"], r["batch"], r["workers"]
    );
    println!("submitted              {:>10}   ({:.0}/s)", r["submitted"], num("submitted_per_second"));
    println!("accepted               {:>10}", r["accepted"]);
    println!("refused                {:>10}", r["refused"]);
    println!(
        "committed              {:>10}   ({} not committed after {:.1} s)",
        r["committed"],
        r["not_committed"],
        num("run_and_drain_seconds")
    );
    println!(
        "committed/s            {:>10.0}   ({} blocks in the window, {:.0} records each)",
        num("committed_per_second"),
        r["blocks_in_window"],
        num("mean_block_records")
    );
    println!("latency p50            {:>10}", lat("latency_p50_ms"));
    println!("latency p99            {:>10}", lat("latency_p99_ms"));
    println!(
        "  of those committed    {:>10} / {} (p50 / p99)",
        lat("committed_latency_p50_ms"),
        lat("committed_latency_p99_ms")
    );
    println!("batch answer p50/p99   {:>10} / {}", lat("batch_answer_p50_ms"), lat("batch_answer_p99_ms"));
    for n in r["nodes"].as_array().into_iter().flatten() {
        let end = &n["at_window_end"];
        println!(
            "{:<22} peak RSS {} MiB, RSS {} MiB, CPU {:.1} s; at the window's end: height {}, round {}, mempool {} ({} held)",
            n["node"].as_str().unwrap_or("?"),
            n["peak_rss_mib"],
            n["rss_mib"],
            n["cpu_seconds"].as_f64().unwrap_or(0.0),
            end["height"],
            end["round"],
            end["mempool_records"],
            end["mempool_held"]
        );
    }
}
