//! The CLI's C2SP tlog-tiles client: tiles from an `http://` prefix or a directory, `credence mirror` (copy a log's tiles, checking each), and `credence verify --tiles` (every tile, entry and signature from the tiles alone).
//!
//! Nothing fetched is trusted: a checkpoint counts only with a quorum of the validators in
//! force at its height, reached from the genesis validators through the certified set changes
//! published beside the tiles ([`SET_CHANGES_RESOURCE`], walked by `bundle::walk_set_changes`);
//! proofs computed from tiles are verified against its signed root, and a whole tree is
//! checked tile by tile against the tile above and the root (`ledger::tiles::TileWalk`) with
//! bounded memory.

use std::cell::RefCell;
use std::fs;
use std::io::Read as _;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;

use credence_ledger::attestation::Claim;
use credence_ledger::block::Leaf;
use credence_ledger::checkpoint::{CHECKPOINT_BYTES_MAX, Checkpoint, QuorumReport};
use credence_ledger::genesis::Genesis;
use credence_ledger::governance::{Change, MEMBER_KEYS_MAX, MemberKey, verify_possession};
use credence_ledger::hash::Hash;
use credence_ledger::ids::MemberName;
use credence_ledger::sig::{Domain, PublicKey, VerifyingKey};
use credence_ledger::tiles::{
    self, ENTRY_BUNDLE_BYTES_MAX, HASH_TILE_BYTES_MAX, Tile, TileKind, TileSource, TileTree, TileWalk,
};
use credence_ledger::verify::ChainContext;
use credence_node::api::views::SetChangesView;
use credence_node::bundle::{BUNDLE_BYTES_MAX, CheckedNote, SetChange, WitnessPolicy};
use credence_node::keyfile::AccessKeyFile;
use credence_node::mempool::Verifier;

use crate::http::Conn;

/// Where a log publishes its certified validator-set changes beside its tiles: a node serves
/// them at `GET /v1/set-changes` (up to its head; public), and `credence mirror` writes the
/// same JSON at this path of its copy, so a copy served by any web server has them too. A log
/// that publishes none is read as one whose genesis validators are still in force.
pub const SET_CHANGES_RESOURCE: &str = "v1/set-changes";

/// First pause before asking again for a resource answered 503; it doubles up to the next.
const BUSY_PAUSE_FIRST: std::time::Duration = std::time::Duration::from_millis(100);
const BUSY_PAUSE_MAX: std::time::Duration = std::time::Duration::from_secs(2);
/// Longest wait for one resource answered 503.
const BUSY_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(60);

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
    /// A 503 (a node's query log is busy logging a regulator's earlier entry bundles) is asked
    /// again after [`BUSY_PAUSE_FIRST`], doubling to [`BUSY_PAUSE_MAX`], for at most
    /// [`BUSY_WAIT_MAX`].
    fn get(&self, path: &str, max: usize) -> Result<Option<Vec<u8>>, String> {
        match self {
            Tiles::Http { conn, prefix, .. } => {
                let url = format!("{prefix}/{path}");
                let started = std::time::Instant::now();
                let mut pause = BUSY_PAUSE_FIRST;
                let r = loop {
                    let r = conn.borrow_mut().get(&url).map_err(|e| format!("{e:#}"))?;
                    if r.status != 503 || started.elapsed() + pause > BUSY_WAIT_MAX {
                        break r;
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(BUSY_PAUSE_MAX);
                };
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

    /// The set changes published beside the tiles ([`SET_CHANGES_RESOURCE`]) that take effect
    /// at or before `height`, oldest first; none if nothing is published. Not trusted: the
    /// caller walks them from genesis.
    pub fn set_changes(&self, height: u64) -> Result<Vec<SetChange>> {
        let what = || format!("{}: {SET_CHANGES_RESOURCE}", self.describe());
        let Some(bytes) =
            self.get(SET_CHANGES_RESOURCE, BUNDLE_BYTES_MAX).map_err(anyhow::Error::msg).with_context(what)?
        else {
            return Ok(Vec::new());
        };
        let view: SetChangesView = serde_json::from_slice(&bytes).with_context(what)?;
        Ok(view.set_changes.into_iter().filter(|c| c.height <= height).collect())
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

/// A checked checkpoint, or why it is not valid.
type Checked = std::result::Result<CheckedNote, String>;

/// `note` checked against the validators in force at its height, through the set changes
/// `tiles` publish up to that height: `Ok(Err(reason))` if it is not valid; with the changes.
pub fn check_note(
    tiles: &Tiles,
    note: &str,
    genesis: &Genesis,
    policy: &WitnessPolicy,
) -> Result<(Checked, Vec<SetChange>)> {
    let height = match credence_ledger::witness::parse_witnessed_note(note) {
        Ok((cp, _)) => cp.body.height,
        Err(e) => return Ok((Err(e.to_string()), Vec::new())),
    };
    let changes = tiles.set_changes(height)?;
    let checked = crate::audit::check_note_with_changes(note, genesis, policy, &changes).map(|(c, _)| c);
    Ok((checked, changes))
}

/// The log's checkpoint, checked as [`check_note`] does.
pub fn checked_checkpoint(
    tiles: &Tiles,
    genesis: &Genesis,
    policy: &WitnessPolicy,
) -> Result<(String, Checked, Vec<SetChange>)> {
    let note = tiles.checkpoint()?;
    let (checked, changes) = check_note(tiles, &note, genesis, policy)?;
    Ok((note, checked, changes))
}

/// The quorum part of a checked note.
fn quorum(c: Checked) -> std::result::Result<(Checkpoint, QuorumReport), String> {
    c.map(|c| (c.checkpoint, c.quorum))
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
    let policy = WitnessPolicy::genesis(&genesis);
    let (note, checked, changes) = checked_checkpoint(&src, &genesis, &policy)?;
    let (cp, q) = match quorum(checked) {
        Ok(v) => v,
        Err(r) => return refuse(format!("the log's checkpoint is not valid: {r}")),
    };
    let copy = Tiles::Dir(a.out.clone());
    let old = match read_file_bounded(&a.out.join("checkpoint"), CHECKPOINT_BYTES_MAX).map_err(anyhow::Error::msg)? {
        Some(b) => match quorum(check_note(&copy, &String::from_utf8_lossy(&b), &genesis, &policy)?.0) {
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
        let t = tree(&copy, size);
        let verdict = crate::audit::judge(old, &cp, |m, n| {
            credence_ledger::merkle::consistency_proof(m, n, &t).map_err(|e| tree_error(&t, e))
        })?;
        if let crate::audit::Verdict::Violation(reason) = verdict {
            return refuse(reason);
        }
    }
    // The set changes the checkpoint was checked with, before the checkpoint that needs them.
    let view = SetChangesView { height: cp.body.height, set_changes: changes };
    write_atomic(&a.out.join(SET_CHANGES_RESOURCE), &serde_json::to_vec(&view)?)?;
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

/// Whether `leaf`'s attestation signature verifies under `key` on the chain `chain_id`.
fn signed_by(key: &PublicKey, leaf: &Leaf, chain_id: &[u8; 32]) -> bool {
    VerifyingKey::new(key)
        .and_then(|v| v.verify(Domain::Attestation, chain_id, leaf.body_bytes(), &leaf.attestation.signature))
        .is_ok()
}

/// The keys each member may sign with as far as entries alone tell: its genesis key, then every
/// key the log's governance records named for it (a proposal adding the member or replacing a
/// revoked key, a rotation with a valid proof of possession), in log order.
///
/// Entries carry no block heights, so whether a proposal won its approvals, from which height a
/// change took effect and whether a member was removed or a key revoked since cannot be told:
/// a record signed by a named key is counted apart ([`EntriesSeen::by_named_key`]), and
/// `verify --data-dir` or `--file` replay governance in full.
#[derive(Debug, Default)]
struct NamedKeys(std::collections::HashMap<MemberName, Vec<PublicKey>>);

impl NamedKeys {
    fn from_genesis(g: &Genesis) -> NamedKeys {
        NamedKeys(g.members.iter().map(|m| (m.name.clone(), vec![m.public_key])).collect())
    }

    /// Names `key` for `member`, at most [`MEMBER_KEYS_MAX`] keys each (as governance allows).
    fn name(&mut self, member: &MemberName, key: &MemberKey) {
        let keys = self.0.entry(member.clone()).or_default();
        if keys.len() < MEMBER_KEYS_MAX && !keys.contains(key.ed25519()) {
            keys.push(*key.ed25519());
        }
    }

    /// The named key of the entry's attester that its signature verifies under, if any.
    fn signer(&self, leaf: &Leaf, chain_id: &[u8; 32]) -> Option<PublicKey> {
        let a = &leaf.attestation;
        self.0.get(&a.body.attester)?.iter().rev().copied().find(|k| signed_by(k, leaf, chain_id))
    }

    /// Takes the keys a verified entry signed by `signed_with` names.
    fn learn(&mut self, leaf: &Leaf, signed_with: PublicKey, chain_id: &Hash) {
        let body = &leaf.attestation.body;
        match &body.claim {
            Claim::GovernanceProposal(p) => match &p.change {
                Change::AddMember { name, key, .. } => self.name(name, key),
                Change::RevokeKey { name, replacement, .. } => self.name(name, replacement),
                _ => {}
            },
            Claim::KeyRotation(r) => {
                let old = MemberKey::Ed25519(signed_with);
                if verify_possession(chain_id, &body.attester, &old, &r.new_key, &r.possession).is_ok() {
                    self.name(&body.attester, &r.new_key);
                }
            }
            _ => {}
        }
    }
}

/// What `verify --tiles` found in the entries.
#[derive(Debug, Default)]
struct EntriesSeen {
    entries: u64,
    /// Entries whose signature verified under a key governance named, not the genesis key.
    by_named_key: u64,
}

/// `credence verify --tiles`: the log's checkpoint (against the validators in force at its
/// height), every tile against the tile above it and the signed root, and every entry:
/// canonical decoding, a valid signature by a genesis member's key (batched) or by a key the
/// log's governance records named for the member ([`NamedKeys`]), and each member's sequence
/// numbers contiguous from 1. What tiles do not carry (block headers, earlier certificates,
/// block times, so the rules that need them) is checked only by `verify --data-dir` or `--file`.
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
    let (_, checked, changes) = checked_checkpoint(&src, &ctx.genesis, &WitnessPolicy::genesis(&ctx.genesis))?;
    let (cp, q) = match quorum(checked) {
        Ok(v) => v,
        Err(r) => return fail(format!("the log's checkpoint is not valid: {r}")),
    };
    let size = cp.body.tree_size;
    let started = std::time::Instant::now();
    let mut walk = TileWalk::new(size, cp.body.root);
    let mut next_sequence: std::collections::HashMap<MemberName, u64> = std::collections::HashMap::new();
    let mut named = NamedKeys::from_genesis(&ctx.genesis);
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut seen = EntriesSeen::default();
    let chain_id = ctx.chain_id;
    let mut check_batch = |batch: Vec<Vec<u8>>, seen: &mut EntriesSeen| -> std::result::Result<(), String> {
        let first = seen.entries;
        let verdicts = verifier.verify_batch(batch.clone());
        for (i, (v, bytes)) in verdicts.into_iter().zip(batch).enumerate() {
            let index = first + i as u64;
            // Not under the genesis key: perhaps under one governance named.
            let (leaf, key) = match v {
                Ok(v) => {
                    let leaf = v.into_leaf();
                    let roster = ctx.genesis_roster();
                    let m = roster.member_index(&leaf.attestation.body.attester).map(usize::from);
                    let Some(key) = m.and_then(|m| roster.members.get(m)).map(|m| m.key) else {
                        return Err(format!("entry {index}: attester: not a genesis member"));
                    };
                    (leaf, key)
                }
                Err(e) => {
                    let named_signer =
                        Leaf::from_bytes(bytes).ok().and_then(|l| named.signer(&l, &chain_id.0).map(|k| (l, k)));
                    let Some(found) = named_signer else {
                        return Err(format!("entry {index}: {}: {}", e.field(), e.rule()));
                    };
                    seen.by_named_key += 1;
                    found
                }
            };
            let body = &leaf.attestation.body;
            let next = next_sequence.entry(body.attester.clone()).or_insert(1);
            if body.sequence != *next {
                return Err(format!(
                    "entry {index}: {} sequence {} where {next} is next (R-sequence rule)",
                    body.attester, body.sequence
                ));
            }
            *next += 1;
            named.learn(&leaf, key, &chain_id);
            seen.entries += 1;
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
        if batch.len() >= VERIFY_BATCH_ENTRIES_MAX
            && let Err(r) = check_batch(std::mem::take(&mut batch), &mut seen)
        {
            return fail(r);
        }
    }
    if let Err(r) = check_batch(std::mem::take(&mut batch), &mut seen) {
        return fail(r);
    }
    let tiles_checked = walk.tiles;
    if let Err(e) = walk.finish() {
        return fail(e.to_string());
    }
    let secs = started.elapsed().as_secs_f64();
    let rate = if secs > 0.0 { seen.entries as f64 / secs } else { 0.0 };
    if json_out {
        println!(
            "{}",
            json!({"valid": true, "tree_size": size, "height": cp.body.height, "tiles": tiles_checked,
                   "entries": seen.entries, "by_named_key": seen.by_named_key, "set_changes": changes.len(),
                   "signers": q.signers, "seconds": secs, "attestations_per_second": rate})
        );
    } else {
        println!(
            "VALID: {} attestations from the tiles of {} ({} tiles), under the checkpoint of height {} signed by {} of {} validators \
             in force ({} validator-set changes from genesis); every tile matches the signed root, every entry is a member's \
             validly signed attestation in sequence. {:.0} attestations/s. (Block headers, times and earlier certificates are \
             not in tiles: verify --data-dir checks those.)",
            seen.entries,
            src.describe(),
            tiles_checked,
            cp.body.height,
            q.signers.len(),
            q.validators,
            changes.len(),
            rate
        );
        if seen.by_named_key > 0 {
            println!(
                "{} of them are signed by keys the log's governance records named (new members, rotated or replacement \
                 keys); whether each change won its approvals and was in force at the record's height needs block \
                 heights: verify --data-dir checks that.",
                seen.by_named_key
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads the first `end` entries of the log of `size` in order, bundle by bundle, and hands
/// each one that decodes to `f` with its index, until `f` says to stop.
fn scan_entries(src: &Tiles, size: u64, end: u64, mut f: impl FnMut(u64, Leaf) -> ControlFlow<()>) -> Result<()> {
    let end = end.min(size);
    for n in 0..end.div_ceil(tiles::TILE_WIDTH) {
        let Some(tile) = Tile::in_tree(TileKind::Entries, n, size) else { break };
        let bytes = tiles::fetch_tile(src, &tile)?;
        for (i, e) in tiles::parse_entry_bundle(&tile, &bytes)?.into_iter().enumerate() {
            let index = n * tiles::TILE_WIDTH + i as u64;
            if index >= end {
                return Ok(());
            }
            let Ok(leaf) = Leaf::from_bytes(e.to_vec()) else { continue };
            if f(index, leaf).is_break() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The leaf index of attestation `id` found by reading the entry bundles in order (a linear
/// scan: tiles carry no index by id), with its leaf.
pub fn find_entry(src: &Tiles, size: u64, id: &credence_ledger::attestation::AttestationId) -> Result<(u64, Leaf)> {
    let mut found = None;
    scan_entries(src, size, size, |index, leaf| {
        if leaf.id == *id {
            found = Some((index, leaf));
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    })?;
    found.ok_or_else(|| anyhow::anyhow!("attestation {id} is not among the log's first {size} entries"))
}

/// `prove --tiles`'s `attester_keys`: records among the log's entries before leaf `index`
/// (the attestation `target`'s) that lead from its attester's genesis key, or from the
/// proposal that added it, to a key its signature verifies under, oldest first, with their
/// leaf indexes (the path `credence_node::bundle::verify` walks). Empty when the genesis key
/// verifies it. Entries do not tell which proposals won their approvals ([`NamedKeys`]), so
/// every key named for the attester is followed, at most [`MEMBER_KEYS_MAX`] of them, and the
/// first that verifies the target is taken.
pub fn key_path(src: &Tiles, size: u64, index: u64, target: &Leaf, genesis: &Genesis) -> Result<Vec<(u64, Leaf)>> {
    let chain_id = genesis.hash();
    let a = &target.attestation;
    let attester = &a.body.attester;
    let signs = |key: &PublicKey| signed_by(key, target, &chain_id.0);
    // Each key named for the attester so far, with the records that lead to it.
    let mut paths: Vec<(PublicKey, Vec<(u64, Leaf)>)> = Vec::new();
    if let Some(m) = genesis.member(attester) {
        if signs(&m.public_key) {
            return Ok(Vec::new());
        }
        paths.push((m.public_key, Vec::new()));
    }
    let mut found = None;
    scan_entries(src, size, index, |i, leaf| {
        let body = &leaf.attestation.body;
        let named: Vec<(PublicKey, Vec<(u64, Leaf)>)> = match &body.claim {
            Claim::GovernanceProposal(p) => match &p.change {
                // Only the first record of a path, for a member genesis does not hold.
                Change::AddMember { name, key, .. } if name == attester && genesis.member(attester).is_none() => {
                    vec![(*key.ed25519(), Vec::new())]
                }
                // After any key of the attester's.
                Change::RevokeKey { name, replacement, .. } if name == attester => paths
                    .iter()
                    .min_by_key(|(_, p)| p.len())
                    .map(|(_, p)| (*replacement.ed25519(), p.clone()))
                    .into_iter()
                    .collect(),
                _ => Vec::new(),
            },
            // Signed by the key before it, with the new key's proof of possession.
            Claim::KeyRotation(r) if &body.attester == attester => paths
                .iter()
                .filter(|(old, _)| {
                    signed_by(old, &leaf, &chain_id.0)
                        && verify_possession(&chain_id, attester, &MemberKey::Ed25519(*old), &r.new_key, &r.possession)
                            .is_ok()
                })
                .map(|(_, p)| (*r.new_key.ed25519(), p.clone()))
                .collect(),
            _ => Vec::new(),
        };
        for (key, mut path) in named {
            if paths.len() >= MEMBER_KEYS_MAX || path.len() >= MEMBER_KEYS_MAX || paths.iter().any(|(k, _)| *k == key) {
                continue;
            }
            path.push((i, leaf.clone()));
            if signs(&key) {
                found = Some(path);
                return ControlFlow::Break(());
            }
            paths.push((key, path));
        }
        ControlFlow::Continue(())
    })?;
    found.ok_or_else(|| {
        anyhow::anyhow!(
            "no key of '{attester}' named in the log's first {index} entries (its genesis key, a proposal adding it or \
             replacing a revoked key, a rotation) verifies attestation {}'s signature",
            target.id
        )
    })
}
