//! The candidate transaction (§13.4): version 3 (TRUC), locktime 0, one input spending the
//! base checkpoint output, outputs `[next checkpoint output (V), payload (0), P2A (0)]`, no fee.
//! It has 196 non-witness bytes, so its weight is 786 + the witness's bytes.

use bitcoin::absolute::LockTime;
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};

use super::message::{checkpoint_message, CheckpointMessage, MessageError};
use super::output::{CheckpointLeaf, CheckpointOutput};
use super::payload::{CheckpointKind, CheckpointPayload, PayloadError};
use super::script::RecoveryLeaf;
use super::weights::CheckpointSet;

/// The pay-to-anchor output script `OP_1 0x02 4e73` (BIP-0433 draft): anyone may spend it,
/// so a child can pay the candidate's fee (§13.7).
pub const P2A_SCRIPT: [u8; 4] = [0x51, 0x02, 0x4e, 0x73];

/// The smallest checkpoint value: P2TR dust.
pub const MIN_CHECKPOINT_VALUE: Amount = Amount::from_sat(330);

/// Non-witness bytes of every candidate.
pub const CANDIDATE_BASE_SIZE: usize = 196;

/// The P2A output (value 0).
pub fn p2a_txout() -> TxOut {
    TxOut {
        value: Amount::ZERO,
        script_pubkey: ScriptBuf::from_bytes(P2A_SCRIPT.to_vec()),
    }
}

/// What a candidate is built from; every signer derives it from its own view (§13.4 rules 1–3).
#[derive(Debug, Clone, Copy)]
pub struct CandidateSpec<'a> {
    /// Output 0 of the latest checkpoint, or the genesis outpoint.
    pub base: OutPoint,
    /// The round the base checkpoint published (h₀ for the genesis outpoint).
    pub base_round: u64,
    /// The set encoded in the base output.
    pub base_set: &'a CheckpointSet,
    /// Round h's set, for output 0.
    pub next_set: &'a CheckpointSet,
    /// The recovery leaf of both outputs.
    pub recovery: &'a RecoveryLeaf,
    /// `checkpoint_value_sat`, V.
    pub value: Amount,
    /// Kind, round h, its round hash and state.
    pub payload: CheckpointPayload,
}

/// A built candidate: the unsigned transaction, both outputs and the message its spending
/// leaf signs.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The unsigned transaction.
    pub tx: Transaction,
    /// The output it spends (for the sighash: value V and its script).
    pub base_output: CheckpointOutput,
    /// Its output 0.
    pub next_output: CheckpointOutput,
    /// M for the leaf of the payload's kind (quorum: the checkpoint vote; recovery: what the
    /// committee signs, as BIP-0340 over `sha256(M)`).
    pub message: CheckpointMessage,
}

impl Candidate {
    /// The output the candidate spends.
    pub fn spent_txout(&self) -> TxOut {
        self.base_output.txout(self.tx.output[0].value)
    }
}

/// Why no candidate could be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CandidateError {
    /// §13.4 rule 2: h must be later than the base's round.
    #[error("round {round} is not later than the base checkpoint's round {base_round}")]
    StaleRound {
        /// The candidate's round.
        round: u64,
        /// The base's round.
        base_round: u64,
    },
    /// V below P2TR dust.
    #[error("checkpoint value {0} is below 330 sat")]
    Value(Amount),
    /// The message could not be formed.
    #[error(transparent)]
    Message(#[from] MessageError),
}

/// Builds the candidate of `spec`: the quorum path (nSequence 0xffffffff) for kind 0x01, the
/// recovery path (nSequence R) for kind 0x02.
///
/// # Errors
/// [`CandidateError`].
pub fn build_candidate(spec: &CandidateSpec<'_>) -> Result<Candidate, CandidateError> {
    if spec.payload.round <= spec.base_round {
        return Err(CandidateError::StaleRound {
            round: spec.payload.round,
            base_round: spec.base_round,
        });
    }
    if spec.value < MIN_CHECKPOINT_VALUE {
        return Err(CandidateError::Value(spec.value));
    }
    let base_output = CheckpointOutput::new(spec.base_set, spec.recovery);
    let next_output = CheckpointOutput::new(spec.next_set, spec.recovery);
    let (sequence, leaf) = match spec.payload.kind {
        CheckpointKind::Quorum => (Sequence::MAX, CheckpointLeaf::Quorum),
        CheckpointKind::Recovery => (
            Sequence::from_height(spec.recovery.blocks()),
            CheckpointLeaf::Recovery,
        ),
    };
    let tx = Transaction {
        version: Version(3),
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: spec.base,
            script_sig: ScriptBuf::new(),
            sequence,
            witness: Witness::new(),
        }],
        output: vec![
            next_output.txout(spec.value),
            spec.payload.txout(),
            p2a_txout(),
        ],
    };
    let message = checkpoint_message(
        &tx,
        &base_output.txout(spec.value),
        base_output.leaf_hash(leaf),
    )?;
    Ok(Candidate {
        tx,
        base_output,
        next_output,
        message,
    })
}

/// The template fields of a transaction that has the candidate shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// The outpoint it spends.
    pub base: OutPoint,
    /// Its input's nSequence.
    pub sequence: Sequence,
    /// Its payload.
    pub payload: CheckpointPayload,
}

/// Why a transaction does not have the candidate shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// Not version 3.
    #[error("version {0}, a checkpoint is version 3")]
    Version(i32),
    /// Locktime not 0.
    #[error("locktime {0}, a checkpoint has locktime 0")]
    LockTime(u32),
    /// Not exactly one input.
    #[error("{0} inputs, a checkpoint has one")]
    Inputs(usize),
    /// A non-empty scriptSig.
    #[error("the input has a non-empty scriptSig")]
    ScriptSig,
    /// Not exactly three outputs.
    #[error("{0} outputs, a checkpoint has three")]
    Outputs(usize),
    /// Output 0 is not a P2TR output of value V.
    #[error("output 0 is not a p2tr output of the checkpoint value {0}")]
    NextOutput(Amount),
    /// Output 1 is not a zero-value checkpoint payload.
    #[error("output 1 is not a zero-value checkpoint payload: {0}")]
    Payload(PayloadError),
    /// Output 1 carries value.
    #[error("output 1 carries {0}, a payload output carries none")]
    PayloadValue(Amount),
    /// Output 2 is not the zero-value P2A output.
    #[error("output 2 is not the zero-value pay-to-anchor output")]
    Anchor,
    /// A quorum checkpoint's input must not have a relative lock.
    #[error("a quorum checkpoint has nSequence {0:#010x}, expected 0xffffffff")]
    Sequence(u32),
}

/// Checks a transaction against the candidate template for a base output of value `value`
/// (which makes its fee 0) and returns its fields. A recovery checkpoint's nSequence is the
/// caller's to compare with R, which only the spent leaf tells.
///
/// # Errors
/// [`ShapeError`] naming the first field off the template.
pub fn check_shape(tx: &Transaction, value: Amount) -> Result<Shape, ShapeError> {
    if tx.version != Version(3) {
        return Err(ShapeError::Version(tx.version.0));
    }
    if tx.lock_time != LockTime::ZERO {
        return Err(ShapeError::LockTime(tx.lock_time.to_consensus_u32()));
    }
    let [input] = tx.input.as_slice() else {
        return Err(ShapeError::Inputs(tx.input.len()));
    };
    if !input.script_sig.is_empty() {
        return Err(ShapeError::ScriptSig);
    }
    let [next, payload, anchor] = tx.output.as_slice() else {
        return Err(ShapeError::Outputs(tx.output.len()));
    };
    if next.value != value || !next.script_pubkey.is_p2tr() {
        return Err(ShapeError::NextOutput(value));
    }
    let parsed =
        CheckpointPayload::from_script(&payload.script_pubkey).map_err(ShapeError::Payload)?;
    if payload.value != Amount::ZERO {
        return Err(ShapeError::PayloadValue(payload.value));
    }
    if *anchor != p2a_txout() {
        return Err(ShapeError::Anchor);
    }
    if parsed.kind == CheckpointKind::Quorum && input.sequence != Sequence::MAX {
        return Err(ShapeError::Sequence(input.sequence.to_consensus_u32()));
    }
    Ok(Shape {
        base: input.previous_output,
        sequence: input.sequence,
        payload: parsed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::testkit::key;
    use crate::round::RoundHash;
    use bitcoin::hashes::Hash;

    fn candidate(kind: CheckpointKind, round: u64) -> Result<Candidate, CandidateError> {
        let base = CheckpointSet::from_powers([(key(1), 1), (key(2), 2)]).unwrap();
        let next = CheckpointSet::from_powers([(key(3), 1)]).unwrap();
        let recovery = RecoveryLeaf::new(&[key(9)], 1, 12).unwrap();
        build_candidate(&CandidateSpec {
            base: OutPoint::new(bitcoin::Txid::from_byte_array([7; 32]), 0),
            base_round: 10,
            base_set: &base,
            next_set: &next,
            recovery: &recovery,
            value: Amount::from_sat(1_000),
            payload: CheckpointPayload {
                kind,
                round,
                round_hash: RoundHash([1; 32]),
                state: [2; 32],
            },
        })
    }

    #[test]
    fn candidates_have_the_shape_and_size_of_the_template() {
        let c = candidate(CheckpointKind::Quorum, 20).unwrap();
        assert_eq!(
            bitcoin::consensus::serialize(&c.tx).len(),
            CANDIDATE_BASE_SIZE
        );
        let shape = check_shape(&c.tx, Amount::from_sat(1_000)).unwrap();
        assert_eq!(shape.payload.round, 20);
        assert_eq!(shape.sequence, Sequence::MAX);
        let r = candidate(CheckpointKind::Recovery, 20).unwrap();
        assert_eq!(r.tx.input[0].sequence, Sequence::from_height(12));
        assert!(check_shape(&r.tx, Amount::from_sat(1_000)).is_ok());
        assert_eq!(
            check_shape(&c.tx, Amount::from_sat(999)),
            Err(ShapeError::NextOutput(Amount::from_sat(999)))
        );
    }

    #[test]
    fn stale_rounds_and_dust_are_refused() {
        assert_eq!(
            candidate(CheckpointKind::Quorum, 10).unwrap_err(),
            CandidateError::StaleRound {
                round: 10,
                base_round: 10
            }
        );
    }

    #[test]
    fn every_field_off_the_template_is_named() {
        let good = candidate(CheckpointKind::Quorum, 20).unwrap().tx;
        let v = Amount::from_sat(1_000);
        let mut tx = good.clone();
        tx.version = Version::TWO;
        assert_eq!(check_shape(&tx, v), Err(ShapeError::Version(2)));
        let mut tx = good.clone();
        tx.lock_time = LockTime::from_consensus(1);
        assert_eq!(check_shape(&tx, v), Err(ShapeError::LockTime(1)));
        let mut tx = good.clone();
        tx.input.push(tx.input[0].clone());
        assert_eq!(check_shape(&tx, v), Err(ShapeError::Inputs(2)));
        let mut tx = good.clone();
        tx.input[0].script_sig = ScriptBuf::from_bytes(vec![0x51]);
        assert_eq!(check_shape(&tx, v), Err(ShapeError::ScriptSig));
        let mut tx = good.clone();
        tx.output.pop();
        assert_eq!(check_shape(&tx, v), Err(ShapeError::Outputs(2)));
        let mut tx = good.clone();
        tx.output[1].value = Amount::from_sat(1);
        assert_eq!(
            check_shape(&tx, v),
            Err(ShapeError::PayloadValue(Amount::from_sat(1)))
        );
        let mut tx = good.clone();
        tx.output[2].value = Amount::from_sat(240);
        assert_eq!(check_shape(&tx, v), Err(ShapeError::Anchor));
        let mut tx = good.clone();
        tx.output[1].script_pubkey = ScriptBuf::new_op_return([0u8; 4]);
        assert!(matches!(check_shape(&tx, v), Err(ShapeError::Payload(_))));
        let mut tx = good;
        tx.input[0].sequence = Sequence::ZERO;
        assert_eq!(check_shape(&tx, v), Err(ShapeError::Sequence(0)));
    }
}
