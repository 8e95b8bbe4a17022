//! Bitcoin backends: the embedded regtest chain on Bitcoin Core's consensus engine, and RPC.
//!
//! - [`backend`]: the [`Backend`] trait every Bitcoin consumer uses.
//! - [`regtest`]: the embedded chain ([`RegtestChain`], [`EmbeddedBackend`]), built from
//!   [`kernel`] (Bitcoin Core's validation), [`index`], [`mempool`], [`policy`] and [`mining`].
//! - [`rpc_server`]: Bitcoin Core-compatible JSON-RPC over the embedded chain.
//! - [`rpc_backend`]: the [`Backend`] trait over any Bitcoin Core node.

pub mod backend;
pub mod index;
pub mod kernel;
pub mod mempool;
pub mod mining;
pub mod policy;
pub mod regtest;
pub mod rpc_backend;
pub mod rpc_server;
#[cfg(test)]
mod test_tx;

pub use backend::{
    Backend, BackendError, BroadcastError, ChainTip, HeaderEntry, OutPointStatus, Rejection,
    RejectionKind, TxStatus,
};
pub use regtest::{EmbeddedBackend, RegtestChain};
pub use rpc_backend::RpcBackend;
