//! Revocation as operators need it (docs/lifecycle.md): the keyCompromise blocklist,
//! invalidity dates in the CRL and OCSP, certificateHold and its release, revoking by
//! certificate and by public key, and every refusal of them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use ca_core::clock::rfc3339;
use ca_core::ocsp::CertStatus;
use ca_core::testing::{TestCa, issue_request, name, soft_key};
use ca_core::{ErrorKind, FailInfo, RevocationReason, RevokeOptions};
use const_oid::AssociatedOid;
use der::Decode;
use hsm::KeyAlgorithm;
use store::CertStatus as Stored;
use support::NOW;
use support::ocsp::{Hash, cert_id, decode, request};
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::CrlReason;

/// A root-only authority whose `device` profile allows holds and whose `tls-client`
/// profile (the built-in) does not.
fn fixture() -> TestCa {
    let mut device = ca_core::profile::built_in("device").unwrap();
    device.allow_hold = true;
    TestCa::builder().profile("device", device).build()
}

fn audit_actions(ca: &TestCa) -> Vec<String> {
    ca.store
        .audit_entries(1, 10_000)
        .unwrap()
        .into_iter()
        .map(|e| e.event.action)
        .collect()
}

/// The entries of the current CRL: (serial, reasonCode, invalidityDate as DER time).
fn crl_entries(ca: &TestCa) -> Vec<(Vec<u8>, Option<CrlReason>, Option<i64>)> {
    let crl = ca.auth.current_crl("root").unwrap();
    let list = CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&crl.der).unwrap();
    list.tbs_cert_list
        .revoked_certificates
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let exts = r.crl_entry_extensions.unwrap_or_default();
            let reason = exts
                .iter()
                .find(|e| e.extn_id == CrlReason::OID)
                .map(|e| CrlReason::from_der(e.extn_value.as_bytes()).unwrap());
            let date = exts
                .iter()
                .find(|e| e.extn_id == ca_core::asn1::oid::INVALIDITY_DATE)
                .map(|e| {
                    assert!(
                        !e.critical,
                        "invalidityDate is non-critical (RFC 5280 §5.3.2)"
                    );
                    let t = der::asn1::GeneralizedTime::from_der(e.extn_value.as_bytes()).unwrap();
                    support::ocsp::unix(&t)
                });
            (r.serial_number.as_bytes().to_vec(), reason, date)
        })
        .collect()
}

fn ocsp_of(ca: &TestCa, serial: &[u8]) -> ca_core::ocsp::OcspAnswer {
    let root = ca.root_cert();
    let id = cert_id(&root, &ca_core::asn1::minimal_positive(serial), Hash::Sha1);
    ca.auth.ocsp(&request(vec![id], None))
}

#[test]
fn key_compromise_blocks_the_key_on_every_later_issuance() {
    let ca = fixture();
    let (a, key) = ca.issue_device("lost-laptop");
    let other = soft_key("other", KeyAlgorithm::EcdsaP256);
    let b = ca.issue("tls-client", "CN=same-key", key.as_ref());

    // Not keyCompromise: the key stays usable.
    ca.auth
        .revoke(&b.serial, RevocationReason::Superseded, "admin")
        .unwrap();
    ca.issue("device", "CN=still-fine", key.as_ref());

    ca.auth
        .revoke(&a.serial, RevocationReason::KeyCompromise, "admin")
        .unwrap();
    let hash = ca_core::asn1::spki_sha256(key.public_key_der());
    let blocked = ca.store.blocked_key(&hash).unwrap().expect("blocked");
    assert_eq!(blocked.serial, a.serial);
    let revoke_audit = ca.store.audit_entries(1, 1000).unwrap();
    let last = revoke_audit.last().unwrap();
    assert_eq!(last.event.action, "crl");
    assert!(
        revoke_audit
            .iter()
            .any(|e| e.event.action == "revoke" && e.event.detail.contains(&hex::encode(&hash)))
    );

    // Every profile, any subject: refused with the one reason and kind.
    let before = ca.store.stats().unwrap().certificates;
    for profile in ["device", "tls-client"] {
        let e = ca
            .auth
            .issue(&issue_request(profile, name("CN=again"), key.as_ref()))
            .expect_err("blocked key");
        assert_eq!(e.precise_kind(), ErrorKind::CompromisedKey);
        assert_eq!(e.kind(), ErrorKind::PolicyRefused);
        assert_eq!(e.reason(), ca_core::authority::BLOCKED_KEY_MESSAGE);
        assert_eq!(e.answer().scep, Some(FailInfo::BadRequest));
        assert_eq!(e.answer().http_status, 403);
    }
    assert_eq!(ca.store.stats().unwrap().certificates, before);
    assert_eq!(
        audit_actions(&ca)
            .iter()
            .filter(|a| *a == "issue-refused")
            .count(),
        2
    );
    // Another key is fine.
    ca.issue("device", "CN=new-key", other.as_ref());
}

#[test]
fn invalidity_dates_reach_the_crl_and_ocsp_and_the_future_is_refused() {
    let ca = fixture();
    let (a, _) = ca.issue_device("a");
    let (b, _) = ca.issue_device("b");
    ca.clock.set(NOW + 100);
    let future = RevokeOptions {
        reason: RevocationReason::KeyCompromise,
        invalidity_date: Some(NOW + 101),
    };
    let e = ca
        .auth
        .revoke_with(&a.serial, future, "admin")
        .expect_err("future");
    assert_eq!(e.precise_kind(), ErrorKind::BadTime);
    assert!(e.to_string().contains("in the future"), "{e}");
    assert_eq!(
        ca.store.get_cert(&a.serial).unwrap().unwrap().status,
        Stored::Valid
    );
    assert_eq!(audit_actions(&ca).last().unwrap(), "revoke-refused");

    let when = NOW - 3600;
    ca.auth
        .revoke_with(
            &a.serial,
            RevokeOptions {
                reason: RevocationReason::KeyCompromise,
                invalidity_date: Some(when),
            },
            "admin",
        )
        .unwrap();
    ca.auth
        .revoke(&b.serial, RevocationReason::Superseded, "admin")
        .unwrap();
    let entries = crl_entries(&ca);
    let find = |s: &[u8]| {
        entries
            .iter()
            .find(|(serial, ..)| {
                ca_core::asn1::minimal_positive(serial) == ca_core::asn1::minimal_positive(s)
            })
            .cloned()
            .unwrap()
    };
    assert_eq!(find(&a.serial).1, Some(CrlReason::KeyCompromise));
    assert_eq!(find(&a.serial).2, Some(when));
    assert_eq!(find(&b.serial).2, None);

    // OCSP: the invalidity date as a singleExtension (RFC 6960 §4.4.5).
    let answer = ocsp_of(&ca, &a.serial);
    let decoded = decode(&answer.der);
    let single = &decoded.data.responses[0];
    let ext = single
        .single_extensions
        .as_ref()
        .and_then(|v| {
            v.iter()
                .find(|e| e.extn_id == ca_core::asn1::oid::INVALIDITY_DATE)
        })
        .expect("invalidityDate singleExtension");
    let t = der::asn1::GeneralizedTime::from_der(ext.extn_value.as_bytes()).unwrap();
    assert_eq!(support::ocsp::unix(&t), when);
    let answer = ocsp_of(&ca, &b.serial);
    assert!(
        decode(&answer.der).data.responses[0]
            .single_extensions
            .is_none()
    );
    assert!(rfc3339(when).ends_with('Z'));
}

#[test]
fn a_hold_is_listed_released_to_good_and_can_be_made_permanent() {
    let ca = fixture();
    let (a, key) = ca.issue_device("phone");
    ca.auth.set_ocsp_cache_entries(100);
    // A pre-signed "good" is in the cache.
    assert_eq!(ocsp_of(&ca, &a.serial).statuses, vec![CertStatus::Good]);

    ca.clock.set(NOW + 10);
    ca.auth
        .revoke(&a.serial, RevocationReason::CertificateHold, "admin")
        .unwrap();
    assert_eq!(
        ocsp_of(&ca, &a.serial).statuses,
        vec![CertStatus::Revoked {
            time: NOW + 10,
            reason: 6
        }]
    );
    assert_eq!(crl_entries(&ca)[0].1, Some(CrlReason::CertificateHold));
    // Holding again: conflict.
    let e = ca
        .auth
        .revoke(&a.serial, RevocationReason::CertificateHold, "admin")
        .expect_err("twice");
    assert_eq!(e.kind(), ErrorKind::Conflict);

    // Released: good again at once (the cached "revoked" is dropped), gone from the CRL.
    ca.clock.set(NOW + 20);
    let r = ca.auth.release(&a.serial, "admin").unwrap();
    assert_eq!(r.status, Stored::Valid);
    assert_eq!(ocsp_of(&ca, &a.serial).statuses, vec![CertStatus::Good]);
    assert!(crl_entries(&ca).is_empty());
    assert!(audit_actions(&ca).contains(&"release".to_string()));
    // Releasing a valid certificate or an unknown serial: refused, audited.
    let e = ca.auth.release(&a.serial, "admin").expect_err("not held");
    assert_eq!(e.kind(), ErrorKind::Conflict);
    let e = ca.auth.release(&[0x42], "admin").expect_err("unknown");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(audit_actions(&ca).last().unwrap(), "release-refused");

    // Held again, then revoked for good with keyCompromise without a release.
    ca.auth
        .revoke(&a.serial, RevocationReason::CertificateHold, "admin")
        .unwrap();
    ca.clock.set(NOW + 30);
    ca.auth
        .revoke(&a.serial, RevocationReason::KeyCompromise, "admin")
        .unwrap();
    assert_eq!(
        ocsp_of(&ca, &a.serial).statuses,
        vec![CertStatus::Revoked {
            time: NOW + 30,
            reason: 1
        }]
    );
    assert_eq!(crl_entries(&ca)[0].1, Some(CrlReason::KeyCompromise));
    let e = ca.auth.release(&a.serial, "admin").expect_err("permanent");
    assert_eq!(e.kind(), ErrorKind::Conflict);
    let e = ca
        .auth
        .issue(&issue_request("device", name("CN=phone"), key.as_ref()))
        .expect_err("blocked");
    assert_eq!(e.precise_kind(), ErrorKind::CompromisedKey);
}

#[test]
fn a_hold_needs_a_profile_that_allows_it() {
    let ca = fixture();
    let key = soft_key("k", KeyAlgorithm::EcdsaP256);
    let r = ca.issue("tls-client", "CN=client", key.as_ref());
    let e = ca
        .auth
        .revoke(&r.serial, RevocationReason::CertificateHold, "admin")
        .expect_err("no allow_hold");
    assert_eq!(e.kind(), ErrorKind::PolicyRefused);
    assert!(e.to_string().contains("allow_hold"), "{e}");
    assert_eq!(
        ca.store.get_cert(&r.serial).unwrap().unwrap().status,
        Stored::Valid
    );
    assert_eq!(audit_actions(&ca).last().unwrap(), "revoke-refused");
}

#[test]
fn revoking_by_certificate_needs_one_this_ca_issued() {
    let ca = fixture();
    let (a, _) = ca.issue_device("a");
    // PEM works as well as DER.
    let pem = der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &a.der).unwrap();
    let r = ca
        .auth
        .revoke_certificate(
            pem.as_bytes(),
            RevokeOptions::reason(RevocationReason::Superseded),
            "admin",
        )
        .unwrap();
    assert_eq!(r.serial, a.serial);
    assert_eq!(r.revocation.unwrap().reason, 4);

    // A certificate of another CA (same serial form, different bytes): unknown, nothing changed.
    let other = fixture();
    let (foreign, _) = other.issue_device("foreign");
    let before = ca.store.stats().unwrap().revoked;
    let e = ca
        .auth
        .revoke_certificate(
            &foreign.der,
            RevokeOptions::reason(RevocationReason::Superseded),
            "admin",
        )
        .expect_err("foreign");
    assert_eq!(e.precise_kind(), ErrorKind::UnknownCertificate);
    let e = ca
        .auth
        .revoke_certificate(
            b"not a certificate",
            RevokeOptions::reason(RevocationReason::Superseded),
            "admin",
        )
        .expect_err("garbage");
    assert_eq!(e.kind(), ErrorKind::BadRequest);
    assert_eq!(ca.store.stats().unwrap().revoked, before);
}

#[test]
fn revoking_by_key_revokes_every_unrevoked_certificate_of_it() {
    let ca = fixture();
    let key = soft_key("shared", KeyAlgorithm::EcdsaP256);
    let a = ca.issue("device", "CN=a", key.as_ref());
    let b = ca.issue("tls-client", "CN=b", key.as_ref());
    let c = ca.issue("device", "CN=c", key.as_ref());
    let (unrelated, _) = ca.issue_device("unrelated");
    ca.auth
        .revoke(&b.serial, RevocationReason::Superseded, "admin")
        .unwrap();
    ca.auth
        .revoke(&c.serial, RevocationReason::CertificateHold, "admin")
        .unwrap();

    // The key as PEM public key, as CSR and as certificate: the same SPKI.
    let spki = key.public_key_der().to_vec();
    let pub_pem = der::pem::encode_string("PUBLIC KEY", der::pem::LineEnding::LF, &spki).unwrap();
    let csr_pem = der::pem::encode_string(
        "CERTIFICATE REQUEST",
        der::pem::LineEnding::LF,
        &ca_core::testing::csr(key.as_ref(), "CN=x", &[]),
    )
    .unwrap();
    let cert_pem =
        der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &a.der).unwrap();
    for text in [&pub_pem, &csr_pem, &cert_pem] {
        assert_eq!(
            ca_core::authority::spki_of_key_material(text.as_bytes()).unwrap(),
            spki
        );
    }
    let e = ca_core::authority::spki_of_key_material(
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .expect_err("private key");
    assert_eq!(e.kind(), ErrorKind::BadRequest);

    // A hold refused by policy for one of them changes nothing for any.
    let strict = fixture();
    let k2 = soft_key("k2", KeyAlgorithm::EcdsaP256);
    let d1 = strict.issue("device", "CN=d1", k2.as_ref());
    let d2 = strict.issue("tls-client", "CN=d2", k2.as_ref());
    let e = strict
        .auth
        .revoke_by_key(
            k2.public_key_der(),
            RevokeOptions::reason(RevocationReason::CertificateHold),
            "admin",
        )
        .expect_err("tls-client does not allow holds");
    assert_eq!(e.kind(), ErrorKind::PolicyRefused);
    for s in [&d1.serial, &d2.serial] {
        assert_eq!(
            strict.store.get_cert(s).unwrap().unwrap().status,
            Stored::Valid
        );
    }

    let revoked = ca
        .auth
        .revoke_by_key(
            &spki,
            RevokeOptions::reason(RevocationReason::KeyCompromise),
            "admin",
        )
        .unwrap();
    let mut got: Vec<Vec<u8>> = revoked.iter().map(|r| r.serial.clone()).collect();
    let mut want = vec![a.serial.clone(), c.serial.clone()];
    got.sort();
    want.sort();
    assert_eq!(
        got, want,
        "a (valid) and c (on hold), not b (already revoked)"
    );
    assert!(revoked.iter().all(|r| r.revocation.unwrap().reason == 1));
    assert_eq!(
        ca.store
            .get_cert(&b.serial)
            .unwrap()
            .unwrap()
            .revocation
            .unwrap()
            .reason,
        4
    );
    assert_eq!(
        ca.store
            .get_cert(&unrelated.serial)
            .unwrap()
            .unwrap()
            .status,
        Stored::Valid
    );
    assert!(
        ca.store
            .blocked_key(&ca_core::asn1::spki_sha256(&spki))
            .unwrap()
            .is_some()
    );

    // Nothing left to revoke, and a key that matches nothing: not found, nothing changed.
    let stats = ca.store.stats().unwrap();
    for k in [
        spki.clone(),
        soft_key("nobody", KeyAlgorithm::EcdsaP256)
            .public_key_der()
            .to_vec(),
    ] {
        let e = ca
            .auth
            .revoke_by_key(
                &k,
                RevokeOptions::reason(RevocationReason::KeyCompromise),
                "admin",
            )
            .expect_err("nothing to revoke");
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }
    let after = ca.store.stats().unwrap();
    assert_eq!(after.revoked, stats.revoked);
    assert_eq!(
        after.audit_entries,
        stats.audit_entries + 2,
        "two refusals audited"
    );
}
