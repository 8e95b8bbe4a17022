//! `fiamma node`: the staking module on PostgreSQL, served over gRPC, following Bitcoin.

pub mod config;
pub mod module;
pub mod store;
