//! The sequencer's pure decisions: which rounds are due, whether a served final round's
//! certificate proves it final (checked here, not trusted), and what a recorded anchor's place
//! on Bitcoin asks for next.

use bitcoin::hashes::{sha256, Hash};
use fiamma_btc::TxStatus;
use fiamma_finality::round::anchor::Anchor;
use fiamma_finality::round::RoundHash;
use fiamma_finality::rounds::{CertificateError, PowerTable, PowerTableError};
use fiamma_proto::client::{RoundCertificateView, RoundStatus};
use fiamma_staking::context::SigningContexts;

/// Which final rounds are anchored: those from `start` on that `every` divides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Anchor the rounds divisible by this (1: every round).
    pub every: u64,
    /// The first round considered.
    pub start: u64,
}

impl Schedule {
    /// Whether round `h` is to be anchored once final.
    pub fn is_due(&self, h: u64) -> bool {
        h >= self.start && self.every != 0 && h % self.every == 0
    }
}

/// Why a served round is not anchored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The round is not final (yet, or ever).
    #[error("round {round} is {status}, not final")]
    NotFinal {
        /// The round.
        round: u64,
        /// Its status.
        status: &'static str,
    },
    /// A final round without a certificate.
    #[error("round {0} is final but the node serves no certificate")]
    NoCertificate(u64),
    /// The node's encoding of the certificate is not the encoding of its entries.
    #[error("round {0}: the served certificate encoding is not the encoding of its entries")]
    Encoding(u64),
    /// The node's digest is not `sha256` of the encoding.
    #[error("round {0}: the served certificate digest is not sha256 of its encoding")]
    Digest(u64),
    /// The active set names a verifier twice.
    #[error("round {round}: {source}")]
    ActiveSet {
        /// The round.
        round: u64,
        /// The cause.
        source: PowerTableError,
    },
    /// The served total power is not the sum of the active set.
    #[error("round {round}: served total power {served} is not the active set's {computed}")]
    TotalPower {
        /// The round.
        round: u64,
        /// As served.
        served: u64,
        /// The sum of the set.
        computed: u128,
    },
    /// The certificate does not prove the round final under its power table.
    #[error("round {round}: {source}")]
    Certificate {
        /// The round.
        round: u64,
        /// The first check that failed.
        source: CertificateError,
    },
}

/// A final round whose certificate checked: what its anchor carries and who signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedRound {
    /// The §10 anchor of the round.
    pub anchor: Anchor,
    /// The certificate's signers.
    pub signers: usize,
    /// Their power.
    pub voted_power: u128,
    /// The active set's power.
    pub total_power: u128,
}

fn status_word(status: RoundStatus) -> &'static str {
    match status {
        RoundStatus::Open => "open",
        RoundStatus::Final => "final",
        RoundStatus::Expired => "expired",
        RoundStatus::Unspecified => "of unknown status",
    }
}

/// Checks that `view` is a final round whose certificate proves it: the served encoding and
/// digest are those of the entries, and the entries are ordered, signed by members of the
/// round's active set on its vote message (under `contexts`), with more than two thirds of its
/// power.
///
/// # Errors
/// [`CheckError`] naming the first check that fails.
pub fn check(
    view: &RoundCertificateView,
    contexts: &SigningContexts,
) -> Result<CheckedRound, CheckError> {
    let round = view.round;
    if view.status != RoundStatus::Final {
        return Err(CheckError::NotFinal {
            round,
            status: status_word(view.status),
        });
    }
    let served = view
        .certificate
        .as_ref()
        .ok_or(CheckError::NoCertificate(round))?;
    let cert = &served.certificate;
    if served.encoded != cert.encode() {
        return Err(CheckError::Encoding(round));
    }
    let digest = cert.digest();
    if served.digest != digest || sha256::Hash::hash(&served.encoded).to_byte_array() != digest {
        return Err(CheckError::Digest(round));
    }
    let table = PowerTable::from_members(round, &view.active_set)
        .map_err(|source| CheckError::ActiveSet { round, source })?;
    if u128::from(view.total_power_sat) != table.total_power() {
        return Err(CheckError::TotalPower {
            round,
            served: view.total_power_sat,
            computed: table.total_power(),
        });
    }
    cert.verify(&table, contexts)
        .map_err(|source| CheckError::Certificate { round, source })?;
    let voted_power = cert
        .entries
        .iter()
        .filter_map(|e| table.power_of(&e.verifier))
        .map(u128::from)
        .sum();
    Ok(CheckedRound {
        anchor: Anchor {
            round,
            round_hash: RoundHash(view.round_hash),
            certificate_hash: digest,
        },
        signers: cert.entries.len(),
        voted_power,
        total_power: table.total_power(),
    })
}

/// Where a recorded anchor stands, and so what to do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// Neither mined nor in the mempool (never sent, dropped, or reorganised out): send the
    /// recorded bytes again.
    Rebroadcast,
    /// In the mempool: wait.
    InMempool,
    /// Mined, fewer than k deep: wait.
    Confirming(u32),
    /// k deep: done.
    Done(u32),
}

/// What a recorded anchor's status on Bitcoin asks for, with k = `confirmations`.
pub fn track(status: &TxStatus, confirmations: u32) -> Track {
    match status {
        TxStatus::Unknown => Track::Rebroadcast,
        TxStatus::InMempool => Track::InMempool,
        TxStatus::Confirmed {
            confirmations: c, ..
        } if *c >= confirmations => Track::Done(*c),
        TxStatus::Confirmed {
            confirmations: c, ..
        } => Track::Confirming(*c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::secp256k1::{Keypair, SECP256K1};
    use fiamma_finality::eots::{PublicRandomness, Signature};
    use fiamma_finality::rounds::{Certificate, CertificateEntry};
    use fiamma_proto::client::ServedCertificate;

    #[test]
    fn the_schedule_takes_every_nth_round_from_the_start() {
        let s = Schedule { every: 3, start: 4 };
        let due: Vec<u64> = (1..=12).filter(|h| s.is_due(*h)).collect();
        assert_eq!(due, vec![6, 9, 12]);
        let each = Schedule { every: 1, start: 1 };
        assert!((1..50).all(|h| each.is_due(h)));
    }

    #[test]
    fn only_k_deep_is_done() {
        let confirmed = |c| TxStatus::Confirmed {
            block_hash: bitcoin::BlockHash::all_zeros(),
            height: 1,
            confirmations: c,
            proof: bitcoin::MerkleBlock::from_block_with_predicate(
                &bitcoin::constants::genesis_block(bitcoin::Network::Regtest),
                |_| true,
            ),
        };
        assert_eq!(track(&TxStatus::Unknown, 3), Track::Rebroadcast);
        assert_eq!(track(&TxStatus::InMempool, 3), Track::InMempool);
        assert_eq!(track(&confirmed(2), 3), Track::Confirming(2));
        assert_eq!(track(&confirmed(3), 3), Track::Done(3));
    }

    fn view() -> RoundCertificateView {
        let key = Keypair::from_seckey_slice(SECP256K1, &[5; 32])
            .expect("key")
            .x_only_public_key()
            .0;
        let certificate = Certificate {
            round: 7,
            round_hash: [9; 32],
            entries: vec![CertificateEntry {
                verifier: key,
                public_randomness: PublicRandomness::from_byte_array([1; 32]),
                signature: Signature::from_byte_array([2; 32]),
            }],
        };
        RoundCertificateView {
            round: 7,
            round_hash: [9; 32],
            status: RoundStatus::Final,
            active_set: vec![(key, 10)],
            total_power_sat: 10,
            certificate: Some(ServedCertificate {
                encoded: certificate.encode(),
                digest: certificate.digest().to_vec(),
                certificate,
            }),
        }
    }

    #[test]
    fn a_served_round_that_does_not_add_up_is_refused_with_the_reason() {
        let c = SigningContexts::new("chain", "module");
        let mut open = view();
        open.status = RoundStatus::Open;
        assert!(matches!(
            check(&open, &c),
            Err(CheckError::NotFinal { status: "open", .. })
        ));
        let mut none = view();
        none.certificate = None;
        assert_eq!(check(&none, &c), Err(CheckError::NoCertificate(7)));
        let mut digest = view();
        digest.certificate.as_mut().expect("set").digest = vec![0; 32];
        assert_eq!(check(&digest, &c), Err(CheckError::Digest(7)));
        let mut encoding = view();
        encoding.certificate.as_mut().expect("set").encoded.push(0);
        assert_eq!(check(&encoding, &c), Err(CheckError::Encoding(7)));
        let mut total = view();
        total.total_power_sat = 11;
        assert!(matches!(
            check(&total, &c),
            Err(CheckError::TotalPower { .. })
        ));
        let mut twice = view();
        twice.active_set.push(twice.active_set[0]);
        assert!(matches!(
            check(&twice, &c),
            Err(CheckError::ActiveSet { .. })
        ));
        // Well formed, but the signature is not a signature on the round.
        assert!(matches!(
            check(&view(), &c),
            Err(CheckError::Certificate {
                source: CertificateError::BadSignature(_),
                ..
            })
        ));
    }
}
