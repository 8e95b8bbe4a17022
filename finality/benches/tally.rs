//! Vote acceptance (round and active-set checks, the Merkle proof of `pr`, EOTS verification,
//! recording) and the tally of a round with 100 and 1,000 verifiers.

use std::collections::BTreeMap;

use criterion::{
    black_box, criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput,
};
use fiamma_finality::committed::CommittedRandomness;
use fiamma_finality::rounds::{
    check_vote, ClosedRound, CommitmentRules, RoundVotes, Verifiers, Vote, VoteEnv, VoterInRound,
};
use fiamma_staking::context::SigningContexts;
use secp256k1::{Keypair, SECP256K1};

const ROUND: u64 = 40;
const RULES: CommitmentRules = CommitmentRules {
    min_pub_rand: 1,
    max_pub_rand: 100_000,
    max_start_ahead: 0,
};
const HASH: [u8; 32] = [0x77; 32];
/// Rounds per randomness commitment: a Merkle proof of depth 7.
const COMMITTED: u64 = 128;

struct Network {
    registry: Verifiers,
    powers: BTreeMap<secp256k1::XOnlyPublicKey, u64>,
    votes: Vec<Vote>,
}

/// `n` registered verifiers, each with a signed commitment over rounds `0 .. COMMITTED`, a
/// power, and its vote on `ROUND`.
fn network(n: usize, contexts: &SigningContexts) -> Network {
    let mut registry = Verifiers::new();
    let mut powers = BTreeMap::new();
    let mut votes = Vec::with_capacity(n);
    for i in 0..n {
        let mut seed = [0x42; 32];
        seed[24..].copy_from_slice(&(i as u64).to_be_bytes());
        let keypair = Keypair::from_seckey_slice(SECP256K1, &seed).expect("valid key");
        let list = CommittedRandomness::derive(&keypair.secret_key(), "bench", 0, COMMITTED)
            .expect("valid range");
        let key = keypair.x_only_public_key().0;
        registry.register(key).expect("new key");
        let commitment = *list.commitment();
        let sig = commitment.sign(&keypair, contexts, &[0; 32]);
        registry
            .commit_randomness(&key, commitment, &sig, 0, &RULES, contexts)
            .expect("valid commitment");
        powers.insert(key, 1_000 + i as u64);
        let r = list.for_round(ROUND).expect("committed");
        votes.push(Vote::sign(&keypair, r, contexts, ROUND, HASH));
    }
    Network {
        registry,
        powers,
        votes,
    }
}

fn empty_round(net: &Network) -> RoundVotes {
    let table = net.registry.power_table(ROUND, &net.powers, 10_000);
    RoundVotes::new(
        ClosedRound {
            round: ROUND,
            round_hash: HASH,
        },
        table,
    )
    .expect("table of this round")
}

fn ingest(round: &mut RoundVotes, net: &Network, env: &VoteEnv<'_>) {
    for vote in &net.votes {
        let commitment = net
            .registry
            .get(&vote.voter)
            .and_then(|r| r.commitment_covering(ROUND));
        round
            .add_vote(vote.clone(), commitment, env)
            .expect("valid vote");
    }
}

fn benches(c: &mut Criterion) {
    let contexts = SigningContexts::new("bench", "fmma1bench");
    let env = VoteEnv {
        contexts: &contexts,
        latest_round: ROUND,
        vote_expiry: 10,
    };
    for n in [100usize, 1_000] {
        let net = network(n, &contexts);

        let mut group = c.benchmark_group(format!("{n} verifiers"));
        let first = &net.votes[0];
        let commitment = net
            .registry
            .get(&first.voter)
            .and_then(|r| r.commitment_covering(ROUND));
        let closed = ClosedRound {
            round: ROUND,
            round_hash: HASH,
        };
        group.throughput(Throughput::Elements(1));
        group.bench_function("check_vote (one vote)", |b| {
            b.iter(|| {
                let voter = VoterInRound {
                    in_active_set: true,
                    commitment,
                    earlier_vote: None,
                };
                check_vote(black_box(first), Some(&closed), &voter, &env)
            })
        });

        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(
            BenchmarkId::new("add_vote (all votes of a round)", n),
            |b| {
                b.iter_batched(
                    || empty_round(&net),
                    |mut round| {
                        ingest(&mut round, &net, &env);
                        round
                    },
                    BatchSize::LargeInput,
                )
            },
        );

        let mut full = empty_round(&net);
        ingest(&mut full, &net, &env);
        assert!(full.tally().is_final());
        group.throughput(Throughput::Elements(1));
        group.bench_function("tally (all voted)", |b| b.iter(|| black_box(&full).tally()));
        group.bench_function("power table", |b| {
            b.iter(|| {
                net.registry
                    .power_table(ROUND, black_box(&net.powers), 10_000)
            })
        });
        group.finish();
    }
}

criterion_group!(tally, benches);
criterion_main!(tally);
