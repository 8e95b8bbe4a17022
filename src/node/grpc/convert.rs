//! Wire messages to domain values and back. Every request field is decoded here with a
//! [`FieldError`] naming the field, so a rejected request says which field to fix.

use std::str::FromStr;

use bitcoin::address::NetworkUnchecked;
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{schnorr, SecretKey, XOnlyPublicKey};
use bitcoin::{Address, BlockHash, Transaction, TxMerkleNode, Txid, Witness};
use fiamma_covenant::adaptor::AdaptorSignature;
use fiamma_proto::staking::v1 as pb;
use fiamma_staking::account::{Account, ACCOUNT_HRP};
use fiamma_staking::keys::parse_xonly;
use fiamma_staking::light_client::{MerkleBranch, MAX_BRANCH_LEN};
use fiamma_staking::params::Params;
use fiamma_staking::pop::ProofOfPossession;
use fiamma_staking::registration::Registration;
use fiamma_staking::state::DelegationStatus;

use crate::node::store::{
    CovenantSigs, Delegation, Description, Event, EventKind, Pop, Verifier, VotingPowerEntry,
};

/// Largest transaction accepted in a request: a standard transaction weighs at most 400,000
/// weight units, so it serializes to at most 100,000 bytes without witness data.
pub const MAX_TX_BYTES: usize = 100_000;
/// Default page size.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// Largest page size.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Description limits, as in Cosmos SDK staking: moniker, identity, website, contact, details.
const DESCRIPTION_LIMITS: [(&str, usize); 5] = [
    ("description.moniker", 70),
    ("description.identity", 3000),
    ("description.website", 140),
    ("description.security_contact", 140),
    ("description.details", 280),
];

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

fn bad(field: &'static str, reason: impl Into<String>) -> FieldError {
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

/// A verifier description within the length limits, with a non-empty moniker.
pub fn description(d: Option<&pb::Description>) -> Result<Description, FieldError> {
    let d = d.cloned().unwrap_or_default();
    let values = [
        &d.moniker,
        &d.identity,
        &d.website,
        &d.security_contact,
        &d.details,
    ];
    for ((field, limit), value) in DESCRIPTION_LIMITS.iter().zip(values) {
        if value.chars().count() > *limit {
            return Err(bad(
                field,
                format!(
                    "{} characters, at most {limit} allowed",
                    value.chars().count()
                ),
            ));
        }
    }
    if d.moniker.trim().is_empty() {
        return Err(bad(
            "description.moniker",
            "missing; a verifier needs a moniker",
        ));
    }
    Ok(Description {
        moniker: d.moniker,
        identity: d.identity,
        website: d.website,
        security_contact: d.security_contact,
        details: d.details,
    })
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

fn sat(v: u64) -> i64 {
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

/// The wire form of a stored proof of possession (one that cannot be read is passed on as
/// stored).
fn pop_to_pb(p: &Pop) -> pb::ProofOfPossession {
    match p.proof() {
        Ok(proof) => proof_to_pb(&proof),
        Err(_) => pb::ProofOfPossession {
            pop_type: p.kind.code().into(),
            signature: p.signature.clone(),
            bip322_address: String::new(),
        },
    }
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

/// The wire form of a verifier.
pub fn verifier_to_pb(v: &Verifier) -> pb::Verifier {
    let r = &v.registration;
    pb::Verifier {
        btc_pk: r.btc_pk.serialize().to_vec(),
        account: r.account.clone(),
        description: Some(pb::Description {
            moniker: r.description.moniker.clone(),
            identity: r.description.identity.clone(),
            website: r.description.website.clone(),
            security_contact: r.description.security_contact.clone(),
            details: r.description.details.clone(),
        }),
        commission: r.commission.clone(),
        pop: Some(pop_to_pb(&r.pop)),
        status: match v.state.slashed_height() {
            Some(_) => pb::VerifierStatus::Slashed,
            None => pb::VerifierStatus::Registered,
        }
        .into(),
        slashed_btc_height: v.state.slashed_height().unwrap_or(0),
    }
}

fn covenant_sigs_to_pb(s: &CovenantSigs) -> pb::CovenantSignatures {
    pb::CovenantSignatures {
        covenant_pk: s.covenant_pk.serialize().to_vec(),
        slashing_adaptor_sig: s.slashing_adaptor_sig.clone(),
        unbonding_sig: s.unbonding_sig.clone(),
        unbonding_slashing_adaptor_sig: s.unbonding_slashing_adaptor_sig.clone(),
    }
}

/// The wire form of a delegation.
pub fn delegation_to_pb(d: &Delegation) -> pb::Delegation {
    let r = &d.registration;
    pb::Delegation {
        staking_txid: r.staking_txid.to_string(),
        staker_account: r.staker_account.clone(),
        staker_btc_pk: r.staker_btc_pk.serialize().to_vec(),
        verifier_btc_pk: r.verifier_btc_pk.serialize().to_vec(),
        staking_time_blocks: r.staking_time_blocks,
        staking_value_sat: sat(r.staking_value_sat),
        staking_tx: r.staking_tx.clone(),
        staking_output_index: r.staking_output_index,
        slashing_tx: r.slashing_tx.clone(),
        staker_slashing_sig: r.staker_slashing_sig.clone(),
        unbonding_tx: r.unbonding_tx.clone(),
        unbonding_time_blocks: r.unbonding_time_blocks,
        unbonding_slashing_tx: r.unbonding_slashing_tx.clone(),
        staker_unbonding_slashing_sig: r.staker_unbonding_slashing_sig.clone(),
        params_version: r.params_version,
        status: status_to_pb(d.state.status()).into(),
        start_height: d.state.start_height().unwrap_or(0),
        end_height: d.state.end_height().unwrap_or(0),
        covenant_sigs: d.covenant_sigs.iter().map(covenant_sigs_to_pb).collect(),
        spending_txid: d.spending_txid.map(|t| t.to_string()).unwrap_or_default(),
        pop: Some(pop_to_pb(&r.pop)),
    }
}

/// The wire form of a voting power entry.
pub fn voting_power_to_pb(e: &VotingPowerEntry) -> pb::VotingPower {
    pb::VotingPower {
        verifier_btc_pk: e.verifier.serialize().to_vec(),
        power_sat: sat(e.power_sat),
    }
}

/// The wire form of an event.
pub fn event_to_pb(e: &Event) -> pb::Event {
    let kind = match &e.kind {
        EventKind::DelegationStatusChanged {
            staking_txid,
            verifier,
            from,
            to,
        } => pb::event::Kind::DelegationStatusChanged(pb::DelegationStatusChanged {
            staking_txid: staking_txid.to_string(),
            verifier_btc_pk: verifier.serialize().to_vec(),
            from: from
                .map_or(pb::DelegationStatus::Unspecified, status_to_pb)
                .into(),
            to: status_to_pb(*to).into(),
            btc_height: e.btc_height,
        }),
        EventKind::VerifierCreated { verifier } => {
            pb::event::Kind::VerifierCreated(pb::VerifierCreated {
                btc_pk: verifier.serialize().to_vec(),
            })
        }
        EventKind::VerifierSlashed { verifier, reason } => {
            pb::event::Kind::VerifierSlashed(pb::VerifierSlashed {
                btc_pk: verifier.serialize().to_vec(),
                btc_height: e.btc_height,
                reason: reason.as_str().to_owned(),
            })
        }
    };
    pb::Event {
        sequence: e.sequence,
        kind: Some(kind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commission_is_canonical_and_bounded() {
        for (input, canonical) in [
            ("0", "0"),
            ("0.0500", "0.05"),
            ("1.000", "1"),
            ("00.1", "0.1"),
        ] {
            assert_eq!(commission("commission", input).as_deref(), Ok(canonical));
        }
        for input in ["", "1.0001", "2", "0.12345", "-0.1", "0,1", ".5", "0.5e1"] {
            assert!(commission("commission", input).is_err(), "{input:?}");
        }
    }

    #[test]
    fn echoed_values_are_cut() {
        assert_eq!(echo("abc"), "\"abc\"");
        let long = "é".repeat(10_000);
        let shown = echo(&long);
        assert!(shown.len() < 300, "{shown}");
        assert!(shown.ends_with("(20000 bytes)"), "{shown}");
        for e in [
            txid("staking_txid", &"z".repeat(1 << 20)),
            txid("staking_txid", &"z".repeat(64)),
        ] {
            assert!(e.expect_err("refused").to_string().len() < 300);
        }
        let e = commission("commission", &"9".repeat(1 << 20)).expect_err("refused");
        assert!(e.to_string().len() < 300, "{e}");
        let e = account("account", &"x".repeat(1 << 20)).expect_err("refused");
        assert!(e.to_string().len() < 300, "{e}");
        let e = int64("from_sequence", u64::MAX).expect_err("refused");
        assert_eq!(e.field, "from_sequence");
        assert_eq!(int64("from_sequence", i64::MAX as u64), Ok(i64::MAX as u64));
    }

    #[test]
    fn txids_must_be_64_hex_characters() {
        let id = "aa".repeat(32);
        assert!(txid("staking_txid", &id).is_ok());
        assert_eq!(
            txid("staking_txid", "abc").map_err(|e| e.field),
            Err("staking_txid")
        );
        assert!(txid("staking_txid", &"zz".repeat(32)).is_err());
    }

    #[test]
    fn pages_default_cap_and_decode_tokens() {
        let decode = |b: &[u8]| (b.len() == 2).then(|| b.to_vec());
        assert_eq!(page(None, decode), Ok((None, DEFAULT_PAGE_SIZE)));
        let too_big = pb::PageRequest {
            page_token: String::new(),
            page_size: MAX_PAGE_SIZE + 1,
        };
        assert!(page(Some(&too_big), decode).is_err());
        let token = pb::PageRequest {
            page_token: "abcd".into(),
            page_size: 5,
        };
        assert_eq!(page(Some(&token), decode), Ok((Some(vec![0xab, 0xcd]), 5)));
        let bad_token = pb::PageRequest {
            page_token: "xyz".into(),
            page_size: 5,
        };
        assert!(page(Some(&bad_token), decode).is_err());
    }

    #[test]
    fn descriptions_need_a_moniker_and_respect_limits() {
        assert!(description(None).is_err());
        let long = pb::Description {
            moniker: "m".repeat(71),
            ..Default::default()
        };
        assert_eq!(
            description(Some(&long)).map_err(|e| e.field),
            Err("description.moniker")
        );
        let ok = pb::Description {
            moniker: "verifier one".into(),
            ..Default::default()
        };
        assert!(description(Some(&ok)).is_ok());
    }
}
