//! The block-sync wire format (`/credence/sync/1`): a fixed 12-byte request and a length-prefixed list of certified blocks, decoded with every bound checked before anything is allocated.
//!
//! ```text
//! request  = from_height u64 LE ‖ max_blocks u32 LE                     (exactly 12 bytes)
//! response = count u32 LE ‖ (length u32 LE ‖ certified block bytes) × count
//! ```
//! Each side writes one frame and closes its half of the stream, so a frame
//! ends at end-of-stream: bytes after it are an error. A reader never buffers
//! more than the frame bound plus one byte, and only as bytes arrive. The
//! blocks are opaque here (`ledger::block::encode_certified` bytes); the
//! verification core decodes and checks them.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;

use super::{SYNC_BLOCKS_MAX, SyncRequest, SyncResponse};

/// The protocol name negotiated on the stream.
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/credence/sync/1");

/// Size of an encoded request.
pub const REQUEST_BYTES: usize = 12;

/// Size bounds of a response, derived from the genesis (see [`super::Bounds`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncLimits {
    /// Most bytes of one encoded certified block.
    pub block_bytes_max: usize,
    /// Most bytes of a whole response frame (count and length prefixes included).
    pub response_bytes_max: usize,
}

/// Why a sync frame was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum SyncCodecError {
    #[error("sync: request is {got} bytes, expected exactly {REQUEST_BYTES}")]
    RequestLength { got: usize },
    #[error("sync: response is larger than the limit of {max} bytes")]
    ResponseTooLarge { max: usize },
    #[error("sync: response holds {count} blocks, more than the limit of {max}")]
    TooManyBlocks { count: usize, max: usize },
    #[error("sync: block {index} is {len} bytes, more than the limit of {max}")]
    BlockTooLarge { index: usize, len: usize, max: usize },
    #[error("sync: response truncated in {what}")]
    Truncated { what: &'static str },
    #[error("sync: {0} bytes after the response")]
    TrailingBytes(usize),
}

impl From<SyncCodecError> for io::Error {
    fn from(e: SyncCodecError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

pub fn encode_request(req: &SyncRequest) -> [u8; REQUEST_BYTES] {
    let mut out = [0u8; REQUEST_BYTES];
    out[..8].copy_from_slice(&req.from_height.to_le_bytes());
    out[8..].copy_from_slice(&req.max_blocks.to_le_bytes());
    out
}

/// Decodes a request. `max_blocks` is capped at [`SYNC_BLOCKS_MAX`] rather
/// than refused: asking for more is harmless, the answer is just shorter.
pub fn decode_request(bytes: &[u8]) -> Result<SyncRequest, SyncCodecError> {
    let Ok(b) = <&[u8; REQUEST_BYTES]>::try_from(bytes) else {
        return Err(SyncCodecError::RequestLength { got: bytes.len() });
    };
    let [h0, h1, h2, h3, h4, h5, h6, h7, m0, m1, m2, m3] = *b;
    let from_height = u64::from_le_bytes([h0, h1, h2, h3, h4, h5, h6, h7]);
    let max_blocks = u32::from_le_bytes([m0, m1, m2, m3]);
    Ok(SyncRequest { from_height, max_blocks: max_blocks.min(SYNC_BLOCKS_MAX) })
}

/// Bytes of the encoded response.
pub fn response_len(resp: &SyncResponse) -> usize {
    4 + resp.blocks.iter().map(|b| 4 + b.len()).sum::<usize>()
}

/// Encodes a response. The caller keeps it within [`SyncLimits`]
/// (the network task truncates what the application hands it).
pub fn encode_response(resp: &SyncResponse) -> Vec<u8> {
    let mut out = Vec::with_capacity(response_len(resp));
    let count = u32::try_from(resp.blocks.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_le_bytes());
    for b in &resp.blocks {
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(b);
    }
    out
}

fn take_u32(input: &mut &[u8], what: &'static str) -> Result<u32, SyncCodecError> {
    let Some((n, rest)) = input.split_first_chunk::<4>() else {
        return Err(SyncCodecError::Truncated { what });
    };
    *input = rest;
    Ok(u32::from_le_bytes(*n))
}

/// Decodes a response frame. Every length is checked against the limits and
/// against the bytes actually present before anything is copied.
pub fn decode_response(bytes: &[u8], limits: &SyncLimits) -> Result<SyncResponse, SyncCodecError> {
    if bytes.len() > limits.response_bytes_max {
        return Err(SyncCodecError::ResponseTooLarge { max: limits.response_bytes_max });
    }
    let mut input = bytes;
    let count = take_u32(&mut input, "block count")? as usize;
    if count > SYNC_BLOCKS_MAX as usize {
        return Err(SyncCodecError::TooManyBlocks { count, max: SYNC_BLOCKS_MAX as usize });
    }
    // Each block needs at least its 4-byte length prefix.
    if count > input.len() / 4 {
        return Err(SyncCodecError::Truncated { what: "block lengths" });
    }
    let mut blocks = Vec::with_capacity(count);
    for index in 0..count {
        let len = take_u32(&mut input, "block length")? as usize;
        if len > limits.block_bytes_max {
            return Err(SyncCodecError::BlockTooLarge { index, len, max: limits.block_bytes_max });
        }
        let Some((block, rest)) = input.split_at_checked(len) else {
            return Err(SyncCodecError::Truncated { what: "block bytes" });
        };
        blocks.push(block.to_vec());
        input = rest;
    }
    if !input.is_empty() {
        return Err(SyncCodecError::TrailingBytes(input.len()));
    }
    Ok(SyncResponse { blocks })
}

/// Reads the rest of the stream, refusing more than `max` bytes. The buffer
/// grows only as bytes arrive and never beyond `max + 1`.
async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    let cap = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    (&mut *io).take(cap).read_to_end(&mut buf).await?;
    Ok((buf.len() <= max).then_some(buf))
}

/// The request-response codec for `/credence/sync/1`.
#[derive(Clone, Debug)]
pub struct SyncCodec {
    pub limits: SyncLimits,
}

impl libp2p::request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = SyncResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        match read_frame(io, REQUEST_BYTES).await? {
            Some(bytes) => Ok(decode_request(&bytes)?),
            None => Err(SyncCodecError::RequestLength { got: REQUEST_BYTES + 1 }.into()),
        }
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        match read_frame(io, self.limits.response_bytes_max).await? {
            Some(bytes) => Ok(decode_response(&bytes, &self.limits)?),
            None => Err(SyncCodecError::ResponseTooLarge { max: self.limits.response_bytes_max }.into()),
        }
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: SyncRequest) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&encode_request(&req)).await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, resp: SyncResponse) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&encode_response(&resp)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: SyncLimits = SyncLimits { block_bytes_max: 100, response_bytes_max: 1000 };

    #[test]
    fn request_round_trip_and_cap() {
        let req = SyncRequest { from_height: 7, max_blocks: 3 };
        assert_eq!(decode_request(&encode_request(&req)), Ok(req));
        let big = SyncRequest { from_height: 1, max_blocks: u32::MAX };
        assert_eq!(decode_request(&encode_request(&big)).map(|r| r.max_blocks), Ok(SYNC_BLOCKS_MAX));
        assert_eq!(decode_request(&[0; 11]), Err(SyncCodecError::RequestLength { got: 11 }));
        assert_eq!(decode_request(&[0; 13]), Err(SyncCodecError::RequestLength { got: 13 }));
    }

    #[test]
    fn response_round_trip() {
        let resp = SyncResponse { blocks: vec![vec![1, 2, 3], vec![], vec![9; 100]] };
        let bytes = encode_response(&resp);
        assert_eq!(bytes.len(), response_len(&resp));
        assert_eq!(decode_response(&bytes, &LIMITS), Ok(resp));
    }

    #[test]
    fn response_bounds_checked_before_allocation() {
        // A forged count or length never allocates: it fails on the bytes present.
        let mut huge_count = u32::MAX.to_le_bytes().to_vec();
        huge_count.extend_from_slice(&[0; 8]);
        assert!(matches!(decode_response(&huge_count, &LIMITS), Err(SyncCodecError::TooManyBlocks { .. })));
        let mut lying_count = 64u32.to_le_bytes().to_vec();
        lying_count.extend_from_slice(&[0; 8]);
        assert_eq!(decode_response(&lying_count, &LIMITS), Err(SyncCodecError::Truncated { what: "block lengths" }));
        let mut huge_len = 1u32.to_le_bytes().to_vec();
        huge_len.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode_response(&huge_len, &LIMITS), Err(SyncCodecError::BlockTooLarge { .. })));
        let mut short = 1u32.to_le_bytes().to_vec();
        short.extend_from_slice(&50u32.to_le_bytes());
        short.extend_from_slice(&[0; 10]);
        assert_eq!(decode_response(&short, &LIMITS), Err(SyncCodecError::Truncated { what: "block bytes" }));
        let mut trailing = encode_response(&SyncResponse { blocks: vec![vec![1]] });
        trailing.push(0);
        assert_eq!(decode_response(&trailing, &LIMITS), Err(SyncCodecError::TrailingBytes(1)));
        assert!(matches!(decode_response(&[0; 1001], &LIMITS), Err(SyncCodecError::ResponseTooLarge { .. })));
        assert_eq!(decode_response(&[], &LIMITS), Err(SyncCodecError::Truncated { what: "block count" }));
    }

    #[test]
    fn mutated_responses_never_panic() {
        let valid = encode_response(&SyncResponse { blocks: vec![vec![7; 40], vec![8; 60], vec![9; 5]] });
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut bytes = valid.clone();
            for _ in 0..=next() % 4 {
                match next() % 3 {
                    0 if !bytes.is_empty() => {
                        let i = (next() % bytes.len() as u64) as usize;
                        bytes[i] = next() as u8;
                    }
                    1 => bytes.truncate((next() % (bytes.len() as u64 + 1)) as usize),
                    _ => bytes.push(next() as u8),
                }
            }
            if let Ok(resp) = decode_response(&bytes, &LIMITS) {
                // Whatever is accepted re-encodes to exactly the bytes received.
                assert_eq!(encode_response(&resp), bytes);
            }
        }
    }
}
