//! Signing contexts (PROTOCOL §6).
//!
//! `ctx(op) = hex(sha256("btcstaking/0/" + op + "/" + chain_id + "/" + module_address))`, as 64
//! ASCII characters, prefixed to the message a registrant signs. A context switched off for an
//! operation is the empty string, which is how Babylon's mainline signs.

use bitcoin::hashes::{sha256, Hash};

/// The operations that carry a signing context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SigningOp {
    /// A verifier's proof of possession.
    FpPop,
    /// A staker's proof of possession.
    StakerPop,
    /// A verifier's randomness commitment.
    FpRandCommit,
    /// A verifier's finality vote.
    FpFinVote,
    /// A jailed verifier's request to be unjailed.
    FpUnjail,
}

impl SigningOp {
    /// Every operation, in a fixed order.
    pub const ALL: [SigningOp; 5] = [
        SigningOp::FpPop,
        SigningOp::StakerPop,
        SigningOp::FpRandCommit,
        SigningOp::FpFinVote,
        SigningOp::FpUnjail,
    ];

    /// The operation's name inside the context string.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningOp::FpPop => "fp_pop",
            SigningOp::StakerPop => "staker_pop",
            SigningOp::FpRandCommit => "fp_rand_commit",
            SigningOp::FpFinVote => "fp_fin_vote",
            SigningOp::FpUnjail => "fp_unjail",
        }
    }
}

/// The node configuration that the signing contexts are derived from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SigningContexts {
    /// The chain id of the node.
    pub chain_id: String,
    /// The module address the contexts are bound to.
    pub module_address: String,
    /// Operations whose context is switched off (signed without a prefix).
    #[serde(default)]
    pub disabled: Vec<String>,
}

impl SigningContexts {
    /// Contexts on for every operation.
    pub fn new(chain_id: impl Into<String>, module_address: impl Into<String>) -> Self {
        SigningContexts {
            chain_id: chain_id.into(),
            module_address: module_address.into(),
            disabled: Vec::new(),
        }
    }

    /// Switches the context of `op` off.
    pub fn without(mut self, op: SigningOp) -> Self {
        if !self.is_disabled(op) {
            self.disabled.push(op.as_str().to_owned());
        }
        self
    }

    /// Whether the context of `op` is switched off.
    pub fn is_disabled(&self, op: SigningOp) -> bool {
        self.disabled.iter().any(|d| d == op.as_str())
    }

    /// The context prefix for `op`: 64 lower-case hex characters, or empty when switched off.
    pub fn context(&self, op: SigningOp) -> String {
        if self.is_disabled(op) {
            return String::new();
        }
        signing_context(op, &self.chain_id, &self.module_address)
    }
}

/// `ctx(op)` for the given chain id and module address: always 64 lower-case hex characters.
pub fn signing_context(op: SigningOp, chain_id: &str, module_address: &str) -> String {
    let preimage = format!(
        "btcstaking/0/{}/{}/{}",
        op.as_str(),
        chain_id,
        module_address
    );
    hex::encode(sha256::Hash::hash(preimage.as_bytes()).to_byte_array())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_is_hex_of_sha256_of_the_preimage() {
        let ctx = signing_context(SigningOp::FpFinVote, "chain", "addr");
        let expected = sha256::Hash::hash(b"btcstaking/0/fp_fin_vote/chain/addr");
        assert_eq!(ctx, hex::encode(expected.to_byte_array()));
        assert_eq!(ctx.len(), 64);
    }

    #[test]
    fn every_operation_has_its_own_context_and_unjail_can_be_switched_off() {
        let c = SigningContexts::new("c", "a");
        let all: std::collections::BTreeSet<String> =
            SigningOp::ALL.iter().map(|op| c.context(*op)).collect();
        assert_eq!(all.len(), SigningOp::ALL.len());
        assert_eq!(
            c.context(SigningOp::FpUnjail),
            hex::encode(sha256::Hash::hash(b"btcstaking/0/fp_unjail/c/a").to_byte_array())
        );
        let off = c.without(SigningOp::FpUnjail);
        assert_eq!(off.context(SigningOp::FpUnjail), "");
        assert_eq!(off.context(SigningOp::FpFinVote).len(), 64);
    }

    #[test]
    fn disabled_context_is_empty() {
        let c = SigningContexts::new("c", "a").without(SigningOp::FpPop);
        assert_eq!(c.context(SigningOp::FpPop), "");
        assert_eq!(c.context(SigningOp::StakerPop).len(), 64);
        assert_ne!(
            c.context(SigningOp::StakerPop),
            c.context(SigningOp::FpRandCommit)
        );
    }
}
