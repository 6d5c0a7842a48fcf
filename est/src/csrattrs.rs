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
//! tls-unique value that rustls cannot verify (docs/client-quirks.md, "EST").

use ca_core::asn1::oid::{
    COMMON_NAME, EC_PUBLIC_KEY as ID_EC_PUBLIC_KEY, ECDSA_WITH_SHA256 as ECDSA_SHA256,
    ECDSA_WITH_SHA384 as ECDSA_SHA384, EXTENSION_REQUEST, RSA_ENCRYPTION, SECP256R1, SECP384R1,
    SHA256_WITH_RSA as SHA256_RSA, SUBJECT_ALT_NAME,
};
use ca_core::asn1::write::{self, tag};
use const_oid::ObjectIdentifier;
use der::Encode;
use hsm::KeyAlgorithm;

use crate::Result;

/// An Attribute whose values are listed in the order given (RFC 7030 §4.5.2 AttrOrOID).
fn attribute(oid: ObjectIdentifier, values: &[Vec<u8>]) -> Vec<u8> {
    write::attribute(&oid, &values.concat())
}

fn oid_der(o: ObjectIdentifier) -> Vec<u8> {
    write::oid(&o)
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
                curves.push(oid_der(SECP256R1));
                sigs.push(ECDSA_SHA256);
            }
            KeyAlgorithm::EcdsaP384 => {
                curves.push(oid_der(SECP384R1));
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
        items.push(attribute(ID_EC_PUBLIC_KEY, &curves));
    }
    if !sizes.is_empty() {
        items.push(attribute(RSA_ENCRYPTION, &sizes));
    }
    sigs.dedup();
    for s in sigs {
        items.push(oid_der(s));
    }
    if profile.config.subject.require_cn {
        items.push(oid_der(COMMON_NAME));
    }
    if profile.config.san.required {
        items.push(attribute(EXTENSION_REQUEST, &[oid_der(SUBJECT_ALT_NAME)]));
    }
    Ok(write::tlv(tag::SEQUENCE, &items.concat()))
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
