//! Fuzz target: the hand-written decoder against the bincode legacy decoder on arbitrary bytes, read as an attestation, a bare claim and a block header. Both must accept with the same value or both refuse (with the same error, but for `Malformed`'s reason text, which names the field path only in the hand-written one).
#![no_main]

use std::fmt::Debug;

use credence_ledger::attestation::{ATTESTATION_BYTES_MAX, Attestation, Claim};
use credence_ledger::block::{BlockHeader, HEADER_BYTES_MAX};
use credence_ledger::codec::{self, DecodeError};
use credence_ledger::decoder::{self, Decode};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;

fn agree<T: Decode + DeserializeOwned + PartialEq + Debug>(what: &'static str, data: &[u8], max: usize) {
    let old = codec::decode::<T>(what, data, max);
    let new = decoder::decode::<T>(what, data, max);
    match (&old, &new) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{what}: the decoders give different values"),
        (Err(DecodeError::Malformed { .. }), Err(DecodeError::Malformed { .. })) => {}
        (Err(a), Err(b)) => assert_eq!(a, b, "{what}: the decoders give different errors"),
        _ => panic!("{what}: bincode {old:?}, hand-written {new:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    agree::<Attestation>("attestation", data, ATTESTATION_BYTES_MAX);
    agree::<Claim>("claim", data, ATTESTATION_BYTES_MAX);
    agree::<BlockHeader>("block header", data, HEADER_BYTES_MAX);
});
