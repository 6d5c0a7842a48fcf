//! The OCSP responder (`Authority::ocsp`) through the public API: requests built from
//! `ca_core::ocsp`'s request types, responses decoded field by field with structures
//! declared here from RFC 6960 §4.2.1 (not the responder's own), signatures checked.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use const_oid::db::rfc5912::{ECDSA_WITH_SHA_256, ID_SHA_384};
use der::asn1::OctetString;
use sha2::Digest;
use x509_cert::ext::pkix::CrlReason;

use ca_core::RevocationReason;
use ca_core::ocsp::{CertStatus, ResponseStatus};
use support::ocsp::*;
use support::{Fx, NOW, OCSP_VALIDITY, fixture};

/// The unsigned answer carrying only `status` (RFC 6960 §4.2.1).
fn bare(status: u8) -> Vec<u8> {
    vec![0x30, 0x03, 0x0a, 0x01, status]
}

/// The SHA-1 of the root's subjectPublicKey, which names the responder (`byKey`).
fn root_key_hash(fx: &Fx) -> Vec<u8> {
    let spki = fx.root.tbs_certificate().subject_public_key_info();
    sha1::Sha1::digest(spki.subject_public_key.raw_bytes()).to_vec()
}

#[test]
fn good_revoked_and_unknown_are_answered_in_request_order_signed_by_the_ca() {
    let fx = fixture();
    let revoked = fx.issue("revoked");
    let good = fx.issue("good");
    fx.clock.set(NOW + 10);
    fx.auth
        .revoke(&revoked.serial, RevocationReason::KeyCompromise, "test")
        .unwrap();
    let at = NOW + 20;
    fx.clock.set(at);
    let ids = vec![
        cert_id(&fx.root, &good.serial, Hash::Sha1),
        cert_id(&fx.root, &revoked.serial, Hash::Sha1),
        cert_id(&fx.root, &[0x42, 0x42], Hash::Sha1), // never issued
    ];
    // The nonce asked for as critical comes back non-critical (RFC 9654 §2.1).
    let nonce = nonce_ext(b"0123456789abcdef", true);
    let answer = fx
        .auth
        .ocsp(&request(ids.clone(), Some(vec![nonce.clone()])));
    assert_eq!(answer.status, ResponseStatus::Successful);
    assert!(answer.nonced);
    assert_eq!(
        (answer.this_update, answer.next_update),
        (at, at + OCSP_VALIDITY)
    );
    assert_eq!(
        answer.statuses,
        [
            CertStatus::Good,
            CertStatus::Revoked {
                time: NOW + 10,
                reason: 1
            },
            CertStatus::Unknown
        ]
    );

    let d = decode(&answer.der);
    // Signed by the CA itself: its key verifies the signature over ResponseData, and no
    // responder certificate is attached.
    assert_eq!(d.basic.signature_algorithm.oid, ECDSA_WITH_SHA_256);
    hsm::verify(
        hsm::SignatureScheme::EcdsaP256Sha256,
        &fx.root_spki(),
        &d.tbs,
        d.basic.signature.raw_bytes(),
    )
    .expect("the response signature verifies with the root key");
    assert!(d.basic.certs.is_none());

    assert_eq!(d.data.version, None, "v1 is the DEFAULT and is left out");
    assert_eq!(
        d.data.responder_id,
        ResponderId::ByKey(OctetString::new(root_key_hash(&fx)).unwrap())
    );
    assert_eq!(unix(&d.data.produced_at), at);
    assert_eq!(d.data.responses.len(), 3);
    for (r, id) in d.data.responses.iter().zip(&ids) {
        assert_eq!(&r.cert_id, id, "the CertID is echoed as asked");
        assert_eq!(unix(&r.this_update), at);
        assert_eq!(
            unix(r.next_update.as_ref().expect("nextUpdate")),
            at + OCSP_VALIDITY
        );
        assert!(r.single_extensions.is_none());
    }
    assert!(matches!(d.data.responses[0].cert_status, Status::Good(_)));
    match &d.data.responses[1].cert_status {
        Status::Revoked(info) => {
            assert_eq!(unix(&info.revocation_time), NOW + 10);
            assert_eq!(info.revocation_reason, Some(CrlReason::KeyCompromise));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        d.data.responses[2].cert_status,
        Status::Unknown(_)
    ));

    let mut echoed = nonce;
    echoed.critical = false;
    assert_eq!(d.data.response_extensions, Some(vec![echoed]));
}

#[test]
fn sha256_cert_ids_are_answered_like_sha1_ones() {
    let fx = fixture();
    let cert = fx.issue("sha256");
    fx.auth
        .revoke(&cert.serial, RevocationReason::Superseded, "test")
        .unwrap();
    for hash in [Hash::Sha1, Hash::Sha256] {
        let id = cert_id(&fx.root, &cert.serial, hash);
        let answer = fx.auth.ocsp(&request(vec![id.clone()], None));
        assert_eq!(answer.status, ResponseStatus::Successful);
        let d = decode(&answer.der);
        assert_eq!(d.data.responses[0].cert_id, id);
        match &d.data.responses[0].cert_status {
            Status::Revoked(info) => {
                assert_eq!(info.revocation_reason, Some(CrlReason::Superseded))
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn an_unspecified_revocation_has_no_reason_and_no_nonce_means_no_extensions() {
    let fx = fixture();
    let cert = fx.issue("unspecified");
    fx.auth
        .revoke(&cert.serial, RevocationReason::Unspecified, "test")
        .unwrap();
    let answer = fx.auth.ocsp(&request(
        vec![cert_id(&fx.root, &cert.serial, Hash::Sha256)],
        None,
    ));
    assert!(!answer.nonced);
    let d = decode(&answer.der);
    assert!(d.data.response_extensions.is_none());
    match &d.data.responses[0].cert_status {
        Status::Revoked(info) => assert_eq!(info.revocation_reason, None),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_issuer_the_responder_does_not_serve_is_unauthorized_and_unsigned() {
    let fx = fixture();
    let cert = fx.issue("mine");
    let mut foreign = cert_id(&fx.root, &cert.serial, Hash::Sha1);
    foreign.issuer_key_hash = OctetString::new([0u8; 20]).unwrap();
    let answer = fx.auth.ocsp(&request(vec![foreign.clone()], None));
    assert_eq!(answer.status, ResponseStatus::Unauthorized);
    assert_eq!(answer.der, bare(6));
    // One foreign CertID among ours is enough: one CA answers a whole request.
    let answer = fx.auth.ocsp(&request(
        vec![cert_id(&fx.root, &cert.serial, Hash::Sha1), foreign],
        None,
    ));
    assert_eq!(answer.der, bare(6));
    // The name hash counts too, not only the key hash.
    let mut renamed = cert_id(&fx.root, &cert.serial, Hash::Sha256);
    renamed.issuer_name_hash = OctetString::new([1u8; 32]).unwrap();
    assert_eq!(fx.auth.ocsp(&request(vec![renamed], None)).der, bare(6));
}

#[test]
fn malformed_requests_get_an_unsigned_malformed_request() {
    let fx = fixture();
    let cert = fx.issue("x");
    let id = || cert_id(&fx.root, &cert.serial, Hash::Sha1);
    let mut sha384 = id();
    sha384.hash_algorithm.oid = ID_SHA_384;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"garbage".to_vec()),
        ("empty", vec![]),
        ("no CertID", request(vec![], None)),
        ("17 CertIDs", request(vec![id(); 17], None)),
        ("SHA-384 CertID", request(vec![sha384], None)),
        (
            "empty nonce",
            request(vec![id()], Some(vec![nonce_ext(b"", false)])),
        ),
        (
            "129-octet nonce",
            request(vec![id()], Some(vec![nonce_ext(&[7; 129], false)])),
        ),
    ];
    for (what, der) in cases {
        let answer = fx.auth.ocsp(&der);
        assert_eq!(answer.status, ResponseStatus::MalformedRequest, "{what}");
        assert_eq!(answer.der, bare(1), "{what}");
        assert!(answer.statuses.is_empty(), "{what}");
    }
    // The limits themselves are accepted: 16 CertIDs and a 128-octet nonce.
    let answer = fx.auth.ocsp(&request(
        vec![id(); 16],
        Some(vec![nonce_ext(&[7; 128], false)]),
    ));
    assert_eq!(answer.status, ResponseStatus::Successful);
    assert_eq!(decode(&answer.der).data.responses.len(), 16);
}
