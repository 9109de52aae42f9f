//! Snapshots of the ledger state at a certified height: the state digest, the validators'
//! signed statements that certify it, and the snapshot file (docs/encoding.md §Snapshots).
//!
//! A node can start from a snapshot instead of replaying the chain from genesis. Nothing in
//! a block header commits to the state (changing the header would change every block hash of
//! existing chains, and an incremental state hash would cost every validator work per record
//! on the hot path), so a snapshot is certified apart: each validator computes the digest of
//! the state after height `h` from its own store and signs a [`Statement`] `{ genesis hash,
//! h, block hash at h, digest }` under its own signing domain
//! ([`Domain::SnapshotStatement`]). Statements by more than 2/3 of the validators in force at
//! `h` naming the same digest certify it, the same quorum as the commit certificate: with at
//! most f faulty validators, such a quorum holds an honest validator that computed the digest
//! from the chain itself (docs/AUDITING.md §Snapshots).
//!
//! The state digest is SHA-256 of [`STATE_DIGEST_TAG`], the genesis hash and the *state
//! part* of the file, which is canonical (one encoding per state): the header at `h`, the
//! Merkle frontier of its tree (the roots of the complete subtrees a store needs to keep
//! appending), then the rules' state in a fixed order: sequences by member index, every
//! record's metadata in leaf order, the active pledges in the order of their pledge records,
//! the governance state, and the IP-loan facts by the SHA-256 of their encoded key. The
//! sections are written and read as a stream in chunks of at most [`CHUNK_ENTRIES_MAX`]
//! entries, so neither side holds the state in memory (except the list of active pledges
//! while writing).

use std::io::{Read, Write};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::attestation::AttestationId;
use crate::block::{BlockHash, BlockHeader, HEADER_BYTES_MAX};
use crate::checkpoint::{self, CHECKPOINT_BYTES_MAX, Checkpoint, VerifierKey};
use crate::codec;
use crate::genesis::Genesis;
use crate::governance::{self, GovState};
use crate::hash::{Hash, HashOf};
use crate::ids::{MemberName, PatentNumber};
use crate::loan_rules::Fact;
use crate::merkle::{NodeHash, node_hash};
use crate::rules::RecordMeta;
use crate::sig::{Domain, PublicKey, SecretKey, Signature};
use crate::store::{LEAVES_PER_READ_MAX, META_BYTES, Store, StoreError, decode_meta, encode_meta};

/// The first bytes of a snapshot file.
pub const MAGIC: &[u8; 8] = b"CREDSNAP";
/// The file format version this code writes and reads.
pub const VERSION: u32 = 1;
/// Prefixes the hashed state part: a state digest is never any other hash of the same bytes.
pub const STATE_DIGEST_TAG: &[u8] = b"credence/snapshot-state/v1\0";
/// Most entries in one chunk of a chunked section.
pub const CHUNK_ENTRIES_MAX: u32 = 4096;
/// Most validator-set changes a snapshot file carries (as a proof bundle does).
pub const SET_CHANGES_MAX: usize = 64;
/// Largest encoded set change (two headers and two certificates, in JSON).
pub const SET_CHANGE_BYTES_MAX: usize = 2 * CHECKPOINT_BYTES_MAX + 16 * 1024;
/// Most statements in a file: one per validator, and a set has at most 100.
pub const STATEMENTS_MAX: usize = 100;
/// Largest encoded governance state.
pub const GOVERNANCE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Largest encoded fact.
pub const FACT_BYTES_MAX: usize = 4096;
/// Most sequence entries: one per member index.
pub const SEQUENCES_MAX: u32 = 1 << 16;
/// Bytes of one record entry: id ‖ metadata.
const RECORD_ENTRY_BYTES: usize = 32 + META_BYTES;

/// Why a snapshot or a statement was refused: the field at fault and the rule it breaks.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[error("{field}: {rule}")]
pub struct SnapshotError {
    pub field: String,
    pub rule: String,
}

fn err(field: impl Into<String>, rule: impl Into<String>) -> SnapshotError {
    SnapshotError { field: field.into(), rule: rule.into() }
}

fn store_err(e: StoreError) -> SnapshotError {
    err("store", e.to_string())
}

// ---------------------------------------------------------------------------------------------
// Statements
// ---------------------------------------------------------------------------------------------

/// What a validator signs: the state after `height` of the chain of `genesis` has `digest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Statement {
    pub genesis: Hash,
    pub height: u64,
    pub block_hash: BlockHash,
    pub digest: Hash,
}

/// Bytes of [`Statement::body`].
pub const STATEMENT_BODY_BYTES: usize = 32 + 8 + 32 + 32;

impl Statement {
    /// `genesis hash ‖ height u64 BE ‖ block hash ‖ digest`, signed as
    /// `credence/snapshot-statement/v1\0 ‖ genesis hash ‖ body`.
    pub fn body(&self) -> [u8; STATEMENT_BODY_BYTES] {
        let mut b = [0u8; STATEMENT_BODY_BYTES];
        b[..32].copy_from_slice(&self.genesis.0);
        b[32..40].copy_from_slice(&self.height.to_be_bytes());
        b[40..72].copy_from_slice(self.block_hash.bytes());
        b[72..].copy_from_slice(&self.digest.0);
        b
    }

    /// The statement signed by the validator `name` with `key`.
    pub fn sign(&self, name: &str, key: &SecretKey) -> SignedStatement {
        SignedStatement {
            signer: name.to_owned(),
            signature: key.sign(Domain::SnapshotStatement, &self.genesis.0, &self.body()),
        }
    }

    /// Whether `signature` is `key`'s over this statement.
    pub fn check(&self, key: &PublicKey, signature: &Signature) -> Result<(), crate::sig::SigError> {
        crate::sig::verify(key, Domain::SnapshotStatement, &self.genesis.0, &self.body(), signature)
    }
}

/// A validator's signature on a [`Statement`], by the validator's member name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedStatement {
    pub signer: String,
    pub signature: Signature,
}

/// Checks that `signed` holds valid signatures over `statement` by more than 2/3 of
/// `validators` (the set in force at its height), each counted once. A line by anyone
/// outside the set, a second line by one validator, or a bad signature refuses the lot,
/// naming the line. Returns the signers, in `validators` order.
pub fn check_statements(
    statement: &Statement,
    signed: &[SignedStatement],
    validators: &[VerifierKey],
) -> Result<Vec<String>, SnapshotError> {
    if signed.len() > STATEMENTS_MAX {
        return Err(err("statements", format!("{} statements; at most {STATEMENTS_MAX}", signed.len())));
    }
    let mut seen = vec![false; validators.len()];
    for (i, s) in signed.iter().enumerate() {
        let field = format!("statements[{i}]");
        let Some(v) = validators.iter().position(|v| v.name == s.signer) else {
            return Err(err(
                format!("{field}.signer"),
                format!("'{}' is not a validator in force at height {}", s.signer, statement.height),
            ));
        };
        if std::mem::replace(&mut seen[v], true) {
            return Err(err(format!("{field}.signer"), format!("'{}' signed more than once", s.signer)));
        }
        statement.check(&validators[v].key, &s.signature).map_err(|e| {
            err(
                format!("{field}.signature"),
                format!("not '{}''s signature on this statement (digest {}): {e}", s.signer, statement.digest),
            )
        })?;
    }
    let needed = checkpoint::quorum_threshold(validators.len());
    let signers: Vec<String> = validators.iter().zip(&seen).filter(|(_, s)| **s).map(|(v, _)| v.name.clone()).collect();
    if signers.len() < needed {
        return Err(err(
            "statements",
            format!(
                "{} of {} validators in force at height {} state this digest; more than 2/3 ({needed}) are needed",
                signers.len(),
                validators.len(),
                statement.height
            ),
        ));
    }
    Ok(signers)
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/// Counts of what a state part holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub sequences: u64,
    pub records: u64,
    pub pledges: u64,
    pub facts: u64,
    pub governance_bytes: u64,
}

/// Writes to `out` and hashes what it writes.
struct HashWrite<'a> {
    out: &'a mut dyn Write,
    sha: Sha256,
}

impl HashWrite<'_> {
    fn put(&mut self, b: &[u8]) -> Result<(), SnapshotError> {
        self.sha.update(b);
        self.out.write_all(b).map_err(|e| err("file", format!("write failed: {e}")))
    }
}

/// A chunked section being written: full chunks of [`CHUNK_ENTRIES_MAX`] entries, then a
/// shorter last one (if any entries are left), then the terminator (a chunk of 0).
struct ChunkWriter {
    buf: Vec<u8>,
    entries: u32,
    total: u64,
}

impl ChunkWriter {
    fn new() -> Self {
        ChunkWriter { buf: Vec::new(), entries: 0, total: 0 }
    }
    fn entry(&mut self, w: &mut HashWrite<'_>, parts: &[&[u8]]) -> Result<(), SnapshotError> {
        for p in parts {
            self.buf.extend_from_slice(p);
        }
        self.entries += 1;
        self.total += 1;
        if self.entries == CHUNK_ENTRIES_MAX { self.flush(w) } else { Ok(()) }
    }
    fn flush(&mut self, w: &mut HashWrite<'_>) -> Result<(), SnapshotError> {
        if self.entries > 0 {
            w.put(&self.entries.to_be_bytes())?;
            w.put(&self.buf)?;
            self.buf.clear();
            self.entries = 0;
        }
        Ok(())
    }
    fn finish(mut self, w: &mut HashWrite<'_>) -> Result<u64, SnapshotError> {
        self.flush(w)?;
        w.put(&0u32.to_be_bytes())?;
        Ok(self.total)
    }
}

/// Writes the state part of the snapshot of `store` at its head to `out` and returns the
/// statement of its digest (unsigned) and what it holds. The store should not change
/// meanwhile (a stopped node's store, or a store pinned to one read transaction).
pub fn write_state<S: Store + ?Sized>(
    store: &S,
    genesis: &Genesis,
    out: &mut dyn Write,
) -> Result<(Statement, Counts), SnapshotError> {
    let head = store.head().map_err(store_err)?.ok_or_else(|| err("store", "holds no block: nothing to snapshot"))?;
    let header = store
        .header(head.height)
        .map_err(store_err)?
        .ok_or_else(|| err("store", format!("the head's header {} is missing", head.height)))?;
    let mut w = HashWrite { out, sha: Sha256::new() };
    w.sha.update(STATE_DIGEST_TAG);
    w.sha.update(genesis.hash().0);
    let mut counts = Counts::default();
    let hb = header.to_bytes();
    w.put(&(hb.len() as u16).to_be_bytes())?;
    w.put(&hb)?;
    let mut pos = 0u64;
    for bit in (0..u64::BITS).rev() {
        if (header.tree_size >> bit) & 1 == 1 {
            let h = store
                .node(bit as u8, pos >> bit)
                .map_err(|e| err("store", format!("the Merkle frontier of {} leaves: {e}", header.tree_size)))?;
            w.put(&h)?;
            pos += 1u64 << bit;
        }
    }
    let gov = store.governance().map_err(store_err)?.unwrap_or_else(|| genesis.governance());
    // Sequences: every member index that has attested, ascending.
    let mut seqs = Vec::new();
    for m in 0..gov.members.len() {
        let m = u16::try_from(m).map_err(|_| err("governance.members", "more than 65,536 members"))?;
        let next = store.next_sequence(m).map_err(store_err)?;
        if next > 1 {
            seqs.push((m, next));
        }
    }
    w.put(&(seqs.len() as u32).to_be_bytes())?;
    for (m, next) in &seqs {
        w.put(&m.to_be_bytes())?;
        w.put(&next.to_be_bytes())?;
    }
    counts.sequences = seqs.len() as u64;
    // Records in leaf order; the active pledges are noted on the way.
    let mut records = ChunkWriter::new();
    let mut pledges: Vec<(PatentNumber, AttestationId)> = Vec::new();
    let mut ids = Vec::with_capacity(LEAVES_PER_READ_MAX);
    let mut start = 0u64;
    while start < header.tree_size {
        let count = (header.tree_size - start).min(LEAVES_PER_READ_MAX as u64) as usize;
        ids.clear();
        store.leaf_ids(start, count, &mut ids).map_err(store_err)?;
        for (i, id) in (start..).zip(&ids) {
            let meta = store
                .record(id)
                .map_err(store_err)?
                .ok_or_else(|| err("store", format!("leaf {i}'s record {id} has no metadata")))?;
            if let Some((patent, _)) = meta.pledge
                && store.active_pledge(&patent).map_err(store_err)? == Some(*id)
            {
                pledges.push((patent, *id));
            }
            records.entry(&mut w, &[id.bytes(), &encode_meta(&meta)])?;
        }
        start += count as u64;
    }
    counts.records = records.finish(&mut w)?;
    let mut section = ChunkWriter::new();
    for (patent, id) in &pledges {
        section.entry(&mut w, &[&<[u8; 13]>::from(*patent), id.bytes()])?;
    }
    counts.pledges = section.finish(&mut w)?;
    let gb = codec::encode(&*gov);
    w.put(&(gb.len() as u32).to_be_bytes())?;
    w.put(&gb)?;
    counts.governance_bytes = gb.len() as u64;
    let mut facts = ChunkWriter::new();
    let mut fault = None;
    store
        .for_each_fact(&mut |key, value| {
            if let Err(e) = facts.entry(&mut w, &[key, &(value.len() as u16).to_be_bytes(), value]) {
                fault = Some(e);
                return Err(StoreError::Backend("snapshot write failed".into()));
            }
            Ok(())
        })
        .map_err(|e| fault.take().unwrap_or_else(|| store_err(e)))?;
    counts.facts = facts.finish(&mut w)?;
    let digest = Hash(w.sha.finalize().into());
    let statement = Statement { genesis: genesis.hash(), height: header.height, block_hash: header.hash(), digest };
    Ok((statement, counts))
}

/// The statement of the state of `store` at its head (its digest), without writing a file.
pub fn state_statement<S: Store + ?Sized>(store: &S, genesis: &Genesis) -> Result<(Statement, Counts), SnapshotError> {
    write_state(store, genesis, &mut std::io::sink())
}

/// Writes a whole snapshot file of `store` at its head: the prefix (genesis hash,
/// `certificate` of the head, `set_changes` from genesis to the head, each the JSON of a
/// proof bundle's set change), the state part and `statements`.
pub fn write_file<S: Store + ?Sized>(
    store: &S,
    genesis: &Genesis,
    set_changes: &[Vec<u8>],
    statements: &[SignedStatement],
    out: &mut dyn Write,
) -> Result<(Statement, Counts), SnapshotError> {
    let head = store.head().map_err(store_err)?.ok_or_else(|| err("store", "holds no block: nothing to snapshot"))?;
    let cert = store
        .certificate(head.height)
        .map_err(store_err)?
        .ok_or_else(|| err("store", format!("the head's certificate {} is missing", head.height)))?;
    write_prefix(out, genesis, &cert, set_changes)?;
    let (statement, counts) = write_state(store, genesis, out)?;
    write_statements(out, statements)?;
    Ok((statement, counts))
}

fn io_write(e: std::io::Error) -> SnapshotError {
    err("file", format!("write failed: {e}"))
}

fn write_prefix(
    out: &mut dyn Write,
    genesis: &Genesis,
    certificate: &Checkpoint,
    set_changes: &[Vec<u8>],
) -> Result<(), SnapshotError> {
    if set_changes.len() > SET_CHANGES_MAX {
        return Err(err("set_changes", format!("{} changes; at most {SET_CHANGES_MAX}", set_changes.len())));
    }
    let note = certificate.to_note();
    let mut b = Vec::new();
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&VERSION.to_be_bytes());
    b.extend_from_slice(&genesis.hash().0);
    b.extend_from_slice(&(note.len() as u32).to_be_bytes());
    b.extend_from_slice(note.as_bytes());
    b.push(set_changes.len() as u8);
    for (i, c) in set_changes.iter().enumerate() {
        if c.len() > SET_CHANGE_BYTES_MAX {
            return Err(err(format!("set_changes[{i}]"), format!("{} bytes; at most {SET_CHANGE_BYTES_MAX}", c.len())));
        }
        b.extend_from_slice(&(c.len() as u32).to_be_bytes());
        b.extend_from_slice(c);
    }
    out.write_all(&b).map_err(io_write)
}

/// Writes the statements section (the file's last): a count, then each signer's name and signature.
pub fn write_statements(out: &mut dyn Write, statements: &[SignedStatement]) -> Result<(), SnapshotError> {
    if statements.len() > STATEMENTS_MAX {
        return Err(err("statements", format!("{} statements; at most {STATEMENTS_MAX}", statements.len())));
    }
    let mut b = vec![statements.len() as u8];
    for (i, s) in statements.iter().enumerate() {
        checkpoint::check_key_name(&s.signer).map_err(|r| err(format!("statements[{i}].signer"), r))?;
        let name = s.signer.as_bytes();
        let len =
            u8::try_from(name.len()).map_err(|_| err(format!("statements[{i}].signer"), "longer than 255 bytes"))?;
        b.push(len);
        b.extend_from_slice(name);
        b.extend_from_slice(&s.signature.0);
    }
    out.write_all(&b).map_err(io_write)
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/// Reads exactly, counts the bytes and hashes them while `sha` is set.
struct Input<R> {
    r: R,
    sha: Option<Sha256>,
    pos: u64,
}

impl<R: Read> Input<R> {
    fn fill(&mut self, buf: &mut [u8], field: &str) -> Result<(), SnapshotError> {
        self.r.read_exact(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => err(field, format!("the file ends inside it (at byte {})", self.pos)),
            _ => err(field, format!("read failed: {e}")),
        })?;
        if let Some(sha) = &mut self.sha {
            sha.update(&*buf);
        }
        self.pos += buf.len() as u64;
        Ok(())
    }
    fn array<const N: usize>(&mut self, field: &str) -> Result<[u8; N], SnapshotError> {
        let mut b = [0u8; N];
        self.fill(&mut b, field)?;
        Ok(b)
    }
    /// `len` bytes, refused above `max` before anything is allocated.
    fn bytes(&mut self, len: usize, max: usize, field: &str) -> Result<Vec<u8>, SnapshotError> {
        if len > max {
            return Err(err(field, format!("{len} bytes; at most {max}")));
        }
        let mut b = vec![0u8; len];
        self.fill(&mut b, field)?;
        Ok(b)
    }
    fn u8(&mut self, field: &str) -> Result<u8, SnapshotError> {
        Ok(self.array::<1>(field)?[0])
    }
    fn u16(&mut self, field: &str) -> Result<u16, SnapshotError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }
    fn u32(&mut self, field: &str) -> Result<u32, SnapshotError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }
    fn u64(&mut self, field: &str) -> Result<u64, SnapshotError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }
}

/// The part of a snapshot file before its state.
#[derive(Clone, Debug)]
pub struct Prefix {
    pub genesis: Hash,
    pub certificate: Checkpoint,
    /// Each the UTF-8 JSON of a validator-set change (a proof bundle's `set_changes` item).
    pub set_changes: Vec<Vec<u8>>,
}

/// One entry of the state, in file order.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// A member index and the sequence it must use next.
    Sequence(u16, u64),
    /// The leaf index, id and metadata of a record.
    Record(u64, AttestationId, RecordMeta),
    /// A patent and the id of its active pledge.
    Pledge(PatentNumber, AttestationId),
    Governance(Arc<GovState>),
    /// The SHA-256 of an encoded fact key (a store's `facts` key) and its fact.
    Fact([u8; 32], Fact),
}

/// Where a [`StateReader`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    SequencesCount,
    Sequences { left: u32, last: Option<u16> },
    Records,
    Pledges,
    Governance,
    Facts { last: Option<[u8; 32]> },
    Done,
}

/// The chunk framing of a section being read.
#[derive(Default)]
struct Chunks {
    left: u32,
    short_seen: bool,
}

impl Chunks {
    /// Whether another entry follows (then it is next in the input); `false` once the
    /// terminator is read. Refuses a chunk above the maximum and a short chunk not last.
    fn next<R: Read>(&mut self, input: &mut Input<R>, field: &str) -> Result<bool, SnapshotError> {
        if self.left > 0 {
            self.left -= 1;
            return Ok(true);
        }
        let n = input.u32(&format!("{field} chunk"))?;
        if n == 0 {
            *self = Chunks::default();
            return Ok(false);
        }
        if n > CHUNK_ENTRIES_MAX {
            return Err(err(format!("{field} chunk"), format!("{n} entries; at most {CHUNK_ENTRIES_MAX}")));
        }
        if self.short_seen {
            return Err(err(
                format!("{field} chunk"),
                format!("follows a chunk of fewer than {CHUNK_ENTRIES_MAX} entries, which must be the last"),
            ));
        }
        self.short_seen = n < CHUNK_ENTRIES_MAX;
        self.left = n - 1;
        Ok(true)
    }
}

/// Streams the state part of a snapshot file, entry by entry, hashing it; after the last
/// entry it knows the digest. The header and frontier are read (and the frontier checked
/// against the header's tree size and root) when it is made.
pub struct StateReader<R> {
    input: Input<R>,
    pub header: BlockHeader,
    frontier: Vec<NodeHash>,
    section: Section,
    chunks: Chunks,
    records: u64,
    counts: Counts,
    digest: Option<Hash>,
    expected: Option<Hash>,
    failed: bool,
}

/// Opens a snapshot file: reads and checks the prefix (magic, version, the genesis hash
/// against `genesis`, the certificate's form) and the state's header and frontier.
pub fn open<R: Read>(r: R, genesis: &Genesis) -> Result<(Prefix, StateReader<R>), SnapshotError> {
    let mut input = Input { r, sha: None, pos: 0 };
    let magic = input.array::<8>("magic")?;
    if &magic != MAGIC {
        return Err(err("magic", "not a Credence snapshot file (expected \"CREDSNAP\")"));
    }
    let version = input.u32("version")?;
    if version != VERSION {
        return Err(err("version", format!("{version}; this build reads version {VERSION}")));
    }
    let g = Hash(input.array("genesis")?);
    if g != genesis.hash() {
        return Err(err(
            "genesis",
            format!("the snapshot is of chain {g}, not of the given genesis {}", genesis.hash()),
        ));
    }
    let len = input.u32("certificate")? as usize;
    let note = input.bytes(len, CHECKPOINT_BYTES_MAX, "certificate")?;
    let certificate = Checkpoint::parse_note_bytes(&note).map_err(|e| err("certificate", e.to_string()))?;
    let n = input.u8("set_changes")? as usize;
    if n > SET_CHANGES_MAX {
        return Err(err("set_changes", format!("{n} changes; at most {SET_CHANGES_MAX}")));
    }
    let mut set_changes = Vec::with_capacity(n);
    for i in 0..n {
        let field = format!("set_changes[{i}]");
        let len = input.u32(&field)? as usize;
        set_changes.push(input.bytes(len, SET_CHANGE_BYTES_MAX, &field)?);
    }
    let mut sha = Sha256::new();
    sha.update(STATE_DIGEST_TAG);
    sha.update(g.0);
    input.sha = Some(sha);
    let len = input.u16("header")? as usize;
    let hb = input.bytes(len, HEADER_BYTES_MAX, "header")?;
    let header = BlockHeader::from_bytes(&hb).map_err(|e| err("header", e.to_string()))?;
    if header.height == 0 {
        return Err(err("header.height", "0; a snapshot is of a block's state (height 1 or more)"));
    }
    let mut frontier = Vec::with_capacity(header.tree_size.count_ones() as usize);
    for i in 0..header.tree_size.count_ones() {
        frontier.push(input.array::<32>(&format!("frontier[{i}]"))?);
    }
    let mut it = frontier.iter().rev();
    let root = match it.next() {
        None => crate::merkle::empty_root(),
        Some(last) => it.fold(*last, |acc, left| node_hash(left, &acc)),
    };
    if root != header.tree_root.0 {
        return Err(err(
            "frontier",
            format!("its subtrees give a root other than the header's tree_root for tree_size {}", header.tree_size),
        ));
    }
    let reader = StateReader {
        input,
        header,
        frontier,
        section: Section::SequencesCount,
        chunks: Chunks::default(),
        records: 0,
        counts: Counts::default(),
        digest: None,
        expected: None,
        failed: false,
    };
    Ok((Prefix { genesis: g, certificate, set_changes }, reader))
}

impl<R> std::fmt::Debug for StateReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateReader")
            .field("height", &self.header.height)
            .field("section", &self.section)
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

impl<R: Read> StateReader<R> {
    /// What a store imports besides the entries (the reader then yields the entries).
    pub fn base(&self, certificate: Checkpoint) -> Base {
        Base { header: self.header.clone(), certificate, frontier: self.frontier_nodes() }
    }

    /// The frontier as node addresses `(level, index, hash)`, leftmost first.
    pub fn frontier_nodes(&self) -> Vec<(u8, u64, NodeHash)> {
        let size = self.header.tree_size;
        let mut out = Vec::with_capacity(self.frontier.len());
        let mut hashes = self.frontier.iter();
        let mut pos = 0u64;
        for bit in (0..u64::BITS).rev() {
            if (size >> bit) & 1 == 1 {
                if let Some(h) = hashes.next() {
                    out.push((bit as u8, pos >> bit, *h));
                }
                pos += 1u64 << bit;
            }
        }
        out
    }

    /// Makes the last item an error unless the digest comes out as `digest` (an import of a
    /// file verified before: a file changed in between is refused, and nothing is imported).
    pub fn expect_digest(&mut self, digest: Hash) {
        self.expected = Some(digest);
    }

    /// The digest, once every item was read.
    pub fn digest(&self) -> Option<Hash> {
        self.digest
    }

    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// The byte offset in the file (after the state, where the statements begin, once done).
    pub fn position(&self) -> u64 {
        self.input.pos
    }

    /// Reads the statements after the state and checks that nothing follows them. Call
    /// after the last item.
    pub fn finish(mut self) -> Result<(Hash, Vec<SignedStatement>), SnapshotError> {
        let Some(digest) = self.digest else {
            return Err(err("state", "not read to its end"));
        };
        let n = self.input.u8("statements")? as usize;
        if n > STATEMENTS_MAX {
            return Err(err("statements", format!("{n} statements; at most {STATEMENTS_MAX}")));
        }
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let field = format!("statements[{i}].signer");
            let len = self.input.u8(&field)? as usize;
            let name = self.input.bytes(len, 255, &field)?;
            let name = String::from_utf8(name).map_err(|_| err(&field, "not UTF-8"))?;
            checkpoint::check_key_name(&name).map_err(|r| err(&field, r))?;
            let signature = Signature(self.input.array(&format!("statements[{i}].signature"))?);
            out.push(SignedStatement { signer: name, signature });
        }
        let mut one = [0u8; 1];
        match self.input.r.read(&mut one) {
            Ok(0) => Ok((digest, out)),
            Ok(_) => Err(err("statements", "trailing bytes after the last statement")),
            Err(e) => Err(err("file", format!("read failed: {e}"))),
        }
    }

    fn read_item(&mut self) -> Result<Option<Item>, SnapshotError> {
        loop {
            match self.section {
                Section::SequencesCount => {
                    let n = self.input.u32("sequences")?;
                    if n > SEQUENCES_MAX {
                        return Err(err("sequences", format!("{n} entries; at most {SEQUENCES_MAX}")));
                    }
                    self.section = Section::Sequences { left: n, last: None };
                }
                Section::Sequences { left: 0, .. } => self.section = Section::Records,
                Section::Sequences { left, last } => {
                    let i = self.counts.sequences;
                    let m = self.input.u16(&format!("sequences[{i}].member"))?;
                    let next = self.input.u64(&format!("sequences[{i}].next"))?;
                    if last.is_some_and(|l| l >= m) {
                        return Err(err(format!("sequences[{i}].member"), "member indexes must ascend strictly"));
                    }
                    if next < 2 {
                        return Err(err(
                            format!("sequences[{i}].next"),
                            "a member listed has attested: next is at least 2",
                        ));
                    }
                    self.counts.sequences += 1;
                    self.section = Section::Sequences { left: left - 1, last: Some(m) };
                    return Ok(Some(Item::Sequence(m, next)));
                }
                Section::Records => {
                    if !self.chunks.next(&mut self.input, "records")? {
                        if self.records != self.header.tree_size {
                            return Err(err(
                                "records",
                                format!(
                                    "{} records; the header's tree_size is {}",
                                    self.records, self.header.tree_size
                                ),
                            ));
                        }
                        self.section = Section::Pledges;
                        continue;
                    }
                    let index = self.records;
                    if index >= self.header.tree_size {
                        return Err(err(
                            "records",
                            format!("more records than the header's tree_size {}", self.header.tree_size),
                        ));
                    }
                    let field = format!("records[{index}]");
                    let b = self.input.array::<RECORD_ENTRY_BYTES>(&field)?;
                    let mut id = [0u8; 32];
                    id.copy_from_slice(&b[..32]);
                    let meta = decode_meta(&b[32..], &|| format!("{field}.meta"))
                        .map_err(|e| err(format!("{field}.meta"), e.to_string()))?;
                    self.records += 1;
                    self.counts.records += 1;
                    return Ok(Some(Item::Record(index, HashOf::from_hash(Hash(id)), meta)));
                }
                Section::Pledges => {
                    if !self.chunks.next(&mut self.input, "pledges")? {
                        self.section = Section::Governance;
                        continue;
                    }
                    let field = format!("pledges[{}]", self.counts.pledges);
                    let p = self.input.array::<13>(&format!("{field}.patent"))?;
                    let patent =
                        PatentNumber::try_from(p).map_err(|e| err(format!("{field}.patent"), e.to_string()))?;
                    let id = HashOf::from_hash(Hash(self.input.array(&format!("{field}.id"))?));
                    self.counts.pledges += 1;
                    return Ok(Some(Item::Pledge(patent, id)));
                }
                Section::Governance => {
                    let len = self.input.u32("governance")? as usize;
                    let b = self.input.bytes(len, GOVERNANCE_BYTES_MAX, "governance")?;
                    let g: GovState = codec::decode("governance", &b, GOVERNANCE_BYTES_MAX)
                        .map_err(|e| err("governance", e.to_string()))?;
                    if codec::encode(&g) != b {
                        return Err(err("governance", "not the canonical encoding of a governance state"));
                    }
                    self.counts.governance_bytes = len as u64;
                    self.section = Section::Facts { last: None };
                    return Ok(Some(Item::Governance(Arc::new(g))));
                }
                Section::Facts { last } => {
                    if !self.chunks.next(&mut self.input, "facts")? {
                        let Some(sha) = self.input.sha.take() else {
                            return Err(err("state", "read twice"));
                        };
                        let digest = Hash(sha.finalize().into());
                        self.digest = Some(digest);
                        self.section = Section::Done;
                        if let Some(e) = self.expected.filter(|e| *e != digest) {
                            return Err(err(
                                "state",
                                format!("digest {digest}, not the {e} verified before: the file changed"),
                            ));
                        }
                        return Ok(None);
                    }
                    let field = format!("facts[{}]", self.counts.facts);
                    let key = self.input.array::<32>(&format!("{field}.key"))?;
                    if last.is_some_and(|l| l >= key) {
                        return Err(err(format!("{field}.key"), "fact keys must ascend strictly"));
                    }
                    let len = self.input.u16(&format!("{field}.value"))? as usize;
                    let v = self.input.bytes(len, FACT_BYTES_MAX, &format!("{field}.value"))?;
                    let fact: Fact = codec::decode("fact", &v, FACT_BYTES_MAX)
                        .map_err(|e| err(format!("{field}.value"), e.to_string()))?;
                    if codec::encode(&fact) != v {
                        return Err(err(format!("{field}.value"), "not the canonical encoding of a fact"));
                    }
                    self.counts.facts += 1;
                    self.section = Section::Facts { last: Some(key) };
                    return Ok(Some(Item::Fact(key, fact)));
                }
                Section::Done => return Ok(None),
            }
        }
    }
}

impl<R: Read> Iterator for StateReader<R> {
    type Item = Result<Item, SnapshotError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.read_item() {
            Ok(item) => item.map(Ok),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Verifying
// ---------------------------------------------------------------------------------------------

/// What a verified snapshot holds.
#[derive(Clone, Debug)]
pub struct Verified {
    pub statement: Statement,
    pub header: BlockHeader,
    pub certificate: Checkpoint,
    /// The validators whose statements certify the digest.
    pub signers: Vec<String>,
    /// Validators in force at the height.
    pub validators: usize,
    pub counts: Counts,
    /// Where the statements begin in the file.
    pub statements_offset: u64,
    pub statements: Vec<SignedStatement>,
}

/// Checks that `certificate` certifies `header` (origin, size, root, height, block hash)
/// with valid signatures of more than 2/3 of `validators` and no other line.
pub fn check_certificate(
    genesis: &Genesis,
    header: &BlockHeader,
    certificate: &Checkpoint,
    validators: &[VerifierKey],
) -> Result<(), SnapshotError> {
    let b = &certificate.body;
    let mismatch = |field: &str| err(format!("certificate.{field}"), "does not match the snapshot's header");
    if b.origin != genesis.checkpoint_origin {
        return Err(mismatch("origin"));
    }
    if b.height != header.height {
        return Err(mismatch("height"));
    }
    if b.tree_size != header.tree_size {
        return Err(mismatch("tree_size"));
    }
    if b.root != header.tree_root.0 {
        return Err(mismatch("root"));
    }
    if b.block_hash != *header.hash().bytes() {
        return Err(mismatch("block_hash"));
    }
    let names: Result<Vec<(MemberName, PublicKey)>, _> =
        validators.iter().map(|v| MemberName::parse("validator", &v.name).map(|n| (n, v.key))).collect();
    let mut set = names.map_err(|e| err("set_changes", format!("a validator name: {e}")))?;
    set.sort_by(|a, b| a.0.cmp(&b.0));
    if governance::set_hash(&set) != header.validator_set {
        return Err(err(
            "header.validator_set",
            "is not the hash of the validator set the set changes reach: a set change is missing",
        ));
    }
    checkpoint::verify_quorum_strict(certificate, validators).map_err(|e| err("certificate", e.to_string()))?;
    Ok(())
}

/// Verifies a whole snapshot file against `genesis`: the prefix, the set in force at the
/// snapshot's height (`set_in_force` walks the file's set changes from genesis and returns
/// that set), the certificate of the header against it, the frontier against the header,
/// every state entry's form and order, the digest recomputed from the entries, and the
/// statements' quorum on that digest. `visit` sees every state entry in order (an import
/// writes them; it should keep nothing until this returns `Ok`).
pub fn verify<R: Read>(
    r: R,
    genesis: &Genesis,
    set_in_force: impl FnOnce(&[Vec<u8>], u64) -> Result<Vec<VerifierKey>, SnapshotError>,
    mut visit: impl FnMut(&Item) -> Result<(), SnapshotError>,
) -> Result<Verified, SnapshotError> {
    let (prefix, mut reader) = open(r, genesis)?;
    let header = reader.header.clone();
    let validators = set_in_force(&prefix.set_changes, header.height)?;
    check_certificate(genesis, &header, &prefix.certificate, &validators)?;
    for item in reader.by_ref() {
        visit(&item?)?;
    }
    let counts = reader.counts();
    let statements_offset = reader.position();
    let (digest, statements) = reader.finish()?;
    let statement = Statement { genesis: genesis.hash(), height: header.height, block_hash: header.hash(), digest };
    let signers = check_statements(&statement, &statements, &validators)?;
    Ok(Verified {
        statement,
        header,
        certificate: prefix.certificate,
        signers,
        validators: validators.len(),
        counts,
        statements_offset,
        statements,
    })
}

/// What a store imports besides the state entries: the base block's header and
/// certificate and the Merkle frontier of its tree.
#[derive(Clone, Debug)]
pub struct Base {
    pub header: BlockHeader,
    pub certificate: Checkpoint,
    /// The Merkle frontier of `header.tree_size` leaves as `(level, index, hash)`.
    pub frontier: Vec<(u8, u64, NodeHash)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::{self, ChainBuilder};
    use crate::merkle::NodeReader;
    use crate::rules::StateView;
    use crate::store::{MemStore, RedbOptions, RedbStore};
    use crate::verify::{ChainContext, Tip};

    const SEED: u64 = 11;
    const T0: u64 = 1_700_000_000_000;

    /// A loan-world chain of `blocks` blocks of 20 records in a [`MemStore`] and a
    /// [`RedbStore`] (small staging limit, so merged, frozen and staged state all appear).
    fn chain(blocks: usize) -> (ChainBuilder, MemStore, RedbStore, tempfile::TempDir) {
        chain_of(&[(blocks, 20)])
    }

    /// [`chain`] of `(blocks, records)` runs.
    fn chain_of(runs: &[(usize, usize)]) -> (ChainBuilder, MemStore, RedbStore, tempfile::TempDir) {
        let mut b = ChainBuilder::with_loan_world(SEED, T0).unwrap();
        let mut mem = MemStore::new(b.genesis());
        let dir = tempfile::tempdir().unwrap();
        let options = RedbOptions { stage_leaves_max: 64, merge_ops_per_commit_max: 50, ..RedbOptions::default() };
        let mut redb = RedbStore::open_with(&dir.path().join("l.redb"), b.genesis(), options).unwrap();
        for &(blocks, records) in runs {
            for _ in 0..blocks {
                let vb = b.next_block(records).unwrap();
                mem.commit(&vb).unwrap();
                redb.commit(&vb).unwrap();
            }
        }
        (b, mem, redb, dir)
    }

    fn validator_statements(genesis: &Genesis, st: &Statement) -> Vec<SignedStatement> {
        genesis.verifier_keys().iter().map(|v| st.sign(&v.name, &demo::member_key(SEED, &v.name))).collect()
    }

    fn genesis_set(genesis: &Genesis) -> impl FnOnce(&[Vec<u8>], u64) -> Result<Vec<VerifierKey>, SnapshotError> {
        let keys = genesis.verifier_keys();
        move |changes, _| {
            assert!(changes.is_empty());
            Ok(keys)
        }
    }

    /// A signed snapshot file of `store` and its statement.
    fn file_of(store: &impl Store, genesis: &Genesis) -> (Vec<u8>, Statement) {
        let (st, _) = state_statement(store, genesis).unwrap();
        let mut out = Vec::new();
        write_file(store, genesis, &[], &validator_statements(genesis, &st), &mut out).unwrap();
        (out, st)
    }

    fn verify_bytes(bytes: &[u8], genesis: &Genesis) -> Result<Verified, SnapshotError> {
        verify(bytes, genesis, genesis_set(genesis), |_| Ok(()))
    }

    fn state_bytes(store: &impl Store, genesis: &Genesis) -> (Vec<u8>, Statement, Counts) {
        let mut out = Vec::new();
        let (st, counts) = write_state(store, genesis, &mut out).unwrap();
        (out, st, counts)
    }

    #[test]
    fn the_durable_store_and_the_model_give_the_same_state_bytes() {
        // The loan world (facts) and then the bulk mix (old-style pledges), in small blocks at the end.
        let (b, mem, redb, _dir) = chain_of(&[(5, 1000), (30, 20)]);
        assert!(redb.merge_progress().is_some() || redb.staged_leaves() > 0, "staged state is part of the test");
        let (m, ms, mc) = state_bytes(&mem, b.genesis());
        let (r, rs, rc) = state_bytes(&redb, b.genesis());
        assert_eq!(mc, rc);
        assert!(m == r, "the same state gives the same bytes");
        assert_eq!(ms, rs);
        assert_eq!(mc.records, 5600);
        assert!(mc.facts > 0 && mc.pledges > 0 && mc.sequences > 0, "every section is exercised: {mc:?}");
        // The digest is SHA-256 over the tag, the genesis hash and exactly these bytes.
        assert_eq!(ms.digest, Hash::digest(&[STATE_DIGEST_TAG, &b.genesis().hash().0, &m]));
        // A changed state gives another digest.
        let mut b2 = b;
        let mut mem2 = mem;
        mem2.commit(&b2.next_block(1).unwrap()).unwrap();
        assert_ne!(state_statement(&mem2, b2.genesis()).unwrap().0.digest, ms.digest);
    }

    /// The digest of a small deterministic chain: a change to the state encoding, the digest
    /// rule or the demo chain shows here (update only with docs/encoding.md §Snapshots).
    #[test]
    fn golden_digest_of_a_small_chain() {
        let mut b = ChainBuilder::with_loan_world(7, T0).unwrap();
        let mut mem = MemStore::new(b.genesis());
        for _ in 0..4 {
            mem.commit(&b.next_block(5).unwrap()).unwrap();
        }
        let (st, counts) = state_statement(&mem, b.genesis()).unwrap();
        assert_eq!(counts.records, 20);
        assert_eq!(st.height, 4);
        assert_eq!(st.digest.to_hex(), "bf1d5c80a9797fc11e0c3fed1454fd42c054de2c65f9c90edca5e6564baea096");
    }

    #[test]
    fn a_signed_snapshot_verifies_and_names_what_it_holds() {
        let (b, mem, _redb, _dir) = chain(6);
        let (bytes, st) = file_of(&mem, b.genesis());
        let v = verify_bytes(&bytes, b.genesis()).unwrap();
        assert_eq!(v.statement, st);
        assert_eq!(v.header.height, 6);
        assert_eq!(v.counts.records, 120);
        assert_eq!(v.signers.len(), b.genesis().verifier_keys().len());
        assert_eq!(
            v.statements_offset as usize + 1 + v.statements.iter().map(|s| 1 + s.signer.len() + 64).sum::<usize>(),
            bytes.len()
        );
    }

    /// The offset of the first record entry in a file of `bytes`.
    fn records_at(bytes: &[u8], genesis: &Genesis) -> usize {
        let (_, r) = open(bytes, genesis).unwrap();
        // After the header and frontier: the sequences count and entries, then the first chunk count.
        let seqs = u32::from_be_bytes(bytes[r.position() as usize..][..4].try_into().unwrap()) as usize;
        r.position() as usize + 4 + seqs * 10 + 4
    }

    fn refused(bytes: &[u8], genesis: &Genesis) -> SnapshotError {
        verify_bytes(bytes, genesis).expect_err("refused")
    }

    #[test]
    fn a_tampered_record_is_refused_by_the_statements() {
        let (b, mem, _redb, _dir) = chain(3);
        let g = b.genesis();
        let (bytes, _) = file_of(&mem, g);
        let at = records_at(&bytes, g);
        // A record's status byte (its metadata's fourth byte) changed from active to revoked.
        let mut t = bytes.clone();
        assert_eq!(t[at + 32 + 3], 0);
        t[at + 32 + 3] = 1;
        let e = refused(&t, g);
        assert_eq!(e.field, "statements[0].signature", "{e}");
        // A record's id changed: the same.
        let mut t = bytes.clone();
        t[at + 5] ^= 1;
        assert_eq!(refused(&t, g).field, "statements[0].signature");
        // An unknown record status is refused where it is.
        let mut t = bytes;
        t[at + 32 + 3] = 9;
        let e = refused(&t, g);
        assert_eq!(e.field, "records[0].meta", "{e}");
    }

    #[test]
    fn a_wrong_frontier_is_refused() {
        let (b, mem, _redb, _dir) = chain(3);
        let g = b.genesis();
        let (mut bytes, _) = file_of(&mem, g);
        let (_, r) = open(bytes.as_slice(), g).unwrap();
        let frontier_end = r.position() as usize;
        bytes[frontier_end - 1] ^= 1;
        let e = refused(&bytes, g);
        assert_eq!(e.field, "frontier", "{e}");
    }

    #[test]
    fn statements_by_others_too_few_or_twice_are_refused() {
        let (b, mem, _redb, _dir) = chain(3);
        let g = b.genesis();
        let (st, _) = state_statement(&mem, g).unwrap();
        let validators = g.verifier_keys();
        let all = validator_statements(g, &st);
        assert_eq!(check_statements(&st, &all, &validators).unwrap().len(), validators.len());
        // A member that is not a validator.
        let outsider = g.members.iter().find(|m| !m.validator).expect("a non-validator member").name.to_string();
        let mut s = all.clone();
        s.push(st.sign(&outsider, &demo::member_key(SEED, &outsider)));
        let e = check_statements(&st, &s, &validators).unwrap_err();
        assert_eq!(e.field, format!("statements[{}].signer", all.len()), "{e}");
        // A validator's name with a key not in force (another set's key).
        let mut s = all.clone();
        s[1] = st.sign(&s[1].signer, &demo::member_key(SEED + 1, &s[1].signer));
        let e = check_statements(&st, &s, &validators).unwrap_err();
        assert_eq!(e.field, "statements[1].signature", "{e}");
        // Twice by one validator.
        let mut s = all.clone();
        s[1] = s[0].clone();
        assert_eq!(check_statements(&st, &s, &validators).unwrap_err().field, "statements[1].signer");
        // Too few: exactly 2/3 of the validators is not more than 2/3.
        let needed = checkpoint::quorum_threshold(validators.len());
        let e = check_statements(&st, &all[..needed - 1], &validators).unwrap_err();
        assert_eq!(e.field, "statements", "{e}");
        assert_eq!(check_statements(&st, &all[..needed], &validators).unwrap().len(), needed);
        // Another digest: every signature fails.
        let other = Statement { digest: Hash([7; 32]), ..st };
        assert_eq!(check_statements(&other, &all, &validators).unwrap_err().field, "statements[0].signature");
        // In a file, too few statements are refused too.
        let mut out = Vec::new();
        write_file(&mem, g, &[], &all[..needed - 1], &mut out).unwrap();
        assert_eq!(refused(&out, g).field, "statements");
    }

    #[test]
    fn the_file_form_is_strict() {
        let (b, mem, _redb, _dir) = chain(2);
        let g = b.genesis();
        let (bytes, _) = file_of(&mem, g);
        let mut t = bytes.clone();
        t.push(0);
        assert_eq!(refused(&t, g).field, "statements");
        assert_eq!(refused(&bytes[..bytes.len() - 10], g).field, format!("statements[{}].signature", 3));
        let mut t = bytes.clone();
        t[0] = b'X';
        assert_eq!(refused(&t, g).field, "magic");
        let mut t = bytes.clone();
        t[11] = 2;
        assert_eq!(refused(&t, g).field, "version");
        let other = ChainBuilder::with_loan_world(SEED + 1, T0).unwrap();
        assert_eq!(refused(&bytes, other.genesis()).field, "genesis");
        // A records chunk count above the maximum.
        let at = records_at(&bytes, g);
        let mut t = bytes.clone();
        t[at - 4..at].copy_from_slice(&(CHUNK_ENTRIES_MAX + 1).to_be_bytes());
        assert_eq!(refused(&t, g).field, "records chunk");
        // A short chunk that is not the last (split 40 records as 39 + 1).
        let mut t = bytes[..at - 4].to_vec();
        t.extend_from_slice(&39u32.to_be_bytes());
        t.extend_from_slice(&bytes[at..at + 39 * RECORD_ENTRY_BYTES]);
        t.extend_from_slice(&1u32.to_be_bytes());
        t.extend_from_slice(&bytes[at + 39 * RECORD_ENTRY_BYTES..]);
        assert_eq!(refused(&t, g).field, "records chunk");
    }

    #[test]
    fn a_certificate_of_another_header_is_refused() {
        let (b, mem, _redb, _dir) = chain(3);
        let g = b.genesis();
        let (st, _) = state_statement(&mem, g).unwrap();
        let header = mem.header(3).unwrap().unwrap();
        let cert2 = mem.certificate(2).unwrap().unwrap();
        let e = check_certificate(g, &header, &cert2, &g.verifier_keys()).unwrap_err();
        assert_eq!(e.field, "certificate.height");
        let cert = mem.certificate(3).unwrap().unwrap();
        check_certificate(g, &header, &cert, &g.verifier_keys()).unwrap();
        // Against a set other than the one the header names.
        let fewer = g.verifier_keys()[1..].to_vec();
        assert_eq!(check_certificate(g, &header, &cert, &fewer).unwrap_err().field, "header.validator_set");
        let _ = st;
    }

    // -----------------------------------------------------------------------------------------
    // Import
    // -----------------------------------------------------------------------------------------

    fn tip_of(store: &impl Store) -> Tip {
        let h = store.head().unwrap().unwrap();
        Tip {
            height: h.height,
            hash: h.hash,
            time_ms: h.time_ms,
            frontier: crate::merkle::Frontier::from_reader(h.tree_size, store).unwrap(),
        }
    }

    /// Imports a verified file into `store`.
    fn import_into(store: &mut impl Store, bytes: &[u8], g: &Genesis) {
        let v = verify_bytes(bytes, g).unwrap();
        let (prefix, mut reader) = open(bytes, g).unwrap();
        reader.expect_digest(v.statement.digest);
        let base = reader.base(prefix.certificate);
        store.import_snapshot(&base, &mut reader).unwrap();
    }

    /// A chain snapshotted at height 8, imported into a new MemStore and a new RedbStore; the
    /// next blocks are verified against the imported stores (the rules read the imported
    /// state, the roots come from the frontier) and committed: heads, roots and state equal
    /// the full stores'; reads below the base say so; the RedbStore reopens.
    #[test]
    fn a_store_imported_at_a_height_continues_like_a_full_one() {
        let (mut b, mut mem, mut redb, dir) = chain(8);
        let g = b.genesis().clone();
        let (bytes, st) = file_of(&mem, &g);
        let mut mem_i = MemStore::new(&g);
        import_into(&mut mem_i, &bytes, &g);
        let path = dir.path().join("imported.redb");
        // Small generations and merge slices, so that the blocks after the base build id runs
        // over the imported records and merge them across commits.
        let options = RedbOptions {
            stage_leaves_max: 64,
            merge_ops_per_commit_max: 50,
            compact_ops_per_commit_max: 100,
            ..RedbOptions::default()
        };
        let mut redb_i = RedbStore::open_with(&path, &g, options).unwrap();
        import_into(&mut redb_i, &bytes, &g);
        for s in [&mem_i as &dyn Store, &redb_i] {
            assert_eq!(s.head().unwrap(), mem.head().unwrap());
            assert_eq!(s.base(), Some(crate::store::BaseAt { height: 8, tree_size: 160 }));
        }
        // The imported stores give the snapshot's own state bytes back.
        assert_eq!(state_bytes(&mem_i, &g).0, state_bytes(&mem, &g).0);
        assert_eq!(state_bytes(&redb_i, &g).0, state_bytes(&mem, &g).0);
        assert_eq!(state_statement(&redb_i, &g).unwrap().0, st);
        let ctx = ChainContext::new(g.clone());
        let mut merges_seen = 0;
        for _ in 0..40 {
            let vb = b.next_block(20).unwrap();
            mem.commit(&vb).unwrap();
            redb.commit(&vb).unwrap();
            let a = crate::verify::verify_block(&ctx, &tip_of(&mem_i), &mem_i, vb.certified().clone()).unwrap();
            mem_i.commit(&a).unwrap();
            let a = crate::verify::verify_block(&ctx, &tip_of(&redb_i), &redb_i, vb.certified().clone()).unwrap();
            redb_i.commit(&a).unwrap();
            merges_seen += usize::from(redb_i.id_runs_state().1.is_some());
            let old = mem.leaf(10).unwrap().unwrap().id;
            assert_eq!(redb_i.record(&old).unwrap(), mem.record(&old).unwrap(), "a record below the base");
        }
        assert!(merges_seen > 0, "the id runs after the base were merged");
        let full = state_bytes(&mem, &g);
        for s in [&mem_i as &dyn Store, &redb_i] {
            assert_eq!(s.head().unwrap(), mem.head().unwrap(), "same head, size and root");
            assert_eq!(s.block(15).unwrap(), mem.block(15).unwrap());
            let proof = crate::merkle::inclusion_proof(300, 400, &StoreNodes(s)).unwrap();
            assert_eq!(proof, crate::merkle::inclusion_proof(300, 400, &mem).unwrap());
            assert!(matches!(s.block(8), Err(StoreError::NotHeld { base: 8, .. })));
            assert!(matches!(s.block(3), Err(StoreError::NotHeld { .. })));
            assert!(matches!(s.header(7), Err(StoreError::NotHeld { .. })));
            assert!(s.header(8).unwrap().is_some() && s.certificate(8).unwrap().is_some());
            assert!(matches!(s.leaf(159), Err(StoreError::NotHeld { .. })));
            assert!(s.leaf(160).unwrap().is_some());
            let old = mem.leaf(10).unwrap().unwrap().id;
            assert!(matches!(s.locate(&old), Err(StoreError::NotHeld { .. })));
            assert_eq!(s.record(&old).unwrap(), mem.record(&old).unwrap());
            let new = mem.leaf(170).unwrap().unwrap().id;
            assert_eq!(s.locate(&new).unwrap(), mem.locate(&new).unwrap());
        }
        assert_eq!(state_bytes(&mem_i, &g).0, full.0);
        assert_eq!(state_bytes(&redb_i, &g).0, full.0);
        drop(redb_i);
        let redb_i = RedbStore::open_with(&path, &g, options).unwrap();
        assert_eq!(redb_i.head().unwrap(), mem.head().unwrap());
        assert_eq!(state_bytes(&redb_i, &g).0, full.0);
        drop(redb);
    }

    /// A store started from a snapshot at an odd tree size (313 leaves: its frontier has nodes
    /// of level 8, of levels not kept, and of level 0), grown by blocks of odd sizes: nodes at
    /// every level, range reads and proofs equal the imported model's (which stores every node
    /// it completes), and the proofs of the leaves after the base equal the full store's. A
    /// rewrite of it as format 2 wrote it migrates on open and keeps the frontier.
    #[test]
    fn a_store_imported_at_an_odd_size_gives_the_nodes_and_proofs_of_the_model() {
        use crate::merkle::{consistency_proof, inclusion_proof};
        use crate::store::redb_testing::{merkle_rows, rewrite_as_format_2, same_tree};
        let (mut b, mut mem, _redb, dir) = chain_of(&[(3, 37), (2, 101)]);
        let g = b.genesis().clone();
        let (bytes, _) = file_of(&mem, &g);
        let mut mem_i = MemStore::new(&g);
        import_into(&mut mem_i, &bytes, &g);
        let path = dir.path().join("imported.redb");
        let mut redb_i = RedbStore::open(&path, &g).unwrap();
        import_into(&mut redb_i, &bytes, &g);
        assert_eq!(redb_i.base(), Some(crate::store::BaseAt { height: 5, tree_size: 313 }));
        let frontier: [(u8, u64); 5] = [(0, 312), (3, 38), (4, 18), (5, 8), (8, 0)];
        assert_eq!(merkle_rows(&redb_i), frontier);
        same_tree("at the base", &redb_i, &mem_i, 313);
        let ctx = ChainContext::new(g.clone());
        for n in [1, 200, 255, 3, 513, 77, 1000] {
            let vb = b.next_block(n).unwrap();
            mem.commit(&vb).unwrap();
            let a = crate::verify::verify_block(&ctx, &tip_of(&mem_i), &mem_i, vb.certified().clone()).unwrap();
            mem_i.commit(&a).unwrap();
            let a = crate::verify::verify_block(&ctx, &tip_of(&redb_i), &redb_i, vb.certified().clone()).unwrap();
            redb_i.commit(&a).unwrap();
        }
        let size = redb_i.head().unwrap().unwrap().tree_size;
        assert_eq!(size, 313 + 2049);
        same_tree("grown", &redb_i, &mem_i, size);
        for i in (313..size).step_by(37).chain([313, 511, 512, size - 1]) {
            assert_eq!(inclusion_proof(i, size, &redb_i), inclusion_proof(i, size, &mem), "inclusion({i}, {size})");
        }
        for k in [313, 314, 512, 1024, 2000, size - 1] {
            assert_eq!(consistency_proof(k, size, &redb_i), consistency_proof(k, size, &mem), "consistency({k})");
        }
        let rows = merkle_rows(&redb_i);
        assert!(frontier.iter().all(|f| rows.contains(f)), "the frontier is kept: {rows:?}");
        assert!(rows.iter().all(|r| frontier.contains(r) || r.0 == 8), "{rows:?}");
        assert_eq!(rows.len(), frontier.len() + (size >> 8) as usize - 1);
        drop(redb_i);
        let redb_i = RedbStore::open(&path, &g).unwrap();
        same_tree("reopened", &redb_i, &mem_i, size);
        drop(redb_i);
        assert!(rewrite_as_format_2(&path, &mem_i) > 2000);
        let redb_i = RedbStore::open(&path, &g).unwrap();
        assert_eq!(redb_i.migrated_from_format(), Some(crate::store::FORMAT_ALL_MERKLE_LEVELS));
        assert_eq!(merkle_rows(&redb_i), rows, "the frontier and the kept levels stay");
        same_tree("migrated", &redb_i, &mem_i, size);
    }

    /// A read view keeps the state of its moment while the store commits on, and is never written.
    #[test]
    fn a_read_view_keeps_its_state_while_the_store_commits() {
        let (mut b, _mem, mut redb, _dir) = chain(6);
        let g = b.genesis().clone();
        let mut view = redb.read_view().unwrap();
        let before = state_bytes(&redb, &g);
        for _ in 0..8 {
            redb.commit(&b.next_block(20).unwrap()).unwrap();
        }
        assert_eq!(state_bytes(&view, &g).0, before.0);
        assert_eq!(view.head().unwrap().unwrap().height, 6);
        assert_ne!(state_bytes(&redb, &g).0, before.0);
        let vb = b.next_block(1).unwrap();
        assert!(matches!(view.commit(&vb), Err(StoreError::Backend(_))));
        redb.commit(&vb).unwrap();
    }

    /// A [`NodeReader`] over a `dyn Store`.
    struct StoreNodes<'a>(&'a dyn Store);
    impl NodeReader for StoreNodes<'_> {
        fn node(&self, level: u8, index: u64) -> Result<NodeHash, crate::merkle::MerkleError> {
            self.0.node(level, index)
        }
    }

    #[test]
    fn an_import_that_fails_leaves_the_store_empty_and_a_full_store_refuses_one() {
        let (b, mem, redb, dir) = chain(3);
        let g = b.genesis().clone();
        let (bytes, _) = file_of(&mem, &g);
        let at = records_at(&bytes, &g);
        let mut t = bytes.clone();
        t[at + 32 + 3] = 1;
        let path = dir.path().join("i.redb");
        let mut store = RedbStore::open(&path, &g).unwrap();
        let (prefix, mut reader) = open(t.as_slice(), &g).unwrap();
        let v = verify_bytes(&bytes, &g).unwrap();
        reader.expect_digest(v.statement.digest);
        let base = reader.base(prefix.certificate);
        let e = store.import_snapshot(&base, &mut reader).unwrap_err();
        assert!(e.to_string().contains("the file changed"), "{e}");
        assert_eq!(store.head().unwrap(), None);
        drop(store);
        let store = RedbStore::open(&path, &g).unwrap();
        assert_eq!(store.head().unwrap(), None);
        let mut full = redb;
        let (prefix, mut reader) = open(bytes.as_slice(), &g).unwrap();
        let base = reader.base(prefix.certificate);
        assert!(matches!(full.import_snapshot(&base, &mut reader), Err(StoreError::Import(_))));
    }
}
