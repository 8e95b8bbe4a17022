//! Generated gRPC and protobuf types of `fiamma.staking.v1` and `fiamma.finality.v1`.
