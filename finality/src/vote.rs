//! The message a verifier signs with EOTS to vote for a round (`PROTOCOL.md` §10).

use fiamma_staking::context::{SigningContexts, SigningOp};

/// The vote message `ctx("fp_fin_vote") ‖ u64be(round) ‖ round_hash`. EOTS hashes it with
/// sha256 before signing ([`crate::eots::sign`]).
pub fn vote_message(contexts: &SigningContexts, round: u64, round_hash: &[u8; 32]) -> Vec<u8> {
    let ctx = contexts.context(SigningOp::FpFinVote);
    let mut msg = Vec::with_capacity(ctx.len() + 8 + 32);
    msg.extend_from_slice(ctx.as_bytes());
    msg.extend_from_slice(&round.to_be_bytes());
    msg.extend_from_slice(round_hash);
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_is_context_round_and_hash() {
        let contexts = SigningContexts::new("chain", "addr");
        let msg = vote_message(&contexts, 0x0102, &[7; 32]);
        assert_eq!(msg.len(), 64 + 8 + 32);
        assert_eq!(
            &msg[..64],
            contexts.context(SigningOp::FpFinVote).as_bytes()
        );
        assert_eq!(&msg[64..72], &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(&msg[72..], &[7; 32]);
        let off = contexts.without(SigningOp::FpFinVote);
        assert_eq!(vote_message(&off, 0x0102, &[7; 32]), msg[64..].to_vec());
    }
}
