//! The CLI's C2SP tlog-tiles client: tiles from an `http://` prefix or a directory, `credence mirror` (copy a log's tiles, checking each), and `credence verify --tiles` (every tile, entry and signature from the tiles alone).
//!
//! Nothing fetched is trusted: a checkpoint counts only with a quorum of the genesis
//! validators' signatures, proofs computed from tiles are verified against its signed root,
//! and a whole tree is checked tile by tile against the tile above and the root
//! (`ledger::tiles::TileWalk`) with bounded memory.

use std::cell::RefCell;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;

use credence_ledger::checkpoint::{CHECKPOINT_BYTES_MAX, Checkpoint, QuorumReport};
use credence_ledger::genesis::Genesis;
use credence_ledger::tiles::{
    self, ENTRY_BUNDLE_BYTES_MAX, HASH_TILE_BYTES_MAX, Tile, TileKind, TileSource, TileTree, TileWalk,
};
use credence_ledger::verify::ChainContext;
use credence_node::bundle::check_checkpoint;
use credence_node::keyfile::AccessKeyFile;
use credence_node::mempool::Verifier;

use crate::http::Conn;

/// Entries verified in one signature batch by `verify --tiles` (a few entry bundles).
const VERIFY_BATCH_ENTRIES_MAX: usize = 4 * 256;

/// Where a log's tiles are: an `http://HOST:PORT[/PREFIX]` URL or a directory.
pub enum Tiles {
    Http { conn: Box<RefCell<Conn>>, prefix: String, url: String },
    Dir(PathBuf),
}

impl std::fmt::Debug for Tiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Tiles {
    /// `arg` as given to `--tiles`: a URL starting with `http://`, else a directory. Requests
    /// to a URL are signed with `access` if given: a node serves entry bundles only to an
    /// access key with the regulator scope (hash tiles and the checkpoint are public).
    pub fn open(arg: &str, access: Option<AccessKeyFile>) -> Result<Tiles> {
        if let Some(rest) = arg.strip_prefix("http://") {
            let (host, prefix) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
            let prefix = prefix.trim_end_matches('/');
            let prefix = if prefix.is_empty() { String::new() } else { format!("/{prefix}") };
            let conn =
                Conn::new(&format!("http://{host}")).with_context(|| format!("--tiles {arg}"))?.with_access(access);
            return Ok(Tiles::Http { conn: Box::new(RefCell::new(conn)), prefix, url: arg.to_string() });
        }
        let dir = PathBuf::from(arg);
        if !dir.is_dir() {
            bail!("--tiles: '{arg}' is neither an http:// URL nor a directory");
        }
        Ok(Tiles::Dir(dir))
    }

    pub fn describe(&self) -> String {
        match self {
            Tiles::Http { url, .. } => url.clone(),
            Tiles::Dir(d) => d.display().to_string(),
        }
    }

    /// The resource at `path` (relative to the prefix), `None` if absent, at most `max` bytes.
    fn get(&self, path: &str, max: usize) -> Result<Option<Vec<u8>>, String> {
        match self {
            Tiles::Http { conn, prefix, .. } => {
                let r = conn.borrow_mut().get(&format!("{prefix}/{path}")).map_err(|e| format!("{e:#}"))?;
                match r.status {
                    200 if r.body.len() <= max => Ok(Some(r.body)),
                    200 => Err(format!("{} bytes; at most {max} expected", r.body.len())),
                    404 => Ok(None),
                    s @ (401 | 403) if path.starts_with("tile/entries/") => Err(format!(
                        "HTTP {s}: {} (a node serves entry bundles only to a request signed with \
                         --access-key FILE whose key has the regulator scope)",
                        String::from_utf8_lossy(&r.body).chars().take(200).collect::<String>()
                    )),
                    s => Err(format!(
                        "HTTP {s}: {}",
                        String::from_utf8_lossy(&r.body).chars().take(200).collect::<String>()
                    )),
                }
            }
            Tiles::Dir(dir) => read_file_bounded(&dir.join(path), max),
        }
    }

    /// The log's checkpoint note, as served.
    pub fn checkpoint(&self) -> Result<String> {
        let bytes = self
            .get("checkpoint", CHECKPOINT_BYTES_MAX)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("{}: checkpoint", self.describe()))?
            .with_context(|| format!("{}: no checkpoint", self.describe()))?;
        String::from_utf8(bytes).with_context(|| format!("{}: the checkpoint is not UTF-8", self.describe()))
    }
}

impl TileSource for Tiles {
    fn fetch(&self, tile: &Tile) -> Result<Option<Vec<u8>>, String> {
        let max = match tile.kind {
            TileKind::Hashes { .. } => HASH_TILE_BYTES_MAX,
            TileKind::Entries => ENTRY_BUNDLE_BYTES_MAX,
        };
        self.get(&tile.path(), max)
    }
}

/// A file of at most `max` bytes; `None` if it does not exist.
fn read_file_bounded(path: &Path, max: usize) -> Result<Option<Vec<u8>>, String> {
    let f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut out = Vec::new();
    f.take(max as u64 + 1).read_to_end(&mut out).map_err(|e| format!("{}: {e}", path.display()))?;
    if out.len() > max {
        return Err(format!("{}: more than {max} bytes", path.display()));
    }
    Ok(Some(out))
}

/// A checkpoint with its quorum, or why it is not valid.
type Checked = std::result::Result<(Checkpoint, QuorumReport), String>;

/// The log's checkpoint checked against `genesis`: `Ok(Err(reason))` if it is not valid.
pub fn checked_checkpoint(tiles: &Tiles, genesis: &Genesis) -> Result<(String, Checked)> {
    let note = tiles.checkpoint()?;
    let checked = check_checkpoint(&note, genesis);
    Ok((note, checked))
}

/// A tree of `size` leaves over these tiles, for proofs (to be verified against a signed root).
pub fn tree(tiles: &Tiles, size: u64) -> TileTree<&Tiles> {
    TileTree::new(tiles, size)
}

/// A `merkle` error from a [`TileTree`], with the tile failure behind it.
pub fn tree_error(tree: &TileTree<&Tiles>, e: credence_ledger::merkle::MerkleError) -> anyhow::Error {
    match tree.take_error() {
        Some(t) => anyhow::Error::new(t),
        None => anyhow::Error::new(e),
    }
}

#[derive(Args, Debug)]
pub struct MirrorArgs {
    /// The log's tiles: an http:// URL prefix (a node's API, or any server of a copy).
    #[arg(long)]
    tiles: String,
    /// Directory to copy the tiles into; a copy left by an earlier run is resumed and extended.
    #[arg(long)]
    out: PathBuf,
    /// The chain's genesis file, obtained out of band: the validators whose signatures count.
    #[arg(long)]
    genesis: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// A node serves entry bundles only to a key with the regulator scope (docs/ACCESS.md).
    #[command(flatten)]
    access: crate::access::AccessArgs,
}

/// Writes `bytes` to `path` through a temporary file and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let tmp = path.with_extension("partial");
    fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// `credence mirror`: copies every tile of the log's current checkpoint into `--out`, checking
/// each against the tile above it and the signed root as it comes; full tiles already copied
/// are re-read from disk and re-checked, not fetched. The checkpoint is written last, and only
/// if the tree it names extends the one of the checkpoint copied before (a consistency proof
/// computed from the copied tiles).
pub fn mirror(a: &MirrorArgs) -> Result<ExitCode> {
    let genesis = Genesis::load(&a.genesis).with_context(|| format!("--genesis: {}", a.genesis.display()))?;
    let src = Tiles::open(&a.tiles, a.access.load()?)?;
    fs::create_dir_all(&a.out).with_context(|| format!("--out: cannot create {}", a.out.display()))?;
    let refuse = |reason: String| -> Result<ExitCode> {
        if a.json {
            println!("{}", json!({"valid": false, "reason": reason}));
        } else {
            println!("MIRROR REFUSED: {reason}");
        }
        Ok(ExitCode::from(1))
    };
    let (note, checked) = checked_checkpoint(&src, &genesis)?;
    let (cp, q) = match checked {
        Ok(v) => v,
        Err(r) => return refuse(format!("the log's checkpoint is not valid: {r}")),
    };
    let old = match read_file_bounded(&a.out.join("checkpoint"), CHECKPOINT_BYTES_MAX).map_err(anyhow::Error::msg)? {
        Some(b) => match check_checkpoint(&String::from_utf8_lossy(&b), &genesis) {
            Ok((old, _)) => Some(old),
            Err(r) => return refuse(format!("the copy's checkpoint is not valid: {r}")),
        },
        None => None,
    };
    let size = cp.body.tree_size;
    let mut walk = TileWalk::new(size, cp.body.root);
    let (mut fetched, mut reused) = (0u64, 0u64);
    for tile in tiles::tiles_of(size, true) {
        let on_disk = a.out.join(tile.path());
        let kept = if tile.is_full() {
            read_file_bounded(&on_disk, ENTRY_BUNDLE_BYTES_MAX).map_err(anyhow::Error::msg)?
        } else {
            None
        };
        let (bytes, new) = match kept {
            Some(b) => (b, false),
            None => (tiles::fetch_tile(&src, &tile)?, true),
        };
        if let Err(e) = walk.check(&tile, &bytes) {
            return refuse(e.to_string());
        }
        // Written only once checked; a partial tile is always fetched and written anew.
        if new {
            fetched += 1;
            write_atomic(&on_disk, &bytes)?;
        } else {
            reused += 1;
        }
    }
    let checked_tiles = walk.tiles;
    if let Err(e) = walk.finish() {
        return refuse(e.to_string());
    }
    if let Some(old) = &old {
        let copy = Tiles::Dir(a.out.clone());
        let t = tree(&copy, size);
        let verdict = crate::audit::judge(old, &cp, |m, n| {
            credence_ledger::merkle::consistency_proof(m, n, &t).map_err(|e| tree_error(&t, e))
        })?;
        if let crate::audit::Verdict::Violation(reason) = verdict {
            return refuse(reason);
        }
    }
    write_atomic(&a.out.join("checkpoint"), note.as_bytes())?;
    if a.json {
        println!(
            "{}",
            json!({"valid": true, "tree_size": size, "height": cp.body.height, "tiles": checked_tiles,
                   "fetched": fetched, "reused": reused, "signers": q.signers, "needed": q.needed,
                   "extended_from": old.map(|o| o.body.tree_size)})
        );
    } else {
        println!(
            "MIRRORED: {} attestations (height {}) in {} tiles checked against the tile above and the root \
             signed by {} of {} validators; {fetched} fetched, {reused} already copied.",
            size,
            cp.body.height,
            checked_tiles,
            q.signers.len(),
            q.validators
        );
        if let Some(o) = old {
            println!("The copy's earlier checkpoint (tree size {}) is a prefix of this one.", o.body.tree_size);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `credence verify --tiles`: the log's checkpoint, every tile against the tile above it and
/// the signed root, and every entry: canonical decoding, a genesis member's valid signature
/// (batched), and each member's sequence numbers contiguous from 1. What tiles do not carry
/// (block headers, earlier certificates, block times, so the rules that need them) is checked
/// only by `verify --data-dir` or `--file`.
pub fn verify(tiles_arg: &str, access: Option<AccessKeyFile>, genesis: Genesis, json_out: bool) -> Result<ExitCode> {
    let src = Tiles::open(tiles_arg, access)?;
    let ctx = Arc::new(ChainContext::new(genesis));
    let verifier = Verifier::new(ctx.clone(), credence_node::mempool::InForce::new(&ctx));
    let fail = |reason: String| -> Result<ExitCode> {
        if json_out {
            println!("{}", json!({"valid": false, "reason": reason}));
        } else {
            println!("INVALID: {reason}");
        }
        Ok(ExitCode::from(1))
    };
    let (_, checked) = checked_checkpoint(&src, &ctx.genesis)?;
    let (cp, q) = match checked {
        Ok(v) => v,
        Err(r) => return fail(format!("the log's checkpoint is not valid: {r}")),
    };
    let size = cp.body.tree_size;
    let started = std::time::Instant::now();
    let mut walk = TileWalk::new(size, cp.body.root);
    let mut next_sequence = vec![1u64; ctx.genesis.members.len()];
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut checked_entries = 0u64;
    let mut check_batch = |batch: Vec<Vec<u8>>, first: u64| -> std::result::Result<(), String> {
        for (i, v) in verifier.verify_batch(batch).into_iter().enumerate() {
            let index = first + i as u64;
            let v = v.map_err(|e| format!("entry {index}: {}: {}", e.field(), e.rule()))?;
            let body = &v.leaf().attestation.body;
            let m = ctx.genesis.member_index(&body.attester).map(usize::from).unwrap_or(usize::MAX);
            let expected = next_sequence.get(m).copied().unwrap_or(0);
            if body.sequence != expected {
                return Err(format!(
                    "entry {index}: {} sequence {} where {expected} is next (R-sequence rule)",
                    body.attester, body.sequence
                ));
            }
            if let Some(s) = next_sequence.get_mut(m) {
                *s += 1;
            }
        }
        Ok(())
    };
    for tile in tiles::tiles_of(size, true) {
        let bytes = tiles::fetch_tile(&src, &tile)?;
        let entries = match walk.check(&tile, &bytes) {
            Ok(e) => e,
            Err(e) => return fail(e.to_string()),
        };
        batch.extend(entries.iter().map(|e| e.to_vec()));
        if batch.len() >= VERIFY_BATCH_ENTRIES_MAX {
            let n = batch.len() as u64;
            if let Err(r) = check_batch(std::mem::take(&mut batch), checked_entries) {
                return fail(r);
            }
            checked_entries += n;
        }
    }
    let n = batch.len() as u64;
    if let Err(r) = check_batch(std::mem::take(&mut batch), checked_entries) {
        return fail(r);
    }
    checked_entries += n;
    let tiles_checked = walk.tiles;
    if let Err(e) = walk.finish() {
        return fail(e.to_string());
    }
    let secs = started.elapsed().as_secs_f64();
    let rate = if secs > 0.0 { checked_entries as f64 / secs } else { 0.0 };
    if json_out {
        println!(
            "{}",
            json!({"valid": true, "tree_size": size, "height": cp.body.height, "tiles": tiles_checked,
                   "entries": checked_entries, "signers": q.signers, "seconds": secs, "attestations_per_second": rate})
        );
    } else {
        println!(
            "VALID: {} attestations from the tiles of {} ({} tiles), under the checkpoint of height {} signed by {} of {} validators; \
             every tile matches the signed root, every entry is a member's validly signed attestation in sequence. \
             {:.0} attestations/s. (Block headers, times and earlier certificates are not in tiles: verify --data-dir checks those.)",
            checked_entries,
            src.describe(),
            tiles_checked,
            cp.body.height,
            q.signers.len(),
            q.validators,
            rate
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The leaf index of attestation `id` found by reading the entry bundles in order (a linear
/// scan: tiles carry no index by id), with its bytes.
pub fn find_entry(src: &Tiles, size: u64, id: &credence_ledger::attestation::AttestationId) -> Result<(u64, Vec<u8>)> {
    for n in 0..size.div_ceil(tiles::TILE_WIDTH) {
        let Some(tile) = Tile::in_tree(TileKind::Entries, n, size) else { break };
        let bytes = tiles::fetch_tile(src, &tile)?;
        for (i, e) in tiles::parse_entry_bundle(&tile, &bytes)?.into_iter().enumerate() {
            let Ok(leaf) = credence_ledger::block::Leaf::from_bytes(e.to_vec()) else { continue };
            if leaf.id == *id {
                return Ok((n * tiles::TILE_WIDTH + i as u64, leaf.bytes));
            }
        }
    }
    bail!("attestation {id} is not among the log's first {size} entries")
}
