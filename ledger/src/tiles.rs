//! C2SP tlog-tiles: tile coordinates and paths, hash tiles and entry bundles read from stored complete subtrees, and a `NodeReader` over fetched tiles from which proofs are computed locally.
//!
//! # The layout (c2sp.org/tlog-tiles)
//! * `tile/<L>/<N>[.p/<W>]`: the hashes at tree level `8·L` with indexes `N·256 .. N·256+W`
//!   (W = 256 for a full tile, 1..=255 for a partial one); each is the RFC 6962 MTH of `256^L`
//!   leaves. `<N>` is written in zero-padded 3-digit path elements, all but the last prefixed
//!   with `x` (`1234067` → `x001/x234/067`).
//! * `tile/entries/<N>[.p/<W>]`: the entries (Credence: a leaf's canonical attestation bytes)
//!   of leaves `N·256 .. N·256+W`, each preceded by its length as a big-endian `u16`.
//!
//! # Why no tree is rebuilt
//! The store keeps every complete subtree `(level, index)` (see `merkle.rs`), and every hash of
//! a tile is one: hash `i` of tile `(L, N)` is node `(8L, N·256+i)`, complete as soon as the
//! tree holds `(N·256+i+1)·256^L` leaves. Serving a tile is therefore `W` point reads (a range
//! scan in the redb store; level-0 hashes are hashed from the `W` stored leaves) and no
//! hashing above level 0.
//!
//! # Client side
//! [`TileTree`] turns any [`TileSource`] (an HTTP tile server, a directory of copied tiles)
//! into a [`NodeReader`] for a tree size taken from a verified checkpoint, so the same
//! `merkle::inclusion_proof` / `consistency_proof` / `root_at` compute proofs from tiles; a
//! node at a level between two tile levels is hashed from at most 128 hashes of one tile.
//! Tile bytes are never trusted: a proof computed from them is verified against the signed
//! root, and [`TileWalk`] checks every tile of a tree against its parent and the root.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

use crate::merkle::{self, MerkleError, NodeHash, NodeReader};

/// Levels of the Merkle tree one tile spans (tlog-tiles: tiles have height 8).
pub const TILE_HEIGHT: u32 = 8;
/// Hashes (or entries) in a full tile.
pub const TILE_WIDTH: u64 = 256;
/// Highest tile level a path may name (tlog-tiles: 0 to 63).
pub const TILE_LEVEL_MAX: u8 = 63;
/// Highest tile level that can hold a hash of a `u64`-sized tree (tree level 56).
pub const TILE_LEVEL_USED_MAX: u8 = 7;
/// Bytes of a full hash tile.
pub const HASH_TILE_BYTES_MAX: usize = TILE_WIDTH as usize * 32;
/// Largest entry an entry bundle can carry (its length is a `u16`).
pub const ENTRY_BYTES_MAX: usize = u16::MAX as usize;
/// Largest entry bundle of this ledger: 256 attestations of the largest size with their prefixes.
pub const ENTRY_BUNDLE_BYTES_MAX: usize = TILE_WIDTH as usize * (2 + crate::attestation::ATTESTATION_BYTES_MAX);
/// Most tiles a [`TileTree`] keeps in memory (each ≤ 8 KiB, so ≤ 512 KiB).
pub const TILE_CACHE_TILES_MAX: usize = 64;

/// Why a tile path, a tile or an entry bundle was refused, or a tile could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    /// The path breaks a tlog-tiles path rule.
    #[error("tile path '{path}': {rule}")]
    Path { path: String, rule: &'static str },
    /// The tile holds hashes or entries beyond the tree (tlog-tiles: empty tiles are never served).
    #[error("tile {path} is beyond the tree of size {size}")]
    BeyondTree { path: String, size: u64 },
    /// A fetched tile has the wrong number of bytes.
    #[error("tile {path}: {got} bytes; exactly {expected} expected")]
    Length { path: String, expected: usize, got: usize },
    /// An entry bundle is malformed.
    #[error("entry bundle {path}: {rule}")]
    Bundle { path: String, rule: String },
    /// An entry is longer than a `u16` length prefix allows.
    #[error("entry {index}: {len} bytes; an entry bundle carries at most {ENTRY_BYTES_MAX}")]
    EntryTooLong { index: u64, len: usize },
    /// A tile disagrees with its parent, its entries or the signed root.
    #[error("tile {path}: {rule}")]
    Mismatch { path: String, rule: String },
    /// The tile source failed (network, file).
    #[error("tile {path}: {reason}")]
    Source { path: String, reason: String },
    /// The store failed while reading a tile's hashes.
    #[error("tile {path}: {reason}")]
    Merkle { path: String, reason: MerkleError },
}

/// What a tile holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TileKind {
    /// Hashes at tree level `8 · level`.
    Hashes { level: u8 },
    /// An entry bundle (level 0 entries).
    Entries,
}

/// One tile: kind, index within its level and width (1..=256; 256 is a full tile).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tile {
    pub kind: TileKind,
    pub index: u64,
    pub width: u16,
}

impl Tile {
    /// The tile of `kind` with index `index` in the tree of `size` leaves, at the width that
    /// tree gives it (full, or the partial width `floor(s / 256^L) mod 256`); `None` if the
    /// tree holds no hash of it.
    pub fn in_tree(kind: TileKind, index: u64, size: u64) -> Option<Tile> {
        let at_level = hashes_at_level(kind, size);
        let first = u128::from(index) * u128::from(TILE_WIDTH);
        let left = at_level.checked_sub(first).filter(|l| *l > 0)?;
        let width = u16::try_from(left.min(u128::from(TILE_WIDTH))).ok()?;
        Some(Tile { kind, index, width })
    }

    /// Tree level of the tile's hashes (`8 · L`; 0 for entry bundles).
    pub fn tree_level(&self) -> u32 {
        match self.kind {
            TileKind::Hashes { level } => u32::from(level) * TILE_HEIGHT,
            TileKind::Entries => 0,
        }
    }

    pub fn is_full(&self) -> bool {
        u64::from(self.width) == TILE_WIDTH
    }

    /// Index at the tile's tree level of its first hash (entry bundles: of its first leaf).
    pub fn first(&self) -> u128 {
        u128::from(self.index) * u128::from(TILE_WIDTH)
    }

    /// The path of this tile relative to the log's prefix: `tile/<L>/<N>[.p/<W>]` or
    /// `tile/entries/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        let mut out = String::from("tile/");
        match self.kind {
            TileKind::Hashes { level } => out.push_str(&level.to_string()),
            TileKind::Entries => out.push_str("entries"),
        }
        out.push('/');
        out.push_str(&encode_index(self.index));
        if !self.is_full() {
            out.push_str(".p/");
            out.push_str(&self.width.to_string());
        }
        out
    }

    /// Parses a path relative to the log's prefix (`tile/...`), strictly: one path per tile
    /// (no leading zeros, no leading all-zero `x000` element, widths 1..=255 only after `.p/`).
    pub fn parse_path(path: &str) -> Result<Tile, TileError> {
        let bad = |rule: &'static str| TileError::Path { path: path.chars().take(200).collect(), rule };
        let rest = path.strip_prefix("tile/").ok_or_else(|| bad("must begin with 'tile/'"))?;
        let (kind_part, rest) = rest.split_once('/').ok_or_else(|| bad("missing the tile index"))?;
        let kind = if kind_part == "entries" {
            TileKind::Entries
        } else {
            let level = parse_decimal(kind_part).ok_or_else(|| bad("level must be a decimal without leading zeros"))?;
            let level = u8::try_from(level)
                .ok()
                .filter(|l| *l <= TILE_LEVEL_MAX)
                .ok_or_else(|| bad("level must be between 0 and 63"))?;
            TileKind::Hashes { level }
        };
        let (index_part, width) = match rest.split_once(".p/") {
            Some((index, w)) => {
                let w = parse_decimal(w).ok_or_else(|| bad("width must be a decimal without leading zeros"))?;
                let w = u16::try_from(w)
                    .ok()
                    .filter(|w| (1..TILE_WIDTH).contains(&u64::from(*w)))
                    .ok_or_else(|| bad("partial width must be between 1 and 255"))?;
                (index, w)
            }
            None => (rest, TILE_WIDTH as u16),
        };
        let index = decode_index(index_part).ok_or_else(|| {
            bad("index must be 3-digit path elements, all but the last prefixed with 'x', without a leading x000")
        })?;
        Ok(Tile { kind, index, width })
    }

    /// Whether every hash (or entry) of this tile is in the tree of `size` leaves.
    pub fn within(&self, size: u64) -> bool {
        self.first() + u128::from(self.width) <= hashes_at_level(self.kind, size)
    }
}

/// Number of hashes the tree of `size` leaves has at the tree level of `kind`'s tiles.
fn hashes_at_level(kind: TileKind, size: u64) -> u128 {
    match kind {
        TileKind::Hashes { level } if level > TILE_LEVEL_USED_MAX => 0,
        k => u128::from(size) >> (Tile { kind: k, index: 0, width: 1 }.tree_level()),
    }
}

/// Whether tile `(kind, index)` spans at least one leaf of the tree of `size` leaves.
fn covers_leaves(kind: TileKind, index: u64, size: u64) -> bool {
    let span_bits = Tile { kind, index, width: 1 }.tree_level() + TILE_HEIGHT;
    (u128::from(index) << span_bits) < u128::from(size)
}

/// `1234067` → `x001/x234/067`.
fn encode_index(index: u64) -> String {
    let mut groups = Vec::with_capacity(7);
    let mut n = index;
    loop {
        groups.push(n % 1000);
        n /= 1000;
        if n == 0 {
            break;
        }
    }
    let last = groups.len() - 1;
    groups
        .iter()
        .rev()
        .enumerate()
        .map(|(i, g)| if i < last { format!("x{g:03}") } else { format!("{g:03}") })
        .collect::<Vec<_>>()
        .join("/")
}

fn decode_index(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split('/').collect();
    if parts.len() > 7 {
        return None;
    }
    let mut n: u64 = 0;
    for (i, p) in parts.iter().enumerate() {
        let digits = if i + 1 < parts.len() { p.strip_prefix('x')? } else { p };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if i == 0 && parts.len() > 1 && digits == "000" {
            return None;
        }
        let g: u64 = digits.parse().ok()?;
        n = n.checked_mul(1000)?.checked_add(g)?;
    }
    Some(n)
}

fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Serving
// ---------------------------------------------------------------------------------------------

/// The bytes of hash tile `tile` of the tree of `size` leaves, read from stored complete
/// subtrees ([`NodeReader::nodes`]: `W` reads, no hashing above level 0).
pub fn hash_tile(tile: &Tile, size: u64, r: &(impl NodeReader + ?Sized)) -> Result<Vec<u8>, TileError> {
    let TileKind::Hashes { .. } = tile.kind else {
        return Err(TileError::Path { path: tile.path(), rule: "an entry bundle is not a hash tile" });
    };
    if !tile.within(size) {
        return Err(TileError::BeyondTree { path: tile.path(), size });
    }
    let level = u8::try_from(tile.tree_level()).unwrap_or(u8::MAX);
    let start = u64::try_from(tile.first()).unwrap_or(u64::MAX);
    let mut hashes = Vec::with_capacity(usize::from(tile.width));
    r.nodes(level, start, usize::from(tile.width), &mut hashes)
        .map_err(|reason| TileError::Merkle { path: tile.path(), reason })?;
    Ok(hashes.concat())
}

/// An entry bundle: each entry prefixed by its length as a big-endian `u16`.
pub fn entry_bundle<'a>(first: u64, entries: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<u8>, TileError> {
    let mut out = Vec::new();
    for (i, e) in entries.into_iter().enumerate() {
        let len = u16::try_from(e.len())
            .map_err(|_| TileError::EntryTooLong { index: first.saturating_add(i as u64), len: e.len() })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// The entries of bundle `tile`: exactly `tile.width` of them, nothing after the last.
pub fn parse_entry_bundle<'a>(tile: &Tile, bytes: &'a [u8]) -> Result<Vec<&'a [u8]>, TileError> {
    let bad = |rule: String| TileError::Bundle { path: tile.path(), rule };
    let mut rest = bytes;
    let mut out = Vec::with_capacity(usize::from(tile.width));
    while !rest.is_empty() {
        if out.len() == usize::from(tile.width) {
            return Err(bad(format!("{} bytes after its {} entries", rest.len(), tile.width)));
        }
        let [a, b, tail @ ..] = rest else {
            return Err(bad(format!("entry {}: truncated length prefix", out.len())));
        };
        let len = usize::from(u16::from_be_bytes([*a, *b]));
        if tail.len() < len {
            return Err(bad(format!("entry {}: {len} bytes announced, {} left", out.len(), tail.len())));
        }
        let (entry, next) = tail.split_at(len);
        out.push(entry);
        rest = next;
    }
    if out.len() != usize::from(tile.width) {
        return Err(bad(format!("{} entries; the tile's width is {}", out.len(), tile.width)));
    }
    Ok(out)
}

/// The hashes of a hash tile's bytes (exactly `32 · width` of them).
pub fn split_hashes(tile: &Tile, bytes: &[u8]) -> Result<Vec<NodeHash>, TileError> {
    let expected = usize::from(tile.width) * 32;
    if bytes.len() != expected {
        return Err(TileError::Length { path: tile.path(), expected, got: bytes.len() });
    }
    Ok(bytes.chunks_exact(32).map(|c| c.try_into().unwrap_or([0u8; 32])).collect())
}

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

/// Where tiles come from: a tile server, a directory of copied tiles. Returns the tile's bytes
/// as found (checked by the caller); `Ok(None)` when the source does not have it.
pub trait TileSource {
    fn fetch(&self, tile: &Tile) -> Result<Option<Vec<u8>>, String>;
}

impl<S: TileSource + ?Sized> TileSource for &S {
    fn fetch(&self, tile: &Tile) -> Result<Option<Vec<u8>>, String> {
        (**self).fetch(tile)
    }
}

/// Fetches `tile` from `source`; a missing partial tile is taken from the full tile's prefix
/// when the source has that (tlog-tiles: logs MAY delete a partial tile once the full one is
/// there, and clients MAY fall back to it).
pub fn fetch_tile(source: &impl TileSource, tile: &Tile) -> Result<Vec<u8>, TileError> {
    let src = |reason: String| TileError::Source { path: tile.path(), reason };
    if let Some(bytes) = source.fetch(tile).map_err(src)? {
        return Ok(bytes);
    }
    if !tile.is_full() {
        let full = Tile { width: TILE_WIDTH as u16, ..*tile };
        if let Some(bytes) = source.fetch(&full).map_err(src)? {
            return match tile.kind {
                TileKind::Hashes { .. } => Ok(bytes.get(..usize::from(tile.width) * 32).unwrap_or(&bytes).to_vec()),
                TileKind::Entries => {
                    let entries = parse_entry_bundle(&full, &bytes)?;
                    entry_bundle(0, entries.into_iter().take(usize::from(tile.width)))
                }
            };
        }
    }
    Err(src("not found".to_owned()))
}

/// Cached tiles by (level, index), with their arrival order.
type TileCacheMap = (HashMap<(u8, u64), Vec<NodeHash>>, VecDeque<(u8, u64)>);

/// The tree of `size` leaves as a [`NodeReader`] over tiles from a [`TileSource`]: proofs and
/// roots computed by `merkle` from it must be checked against a signed root.
///
/// Keeps at most [`TILE_CACHE_TILES_MAX`] tiles (oldest dropped first). A source failure
/// surfaces to `merkle` as a missing node; [`TileTree::take_error`] tells why.
pub struct TileTree<S> {
    source: S,
    size: u64,
    cache: RefCell<TileCacheMap>,
    error: RefCell<Option<TileError>>,
}

impl<S> std::fmt::Debug for TileTree<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TileTree").field("size", &self.size).finish_non_exhaustive()
    }
}

impl<S: TileSource> TileTree<S> {
    pub fn new(source: S, size: u64) -> TileTree<S> {
        TileTree { source, size, cache: RefCell::new((HashMap::new(), VecDeque::new())), error: RefCell::new(None) }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Why the last read failed, if it did.
    pub fn take_error(&self) -> Option<TileError> {
        self.error.borrow_mut().take()
    }

    /// The hashes of hash tile `(level, index)` at the width this tree gives it.
    fn tile_hashes(&self, level: u8, index: u64) -> Result<Vec<NodeHash>, TileError> {
        if let Some(h) = self.cache.borrow().0.get(&(level, index)) {
            return Ok(h.clone());
        }
        let kind = TileKind::Hashes { level };
        let tile = Tile::in_tree(kind, index, self.size)
            .ok_or_else(|| TileError::BeyondTree { path: Tile { kind, index, width: 1 }.path(), size: self.size })?;
        let hashes = split_hashes(&tile, &fetch_tile(&self.source, &tile)?)?;
        let mut cache = self.cache.borrow_mut();
        if cache.1.len() >= TILE_CACHE_TILES_MAX
            && let Some(old) = cache.1.pop_front()
        {
            cache.0.remove(&old);
        }
        cache.1.push_back((level, index));
        cache.0.insert((level, index), hashes.clone());
        Ok(hashes)
    }

    fn read(&self, level: u8, index: u64) -> Result<NodeHash, TileError> {
        let (tile_level, r) = (u32::from(level) / TILE_HEIGHT, u32::from(level) % TILE_HEIGHT);
        // The node's leaves at the tile level: [index << r, (index + 1) << r), inside one tile.
        let first = u128::from(index) << r;
        let tile_index = u64::try_from(first / u128::from(TILE_WIDTH)).unwrap_or(u64::MAX);
        let tile_level = u8::try_from(tile_level).unwrap_or(u8::MAX);
        let hashes = self.tile_hashes(tile_level, tile_index)?;
        let at = usize::try_from(first % u128::from(TILE_WIDTH)).unwrap_or(usize::MAX);
        let run = hashes.get(at..at + (1usize << r)).ok_or_else(|| TileError::Mismatch {
            path: Tile { kind: TileKind::Hashes { level: tile_level }, index: tile_index, width: 1 }.path(),
            rule: format!("node ({level}, {index}) is not complete in the tree of size {}", self.size),
        })?;
        Ok(merkle::perfect_root(run))
    }
}

impl<S: TileSource> NodeReader for TileTree<S> {
    fn node(&self, level: u8, index: u64) -> Result<NodeHash, MerkleError> {
        self.read(level, index).map_err(|e| {
            *self.error.borrow_mut() = Some(e);
            MerkleError::MissingNode { level, index }
        })
    }

    fn stored_size(&self) -> Option<u64> {
        Some(self.size)
    }
}

// ---------------------------------------------------------------------------------------------
// Checking a whole tiled tree
// ---------------------------------------------------------------------------------------------

/// Every tile of the tree of `size` leaves (hash tiles of every level and, if `entries`, the
/// entry bundles) in post-order: a tile comes after the tiles below it (an entry bundle before
/// its level-0 tile), so [`TileWalk`] checks each tile against what it has just seen.
pub fn tiles_of(size: u64, entries: bool) -> TilesOf {
    let top = (0..=TILE_LEVEL_USED_MAX).rev().find(|l| hashes_at_level(TileKind::Hashes { level: *l }, size) > 0);
    TilesOf { size, entries, stack: top.map(|l| vec![(TileKind::Hashes { level: l }, 0, 0)]).unwrap_or_default() }
}

/// The iterator of [`tiles_of`]: a stack of at most 9 tiles (one per level and an entry bundle).
#[derive(Debug)]
pub struct TilesOf {
    size: u64,
    entries: bool,
    /// (kind, index, next child to visit).
    stack: Vec<(TileKind, u64, u64)>,
}

impl Iterator for TilesOf {
    type Item = Tile;

    fn next(&mut self) -> Option<Tile> {
        loop {
            let (kind, index, next) = *self.stack.last()?;
            let child = match kind {
                TileKind::Hashes { level: 0 } if self.entries && next == 0 => Some((TileKind::Entries, index)),
                TileKind::Hashes { level } if level > 0 && next < TILE_WIDTH => index
                    .checked_mul(TILE_WIDTH)
                    .and_then(|first| first.checked_add(next))
                    .map(|i| (TileKind::Hashes { level: level - 1 }, i)),
                _ => None,
            };
            // A child is visited if it covers a leaf, even when it holds no complete hash (the
            // tile above a partial tile may be empty: 512 + 3 leaves have no level-1 tile 2).
            if let Some((kind, index)) = child.filter(|&(k, i)| covers_leaves(k, i, self.size)) {
                if let Some(top) = self.stack.last_mut() {
                    top.2 += 1;
                }
                self.stack.push((kind, index, 0));
                continue;
            }
            self.stack.pop();
            if let Some(tile) = Tile::in_tree(kind, index, self.size) {
                return Some(tile);
            }
        }
    }
}

/// Checks every tile of a tree of `size` leaves with signed root `root`, given in the order of
/// [`tiles_of`], with bounded memory (≤ 256 hashes pending per level and one partial tile per
/// level):
/// * an entry bundle's entries hash (RFC 6962 leaf hashes) to its level-0 tile;
/// * the MTH of each full tile is its hash in the tile above (full or partial);
/// * the partial tiles (the tree's right edge, the top level's tile among them) give the root.
///
/// Together these bind every hash of every tile to the signed root.
#[derive(Debug)]
pub struct TileWalk {
    size: u64,
    root: NodeHash,
    /// Per tile level: MTHs of the full tiles checked since the tile above was.
    pending: Vec<Vec<NodeHash>>,
    /// Leaf hashes of the last entry bundle, with its index.
    entries: Option<(u64, Vec<NodeHash>)>,
    /// The partial tile of each level, once seen.
    edge: HashMap<u8, Vec<NodeHash>>,
    /// Tiles checked.
    pub tiles: u64,
}

impl TileWalk {
    pub fn new(size: u64, root: NodeHash) -> TileWalk {
        TileWalk {
            size,
            root,
            pending: vec![Vec::new(); usize::from(TILE_LEVEL_USED_MAX) + 1],
            entries: None,
            edge: HashMap::new(),
            tiles: 0,
        }
    }

    /// Checks `tile`'s `bytes` (tiles must come in [`tiles_of`] order). Returns the entries of
    /// an entry bundle (empty for a hash tile).
    pub fn check<'a>(&mut self, tile: &Tile, bytes: &'a [u8]) -> Result<Vec<&'a [u8]>, TileError> {
        if Tile::in_tree(tile.kind, tile.index, self.size) != Some(*tile) {
            return Err(TileError::BeyondTree { path: tile.path(), size: self.size });
        }
        let mismatch = |rule: &str| TileError::Mismatch { path: tile.path(), rule: rule.to_owned() };
        let level = match tile.kind {
            TileKind::Entries => {
                let entries = parse_entry_bundle(tile, bytes)?;
                self.entries = Some((tile.index, entries.iter().map(|e| merkle::leaf_hash(e)).collect()));
                self.tiles += 1;
                return Ok(entries);
            }
            TileKind::Hashes { level } => level,
        };
        let hashes = split_hashes(tile, bytes)?;
        if level == 0 {
            if let Some((index, leaves)) = self.entries.take()
                && (index != tile.index || leaves != hashes)
            {
                return Err(mismatch("its entry bundle's leaf hashes differ from it"));
            }
        } else {
            let below = &mut self.pending[usize::from(level - 1)];
            if *below != hashes {
                return Err(mismatch("its hashes are not the MTHs of the full tiles below it"));
            }
            below.clear();
        }
        if tile.is_full() {
            if let Some(p) = self.pending.get_mut(usize::from(level)) {
                p.push(merkle::perfect_root(&hashes));
            }
        } else {
            self.edge.insert(level, hashes);
        }
        self.tiles += 1;
        Ok(Vec::new())
    }

    /// After the last tile: the partial tiles give the signed root, and no full tile is left
    /// without the tile above it.
    pub fn finish(self) -> Result<(), TileError> {
        let path = |level: u8| Tile { kind: TileKind::Hashes { level }, index: 0, width: 1 }.path();
        if let Some(level) = self.pending.iter().position(|p| !p.is_empty()) {
            let level = u8::try_from(level).unwrap_or(u8::MAX);
            return Err(TileError::Mismatch {
                path: path(level),
                rule: "full tiles without the tile above".to_owned(),
            });
        }
        let root = merkle::root_at(self.size, &RightEdge { edge: &self.edge }).map_err(|e| TileError::Mismatch {
            path: "tile/".to_owned(),
            rule: format!("the right edge of the tree is incomplete: {e}"),
        })?;
        if root != self.root {
            return Err(TileError::Mismatch {
                path: "tile/".to_owned(),
                rule: "the tiles' root differs from the signed root".to_owned(),
            });
        }
        Ok(())
    }
}

/// The partial tiles of each level as a node reader: the nodes `merkle::root_at` reads are
/// the tree's right edge, all inside them.
struct RightEdge<'a> {
    edge: &'a HashMap<u8, Vec<NodeHash>>,
}

impl NodeReader for RightEdge<'_> {
    fn node(&self, level: u8, index: u64) -> Result<NodeHash, MerkleError> {
        let missing = MerkleError::MissingNode { level, index };
        let tile_level = u8::try_from(u32::from(level) / TILE_HEIGHT).map_err(|_| missing.clone())?;
        let r = u32::from(level) % TILE_HEIGHT;
        let hashes = self.edge.get(&tile_level).ok_or(missing.clone())?;
        let at = usize::try_from((u128::from(index) << r) % u128::from(TILE_WIDTH)).map_err(|_| missing.clone())?;
        let run = hashes.get(at..at + (1usize << r)).ok_or(missing)?;
        Ok(merkle::perfect_root(run))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{MemTree, consistency_proof, inclusion_proof, root_at, verify_consistency, verify_inclusion};

    /// RFC 6962 §2.1 MTH by the recursive definition, independent of the stored-subtree code.
    fn mth(leaves: &[NodeHash]) -> NodeHash {
        match leaves.len() {
            0 => merkle::empty_root(),
            1 => leaves[0],
            n => {
                let k = 1usize << (usize::BITS - (n - 1).leading_zeros() - 1);
                merkle::node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    /// A tile recomputed from the leaves alone (tlog-tiles §Merkle Tree, the formal definition).
    fn tile_from_leaves(tile: &Tile, leaves: &[NodeHash]) -> Vec<u8> {
        let span = 1usize << tile.tree_level();
        let first = usize::try_from(tile.first()).unwrap();
        (0..usize::from(tile.width)).flat_map(|i| mth(&leaves[(first + i) * span..(first + i + 1) * span])).collect()
    }

    fn leaf_bytes(i: u64) -> Vec<u8> {
        format!("entry {i}").into_bytes()
    }

    /// A tile server over a tree: every tile the tree of `size` has, by path.
    struct Served {
        tiles: HashMap<String, Vec<u8>>,
    }

    impl Served {
        fn new(tree: &MemTree, size: u64) -> Served {
            let mut tiles = HashMap::new();
            for t in tiles_of(size, true) {
                let bytes = match t.kind {
                    TileKind::Hashes { .. } => hash_tile(&t, size, tree).unwrap(),
                    TileKind::Entries => {
                        let first = u64::try_from(t.first()).unwrap();
                        let e: Vec<Vec<u8>> = (first..first + u64::from(t.width)).map(leaf_bytes).collect();
                        entry_bundle(first, e.iter().map(Vec::as_slice)).unwrap()
                    }
                };
                tiles.insert(t.path(), bytes);
            }
            Served { tiles }
        }
    }

    impl TileSource for Served {
        fn fetch(&self, tile: &Tile) -> Result<Option<Vec<u8>>, String> {
            Ok(self.tiles.get(&tile.path()).cloned())
        }
    }

    #[test]
    fn paths_follow_the_spec() {
        let t = |kind, index, width| Tile { kind, index, width };
        let h0 = TileKind::Hashes { level: 0 };
        assert_eq!(t(h0, 1_234_067, 256).path(), "tile/0/x001/x234/067");
        assert_eq!(t(TileKind::Hashes { level: 3 }, 5, 17).path(), "tile/3/005.p/17");
        assert_eq!(t(TileKind::Entries, 1000, 256).path(), "tile/entries/x001/000");
        assert_eq!(t(TileKind::Entries, 0, 1).path(), "tile/entries/000.p/1");
        assert_eq!(t(h0, u64::MAX, 256).path(), "tile/0/x018/x446/x744/x073/x709/x551/615");
        for tile in [
            t(h0, 0, 256),
            t(h0, 999, 255),
            t(h0, 1000, 1),
            t(TileKind::Hashes { level: 63 }, 1_234_067, 256),
            t(TileKind::Entries, u64::MAX, 7),
        ] {
            assert_eq!(Tile::parse_path(&tile.path()), Ok(tile));
        }
        for (bad, rule) in [
            ("tile/0/1", "3-digit"),
            ("tile/0/0001", "3-digit"),
            ("tile/0/x000/001", "leading x000"),
            ("tile/0/001/001", "prefixed with 'x'"),
            ("tile/0/x001", "3-digit"),
            ("tile/00/001", "leading zeros"),
            ("tile/64/001", "between 0 and 63"),
            ("tile/0/001.p/0", "between 1 and 255"),
            ("tile/0/001.p/256", "between 1 and 255"),
            ("tile/0/001.p/07", "leading zeros"),
            ("tile/0/x018/x446/x744/x073/x709/x551/616", "3-digit"),
            ("tile/0/x001/x002/x003/x004/x005/x006/x007/008", "3-digit"),
            ("tile/data/001", "level"),
            ("tiles/0/001", "begin with 'tile/'"),
            ("tile/0", "missing"),
        ] {
            let e = Tile::parse_path(bad).unwrap_err().to_string();
            assert!(e.contains(rule), "{bad}: {e}");
        }
    }

    #[test]
    fn the_specs_example_of_a_tree_of_70000() {
        let tiles: Vec<Tile> = tiles_of(70_000, false).collect();
        let count = |level: u8, full: bool| {
            tiles.iter().filter(|t| t.kind == TileKind::Hashes { level } && t.is_full() == full).count()
        };
        assert_eq!((count(0, true), count(0, false)), (273, 1));
        assert_eq!((count(1, true), count(1, false)), (1, 1));
        assert_eq!((count(2, true), count(2, false)), (0, 1));
        assert_eq!(tiles.len(), 277);
        let width =
            |level: u8| tiles.iter().find(|t| t.kind == TileKind::Hashes { level } && !t.is_full()).unwrap().width;
        assert_eq!((width(0), width(1), width(2)), (112, 17, 1));
        // A tree of 256: a full level-0 tile and a level-1 tile of width 1.
        let t256: Vec<String> = tiles_of(256, true).map(|t| t.path()).collect();
        assert_eq!(t256, ["tile/entries/000", "tile/0/000", "tile/1/000.p/1"]);
        assert_eq!(tiles_of(0, true).count(), 0);
        // Post-order: each tile after the tiles below it.
        let t: Vec<String> = tiles_of(2 * 256 * 256 + 3, false).map(|t| t.path()).collect();
        assert_eq!(t.iter().position(|p| p == "tile/1/000").unwrap(), 256);
        assert_eq!(t.last().unwrap(), "tile/2/000.p/2");
        assert_eq!(t.len(), 512 + 1 + 2 + 1);
    }

    #[test]
    fn tiles_after_each_append_equal_those_recomputed_from_the_leaves() {
        let mut tree = MemTree::new();
        let mut leaves = Vec::new();
        // Appends of irregular sizes across tile boundaries of levels 0 and 1.
        for batch in [1u64, 2, 253, 1, 256, 300, 511, 64_000, 1, 255, 256 * 256 - 1] {
            for _ in 0..batch {
                let h = merkle::leaf_hash(&leaf_bytes(leaves.len() as u64));
                leaves.push(h);
                tree.append_leaf_hash(h);
            }
            let size = tree.size();
            let mut seen = 0;
            for tile in tiles_of(size, false) {
                // The big tree: check the right edge and a sample, the rest is the same code.
                if !(size > 4096 && tile.is_full() && tile.index % 97 != 0) {
                    assert_eq!(
                        hash_tile(&tile, size, &tree).unwrap(),
                        tile_from_leaves(&tile, &leaves),
                        "{}",
                        tile.path()
                    );
                    seen += 1;
                }
            }
            assert!(seen > 0);
            // Beyond the tree: refused, never an empty tile.
            let past = Tile::in_tree(TileKind::Hashes { level: 0 }, size / 256, size + 256).unwrap();
            assert!(matches!(hash_tile(&past, size, &tree), Err(TileError::BeyondTree { .. })));
        }
    }

    #[test]
    fn proofs_from_tiles_equal_proofs_from_the_store() {
        let mut tree = MemTree::new();
        for i in 0..70_000u64 {
            tree.append_leaf_hash(merkle::leaf_hash(&leaf_bytes(i)));
        }
        for size in [1u64, 255, 256, 257, 65_536, 65_537, 70_000] {
            let served = Served::new(&tree, size);
            let tiles = TileTree::new(&served, size);
            let root = root_at(size, &tree).unwrap();
            assert_eq!(root_at(size, &tiles).unwrap(), root);
            for index in [0, 1, size / 2, size - 1] {
                if index >= size {
                    continue;
                }
                let p = inclusion_proof(index, size, &tiles).unwrap();
                assert_eq!(p, inclusion_proof(index, size, &tree).unwrap());
                verify_inclusion(&merkle::leaf_hash(&leaf_bytes(index)), index, size, &p, &root).unwrap();
            }
            for m in [1, size / 3, size - 1] {
                if m == 0 || m >= size {
                    continue;
                }
                let p = consistency_proof(m, size, &tiles).unwrap();
                assert_eq!(p, consistency_proof(m, size, &tree).unwrap());
                verify_consistency(m, size, &p, &root_at(m, &tree).unwrap(), &root).unwrap();
            }
        }
        // A missing tile is a named error, not a panic.
        let tiles = TileTree::new(Served { tiles: HashMap::new() }, 70_000);
        assert!(root_at(70_000, &tiles).is_err());
        assert!(matches!(tiles.take_error(), Some(TileError::Source { .. })));
    }

    #[test]
    fn a_partial_tile_falls_back_to_the_full_one() {
        let mut tree = MemTree::new();
        for i in 0..600u64 {
            tree.append_leaf_hash(merkle::leaf_hash(&leaf_bytes(i)));
        }
        let mut served = Served::new(&tree, 600);
        // The log has since grown past 512 and deleted the partial tiles of size 300.
        let partial = Tile { kind: TileKind::Hashes { level: 0 }, index: 1, width: 44 };
        assert!(!served.tiles.contains_key(&partial.path()));
        let got = fetch_tile(&served, &partial).unwrap();
        assert_eq!(
            got,
            tile_from_leaves(&partial, &(0..600).map(|i| merkle::leaf_hash(&leaf_bytes(i))).collect::<Vec<_>>())
        );
        let entries = Tile { kind: TileKind::Entries, index: 1, width: 3 };
        let got = fetch_tile(&served, &entries).unwrap();
        assert_eq!(parse_entry_bundle(&entries, &got).unwrap(), [b"entry 256".as_slice(), b"entry 257", b"entry 258"]);
        served.tiles.clear();
        assert!(fetch_tile(&served, &partial).is_err());
    }

    #[test]
    fn a_stores_tiles_after_each_block_equal_those_recomputed_from_its_leaves() {
        use crate::demo::{ChainBuilder, EXAMPLE_GENESIS_TIME_MS};
        use crate::store::{MemStore, RedbStore, Store};
        let mut b = ChainBuilder::new(3, EXAMPLE_GENESIS_TIME_MS).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut redb = RedbStore::open(&dir.path().join("store.redb"), b.genesis()).unwrap();
        let mut mem = MemStore::new(b.genesis());
        let (mut hashes, mut bytes) = (Vec::new(), Vec::new());
        for per_block in [1usize, 254, 0, 300, 1, 700] {
            let vb = b.next_block(per_block).unwrap();
            for l in &vb.certified().block.leaves {
                hashes.push(l.leaf_hash());
                bytes.push(l.bytes.clone());
            }
            redb.commit(&vb).unwrap();
            mem.commit(&vb).unwrap();
            let size = redb.head().unwrap().unwrap().tree_size;
            assert_eq!(size, hashes.len() as u64);
            for tile in tiles_of(size, true) {
                let first = u64::try_from(tile.first()).unwrap();
                match tile.kind {
                    TileKind::Hashes { .. } => {
                        let want = tile_from_leaves(&tile, &hashes);
                        assert_eq!(hash_tile(&tile, size, &redb).unwrap(), want, "redb {}", tile.path());
                        assert_eq!(hash_tile(&tile, size, &mem).unwrap(), want, "mem {}", tile.path());
                    }
                    TileKind::Entries => {
                        let mut got = Vec::new();
                        redb.leaf_bytes(first, usize::from(tile.width), &mut got).unwrap();
                        let want = &bytes[first as usize..first as usize + usize::from(tile.width)];
                        assert_eq!(got, want, "{}", tile.path());
                        let mut from_mem = Vec::new();
                        mem.leaf_bytes(first, usize::from(tile.width), &mut from_mem).unwrap();
                        assert_eq!(from_mem, want);
                    }
                }
            }
            // Beyond the stored tree: a named error from both the range read and the default.
            let mut out = Vec::new();
            assert!(redb.nodes(0, size, 1, &mut out).is_err() && out.is_empty());
            assert!(redb.leaf_bytes(size, 1, &mut Vec::new()).is_err());
            assert!(mem.leaf_bytes(size, 1, &mut Vec::new()).is_err());
        }
    }

    #[test]
    fn entry_bundles_are_strict() {
        let t = Tile { kind: TileKind::Entries, index: 0, width: 2 };
        let b = entry_bundle(0, [b"ab".as_slice(), b""]).unwrap();
        assert_eq!(b, [0, 2, b'a', b'b', 0, 0]);
        assert_eq!(parse_entry_bundle(&t, &b).unwrap(), [b"ab".as_slice(), b""]);
        for (bad, rule) in [
            (&b[..5], "truncated length prefix"),
            (&b[..3], "announced"),
            (&[b.as_slice(), &[0, 0]].concat()[..], "after its 2 entries"),
            (&b[..4], "1 entries"),
        ] {
            let e = parse_entry_bundle(&t, bad).unwrap_err().to_string();
            assert!(e.contains(rule), "{e}");
        }
        let long = vec![0u8; ENTRY_BYTES_MAX + 1];
        assert!(matches!(entry_bundle(9, [long.as_slice()]), Err(TileError::EntryTooLong { index: 9, .. })));
    }

    #[test]
    fn a_walk_accepts_the_tree_and_refuses_any_changed_tile() {
        let mut tree = MemTree::new();
        for i in 0..70_000u64 {
            tree.append_leaf_hash(merkle::leaf_hash(&leaf_bytes(i)));
        }
        for size in [1u64, 256, 257, 65_536, 70_000] {
            let served = Served::new(&tree, size);
            let root = root_at(size, &tree).unwrap();
            let walk = |served: &Served, root: NodeHash| -> Result<u64, TileError> {
                let mut w = TileWalk::new(size, root);
                let mut entries = 0u64;
                for t in tiles_of(size, true) {
                    entries += w.check(&t, &fetch_tile(served, &t)?)?.len() as u64;
                }
                let n = w.tiles;
                w.finish()?;
                assert_eq!(entries, size);
                Ok(n)
            };
            assert_eq!(walk(&served, root).unwrap(), tiles_of(size, true).count() as u64);
            assert!(walk(&served, [0u8; 32]).is_err());
            // Any one byte changed in any tile (sampled) is caught.
            for (k, path) in served.tiles.keys().enumerate() {
                if k % 37 != 0 && served.tiles.len() > 40 {
                    continue;
                }
                let mut bad = Served { tiles: served.tiles.clone() };
                let bytes = bad.tiles.get_mut(path).unwrap();
                let at = bytes.len() - 1;
                bytes[at] ^= 1;
                assert!(walk(&bad, root).is_err(), "{path} changed at size {size}");
            }
        }
    }
}
