//! The sizes and fees of `CHECKPOINTS.md` §13.10, measured from built and signed
//! transactions for 4, 20 and 100 verifiers with equal stakes. Run with `--nocapture` to see
//! the table.

mod checkpoint_fixture;

use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness};
use checkpoint_fixture::Fixture;
use fiamma_finality::checkpoint::{
    check_complete, quorum_witness, recovery_witness, CheckpointKind, CheckpointLeaf,
    CANDIDATE_BASE_SIZE, THRESHOLD,
};

/// One row of the table.
#[derive(Debug, PartialEq, Eq)]
struct Row {
    n: usize,
    script_bytes: usize,
    min_quorum: usize,
    witness_min: usize,
    witness_all: usize,
    vsize_min: u64,
    vsize_all: u64,
    package_all: u64,
    fee_at_10: u64,
}

/// The fee-paying child: the P2A input, one P2TR key-path input, one P2TR output.
fn child_vsize() -> u64 {
    let input = |vout| TxIn {
        previous_output: OutPoint::new(Txid::all_zeros(), vout),
        script_sig: ScriptBuf::new(),
        sequence: Sequence::MAX,
        witness: Witness::new(),
    };
    let mut key_path = input(1);
    key_path.witness.push([7u8; 64]);
    let tx = Transaction {
        version: Version(3),
        lock_time: LockTime::ZERO,
        input: vec![input(2), key_path],
        output: vec![TxOut {
            value: Amount::from_sat(10_000),
            script_pubkey: ScriptBuf::from_bytes([&[0x51, 0x20][..], &[9; 32]].concat()),
        }],
    };
    tx.vsize() as u64
}

fn measure(n: u16) -> Row {
    let f = Fixture::equal_stakes(n, CheckpointKind::Quorum);
    let candidate = &f.candidate;
    assert_eq!(
        bitcoin::consensus::serialize(&candidate.tx).len(),
        CANDIDATE_BASE_SIZE
    );
    let votes = f.votes();
    let sighash = candidate.message.sighash();
    // Equal stakes: the smallest qualifying count.
    let weight = f.set.members()[0].weight;
    let min_quorum = (THRESHOLD as usize).div_ceil(weight as usize);
    let signed = |count: usize| {
        let complete = check_complete(&f.set, &sighash, &votes[..count]).expect("complete");
        let mut tx = candidate.tx.clone();
        tx.input[0].witness = quorum_witness(&candidate.base_output, &f.set, &complete);
        tx
    };
    assert!(check_complete(&f.set, &sighash, &votes[..min_quorum - 1]).is_err());
    let (min, all) = (signed(min_quorum), signed(votes.len()));
    let witness_min = min.input[0].witness.size();
    let witness_all = all.input[0].witness.size();
    assert_eq!(min.weight().to_wu() as usize, 786 + witness_min);
    let package_all = all.vsize() as u64 + child_vsize();
    Row {
        n: votes.len(),
        script_bytes: candidate
            .base_output
            .leaf_script(CheckpointLeaf::Quorum)
            .len(),
        min_quorum,
        witness_min,
        witness_all,
        vsize_min: min.vsize() as u64,
        vsize_all: all.vsize() as u64,
        package_all,
        fee_at_10: package_all * 10,
    }
}

#[test]
fn sizes_and_fees_match_the_table() {
    assert_eq!(child_vsize(), 153);
    println!("| n | script B | min quorum | witness WU min / all | candidate vB min / all | package vB (all sign) | fee @ 10 sat/vB |");
    let rows: Vec<Row> = [4, 20, 100].into_iter().map(measure).collect();
    for r in &rows {
        println!(
            "| {} | {} | {} | {} / {} | {} / {} | {} | {} |",
            r.n,
            r.script_bytes,
            r.min_quorum,
            r.witness_min,
            r.witness_all,
            r.vsize_min,
            r.vsize_all,
            r.package_all,
            r.fee_at_10
        );
    }
    let table = [
        (4, 174, 3, 438, 502, 306, 322, 475, 4_750),
        (20, 846, 14, 1_832, 2_216, 655, 751, 904, 9_040),
        (100, 4_206, 67, 8_664, 10_776, 2_363, 2_891, 3_044, 30_440),
    ];
    for (r, t) in rows.iter().zip(table) {
        assert_eq!(
            (
                r.n,
                r.script_bytes,
                r.min_quorum,
                r.witness_min,
                r.witness_all,
                r.vsize_min,
                r.vsize_all,
                r.package_all,
                r.fee_at_10
            ),
            t
        );
    }
}

/// §13.10: any set of ≤ 365 keys fits TRUC's 10,000 vB with every member signing.
#[test]
fn three_hundred_sixty_five_signers_fit_truc() {
    let row = measure(365);
    println!("n = 365: all signing {} vB", row.vsize_all);
    assert!(row.vsize_all <= 10_000, "{}", row.vsize_all);
}

/// §13.8: the recovery spend of 5 keys with q = 3 is about 307 vB.
#[test]
fn recovery_spend_size() {
    let f = Fixture::equal_stakes(1, CheckpointKind::Recovery);
    let mut tx = f.candidate.tx.clone();
    tx.input[0].witness = recovery_witness(
        &f.candidate.base_output,
        &f.recovery,
        &f.candidate.message.sighash(),
        &f.committee_sigs(),
    )
    .expect("witness");
    println!("recovery spend, 5 keys, q = 3: {} vB", tx.vsize());
    assert_eq!(tx.vsize(), 307);
}
