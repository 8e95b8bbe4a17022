//! `fiamma covenant` as a committee member runs it: the real binary, keystores made with its
//! CLI, against the real `fiamma node` binary (embedded chain, PostgreSQL).

mod covenant_support;
mod node_process;
mod node_support;

use std::time::Duration;

use bitcoin::hashes::Hash;
use covenant_support::{
    fiamma, import_key, params, registration, spawn_member, write_member, write_node, Killed,
    MEMBERS, PASSPHRASE,
};
use fiamma_proto::staking::v1 as pb;
use fiamma_proto::staking::v1::staking_client::StakingClient;
use node_process::{connect, database_url, free_port, spawn};
use node_support::{covenant, delegation_request, keypair, verifier_request, xonly};
use sqlx::PgPool;

/// Waits until `done` holds for the node's delegations (60 s at most).
async fn wait_for(
    client: &mut StakingClient<tonic::transport::Channel>,
    what: &str,
    done: impl Fn(&[pb::Delegation]) -> bool,
) -> Vec<pb::Delegation> {
    for _ in 0..600 {
        let all = node_support::all_delegations(client).await;
        if done(&all) {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A plain HTTP/1.0 GET of `path`: the response, head and body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("status endpoint");
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

fn signers(d: &pb::Delegation) -> Vec<Vec<u8>> {
    d.covenant_sigs
        .iter()
        .map(|s| s.covenant_pk.clone())
        .collect()
}

#[sqlx::test]
async fn five_members_verify_good_delegations_and_refuse_bad_params_and_a_bad_delegation(
    pool: PgPool,
) {
    let dir = tempfile::tempdir().expect("dir");
    let addr = free_port();
    let node = Killed(spawn(&write_node(
        &dir.path().join("node"),
        &database_url(&pool),
        addr,
    )));
    let mut client = StakingClient::new(connect(addr, "fiamma.staking.v1.Staking").await);
    client
        .create_verifier(verifier_request(1))
        .await
        .expect("verifier registers");
    let verifier = xonly(&keypair(1));
    let regs: Vec<_> = (0..4u32)
        .map(|n| registration(10 + n as u8, verifier, n))
        .collect();
    for reg in &regs {
        client
            .create_delegation(delegation_request(reg))
            .await
            .expect("registers");
    }
    // The node accepted it; a broken or hostile node then serves it with another staker
    // signature, which the members' own check must catch.
    let bad = regs[3].staking_tx.compute_txid();
    sqlx::query("UPDATE delegations SET staker_slashing_sig = $1 WHERE staking_txid = $2")
        .bind(regs[2].staker_slashing_sig.as_ref().to_vec())
        .bind(bad.to_byte_array().to_vec())
        .execute(&pool)
        .await
        .expect("corrupt one delegation");

    let mut members = Vec::new();
    let mut configs = Vec::new();
    let status = free_port();
    for i in 0..MEMBERS {
        let member_dir = dir.path().join(format!("member{i}"));
        import_key(&member_dir, i);
        let mut own = params();
        if i == 4 {
            // Member 5 has other params: it must sign nothing and say why.
            own.slashing_rate = "0.2".parse().expect("rate");
        }
        // Member 5 serves its health and metrics.
        let extra = if i == 4 {
            format!("status_addr = \"{status}\"\n")
        } else {
            String::new()
        };
        let config = write_member(&member_dir, addr, &own, &extra);
        members.push(Killed(spawn_member(&config)));
        configs.push(config);
    }

    let good: Vec<String> = regs[..3]
        .iter()
        .map(|r| r.staking_tx.compute_txid().to_string())
        .collect();
    let all = wait_for(&mut client, "the good delegations to be VERIFIED", |all| {
        good.iter().all(|txid| {
            all.iter()
                .any(|d| &d.staking_txid == txid && d.status() == pb::DelegationStatus::Verified)
        })
    })
    .await;
    // Give the members a last pass, then look at what each did.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let all = {
        let _ = all;
        node_support::all_delegations(&mut client).await
    };
    let odd_one = xonly(&covenant(4)).serialize().to_vec();
    for d in &all {
        assert!(
            !signers(d).contains(&odd_one),
            "the member with other params signed {}",
            d.staking_txid
        );
        if d.staking_txid == bad.to_string() {
            assert_eq!(d.status(), pb::DelegationStatus::Pending, "bad one signed");
            assert!(d.covenant_sigs.is_empty(), "bad one got signatures");
        } else {
            // The node lists a delegation as waiting only until the quorum: the fourth good
            // member may come after it is VERIFIED.
            let n = signers(d).len();
            assert!(
                (3..=4).contains(&n),
                "{} has {n} signatures",
                d.staking_txid
            );
        }
    }
    let refused = covenant_support::status(&configs[0]);
    assert!(
        refused.contains(&format!("{bad} [rule]")) && refused.contains("signed: 3"),
        "{refused}"
    );
    let health = http_get(status, "/health").await;
    assert!(
        health.starts_with("HTTP/1.0 503") && health.contains("params mismatch"),
        "{health}"
    );
    let metrics = http_get(status, "/metrics").await;
    assert!(
        metrics.contains("fiamma_covenant_params_mismatch 1"),
        "{metrics}"
    );
    let odd = covenant_support::status(&configs[4]);
    assert!(
        odd.contains("NOT SIGNING: params version 0 differs in slashing_rate")
            && odd.contains("signed: 0"),
        "{odd}"
    );
    drop(members);
    drop(node);
}

#[sqlx::test]
async fn sigkilled_at_random_a_member_never_signs_twice_and_leaves_nothing_unsigned(pool: PgPool) {
    use rand::Rng;

    const DELEGATIONS: u32 = 60;
    let dir = tempfile::tempdir().expect("dir");
    let addr = free_port();
    let _node = Killed(spawn(&write_node(
        &dir.path().join("node"),
        &database_url(&pool),
        addr,
    )));
    let mut client = StakingClient::new(connect(addr, "fiamma.staking.v1.Staking").await);
    client
        .create_verifier(verifier_request(1))
        .await
        .expect("verifier registers");
    let verifier = xonly(&keypair(1));
    // A stream of registrations while the member is killed and restarted.
    let mut registrar = client.clone();
    let stream = tokio::spawn(async move {
        for n in 0..DELEGATIONS {
            let reg = registration(10 + (n % 100) as u8, verifier, n);
            registrar
                .create_delegation(delegation_request(&reg))
                .await
                .expect("registers");
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    });
    let member_dir = dir.path().join("member0");
    import_key(&member_dir, 0);
    let config = write_member(&member_dir, addr, &params(), "");
    let me = xonly(&covenant(0)).serialize().to_vec();
    let mut rng = rand::thread_rng();
    let (mut kills, mut kills_mid_stream) = (0, 0);
    while !stream.is_finished() || kills < 3 {
        let mut child = spawn_member(&config);
        tokio::time::sleep(Duration::from_millis(rng.gen_range(30..300))).await;
        let _ = child.kill();
        let _ = child.wait();
        kills += 1;
        let all = node_support::all_delegations(&mut client).await;
        if all.iter().any(|d| !signers(d).contains(&me)) {
            kills_mid_stream += 1;
        }
        assert!(kills < 200, "the stream never ended");
    }
    stream.await.expect("all registered");
    // A last clean run delivers whatever a kill left undelivered.
    let last = Killed(spawn_member(&config));
    let all = wait_for(
        &mut client,
        "member 0's signature on every delegation",
        |all| all.len() == DELEGATIONS as usize && all.iter().all(|d| signers(d).contains(&me)),
    )
    .await;
    drop(last);

    // What the node holds from member 0 is exactly what the member recorded before sending.
    let store = fiamma_covenant_member::store::MemberStore::open(&fiamma_role::store::sqlite_url(
        &member_dir.join("covenant.db"),
    ))
    .await
    .expect("store opens");
    for d in &all {
        let held = d
            .covenant_sigs
            .iter()
            .find(|s| s.covenant_pk == me)
            .expect("member 0 signed");
        let recorded = store
            .signed(&d.staking_txid)
            .await
            .expect("reads")
            .expect("recorded before it was sent");
        assert_eq!(
            held.slashing_adaptor_sig,
            recorded.signatures.slashing[0]
                .signature
                .to_bytes()
                .to_vec(),
            "{}: the node holds other signatures than the member recorded",
            d.staking_txid
        );
        assert_eq!(
            held.unbonding_sig,
            recorded.signatures.unbonding.as_ref().to_vec()
        );
        assert_eq!(
            held.unbonding_slashing_adaptor_sig,
            recorded.signatures.unbonding_slashing[0]
                .signature
                .to_bytes()
                .to_vec()
        );
    }
    eprintln!(
        "member 0 killed {kills} times ({kills_mid_stream} with work outstanding) while signing {DELEGATIONS} delegations"
    );
    assert!(
        kills_mid_stream >= 2,
        "the member was never interrupted while working"
    );
}

#[test]
fn the_keystore_holds_no_form_of_the_secret_and_a_wrong_passphrase_is_named() {
    let dir = tempfile::tempdir().expect("dir");
    let keystore = import_key(dir.path(), 3);
    let secret = covenant(3).secret_key().secret_bytes();
    let file = std::fs::read(&keystore).expect("read");
    for needle in [
        secret.to_vec(),
        hex::encode(secret).into_bytes(),
        hex::encode_upper(secret).into_bytes(),
    ] {
        assert!(
            !file.windows(needle.len()).any(|w| w == needle.as_slice()),
            "the keystore holds the secret"
        );
    }
    let ks = keystore.to_str().expect("utf-8");
    let shown = fiamma(&["covenant", "keys", "show", "--keystore", ks, "--check"]);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let wrong_file = dir.path().join("wrong");
    std::fs::write(&wrong_file, "not the passphrase\n").expect("write");
    let wrong = fiamma(&[
        "covenant",
        "keys",
        "show",
        "--keystore",
        ks,
        "--check",
        "--passphrase-file",
        wrong_file.to_str().expect("utf-8"),
    ]);
    assert!(!wrong.status.success());
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(err.contains("wrong passphrase for keystore"), "{err}");
    assert!(!err.contains(&hex::encode(secret)), "{err}");
    // Creating over an existing keystore is refused and changes nothing.
    let again = fiamma(&[
        "covenant",
        "keys",
        "new",
        "--keystore",
        ks,
        "--work-factor",
        "10",
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert_eq!(std::fs::read(&keystore).expect("read"), file);
    let _ = PASSPHRASE;
}
