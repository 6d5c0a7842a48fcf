//! Certificate signing requests (PKCS#10, RFC 2986): decoding, self-signature check, and
//! the requested names and extensions.

use der::{Decode, Encode};
use hsm::KeyAlgorithm;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::name::Name;
use x509_cert::request::{CertReq, ExtensionReq};

use crate::asn1::{self, SignedObject};
use crate::profile::{San, sans_from_general_names};
use crate::{Error, Result};

/// Largest CSR accepted, DER or PEM (RSA-4096 CSRs with many SANs stay far below this).
pub const MAX_CSR_BYTES: usize = 64 * 1024;

/// id-ExtensionReq (PKCS#9, RFC 2985 §5.4.2).
const EXTENSION_REQ: const_oid::ObjectIdentifier = asn1::oid::EXTENSION_REQUEST;
/// challengePassword (RFC 2985 §5.4.1).
const CHALLENGE_PASSWORD: const_oid::ObjectIdentifier = asn1::oid::CHALLENGE_PASSWORD;

/// A decoded CSR whose self-signature has been verified.
#[derive(Clone)]
pub struct Csr {
    /// The CSR, DER.
    pub der: Vec<u8>,
    /// Requested subject.
    pub subject: Name,
    /// SubjectPublicKeyInfo, DER.
    pub spki_der: Vec<u8>,
    /// Key algorithm of the requested key.
    pub key_algorithm: KeyAlgorithm,
    /// Requested SANs (from the extensionRequest attribute).
    pub sans: Vec<San>,
    /// Other requested extensions (everything but SAN).
    pub extensions: Vec<Extension>,
    /// The challengePassword attribute, if present (SCEP). Never logged.
    pub challenge_password: Option<String>,
}

impl std::fmt::Debug for Csr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Csr")
            .field("subject", &self.subject.to_string())
            .field("key_algorithm", &self.key_algorithm)
            .field("sans", &self.sans)
            .field(
                "challenge_password",
                &self.challenge_password.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Legacy signature algorithms a caller may accept on CSRs (SCEP clients sign with
/// SHA-1; RFC 8894 §3.5.2 lists it). Off unless a protocol front end asks.
#[derive(Clone, Copy, Debug, Default)]
pub struct CsrOptions {
    /// Accept sha1WithRSAEncryption and ecdsa-with-SHA1.
    pub allow_sha1: bool,
}

/// Decodes a CSR from DER or PEM and verifies its self-signature (proof of possession).
pub fn parse(input: &[u8]) -> Result<Csr> {
    parse_with(input, CsrOptions::default())
}

/// [`parse`] with legacy algorithms allowed as `options` says.
pub fn parse_with(input: &[u8], options: CsrOptions) -> Result<Csr> {
    decode(input, Some(options))
}

/// Decodes a CSR whose proof of possession was verified when it was received (a request
/// held for approval, [`crate::pending`]), without verifying the signature again: the
/// front end may have accepted a signature algorithm that [`parse`] refuses (SCEP clients
/// sign with SHA-1).
pub fn decode_held(der: &[u8]) -> Result<Csr> {
    decode(der, None)
}

fn decode(input: &[u8], verify: Option<CsrOptions>) -> Result<Csr> {
    if input.len() > MAX_CSR_BYTES {
        return Err(Error::BadRequest(format!(
            "CSR is {} bytes; the limit is {MAX_CSR_BYTES}",
            input.len()
        )));
    }
    let der = if input.trim_ascii_start().starts_with(b"-----BEGIN") {
        let text = std::str::from_utf8(input)
            .map_err(|_| Error::BadRequest("CSR PEM is not text".into()))?;
        let (label, der) = der::pem::decode_vec(text.trim().as_bytes())
            .map_err(|e| Error::BadRequest(format!("CSR PEM: {e}")))?;
        if label != "CERTIFICATE REQUEST" && label != "NEW CERTIFICATE REQUEST" {
            return Err(Error::BadRequest(format!(
                "expected a CERTIFICATE REQUEST, found {label}"
            )));
        }
        der
    } else {
        input.to_vec()
    };
    let bad = |e: der::Error| Error::BadRequest(format!("CSR is not valid DER PKCS#10: {e}"));
    SignedObject::from_der(&der).map_err(bad)?;
    let req = CertReq::from_der(&der).map_err(bad)?;
    let spki_der = req.info.public_key.to_der()?;
    let key_algorithm = hsm::spki_algorithm(&spki_der)
        .map_err(|e| Error::BadRequest(format!("CSR public key: {e}")))?;
    if let Some(options) = verify {
        // The proof of possession (RFC 2986 §4.2), SHA-1 only where the caller allows it.
        asn1::verify_csr_signature(
            &der,
            asn1::Legacy {
                sha1_rsa: options.allow_sha1,
                sha1_ecdsa: options.allow_sha1,
                key_only_digest: None,
            },
        )?;
    }

    // extensionRequest and challengePassword are SINGLE VALUE attributes (RFC 2985
    // §5.4.1, §5.4.2) and an attribute type appears once in a SET OF Attribute (X.501):
    // a second one is refused, never merged, so no part of the request is read twice
    // or overlooked. The same holds for each extension inside (RFC 5280 §4.2), the
    // subjectAltName included.
    let mut sans = Vec::new();
    let mut san_seen = false;
    let mut extensions = Vec::new();
    let mut challenge_password = None;
    let mut ext_req_seen = false;
    let mut challenge_seen = false;
    for attr in req.info.attributes.iter() {
        if attr.oid == EXTENSION_REQ {
            if ext_req_seen || attr.values.len() != 1 {
                return Err(Error::BadRequest(
                    "CSR carries more than one extensionRequest (RFC 2985 §5.4.2: single value)"
                        .into(),
                ));
            }
            ext_req_seen = true;
            for value in attr.values.iter() {
                let exts: ExtensionReq = value
                    .decode_as()
                    .map_err(|e| Error::BadRequest(format!("CSR extensionRequest: {e}")))?;
                for ext in exts.0 {
                    if ext.extn_id == <SubjectAltName as const_oid::AssociatedOid>::OID {
                        if san_seen {
                            return Err(Error::BadRequest(
                                "CSR requests the subjectAltName extension twice".into(),
                            ));
                        }
                        san_seen = true;
                        let san = SubjectAltName::from_der(ext.extn_value.as_bytes())
                            .map_err(|e| Error::BadRequest(format!("CSR subjectAltName: {e}")))?;
                        sans.extend(sans_from_general_names(&san.0)?);
                    } else if extensions
                        .iter()
                        .any(|e: &Extension| e.extn_id == ext.extn_id)
                    {
                        return Err(Error::BadRequest(format!(
                            "CSR requests extension {} twice",
                            ext.extn_id
                        )));
                    } else {
                        extensions.push(ext);
                    }
                }
            }
        } else if attr.oid == CHALLENGE_PASSWORD {
            if challenge_seen || attr.values.len() != 1 {
                return Err(Error::BadRequest(
                    "CSR carries more than one challengePassword (RFC 2985 §5.4.1: single value)"
                        .into(),
                ));
            }
            challenge_seen = true;
            challenge_password = attr
                .values
                .iter()
                .next()
                .and_then(crate::profile::attribute_text);
        }
    }
    Ok(Csr {
        der,
        subject: req.info.subject,
        spki_der,
        key_algorithm,
        sans,
        extensions,
        challenge_password,
    })
}
