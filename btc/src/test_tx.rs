//! Transactions for unit tests: one input, one output paying bare OP_TRUE, which
//! consensus lets anyone spend with an empty scriptSig.

use bitcoin::{
    absolute, transaction, Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness,
};

/// Bare OP_TRUE.
pub fn anyone() -> ScriptBuf {
    ScriptBuf::from_bytes(vec![0x51])
}

/// A version-2 transaction spending `prev` into one OP_TRUE output of `value`.
pub fn spend(prev: OutPoint, value: Amount, sequence: Sequence) -> Transaction {
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: prev,
            script_sig: ScriptBuf::new(),
            sequence,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value,
            script_pubkey: anyone(),
        }],
    }
}
