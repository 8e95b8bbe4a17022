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
    let mut counted: BTreeMap<XOnlyPublicKey, (u64, CertificateEntry)> = BTreeMap::new();
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
            .entry(vote.voter)
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
