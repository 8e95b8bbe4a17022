//! Schnorr adaptor signatures and the covenant committee's signing (`PROTOCOL.md` §5).
//!
//! - [`adaptor`]: the signature scheme itself (EncSign, EncVerify, Decrypt, Extract) and its
//!   65-byte wire encoding.
//! - [`delegation`]: the three transactions a covenant member signs for a delegation, and
//!   their sighashes.
//! - [`signing`]: the covenant side, a member's signatures for a delegation.
//! - [`verification`]: checking a member's full signature set.
//! - [`slashing`]: the slasher side, turning an extracted verifier key into a complete
//!   slashing witness.
//! - [`evidence`]: the reverse, recovering a verifier's key from a slashing witness it
//!   broadcast itself (selective slashing).
//!
//! Everything here is pure: values in, values or typed errors out; randomness is passed in by
//! the caller.

pub mod adaptor;
pub mod delegation;
pub mod evidence;
pub mod signing;
pub mod slashing;
pub mod verification;
