//! RFC 9162 §2.1 Merkle tree log (RFC 6962 hashing): complete-subtree storage, frontier, roots, proofs, verifiers.
//!
//! # Hashing (RFC 9162 §2.1.1)
//! * leaf hash  = SHA-256(0x00 || leaf bytes)
//! * node hash  = SHA-256(0x01 || left || right)
//! * empty tree = SHA-256("")
//!
//! # Storage model
//! Only hashes of *complete* (perfect) subtrees are stored. Node `(level, index)` is the root of
//! leaves `[index * 2^level, (index + 1) * 2^level)`; level 0 holds the leaf hashes. A tree of `n`
//! leaves therefore stores exactly `2n - popcount(n)` nodes, and a node never changes once written
//! (append-only). A node of a tree of size `n` whose range is cut off by `n` (the "right edge") is
//! never stored: it is the Merkle Tree Hash (RFC 9162 §2.1.1) of the range `[start, n)`, computed on
//! the fly from the perfect subtrees that tile that range, largest first, folded from the right:
//! `MTH([s, n)) = H(P1, H(P2, ... H(Pk-1, Pk)))`, which is exactly what the recursive split at the
//! largest power of two smaller than the range length produces.
//!
//! # Complexity
//! With `L = ceil(log2 n) <= 64`:
//! * [`root_at`] reads `popcount(size) <= L` stored nodes and hashes `< L` times.
//! * [`inclusion_proof`] returns at most `L` hashes and reads at most `2L - 1` stored nodes
//!   (one per proof element plus the pieces of the single right-edge sibling).
//! * [`consistency_proof`] returns at most `L + 1` hashes and reads at most `2L` stored nodes.
//! * [`Frontier::push_leaf_hash`] is amortised O(1) hashes (worst case `L`) and reads nothing;
//!   [`Frontier::root`] hashes `< L` times; [`Frontier::from_reader`] reads `popcount(size)` nodes.
//! * The verifiers hash once per proof element and never allocate.
//!
//! No function in this module panics on any argument value (including `u64::MAX` sizes and
//! indices); every rejected input yields a [`MerkleError`] naming the violated rule.

use sha2::{Digest, Sha256};

/// A 32-byte SHA-256 tree hash (leaf, interior node or root).
pub type NodeHash = [u8; 32];

/// Domain-separation prefix for leaf hashes (RFC 9162 §2.1.1).
const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix for interior node hashes (RFC 9162 §2.1.1).
const NODE_PREFIX: u8 = 0x01;

/// Everything that can go wrong when building or checking Merkle data.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum MerkleError {
    /// A leaf index must be smaller than the tree size (RFC 9162 §2.1.3.1 / §2.1.3.2 step 1).
    #[error("leaf index {index} is out of range: it must be < tree size {size} (RFC 9162 §2.1.3)")]
    IndexOutOfRange { index: u64, size: u64 },
    /// A requested tree size must not exceed the number of leaves stored.
    #[error("tree size {size} is beyond the stored tree: it must be <= {tree_size}")]
    SizeBeyondTree { size: u64, tree_size: u64 },
    /// Consistency proofs need `0 < m <= n` (RFC 9162 §2.1.4).
    #[error("consistency range m = {m}, n = {n} is invalid: it must satisfy 0 < m <= n (RFC 9162 §2.1.4)")]
    BadConsistencyRange { m: u64, n: u64 },
    /// The proof does not have the exact length the tree sizes determine.
    #[error("proof has {got} hashes but the index/sizes require exactly {expected} (RFC 9162 §2.1.3.2 / §2.1.4.2)")]
    ProofLength { expected: usize, got: usize },
    /// The root recomputed from the proof differs from the expected root.
    #[error("root recomputed from the proof does not match the expected root hash")]
    RootMismatch,
    /// The store has no hash for a complete subtree that must exist.
    #[error("stored node (level {level}, index {index}) is missing")]
    MissingNode { level: u8, index: u64 },
    /// The tree already holds `u64::MAX` leaves; tree sizes are u64 (RFC 9162 §2.1).
    #[error("tree size {size} cannot grow by {extra} leaves: tree sizes must fit in u64")]
    TreeFull { size: u64, extra: u64 },
}

/// Read access to stored complete-subtree hashes. Implemented by the in-memory tree and by the durable store.
pub trait NodeReader {
    /// Hash of the complete subtree `(level, index)`, i.e. of leaves
    /// `[index * 2^level, (index + 1) * 2^level)`. Must return [`MerkleError::MissingNode`]
    /// (or a store error) rather than panic when the node is not stored.
    fn node(&self, level: u8, index: u64) -> Result<NodeHash, MerkleError>;

    /// Number of leaves whose complete subtrees are all stored, when known. Proof and root
    /// functions use it to reject sizes beyond the tree with [`MerkleError::SizeBeyondTree`]
    /// before reading; `None` (the default) means such requests surface as `MissingNode`.
    fn stored_size(&self) -> Option<u64> {
        None
    }

    /// Appends the hashes of the `count` complete subtrees `(level, start ..start + count)` to
    /// `out` (a C2SP tlog-tiles tile, `tiles.rs`). The default reads them one by one; a store
    /// overrides it with one range read.
    fn nodes(&self, level: u8, start: u64, count: usize, out: &mut Vec<NodeHash>) -> Result<(), MerkleError> {
        for i in 0..count as u64 {
            let index = start.checked_add(i).ok_or(MerkleError::MissingNode { level, index: u64::MAX })?;
            out.push(self.node(level, index)?);
        }
        Ok(())
    }
}

/// What appending leaves creates: every newly completed (level, index, hash), for the store to persist atomically with the block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Append {
    /// Newly completed nodes in creation order (each leaf, then the parents it completes).
    pub nodes: Vec<(u8, u64, NodeHash)>,
    /// Tree size after the append.
    pub size: u64,
    /// Root (RFC 9162 §2.1.1 MTH) of the tree after the append.
    pub root: NodeHash,
}

// ---------------------------------------------------------------------------------------------
// Hashing (RFC 9162 §2.1.1)
// ---------------------------------------------------------------------------------------------

/// Leaf hash: SHA-256(0x00 || leaf) (RFC 9162 §2.1.1).
pub fn leaf_hash(leaf: &[u8]) -> NodeHash {
    let mut h = Sha256::new();
    h.update([LEAF_PREFIX]);
    h.update(leaf);
    h.finalize().into()
}

/// Interior node hash: SHA-256(0x01 || left || right) (RFC 9162 §2.1.1).
pub fn node_hash(l: &NodeHash, r: &NodeHash) -> NodeHash {
    let mut buf = [0u8; 65];
    buf[0] = NODE_PREFIX;
    buf[1..33].copy_from_slice(l);
    buf[33..].copy_from_slice(r);
    Sha256::digest(buf).into()
}

/// Root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1).
pub fn empty_root() -> NodeHash {
    Sha256::digest(b"").into()
}

/// MTH of a complete subtree from its nodes at one level: `hashes`, consecutive, a power of
/// two of them (the empty tree's root for none).
pub fn perfect_root(hashes: &[NodeHash]) -> NodeHash {
    debug_assert!(hashes.is_empty() || hashes.len().is_power_of_two());
    let mut level = hashes.to_vec();
    let mut n = level.len();
    while n > 1 {
        for j in 0..n / 2 {
            level[j] = node_hash(&level[2 * j], &level[2 * j + 1]);
        }
        n /= 2;
    }
    level.first().copied().unwrap_or_else(empty_root)
}

// ---------------------------------------------------------------------------------------------
// Tree arithmetic
// ---------------------------------------------------------------------------------------------

/// Number of significant bits of `x` (0 for 0, 64 for `u64::MAX`).
fn bit_len(x: u64) -> u32 {
    u64::BITS - x.leading_zeros()
}

/// Converts a tree level (always < 64 by construction) to the `u8` used in node addresses.
fn level_u8(level: u32) -> u8 {
    debug_assert!(level < u64::BITS, "tree level {level} out of range");
    u8::try_from(level).unwrap_or(u8::MAX)
}

/// Shape of the audit path of node `index` towards the node `last` at the same level, which is
/// the one holding the tree's last leaf. Returns `(inner, len)`: the first `inner` path elements
/// are siblings at consecutive levels (only the one at level `inner - 1` can be a partial right
/// edge); the remaining `len - inner` are complete left siblings, one per set bit of
/// `index >> inner`. This is the PATH of RFC 9162 §2.1.3.1 expressed on aligned levels.
fn path_shape(index: u64, last: u64) -> (u32, usize) {
    let inner = bit_len(index ^ last);
    let left = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner, (inner + left) as usize)
}

/// Length of the RFC 9162 §2.1.3.1 inclusion proof for `index < size`.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    debug_assert!(index < size);
    path_shape(index, size - 1).1
}

/// The largest complete subtree ending at leaf `m` (`m > 0`): `(level, index)` with
/// `(index + 1) << level == m`. A consistency proof (RFC 9162 §2.1.4.1) is this node (omitted
/// when `m` is a power of two, i.e. `index == 0`, since the verifier already has it as `root_m`)
/// followed by its audit path in the tree of size `n`.
fn consistency_start(m: u64) -> (u32, u64) {
    debug_assert!(m > 0);
    let level = m.trailing_zeros();
    (level, (m - 1) >> level)
}

/// Length of the RFC 9162 §2.1.4.1 consistency proof for `0 < m < n`.
fn consistency_proof_len(m: u64, n: u64) -> usize {
    debug_assert!(0 < m && m < n);
    let (level, index) = consistency_start(m);
    usize::from(index != 0) + path_shape(index, (n - 1) >> level).1
}

fn check_size(size: u64, r: &impl NodeReader) -> Result<(), MerkleError> {
    match r.stored_size() {
        Some(tree_size) if size > tree_size => Err(MerkleError::SizeBeyondTree { size, tree_size }),
        _ => Ok(()),
    }
}

/// MTH of leaves `[start, end)` (RFC 9162 §2.1.1) where `start < end` and `start` is a multiple of
/// the largest power of two `<= end - start` (true for `start == 0` and for every right-edge node).
/// The range is tiled by one perfect subtree per set bit of `end - start`, largest first; they are
/// read right to left and folded so the result is `H(P1, H(P2, ... Pk))`. Reads
/// `popcount(end - start)` stored nodes.
fn range_hash(start: u64, end: u64, r: &impl NodeReader) -> Result<NodeHash, MerkleError> {
    debug_assert!(start < end);
    let len = end - start;
    let mut pos = end;
    let mut acc: Option<NodeHash> = None;
    for bit in 0..u64::BITS {
        if (len >> bit) & 1 == 1 {
            pos -= 1u64 << bit;
            let piece = r.node(level_u8(bit), pos >> bit)?;
            acc = Some(match acc {
                None => piece,
                Some(right) => node_hash(&piece, &right),
            });
        }
    }
    debug_assert_eq!(pos, start);
    Ok(acc.unwrap_or_else(empty_root))
}

/// Hash of node `(level, index)` in the tree of size `size`: the stored hash when the subtree is
/// complete, otherwise the MTH of its non-empty part `[index * 2^level, size)`.
fn subtree_hash(level: u32, index: u64, size: u64, r: &impl NodeReader) -> Result<NodeHash, MerkleError> {
    let start = u128::from(index) << level;
    let end = start + (1u128 << level);
    if end <= u128::from(size) {
        return r.node(level_u8(level), index);
    }
    match u64::try_from(start) {
        Ok(start) if start < size => range_hash(start, size, r),
        // Unreachable by construction: callers only ask for nodes overlapping [0, size).
        _ => Err(MerkleError::MissingNode { level: level_u8(level), index }),
    }
}

/// Appends the audit path of node `(level0, index)` in the tree of size `size` (bottom-up, the
/// order of RFC 9162 §2.1.3.1 PATH) to `out`. Requires `index << level0 < size`.
fn push_path(
    level0: u32,
    index: u64,
    size: u64,
    r: &impl NodeReader,
    out: &mut Vec<NodeHash>,
) -> Result<(), MerkleError> {
    debug_assert!(size > 0 && (u128::from(index) << level0) < u128::from(size));
    let last = (size - 1) >> level0;
    let (inner, _) = path_shape(index, last);
    // Siblings below the level where the paths to `index` and to the last leaf merge. All are
    // complete except possibly the one at level0 + inner - 1 (the right edge).
    for j in 0..inner {
        out.push(subtree_hash(level0 + j, (index >> j) ^ 1, size, r)?);
    }
    // Above the merge point the node is on the right edge of the tree: it has a (complete) left
    // sibling where its index is odd and no sibling otherwise (RFC 9162 §2.1.3.1, `m >= k` case).
    let mut j = inner;
    while j < u64::BITS {
        let at = index >> j;
        if at == 0 {
            break;
        }
        if at & 1 == 1 {
            out.push(r.node(level_u8(level0 + j), at - 1)?);
        }
        j += 1;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Roots and proofs from stored nodes
// ---------------------------------------------------------------------------------------------

/// Root (RFC 9162 §2.1.1 MTH) of the first `size` leaves, from stored complete subtrees only.
/// Reads `popcount(size)` nodes. `size == 0` gives [`empty_root`].
pub fn root_at(size: u64, r: &impl NodeReader) -> Result<NodeHash, MerkleError> {
    check_size(size, r)?;
    if size == 0 {
        return Ok(empty_root());
    }
    range_hash(0, size, r)
}

/// Inclusion proof (audit path, RFC 9162 §2.1.3.1 PATH order: leaf level first) of leaf `index`
/// in the tree of the first `size` leaves. Reads at most `2 * ceil(log2 size) - 1` stored nodes.
pub fn inclusion_proof(index: u64, size: u64, r: &impl NodeReader) -> Result<Vec<NodeHash>, MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    check_size(size, r)?;
    let expected = inclusion_proof_len(index, size);
    let mut out = Vec::with_capacity(expected);
    push_path(0, index, size, r, &mut out)?;
    debug_assert_eq!(out.len(), expected);
    Ok(out)
}

/// Consistency proof between the trees of the first `m` and first `n` leaves (RFC 9162 §2.1.4.1
/// PROOF order). Requires `0 < m <= n`; `m == n` gives the empty proof. Reads at most
/// `2 * ceil(log2 n)` stored nodes.
pub fn consistency_proof(m: u64, n: u64, r: &impl NodeReader) -> Result<Vec<NodeHash>, MerkleError> {
    if m == 0 || m > n {
        return Err(MerkleError::BadConsistencyRange { m, n });
    }
    check_size(n, r)?;
    if m == n {
        return Ok(Vec::new());
    }
    let expected = consistency_proof_len(m, n);
    let mut out = Vec::with_capacity(expected);
    let (level, index) = consistency_start(m);
    if index != 0 {
        // SUBPROOF(m, D[m], false) = {MTH(D[m])} for the largest subtree ending at m.
        out.push(r.node(level_u8(level), index)?);
    }
    push_path(level, index, n, r, &mut out)?;
    debug_assert_eq!(out.len(), expected);
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Verifiers
// ---------------------------------------------------------------------------------------------

/// Verifies that `leaf_hash` is leaf `index` of the tree of size `size` with root `root`, using the
/// algorithm of RFC 9162 §2.1.3.2 exactly. The proof length is checked first as well: it must
/// equal the length of the RFC 9162 §2.1.3.1 PATH for `(index, size)`, so padded or truncated
/// proofs are rejected before any hashing (the RFC algorithm rejects them too; two layers).
///
/// As in RFC 9162, `size` is authenticated only through `root` (a signed tree head binds the
/// pair); the proof alone cannot distinguish sizes whose audit paths have the same shape.
pub fn verify_inclusion(
    leaf_hash: &NodeHash,
    index: u64,
    size: u64,
    proof: &[NodeHash],
    root: &NodeHash,
) -> Result<(), MerkleError> {
    // Step 1: leaf_index must be < tree_size.
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(MerkleError::ProofLength { expected, got: proof.len() });
    }
    rfc9162_verify_inclusion(leaf_hash, index, size, proof, root)
}

/// RFC 9162 §2.1.3.2 steps 2-5, verbatim. Requires `index < size` (step 1, checked by the caller).
fn rfc9162_verify_inclusion(
    leaf_hash: &NodeHash,
    index: u64,
    size: u64,
    proof: &[NodeHash],
    root: &NodeHash,
) -> Result<(), MerkleError> {
    debug_assert!(index < size);
    let length_err = || MerkleError::ProofLength { expected: inclusion_proof_len(index, size), got: proof.len() };
    // Step 2: fn = leaf_index, sn = tree_size - 1.
    let (mut fnode, mut snode) = (index, size - 1);
    // Step 3: r = hash.
    let mut r = *leaf_hash;
    // Step 4.
    for p in proof {
        // 4a: a proof longer than the path fails.
        if snode == 0 {
            return Err(length_err());
        }
        // 4b.
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        // 4c.
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 5: sn must be 0 (the proof was not too short) and r must equal the root.
    if snode != 0 {
        return Err(length_err());
    }
    if r != *root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// Verifies that the tree of size `m` with root `root_m` is a prefix of the tree of size `n` with
/// root `root_n`, using the algorithm of RFC 9162 §2.1.4.2 exactly for `0 < m < n`, after
/// checking that the proof has exactly the RFC 9162 §2.1.4.1 length for `(m, n)` (two layers,
/// as for [`verify_inclusion`]).
///
/// Cases outside the RFC algorithm's `0 < m < n`: `m > n` is rejected; `m == n` requires an
/// empty proof and `root_m == root_n`; `m == 0` requires an empty proof and `root_m` to be the
/// empty-tree root (the empty tree is a prefix of every tree).
pub fn verify_consistency(
    m: u64,
    n: u64,
    proof: &[NodeHash],
    root_m: &NodeHash,
    root_n: &NodeHash,
) -> Result<(), MerkleError> {
    if m > n {
        return Err(MerkleError::BadConsistencyRange { m, n });
    }
    if m == 0 || m == n {
        if !proof.is_empty() {
            return Err(MerkleError::ProofLength { expected: 0, got: proof.len() });
        }
        let want = if m == 0 { empty_root() } else { *root_n };
        return if *root_m == want { Ok(()) } else { Err(MerkleError::RootMismatch) };
    }
    let expected = consistency_proof_len(m, n);
    if proof.len() != expected {
        return Err(MerkleError::ProofLength { expected, got: proof.len() });
    }
    rfc9162_verify_consistency(m, n, proof, root_m, root_n)
}

/// RFC 9162 §2.1.4.2 steps 1-7, verbatim. Requires `0 < m < n` (checked by the caller).
fn rfc9162_verify_consistency(
    m: u64,
    n: u64,
    proof: &[NodeHash],
    root_m: &NodeHash,
    root_n: &NodeHash,
) -> Result<(), MerkleError> {
    debug_assert!(0 < m && m < n);
    let length_err = || MerkleError::ProofLength { expected: consistency_proof_len(m, n), got: proof.len() };
    // Step 1: an empty path fails.
    let Some((head, tail)) = proof.split_first() else {
        return Err(length_err());
    };
    // Step 2: if m is an exact power of two, root_m is prepended to the path.
    let (seed, rest) = if m.is_power_of_two() { (root_m, proof) } else { (head, tail) };
    // Step 3.
    let (mut fnode, mut snode) = (m - 1, n - 1);
    // Step 4: right-shift both while LSB(fn) is set.
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 5.
    let (mut fr, mut sr) = (*seed, *seed);
    // Step 6.
    for c in rest {
        // 6a.
        if snode == 0 {
            return Err(length_err());
        }
        // 6b.
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        // 6c.
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 7: sn must be 0 and both roots must match.
    if snode != 0 {
        return Err(length_err());
    }
    if fr != *root_m || sr != *root_n {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Frontier (compact range [0, size))
// ---------------------------------------------------------------------------------------------

/// The "frontier"/compact range: hashes of the perfect subtrees covering [0, size) (at most 64), enough to append and compute the root in O(log n) without reading storage.
///
/// `hashes[i]` is the subtree for the i-th set bit of `size` counted from the most significant
/// one, i.e. leftmost (largest) subtree first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    hashes: Vec<NodeHash>,
}

impl Frontier {
    /// Frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves covered.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Perfect-subtree hashes, leftmost (largest) first; one per set bit of [`Self::size`].
    pub fn hashes(&self) -> &[NodeHash] {
        &self.hashes
    }

    /// The frontier as node addresses `(level, index, hash)`, leftmost first.
    pub fn nodes(&self) -> Vec<(u8, u64, NodeHash)> {
        let mut out = Vec::with_capacity(self.hashes.len());
        let mut pos = 0u64;
        let mut hashes = self.hashes.iter();
        for bit in (0..u64::BITS).rev() {
            if (self.size >> bit) & 1 == 1 {
                if let Some(h) = hashes.next() {
                    out.push((level_u8(bit), pos >> bit, *h));
                }
                pos += 1u64 << bit;
            }
        }
        out
    }

    fn check_invariant(&self) {
        debug_assert_eq!(
            self.hashes.len(),
            self.size.count_ones() as usize,
            "frontier must hold one hash per set bit of its size"
        );
    }

    /// Root of the covered tree (RFC 9162 §2.1.1 MTH): the subtrees folded from the right.
    pub fn root(&self) -> NodeHash {
        self.check_invariant();
        let mut it = self.hashes.iter().rev();
        let Some(last) = it.next() else {
            return empty_root();
        };
        it.fold(*last, |acc, left| node_hash(left, &acc))
    }

    /// Appends one leaf hash, pushing every newly completed node `(level, index, hash)` (the leaf
    /// itself first, then each parent it completes) to `out`. Fails only when the size would
    /// overflow u64, in which case nothing changes.
    pub fn push_leaf_hash(&mut self, h: NodeHash, out: &mut Vec<(u8, u64, NodeHash)>) -> Result<(), MerkleError> {
        self.check_invariant();
        let index = self.size;
        if index == u64::MAX {
            return Err(MerkleError::TreeFull { size: index, extra: 1 });
        }
        out.push((0, index, h));
        let mut acc = h;
        let mut level = 0u32;
        // Each set low bit of the old size is a complete left sibling that the new leaf completes.
        while (index >> level) & 1 == 1 {
            let Some(left) = self.hashes.pop() else {
                debug_assert!(false, "frontier shorter than popcount(size)");
                return Err(MerkleError::MissingNode { level: level_u8(level), index: (index >> level) - 1 });
            };
            acc = node_hash(&left, &acc);
            level += 1;
            out.push((level_u8(level), index >> level, acc));
        }
        self.hashes.push(acc);
        self.size = index + 1;
        self.check_invariant();
        Ok(())
    }

    /// Appends a batch of leaf hashes and reports what was created. All-or-nothing: fails with
    /// [`MerkleError::TreeFull`] before changing anything if the size would overflow.
    pub fn append_leaf_hashes(&mut self, hashes: &[NodeHash]) -> Result<Append, MerkleError> {
        let extra = u64::try_from(hashes.len()).unwrap_or(u64::MAX);
        if self.size.checked_add(extra).is_none() {
            return Err(MerkleError::TreeFull { size: self.size, extra });
        }
        let mut nodes = Vec::with_capacity(hashes.len().saturating_mul(2));
        for h in hashes {
            self.push_leaf_hash(*h, &mut nodes)?;
        }
        Ok(Append { nodes, size: self.size, root: self.root() })
    }

    /// Rebuilds the frontier of the first `size` leaves from stored nodes (e.g. after a restart).
    /// Reads `popcount(size)` nodes.
    pub fn from_reader(size: u64, r: &impl NodeReader) -> Result<Self, MerkleError> {
        check_size(size, r)?;
        let mut hashes = Vec::with_capacity(size.count_ones() as usize);
        let mut pos = 0u64;
        for bit in (0..u64::BITS).rev() {
            if (size >> bit) & 1 == 1 {
                hashes.push(r.node(level_u8(bit), pos >> bit)?);
                pos += 1u64 << bit;
            }
        }
        let f = Self { size, hashes };
        f.check_invariant();
        Ok(f)
    }
}

// ---------------------------------------------------------------------------------------------
// In-memory store
// ---------------------------------------------------------------------------------------------

/// In-memory store of complete-subtree nodes (used by tests, the in-memory ledger store and the offline verifier).
#[derive(Debug, Clone, Default)]
pub struct MemTree {
    /// `levels[l][i]` = node `(l, i)`.
    levels: Vec<Vec<NodeHash>>,
    frontier: Frontier,
}

impl MemTree {
    /// Empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one leaf hash, storing every node it completes.
    pub fn append_leaf_hash(&mut self, h: NodeHash) {
        let mut created = Vec::new();
        self.push(h, &mut created);
    }

    /// Appends leaf hashes, storing and returning every node they complete.
    pub fn append_leaves(&mut self, hashes: &[NodeHash]) -> Append {
        let mut nodes = Vec::with_capacity(hashes.len().saturating_mul(2));
        for h in hashes {
            self.push(*h, &mut nodes);
        }
        Append { nodes, size: self.size(), root: self.root() }
    }

    fn push(&mut self, h: NodeHash, out: &mut Vec<(u8, u64, NodeHash)>) {
        let before = out.len();
        // A Vec cannot hold u64::MAX leaves, so the frontier can never be full here.
        let pushed = self.frontier.push_leaf_hash(h, out);
        debug_assert!(pushed.is_ok(), "in-memory tree cannot reach u64::MAX leaves");
        for &(level, index, hash) in out.get(before..).unwrap_or_default() {
            let l = usize::from(level);
            while self.levels.len() <= l {
                self.levels.push(Vec::new());
            }
            if let Some(row) = self.levels.get_mut(l) {
                debug_assert_eq!(row.len() as u64, index, "nodes are completed in order");
                row.push(hash);
            }
        }
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// Current root (RFC 9162 §2.1.1 MTH), from the frontier.
    pub fn root(&self) -> NodeHash {
        self.frontier.root()
    }

    /// Frontier of the whole tree.
    pub fn frontier(&self) -> &Frontier {
        &self.frontier
    }

    /// Number of stored complete-subtree nodes (`2n - popcount(n)`).
    pub fn stored_node_count(&self) -> u64 {
        self.levels.iter().map(|l| l.len() as u64).sum()
    }
}

impl NodeReader for MemTree {
    fn node(&self, level: u8, index: u64) -> Result<NodeHash, MerkleError> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.levels.get(usize::from(level))?.get(i))
            .copied()
            .ok_or(MerkleError::MissingNode { level, index })
    }

    fn stored_size(&self) -> Option<u64> {
        Some(self.size())
    }
}

#[cfg(test)]
#[path = "merkle_vectors.rs"]
mod vectors;

#[cfg(test)]
mod tests {
    use super::vectors;
    use super::*;
    use proptest::prelude::*;
    use std::cell::RefCell;
    use std::sync::OnceLock;

    // -----------------------------------------------------------------------------------------
    // Helpers
    // -----------------------------------------------------------------------------------------

    fn h(s: &str) -> NodeHash {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    fn hs(v: &[&str]) -> Vec<NodeHash> {
        v.iter().map(|s| h(s)).collect()
    }

    fn test_leaves(n: u64) -> Vec<NodeHash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    fn tree_of(leaves: &[NodeHash]) -> MemTree {
        let mut t = MemTree::new();
        t.append_leaves(leaves);
        t
    }

    const BIG: u64 = 5000;

    /// Shared 5000-leaf tree; proofs for any size <= 5000 are taken from it (prefix trees).
    fn big() -> &'static (Vec<NodeHash>, MemTree) {
        static BIG_TREE: OnceLock<(Vec<NodeHash>, MemTree)> = OnceLock::new();
        BIG_TREE.get_or_init(|| {
            let leaves = test_leaves(BIG);
            let tree = tree_of(&leaves);
            (leaves, tree)
        })
    }

    /// The published 8-leaf tree (RFC 6962 test tree).
    fn published_tree() -> (Vec<NodeHash>, MemTree) {
        let leaves: Vec<NodeHash> = vectors::LEAF_INPUTS.iter().map(|s| leaf_hash(&hex::decode(s).unwrap())).collect();
        let tree = tree_of(&leaves);
        (leaves, tree)
    }

    fn flip(mut x: NodeHash, bit: usize) -> NodeHash {
        x[bit / 8] ^= 1 << (bit % 8);
        x
    }

    // -----------------------------------------------------------------------------------------
    // Naive reference straight from the RFC 9162 text (§2.1.1 MTH, §2.1.3.1 PATH, §2.1.4.1 PROOF),
    // over a list of leaf hashes. Deliberately recursive and O(n) per call.
    // -----------------------------------------------------------------------------------------

    /// Largest power of two smaller than n (n > 1).
    fn ref_k(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    fn ref_mth(d: &[NodeHash]) -> NodeHash {
        match d.len() {
            0 => empty_root(),
            1 => d[0],
            n => {
                let k = ref_k(n);
                node_hash(&ref_mth(&d[..k]), &ref_mth(&d[k..]))
            }
        }
    }

    fn ref_path(m: usize, d: &[NodeHash]) -> Vec<NodeHash> {
        let n = d.len();
        if n <= 1 {
            return Vec::new();
        }
        let k = ref_k(n);
        if m < k {
            let mut p = ref_path(m, &d[..k]);
            p.push(ref_mth(&d[k..]));
            p
        } else {
            let mut p = ref_path(m - k, &d[k..]);
            p.push(ref_mth(&d[..k]));
            p
        }
    }

    fn ref_subproof(m: usize, d: &[NodeHash], b: bool) -> Vec<NodeHash> {
        let n = d.len();
        if m == n {
            return if b { Vec::new() } else { vec![ref_mth(d)] };
        }
        let k = ref_k(n);
        if m <= k {
            let mut p = ref_subproof(m, &d[..k], b);
            p.push(ref_mth(&d[k..]));
            p
        } else {
            let mut p = ref_subproof(m - k, &d[k..], false);
            p.push(ref_mth(&d[..k]));
            p
        }
    }

    fn ref_proof(m: usize, d: &[NodeHash]) -> Vec<NodeHash> {
        ref_subproof(m, d, true)
    }

    // -----------------------------------------------------------------------------------------
    // Readers used by tests
    // -----------------------------------------------------------------------------------------

    /// Records every stored node read.
    struct Recording<'a> {
        inner: &'a MemTree,
        reads: RefCell<Vec<(u8, u64)>>,
    }

    impl<'a> Recording<'a> {
        fn new(inner: &'a MemTree) -> Self {
            Self { inner, reads: RefCell::new(Vec::new()) }
        }
        fn take(&self) -> Vec<(u8, u64)> {
            std::mem::take(&mut *self.reads.borrow_mut())
        }
    }

    impl NodeReader for Recording<'_> {
        fn node(&self, level: u8, index: u64) -> Result<NodeHash, MerkleError> {
            self.reads.borrow_mut().push((level, index));
            self.inner.node(level, index)
        }
        fn stored_size(&self) -> Option<u64> {
            self.inner.stored_size()
        }
    }

    /// A tree of any size up to u64::MAX whose leaves all equal `leaf_hash(b"u")`: every complete
    /// subtree at a level has the same hash, so all reads are consistent and proofs at extreme
    /// sizes genuinely verify.
    struct Uniform {
        perfect: [NodeHash; 64],
    }

    impl Uniform {
        fn new() -> Self {
            let mut perfect = [[0u8; 32]; 64];
            perfect[0] = leaf_hash(b"u");
            for l in 1..64 {
                perfect[l] = node_hash(&perfect[l - 1], &perfect[l - 1]);
            }
            Self { perfect }
        }
    }

    impl NodeReader for Uniform {
        fn node(&self, level: u8, index: u64) -> Result<NodeHash, MerkleError> {
            // Node (level, index) exists iff its last leaf index fits in u64.
            let last = (u128::from(index) + 1) << level;
            if level < 64 && last <= u128::from(u64::MAX) {
                Ok(self.perfect[usize::from(level)])
            } else {
                Err(MerkleError::MissingNode { level, index })
            }
        }
    }

    /// A store that lost one node and does not know its size.
    struct Holey<'a> {
        inner: &'a MemTree,
        hole: (u8, u64),
    }

    impl NodeReader for Holey<'_> {
        fn node(&self, level: u8, index: u64) -> Result<NodeHash, MerkleError> {
            if (level, index) == self.hole {
                return Err(MerkleError::MissingNode { level, index });
            }
            self.inner.node(level, index)
        }
    }

    /// Sides (true = proof element is the left operand) in which an inclusion proof for
    /// `(index, size)` is combined, from the aligned-level picture of RFC 9162 §2.1.3.1.
    /// Two `(index, size)` pairs with equal shapes accept exactly the same proofs: RFC 9162
    /// proofs authenticate the size only through the root.
    fn inclusion_shape(index: u64, size: u64) -> Option<Vec<bool>> {
        if index >= size {
            return None;
        }
        let inner = bit_len(index ^ (size - 1));
        let mut v: Vec<bool> = (0..inner).map(|j| (index >> j) & 1 == 1).collect();
        v.extend((inner..64).filter(|j| (index >> j) & 1 == 1).map(|_| true));
        Some(v)
    }

    /// Same for consistency proofs: (seeded from root_m?, sides of the remaining elements).
    fn consistency_shape(m: u64, n: u64) -> Option<(bool, Vec<bool>)> {
        if m == 0 || m >= n {
            return None;
        }
        let (level, index) = consistency_start(m);
        Some((index == 0, inclusion_shape(index, ((n - 1) >> level) + 1)?))
    }

    // -----------------------------------------------------------------------------------------
    // Published vectors
    // -----------------------------------------------------------------------------------------

    #[test]
    fn hasher_vectors_rfc6962() {
        assert_eq!(empty_root(), h(vectors::ROOTS[0]));
        assert_eq!(leaf_hash(b""), h(vectors::EMPTY_LEAF));
        assert_ne!(leaf_hash(b""), empty_root());
        assert_eq!(leaf_hash(b"L123456"), h(vectors::LEAF_L123456));
        // node_hash takes 32-byte hashes; check it is SHA-256(0x01 || l || r) and then the
        // published N123/N456 vector with the same construction on short inputs.
        let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
        let mut pre = vec![0x01];
        pre.extend_from_slice(&a);
        pre.extend_from_slice(&b);
        let direct: NodeHash = Sha256::digest(&pre).into();
        assert_eq!(node_hash(&a, &b), direct);
        assert_ne!(node_hash(&a, &b), node_hash(&b, &a));
        let n123: NodeHash = Sha256::digest(b"\x01N123N456").into();
        assert_eq!(n123, h(vectors::NODE_N123_N456));
        // Second-preimage resistance: a node is not the leaf hash of its children's concatenation.
        assert_ne!(node_hash(&a, &b), leaf_hash(&pre[1..]));
    }

    #[test]
    fn published_tree_nodes_and_roots() {
        let (leaves, _) = published_tree();
        let mut t = MemTree::new();
        assert_eq!(t.root(), h(vectors::ROOTS[0]));
        for (i, leaf) in leaves.iter().enumerate() {
            t.append_leaf_hash(*leaf);
            assert_eq!(t.root(), h(vectors::ROOTS[i + 1]), "root after {} leaves", i + 1);
        }
        for (level, row) in vectors::NODE_HASHES.iter().enumerate() {
            for (index, want) in row.iter().enumerate() {
                assert_eq!(t.node(level as u8, index as u64).unwrap(), h(want), "node ({level},{index})");
            }
            // Nothing beyond the complete subtrees is stored.
            assert!(t.node(level as u8, row.len() as u64).is_err());
        }
        assert!(t.node(4, 0).is_err());
        for size in 0..=8u64 {
            assert_eq!(root_at(size, &t).unwrap(), h(vectors::ROOTS[size as usize]));
        }
    }

    #[test]
    fn published_frontiers() {
        let (leaves, tree) = published_tree();
        let mut f = Frontier::new();
        let mut sink = Vec::new();
        for (size, ids) in vectors::FRONTIERS.iter().enumerate() {
            let want: Vec<NodeHash> = ids.iter().map(|&(l, i)| h(vectors::NODE_HASHES[l][i])).collect();
            assert_eq!(f.hashes(), &want[..], "frontier at size {size}");
            assert_eq!(Frontier::from_reader(size as u64, &tree).unwrap(), f);
            let addrs: Vec<(usize, usize)> = f.nodes().iter().map(|&(l, i, _)| (l as usize, i as usize)).collect();
            assert_eq!(&addrs[..], *ids);
            assert_eq!(f.root(), h(vectors::ROOTS[size]));
            if let Some(leaf) = leaves.get(size) {
                f.push_leaf_hash(*leaf, &mut sink).unwrap();
            }
        }
    }

    /// transparency-dev/merkle `corruptInclusionProof` probes, all of which must be rejected.
    fn inclusion_probes(
        index: u64,
        size: u64,
        proof: &[NodeHash],
        root: NodeHash,
        leaf: NodeHash,
    ) -> Vec<(String, u64, u64, Vec<NodeHash>, NodeHash, NodeHash)> {
        let some = h("abacaba000000000000000000000000000000000000000000060061e00123456");
        let p = proof.to_vec();
        let mut out = vec![
            ("index - 1".into(), index.wrapping_sub(1), size, p.clone(), root, leaf),
            ("index + 1".into(), index + 1, size, p.clone(), root, leaf),
            ("index ^ 2".into(), index ^ 2, size, p.clone(), root, leaf),
            ("size * 2".into(), index, size * 2, p.clone(), root, leaf),
            ("size / 2".into(), index, size / 2, p.clone(), root, leaf),
            ("wrong leaf".into(), index, size, p.clone(), root, leaf_hash(b"WrongLeaf")),
            ("empty root".into(), index, size, p.clone(), empty_root(), leaf),
            ("random root".into(), index, size, p.clone(), some, leaf),
            ("trailing garbage".into(), index, size, [p.clone(), vec![[0; 32]]].concat(), root, leaf),
            ("trailing root".into(), index, size, [p.clone(), vec![root]].concat(), root, leaf),
            ("preceding garbage".into(), index, size, [vec![[0; 32]], p.clone()].concat(), root, leaf),
            ("preceding root".into(), index, size, [vec![root], p.clone()].concat(), root, leaf),
        ];
        for i in 0..p.len() {
            for bit in 0..256 {
                let mut q = p.clone();
                q[i] = flip(q[i], bit);
                out.push((format!("proof[{i}] bit {bit}"), index, size, q, root, leaf));
            }
        }
        if !p.is_empty() {
            out.push(("removed last".into(), index, size, p[..p.len() - 1].to_vec(), root, leaf));
            out.push(("removed first".into(), index, size, p[1..].to_vec(), root, leaf));
        }
        if p.len() > 1 {
            let q = [vec![p[0], some], p[1..].to_vec()].concat();
            out.push(("inserted component".into(), index, size, q, root, leaf));
        }
        for bit in 0..256 {
            out.push((format!("root bit {bit}"), index, size, p.clone(), flip(root, bit), leaf));
            out.push((format!("leaf bit {bit}"), index, size, p.clone(), root, flip(leaf, bit)));
        }
        out
    }

    #[test]
    fn published_inclusion_proofs() {
        let (leaves, tree) = published_tree();
        for &(index, size, want) in vectors::INCLUSION {
            let want = hs(want);
            let got = inclusion_proof(index, size, &tree).unwrap();
            assert_eq!(got, want, "inclusion proof ({index}, {size})");
            let root = h(vectors::ROOTS[size as usize]);
            let leaf = leaves[index as usize];
            verify_inclusion(&leaf, index, size, &want, &root).unwrap();
            for (desc, i, s, p, r, l) in inclusion_probes(index, size, &want, root, leaf) {
                assert!(verify_inclusion(&l, i, s, &p, &r).is_err(), "probe '{desc}' accepted for ({index}, {size})");
            }
        }
    }

    #[test]
    fn published_consistency_proofs() {
        let (_, tree) = published_tree();
        let some = h("abacaba000000000000000000000000000000000000000000060061e00123456");
        for &(m, n, want) in vectors::CONSISTENCY {
            let want = hs(want);
            assert_eq!(consistency_proof(m, n, &tree).unwrap(), want, "consistency ({m}, {n})");
            let (r1, r2) = (h(vectors::ROOTS[m as usize]), h(vectors::ROOTS[n as usize]));
            verify_consistency(m, n, &want, &r1, &r2).unwrap();
            if want.is_empty() {
                continue; // m == n: probed in `consistency_equal_sizes`.
            }
            let p = want.clone();
            let mut probes: Vec<(String, u64, u64, Vec<NodeHash>, NodeHash, NodeHash)> = vec![
                ("m - 1".into(), m - 1, n, p.clone(), r1, r2),
                ("m + 1".into(), m + 1, n, p.clone(), r1, r2),
                ("m ^ 2".into(), m ^ 2, n, p.clone(), r1, r2),
                ("n * 2".into(), m, n * 2, p.clone(), r1, r2),
                ("n / 2".into(), m, n / 2, p.clone(), r1, r2),
                ("wrong root1".into(), m, n, p.clone(), some, r2),
                ("wrong root2".into(), m, n, p.clone(), r1, some),
                ("swapped roots".into(), m, n, p.clone(), r2, r1),
                ("empty proof".into(), m, n, vec![], r1, r2),
                ("trailing garbage".into(), m, n, [p.clone(), vec![[0; 32]]].concat(), r1, r2),
                ("trailing root1".into(), m, n, [p.clone(), vec![r1]].concat(), r1, r2),
                ("trailing root2".into(), m, n, [p.clone(), vec![r2]].concat(), r1, r2),
                ("preceding garbage".into(), m, n, [vec![[0; 32]], p.clone()].concat(), r1, r2),
                ("preceding root1".into(), m, n, [vec![r1], p.clone()].concat(), r1, r2),
                ("preceding root2".into(), m, n, [vec![r2], p.clone()].concat(), r1, r2),
                ("preceding proof[0]".into(), m, n, [vec![p[0]], p.clone()].concat(), r1, r2),
                ("truncated".into(), m, n, p[..p.len() - 1].to_vec(), r1, r2),
                ("removed first".into(), m, n, p[1..].to_vec(), r1, r2),
            ];
            for i in 0..p.len() {
                for bit in 0..256 {
                    let mut q = p.clone();
                    q[i] = flip(q[i], bit);
                    probes.push((format!("proof[{i}] bit {bit}"), m, n, q, r1, r2));
                }
            }
            for bit in 0..256 {
                probes.push((format!("root1 bit {bit}"), m, n, p.clone(), flip(r1, bit), r2));
                probes.push((format!("root2 bit {bit}"), m, n, p.clone(), r1, flip(r2, bit)));
            }
            for (desc, a, b, q, x, y) in probes {
                assert!(verify_consistency(a, b, &q, &x, &y).is_err(), "probe '{desc}' accepted for ({m}, {n})");
            }
        }
    }

    #[test]
    fn published_proof_node_addresses() {
        // transparency-dev/merkle proof/proof_test.go: which stored nodes a proof is made of.
        let tree = &big().1;
        let rec = Recording::new(tree);
        for &(size, index, want) in vectors::INCLUSION_NODES {
            inclusion_proof(index, size, &rec).unwrap();
            assert_eq!(rec.take(), want, "inclusion ({index}, {size}) reads");
        }
        for &(m, n, want) in vectors::CONSISTENCY_NODES {
            consistency_proof(m, n, &rec).unwrap();
            assert_eq!(rec.take(), want, "consistency ({m}, {n}) reads");
        }
    }

    // -----------------------------------------------------------------------------------------
    // Against the naive reference
    // -----------------------------------------------------------------------------------------

    #[test]
    fn exhaustive_small_trees_match_reference() {
        let (leaves, tree) = big();
        for n in 1..=64u64 {
            let d = &leaves[..n as usize];
            let root = root_at(n, tree).unwrap();
            assert_eq!(root, ref_mth(d), "root {n}");
            for i in 0..n {
                let p = inclusion_proof(i, n, tree).unwrap();
                assert_eq!(p, ref_path(i as usize, d), "inclusion ({i}, {n})");
                verify_inclusion(&d[i as usize], i, n, &p, &root).unwrap();
                for (k, e) in p.iter().enumerate() {
                    let mut q = p.clone();
                    q[k] = flip(*e, (i as usize * 37 + k * 11) % 256);
                    assert!(verify_inclusion(&d[i as usize], i, n, &q, &root).is_err());
                }
            }
            for m in 1..=n {
                let p = consistency_proof(m, n, tree).unwrap();
                assert_eq!(p, ref_proof(m as usize, d), "consistency ({m}, {n})");
                let root_m = ref_mth(&d[..m as usize]);
                verify_consistency(m, n, &p, &root_m, &root).unwrap();
                for (k, e) in p.iter().enumerate() {
                    let mut q = p.clone();
                    q[k] = flip(*e, (m as usize * 41 + k * 13) % 256);
                    assert!(verify_consistency(m, n, &q, &root_m, &root).is_err());
                }
            }
        }
    }

    #[test]
    fn root_at_every_prefix_matches_reference() {
        let (leaves, tree) = big();
        for n in 0..=1100u64 {
            assert_eq!(root_at(n, tree).unwrap(), ref_mth(&leaves[..n as usize]), "root {n}");
        }
    }

    fn small_or_large_size() -> impl Strategy<Value = u64> {
        prop_oneof![3 => 1..=300u64, 1 => 1000..=BIG]
    }

    fn index_and_size() -> impl Strategy<Value = (u64, u64)> {
        small_or_large_size().prop_flat_map(|n| (0..n, Just(n)))
    }

    fn m_and_n() -> impl Strategy<Value = (u64, u64)> {
        small_or_large_size().prop_flat_map(|n| (1..=n, Just(n)))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(192))]

        #[test]
        fn prop_inclusion_matches_reference_and_verifies((index, size) in index_and_size()) {
            let (leaves, tree) = big();
            let d = &leaves[..size as usize];
            let p = inclusion_proof(index, size, tree).unwrap();
            prop_assert_eq!(&p, &ref_path(index as usize, d));
            let root = ref_mth(d);
            prop_assert_eq!(root_at(size, tree).unwrap(), root);
            prop_assert!(verify_inclusion(&d[index as usize], index, size, &p, &root).is_ok());
        }

        #[test]
        fn prop_consistency_matches_reference_and_verifies((m, n) in m_and_n()) {
            let (leaves, tree) = big();
            let d = &leaves[..n as usize];
            let p = consistency_proof(m, n, tree).unwrap();
            prop_assert_eq!(&p, &ref_proof(m as usize, d));
            let (rm, rn) = (ref_mth(&d[..m as usize]), ref_mth(d));
            prop_assert_eq!(root_at(m, tree).unwrap(), rm);
            prop_assert!(verify_consistency(m, n, &p, &rm, &rn).is_ok());
        }

        #[test]
        fn prop_inclusion_mutations_rejected(
            (index, size) in index_and_size(),
            pick in any::<usize>(),
            bit in 0..256usize,
            junk in any::<[u8; 32]>(),
        ) {
            let (leaves, tree) = big();
            let leaf = leaves[index as usize];
            let p = inclusion_proof(index, size, tree).unwrap();
            let root = root_at(size, tree).unwrap();
            prop_assert!(verify_inclusion(&leaf, index, size, &p, &root).is_ok());
            let bad = |i: u64, s: u64, q: &[NodeHash], r: &NodeHash, l: &NodeHash| {
                verify_inclusion(l, i, s, q, r).is_err()
            };
            if !p.is_empty() {
                let k = pick % p.len();
                let mut q = p.clone();
                q[k] = flip(q[k], bit);
                prop_assert!(bad(index, size, &q, &root, &leaf), "flipped proof[{}] bit {}", k, bit);
                prop_assert!(bad(index, size, &p[..p.len() - 1], &root, &leaf), "truncated");
                prop_assert!(bad(index, size, &p[1..], &root, &leaf), "removed first");
                let mut q = p.clone();
                q.insert(pick % (p.len() + 1), junk);
                prop_assert!(bad(index, size, &q, &root, &leaf), "inserted");
            }
            prop_assert!(bad(index, size, &[p.clone(), vec![junk]].concat(), &root, &leaf), "appended");
            prop_assert!(bad(index, size, &[p.clone(), vec![root]].concat(), &root, &leaf), "appended root");
            prop_assert!(bad(index, size, &p, &flip(root, bit), &leaf), "root bit");
            prop_assert!(bad(index, size, &p, &root, &flip(leaf, bit)), "leaf bit");
            // Index changes always fail: a leaf has one position.
            prop_assert!(bad(index.wrapping_sub(1), size, &p, &root, &leaf), "index - 1");
            prop_assert!(bad(index + 1, size, &p, &root, &leaf), "index + 1");
            prop_assert!(bad(index ^ (1 << (bit % 64)), size, &p, &root, &leaf), "index bit");
            prop_assert!(bad(index, size * 2, &p, &root, &leaf), "size * 2");
            prop_assert!(bad(index, size / 2, &p, &root, &leaf), "size / 2");
            // Size changes: rejected unless the other size has the identical path shape, in
            // which case RFC 9162 cannot tell them apart (the root binds the size).
            for s in [size - 1, size + 1, size ^ (1 << (bit % 64))] {
                let same_shape = inclusion_shape(index, s) == inclusion_shape(index, size);
                prop_assert_eq!(
                    verify_inclusion(&leaf, index, s, &p, &root).is_ok(),
                    same_shape,
                    "size {} -> {}", size, s
                );
            }
        }

        #[test]
        fn prop_consistency_mutations_rejected(
            (m, n) in m_and_n(),
            pick in any::<usize>(),
            bit in 0..256usize,
            junk in any::<[u8; 32]>(),
        ) {
            let tree = &big().1;
            let p = consistency_proof(m, n, tree).unwrap();
            let (rm, rn) = (root_at(m, tree).unwrap(), root_at(n, tree).unwrap());
            prop_assert!(verify_consistency(m, n, &p, &rm, &rn).is_ok());
            let bad = |a: u64, b: u64, q: &[NodeHash], x: &NodeHash, y: &NodeHash| {
                verify_consistency(a, b, q, x, y).is_err()
            };
            if !p.is_empty() {
                let k = pick % p.len();
                let mut q = p.clone();
                q[k] = flip(q[k], bit);
                prop_assert!(bad(m, n, &q, &rm, &rn), "flipped proof[{}] bit {}", k, bit);
                prop_assert!(bad(m, n, &p[..p.len() - 1], &rm, &rn), "truncated");
                prop_assert!(bad(m, n, &p[1..], &rm, &rn), "removed first");
                let mut q = p.clone();
                q.insert(pick % (p.len() + 1), junk);
                prop_assert!(bad(m, n, &q, &rm, &rn), "inserted");
                prop_assert!(bad(m, n, &p, &rn, &rm), "swapped roots");
            }
            prop_assert!(bad(m, n, &[p.clone(), vec![junk]].concat(), &rm, &rn), "appended");
            prop_assert!(bad(m, n, &[vec![rm], p.clone()].concat(), &rm, &rn), "prepended root_m");
            prop_assert!(bad(m, n, &p, &flip(rm, bit), &rn), "root_m bit");
            prop_assert!(bad(m, n, &p, &rm, &flip(rn, bit)), "root_n bit");
            prop_assert!(bad(m - 1, n, &p, &rm, &rn), "m - 1");
            prop_assert!(bad(m + 1, n, &p, &rm, &rn), "m + 1");
            prop_assert!(bad(m ^ (1 << (bit % 64)), n, &p, &rm, &rn), "m bit");
            if m < n {
                prop_assert!(bad(m, n * 2, &p, &rm, &rn), "n * 2");
                prop_assert!(bad(m, n / 2, &p, &rm, &rn), "n / 2");
                // n changes: rejected unless the path shape is identical (root binds the size).
                for n2 in [n - 1, n + 1, n ^ (1 << (bit % 64))] {
                    let same_shape = consistency_shape(m, n2) == consistency_shape(m, n);
                    prop_assert_eq!(
                        verify_consistency(m, n2, &p, &rm, &rn).is_ok(),
                        same_shape,
                        "n {} -> {}", n, n2
                    );
                }
            } else {
                for n2 in [n - 1, n + 1, n ^ (1 << (bit % 64))] {
                    prop_assert!(bad(m, n2, &p, &rm, &rn), "m == n, n -> {}", n2);
                }
            }
        }

        /// The RFC 9162 algorithms alone (without the length pre-check) reject every proof of
        /// the wrong length, so each of the two layers is sufficient on its own.
        #[test]
        fn prop_rfc_core_alone_rejects_wrong_lengths(
            (index, size) in index_and_size(),
            m in 1..=BIG,
            extra in 1..4usize,
            junk in any::<[u8; 32]>(),
        ) {
            let tree = &big().1;
            let leaf = tree.node(0, index).unwrap();
            let root = root_at(size, tree).unwrap();
            let p = inclusion_proof(index, size, tree).unwrap();
            prop_assert!(rfc9162_verify_inclusion(&leaf, index, size, &p, &root).is_ok());
            let longer = [p.clone(), vec![junk; extra]].concat();
            prop_assert!(rfc9162_verify_inclusion(&leaf, index, size, &longer, &root).is_err());
            let longer = [vec![junk; extra], p.clone()].concat();
            prop_assert!(rfc9162_verify_inclusion(&leaf, index, size, &longer, &root).is_err());
            for cut in 1..=p.len().min(extra) {
                let shorter = &p[..p.len() - cut];
                prop_assert!(rfc9162_verify_inclusion(&leaf, index, size, shorter, &root).is_err());
            }
            let m = m.min(size);
            if m < size {
                let p = consistency_proof(m, size, tree).unwrap();
                let rm = root_at(m, tree).unwrap();
                prop_assert!(rfc9162_verify_consistency(m, size, &p, &rm, &root).is_ok());
                let longer = [p.clone(), vec![junk; extra]].concat();
                prop_assert!(rfc9162_verify_consistency(m, size, &longer, &rm, &root).is_err());
                let longer = [vec![junk; extra], p.clone()].concat();
                prop_assert!(rfc9162_verify_consistency(m, size, &longer, &rm, &root).is_err());
                for cut in 1..=p.len().min(extra) {
                    let shorter = &p[..p.len() - cut];
                    prop_assert!(rfc9162_verify_consistency(m, size, shorter, &rm, &root).is_err());
                }
            }
        }

        #[test]
        fn prop_proofs_read_logarithmic_nodes((index, size) in index_and_size(), m in 1..=BIG) {
            let tree = &big().1;
            let rec = Recording::new(tree);
            let l = bit_len(size - 1) as usize; // ceil(log2 size)
            root_at(size, &rec).unwrap();
            prop_assert_eq!(rec.take().len(), size.count_ones() as usize);
            inclusion_proof(index, size, &rec).unwrap();
            prop_assert!(rec.take().len() <= (2 * l).saturating_sub(1));
            let m = m.min(size);
            consistency_proof(m, size, &rec).unwrap();
            prop_assert!(rec.take().len() <= 2 * l);
        }

        #[test]
        fn prop_batched_appends_report_exactly_new_nodes(
            batches in proptest::collection::vec(0..40usize, 1..25),
        ) {
            let (leaves, big_tree) = big();
            let mut t = MemTree::new();
            let mut f = Frontier::new();
            let mut pos = 0usize;
            let mut total = 0u64;
            for b in batches {
                let batch = &leaves[pos..pos + b];
                let old = pos as u64;
                let a = t.append_leaves(batch);
                prop_assert_eq!(&f.append_leaf_hashes(batch).unwrap(), &a);
                pos += b;
                let new = pos as u64;
                let mut want: Vec<(u8, u64)> = Vec::new();
                for level in 0..13u8 {
                    for i in 0..=(new >> level) {
                        let end = (i + 1) << level;
                        if old < end && end <= new {
                            want.push((level, i));
                        }
                    }
                }
                let mut got: Vec<(u8, u64)> = a.nodes.iter().map(|&(l, i, _)| (l, i)).collect();
                got.sort_unstable();
                want.sort_unstable();
                prop_assert_eq!(&got, &want);
                for &(l, i, hash) in &a.nodes {
                    prop_assert_eq!(hash, big_tree.node(l, i).unwrap());
                }
                total += a.nodes.len() as u64;
                prop_assert_eq!(a.size, new);
                prop_assert_eq!(a.root, ref_mth(&leaves[..pos]));
                prop_assert_eq!(total, 2 * new - u64::from(new.count_ones()));
                prop_assert_eq!(t.stored_node_count(), total);
            }
        }

        #[test]
        fn prop_verifiers_never_panic_and_reject_junk(
            a in prop_oneof![Just(0u64), Just(1), Just(u64::MAX), Just(u64::MAX - 1), Just(1 << 63), any::<u64>()],
            b in prop_oneof![Just(0u64), Just(1), Just(u64::MAX), Just(u64::MAX - 1), Just(1 << 63), any::<u64>()],
            len in 0..70usize,
            seed in any::<[u8; 32]>(),
        ) {
            let proof: Vec<NodeHash> = (0..len).map(|i| node_hash(&seed, &[i as u8; 32])).collect();
            let (x, y) = (leaf_hash(&seed), node_hash(&seed, &seed));
            prop_assert!(verify_inclusion(&x, a, b, &proof, &y).is_err());
            prop_assert!(verify_consistency(a, b, &proof, &x, &y).is_err());
        }
    }

    // -----------------------------------------------------------------------------------------
    // Storage, frontier and append bookkeeping
    // -----------------------------------------------------------------------------------------

    #[test]
    fn append_reports_newly_completed_nodes_and_count() {
        let (leaves, _) = big();
        let mut t = MemTree::new();
        let mut total = 0u64;
        for (i, leaf) in leaves[..600].iter().enumerate() {
            let a = t.append_leaves(std::slice::from_ref(leaf));
            let s = i as u64 + 1;
            // Exactly the perfect subtrees ending at leaf s - 1: one per trailing zero of s, plus the leaf.
            let want: Vec<(u8, u64)> = (0..=s.trailing_zeros() as u8).map(|l| (l, (s >> l) - 1)).collect();
            let got: Vec<(u8, u64)> = a.nodes.iter().map(|&(l, i, _)| (l, i)).collect();
            assert_eq!(got, want, "size {s}");
            for &(l, idx, hash) in &a.nodes {
                let lo = (idx << l) as usize;
                assert_eq!(hash, ref_mth(&leaves[lo..lo + (1 << l)]));
            }
            total += a.nodes.len() as u64;
            assert_eq!(total, 2 * s - u64::from(s.count_ones()));
            assert_eq!(t.stored_node_count(), total);
            assert_eq!(a.size, s);
            assert_eq!(a.root, t.root());
        }
        assert_eq!(big().1.stored_node_count(), 2 * BIG - u64::from(BIG.count_ones()));
    }

    #[test]
    fn frontier_from_reader_matches_incremental() {
        let (leaves, tree) = big();
        let mut f = Frontier::new();
        let mut sink = Vec::new();
        for n in 0..=1100u64 {
            let rebuilt = Frontier::from_reader(n, tree).unwrap();
            assert_eq!(rebuilt, f, "frontier at {n}");
            assert_eq!(rebuilt.root(), root_at(n, tree).unwrap());
            assert_eq!(f.hashes().len(), n.count_ones() as usize);
            for (l, i, hsh) in f.nodes() {
                assert_eq!(tree.node(l, i).unwrap(), hsh);
            }
            f.push_leaf_hash(leaves[n as usize], &mut sink).unwrap();
        }
        // A rebuilt frontier keeps appending identically.
        let mut g = Frontier::from_reader(777, tree).unwrap();
        let a = g.append_leaf_hashes(&leaves[777..4321]).unwrap();
        assert_eq!(a.root, root_at(4321, tree).unwrap());
        assert_eq!(g, Frontier::from_reader(4321, tree).unwrap());
    }

    // -----------------------------------------------------------------------------------------
    // Edge cases
    // -----------------------------------------------------------------------------------------

    #[test]
    fn empty_tree() {
        let t = MemTree::new();
        let e = h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(t.root(), e);
        assert_eq!(root_at(0, &t).unwrap(), e);
        assert_eq!(Frontier::new().root(), e);
        assert_eq!(Frontier::from_reader(0, &t).unwrap(), Frontier::new());
        assert_eq!(t.size(), 0);
        assert_eq!(t.stored_node_count(), 0);
        assert_eq!(inclusion_proof(0, 0, &t), Err(MerkleError::IndexOutOfRange { index: 0, size: 0 }));
        assert_eq!(consistency_proof(0, 0, &t), Err(MerkleError::BadConsistencyRange { m: 0, n: 0 }));
        assert_eq!(verify_inclusion(&e, 0, 0, &[], &e), Err(MerkleError::IndexOutOfRange { index: 0, size: 0 }));
        assert_eq!(root_at(1, &t), Err(MerkleError::SizeBeyondTree { size: 1, tree_size: 0 }));
        let a = MemTree::new().append_leaves(&[]);
        assert_eq!(a, Append { nodes: vec![], size: 0, root: e });
    }

    #[test]
    fn single_leaf_tree() {
        let leaf = leaf_hash(b"data");
        let t = tree_of(&[leaf]);
        assert_eq!(t.root(), leaf);
        assert_eq!(root_at(1, &t).unwrap(), leaf);
        let p = inclusion_proof(0, 1, &t).unwrap();
        assert!(p.is_empty());
        verify_inclusion(&leaf, 0, 1, &p, &leaf).unwrap();
        assert_eq!(
            verify_inclusion(&leaf, 0, 1, &[leaf], &leaf),
            Err(MerkleError::ProofLength { expected: 0, got: 1 })
        );
        assert_eq!(verify_inclusion(&leaf, 0, 1, &[], &empty_root()), Err(MerkleError::RootMismatch));
        assert_eq!(verify_inclusion(&leaf, 1, 1, &[], &leaf), Err(MerkleError::IndexOutOfRange { index: 1, size: 1 }));
        assert_eq!(consistency_proof(1, 1, &t).unwrap(), Vec::<NodeHash>::new());
    }

    #[test]
    fn consistency_equal_and_zero_sizes() {
        let (r1, r2) = (leaf_hash(b"1"), leaf_hash(b"2"));
        // m == n: empty proof and equal roots only.
        verify_consistency(5, 5, &[], &r1, &r1).unwrap();
        assert_eq!(verify_consistency(5, 5, &[], &r1, &r2), Err(MerkleError::RootMismatch));
        assert_eq!(verify_consistency(5, 5, &[r1], &r1, &r1), Err(MerkleError::ProofLength { expected: 0, got: 1 }));
        verify_consistency(u64::MAX, u64::MAX, &[], &r1, &r1).unwrap();
        // m == 0: the empty tree is a prefix of every tree, but only with the empty root and proof.
        verify_consistency(0, 7, &[], &empty_root(), &r2).unwrap();
        verify_consistency(0, 0, &[], &empty_root(), &empty_root()).unwrap();
        assert_eq!(verify_consistency(0, 7, &[], &r1, &r2), Err(MerkleError::RootMismatch));
        assert_eq!(
            verify_consistency(0, 7, &[empty_root()], &empty_root(), &r2),
            Err(MerkleError::ProofLength { expected: 0, got: 1 })
        );
        // m > n.
        assert_eq!(verify_consistency(8, 7, &[], &r1, &r1), Err(MerkleError::BadConsistencyRange { m: 8, n: 7 }));
        // 0 < m < n with an empty proof (RFC 9162 §2.1.4.2 step 1).
        assert!(matches!(verify_consistency(1, 2, &[], &r1, &r2), Err(MerkleError::ProofLength { got: 0, .. })));
        let t = &big().1;
        assert_eq!(consistency_proof(0, 3, t), Err(MerkleError::BadConsistencyRange { m: 0, n: 3 }));
        assert_eq!(consistency_proof(4, 3, t), Err(MerkleError::BadConsistencyRange { m: 4, n: 3 }));
        for n in [1, 2, 3, 4, 1000, BIG] {
            assert!(consistency_proof(n, n, t).unwrap().is_empty());
        }
    }

    #[test]
    fn last_index_and_size_limits_on_memtree() {
        let (leaves, t) = big();
        for size in [1, 2, 3, 1023, 1024, 1025, BIG] {
            let i = size - 1;
            let p = inclusion_proof(i, size, t).unwrap();
            verify_inclusion(&leaves[i as usize], i, size, &p, &root_at(size, t).unwrap()).unwrap();
        }
        let beyond = MerkleError::SizeBeyondTree { size: BIG + 1, tree_size: BIG };
        assert_eq!(inclusion_proof(0, BIG + 1, t), Err(beyond.clone()));
        assert_eq!(consistency_proof(1, BIG + 1, t), Err(beyond.clone()));
        assert_eq!(root_at(BIG + 1, t), Err(beyond.clone()));
        assert_eq!(Frontier::from_reader(BIG + 1, t), Err(beyond));
        assert_eq!(
            inclusion_proof(u64::MAX, u64::MAX, t),
            Err(MerkleError::IndexOutOfRange { index: u64::MAX, size: u64::MAX })
        );
        assert!(matches!(inclusion_proof(u64::MAX - 1, u64::MAX, t), Err(MerkleError::SizeBeyondTree { .. })));
        assert!(matches!(root_at(u64::MAX, t), Err(MerkleError::SizeBeyondTree { .. })));
        assert!(t.node(63, u64::MAX).is_err());
        assert!(t.node(u8::MAX, 0).is_err());
    }

    #[test]
    fn missing_nodes_surface_as_errors() {
        let t = &big().1;
        let holey = Holey { inner: t, hole: (2, 1) };
        // Size 7 index 0 needs node (1,1); size 8 index 0 needs (2,1).
        assert_eq!(inclusion_proof(0, 8, &holey), Err(MerkleError::MissingNode { level: 2, index: 1 }));
        inclusion_proof(0, 7, &holey).unwrap();
        assert!(root_at(12, &holey).is_ok()); // (3,0) + (2,2)
        assert_eq!(consistency_proof(4, 8, &holey), Err(MerkleError::MissingNode { level: 2, index: 1 }));
        let hole0 = Holey { inner: t, hole: (3, 0) };
        assert_eq!(Frontier::from_reader(9, &hole0), Err(MerkleError::MissingNode { level: 3, index: 0 }));
        // Without a known size, sizes beyond the store surface as missing nodes, not panics.
        assert!(matches!(root_at(u64::MAX, &hole0), Err(MerkleError::MissingNode { .. })));
        assert!(matches!(inclusion_proof(3, u64::MAX, &hole0), Err(MerkleError::MissingNode { .. })));
    }

    #[test]
    fn extreme_sizes_with_uniform_tree() {
        let u = Uniform::new();
        let sizes = [1u64, 2, 3, (1 << 32) + 1, (1 << 63) - 1, 1 << 63, (1 << 63) + 1, u64::MAX - 1, u64::MAX];
        for size in sizes {
            let root = root_at(size, &u).unwrap();
            assert_eq!(Frontier::from_reader(size, &u).unwrap().root(), root);
            for index in [0, 1, size / 2, size.saturating_sub(2), size - 1] {
                if index >= size {
                    continue;
                }
                let p = inclusion_proof(index, size, &u).unwrap();
                assert_eq!(p.len(), inclusion_proof_len(index, size));
                assert!(p.len() <= 64);
                verify_inclusion(&u.perfect[0], index, size, &p, &root).unwrap();
                assert_eq!(
                    verify_inclusion(&u.perfect[0], index, size, &p, &flip(root, 7)),
                    Err(MerkleError::RootMismatch)
                );
            }
            for m in [1, 2, 3, size / 2, 1 << 62, 1 << 63, size - 1, size] {
                if m == 0 || m > size {
                    continue;
                }
                let p = consistency_proof(m, size, &u).unwrap();
                assert!(p.len() <= 65);
                verify_consistency(m, size, &p, &root_at(m, &u).unwrap(), &root).unwrap();
            }
        }
        // The biggest tree cannot grow; a full frontier is left unchanged.
        let mut full = Frontier::from_reader(u64::MAX, &u).unwrap();
        let before = full.clone();
        let mut out = Vec::new();
        assert_eq!(
            full.push_leaf_hash(u.perfect[0], &mut out),
            Err(MerkleError::TreeFull { size: u64::MAX, extra: 1 })
        );
        assert_eq!(full.append_leaf_hashes(&[u.perfect[0]]), Err(MerkleError::TreeFull { size: u64::MAX, extra: 1 }));
        assert_eq!(full, before);
        assert!(out.is_empty());
        // One below the limit: the final leaf (even index u64::MAX - 1) completes only itself.
        let mut almost = Frontier::from_reader(u64::MAX - 1, &u).unwrap();
        almost.push_leaf_hash(u.perfect[0], &mut out).unwrap();
        assert_eq!(almost.size(), u64::MAX);
        assert_eq!(almost.root(), root_at(u64::MAX, &u).unwrap());
        assert_eq!(out, vec![(0, u64::MAX - 1, u.perfect[0])]);
    }

    #[test]
    fn verifiers_reject_extreme_arguments() {
        let x = leaf_hash(b"x");
        let junk: Vec<NodeHash> = (0..66u8).map(|i| leaf_hash(&[i])).collect();
        assert_eq!(
            verify_inclusion(&x, u64::MAX, u64::MAX, &[], &x),
            Err(MerkleError::IndexOutOfRange { index: u64::MAX, size: u64::MAX })
        );
        assert_eq!(
            verify_inclusion(&x, u64::MAX - 1, u64::MAX, &[], &x),
            Err(MerkleError::ProofLength { expected: 63, got: 0 })
        );
        assert_eq!(verify_inclusion(&x, 0, u64::MAX, &junk[..64], &x), Err(MerkleError::RootMismatch));
        assert_eq!(
            verify_inclusion(&x, 0, u64::MAX, &junk, &x),
            Err(MerkleError::ProofLength { expected: 64, got: 66 })
        );
        assert_eq!(
            verify_consistency(u64::MAX, 1, &[], &x, &x),
            Err(MerkleError::BadConsistencyRange { m: u64::MAX, n: 1 })
        );
        assert_eq!(
            verify_consistency(u64::MAX - 1, u64::MAX, &junk[..2], &x, &x),
            Err(MerkleError::ProofLength { expected: 64, got: 2 })
        );
        assert_eq!(verify_consistency(u64::MAX - 1, u64::MAX, &junk[..64], &x, &x), Err(MerkleError::RootMismatch));
        for (m, n) in [(1, u64::MAX), (1 << 63, u64::MAX), (u64::MAX - 1, u64::MAX), (3, 1 << 63)] {
            for len in 0..junk.len() {
                assert!(verify_consistency(m, n, &junk[..len], &x, &x).is_err());
            }
        }
        for (i, s) in [(0, 1 << 63), (u64::MAX - 2, u64::MAX), (1 << 62, u64::MAX)] {
            for len in 0..junk.len() {
                assert!(verify_inclusion(&x, i, s, &junk[..len], &x).is_err());
            }
        }
    }

    #[test]
    fn rfc_core_rejects_wrong_lengths_even_with_crafted_roots() {
        // A truncated proof reaches an interior node and an over-long one hashes past the root.
        // Only RFC 9162 §2.1.3.2 step 4a / step 5 (§2.1.4.2 step 6a / step 7), not the root
        // comparison, catch these when the claimed root is crafted to match.
        let (leaves, tree) = published_tree();
        let node = |l: u8, i: u64| tree.node(l, i).unwrap();
        let (r2, r4, r8) = (node(1, 0), node(2, 0), node(3, 0));
        let x = leaf_hash(b"attacker");
        let p8 = inclusion_proof(0, 8, &tree).unwrap();
        let short = &p8[..2];
        let long = [p8.clone(), vec![x]].concat();
        let crafted = node_hash(&x, &r8);
        assert!(rfc9162_verify_inclusion(&leaves[0], 0, 8, short, &r4).is_err());
        assert!(rfc9162_verify_inclusion(&leaves[0], 0, 8, &long, &crafted).is_err());
        assert!(verify_inclusion(&leaves[0], 0, 8, short, &r4).is_err());
        assert!(verify_inclusion(&leaves[0], 0, 8, &long, &crafted).is_err());

        let p28 = consistency_proof(2, 8, &tree).unwrap();
        let short = &p28[..1];
        assert!(rfc9162_verify_consistency(2, 8, short, &r2, &r4).is_err());
        assert!(verify_consistency(2, 8, short, &r2, &r4).is_err());
        let r3 = root_at(3, &tree).unwrap();
        let p34 = consistency_proof(3, 4, &tree).unwrap();
        rfc9162_verify_consistency(3, 4, &p34, &r3, &r4).unwrap();
        let long = [p34.clone(), vec![x]].concat();
        let (cm, cn) = (node_hash(&x, &r3), node_hash(&x, &r4));
        assert!(rfc9162_verify_consistency(3, 4, &long, &cm, &cn).is_err());
        assert!(verify_consistency(3, 4, &long, &cm, &cn).is_err());
    }

    #[test]
    fn inclusion_size_is_bound_only_by_root() {
        // Documents the RFC 9162 property behind the shape exception in the mutation tests: the
        // proof for (index 0, size 8) also verifies as (0, 5), (0, 6), (0, 7) against root(8),
        // because those paths have the same shape. A verifier must take (size, root) from the
        // same signed tree head.
        let (leaves, tree) = published_tree();
        let p = inclusion_proof(0, 8, &tree).unwrap();
        let root8 = root_at(8, &tree).unwrap();
        for s in 5..=8 {
            verify_inclusion(&leaves[0], 0, s, &p, &root8).unwrap();
            assert_eq!(inclusion_shape(0, s), inclusion_shape(0, 8));
        }
        assert!(verify_inclusion(&leaves[0], 0, 4, &p, &root8).is_err());
        assert!(verify_inclusion(&leaves[0], 0, 9, &p, &root8).is_err());
        // But never against the genuine root of the other size.
        for s in 5..8 {
            let r = root_at(s, &tree).unwrap();
            assert!(verify_inclusion(&leaves[0], 0, s, &p, &r).is_err());
        }
    }

    #[test]
    fn error_messages_name_the_rule() {
        let e = MerkleError::IndexOutOfRange { index: 9, size: 3 };
        assert!(e.to_string().contains("must be < tree size 3"));
        let e = MerkleError::BadConsistencyRange { m: 0, n: 3 };
        assert!(e.to_string().contains("0 < m <= n"));
        let e = MerkleError::ProofLength { expected: 3, got: 4 };
        assert!(e.to_string().contains("exactly 3"));
    }
}
