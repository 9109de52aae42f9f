//! Canonical binary encoding: bincode 2.0.1, legacy (fixed-int, little-endian) configuration, size-bounded, no trailing bytes.
//!
//! The byte format is specified independently of bincode in `docs/encoding.md`,
//! so any bincode-1-compatible decoder (or a hand-written one) can read it.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Hard ceiling on any single decoded value, whatever the caller's own bound.
pub const DECODE_BYTES_MAX: usize = 64 * 1024 * 1024;

type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Fixint,
    bincode::config::Limit<DECODE_BYTES_MAX>,
>;

const fn config() -> Config {
    bincode::config::legacy().with_limit::<DECODE_BYTES_MAX>()
}

/// Why bytes could not be decoded into a value. `what` names the structure.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum DecodeError {
    #[error("{what}: {len} bytes exceed the limit of {max} bytes")]
    TooLarge { what: &'static str, len: usize, max: usize },
    #[error("{what}: {trailing} trailing bytes after the encoded value")]
    TrailingBytes { what: &'static str, trailing: usize },
    #[error("{what}: malformed encoding: {reason}")]
    Malformed { what: &'static str, reason: String },
}

/// Encodes `value` canonically.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Encoding into a Vec cannot fail for our types (no maps, no unsized
    // sequences); an error here is a programming error, not bad input.
    match bincode::serde::encode_to_vec(value, config()) {
        Ok(bytes) => bytes,
        Err(e) => unreachable!("canonical encoding of an in-memory value failed: {e}"),
    }
}

/// Appends the canonical encoding of `value` to `out`.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    if let Err(e) = bincode::serde::encode_into_std_write(value, out, config()) {
        unreachable!("canonical encoding of an in-memory value failed: {e}");
    }
}

/// Decodes exactly one `T` from `bytes`, which must be at most `bytes_max`
/// long and hold nothing after the value.
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8], bytes_max: usize) -> Result<T, DecodeError> {
    let max = bytes_max.min(DECODE_BYTES_MAX);
    if bytes.len() > max {
        return Err(DecodeError::TooLarge { what, len: bytes.len(), max });
    }
    let (value, read) = decode_prefix(what, bytes)?;
    if read != bytes.len() {
        return Err(DecodeError::TrailingBytes { what, trailing: bytes.len() - read });
    }
    Ok(value)
}

/// Decodes one `T` from the front of `bytes`, returning it and the bytes read.
pub fn decode_prefix<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<(T, usize), DecodeError> {
    bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| DecodeError::Malformed { what, reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    enum E {
        A(u8),
        B { s: String, v: Vec<u16>, o: Option<bool> },
    }

    #[test]
    fn legacy_layout_is_fixed_int_little_endian() {
        let bytes = encode(&E::B { s: "hi".into(), v: vec![1], o: Some(true) });
        assert_eq!(
            bytes,
            [
                1, 0, 0, 0, // variant index u32
                2, 0, 0, 0, 0, 0, 0, 0, b'h', b'i', // string: u64 length + UTF-8
                1, 0, 0, 0, 0, 0, 0, 0, 1, 0, // seq: u64 length + u16 LE
                1, 1, // option tag 1, bool true
            ]
        );
        assert_eq!(decode::<E>("e", &bytes, 100), Ok(E::B { s: "hi".into(), v: vec![1], o: Some(true) }));
    }

    #[test]
    fn rejects_trailing_oversized_unknown_tag_and_bad_bool() {
        let mut bytes = encode(&E::A(7));
        bytes.push(0);
        assert_eq!(decode::<E>("e", &bytes, 100), Err(DecodeError::TrailingBytes { what: "e", trailing: 1 }));
        assert!(matches!(decode::<E>("e", &bytes, 3), Err(DecodeError::TooLarge { len: 6, max: 3, .. })));
        // Variant 2 does not exist.
        assert!(matches!(decode::<E>("e", &[2, 0, 0, 0, 0], 100), Err(DecodeError::Malformed { .. })));
        // A bool must be 0 or 1.
        let mut b = encode(&E::B { s: String::new(), v: vec![], o: Some(true) });
        let last = b.len() - 1;
        b[last] = 2;
        assert!(matches!(decode::<E>("e", &b, 100), Err(DecodeError::Malformed { .. })));
    }

    #[test]
    fn huge_length_prefix_fails_without_allocating() {
        // A string claiming 2^60 bytes in a 12-byte input.
        let mut b = vec![1, 0, 0, 0];
        b.extend_from_slice(&(1u64 << 60).to_le_bytes());
        assert!(matches!(decode::<E>("e", &b, 100), Err(DecodeError::Malformed { .. })));
    }
}
