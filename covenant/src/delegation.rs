//! What the covenant committee signs for one delegation: three transactions, each spending a
//! leaf of a protocol output, and their BIP-0341 sighashes (`PROTOCOL.md` §4, §5).

use bitcoin::{TapSighash, Transaction, TxOut};
use fiamma_staking::delegation::{
    DelegationSighashes as Sighashes, DelegationSpends, SighashesError,
};
use fiamma_staking::keys::StakingKeys;
use fiamma_staking::registration::Registration;
use fiamma_staking::taproot::{TaprootError, TaprootOutput};

/// One of the two slashing transactions of a delegation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SlashingTx {
    /// Spends the staking output through its slashing leaf.
    Staking,
    /// Spends the unbonding output through its slashing leaf.
    Unbonding,
}

impl SlashingTx {
    /// Both, in a fixed order.
    pub const ALL: [SlashingTx; 2] = [SlashingTx::Staking, SlashingTx::Unbonding];
}

impl std::fmt::Display for SlashingTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SlashingTx::Staking => "staking slashing transaction",
            SlashingTx::Unbonding => "unbonding slashing transaction",
        })
    }
}

/// Why the sighashes of a delegation could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DelegationError {
    /// The staking or unbonding output could not be built from the keys and times.
    #[error("cannot build the {what} output: {source}")]
    Output {
        /// "staking" or "unbonding".
        what: &'static str,
        /// The cause.
        source: TaprootError,
    },
    /// The funding transaction has no output at the named index.
    #[error("{what} transaction has no output {index}")]
    MissingOutput {
        /// "staking" or "unbonding".
        what: &'static str,
        /// The index asked for.
        index: usize,
    },
    /// The funding output is not the protocol output built from the delegation's keys.
    #[error("{what} output pays {found}, expected {expected}")]
    OutputScript {
        /// "staking" or "unbonding".
        what: &'static str,
        /// The pkScript of the transaction's output, hex.
        found: String,
        /// The pkScript built from the keys, hex.
        expected: String,
    },
    /// A leaf or sighash of the signed transactions could not be computed (never for the
    /// protocol's outputs; kept typed anyway).
    #[error(transparent)]
    Sighashes(#[from] SighashesError),
}

/// A delegation's signed transactions and the outputs they spend.
#[derive(Debug, Clone, Copy)]
pub struct DelegationTxs<'a> {
    /// Staker, verifier and covenant keys with the quorum.
    pub keys: &'a StakingKeys,
    /// Staking time T in blocks.
    pub staking_time: u32,
    /// Unbonding time U in blocks.
    pub unbonding_time: u32,
    /// The staking transaction.
    pub staking_tx: &'a Transaction,
    /// Index of the staking output in `staking_tx`.
    pub staking_output_index: usize,
    /// The slashing transaction spending the staking output.
    pub slashing_tx: &'a Transaction,
    /// The unbonding transaction spending the staking output.
    pub unbonding_tx: &'a Transaction,
    /// The slashing transaction spending output 0 of the unbonding transaction.
    pub unbonding_slashing_tx: &'a Transaction,
}

/// The staking and unbonding outputs of a delegation and the three messages the covenant
/// committee signs. Computing it checks that the funding outputs are the protocol outputs of
/// the delegation's keys; the other rules of §4 belong to the staking validation library.
#[derive(Debug, Clone)]
pub struct DelegationSighashes {
    /// The staking output (timelock, unbonding and slashing leaves).
    pub staking_output: TaprootOutput,
    /// The unbonding output (timelock and slashing leaves).
    pub unbonding_output: TaprootOutput,
    /// The funding output the staking slashing and unbonding transactions spend.
    pub staking_prevout: TxOut,
    /// Output 0 of the unbonding transaction.
    pub unbonding_prevout: TxOut,
    /// Staking slashing transaction, slashing leaf of the staking output.
    pub slashing: TapSighash,
    /// Unbonding slashing transaction, slashing leaf of the unbonding output.
    pub unbonding_slashing: TapSighash,
    /// Unbonding transaction, unbonding leaf of the staking output.
    pub unbonding: TapSighash,
}

impl DelegationSighashes {
    /// The sighashes of a staker's registration, over its checked key sets `keys`.
    ///
    /// # Errors
    /// [`DelegationError`] when the registration's funding outputs are not the protocol
    /// outputs of `keys`.
    pub fn of_registration(
        reg: &Registration,
        keys: &StakingKeys,
    ) -> Result<Self, DelegationError> {
        Self::compute(&DelegationTxs {
            keys,
            staking_time: reg.staking_time,
            unbonding_time: reg.unbonding_time,
            staking_tx: &reg.staking_tx,
            staking_output_index: reg.staking_output_index as usize,
            slashing_tx: &reg.slashing_tx,
            unbonding_tx: &reg.unbonding_tx,
            unbonding_slashing_tx: &reg.unbonding_slashing_tx,
        })
    }

    /// Builds both outputs from the keys and times and computes the three sighashes.
    pub fn compute(txs: &DelegationTxs<'_>) -> Result<Self, DelegationError> {
        let staking_output =
            TaprootOutput::staking(txs.keys, txs.staking_time).map_err(output_error("staking"))?;
        let unbonding_output = TaprootOutput::unbonding(txs.keys, txs.unbonding_time)
            .map_err(output_error("unbonding"))?;
        let staking_prevout = funding_output(
            &staking_output,
            txs.staking_tx,
            txs.staking_output_index,
            "staking",
        )?;
        let unbonding_prevout =
            funding_output(&unbonding_output, txs.unbonding_tx, 0, "unbonding")?;

        let messages = Sighashes::compute(&DelegationSpends {
            staking_output: &staking_output,
            staking_prevout: &staking_prevout,
            unbonding_output: &unbonding_output,
            unbonding_prevout: &unbonding_prevout,
            slashing_tx: txs.slashing_tx,
            unbonding_tx: txs.unbonding_tx,
            unbonding_slashing_tx: txs.unbonding_slashing_tx,
        })?;
        let Sighashes {
            slashing,
            unbonding_slashing,
            unbonding,
        } = messages;
        Ok(DelegationSighashes {
            staking_output,
            unbonding_output,
            staking_prevout,
            unbonding_prevout,
            slashing,
            unbonding_slashing,
            unbonding,
        })
    }

    /// The three messages alone, as the staking library computes and the node stores them.
    pub fn messages(&self) -> Sighashes {
        Sighashes {
            slashing: self.slashing,
            unbonding: self.unbonding,
            unbonding_slashing: self.unbonding_slashing,
        }
    }

    /// The sighash of `tx`.
    pub fn slashing_sighash(&self, tx: SlashingTx) -> &TapSighash {
        match tx {
            SlashingTx::Staking => &self.slashing,
            SlashingTx::Unbonding => &self.unbonding_slashing,
        }
    }

    /// The output `tx` spends.
    pub fn slashed_output(&self, tx: SlashingTx) -> &TaprootOutput {
        match tx {
            SlashingTx::Staking => &self.staking_output,
            SlashingTx::Unbonding => &self.unbonding_output,
        }
    }

    /// The funding output `tx` spends (value and pkScript).
    pub fn slashed_prevout(&self, tx: SlashingTx) -> &TxOut {
        match tx {
            SlashingTx::Staking => &self.staking_prevout,
            SlashingTx::Unbonding => &self.unbonding_prevout,
        }
    }
}

fn output_error(what: &'static str) -> impl FnOnce(TaprootError) -> DelegationError {
    move |source| DelegationError::Output { what, source }
}

fn funding_output(
    expected: &TaprootOutput,
    tx: &Transaction,
    index: usize,
    what: &'static str,
) -> Result<TxOut, DelegationError> {
    let out = tx
        .output
        .get(index)
        .ok_or(DelegationError::MissingOutput { what, index })?;
    let script = expected.script_pubkey();
    if out.script_pubkey != script {
        return Err(DelegationError::OutputScript {
            what,
            found: out.script_pubkey.to_hex_string(),
            expected: script.to_hex_string(),
        });
    }
    Ok(out.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::absolute::LockTime;
    use bitcoin::transaction::Version;
    use bitcoin::{Amount, ScriptBuf, TxIn};
    use secp256k1::{SecretKey, XOnlyPublicKey, SECP256K1};

    fn key(i: u8) -> XOnlyPublicKey {
        SecretKey::from_slice(&[i; 32])
            .unwrap()
            .x_only_public_key(SECP256K1)
            .0
    }

    fn tx_paying(script: ScriptBuf) -> Transaction {
        Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn::default()],
            output: vec![TxOut {
                value: Amount::from_sat(100_000),
                script_pubkey: script,
            }],
        }
    }

    #[test]
    fn funding_outputs_must_be_the_protocol_outputs() {
        let keys = StakingKeys::new(key(1), &[key(2)], &[key(3), key(4)], 1).unwrap();
        let staking = TaprootOutput::staking(&keys, 10).unwrap();
        let unbonding = TaprootOutput::unbonding(&keys, 5).unwrap();
        let staking_tx = tx_paying(staking.script_pubkey());
        let unbonding_tx = tx_paying(unbonding.script_pubkey());
        let spend = tx_paying(ScriptBuf::new());
        let txs = DelegationTxs {
            keys: &keys,
            staking_time: 10,
            unbonding_time: 5,
            staking_tx: &staking_tx,
            staking_output_index: 0,
            slashing_tx: &spend,
            unbonding_tx: &unbonding_tx,
            unbonding_slashing_tx: &spend,
        };
        let sighashes = DelegationSighashes::compute(&txs).unwrap();
        assert_ne!(sighashes.slashing, sighashes.unbonding);
        assert_eq!(
            sighashes.slashed_prevout(SlashingTx::Unbonding),
            &unbonding_tx.output[0]
        );

        let missing = DelegationTxs {
            staking_output_index: 1,
            ..txs
        };
        assert_eq!(
            DelegationSighashes::compute(&missing).unwrap_err(),
            DelegationError::MissingOutput {
                what: "staking",
                index: 1
            }
        );
        // Staking time 11 builds another staking output than the transaction pays.
        let other_time = DelegationTxs {
            staking_time: 11,
            ..txs
        };
        assert!(matches!(
            DelegationSighashes::compute(&other_time),
            Err(DelegationError::OutputScript {
                what: "staking",
                ..
            })
        ));
        let zero_time = DelegationTxs {
            unbonding_time: 0,
            ..txs
        };
        assert!(matches!(
            DelegationSighashes::compute(&zero_time),
            Err(DelegationError::Output {
                what: "unbonding",
                ..
            })
        ));
    }
}
