//! The node's wire: generated gRPC and protobuf types of `fiamma.staking.v1` and
//! `fiamma.finality.v1`, the one codec between them and the domain types ([`codec`]), and the
//! typed node client the roles talk through ([`client`]).
//!
//! The `.proto` files under `proto/fiamma/` are the source of truth; the build compiles them
//! (prost messages, tonic clients and servers) and the encoded file descriptor set for gRPC
//! server reflection.

pub mod client;
pub mod codec;

/// The `fiamma.staking.v1` package: records, requests and the `Staking` service.
pub mod staking {
    /// Version 1 of the staking API.
    pub mod v1 {
        #![allow(
            missing_docs,
            clippy::large_enum_variant,
            clippy::doc_lazy_continuation
        )]
        tonic::include_proto!("fiamma.staking.v1");
    }
}

/// The `fiamma.finality.v1` package: proofs, rounds, votes, evidence and the `Finality` service.
pub mod finality {
    /// Version 1 of the finality API.
    pub mod v1 {
        #![allow(
            missing_docs,
            clippy::large_enum_variant,
            clippy::doc_lazy_continuation
        )]
        tonic::include_proto!("fiamma.finality.v1");
    }
}

/// The `fiamma.staker.v1` package: the staker service that `fiamma staker run` serves.
pub mod staker {
    /// Version 1 of the staker API.
    pub mod v1 {
        #![allow(
            missing_docs,
            clippy::large_enum_variant,
            clippy::doc_lazy_continuation
        )]
        tonic::include_proto!("fiamma.staker.v1");
    }
}

/// Encoded `FileDescriptorSet` of every package in this crate, for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("fiamma_descriptor");

/// Encoded `FileDescriptorSet` of the staker service (`fiamma staker run` serves it).
pub const STAKER_FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("staker_descriptor");

#[cfg(test)]
mod tests {
    use super::staking::v1 as pb;
    use prost::Message;

    #[test]
    fn descriptor_set_names_the_staking_service() {
        let set = prost_types::FileDescriptorSet::decode(super::FILE_DESCRIPTOR_SET)
            .expect("the build script writes a valid descriptor set");
        let services: Vec<String> = set
            .file
            .iter()
            .flat_map(|f| {
                let package = f.package().to_owned();
                f.service
                    .iter()
                    .map(move |s| format!("{package}.{}", s.name()))
            })
            .collect();
        assert_eq!(
            services,
            vec![
                "fiamma.staking.v1.Staking".to_owned(),
                "fiamma.finality.v1.Finality".to_owned()
            ]
        );
    }

    #[test]
    fn event_round_trips_through_the_wire_format() {
        let event = pb::Event {
            sequence: 7,
            kind: Some(pb::event::Kind::DelegationStatusChanged(
                pb::DelegationStatusChanged {
                    staking_txid: "ab".repeat(32),
                    verifier_btc_pk: vec![2; 32],
                    from: pb::DelegationStatus::Pending as i32,
                    to: pb::DelegationStatus::Verified as i32,
                    btc_height: 120,
                },
            )),
        };
        let bytes = event.encode_to_vec();
        assert_eq!(pb::Event::decode(bytes.as_slice()).expect("decodes"), event);
    }
}
