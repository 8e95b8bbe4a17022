//! The slasher's decisions, pure: no I/O, no clock. The caller reads the node and the chain,
//! passes what it saw, and acts on (and records) what comes back.
//!
//! - [`SlashableDelegation`]: a served delegation checked against its params, with the
//!   covenant adaptor signatures encrypted to its verifier's key;
//! - [`checked_key`]: the key the node published is the verifier's;
//! - [`SlashableDelegation::revealed_key`]: the key a verifier reveals by broadcasting a
//!   slashing transaction itself (selective slashing);
//! - [`decide`]: which output to slash, given who spends the staking and unbonding outputs;
//! - [`classify`]: what a broadcast's answer means for the slasher.

use bitcoin::secp256k1::{SecretKey, XOnlyPublicKey, SECP256K1};
use bitcoin::{Amount, OutPoint, ScriptBuf, Transaction, Txid};
use fiamma_btc::{BroadcastError, OutPointStatus, RejectionKind};
use fiamma_covenant::adaptor::AdaptorSignature;
use fiamma_covenant::delegation::{DelegationError, DelegationSighashes, SlashingTx};
use fiamma_covenant::slashing::{signed_slashing_tx, SlashError};
use fiamma_proto::client::CovenantAdaptorSigs;
use fiamma_staking::keys::{KeyError, StakingKeys};
use fiamma_staking::registration::Registration;
use rand::{CryptoRng, RngCore};

/// Why a served delegation cannot be slashed as served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DelegationRefused {
    /// The key sets of the registration and the params are invalid together.
    #[error("delegation {txid}: key sets: {source}")]
    Keys {
        /// The staking txid.
        txid: Txid,
        /// Why.
        source: KeyError,
    },
    /// The registration's outputs are not the protocol outputs of its keys.
    #[error("delegation {txid}: {source}")]
    Outputs {
        /// The staking txid.
        txid: Txid,
        /// Why.
        source: DelegationError,
    },
    /// It is not a delegation to the slashed verifier.
    #[error("delegation {txid} is not delegated to verifier {verifier}")]
    OtherVerifier {
        /// The staking txid.
        txid: Txid,
        /// The slashed verifier.
        verifier: XOnlyPublicKey,
    },
}

/// The key the node published is not the slashed verifier's key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the key the node published for verifier {verifier} is not its key")]
pub struct KeyMismatch {
    /// The slashed verifier.
    pub verifier: XOnlyPublicKey,
}

/// `key` when it is a secret key of `verifier` (the extracted scalar may be d or n − d:
/// either signs for the x-only key).
///
/// # Errors
/// [`KeyMismatch`] when it is another key.
pub fn checked_key(verifier: &XOnlyPublicKey, key: SecretKey) -> Result<SecretKey, KeyMismatch> {
    if key.x_only_public_key(SECP256K1).0 == *verifier {
        Ok(key)
    } else {
        Err(KeyMismatch {
            verifier: *verifier,
        })
    }
}

/// A delegation of a slashed verifier, checked: its outputs are the protocol outputs of its
/// keys, so the sighashes the adaptor signatures were made over are known.
#[derive(Debug, Clone)]
pub struct SlashableDelegation {
    /// The staking txid.
    pub staking_txid: Txid,
    /// The registration.
    pub registration: Registration,
    keys: StakingKeys,
    sighashes: DelegationSighashes,
    covenant_sigs: Vec<CovenantAdaptorSigs>,
}

impl SlashableDelegation {
    /// `registration` of a delegation to `verifier`, under the committee `covenant_pks` with
    /// quorum `quorum`, with the committee's adaptor signatures.
    ///
    /// # Errors
    /// [`DelegationRefused`].
    pub fn new(
        verifier: &XOnlyPublicKey,
        registration: Registration,
        covenant_pks: &[XOnlyPublicKey],
        quorum: u32,
        covenant_sigs: Vec<CovenantAdaptorSigs>,
    ) -> Result<Self, DelegationRefused> {
        let txid = registration.staking_tx.compute_txid();
        if !registration.verifier_pks.contains(verifier) {
            return Err(DelegationRefused::OtherVerifier {
                txid,
                verifier: *verifier,
            });
        }
        let keys = StakingKeys::new(
            registration.staker_pk,
            &registration.verifier_pks,
            covenant_pks,
            quorum,
        )
        .map_err(|source| DelegationRefused::Keys { txid, source })?;
        let sighashes = DelegationSighashes::of_registration(&registration, &keys)
            .map_err(|source| DelegationRefused::Outputs { txid, source })?;
        Ok(SlashableDelegation {
            staking_txid: txid,
            registration,
            keys,
            sighashes,
            covenant_sigs,
        })
    }

    /// The staking output.
    pub fn staking_outpoint(&self) -> OutPoint {
        OutPoint::new(self.staking_txid, self.registration.staking_output_index)
    }

    /// The unbonding transaction's id.
    pub fn unbonding_txid(&self) -> Txid {
        self.registration.unbonding_tx.compute_txid()
    }

    /// The unbonding output.
    pub fn unbonding_outpoint(&self) -> OutPoint {
        OutPoint::new(self.unbonding_txid(), 0)
    }

    /// The unsigned slashing transaction of `which` output.
    pub fn unsigned_slashing_tx(&self, which: SlashingTx) -> &Transaction {
        match which {
            SlashingTx::Staking => &self.registration.slashing_tx,
            SlashingTx::Unbonding => &self.registration.unbonding_slashing_tx,
        }
    }

    /// The id of the slashing transaction of `which` output: the same for every slasher, since
    /// a witness does not change a txid.
    pub fn slashing_txid(&self, which: SlashingTx) -> Txid {
        self.unsigned_slashing_tx(which).compute_txid()
    }

    /// The slashing transaction of `which` output, signed: q covenant adaptor signatures
    /// decrypted with `key`, the verifier's signature made with it, and the staker's
    /// pre-signature (PROTOCOL §4, §5). `rng` gives the aux randomness of the verifier's
    /// signature, so two calls give two witnesses of one txid: sign once, record, then broadcast
    /// what was recorded.
    ///
    /// # Errors
    /// [`SlashError`] when the key is not the verifier's, fewer than q signatures decrypt, or
    /// the staker's pre-signature does not verify.
    pub fn signed_slashing_tx<R: RngCore + CryptoRng + ?Sized>(
        &self,
        key: &SecretKey,
        which: SlashingTx,
        rng: &mut R,
    ) -> Result<Transaction, SlashError> {
        let adaptor_sigs: Vec<(XOnlyPublicKey, AdaptorSignature)> = self
            .covenant_sigs
            .iter()
            .map(|s| {
                (
                    s.covenant,
                    match which {
                        SlashingTx::Staking => s.slashing,
                        SlashingTx::Unbonding => s.unbonding_slashing,
                    },
                )
            })
            .collect();
        let staker_sig = match which {
            SlashingTx::Staking => &self.registration.staker_slashing_sig,
            SlashingTx::Unbonding => &self.registration.staker_unbonding_slashing_sig,
        };
        signed_slashing_tx(
            key,
            &self.keys,
            &self.sighashes,
            which,
            self.unsigned_slashing_tx(which),
            &adaptor_sigs,
            staker_sig,
            rng,
        )
    }

    /// What the slashing transaction of `which` pays: the slashing script and amount, and the
    /// change back to the staker.
    pub fn payout(&self, which: SlashingTx) -> Payout {
        let tx = self.unsigned_slashing_tx(which);
        let (to, slashed) = tx
            .output
            .first()
            .map_or((ScriptBuf::new(), Amount::ZERO), |o| {
                (o.script_pubkey.clone(), o.value)
            });
        Payout {
            to,
            slashed,
            change: tx.output.get(1).map_or(Amount::ZERO, |o| o.value),
        }
    }
}

impl SlashableDelegation {
    /// The key of `verifier` revealed by `signed`, a slashing transaction of `which` output
    /// that the verifier broadcast itself (selective slashing, PROTOCOL §5, §11): its witness
    /// carries covenant signatures decrypted from the adaptor signatures encrypted to the
    /// verifier, and Extract on any of them gives the verifier's key. `None` when no witness
    /// item extracts to it (then the transaction was not signed that way).
    pub fn revealed_key(
        &self,
        verifier: &XOnlyPublicKey,
        which: SlashingTx,
        signed: &Transaction,
    ) -> Option<SecretKey> {
        let witness = signed.input.first()?.witness.iter();
        for item in witness.filter(|item| item.len() == 64) {
            let Ok(signature) = bitcoin::secp256k1::schnorr::Signature::from_slice(item) else {
                continue;
            };
            for s in &self.covenant_sigs {
                let presig = match which {
                    SlashingTx::Staking => &s.slashing,
                    SlashingTx::Unbonding => &s.unbonding_slashing,
                };
                if let Ok(t) = presig.extract(&signature) {
                    if t.x_only_public_key() == *verifier {
                        return Some(t.to_secret_key());
                    }
                }
            }
        }
        None
    }
}

/// What a slashing transaction pays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payout {
    /// The slashing script.
    pub to: ScriptBuf,
    /// What it pays to the slashing script.
    pub slashed: Amount,
    /// What goes back to the staker (after the unbonding time).
    pub change: Amount,
}

/// What to do with one delegation, given who spends its outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Its staking transaction is not known to the chain (never broadcast, or dropped):
    /// nothing to slash yet.
    NotOnChain,
    /// The output is unspent: broadcast the slashing transaction of `which` output.
    Slash(SlashingTx),
    /// A slashing transaction (this slasher's or anyone's: they share the txid) spends the
    /// output; `height` is its block, `None` while in the mempool.
    Slashed {
        /// The output slashed.
        which: SlashingTx,
        /// The slashing transaction.
        txid: Txid,
        /// Its block's height.
        height: Option<u32>,
    },
    /// Another transaction spends the output (a withdrawal after the timelock): out of reach.
    Escaped {
        /// The output it left.
        which: SlashingTx,
        /// The spending transaction.
        spender: Txid,
        /// Its block's height, `None` while in the mempool.
        height: Option<u32>,
    },
}

fn spender(status: &OutPointStatus) -> Option<(Txid, Option<u32>)> {
    match status {
        OutPointStatus::SpentInMempool { txid, .. } => Some((*txid, None)),
        OutPointStatus::Spent { txid, height, .. } => Some((*txid, Some(*height))),
        OutPointStatus::Unknown | OutPointStatus::Unspent { .. } => None,
    }
}

/// Which output of `d` to slash. `staking` is the staking output's status; `unbonding` the
/// unbonding output's, asked for only when the staking output is spent by the unbonding
/// transaction (`None` otherwise). When the staker's unbonding wins the race with a staking
/// slashing transaction, the unbonding output is the one to slash.
pub fn decide(
    d: &SlashableDelegation,
    staking: &OutPointStatus,
    unbonding: Option<&OutPointStatus>,
) -> Decision {
    let (spender_txid, height) = match staking {
        OutPointStatus::Unknown => return Decision::NotOnChain,
        OutPointStatus::Unspent { .. } => return Decision::Slash(SlashingTx::Staking),
        spent => match spender(spent) {
            Some(s) => s,
            None => return Decision::NotOnChain,
        },
    };
    if spender_txid == d.slashing_txid(SlashingTx::Staking) {
        return Decision::Slashed {
            which: SlashingTx::Staking,
            txid: spender_txid,
            height,
        };
    }
    if spender_txid != d.unbonding_txid() {
        return Decision::Escaped {
            which: SlashingTx::Staking,
            spender: spender_txid,
            height,
        };
    }
    match unbonding {
        // The unbonding transaction spends the staking output but its own output is not
        // known yet (asked in between two blocks): look again next time.
        None | Some(OutPointStatus::Unknown) => Decision::NotOnChain,
        Some(OutPointStatus::Unspent { .. }) => Decision::Slash(SlashingTx::Unbonding),
        Some(spent) => match spender(spent) {
            Some((txid, height)) if txid == d.slashing_txid(SlashingTx::Unbonding) => {
                Decision::Slashed {
                    which: SlashingTx::Unbonding,
                    txid,
                    height,
                }
            }
            Some((spender, height)) => Decision::Escaped {
                which: SlashingTx::Unbonding,
                spender,
                height,
            },
            None => Decision::NotOnChain,
        },
    }
}

/// Confirmations of a transaction mined at `height` when the tip is at `tip`.
pub fn depth(tip: u32, height: u32) -> u32 {
    tip.checked_sub(height).map_or(0, |d| d.saturating_add(1))
}

/// What a broadcast's answer means for the slasher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BroadcastVerdict {
    /// In the mempool now.
    Accepted,
    /// The transaction (this witness or another slasher's, one txid) is already in the
    /// mempool or mined: nothing to do but wait.
    AlreadyThere,
    /// Another transaction spends the output (the staker's unbonding won the race, or is in
    /// the mempool): decide again from the chain.
    Conflict(String),
    /// The Bitcoin node could not be asked: try again.
    Unreachable(String),
    /// The node refused the transaction itself: it will not be accepted as it is.
    Refused(String),
}

/// Classifies a broadcast's result.
pub fn classify(result: &Result<Txid, BroadcastError>) -> BroadcastVerdict {
    match result {
        Ok(_) => BroadcastVerdict::Accepted,
        Err(BroadcastError::Backend(e)) => BroadcastVerdict::Unreachable(e.to_string()),
        Err(BroadcastError::Rejected(r)) => match r.kind {
            RejectionKind::AlreadyConfirmed => BroadcastVerdict::AlreadyThere,
            RejectionKind::MissingOrSpentInputs => BroadcastVerdict::Conflict(r.to_string()),
            RejectionKind::Rejected
                if r.reason.starts_with("txn-same-nonwitness-data-in-mempool")
                    || r.reason.starts_with("txn-already-in-mempool")
                    || r.reason.starts_with("txn-already-known") =>
            {
                BroadcastVerdict::AlreadyThere
            }
            RejectionKind::Rejected if r.reason.starts_with("txn-mempool-conflict") => {
                BroadcastVerdict::Conflict(r.to_string())
            }
            RejectionKind::Rejected | RejectionKind::Decode | RejectionKind::FeeAboveMaximum => {
                BroadcastVerdict::Refused(r.to_string())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use bitcoin::secp256k1::Keypair;
    use fiamma_btc::{BackendError, Rejection};
    use fiamma_covenant::signing::sign_delegation;
    use fiamma_staking::account::Account;
    use fiamma_staking::context::SigningContexts;
    use fiamma_staking::params::{Params, ResourceLimits};
    use fiamma_staking::registration::{build_registration, StakerChoices};
    use fiamma_staking::taproot::TaprootOutput;

    fn keypair(i: u8) -> Keypair {
        Keypair::from_seckey_slice(SECP256K1, &[i; 32]).expect("key")
    }

    fn x(i: u8) -> XOnlyPublicKey {
        keypair(i).x_only_public_key().0
    }

    fn params() -> Params {
        Params {
            covenant_pks: vec![x(30), x(31), x(32)],
            covenant_quorum: 2,
            min_staking_value_sat: 10_000,
            max_staking_value_sat: 10_000_000_000,
            min_staking_time_blocks: 10,
            max_staking_time_blocks: 65_535,
            slashing_pk_script: ScriptBuf::from_bytes([&[0x00, 0x14][..], &[0x5a; 20]].concat()),
            min_slashing_tx_fee_sat: 1_000,
            slashing_rate: "0.1".parse().expect("rate"),
            unbonding_time_blocks: 5,
            unbonding_fee_sat: 1_000,
            btc_confirmation_depth: 2,
            max_active_verifiers: 100,
            min_pub_rand: 10,
            identifiable_staking_tag: None,
            btc_activation_height: 0,
            max_verifiers_per_delegation: 1,
            limits: ResourceLimits::default(),
        }
    }

    /// A delegation of staker 1 to verifier 2, co-signed by covenant members 30 and 31.
    fn delegation() -> SlashableDelegation {
        let p = params();
        let keys = StakingKeys::new(x(1), &[x(2)], &p.covenant_pks, 2).expect("keys");
        let staking_tx = Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: bitcoin::absolute::LockTime::ZERO,
            input: vec![bitcoin::TxIn {
                previous_output: OutPoint::new(Txid::from_byte_array([3; 32]), 1),
                ..bitcoin::TxIn::default()
            }],
            output: vec![TaprootOutput::staking(&keys, 100)
                .expect("output")
                .txout(Amount::from_sat(1_000_000))],
        };
        let reg = build_registration(
            &p,
            &SigningContexts::new("fiamma-test", "fmma1staking"),
            StakerChoices {
                staker: &keypair(1),
                account: Account([1; 20]),
                verifier_pks: vec![x(2)],
                staking_tx,
                staking_output_index: 0,
                staking_time: 100,
                slashing_fee: Amount::from_sat(2_000),
            },
        )
        .expect("registration");
        let sighashes = DelegationSighashes::of_registration(&reg, &keys).expect("sighashes");
        let sigs = [30, 31]
            .iter()
            .map(|i| {
                let s = sign_delegation(&keypair(*i), &sighashes, &[x(2)], &mut rand::thread_rng())
                    .expect("signs");
                CovenantAdaptorSigs {
                    covenant: x(*i),
                    slashing: s.slashing[0].signature,
                    unbonding_slashing: s.unbonding_slashing[0].signature,
                }
            })
            .collect();
        SlashableDelegation::new(&x(2), reg, &p.covenant_pks, 2, sigs).expect("slashable")
    }

    fn spent(txid: Txid, height: Option<u32>) -> OutPointStatus {
        match height {
            Some(height) => OutPointStatus::Spent {
                txid,
                vin: 0,
                height,
            },
            None => OutPointStatus::SpentInMempool { txid, vin: 0 },
        }
    }

    #[test]
    fn the_unspent_output_is_the_one_slashed() {
        let d = delegation();
        let unspent = OutPointStatus::Unspent { confirmations: 3 };
        assert_eq!(
            decide(&d, &OutPointStatus::Unknown, None),
            Decision::NotOnChain
        );
        assert_eq!(
            decide(&d, &unspent, None),
            Decision::Slash(SlashingTx::Staking)
        );
        // The staker's unbonding won: the unbonding output is slashed, in the mempool or mined.
        for height in [None, Some(7)] {
            let by_unbonding = spent(d.unbonding_txid(), height);
            assert_eq!(
                decide(&d, &by_unbonding, Some(&unspent)),
                Decision::Slash(SlashingTx::Unbonding)
            );
            assert_eq!(
                decide(&d, &by_unbonding, None),
                Decision::NotOnChain,
                "the unbonding output's status was not asked"
            );
        }
        let slashing = d.slashing_txid(SlashingTx::Staking);
        assert_eq!(
            decide(&d, &spent(slashing, Some(9)), None),
            Decision::Slashed {
                which: SlashingTx::Staking,
                txid: slashing,
                height: Some(9)
            }
        );
        let unbonding_slashing = d.slashing_txid(SlashingTx::Unbonding);
        assert_eq!(
            decide(
                &d,
                &spent(d.unbonding_txid(), Some(7)),
                Some(&spent(unbonding_slashing, None))
            ),
            Decision::Slashed {
                which: SlashingTx::Unbonding,
                txid: unbonding_slashing,
                height: None
            }
        );
        // A withdrawal after the timelock is out of reach.
        let other = Txid::from_byte_array([9; 32]);
        assert_eq!(
            decide(&d, &spent(other, Some(5)), None),
            Decision::Escaped {
                which: SlashingTx::Staking,
                spender: other,
                height: Some(5)
            }
        );
        assert_eq!(
            decide(
                &d,
                &spent(d.unbonding_txid(), Some(5)),
                Some(&spent(other, None))
            ),
            Decision::Escaped {
                which: SlashingTx::Unbonding,
                spender: other,
                height: None
            }
        );
    }

    #[test]
    fn the_key_signs_both_slashing_transactions_and_another_key_does_not() {
        let d = delegation();
        let key = keypair(2).secret_key();
        for which in SlashingTx::ALL {
            let a = d
                .signed_slashing_tx(&key, which, &mut rand::thread_rng())
                .expect("signed");
            let b = d
                .signed_slashing_tx(&key.negate(), which, &mut rand::thread_rng())
                .expect("n - d signs for the same x-only key");
            // One txid, two witnesses: why a slasher records before it broadcasts.
            assert_eq!(a.compute_txid(), d.slashing_txid(which));
            assert_eq!(b.compute_txid(), a.compute_txid());
            assert_ne!(a.compute_wtxid(), b.compute_wtxid());
        }
        assert!(d
            .signed_slashing_tx(
                &keypair(5).secret_key(),
                SlashingTx::Staking,
                &mut rand::thread_rng()
            )
            .is_err());
        assert_eq!(checked_key(&x(2), key.negate()), Ok(key.negate()));
        assert!(checked_key(&x(2), keypair(5).secret_key()).is_err());
        let payout = d.payout(SlashingTx::Staking);
        assert_eq!(payout.to, params().slashing_pk_script);
        assert_eq!(payout.slashed, Amount::from_sat(100_000));
    }

    #[test]
    fn a_slashing_transaction_the_verifier_broadcast_reveals_its_key() {
        let d = delegation();
        let key = keypair(2).secret_key();
        for which in SlashingTx::ALL {
            let signed = d
                .signed_slashing_tx(&key, which, &mut rand::thread_rng())
                .expect("signed");
            let revealed = d.revealed_key(&x(2), which, &signed).expect("revealed");
            assert_eq!(checked_key(&x(2), revealed), Ok(revealed));
            // Without the decrypted covenant signatures, nothing is revealed.
            let mut bare = signed.clone();
            bare.input[0].witness = bitcoin::Witness::new();
            assert_eq!(d.revealed_key(&x(2), which, &bare), None);
        }
        let staking = d
            .signed_slashing_tx(&key, SlashingTx::Staking, &mut rand::thread_rng())
            .expect("signed");
        assert_eq!(d.revealed_key(&x(5), SlashingTx::Staking, &staking), None);
    }

    #[test]
    fn a_delegation_to_another_verifier_or_under_another_committee_is_refused() {
        let d = delegation();
        let p = params();
        let e = SlashableDelegation::new(&x(9), d.registration.clone(), &p.covenant_pks, 2, vec![])
            .expect_err("other verifier");
        assert!(matches!(e, DelegationRefused::OtherVerifier { .. }), "{e}");
        let e = SlashableDelegation::new(
            &x(2),
            d.registration.clone(),
            &[x(30), x(31), x(33)],
            2,
            vec![],
        )
        .expect_err("other committee");
        assert!(matches!(e, DelegationRefused::Outputs { .. }), "{e}");
    }

    #[test]
    fn broadcast_answers_are_told_apart() {
        let txid = Txid::from_byte_array([1; 32]);
        let rejected = |kind, reason: &str| {
            Err(BroadcastError::Rejected(Rejection {
                txid,
                kind,
                reason: reason.to_owned(),
            }))
        };
        assert_eq!(classify(&Ok(txid)), BroadcastVerdict::Accepted);
        assert_eq!(
            classify(&rejected(RejectionKind::AlreadyConfirmed, "x")),
            BroadcastVerdict::AlreadyThere
        );
        assert_eq!(
            classify(&rejected(
                RejectionKind::Rejected,
                "txn-same-nonwitness-data-in-mempool"
            )),
            BroadcastVerdict::AlreadyThere
        );
        assert!(matches!(
            classify(&rejected(
                RejectionKind::Rejected,
                "txn-mempool-conflict, x already spent by y"
            )),
            BroadcastVerdict::Conflict(_)
        ));
        assert!(matches!(
            classify(&rejected(RejectionKind::MissingOrSpentInputs, "missing")),
            BroadcastVerdict::Conflict(_)
        ));
        assert!(matches!(
            classify(&rejected(
                RejectionKind::Rejected,
                "mandatory-script-verify-flag-failed"
            )),
            BroadcastVerdict::Refused(_)
        ));
        assert!(matches!(
            classify(&Err(BroadcastError::Backend(BackendError::Transport(
                "down".into()
            )))),
            BroadcastVerdict::Unreachable(_)
        ));
        assert_eq!(depth(10, 10), 1);
        assert_eq!(depth(12, 10), 3);
        assert_eq!(depth(9, 10), 0);
    }
}
