//! The node's side of C2SP tlog-witness: each new checkpoint goes to every witness in force at its height (named in genesis or by governance) with `POST <url>/add-checkpoint`, and the `cosignature/v1` lines they return are kept and served with the checkpoint.
//!
//! The witnesses in force come from the governance state (`GovState::witnesses_at`): genesis's
//! `[[witnesses]]`, then those `add-witness` changes added and `remove-witness` changes removed,
//! each from its activation height. A supervising task reads the set in force at the head
//! every [`POLL_MS`]: it starts a task for a witness that came into force and stops the task
//! of one that left (at most `WITNESSES_MAX` run at once). A task submits a checkpoint only if
//! its witness is in force at the checkpoint's height (read with the head, under one store
//! lock), so no checkpoint from a removal's height on goes to the removed witness.
//!
//! One task per witness. Its queue is the latest committed checkpoint only ([`QUEUE_NOTES_MAX`]
//! = 1: a newer head replaces one not yet sent, since a witness only needs the latest): it
//! reads the head every [`POLL_MS`], and submits it with the old size this witness last
//! cosigned for this node (0 at start) and the consistency proof from the store. Answers:
//! * 200: the cosignature line is checked against the witness's key in force, kept for that
//!   height ([`Cosignatures`], at most [`COSIGNED_HEIGHTS_MAX`] heights), and its size becomes
//!   the old size.
//! * 409 `text/x.tlog.size` with a size other than the old size sent: the witness cosigned
//!   another size (a restart, another node of the chain): the node adopts it and resubmits at
//!   once with the right proof (at most [`ADOPTIONS_MAX`] times per checkpoint), or waits for
//!   a head that reaches it.
//! * 403 (not signed by the validators the witness knows in force): if the chain's validator
//!   set has changed, the node shows the witness the certified set changes up to the head
//!   (`POST <url>/credence/set-changes`, `crate::witness` §Validator sets), once per head, and
//!   submits again; otherwise, or if that is refused, a refusal as below.
//! * 409 naming the old size sent (same size, another root: a fork), 422 (bad proof: the
//!   witness holds a history this node's does not extend), 400/403/404: a refusal, logged and
//!   counted in `credence_witness_refusals_total{witness,status}`; then back-off.
//! * no answer within [`TIMEOUT_MS`], or a 5xx: a failure, counted; back-off.
//!
//! Back-off doubles from [`BACKOFF_MS_MIN`] to [`BACKOFF_MS_MAX`] and resets on a cosignature.
//!
//! The kept cosignatures are written to [`COSIGNATURES_FILE`] in the data directory after
//! each new one (temp file, fsync, rename), so a restarted node still serves them with its
//! checkpoints and bundles. On start each line is checked again against the key of the witness
//! of its name in force at its height (genesis's or governance's) and the stored certificate
//! of that height; a line that does not verify (a damaged or edited file, a witness not in
//! force then) is dropped with a warning, never served.
//! Only plain HTTP/1.1 (witness URLs are `http://`); answers are read up to
//! [`RESPONSE_BYTES_MAX`] bytes.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use hyper::client::conn::http1;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tracing::{debug, info, warn};

use credence_ledger::genesis::Genesis;
use credence_ledger::governance::GovState;
use credence_ledger::merkle;
use credence_ledger::sig::PublicKey;
use credence_ledger::store::Store;
use credence_ledger::witness::{AddCheckpoint, WitnessKey, parse_witnessed_note};

use crate::api::{SharedStore, StoreView};
use crate::bundle::{SetChange, set_changes_from};
use crate::metrics::Metrics;
use crate::witness::{SET_CHANGES_PATH, SetChangesPush};

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
/// File (in the data directory) the kept cosignatures are written to: one line per
/// cosignature, `<height> <cosignature/v1 line>`. At most [`COSIGNED_HEIGHTS_MAX`] heights
/// of [`credence_ledger::genesis::WITNESSES_MAX`] lines, so a few hundred KiB at most.
pub const COSIGNATURES_FILE: &str = "cosignatures.txt";
/// Largest [`COSIGNATURES_FILE`] read on start (far above what a node writes).
pub const COSIGNATURES_FILE_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// The witnesses' cosignature lines per height, for the latest [`COSIGNED_HEIGHTS_MAX`] heights.
#[derive(Debug, Default)]
pub struct Cosignatures {
    inner: Mutex<VecDeque<(u64, BTreeMap<String, String>)>>,
    /// Where [`Cosignatures::save`] writes them (none: kept in memory only). The lock
    /// orders writers, so the file always ends with the newest set.
    file: Option<Mutex<PathBuf>>,
}

/// What [`Cosignatures::load`] found in the file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    pub kept: usize,
    /// Lines that did not verify, or named no witness in force at their height, or no stored height.
    pub dropped: usize,
}

impl Cosignatures {
    /// Cosignatures kept in `path`, each checked again against the key of the witness of its
    /// name in force at its height (the store's governance state, or `genesis`'s for a chain
    /// governance never changed) and the certificate of that height in `store`; later ones
    /// are written there.
    /// A missing file is an empty set; an unreadable or oversized one is an error naming it.
    pub fn load(path: &Path, genesis: &Genesis, store: &SharedStore) -> Result<(Cosignatures, Loaded), String> {
        let c = Cosignatures { inner: Mutex::default(), file: Some(Mutex::new(path.to_owned())) };
        let text = match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((c, Loaded::default())),
            Err(e) => return Err(format!("{}: {e}", path.display())),
            Ok(m) if m.len() > COSIGNATURES_FILE_BYTES_MAX => {
                return Err(format!("{}: {} bytes, more than {COSIGNATURES_FILE_BYTES_MAX}", path.display(), m.len()));
            }
            Ok(_) => std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?,
        };
        let mut found = Loaded::default();
        for line in String::from_utf8_lossy(&text).lines() {
            match Self::check_saved(line, genesis, store) {
                Ok((height, witness, line)) => {
                    c.add(height, &witness, line);
                    found.kept += 1;
                }
                Err(e) => {
                    warn!(file = %path.display(), error = %e, "a kept cosignature does not verify: dropped");
                    found.dropped += 1;
                }
            }
        }
        Ok((c, found))
    }

    /// One saved line as (height, witness, cosignature line), if it verifies.
    fn check_saved(line: &str, genesis: &Genesis, store: &SharedStore) -> Result<(u64, String, String), String> {
        let (height, cosig) = line.split_once(' ').ok_or("not `<height> <line>`")?;
        let height: u64 = height.parse().map_err(|_| format!("height '{height}' is not a number"))?;
        let name = cosig.strip_prefix("\u{2014} ").and_then(|r| r.split(' ').next()).ok_or("not a signature line")?;
        let s = store.read().map_err(|_| "store lock poisoned".to_owned())?;
        let gov = governance(genesis, &*s)?;
        let w = gov
            .witness_keys_at(height)
            .into_iter()
            .find(|w| w.name == name)
            .ok_or(format!("'{name}' is no witness in force at height {height}"))?;
        let cert = s.certificate(height).map_err(|e| e.to_string())?.ok_or(format!("no certificate at {height}"))?;
        drop(s);
        let head = Head { height, size: cert.body.tree_size, note: cert.to_note() };
        let line = check_cosignature(&w, &head, &format!("{cosig}\n"))?;
        Ok((height, w.name, line))
    }

    /// Writes the kept cosignatures to the file durably (temp file, fsync, rename, fsync
    /// the directory); nothing to do for an in-memory set.
    pub fn save(&self) -> std::io::Result<()> {
        use std::io::Write;
        let Some(file) = &self.file else { return Ok(()) };
        let path = file.lock().unwrap_or_else(|p| p.into_inner());
        let text: String = {
            let q = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            q.iter().flat_map(|(h, lines)| lines.values().map(move |l| format!("{h} {l}"))).collect()
        };
        let tmp = path.with_extension("tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &*path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

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

/// A witness the client submits to: its cosigner key and where it serves `add-checkpoint`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    pub name: String,
    pub key: PublicKey,
    pub url: String,
}

impl Target {
    fn key(&self) -> WitnessKey {
        WitnessKey { name: self.name.clone(), key: self.key }
    }
}

/// The governance state after the store's last block (genesis's if governance never changed it).
fn governance(genesis: &Genesis, s: &(dyn Store + Send + Sync)) -> Result<Arc<GovState>, String> {
    Ok(s.governance().map_err(|e| e.to_string())?.unwrap_or_else(|| genesis.governance()))
}

/// The witnesses in force at `height` (at most the head's: the state after the head knows them).
fn targets_at(gov: &GovState, height: u64) -> BTreeSet<Target> {
    gov.witnesses_at(height)
        .into_iter()
        .map(|w| Target { name: w.name.clone(), key: w.key, url: w.url.clone() })
        .collect()
}

/// The witnesses in force at the head's height (at height 1 before the first block).
fn targets_at_head(genesis: &Genesis, store: &SharedStore) -> Result<BTreeSet<Target>, String> {
    let s = store.read().map_err(|_| "store lock poisoned".to_owned())?;
    let height = s.head().map_err(|e| e.to_string())?.map_or(1, |h| h.height);
    Ok(targets_at(&governance(genesis, &*s)?.advanced(height), height))
}

/// The head's checkpoint, if `target` is in force at its height (`None` otherwise, or before
/// the first block).
fn read_head(genesis: &Genesis, store: &SharedStore, target: &Target) -> Result<Option<Head>, String> {
    let s = store.read().map_err(|_| "store lock poisoned".to_owned())?;
    let Some(head) = s.head().map_err(|e| e.to_string())? else { return Ok(None) };
    if !targets_at(&governance(genesis, &*s)?.advanced(head.height), head.height).contains(target) {
        return Ok(None);
    }
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

/// Starts the supervising task, which keeps one submitting task per witness in force at the
/// head; they run until it is aborted (its tasks with it).
pub fn spawn(
    genesis: &Genesis,
    store: SharedStore,
    cosigs: Arc<Cosignatures>,
    metrics: Arc<Metrics>,
) -> Vec<tokio::task::JoinHandle<()>> {
    vec![tokio::spawn(supervise(Arc::new(genesis.clone()), store, cosigs, metrics))]
}

/// Every [`POLL_MS`]: starts a task for each witness in force at the head that has none,
/// stops the task of each witness no longer in force. The tasks live in a `JoinSet`, so
/// aborting this task aborts them.
async fn supervise(genesis: Arc<Genesis>, store: SharedStore, cosigs: Arc<Cosignatures>, metrics: Arc<Metrics>) {
    let mut tasks: tokio::task::JoinSet<()> = tokio::task::JoinSet::new();
    let mut running: BTreeMap<Target, tokio::task::AbortHandle> = BTreeMap::new();
    loop {
        while tasks.try_join_next().is_some() {}
        let (g, st) = (genesis.clone(), store.clone());
        match tokio::task::spawn_blocking(move || targets_at_head(&g, &st)).await {
            Ok(Ok(want)) => {
                metrics.witnesses_in_force.set(want.len() as u64);
                running.retain(|t, task| {
                    let keep = want.contains(t);
                    if !keep {
                        task.abort();
                        info!(witness = %t.name, url = %t.url, "witness no longer in force: stopped submitting to it");
                    }
                    keep
                });
                for t in want {
                    if let std::collections::btree_map::Entry::Vacant(slot) = running.entry(t) {
                        let task = tasks.spawn(run(
                            slot.key().clone(),
                            genesis.clone(),
                            genesis.checkpoint_origin.clone(),
                            store.clone(),
                            cosigs.clone(),
                            metrics.clone(),
                        ));
                        slot.insert(task);
                    }
                }
            }
            Ok(Err(e)) => warn!(error = %e, "witness client: cannot read the witnesses in force"),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
}

/// What one submission came to.
enum Outcome {
    Cosigned,
    /// The witness cosigned another size: adopt it.
    Adopt(u64),
    /// A refusal with this status.
    Refused(u16),
    Failed,
}

async fn run(
    w: Target,
    genesis: Arc<Genesis>,
    origin: String,
    store: SharedStore,
    cosigs: Arc<Cosignatures>,
    metrics: Arc<Metrics>,
) {
    let mut old_size = 0u64;
    let mut done_height = 0u64;
    let mut backoff_ms = BACKOFF_MS_MIN;
    // The head height up to which this witness was last shown the set changes.
    let mut taught_height = 0u64;
    info!(witness = %w.name, url = %w.url, "submitting checkpoints to witness");
    loop {
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        let (g, st, target) = (genesis.clone(), store.clone(), w.clone());
        let head = match tokio::task::spawn_blocking(move || read_head(&g, &st, &target)).await {
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
                // Perhaps signed by a set the witness does not know: show it the set changes
                // (once per head) and submit again.
                Outcome::Refused(403) if taught_height < head.height => {
                    taught_height = head.height;
                    if !teach(&w, &origin, &store, head.height).await {
                        failed = true;
                        break;
                    }
                }
                Outcome::Refused(_) | Outcome::Failed => {
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
    w: &Target,
    store: &SharedStore,
    cosigs: &Arc<Cosignatures>,
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
    let answer =
        tokio::time::timeout(Duration::from_millis(TIMEOUT_MS), post(&w.url, "/add-checkpoint", TEXT, body)).await;
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
        200 => match check_cosignature(&w.key(), head, &text) {
            Ok(line) => {
                cosigs.add(head.height, &w.name, line);
                let keep = cosigs.clone();
                match tokio::task::spawn_blocking(move || keep.save()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => warn!(error = %e, "cannot write {COSIGNATURES_FILE}: kept in memory only"),
                    Err(e) => warn!(error = %e, "cannot write {COSIGNATURES_FILE}: kept in memory only"),
                }
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
                Outcome::Refused(409)
            }
        },
        400..=499 => {
            warn!(
                witness = %w.name, status, size, old_size, answer = %text.trim_end(),
                "WITNESS REFUSED the checkpoint"
            );
            metrics.witness_outcome(&w.name, status);
            Outcome::Refused(status)
        }
        _ => {
            warn!(witness = %w.name, status, answer = %text.trim_end(), "witness failed");
            metrics.witness_outcome(&w.name, 0);
            Outcome::Failed
        }
    }
}

/// The chain's validator-set changes up to `height` (none if its set never changed).
fn set_changes(store: &SharedStore, height: u64) -> Result<Vec<SetChange>, String> {
    let s = store.read().map_err(|_| "store lock poisoned".to_owned())?;
    let Some(gov) = s.governance().map_err(|e| e.to_string())? else { return Ok(Vec::new()) };
    set_changes_from(&*s, &gov.epochs, height).map_err(|e| e.to_string())
}

/// Shows `w` the set changes up to `height` ([`crate::witness::SET_CHANGES_PATH`]): true if
/// there were some and it took them.
async fn teach(w: &Target, origin: &str, store: &SharedStore, height: u64) -> bool {
    let st = store.clone();
    let changes = match tokio::task::spawn_blocking(move || set_changes(&st, height)).await {
        Ok(Ok(c)) if c.is_empty() => return false,
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            warn!(witness = %w.name, error = %e, "witness client: cannot make the set changes");
            return false;
        }
        Err(_) => return false,
    };
    let n = changes.len();
    let push = SetChangesPush { origin: origin.to_owned(), set_changes: changes };
    let Ok(body) = serde_json::to_string(&push) else { return false };
    let sent = post(&w.url, SET_CHANGES_PATH, "application/json", body);
    match tokio::time::timeout(Duration::from_millis(TIMEOUT_MS), sent).await {
        Ok(Ok((200, text))) => {
            info!(witness = %w.name, changes = n, answer = %text.trim_end(), "witness shown the validator-set changes");
            true
        }
        Ok(Ok((status, text))) => {
            warn!(witness = %w.name, status, answer = %text.trim_end(), "WITNESS REFUSED the validator-set changes");
            false
        }
        Ok(Err(e)) => {
            warn!(witness = %w.name, error = %e, "witness: no answer to the set changes");
            false
        }
        Err(_) => false,
    }
}

/// The one cosignature line of `text` if it is `w`'s valid cosignature on `head`.
fn check_cosignature(w: &WitnessKey, head: &Head, text: &str) -> Result<String, String> {
    let note = format!("{}{text}", head.note);
    let (cp, cosigs) = parse_witnessed_note(&note).map_err(|e| e.to_string())?;
    let [c] = cosigs.as_slice() else {
        return Err(format!("expected one cosignature/v1 line, got {}", cosigs.len()));
    };
    c.verify(&cp.body, w).map_err(|e| e.to_string())?;
    Ok(c.to_line())
}

const TEXT: &str = "text/plain; charset=utf-8";

/// `POST <url><path>` over plain HTTP/1.1: status and body (at most [`RESPONSE_BYTES_MAX`]
/// bytes). The caller bounds the time.
async fn post(url: &str, path: &str, content_type: &str, body: String) -> Result<(u16, String), String> {
    let rest = url.strip_prefix("http://").ok_or("not an http:// URL")?;
    let (authority, prefix) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let stream = tokio::net::TcpStream::connect(authority).await.map_err(|e| format!("connect {authority}: {e}"))?;
    let (mut sender, conn) = http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("{prefix}{path}"))
        .header(HOST, authority)
        .header(CONTENT_TYPE, content_type)
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

    /// Saved cosignatures come back after a restart; a line moved to another height, one
    /// of a height the store lacks, one by no witness in force at its height, and garbage are dropped.
    #[test]
    fn kept_cosignatures_survive_a_restart_and_edited_lines_are_dropped() {
        use credence_ledger::demo::ChainBuilder;
        use credence_ledger::genesis::GenesisWitness;
        use credence_ledger::sig::SecretKey;
        use credence_ledger::store::{MemStore, Store};
        use credence_ledger::witness::Cosignature;

        let mut b = ChainBuilder::new(1, 1_600_000_000_000).unwrap();
        let g = b.genesis().clone();
        let mut mem = MemStore::new(&g);
        for _ in 0..3 {
            mem.commit(&b.next_block(2).unwrap()).unwrap();
        }
        let store: SharedStore = Arc::new(std::sync::RwLock::new(mem));
        let sk = SecretKey::from_seed([41; 32]);
        let witness =
            GenesisWitness { name: "w.example/1".into(), public_key: sk.public(), url: "http://127.0.0.1:1".into() };
        let gw = g.clone().with_witnesses(vec![witness]).unwrap();
        let line_at = |h: u64| {
            let cert = store.read().unwrap().certificate(h).unwrap().unwrap();
            Cosignature::sign(&cert.body, &gw.witness_keys()[0], &sk, 1_700_000_000 + h).to_line()
        };

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(COSIGNATURES_FILE);
        let (c, found) = Cosignatures::load(&path, &gw, &store).unwrap();
        assert_eq!(found, Loaded::default(), "no file: an empty set");
        for h in 1..=3 {
            c.add(h, "w.example/1", line_at(h));
        }
        c.save().unwrap();
        let (again, found) = Cosignatures::load(&path, &gw, &store).unwrap();
        assert_eq!(found, Loaded { kept: 3, dropped: 0 });
        for h in 1..=3 {
            assert!(!again.lines(h).is_empty());
            assert_eq!(again.lines(h), c.lines(h), "height {h}");
        }

        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let moved = lines[0].replacen("1 ", "2 ", 1);
        let absent = lines[0].replacen("1 ", "9 ", 1);
        let edited = format!("{moved}\n{}\n{}\n{absent}\ngarbage\n", lines[1], lines[2]);
        std::fs::write(&path, edited).unwrap();
        let (after, found) = Cosignatures::load(&path, &gw, &store).unwrap();
        assert_eq!(found, Loaded { kept: 2, dropped: 3 });
        assert_eq!(after.lines(1), "", "the moved line is not served at its new height nor its old");
        assert_eq!(after.lines(2), c.lines(2));
        assert_eq!(after.lines(9), "");
        // Under a genesis that names no witness, none of it is served.
        assert_eq!(Cosignatures::load(&path, &g, &store).unwrap().1, Loaded { kept: 0, dropped: 5 });
        // An oversized file is refused, naming it.
        std::fs::write(&path, vec![b'x'; COSIGNATURES_FILE_BYTES_MAX as usize + 1]).unwrap();
        let e = Cosignatures::load(&path, &gw, &store).unwrap_err();
        assert!(e.contains(COSIGNATURES_FILE) && e.contains("more than"), "{e}");
    }

    /// A witness governance added: its kept cosignatures come back after a restart only for
    /// heights where it is in force (from its activation height), as the node serves them.
    #[test]
    fn kept_cosignatures_of_a_governance_witness_count_only_from_its_activation() {
        use credence_ledger::attestation::{Claim, GovernanceApproval, GovernanceProposal};
        use credence_ledger::demo::ChainBuilder;
        use credence_ledger::governance::{ACTIVATION_DELAY_HEIGHTS, Change};
        use credence_ledger::rules::StateView;
        use credence_ledger::sig::SecretKey;
        use credence_ledger::store::{MemStore, Store};
        use credence_ledger::witness::Cosignature;

        let mut b = ChainBuilder::new(1, 1_600_000_000_000).unwrap();
        let g = b.genesis().clone();
        let validators: Vec<usize> = (0..g.members.len()).filter(|i| g.members[*i].validator).collect();
        let sk = SecretKey::from_seed([43; 32]);
        let w = WitnessKey { name: "w.example/gov".into(), key: sk.public() };
        let mut mem = MemStore::new(&g);
        let change = Change::AddWitness { name: w.name.clone(), key: w.key, url: "http://127.0.0.1:1".into() };
        let expires_at_ms = b.time_ms() + 86_400_000;
        let proposal = Claim::GovernanceProposal(Box::new(GovernanceProposal { change, expires_at_ms }));
        mem.commit(&b.next_block_of(vec![(validators[0], proposal)]).unwrap()).unwrap();
        let id = mem.governance().unwrap().unwrap().proposals[0].id;
        let approvals = validators[1..3]
            .iter()
            .map(|v| (*v, Claim::GovernanceApproval(GovernanceApproval { proposal: id })))
            .collect();
        mem.commit(&b.next_block_of(approvals).unwrap()).unwrap();
        let from = 2 + ACTIVATION_DELAY_HEIGHTS;
        for _ in 3..=from + 1 {
            mem.commit(&b.next_block(1).unwrap()).unwrap();
        }
        let store: SharedStore = Arc::new(std::sync::RwLock::new(mem));
        let gov = store.read().unwrap().governance().unwrap().unwrap();
        assert_eq!(gov.witness_keys_at(from), std::slice::from_ref(&w));
        assert!(gov.witness_keys_at(from - 1).is_empty());
        assert_eq!(targets_at_head(&g, &store).unwrap().len(), 1, "the supervisor starts a task for it");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(COSIGNATURES_FILE);
        let c = Cosignatures { inner: Mutex::default(), file: Some(Mutex::new(path.clone())) };
        for h in from - 1..=from + 1 {
            let cert = store.read().unwrap().certificate(h).unwrap().unwrap();
            c.add(h, &w.name, Cosignature::sign(&cert.body, &w, &sk, 1_700_000_000 + h).to_line());
        }
        c.save().unwrap();
        let (again, found) = Cosignatures::load(&path, &g, &store).unwrap();
        assert_eq!(found, Loaded { kept: 2, dropped: 1 });
        assert_eq!(again.lines(from - 1), "", "not in force there: never served");
        assert_eq!(again.lines(from), c.lines(from));
        assert_eq!(again.lines(from + 1), c.lines(from + 1));
        // A head before the activation: the submitting task does not read it as its own.
        let target = Target { name: w.name.clone(), key: w.key, url: "http://127.0.0.1:1".into() };
        assert!(read_head(&g, &store, &target).unwrap().is_some());
        let other = Target { url: "http://127.0.0.1:2".into(), ..target };
        assert!(read_head(&g, &store, &other).unwrap().is_none(), "a witness not in force gets nothing");
    }
}
