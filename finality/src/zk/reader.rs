//! A cursor over one part of a submission that reads arkworks' compressed encoding element by
//! element, so that every failure names the part, the element and the offset.

use ark_bn254::{Fr, G1Affine, G2Affine};
use ark_ec::short_weierstrass::{Affine, SWCurveConfig, SWFlags};
use ark_ec::AffineRepr;
use ark_ff::Zero;
use ark_serialize::{CanonicalDeserialize, CanonicalDeserializeWithFlags, SerializationError};

use super::error::{Element, Part, PointError, ZkError};

/// Bytes of a compressed BN254 G1 point: one base field element carrying two flag bits.
pub const G1_LEN: usize = 32;
/// Bytes of a compressed BN254 G2 point: one quadratic-extension element (c0 then c1, flags in
/// c1's last byte).
pub const G2_LEN: usize = 64;
/// Bytes of a BN254 scalar (little-endian, no flags).
pub const SCALAR_LEN: usize = 32;
/// Bytes of arkworks' length prefix of a `Vec` (u64, little-endian).
pub const LEN_PREFIX: usize = 8;

/// Reads one part front to back. The offset never passes the end of the bytes.
pub(crate) struct Reader<'a> {
    part: Part,
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(part: Part, bytes: &'a [u8]) -> Self {
        Reader {
            part,
            bytes,
            offset: 0,
        }
    }

    fn take(&mut self, needed: usize) -> Result<&'a [u8], ZkError> {
        let rest = self.bytes.get(self.offset..).unwrap_or_default();
        let Some(taken) = rest.get(..needed) else {
            return Err(ZkError::Truncated {
                part: self.part,
                offset: self.offset,
                needed,
                available: rest.len(),
            });
        };
        self.offset += needed;
        Ok(taken)
    }

    /// A `Vec` length prefix, refused above `max` so that no allocation or read follows an
    /// absurd count.
    pub(crate) fn count(&mut self, max: usize) -> Result<usize, ZkError> {
        let mut prefix = [0u8; LEN_PREFIX];
        prefix.copy_from_slice(self.take(LEN_PREFIX)?);
        let count = u64::from_le_bytes(prefix);
        match usize::try_from(count) {
            Ok(n) if n <= max => Ok(n),
            _ => Err(ZkError::TooManyElements {
                part: self.part,
                count,
                max,
            }),
        }
    }

    /// A G1 point of a key or proof: valid, and not the identity ([`PointError::Identity`]).
    pub(crate) fn g1(&mut self, element: Element) -> Result<G1Affine, ZkError> {
        let bytes = self.take(G1_LEN)?;
        decode_point(bytes)
            .and_then(not_identity)
            .map_err(|reason| self.point_error(element, reason))
    }

    /// A G2 point of a key or proof: valid, and not the identity ([`PointError::Identity`]).
    pub(crate) fn g2(&mut self, element: Element) -> Result<G2Affine, ZkError> {
        let bytes = self.take(G2_LEN)?;
        decode_point(bytes)
            .and_then(not_identity)
            .map_err(|reason| self.point_error(element, reason))
    }

    pub(crate) fn scalar(&mut self, index: usize) -> Result<Fr, ZkError> {
        let bytes = self.take(SCALAR_LEN)?;
        // Exactly SCALAR_LEN bytes are there to read, so the only failure left is a value not
        // below the modulus.
        Fr::deserialize_compressed(bytes).map_err(|_| ZkError::NonCanonicalScalar { index })
    }

    /// Ends the part: every byte must have been consumed.
    pub(crate) fn finish(self) -> Result<(), ZkError> {
        let extra = self.bytes.len() - self.offset;
        if extra == 0 {
            Ok(())
        } else {
            Err(ZkError::TrailingBytes {
                part: self.part,
                consumed: self.offset,
                extra,
            })
        }
    }

    fn point_error(&self, element: Element, reason: PointError) -> ZkError {
        ZkError::Point {
            part: self.part,
            element,
            reason,
        }
    }
}

/// Every point of a Groth16 key and proof is refused at infinity: see [`PointError::Identity`].
fn not_identity<P: SWCurveConfig>(point: Affine<P>) -> Result<Affine<P>, PointError> {
    if point.is_zero() {
        Err(PointError::Identity)
    } else {
        Ok(point)
    }
}

/// Decodes one compressed point exactly as arkworks' validated `deserialize_compressed` does,
/// except that it tells the failures apart and refuses the point at infinity with a non-zero
/// x, which arkworks would accept. `bytes` holds exactly one encoded coordinate.
fn decode_point<P: SWCurveConfig>(bytes: &[u8]) -> Result<Affine<P>, PointError> {
    let (x, flags) = P::BaseField::deserialize_with_flags::<_, SWFlags>(bytes).map_err(|err| {
        match err {
            SerializationError::UnexpectedFlags => {
                PointError::InvalidFlags(bytes.last().copied().unwrap_or_default())
            }
            // The slice holds the whole coordinate, so the read cannot fail: what is left is
            // a coefficient not below the modulus.
            _ => PointError::NonCanonicalCoordinate,
        }
    })?;
    let Some(positive) = flags.is_positive() else {
        return if x.is_zero() {
            Ok(Affine::<P>::zero())
        } else {
            Err(PointError::NonCanonicalInfinity)
        };
    };
    let (smaller, larger) =
        Affine::<P>::get_ys_from_x_unchecked(x).ok_or(PointError::NotOnCurve)?;
    // arkworks flags the smaller of y and -y as "positive".
    let point = Affine::<P>::new_unchecked(x, if positive { smaller } else { larger });
    if point.is_in_correct_subgroup_assuming_on_curve() {
        Ok(point)
    } else {
        Err(PointError::NotInSubgroup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ec::CurveGroup;
    use ark_ff::{Field, PrimeField, UniformRand};
    use ark_serialize::CanonicalSerialize;
    use rand::{rngs::StdRng, SeedableRng};

    fn encode<T: CanonicalSerialize>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        value
            .serialize_compressed(&mut out)
            .expect("writing into a Vec cannot fail");
        out
    }

    #[test]
    fn element_sizes_match_arkworks() {
        assert_eq!(G1Affine::generator().compressed_size(), G1_LEN);
        assert_eq!(G2Affine::generator().compressed_size(), G2_LEN);
        assert_eq!(Fr::from(1u64).compressed_size(), SCALAR_LEN);
    }

    #[test]
    fn random_points_round_trip_and_infinity_is_refused() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..16 {
            let g1 = ark_bn254::G1Projective::rand(&mut rng).into_affine();
            let g2 = ark_bn254::G2Projective::rand(&mut rng).into_affine();
            assert_eq!(
                Reader::new(Part::Proof, &encode(&g1)).g1(Element::A),
                Ok(g1)
            );
            assert_eq!(
                Reader::new(Part::Proof, &encode(&g2)).g2(Element::B),
                Ok(g2)
            );
        }
        let inf = encode(&G2Affine::zero());
        assert_eq!(
            decode_point::<ark_bn254::g2::Config>(&inf),
            Ok(G2Affine::zero())
        );
        assert_eq!(
            Reader::new(Part::Proof, &inf).g2(Element::B),
            Err(ZkError::Point {
                part: Part::Proof,
                element: Element::B,
                reason: PointError::Identity
            })
        );
        assert_eq!(
            Reader::new(Part::VerifyingKey, &encode(&G1Affine::zero())).g1(Element::GammaAbcG1(0)),
            Err(ZkError::Point {
                part: Part::VerifyingKey,
                element: Element::GammaAbcG1(0),
                reason: PointError::Identity
            })
        );
    }

    #[test]
    fn infinity_with_nonzero_x_is_refused_though_arkworks_accepts_it() {
        let mut bytes = encode(&G1Affine::zero());
        bytes[0] = 1;
        assert_eq!(
            G1Affine::deserialize_compressed(&bytes[..]).ok(),
            Some(G1Affine::zero())
        );
        assert_eq!(
            decode_point::<ark_bn254::g1::Config>(&bytes),
            Err(PointError::NonCanonicalInfinity)
        );
    }

    #[test]
    fn both_flag_bits_are_refused() {
        let mut bytes = encode(&G1Affine::generator());
        bytes[G1_LEN - 1] |= 0xc0;
        let last = bytes[G1_LEN - 1];
        assert_eq!(
            decode_point::<ark_bn254::g1::Config>(&bytes),
            Err(PointError::InvalidFlags(last))
        );
    }

    #[test]
    fn coordinate_at_the_modulus_is_not_canonical() {
        // The modulus is below 2^254, so its little-endian bytes carry no flag bit.
        assert_eq!(ark_bn254::Fq::MODULUS_BIT_SIZE, 254);
        let mut bytes = Vec::new();
        ark_bn254::Fq::MODULUS
            .serialize_uncompressed(&mut bytes)
            .expect("writing into a Vec cannot fail");
        assert_eq!(
            decode_point::<ark_bn254::g1::Config>(&bytes),
            Err(PointError::NonCanonicalCoordinate)
        );
    }

    #[test]
    fn x_without_a_curve_point_is_not_on_curve() {
        // Walk x = 0, 1, 2, … until x^3 + 3 is a non-residue.
        let x = (0u64..)
            .map(ark_bn254::Fq::from)
            .find(|x| {
                (x.square() * x + ark_bn254::Fq::from(3u64))
                    .sqrt()
                    .is_none()
            })
            .expect("half of all x have no point");
        let bytes = encode(&x);
        assert_eq!(
            decode_point::<ark_bn254::g1::Config>(&bytes),
            Err(PointError::NotOnCurve)
        );
    }

    #[test]
    fn twist_point_outside_the_subgroup_is_refused() {
        let mut rng = StdRng::seed_from_u64(11);
        let point = loop {
            let x = ark_bn254::Fq2::rand(&mut rng);
            if let Some(p) = G2Affine::get_point_from_x_unchecked(x, false) {
                break p;
            }
        };
        assert!(!point.is_in_correct_subgroup_assuming_on_curve());
        let mut bytes = Vec::new();
        point
            .serialize_with_mode(&mut bytes, ark_serialize::Compress::Yes)
            .expect("writing into a Vec cannot fail");
        assert_eq!(
            decode_point::<ark_bn254::g2::Config>(&bytes),
            Err(PointError::NotInSubgroup)
        );
    }

    #[test]
    fn reader_reports_truncation_counts_and_trailing_bytes() {
        let mut reader = Reader::new(Part::PublicInputs, &[2, 0, 0, 0, 0, 0, 0, 0, 9]);
        assert_eq!(reader.count(4), Ok(2));
        assert_eq!(
            reader.scalar(0),
            Err(ZkError::Truncated {
                part: Part::PublicInputs,
                offset: 8,
                needed: SCALAR_LEN,
                available: 1,
            })
        );
        let mut reader = Reader::new(Part::PublicInputs, &[5, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            reader.count(4),
            Err(ZkError::TooManyElements {
                part: Part::PublicInputs,
                count: 5,
                max: 4,
            })
        );
        let reader = Reader::new(Part::Proof, &[1, 2, 3]);
        assert_eq!(
            reader.finish(),
            Err(ZkError::TrailingBytes {
                part: Part::Proof,
                consumed: 0,
                extra: 3,
            })
        );
    }
}
