//! Fuzz target: gossiped consensus messages (`node::wire`: whole and compact proposals, votes). No panic; every accepted message re-encodes to the input (the wire format has exactly one encoding per message).
#![no_main]

use credence_node::wire;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = credence_fuzz::fixture();
    let Ok(m) = wire::decode(data, f.genesis()) else { return };
    assert_eq!(m.encode(), data, "consensus message: decode then encode must give the input back");
});
