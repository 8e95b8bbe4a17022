//! Checkpoint parameters (§13.1) and checkpoint rounds (§13.6).
//!
//! A round h is a checkpoint round when h ≡ 0 (mod N) (*scheduled*), or when the node
//! declares a *rotation round* because the live part of the base set has fallen below 3/4 of
//! its weight (4·live < 3·W), at most one per `vote_expiry` rounds. Verifiers recompute the
//! kind from the same inputs and refuse to sign on disagreement.

use bitcoin::{Amount, OutPoint};
use secp256k1::XOnlyPublicKey;

use super::candidate::MIN_CHECKPOINT_VALUE;
use super::weights::{CheckpointSet, MAX_CHECKPOINT_SET};

/// The checkpoint parameters, versioned with PROTOCOL §7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointParams {
    /// The first checkpoint output.
    pub genesis: OutPoint,
    /// The round h₀ whose set the genesis output encodes.
    pub genesis_round: u64,
    /// V, the value of every checkpoint output.
    pub value: Amount,
    /// N, the interval of scheduled checkpoint rounds.
    pub interval_rounds: u64,
    /// R, the blocks after which the covenant committee may spend a checkpoint output.
    pub recovery_blocks: u32,
}

impl CheckpointParams {
    /// `checkpoint_value_sat` default: 1,000 sat.
    pub const DEFAULT_VALUE: Amount = Amount::from_sat(1_000);
    /// `checkpoint_interval_rounds` default: 2,160 (6 h at 10-s rounds).
    pub const DEFAULT_INTERVAL_ROUNDS: u64 = 2_160;

    /// Checks the parameters against the staking parameters they live with: V ≥ 330,
    /// N ≥ 1, 2k ≤ R ≤ U/2 (k = `btc_confirmation_depth`, U = `unbonding_time_blocks`)
    /// and `max_active_verifiers` ≤ 365.
    ///
    /// # Errors
    /// [`CheckpointParamsError`] naming the first violated rule.
    pub fn validate(
        &self,
        confirmation_depth: u32,
        unbonding_time_blocks: u32,
        max_active_verifiers: u32,
    ) -> Result<(), CheckpointParamsError> {
        if self.value < MIN_CHECKPOINT_VALUE {
            return Err(CheckpointParamsError::Value(self.value));
        }
        if self.interval_rounds == 0 {
            return Err(CheckpointParamsError::Interval);
        }
        let low = confirmation_depth.saturating_mul(2);
        let high = unbonding_time_blocks / 2;
        if self.recovery_blocks < low || self.recovery_blocks > high || self.recovery_blocks == 0 {
            return Err(CheckpointParamsError::RecoveryBlocks {
                blocks: self.recovery_blocks,
                low,
                high,
            });
        }
        if max_active_verifiers as usize > MAX_CHECKPOINT_SET {
            return Err(CheckpointParamsError::MaxActiveVerifiers(
                max_active_verifiers,
            ));
        }
        Ok(())
    }
}

/// A violated parameter rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointParamsError {
    /// V below P2TR dust.
    #[error("checkpoint_value_sat {0} is below 330 sat")]
    Value(Amount),
    /// N = 0.
    #[error("checkpoint_interval_rounds must be at least 1")]
    Interval,
    /// R outside 2k..=U/2.
    #[error("checkpoint_recovery_blocks {blocks} is not in {low}..={high} (2k..=U/2)")]
    RecoveryBlocks {
        /// R.
        blocks: u32,
        /// 2k.
        low: u32,
        /// U/2.
        high: u32,
    },
    /// More than 365 active verifiers would not fit TRUC's 10,000 vB.
    #[error("max_active_verifiers {0} is above 365, the largest set a checkpoint carries")]
    MaxActiveVerifiers(u32),
}

/// What kind of round h is for checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoundKind {
    /// No checkpoint: the round has its §10 vote.
    Ordinary,
    /// h ≡ 0 (mod N).
    Scheduled,
    /// A rotation round: the base set's live weight fell below 3/4.
    Rotation,
}

impl RoundKind {
    /// Whether the round is a checkpoint round (its vote is the checkpoint signature).
    pub fn is_checkpoint(self) -> bool {
        self != RoundKind::Ordinary
    }
}

/// The inputs of the round-kind decision, all from the node's state at round h.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointRules {
    /// N.
    pub interval_rounds: u64,
    /// The finality module's `vote_expiry` in rounds: at most one rotation round per window.
    pub vote_expiry: u64,
}

impl CheckpointRules {
    /// Whether the base set needs a rotation: 4·live < 3·W, where live is the weight of the
    /// base members that `is_live` (active at h and not slashed).
    pub fn needs_rotation(
        base_set: &CheckpointSet,
        is_live: impl Fn(&XOnlyPublicKey) -> bool,
    ) -> bool {
        let live: u64 = base_set
            .members()
            .iter()
            .filter(|m| is_live(&m.key))
            .map(|m| u64::from(m.weight))
            .sum();
        4 * live < 3 * u64::from(base_set.total_weight())
    }

    /// The kind of round h, given the base set, which of its members are live, the round of
    /// the base checkpoint and the last rotation round (if any).
    ///
    /// A round no later than the base's round is never a checkpoint round (§13.4 rule 2).
    pub fn round_kind(
        &self,
        round: u64,
        base_round: u64,
        base_set: &CheckpointSet,
        is_live: impl Fn(&XOnlyPublicKey) -> bool,
        last_rotation: Option<u64>,
    ) -> RoundKind {
        if round <= base_round {
            return RoundKind::Ordinary;
        }
        if self.interval_rounds > 0 && round % self.interval_rounds == 0 {
            return RoundKind::Scheduled;
        }
        let rotation_allowed =
            last_rotation.is_none_or(|last| round >= last.saturating_add(self.vote_expiry.max(1)));
        if rotation_allowed && Self::needs_rotation(base_set, is_live) {
            RoundKind::Rotation
        } else {
            RoundKind::Ordinary
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::testkit::key;
    use bitcoin::hashes::Hash;

    fn params(value: u64, recovery_blocks: u32) -> CheckpointParams {
        CheckpointParams {
            genesis: OutPoint::new(bitcoin::Txid::all_zeros(), 0),
            genesis_round: 0,
            value: Amount::from_sat(value),
            interval_rounds: CheckpointParams::DEFAULT_INTERVAL_ROUNDS,
            recovery_blocks,
        }
    }

    #[test]
    fn parameter_rules() {
        // k = 6, U = 1008: R in 12..=504.
        assert_eq!(params(1_000, 504).validate(6, 1_008, 365), Ok(()));
        assert_eq!(params(1_000, 12).validate(6, 1_008, 100), Ok(()));
        assert_eq!(
            params(329, 504).validate(6, 1_008, 100),
            Err(CheckpointParamsError::Value(Amount::from_sat(329)))
        );
        assert!(matches!(
            params(1_000, 11).validate(6, 1_008, 100),
            Err(CheckpointParamsError::RecoveryBlocks {
                blocks: 11,
                low: 12,
                high: 504
            })
        ));
        assert!(params(1_000, 505).validate(6, 1_008, 100).is_err());
        assert_eq!(
            params(1_000, 504).validate(6, 1_008, 366),
            Err(CheckpointParamsError::MaxActiveVerifiers(366))
        );
        let mut p = params(1_000, 504);
        p.interval_rounds = 0;
        assert_eq!(
            p.validate(6, 1_008, 1),
            Err(CheckpointParamsError::Interval)
        );
    }

    #[test]
    fn scheduled_rotation_and_ordinary_rounds() {
        let set = CheckpointSet::from_powers([(key(1), 1), (key(2), 1), (key(3), 2)]).unwrap();
        let rules = CheckpointRules {
            interval_rounds: 100,
            vote_expiry: 10,
        };
        let all = |_: &XOnlyPublicKey| true;
        let without_3 = |k: &XOnlyPublicKey| *k != key(3);
        let without_1 = |k: &XOnlyPublicKey| *k != key(1);
        assert_eq!(
            rules.round_kind(200, 100, &set, all, None),
            RoundKind::Scheduled
        );
        assert_eq!(
            rules.round_kind(100, 100, &set, all, None),
            RoundKind::Ordinary
        );
        assert_eq!(
            rules.round_kind(150, 100, &set, all, None),
            RoundKind::Ordinary
        );
        // Exactly 3/4 live is no rotation; below is.
        assert_eq!(
            rules.round_kind(150, 100, &set, without_1, None),
            RoundKind::Ordinary
        );
        assert_eq!(
            rules.round_kind(150, 100, &set, without_3, None),
            RoundKind::Rotation
        );
        // At most one rotation per vote_expiry rounds.
        assert_eq!(
            rules.round_kind(155, 100, &set, without_3, Some(150)),
            RoundKind::Ordinary
        );
        assert_eq!(
            rules.round_kind(160, 100, &set, without_3, Some(150)),
            RoundKind::Rotation
        );
        assert!(RoundKind::Rotation.is_checkpoint());
        assert!(!RoundKind::Ordinary.is_checkpoint());
    }
}
