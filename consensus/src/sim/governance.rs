//! The simulator's governance plan: clients move the validator set 4 → 5 → 7 → 4 with real governance records, proposed and approved by the validators in force.
//!
//! Stage 0 adds `val-04` as a validator, stage 1 adds `val-05` and `val-06`, stage 2
//! removes three validators, the first of them the proposer of the next height when
//! the stage starts (the "current proposer"). Each client tick looks at the governance
//! state of the most advanced honest node and submits what is missing: a proposal for
//! each change not yet proposed, an approval from each validator in force that has
//! not approved an open one. A stage is reached when its changes are in force.
//! Records are signed by the validators' keys, with the sequences the stored chain
//! expects; a record lost or refused (a sequence taken by evidence, say) is simply
//! submitted again on a later tick.

use std::collections::HashMap;

use credence_ledger::attestation::{AttestationBody, Claim, GovernanceApproval, GovernanceProposal};
use credence_ledger::block::Leaf;
use credence_ledger::governance::{Change, GovState, MemberKey, Pending};
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
}

impl GovPlan {
    pub fn new() -> GovPlan {
        GovPlan { sizes: vec![GENESIS_VALIDATORS], ..GovPlan::default() }
    }

    pub fn done(&self) -> bool {
        self.stage >= SIZES.len() - 1
    }

    /// One client tick. `gov` is in force at height `next` on the most advanced honest
    /// node, whose head has block time `time_ms`; `next_sequence` gives each member's
    /// next sequence there. Returns the records to submit (encoded leaves).
    pub fn tick(
        &mut self,
        chain: &SimChain,
        gov: &GovState,
        next: u64,
        time_ms: u64,
        next_sequence: impl Fn(u16) -> Option<u64>,
    ) -> Vec<Vec<u8>> {
        loop {
            if self.done() {
                return Vec::new();
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
        let validators: Vec<MemberName> = gov.validator_list().into_iter().map(|(n, _)| n).collect();
        let mut used: HashMap<u16, u64> = HashMap::new();
        let mut out = Vec::new();
        let mut sign = |who: &MemberName, claim: Claim| {
            let Some(member) = gov.member_index(who) else { return };
            let Some(node) = chain.node_of(who.as_str()) else { return };
            let Some(first) = next_sequence(member) else { return };
            let k = used.entry(member).or_insert(0);
            let sequence = first + *k;
            *k += 1;
            let body = AttestationBody { attester: who.clone(), sequence, issued_at_ms: time_ms, claim };
            out.push(Leaf::new(body.sign(&chain.validator_key(usize::from(node)), &chain.chain_id())).bytes);
        };
        for change in &self.changes {
            if in_force(gov, change) || scheduled(gov, change) {
                continue;
            }
            match gov.proposals.iter().find(|p| p.change == *change) {
                Some(open) => {
                    for v in &validators {
                        let approved = gov.member_index(v).is_some_and(|i| open.approvals.contains(&i));
                        if !approved {
                            sign(v, Claim::GovernanceApproval(GovernanceApproval { proposal: open.id }));
                        }
                    }
                }
                None => {
                    let Some(proposer) = validators.first() else { continue };
                    let expires_at_ms = time_ms + PROPOSAL_TTL_MS;
                    let proposal = GovernanceProposal { change: change.clone(), expires_at_ms };
                    sign(proposer, Claim::GovernanceProposal(Box::new(proposal)));
                }
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
            0 => vec![add(GENESIS_VALIDATORS)],
            1 => (GENESIS_VALIDATORS + 1..GENESIS_VALIDATORS + JOINERS).map(add).collect(),
            _ => {
                // The proposer of `next` at round 0, then the two after it in rotation.
                let list = gov.validator_list();
                let n = list.len() as u64;
                let first = (next - 1) % n;
                let removed: Vec<MemberName> =
                    (0..REMOVED as u64).map(|k| list[((first + k) % n) as usize].0.clone()).collect();
                self.removed_proposer = removed.first().map(ToString::to_string);
                removed.into_iter().map(|name| Change::RemoveMember { name }).collect()
            }
        }
    }
}

/// Counts, over blocks `1..=height` of an honest node's chain, what joiners and
/// removed validators did (see [`GovPlan::joiner_blocks`]).
pub fn tally(
    plan: &mut GovPlan,
    gov: &GovState,
    block: impl Fn(u64) -> Option<credence_ledger::block::CertifiedBlock>,
    height: u64,
) {
    let joiner = |name: &str| (GENESIS_VALIDATORS..GENESIS_VALIDATORS + JOINERS).any(|i| validator_name(i) == name);
    for h in 1..=height {
        let Some(cb) = block(h) else { continue };
        if joiner(cb.block.header.proposer.as_str()) {
            plan.joiner_blocks += 1;
        }
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
        _ => false,
    }
}

/// Whether `change` completed and waits for its activation height.
fn scheduled(gov: &GovState, change: &Change) -> bool {
    gov.scheduled.iter().any(|s| matches!(&s.pending, Pending::Change { change: c, .. } if c == change))
}
