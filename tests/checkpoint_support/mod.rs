//! Fixtures of the checkpoint consensus tests: verifier and committee keys, sets, candidates
//! signed with EOTS votes, witnesses (complete or deliberately not), Bitcoin Core's script
//! interpreter, blocks on the embedded chain and a reader source over it.
#![allow(dead_code)]

use std::collections::BTreeMap;

use bitcoin::hashes::Hash;
use bitcoin::merkle_tree::MerkleBlock;
use bitcoin::secp256k1::{schnorr, Keypair, SecretKey, XOnlyPublicKey, SECP256K1};
use bitcoin::{Amount, OutPoint, Transaction, TxOut, Witness};
use fiamma::btc::kernel::verify_scripts;
use fiamma::btc::regtest::ChainError;
use fiamma::btc::RegtestChain;
use fiamma_finality::checkpoint::{
    build_candidate, check_complete, quorum_witness, recovery_witness, Candidate, CandidateSpec,
    ChainSource, CheckpointKind, CheckpointLeaf, CheckpointOutput, CheckpointPayload,
    CheckpointSet, CheckpointVote, ConfirmedSpend, RecoveryLeaf,
};
use fiamma_finality::eots;
use fiamma_finality::round::RoundHash;
use fiamma_staking::sighash::sign;
use fiamma_staking::witness::push_slots;

/// The chain id the test verifiers derive their randomness for.
pub const CHAIN_ID: &str = "fiamma-checkpoint-test";
/// V.
pub const VALUE: Amount = Amount::from_sat(1_000);
/// R of the test committee.
pub const RECOVERY_BLOCKS: u32 = 6;

/// The key pair of verifier (or committee member) `i` (≥ 1).
pub fn keypair(i: u16) -> Keypair {
    let mut sk = [0x11u8; 32];
    sk[30..].copy_from_slice(&i.to_be_bytes());
    Keypair::from_secret_key(SECP256K1, &SecretKey::from_slice(&sk).expect("valid key"))
}

pub fn xonly(kp: &Keypair) -> XOnlyPublicKey {
    kp.x_only_public_key().0
}

/// Verifiers `first..first+powers.len()` with the given powers.
pub fn verifiers(first: u16, powers: &[u64]) -> Vec<(Keypair, u64)> {
    powers
        .iter()
        .enumerate()
        .map(|(i, p)| (keypair(first + i as u16), *p))
        .collect()
}

pub fn set_of(members: &[(Keypair, u64)]) -> CheckpointSet {
    CheckpointSet::from_powers(members.iter().map(|(k, p)| (xonly(k), *p))).expect("set")
}

/// The covenant committee: five keys, quorum three, R blocks.
pub struct Committee {
    pub keys: Vec<Keypair>,
    pub leaf: RecoveryLeaf,
}

pub fn committee() -> Committee {
    let keys: Vec<Keypair> = (0x31..0x36).map(keypair).collect();
    let xonly_keys: Vec<XOnlyPublicKey> = keys.iter().map(xonly).collect();
    let leaf = RecoveryLeaf::new(&xonly_keys, 3, RECOVERY_BLOCKS).expect("recovery leaf");
    Committee { keys, leaf }
}

/// A candidate on `base` from `base_set` to `next_set` for `round`, with a round hash that
/// `variant` changes (two variants are two candidates for one round).
pub fn candidate(
    base: OutPoint,
    base_set: &CheckpointSet,
    next_set: &CheckpointSet,
    recovery: &RecoveryLeaf,
    round: u64,
    kind: CheckpointKind,
    variant: u8,
) -> Candidate {
    let mut round_hash = [variant; 32];
    round_hash[..8].copy_from_slice(&round.to_be_bytes());
    build_candidate(&CandidateSpec {
        base,
        base_round: 0,
        base_set,
        next_set,
        recovery,
        value: VALUE,
        payload: CheckpointPayload {
            kind,
            round,
            round_hash: RoundHash(round_hash),
            state: [0x5a; 32],
        },
    })
    .expect("candidate")
}

/// Each signer's EOTS vote over the candidate's M with its randomness for `round`.
pub fn votes(candidate: &Candidate, signers: &[&Keypair], round: u64) -> Vec<CheckpointVote> {
    signers
        .iter()
        .map(|kp| {
            let k = eots::derive_secret_randomness(&kp.secret_key(), CHAIN_ID, round);
            CheckpointVote::sign(kp, &k, &candidate.message)
        })
        .collect()
}

/// The votes as (key, 64-byte signature).
pub fn vote_sigs(
    candidate: &Candidate,
    signers: &[&Keypair],
    round: u64,
) -> Vec<(XOnlyPublicKey, schnorr::Signature)> {
    votes(candidate, signers, round)
        .iter()
        .map(CheckpointVote::key_signature)
        .collect()
}

/// A quorum witness with whatever signatures are given, in their key's slot of `set`
/// (no completeness check: for the spends Bitcoin must refuse).
pub fn raw_quorum_witness(
    output: &CheckpointOutput,
    set: &CheckpointSet,
    sigs: &[(XOnlyPublicKey, Vec<u8>)],
) -> Witness {
    let by_key: BTreeMap<[u8; 32], &Vec<u8>> =
        sigs.iter().map(|(k, s)| (k.serialize(), s)).collect();
    let mut witness = Witness::new();
    for m in set.members().iter().rev() {
        match by_key.get(&m.key.serialize()) {
            Some(sig) => witness.push(sig.as_slice()),
            None => witness.push([]),
        }
    }
    witness.push(output.leaf_script(CheckpointLeaf::Quorum).as_bytes());
    witness.push(output.control_block(CheckpointLeaf::Quorum).serialize());
    witness
}

/// The candidate with its raw quorum witness of `signers`' votes.
pub fn signed_raw(
    candidate: &Candidate,
    base_set: &CheckpointSet,
    signers: &[&Keypair],
    round: u64,
) -> Transaction {
    let sigs: Vec<(XOnlyPublicKey, Vec<u8>)> = vote_sigs(candidate, signers, round)
        .into_iter()
        .map(|(k, s)| (k, s.as_ref().to_vec()))
        .collect();
    let mut tx = candidate.tx.clone();
    tx.input[0].witness = raw_quorum_witness(&candidate.base_output, base_set, &sigs);
    tx
}

/// The candidate with a complete quorum witness (the completeness check must pass).
pub fn signed(
    candidate: &Candidate,
    base_set: &CheckpointSet,
    signers: &[&Keypair],
    round: u64,
) -> Transaction {
    let sigs = vote_sigs(candidate, signers, round);
    let complete =
        check_complete(base_set, &candidate.message.sighash(), &sigs).expect("complete signatures");
    let mut tx = candidate.tx.clone();
    tx.input[0].witness = quorum_witness(&candidate.base_output, base_set, &complete);
    tx
}

/// A recovery candidate signed by the committee members `signers` (plain BIP-0340 over the
/// recovery leaf's sighash), their slots filled without a count check.
pub fn recovery_signed(
    candidate: &Candidate,
    committee: &Committee,
    signers: &[usize],
) -> Transaction {
    let sighash = candidate.message.sighash();
    let sigs: BTreeMap<[u8; 32], schnorr::Signature> = signers
        .iter()
        .map(|i| {
            (
                xonly(&committee.keys[*i]).serialize(),
                sign(&sighash, &committee.keys[*i]),
            )
        })
        .collect();
    let mut witness = Witness::new();
    push_slots(&mut witness, committee.leaf.keys(), &sigs);
    witness.push(
        candidate
            .base_output
            .leaf_script(CheckpointLeaf::Recovery)
            .as_bytes(),
    );
    witness.push(
        candidate
            .base_output
            .control_block(CheckpointLeaf::Recovery)
            .serialize(),
    );
    let mut tx = candidate.tx.clone();
    tx.input[0].witness = witness;
    tx
}

/// [`recovery_signed`] through the checked assembly (exactly q signatures).
pub fn recovery_complete(
    candidate: &Candidate,
    committee: &Committee,
    signers: &[usize],
) -> Transaction {
    let sighash = candidate.message.sighash();
    let sigs: Vec<_> = signers
        .iter()
        .map(|i| {
            (
                xonly(&committee.keys[*i]),
                sign(&sighash, &committee.keys[*i]),
            )
        })
        .collect();
    let mut tx = candidate.tx.clone();
    tx.input[0].witness =
        recovery_witness(&candidate.base_output, &committee.leaf, &sighash, &sigs)
            .expect("witness");
    tx
}

/// Whether Bitcoin Core's script interpreter (all consensus flags) accepts input 0.
pub fn kernel_accepts(tx: &Transaction, prevout: &TxOut) -> bool {
    verify_scripts(tx, std::slice::from_ref(prevout)).is_ok()
}

/// A reader source over the embedded chain: scans the active chain for the spend, and proves
/// it with the block's header and a partial Merkle tree.
pub struct ChainScan<'a>(pub &'a RegtestChain);

impl ChainSource for ChainScan<'_> {
    type Error = ChainError;

    fn spend_of(&self, outpoint: &OutPoint) -> Result<Option<ConfirmedSpend>, ChainError> {
        for height in 1..=self.0.tip().height {
            let Some(block) = self.0.block_at(height)? else {
                continue;
            };
            let found = block
                .txdata
                .iter()
                .find(|tx| tx.input.iter().any(|i| i.previous_output == *outpoint));
            if let Some(tx) = found {
                let txid = tx.compute_txid();
                let proof = MerkleBlock::from_block_with_predicate(&block, |t| *t == txid).txn;
                return Ok(Some(ConfirmedSpend {
                    tx: tx.clone(),
                    header: block.header,
                    height,
                    proof,
                }));
            }
        }
        Ok(None)
    }
}

/// A zero-hash outpoint for kernel-only tests (the kernel checks scripts, not coins).
pub fn dummy_outpoint(i: u8) -> OutPoint {
    OutPoint::new(bitcoin::Txid::from_byte_array([i; 32]), 0)
}
