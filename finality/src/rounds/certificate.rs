//! The finality certificate of a round (`PROTOCOL.md` §10): the signatures that made the
//! quorum, its encoding for the Bitcoin anchor, and its check by anyone holding the round's
//! power table.

use bitcoin::hashes::{sha256, Hash, HashEngine};
use fiamma_staking::context::SigningContexts;
use secp256k1::XOnlyPublicKey;

use crate::eots::{self, PublicRandomness, Signature, VerifyError};
use crate::merkle::Digest;
use crate::vote::vote_message;

use super::power::PowerTable;
use super::tally::has_quorum;

/// One signature of a finality certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CertificateEntry {
    /// The verifier's BTC key.
    pub verifier: XOnlyPublicKey,
    /// Its public randomness of the round.
    pub public_randomness: PublicRandomness,
    /// Its EOTS signature `s` on the vote message.
    pub signature: Signature,
}

/// Bytes of one encoded certificate entry: key, `pr`, `s`.
pub const CERTIFICATE_ENTRY_LEN: usize = 96;

/// The network's signature on a final round: the counted votes, ordered by verifier key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// The round.
    pub round: u64,
    /// The round hash every entry signed.
    pub round_hash: Digest,
    /// The signatures, ordered by verifier key (ascending bytes).
    pub entries: Vec<CertificateEntry>,
}

impl Certificate {
    /// The entries as `key ‖ pr ‖ s` (96 bytes each), in order. The round and round hash are
    /// not repeated: every signature already commits to them.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * CERTIFICATE_ENTRY_LEN);
        for e in &self.entries {
            out.extend_from_slice(&e.verifier.serialize());
            out.extend_from_slice(e.public_randomness.as_bytes());
            out.extend_from_slice(&e.signature.to_byte_array());
        }
        out
    }

    /// `sha256` of [`Certificate::encode`], the digest the Bitcoin anchor carries.
    pub fn digest(&self) -> [u8; 32] {
        let mut engine = sha256::Hash::engine();
        engine.input(&self.encode());
        sha256::Hash::from_engine(engine).to_byte_array()
    }
}

/// Why a certificate does not prove a round final.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// The power table is for another round.
    #[error("certificate of round {round} checked against the power table of round {table_round}")]
    OtherRound {
        /// The certificate's round.
        round: u64,
        /// The table's round.
        table_round: u64,
    },
    /// The entries are not strictly ascending by key (out of order or repeated).
    #[error("certificate entry of {verifier} is out of order or repeated")]
    Unordered {
        /// The offending entry's verifier.
        verifier: XOnlyPublicKey,
    },
    /// An entry's verifier is not in the round's active set.
    #[error("verifier {verifier} is not in the active set of round {round}")]
    NotInActiveSet {
        /// The verifier.
        verifier: XOnlyPublicKey,
        /// The round.
        round: u64,
    },
    /// An entry's signature does not verify on the round's vote message.
    #[error(transparent)]
    BadSignature(#[from] VerifyError),
    /// The signers hold two thirds of the power or less.
    #[error(
        "certificate signers hold {voted_power} of {total_power} power, not more than two thirds"
    )]
    NoQuorum {
        /// The signers' power.
        voted_power: u128,
        /// The active set's power.
        total_power: u128,
    },
}

impl Certificate {
    /// Checks that the certificate proves its round final under `table`: entries strictly
    /// ordered by key, every signer in the active set, every EOTS signature valid on
    /// `ctx("fp_fin_vote") ‖ u64be(round) ‖ round_hash`, and more than two thirds of the power.
    /// It does not check that `pr` was committed; a signature on committed randomness is what
    /// makes a second signature extractable, and the node checked that when it took the vote.
    ///
    /// # Errors
    /// [`CertificateError`] naming the first check that failed.
    pub fn verify(
        &self,
        table: &PowerTable,
        contexts: &SigningContexts,
    ) -> Result<(), CertificateError> {
        if table.round() != self.round {
            return Err(CertificateError::OtherRound {
                round: self.round,
                table_round: table.round(),
            });
        }
        let msg = vote_message(contexts, self.round, &self.round_hash);
        let mut voted_power = 0u128;
        let mut previous: Option<[u8; 32]> = None;
        for e in &self.entries {
            let key = e.verifier.serialize();
            if previous.is_some_and(|p| p >= key) {
                return Err(CertificateError::Unordered {
                    verifier: e.verifier,
                });
            }
            previous = Some(key);
            let power = table
                .power_of(&e.verifier)
                .ok_or(CertificateError::NotInActiveSet {
                    verifier: e.verifier,
                    round: self.round,
                })?;
            eots::verify(&e.verifier, &e.public_randomness, &msg, &e.signature)?;
            voted_power += u128::from(power);
        }
        let total_power = table.total_power();
        if !has_quorum(voted_power, total_power) {
            return Err(CertificateError::NoQuorum {
                voted_power,
                total_power,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rounds::tally::tally;
    use crate::rounds::testkit::{self, contexts, TestVerifier};

    const HASH: Digest = [0x5e; 32];

    fn setup() -> (Vec<TestVerifier>, PowerTable, Certificate) {
        let vs: Vec<TestVerifier> = (1..=4).map(|i| TestVerifier::new(i, 0, 8)).collect();
        let powers: Vec<(&TestVerifier, u64)> = vs.iter().take(3).map(|v| (v, 10)).collect();
        let table = testkit::table(6, &powers);
        let votes: Vec<_> = vs.iter().take(3).map(|v| v.vote(6, HASH)).collect();
        let cert = tally(&table, &HASH, &votes).certificate().expect("final");
        (vs, table, cert)
    }

    #[test]
    fn a_certificate_from_the_tally_verifies() {
        let (_, table, cert) = setup();
        assert_eq!(cert.verify(&table, &contexts()), Ok(()));
    }

    #[test]
    fn tampered_certificates_are_refused() {
        let (vs, table, cert) = setup();
        let c = contexts();

        let other_round = PowerTable::compute(7, &[], 1).expect("no candidates");
        assert_eq!(
            cert.verify(&other_round, &c),
            Err(CertificateError::OtherRound {
                round: 6,
                table_round: 7
            })
        );

        let mut swapped = cert.clone();
        swapped.entries.swap(0, 1);
        assert_eq!(
            swapped.verify(&table, &c),
            Err(CertificateError::Unordered {
                verifier: swapped.entries[1].verifier
            })
        );
        let mut repeated = cert.clone();
        repeated.entries[1] = repeated.entries[0];
        assert!(matches!(
            repeated.verify(&table, &c),
            Err(CertificateError::Unordered { .. })
        ));

        let mut outsider = cert.clone();
        let vote = vs[3].vote(6, HASH);
        outsider.entries = vec![CertificateEntry {
            verifier: vote.voter,
            public_randomness: vote.public_randomness,
            signature: vote.signature,
        }];
        assert_eq!(
            outsider.verify(&table, &c),
            Err(CertificateError::NotInActiveSet {
                verifier: vs[3].key(),
                round: 6
            })
        );

        let mut forged = cert.clone();
        let mut s = forged.entries[2].signature.to_byte_array();
        s[0] ^= 0x01;
        forged.entries[2].signature = Signature::from_byte_array(s);
        assert!(matches!(
            forged.verify(&table, &c),
            Err(CertificateError::BadSignature(_))
        ));
        let elsewhere = SigningContexts::new("another-chain", "fmma1finality");
        assert!(matches!(
            cert.verify(&table, &elsewhere),
            Err(CertificateError::BadSignature(_))
        ));

        let mut short = cert.clone();
        short.entries.truncate(2);
        assert_eq!(
            short.verify(&table, &c),
            Err(CertificateError::NoQuorum {
                voted_power: 20,
                total_power: 30
            })
        );
    }
}
