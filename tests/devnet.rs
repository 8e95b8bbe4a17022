//! `fiamma devnet` as a newcomer runs it: the built binary plays the whole story against the
//! PostgreSQL server of DATABASE_URL (or, without one, a throwaway cluster of its own), prints
//! each step, exits 0, and leaves no database behind; a step that cannot happen makes it exit
//! non-zero with the reason.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

/// The story must finish well within this.
const LIMIT: Duration = Duration::from_secs(90);

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Runs `fiamma devnet <args>` on DATABASE_URL and kills it if it outlives [`LIMIT`].
fn devnet(args: &[&str]) -> (Output, Duration) {
    devnet_on(Some(&database_url()), args)
}

/// Runs `fiamma devnet <args>` with DATABASE_URL set to `url`, or unset.
fn devnet_on(url: Option<&str>, args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let mut command = Command::new(env!("CARGO_BIN_EXE_fiamma"));
    command.arg("devnet").args(args);
    match url {
        Some(url) => command.env("DATABASE_URL", url),
        None => command.env_remove("DATABASE_URL"),
    };
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    while child.try_wait().expect("poll the child").is_none() {
        if started.elapsed() > LIMIT {
            child.kill().expect("kill the devnet");
            let out = child.wait_with_output().expect("output");
            panic!(
                "fiamma devnet ran over {LIMIT:?}; stdout so far:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("output");
    (out, started.elapsed())
}

/// The stdout of a run that must have exited 0 (its output shown when it did not).
fn succeeded(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_devnet_plays_the_whole_story_and_cleans_up() {
    let (out, took) = tokio::task::spawn_blocking(|| devnet(&[]))
        .await
        .expect("runner");
    let stdout = succeeded(&out);
    // One line per step, in the story's order.
    let steps = [
        "postgres: created database fiamma_devnet_",
        "verifier A: registered key",
        "committed randomness for rounds 1..=1000",
        "staker 1: fiamma-staker component; wallet synced over JSON-RPC",
        "registration checked locally, sent: PENDING",
        "validate_delegation passed for 4 pending delegations",
        "node: all 4 delegations VERIFIED (3 of 5 covenant signatures each)",
        "staker 1: its step saw the delegation VERIFIED and broadcast staking tx",
        "4 delegations ACTIVE",
        "each fiamma-staker's step saw its delegation ACTIVE (4 of 4)",
        "node: voting power at height",
        "sequencer: submitted the Fiamma Groth16/BN254 proof",
        "valid, ",
        "INVALID]",
        "recomputed the round hash (= node's), EOTS vote: COUNTED",
        "FINAL, certificate by",
        "sequencer: checked the certificate",
        "OP_RETURN \"fmma\" round",
        "node answered COUNTED, then EQUIVOCATION",
        "its daemon, asked for the same second message, refused: slashing protection",
        "node: verifier C SLASHED in round",
        "decrypted 3 covenant adaptor signatures",
        "accepted by Bitcoin Core's consensus engine: 0.1 BTC to the slashing address",
        "spent by the slashing tx: UNBONDED",
        "verifier C has no power",
        "sequencer: funded the checkpoint genesis",
        "registered with the node once k = 2 deep",
        "is a checkpoint round (every 5 rounds): candidate",
        "verifiers B, A, D signed its sighash M",
        ": READY",
        "as a package: the candidate pays 0, the child spends its P2A output",
        "Bitcoin Core's consensus checked that signatures worth at least T",
        "is the base of the next candidate; the sequencer's pass sees it done",
        "staker 4: asked to unbond; its step broadcast unbonding tx",
        "UNBONDED (spent by",
        "node: voting power at height",
        // D's stake is gone: the next checkpoint hands the output to A and B, and D, still in
        // the base set, signs it (outgoing duty).
        "into round",
        "'s set (B 45.5%, A 54.5%); verifiers B, A, D signed",
        "is the base of the next candidate",
        "reader: from the genesis outpoint alone over JSON-RPC",
        "2 checkpoints; latest: round",
        "summary:",
        "checkpoint chain checked by Bitcoin up to round",
        "postgres: dropped database fiamma_devnet_",
    ];
    let mut rest = stdout.as_str();
    for step in steps {
        let at = rest
            .find(step)
            .unwrap_or_else(|| panic!("{step:?} missing or out of order in:\n{stdout}"));
        rest = &rest[at + step.len()..];
    }
    assert!(took < LIMIT, "took {took:?}");

    // The database it created is gone.
    let name = stdout
        .split("created database ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("database name printed");
    let mut conn = PgConnection::connect(&database_url())
        .await
        .expect("server reachable");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .expect("query");
    assert_eq!(left, 0, "database {name} was not dropped");
}

#[test]
fn an_unusable_database_url_fails_with_the_reason() {
    let (out, _) = devnet(&["--database-url", "mysql://127.0.0.1/x"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not a postgres:// URL"), "{stderr}");

    let (out, _) = devnet(&["--round-interval-ms", "5"]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--round-interval-ms"), "{stderr}");
}

#[test]
fn without_a_database_url_it_runs_on_a_throwaway_cluster() {
    let (out, _) = devnet_on(None, &[]);
    let stdout = succeeded(&out);
    let first = stdout.lines().next().unwrap_or_default();
    assert!(
        first.contains("no DATABASE_URL given: started a throwaway cluster at postgres://"),
        "{first}"
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.contains("stopped and removed the throwaway cluster"),
        "{last}"
    );

    let (out, _) = devnet_on(None, &["--keep-database"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--keep-database needs --database-url"),
        "{stderr}"
    );
}
