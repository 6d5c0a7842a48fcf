//! The CRL streamed from the store into DER (issue 13 item 5) as OpenSSL reads it: every
//! revoked serial with its revocation date, reason and invalidity date, the CRL number,
//! the issuer and a signature that verifies, at a small number of entries, beside an
//! empty CRL (no revokedCertificates at all). Runs when `PRIVCA_INTEROP=1`.

use std::collections::BTreeMap;

use ca_core::testing::TestCa;
use ca_core::{RevocationReason, RevokeOptions};
use privca_tests::{interop_enabled, openssl, output_text, run};

#[test]
fn streamed_crl_agrees_with_openssl() {
    if !interop_enabled("streamed_crl_agrees_with_openssl") {
        return;
    }
    let ca = TestCa::new();
    let dir = tempfile::tempdir().expect("dir");
    let root = dir.path().join("root.pem");
    std::fs::write(
        &root,
        privca_server::admin::pem("CERTIFICATE", &ca.root_der),
    )
    .expect("root");
    let read = |der: &[u8], name: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, der).expect("crl");
        // The text on stdout, "verify OK" on stderr: both.
        let out = run(openssl()
            .args(["crl", "-inform", "DER", "-noout", "-text", "-CAfile"])
            .arg(&root)
            .arg("-in")
            .arg(&p));
        assert!(out.status.success(), "{}", output_text(&out));
        output_text(&out)
    };

    // No revocation: no entries at all (RFC 5280 §5.1.2.6).
    let empty = ca.auth.generate_crl("root", "test").expect("empty CRL");
    let text = read(&empty.der, "empty.crl");
    assert!(text.contains("No Revoked Certificates."), "{text}");
    assert_eq!(crl_number(&text), empty.number, "{text}");

    // Seven revocations with different reasons, one with an invalidity date.
    let reasons = [
        (RevocationReason::Unspecified, None),
        (RevocationReason::KeyCompromise, Some("Key Compromise")),
        (RevocationReason::Superseded, Some("Superseded")),
        (
            RevocationReason::CessationOfOperation,
            Some("Cessation Of Operation"),
        ),
        (
            RevocationReason::AffiliationChanged,
            Some("Affiliation Changed"),
        ),
        (RevocationReason::CaCompromise, Some("CA Compromise")),
        (RevocationReason::KeyCompromise, Some("Key Compromise")),
    ];
    let mut expected: BTreeMap<String, Option<&str>> = BTreeMap::new();
    for (i, (reason, shown)) in reasons.iter().enumerate() {
        let (rec, _) = ca.issue_device(&format!("d{i}"));
        let options = RevokeOptions {
            reason: *reason,
            invalidity_date: (i == 6).then(|| ca.auth.now() - 86_400),
        };
        ca.auth
            .revoke_with(&rec.serial, options, "test")
            .expect("revoke");
        expected.insert(hex::encode_upper(&rec.serial), *shown);
    }
    let crl = ca.auth.generate_crl("root", "test").expect("CRL");
    let text = read(&crl.der, "full.crl");
    assert!(text.contains("verify OK"), "{text}");
    assert!(text.contains("Issuer: O = Test, CN = Test Root"), "{text}");
    assert!(text.contains("Next Update:"), "{text}");
    assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
    // Entries as OpenSSL lists them: "Serial Number: HEX" then its date and extensions.
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for block in text.split("Serial Number: ").skip(1) {
        let serial: String = block
            .chars()
            .take_while(|c| c.is_ascii_hexdigit())
            .collect();
        let body = block.split("Serial Number: ").next().unwrap_or_default();
        let body = body.split("Signature Algorithm").next().unwrap_or_default();
        seen.insert(serial.trim_start_matches('0').to_string(), body.to_string());
    }
    assert_eq!(seen.len(), expected.len(), "{text}");
    for (serial, reason) in &expected {
        let body = seen
            .get(serial.trim_start_matches('0'))
            .unwrap_or_else(|| panic!("{serial} missing:\n{text}"));
        assert!(body.contains("Revocation Date:"), "{body}");
        match reason {
            Some(r) => assert!(body.contains(r), "{serial} {r}: {body}"),
            None => assert!(!body.contains("CRL Reason Code"), "{body}"),
        }
    }
    assert_eq!(text.matches("Invalidity Date").count(), 1, "{text}");
    assert_eq!(crl_number(&text), crl.number, "{text}");
    assert!(crl.number > empty.number);
}

/// The value OpenSSL prints on the line after `X509v3 CRL Number:`.
fn crl_number(text: &str) -> u64 {
    let mut lines = text
        .lines()
        .skip_while(|l| !l.contains("X509v3 CRL Number"));
    lines.next();
    lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no CRL number in {text}"))
}
