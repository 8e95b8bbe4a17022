//! The tally of a round by power and its finality certificate (`PROTOCOL.md` §10).

use std::collections::BTreeMap;

use crate::merkle::Digest;

use super::certificate::{Certificate, CertificateEntry};
use super::power::PowerTable;
use super::vote::Vote;

/// The strict two-thirds rule: `voted_power × 3 > total_power × 2`. Exactly two thirds is not
/// enough, and zero total power never has a quorum.
pub fn has_quorum(voted_power: u128, total_power: u128) -> bool {
    // Saturating: powers are sums of u64 over the members of a set that fits in memory, far
    // below u128::MAX / 3; should a caller pass more, a saturated product still compares
    // conservatively (a saturated total is never exceeded).
    voted_power.saturating_mul(3) > total_power.saturating_mul(2)
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
    /// Whether the round is final ([`has_quorum`]).
    pub fn is_final(&self) -> bool {
        has_quorum(self.voted_power, self.total_power)
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
    use crate::rounds::certificate::CERTIFICATE_ENTRY_LEN;
    use crate::rounds::testkit::{self, TestVerifier};
    use bitcoin::hashes::{sha256, Hash};

    const HASH: Digest = [0xcc; 32];

    fn table(verifiers: &[(TestVerifier, u64)]) -> PowerTable {
        let refs: Vec<(&TestVerifier, u64)> = verifiers.iter().map(|(v, p)| (v, *p)).collect();
        testkit::table(3, &refs)
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
