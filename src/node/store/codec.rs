//! Conversions between protocol values and their column encodings.
//!
//! Heights and small counts are `u32` in the protocol and `INTEGER` in PostgreSQL, values are
//! satoshis in `BIGINT`, keys and hashes are `BYTEA` in internal byte order. Every conversion
//! from a column checks its range, so a corrupt row is reported instead of misread.

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::{BlockHash, Txid};

use super::StoreError;

/// `u32` as a column value; fails above `i32::MAX` (far beyond any BTC height or time).
pub(crate) fn int(column: &'static str, value: u32) -> Result<i32, StoreError> {
    i32::try_from(value).map_err(|_| StoreError::OutOfRange {
        column,
        value: value.to_string(),
    })
}

/// A column value as `u32`; negative values are corrupt.
pub(crate) fn uint(column: &'static str, value: i32) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt {
        column,
        reason: format!("negative value {value}"),
    })
}

/// An optional column value as `u32`.
pub(crate) fn opt_uint(
    column: &'static str,
    value: Option<i32>,
) -> Result<Option<u32>, StoreError> {
    value.map(|v| uint(column, v)).transpose()
}

/// An optional `u32` as a column value.
pub(crate) fn opt_int(column: &'static str, value: Option<u32>) -> Result<Option<i32>, StoreError> {
    value.map(|v| int(column, v)).transpose()
}

/// A satoshi amount as a column value.
pub(crate) fn sat(column: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange {
        column,
        value: value.to_string(),
    })
}

/// A satoshi column as `u64`.
pub(crate) fn unsat(column: &'static str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        column,
        reason: format!("negative amount {value}"),
    })
}

/// An event sequence number as `u64`.
pub(crate) fn seq(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        column: "sequence",
        reason: format!("negative sequence {value}"),
    })
}

/// An x-only key column.
pub(crate) fn xonly(column: &'static str, bytes: &[u8]) -> Result<XOnlyPublicKey, StoreError> {
    XOnlyPublicKey::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        column,
        reason: format!("bad x-only key {}: {e}", hex::encode(bytes)),
    })
}

fn hash32(column: &'static str, bytes: &[u8]) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(bytes).map_err(|_| StoreError::Corrupt {
        column,
        reason: format!("expected 32 bytes, found {}", bytes.len()),
    })
}

/// A transaction id column (internal byte order).
pub(crate) fn txid(column: &'static str, bytes: &[u8]) -> Result<Txid, StoreError> {
    hash32(column, bytes).map(Txid::from_byte_array)
}

/// A block hash column (internal byte order).
pub(crate) fn block_hash(column: &'static str, bytes: &[u8]) -> Result<BlockHash, StoreError> {
    hash32(column, bytes).map(BlockHash::from_byte_array)
}
