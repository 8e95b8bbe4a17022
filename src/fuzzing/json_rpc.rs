//! JSON-RPC request bodies to the embedded chain's server (`btc::rpc_server`).

use std::sync::{Arc, OnceLock};

use serde_json::Value;
use tokio::runtime::Runtime;
use tokio::sync::RwLock;

use crate::btc::regtest::{RegtestChain, SharedChain};
use crate::btc::rpc_server::error::{code, RpcError};
use crate::btc::rpc_server::methods;
use crate::devnet::setup::miner_script;

/// Methods that change the chain's blocks: left out so that the chain a check runs against
/// is the same for every input, and a crash reproduces from its input alone. (Mining is also
/// bounded work per call: at most 10,000 blocks, as in Bitcoin Core.)
const CHAIN_CHANGING: [&str; 4] = [
    "generatetoaddress",
    "invalidateblock",
    "reconsiderblock",
    "submitblock",
];

/// Blocks on the fixed chain, so that block-reading methods have something to find.
const BLOCKS: u32 = 3;
/// The timestamp the blocks are mined at, fixed so that their hashes are too.
const MINED_AT: u32 = 1_700_000_000;

/// The chain every check reads, and the runtime that drives the async methods.
///
/// # Panics
/// If the embedded chain cannot be created or mined in memory (the btc tests catch that
/// first).
fn fixture() -> &'static (Runtime, SharedChain) {
    static FIXTURE: OnceLock<(Runtime, SharedChain)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime starts");
        let mut chain = RegtestChain::in_memory().expect("an in-memory regtest chain opens");
        chain
            .mine(BLOCKS, &miner_script(), MINED_AT)
            .expect("the fixed chain mines");
        (runtime, Arc::new(RwLock::new(chain)))
    })
}

/// A request body as the server reads it: JSON, then one request object or a batch of them,
/// each with its method and parameters (`methods::call`, which reads parameters with
/// `rpc_server::params`). Every request gets a result or one of Bitcoin Core's error codes,
/// never a panic, and the reply serializes.
pub fn json_rpc(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let requests = match &body {
        Value::Array(batch) => batch.iter().collect(),
        single => vec![single],
    };
    let (runtime, chain) = fixture();
    for request in requests {
        let Some(method) = request.get("method").and_then(Value::as_str) else {
            continue;
        };
        if CHAIN_CHANGING.contains(&method) {
            continue;
        }
        let outcome = runtime.block_on(methods::call(chain, method, request.get("params")));
        match outcome {
            Ok(result) => {
                assert!(serde_json::to_string(&result).is_ok(), "{method}: result");
            }
            Err(RpcError { code: c, .. }) => assert!(
                [
                    code::INVALID_REQUEST,
                    code::METHOD_NOT_FOUND,
                    code::MISC_ERROR,
                    code::TYPE_ERROR,
                    code::INVALID_ADDRESS_OR_KEY,
                    code::INVALID_PARAMETER,
                    code::DESERIALIZATION_ERROR,
                ]
                .contains(&c)
                    // Bitcoin Core's transaction rejection codes (-25, -26, -27).
                    || (-27..=-25).contains(&c),
                "{method}: error code {c} is not a request error"
            ),
        }
    }
}
