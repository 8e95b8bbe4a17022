//! The node's own records to wire messages. The field decoders and the domain conversions
//! shared with clients are the one wire codec, [`fiamma_proto::codec`], re-exported here.

use fiamma_proto::staking::v1 as pb;

pub use fiamma_proto::codec::*;

use crate::node::store::{
    CovenantSigs, Delegation, Description, Event, EventKind, Pop, Verifier, VotingPowerEntry,
};

/// Description limits, as in Cosmos SDK staking: moniker, identity, website, contact, details.
const DESCRIPTION_LIMITS: [(&str, usize); 5] = [
    ("description.moniker", 70),
    ("description.identity", 3000),
    ("description.website", 140),
    ("description.security_contact", 140),
    ("description.details", 280),
];

/// A verifier description within the length limits, with a non-empty moniker.
pub fn description(d: Option<&pb::Description>) -> Result<Description, FieldError> {
    let d = d.cloned().unwrap_or_default();
    let values = [
        &d.moniker,
        &d.identity,
        &d.website,
        &d.security_contact,
        &d.details,
    ];
    for ((field, limit), value) in DESCRIPTION_LIMITS.iter().zip(values) {
        if value.chars().count() > *limit {
            return Err(bad(
                field,
                format!(
                    "{} characters, at most {limit} allowed",
                    value.chars().count()
                ),
            ));
        }
    }
    if d.moniker.trim().is_empty() {
        return Err(bad(
            "description.moniker",
            "missing; a verifier needs a moniker",
        ));
    }
    Ok(Description {
        moniker: d.moniker,
        identity: d.identity,
        website: d.website,
        security_contact: d.security_contact,
        details: d.details,
    })
}

/// The wire form of a stored proof of possession (one that cannot be read is passed on as
/// stored).
fn pop_to_pb(p: &Pop) -> pb::ProofOfPossession {
    match p.proof() {
        Ok(proof) => proof_to_pb(&proof),
        Err(_) => pb::ProofOfPossession {
            pop_type: p.kind.code().into(),
            signature: p.signature.clone(),
            bip322_address: String::new(),
        },
    }
}

/// The wire form of a verifier.
pub fn verifier_to_pb(v: &Verifier) -> pb::Verifier {
    let r = &v.registration;
    pb::Verifier {
        btc_pk: r.btc_pk.serialize().to_vec(),
        account: r.account.clone(),
        description: Some(pb::Description {
            moniker: r.description.moniker.clone(),
            identity: r.description.identity.clone(),
            website: r.description.website.clone(),
            security_contact: r.description.security_contact.clone(),
            details: r.description.details.clone(),
        }),
        commission: r.commission.clone(),
        pop: Some(pop_to_pb(&r.pop)),
        status: match v.state.slashed_height() {
            Some(_) => pb::VerifierStatus::Slashed,
            None => pb::VerifierStatus::Registered,
        }
        .into(),
        slashed_btc_height: v.state.slashed_height().unwrap_or(0),
    }
}

fn stored_covenant_sigs_to_pb(s: &CovenantSigs) -> pb::CovenantSignatures {
    pb::CovenantSignatures {
        covenant_pk: s.covenant_pk.serialize().to_vec(),
        slashing_adaptor_sig: s.slashing_adaptor_sig.clone(),
        unbonding_sig: s.unbonding_sig.clone(),
        unbonding_slashing_adaptor_sig: s.unbonding_slashing_adaptor_sig.clone(),
    }
}

/// The wire form of a delegation.
pub fn delegation_to_pb(d: &Delegation) -> pb::Delegation {
    let r = &d.registration;
    pb::Delegation {
        staking_txid: r.staking_txid.to_string(),
        staker_account: r.staker_account.clone(),
        staker_btc_pk: r.staker_btc_pk.serialize().to_vec(),
        verifier_btc_pk: r.verifier_btc_pk.serialize().to_vec(),
        staking_time_blocks: r.staking_time_blocks,
        staking_value_sat: sat(r.staking_value_sat),
        staking_tx: r.staking_tx.clone(),
        staking_output_index: r.staking_output_index,
        slashing_tx: r.slashing_tx.clone(),
        staker_slashing_sig: r.staker_slashing_sig.clone(),
        unbonding_tx: r.unbonding_tx.clone(),
        unbonding_time_blocks: r.unbonding_time_blocks,
        unbonding_slashing_tx: r.unbonding_slashing_tx.clone(),
        staker_unbonding_slashing_sig: r.staker_unbonding_slashing_sig.clone(),
        params_version: r.params_version,
        status: status_to_pb(d.state.status()).into(),
        start_height: d.state.start_height().unwrap_or(0),
        end_height: d.state.end_height().unwrap_or(0),
        covenant_sigs: d
            .covenant_sigs
            .iter()
            .map(stored_covenant_sigs_to_pb)
            .collect(),
        spending_txid: d.spending_txid.map(|t| t.to_string()).unwrap_or_default(),
        pop: Some(pop_to_pb(&r.pop)),
    }
}

/// The wire form of a voting power entry.
pub fn voting_power_to_pb(e: &VotingPowerEntry) -> pb::VotingPower {
    pb::VotingPower {
        verifier_btc_pk: e.verifier.serialize().to_vec(),
        power_sat: sat(e.power_sat),
    }
}

/// The wire form of an event.
pub fn event_to_pb(e: &Event) -> pb::Event {
    let kind = match &e.kind {
        EventKind::DelegationStatusChanged {
            staking_txid,
            verifier,
            from,
            to,
        } => pb::event::Kind::DelegationStatusChanged(pb::DelegationStatusChanged {
            staking_txid: staking_txid.to_string(),
            verifier_btc_pk: verifier.serialize().to_vec(),
            from: from
                .map_or(pb::DelegationStatus::Unspecified, status_to_pb)
                .into(),
            to: status_to_pb(*to).into(),
            btc_height: e.btc_height,
        }),
        EventKind::VerifierCreated { verifier } => {
            pb::event::Kind::VerifierCreated(pb::VerifierCreated {
                btc_pk: verifier.serialize().to_vec(),
            })
        }
        EventKind::VerifierSlashed { verifier, reason } => {
            pb::event::Kind::VerifierSlashed(pb::VerifierSlashed {
                btc_pk: verifier.serialize().to_vec(),
                btc_height: e.btc_height,
                reason: reason.as_str().to_owned(),
            })
        }
    };
    pb::Event {
        sequence: e.sequence,
        kind: Some(kind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commission_is_canonical_and_bounded() {
        for (input, canonical) in [
            ("0", "0"),
            ("0.0500", "0.05"),
            ("1.000", "1"),
            ("00.1", "0.1"),
        ] {
            assert_eq!(commission("commission", input).as_deref(), Ok(canonical));
        }
        for input in ["", "1.0001", "2", "0.12345", "-0.1", "0,1", ".5", "0.5e1"] {
            assert!(commission("commission", input).is_err(), "{input:?}");
        }
    }

    #[test]
    fn echoed_values_are_cut() {
        assert_eq!(echo("abc"), "\"abc\"");
        let long = "é".repeat(10_000);
        let shown = echo(&long);
        assert!(shown.len() < 300, "{shown}");
        assert!(shown.ends_with("(20000 bytes)"), "{shown}");
        for e in [
            txid("staking_txid", &"z".repeat(1 << 20)),
            txid("staking_txid", &"z".repeat(64)),
        ] {
            assert!(e.expect_err("refused").to_string().len() < 300);
        }
        let e = commission("commission", &"9".repeat(1 << 20)).expect_err("refused");
        assert!(e.to_string().len() < 300, "{e}");
        let e = account("account", &"x".repeat(1 << 20)).expect_err("refused");
        assert!(e.to_string().len() < 300, "{e}");
        let e = int64("from_sequence", u64::MAX).expect_err("refused");
        assert_eq!(e.field, "from_sequence");
        assert_eq!(int64("from_sequence", i64::MAX as u64), Ok(i64::MAX as u64));
    }

    #[test]
    fn txids_must_be_64_hex_characters() {
        let id = "aa".repeat(32);
        assert!(txid("staking_txid", &id).is_ok());
        assert_eq!(
            txid("staking_txid", "abc").map_err(|e| e.field),
            Err("staking_txid")
        );
        assert!(txid("staking_txid", &"zz".repeat(32)).is_err());
    }

    #[test]
    fn pages_default_cap_and_decode_tokens() {
        let decode = |b: &[u8]| (b.len() == 2).then(|| b.to_vec());
        assert_eq!(page(None, decode), Ok((None, DEFAULT_PAGE_SIZE)));
        let too_big = pb::PageRequest {
            page_token: String::new(),
            page_size: MAX_PAGE_SIZE + 1,
        };
        assert!(page(Some(&too_big), decode).is_err());
        let token = pb::PageRequest {
            page_token: "abcd".into(),
            page_size: 5,
        };
        assert_eq!(page(Some(&token), decode), Ok((Some(vec![0xab, 0xcd]), 5)));
        let bad_token = pb::PageRequest {
            page_token: "xyz".into(),
            page_size: 5,
        };
        assert!(page(Some(&bad_token), decode).is_err());
    }

    #[test]
    fn descriptions_need_a_moniker_and_respect_limits() {
        assert!(description(None).is_err());
        let long = pb::Description {
            moniker: "m".repeat(71),
            ..Default::default()
        };
        assert_eq!(
            description(Some(&long)).map_err(|e| e.field),
            Err("description.moniker")
        );
        let ok = pb::Description {
            moniker: "verifier one".into(),
            ..Default::default()
        };
        assert!(description(Some(&ok)).is_ok());
    }
}
