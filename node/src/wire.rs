//! Wire encoding of gossip payloads: consensus messages (proposals with their blocks, compact proposals, and votes) and batches of attestations, bounded and strictly decoded.
//!
//! ```text
//! message  = 01 ‖ chunk(Proposal) ‖ signature (64) ‖ chunk(block header) ‖ leaves
//!          | 02 ‖ chunk(Vote) ‖ validator u16 ‖ signature (64)
//!          | 04 ‖ chunk(Proposal) ‖ signature (64) ‖ chunk(block header) ‖ items
//! batch    = 03 ‖ leaves                       (attestation topic; 1 to ATTESTATION_BATCH_MAX)
//! chunk(x) = length u32 ‖ x          leaves = count u32 ‖ chunk(attestation) × count
//! items    = count u32 ‖ item × count          (at most block_records_max)
//! item     = 00 ‖ attestation id (32) | 01 ‖ chunk(attestation)
//! ```
//! A compact proposal (04, `consensus::compact`) names by id the records its receivers
//! hold and carries the rest whole.
//! `Proposal`, `Vote` and the header use the canonical encoding of docs/encoding.md;
//! each attestation chunk is at most `ATTESTATION_BYTES_MAX` bytes.

use std::sync::Arc;

use credence_ledger::attestation::ATTESTATION_BYTES_MAX;
use credence_ledger::block::{self, Block, BlockDecodeError, BlockHeader, HEADER_BYTES_MAX, KnownLeaf, Leaf};
use credence_ledger::codec::{self, DecodeError};
use credence_ledger::genesis::Genesis;
use credence_ledger::hash::{Hash, HashOf};
use credence_ledger::sig::Signature;
use credence_ledger::vote::{Proposal, Vote};

use crate::consensus::compact::{CompactItem, CompactProposal};
use crate::consensus::{Message, SignedProposal, SignedVote};

const TAG_PROPOSAL: u8 = 0x01;
const TAG_VOTE: u8 = 0x02;
const TAG_ATTESTATIONS: u8 = 0x03;
const TAG_COMPACT: u8 = 0x04;
const ITEM_ID: u8 = 0x00;
const ITEM_FULL: u8 = 0x01;

/// A message on the consensus topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gossip {
    Message(Message),
    Compact(CompactProposal),
}
/// Most attestations in one gossiped batch (the API's batch bound).
pub const ATTESTATION_BATCH_MAX: usize = 1000;
/// Most bytes of one gossiped batch of attestations (tag, count, and chunks).
pub const ATTESTATION_BATCH_BYTES_MAX: usize = 512 * 1024;
/// Most bytes of an encoded `Proposal` or `Vote` statement.
const STATEMENT_BYTES_MAX: usize = 512;

/// Most bytes of one consensus message on a chain with these parameters: a proposal
/// carries a whole block (4 length bytes a record), a compact one 33 bytes a record named
/// by id and 5 plus its bytes a record carried whole.
pub fn message_bytes_max(genesis: &Genesis) -> usize {
    let c = &genesis.consensus;
    1 + 4
        + STATEMENT_BYTES_MAX
        + 64
        + 4
        + HEADER_BYTES_MAX
        + 4
        + c.block_bytes_max as usize
        + (1 + 32) * c.block_records_max as usize
}

/// Why bytes are not a consensus message.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum WireError {
    #[error("consensus message: {len} bytes exceed the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("consensus message: empty")]
    Empty,
    #[error("consensus message: unknown tag 0x{0:02x}")]
    UnknownTag(u8),
    #[error("consensus message: {0}")]
    Statement(DecodeError),
    #[error("consensus message: {0}")]
    Block(BlockDecodeError),
    #[error("consensus message: truncated {0}")]
    Truncated(&'static str),
    #[error("consensus message: {0} trailing bytes")]
    TrailingBytes(usize),
    #[error("attestation batch: {0}")]
    Batch(String),
    #[error("compact proposal: record {index}: unknown item tag 0x{tag:02x} (0x00 an id, 0x01 a record)")]
    UnknownItemTag { index: usize, tag: u8 },
}

/// Encodes a batch of attestations (their canonical bytes) for the attestation topic.
/// The caller keeps within [`ATTESTATION_BATCH_MAX`] and [`ATTESTATION_BATCH_BYTES_MAX`].
pub fn encode_attestations<'a>(items: impl ExactSizeIterator<Item = &'a [u8]>) -> Vec<u8> {
    let count = u32::try_from(items.len()).unwrap_or(u32::MAX);
    let mut out = vec![TAG_ATTESTATIONS];
    out.extend_from_slice(&count.to_le_bytes());
    for bytes in items {
        block::put_chunk(&mut out, bytes);
    }
    out
}

/// Splits a gossiped batch into the attestations' bytes (not decoded or checked here:
/// the mempool's verifier does that). Refuses more than [`ATTESTATION_BATCH_MAX`] items,
/// [`ATTESTATION_BATCH_BYTES_MAX`] bytes, an empty batch, an oversized item and trailing bytes.
pub fn decode_attestations(bytes: &[u8]) -> Result<Vec<Vec<u8>>, WireError> {
    if bytes.len() > ATTESTATION_BATCH_BYTES_MAX {
        return Err(WireError::TooLarge { len: bytes.len(), max: ATTESTATION_BATCH_BYTES_MAX });
    }
    let (&tag, mut input) = bytes.split_first().ok_or(WireError::Empty)?;
    if tag != TAG_ATTESTATIONS {
        return Err(WireError::UnknownTag(tag));
    }
    let count = block::take_u32(&mut input, "record count").map_err(WireError::Block)? as usize;
    if count == 0 || count > ATTESTATION_BATCH_MAX {
        return Err(WireError::Batch(format!("{count} attestations; between 1 and {ATTESTATION_BATCH_MAX} allowed")));
    }
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        let chunk = block::take_chunk(&mut input, "record", ATTESTATION_BYTES_MAX).map_err(WireError::Block)?;
        items.push(chunk.to_vec());
    }
    if !input.is_empty() {
        return Err(WireError::TrailingBytes(input.len()));
    }
    Ok(items)
}

/// Encodes a compact proposal (tag 04).
pub fn encode_compact(c: &CompactProposal) -> Vec<u8> {
    let mut out = vec![TAG_COMPACT];
    put_proposal_head(&mut out, &c.proposal, &c.signature, &c.header);
    let count = u32::try_from(c.items.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_le_bytes());
    for item in &c.items {
        match item {
            CompactItem::Id(id) => {
                out.push(ITEM_ID);
                out.extend_from_slice(id.bytes());
            }
            CompactItem::Full(leaf) => {
                out.push(ITEM_FULL);
                block::put_chunk(&mut out, &leaf.bytes);
            }
        }
    }
    out
}

impl Gossip {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Gossip::Message(m) => encode(m),
            Gossip::Compact(c) => encode_compact(c),
        }
    }
}

pub fn encode(m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    match m {
        Message::Proposal(p) => {
            out.push(TAG_PROPOSAL);
            put_proposal_head(&mut out, &p.proposal, &p.signature, &p.block.header);
            block::encode_leaves(&p.block.leaves, &mut out);
        }
        Message::Vote(v) => {
            out.push(TAG_VOTE);
            block::put_chunk(&mut out, &codec::encode(&v.vote));
            out.extend_from_slice(&v.validator.to_le_bytes());
            out.extend_from_slice(&v.signature.0);
        }
    }
    out
}

/// What a whole and a compact proposal start with: `chunk(Proposal) ‖ signature ‖ chunk(header)`.
fn take_proposal_head(input: &mut &[u8]) -> Result<(Proposal, Signature, BlockHeader), WireError> {
    let p = block::take_chunk(input, "proposal", STATEMENT_BYTES_MAX).map_err(WireError::Block)?;
    let proposal: Proposal = codec::decode("proposal", p, STATEMENT_BYTES_MAX).map_err(WireError::Statement)?;
    let signature = Signature(take::<64>(input, "signature")?);
    let header = block::take_chunk(input, "header", HEADER_BYTES_MAX).map_err(WireError::Block)?;
    let header = BlockHeader::from_bytes(header).map_err(WireError::Statement)?;
    Ok((proposal, signature, header))
}

fn put_proposal_head(out: &mut Vec<u8>, proposal: &Proposal, signature: &Signature, header: &BlockHeader) {
    block::put_chunk(out, &codec::encode(proposal));
    out.extend_from_slice(&signature.0);
    block::put_chunk(out, &header.to_bytes());
}

/// A compact proposal's items: at most `records_max`, each an id or a whole record
/// (decoded and checked as in a block).
fn decode_items(input: &mut &[u8], records_max: usize) -> Result<Vec<CompactItem>, WireError> {
    let count = block::take_u32(input, "record count").map_err(WireError::Block)? as usize;
    if count > records_max {
        return Err(WireError::Block(BlockDecodeError::TooManyRecords { count, max: records_max }));
    }
    let mut items = Vec::with_capacity(count);
    for index in 0..count {
        let item = match take::<1>(input, "record tag")?[0] {
            ITEM_ID => CompactItem::Id(HashOf::from_hash(Hash(take::<32>(input, "record id")?))),
            ITEM_FULL => {
                let bytes = block::take_chunk(input, "record", ATTESTATION_BYTES_MAX).map_err(WireError::Block)?;
                let leaf = Leaf::from_bytes(bytes.to_vec())
                    .map_err(|source| WireError::Block(BlockDecodeError::Record { index, source }))?;
                CompactItem::Full(Box::new(leaf))
            }
            other => return Err(WireError::UnknownItemTag { index, tag: other }),
        };
        items.push(item);
    }
    Ok(items)
}

fn take<const N: usize>(input: &mut &[u8], what: &'static str) -> Result<[u8; N], WireError> {
    let Some((bytes, rest)) = input.split_first_chunk::<N>() else { return Err(WireError::Truncated(what)) };
    *input = rest;
    Ok(*bytes)
}

/// Decodes one consensus message. Signatures are not checked here (the consensus machine does).
pub fn decode(bytes: &[u8], genesis: &Genesis) -> Result<Gossip, WireError> {
    decode_inner(bytes, genesis, None)
}

/// [`decode`], taking a whole proposal's records that `known` holds with the same bytes
/// (a node's mempool: decoded and checked at admission) instead of decoding them again
/// ([`block::decode_leaves_reusing`]). The message is the one [`decode`] gives.
pub fn decode_reusing(bytes: &[u8], genesis: &Genesis, known: &mut KnownLeaf<'_>) -> Result<Gossip, WireError> {
    decode_inner(bytes, genesis, Some(known))
}

fn decode_inner(bytes: &[u8], genesis: &Genesis, known: Option<&mut KnownLeaf<'_>>) -> Result<Gossip, WireError> {
    let max = message_bytes_max(genesis);
    if bytes.len() > max {
        return Err(WireError::TooLarge { len: bytes.len(), max });
    }
    let (&tag, mut input) = bytes.split_first().ok_or(WireError::Empty)?;
    let m = match tag {
        TAG_PROPOSAL => {
            let (proposal, signature, header) = take_proposal_head(&mut input)?;
            let records_max = genesis.consensus.block_records_max as usize;
            let leaves = match known {
                Some(known) => block::decode_leaves_reusing(&mut input, records_max, known),
                None => block::decode_leaves(&mut input, records_max),
            }
            .map_err(WireError::Block)?;
            Gossip::Message(Message::Proposal(SignedProposal {
                proposal,
                signature,
                block: Arc::new(Block { header, leaves }),
            }))
        }
        TAG_COMPACT => {
            let (proposal, signature, header) = take_proposal_head(&mut input)?;
            let items = decode_items(&mut input, genesis.consensus.block_records_max as usize)?;
            Gossip::Compact(CompactProposal { proposal, signature, header, items })
        }
        TAG_VOTE => {
            let v = block::take_chunk(&mut input, "vote", STATEMENT_BYTES_MAX).map_err(WireError::Block)?;
            let vote: Vote = codec::decode("vote", v, STATEMENT_BYTES_MAX).map_err(WireError::Statement)?;
            let validator = u16::from_le_bytes(take::<2>(&mut input, "validator")?);
            let signature = Signature(take::<64>(&mut input, "signature")?);
            Gossip::Message(Message::Vote(SignedVote { vote, validator, signature }))
        }
        other => return Err(WireError::UnknownTag(other)),
    };
    if !input.is_empty() {
        return Err(WireError::TrailingBytes(input.len()));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use credence_ledger::demo::{ChainBuilder, EXAMPLE_GENESIS_TIME_MS};
    use credence_ledger::sig::Signature;
    use credence_ledger::vote::BlockId;

    #[test]
    fn a_proposal_decoded_with_known_records_is_the_one_decoded_from_bytes() {
        let mut b = ChainBuilder::new(4, EXAMPLE_GENESIS_TIME_MS).expect("demo chain");
        let block = b.next_block(5).expect("block").into_certified().block;
        let proposal =
            Proposal { height: block.header.height, round: 0, block: BlockId::of(&block.header), valid_round: None };
        let leaves = block.leaves.clone();
        let m = Message::Proposal(SignedProposal { proposal, signature: Signature([7; 64]), block: Arc::new(block) });
        let bytes = encode(&m);
        let plain = decode(&bytes, b.genesis()).expect("decodes");
        let mut asked = 0;
        let reused = decode_reusing(&bytes, b.genesis(), &mut |id| {
            asked += 1;
            leaves.iter().take(3).find(|l| l.id == *id).cloned()
        })
        .expect("decodes");
        assert_eq!(reused, plain);
        assert_eq!(reused, Gossip::Message(m));
        assert_eq!(asked, 5, "one look-up per record");
        // A vote has no records to look up.
        let vote = Message::Vote(SignedVote {
            vote: Vote { height: 1, round: 0, kind: credence_ledger::vote::VoteKind::Prevote, value: None },
            validator: 2,
            signature: Signature([1; 64]),
        });
        let v = decode_reusing(&encode(&vote), b.genesis(), &mut |_| panic!("no records in a vote")).expect("decodes");
        assert_eq!(v, Gossip::Message(vote));
    }

    #[test]
    fn a_compact_proposal_round_trips_and_its_items_are_strict() {
        let mut b = ChainBuilder::new(4, EXAMPLE_GENESIS_TIME_MS).expect("demo chain");
        let block = b.next_block(3).expect("block").into_certified().block;
        let proposal =
            Proposal { height: block.header.height, round: 0, block: BlockId::of(&block.header), valid_round: None };
        let items = vec![
            CompactItem::Id(block.leaves[0].id),
            CompactItem::Full(Box::new(block.leaves[1].clone())),
            CompactItem::Id(block.leaves[2].id),
        ];
        let c = CompactProposal { proposal, signature: Signature([9; 64]), header: block.header.clone(), items };
        let bytes = encode_compact(&c);
        assert_eq!(bytes[0], TAG_COMPACT);
        assert_eq!(decode(&bytes, b.genesis()), Ok(Gossip::Compact(c.clone())));
        assert_eq!(Gossip::Compact(c.clone()).encode(), bytes);
        // Two ids and a whole record: 33 bytes an id, 5 plus the record's bytes a whole one.
        let head = 1 + 4 + codec::encode(&proposal).len() + 64 + 4 + block.header.to_bytes().len() + 4;
        assert_eq!(bytes.len(), head + 2 * 33 + 5 + block.leaves[1].bytes.len());

        let first_item = head;
        let mut bad_tag = bytes.clone();
        bad_tag[first_item] = 7;
        assert_eq!(decode(&bad_tag, b.genesis()), Err(WireError::UnknownItemTag { index: 0, tag: 7 }));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(decode(&trailing, b.genesis()), Err(WireError::TrailingBytes(1)));
        assert_eq!(decode(&bytes[..bytes.len() - 1], b.genesis()).map(|_| ()), Err(WireError::Truncated("record id")));
        let mut too_many = bytes[..first_item - 4].to_vec();
        too_many.extend_from_slice(&(b.genesis().consensus.block_records_max + 1).to_le_bytes());
        assert!(matches!(
            decode(&too_many, b.genesis()),
            Err(WireError::Block(BlockDecodeError::TooManyRecords { .. }))
        ));
        // A whole record is decoded and checked as in a block.
        let full_at = first_item + 33;
        let mut broken = bytes.clone();
        broken[full_at + 5] ^= 0xff;
        assert!(matches!(
            decode(&broken, b.genesis()),
            Err(WireError::Block(BlockDecodeError::Record { index: 1, .. }))
        ));
    }

    #[test]
    fn attestation_batches_round_trip_and_bounds_hold() {
        let items: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 10 + usize::from(i)]).collect();
        let bytes = encode_attestations(items.iter().map(Vec::as_slice));
        assert_eq!(decode_attestations(&bytes), Ok(items.clone()));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(decode_attestations(&trailing), Err(WireError::TrailingBytes(1)));
        assert!(matches!(decode_attestations(&bytes[..bytes.len() - 1]), Err(WireError::Block(_))));
        assert_eq!(decode_attestations(&[]), Err(WireError::Empty));
        assert_eq!(decode_attestations(&[TAG_VOTE, 0, 0, 0, 0]), Err(WireError::UnknownTag(TAG_VOTE)));
        let empty = encode_attestations(std::iter::empty());
        assert!(matches!(decode_attestations(&empty), Err(WireError::Batch(_))));
        let mut too_many = vec![TAG_ATTESTATIONS];
        too_many.extend_from_slice(&(ATTESTATION_BATCH_MAX as u32 + 1).to_le_bytes());
        assert!(matches!(decode_attestations(&too_many), Err(WireError::Batch(_))));
        let big = vec![0u8; ATTESTATION_BYTES_MAX + 1];
        assert!(matches!(
            decode_attestations(&encode_attestations([big.as_slice()].into_iter())),
            Err(WireError::Block(_))
        ));
        let huge = vec![0u8; ATTESTATION_BATCH_BYTES_MAX + 1];
        assert!(matches!(decode_attestations(&huge), Err(WireError::TooLarge { .. })));
    }
}
