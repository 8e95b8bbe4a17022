//! `fiamma regtest`: serve the embedded regtest chain, validated by Bitcoin Core's consensus
//! engine, over Bitcoin Core-compatible JSON-RPC.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use crate::btc::rpc_server::{self, RpcAuth};
use crate::btc::EmbeddedBackend;
use crate::btc::RegtestChain;

/// Arguments of `fiamma regtest`.
#[derive(Debug, clap::Args)]
pub struct RegtestArgs {
    /// Directory holding the chain; blocks mined in earlier runs are kept. Without it the
    /// chain lives in memory and is gone when the process ends.
    #[arg(long)]
    pub datadir: Option<PathBuf>,
    /// Port for JSON-RPC on 127.0.0.1 (Bitcoin Core's regtest default is 18443).
    #[arg(long, default_value_t = 18443)]
    pub rpc_port: u16,
    /// User name clients must present.
    #[arg(long, env = "FIAMMA_RPC_USER")]
    pub rpc_user: String,
    /// Password clients must present.
    #[arg(long, env = "FIAMMA_RPC_PASSWORD", hide_env_values = true)]
    pub rpc_password: String,
}

/// Runs `fiamma regtest` until the server stops or the process gets SIGINT or SIGTERM.
pub async fn run(args: RegtestArgs) -> Result<(), super::CliError> {
    let chain = match &args.datadir {
        Some(dir) => RegtestChain::open(dir)?,
        None => RegtestChain::in_memory()?,
    };
    let tip = chain.tip();
    let backend = EmbeddedBackend::new(chain);
    let auth = RpcAuth {
        user: args.rpc_user,
        password: args.rpc_password,
    };
    // Handlers go in before the address is announced, so a client that stops the process
    // as soon as it connects still gets a clean shutdown.
    let mut stop = StopSignals::install()?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.rpc_port));
    let server = rpc_server::spawn(addr, backend.shared(), &auth).await?;
    // The port line goes to stdout so scripts (and tests using port 0) can read it.
    println!("fiamma regtest: height {} tip {}", tip.height, tip.hash);
    println!("fiamma regtest: JSON-RPC listening on {}", server.addr);
    // Returning drops the chain, which flushes Bitcoin Core's chainstate to the data dir.
    tokio::select! {
        served = server.task => served??,
        _ = stop.recv() => {}
    }
    Ok(())
}

/// SIGINT (Ctrl-C) and SIGTERM (service managers), registered when created.
#[cfg(unix)]
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl StopSignals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// Ctrl-C where Unix signals do not exist.
#[cfg(not(unix))]
struct StopSignals;

#[cfg(not(unix))]
impl StopSignals {
    fn install() -> std::io::Result<Self> {
        Ok(StopSignals)
    }

    async fn recv(&mut self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}
