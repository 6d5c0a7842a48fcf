//! The public-key side of key custody, shared by every backend: SubjectPublicKeyInfo
//! parsing (RFC 5280 §4.1.2.7, RFC 3279 §2.3, RFC 5480 §2), building SPKIs from a key's
//! public parts, and signature verification with aws-lc-rs.
//!
//! The software backend ([`crate::soft`]) and the PKCS#11 backend ([`crate::pkcs11`]) both
//! describe their keys through `rsa_spki` and `ec_spki`, and every signature is
//! verified through [`verify`] / [`verify_received`] (re-exported at the crate root as
//! [`crate::verify`] and [`crate::verify_received`]), whoever holds the private key.

use aws_lc_rs::signature::{self as sig, UnparsedPublicKey, VerificationAlgorithm};
use const_oid::ObjectIdentifier;
use const_oid::db::rfc5912::{ID_EC_PUBLIC_KEY, RSA_ENCRYPTION, SECP_256_R_1, SECP_384_R_1};
use der::asn1::{Any, AnyRef, BitString, UintRef};
use der::{Decode, Encode};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};

use crate::{Error, KeyAlgorithm, Result, SignatureScheme};

/// Number of significant bits of a big-endian unsigned integer.
pub(crate) fn uint_bits(bytes: &[u8]) -> usize {
    let bytes = match bytes.iter().position(|&b| b != 0) {
        Some(i) => &bytes[i..],
        None => return 0,
    };
    match bytes.first() {
        Some(&first) => (bytes.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
        None => 0,
    }
}

pub(crate) fn rsa_algorithm(bits: usize) -> Result<KeyAlgorithm> {
    match bits {
        2048 => Ok(KeyAlgorithm::Rsa2048),
        3072 => Ok(KeyAlgorithm::Rsa3072),
        4096 => Ok(KeyAlgorithm::Rsa4096),
        _ => Err(Error::Unsupported(format!(
            "RSA key with a {bits}-bit modulus (supported: 2048, 3072, 4096)"
        ))),
    }
}

pub(crate) fn ec_algorithm(curve: ObjectIdentifier) -> Result<KeyAlgorithm> {
    if curve == SECP_256_R_1 {
        Ok(KeyAlgorithm::EcdsaP256)
    } else if curve == SECP_384_R_1 {
        Ok(KeyAlgorithm::EcdsaP384)
    } else {
        Err(Error::Unsupported(format!(
            "EC key on curve {curve} (supported: P-256, P-384)"
        )))
    }
}

/// The kind of public key in a SubjectPublicKeyInfo, with its key bytes.
enum SpkiKey<'a> {
    /// `rsaEncryption`; the bytes are the PKCS#1 `RSAPublicKey`.
    Rsa(&'a [u8]),
    /// `id-ecPublicKey` on a supported curve; the bytes are the SEC1 point.
    Ec(KeyAlgorithm, &'a [u8]),
}

fn parse_spki(spki_der: &[u8]) -> Result<SpkiKey<'_>> {
    let spki = SubjectPublicKeyInfoRef::from_der(spki_der)
        .map_err(|e| Error::BadKey(format!("bad SubjectPublicKeyInfo: {e}")))?;
    let key = spki.subject_public_key.as_bytes().ok_or_else(|| {
        Error::BadKey("SubjectPublicKeyInfo key BIT STRING has unused bits".to_owned())
    })?;
    let alg = spki.algorithm;
    if alg.oid == RSA_ENCRYPTION {
        // RFC 3279 §2.3.1 says NULL; tolerate an absent parameter as many verifiers do.
        if alg.parameters.is_some_and(|p| p != AnyRef::NULL) {
            return Err(Error::BadKey(
                "rsaEncryption AlgorithmIdentifier with non-NULL parameters".to_owned(),
            ));
        }
        Ok(SpkiKey::Rsa(key))
    } else if alg.oid == ID_EC_PUBLIC_KEY {
        let curve = alg.parameters_oid().map_err(|_| {
            Error::Unsupported(
                "EC public key without a namedCurve parameter (explicit curves are not supported)"
                    .to_owned(),
            )
        })?;
        Ok(SpkiKey::Ec(ec_algorithm(curve)?, key))
    } else {
        Err(Error::Unsupported(format!(
            "public key algorithm {} (only RSA and ECDSA P-256/P-384 are supported)",
            alg.oid
        )))
    }
}

fn rsa_public_bits(rsa_public_key: &[u8]) -> Result<usize> {
    let key = pkcs1::RsaPublicKey::<der::asn1::UintRef<'_>>::from_der(rsa_public_key)
        .map_err(|e| Error::BadKey(format!("bad PKCS#1 RSAPublicKey: {e}")))?;
    Ok(uint_bits(key.modulus.as_bytes()))
}

/// The number of bits of the RSA modulus in the SubjectPublicKeyInfo `spki_der`.
///
/// Fails with [`Error::Unsupported`] when the key is not RSA and [`Error::BadKey`] when it
/// does not parse.
pub fn rsa_modulus_bits(spki_der: &[u8]) -> Result<usize> {
    match parse_spki(spki_der) {
        Ok(SpkiKey::Rsa(key)) => rsa_public_bits(key),
        Ok(SpkiKey::Ec(alg, _)) => Err(Error::Unsupported(format!(
            "{alg} public key is not an RSA key"
        ))),
        Err(e) => Err(e),
    }
}

/// The [`KeyAlgorithm`] of the public key in the SubjectPublicKeyInfo `spki_der`: RSA with
/// its modulus size, or the ECDSA curve. Used to check the keys in certificate requests.
///
/// Fails with [`Error::Unsupported`] for other key types and curves and for RSA moduli that
/// are not exactly 2048, 3072 or 4096 bits (the message names the size), and with
/// [`Error::BadKey`] when the structure does not parse.
pub fn spki_algorithm(spki_der: &[u8]) -> Result<KeyAlgorithm> {
    match parse_spki(spki_der)? {
        SpkiKey::Rsa(key) => rsa_algorithm(rsa_public_bits(key)?),
        SpkiKey::Ec(alg, _) => Ok(alg),
    }
}

/// Verifies `signature` over `message` with the public key `spki_der` (a DER
/// SubjectPublicKeyInfo), as a signature of `scheme` (the scheme also fixes the curve).
/// Used to check every signature right after it is made and to check CSR self-signatures.
///
/// Errors: [`Error::BadKey`] when `spki_der` does not parse, [`Error::Unsupported`] when the
/// key type does not fit `scheme`, [`Error::BadSignature`] when the signature is wrong
/// (including RSA keys outside 2048–8192 bits, which aws-lc refuses to verify with).
pub fn verify(
    scheme: SignatureScheme,
    spki_der: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<()> {
    // A scheme also fixes the curve; check the key fits, then verify as received.
    match (parse_spki(spki_der)?, scheme.fits_key_type()) {
        (SpkiKey::Rsa(_), None) => {}
        (SpkiKey::Ec(alg, _), Some(curve)) if alg == curve => {}
        (SpkiKey::Rsa(_), Some(_)) => {
            return Err(Error::Unsupported(format!(
                "signature scheme {scheme:?} does not fit an RSA key"
            )));
        }
        (SpkiKey::Ec(alg, _), _) => {
            return Err(Error::Unsupported(format!(
                "signature scheme {scheme:?} does not fit an {alg} key"
            )));
        }
    }
    verify_received(scheme.received(), spki_der, message, signature)
}

/// Verifies a signature made by someone else (CSRs, certificates of imported CAs, SCEP
/// messages), as its AlgorithmIdentifier says (RFC 4055, RFC 5758).
pub fn verify_received(
    algorithm: crate::ReceivedSignature,
    spki_der: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<()> {
    use crate::{Digest, ReceivedSignature as R};
    let parsed = parse_spki(spki_der)?;
    let (alg, key): (&'static dyn VerificationAlgorithm, &[u8]) = match (algorithm, parsed) {
        (R::RsaPkcs1(Digest::Sha1), SpkiKey::Rsa(k)) => {
            (&sig::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, k)
        }
        (R::RsaPkcs1(Digest::Sha256), SpkiKey::Rsa(k)) => (&sig::RSA_PKCS1_2048_8192_SHA256, k),
        (R::RsaPkcs1(Digest::Sha384), SpkiKey::Rsa(k)) => (&sig::RSA_PKCS1_2048_8192_SHA384, k),
        (R::RsaPkcs1(Digest::Sha512), SpkiKey::Rsa(k)) => (&sig::RSA_PKCS1_2048_8192_SHA512, k),
        (R::RsaPss(Digest::Sha256), SpkiKey::Rsa(k)) => (&sig::RSA_PSS_2048_8192_SHA256, k),
        (R::RsaPss(Digest::Sha384), SpkiKey::Rsa(k)) => (&sig::RSA_PSS_2048_8192_SHA384, k),
        (R::RsaPss(Digest::Sha512), SpkiKey::Rsa(k)) => (&sig::RSA_PSS_2048_8192_SHA512, k),
        (R::Ecdsa(d), SpkiKey::Ec(curve, k)) => {
            let a: &'static dyn VerificationAlgorithm = match (curve, d) {
                (KeyAlgorithm::EcdsaP256, Digest::Sha1) => &sig::ECDSA_P256_SHA1_ASN1,
                (KeyAlgorithm::EcdsaP256, Digest::Sha256) => &sig::ECDSA_P256_SHA256_ASN1,
                (KeyAlgorithm::EcdsaP256, Digest::Sha384) => &sig::ECDSA_P256_SHA384_ASN1,
                (KeyAlgorithm::EcdsaP256, Digest::Sha512) => &sig::ECDSA_P256_SHA512_ASN1,
                (KeyAlgorithm::EcdsaP384, Digest::Sha256) => &sig::ECDSA_P384_SHA256_ASN1,
                (KeyAlgorithm::EcdsaP384, Digest::Sha384) => &sig::ECDSA_P384_SHA384_ASN1,
                (KeyAlgorithm::EcdsaP384, Digest::Sha512) => &sig::ECDSA_P384_SHA512_ASN1,
                (curve, d) => {
                    return Err(Error::Unsupported(format!(
                        "ECDSA with {d:?} on a {curve} key"
                    )));
                }
            };
            (a, k)
        }
        (algorithm, _) => {
            return Err(Error::Unsupported(format!(
                "signature algorithm {algorithm:?} does not fit the key"
            )));
        }
    };
    UnparsedPublicKey::new(alg, key)
        .verify(message, signature)
        .map_err(|_| Error::BadSignature)
}

/// Encodes a SubjectPublicKeyInfo from its parts (RFC 5280 §4.1.2.7).
pub(crate) fn build_spki(oid: ObjectIdentifier, params: Any, key: &[u8]) -> Result<Vec<u8>> {
    let spki = SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid,
            parameters: Some(params),
        },
        subject_public_key: BitString::from_bytes(key)
            .map_err(|e| Error::Crypto(format!("encoding public key: {e}")))?,
    };
    spki.to_der()
        .map_err(|e| Error::Crypto(format!("encoding SubjectPublicKeyInfo: {e}")))
}

/// The SubjectPublicKeyInfo of an RSA key from its PKCS#1 `RSAPublicKey` DER
/// (RFC 3279 §2.3.1: `rsaEncryption` with NULL parameters).
pub(crate) fn rsa_spki(rsa_public_key_der: &[u8]) -> Result<Vec<u8>> {
    build_spki(RSA_ENCRYPTION, Any::null(), rsa_public_key_der)
}

/// The SubjectPublicKeyInfo of an RSA key from its modulus and public exponent (big-endian
/// unsigned integers, as PKCS#11 `CKA_MODULUS` and `CKA_PUBLIC_EXPONENT` hold them).
pub(crate) fn rsa_spki_from_parts(modulus: &[u8], public_exponent: &[u8]) -> Result<Vec<u8>> {
    let der = (|| {
        pkcs1::RsaPublicKey {
            modulus: UintRef::new(modulus)?,
            public_exponent: UintRef::new(public_exponent)?,
        }
        .to_der()
    })()
    .map_err(|e| Error::Crypto(format!("encoding RSA public key: {e}")))?;
    rsa_spki(&der)
}

/// The namedCurve OID of an ECDSA algorithm (RFC 5480 §2.1.1.1); `None` for RSA.
pub(crate) fn curve_oid(algorithm: KeyAlgorithm) -> Option<ObjectIdentifier> {
    match algorithm {
        KeyAlgorithm::EcdsaP256 => Some(SECP_256_R_1),
        KeyAlgorithm::EcdsaP384 => Some(SECP_384_R_1),
        _ => None,
    }
}

/// The SubjectPublicKeyInfo of an EC key from its uncompressed SEC1 point (RFC 5480 §2:
/// `id-ecPublicKey` with the namedCurve parameter).
pub(crate) fn ec_spki(algorithm: KeyAlgorithm, point: &[u8]) -> Result<Vec<u8>> {
    let curve = curve_oid(algorithm)
        .ok_or_else(|| Error::Unsupported(format!("{algorithm} is not an EC key")))?;
    let params =
        Any::encode_from(&curve).map_err(|e| Error::Crypto(format!("encoding curve OID: {e}")))?;
    build_spki(ID_EC_PUBLIC_KEY, params, point)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn uint_bits_counts_significant_bits() {
        assert_eq!(uint_bits(&[]), 0);
        assert_eq!(uint_bits(&[0, 0]), 0);
        assert_eq!(uint_bits(&[1]), 1);
        assert_eq!(uint_bits(&[0x80]), 8);
        assert_eq!(uint_bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(uint_bits(&[0x7f; 256]), 2047);
        assert_eq!(uint_bits(&[0xff; 256]), 2048);
    }

    #[test]
    fn rsa_sizes_other_than_the_three_are_unsupported() {
        assert_eq!(rsa_algorithm(2048).unwrap(), KeyAlgorithm::Rsa2048);
        assert_eq!(rsa_algorithm(3072).unwrap(), KeyAlgorithm::Rsa3072);
        assert_eq!(rsa_algorithm(4096).unwrap(), KeyAlgorithm::Rsa4096);
        for bits in [1024, 2047, 2049, 8192] {
            match rsa_algorithm(bits) {
                Err(Error::Unsupported(msg)) => assert!(msg.contains(&bits.to_string())),
                other => panic!("{bits}: {other:?}"),
            }
        }
    }
}
