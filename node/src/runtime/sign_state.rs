//! The sign-state file: what this validator last signed, written durably before the vote leaves.

use std::path::Path;

use crate::consensus::SignState;

use super::NodeError;

/// File (in the data directory) holding what this validator last signed.
pub const SIGN_STATE_FILE: &str = "sign_state.bin";

/// Writes the sign state durably: temp file, fsync, rename, fsync the directory.
pub fn persist(path: &Path, state: &SignState) -> Result<(), NodeError> {
    use std::io::Write;
    let err = |e: std::io::Error| NodeError::SignState { path: path.display().to_string(), reason: e.to_string() };
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(&state.to_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(err)?;
    }
    Ok(())
}

/// The persisted sign state, if any; a damaged file is an error naming it.
pub fn load(path: &Path) -> Result<Option<SignState>, NodeError> {
    let err = |reason: String| NodeError::SignState { path: path.display().to_string(), reason };
    match std::fs::read(path) {
        Ok(bytes) => SignState::from_bytes(&bytes).map(Some).map_err(|e| err(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(e.to_string())),
    }
}
