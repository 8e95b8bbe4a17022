//! Proofs on disk in Fiamma's arkworks format: a directory holding `vk.bitvm`, `proof.bitvm`
//! and `public_input.bitvm` (Groth16 over BN254), or a directory of such directories.

use std::path::{Path, PathBuf};

use fiamma_finality::zk::{ProofSizeError, ProofSystem, ZkError, ZkProof};

/// The three files of a proof directory.
pub const PARTS: [&str; 3] = ["vk.bitvm", "proof.bitvm", "public_input.bitvm"];

/// Why a path does not give proofs.
#[derive(Debug, thiserror::Error)]
pub enum ProofFileError {
    /// The path cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A proof directory lacks one of its files.
    #[error("{dir}: no {file} (a proof directory holds {})", PARTS.join(", "))]
    Missing {
        /// The directory.
        dir: PathBuf,
        /// The missing file.
        file: &'static str,
    },
    /// Neither a proof directory nor a directory of them.
    #[error("{0}: neither a proof directory (vk.bitvm, proof.bitvm, public_input.bitvm) nor a directory of them")]
    NoProofs(PathBuf),
    /// A part exceeds its size cap.
    #[error("{dir}: {source}")]
    TooLarge {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        source: ProofSizeError,
    },
    /// The files do not decode as a Groth16/BN254 proof.
    #[error("{dir}: malformed proof: {source}")]
    Malformed {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        source: ZkError,
    },
}

fn is_proof_dir(dir: &Path) -> bool {
    PARTS.iter().any(|f| dir.join(f).exists())
}

/// The proof directories `path` names: itself when it holds proof files, else its
/// subdirectories that do, in name order.
///
/// # Errors
/// [`ProofFileError::Read`] or [`ProofFileError::NoProofs`].
pub fn proof_dirs(path: &Path) -> Result<Vec<PathBuf>, ProofFileError> {
    let read = |source| ProofFileError::Read {
        path: path.to_owned(),
        source,
    };
    if !std::fs::metadata(path).map_err(read)?.is_dir() {
        return Err(ProofFileError::NoProofs(path.to_owned()));
    }
    if is_proof_dir(path) {
        return Ok(vec![path.to_owned()]);
    }
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read)? {
        let p = entry.map_err(read)?.path();
        if p.is_dir() && is_proof_dir(&p) {
            dirs.push(p);
        }
    }
    if dirs.is_empty() {
        return Err(ProofFileError::NoProofs(path.to_owned()));
    }
    dirs.sort();
    Ok(dirs)
}

/// The proof in directory `dir`, checked to decode (a well-formed proof may still be invalid:
/// the verifiers' verdict on it is recorded in its round).
///
/// # Errors
/// [`ProofFileError`].
pub fn read_proof(dir: &Path) -> Result<ZkProof, ProofFileError> {
    let mut parts = Vec::with_capacity(PARTS.len());
    for file in PARTS {
        let path = dir.join(file);
        match std::fs::read(&path) {
            Ok(bytes) => parts.push(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ProofFileError::Missing {
                    dir: dir.to_owned(),
                    file,
                })
            }
            Err(source) => return Err(ProofFileError::Read { path, source }),
        }
    }
    let inputs = parts.pop().unwrap_or_default();
    let proof = parts.pop().unwrap_or_default();
    let vk = parts.pop().unwrap_or_default();
    let malformed = |source| ProofFileError::Malformed {
        dir: dir.to_owned(),
        source,
    };
    let zk = ZkProof::new(ProofSystem::Groth16Bn254, vk, proof, inputs).map_err(|source| {
        ProofFileError::TooLarge {
            dir: dir.to_owned(),
            source,
        }
    })?;
    zk.decode().map_err(malformed)?;
    Ok(zk)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/data/zk/fiamma-arkworks-groth16-bn254")
    }

    #[test]
    fn a_directory_of_proof_directories_gives_each_and_bad_input_is_named() {
        let dirs = proof_dirs(&data()).expect("two proofs");
        assert_eq!(dirs.len(), 2);
        for d in &dirs {
            read_proof(d).expect("decodes");
        }
        assert_eq!(proof_dirs(&data().join("valid")).expect("one").len(), 1);

        let tmp = tempfile::tempdir().expect("dir");
        assert!(matches!(
            proof_dirs(tmp.path()),
            Err(ProofFileError::NoProofs(_))
        ));
        assert!(matches!(
            proof_dirs(&tmp.path().join("absent")),
            Err(ProofFileError::Read { .. })
        ));
        std::fs::copy(data().join("valid/vk.bitvm"), tmp.path().join("vk.bitvm")).expect("copy");
        let e = read_proof(tmp.path()).expect_err("missing parts");
        assert!(e.to_string().contains("no proof.bitvm"), "{e}");
        std::fs::write(tmp.path().join("proof.bitvm"), b"junk").expect("write");
        std::fs::copy(
            data().join("valid/public_input.bitvm"),
            tmp.path().join("public_input.bitvm"),
        )
        .expect("copy");
        let e = read_proof(tmp.path()).expect_err("junk proof");
        assert!(e.to_string().contains("malformed proof"), "{e}");
    }
}
