//! Node metrics in the Prometheus text exposition format (0.0.4), hand-written with atomics.
//!
//! | name | type | meaning |
//! |---|---|---|
//! | `credence_height` | gauge | height of the last committed block |
//! | `credence_tree_size` | gauge | leaves in the ledger's Merkle tree |
//! | `credence_peers` | gauge | connected peers |
//! | `credence_syncing` | gauge | 1 while catching up by block sync |
//! | `credence_mempool_records` | gauge | pending attestations (ready + held) |
//! | `credence_mempool_bytes` | gauge | their canonical bytes |
//! | `credence_mempool_held` | gauge | pending attestations waiting for an earlier sequence |
//! | `credence_signatures_verified_total` | counter | attestation signatures checked and valid |
//! | `credence_signatures_invalid_total` | counter | attestation signatures checked and invalid |
//! | `credence_attestations_admitted_total` | counter | attestations admitted to the mempool |
//! | `credence_attestations_refused_total{code}` | counter | attestations refused, by error code (`R001`…, `malformed`, `duplicate`, `mempool_full`, …) |
//! | `credence_mempool_evicted_total` | counter | pending attestations a commit made invalid |
//! | `credence_blocks_committed_total` | counter | blocks committed |
//! | `credence_attestations_committed_total` | counter | attestations committed |
//! | `credence_commit_latency_seconds` | histogram | time of the node's step that committed a block (the decision's or sync's handling, verification and storage included) |
//! | `credence_consensus_rejected_total` | counter | consensus messages refused as invalid and not forwarded (bad signature, a block whose leaves do not match its header, a header naming the wrong proposer, …) |
//! | `credence_proposals_invalid_total` | counter | proposed blocks that failed validation |
//! | `credence_compact_proposals_total{outcome}` | counter | compact proposals received and `filled` from the mempool on arrival, `filled_later` as gossip brought missing records, or `dropped` unfilled; this node's own `sent_whole` again for want of a polka (ARCHITECTURE.md, `compact.rs`) |
//! | `credence_sync_refused_total` | counter | peers' sync requests refused for their per-peer budget |
//! | `credence_synced_blocks_total` | counter | blocks this node fetched by sync, verified and stored |
//! | `credence_sync_fetch_seconds_total` | counter | time from sending sync requests to their answers (summed over requests in flight at once) |
//! | `credence_sync_check_seconds_total` | counter | time decoding sync answers and checking their signatures ahead, off the driver (summed over answers checked at once) |
//! | `credence_sync_apply_seconds_total` | counter | time the driver spent applying sync answers: rules, Merkle roots, certificate quorums, commits and their flush |
//! | `credence_http_requests_total{method,route,status}` | counter | HTTP requests by route template and status |
//! | `credence_http_request_duration_seconds` | histogram | HTTP request handling time |
//! | `credence_witness_cosignatures_total{witness}` | counter | checkpoints a witness in force (genesis's or governance's) cosigned for this node |
//! | `credence_witness_refusals_total{witness,status}` | counter | checkpoints a witness in force refused (4xx: a fork it saw, a bad proof, not the log's signers); a 409 the node resolves by adopting the witness's size is not counted |
//! | `credence_witness_failures_total{witness}` | counter | submissions to a witness that got no answer in time, or a 5xx |
//! | `credence_witnesses_in_force` | gauge | witnesses in force at the head (genesis's and governance's): the ones the node submits checkpoints to |
//!
//! Label sets are bounded: `route` is one of the API's route templates (or
//! `unmatched`), `method` one of the standard methods (or `other`), `status` an HTTP
//! status code, `code` one of the admission error codes, `witness` the name of a witness
//! in force during the node's run (genesis's or governance's: at most `WITNESSES_MAX` at once,
//! `WITNESS_TERMS_MAX` over the chain's life).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use credence_ledger::rules::Rejection;

use crate::mempool::{AdmitError, BatchOutcome, MempoolStats};

/// Every metric name this module exports (without label sets or histogram suffixes).
pub const METRIC_NAMES: &[&str] = &[
    "credence_height",
    "credence_tree_size",
    "credence_peers",
    "credence_syncing",
    "credence_mempool_records",
    "credence_mempool_bytes",
    "credence_mempool_held",
    "credence_signatures_verified_total",
    "credence_signatures_invalid_total",
    "credence_attestations_admitted_total",
    "credence_attestations_refused_total",
    "credence_mempool_evicted_total",
    "credence_blocks_committed_total",
    "credence_attestations_committed_total",
    "credence_commit_latency_seconds",
    "credence_consensus_rejected_total",
    "credence_proposals_invalid_total",
    "credence_compact_proposals_total",
    "credence_sync_refused_total",
    "credence_synced_blocks_total",
    "credence_sync_fetch_seconds_total",
    "credence_sync_check_seconds_total",
    "credence_sync_apply_seconds_total",
    "credence_http_requests_total",
    "credence_http_request_duration_seconds",
    "credence_witness_cosignatures_total",
    "credence_witness_refusals_total",
    "credence_witness_failures_total",
    "credence_witnesses_in_force",
];

/// Bucket bounds (seconds) of the commit latency histogram: Tendermint heights take
/// from tens of milliseconds (local network) to many seconds (round changes).
pub const COMMIT_LATENCY_BUCKETS: [f64; 12] = [0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0];
/// Bucket bounds (seconds) of the HTTP request duration histogram.
pub const HTTP_DURATION_BUCKETS: [f64; 10] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5];

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that only goes up.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A fixed-bucket histogram of durations. The sum is kept in nanoseconds.
#[derive(Debug)]
pub struct Histogram<const N: usize> {
    bounds: [f64; N],
    /// Non-cumulative counts per bucket; the last slot is `+Inf`.
    buckets: [AtomicU64; N],
    overflow: AtomicU64,
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    pub fn new(bounds: [f64; N]) -> Self {
        Histogram {
            bounds,
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            overflow: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        match self.bounds.iter().position(|b| secs <= *b) {
            Some(i) => self.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => self.overflow.fetch_add(1, Ordering::Relaxed),
        };
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, help, "histogram");
        let mut cumulative = 0u64;
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.overflow.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

/// The node's metrics; shared as `Arc<Metrics>` by the driver, the network and the API.
#[derive(Debug)]
pub struct Metrics {
    pub height: Gauge,
    pub tree_size: Gauge,
    pub peers: Gauge,
    pub syncing: Gauge,
    pub mempool_records: Gauge,
    pub mempool_bytes: Gauge,
    pub mempool_held: Gauge,
    pub signatures_verified: Counter,
    pub signatures_invalid: Counter,
    pub attestations_admitted: Counter,
    pub mempool_evicted: Counter,
    pub blocks_committed: Counter,
    pub attestations_committed: Counter,
    pub consensus_rejected: Counter,
    pub proposals_invalid: Counter,
    /// The replica's compact-proposal counters (filled, filled later, dropped, sent
    /// whole), copied from its stats by the driver.
    pub compact_proposals: [Gauge; 4],
    pub sync_refused: Counter,
    pub synced_blocks: Counter,
    /// Microseconds; rendered in seconds.
    pub sync_fetch_us: Counter,
    pub sync_check_us: Counter,
    pub sync_apply_us: Counter,
    pub commit_latency: Histogram<12>,
    pub http_duration: Histogram<10>,
    /// Refusals by error code (a bounded set of codes).
    refused: Mutex<BTreeMap<String, u64>>,
    /// Requests by (method, route template, status).
    http: Mutex<BTreeMap<(&'static str, &'static str, u16), u64>>,
    /// Witness outcomes by (witness name, status; 200 cosigned, 0 no answer or 5xx).
    witness: Mutex<BTreeMap<(String, u16), u64>>,
    /// Witnesses in force at the head, set by the witness client's supervisor.
    pub witnesses_in_force: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn scalar(out: &mut String, name: &str, help: &str, kind: &str, v: u64) {
    header(out, name, help, kind);
    let _ = writeln!(out, "{name} {v}");
}

/// Escapes a label value (backslash, double quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            height: Gauge::default(),
            tree_size: Gauge::default(),
            peers: Gauge::default(),
            syncing: Gauge::default(),
            mempool_records: Gauge::default(),
            mempool_bytes: Gauge::default(),
            mempool_held: Gauge::default(),
            signatures_verified: Counter::default(),
            signatures_invalid: Counter::default(),
            attestations_admitted: Counter::default(),
            mempool_evicted: Counter::default(),
            blocks_committed: Counter::default(),
            attestations_committed: Counter::default(),
            consensus_rejected: Counter::default(),
            proposals_invalid: Counter::default(),
            compact_proposals: Default::default(),
            sync_refused: Counter::default(),
            synced_blocks: Counter::default(),
            sync_fetch_us: Counter::default(),
            sync_check_us: Counter::default(),
            sync_apply_us: Counter::default(),
            commit_latency: Histogram::new(COMMIT_LATENCY_BUCKETS),
            http_duration: Histogram::new(HTTP_DURATION_BUCKETS),
            refused: Mutex::new(BTreeMap::new()),
            witness: Mutex::new(BTreeMap::new()),
            witnesses_in_force: Gauge::default(),
            http: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records a committed block: its height, tree size, records and the time its step took.
    pub fn observe_commit(&self, height: u64, tree_size: u64, records: usize, latency: Duration) {
        self.height.set(height);
        self.tree_size.set(tree_size);
        self.blocks_committed.inc();
        self.attestations_committed.add(records as u64);
        self.commit_latency.observe(latency);
    }

    /// Sets the mempool gauges.
    pub fn observe_mempool(&self, stats: &MempoolStats) {
        self.mempool_records.set(stats.records as u64);
        self.mempool_bytes.set(stats.bytes as u64);
        self.mempool_held.set(stats.held as u64);
    }

    /// Counts what one [`admit_batch`](crate::mempool::admit_batch) did (API or gossip):
    /// signatures checked, valid or not, records admitted and held records evicted.
    pub fn observe_admission(&self, batch: &BatchOutcome) {
        let bad = |r: &&Result<_, AdmitError>| matches!(r, Err(AdmitError::Rule(Rejection::BadSignature(_))));
        self.signatures_verified.add(batch.verified as u64);
        self.signatures_invalid.add(batch.results.iter().filter(bad).count() as u64);
        self.attestations_admitted.add(batch.admitted() as u64);
        let evicted: usize = batch.results.iter().flatten().map(|a| a.evicted.len()).sum();
        self.mempool_evicted.add(evicted as u64);
    }

    /// Counts a witness's answer to a checkpoint: 200 cosigned, a 4xx refusal, 0 a failure
    /// (no answer in time, or a 5xx).
    pub fn witness_outcome(&self, witness: &str, status: u16) {
        let mut m = self.witness.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry((witness.to_owned(), status)).or_insert(0) += 1;
    }

    /// Counts an attestation refused with admission error `code`.
    pub fn refused(&self, code: &str) {
        let mut m = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        match m.get_mut(code) {
            Some(n) => *n += 1,
            None => {
                m.insert(code.to_string(), 1);
            }
        }
    }

    /// Total refusals with `code`.
    pub fn refused_count(&self, code: &str) -> u64 {
        self.refused.lock().unwrap_or_else(|p| p.into_inner()).get(code).copied().unwrap_or(0)
    }

    /// Counts one HTTP request.
    pub fn http_request(&self, method: &str, route: &'static str, status: u16, took: Duration) {
        let method = match method {
            "GET" => "GET",
            "POST" => "POST",
            "HEAD" => "HEAD",
            "PUT" => "PUT",
            "DELETE" => "DELETE",
            "PATCH" => "PATCH",
            "OPTIONS" => "OPTIONS",
            _ => "other",
        };
        *self.http.lock().unwrap_or_else(|p| p.into_inner()).entry((method, route, status)).or_insert(0) += 1;
        self.http_duration.observe(took);
    }

    /// The exposition text (`text/plain; version=0.0.4`).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        scalar(&mut out, "credence_height", "Height of the last committed block.", "gauge", self.height.get());
        let tree = self.tree_size.get();
        scalar(&mut out, "credence_tree_size", "Leaves in the ledger's Merkle tree.", "gauge", tree);
        scalar(&mut out, "credence_peers", "Connected peers.", "gauge", self.peers.get());
        scalar(&mut out, "credence_syncing", "1 while catching up by block sync.", "gauge", self.syncing.get());
        let records = self.mempool_records.get();
        scalar(&mut out, "credence_mempool_records", "Pending attestations (ready and held).", "gauge", records);
        let bytes = self.mempool_bytes.get();
        scalar(&mut out, "credence_mempool_bytes", "Canonical bytes of pending attestations.", "gauge", bytes);
        let held = self.mempool_held.get();
        scalar(
            &mut out,
            "credence_mempool_held",
            "Pending attestations waiting for an earlier sequence.",
            "gauge",
            held,
        );
        let help = "Attestation signatures checked and valid.";
        scalar(&mut out, "credence_signatures_verified_total", help, "counter", self.signatures_verified.get());
        let help = "Attestation signatures checked and invalid.";
        scalar(&mut out, "credence_signatures_invalid_total", help, "counter", self.signatures_invalid.get());
        let help = "Attestations admitted to the mempool.";
        scalar(&mut out, "credence_attestations_admitted_total", help, "counter", self.attestations_admitted.get());
        header(&mut out, "credence_attestations_refused_total", "Attestations refused, by error code.", "counter");
        for (code, n) in self.refused.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "credence_attestations_refused_total{{code=\"{}\"}} {n}", label(code));
        }
        let help = "Pending attestations a commit made invalid.";
        scalar(&mut out, "credence_mempool_evicted_total", help, "counter", self.mempool_evicted.get());
        scalar(
            &mut out,
            "credence_blocks_committed_total",
            "Blocks committed.",
            "counter",
            self.blocks_committed.get(),
        );
        let help = "Attestations committed.";
        scalar(&mut out, "credence_attestations_committed_total", help, "counter", self.attestations_committed.get());
        let help = "Time of the node's step that committed a block, verification and storage included.";
        self.commit_latency.render(&mut out, "credence_commit_latency_seconds", help);
        let help = "Consensus messages refused as invalid and not forwarded.";
        scalar(&mut out, "credence_consensus_rejected_total", help, "counter", self.consensus_rejected.get());
        let help = "Proposed blocks that failed validation.";
        scalar(&mut out, "credence_proposals_invalid_total", help, "counter", self.proposals_invalid.get());
        let name = "credence_compact_proposals_total";
        header(&mut out, name, "Compact proposals received by outcome, and this node's sent again whole.", "counter");
        for (outcome, g) in ["filled", "filled_later", "dropped", "sent_whole"].iter().zip(&self.compact_proposals) {
            let _ = writeln!(out, "{name}{{outcome=\"{outcome}\"}} {}", g.get());
        }
        let help = "Peers' sync requests refused for their per-peer budget.";
        scalar(&mut out, "credence_sync_refused_total", help, "counter", self.sync_refused.get());
        let help = "Blocks fetched by sync, verified and stored.";
        scalar(&mut out, "credence_synced_blocks_total", help, "counter", self.synced_blocks.get());
        for (name, help, us) in [
            (
                "credence_sync_fetch_seconds_total",
                "Time waiting for sync answers, summed over requests.",
                &self.sync_fetch_us,
            ),
            (
                "credence_sync_check_seconds_total",
                "Time checking sync answers' signatures ahead, summed over answers.",
                &self.sync_check_us,
            ),
            (
                "credence_sync_apply_seconds_total",
                "Time the driver spent applying and committing sync answers.",
                &self.sync_apply_us,
            ),
        ] {
            header(&mut out, name, help, "counter");
            let _ = writeln!(out, "{name} {:.6}", us.get() as f64 / 1e6);
        }
        header(&mut out, "credence_http_requests_total", "HTTP requests by method, route and status.", "counter");
        for ((method, route, status), n) in self.http.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(
                out,
                "credence_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                label(route)
            );
        }
        let help = "HTTP request handling time.";
        self.http_duration.render(&mut out, "credence_http_request_duration_seconds", help);
        let witness = self.witness.lock().unwrap_or_else(|p| p.into_inner());
        let help = "Checkpoints a witness in force cosigned for this node.";
        header(&mut out, "credence_witness_cosignatures_total", help, "counter");
        for ((w, _), n) in witness.iter().filter(|((_, s), _)| *s == 200) {
            let _ = writeln!(out, "credence_witness_cosignatures_total{{witness=\"{}\"}} {n}", label(w));
        }
        let help = "Checkpoints a witness in force refused, by HTTP status.";
        header(&mut out, "credence_witness_refusals_total", help, "counter");
        for ((w, s), n) in witness.iter().filter(|((_, s), _)| (400..500).contains(s)) {
            let _ = writeln!(out, "credence_witness_refusals_total{{witness=\"{}\",status=\"{s}\"}} {n}", label(w));
        }
        let help = "Submissions to a witness with no answer in time, or a 5xx.";
        header(&mut out, "credence_witness_failures_total", help, "counter");
        for ((w, _), n) in witness.iter().filter(|((_, s), _)| *s == 0) {
            let _ = writeln!(out, "credence_witness_failures_total{{witness=\"{}\"}} {n}", label(w));
        }
        drop(witness);
        let help =
            "Witnesses in force at the head (genesis's and governance's), which the node submits checkpoints to.";
        scalar(&mut out, "credence_witnesses_in_force", help, "gauge", self.witnesses_in_force.get());
        out
    }
}
