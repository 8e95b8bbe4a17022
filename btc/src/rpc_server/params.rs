//! Positional or named JSON-RPC parameters, read with Bitcoin Core's error codes.

use std::str::FromStr;

use serde_json::Value;

use super::error::{code, RpcError};

/// The parameters of one call, positional after resolving names.
#[derive(Debug, Clone)]
pub struct Params {
    values: Vec<Value>,
}

/// Bitcoin Core's name for the JSON type of `v`.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_error(v: &Value, expected: &str) -> RpcError {
    RpcError::new(
        code::TYPE_ERROR,
        format!(
            "JSON value of type {} is not of expected type {expected}",
            type_name(v)
        ),
    )
}

impl Params {
    /// Reads `params` (absent, an array, or an object keyed by `names`) for a method whose
    /// parameters are `names`, the first `required` of which must be present.
    pub fn parse(
        method: &str,
        params: Option<&Value>,
        names: &[&str],
        required: usize,
    ) -> Result<Self, RpcError> {
        let values = match params {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(values)) => values.clone(),
            Some(Value::Object(map)) => {
                if let Some(unknown) = map.keys().find(|k| !names.contains(&k.as_str())) {
                    return Err(RpcError::invalid_parameter(format!(
                        "Unknown named parameter {unknown}"
                    )));
                }
                let mut values: Vec<Value> = names
                    .iter()
                    .map(|n| map.get(*n).cloned().unwrap_or(Value::Null))
                    .collect();
                while values.last() == Some(&Value::Null) {
                    values.pop();
                }
                values
            }
            Some(other) => {
                return Err(RpcError::new(
                    code::INVALID_REQUEST,
                    format!(
                        "Params must be an array or object, not {}",
                        type_name(other)
                    ),
                ))
            }
        };
        let present = values
            .iter()
            .take(required)
            .filter(|v| !v.is_null())
            .count();
        if values.len() > names.len() || present < required {
            return Err(RpcError::new(
                code::MISC_ERROR,
                format!("{method} {}", names.join(" ")),
            ));
        }
        Ok(Params { values })
    }

    /// The value at `i`, `None` when absent or null.
    pub fn get(&self, i: usize) -> Option<&Value> {
        self.values.get(i).filter(|v| !v.is_null())
    }

    /// A required string.
    pub fn str(&self, i: usize) -> Result<&str, RpcError> {
        match self.get(i) {
            Some(Value::String(s)) => Ok(s),
            Some(v) => Err(type_error(v, "string")),
            None => Err(type_error(&Value::Null, "string")),
        }
    }

    /// A 32-byte hash in Bitcoin Core's hex order, named `name` in errors.
    pub fn hash<H: FromStr>(&self, i: usize, name: &str) -> Result<H, RpcError> {
        parse_hash(self.str(i)?, name)
    }

    /// An optional integer in `[min, max]`.
    pub fn int(&self, i: usize, default: i64) -> Result<i64, RpcError> {
        match self.get(i) {
            None => Ok(default),
            Some(Value::Number(n)) => n.as_i64().ok_or_else(|| type_error(&Value::Null, "number")),
            Some(v) => Err(type_error(v, "number")),
        }
    }

    /// An optional boolean.
    pub fn bool(&self, i: usize, default: bool) -> Result<bool, RpcError> {
        match self.get(i) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(type_error(v, "bool")),
        }
    }

    /// A verbosity given as a boolean or a number (Bitcoin Core accepts both).
    pub fn verbosity(&self, i: usize, default: i64) -> Result<i64, RpcError> {
        match self.get(i) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(i64::from(*b)),
            Some(Value::Number(n)) => n.as_i64().ok_or_else(|| type_error(&Value::Null, "number")),
            Some(v) => Err(type_error(v, "number")),
        }
    }

    /// A required array.
    pub fn array(&self, i: usize) -> Result<&Vec<Value>, RpcError> {
        match self.get(i) {
            Some(Value::Array(a)) => Ok(a),
            Some(v) => Err(type_error(v, "array")),
            None => Err(type_error(&Value::Null, "array")),
        }
    }
}

/// Parses a hash the way Bitcoin Core's `ParseHashV` does, with its messages.
pub fn parse_hash<H: FromStr>(s: &str, name: &str) -> Result<H, RpcError> {
    if s.len() != 64 {
        return Err(RpcError::invalid_parameter(format!(
            "{name} must be of length 64 (not {}, for '{s}')",
            s.len()
        )));
    }
    if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RpcError::invalid_parameter(format!(
            "{name} must be hexadecimal string (not '{s}')"
        )));
    }
    H::from_str(s).map_err(|_| {
        RpcError::invalid_parameter(format!("{name} must be hexadecimal string (not '{s}')"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn named_and_positional_parameters_resolve_alike() {
        let names = ["blockhash", "verbosity"];
        let by_name = Params::parse(
            "getblock",
            Some(&json!({"verbosity": 2, "blockhash": "x"})),
            &names,
            1,
        )
        .expect("named");
        let by_pos = Params::parse("getblock", Some(&json!(["x", 2])), &names, 1).expect("pos");
        assert_eq!(by_name.str(0).expect("str"), by_pos.str(0).expect("str"));
        assert_eq!(by_name.int(1, 1).expect("int"), 2);
    }

    #[test]
    fn missing_or_extra_parameters_are_refused() {
        let names = ["height"];
        assert_eq!(
            Params::parse("getblockhash", Some(&json!([])), &names, 1)
                .unwrap_err()
                .code,
            code::MISC_ERROR
        );
        assert_eq!(
            Params::parse("getblockhash", Some(&json!([1, 2])), &names, 1)
                .unwrap_err()
                .code,
            code::MISC_ERROR
        );
        let p = Params::parse("getblockhash", Some(&json!(["1"])), &names, 1).expect("parse");
        assert_eq!(p.int(0, 0).unwrap_err().code, code::TYPE_ERROR);
    }

    #[test]
    fn hashes_are_checked_like_core() {
        let err = parse_hash::<bitcoin::Txid>("abc", "txid").unwrap_err();
        assert_eq!(err.code, code::INVALID_PARAMETER);
        assert_eq!(err.message, "txid must be of length 64 (not 3, for 'abc')");
        let zz = "z".repeat(64);
        let err = parse_hash::<bitcoin::Txid>(&zz, "txid").unwrap_err();
        assert!(err.message.starts_with("txid must be hexadecimal string"));
    }
}
