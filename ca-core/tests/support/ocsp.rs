//! OCSP responses as a client reads them (RFC 6960 §4.2.1), and requests as a client
//! builds them (§4.1.1), for the OCSP tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5912::{ID_SHA_1, ID_SHA_256};
use const_oid::db::rfc6960::{ID_PKIX_OCSP_BASIC, ID_PKIX_OCSP_NONCE};
use der::asn1::{BitString, GeneralizedTime, Null, OctetString};
use der::{Decode, Encode, Sequence};
use sha2::Digest;
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::CrlReason;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;

use ca_core::ocsp::{CertId, OcspRequest, Request, ResponseStatus, TbsRequest};

// --- RFC 6960 §4.2.1, as a client reads it -------------------------------------------

#[derive(Clone, Debug, Sequence)]
pub struct OcspResponse {
    pub response_status: ResponseStatus,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub response_bytes: Option<ResponseBytes>,
}

#[derive(Clone, Debug, Sequence)]
pub struct ResponseBytes {
    pub response_type: ObjectIdentifier,
    pub response: OctetString,
}

#[derive(Clone, Debug, Sequence)]
pub struct BasicOcspResponse {
    pub tbs_response_data: der::Any,
    pub signature_algorithm: AlgorithmIdentifierOwned,
    pub signature: BitString,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub certs: Option<Vec<Certificate>>,
}

#[derive(Clone, Debug, Sequence)]
pub struct ResponseData {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub version: Option<u8>,
    pub responder_id: ResponderId,
    pub produced_at: GeneralizedTime,
    pub responses: Vec<SingleResponse>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    pub response_extensions: Option<Vec<Extension>>,
}

#[derive(Clone, Debug, PartialEq, Eq, der::Choice)]
pub enum ResponderId {
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", constructed = "true")]
    ByName(Name),
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", constructed = "true")]
    ByKey(OctetString),
}

#[derive(Clone, Debug, Sequence)]
pub struct SingleResponse {
    pub cert_id: CertId,
    pub cert_status: Status,
    pub this_update: GeneralizedTime,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub next_update: Option<GeneralizedTime>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    pub single_extensions: Option<Vec<Extension>>,
}

#[derive(Clone, Debug, der::Choice)]
pub enum Status {
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT")]
    Good(Null),
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", constructed = "true")]
    Revoked(RevokedInfo),
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT")]
    Unknown(Null),
}

#[derive(Clone, Debug, Sequence)]
pub struct RevokedInfo {
    pub revocation_time: GeneralizedTime,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub revocation_reason: Option<CrlReason>,
}

/// A decoded successful response: the signed data, and the signed bytes with their
/// signature.
pub struct Decoded {
    pub data: ResponseData,
    pub tbs: Vec<u8>,
    pub basic: BasicOcspResponse,
}

pub fn decode(der: &[u8]) -> Decoded {
    let r = OcspResponse::from_der(der).expect("OCSPResponse decodes");
    assert_eq!(r.response_status, ResponseStatus::Successful);
    let bytes = r.response_bytes.expect("responseBytes");
    assert_eq!(bytes.response_type, ID_PKIX_OCSP_BASIC);
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).expect("basic decodes");
    let tbs = basic.tbs_response_data.to_der().unwrap();
    let data = ResponseData::from_der(&tbs).expect("ResponseData decodes");
    Decoded { data, tbs, basic }
}

pub fn unix(t: &GeneralizedTime) -> i64 {
    i64::try_from(t.to_unix_duration().as_secs()).unwrap()
}

// --- requests ------------------------------------------------------------------------

#[derive(Clone, Copy)]
pub enum Hash {
    Sha1,
    Sha256,
}

/// The CertID of `serial` under the certificate `issuer` (RFC 6960 §4.1.1: hashes of the
/// issuer's DER name and of its subjectPublicKey BIT STRING contents).
pub fn cert_id(issuer: &Certificate, serial: &[u8], hash: Hash) -> CertId {
    let tbs = issuer.tbs_certificate();
    let name = tbs.subject().to_der().unwrap();
    let key = tbs.subject_public_key_info().subject_public_key.raw_bytes();
    let (oid, n, k) = match hash {
        Hash::Sha1 => (
            ID_SHA_1,
            sha1::Sha1::digest(&name).to_vec(),
            sha1::Sha1::digest(key).to_vec(),
        ),
        Hash::Sha256 => (
            ID_SHA_256,
            sha2::Sha256::digest(&name).to_vec(),
            sha2::Sha256::digest(key).to_vec(),
        ),
    };
    CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid,
            parameters: Some(der::Any::from(Null)),
        },
        issuer_name_hash: OctetString::new(n).unwrap(),
        issuer_key_hash: OctetString::new(k).unwrap(),
        serial_number: SerialNumber::new(serial).unwrap(),
    }
}

pub fn nonce_ext(nonce: &[u8], critical: bool) -> Extension {
    Extension {
        extn_id: ID_PKIX_OCSP_NONCE,
        critical,
        extn_value: OctetString::new(OctetString::new(nonce).unwrap().to_der().unwrap()).unwrap(),
    }
}

pub fn request(ids: Vec<CertId>, extensions: Option<Vec<Extension>>) -> Vec<u8> {
    OcspRequest {
        tbs_request: TbsRequest {
            version: 0,
            requestor_name: None,
            request_list: ids
                .into_iter()
                .map(|req_cert| Request {
                    req_cert,
                    single_request_extensions: None,
                })
                .collect(),
            request_extensions: extensions,
        },
        optional_signature: None,
    }
    .to_der()
    .unwrap()
}
