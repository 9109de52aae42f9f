//! Blocks and their typestates: a `Block` as received, a `ValidBlock` that passed the verification core, a `CommittedBlock` read back from a store.

use serde::{Deserialize, Serialize};

use crate::attestation::{ATTESTATION_BYTES_MAX, Attestation, AttestationDecodeError, AttestationId};
use crate::checkpoint::{Checkpoint, CheckpointBody};
use crate::codec::{self, DecodeError};
use crate::genesis::Genesis;
use crate::hash::{Hash, HashOf};
use crate::ids::MemberName;
use crate::merkle::NodeHash;
use crate::rules::StateDelta;

/// Most bytes of an encoded header (its only variable part is the proposer name).
pub const HEADER_BYTES_MAX: usize = 256;

pub type BlockHash = HashOf<BlockHeader>;

/// What the validators agree on. Its hash is the block hash; the block's
/// attestations are bound to it through `tree_size` and `tree_root`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    /// 1 for the first block after genesis.
    pub height: u64,
    /// Hash of the previous header; for height 1, the genesis hash.
    pub prev: BlockHash,
    /// Proposer's clock in milliseconds since the Unix epoch; strictly increasing.
    pub time_ms: u64,
    pub proposer: MemberName,
    /// Leaves in the ledger's Merkle tree after this block.
    pub tree_size: u64,
    /// RFC 9162 root of that tree.
    pub tree_root: Hash,
    /// [`Genesis::validator_set_hash`] of the validators that certify this block.
    pub validator_set: Hash,
}

impl BlockHeader {
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }
    /// Decodes a header with the hand-written [`crate::decoder`] (bincode's verdicts and values).
    pub fn from_bytes(bytes: &[u8]) -> Result<BlockHeader, DecodeError> {
        crate::decoder::decode("block header", bytes, HEADER_BYTES_MAX)
    }
    pub fn hash(&self) -> BlockHash {
        HashOf::from_hash(Hash::digest(&[&self.to_bytes()]))
    }

    /// The checkpoint body the validators sign to certify this header in `round`.
    pub fn checkpoint_body(&self, genesis: &Genesis, round: u32) -> CheckpointBody {
        CheckpointBody {
            origin: genesis.checkpoint_origin.clone(),
            tree_size: self.tree_size,
            root: self.tree_root.0,
            height: self.height,
            round,
            block_hash: *self.hash().bytes(),
        }
    }
}

/// One attestation inside a block: its canonical bytes (the Merkle leaf data),
/// decoded form and id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub bytes: Vec<u8>,
    pub attestation: Attestation,
    pub id: AttestationId,
}

impl Leaf {
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Leaf, AttestationDecodeError> {
        let attestation = Attestation::from_bytes(&bytes)?;
        let id = HashOf::from_hash(Hash::digest(&[signed_part(&bytes)]));
        debug_assert_eq!(id, attestation.id(), "canonical decoding: re-encoding gives the same bytes");
        Ok(Leaf { bytes, attestation, id })
    }

    pub fn new(attestation: Attestation) -> Leaf {
        let bytes = attestation.to_bytes();
        let id = attestation.id();
        Leaf { bytes, attestation, id }
    }

    /// The signed (and id-hashed) part of the leaf bytes: the body.
    pub fn body_bytes(&self) -> &[u8] {
        signed_part(&self.bytes)
    }

    pub fn leaf_hash(&self) -> NodeHash {
        crate::merkle::leaf_hash(&self.bytes)
    }
}

/// The id of the attestation whose canonical bytes are `bytes` (the hash of its body),
/// without decoding it.
pub fn leaf_id(bytes: &[u8]) -> AttestationId {
    HashOf::from_hash(Hash::digest(&[signed_part(bytes)]))
}

/// The body is everything but the trailing 64-byte signature.
fn signed_part(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len().saturating_sub(64)]
}

/// A block as proposed or received: not yet checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub header: BlockHeader,
    pub leaves: Vec<Leaf>,
}

impl Block {
    /// Sum of the leaves' canonical sizes (what `block_bytes_max` bounds).
    pub fn records_bytes(&self) -> usize {
        self.leaves.iter().map(|l| l.bytes.len()).sum()
    }
}

/// A block with the checkpoint that certifies it: the unit of storage, sync and export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertifiedBlock {
    pub block: Block,
    pub certificate: Checkpoint,
}

/// A certified block that passed the verification core against the chain's
/// state: hash link, Merkle root, certificate, every signature and the rules.
/// Only the verification core constructs it.
#[derive(Debug)]
pub struct ValidBlock {
    pub(crate) certified: CertifiedBlock,
    pub(crate) merkle_nodes: Vec<(u8, u64, NodeHash)>,
    pub(crate) delta: StateDelta,
    /// The Merkle frontier after this block.
    pub(crate) frontier: crate::merkle::Frontier,
}

impl ValidBlock {
    pub fn certified(&self) -> &CertifiedBlock {
        &self.certified
    }
    pub fn header(&self) -> &BlockHeader {
        &self.certified.block.header
    }
    /// Complete Merkle subtrees this block finishes, to persist with it.
    pub fn merkle_nodes(&self) -> &[(u8, u64, NodeHash)] {
        &self.merkle_nodes
    }
    pub fn delta(&self) -> &StateDelta {
        &self.delta
    }
    pub fn into_certified(self) -> CertifiedBlock {
        self.certified
    }
}

/// Encoding of a certified block for files and the network:
/// header bytes, certificate note, then each leaf, all length-prefixed (u32 LE).
/// See docs/encoding.md.
pub fn encode_certified(cb: &CertifiedBlock, out: &mut Vec<u8>) {
    let header = cb.block.header.to_bytes();
    let note = cb.certificate.to_note();
    put_chunk(out, &header);
    put_chunk(out, note.as_bytes());
    encode_leaves(&cb.block.leaves, out);
}

/// Appends `count u32 ‖ chunk(leaf bytes) × count`.
pub fn encode_leaves(leaves: &[Leaf], out: &mut Vec<u8>) {
    let count = u32::try_from(leaves.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_le_bytes());
    for leaf in leaves {
        put_chunk(out, &leaf.bytes);
    }
}

/// Appends `length u32 ‖ bytes`.
pub fn put_chunk(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Why a certified block's bytes could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum BlockDecodeError {
    #[error("block: truncated: needed {needed} more bytes for the {what}")]
    Truncated { what: &'static str, needed: usize },
    #[error("block: {what} length {len} exceeds the limit of {max} bytes")]
    ChunkTooLarge { what: &'static str, len: usize, max: usize },
    #[error("block: {count} records exceed the limit of {max}")]
    TooManyRecords { count: usize, max: usize },
    #[error(transparent)]
    Header(DecodeError),
    #[error("block: certificate: {0}")]
    Certificate(String),
    #[error("block: record {index}: {source}")]
    Record { index: usize, source: AttestationDecodeError },
    #[error("block: {0} trailing bytes")]
    TrailingBytes(usize),
}

/// Reads one length-prefixed chunk from the front of `input`.
pub fn take_chunk<'a>(input: &mut &'a [u8], what: &'static str, max: usize) -> Result<&'a [u8], BlockDecodeError> {
    let len = take_u32(input, what)? as usize;
    if len > max {
        return Err(BlockDecodeError::ChunkTooLarge { what, len, max });
    }
    let Some((chunk, rest)) = input.split_at_checked(len) else {
        return Err(BlockDecodeError::Truncated { what, needed: len - input.len() });
    };
    *input = rest;
    Ok(chunk)
}

pub fn take_u32(input: &mut &[u8], what: &'static str) -> Result<u32, BlockDecodeError> {
    let Some((n, rest)) = input.split_first_chunk::<4>() else {
        return Err(BlockDecodeError::Truncated { what, needed: 4 - input.len() });
    };
    *input = rest;
    Ok(u32::from_le_bytes(*n))
}

/// Decodes one certified block from the front of `input`, advancing it.
/// `records_max` bounds the record count (the genesis `block_records_max`).
pub fn decode_certified(input: &mut &[u8], records_max: usize) -> Result<CertifiedBlock, BlockDecodeError> {
    let header = take_chunk(input, "header", HEADER_BYTES_MAX)?;
    let header = BlockHeader::from_bytes(header).map_err(BlockDecodeError::Header)?;
    let note = take_chunk(input, "certificate", crate::checkpoint::CHECKPOINT_BYTES_MAX)?;
    let certificate = Checkpoint::parse_note_bytes(note).map_err(|e| BlockDecodeError::Certificate(e.to_string()))?;
    let leaves = decode_leaves(input, records_max)?;
    Ok(CertifiedBlock { block: Block { header, leaves }, certificate })
}

/// Reads what [`encode_leaves`] wrote, at most `records_max` leaves, each decoded and checked.
pub fn decode_leaves(input: &mut &[u8], records_max: usize) -> Result<Vec<Leaf>, BlockDecodeError> {
    decode_leaves_with(input, records_max, None)
}

/// A look-up of a decoded leaf by its id (a node's mempool), for [`decode_leaves_reusing`].
pub type KnownLeaf<'a> = dyn FnMut(&AttestationId) -> Option<Leaf> + 'a;

/// [`decode_leaves`], except that a record whose id (the hash of its body) `known` answers
/// with a leaf of the very same bytes is taken from there instead of being decoded again: a
/// validator holds most records of a proposal in its mempool, decoded and checked at
/// admission. Decoding is a pure function of the bytes, so the result is the one
/// [`decode_leaves`] gives for every input; a leaf `known` gives with other bytes is not used.
pub fn decode_leaves_reusing(
    input: &mut &[u8],
    records_max: usize,
    known: &mut KnownLeaf<'_>,
) -> Result<Vec<Leaf>, BlockDecodeError> {
    decode_leaves_with(input, records_max, Some(known))
}

/// The one reader of encoded leaves; with `known`, a leaf it holds with the same bytes is reused.
fn decode_leaves_with(
    input: &mut &[u8],
    records_max: usize,
    mut known: Option<&mut KnownLeaf<'_>>,
) -> Result<Vec<Leaf>, BlockDecodeError> {
    let count = take_u32(input, "record count")? as usize;
    if count > records_max {
        return Err(BlockDecodeError::TooManyRecords { count, max: records_max });
    }
    let mut leaves = Vec::with_capacity(count);
    for index in 0..count {
        let bytes = take_chunk(input, "record", ATTESTATION_BYTES_MAX)?;
        let reused = known.as_mut().and_then(|known| {
            let id = HashOf::from_hash(Hash::digest(&[signed_part(bytes)]));
            known(&id).filter(|leaf| leaf.bytes == bytes)
        });
        let leaf = match reused {
            Some(leaf) => leaf,
            None => Leaf::from_bytes(bytes.to_vec()).map_err(|source| BlockDecodeError::Record { index, source })?,
        };
        leaves.push(leaf);
    }
    Ok(leaves)
}

/// Decodes exactly one certified block.
pub fn decode_certified_exact(mut input: &[u8], records_max: usize) -> Result<CertifiedBlock, BlockDecodeError> {
    let cb = decode_certified(&mut input, records_max)?;
    if !input.is_empty() {
        return Err(BlockDecodeError::TrailingBytes(input.len()));
    }
    Ok(cb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::{ChainBuilder, EXAMPLE_GENESIS_TIME_MS};

    #[test]
    fn leaves_taken_from_known_ones_equal_decoded_ones_and_other_bytes_are_decoded() {
        let mut b = ChainBuilder::new(3, EXAMPLE_GENESIS_TIME_MS).expect("demo chain");
        let leaves = b.next_block(6).expect("block").into_certified().block.leaves;
        let mut bytes = Vec::new();
        encode_leaves(&leaves, &mut bytes);
        let decoded = decode_leaves(&mut bytes.as_slice(), 10).expect("decodes");

        // Known: every other leaf; leaf 4 is known under its id with other bytes (a forged
        // signature), which must not be used.
        let mut forged = leaves[4].clone();
        let last = forged.bytes.len() - 1;
        forged.bytes[last] ^= 1;
        let mut asked = 0;
        let mut known = |id: &AttestationId| {
            asked += 1;
            let i = leaves.iter().position(|l| l.id == *id)?;
            match i {
                4 => Some(forged.clone()),
                i if i % 2 == 0 => Some(leaves[i].clone()),
                _ => None,
            }
        };
        let reused = decode_leaves_reusing(&mut bytes.as_slice(), 10, &mut known).expect("decodes");
        assert_eq!(reused, decoded);
        assert_eq!(asked, leaves.len(), "one look-up per record");

        // The bounds and errors are decode_leaves's.
        let mut none = |_: &AttestationId| None;
        assert_eq!(
            decode_leaves_reusing(&mut bytes.as_slice(), 5, &mut none),
            Err(BlockDecodeError::TooManyRecords { count: 6, max: 5 })
        );
        let mut bad = bytes.clone();
        bad.truncate(bytes.len() - 1);
        assert_eq!(decode_leaves_reusing(&mut bad.as_slice(), 10, &mut none), decode_leaves(&mut bad.as_slice(), 10));
    }
}
