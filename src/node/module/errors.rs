//! One error enum per staking-module operation. Every variant names the offending value;
//! `grpc::status` maps each to the gRPC code a client can act on.

use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::{BlockHash, Txid};
use fiamma_covenant::verification::CovenantSignaturesError;
use fiamma_staking::delegation::DelegationError;
use fiamma_staking::light_client::InclusionError;
use fiamma_staking::params::ParamsVersionsError;
use fiamma_staking::pop::PopError;
use fiamma_staking::state::{AddCovenantSigsError, RecordInclusionError, SlashVerifierError};

use crate::node::store::StoreError;

/// Why a stored delegation cannot be worked with (a bug or a damaged database, not the caller's).
#[derive(Debug, thiserror::Error)]
pub enum StoredDelegationError {
    /// A stored transaction does not decode.
    #[error("stored {what} of delegation {txid} does not decode: {reason}")]
    Decode {
        /// The delegation.
        txid: Txid,
        /// Which transaction.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The delegation's params version is not loaded.
    #[error("params version {version} of delegation {txid} is not in the params file")]
    UnknownParamsVersion {
        /// The delegation.
        txid: Txid,
        /// Its version.
        version: u32,
    },
}

/// Why CreateVerifier was refused.
#[derive(Debug, thiserror::Error)]
pub enum CreateVerifierError {
    /// The proof of possession does not verify.
    #[error(transparent)]
    Pop(#[from] PopError),
    /// The key is registered already.
    #[error("verifier {0} is already registered")]
    Duplicate(XOnlyPublicKey),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why CreateDelegation was refused.
#[derive(Debug, thiserror::Error)]
pub enum CreateDelegationError {
    /// No params version is in force at the node's tip.
    #[error("cannot pick params for the delegation: {0}")]
    Params(#[from] ParamsVersionsError),
    /// The registration breaks a rule of PROTOCOL §4, §7 or §8.
    #[error("invalid delegation: {0}")]
    Invalid(#[from] DelegationError),
    /// The params allow several verifiers per delegation; this node stores exactly one (§8).
    #[error("{0} verifier keys given; a delegation names exactly one verifier")]
    SeveralVerifiers(usize),
    /// No verifier is registered with the key.
    #[error("verifier {0} is not registered; register it with CreateVerifier first")]
    UnknownVerifier(XOnlyPublicKey),
    /// The verifier is slashed.
    #[error("verifier {0} is slashed and cannot receive delegations")]
    VerifierSlashed(XOnlyPublicKey),
    /// The staking transaction is registered already.
    #[error("a delegation with staking transaction {0} is already registered")]
    Duplicate(Txid),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why AddCovenantSigs was refused.
#[derive(Debug, thiserror::Error)]
pub enum CovenantSigsError {
    /// No delegation has the staking txid.
    #[error("no delegation with staking transaction {0}")]
    UnknownDelegation(Txid),
    /// The state machine refused (outside the committee, signed already, wrong status).
    #[error(transparent)]
    State(#[from] AddCovenantSigsError),
    /// A signature does not verify.
    #[error(transparent)]
    Signatures(#[from] CovenantSignaturesError),
    /// The stored delegation cannot be used.
    #[error(transparent)]
    Stored(#[from] StoredDelegationError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why AddInclusionProof was refused.
#[derive(Debug, thiserror::Error)]
pub enum InclusionProofError {
    /// No delegation has the staking txid.
    #[error("no delegation with staking transaction {0}")]
    UnknownDelegation(Txid),
    /// The node follows no header chain yet.
    #[error("the node has no bitcoin header chain yet; retry once it has synced")]
    NoHeaderChain,
    /// The light client refused the proof.
    #[error(transparent)]
    Inclusion(#[from] InclusionError),
    /// The proof points at the coinbase.
    #[error("the proof puts staking transaction {txid} at index 0 of block {block}, the coinbase")]
    Coinbase {
        /// The delegation.
        txid: Txid,
        /// The block named.
        block: BlockHash,
    },
    /// The version in force at the inclusion height is not the one it was registered under.
    #[error(
        "staking transaction {txid} was included at height {height} where params version \
         {at_inclusion} is in force, but it was registered under version {registered}; register \
         it again under the new version"
    )]
    ParamsVersionChanged {
        /// The delegation.
        txid: Txid,
        /// Inclusion height.
        height: u32,
        /// Version stored at registration.
        registered: u32,
        /// Version in force at the inclusion height.
        at_inclusion: u32,
    },
    /// No params version covers the inclusion height.
    #[error(transparent)]
    Params(#[from] ParamsVersionsError),
    /// The state machine refused (not deep enough, included already, ended).
    #[error(transparent)]
    State(#[from] RecordInclusionError),
    /// The stored delegation cannot be used.
    #[error(transparent)]
    Stored(#[from] StoredDelegationError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why SelectiveSlashingEvidence was refused.
#[derive(Debug, thiserror::Error)]
pub enum SlashingEvidenceError {
    /// No delegation has the staking txid.
    #[error("no delegation with staking transaction {0}")]
    UnknownDelegation(Txid),
    /// The secret key belongs to another key than the delegation's verifier.
    #[error("the secret key is for {derived}, but delegation {txid} is to verifier {verifier}")]
    KeyMismatch {
        /// The delegation.
        txid: Txid,
        /// Key derived from the secret.
        derived: XOnlyPublicKey,
        /// The delegation's verifier.
        verifier: XOnlyPublicKey,
    },
    /// The verifier is slashed already.
    #[error("verifier {verifier}: {source}")]
    AlreadySlashed {
        /// The verifier.
        verifier: XOnlyPublicKey,
        /// The state machine's refusal.
        source: SlashVerifierError,
    },
    /// The delegation's verifier row is missing (a damaged database).
    #[error("verifier {0} of the delegation is not in the database")]
    MissingVerifier(XOnlyPublicKey),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a query was refused.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Nothing matches the key asked for.
    #[error("{0} not found")]
    NotFound(String),
    /// No params version matches.
    #[error(transparent)]
    Params(#[from] ParamsVersionsError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
