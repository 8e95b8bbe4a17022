//! The finality-side registry of verifiers: status, accepted randomness commitments and
//! liveness record, with the operations that change them (`PROTOCOL.md` §9–11).

use std::collections::{BTreeMap, BTreeSet};

use bitcoin::hashes::{sha256, Hash, HashEngine};
use fiamma_staking::context::{SigningContexts, SigningOp};
use secp256k1::{schnorr, Message, XOnlyPublicKey, SECP256K1};

use crate::commitment::RandomnessCommitment;

use super::commit::{check_commitment, CommitRandomnessError, CommitmentRules};
use super::evidence::Slashing;
use super::liveness::{LivenessRules, SigningWindow};
use super::power::{Candidate, PowerTable, VerifierStatus};

/// `sha256(ctx("fp_unjail") ‖ pk ‖ u64be(since_round))` (`PROTOCOL.md` §6, §11): what a
/// jailed verifier signs (BIP-340) to be unjailed. Binding `since` keeps a signature from
/// unjailing a later jailing; the context keeps it from being valid on another network or as
/// another operation's message.
pub fn unjail_message(contexts: &SigningContexts, pk: &XOnlyPublicKey, since: u64) -> [u8; 32] {
    let mut engine = sha256::Hash::engine();
    engine.input(contexts.context(SigningOp::FpUnjail).as_bytes());
    engine.input(&pk.serialize());
    engine.input(&since.to_be_bytes());
    sha256::Hash::from_engine(engine).to_byte_array()
}

/// What the finality module keeps about one verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierRecord {
    status: VerifierStatus,
    /// Sorted by start; never overlapping, so also sorted by last round.
    commitments: Vec<RandomnessCommitment>,
    window: SigningWindow,
}

impl VerifierRecord {
    /// Rebuilds a record from stored values; the commitments may come in any order.
    ///
    /// They must not overlap, as every commitment accepted through
    /// [`Verifiers::commit_randomness`] does not: the values are trusted, not re-checked, and
    /// [`VerifierRecord::commitment_covering`] assumes at most one commitment per round.
    pub fn restore(
        status: VerifierStatus,
        mut commitments: Vec<RandomnessCommitment>,
        window: SigningWindow,
    ) -> Self {
        commitments.sort_by_key(RandomnessCommitment::start);
        VerifierRecord {
            status,
            commitments,
            window,
        }
    }

    /// The verifier's status.
    pub fn status(&self) -> VerifierStatus {
        self.status
    }

    /// Its accepted commitments, ordered by first round.
    pub fn commitments(&self) -> &[RandomnessCommitment] {
        &self.commitments
    }

    /// The commitment covering `round`, if any.
    pub fn commitment_covering(&self, round: u64) -> Option<&RandomnessCommitment> {
        // Commitments do not overlap, so the first one ending at or after `round` is the only
        // candidate.
        let i = self.commitments.partition_point(|c| c.last() < round);
        self.commitments.get(i).filter(|c| c.covers(round))
    }

    /// Its liveness record.
    pub fn signing_window(&self) -> &SigningWindow {
        &self.window
    }
}

/// A verifier registered twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The key is registered already.
    #[error("verifier {verifier} is already registered")]
    AlreadyRegistered {
        /// The key.
        verifier: XOnlyPublicKey,
    },
}

/// Why a verifier could not be unjailed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnjailError {
    /// No such verifier.
    #[error("verifier {verifier} is not registered")]
    UnknownVerifier {
        /// The key.
        verifier: XOnlyPublicKey,
    },
    /// It is not jailed (active or slashed).
    #[error("verifier {verifier} is not jailed but {status}")]
    NotJailed {
        /// The key.
        verifier: XOnlyPublicKey,
        /// Its status.
        status: VerifierStatus,
    },
    /// The signature is not the verifier's on [`unjail_message`] for its jailing.
    #[error("unjail signature is not valid for verifier {verifier} jailed at round {since}")]
    BadSignature {
        /// The key.
        verifier: XOnlyPublicKey,
        /// The round it was jailed at, which the signature must bind.
        since: u64,
    },
    /// Its jail time is not over.
    #[error(
        "verifier {verifier} may not be unjailed in round {round}; it may ask from round {allowed_from}"
    )]
    TooEarly {
        /// The key.
        verifier: XOnlyPublicKey,
        /// The current round.
        round: u64,
        /// The first round in which unjailing is allowed.
        allowed_from: u64,
    },
}

/// Why slashing evidence could not be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SlashError {
    /// No such verifier.
    #[error("verifier {verifier} is not registered")]
    UnknownVerifier {
        /// The key.
        verifier: XOnlyPublicKey,
    },
    /// It is slashed already.
    #[error("verifier {verifier} was already slashed in round {since}")]
    AlreadySlashed {
        /// The key.
        verifier: XOnlyPublicKey,
        /// The round of the first slashing.
        since: u64,
    },
}

/// All verifiers known to the finality module, ordered by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verifiers {
    /// Keyed by the key's bytes (cheap comparisons, same order as `XOnlyPublicKey`).
    records: BTreeMap<[u8; 32], (XOnlyPublicKey, VerifierRecord)>,
}

impl Verifiers {
    /// An empty registry.
    pub fn new() -> Self {
        Verifiers::default()
    }

    /// Adds a newly registered verifier, ACTIVE, without commitments.
    ///
    /// # Errors
    /// [`RegisterError::AlreadyRegistered`] when the key is known.
    pub fn register(&mut self, verifier: XOnlyPublicKey) -> Result<(), RegisterError> {
        if self.records.contains_key(&verifier.serialize()) {
            return Err(RegisterError::AlreadyRegistered { verifier });
        }
        self.restore(
            verifier,
            VerifierRecord::restore(VerifierStatus::Active, Vec::new(), SigningWindow::default()),
        );
        Ok(())
    }

    /// Puts back a stored record, replacing any record for the key.
    pub fn restore(&mut self, verifier: XOnlyPublicKey, record: VerifierRecord) {
        self.records
            .insert(verifier.serialize(), (verifier, record));
    }

    /// The record of `verifier`.
    pub fn get(&self, verifier: &XOnlyPublicKey) -> Option<&VerifierRecord> {
        self.records.get(&verifier.serialize()).map(|(_, r)| r)
    }

    /// All records, ordered by key.
    pub fn iter(&self) -> impl Iterator<Item = (&XOnlyPublicKey, &VerifierRecord)> {
        self.records.values().map(|(k, r)| (k, r))
    }

    fn record_mut(&mut self, verifier: &XOnlyPublicKey) -> Option<&mut VerifierRecord> {
        self.records.get_mut(&verifier.serialize()).map(|(_, r)| r)
    }

    /// Checks a randomness commitment ([`check_commitment`]) and stores it.
    ///
    /// # Errors
    /// [`CommitRandomnessError`]; nothing changes on error.
    pub fn commit_randomness(
        &mut self,
        verifier: &XOnlyPublicKey,
        commitment: RandomnessCommitment,
        signature: &schnorr::Signature,
        current_round: u64,
        rules: &CommitmentRules,
        contexts: &SigningContexts,
    ) -> Result<(), CommitRandomnessError> {
        let record = self
            .record_mut(verifier)
            .ok_or(CommitRandomnessError::UnknownVerifier {
                verifier: *verifier,
            })?;
        check_commitment(
            verifier,
            &commitment,
            signature,
            &record.commitments,
            current_round,
            rules,
            contexts,
        )?;
        let at = record
            .commitments
            .partition_point(|c| c.start() < commitment.start());
        record.commitments.insert(at, commitment);
        Ok(())
    }

    /// The power table of `round`. `powers` maps each verifier to the sum of its ACTIVE
    /// delegations (from the staking module); keys not registered here are ignored, and
    /// registered verifiers missing from `powers` have no power.
    pub fn power_table(
        &self,
        round: u64,
        powers: &BTreeMap<XOnlyPublicKey, u64>,
        max_active_verifiers: u32,
    ) -> PowerTable {
        let powers: BTreeMap<[u8; 32], u64> =
            powers.iter().map(|(k, p)| (k.serialize(), *p)).collect();
        let candidates = self.records.iter().map(|(bytes, (key, record))| Candidate {
            key: *key,
            status: record.status,
            power: powers.get(bytes).copied().unwrap_or(0),
            commitments: &record.commitments,
        });
        PowerTable::select(round, candidates, max_active_verifiers)
    }

    /// Records, for every ACTIVE member of `table`, whether it is among `signers` of that
    /// round, and jails those that missed too many rounds (their window starts afresh).
    /// Returns the newly jailed verifiers, ordered by key.
    ///
    /// Call it once per round, when votes on the round are no longer accepted, with the
    /// voters whose vote counted ([`super::RoundVotes::signers`]); a second call for the same
    /// round would count it twice.
    pub fn record_round(
        &mut self,
        table: &PowerTable,
        signers: &BTreeSet<XOnlyPublicKey>,
        rules: &LivenessRules,
    ) -> Vec<XOnlyPublicKey> {
        let mut jailed = Vec::new();
        for (key, _) in table.members() {
            let Some(record) = self.record_mut(key) else {
                continue;
            };
            if record.status != VerifierStatus::Active {
                continue;
            }
            if record.window.record(signers.contains(key), rules) {
                record.status = VerifierStatus::Jailed {
                    since: table.round(),
                };
                record.window.clear();
                jailed.push(*key);
            }
        }
        jailed
    }

    /// Unjails `verifier` in `round`, allowed from `since + jail_duration` on, with its
    /// BIP-340 `signature` on [`unjail_message`] for the round it was jailed at. The checks
    /// run in the order: known, jailed, signature, jail time over.
    ///
    /// # Errors
    /// [`UnjailError`]; nothing changes on error.
    pub fn unjail(
        &mut self,
        verifier: &XOnlyPublicKey,
        signature: &schnorr::Signature,
        round: u64,
        rules: &LivenessRules,
        contexts: &SigningContexts,
    ) -> Result<(), UnjailError> {
        let record = self
            .record_mut(verifier)
            .ok_or(UnjailError::UnknownVerifier {
                verifier: *verifier,
            })?;
        let VerifierStatus::Jailed { since } = record.status else {
            return Err(UnjailError::NotJailed {
                verifier: *verifier,
                status: record.status,
            });
        };
        let msg = Message::from_digest(unjail_message(contexts, verifier, since));
        SECP256K1
            .verify_schnorr(signature, &msg, verifier)
            .map_err(|_| UnjailError::BadSignature {
                verifier: *verifier,
                since,
            })?;
        let allowed_from = since.saturating_add(rules.jail_duration());
        if round < allowed_from {
            return Err(UnjailError::TooEarly {
                verifier: *verifier,
                round,
                allowed_from,
            });
        }
        record.status = VerifierStatus::Active;
        Ok(())
    }

    /// Marks the verifier of `slashing` SLASHED in `round`: it has no power in any power table
    /// built afterwards.
    ///
    /// # Errors
    /// [`SlashError`]; nothing changes on error.
    pub fn slash(&mut self, slashing: &Slashing, round: u64) -> Result<(), SlashError> {
        let verifier = slashing.verifier;
        let record = self
            .record_mut(&verifier)
            .ok_or(SlashError::UnknownVerifier { verifier })?;
        if let VerifierStatus::Slashed { since } = record.status {
            return Err(SlashError::AlreadySlashed { verifier, since });
        }
        record.status = VerifierStatus::Slashed { since: round };
        record.window.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rounds::evidence::selective_slashing;
    use crate::rounds::testkit::{contexts, TestVerifier};
    use bitcoin::hashes::Hash;
    use bitcoin::Txid;

    const COMMIT: CommitmentRules = CommitmentRules {
        min_pub_rand: 2,
        max_pub_rand: 100_000,
        max_start_ahead: 1_000,
    };

    fn registered(vs: &[&TestVerifier]) -> Verifiers {
        let mut reg = Verifiers::new();
        for v in vs {
            reg.register(v.key()).expect("new key");
            let sig = v.commitment().sign(&v.keypair, &contexts(), &[0; 32]);
            reg.commit_randomness(&v.key(), *v.commitment(), &sig, 0, &COMMIT, &contexts())
                .expect("valid commitment");
        }
        reg
    }

    fn powers(vs: &[(&TestVerifier, u64)]) -> BTreeMap<XOnlyPublicKey, u64> {
        vs.iter().map(|(v, p)| (v.key(), *p)).collect()
    }

    #[test]
    fn registering_twice_and_committing_unregistered_are_refused() {
        let v = TestVerifier::new(1, 0, 4);
        let mut reg = registered(&[&v]);
        assert_eq!(
            reg.register(v.key()),
            Err(RegisterError::AlreadyRegistered { verifier: v.key() })
        );
        let stranger = TestVerifier::new(2, 0, 4);
        let sig = stranger
            .commitment()
            .sign(&stranger.keypair, &contexts(), &[0; 32]);
        assert_eq!(
            reg.commit_randomness(
                &stranger.key(),
                *stranger.commitment(),
                &sig,
                0,
                &COMMIT,
                &contexts()
            ),
            Err(CommitRandomnessError::UnknownVerifier {
                verifier: stranger.key()
            })
        );
    }

    #[test]
    fn commitments_are_kept_in_order_and_found_by_round() {
        let v = TestVerifier::new(1, 20, 4);
        let mut reg = registered(&[&v]);
        let earlier = TestVerifier::new(1, 10, 5);
        let sig = earlier.commitment().sign(&v.keypair, &contexts(), &[0; 32]);
        reg.commit_randomness(
            &v.key(),
            *earlier.commitment(),
            &sig,
            0,
            &COMMIT,
            &contexts(),
        )
        .expect("no overlap");
        let record = reg.get(&v.key()).expect("registered");
        let starts: Vec<u64> = record.commitments().iter().map(|c| c.start()).collect();
        assert_eq!(starts, [10, 20]);
        for (round, start) in [
            (10, Some(10)),
            (14, Some(10)),
            (20, Some(20)),
            (23, Some(20)),
        ] {
            assert_eq!(record.commitment_covering(round).map(|c| c.start()), start);
        }
        for round in [9, 15, 19, 24] {
            assert_eq!(record.commitment_covering(round), None);
        }
        // The same range again overlaps and changes nothing.
        assert!(matches!(
            reg.commit_randomness(
                &v.key(),
                *earlier.commitment(),
                &sig,
                0,
                &COMMIT,
                &contexts()
            ),
            Err(CommitRandomnessError::Overlap { .. })
        ));
        assert_eq!(reg.get(&v.key()).map(|r| r.commitments().len()), Some(2));
    }

    #[test]
    fn power_table_ignores_unregistered_keys_and_missing_power() {
        let (a, b, c) = (
            TestVerifier::new(1, 0, 4),
            TestVerifier::new(2, 0, 4),
            TestVerifier::new(3, 0, 4),
        );
        let reg = registered(&[&a, &b]);
        let table = reg.power_table(1, &powers(&[(&a, 5), (&c, 9)]), 10);
        assert_eq!(table.members().collect::<Vec<_>>(), [(&a.key(), 5)]);
    }

    #[test]
    fn missing_too_many_rounds_jails_until_the_jail_duration_has_passed() {
        let (a, b) = (TestVerifier::new(1, 0, 100), TestVerifier::new(2, 0, 100));
        let mut reg = registered(&[&a, &b]);
        let rules = LivenessRules::new(4, 2, 10).expect("valid rules");
        let p = powers(&[(&a, 5), (&b, 5)]);
        let only_a: BTreeSet<XOnlyPublicKey> = [a.key()].into();
        for round in 1..=2 {
            let table = reg.power_table(round, &p, 10);
            assert!(reg.record_round(&table, &only_a, &rules).is_empty());
        }
        let table = reg.power_table(3, &p, 10);
        assert_eq!(reg.record_round(&table, &only_a, &rules), [b.key()]);
        assert_eq!(
            reg.get(&b.key()).map(VerifierRecord::status),
            Some(VerifierStatus::Jailed { since: 3 })
        );
        assert!(!reg.power_table(4, &p, 10).contains(&b.key()));

        let sig = b.unjail_signature(3);
        let ctx = contexts();
        assert_eq!(
            reg.unjail(&b.key(), &sig, 12, &rules, &ctx),
            Err(UnjailError::TooEarly {
                verifier: b.key(),
                round: 12,
                allowed_from: 13
            })
        );
        assert_eq!(
            reg.unjail(&a.key(), &a.unjail_signature(3), 13, &rules, &ctx),
            Err(UnjailError::NotJailed {
                verifier: a.key(),
                status: VerifierStatus::Active
            })
        );
        let stranger = TestVerifier::new(3, 0, 4);
        assert_eq!(
            reg.unjail(
                &stranger.key(),
                &stranger.unjail_signature(3),
                13,
                &rules,
                &ctx
            ),
            Err(UnjailError::UnknownVerifier {
                verifier: stranger.key()
            })
        );
        // Signed by another key, for another jailing, or in another signing context.
        let bad_signature = Err(UnjailError::BadSignature {
            verifier: b.key(),
            since: 3,
        });
        for wrong in [
            a.unjail_signature(3),
            b.unjail_signature(2),
            SECP256K1.sign_schnorr_no_aux_rand(
                &Message::from_digest(unjail_message(
                    &ctx.clone().without(SigningOp::FpUnjail),
                    &b.key(),
                    3,
                )),
                &b.keypair,
            ),
        ] {
            assert_eq!(
                reg.unjail(&b.key(), &wrong, 13, &rules, &ctx),
                bad_signature
            );
        }
        assert_eq!(
            reg.get(&b.key()).map(VerifierRecord::status),
            Some(VerifierStatus::Jailed { since: 3 })
        );
        assert_eq!(reg.unjail(&b.key(), &sig, 13, &rules, &ctx), Ok(()));
        let back = reg.power_table(13, &p, 10);
        assert!(back.contains(&b.key()));
        // It starts from a clean window: one more miss does not jail it again.
        assert!(reg.record_round(&back, &only_a, &rules).is_empty());
    }

    #[test]
    fn a_slashed_verifier_loses_its_power_and_cannot_be_slashed_or_unjailed_again() {
        let (a, b) = (TestVerifier::new(1, 0, 100), TestVerifier::new(2, 0, 100));
        let mut reg = registered(&[&a, &b]);
        let p = powers(&[(&a, 5), (&b, 7)]);
        let slashing = selective_slashing(
            &b.key(),
            b.keypair.secret_key(),
            Txid::from_byte_array([1; 32]),
        )
        .expect("its key");
        assert_eq!(reg.slash(&slashing, 4), Ok(()));
        assert_eq!(
            reg.slash(&slashing, 5),
            Err(SlashError::AlreadySlashed {
                verifier: b.key(),
                since: 4
            })
        );
        let table = reg.power_table(5, &p, 10);
        assert_eq!((table.len(), table.total_power()), (1, 5));
        let rules = LivenessRules::new(4, 2, 0).expect("valid rules");
        assert_eq!(
            reg.unjail(&b.key(), &b.unjail_signature(4), 100, &rules, &contexts()),
            Err(UnjailError::NotJailed {
                verifier: b.key(),
                status: VerifierStatus::Slashed { since: 4 }
            })
        );
        let mut empty = Verifiers::new();
        assert_eq!(
            empty.slash(&slashing, 4),
            Err(SlashError::UnknownVerifier { verifier: b.key() })
        );
    }
}
