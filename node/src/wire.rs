//! Wire encoding of consensus messages for gossip: proposals (with their blocks) and votes, bounded and strictly decoded.
//!
//! ```text
//! message  = 01 ‖ chunk(Proposal) ‖ signature (64) ‖ chunk(block header) ‖ leaves
//!          | 02 ‖ chunk(Vote) ‖ validator u16 ‖ signature (64)
//! chunk(x) = length u32 ‖ x          leaves = count u32 ‖ chunk(attestation) × count
//! ```
//! `Proposal`, `Vote` and the header use the canonical encoding of docs/encoding.md.

use std::sync::Arc;

use credence_ledger::block::{self, Block, BlockDecodeError, BlockHeader, HEADER_BYTES_MAX};
use credence_ledger::codec::{self, DecodeError};
use credence_ledger::genesis::Genesis;
use credence_ledger::sig::Signature;
use credence_ledger::vote::{Proposal, Vote};

use crate::consensus::{Message, SignedProposal, SignedVote};

const TAG_PROPOSAL: u8 = 0x01;
const TAG_VOTE: u8 = 0x02;
/// Most bytes of an encoded `Proposal` or `Vote` statement.
const STATEMENT_BYTES_MAX: usize = 512;

/// Most bytes of one consensus message on a chain with these parameters (a
/// proposal carries a whole block).
pub fn message_bytes_max(genesis: &Genesis) -> usize {
    let c = &genesis.consensus;
    1 + 4
        + STATEMENT_BYTES_MAX
        + 64
        + 4
        + HEADER_BYTES_MAX
        + 4
        + c.block_bytes_max as usize
        + 4 * c.block_records_max as usize
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
}

pub fn encode(m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    match m {
        Message::Proposal(p) => {
            out.push(TAG_PROPOSAL);
            block::put_chunk(&mut out, &codec::encode(&p.proposal));
            out.extend_from_slice(&p.signature.0);
            block::put_chunk(&mut out, &p.block.header.to_bytes());
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

fn take<const N: usize>(input: &mut &[u8], what: &'static str) -> Result<[u8; N], WireError> {
    let Some((bytes, rest)) = input.split_first_chunk::<N>() else { return Err(WireError::Truncated(what)) };
    *input = rest;
    Ok(*bytes)
}

/// Decodes one consensus message. Signatures are not checked here (the consensus machine does).
pub fn decode(bytes: &[u8], genesis: &Genesis) -> Result<Message, WireError> {
    let max = message_bytes_max(genesis);
    if bytes.len() > max {
        return Err(WireError::TooLarge { len: bytes.len(), max });
    }
    let (&tag, mut input) = bytes.split_first().ok_or(WireError::Empty)?;
    let statement = |input: &mut &[u8], what| {
        block::take_chunk(input, what, STATEMENT_BYTES_MAX).map_err(WireError::Block).map(<[u8]>::to_vec)
    };
    let m = match tag {
        TAG_PROPOSAL => {
            let p = statement(&mut input, "proposal")?;
            let proposal: Proposal =
                codec::decode("proposal", &p, STATEMENT_BYTES_MAX).map_err(WireError::Statement)?;
            let signature = Signature(take::<64>(&mut input, "signature")?);
            let header = block::take_chunk(&mut input, "header", HEADER_BYTES_MAX).map_err(WireError::Block)?;
            let header = BlockHeader::from_bytes(header).map_err(WireError::Statement)?;
            let leaves = block::decode_leaves(&mut input, genesis.consensus.block_records_max as usize)
                .map_err(WireError::Block)?;
            Message::Proposal(SignedProposal { proposal, signature, block: Arc::new(Block { header, leaves }) })
        }
        TAG_VOTE => {
            let v = statement(&mut input, "vote")?;
            let vote: Vote = codec::decode("vote", &v, STATEMENT_BYTES_MAX).map_err(WireError::Statement)?;
            let validator = u16::from_le_bytes(take::<2>(&mut input, "validator")?);
            let signature = Signature(take::<64>(&mut input, "signature")?);
            Message::Vote(SignedVote { vote, validator, signature })
        }
        other => return Err(WireError::UnknownTag(other)),
    };
    if !input.is_empty() {
        return Err(WireError::TrailingBytes(input.len()));
    }
    Ok(m)
}
