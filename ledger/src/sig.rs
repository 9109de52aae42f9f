//! Ed25519 signatures for Credence under one deterministic validity rule (ZIP-215), single and batch.
//!
//! # The rule
//!
//! Every node must reach the same verdict on every signature, whether it checks the
//! signature alone or inside a batch, on any machine. Plain "Ed25519" does not give that:
//! RFC 8032 leaves the verification equation open (cofactored or cofactorless), and
//! libraries differ on non-canonical point encodings. ed25519-dalek's own `verify`
//! (cofactorless, compares encodings), `verify_strict` (rejects small-order and
//! non-canonical points) and `verify_batch` (a randomised *cofactorless* equation) do
//! not agree with each other on crafted signatures with small-order components: a
//! batch may accept what the single check rejects (a torsion component in R cancels in
//! the combination for one coefficient draw in eight), and whether it does depends on
//! the coefficients, i.e. on whatever else is in the batch. Nodes batching different
//! sets of messages could then disagree about a block: a consensus failure.
//!
//! We therefore implement the ZIP-215 rule (Zcash; the `ed25519-zebra` crate) directly
//! on curve25519-dalek, for a key `A`, signature `R || S` and message `M`:
//!
//! 1. `A` and `R` are decompressed as given; non-canonical encodings (y ≥ p, "x = −0")
//!    are accepted, an encoding that is not a curve point is rejected
//!    ([`SigError::BadPublicKey`], [`SigError::BadR`]).
//! 2. `S` must be canonical, `S < ℓ` ([`SigError::NonCanonicalS`]).
//! 3. `k = SHA-512(R_bytes || A_bytes || M) mod ℓ`, over the bytes exactly as given.
//! 4. Accept iff `[8]([S]B − R − [k]A)` is the identity ([`SigError::Mismatch`] otherwise).
//!
//! The batch check is the random linear combination of the same cofactored equations,
//! `[8](−(Σ zᵢSᵢ)B + Σ zᵢRᵢ + Σ_A (Σ_{i: key A} zᵢkᵢ)A) = 0`. Multiplying by the cofactor
//! puts every term in the prime-order subgroup, so the batch holds for all valid items
//! and fails, except with probability about 2⁻¹²⁸, if any item fails its single check.
//! When a batch fails we re-check its items one by one, so every reported verdict *is*
//! the single verdict. Steps 1–3 are the same code on both paths.
//!
//! # Weak and non-canonical keys
//!
//! ZIP-215 accepts signatures under small-order keys (for example `A = R = identity,
//! S = 0` verifies for every message). That is harmless only if such keys are never
//! members: the genesis loader must refuse keys for which [`PublicKey::is_weak`] holds
//! or [`PublicKey::is_canonical`] does not. (Every non-canonical encoding that
//! decompresses is of a small-order point, so the two checks overlap.)
//!
//! # Domain separation
//!
//! Binary messages are signed as `tag || chain_id || body` (see [`signing_message`]).
//! Each [`Domain::tag`] starts with `credence/` and ends with its only NUL byte, so tags
//! are prefix-free and no signed binary message is valid C2SP note text (which never
//! contains NUL); checkpoints are signed raw as C2SP signed notes
//! ([`SecretKey::sign_raw`], [`verify_raw`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::VartimeEdwardsPrecomputation;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul, VartimePrecomputedMultiscalarMul};
use ed25519_dalek::ed25519::signature::MultipartSigner;
use ed25519_dalek::{Signer, SigningKey};
use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha512};

/// Most items verified as one batch equation. Measured on 2 cores (examples/bench.rs):
/// per-signature cost flattens out around 512–1024 items, while larger chunks make a
/// failed batch (which falls back to single checks) more expensive.
pub const BATCH_ITEMS_MAX: usize = 1024;

/// Below this many items per thread, spawning another thread is not worth it.
const MIN_ITEMS_PER_THREAD: usize = 8;
const _: () = assert!(MIN_ITEMS_PER_THREAD <= BATCH_ITEMS_MAX);

/// Tags the transcript that derives batch coefficients (never a signed message).
const BATCH_Z_TAG: &[u8] = b"credence/sig-batch-z/v1\0";

/// An Ed25519 public key as its 32-byte encoding (not validated until used).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// True if the key does not decompress or has small order (8·A = identity).
    /// ZIP-215 accepts signatures under such keys, so they must never be members.
    pub fn is_weak(&self) -> bool {
        CompressedEdwardsY(self.0).decompress().is_none_or(|p| p.is_small_order())
    }

    /// True if the key decompresses and is the canonical encoding of its point.
    pub fn is_canonical(&self) -> bool {
        CompressedEdwardsY(self.0).decompress().is_some_and(|p| p.compress().0 == self.0)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PublicKey(")?;
        write_hex(f, &self.0)?;
        f.write_str(")")
    }
}

/// An Ed25519 signature `R || S` as its 64-byte encoding.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    fn r_bytes(&self) -> [u8; 32] {
        std::array::from_fn(|i| self.0[i])
    }

    fn s_bytes(&self) -> [u8; 32] {
        std::array::from_fn(|i| self.0[32 + i])
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signature(")?;
        write_hex(f, &self.0)?;
        f.write_str(")")
    }
}

// serde only derives arrays up to 32 elements; a 64-tuple keeps bincode at exactly 64
// raw bytes with no length prefix, like the derived 32-byte `PublicKey`.
impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(64)?;
        for byte in &self.0 {
            tuple.serialize_element(byte)?;
        }
        tuple.end()
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SigVisitor;
        impl<'de> Visitor<'de> for SigVisitor {
            type Value = Signature;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 signature bytes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Signature, A::Error> {
                let mut out = [0u8; 64];
                for (i, byte) in out.iter_mut().enumerate() {
                    *byte = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                Ok(Signature(out))
            }
        }
        deserializer.deserialize_tuple(64, SigVisitor)
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

/// A signing key (the 32-byte RFC 8032 seed). Zeroized on drop; never printed.
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// A fresh key from the operating system's randomness.
    ///
    /// # Panics
    /// If the OS random source is unavailable: no key can safely be made then.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        if let Err(e) = getrandom::fill(&mut seed) {
            panic!("OS randomness unavailable, cannot generate a key: {e}");
        }
        Self::from_seed(seed)
    }

    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&seed))
    }

    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// Signs `tag || chain_id || body` without concatenating it.
    pub fn sign(&self, domain: Domain, chain_id: &[u8; 32], body: &[u8]) -> Signature {
        Signature(self.0.multipart_sign(&[domain.tag(), chain_id, body]).to_bytes())
    }

    /// Signs `msg` as is (C2SP signed notes); never use it for binary messages.
    pub fn sign_raw(&self, msg: &[u8]) -> Signature {
        Signature(self.0.sign(msg).to_bytes())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// What a binary message is; its tag prefixes the signed bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    Attestation,
    Vote,
    Proposal,
    /// A new member key's consent to replace an old one (governance key rotation).
    KeyPossession,
    /// A validator's statement that the ledger state after a height has a given digest
    /// (`snapshot::Statement`): what certifies a snapshot.
    SnapshotStatement,
}

impl Domain {
    /// Starts with `credence/`, ends with the only NUL byte: prefix-free, never note text.
    pub const fn tag(self) -> &'static [u8] {
        match self {
            Domain::Attestation => b"credence/attestation/v1\0",
            Domain::Vote => b"credence/vote/v1\0",
            Domain::Proposal => b"credence/proposal/v1\0",
            Domain::KeyPossession => b"credence/key-possession/v1\0",
            Domain::SnapshotStatement => b"credence/snapshot-statement/v1\0",
        }
    }
}

/// The bytes actually signed for a binary message: `tag || chain_id || body`.
pub fn signing_message(domain: Domain, chain_id: &[u8; 32], body: &[u8]) -> Vec<u8> {
    [domain.tag(), chain_id.as_slice(), body].concat()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum SigError {
    #[error("public key: not a valid curve point encoding")]
    BadPublicKey,
    #[error("signature: R is not a valid curve point encoding")]
    BadR,
    #[error("signature: S is not a canonical scalar (must be < group order)")]
    NonCanonicalS,
    #[error("signature: equation does not hold for this key and message")]
    Mismatch,
}

/// A verifying key with its point decompressed once (cache per member; the ledger has
/// few signers).
#[derive(Clone, Copy)]
pub struct VerifyingKey {
    /// The encoding as given: `k` is hashed over these bytes, not a re-encoding.
    bytes: [u8; 32],
    point: EdwardsPoint,
}

impl VerifyingKey {
    pub fn new(pk: &PublicKey) -> Result<Self, SigError> {
        let point = CompressedEdwardsY(pk.0).decompress().ok_or(SigError::BadPublicKey)?;
        Ok(Self { bytes: pk.0, point })
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.bytes)
    }

    /// [`verify`] with this cached key.
    pub fn verify(&self, domain: Domain, chain_id: &[u8; 32], body: &[u8], sig: &Signature) -> Result<(), SigError> {
        verify_single(self, [domain.tag(), chain_id, body], sig)
    }

    /// [`verify_raw`] with this cached key.
    pub fn verify_raw(&self, msg: &[u8], sig: &Signature) -> Result<(), SigError> {
        verify_single(self, [msg, &[], &[]], sig)
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerifyingKey(")?;
        write_hex(f, &self.bytes)?;
        f.write_str(")")
    }
}

/// A verifying key with precomputed tables for a key that checks many signatures (a
/// genesis validator's): width-8 NAF tables of `B` and `−A`, so step 4 is one
/// precomputed multiscalar multiplication `[S]B + [k](−A)` instead of building a table
/// of `A` per signature. Steps 1–3 are the same code as [`verify`]'s and step 4 is the
/// same cofactored equation, so every verdict equals [`VerifyingKey::verify`]'s (the
/// tests assert it on every edge-case vector). About 20 KiB per key.
pub struct PrecomputedKey {
    key: VerifyingKey,
    /// Tables of `[B, −A]`, in that order.
    tables: VartimeEdwardsPrecomputation,
}

impl PrecomputedKey {
    pub fn new(key: &VerifyingKey) -> Self {
        let tables = VartimeEdwardsPrecomputation::new([ED25519_BASEPOINT_POINT, -key.point]);
        assert_eq!(tables.len(), 2, "tables of B and -A");
        Self { key: *key, tables }
    }

    pub fn key(&self) -> &VerifyingKey {
        &self.key
    }

    /// [`VerifyingKey::verify`] through the tables.
    pub fn verify(&self, domain: Domain, chain_id: &[u8; 32], body: &[u8], sig: &Signature) -> Result<(), SigError> {
        self.verify_parts([domain.tag(), chain_id, body], sig)
    }

    /// [`VerifyingKey::verify_raw`] through the tables.
    pub fn verify_raw(&self, msg: &[u8], sig: &Signature) -> Result<(), SigError> {
        self.verify_parts([msg, &[], &[]], sig)
    }

    fn verify_parts(&self, msg: [&[u8]; 3], sig: &Signature) -> Result<(), SigError> {
        let p = prepare(&self.key, msg, sig)?;
        if self.equation_holds(&p) { Ok(()) } else { Err(SigError::Mismatch) }
    }

    /// Step 4 as in [`equation_holds`]: `[8]([S]B + [k](−A) − R) = identity`.
    fn equation_holds(&self, p: &Prepared) -> bool {
        let sb_minus_ka = self.tables.vartime_multiscalar_mul([&p.s, &p.k]);
        (sb_minus_ka - p.r).mul_by_cofactor().is_identity()
    }
}

impl fmt::Debug for PrecomputedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrecomputedKey(")?;
        write_hex(f, &self.key.bytes)?;
        f.write_str(")")
    }
}

/// The bytes a signature covers, as [`KeySet::verify_many`] takes them.
#[derive(Clone, Copy, Debug)]
pub enum SignedBytes<'a> {
    /// `tag || chain_id || body`, as [`SecretKey::sign`] signs.
    Binary { domain: Domain, chain_id: &'a [u8; 32], body: &'a [u8] },
    /// The message as is, as [`SecretKey::sign_raw`] signs (C2SP note text).
    Raw(&'a [u8]),
}

impl<'a> SignedBytes<'a> {
    fn parts(&self) -> [&'a [u8]; 3] {
        match *self {
            SignedBytes::Binary { domain, chain_id, body } => [domain.tag(), chain_id, body],
            SignedBytes::Raw(msg) => [msg, &[], &[]],
        }
    }
}

/// One signature by member `signer` (its index in the [`KeySet`]).
#[derive(Clone, Copy, Debug)]
pub struct KeySetItem<'a> {
    pub signer: usize,
    pub msg: SignedBytes<'a>,
    pub sig: &'a Signature,
}

/// A fixed, known set of keys (a genesis validator set) with precomputed tables, for
/// checking the many small groups of signatures consensus receives.
///
/// * One signature: [`PrecomputedKey`]'s path.
/// * Several: the batch equation of [`verify_batch`] with the key terms taken from one
///   precomputed table of `[B, A₀, …, Aₙ₋₁]` (a [`KeyTable`]), falling back to single
///   checks if it fails. Its coefficients are derived from the batch alone (no OS
///   randomness), so the check is a pure function — usable inside the consensus state
///   machine, and every node gets the same answer for the same batch. They still bind
///   every S, key, R and message (through k): whoever signs the items cannot choose them
///   after seeing the coefficients, and a batch with an invalid item passes with
///   probability about 2⁻¹²⁸ per attempt, infeasible to grind for.
///
/// Every verdict equals [`VerifyingKey::verify`]'s on the same signature (the tests
/// assert it on every edge-case vector and on random mixes). About 30 KiB per key.
pub struct KeySet {
    keys: Vec<PrecomputedKey>,
    table: KeyTable,
}

impl KeySet {
    pub fn new(keys: &[VerifyingKey]) -> Self {
        Self { keys: keys.iter().map(PrecomputedKey::new).collect(), table: KeyTable::build(keys) }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Member `i`'s key with its tables.
    pub fn get(&self, i: usize) -> Option<&PrecomputedKey> {
        self.keys.get(i)
    }

    /// One verdict per item, each equal to [`VerifyingKey::verify`]'s, on this thread
    /// (chunks of at most [`BATCH_ITEMS_MAX`] items).
    ///
    /// # Panics
    /// If an item names a signer outside the set (the caller maps senders to members).
    pub fn verify_many(&self, items: &[KeySetItem<'_>]) -> Vec<Result<(), SigError>> {
        let signed = self.table.resolve(items);
        let mut out = vec![Err(SigError::Mismatch); items.len()];
        for (items, out) in signed.chunks(BATCH_ITEMS_MAX).zip(out.chunks_mut(BATCH_ITEMS_MAX)) {
            self.table
                .verify_chunk(items, out, Coefficients::Transcript, |it, p| self.keys[it.signer].equation_holds(p));
        }
        out
    }

    /// The batch equation with transcript-only coefficients (see [`KeyTable`]).
    #[cfg(test)]
    fn set_equation_holds(&self, items: &[SetSigned<'_>], prepared: &[(usize, Prepared)]) -> bool {
        self.table.equation_holds(items, prepared, coefficients_from([0u8; 32], items, prepared))
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.keys).finish()
    }
}

/// Most keys a [`KeyTable::new`] takes: above it the caller uses [`verify_batch`] (the
/// same equation with the keys grouped per batch, no tables). Bounds a table's memory
/// to `KEY_TABLE_KEYS_MAX × KEY_TABLE_BYTES_PER_KEY` (640 KiB).
pub const KEY_TABLE_KEYS_MAX: usize = 64;

/// Fewest points for which curve25519-dalek's `vartime_multiscalar_mul` switches from
/// Straus to Pippenger. Below it a [`KeyTable`]'s batch equation takes B and the keys
/// from its precomputed tables (Straus with width-8 tables); from it on, one Pippenger
/// multiplication over B, the grouped keys and the R terms is faster, since the tables'
/// Straus walks every R term over all 256 bits. Measured on the 2-core reference
/// machine (CPU time per signature, 6 signers): with tables 7.7–7.9 µs against 8.1–9.0
/// µs without at 64–128 items; 9.6 µs with tables against 7.2 with Pippenger at 1,000.
const PIPPENGER_POINTS_MIN: usize = 190;

/// Bytes a [`KeyTable`] holds per key: one width-8 NAF table, 64 points in the backend's
/// cached form (160 bytes with the AVX2 and AVX-512 backends, 120 with the serial one).
pub const KEY_TABLE_BYTES_PER_KEY: usize = 64 * 160;

/// The keys of a fixed set of signers (a governance roster's members, a validator set)
/// with one precomputed table of `[B, A₀, …, Aₙ₋₁]`, for the batch equation
/// `[8](−(Σ zᵢSᵢ)B + Σ_j (Σ_{i: signer j} zᵢkᵢ)A_j + Σ zᵢRᵢ) = identity`: the key
/// terms are grouped by signer index (no lookups) and taken from the tables, so per
/// signature only R is decompressed and S, k computed. A failed batch falls back to
/// single checks, so every verdict equals [`VerifyingKey::verify`]'s (the tests assert
/// it on every edge-case vector and on random mixes).
///
/// [`KeyTable::verify_many`] draws its coefficients as [`verify_batch`] does (OS
/// randomness and the batch transcript): a verifier of data from elsewhere (a chain,
/// a sync peer) should not let the data's author predict them. [`KeySet`] uses the
/// same table with transcript-only coefficients, where the check must be a pure
/// function. About [`KEY_TABLE_BYTES_PER_KEY`] per key, plus one table for B.
pub struct KeyTable {
    keys: Vec<VerifyingKey>,
    /// Tables of `[B, A₀, …, Aₙ₋₁]`, in that order.
    tables: VartimeEdwardsPrecomputation,
}

/// How a batch draws its coefficients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Coefficients {
    /// From OS randomness and the batch transcript ([`batch_coefficients`]).
    Random,
    /// From the batch transcript alone: a pure function of the batch.
    Transcript,
}

impl KeyTable {
    /// The table of `keys` (member `i` is `keys[i]`), or `None` if there are more than
    /// [`KEY_TABLE_KEYS_MAX`].
    pub fn new(keys: &[VerifyingKey]) -> Option<Self> {
        (keys.len() <= KEY_TABLE_KEYS_MAX).then(|| Self::build(keys))
    }

    fn build(keys: &[VerifyingKey]) -> Self {
        let points = std::iter::once(ED25519_BASEPOINT_POINT).chain(keys.iter().map(|k| k.point));
        let tables = VartimeEdwardsPrecomputation::new(points);
        assert_eq!(tables.len(), keys.len() + 1, "tables of B and every key");
        Self { keys: keys.to_vec(), tables }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Bytes of the tables, about (see [`KEY_TABLE_BYTES_PER_KEY`]).
    pub fn table_bytes(&self) -> usize {
        self.tables.len() * KEY_TABLE_BYTES_PER_KEY
    }

    /// Member `i`'s key.
    pub fn key(&self, i: usize) -> Option<&VerifyingKey> {
        self.keys.get(i)
    }

    /// One verdict per item, each equal to [`VerifyingKey::verify`]'s, split over
    /// `threads` OS threads in chunks of at most [`BATCH_ITEMS_MAX`] items, each one
    /// batch equation with random coefficients (as [`verify_batch`]).
    ///
    /// # Panics
    /// If an item names a signer outside the table (the caller maps signers to members).
    pub fn verify_many(&self, items: &[KeySetItem<'_>], threads: usize) -> Vec<Result<(), SigError>> {
        let signed = self.resolve(items);
        run_chunks(&signed, threads, |items, out| {
            self.verify_chunk(items, out, Coefficients::Random, |it, p| equation_holds(it.key, p))
        })
    }

    fn resolve<'a>(&'a self, items: &[KeySetItem<'a>]) -> Vec<SetSigned<'a>> {
        items
            .iter()
            .map(|it| {
                let key = self
                    .keys
                    .get(it.signer)
                    .unwrap_or_else(|| panic!("signer {} is not in the key set of {}", it.signer, self.keys.len()));
                SetSigned { signer: it.signer, key, msg: it.msg.parts(), sig: it.sig }
            })
            .collect()
    }

    /// Verifies one chunk as one batch equation, falling back to `single` per item.
    fn verify_chunk(
        &self,
        items: &[SetSigned<'_>],
        out: &mut [Result<(), SigError>],
        coefficients: Coefficients,
        single: impl Fn(&SetSigned<'_>, &Prepared) -> bool,
    ) {
        debug_assert_eq!(items.len(), out.len());
        let mut prepared = Vec::with_capacity(items.len());
        for (i, (item, slot)) in items.iter().zip(out.iter_mut()).enumerate() {
            match prepare(item.key, item.msg, item.sig) {
                Ok(p) => prepared.push((i, p)),
                Err(e) => *slot = Err(e),
            }
        }
        if prepared.len() > 1 {
            let z = match coefficients {
                Coefficients::Random => random_coefficients(items, &prepared),
                Coefficients::Transcript => coefficients_from([0u8; 32], items, &prepared),
            };
            if self.equation_holds(items, &prepared, z) {
                for (i, _) in &prepared {
                    out[*i] = Ok(());
                }
                return;
            }
        }
        for (i, p) in &prepared {
            out[*i] = if single(&items[*i], p) { Ok(()) } else { Err(SigError::Mismatch) };
        }
    }

    /// `[8](−(Σ zᵢSᵢ)B + Σ_j (Σ_{i: signer j} zᵢkᵢ)A_j + Σ zᵢRᵢ) = identity`, the key
    /// terms grouped by signer index. Members after the last signer of the batch get no
    /// term. Below [`PIPPENGER_POINTS_MIN`] points in all, B and the keys come from the
    /// precomputed tables (Straus); from it on, one Pippenger multiplication over B, the
    /// grouped keys and the R terms is faster, with the keys' points the table's.
    fn equation_holds(&self, items: &[SetSigned<'_>], prepared: &[(usize, Prepared)], z: Vec<Scalar>) -> bool {
        let last = prepared.iter().map(|(i, _)| items[*i].signer).max().unwrap_or(0);
        // Index 0 is B; member j is at j + 1; then the R terms.
        let mut scalars = vec![Scalar::ZERO; last + 2];
        scalars.reserve(prepared.len());
        let mut r_points = Vec::with_capacity(prepared.len());
        for ((i, p), z) in prepared.iter().zip(z) {
            scalars[0] -= z * p.s;
            scalars[items[*i].signer + 1] += z * p.k;
            scalars.push(z);
            r_points.push(p.r);
        }
        debug_assert!(last + 2 <= self.tables.len());
        let sum = if scalars.len() < PIPPENGER_POINTS_MIN {
            let (static_scalars, r_scalars) = scalars.split_at(last + 2);
            self.tables.vartime_mixed_multiscalar_mul(static_scalars, r_scalars, &r_points)
        } else {
            let points = std::iter::once(&ED25519_BASEPOINT_POINT)
                .chain(self.keys[..=last].iter().map(|k| &k.point))
                .chain(r_points.iter());
            EdwardsPoint::vartime_multiscalar_mul(&scalars, points)
        };
        sum.mul_by_cofactor().is_identity()
    }
}

impl fmt::Debug for KeyTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyTable").field("keys", &self.keys).finish()
    }
}

/// A [`KeySetItem`] with its key resolved.
struct SetSigned<'a> {
    signer: usize,
    key: &'a VerifyingKey,
    msg: [&'a [u8]; 3],
    sig: &'a Signature,
}

impl Signed for SetSigned<'_> {
    fn key(&self) -> &VerifyingKey {
        self.key
    }
    fn msg(&self) -> [&[u8]; 3] {
        self.msg
    }
    fn sig(&self) -> &Signature {
        self.sig
    }
}

/// Verifies a binary message signed with [`SecretKey::sign`].
pub fn verify(
    pk: &PublicKey,
    domain: Domain,
    chain_id: &[u8; 32],
    body: &[u8],
    sig: &Signature,
) -> Result<(), SigError> {
    VerifyingKey::new(pk)?.verify(domain, chain_id, body, sig)
}

/// Verifies a raw message (C2SP notes) under the same rule, without a domain prefix.
pub fn verify_raw(pk: &PublicKey, msg: &[u8], sig: &Signature) -> Result<(), SigError> {
    VerifyingKey::new(pk)?.verify_raw(msg, sig)
}

/// One signature to check in [`verify_batch`].
#[derive(Clone, Copy, Debug)]
pub struct BatchItem<'a> {
    pub key: &'a VerifyingKey,
    pub domain: Domain,
    pub chain_id: &'a [u8; 32],
    pub body: &'a [u8],
    pub sig: &'a Signature,
}

/// Verifies all items; returns one verdict per item, identical to [`verify`] on each.
/// Splits the work over `threads` OS threads, each verifying chunks of at most
/// [`BATCH_ITEMS_MAX`] items as one batch equation.
pub fn verify_batch(items: &[BatchItem<'_>], threads: usize) -> Vec<Result<(), SigError>> {
    verify_items(items, threads)
}

/// The machine's parallelism, at least 1.
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A signed message as the verifier sees it: the message is up to three parts hashed in
/// order (`tag, chain_id, body` or `msg, "", ""`), so nothing is concatenated.
trait Signed {
    fn key(&self) -> &VerifyingKey;
    fn msg(&self) -> [&[u8]; 3];
    fn sig(&self) -> &Signature;
}

impl Signed for BatchItem<'_> {
    fn key(&self) -> &VerifyingKey {
        self.key
    }
    fn msg(&self) -> [&[u8]; 3] {
        [self.domain.tag(), self.chain_id, self.body]
    }
    fn sig(&self) -> &Signature {
        self.sig
    }
}

/// A signature past the encoding checks (steps 1–3 of the rule).
struct Prepared {
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
}

/// Steps 1–3 of the rule, shared by the single and batch paths.
fn prepare(key: &VerifyingKey, msg: [&[u8]; 3], sig: &Signature) -> Result<Prepared, SigError> {
    let s = Option::from(Scalar::from_canonical_bytes(sig.s_bytes())).ok_or(SigError::NonCanonicalS)?;
    let r_bytes = sig.r_bytes();
    let r = CompressedEdwardsY(r_bytes).decompress().ok_or(SigError::BadR)?;
    let mut h = Sha512::new();
    h.update(r_bytes);
    h.update(key.bytes);
    msg.iter().for_each(|part| h.update(part));
    let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
    Ok(Prepared { r, s, k })
}

/// Step 4: the cofactored equation `[8]([S]B − [k]A − R) = identity`.
fn equation_holds(key: &VerifyingKey, p: &Prepared) -> bool {
    let sb_minus_ka = EdwardsPoint::vartime_double_scalar_mul_basepoint(&p.k, &-key.point, &p.s);
    (sb_minus_ka - p.r).mul_by_cofactor().is_identity()
}

fn verify_single(key: &VerifyingKey, msg: [&[u8]; 3], sig: &Signature) -> Result<(), SigError> {
    let p = prepare(key, msg, sig)?;
    if equation_holds(key, &p) { Ok(()) } else { Err(SigError::Mismatch) }
}

fn verify_items<T: Signed + Sync>(items: &[T], threads: usize) -> Vec<Result<(), SigError>> {
    run_chunks(items, threads, verify_chunk)
}

/// Runs `verify` over chunks of `items` (at most [`BATCH_ITEMS_MAX`] each) on up to
/// `threads` OS threads, this one included; one verdict per item.
fn run_chunks<T: Sync>(
    items: &[T],
    threads: usize,
    verify: impl Fn(&[T], &mut [Result<(), SigError>]) + Sync,
) -> Vec<Result<(), SigError>> {
    // Fail closed: every slot is overwritten below, but never default to valid.
    let mut out = vec![Err(SigError::Mismatch); items.len()];
    if items.is_empty() {
        return out;
    }
    let threads = threads.max(1);
    let chunk = items.len().div_ceil(threads).clamp(MIN_ITEMS_PER_THREAD, BATCH_ITEMS_MAX);
    let workers = threads.min(items.len().div_ceil(chunk));
    // Chunks are handed out on demand so a chunk that falls back to single checks does
    // not leave the other threads idle.
    let queue = Mutex::new(items.chunks(chunk).zip(out.chunks_mut(chunk)));
    let drain = || {
        loop {
            let next = queue.lock().unwrap_or_else(PoisonError::into_inner).next();
            let Some((items, out)) = next else { break };
            verify(items, out);
        }
    };
    if workers <= 1 {
        drain();
    } else {
        std::thread::scope(|scope| {
            for _ in 1..workers {
                // If a thread cannot be spawned the others, this one included, drain
                // the queue anyway: only speed is lost.
                let _ = std::thread::Builder::new().spawn_scoped(scope, drain);
            }
            drain();
        });
    }
    out
}

/// Verifies one chunk as a single batch equation, falling back to single checks.
fn verify_chunk<T: Signed>(items: &[T], out: &mut [Result<(), SigError>]) {
    debug_assert_eq!(items.len(), out.len());
    debug_assert!(items.len() <= BATCH_ITEMS_MAX);
    let mut prepared = Vec::with_capacity(items.len());
    for (i, (item, slot)) in items.iter().zip(out.iter_mut()).enumerate() {
        match prepare(item.key(), item.msg(), item.sig()) {
            Ok(p) => prepared.push((i, p)),
            Err(e) => *slot = Err(e),
        }
    }
    if prepared.len() > 1 && batch_equation_holds(items, &prepared) {
        for (i, _) in &prepared {
            out[*i] = Ok(());
        }
        return;
    }
    for (i, p) in &prepared {
        out[*i] = if equation_holds(items[*i].key(), p) { Ok(()) } else { Err(SigError::Mismatch) };
    }
}

/// `[8](−(Σ zᵢSᵢ)B + Σ zᵢRᵢ + Σ_A (Σ_{i: key A} zᵢkᵢ)A) = identity`, one multiscalar
/// multiplication of size n + keys + 1. Keys are grouped by their encoding (same bytes,
/// same point), which roughly halves the size when few members sign many messages.
fn batch_equation_holds<T: Signed>(items: &[T], prepared: &[(usize, Prepared)]) -> bool {
    let z = batch_coefficients(items, prepared);
    // n R terms, B, and the keys (16 is a typical member count).
    let mut scalars = Vec::with_capacity(prepared.len() + 1 + 16);
    let mut points = Vec::with_capacity(prepared.len() + 1 + 16);
    let mut key_slot: HashMap<[u8; 32], usize> = HashMap::new();
    let mut key_scalars: Vec<Scalar> = Vec::new();
    let mut key_points: Vec<EdwardsPoint> = Vec::new();
    let mut b_scalar = Scalar::ZERO;
    for ((i, p), z) in prepared.iter().zip(z) {
        b_scalar -= z * p.s;
        scalars.push(z);
        points.push(p.r);
        let key = items[*i].key();
        let slot = *key_slot.entry(key.bytes).or_insert_with(|| {
            key_scalars.push(Scalar::ZERO);
            key_points.push(key.point);
            key_points.len() - 1
        });
        key_scalars[slot] += z * p.k;
    }
    scalars.push(b_scalar);
    points.push(ED25519_BASEPOINT_POINT);
    scalars.extend(key_scalars);
    points.extend(key_points);
    debug_assert_eq!(scalars.len(), points.len());
    debug_assert_eq!(scalars.len(), prepared.len() + key_slot.len() + 1);
    EdwardsPoint::vartime_multiscalar_mul(&scalars, &points).mul_by_cofactor().is_identity()
}

/// Nonzero 128-bit coefficients zᵢ, one per prepared item. They come from a hash of OS
/// randomness and the whole batch (every S, key and k, which binds R and the message),
/// so an attacker can neither predict them nor choose items after seeing them; should
/// the OS source fail, the transcript alone still binds them (Fiat–Shamir, as dalek's
/// batch does), so verification never has to fail or panic for lack of randomness.
fn batch_coefficients<T: Signed>(items: &[T], prepared: &[(usize, Prepared)]) -> Vec<Scalar> {
    let mut seed = [0u8; 32];
    if getrandom::fill(&mut seed).is_err() {
        seed = [0u8; 32];
    }
    coefficients_from(seed, items, prepared)
}

/// Nonzero 128-bit coefficients zᵢ, one per prepared item, from OS randomness alone:
/// `zᵢ = SHA-512(tag || seed || block)`, four per block, with a fresh 256-bit seed per
/// batch drawn after the items are fixed and never revealed. That is the randomised
/// batch test itself (independent uniform coefficients, soundness error about 2⁻¹²⁸
/// per batch); hashing the transcript in as well ([`batch_coefficients`]) adds nothing
/// while the OS source works and costs one SHA-512 block per item (4 % of verifying the
/// 1M chain, docs/BENCHMARKS.md). Should the OS source fail, the transcript binds the
/// coefficients as in [`batch_coefficients`].
fn random_coefficients<T: Signed>(items: &[T], prepared: &[(usize, Prepared)]) -> Vec<Scalar> {
    let mut seed = [0u8; 32];
    if getrandom::fill(&mut seed).is_err() {
        return coefficients_from([0u8; 32], items, prepared);
    }
    coefficient_stream(Sha512::new().chain_update(BATCH_Z_TAG).chain_update(seed).finalize().into(), prepared.len())
}

/// The coefficients for `seed` and the batch transcript (see [`batch_coefficients`]).
fn coefficients_from<T: Signed>(seed: [u8; 32], items: &[T], prepared: &[(usize, Prepared)]) -> Vec<Scalar> {
    let mut transcript = Sha512::new();
    transcript.update(BATCH_Z_TAG);
    transcript.update(seed);
    for (i, p) in prepared {
        transcript.update(items[*i].sig().0);
        transcript.update(items[*i].key().bytes);
        transcript.update(p.k.as_bytes());
    }
    coefficient_stream(transcript.finalize().into(), prepared.len())
}

/// `count` nonzero 128-bit coefficients expanded from `root`: four per SHA-512 block.
fn coefficient_stream(root: [u8; 64], count: usize) -> Vec<Scalar> {
    (0u64..)
        .flat_map(|block| {
            let out: [u8; 64] = Sha512::new().chain_update(root).chain_update(block.to_le_bytes()).finalize().into();
            std::array::from_fn::<u128, 4, _>(|j| u128::from_le_bytes(std::array::from_fn(|b| out[16 * j + b])))
        })
        .take(count)
        // z = 0 would drop an item from the equation; max(1) costs nothing.
        .map(|z| Scalar::from(z.max(1)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CHAIN: [u8; 32] = [7; 32];
    const OTHER_CHAIN: [u8; 32] = [8; 32];
    /// The group order ℓ, little-endian.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    /// A point of order 8 (C2SP CCTV low-order list).
    const T8: &str = "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a";
    /// Every encoding of every low-order point, canonical and not (C2SP CCTV).
    const LOW_ORDER: [&str; 14] = [
        "0000000000000000000000000000000000000000000000000000000000000000",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000080",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        T8,
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    ];
    /// The identity encoded with y = p + 1.
    const IDENTITY_Y_P1: &str = "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f";

    fn h32(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }
    fn h64(s: &str) -> [u8; 64] {
        hex::decode(s).unwrap().try_into().unwrap()
    }
    fn sig_of(r: [u8; 32], s: [u8; 32]) -> Signature {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&r);
        out[32..].copy_from_slice(&s);
        Signature(out)
    }
    fn point(hex: &str) -> EdwardsPoint {
        CompressedEdwardsY(h32(hex)).decompress().unwrap()
    }
    /// k computed independently of `prepare`: over the concatenated message.
    fn k_of(r: &[u8; 32], a: &[u8; 32], msg: &[u8]) -> Scalar {
        let h = Sha512::new().chain_update(r).chain_update(a).chain_update(msg);
        Scalar::from_bytes_mod_order_wide(&h.finalize().into())
    }
    fn bytes_not_a_point() -> [u8; 32] {
        (2u8..)
            .map(|y| {
                let mut b = [0u8; 32];
                b[0] = y;
                b
            })
            .find(|b| CompressedEdwardsY(*b).decompress().is_none())
            .unwrap()
    }

    /// Valid items that surround an item under test in a batch.
    fn honest(n: usize) -> Vec<(VerifyingKey, Vec<u8>, Signature)> {
        (0..n)
            .map(|i| {
                let sk = SecretKey::from_seed([i as u8 % 3 + 1; 32]);
                let body = format!("honest body {i}").into_bytes();
                let sig = sk.sign(Domain::Vote, &CHAIN, &body);
                (VerifyingKey::new(&sk.public()).unwrap(), body, sig)
            })
            .collect()
    }

    /// The single verdict, after asserting the batch path gives the same one (item at
    /// index 3 of 12, the rest valid, threads 1 and 2).
    fn both(pk: &PublicKey, domain: Domain, chain: &[u8; 32], body: &[u8], sig: &Signature) -> Result<(), SigError> {
        let single = verify(pk, domain, chain, body, sig);
        let Ok(vk) = VerifyingKey::new(pk) else {
            assert_eq!(single, Err(SigError::BadPublicKey));
            return single;
        };
        assert_eq!(vk.verify(domain, chain, body, sig), single);
        assert_eq!(PrecomputedKey::new(&vk).verify(domain, chain, body, sig), single, "precomputed key disagrees");
        let in_set = key_set_verdict(&vk, SignedBytes::Binary { domain, chain_id: chain, body }, sig);
        assert_eq!(in_set, single, "key set disagrees");
        let h = honest(11);
        let mut items: Vec<BatchItem> = h
            .iter()
            .map(|(key, body, sig)| BatchItem { key, domain: Domain::Vote, chain_id: &CHAIN, body, sig })
            .collect();
        items.insert(3, BatchItem { key: &vk, domain, chain_id: chain, body, sig });
        for threads in [1, 2] {
            let verdicts = verify_batch(&items, threads);
            assert_eq!(verdicts[3], single, "batch disagrees, threads={threads}");
            for (i, v) in verdicts.iter().enumerate() {
                assert!(i == 3 || v.is_ok(), "honest item {i} rejected");
            }
        }
        single
    }

    /// The keys of `honest`, in seed order (item i is signed by key i % 3).
    fn honest_keys() -> Vec<VerifyingKey> {
        (1..=3u8).map(|s| VerifyingKey::new(&SecretKey::from_seed([s; 32]).public()).unwrap()).collect()
    }

    /// `honest` items as signed by members 0, 2 and 3 in turn (the keys of [`honest_keys`]
    /// around member 1 in [`key_set_verdict`]'s set).
    fn honest_items(h: &[(VerifyingKey, Vec<u8>, Signature)]) -> Vec<KeySetItem<'_>> {
        const MEMBER: [usize; 3] = [0, 2, 3];
        h.iter()
            .enumerate()
            .map(|(i, (_, body, sig))| KeySetItem {
                signer: MEMBER[i % 3],
                msg: SignedBytes::Binary { domain: Domain::Vote, chain_id: &CHAIN, body },
                sig,
            })
            .collect()
    }

    /// The verdict of a [`KeySet`] on one signature under `vk` (member 1 of 4): alone, in
    /// a pair and at index 3 of 12 beside honest items, asserting the three agree and
    /// every honest item passes.
    fn key_set_verdict(vk: &VerifyingKey, msg: SignedBytes<'_>, sig: &Signature) -> Result<(), SigError> {
        let hk = honest_keys();
        let set = KeySet::new(&[hk[0], *vk, hk[1], hk[2]]);
        assert_eq!(set.len(), 4);
        let h = honest(11);
        let mut items = honest_items(&h);
        items.insert(3, KeySetItem { signer: 1, msg, sig });
        let all = set.verify_many(&items);
        for (i, v) in all.iter().enumerate() {
            assert!(i == 3 || v.is_ok(), "honest item {i} rejected by the key set");
        }
        assert_eq!(set.verify_many(&items[3..4]), vec![all[3]], "alone");
        assert_eq!(set.verify_many(&items[2..4]), vec![Ok(()), all[3]], "in a pair");
        // The same set as a key table (random coefficients, as the chain verifier uses it).
        let table = KeyTable::new(&[hk[0], *vk, hk[1], hk[2]]).unwrap();
        for threads in [1, 2] {
            assert_eq!(table.verify_many(&items, threads), all, "key table, threads={threads}");
        }
        assert_eq!(table.verify_many(&items[3..4], 1), vec![all[3]], "key table, alone");
        assert_eq!(table.verify_many(&items[2..4], 1), vec![Ok(()), all[3]], "key table, in a pair");
        // Beside enough honest items that the equation takes Pippenger, not the tables.
        let many = honest(PIPPENGER_POINTS_MIN);
        let mut big = honest_items(&many);
        big.insert(100, KeySetItem { signer: 1, msg, sig });
        let verdicts = table.verify_many(&big, 1);
        assert_eq!(verdicts[100], all[3], "key table, Pippenger");
        assert!(verdicts.iter().enumerate().all(|(i, v)| i == 100 || v.is_ok()), "honest item rejected");
        all[3]
    }

    struct RawItem<'a> {
        key: VerifyingKey,
        msg: &'a [u8],
        sig: Signature,
    }
    impl Signed for RawItem<'_> {
        fn key(&self) -> &VerifyingKey {
            &self.key
        }
        fn msg(&self) -> [&[u8]; 3] {
            [self.msg, &[], &[]]
        }
        fn sig(&self) -> &Signature {
            &self.sig
        }
    }

    /// Like `both`, for raw messages (through the shared batch engine).
    fn both_raw(pk: &PublicKey, msg: &[u8], sig: &Signature) -> Result<(), SigError> {
        let single = verify_raw(pk, msg, sig);
        let Ok(key) = VerifyingKey::new(pk) else {
            assert_eq!(single, Err(SigError::BadPublicKey));
            return single;
        };
        assert_eq!(PrecomputedKey::new(&key).verify_raw(msg, sig), single, "precomputed key disagrees");
        assert_eq!(key_set_verdict(&key, SignedBytes::Raw(msg), sig), single, "key set disagrees");
        let sk = SecretKey::from_seed([9; 32]);
        let vk = VerifyingKey::new(&sk.public()).unwrap();
        let mut items: Vec<RawItem> =
            (0..11).map(|_| RawItem { key: vk, msg: b"note text\n", sig: sk.sign_raw(b"note text\n") }).collect();
        items.insert(3, RawItem { key, msg, sig: *sig });
        for threads in [1, 2] {
            let verdicts = verify_items(&items, threads);
            assert_eq!(verdicts[3], single, "batch disagrees, threads={threads}");
            assert_eq!(verdicts.iter().filter(|v| v.is_ok()).count(), 11 + single.is_ok() as usize);
        }
        single
    }

    #[test]
    fn valid_signature_accepted_wrong_message_or_key_rejected() {
        let sk = SecretKey::from_seed([1; 32]);
        let pk = sk.public();
        let sig = sk.sign(Domain::Attestation, &CHAIN, b"block 1");
        assert_eq!(both(&pk, Domain::Attestation, &CHAIN, b"block 1", &sig), Ok(()));
        assert_eq!(both(&pk, Domain::Attestation, &CHAIN, b"block 2", &sig), Err(SigError::Mismatch));
        let other = SecretKey::from_seed([2; 32]).public();
        assert_eq!(both(&other, Domain::Attestation, &CHAIN, b"block 1", &sig), Err(SigError::Mismatch));
        // The signed bytes are exactly tag || chain_id || body.
        let msg = signing_message(Domain::Attestation, &CHAIN, b"block 1");
        assert_eq!(sk.sign_raw(&msg), sig);
        assert_eq!(verify_raw(&pk, &msg, &sig), Ok(()));
    }

    #[test]
    fn flipped_bits() {
        let sk = SecretKey::from_seed([1; 32]);
        let (pk, body) = (sk.public(), b"flip".as_slice());
        let sig = sk.sign(Domain::Vote, &CHAIN, body);
        let flip = |byte: usize, bit: u8| {
            let mut s = sig;
            s.0[byte] ^= 1 << bit;
            both(&pk, Domain::Vote, &CHAIN, body, &s)
        };
        assert_eq!(flip(32, 0), Err(SigError::Mismatch), "S low bit");
        assert_eq!(flip(63, 7), Err(SigError::NonCanonicalS), "S >= 2^255");
        assert_eq!(flip(31, 7), Err(SigError::Mismatch), "R sign bit: -R");
        for bit in 0..8 {
            assert!(matches!(flip(0, bit), Err(SigError::Mismatch | SigError::BadR)));
        }
    }

    #[test]
    fn non_canonical_s_rejected() {
        let sk = SecretKey::from_seed([3; 32]);
        let sig = sk.sign(Domain::Proposal, &CHAIN, b"p");
        // S + ℓ: same value mod ℓ, still < 2^256.
        let mut s = sig;
        let mut carry = 0u16;
        for (byte, l) in s.0[32..].iter_mut().zip(L) {
            let v = u16::from(*byte) + u16::from(l) + carry;
            *byte = v as u8;
            carry = v >> 8;
        }
        assert_eq!(carry, 0);
        assert_eq!(both(&sk.public(), Domain::Proposal, &CHAIN, b"p", &s), Err(SigError::NonCanonicalS));
    }

    #[test]
    fn small_order_key_and_r_accepted_and_key_is_weak() {
        let identity = PublicKey(h32(LOW_ORDER[4]));
        let sig = sig_of(h32(LOW_ORDER[4]), [0; 32]);
        for body in [b"anything".as_slice(), b"else"] {
            assert_eq!(both(&identity, Domain::Vote, &CHAIN, body, &sig), Ok(()));
        }
        assert!(identity.is_weak());
        assert!(identity.is_canonical());
        // All 14×14 low-order encodings with S = 0 are accepted (ZIP-215); with S = 1
        // the left side has a prime-order component and nothing cancels it.
        for a in LOW_ORDER {
            let pk = PublicKey(h32(a));
            assert!(pk.is_weak());
            for r in LOW_ORDER {
                let pre = PrecomputedKey::new(&VerifyingKey::new(&pk).unwrap());
                let zero = sig_of(h32(r), [0; 32]);
                assert_eq!(verify(&pk, Domain::Vote, &CHAIN, b"m", &zero), Ok(()));
                assert_eq!(pre.verify(Domain::Vote, &CHAIN, b"m", &zero), Ok(()));
                let mut one = [0u8; 32];
                one[0] = 1;
                let one = sig_of(h32(r), one);
                assert_eq!(verify(&pk, Domain::Vote, &CHAIN, b"m", &one), Err(SigError::Mismatch));
                assert_eq!(pre.verify(Domain::Vote, &CHAIN, b"m", &one), Err(SigError::Mismatch));
            }
        }
        // And the batch path agrees on all 196 at once.
        let keys: Vec<VerifyingKey> =
            LOW_ORDER.iter().map(|a| VerifyingKey::new(&PublicKey(h32(a))).unwrap()).collect();
        let sigs: Vec<Signature> = LOW_ORDER.iter().map(|r| sig_of(h32(r), [0; 32])).collect();
        let items: Vec<BatchItem> = keys
            .iter()
            .flat_map(|key| {
                sigs.iter().map(move |sig| BatchItem { key, domain: Domain::Vote, chain_id: &CHAIN, body: b"m", sig })
            })
            .collect();
        assert!(verify_batch(&items, 2).iter().all(Result::is_ok));
        // The key-set batch equation too, without falling back.
        let set = KeySet::new(&keys);
        let set_items: Vec<KeySetItem> = (0..keys.len())
            .flat_map(|signer| {
                let msg = SignedBytes::Binary { domain: Domain::Vote, chain_id: &CHAIN, body: b"m" };
                sigs.iter().map(move |sig| KeySetItem { signer, msg, sig })
            })
            .collect();
        assert!(set.verify_many(&set_items).iter().all(Result::is_ok));
        let (signed, prepared) = set_prepared(&set, &set_items);
        assert!(set.set_equation_holds(&signed, &prepared));
        // And a key table's, with random coefficients, over and over.
        let table = KeyTable::new(&keys).unwrap();
        for _ in 0..4 {
            let z = random_coefficients(&signed, &prepared);
            assert!(table.equation_holds(&signed, &prepared, z));
        }
        assert!(table.verify_many(&set_items, 2).iter().all(Result::is_ok));
    }

    /// A key set's items resolved and prepared, as its batch equation takes them.
    fn set_prepared<'a>(set: &'a KeySet, items: &[KeySetItem<'a>]) -> (Vec<SetSigned<'a>>, Vec<(usize, Prepared)>) {
        let signed = set.table.resolve(items);
        let prepared = signed.iter().enumerate().map(|(i, s)| (i, prepare(s.key, s.msg, s.sig).unwrap())).collect();
        (signed, prepared)
    }

    #[test]
    fn honest_keys_are_strong_and_canonical() {
        for i in 0..8u8 {
            let pk = SecretKey::from_seed([i; 32]).public();
            assert!(!pk.is_weak() && pk.is_canonical());
        }
        assert!(PublicKey(bytes_not_a_point()).is_weak());
        assert!(!PublicKey(bytes_not_a_point()).is_canonical());
    }

    #[test]
    fn mixed_order_r_and_a_accepted_where_cofactorless_rejects() {
        let (a, r) = (Scalar::from(12345u64), Scalar::from(67890u64));
        let a_pt = a * ED25519_BASEPOINT_POINT;
        let pk = PublicKey(a_pt.compress().0);
        let r_bytes = (r * ED25519_BASEPOINT_POINT + point(T8)).compress().0;
        let msg = signing_message(Domain::Vote, &CHAIN, b"mixed");
        let s = r + k_of(&r_bytes, &pk.0, &msg) * a;
        let sig = sig_of(r_bytes, s.to_bytes());
        assert_eq!(both(&pk, Domain::Vote, &CHAIN, b"mixed", &sig), Ok(()));
        // This is the disagreement the rule removes: dalek's cofactorless check says no.
        use ed25519_dalek::Verifier;
        let dalek = ed25519_dalek::VerifyingKey::from_bytes(&pk.0).unwrap();
        assert!(dalek.verify(&msg, &ed25519_dalek::Signature::from_bytes(&sig.0)).is_err());

        // Mixed-order key A = aB + T: 8·k·T vanishes too.
        let pk = PublicKey((a_pt + point(T8)).compress().0);
        assert!(!pk.is_weak());
        let r_bytes = (r * ED25519_BASEPOINT_POINT).compress().0;
        let s = r + k_of(&r_bytes, &pk.0, &msg) * a;
        assert_eq!(both(&pk, Domain::Vote, &CHAIN, b"mixed", &sig_of(r_bytes, s.to_bytes())), Ok(()));
    }

    #[test]
    fn non_canonical_encodings_follow_zip215_and_hash_bytes_as_given() {
        let (a, r) = (Scalar::from(424242u64), Scalar::from(777u64));
        let msg = signing_message(Domain::Attestation, &CHAIN, b"nc");
        // A = identity encoded with y = p + 1; R honest, S = r: accepted, key flagged.
        let weak = PublicKey(h32(IDENTITY_Y_P1));
        assert!(weak.is_weak() && !weak.is_canonical());
        let r_bytes = (r * ED25519_BASEPOINT_POINT).compress().0;
        assert_eq!(both(&weak, Domain::Attestation, &CHAIN, b"nc", &sig_of(r_bytes, r.to_bytes())), Ok(()));
        // R = identity encoded with y = p + 1 under an honest key: k over R as given
        // verifies; k over the canonical re-encoding of R must not.
        let pk = PublicKey((a * ED25519_BASEPOINT_POINT).compress().0);
        let r_nc = h32(IDENTITY_Y_P1);
        let r_canon = point(IDENTITY_Y_P1).compress().0;
        assert_ne!(r_nc, r_canon);
        let s_given = k_of(&r_nc, &pk.0, &msg) * a;
        let s_reenc = k_of(&r_canon, &pk.0, &msg) * a;
        assert_eq!(both(&pk, Domain::Attestation, &CHAIN, b"nc", &sig_of(r_nc, s_given.to_bytes())), Ok(()));
        assert_eq!(
            both(&pk, Domain::Attestation, &CHAIN, b"nc", &sig_of(r_nc, s_reenc.to_bytes())),
            Err(SigError::Mismatch)
        );
        assert_eq!(both(&pk, Domain::Attestation, &CHAIN, b"nc", &sig_of(r_canon, s_reenc.to_bytes())), Ok(()));
    }

    #[test]
    fn undecodable_points() {
        let sk = SecretKey::from_seed([5; 32]);
        let sig = sk.sign(Domain::Vote, &CHAIN, b"x");
        let bad = bytes_not_a_point();
        let bad_r = sig_of(bad, sig.s_bytes());
        assert_eq!(both(&sk.public(), Domain::Vote, &CHAIN, b"x", &bad_r), Err(SigError::BadR));
        assert_eq!(both(&PublicKey(bad), Domain::Vote, &CHAIN, b"x", &sig), Err(SigError::BadPublicKey));
        assert_eq!(VerifyingKey::new(&PublicKey(bad)).unwrap_err(), SigError::BadPublicKey);
        assert_eq!(verify_raw(&PublicKey(bad), b"x", &sig), Err(SigError::BadPublicKey));
    }

    #[test]
    fn domain_and_chain_separation() {
        let sk = SecretKey::from_seed([6; 32]);
        let pk = sk.public();
        let sig = sk.sign(Domain::Attestation, &CHAIN, b"same body");
        assert_eq!(both(&pk, Domain::Attestation, &CHAIN, b"same body", &sig), Ok(()));
        assert_eq!(both(&pk, Domain::Vote, &CHAIN, b"same body", &sig), Err(SigError::Mismatch));
        assert_eq!(both(&pk, Domain::Proposal, &CHAIN, b"same body", &sig), Err(SigError::Mismatch));
        assert_eq!(both(&pk, Domain::Attestation, &OTHER_CHAIN, b"same body", &sig), Err(SigError::Mismatch));
        assert_eq!(verify_raw(&pk, b"same body", &sig), Err(SigError::Mismatch));
        let tags = [Domain::Attestation, Domain::Vote, Domain::Proposal].map(Domain::tag);
        for (i, t) in tags.iter().enumerate() {
            assert!(t.starts_with(b"credence/"));
            assert_eq!(t.iter().position(|&b| b == 0), Some(t.len() - 1), "one NUL, last");
            for (j, u) in tags.iter().enumerate() {
                assert!(i == j || !u.starts_with(t), "tags must be prefix-free");
            }
        }
    }

    #[test]
    fn rfc8032_vectors() {
        let cases = [
            (
                "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
                "",
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            ),
            (
                "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
                "72",
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
            ),
        ];
        for (seed, pk, msg, sig) in cases {
            let (pk, msg, sig) = (PublicKey(h32(pk)), hex::decode(msg).unwrap(), Signature(h64(sig)));
            let sk = SecretKey::from_seed(h32(seed));
            assert_eq!(sk.public(), pk);
            assert_eq!(sk.sign_raw(&msg), sig);
            assert_eq!(both_raw(&pk, &msg, &sig), Ok(()));
            assert_eq!(both_raw(&pk, b"other", &sig), Err(SigError::Mismatch));
        }
    }

    /// A selection from C2SP CCTV ed25519vectors.json. ZIP-215 accepts every vector
    /// except `reencoded_k` ones whose key is not low-order (k hashed over R as given).
    #[test]
    fn cctv_edge_vectors() {
        let k10 = "10eb7c3acfb2bed3e0d6ab89bf5a3d6afddd1176ce4812e38d9fd485058fdb1f";
        let keca = "eca00a6a1b1f522ff2217691059915b097b73bc69bef396c36ddcd559b79e2b0";
        let zero = "0000000000000000000000000000000000000000000000000000000000000000";
        let cases: [(u32, &str, &str, &str, bool); 16] = [
            (
                0,
                zero,
                "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
                "ed25519vectors 3",
                true,
            ),
            (
                6,
                k10,
                "36684ea91032ba5b1dbab2d02f4debc74c3327f2b3802e2e4d371aa42b12b56bc02e2b9e63e385c058bf62b14b3a2b29ccefe8e38ddb536bc3f9865320a3d801",
                "ed25519vectors 10",
                true,
            ),
            (
                7,
                k10,
                "36684ea91032ba5b1dbab2d02f4debc74c3327f2b3802e2e4d371aa42b12b56bbbfd00bd9c259d8d222d15e67a3d8228585050dbb9b9585be20d8fadc721da03",
                "ed25519vectors",
                true,
            ),
            (
                14,
                zero,
                "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f0000000000000000000000000000000000000000000000000000000000000000",
                "ed25519vectors 3",
                true,
            ),
            (
                17,
                k10,
                "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7fad7a355469b5c87e550469f6b2de409ee723acd584bf35f86b80c384e8ceb702",
                "ed25519vectors 3",
                true,
            ),
            (
                18,
                k10,
                "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f5e176f12cfb0d4e6eb6929b19ae4c998ef05c1c2cf628a9b1fa1c21312627108",
                "ed25519vectors 7",
                false,
            ),
            (
                19,
                k10,
                "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f9472a69cd9a701a50d130ed52189e2455b23767db52cacb8716fb896ffeeac09",
                "ed25519vectors 3",
                false,
            ),
            (
                20,
                "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
                "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f0000000000000000000000000000000000000000000000000000000000000000",
                "ed25519vectors 2",
                true,
            ),
            (
                524,
                keca,
                "b797b156efcd45a4e2454d2fd0b21438b3ccd80d4c7fd1d1b2c8e55bd4ed4a9450b2750dbb4ca36a55e8561ae5f39235db090de324b3c60126ad1f5c1d1ae30a",
                "ed25519vectors 2",
                true,
            ),
            (
                530,
                keca,
                "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffbf79045665b39525ad5ec9e9ade82bd5bc33fb049b13503dfb97aacc4ad0ae0e",
                "ed25519vectors 31",
                false,
            ),
            (
                539,
                keca,
                "b62cf890de42c413b11b1411c9f01f1c4d77aa87ef182258d1251f69af2a3506ceeddc384993fffb6ea69400f4a1529ddbd0f43c6322bf53d9ec144e9127680d",
                "ed25519vectors 2",
                true,
            ),
            (
                542,
                keca,
                "0100000000000000000000000000000000000000000000000000000000000080cdd1248e749ceac01f109bce3ce41507e49ba65d6a42baa443d77aa63113cd0f",
                "ed25519vectors 18",
                true,
            ),
            (
                544,
                keca,
                "010000000000000000000000000000000000000000000000000000000000008092a325759ff830a4d19c0f0cce6364311dc1e7e4bc1efaa8a54632082c05cf0f",
                "ed25519vectors 5",
                false,
            ),
            (
                548,
                keca,
                "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7fd4859f5c56a843a885bd86045dfcda0bf117f95c07c298f45664ad2f7f043106",
                "ed25519vectors 2",
                true,
            ),
            (
                550,
                keca,
                "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f92a325759ff830a4d19c0f0cce6364311dc1e7e4bc1efaa8a54632082c05cf0f",
                "ed25519vectors 5",
                false,
            ),
            (
                554,
                keca,
                "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff2b502e797c4ce38333e3166e4e102483cd6ea5eea07bd0347a85d303c64e8b07",
                "ed25519vectors 1",
                true,
            ),
        ];
        for (number, key, sig, msg, accept) in cases {
            let expected = if accept { Ok(()) } else { Err(SigError::Mismatch) };
            let got = both_raw(&PublicKey(h32(key)), msg.as_bytes(), &Signature(h64(sig)));
            assert_eq!(got, expected, "CCTV vector {number}");
        }
    }

    #[test]
    fn large_batch_over_several_chunks_matches_single() {
        let n = 2 * BATCH_ITEMS_MAX + 5;
        let keys: Vec<SecretKey> = (0..16u8).map(|i| SecretKey::from_seed([i; 32])).collect();
        let vks: Vec<VerifyingKey> = keys.iter().map(|k| VerifyingKey::new(&k.public()).unwrap()).collect();
        let bodies: Vec<Vec<u8>> = (0..n).map(|i| (i as u64).to_le_bytes().to_vec()).collect();
        let mut sigs: Vec<Signature> = (0..n).map(|i| keys[i % 16].sign(Domain::Vote, &CHAIN, &bodies[i])).collect();
        let bad = [5, BATCH_ITEMS_MAX + 1, n - 1];
        for &i in &bad {
            sigs[i].0[40] ^= 1;
        }
        let items: Vec<BatchItem> = (0..n)
            .map(|i| BatchItem {
                key: &vks[i % 16],
                domain: Domain::Vote,
                chain_id: &CHAIN,
                body: &bodies[i],
                sig: &sigs[i],
            })
            .collect();
        let table = KeyTable::new(&vks).unwrap();
        let table_items: Vec<KeySetItem> = (0..n)
            .map(|i| KeySetItem {
                signer: i % 16,
                msg: SignedBytes::Binary { domain: Domain::Vote, chain_id: &CHAIN, body: &bodies[i] },
                sig: &sigs[i],
            })
            .collect();
        for threads in [1, 2, 3] {
            let verdicts = verify_batch(&items, threads);
            let from_table = table.verify_many(&table_items, threads);
            for (i, (v, t)) in verdicts.iter().zip(&from_table).enumerate() {
                let expected = if bad.contains(&i) { Err(SigError::Mismatch) } else { Ok(()) };
                assert_eq!(*v, expected, "item {i}, threads {threads}");
                assert_eq!(*t, expected, "key table: item {i}, threads {threads}");
            }
        }
        assert!(table.verify_many(&[], 2).is_empty());
        assert!(verify_batch(&[], 2).is_empty());
    }

    /// Errors crafted to cancel in an unweighted sum (S₁ + 1, S₂ − 1) must not pass:
    /// this is what the random coefficients are for.
    #[test]
    fn cancelling_errors_are_caught() {
        let sk = SecretKey::from_seed([11; 32]);
        let vk = VerifyingKey::new(&sk.public()).unwrap();
        let bodies: Vec<Vec<u8>> = (0..16u8).map(|i| vec![i]).collect();
        let mut sigs: Vec<Signature> = bodies.iter().map(|b| sk.sign(Domain::Vote, &CHAIN, b)).collect();
        let shift = |sig: &mut Signature, d: Scalar| {
            let s = Scalar::from_canonical_bytes(sig.s_bytes()).unwrap() + d;
            sig.0[32..].copy_from_slice(s.as_bytes());
        };
        shift(&mut sigs[2], Scalar::ONE);
        shift(&mut sigs[9], -Scalar::ONE);
        let items: Vec<BatchItem> = (0..16)
            .map(|i| BatchItem { key: &vk, domain: Domain::Vote, chain_id: &CHAIN, body: &bodies[i], sig: &sigs[i] })
            .collect();
        let verdicts = verify_batch(&items, 1);
        for (i, v) in verdicts.iter().enumerate() {
            assert_eq!(v.is_ok(), i != 2 && i != 9, "item {i}");
        }
    }

    /// The batch equation itself (not just its fallback) is cofactored: valid
    /// signatures with torsion components pass it without falling back.
    #[test]
    fn batch_equation_accepts_torsion_components() {
        let (a, r) = (Scalar::from(99u64), Scalar::from(1234u64));
        let a_pt = a * ED25519_BASEPOINT_POINT + point(T8);
        let vk = VerifyingKey::new(&PublicKey(a_pt.compress().0)).unwrap();
        let r_bytes = (r * ED25519_BASEPOINT_POINT + point(T8)).compress().0;
        let bodies: Vec<[u8; 1]> = (0..8u8).map(|i| [i]).collect();
        let sigs: Vec<Signature> = bodies
            .iter()
            .map(|b| {
                let msg = signing_message(Domain::Vote, &CHAIN, b);
                sig_of(r_bytes, (r + k_of(&r_bytes, &vk.bytes, &msg) * a).to_bytes())
            })
            .collect();
        let items: Vec<BatchItem> = (0..8)
            .map(|i| BatchItem { key: &vk, domain: Domain::Vote, chain_id: &CHAIN, body: &bodies[i], sig: &sigs[i] })
            .collect();
        let prepared: Vec<(usize, Prepared)> =
            items.iter().enumerate().map(|(i, it)| (i, prepare(it.key(), it.msg(), it.sig()).unwrap())).collect();
        // A cofactorless equation would pass only when Σzᵢ·(torsion) happens to vanish.
        for _ in 0..4 {
            assert!(batch_equation_holds(&items, &prepared));
        }
        assert!(verify_batch(&items, 1).iter().all(Result::is_ok));
    }

    /// The key set's batch equation catches errors crafted to cancel, accepts torsion
    /// components without falling back, and is deterministic (transcript-only coefficients).
    #[test]
    fn key_set_batch_equation() {
        let sk = SecretKey::from_seed([11; 32]);
        let (a, r) = (Scalar::from(99u64), Scalar::from(1234u64));
        let torsion_key =
            VerifyingKey::new(&PublicKey((a * ED25519_BASEPOINT_POINT + point(T8)).compress().0)).unwrap();
        let set = KeySet::new(&[VerifyingKey::new(&sk.public()).unwrap(), torsion_key]);
        let bodies: Vec<Vec<u8>> = (0..16u8).map(|i| vec![i]).collect();
        let r_bytes = (r * ED25519_BASEPOINT_POINT + point(T8)).compress().0;
        let sigs: Vec<Signature> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if i % 2 == 0 {
                    sk.sign(Domain::Vote, &CHAIN, b)
                } else {
                    let msg = signing_message(Domain::Vote, &CHAIN, b);
                    sig_of(r_bytes, (r + k_of(&r_bytes, &torsion_key.bytes, &msg) * a).to_bytes())
                }
            })
            .collect();
        let items_of = |sigs: &[Signature]| -> Vec<(usize, Vec<u8>, Signature)> {
            (0..16).map(|i| (i % 2, bodies[i].clone(), sigs[i])).collect()
        };
        let check = |owned: &[(usize, Vec<u8>, Signature)]| {
            let items: Vec<KeySetItem> = owned
                .iter()
                .map(|(signer, body, sig)| KeySetItem {
                    signer: *signer,
                    msg: SignedBytes::Binary { domain: Domain::Vote, chain_id: &CHAIN, body },
                    sig,
                })
                .collect();
            let (signed, prepared) = set_prepared(&set, &items);
            (set.verify_many(&items), set.set_equation_holds(&signed, &prepared))
        };
        let (verdicts, holds) = check(&items_of(&sigs));
        assert!(holds, "valid items with torsion components pass the equation itself");
        assert!(verdicts.iter().all(Result::is_ok));
        let shift = |sig: &mut Signature, d: Scalar| {
            let s = Scalar::from_canonical_bytes(sig.s_bytes()).unwrap() + d;
            sig.0[32..].copy_from_slice(s.as_bytes());
        };
        // A key table's equation with random coefficients, on both multiplication paths
        // (16 items: the tables; 16 + 200 items: Pippenger).
        let table = KeyTable::new(&[VerifyingKey::new(&sk.public()).unwrap(), torsion_key]).unwrap();
        let table_holds = |owned: &[(usize, Vec<u8>, Signature)], pad: usize| {
            let pad_bodies: Vec<Vec<u8>> = (0..pad).map(|i| format!("pad {i}").into_bytes()).collect();
            let pad_sigs: Vec<Signature> = pad_bodies.iter().map(|b| sk.sign(Domain::Vote, &CHAIN, b)).collect();
            let items: Vec<KeySetItem> = owned
                .iter()
                .map(|(signer, body, sig)| (*signer, body.as_slice(), sig))
                .chain(pad_bodies.iter().zip(&pad_sigs).map(|(b, s)| (0, b.as_slice(), s)))
                .map(|(signer, body, sig)| KeySetItem {
                    signer,
                    msg: SignedBytes::Binary { domain: Domain::Vote, chain_id: &CHAIN, body },
                    sig,
                })
                .collect();
            let signed = table.resolve(&items);
            let prepared: Vec<(usize, Prepared)> =
                signed.iter().enumerate().map(|(i, s)| (i, prepare(s.key, s.msg, s.sig).unwrap())).collect();
            table.equation_holds(&signed, &prepared, random_coefficients(&signed, &prepared))
        };
        for pad in [0, 200] {
            assert!(table_holds(&items_of(&sigs), pad), "valid items with torsion components, pad {pad}");
        }
        let mut shifted = sigs.clone();
        shift(&mut shifted[2], Scalar::ONE);
        shift(&mut shifted[8], -Scalar::ONE);
        for pad in [0, 200] {
            assert!(!table_holds(&items_of(&shifted), pad), "cancelling errors, pad {pad}");
        }
        let sigs = shifted;
        for _ in 0..2 {
            let (verdicts, holds) = check(&items_of(&sigs));
            assert!(!holds, "cancelling errors fail the equation");
            for (i, v) in verdicts.iter().enumerate() {
                assert_eq!(*v, if i == 2 || i == 8 { Err(SigError::Mismatch) } else { Ok(()) }, "item {i}");
            }
        }
        let (signed, prepared) = set_prepared(&set, &[]);
        assert!(signed.is_empty() && prepared.is_empty());
        assert!(set.verify_many(&[]).is_empty());
        assert_eq!(format!("{set:?}").matches("PrecomputedKey(").count(), 2);
    }

    /// A key table is bounded: at most `KEY_TABLE_KEYS_MAX` keys, about
    /// `KEY_TABLE_BYTES_PER_KEY` each; one more key and there is no table.
    #[test]
    fn key_table_is_bounded() {
        let keys: Vec<VerifyingKey> = (0..=KEY_TABLE_KEYS_MAX)
            .map(|i| VerifyingKey::new(&SecretKey::from_seed([i as u8; 32]).public()).unwrap())
            .collect();
        let most = KeyTable::new(&keys[..KEY_TABLE_KEYS_MAX]).unwrap();
        assert_eq!(most.len(), KEY_TABLE_KEYS_MAX);
        assert_eq!(most.table_bytes(), (KEY_TABLE_KEYS_MAX + 1) * KEY_TABLE_BYTES_PER_KEY);
        assert!(most.table_bytes() <= 700 * 1024);
        assert!(KeyTable::new(&keys).is_none());
        let empty = KeyTable::new(&[]).unwrap();
        assert!(empty.is_empty() && empty.key(0).is_none());
        assert_eq!(most.key(3).map(VerifyingKey::public), Some(keys[3].public()));
        assert!(format!("{most:?}").starts_with("KeyTable { keys: [VerifyingKey("));
    }

    #[test]
    #[should_panic(expected = "not in the key set")]
    fn key_table_refuses_unknown_signer() {
        let sk = SecretKey::from_seed([1; 32]);
        let table = KeyTable::new(&[VerifyingKey::new(&sk.public()).unwrap()]).unwrap();
        let sig = sk.sign(Domain::Vote, &CHAIN, b"x");
        let msg = SignedBytes::Binary { domain: Domain::Vote, chain_id: &CHAIN, body: b"x" };
        let _ = table.verify_many(&[KeySetItem { signer: 1, msg, sig: &sig }], 1);
    }

    #[test]
    #[should_panic(expected = "not in the key set")]
    fn key_set_refuses_unknown_signer() {
        let sk = SecretKey::from_seed([1; 32]);
        let set = KeySet::new(&[VerifyingKey::new(&sk.public()).unwrap()]);
        let sig = sk.sign(Domain::Vote, &CHAIN, b"x");
        let msg = SignedBytes::Binary { domain: Domain::Vote, chain_id: &CHAIN, body: b"x" };
        let _ = set.verify_many(&[KeySetItem { signer: 1, msg, sig: &sig }]);
    }

    #[test]
    fn secret_key_debug_is_redacted() {
        let seed = [0xab; 32];
        let sk = SecretKey::from_seed(seed);
        let shown = format!("{sk:?} {sk:#?}");
        assert_eq!(format!("{sk:?}"), "SecretKey(<redacted>)");
        assert!(!shown.contains(&hex::encode(seed)) && !shown.contains("ab, ab") && !shown.contains("171"));
        assert_eq!(sk.seed(), seed);
        assert_ne!(SecretKey::generate().seed(), SecretKey::generate().seed());
    }

    #[test]
    fn serde_fixed_width() {
        let sk = SecretKey::from_seed([4; 32]);
        let (pk, sig) = (sk.public(), sk.sign(Domain::Vote, &CHAIN, b"s"));
        let pk_bytes = crate::codec::encode(&pk);
        let sig_bytes = crate::codec::encode(&sig);
        assert_eq!(pk_bytes, pk.0);
        assert_eq!(sig_bytes, sig.0);
        assert_eq!(crate::codec::decode::<PublicKey>("t", &pk_bytes, 64).unwrap(), pk);
        assert_eq!(crate::codec::decode::<Signature>("t", &sig_bytes, 64).unwrap(), sig);
        assert!(crate::codec::decode::<Signature>("t", &sig_bytes[..63], 64).is_err());
        assert_eq!(format!("{pk:?}"), format!("PublicKey({})", hex::encode(pk.0)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn batch_verdicts_equal_single_verdicts(
            signers in 1usize..5,
            kinds in proptest::collection::vec(0u8..8, 1..48),
            seed in any::<u8>(),
        ) {
            let keys: Vec<SecretKey> = (0..signers).map(|i| SecretKey::from_seed([seed ^ i as u8; 32])).collect();
            let pks: Vec<PublicKey> = keys.iter().map(SecretKey::public).collect();
            let vks: Vec<VerifyingKey> = pks.iter().map(|pk| VerifyingKey::new(pk).unwrap()).collect();
            let n = kinds.len();
            let bodies: Vec<Vec<u8>> = (0..n).map(|i| vec![seed, i as u8]).collect();
            let domains = [Domain::Attestation, Domain::Vote, Domain::Proposal];
            let mut sigs = Vec::new();
            for (i, kind) in kinds.iter().enumerate() {
                let mut sig = keys[i % signers].sign(domains[i % 3], &CHAIN, &bodies[i]);
                match kind {
                    1 => sig.0[32] ^= 1,                         // S changed
                    2 => sig.0[5] ^= 4,                          // R changed
                    3 => sig.0[63] |= 0x80,                      // S not canonical
                    4 => sig = keys[i % signers].sign(domains[i % 3], &OTHER_CHAIN, &bodies[i]),
                    5 => sig.0[..32].copy_from_slice(&bytes_not_a_point()),
                    _ => {}                                      // valid
                }
                sigs.push(sig);
            }
            let items: Vec<BatchItem> = (0..n)
                .map(|i| BatchItem { key: &vks[i % signers], domain: domains[i % 3], chain_id: &CHAIN, body: &bodies[i], sig: &sigs[i] })
                .collect();
            let single: Vec<_> = (0..n).map(|i| verify(&pks[i % signers], domains[i % 3], &CHAIN, &bodies[i], &sigs[i])).collect();
            for (kind, v) in kinds.iter().zip(&single) {
                prop_assert_eq!(v.is_ok(), *kind == 0 || *kind > 5);
            }
            prop_assert_eq!(&verify_batch(&items, 1), &single);
            prop_assert_eq!(&verify_batch(&items, 2), &single);
            let set = KeySet::new(&vks);
            let set_items: Vec<KeySetItem> = (0..n)
                .map(|i| KeySetItem {
                    signer: i % signers,
                    msg: SignedBytes::Binary { domain: domains[i % 3], chain_id: &CHAIN, body: &bodies[i] },
                    sig: &sigs[i],
                })
                .collect();
            prop_assert_eq!(&set.verify_many(&set_items), &single);
            let table = KeyTable::new(&vks).unwrap();
            prop_assert_eq!(&table.verify_many(&set_items, 1), &single);
            prop_assert_eq!(&table.verify_many(&set_items, 2), &single);
            for (i, v) in single.iter().enumerate() {
                let pre = set.get(i % signers).unwrap();
                prop_assert_eq!(&pre.verify(domains[i % 3], &CHAIN, &bodies[i], &sigs[i]), v);
            }
        }
    }
}
