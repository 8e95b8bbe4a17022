//! Bitcoin-checked checkpoints (`CHECKPOINTS.md`, proposed `PROTOCOL.md` §13): a chain of
//! transactions in which each checkpoint output can only be spent with signatures worth more
//! than 2/3 of the quantized stake of the verifier set that created it, the signatures being
//! the verifiers' EOTS votes over the spending transaction's sighash.
//!
//! Pure, like the rest of the crate: values in, values or typed errors out.
//!
//! - [`weights`]: a round's power table quantized to 23-bit weights, the *set* (§13.2);
//! - [`script`]: the quorum leaf and the recovery leaf, built and parsed (§13.3);
//! - [`output`]: the checkpoint output `TapBranch(quorum, recovery)` (§13.3);
//! - [`payload`]: the 77-byte `OP_RETURN` payload (§13.4);
//! - [`candidate`]: the candidate transaction and its shape rules (§13.4);
//! - [`message`]: the checkpoint vote message M, whose sha256 is the sighash (§13.5);
//! - [`witness`]: the completeness check and witness assembly (§13.3, §13.6.3, §13.8);
//! - [`tally`]: the node's side of a checkpoint round: votes checked, counted as the round's
//!   votes, the complete witness, equivocation (§13.5–13.6);
//! - [`rounds`]: parameters and which rounds are checkpoint rounds (§13.1, §13.6);
//! - [`reader`]: following a checkpoint chain from its genesis outpoint with Bitcoin data alone
//!   (§13.9).

pub mod candidate;
pub mod message;
pub mod output;
pub mod payload;
pub mod reader;
pub mod rounds;
pub mod script;
pub mod tally;
#[cfg(test)]
mod testkit;
pub mod weights;
pub mod witness;

pub use candidate::{
    build_candidate, check_shape, p2a_txout, Candidate, CandidateError, CandidateSpec, Shape,
    ShapeError, CANDIDATE_BASE_SIZE, MIN_CHECKPOINT_VALUE, P2A_SCRIPT,
};
pub use message::{
    checkpoint_message, CheckpointMessage, CheckpointVote, MessageError, MESSAGE_LEN,
};
pub use output::{CheckpointLeaf, CheckpointOutput, CONTROL_BLOCK_LEN};
pub use payload::{CheckpointKind, CheckpointPayload, PayloadError};
pub use reader::{
    follow, ChainEnd, ChainSource, CheckpointChain, CheckpointLink, ConfirmedSpend, OffTemplate,
    ReadError, ReaderParams,
};
pub use rounds::{CheckpointParams, CheckpointParamsError, CheckpointRules, RoundKind};
pub use script::{parse_quorum_script, quorum_script, RecoveryLeaf, ScriptParseError};
pub use tally::{
    checkpoint_equivocation, CheckpointEquivocationError, CheckpointRound, CheckpointTally,
    CheckpointVoteError,
};
pub use weights::{
    CheckpointSet, SetError, SetMember, MAX_CHECKPOINT_SET, THRESHOLD, WEIGHT_SCALE,
};
pub use witness::{
    check_complete, quorum_witness, recovery_witness, CompleteSignatures, CompletenessError,
};
