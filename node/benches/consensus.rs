//! Consensus throughput: heights per second for n validators' state machines on one core, zero latency (criterion; results in docs/BENCHMARKS.md).
//!
//! `logic`: the machines alone — every proposal and vote signed and verified by each
//! receiver, certificates assembled — with empty blocks the driver trusts.
//! `with-ledger`: also real blocks of 2–3 signed attestations, each proposal checked by
//! `verify_proposal` and each decision stored through `verify_block` into a MemStore.

use credence_node::sim::instant::{InstantCluster, Ledger};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const HEIGHTS: u64 = 100;

fn consensus(c: &mut Criterion) {
    let mut g = c.benchmark_group("consensus");
    g.throughput(Throughput::Elements(HEIGHTS));
    g.sample_size(10);
    for n in [1usize, 4, 7] {
        g.bench_function(format!("{n}-validators/logic/{HEIGHTS}-heights"), |b| {
            b.iter_batched(
                || InstantCluster::new(1, n, Ledger::Off),
                |mut cluster| cluster.run_heights(HEIGHTS),
                criterion::BatchSize::PerIteration,
            )
        });
    }
    g.bench_function(format!("4-validators/with-ledger/{HEIGHTS}-heights"), |b| {
        b.iter_batched(
            || InstantCluster::new(1, 4, Ledger::On),
            |mut cluster| cluster.run_heights(HEIGHTS),
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// The primitives one height is made of: signing and verifying a vote.
fn primitives(c: &mut Criterion) {
    use credence_ledger::hash::{Hash, HashOf};
    use credence_ledger::vote::{BlockId, Vote, VoteKind};
    let cluster = InstantCluster::new(1, 4, Ledger::Off);
    let chain = cluster.chain();
    let ctx = &chain.consensus;
    let key = chain.validator_key(0);
    let name = ctx.validators[0].name.as_str();
    let vk = &ctx.validators[0].key;
    let id = BlockId { hash: HashOf::from_hash(Hash([7; 32])), tree_size: 3, root: Hash([8; 32]) };
    let mut g = c.benchmark_group("vote");
    for (label, kind) in [("prevote", VoteKind::Prevote), ("precommit", VoteKind::Precommit)] {
        let vote = Vote { height: 9, round: 0, kind, value: Some(id) };
        let sig = vote.sign(&ctx.origin, &ctx.chain_id, name, &key);
        g.bench_function(format!("sign-{label}"), |b| b.iter(|| vote.sign(&ctx.origin, &ctx.chain_id, name, &key)));
        g.bench_function(format!("verify-{label}"), |b| {
            b.iter(|| vote.verify(&ctx.origin, &ctx.chain_id, vk, &sig).is_ok())
        });
    }
    g.finish();
}

criterion_group!(benches, consensus, primitives);
criterion_main!(benches);
