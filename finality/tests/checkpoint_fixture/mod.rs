//! A checkpoint of n equal-stake verifiers with a 3-of-5 committee (R = 504), every member's
//! EOTS vote over M made: shared by the size measurements and the benchmark.
#![allow(dead_code)]

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{schnorr, Keypair, SecretKey, XOnlyPublicKey, SECP256K1};
use bitcoin::{Amount, OutPoint, Txid};
use fiamma_finality::checkpoint::{
    build_candidate, Candidate, CandidateSpec, CheckpointKind, CheckpointPayload, CheckpointSet,
    CheckpointVote, RecoveryLeaf,
};
use fiamma_finality::eots;
use fiamma_finality::round::RoundHash;

/// The round every fixture checkpoints.
pub const ROUND: u64 = 2_160;

pub fn keypair(i: u16) -> Keypair {
    let mut sk = [0x22u8; 32];
    sk[30..].copy_from_slice(&i.to_be_bytes());
    Keypair::from_secret_key(SECP256K1, &SecretKey::from_slice(&sk).expect("key"))
}

pub struct Fixture {
    pub members: Vec<Keypair>,
    pub committee: Vec<Keypair>,
    pub set: CheckpointSet,
    pub recovery: RecoveryLeaf,
    pub spec_base: OutPoint,
    pub candidate: Candidate,
}

impl Fixture {
    /// `n` verifiers of equal stake, spending the base by `kind`.
    pub fn equal_stakes(n: u16, kind: CheckpointKind) -> Self {
        let members: Vec<Keypair> = (1..=n).map(keypair).collect();
        let set =
            CheckpointSet::from_powers(members.iter().map(|k| (k.x_only_public_key().0, 1_000)))
                .expect("set");
        let committee: Vec<Keypair> = (500..505).map(keypair).collect();
        let keys: Vec<XOnlyPublicKey> = committee.iter().map(|k| k.x_only_public_key().0).collect();
        let recovery = RecoveryLeaf::new(&keys, 3, 504).expect("leaf");
        let spec_base = OutPoint::new(Txid::all_zeros(), 0);
        let candidate =
            build_candidate(&Self::spec(&set, &recovery, spec_base, kind)).expect("candidate");
        Fixture {
            members,
            committee,
            set,
            recovery,
            spec_base,
            candidate,
        }
    }

    /// The candidate's specification.
    pub fn spec<'a>(
        set: &'a CheckpointSet,
        recovery: &'a RecoveryLeaf,
        base: OutPoint,
        kind: CheckpointKind,
    ) -> CandidateSpec<'a> {
        CandidateSpec {
            base,
            base_round: 0,
            base_set: set,
            next_set: set,
            recovery,
            value: Amount::from_sat(1_000),
            payload: CheckpointPayload {
                kind,
                round: ROUND,
                round_hash: RoundHash([1; 32]),
                state: [2; 32],
            },
        }
    }

    /// Every member's vote over M as (key, 64-byte signature).
    pub fn votes(&self) -> Vec<(XOnlyPublicKey, schnorr::Signature)> {
        self.members
            .iter()
            .map(|kp| {
                let k = eots::derive_secret_randomness(&kp.secret_key(), "fixture", ROUND);
                CheckpointVote::sign(kp, &k, &self.candidate.message).key_signature()
            })
            .collect()
    }

    /// Every committee member's BIP-0340 signature over the recovery sighash.
    pub fn committee_sigs(&self) -> Vec<(XOnlyPublicKey, schnorr::Signature)> {
        let sighash = self.candidate.message.sighash();
        self.committee
            .iter()
            .map(|k| {
                (
                    k.x_only_public_key().0,
                    fiamma_staking::sighash::sign(&sighash, k),
                )
            })
            .collect()
    }
}
