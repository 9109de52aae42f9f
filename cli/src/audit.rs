//! Auditor commands: `checkpoint` (fetch and keep a cosigned checkpoint), `audit` (was history only appended to?), `prove` (write a proof bundle) and `verify-bundle` (check one offline).
//!
//! Exit codes: 0 when the check passed, 1 when it found a problem (a forged or under-signed
//! checkpoint, a rewritten history, an invalid bundle), 2 when it could not be carried out
//! (bad arguments, an unreachable node, an unreadable file).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use credence_ledger::checkpoint::{CHECKPOINT_BYTES_MAX, Checkpoint, QuorumReport};
use credence_ledger::genesis::Genesis;
use credence_ledger::merkle::{self, NodeHash};
use credence_ledger::witness::{WitnessKey, parse_witnessed_note};
use credence_node::api::views::{
    AttestationView, ConsistencyProofView, GovernanceView, InclusionProofView, SetChangesView,
};
use credence_node::bundle::{
    self, BUNDLE_BYTES_MAX, Bundle, CheckedNote, KeyIntroduction, SetChange, SetInForce, WitnessPolicy,
    check_witnessed_with, decode_hashes,
};
use serde_json::json;

use crate::http::Conn;
use crate::query::{self, get_json, node_error};
use crate::tiles::Tiles;

#[derive(Args, Debug)]
pub struct CheckpointArgs {
    /// The node's API.
    #[arg(long, default_value = query::NODE_DEFAULT)]
    node: String,
    /// Use this data directory offline instead of a node (a stopped node's).
    #[arg(long, conflicts_with = "node")]
    data_dir: Option<PathBuf>,
    /// Also write the checkpoint (the signed note, exactly as served) to this file, for a later `credence audit --since`.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Check the signatures against this genesis (default: the node's own genesis, which only
    /// shows the node is self-consistent).
    #[arg(long)]
    genesis: Option<PathBuf>,
    #[command(flatten)]
    policy: WitnessPolicyArgs,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// The auditor's witness policy: which outside witnesses it trusts, and how many must cosign.
#[derive(Args, Debug, Default)]
pub struct WitnessPolicyArgs {
    /// Also trust this witness: its C2SP verifier key `name+keyid+base64` (as `credence
    /// witness` prints it and `credence governance status` lists the witnesses governance
    /// named); repeat for several. Genesis's witnesses are always trusted; a cosignature line
    /// by a key not trusted is ignored, one by a trusted key that does not verify is refused.
    #[arg(long = "witness", value_name = "VKEY")]
    witness: Vec<String>,
    /// Require the checkpoint to carry valid `cosignature/v1` lines of at least this many of the
    /// trusted witnesses (genesis's and --witness's; C2SP tlog-witness): outside parties that saw
    /// no other history. 0: witnesses are not required.
    #[arg(long, default_value_t = 0)]
    witnesses: usize,
}

impl WitnessPolicyArgs {
    /// The policy: genesis's witnesses and the --witness keys.
    pub fn policy(&self, genesis: &Genesis) -> Result<WitnessPolicy> {
        let extra = self
            .witness
            .iter()
            .map(|v| WitnessKey::parse_vkey(v).map_err(|e| anyhow::anyhow!("--witness '{v}': {e}")))
            .collect::<Result<Vec<_>>>()?;
        WitnessPolicy::with_extra(genesis, &extra).map_err(|e| anyhow::anyhow!("--witness: {e}"))
    }
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// A checkpoint saved earlier by `credence checkpoint --save`.
    #[arg(long)]
    since: PathBuf,
    /// The chain's genesis file, obtained out of band: the validators whose signatures count.
    #[arg(long)]
    genesis: PathBuf,
    /// The node's API.
    #[arg(long, default_value = query::NODE_DEFAULT)]
    node: String,
    /// Use this data directory offline instead of a node (a stopped node's).
    #[arg(long, conflicts_with = "node")]
    data_dir: Option<PathBuf>,
    /// Audit a log's C2SP tiles instead of a node's API: an http:// URL prefix or a directory
    /// (e.g. made by `credence mirror`); the consistency proof is computed from the tiles.
    #[arg(long, conflicts_with = "data_dir")]
    tiles: Option<String>,
    /// The witnesses trusted and required for the current checkpoint.
    #[command(flatten)]
    policy: WitnessPolicyArgs,
    /// After a successful audit, replace the --since file with the node's current checkpoint.
    #[arg(long)]
    update: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct ProveArgs {
    /// Attestation id: 64 hex digits.
    id: String,
    /// Where to write the bundle (JSON).
    #[arg(long)]
    out: PathBuf,
    /// The node's API.
    #[arg(long, default_value = query::NODE_DEFAULT)]
    node: String,
    /// Use this data directory offline instead of a node (a stopped node's).
    #[arg(long, conflicts_with = "node")]
    data_dir: Option<PathBuf>,
    /// Check the bundle against this genesis before writing it (default: the node's genesis;
    /// required with --tiles).
    #[arg(long)]
    genesis: Option<PathBuf>,
    /// Build the bundle from a log's C2SP tiles instead of a node's API: an http:// URL prefix
    /// or a directory. The attestation is found by reading the entry bundles in order and the
    /// inclusion proof is computed from the tiles.
    #[arg(long, conflicts_with = "data_dir", requires = "genesis")]
    tiles: Option<String>,
    /// The witnesses trusted (counted in the message) and required for the bundle's checkpoint,
    /// as `verify-bundle` takes them: with `--witnesses K`, no bundle is written unless K of them
    /// cosigned its checkpoint. Other witnesses' lines are kept in the bundle, not counted.
    #[command(flatten)]
    policy: WitnessPolicyArgs,
    #[command(flatten)]
    access: crate::access::AccessArgs,
    #[command(flatten)]
    read: crate::access::ReadArgs,
}

#[derive(Args, Debug)]
pub struct VerifyBundleArgs {
    /// The bundle file.
    file: PathBuf,
    /// The chain's genesis file, obtained out of band.
    #[arg(long)]
    genesis: PathBuf,
    /// Also check that the bundle's checkpoint is a prefix of the log's current one, served as
    /// C2SP tiles at this http:// URL prefix or directory (a consistency proof computed from
    /// the tiles): the bundle's history is the one the log still serves.
    #[arg(long)]
    tiles: Option<String>,
    /// The witnesses trusted and required for the bundle's checkpoint.
    #[command(flatten)]
    policy: WitnessPolicyArgs,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// The genesis from `path`, or the node's own.
fn genesis_from(path: Option<&Path>, conn: &mut Conn) -> Result<Genesis> {
    match path {
        Some(p) => Genesis::load(p).with_context(|| format!("--genesis: {}", p.display())),
        None => query::node_genesis(conn),
    }
}

/// What was audited, for messages: the data directory, or the node's URL.
fn source(node: &str, data_dir: Option<&Path>) -> String {
    data_dir.map_or_else(|| node.to_string(), |d| d.display().to_string())
}

/// The node's latest checkpoint note, as served.
fn fetch_note(conn: &mut Conn) -> Result<String> {
    let r = conn.get("/v1/checkpoint")?;
    if r.status != 200 {
        bail!("{}", node_error(r.status, &r.body));
    }
    Ok(r.text())
}

/// The node's certified chain of validator-set changes up to `height` (`GET /v1/set-changes`).
fn fetch_set_changes(conn: &mut Conn, height: u64) -> Result<Vec<SetChange>> {
    let view: SetChangesView = get_json(conn, &format!("/v1/set-changes?height={height}"))?;
    if view.height != height {
        bail!("the node's set changes lead to height {}, not {height}", view.height);
    }
    Ok(view.set_changes)
}

/// Checks a checkpoint note against the validators in force at its height: the node serves the
/// set changes up to that height, and they are walked from `genesis` (nothing the node says is
/// trusted). The error is the rule broken.
fn check_note_via_node(
    note: &str,
    genesis: &Genesis,
    policy: &WitnessPolicy,
    conn: &mut Conn,
) -> Result<Result<(CheckedNote, SetInForce), String>> {
    let height = match parse_witnessed_note(note) {
        Ok((cp, _)) => cp.body.height,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let changes = fetch_set_changes(conn, height)?;
    Ok(check_note_with_changes(note, genesis, policy, &changes))
}

/// [`check_note_via_node`] with the set changes at hand.
pub(crate) fn check_note_with_changes(
    note: &str,
    genesis: &Genesis,
    policy: &WitnessPolicy,
    changes: &[SetChange],
) -> Result<(CheckedNote, SetInForce), String> {
    let set = bundle::walk_set_changes(genesis, changes).map_err(|e| e.to_string())?;
    let (unchecked, _) = parse_witnessed_note(note).map_err(|e| e.to_string())?;
    if unchecked.body.height < set.from_height {
        return Err(format!(
            "set_changes: reach a set in force from height {} but the checkpoint is for height {}",
            set.from_height, unchecked.body.height
        ));
    }
    let checked = check_witnessed_with(note, genesis, &set.validators, policy)
        .map_err(|r| format!("{r} (checked against the validators in force since height {})", set.from_height))?;
    Ok((checked, set))
}

fn checkpoint_json(cp: &Checkpoint, q: &QuorumReport) -> serde_json::Value {
    json!({
        "origin": cp.body.origin,
        "tree_size": cp.body.tree_size,
        "root": B64.encode(cp.body.root),
        "height": cp.body.height,
        "round": cp.body.round,
        "block_hash": hex::encode(cp.body.block_hash),
        "signers": q.signers,
        "needed": q.needed,
        "validators": q.validators,
    })
}

/// Writes `text` to `path` through a temporary file and a rename, so a crash leaves the old file or the new one.
fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("partial");
    fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Reads a file of at most `max` bytes.
fn read_bounded(path: &Path, max: usize, what: &str) -> Result<Vec<u8>> {
    let len = fs::metadata(path).with_context(|| format!("{what}: cannot read {}", path.display()))?.len();
    if len > max as u64 {
        bail!("{what}: {} is {len} bytes; at most {max} allowed", path.display());
    }
    fs::read(path).with_context(|| format!("{what}: cannot read {}", path.display()))
}

pub fn checkpoint(a: &CheckpointArgs) -> Result<ExitCode> {
    let (url, _local) = crate::local::endpoint(&a.node, a.data_dir.as_deref())?;
    let mut conn = Conn::new(&url)?;
    let genesis = genesis_from(a.genesis.as_deref(), &mut conn)?;
    let policy = a.policy.policy(&genesis)?;
    let note = fetch_note(&mut conn)?;
    let checked = check_note_via_node(&note, &genesis, &policy, &mut conn)?
        .and_then(|(c, set)| bundle::require_witnesses(&policy, &c.witnesses, a.policy.witnesses).map(|()| (c, set)));
    let (cp, q, witnesses, set) = match checked {
        Ok((c, set)) => (c.checkpoint, c.quorum, c.witnesses, set),
        Err(reason) => {
            if a.json {
                println!("{}", json!({"valid": false, "reason": reason}));
            } else {
                println!("INVALID checkpoint from {}: {reason}", source(&a.node, a.data_dir.as_deref()));
            }
            return Ok(ExitCode::from(1));
        }
    };
    if let Some(path) = &a.save {
        write_atomic(path, &note)?;
    }
    if a.json {
        let mut v = checkpoint_json(&cp, &q);
        v["valid"] = json!(true);
        v["validators_since"] = json!(set.from_height);
        v["witnesses"] = json!(witnesses);
        v["note"] = json!(note);
        println!("{v}");
    } else {
        print!("{note}");
        println!(
            "\nvalid: tree size {} at height {}, signed by {} of {} validators ({} needed): {}",
            cp.body.tree_size,
            cp.body.height,
            q.signers.len(),
            q.validators,
            q.needed,
            q.signers.join(", ")
        );
        if set.from_height > 1 {
            println!(
                "(the validators in force since height {}, reached from genesis through certified set changes)",
                set.from_height
            );
        }
        if !policy.keys().is_empty() {
            println!(
                "cosigned by {} of the {} trusted witnesses ({} required){}",
                witnesses.len(),
                policy.names().len(),
                a.policy.witnesses,
                if witnesses.is_empty() { String::new() } else { format!(": {}", witnesses.join(", ")) }
            );
        }
        if a.genesis.is_none() {
            println!("(checked against the node's own genesis; pass --genesis for an independent check)");
        }
        if let Some(path) = &a.save {
            println!("saved to {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What an audit concluded.
#[derive(Debug)]
pub(crate) enum Verdict {
    AppendOnly,
    /// A checkpoint (the saved one or the node's) is forged, under-signed or not this chain's.
    BadCheckpoint(String),
    /// History is not an extension of the saved checkpoint.
    Violation(String),
}

/// Whether the ledger of checkpoint `new` extends that of `old` (both already verified):
/// not smaller, not lower, no other block at the same height, and a consistency proof
/// (from `fetch_proof(m, n)`, asked only when needed) that verifies against the two
/// signed roots.
pub(crate) fn judge(
    old: &Checkpoint,
    new: &Checkpoint,
    fetch_proof: impl FnOnce(u64, u64) -> Result<Vec<NodeHash>>,
) -> Result<Verdict> {
    let (m, n) = (old.body.tree_size, new.body.tree_size);
    if n < m {
        return Ok(Verdict::Violation(format!(
            "the ledger shrank: the saved checkpoint has {m} attestations, the node's has {n}"
        )));
    }
    if new.body.height < old.body.height {
        return Ok(Verdict::Violation(format!("the height went back from {} to {}", old.body.height, new.body.height)));
    }
    if old.body.height == new.body.height && old.body.block_hash != new.body.block_hash {
        return Ok(Verdict::Violation(format!("two different blocks were certified at height {}", old.body.height)));
    }
    let proof = if m == n || m == 0 { Vec::new() } else { fetch_proof(m, n)? };
    // The roots come from the signed checkpoints, never from the node's answer.
    match merkle::verify_consistency(m, n, &proof, &old.body.root, &new.body.root) {
        Ok(()) => Ok(Verdict::AppendOnly),
        Err(e) => Ok(Verdict::Violation(format!(
            "the ledger at {n} attestations does not extend the saved one at {m}: history was rewritten ({e})"
        ))),
    }
}

pub fn audit(a: &AuditArgs) -> Result<ExitCode> {
    let genesis = Genesis::load(&a.genesis).with_context(|| format!("--genesis: {}", a.genesis.display()))?;
    let policy = a.policy.policy(&genesis)?;
    let old_note = String::from_utf8(read_bounded(&a.since, CHECKPOINT_BYTES_MAX, "--since")?)
        .with_context(|| format!("--since: {} is not UTF-8 text", a.since.display()))?;
    let tiles = a.tiles.as_deref().map(|t| Tiles::open(t, None)).transpose()?;
    let (mut conn, _local, new_note, from) = match &tiles {
        Some(t) => (None, None, t.checkpoint()?, t.describe()),
        None => {
            let (url, local) = crate::local::endpoint(&a.node, a.data_dir.as_deref())?;
            let mut conn = Conn::new(&url)?;
            let note = fetch_note(&mut conn)?;
            (Some(conn), local, note, source(&a.node, a.data_dir.as_deref()))
        }
    };

    let mut report = json!({"since": a.since.display().to_string(), "node": from});
    let verdict = (|| -> Result<Verdict> {
        // Each checkpoint is checked against the set in force at its height, through the set
        // changes the node serves or the tiles publish (walked from genesis).
        let mut check = |note: &str| -> Result<Result<CheckedNote, String>> {
            match (conn.as_mut(), &tiles) {
                (Some(c), _) => Ok(check_note_via_node(note, &genesis, &policy, c)?.map(|(checked, _)| checked)),
                (None, Some(t)) => Ok(crate::tiles::check_note(t, note, &genesis, &policy)?.0),
                (None, None) => Ok(check_witnessed_with(note, &genesis, &genesis.verifier_keys(), &policy)),
            }
        };
        let (old, old_q) = match check(&old_note)? {
            Ok(c) => (c.checkpoint, c.quorum),
            Err(r) => return Ok(Verdict::BadCheckpoint(format!("the saved checkpoint is not valid: {r}"))),
        };
        report["from"] = checkpoint_json(&old, &old_q);
        let (new, new_q) = match check(&new_note)? {
            Ok(c) => {
                report["witnesses"] = json!(c.witnesses);
                if let Err(r) = bundle::require_witnesses(&policy, &c.witnesses, a.policy.witnesses) {
                    return Ok(Verdict::BadCheckpoint(format!("the node's current checkpoint: {r}")));
                }
                (c.checkpoint, c.quorum)
            }
            Err(r) => {
                return Ok(Verdict::BadCheckpoint(format!("the node's current checkpoint is not valid: {r}")));
            }
        };
        report["to"] = checkpoint_json(&new, &new_q);
        let proof_hashes = std::cell::Cell::new(0usize);
        let verdict = judge(&old, &new, |m, n| {
            let proof = match (&tiles, conn.as_mut()) {
                (Some(t), _) => {
                    let tree = crate::tiles::tree(t, n);
                    merkle::consistency_proof(m, n, &tree).map_err(|e| crate::tiles::tree_error(&tree, e))?
                }
                (None, Some(conn)) => {
                    let view: ConsistencyProofView =
                        get_json(conn, &format!("/v1/proofs/consistency?from={m}&to={n}"))?;
                    decode_hashes("proof", &view.proof)?
                }
                (None, None) => bail!("no node and no tiles to ask for a consistency proof"),
            };
            proof_hashes.set(proof.len());
            Ok(proof)
        })?;
        report["proof_hashes"] = json!(proof_hashes.get());
        Ok(verdict)
    })()?;

    let ok = matches!(verdict, Verdict::AppendOnly);
    report["append_only"] = json!(ok);
    if let Verdict::Violation(reason) | Verdict::BadCheckpoint(reason) = &verdict {
        report["reason"] = json!(reason);
    }
    if ok && a.update {
        write_atomic(&a.since, &new_note)?;
        report["updated"] = json!(true);
    }
    if a.json {
        println!("{report}");
    } else {
        match &verdict {
            Verdict::AppendOnly => {
                let f = &report["from"];
                let t = &report["to"];
                println!(
                    "APPEND-ONLY: the ledger at tree size {} (height {}) extends the saved checkpoint at tree size {} (height {}).",
                    t["tree_size"], t["height"], f["tree_size"], f["height"]
                );
                println!(
                    "Both checkpoints carry valid signatures of more than 2/3 of the validators in force at their heights ({} and {} of {}); the consistency proof ({} hashes) was checked locally.",
                    f["signers"].as_array().map_or(0, Vec::len),
                    t["signers"].as_array().map_or(0, Vec::len),
                    t["validators"],
                    report["proof_hashes"]
                );
                if a.policy.witnesses > 0 {
                    println!(
                        "The current checkpoint is cosigned by {} of the trusted witnesses ({} required): {}.",
                        report["witnesses"].as_array().map_or(0, Vec::len),
                        a.policy.witnesses,
                        report["witnesses"].as_array().map_or(String::new(), |w| w
                            .iter()
                            .filter_map(|v| v.as_str())
                            .collect::<Vec<_>>()
                            .join(", "))
                    );
                }
                if a.update {
                    println!("{} now holds the current checkpoint.", a.since.display());
                }
            }
            Verdict::Violation(reason) => println!("NOT APPEND-ONLY: {reason}"),
            Verdict::BadCheckpoint(reason) => println!("CHECKPOINT REFUSED: {reason}"),
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

pub fn prove(a: &ProveArgs) -> Result<ExitCode> {
    if let Some(t) = &a.tiles {
        return prove_from_tiles(a, t);
    }
    let (url, _local) = crate::local::endpoint(&a.node, a.data_dir.as_deref())?;
    let mut conn = a.access.connect(&url)?;
    let genesis = genesis_from(a.genesis.as_deref(), &mut conn)?;
    let policy = a.policy.policy(&genesis)?;
    let id = query::seg(&a.id);
    // The attestation first, then the checkpoint: the checkpoint then covers it.
    let q = a.read.query()?.replacen('&', "?", 1);
    let view: AttestationView = get_json(&mut conn, &format!("/v1/attestations/{id}{q}"))?;
    let Some(leaf_index) = view.leaf_index.filter(|_| view.status == "committed") else {
        bail!("attestation {} is pending, not committed yet; try again after the next block", a.id);
    };
    let note = fetch_note(&mut conn)?;
    let (cp, cosigs) = parse_witnessed_note(&note).context("the node's checkpoint")?;
    let proof: InclusionProofView =
        get_json(&mut conn, &format!("/v1/proofs/inclusion/{id}?tree_size={}", cp.body.tree_size))?;
    if proof.leaf_index != leaf_index || proof.tree_size != cp.body.tree_size {
        bail!(
            "the node's proof is for leaf {} of {}, not leaf {leaf_index} of {}",
            proof.leaf_index,
            proof.tree_size,
            cp.body.tree_size
        );
    }
    let Some(encoded) = &view.attestation else {
        bail!(
            "the node withholds attestation {id} from this reader (docs/ACCESS.md): give --access-key and --purpose under a live consent"
        );
    };
    let bytes = B64.decode(encoded).context("the node's attestation bytes")?;
    let path = decode_hashes("proof", &proof.proof)?;
    let changes = fetch_set_changes(&mut conn, cp.body.height)?;
    let height = view.height.unwrap_or(cp.body.height);
    let keys = key_records(&mut conn, &view.attester, height, cp.body.tree_size)?;
    let b = Bundle::new(&genesis, &bytes, leaf_index, &path, &cp, &cosigs, changes)?.with_attester_keys(keys);
    // Never hand out a bundle that would not verify under the policy given.
    let report = checked_bundle(&b, &genesis, &policy, a.policy.witnesses)
        .context("the node's data does not make a valid bundle")?;
    write_atomic(&a.out, &b.to_json())?;
    println!(
        "wrote {}: attestation {} at leaf {} of {}, checkpoint of height {} signed by {} of {} validators, {}, {} validator-set changes",
        a.out.display(),
        report.id,
        report.leaf_index,
        report.tree_size,
        report.checkpoint_height,
        report.signers.len(),
        report.validators,
        cosigned_text(&policy, &report.witnesses),
        report.set_changes
    );
    Ok(ExitCode::SUCCESS)
}

/// `bundle::verify_with` under `policy`, then at least `k` of its witnesses cosigned.
fn checked_bundle(
    b: &Bundle,
    genesis: &Genesis,
    policy: &WitnessPolicy,
    k: usize,
) -> Result<bundle::Report, bundle::BundleError> {
    let r = bundle::verify_with(b, genesis, policy)?;
    bundle::require_witnesses(policy, &r.witnesses, k)
        .map_err(|rule| bundle::BundleError { field: "checkpoint", rule })?;
    Ok(r)
}

/// For `prove`'s message: "cosigned by 2 of 2 trusted witnesses (w.example/a, w.example/b; lines
/// of other witnesses kept, not counted)", counting `witnesses` (those of `policy` whose lines
/// verified) against the policy's names (genesis's and `--witness`'s).
fn cosigned_text(policy: &WitnessPolicy, witnesses: &[String]) -> String {
    let counted = if witnesses.is_empty() { String::new() } else { format!("{}; ", witnesses.join(", ")) };
    format!(
        "cosigned by {} of {} trusted witnesses ({counted}lines of other witnesses kept, not counted)",
        witnesses.len(),
        policy.names().len()
    )
}

/// The records that named `attester`'s keys up to `height` (added by governance, a replacement
/// for a revoked key, its own rotations), oldest first, each with its inclusion proof in the
/// tree of `tree_size`: none while its genesis key is in force.
fn key_records(conn: &mut Conn, attester: &str, height: u64, tree_size: u64) -> Result<Vec<KeyIntroduction>> {
    let gov: GovernanceView = get_json(conn, "/v1/governance")?;
    let ids: Vec<String> = gov
        .applied
        .iter()
        .filter(|a| a.at_height <= height && a.change.member.as_deref() == Some(attester))
        .filter(|a| matches!(a.change.kind.as_str(), "add-member" | "revoke-key" | "key-rotation"))
        .map(|a| a.record.clone())
        .collect();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let id = query::seg(&id);
        let v: AttestationView = get_json(conn, &format!("/v1/attestations/{id}"))?;
        let Some(record) = v.attestation else { bail!("the node withholds governance record {id}") };
        let proof: InclusionProofView = get_json(conn, &format!("/v1/proofs/inclusion/{id}?tree_size={tree_size}"))?;
        out.push(KeyIntroduction { record, leaf_index: proof.leaf_index, inclusion_path: proof.proof });
    }
    Ok(out)
}

/// `prove --tiles`: the attestation found in the entry bundles, its inclusion proof computed
/// from the hash tiles, under the log's current checkpoint.
fn prove_from_tiles(a: &ProveArgs, tiles_arg: &str) -> Result<ExitCode> {
    let Some(g) = &a.genesis else { bail!("--tiles needs --genesis") };
    let genesis = Genesis::load(g).with_context(|| format!("--genesis: {}", g.display()))?;
    let id = credence_ledger::hash::Hash::from_hex("id", &a.id)
        .map(credence_ledger::hash::HashOf::from_hash)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let policy = a.policy.policy(&genesis)?;
    let src = Tiles::open(tiles_arg, a.access.load()?)?;
    let (_, checked, changes) = crate::tiles::checked_checkpoint(&src, &genesis, &policy)?;
    let checked = checked.map_err(|r| anyhow::anyhow!("the log's checkpoint: {r}"))?;
    let cp = checked.checkpoint;
    let size = cp.body.tree_size;
    let (leaf_index, leaf) = crate::tiles::find_entry(&src, size, &id)?;
    let tree = crate::tiles::tree(&src, size);
    let prove = |index| merkle::inclusion_proof(index, size, &tree).map_err(|e| crate::tiles::tree_error(&tree, e));
    let mut keys = Vec::new();
    for (index, record) in crate::tiles::key_path(&src, size, leaf_index, &leaf, &genesis)? {
        keys.push(KeyIntroduction::new(&record.bytes, index, &prove(index)?));
    }
    let path = prove(leaf_index)?;
    let b = Bundle::new(&genesis, &leaf.bytes, leaf_index, &path, &cp, &checked.cosignatures, changes)?
        .with_attester_keys(keys);
    let report = checked_bundle(&b, &genesis, &policy, a.policy.witnesses)
        .context("the log's tiles do not make a valid bundle")?;
    write_atomic(&a.out, &b.to_json())?;
    println!(
        "wrote {}: attestation {} at leaf {} of {} (from the tiles of {}), checkpoint of height {} signed by {} of {} validators, {}, {} validator-set changes",
        a.out.display(),
        report.id,
        report.leaf_index,
        report.tree_size,
        src.describe(),
        report.checkpoint_height,
        report.signers.len(),
        report.validators,
        cosigned_text(&policy, &report.witnesses),
        report.set_changes
    );
    Ok(ExitCode::SUCCESS)
}

/// With `--tiles`: the bundle's checkpoint must be a prefix of the log's current one.
fn bundle_still_in_log(
    b: &Bundle,
    genesis: &Genesis,
    policy: &WitnessPolicy,
    tiles_arg: &str,
) -> Result<Result<u64, String>> {
    let src = Tiles::open(tiles_arg, None)?;
    let note = src.checkpoint()?;
    // The log's checkpoint is checked against the set its published set changes reach or,
    // for a log that publishes none, the set the bundle's own changes reach (already walked
    // by `bundle::verify`).
    let set = bundle::walk_set_changes(genesis, &b.set_changes)?;
    let checked = crate::tiles::check_note(&src, &note, genesis, policy)?.0;
    let checked = checked.or_else(|r| check_witnessed_with(&note, genesis, &set.validators, policy).map_err(|_| r));
    let now = match checked {
        Ok(c) => c.checkpoint,
        Err(r) => return Ok(Err(format!("the log's current checkpoint is not valid: {r}"))),
    };
    let (then, _) = parse_witnessed_note(&b.checkpoint).context("the bundle's checkpoint")?;
    let tree = crate::tiles::tree(&src, now.body.tree_size);
    let verdict = judge(&then, &now, |m, n| {
        merkle::consistency_proof(m, n, &tree).map_err(|e| crate::tiles::tree_error(&tree, e))
    })?;
    Ok(match verdict {
        Verdict::AppendOnly => Ok(now.body.tree_size),
        Verdict::Violation(r) | Verdict::BadCheckpoint(r) => Err(format!("the log no longer extends the bundle: {r}")),
    })
}

pub fn verify_bundle(a: &VerifyBundleArgs) -> Result<ExitCode> {
    let genesis = Genesis::load(&a.genesis).with_context(|| format!("--genesis: {}", a.genesis.display()))?;
    let policy = a.policy.policy(&genesis)?;
    let bytes = read_bounded(&a.file, BUNDLE_BYTES_MAX, "bundle")?;
    let parsed = Bundle::parse(&bytes);
    let mut result = match &parsed {
        Ok(b) => checked_bundle(b, &genesis, &policy, a.policy.witnesses),
        Err(e) => Err(bundle::BundleError { field: e.field, rule: e.rule.clone() }),
    };
    let mut in_log = None;
    if let (Ok(b), Ok(_), Some(t)) = (&parsed, &result, &a.tiles) {
        match bundle_still_in_log(b, &genesis, &policy, t)? {
            Ok(size) => in_log = Some(size),
            Err(rule) => result = Err(bundle::BundleError { field: "checkpoint", rule }),
        }
    }
    if let Some(size) = in_log
        && !a.json
    {
        println!(
            "The log at {} still extends the bundle's checkpoint (now {size} attestations).",
            a.tiles.as_deref().unwrap_or_default()
        );
    }
    match result {
        Ok(r) => {
            if a.json {
                println!(
                    "{}",
                    json!({"valid": true, "id": r.id, "attester": r.attester, "leaf_index": r.leaf_index,
                           "tree_size": r.tree_size, "checkpoint_height": r.checkpoint_height,
                           "signers": r.signers, "needed": r.needed, "validators": r.validators,
                           "witnesses": r.witnesses, "set_changes": r.set_changes})
                );
            } else {
                println!(
                    "VALID: attestation {} by {} is leaf {} of the ledger's first {} attestations, \
                     under a checkpoint (height {}) signed by {} of {} validators ({} needed): {}; \
                     cosigned by {} of {} trusted witnesses{}; validators reached from genesis through {} certified set changes",
                    r.id,
                    r.attester,
                    r.leaf_index,
                    r.tree_size,
                    r.checkpoint_height,
                    r.signers.len(),
                    r.validators,
                    r.needed,
                    r.signers.join(", "),
                    r.witnesses.len(),
                    policy.names().len(),
                    if r.witnesses.is_empty() { String::new() } else { format!(": {}", r.witnesses.join(", ")) },
                    r.set_changes
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if a.json {
                println!("{}", json!({"valid": false, "field": e.field, "reason": e.rule}));
            } else {
                println!("INVALID: {e}");
            }
            Ok(ExitCode::from(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use credence_ledger::demo::{ChainBuilder, EXAMPLE_GENESIS_TIME_MS};
    use credence_ledger::store::{MemStore, Store};
    use credence_node::api::StoreView;

    /// A chain of three blocks of `per_block` attestations from the demo genesis of seed 3.
    fn chain(per_block: usize) -> MemStore {
        let mut b = ChainBuilder::new(3, EXAMPLE_GENESIS_TIME_MS).unwrap();
        let mut store = MemStore::new(b.genesis());
        for _ in 0..3 {
            store.commit(&b.next_block(per_block).unwrap()).unwrap();
        }
        store
    }

    fn cp(store: &MemStore, height: u64) -> Checkpoint {
        store.certificate(height).unwrap().unwrap()
    }

    fn proof_from(store: &MemStore) -> impl FnOnce(u64, u64) -> Result<Vec<NodeHash>> + '_ {
        move |m, n| Ok(merkle::consistency_proof(m, n, &StoreView(store))?)
    }

    fn violation(v: Verdict) -> String {
        match v {
            Verdict::Violation(reason) => reason,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn growth_is_append_only_and_every_other_history_is_named() {
        let a = chain(4);
        // The same genesis and validators, another history (five records a block).
        let b = chain(5);
        assert!(matches!(judge(&cp(&a, 1), &cp(&a, 3), proof_from(&a)).unwrap(), Verdict::AppendOnly));
        assert!(matches!(judge(&cp(&a, 2), &cp(&a, 2), proof_from(&a)).unwrap(), Verdict::AppendOnly));
        assert!(violation(judge(&cp(&a, 3), &cp(&a, 1), proof_from(&a)).unwrap()).contains("shrank"));
        assert!(violation(judge(&cp(&a, 2), &cp(&b, 2), proof_from(&b)).unwrap()).contains("two different blocks"));
        assert!(violation(judge(&cp(&a, 2), &cp(&b, 3), proof_from(&b)).unwrap()).contains("rewritten"));
        // A node answering with a proof of its own making cannot pass it off either.
        let forged = |_, _| Ok(vec![[7u8; 32]; 3]);
        assert!(violation(judge(&cp(&a, 1), &cp(&a, 3), forged).unwrap()).contains("rewritten"));
    }

    #[test]
    fn a_height_that_goes_back_is_refused() {
        // Empty blocks: the tree does not grow, the height does.
        let mut b = ChainBuilder::new(3, EXAMPLE_GENESIS_TIME_MS).unwrap();
        let mut store = MemStore::new(b.genesis());
        store.commit(&b.next_block(4).unwrap()).unwrap();
        store.commit(&b.next_block(0).unwrap()).unwrap();
        let reason = violation(judge(&cp(&store, 2), &cp(&store, 1), proof_from(&store)).unwrap());
        assert!(reason.contains("height went back"), "{reason}");
    }

    /// `prove`'s message counts the policy's witnesses that cosigned against the policy's names
    /// (genesis's and --witness's, each name once), and names the counted ones.
    #[test]
    fn prove_counts_the_witnesses_of_the_policy() {
        use credence_ledger::sig::SecretKey;
        let genesis = ChainBuilder::new(3, EXAMPLE_GENESIS_TIME_MS).unwrap().genesis().clone();
        let w = |n: &str, seed: u8| WitnessKey { name: n.into(), key: SecretKey::from_seed([seed; 32]).public() };
        let policy = WitnessPolicy::with_extra(&genesis, &[w("w.example/a", 1), w("w.example/b", 2)]).unwrap();
        assert_eq!(
            cosigned_text(&policy, &["w.example/a".into(), "w.example/b".into()]),
            "cosigned by 2 of 2 trusted witnesses (w.example/a, w.example/b; lines of other witnesses kept, not counted)"
        );
        assert_eq!(
            cosigned_text(&WitnessPolicy::genesis(&genesis), &[]),
            "cosigned by 0 of 0 trusted witnesses (lines of other witnesses kept, not counted)"
        );
        // Two keys under one name (a rotated witness) are one witness of the policy.
        let rotated = WitnessPolicy::with_extra(&genesis, &[w("w.example/a", 1), w("w.example/a", 3)]).unwrap();
        assert!(cosigned_text(&rotated, &["w.example/a".into()]).starts_with("cosigned by 1 of 1 trusted"));
    }
}
