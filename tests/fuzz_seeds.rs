//! The fuzz seeds as regression tests on stable: every file under `fuzz/seeds/<target>/` goes
//! through `fiamma::fuzzing::<target>`, the same check its `cargo fuzz` target runs, so an
//! input that once crashed a decoder (committed there under its libFuzzer name) and the
//! structured seeds that reach deep into each decoder are checked by every `cargo test`.
//!
//! The structured seeds are written by `write_structured_seeds` (ignored; run it with
//! `cargo test --test fuzz_seeds -- --ignored` after changing a wire format).

use std::fs;
use std::path::{Path, PathBuf};

use bitcoin::absolute::LockTime;
use bitcoin::consensus::serialize;
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{Keypair, Message as SecpMessage, SECP256K1};
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, Transaction, TxIn, Txid};
use fiamma::devnet::setup;
use fiamma::devnet::wire::account_of;
use fiamma::fuzzing::TARGETS;
use fiamma::node::finality::wire::{vote, vote_to_pb, FIRST, SECOND};
use fiamma::node::grpc::convert::{create_delegation_request, proof_to_pb};
use fiamma_covenant::adaptor::{enc_sign, DecryptionKey};
use fiamma_finality::committed::CommittedRandomness;
use fiamma_finality::merkle::MerkleTree;
use fiamma_finality::rounds::{equivocation, Vote};
use fiamma_finality::zk::{Groth16Bn254, Verdict};
use fiamma_proto::finality::v1 as fpb;
use fiamma_proto::staking::v1 as pb;
use fiamma_staking::delegation::validate_delegation;
use fiamma_staking::keys::StakingKeys;
use fiamma_staking::pop::{sign_pop, PopRole, ProofOfPossession};
use fiamma_staking::registration::{build_registration, Registration, StakerChoices};
use fiamma_staking::taproot::TaprootOutput;
use prost::Message;

fn seeds_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target)
}

/// Runs every seed of `target` through its check; a target without seeds fails.
fn run_seeds(target: &str) {
    let (_, check) = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no check named {target}"));
    let dir = seeds_dir(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    for file in files {
        let data = fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        eprintln!("{target}: {}", file.display());
        check(&data);
    }
}

macro_rules! seed_tests {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            run_seeds(stringify!($name));
        }
    )*};
}

seed_tests!(
    transaction,
    registration,
    adaptor_signature,
    groth16,
    merkle_proof,
    inclusion_proof,
    staking_request,
    finality_request,
    json_rpc,
);

#[test]
fn every_check_has_a_seed_test_and_a_fuzz_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (name, _) in TARGETS {
        let target = root.join("fuzz/fuzz_targets").join(format!("{name}.rs"));
        assert!(target.is_file(), "no fuzz target {}", target.display());
        assert!(seeds_dir(name).is_dir(), "no seeds for {name}");
    }
}

// ---- structured seeds ----------------------------------------------------------------------

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = seeds_dir(target);
    fs::create_dir_all(&dir).expect("seed directory");
    fs::write(dir.join(name), bytes).expect("seed written");
}

/// `u16le(len) ‖ part`, the framing the checks read their parts with.
fn framed(part: &[u8]) -> Vec<u8> {
    let len = u16::try_from(part.len()).expect("a part under 64 KiB");
    [&len.to_le_bytes()[..], part].concat()
}

fn keypair(label: &str) -> Keypair {
    setup::devnet_keypair(label)
}

/// A registration valid under the devnet params, from a made-up funding outpoint.
fn valid_registration() -> Registration {
    let params = setup::params().expect("devnet params");
    let staker = keypair("staker/1");
    let verifier = keypair("verifier/A").x_only_public_key().0;
    let keys = StakingKeys::new(
        staker.x_only_public_key().0,
        &[verifier],
        &params.covenant_pks,
        params.covenant_quorum,
    )
    .expect("distinct keys");
    let output = TaprootOutput::staking(&keys, setup::STAKING_TIME).expect("valid time");
    let staking_tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(Txid::from_byte_array([7; 32]), 0),
            ..TxIn::default()
        }],
        output: vec![output.txout(Amount::from_sat(1_000_000))],
    };
    build_registration(
        &params,
        &setup::contexts(),
        StakerChoices {
            staker: &staker,
            account: account_of(&staker.x_only_public_key().0),
            verifier_pks: vec![verifier],
            staking_tx,
            staking_output_index: 0,
            staking_time: setup::STAKING_TIME,
            slashing_fee: setup::SLASHING_FEE,
        },
    )
    .expect("registration builds")
}

fn signed_vote(label: &str, round: u64, round_hash: [u8; 32]) -> (Vote, CommittedRandomness) {
    let kp = keypair(label);
    let committed =
        CommittedRandomness::derive(&kp.secret_key(), setup::CHAIN_ID, 1, 8).expect("small range");
    let randomness = committed.for_round(round).expect("committed round");
    let vote = Vote::sign(&kp, randomness, &setup::contexts(), round, round_hash);
    (vote, committed)
}

#[test]
#[ignore = "writes fuzz/seeds; run after changing a wire format"]
fn write_structured_seeds() {
    let reg = valid_registration();
    let request = create_delegation_request(&reg).expect("wire form");

    // Transactions: the four of a valid registration.
    for (name, tx) in [
        ("staking_tx", &reg.staking_tx),
        ("slashing_tx", &reg.slashing_tx),
        ("unbonding_tx", &reg.unbonding_tx),
        ("unbonding_slashing_tx", &reg.unbonding_slashing_tx),
    ] {
        write("transaction", name, &serialize(tx));
    }

    // Registrations: valid, and valid but for one field.
    write("registration", "valid", &request.encode_to_vec());
    let mut wrong_value = request.clone();
    wrong_value.staking_value_sat += 1;
    write("registration", "wrong_value", &wrong_value.encode_to_vec());

    // Adaptor signatures: a real one with everything Decrypt and Extract need.
    let signer = keypair("covenant/0");
    let verifier_sk = keypair("verifier/A").secret_key();
    let decryption = DecryptionKey::from_verifier_secret(&verifier_sk);
    let msg = [9u8; 32];
    let asig = enc_sign(&signer, &decryption.encryption_key(), &msg, &[1; 32]).expect("signs");
    let decrypted = asig.decrypt(&decryption).expect("decrypts");
    let mut full = framed(&asig.to_bytes());
    full.extend_from_slice(&signer.x_only_public_key().0.serialize());
    full.extend_from_slice(&msg);
    full.extend_from_slice(&decryption.encryption_key().serialize());
    full.extend_from_slice(decrypted.as_ref());
    full.extend_from_slice(&verifier_sk.secret_bytes());
    write("adaptor_signature", "full", &full);
    write(
        "adaptor_signature",
        "legacy",
        &framed(&asig.to_legacy_bytes()),
    );

    // Groth16: the valid submission of the test data.
    let zk = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/zk/fiamma-arkworks-groth16-bn254/valid");
    let part = |name: &str| fs::read(zk.join(name)).expect("zk test data");
    let (vk, proof, inputs) = (
        part("vk.bitvm"),
        part("proof.bitvm"),
        part("public_input.bitvm"),
    );
    write(
        "groth16",
        "valid",
        &[framed(&vk), framed(&proof), inputs.clone()].concat(),
    );

    // Merkle trees and a real proof as a vote carries it.
    write(
        "merkle_proof",
        "tree_of_5",
        &[[3u8].as_slice(), &[0xab; 20]].concat(),
    );
    let leaves: Vec<[u8; 32]> = (0u8..5).map(|i| [i; 32]).collect();
    let tree = MerkleTree::new(&leaves);
    let p = tree.proof(3).expect("leaf 3");
    let mut hostile = vec![0u8];
    for n in [p.index, p.total, 0, 5, 3] {
        hostile.extend_from_slice(&n.to_be_bytes());
    }
    hostile.extend_from_slice(&p.leaf_hash);
    hostile.extend_from_slice(&tree.root());
    hostile.extend_from_slice(&leaves[3]);
    for aunt in &p.aunts {
        hostile.extend_from_slice(aunt);
    }
    write("merkle_proof", "proof_3_of_5", &hostile);

    // Inclusion proofs: a merkleblock of the fixed chain, a branch message, a block of txids.
    let mut chain = fiamma::btc::regtest::RegtestChain::in_memory().expect("chain");
    let mined = chain
        .mine(3, &setup::miner_script(), 1_700_000_000)
        .expect("mines");
    let block = chain
        .block(&mined.hashes[0])
        .expect("reads")
        .expect("block");
    let coinbase = block.txdata[0].compute_txid();
    let mb = bitcoin::MerkleBlock::from_block_with_predicate(&block, |t| *t == coinbase);
    write(
        "inclusion_proof",
        "merkleblock",
        &[[0u8].as_slice(), &serialize(&mb)].concat(),
    );
    let branch = pb::InclusionProof {
        block_hash: mined.hashes[0].to_string(),
        tx_index: 1,
        merkle_branch: vec![vec![5; 32], vec![6; 32]],
    };
    write(
        "inclusion_proof",
        "branch",
        &[[1u8].as_slice(), &framed(&branch.encode_to_vec()), &[8; 32]].concat(),
    );
    let txids: Vec<u8> = (0u8..7).flat_map(|i| [i; 32]).collect();
    write(
        "inclusion_proof",
        "block_of_7",
        &[[2u8].as_slice(), &txids].concat(),
    );

    // Staking requests: one valid message per decoding path.
    let verifier_kp = keypair("verifier/A");
    let verifier_account = account_of(&verifier_kp.x_only_public_key().0);
    let verifier_pop = sign_pop(
        &setup::contexts(),
        PopRole::Verifier,
        &verifier_account,
        &verifier_kp,
    );
    let create_verifier = pb::CreateVerifierRequest {
        account: verifier_account
            .to_bech32(fiamma_staking::account::ACCOUNT_HRP)
            .expect("bech32"),
        btc_pk: verifier_kp.x_only_public_key().0.serialize().to_vec(),
        pop: Some(proof_to_pb(&ProofOfPossession::Bip340(verifier_pop))),
        description: Some(pb::Description {
            moniker: "verifier A".into(),
            ..Default::default()
        }),
        commission: "0.0500".into(),
    };
    let staking_txid = reg.staking_tx.compute_txid().to_string();
    let covenant = pb::AddCovenantSigsRequest {
        staking_txid: staking_txid.clone(),
        sigs: Some(pb::CovenantSignatures {
            covenant_pk: signer.x_only_public_key().0.serialize().to_vec(),
            slashing_adaptor_sig: asig.to_bytes().to_vec(),
            unbonding_sig: decrypted.as_ref().to_vec(),
            unbonding_slashing_adaptor_sig: asig.to_legacy_bytes().to_vec(),
        }),
    };
    let page = Some(pb::PageRequest {
        page_token: hex::encode(reg.staking_tx.compute_txid().to_byte_array()),
        page_size: 10,
    });
    let staking: Vec<(u8, &str, Vec<u8>)> = vec![
        (0, "create_verifier", create_verifier.encode_to_vec()),
        (1, "create_delegation", request.encode_to_vec()),
        (2, "add_covenant_sigs", covenant.encode_to_vec()),
        (
            3,
            "add_inclusion_proof",
            pb::AddInclusionProofRequest {
                staking_txid: staking_txid.clone(),
                proof: Some(branch.clone()),
            }
            .encode_to_vec(),
        ),
        (
            4,
            "selective_slashing_evidence",
            pb::SelectiveSlashingEvidenceRequest {
                staking_txid: staking_txid.clone(),
                recovered_verifier_sk: verifier_sk.secret_bytes().to_vec(),
            }
            .encode_to_vec(),
        ),
        (
            7,
            "verifiers_page",
            pb::VerifiersRequest {
                page: Some(pb::PageRequest {
                    page_token: hex::encode(verifier_kp.x_only_public_key().0.serialize()),
                    page_size: 5,
                }),
            }
            .encode_to_vec(),
        ),
        (
            9,
            "delegations_filtered",
            pb::DelegationsRequest {
                status: 3,
                staker_btc_pk: reg.staker_pk.serialize().to_vec(),
                verifier_btc_pk: verifier_kp.x_only_public_key().0.serialize().to_vec(),
                page,
            }
            .encode_to_vec(),
        ),
    ];
    for (which, name, bytes) in staking {
        write(
            "staking_request",
            name,
            &[[which].as_slice(), &bytes].concat(),
        );
    }

    // Finality requests: a real submission, commitment, vote and equivocation.
    let (first, committed) = signed_vote("verifier/A", 3, [1; 32]);
    let (second, _) = signed_vote("verifier/A", 3, [2; 32]);
    let commitment = committed.commitment();
    let commit = fpb::CommitPubRandListRequest {
        verifier_btc_pk: first.voter.serialize().to_vec(),
        start_round: commitment.start(),
        num_pub_rand: commitment.num(),
        commitment: commitment.root().to_vec(),
        signature: commitment
            .sign(&verifier_kp, &setup::contexts(), &[0; 32])
            .as_ref()
            .to_vec(),
    };
    let unjail_sig =
        SECP256K1.sign_schnorr_no_aux_rand(&SecpMessage::from_digest([4; 32]), &verifier_kp);
    let finality: Vec<(u8, &str, Vec<u8>)> = vec![
        (
            0,
            "submit_proof",
            fpb::SubmitProofRequest {
                proof_system: 1,
                verifying_key: vk,
                proof,
                public_inputs: inputs,
            }
            .encode_to_vec(),
        ),
        (1, "commit_pub_rand_list", commit.encode_to_vec()),
        (
            2,
            "add_finality_sig",
            fpb::AddFinalitySigRequest {
                vote: Some(vote_to_pb(&first)),
            }
            .encode_to_vec(),
        ),
        (
            3,
            "equivocation_evidence",
            fpb::EquivocationEvidenceRequest {
                first: Some(vote_to_pb(&first)),
                second: Some(vote_to_pb(&second)),
                checkpoint: None,
            }
            .encode_to_vec(),
        ),
        (
            4,
            "unjail_verifier",
            fpb::UnjailVerifierRequest {
                verifier_btc_pk: first.voter.serialize().to_vec(),
                signature: unjail_sig.as_ref().to_vec(),
            }
            .encode_to_vec(),
        ),
    ];
    for (which, name, bytes) in finality {
        write(
            "finality_request",
            name,
            &[[which].as_slice(), &bytes].concat(),
        );
    }

    // JSON-RPC bodies against the fixed chain (genesis and block 1 are known).
    let genesis = chain
        .block_at(0)
        .expect("reads")
        .expect("genesis")
        .block_hash();
    let tx_hex = hex::encode(serialize(&reg.staking_tx));
    let bodies = [
        (
            "getblockchaininfo",
            r#"{"jsonrpc":"2.0","id":1,"method":"getblockchaininfo"}"#.to_owned(),
        ),
        (
            "getblock_verbose",
            format!(
                r#"{{"id":"a","method":"getblock","params":["{}",2]}}"#,
                mined.hashes[0]
            ),
        ),
        (
            "getblockheader_named",
            format!(
                r#"{{"method":"getblockheader","params":{{"blockhash":"{genesis}","verbose":false}}}}"#
            ),
        ),
        (
            "gettxoutproof",
            format!(
                r#"{{"method":"gettxoutproof","params":[["{coinbase}"],"{}"]}}"#,
                mined.hashes[0]
            ),
        ),
        (
            "getrawtransaction",
            format!(
                r#"{{"method":"getrawtransaction","params":["{coinbase}",true,"{}"]}}"#,
                mined.hashes[0]
            ),
        ),
        (
            "gettxout",
            format!(r#"{{"method":"gettxout","params":["{coinbase}",0,true]}}"#),
        ),
        (
            "testmempoolaccept",
            format!(r#"{{"method":"testmempoolaccept","params":[["{tx_hex}"],"0.1"]}}"#),
        ),
        (
            "sendrawtransaction",
            format!(r#"{{"method":"sendrawtransaction","params":["{tx_hex}",0]}}"#),
        ),
        (
            "gettxspendingprevout",
            format!(
                r#"{{"method":"gettxspendingprevout","params":[[{{"txid":"{coinbase}","vout":0}}]]}}"#
            ),
        ),
        (
            "batch",
            r#"[{"method":"getblockcount"},{"method":"getblockhash","params":[1]},{"method":"getrawmempool","params":[true]},{"method":"nosuchmethod"},7]"#
                .to_owned(),
        ),
    ];
    for (name, body) in bodies {
        write("json_rpc", name, body.as_bytes());
    }
}

/// The structured seeds get past decoding to the deepest check of their target, so that
/// fuzzing mutates inputs that reach it (a seed refused at its first field would not).
#[test]
fn structured_seeds_reach_the_deep_checks() {
    let seed = |target: &str, name: &str| {
        fs::read(seeds_dir(target).join(name)).unwrap_or_else(|e| panic!("{target}/{name}: {e}"))
    };

    let request = pb::CreateDelegationRequest::decode(seed("registration", "valid").as_slice())
        .expect("decodes");
    let reg = fiamma::node::grpc::registration(&request).expect("converts");
    let params = setup::params().expect("devnet params");
    validate_delegation(&params, &setup::contexts(), &reg).expect("a valid registration");

    let data = seed("groth16", "valid");
    let (vk_len, rest) = data.split_at(2);
    let (vk, rest) = rest.split_at(usize::from(u16::from_le_bytes([vk_len[0], vk_len[1]])));
    let (proof_len, rest) = rest.split_at(2);
    let (proof, inputs) = rest.split_at(usize::from(u16::from_le_bytes([
        proof_len[0],
        proof_len[1],
    ])));
    let decoded = Groth16Bn254::decode(vk, proof, inputs).expect("decodes");
    assert_eq!(decoded.verify(), Verdict::Valid);

    let data = seed("finality_request", "equivocation_evidence");
    let r = fpb::EquivocationEvidenceRequest::decode(&data[1..]).expect("decodes");
    let first = vote(&FIRST, r.first.as_ref()).expect("first vote");
    let second = vote(&SECOND, r.second.as_ref()).expect("second vote");
    first
        .verify_signature(&setup::contexts())
        .expect("a signed vote");
    equivocation(&first, &second, &setup::contexts()).expect("equivocation evidence");
}
