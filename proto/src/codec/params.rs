//! Comparing the node's params with a role's own (the covenant member's, the staker's), field
//! by field on the wire form, so a refusal can say which fields differ.

use crate::staking::v1 as pb;

/// The names of the fields in which `ours` and `theirs` differ (the version number aside).
pub fn differing_fields(ours: &pb::Params, theirs: &pb::Params) -> Vec<&'static str> {
    macro_rules! compare {
        ($($field:ident),* $(,)?) => {{
            let mut differ = Vec::new();
            $(if ours.$field != theirs.$field {
                differ.push(stringify!($field));
            })*
            differ
        }};
    }
    compare!(
        btc_activation_height,
        covenant_pks,
        covenant_quorum,
        min_staking_value_sat,
        max_staking_value_sat,
        min_staking_time_blocks,
        max_staking_time_blocks,
        slashing_pk_script,
        min_slashing_tx_fee_sat,
        slashing_rate,
        unbonding_time_blocks,
        unbonding_fee_sat,
        btc_confirmation_depth,
        max_active_verifiers,
        min_pub_rand,
        identifiable_staking_tag,
        max_verifiers_per_delegation,
        max_pub_rand,
        max_proofs_per_round,
        max_proof_bytes,
        max_round_proof_bytes,
        pending_expiry_blocks,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_differing_field_is_named_and_equal_params_have_none() {
        let a = pb::Params {
            covenant_quorum: 3,
            slashing_rate: "0.1".into(),
            ..pb::Params::default()
        };
        assert!(differing_fields(&a, &a.clone()).is_empty());
        let mut b = a.clone();
        b.covenant_quorum = 2;
        b.slashing_rate = "0.2".into();
        b.version = 9;
        assert_eq!(
            differing_fields(&a, &b),
            vec!["covenant_quorum", "slashing_rate"]
        );
    }

    #[test]
    fn every_wire_field_is_compared() {
        // A field added to the message breaks this literal, and must join the comparison.
        let full = pb::Params {
            version: 1,
            btc_activation_height: 1,
            covenant_pks: vec![vec![1]],
            covenant_quorum: 1,
            min_staking_value_sat: 1,
            max_staking_value_sat: 1,
            min_staking_time_blocks: 1,
            max_staking_time_blocks: 1,
            slashing_pk_script: vec![1],
            min_slashing_tx_fee_sat: 1,
            slashing_rate: "1".into(),
            unbonding_time_blocks: 1,
            unbonding_fee_sat: 1,
            btc_confirmation_depth: 1,
            max_active_verifiers: 1,
            min_pub_rand: 1,
            identifiable_staking_tag: vec![1],
            max_verifiers_per_delegation: 1,
            max_pub_rand: 1,
            max_proofs_per_round: 1,
            max_proof_bytes: 1,
            max_round_proof_bytes: 1,
            pending_expiry_blocks: 1,
        };
        let empty = pb::Params::default();
        // Every field but the version is compared.
        assert_eq!(differing_fields(&full, &empty).len(), 22);
    }
}
