//! Export files: a whole certified chain in one stream, with a checksum trailer, readable by `credence verify --file`.
//!
//! Layout (all integers little-endian; specified in docs/encoding.md):
//! ```text
//! file    = magic "CRDNCEX1" (8 bytes) || genesis hash (32) || frame* || trailer
//! frame   = 0x01 || length u32 || certified block (block::encode_certified)
//! trailer = 0xFF || blocks u64 || attestations u64 || SHA-256 of every byte before the trailer
//! ```

use std::io::{BufRead, Write};

use sha2::{Digest, Sha256};

use crate::attestation::ATTESTATION_BYTES_MAX;
use crate::block::{self, CertifiedBlock};
use crate::checkpoint::CHECKPOINT_BYTES_MAX;
use crate::genesis::Genesis;
use crate::hash::Hash;
use crate::verify::{Failure, VerifyError};

pub const MAGIC: &[u8; 8] = b"CRDNCEX1";
const FRAME_BLOCK: u8 = 0x01;
const FRAME_TRAILER: u8 = 0xFF;

/// Most bytes of one block frame for a chain with these parameters.
pub fn frame_bytes_max(genesis: &Genesis) -> usize {
    let records = genesis.consensus.block_records_max as usize;
    block::HEADER_BYTES_MAX + CHECKPOINT_BYTES_MAX + 16 + records * (4 + ATTESTATION_BYTES_MAX)
}

/// Writes an export file block by block, hashing as it goes.
#[derive(Debug)]
pub struct ExportWriter<W: Write> {
    out: W,
    hasher: Sha256,
    blocks: u64,
    attestations: u64,
    buf: Vec<u8>,
}

impl<W: Write> ExportWriter<W> {
    pub fn new(mut out: W, genesis_hash: &Hash) -> std::io::Result<Self> {
        let mut hasher = Sha256::new();
        out.write_all(MAGIC)?;
        out.write_all(&genesis_hash.0)?;
        hasher.update(MAGIC);
        hasher.update(genesis_hash.0);
        Ok(ExportWriter { out, hasher, blocks: 0, attestations: 0, buf: Vec::new() })
    }

    pub fn write_block(&mut self, cb: &CertifiedBlock) -> std::io::Result<()> {
        self.buf.clear();
        block::encode_certified(cb, &mut self.buf);
        let len = u32::try_from(self.buf.len()).map_err(|_| std::io::Error::other("block frame exceeds 4 GiB"))?;
        let mut head = [0u8; 5];
        head[0] = FRAME_BLOCK;
        head[1..].copy_from_slice(&len.to_le_bytes());
        for part in [&head[..], &self.buf] {
            self.out.write_all(part)?;
            self.hasher.update(part);
        }
        self.blocks += 1;
        self.attestations += cb.block.leaves.len() as u64;
        Ok(())
    }

    /// Writes the trailer and returns the sink.
    pub fn finish(mut self) -> std::io::Result<W> {
        let mut t = Vec::with_capacity(49);
        t.push(FRAME_TRAILER);
        t.extend_from_slice(&self.blocks.to_le_bytes());
        t.extend_from_slice(&self.attestations.to_le_bytes());
        t.extend_from_slice(&self.hasher.finalize());
        self.out.write_all(&t)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads an export file as a stream of certified blocks. Every problem with the
/// file itself (bad magic, other genesis, truncation, oversized frame, checksum)
/// becomes an error item naming the height where it was found.
#[derive(Debug)]
pub struct ExportReader<R: BufRead> {
    input: R,
    hasher: Sha256,
    frame_max: usize,
    records_max: usize,
    next_height: u64,
    attestations: u64,
    done: bool,
    buf: Vec<u8>,
}

impl<R: BufRead> ExportReader<R> {
    /// Checks the file's magic and genesis hash against `genesis`.
    pub fn new(mut input: R, genesis: &Genesis) -> Result<Self, VerifyError> {
        let mut head = [0u8; 40];
        input.read_exact(&mut head).map_err(|e| file_error(1, format!("file header: {e}")))?;
        if &head[..8] != MAGIC {
            return Err(file_error(1, "file header: not a Credence export file (bad magic)".into()));
        }
        let hash = genesis.hash();
        if head[8..] != hash.0 {
            return Err(file_error(
                1,
                format!(
                    "file header: exported from genesis {}, not {hash}",
                    Hash(head[8..].try_into().unwrap_or_default())
                ),
            ));
        }
        let mut hasher = Sha256::new();
        hasher.update(head);
        Ok(ExportReader {
            input,
            hasher,
            frame_max: frame_bytes_max(genesis),
            records_max: genesis.consensus.block_records_max as usize,
            next_height: 1,
            attestations: 0,
            done: false,
            buf: Vec::new(),
        })
    }

    fn read_frame(&mut self) -> Result<Option<CertifiedBlock>, VerifyError> {
        let h = self.next_height;
        let mut tag = [0u8; 1];
        if let Err(e) = self.input.read_exact(&mut tag) {
            return Err(file_error(h, format!("file truncated before block {h} or the trailer ({e})")));
        }
        match tag[0] {
            FRAME_BLOCK => {
                let mut len = [0u8; 4];
                self.input
                    .read_exact(&mut len)
                    .map_err(|_| file_error(h, format!("file truncated in block {h}'s frame length")))?;
                let len_usize = u32::from_le_bytes(len) as usize;
                if len_usize > self.frame_max {
                    return Err(file_error(
                        h,
                        format!("block frame of {len_usize} bytes exceeds the limit of {} bytes", self.frame_max),
                    ));
                }
                self.buf.resize(len_usize, 0);
                self.input
                    .read_exact(&mut self.buf)
                    .map_err(|_| file_error(h, format!("file truncated inside block {h}")))?;
                self.hasher.update(tag);
                self.hasher.update(len);
                self.hasher.update(&self.buf);
                let cb = block::decode_certified_exact(&self.buf, self.records_max)
                    .map_err(|e| file_error(h, e.to_string()))?;
                self.next_height += 1;
                self.attestations += cb.block.leaves.len() as u64;
                Ok(Some(cb))
            }
            FRAME_TRAILER => {
                let mut t = [0u8; 48];
                self.input.read_exact(&mut t).map_err(|_| file_error(h, "file truncated inside the trailer".into()))?;
                let digest: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
                let blocks = u64::from_le_bytes(t[..8].try_into().unwrap_or_default());
                let attestations = u64::from_le_bytes(t[8..16].try_into().unwrap_or_default());
                if blocks != h - 1 || attestations != self.attestations {
                    return Err(file_error(
                        h,
                        format!(
                            "trailer: says {blocks} blocks and {attestations} attestations, file holds {} and {}",
                            h - 1,
                            self.attestations
                        ),
                    ));
                }
                if t[16..] != digest {
                    return Err(file_error(h, "trailer: checksum does not match the file's contents".into()));
                }
                let mut extra = [0u8; 1];
                if self.input.read(&mut extra).map_err(|e| file_error(h, e.to_string()))? != 0 {
                    return Err(file_error(h, "bytes after the trailer".into()));
                }
                Ok(None)
            }
            other => {
                Err(file_error(h, format!("unknown frame tag 0x{other:02x} (expected 0x01 block or 0xff trailer)")))
            }
        }
    }
}

fn file_error(height: u64, reason: String) -> VerifyError {
    VerifyError::at(height, Failure::Source(format!("export file: {reason}")))
}

impl<R: BufRead> Iterator for ExportReader<R> {
    type Item = Result<CertifiedBlock, VerifyError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.read_frame() {
            Ok(Some(cb)) => Some(Ok(cb)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
