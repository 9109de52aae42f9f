//! `credence bench load --set-changes` (issue 11's figure): while the load runs, governance
//! adds a validator and later removes one of the original validators, and the run reports
//! the commit rate second by second, the longest gap between blocks, and the heights at
//! which each change took effect.
//!
//! # The scenario
//! 1. At `--add-at-s` into the window a fresh key is generated for `validator-N` (N = the
//!    number of validators), its node directory and `node.toml` are written as `credence init
//!    --member` would (peers: every original validator), and its `credence node` process is
//!    started: it joins from genesis and syncs. Validator 0 proposes adding it (bank role,
//!    validating); once the proposal commits, the other original validators but the one to be
//!    removed approve until the quorum in force (more than 2/3, the proposal counting as its
//!    proposer's approval) is reached.
//! 2. The run then waits (at most [`FIRST_SIGNATURE_WAIT_MAX`] after the addition is in force)
//!    for a certificate carrying the new validator's signature, and at `--remove-at-s` (or
//!    then, if later) validator 0 proposes removing the last original validator,
//!    `validator-(N−1)`; the others and the new validator approve (4 of 5 with 4 validators).
//!    The last approval is aimed: it is sent when node 0's height `h` makes the expected
//!    activation height (`h + lag +` [`ACTIVATION_DELAY_HEIGHTS`], the lag being the fewest
//!    heights from sending to commit seen on the change's proposal and first approvals) one
//!    that the set before the removal gives to the removed validator to propose (round 0), so
//!    that every node must switch to the new rotation exactly where the old one would wait for
//!    the leaver. Whether it hit is reported (`proposer_in_old_rotation`).
//! 3. Once node 0 has committed the removal's activation height, the removed node is stopped
//!    (SIGTERM), as its operator would.
//!
//! With `--join-first` the newcomer enters in two changes, as an operator can choose to: first
//! as a member that does not validate (its node may then connect and sync), and, once its node
//! is within [`CAUGHT_UP_HEIGHTS`] of node 0, a set-roles change makes it a validator. A direct
//! addition puts a node that has not synced yet into the proposer rotation: each of its turns
//! until it has caught up waits out a round-0 propose timeout (docs/BENCHMARKS.md, Governance).
//!
//! # Why the load comes from members that approve nothing
//! The load's records are signed before the clock starts with consecutive sequences per
//! attester, and a member's sequence can be used once, without gaps (R003, R004). Proposals
//! and approvals are records of validators, so a validator that attests the pre-signed load
//! cannot also approve: its governance record would take a sequence a pre-signed record holds.
//! Reserving sequences for the approvals instead would hold every later pre-signed record of
//! that validator in the mempool (ahead of a gap) until the approval is sent, at a time that
//! depends on the chain, and a removed validator's remaining records would be refused. So with
//! `--set-changes` the testnet's genesis also names N−1 members without a node (`attester-i`,
//! the service-centre role, not validating, [`crate::node::write_testnet`]): attester `i`
//! signs the load and submits it through validator `i`'s node, which stays to the end; the
//! removed validator's node serves no load, and validators only govern.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use credence_ledger::attestation::{Attestation, AttestationBody, Claim, GovernanceApproval, GovernanceProposal};
use credence_ledger::genesis::{Genesis, Role};
use credence_ledger::governance::{ACTIVATION_DELAY_HEIGHTS, Change, MemberKey};
use credence_ledger::ids::MemberName;
use credence_ledger::sig::SecretKey;
use credence_node::config::NodeConfig;
use credence_node::keyfile;
use credence_node::runtime::now_ms;
use serde_json::{Value, json};

use super::{BlockSeen, Nodes, lock_nodes};
use crate::node::{self, TestnetLayout};
use crate::{attest, http};

/// Fewest original validators the scenario runs with: after the removal at least three
/// remain besides the added one, and the removed validator approves nothing.
pub(super) const VALIDATORS_MIN: usize = 4;
/// Life of the scenario's proposals, in block time.
const PROPOSAL_TTL_MS: u64 = 3_600_000;
/// Longest wait for one of the scenario's records to commit, or for a completed change to be
/// scheduled and in force.
const COMMIT_WAIT_MAX: Duration = Duration::from_secs(60);
/// Longest wait, after the addition is in force, for a certificate signed by the added
/// validator before the removal is proposed anyway (the report then shows none).
const FIRST_SIGNATURE_WAIT_MAX: Duration = Duration::from_secs(60);
/// Longest wait for a height that aims the removal at the leaver's turn to propose; after it
/// the last approval is sent anyway.
const AIM_WAIT_MAX: Duration = Duration::from_secs(15);
/// With `--join-first`: the newcomer's node counts as caught up this close to node 0's height.
const CAUGHT_UP_HEIGHTS: u64 = 2;
/// With `--join-first`: longest wait for the newcomer's node to catch up.
const CATCH_UP_WAIT_MAX: Duration = Duration::from_secs(120);
/// How often the scenario polls node 0.
const POLL_EVERY: Duration = Duration::from_millis(50);
/// Longest wait after the run for every running node to reach node 0's height.
const AGREE_WAIT_MAX: Duration = Duration::from_secs(30);
/// Heights on each side of an activation height whose gaps are reported with the change.
const NEAR_HEIGHTS: u64 = 3;

/// An original validator as the scenario uses it.
pub(super) struct Validator {
    name: String,
    api: String,
    p2p: SocketAddr,
    key: SecretKey,
}

/// What the scenario does and with whom.
pub(super) struct Plan {
    add_at: Duration,
    remove_at: Duration,
    dir: PathBuf,
    genesis: Genesis,
    validators: Vec<Validator>,
    /// The added validator's name, p2p and API addresses.
    added: (String, SocketAddr, SocketAddr),
    /// Index in `validators` of the one removed: the last, which serves no load.
    removed: usize,
    /// Add the newcomer as a member first, and make it a validator once its node caught up.
    join_first: bool,
}

impl Plan {
    /// The plan for `layout`'s validators: the added node listens on `base_port + N` (p2p)
    /// and `base_port + 1000 + N` (API), as the testnet's next node would.
    pub(super) fn new(
        layout: &TestnetLayout,
        add_at: Duration,
        remove_at: Duration,
        base_port: u16,
        join_first: bool,
    ) -> Result<Plan> {
        let genesis = Genesis::load(&layout.dir.join("genesis.toml"))?;
        let mut validators = Vec::new();
        for (i, entry) in layout.manifest["nodes"].as_array().into_iter().flatten().enumerate() {
            if entry["validator"] != true {
                continue;
            }
            let field = |k: &str| {
                entry[k].as_str().map(str::to_string).with_context(|| format!("testnet.json: node {i} lacks {k}"))
            };
            let name = field("name")?;
            let key = keyfile::read(&layout.dir.join(format!("keys/{name}.key")))?;
            let p2p = field("p2p")?.parse().with_context(|| format!("testnet.json: node {i}'s p2p address"))?;
            validators.push(Validator { name, api: field("api")?, p2p, key });
        }
        let n = validators.len();
        if n < VALIDATORS_MIN {
            bail!("--validators: --set-changes needs at least {VALIDATORS_MIN}");
        }
        let port = |offset: usize| -> Result<SocketAddr> {
            let p =
                u16::try_from(usize::from(base_port) + offset).context("--base-port: too high for the added node")?;
            Ok(SocketAddr::from(([127, 0, 0, 1], p)))
        };
        let added = (format!("validator-{n}"), port(n)?, port(1000 + n)?);
        Ok(Plan { add_at, remove_at, dir: layout.dir.clone(), genesis, validators, added, removed: n - 1, join_first })
    }

    fn api0(&self) -> &str {
        &self.validators[0].api
    }
}

/// What the scenario shares with the run.
pub(super) struct Ctx<'a> {
    pub t0: Instant,
    /// Set on any failure of the run: the scenario stops.
    pub abort: &'a AtomicBool,
    /// Set when the run's drain is over: the scenario stops.
    pub stop: &'a AtomicBool,
    pub nodes: &'a Mutex<Nodes>,
}

impl Ctx<'_> {
    fn at_s(&self) -> f64 {
        (self.t0.elapsed().as_secs_f64() * 1000.0).round() / 1000.0
    }

    fn ended(&self, what: &str) -> Result<()> {
        if self.abort.load(Ordering::Relaxed) || self.stop.load(Ordering::Relaxed) {
            bail!("set changes: the run ended while {what}");
        }
        Ok(())
    }

    fn sleep_until(&self, at: Duration, what: &str) -> Result<()> {
        while self.t0.elapsed() < at {
            self.ended(what)?;
            std::thread::sleep(POLL_EVERY.min(at.saturating_sub(self.t0.elapsed())));
        }
        Ok(())
    }

    /// Polls `f` until it gives a value, for at most `max`.
    fn wait<T>(&self, what: &str, max: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T> {
        let deadline = Instant::now() + max;
        loop {
            self.ended(what)?;
            if let Some(v) = f() {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("set changes: timed out after {} s {what}", max.as_secs());
            }
            std::thread::sleep(POLL_EVERY);
        }
    }
}

/// A validator that signs governance records, and the node it submits through.
struct Signer<'a> {
    name: &'a str,
    key: &'a SecretKey,
    api: &'a str,
}

impl Signer<'_> {
    fn sign(&self, genesis: &Genesis, claim: Claim) -> Result<Attestation> {
        let me = MemberName::parse("member", self.name)?;
        let sequence =
            attest::next_sequence(self.api, &me).with_context(|| format!("{}'s next sequence", self.name))?;
        Ok(AttestationBody { attester: me, sequence, issued_at_ms: now_ms(), claim }.sign(self.key, &genesis.hash()))
    }

    fn submit(&self, genesis: &Genesis, claim: Claim, what: &str) -> Result<Attestation> {
        let a = self.sign(genesis, claim)?;
        attest::submit(self.api, &a, false).with_context(|| format!("set changes: {what} by {}", self.name))?;
        Ok(a)
    }
}

fn height(api: &str) -> Option<u64> {
    super::height(api)
}

/// The height of the block holding record `id`, once committed.
fn committed_height(api: &str, id: &str) -> Option<u64> {
    let r = http::get(api, &format!("/v1/proofs/inclusion/{id}")).ok().filter(|r| r.status == 200)?;
    r.json().ok()?["height"].as_u64()
}

fn governance(api: &str) -> Result<Value> {
    let r = http::get(api, "/v1/governance")?;
    if r.status != 200 {
        bail!("GET {api}/v1/governance: HTTP {}", r.status);
    }
    r.json()
}

/// (in force at, completed at) of the change proposal `id` once its quorum is complete.
fn scheduled(api: &str, id: &str) -> Option<(u64, u64)> {
    let g = governance(api).ok()?;
    ["scheduled", "applied"].iter().flat_map(|k| g[*k].as_array().cloned().unwrap_or_default()).find_map(|c| {
        (c["record"] == id).then(|| Some((c["at_height"].as_u64()?, c["completed_at"].as_u64()?))).flatten()
    })
}

/// The index of the validator that proposes `height` at round 0 in a set of `n`
/// (`consensus::types::Validators::proposer`).
pub(super) fn proposer_index(height: u64, n: usize) -> usize {
    (height.saturating_sub(1) % n.max(1) as u64) as usize
}

/// True when a last approval sent while node 0 is at `height`, recorded `lag` heights later,
/// is expected to put its change in force at a height that validator `target` of a set of `n`
/// would propose.
pub(super) fn aimed(height: u64, lag: u64, target: usize, n: usize) -> bool {
    proposer_index(height + lag + ACTIVATION_DELAY_HEIGHTS, n) == target
}

/// Proposes `change` as `proposer` and approves it by the first `approvers` up to the quorum
/// in force; with `aim`, the last approval is sent when [`aimed`] at that validator. Returns
/// the change's record for the report, once node 0 has committed its activation height.
fn enact(
    p: &Plan,
    ctx: &Ctx<'_>,
    what: &str,
    proposer: &Signer<'_>,
    approvers: &[Signer<'_>],
    change: Change,
    aim: Option<&str>,
) -> Result<Value> {
    let api0 = p.api0();
    let proposed_s = ctx.at_s();
    let claim =
        Claim::GovernanceProposal(Box::new(GovernanceProposal { change, expires_at_ms: now_ms() + PROPOSAL_TTL_MS }));
    let sent_at = height(api0).unwrap_or(0);
    let proposal = proposer.submit(&p.genesis, claim, &format!("proposing {what}"))?;
    let id = proposal.id().to_string();
    let proposal_height =
        ctx.wait(&format!("for the proposal {what} to commit"), COMMIT_WAIT_MAX, || committed_height(api0, &id))?;
    // Heights from sending to commit, as measured on this change's own records: the least seen,
    // as the last approval goes alone (the first ones are sent one after another).
    let mut lag = proposal_height.saturating_sub(sent_at).max(1);
    let gov = governance(api0).context("set changes: the set in force")?;
    let set_before: Vec<String> =
        gov["validators"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_string)).collect();
    let quorum = gov["quorum"].as_u64().context("set changes: /v1/governance has no quorum")? as usize;
    let needed = quorum.saturating_sub(1);
    if needed == 0 || approvers.len() < needed {
        bail!(
            "set changes: {what} needs {needed} approvals besides the proposer's, {} validators can give them",
            approvers.len()
        );
    }
    let approval = || Claim::GovernanceApproval(GovernanceApproval { proposal: proposal.id() });
    let mut first = Vec::with_capacity(needed - 1);
    let sent_at = height(api0).unwrap_or(0);
    for s in &approvers[..needed - 1] {
        first.push(s.submit(&p.genesis, approval(), &format!("approving {what}"))?.id().to_string());
    }
    for a in &first {
        let h =
            ctx.wait(&format!("for an approval of {what} to commit"), COMMIT_WAIT_MAX, || committed_height(api0, a))?;
        lag = lag.min(h.saturating_sub(sent_at).max(1));
    }
    let mut aimed_at = None;
    if let Some(target) = aim {
        let t = set_before
            .iter()
            .position(|v| v == target)
            .with_context(|| format!("set changes: {target} is not in the set in force"))?;
        let deadline = Instant::now() + AIM_WAIT_MAX;
        while Instant::now() < deadline {
            ctx.ended(&format!("aiming the last approval of {what}"))?;
            if let Some(h) = height(api0).filter(|&h| aimed(h, lag, t, set_before.len())) {
                aimed_at = Some(h + lag + ACTIVATION_DELAY_HEIGHTS);
                break;
            }
            std::thread::sleep(POLL_EVERY);
        }
    }
    let last_sent_s = ctx.at_s();
    approvers[needed - 1].submit(&p.genesis, approval(), &format!("approving {what}"))?;
    let (in_force, completed) =
        ctx.wait(&format!("for the quorum of {what}"), COMMIT_WAIT_MAX, || scheduled(api0, &id))?;
    let in_force_seen_s = ctx.wait(&format!("for {what} to be in force"), COMMIT_WAIT_MAX, || {
        height(api0).filter(|&h| h >= in_force).map(|_| ctx.at_s())
    })?;
    let proposer_before = set_before.get(proposer_index(in_force, set_before.len())).cloned();
    eprintln!("{:5.1} s  {what}: in force at height {in_force} (quorum in block {completed})", in_force_seen_s);
    Ok(json!({
        "change": what,
        "proposed_s": proposed_s,
        "proposal_height": proposal_height,
        "last_approval_sent_s": last_sent_s,
        "quorum_height": completed,
        "in_force_height": in_force,
        "in_force_committed_s": in_force_seen_s,
        "validators_before": set_before,
        "proposer_in_old_rotation": proposer_before,
        "aimed_in_force_height": aimed_at,
        "lag_heights": lag,
    }))
}

/// Writes the added validator's key, data directory (with the genesis) and `node.toml`, as
/// `credence init --member` would; returns its node directory.
fn write_added_node(p: &Plan, key: &SecretKey) -> Result<PathBuf> {
    let (name, p2p, api) = &p.added;
    let key_path = p.dir.join(format!("keys/{name}.key"));
    keyfile::write_private(&key_path, &keyfile::text(&format!("Credence testnet key of {name}"), key))?;
    let node_dir = p.dir.join(name);
    std::fs::create_dir_all(node_dir.join("data"))?;
    std::fs::write(node_dir.join("data/genesis.toml"), p.genesis.to_toml())?;
    let config = NodeConfig {
        member: Some(MemberName::parse("member", name)?),
        ..node::local_node_config(
            node_dir.join("data"),
            node_dir.join("data/genesis.toml"),
            key_path,
            *p2p,
            p.validators.iter().map(|v| v.p2p).collect(),
            *api,
        )
    };
    node::write_config(&node_dir.join("node.toml"), &config)?;
    Ok(node_dir)
}

/// True when block `h`'s certificate on `api` carries a signature line of `name`.
fn signed_by(api: &str, h: u64, name: &str) -> Option<bool> {
    let b = http::get(api, &format!("/v1/blocks/{h}")).ok().filter(|r| r.status == 200)?.json().ok()?;
    Some(b["certificate"].as_str()?.contains(&format!("\u{2014} {name} ")))
}

/// Runs the scenario (module doc); returns its part of the report.
pub(super) fn conduct(p: &Plan, ctx: &Ctx<'_>) -> Result<Value> {
    let api0 = p.api0().to_string();
    let (added, _, added_api) = &p.added;
    let added_api = format!("http://{added_api}");
    let removed = &p.validators[p.removed];
    ctx.sleep_until(p.add_at, "waiting to add a validator")?;
    let key = SecretKey::generate();
    let node_dir = write_added_node(p, &key)?;
    let child = node::start_node(&node_dir).with_context(|| format!("set changes: cannot start {added}'s node"))?;
    lock_nodes(ctx.nodes).add(added.clone(), added_api.clone(), child);
    let started_s = ctx.at_s();
    eprintln!("{started_s:5.1} s  started {added}'s node (joining from genesis)");
    fn signer(v: &Validator) -> Signer<'_> {
        Signer { name: &v.name, key: &v.key, api: &v.api }
    }
    let proposer = signer(&p.validators[0]);
    // Everyone but the proposer and the validator to be removed approves, the newcomer last.
    let mut approvers: Vec<Signer<'_>> =
        p.validators.iter().enumerate().filter(|&(i, _)| i != 0 && i != p.removed).map(|(_, v)| signer(v)).collect();
    let name = MemberName::parse("member", added)?;
    let change = Change::AddMember {
        name: name.clone(),
        key: MemberKey::Ed25519(key.public()),
        roles: vec![Role::Bank],
        validator: !p.join_first,
    };
    let what = if p.join_first { format!("adding {added} as a member") } else { format!("adding {added}") };
    let mut changes = vec![enact(p, ctx, &what, &proposer, &approvers, change, None)?];
    let mut caught_up = None;
    if p.join_first {
        let (h, s) = ctx.wait(&format!("for {added}'s node to catch up"), CATCH_UP_WAIT_MAX, || {
            let (h0, h) = (height(&api0)?, height(&added_api)?);
            (h + CAUGHT_UP_HEIGHTS >= h0).then(|| (h, ctx.at_s()))
        })?;
        eprintln!("{s:5.1} s  {added}'s node caught up (height {h})");
        caught_up = Some((h, s));
        let change = Change::SetRoles { name, roles: vec![Role::Bank], validator: true };
        changes.push(enact(p, ctx, &format!("making {added} a validator"), &proposer, &approvers, change, None)?);
    }
    let add_in_force = changes.last().and_then(|c| c["in_force_height"].as_u64()).unwrap_or(0);

    // The newcomer's node must sync and then vote: wait for its first signature.
    let mut next = add_in_force;
    let mut first_signed = None;
    let deadline = Instant::now() + FIRST_SIGNATURE_WAIT_MAX;
    while first_signed.is_none() && Instant::now() < deadline {
        ctx.ended(&format!("waiting for {added}'s first signature"))?;
        let tip = height(&api0).unwrap_or(0);
        while next <= tip && first_signed.is_none() {
            match signed_by(&api0, next, added) {
                Some(true) => first_signed = Some((next, ctx.at_s())),
                Some(false) => next += 1,
                None => break,
            }
        }
        std::thread::sleep(POLL_EVERY * 4);
    }
    match first_signed {
        Some((h, s)) => eprintln!("{s:5.1} s  {added} signed the certificate of block {h}"),
        None => eprintln!(
            "warning: {added} signed no certificate within {} s of its addition; removing {} anyway",
            FIRST_SIGNATURE_WAIT_MAX.as_secs(),
            removed.name
        ),
    }

    ctx.sleep_until(p.remove_at, "waiting to remove a validator")?;
    approvers.push(Signer { name: added, key: &key, api: &api0 });
    let change = Change::RemoveMember { name: MemberName::parse("member", &removed.name)? };
    let what = format!("removing {}", removed.name);
    changes.push(enact(p, ctx, &what, &proposer, &approvers, change, Some(&removed.name))?);
    let child = lock_nodes(ctx.nodes).take(&removed.name);
    if let Some(mut child) = child {
        node::stop_nodes(std::slice::from_mut(&mut child));
    }
    let stopped_s = ctx.at_s();
    eprintln!("{stopped_s:5.1} s  stopped {}'s node", removed.name);
    Ok(json!({
        "added": added,
        "removed": removed.name,
        "added_node_started_s": started_s,
        "added_first_signed_height": first_signed.map(|(h, _)| h),
        "added_first_signed_s": first_signed.map(|(_, s)| s),
        "removed_node_stopped_s": stopped_s,
        "join_first": p.join_first,
        "added_caught_up_height": caught_up.map(|(h, _)| h),
        "added_caught_up_s": caught_up.map(|(_, s)| s),
        "changes": changes,
    }))
}

/// After the run: waits (at most [`AGREE_WAIT_MAX`]) until every running node has reached the
/// height node 0 is at, then compares the block hashes of every node at that height and at
/// each change's activation height.
pub(super) fn agreement(nodes: &[(String, String)], changes: &Value) -> Result<Value> {
    let Some((_, api0)) = nodes.first() else { bail!("no node is running") };
    let target = height(api0).context("node 0 does not answer")?;
    let deadline = Instant::now() + AGREE_WAIT_MAX;
    let behind = loop {
        let behind: Vec<String> =
            nodes.iter().filter(|(_, api)| height(api).is_none_or(|h| h < target)).map(|(n, _)| n.clone()).collect();
        if behind.is_empty() || Instant::now() > deadline {
            break behind;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut heights = vec![target];
    heights.extend(changes["changes"].as_array().into_iter().flatten().filter_map(|c| c["in_force_height"].as_u64()));
    let mut compared = Vec::new();
    let mut agree = behind.is_empty();
    for h in heights {
        let hashes: Vec<Value> = nodes
            .iter()
            .map(|(_, api)| {
                http::get(api, &format!("/v1/blocks/{h}"))
                    .ok()
                    .filter(|r| r.status == 200)
                    .and_then(|r| r.json().ok())
                    .map_or(Value::Null, |b| b["hash"].clone())
            })
            .collect();
        let same = !hashes[0].is_null() && hashes.iter().all(|x| *x == hashes[0]);
        agree &= same;
        compared.push(json!({"height": h, "same": same, "hashes": nodes.iter().map(|(n, _)| n.clone()).zip(hashes).collect::<serde_json::Map<_, _>>()}));
    }
    Ok(json!({"agree": agree, "final_height": target, "behind": behind, "compared": compared}))
}

/// The validator sets in force and their first heights, from node 0's `/v1/governance`
/// (`[{"from_height", "validators"}]`, oldest first).
pub(super) fn epochs(api0: &str) -> Result<Value> {
    let g = governance(api0).context("set changes: the validator-set history")?;
    let epochs: Vec<Value> = g["epochs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| json!({"from_height": e["from_height"], "validators": e["validators"]}))
        .collect();
    Ok(Value::Array(epochs))
}

/// The validator that proposes `height` at round 0 by `epochs` (the set in force there, in
/// its order), if known.
pub(super) fn round0_proposer(epochs: &Value, height: u64) -> Option<String> {
    let epoch = epochs.as_array()?.iter().rev().find(|e| e["from_height"].as_u64().is_some_and(|f| f <= height))?;
    let set = epoch["validators"].as_array()?;
    set.get(proposer_index(height, set.len()))?.as_str().map(str::to_string)
}

/// The longest gap between consecutive blocks' header times within [`NEAR_HEIGHTS`] of each
/// change's activation height, added to each change.
pub(super) fn gaps_near_changes(changes: &mut Value, blocks: &[BlockSeen]) {
    for c in changes["changes"].as_array_mut().into_iter().flatten() {
        let Some(at) = c["in_force_height"].as_u64() else { continue };
        let near: Vec<&BlockSeen> =
            blocks.iter().filter(|b| b.height + NEAR_HEIGHTS >= at && b.height <= at + NEAR_HEIGHTS).collect();
        let longest = near.windows(2).map(|w| w[1].time_ms.saturating_sub(w[0].time_ms)).max();
        c["longest_gap_near_ms"] = json!(longest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rotation_and_the_aim_follow_the_consensus_proposer() {
        // Block 1, round 0: the first validator; then round-robin.
        assert_eq!((1..=6).map(|h| proposer_index(h, 5)).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 0]);
        // Sent at height h with a lag of 2: recorded in block h + 2, in force two heights later.
        let n = 5;
        let target = 3;
        let hits: Vec<u64> = (1..=12).filter(|&h| aimed(h, 2, target, n)).collect();
        assert_eq!(hits, [5, 10], "in force at 9 and 14, both validator 3's turn of five");
        for h in hits {
            assert_eq!(proposer_index(h + 2 + ACTIVATION_DELAY_HEIGHTS, n), target);
        }
        // A record that commits in the next block: aim one height later (in force at 4, 9, 14).
        assert_eq!((1..=12).filter(|&h| aimed(h, 1, target, n)).collect::<Vec<_>>(), [1, 6, 11]);
    }

    #[test]
    fn the_round0_proposer_follows_the_set_in_force_at_each_height() {
        let epochs = json!([
            {"from_height": 1, "validators": ["v0", "v1", "v2", "v3"]},
            {"from_height": 9, "validators": ["v0", "v1", "v2", "v3", "v4"]},
            {"from_height": 20, "validators": ["v0", "v1", "v2", "v4"]},
        ]);
        let at = |h| round0_proposer(&epochs, h);
        assert_eq!(at(8).as_deref(), Some("v3"), "(8 - 1) mod 4 of the genesis set");
        assert_eq!(at(10).as_deref(), Some("v4"), "(10 - 1) mod 5 once the addition is in force");
        assert_eq!(at(20).as_deref(), Some("v4"), "(20 - 1) mod 4 once v3 left: v4 is third");
        assert_eq!(at(0), None);
    }

    #[test]
    fn gaps_near_a_change_only_count_blocks_around_its_height() {
        let block = |height, time_ms| BlockSeen { height, time_ms, ours: 0, records: 0 };
        // A 5 s gap far before the change, a 1.2 s one into its activation height.
        let blocks = vec![
            block(1, 0),
            block(2, 5_000),
            block(3, 5_100),
            block(4, 5_200),
            block(5, 5_300),
            block(6, 5_400),
            block(7, 5_500),
            block(8, 6_700),
            block(9, 6_800),
        ];
        let mut changes = json!({"changes": [{"in_force_height": 8}, {"in_force_height": null}]});
        gaps_near_changes(&mut changes, &blocks);
        assert_eq!(changes["changes"][0]["longest_gap_near_ms"], 1_200);
        assert!(changes["changes"][1].get("longest_gap_near_ms").is_none());
    }
}
