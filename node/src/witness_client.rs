//! The node's side of C2SP tlog-witness: each new checkpoint goes to every witness named in genesis with `POST <url>/add-checkpoint`, and the `cosignature/v1` lines they return are kept and served with the checkpoint.
//!
//! One task per witness. Its queue is the latest committed checkpoint only ([`QUEUE_NOTES_MAX`]
//! = 1: a newer head replaces one not yet sent, since a witness only needs the latest): it
//! reads the head every [`POLL_MS`], and submits it with the old size this witness last
//! cosigned for this node (0 at start) and the consistency proof from the store. Answers:
//! * 200: the cosignature line is checked against the witness's genesis key, kept for that
//!   height ([`Cosignatures`], at most [`COSIGNED_HEIGHTS_MAX`] heights), and its size becomes
//!   the old size.
//! * 409 `text/x.tlog.size` with a size other than the old size sent: the witness cosigned
//!   another size (a restart, another node of the chain): the node adopts it and resubmits at
//!   once with the right proof (at most [`ADOPTIONS_MAX`] times per checkpoint), or waits for
//!   a head that reaches it.
//! * 409 naming the old size sent (same size, another root: a fork), 422 (bad proof: the
//!   witness holds a history this node's does not extend), 400/403/404: a refusal, logged and
//!   counted in `credence_witness_refusals_total{witness,status}`; then back-off.
//! * no answer within [`TIMEOUT_MS`], or a 5xx: a failure, counted; back-off.
//!
//! Back-off doubles from [`BACKOFF_MS_MIN`] to [`BACKOFF_MS_MAX`] and resets on a cosignature.
//! Only plain HTTP/1.1 (genesis URLs are `http://`); answers are read up to
//! [`RESPONSE_BYTES_MAX`] bytes.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use hyper::client::conn::http1;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tracing::{debug, info, warn};

use credence_ledger::genesis::{Genesis, GenesisWitness};
use credence_ledger::merkle;
use credence_ledger::witness::{AddCheckpoint, parse_witnessed_note};

use crate::api::{SharedStore, StoreView};
use crate::metrics::Metrics;

/// How often a witness task looks for a new head, ms.
pub const POLL_MS: u64 = 200;
/// Checkpoints waiting per witness: the latest only.
pub const QUEUE_NOTES_MAX: usize = 1;
/// Longest wait for a witness's answer (connect, send, read), ms.
pub const TIMEOUT_MS: u64 = 5_000;
/// Back-off after a refusal or a failure: first, and largest, ms.
pub const BACKOFF_MS_MIN: u64 = 500;
pub const BACKOFF_MS_MAX: u64 = 60_000;
/// Resubmissions of one checkpoint after 409s naming another size.
pub const ADOPTIONS_MAX: usize = 2;
/// Most bytes of a witness's answer read.
pub const RESPONSE_BYTES_MAX: usize = 4 * 1024;
/// Heights whose cosignatures are kept (the oldest dropped first).
pub const COSIGNED_HEIGHTS_MAX: usize = 256;

/// The witnesses' cosignature lines per height, for the latest [`COSIGNED_HEIGHTS_MAX`] heights.
#[derive(Debug, Default)]
pub struct Cosignatures {
    inner: Mutex<VecDeque<(u64, BTreeMap<String, String>)>>,
}

impl Cosignatures {
    /// Keeps `witness`'s line for the checkpoint at `height` (replacing an older line of it).
    pub fn add(&self, height: u64, witness: &str, line: String) {
        let mut q = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, lines)) = q.iter_mut().find(|(h, _)| *h == height) {
            lines.insert(witness.to_owned(), line);
            return;
        }
        // Heights arrive in order but tasks race: keep the deque sorted by height.
        let at = q.iter().position(|(h, _)| *h > height).unwrap_or(q.len());
        q.insert(at, (height, BTreeMap::from([(witness.to_owned(), line)])));
        while q.len() > COSIGNED_HEIGHTS_MAX {
            q.pop_front();
        }
    }

    /// The cosignature lines held for `height`, in witness-name order, each with its newline.
    pub fn lines(&self, height: u64) -> String {
        let q = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        q.iter().find(|(h, _)| *h == height).map(|(_, l)| l.values().cloned().collect()).unwrap_or_default()
    }
}

/// The head's checkpoint as a task reads it.
struct Head {
    height: u64,
    size: u64,
    note: String,
}

fn read_head(store: &SharedStore) -> Result<Option<Head>, String> {
    let s = store.read().map_err(|_| "store lock poisoned".to_owned())?;
    let Some(head) = s.head().map_err(|e| e.to_string())? else { return Ok(None) };
    let cert = s.certificate(head.height).map_err(|e| e.to_string())?;
    let cert = cert.ok_or_else(|| format!("certificate of head {} is missing", head.height))?;
    Ok(Some(Head { height: head.height, size: cert.body.tree_size, note: cert.to_note() }))
}

fn proof(store: &SharedStore, old: u64, new: u64) -> Result<Vec<merkle::NodeHash>, String> {
    if old == 0 {
        return Ok(Vec::new());
    }
    let s = store.read().map_err(|_| "store lock poisoned".to_owned())?;
    merkle::consistency_proof(old, new, &StoreView(&*s)).map_err(|e| e.to_string())
}

/// Starts one submitting task per witness in `genesis`; they run until aborted.
pub fn spawn(
    genesis: &Genesis,
    store: SharedStore,
    cosigs: Arc<Cosignatures>,
    metrics: Arc<Metrics>,
) -> Vec<tokio::task::JoinHandle<()>> {
    genesis
        .witnesses
        .iter()
        .map(|w| tokio::spawn(run(w.clone(), store.clone(), cosigs.clone(), metrics.clone())))
        .collect()
}

/// What one submission came to.
enum Outcome {
    Cosigned,
    /// The witness cosigned another size: adopt it.
    Adopt(u64),
    Refused,
    Failed,
}

async fn run(w: GenesisWitness, store: SharedStore, cosigs: Arc<Cosignatures>, metrics: Arc<Metrics>) {
    let mut old_size = 0u64;
    let mut done_height = 0u64;
    let mut backoff_ms = BACKOFF_MS_MIN;
    info!(witness = %w.name, url = %w.url, "submitting checkpoints to witness");
    loop {
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        let st = store.clone();
        let head = match tokio::task::spawn_blocking(move || read_head(&st)).await {
            Ok(Ok(Some(h))) => h,
            Ok(Ok(None)) => continue,
            Ok(Err(e)) => {
                warn!(witness = %w.name, error = %e, "witness client: cannot read the head");
                continue;
            }
            Err(_) => continue,
        };
        if head.height <= done_height {
            continue;
        }
        let mut failed = false;
        for _ in 0..=ADOPTIONS_MAX {
            if old_size > head.size {
                // The witness holds a larger checkpoint of this chain: wait for a head that reaches it.
                debug!(witness = %w.name, old_size, size = head.size, "witness is ahead of this node");
                break;
            }
            match submit(&w, &store, &cosigs, &metrics, &head, old_size).await {
                Outcome::Cosigned => {
                    old_size = head.size;
                    done_height = head.height;
                    backoff_ms = BACKOFF_MS_MIN;
                    break;
                }
                Outcome::Adopt(size) => old_size = size,
                Outcome::Refused | Outcome::Failed => {
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
            backoff_ms = backoff_ms.saturating_mul(2).min(BACKOFF_MS_MAX);
        }
    }
}

async fn submit(
    w: &GenesisWitness,
    store: &SharedStore,
    cosigs: &Cosignatures,
    metrics: &Metrics,
    head: &Head,
    old_size: u64,
) -> Outcome {
    let st = store.clone();
    let size = head.size;
    let proof = match tokio::task::spawn_blocking(move || proof(&st, old_size, size)).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            warn!(witness = %w.name, error = %e, old_size, size, "witness client: no consistency proof");
            return Outcome::Failed;
        }
        Err(_) => return Outcome::Failed,
    };
    let body = AddCheckpoint { old_size, proof, note: head.note.clone() }.to_body();
    let answer = tokio::time::timeout(Duration::from_millis(TIMEOUT_MS), post(&w.url, body)).await;
    let (status, text) = match answer {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            warn!(witness = %w.name, error = %e, "witness: no answer");
            metrics.witness_outcome(&w.name, 0);
            return Outcome::Failed;
        }
        Err(_) => {
            warn!(witness = %w.name, timeout_ms = TIMEOUT_MS, "witness: no answer in time");
            metrics.witness_outcome(&w.name, 0);
            return Outcome::Failed;
        }
    };
    match status {
        200 => match check_cosignature(w, head, &text) {
            Ok(line) => {
                cosigs.add(head.height, &w.name, line);
                metrics.witness_outcome(&w.name, 200);
                debug!(witness = %w.name, height = head.height, size, "checkpoint cosigned");
                Outcome::Cosigned
            }
            Err(e) => {
                warn!(witness = %w.name, error = %e, "witness answered 200 without a valid cosignature");
                metrics.witness_outcome(&w.name, 0);
                Outcome::Failed
            }
        },
        409 => match text.trim_end_matches('\n').parse::<u64>() {
            Ok(theirs) if theirs != old_size => {
                info!(witness = %w.name, old_size, theirs, "witness cosigned another size: adopting it");
                Outcome::Adopt(theirs)
            }
            _ => {
                warn!(
                    witness = %w.name, status, size, old_size, answer = %text.trim_end(),
                    "WITNESS REFUSED the checkpoint: it cosigned another root at this size (a forked history)"
                );
                metrics.witness_outcome(&w.name, 409);
                Outcome::Refused
            }
        },
        400..=499 => {
            warn!(
                witness = %w.name, status, size, old_size, answer = %text.trim_end(),
                "WITNESS REFUSED the checkpoint"
            );
            metrics.witness_outcome(&w.name, status);
            Outcome::Refused
        }
        _ => {
            warn!(witness = %w.name, status, answer = %text.trim_end(), "witness failed");
            metrics.witness_outcome(&w.name, 0);
            Outcome::Failed
        }
    }
}

/// The one cosignature line of `text` if it is `w`'s valid cosignature on `head`.
fn check_cosignature(w: &GenesisWitness, head: &Head, text: &str) -> Result<String, String> {
    let note = format!("{}{text}", head.note);
    let (cp, cosigs) = parse_witnessed_note(&note).map_err(|e| e.to_string())?;
    let [c] = cosigs.as_slice() else {
        return Err(format!("expected one cosignature/v1 line, got {}", cosigs.len()));
    };
    c.verify(&cp.body, &w.key()).map_err(|e| e.to_string())?;
    Ok(c.to_line())
}

/// `POST <url>/add-checkpoint` over plain HTTP/1.1: status and body (at most
/// [`RESPONSE_BYTES_MAX`] bytes). The caller bounds the time.
async fn post(url: &str, body: String) -> Result<(u16, String), String> {
    let rest = url.strip_prefix("http://").ok_or("not an http:// URL")?;
    let (authority, prefix) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let stream = tokio::net::TcpStream::connect(authority).await.map_err(|e| format!("connect {authority}: {e}"))?;
    let (mut sender, conn) = http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("{prefix}/add-checkpoint"))
        .header(HOST, authority)
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .map_err(|e| e.to_string())?;
    let result = async {
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let bytes =
            axum::body::to_bytes(Body::new(resp.into_body()), RESPONSE_BYTES_MAX).await.map_err(|e| e.to_string())?;
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }
    .await;
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosignatures_are_kept_per_height_in_order_and_bounded() {
        let c = Cosignatures::default();
        c.add(2, "b", "— b x\n".into());
        c.add(2, "a", "— a x\n".into());
        c.add(1, "a", "— a y\n".into());
        assert_eq!(c.lines(2), "— a x\n— b x\n");
        assert_eq!(c.lines(1), "— a y\n");
        assert_eq!(c.lines(3), "");
        for h in 3..(3 + COSIGNED_HEIGHTS_MAX as u64) {
            c.add(h, "a", format!("— a {h}\n"));
        }
        assert_eq!(c.lines(1), "", "the oldest heights are dropped first");
        assert_eq!(c.lines(2), "");
        assert_eq!(c.lines(3), "— a 3\n");
    }
}
