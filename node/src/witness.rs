//! A C2SP tlog-witness server (`credence witness`): `POST /add-checkpoint` cosigns a Credence checkpoint that is consistent with the latest one it cosigned for that origin, persisting it first; `POST /credence/set-changes` teaches it the chain's certified validator-set changes.
//!
//! The decision is `ledger::witness::decide`; this file holds the HTTP side and the state:
//! one file per origin (`<state dir>/<hex SHA-256 of the origin>`: size and root), written
//! through a temporary file, fsync and rename. Checking the old size and persisting the new
//! state happen under one lock, so two concurrent requests cannot roll the state back
//! (tlog-witness §add-checkpoint). Answers: 200 with one `cosignature/v1` line; 400 bad body
//! or old size above the checkpoint's; 403 not signed by a quorum of the log's validators in
//! force at the checkpoint's height; 404 unknown origin; 409 `text/x.tlog.size` with the
//! latest cosigned size; 422 bad consistency proof. Bodies are at most
//! `ADD_CHECKPOINT_BYTES_MAX` (413 above).
//!
//! # Validator sets
//!
//! A checkpoint is signed by the validators in force at its height, which governance changes.
//! tlog-witness's request carries no more than the checkpoint, so the witness learns the
//! changes from a Credence extension, [`SET_CHANGES_PATH`]: a JSON body
//! `{"origin": ..., "set_changes": [...]}` whose list is exactly what `GET /v1/set-changes`
//! serves and proof bundles carry (docs/AUDITING.md §Set changes). The witness walks it from
//! the genesis validators ([`bundle::walk_set_history`]), so nothing in it is taken on trust:
//! whoever sends it (the chain's nodes do, when a witness answers 403) can only teach the
//! witness sets the chain certified. It keeps the longest history it was shown per origin in
//! `<hex>.sets.json` (written before answering) and checks each checkpoint against the set in
//! force at the checkpoint's height. Answers: 200 (the set now in force, or that nothing was
//! new); 400 bad body; 404 unknown origin; 409 a history that disagrees with the one held (two
//! certified validator histories: a fork among the validators); 413 over
//! [`SET_CHANGES_BODY_BYTES_MAX`]; 422 a change that does not walk, naming it.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use credence_ledger::checkpoint::VerifierKey;
use credence_ledger::genesis::Genesis;
use credence_ledger::sig::SecretKey;
use credence_ledger::witness::{
    ADD_CHECKPOINT_BYTES_MAX, AddCheckpoint, Cosignature, WitnessKey, WitnessState, decide,
};

use crate::bundle::{self, SET_CHANGE_BYTES_MAX, SET_CHANGES_MAX, SetChange, SetInForce};

/// Where a witness takes a chain's validator-set changes (a Credence extension of tlog-witness).
pub const SET_CHANGES_PATH: &str = "/credence/set-changes";
/// Largest [`SET_CHANGES_PATH`] body, and largest `<hex>.sets.json` read back.
pub const SET_CHANGES_BODY_BYTES_MAX: usize = 4 * 1024 * 1024;
// The whole history a bundle may carry fits in one body.
const _: () = assert!(SET_CHANGES_MAX * SET_CHANGE_BYTES_MAX + 1024 <= SET_CHANGES_BODY_BYTES_MAX);

/// The body of [`SET_CHANGES_PATH`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetChangesPush {
    /// The chain's checkpoint origin.
    pub origin: String,
    /// Its certified validator-set changes from genesis, oldest first (`GET /v1/set-changes`).
    pub set_changes: Vec<SetChange>,
}

/// What a witness knows of one chain: its genesis and the sets its changes reached.
#[derive(Debug)]
struct Log {
    genesis: Genesis,
    /// The longest history of changes shown, as received.
    changes: Vec<SetChange>,
    /// The genesis set, then one per change (`walk_set_history` of `changes`).
    sets: Vec<SetInForce>,
}

impl Log {
    /// The validators in force at `height` as far as this witness knows.
    fn keys_at(&self, height: u64) -> Vec<VerifierKey> {
        let set = self.sets.iter().rev().find(|s| s.from_height <= height).or(self.sets.first());
        set.map(|s| s.validators.clone()).unwrap_or_default()
    }
}

/// A witness: its name and key, the logs it follows, where it keeps their latest checkpoints.
#[derive(Debug)]
pub struct Witness {
    key: WitnessKey,
    sk: SecretKey,
    /// By origin. Held from reading a log's state to persisting the new one.
    logs: Mutex<HashMap<String, Log>>,
    state_dir: PathBuf,
}

/// Why the witness could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum WitnessServerError {
    #[error("witness state {path}: {reason}")]
    State { path: String, reason: String },
}

const TEXT: &str = "text/plain; charset=utf-8";

fn origin_hex(origin: &str) -> String {
    credence_ledger::hash::Hash::digest(&[origin.as_bytes()]).to_string()
}

/// Where the set changes of `origin` are kept.
fn sets_path(state_dir: &Path, origin: &str) -> PathBuf {
    state_dir.join(format!("{}.sets.json", origin_hex(origin)))
}

/// Writes `bytes` to `path` through `<path>.partial`, fsync and rename, then syncs `dir`.
fn write_durably(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), WitnessServerError> {
    let bad = |e: std::io::Error| WitnessServerError::State { path: path.display().to_string(), reason: e.to_string() };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp).map_err(bad)?;
    f.write_all(bytes).map_err(bad)?;
    f.sync_all().map_err(bad)?;
    std::fs::rename(&tmp, path).map_err(bad)?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(bad)?;
    Ok(())
}

impl Witness {
    /// A witness named `name` (a schema-less URL, e.g. `witness.example/w1`) with key `sk`,
    /// following the chains of `logs`, keeping its state in `state_dir` (created). The set
    /// changes kept there are walked again from each genesis; a file that does not walk is
    /// an error naming it (the witness does not start on state it cannot trust).
    pub fn new(name: &str, sk: SecretKey, logs: &[Genesis], state_dir: &Path) -> Result<Witness, WitnessServerError> {
        std::fs::create_dir_all(state_dir)
            .map_err(|e| WitnessServerError::State { path: state_dir.display().to_string(), reason: e.to_string() })?;
        let mut known = HashMap::new();
        for g in logs {
            let path = sets_path(state_dir, &g.checkpoint_origin);
            let bad = |reason: String| WitnessServerError::State { path: path.display().to_string(), reason };
            let changes: Vec<SetChange> = match std::fs::read(&path) {
                Ok(b) if b.len() > SET_CHANGES_BODY_BYTES_MAX => {
                    return Err(bad(format!("more than {SET_CHANGES_BODY_BYTES_MAX} bytes")));
                }
                Ok(b) => serde_json::from_slice(&b).map_err(|e| bad(e.to_string()))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(bad(e.to_string())),
            };
            let sets = bundle::walk_set_history(g, &changes).map_err(|e| bad(e.to_string()))?;
            known.insert(g.checkpoint_origin.clone(), Log { genesis: g.clone(), changes, sets });
        }
        Ok(Witness {
            key: WitnessKey { name: name.to_owned(), key: sk.public() },
            sk,
            logs: Mutex::new(known),
            state_dir: state_dir.to_owned(),
        })
    }

    pub fn key(&self) -> &WitnessKey {
        &self.key
    }

    fn path(&self, origin: &str) -> PathBuf {
        self.state_dir.join(origin_hex(origin))
    }

    fn load(&self, origin: &str) -> Result<Option<WitnessState>, WitnessServerError> {
        let path = self.path(origin);
        let bad = |reason: String| WitnessServerError::State { path: path.display().to_string(), reason };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(bad(e.to_string())),
        };
        let mut lines = text.lines();
        let size = lines.next().and_then(|l| l.parse().ok()).ok_or_else(|| bad("no size line".into()))?;
        let root = lines
            .next()
            .and_then(|l| B64.decode(l).ok())
            .and_then(|r| <[u8; 32]>::try_from(r).ok())
            .ok_or_else(|| bad("no root line".into()))?;
        Ok(Some(WitnessState { size, root }))
    }

    fn persist(&self, origin: &str, s: &WitnessState) -> Result<(), WitnessServerError> {
        let text = format!("{}\n{}\n", s.size, B64.encode(s.root));
        write_durably(&self.state_dir, &self.path(origin), text.as_bytes())
    }

    /// Answers one [`SET_CHANGES_PATH`] body: status, content type and body.
    pub fn add_set_changes(&self, body: &[u8]) -> (StatusCode, &'static str, String) {
        let push: SetChangesPush = match serde_json::from_slice(body) {
            Ok(p) => p,
            Err(e) => return (StatusCode::BAD_REQUEST, TEXT, format!("body: {e}\n")),
        };
        let Ok(mut logs) = self.logs.lock() else {
            return (StatusCode::INTERNAL_SERVER_ERROR, TEXT, "witness state lock poisoned\n".into());
        };
        let Some(log) = logs.get_mut(&push.origin) else {
            return (StatusCode::NOT_FOUND, TEXT, format!("origin: unknown log origin '{}'\n", push.origin));
        };
        let sets = match bundle::walk_set_history(&log.genesis, &push.set_changes) {
            Ok(s) => s,
            Err(e) => return (StatusCode::UNPROCESSABLE_ENTITY, TEXT, format!("{e}\n")),
        };
        if let Some(k) = log.sets.iter().zip(&sets).position(|(held, shown)| held != shown) {
            return (
                StatusCode::CONFLICT,
                TEXT,
                format!(
                    "set_changes: change {} (height {}) differs from the one this witness holds (height {}): \
                     two certified validator histories\n",
                    k.saturating_sub(1),
                    sets[k].from_height,
                    log.sets[k].from_height
                ),
            );
        }
        if sets.len() > log.sets.len() {
            let json = serde_json::to_vec(&push.set_changes).unwrap_or_default();
            if let Err(e) = write_durably(&self.state_dir, &sets_path(&self.state_dir, &push.origin), &json) {
                tracing::error!(error = %e, "witness: cannot persist the set changes");
                return (StatusCode::INTERNAL_SERVER_ERROR, TEXT, "the witness cannot persist its state\n".into());
            }
            log.changes = push.set_changes;
            log.sets = sets;
        }
        let now = log.sets.last().map_or((1, 0), |s| (s.from_height, s.validators.len()));
        let held = log.changes.len();
        (
            StatusCode::OK,
            TEXT,
            format!("{held} set changes held; {} validators in force from height {}\n", now.1, now.0),
        )
    }

    /// Answers one `add-checkpoint` body: status, content type and body.
    pub fn add_checkpoint(&self, body: &[u8]) -> (StatusCode, &'static str, String) {
        let req = match AddCheckpoint::parse(body) {
            Ok(r) => r,
            Err(e) => return (StatusCode::BAD_REQUEST, TEXT, format!("{e}\n")),
        };
        let Ok(logs) = self.logs.lock() else {
            return (StatusCode::INTERNAL_SERVER_ERROR, TEXT, "witness state lock poisoned\n".into());
        };
        let mut load_error = None;
        let decision = decide(
            &req,
            |origin, height| logs.get(origin).map(|l| l.keys_at(height)),
            |origin| match self.load(origin) {
                Ok(s) => s,
                Err(e) => {
                    load_error = Some(e.to_string());
                    None
                }
            },
        );
        if let Some(e) = load_error {
            tracing::error!(error = %e, "witness: cannot read its state");
            return (StatusCode::INTERNAL_SERVER_ERROR, TEXT, "the witness cannot read its state\n".into());
        }
        match decision {
            Ok((cp, new)) => {
                if let Err(e) = self.persist(&cp.body.origin, &new) {
                    tracing::error!(error = %e, "witness: cannot persist its state");
                    return (StatusCode::INTERNAL_SERVER_ERROR, TEXT, "the witness cannot persist its state\n".into());
                }
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                (StatusCode::OK, TEXT, Cosignature::sign(&cp.body, &self.key, &self.sk, now).to_line())
            }
            Err(r) => {
                let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
                match r.size {
                    Some(size) => (status, "text/x.tlog.size", format!("{size}\n")),
                    None => (status, TEXT, format!("{}\n", r.rule)),
                }
            }
        }
    }
}

async fn add_checkpoint(State(w): State<Arc<Witness>>, body: Bytes) -> Response {
    answer(tokio::task::spawn_blocking(move || w.add_checkpoint(&body)).await)
}

async fn add_set_changes(State(w): State<Arc<Witness>>, body: Bytes) -> Response {
    answer(tokio::task::spawn_blocking(move || w.add_set_changes(&body)).await)
}

fn answer(r: Result<(StatusCode, &'static str, String), tokio::task::JoinError>) -> Response {
    match r {
        Ok((status, ct, text)) => (status, [(header::CONTENT_TYPE, ct)], text).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The witness's routes.
pub fn router(w: Arc<Witness>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint).layer(DefaultBodyLimit::max(ADD_CHECKPOINT_BYTES_MAX)))
        .route(SET_CHANGES_PATH, post(add_set_changes).layer(DefaultBodyLimit::max(SET_CHANGES_BODY_BYTES_MAX)))
        .with_state(w)
}

/// Serves the witness on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    w: Arc<Witness>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(w)).with_graceful_shutdown(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::set_fixture::{Changing, two_changes};

    fn witness(c: &Changing, dir: &Path) -> Witness {
        Witness::new("w.example/1", SecretKey::from_seed([9; 32]), std::slice::from_ref(&c.genesis), dir).unwrap()
    }

    /// Sends the certificate at `height` with the old size the witness holds (every
    /// checkpoint of the fixture has one tree size); returns the status and body.
    fn add(w: &Witness, c: &Changing, height: u64, old_size: u64) -> (u16, String) {
        let note = c.certs[c.index(height)].to_note();
        let body = AddCheckpoint { old_size, proof: Vec::new(), note }.to_body();
        let (status, _, text) = w.add_checkpoint(body.as_bytes());
        (status.as_u16(), text)
    }

    fn push(w: &Witness, c: &Changing, changes: Vec<SetChange>) -> (u16, String) {
        let body =
            serde_json::to_vec(&SetChangesPush { origin: c.genesis.checkpoint_origin.clone(), set_changes: changes })
                .unwrap();
        let (status, _, text) = w.add_set_changes(&body);
        (status.as_u16(), text)
    }

    /// [`two_changes`], then two genesis validators leave at height 9: from then on neither
    /// the genesis set nor the one before 9 has a quorum among the signers.
    fn three_changes() -> Changing {
        let (mut c, _) = two_changes();
        let mut set3 = c.sets[c.index(8)].clone();
        set3.retain(|(name, _)| name == "bank-new" || name == &c.sets[0][0].0 || name == &c.sets[0][1].0);
        assert_eq!(set3.len(), 3);
        c.push(set3.clone()); // 9
        c.push(set3); // 10
        c
    }

    /// Until it is shown the set changes, a witness refuses the checkpoints of a set its
    /// known validators have no quorum in (403); once shown, it cosigns each checkpoint under
    /// the set in force at its height, and keeps the history across a restart.
    #[test]
    fn a_witness_follows_the_certified_validator_set_changes() {
        let c = three_changes();
        let dir = tempfile::tempdir().unwrap();
        let w = witness(&c, dir.path());
        let size = c.certs[0].body.tree_size;
        assert_eq!(add(&w, &c, 4, 0).0, 200, "the genesis set's checkpoint");
        let (status, text) = add(&w, &c, 10, size);
        assert_eq!(status, 403, "the set of height 9 is unknown: {text}");
        assert_eq!(push(&w, &c, vec![c.change(5)]).1, "1 set changes held; 5 validators in force from height 5\n");
        assert_eq!(add(&w, &c, 6, size).0, 200);
        assert_eq!(add(&w, &c, 10, size).0, 403, "the changes at 7 and 9 are not known yet");
        // A shorter history than the one held changes nothing; the longer one is taken.
        assert_eq!(push(&w, &c, Vec::new()).0, 200);
        let all = vec![c.change(5), c.change(7), c.change(9)];
        assert_eq!(push(&w, &c, all).1, "3 set changes held; 3 validators in force from height 9\n");
        assert_eq!(add(&w, &c, 10, size).0, 200);
        // An older checkpoint is judged by the set in force at its height.
        assert_eq!(add(&w, &c, 8, size).0, 200);
        assert_eq!(add(&w, &c, 4, size).0, 200);
        // After a restart the history is read back and walked again.
        drop(w);
        let w = witness(&c, dir.path());
        assert_eq!(add(&w, &c, 10, size).0, 200);
    }

    #[test]
    fn set_changes_that_do_not_walk_or_disagree_are_refused() {
        let (c, _) = two_changes();
        let dir = tempfile::tempdir().unwrap();
        let w = witness(&c, dir.path());
        // A dropped change: 422 naming it.
        let (status, text) = push(&w, &c, vec![c.change(7)]);
        assert_eq!(status, 422);
        assert!(text.contains("change 0 (height 7): last_header") && text.contains("missing"), "{text}");
        // Bad bodies and unknown chains.
        assert_eq!(w.add_set_changes(b"{\"origin\": 1}").0, StatusCode::BAD_REQUEST);
        let body = br#"{"origin": "other.example/log", "set_changes": []}"#;
        assert_eq!(w.add_set_changes(body).0, StatusCode::NOT_FOUND);
        // Another certified history (the genesis validators also certified a different fifth
        // validator at height 5): a conflict with what the witness holds.
        assert_eq!(push(&w, &c, vec![c.change(5)]).0, 200);
        let mut other = Changing::new();
        let mut set1 = other.sets[0].clone();
        other.push(set1.clone());
        set1.push(("bank-new".into(), [53; 32]));
        other.push(set1);
        let (status, text) = push(&w, &other, vec![other.change(5)]);
        assert_eq!(status, 409, "{text}");
        assert!(text.contains("change 0 (height 5) differs"), "{text}");
        // A damaged history file stops the witness from starting, naming it.
        let path = sets_path(dir.path(), &c.genesis.checkpoint_origin);
        let mut json: Vec<SetChange> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        json[0].certificate = json[0].last_certificate.clone();
        std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
        let e =
            Witness::new("w.example/1", SecretKey::from_seed([9; 32]), std::slice::from_ref(&c.genesis), dir.path())
                .unwrap_err();
        assert!(e.to_string().contains(".sets.json") && e.to_string().contains("certificate"), "{e}");
    }
}
