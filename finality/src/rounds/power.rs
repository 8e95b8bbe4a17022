//! The voting power table of one round (`PROTOCOL.md` §10): the active set and its total power.

use std::collections::{BTreeMap, BTreeSet};

use secp256k1::XOnlyPublicKey;

use crate::commitment::RandomnessCommitment;

/// A verifier's standing in the finality module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VerifierStatus {
    /// May be in the active set.
    Active,
    /// Jailed for missing too many rounds at round `since`; no power until unjailed.
    Jailed {
        /// The round at which it was jailed.
        since: u64,
    },
    /// Slashed at round `since`; no power from the next power table on, for good.
    Slashed {
        /// The round in which the slashing evidence was accepted.
        since: u64,
    },
}

impl VerifierStatus {
    /// The upper-case name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            VerifierStatus::Active => "ACTIVE",
            VerifierStatus::Jailed { .. } => "JAILED",
            VerifierStatus::Slashed { .. } => "SLASHED",
        }
    }
}

impl std::fmt::Display for VerifierStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One verifier considered for a round's active set.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The verifier's BTC key.
    pub key: XOnlyPublicKey,
    /// Its finality status.
    pub status: VerifierStatus,
    /// The sum of the values of its ACTIVE delegations, from the staking module.
    pub power: u64,
    /// Its accepted randomness commitments, in any order.
    pub commitments: &'a [RandomnessCommitment],
}

impl Candidate<'_> {
    /// Whether the verifier may vote in `round` at all: active status, some power, and a
    /// randomness commitment covering the round (without one it could not produce a vote).
    fn is_eligible(&self, round: u64) -> bool {
        self.status == VerifierStatus::Active
            && self.power > 0
            && self.commitments.iter().any(|c| c.covers(round))
    }
}

/// Two candidates with the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PowerTableError {
    /// The candidate list names a verifier twice.
    #[error("verifier {key} appears twice among the candidates of round {round}")]
    DuplicateCandidate {
        /// The repeated key.
        key: XOnlyPublicKey,
        /// The round the table was built for.
        round: u64,
    },
}

/// The active set of one round: each member's power and their total.
///
/// Members are the top `max_active_verifiers` eligible candidates by power; equal power is
/// ordered by the key's 32 bytes, the lower key first, so every node picks the same set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerTable {
    round: u64,
    /// Keyed by the key's bytes: comparing `XOnlyPublicKey`s serializes both on every
    /// comparison, which dominated lookups; the order is the same.
    members: BTreeMap<[u8; 32], (XOnlyPublicKey, u64)>,
    total: u128,
}

impl PowerTable {
    /// Builds the table of `round` from the candidates, in any order.
    ///
    /// # Errors
    /// [`PowerTableError::DuplicateCandidate`] when a key appears twice.
    pub fn compute(
        round: u64,
        candidates: &[Candidate<'_>],
        max_active_verifiers: u32,
    ) -> Result<Self, PowerTableError> {
        let mut seen = BTreeSet::new();
        if let Some(dup) = candidates.iter().find(|c| !seen.insert(c.key)) {
            return Err(PowerTableError::DuplicateCandidate {
                key: dup.key,
                round,
            });
        }
        Ok(Self::select(
            round,
            candidates.iter().copied(),
            max_active_verifiers,
        ))
    }

    /// The table of `round` with exactly `members` (a round's active set as a node serves it),
    /// for a reader that checks a certificate against it rather than recomputing the set.
    ///
    /// # Errors
    /// [`PowerTableError::DuplicateCandidate`] when a key appears twice.
    pub fn from_members(
        round: u64,
        members: &[(XOnlyPublicKey, u64)],
    ) -> Result<Self, PowerTableError> {
        let mut table = PowerTable {
            round,
            members: BTreeMap::new(),
            total: 0,
        };
        for &(key, power) in members {
            if table
                .members
                .insert(key.serialize(), (key, power))
                .is_some()
            {
                return Err(PowerTableError::DuplicateCandidate { key, round });
            }
            table.total += u128::from(power);
        }
        Ok(table)
    }

    /// Builds the table from candidates known to have distinct keys.
    pub(super) fn select<'a>(
        round: u64,
        candidates: impl Iterator<Item = Candidate<'a>>,
        max_active_verifiers: u32,
    ) -> Self {
        let mut eligible: Vec<(u64, [u8; 32], XOnlyPublicKey)> = candidates
            .filter(|c| c.is_eligible(round))
            .map(|c| (c.power, c.key.serialize(), c.key))
            .collect();
        eligible.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        // A cap beyond the address space simply means "no cap".
        let cap = usize::try_from(max_active_verifiers).unwrap_or(usize::MAX);
        let members: BTreeMap<[u8; 32], (XOnlyPublicKey, u64)> = eligible
            .into_iter()
            .take(cap)
            .map(|(power, bytes, key)| (bytes, (key, power)))
            .collect();
        let total = members.values().map(|&(_, p)| u128::from(p)).sum();
        PowerTable {
            round,
            members,
            total,
        }
    }

    /// The round this table is for.
    pub fn round(&self) -> u64 {
        self.round
    }

    /// The power of `key` in this round, `None` when it is not in the active set.
    pub fn power_of(&self, key: &XOnlyPublicKey) -> Option<u64> {
        self.members.get(&key.serialize()).map(|&(_, p)| p)
    }

    /// Whether `key` is in the active set.
    pub fn contains(&self, key: &XOnlyPublicKey) -> bool {
        self.members.contains_key(&key.serialize())
    }

    /// The total power of the active set.
    pub fn total_power(&self) -> u128 {
        self.total
    }

    /// The members and their power, ordered by key.
    pub fn members(&self) -> impl Iterator<Item = (&XOnlyPublicKey, u64)> {
        self.members.values().map(|(k, p)| (k, *p))
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the active set is empty (then no round can become final).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use secp256k1::{Keypair, SECP256K1};

    fn key(seed: u8) -> XOnlyPublicKey {
        Keypair::from_seckey_slice(SECP256K1, &[seed; 32])
            .expect("valid key")
            .x_only_public_key()
            .0
    }

    fn commitments() -> Vec<RandomnessCommitment> {
        vec![RandomnessCommitment::new(10, 10, [0; 32]).expect("valid range")]
    }

    fn candidate(seed: u8, power: u64, commitments: &[RandomnessCommitment]) -> Candidate<'_> {
        Candidate {
            key: key(seed),
            status: VerifierStatus::Active,
            power,
            commitments,
        }
    }

    #[test]
    fn jailed_slashed_powerless_and_uncommitted_verifiers_are_left_out() {
        let c = commitments();
        let mut jailed = candidate(2, 50, &c);
        jailed.status = VerifierStatus::Jailed { since: 3 };
        let mut slashed = candidate(3, 50, &c);
        slashed.status = VerifierStatus::Slashed { since: 3 };
        let table = PowerTable::compute(
            12,
            &[
                candidate(1, 40, &c),
                jailed,
                slashed,
                candidate(4, 0, &c),
                candidate(5, 70, &[]),
            ],
            10,
        )
        .expect("distinct keys");
        assert_eq!(table.len(), 1);
        assert_eq!(table.power_of(&key(1)), Some(40));
        assert_eq!(table.total_power(), 40);
        // Round 20 is past the commitment: nobody is eligible.
        let later = PowerTable::compute(20, &[candidate(1, 40, &c)], 10).expect("distinct keys");
        assert!(later.is_empty());
        assert_eq!(later.total_power(), 0);
    }

    #[test]
    fn top_by_power_with_ties_broken_by_lower_key() {
        let c = commitments();
        let (a, b) = (key(7), key(8));
        let (low, high) = if a.serialize() < b.serialize() {
            (7, 8)
        } else {
            (8, 7)
        };
        let table = PowerTable::compute(
            10,
            &[
                candidate(high, 30, &c),
                candidate(9, 10, &c),
                candidate(low, 30, &c),
                candidate(6, 99, &c),
            ],
            2,
        )
        .expect("distinct keys");
        let keys: Vec<_> = table.members().map(|(k, _)| *k).collect();
        let mut expected = vec![key(6), key(low)];
        expected.sort();
        assert_eq!(keys, expected);
        assert_eq!(table.total_power(), 129);
    }

    #[test]
    fn a_repeated_candidate_is_refused() {
        let c = commitments();
        assert_eq!(
            PowerTable::compute(10, &[candidate(1, 1, &c), candidate(1, 2, &c)], 5),
            Err(PowerTableError::DuplicateCandidate {
                key: key(1),
                round: 10
            })
        );
    }

    #[test]
    fn total_power_does_not_overflow() {
        let c = commitments();
        let table = PowerTable::compute(
            10,
            &[candidate(1, u64::MAX, &c), candidate(2, u64::MAX, &c)],
            5,
        )
        .expect("distinct keys");
        assert_eq!(table.total_power(), 2 * u128::from(u64::MAX));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn the_active_set_is_the_top_by_power_whatever_the_input_order(
            powers in proptest::collection::vec(0u64..5, 1..12),
            cap in 0u32..12,
            order in Just((0..12usize).collect::<Vec<_>>()).prop_shuffle(),
        ) {
            let c = commitments();
            let candidates: Vec<Candidate<'_>> = powers
                .iter()
                .enumerate()
                .map(|(i, p)| candidate(i as u8 + 1, *p, &c))
                .collect();
            let shuffled: Vec<Candidate<'_>> = order
                .iter()
                .filter_map(|&i| candidates.get(i).copied())
                .collect();
            let table = PowerTable::compute(10, &candidates, cap).expect("distinct keys");
            prop_assert_eq!(
                &table,
                &PowerTable::compute(10, &shuffled, cap).expect("distinct keys")
            );
            let eligible = powers.iter().filter(|p| **p > 0).count();
            prop_assert_eq!(table.len(), eligible.min(cap as usize));
            // Every member outranks every eligible non-member: more power, or equal power
            // and a lower key.
            for out in candidates.iter().filter(|c| c.power > 0 && !table.contains(&c.key)) {
                for (key, power) in table.members() {
                    prop_assert!(
                        power > out.power
                            || (power == out.power && key.serialize() < out.key.serialize())
                    );
                }
            }
        }
    }

    #[test]
    fn key_order_is_byte_order() {
        let mut keys: Vec<XOnlyPublicKey> = (1..=20).map(key).collect();
        keys.sort();
        assert!(keys.windows(2).all(|w| w[0].serialize() < w[1].serialize()));
    }
}
