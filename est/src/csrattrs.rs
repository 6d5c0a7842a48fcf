//! The `csrattrs` answer (RFC 7030 §4.5.2 as corrected by RFC 8951 §3.3, read in the
//! spirit of RFC 9908): what a CSR for this endpoint's profile should contain.
//!
//! `CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID`,
//! `AttrOrOID ::= CHOICE { oid OBJECT IDENTIFIER, attribute Attribute }`.
//!
//! * key type: `id-ecPublicKey` with the curve OIDs, or `rsaEncryption` with the modulus
//!   size(s) as INTEGERs, for the algorithms the profile accepts;
//! * the signature algorithm(s) the CSR should be signed with;
//! * `commonName` when the profile requires a CN;
//! * `extensionRequest` listing `subjectAltName` when the profile requires SANs.
//!
//! The challengePassword OID is never listed: listing it asks libest clients for a
//! tls-unique value that rustls cannot verify (protocols.md C.5, C.7).

use const_oid::ObjectIdentifier;
use der::Encode;
use hsm::KeyAlgorithm;

use crate::Result;

const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const SHA256_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const EXTENSION_REQUEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.14");
const SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

fn attribute(oid: ObjectIdentifier, values: &[Vec<u8>]) -> Result<Vec<u8>> {
    let mut inner = oid.to_der().map_err(ca_core::Error::from)?;
    inner.extend(tlv(0x31, &values.concat()));
    Ok(tlv(0x30, &inner))
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend_from_slice(&[0x81, n as u8]);
    } else {
        out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn oid_der(o: ObjectIdentifier) -> Result<Vec<u8>> {
    Ok(o.to_der().map_err(ca_core::Error::from)?)
}

fn int_der(v: u32) -> Result<Vec<u8>> {
    Ok(der::asn1::Uint::new(&v.to_be_bytes())
        .and_then(|u| u.to_der())
        .map_err(ca_core::Error::from)?)
}

/// The CsrAttrs DER for `profile`.
pub fn for_profile(profile: &ca_core::profile::Profile) -> Result<Vec<u8>> {
    let algs: Vec<KeyAlgorithm> = if profile.config.key_algorithms.is_empty() {
        KeyAlgorithm::ALL.to_vec()
    } else {
        profile.config.key_algorithms.clone()
    };
    let mut items: Vec<Vec<u8>> = Vec::new();
    let mut curves = Vec::new();
    let mut sizes = Vec::new();
    let mut sigs = Vec::new();
    for a in &algs {
        match a {
            KeyAlgorithm::EcdsaP256 => {
                curves.push(oid_der(SECP256R1)?);
                sigs.push(ECDSA_SHA256);
            }
            KeyAlgorithm::EcdsaP384 => {
                curves.push(oid_der(SECP384R1)?);
                sigs.push(ECDSA_SHA384);
            }
            KeyAlgorithm::Rsa2048 => sizes.push(int_der(2048)?),
            KeyAlgorithm::Rsa3072 => sizes.push(int_der(3072)?),
            KeyAlgorithm::Rsa4096 => sizes.push(int_der(4096)?),
        }
    }
    if !sizes.is_empty() {
        sigs.push(SHA256_RSA);
    }
    if !curves.is_empty() {
        items.push(attribute(ID_EC_PUBLIC_KEY, &curves)?);
    }
    if !sizes.is_empty() {
        items.push(attribute(RSA_ENCRYPTION, &sizes)?);
    }
    sigs.dedup();
    for s in sigs {
        items.push(oid_der(s)?);
    }
    if profile.config.subject.require_cn {
        items.push(oid_der(COMMON_NAME)?);
    }
    if profile.config.san.required {
        items.push(attribute(EXTENSION_REQUEST, &[oid_der(SUBJECT_ALT_NAME)?])?);
    }
    Ok(tlv(0x30, &items.concat()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tls_server_profile_asks_for_keys_and_a_san() {
        let cfg = ca_core::profile::built_in("tls-server").unwrap();
        let p = ca_core::profile::Profile::from_config("tls-server", cfg, "issuing").unwrap();
        let der_bytes = for_profile(&p).unwrap();
        // It is one DER SEQUENCE.
        use der::Decode;
        let any = der::Any::from_der(&der_bytes).unwrap();
        assert_eq!(der::Tagged::tag(&any), der::Tag::Sequence);
        let hay = der_bytes
            .windows(5)
            .any(|w| w == [0x06, 0x03, 0x55, 0x1d, 0x11]);
        assert!(hay, "subjectAltName OID present");
        let mut ec = ca_core::profile::built_in("tls-client").unwrap();
        ec.key_algorithms = vec![KeyAlgorithm::EcdsaP384];
        let p = ca_core::profile::Profile::from_config("x", ec, "issuing").unwrap();
        let d = for_profile(&p).unwrap();
        assert!(
            d.windows(7)
                .any(|w| w == [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22])
        );
        assert!(
            !d.windows(11)
                .any(|w| w[..3] == [0x06, 0x09, 0x2a] && w[9] == 0x01 && w[10] == 0x01)
        );
    }
}
