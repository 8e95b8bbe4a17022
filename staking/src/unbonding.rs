//! The unbonding transaction (PROTOCOL §4): version 2, one input spending the staking output,
//! one output — the unbonding output worth exactly `staking value − unbonding_fee_sat` —
//! locktime 0.

use bitcoin::absolute::LockTime;
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, Transaction};

use crate::keys::StakingKeys;
use crate::spend::{check_spend_shape, funding_input, SpendShapeError};
use crate::taproot::{TaprootError, TaprootOutput};

/// Why an unbonding transaction could not be built or was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnbondingError {
    /// The fee leaves nothing to unbond.
    #[error("unbonding fee {fee} is not below the staking value {value}")]
    FeeTooHigh {
        /// The unbonding fee.
        fee: Amount,
        /// The staking value.
        value: Amount,
    },
    /// The unbonding output could not be built.
    #[error(transparent)]
    Output(#[from] TaprootError),
    /// A version other than 2.
    #[error("unbonding transaction version {0}, expected 2")]
    Version(i32),
    /// The input or locktime break the protocol's spend shape.
    #[error("unbonding transaction: {0}")]
    Shape(#[from] SpendShapeError),
    /// Not exactly one output.
    #[error("unbonding transaction has {0} outputs, expected exactly 1")]
    OutputCount(usize),
    /// The output does not pay to the unbonding output.
    #[error("unbonding output script {got} differs from the expected {want}")]
    OutputScript {
        /// The script found, hex.
        got: String,
        /// The expected unbonding output script, hex.
        want: String,
    },
    /// The output value is not exactly staking value − unbonding fee.
    #[error("unbonding output value {got}, expected exactly {want}")]
    OutputValue {
        /// The value found.
        got: Amount,
        /// Staking value minus the unbonding fee.
        want: Amount,
    },
}

/// The unbonding output value: `staking_value − unbonding_fee`, which must stay positive.
pub fn unbonding_value(
    staking_value: Amount,
    unbonding_fee: Amount,
) -> Result<Amount, UnbondingError> {
    match staking_value.checked_sub(unbonding_fee) {
        Some(v) if v > Amount::ZERO => Ok(v),
        _ => Err(UnbondingError::FeeTooHigh {
            fee: unbonding_fee,
            value: staking_value,
        }),
    }
}

/// Builds the unsigned unbonding transaction spending `staking_outpoint`, and its output.
pub fn build_unbonding_tx(
    keys: &StakingKeys,
    staking_outpoint: OutPoint,
    staking_value: Amount,
    unbonding_time: u32,
    unbonding_fee: Amount,
) -> Result<(Transaction, TaprootOutput), UnbondingError> {
    let value = unbonding_value(staking_value, unbonding_fee)?;
    let output = TaprootOutput::unbonding(keys, unbonding_time)?;
    let tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![funding_input(staking_outpoint)],
        output: vec![output.txout(value)],
    };
    Ok((tx, output))
}

/// Checks every rule of the unbonding transaction against the expected `unbonding_output`
/// (built with the exact unbonding time) and returns the unbonded value.
pub fn validate_unbonding_tx(
    tx: &Transaction,
    staking_outpoint: OutPoint,
    staking_value: Amount,
    unbonding_output: &TaprootOutput,
    unbonding_fee: Amount,
) -> Result<Amount, UnbondingError> {
    if tx.version != Version::TWO {
        return Err(UnbondingError::Version(tx.version.0));
    }
    check_spend_shape(tx, staking_outpoint)?;
    let out = match tx.output.as_slice() {
        [one] => one,
        other => return Err(UnbondingError::OutputCount(other.len())),
    };
    let want_script = unbonding_output.script_pubkey();
    if out.script_pubkey != want_script {
        return Err(UnbondingError::OutputScript {
            got: hex::encode(out.script_pubkey.as_bytes()),
            want: hex::encode(want_script.as_bytes()),
        });
    }
    let want = unbonding_value(staking_value, unbonding_fee)?;
    if out.value != want {
        return Err(UnbondingError::OutputValue {
            got: out.value,
            want,
        });
    }
    Ok(want)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::key;
    use bitcoin::hashes::Hash;
    use bitcoin::Txid;

    fn keys() -> StakingKeys {
        StakingKeys::new(key(1), &[key(2)], &[key(3), key(4), key(5)], 2).unwrap()
    }

    fn outpoint() -> OutPoint {
        OutPoint::new(Txid::from_byte_array([9; 32]), 0)
    }

    const VALUE: Amount = Amount::from_sat(100_000);
    const FEE: Amount = Amount::from_sat(1_000);

    #[test]
    fn built_transaction_validates() {
        let (tx, output) = build_unbonding_tx(&keys(), outpoint(), VALUE, 100, FEE).unwrap();
        assert_eq!(
            validate_unbonding_tx(&tx, outpoint(), VALUE, &output, FEE),
            Ok(Amount::from_sat(99_000))
        );
    }

    #[test]
    fn each_rule_has_its_error() {
        let (tx, output) = build_unbonding_tx(&keys(), outpoint(), VALUE, 100, FEE).unwrap();
        let check = |t: &Transaction| validate_unbonding_tx(t, outpoint(), VALUE, &output, FEE);
        let mut t = tx.clone();
        t.version = Version::ONE;
        assert_eq!(check(&t), Err(UnbondingError::Version(1)));
        let mut t = tx.clone();
        t.lock_time = LockTime::from_consensus(1);
        assert_eq!(
            check(&t),
            Err(UnbondingError::Shape(SpendShapeError::LockTime(1)))
        );
        let mut t = tx.clone();
        t.output.push(t.output[0].clone());
        assert_eq!(check(&t), Err(UnbondingError::OutputCount(2)));
        let mut t = tx.clone();
        t.output[0].value = Amount::from_sat(98_000);
        assert_eq!(
            check(&t),
            Err(UnbondingError::OutputValue {
                got: Amount::from_sat(98_000),
                want: Amount::from_sat(99_000)
            })
        );
        let other_time = TaprootOutput::unbonding(&keys(), 101).unwrap();
        let mut t = tx.clone();
        t.output[0].script_pubkey = other_time.script_pubkey();
        assert!(matches!(
            check(&t),
            Err(UnbondingError::OutputScript { .. })
        ));
        assert_eq!(
            build_unbonding_tx(&keys(), outpoint(), VALUE, 100, VALUE).unwrap_err(),
            UnbondingError::FeeTooHigh {
                fee: VALUE,
                value: VALUE
            }
        );
    }
}
