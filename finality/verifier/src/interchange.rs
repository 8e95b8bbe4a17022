//! The slashing-protection file, in the spirit of Ethereum's EIP-3076: every network the
//! verifier joined, with its randomness salt, its commitments and its signed rounds, so that a
//! verifier moves to another machine (or store) without ever signing a second message for a
//! round. Import merges and never lowers: it only adds rows, and refuses the whole file when it
//! disagrees with what is recorded.

use bitcoin::secp256k1::XOnlyPublicKey;
use fiamma_finality::commitment::RandomnessCommitment;
use serde::{Deserialize, Serialize};

use crate::store::{Network, SignedRound, StoreError, VerifierStore};

/// The format name written in the file.
pub const FORMAT: &str = "fiamma-verifier-slashing-protection";
/// The format version written in the file.
pub const VERSION: u32 = 1;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interchange {
    /// Format and version.
    pub metadata: Metadata,
    /// One entry per network.
    pub data: Vec<NetworkRecord>,
}

/// Format and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// [`FORMAT`].
    pub interchange_format: String,
    /// [`VERSION`].
    pub interchange_format_version: u32,
}

/// What a verifier did on one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkRecord {
    /// The verifier's key (hex, x-only).
    pub verifier_btc_pk: String,
    /// Chain id.
    pub chain_id: String,
    /// Module address.
    pub module_address: String,
    /// The salt its randomness is bound to (hex, 32 bytes).
    pub randomness_salt: String,
    /// Its randomness commitments.
    pub commitments: Vec<CommitmentRecord>,
    /// Its signed rounds.
    pub signed_rounds: Vec<SignedRecord>,
}

/// One commitment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitmentRecord {
    /// First round.
    pub start_round: u64,
    /// Rounds.
    pub num_pub_rand: u64,
    /// Merkle root (hex).
    pub root: String,
}

/// One signed round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedRecord {
    /// The round.
    pub round: u64,
    /// sha256 of the vote message (hex).
    pub message_hash: String,
    /// The vote as sent (hex protobuf `FinalityVote`, or `CheckpointVote` on a checkpoint
    /// round), when known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub vote: String,
}

/// Why a file cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum InterchangeError {
    /// The file is not of this format or version.
    #[error("not a {FORMAT} file of version {VERSION}")]
    Format,
    /// A field does not decode.
    #[error("field {field}: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The file disagrees with the store; nothing was imported.
    #[error("refusing to import: {0}; nothing was imported")]
    Conflict(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn field(field: &'static str, reason: impl Into<String>) -> InterchangeError {
    InterchangeError::Field {
        field,
        reason: reason.into(),
    }
}

fn hex32(name: &'static str, text: &str) -> Result<[u8; 32], InterchangeError> {
    let bytes = hex::decode(text).map_err(|e| field(name, e.to_string()))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| field(name, format!("{} bytes, expected 32", bytes.len())))
}

/// Everything `store` recorded.
///
/// # Errors
/// [`StoreError`].
pub async fn export(store: &VerifierStore) -> Result<Interchange, StoreError> {
    let mut data = Vec::new();
    for (network, key, salt) in store.networks().await? {
        let commitments = store
            .commitments(&network)
            .await?
            .iter()
            .map(|c| CommitmentRecord {
                start_round: c.start(),
                num_pub_rand: c.num(),
                root: hex::encode(c.root()),
            })
            .collect();
        let signed_rounds = store
            .signed_rounds(&network)
            .await?
            .into_iter()
            .map(|s| SignedRecord {
                round: s.round,
                message_hash: hex::encode(s.message_hash),
                vote: hex::encode(s.vote),
            })
            .collect();
        data.push(NetworkRecord {
            verifier_btc_pk: key.to_string(),
            chain_id: network.chain_id,
            module_address: network.module_address,
            randomness_salt: hex::encode(salt),
            commitments,
            signed_rounds,
        });
    }
    Ok(Interchange {
        metadata: Metadata {
            interchange_format: FORMAT.to_owned(),
            interchange_format_version: VERSION,
        },
        data,
    })
}

/// What an import added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Imported {
    /// Networks new to the store.
    pub networks: usize,
    /// Commitments added.
    pub commitments: usize,
    /// Signed rounds added.
    pub signed_rounds: usize,
}

struct Decoded {
    network: Network,
    key: XOnlyPublicKey,
    salt: [u8; 32],
    commitments: Vec<RandomnessCommitment>,
    signed: Vec<SignedRound>,
}

fn decode(r: &NetworkRecord) -> Result<Decoded, InterchangeError> {
    let key_bytes =
        hex::decode(&r.verifier_btc_pk).map_err(|e| field("verifier_btc_pk", e.to_string()))?;
    let key = XOnlyPublicKey::from_slice(&key_bytes)
        .map_err(|e| field("verifier_btc_pk", e.to_string()))?;
    let commitments = r
        .commitments
        .iter()
        .map(|c| {
            RandomnessCommitment::new(
                c.start_round,
                c.num_pub_rand,
                hex32("commitments.root", &c.root)?,
            )
            .map_err(|e| field("commitments", e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let signed = r
        .signed_rounds
        .iter()
        .map(|s| {
            Ok(SignedRound {
                round: s.round,
                message_hash: hex32("signed_rounds.message_hash", &s.message_hash)?,
                vote: hex::decode(&s.vote)
                    .map_err(|e| field("signed_rounds.vote", e.to_string()))?,
            })
        })
        .collect::<Result<Vec<_>, InterchangeError>>()?;
    Ok(Decoded {
        network: Network {
            chain_id: r.chain_id.clone(),
            module_address: r.module_address.clone(),
        },
        key,
        salt: hex32("randomness_salt", &r.randomness_salt)?,
        commitments,
        signed,
    })
}

/// Merges `file` into `store`: checks every entry against what is recorded first (a signed
/// round recorded for another message, another salt or another key for a network, a
/// commitment overlapping a different one refuse the whole file), then only adds rows. Run it
/// while the daemon is stopped.
///
/// # Errors
/// [`InterchangeError`]; on a refusal nothing was added.
pub async fn import(
    store: &VerifierStore,
    file: &Interchange,
) -> Result<Imported, InterchangeError> {
    if file.metadata.interchange_format != FORMAT
        || file.metadata.interchange_format_version != VERSION
    {
        return Err(InterchangeError::Format);
    }
    let decoded = file
        .data
        .iter()
        .map(decode)
        .collect::<Result<Vec<_>, _>>()?;
    // Check everything before writing anything.
    for d in &decoded {
        let salt = match store.salt(&d.network, &d.key).await {
            Ok(s) => s,
            Err(StoreError::ForeignKey { recorded, .. }) => {
                return Err(InterchangeError::Conflict(format!(
                    "network {} is recorded for verifier {recorded}, the file is for {}",
                    d.network, d.key
                )))
            }
            Err(e) => return Err(e.into()),
        };
        if salt.is_some_and(|s| s != d.salt) {
            return Err(InterchangeError::Conflict(format!(
                "network {} is recorded with another randomness salt: the file comes from a store that joined it separately",
                d.network
            )));
        }
        let ours = store.commitments(&d.network).await?;
        for c in &d.commitments {
            if ours.iter().any(|o| o.overlaps(c) && o != c) {
                return Err(InterchangeError::Conflict(format!(
                    "commitment from round {} on {} overlaps a different recorded one",
                    c.start(),
                    d.network
                )));
            }
        }
        for s in &d.signed {
            if let Some(existing) = store.signed(&d.network, s.round).await? {
                if existing.message_hash != s.message_hash {
                    return Err(InterchangeError::Conflict(format!(
                        "round {} on {} is recorded as signed for another message",
                        s.round, d.network
                    )));
                }
            }
        }
    }
    let mut imported = Imported::default();
    for d in &decoded {
        if store.salt(&d.network, &d.key).await?.is_none() {
            store.join(&d.network, &d.key, &d.salt).await?;
            imported.networks += 1;
        }
        let ours = store.commitments(&d.network).await?;
        for c in &d.commitments {
            if !ours.contains(c) {
                store.record_commitment(&d.network, c).await?;
                imported.commitments += 1;
            }
        }
        for s in &d.signed {
            if store.signed(&d.network, s.round).await?.is_none() {
                store.protect(&d.network, s).await?;
                imported.signed_rounds += 1;
            }
        }
    }
    Ok(imported)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::secp256k1::{Keypair, SECP256K1};

    fn key() -> XOnlyPublicKey {
        Keypair::from_seckey_slice(SECP256K1, &[5; 32])
            .expect("valid")
            .x_only_public_key()
            .0
    }

    fn net() -> Network {
        Network {
            chain_id: "c".into(),
            module_address: "m".into(),
        }
    }

    fn signed(round: u64, hash: u8) -> SignedRound {
        SignedRound {
            round,
            message_hash: [hash; 32],
            vote: vec![hash, 1],
        }
    }

    async fn store_with(rounds: &[(u64, u8)]) -> VerifierStore {
        let store = VerifierStore::open("sqlite::memory:").await.expect("open");
        store.join(&net(), &key(), &[3; 32]).await.expect("join");
        store
            .record_commitment(
                &net(),
                &RandomnessCommitment::new(1, 10, [4; 32]).expect("range"),
            )
            .await
            .expect("commit");
        for (r, h) in rounds {
            store.protect(&net(), &signed(*r, *h)).await.expect("sign");
        }
        store
    }

    #[tokio::test]
    async fn export_then_import_into_an_empty_store_carries_everything() {
        let from = store_with(&[(1, 1), (2, 2)]).await;
        let file = export(&from).await.expect("export");
        let text = serde_json::to_string(&file).expect("json");
        let back: Interchange = serde_json::from_str(&text).expect("parse");
        let to = VerifierStore::open("sqlite::memory:").await.expect("open");
        let done = import(&to, &back).await.expect("import");
        assert_eq!(
            done,
            Imported {
                networks: 1,
                commitments: 1,
                signed_rounds: 2
            }
        );
        assert_eq!(export(&to).await.expect("export"), file);
        // Importing again adds nothing.
        assert_eq!(
            import(&to, &back).await.expect("again"),
            Imported::default()
        );
    }

    #[tokio::test]
    async fn import_merges_and_never_lowers() {
        let newer = store_with(&[(1, 1), (2, 2), (3, 3)]).await;
        let older = export(&store_with(&[(1, 1)]).await).await.expect("export");
        let done = import(&newer, &older).await.expect("import");
        assert_eq!(done, Imported::default());
        assert_eq!(newer.signed_rounds(&net()).await.expect("read").len(), 3);
    }

    #[tokio::test]
    async fn a_file_that_signed_another_message_is_refused_whole() {
        let store = store_with(&[(2, 2)]).await;
        let other = store_with(&[(1, 1), (2, 9)]).await;
        let file = export(&other).await.expect("export");
        let refused = import(&store, &file).await;
        assert!(
            matches!(refused, Err(InterchangeError::Conflict(_))),
            "{refused:?}"
        );
        // Round 1 was not added either.
        assert_eq!(store.signed(&net(), 1).await.expect("read"), None);
    }

    #[tokio::test]
    async fn another_salt_for_a_network_is_refused() {
        let store = store_with(&[]).await;
        let mut file = export(&store).await.expect("export");
        file.data[0].randomness_salt = hex::encode([8u8; 32]);
        assert!(matches!(
            import(&store, &file).await,
            Err(InterchangeError::Conflict(_))
        ));
    }
}
