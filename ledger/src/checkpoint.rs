//! Commit certificates: C2SP tlog-checkpoints in C2SP signed-note format, valid with a >2/3 validator quorum.
//!
//! A block's commit certificate is a [tlog-checkpoint] whose note text carries exactly one
//! Credence extension line, signed per [signed-note] with Ed25519 (signature type `0x01`):
//!
//! ```text
//! <origin>
//! <tree size, decimal, no leading zeros>
//! <base64 std (padded) of the 32-byte root>
//! credence height=<u64> round=<u32> block=<64 lowercase hex>
//!
//! — <key name> <base64(4-byte key ID || 64-byte Ed25519 signature)>
//! ```
//!
//! Decisions beyond the specs (each is also documented where it is implemented):
//! * Parsing is strict and canonical: a note that parses re-encodes to exactly the signed text,
//!   so a body has one and only one textual form (no leading zeros, canonical padded base64,
//!   lowercase hex, exactly one extension line).
//! * Only Ed25519 signature lines (4 + 64 bytes) are accepted, because [`NoteSignature`] holds a
//!   64-byte signature; lines of other algorithms are rejected as malformed instead of ignored.
//! * A line whose key name AND key ID match a validator is always verified; if it fails, the
//!   whole certificate is rejected (signed-note §Signatures "clients SHOULD reject the whole
//!   note", as Go's `note.Open` does). Unlike Go, every duplicate line is verified, not only
//!   the first. Lines from unknown keys are parsed, kept and ignored (§Signatures "MUST ignore");
//!   [`verify_quorum_strict`] rejects them instead.
//!
//! [signed-note]: https://c2sp.org/signed-note
//! [tlog-checkpoint]: https://c2sp.org/tlog-checkpoint

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

use crate::sig::{PublicKey, SecretKey, SigError, Signature, verify_raw};

/// Largest accepted note, in bytes (signed-note §Format: verifiers SHOULD limit note size).
///
/// A minimal Ed25519 signature line is 99 bytes, so at most ~165 signature lines fit; the byte
/// limit therefore binds before [`SIGNATURES_MAX`], which stays as a second, cheap guard.
pub const CHECKPOINT_BYTES_MAX: usize = 16 * 1024;
/// Largest accepted number of signature lines (signed-note §Format: MUST accept at least 16).
pub const SIGNATURES_MAX: usize = 256;

/// Every Credence extension line starts with this (tlog-checkpoint §Note text, item 4).
const EXTENSION_PREFIX: &str = "credence ";
/// Signature lines start with U+2014 EM DASH and a space (signed-note §Format).
const SIG_PREFIX: &str = "\u{2014} ";
/// Signature type identifier byte for Ed25519 (signed-note §Signature types).
const ALG_ED25519: u8 = 0x01;
/// Decoded size of an Ed25519 signature line payload: 4-byte key ID || 64-byte signature.
const ED25519_LINE_BYTES: usize = 4 + 64;

/// Why a checkpoint, signature line, verifier key or quorum check was rejected.
///
/// Line numbers of body fields count note lines from 1 (1 origin, 2 tree size, 3 root hash,
/// 4 extension). "Signature line N" is the N-th signature line of the note (1-based), which is
/// also `Checkpoint::signatures[N - 1]` of a parsed note.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The note (or note text) is larger than [`CHECKPOINT_BYTES_MAX`].
    #[error("checkpoint: note exceeds {max} bytes")]
    TooLarge { len: usize, max: usize },
    /// signed-note §Format: notes MUST be valid UTF-8.
    #[error("checkpoint: note is not valid UTF-8 (at byte {offset})")]
    NotUtf8 { offset: usize },
    /// signed-note §Format: no ASCII control characters other than newline (this also rejects CRLF).
    #[error("checkpoint: control character U+{code:04X} at byte {offset}; only newline (U+000A) is allowed")]
    ControlChar { offset: usize, code: u32 },
    /// signed-note §Format: the text is followed by a blank line, then the signatures.
    #[error("checkpoint: no blank line separating the note text from the signature lines")]
    MissingBlankLine,
    /// signed-note §Format: one or more signature lines are required.
    #[error("checkpoint: no signature lines after the blank line")]
    NoSignatures,
    /// signed-note §Format: every signature line ends in a newline.
    #[error("checkpoint: last signature line does not end with a newline")]
    UnterminatedSignatureLine,
    /// signed-note §Format: the note text ends in a newline.
    #[error("checkpoint: note text does not end with a newline")]
    UnterminatedText,
    /// More than the allowed number of signature lines.
    #[error("checkpoint: {count} signature lines; at most {max} allowed")]
    TooManySignatures { count: usize, max: usize },
    /// A body line (origin, tree size, root hash, extension) breaks a rule.
    #[error("checkpoint line {line} ({field}): {rule}")]
    Field { line: usize, field: &'static str, rule: String },
    /// A signature line is malformed.
    #[error("checkpoint: signature line {line}: {rule}")]
    SignatureLine { line: usize, rule: String },
    /// A verifier key string is malformed or inconsistent.
    #[error("checkpoint: verifier key: {rule}")]
    VerifierKey { rule: String },
    /// The validator set itself is unusable (bad or duplicate names/keys).
    #[error("checkpoint: validator set: {rule}")]
    ValidatorSet { rule: String },
    /// A line from a known validator key (name and key ID match) did not verify.
    #[error("checkpoint: signature line {line}: invalid signature from validator '{name}' (key id {key_id}): {reason}")]
    InvalidSignature {
        line: usize,
        name: String,
        key_id: String,
        #[source]
        reason: SigError,
    },
    /// Strict mode only: the name is a validator's but the key ID is not its key's.
    #[error("checkpoint: signature line {line}: key id does not match name '{name}'")]
    KeyIdMismatch { line: usize, name: String },
    /// Strict mode only: the key name is not a validator's.
    #[error("checkpoint: signature line {line}: key name '{name}' is not a validator")]
    UnknownSigner { line: usize, name: String },
    /// Not enough distinct validators signed.
    #[error("checkpoint: {signed} of {validators} validators signed; more than 2/3 ({needed}) required")]
    NoQuorum { signed: usize, needed: usize, validators: usize },
}

/// The signed text of a commit certificate (tlog-checkpoint §Note text plus one extension line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointBody {
    /// Log identity; non-empty, no control characters (tlog-checkpoint §Note text, item 1).
    pub origin: String,
    /// Number of leaves in the log's Merkle tree.
    pub tree_size: u64,
    /// RFC 6962 Merkle root at `tree_size`.
    pub root: [u8; 32],
    /// Block height committed by this certificate.
    pub height: u64,
    /// Consensus round in which the block was committed.
    pub round: u32,
    /// Hash of the committed block.
    pub block_hash: [u8; 32],
}

impl CheckpointBody {
    /// The note text that validators sign: four lines, each ending in `\n`
    /// (signed-note §Format: "the note text includes the final newline").
    ///
    /// Only a body whose origin is non-empty and free of control characters yields parseable
    /// text; [`verify_quorum`] rejects certificates over any other body.
    pub fn to_text(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}height={} round={} block={}\n",
            self.origin,
            self.tree_size,
            B64.encode(self.root),
            EXTENSION_PREFIX,
            self.height,
            self.round,
            hex(&self.block_hash),
        )
    }

    /// Parses exactly the text produced by [`CheckpointBody::to_text`] (strict and canonical).
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        if text.len() > CHECKPOINT_BYTES_MAX {
            return Err(CheckpointError::TooLarge { len: text.len(), max: CHECKPOINT_BYTES_MAX });
        }
        check_no_controls(text)?;
        let Some(content) = text.strip_suffix('\n') else {
            return Err(CheckpointError::UnterminatedText);
        };
        let mut lines = content.split('\n');

        // tlog-checkpoint §Note text, item 1: origin MUST be non-empty. Spaces and '+' are only
        // RECOMMENDED against, so they are allowed; control characters were rejected above.
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(field(1, "origin", "must not be empty"));
        }

        // Item 2: ASCII decimal, no leading zeroes (unless the tree is empty).
        let size_line = lines.next().ok_or_else(|| field(2, "tree size", "missing"))?;
        let tree_size = parse_decimal(size_line).map_err(|rule| field(2, "tree size", rule))?;

        // Item 3: base64 of the root hash. The engine requires canonical padding and zero
        // trailing bits, so each root has exactly one accepted encoding.
        let root_line = lines.next().ok_or_else(|| field(3, "root hash", "missing"))?;
        let root_bytes =
            B64.decode(root_line).map_err(|_| field(3, "root hash", "not valid padded standard base64"))?;
        let root: [u8; 32] = root_bytes.as_slice().try_into().map_err(|_| {
            field(3, "root hash", format!("decodes to {} bytes; exactly 32 required", root_bytes.len()))
        })?;

        // Item 4: extension lines are optional in general; Credence requires exactly one,
        // beginning "credence " (and non-empty, as the spec requires of all extension lines).
        let ext = lines.next().ok_or_else(|| {
            field(4, "extension", "missing; exactly one line 'credence height=.. round=.. block=..' is required")
        })?;
        let (height, round, block_hash) = parse_extension(ext)?;
        if lines.next().is_some() {
            return Err(field(5, "extension", "unexpected extra line; exactly one extension line is allowed"));
        }

        let body = CheckpointBody { origin: origin.to_owned(), tree_size, root, height, round, block_hash };
        // Defence in depth: the rules above are canonical, so this always holds; it guarantees
        // that signatures verified over `to_text()` are signatures over the text we received.
        if body.to_text() != text {
            return Err(field(1, "text", "not in canonical form"));
        }
        Ok(body)
    }
}

/// One signature line (signed-note §Signatures): `— <key name> base64(key ID || signature)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name; non-empty, no Unicode whitespace, no '+'.
    pub key_name: String,
    /// Key ID, big-endian, as it appears in the line.
    pub key_id: [u8; 4],
    /// Ed25519 signature over the note text.
    pub signature: Signature,
}

impl NoteSignature {
    /// The signature line including its trailing newline.
    pub fn to_line(&self) -> String {
        let mut raw = [0u8; ED25519_LINE_BYTES];
        raw[..4].copy_from_slice(&self.key_id);
        raw[4..].copy_from_slice(&self.signature.0);
        format!("{SIG_PREFIX}{} {}\n", self.key_name, B64.encode(raw))
    }
}

/// A commit certificate: a body and its signature lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub body: CheckpointBody,
    /// Signature lines in note order. [`Checkpoint::to_note`] writes them sorted by key name,
    /// then key ID (then signature bytes), so the canonical note does not depend on arrival order.
    pub signatures: Vec<NoteSignature>,
}

impl Checkpoint {
    /// The signed note: text, blank line, sorted signature lines (signed-note §Format).
    ///
    /// A checkpoint without signatures yields a note that [`Checkpoint::parse_note`] rejects,
    /// as the spec requires at least one signature line.
    pub fn to_note(&self) -> String {
        let mut sigs: Vec<&NoteSignature> = self.signatures.iter().collect();
        sigs.sort_by(|a, b| {
            (a.key_name.as_str(), a.key_id, a.signature.0).cmp(&(b.key_name.as_str(), b.key_id, b.signature.0))
        });
        let mut out = self.body.to_text();
        out.push('\n');
        for s in sigs {
            out.push_str(&s.to_line());
        }
        out
    }

    /// Parses a signed note. Signatures are NOT verified here: use [`verify_quorum`].
    pub fn parse_note(text: &str) -> Result<Self, CheckpointError> {
        Self::parse_note_bytes(text.as_bytes())
    }

    /// Like [`Checkpoint::parse_note`], from raw bytes (non-UTF-8 is an error, not a panic).
    pub fn parse_note_bytes(bytes: &[u8]) -> Result<Self, CheckpointError> {
        parse_note_with_limits(bytes, CHECKPOINT_BYTES_MAX, SIGNATURES_MAX)
    }
}

/// Ed25519 key ID (signed-note §Ed25519 signatures):
/// `SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4]`.
pub fn key_id(name: &str, pk: &PublicKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(pk.0);
    let digest = h.finalize();
    let mut id = [0u8; 4];
    id.copy_from_slice(&digest[..4]);
    id
}

/// A trusted key: name plus Ed25519 public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierKey {
    pub name: String,
    pub key: PublicKey,
}

impl VerifierKey {
    /// This key's key ID (see [`key_id`]).
    pub fn key_id(&self) -> [u8; 4] {
        key_id(&self.name, &self.key)
    }

    /// The verifier key string used by C2SP tooling and Go's `note.NewVerifier`:
    /// `<name>+<8 lowercase hex key ID>+<base64(0x01 || public key)>`.
    pub fn to_vkey_string(&self) -> String {
        let mut raw = [0u8; 33];
        raw[0] = ALG_ED25519;
        raw[1..].copy_from_slice(&self.key.0);
        format!("{}+{}+{}", self.name, hex(&self.key_id()), B64.encode(raw))
    }

    /// Parses a verifier key string. The key ID must be lowercase hex (as written by
    /// [`VerifierKey::to_vkey_string`] and Go) and must equal the ID computed from name and key.
    pub fn parse(s: &str) -> Result<Self, CheckpointError> {
        let bad = |rule: String| CheckpointError::VerifierKey { rule };
        let (name, id, key) = split_vkey(s, ALG_ED25519, |alg| {
            format!("unsupported signature type 0x{alg:02x}; only Ed25519 (0x01) is accepted")
        })
        .map_err(bad)?;
        let vk = VerifierKey { name: name.to_owned(), key };
        let expected = vk.key_id();
        if expected != id {
            return Err(bad(format!("key id {} does not match name and key (expected {})", hex(&id), hex(&expected))));
        }
        Ok(vk)
    }
}

/// Splits a C2SP verifier key string `<name>+<8 lowercase hex key ID>+<base64(alg || key)>`
/// and checks its parts: a valid key name, the ID's form, a 32-byte Ed25519 key of type `alg`
/// (`other_alg` words the refusal of another type). The caller checks the ID against its own
/// key-ID rule (a validator's and a witness's differ).
pub(crate) fn split_vkey(
    s: &str,
    alg: u8,
    other_alg: impl FnOnce(u8) -> String,
) -> Result<(&str, [u8; 4], PublicKey), String> {
    let mut parts = s.splitn(3, '+');
    let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("expected '<name>+<8 hex key id>+<base64 key>'".to_owned());
    };
    check_key_name(name).map_err(str::to_owned)?;
    let id = decode_hex::<4>(id_hex).ok_or_else(|| format!("key id '{id_hex}' is not 8 lowercase hex digits"))?;
    let raw = B64.decode(key_b64).map_err(|_| "key is not valid padded standard base64".to_owned())?;
    match raw.split_first() {
        None => return Err("key is empty".to_owned()),
        Some((&a, _)) if a == alg => {}
        Some((&a, _)) => return Err(other_alg(a)),
    }
    let pk: [u8; 32] =
        raw[1..].try_into().map_err(|_| format!("Ed25519 key is {} bytes; exactly 32 required", raw.len() - 1))?;
    Ok((name, id, PublicKey(pk)))
}

/// A validator's signature line for `body` (signs [`CheckpointBody::to_text`]).
///
/// `name` should be a valid key name (non-empty, no whitespace, no '+'); otherwise the line
/// cannot appear in a parseable note.
pub fn sign(body: &CheckpointBody, name: &str, sk: &SecretKey) -> NoteSignature {
    NoteSignature {
        key_name: name.to_owned(),
        key_id: key_id(name, &sk.public()),
        signature: sk.sign_raw(body.to_text().as_bytes()),
    }
}

/// Outcome of a successful [`verify_quorum`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumReport {
    /// Names of validators with a verified signature, in `validators` order, each once.
    pub signers: Vec<String>,
    /// Signatures required: [`quorum_threshold`] of the validator count.
    pub needed: usize,
    /// Number of validators.
    pub validators: usize,
}

/// Smallest `k` with `3k > 2n` (strictly more than two thirds). Never overflows.
pub fn quorum_threshold(n: usize) -> usize {
    // floor(2n/3) + 1, computed as n - ceil(n/3) + 1 to avoid overflowing 2n.
    n - n.div_ceil(3) + 1
}

/// A certificate is valid only with valid signatures from MORE than 2/3 of `validators` (equal
/// weight), each validator counted ONCE (duplicate signature lines from one key count once;
/// lines from unknown keys are ignored per C2SP, see [`verify_quorum_strict`]), all by key ID
/// AND name match.
///
/// signed-note §Signatures: a line matches a validator only if both key name and key ID match;
/// a line sharing only one of them is an unknown key and is ignored. Every matching line is
/// verified, and a failure rejects the whole certificate with
/// [`CheckpointError::InvalidSignature`] (the spec's SHOULD, and Go's `note.Open` behaviour).
///
/// The validator set must have distinct, valid names and distinct public keys.
pub fn verify_quorum(cp: &Checkpoint, validators: &[VerifierKey]) -> Result<QuorumReport, CheckpointError> {
    verify(cp, validators, false)
}

/// Like [`verify_quorum`], but every signature line must come from a validator: a line whose
/// name is unknown, or whose key ID does not match the named validator, is an error.
pub fn verify_quorum_strict(cp: &Checkpoint, validators: &[VerifierKey]) -> Result<QuorumReport, CheckpointError> {
    verify(cp, validators, true)
}

/// [`verify_quorum_strict`] without the Ed25519 checks: every line must name a distinct
/// validator with its key ID, enough of them for a quorum, but the signatures are taken
/// as valid. Only for a certificate its holder assembled from signatures it verified
/// itself (a consensus decision built from counted precommits, each checked on
/// arrival); anything received is checked with [`verify_quorum_strict`]. `key_ids` are
/// the validators' key IDs in order (precomputed: this runs on every commit).
pub fn quorum_of_verified_lines(
    cp: &Checkpoint,
    validators: &[VerifierKey],
    key_ids: &[[u8; 4]],
) -> Result<QuorumReport, CheckpointError> {
    assert_eq!(validators.len(), key_ids.len(), "one key ID per validator");
    if cp.signatures.len() > SIGNATURES_MAX {
        return Err(CheckpointError::TooManySignatures { count: cp.signatures.len(), max: SIGNATURES_MAX });
    }
    let mut signed = vec![false; validators.len()];
    for (i, s) in cp.signatures.iter().enumerate() {
        let line = i + 1;
        match validators.iter().position(|v| v.name == s.key_name) {
            Some(vi) if key_ids[vi] == s.key_id => signed[vi] = true,
            Some(_) => return Err(CheckpointError::KeyIdMismatch { line, name: s.key_name.clone() }),
            None => return Err(CheckpointError::UnknownSigner { line, name: s.key_name.clone() }),
        }
    }
    quorum_report(validators, &signed)
}

/// The signers `signed` marks, if they are more than 2/3 of `validators`.
fn quorum_report(validators: &[VerifierKey], signed: &[bool]) -> Result<QuorumReport, CheckpointError> {
    let needed = quorum_threshold(validators.len());
    let signers: Vec<String> =
        validators.iter().zip(signed).filter(|(_, s)| **s).map(|(v, _)| v.name.clone()).collect();
    if signers.len() < needed {
        return Err(CheckpointError::NoQuorum { signed: signers.len(), needed, validators: validators.len() });
    }
    Ok(QuorumReport { signers, needed, validators: validators.len() })
}

/// Everything [`verify_quorum_strict`] checks but the Ed25519 equations: the validator
/// set's names and keys, the signed text's round trip, every line naming a validator with
/// its key ID, and a quorum of them. Returns the signed text and each line's validator
/// (index into `validators`), in line order, for the caller to verify the signatures in a
/// batch. If this errs, or a line's signature is bad, [`verify_quorum_strict`] itself gives
/// the error (the same checks in its order), so callers report that.
pub fn strict_lines_unverified(
    cp: &Checkpoint,
    validators: &[VerifierKey],
) -> Result<(String, Vec<usize>), CheckpointError> {
    let (by_name, ids) = index_validators(validators)?;
    let text = signed_text(cp)?;
    if cp.signatures.len() > SIGNATURES_MAX {
        return Err(CheckpointError::TooManySignatures { count: cp.signatures.len(), max: SIGNATURES_MAX });
    }
    let mut signed = vec![false; validators.len()];
    let mut lines = Vec::with_capacity(cp.signatures.len());
    for (i, s) in cp.signatures.iter().enumerate() {
        let line = i + 1;
        match by_name.get(s.key_name.as_str()) {
            Some(&vi) if ids[vi] == s.key_id => {
                signed[vi] = true;
                lines.push(vi);
            }
            Some(_) => return Err(CheckpointError::KeyIdMismatch { line, name: s.key_name.clone() }),
            None => return Err(CheckpointError::UnknownSigner { line, name: s.key_name.clone() }),
        }
    }
    quorum_report(validators, &signed)?;
    Ok((text, lines))
}

/// The validators by name, and their key IDs, after checking the set: valid key names,
/// no name or key twice.
fn index_validators(validators: &[VerifierKey]) -> Result<ValidatorIndex<'_>, CheckpointError> {
    let set_err = |rule: String| CheckpointError::ValidatorSet { rule };
    let mut by_name: HashMap<&str, usize> = HashMap::with_capacity(validators.len());
    let mut keys: HashSet<PublicKey> = HashSet::with_capacity(validators.len());
    for (i, v) in validators.iter().enumerate() {
        check_key_name(&v.name).map_err(|rule| set_err(format!("validator {}: {rule}", i + 1)))?;
        if by_name.insert(v.name.as_str(), i).is_some() {
            return Err(set_err(format!("duplicate validator name '{}'", v.name)));
        }
        if !keys.insert(v.key) {
            return Err(set_err(format!("validator '{}' reuses another validator's public key", v.name)));
        }
    }
    Ok((by_name, validators.iter().map(VerifierKey::key_id).collect()))
}

/// Validator index by name, and each validator's key ID.
type ValidatorIndex<'a> = (HashMap<&'a str, usize>, Vec<[u8; 4]>);

/// The signed text, which must itself be a valid checkpoint text for this very body.
fn signed_text(cp: &Checkpoint) -> Result<String, CheckpointError> {
    let text = cp.body.to_text();
    if CheckpointBody::parse(&text)? != cp.body {
        return Err(field(1, "text", "body does not round-trip"));
    }
    Ok(text)
}

fn verify(cp: &Checkpoint, validators: &[VerifierKey], strict: bool) -> Result<QuorumReport, CheckpointError> {
    let (by_name, ids) = index_validators(validators)?;
    let text = signed_text(cp)?;
    if cp.signatures.len() > SIGNATURES_MAX {
        return Err(CheckpointError::TooManySignatures { count: cp.signatures.len(), max: SIGNATURES_MAX });
    }

    let mut signed = vec![false; validators.len()];
    for (i, s) in cp.signatures.iter().enumerate() {
        let line = i + 1;
        match by_name.get(s.key_name.as_str()) {
            Some(&vi) if ids[vi] == s.key_id => {
                verify_raw(&validators[vi].key, text.as_bytes(), &s.signature).map_err(|reason| {
                    CheckpointError::InvalidSignature { line, name: s.key_name.clone(), key_id: hex(&s.key_id), reason }
                })?;
                signed[vi] = true;
            }
            // Same name, other key ID: an unknown key (signed-note §Signatures).
            Some(_) if strict => {
                return Err(CheckpointError::KeyIdMismatch { line, name: s.key_name.clone() });
            }
            None if strict => {
                return Err(CheckpointError::UnknownSigner { line, name: s.key_name.clone() });
            }
            _ => {}
        }
    }

    quorum_report(validators, &signed)
}

/// Splits and checks a signed note (signed-note §Format), then parses the checkpoint body.
fn parse_note_with_limits(bytes: &[u8], max_bytes: usize, max_sigs: usize) -> Result<Checkpoint, CheckpointError> {
    let (text, signatures) = open_note(bytes, max_bytes, max_sigs)?;
    let body = CheckpointBody::parse(text)?;
    Ok(Checkpoint { body, signatures })
}

/// The generic signed-note layer: returns the note text and the parsed signature lines.
fn open_note(bytes: &[u8], max_bytes: usize, max_sigs: usize) -> Result<(&str, Vec<NoteSignature>), CheckpointError> {
    if bytes.len() > max_bytes {
        return Err(CheckpointError::TooLarge { len: bytes.len(), max: max_bytes });
    }
    // §Format: valid UTF-8, no control characters other than newline.
    let note = std::str::from_utf8(bytes).map_err(|e| CheckpointError::NotUtf8 { offset: e.valid_up_to() })?;
    check_no_controls(note)?;

    // §Format: "the text is separated from the signatures by the last empty line in the note".
    let split = note.rfind("\n\n").ok_or(CheckpointError::MissingBlankLine)?;
    let (text, block) = (&note[..split + 1], &note[split + 2..]);
    if block.is_empty() {
        return Err(CheckpointError::NoSignatures);
    }
    let Some(block) = block.strip_suffix('\n') else {
        return Err(CheckpointError::UnterminatedSignatureLine);
    };
    let count = block.split('\n').count();
    if count > max_sigs {
        return Err(CheckpointError::TooManySignatures { count, max: max_sigs });
    }
    let signatures = block
        .split('\n')
        .enumerate()
        .map(|(i, line)| parse_signature_line(line, i + 1))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((text, signatures))
}

/// signed-note §Signatures: `— <key name> base64(32-bit key ID || signature)` (no newline).
fn parse_signature_line(line: &str, n: usize) -> Result<NoteSignature, CheckpointError> {
    let bad = |rule: String| CheckpointError::SignatureLine { line: n, rule };
    let rest =
        line.strip_prefix(SIG_PREFIX).ok_or_else(|| bad("must begin with U+2014 EM DASH and a space".to_owned()))?;
    let (name, b64) =
        rest.split_once(' ').ok_or_else(|| bad("missing space between key name and signature".to_owned()))?;
    check_key_name(name).map_err(|rule| bad(rule.to_owned()))?;
    let raw = B64.decode(b64).map_err(|_| bad("signature is not valid padded standard base64".to_owned()))?;
    // Only Ed25519 (signed-note §Ed25519 signatures) is representable in `NoteSignature`.
    let raw: [u8; ED25519_LINE_BYTES] = raw.as_slice().try_into().map_err(|_| {
        bad(format!(
            "signature decodes to {} bytes; Ed25519 lines carry {ED25519_LINE_BYTES} (4-byte key id + 64)",
            raw.len()
        ))
    })?;
    let mut key_id = [0u8; 4];
    key_id.copy_from_slice(&raw[..4]);
    let mut signature = [0u8; 64];
    signature.copy_from_slice(&raw[4..]);
    Ok(NoteSignature { key_name: name.to_owned(), key_id, signature: Signature(signature) })
}

/// signed-note §Format: key names are non-empty with no Unicode spaces and no '+'.
/// A C2SP signed-note key name: non-empty, no whitespace, no '+', no control character.
pub fn check_key_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("key name is empty")
    } else if name.chars().any(char::is_whitespace) {
        Err("key name contains whitespace")
    } else if name.contains('+') {
        Err("key name contains '+'")
    } else if name.chars().any(|c| (c as u32) < 0x20) {
        Err("key name contains a control character")
    } else {
        Ok(())
    }
}

/// signed-note §Format: no ASCII control characters (below U+0020) other than newline.
fn check_no_controls(s: &str) -> Result<(), CheckpointError> {
    match s.char_indices().find(|&(_, c)| (c as u32) < 0x20 && c != '\n') {
        Some((offset, c)) => Err(CheckpointError::ControlChar { offset, code: c as u32 }),
        None => Ok(()),
    }
}

/// `credence height=<u64> round=<u32> block=<64 lowercase hex>`, single spaces, nothing else.
fn parse_extension(line: &str) -> Result<(u64, u32, [u8; 32]), CheckpointError> {
    let ext = |rule: String| field(4, "extension", rule);
    let rest =
        line.strip_prefix(EXTENSION_PREFIX).ok_or_else(|| ext(format!("must begin with '{EXTENSION_PREFIX}'")))?;
    let mut parts = rest.split(' ');
    let mut next = |key: &str| {
        parts.next().and_then(|p| p.strip_prefix(key)).ok_or_else(|| ext(format!("expected '{key}..' field")))
    };
    let height = parse_decimal(next("height=")?).map_err(|r| ext(format!("height: {r}")))?;
    let round_u64 = parse_decimal(next("round=")?).map_err(|r| ext(format!("round: {r}")))?;
    let round = u32::try_from(round_u64).map_err(|_| ext("round: does not fit in 32 bits".to_owned()))?;
    let block_hex = next("block=")?;
    let block_hash =
        decode_hex::<32>(block_hex).ok_or_else(|| ext("block: must be 64 lowercase hex digits".to_owned()))?;
    if parts.next().is_some() {
        return Err(ext("unexpected text after the block field".to_owned()));
    }
    Ok((height, round, block_hash))
}

/// ASCII decimal u64 without sign and without leading zeros ("0" itself is fine).
fn parse_decimal(s: &str) -> Result<u64, String> {
    if s.is_empty() {
        return Err("empty".to_owned());
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{s}' is not a decimal number (digits 0-9 only)"));
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err("leading zero not allowed".to_owned());
    }
    s.parse::<u64>().map_err(|_| "does not fit in 64 bits".to_owned())
}

fn field(line: usize, field: &'static str, rule: impl Into<String>) -> CheckpointError {
    CheckpointError::Field { line, field, rule: rule.into() }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Lowercase hex only, exactly `2 * N` digits.
pub(crate) fn decode_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    if bytes.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // ---- Go reference vectors: golang.org/x/mod/sumdb/note, note_test.go (TestNewVerifier,
    // TestSign, TestVerifierList, TestOpen). ----
    const GO_PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_PETER_SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                           then you don't know what your problem is.\n";
    const GO_PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    const GO_ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

    fn names() -> [&'static str; 7] {
        ["bank-a", "bank-b", "bank-c", "bank-d", "bank-e", "bank-f", "bank-g"]
    }

    fn keys(n: usize) -> (Vec<SecretKey>, Vec<VerifierKey>) {
        let sks: Vec<SecretKey> = (0..n).map(|i| SecretKey::from_seed([i as u8 + 1; 32])).collect();
        let vks =
            sks.iter().zip(names()).map(|(sk, name)| VerifierKey { name: name.to_owned(), key: sk.public() }).collect();
        (sks, vks)
    }

    fn body() -> CheckpointBody {
        CheckpointBody {
            origin: "credence.example/ledger".to_owned(),
            tree_size: 42,
            root: [0xab; 32],
            height: 7,
            round: 3,
            block_hash: [0x01; 32],
        }
    }

    fn cert(body: &CheckpointBody, sks: &[SecretKey], which: &[usize]) -> Checkpoint {
        Checkpoint { body: body.clone(), signatures: which.iter().map(|&i| sign(body, names()[i], &sks[i])).collect() }
    }

    fn err_note(note: &str) -> String {
        match Checkpoint::parse_note(note) {
            Ok(cp) => panic!("accepted bad note {note:?}: {cp:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn good_note() -> String {
        let (sks, _) = keys(4);
        cert(&body(), &sks, &[0, 1, 2, 3]).to_note()
    }

    fn sig_line_of(note: &str) -> &str {
        &note[note.find("\n\n").expect("blank line") + 2..]
    }

    /// Without signature checks, a certificate still needs distinct known validators with
    /// their key IDs and a quorum; only the Ed25519 verdicts are taken on trust.
    #[test]
    fn quorum_of_verified_lines_checks_everything_but_the_signatures() {
        let (sks, vks) = keys(4);
        let ids: Vec<[u8; 4]> = vks.iter().map(VerifierKey::key_id).collect();
        let quorum_of_verified_lines = |cp: &Checkpoint, vks: &[VerifierKey]| quorum_of_verified_lines(cp, vks, &ids);
        let good = cert(&body(), &sks, &[0, 1, 2]);
        assert!(quorum_of_verified_lines(&good, &vks).is_ok());
        let mut forged = good.clone();
        forged.signatures[0].signature.0[40] ^= 1;
        assert!(verify_quorum_strict(&forged, &vks).is_err(), "a received certificate is verified");
        assert!(quorum_of_verified_lines(&forged, &vks).is_ok(), "its own decision's lines are trusted");
        let short = cert(&body(), &sks, &[0, 1]);
        assert!(matches!(quorum_of_verified_lines(&short, &vks), Err(CheckpointError::NoQuorum { .. })));
        let mut twice = cert(&body(), &sks, &[0, 1]);
        twice.signatures.push(twice.signatures[0].clone());
        assert!(matches!(quorum_of_verified_lines(&twice, &vks), Err(CheckpointError::NoQuorum { .. })));
        let mut stranger = good.clone();
        stranger.signatures[2].key_name = "mallory".into();
        assert!(matches!(quorum_of_verified_lines(&stranger, &vks), Err(CheckpointError::UnknownSigner { .. })));
        let mut wrong_id = good;
        wrong_id.signatures[2].key_id = [0; 4];
        assert!(matches!(quorum_of_verified_lines(&wrong_id, &vks), Err(CheckpointError::KeyIdMismatch { .. })));
    }

    #[test]
    fn go_verifier_keys_parse_with_expected_key_ids() {
        let peter = VerifierKey::parse(GO_PETER_VKEY).expect("peter vkey");
        assert_eq!(peter.name, "PeterNeumann");
        assert_eq!(peter.key_id(), [0xc7, 0x4f, 0x20, 0xa3]);
        assert_eq!(key_id("PeterNeumann", &peter.key), [0xc7, 0x4f, 0x20, 0xa3]);
        assert_eq!(peter.to_vkey_string(), GO_PETER_VKEY);
        let enoch = VerifierKey::parse(GO_ENOCH_VKEY).expect("enoch vkey");
        assert_eq!(enoch.key_id(), [0xaf, 0x0c, 0xfe, 0x78]);
        assert_eq!(enoch.to_vkey_string(), GO_ENOCH_VKEY);
    }

    #[test]
    fn go_verifier_key_manglings_rejected() {
        // Go's TestNewVerifier: every proper substring and every single-byte increment fails.
        let b = GO_PETER_VKEY.as_bytes();
        for i in 0..=b.len() {
            for j in i + 1..=b.len() {
                if i != 0 || j != b.len() {
                    let s = &GO_PETER_VKEY[i..j];
                    assert!(VerifierKey::parse(s).is_err(), "accepted {s:?}");
                }
            }
        }
        for i in 0..b.len() {
            let mut m = b.to_vec();
            m[i] += 1;
            let s = String::from_utf8(m).expect("ascii");
            assert!(VerifierKey::parse(&s).is_err(), "accepted {s:?}");
        }
        let e = VerifierKey::parse("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==")
            .expect_err("wrong length");
        // Go's decoder ignores the non-zero trailing bits of "EY=="; ours rejects them first.
        assert!(matches!(e, CheckpointError::VerifierKey { .. }), "{e}");
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(&[7; 33]);
        let long = format!("PeterNeumann+c74f20a3+{}", B64.encode(raw));
        let e = VerifierKey::parse(&long).expect_err("33-byte key");
        assert!(e.to_string().contains("exactly 32 required"), "{e}");
        let e = VerifierKey::parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
            .expect_err("unknown algorithm");
        assert!(e.to_string().contains("unsupported signature type 0x65"), "{e}");
        // Uppercase hex key id is not accepted (we write and read lowercase only).
        let upper = GO_PETER_VKEY.replace("c74f20a3", "C74F20A3");
        assert!(VerifierKey::parse(&upper).is_err());
    }

    #[test]
    fn go_signed_note_verifies_with_verify_raw() {
        // Go's TestOpen note with two signatures, through our generic signed-note layer.
        let note = format!("{GO_TEXT}\n{GO_PETER_SIG}{GO_ENOCH_SIG}");
        let (text, sigs) = open_note(note.as_bytes(), CHECKPOINT_BYTES_MAX, SIGNATURES_MAX).expect("opens");
        assert_eq!(text, GO_TEXT);
        assert_eq!(sigs.len(), 2);
        for (sig, vkey) in sigs.iter().zip([GO_PETER_VKEY, GO_ENOCH_VKEY]) {
            let vk = VerifierKey::parse(vkey).expect("vkey");
            assert_eq!(sig.key_name, vk.name);
            assert_eq!(sig.key_id, vk.key_id());
            verify_raw(&vk.key, text.as_bytes(), &sig.signature).expect("Go signature verifies");
            assert!(verify_raw(&vk.key, b"other text\n", &sig.signature).is_err());
            assert_eq!(sig.to_line().as_str(), if vk.name == "PeterNeumann" { GO_PETER_SIG } else { GO_ENOCH_SIG });
        }
    }

    #[test]
    fn go_signer_key_reproduces_go_signature_line() {
        // Go's TestSign: the PRIVATE+KEY seed signs GO_TEXT to exactly Go's signature line.
        // PRIVATE+KEY+<name>+<id>+<base64(0x01 || seed)>; the base64 itself may contain '+'.
        let b64 = GO_PETER_SKEY.splitn(5, '+').nth(4).expect("key part");
        let raw = B64.decode(b64).expect("base64");
        assert_eq!(raw.len(), 33);
        assert_eq!(raw[0], ALG_ED25519);
        let seed: [u8; 32] = raw[1..].try_into().expect("32");
        let sk = SecretKey::from_seed(seed);
        let vk = VerifierKey::parse(GO_PETER_VKEY).expect("vkey");
        assert_eq!(sk.public(), vk.key);
        let line = NoteSignature {
            key_name: "PeterNeumann".to_owned(),
            key_id: key_id("PeterNeumann", &sk.public()),
            signature: sk.sign_raw(GO_TEXT.as_bytes()),
        };
        assert_eq!(line.to_line(), GO_PETER_SIG);
    }

    #[test]
    fn go_malformed_notes_rejected() {
        // Go's TestOpen badMsgs, against our generic signed-note layer.
        let bad = [
            GO_TEXT.to_owned(),
            format!("{GO_TEXT}\n"),
            format!("{GO_TEXT}\n{}", &GO_PETER_SIG[..GO_PETER_SIG.len() - 1]),
            format!("\x01{GO_TEXT}\n{GO_PETER_SIG}"),
            format!(
                "{GO_TEXT}\n\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
            ),
            format!("{GO_TEXT}\n{GO_PETER_SIG}Unexpected line.\n"),
        ];
        for msg in &bad {
            assert!(open_note(msg.as_bytes(), CHECKPOINT_BYTES_MAX, SIGNATURES_MAX).is_err(), "accepted {msg:?}");
        }
        let mut ff = vec![0xff];
        ff.extend_from_slice(format!("{GO_TEXT}\n{GO_PETER_SIG}").as_bytes());
        assert!(matches!(
            open_note(&ff, CHECKPOINT_BYTES_MAX, SIGNATURES_MAX),
            Err(CheckpointError::NotUtf8 { offset: 0 })
        ));
    }

    #[test]
    fn c2sp_checkpoint_example_needs_credence_extension() {
        // The example from c2sp.org/tlog-checkpoint: a valid signed note, but no extension line.
        let note = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n\u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";
        let (_, sigs) =
            open_note(note.as_bytes(), CHECKPOINT_BYTES_MAX, SIGNATURES_MAX).expect("generic note layer accepts");
        assert_eq!(sigs[0].key_name, "example.com/behind-the-sofa");
        assert_eq!(sigs[0].key_id, [0x03, 0x3d, 0xe0, 0xae]);
        let e = err_note(note);
        assert!(e.starts_with("checkpoint line 4 (extension): missing"), "{e}");
    }

    #[test]
    fn golden_note_for_fixed_body_and_seeds() {
        let (sks, vks) = keys(4);
        // Signed in reverse order: to_note must sort by key name.
        let cp = cert(&body(), &sks, &[3, 2, 1, 0]);
        let golden = "credence.example/ledger\n\
42\n\
q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n\
credence height=7 round=3 block=0101010101010101010101010101010101010101010101010101010101010101\n\
\n\
\u{2014} bank-a x7rkzyt1jvxz0/coY7moD1NXFTLZ28m1UyX/TpS4uN3kCvm9WRNtB5CHdK+FPQl7PfxK/tWqDMLLhwzgio/rSTbcxA8=\n\
\u{2014} bank-b rijE1oX5HbPSssoPzxy9qXuTJL4fXQNVUkr23Kr5BkxvbyNnx3cnj7X9jbNl2M0YT3I64iZ0R1muxLNN8hkj3wT9hAY=\n\
\u{2014} bank-c CxD9tdPoS6rNnLNDXEZEH+UuWwwj8W5BGKG+mJH+3mfuSeTV/kLxh4ev9vUthQrEuvkw86+Jplqv26FYvO49I4jTUQc=\n\
\u{2014} bank-d lj7SVLPqGVJtWd2/hlf2Kw1z8+KBCvDBuYP/idwh2hAjlizQrtU0Bg3fZJkir8H5yec6t0fyxDXYtK98q56aoCi6dAw=\n";
        assert_eq!(cp.to_note(), golden);
        let vk_strings: Vec<String> = vks.iter().map(VerifierKey::to_vkey_string).collect();
        assert_eq!(
            vk_strings,
            [
                "bank-a+c7bae4cf+AYqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c",
                "bank-b+ae28c4d6+AYE5dw6ofRdfVqNUZsNMfszLjYqRtO43ol32D1uPybOU",
                "bank-c+0b10fdb5+Ae1JKMYo0cLG6ukDOJBZlWEpWSc6XGP5NjbBRhSshzfR",
                "bank-d+963ed254+AcqTrBcFGHBx1nuDx/8O/oEI6OxFMFdddyaHkzPb2r58",
            ]
        );
        // The golden note parses back and verifies.
        let parsed = Checkpoint::parse_note(golden).expect("golden parses");
        assert_eq!(verify_quorum(&parsed, &vks).expect("verifies").signers.len(), 4);
    }

    #[test]
    fn note_round_trips() {
        let (sks, vks) = keys(4);
        let mut cp = cert(&body(), &sks, &[2, 0, 3]);
        let note = cp.to_note();
        let parsed = Checkpoint::parse_note(&note).expect("parses");
        cp.signatures.sort_by(|a, b| a.key_name.cmp(&b.key_name));
        assert_eq!(parsed, cp);
        assert_eq!(parsed.to_note(), note);
        assert_eq!(Checkpoint::parse_note_bytes(note.as_bytes()).expect("bytes"), cp);
        verify_quorum(&parsed, &vks).expect("3 of 4 verify");
        for vk in &vks {
            assert_eq!(&VerifierKey::parse(&vk.to_vkey_string()).expect("vkey"), vk);
        }
    }

    #[test]
    fn body_text_round_trips_at_extremes() {
        for b in [
            CheckpointBody {
                origin: "o".to_owned(),
                tree_size: 0,
                root: [0; 32],
                height: 0,
                round: 0,
                block_hash: [0; 32],
            },
            CheckpointBody {
                origin: "weird origin + spaces \u{2014} é".to_owned(),
                tree_size: u64::MAX,
                root: [0xff; 32],
                height: u64::MAX,
                round: u32::MAX,
                block_hash: [0xff; 32],
            },
        ] {
            let text = b.to_text();
            assert_eq!(CheckpointBody::parse(&text).expect("parses"), b);
        }
        assert_eq!(
            body().to_text(),
            "credence.example/ledger\n42\nq6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=\n\
             credence height=7 round=3 block=0101010101010101010101010101010101010101010101010101010101010101\n"
        );
    }

    #[test]
    fn quorum_threshold_is_smallest_k_with_3k_gt_2n() {
        for (n, k) in [(0, 1), (1, 1), (2, 2), (3, 3), (4, 3), (5, 4), (6, 5), (7, 5), (10, 7)] {
            assert_eq!(quorum_threshold(n), k, "n = {n}");
        }
        for n in 0..2000usize {
            let brute = (0..=n + 1).find(|k| 3 * k > 2 * n).expect("exists");
            assert_eq!(quorum_threshold(n), brute, "n = {n}");
        }
        assert_eq!(quorum_threshold(usize::MAX), usize::MAX - usize::MAX / 3 + 1);
    }

    #[test]
    fn quorum_exactly_threshold_passes_one_fewer_fails() {
        for n in [1usize, 4, 7] {
            let (sks, vks) = keys(n);
            let needed = quorum_threshold(n);
            let all: Vec<usize> = (0..n).collect();
            let report =
                verify_quorum(&cert(&body(), &sks, &all[..needed]), &vks).expect("threshold signatures suffice");
            assert_eq!(report.needed, needed);
            assert_eq!(report.validators, n);
            assert_eq!(report.signers, names()[..needed].to_vec());
            let e = verify_quorum(&cert(&body(), &sks, &all[..needed - 1]), &vks).expect_err("one fewer fails");
            assert_eq!(
                e.to_string(),
                format!("checkpoint: {} of {n} validators signed; more than 2/3 ({needed}) required", needed - 1)
            );
        }
    }

    #[test]
    fn duplicate_lines_from_one_validator_count_once() {
        let (sks, vks) = keys(4);
        let mut cp = cert(&body(), &sks, &[0, 1, 1, 1]);
        cp.signatures.push(cp.signatures[0].clone());
        let e = verify_quorum(&cp, &vks).expect_err("2 distinct of 4");
        assert_eq!(e.to_string(), "checkpoint: 2 of 4 validators signed; more than 2/3 (3) required");
        // Duplicates also survive encoding and still count once.
        let reparsed = Checkpoint::parse_note(&cp.to_note()).expect("parses");
        assert_eq!(reparsed.signatures.len(), 5);
        assert!(verify_quorum(&reparsed, &vks).is_err());
        let ok = verify_quorum(&cert(&body(), &sks, &[0, 1, 2, 2]), &vks).expect("3 of 4");
        assert_eq!(ok.signers, ["bank-a", "bank-b", "bank-c"]);
    }

    #[test]
    fn non_validator_signature_does_not_count() {
        let (sks, vks) = keys(4);
        let outsider = SecretKey::from_seed([99; 32]);
        let mut cp = cert(&body(), &sks, &[0, 1]);
        cp.signatures.push(sign(&body(), "outsider", &outsider));
        let e = verify_quorum(&cp, &vks).expect_err("outsider ignored");
        assert!(e.to_string().contains("2 of 4 validators signed"), "{e}");
        let e = verify_quorum_strict(&cp, &vks).expect_err("strict rejects");
        assert_eq!(e.to_string(), "checkpoint: signature line 3: key name 'outsider' is not a validator");
        // With quorum present, the unknown line is ignored (and kept) by the lenient check.
        cp.signatures.push(sign(&body(), "bank-c", &sks[2]));
        let reparsed = Checkpoint::parse_note(&cp.to_note()).expect("parses");
        assert!(reparsed.signatures.iter().any(|s| s.key_name == "outsider"));
        verify_quorum(&reparsed, &vks).expect("3 of 4 plus an ignored outsider");
    }

    #[test]
    fn name_and_key_id_must_both_match() {
        let (sks, vks) = keys(4);
        // Key id of bank-a's key, but the line names someone else: unknown key, ignored.
        let mut renamed = sign(&body(), "bank-a", &sks[0]);
        renamed.key_name = "bank-z".to_owned();
        let mut cp = cert(&body(), &sks, &[1, 2]);
        cp.signatures.push(renamed);
        let e = verify_quorum(&cp, &vks).expect_err("renamed line not counted");
        assert!(e.to_string().contains("2 of 4"), "{e}");
        // Same name as a validator but a different key (so a different key id): ignored too.
        let impostor = SecretKey::from_seed([77; 32]);
        let mut cp = cert(&body(), &sks, &[1, 2]);
        cp.signatures.push(sign(&body(), "bank-a", &impostor));
        let e = verify_quorum(&cp, &vks).expect_err("impostor not counted");
        assert!(e.to_string().contains("2 of 4"), "{e}");
        let e = verify_quorum_strict(&cp, &vks).expect_err("strict rejects");
        assert_eq!(e.to_string(), "checkpoint: signature line 3: key id does not match name 'bank-a'");
    }

    #[test]
    fn tampered_body_fails() {
        let (sks, vks) = keys(4);
        let good = cert(&body(), &sks, &[0, 1, 2, 3]);
        verify_quorum(&good, &vks).expect("untampered verifies");
        let tampers: [fn(&mut CheckpointBody); 6] = [
            |b| b.origin.push('x'),
            |b| b.tree_size += 1,
            |b| b.root[31] ^= 1,
            |b| b.height += 1,
            |b| b.round += 1,
            |b| b.block_hash[0] ^= 0x80,
        ];
        for t in tampers {
            let mut cp = good.clone();
            t(&mut cp.body);
            let e = verify_quorum(&cp, &vks).expect_err("tampered body");
            assert!(matches!(e, CheckpointError::InvalidSignature { line: 1, .. }), "{e}");
            // Same through the text form.
            let reparsed = Checkpoint::parse_note(&cp.to_note()).expect("parses");
            assert!(verify_quorum(&reparsed, &vks).is_err());
        }
    }

    #[test]
    fn bad_signature_from_known_key_rejects_certificate() {
        let (sks, vks) = keys(4);
        let mut cp = cert(&body(), &sks, &[0, 1, 2, 3]);
        cp.signatures[2].signature.0[0] ^= 1;
        let e = verify_quorum(&cp, &vks).expect_err("bad known signature");
        assert!(
            e.to_string()
                .starts_with("checkpoint: signature line 3: invalid signature from validator 'bank-c' (key id "),
            "{e}"
        );
        // Even a bad duplicate after a good line from the same key rejects (stricter than Go).
        let mut cp = cert(&body(), &sks, &[0, 1, 2, 3, 3]);
        cp.signatures[4].signature.0[10] ^= 1;
        assert!(matches!(verify_quorum(&cp, &vks), Err(CheckpointError::InvalidSignature { line: 5, .. })));
        // A known key's signature over a different body.
        let mut other = body();
        other.height = 8;
        let mut cp = cert(&body(), &sks, &[0, 1, 2]);
        cp.signatures.push(sign(&other, "bank-d", &sks[3]));
        assert!(matches!(verify_quorum(&cp, &vks), Err(CheckpointError::InvalidSignature { line: 4, .. })));
    }

    #[test]
    fn validator_set_must_be_well_formed() {
        let (sks, mut vks) = keys(4);
        let cp = cert(&body(), &sks, &[0, 1, 2, 3]);
        let mut dup_name = vks.clone();
        dup_name[3].name = "bank-a".to_owned();
        assert!(
            verify_quorum(&cp, &dup_name)
                .expect_err("dup name")
                .to_string()
                .contains("duplicate validator name 'bank-a'")
        );
        let mut dup_key = vks.clone();
        dup_key[3].key = dup_key[0].key;
        assert!(
            verify_quorum(&cp, &dup_key)
                .expect_err("dup key")
                .to_string()
                .contains("reuses another validator's public key")
        );
        vks[1].name = "bank b".to_owned();
        assert!(matches!(verify_quorum(&cp, &vks), Err(CheckpointError::ValidatorSet { .. })));
        let e = verify_quorum(&cp, &[]).expect_err("empty set");
        assert!(e.to_string().contains("0 of 0 validators"), "{e}");
    }

    #[test]
    fn invalid_body_is_never_verified() {
        let (sks, vks) = keys(1);
        for origin in ["", "two\nlines", "tab\there"] {
            let mut b = body();
            b.origin = origin.to_owned();
            let cp = cert(&b, &sks, &[0]);
            assert!(verify_quorum(&cp, &vks).is_err(), "origin {origin:?}");
        }
    }

    #[test]
    fn rejects_structural_errors() {
        let note = good_note();
        let sigs = sig_line_of(&note).to_owned();
        let text = body().to_text();
        // Missing blank line.
        assert_eq!(
            err_note(&format!("{text}{sigs}")),
            "checkpoint: no blank line separating the note text from the signature lines"
        );
        // Trailing garbage, with and without newline.
        assert!(err_note(&format!("{note}garbage\n")).contains("must begin with U+2014"));
        assert_eq!(err_note(&format!("{note}garbage")), "checkpoint: last signature line does not end with a newline");
        // A trailing blank line makes it the separator (§Format: the LAST empty line).
        assert_eq!(err_note(&format!("{note}\n")), "checkpoint: no signature lines after the blank line");
        // No signatures.
        assert_eq!(err_note(&format!("{text}\n")), "checkpoint: no signature lines after the blank line");
        // CRLF line endings.
        assert!(err_note(&note.replace('\n', "\r\n")).contains("U+000D"));
        // Non-UTF-8.
        let mut bytes = note.clone().into_bytes();
        bytes[3] = 0xff;
        assert!(matches!(Checkpoint::parse_note_bytes(&bytes), Err(CheckpointError::NotUtf8 { offset: 3 })));
        // Empty origin and control character in origin.
        assert_eq!(
            err_note(&format!("\n{}", note.split_once('\n').expect("line").1)),
            "checkpoint line 1 (origin): must not be empty"
        );
        assert!(err_note(&note.replacen("credence.example", "cred\tence", 1)).contains("U+0009"));
    }

    fn replace_line(note: &str, line: usize, with: &str) -> String {
        let mut lines: Vec<&str> = note.split('\n').collect();
        lines[line - 1] = with;
        lines.join("\n")
    }

    #[test]
    fn rejects_bad_tree_size() {
        let note = good_note();
        for (bad, rule) in [
            ("042", "leading zero not allowed"),
            ("00", "leading zero not allowed"),
            ("-1", "'-1' is not a decimal number"),
            ("+1", "'+1' is not a decimal number"),
            (" 42", "is not a decimal number"),
            ("4 2", "is not a decimal number"),
            ("", "empty"),
            ("18446744073709551616", "does not fit in 64 bits"),
            ("99999999999999999999999", "does not fit in 64 bits"),
        ] {
            let e = err_note(&replace_line(&note, 2, bad));
            assert!(e.starts_with("checkpoint line 2 (tree size): ") && e.contains(rule), "{bad:?}: {e}");
        }
        assert_eq!(err_note(&replace_line(&note, 2, "042")), "checkpoint line 2 (tree size): leading zero not allowed");
        // Boundary values parse (signatures then fail, as the body changed).
        for ok in ["0", "18446744073709551615"] {
            let cp = Checkpoint::parse_note(&replace_line(&note, 2, ok)).expect("parses");
            let (_, vks) = keys(4);
            assert!(verify_quorum(&cp, &vks).is_err());
        }
    }

    #[test]
    fn rejects_bad_root() {
        let note = good_note();
        let root_b64 = B64.encode([0u8; 32]);
        let mut non_canonical = root_b64.clone().into_bytes();
        non_canonical[42] = b'B'; // non-zero trailing bits
        let non_canonical = String::from_utf8(non_canonical).expect("ascii");
        for (bad, rule) in [
            ("!!!!", "not valid padded standard base64"),
            (root_b64.trim_end_matches('='), "not valid padded standard base64"),
            (non_canonical.as_str(), "not valid padded standard base64"),
            (&B64.encode([0u8; 31]), "decodes to 31 bytes"),
            (&B64.encode([0u8; 33]), "decodes to 33 bytes"),
            ("", "decodes to 0 bytes"),
            (&B64.encode([0u8; 32]).replace('A', "-"), "not valid padded standard base64"),
        ] {
            let e = err_note(&replace_line(&note, 3, bad));
            assert!(e.starts_with("checkpoint line 3 (root hash): ") && e.contains(rule), "{bad:?}: {e}");
        }
        Checkpoint::parse_note(&replace_line(&note, 3, &root_b64)).expect("canonical zero root");
    }

    #[test]
    fn rejects_bad_extension() {
        let note = good_note();
        let hash = "01".repeat(32);
        for (bad, rule) in [
            ("credence height=7 round=3", "expected 'block=..' field"),
            ("credence height=7 block=00", "expected 'round=..' field"),
            ("credenc height=7 round=3 block=00", "must begin with 'credence '"),
            ("ledger height=7", "must begin with 'credence '"),
            ("credence", "must begin with 'credence '"),
            (&format!("credence height=07 round=3 block={hash}"), "height: leading zero"),
            (&format!("credence height=7 round=03 block={hash}"), "round: leading zero"),
            (&format!("credence height=7 round=4294967296 block={hash}"), "round: does not fit in 32 bits"),
            (&format!("credence height=18446744073709551616 round=3 block={hash}"), "height: does not fit in 64 bits"),
            (&format!("credence height=-7 round=3 block={hash}"), "height: '-7' is not a decimal"),
            (&format!("credence round=3 height=7 block={hash}"), "expected 'height=..' field"),
            (&format!("credence height=7  round=3 block={hash}"), "expected 'round=..' field"),
            (&format!("credence height=7 round=3 block={}", "AB".repeat(32)), "block: must be 64 lowercase hex"),
            (&format!("credence height=7 round=3 block={}", "0g".repeat(32)), "block: must be 64 lowercase hex"),
            (&format!("credence height=7 round=3 block={}", &hash[2..]), "block: must be 64 lowercase hex"),
            (&format!("credence height=7 round=3 block={hash}0"), "block: must be 64 lowercase hex"),
            (&format!("credence height=7 round=3 block={hash} extra=1"), "unexpected text after the block field"),
            (&format!("credence height=7 round=3 block={hash} "), "unexpected text after the block field"),
        ] {
            let e = err_note(&replace_line(&note, 4, bad));
            assert!(e.starts_with("checkpoint line 4 (extension): ") && e.contains(rule), "{bad:?}: {e}");
        }
        // Missing extension line entirely.
        let without: String = {
            let mut lines: Vec<&str> = note.split('\n').collect();
            lines.remove(3);
            lines.join("\n")
        };
        assert!(err_note(&without).starts_with("checkpoint line 4 (extension): missing"));
        // A second (unknown) extension line.
        let ext = note.split('\n').nth(3).expect("line 4").to_owned();
        for extra in ["example.com/other-extension", ext.as_str()] {
            let e = err_note(&note.replacen(&format!("{ext}\n"), &format!("{ext}\n{extra}\n"), 1));
            assert!(e.starts_with("checkpoint line 5 (extension): unexpected extra line"), "{e}");
        }
    }

    #[test]
    fn rejects_bad_signature_lines() {
        let note = good_note();
        let (text, sigs) = note.split_once("\n\n").expect("blank line");
        let first = sigs.lines().next().expect("a line");
        let (name, b64) = first.strip_prefix(SIG_PREFIX).and_then(|r| r.split_once(' ')).expect("well-formed");
        let short = B64.encode([0u8; 36]);
        for (line, rule) in [
            (format!("-- {name} {b64}"), "must begin with U+2014 EM DASH and a space"),
            (format!("\u{2014}{name} {b64}"), "must begin with U+2014 EM DASH and a space"),
            (format!("\u{2014} {name}"), "missing space between key name and signature"),
            (format!("\u{2014} {name} "), "signature decodes to 0 bytes"),
            (format!("\u{2014} bank+a {b64}"), "key name contains '+'"),
            (format!("\u{2014} bank\u{a0}a {b64}"), "key name contains whitespace"),
            (format!("\u{2014}  {b64}"), "key name is empty"),
            (format!("\u{2014} {name} {b64} extra"), "signature is not valid padded standard base64"),
            (format!("\u{2014} {name} {}", b64.trim_end_matches('=')), "signature is not valid padded standard base64"),
            (format!("\u{2014} {name} {short}"), "signature decodes to 36 bytes"),
        ] {
            let e = err_note(&format!("{text}\n\n{sigs}{line}\n"));
            assert!(e.starts_with(&format!("checkpoint: signature line 5: {rule}")), "{line:?}: {e}");
        }
    }

    #[test]
    fn size_and_count_limits() {
        let (sks, _) = keys(1);
        let base = cert(&body(), &sks, &[0]).to_note();
        // Pad the origin so the note is exactly at the limit, then one byte over.
        let pad = CHECKPOINT_BYTES_MAX - base.len();
        let mut at_limit = body();
        at_limit.origin.push_str(&"x".repeat(pad));
        let note = cert(&at_limit, &sks, &[0]).to_note();
        assert_eq!(note.len(), CHECKPOINT_BYTES_MAX);
        Checkpoint::parse_note(&note).expect("exactly at the limit");
        at_limit.origin.push('x');
        let note = cert(&at_limit, &sks, &[0]).to_note();
        assert_eq!(err_note(&note), "checkpoint: note exceeds 16384 bytes");
        assert!(CheckpointBody::parse(&format!("{}\n", "x".repeat(CHECKPOINT_BYTES_MAX))).is_err());

        // The count limit, with the byte limit lifted (16 KiB alone allows ~165 lines).
        let line = sig_line_of(&base).to_owned();
        let many = |n: usize| format!("{}\n{}", body().to_text(), line.repeat(n));
        let big = usize::MAX;
        let cp = parse_note_with_limits(many(SIGNATURES_MAX).as_bytes(), big, SIGNATURES_MAX)
            .expect("SIGNATURES_MAX lines accepted");
        assert_eq!(cp.signatures.len(), SIGNATURES_MAX);
        let e =
            parse_note_with_limits(many(SIGNATURES_MAX + 1).as_bytes(), big, SIGNATURES_MAX).expect_err("one too many");
        assert_eq!(e.to_string(), "checkpoint: 257 signature lines; at most 256 allowed");
        // Through the public entry point, too many lines are rejected (by size first).
        assert!(Checkpoint::parse_note(&many(SIGNATURES_MAX + 1)).is_err());
        // And a programmatic checkpoint with too many signatures is not verified.
        let (sks4, vks4) = keys(4);
        let mut cp = cert(&body(), &sks4, &[0, 1, 2, 3]);
        let extra = cp.signatures[0].clone();
        cp.signatures.resize(SIGNATURES_MAX + 1, extra);
        assert!(matches!(verify_quorum(&cp, &vks4), Err(CheckpointError::TooManySignatures { .. })));
    }

    // ---- Property tests. ----

    #[derive(Clone, Debug)]
    enum Mutation {
        Set(usize, u8),
        Insert(usize, u8),
        Delete(usize),
        Truncate(usize),
        DeleteLine(usize),
        DuplicateLine(usize),
        SwapLines(usize, usize),
    }

    fn interesting_byte() -> impl Strategy<Value = u8> {
        prop_oneof![any::<u8>(), prop::sample::select(b"0123456789\n =+/-abcdefABZ\r\xe2\x80\x94".to_vec()),]
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<usize>(), interesting_byte()).prop_map(|(i, b)| Mutation::Set(i, b)),
            (any::<usize>(), interesting_byte()).prop_map(|(i, b)| Mutation::Insert(i, b)),
            any::<usize>().prop_map(Mutation::Delete),
            any::<usize>().prop_map(Mutation::Truncate),
            any::<usize>().prop_map(Mutation::DeleteLine),
            any::<usize>().prop_map(Mutation::DuplicateLine),
            (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        ]
    }

    fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
        let len = bytes.len().max(1);
        match *m {
            Mutation::Set(i, b) => {
                if !bytes.is_empty() {
                    bytes[i % len] = b;
                }
            }
            Mutation::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
            Mutation::Delete(i) => {
                if !bytes.is_empty() {
                    bytes.remove(i % len);
                }
            }
            Mutation::Truncate(i) => bytes.truncate(i % len),
            Mutation::DeleteLine(_) | Mutation::DuplicateLine(_) | Mutation::SwapLines(..) => {
                let mut lines: Vec<Vec<u8>> = bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
                let n = lines.len();
                match *m {
                    Mutation::DeleteLine(i) => {
                        lines.remove(i % n);
                    }
                    Mutation::DuplicateLine(i) => {
                        let l = lines[i % n].clone();
                        lines.insert(i % n, l);
                    }
                    Mutation::SwapLines(a, b) => lines.swap(a % n, b % n),
                    _ => {}
                }
                *bytes = lines.join(&b'\n');
            }
        }
    }

    fn arb_body() -> impl Strategy<Value = CheckpointBody> {
        (
            "[a-z0-9./+ \u{e9}\u{2014}-]{1,40}",
            any::<u64>(),
            any::<[u8; 32]>(),
            any::<u64>(),
            any::<u32>(),
            any::<[u8; 32]>(),
        )
            .prop_map(|(origin, tree_size, root, height, round, block_hash)| CheckpointBody {
                origin,
                tree_size,
                root,
                height,
                round,
                block_hash,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn mutated_notes_never_panic_nor_verify_a_changed_body(
            muts in prop::collection::vec(mutation(), 1..6),
        ) {
            let (sks, vks) = keys(4);
            let original = cert(&body(), &sks, &[0, 1, 2, 3]);
            let mut bytes = original.to_note().into_bytes();
            for m in &muts {
                apply(&mut bytes, m);
            }
            if let Ok(cp) = Checkpoint::parse_note_bytes(&bytes) {
                let verdict = verify_quorum(&cp, &vks);
                if cp.body != original.body {
                    prop_assert!(verdict.is_err(), "changed body verified: {:?}", cp.body);
                }
                // Whatever parsed re-encodes to a note that parses to the same certificate.
                let again = Checkpoint::parse_note(&cp.to_note());
                prop_assert!(again.is_ok());
                if let Ok(again) = again {
                    prop_assert_eq!(&again.body, &cp.body);
                    prop_assert_eq!(again.signatures.len(), cp.signatures.len());
                }
            }
        }

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = Checkpoint::parse_note_bytes(&bytes);
            if let Ok(s) = std::str::from_utf8(&bytes) {
                let _ = CheckpointBody::parse(s);
                let _ = VerifierKey::parse(s);
            }
        }

        #[test]
        fn random_bodies_round_trip(b in arb_body(), signers in prop::collection::vec(0usize..4, 1..6)) {
            prop_assert_eq!(CheckpointBody::parse(&b.to_text()).ok(), Some(b.clone()));
            let (sks, vks) = keys(4);
            let cp = cert(&b, &sks, &signers);
            let parsed = Checkpoint::parse_note(&cp.to_note());
            prop_assert!(parsed.is_ok(), "{:?}", parsed);
            if let Ok(parsed) = parsed {
                prop_assert_eq!(&parsed.body, &b);
                let mut distinct = signers.clone();
                distinct.sort_unstable();
                distinct.dedup();
                let verdict = verify_quorum(&parsed, &vks);
                prop_assert_eq!(verdict.is_ok(), distinct.len() >= 3, "{:?}", verdict);
            }
        }
    }
}
