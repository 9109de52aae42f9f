//! The verification core: one streaming verifier used by block validation, sync and `credence verify`.
//!
//! For each block it checks, in order: height and hash link, validator set and
//! proposer, tree size and RFC 9162 root (rebuilt incrementally), the
//! certificate (a C2SP checkpoint for exactly this header, signed by more than
//! 2/3 of the validators), the ledger rules, and every attestation signature
//! (batched, on all cores). It stops at the first failure and names its
//! height, record and reason.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::block::{Block, BlockHash, BlockHeader, CertifiedBlock, Leaf, ValidBlock};
use crate::checkpoint::{self, Checkpoint};
use crate::genesis::{Genesis, MEMBERS_MAX};
use crate::governance::{GovState, Roster, WitnessTerm};
use crate::hash::{Hash, HashOf};
use crate::ids::MemberName;
use crate::merkle::{Frontier, NodeHash};
use crate::rules::{self, MemState, RuleError, StateView};
use crate::sig::{self, BatchItem, Domain, KeySetItem, SigError, SignedBytes};

/// Most signatures one worker checks as one batch (batches level off in
/// throughput from about 512 items; a whole 1,000-record block fits in one).
pub const SIGNATURE_JOB_ITEMS_MAX: usize = 1024;
/// Most blocks whose signatures may be in flight behind the rule checks.
pub const BLOCKS_IN_FLIGHT_MAX: usize = 8;

/// Most records [`verify_store`] sizes the rules' record map for before it starts (the
/// store's head says how many there are; a damaged head must not make it allocate more).
pub const RECORDS_RESERVED_MAX: u64 = 1 << 22;

/// Rosters (decompressed keys of a governance state) kept for reuse.
pub const ROSTERS_CACHED_MAX: usize = 4;

/// Most bytes of key tables the rosters a [`ChainContext`] holds can have built: the
/// genesis roster and [`ROSTERS_CACHED_MAX`] others, each with at most one
/// [`sig::KeyTable`] of at most [`sig::KEY_TABLE_KEYS_MAX`] keys and B (3.3 MiB).
pub const ROSTER_TABLES_BYTES_MAX: usize =
    (ROSTERS_CACHED_MAX + 1) * (sig::KEY_TABLE_KEYS_MAX + 1) * sig::KEY_TABLE_BYTES_PER_KEY;
const _: () = assert!(ROSTER_TABLES_BYTES_MAX <= 4 * 1024 * 1024);

/// Everything about a chain that does not change from block to block, and the
/// rosters (members, keys, validators in force) its governance states give.
#[derive(Debug)]
pub struct ChainContext {
    pub genesis: Genesis,
    /// The genesis hash: what every signature is bound to.
    pub chain_id: Hash,
    genesis_roster: Arc<Roster>,
    /// The last rosters built, newest last, at most [`ROSTERS_CACHED_MAX`].
    rosters: Mutex<VecDeque<Arc<Roster>>>,
    /// Threads for signature batches.
    pub threads: usize,
}

impl ChainContext {
    pub fn new(genesis: Genesis) -> ChainContext {
        ChainContext {
            chain_id: genesis.hash(),
            genesis_roster: Arc::new(Roster::new(&genesis.governance())),
            rosters: Mutex::new(VecDeque::new()),
            threads: sig::available_threads(),
            genesis,
        }
    }

    /// What is in force at genesis (block 1's validators and every member's first key).
    pub fn genesis_roster(&self) -> &Arc<Roster> {
        &self.genesis_roster
    }

    /// The roster of a governance state, built once per distinct state and cached.
    pub fn roster(&self, gov: &GovState) -> Arc<Roster> {
        if gov.roster_digest == self.genesis_roster.digest {
            return Arc::clone(&self.genesis_roster);
        }
        let mut cache = self.rosters.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(r) = cache.iter().find(|r| r.digest == gov.roster_digest) {
            return Arc::clone(r);
        }
        let r = Arc::new(Roster::new(gov));
        if cache.len() >= ROSTERS_CACHED_MAX {
            cache.pop_front();
        }
        cache.push_back(Arc::clone(&r));
        r
    }

    /// The governance state and roster in force for the block at `height` on `view`.
    pub fn in_force<V: StateView + ?Sized>(
        &self,
        view: &V,
        height: u64,
    ) -> Result<(Arc<GovState>, Arc<Roster>), V::Error> {
        let gov = rules::governance_at(&self.genesis, view, height)?;
        let roster = self.roster(&gov);
        Ok((gov, roster))
    }
}

/// The end of the verified chain: what the next block must extend.
#[derive(Clone, Debug)]
pub struct Tip {
    pub height: u64,
    pub hash: BlockHash,
    pub time_ms: u64,
    pub frontier: Frontier,
}

impl Tip {
    /// The tip before block 1.
    pub fn genesis(ctx: &ChainContext) -> Tip {
        Tip {
            height: 0,
            hash: HashOf::from_hash(ctx.chain_id),
            time_ms: ctx.genesis.genesis_time_ms,
            frontier: Frontier::new(),
        }
    }

    /// Moves the tip past a block the core accepted.
    pub fn advance(&mut self, vb: &ValidBlock) {
        let h = vb.header();
        debug_assert_eq!(h.height, self.height + 1);
        debug_assert_eq!(vb.frontier.size(), h.tree_size);
        self.height = h.height;
        self.hash = h.hash();
        self.time_ms = h.time_ms;
        self.frontier = vb.frontier.clone();
    }
}

/// What went wrong in a block.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum Failure {
    #[error("cannot read the chain: {0}")]
    Source(String),
    #[error("height: expected {expected}, got {got} (a block is missing or out of order)")]
    Height { expected: u64, got: u64 },
    #[error("prev: does not match the hash of block {height} (the chain is not linked)")]
    PrevMismatch { height: u64 },
    #[error("validator_set: does not match the hash of the validator set in force at this height")]
    ValidatorSet,
    #[error("proposer: '{0}' is not a validator")]
    ProposerNotValidator(String),
    #[error("tree_size: expected {expected} after this block's records, header says {got}")]
    TreeSize { expected: u64, got: u64 },
    #[error("tree_root: the RFC 9162 root of the records does not match the header")]
    TreeRoot,
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("certificate: its {field} does not match the block header")]
    CertificateMismatch { field: &'static str },
    #[error("{0}")]
    Rule(rules::Rejection),
    #[error("signature: {0}")]
    Signature(SigError),
    #[error("state: {0}")]
    State(String),
}

/// The first failure found: where, and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[error("height {height}{}: {reason}", record.map(|r| format!(", record {r}")).unwrap_or_default())]
pub struct VerifyError {
    pub height: u64,
    /// Index of the record within the block, when the failure is about one record.
    pub record: Option<usize>,
    pub reason: Failure,
}

impl VerifyError {
    pub fn at(height: u64, reason: Failure) -> VerifyError {
        VerifyError { height, record: None, reason }
    }
}

/// What checking a block (signatures aside) derives from it.
#[derive(Debug)]
struct Checked {
    /// The block's header hash, computed once.
    hash: BlockHash,
    /// Governance in force at the block's height (before its own records), and its roster.
    gov: Arc<GovState>,
    roster: Arc<Roster>,
    merkle_nodes: MerkleNodes,
    delta: rules::StateDelta,
    frontier: Frontier,
    /// The certificate's signature lines, if they were left for a batch
    /// ([`CertificateMode::Batched`]).
    certificate_lines: Option<CertificateLines>,
}

/// A block whose leaves were checked against its header on a tip: the size and the
/// root they give are the header's. Built only by [`check_leaves`]; carries the
/// Merkle work to [`verify_proposal`] so the root is computed once per proposal.
///
/// Since the header commits to the root, leaves that match it are the leaves the
/// header's signer meant: a relay cannot drop or swap one without failing here.
#[derive(Debug, Clone)]
pub struct LeavesMatch {
    hash: BlockHash,
    prev: BlockHash,
    merkle_nodes: MerkleNodes,
    frontier: Frontier,
}

impl LeavesMatch {
    /// The hash of the header these leaves match.
    pub fn block_hash(&self) -> BlockHash {
        self.hash
    }
}

/// Checks that `block` extends `tip` (height, prev) and that its leaves give the
/// header's tree size and root. The first check made on a proposal: nothing is
/// cached, forwarded or validated before it passes.
pub fn check_leaves(tip: &Tip, block: &Block) -> Result<LeavesMatch, VerifyError> {
    let h = &block.header;
    let expected = tip.height + 1;
    let fail = |reason| VerifyError::at(h.height, reason);
    if h.height != expected {
        return Err(VerifyError::at(expected, Failure::Height { expected, got: h.height }));
    }
    if h.prev != tip.hash {
        return Err(fail(Failure::PrevMismatch { height: tip.height }));
    }
    let leaves = &block.leaves;
    let expected_size = tip.frontier.size().checked_add(leaves.len() as u64);
    if expected_size != Some(h.tree_size) {
        return Err(fail(Failure::TreeSize { expected: expected_size.unwrap_or(u64::MAX), got: h.tree_size }));
    }
    let (frontier, merkle_nodes) =
        extend(tip, leaves).ok_or_else(|| fail(Failure::TreeSize { expected: u64::MAX, got: h.tree_size }))?;
    if frontier.root() != h.tree_root.0 {
        return Err(fail(Failure::TreeRoot));
    }
    Ok(LeavesMatch { hash: h.hash(), prev: tip.hash, merkle_nodes, frontier })
}

/// Newly completed Merkle subtrees (level, index, hash), stored with the block.
type MerkleNodes = Vec<(u8, u64, NodeHash)>;

/// The tip's Merkle frontier with `leaves` appended, and the nodes they complete;
/// `None` if the tree is full.
fn extend(tip: &Tip, leaves: &[Leaf]) -> Option<(Frontier, MerkleNodes)> {
    let mut frontier = tip.frontier.clone();
    let mut merkle_nodes = Vec::with_capacity(leaves.len() * 2);
    for leaf in leaves {
        frontier.push_leaf_hash(leaf.leaf_hash(), &mut merkle_nodes).ok()?;
    }
    Some((frontier, merkle_nodes))
}

/// A block of `leaves` on `tip`, with the header they give (size, root) and its
/// [`LeavesMatch`] by construction: a proposer's Merkle work, done once and carried to
/// [`verify_proposal`]. Fails only when the tree is full.
pub fn assemble(
    tip: &Tip,
    validator_set: Hash,
    proposer: MemberName,
    time_ms: u64,
    leaves: Vec<Leaf>,
) -> Result<(Block, LeavesMatch), VerifyError> {
    let height = tip.height + 1;
    let full = || VerifyError::at(height, Failure::TreeSize { expected: u64::MAX, got: tip.frontier.size() });
    let (frontier, merkle_nodes) = extend(tip, &leaves).ok_or_else(full)?;
    let header = BlockHeader {
        height,
        prev: tip.hash,
        time_ms,
        proposer,
        tree_size: frontier.size(),
        tree_root: Hash(frontier.root()),
        validator_set,
    };
    let matched = LeavesMatch { hash: header.hash(), prev: tip.hash, merkle_nodes, frontier };
    Ok((Block { header, leaves }, matched))
}

/// Checks everything about `block` except the attestation signatures, against
/// `tip` and the committed state `view`; and its certificate, if given. `leaves`
/// is the block's [`check_leaves`] on this tip, if already made.
fn check_without_signatures<V: StateView + ?Sized>(
    ctx: &ChainContext,
    tip: &Tip,
    view: &V,
    block: &Block,
    certificate: Option<&Checkpoint>,
    leaves: Option<LeavesMatch>,
) -> Result<Checked, VerifyError> {
    check_without_signatures_with(
        ctx,
        tip,
        view,
        block,
        certificate.map(|c| (c, CertificateMode::Now(CertificateSignatures::Verify))),
        leaves,
    )
}

/// How [`check_without_signatures_with`] treats a certificate's signature lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CertificateMode {
    /// Check them now, as this says.
    Now(CertificateSignatures),
    /// Check every other rule of the certificate now and leave the lines for the block's
    /// signature batch ([`CertificateLines`]), if the roster's key table allows it.
    Batched,
}

/// [`check_without_signatures`], with the certificate's signatures verified or not as
/// `certificate` says.
fn check_without_signatures_with<V: StateView + ?Sized>(
    ctx: &ChainContext,
    tip: &Tip,
    view: &V,
    block: &Block,
    certificate: Option<(&Checkpoint, CertificateMode)>,
    leaves: Option<LeavesMatch>,
) -> Result<Checked, VerifyError> {
    let h = &block.header;
    let fail = |reason| VerifyError::at(h.height, reason);
    let hash = h.hash();
    let matched = match leaves {
        Some(m) if m.prev == tip.hash && m.hash == hash => m,
        _ => check_leaves(tip, block)?,
    };
    let (gov, roster) = ctx.in_force(view, h.height).map_err(|e| fail(Failure::State(e.to_string())))?;
    if h.validator_set != roster.validator_set_hash {
        return Err(fail(Failure::ValidatorSet));
    }
    if !roster.is_validator(&h.proposer) {
        return Err(fail(Failure::ProposerNotValidator(h.proposer.to_string())));
    }
    let mut certificate_lines = None;
    match certificate {
        Some((certificate, CertificateMode::Now(signatures))) => {
            check_certificate(ctx, &roster, h, &hash, certificate, signatures).map_err(fail)?;
        }
        Some((certificate, CertificateMode::Batched)) => {
            certificate_lines = check_certificate_batched(ctx, &roster, h, &hash, certificate).map_err(fail)?;
        }
        None => {}
    }
    let records: Vec<_> = block.leaves.iter().map(|l| (l.id, &l.attestation)).collect();
    let delta =
        rules::apply_block(&ctx.genesis, view, h.height, tip.time_ms, h.time_ms, &records, block.records_bytes())
            .map_err(|e| match e {
                RuleError::Record { index, rejection } => {
                    VerifyError { height: h.height, record: Some(index), reason: Failure::Rule(rejection) }
                }
                RuleError::Block(rejection) => fail(Failure::Rule(rejection)),
                RuleError::State(e) => fail(Failure::State(e.to_string())),
            })?;
    Ok(Checked {
        hash,
        gov,
        roster,
        merkle_nodes: matched.merkle_nodes,
        delta,
        frontier: matched.frontier,
        certificate_lines,
    })
}

/// Whether a certificate's signatures are to be verified, or were verified by its holder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertificateSignatures {
    /// Verify every line (a certificate received from anyone).
    Verify,
    /// The certificate is this node's own consensus decision, assembled from
    /// precommits whose signatures it verified as it counted them: check the body,
    /// the signers and the quorum, not the signatures again.
    VerifiedByConsensus,
    /// Every line verified against the roster in force before the block reached the
    /// tip ([`check_signatures_ahead`]): check the body, the signers and the quorum.
    VerifiedAhead,
}

/// The certificate must be a checkpoint of exactly this header (whose hash is `hash`),
/// with a quorum.
fn check_certificate(
    ctx: &ChainContext,
    roster: &Roster,
    h: &BlockHeader,
    hash: &BlockHash,
    certificate: &Checkpoint,
    signatures: CertificateSignatures,
) -> Result<(), Failure> {
    certificate_names_header(ctx, h, hash, certificate)?;
    // Strict: a Credence certificate carries validators' signatures only. (Generic
    // C2SP verifiers ignore unknown lines; the ledger refuses them, so a stored
    // certificate has one form and nothing rides along unverified.)
    match signatures {
        CertificateSignatures::Verify => checkpoint::verify_quorum_strict(certificate, &roster.verifier_keys),
        CertificateSignatures::VerifiedByConsensus | CertificateSignatures::VerifiedAhead => {
            checkpoint::quorum_of_verified_lines(certificate, &roster.verifier_keys, &roster.verifier_key_ids)
        }
    }
    .map_err(|e| Failure::Certificate(e.to_string()))?;
    Ok(())
}

/// [`check_certificate`] with `Verify`, but with the signature lines left for a batch when
/// [`defer_certificate`] can: then every other rule was checked and the lines are returned.
fn check_certificate_batched(
    ctx: &ChainContext,
    roster: &Roster,
    h: &BlockHeader,
    hash: &BlockHash,
    certificate: &Checkpoint,
) -> Result<Option<CertificateLines>, Failure> {
    certificate_names_header(ctx, h, hash, certificate)?;
    match defer_certificate(roster, certificate) {
        Some(lines) => Ok(Some(lines)),
        None => check_certificate(ctx, roster, h, hash, certificate, CertificateSignatures::Verify).map(|()| None),
    }
}

/// The certificate's body names exactly this header (whose hash is `hash`) of this chain.
fn certificate_names_header(
    ctx: &ChainContext,
    h: &BlockHeader,
    hash: &BlockHash,
    certificate: &Checkpoint,
) -> Result<(), Failure> {
    let body = &certificate.body;
    let mismatch = |field| Err(Failure::CertificateMismatch { field });
    if body.origin != ctx.genesis.checkpoint_origin {
        return mismatch("origin");
    }
    if body.tree_size != h.tree_size {
        return mismatch("tree size");
    }
    if body.root != h.tree_root.0 {
        return mismatch("root");
    }
    if body.height != h.height {
        return mismatch("height");
    }
    if body.block_hash != *hash.bytes() {
        return mismatch("block hash");
    }
    Ok(())
}

/// One verdict per leaf on the attestation signatures of `leaves` (of a block whose
/// rules already passed, so every attester is a member), with the keys of `roster` (in
/// force at the block), over `threads`: through `table`, the roster's [`Roster::key_table`] (key terms
/// from precomputed tables, grouped by member) when it has one, else [`sig::verify_batch`]
/// (the same equation, keys grouped per batch). Each leaf comes with its attester's member
/// index if the rules gave it (`StateDelta::attesters`), else the name is looked up; an
/// attester that is not a member (the rules admit none) fails closed as a bad key.
///
/// `certificate`: a certificate's signature lines to check in the same batch (only with a
/// table; see [`CertificateLines`]); the last value says whether all of them verified.
fn leaf_verdicts<'a>(
    roster: &Roster,
    table: Option<&sig::KeyTable>,
    chain_id: &Hash,
    leaves: impl Iterator<Item = (&'a Leaf, Option<u16>)>,
    certificate: Option<(&CertificateLines, &Checkpoint)>,
    threads: usize,
) -> (Vec<Result<(), SigError>>, SignerSet, bool) {
    let leaves: Vec<(&Leaf, Option<u16>)> = leaves.collect();
    let mut out = vec![Err(SigError::BadPublicKey); leaves.len()];
    let signers: Vec<(usize, u16)> = leaves
        .iter()
        .enumerate()
        .filter_map(|(i, (leaf, member))| {
            debug_assert!(
                member.is_none() || *member == roster.member_index(&leaf.attestation.body.attester),
                "the rules' member index is the roster's"
            );
            Some((i, member.or_else(|| roster.member_index(&leaf.attestation.body.attester))?))
        })
        .collect();
    debug_assert_eq!(signers.len(), leaves.len(), "rules admitted only members");
    let mut certificate_ok = true;
    let verdicts = if let Some(table) = table {
        let mut items: Vec<KeySetItem> = signers
            .iter()
            .map(|&(i, member)| KeySetItem {
                signer: usize::from(member),
                msg: SignedBytes::Binary {
                    domain: Domain::Attestation,
                    chain_id: &chain_id.0,
                    body: leaves[i].0.body_bytes(),
                },
                sig: &leaves[i].0.attestation.signature,
            })
            .collect();
        if let Some((lines, cert)) = certificate {
            items.extend(lines.signers.iter().zip(&cert.signatures).map(|(&member, line)| KeySetItem {
                signer: usize::from(member),
                msg: SignedBytes::Raw(lines.text.as_bytes()),
                sig: &line.signature,
            }));
        }
        let mut verdicts = table.verify_many(&items, threads);
        certificate_ok = verdicts.drain(signers.len()..).all(|v| v.is_ok());
        verdicts
    } else {
        debug_assert!(certificate.is_none(), "certificate lines are deferred only to a key table");
        let items: Vec<BatchItem> = signers
            .iter()
            .map(|&(i, member)| BatchItem {
                key: &roster.members[usize::from(member)].verifying,
                domain: Domain::Attestation,
                chain_id: &chain_id.0,
                body: leaves[i].0.body_bytes(),
                sig: &leaves[i].0.attestation.signature,
            })
            .collect();
        sig::verify_batch(&items, threads)
    };
    let mut set = SignerSet::default();
    for (&(i, member), v) in signers.iter().zip(verdicts) {
        out[i] = v;
        set.insert(member);
    }
    (out, set, certificate_ok)
}

/// A certificate whose every rule but its signatures passed
/// ([`checkpoint::strict_lines_unverified`]): the signed text and each line's validator as
/// a member index (its key in the roster's key table is the validator's verifier key), so
/// the lines are checked in the block's first signature batch instead of one by one on the
/// in-order thread. If any fails, [`check_certificate`] with `Verify` names the failure.
#[derive(Debug)]
struct CertificateLines {
    text: String,
    signers: Vec<u16>,
}

/// The certificate lines of `cert` to check in a batch through `roster`'s key table, if
/// every other rule of the certificate holds and every validator's verifier key is its
/// member key in the table; `None`: check it the usual way (which then also names any error).
fn defer_certificate(roster: &Roster, cert: &Checkpoint) -> Option<CertificateLines> {
    let table = roster.key_table()?;
    if roster.validators.len() != roster.verifier_keys.len() {
        return None;
    }
    let (text, lines) = checkpoint::strict_lines_unverified(cert, &roster.verifier_keys).ok()?;
    let signers = lines
        .into_iter()
        .map(|vi| {
            let member = *roster.validators.get(vi)?;
            let same = roster.members.get(usize::from(member)).is_some_and(|m| m.key == roster.verifier_keys[vi].key);
            (same && usize::from(member) < table.len()).then_some(member)
        })
        .collect::<Option<Vec<u16>>>()?;
    Some(CertificateLines { text, signers })
}

/// Member indexes, as a bit set (a chain has at most [`MEMBERS_MAX`] members).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct SignerSet([u64; MEMBERS_MAX / 64]);
const _: () = assert!(MEMBERS_MAX.is_multiple_of(64) && MEMBERS_MAX <= u16::MAX as usize + 1);

impl SignerSet {
    fn insert(&mut self, member: u16) {
        let m = usize::from(member);
        if let Some(word) = self.0.get_mut(m / 64) {
            *word |= 1 << (m % 64);
        }
    }

    fn union(&mut self, other: &SignerSet) {
        self.0.iter_mut().zip(other.0).for_each(|(a, b)| *a |= b);
    }

    fn len(&self) -> u64 {
        self.0.iter().map(|w| u64::from(w.count_ones())).sum()
    }
}

/// The failure of leaf `index`'s bad signature: R049/R050 if it was made with a key
/// its attester no longer holds, else the signature error.
fn signature_failure(ctx: &ChainContext, gov: &GovState, block: &Block, index: usize, e: SigError) -> Failure {
    block
        .leaves
        .get(index)
        .and_then(|l| rules::stale_key(gov, &l.attestation, l.body_bytes(), &ctx.chain_id))
        .map_or(Failure::Signature(e), Failure::Rule)
}

/// The first bad signature in `verdicts`, as (index from `offset`, error).
fn first_bad(verdicts: &[Result<(), SigError>], offset: usize) -> Option<(usize, SigError)> {
    verdicts.iter().enumerate().find_map(|(i, v)| v.err().map(|e| (offset + i, e)))
}

/// Checks the signatures of `block`'s leaves, batched over `ctx.threads`, with the
/// keys in force at its height, except those `known_valid` vouches for (exact leaf
/// bytes this node already verified, e.g. in its mempool).
fn check_signatures(
    ctx: &ChainContext,
    checked: &Checked,
    block: &Block,
    known_valid: &dyn Fn(&Leaf) -> bool,
) -> Result<(), VerifyError> {
    let unknown: Vec<usize> = (0..block.leaves.len()).filter(|i| !known_valid(&block.leaves[*i])).collect();
    let roster = &checked.roster;
    let attesters = &checked.delta.attesters;
    let by_rules = attesters.len() == block.leaves.len();
    let (verdicts, _, _) = leaf_verdicts(
        roster,
        roster.key_table(),
        &ctx.chain_id,
        unknown.iter().map(|&i| (&block.leaves[i], by_rules.then(|| attesters[i]))),
        None,
        ctx.threads,
    );
    if let Some((k, e)) = first_bad(&verdicts, 0) {
        let index = unknown.get(k).copied();
        let reason = match index {
            Some(i) => signature_failure(ctx, &checked.gov, block, i, e),
            None => Failure::Signature(e),
        };
        return Err(VerifyError { height: block.header.height, record: index, reason });
    }
    Ok(())
}

/// Verifies one certified block completely (signatures batched over
/// `ctx.threads`). This is how a node validates a block from consensus or sync.
pub fn verify_block<V: StateView + ?Sized>(
    ctx: &ChainContext,
    tip: &Tip,
    view: &V,
    cb: CertifiedBlock,
) -> Result<ValidBlock, VerifyError> {
    verify_block_with(ctx, tip, view, cb, &|_| false)
}

/// [`verify_block`], trusting the signatures of leaves `known_valid` vouches for:
/// a node that validated the proposal checks each signature once.
pub fn verify_block_with<V: StateView + ?Sized>(
    ctx: &ChainContext,
    tip: &Tip,
    view: &V,
    cb: CertifiedBlock,
    known_valid: &dyn Fn(&Leaf) -> bool,
) -> Result<ValidBlock, VerifyError> {
    let checked = check_without_signatures(ctx, tip, view, &cb.block, Some(&cb.certificate), None)?;
    check_signatures(ctx, &checked, &cb.block, known_valid)?;
    let Checked { merkle_nodes, delta, frontier, .. } = checked;
    Ok(ValidBlock { certified: cb, merkle_nodes, delta, frontier })
}

/// A certified block whose attestation signatures and certificate signatures all
/// verified against one roster (its [`Roster::digest`]). Built only by
/// [`check_signatures_ahead`]; [`verify_signatures_checked`] then checks everything
/// else, and skips the signatures only if the roster in force at the block's height is
/// that roster. Sync checks the signatures of fetched blocks ahead, off the thread that
/// applies the rules and commits.
#[derive(Debug)]
pub struct SignaturesChecked {
    certified: CertifiedBlock,
    roster_digest: Hash,
}

impl SignaturesChecked {
    pub fn height(&self) -> u64 {
        self.certified.block.header.height
    }

    pub fn certified(&self) -> &CertifiedBlock {
        &self.certified
    }
}

/// A fetched block after [`check_signatures_ahead`]: its signatures verified against the
/// roster given, or not decided there (a signature failed, or an attester is not a member
/// of that roster, which may be an older guess than the one in force). Only the
/// verification core on the tip decides that a block is invalid.
#[derive(Debug)]
pub enum Ahead {
    Checked(SignaturesChecked),
    Unchecked(CertifiedBlock),
}

impl Ahead {
    pub fn height(&self) -> u64 {
        match self {
            Ahead::Checked(s) => s.height(),
            Ahead::Unchecked(cb) => cb.block.header.height,
        }
    }
}

/// Verifies `cb`'s certificate signatures and its attestation signatures (batched over
/// `threads`) against `roster`, the roster the caller expects in force at its height,
/// without any state: the work of verifying a fetched block that can run ahead of the
/// tip, in parallel. Never rejects: what does not verify here is left
/// [`Ahead::Unchecked`], for [`verify_block`] on the tip to name precisely.
pub fn check_signatures_ahead(ctx: &ChainContext, roster: &Roster, cb: CertifiedBlock, threads: usize) -> Ahead {
    let block = &cb.block;
    let h = &block.header;
    let hash = h.hash();
    // The certificate's lines go into the attestations' batch when the key table allows.
    let Ok(lines) = check_certificate_batched(ctx, roster, h, &hash, &cb.certificate) else {
        return Ahead::Unchecked(cb);
    };
    let members: Option<Vec<u16>> =
        block.leaves.iter().map(|l| roster.member_index(&l.attestation.body.attester)).collect();
    let Some(members) = members else {
        return Ahead::Unchecked(cb);
    };
    let (verdicts, _, certificate_ok) = leaf_verdicts(
        roster,
        roster.key_table(),
        &ctx.chain_id,
        block.leaves.iter().zip(&members).map(|(l, &m)| (l, Some(m))),
        lines.as_ref().map(|l| (l, &cb.certificate)),
        threads,
    );
    if !certificate_ok || verdicts.iter().any(Result::is_err) {
        return Ahead::Unchecked(cb);
    }
    Ahead::Checked(SignaturesChecked { certified: cb, roster_digest: roster.digest })
}

/// [`verify_block`] of a block whose signatures [`check_signatures_ahead`] verified: every
/// other check (height, link, validator set, proposer, tree size and root, the
/// certificate's body, signers and quorum, the rules) is made here; the signatures are
/// verified again only if the roster in force at its height is not the one they were
/// checked against.
pub fn verify_signatures_checked<V: StateView + ?Sized>(
    ctx: &ChainContext,
    tip: &Tip,
    view: &V,
    ahead: Ahead,
) -> Result<ValidBlock, VerifyError> {
    let (cb, digest) = match ahead {
        Ahead::Checked(SignaturesChecked { certified, roster_digest }) => (certified, roster_digest),
        Ahead::Unchecked(cb) => return verify_block(ctx, tip, view, cb),
    };
    let h = &cb.block.header;
    let (_, roster) =
        ctx.in_force(view, h.height).map_err(|e| VerifyError::at(h.height, Failure::State(e.to_string())))?;
    if roster.digest != digest {
        return verify_block(ctx, tip, view, cb);
    }
    let checked = check_without_signatures_with(
        ctx,
        tip,
        view,
        &cb.block,
        Some((&cb.certificate, CertificateMode::Now(CertificateSignatures::VerifiedAhead))),
        None,
    )?;
    let Checked { merkle_nodes, delta, frontier, .. } = checked;
    Ok(ValidBlock { certified: cb, merkle_nodes, delta, frontier })
}

/// A proposed block that passed every check but the certificate, on the tip it
/// extends: consensus's `valid(v)`. Built only by [`verify_proposal`]; carries the
/// rules' state change and the Merkle work to commit, so when the block is decided
/// only its certificate is checked ([`ValidProposal::certify`]).
#[derive(Debug)]
pub struct ValidProposal {
    hash: BlockHash,
    prev: BlockHash,
    checked: Checked,
}

impl ValidProposal {
    pub fn block_hash(&self) -> BlockHash {
        self.hash
    }

    /// The digest of the roster in force at the block, whose keys its signatures were checked against.
    pub fn roster_digest(&self) -> Hash {
        self.checked.roster.digest
    }

    /// The decided block with its certificate: checks that `cb` is this block on
    /// `tip` and that its certificate names this header with a quorum, and nothing
    /// else (rules, root and signatures passed in [`verify_proposal`]).
    pub fn certify(
        self,
        ctx: &ChainContext,
        tip: &Tip,
        cb: CertifiedBlock,
        signatures: CertificateSignatures,
    ) -> Result<ValidBlock, VerifyError> {
        let h = &cb.block.header;
        if h.height != tip.height + 1 || self.prev != tip.hash {
            return Err(VerifyError::at(h.height, Failure::PrevMismatch { height: tip.height }));
        }
        let hash = h.hash();
        if hash != self.hash || self.checked.frontier.size() != h.tree_size {
            return Err(VerifyError::at(h.height, Failure::CertificateMismatch { field: "block hash" }));
        }
        check_certificate(ctx, &self.checked.roster, h, &hash, &cb.certificate, signatures)
            .map_err(|r| VerifyError::at(h.height, r))?;
        let Checked { merkle_nodes, delta, frontier, .. } = self.checked;
        Ok(ValidBlock { certified: cb, merkle_nodes, delta, frontier })
    }
}

/// Checks a proposed block that has no certificate yet: everything [`verify_block`]
/// checks except the certificate. This is consensus's `valid(v)`. Signatures of
/// leaves `known_valid` vouches for are not checked again.
///
/// `leaves` is the block's [`check_leaves`] on `tip` if the caller already made it
/// (then the Merkle root is not computed again).
pub fn verify_proposal<V: StateView + ?Sized>(
    ctx: &ChainContext,
    tip: &Tip,
    view: &V,
    block: &Block,
    leaves: Option<LeavesMatch>,
    known_valid: &dyn Fn(&Leaf) -> bool,
) -> Result<ValidProposal, VerifyError> {
    let checked = check_without_signatures(ctx, tip, view, block, None, leaves)?;
    check_signatures(ctx, &checked, block, known_valid)?;
    Ok(ValidProposal { hash: checked.hash, prev: tip.hash, checked })
}

/// Progress and result figures of a streaming verification.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Blocks that passed every check.
    pub blocks: u64,
    /// Attestations in those blocks.
    pub attestations: u64,
    /// Distinct members who signed those attestations (by member index).
    pub signers: u64,
    pub seconds: f64,
    /// Head of the verified prefix: (height, block hash, tree size, root).
    pub head: Option<(u64, Hash, u64, Hash)>,
    /// Every outside-witness term of the governance the chain replayed, as in force at the
    /// height after its head (genesis's, then those governance records added, each with its
    /// from and until heights): set once the whole chain verified, empty otherwise.
    pub witnesses: Vec<WitnessTerm>,
}

impl Summary {
    pub fn attestations_per_second(&self) -> f64 {
        if self.seconds > 0.0 { self.attestations as f64 / self.seconds } else { 0.0 }
    }
}

/// A signature job: leaves `range` of the block numbered `seq` in the stream, with
/// the roster in force at that block.
struct Job {
    seq: u64,
    block: Arc<CertifiedBlock>,
    roster: Arc<Roster>,
    range: std::ops::Range<usize>,
    /// The rules' member index of every leaf's attester (`StateDelta::attesters`).
    attesters: Arc<Vec<u16>>,
    /// The block's certificate lines, in its first job only, if they were left for it.
    certificate: Option<CertificateLines>,
}

/// What a signature job found: its first bad leaf, the members who signed its leaves, and
/// whether the certificate lines it carried (if any) all verified.
#[derive(Debug)]
struct JobVerdict {
    bad: Option<(usize, SigError)>,
    signers: SignerSet,
    certificate_ok: bool,
}

/// A block whose rules passed, waiting for its signature verdicts.
struct Pending {
    block: Arc<CertifiedBlock>,
    /// Governance in force at the block (to name a stale key), and its roster (to name a
    /// bad certificate line).
    gov: Arc<GovState>,
    roster: Arc<Roster>,
    /// A certificate line failed its batch check.
    certificate_bad: bool,
    jobs_left: usize,
    first_bad: Option<(usize, SigError)>,
    /// Members whose attestations in the block were checked so far.
    signers: SignerSet,
}

/// Blocks in stream order whose signatures are still being checked.
struct Window {
    pending: VecDeque<Pending>,
    /// Stream number of `pending[0]`.
    front_seq: u64,
    /// Members who signed an attestation of a retired block.
    signers: SignerSet,
}

impl Window {
    fn record(&mut self, seq: u64, verdict: JobVerdict) {
        let JobVerdict { bad, signers, certificate_ok } = verdict;
        let i = usize::try_from(seq - self.front_seq).unwrap_or(usize::MAX);
        let Some(p) = self.pending.get_mut(i) else { return };
        debug_assert!(p.jobs_left > 0);
        p.jobs_left -= 1;
        p.signers.union(&signers);
        p.certificate_bad |= !certificate_ok;
        if let Some((index, e)) = bad
            && p.first_bad.is_none_or(|(old, _)| index < old)
        {
            p.first_bad = Some((index, e));
        }
    }

    /// Retires finished blocks from the front, in order; the first bad one is an error.
    fn retire(
        &mut self,
        ctx: &ChainContext,
        summary: &mut Summary,
        started: Instant,
        progress: &mut impl FnMut(&Summary),
    ) -> Result<(), VerifyError> {
        while self.pending.front().is_some_and(|p| p.jobs_left == 0) {
            let Some(p) = self.pending.pop_front() else { break };
            self.front_seq += 1;
            let h = &p.block.block.header;
            if p.certificate_bad {
                // Named as the one-by-one check names it (the batch's verdicts are the
                // single checks'); it outranks the block's attestation signatures, as before.
                let cert = &p.block.certificate;
                let reason = check_certificate(ctx, &p.roster, h, &h.hash(), cert, CertificateSignatures::Verify)
                    .err()
                    .unwrap_or_else(|| Failure::Certificate("a signature line failed its batch check".into()));
                return Err(VerifyError::at(h.height, reason));
            }
            if let Some((index, e)) = p.first_bad {
                let reason = signature_failure(ctx, &p.gov, &p.block.block, index, e);
                return Err(VerifyError { height: h.height, record: Some(index), reason });
            }
            summary.blocks += 1;
            summary.attestations += p.block.block.leaves.len() as u64;
            self.signers.union(&p.signers);
            summary.signers = self.signers.len();
            summary.head = Some((h.height, *h.hash().hash(), h.tree_size, h.tree_root));
            summary.seconds = started.elapsed().as_secs_f64();
            progress(summary);
        }
        Ok(())
    }
}

/// [`verify_chain`] over blocks 1..=head of a store: what `credence verify --data-dir` and a
/// node's start-up check run. A block the store cannot read is a failure at its height.
pub fn verify_store<S: crate::store::Store + ?Sized>(
    ctx: &ChainContext,
    store: &S,
    progress: impl FnMut(&Summary),
) -> (Summary, Option<VerifyError>) {
    let (head, head_records) = match store.head() {
        Ok(h) => h.map_or((0, 0), |h| (h.height, h.tree_size)),
        Err(e) => return (Summary::default(), Some(VerifyError::at(1, Failure::Source(e.to_string())))),
    };
    // A damaged file can make the storage engine panic instead of erring: that is a failure here.
    let read = |h| std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| store.block(h)));
    let blocks = (1..=head).map(move |h| match read(h) {
        Ok(Ok(Some(cb))) => Ok(cb),
        Ok(Ok(None)) => Err(VerifyError::at(h, Failure::Source("block missing from the store".into()))),
        Ok(Err(e)) => Err(VerifyError::at(h, Failure::Source(e.to_string()))),
        Err(panic) => Err(VerifyError::at(
            h,
            Failure::Source(format!("the storage engine failed reading it: {}", crate::store::panic_message(&*panic))),
        )),
    });
    verify_chain_sized(ctx, blocks, head_records, progress)
}

/// Verifies a whole chain from genesis, streaming: blocks are checked in
/// order on this thread while their signatures are verified by `ctx.threads`
/// workers, at most [`BLOCKS_IN_FLIGHT_MAX`] blocks behind. Memory is bounded by
/// the derived state plus that window. Returns the verified prefix's summary,
/// and the first failure if there is one. `progress` is called after each block
/// that passed every check, signatures included.
pub fn verify_chain<I>(ctx: &ChainContext, blocks: I, progress: impl FnMut(&Summary)) -> (Summary, Option<VerifyError>)
where
    I: IntoIterator<Item = Result<CertifiedBlock, VerifyError>>,
{
    verify_chain_sized(ctx, blocks, 0, progress)
}

/// [`verify_chain`] of a chain expected to hold about `records` attestations: the
/// rules' record map is sized for them up front (at most [`RECORDS_RESERVED_MAX`]), so
/// it is not rehashed as it grows (1.4 % of verifying the 1M chain).
fn verify_chain_sized<I>(
    ctx: &ChainContext,
    blocks: I,
    records: u64,
    mut progress: impl FnMut(&Summary),
) -> (Summary, Option<VerifyError>)
where
    I: IntoIterator<Item = Result<CertifiedBlock, VerifyError>>,
{
    let started = Instant::now();
    let mut summary = Summary::default();
    let threads = ctx.threads.max(1);
    let (job_tx, job_rx) = mpsc::sync_channel::<Job>(threads * 2);
    let job_rx = Mutex::new(job_rx);
    let (result_tx, result_rx) = mpsc::channel::<(u64, JobVerdict)>();

    let failure = std::thread::scope(|scope| {
        for _ in 0..threads {
            let result_tx = result_tx.clone();
            let job_rx = &job_rx;
            scope.spawn(move || {
                loop {
                    let job = match job_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let all = &job.block.block.leaves;
                    let by_rules = job.attesters.len() == all.len();
                    let leaves = job.range.clone().map(|i| (&all[i], by_rules.then(|| job.attesters[i])));
                    let certificate = job.certificate.as_ref().map(|c| (c, &job.block.certificate));
                    let (verdicts, signers, certificate_ok) =
                        leaf_verdicts(&job.roster, job.roster.key_table(), &ctx.chain_id, leaves, certificate, 1);
                    let bad = first_bad(&verdicts, job.range.start);
                    if result_tx.send((job.seq, JobVerdict { bad, signers, certificate_ok })).is_err() {
                        return;
                    }
                }
            });
        }
        drop(result_tx);

        let mut window = Window { pending: VecDeque::new(), front_seq: 0, signers: SignerSet::default() };
        let mut tip = Tip::genesis(ctx);
        let mut state = MemState::default();
        state.records.reserve(usize::try_from(records.min(RECORDS_RESERVED_MAX)).unwrap_or(0));
        // The first failure of the in-order checks; a signature failure in an
        // earlier block still outranks it, so the window is drained first.
        let mut rule_failure: Option<VerifyError> = None;
        'blocks: for (seq, item) in (0u64..).zip(blocks) {
            while window.pending.len() >= BLOCKS_IN_FLIGHT_MAX {
                let Ok((s, verdict)) = result_rx.recv() else { break 'blocks };
                window.record(s, verdict);
                if let Err(e) = window.retire(ctx, &mut summary, started, &mut progress) {
                    return Some(e);
                }
            }
            while let Ok((s, verdict)) = result_rx.try_recv() {
                window.record(s, verdict);
            }
            if let Err(e) = window.retire(ctx, &mut summary, started, &mut progress) {
                return Some(e);
            }
            let checked = item.and_then(|cb| {
                let batched = Some((&cb.certificate, CertificateMode::Batched));
                match check_without_signatures_with(ctx, &tip, &state, &cb.block, batched, None) {
                    Ok(c) => Ok((cb, c)),
                    // Named as the one-by-one check names it: a bad certificate line
                    // outranks the block's other failures.
                    Err(e) => Err(check_without_signatures(ctx, &tip, &state, &cb.block, Some(&cb.certificate), None)
                        .err()
                        .unwrap_or(e)),
                }
            });
            let (cb, Checked { hash, gov, roster, merkle_nodes, mut delta, frontier, mut certificate_lines }) =
                match checked {
                    Ok(x) => x,
                    Err(e) => {
                        rule_failure = Some(e);
                        break;
                    }
                };
            let attesters = Arc::new(std::mem::take(&mut delta.attesters));
            state.apply(&delta);
            let h = &cb.block.header;
            debug_assert_eq!(frontier.size(), h.tree_size);
            debug_assert!(!merkle_nodes.is_empty() || cb.block.leaves.is_empty());
            tip = Tip { height: h.height, hash, time_ms: h.time_ms, frontier };
            let cb = Arc::new(cb);
            let n = cb.block.leaves.len();
            // An empty block still needs a job for its certificate lines.
            let jobs = n.div_ceil(SIGNATURE_JOB_ITEMS_MAX).max(usize::from(certificate_lines.is_some()));
            window.pending.push_back(Pending {
                block: Arc::clone(&cb),
                gov,
                roster: Arc::clone(&roster),
                certificate_bad: false,
                jobs_left: jobs,
                first_bad: None,
                signers: SignerSet::default(),
            });
            for j in 0..jobs {
                let range = j * SIGNATURE_JOB_ITEMS_MAX..((j + 1) * SIGNATURE_JOB_ITEMS_MAX).min(n);
                let roster = Arc::clone(&roster);
                let (attesters, certificate) = (Arc::clone(&attesters), certificate_lines.take());
                if job_tx.send(Job { seq, block: Arc::clone(&cb), roster, range, attesters, certificate }).is_err() {
                    break 'blocks;
                }
            }
        }
        drop(job_tx);
        while !window.pending.is_empty() {
            if let Err(e) = window.retire(ctx, &mut summary, started, &mut progress) {
                return Some(e);
            }
            match result_rx.recv() {
                Ok((s, verdict)) => window.record(s, verdict),
                Err(_) => break,
            }
        }
        if let Err(e) = window.retire(ctx, &mut summary, started, &mut progress) {
            return Some(e);
        }
        if rule_failure.is_none() {
            // The governance every block's records replayed, in force after the head.
            match rules::governance_at(&ctx.genesis, &state, tip.height + 1) {
                Ok(gov) => summary.witnesses.clone_from(&gov.witnesses),
                Err(e) => return Some(VerifyError::at(tip.height + 1, Failure::State(e.to_string()))),
            }
        }
        rule_failure
    });
    summary.seconds = started.elapsed().as_secs_f64();
    (summary, failure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{Block, CertifiedBlock};
    use crate::demo::ChainBuilder;
    use crate::sig::{KEY_TABLE_BYTES_PER_KEY, KEY_TABLE_KEYS_MAX};

    /// A valid chain of `blocks` blocks of `per_block` records, with its context.
    fn chain(blocks: usize, per_block: usize) -> (ChainBuilder, Vec<CertifiedBlock>) {
        let mut b = ChainBuilder::new(5, 1_700_000_000_000).unwrap();
        let out = b.certified_blocks(blocks, per_block).unwrap();
        (b, out)
    }

    /// `block` with leaf `i`'s signature damaged (S changed), re-rooted and re-certified so
    /// that only the signature is wrong.
    fn with_bad_signature(b: &ChainBuilder, tip: &Tip, block: &Block, i: usize) -> CertifiedBlock {
        let mut block = block.clone();
        let mut a = block.leaves[i].attestation.clone();
        a.signature.0[33] ^= 1;
        block.leaves[i] = Leaf::new(a);
        let mut frontier = tip.frontier.clone();
        let mut scratch = Vec::new();
        for l in &block.leaves {
            frontier.push_leaf_hash(l.leaf_hash(), &mut scratch).unwrap();
        }
        block.header.tree_root = Hash(frontier.root());
        let certificate = b.certify(&block.header);
        CertifiedBlock { block, certificate }
    }

    /// The tip after `blocks`.
    fn tip_after(ctx: &ChainContext, blocks: &[CertifiedBlock]) -> Tip {
        let mut tip = Tip::genesis(ctx);
        for cb in blocks {
            let h = &cb.block.header;
            let mut scratch = Vec::new();
            for l in &cb.block.leaves {
                tip.frontier.push_leaf_hash(l.leaf_hash(), &mut scratch).unwrap();
            }
            tip = Tip { height: h.height, hash: h.hash(), time_ms: h.time_ms, frontier: tip.frontier };
        }
        tip
    }

    /// A whole chain's summary carries the witness terms of the governance it replayed: an
    /// `AddWitness` and a `RemoveWitness` approved by a quorum, each from its activation height;
    /// a chain that fails verification reports none.
    #[test]
    fn the_summary_lists_the_witness_terms_the_chain_replayed() {
        use crate::attestation::{Claim, GovernanceApproval, GovernanceProposal};
        use crate::governance::{ACTIVATION_DELAY_HEIGHTS, Change};
        use crate::sig::SecretKey;

        let mut b = ChainBuilder::new(1, 1_600_000_000_000).unwrap();
        let g = b.genesis().clone();
        let validators: Vec<usize> = (0..g.members.len()).filter(|i| g.members[*i].validator).collect();
        let key = SecretKey::from_seed([44; 32]).public();
        let mut blocks = Vec::new();
        let decide = |b: &mut ChainBuilder, change: Change, blocks: &mut Vec<CertifiedBlock>| {
            let expires_at_ms = b.time_ms() + 86_400_000;
            let proposal = Claim::GovernanceProposal(Box::new(GovernanceProposal { change, expires_at_ms }));
            let proposed = b.next_block_of(vec![(validators[0], proposal)]).unwrap().into_certified();
            let id = proposed.block.leaves[0].id;
            blocks.push(proposed);
            let approvals = validators[1..3]
                .iter()
                .map(|v| (*v, Claim::GovernanceApproval(GovernanceApproval { proposal: id })))
                .collect();
            blocks.push(b.next_block_of(approvals).unwrap().into_certified());
            let completed = blocks.len() as u64;
            for _ in 0..ACTIVATION_DELAY_HEIGHTS {
                blocks.push(b.next_block(1).unwrap().into_certified());
            }
            completed + ACTIVATION_DELAY_HEIGHTS
        };
        let name = "w.example/gov".to_owned();
        let url = "http://127.0.0.1:1".to_owned();
        let from = decide(&mut b, Change::AddWitness { name: name.clone(), key, url: url.clone() }, &mut blocks);
        let until = decide(&mut b, Change::RemoveWitness { name: name.clone() }, &mut blocks);
        assert_eq!(blocks.len() as u64, until, "the removal takes effect at the head");

        let ctx = ChainContext::new(g);
        let (summary, failure) = verify_chain(&ctx, blocks.iter().cloned().map(Ok), |_| {});
        assert_eq!((failure, summary.blocks), (None, until));
        let term = WitnessTerm { name, key, url, from_height: from, until_height: Some(until) };
        assert_eq!(summary.witnesses, vec![term]);
        // Two heights before the removal's activation (the summary's state is the next
        // height's): in force, no end yet.
        let (summary, _) = verify_chain(&ctx, blocks[..until as usize - 2].iter().cloned().map(Ok), |_| {});
        assert_eq!(summary.witnesses[0].until_height, None);
        // A chain that breaks off with a failure names no terms.
        let mut cut: Vec<_> = blocks.iter().cloned().map(Ok).collect();
        cut[3] = Err(VerifyError::at(4, Failure::Source("gone".into())));
        let (summary, failure) = verify_chain(&ctx, cut, |_| {});
        assert!(failure.is_some() && summary.witnesses.is_empty() && summary.blocks == 3);
    }

    /// A bad signature is reported at its height and record index, whether its block's
    /// batch takes the tables (40 records) or Pippenger (300), by the streaming verifier
    /// and by `verify_block`.
    #[test]
    fn a_bad_signature_is_named_by_height_and_record() {
        for (per_block, bad) in [(40, 17), (300, 211)] {
            let (b, blocks) = chain(3, per_block);
            let ctx = ChainContext::new(b.genesis().clone());
            assert!(ctx.genesis_roster().key_table().is_some(), "the demo roster has a table");
            let (summary, failure) = verify_chain(&ctx, blocks.iter().cloned().map(Ok), |_| {});
            assert_eq!((failure, summary.blocks), (None, 3));
            assert!(summary.signers >= 2 && summary.signers <= ctx.genesis_roster().members.len() as u64);

            let tip = tip_after(&ctx, &blocks[..1]);
            let damaged = with_bad_signature(&b, &tip, &blocks[1].block, bad);
            let (summary, failure) = verify_chain(&ctx, [Ok(blocks[0].clone()), Ok(damaged.clone())], |_| {});
            let failure = failure.expect("the damaged block fails");
            assert_eq!((failure.height, failure.record, summary.blocks), (2, Some(bad), 1), "{failure}");
            assert_eq!(failure.reason, Failure::Signature(SigError::Mismatch));

            let mut state = MemState::default();
            let first = verify_block(&ctx, &Tip::genesis(&ctx), &state, blocks[0].clone()).unwrap();
            state.apply(first.delta());
            let failure = verify_block(&ctx, &tip, &state, damaged).unwrap_err();
            assert_eq!((failure.height, failure.record), (2, Some(bad)));
            assert_eq!(failure.reason, Failure::Signature(SigError::Mismatch));
        }
    }

    /// The roster's table and the plain batch give every leaf the single check's verdict,
    /// on valid, changed-S, changed-R, non-canonical-S and wrong-key signatures mixed.
    #[test]
    fn table_and_plain_paths_give_single_verdicts() {
        let (b, blocks) = chain(1, 260);
        let ctx = ChainContext::new(b.genesis().clone());
        let roster = ctx.genesis_roster();
        let mut leaves = blocks[0].block.leaves.clone();
        let other_key = |l: &Leaf| {
            let own = roster.member_index(&l.attestation.body.attester).unwrap();
            roster.members.iter().enumerate().find(|(i, _)| *i != usize::from(own)).map(|(_, m)| m.key).unwrap()
        };
        for (i, leaf) in leaves.iter_mut().enumerate() {
            let mut a = leaf.attestation.clone();
            match i % 7 {
                1 => a.signature.0[40] ^= 1,
                2 => a.signature.0[3] ^= 2,
                3 => a.signature.0[63] |= 0x80,
                _ => continue,
            }
            *leaf = Leaf::new(a);
        }
        let expected: Vec<Result<(), SigError>> = leaves
            .iter()
            .map(|l| {
                let key = roster.member(&l.attestation.body.attester).unwrap().key;
                let single =
                    sig::verify(&key, Domain::Attestation, &ctx.chain_id.0, l.body_bytes(), &l.attestation.signature);
                // Another member's key never verifies it.
                let wrong = other_key(l);
                assert!(
                    sig::verify(&wrong, Domain::Attestation, &ctx.chain_id.0, l.body_bytes(), &l.attestation.signature)
                        .is_err()
                );
                single
            })
            .collect();
        assert!(expected.iter().any(Result::is_ok) && expected.contains(&Err(SigError::NonCanonicalS)));
        assert!(expected.contains(&Err(SigError::Mismatch)));
        for n in [1, 2, 40, 260] {
            for threads in [1, 2] {
                let (table, signers, _) = leaf_verdicts(
                    roster,
                    roster.key_table(),
                    &ctx.chain_id,
                    leaves[..n].iter().map(|l| (l, None)),
                    None,
                    threads,
                );
                let (plain, plain_signers, _) =
                    leaf_verdicts(roster, None, &ctx.chain_id, leaves[..n].iter().map(|l| (l, None)), None, threads);
                assert_eq!(table, expected[..n], "table, {n} leaves, threads {threads}");
                assert_eq!(plain, expected[..n], "plain, {n} leaves, threads {threads}");
                assert_eq!(signers, plain_signers);
                assert!(signers.len() >= 1);
            }
        }
    }

    /// One table per roster, built once and kept with it; its size bounded by the member
    /// limit, and the context keeps a bounded number of rosters.
    #[test]
    fn roster_tables_are_built_once_and_bounded() {
        let (b, _) = chain(1, 5);
        let ctx = ChainContext::new(b.genesis().clone());
        let roster = ctx.genesis_roster();
        let table = roster.key_table().unwrap();
        assert!(std::ptr::eq(table, roster.key_table().unwrap()), "built once");
        assert_eq!(table.len(), roster.members.len());
        assert!(table.len() <= KEY_TABLE_KEYS_MAX);
        for (i, m) in roster.members.iter().enumerate() {
            assert_eq!(table.key(i).map(|k| k.public()), Some(m.key));
        }
        assert!(table.table_bytes() <= (KEY_TABLE_KEYS_MAX + 1) * KEY_TABLE_BYTES_PER_KEY);
        // At most the genesis roster and ROSTERS_CACHED_MAX others, each one table.
        assert_eq!(
            ROSTER_TABLES_BYTES_MAX,
            (ROSTERS_CACHED_MAX + 1) * (KEY_TABLE_KEYS_MAX + 1) * KEY_TABLE_BYTES_PER_KEY
        );
        let gov = ctx.genesis.governance();
        assert!(Arc::ptr_eq(&ctx.roster(&gov), roster), "the genesis state's roster is the genesis roster");
    }

    #[test]
    fn certificate_lines_are_left_for_the_batch_only_when_every_other_rule_holds() {
        let (b, blocks) = chain(2, 5);
        let ctx = ChainContext::new(b.genesis().clone());
        let roster = ctx.genesis_roster();
        let cert = &blocks[0].certificate;
        let lines = defer_certificate(roster, cert).expect("a valid certificate's lines are deferred");
        assert_eq!(lines.signers.len(), cert.signatures.len());
        assert_eq!(lines.text, cert.body.to_text());
        for (&m, line) in lines.signers.iter().zip(&cert.signatures) {
            assert_eq!(roster.members[usize::from(m)].name.as_str(), line.key_name);
        }
        // Too few lines for a quorum, or an unknown signer: checked the usual way.
        let mut few = cert.clone();
        few.signatures.truncate(1);
        assert!(defer_certificate(roster, &few).is_none());
        let mut stranger = cert.clone();
        stranger.signatures[0].key_name = "stranger".into();
        assert!(defer_certificate(roster, &stranger).is_none());
        // The lines verify in a batch with the block's leaves, and a bad one is seen.
        let leaves = blocks[0].block.leaves.iter().map(|l| (l, None));
        let (_, _, ok) = leaf_verdicts(roster, roster.key_table(), &ctx.chain_id, leaves, Some((&lines, cert)), 1);
        assert!(ok);
        let mut bad = cert.clone();
        bad.signatures[1].signature.0[9] ^= 1;
        let leaves = blocks[0].block.leaves.iter().map(|l| (l, None));
        let (verdicts, _, ok) =
            leaf_verdicts(roster, roster.key_table(), &ctx.chain_id, leaves, Some((&lines, &bad)), 1);
        assert!(!ok);
        assert!(verdicts.iter().all(Result::is_ok), "the leaves' verdicts are their own");
    }

    #[test]
    fn signer_sets() {
        let mut a = SignerSet::default();
        a.insert(0);
        a.insert(63);
        a.insert(64);
        a.insert(255);
        a.insert(63);
        let mut b = SignerSet::default();
        b.insert(1);
        b.insert(255);
        a.union(&b);
        assert_eq!(a.len(), 5);
        assert_eq!(SignerSet::default().len(), 0);
    }
}
