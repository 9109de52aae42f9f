//! `credence bench load`: a load generator against a real local network of validator processes, measuring committed attestations/s, submit-to-finality latency and each node's peak memory.
//!
//! # Method
//! * The network is `credence testnet`'s (same code, [`node::write_testnet`]) in a
//!   temporary directory (or `--dir`); every node runs as a separate `credence node`
//!   process of this executable. The nodes are stopped with SIGTERM at the end, and also
//!   on any error (a guard's `Drop`); none is left behind.
//! * Every validator is an attester (but the reading ones, below; with `--set-changes` none:
//!   members without a node attest instead, below). All records (rd-spend,
//!   consecutive sequences per attester from its next one) are signed and base64-encoded on
//!   all cores once the nodes run and *before* the clock starts, so the generator does no
//!   signing while measuring (a request body is the records' strings joined).
//! * Batch `j` holds attester `j mod n`'s next records and goes to node `j mod n`: the
//!   batches go round-robin over the nodes, and each member submits through its own node,
//!   which keeps its sequences in order.
//! * `--workers` threads each hold one keep-alive connection per node. Batch `j` is due at
//!   `j · batch / rate` seconds; a worker takes the next batch, waits until it is due and
//!   posts it to `POST /v1/attestations/batch`. At most `workers` batches are in flight, so
//!   the offered rate never exceeds `--rate` (a worker behind schedule sends at once).
//!   With `--burst-rate R --burst-seconds S` the first S seconds offer R/s instead: an
//!   overload, after which the report tells when latency was back to normal.
//! * Refusals a client should retry are retried, as a well-behaved client does: records
//!   refused `mempool_full` or as too far ahead of their attester's sequence (`R004`,
//!   behind an earlier refusal), and whole batches answered 429, 503 or not at all, go
//!   back to the same node after a back-off doubling from [`RETRY_FIRST`] to
//!   [`RETRY_LONGEST`], at most [`RETRY_ATTEMPTS`] times; due retries go before new
//!   batches. A record's latency counts from its first sending.
//! * A poller reads `GET /v1/status` on node 0 every 50 ms and fetches each new block
//!   (`GET /v1/blocks/{h}` lists its attestation ids). An attestation's commit time is
//!   when the poller first sees its block; its latency is from when its batch was sent.
//!   Accepted attestations not seen committed count as infinitely late in the percentiles.
//! * After the submit window the run drains until every accepted attestation is seen
//!   committed, or for at most 20 s. committed/s counts the attestations of blocks whose
//!   header time lies in the submit window, divided by its length. The gaps between
//!   consecutive blocks' header times in the window (p99 and longest) show the stalls a
//!   rate hides: a commit that holds the driver delays the next proposal.
//! * Peak RSS is each node's `VmHWM` (`/proc/<pid>/status`) at the end; CPU time from
//!   `/proc/<pid>/stat`.
//! * With `--reads-per-second R` (issue 12's query-log figure) the testnet's access keys are
//!   provisioned first as `credence testnet --start` does (each member's key with the
//!   restricted scope, each member's consent for [`node::TESTNET_ENTERPRISE`]; their records
//!   commit before the window, and the load's records are signed after them, from each
//!   attester's next sequence). A node signs the query records of the reads it serves with its
//!   member's key, taking that member's next sequences, so the last `--read-nodes` validators
//!   serve the reads and the others attest the load (each through its own node, as above):
//!   pre-signed sequences and a node's query log never compete for one member's sequences.
//!   During the window read `k` is due at `k / R` s and goes to reading node `k mod r`, signed
//!   (RFC 9421) with that node's member's key: `GET
//!   /v1/enterprises/{uscc}/attestations?limit=L&purpose=loan-application`, a restricted read
//!   that the node checks (signature, grant, replay window, live consent) and logs as a query
//!   record before answering. `--read-workers` threads each send one read at a time (a
//!   keep-alive connection per reading node, so at most [`READ_WORKERS_MAX`]: a node admits 32
//!   connections per client); read latency is from the send to the whole answer, and how late
//!   each read was sent after it was due is reported too.
//!   After the drain the regulator key counts the query records committed, per reader member,
//!   through `GET /v1/members/{member}/queries`, waiting up to [`DRAIN_MAX`] for one per
//!   served read. The enterprise is one of the three the load's records are about, so its
//!   listing grows during the run; a read returns its first `L` records.
//! * With `--set-changes` (issue 11's figure) governance adds a validator (its own node process
//!   joining from genesis) at `--add-at-s` and removes one of the original validators at
//!   `--remove-at-s`, while the load comes from members without a node that approve nothing
//!   ([`set_changes`] has the scenario and why). The report adds the heights at which each
//!   change took effect, the gaps near them, and whether every node agrees on the block hashes.
//! * Every report gives committed records per second of the window (by header time, so a dip
//!   shows) and the height and time of the longest gap.
//!
//! # Bounds
//! At most `RECORDS_MAX` (7,200,000) records per run (about 300 bytes of request body each, held in
//! memory), batches of at most 1,000 (the API's limit), at most 64 workers, and
//! `workers × batch` at most the nodes' `ahead_max` (4,096) so that records of one
//! attester overtaking each other in flight are held, not refused. Waiting for the
//! network to start: 60 s; drain: 20 s. With `--set-changes`, the scenario's own waits are
//! bounded in [`set_changes`] (each record or change 60 s, the newcomer's first signature 60 s,
//! the nodes' agreement after the run 30 s).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode};
use std::sync::Mutex;
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
use credence_ledger::rules::Rejection;
use credence_ledger::sig::SecretKey;
use credence_node::config::MempoolConfig;
use credence_node::keyfile;
use serde_json::{Value, json};

use crate::http::{self, Conn};
use crate::node::{self, TestnetLayout};

mod set_changes;

/// Most records one run signs and holds: 12 minutes at 10,000/s (about 2 GiB of signed records),
/// so the 10-minute gap run of docs/BENCHMARKS.md §No commit stalls fits.
const RECORDS_MAX: u64 = 7_200_000;
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
/// First back-off before a refused record or batch is sent again; it doubles each time.
const RETRY_FIRST: Duration = Duration::from_millis(50);
/// Longest back-off between two sendings of one record.
const RETRY_LONGEST: Duration = Duration::from_secs(2);
/// Most sendings of one record after its first.
const RETRY_ATTEMPTS: u32 = 8;
/// Latency at or under which the network counts as drained after a burst: the issue's
/// p99 target under load.
const NORMAL_P99: Duration = Duration::from_secs(1);
/// Gaps between blocks at least this long are listed one by one in the report (a round that
/// timed out waits `timeout_propose_ms`, 1 s by default, before the next proposer's turn).
const LONG_GAP_MS: u64 = 1_000;
/// Most long gaps listed.
const LONG_GAPS_LISTED_MAX: usize = 32;

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
    /// Attestations offered per second during the first `--burst-seconds` (an overload).
    #[arg(long, requires = "burst_seconds")]
    burst_rate: Option<u64>,
    /// Length of the burst at the start of the window.
    #[arg(long, default_value_t = 0)]
    burst_seconds: u64,
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
    /// Signed, consent-checked restricted reads offered per second during the window, each
    /// logged by its node as a query record (0: none).
    #[arg(long, default_value_t = 0)]
    reads_per_second: u64,
    /// Threads making those reads (each one read at a time).
    #[arg(long, default_value_t = 24)]
    read_workers: usize,
    /// With reads: how many validators (the last ones) serve them instead of attesting the load.
    #[arg(long, default_value_t = 2)]
    read_nodes: usize,
    /// Records per read (the listing's `limit`).
    #[arg(long, default_value_t = 10)]
    read_limit: u64,
    /// Issue 11's scenario: governance adds a validator (a new key, its own node joining from
    /// genesis) and later removes one of the original validators during the window; the load
    /// then comes from members without a node that approve nothing.
    #[arg(long)]
    set_changes: bool,
    /// With --set-changes: seconds into the window when the addition is proposed.
    #[arg(long, default_value_t = 10)]
    add_at_s: u64,
    /// With --set-changes: seconds into the window when the removal is proposed (later if the
    /// added validator has not yet signed a certificate, for at most 60 s).
    #[arg(long, default_value_t = 30)]
    remove_at_s: u64,
    /// With --set-changes: add the new member without the validator flag first, and make it a
    /// validator once its node has caught up (two changes instead of one).
    #[arg(long, requires = "set_changes")]
    join_first: bool,
}

/// Most reading threads: each holds a connection to every reading node, which admits
/// `CONNECTIONS_PER_CLIENT_MAX_DEFAULT` (32) per client address; two are left spare.
const READ_WORKERS_MAX: usize = credence_node::api::CONNECTIONS_PER_CLIENT_MAX_DEFAULT - 2;
/// Most reads one run offers.
const READS_MAX: u64 = 1_000_000;

pub fn run(a: &LoadArgs) -> Result<ExitCode> {
    if a.burst_seconds > a.seconds || (a.burst_seconds > 0 && a.burst_rate.unwrap_or(0) == 0) {
        bail!("--burst-seconds: at most --seconds, with a --burst-rate of at least 1");
    }
    let records = a.shape().records();
    if a.seconds == 0 || a.rate == 0 || records > RECORDS_MAX {
        bail!("--rate × --seconds (and the burst): must be between 1 and {RECORDS_MAX} records (got {records})");
    }
    if a.batch == 0 || a.batch > BATCH_MAX {
        bail!("--batch: must be between 1 and {BATCH_MAX}");
    }
    if a.workers == 0 || a.workers > WORKERS_MAX {
        bail!("--workers: must be between 1 and {WORKERS_MAX}");
    }
    if a.reads_per_second.saturating_mul(a.seconds) > READS_MAX {
        bail!("--reads-per-second × --seconds: at most {READS_MAX} reads");
    }
    if a.read_workers == 0 || a.read_workers > READ_WORKERS_MAX {
        bail!("--read-workers: must be between 1 and {READ_WORKERS_MAX}");
    }
    if a.reads_per_second > 0 && (a.read_nodes == 0 || a.read_nodes >= a.validators) {
        bail!("--read-nodes: at least 1 and fewer than --validators ({}), so that some attest", a.validators);
    }
    if a.set_changes {
        if a.validators < set_changes::VALIDATORS_MIN {
            bail!("--validators: --set-changes needs at least {}", set_changes::VALIDATORS_MIN);
        }
        if a.reads_per_second > 0 {
            bail!(
                "--set-changes: not with --reads-per-second (the reading validators' query records would be approvers' sequences)"
            );
        }
        if a.add_at_s >= a.remove_at_s || a.remove_at_s >= a.seconds {
            bail!("--add-at-s, --remove-at-s: must be in that order and within --seconds ({})", a.seconds);
        }
    }
    if a.read_limit == 0 || a.read_limit > crate::query::PAGE_ITEMS_MAX {
        bail!("--read-limit: must be between 1 and {}", crate::query::PAGE_ITEMS_MAX);
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

/// The offered load over the window: `burst_rate`/s for `burst_seconds`, then `rate`/s.
#[derive(Clone, Copy, Debug)]
struct Shape {
    burst_rate: f64,
    burst_seconds: f64,
    rate: f64,
    seconds: f64,
}

impl LoadArgs {
    /// How many members attest the load: every validator, or all but the reading ones; with
    /// `--set-changes`, one attester without a node per validator but the removed one.
    fn attesters(&self) -> usize {
        if self.set_changes {
            self.validators - 1
        } else if self.reads_per_second > 0 {
            self.validators - self.read_nodes
        } else {
            self.validators
        }
    }

    fn shape(&self) -> Shape {
        let burst_seconds = if self.burst_rate.is_some() { self.burst_seconds } else { 0 };
        Shape {
            burst_rate: self.burst_rate.unwrap_or(self.rate) as f64,
            burst_seconds: burst_seconds as f64,
            rate: self.rate as f64,
            seconds: self.seconds as f64,
        }
    }
}

impl Shape {
    fn burst_records(&self) -> f64 {
        self.burst_rate * self.burst_seconds
    }

    /// Records offered in the whole window.
    fn records(&self) -> u64 {
        (self.burst_records() + self.rate * (self.seconds - self.burst_seconds)) as u64
    }

    /// When the `x`-th record is due, from the window's start.
    fn due(&self, x: usize) -> Duration {
        let x = x as f64;
        let burst = self.burst_records();
        let secs = if x < burst { x / self.burst_rate } else { self.burst_seconds + (x - burst) / self.rate };
        Duration::from_secs_f64(secs)
    }
}

fn bench(a: &LoadArgs, dir: &Path, records: usize) -> Result<Value> {
    // With set changes, the added validator takes the next node's ports.
    ports_free(a.base_port, a.validators + usize::from(a.set_changes))?;
    let extra_attesters = if a.set_changes { a.attesters() } else { 0 };
    let layout = node::write_testnet(dir, a.validators, 0, extra_attesters, a.base_port, Some(LOAD_HEARTBEAT_MS))?;
    let apis: Vec<String> = (0..a.validators)
        .map(|i| layout.manifest["nodes"][i]["api"].as_str().map(str::to_string))
        .collect::<Option<_>>()
        .context("testnet.json lacks the nodes' API addresses")?;
    let plan = if a.set_changes {
        let at = |s: u64| Duration::from_secs(s);
        Some(set_changes::Plan::new(&layout, at(a.add_at_s), at(a.remove_at_s), a.base_port, a.join_first)?)
    } else {
        None
    };
    // Who signs the load: attester i submits through node i.
    let attester_names: Vec<String> =
        if a.set_changes { layout.attesters.clone() } else { layout.names[..a.attesters()].to_vec() };
    eprintln!("starting {} nodes", a.validators);
    let children = node::start_nodes(&layout)?;
    let mut nodes = Nodes { running: Vec::new(), stopped: Vec::new(), dir: layout.dir.clone() };
    for ((child, name), api) in children.into_iter().zip(&layout.names).zip(&apis) {
        nodes.add(name.clone(), api.clone(), child);
    }
    let access = if a.reads_per_second > 0 {
        let started = Instant::now();
        let access = node::provision_access(&layout)?;
        eprintln!("provisioned access keys and consents in {:.1} s", started.elapsed().as_secs_f64());
        Some(access)
    } else {
        None
    };
    wait_committing(&mut nodes, &apis)?;
    let attesters = a.attesters();
    // Each attester's records follow what it has signed so far (its grant, consents).
    let mut firsts = Vec::with_capacity(attesters);
    for (api, name) in apis.iter().zip(&attester_names) {
        let r = http::get(api, &format!("/v1/attesters/{name}/next-sequence"))?;
        let next = r.json()?["next_sequence"].as_u64().with_context(|| format!("{name}'s next sequence"))?;
        firsts.push(next);
    }
    let started = Instant::now();
    let work = sign_all(&layout, a, &attester_names, records, &firsts)?;
    eprintln!(
        "signed {records} attestations in {} batches in {:.1} s",
        work.batches(),
        started.elapsed().as_secs_f64()
    );
    let nodes = Mutex::new(nodes);
    let mut run = drive(a, &apis, &work, &nodes, access.as_ref(), plan.as_ref())?;
    if let (Some(access), Some(reads)) = (&access, &mut run.reads) {
        let served = reads.statuses.get(&200).copied().unwrap_or(0);
        reads.logged = Some(count_logged(&apis[0], access, &layout.names[attesters..a.validators], served)?);
    }
    lock_nodes(&nodes).alive()?;
    if let Some(changes) = &mut run.changes {
        let running = lock_nodes(&nodes).apis();
        changes["agreement"] = set_changes::agreement(&running, changes)?;
        set_changes::gaps_near_changes(changes, &run.poll.blocks);
        changes["epochs"] = set_changes::epochs(&apis[0])?;
    }
    let usage = lock_nodes(&nodes).usage();
    drop(nodes);
    Ok(report(a, &work, &run, &usage))
}

// ---------------------------------------------------------------------------------------------
// Restricted reads (issue 12's query-log figure)
// ---------------------------------------------------------------------------------------------

/// What the readers share.
struct ReadSchedule<'a> {
    /// Per node: its member's access-key file.
    keys: Vec<PathBuf>,
    apis: &'a [String],
    path: String,
    t0: Instant,
    window: Duration,
    rate: f64,
    next: AtomicU64,
    abort: &'a AtomicBool,
}

/// What the readers saw.
#[derive(Debug, Default)]
struct ReadLog {
    offered: u64,
    /// Answers by HTTP status (0: no answer).
    statuses: BTreeMap<u16, u64>,
    /// µs from each read's send to its whole answer, of the reads answered 200.
    latency_us: Vec<u64>,
    /// µs each read was sent after it was due (the readers falling behind the schedule).
    late_us: Vec<u64>,
    /// Per reader member: query records committed (after the drain).
    logged: Option<BTreeMap<String, u64>>,
}

fn reader(s: &ReadSchedule<'_>) -> Result<ReadLog> {
    let mut conns = Vec::with_capacity(s.apis.len());
    for (api, key) in s.apis.iter().zip(&s.keys) {
        let file = keyfile::read_access_key(key, None).with_context(|| key.display().to_string())?;
        conns.push(Conn::new(api)?.with_access(Some(file)));
    }
    let mut log = ReadLog::default();
    loop {
        let k = s.next.fetch_add(1, Ordering::Relaxed);
        let due = Duration::from_secs_f64(k as f64 / s.rate);
        if due >= s.window || s.abort.load(Ordering::Relaxed) {
            return Ok(log);
        }
        if let Some(wait) = due.checked_sub(s.t0.elapsed()) {
            std::thread::sleep(wait);
        }
        let node = (k % s.apis.len() as u64) as usize;
        let sent = Instant::now();
        log.late_us.push(micros(s.t0.elapsed().saturating_sub(due)));
        let status = conns[node].get(&s.path).map_or(0, |r| r.status);
        log.offered += 1;
        *log.statuses.entry(status).or_default() += 1;
        if status == 200 {
            log.latency_us.push(micros(sent.elapsed()));
        }
    }
}

/// The query records committed per reader member (the regulator's listing), waiting up to
/// [`DRAIN_MAX`] for `served` of them in all.
fn count_logged(
    api: &str,
    access: &node::TestnetAccess,
    members: &[String],
    served: u64,
) -> Result<BTreeMap<String, u64>> {
    let file = keyfile::read_access_key(&access.regulator, None).context("the regulator's access key")?;
    let mut conn = Conn::new(api)?.with_access(Some(file));
    let deadline = Instant::now() + DRAIN_MAX;
    loop {
        let mut counts = BTreeMap::new();
        for m in members {
            let mut after: Option<u64> = None;
            let mut n = 0u64;
            loop {
                let mut path = format!("/v1/members/{m}/queries?limit={}", crate::query::PAGE_ITEMS_MAX);
                if let Some(a) = after {
                    path.push_str(&format!("&after={a}"));
                }
                let page: credence_node::api::views::AttestationPage = crate::query::get_json(&mut conn, &path)?;
                n += page.items.len() as u64;
                match page.next_after {
                    Some(a) => after = Some(a),
                    None => break,
                }
            }
            counts.insert(m.clone(), n);
        }
        if counts.values().sum::<u64>() >= served || Instant::now() > deadline {
            return Ok(counts);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
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
    /// Every record's canonical bytes in base64, concatenated in record order: record `i`
    /// is `encoded[ends[i-1]..ends[i]]`. Batch `j` holds records
    /// `j·batch .. min((j+1)·batch, total)`.
    encoded: String,
    ends: Vec<usize>,
    batch: usize,
    total: usize,
    /// Record index of each attestation id.
    index: DigestMap<AttestationId, u32>,
}

impl Work {
    fn batches(&self) -> usize {
        self.total.div_ceil(self.batch)
    }

    fn records(&self, j: usize) -> std::ops::Range<usize> {
        j * self.batch..((j + 1) * self.batch).min(self.total)
    }

    fn encoded(&self, record: usize) -> &str {
        let start = record.checked_sub(1).map_or(0, |p| self.ends[p]);
        &self.encoded[start..self.ends[record]]
    }

    /// The `POST /v1/attestations/batch` body for these records.
    fn body(&self, records: &[u32]) -> Vec<u8> {
        let mut body = String::with_capacity(records.len() * 300 + 32);
        body.push_str("{\"attestations\":[");
        for (k, &r) in records.iter().enumerate() {
            if k > 0 {
                body.push(',');
            }
            body.push('"');
            body.push_str(self.encoded(r as usize));
            body.push('"');
        }
        body.push_str("]}");
        body.into_bytes()
    }
}

/// A batch's records, base64-encoded, and their ids.
type SignedBatch = (Vec<String>, Vec<AttestationId>);

/// Signs every record on all cores: batch `j` is attester `j mod n`'s (`names[j mod n]`) records
/// `first + k·batch ..` with `k = j div n` and `first` its next sequence (only the last batch
/// can be short, and it is its attester's last, so sequences have no gaps).
fn sign_all(layout: &TestnetLayout, a: &LoadArgs, names: &[String], total: usize, firsts: &[u64]) -> Result<Work> {
    let genesis = Genesis::load(&layout.dir.join("genesis.toml"))?;
    let chain_id = genesis.hash();
    let attesters: Vec<(MemberName, SecretKey)> = names
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
        let first_sequence = (j / attesters.len() * a.batch) as u64 + firsts[j % attesters.len()];
        let n = a.batch.min(total - j * a.batch);
        let mut encoded = Vec::with_capacity(n);
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let sequence = first_sequence + i as u64;
            let claim = Claim::RdSpend(RdSpend {
                enterprise: usccs[(sequence % 3) as usize],
                period: Period::new("period", 2000 + (sequence % 25) as u16, (sequence % 5) as u8)?,
                amount: Money { fen: 10_000_000 + sequence, currency: Currency::CNY }.into(),
                category: RdCategory::Total,
                evidence: Hash::ZERO,
            });
            let statement = AttestationBody { attester: attester.clone(), sequence, issued_at_ms, claim };
            let signed = statement.sign(key, &chain_id);
            ids.push(signed.id());
            encoded.push(B64.encode(signed.to_bytes()));
        }
        Ok((encoded, ids))
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
    let mut work = Work {
        encoded: String::with_capacity(total * 300),
        ends: Vec::with_capacity(total),
        batch: a.batch,
        total,
        index: DigestMap::default(),
    };
    work.index.reserve(total);
    for part in parts {
        for (encoded, ids) in part? {
            for (id, e) in ids.into_iter().zip(encoded) {
                let i = u32::try_from(work.index.len()).context("too many records")?;
                work.index.insert(id, i);
                work.encoded.push_str(&e);
                work.ends.push(work.encoded.len());
            }
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
    /// Name, API and process of each running node, node 0 first.
    running: Vec<(String, String, Child)>,
    /// Nodes stopped during the run, with their use just before.
    stopped: Vec<(String, Usage)>,
    dir: PathBuf,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        let mut children: Vec<Child> = self.running.drain(..).map(|(_, _, c)| c).collect();
        node::stop_nodes(&mut children);
    }
}

/// The nodes, also when a thread panicked holding them (the processes must still be stopped).
fn lock_nodes(nodes: &Mutex<Nodes>) -> std::sync::MutexGuard<'_, Nodes> {
    nodes.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A node's resource use as the kernel reports it.
#[derive(Clone, Debug, Default)]
struct Usage {
    peak_rss_kib: Option<u64>,
    rss_kib: Option<u64>,
    cpu_seconds: Option<f64>,
}

impl Nodes {
    /// An error naming the first node that has exited.
    fn alive(&mut self) -> Result<()> {
        for (name, _, child) in &mut self.running {
            if let Ok(Some(status)) = child.try_wait() {
                bail!("{name} exited ({status}); see {}", self.dir.join(name.as_str()).join("node.log").display());
            }
        }
        Ok(())
    }

    fn add(&mut self, name: String, api: String, child: Child) {
        self.running.push((name, api, child));
    }

    /// Takes node `name` out of the running ones (the caller stops it), keeping its use.
    fn take(&mut self, name: &str) -> Option<Child> {
        let i = self.running.iter().position(|(n, _, _)| n == name)?;
        let (name, _, child) = self.running.remove(i);
        self.stopped.push((name, usage(child.id())));
        Some(child)
    }

    /// Name and API of each running node.
    fn apis(&self) -> Vec<(String, String)> {
        self.running.iter().map(|(n, a, _)| (n.clone(), a.clone())).collect()
    }

    /// Each node's use: the running ones now, the stopped ones before their stop.
    fn usage(&self) -> Vec<(String, Usage)> {
        let running = self.running.iter().map(|(n, _, c)| (n.clone(), usage(c.id())));
        running.chain(self.stopped.iter().map(|(n, u)| (n.clone(), u.clone()))).collect()
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
    Usage { peak_rss_kib: kib("VmHWM:"), rss_kib: kib("VmRSS:"), cpu_seconds: cpu_seconds(pid) }
}

/// CPU seconds (user and system) process `pid` has used so far (Linux).
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    // Fields 14 and 15 of /proc/<pid>/stat (utime, stime) in clock ticks (100 a second on Linux),
    // counted after the parenthesised command name.
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
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
    shape: Shape,
    next: AtomicUsize,
    abort: AtomicBool,
    /// Set when the submit window and the drain are over: retries stop.
    stop: AtomicBool,
    submitted: AtomicU64,
    accepted: AtomicU64,
    retries: Mutex<Retries>,
}

impl Schedule<'_> {
    /// When batch `j` may be sent, from `t0`.
    fn due(&self, j: usize) -> Duration {
        self.shape.due(j * self.work.batch)
    }
}

/// Records waiting to be sent again, by when; at most every record once.
#[derive(Default)]
struct Retries {
    queue: BinaryHeap<Reverse<Retry>>,
    /// Retries queued or being sent: the drain waits for them.
    open: usize,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Retry {
    /// From t0.
    due: Duration,
    node: usize,
    /// Sendings so far.
    attempt: u32,
    /// µs from t0 of the records' first sending.
    first_sent_us: u64,
    records: Vec<u32>,
}

impl Retries {
    fn take_due(&mut self, now: Duration) -> Option<Retry> {
        if self.queue.peek().is_some_and(|Reverse(r)| r.due <= now) {
            self.queue.pop().map(|Reverse(r)| r)
        } else {
            None
        }
    }

    fn next_due(&self) -> Option<Duration> {
        self.queue.peek().map(|Reverse(r)| r.due)
    }
}

/// Back-off before sending for the `attempt`-th time (1 = the first retry).
fn back_off(attempt: u32) -> Duration {
    RETRY_FIRST.saturating_mul(1 << attempt.saturating_sub(1).min(16)).min(RETRY_LONGEST)
}

/// True for a per-record refusal a client should retry: the pool is full, or an
/// earlier record of the attester was refused and this one is now too far ahead.
fn retryable(code: &str) -> bool {
    let gap = Rejection::SequenceGap { expected: 0, got: 0 }.code();
    code == "mempool_full" || code == format!("R{gap:03}")
}

/// One worker's record of what it sent.
#[derive(Default)]
struct WorkerLog {
    submitted: u64,
    /// (record, µs from t0 when it was first sent) of every accepted record.
    accepted: Vec<(u32, u64)>,
    /// Final refusals by error code (`transport` and `http_<status>` for whole batches).
    refused: BTreeMap<String, u64>,
    /// Records sent again, and the requests that carried them.
    retried_records: u64,
    retry_requests: u64,
    /// µs from a batch's send to its answer.
    answer_us: Vec<u64>,
    last_sent_us: u64,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// What to send next.
enum Job {
    New(usize),
    Again(Retry),
}

/// The next job: a due retry first, else the next new batch once due; `None` when the
/// window is over and no retry is left (or the run stops).
fn next_job(s: &Schedule<'_>, claimed: &mut Option<usize>) -> Option<Job> {
    loop {
        if s.abort.load(Ordering::Relaxed) || s.stop.load(Ordering::Relaxed) {
            return None;
        }
        let now = s.t0.elapsed();
        let mut retries = s.retries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(r) = retries.take_due(now) {
            return Some(Job::Again(r));
        }
        if claimed.is_none() {
            let j = s.next.fetch_add(1, Ordering::Relaxed);
            if j < s.work.batches() && s.due(j) < s.window {
                *claimed = Some(j);
            }
        }
        let wake = match *claimed {
            Some(j) if s.due(j) <= now => {
                *claimed = None;
                if now < s.window {
                    return Some(Job::New(j));
                }
                continue;
            }
            Some(j) => retries.next_due().map_or(s.due(j), |d| d.min(s.due(j))),
            None if retries.open == 0 => return None,
            None => retries.next_due().unwrap_or(now + RETRY_FIRST),
        };
        drop(retries);
        std::thread::sleep(wake.saturating_sub(now).min(RETRY_FIRST));
    }
}

fn worker(s: &Schedule<'_>) -> WorkerLog {
    let mut log = WorkerLog::default();
    let mut conns: Vec<Option<Conn>> = s.apis.iter().map(|api| Conn::new(api).ok()).collect();
    let mut claimed = None;
    while let Some(job) = next_job(s, &mut claimed) {
        let sent = s.t0.elapsed();
        let (node, records, attempt, first_sent_us) = match job {
            Job::New(j) => {
                let records: Vec<u32> = s.work.records(j).map(|r| r as u32).collect();
                log.submitted += records.len() as u64;
                s.submitted.fetch_add(records.len() as u64, Ordering::Relaxed);
                (j % s.apis.len(), records, 0, micros(sent))
            }
            Job::Again(r) => {
                log.retry_requests += 1;
                log.retried_records += r.records.len() as u64;
                (r.node, r.records, r.attempt, r.first_sent_us)
            }
        };
        log.last_sent_us = micros(sent);
        let body = s.work.body(&records);
        let answer = match conns.get_mut(node).and_then(Option::as_mut) {
            Some(conn) => conn.request("POST", BATCH_PATH, Some(&body)),
            None => Err(anyhow::anyhow!("no address for node {node}")),
        };
        log.answer_us.push(micros(s.t0.elapsed().saturating_sub(sent)));
        // Records to send again, or the code they are finally refused with.
        let mut again = Vec::new();
        let mut refuse = |code: String, record: u32, log: &mut WorkerLog| {
            if retryable(&code) && attempt < RETRY_ATTEMPTS {
                again.push(record);
            } else {
                *log.refused.entry(code).or_default() += 1;
            }
        };
        let results = match answer {
            Ok(r) if r.status == 200 => r.json().ok().and_then(|v| v["results"].as_array().cloned()),
            Ok(r) => {
                // A whole batch refused: busy or rate-limited (retry), or a client error.
                let code = if matches!(r.status, 429 | 503) {
                    "mempool_full".to_string()
                } else {
                    format!("http_{}", r.status)
                };
                for &record in &records {
                    refuse(code.clone(), record, &mut log);
                }
                None
            }
            Err(_) => {
                for &record in &records {
                    refuse("mempool_full".into(), record, &mut log);
                }
                None
            }
        };
        if let Some(results) = results {
            if results.len() != records.len() {
                *log.refused.entry("bad_answer".into()).or_default() += records.len() as u64;
            } else {
                let mut accepted = 0;
                for (&record, result) in records.iter().zip(&results) {
                    if result["status"] == "pending" {
                        log.accepted.push((record, first_sent_us));
                        accepted += 1;
                    } else {
                        let code = result["error"]["code"].as_str().unwrap_or("unknown").to_string();
                        refuse(code, record, &mut log);
                    }
                }
                s.accepted.fetch_add(accepted, Ordering::Relaxed);
            }
        }
        let mut retries = s.retries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if attempt > 0 {
            retries.open -= 1;
        }
        if !again.is_empty() {
            retries.open += 1;
            let due = s.t0.elapsed() + back_off(attempt + 1);
            retries.queue.push(Reverse(Retry { due, node, attempt: attempt + 1, first_sent_us, records: again }));
        }
    }
    log
}

/// A block as the poller saw it.
struct BlockSeen {
    height: u64,
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
        let time_ms = block["time_ms"].as_u64().unwrap_or(0);
        log.blocks.push(BlockSeen { height: *next, time_ms, ours, records: ids.len() as u64 });
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
    /// Each running node's name, and its height, round and mempool when the submit window ended.
    window_end: Vec<(String, Value)>,
    /// The restricted reads, with `--reads-per-second`.
    reads: Option<ReadLog>,
    /// With `--set-changes`: the scenario's part of the report.
    changes: Option<Value>,
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
        "compact_proposals": compact_proposals(api),
    })
}

/// The node's compact-proposal counters by outcome, from `/metrics` (`null` if it does not answer).
fn compact_proposals(api: &str) -> Value {
    let Some(text) = http::get(api, "/metrics").ok().filter(|r| r.status == 200).map(|r| r.text()) else {
        return Value::Null;
    };
    let prefix = "credence_compact_proposals_total{outcome=\"";
    let counts: serde_json::Map<String, Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix(prefix)?.split_once("\"} "))
        .filter_map(|(outcome, n)| Some((outcome.to_string(), json!(n.trim().parse::<u64>().ok()?))))
        .collect();
    Value::Object(counts)
}

fn drive(
    a: &LoadArgs,
    apis: &[String],
    work: &Work,
    nodes: &Mutex<Nodes>,
    access: Option<&node::TestnetAccess>,
    plan: Option<&set_changes::Plan>,
) -> Result<Run> {
    let start_height = height(&apis[0]).context("node 0 does not answer")?;
    let t0 = Instant::now();
    let t0_unix_ms = now_ms();
    let schedule = Schedule {
        work,
        apis: &apis[..a.attesters()],
        t0,
        window: Duration::from_secs(a.seconds),
        shape: a.shape(),
        next: AtomicUsize::new(0),
        abort: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        retries: Mutex::new(Retries::default()),
        submitted: AtomicU64::new(0),
        accepted: AtomicU64::new(0),
    };
    let stop_polling = AtomicBool::new(false);
    let committed = AtomicU64::new(0);
    let read_schedule = access.map(|access| ReadSchedule {
        keys: access.members[a.attesters()..apis.len()].iter().map(|(_, f)| f.clone()).collect(),
        apis: &apis[a.attesters()..],
        path: format!(
            "/v1/enterprises/{}/attestations?limit={}&purpose=loan-application",
            node::TESTNET_ENTERPRISE,
            a.read_limit
        ),
        t0,
        window: Duration::from_secs(a.seconds),
        rate: a.reads_per_second as f64,
        next: AtomicU64::new(0),
        abort: &schedule.abort,
    });
    std::thread::scope(|scope| {
        let poller = scope.spawn(|| poll(&apis[0], work, t0, start_height, &stop_polling, &committed));
        let workers: Vec<_> = (0..a.workers).map(|_| scope.spawn(|| worker(&schedule))).collect();
        let readers: Vec<_> = match &read_schedule {
            Some(rs) => (0..a.read_workers).map(|_| scope.spawn(|| reader(rs))).collect(),
            None => Vec::new(),
        };
        let conductor = plan.map(|plan| {
            let ctx = set_changes::Ctx { t0, abort: &schedule.abort, stop: &schedule.stop, nodes };
            let abort = &schedule.abort;
            scope.spawn(move || {
                let r = set_changes::conduct(plan, &ctx);
                if r.is_err() {
                    abort.store(true, Ordering::Relaxed);
                }
                r
            })
        });
        // Watch the nodes and report progress while the workers submit, then drain.
        let mut last_progress = Instant::now();
        let mut failure = None;
        let mut drain_deadline = None;
        let mut window_end = Vec::new();
        loop {
            std::thread::sleep(Duration::from_millis(100));
            if let Err(e) = lock_nodes(nodes).alive() {
                schedule.abort.store(true, Ordering::Relaxed);
                failure = Some(e);
                break;
            }
            if schedule.abort.load(Ordering::Relaxed) {
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
            if t0.elapsed() < schedule.window {
                continue;
            }
            if drain_deadline.is_none() {
                let running = lock_nodes(nodes).apis();
                window_end = running.into_iter().map(|(name, api)| (name, node_state(&api))).collect();
            }
            let deadline = *drain_deadline.get_or_insert(schedule.window + DRAIN_MAX);
            if t0.elapsed() >= deadline {
                schedule.stop.store(true, Ordering::Relaxed);
            }
            let conducting = conductor.as_ref().is_some_and(|c| !c.is_finished());
            if (!submitting && done >= accepted && !conducting) || t0.elapsed() >= deadline || poller.is_finished() {
                break;
            }
        }
        schedule.stop.store(true, Ordering::Relaxed);
        stop_polling.store(true, Ordering::Relaxed);
        let ended = t0.elapsed();
        let logs: Vec<WorkerLog> = workers.into_iter().map(|w| w.join().unwrap_or_default()).collect();
        let mut reads = read_schedule.as_ref().map(|_| ReadLog::default());
        for r in readers {
            let log = match r.join() {
                Ok(log) => log?,
                Err(_) => bail!("a reader panicked"),
            };
            if let Some(all) = &mut reads {
                all.offered += log.offered;
                for (s, n) in log.statuses {
                    *all.statuses.entry(s).or_default() += n;
                }
                all.latency_us.extend(log.latency_us);
                all.late_us.extend(log.late_us);
            }
        }
        let changes = conductor.map(|c| c.join());
        let poll = match poller.join() {
            Ok(r) => r?,
            Err(_) => bail!("the poller panicked"),
        };
        // A node that exited first: the scenario's error would only say the run ended.
        if let Some(e) = failure {
            return Err(e);
        }
        let changes = match changes {
            None => None,
            Some(Ok(r)) => Some(r?),
            Some(Err(_)) => bail!("the set-changes scenario panicked"),
        };
        Ok(Run { workers: logs, poll, t0_unix_ms, ended, start_height, window_end, reads, changes })
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

/// Records of this run committed in each second of the window, by block header time.
fn committed_by_second(blocks: &[&BlockSeen], t0_unix_ms: u64, seconds: u64) -> Vec<u64> {
    let mut per = vec![0u64; seconds as usize];
    for b in blocks {
        if let Some(slot) = per.get_mut((b.time_ms.saturating_sub(t0_unix_ms) / 1000) as usize) {
            *slot += b.ours;
        }
    }
    per
}

/// A gap between consecutive blocks' header times: (ms, the later block's height, its time in s
/// from the window's start).
type Gap = (u64, u64, f64);

/// Each gap between consecutive blocks' header times.
fn gaps_with_heights(blocks: &[&BlockSeen], t0_unix_ms: u64) -> Vec<Gap> {
    blocks
        .windows(2)
        .map(|w| (w[1].time_ms.saturating_sub(w[0].time_ms), w[1].height, w[1].time_ms))
        .map(|(gap, h, t)| (gap, h, t.saturating_sub(t0_unix_ms) as f64 / 1000.0))
        .collect()
}

/// The longest gap (the first of equals) and the gaps of at least [`LONG_GAP_MS`], in height
/// order, at most [`LONG_GAPS_LISTED_MAX`].
fn long_gaps(gaps: &[Gap]) -> (Option<Gap>, Vec<Gap>) {
    let longest = gaps.iter().copied().max_by_key(|&(gap, h, _)| (gap, Reverse(h)));
    let listed = gaps.iter().copied().filter(|&(gap, _, _)| gap >= LONG_GAP_MS).take(LONG_GAPS_LISTED_MAX).collect();
    (longest, listed)
}

fn report(a: &LoadArgs, work: &Work, run: &Run, usage: &[(String, Usage)]) -> Value {
    let submitted: u64 = run.workers.iter().map(|w| w.submitted).sum();
    let mut refused: BTreeMap<String, u64> = BTreeMap::new();
    for w in &run.workers {
        for (code, n) in &w.refused {
            *refused.entry(code.clone()).or_default() += n;
        }
    }
    let latency = |&(record, sent): &(u32, u64)| {
        // Never seen committed: infinitely late.
        match run.poll.seen_us.get(record as usize) {
            Some(&seen) if seen != u64::MAX => seen.saturating_sub(sent),
            _ => u64::MAX,
        }
    };
    let mut latencies: Vec<u64> = run.workers.iter().flat_map(|w| &w.accepted).map(latency).collect();
    // Latency by the second of the window a record was first sent in.
    let mut by_second: Vec<Vec<u64>> = vec![Vec::new(); a.seconds as usize];
    for w in &run.workers {
        for r in &w.accepted {
            if let Some(v) = by_second.get_mut((r.1 / 1_000_000) as usize) {
                v.push(latency(r));
            }
        }
    }
    let by_second: Vec<(Option<u64>, Option<u64>)> = by_second
        .into_iter()
        .map(|mut v| {
            v.sort_unstable();
            (percentile(&v, 50.0), percentile(&v, 99.0))
        })
        .collect();
    // After a burst: the first second from which every second's p99 is normal again.
    let burst_end = a.shape().burst_seconds as usize;
    let normal = |p99: Option<u64>| p99.is_none_or(|p| p <= micros(NORMAL_P99));
    let drained_after_burst_s = (a.burst_rate.is_some() && burst_end > 0)
        .then(|| (burst_end..=by_second.len()).find(|&t| by_second[t..].iter().all(|&(_, p99)| normal(p99))))
        .flatten()
        .map(|t| t - burst_end);
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
    let mut gaps: Vec<u64> = window_blocks.windows(2).map(|w| w[1].time_ms.saturating_sub(w[0].time_ms)).collect();
    gaps.sort_unstable();
    let (longest, long) = long_gaps(&gaps_with_heights(&window_blocks, run.t0_unix_ms));
    let last_sent_us = run.workers.iter().map(|w| w.last_sent_us).max().unwrap_or(0);
    let seconds = a.seconds as f64;
    let nodes: Vec<Value> = usage
        .iter()
        .map(|(name, u)| {
            let end = run.window_end.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
            json!({
                "node": name,
                "peak_rss_mib": u.peak_rss_kib.map(|k| k / 1024),
                "rss_mib": u.rss_kib.map(|k| k / 1024),
                "cpu_seconds": u.cpu_seconds,
                "at_window_end": end.unwrap_or(Value::Null),
            })
        })
        .collect();
    let reads = run.reads.as_ref().map(|r| {
        let mut l = r.latency_us.clone();
        l.sort_unstable();
        let mut late = r.late_us.clone();
        late.sort_unstable();
        let served = r.statuses.get(&200).copied().unwrap_or(0);
        let logged: u64 = r.logged.iter().flat_map(|m| m.values()).sum();
        json!({
            "per_second_offered": a.reads_per_second,
            "read_limit": a.read_limit,
            "read_workers": a.read_workers,
            "offered": r.offered,
            "served": served,
            "served_per_second": served as f64 / seconds,
            "by_status": r.statuses.iter().map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "latency_p50_ms": ms(percentile(&l, 50.0)),
            "latency_p99_ms": ms(percentile(&l, 99.0)),
            "latency_max_ms": ms(l.last().copied()),
            "sent_late_p99_ms": ms(percentile(&late, 99.0)),
            "query_records_committed": logged,
            "query_records_by_reader": r.logged,
            "query_records_missing": served.saturating_sub(logged),
        })
    });
    let mut report = json!({
        "validators": a.validators,
        "attesters": a.attesters(),
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
        "retried_records": run.workers.iter().map(|w| w.retried_records).sum::<u64>(),
        "retry_requests": run.workers.iter().map(|w| w.retry_requests).sum::<u64>(),
        "burst_rate": a.burst_rate,
        "burst_seconds": a.shape().burst_seconds,
        "drained_after_burst_s": drained_after_burst_s,
        "latency_by_second_ms": by_second.iter().map(|&(p50, p99)| json!([ms(p50), ms(p99)])).collect::<Vec<_>>(),
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
        "block_gap_p99_ms": percentile(&gaps, 99.0),
        "block_gap_max_ms": gaps.last().copied(),
        "latency_p50_ms": ms(percentile(&latencies, 50.0)),
        "latency_p99_ms": ms(percentile(&latencies, 99.0)),
        "latency_max_ms": ms(latencies.last().copied()),
        "committed_latency_p50_ms": ms(percentile(&latencies[..committed_accepted], 50.0)),
        "committed_latency_p99_ms": ms(percentile(&latencies[..committed_accepted], 99.0)),
        "batch_answer_p50_ms": ms(percentile(&answers, 50.0)),
        "batch_answer_p99_ms": ms(percentile(&answers, 99.0)),
        "nodes": nodes,
        "reads": reads,
    });
    // Apart, for the macro's recursion limit.
    report["block_gap_max_height"] = json!(longest.map(|(_, h, _)| h));
    report["block_gap_max_at_s"] = json!(longest.map(|(_, _, t)| t));
    // With set changes, who was to propose each long gap's height at round 0 (a proposer
    // that was not ready makes the round wait out its propose timeout).
    let epochs = run.changes.as_ref().map(|c| &c["epochs"]);
    report["long_gaps"] = long
        .iter()
        .map(|&(gap, h, t)| {
            let proposer = epochs.and_then(|e| set_changes::round0_proposer(e, h));
            json!({"gap_ms": gap, "height": h, "at_s": t, "round0_proposer": proposer})
        })
        .collect();
    report["committed_by_second"] = json!(committed_by_second(&window_blocks, run.t0_unix_ms, a.seconds));
    report["set_changes"] = run.changes.clone().unwrap_or(Value::Null);
    report
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
    println!("retried                {:>10}   records, in {} requests", r["retried_records"], r["retry_requests"]);
    if let Some(rate) = r["burst_rate"].as_u64() {
        let drained = match r["drained_after_burst_s"].as_u64() {
            Some(s) => format!("{s} s after it"),
            None => "not within the window".to_string(),
        };
        println!("burst                  {rate}/s for {} s; p99 back under 1 s {drained}", r["burst_seconds"]);
    }
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
    println!(
        "block gap p99 / max    {:>10} / {} (into block {}, at {} s)",
        lat("block_gap_p99_ms"),
        lat("block_gap_max_ms"),
        r["block_gap_max_height"],
        r["block_gap_max_at_s"]
    );
    let long: Vec<String> = r["long_gaps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| match g["round0_proposer"].as_str() {
            Some(p) => format!("{} ms into block {} at {} s (round 0: {p})", g["gap_ms"], g["height"], g["at_s"]),
            None => format!("{} ms into block {} at {} s", g["gap_ms"], g["height"], g["at_s"]),
        })
        .collect();
    if !long.is_empty() {
        println!("gaps of 1 s or more    {}", long.join("; "));
    }
    let per_second: Vec<String> =
        r["committed_by_second"].as_array().into_iter().flatten().map(|v| v.to_string()).collect();
    println!("committed each second  {}", per_second.join(" "));
    println!("latency p50            {:>10}", lat("latency_p50_ms"));
    println!("latency p99            {:>10}", lat("latency_p99_ms"));
    println!(
        "  of those committed    {:>10} / {} (p50 / p99)",
        lat("committed_latency_p50_ms"),
        lat("committed_latency_p99_ms")
    );
    println!("batch answer p50/p99   {:>10} / {}", lat("batch_answer_p50_ms"), lat("batch_answer_p99_ms"));
    let reads = &r["reads"];
    if !reads.is_null() {
        let rl = |k: &str| match reads[k].as_f64() {
            Some(v) => format!("{v:.1} ms"),
            None => "-".to_string(),
        };
        println!(
            "reads                  {:>10}   offered at {}/s, {} served ({:.0}/s); by status {}",
            reads["offered"],
            reads["per_second_offered"],
            reads["served"],
            reads["served_per_second"].as_f64().unwrap_or(0.0),
            reads["by_status"]
        );
        println!(
            "read latency p50/p99   {:>10} / {} (max {}; sent late p99 {})",
            rl("latency_p50_ms"),
            rl("latency_p99_ms"),
            rl("latency_max_ms"),
            rl("sent_late_p99_ms")
        );
        println!(
            "query records          {:>10}   committed ({} missing); by reader {}",
            reads["query_records_committed"], reads["query_records_missing"], reads["query_records_by_reader"]
        );
    }
    let changes = &r["set_changes"];
    if !changes.is_null() {
        println!(
            "set changes            {} added (node started at {} s, first signature in block {}), {} removed (node stopped at {} s)",
            changes["added"],
            changes["added_node_started_s"],
            changes["added_first_signed_height"],
            changes["removed"],
            changes["removed_node_stopped_s"]
        );
        for c in changes["changes"].as_array().into_iter().flatten() {
            println!(
                "  {:<20} proposed at {} s (block {}), quorum in block {}, in force at height {} (committed at {} s; aimed at {}); old rotation's proposer there: {}; longest gap near it {} ms",
                c["change"].as_str().unwrap_or("?"),
                c["proposed_s"],
                c["proposal_height"],
                c["quorum_height"],
                c["in_force_height"],
                c["in_force_committed_s"],
                c["aimed_in_force_height"],
                c["proposer_in_old_rotation"],
                c["longest_gap_near_ms"]
            );
        }
        let ag = &changes["agreement"];
        println!(
            "  every node agrees     {} (up to height {}; behind: {})",
            ag["agree"], ag["final_height"], ag["behind"]
        );
    }
    for n in r["nodes"].as_array().into_iter().flatten() {
        let end = &n["at_window_end"];
        println!(
            "{:<22} peak RSS {} MiB, RSS {} MiB, CPU {:.1} s; at the window's end: height {}, round {}, mempool {} ({} held), compact proposals {}",
            n["node"].as_str().unwrap_or("?"),
            n["peak_rss_mib"],
            n["rss_mib"],
            n["cpu_seconds"].as_f64().unwrap_or(0.0),
            end["height"],
            end["round"],
            end["mempool_records"],
            end["mempool_held"],
            end["compact_proposals"]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_offers_its_rate_first_then_the_normal_rate() {
        let shape = Shape { burst_rate: 20_000.0, burst_seconds: 5.0, rate: 10_000.0, seconds: 60.0 };
        assert_eq!(shape.records(), 100_000 + 550_000);
        assert_eq!(shape.due(0), Duration::ZERO);
        assert_eq!(shape.due(20_000), Duration::from_secs(1));
        assert_eq!(shape.due(100_000), Duration::from_secs(5));
        assert_eq!(shape.due(110_000), Duration::from_secs(6));
        let flat = Shape { burst_rate: 10_000.0, burst_seconds: 0.0, rate: 10_000.0, seconds: 60.0 };
        assert_eq!(flat.records(), 600_000);
        assert_eq!(flat.due(30_000), Duration::from_secs(3));
    }

    #[test]
    fn per_second_counts_and_gaps_follow_header_times() {
        let b = |height, time_ms, ours| BlockSeen { height, time_ms, ours, records: ours };
        let t0 = 1_000_000;
        let blocks =
            [b(5, t0 + 100, 10), b(6, t0 + 900, 20), b(7, t0 + 2_400, 30), b(8, t0 + 2_500, 5), b(9, t0 + 4_100, 7)];
        let refs: Vec<&BlockSeen> = blocks.iter().collect();
        // Second 1 has no block: the dip shows as a zero.
        assert_eq!(committed_by_second(&refs, t0, 5), [30, 0, 35, 0, 7]);
        let gaps = gaps_with_heights(&refs, t0);
        assert_eq!(gaps.iter().map(|g| g.0).collect::<Vec<_>>(), [800, 1_500, 100, 1_600]);
        let (longest, listed) = long_gaps(&gaps);
        assert_eq!(longest, Some((1_600, 9, 4.1)));
        assert_eq!(listed, [(1_500, 7, 2.4), (1_600, 9, 4.1)]);
        // Of equal gaps the first is the longest.
        let (longest, _) = long_gaps(&[(700, 3, 0.1), (700, 4, 0.8)]);
        assert_eq!(longest, Some((700, 3, 0.1)));
    }

    #[test]
    fn back_off_doubles_up_to_its_longest_and_only_retryable_refusals_retry() {
        let waits: Vec<u64> = (1..=RETRY_ATTEMPTS).map(|a| back_off(a).as_millis() as u64).collect();
        assert_eq!(waits, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(back_off(u32::MAX), RETRY_LONGEST);
        assert!(retryable("mempool_full"));
        assert!(retryable("R004"), "a record behind a refused one is retried once the gap fills");
        for code in ["R003", "R022", "duplicate", "malformed", "http_400", "R04"] {
            assert!(!retryable(code), "{code}");
        }
    }
}
