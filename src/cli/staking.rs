//! `fiamma staking …` (work in progress).

/// `fiamma staking` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum StakingCommand {}

/// Runs a `fiamma staking` subcommand.
pub async fn run(cmd: StakingCommand) -> Result<(), super::CliError> {
    match cmd {}
}
