//! Verifiers with committed randomness that cast real votes, for the unit tests of `rounds`.

use fiamma_staking::context::SigningContexts;
use secp256k1::{Keypair, XOnlyPublicKey, SECP256K1};

use crate::commitment::RandomnessCommitment;
use crate::committed::CommittedRandomness;
use crate::merkle::Digest;

use super::power::{Candidate, PowerTable, VerifierStatus};
use super::vote::Vote;

pub(crate) const CHAIN: &str = "fiamma-test";

pub(crate) fn contexts() -> SigningContexts {
    SigningContexts::new(CHAIN, "fmma1finality")
}

/// A verifier with randomness committed for rounds `start .. start + num − 1`.
pub(crate) struct TestVerifier {
    pub(crate) keypair: Keypair,
    pub(crate) randomness: CommittedRandomness,
}

impl TestVerifier {
    pub(crate) fn new(seed: u8, start: u64, num: u64) -> Self {
        let keypair = Keypair::from_seckey_slice(SECP256K1, &[seed; 32]).expect("valid key");
        let randomness = CommittedRandomness::derive(&keypair.secret_key(), CHAIN, start, num)
            .expect("valid range");
        TestVerifier {
            keypair,
            randomness,
        }
    }

    pub(crate) fn key(&self) -> XOnlyPublicKey {
        self.keypair.x_only_public_key().0
    }

    pub(crate) fn commitment(&self) -> &RandomnessCommitment {
        self.randomness.commitment()
    }

    /// Its signature on the unjail message for a jailing at `since`.
    pub(crate) fn unjail_signature(&self, since: u64) -> secp256k1::schnorr::Signature {
        let msg = super::registry::unjail_message(&contexts(), &self.key(), since);
        SECP256K1.sign_schnorr_no_aux_rand(&secp256k1::Message::from_digest(msg), &self.keypair)
    }

    pub(crate) fn vote(&self, round: u64, round_hash: Digest) -> Vote {
        let r = self.randomness.for_round(round).expect("committed round");
        Vote::sign(&self.keypair, r, &contexts(), round, round_hash)
    }
}

/// The power table of `round` over ACTIVE verifiers with the given powers.
pub(crate) fn table(round: u64, verifiers: &[(&TestVerifier, u64)]) -> PowerTable {
    let candidates: Vec<Candidate<'_>> = verifiers
        .iter()
        .map(|(v, power)| Candidate {
            key: v.key(),
            status: VerifierStatus::Active,
            power: *power,
            commitments: std::slice::from_ref(v.commitment()),
        })
        .collect();
    PowerTable::compute(round, &candidates, 100).expect("distinct keys")
}
