//! A throwaway PostgreSQL cluster for a devnet run given no server: `initdb` into a temporary
//! directory, `pg_ctl start` on a free loopback port (trust authentication, socket in the same
//! directory), and at the end `pg_ctl stop` and the directory removed. The binaries are the
//! local PostgreSQL installation's (Debian's `/usr/lib/postgresql/<version>/bin`, or `PATH`).
//! PostgreSQL refuses to run as root, so under root both run as the `postgres` user through
//! `runuser`.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Command;

use super::error::DevnetError;

/// Where Debian installs each PostgreSQL version's server binaries.
const DEBIAN_LIB: &str = "/usr/lib/postgresql";
/// The account the server runs as when this process is root.
const SERVER_USER: &str = "postgres";

/// A running throwaway cluster; stopped and deleted by [`ThrowawayCluster::stop`] or on drop.
#[derive(Debug)]
pub struct ThrowawayCluster {
    bin: PathBuf,
    dir: PathBuf,
    as_user: Option<&'static str>,
    /// A URL of its `postgres` database.
    pub url: String,
    stopped: bool,
}

/// The directory holding `initdb` and `pg_ctl`: the newest Debian version, else `PATH`.
fn server_bin() -> Result<PathBuf, DevnetError> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(DEBIAN_LIB)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
        .ok_or_else(|| {
            DevnetError::local(
                "start a throwaway PostgreSQL",
                "no initdb found (install Debian's postgresql package, or pass --database-url)",
            )
        })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn free_port() -> Result<u16, DevnetError> {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| DevnetError::local("find a free port for PostgreSQL", e))
}

impl ThrowawayCluster {
    /// Creates and starts the cluster; returns once it accepts connections.
    ///
    /// # Errors
    /// [`DevnetError::Local`] naming the step that failed, with the tool's own message.
    pub fn start() -> Result<Self, DevnetError> {
        let bin = server_bin()?;
        let dir = std::env::temp_dir().join(format!("fiamma-devnet-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| DevnetError::local(format!("create {}", dir.display()), e))?;
        let as_user = is_root().then_some(SERVER_USER);
        let mut cluster = ThrowawayCluster {
            bin,
            dir,
            as_user,
            url: String::new(),
            stopped: true,
        };
        if as_user.is_some() {
            run(
                "chown",
                Command::new("chown")
                    .arg(format!("{SERVER_USER}:{SERVER_USER}"))
                    .arg(&cluster.dir),
            )?;
        }
        let data = cluster.dir.join("data");
        run(
            "initdb",
            cluster
                .server_command("initdb")
                .args([
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "-D",
                ])
                .arg(&data),
        )?;
        let port = free_port()?;
        let options = format!("-p {port} -h 127.0.0.1 -k {}", cluster.dir.display());
        run(
            "pg_ctl start",
            cluster
                .server_command("pg_ctl")
                .args(["-w", "-t", "30", "-D"])
                .arg(&data)
                .arg("-l")
                .arg(cluster.dir.join("server.log"))
                .args(["-o", &options, "start"]),
        )?;
        cluster.stopped = false;
        cluster.url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        Ok(cluster)
    }

    /// The server tool `tool`, run as the server user when this process is root.
    fn server_command(&self, tool: &str) -> Command {
        let program = self.bin.join(tool);
        match self.as_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    /// Stops the server at once (nothing in it is kept) and deletes its directory.
    ///
    /// # Errors
    /// [`DevnetError::Local`] when `pg_ctl stop` fails; the directory is deleted anyway.
    pub fn stop(mut self) -> Result<(), DevnetError> {
        self.shut_down()
    }

    fn shut_down(&mut self) -> Result<(), DevnetError> {
        let stopped = if self.stopped {
            Ok(())
        } else {
            self.stopped = true;
            run(
                "pg_ctl stop",
                self.server_command("pg_ctl")
                    .args(["-w", "-m", "immediate", "-D"])
                    .arg(self.dir.join("data"))
                    .arg("stop"),
            )
        };
        let _ = std::fs::remove_dir_all(&self.dir);
        stopped
    }
}

impl Drop for ThrowawayCluster {
    fn drop(&mut self) {
        let _ = self.shut_down();
    }
}

/// Runs `command`; a non-zero exit is an error carrying its standard error.
fn run(what: &str, command: &mut Command) -> Result<(), DevnetError> {
    let output = command
        .output()
        .map_err(|e| DevnetError::local(format!("run {what}"), e))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(DevnetError::local(
        format!("run {what}"),
        format!("{}: {}", output.status, stderr.trim()),
    ))
}
