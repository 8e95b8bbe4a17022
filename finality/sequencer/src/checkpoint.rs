//! Checkpoint broadcast (`CHECKPOINTS.md` §13.7): a checkpoint candidate pays no fee and
//! carries a 0-sat pay-to-anchor output; the sequencer sends it as a one-parent-one-child
//! package whose child spends that output and a wallet coin and pays for both.
//!
//! - [`signed_candidate`]: a READY round's signed transaction, checked here (its txid is the
//!   candidate's, it has the candidate shape and spends the round's base), not trusted;
//! - [`build_child`]: the version 3 child at the wallet's fee rate for parent and child;
//! - [`track`]: what a recorded package's place on Bitcoin, and the round's status on the
//!   node, ask for next (as a recorded anchor's, unless superseded).

use bitcoin::{Amount, FeeRate, OutPoint, Transaction, Txid};
use fiamma_btc::TxStatus;
use fiamma_finality::checkpoint::candidate::{check_shape, ShapeError, P2A_SCRIPT};
use fiamma_proto::client::{CheckpointRoundView, CheckpointStatus};
use fiamma_wallet::{Wallet, WalletError};

/// TRUC: the largest child of an unconfirmed version 3 parent, in virtual bytes.
pub const MAX_CHILD_VSIZE: u64 = 1_000;

/// The child's version: a child of an unconfirmed TRUC parent must be TRUC too.
const CHILD_VERSION: i32 = 3;

/// Passes at building the child before giving up on its fee converging (its size depends on
/// the coins picked, which depend on the fee).
const CHILD_ATTEMPTS: usize = 4;

/// Why a served READY round is not broadcast.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadyError {
    /// The round is not READY.
    #[error("checkpoint round {round} is {status:?}, not ready")]
    NotReady {
        /// The round.
        round: u64,
        /// Its status.
        status: CheckpointStatus,
    },
    /// A READY round without its signed transaction.
    #[error("checkpoint round {0} is ready but the node serves no signed transaction")]
    NoSignedTransaction(u64),
    /// The signed transaction is not the candidate.
    #[error("checkpoint round {round}: the signed transaction {signed} is not the candidate {candidate}")]
    NotTheCandidate {
        /// The round.
        round: u64,
        /// The signed transaction's txid.
        signed: Txid,
        /// The candidate's.
        candidate: Txid,
    },
    /// The signed transaction does not have the candidate shape.
    #[error("checkpoint round {round}: {source}")]
    Shape {
        /// The round.
        round: u64,
        /// The field off the template.
        source: ShapeError,
    },
    /// The signed transaction spends another output than the round's base.
    #[error("checkpoint round {round}: the transaction spends {spent}, not the base {base}")]
    Base {
        /// The round.
        round: u64,
        /// What it spends.
        spent: OutPoint,
        /// The base as served.
        base: OutPoint,
    },
    /// The payload names another round.
    #[error("checkpoint round {round}: the payload names round {named}")]
    PayloadRound {
        /// The round.
        round: u64,
        /// The payload's.
        named: u64,
    },
}

/// The signed transaction of READY round `round`, checked: it is the served candidate (same
/// txid: the witness is all it adds), has the candidate shape for value `value` (so it pays 0
/// and carries the P2A output), spends the round's base, and its payload names the round.
///
/// # Errors
/// [`ReadyError`] naming the first check that fails.
pub fn signed_candidate(
    round: &CheckpointRoundView,
    value: Amount,
) -> Result<Transaction, ReadyError> {
    let h = round.round;
    if round.status != CheckpointStatus::Ready {
        return Err(ReadyError::NotReady {
            round: h,
            status: round.status,
        });
    }
    let signed = round
        .signed_transaction
        .clone()
        .ok_or(ReadyError::NoSignedTransaction(h))?;
    let (txid, candidate) = (signed.compute_txid(), round.candidate.compute_txid());
    if txid != candidate {
        return Err(ReadyError::NotTheCandidate {
            round: h,
            signed: txid,
            candidate,
        });
    }
    let shape =
        check_shape(&signed, value).map_err(|source| ReadyError::Shape { round: h, source })?;
    if shape.base != round.base.outpoint {
        return Err(ReadyError::Base {
            round: h,
            spent: shape.base,
            base: round.base.outpoint,
        });
    }
    if shape.payload.round != h {
        return Err(ReadyError::PayloadRound {
            round: h,
            named: shape.payload.round,
        });
    }
    Ok(signed)
}

/// Why the child cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// The parent has no pay-to-anchor output.
    #[error("transaction {0} has no pay-to-anchor output")]
    NoAnchor(Txid),
    /// The wallet cannot pay (no confirmed coins enough, signing failed).
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// The fee overflows.
    #[error("the fee at {rate} for {vsize} vB overflows")]
    Fee {
        /// The fee rate.
        rate: FeeRate,
        /// The package size.
        vsize: u64,
    },
    /// The child is above TRUC's limit (too many coins needed).
    #[error("the child is {0} vB, above TRUC's {MAX_CHILD_VSIZE} vB for a child of an unconfirmed parent")]
    TooBig(u64),
    /// The fee did not settle.
    #[error("the child's fee did not settle after {CHILD_ATTEMPTS} attempts")]
    NoFixedPoint,
}

/// Signs the version 3 child of `parent`: it spends `parent`'s pay-to-anchor output (empty
/// witness, 0 sat) and confirmed wallet coins (never `unspendable`), and pays `fee_rate` for
/// parent and child together, the rest back to the wallet. The child is at most 1,000 vB.
///
/// The fee is absolute, so the child is built again when its real size asks for more than
/// the estimate it was built with.
///
/// # Errors
/// [`ChildError`].
pub async fn build_child(
    wallet: &mut Wallet,
    parent: &Transaction,
    fee_rate: FeeRate,
    unspendable: &[OutPoint],
) -> Result<Transaction, ChildError> {
    let anchor_vout = parent
        .output
        .iter()
        .position(|o| o.script_pubkey.as_bytes() == P2A_SCRIPT)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or(ChildError::NoAnchor(parent.compute_txid()))?;
    let parent_vsize = parent.vsize() as u64;
    let fee_for = |child_vsize: u64| {
        let vsize = parent_vsize + child_vsize;
        fee_rate.fee_vb(vsize).ok_or(ChildError::Fee {
            rate: fee_rate,
            vsize,
        })
    };
    // §13.10: a P2A input, one P2TR key-path input and one P2TR output make 153 vB.
    let mut fee = fee_for(153)?;
    for _ in 0..CHILD_ATTEMPTS {
        let mut psbt = wallet
            .build_anchor_child(parent, anchor_vout, fee, CHILD_VERSION, unspendable)
            .await?;
        let child = wallet.sign_payment(&mut psbt)?;
        let vsize = child.vsize() as u64;
        if vsize > MAX_CHILD_VSIZE {
            return Err(ChildError::TooBig(vsize));
        }
        let needed = fee_for(vsize)?;
        if fee >= needed {
            return Ok(child);
        }
        fee = needed;
    }
    Err(ChildError::NoFixedPoint)
}

/// Where a recorded package stands, and so what to do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// As a recorded anchor: send again, wait, or done (its candidate's place on Bitcoin).
    Like(crate::plan::Track),
    /// Not mined and the node says the base moved on without it: done, nothing to send.
    Superseded,
}

/// What a recorded package asks for, from its candidate's `status` on Bitcoin, k =
/// `confirmations`, and the round's status on the node (`None`: not asked, or unknown): as a
/// recorded anchor ([`crate::plan::track`]), except that an unmined candidate of a superseded
/// round is dropped.
pub fn track(status: &TxStatus, confirmations: u32, round: Option<CheckpointStatus>) -> Track {
    let mined = matches!(status, TxStatus::Confirmed { .. });
    if !mined && round == Some(CheckpointStatus::Superseded) {
        return Track::Superseded;
    }
    Track::Like(crate::plan::track(status, confirmations))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Track as Plan;
    use bitcoin::hashes::Hash;
    use bitcoin::{absolute, transaction, ScriptBuf, Sequence, TxIn, TxOut, Witness};
    use fiamma_finality::checkpoint::candidate::p2a_txout;
    use fiamma_finality::checkpoint::payload::{CheckpointKind as PayloadKind, CheckpointPayload};
    use fiamma_finality::round::RoundHash;
    use fiamma_proto::client::{CheckpointKind, CheckpointOutputView};

    const VALUE: Amount = Amount::from_sat(1_000);

    fn base() -> OutPoint {
        OutPoint::new(Txid::from_byte_array([4; 32]), 0)
    }

    fn candidate(round: u64) -> Transaction {
        let payload = CheckpointPayload {
            kind: PayloadKind::Quorum,
            round,
            round_hash: RoundHash([1; 32]),
            state: [2; 32],
        };
        Transaction {
            version: transaction::Version(3),
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: base(),
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![
                TxOut {
                    value: VALUE,
                    script_pubkey: ScriptBuf::from_bytes(
                        [[0x51, 0x20].as_slice(), &[9; 32]].concat(),
                    ),
                },
                payload.txout(),
                p2a_txout(),
            ],
        }
    }

    fn ready(round: u64) -> CheckpointRoundView {
        let unsigned = candidate(round);
        let mut signed = unsigned.clone();
        signed.input[0].witness = Witness::from_slice(&[vec![7u8; 64], vec![0x51]]);
        CheckpointRoundView {
            round,
            kind: CheckpointKind::Scheduled,
            status: CheckpointStatus::Ready,
            base: CheckpointOutputView {
                outpoint: base(),
                round: 0,
                height: 100,
                kind: 0,
            },
            candidate: unsigned,
            message: vec![],
            round_hash: [1; 32],
            state: [2; 32],
            voted_power_sat: 1,
            total_power_sat: 1,
            base_weight_signed: 1,
            threshold: 1,
            votes: vec![],
            signed_transaction: Some(signed),
        }
    }

    #[test]
    fn a_ready_round_gives_its_signed_candidate_and_every_mismatch_is_named() {
        let ok = signed_candidate(&ready(40), VALUE).expect("checks");
        assert_eq!(ok.compute_txid(), ready(40).candidate.compute_txid());
        assert!(!ok.input[0].witness.is_empty());

        let mut signing = ready(40);
        signing.status = CheckpointStatus::Signing;
        assert!(matches!(
            signed_candidate(&signing, VALUE),
            Err(ReadyError::NotReady { .. })
        ));
        let mut none = ready(40);
        none.signed_transaction = None;
        assert_eq!(
            signed_candidate(&none, VALUE),
            Err(ReadyError::NoSignedTransaction(40))
        );
        // Another transaction than the candidate (here: one paying output 0 less).
        let mut other = ready(40);
        if let Some(tx) = other.signed_transaction.as_mut() {
            tx.output[0].value = Amount::from_sat(999);
        }
        assert!(matches!(
            signed_candidate(&other, VALUE),
            Err(ReadyError::NotTheCandidate { .. })
        ));
        // Candidate and signed transaction agree, but off the template (a fee-paying output).
        let mut shape = ready(40);
        for tx in [&mut shape.candidate]
            .into_iter()
            .chain(shape.signed_transaction.as_mut())
        {
            tx.output[2].value = Amount::from_sat(1);
        }
        assert!(matches!(
            signed_candidate(&shape, VALUE),
            Err(ReadyError::Shape { .. })
        ));
        let mut base_moved = ready(40);
        base_moved.base.outpoint.vout = 1;
        assert!(matches!(
            signed_candidate(&base_moved, VALUE),
            Err(ReadyError::Base { .. })
        ));
        let mut named = ready(41);
        named.round = 40;
        assert_eq!(
            signed_candidate(&named, VALUE),
            Err(ReadyError::PayloadRound {
                round: 40,
                named: 41
            })
        );
    }

    #[test]
    fn a_package_is_sent_again_until_k_deep_unless_superseded() {
        let confirmed = |c| TxStatus::Confirmed {
            block_hash: bitcoin::BlockHash::all_zeros(),
            height: 1,
            confirmations: c,
            proof: bitcoin::MerkleBlock::from_block_with_predicate(
                &bitcoin::constants::genesis_block(bitcoin::Network::Regtest),
                |_| true,
            ),
        };
        let ready = Some(CheckpointStatus::Ready);
        let gone = Some(CheckpointStatus::Superseded);
        let like = Track::Like;
        assert_eq!(track(&TxStatus::Unknown, 3, ready), like(Plan::Rebroadcast));
        assert_eq!(track(&TxStatus::Unknown, 3, None), like(Plan::Rebroadcast));
        assert_eq!(track(&TxStatus::Unknown, 3, gone), Track::Superseded);
        assert_eq!(track(&TxStatus::InMempool, 3, gone), Track::Superseded);
        assert_eq!(track(&TxStatus::InMempool, 3, ready), like(Plan::InMempool));
        assert_eq!(track(&confirmed(2), 3, ready), like(Plan::Confirming(2)));
        assert_eq!(track(&confirmed(3), 3, gone), like(Plan::Done(3)));
    }
}
