//! `fiamma regtest` (work in progress).

/// Arguments of `fiamma regtest`.
#[derive(Debug, clap::Args)]
pub struct RegtestArgs {}

/// Runs `fiamma regtest`.
pub async fn run(_args: RegtestArgs) -> Result<(), super::CliError> {
    Err("fiamma regtest is not built yet".into())
}
