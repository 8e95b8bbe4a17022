//! The slashing transactions (PROTOCOL §4): one spending the staking output, one spending the
//! unbonding output. Each has one input, two outputs — the slashed part to
//! `slashing_pk_script`, the rest minus fee back to the staker's slashing change output —
//! locktime 0, version 1 or 2 and weight ≤ 400,000.

use bitcoin::absolute::LockTime;
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, Script, Transaction, TxOut, Weight};

use crate::rate::SlashingRate;
use crate::spend::{check_spend_shape, funding_input, SpendShapeError};

/// The heaviest slashing transaction accepted (the standardness limit).
pub const MAX_SLASHING_TX_WEIGHT: Weight = Weight::from_wu(400_000);

/// The parameters a slashing transaction is built and checked against.
#[derive(Debug, Clone, Copy)]
pub struct SlashingTerms<'a> {
    /// Where the slashed part goes.
    pub slashing_pk_script: &'a Script,
    /// The least share of the funding value that is slashed.
    pub slashing_rate: SlashingRate,
    /// The least fee the transaction pays.
    pub min_fee: Amount,
}

/// Why a slashing transaction could not be built or was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlashingTxError {
    /// A version other than 1 or 2.
    #[error("slashing transaction version {0}, expected 1 or 2")]
    Version(i32),
    /// The input or locktime break the protocol's spend shape.
    #[error("slashing transaction: {0}")]
    Shape(#[from] SpendShapeError),
    /// Not exactly two outputs.
    #[error("slashing transaction has {0} outputs, expected exactly 2")]
    OutputCount(usize),
    /// Output 0 does not pay to `slashing_pk_script`.
    #[error("slashing output script {got} differs from slashing_pk_script {want}")]
    SlashingScript {
        /// The script found, hex.
        got: String,
        /// The parameter's script, hex.
        want: String,
    },
    /// Output 0 carries less than `round_half_up(input × slashing_rate)`.
    #[error("slashing output value {got} is below the slashed amount {min}")]
    SlashedTooLittle {
        /// The value found.
        got: Amount,
        /// `round_half_up(input × slashing_rate)`.
        min: Amount,
    },
    /// Output 1 does not pay to the staker's slashing change output.
    #[error("change output script {got} differs from the slashing change output {want}")]
    ChangeScript {
        /// The script found, hex.
        got: String,
        /// The expected change script, hex.
        want: String,
    },
    /// The outputs spend more than the input.
    #[error("outputs total {outputs}, more than the input {input}")]
    Overspend {
        /// Sum of the outputs.
        outputs: Amount,
        /// The funding value.
        input: Amount,
    },
    /// An output below the dust limit of its script (330 sat for P2TR).
    #[error("output {index} of {value} is dust (minimum {min})")]
    Dust {
        /// The output index.
        index: usize,
        /// Its value.
        value: Amount,
        /// The least non-dust value for its script.
        min: Amount,
    },
    /// The fee is below `min_slashing_tx_fee_sat`.
    #[error("slashing fee {fee} is below the minimum {min}")]
    FeeTooLow {
        /// The fee paid.
        fee: Amount,
        /// The minimum fee.
        min: Amount,
    },
    /// The transaction is too heavy.
    #[error("slashing transaction weight {0} exceeds 400000")]
    Weight(u64),
}

/// What a valid slashing transaction moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlashingSummary {
    /// Paid to `slashing_pk_script`.
    pub slashed: Amount,
    /// Returned to the staker's change output.
    pub change: Amount,
    /// The fee.
    pub fee: Amount,
}

/// Builds an unsigned slashing transaction spending `funding` (worth `funding_value`) that
/// slashes exactly `round_half_up(funding_value × rate)` and pays `fee`, returning the rest to
/// `change_script`. The result passes [`validate_slashing_tx`] or an error says which rule fails.
pub fn build_slashing_tx(
    funding: OutPoint,
    funding_value: Amount,
    terms: &SlashingTerms<'_>,
    fee: Amount,
    change_script: &Script,
) -> Result<Transaction, SlashingTxError> {
    let slashed = terms.slashing_rate.slashed_amount(funding_value);
    let change = funding_value
        .checked_sub(slashed)
        .and_then(|rest| rest.checked_sub(fee))
        .ok_or(SlashingTxError::Overspend {
            outputs: slashed + fee,
            input: funding_value,
        })?;
    let tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![funding_input(funding)],
        output: vec![
            TxOut {
                value: slashed,
                script_pubkey: terms.slashing_pk_script.to_owned(),
            },
            TxOut {
                value: change,
                script_pubkey: change_script.to_owned(),
            },
        ],
    };
    validate_slashing_tx(&tx, funding, funding_value, terms, change_script)?;
    Ok(tx)
}

/// Checks every rule of §4 for a slashing transaction spending `funding` (worth
/// `funding_value`) with change to `change_script` (the staker's slashing change output).
pub fn validate_slashing_tx(
    tx: &Transaction,
    funding: OutPoint,
    funding_value: Amount,
    terms: &SlashingTerms<'_>,
    change_script: &Script,
) -> Result<SlashingSummary, SlashingTxError> {
    if tx.version != Version::ONE && tx.version != Version::TWO {
        return Err(SlashingTxError::Version(tx.version.0));
    }
    check_spend_shape(tx, funding)?;
    let [slashing, change] = tx.output.as_slice() else {
        return Err(SlashingTxError::OutputCount(tx.output.len()));
    };
    if slashing.script_pubkey.as_script() != terms.slashing_pk_script {
        return Err(SlashingTxError::SlashingScript {
            got: hex::encode(slashing.script_pubkey.as_bytes()),
            want: hex::encode(terms.slashing_pk_script.as_bytes()),
        });
    }
    let min_slashed = terms.slashing_rate.slashed_amount(funding_value);
    if slashing.value < min_slashed {
        return Err(SlashingTxError::SlashedTooLittle {
            got: slashing.value,
            min: min_slashed,
        });
    }
    if change.script_pubkey.as_script() != change_script {
        return Err(SlashingTxError::ChangeScript {
            got: hex::encode(change.script_pubkey.as_bytes()),
            want: hex::encode(change_script.as_bytes()),
        });
    }
    let outputs = slashing
        .value
        .checked_add(change.value)
        .filter(|sum| *sum <= funding_value)
        .ok_or(SlashingTxError::Overspend {
            outputs: Amount::from_sat(
                slashing
                    .value
                    .to_sat()
                    .saturating_add(change.value.to_sat()),
            ),
            input: funding_value,
        })?;
    for (index, out) in tx.output.iter().enumerate() {
        let min = out.script_pubkey.minimal_non_dust();
        if out.value < min {
            return Err(SlashingTxError::Dust {
                index,
                value: out.value,
                min,
            });
        }
    }
    let fee = funding_value - outputs;
    if fee < terms.min_fee {
        return Err(SlashingTxError::FeeTooLow {
            fee,
            min: terms.min_fee,
        });
    }
    let weight = tx.weight();
    if weight > MAX_SLASHING_TX_WEIGHT {
        return Err(SlashingTxError::Weight(weight.to_wu()));
    }
    Ok(SlashingSummary {
        slashed: slashing.value,
        change: change.value,
        fee,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::taproot::TaprootOutput;
    use crate::testutil::key;
    use bitcoin::hashes::Hash;
    use bitcoin::{ScriptBuf, Txid};

    const VALUE: Amount = Amount::from_sat(1_000_000);
    const FEE: Amount = Amount::from_sat(2_000);

    fn funding() -> OutPoint {
        OutPoint::new(Txid::from_byte_array([5; 32]), 0)
    }

    fn slashing_script() -> ScriptBuf {
        ScriptBuf::from_bytes(
            hex::decode("76a914356fde516750d3a7781eababc9fbba011dfdebd088ac").unwrap(),
        )
    }

    fn change_script() -> ScriptBuf {
        TaprootOutput::slashing_change(&key(1), 100)
            .unwrap()
            .script_pubkey()
    }

    fn terms(script: &Script) -> SlashingTerms<'_> {
        SlashingTerms {
            slashing_pk_script: script,
            slashing_rate: "0.1".parse().unwrap(),
            min_fee: Amount::from_sat(1_000),
        }
    }

    fn build() -> Transaction {
        let s = slashing_script();
        build_slashing_tx(funding(), VALUE, &terms(&s), FEE, &change_script()).unwrap()
    }

    fn check(tx: &Transaction) -> Result<SlashingSummary, SlashingTxError> {
        let s = slashing_script();
        validate_slashing_tx(tx, funding(), VALUE, &terms(&s), &change_script())
    }

    #[test]
    fn built_transaction_is_valid() {
        let tx = build();
        assert_eq!(
            check(&tx),
            Ok(SlashingSummary {
                slashed: Amount::from_sat(100_000),
                change: Amount::from_sat(898_000),
                fee: FEE
            })
        );
        let mut v1 = tx;
        v1.version = Version::ONE;
        assert!(check(&v1).is_ok());
    }

    #[test]
    fn each_rule_has_its_error() {
        let tx = build();
        let mut t = tx.clone();
        t.version = Version(3);
        assert_eq!(check(&t), Err(SlashingTxError::Version(3)));
        let mut t = tx.clone();
        t.input[0].sequence = bitcoin::Sequence::ZERO;
        assert_eq!(
            check(&t),
            Err(SlashingTxError::Shape(SpendShapeError::Sequence(0)))
        );
        let mut t = tx.clone();
        t.output.pop();
        assert_eq!(check(&t), Err(SlashingTxError::OutputCount(1)));
        let mut t = tx.clone();
        t.output[0].script_pubkey = change_script();
        assert!(matches!(
            check(&t),
            Err(SlashingTxError::SlashingScript { .. })
        ));
        let mut t = tx.clone();
        t.output[0].value = Amount::from_sat(99_999);
        assert_eq!(
            check(&t),
            Err(SlashingTxError::SlashedTooLittle {
                got: Amount::from_sat(99_999),
                min: Amount::from_sat(100_000)
            })
        );
        let mut t = tx.clone();
        t.output[1].script_pubkey = slashing_script();
        assert!(matches!(
            check(&t),
            Err(SlashingTxError::ChangeScript { .. })
        ));
        let mut t = tx.clone();
        t.output[1].value = Amount::from_sat(900_001);
        assert_eq!(
            check(&t),
            Err(SlashingTxError::Overspend {
                outputs: Amount::from_sat(1_000_001),
                input: VALUE
            })
        );
        let mut t = tx.clone();
        t.output[1].value = Amount::from_sat(899_500);
        assert_eq!(
            check(&t),
            Err(SlashingTxError::FeeTooLow {
                fee: Amount::from_sat(500),
                min: Amount::from_sat(1_000)
            })
        );
        let mut t = tx.clone();
        t.output[0].value = Amount::from_sat(998_000 - 329);
        t.output[1].value = Amount::from_sat(329);
        assert_eq!(
            check(&t),
            Err(SlashingTxError::Dust {
                index: 1,
                value: Amount::from_sat(329),
                min: Amount::from_sat(330)
            })
        );
        let mut t = tx.clone();
        t.input[0].witness = bitcoin::Witness::from_slice(&[vec![0u8; 400_000]]);
        assert!(matches!(check(&t), Err(SlashingTxError::Weight(w)) if w > 400_000));
    }

    #[test]
    fn building_more_than_the_input_is_refused() {
        let s = slashing_script();
        let err = build_slashing_tx(
            funding(),
            Amount::from_sat(1_000),
            &terms(&s),
            FEE,
            &change_script(),
        );
        assert!(matches!(err, Err(SlashingTxError::Overspend { .. })));
    }
}
