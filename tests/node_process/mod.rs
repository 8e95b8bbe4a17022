//! Running the real `fiamma node` binary in a test: a free loopback port, a config file on the
//! test's database, the child process, and a gRPC channel once a service reports SERVING.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sqlx::PgPool;
use tonic::transport::Channel;

use crate::node_support::{contexts, params};

/// A loopback address no one listens on right now.
pub fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// The URL of the database behind `pool` (a `#[sqlx::test]` database).
pub fn database_url(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL is set by .cargo/config.toml");
    let (server, _) = base.rsplit_once('/').expect("url with a database");
    let db = pool
        .connect_options()
        .get_database()
        .expect("test database")
        .to_owned();
    format!("{server}/{db}")
}

/// Writes the params file and a node config in `dir` for database `db` and gRPC `addr`, with
/// `extra` TOML appended (e.g. a `[finality]` table). Returns the config's path.
pub fn write_files(dir: &Path, db: &str, addr: SocketAddr, extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("tempdir");
    let params_file = dir.join("params.json");
    std::fs::write(
        &params_file,
        serde_json::to_string(&vec![params()]).expect("json"),
    )
    .expect("write");
    let config = dir.join("node.toml");
    let c = contexts();
    std::fs::write(
        &config,
        format!(
            "database_url = \"{db}\"\ngrpc_addr = \"{addr}\"\nnetwork = \"regtest\"\n\
             params_file = \"{}\"\nchain_id = \"{}\"\nmodule_address = \"{}\"\n\n\
             [bitcoin]\nbackend = \"embedded\"\npoll_interval_ms = 200\n\n{extra}",
            params_file.display(),
            c.chain_id,
            c.module_address
        ),
    )
    .expect("write");
    config
}

/// How a node reaches a Bitcoin node over JSON-RPC.
pub struct RpcLogin<'a> {
    /// `http://host:port`.
    pub url: &'a str,
    /// The RPC user.
    pub user: &'a str,
    /// The RPC password.
    pub password: &'a str,
}

/// Writes `params` as the params file and a node config in `dir` for database `db` and gRPC
/// `addr`, following the Bitcoin node of `rpc` over JSON-RPC, with `extra` TOML appended.
/// Returns the config's path.
pub fn write_rpc_files(
    dir: &Path,
    db: &str,
    addr: SocketAddr,
    params: &fiamma_staking::params::Params,
    rpc: &RpcLogin<'_>,
    extra: &str,
) -> PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    let params_file = dir.join("params.json");
    std::fs::write(
        &params_file,
        serde_json::to_string(&vec![params]).expect("json"),
    )
    .expect("write");
    let c = contexts();
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"{db}\"\ngrpc_addr = \"{addr}\"\nnetwork = \"regtest\"\n\
             params_file = \"{}\"\nchain_id = \"{}\"\nmodule_address = \"{}\"\n\n\
             [bitcoin]\nbackend = \"rpc\"\nrpc_url = \"{}\"\nrpc_user = \"{}\"\n\
             rpc_password = \"{}\"\npoll_interval_ms = 100\n\n{extra}",
            params_file.display(),
            c.chain_id,
            c.module_address,
            rpc.url,
            rpc.user,
            rpc.password,
        ),
    )
    .expect("write");
    config
}

/// Starts `fiamma regtest` (the embedded chain over JSON-RPC) on `port`, with the RPC login
/// `user`/`password`.
pub fn spawn_regtest(port: u16, user: &str, password: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_fiamma"))
        .args(["regtest", "--rpc-port", &port.to_string()])
        .env("FIAMMA_RPC_USER", user)
        .env("FIAMMA_RPC_PASSWORD", password)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("fiamma regtest starts")
}

/// Starts `fiamma node --config <config>`; only what the config says counts.
pub fn spawn(config: &Path) -> Child {
    node_command(config)
        .stderr(Stdio::null())
        .spawn()
        .expect("node starts")
}

/// [`spawn`], its log (warnings and errors) appended to the file `log`.
pub fn spawn_logged(config: &Path, log: &Path) -> Child {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    node_command(config)
        .stderr(file)
        .spawn()
        .expect("node starts")
}

fn node_command(config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fiamma"));
    cmd.args(["node", "--config"])
        .arg(config)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

/// A channel to the node at `addr` once gRPC health reports `service` SERVING (30 s at most).
pub async fn connect(addr: SocketAddr, service: &str) -> Channel {
    use tonic_health::pb::health_check_response::ServingStatus;
    for _ in 0..300 {
        if let Ok(ch) = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
        {
            let mut health = tonic_health::pb::health_client::HealthClient::new(ch.clone());
            let status = health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .map(|r| r.into_inner().status);
            if matches!(status, Ok(s) if s == ServingStatus::Serving as i32) {
                return ch;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("node did not report {service} SERVING on {addr}");
}
