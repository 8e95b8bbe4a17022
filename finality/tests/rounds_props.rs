//! Properties of the tally: the strict 2/3 rule on any powers, and results that do not
//! depend on the order in which votes arrive.

mod rounds_support;

use std::sync::OnceLock;

use fiamma_finality::rounds::{RoundVotes, Verifiers, Vote, VoteOutcome};
use proptest::prelude::*;
use rounds_support::{close, contexts, env, network, powers, Verifier};

const ROUND: u64 = 2;
const HASH: [u8; 32] = [0x11; 32];
const OTHER: [u8; 32] = [0x22; 32];
const N: usize = 7;

/// Seven committed verifiers and their votes on round 2 for the node's hash and another hash,
/// signed once: EOTS signing dominates otherwise.
struct Fixture {
    verifiers: Vec<Verifier>,
    registry: Verifiers,
    honest: Vec<Vote>,
    other: Vec<Vote>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let (verifiers, registry) = network(N as u64, 8);
        let honest = verifiers.iter().map(|v| v.vote(ROUND, HASH)).collect();
        let other = verifiers.iter().map(|v| v.vote(ROUND, OTHER)).collect();
        Fixture {
            verifiers,
            registry,
            honest,
            other,
        }
    })
}

fn round_with(power: &[u64]) -> RoundVotes {
    let f = fixture();
    close(&f.registry, &powers(&f.verifiers, power), ROUND, HASH)
}

fn submit(round: &mut RoundVotes, vote: &Vote) -> Option<VoteOutcome> {
    let f = fixture();
    let c = contexts();
    let commitment = f
        .registry
        .get(&vote.voter)
        .and_then(|r| r.commitment_covering(ROUND));
    round
        .add_vote(vote.clone(), commitment, &env(&c, ROUND))
        .ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn final_exactly_when_honest_voted_power_exceeds_two_thirds(
        power in proptest::collection::vec(1u64..=u64::MAX / 8, N),
        voted in proptest::collection::vec(any::<bool>(), N),
    ) {
        let f = fixture();
        let mut round = round_with(&power);
        for (vote, _) in f.honest.iter().zip(&voted).filter(|(_, v)| **v) {
            prop_assert_eq!(submit(&mut round, vote), Some(VoteOutcome::Counted));
        }
        let tally = round.tally();
        let voted_power: u128 = power.iter().zip(&voted)
            .filter(|(_, v)| **v).map(|(p, _)| u128::from(*p)).sum();
        let total: u128 = power.iter().map(|p| u128::from(*p)).sum();
        prop_assert_eq!((tally.voted_power, tally.total_power), (voted_power, total));
        if voted_power * 3 <= total * 2 {
            prop_assert!(!tally.is_final());
            prop_assert!(tally.certificate().is_none());
        } else {
            prop_assert!(tally.is_final());
            let cert = tally.certificate().expect("final");
            prop_assert_eq!(cert.entries.len(), voted.iter().filter(|v| **v).count());
            prop_assert_eq!(cert.verify(round.table(), &contexts()), Ok(()));
        }
    }

    #[test]
    fn exactly_two_thirds_is_never_final(unit in 1u64..=u64::MAX / 3, split in 0usize..N) {
        // One voter with 2u, one silent verifier with u, the rest without power: the voted
        // power is exactly two thirds of 3u.
        let mut power = vec![0u64; N];
        power[split] = 2 * unit;
        power[(split + 1) % N] = unit;
        let f = fixture();
        let mut round = round_with(&power);
        prop_assert_eq!(submit(&mut round, &f.honest[split]), Some(VoteOutcome::Counted));
        let tally = round.tally();
        prop_assert_eq!(tally.voted_power * 3, tally.total_power * 2);
        prop_assert!(!tally.is_final());
    }

    #[test]
    fn the_outcome_does_not_depend_on_the_arrival_order(
        power in proptest::collection::vec(1u64..1_000_000, N),
        kinds in proptest::collection::vec(0u8..4, N),
        order in Just((0..2 * N).collect::<Vec<usize>>()).prop_shuffle(),
    ) {
        // Per verifier: 0 silent, 1 honest, 2 other hash, 3 honest sent twice. Each arrival
        // slot i < N carries verifier i's vote, slot N + i its repeat (if any).
        let f = fixture();
        let arrivals = |slot: usize| -> Option<&Vote> {
            let i = slot % N;
            match (kinds[i], slot < N) {
                (1, true) | (3, _) => Some(&f.honest[i]),
                (2, true) => Some(&f.other[i]),
                _ => None,
            }
        };
        let mut in_order = round_with(&power);
        let mut shuffled = round_with(&power);
        for slot in 0..2 * N {
            if let Some(v) = arrivals(slot) {
                submit(&mut in_order, v);
            }
        }
        for &slot in &order {
            if let Some(v) = arrivals(slot) {
                submit(&mut shuffled, v);
            }
        }
        prop_assert_eq!(&in_order, &shuffled);
        prop_assert_eq!(in_order.tally(), shuffled.tally());
        prop_assert_eq!(in_order.signers(), shuffled.signers());
        prop_assert_eq!(
            in_order.tally().certificate().map(|c| c.digest()),
            shuffled.tally().certificate().map(|c| c.digest())
        );
    }
}
