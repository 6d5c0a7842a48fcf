//! OCSP responder logic (RFC 6960, lightweight profile RFC 9919, nonces RFC 9654).
//!
//! No OCSP crate exists for the der 0.8 line, so the request and response structures are
//! declared here with `der` derives. The HTTP mapping (GET/POST, cache headers) lives in
//! the server.

use const_oid::ObjectIdentifier;
use der::asn1::{BitString, GeneralizedTime, Null, OctetString};
use der::{Decode, Encode, Enumerated, Sequence};
use sha1::Digest as _;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoRef};
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::serial_number::SerialNumber;

use crate::asn1::{self, oid};
use crate::authority::Authority;
use crate::{Error, Result};

/// Largest OCSP request accepted (RFC 9919 requests are about 100 bytes).
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// Most CertIDs answered in one request.
pub const MAX_REQUESTS: usize = 16;
/// Largest nonce accepted (RFC 9654 §2.1: at most 128 octets).
pub const MAX_NONCE: usize = 128;

/// `CertID` (RFC 6960 §4.1.1).
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct CertId {
    /// Hash algorithm of the two hashes.
    pub hash_algorithm: AlgorithmIdentifierOwned,
    /// Hash of the issuer's DER Name.
    pub issuer_name_hash: OctetString,
    /// Hash of the issuer's subjectPublicKey BIT STRING contents.
    pub issuer_key_hash: OctetString,
    /// Serial number.
    pub serial_number: SerialNumber,
}

/// `Request` (RFC 6960 §4.1.1).
#[derive(Clone, Debug, Sequence)]
pub struct Request {
    /// The certificate asked about.
    pub req_cert: CertId,
    /// `[0] EXPLICIT Extensions OPTIONAL`.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub single_request_extensions: Option<Vec<Extension>>,
}

/// `TBSRequest` (RFC 6960 §4.1.1).
#[derive(Clone, Debug, Sequence)]
pub struct TbsRequest {
    /// `[0] EXPLICIT Version DEFAULT v1`.
    #[asn1(
        context_specific = "0",
        tag_mode = "EXPLICIT",
        default = "Default::default"
    )]
    pub version: u8,
    /// `[1] EXPLICIT GeneralName OPTIONAL`.
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    pub requestor_name: Option<GeneralName>,
    /// The requests.
    pub request_list: Vec<Request>,
    /// `[2] EXPLICIT Extensions OPTIONAL`.
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    pub request_extensions: Option<Vec<Extension>>,
}

/// `OCSPRequest` (RFC 6960 §4.1.1). A request signature is accepted and ignored.
#[derive(Clone, Debug, Sequence)]
pub struct OcspRequest {
    /// The request body.
    pub tbs_request: TbsRequest,
    /// `[0] EXPLICIT Signature OPTIONAL`, kept undecoded.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub optional_signature: Option<der::Any>,
}

/// `OCSPResponseStatus` (RFC 6960 §4.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enumerated)]
#[repr(u8)]
pub enum ResponseStatus {
    /// Response has valid confirmations.
    Successful = 0,
    /// Illegal confirmation request.
    MalformedRequest = 1,
    /// Internal error in issuer.
    InternalError = 2,
    /// Try again later.
    TryLater = 3,
    /// Must sign the request.
    SigRequired = 5,
    /// Request unauthorized (not authoritative for that issuer).
    Unauthorized = 6,
}

#[derive(Clone, Debug, Sequence)]
struct ResponseBytes {
    response_type: ObjectIdentifier,
    response: OctetString,
}

#[derive(Clone, Debug, Sequence)]
struct OcspResponseAsn1 {
    response_status: ResponseStatus,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    response_bytes: Option<ResponseBytes>,
}

/// `RevokedInfo` (RFC 6960 §4.2.1).
#[derive(Clone, Debug, Sequence)]
struct RevokedInfo {
    revocation_time: GeneralizedTime,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    revocation_reason: Option<x509_cert::ext::pkix::CrlReason>,
}

/// `CertStatus` (RFC 6960 §4.2.1).
#[derive(Clone, Debug, der::Choice)]
enum CertStatusAsn1 {
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT")]
    Good(Null),
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", constructed = "true")]
    Revoked(RevokedInfo),
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT")]
    Unknown(Null),
}

/// `SingleResponse` (RFC 6960 §4.2.1).
#[derive(Clone, Debug, Sequence)]
struct SingleResponse {
    cert_id: CertId,
    cert_status: CertStatusAsn1,
    this_update: GeneralizedTime,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    next_update: Option<GeneralizedTime>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    single_extensions: Option<Vec<Extension>>,
}

/// `ResponderID` (RFC 6960 §4.2.1): byKey only (the SHA-1 of the responder's key).
#[derive(Clone, Debug, der::Choice)]
enum ResponderId {
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", constructed = "true")]
    ByKey(OctetString),
}

/// `ResponseData` (RFC 6960 §4.2.1); version v1 is the DEFAULT and so omitted.
#[derive(Clone, Debug, Sequence)]
struct ResponseData {
    responder_id: ResponderId,
    produced_at: GeneralizedTime,
    responses: Vec<SingleResponse>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    response_extensions: Option<Vec<Extension>>,
}

/// `BasicOCSPResponse` (RFC 6960 §4.2.1), with the signed part kept as encoded.
#[derive(Clone, Debug, Sequence)]
struct BasicOcspResponse<'a> {
    tbs_response_data: der::AnyRef<'a>,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    certs: Option<Vec<Certificate>>,
}

/// The status reported for one certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertStatus {
    /// Issued and not revoked.
    Good,
    /// Revoked at `time` for `reason`.
    Revoked {
        /// Revocation time.
        time: i64,
        /// CRLReason code.
        reason: u8,
    },
    /// Not issued by this CA (or unknown to it).
    Unknown,
}

/// An answer to an OCSP request, ready to send.
#[derive(Clone, Debug)]
pub struct OcspAnswer {
    /// The DER OCSPResponse.
    pub der: Vec<u8>,
    /// The response status.
    pub status: ResponseStatus,
    /// producedAt / thisUpdate (for Last-Modified).
    pub this_update: i64,
    /// nextUpdate (for Expires and max-age).
    pub next_update: i64,
    /// True when the request carried a nonce (the response must not be cached).
    pub nonced: bool,
    /// Statuses, in request order (for logs and tests).
    pub statuses: Vec<CertStatus>,
}

/// An OCSPResponse carrying only an error status (no signature, RFC 6960 §4.2.1).
pub fn error_response(status: ResponseStatus) -> Vec<u8> {
    let r = OcspResponseAsn1 {
        response_status: status,
        response_bytes: None,
    };
    // Encoding a one-byte ENUMERATED in a SEQUENCE cannot fail; fall back to the literal.
    r.to_der()
        .unwrap_or_else(|_| vec![0x30, 0x03, 0x0a, 0x01, status as u8])
}

impl Authority {
    /// Answers an OCSP request (DER). Never fails: malformed input gets a
    /// `malformedRequest` response, internal failures `internalError`.
    pub fn ocsp(&self, request_der: &[u8]) -> OcspAnswer {
        let now = self.clock.now();
        let plain = |status| OcspAnswer {
            der: error_response(status),
            status,
            this_update: now,
            next_update: now,
            nonced: false,
            statuses: Vec::new(),
        };
        let req = match parse_request(request_der) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "malformed OCSP request");
                return plain(ResponseStatus::MalformedRequest);
            }
        };
        match self.ocsp_answer(&req, now) {
            Ok(Some(a)) => a,
            Ok(None) => plain(ResponseStatus::Unauthorized),
            // The key backend is unavailable for now: `tryLater` (RFC 6960 §2.3), which
            // tells the client to retry rather than that the responder is broken.
            Err(e) if e.kind() == crate::ErrorKind::Unavailable => {
                tracing::warn!(error = %e, "OCSP response deferred: key backend unavailable");
                plain(ResponseStatus::TryLater)
            }
            Err(e) => {
                tracing::error!(error = %e, "OCSP response failed");
                plain(ResponseStatus::InternalError)
            }
        }
    }

    fn ocsp_answer(&self, req: &OcspRequest, now: i64) -> Result<Option<OcspAnswer>> {
        // All CertIDs of one request must belong to one CA, which signs the answer.
        let mut ca_name: Option<&str> = None;
        for r in &req.tbs_request.request_list {
            match self.ocsp_index.find(
                &r.req_cert.hash_algorithm.oid,
                r.req_cert.issuer_name_hash.as_bytes(),
                r.req_cert.issuer_key_hash.as_bytes(),
            ) {
                Some(n) if ca_name.is_none() || ca_name == Some(n) => ca_name = Some(n),
                _ => return Ok(None),
            }
        }
        let Some(ca_name) = ca_name else {
            return Ok(None);
        };
        let ca = self.ca(ca_name)?;
        let next_update = now + self.settings.ocsp_validity;
        let mut responses = Vec::new();
        let mut statuses = Vec::new();
        for r in &req.tbs_request.request_list {
            let serial = r.req_cert.serial_number.as_bytes();
            let status = match self.store.get_cert(serial)? {
                Some(rec) if rec.issuer == ca.name => match rec.revocation {
                    Some(rv) => CertStatus::Revoked {
                        time: rv.time,
                        reason: rv.reason,
                    },
                    None => CertStatus::Good,
                },
                _ => CertStatus::Unknown,
            };
            statuses.push(status);
            let cert_status = match status {
                CertStatus::Good => CertStatusAsn1::Good(Null),
                CertStatus::Unknown => CertStatusAsn1::Unknown(Null),
                CertStatus::Revoked { time, reason } => CertStatusAsn1::Revoked(RevokedInfo {
                    revocation_time: asn1::generalized_time(time)?,
                    revocation_reason: match reason {
                        0 => None,
                        code => Some(reason_of(code)?),
                    },
                }),
            };
            responses.push(SingleResponse {
                cert_id: r.req_cert.clone(),
                cert_status,
                this_update: asn1::generalized_time(now)?,
                next_update: Some(asn1::generalized_time(next_update)?),
                single_extensions: None,
            });
        }
        let nonce = req
            .tbs_request
            .request_extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == oid::OCSP_NONCE)
            .cloned()
            .map(|mut e| {
                e.critical = false;
                e
            });
        let (signer_key, signer_spki, signer_cert) = match &ca.ocsp {
            Some(d) => (
                d.key.clone(),
                d.key.public_key_der().to_vec(),
                Some(d.cert_der.clone()),
            ),
            None => (ca.key.clone(), ca.spki_der.clone(), None),
        };
        let spki = SubjectPublicKeyInfoRef::from_der(&signer_spki)
            .map_err(|e| Error::Internal(format!("responder key: {e}")))?;
        let key_hash = sha1::Sha1::digest(spki.subject_public_key.raw_bytes()).to_vec();
        let data = ResponseData {
            responder_id: ResponderId::ByKey(OctetString::new(key_hash)?),
            produced_at: asn1::generalized_time(now)?,
            responses,
            response_extensions: nonce.as_ref().map(|n| vec![n.clone()]),
        };
        let tbs_der = data.to_der()?;
        let scheme = signer_key.algorithm().default_scheme();
        let signature = signer_key.sign(scheme, &tbs_der)?;
        hsm::verify(scheme, &signer_spki, &tbs_der, &signature)
            .map_err(|e| Error::Internal(format!("OCSP signature does not verify: {e}")))?;
        let certs = match signer_cert {
            Some(der) => Some(vec![Certificate::from_der(&der)?]),
            None => None,
        };
        let basic = BasicOcspResponse {
            tbs_response_data: der::AnyRef::try_from(tbs_der.as_slice())?,
            signature_algorithm: asn1::signature_algorithm(scheme)?,
            signature: BitString::from_bytes(&signature)?,
            certs,
        };
        let resp = OcspResponseAsn1 {
            response_status: ResponseStatus::Successful,
            response_bytes: Some(ResponseBytes {
                response_type: oid::OCSP_BASIC,
                response: OctetString::new(basic.to_der()?)?,
            }),
        };
        Ok(Some(OcspAnswer {
            der: resp.to_der()?,
            status: ResponseStatus::Successful,
            this_update: now,
            next_update,
            nonced: nonce.is_some(),
            statuses,
        }))
    }
}

fn reason_of(code: u8) -> Result<x509_cert::ext::pkix::CrlReason> {
    use x509_cert::ext::pkix::CrlReason as R;
    Ok(match code {
        1 => R::KeyCompromise,
        2 => R::CaCompromise,
        3 => R::AffiliationChanged,
        4 => R::Superseded,
        5 => R::CessationOfOperation,
        6 => R::CertificateHold,
        9 => R::PrivilegeWithdrawn,
        10 => R::AaCompromise,
        other => return Err(Error::Internal(format!("stored revocation reason {other}"))),
    })
}

/// Decodes the request of `GET /ocsp/{request}` (RFC 6960 Appendix A.1, RFC 9919 §5):
/// `path` is the rest of the URL path after the HTTP layer percent-decoded it. Whitespace
/// (line breaks) is dropped, a space is taken for a `+` that a form decoder mangled, and the base64 may
/// be standard or URL-safe, with or without padding, because clients often leave `/`,
/// `+` and `=` unescaped. The result goes to [`parse_request`].
pub fn decode_get_request(path: &str) -> Result<Vec<u8>> {
    use base64::Engine as _;
    if path.len() > MAX_REQUEST_BYTES * 4 / 3 + 1024 {
        return Err(Error::BadRequest(format!(
            "OCSP GET request is {} bytes; the limit is {MAX_REQUEST_BYTES} decoded",
            path.len()
        )));
    }
    // The space first: dropping all whitespace before would lose the `+` it stands for.
    let cleaned: String = path
        .chars()
        .map(|c| if c == ' ' { '+' } else { c })
        .filter(|c| !c.is_whitespace())
        .collect();
    let trimmed = cleaned.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed))
        .map_err(|_| Error::BadRequest("OCSP GET request is not base64".into()))
}

/// Decodes and checks an OCSP request: size, at least one and at most
/// [`MAX_REQUESTS`] CertIDs, SHA-1 or SHA-256 CertID hashes, nonce of 1..=128 octets.
pub fn parse_request(der_bytes: &[u8]) -> Result<OcspRequest> {
    if der_bytes.len() > MAX_REQUEST_BYTES {
        return Err(Error::BadRequest(format!(
            "OCSP request is {} bytes; the limit is {MAX_REQUEST_BYTES}",
            der_bytes.len()
        )));
    }
    let req = OcspRequest::from_der(der_bytes)
        .map_err(|e| Error::BadRequest(format!("OCSP request is not valid DER: {e}")))?;
    let n = req.tbs_request.request_list.len();
    if n == 0 || n > MAX_REQUESTS {
        return Err(Error::BadRequest(format!(
            "OCSP request asks about {n} certificates (1 to {MAX_REQUESTS} allowed)"
        )));
    }
    for r in &req.tbs_request.request_list {
        let alg = r.req_cert.hash_algorithm.oid;
        if alg != oid::SHA1 && alg != oid::SHA256 {
            return Err(Error::BadRequest(format!(
                "CertID hash {alg} is not supported"
            )));
        }
    }
    if let Some(n) = req
        .tbs_request
        .request_extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == oid::OCSP_NONCE)
    {
        // RFC 9654 §2.1: the nonce is an OCTET STRING of 1 to 128 octets inside extnValue.
        let inner = OctetString::from_der(n.extn_value.as_bytes())
            .map_err(|_| Error::BadRequest("OCSP nonce is not an OCTET STRING".into()))?;
        let len = inner.as_bytes().len();
        if len == 0 || len > MAX_NONCE {
            return Err(Error::BadRequest(format!(
                "OCSP nonce of {len} octets (1 to {MAX_NONCE} allowed)"
            )));
        }
    }
    Ok(req)
}
