//! The shape shared by every pre-signed spend of a protocol output (PROTOCOL §4): the unbonding
//! transaction and both slashing transactions have exactly one input, the funding outpoint,
//! nSequence 0xffffffff, an empty scriptSig, and locktime 0.

use bitcoin::absolute::LockTime;
use bitcoin::{OutPoint, ScriptBuf, Sequence, Transaction, TxIn, Witness};

/// Why a transaction does not spend the funding output the way the protocol fixes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpendShapeError {
    /// Not exactly one input.
    #[error("{0} inputs, expected exactly 1")]
    InputCount(usize),
    /// The input spends another outpoint.
    #[error("input spends {got}, expected {want}")]
    Outpoint {
        /// The outpoint spent.
        got: OutPoint,
        /// The funding outpoint.
        want: OutPoint,
    },
    /// nSequence other than 0xffffffff.
    #[error("input nSequence {0:#010x}, expected 0xffffffff")]
    Sequence(u32),
    /// A non-empty scriptSig (a taproot spend has none).
    #[error("input scriptSig {0} is not empty")]
    ScriptSig(String),
    /// A locktime other than 0.
    #[error("locktime {0}, expected 0")]
    LockTime(u32),
}

/// The single input spending `funding`, unsigned.
pub fn funding_input(funding: OutPoint) -> TxIn {
    TxIn {
        previous_output: funding,
        script_sig: ScriptBuf::new(),
        sequence: Sequence::MAX,
        witness: Witness::new(),
    }
}

/// Checks the input and locktime rules shared by the unbonding and slashing transactions.
pub fn check_spend_shape(tx: &Transaction, funding: OutPoint) -> Result<(), SpendShapeError> {
    let input = match tx.input.as_slice() {
        [one] => one,
        other => return Err(SpendShapeError::InputCount(other.len())),
    };
    if input.previous_output != funding {
        return Err(SpendShapeError::Outpoint {
            got: input.previous_output,
            want: funding,
        });
    }
    if input.sequence != Sequence::MAX {
        return Err(SpendShapeError::Sequence(input.sequence.to_consensus_u32()));
    }
    if !input.script_sig.is_empty() {
        return Err(SpendShapeError::ScriptSig(hex::encode(
            input.script_sig.as_bytes(),
        )));
    }
    if tx.lock_time != LockTime::ZERO {
        return Err(SpendShapeError::LockTime(tx.lock_time.to_consensus_u32()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use bitcoin::transaction::Version;
    use bitcoin::Txid;

    fn funding() -> OutPoint {
        OutPoint::new(Txid::from_byte_array([7; 32]), 1)
    }

    fn tx() -> Transaction {
        Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![funding_input(funding())],
            output: vec![],
        }
    }

    #[test]
    fn each_shape_rule_has_its_error() {
        assert_eq!(check_spend_shape(&tx(), funding()), Ok(()));
        let mut t = tx();
        t.input.push(funding_input(funding()));
        assert_eq!(
            check_spend_shape(&t, funding()),
            Err(SpendShapeError::InputCount(2))
        );
        let other = OutPoint::new(Txid::from_byte_array([8; 32]), 1);
        assert_eq!(
            check_spend_shape(&tx(), other),
            Err(SpendShapeError::Outpoint {
                got: funding(),
                want: other
            })
        );
        let mut t = tx();
        t.input[0].sequence = Sequence(5);
        assert_eq!(
            check_spend_shape(&t, funding()),
            Err(SpendShapeError::Sequence(5))
        );
        let mut t = tx();
        t.input[0].script_sig = ScriptBuf::from_bytes(vec![0x51]);
        assert_eq!(
            check_spend_shape(&t, funding()),
            Err(SpendShapeError::ScriptSig("51".into()))
        );
        let mut t = tx();
        t.lock_time = LockTime::from_consensus(10);
        assert_eq!(
            check_spend_shape(&t, funding()),
            Err(SpendShapeError::LockTime(10))
        );
    }
}
