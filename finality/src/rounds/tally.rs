//! The tally of a round by power and its finality certificate (`PROTOCOL.md` §10).

use std::collections::BTreeMap;

use bitcoin::hashes::{sha256, Hash, HashEngine};
use secp256k1::XOnlyPublicKey;

use crate::eots::{PublicRandomness, Signature};
use crate::merkle::Digest;

use super::power::PowerTable;
use super::vote::Vote;

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

/// The votes of a round weighed by the round's power table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// The round.
    pub round: u64,
    /// The summed power of the active-set members that voted for the round hash.
    pub voted_power: u128,
    /// The total power of the active set.
    pub total_power: u128,
    /// The counted votes as certificate entries, ordered by verifier key.
    pub entries: Vec<CertificateEntry>,
    round_hash: Digest,
}

impl Tally {
    /// Whether the round is final: voted power × 3 > total power × 2. Exactly two thirds is
    /// not enough, and an empty active set never finalises.
    pub fn is_final(&self) -> bool {
        // Both sides fit: powers are sums of u64 over at most usize::MAX members, far below
        // u128::MAX / 3 for any set that fits in memory.
        self.voted_power * 3 > self.total_power * 2
    }

    /// The finality certificate, when the round is final.
    pub fn certificate(&self) -> Option<Certificate> {
        self.is_final().then(|| Certificate {
            round: self.round,
            round_hash: self.round_hash,
            entries: self.entries.clone(),
        })
    }
}

/// Weighs `votes` on `round_hash` by `table`. Counts each member of the active set once, and
/// only votes on the table's round and on `round_hash`; other votes are ignored. The result
/// does not depend on the order of `votes`.
///
/// The votes are expected to have passed [`super::check_vote`]; the tally does not verify
/// signatures again.
pub fn tally<'a>(
    table: &PowerTable,
    round_hash: &Digest,
    votes: impl IntoIterator<Item = &'a Vote>,
) -> Tally {
    // Keyed by the key's bytes: the certificate order, without `XOnlyPublicKey` comparisons
    // (each serializes both keys).
    let mut counted: BTreeMap<[u8; 32], (u64, CertificateEntry)> = BTreeMap::new();
    for vote in votes {
        if vote.round != table.round() || vote.round_hash != *round_hash {
            continue;
        }
        let Some(power) = table.power_of(&vote.voter) else {
            continue;
        };
        let entry = CertificateEntry {
            verifier: vote.voter,
            public_randomness: vote.public_randomness,
            signature: vote.signature,
        };
        // Should one voter appear twice, keep the smaller entry so that order cannot matter.
        counted
            .entry(vote.voter.serialize())
            .and_modify(|(_, e)| *e = (*e).min(entry))
            .or_insert((power, entry));
    }
    Tally {
        round: table.round(),
        voted_power: counted.values().map(|(p, _)| u128::from(*p)).sum(),
        total_power: table.total_power(),
        entries: counted.into_values().map(|(_, e)| e).collect(),
        round_hash: *round_hash,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rounds::power::{Candidate, VerifierStatus};
    use crate::rounds::testkit::TestVerifier;

    const HASH: Digest = [0xcc; 32];

    fn table(verifiers: &[(TestVerifier, u64)]) -> PowerTable {
        let candidates: Vec<Candidate<'_>> = verifiers
            .iter()
            .map(|(v, power)| Candidate {
                key: v.key(),
                status: VerifierStatus::Active,
                power: *power,
                commitments: std::slice::from_ref(v.commitment()),
            })
            .collect();
        PowerTable::compute(3, &candidates, 100).expect("distinct keys")
    }

    #[test]
    fn only_votes_of_members_on_the_round_and_hash_count_once() {
        let vs: Vec<(TestVerifier, u64)> =
            (1..=3).map(|i| (TestVerifier::new(i, 0, 8), 10)).collect();
        let t = table(&vs[..2]);
        let votes = [
            vs[0].0.vote(3, HASH),
            vs[0].0.vote(3, HASH),
            vs[1].0.vote(3, [0xdd; 32]),
            vs[1].0.vote(4, HASH),
            vs[2].0.vote(3, HASH),
        ];
        let tally = tally(&t, &HASH, &votes);
        assert_eq!((tally.voted_power, tally.total_power), (10, 20));
        assert_eq!(tally.entries.len(), 1);
        assert_eq!(tally.entries[0].verifier, vs[0].0.key());
        assert!(!tally.is_final());
        assert_eq!(tally.certificate(), None);
    }

    #[test]
    fn exactly_two_thirds_is_not_final_and_one_more_unit_is() {
        let vs = vec![
            (TestVerifier::new(1, 0, 8), 2),
            (TestVerifier::new(2, 0, 8), 1),
        ];
        let t = table(&vs);
        let at_two_thirds = tally(&t, &HASH, &[vs[0].0.vote(3, HASH)]);
        assert_eq!(
            (at_two_thirds.voted_power, at_two_thirds.total_power),
            (2, 3)
        );
        assert!(!at_two_thirds.is_final());
        let all = [vs[0].0.vote(3, HASH), vs[1].0.vote(3, HASH)];
        let cert = tally(&t, &HASH, &all).certificate().expect("final");
        assert_eq!(cert.round, 3);
        assert_eq!(cert.entries.len(), 2);
        assert!(cert
            .entries
            .windows(2)
            .all(|w| w[0].verifier < w[1].verifier));
        let bytes = cert.encode();
        assert_eq!(bytes.len(), 2 * CERTIFICATE_ENTRY_LEN);
        assert_eq!(&bytes[..32], &cert.entries[0].verifier.serialize());
        assert_eq!(&bytes[64..96], &cert.entries[0].signature.to_byte_array());
        assert_eq!(cert.digest(), sha256::Hash::hash(&bytes).to_byte_array());
    }

    #[test]
    fn an_empty_active_set_never_finalises() {
        let t = table(&[]);
        let tally = tally(&t, &HASH, std::iter::empty());
        assert_eq!((tally.voted_power, tally.total_power), (0, 0));
        assert!(!tally.is_final());
    }
}
