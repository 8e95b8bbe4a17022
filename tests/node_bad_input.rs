//! The bad-input catalogue: each field of each message made invalid in turn gets a specific
//! gRPC code and a message naming what to fix, and the state read back through the queries
//! is unchanged afterwards.

mod node_support;

use bitcoin::consensus::serialize;
use bitcoin::hashes::Hash;
use bitcoin::{Amount, BlockHash, OutPoint, Txid};
use fiamma::node::grpc::convert::MAX_TX_BYTES;
use fiamma::node::module::ChainUpdate;
use fiamma_proto::staking::v1 as pb;
use fiamma_staking::keys::StakingKeys;
use fiamma_staking::unbonding::build_unbonding_tx;
use node_support::*;
use sqlx::PgPool;
use tonic::{Code, Status};

/// One request of any kind.
enum Call {
    Verifier(pb::CreateVerifierRequest),
    Delegation(pb::CreateDelegationRequest),
    Sigs(pb::AddCovenantSigsRequest),
    Inclusion(pb::AddInclusionProofRequest),
    Evidence(pb::SelectiveSlashingEvidenceRequest),
    GetDelegation(pb::DelegationRequest),
    ListDelegations(pb::DelegationsRequest),
    Pending(pb::PendingDelegationsRequest),
    GetVerifier(pb::VerifierRequest),
    GetParams(pb::ParamsRequest),
}

async fn send(node: &mut Node, call: Call) -> Result<(), Status> {
    let c = &mut node.client;
    match call {
        Call::Verifier(r) => c.create_verifier(r).await.map(drop),
        Call::Delegation(r) => c.create_delegation(r).await.map(drop),
        Call::Sigs(r) => c.add_covenant_sigs(r).await.map(drop),
        Call::Inclusion(r) => c.add_inclusion_proof(r).await.map(drop),
        Call::Evidence(r) => c.selective_slashing_evidence(r).await.map(drop),
        Call::GetDelegation(r) => c.delegation(r).await.map(drop),
        Call::ListDelegations(r) => c.delegations(r).await.map(drop),
        Call::Pending(r) => c.pending_delegations(r).await.map(drop),
        Call::GetVerifier(r) => c.verifier(r).await.map(drop),
        Call::GetParams(r) => c.params(r).await.map(drop),
    }
}

/// Everything a client can read back, to compare before and after a rejected request.
async fn snapshot(node: &mut Node) -> (Vec<pb::Delegation>, Vec<pb::Verifier>, u64) {
    let delegations = all_delegations(&mut node.client).await;
    let verifiers = node
        .client
        .verifiers(pb::VerifiersRequest { page: None })
        .await
        .expect("list")
        .into_inner()
        .verifiers;
    let events = node
        .module
        .store()
        .last_event_sequence()
        .await
        .expect("sequence");
    (delegations, verifiers, events)
}

/// A BIP-322 P2TR proof of possession signed by key `signer` for the account of
/// `account_seed`, from the P2TR address of `signer` (cleared when `no_address`), then `edit`ed.
fn bip322_pop(
    account_seed: u8,
    signer: u8,
    no_address: bool,
    edit: &dyn Fn(&mut pb::ProofOfPossession),
) -> pb::ProofOfPossession {
    use fiamma_staking::bip322::sign_p2tr;
    use fiamma_staking::pop::{pop_message, PopRole, ProofOfPossession};
    let kp = keypair(signer);
    let message = pop_message(&contexts(), PopRole::Verifier, &account(account_seed));
    let address = bitcoin::Address::p2tr(
        bitcoin::secp256k1::SECP256K1,
        xonly(&kp),
        None,
        bitcoin::Network::Regtest,
    );
    let mut p = fiamma::node::grpc::convert::proof_to_pb(&ProofOfPossession::Bip322 {
        address: address.to_string().parse().expect("valid address"),
        witness: sign_p2tr(&kp, &message),
    });
    if no_address {
        p.bip322_address.clear();
    }
    edit(&mut p);
    p
}

fn flip(bytes: &mut [u8]) {
    bytes[10] ^= 0x01;
}

#[sqlx::test]
async fn every_bad_field_gets_a_specific_status_and_changes_nothing(pool: PgPool) {
    let mut node = start(pool).await;
    let (a, s) = (keypair(10), keypair(11));
    for seed in [10, 11] {
        node.client
            .create_verifier(verifier_request(seed))
            .await
            .expect("registers");
    }
    // d1: to A, signed by member 0. d2: to S, used to slash S. d3: to A, spent while pending.
    let d1 = registration(20, xonly(&a), 1);
    let d2 = registration(22, xonly(&s), 2);
    let d3 = registration(23, xonly(&a), 3);
    for reg in [&d1, &d2, &d3] {
        node.client
            .create_delegation(delegation_request(reg))
            .await
            .expect("accepted");
    }
    node.client
        .add_covenant_sigs(covenant_request(&d1, &covenant(0), xonly(&a)))
        .await
        .expect("member 0 signs");
    let id = |r: &fiamma_staking::registration::Registration| r.staking_tx.compute_txid();
    node.module
        .apply_chain_update(&ChainUpdate {
            tip_height: 50,
            tip_hash: BlockHash::from_byte_array([1; 32]),
            light_client: None,
            inclusions: Vec::new(),
            spends: vec![(id(&d3), Txid::from_byte_array([9; 32]))],
        })
        .await
        .expect("spend applied");
    node.client
        .selective_slashing_evidence(pb::SelectiveSlashingEvidenceRequest {
            staking_txid: id(&d2).to_string(),
            recovered_verifier_sk: s.secret_bytes().to_vec(),
        })
        .await
        .expect("s slashed");

    let d1_txid = id(&d1).to_string();
    let unknown_txid = "ab".repeat(32);
    let fresh = registration(30, xonly(&a), 30);
    let good = delegation_request(&fresh);
    let dreq = |f: &dyn Fn(&mut pb::CreateDelegationRequest)| {
        let mut r = good.clone();
        f(&mut r);
        Call::Delegation(r)
    };
    let vreq = |f: &dyn Fn(&mut pb::CreateVerifierRequest)| {
        let mut r = verifier_request(40);
        f(&mut r);
        Call::Verifier(r)
    };
    let sreq = |member: u8, f: &dyn Fn(&mut pb::CovenantSignatures)| {
        let mut r = covenant_request(&d1, &covenant(member), xonly(&a));
        if let Some(sigs) = r.sigs.as_mut() {
            f(sigs);
        }
        Call::Sigs(r)
    };
    // A wrong unbonding fee: the unbonding transaction rebuilt with twice the fee.
    let wrong_fee_unbonding = {
        let p = params();
        let keys = StakingKeys::new(
            fresh.staker_pk,
            &fresh.verifier_pks,
            &p.covenant_pks,
            p.covenant_quorum,
        )
        .expect("keys");
        let outpoint = OutPoint::new(fresh.staking_tx.compute_txid(), 0);
        let (tx, _) = build_unbonding_tx(
            &keys,
            outpoint,
            Amount::from_sat(VALUE),
            UNBONDING_TIME,
            Amount::from_sat(2_000),
        )
        .expect("builds");
        serialize(&tx)
    };
    let mut wrong_script = fresh.slashing_tx.clone();
    wrong_script.output[0].script_pubkey = bitcoin::ScriptBuf::from_bytes(vec![0x51]);
    let mut dust = fresh.slashing_tx.clone();
    dust.output[1].value = Amount::from_sat(100);
    let other_member_sigs = covenant_request(&d1, &covenant(2), xonly(&a))
        .sigs
        .expect("sigs");

    use Code::*;
    let cases: Vec<(&str, Code, &str, Call)> = vec![
        // CreateVerifier
        (
            "verifier account not bech32",
            InvalidArgument,
            "account",
            vreq(&|r| r.account = "nope".into()),
        ),
        (
            "verifier account other prefix",
            InvalidArgument,
            "prefix",
            vreq(&|r| {
                r.account = fiamma_staking::account::Account([40; 20])
                    .to_bech32("bbn")
                    .expect("hrp")
            }),
        ),
        (
            "verifier key 31 bytes",
            InvalidArgument,
            "btc_pk",
            vreq(&|r| r.btc_pk.truncate(31)),
        ),
        (
            "verifier key not a point",
            InvalidArgument,
            "not a valid secp256k1 point",
            vreq(&|r| r.btc_pk = vec![0xff; 32]),
        ),
        (
            "verifier pop missing",
            InvalidArgument,
            "pop",
            vreq(&|r| r.pop = None),
        ),
        (
            "verifier pop type unspecified",
            InvalidArgument,
            "POP_TYPE_BIP340",
            vreq(&|r| {
                if let Some(p) = r.pop.as_mut() {
                    p.pop_type = 0
                }
            }),
        ),
        (
            "verifier pop bip322 signature not a witness",
            InvalidArgument,
            "not a consensus-encoded witness",
            vreq(&|r| {
                if let Some(p) = r.pop.as_mut() {
                    p.pop_type = pb::PopType::Bip322.into()
                }
            }),
        ),
        (
            "verifier pop bip322 without address",
            InvalidArgument,
            "needs bip322_address",
            vreq(&|r| r.pop = Some(bip322_pop(40, 40, true, &|_| {}))),
        ),
        (
            "verifier pop bip322 address not an address",
            InvalidArgument,
            "bip322_address",
            vreq(&|r| {
                r.pop = Some(bip322_pop(40, 40, true, &|p| {
                    p.bip322_address = "bcrt1qnope".into()
                }))
            }),
        ),
        (
            "verifier pop bip322 address of another key",
            InvalidArgument,
            "does not belong to key",
            vreq(&|r| r.pop = Some(bip322_pop(40, 41, false, &|_| {}))),
        ),
        (
            "verifier pop bip322 signed for another account",
            InvalidArgument,
            "bip-0322",
            vreq(&|r| r.pop = Some(bip322_pop(41, 40, false, &|_| {}))),
        ),
        (
            "verifier pop bip322 witness over its cap",
            InvalidArgument,
            "over 256",
            vreq(&|r| {
                r.pop = Some(bip322_pop(40, 40, false, &|p| {
                    p.signature = serialize(&bitcoin::Witness::from_slice(&[vec![7u8; 300]]))
                }))
            }),
        ),
        (
            "verifier pop bip340 with an address",
            InvalidArgument,
            "no bip322_address",
            vreq(&|r| {
                if let Some(p) = r.pop.as_mut() {
                    p.bip322_address = "bcrt1qnope".into()
                }
            }),
        ),
        (
            "verifier pop 63 bytes",
            InvalidArgument,
            "64-byte",
            vreq(&|r| {
                if let Some(p) = r.pop.as_mut() {
                    p.signature.truncate(63)
                }
            }),
        ),
        (
            "verifier bad pop",
            InvalidArgument,
            "proof of possession",
            vreq(&|r| {
                if let Some(p) = r.pop.as_mut() {
                    flip(&mut p.signature)
                }
            }),
        ),
        (
            "verifier pop for another account",
            InvalidArgument,
            "proof of possession",
            vreq(&|r| r.account = account_text(41)),
        ),
        (
            "verifier without moniker",
            InvalidArgument,
            "moniker",
            vreq(&|r| r.description = None),
        ),
        (
            "verifier moniker too long",
            InvalidArgument,
            "at most 70",
            vreq(&|r| {
                if let Some(d) = r.description.as_mut() {
                    d.moniker = "m".repeat(71)
                }
            }),
        ),
        (
            "verifier details too long",
            InvalidArgument,
            "description.details",
            vreq(&|r| {
                if let Some(d) = r.description.as_mut() {
                    d.details = "d".repeat(281)
                }
            }),
        ),
        (
            "verifier commission above one",
            InvalidArgument,
            "commission",
            vreq(&|r| r.commission = "1.5".into()),
        ),
        (
            "verifier commission not a number",
            InvalidArgument,
            "commission",
            vreq(&|r| r.commission = "five".into()),
        ),
        (
            "verifier registered twice",
            AlreadyExists,
            "already registered",
            Call::Verifier(verifier_request(10)),
        ),
        (
            "oversized payload",
            OutOfRange,
            "too large",
            vreq(&|r| {
                if let Some(d) = r.description.as_mut() {
                    d.details = "x".repeat(600_000)
                }
            }),
        ),
        // CreateDelegation
        (
            "staker account invalid",
            InvalidArgument,
            "staker_account",
            dreq(&|r| r.staker_account = "fmma1xyz".into()),
        ),
        (
            "staker key missing",
            InvalidArgument,
            "staker_btc_pk",
            dreq(&|r| r.staker_btc_pk.clear()),
        ),
        (
            "staker pop for another account",
            InvalidArgument,
            "proof of possession",
            dreq(&|r| r.staker_account = account_text(31)),
        ),
        (
            "staker pop flipped",
            InvalidArgument,
            "proof of possession",
            dreq(&|r| {
                if let Some(p) = r.pop.as_mut() {
                    flip(&mut p.signature)
                }
            }),
        ),
        (
            "staker key equals the verifier key",
            InvalidArgument,
            "more than once",
            dreq(&|r| r.staker_btc_pk = xonly(&a).serialize().to_vec()),
        ),
        (
            "staker key is a covenant key",
            InvalidArgument,
            "more than once",
            dreq(&|r| r.staker_btc_pk = xonly(&covenant(3)).serialize().to_vec()),
        ),
        (
            "unknown verifier",
            NotFound,
            "not registered",
            Call::Delegation(delegation_request(&registration(
                31,
                xonly(&keypair(12)),
                31,
            ))),
        ),
        (
            "slashed verifier",
            FailedPrecondition,
            "slashed",
            Call::Delegation(delegation_request(&registration(32, xonly(&s), 32))),
        ),
        (
            "duplicate staking transaction",
            AlreadyExists,
            "already registered",
            Call::Delegation(delegation_request(&d1)),
        ),
        (
            "staking tx garbage",
            InvalidArgument,
            "staking_tx",
            dreq(&|r| r.staking_tx = vec![1, 2, 3]),
        ),
        (
            "staking tx oversized",
            InvalidArgument,
            "at most",
            dreq(&|r| r.staking_tx = vec![0; MAX_TX_BYTES + 1]),
        ),
        (
            "staking value negative",
            InvalidArgument,
            "negative",
            dreq(&|r| r.staking_value_sat = -1),
        ),
        (
            "staking value below minimum",
            InvalidArgument,
            "staking value",
            dreq(&|r| r.staking_value_sat = 5_000),
        ),
        (
            "staking value not the output's",
            InvalidArgument,
            "no output pays",
            dreq(&|r| r.staking_value_sat += 1),
        ),
        (
            "staking time below minimum",
            InvalidArgument,
            "staking time",
            dreq(&|r| r.staking_time_blocks = 5),
        ),
        (
            "staking time not the output's",
            InvalidArgument,
            "no output pays",
            dreq(&|r| r.staking_time_blocks += 1),
        ),
        (
            "unbonding time wrong",
            InvalidArgument,
            "unbonding time",
            dreq(&|r| r.unbonding_time_blocks += 1),
        ),
        (
            "staking output index wrong",
            InvalidArgument,
            "index",
            dreq(&|r| r.staking_output_index = 1),
        ),
        (
            "wrong unbonding fee",
            InvalidArgument,
            "unbonding output value",
            dreq(&|r| r.unbonding_tx = wrong_fee_unbonding.clone()),
        ),
        (
            "unbonding tx garbage",
            InvalidArgument,
            "unbonding_tx",
            dreq(&|r| r.unbonding_tx = vec![0xde, 0xad]),
        ),
        (
            "wrong slashing script",
            InvalidArgument,
            "slashing_pk_script",
            dreq(&|r| r.slashing_tx = serialize(&wrong_script)),
        ),
        (
            "dust slashing change output",
            InvalidArgument,
            "dust",
            dreq(&|r| r.slashing_tx = serialize(&dust)),
        ),
        (
            "slashing tx missing",
            InvalidArgument,
            "slashing_tx",
            dreq(&|r| r.slashing_tx.clear()),
        ),
        (
            "staker slashing sig 63 bytes",
            InvalidArgument,
            "staker_slashing_sig",
            dreq(&|r| r.staker_slashing_sig.truncate(63)),
        ),
        (
            "staker slashing sig invalid",
            InvalidArgument,
            "does not verify",
            dreq(&|r| flip(&mut r.staker_slashing_sig)),
        ),
        (
            "staker unbonding slashing sig invalid",
            InvalidArgument,
            "does not verify",
            dreq(&|r| flip(&mut r.staker_unbonding_slashing_sig)),
        ),
        (
            "unbonding slashing tx garbage",
            InvalidArgument,
            "unbonding_slashing_tx",
            dreq(&|r| r.unbonding_slashing_tx = vec![7]),
        ),
        // AddCovenantSigs
        (
            "sigs txid malformed",
            InvalidArgument,
            "staking_txid",
            sreq(1, &|_| {}).map_txid("xyz"),
        ),
        (
            "sigs unknown delegation",
            NotFound,
            "no delegation",
            sreq(1, &|_| {}).map_txid(&unknown_txid),
        ),
        (
            "sigs missing",
            InvalidArgument,
            "sigs",
            Call::Sigs(pb::AddCovenantSigsRequest {
                staking_txid: d1_txid.clone(),
                sigs: None,
            }),
        ),
        (
            "key outside the committee",
            PermissionDenied,
            "not in the committee",
            Call::Sigs({
                let mut r = covenant_request(&d1, &keypair(99), xonly(&a));
                r.staking_txid = d1_txid.clone();
                r
            }),
        ),
        (
            "member signs twice",
            AlreadyExists,
            "already signed",
            sreq(0, &|_| {}),
        ),
        (
            "adaptor sig 10 bytes",
            InvalidArgument,
            "sigs.slashing_adaptor_sig",
            sreq(1, &|s| s.slashing_adaptor_sig.truncate(10)),
        ),
        (
            "invalid adaptor signature",
            InvalidArgument,
            "adaptor signature",
            sreq(1, &|s| {
                s.slashing_adaptor_sig = other_member_sigs.slashing_adaptor_sig.clone()
            }),
        ),
        (
            "adaptor sig encrypted to another verifier",
            InvalidArgument,
            "adaptor signature",
            Call::Sigs(covenant_request(&d1, &covenant(1), xonly(&s))),
        ),
        (
            "unbonding adaptor sig invalid",
            InvalidArgument,
            "adaptor signature",
            sreq(1, &|s| {
                s.unbonding_slashing_adaptor_sig =
                    other_member_sigs.unbonding_slashing_adaptor_sig.clone()
            }),
        ),
        (
            "unbonding sig invalid",
            InvalidArgument,
            "unbonding signature",
            sreq(1, &|s| flip(&mut s.unbonding_sig)),
        ),
        (
            "unbonding sig 63 bytes",
            InvalidArgument,
            "sigs.unbonding_sig",
            sreq(1, &|s| s.unbonding_sig.truncate(63)),
        ),
        (
            "covenant key 33 bytes not a point",
            InvalidArgument,
            "sigs.covenant_pk",
            sreq(1, &|s| s.covenant_pk = vec![0x05; 33]),
        ),
        (
            "sigs on an unbonded delegation",
            FailedPrecondition,
            "UNBONDED",
            Call::Sigs({
                let mut r = covenant_request(&d3, &covenant(1), xonly(&a));
                r.staking_txid = id(&d3).to_string();
                r
            }),
        ),
        // AddInclusionProof
        (
            "inclusion block hash malformed",
            InvalidArgument,
            "proof.block_hash",
            Call::Inclusion(pb::AddInclusionProofRequest {
                staking_txid: d1_txid.clone(),
                proof: Some(pb::InclusionProof {
                    block_hash: "00".into(),
                    tx_index: 1,
                    merkle_branch: vec![],
                }),
            }),
        ),
        (
            "inclusion proof missing",
            InvalidArgument,
            "proof",
            Call::Inclusion(pb::AddInclusionProofRequest {
                staking_txid: d1_txid.clone(),
                proof: None,
            }),
        ),
        (
            "inclusion branch hash short",
            InvalidArgument,
            "proof.merkle_branch",
            Call::Inclusion(pb::AddInclusionProofRequest {
                staking_txid: d1_txid.clone(),
                proof: Some(pb::InclusionProof {
                    block_hash: "11".repeat(32),
                    tx_index: 1,
                    merkle_branch: vec![vec![0; 31]],
                }),
            }),
        ),
        (
            "inclusion unknown delegation",
            NotFound,
            "no delegation",
            Call::Inclusion(pb::AddInclusionProofRequest {
                staking_txid: unknown_txid.clone(),
                proof: Some(pb::InclusionProof {
                    block_hash: "11".repeat(32),
                    tx_index: 1,
                    merkle_branch: vec![],
                }),
            }),
        ),
        (
            "inclusion before the node follows bitcoin",
            Unavailable,
            "header chain",
            Call::Inclusion(pb::AddInclusionProofRequest {
                staking_txid: d1_txid.clone(),
                proof: Some(pb::InclusionProof {
                    block_hash: "11".repeat(32),
                    tx_index: 1,
                    merkle_branch: vec![],
                }),
            }),
        ),
        // SelectiveSlashingEvidence
        (
            "evidence key 31 bytes",
            InvalidArgument,
            "recovered_verifier_sk",
            Call::Evidence(pb::SelectiveSlashingEvidenceRequest {
                staking_txid: d1_txid.clone(),
                recovered_verifier_sk: vec![1; 31],
            }),
        ),
        (
            "evidence key of someone else",
            InvalidArgument,
            "is for",
            Call::Evidence(pb::SelectiveSlashingEvidenceRequest {
                staking_txid: d1_txid.clone(),
                recovered_verifier_sk: keypair(77).secret_bytes().to_vec(),
            }),
        ),
        (
            "evidence for an unknown delegation",
            NotFound,
            "no delegation",
            Call::Evidence(pb::SelectiveSlashingEvidenceRequest {
                staking_txid: unknown_txid.clone(),
                recovered_verifier_sk: a.secret_bytes().to_vec(),
            }),
        ),
        (
            "evidence against a slashed verifier",
            AlreadyExists,
            "already slashed",
            Call::Evidence(pb::SelectiveSlashingEvidenceRequest {
                staking_txid: id(&d2).to_string(),
                recovered_verifier_sk: s.secret_bytes().to_vec(),
            }),
        ),
        // Queries
        (
            "delegation txid malformed",
            InvalidArgument,
            "staking_txid",
            Call::GetDelegation(pb::DelegationRequest {
                staking_txid: "12".into(),
            }),
        ),
        (
            "delegation unknown",
            NotFound,
            "not found",
            Call::GetDelegation(pb::DelegationRequest {
                staking_txid: unknown_txid.clone(),
            }),
        ),
        (
            "page too large",
            InvalidArgument,
            "page.page_size",
            Call::ListDelegations(pb::DelegationsRequest {
                page: Some(pb::PageRequest {
                    page_token: String::new(),
                    page_size: 5000,
                }),
                ..Default::default()
            }),
        ),
        (
            "page token forged",
            InvalidArgument,
            "page.page_token",
            Call::ListDelegations(pb::DelegationsRequest {
                page: Some(pb::PageRequest {
                    page_token: "zz".into(),
                    page_size: 5,
                }),
                ..Default::default()
            }),
        ),
        (
            "status filter unknown",
            InvalidArgument,
            "status",
            Call::ListDelegations(pb::DelegationsRequest {
                status: 42,
                ..Default::default()
            }),
        ),
        (
            "staker filter not a key",
            InvalidArgument,
            "staker_btc_pk",
            Call::ListDelegations(pb::DelegationsRequest {
                staker_btc_pk: vec![1; 5],
                ..Default::default()
            }),
        ),
        (
            "pending for a malformed key",
            InvalidArgument,
            "covenant_pk",
            Call::Pending(pb::PendingDelegationsRequest {
                covenant_pk: vec![2; 3],
                page: None,
            }),
        ),
        (
            "verifier unknown",
            NotFound,
            "not found",
            Call::GetVerifier(pb::VerifierRequest {
                btc_pk: xonly(&keypair(12)).serialize().to_vec(),
            }),
        ),
        (
            "params version unknown",
            NotFound,
            "params version 7",
            Call::GetParams(pb::ParamsRequest {
                selector: Some(pb::params_request::Selector::Version(7)),
            }),
        ),
    ];
    assert!(cases.len() >= 40, "{} cases", cases.len());

    let before = snapshot(&mut node).await;
    let mut failures = Vec::new();
    for (name, code, contains, call) in cases {
        match send(&mut node, call).await {
            Result::Ok(()) => failures.push(format!("{name}: accepted")),
            Err(status) => {
                if status.code() != code || !status.message().contains(contains) {
                    failures.push(format!(
                        "{name}: got {:?} {:?}, want {code:?} containing {contains:?}",
                        status.code(),
                        status.message()
                    ));
                }
            }
        }
        if snapshot(&mut node).await != before {
            failures.push(format!("{name}: state changed"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[sqlx::test]
async fn hostile_numbers_and_long_values_get_short_specific_refusals(pool: PgPool) {
    let mut node = start(pool).await;
    node.client
        .create_verifier(verifier_request(10))
        .await
        .expect("registers");
    let before = snapshot(&mut node).await;
    let long = "f".repeat(400_000);
    let calls = [
        (
            "staking_txid",
            Call::GetDelegation(pb::DelegationRequest {
                staking_txid: long.clone(),
            }),
        ),
        (
            "page.page_token",
            Call::ListDelegations(pb::DelegationsRequest {
                page: Some(pb::PageRequest {
                    page_token: long.clone(),
                    page_size: 10,
                }),
                ..Default::default()
            }),
        ),
        ("commission", {
            let mut r = verifier_request(11);
            r.commission = long.clone();
            Call::Verifier(r)
        }),
        ("account", {
            let mut r = verifier_request(11);
            r.account = long.clone();
            Call::Verifier(r)
        }),
    ];
    for (field, call) in calls {
        let status = send(&mut node, call).await.expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{field}");
        assert!(status.message().contains(field), "{}", status.message());
        assert!(status.message().len() < 1024, "{field}: echoed input");
    }
    // Sequence numbers above i64::MAX are refused, not an internal error.
    let status = node
        .client
        .events(pb::EventsRequest {
            from_sequence: u64::MAX,
        })
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("from_sequence"));
    assert_eq!(snapshot(&mut node).await, before);
}

trait WithTxid {
    fn map_txid(self, txid: &str) -> Call;
}

impl WithTxid for Call {
    fn map_txid(self, txid: &str) -> Call {
        match self {
            Call::Sigs(mut r) => {
                r.staking_txid = txid.to_owned();
                Call::Sigs(r)
            }
            other => other,
        }
    }
}
