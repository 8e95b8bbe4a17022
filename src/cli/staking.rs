//! `fiamma staking …`: derive and show what a staker, verifier or covenant member is about to
//! sign, from keys and parameters alone (no node, no wallet).

use std::str::FromStr;

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::{Amount, Network, OutPoint};
use fiamma_staking::identifiable::IdentifiableStaking;
use fiamma_staking::keys::{parse_xonly_hex, KeyError, StakingKeys};
use fiamma_staking::script::{check_timelock, ScriptError};
use fiamma_staking::taproot::{Leaf, TaprootError, TaprootOutput};
use fiamma_staking::unbonding::{build_unbonding_tx, UnbondingError};
use serde_json::{json, Value};

/// `fiamma staking` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum StakingCommand {
    /// Print the staking output (three leaves, pkScript, address) and the unbonding
    /// transaction with its leaves, as JSON.
    Output(OutputArgs),
}

/// Arguments of `fiamma staking output`. With `--example`, every argument not given takes the
/// value of Babylon's test vector case 2 (3-of-5 covenant committee).
#[derive(Debug, Default, clap::Args)]
pub struct OutputArgs {
    /// The staker's key (32-byte x-only or 33-byte compressed, hex).
    #[arg(long)]
    pub staker_pk: Option<String>,
    /// A verifier key (repeat for several).
    #[arg(long = "verifier-pk")]
    pub verifier_pks: Vec<String>,
    /// A covenant committee key (repeat for each member).
    #[arg(long = "covenant-pk")]
    pub covenant_pks: Vec<String>,
    /// Covenant signatures required.
    #[arg(long)]
    pub covenant_quorum: Option<u32>,
    /// Staking time T in blocks (1..=65535).
    #[arg(long)]
    pub staking_time: Option<u32>,
    /// Unbonding time U in blocks (1..=65535).
    #[arg(long)]
    pub unbonding_time: Option<u32>,
    /// mainnet (or bitcoin), testnet, testnet4, signet or regtest.
    #[arg(long)]
    pub network: Option<String>,
    /// The staking output's outpoint, `txid:vout`; with --staking-value and --unbonding-fee it
    /// yields the unbonding transaction.
    #[arg(long)]
    pub staking_outpoint: Option<String>,
    /// The staked value in satoshis.
    #[arg(long)]
    pub staking_value: Option<u64>,
    /// The unbonding fee in satoshis.
    #[arg(long)]
    pub unbonding_fee: Option<u64>,
    /// Identifiable-staking tag (4 bytes, hex): also print the V0 OP_RETURN.
    #[arg(long)]
    pub tag: Option<String>,
    /// Fill every argument not given from built-in example values.
    #[arg(long)]
    pub example: bool,
}

/// Why `fiamma staking output` refused its input.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A required argument is missing.
    #[error("missing --{0} (or pass --example)")]
    Missing(&'static str),
    /// A key argument does not parse.
    #[error("--{flag} {value}: {error}")]
    Key {
        /// The flag.
        flag: &'static str,
        /// The text given.
        value: String,
        /// Why it was rejected.
        error: KeyError,
    },
    /// The key sets do not form a delegation (duplicate key, bad quorum).
    #[error("{0}")]
    Keys(#[from] KeyError),
    /// An output cannot be built.
    #[error("{0}")]
    Taproot(#[from] TaprootError),
    /// A time is out of range.
    #[error("{0}")]
    Time(#[from] ScriptError),
    /// The unbonding transaction cannot be built.
    #[error("{0}")]
    Unbonding(#[from] UnbondingError),
    /// Unknown network name.
    #[error("unknown network {0:?}: use mainnet, testnet, testnet4, signet or regtest")]
    Network(String),
    /// Outpoint not `txid:vout`.
    #[error("--staking-outpoint {0:?} is not txid:vout")]
    Outpoint(String),
    /// Tag not 4 bytes of hex.
    #[error("--tag {0:?} is not 4 bytes of hex")]
    Tag(String),
    /// The OP_RETURN names exactly one verifier.
    #[error("--tag needs exactly one --verifier-pk, got {0}")]
    TagVerifiers(usize),
    /// Only some of outpoint, value and fee were given.
    #[error("--staking-outpoint, --staking-value and --unbonding-fee go together")]
    PartialUnbonding,
}

/// Case 2 of Babylon's staking vectors: one verifier, a 3-of-5 covenant committee.
mod example {
    pub const STAKER: &str = "03cc327c2a1ee1a70d7033bee61ed2e3e6ffc7c5f5d6c637c4f0d2ddfae8a257fe";
    pub const VERIFIER: &str = "03b5e37d93a8d04daee62838ac680ead407d7cbe0c858525781f8834495be0bce7";
    pub const COVENANTS: [&str; 5] = [
        "02cc5c77da065c490a320834fdcf2c3da70ecd442054c90f874a1edb4669607b83",
        "022f57b6d267043beda2deebab1187a67316121f1eac24047c16d1209c5e6cd0a5",
        "03784bdab9a1c71ea51fa5904227e721681453e59d20af3d97485e79e5518bdfff",
        "03f31cf8fb9ee1d9157e172d65b1bd00a0b54cee3906df13ced709bfd8d407e9a2",
        "035c3e1bb7c6b475a9caeebcb09fab74546a9b8a364dd0ccede7e5aea5c5b12ed0",
    ];
    pub const QUORUM: u32 = 3;
    pub const STAKING_TIME: u32 = 10_000;
    pub const UNBONDING_TIME: u32 = 50;
    pub const NETWORK: &str = "mainnet";
    pub const OUTPOINT: &str = "0000000000000000000000000000000000000000000000000000000000000000:0";
    pub const VALUE: u64 = 1_000_000;
    pub const UNBONDING_FEE: u64 = 20_000;
    pub const TAG: &str = "01020304";
}

impl OutputArgs {
    /// Fills every argument not given from [`example`].
    fn with_example_defaults(mut self) -> Self {
        let fill = |v: &mut Option<String>, d: &str| {
            v.get_or_insert_with(|| d.to_owned());
        };
        fill(&mut self.staker_pk, example::STAKER);
        if self.verifier_pks.is_empty() {
            self.verifier_pks = vec![example::VERIFIER.to_owned()];
        }
        if self.covenant_pks.is_empty() {
            self.covenant_pks = example::COVENANTS.iter().map(|k| k.to_string()).collect();
        }
        self.covenant_quorum.get_or_insert(example::QUORUM);
        self.staking_time.get_or_insert(example::STAKING_TIME);
        self.unbonding_time.get_or_insert(example::UNBONDING_TIME);
        fill(&mut self.network, example::NETWORK);
        fill(&mut self.staking_outpoint, example::OUTPOINT);
        self.staking_value.get_or_insert(example::VALUE);
        self.unbonding_fee.get_or_insert(example::UNBONDING_FEE);
        fill(&mut self.tag, example::TAG);
        self
    }
}

fn parse_keys(
    flag: &'static str,
    values: &[String],
) -> Result<Vec<bitcoin::secp256k1::XOnlyPublicKey>, OutputError> {
    values
        .iter()
        .map(|v| {
            parse_xonly_hex(v).map_err(|error| OutputError::Key {
                flag,
                value: v.clone(),
                error,
            })
        })
        .collect()
}

fn parse_network(name: &str) -> Result<Network, OutputError> {
    match name {
        "mainnet" => Ok(Network::Bitcoin),
        other => Network::from_str(other).map_err(|_| OutputError::Network(other.to_owned())),
    }
}

fn leaves_json(output: &TaprootOutput, network: Network) -> Result<Value, OutputError> {
    let mut leaves = serde_json::Map::new();
    for (leaf, name) in [
        (Leaf::Timelock, "timelock_script"),
        (Leaf::Unbonding, "unbonding_script"),
        (Leaf::Slashing, "slashing_script"),
    ] {
        if let Ok(script) = output.leaf_script(leaf) {
            leaves.insert(name.into(), json!(hex::encode(script.as_bytes())));
            let control_block = output.control_block(leaf)?.serialize();
            let key = format!("{}_control_block", name.trim_end_matches("_script"));
            leaves.insert(key, json!(hex::encode(control_block)));
        }
    }
    leaves.insert(
        "pk_script".into(),
        json!(hex::encode(output.script_pubkey().as_bytes())),
    );
    leaves.insert("address".into(), json!(output.address(network).to_string()));
    Ok(Value::Object(leaves))
}

/// Derives the JSON document of `fiamma staking output` from its arguments.
pub fn derive_output(args: OutputArgs) -> Result<Value, OutputError> {
    let args = if args.example {
        args.with_example_defaults()
    } else {
        args
    };
    let staker = parse_xonly_hex(
        args.staker_pk
            .as_deref()
            .ok_or(OutputError::Missing("staker-pk"))?,
    )
    .map_err(|error| OutputError::Key {
        flag: "staker-pk",
        value: args.staker_pk.clone().unwrap_or_default(),
        error,
    })?;
    if args.verifier_pks.is_empty() {
        return Err(OutputError::Missing("verifier-pk"));
    }
    if args.covenant_pks.is_empty() {
        return Err(OutputError::Missing("covenant-pk"));
    }
    let verifiers = parse_keys("verifier-pk", &args.verifier_pks)?;
    let covenants = parse_keys("covenant-pk", &args.covenant_pks)?;
    let quorum = args
        .covenant_quorum
        .ok_or(OutputError::Missing("covenant-quorum"))?;
    let staking_time = args
        .staking_time
        .ok_or(OutputError::Missing("staking-time"))?;
    let unbonding_time = args
        .unbonding_time
        .ok_or(OutputError::Missing("unbonding-time"))?;
    let network = parse_network(
        args.network
            .as_deref()
            .ok_or(OutputError::Missing("network"))?,
    )?;

    let keys = StakingKeys::new(staker, &verifiers, &covenants, quorum)?;
    let staking = TaprootOutput::staking(&keys, staking_time)?;
    let unbonding = TaprootOutput::unbonding(&keys, unbonding_time)?;

    let hexes = |keys: &[bitcoin::secp256k1::XOnlyPublicKey]| -> Vec<String> {
        keys.iter().map(|k| hex::encode(k.serialize())).collect()
    };
    let mut doc = json!({
        "network": network.to_string(),
        "staker_pk": hex::encode(staker.serialize()),
        "verifier_pks": hexes(keys.verifiers()),
        "covenant_pks": hexes(keys.covenants()),
        "covenant_quorum": quorum,
        "staking_time": staking_time,
        "unbonding_time": unbonding_time,
        "staking_output": leaves_json(&staking, network)?,
    });

    let mut unbonding_json = leaves_json(&unbonding, network)?;
    match (
        &args.staking_outpoint,
        args.staking_value,
        args.unbonding_fee,
    ) {
        (Some(outpoint), Some(value), Some(fee)) => {
            let outpoint = OutPoint::from_str(outpoint)
                .map_err(|_| OutputError::Outpoint(outpoint.clone()))?;
            let value = Amount::from_sat(value);
            let (tx, _) = build_unbonding_tx(
                &keys,
                outpoint,
                value,
                unbonding_time,
                Amount::from_sat(fee),
            )?;
            doc["staking_output"]["value"] = json!(value.to_sat());
            unbonding_json["value"] = json!(tx.output[0].value.to_sat());
            unbonding_json["txid"] = json!(tx.compute_txid().to_string());
            unbonding_json["transaction"] = json!(serialize_hex(&tx));
        }
        (None, None, None) => {}
        _ => return Err(OutputError::PartialUnbonding),
    }
    doc["unbonding"] = unbonding_json;

    if let Some(tag_hex) = &args.tag {
        let tag = hex::decode(tag_hex)
            .ok()
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .ok_or_else(|| OutputError::Tag(tag_hex.clone()))?;
        let [verifier] = keys.verifiers() else {
            return Err(OutputError::TagVerifiers(keys.verifiers().len()));
        };
        let staking_time = check_timelock(staking_time)?;
        let op_return = IdentifiableStaking {
            tag,
            staker,
            verifier: *verifier,
            staking_time,
        };
        doc["op_return"] = json!(hex::encode(op_return.script().as_bytes()));
    }
    Ok(doc)
}

/// Runs a `fiamma staking` subcommand.
pub async fn run(cmd: StakingCommand) -> Result<(), super::CliError> {
    match cmd {
        StakingCommand::Output(args) => {
            let doc = derive_output(args)?;
            println!("{}", serde_json::to_string_pretty(&doc)?);
            Ok(())
        }
    }
}
