//! Recognising a staking transaction (PROTOCOL §4): the one output that equals the staking
//! output, and the optional V0 identifiable-staking OP_RETURN.

use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::{Amount, Transaction, TxOut};

use crate::identifiable::{IdentifiableStaking, OpReturnError};
use crate::keys::{KeyError, StakingKeys};
use crate::taproot::{TaprootError, TaprootOutput};

/// Why a transaction is not the expected staking transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StakingTxError {
    /// No output equals the staking output.
    #[error("no output pays {value} to staking script {script}")]
    NoStakingOutput {
        /// The expected pkScript, hex.
        script: String,
        /// The expected value.
        value: Amount,
    },
    /// More than one output equals the staking output.
    #[error("{0} outputs equal the staking output, expected exactly one")]
    SeveralStakingOutputs(usize),
    /// An identifiable staking transaction needs the OP_RETURN and the staking output.
    #[error("identifiable staking transaction has {0} outputs, needs at least 2")]
    TooFewOutputs(usize),
    /// No OP_RETURN with the configured tag.
    #[error("no identifiable-staking op_return with the configured tag")]
    NoOpReturn,
    /// More than one OP_RETURN with the configured tag.
    #[error("{0} identifiable-staking op_returns with the configured tag, expected one")]
    SeveralOpReturns(usize),
    /// The tagged OP_RETURN is malformed.
    #[error(transparent)]
    OpReturn(#[from] OpReturnError),
    /// The keys named by the OP_RETURN do not form a valid delegation with the committee.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// The staking output could not be built.
    #[error(transparent)]
    Taproot(#[from] TaprootError),
    /// No output pays to the staking script named by the OP_RETURN.
    #[error("no output pays to the staking script {0} named by the op_return")]
    NoMatchingScript(String),
    /// More than one output pays to the staking script named by the OP_RETURN.
    #[error("{0} outputs pay to the staking script named by the op_return, expected one")]
    SeveralMatchingScripts(usize),
}

/// The index of the single output of `tx` equal to `expected` (value and pkScript).
pub fn find_staking_output(tx: &Transaction, expected: &TxOut) -> Result<u32, StakingTxError> {
    let mut found = tx
        .output
        .iter()
        .enumerate()
        .filter(|(_, out)| *out == expected);
    match (found.next(), found.count()) {
        // Output counts are bounded by the block size, far below u32::MAX.
        (Some((index, _)), 0) => Ok(index as u32),
        (Some(_), more) => Err(StakingTxError::SeveralStakingOutputs(1 + more)),
        (None, _) => Err(StakingTxError::NoStakingOutput {
            script: hex::encode(expected.script_pubkey.as_bytes()),
            value: expected.value,
        }),
    }
}

/// A staking transaction recognised through its identifiable-staking OP_RETURN.
#[derive(Debug, Clone)]
pub struct IdentifiedStaking {
    /// What the OP_RETURN says.
    pub op_return: IdentifiableStaking,
    /// The index of the OP_RETURN output.
    pub op_return_index: u32,
    /// The staking output the OP_RETURN's keys and time produce.
    pub output: TaprootOutput,
    /// The index of the staking output.
    pub staking_output_index: u32,
    /// The staked value.
    pub value: Amount,
}

/// Recognises an identifiable staking transaction: at least two outputs, exactly one
/// OP_RETURN carrying `tag`, and exactly one output paying to the staking output built from its
/// staker key, verifier key and staking time with the covenant committee.
pub fn identify_staking_tx(
    tx: &Transaction,
    tag: &[u8; 4],
    covenants: &[XOnlyPublicKey],
    covenant_quorum: u32,
) -> Result<IdentifiedStaking, StakingTxError> {
    if tx.output.len() < 2 {
        return Err(StakingTxError::TooFewOutputs(tx.output.len()));
    }
    let tagged: Vec<usize> = tx
        .output
        .iter()
        .enumerate()
        .filter(|(_, out)| IdentifiableStaking::carries_tag(&out.script_pubkey, tag))
        .map(|(i, _)| i)
        .collect();
    let op_return_index = match tagged.as_slice() {
        [] => return Err(StakingTxError::NoOpReturn),
        [one] => *one,
        more => return Err(StakingTxError::SeveralOpReturns(more.len())),
    };
    let op_return = IdentifiableStaking::parse(&tx.output[op_return_index].script_pubkey, tag)?;
    let keys = StakingKeys::new(
        op_return.staker,
        &[op_return.verifier],
        covenants,
        covenant_quorum,
    )?;
    let output = TaprootOutput::staking(&keys, u32::from(op_return.staking_time))?;
    let script = output.script_pubkey();
    let matching: Vec<usize> = tx
        .output
        .iter()
        .enumerate()
        .filter(|(_, out)| out.script_pubkey == script)
        .map(|(i, _)| i)
        .collect();
    let index = match matching.as_slice() {
        [] => {
            return Err(StakingTxError::NoMatchingScript(hex::encode(
                script.as_bytes(),
            )))
        }
        [one] => *one,
        more => return Err(StakingTxError::SeveralMatchingScripts(more.len())),
    };
    Ok(IdentifiedStaking {
        op_return,
        // Output indices are bounded by the block size, far below u32::MAX.
        op_return_index: op_return_index as u32,
        value: tx.output[index].value,
        output,
        staking_output_index: index as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::key;
    use bitcoin::absolute::LockTime;
    use bitcoin::transaction::Version;
    use bitcoin::ScriptBuf;

    const TAG: [u8; 4] = *b"fmma";

    fn staking_tx(outputs: Vec<TxOut>) -> Transaction {
        Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![],
            output: outputs,
        }
    }

    fn parts() -> (IdentifiableStaking, TaprootOutput) {
        let data = IdentifiableStaking {
            tag: TAG,
            staker: key(1),
            verifier: key(2),
            staking_time: 500,
        };
        let keys = StakingKeys::new(key(1), &[key(2)], &[key(3), key(4), key(5)], 2).unwrap();
        (data, TaprootOutput::staking(&keys, 500).unwrap())
    }

    fn op_return_out(data: &IdentifiableStaking) -> TxOut {
        TxOut {
            value: Amount::ZERO,
            script_pubkey: data.script(),
        }
    }

    #[test]
    fn finds_exactly_one_staking_output() {
        let (_, output) = parts();
        let out = output.txout(Amount::from_sat(100_000));
        let change = TxOut {
            value: Amount::from_sat(5),
            script_pubkey: ScriptBuf::new(),
        };
        let tx = staking_tx(vec![change.clone(), out.clone()]);
        assert_eq!(find_staking_output(&tx, &out), Ok(1));
        let twice = staking_tx(vec![out.clone(), out.clone()]);
        assert_eq!(
            find_staking_output(&twice, &out),
            Err(StakingTxError::SeveralStakingOutputs(2))
        );
        let none = staking_tx(vec![change]);
        assert!(matches!(
            find_staking_output(&none, &out),
            Err(StakingTxError::NoStakingOutput { .. })
        ));
    }

    #[test]
    fn identifies_through_the_op_return() {
        let (data, output) = parts();
        let covenants = [key(3), key(4), key(5)];
        let tx = staking_tx(vec![
            output.txout(Amount::from_sat(100_000)),
            op_return_out(&data),
        ]);
        let found = identify_staking_tx(&tx, &TAG, &covenants, 2).unwrap();
        assert_eq!(found.staking_output_index, 0);
        assert_eq!(found.op_return_index, 1);
        assert_eq!(found.value, Amount::from_sat(100_000));
        assert_eq!(found.op_return, data);
    }

    #[test]
    fn identification_errors() {
        let (data, output) = parts();
        let covenants = [key(3), key(4), key(5)];
        let staking = output.txout(Amount::from_sat(100_000));
        let one = staking_tx(vec![staking.clone()]);
        assert_eq!(
            identify_staking_tx(&one, &TAG, &covenants, 2).unwrap_err(),
            StakingTxError::TooFewOutputs(1)
        );
        let no_tag = staking_tx(vec![staking.clone(), staking.clone()]);
        assert_eq!(
            identify_staking_tx(&no_tag, &TAG, &covenants, 2).unwrap_err(),
            StakingTxError::NoOpReturn
        );
        let two_tags = staking_tx(vec![op_return_out(&data), op_return_out(&data)]);
        assert_eq!(
            identify_staking_tx(&two_tags, &TAG, &covenants, 2).unwrap_err(),
            StakingTxError::SeveralOpReturns(2)
        );
        let no_match = staking_tx(vec![
            op_return_out(&data),
            TxOut {
                value: Amount::from_sat(1),
                script_pubkey: ScriptBuf::new(),
            },
        ]);
        assert!(matches!(
            identify_staking_tx(&no_match, &TAG, &covenants, 2).unwrap_err(),
            StakingTxError::NoMatchingScript(_)
        ));
        let doubled = staking_tx(vec![op_return_out(&data), staking.clone(), staking]);
        assert_eq!(
            identify_staking_tx(&doubled, &TAG, &covenants, 2).unwrap_err(),
            StakingTxError::SeveralMatchingScripts(2)
        );
    }
}
