//! Shared fixtures of the fuzz targets: one fixed demo chain (genesis, context, its first blocks) that decoders and verifiers are checked against.
//!
//! The chain is `credence_ledger::demo::ChainBuilder` with a fixed seed, so the
//! seed corpora written by `examples/seeds.rs` decode and verify against exactly
//! the genesis the targets use.

use std::sync::OnceLock;

use credence_ledger::block::CertifiedBlock;
use credence_ledger::demo::ChainBuilder;
use credence_ledger::genesis::Genesis;
use credence_ledger::verify::{ChainContext, Tip};

/// Seed of the demo chain every target and seed file uses.
pub const CHAIN_SEED: u64 = 7;
/// Its genesis time (2026-01-01T00:00:00Z).
pub const GENESIS_TIME_MS: u64 = 1_767_225_600_000;
/// Blocks built for the fixture (seeds use them; targets only need the genesis).
pub const FIXTURE_BLOCKS: usize = 3;
/// Attestations per fixture block.
pub const FIXTURE_BLOCK_RECORDS: usize = 4;

/// The demo chain: its context (single-threaded signature checks, so a fuzz
/// iteration never spawns threads) and its first certified blocks.
#[derive(Debug)]
pub struct Fixture {
    pub ctx: ChainContext,
    pub blocks: Vec<CertifiedBlock>,
}

impl Fixture {
    pub fn genesis(&self) -> &Genesis {
        &self.ctx.genesis
    }

    /// The tip before block 1.
    pub fn genesis_tip(&self) -> Tip {
        Tip::genesis(&self.ctx)
    }
}

/// Builds the fixture once per process.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut builder = match ChainBuilder::new(CHAIN_SEED, GENESIS_TIME_MS) {
            Ok(b) => b,
            Err(e) => panic!("the demo chain builder failed on its fixed seed: {e}"),
        };
        let mut blocks = Vec::with_capacity(FIXTURE_BLOCKS);
        for _ in 0..FIXTURE_BLOCKS {
            match builder.next_block(FIXTURE_BLOCK_RECORDS) {
                Ok(vb) => blocks.push(vb.into_certified()),
                Err(e) => panic!("the demo chain builder failed on its fixed seed: {e}"),
            }
        }
        let mut ctx = builder.ctx;
        ctx.threads = 1;
        Fixture { ctx, blocks }
    })
}

/// Reads a little-endian integer from the front of `data`, advancing it (0 when short).
pub fn take_u64(data: &mut &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = data.len().min(8);
    b[..n].copy_from_slice(&data[..n]);
    *data = &data[n..];
    u64::from_le_bytes(b)
}

/// Leaves of the reference tree the Merkle targets draw proofs from.
pub const TREE_LEAVES: u64 = 1024;

/// A tree of [`TREE_LEAVES`] leaves (leaf `i` is the little-endian bytes of `i`); any
/// prefix size can be proved from it.
pub fn tree() -> &'static credence_ledger::merkle::MemTree {
    static TREE: OnceLock<credence_ledger::merkle::MemTree> = OnceLock::new();
    TREE.get_or_init(|| {
        let mut t = credence_ledger::merkle::MemTree::new();
        let leaves: Vec<_> = (0..TREE_LEAVES).map(|i| credence_ledger::merkle::leaf_hash(&i.to_le_bytes())).collect();
        t.append_leaves(&leaves);
        t
    })
}

/// One way of changing a proof, drawn by the fuzzer.
pub fn mutate_proof(u: &mut libfuzzer_sys::arbitrary::Unstructured<'_>, proof: &mut Vec<[u8; 32]>) {
    let op: u8 = u.arbitrary().unwrap_or(0);
    let pick = |u: &mut libfuzzer_sys::arbitrary::Unstructured<'_>, len: usize| -> usize {
        if len == 0 { 0 } else { u.choose_index(len).unwrap_or(0) }
    };
    match op % 7 {
        // Flip one bit of one element.
        0 if !proof.is_empty() => {
            let i = pick(u, proof.len());
            let bit: u8 = u.arbitrary().unwrap_or(0);
            proof[i][usize::from(bit / 8) % 32] ^= 1 << (bit % 8);
        }
        // Remove an element.
        1 if !proof.is_empty() => {
            let i = pick(u, proof.len());
            proof.remove(i);
        }
        // Insert a copy of an element, or of a real tree node, anywhere.
        2 => {
            let at = pick(u, proof.len() + 1);
            let h = if proof.is_empty() || u.arbitrary::<bool>().unwrap_or(false) {
                tree_node(u)
            } else {
                proof[pick(u, proof.len())]
            };
            proof.insert(at, h);
        }
        // Swap two elements.
        3 if proof.len() >= 2 => {
            let (i, j) = (pick(u, proof.len()), pick(u, proof.len()));
            proof.swap(i, j);
        }
        // Replace an element by a real node of the tree (a plausible, wrong, hash).
        4 if !proof.is_empty() => {
            let i = pick(u, proof.len());
            proof[i] = tree_node(u);
        }
        // Append fuzzer bytes as a hash.
        5 => {
            let h: [u8; 32] = u.arbitrary().unwrap_or([0; 32]);
            proof.push(h);
        }
        // Truncate.
        _ => {
            let keep = pick(u, proof.len() + 1);
            proof.truncate(keep);
        }
    }
}

/// A stored node of the reference tree chosen by the fuzzer (a leaf hash or an interior node).
pub fn tree_node(u: &mut libfuzzer_sys::arbitrary::Unstructured<'_>) -> [u8; 32] {
    use credence_ledger::merkle::NodeReader;
    let level: u8 = u.int_in_range(0..=10).unwrap_or(0);
    let count = TREE_LEAVES >> level;
    let index = u.int_in_range(0..=count.saturating_sub(1)).unwrap_or(0);
    tree().node(level, index).unwrap_or([0; 32])
}
