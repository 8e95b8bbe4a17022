//! Staking parameters (PROTOCOL §7), their own validation, and their versions by BTC height.
//!
//! A delegation uses the version in force at its staking transaction's inclusion height (or
//! at the tip before inclusion) and stores that version number.

use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::{Amount, ScriptBuf};
use serde::{Deserialize, Serialize};

use crate::keys::{sorted_keys, KeyError};
use crate::rate::SlashingRate;
use crate::script::MAX_TIMELOCK_BLOCKS;

/// One version of the staking parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    /// The covenant committee's keys (x-only, any order; scripts sort them).
    pub covenant_pks: Vec<XOnlyPublicKey>,
    /// Covenant signatures needed; more than half of the committee.
    pub covenant_quorum: u32,
    /// Least staking value, in satoshis.
    pub min_staking_value_sat: u64,
    /// Greatest staking value, in satoshis.
    pub max_staking_value_sat: u64,
    /// Least staking time, in blocks.
    pub min_staking_time_blocks: u32,
    /// Greatest staking time, in blocks (≤ 65535).
    pub max_staking_time_blocks: u32,
    /// Where slashed funds go.
    pub slashing_pk_script: ScriptBuf,
    /// Least fee of a slashing transaction, in satoshis.
    pub min_slashing_tx_fee_sat: u64,
    /// Least share of the stake a slashing transaction burns.
    pub slashing_rate: SlashingRate,
    /// The unbonding time `U`, in blocks; every unbonding output uses exactly this.
    pub unbonding_time_blocks: u32,
    /// The exact fee of an unbonding transaction, in satoshis.
    pub unbonding_fee_sat: u64,
    /// Confirmations (k) before a staking transaction counts.
    pub btc_confirmation_depth: u32,
    /// Size of the active verifier set.
    pub max_active_verifiers: u32,
    /// Least number of public randomness values in one commitment.
    pub min_pub_rand: u64,
    /// The identifiable-staking tag, if staking transactions may carry the V0 OP_RETURN.
    #[serde(default, with = "tag_hex")]
    pub identifiable_staking_tag: Option<[u8; 4]>,
    /// The BTC height from which this version is in force.
    pub btc_activation_height: u32,
    /// How many verifiers one delegation may name. PROTOCOL §8 registers exactly one (the
    /// default); Babylon's multi-network staking (as in the cosmos-bsn data) allows more.
    #[serde(default = "one")]
    pub max_verifiers_per_delegation: u32,
    /// Bounds on what one message may make the node store or compute; each has a default,
    /// so a params file written before them still loads.
    #[serde(flatten)]
    pub limits: ResourceLimits,
}

fn one() -> u32 {
    1
}

/// The resource limits of a params version (PROTOCOL §7): how much one registrant can make
/// every node store and compute. Each field has a default, used when a params file omits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceLimits {
    /// Most public randomness values in one commitment.
    #[serde(default = "default_max_pub_rand")]
    pub max_pub_rand: u64,
    /// Most proofs one round takes; later submissions wait for the next round or are refused.
    #[serde(default = "default_max_proofs_per_round")]
    pub max_proofs_per_round: u32,
    /// Most bytes of one proof submission (verifying key, proof and public inputs together).
    #[serde(default = "default_max_proof_bytes")]
    pub max_proof_bytes: u32,
    /// Most bytes of all the proofs of one round together.
    #[serde(default = "default_max_round_proof_bytes")]
    pub max_round_proof_bytes: u64,
    /// BTC blocks a PENDING or VERIFIED delegation lives without its staking transaction
    /// being included k-deep; after that it is dropped.
    #[serde(default = "default_pending_expiry_blocks")]
    pub pending_expiry_blocks: u32,
}

/// About eleven days of rounds at one round per 10 s.
pub const DEFAULT_MAX_PUB_RAND: u64 = 100_000;
/// Proofs per round by default.
pub const DEFAULT_MAX_PROOFS_PER_ROUND: u32 = 256;
/// Bytes of one proof submission by default.
pub const DEFAULT_MAX_PROOF_BYTES: u32 = 16 * 1024;
/// Bytes of one round's proofs by default.
pub const DEFAULT_MAX_ROUND_PROOF_BYTES: u64 = 1024 * 1024;
/// One week of blocks.
pub const DEFAULT_PENDING_EXPIRY_BLOCKS: u32 = 1008;

fn default_max_pub_rand() -> u64 {
    DEFAULT_MAX_PUB_RAND
}
fn default_max_proofs_per_round() -> u32 {
    DEFAULT_MAX_PROOFS_PER_ROUND
}
fn default_max_proof_bytes() -> u32 {
    DEFAULT_MAX_PROOF_BYTES
}
fn default_max_round_proof_bytes() -> u64 {
    DEFAULT_MAX_ROUND_PROOF_BYTES
}
fn default_pending_expiry_blocks() -> u32 {
    DEFAULT_PENDING_EXPIRY_BLOCKS
}

impl ResourceLimits {
    /// Checks that every limit admits something, and that a commitment of `min_pub_rand`
    /// values fits under `max_pub_rand`.
    pub fn validate(&self, min_pub_rand: u64) -> Result<(), ParamsError> {
        let limit = |field, value, reason| ParamsError::Limit {
            field,
            value,
            reason,
        };
        if self.max_pub_rand < min_pub_rand {
            return Err(limit(
                "max_pub_rand",
                self.max_pub_rand,
                "below min_pub_rand",
            ));
        }
        let zeros = [
            ("max_proofs_per_round", u64::from(self.max_proofs_per_round)),
            ("max_proof_bytes", u64::from(self.max_proof_bytes)),
            ("max_round_proof_bytes", self.max_round_proof_bytes),
            (
                "pending_expiry_blocks",
                u64::from(self.pending_expiry_blocks),
            ),
        ];
        match zeros.into_iter().find(|(_, value)| *value == 0) {
            Some((field, value)) => Err(limit(field, value, "must be at least 1")),
            None => Ok(()),
        }
    }
}

impl Default for ResourceLimits {
    fn default() -> Self {
        ResourceLimits {
            max_pub_rand: DEFAULT_MAX_PUB_RAND,
            max_proofs_per_round: DEFAULT_MAX_PROOFS_PER_ROUND,
            max_proof_bytes: DEFAULT_MAX_PROOF_BYTES,
            max_round_proof_bytes: DEFAULT_MAX_ROUND_PROOF_BYTES,
            pending_expiry_blocks: DEFAULT_PENDING_EXPIRY_BLOCKS,
        }
    }
}

/// Why a parameter version is invalid; one variant per rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// No covenant keys.
    #[error("covenant_pks is empty")]
    NoCovenantKeys,
    /// A covenant key listed twice.
    #[error("covenant key {0} is listed twice")]
    DuplicateCovenantKey(XOnlyPublicKey),
    /// Quorum not in (n/2, n].
    #[error("covenant_quorum {quorum} is not a majority of {keys} keys")]
    CovenantQuorum {
        /// The quorum.
        quorum: u32,
        /// The committee size.
        keys: usize,
    },
    /// Staking value bounds empty or starting at zero.
    #[error("staking value bounds [{min}, {max}] are not 0 < min <= max")]
    StakingValueBounds {
        /// `min_staking_value_sat`.
        min: u64,
        /// `max_staking_value_sat`.
        max: u64,
    },
    /// Staking time bounds outside 1..=65535 or empty.
    #[error("staking time bounds [{min}, {max}] are not 1 <= min <= max <= 65535")]
    StakingTimeBounds {
        /// `min_staking_time_blocks`.
        min: u32,
        /// `max_staking_time_blocks`.
        max: u32,
    },
    /// Unbonding time outside 1..=65535.
    #[error("unbonding_time_blocks {0} is not in 1..=65535")]
    UnbondingTime(u32),
    /// Unbonding fee not in (0, min staking value).
    #[error("unbonding_fee_sat {fee} is not in (0, {min_value})")]
    UnbondingFee {
        /// `unbonding_fee_sat`.
        fee: u64,
        /// `min_staking_value_sat`.
        min_value: u64,
    },
    /// Empty slashing script.
    #[error("slashing_pk_script is empty")]
    EmptySlashingScript,
    /// Zero minimum slashing fee.
    #[error("min_slashing_tx_fee_sat is 0")]
    ZeroSlashingFee,
    /// Zero confirmation depth.
    #[error("btc_confirmation_depth is 0")]
    ZeroConfirmationDepth,
    /// Zero active verifiers.
    #[error("max_active_verifiers is 0")]
    ZeroActiveVerifiers,
    /// Zero randomness per commitment.
    #[error("min_pub_rand is 0")]
    ZeroPubRand,
    /// Zero verifiers per delegation.
    #[error("max_verifiers_per_delegation is 0")]
    ZeroVerifiersPerDelegation,
    /// A resource limit that admits nothing, or a commitment length below `min_pub_rand`.
    #[error("{field} is {value}: {reason}")]
    Limit {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// What it must be.
        reason: &'static str,
    },
}

impl Params {
    /// Checks every rule of §7 on this version alone.
    pub fn validate(&self) -> Result<(), ParamsError> {
        if self.covenant_pks.is_empty() {
            return Err(ParamsError::NoCovenantKeys);
        }
        if let Err(KeyError::Duplicate(key)) = sorted_keys(&self.covenant_pks) {
            return Err(ParamsError::DuplicateCovenantKey(key));
        }
        let n = self.covenant_pks.len();
        let q = self.covenant_quorum as usize;
        if q > n || 2 * q <= n {
            return Err(ParamsError::CovenantQuorum {
                quorum: self.covenant_quorum,
                keys: n,
            });
        }
        let (min_v, max_v) = (self.min_staking_value_sat, self.max_staking_value_sat);
        if min_v == 0 || min_v > max_v {
            return Err(ParamsError::StakingValueBounds {
                min: min_v,
                max: max_v,
            });
        }
        let (min_t, max_t) = (self.min_staking_time_blocks, self.max_staking_time_blocks);
        if min_t == 0 || min_t > max_t || max_t > MAX_TIMELOCK_BLOCKS {
            return Err(ParamsError::StakingTimeBounds {
                min: min_t,
                max: max_t,
            });
        }
        if !(1..=MAX_TIMELOCK_BLOCKS).contains(&self.unbonding_time_blocks) {
            return Err(ParamsError::UnbondingTime(self.unbonding_time_blocks));
        }
        if self.unbonding_fee_sat == 0 || self.unbonding_fee_sat >= min_v {
            return Err(ParamsError::UnbondingFee {
                fee: self.unbonding_fee_sat,
                min_value: min_v,
            });
        }
        if self.slashing_pk_script.is_empty() {
            return Err(ParamsError::EmptySlashingScript);
        }
        let zero_checks = [
            (
                self.min_slashing_tx_fee_sat == 0,
                ParamsError::ZeroSlashingFee,
            ),
            (
                self.btc_confirmation_depth == 0,
                ParamsError::ZeroConfirmationDepth,
            ),
            (
                self.max_active_verifiers == 0,
                ParamsError::ZeroActiveVerifiers,
            ),
            (self.min_pub_rand == 0, ParamsError::ZeroPubRand),
            (
                self.max_verifiers_per_delegation == 0,
                ParamsError::ZeroVerifiersPerDelegation,
            ),
        ];
        if let Some((_, error)) = zero_checks.into_iter().find(|(zero, _)| *zero) {
            return Err(error);
        }
        self.limits.validate(self.min_pub_rand)
    }

    /// `unbonding_fee_sat` as an amount.
    pub fn unbonding_fee(&self) -> Amount {
        Amount::from_sat(self.unbonding_fee_sat)
    }

    /// `min_slashing_tx_fee_sat` as an amount.
    pub fn min_slashing_fee(&self) -> Amount {
        Amount::from_sat(self.min_slashing_tx_fee_sat)
    }
}

/// Why a list of parameter versions is invalid, or has no version for a height.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsVersionsError {
    /// No versions at all.
    #[error("no parameter versions")]
    Empty,
    /// A version breaks a rule of §7.
    #[error("parameter version {version}: {error}")]
    Invalid {
        /// The version number (its index).
        version: u32,
        /// The broken rule.
        error: ParamsError,
    },
    /// Activation heights must strictly increase with the version.
    #[error(
        "version {version} activates at {height}, not after version {previous}'s {previous_height}"
    )]
    NotIncreasing {
        /// The offending version.
        version: u32,
        /// Its activation height.
        height: u32,
        /// The version before it.
        previous: u32,
        /// That version's activation height.
        previous_height: u32,
    },
    /// A height before the first version activates.
    #[error(
        "no parameters in force at btc height {height}: the first version activates at {first}"
    )]
    BeforeActivation {
        /// The height asked for.
        height: u32,
        /// The first activation height.
        first: u32,
    },
}

/// All parameter versions, numbered from 0, with strictly increasing activation heights.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Params>", into = "Vec<Params>")]
pub struct ParamsVersions {
    versions: Vec<Params>,
}

impl ParamsVersions {
    /// Checks each version and their order.
    pub fn new(versions: Vec<Params>) -> Result<Self, ParamsVersionsError> {
        if versions.is_empty() {
            return Err(ParamsVersionsError::Empty);
        }
        let mut checked = ParamsVersions {
            versions: Vec::with_capacity(versions.len()),
        };
        for params in versions {
            checked.push(params)?;
        }
        Ok(checked)
    }

    /// Adds a new version, which must activate after the latest one; returns its number.
    pub fn push(&mut self, params: Params) -> Result<u32, ParamsVersionsError> {
        // Version numbers are indices; a chain of 2^32 parameter versions cannot exist in memory.
        let version = self.versions.len() as u32;
        params
            .validate()
            .map_err(|error| ParamsVersionsError::Invalid { version, error })?;
        if let Some(last) = self.versions.last() {
            if params.btc_activation_height <= last.btc_activation_height {
                return Err(ParamsVersionsError::NotIncreasing {
                    version,
                    height: params.btc_activation_height,
                    previous: version - 1,
                    previous_height: last.btc_activation_height,
                });
            }
        }
        self.versions.push(params);
        Ok(version)
    }

    /// The version in force at BTC height `height`: the last one activated at or below it.
    pub fn at_height(&self, height: u32) -> Result<(u32, &Params), ParamsVersionsError> {
        let after = self
            .versions
            .partition_point(|p| p.btc_activation_height <= height);
        // `versions` is never empty: `new` refuses an empty list and `push` only adds.
        match after.checked_sub(1) {
            Some(index) => Ok((index as u32, &self.versions[index])),
            None => Err(ParamsVersionsError::BeforeActivation {
                height,
                first: self.versions[0].btc_activation_height,
            }),
        }
    }

    /// Version `version`, if it exists.
    pub fn get(&self, version: u32) -> Option<&Params> {
        self.versions.get(version as usize)
    }

    /// The newest version and its number.
    pub fn latest(&self) -> (u32, &Params) {
        // Never empty (see `at_height`), so the last index exists.
        let index = self.versions.len() - 1;
        (index as u32, &self.versions[index])
    }

    /// All versions, oldest first.
    pub fn versions(&self) -> &[Params] {
        &self.versions
    }
}

impl TryFrom<Vec<Params>> for ParamsVersions {
    type Error = ParamsVersionsError;

    fn try_from(versions: Vec<Params>) -> Result<Self, Self::Error> {
        ParamsVersions::new(versions)
    }
}

impl From<ParamsVersions> for Vec<Params> {
    fn from(versions: ParamsVersions) -> Self {
        versions.versions
    }
}

/// Serde for the optional 4-byte tag as 8 hex characters.
mod tag_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(tag: &Option<[u8; 4]>, s: S) -> Result<S::Ok, S::Error> {
        match tag {
            Some(t) => s.serialize_some(&hex::encode(t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u8; 4]>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        let bytes = hex::decode(&text).map_err(serde::de::Error::custom)?;
        let tag = <[u8; 4]>::try_from(bytes.as_slice())
            .map_err(|_| serde::de::Error::custom(format!("tag {text:?} is not 4 bytes of hex")))?;
        Ok(Some(tag))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testutil::key;

    /// A valid parameter version used across the crate's tests.
    pub(crate) fn params() -> Params {
        Params {
            covenant_pks: vec![key(11), key(12), key(13), key(14), key(15)],
            covenant_quorum: 3,
            min_staking_value_sat: 10_000,
            max_staking_value_sat: 10_000_000_000,
            min_staking_time_blocks: 10,
            max_staking_time_blocks: 65_535,
            slashing_pk_script: ScriptBuf::from_bytes(
                hex::decode("76a914356fde516750d3a7781eababc9fbba011dfdebd088ac").unwrap(),
            ),
            min_slashing_tx_fee_sat: 1_000,
            slashing_rate: "0.1".parse().unwrap(),
            unbonding_time_blocks: 101,
            unbonding_fee_sat: 1_000,
            btc_confirmation_depth: 6,
            max_active_verifiers: 100,
            min_pub_rand: 100,
            identifiable_staking_tag: Some(*b"fmma"),
            btc_activation_height: 100,
            max_verifiers_per_delegation: 1,
            limits: ResourceLimits::default(),
        }
    }

    fn invalid(change: impl FnOnce(&mut Params)) -> ParamsError {
        let mut p = params();
        change(&mut p);
        p.validate().unwrap_err()
    }

    #[test]
    fn the_test_params_are_valid() {
        assert_eq!(params().validate(), Ok(()));
    }

    #[test]
    fn each_rule_has_its_error() {
        type Change = fn(&mut Params);
        let cases: Vec<(Change, ParamsError)> = vec![
            (|p| p.covenant_pks.clear(), ParamsError::NoCovenantKeys),
            (
                |p| p.covenant_pks[1] = key(11),
                ParamsError::DuplicateCovenantKey(key(11)),
            ),
            (
                |p| p.covenant_quorum = 2,
                ParamsError::CovenantQuorum { quorum: 2, keys: 5 },
            ),
            (
                |p| p.covenant_quorum = 6,
                ParamsError::CovenantQuorum { quorum: 6, keys: 5 },
            ),
            (
                |p| p.min_staking_value_sat = 0,
                ParamsError::StakingValueBounds {
                    min: 0,
                    max: 10_000_000_000,
                },
            ),
            (
                |p| p.max_staking_value_sat = 9_999,
                ParamsError::StakingValueBounds {
                    min: 10_000,
                    max: 9_999,
                },
            ),
            (
                |p| p.max_staking_time_blocks = 65_536,
                ParamsError::StakingTimeBounds {
                    min: 10,
                    max: 65_536,
                },
            ),
            (
                |p| p.min_staking_time_blocks = 0,
                ParamsError::StakingTimeBounds {
                    min: 0,
                    max: 65_535,
                },
            ),
            (
                |p| p.unbonding_time_blocks = 0,
                ParamsError::UnbondingTime(0),
            ),
            (
                |p| p.unbonding_fee_sat = 10_000,
                ParamsError::UnbondingFee {
                    fee: 10_000,
                    min_value: 10_000,
                },
            ),
            (
                |p| p.unbonding_fee_sat = 0,
                ParamsError::UnbondingFee {
                    fee: 0,
                    min_value: 10_000,
                },
            ),
            (
                |p| p.slashing_pk_script = ScriptBuf::new(),
                ParamsError::EmptySlashingScript,
            ),
            (
                |p| p.min_slashing_tx_fee_sat = 0,
                ParamsError::ZeroSlashingFee,
            ),
            (
                |p| p.btc_confirmation_depth = 0,
                ParamsError::ZeroConfirmationDepth,
            ),
            (
                |p| p.max_active_verifiers = 0,
                ParamsError::ZeroActiveVerifiers,
            ),
            (|p| p.min_pub_rand = 0, ParamsError::ZeroPubRand),
            (
                |p| p.limits.max_pub_rand = p.min_pub_rand - 1,
                ParamsError::Limit {
                    field: "max_pub_rand",
                    value: 99,
                    reason: "below min_pub_rand",
                },
            ),
            (
                |p| p.limits.max_proofs_per_round = 0,
                zero_limit("max_proofs_per_round"),
            ),
            (
                |p| p.limits.max_proof_bytes = 0,
                zero_limit("max_proof_bytes"),
            ),
            (
                |p| p.limits.max_round_proof_bytes = 0,
                zero_limit("max_round_proof_bytes"),
            ),
            (
                |p| p.limits.pending_expiry_blocks = 0,
                zero_limit("pending_expiry_blocks"),
            ),
            (
                |p| p.max_verifiers_per_delegation = 0,
                ParamsError::ZeroVerifiersPerDelegation,
            ),
        ];
        for (change, expected) in cases {
            assert_eq!(invalid(change), expected);
        }
    }

    fn at(height: u32) -> Params {
        Params {
            btc_activation_height: height,
            ..params()
        }
    }

    #[test]
    fn versions_pick_the_one_in_force() {
        let v = ParamsVersions::new(vec![at(100), at(200), at(300)]).unwrap();
        assert_eq!(
            v.at_height(99),
            Err(ParamsVersionsError::BeforeActivation {
                height: 99,
                first: 100
            })
        );
        assert_eq!(v.at_height(100).unwrap().0, 0);
        assert_eq!(v.at_height(199).unwrap().0, 0);
        assert_eq!(v.at_height(200).unwrap().0, 1);
        assert_eq!(v.at_height(u32::MAX).unwrap().0, 2);
        assert_eq!(v.latest().0, 2);
        assert_eq!(v.get(1).unwrap().btc_activation_height, 200);
        assert!(v.get(3).is_none());
    }

    #[test]
    fn versions_must_be_valid_ordered_and_present() {
        assert_eq!(ParamsVersions::new(vec![]), Err(ParamsVersionsError::Empty));
        assert_eq!(
            ParamsVersions::new(vec![at(100), at(100)]),
            Err(ParamsVersionsError::NotIncreasing {
                version: 1,
                height: 100,
                previous: 0,
                previous_height: 100
            })
        );
        let mut bad = at(200);
        bad.min_pub_rand = 0;
        assert_eq!(
            ParamsVersions::new(vec![at(100), bad]),
            Err(ParamsVersionsError::Invalid {
                version: 1,
                error: ParamsError::ZeroPubRand
            })
        );
    }

    fn zero_limit(field: &'static str) -> ParamsError {
        ParamsError::Limit {
            field,
            value: 0,
            reason: "must be at least 1",
        }
    }

    #[test]
    fn limits_default_when_absent_and_load_flat() {
        let mut json = serde_json::to_value(params()).unwrap();
        assert_eq!(json["max_proofs_per_round"], DEFAULT_MAX_PROOFS_PER_ROUND);
        let object = json.as_object_mut().unwrap();
        for field in [
            "max_pub_rand",
            "max_proofs_per_round",
            "max_proof_bytes",
            "max_round_proof_bytes",
            "pending_expiry_blocks",
        ] {
            assert!(
                object.remove(field).is_some(),
                "{field} is not a flat field"
            );
        }
        object.insert("pending_expiry_blocks".into(), 6.into());
        let loaded: Params = serde_json::from_value(json).unwrap();
        assert_eq!(loaded.limits.pending_expiry_blocks, 6);
        assert_eq!(loaded.limits.max_pub_rand, DEFAULT_MAX_PUB_RAND);
    }

    #[test]
    fn serde_round_trip_and_validation_on_load() {
        let v = ParamsVersions::new(vec![at(100), at(200)]).unwrap();
        let json = serde_json::to_string(&v).unwrap();
        assert!(json.contains("\"identifiable_staking_tag\":\"666d6d61\""));
        assert!(json.contains("\"slashing_rate\":\"0.1\""));
        assert_eq!(serde_json::from_str::<ParamsVersions>(&json).unwrap(), v);
        let reversed = serde_json::to_string(&vec![at(200), at(100)]).unwrap();
        assert!(serde_json::from_str::<ParamsVersions>(&reversed).is_err());
    }
}
