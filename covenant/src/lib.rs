//! Schnorr adaptor signatures and the covenant committee's signing (`PROTOCOL.md` §5).
