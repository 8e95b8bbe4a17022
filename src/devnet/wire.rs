//! The client side of the node's wire format: the requests the parties send, and the
//! registration a covenant member or slasher reads back from a served delegation. Fields are
//! decoded with the node's own decoders, so a client refuses exactly what the node would.

use bitcoin::secp256k1::Keypair;
use fiamma_proto::staking::v1 as pb;
use fiamma_staking::account::{Account, ACCOUNT_HRP};
use fiamma_staking::context::SigningContexts;

pub use fiamma_proto::codec::registration_of;

use crate::node::grpc::convert::{self as c, FieldError};

/// A registrant's account: the HASH160 of its x-only BTC key, so each devnet key has one.
pub use fiamma_staker::plan::account_of;

/// The bech32 form of `account`.
///
/// # Errors
/// [`FieldError`] when the prefix cannot encode (never for `fmma`).
pub fn account_text(account: &Account) -> Result<String, FieldError> {
    account.to_bech32(ACCOUNT_HRP).map_err(|e| FieldError {
        field: "account",
        reason: e.to_string(),
    })
}

/// CreateVerifier for `keypair`, its account bound by a BIP-0340 proof of possession.
///
/// # Errors
/// [`FieldError`] when the account cannot be encoded.
pub fn create_verifier_request(
    keypair: &Keypair,
    moniker: &str,
    contexts: &SigningContexts,
) -> Result<pb::CreateVerifierRequest, FieldError> {
    let (key, _) = keypair.x_only_public_key();
    c::create_verifier_request(
        keypair,
        &account_of(&key),
        pb::Description {
            moniker: moniker.to_owned(),
            details: "fiamma devnet verifier".to_owned(),
            ..pb::Description::default()
        },
        "0.05",
        contexts,
        c::PopFormat::Bip340,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devnet::setup;
    use fiamma_staking::pop::PopRole;

    #[test]
    fn a_verifier_request_carries_a_pop_the_node_accepts() {
        let kp = setup::devnet_keypair("verifier/A");
        let contexts = setup::contexts();
        let r = create_verifier_request(&kp, "A", &contexts).expect("request");
        let account = c::account("account", &r.account).expect("bech32 account");
        let pop = c::pop("pop", r.pop.as_ref()).expect("bip340 pop");
        let key = c::key("btc_pk", &r.btc_pk).expect("key");
        pop.verify(&contexts, PopRole::Verifier, &account, &key)
            .expect("valid proof of possession");
    }

    #[test]
    fn a_registration_read_back_from_a_served_delegation_is_the_one_sent() {
        use bitcoin::hashes::Hash as _;
        use fiamma_staking::registration::{build_registration, StakerChoices};
        use fiamma_staking::taproot::TaprootOutput;

        let params = setup::params().expect("params");
        let contexts = setup::contexts();
        let staker = setup::devnet_keypair("staker/1");
        let verifier = setup::devnet_keypair("verifier/A").x_only_public_key().0;
        let keys = fiamma_staking::keys::StakingKeys::new(
            staker.x_only_public_key().0,
            &[verifier],
            &params.covenant_pks,
            params.covenant_quorum,
        )
        .expect("keys");
        let output = TaprootOutput::staking(&keys, setup::STAKING_TIME).expect("output");
        let staking_tx = bitcoin::Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: bitcoin::absolute::LockTime::ZERO,
            input: vec![bitcoin::TxIn {
                previous_output: bitcoin::OutPoint::new(bitcoin::Txid::from_byte_array([3; 32]), 1),
                ..bitcoin::TxIn::default()
            }],
            output: vec![output.txout(bitcoin::Amount::from_sat(1_000_000))],
        };
        let reg = build_registration(
            &params,
            &contexts,
            StakerChoices {
                staker: &staker,
                account: account_of(&staker.x_only_public_key().0),
                verifier_pks: vec![verifier],
                staking_tx,
                staking_output_index: 0,
                staking_time: setup::STAKING_TIME,
                slashing_fee: setup::SLASHING_FEE,
            },
        )
        .expect("registration");
        let sent = c::create_delegation_request(&reg).expect("request");
        // The node serves back what it stored, with its own fields added.
        let served = pb::Delegation {
            staking_txid: reg.staking_tx.compute_txid().to_string(),
            staker_account: sent.staker_account,
            staker_btc_pk: sent.staker_btc_pk,
            verifier_btc_pk: sent.verifier_btc_pk,
            staking_time_blocks: sent.staking_time_blocks,
            staking_value_sat: sent.staking_value_sat,
            staking_tx: sent.staking_tx,
            staking_output_index: sent.staking_output_index,
            slashing_tx: sent.slashing_tx,
            staker_slashing_sig: sent.staker_slashing_sig,
            unbonding_tx: sent.unbonding_tx,
            unbonding_time_blocks: sent.unbonding_time_blocks,
            unbonding_slashing_tx: sent.unbonding_slashing_tx,
            staker_unbonding_slashing_sig: sent.staker_unbonding_slashing_sig,
            pop: sent.pop,
            status: pb::DelegationStatus::Pending.into(),
            ..pb::Delegation::default()
        };
        let read = registration_of(&served).expect("decodes");
        assert_eq!(read, reg);
        let checked = fiamma_staking::delegation::validate_delegation(&params, &contexts, &read)
            .expect("passes the rules");
        fiamma_covenant::delegation::DelegationSighashes::of_registration(&read, &checked.keys)
            .expect("sighashes");
        let mut no_pop = served.clone();
        no_pop.pop = None;
        assert_eq!(registration_of(&no_pop).expect_err("no pop").field, "pop");
    }
}
