//! The round state of `fiamma_finality::rounds` (votes, tally, equivocation, liveness,
//! jailing, unjailing) driven by random message sequences and checked, after every message,
//! against a small model written from `PROTOCOL.md` §9–11 with plain maps and no cryptography.
//! Both the answer to each message (an acceptance, or the exact refusal) and the state after it
//! must agree: a wrong refusal or a wrong acceptance fails the test.
//!
//! The system under test is composed of the pure cores the way the node composes them:
//! [`RoundVotes`] per closed round ([`check_vote`] inside), [`check_voter_standing`] on a first
//! vote, [`Verifiers`] for slashing, liveness ([`Verifiers::record_round`] when a round's votes
//! expire), power tables and unjailing. The sequencing of a round close (tally, expiry and
//! liveness, the next power table) has no pure core of its own: it lives in the node's
//! `closer.rs`, and is restated in [`Sut::close`] here.

mod rounds_support;

use std::collections::{BTreeMap, BTreeSet};

use fiamma_finality::merkle::Digest;
use fiamma_finality::rounds::{
    check_vote, check_voter_standing, equivocation, has_quorum, ClosedRound, RoundVotes,
    SlashError, UnjailError, VerifierStatus, Verifiers, Vote, VoteError, VoteOutcome, VoterInRound,
};
use proptest::prelude::*;
use rounds_support::{contexts, env, liveness, network, Verifier, VOTE_EXPIRY};
use secp256k1::XOnlyPublicKey;

const N: usize = 4;
/// Randomness is committed for rounds 0 .. NUM; rounds are closed up to NUM − 2 so that a vote
/// on the round after the latest can still be signed.
const NUM: u64 = 24;
const MAX_ROUND: u64 = NUM - 2;
const OTHER: [Digest; 2] = [[0xe1; 32], [0xe2; 32]];

/// The round hash the node computes for round `h` (any fixed value per round will do).
fn node_hash(h: u64) -> Digest {
    let mut d = [0x5a; 32];
    d[..8].copy_from_slice(&h.to_be_bytes());
    d
}

/// `which` 0 is the node's hash of `h`, 1 and 2 are two other messages.
fn hash_of(h: u64, which: u8) -> Digest {
    match which {
        0 => node_hash(h),
        w => OTHER[usize::from(w - 1)],
    }
}

#[derive(Debug, Clone)]
enum Op {
    Close,
    /// Voter, how far back from the latest round (−1: the round after it), which message.
    Vote(usize, i64, u8),
    /// Two votes of the voter on one round with different messages, as evidence.
    Evidence(usize, i64),
    /// A jailed verifier's unjail request, signing its jailing round or (when true) another.
    Unjail(usize, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Close),
        8 => (0..N, -1i64..=6, 0u8..3).prop_map(|(v, back, w)| Op::Vote(v, back, w)),
        1 => (0..N, -1i64..=3).prop_map(|(v, back)| Op::Evidence(v, back)),
        2 => (0..N, prop::bool::weighted(0.2)).prop_map(|(v, wrong)| Op::Unjail(v, wrong)),
    ]
}

/// What a message got: the same type for the system and the model, compared with `==`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Counted,
    Disagrees,
    /// Equivocation found (from a vote or evidence), and what slashing the verifier gave.
    Slashing(Result<(), SlashError>),
    Refused(VoteError),
    Unjail(Result<(), UnjailError>),
    Closed(Vec<XOnlyPublicKey>),
    Nothing,
}

// ---------------------------------------------------------------------------------------
// The model.

#[derive(Debug, Clone, PartialEq, Eq)]
struct ModelRound {
    /// Members and their powers.
    members: BTreeMap<usize, u64>,
    /// Each voter's recorded first vote: which message.
    votes: BTreeMap<usize, u8>,
    liveness_done: bool,
}

#[derive(Debug, Clone)]
struct Model {
    keys: Vec<XOnlyPublicKey>,
    powers: Vec<u64>,
    latest: u64,
    rounds: BTreeMap<u64, ModelRound>,
    status: Vec<VerifierStatus>,
    /// Liveness flags, oldest first, at most `window` long.
    window: Vec<Vec<bool>>,
}

impl Model {
    fn new(keys: Vec<XOnlyPublicKey>, powers: Vec<u64>) -> Self {
        Model {
            status: vec![VerifierStatus::Active; keys.len()],
            window: vec![Vec::new(); keys.len()],
            keys,
            powers,
            latest: 0,
            rounds: BTreeMap::new(),
        }
    }

    fn close(&mut self) -> Answer {
        let rules = liveness();
        let new = self.latest + 1;
        let mut jailed = Vec::new();
        for (&h, round) in self.rounds.iter_mut() {
            if round.liveness_done || new <= h + VOTE_EXPIRY {
                continue;
            }
            round.liveness_done = true;
            // By key order, as the active set is.
            let mut members: Vec<usize> = round.members.keys().copied().collect();
            members.sort_by_key(|i| self.keys[*i].serialize());
            for i in members {
                if self.status[i] != VerifierStatus::Active {
                    continue;
                }
                let w = &mut self.window[i];
                w.push(round.votes.get(&i) == Some(&0));
                if w.len() as u64 > rules.window() {
                    w.remove(0);
                }
                let missed = w.iter().filter(|s| !**s).count() as u64;
                if missed > rules.window() - rules.min_signed() {
                    self.status[i] = VerifierStatus::Jailed { since: h };
                    w.clear();
                    jailed.push(self.keys[i]);
                }
            }
        }
        jailed.sort_by_key(XOnlyPublicKey::serialize);
        // Every round's commitment covers it (new < NUM), so: ACTIVE with some power.
        let members = (0..self.keys.len())
            .filter(|i| self.status[*i] == VerifierStatus::Active && self.powers[*i] > 0)
            .map(|i| (i, self.powers[i]))
            .collect();
        self.rounds.insert(
            new,
            ModelRound {
                members,
                votes: BTreeMap::new(),
                liveness_done: false,
            },
        );
        self.latest = new;
        Answer::Closed(jailed)
    }

    fn slash(&mut self, i: usize) -> Answer {
        Answer::Slashing(match self.status[i] {
            VerifierStatus::Slashed { since } => Err(SlashError::AlreadySlashed {
                verifier: self.keys[i],
                since,
            }),
            _ => {
                self.status[i] = VerifierStatus::Slashed { since: self.latest };
                self.window[i].clear();
                Ok(())
            }
        })
    }

    fn vote(&mut self, i: usize, h: u64, which: u8) -> Answer {
        let voter = self.keys[i];
        let latest = self.latest;
        let Some(round) = self.rounds.get_mut(&h) else {
            return Answer::Refused(VoteError::UnknownRound {
                round: h,
                latest_round: latest,
            });
        };
        if latest > h + VOTE_EXPIRY {
            return Answer::Refused(VoteError::Expired {
                round: h,
                latest_round: latest,
                vote_expiry: VOTE_EXPIRY,
            });
        }
        let earlier = round.votes.get(&i).copied();
        if earlier == Some(which) {
            return Answer::Refused(VoteError::Duplicate {
                voter,
                round: h,
                round_hash: hash_of(h, which),
            });
        }
        if !round.members.contains_key(&i) {
            return Answer::Refused(VoteError::NotInActiveSet { voter, round: h });
        }
        if earlier.is_some() {
            return self.slash(i);
        }
        match self.status[i] {
            VerifierStatus::Slashed { since } => {
                return Answer::Refused(VoteError::Slashed { voter, since })
            }
            VerifierStatus::Jailed { since } => {
                return Answer::Refused(VoteError::Jailed { voter, since })
            }
            VerifierStatus::Active => {}
        }
        round.votes.insert(i, which);
        if which == 0 {
            Answer::Counted
        } else {
            Answer::Disagrees
        }
    }

    fn unjail(&mut self, i: usize, wrong: bool) -> Answer {
        let verifier = self.keys[i];
        Answer::Unjail(match self.status[i] {
            VerifierStatus::Jailed { .. } if wrong => Err(UnjailError::BadSignature {
                verifier,
                since: self.jailed_since(i),
            }),
            VerifierStatus::Jailed { since }
                if self.latest < since + liveness().jail_duration() =>
            {
                Err(UnjailError::TooEarly {
                    verifier,
                    round: self.latest,
                    allowed_from: since + liveness().jail_duration(),
                })
            }
            VerifierStatus::Jailed { .. } => {
                self.status[i] = VerifierStatus::Active;
                Ok(())
            }
            status => Err(UnjailError::NotJailed { verifier, status }),
        })
    }

    fn jailed_since(&self, i: usize) -> u64 {
        match self.status[i] {
            VerifierStatus::Jailed { since } => since,
            _ => 0,
        }
    }

    /// The agreeing power of round `h` and its total power.
    fn tally(&self, h: u64) -> (u128, u128) {
        let round = &self.rounds[&h];
        let voted = round
            .votes
            .iter()
            .filter(|(_, w)| **w == 0)
            .map(|(i, _)| u128::from(round.members[i]))
            .sum();
        (voted, round.members.values().map(|p| u128::from(*p)).sum())
    }
}

// ---------------------------------------------------------------------------------------
// The system under test: the pure cores.

struct Sut {
    verifiers: Vec<Verifier>,
    powers: BTreeMap<XOnlyPublicKey, u64>,
    registry: Verifiers,
    rounds: BTreeMap<u64, RoundVotes>,
    liveness_done: BTreeSet<u64>,
    latest: u64,
}

impl Sut {
    fn close(&mut self) -> Answer {
        let new = self.latest + 1;
        let mut jailed = Vec::new();
        for (h, round) in &self.rounds {
            if self.liveness_done.contains(h) || new <= h + VOTE_EXPIRY {
                continue;
            }
            jailed.extend(
                self.registry
                    .record_round(round.table(), &round.signers(), &liveness()),
            );
            self.liveness_done.insert(*h);
        }
        jailed.sort_by_key(XOnlyPublicKey::serialize);
        let table = self.registry.power_table(new, &self.powers, 100);
        let closed = ClosedRound {
            round: new,
            round_hash: node_hash(new),
        };
        self.rounds.insert(
            new,
            RoundVotes::new(closed, table).expect("table of the round"),
        );
        self.latest = new;
        Answer::Closed(jailed)
    }

    fn vote(&mut self, vote: Vote) -> Answer {
        let c = contexts();
        let env = env(&c, self.latest);
        let Some(round) = self.rounds.get_mut(&vote.round) else {
            let nobody = VoterInRound {
                in_active_set: false,
                commitment: None,
                earlier_vote: None,
            };
            return match check_vote(&vote, None, &nobody, &env) {
                Err(e) => Answer::Refused(e),
                Ok(o) => panic!("a vote on an unclosed round was accepted: {o:?}"),
            };
        };
        let record = self.registry.get(&vote.voter).expect("registered");
        let commitment = record.commitment_covering(vote.round);
        // Checked on a copy, recorded only once the voter's standing is checked too.
        let mut trial = round.clone();
        match trial.add_vote(vote.clone(), commitment, &env) {
            Err(e) => Answer::Refused(e),
            Ok(outcome @ (VoteOutcome::Counted | VoteOutcome::Disagrees)) => {
                if let Err(e) = check_voter_standing(&vote, record.status()) {
                    return Answer::Refused(e);
                }
                *round = trial;
                if outcome == VoteOutcome::Counted {
                    Answer::Counted
                } else {
                    Answer::Disagrees
                }
            }
            Ok(VoteOutcome::Equivocation(slashing)) => {
                Answer::Slashing(self.registry.slash(&slashing, self.latest))
            }
        }
    }

    fn evidence(&mut self, first: &Vote, second: &Vote) -> Answer {
        let slashing = equivocation(first, second, &contexts()).expect("two messages");
        Answer::Slashing(self.registry.slash(&slashing, self.latest))
    }

    fn unjail(&mut self, i: usize, since: u64) -> Answer {
        let v = &self.verifiers[i];
        Answer::Unjail(self.registry.unjail(
            &v.key(),
            &v.unjail_signature(since),
            self.latest,
            &liveness(),
            &contexts(),
        ))
    }
}

/// The round `back` rounds before `latest` (−1: the one after), if not negative.
fn back_from(latest: u64, back: i64) -> Option<u64> {
    let latest = i64::try_from(latest).ok()?;
    u64::try_from(latest - back).ok()
}

/// The state of the system and the model agree.
fn agree(sut: &Sut, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(sut.latest, model.latest);
    for (i, key) in model.keys.iter().enumerate() {
        let record = sut.registry.get(key).expect("registered");
        prop_assert_eq!(record.status(), model.status[i], "status of {}", i);
        let flags: Vec<bool> = record.signing_window().flags().collect();
        prop_assert_eq!(&flags, &model.window[i], "liveness of {}", i);
    }
    prop_assert_eq!(
        sut.rounds.keys().collect::<Vec<_>>(),
        model.rounds.keys().collect::<Vec<_>>()
    );
    for (h, round) in &sut.rounds {
        let m = &model.rounds[h];
        let members: BTreeMap<XOnlyPublicKey, u64> =
            round.table().members().map(|(k, p)| (*k, p)).collect();
        let expected: BTreeMap<XOnlyPublicKey, u64> = m
            .members
            .iter()
            .map(|(i, p)| (model.keys[*i], *p))
            .collect();
        prop_assert_eq!(members, expected, "active set of round {}", h);
        let recorded: BTreeMap<XOnlyPublicKey, Digest> =
            round.votes().map(|v| (v.voter, v.round_hash)).collect();
        let expected: BTreeMap<XOnlyPublicKey, Digest> = m
            .votes
            .iter()
            .map(|(i, w)| (model.keys[*i], hash_of(*h, *w)))
            .collect();
        prop_assert_eq!(recorded, expected, "votes of round {}", h);
        let t = round.tally();
        let (voted, total) = model.tally(*h);
        prop_assert_eq!(
            (t.voted_power, t.total_power),
            (voted, total),
            "tally of {}",
            h
        );
        prop_assert_eq!(t.is_final(), has_quorum(voted, total));
        prop_assert_eq!(
            sut.liveness_done.contains(h),
            m.liveness_done,
            "liveness of round {}",
            h
        );
    }
    Ok(())
}

/// The system and the model, both fresh: `N` verifiers with randomness for rounds 0 .. NUM
/// and the given powers.
fn start(powers: Vec<u64>) -> (Sut, Model) {
    let (verifiers, registry) = network(N as u64, NUM);
    let keys: Vec<XOnlyPublicKey> = verifiers.iter().map(Verifier::key).collect();
    let model = Model::new(keys.clone(), powers.clone());
    let sut = Sut {
        powers: keys.iter().copied().zip(powers).collect(),
        verifiers,
        registry,
        rounds: BTreeMap::new(),
        liveness_done: BTreeSet::new(),
        latest: 0,
    };
    (sut, model)
}

/// Applies `op` to both; their answers (`Nothing` for both when `op` names no round or a
/// round beyond the committed randomness).
fn apply(sut: &mut Sut, model: &mut Model, op: Op) -> (Answer, Answer) {
    match op {
        Op::Close if model.latest < MAX_ROUND => (sut.close(), model.close()),
        Op::Close => (Answer::Nothing, Answer::Nothing),
        Op::Vote(i, back, which) => match back_from(model.latest, back) {
            Some(h) => {
                let vote = sut.verifiers[i].vote(h, hash_of(h, which));
                (sut.vote(vote), model.vote(i, h, which))
            }
            None => (Answer::Nothing, Answer::Nothing),
        },
        Op::Evidence(i, back) => match back_from(model.latest, back) {
            Some(h) => {
                let v = &sut.verifiers[i];
                let (first, second) = (v.vote(h, hash_of(h, 1)), v.vote(h, hash_of(h, 2)));
                (sut.evidence(&first, &second), model.slash(i))
            }
            None => (Answer::Nothing, Answer::Nothing),
        },
        Op::Unjail(i, wrong) => {
            let since = model.jailed_since(i) + u64::from(wrong);
            (sut.unjail(i, since), model.unjail(i, wrong))
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_round_state_follows_the_model(
        powers in prop::collection::vec(0u64..100, N),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let (mut sut, mut model) = start(powers);
        for op in ops {
            let (got, expected) = apply(&mut sut, &mut model, op);
            prop_assert_eq!(got, expected);
            agree(&sut, &model)?;
        }
    }
}

/// The model is not vacuous: the sequences above reach every kind of answer. Checked on a
/// fixed sequence, so that a model that refused everything would fail here.
#[test]
fn a_fixed_sequence_reaches_jailing_unjailing_finality_and_slashing() {
    let (mut sut, mut model) = start(vec![10, 20, 30, 40]);
    let mut seen = BTreeSet::new();
    let step = |sut: &mut Sut, model: &mut Model, op: Op| {
        let (got, expected) = apply(sut, model, op);
        assert_eq!(got, expected);
        agree(sut, model).expect("agree");
        format!("{got:?}")
            .split(['(', ' ', '{'])
            .next()
            .unwrap_or("")
            .to_owned()
            + match &got {
                Answer::Closed(j) if !j.is_empty() => "Jailing",
                Answer::Unjail(Ok(())) => "Unjailed",
                _ => "",
            }
    };
    // Verifier 0 never votes: jailed once its fourth round expires; 3 equivocates.
    for _ in 0..9 {
        seen.insert(step(&mut sut, &mut model, Op::Close));
        for i in 1..N {
            seen.insert(step(&mut sut, &mut model, Op::Vote(i, 0, 0)));
        }
        seen.insert(step(&mut sut, &mut model, Op::Unjail(0, false)));
    }
    seen.insert(step(&mut sut, &mut model, Op::Close));
    seen.insert(step(&mut sut, &mut model, Op::Vote(3, 0, 1)));
    seen.insert(step(&mut sut, &mut model, Op::Vote(3, 0, 0)));
    seen.insert(step(&mut sut, &mut model, Op::Vote(1, 0, 0)));
    seen.insert(step(&mut sut, &mut model, Op::Vote(1, 8, 0)));
    seen.insert(step(&mut sut, &mut model, Op::Evidence(3, 1)));
    for kind in [
        "Closed",
        "ClosedJailing",
        "Counted",
        "Disagrees",
        "Slashing",
        "Refused",
        "Unjail",
        "UnjailUnjailed",
    ] {
        assert!(seen.contains(kind), "{kind} not reached: {seen:?}");
    }
    assert!(model.rounds.keys().any(|h| {
        let (v, t) = model.tally(*h);
        has_quorum(v, t)
    }));
}
