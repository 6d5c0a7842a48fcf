//! The DER/PKCS#7 toolkit every crate above `hsm` shares, and the ASN.1 pieces the CA
//! encodes itself.
//!
//! - [`oid`]: every object identifier privca names (const-oid's database, plus the few
//!   private ones);
//! - [`write`](mod@write): the one DER writer for structures built from encoded parts;
//! - [`pkcs7`]: the certs-only SignedData SCEP and EST answer with;
//! - here: the TBSCertificate the CA signs, the outer "signed object" shared by
//!   certificates, CRLs and OCSP responses, the one mapping between AlgorithmIdentifiers
//!   and signature schemes ([`signature_algorithm`] out, [`received_algorithm_with`] in),
//!   times and serial numbers.
//!
//! x509-cert's `TbsCertificate` fields are crate-private, so the CA encodes its own
//! TBSCertificate (RFC 5280 §4.1) from x509-cert's component types; the result decodes as
//! an `x509_cert::Certificate`, which the tests check.

use const_oid::ObjectIdentifier;
use der::asn1::{AnyRef, BitString, GeneralizedTime, Null, UtcTime};
use der::{Decode, Encode, Sequence};
use hsm::SignatureScheme;
use sha1::Digest as _;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use crate::{Error, Result};

pub mod oid;
pub mod pkcs7;
pub mod write;

pub use pkcs7::certs_only;

/// TBSCertificate (RFC 5280 §4.1), always version 3 with extensions.
#[derive(Clone, Debug, Sequence)]
pub struct TbsCertificate {
    /// `[0] EXPLICIT Version` — always v3 (value 2).
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    pub version: u8,
    /// Serial number.
    pub serial_number: SerialNumber,
    /// Signature algorithm (must equal the outer one).
    pub signature: AlgorithmIdentifierOwned,
    /// Issuer name.
    pub issuer: Name,
    /// Validity.
    pub validity: Validity,
    /// Subject name.
    pub subject: Name,
    /// Subject public key.
    pub subject_public_key_info: SubjectPublicKeyInfoOwned,
    /// `[3] EXPLICIT Extensions`.
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT")]
    pub extensions: Vec<Extension>,
}

/// The outer structure shared by Certificate (RFC 5280 §4.1), CertificateList (§5.1):
/// the to-be-signed DER, the signature algorithm and the signature.
#[derive(Clone, Debug, Sequence)]
pub struct SignedObject<'a> {
    /// The to-be-signed part, as encoded.
    pub tbs: AnyRef<'a>,
    /// Signature algorithm.
    pub algorithm: AlgorithmIdentifierOwned,
    /// Signature value.
    pub signature: BitString,
}

/// RSASSA-PSS-params (RFC 4055 §3.1) with explicit hash, MGF1 and salt length.
#[derive(Clone, Debug, Sequence)]
struct RsaPssParams {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    hash: AlgorithmIdentifierOwned,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT")]
    mask_gen: AlgorithmIdentifierOwned,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT")]
    salt_length: u8,
}

fn null_param() -> Option<der::Any> {
    Some(der::Any::from(Null))
}

fn hash_alg(oid: ObjectIdentifier) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid,
        parameters: null_param(),
    }
}

/// The AlgorithmIdentifier a signature of `scheme` is labelled with.
pub fn signature_algorithm(scheme: SignatureScheme) -> Result<AlgorithmIdentifierOwned> {
    let rsa = |oid| AlgorithmIdentifierOwned {
        oid,
        parameters: null_param(),
    };
    let ecdsa = |oid| AlgorithmIdentifierOwned {
        oid,
        parameters: None,
    };
    let pss = |hash: ObjectIdentifier, salt: u8| -> Result<AlgorithmIdentifierOwned> {
        let params = RsaPssParams {
            hash: hash_alg(hash),
            mask_gen: AlgorithmIdentifierOwned {
                oid: oid::MGF1,
                parameters: Some(der::Any::encode_from(&hash_alg(hash))?),
            },
            salt_length: salt,
        };
        Ok(AlgorithmIdentifierOwned {
            oid: oid::RSASSA_PSS,
            parameters: Some(der::Any::encode_from(&params)?),
        })
    };
    Ok(match scheme {
        SignatureScheme::RsaPkcs1Sha256 => rsa(oid::SHA256_WITH_RSA),
        SignatureScheme::RsaPkcs1Sha384 => rsa(oid::SHA384_WITH_RSA),
        SignatureScheme::RsaPkcs1Sha512 => rsa(oid::SHA512_WITH_RSA),
        SignatureScheme::RsaPssSha256 => pss(oid::SHA256, 32)?,
        SignatureScheme::RsaPssSha384 => pss(oid::SHA384, 48)?,
        SignatureScheme::RsaPssSha512 => pss(oid::SHA512, 64)?,
        SignatureScheme::EcdsaP256Sha256 => ecdsa(oid::ECDSA_WITH_SHA256),
        SignatureScheme::EcdsaP384Sha384 => ecdsa(oid::ECDSA_WITH_SHA384),
    })
}

/// What a received signature AlgorithmIdentifier names, for verifying signatures made
/// by others (CSRs, imported CA certificates). `None` for algorithms the CA does not
/// accept: SHA-1 and MD5 are refused here ([`received_algorithm_with`] admits SHA-1 where
/// a protocol needs it).
pub fn received_algorithm(
    alg: &spki::AlgorithmIdentifierRef<'_>,
) -> Option<hsm::ReceivedSignature> {
    received_algorithm_with(alg, Legacy::default())
}

/// Legacy forms of a received signature algorithm that a caller accepts beside the ones
/// [`received_algorithm`] names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Legacy {
    /// sha1WithRSAEncryption (RFC 3279 §2.2.1): SCEP clients sign CSRs and messages with
    /// it (RFC 8894 §3.5.2).
    pub sha1_rsa: bool,
    /// ecdsa-with-SHA1 (RFC 3279 §2.2.3).
    pub sha1_ecdsa: bool,
    /// A CMS SignerInfo whose signatureAlgorithm names only the key type (rsaEncryption,
    /// id-ecPublicKey), the digest being the SignerInfo's digestAlgorithm (RFC 5652 §5.3,
    /// RFC 3370 §3.2, RFC 5753 §7.1.3): that digest.
    pub key_only_digest: Option<hsm::Digest>,
}

/// The one mapping from a received signature AlgorithmIdentifier to how the signature is
/// verified (RFC 4055 §5, RFC 5758 §3.2, RFC 3279 §2.2), with the `legacy` forms the caller
/// admits. `None` for everything else (MD5, PSS with other than the matching MGF1 and salt,
/// unknown algorithms).
pub fn received_algorithm_with(
    alg: &spki::AlgorithmIdentifierRef<'_>,
    legacy: Legacy,
) -> Option<hsm::ReceivedSignature> {
    use hsm::{Digest, ReceivedSignature as R};
    Some(match alg.oid {
        oid::SHA1_WITH_RSA if legacy.sha1_rsa => R::RsaPkcs1(Digest::Sha1),
        oid::ECDSA_WITH_SHA1 if legacy.sha1_ecdsa => R::Ecdsa(Digest::Sha1),
        oid::RSA_ENCRYPTION => R::RsaPkcs1(legacy.key_only_digest?),
        oid::EC_PUBLIC_KEY => R::Ecdsa(legacy.key_only_digest?),
        oid::SHA256_WITH_RSA => R::RsaPkcs1(Digest::Sha256),
        oid::SHA384_WITH_RSA => R::RsaPkcs1(Digest::Sha384),
        oid::SHA512_WITH_RSA => R::RsaPkcs1(Digest::Sha512),
        oid::ECDSA_WITH_SHA256 => R::Ecdsa(Digest::Sha256),
        oid::ECDSA_WITH_SHA384 => R::Ecdsa(Digest::Sha384),
        oid::ECDSA_WITH_SHA512 => R::Ecdsa(Digest::Sha512),
        oid::RSASSA_PSS => {
            let params = alg.parameters.as_ref()?;
            let p: RsaPssParams = params.decode_as().ok()?;
            match (p.hash.oid, p.salt_length) {
                (oid::SHA256, 32) => R::RsaPss(Digest::Sha256),
                (oid::SHA384, 48) => R::RsaPss(Digest::Sha384),
                (oid::SHA512, 64) => R::RsaPss(Digest::Sha512),
                _ => return None,
            }
        }
        _ => return None,
    })
}

/// Verifies the self-signature of a DER PKCS#10 request, its proof of possession
/// (RFC 2986 §4.2): the signature over the CertificationRequestInfo as received, with the
/// key the request carries, by the algorithm [`received_algorithm_with`] names under
/// `legacy`. Errors carry texts safe for the client: an algorithm outside the list is
/// [`Error::UnsupportedAlgorithm`], a signature that does not verify
/// [`Error::BadSignature`], anything unreadable [`Error::BadRequest`]. `crate::csr` and
/// SCEP's messageData check both use it.
pub fn verify_csr_signature(der: &[u8], legacy: Legacy) -> Result<()> {
    let bad = |e: der::Error| Error::BadRequest(format!("CSR is not valid DER PKCS#10: {e}"));
    let outer = SignedObject::from_der(der).map_err(bad)?;
    let req = x509_cert::request::CertReq::from_der(der).map_err(bad)?;
    let spki_der = req.info.public_key.to_der()?;
    let alg = spki::AlgorithmIdentifierRef {
        oid: req.algorithm.oid,
        parameters: req.algorithm.parameters.as_ref().map(AnyRef::from),
    };
    let received = received_algorithm_with(&alg, legacy).ok_or_else(|| {
        Error::UnsupportedAlgorithm(format!(
            "CSR signature algorithm {} is not supported",
            alg.oid
        ))
    })?;
    let tbs = outer.tbs.to_der()?;
    let sig = req
        .signature
        .as_bytes()
        .ok_or_else(|| Error::BadRequest("CSR signature has unused bits".into()))?;
    hsm::verify_received(received, &spki_der, &tbs, sig)
        .map_err(|_| Error::BadSignature("CSR signature does not verify".into()))
}

/// Signs `tbs_der` with `key` and wraps it as a signed object (certificate or CRL),
/// then verifies the signature against `verify_spki` before returning
/// (docs/architecture.md, decision 2: a faulty signature never leaves the CA).
pub fn sign_and_wrap(
    key: &dyn hsm::PrivateKey,
    scheme: SignatureScheme,
    verify_spki: &[u8],
    tbs_der: &[u8],
) -> Result<Vec<u8>> {
    let signature = sign_verified(key, scheme, verify_spki, tbs_der)?;
    let obj = SignedObject {
        tbs: AnyRef::try_from(tbs_der)?,
        algorithm: signature_algorithm(scheme)?,
        signature: BitString::from_bytes(&signature)?,
    };
    Ok(obj.to_der()?)
}

/// Signs `tbs_der` and verifies the signature with `verify_spki` before it is used
/// (docs/architecture.md, decision 2).
pub fn sign_verified(
    key: &dyn hsm::PrivateKey,
    scheme: SignatureScheme,
    verify_spki: &[u8],
    tbs_der: &[u8],
) -> Result<Vec<u8>> {
    let signature = key.sign(scheme, tbs_der)?;
    hsm::verify(scheme, verify_spki, tbs_der, &signature).map_err(|e| {
        Error::Internal(format!(
            "signature made by key {:?} does not verify: {e}",
            key.label()
        ))
    })?;
    Ok(signature)
}

/// An X.509 time for a Unix timestamp: UTCTime through 2049, GeneralizedTime from 2050
/// (RFC 5280 §4.1.2.5).
pub fn x509_time(t: i64) -> Result<Time> {
    let d = unix_duration(t)?;
    // 2050-01-01T00:00:00Z
    if t < 2_524_608_000 {
        Ok(Time::UtcTime(UtcTime::from_unix_duration(d)?))
    } else {
        Ok(Time::GeneralTime(GeneralizedTime::from_unix_duration(d)?))
    }
}

/// A GeneralizedTime for a Unix timestamp (OCSP uses GeneralizedTime only).
pub fn generalized_time(t: i64) -> Result<GeneralizedTime> {
    Ok(GeneralizedTime::from_unix_duration(unix_duration(t)?)?)
}

fn unix_duration(t: i64) -> Result<std::time::Duration> {
    u64::try_from(t)
        .map(std::time::Duration::from_secs)
        .map_err(|_| Error::Internal(format!("time {t} is before 1970")))
}

/// Unix seconds of an X.509 time.
pub fn unix_of(t: &Time) -> i64 {
    i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

/// A fresh serial number: 128 bits from the OS CSPRNG, encoded as a positive DER INTEGER
/// of at most 17 octets (RFC 5280 §4.1.2.2: positive, at most 20 octets; docs/architecture.md,
/// decision 3). Returns the INTEGER contents.
pub fn random_serial() -> Vec<u8> {
    let mut raw = [0u8; 16];
    rand::fill(&mut raw);
    minimal_positive(&raw)
}

/// The minimal DER INTEGER contents for an unsigned big-endian number (leading zeros
/// removed, one zero added back when the top bit is set).
pub fn minimal_positive(raw: &[u8]) -> Vec<u8> {
    let start = raw
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    let trimmed = &raw[start..];
    let mut out = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
        out.push(0);
    }
    out.extend_from_slice(trimmed);
    if out.is_empty() {
        out.push(0);
    }
    out
}

/// A serial number value from INTEGER contents.
pub fn serial_number(contents: &[u8]) -> Result<SerialNumber> {
    SerialNumber::new(contents).map_err(|e| Error::BadRequest(format!("serial number: {e}")))
}

/// Parses a serial written in hex (with or without colons, optional `0x`) into INTEGER
/// contents.
pub fn parse_serial_hex(text: &str) -> Result<Vec<u8>> {
    let cleaned: String = text
        .trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| *c != ':')
        .collect();
    let padded = if cleaned.len() % 2 == 1 {
        format!("0{cleaned}")
    } else {
        cleaned
    };
    let raw = hex::decode(&padded)
        .map_err(|_| Error::BadRequest(format!("serial {text:?} is not hexadecimal")))?;
    if raw.is_empty() || raw.len() > 21 {
        return Err(Error::BadRequest(format!(
            "serial {text:?} has a bad length"
        )));
    }
    Ok(minimal_positive(&raw))
}

/// Serial contents as upper-case hex (the form `openssl x509 -serial` prints).
pub fn serial_hex(contents: &[u8]) -> String {
    let start = usize::from(contents.len() > 1 && contents[0] == 0);
    hex::encode_upper(&contents[start..])
}

/// Key identifier: SHA-1 of the subjectPublicKey BIT STRING contents
/// (RFC 5280 §4.2.1.2 method 1).
pub fn key_identifier(spki_der: &[u8]) -> Result<Vec<u8>> {
    let spki = SubjectPublicKeyInfoRef::from_der(spki_der)
        .map_err(|e| Error::BadRequest(format!("public key: {e}")))?;
    Ok(sha1::Sha1::digest(spki.subject_public_key.raw_bytes()).to_vec())
}

/// The invalidityDate extension (RFC 5280 §5.3.2: non-critical, a GeneralizedTime), as a
/// CRL entry extension and as an OCSP singleExtension (RFC 6960 §4.4.5 carries every CRL
/// entry extension there).
pub fn invalidity_date_ext(t: i64) -> Result<Extension> {
    extension(oid::INVALIDITY_DATE, false, &generalized_time(t)?)
}

/// SHA-256 of a SubjectPublicKeyInfo DER: how the key blocklist and the store's key
/// index name a public key (RFC 5280 §4.1.2.7 subjectPublicKeyInfo, hashed whole so that
/// the algorithm parameters are part of the identity).
pub fn spki_sha256(spki_der: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(spki_der).to_vec()
}

/// [`spki_sha256`] of the subjectPublicKeyInfo of a certificate (DER).
pub fn cert_spki_sha256(cert_der: &[u8]) -> Result<Vec<u8>> {
    let cert = x509_cert::Certificate::from_der(cert_der)
        .map_err(|e| Error::BadRequest(format!("certificate: {e}")))?;
    let spki = cert.tbs_certificate().subject_public_key_info().to_der()?;
    Ok(spki_sha256(&spki))
}

/// Encodes an extension value into an [`Extension`].
pub fn extension<T: Encode>(oid: ObjectIdentifier, critical: bool, value: &T) -> Result<Extension> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: der::asn1::OctetString::new(value.to_der()?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_positive_minimal_and_short() {
        for _ in 0..2000 {
            let s = random_serial();
            assert!(s.len() <= 17, "{s:?}");
            assert!(s[0] & 0x80 == 0);
            assert!(
                !(s.len() > 1 && s[0] == 0 && s[1] & 0x80 == 0),
                "non-minimal {s:?}"
            );
            serial_number(&s).expect("valid serial");
        }
    }

    #[test]
    fn serial_hex_round_trip() {
        let s = vec![0x00, 0x9a, 0x01];
        assert_eq!(serial_hex(&s), "9A01");
        assert_eq!(parse_serial_hex("9A01").expect("hex"), s);
        assert_eq!(parse_serial_hex("9a:01").expect("hex"), s);
        assert_eq!(parse_serial_hex("0x0123").expect("hex"), vec![0x01, 0x23]);
        assert!(parse_serial_hex("zz").is_err());
        assert!(parse_serial_hex("").is_err());
    }

    #[test]
    fn time_switches_to_generalized_in_2050() {
        assert!(matches!(x509_time(2_524_607_999), Ok(Time::UtcTime(_))));
        assert!(matches!(x509_time(2_524_608_000), Ok(Time::GeneralTime(_))));
    }
}
