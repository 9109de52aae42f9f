//! Proof bundles: one committed attestation with everything needed to check it offline (format in docs/AUDITING.md).
//!
//! A bundle is a JSON object holding the attestation's canonical bytes (the exact Merkle
//! leaf data), its RFC 9162 inclusion path up to a tree size, the C2SP checkpoint the
//! validators cosigned at that size, the validators' C2SP verifier keys, and a decoded copy
//! for people. [`verify`] trusts nothing in the bundle: everything is checked against a
//! genesis the auditor already holds.
//!
//! Invariant: [`verify`] accepts a bundle only if every field is exactly what [`Bundle::new`]
//! would produce for the same committed attestation and checkpoint; any other value of any
//! field is refused with a [`BundleError`] naming that field.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use credence_ledger::attestation::{Attestation, Claim};
use credence_ledger::block::BlockHeader;
use credence_ledger::checkpoint::{self, Checkpoint, QuorumReport, VerifierKey};
use credence_ledger::genesis::{Genesis, VALIDATORS_MAX};
use credence_ledger::governance::{Change, MEMBER_KEYS_MAX, MemberKey, verify_possession};
use credence_ledger::governance::{Epoch, set_hash};
use credence_ledger::ids::MemberName;
use credence_ledger::merkle::{self, NodeHash};
use credence_ledger::sig::{self, Domain};
use credence_ledger::store::{Store, StoreError};
use credence_ledger::witness::{self, Cosignature, WitnessKey};

use crate::api::views::ClaimView;

/// The `format` value of this version.
pub const FORMAT: &str = "credence-proof-bundle/v1";
/// Largest bundle file accepted: a 64-hash path, a 16 KiB checkpoint, 100 verifier keys and
/// [`SET_CHANGES_MAX`] set changes of 100 validators each (about 40 KiB each) fit.
pub const BUNDLE_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Most validator-set changes a bundle (or `GET /v1/set-changes`) carries: the chain's
/// whole history of validator sets up to the checkpoint must fit, else bundles of later
/// checkpoints are refused (verify such a chain with `credence verify`).
pub const SET_CHANGES_MAX: usize = 64;
/// Most bytes of one set change of [`VALIDATORS_MAX`] validators: two headers and the set
/// (under 16 KiB in base64 and vkey form) and two certificates of 100 signature lines.
pub const SET_CHANGE_BYTES_MAX: usize = 2 * checkpoint::CHECKPOINT_BYTES_MAX + 16 * 1024;
// A bundle at the bounds (the changes, a 16 KiB checkpoint, the path and the keys) fits.
const _: () = assert!(SET_CHANGES_MAX * SET_CHANGE_BYTES_MAX + 64 * 1024 <= BUNDLE_BYTES_MAX);
/// Longest inclusion path (a tree of 2^64 leaves).
pub const PATH_HASHES_MAX: usize = 64;

/// The bundle as stored (JSON). Field names are part of the format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// Always [`FORMAT`].
    pub format: String,
    /// The chain id (genesis hash), hex: the chain the attestation's signature is bound to.
    pub chain_id: String,
    /// The attestation id (SHA-256 of the attestation body), hex.
    pub id: String,
    /// Standard padded base64 of the canonical attestation bytes: the Merkle leaf data.
    pub attestation: String,
    /// The attestation's index in the ledger's Merkle tree.
    pub leaf_index: u64,
    /// The tree size the path and the checkpoint are for.
    pub tree_size: u64,
    /// The RFC 9162 §2.1.3.1 inclusion path, leaf level first, base64 each.
    pub inclusion_path: Vec<String>,
    /// The C2SP signed note (tlog-checkpoint) for `tree_size`, as the validators signed it,
    /// then any witnesses' `cosignature/v1` lines (C2SP tlog-cosignature; counted under the verifier's policy).
    pub checkpoint: String,
    /// C2SP verifier keys (`name+keyid+base64`) of the validators in force at the checkpoint's
    /// height: the genesis validators in genesis order, or after set changes the last
    /// change's `validators`.
    pub verifier_keys: Vec<String>,
    /// The certified chain of validator-set changes from genesis up to the checkpoint's height,
    /// oldest first; absent (empty) while the genesis validators are in force.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set_changes: Vec<SetChange>,
    /// Only when the attestation is signed with a key its attester did not hold in genesis
    /// (a member governance added, a rotated or replacement key): the records that named its
    /// keys, oldest first, each included under the same checkpoint, at most
    /// [`MEMBER_KEYS_MAX`] (docs/AUDITING.md §Keys named by governance).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attester_keys: Vec<KeyIntroduction>,
    /// A human-readable copy of the attestation; must equal the decoding of `attestation`.
    pub decoded: Decoded,
}

/// A governance record that named a key for an attester: a proposal adding the member
/// (`add-member`) or replacing a revoked key (`revoke-key`), or the member's own key rotation
/// (signed by the key it retires, with the new key's proof of possession). The validators
/// accepted the attestation only under a key in force (the rules); the bundle shows which
/// records, earlier in the same log, made its key the attester's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyIntroduction {
    /// Standard padded base64 of the record's canonical attestation bytes.
    pub record: String,
    /// Its index in the ledger's Merkle tree (before the attestation's).
    pub leaf_index: u64,
    /// Its RFC 9162 inclusion path in the checkpoint's tree, base64 each.
    pub inclusion_path: Vec<String>,
}

impl KeyIntroduction {
    /// The record of `bytes` (canonical) at `leaf_index` with its inclusion path.
    pub fn new(bytes: &[u8], leaf_index: u64, inclusion_path: &[NodeHash]) -> KeyIntroduction {
        KeyIntroduction {
            record: B64.encode(bytes),
            leaf_index,
            inclusion_path: inclusion_path.iter().map(|h| B64.encode(h)).collect(),
        }
    }
}

/// One change of the validator set, as a verifier holding the set in force before it checks it
/// (docs/AUDITING.md §Set changes): the old set certifies the last header before the change,
/// the next header links to it and commits to the new set's hash, and its certificate is signed
/// by more than 2/3 of the new set and, vouching for it, by more than 1/3 of the old set with
/// their keys unchanged (so at least one validator the verifier already trusts signed it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetChange {
    /// The first height the new set certifies.
    pub height: u64,
    /// The new set's C2SP verifier keys (`name+keyid+base64`), in name order.
    pub validators: Vec<String>,
    /// Standard padded base64 of the canonical header at `height - 1` (certified by the old set).
    pub last_header: String,
    /// The C2SP checkpoint note certifying `last_header`, signature lines only (no cosignatures).
    pub last_certificate: String,
    /// Standard padded base64 of the canonical header at `height`.
    pub header: String,
    /// The C2SP checkpoint note certifying `header`.
    pub certificate: String,
}

/// The decoded copy inside a bundle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decoded {
    pub attester: String,
    pub sequence: u64,
    /// Unix epoch milliseconds, UTC.
    pub issued_at_ms: u64,
    /// The claim in the API's JSON shape (`kind` selects the fields).
    pub claim: serde_json::Value,
    /// The 64-byte Ed25519 signature, base64.
    pub signature: String,
}

impl Decoded {
    fn of(a: &Attestation) -> Decoded {
        let claim = serde_json::to_value(ClaimView::from(&a.body.claim)).unwrap_or(serde_json::Value::Null);
        Decoded {
            attester: a.body.attester.to_string(),
            sequence: a.body.sequence,
            issued_at_ms: a.body.issued_at_ms,
            claim,
            signature: B64.encode(a.signature.0),
        }
    }
}

/// Why a bundle was refused: the field at fault and the rule it breaks.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {rule}")]
pub struct BundleError {
    pub field: &'static str,
    pub rule: String,
}

fn err(field: &'static str, rule: impl Into<String>) -> BundleError {
    BundleError { field, rule: rule.into() }
}

/// What a verified bundle proves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub id: String,
    pub attester: String,
    pub leaf_index: u64,
    pub tree_size: u64,
    /// Height of the block the checkpoint certifies.
    pub checkpoint_height: u64,
    /// Validators whose checkpoint signatures verified, and how many were needed.
    pub signers: Vec<String>,
    pub needed: usize,
    pub validators: usize,
    /// The policy's witnesses whose cosignatures on the checkpoint verified, in name order.
    pub witnesses: Vec<String>,
    /// Validator-set changes walked from genesis to the checkpoint's set.
    pub set_changes: usize,
}

impl Bundle {
    /// Assembles a bundle from what a node serves. Does not check it: call [`verify`].
    pub fn new(
        genesis: &Genesis,
        attestation_bytes: &[u8],
        leaf_index: u64,
        inclusion_path: &[NodeHash],
        checkpoint: &Checkpoint,
        cosignatures: &[Cosignature],
        set_changes: Vec<SetChange>,
    ) -> Result<Bundle, BundleError> {
        let a = Attestation::from_bytes(attestation_bytes).map_err(|e| err("attestation", e.to_string()))?;
        let verifier_keys = match set_changes.last() {
            Some(c) => c.validators.clone(),
            None => genesis.verifier_keys().iter().map(VerifierKey::to_vkey_string).collect(),
        };
        Ok(Bundle {
            format: FORMAT.to_string(),
            chain_id: genesis.hash().to_hex(),
            id: a.id().to_string(),
            attestation: B64.encode(attestation_bytes),
            leaf_index,
            tree_size: checkpoint.body.tree_size,
            inclusion_path: inclusion_path.iter().map(|h| B64.encode(h)).collect(),
            checkpoint: witnessed_note(checkpoint, cosignatures),
            verifier_keys,
            set_changes,
            attester_keys: Vec::new(),
            decoded: Decoded::of(&a),
        })
    }

    /// The records that named the attester's key, when it is not its genesis key
    /// ([`Bundle::attester_keys`]).
    pub fn with_attester_keys(mut self, records: Vec<KeyIntroduction>) -> Bundle {
        self.attester_keys = records;
        self
    }

    /// Pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Parses a bundle file (bounded by [`BUNDLE_BYTES_MAX`], no unknown fields).
    pub fn parse(bytes: &[u8]) -> Result<Bundle, BundleError> {
        if bytes.len() > BUNDLE_BYTES_MAX {
            return Err(err("bundle", format!("is {} bytes; at most {BUNDLE_BYTES_MAX} allowed", bytes.len())));
        }
        serde_json::from_slice(bytes).map_err(|e| err("bundle", format!("not a bundle: {e}")))
    }
}

/// A checkpoint note as served: the validators' note, then the cosignature lines.
pub fn witnessed_note(cp: &Checkpoint, cosignatures: &[Cosignature]) -> String {
    cosignatures.iter().fold(cp.to_note(), |note, c| note + &c.to_line())
}

/// Most witnesses in a verifier's policy (genesis's and the auditor's `--witness` keys).
pub const POLICY_WITNESSES_MAX: usize = 64;

/// The outside witnesses an offline verifier trusts: as in Go's sumdb and Sigstore, the
/// auditor's choice. Genesis's witnesses always belong to it; the auditor adds others
/// (`--witness VKEY`), such as the ones the chain's governance named. A cosignature line
/// counts only if its (name, key ID) is in the policy and it verifies; a line of a policy key
/// that does not verify makes the note invalid; a line by a key the policy does not hold is
/// ignored (C2SP signed-note: verifiers ignore signatures by unknown keys).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessPolicy {
    keys: Vec<WitnessKey>,
    /// How many of `keys` (the first ones) are genesis's.
    from_genesis: usize,
}

impl WitnessPolicy {
    /// Genesis's witnesses only.
    pub fn genesis(genesis: &Genesis) -> WitnessPolicy {
        let keys = genesis.witness_keys();
        WitnessPolicy { from_genesis: keys.len(), keys }
    }

    /// Genesis's witnesses and `extra` (the auditor's `--witness` keys; one already in the
    /// policy counts once), at most [`POLICY_WITNESSES_MAX`] in all.
    pub fn with_extra(genesis: &Genesis, extra: &[WitnessKey]) -> Result<WitnessPolicy, String> {
        let mut p = WitnessPolicy::genesis(genesis);
        for w in extra {
            if !p.keys.contains(w) {
                p.keys.push(w.clone());
            }
        }
        if p.keys.len() > POLICY_WITNESSES_MAX {
            return Err(format!("at most {POLICY_WITNESSES_MAX} witnesses in a policy (genesis's and --witness)"));
        }
        Ok(p)
    }

    pub fn keys(&self) -> &[WitnessKey] {
        &self.keys
    }

    /// The distinct witness names of the policy, in order (genesis's first).
    pub fn names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::with_capacity(self.keys.len());
        for k in &self.keys {
            if !out.contains(&k.name.as_str()) {
                out.push(&k.name);
            }
        }
        out
    }

    /// For messages: "genesis: a, b; --witness: c" (or "none").
    pub fn describe(&self) -> String {
        let list = |ks: &[WitnessKey]| {
            if ks.is_empty() {
                "none".to_owned()
            } else {
                ks.iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join(", ")
            }
        };
        let (g, extra) = self.keys.split_at(self.from_genesis);
        format!("genesis: {}; --witness: {}", list(g), list(extra))
    }
}

/// A checkpoint note checked against a genesis.
#[derive(Clone, Debug)]
pub struct CheckedNote {
    pub checkpoint: Checkpoint,
    pub quorum: QuorumReport,
    /// The cosignature lines, as they were in the note.
    pub cosignatures: Vec<Cosignature>,
    /// The policy's witnesses whose cosignatures verified, in name order.
    pub witnesses: Vec<String>,
    /// Names on cosignature lines by keys the policy does not hold (ignored), in note order.
    pub ignored: Vec<String>,
}

/// Checks a C2SP checkpoint note against a genesis: this chain's origin, valid signatures
/// of more than 2/3 of its validators with no other Ed25519 signature line, and every
/// `cosignature/v1` line of a genesis witness valid (lines by other keys are ignored). The
/// error is the rule it breaks. Whether enough witnesses cosigned is [`require_witnesses`].
pub fn check_witnessed(note: &str, genesis: &Genesis) -> Result<CheckedNote, String> {
    check_witnessed_with(note, genesis, &genesis.verifier_keys(), &WitnessPolicy::genesis(genesis))
}

/// [`check_witnessed`] against `validators`, the set in force at the checkpoint's height
/// (the genesis validators, or the set a [`walk_set_changes`] reached), and the auditor's
/// witness `policy`: a cosignature line counts only by a policy key and only if it verifies;
/// one by a policy key that does not verify is an error naming the witness; one by a key the
/// policy does not hold is ignored (listed in [`CheckedNote::ignored`]).
pub fn check_witnessed_with(
    note: &str,
    genesis: &Genesis,
    validators: &[VerifierKey],
    policy: &WitnessPolicy,
) -> Result<CheckedNote, String> {
    let (cp, cosignatures) = witness::parse_witnessed_note(note).map_err(|e| e.to_string())?;
    if cp.body.origin != genesis.checkpoint_origin {
        return Err(format!("origin '{}' is not this chain's '{}'", cp.body.origin, genesis.checkpoint_origin));
    }
    let quorum = checkpoint::verify_quorum_strict(&cp, validators).map_err(|e| e.to_string())?;
    let keys = policy.keys();
    let ignored: Vec<String> = cosignatures
        .iter()
        .filter(|c| !keys.iter().any(|k| k.name == c.name && k.key_id() == c.key_id))
        .map(|c| c.name.clone())
        .collect();
    let mut witnesses = witness::verified_witnesses(&cp.body, &cosignatures, keys)
        .map_err(|e| format!("{e} (a witness of the policy: the note is invalid)"))?;
    witnesses.sort();
    Ok(CheckedNote { checkpoint: cp, quorum, cosignatures, witnesses, ignored })
}

/// [`check_witnessed`] without the cosignatures.
pub fn check_checkpoint(note: &str, genesis: &Genesis) -> Result<(Checkpoint, QuorumReport), String> {
    check_witnessed(note, genesis).map(|c| (c.checkpoint, c.quorum))
}

/// The validator set a verifier reaches by walking set changes from genesis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetInForce {
    /// The first height this set certifies (1: the genesis set).
    pub from_height: u64,
    pub validators: Vec<VerifierKey>,
}

impl SetInForce {
    /// The genesis validators, from height 1.
    pub fn genesis(genesis: &Genesis) -> SetInForce {
        SetInForce { from_height: 1, validators: genesis.verifier_keys() }
    }
}

/// The set changes up to `height` (the checkpoint's), from a store and the validator-set
/// history its governance state keeps (`GovState::epochs`): one [`SetChange`] per epoch after
/// the genesis one that starts at or before `height`. Refuses more than [`SET_CHANGES_MAX`].
pub fn set_changes_from<S: Store + ?Sized>(
    store: &S,
    epochs: &[Epoch],
    height: u64,
) -> Result<Vec<SetChange>, SetChangesError> {
    let wanted: Vec<&Epoch> = epochs.iter().skip(1).filter(|e| e.from_height <= height).collect();
    if wanted.len() > SET_CHANGES_MAX {
        return Err(SetChangesError::TooMany { count: wanted.len() });
    }
    let mut out = Vec::with_capacity(wanted.len());
    for e in wanted {
        let at = e.from_height;
        let header = |h: u64| store.header(h)?.ok_or(SetChangesError::Missing { height: h });
        let cert = |h: u64| store.certificate(h)?.ok_or(SetChangesError::Missing { height: h });
        out.push(SetChange {
            height: at,
            validators: e.verifier_keys().iter().map(VerifierKey::to_vkey_string).collect(),
            last_header: B64.encode(header(at - 1)?.to_bytes()),
            last_certificate: cert(at - 1)?.to_note(),
            header: B64.encode(header(at)?.to_bytes()),
            certificate: cert(at)?.to_note(),
        });
    }
    Ok(out)
}

/// Why a node cannot make the set changes up to a height.
#[derive(Debug, thiserror::Error)]
pub enum SetChangesError {
    #[error("set_changes: {count} validator-set changes; a bundle carries at most {SET_CHANGES_MAX}")]
    TooMany { count: usize },
    #[error("set_changes: block {height} is not in the store")]
    Missing { height: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// More than 1/3 of `n`: the fewest signers of which at least one is honest when fewer than
/// 1/3 of the `n` are faulty.
pub fn vouch_threshold(n: usize) -> usize {
    n / 3 + 1
}

/// Walks `changes` from the genesis validators and returns the set in force after the last
/// one. For change `k` (in force before it: the set `S`, from height `f`):
/// 1. `height` is above `f` (and at least 2); there are at most [`SET_CHANGES_MAX`] changes;
/// 2. `last_header` decodes canonically, is at `height - 1`, commits to `S`'s hash, and
///    `last_certificate` certifies it (this chain's origin, its height, size, root and hash)
///    with valid signatures of more than 2/3 of `S` and no other signature line: so `S` was
///    still in force just before `height`, and no change between `f` and `height` is missing;
/// 3. `validators` are 1..=100 C2SP verifier keys of distinct names in name order, other
///    than `S`;
/// 4. `header` decodes canonically, is at `height`, links to `last_header` (`prev`) and
///    commits to the hash of `validators` (docs/encoding.md §6);
/// 5. `certificate` certifies `header` with valid signatures of more than 2/3 of `validators`
///    and no other line, and more than 1/3 of `S` are among its signers with the same name and
///    key: at least one validator already trusted vouches that `header`, and so the new set,
///    is the chain's.
///
/// Each error names the change (index and height), the part at fault and the rule.
pub fn walk_set_changes(genesis: &Genesis, changes: &[SetChange]) -> Result<SetInForce, BundleError> {
    let mut sets = walk_set_history(genesis, changes)?;
    Ok(sets.pop().unwrap_or_else(|| SetInForce::genesis(genesis)))
}

/// [`walk_set_changes`] keeping every set it passes: the genesis set first, then the set each
/// change brings, so `sets[k + 1]` is in force from `changes[k].height`.
pub fn walk_set_history(genesis: &Genesis, changes: &[SetChange]) -> Result<Vec<SetInForce>, BundleError> {
    if changes.len() > SET_CHANGES_MAX {
        return Err(err(
            "set_changes",
            format!("has {} changes; at most {SET_CHANGES_MAX} (SET_CHANGES_MAX) allowed", changes.len()),
        ));
    }
    let mut set = SetInForce::genesis(genesis);
    let mut sets = Vec::with_capacity(changes.len() + 1);
    for (k, c) in changes.iter().enumerate() {
        let fail =
            |part: &str, rule: String| err("set_changes", format!("change {k} (height {}): {part}: {rule}", c.height));
        if c.height <= set.from_height.max(1) {
            return Err(fail(
                "height",
                format!("must be above {}, the first height of the set in force before it", set.from_height.max(1)),
            ));
        }
        let last = decode_header(&c.last_header).map_err(|r| fail("last_header", r))?;
        if last.height != c.height - 1 {
            return Err(fail("last_header", format!("is at height {}, not {}", last.height, c.height - 1)));
        }
        let old_hash = list_hash(&set.validators).map_err(|r| fail("validators", r))?;
        if last.validator_set != old_hash {
            return Err(fail(
                "last_header",
                format!(
                    "commits to validator set {} but the set in force since height {} is {old_hash}: a set change before height {} is missing",
                    last.validator_set, set.from_height, c.height
                ),
            ));
        }
        certifies(genesis, &c.last_certificate, &last, &set.validators).map_err(|r| {
            fail("last_certificate", format!("{r} (checked against the set in force before the change)"))
        })?;
        let validators = parse_set(&c.validators).map_err(|r| fail("validators", r))?;
        if validators == set.validators {
            return Err(fail("validators", "are the set already in force: not a change".into()));
        }
        let header = decode_header(&c.header).map_err(|r| fail("header", r))?;
        if header.height != c.height {
            return Err(fail("header", format!("is at height {}, not {}", header.height, c.height)));
        }
        if header.prev != last.hash() {
            return Err(fail("header", "does not link to last_header (prev)".into()));
        }
        let new_hash = list_hash(&validators).map_err(|r| fail("validators", r))?;
        if header.validator_set != new_hash {
            return Err(fail(
                "header",
                format!("commits to validator set {} but validators hash to {new_hash}", header.validator_set),
            ));
        }
        let q = certifies(genesis, &c.certificate, &header, &validators)
            .map_err(|r| fail("certificate", format!("{r} (checked against the new set)")))?;
        let vouching: Vec<&String> = q
            .signers
            .iter()
            .filter(|name| {
                let new = validators.iter().find(|v| &v.name == *name);
                new.is_some_and(|n| set.validators.iter().any(|o| o.name == n.name && o.key == n.key))
            })
            .collect();
        let needed = vouch_threshold(set.validators.len());
        if vouching.len() < needed {
            return Err(fail(
                "certificate",
                format!(
                    "signed by {} of the {} validators in force before the change with their keys unchanged; more than 1/3 ({needed}) must vouch for the new set",
                    vouching.len(),
                    set.validators.len()
                ),
            ));
        }
        sets.push(std::mem::replace(&mut set, SetInForce { from_height: c.height, validators }));
    }
    sets.push(set);
    Ok(sets)
}

fn decode_header(b64: &str) -> Result<BlockHeader, String> {
    let bytes = B64.decode(b64).map_err(|e| format!("not standard padded base64: {e}"))?;
    let h = BlockHeader::from_bytes(&bytes).map_err(|e| e.to_string())?;
    if h.to_bytes() != bytes {
        return Err("is not the canonical encoding".into());
    }
    Ok(h)
}

/// The validator-set hash of verifier keys (names must be member names).
fn list_hash(keys: &[VerifierKey]) -> Result<credence_ledger::hash::Hash, String> {
    let list = keys
        .iter()
        .map(|k| {
            let name = MemberName::parse("validators", &k.name)
                .map_err(|e| format!("'{}' is not a member name: {e}", k.name))?;
            Ok((name, k.key))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(set_hash(&list))
}

/// Parses a new set: 1..=[`VALIDATORS_MAX`] verifier keys, names strictly ascending.
fn parse_set(items: &[String]) -> Result<Vec<VerifierKey>, String> {
    if items.is_empty() || items.len() > VALIDATORS_MAX {
        return Err(format!("must list 1 to {VALIDATORS_MAX} validators, not {}", items.len()));
    }
    let keys = items
        .iter()
        .enumerate()
        .map(|(i, s)| VerifierKey::parse(s).map_err(|e| format!("key {i}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut names: Vec<MemberName> = Vec::with_capacity(keys.len());
    for k in &keys {
        names.push(
            MemberName::parse("validators", &k.name).map_err(|e| format!("'{}' is not a member name: {e}", k.name))?,
        );
    }
    if !names.windows(2).all(|w| w[0] < w[1]) {
        return Err("must be in name order, each name once".into());
    }
    if keys.iter().enumerate().any(|(i, k)| keys[..i].iter().any(|o| o.key == k.key)) {
        return Err("two validators share a key".into());
    }
    Ok(keys)
}

/// Checks that `note` is a checkpoint for exactly `header` of this chain, signed by more than
/// 2/3 of `validators` with no other signature line and no cosignature.
fn certifies(
    genesis: &Genesis,
    note: &str,
    header: &BlockHeader,
    validators: &[VerifierKey],
) -> Result<QuorumReport, String> {
    let cp = Checkpoint::parse_note(note).map_err(|e| e.to_string())?;
    if cp.to_note() != note {
        return Err("is not in canonical form".into());
    }
    if cp.body.origin != genesis.checkpoint_origin {
        return Err(format!("origin '{}' is not this chain's '{}'", cp.body.origin, genesis.checkpoint_origin));
    }
    if cp.body.height != header.height
        || cp.body.tree_size != header.tree_size
        || cp.body.root != header.tree_root.0
        || cp.body.block_hash != *header.hash().bytes()
    {
        return Err(format!(
            "does not certify the header at height {} (height, size, root and block hash)",
            header.height
        ));
    }
    checkpoint::verify_quorum_strict(&cp, validators).map_err(|e| e.to_string())
}

/// Whether at least `k` of the policy's witnesses are among `cosigned` (the ones
/// [`check_witnessed_with`] counted under that policy); the error says which counted and
/// which did not.
pub fn require_witnesses(policy: &WitnessPolicy, cosigned: &[String], k: usize) -> Result<(), String> {
    let names = policy.names();
    let named = names.len();
    if k > named {
        return Err(format!(
            "{k} witnesses required but the policy names only {named} ({}); name more with --witness VKEY",
            policy.describe()
        ));
    }
    let counted: Vec<&str> = names.iter().copied().filter(|n| cosigned.iter().any(|c| c == n)).collect();
    if counted.len() >= k {
        return Ok(());
    }
    let missing: Vec<&str> = names.iter().copied().filter(|n| !counted.contains(n)).collect();
    Err(format!(
        "{k} witnesses required, {} counted ({}); no valid cosignature from: {} (policy: {})",
        counted.len(),
        if counted.is_empty() { "none".to_owned() } else { counted.join(", ") },
        missing.join(", "),
        policy.describe()
    ))
}

/// Standard padded base64 tree hashes (proofs as the API and bundles carry them), each 32 bytes.
pub fn decode_hashes(field: &'static str, items: &[String]) -> Result<Vec<NodeHash>, BundleError> {
    items
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let raw = B64.decode(h).map_err(|e| err(field, format!("hash {i}: not standard padded base64: {e}")))?;
            raw.try_into().map_err(|_| err(field, format!("hash {i}: must decode to 32 bytes")))
        })
        .collect()
}

/// Checks a bundle against `genesis` alone, every field, with no network access:
/// 1. `format` and `chain_id` (the genesis hash);
/// 2. `set_changes` walk from the genesis validators to the set in force at the checkpoint
///    ([`walk_set_changes`]), none after the checkpoint's height; `verifier_keys` are exactly
///    that set's keys (the genesis validators' in genesis order when there is no change);
/// 3. `checkpoint` is for this chain's origin and carries valid signatures of more than 2/3
///    of that set, no other Ed25519 signature line, and `cosignature/v1` lines of which
///    those by the policy's witnesses (genesis's for [`verify`]) are each valid and counted
///    (`Report::witnesses`; lines by other keys are ignored), in canonical form; `tree_size`
///    is its size;
/// 4. `attestation` decodes canonically, `id` is its id, its attester is a member allowed to
///    make this kind of claim, and its signature verifies under that member's genesis key for
///    this chain, or under the last key `attester_keys` names ([`named_key`]);
/// 5. `inclusion_path` proves leaf `leaf_index` (the RFC 9162 hash of the attestation bytes) in
///    the checkpoint's root;
/// 6. `decoded` equals the decoding of `attestation`.
pub fn verify(b: &Bundle, genesis: &Genesis) -> Result<Report, BundleError> {
    verify_with(b, genesis, &WitnessPolicy::genesis(genesis))
}

/// [`verify`] with the auditor's witness `policy` (step 3 counts cosignatures under it).
pub fn verify_with(b: &Bundle, genesis: &Genesis, policy: &WitnessPolicy) -> Result<Report, BundleError> {
    if b.format != FORMAT {
        return Err(err("format", format!("must be '{FORMAT}', not '{}'", b.format)));
    }
    let chain_id = genesis.hash();
    if b.chain_id != chain_id.to_hex() {
        return Err(err("chain_id", format!("is not this genesis's hash {chain_id}")));
    }

    let set = walk_set_changes(genesis, &b.set_changes)?;
    let expected: Vec<String> = set.validators.iter().map(VerifierKey::to_vkey_string).collect();
    if b.verifier_keys != expected {
        return Err(err(
            "verifier_keys",
            if b.set_changes.is_empty() {
                "must list exactly the genesis validators' verifier keys, in genesis order"
            } else {
                "must list exactly the last set change's validators, in name order"
            },
        ));
    }

    let (unchecked, _) = witness::parse_witnessed_note(&b.checkpoint).map_err(|e| err("checkpoint", e.to_string()))?;
    if unchecked.body.height < set.from_height {
        return Err(err(
            "set_changes",
            format!(
                "reach a set in force from height {} but the checkpoint is for height {}",
                set.from_height, unchecked.body.height
            ),
        ));
    }
    let checked = check_witnessed_with(&b.checkpoint, genesis, &set.validators, policy).map_err(|rule| {
        err("checkpoint", format!("{rule} (checked against the validators in force since height {})", set.from_height))
    })?;
    let (cp, quorum) = (&checked.checkpoint, &checked.quorum);
    if witnessed_note(cp, &checked.cosignatures) != b.checkpoint {
        return Err(err("checkpoint", "is not in canonical form (signature lines sorted, cosignatures after them)"));
    }
    if b.tree_size != cp.body.tree_size {
        return Err(err("tree_size", format!("is {} but the checkpoint is for {}", b.tree_size, cp.body.tree_size)));
    }

    let bytes =
        B64.decode(&b.attestation).map_err(|e| err("attestation", format!("not standard padded base64: {e}")))?;
    let a = Attestation::from_bytes(&bytes).map_err(|e| err("attestation", e.to_string()))?;
    if a.to_bytes() != bytes {
        return Err(err("attestation", "is not the canonical encoding"));
    }
    let kind = a.body.claim.kind();
    // The attester's key: its genesis key, or the last one its key records name.
    let key = if b.attester_keys.is_empty() {
        let member = genesis.member(&a.body.attester).ok_or_else(|| {
            err(
                "attestation",
                format!(
                    "attester '{}' is not a member of this chain's genesis (a member governance added needs attester_keys)",
                    a.body.attester
                ),
            )
        })?;
        if !member.may_attest(kind) {
            return Err(err("attestation", format!("member '{}' may not attest {kind:?} claims", member.name)));
        }
        member.public_key
    } else {
        named_key(&b.attester_keys, &a, b.leaf_index, cp, &chain_id, genesis)?
    };
    sig::verify(&key, Domain::Attestation, &chain_id.0, &a.body.to_bytes(), &a.signature).map_err(|e| {
        let whose = if b.attester_keys.is_empty() { "its genesis key" } else { "the last key attester_keys names" };
        err("attestation", format!("signature of '{}' does not verify under {whose}: {e}", a.body.attester))
    })?;
    let id = a.id();
    if b.id != id.to_string() {
        return Err(err("id", format!("is not the attestation's id {id}")));
    }

    if b.inclusion_path.len() > PATH_HASHES_MAX {
        return Err(err("inclusion_path", format!("has {} hashes; at most {PATH_HASHES_MAX}", b.inclusion_path.len())));
    }
    let path = decode_hashes("inclusion_path", &b.inclusion_path)?;
    merkle::verify_inclusion(&merkle::leaf_hash(&bytes), b.leaf_index, b.tree_size, &path, &cp.body.root).map_err(
        |e| err("inclusion_path", format!("does not prove leaf {} in the checkpoint's root: {e}", b.leaf_index)),
    )?;

    if b.decoded != Decoded::of(&a) {
        return Err(err("decoded", "does not match the attestation bytes"));
    }
    Ok(Report {
        id: id.to_string(),
        attester: a.body.attester.to_string(),
        leaf_index: b.leaf_index,
        tree_size: b.tree_size,
        checkpoint_height: cp.body.height,
        signers: quorum.signers.clone(),
        needed: quorum.needed,
        validators: quorum.validators,
        witnesses: checked.witnesses,
        set_changes: b.set_changes.len(),
    })
}

/// Walks `records` (oldest first) for attestation `a` at `leaf_index` under checkpoint `cp`
/// and returns the attester's key they lead to. Each record decodes canonically, sits before
/// the attestation in the tree (its inclusion path against the same root) and after the one
/// before it, and names a key for `a`'s attester: an `add-member` proposal (first only, for a
/// member not in genesis), a `revoke-key` proposal's replacement, or the attester's own key
/// rotation, which must be signed by the key in hand (genesis's or the last named) and carry
/// a proof of possession of the new key. Roles are not checked on this path: the validators
/// checked the roles in force, which governance may have changed since genesis.
fn named_key(
    records: &[KeyIntroduction],
    a: &Attestation,
    leaf_index: u64,
    cp: &Checkpoint,
    chain_id: &credence_ledger::hash::Hash,
    genesis: &Genesis,
) -> Result<credence_ledger::sig::PublicKey, BundleError> {
    if records.len() > MEMBER_KEYS_MAX {
        return Err(err("attester_keys", format!("has {} records; at most {MEMBER_KEYS_MAX}", records.len())));
    }
    let attester = &a.body.attester;
    let mut key = genesis.member(attester).map(|m| m.public_key);
    let mut last_index = None;
    for (i, k) in records.iter().enumerate() {
        let fail = |rule: String| err("attester_keys", format!("record {i} (leaf {}): {rule}", k.leaf_index));
        let bytes = B64.decode(&k.record).map_err(|e| fail(format!("not standard padded base64: {e}")))?;
        let r = Attestation::from_bytes(&bytes).map_err(|e| fail(e.to_string()))?;
        if r.to_bytes() != bytes {
            return Err(fail("is not the canonical encoding".into()));
        }
        if k.leaf_index >= leaf_index || last_index.is_some_and(|l| k.leaf_index <= l) {
            return Err(fail(format!(
                "must lie after the record before it and before the attestation (leaf {leaf_index})"
            )));
        }
        last_index = Some(k.leaf_index);
        if k.inclusion_path.len() > PATH_HASHES_MAX {
            return Err(fail(format!(
                "inclusion_path has {} hashes; at most {PATH_HASHES_MAX}",
                k.inclusion_path.len()
            )));
        }
        let path = decode_hashes("attester_keys", &k.inclusion_path)?;
        merkle::verify_inclusion(&merkle::leaf_hash(&bytes), k.leaf_index, cp.body.tree_size, &path, &cp.body.root)
            .map_err(|e| fail(format!("inclusion_path does not prove it in the checkpoint's root: {e}")))?;
        key = Some(match (&r.body.claim, key) {
            (Claim::GovernanceProposal(p), None) => match &p.change {
                Change::AddMember { name, key, .. } if name == attester => *key.ed25519(),
                _ => return Err(fail(format!("'{attester}' is not a genesis member: the first record must add it"))),
            },
            (Claim::GovernanceProposal(p), Some(_)) => match &p.change {
                Change::RevokeKey { name, replacement, .. } if name == attester => *replacement.ed25519(),
                _ => return Err(fail(format!("names no key for '{attester}' (a revoke-key proposal for it)"))),
            },
            (Claim::KeyRotation(rot), Some(old)) if &r.body.attester == attester => {
                sig::verify(&old, Domain::Attestation, &chain_id.0, &r.body.to_bytes(), &r.signature)
                    .map_err(|e| fail(format!("the rotation is not signed by the key before it: {e}")))?;
                verify_possession(chain_id, attester, &MemberKey::Ed25519(old), &rot.new_key, &rot.possession)
                    .map_err(|e| fail(format!("the rotation's proof of possession does not verify: {e}")))?;
                *rot.new_key.ed25519()
            }
            _ => {
                return Err(fail(format!(
                    "names no key for '{attester}' (add-member, revoke-key or its own key rotation)"
                )));
            }
        });
    }
    key.ok_or_else(|| err("attester_keys", "names no key"))
}

/// A chain whose validator set changes, for the tests of bundles and of the witness.
#[cfg(test)]
pub(crate) mod set_fixture {
    use super::*;
    use crate::api::StoreView;
    use credence_ledger::demo::{ChainBuilder, EXAMPLE_GENESIS_TIME_MS};
    use credence_ledger::sig::SecretKey;
    use credence_ledger::store::MemStore;

    /// A chain whose validator set changes by hand-made certified headers after three demo
    /// blocks: the same tree, new heights, each header signed by the set it names.
    pub(crate) struct Changing {
        pub(crate) genesis: Genesis,
        pub(crate) store: MemStore,
        /// Headers after the demo blocks, by height (the demo's first).
        pub(crate) headers: Vec<BlockHeader>,
        /// (name, key) of the set in force at each of `headers`.
        pub(crate) sets: Vec<Vec<(String, [u8; 32])>>,
        pub(crate) certs: Vec<Checkpoint>,
    }

    pub(crate) fn sign_by(body: &checkpoint::CheckpointBody, signers: &[(String, [u8; 32])]) -> Checkpoint {
        Checkpoint {
            body: body.clone(),
            signatures: signers.iter().map(|(n, k)| checkpoint::sign(body, n, &SecretKey::from_seed(*k))).collect(),
        }
    }

    pub(crate) fn hash_of(set: &[(String, [u8; 32])]) -> credence_ledger::hash::Hash {
        let mut list: Vec<(MemberName, credence_ledger::sig::PublicKey)> = set
            .iter()
            .map(|(n, k)| (MemberName::parse("name", n).unwrap(), SecretKey::from_seed(*k).public()))
            .collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        set_hash(&list)
    }

    impl Changing {
        pub(crate) fn new() -> Changing {
            let mut chain = ChainBuilder::new(3, EXAMPLE_GENESIS_TIME_MS).unwrap();
            let mut store = MemStore::new(chain.genesis());
            for _ in 0..3 {
                store.commit(&chain.next_block(4).unwrap()).unwrap();
            }
            let genesis = chain.genesis().clone();
            let set0: Vec<(String, [u8; 32])> = genesis
                .members
                .iter()
                .zip(chain.keys())
                .filter(|(m, _)| m.validator)
                .map(|(m, k)| (m.name.to_string(), k.seed()))
                .collect();
            let h3 = store.header(3).unwrap().unwrap();
            let c3 = store.certificate(3).unwrap().unwrap();
            Changing { genesis, store, headers: vec![h3], sets: vec![set0], certs: vec![c3] }
        }

        /// Appends the next header, certified by all of `set` (its set in force).
        pub(crate) fn push(&mut self, set: Vec<(String, [u8; 32])>) {
            let prev = self.headers.last().unwrap().clone();
            let mut sorted = set;
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            let h = BlockHeader {
                height: prev.height + 1,
                prev: prev.hash(),
                time_ms: prev.time_ms + 1,
                proposer: prev.proposer.clone(),
                tree_size: prev.tree_size,
                tree_root: prev.tree_root,
                validator_set: hash_of(&sorted),
            };
            let cert = sign_by(&h.checkpoint_body(&self.genesis, 0), &sorted);
            self.headers.push(h);
            self.sets.push(sorted);
            self.certs.push(cert);
        }

        pub(crate) fn index(&self, height: u64) -> usize {
            usize::try_from(height - self.headers[0].height).unwrap()
        }

        /// The set change at `height` as a node would serve it.
        pub(crate) fn change(&self, height: u64) -> SetChange {
            let (i, j) = (self.index(height - 1), self.index(height));
            SetChange {
                height,
                validators: vkeys(&self.sets[j]),
                last_header: B64.encode(self.headers[i].to_bytes()),
                last_certificate: self.certs[i].to_note(),
                header: B64.encode(self.headers[j].to_bytes()),
                certificate: self.certs[j].to_note(),
            }
        }

        /// A bundle for leaf 5 under the certificate at `height`, with `changes`.
        pub(crate) fn bundle(&self, height: u64, changes: Vec<SetChange>) -> Bundle {
            let cp = self.certs[self.index(height)].clone();
            let leaf = self.store.leaf(5).unwrap().unwrap();
            let path = merkle::inclusion_proof(5, cp.body.tree_size, &StoreView(&self.store)).unwrap();
            Bundle::new(&self.genesis, &leaf.bytes, 5, &path, &cp, &[], changes).unwrap()
        }
    }

    pub(crate) fn vkeys(set: &[(String, [u8; 32])]) -> Vec<String> {
        set.iter()
            .map(|(n, k)| VerifierKey { name: n.clone(), key: SecretKey::from_seed(*k).public() }.to_vkey_string())
            .collect()
    }

    /// Genesis's four validators; a fifth joins at height 5; the first rotates its key at
    /// height 7. Checkpoints of each set verify through the changes.
    pub(crate) fn two_changes() -> (Changing, [u8; 32]) {
        let mut c = Changing::new();
        let set0 = c.sets[0].clone();
        c.push(set0.clone()); // 4
        let mut set1 = set0.clone();
        set1.push(("bank-new".into(), [51; 32]));
        c.push(set1.clone()); // 5: bank-new in force
        c.push(set1.clone()); // 6
        let mut set2 = set1;
        let old = std::mem::replace(&mut set2[0].1, [52; 32]);
        c.push(set2.clone()); // 7: the first validator's new key
        c.push(set2); // 8
        (c, old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::StoreView;
    use credence_ledger::demo::{ChainBuilder, EXAMPLE_GENESIS_TIME_MS};
    use credence_ledger::store::{MemStore, Store};

    /// A bundle for leaf 5 of a three-block demo chain, and the chain's genesis.
    fn fixture() -> (Bundle, Genesis) {
        let mut chain = ChainBuilder::new(3, EXAMPLE_GENESIS_TIME_MS).unwrap();
        let mut store = MemStore::new(chain.genesis());
        for _ in 0..3 {
            let vb = chain.next_block(4).unwrap();
            store.commit(&vb).unwrap();
        }
        let head = store.head().unwrap().unwrap();
        let cp = store.certificate(head.height).unwrap().unwrap();
        let leaf = store.leaf(5).unwrap().unwrap();
        let view = StoreView(&store);
        let path = merkle::inclusion_proof(5, cp.body.tree_size, &view).unwrap();
        let bundle = Bundle::new(chain.genesis(), &leaf.bytes, 5, &path, &cp, &[], Vec::new()).unwrap();
        (bundle, chain.genesis().clone())
    }

    #[test]
    fn a_fresh_bundle_verifies_and_round_trips_through_json() {
        let (b, g) = fixture();
        let report = verify(&b, &g).unwrap();
        assert_eq!(report.leaf_index, 5);
        assert_eq!(report.tree_size, b.tree_size);
        assert!(report.signers.len() >= report.needed);
        let parsed = Bundle::parse(b.to_json().as_bytes()).unwrap();
        assert_eq!(parsed, b);
        assert_eq!(verify(&parsed, &g).unwrap(), report);
    }

    /// Cosignature lines count only by the policy's witnesses (genesis's, then the auditor's)
    /// and only if they verify; lines by other keys are ignored; k of them can be required, a
    /// shortfall naming the ones counted and the missing ones.
    #[test]
    fn cosignatures_count_under_the_auditors_witness_policy() {
        use credence_ledger::genesis::GenesisWitness;
        use credence_ledger::sig::SecretKey;
        let (b, g) = fixture();
        let (sk1, sk2, sk3) =
            (SecretKey::from_seed([41; 32]), SecretKey::from_seed([42; 32]), SecretKey::from_seed([43; 32]));
        let named = |name: &str, sk: &SecretKey| GenesisWitness {
            name: name.into(),
            public_key: sk.public(),
            url: "http://127.0.0.1:1".into(),
        };
        let gw = g.clone().with_witnesses(vec![named("w.example/2", &sk2), named("w.example/1", &sk1)]).unwrap();
        let cp = check_checkpoint(&b.checkpoint, &g).unwrap().0;
        let keys = gw.witness_keys();
        let genesis_policy = WitnessPolicy::genesis(&gw);
        let c1 = Cosignature::sign(&cp.body, &keys[0], &sk1, 1_700_000_000);
        let note = witnessed_note(&cp, std::slice::from_ref(&c1));
        let checked = check_witnessed(&note, &gw).unwrap();
        assert_eq!(checked.witnesses, ["w.example/1"]);
        assert!(require_witnesses(&genesis_policy, &checked.witnesses, 1).is_ok());
        let short = require_witnesses(&genesis_policy, &checked.witnesses, 2).unwrap_err();
        assert!(short.contains("2 witnesses required, 1 counted (w.example/1)"), "{short}");
        assert!(short.contains("no valid cosignature from: w.example/2"), "{short}");
        let e = require_witnesses(&genesis_policy, &checked.witnesses, 3).unwrap_err();
        assert!(e.contains("names only 2") && e.contains("--witness"), "{e}");
        let c2 = Cosignature::sign(&cp.body, &keys[1], &sk2, 1_700_000_001);
        let both = check_witnessed(&witnessed_note(&cp, &[c1.clone(), c2]), &gw).unwrap();
        assert_eq!(both.witnesses, ["w.example/1", "w.example/2"]);

        // A witness governance added (not in genesis): ignored by a verifier that does not
        // know it, counted by one whose policy names it.
        let gov = credence_ledger::witness::WitnessKey { name: "w.example/3".into(), key: sk3.public() };
        let c3 = Cosignature::sign(&cp.body, &gov, &sk3, 1_700_000_002);
        let note13 = witnessed_note(&cp, &[c1.clone(), c3.clone()]);
        let plain = check_witnessed(&note13, &gw).unwrap();
        assert_eq!(plain.witnesses, ["w.example/1"]);
        assert_eq!(plain.ignored, ["w.example/3"]);
        let e = require_witnesses(&genesis_policy, &plain.witnesses, 2).unwrap_err();
        assert!(e.contains("1 counted (w.example/1)") && e.contains("--witness: none"), "{e}");
        let policy = WitnessPolicy::with_extra(&gw, std::slice::from_ref(&gov)).unwrap();
        assert_eq!(policy.names(), ["w.example/1", "w.example/2", "w.example/3"]);
        let validators = gw.verifier_keys();
        let counted = check_witnessed_with(&note13, &gw, &validators, &policy).unwrap();
        assert_eq!(counted.witnesses, ["w.example/1", "w.example/3"]);
        assert!(counted.ignored.is_empty());
        assert!(require_witnesses(&policy, &counted.witnesses, 2).is_ok());
        // A genesis that names no witness ignores every line; the policy still counts.
        assert_eq!(check_witnessed(&note13, &g).unwrap().ignored, ["w.example/1", "w.example/3"]);
        let only3 = WitnessPolicy::with_extra(&g, std::slice::from_ref(&gov)).unwrap();
        assert_eq!(check_witnessed_with(&note13, &g, &validators, &only3).unwrap().witnesses, ["w.example/3"]);

        // A line with a policy witness's name under another key is not that witness's: ignored.
        let stranger = credence_ledger::witness::WitnessKey { name: "w.example/1".into(), key: sk2.public() };
        let forged = Cosignature::sign(&cp.body, &stranger, &sk2, 1_700_000_000);
        let f = check_witnessed(&witnessed_note(&cp, &[forged]), &gw).unwrap();
        assert!(f.witnesses.is_empty());
        assert_eq!(f.ignored, ["w.example/1"]);
        // A policy witness's line that does not verify voids the note, naming the witness.
        let mut bad = c1;
        bad.timestamp += 1;
        let e = check_witnessed(&witnessed_note(&cp, std::slice::from_ref(&bad)), &gw).unwrap_err();
        assert!(e.contains("w.example/1"), "{e}");
        let mut bad3 = c3;
        bad3.timestamp += 1;
        let note_bad3 = witnessed_note(&cp, &[bad3]);
        assert!(check_witnessed(&note_bad3, &gw).is_ok(), "unknown to the genesis policy: ignored");
        let e = check_witnessed_with(&note_bad3, &gw, &validators, &policy).unwrap_err();
        assert!(e.contains("w.example/3"), "{e}");
        // Policies are bounded.
        let many: Vec<_> = (0..=POLICY_WITNESSES_MAX)
            .map(|i| credence_ledger::witness::WitnessKey { name: format!("w{i}"), key: sk3.public() })
            .collect();
        assert!(WitnessPolicy::with_extra(&g, &many).unwrap_err().contains("at most"));
    }

    /// Each field changed to another plausible value is refused, naming that field.
    #[test]
    fn every_mutated_field_is_refused_by_name() {
        let (b, g) = fixture();
        let flip_b64 = |s: &str| {
            let mut raw = B64.decode(s).unwrap();
            let i = raw.len() / 2;
            raw[i] ^= 1;
            B64.encode(raw)
        };
        type Mutation = (&'static str, Box<dyn Fn(&mut Bundle)>);
        let flip = flip_b64;
        let cases: Vec<Mutation> = vec![
            ("format", Box::new(|b| b.format = "credence-proof-bundle/v2".into())),
            ("chain_id", Box::new(|b| b.chain_id = "00".repeat(32))),
            ("id", Box::new(|b| b.id = "ab".repeat(32))),
            ("attestation", Box::new(move |b| b.attestation = flip(&b.attestation))),
            ("attestation", Box::new(|b| b.attestation.push('A'))),
            ("leaf_index", Box::new(|b| b.leaf_index += 1)),
            ("leaf_index", Box::new(|b| b.leaf_index = b.tree_size)),
            ("tree_size", Box::new(|b| b.tree_size -= 1)),
            ("inclusion_path", Box::new(move |b| b.inclusion_path[0] = flip(&b.inclusion_path[0]))),
            ("inclusion_path", Box::new(|b| b.inclusion_path.pop().map(drop).unwrap_or(()))),
            ("inclusion_path", Box::new(|b| b.inclusion_path.push(B64.encode([0u8; 32])))),
            ("inclusion_path", Box::new(|b| b.inclusion_path.swap(0, 1))),
            ("checkpoint", Box::new(|b| b.checkpoint = b.checkpoint.replacen('\n', "x\n", 1))),
            (
                "checkpoint",
                Box::new(|b| {
                    // Drop every signature line but the first: too few signers.
                    let (text, sigs) = b.checkpoint.split_once("\n\n").unwrap();
                    let first = sigs.lines().next().unwrap();
                    b.checkpoint = format!("{text}\n\n{first}\n");
                }),
            ),
            ("verifier_keys", Box::new(|b| b.verifier_keys.reverse())),
            ("verifier_keys", Box::new(|b| drop(b.verifier_keys.pop()))),
            ("decoded", Box::new(|b| b.decoded.sequence += 1)),
            ("decoded", Box::new(|b| b.decoded.attester = "other-bank".into())),
            ("decoded", Box::new(|b| b.decoded.claim["kind"] = "release".into())),
        ];
        for (field, mutate) in cases {
            let mut m = b.clone();
            mutate(&mut m);
            assert_ne!(m, b, "mutation of {field} changed nothing");
            let e = verify(&m, &g).expect_err(field);
            // A changed leaf index or size is caught either by the field itself or by the path.
            let ok = e.field == field || (matches!(field, "leaf_index" | "tree_size") && e.field == "inclusion_path");
            assert!(ok, "{field} mutated but refused for {e}");
        }
    }

    use super::set_fixture::*;

    fn set_changes_rule(b: &Bundle, g: &Genesis) -> String {
        let e = verify(b, g).unwrap_err();
        assert_eq!(e.field, "set_changes", "{e}");
        e.rule
    }

    #[test]
    fn a_bundle_walks_the_set_changes_from_genesis() {
        let (c, _) = two_changes();
        let b = c.bundle(8, vec![c.change(5), c.change(7)]);
        let r = verify(&b, &c.genesis).unwrap();
        assert_eq!((r.set_changes, r.validators, r.checkpoint_height), (2, 5, 8));
        assert_eq!(Bundle::parse(b.to_json().as_bytes()).unwrap(), b);
        // A checkpoint of the first new set needs only its change.
        assert_eq!(verify(&c.bundle(6, vec![c.change(5)]), &c.genesis).unwrap().validators, 5);
        // Without the changes, the new set's checkpoint is refused against the genesis validators.
        let mut bare = c.bundle(8, Vec::new());
        bare.verifier_keys = b.verifier_keys.clone();
        assert_eq!(verify(&bare, &c.genesis).unwrap_err().field, "verifier_keys");
        let bare = c.bundle(8, Vec::new());
        let e = verify(&bare, &c.genesis).unwrap_err();
        assert_eq!(e.field, "checkpoint", "{e}");
        // A change after the checkpoint's height is refused.
        let ahead = c.bundle(6, vec![c.change(5), c.change(7)]);
        assert!(set_changes_rule(&ahead, &c.genesis).contains("checkpoint is for height 6"));
    }

    #[test]
    fn a_forged_set_change_signed_by_keys_not_in_force_is_refused() {
        let (mut c, _) = two_changes();
        // Outsiders name themselves the validators at height 9 and sign it.
        let evil: Vec<(String, [u8; 32])> = (0..4u8).map(|i| (format!("evil-{i}"), [60 + i; 32])).collect();
        c.push(evil.clone()); // 9
        let b = c.bundle(9, vec![c.change(5), c.change(7), c.change(9)]);
        let rule = set_changes_rule(&b, &c.genesis);
        assert!(rule.starts_with("change 2 (height 9): certificate: signed by 0 of the 5 validators"), "{rule}");
        // The same outsiders also forging the old set's certificate of the last header.
        let mut forged = c.change(9);
        let last = c.index(8);
        forged.last_certificate = sign_by(&c.certs[last].body, &evil).to_note();
        let b = c.bundle(9, vec![c.change(5), c.change(7), forged]);
        let rule = set_changes_rule(&b, &c.genesis);
        assert!(rule.starts_with("change 2 (height 9): last_certificate:"), "{rule}");
    }

    #[test]
    fn a_set_change_certified_by_too_few_signers_is_refused() {
        let (c, _) = two_changes();
        let mut weak = c.change(5);
        let j = c.index(5);
        // Two of the five: not more than 2/3.
        weak.certificate = sign_by(&c.certs[j].body, &c.sets[j][..2]).to_note();
        let rule = set_changes_rule(&c.bundle(6, vec![weak]), &c.genesis);
        assert!(rule.starts_with("change 0 (height 5): certificate:") && rule.contains("new set"), "{rule}");
        // The old set's certificate of the last header by one validator.
        let mut weak = c.change(5);
        let i = c.index(4);
        weak.last_certificate = sign_by(&c.certs[i].body, &c.sets[i][..1]).to_note();
        let rule = set_changes_rule(&c.bundle(6, vec![weak]), &c.genesis);
        assert!(rule.starts_with("change 0 (height 5): last_certificate:"), "{rule}");
    }

    #[test]
    fn a_dropped_change_in_the_middle_is_refused() {
        let (c, _) = two_changes();
        let b = c.bundle(8, vec![c.change(7)]);
        let rule = set_changes_rule(&b, &c.genesis);
        assert!(rule.contains("a set change before height 7 is missing"), "{rule}");
        // Out of order.
        let b = c.bundle(8, vec![c.change(7), c.change(5)]);
        assert!(set_changes_rule(&b, &c.genesis).starts_with("change 0 (height 7): last_header"));
    }

    #[test]
    fn a_change_list_over_the_bound_is_refused() {
        let (c, _) = two_changes();
        let b = c.bundle(8, vec![c.change(5); SET_CHANGES_MAX + 1]);
        let rule = set_changes_rule(&b, &c.genesis);
        assert!(rule.contains("at most 64 (SET_CHANGES_MAX)"), "{rule}");
    }

    #[test]
    fn a_checkpoint_signed_by_a_rotated_out_key_is_refused() {
        let (c, old) = two_changes();
        let j = c.index(8);
        let mut signers = c.sets[j].clone();
        signers[0].1 = old;
        let mut b = c.bundle(8, vec![c.change(5), c.change(7)]);
        let cp = sign_by(&c.certs[j].body, &signers);
        b.checkpoint = cp.to_note();
        let e = verify(&b, &c.genesis).unwrap_err();
        assert_eq!(e.field, "checkpoint", "{e}");
        assert!(e.rule.contains("in force since height 7"), "{e}");
        // A quorum of the keys in force plus a line by the revoked (rotated-out) key: the
        // line is not ignored, the checkpoint is refused.
        let mut with_old = c.sets[j].clone();
        with_old.push((c.sets[j][0].0.clone(), old));
        b.checkpoint = sign_by(&c.certs[j].body, &with_old).to_note();
        let e = verify(&b, &c.genesis).unwrap_err();
        assert_eq!(e.field, "checkpoint", "{e}");
        assert!(e.rule.contains(&c.sets[j][0].0), "names the validator: {e}");
        // A change whose new set keeps the rotated-out key but certifies with the new one.
        let mut mixed = c.change(7);
        mixed.validators = vkeys(&c.sets[c.index(6)]);
        let rule = set_changes_rule(&c.bundle(8, vec![c.change(5), mixed]), &c.genesis);
        assert!(rule.contains("are the set already in force"), "{rule}");
    }

    #[test]
    fn each_part_of_a_set_change_is_checked() {
        let (c, _) = two_changes();
        type Mutation = (&'static str, Box<dyn Fn(&mut SetChange)>);
        let cases: Vec<Mutation> = vec![
            ("height", Box::new(|s| s.height = 1)),
            ("last_header", Box::new(|s| s.last_header.push('A'))),
            ("last_header", Box::new(|s| s.height += 1)),
            ("validators", Box::new(|s| s.validators.reverse())),
            ("validators", Box::new(|s| s.validators.clear())),
            ("header", Box::new(|s| s.header = s.last_header.clone())),
            // A validator left out: the header commits to another set.
            ("header", Box::new(|s| drop(s.validators.pop()))),
            ("certificate", Box::new(|s| s.certificate = s.last_certificate.clone())),
        ];
        for (part, mutate) in cases {
            let mut m = c.change(5);
            mutate(&mut m);
            let rule = set_changes_rule(&c.bundle(6, vec![m]), &c.genesis);
            assert!(rule.contains(&format!(": {part}:")), "{part} mutated, refused for {rule}");
        }
    }

    /// A record signed with a key its attester rotated to verifies through the rotation
    /// record (included under the same checkpoint); without it, or with a record that names
    /// no key for the attester, the bundle is refused.
    #[test]
    fn a_record_under_a_rotated_key_verifies_through_the_rotation_record() {
        use credence_ledger::governance::Pending;
        use credence_ledger::rules::StateView;
        let mut chain = ChainBuilder::new(5, EXAMPLE_GENESIS_TIME_MS).unwrap();
        chain.rotate_validator_keys(1, 2);
        let mut store = MemStore::new(chain.genesis());
        for _ in 0..6 {
            store.commit(&chain.next_block(10).unwrap()).unwrap();
        }
        let g = chain.genesis().clone();
        let gov = store.governance().unwrap().expect("the rotation took effect");
        let applied = &gov.applied[0];
        let Pending::Rotation { record, member, .. } = &applied.pending else { panic!("{applied:?}") };
        let who = gov.members[usize::from(*member)].name.clone();
        let head = store.head().unwrap().unwrap();
        let cp = store.certificate(head.height).unwrap().unwrap();
        let view = StoreView(&store);
        let proof_of = |i: u64| merkle::inclusion_proof(i, cp.body.tree_size, &view).unwrap();
        // A record of `who` in a block after the rotation took effect.
        let first = store.header(applied.at_height - 1).unwrap().unwrap().tree_size;
        let (index, leaf) = (first..head.tree_size)
            .map(|i| (i, store.leaf(i).unwrap().unwrap()))
            .find(|(_, l)| l.attestation.body.attester == who)
            .expect("a record under the new key");
        let changes = set_changes_from(&store, &gov.epochs, head.height).unwrap();
        let bare = Bundle::new(&g, &leaf.bytes, index, &proof_of(index), &cp, &[], changes).unwrap();
        let e = verify(&bare, &g).unwrap_err();
        assert!(e.field == "attestation" && e.rule.contains("genesis key"), "{e}");
        let at = store.locate(record).unwrap().expect("the rotation record").leaf_index;
        let intro = |i: u64| KeyIntroduction {
            record: B64.encode(store.leaf(i).unwrap().unwrap().bytes),
            leaf_index: i,
            inclusion_path: proof_of(i).iter().map(|h| B64.encode(h)).collect(),
        };
        let b = bare.clone().with_attester_keys(vec![intro(at)]);
        let r = verify(&b, &g).unwrap();
        assert_eq!((r.attester, r.set_changes), (who.to_string(), 1));
        assert_eq!(Bundle::parse(b.to_json().as_bytes()).unwrap(), b);
        // Another record in its place names no key for the attester.
        let e = verify(&bare.clone().with_attester_keys(vec![intro(at - 1)]), &g).unwrap_err();
        assert_eq!(e.field, "attester_keys", "{e}");
        // The rotation record with a path to another leaf does not prove it.
        let mut moved = intro(at);
        moved.leaf_index = at - 1;
        let e = verify(&bare.with_attester_keys(vec![moved]), &g).unwrap_err();
        assert!(e.field == "attester_keys" && e.rule.contains("inclusion_path"), "{e}");
    }

    #[test]
    fn a_bundle_is_refused_under_another_genesis() {
        let (b, _) = fixture();
        let other = ChainBuilder::new(4, EXAMPLE_GENESIS_TIME_MS).unwrap();
        assert_eq!(verify(&b, other.genesis()).unwrap_err().field, "chain_id");
    }

    #[test]
    fn oversized_or_unknown_fields_are_refused_at_parse() {
        let (b, _) = fixture();
        let mut v = serde_json::to_value(&b).unwrap();
        v["extra"] = 1.into();
        assert_eq!(Bundle::parse(v.to_string().as_bytes()).unwrap_err().field, "bundle");
        let big = vec![b' '; BUNDLE_BYTES_MAX + 1];
        assert!(Bundle::parse(&big).unwrap_err().rule.contains("at most"));
    }
}
