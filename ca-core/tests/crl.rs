//! The CRL builder (`Authority::generate_crl`, `current_crl`) through the public API: the
//! DER it produces, decoded field by field (RFC 5280 §5.1 to §5.3).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use const_oid::AssociatedOid;
use const_oid::db::rfc5912::ECDSA_WITH_SHA_256;
use der::{Decode, Encode};
use x509_cert::Version;
use x509_cert::certificate::Rfc5280;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlNumber, CrlReason};

use ca_core::RevocationReason;
use support::{CRL_REFRESH, CRL_VALIDITY, NOW, fixture};

fn decode(der: &[u8]) -> CertificateList<Rfc5280> {
    CertificateList::from_der(der).expect("the CRL decodes")
}

fn unix(t: &x509_cert::time::Time) -> i64 {
    i64::try_from(t.to_unix_duration().as_secs()).unwrap()
}

/// The cRLNumber extension's value, as an integer.
fn crl_number(list: &CertificateList<Rfc5280>) -> u64 {
    let ext = list
        .tbs_cert_list
        .crl_extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == CrlNumber::OID)
        .expect("cRLNumber");
    assert!(!ext.critical, "cRLNumber is not critical (RFC 5280 §5.2.3)");
    let n = CrlNumber::from_der(ext.extn_value.as_bytes()).unwrap();
    n.0.as_bytes()
        .iter()
        .fold(0u64, |acc, b| acc << 8 | u64::from(*b))
}

#[test]
fn a_crl_lists_every_revocation_with_its_date_and_reason_and_is_signed_by_its_ca() {
    let fx = fixture();
    // One certificate revoked for each reason, one a second later than the one before,
    // and one that stays valid.
    let mut revoked = Vec::new();
    // (certificateHold needs a profile with allow_hold: tests/lifecycle.rs.)
    let reasons = RevocationReason::ALL
        .into_iter()
        .filter(|(r, _)| *r != RevocationReason::CertificateHold);
    for (i, (reason, name)) in reasons.enumerate() {
        let r = fx.issue(&format!("revoked-{name}"));
        let at = NOW + 10 + i64::try_from(i).unwrap();
        fx.clock.set(at);
        fx.auth.revoke(&r.serial, reason, "test").expect("revoke");
        revoked.push((r.serial, at, reason.code()));
    }
    let valid = fx.issue("still-valid");
    let made_at = NOW + 100;
    fx.clock.set(made_at);
    let stored = fx.auth.generate_crl("root", "test").expect("crl");
    let list = decode(&stored.der);
    let tbs = &list.tbs_cert_list;

    // The header (§5.1.2).
    assert_eq!(tbs.version, Version::V2);
    assert_eq!(&tbs.issuer, fx.root.tbs_certificate().subject());
    assert_eq!(tbs.signature.oid, ECDSA_WITH_SHA_256);
    assert_eq!(list.signature_algorithm, tbs.signature);
    assert_eq!(unix(&tbs.this_update), made_at);
    assert_eq!(
        unix(tbs.next_update.as_ref().expect("nextUpdate")),
        made_at + CRL_VALIDITY
    );
    assert_eq!(
        (stored.this_update, stored.next_update),
        (made_at, made_at + CRL_VALIDITY)
    );

    // The signature verifies with the CA's key over the TBSCertList (§5.1.1.3).
    hsm::verify(
        hsm::SignatureScheme::EcdsaP256Sha256,
        &fx.root_spki(),
        &tbs.to_der().unwrap(),
        list.signature.raw_bytes(),
    )
    .expect("the CRL signature verifies with the root key");

    // The entries: every revoked certificate, its date, reasonCode only when not
    // unspecified (§5.3.1), never critical; the valid one is not listed.
    let entries = tbs.revoked_certificates.as_ref().expect("entries");
    assert_eq!(entries.len(), revoked.len());
    for (serial, at, code) in &revoked {
        let e = entries
            .iter()
            .find(|e| e.serial_number.as_bytes() == serial.as_slice())
            .unwrap_or_else(|| panic!("{} is not listed", hex::encode(serial)));
        assert_eq!(unix(&e.revocation_date), *at);
        match (code, &e.crl_entry_extensions) {
            (0, None) => {}
            (0, Some(x)) => panic!("unspecified carries extensions: {x:?}"),
            (code, Some(x)) => {
                assert_eq!(x.len(), 1, "{code}");
                assert_eq!(x[0].extn_id, CrlReason::OID);
                assert!(!x[0].critical);
                // CRLReason ::= ENUMERATED
                assert_eq!(x[0].extn_value.as_bytes(), [0x0a, 0x01, *code], "{code}");
            }
            (code, None) => panic!("reason {code} has no reasonCode"),
        }
    }
    assert!(
        entries
            .iter()
            .all(|e| e.serial_number.as_bytes() != valid.serial.as_slice())
    );

    // The CRL extensions (§5.2): the AKI names the CA's key, the number is the stored one.
    let exts = tbs.crl_extensions.as_ref().expect("extensions");
    assert_eq!(exts.len(), 2);
    let aki = exts
        .iter()
        .find(|e| e.extn_id == AuthorityKeyIdentifier::OID)
        .expect("AKI");
    assert!(!aki.critical);
    let aki = AuthorityKeyIdentifier::from_der(aki.extn_value.as_bytes()).unwrap();
    assert_eq!(
        aki.key_identifier.expect("keyIdentifier").as_bytes(),
        fx.root_key_id().as_slice()
    );
    assert_eq!(crl_number(&list), stored.number);

    // What was returned is what the store serves.
    assert_eq!(fx.store.latest_crl("root").unwrap(), Some(stored));
}

#[test]
fn numbers_increase_by_one_and_a_crl_without_revocations_has_no_entry_list() {
    let fx = fixture();
    let first = fx.auth.generate_crl("root", "test").expect("crl");
    let list = decode(&first.der);
    assert!(
        list.tbs_cert_list.revoked_certificates.is_none(),
        "an empty revokedCertificates is left out (§5.1.2.6)"
    );
    assert_eq!(crl_number(&list), first.number);
    for step in 1..=3 {
        let next = fx.auth.generate_crl("root", "test").expect("crl");
        assert_eq!(next.number, first.number + step);
        assert_eq!(crl_number(&decode(&next.der)), next.number);
    }
    // An unknown CA has no CRL.
    assert_eq!(
        fx.auth.generate_crl("nobody", "test").unwrap_err().kind(),
        ca_core::ErrorKind::NotFound
    );
}

#[test]
fn the_stored_crl_is_served_until_the_refresh_period_ends() {
    let fx = fixture();
    let made = fx.auth.generate_crl("root", "test").expect("crl");
    fx.clock.set(NOW + CRL_REFRESH - 1);
    let served = fx.auth.current_crl("root").expect("current");
    assert_eq!(served, made, "still fresh: the same CRL");
    fx.clock.set(NOW + CRL_REFRESH);
    let renewed = fx.auth.current_crl("root").expect("current");
    assert_eq!(renewed.number, made.number + 1);
    assert_eq!(renewed.this_update, NOW + CRL_REFRESH);
    assert_eq!(
        unix(&decode(&renewed.der).tbs_cert_list.this_update),
        NOW + CRL_REFRESH
    );
}
