//! SHA-256 digests and typed hashes (`HashOf<T>`), so a block hash can never be passed where an attestation id is expected.

use std::fmt;
use std::marker::PhantomData;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A SHA-256 digest. Serialized as 32 raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    pub const ZERO: Hash = Hash([0; 32]);

    /// SHA-256 over the concatenation of `parts` (no separators: callers prefix their own tags).
    pub fn digest(parts: &[&[u8]]) -> Hash {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update(part);
        }
        Hash(hasher.finalize().into())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits; `field` names the input in the error.
    pub fn from_hex(field: &'static str, s: &str) -> Result<Hash, HashParseError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| HashParseError { field, got_chars: s.chars().count() })?;
        Ok(Hash(out))
    }
}

/// A hash that was not 64 hex digits.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: must be 64 hexadecimal digits (a SHA-256 hash), got {got_chars} characters that do not form one")]
pub struct HashParseError {
    pub field: &'static str,
    pub got_chars: usize,
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}

/// The hash of a value of type `T`. Same bytes as [`Hash`], different type.
#[derive(Serialize, Deserialize)]
#[serde(transparent, bound = "")]
pub struct HashOf<T> {
    hash: Hash,
    #[serde(skip)]
    _of: PhantomData<fn() -> T>,
}

impl<T> HashOf<T> {
    pub const fn from_hash(hash: Hash) -> Self {
        HashOf { hash, _of: PhantomData }
    }
    pub const fn hash(&self) -> &Hash {
        &self.hash
    }
    pub const fn bytes(&self) -> &[u8; 32] {
        &self.hash.0
    }
}

impl<T> Clone for HashOf<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for HashOf<T> {}
impl<T> PartialEq for HashOf<T> {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
    }
}
impl<T> Eq for HashOf<T> {}
impl<T> PartialOrd for HashOf<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for HashOf<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.hash.cmp(&other.hash)
    }
}
impl<T> std::hash::Hash for HashOf<T> {
    /// A SHA-256 output is already uniform: eight of its bytes are enough for a
    /// hash map (whose hasher is keyed, see [`DigestKeyed`]).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.hash.0[..8]);
        state.write_u64(u64::from_le_bytes(first));
    }
}

/// A fast keyed hasher for maps whose keys are (or lead with) digests and
/// other short fixed-size values: one 64×64→128-bit multiply by a secret
/// odd key per word, folded. The key is random per map builder, so a member
/// who grinds attestation ids cannot aim them at one bucket.
#[derive(Clone, Copy, Debug)]
pub struct DigestKeyed {
    key: u64,
}

impl Default for DigestKeyed {
    fn default() -> Self {
        let mut k = [0u8; 8];
        // Without OS randomness fall back to the address of a stack value (ASLR): still
        // unknown to a remote attester, and never a reason to fail.
        if getrandom::fill(&mut k).is_err() {
            k = (&k as *const _ as u64).to_le_bytes();
        }
        DigestKeyed { key: u64::from_le_bytes(k) | 1 }
    }
}

impl std::hash::BuildHasher for DigestKeyed {
    type Hasher = DigestHasher;
    fn build_hasher(&self) -> DigestHasher {
        DigestHasher { key: self.key, state: self.key.rotate_left(17) }
    }
}

/// The hasher [`DigestKeyed`] builds.
#[derive(Debug)]
pub struct DigestHasher {
    key: u64,
    state: u64,
}

impl DigestHasher {
    fn mix(&mut self, word: u64) {
        let m = u128::from(self.state ^ word) * u128::from(self.key);
        self.state = (m as u64) ^ ((m >> 64) as u64);
    }
}

impl std::hash::Hasher for DigestHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(w) ^ ((chunk.len() as u64) << 56));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.mix(v);
    }
    fn finish(&self) -> u64 {
        self.state
    }
}

/// A hash map with the [`DigestKeyed`] hasher.
pub type DigestMap<K, V> = std::collections::HashMap<K, V, DigestKeyed>;
impl<T> fmt::Debug for HashOf<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.hash)
    }
}
impl<T> fmt::Display for HashOf<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_known_sha256() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            Hash::digest(&[b"a", b"bc"]).to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hex_round_trip_and_errors_name_the_field() {
        let h = Hash::digest(&[b"x"]);
        assert_eq!(Hash::from_hex("id", &h.to_hex()), Ok(h));
        let err = Hash::from_hex("id", "abc").unwrap_err();
        assert_eq!(err.field, "id");
        assert!(err.to_string().starts_with("id: must be 64 hexadecimal digits"));
        assert!(Hash::from_hex("id", &"zz".repeat(32)).is_err());
    }
}
