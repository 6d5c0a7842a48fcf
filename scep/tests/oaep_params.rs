//! RSAES-OAEP parameters of a request envelope (RFC 8017 A.2.1, RFC 4055 §4.1): each
//! absent field takes its own default (sha1, mgf1SHA1, empty label), and parameters the
//! key backend cannot decrypt with are refused as such (badAlg) before any decryption,
//! instead of ending in "cannot be decrypted". Found by the `scep_envelope` fuzz seeds.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;

use scep::ber::{self, tag};
use scep::challenge::FailInfo;
use scep::codec::{self, DecodeOptions, Recipient, oid};

fn vector(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors/scep")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn open(envelope: &[u8]) -> Result<Vec<u8>, (FailInfo, String)> {
    let key = hsm::soft::SoftKey::from_pkcs8("ra", &vector("ra-TEST-ONLY-key.pk8.der")).unwrap();
    let cert = vector("ra.crt.der");
    codec::open_envelope(
        envelope,
        &[Recipient {
            cert_der: &cert,
            key: &key,
        }],
        &DecodeOptions::default(),
    )
    .map(|(_, plain)| plain)
    .map_err(|f| (f.fail_info, f.text))
}

#[test]
fn openssl_oaep_envelopes_open_or_are_refused_as_unsupported() {
    for name in [
        "openssl-3.0.19-envelope-aes256-oaep-sha1.der",
        "openssl-3.0.19-envelope-aes256-oaep-sha256.der",
    ] {
        let plain = open(&vector(name)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let csr = ca_core::csr::parse_with(&plain, ca_core::csr::CsrOptions { allow_sha1: true })
            .unwrap();
        assert_eq!(csr.challenge_password.as_deref(), Some("s3cret"), "{name}");
    }
    // hashAlgorithm sha512 with maskGenAlgorithm left at its default, MGF1 with SHA-1.
    let (fi, text) = open(&vector(
        "openssl-3.0.19-envelope-aes128-oaep-sha512-mgf1-sha1.der",
    ))
    .unwrap_err();
    assert_eq!(fi, FailInfo::BadAlg, "{text}");
    assert_eq!(text, "unsupported RSAES-OAEP parameters");
}

/// An envelope to the RA certificate with RSAES-OAEP `params` and a random encrypted key.
fn envelope_with_params(params: &[u8]) -> Vec<u8> {
    let ra = vector("ra.crt.der");
    let ktri = ber::seq(&[
        &ber::small_int(0),
        &codec::issuer_and_serial_of(&ra).unwrap(),
        &ber::seq(&[&ber::oid(&oid::RSAES_OAEP), params]),
        &ber::tlv(tag::OCTET_STRING, &[0x5a; 256]),
    ]);
    let eci = ber::seq(&[
        &ber::oid(&oid::DATA),
        &ber::seq(&[
            &ber::oid(&oid::AES128_CBC),
            &ber::tlv(tag::OCTET_STRING, &[7; 16]),
        ]),
        &ber::tlv(tag::CTX0_PRIM, &[9; 32]),
    ]);
    let ed = ber::seq(&[&ber::small_int(0), &ber::set_of(vec![ktri]), &eci]);
    ber::seq(&[&ber::oid(&oid::ENVELOPED_DATA), &ber::tlv(tag::CTX0, &ed)])
}

#[test]
fn oaep_parameters_the_backend_cannot_use_are_refused_before_decryption() {
    let alg = |o| ber::alg(o, true);
    let hash = |o| ber::tlv(tag::CTX0, &alg(o));
    let mgf = |o| ber::tlv(tag::CTX1, &ber::seq(&[&ber::oid(&oid::MGF1), &alg(o)]));
    let label = |l: &[u8]| {
        ber::tlv(
            tag::CTX2,
            &ber::seq(&[
                &ber::oid(&oid::P_SPECIFIED),
                &ber::tlv(tag::OCTET_STRING, l),
            ]),
        )
    };
    let usable: Vec<Vec<u8>> = vec![
        ber::seq(&[]),
        ber::seq(&[&hash(&oid::SHA1)]),
        ber::seq(&[&hash(&oid::SHA256), &mgf(&oid::SHA256)]),
        ber::seq(&[&hash(&oid::SHA384), &mgf(&oid::SHA384), &label(b"")]),
    ];
    for p in &usable {
        // Random key material: the decryption fails, on the common path.
        let (fi, text) = open(&envelope_with_params(p)).unwrap_err();
        assert_eq!(fi, FailInfo::BadMessageCheck, "{p:02x?}: {text}");
    }
    let unusable: Vec<Vec<u8>> = vec![
        ber::seq(&[&hash(&oid::SHA256)]),
        ber::seq(&[&mgf(&oid::SHA256)]),
        ber::seq(&[&hash(&oid::SHA256), &mgf(&oid::SHA1)]),
        ber::seq(&[&hash(&oid::SHA256), &mgf(&oid::SHA256), &label(b"x")]),
        ber::seq(&[&hash(&oid::MD5)]),
        ber::tlv(tag::OCTET_STRING, b"junk"),
    ];
    for p in &unusable {
        let (fi, text) = open(&envelope_with_params(p)).unwrap_err();
        assert_eq!(fi, FailInfo::BadAlg, "{p:02x?}: {text}");
    }
}
