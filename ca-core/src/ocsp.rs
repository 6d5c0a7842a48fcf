//! OCSP responder logic (RFC 6960, lightweight profile RFC 9919, nonces RFC 9654).
//!
//! Responses to requests without a nonce are pre-signed and kept in an [`OcspCache`]
//! (RFC 5019 §6.1 / RFC 9919 §6: a responder may pre-produce responses): served
//! without touching the store or the key until half their validity has passed, and
//! dropped at once when their certificate is revoked. Requests with a nonce (RFC 9654)
//! are signed live.
//!
//! No OCSP crate exists for the der 0.8 line, so the request and response structures are
//! declared here with `der` derives. This module knows nothing of the authority: which CA
//! answers and each certificate's status come from `authority::ocsp`, which calls
//! `sign_response` and keeps the cache. The HTTP mapping (GET/POST, cache headers) lives
//! in the server.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

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

impl CertId {
    /// The SHA-1 CertID (RFC 6960 §4.1.1, the hash RFC 5019 §2.1.1 clients use) of
    /// `serial` under the CA certificate `issuer_der`: the hashes of its DER subject
    /// name and of its subjectPublicKey BIT STRING contents.
    pub fn sha1(issuer_der: &[u8], serial: &[u8]) -> Result<CertId> {
        let cert = Certificate::from_der(issuer_der)?;
        let tbs = cert.tbs_certificate();
        let name = tbs.subject().to_der()?;
        let key = tbs.subject_public_key_info().subject_public_key.raw_bytes();
        Ok(CertId {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: oid::SHA1,
                parameters: Some(der::Any::from(Null)),
            },
            issuer_name_hash: OctetString::new(sha1::Sha1::digest(&name).to_vec())?,
            issuer_key_hash: OctetString::new(sha1::Sha1::digest(key).to_vec())?,
            serial_number: SerialNumber::new(serial)?,
        })
    }
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

/// The key that signs OCSP responses of one CA: its delegated responder (RFC 6960 §4.2.2.2),
/// or the CA key itself.
pub(crate) struct Signer<'a> {
    pub key: &'a dyn hsm::PrivateKey,
    pub spki_der: &'a [u8],
    /// The delegated responder's certificate, carried in the response; `None` for the CA.
    pub cert_der: Option<&'a [u8]>,
}

/// Builds and signs the BasicOCSPResponse (RFC 6960 §4.2.1) answering `req` with one
/// status per CertID, in request order, each with the invalidity date of its revocation
/// if one is known, and echoes the request's nonce (RFC 9654). The signature is verified
/// before the response is returned.
pub(crate) fn sign_response(
    req: &OcspRequest,
    entries: Vec<(CertStatus, Option<i64>)>,
    now: i64,
    next_update: i64,
    signer: &Signer<'_>,
) -> Result<OcspAnswer> {
    let mut responses = Vec::with_capacity(entries.len());
    let mut statuses = Vec::with_capacity(entries.len());
    for (r, (status, invalidity_date)) in req.tbs_request.request_list.iter().zip(entries) {
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
            // RevokedInfo (RFC 6960 §4.2.1) has no invalidity date; the CRL entry
            // extension goes into singleExtensions (RFC 6960 §4.4.5, RFC 5280 §5.3.2).
            single_extensions: match invalidity_date {
                Some(date) => Some(vec![asn1::invalidity_date_ext(date)?]),
                None => None,
            },
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
    let spki = SubjectPublicKeyInfoRef::from_der(signer.spki_der)
        .map_err(|e| Error::Internal(format!("responder key: {e}")))?;
    let key_hash = sha1::Sha1::digest(spki.subject_public_key.raw_bytes()).to_vec();
    let data = ResponseData {
        responder_id: ResponderId::ByKey(OctetString::new(key_hash)?),
        produced_at: asn1::generalized_time(now)?,
        responses,
        response_extensions: nonce.as_ref().map(|n| vec![n.clone()]),
    };
    let tbs_der = data.to_der()?;
    let scheme = signer.key.algorithm().default_scheme();
    let signature = signer.key.sign(scheme, &tbs_der)?;
    hsm::verify(scheme, signer.spki_der, &tbs_der, &signature)
        .map_err(|e| Error::Internal(format!("OCSP signature does not verify: {e}")))?;
    let certs = match signer.cert_der {
        Some(der) => Some(vec![Certificate::from_der(der)?]),
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
    Ok(OcspAnswer {
        der: resp.to_der()?,
        status: ResponseStatus::Successful,
        this_update: now,
        next_update,
        nonced: nonce.is_some(),
        statuses,
    })
}

/// Default of `[ca] ocsp_cache_entries`: the most certificates whose pre-signed
/// responses are kept. A response is 300–1,100 bytes (the larger with a delegated
/// responder's certificate in it) plus its key and bookkeeping, about 1.3 KB with the
/// certificate: 50,000 entries stay under 70 MB, a quarter of the 256 MB memory bound of
/// issue 13, while covering the certificates a typical private CA has live at once.
pub const DEFAULT_CACHE_ENTRIES: usize = 50_000;

/// Most CertID forms kept per certificate (SHA-1 or SHA-256, parameters NULL or absent).
const MAX_FORMS_PER_SERIAL: usize = 4;

/// One pre-signed response.
#[derive(Debug)]
struct Presigned {
    /// The DER CertID as the client sent it (echoed in the response, RFC 6960 §4.2.1).
    cert_id: Vec<u8>,
    der: Arc<[u8]>,
    this_update: i64,
    next_update: i64,
    status: CertStatus,
}

#[derive(Debug, Default)]
struct CacheInner {
    /// Bumped by every revocation; an answer built from a store read taken before the
    /// bump is not kept.
    generation: u64,
    /// Serial → its pre-signed responses (one per CertID form).
    by_serial: HashMap<Vec<u8>, Vec<Presigned>>,
    /// Serials in insertion order, oldest first (FIFO eviction). May hold serials already
    /// removed; they are skipped.
    order: VecDeque<Vec<u8>>,
}

/// Pre-signed OCSP responses for requests without a nonce (RFC 5019 §6.1, RFC 9919 §6),
/// per certificate and CertID form, bounded to a number of certificates with
/// oldest-first eviction.
///
/// A response is served while less than half of its validity (thisUpdate to
/// nextUpdate) has passed; after that the next request signs a new one. A revocation
/// removes the certificate's responses in the same step as it bumps the generation, so
/// the very next answer is built from the store.
#[derive(Debug)]
pub struct OcspCache {
    inner: RwLock<CacheInner>,
    capacity: AtomicUsize,
}

impl Default for OcspCache {
    fn default() -> Self {
        OcspCache::new(DEFAULT_CACHE_ENTRIES)
    }
}

impl OcspCache {
    /// A cache for at most `capacity` certificates (0: nothing is kept).
    pub fn new(capacity: usize) -> Self {
        OcspCache {
            inner: RwLock::new(CacheInner::default()),
            capacity: AtomicUsize::new(capacity),
        }
    }

    pub(crate) fn set_capacity(&self, capacity: usize) {
        self.capacity.store(capacity, Ordering::Relaxed);
        if let Ok(mut g) = self.inner.write() {
            evict(&mut g, capacity);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.inner.read().map(|g| g.by_serial.len()).unwrap_or(0)
    }

    pub(crate) fn generation(&self) -> u64 {
        self.inner.read().map(|g| g.generation).unwrap_or(0)
    }

    /// The fresh pre-signed answer to a one-certificate request without extensions.
    pub(crate) fn lookup(&self, req: &OcspRequest, now: i64) -> Option<OcspAnswer> {
        let [r] = req.tbs_request.request_list.as_slice() else {
            return None;
        };
        if req.tbs_request.request_extensions.is_some() || r.single_request_extensions.is_some() {
            return None;
        }
        let cert_id = r.req_cert.to_der().ok()?;
        let g = self.inner.read().ok()?;
        let p = g
            .by_serial
            .get(r.req_cert.serial_number.as_bytes())?
            .iter()
            .find(|p| p.cert_id == cert_id)?;
        // Refreshed once half the validity has passed (RFC 5019 §6.1: responses are
        // re-produced before nextUpdate); a thisUpdate ahead of the clock is not served.
        let half = p.this_update + (p.next_update - p.this_update) / 2;
        if now < p.this_update || now >= half {
            return None;
        }
        Some(OcspAnswer {
            der: p.der.to_vec(),
            status: ResponseStatus::Successful,
            this_update: p.this_update,
            next_update: p.next_update,
            nonced: false,
            statuses: vec![p.status],
        })
    }

    /// Keeps `answer` for `cert_id`, unless a revocation happened since `generation`
    /// was read (the answer may then say "good" of a revoked certificate).
    ///
    /// "unknown" answers are never kept: a serial that is not issued now may be issued
    /// later (serials are reserved before signing), and a kept "unknown" would then hide
    /// it; and anyone can ask about random serials, which would evict the responses of
    /// real certificates. They are signed live, as before.
    pub(crate) fn insert(&self, cert_id: &CertId, answer: &OcspAnswer, generation: u64) {
        let capacity = self.capacity.load(Ordering::Relaxed);
        let status = match answer.statuses.as_slice() {
            [s @ (CertStatus::Good | CertStatus::Revoked { .. })] => *s,
            _ => return,
        };
        if capacity == 0 {
            return;
        }
        let Ok(key) = cert_id.to_der() else {
            return;
        };
        let Ok(mut g) = self.inner.write() else {
            return;
        };
        if g.generation != generation {
            return;
        }
        let serial = cert_id.serial_number.as_bytes().to_vec();
        let entry = Presigned {
            cert_id: key,
            der: Arc::from(answer.der.as_slice()),
            this_update: answer.this_update,
            next_update: answer.next_update,
            status,
        };
        match g.by_serial.get_mut(&serial) {
            Some(forms) => {
                if let Some(p) = forms.iter_mut().find(|p| p.cert_id == entry.cert_id) {
                    *p = entry;
                } else if forms.len() < MAX_FORMS_PER_SERIAL {
                    forms.push(entry);
                }
            }
            None => {
                g.by_serial.insert(serial.clone(), vec![entry]);
                g.order.push_back(serial);
                evict(&mut g, capacity);
            }
        }
    }

    /// Drops every response and bumps the generation, in one step: called when a
    /// responder certificate is replaced (an answer being signed by the old one while
    /// this runs is then not kept either).
    pub(crate) fn clear(&self) {
        if let Ok(mut g) = self.inner.write() {
            g.generation = g.generation.wrapping_add(1);
            g.by_serial.clear();
            g.order.clear();
        }
    }

    /// Drops the responses of `serial` and bumps the generation, in one step: called
    /// after a revocation is durable (RFC 6960 §2.2: the next answer says "revoked").
    pub(crate) fn revoked(&self, serial: &[u8]) {
        if let Ok(mut g) = self.inner.write() {
            g.generation = g.generation.wrapping_add(1);
            g.by_serial.remove(serial);
        }
    }
}

/// Evicts the oldest certificates until at most `capacity` remain.
fn evict(g: &mut CacheInner, capacity: usize) {
    while g.by_serial.len() > capacity {
        match g.order.pop_front() {
            Some(s) => {
                g.by_serial.remove(&s);
            }
            None => break,
        }
    }
    // Serials removed by revocations linger in `order`; drop them once they dominate.
    if g.order.len() > 2 * g.by_serial.len() + 1024 {
        let CacheInner {
            by_serial, order, ..
        } = g;
        order.retain(|s| by_serial.contains_key(s));
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
