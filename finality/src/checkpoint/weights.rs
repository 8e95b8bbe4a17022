//! Stake weights (§13.2): a round's power table quantized so that Bitcoin Script, which has
//! no multiplication and 4-byte numbers, can add up the signers' stake.
//!
//! wᵢ = ⌊pᵢ·Q/P⌋ exactly (u128), with Q = 2²³ − 1; zero weights are left out; members are
//! ascending by x-only key. A signer subset *qualifies* iff its weight is at least
//! T = ⌊2Q/3⌋ + 1. Since wᵢ·P ≤ pᵢ·Q, a qualifying subset holds Σp ≥ T·P/Q > 2P/3 of the exact
//! power: strictly more than two thirds, never exactly two thirds.

use std::collections::BTreeMap;

use secp256k1::XOnlyPublicKey;

use crate::rounds::PowerTable;

/// Q = 2²³ − 1: the total weight a set is scaled to. Every weight and partial sum fits a
/// 3-byte positive script number.
pub const WEIGHT_SCALE: u32 = (1 << 23) - 1;

/// T = ⌊2Q/3⌋ + 1 = 5,592,405 (0x555555): the weight a qualifying signer subset reaches.
pub const THRESHOLD: u32 = 2 * WEIGHT_SCALE / 3 + 1;

/// The largest set a checkpoint may carry: every all-signing candidate then fits TRUC's
/// 10,000 vB (§13.10).
pub const MAX_CHECKPOINT_SET: usize = 365;

/// One member of a set: its key and weight (1..=Q).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SetMember {
    /// The verifier's x-only key.
    pub key: XOnlyPublicKey,
    /// Its weight.
    pub weight: u32,
}

/// Why a set could not be formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    /// The powers sum to zero: nobody could ever sign.
    #[error("the power table has no power")]
    NoPower,
    /// A key appears twice.
    #[error("verifier {0} appears twice in the set")]
    DuplicateKey(XOnlyPublicKey),
    /// More members than a checkpoint can carry.
    #[error("{0} members with a nonzero weight, a checkpoint carries at most 365")]
    TooManyMembers(usize),
    /// A weight of zero or above Q in an explicit member list.
    #[error("weight {weight} of {key} is not in 1..=8388607")]
    Weight {
        /// The member.
        key: XOnlyPublicKey,
        /// Its weight.
        weight: u32,
    },
    /// Members not strictly ascending by key in an explicit member list.
    #[error("set members are not strictly ascending by key at {0}")]
    Order(XOnlyPublicKey),
    /// The weights of an explicit member list sum above Q.
    #[error("set weights sum to {0}, above 8388607")]
    TotalWeight(u64),
    /// The set is empty.
    #[error("the set has no member")]
    Empty,
}

/// The set of one round: members ascending by key, each with a weight ≥ 1, Σw ≤ Q.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CheckpointSet {
    members: Vec<SetMember>,
    total: u32,
}

impl CheckpointSet {
    /// Quantizes a power table given as (key, power) pairs in any order: wᵢ = ⌊pᵢ·Q/P⌋ with
    /// P = Σp, computed exactly; members with weight zero are left out.
    ///
    /// # Errors
    /// [`SetError::DuplicateKey`], [`SetError::NoPower`], or [`SetError::TooManyMembers`]
    /// when more than 365 members keep a weight.
    pub fn from_powers(
        powers: impl IntoIterator<Item = (XOnlyPublicKey, u64)>,
    ) -> Result<Self, SetError> {
        let mut by_key: BTreeMap<[u8; 32], (XOnlyPublicKey, u64)> = BTreeMap::new();
        for (key, power) in powers {
            if by_key.insert(key.serialize(), (key, power)).is_some() {
                return Err(SetError::DuplicateKey(key));
            }
        }
        let total: u128 = by_key.values().map(|(_, p)| u128::from(*p)).sum();
        if total == 0 {
            return Err(SetError::NoPower);
        }
        let members: Vec<SetMember> = by_key
            .into_values()
            .filter_map(|(key, power)| {
                // p·Q < 2⁶⁴·2²³ fits u128; the quotient is ≤ Q because p ≤ P.
                let weight = u128::from(power) * u128::from(WEIGHT_SCALE) / total;
                u32::try_from(weight)
                    .ok()
                    .filter(|w| *w > 0)
                    .map(|weight| SetMember { key, weight })
            })
            .collect();
        if members.len() > MAX_CHECKPOINT_SET {
            return Err(SetError::TooManyMembers(members.len()));
        }
        Self::from_members(members)
    }

    /// The set of a round's power table (§10).
    ///
    /// # Errors
    /// As [`CheckpointSet::from_powers`].
    pub fn from_power_table(table: &PowerTable) -> Result<Self, SetError> {
        Self::from_powers(table.members().map(|(k, p)| (*k, p)))
    }

    /// A set from explicit members, as parsed from a quorum leaf: strictly ascending keys,
    /// weights in 1..=Q, Σw ≤ Q (the count is not limited here: Bitcoin consensus has no
    /// such limit, and a reader must accept what consensus accepted).
    ///
    /// # Errors
    /// [`SetError::Empty`], [`SetError::Weight`], [`SetError::Order`] or
    /// [`SetError::TotalWeight`].
    pub fn from_members(members: Vec<SetMember>) -> Result<Self, SetError> {
        if members.is_empty() {
            return Err(SetError::Empty);
        }
        let mut total: u64 = 0;
        for (i, m) in members.iter().enumerate() {
            if m.weight == 0 || m.weight > WEIGHT_SCALE {
                return Err(SetError::Weight {
                    key: m.key,
                    weight: m.weight,
                });
            }
            if i > 0 && members[i - 1].key.serialize() >= m.key.serialize() {
                return Err(SetError::Order(m.key));
            }
            total += u64::from(m.weight);
        }
        let total = u32::try_from(total)
            .ok()
            .filter(|t| *t <= WEIGHT_SCALE)
            .ok_or(SetError::TotalWeight(total))?;
        Ok(CheckpointSet { members, total })
    }

    /// The members, ascending by key.
    pub fn members(&self) -> &[SetMember] {
        &self.members
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Always false: a set has at least one member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// W = Σw (≤ Q).
    pub fn total_weight(&self) -> u32 {
        self.total
    }

    /// The weight of `key`, `None` when it is not a member.
    pub fn weight_of(&self, key: &XOnlyPublicKey) -> Option<u32> {
        let bytes = key.serialize();
        self.members
            .binary_search_by(|m| m.key.serialize().cmp(&bytes))
            .ok()
            .map(|i| self.members[i].weight)
    }

    /// Whether `key` is a member.
    pub fn contains(&self, key: &XOnlyPublicKey) -> bool {
        self.weight_of(key).is_some()
    }

    /// The summed weight of the distinct members among `signers` (non-members count nothing).
    pub fn signed_weight<'a>(&self, signers: impl IntoIterator<Item = &'a XOnlyPublicKey>) -> u32 {
        let mut seen = std::collections::BTreeSet::new();
        signers
            .into_iter()
            .filter(|k| seen.insert(k.serialize()))
            .filter_map(|k| self.weight_of(k))
            .sum()
    }

    /// Whether `signers` qualify: their weight is at least T.
    pub fn qualifies<'a>(&self, signers: impl IntoIterator<Item = &'a XOnlyPublicKey>) -> bool {
        self.signed_weight(signers) >= THRESHOLD
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rounds::has_quorum;
    use proptest::prelude::*;
    use secp256k1::{Keypair, SECP256K1};

    fn key(i: u16) -> XOnlyPublicKey {
        let mut sk = [0u8; 32];
        sk[30..].copy_from_slice(&(i + 1).to_be_bytes());
        Keypair::from_seckey_slice(SECP256K1, &sk)
            .expect("valid key")
            .x_only_public_key()
            .0
    }

    fn set(powers: &[u64]) -> CheckpointSet {
        CheckpointSet::from_powers(powers.iter().enumerate().map(|(i, p)| (key(i as u16), *p)))
            .expect("set")
    }

    #[test]
    fn constants_are_the_spec_values() {
        assert_eq!(WEIGHT_SCALE, 8_388_607);
        assert_eq!(THRESHOLD, 5_592_405);
        assert_eq!(THRESHOLD, 0x55_5555);
    }

    #[test]
    fn spec_threshold_cases() {
        // (a) (2, 1): the first alone holds exactly 2/3 and weighs T − 1.
        let s = set(&[2, 1]);
        assert_eq!(s.weight_of(&key(0)), Some(THRESHOLD - 1));
        assert!(!s.qualifies([&key(0)]));
        assert!(s.qualifies([&key(0), &key(1)]));
        // (b) (1, 1, 1): two of three is exactly 2/3.
        let s = set(&[1, 1, 1]);
        assert!(!s.qualifies([&key(0), &key(1)]));
        assert!(s.qualifies([&key(0), &key(1), &key(2)]));
        // (c) (200001, 100000): 66.6671 % qualifies.
        assert!(set(&[200_001, 100_000]).qualifies([&key(0)]));
        // (d) (200000001, 100000000): above 2/3 by §10, but one floor short here.
        let s = set(&[200_000_001, 100_000_000]);
        assert!(has_quorum(200_000_001, 300_000_001));
        assert_eq!(s.weight_of(&key(0)), Some(THRESHOLD - 1));
        assert!(!s.qualifies([&key(0)]));
    }

    #[test]
    fn zero_weights_are_left_out_and_bad_tables_refused() {
        let s = set(&[u64::MAX, 1, 0]);
        assert_eq!(s.len(), 1);
        assert_eq!(s.total_weight(), WEIGHT_SCALE - 1);
        assert_eq!(
            CheckpointSet::from_powers([(key(0), 0)]),
            Err(SetError::NoPower)
        );
        assert_eq!(
            CheckpointSet::from_powers([(key(0), 1), (key(0), 2)]),
            Err(SetError::DuplicateKey(key(0)))
        );
        let many = (0..366).map(|i| (key(i), 1));
        assert_eq!(
            CheckpointSet::from_powers(many),
            Err(SetError::TooManyMembers(366))
        );
        assert_eq!(set(&vec![1; 365]).len(), 365);
    }

    #[test]
    fn explicit_members_are_checked() {
        let s = set(&[1, 1]);
        let mut members = s.members().to_vec();
        members.swap(0, 1);
        assert!(matches!(
            CheckpointSet::from_members(members.clone()),
            Err(SetError::Order(_))
        ));
        members.swap(0, 1);
        members[0].weight = WEIGHT_SCALE;
        assert!(matches!(
            CheckpointSet::from_members(members.clone()),
            Err(SetError::TotalWeight(_))
        ));
        members[0].weight = 0;
        assert!(matches!(
            CheckpointSet::from_members(members),
            Err(SetError::Weight { weight: 0, .. })
        ));
        assert_eq!(CheckpointSet::from_members(vec![]), Err(SetError::Empty));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// A qualifying subset always holds more than 2/3 of the exact power (§10's rule), and
        /// any subset with Σp/P ≥ 2/3 + |S|/Q qualifies.
        #[test]
        fn qualifying_is_never_weaker_than_the_tally(
            powers in proptest::collection::vec(0u64..=u64::MAX / 400, 1..12),
            mask in any::<u16>(),
        ) {
            prop_assume!(powers.iter().any(|p| *p > 0));
            let s = set(&powers);
            prop_assert!(s.total_weight() <= WEIGHT_SCALE);
            let total: u128 = powers.iter().map(|p| u128::from(*p)).sum();
            let chosen: Vec<usize> = (0..powers.len()).filter(|i| mask & (1 << i) != 0).collect();
            let keys: Vec<XOnlyPublicKey> = chosen.iter().map(|i| key(*i as u16)).collect();
            let voted: u128 = chosen.iter().map(|i| u128::from(powers[*i])).sum();
            if s.qualifies(keys.iter()) {
                prop_assert!(has_quorum(voted, total));
            }
            // Σp/P ≥ 2/3 + |S|/Q  ⇔  3·Q·Σp ≥ 2·Q·P + 3·|S|·P
            let n = chosen.len() as u128;
            let q = u128::from(WEIGHT_SCALE);
            if 3 * q * voted >= 2 * q * total + 3 * n * total {
                prop_assert!(s.qualifies(keys.iter()));
            }
        }
    }
}
