//! Outside witnesses: C2SP tlog-cosignature `cosignature/v1` (Ed25519) lines, and the C2SP tlog-witness `add-checkpoint` request and the witness's decision on it, as pure functions.
//!
//! * A cosignature line is a signed-note signature line whose payload is a 4-byte key ID
//!   `SHA-256(name || 0x0A || 0x04 || public key)[:4]` then a `timestamped_signature`: a
//!   big-endian u64 POSIX timestamp and the Ed25519 signature of
//!   `"cosignature/v1\ntime <timestamp>\n" || <checkpoint note text>` (extension line included).
//! * An `add-checkpoint` body is `old <size>\n`, up to 63 base64 consistency-proof lines, an
//!   empty line, then the checkpoint (signed note).
//! * [`decide`] is what a witness answers: 404 unknown origin, 403 not signed by the log
//!   (Credence: a quorum of the validators in force), 400 old size above the checkpoint's,
//!   409 old size not the latest cosigned size (with that size) or same size and another
//!   root, 422 bad consistency proof, else the new state to persist before cosigning.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

use crate::checkpoint::{Checkpoint, CheckpointBody, CheckpointError, VerifierKey, verify_quorum};
use crate::merkle::{self, NodeHash};
use crate::sig::{PublicKey, SecretKey, Signature, verify_raw};

/// Signature type byte of Ed25519 cosignatures in key IDs (tlog-cosignature).
const ALG_COSIGNATURE_V1: u8 = 0x04;
/// Decoded payload of a cosignature line: key ID, timestamp, signature.
pub const COSIGNATURE_LINE_BYTES: usize = 4 + 8 + 64;
/// Most consistency-proof lines in an `add-checkpoint` request (tlog-witness).
pub const PROOF_LINES_MAX: usize = 63;
/// Largest `add-checkpoint` body: the proof lines and a checkpoint note.
pub const ADD_CHECKPOINT_BYTES_MAX: usize = 64 * 46 + crate::checkpoint::CHECKPOINT_BYTES_MAX;
/// Largest timestamp a cosignature may carry (tlog-cosignature: ≤ 2^63 - 1).
pub const TIMESTAMP_MAX: u64 = i64::MAX as u64;
/// Signature line prefix (signed-note).
const SIG_PREFIX: &str = "\u{2014} ";

/// An outside witness: its key name and Ed25519 cosigner key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessKey {
    pub name: String,
    pub key: PublicKey,
}

impl WitnessKey {
    /// `SHA-256(name || 0x0A || 0x04 || key)[:4]`.
    pub fn key_id(&self) -> [u8; 4] {
        let mut h = Sha256::new();
        h.update(self.name.as_bytes());
        h.update([b'\n', ALG_COSIGNATURE_V1]);
        h.update(self.key.0);
        let d = h.finalize();
        [d[0], d[1], d[2], d[3]]
    }

    /// The C2SP verifier key string of a `cosignature/v1` key:
    /// `<name>+<8 lowercase hex key ID>+<base64(0x04 || public key)>` (what `credence witness`
    /// prints, and what `--witness` and governance's `add-witness` take).
    pub fn to_vkey_string(&self) -> String {
        let mut raw = [0u8; 33];
        raw[0] = ALG_COSIGNATURE_V1;
        raw[1..].copy_from_slice(&self.key.0);
        format!("{}+{}+{}", self.name, crate::checkpoint::hex(&self.key_id()), B64.encode(raw))
    }

    /// Parses a `cosignature/v1` verifier key string: a valid C2SP key name, a lowercase hex key
    /// ID equal to the one computed from name and key, and a 33-byte key of type 0x04.
    pub fn parse_vkey(s: &str) -> Result<WitnessKey, WitnessError> {
        let bad = |rule: String| WitnessError::VerifierKey { rule };
        let (name, id, key) = crate::checkpoint::split_vkey(s, ALG_COSIGNATURE_V1, |alg| {
            format!("signature type 0x{alg:02x} is not a cosignature/v1 key (0x04); a witness key is needed")
        })
        .map_err(bad)?;
        let w = WitnessKey { name: name.to_owned(), key };
        let expected = w.key_id();
        if expected != id {
            return Err(bad(format!(
                "key id {} does not match name and key (expected {})",
                crate::checkpoint::hex(&id),
                crate::checkpoint::hex(&expected)
            )));
        }
        Ok(w)
    }
}

/// One `cosignature/v1` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosignature {
    pub name: String,
    pub key_id: [u8; 4],
    pub timestamp: u64,
    pub signature: Signature,
}

/// Why a cosignature, a witnessed note or an `add-checkpoint` body was refused.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    #[error("cosignature line {line}: {rule}")]
    Line { line: usize, rule: String },
    #[error("cosignature by '{name}': {rule}")]
    Invalid { name: String, rule: String },
    #[error("add-checkpoint body: {rule}")]
    Request { rule: String },
    #[error("witness verifier key: {rule}")]
    VerifierKey { rule: String },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// The signed message of a cosignature over `body` at `timestamp`.
pub fn cosigned_message(body: &CheckpointBody, timestamp: u64) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{}", body.to_text())
}

impl Cosignature {
    /// `witness` cosigns `body` at `timestamp` (POSIX seconds).
    pub fn sign(body: &CheckpointBody, witness: &WitnessKey, sk: &SecretKey, timestamp: u64) -> Cosignature {
        Cosignature {
            name: witness.name.clone(),
            key_id: witness.key_id(),
            timestamp,
            signature: sk.sign_raw(cosigned_message(body, timestamp).as_bytes()),
        }
    }

    /// The note signature line, with its newline.
    pub fn to_line(&self) -> String {
        let mut raw = Vec::with_capacity(COSIGNATURE_LINE_BYTES);
        raw.extend_from_slice(&self.key_id);
        raw.extend_from_slice(&self.timestamp.to_be_bytes());
        raw.extend_from_slice(&self.signature.0);
        format!("{SIG_PREFIX}{} {}\n", self.name, B64.encode(raw))
    }

    /// Whether this is `witness`'s valid cosignature over `body` (name, key ID, timestamp
    /// bound, Ed25519 under the one validity rule).
    pub fn verify(&self, body: &CheckpointBody, witness: &WitnessKey) -> Result<(), WitnessError> {
        let bad = |rule: String| WitnessError::Invalid { name: self.name.clone(), rule };
        if self.name != witness.name || self.key_id != witness.key_id() {
            return Err(bad("name or key id is not this witness's".into()));
        }
        if self.timestamp > TIMESTAMP_MAX {
            return Err(bad(format!("timestamp {} exceeds 2^63 - 1", self.timestamp)));
        }
        verify_raw(&witness.key, cosigned_message(body, self.timestamp).as_bytes(), &self.signature)
            .map_err(|e| bad(e.to_string()))
    }
}

/// A signature line's name and decoded payload, or `None` if it is not one.
fn split_line(line: &str) -> Option<(&str, Vec<u8>)> {
    let (name, b64) = line.strip_prefix(SIG_PREFIX)?.split_once(' ')?;
    Some((name, B64.decode(b64).ok()?))
}

/// Splits a note into the validators' checkpoint and the cosignature lines (those whose
/// payload is a `cosignature/v1` one: 76 bytes). The checkpoint part is parsed as strictly
/// as any certificate.
pub fn parse_witnessed_note(note: &str) -> Result<(Checkpoint, Vec<Cosignature>), WitnessError> {
    let Some(split) = note.rfind("\n\n") else {
        return Ok((Checkpoint::parse_note(note)?, Vec::new()));
    };
    let (text, sigs) = (&note[..split + 2], &note[split + 2..]);
    let mut kept = String::from(text);
    let mut cosigs = Vec::new();
    for (i, line) in sigs.split_inclusive('\n').enumerate() {
        match split_line(line.trim_end_matches('\n')) {
            Some((name, raw)) if raw.len() == COSIGNATURE_LINE_BYTES => {
                let mut ts = [0u8; 8];
                ts.copy_from_slice(&raw[4..12]);
                let mut sig = [0u8; 64];
                sig.copy_from_slice(&raw[12..]);
                if name.is_empty() || name.contains('+') {
                    return Err(WitnessError::Line { line: i + 1, rule: "bad key name".into() });
                }
                cosigs.push(Cosignature {
                    name: name.to_owned(),
                    key_id: [raw[0], raw[1], raw[2], raw[3]],
                    timestamp: u64::from_be_bytes(ts),
                    signature: Signature(sig),
                });
            }
            _ => kept.push_str(line),
        }
    }
    Ok((Checkpoint::parse_note(&kept)?, cosigs))
}

/// The witnesses among `witnesses` with a valid cosignature on `body` (each counted once).
/// A line naming a known witness with its key ID that does not verify is an error.
pub fn verified_witnesses(
    body: &CheckpointBody,
    cosigs: &[Cosignature],
    witnesses: &[WitnessKey],
) -> Result<Vec<String>, WitnessError> {
    let mut out: Vec<String> = Vec::new();
    for c in cosigs {
        if let Some(w) = witnesses.iter().find(|w| w.name == c.name && w.key_id() == c.key_id) {
            c.verify(body, w)?;
            if !out.contains(&w.name) {
                out.push(w.name.clone());
            }
        }
    }
    Ok(out)
}

/// An `add-checkpoint` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpoint {
    pub old_size: u64,
    pub proof: Vec<NodeHash>,
    /// The checkpoint note as sent.
    pub note: String,
}

impl AddCheckpoint {
    pub fn to_body(&self) -> String {
        let mut s = format!("old {}\n", self.old_size);
        for h in &self.proof {
            s.push_str(&B64.encode(h));
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.note);
        s
    }

    /// Parses a body strictly (tlog-witness §add-checkpoint).
    pub fn parse(body: &[u8]) -> Result<AddCheckpoint, WitnessError> {
        let bad = |rule: &str| WitnessError::Request { rule: rule.to_owned() };
        if body.len() > ADD_CHECKPOINT_BYTES_MAX {
            return Err(bad("body too large"));
        }
        let text = std::str::from_utf8(body).map_err(|_| bad("not UTF-8"))?;
        let (head, note) = text.split_once("\n\n").ok_or_else(|| bad("no empty line before the checkpoint"))?;
        let mut lines = head.split('\n');
        let old =
            lines.next().and_then(|l| l.strip_prefix("old ")).ok_or_else(|| bad("first line must be 'old <size>'"))?;
        if old.is_empty() || !old.bytes().all(|b| b.is_ascii_digit()) || (old.len() > 1 && old.starts_with('0')) {
            return Err(bad("old size must be a decimal without leading zeros"));
        }
        let old_size = old.parse().map_err(|_| bad("old size does not fit in 64 bits"))?;
        let mut proof = Vec::new();
        for l in lines {
            if proof.len() == PROOF_LINES_MAX {
                return Err(bad("more than 63 consistency proof lines"));
            }
            let h = B64.decode(l).map_err(|_| bad("a proof line is not base64"))?;
            proof.push(h.try_into().map_err(|_| bad("a proof line is not a 32-byte hash"))?);
        }
        if old_size == 0 && !proof.is_empty() {
            return Err(bad("the proof must be empty when the old size is 0"));
        }
        Ok(AddCheckpoint { old_size, proof, note: note.to_owned() })
    }
}

/// What a witness keeps per origin: the latest checkpoint it cosigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WitnessState {
    pub size: u64,
    pub root: NodeHash,
}

/// A refusal, with the tlog-witness status code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub rule: String,
    /// With 409 for an old-size mismatch: the latest cosigned size.
    pub size: Option<u64>,
}

fn refuse(status: u16, rule: impl Into<String>) -> Refusal {
    Refusal { status, rule: rule.into(), size: None }
}

/// A witness's decision on `req` for the log whose validators in force at a height are
/// `log_keys(origin, height)` (None: unknown origin) given its state `state` for that origin: the checkpoint to cosign and the
/// state to persist (atomically with the check) before answering, or the refusal.
pub fn decide(
    req: &AddCheckpoint,
    log_keys: impl FnOnce(&str, u64) -> Option<Vec<VerifierKey>>,
    state: impl FnOnce(&str) -> Option<WitnessState>,
) -> Result<(Checkpoint, WitnessState), Refusal> {
    let (cp, _) = parse_witnessed_note(&req.note).map_err(|e| refuse(400, e.to_string()))?;
    let Some(keys) = log_keys(&cp.body.origin, cp.body.height) else {
        return Err(refuse(404, format!("unknown log origin '{}'", cp.body.origin)));
    };
    verify_quorum(&cp, &keys).map_err(|e| refuse(403, e.to_string()))?;
    let (new_size, new_root) = (cp.body.tree_size, cp.body.root);
    if req.old_size > new_size {
        return Err(refuse(400, format!("old size {} is above the checkpoint's size {new_size}", req.old_size)));
    }
    let latest = state(&cp.body.origin);
    let latest_size = latest.map_or(0, |s| s.size);
    if req.old_size != latest_size {
        return Err(Refusal {
            status: 409,
            rule: format!("old size {} is not the latest cosigned size {latest_size}", req.old_size),
            size: Some(latest_size),
        });
    }
    if let Some(s) = latest {
        if s.size == new_size && s.root != new_root {
            return Err(Refusal {
                status: 409,
                rule: format!("a checkpoint of size {new_size} with another root was cosigned: a forked history"),
                size: Some(latest_size),
            });
        }
        merkle::verify_consistency(s.size, new_size, &req.proof, &s.root, &new_root)
            .map_err(|e| refuse(422, format!("consistency proof from {} to {new_size}: {e}", s.size)))?;
    } else if !req.proof.is_empty() {
        return Err(refuse(422, "the proof must be empty when the old size is 0"));
    }
    Ok((cp, WitnessState { size: new_size, root: new_root }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::sign;
    use crate::demo::{self, ChainBuilder, EXAMPLE_GENESIS_TIME_MS};
    use crate::genesis::Genesis;
    use crate::store::{MemStore, Store};
    use std::cell::RefCell;

    struct Log {
        genesis: Genesis,
        store: MemStore,
    }

    fn log(blocks: usize) -> Log {
        let mut b = ChainBuilder::new(3, EXAMPLE_GENESIS_TIME_MS).unwrap();
        let mut store = MemStore::new(b.genesis());
        for _ in 0..blocks {
            store.commit(&b.next_block(5).unwrap()).unwrap();
        }
        Log { genesis: b.genesis().clone(), store }
    }

    /// A witness's verifier key round-trips, and every malformed one is refused naming the rule.
    #[test]
    fn witness_vkeys_round_trip_and_malformed_ones_are_refused() {
        let sk = SecretKey::from_seed([41; 32]);
        let w = WitnessKey { name: "witness.example/w1".into(), key: sk.public() };
        let v = w.to_vkey_string();
        assert!(v.starts_with("witness.example/w1+"), "{v}");
        assert_eq!(WitnessKey::parse_vkey(&v).unwrap(), w);
        // The key ID is the cosignature/v1 one (type 0x04), not a note signer's (0x01).
        let validator = crate::checkpoint::VerifierKey { name: w.name.clone(), key: w.key }.to_vkey_string();
        assert_ne!(validator, v);
        let e = WitnessKey::parse_vkey(&validator).unwrap_err().to_string();
        assert!(e.contains("0x01") && e.contains("not a cosignature/v1 key"), "{e}");
        let (name, rest) = v.split_once('+').unwrap();
        let (id, key) = rest.split_once('+').unwrap();
        for (bad, rule) in [
            ("no-plus".to_owned(), "expected"),
            (format!("+{id}+{key}"), "key name is empty"),
            (format!("{name}+ABCDEF12+{key}"), "lowercase hex"),
            (format!("{name}+00000000+{key}"), "does not match"),
            (format!("other+{id}+{key}"), "does not match"),
            (format!("{name}+{id}+!!!"), "base64"),
            (format!("{name}+{id}+BA=="), "exactly 32"),
        ] {
            let e = WitnessKey::parse_vkey(&bad).unwrap_err().to_string();
            assert!(e.contains(rule), "{bad}: {e}");
        }
    }

    impl Log {
        fn note(&self, height: u64) -> String {
            self.store.certificate(height).unwrap().unwrap().to_note()
        }
        fn size(&self, height: u64) -> u64 {
            self.store.certificate(height).unwrap().unwrap().body.tree_size
        }
        fn request(&self, old: u64, height: u64) -> AddCheckpoint {
            let n = self.size(height);
            let proof =
                if old == 0 || old == n { vec![] } else { merkle::consistency_proof(old, n, &self.store).unwrap() };
            AddCheckpoint { old_size: old, proof, note: self.note(height) }
        }
        /// A checkpoint the validators sign over `body` (a forking consortium).
        fn signed(&self, body: &CheckpointBody) -> String {
            let sigs = self
                .genesis
                .verifier_keys()
                .iter()
                .map(|v| sign(body, &v.name, &demo::member_key(3, &v.name)))
                .collect();
            Checkpoint { body: body.clone(), signatures: sigs }.to_note()
        }
    }

    /// A witness over one log, keeping its state in memory.
    struct Witness<'a> {
        log: &'a Log,
        state: RefCell<Option<WitnessState>>,
    }

    impl Witness<'_> {
        fn add(&self, req: &AddCheckpoint) -> Result<Checkpoint, Refusal> {
            let origin = self.log.genesis.checkpoint_origin.clone();
            let keys = self.log.genesis.verifier_keys();
            let current = *self.state.borrow();
            let (cp, new) = decide(
                &AddCheckpoint::parse(req.to_body().as_bytes()).unwrap(),
                |o, _| (o == origin).then(|| keys.clone()),
                |_| current,
            )?;
            *self.state.borrow_mut() = Some(new);
            Ok(cp)
        }
    }

    #[test]
    fn a_witness_follows_one_history_and_refuses_every_fork() {
        let a = log(4);
        let w = Witness { log: &a, state: RefCell::new(None) };
        let (s1, s3) = (a.size(1), a.size(3));
        w.add(&a.request(0, 1)).unwrap();
        // Stale old size: 409 with the latest size.
        let r = w.add(&a.request(0, 3)).unwrap_err();
        assert_eq!((r.status, r.size), (409, Some(s1)));
        w.add(&a.request(s1, 3)).unwrap();
        // The same checkpoint again is fine.
        w.add(&a.request(s3, 3)).unwrap();
        // Two checkpoints at one size with different roots: 409, a forked history.
        let mut forked = a.store.certificate(3).unwrap().unwrap().body;
        forked.root[0] ^= 1;
        let req = AddCheckpoint { old_size: s3, proof: vec![], note: a.signed(&forked) };
        let r = w.add(&req).unwrap_err();
        assert!(r.status == 409 && r.rule.contains("forked history"), "{r:?}");
        // A shrink: the old size above the new checkpoint's is 400; a smaller checkpoint
        // sent with its own size as old is 409.
        let r = w.add(&AddCheckpoint { old_size: s3, proof: vec![], note: a.note(1) }).unwrap_err();
        assert_eq!(r.status, 400);
        let r = w.add(&a.request(s1, 1)).unwrap_err();
        assert_eq!((r.status, r.size), (409, Some(s3)));
        // A bigger tree that does not extend the cosigned one: its proof cannot verify (422).
        let mut bigger = a.store.certificate(4).unwrap().unwrap().body;
        bigger.root[5] ^= 1;
        let mut req = a.request(s3, 4);
        req.note = a.signed(&bigger);
        assert_eq!(w.add(&req).unwrap_err().status, 422);
        // A bad proof for the genuine next checkpoint: 422.
        let mut req = a.request(s3, 4);
        req.proof[0][0] ^= 1;
        assert_eq!(w.add(&req).unwrap_err().status, 422);
        // Unknown origin: 404; not signed by a quorum of the validators: 403.
        let mut other = a.store.certificate(4).unwrap().unwrap().body;
        other.origin = "elsewhere.example/log".into();
        assert_eq!(w.add(&AddCheckpoint { note: a.signed(&other), ..a.request(s3, 4) }).unwrap_err().status, 404);
        let mut under = a.store.certificate(4).unwrap().unwrap();
        under.signatures.truncate(1);
        assert_eq!(w.add(&AddCheckpoint { note: under.to_note(), ..a.request(s3, 4) }).unwrap_err().status, 403);
        // The state never moved past the refused checkpoints; the genuine one is accepted.
        assert_eq!(w.state.borrow().unwrap().size, s3);
        w.add(&a.request(s3, 4)).unwrap();
    }

    #[test]
    fn cosignatures_round_trip_and_bind_the_note() {
        let a = log(1);
        let body = a.store.certificate(1).unwrap().unwrap().body;
        let sk = SecretKey::from_seed([9; 32]);
        let wk = WitnessKey { name: "witness.example/w1".into(), key: sk.public() };
        let c = Cosignature::sign(&body, &wk, &sk, 1_679_315_147);
        let note = format!("{}{}", a.note(1), c.to_line());
        let (cp, cosigs) = parse_witnessed_note(&note).unwrap();
        assert_eq!(cp.body, body);
        assert_eq!(cosigs, vec![c.clone()]);
        assert_eq!(verified_witnesses(&body, &cosigs, std::slice::from_ref(&wk)).unwrap(), vec![wk.name.clone()]);
        // Another body, another timestamp, another witness: refused or ignored.
        let mut other = body.clone();
        other.tree_size += 1;
        assert!(verified_witnesses(&other, &cosigs, std::slice::from_ref(&wk)).is_err());
        let late = Cosignature { timestamp: c.timestamp + 1, ..c.clone() };
        assert!(late.verify(&body, &wk).is_err());
        let stranger = WitnessKey { name: "witness.example/w2".into(), key: sk.public() };
        assert!(verified_witnesses(&body, &cosigs, &[stranger]).unwrap().is_empty());
        // The message is the spec's.
        assert!(cosigned_message(&body, 7).starts_with("cosignature/v1\ntime 7\ncredence"));
    }

    #[test]
    fn add_checkpoint_bodies_are_strict() {
        let body = "old 5\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n\nnote";
        let r = AddCheckpoint::parse(body.as_bytes()).unwrap();
        assert_eq!((r.old_size, r.proof.len(), r.note.as_str()), (5, 1, "note"));
        assert_eq!(AddCheckpoint::parse(r.to_body().as_bytes()).unwrap(), r);
        for (bad, rule) in [
            ("old 05\n\nx", "leading zeros"),
            ("new 5\n\nx", "first line"),
            ("old 5\nx", "no empty line"),
            ("old 5\nAAAA\n\nx", "32-byte"),
            ("old 0\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n\nx", "empty when the old size is 0"),
        ] {
            let e = AddCheckpoint::parse(bad.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(rule), "{bad:?}: {e}");
        }
        let many = format!("old 5\n{}\nx", "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n".repeat(64));
        assert!(AddCheckpoint::parse(many.as_bytes()).unwrap_err().to_string().contains("63"));
    }
}
