//! The pre-signed OCSP responses (RFC 5019 §6.1 / RFC 9919 §6) through the public API:
//! identical bytes for identical requests without a nonce, refresh after half the
//! validity (fixed clock), revocation visible in the very next answer, nonced requests
//! signed live, the entry cap. Responses are decoded with structures declared here from
//! RFC 6960 §4.2.1 and their signatures checked.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

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

use ca_core::RevocationReason;
use ca_core::ocsp::DEFAULT_CACHE_ENTRIES;
use ca_core::ocsp::{CertId, CertStatus, OcspRequest, Request, ResponseStatus, TbsRequest};
use support::{Fx, NOW, OCSP_VALIDITY, fixture};

// --- RFC 6960 §4.2.1, as a client reads it -------------------------------------------

#[derive(Clone, Debug, Sequence)]
struct OcspResponse {
    response_status: ResponseStatus,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    response_bytes: Option<ResponseBytes>,
}

#[derive(Clone, Debug, Sequence)]
struct ResponseBytes {
    response_type: ObjectIdentifier,
    response: OctetString,
}

#[derive(Clone, Debug, Sequence)]
struct BasicOcspResponse {
    tbs_response_data: der::Any,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    certs: Option<Vec<Certificate>>,
}

#[derive(Clone, Debug, Sequence)]
struct ResponseData {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    version: Option<u8>,
    responder_id: ResponderId,
    produced_at: GeneralizedTime,
    responses: Vec<SingleResponse>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    response_extensions: Option<Vec<Extension>>,
}

#[derive(Clone, Debug, PartialEq, Eq, der::Choice)]
enum ResponderId {
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", constructed = "true")]
    ByName(Name),
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", constructed = "true")]
    ByKey(OctetString),
}

#[derive(Clone, Debug, Sequence)]
struct SingleResponse {
    cert_id: CertId,
    cert_status: Status,
    this_update: GeneralizedTime,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    next_update: Option<GeneralizedTime>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    single_extensions: Option<Vec<Extension>>,
}

#[derive(Clone, Debug, der::Choice)]
enum Status {
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT")]
    Good(Null),
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", constructed = "true")]
    Revoked(RevokedInfo),
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT")]
    Unknown(Null),
}

#[derive(Clone, Debug, Sequence)]
struct RevokedInfo {
    revocation_time: GeneralizedTime,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    revocation_reason: Option<CrlReason>,
}

/// A decoded successful response: the signed data, and the signed bytes with their
/// signature.
struct Decoded {
    data: ResponseData,
    tbs: Vec<u8>,
    basic: BasicOcspResponse,
}

fn decode(der: &[u8]) -> Decoded {
    let r = OcspResponse::from_der(der).expect("OCSPResponse decodes");
    assert_eq!(r.response_status, ResponseStatus::Successful);
    let bytes = r.response_bytes.expect("responseBytes");
    assert_eq!(bytes.response_type, ID_PKIX_OCSP_BASIC);
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).expect("basic decodes");
    let tbs = basic.tbs_response_data.to_der().unwrap();
    let data = ResponseData::from_der(&tbs).expect("ResponseData decodes");
    Decoded { data, tbs, basic }
}

fn unix(t: &GeneralizedTime) -> i64 {
    i64::try_from(t.to_unix_duration().as_secs()).unwrap()
}

// --- requests ------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Hash {
    Sha1,
    Sha256,
}

/// The CertID of `serial` under the certificate `issuer` (RFC 6960 §4.1.1: hashes of the
/// issuer's DER name and of its subjectPublicKey BIT STRING contents).
fn cert_id(issuer: &Certificate, serial: &[u8], hash: Hash) -> CertId {
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

fn nonce_ext(nonce: &[u8], critical: bool) -> Extension {
    Extension {
        extn_id: ID_PKIX_OCSP_NONCE,
        critical,
        extn_value: OctetString::new(OctetString::new(nonce).unwrap().to_der().unwrap()).unwrap(),
    }
}

fn request(ids: Vec<CertId>, extensions: Option<Vec<Extension>>) -> Vec<u8> {
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

fn verify(fx: &Fx, der: &[u8]) -> Decoded {
    let d = decode(der);
    hsm::verify(
        hsm::SignatureScheme::EcdsaP256Sha256,
        &fx.root_spki(),
        &d.tbs,
        d.basic.signature.raw_bytes(),
    )
    .expect("the response signature verifies with the root key");
    d
}

fn one(fx: &Fx, serial: &[u8]) -> Vec<u8> {
    request(vec![cert_id(&fx.root, serial, Hash::Sha1)], None)
}

#[test]
fn identical_requests_without_a_nonce_get_the_same_bytes_from_the_cache() {
    let fx = fixture();
    let cert = fx.issue("cached");
    let req = one(&fx, &cert.serial);
    assert!(
        fx.auth.ocsp_cached(&req).is_none(),
        "nothing is cached before the first answer"
    );
    let first = fx.auth.ocsp(&req);
    assert_eq!(first.statuses, [CertStatus::Good]);
    assert!(!first.nonced);
    fx.clock.set(NOW + 60);
    let second = fx.auth.ocsp(&req);
    assert_eq!(second.der, first.der, "the same pre-signed bytes");
    assert_eq!(
        second.this_update, NOW,
        "thisUpdate of the pre-signed response"
    );
    let fast = fx.auth.ocsp_cached(&req).expect("the fast path answers");
    assert_eq!(fast.der, first.der);
    assert_eq!(fast.statuses, [CertStatus::Good]);
    assert_eq!(fx.auth.ocsp_cache_len(), 1);
    let d = verify(&fx, &fast.der);
    assert_eq!(unix(&d.data.produced_at), NOW);

    // A SHA-256 CertID is another form of the same certificate: its own response,
    // echoing its own CertID.
    let id256 = cert_id(&fx.root, &cert.serial, Hash::Sha256);
    let r256 = fx.auth.ocsp(&request(vec![id256.clone()], None));
    assert_ne!(r256.der, first.der);
    assert_eq!(verify(&fx, &r256.der).data.responses[0].cert_id, id256);
    assert_eq!(
        fx.auth.ocsp(&request(vec![id256], None)).der,
        r256.der,
        "the SHA-256 form is cached too"
    );
}

#[test]
fn a_revocation_is_in_the_very_next_answer() {
    let fx = fixture();
    let cert = fx.issue("soon revoked");
    let req = one(&fx, &cert.serial);
    assert_eq!(fx.auth.ocsp(&req).statuses, [CertStatus::Good]);
    assert!(fx.auth.ocsp_cached(&req).is_some(), "good is cached");
    fx.clock.set(NOW + 5);
    fx.auth
        .revoke(&cert.serial, RevocationReason::KeyCompromise, "test")
        .unwrap();
    assert!(
        fx.auth.ocsp_cached(&req).is_none(),
        "the revocation dropped the pre-signed good"
    );
    let after = fx.auth.ocsp(&req);
    assert_eq!(
        after.statuses,
        [CertStatus::Revoked {
            time: NOW + 5,
            reason: 1
        }]
    );
    match &verify(&fx, &after.der).data.responses[0].cert_status {
        Status::Revoked(info) => assert_eq!(unix(&info.revocation_time), NOW + 5),
        other => panic!("expected revoked, got {other:?}"),
    }
    // The revoked answer is cached in turn.
    fx.clock.set(NOW + 6);
    assert_eq!(fx.auth.ocsp(&req).der, after.der);
}

#[test]
fn a_response_is_refreshed_once_half_its_validity_has_passed() {
    let fx = fixture();
    let cert = fx.issue("refreshed");
    let req = one(&fx, &cert.serial);
    let first = fx.auth.ocsp(&req);
    fx.clock.set(NOW + OCSP_VALIDITY / 2 - 1);
    assert_eq!(fx.auth.ocsp(&req).der, first.der, "still under half");
    let half = NOW + OCSP_VALIDITY / 2;
    fx.clock.set(half);
    assert!(fx.auth.ocsp_cached(&req).is_none(), "stale at half");
    let fresh = fx.auth.ocsp(&req);
    assert_ne!(fresh.der, first.der);
    assert_eq!(
        (fresh.this_update, fresh.next_update),
        (half, half + OCSP_VALIDITY)
    );
    let d = verify(&fx, &fresh.der);
    assert_eq!(unix(&d.data.responses[0].this_update), half);
    assert_eq!(
        fx.auth
            .ocsp_cached(&req)
            .expect("the new one is cached")
            .der,
        fresh.der
    );
}

#[test]
fn nonced_requests_are_signed_live_with_their_nonce() {
    let fx = fixture();
    let cert = fx.issue("nonced");
    let id = cert_id(&fx.root, &cert.serial, Hash::Sha1);
    // A cached response exists for the plain form; nonced requests must not get it.
    let plain = fx.auth.ocsp(&request(vec![id.clone()], None));
    let mut seen = Vec::new();
    for nonce in [
        b"nonce number one".as_slice(),
        b"nonce number two".as_slice(),
    ] {
        let req = request(vec![id.clone()], Some(vec![nonce_ext(nonce, false)]));
        assert!(fx.auth.ocsp_cached(&req).is_none());
        let a = fx.auth.ocsp(&req);
        assert!(a.nonced);
        assert_ne!(a.der, plain.der);
        let d = verify(&fx, &a.der);
        let ext = d.data.response_extensions.expect("the nonce is echoed");
        assert_eq!(ext.len(), 1);
        assert_eq!(ext[0].extn_id, ID_PKIX_OCSP_NONCE);
        let inner = OctetString::from_der(ext[0].extn_value.as_bytes()).unwrap();
        assert_eq!(inner.as_bytes(), nonce);
        seen.push(a.der);
    }
    assert_ne!(seen[0], seen[1]);
    // The same nonce twice is signed twice (ECDSA signatures differ).
    let req = request(vec![id], Some(vec![nonce_ext(b"nonce number one", false)]));
    assert_ne!(fx.auth.ocsp(&req).der, seen[0], "a fresh signature");
    assert_eq!(fx.auth.ocsp_cache_len(), 1, "nonced answers are not kept");
}

#[test]
fn unknown_serials_are_not_cached() {
    let fx = fixture();
    let req = one(&fx, &[0x42, 0x42]);
    assert_eq!(fx.auth.ocsp(&req).statuses, [CertStatus::Unknown]);
    assert!(fx.auth.ocsp_cached(&req).is_none());
    assert_eq!(fx.auth.ocsp_cache_len(), 0);
}

#[test]
fn the_entry_cap_evicts_the_oldest_certificate() {
    let fx = fixture();
    fx.auth.set_ocsp_cache_entries(2);
    let certs: Vec<_> = (0..3).map(|i| fx.issue(&format!("cap {i}"))).collect();
    let reqs: Vec<_> = certs.iter().map(|c| one(&fx, &c.serial)).collect();
    for r in &reqs {
        fx.auth.ocsp(r);
    }
    assert_eq!(fx.auth.ocsp_cache_len(), 2);
    assert!(fx.auth.ocsp_cached(&reqs[0]).is_none(), "the oldest went");
    assert!(fx.auth.ocsp_cached(&reqs[1]).is_some());
    assert!(fx.auth.ocsp_cached(&reqs[2]).is_some());
    // An evicted certificate is answered live and cached again, evicting the next oldest.
    assert_eq!(fx.auth.ocsp(&reqs[0]).statuses, [CertStatus::Good]);
    assert!(fx.auth.ocsp_cached(&reqs[0]).is_some());
    assert!(fx.auth.ocsp_cached(&reqs[1]).is_none());
    assert_eq!(fx.auth.ocsp_cache_len(), 2);
    // 0 turns the cache off and empties it.
    fx.auth.set_ocsp_cache_entries(0);
    assert_eq!(fx.auth.ocsp_cache_len(), 0);
    let a = fx.auth.ocsp(&reqs[2]);
    assert_ne!(fx.auth.ocsp(&reqs[2]).der, a.der, "signed afresh each time");
    assert_eq!(DEFAULT_CACHE_ENTRIES, 50_000);
}
