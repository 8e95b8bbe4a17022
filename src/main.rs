//! The `fiamma` command line.

use clap::{Parser, Subcommand};
use fiamma::cli;

/// Bitcoin-staked security for a network of ZK-proof verifiers.
#[derive(Debug, Parser)]
#[command(name = "fiamma", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Staking outputs and transactions.
    #[command(subcommand)]
    Staking(cli::staking::StakingCommand),
    /// Serve an embedded regtest chain, validated by Bitcoin Core's consensus engine, over JSON-RPC.
    Regtest(cli::regtest::RegtestArgs),
    /// Run the node: staking and finality modules on PostgreSQL, gRPC API, following Bitcoin.
    Node(fiamma::node::config::NodeArgs),
    /// A covenant committee member: its encrypted key and the co-signing daemon.
    #[command(subcommand)]
    Covenant(cli::covenant::CovenantCommand),
    /// A verifier operator: its encrypted key, registration, the voting daemon with slashing
    /// protection, and the protection's export and import.
    #[command(subcommand)]
    Verifier(cli::verifier::VerifierCommand),
    /// A slasher (anyone may run one): broadcasts the slashing transactions of every delegation
    /// of a slashed verifier, with the key it revealed, until they are k deep.
    #[command(subcommand)]
    Slasher(cli::slasher::SlasherCommand),
    /// A rollup's sequencer: submits proofs, and anchors each final round on Bitcoin (its
    /// certificate checked) from its own wallet until k deep.
    #[command(subcommand)]
    Sequencer(cli::sequencer::SequencerCommand),
    /// A staker: the BDK wallet, stake, unbond, withdraw, PSBTs for external signers, and the
    /// staker service the other verbs ask.
    #[command(subcommand)]
    Staker(cli::staker::StakerCommand),
    /// Play the whole story on an embedded regtest chain and a throwaway database: staking,
    /// covenant co-signing, rounds of ZK proofs voted final and anchored, an equivocation
    /// slashed on Bitcoin, and an unbonding.
    Devnet(fiamma::devnet::DevnetArgs),
    /// Bitcoin-checked checkpoints: the latest checkpoint of a chain, read from a Bitcoin node
    /// and the genesis outpoint alone.
    #[command(subcommand)]
    Checkpoint(cli::checkpoint::CheckpointCommand),
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Staking(cmd) => cli::staking::run(cmd).await,
        Command::Regtest(args) => cli::regtest::run(args).await,
        Command::Node(args) => fiamma::node::run::run(args).await.map_err(Into::into),
        Command::Covenant(cmd) => cli::covenant::run(cmd).await,
        Command::Verifier(cmd) => cli::verifier::run(cmd).await,
        Command::Slasher(cmd) => cli::slasher::run(cmd).await,
        Command::Sequencer(cmd) => cli::sequencer::run(cmd).await,
        Command::Staker(cmd) => cli::staker::run(cmd).await,
        Command::Devnet(args) => fiamma::devnet::run(args).await.map_err(Into::into),
        Command::Checkpoint(cmd) => cli::checkpoint::run(cmd).await,
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
