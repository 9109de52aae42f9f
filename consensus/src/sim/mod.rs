//! The deterministic simulator: n production replica cores on a seeded, faulty virtual network, with invariants checked on every run.
//!
//! One seed fixes everything: the network's character (latency, drops, duplicates,
//! slow links that reorder), the fault plan (partitions that heal, crashes and
//! restarts, crashes between any two of a node's actions), which validators are
//! byzantine and how ([`Behaviour::BYZANTINE`]: equivocating, invalid blocks,
//! silence, wrong clocks, tampering relays, sync floods), and every random choice
//! after that. Time is virtual; the run is a loop over a queue of
//! timed events ordered by (time, insertion number), so the same seed gives the
//! same run, message for message, and the same [`SimReport::final_state_hash`].
//!
//! A run has a chaos phase (faults injected) then a calm one (partitions healed,
//! every honest node up, few drops). It checks, besides the invariants in
//! [`check`]: progress whenever a quorum of honest nodes is up and connected
//! (no stall longer than [`STALL_MS`]), and that every honest node reaches the
//! target height within a deadline after the chaos ends.
//!
//! A governance run ([`SimConfig::governance`]) also runs three nodes outside the
//! consortium, and its clients change the validator set 4 → 5 → 7 → 4, name two
//! outside witnesses and retire one with real governance records under the same faults,
//! and submit witness changes the rules must refuse ([`governance`]); the invariants are
//! checked against the set in force at each height, every honest node must hold the same
//! witness terms after each height, and the plan must complete.

pub mod chain;
pub mod check;
pub mod governance;
pub mod instant;
pub mod node;
pub mod rng;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

use credence_ledger::hash::Hash;
use credence_ledger::store::MemStore;

use crate::ValidatorIndex;
use chain::{ChainError, SIM_GENESIS_TIME_MS, SimChain, Workload};
use check::Observer;
use governance::GovPlan;
pub use node::Behaviour;
use node::{NetMsg, SimNode};
use rng::Rng;

/// A quorum of honest nodes up and connected for this long must commit a new height.
pub const STALL_MS: u64 = 30_000;
/// After the chaos ends, each missing height gets this much virtual time, plus [`DEADLINE_SLACK_MS`].
pub const DEADLINE_PER_HEIGHT_MS: u64 = 5_000;
pub const DEADLINE_SLACK_MS: u64 = 30_000;
/// Clients submit the next records of each attester this often.
pub const SUBMIT_MS: u64 = 150;
/// Records per attester offered in one submission (from the lowest not yet committed).
pub const SUBMIT_WINDOW: u64 = 4;
/// A committed block's time is at most this far behind the honest clocks at its commit.
pub const BLOCK_TIME_LAG_MAX_MS: u64 = 2 * STALL_MS;

/// One simulation's parameters.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub validators: usize,
    /// Every honest node must store this many blocks.
    pub heights: u64,
    /// Byzantine validators, at most f = (n − 1) / 3.
    pub byzantine: usize,
    /// Their behaviours, cycled; empty: drawn from the seed.
    pub kinds: Vec<Behaviour>,
    /// Change the validator set by governance during the run (see the module docs).
    pub governance: bool,
}

impl SimConfig {
    pub fn new(seed: u64, validators: usize, heights: u64, byzantine: usize) -> SimConfig {
        SimConfig { seed, validators, heights, byzantine, kinds: Vec::new(), governance: false }
    }

    /// A governance run: [`governance::GENESIS_VALIDATORS`] validators at genesis,
    /// joiners, and the plan 4 → 5 → 7 → 4.
    pub fn governance(seed: u64, heights: u64, byzantine: usize) -> SimConfig {
        SimConfig { governance: true, ..SimConfig::new(seed, governance::GENESIS_VALIDATORS, heights, byzantine) }
    }

    /// The errors [`run`] would report, without running.
    pub fn check(&self) -> Result<(), SimError> {
        let n = self.validators;
        if !(1..=credence_ledger::genesis::VALIDATORS_MAX).contains(&n) {
            return Err(SimError::Chain(ChainError::Validators(n)));
        }
        let f = (n - 1) / 3;
        if self.byzantine > f {
            return Err(SimError::TooManyByzantine { got: self.byzantine, f, n });
        }
        if self.heights == 0 {
            return Err(SimError::NoHeights);
        }
        if self.kinds.contains(&Behaviour::Honest) {
            return Err(SimError::HonestKind);
        }
        if self.governance && n != governance::GENESIS_VALIDATORS {
            return Err(SimError::GovernanceValidators { got: n, expected: governance::GENESIS_VALIDATORS });
        }
        Ok(())
    }
}

/// What a run found.
#[derive(Clone, Debug)]
pub struct SimReport {
    pub seed: u64,
    pub validators: usize,
    pub byzantine: Vec<&'static str>,
    pub heights_target: u64,
    /// The lowest height stored by an honest node at the end.
    pub heights_committed: u64,
    pub safety_violations: Vec<String>,
    pub liveness_failures: Vec<String>,
    /// SHA-256 over every node's head and sign state and the agreed chain.
    pub final_state_hash: Hash,
    pub virtual_ms: u64,
    pub events: u64,
    pub stats: Stats,
    /// A governance run's plan: the validator-set sizes reached, genesis first.
    pub governance: Option<GovPlan>,
}

impl SimReport {
    pub fn ok(&self) -> bool {
        self.safety_violations.is_empty() && self.liveness_failures.is_empty()
    }
}

/// Counters of one run.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub messages_sent: u64,
    pub messages_dropped: u64,
    /// Messages a replica judged invalid (not forwarded): bad signatures, tampered blocks.
    pub messages_rejected: u64,
    pub validations_failed: u64,
    pub sync_refused: u64,
    pub crashes: u64,
    pub partitions: u64,
    pub sync_requests: u64,
    pub blocks_synced: u64,
    /// Sync answers refused for a block that did not decode or verify (tampering relays').
    pub sync_answers_bad: u64,
    pub evidence_reported: u64,
    pub evidence_committed: u64,
    pub refused_signatures: u64,
    /// Compact proposals the nodes filled from their mempools on arrival, filled later as
    /// gossip brought the missing records, and dropped unfilled ([`crate::compact`]).
    pub compact_filled: u64,
    pub compact_filled_later: u64,
    pub compact_dropped: u64,
    /// Compact proposals their proposers sent again whole for want of a polka.
    pub compact_sent_whole: u64,
    pub max_round: u32,
    /// Records the nodes' admission refused under a ledger rule, by rule code (R054 → 54).
    pub rule_refusals: BTreeMap<u16, u64>,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("byzantine validators must be at most f = {f} for {n} validators, got {got}")]
    TooManyByzantine { got: usize, f: usize, n: usize },
    #[error("heights must be at least 1")]
    NoHeights,
    #[error("byzantine kinds must be byzantine, not honest")]
    HonestKind,
    #[error("a governance run starts with {expected} validators, got {got}")]
    GovernanceValidators { got: usize, expected: usize },
}

/// The network's character for one seed (per mille probabilities, milliseconds).
#[derive(Clone, Debug)]
struct NetParams {
    latency_max: u64,
    drop_chaos: u64,
    drop_calm: u64,
    duplicate: u64,
    slow: u64,
    slow_max: u64,
    chaos_ms: u64,
    fault_every_ms: u64,
}

impl NetParams {
    fn draw(rng: &mut Rng) -> NetParams {
        NetParams {
            latency_max: rng.range(2, 60),
            drop_chaos: rng.range(0, 150),
            drop_calm: rng.range(0, 10),
            duplicate: rng.range(0, 50),
            slow: rng.range(0, 80),
            slow_max: rng.range(100, 1_500),
            chaos_ms: rng.range(2_000, 15_000),
            fault_every_ms: rng.range(300, 3_000),
        }
    }
}

#[derive(Debug)]
enum Event {
    Deliver { to: ValidatorIndex, from: ValidatorIndex, msg: NetMsg },
    Wake { node: ValidatorIndex, incarnation: u64 },
    Submit,
    Restart { node: ValidatorIndex },
    Fault,
    Heal,
    ChaosEnd,
}

#[derive(Debug)]
struct Scheduled {
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Everything a node driver may touch besides itself.
#[derive(Debug)]
pub struct Env {
    pub now: u64,
    pub rng: Rng,
    pub chain: Arc<SimChain>,
    pub workload: Workload,
    pub observer: Observer,
    pub stats: Stats,
    queue: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    net: NetParams,
    chaos: bool,
    /// Partition side of each node, while a partition lasts.
    partition: Option<Vec<bool>>,
    /// Nodes that crashed since the run loop last looked.
    crashed: Vec<ValidatorIndex>,
}

impl Env {
    fn push(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled { at, seq: self.seq, event }));
    }

    /// Puts a message on the wire: maybe dropped, maybe duplicated, delayed (sometimes a lot).
    pub fn send(&mut self, from: ValidatorIndex, to: ValidatorIndex, msg: NetMsg) {
        self.stats.messages_sent += 1;
        let drop = if self.chaos { self.net.drop_chaos } else { self.net.drop_calm };
        if self.rng.chance(drop) {
            self.stats.messages_dropped += 1;
            return;
        }
        let copies = if self.rng.chance(self.net.duplicate) { 2 } else { 1 };
        for _ in 0..copies {
            let mut delay = self.rng.range(1, self.net.latency_max);
            if self.rng.chance(self.net.slow) {
                delay += self.rng.range(50, self.net.slow_max);
            }
            self.push(self.now + delay, Event::Deliver { to, from, msg: msg.clone() });
        }
    }

    /// Puts a message on the wire with the least latency (a relay racing the original).
    pub fn send_now(&mut self, from: ValidatorIndex, to: ValidatorIndex, msg: NetMsg) {
        self.stats.messages_sent += 1;
        self.push(self.now + 1, Event::Deliver { to, from, msg });
    }

    /// The node's replica wants to be woken at `at` (virtual ms).
    pub fn schedule_wake(&mut self, node: ValidatorIndex, incarnation: u64, at: u64) {
        self.push(at, Event::Wake { node, incarnation });
    }

    /// Which peer a node asks for blocks: any other, at random (as the node rotates).
    pub fn peer_for_sync(&mut self, node: ValidatorIndex) -> ValidatorIndex {
        let n = self.chain.n() as u64;
        if n == 1 {
            return node;
        }
        let k = self.rng.below(n - 1) as ValidatorIndex;
        if k >= node { k + 1 } else { k }
    }

    fn on_crash(&mut self, node: ValidatorIndex) {
        self.crashed.push(node);
    }
}

/// Runs one simulation to the target height (or its deadline) and reports.
pub fn run(cfg: &SimConfig) -> Result<SimReport, SimError> {
    cfg.check()?;
    let n = cfg.validators;
    let chain = if cfg.governance {
        SimChain::with_joiners(cfg.seed, n, governance::JOINERS)?
    } else {
        SimChain::new(cfg.seed, n)?
    };
    let chain = Arc::new(chain);
    // Nodes: the genesis validators, then any joiners (honest, outside the consortium).
    let total = chain.n();
    let mut plan = cfg.governance.then(GovPlan::new);
    let mut rng = Rng::new(cfg.seed);
    let net = NetParams::draw(&mut rng);
    let mut behaviours = vec![Behaviour::Honest; total];
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    const KINDS: [Behaviour; 9] = Behaviour::BYZANTINE;
    for (k, &i) in order.iter().take(cfg.byzantine).enumerate() {
        let drawn = KINDS[rng.below(KINDS.len() as u64) as usize];
        behaviours[i] = if cfg.kinds.is_empty() { drawn } else { cfg.kinds[k % cfg.kinds.len()] };
    }
    let honest: Vec<bool> = behaviours.iter().map(|b| *b == Behaviour::Honest).collect();
    // Honest clocks drift from the real time by less than half the PBTS precision.
    let drift_max = chain.genesis().time.precision_ms / 2;
    let mut nodes: Vec<SimNode> = (0..total)
        .map(|i| {
            let drift = rng.range(0, drift_max);
            SimNode::new(i as ValidatorIndex, behaviours[i], drift, MemStore::new(chain.genesis()))
        })
        .collect();
    let mut env = Env {
        now: SIM_GENESIS_TIME_MS + 1_000,
        workload: Workload::new(cfg.seed, &chain),
        observer: Observer::new(
            honest.clone(),
            (0..total).map(chain::validator_name).collect(),
            &chain.consensus,
            BLOCK_TIME_LAG_MAX_MS,
        ),
        stats: Stats::default(),
        queue: BinaryHeap::new(),
        seq: 0,
        chaos: true,
        partition: None,
        crashed: Vec::new(),
        rng: rng.fork(),
        chain: Arc::clone(&chain),
        net,
    };
    let start = env.now;
    let chaos_end = start + env.net.chaos_ms;
    env.push(chaos_end, Event::ChaosEnd);
    let first_fault = start + env.rng.range(0, env.net.fault_every_ms);
    env.push(first_fault, Event::Fault);
    env.push(start + SUBMIT_MS, Event::Submit);
    for node in &mut nodes {
        node.start(&mut env);
    }

    let plan_heights = if cfg.governance { governance::PLAN_HEIGHTS_MAX } else { 0 };
    let event_budget = 100_000 + 20_000 * (cfg.heights + plan_heights) * total as u64;
    let mut events = 0u64;
    let mut deadline = u64::MAX;
    let mut connected_since: Option<u64> = None;
    let mut liveness = Vec::new();
    let mut pruned_to = 0;
    let min_honest =
        |nodes: &[SimNode]| nodes.iter().filter(|x| honest[usize::from(x.index)]).map(SimNode::height).min();
    loop {
        if min_honest(&nodes).is_none_or(|h| h >= cfg.heights) && plan.as_ref().is_none_or(GovPlan::done) {
            break;
        }
        let Some(Reverse(Scheduled { at, event, .. })) = env.queue.pop() else {
            liveness.push("no more events: every node is idle".to_owned());
            break;
        };
        env.now = at;
        events += 1;
        let mut topology_changed = false;
        match event {
            Event::Deliver { to, from, msg } => {
                let cut = env.partition.as_ref().is_some_and(|s| s[usize::from(from)] != s[usize::from(to)]);
                if cut {
                    env.stats.messages_dropped += 1;
                } else {
                    nodes[usize::from(to)].on_deliver(&mut env, from, msg);
                }
            }
            Event::Wake { node, incarnation } => nodes[usize::from(node)].on_wake(&mut env, incarnation),
            Event::Submit => {
                submit(&mut env, &nodes);
                if let Some(plan) = plan.as_mut() {
                    submit_governance(&mut env, &nodes, plan);
                }
                env.push(env.now + SUBMIT_MS, Event::Submit);
            }
            Event::Restart { node } => {
                nodes[usize::from(node)].start(&mut env);
                topology_changed = true;
            }
            Event::Fault => {
                if env.chaos {
                    inject_fault(&mut env, &mut nodes, &honest);
                    let next = env.now + env.rng.range(1, 2 * env.net.fault_every_ms);
                    env.push(next, Event::Fault);
                    topology_changed = true;
                }
            }
            Event::Heal => {
                env.partition = None;
                topology_changed = true;
            }
            Event::ChaosEnd => {
                env.chaos = false;
                env.partition = None;
                for node in &mut nodes {
                    node.crash_after_actions = None;
                    node.start(&mut env);
                }
                let missing = cfg.heights - min_honest(&nodes).unwrap_or(0).min(cfg.heights) + plan_heights;
                deadline = env.now + missing * DEADLINE_PER_HEIGHT_MS + DEADLINE_SLACK_MS;
                topology_changed = true;
            }
        }
        // Crashes by the fault plan (restart later) or right after a persist.
        for node in std::mem::take(&mut env.crashed) {
            let down = env.rng.range(50, 4_000);
            env.push(env.now + down, Event::Restart { node });
            topology_changed = true;
        }
        // The set in force changes with commits in a governance run.
        if topology_changed || cfg.governance {
            let up = quorum_connected(&env, &nodes, &honest);
            connected_since = match (up, connected_since) {
                (true, None) => Some(env.now),
                (true, since) => since,
                (false, _) => None,
            };
        }
        if let Some(since) = connected_since
            && env.now.saturating_sub(since.max(env.observer.best_at_ms)) > STALL_MS
            && liveness.is_empty()
        {
            liveness.push(format!(
                "stall: a quorum of honest nodes was up and connected for {} ms without a new height (best {}): {}",
                STALL_MS,
                env.observer.best_height,
                describe(&nodes)
            ));
            break;
        }
        if env.now > deadline {
            liveness.push(format!(
                "deadline: {} ms after the chaos ended, below the target {}: {}",
                env.now - chaos_end,
                cfg.heights,
                describe(&nodes)
            ));
            break;
        }
        if events >= event_budget {
            liveness
                .push(format!("event budget of {event_budget} exhausted at heights {:?}", heights(&nodes, &honest)));
            break;
        }
        let low = min_honest(&nodes).unwrap_or(0);
        if low >= pruned_to + 16 {
            pruned_to = low.saturating_sub(2);
            env.observer.prune_below(pruned_to);
        }
    }

    let heights_committed = min_honest(&nodes).unwrap_or(0);
    if heights_committed < cfg.heights && liveness.is_empty() {
        liveness.push(format!("honest nodes stopped at heights {:?}", heights(&nodes, &honest)));
    }
    if let Some(p) = plan.as_mut()
        && let Some(best) = nodes.iter().filter(|x| x.honest()).max_by_key(|x| x.height())
    {
        governance::tally(p, &best.governance(&chain), |h| best.block(h), best.height());
    }
    if let Some(p) = &plan
        && !p.done()
        && liveness.is_empty()
    {
        liveness.push(format!("the governance plan stopped after the set sizes {:?}", p.sizes));
    }
    env.stats.evidence_committed = env.observer.evidence_committed;
    env.stats.max_round = env.observer.max_round;
    env.stats.refused_signatures += nodes.iter().map(SimNode::refused_live).sum::<u64>();
    for node in &nodes {
        node.count_compact(&mut env.stats);
    }
    let final_state_hash = state_hash(cfg, &nodes, &env, events);
    Ok(SimReport {
        seed: cfg.seed,
        validators: n,
        byzantine: behaviours.iter().filter(|b| **b != Behaviour::Honest).map(|b| b.name()).collect(),
        heights_target: cfg.heights,
        heights_committed,
        safety_violations: env.observer.safety.clone(),
        liveness_failures: liveness,
        final_state_hash,
        virtual_ms: env.now - start,
        events,
        stats: env.stats,
        governance: plan,
    })
}

fn describe(nodes: &[SimNode]) -> String {
    nodes.iter().map(SimNode::describe).collect::<Vec<_>>().join("; ")
}

fn heights(nodes: &[SimNode], honest: &[bool]) -> Vec<u64> {
    nodes.iter().filter(|x| honest[usize::from(x.index)]).map(SimNode::height).collect()
}

/// Whether some partition side holds a quorum of honest validators in force that are up.
fn quorum_connected(env: &Env, nodes: &[SimNode], honest: &[bool]) -> bool {
    let (members, quorum) = &env.observer.next_set;
    let side = |i: usize| env.partition.as_ref().is_some_and(|s| s[i]);
    let count = |s: bool| {
        nodes.iter().enumerate().filter(|(i, x)| honest[*i] && members[*i] && x.is_up() && side(*i) == s).count()
    };
    count(false) >= *quorum || count(true) >= *quorum
}

/// Governance clients: the plan's next records, signed on the most advanced honest
/// node's view, to one node that is up (which gossips them on).
fn submit_governance(env: &mut Env, nodes: &[SimNode], plan: &mut GovPlan) {
    let up: Vec<&SimNode> = nodes.iter().filter(|x| x.is_up()).collect();
    if up.is_empty() {
        return;
    }
    let to = up[env.rng.below(up.len() as u64) as usize].index;
    let Some(best) = nodes.iter().filter(|x| x.honest()).max_by_key(|x| x.height()) else { return };
    let gov = best.governance(&env.chain);
    let time_ms = best.head().map_or(SIM_GENESIS_TIME_MS, |h| h.time_ms);
    let items = plan.tick(
        &env.chain,
        &gov,
        best.height() + 1,
        time_ms,
        |m| best.next_sequence(m).ok(),
        &env.stats.rule_refusals,
    );
    if !items.is_empty() {
        env.send(to, to, NetMsg::Attestations(Arc::new(items)));
    }
}

/// One random fault: a partition (healed later), a crash (restarted later), or a
/// crash armed to happen between two of the node's next few actions (after a sign
/// state is persisted and before the vote leaves, say).
fn inject_fault(env: &mut Env, nodes: &mut [SimNode], honest: &[bool]) {
    let n = nodes.len();
    match env.rng.below(3) {
        0 if n > 1 && env.partition.is_none() => {
            let mut sides: Vec<bool> = (0..n).map(|_| env.rng.chance(500)).collect();
            if sides.iter().all(|s| *s) || sides.iter().all(|s| !*s) {
                let i = env.rng.below(n as u64) as usize;
                sides[i] = !sides[i];
            }
            env.partition = Some(sides);
            env.stats.partitions += 1;
            let heal = env.now + env.rng.range(200, 5_000);
            env.push(heal, Event::Heal);
        }
        1 => {
            let i = env.rng.below(n as u64) as usize;
            if honest[i] && nodes[i].is_up() {
                nodes[i].crash(env);
            }
        }
        _ => {
            let i = env.rng.below(n as u64) as usize;
            if honest[i] {
                nodes[i].crash_after_actions = Some(env.rng.below(6) as u32);
            }
        }
    }
}

/// Clients offer each attester's next records (from the lowest not yet committed on
/// the most advanced honest node) to one node that is up, which gossips them on.
fn submit(env: &mut Env, nodes: &[SimNode]) {
    let up: Vec<&SimNode> = nodes.iter().filter(|x| x.is_up()).collect();
    if up.is_empty() {
        return;
    }
    let to = up[env.rng.below(up.len() as u64) as usize].index;
    let Some(best) = nodes.iter().filter(|x| x.honest()).max_by_key(|x| x.height()) else { return };
    let mut items = Vec::new();
    for (a, member) in env.workload.attesters() {
        let Ok(next) = best.next_sequence(member) else { continue };
        for s in next..next + SUBMIT_WINDOW {
            items.push(env.workload.leaf(a, s).bytes);
        }
    }
    env.send(to, to, NetMsg::Attestations(Arc::new(items)));
}

/// Every node's stored head and sign state, and the chain the observer saw, hashed.
fn state_hash(cfg: &SimConfig, nodes: &[SimNode], env: &Env, events: u64) -> Hash {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&cfg.seed.to_le_bytes());
    for node in nodes {
        bytes.extend_from_slice(&node.index.to_le_bytes());
        bytes.extend_from_slice(node.behaviour.name().as_bytes());
        if let Some(h) = node.head() {
            bytes.extend_from_slice(&h.height.to_le_bytes());
            bytes.extend_from_slice(h.hash.bytes());
            bytes.extend_from_slice(&h.tree_root.0);
        }
        if let Some(s) = &node.sign_state {
            bytes.extend_from_slice(&s.to_bytes());
        }
    }
    for (h, hash) in env.observer.chain() {
        bytes.extend_from_slice(&h.to_le_bytes());
        bytes.extend_from_slice(hash.bytes());
    }
    bytes.extend_from_slice(&env.now.to_le_bytes());
    bytes.extend_from_slice(&events.to_le_bytes());
    Hash::digest(&[&bytes])
}
