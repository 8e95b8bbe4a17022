//! Bitcoin Core-compatible JSON-RPC over HTTP for the embedded regtest chain.
//!
//! Same method names, parameters, result shapes and error codes as Bitcoin Core for the
//! subset the project's RPC backend and `bdk_bitcoind_rpc` use; every other method answers
//! -32601. HTTP basic authentication as Core does it: a wrong or missing password gets
//! HTTP 401 with an empty body. JSON-RPC 1.0 replies carry both `result` and `error`, with
//! Core's HTTP status for errors; JSON-RPC 2.0 replies always use HTTP 200.
//!
//! Bounds: a request body of at most [`MAX_BODY_BYTES`] (HTTP 413 beyond), a batch of at most
//! [`MAX_BATCH_LEN`] requests (one -32600 error beyond), and at most [`MAX_CONCURRENT`]
//! requests handled at once (HTTP 503 beyond, as Core answers when its work queue is full).

pub mod error;
pub mod methods;
pub mod params;
pub mod views;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use serde_json::{json, Value};

use super::regtest::SharedChain;
use error::{code, RpcError};

/// Credentials a client must present.
#[derive(Clone)]
pub struct RpcAuth {
    /// The user name (`-rpcuser`).
    pub user: String,
    /// The password (`-rpcpassword`).
    pub password: String,
}

impl std::fmt::Debug for RpcAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcAuth")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

struct ServerState {
    chain: SharedChain,
    expected_auth: String,
    in_flight: Arc<tokio::sync::Semaphore>,
}

/// Largest request body: a `submitblock` of a full 4 MB block is 8 MB of hex.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Most requests in one batch.
pub const MAX_BATCH_LEN: usize = 1000;
/// Most HTTP requests handled at once (Core's default `-rpcworkqueue` is 16; more here since
/// most calls are quick reads).
pub const MAX_CONCURRENT: usize = 64;

/// How long a client with bad credentials waits, as in Bitcoin Core (deters guessing).
const BAD_AUTH_DELAY: Duration = Duration::from_millis(250);

/// Whether the `Authorization` header carries exactly the expected `user:password`.
fn authorized(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .is_some_and(|decoded| constant_time_eq(&decoded, expected.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The reply to one request object and the HTTP status Core would use for it alone.
async fn reply(chain: &SharedChain, request: &Value) -> (Value, StatusCode) {
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let v2 = request.get("jsonrpc").and_then(Value::as_str) == Some("2.0");
    let outcome = match request {
        Value::Object(obj) => match obj.get("method").and_then(Value::as_str) {
            Some(method) => methods::call(chain, method, obj.get("params")).await,
            None => Err(RpcError::new(
                code::INVALID_REQUEST,
                "Method must be a string",
            )),
        },
        _ => Err(RpcError::new(
            code::INVALID_REQUEST,
            "Invalid Request object",
        )),
    };
    match (outcome, v2) {
        (Ok(result), true) => (
            json!({"jsonrpc": "2.0", "result": result, "id": id}),
            StatusCode::OK,
        ),
        (Ok(result), false) => (
            json!({"result": result, "error": null, "id": id}),
            StatusCode::OK,
        ),
        (Err(e), true) => (
            json!({"jsonrpc": "2.0", "error": e.to_json(), "id": id}),
            StatusCode::OK,
        ),
        (Err(e), false) => (
            json!({"result": null, "error": e.to_json(), "id": id}),
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        ),
    }
}

async fn handle(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&headers, &state.expected_auth) {
        tokio::time::sleep(BAD_AUTH_DELAY).await;
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"jsonrpc\"")],
        )
            .into_response();
    }
    // Refused before the body is parsed: a flood costs no work.
    let Ok(_slot) = state.in_flight.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Work queue depth exceeded ({MAX_CONCURRENT} requests in flight)\n"),
        )
            .into_response();
    };
    let json_reply = |status: StatusCode, body: Value| {
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            format!("{body}\n"),
        )
            .into_response()
    };
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            let e = RpcError::new(code::PARSE_ERROR, "Parse error");
            return json_reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"result": null, "error": e.to_json(), "id": null}),
            );
        }
    };
    match request {
        Value::Array(batch) if batch.len() > MAX_BATCH_LEN => {
            let e = RpcError::new(
                code::INVALID_REQUEST,
                format!(
                    "batch of {} requests, at most {MAX_BATCH_LEN} allowed",
                    batch.len()
                ),
            );
            json_reply(
                StatusCode::OK,
                json!({"result": null, "error": e.to_json(), "id": null}),
            )
        }
        Value::Array(batch) => {
            let mut replies = Vec::with_capacity(batch.len());
            for request in &batch {
                replies.push(reply(&state.chain, request).await.0);
            }
            json_reply(StatusCode::OK, Value::Array(replies))
        }
        single => {
            let (body, status) = reply(&state.chain, &single).await;
            json_reply(status, body)
        }
    }
}

/// The JSON-RPC service as an axum router.
pub fn router(chain: SharedChain, auth: &RpcAuth) -> Router {
    let state = Arc::new(ServerState {
        chain,
        expected_auth: format!("{}:{}", auth.user, auth.password),
        in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT)),
    });
    Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// A running JSON-RPC server.
pub struct RpcServer {
    /// The address it listens on (useful with port 0).
    pub addr: SocketAddr,
    /// The serving task; it ends with an error only if accepting connections fails.
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Binds `addr` and serves the chain in a background task.
pub async fn spawn(
    addr: SocketAddr,
    chain: SharedChain,
    auth: &RpcAuth,
) -> std::io::Result<RpcServer> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let app = router(chain, auth);
    let task = tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(RpcServer { addr, task })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends one raw HTTP POST of `body` with the right credentials; the status and body.
    async fn post(addr: SocketAddr, body: &[u8]) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            base64::engine::general_purpose::STANDARD.encode("u:p"),
            body.len()
        );
        stream.write_all(head.as_bytes()).await.expect("write");
        // The server may answer (413) before reading a large body; a reset then is fine.
        let _ = stream.write_all(body).await;
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response).await;
        let response = String::from_utf8_lossy(&response).into_owned();
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
        (status, body)
    }

    #[tokio::test]
    async fn batches_and_bodies_are_bounded() {
        let chain = std::sync::Arc::new(tokio::sync::RwLock::new(
            crate::RegtestChain::in_memory().expect("chain"),
        ));
        let auth = RpcAuth {
            user: "u".into(),
            password: "p".into(),
        };
        let server = spawn("127.0.0.1:0".parse().expect("addr"), chain, &auth)
            .await
            .expect("serves");
        let one = json!({"method": "getblockcount", "params": [], "id": 1});
        let batch = |n: usize| Value::Array(vec![one.clone(); n]).to_string();

        let (status, body) = post(server.addr, batch(MAX_BATCH_LEN).as_bytes()).await;
        assert_eq!(status, 200);
        let replies: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(replies.as_array().map(Vec::len), Some(MAX_BATCH_LEN));

        let (status, body) = post(server.addr, batch(MAX_BATCH_LEN + 1).as_bytes()).await;
        assert_eq!(status, 200);
        let reply: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(reply["error"]["code"], json!(code::INVALID_REQUEST));
        let message = reply["error"]["message"].as_str().expect("message");
        assert!(message.contains(&MAX_BATCH_LEN.to_string()), "{message}");

        let (status, _) = post(server.addr, &vec![b' '; MAX_BODY_BYTES + 1]).await;
        assert_eq!(status, 413, "an oversized body is refused");
        // Still serving.
        let (status, _) = post(server.addr, one.to_string().as_bytes()).await;
        assert_eq!(status, 200);
        server.task.abort();
    }

    #[test]
    fn only_the_exact_credentials_authorize() {
        let mut headers = HeaderMap::new();
        assert!(!authorized(&headers, "u:p"));
        let good = base64::engine::general_purpose::STANDARD.encode("u:p");
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {good}").parse().expect("header"),
        );
        assert!(authorized(&headers, "u:p"));
        let bad = base64::engine::general_purpose::STANDARD.encode("u:q");
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {bad}").parse().expect("header"),
        );
        assert!(!authorized(&headers, "u:p"));
    }
}
