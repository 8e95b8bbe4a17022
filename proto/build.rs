//! Compiles `fiamma/**/*.proto` into Rust with prost and tonic, and writes the file descriptor
//! set that the node serves through gRPC server reflection.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "fiamma/staking/v1/staking.proto",
    "fiamma/staking/v1/service.proto",
    "fiamma/finality/v1/finality.proto",
    "fiamma/finality/v1/service.proto",
];
/// The staker service's own package: served by `fiamma staker run`, not by the node.
const STAKER_PROTOS: &[&str] = &["fiamma/staker/v1/staker.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    for proto in PROTOS.iter().chain(STAKER_PROTOS) {
        println!("cargo:rerun-if-changed={proto}");
    }
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("fiamma_descriptor.bin"))
        .compile_protos(PROTOS, &["."])?;
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("staker_descriptor.bin"))
        .compile_protos(STAKER_PROTOS, &["."])?;
    Ok(())
}
