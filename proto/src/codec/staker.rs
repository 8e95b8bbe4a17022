//! The staker service's requests read into domain values, each field checked (the service
//! trusts nothing it did not check, even on loopback).

use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::{Address, Amount, FeeRate, Network};

use super::{bad, key, FieldError};
use crate::staker::v1 as pb;

/// A stake request: verifier, amount, staking time and fee rate (`None`: estimate).
///
/// # Errors
/// [`FieldError`] naming the field that does not decode.
pub fn stake_request(
    r: &pb::StakeRequest,
) -> Result<(XOnlyPublicKey, Amount, u32, Option<FeeRate>), FieldError> {
    Ok((
        key("verifier_btc_pk", &r.verifier_btc_pk)?,
        amount("amount_sat", r.amount_sat)?,
        r.staking_time_blocks,
        fee_rate("fee_rate_sat_vb", r.fee_rate_sat_vb)?,
    ))
}

/// A payment request: address on `network`, amount, fee rate (`None`: estimate).
///
/// # Errors
/// [`FieldError`] naming the field that does not decode.
pub fn send_request(
    r: &pb::WalletSendRequest,
    network: Network,
) -> Result<(Address, Amount, Option<FeeRate>), FieldError> {
    let address = r
        .address
        .parse::<Address<_>>()
        .map_err(|e| bad("address", e.to_string()))?
        .require_network(network)
        .map_err(|e| bad("address", e.to_string()))?;
    Ok((
        address,
        amount("amount_sat", r.amount_sat)?,
        fee_rate("fee_rate_sat_vb", r.fee_rate_sat_vb)?,
    ))
}

/// A positive amount of satoshis.
///
/// # Errors
/// [`FieldError`] for zero or a negative value.
pub fn amount(field: &'static str, sat: i64) -> Result<Amount, FieldError> {
    u64::try_from(sat)
        .ok()
        .filter(|s| *s > 0)
        .map(Amount::from_sat)
        .ok_or_else(|| bad(field, format!("{sat} is not a positive number of satoshis")))
}

/// A fee rate in sat/vB; 0 means "estimate".
///
/// # Errors
/// [`FieldError`] for a rate above 100000 sat/vB.
pub fn fee_rate(field: &'static str, sat_vb: u64) -> Result<Option<FeeRate>, FieldError> {
    if sat_vb == 0 {
        return Ok(None);
    }
    if sat_vb > 100_000 {
        return Err(bad(field, format!("{sat_vb} sat/vB is above 100000")));
    }
    Ok(FeeRate::from_sat_per_vb(sat_vb))
}

/// Satoshis as the wire's int64 (saturating: no amount of bitcoin reaches it).
pub fn sat(amount: Amount) -> i64 {
    i64::try_from(amount.to_sat()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_fields_are_named() {
        let r = pb::StakeRequest {
            verifier_btc_pk: vec![1; 31],
            amount_sat: 1,
            staking_time_blocks: 10,
            fee_rate_sat_vb: 0,
        };
        assert_eq!(
            stake_request(&r).expect_err("short key").field,
            "verifier_btc_pk"
        );
        let r = pb::StakeRequest {
            verifier_btc_pk: vec![],
            ..r
        };
        assert!(stake_request(&r).is_err());
        assert_eq!(amount("a", -5).expect_err("negative").field, "a");
        assert_eq!(amount("a", 0).expect_err("zero").field, "a");
        assert_eq!(fee_rate("f", 0).expect("estimate"), None);
        assert!(fee_rate("f", 100_001).is_err());
        let send = pb::WalletSendRequest {
            address: "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq".into(),
            amount_sat: 1000,
            fee_rate_sat_vb: 1,
        };
        assert_eq!(
            send_request(&send, Network::Regtest)
                .expect_err("mainnet address on regtest")
                .field,
            "address"
        );
    }
}
