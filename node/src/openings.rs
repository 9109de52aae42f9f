//! The openings of this member's confidential amounts (docs/ACCESS.md "Confidential amounts"): a redb file of its own beside the ledger store, written durably before a submission is answered.
//!
//! | table      | key                                        | value                          |
//! |------------|--------------------------------------------|--------------------------------|
//! | `openings` | attestation id (32) ‖ field name (UTF-8)   | salt (32) ‖ fen u64 BE (40)    |
//!
//! Why a file of its own and not a table of `ledger.redb`: the ledger store holds only what
//! every node of the chain holds and may be copied to an auditor or served with `--data-dir`;
//! openings are this member's secrets and must not travel with it. Each write is one redb
//! transaction with immediate durability (fsynced when [`OpeningStore::put`] returns).

use std::path::Path;

use redb::{Database, ReadableDatabase, TableDefinition};

use credence_ledger::attestation::AttestationId;
use credence_ledger::confidential::{FIELD_NAME_BYTES_MAX, OPENINGS_PER_ATTESTATION_MAX, Opening, SALT_BYTES};

/// The file in the data directory.
pub const OPENINGS_FILE: &str = "openings.redb";

const OPENINGS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("openings");

/// Why the openings file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("openings store {place}: {reason}")]
pub struct OpeningStoreError {
    pub place: String,
    pub reason: String,
}

fn err(place: impl Into<String>, reason: impl std::fmt::Display) -> OpeningStoreError {
    OpeningStoreError { place: place.into(), reason: reason.to_string() }
}

/// This node's openings.
#[derive(Debug)]
pub struct OpeningStore {
    db: Database,
}

impl OpeningStore {
    /// Opens (or creates) the file at `path`.
    pub fn open(path: &Path) -> Result<OpeningStore, OpeningStoreError> {
        let at = path.display().to_string();
        let db = Database::create(path).map_err(|e| err(&at, e))?;
        let w = db.begin_write().map_err(|e| err(&at, e))?;
        w.open_table(OPENINGS).map_err(|e| err(&at, e))?;
        w.commit().map_err(|e| err(&at, e))?;
        Ok(OpeningStore { db })
    }

    /// Stores the openings of `id` (replacing any of the same field) in one durable transaction.
    pub fn put(&self, id: &AttestationId, openings: &[Opening]) -> Result<(), OpeningStoreError> {
        let w = self.db.begin_write().map_err(|e| err("write", e))?;
        {
            let mut t = w.open_table(OPENINGS).map_err(|e| err("table openings", e))?;
            for o in openings {
                let mut value = Vec::with_capacity(SALT_BYTES + 8);
                value.extend_from_slice(&o.salt);
                value.extend_from_slice(&o.fen.to_be_bytes());
                t.insert(key(id, &o.field).as_slice(), value.as_slice()).map_err(|e| err("table openings", e))?;
            }
        }
        w.commit().map_err(|e| err("commit", e))
    }

    /// The openings of `id`, by field name (empty if this node holds none).
    pub fn get(&self, id: &AttestationId) -> Result<Vec<Opening>, OpeningStoreError> {
        let r = self.db.begin_read().map_err(|e| err("read", e))?;
        let t = r.open_table(OPENINGS).map_err(|e| err("table openings", e))?;
        let from = id.bytes().to_vec();
        let mut out = Vec::new();
        for item in t.range(from.as_slice()..).map_err(|e| err("table openings", e))? {
            let (k, v) = item.map_err(|e| err("table openings", e))?;
            let (k, v) = (k.value(), v.value());
            if !k.starts_with(&from) || out.len() >= OPENINGS_PER_ATTESTATION_MAX {
                break;
            }
            let place = || format!("table openings, key {}", hex::encode(k));
            let field = std::str::from_utf8(&k[32..]).map_err(|e| err(place(), e))?;
            if field.len() > FIELD_NAME_BYTES_MAX || v.len() != SALT_BYTES + 8 {
                return Err(err(place(), "corrupt entry"));
            }
            let mut salt = [0u8; SALT_BYTES];
            salt.copy_from_slice(&v[..SALT_BYTES]);
            let mut fen = [0u8; 8];
            fen.copy_from_slice(&v[SALT_BYTES..]);
            out.push(Opening { field: field.to_string(), salt, fen: u64::from_be_bytes(fen) });
        }
        Ok(out)
    }
}

fn key(id: &AttestationId, field: &str) -> Vec<u8> {
    let mut k = id.bytes().to_vec();
    k.extend_from_slice(field.as_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use credence_ledger::hash::{Hash, HashOf};

    #[test]
    fn openings_survive_reopening_and_stay_with_their_attestation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(OPENINGS_FILE);
        let a: AttestationId = HashOf::from_hash(Hash([1; 32]));
        let b: AttestationId = HashOf::from_hash(Hash([2; 32]));
        let o = Opening { field: "rd-spend.amount".into(), salt: [7; 32], fen: 12_345 };
        {
            let s = OpeningStore::open(&path).unwrap();
            s.put(&a, std::slice::from_ref(&o)).unwrap();
            s.put(&b, &[Opening { fen: 1, ..o.clone() }]).unwrap();
        }
        let s = OpeningStore::open(&path).unwrap();
        assert_eq!(s.get(&a).unwrap(), vec![o]);
        assert_eq!(s.get(&b).unwrap()[0].fen, 1);
        assert!(s.get(&HashOf::from_hash(Hash([3; 32]))).unwrap().is_empty());
    }
}
