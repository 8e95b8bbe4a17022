//! Verifiers that register, commit randomness and vote through the public API of
//! `fiamma_finality::rounds`, shared by the round tests.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeMap;

use fiamma_finality::committed::CommittedRandomness;
use fiamma_finality::merkle::Digest;
use fiamma_finality::rounds::{
    ClosedRound, CommitmentRules, LivenessRules, PowerTable, RoundVotes, Verifiers, Vote, VoteEnv,
};
use fiamma_staking::context::SigningContexts;
use secp256k1::{Keypair, XOnlyPublicKey, SECP256K1};

pub const CHAIN: &str = "fiamma-rounds-test";
pub const COMMIT_RULES: CommitmentRules = CommitmentRules {
    min_pub_rand: 8,
    max_pub_rand: 100_000,
    max_start_ahead: 100,
};
pub const VOTE_EXPIRY: u64 = 4;

pub fn contexts() -> SigningContexts {
    SigningContexts::new(CHAIN, "fmma1finalitymodule")
}

pub fn liveness() -> LivenessRules {
    LivenessRules::new(4, 2, 3).expect("valid rules")
}

/// One verifier's keys and its committed randomness.
pub struct Verifier {
    pub keypair: Keypair,
    pub randomness: CommittedRandomness,
}

impl Verifier {
    pub fn new(seed: u64, start: u64, num: u64) -> Self {
        let mut bytes = [0x5a; 32];
        bytes[24..].copy_from_slice(&seed.to_be_bytes());
        let keypair = Keypair::from_seckey_slice(SECP256K1, &bytes).expect("valid key");
        let randomness = CommittedRandomness::derive(&keypair.secret_key(), CHAIN, start, num)
            .expect("valid range");
        Verifier {
            keypair,
            randomness,
        }
    }

    pub fn key(&self) -> XOnlyPublicKey {
        self.keypair.x_only_public_key().0
    }

    /// Its BIP-340 signature on the unjail message for a jailing at `since`.
    pub fn unjail_signature(&self, since: u64) -> secp256k1::schnorr::Signature {
        let msg = fiamma_finality::rounds::unjail_message(&contexts(), &self.key(), since);
        SECP256K1.sign_schnorr_no_aux_rand(&secp256k1::Message::from_digest(msg), &self.keypair)
    }

    pub fn vote(&self, round: u64, round_hash: Digest) -> Vote {
        let r = self.randomness.for_round(round).expect("committed round");
        Vote::sign(&self.keypair, r, &contexts(), round, round_hash)
    }
}

/// `n` verifiers, registered and with their randomness committed for rounds `0 .. num`.
pub fn network(n: u64, num: u64) -> (Vec<Verifier>, Verifiers) {
    let verifiers: Vec<Verifier> = (1..=n).map(|i| Verifier::new(i, 0, num)).collect();
    let mut registry = Verifiers::new();
    for v in &verifiers {
        registry.register(v.key()).expect("new key");
        let commitment = *v.randomness.commitment();
        let sig = commitment.sign(&v.keypair, &contexts(), &[7; 32]);
        registry
            .commit_randomness(&v.key(), commitment, &sig, 0, &COMMIT_RULES, &contexts())
            .expect("valid commitment");
    }
    (verifiers, registry)
}

/// The verifiers' powers, as the staking module would report them.
pub fn powers(verifiers: &[Verifier], power: &[u64]) -> BTreeMap<XOnlyPublicKey, u64> {
    verifiers
        .iter()
        .zip(power)
        .map(|(v, p)| (v.key(), *p))
        .collect()
}

/// Closes `round` with `round_hash` over the registry's current power table.
pub fn close(
    registry: &Verifiers,
    powers: &BTreeMap<XOnlyPublicKey, u64>,
    round: u64,
    round_hash: Digest,
) -> RoundVotes {
    let table: PowerTable = registry.power_table(round, powers, 100);
    RoundVotes::new(ClosedRound { round, round_hash }, table).expect("table of this round")
}

pub fn env(contexts: &SigningContexts, latest_round: u64) -> VoteEnv<'_> {
    VoteEnv {
        contexts,
        latest_round,
        vote_expiry: VOTE_EXPIRY,
    }
}
