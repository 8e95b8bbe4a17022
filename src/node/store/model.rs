//! The records the store reads and writes: already validated values, not wire messages.

use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::Txid;
use fiamma_staking::delegation::DelegationSighashes;
use fiamma_staking::pop::{PopDecodeError, ProofOfPossession};
use fiamma_staking::state::{DelegationState, DelegationStatus, VerifierState};

/// Format of a proof of possession (PROTOCOL §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PopKind {
    /// BIP-340 signature over `sha256(ctx(op) ‖ account bytes)`.
    Bip340,
    /// BIP-322 simple signature over the same message.
    Bip322,
}

impl PopKind {
    /// The stored code (matches the protobuf enum numbers).
    pub fn code(self) -> i16 {
        match self {
            PopKind::Bip340 => 1,
            PopKind::Bip322 => 2,
        }
    }

    /// The kind for a stored code.
    pub fn from_code(code: i16) -> Option<Self> {
        match code {
            1 => Some(PopKind::Bip340),
            2 => Some(PopKind::Bip322),
            _ => None,
        }
    }
}

/// A registrant's proof of possession of its BTC key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pop {
    /// Signature format.
    pub kind: PopKind,
    /// Signature bytes ([`ProofOfPossession::encode`]).
    pub signature: Vec<u8>,
}

impl Pop {
    /// The stored form of `proof`.
    pub fn of(proof: &ProofOfPossession) -> Self {
        Pop {
            kind: match proof {
                ProofOfPossession::Bip340(_) => PopKind::Bip340,
                ProofOfPossession::Bip322 { .. } => PopKind::Bip322,
            },
            signature: proof.encode(),
        }
    }

    /// The proof it stores.
    ///
    /// # Errors
    /// [`PopDecodeError`] when the bytes are not of its kind.
    pub fn proof(&self) -> Result<ProofOfPossession, PopDecodeError> {
        ProofOfPossession::decode(self.kind == PopKind::Bip322, &self.signature)
    }
}

/// Human-readable information about a verifier.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Description {
    /// Display name.
    pub moniker: String,
    /// Optional identity (e.g. a keybase id).
    pub identity: String,
    /// Optional website.
    pub website: String,
    /// Optional security contact.
    pub security_contact: String,
    /// Optional free text.
    pub details: String,
}

/// A verifier registration that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVerifier {
    /// The verifier's BTC key.
    pub btc_pk: XOnlyPublicKey,
    /// Its account, a bech32 address.
    pub account: String,
    /// Its description.
    pub description: Description,
    /// Commission as a canonical decimal string.
    pub commission: String,
    /// Its proof of possession.
    pub pop: Pop,
}

/// Why a verifier was slashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlashingReason {
    /// Two votes for one round (PROTOCOL §11).
    Equivocation,
    /// It broadcast a slashing transaction itself, revealing its key (PROTOCOL §5, §11).
    SelectiveSlashing,
}

impl SlashingReason {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            SlashingReason::Equivocation => "equivocation",
            SlashingReason::SelectiveSlashing => "selective_slashing",
        }
    }

    /// The reason for a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            SlashingReason::Equivocation,
            SlashingReason::SelectiveSlashing,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// A stored verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    /// What it registered with.
    pub registration: NewVerifier,
    /// Its slashing state.
    pub state: VerifierState,
    /// Why it was slashed, when it was.
    pub slashing_reason: Option<SlashingReason>,
}

/// A delegation registration that passed every rule of PROTOCOL §4 and §7.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelegation {
    /// Id of the staking transaction.
    pub staking_txid: Txid,
    /// The staker's account.
    pub staker_account: String,
    /// The staker's BTC key.
    pub staker_btc_pk: XOnlyPublicKey,
    /// The staker's proof of possession.
    pub pop: Pop,
    /// The one verifier delegated to.
    pub verifier_btc_pk: XOnlyPublicKey,
    /// Staking time T in blocks.
    pub staking_time_blocks: u32,
    /// Value of the staking output.
    pub staking_value_sat: u64,
    /// The staking transaction, consensus-encoded.
    pub staking_tx: Vec<u8>,
    /// Index of the staking output in it.
    pub staking_output_index: u32,
    /// The staking slashing transaction.
    pub slashing_tx: Vec<u8>,
    /// The staker's signature on it.
    pub staker_slashing_sig: Vec<u8>,
    /// Unbonding time U in blocks.
    pub unbonding_time_blocks: u32,
    /// The unbonding transaction.
    pub unbonding_tx: Vec<u8>,
    /// Its id.
    pub unbonding_txid: Txid,
    /// The unbonding slashing transaction.
    pub unbonding_slashing_tx: Vec<u8>,
    /// The staker's signature on it.
    pub staker_unbonding_slashing_sig: Vec<u8>,
    /// The params version the registration was checked against.
    pub params_version: u32,
}

/// One covenant member's verified signatures on a delegation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CovenantSigs {
    /// The member's key.
    pub covenant_pk: XOnlyPublicKey,
    /// Adaptor signature on the staking slashing transaction.
    pub slashing_adaptor_sig: Vec<u8>,
    /// BIP-340 signature on the unbonding transaction.
    pub unbonding_sig: Vec<u8>,
    /// Adaptor signature on the unbonding slashing transaction.
    pub unbonding_slashing_adaptor_sig: Vec<u8>,
}

/// A stored delegation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegation {
    /// What it registered with.
    pub registration: NewDelegation,
    /// Its state machine.
    pub state: DelegationState,
    /// The transaction seen spending the staking output.
    pub spending_txid: Option<Txid>,
    /// Covenant signatures, ordered by member key.
    pub covenant_sigs: Vec<CovenantSigs>,
    /// The messages the covenant committee signs, as computed at registration (`None` for a
    /// delegation stored before they were kept).
    pub covenant_sighashes: Option<DelegationSighashes>,
}

/// What AddCovenantSigs needs of a stored delegation (see [`crate::node::store::StoreConn::signing_view`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningView {
    /// The delegation.
    pub staking_txid: Txid,
    /// The staker's key.
    pub staker_btc_pk: XOnlyPublicKey,
    /// Its verifier's key.
    pub verifier_btc_pk: XOnlyPublicKey,
    /// The params version it was registered under.
    pub params_version: u32,
    /// Its state machine, with the members whose signatures are counted.
    pub state: DelegationState,
    /// The messages the committee signs, when kept (see [`Delegation::covenant_sighashes`]).
    pub covenant_sighashes: Option<DelegationSighashes>,
}

/// What an event says changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A delegation moved between statuses.
    DelegationStatusChanged {
        /// The delegation.
        staking_txid: Txid,
        /// Its verifier.
        verifier: XOnlyPublicKey,
        /// Status before; `None` when the change is the registration itself.
        from: Option<DelegationStatus>,
        /// Status after.
        to: DelegationStatus,
    },
    /// A verifier registered.
    VerifierCreated {
        /// Its key.
        verifier: XOnlyPublicKey,
    },
    /// A verifier was slashed.
    VerifierSlashed {
        /// Its key.
        verifier: XOnlyPublicKey,
        /// Why.
        reason: SlashingReason,
    },
}

/// One entry of the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Position in the log: 1, 2, 3, … without gaps.
    pub sequence: u64,
    /// BTC tip height when it was applied.
    pub btc_height: u32,
    /// What changed.
    pub kind: EventKind,
}

/// A verifier's voting power at a height.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VotingPowerEntry {
    /// The verifier.
    pub verifier: XOnlyPublicKey,
    /// Sum of its active delegations' values.
    pub power_sat: u64,
}

/// Filter of the delegation listing; `None` fields match anything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DelegationFilter {
    /// Only this status.
    pub status: Option<DelegationStatus>,
    /// Only this staker.
    pub staker: Option<XOnlyPublicKey>,
    /// Only this verifier.
    pub verifier: Option<XOnlyPublicKey>,
}

/// What the chain follower needs of a delegation to look it up on Bitcoin: ids, outpoint and
/// heights, never its transactions or signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelegationRef {
    /// The delegation.
    pub staking_txid: Txid,
    /// Index of the staking output in the staking transaction.
    pub staking_output_index: u32,
    /// The params version it was registered under.
    pub params_version: u32,
    /// Its status.
    pub status: DelegationStatus,
    /// Height of the block including the staking transaction, once recorded.
    pub start_height: Option<u32>,
    /// Tip height when it became ACTIVE.
    pub activated_height: Option<u32>,
}

/// A delegation's state machine read without its transactions or covenant signatures: what
/// advancing it to a new tip needs. Its signer set is empty, so it must not be used to count
/// covenant signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegationStateRow {
    /// The delegation.
    pub staking_txid: Txid,
    /// Its verifier.
    pub verifier_btc_pk: XOnlyPublicKey,
    /// The params version it was registered under.
    pub params_version: u32,
    /// Its state machine (signers not loaded).
    pub state: DelegationState,
}
