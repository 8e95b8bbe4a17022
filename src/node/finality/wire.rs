//! The finality service's field decoders live in the one wire codec, shared with the clients.

pub use fiamma_proto::codec::finality::*;
