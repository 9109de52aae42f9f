//! Consensus throughput: heights per second for n validators' replica cores on one core, zero latency (criterion; results in docs/BENCHMARKS.md).
//!
//! Each validator is the production replica core (`Replica` on a `MemStore`), hosted
//! as the node hosts it: blocks built from its mempool, every proposal's leaves
//! checked and validated by the verification core, every proposal and vote signed
//! and verified by each receiver, decisions committed through `ValidProposal::certify`.
//! `logic`: empty blocks (no heartbeat wait: a height starts when the last commits).
//! Each member takes the messages queued for it as the driver drains its inbox
//! (`Delivery::Inbox`: their signatures checked as one batch).
//! `logic-one-by-one`: the same with one message per call, kept for comparison.
//! `with-ledger`: also signed attestations submitted to every mempool each height.
//! `consensus-cpu-time`: the 4-validator logic lines timed by CPU time, not wall time.

use credence_consensus::sim::instant::{Delivery, InstantCluster, Ledger};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const HEIGHTS: u64 = 100;

fn consensus(c: &mut Criterion) {
    let mut g = c.benchmark_group("consensus");
    g.throughput(Throughput::Elements(HEIGHTS));
    g.sample_size(10);
    for n in [1usize, 4, 7] {
        for (label, delivery) in [("logic", Delivery::Inbox), ("logic-one-by-one", Delivery::OneByOne)] {
            g.bench_function(format!("{n}-validators/{label}/{HEIGHTS}-heights"), |b| {
                b.iter_batched(
                    || InstantCluster::new(1, n, Ledger::Off).with_delivery(delivery),
                    |mut cluster| cluster.run_heights(HEIGHTS),
                    criterion::BatchSize::PerIteration,
                )
            });
        }
    }
    g.bench_function(format!("4-validators/with-ledger/{HEIGHTS}-heights"), |b| {
        b.iter_batched(
            || InstantCluster::new(1, 4, Ledger::On).with_delivery(Delivery::Inbox),
            |mut cluster| cluster.run_heights(HEIGHTS),
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// Heights per iteration of the CPU-time lines: long enough (~0.4 s) that the
/// scheduler-tick granularity of `thread_cpu_time` is about 1 % of a measurement.
const HEIGHTS_CPU: u64 = 1_000;

/// Nanoseconds this thread has spent on a CPU (Linux `/proc/thread-self/schedstat`;
/// updated at scheduler ticks and context switches, so good to a few milliseconds).
fn thread_cpu_time() -> Duration {
    // The benchmark (not the crate) reads the thread's CPU time from the OS.
    #[allow(clippy::disallowed_methods)]
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("Linux schedstat");
    let ns = stat.split_whitespace().next().and_then(|t| t.parse().ok()).expect("schedstat starts with run time in ns");
    Duration::from_nanos(ns)
}

/// The 4-validator logic lines again, timed by this thread's time on a CPU instead of
/// wall time: the machine is shared (2 vCPUs, other builds running), and while a busy
/// neighbour inflates wall time by however long we wait for a CPU, it barely changes
/// the CPU time a height costs (no steal time on this VM). Both are reported.
fn consensus_cpu(c: &mut Criterion) {
    let mut g = c.benchmark_group("consensus-cpu-time");
    g.throughput(Throughput::Elements(HEIGHTS_CPU));
    g.sample_size(10);
    for (label, delivery) in [("logic", Delivery::Inbox), ("logic-one-by-one", Delivery::OneByOne)] {
        g.bench_function(format!("4-validators/{label}/{HEIGHTS_CPU}-heights"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut cluster = InstantCluster::new(1, 4, Ledger::Off).with_delivery(delivery);
                    let start = thread_cpu_time();
                    cluster.run_heights(HEIGHTS_CPU);
                    total += thread_cpu_time() - start;
                }
                total
            })
        });
    }
    g.finish();
}

/// The primitives one height is made of: signing and verifying a vote (with the key
/// alone, with its precomputed tables, and five at once against the validator set).
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
        let pk = credence_ledger::sig::PrecomputedKey::new(vk);
        let text = vote.checkpoint_body(&ctx.origin).map(|b| b.to_text());
        let bytes = credence_ledger::codec::encode(&vote);
        g.bench_function(format!("verify-{label}-precomputed"), |b| {
            b.iter(|| match &text {
                Some(t) => pk.verify_raw(t.as_bytes(), &sig).is_ok(),
                None => pk.verify(credence_ledger::sig::Domain::Vote, &ctx.chain_id.0, &bytes, &sig).is_ok(),
            })
        });
    }
    {
        use credence_ledger::sig::{Domain, KeySet, KeySetItem, SignedBytes};
        let keys: Vec<_> = ctx.validators.iter().map(|v| v.key).collect();
        let set = KeySet::new(&keys);
        let bodies: Vec<Vec<u8>> = (0..5u64)
            .map(|i| {
                credence_ledger::codec::encode(&Vote {
                    height: 9 + i,
                    round: 0,
                    kind: VoteKind::Prevote,
                    value: Some(id),
                })
            })
            .collect();
        let sigs: Vec<_> =
            (0..5).map(|i| chain.validator_key(i % 4).sign(Domain::Vote, &ctx.chain_id.0, &bodies[i])).collect();
        let items: Vec<KeySetItem> = (0..5)
            .map(|i| KeySetItem {
                signer: i % 4,
                msg: SignedBytes::Binary { domain: Domain::Vote, chain_id: &ctx.chain_id.0, body: &bodies[i] },
                sig: &sigs[i],
            })
            .collect();
        // Five prevotes from the four validators, as one inbox: one batch, or one by one.
        g.bench_function("verify-5-prevotes-batched", |b| b.iter(|| set.verify_many(&items)));
        g.bench_function("verify-5-prevotes-one-by-one", |b| {
            b.iter(|| items.iter().filter(|it| set.verify_many(std::slice::from_ref(it))[0].is_ok()).count())
        });
    }
    g.finish();
}

criterion_group!(benches, consensus, consensus_cpu, primitives);
criterion_main!(benches);
