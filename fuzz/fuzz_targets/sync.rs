//! Fuzz target: block-sync frames (`node::net::sync`): requests and responses, then each returned block through the certified-block decoder and the verification core. No panic; responses re-encode to the input.
#![no_main]

use credence_ledger::block;
use credence_ledger::rules::MemState;
use credence_ledger::verify;
use credence_node::net::{Bounds, SYNC_BLOCKS_MAX, sync};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = sync::decode_request(data) {
        assert!(req.max_blocks <= SYNC_BLOCKS_MAX, "request max_blocks not capped");
        let enc = sync::encode_request(&req);
        assert_eq!(&enc[..8], &data[..8], "request from_height does not round-trip");
    }
    let f = credence_fuzz::fixture();
    let bounds = Bounds::new(f.genesis());
    let Ok(resp) = sync::decode_response(data, &bounds.sync) else { return };
    assert!(resp.blocks.len() <= SYNC_BLOCKS_MAX as usize);
    assert_eq!(sync::encode_response(&resp), data, "sync response: decode then encode must give the input back");
    assert_eq!(sync::response_len(&resp), data.len());
    let records_max = f.genesis().consensus.block_records_max as usize;
    let mut tip = f.genesis_tip();
    let mut state = MemState::default();
    for bytes in &resp.blocks {
        let Ok(cb) = block::decode_certified_exact(bytes, records_max) else { return };
        match verify::verify_block(&f.ctx, &tip, &state, cb) {
            Ok(vb) => {
                state.apply(vb.delta());
                tip.advance(&vb);
            }
            Err(_) => return,
        }
    }
});
