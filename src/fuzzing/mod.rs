//! The properties the fuzz targets check, one function per decoder that takes bytes from the
//! network, shared by the `cargo fuzz` targets in `fuzz/` and the seed regression test
//! `tests/fuzz_seeds.rs` (which runs on stable in an ordinary `cargo test`).
//!
//! Each function takes arbitrary bytes, runs them through the same decoding the node applies
//! to a request, and panics (which libFuzzer reports as a crash) when a property fails:
//! - decoding never panics, overflows or allocates by a forged length: it gives a value or an
//!   error;
//! - where an encoding exists, what decodes encodes back (to the same bytes when the encoding
//!   is canonical, else to a value that decodes to the same value);
//! - the checks the node runs next on decoded values (signatures, Merkle proofs, Groth16
//!   verification, delegation validation) do not panic either.
//!
//! [`TARGETS`] names every check, as the fuzz targets and the seed directories are named.

mod bitcoin_bytes;
mod crypto;
mod json_rpc;
mod requests;

pub use bitcoin_bytes::{inclusion_proof, transaction};
pub use crypto::{adaptor_signature, groth16, merkle_proof};
pub use json_rpc::json_rpc;
pub use requests::{finality_request, registration, staking_request};

/// A check: panics when `data` breaks a property of its decoder.
pub type Check = fn(&[u8]);

/// Every check, by the name of its fuzz target (`fuzz/fuzz_targets/<name>.rs`) and its seed
/// directory (`fuzz/seeds/<name>/`).
pub const TARGETS: &[(&str, Check)] = &[
    ("transaction", transaction),
    ("registration", registration),
    ("adaptor_signature", adaptor_signature),
    ("groth16", groth16),
    ("merkle_proof", merkle_proof),
    ("inclusion_proof", inclusion_proof),
    ("staking_request", staking_request),
    ("finality_request", finality_request),
    ("json_rpc", json_rpc),
];

/// Splits `data` into a first part whose length is given by the two bytes in front of it
/// (little-endian, cut short at the end of `data`) and the rest: how a check that needs
/// several byte strings reads them from one fuzz input.
fn split(data: &[u8]) -> (&[u8], &[u8]) {
    let (len, rest) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
        _ => (0, data),
    };
    rest.split_at(len.min(rest.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_reads_a_length_prefixed_part_and_the_rest() {
        assert_eq!(split(&[2, 0, 7, 8, 9]), (&[7u8, 8][..], &[9u8][..]));
        assert_eq!(split(&[9, 0, 7]), (&[7u8][..], &[][..]));
        assert_eq!(split(&[1]), (&[][..], &[1u8][..]));
    }
}
