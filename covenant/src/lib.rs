//! Schnorr adaptor signatures and the covenant committee's signing (`PROTOCOL.md` §5).
//!
//! [`adaptor`] is the signature scheme itself: EncSign, EncVerify, Decrypt and Extract over
//! secp256k1, with the 65-byte wire encoding. Everything here is pure: values in, values or
//! typed errors out; randomness is passed in by the caller.

pub mod adaptor;
