//! `fiamma node`: the staking module on PostgreSQL, served over gRPC, following Bitcoin.
//!
//! - [`config`]: settings from a TOML file, environment and flags.
//! - [`store`]: the PostgreSQL store, one transaction per message.
//! - [`module`]: the service layer over the pure staking cores.
//! - [`finality`]: the finality module: proofs, rounds, votes, tally, slashing.
//! - [`checkpoint`]: Bitcoin-checked checkpoints in the finality module.
//! - [`grpc`]: the `fiamma.staking.v1.Staking` service, health and reflection.
//! - [`follower`]: the chain follower feeding the light client and the module.
//! - [`health`]: whether the node may act on its view of Bitcoin (rounds, gRPC health).
//! - [`run`]: the `fiamma node` command.

pub mod checkpoint;
pub mod config;
pub mod finality;
pub mod follower;
pub mod grpc;
pub mod health;
pub mod module;
pub mod run;
pub mod store;
