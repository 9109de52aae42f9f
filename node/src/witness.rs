//! A C2SP tlog-witness server (`credence witness`): `POST /add-checkpoint` cosigns a Credence checkpoint that is consistent with the latest one it cosigned for that origin, persisting it first.
//!
//! The decision is `ledger::witness::decide`; this file holds the HTTP side and the state:
//! one file per origin (`<state dir>/<hex SHA-256 of the origin>`: size and root), written
//! through a temporary file, fsync and rename. Checking the old size and persisting the new
//! state happen under one lock, so two concurrent requests cannot roll the state back
//! (tlog-witness §add-checkpoint). Answers: 200 with one `cosignature/v1` line; 400 bad body
//! or old size above the checkpoint's; 403 not signed by a quorum of the log's validators in
//! force; 404 unknown origin; 409 `text/x.tlog.size` with the latest cosigned size; 422 bad
//! consistency proof. Bodies are at most `ADD_CHECKPOINT_BYTES_MAX` (413 above).

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

use credence_ledger::checkpoint::VerifierKey;
use credence_ledger::genesis::Genesis;
use credence_ledger::sig::SecretKey;
use credence_ledger::witness::{
    ADD_CHECKPOINT_BYTES_MAX, AddCheckpoint, Cosignature, WitnessKey, WitnessState, decide,
};

/// The log keys a witness trusts for a chain: its validators in force. Today the genesis
/// validator set is fixed; when governance changes the set, this is the one function to
/// extend (with the certified history of changes).
pub fn log_keys_in_force(genesis: &Genesis) -> Vec<VerifierKey> {
    genesis.verifier_keys()
}

/// A witness: its name and key, the logs it follows, where it keeps their latest checkpoints.
#[derive(Debug)]
pub struct Witness {
    key: WitnessKey,
    sk: SecretKey,
    logs: HashMap<String, Vec<VerifierKey>>,
    state_dir: PathBuf,
    /// Held from reading a log's state to persisting the new one.
    lock: Mutex<()>,
}

/// Why the witness could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum WitnessServerError {
    #[error("witness state {path}: {reason}")]
    State { path: String, reason: String },
}

impl Witness {
    /// A witness named `name` (a schema-less URL, e.g. `witness.example/w1`) with key `sk`,
    /// following the chains of `logs`, keeping its state in `state_dir` (created).
    pub fn new(name: &str, sk: SecretKey, logs: &[Genesis], state_dir: &Path) -> Result<Witness, WitnessServerError> {
        std::fs::create_dir_all(state_dir)
            .map_err(|e| WitnessServerError::State { path: state_dir.display().to_string(), reason: e.to_string() })?;
        Ok(Witness {
            key: WitnessKey { name: name.to_owned(), key: sk.public() },
            sk,
            logs: logs.iter().map(|g| (g.checkpoint_origin.clone(), log_keys_in_force(g))).collect(),
            state_dir: state_dir.to_owned(),
            lock: Mutex::new(()),
        })
    }

    pub fn key(&self) -> &WitnessKey {
        &self.key
    }

    fn path(&self, origin: &str) -> PathBuf {
        self.state_dir.join(credence_ledger::hash::Hash::digest(&[origin.as_bytes()]).to_string())
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
        let path = self.path(origin);
        let bad =
            |e: std::io::Error| WitnessServerError::State { path: path.display().to_string(), reason: e.to_string() };
        let tmp = path.with_extension("partial");
        let mut f = std::fs::File::create(&tmp).map_err(bad)?;
        f.write_all(format!("{}\n{}\n", s.size, B64.encode(s.root)).as_bytes()).map_err(bad)?;
        f.sync_all().map_err(bad)?;
        std::fs::rename(&tmp, &path).map_err(bad)?;
        std::fs::File::open(&self.state_dir).and_then(|d| d.sync_all()).map_err(bad)?;
        Ok(())
    }

    /// Answers one `add-checkpoint` body: status, content type and body.
    pub fn add_checkpoint(&self, body: &[u8]) -> (StatusCode, &'static str, String) {
        const TEXT: &str = "text/plain; charset=utf-8";
        let req = match AddCheckpoint::parse(body) {
            Ok(r) => r,
            Err(e) => return (StatusCode::BAD_REQUEST, TEXT, format!("{e}\n")),
        };
        let Ok(_guard) = self.lock.lock() else {
            return (StatusCode::INTERNAL_SERVER_ERROR, TEXT, "witness state lock poisoned\n".into());
        };
        let mut load_error = None;
        let decision = decide(
            &req,
            |origin| self.logs.get(origin).cloned(),
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
    match tokio::task::spawn_blocking(move || w.add_checkpoint(&body)).await {
        Ok((status, ct, text)) => (status, [(header::CONTENT_TYPE, ct)], text).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The witness's routes.
pub fn router(w: Arc<Witness>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .layer(DefaultBodyLimit::max(ADD_CHECKPOINT_BYTES_MAX))
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
