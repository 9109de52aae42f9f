//! The simulator's governance plan: clients move the validator set 4 → 5 → 7 → 4 and name and retire outside witnesses with real governance records, proposed and approved by the validators in force.
//!
//! Stage 0 adds `val-04` as a validator and names two outside witnesses
//! ([`WITNESS_RETIRED`], [`WITNESS_KEPT`]), stage 1 adds `val-05` and `val-06`, stage 2
//! removes three validators, the first of them the proposer of the next height when
//! the stage starts (the "current proposer"), and retires [`WITNESS_RETIRED`].
//!
//! Two probes are records the rules must refuse, signed by a validator in force as any
//! proposal is: once [`WITNESS_KEPT`] is in force, an `AddWitness` of the same name with
//! another key (R054: the name is in force, for ever after, as the plan never removes it);
//! once [`WITNESS_RETIRED`]'s removal is in force, a `RemoveWitness` of it (R057: not in
//! force, for ever after, as the plan never names it again). Each is submitted on every tick
//! until a node's admission has refused it; the plan is done only then. Neither can be
//! valid at any height above the state that prompted it, so neither may ever commit
//! ([`GovPlan::probes_committed`]).
//!
//! Each client tick looks at the governance
//! state of the most advanced honest node and submits what is missing: a proposal for
//! each change not yet proposed, an approval from each validator in force that has
//! not approved an open one. A stage is reached when its changes are in force.
//! Records are signed by the validators' keys, with the sequences the stored chain
//! expects; a record lost or refused (a sequence taken by evidence, say) is simply
//! submitted again on a later tick.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use credence_ledger::attestation::{AttestationBody, AttestationId, Claim, GovernanceApproval, GovernanceProposal};
use credence_ledger::block::Leaf;
use credence_ledger::governance::{Change, GovState, MemberKey, Pending, WitnessTerm};
use credence_ledger::ids::MemberName;

use super::chain::{SimChain, validator_name};

/// Validators at genesis in a governance run.
pub const GENESIS_VALIDATORS: usize = 4;
/// Nodes that start outside the consortium and join as validators.
pub const JOINERS: usize = 3;
/// Validators removed by the last stage.
pub const REMOVED: usize = 3;
/// The set sizes the plan goes through, genesis first.
pub const SIZES: [usize; 4] = [GENESIS_VALIDATORS, GENESIS_VALIDATORS + 1, GENESIS_VALIDATORS + JOINERS, 4];
/// A proposal's life: `expires_at_ms` is this far after the block time it is made at.
pub const PROPOSAL_TTL_MS: u64 = 3_600_000;
/// Heights the plan may need after the chaos ends, on top of the target (three
/// stages of proposal, approvals and the activation delay, with retries).
pub const PLAN_HEIGHTS_MAX: u64 = 40;
/// The outside witness stage 0 names and stage 2 retires.
pub const WITNESS_RETIRED: &str = "witness.sim/a";
/// The outside witness stage 0 names for good.
pub const WITNESS_KEPT: &str = "witness.sim/b";
/// The key of the R054 probe's `AddWitness` (any key but the kept witness's).
const WITNESS_PROBE_KEY: &str = "witness.sim/b-again";
/// The rules that refuse the probes: a witness name in force (R054), a removal of a witness
/// not in force (R057).
pub const PROBE_RULES: [u16; 2] = [54, 57];

/// Where witness `name` serves `POST <url>/add-checkpoint` (never contacted: the simulator
/// runs no witness, it checks that every replica agrees on the terms).
pub fn witness_url(name: &str) -> String {
    format!("http://{}.invalid:7380", name.replace('/', "-"))
}

/// Where the plan is.
#[derive(Clone, Debug, Default)]
pub struct GovPlan {
    stage: usize,
    /// The changes of the stage under way (resolved when it starts).
    changes: Vec<Change>,
    /// The validator-set sizes reached, genesis first.
    pub sizes: Vec<usize>,
    /// The validator removed as the proposer of the next height.
    pub removed_proposer: Option<String>,
    /// Governance records submitted (with the retries).
    pub records_submitted: u64,
    /// On the agreed chain: blocks proposed by joiners, and certificate signatures of
    /// joiners (they took part in consensus once added).
    pub joiner_blocks: u64,
    pub joiner_signatures: u64,
    /// Certificate signatures of removed validators at heights after their removal (must be 0).
    pub removed_signatures: u64,
    /// Admissions that refused a probe, by [`PROBE_RULES`] (each must be above 0 for the plan
    /// to be done).
    pub probes_refused: [u64; 2],
    /// Probe records submitted (with the retries).
    pub probes_submitted: u64,
    /// Probe records on the agreed chain (must be 0).
    pub probes_committed: u64,
    /// The ids of the probe records submitted.
    probe_ids: BTreeSet<AttestationId>,
    /// The witness terms of the most advanced honest node's governance at the end.
    pub witness_terms: Vec<WitnessTerm>,
}

impl GovPlan {
    pub fn new() -> GovPlan {
        GovPlan { sizes: vec![GENESIS_VALIDATORS], ..GovPlan::default() }
    }

    /// Every stage reached and both probes refused.
    pub fn done(&self) -> bool {
        self.stages_done() && self.probes_refused.iter().all(|n| *n > 0)
    }

    fn stages_done(&self) -> bool {
        self.stage >= SIZES.len() - 1
    }

    /// One client tick. `gov` is in force at height `next` on the most advanced honest
    /// node, whose head has block time `time_ms`; `next_sequence` gives each member's
    /// next sequence there; `refused` counts the records the nodes' admission refused so
    /// far, by rule code. Returns the records to submit (encoded leaves).
    pub fn tick(
        &mut self,
        chain: &SimChain,
        gov: &GovState,
        next: u64,
        time_ms: u64,
        next_sequence: impl Fn(u16) -> Option<u64>,
        refused: &BTreeMap<u16, u64>,
    ) -> Vec<Vec<u8>> {
        for (seen, rule) in self.probes_refused.iter_mut().zip(PROBE_RULES) {
            *seen = refused.get(&rule).copied().unwrap_or(0);
        }
        loop {
            if self.stages_done() {
                break;
            }
            if self.changes.is_empty() {
                self.changes = self.resolve(chain, gov, next);
            }
            if !self.changes.iter().all(|c| in_force(gov, c)) {
                break;
            }
            self.sizes.push(gov.validator_indexes().len());
            self.stage += 1;
            self.changes.clear();
        }
        if self.done() {
            return Vec::new();
        }
        let validators: Vec<MemberName> = gov.validator_list().into_iter().map(|(n, _)| n).collect();
        let mut used: HashMap<u16, u64> = HashMap::new();
        let mut out = Vec::new();
        // Signs `claim` by `who` with its next sequence (after what this tick already signed).
        let sign = |used: &mut HashMap<u16, u64>, who: &MemberName, claim: Claim| -> Option<Leaf> {
            let member = gov.member_index(who)?;
            let node = chain.node_of(who.as_str())?;
            let first = next_sequence(member)?;
            let k = used.entry(member).or_insert(0);
            let sequence = first + *k;
            *k += 1;
            let body = AttestationBody { attester: who.clone(), sequence, issued_at_ms: time_ms, claim };
            Some(Leaf::new(body.sign(&chain.validator_key(usize::from(node)), &chain.chain_id())))
        };
        let changes = if self.stages_done() { &[][..] } else { &self.changes[..] };
        for change in changes {
            if in_force(gov, change) || scheduled(gov, change) {
                continue;
            }
            match gov.proposals.iter().find(|p| p.change == *change) {
                Some(open) => {
                    for v in &validators {
                        let approved = gov.member_index(v).is_some_and(|i| open.approvals.contains(&i));
                        if !approved {
                            let approval = Claim::GovernanceApproval(GovernanceApproval { proposal: open.id });
                            out.extend(sign(&mut used, v, approval).map(|l| l.bytes));
                        }
                    }
                }
                None => {
                    let Some(proposer) = validators.first() else { continue };
                    let expires_at_ms = time_ms + PROPOSAL_TTL_MS;
                    let proposal = GovernanceProposal { change: change.clone(), expires_at_ms };
                    let leaf = sign(&mut used, proposer, Claim::GovernanceProposal(Box::new(proposal)));
                    out.extend(leaf.map(|l| l.bytes));
                }
            }
        }
        // A probe, last: signed by a validator with nothing else in this tick, so its sequence
        // is the next one the stored chain expects and admission checks it in full.
        for (k, (change, due)) in probes(chain).iter().enumerate() {
            if self.probes_refused[k] > 0 || !due(gov, next) {
                continue;
            }
            let free = validators.iter().rev().find(|v| gov.member_index(v).is_some_and(|i| !used.contains_key(&i)));
            let Some(signer) = free.cloned() else { continue };
            let expires_at_ms = time_ms + PROPOSAL_TTL_MS;
            let proposal = GovernanceProposal { change: change.clone(), expires_at_ms };
            if let Some(leaf) = sign(&mut used, &signer, Claim::GovernanceProposal(Box::new(proposal))) {
                self.probe_ids.insert(leaf.id);
                out.push(leaf.bytes);
                self.probes_submitted += 1;
            }
        }
        self.records_submitted += out.len() as u64;
        out
    }

    /// The changes of the current stage, given what is in force at `next`.
    fn resolve(&mut self, chain: &SimChain, gov: &GovState, next: u64) -> Vec<Change> {
        let add = |i: usize| Change::AddMember {
            name: MemberName::parse("name", &validator_name(i)).unwrap_or_else(|e| unreachable!("{e}")),
            key: MemberKey::Ed25519(chain.validator_key(i).public()),
            roles: Vec::new(),
            validator: true,
        };
        match self.stage {
            0 => vec![add(GENESIS_VALIDATORS), add_witness(chain, WITNESS_RETIRED), add_witness(chain, WITNESS_KEPT)],
            1 => (GENESIS_VALIDATORS + 1..GENESIS_VALIDATORS + JOINERS).map(add).collect(),
            _ => {
                // The proposer of `next` at round 0, then the two after it in rotation.
                let list = gov.validator_list();
                let n = list.len() as u64;
                let first = (next - 1) % n;
                let removed: Vec<MemberName> =
                    (0..REMOVED as u64).map(|k| list[((first + k) % n) as usize].0.clone()).collect();
                self.removed_proposer = removed.first().map(ToString::to_string);
                let retire = Change::RemoveWitness { name: WITNESS_RETIRED.to_owned() };
                removed.into_iter().map(|name| Change::RemoveMember { name }).chain([retire]).collect()
            }
        }
    }
}

/// An `AddWitness` of `name` with its simulated key.
fn add_witness(chain: &SimChain, name: &str) -> Change {
    Change::AddWitness { name: name.to_owned(), key: chain.witness_key(name).public(), url: witness_url(name) }
}

/// When a probe is due: given the state in force at the next height on the most advanced node.
type Due = fn(&GovState, u64) -> bool;

/// The probes, in [`PROBE_RULES`] order: each change and when the rules must refuse it.
fn probes(chain: &SimChain) -> [(Change, Due); 2] {
    let duplicate = Change::AddWitness {
        name: WITNESS_KEPT.to_owned(),
        key: chain.witness_key(WITNESS_PROBE_KEY).public(),
        url: witness_url(WITNESS_PROBE_KEY),
    };
    let retired_again = Change::RemoveWitness { name: WITNESS_RETIRED.to_owned() };
    let kept: Due = |gov, next| gov.witnesses_at(next).iter().any(|w| w.name == WITNESS_KEPT);
    let retired: Due = |gov, next| witness_retired(gov, WITNESS_RETIRED, next);
    [(duplicate, kept), (retired_again, retired)]
}

/// Whether `name` had a term that ended at or before `next`, and none is in force there.
fn witness_retired(gov: &GovState, name: &str, next: u64) -> bool {
    let ended = gov.witnesses.iter().any(|w| w.name == name && w.until_height.is_some_and(|u| u <= next));
    ended && !gov.witnesses_at(next).iter().any(|w| w.name == name)
}

/// Counts, over blocks `1..=height` of an honest node's chain, what joiners and
/// removed validators did (see [`GovPlan::joiner_blocks`]) and the probes that
/// committed, and keeps the node's witness terms.
pub fn tally(
    plan: &mut GovPlan,
    gov: &GovState,
    block: impl Fn(u64) -> Option<credence_ledger::block::CertifiedBlock>,
    height: u64,
) {
    let joiner = |name: &str| (GENESIS_VALIDATORS..GENESIS_VALIDATORS + JOINERS).any(|i| validator_name(i) == name);
    plan.witness_terms.clone_from(&gov.witnesses);
    for h in 1..=height {
        let Some(cb) = block(h) else { continue };
        if joiner(cb.block.header.proposer.as_str()) {
            plan.joiner_blocks += 1;
        }
        plan.probes_committed += cb.block.leaves.iter().filter(|l| plan.probe_ids.contains(&l.id)).count() as u64;
        for s in &cb.certificate.signatures {
            if joiner(&s.key_name) {
                plan.joiner_signatures += 1;
            }
            let removed = MemberName::parse("name", &s.key_name)
                .ok()
                .and_then(|n| gov.member(&n).and_then(|m| m.removed_from))
                .is_some_and(|from| h >= from);
            if removed {
                plan.removed_signatures += 1;
            }
        }
    }
}

/// Whether `change` is in force in `gov`.
fn in_force(gov: &GovState, change: &Change) -> bool {
    match change {
        Change::AddMember { name, .. } => gov.member(name).is_some_and(|m| m.is_active() && m.validator),
        Change::RemoveMember { name } => gov.member(name).is_some_and(|m| !m.is_active()),
        Change::AddWitness { name, key, .. } => gov.witnesses.iter().any(|w| w.name == *name && w.key == *key),
        Change::RemoveWitness { name } => gov.witnesses.iter().any(|w| w.name == *name && w.until_height.is_some()),
        _ => false,
    }
}

/// Whether `change` completed and waits for its activation height.
fn scheduled(gov: &GovState, change: &Change) -> bool {
    gov.scheduled.iter().any(|s| matches!(&s.pending, Pending::Change { change: c, .. } if c == change))
}
