//! Bitcoin Core's JSON-RPC error codes and the error every method returns.

use serde_json::{json, Value};

/// Bitcoin Core's JSON-RPC error codes used by the served methods.
pub mod code {
    /// Unparseable request body.
    pub const PARSE_ERROR: i64 = -32700;
    /// The request is not a JSON-RPC request object.
    pub const INVALID_REQUEST: i64 = -32600;
    /// The method does not exist.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Wrong number of parameters (Core answers with the method's help text).
    pub const MISC_ERROR: i64 = -1;
    /// A parameter has the wrong JSON type.
    pub const TYPE_ERROR: i64 = -3;
    /// Unknown block, transaction or address.
    pub const INVALID_ADDRESS_OR_KEY: i64 = -5;
    /// A parameter has the right type but an invalid value.
    pub const INVALID_PARAMETER: i64 = -8;
    /// Transaction or block bytes do not decode.
    pub const DESERIALIZATION_ERROR: i64 = -22;
    /// Core's internal error while processing.
    pub const INTERNAL_ERROR: i64 = -32603;
}

/// A JSON-RPC error as Bitcoin Core reports it: a code and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rpc error {code}: {message}")]
pub struct RpcError {
    /// Bitcoin Core's code.
    pub code: i64,
    /// The message.
    pub message: String,
}

impl RpcError {
    /// An error with `code` and `message`.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
        }
    }

    /// -8, invalid parameter.
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(code::INVALID_PARAMETER, message)
    }

    /// -5, unknown block, transaction or address.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(code::INVALID_ADDRESS_OR_KEY, message)
    }

    /// -32603: the embedded chain failed underneath.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(code::INTERNAL_ERROR, message.to_string())
    }

    /// The JSON `error` object.
    pub fn to_json(&self) -> Value {
        json!({ "code": self.code, "message": self.message })
    }

    /// The HTTP status Bitcoin Core uses for this error in a JSON-RPC 1.0 reply.
    pub fn http_status(&self) -> u16 {
        match self.code {
            code::INVALID_REQUEST => 400,
            code::METHOD_NOT_FOUND => 404,
            _ => 500,
        }
    }
}

impl From<super::super::regtest::ChainError> for RpcError {
    fn from(e: super::super::regtest::ChainError) -> Self {
        use super::super::regtest::ChainError;
        match e {
            ChainError::UnknownBlock(_) => RpcError::not_found("Block not found"),
            ChainError::InvalidateGenesis | ChainError::InvalidatePersistent => {
                RpcError::new(code::MISC_ERROR, e.to_string())
            }
            e => RpcError::internal(e),
        }
    }
}
