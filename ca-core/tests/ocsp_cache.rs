//! The pre-signed OCSP responses (RFC 5019 §6.1 / RFC 9919 §6) through the public API:
//! identical bytes for identical requests without a nonce, refresh after half the
//! validity (fixed clock), revocation visible in the very next answer, nonced requests
//! signed live, the entry cap. Responses are decoded with structures declared here from
//! RFC 6960 §4.2.1 and their signatures checked.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use const_oid::db::rfc6960::ID_PKIX_OCSP_NONCE;
use der::Decode;
use der::asn1::OctetString;

use ca_core::RevocationReason;
use ca_core::ocsp::CertStatus;
use ca_core::ocsp::DEFAULT_CACHE_ENTRIES;
use support::ocsp::*;
use support::{Fx, NOW, OCSP_VALIDITY, fixture};

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
