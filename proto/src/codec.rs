//! The one wire codec: protobuf messages to domain values and back, used by the node's
//! services and by every client (the roles' node client, the devnet). Every request field is
//! decoded with a [`FieldError`] naming the field, so a refused message says which field to fix,
//! and a client refuses exactly what the node would.

use std::str::FromStr;

use bitcoin::address::NetworkUnchecked;
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{schnorr, SecretKey, XOnlyPublicKey};
use bitcoin::{Address, BlockHash, Transaction, TxMerkleNode, Txid, Witness};
use fiamma_covenant::adaptor::AdaptorSignature;
use fiamma_covenant::signing::{CovenantSignatures, VerifierAdaptorSig};
use fiamma_staking::account::{Account, ACCOUNT_HRP};
use fiamma_staking::keys::parse_xonly;
use fiamma_staking::light_client::{MerkleBranch, MAX_BRANCH_LEN};
use fiamma_staking::params::Params;
use fiamma_staking::pop::ProofOfPossession;
use fiamma_staking::registration::Registration;
use fiamma_staking::state::DelegationStatus;

use crate::staking::v1 as pb;

pub mod finality;
pub mod params;
pub mod staker;

/// Largest transaction accepted in a request: a standard transaction weighs at most 400,000
/// weight units, so it serializes to at most 100,000 bytes without witness data.
pub const MAX_TX_BYTES: usize = 100_000;
/// Default page size.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// Largest page size.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// A request field that cannot be decoded or breaks a stateless rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field}: {reason}")]
pub struct FieldError {
    /// The field, as named in the .proto file.
    pub field: &'static str,
    /// What is wrong and what is expected.
    pub reason: String,
}

/// Characters of a request value quoted back in an error message, at most.
const ECHO_CHARS: usize = 80;
/// Longest account or BIP-322 address accepted (bech32 strings are at most 90 characters).
const MAX_ADDRESS_CHARS: usize = 90;

/// `text` quoted for an error message: at most [`ECHO_CHARS`] characters of it, then its
/// length, so a message never grows with the input.
pub fn echo(text: &str) -> String {
    let head = text
        .char_indices()
        .nth(ECHO_CHARS)
        .map_or(text, |(i, _)| &text[..i]);
    if head.len() == text.len() {
        return format!("{text:?}");
    }
    format!("{head:?}… ({} bytes)", text.len())
}

/// A refused field is the caller's to fix: INVALID_ARGUMENT with the field and the reason.
impl From<FieldError> for tonic::Status {
    fn from(e: FieldError) -> Self {
        tonic::Status::invalid_argument(e.to_string())
    }
}

/// A [`FieldError`] for `field`.
pub fn bad(field: &'static str, reason: impl Into<String>) -> FieldError {
    FieldError {
        field,
        reason: reason.into(),
    }
}

/// An x-only (32-byte) or compressed (33-byte) BTC key.
pub fn key(field: &'static str, bytes: &[u8]) -> Result<XOnlyPublicKey, FieldError> {
    if bytes.is_empty() {
        return Err(bad(field, "missing; expected a 32-byte x-only key"));
    }
    parse_xonly(bytes).map_err(|e| bad(field, e.to_string()))
}

/// A 32-byte hash written as 64 hex characters in display order (txid, block hash).
fn display_hash<T: FromStr>(field: &'static str, text: &str) -> Result<T, FieldError> {
    if text.len() != 64 {
        return Err(bad(
            field,
            format!(
                "{} has {} characters, expected 64 hex characters",
                echo(text),
                text.chars().count()
            ),
        ));
    }
    T::from_str(text).map_err(|_| bad(field, format!("{} is not hex", echo(text))))
}

/// A transaction id: 64 hex characters, display order.
pub fn txid(field: &'static str, text: &str) -> Result<Txid, FieldError> {
    display_hash(field, text)
}

/// A block hash: 64 hex characters, display order.
pub fn block_hash(field: &'static str, text: &str) -> Result<BlockHash, FieldError> {
    display_hash(field, text)
}

/// A consensus-encoded transaction of at most [`MAX_TX_BYTES`], with nothing after it.
pub fn transaction(field: &'static str, bytes: &[u8]) -> Result<Transaction, FieldError> {
    if bytes.is_empty() {
        return Err(bad(
            field,
            "missing; expected a consensus-encoded transaction",
        ));
    }
    if bytes.len() > MAX_TX_BYTES {
        return Err(bad(
            field,
            format!("{} bytes, at most {MAX_TX_BYTES} allowed", bytes.len()),
        ));
    }
    deserialize(bytes).map_err(|e| bad(field, format!("not a transaction: {e}")))
}

/// A 64-byte BIP-340 signature.
pub fn schnorr_sig(field: &'static str, bytes: &[u8]) -> Result<schnorr::Signature, FieldError> {
    if bytes.len() != 64 {
        return Err(bad(
            field,
            format!(
                "{} bytes, expected a 64-byte BIP-340 signature",
                bytes.len()
            ),
        ));
    }
    schnorr::Signature::from_slice(bytes).map_err(|e| bad(field, e.to_string()))
}

/// A 65-byte (or legacy 66-byte) adaptor signature.
pub fn adaptor_sig(field: &'static str, bytes: &[u8]) -> Result<AdaptorSignature, FieldError> {
    AdaptorSignature::from_slice(bytes).map_err(|e| bad(field, e.to_string()))
}

/// A bech32 account with this network's prefix.
pub fn account(field: &'static str, text: &str) -> Result<Account, FieldError> {
    // The parser's errors quote the address: refuse an overlong one before.
    if text.len() > MAX_ADDRESS_CHARS {
        return Err(bad(
            field,
            format!(
                "{} bytes, a bech32 account has at most {MAX_ADDRESS_CHARS}",
                text.len()
            ),
        ));
    }
    Account::from_bech32(text, ACCOUNT_HRP).map_err(|e| bad(field, e.to_string()))
}

/// Longest BIP-322 witness accepted in a proof of possession (a P2WPKH witness is about 108
/// bytes, a P2TR key-path one 66).
pub const MAX_POP_WITNESS_BYTES: usize = 256;

/// A proof of possession in either format: the 64-byte BIP-340 signature, or a BIP-322
/// witness (consensus-encoded, nothing after it) with the signing address.
pub fn pop(
    field: &'static str,
    p: Option<&pb::ProofOfPossession>,
) -> Result<ProofOfPossession, FieldError> {
    let p = p.ok_or_else(|| bad(field, "missing proof of possession"))?;
    match pb::PopType::try_from(p.pop_type) {
        Ok(pb::PopType::Bip340) => {
            if !p.bip322_address.is_empty() {
                return Err(bad(
                    field,
                    "a BIP-340 proof of possession has no bip322_address",
                ));
            }
            schnorr_sig(field, &p.signature).map(ProofOfPossession::Bip340)
        }
        Ok(pb::PopType::Bip322) => {
            if p.signature.len() > MAX_POP_WITNESS_BYTES {
                return Err(bad(
                    field,
                    format!(
                        "BIP-322 witness of {} bytes, over {MAX_POP_WITNESS_BYTES}",
                        p.signature.len()
                    ),
                ));
            }
            let witness: Witness = deserialize(&p.signature).map_err(|e| {
                bad(
                    field,
                    format!("BIP-322 signature is not a consensus-encoded witness: {e}"),
                )
            })?;
            if p.bip322_address.is_empty() {
                return Err(bad(
                    field,
                    "a BIP-322 proof of possession needs bip322_address",
                ));
            }
            if p.bip322_address.len() > MAX_ADDRESS_CHARS {
                return Err(bad(
                    field,
                    format!(
                        "bip322_address of {} bytes, an address has at most {MAX_ADDRESS_CHARS}",
                        p.bip322_address.len()
                    ),
                ));
            }
            let address = p
                .bip322_address
                .parse::<Address<NetworkUnchecked>>()
                .map_err(|e| {
                    bad(
                        field,
                        format!("bip322_address {}: {e}", echo(&p.bip322_address)),
                    )
                })?;
            Ok(ProofOfPossession::Bip322 { address, witness })
        }
        _ => Err(bad(
            field,
            format!(
                "pop_type {} is neither POP_TYPE_BIP340 nor POP_TYPE_BIP322",
                p.pop_type
            ),
        )),
    }
}

/// A commission: a decimal in [0, 1] with at most 4 decimals; returned in canonical form
/// (no trailing zeros, e.g. "0.05", "1", "0").
pub fn commission(field: &'static str, text: &str) -> Result<String, FieldError> {
    let invalid = || {
        bad(
            field,
            format!(
                "{} is not a decimal in [0, 1] with at most 4 decimals, e.g. \"0.05\"",
                echo(text)
            ),
        )
    };
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || frac.len() > 4 {
        return Err(invalid());
    }
    let frac = frac.trim_end_matches('0');
    match (int.trim_start_matches('0'), frac) {
        ("", "") => Ok("0".into()),
        ("", f) => Ok(format!("0.{f}")),
        ("1", "") => Ok("1".into()),
        _ => Err(invalid()),
    }
}

/// Page size and the key after which the page starts.
pub fn page<K>(
    p: Option<&pb::PageRequest>,
    decode: impl Fn(&[u8]) -> Option<K>,
) -> Result<(Option<K>, u32), FieldError> {
    let p = p.cloned().unwrap_or_default();
    let size = match p.page_size {
        0 => DEFAULT_PAGE_SIZE,
        n if n > MAX_PAGE_SIZE => {
            return Err(bad(
                "page.page_size",
                format!("{n} is above the largest page size {MAX_PAGE_SIZE}"),
            ))
        }
        n => n,
    };
    if p.page_token.is_empty() {
        return Ok((None, size));
    }
    let key = hex::decode(&p.page_token)
        .ok()
        .and_then(|bytes| decode(&bytes))
        .ok_or_else(|| {
            bad(
                "page.page_token",
                format!(
                    "{} is not a token from an earlier response",
                    echo(&p.page_token)
                ),
            )
        })?;
    Ok((Some(key), size))
}

/// The token continuing after `key`, or empty when nothing follows.
pub fn next_token(key: Option<&[u8]>) -> pb::PageResponse {
    pb::PageResponse {
        next_page_token: key.map(hex::encode).unwrap_or_default(),
    }
}

/// A wire number the database stores as BIGINT: at most `i64::MAX`.
pub fn int64(field: &'static str, value: u64) -> Result<u64, FieldError> {
    if i64::try_from(value).is_err() {
        return Err(bad(
            field,
            format!("{value} is above the largest allowed value {}", i64::MAX),
        ));
    }
    Ok(value)
}

/// A Merkle branch proof of position `index` (not the coinbase check; the module does that).
pub fn merkle_branch(
    p: Option<&pb::InclusionProof>,
) -> Result<(BlockHash, MerkleBranch), FieldError> {
    let p = p.ok_or_else(|| bad("proof", "missing inclusion proof"))?;
    let hash = block_hash("proof.block_hash", &p.block_hash)?;
    if p.merkle_branch.len() > MAX_BRANCH_LEN {
        return Err(bad(
            "proof.merkle_branch",
            format!(
                "{} hashes, a block needs at most {MAX_BRANCH_LEN}",
                p.merkle_branch.len()
            ),
        ));
    }
    let siblings = p
        .merkle_branch
        .iter()
        .map(|h| {
            <[u8; 32]>::try_from(h.as_slice())
                .map(TxMerkleNode::from_byte_array)
                .map_err(|_| {
                    bad(
                        "proof.merkle_branch",
                        format!("a hash has {} bytes, expected 32", h.len()),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((
        hash,
        MerkleBranch {
            index: p.tx_index,
            siblings,
        },
    ))
}

/// A 32-byte secret key.
pub fn secret_key(field: &'static str, bytes: &[u8]) -> Result<SecretKey, FieldError> {
    if bytes.len() != 32 {
        return Err(bad(field, format!("{} bytes, expected 32", bytes.len())));
    }
    SecretKey::from_slice(bytes).map_err(|_| bad(field, "not a valid secp256k1 secret key"))
}

/// A status filter; UNSPECIFIED means any.
pub fn status_filter(
    field: &'static str,
    value: i32,
) -> Result<Option<DelegationStatus>, FieldError> {
    match pb::DelegationStatus::try_from(value) {
        Ok(pb::DelegationStatus::Unspecified) => Ok(None),
        Ok(s) => Ok(Some(status_from_pb(s))),
        Err(_) => Err(bad(field, format!("{value} is not a delegation status"))),
    }
}

fn status_from_pb(s: pb::DelegationStatus) -> DelegationStatus {
    match s {
        pb::DelegationStatus::Unspecified | pb::DelegationStatus::Pending => {
            DelegationStatus::Pending
        }
        pb::DelegationStatus::Verified => DelegationStatus::Verified,
        pb::DelegationStatus::Active => DelegationStatus::Active,
        pb::DelegationStatus::Unbonded => DelegationStatus::Unbonded,
        pb::DelegationStatus::Expired => DelegationStatus::Expired,
    }
}

/// The wire form of a status.
pub fn status_to_pb(s: DelegationStatus) -> pb::DelegationStatus {
    match s {
        DelegationStatus::Pending => pb::DelegationStatus::Pending,
        DelegationStatus::Verified => pb::DelegationStatus::Verified,
        DelegationStatus::Active => pb::DelegationStatus::Active,
        DelegationStatus::Unbonded => pb::DelegationStatus::Unbonded,
        DelegationStatus::Expired => pb::DelegationStatus::Expired,
    }
}

/// A satoshi amount as the wire's int64 (amounts above `i64::MAX` cannot exist on Bitcoin).
pub fn sat(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The wire form of a proof of possession, as [`pop`] reads it.
pub fn proof_to_pb(proof: &ProofOfPossession) -> pb::ProofOfPossession {
    match proof {
        ProofOfPossession::Bip340(sig) => pb::ProofOfPossession {
            pop_type: pb::PopType::Bip340.into(),
            signature: sig.as_ref().to_vec(),
            bip322_address: String::new(),
        },
        ProofOfPossession::Bip322 { address, witness } => pb::ProofOfPossession {
            pop_type: pb::PopType::Bip322.into(),
            signature: serialize(witness),
            bip322_address: address.assume_checked_ref().to_string(),
        },
    }
}

/// CreateDelegation carrying `reg` (which names exactly one verifier).
///
/// # Errors
/// [`FieldError`] when `reg` names no verifier, its value does not fit the wire type, or the
/// account cannot be encoded.
pub fn create_delegation_request(
    reg: &Registration,
) -> Result<pb::CreateDelegationRequest, FieldError> {
    let verifier = reg.verifier_pks.first().ok_or_else(|| FieldError {
        field: "verifier_btc_pk",
        reason: "the registration names no verifier".to_owned(),
    })?;
    Ok(pb::CreateDelegationRequest {
        staker_account: reg
            .staker_account
            .to_bech32(ACCOUNT_HRP)
            .map_err(|e| bad("staker_account", e.to_string()))?,
        staker_btc_pk: reg.staker_pk.serialize().to_vec(),
        pop: Some(proof_to_pb(&reg.pop)),
        verifier_btc_pk: verifier.serialize().to_vec(),
        staking_time_blocks: reg.staking_time,
        staking_value_sat: i64::try_from(reg.staking_value_sat).map_err(|_| FieldError {
            field: "staking_value_sat",
            reason: format!("{} does not fit an int64", reg.staking_value_sat),
        })?,
        staking_tx: serialize(&reg.staking_tx),
        staking_output_index: reg.staking_output_index,
        slashing_tx: serialize(&reg.slashing_tx),
        staker_slashing_sig: reg.staker_slashing_sig.as_ref().to_vec(),
        unbonding_time_blocks: reg.unbonding_time,
        unbonding_tx: serialize(&reg.unbonding_tx),
        unbonding_slashing_tx: serialize(&reg.unbonding_slashing_tx),
        staker_unbonding_slashing_sig: reg.staker_unbonding_slashing_sig.as_ref().to_vec(),
    })
}

/// How a verifier proves possession of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PopFormat {
    /// A BIP-340 signature by the key.
    Bip340,
    /// A BIP-322 simple signature by the key's BIP-86 P2TR address on `network` (the address's
    /// network is not part of what is proven).
    Bip322P2tr(bitcoin::Network),
}

/// CreateVerifier for `keypair` and `account`, bound by a proof of possession in `format` and
/// `contexts` (PROTOCOL §6).
///
/// # Errors
/// [`FieldError`] when the account cannot be encoded.
pub fn create_verifier_request(
    keypair: &bitcoin::secp256k1::Keypair,
    account: &Account,
    description: pb::Description,
    commission: &str,
    contexts: &fiamma_staking::context::SigningContexts,
    format: PopFormat,
) -> Result<pb::CreateVerifierRequest, FieldError> {
    use fiamma_staking::bip322::{p2tr_script, sign_p2tr};
    use fiamma_staking::pop::{pop_message, sign_pop, PopRole};
    let key = keypair.x_only_public_key().0;
    let pop = match format {
        PopFormat::Bip340 => {
            ProofOfPossession::Bip340(sign_pop(contexts, PopRole::Verifier, account, keypair))
        }
        PopFormat::Bip322P2tr(network) => {
            let address = Address::from_script(&p2tr_script(key), network)
                .map_err(|e| bad("pop", e.to_string()))?;
            ProofOfPossession::Bip322 {
                address: address.into_unchecked(),
                witness: sign_p2tr(keypair, &pop_message(contexts, PopRole::Verifier, account)),
            }
        }
    };
    Ok(pb::CreateVerifierRequest {
        account: account
            .to_bech32(ACCOUNT_HRP)
            .map_err(|e| bad("account", e.to_string()))?,
        btc_pk: key.serialize().to_vec(),
        pop: Some(proof_to_pb(&pop)),
        description: Some(description),
        commission: commission.to_owned(),
    })
}

/// The wire form of a params version.
pub fn params_to_pb(version: u32, p: &Params) -> pb::Params {
    pb::Params {
        version,
        btc_activation_height: p.btc_activation_height,
        covenant_pks: p
            .covenant_pks
            .iter()
            .map(|k| k.serialize().to_vec())
            .collect(),
        covenant_quorum: p.covenant_quorum,
        min_staking_value_sat: sat(p.min_staking_value_sat),
        max_staking_value_sat: sat(p.max_staking_value_sat),
        min_staking_time_blocks: p.min_staking_time_blocks,
        max_staking_time_blocks: p.max_staking_time_blocks,
        slashing_pk_script: p.slashing_pk_script.to_bytes(),
        min_slashing_tx_fee_sat: sat(p.min_slashing_tx_fee_sat),
        slashing_rate: p.slashing_rate.to_string(),
        unbonding_time_blocks: p.unbonding_time_blocks,
        unbonding_fee_sat: sat(p.unbonding_fee_sat),
        btc_confirmation_depth: p.btc_confirmation_depth,
        max_active_verifiers: p.max_active_verifiers,
        min_pub_rand: u32::try_from(p.min_pub_rand).unwrap_or(u32::MAX),
        identifiable_staking_tag: p
            .identifiable_staking_tag
            .map(|t| t.to_vec())
            .unwrap_or_default(),
        max_verifiers_per_delegation: p.max_verifiers_per_delegation,
        max_pub_rand: p.limits.max_pub_rand,
        max_proofs_per_round: p.limits.max_proofs_per_round,
        max_proof_bytes: p.limits.max_proof_bytes,
        max_round_proof_bytes: p.limits.max_round_proof_bytes,
        pending_expiry_blocks: p.limits.pending_expiry_blocks,
    }
}

/// The registration behind a delegation the node serves, every field decoded as the node
/// decodes a CreateDelegation request (nothing is validated here: that is
/// `validate_delegation`'s job, with the reader's own params).
///
/// # Errors
/// [`FieldError`] naming the first field that does not decode.
pub fn registration_of(d: &pb::Delegation) -> Result<Registration, FieldError> {
    Ok(Registration {
        staker_pk: key("staker_btc_pk", &d.staker_btc_pk)?,
        staker_account: account("staker_account", &d.staker_account)?,
        pop: pop("pop", d.pop.as_ref())?,
        verifier_pks: vec![key("verifier_btc_pk", &d.verifier_btc_pk)?],
        staking_time: d.staking_time_blocks,
        staking_value_sat: u64::try_from(d.staking_value_sat).map_err(|_| {
            bad(
                "staking_value_sat",
                format!("{} is negative", d.staking_value_sat),
            )
        })?,
        staking_tx: transaction("staking_tx", &d.staking_tx)?,
        staking_output_index: d.staking_output_index,
        slashing_tx: transaction("slashing_tx", &d.slashing_tx)?,
        staker_slashing_sig: schnorr_sig("staker_slashing_sig", &d.staker_slashing_sig)?,
        unbonding_time: d.unbonding_time_blocks,
        unbonding_tx: transaction("unbonding_tx", &d.unbonding_tx)?,
        unbonding_slashing_tx: transaction("unbonding_slashing_tx", &d.unbonding_slashing_tx)?,
        staker_unbonding_slashing_sig: schnorr_sig(
            "staker_unbonding_slashing_sig",
            &d.staker_unbonding_slashing_sig,
        )?,
    })
}

/// CreateDelegation's fields decoded into a [`Registration`], as the node reads them
/// (stateless: nothing is validated against params or the chain yet). A staker keeps its
/// registrations in this form too.
///
/// # Errors
/// [`FieldError`] naming the first field that does not decode.
pub fn registration_of_request(
    r: &pb::CreateDelegationRequest,
) -> Result<Registration, FieldError> {
    Ok(Registration {
        staker_pk: key("staker_btc_pk", &r.staker_btc_pk)?,
        staker_account: account("staker_account", &r.staker_account)?,
        pop: pop("pop", r.pop.as_ref())?,
        verifier_pks: vec![key("verifier_btc_pk", &r.verifier_btc_pk)?],
        staking_time: r.staking_time_blocks,
        staking_value_sat: u64::try_from(r.staking_value_sat).map_err(|_| FieldError {
            field: "staking_value_sat",
            reason: format!("{} is negative", r.staking_value_sat),
        })?,
        staking_tx: transaction("staking_tx", &r.staking_tx)?,
        staking_output_index: r.staking_output_index,
        slashing_tx: transaction("slashing_tx", &r.slashing_tx)?,
        staker_slashing_sig: schnorr_sig("staker_slashing_sig", &r.staker_slashing_sig)?,
        unbonding_time: r.unbonding_time_blocks,
        unbonding_tx: transaction("unbonding_tx", &r.unbonding_tx)?,
        unbonding_slashing_tx: transaction("unbonding_slashing_tx", &r.unbonding_slashing_tx)?,
        staker_unbonding_slashing_sig: schnorr_sig(
            "staker_unbonding_slashing_sig",
            &r.staker_unbonding_slashing_sig,
        )?,
    })
}

/// The wire form of one member's signatures on a delegation that names one verifier (the
/// node registers exactly one, PROTOCOL §8).
///
/// # Errors
/// [`FieldError`] when the signatures hold no adaptor signature for a slashing transaction.
pub fn covenant_sigs_to_pb(
    sigs: &CovenantSignatures,
) -> Result<pb::CovenantSignatures, FieldError> {
    let first = |field: &'static str, list: &[VerifierAdaptorSig]| {
        list.first()
            .map(|s| s.signature.to_bytes().to_vec())
            .ok_or_else(|| {
                bad(
                    field,
                    "no adaptor signature: the delegation names no verifier",
                )
            })
    };
    Ok(pb::CovenantSignatures {
        covenant_pk: sigs.covenant.serialize().to_vec(),
        slashing_adaptor_sig: first("sigs.slashing_adaptor_sig", &sigs.slashing)?,
        unbonding_sig: sigs.unbonding.as_ref().to_vec(),
        unbonding_slashing_adaptor_sig: first(
            "sigs.unbonding_slashing_adaptor_sig",
            &sigs.unbonding_slashing,
        )?,
    })
}
