//! Protobuf requests into domain values: prost decoding of each request message of
//! `fiamma.staking.v1` and `fiamma.finality.v1`, then the node's conversion of every field
//! (`node::grpc::convert`, `node::finality::wire`), then the stateless checks that follow.

use std::fmt::Debug;

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::Txid;
use fiamma_finality::rounds::equivocation;
use fiamma_finality::zk::{ProofSystem, ZkProof};
use fiamma_proto::finality::v1 as fpb;
use fiamma_proto::staking::v1 as pb;
use fiamma_staking::account::ACCOUNT_HRP;
use fiamma_staking::delegation::validate_delegation;
use fiamma_staking::pop::ProofOfPossession;
use prost::Message;

use super::bitcoin_bytes::params;
use super::crypto::adaptor_signature;
use crate::devnet::setup::contexts;
use crate::node::finality::wire;
use crate::node::grpc::{self, convert as c};

/// Decodes a message; one that decodes encodes to bytes that decode to the same message.
fn message<M: Message + Default + PartialEq + Debug>(bytes: &[u8]) -> Option<M> {
    let m = M::decode(bytes).ok()?;
    let again = M::decode(m.encode_to_vec().as_slice());
    assert_eq!(
        again.as_ref(),
        Ok(&m),
        "a re-encoded message decodes otherwise"
    );
    Some(m)
}

/// A CreateDelegationRequest, as the node reads it: prost, then `grpc::registration` (every
/// field decoded), then `validate_delegation` against the devnet params (every rule of §4,
/// §7 and §8, including the proof of possession and both pre-signatures). A decoded
/// registration goes back to a request (`create_delegation_request`) that decodes to the
/// same registration, and its proof of possession survives the store's encoding.
pub fn registration(data: &[u8]) {
    if let Some(r) = message::<pb::CreateDelegationRequest>(data) {
        create_delegation(&r);
    }
}

fn create_delegation(r: &pb::CreateDelegationRequest) {
    let Ok(reg) = grpc::registration(r) else {
        return;
    };
    let again = c::create_delegation_request(&reg).map(|r| grpc::registration(&r));
    assert_eq!(
        again,
        Ok(Ok(reg.clone())),
        "a registration does not survive its wire form"
    );
    stored_pop(&reg.pop);
    let _ = validate_delegation(params(), &contexts(), &reg);
}

/// The store keeps a proof of possession as `encode` bytes and reads it with `decode`.
fn stored_pop(pop: &ProofOfPossession) {
    let bip322 = matches!(pop, ProofOfPossession::Bip322 { .. });
    assert_eq!(
        ProofOfPossession::decode(bip322, &pop.encode()).as_ref(),
        Ok(pop),
        "a proof of possession does not survive the store's encoding"
    );
}

/// A request of the staking service, the first byte choosing which (in the order of the
/// service's methods); every field goes through its conversion, and each converted value
/// goes back to its wire form and converts to the same value.
pub fn staking_request(data: &[u8]) {
    let Some((which, bytes)) = data.split_first() else {
        return;
    };
    match which % 13 {
        0 => {
            if let Some(r) = message::<pb::CreateVerifierRequest>(bytes) {
                account(&r.account);
                key(&r.btc_pk);
                pop(r.pop.as_ref());
                if let Ok(d) = c::description(r.description.as_ref()) {
                    let wire = pb::Description {
                        moniker: d.moniker.clone(),
                        identity: d.identity.clone(),
                        website: d.website.clone(),
                        security_contact: d.security_contact.clone(),
                        details: d.details.clone(),
                    };
                    assert_eq!(c::description(Some(&wire)), Ok(d));
                }
                if let Ok(canonical) = c::commission("commission", &r.commission) {
                    assert_eq!(
                        c::commission("commission", &canonical).as_deref(),
                        Ok(canonical.as_str()),
                        "a canonical commission is not its own canonical form"
                    );
                }
            }
        }
        1 => registration(bytes),
        2 => {
            if let Some(r) = message::<pb::AddCovenantSigsRequest>(bytes) {
                txid(&r.staking_txid);
                if let Some(s) = r.sigs {
                    key(&s.covenant_pk);
                    for sig in [&s.slashing_adaptor_sig, &s.unbonding_slashing_adaptor_sig] {
                        // The adaptor check reads a two-byte length before the signature.
                        let len = u16::try_from(sig.len()).unwrap_or(u16::MAX);
                        adaptor_signature(&[&len.to_le_bytes()[..], sig].concat());
                    }
                    let _ = c::schnorr_sig("sigs.unbonding_sig", &s.unbonding_sig);
                }
            }
        }
        3 => {
            if let Some(r) = message::<pb::AddInclusionProofRequest>(bytes) {
                let txid = txid(&r.staking_txid);
                if let Ok((block, branch)) = c::merkle_branch(r.proof.as_ref()) {
                    assert_eq!(
                        c::block_hash("proof.block_hash", &block.to_string()),
                        Ok(block)
                    );
                    let _ = branch.compute_root(txid.unwrap_or_else(Txid::all_zeros));
                }
            }
        }
        4 => {
            if let Some(r) = message::<pb::SelectiveSlashingEvidenceRequest>(bytes) {
                txid(&r.staking_txid);
                let _ = c::secret_key("recovered_verifier_sk", &r.recovered_verifier_sk);
            }
        }
        5 => {
            let _ = message::<pb::ParamsRequest>(bytes);
        }
        6 => {
            if let Some(r) = message::<pb::VerifierRequest>(bytes) {
                key(&r.btc_pk);
            }
        }
        7 => {
            if let Some(r) = message::<pb::VerifiersRequest>(bytes) {
                page(r.page.as_ref(), |b| {
                    XOnlyPublicKey::from_slice(b).ok().map(|k| k.serialize())
                });
            }
        }
        8 => {
            if let Some(r) = message::<pb::DelegationRequest>(bytes) {
                txid(&r.staking_txid);
            }
        }
        9 => {
            if let Some(r) = message::<pb::DelegationsRequest>(bytes) {
                let _ = c::status_filter("status", r.status);
                key(&r.staker_btc_pk);
                key(&r.verifier_btc_pk);
                page(r.page.as_ref(), txid_key);
            }
        }
        10 => {
            if let Some(r) = message::<pb::PendingDelegationsRequest>(bytes) {
                key(&r.covenant_pk);
                page(r.page.as_ref(), txid_key);
            }
        }
        11 => {
            let _ = message::<pb::VotingPowerTableRequest>(bytes);
        }
        _ => {
            let _ = message::<pb::EventsRequest>(bytes);
        }
    }
}

fn key(bytes: &[u8]) -> Option<XOnlyPublicKey> {
    let k = c::key("btc_pk", bytes).ok()?;
    assert_eq!(c::key("btc_pk", &k.serialize()), Ok(k));
    Some(k)
}

fn txid(text: &str) -> Option<Txid> {
    let t = c::txid("staking_txid", text).ok()?;
    assert_eq!(c::txid("staking_txid", &t.to_string()), Ok(t));
    Some(t)
}

fn txid_key(bytes: &[u8]) -> Option<Txid> {
    <[u8; 32]>::try_from(bytes).ok().map(Txid::from_byte_array)
}

fn account(text: &str) {
    if let Ok(a) = c::account("account", text) {
        let again = a.to_bech32(ACCOUNT_HRP).map(|t| c::account("account", &t));
        assert_eq!(again, Ok(Ok(a)), "an account does not survive bech32");
    }
}

fn pop(p: Option<&pb::ProofOfPossession>) {
    if let Ok(proof) = c::pop("pop", p) {
        assert_eq!(
            c::pop("pop", Some(&c::proof_to_pb(&proof))),
            Ok(proof.clone()),
            "a proof of possession does not survive its wire form"
        );
        stored_pop(&proof);
    }
}

/// A page token decodes to a key, and the token the node hands out for that key decodes to it.
fn page<K: PartialEq + Debug + AsRef<[u8]>>(
    p: Option<&pb::PageRequest>,
    decode: impl Fn(&[u8]) -> Option<K>,
) {
    if let Ok((Some(k), size)) = c::page(p, &decode) {
        let token = c::next_token(Some(k.as_ref())).next_page_token;
        let again = pb::PageRequest {
            page_token: token,
            page_size: size,
        };
        assert_eq!(c::page(Some(&again), &decode), Ok((Some(k), size)));
    }
}

/// A request of the finality service, the first byte choosing which: every field goes
/// through `wire` (and a submission through `ZkProof`), decoded votes go back to their wire
/// form unchanged, and the stateless checks the node runs next (commitment signature, EOTS
/// signature, equivocation extraction, proof decoding) give a result, never a panic.
pub fn finality_request(data: &[u8]) {
    let Some((which, bytes)) = data.split_first() else {
        return;
    };
    let contexts = contexts();
    match which % 6 {
        0 => {
            if let Some(r) = message::<fpb::SubmitProofRequest>(bytes) {
                let system = u8::try_from(r.proof_system)
                    .ok()
                    .and_then(|code| ProofSystem::try_from(code).ok());
                if let Some(system) = system {
                    if let Ok(proof) =
                        ZkProof::new(system, r.verifying_key, r.proof, r.public_inputs)
                    {
                        let _ = proof.proof_id();
                        let _ = proof.decode();
                    }
                }
            }
        }
        1 => {
            if let Some(r) = message::<fpb::CommitPubRandListRequest>(bytes) {
                let pk = wire::key("verifier_btc_pk", &r.verifier_btc_pk);
                let sig = wire::schnorr_sig("signature", &r.signature);
                if let Ok(commitment) = wire::commitment(&r) {
                    assert_eq!(
                        (commitment.start(), commitment.num(), &commitment.root()[..]),
                        (r.start_round, r.num_pub_rand, &r.commitment[..])
                    );
                    assert!(commitment.covers(commitment.last()));
                    if let (Ok(pk), Ok(sig)) = (pk, sig) {
                        let _ = commitment.verify(&pk, &contexts, &sig);
                    }
                }
            }
        }
        2 => {
            if let Some(r) = message::<fpb::AddFinalitySigRequest>(bytes) {
                if let Some(v) = vote(&wire::VOTE, r.vote.as_ref()) {
                    let _ = v.verify_signature(&contexts);
                }
            }
        }
        3 => {
            if let Some(r) = message::<fpb::EquivocationEvidenceRequest>(bytes) {
                let first = vote(&wire::FIRST, r.first.as_ref());
                let second = vote(&wire::SECOND, r.second.as_ref());
                if let (Some(first), Some(second)) = (first, second) {
                    if let Ok(slashing) = equivocation(&first, &second, &contexts) {
                        let extracted = slashing
                            .secret_key
                            .x_only_public_key(bitcoin::secp256k1::SECP256K1)
                            .0;
                        assert_eq!(extracted, first.voter, "extracted another key");
                    }
                }
            }
        }
        4 => {
            if let Some(r) = message::<fpb::UnjailVerifierRequest>(bytes) {
                let _ = wire::key("verifier_btc_pk", &r.verifier_btc_pk);
                let _ = wire::schnorr_sig("signature", &r.signature);
            }
        }
        _ => {
            if let Some(r) = message::<fpb::EvidenceRequest>(bytes) {
                let _ = wire::key("verifier_btc_pk", &r.verifier_btc_pk);
            }
        }
    }
}

fn vote(
    names: &wire::VoteFields,
    v: Option<&fpb::FinalityVote>,
) -> Option<fiamma_finality::rounds::Vote> {
    let decoded = wire::vote(names, v).ok()?;
    assert_eq!(
        wire::vote(names, Some(&wire::vote_to_pb(&decoded))).as_ref(),
        Ok(&decoded),
        "a vote does not survive its wire form"
    );
    Some(decoded)
}
