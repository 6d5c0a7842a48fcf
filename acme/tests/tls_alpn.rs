//! The tls-alpn-01 certificate check (RFC 8737 §3) on certificates made by OpenSSL
//! (tests/vectors/tls-alpn/README.md): one SAN equal to the identifier, a critical
//! acmeIdentifier holding SHA-256 of the key authorization; everything else refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use acme::tls_alpn::check_certificate;
use ca_core::profile::San;

fn vector(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/vectors/tls-alpn/{name}.der",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn digest(key_authorization: &str) -> [u8; 32] {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_authorization.as_bytes())
        .as_ref()
        .try_into()
        .unwrap()
}

fn dns(n: &str) -> San {
    San::Dns(n.into())
}

#[test]
fn the_right_certificate_passes_for_its_name_only() {
    let good = vector("good");
    let d = digest("key.authz");
    assert_eq!(check_certificate(&good, &dns("tls.acme.test"), &d), Ok(()));
    assert_eq!(check_certificate(&good, &dns("TLS.acme.test"), &d), Ok(()));
    let e = check_certificate(&good, &dns("www.acme.test"), &d).unwrap_err();
    assert!(e.contains("exactly"), "{e}");
    let e = check_certificate(&good, &dns("tls.acme.test"), &digest("other")).unwrap_err();
    assert!(e.contains("SHA-256"), "{e}");
    let ip = vector("ip");
    let addr = San::Ip("127.0.0.1".parse().unwrap());
    assert_eq!(check_certificate(&ip, &addr, &d), Ok(()));
    assert!(check_certificate(&ip, &San::Ip("127.0.0.2".parse().unwrap()), &d).is_err());
}

#[test]
fn a_non_critical_or_missing_extension_two_names_or_garbage_fail() {
    let d = digest("key.authz");
    let name = dns("tls.acme.test");
    let e = check_certificate(&vector("noncritical"), &name, &d).unwrap_err();
    assert!(e.contains("critical"), "{e}");
    let e = check_certificate(&vector("noext"), &name, &d).unwrap_err();
    assert!(e.contains("acmeIdentifier"), "{e}");
    let e = check_certificate(&vector("twosans"), &name, &d).unwrap_err();
    assert!(e.contains("exactly"), "{e}");
    let good = vector("good");
    for n in [0, 10, good.len() / 2, good.len() - 1] {
        assert!(
            check_certificate(&good[..n], &name, &d).is_err(),
            "cut at {n}"
        );
    }
    let big = vec![0x30; acme::tls_alpn::MAX_CERTIFICATE + 1];
    assert!(
        check_certificate(&big, &name, &d)
            .unwrap_err()
            .contains("larger")
    );
}
