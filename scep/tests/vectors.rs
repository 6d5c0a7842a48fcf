//! Real client messages captured on 2026-11-23 (see tests/vectors/scep/README.md),
//! decoded with the test-only RA key they were encrypted to.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;

use hsm::PrivateKey;
use scep::client::{self, Identity};
use scep::codec::{
    self, ContentCipher, DecodeOptions, Decoded, DigestAlg, MessageType, PkiStatus, Recipient,
};

fn vector(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors/scep")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn key(name: &str) -> hsm::soft::SoftKey {
    hsm::soft::SoftKey::from_pkcs8("test", &vector(name)).unwrap()
}

fn decode(name: &str, allow_des: bool) -> Decoded {
    let ra = key("ra-TEST-ONLY-key.pk8.der");
    let ra_cert = vector("ra.crt.der");
    codec::decode_request(
        &vector(name),
        &[Recipient {
            cert_der: &ra_cert,
            key: &ra,
        }],
        &DecodeOptions {
            allow_des,
            allow_md5: false,
        },
    )
    .unwrap()
}

fn request(name: &str, allow_des: bool) -> codec::PkiRequest {
    match decode(name, allow_des) {
        Decoded::Request(r) => *r,
        Decoded::Refused { text, .. } => panic!("{name}: refused: {text}"),
    }
}

#[test]
fn scepclient_pkcsreq_decodes() {
    let r = request("scepclient-2.1.0-pkcsreq-des-sha1.der", true);
    assert_eq!(r.message_type, MessageType::PkcsReq);
    assert_eq!(r.reply_to.cipher, ContentCipher::Des);
    assert_eq!(r.reply_to.digest, DigestAlg::Sha1);
    assert!(r.signer.self_issued);
    let csr = ca_core::csr::parse_with(
        &r.message_data,
        ca_core::csr::CsrOptions { allow_sha1: true },
    )
    .unwrap();
    assert_eq!(csr.challenge_password.as_deref(), Some("s3cret"));
    assert_eq!(csr.spki_der, r.signer.spki_der, "proof of possession holds");
    // Single DES is refused unless the endpoint enables it.
    match decode("scepclient-2.1.0-pkcsreq-des-sha1.der", false) {
        Decoded::Refused { fail_info, .. } => {
            assert_eq!(fail_info, scep::challenge::FailInfo::BadAlg)
        }
        Decoded::Request(_) => panic!("DES accepted while disabled"),
    }
}

#[test]
fn scepclient_renewalreq_is_signed_by_an_issued_certificate() {
    let r = request("scepclient-2.1.0-renewalreq-des-sha1.der", true);
    assert_eq!(r.message_type, MessageType::RenewalReq);
    assert!(
        !r.signer.self_issued,
        "signed by the certificate privca issued"
    );
    let csr = ca_core::csr::parse_with(
        &r.message_data,
        ca_core::csr::CsrOptions { allow_sha1: true },
    )
    .unwrap();
    // scepclient re-sends the CSR it saved (csr.pem), challenge included; the service
    // then checks the challenge like an initial enrollment (a blank one would be skipped).
    assert_eq!(csr.challenge_password.as_deref(), Some("s3cret"));
}

#[test]
fn certmonger_requests_decode() {
    for (name, cipher) in [
        (
            "certmonger-0.79.17-pkcsreq-aes256-sha256.der",
            ContentCipher::Aes256,
        ),
        (
            "certmonger-0.79.17-pkcsreq-des3-sha256.der",
            ContentCipher::Des3,
        ),
    ] {
        let r = request(name, false);
        assert_eq!(r.message_type, MessageType::PkcsReq, "{name}");
        assert_eq!(r.reply_to.cipher, cipher, "{name}");
        assert_eq!(r.reply_to.digest, DigestAlg::Sha256, "{name}");
        // certmonger's signer: a v1 certificate with a 32-byte serial.
        assert!(r.signer.serial.len() > 20, "{name}");
        let csr = ca_core::csr::parse_with(
            &r.message_data,
            ca_core::csr::CsrOptions { allow_sha1: true },
        )
        .unwrap();
        assert_eq!(csr.challenge_password.as_deref(), Some("s3cret"));
    }
    // The GET query as certmonger sent it decodes to the same message.
    let q = String::from_utf8(vector("certmonger-0.79.17-pkcsreq-get-query.txt")).unwrap();
    let p = scep::http::query_params(q.trim());
    assert_eq!(
        scep::http::lenient_base64(&p["message"]).unwrap(),
        vector("certmonger-0.79.17-pkcsreq-aes256-sha256.der")
    );
}

#[test]
fn our_certreps_to_real_clients_open_with_their_keys() {
    for (req, rep, k) in [
        (
            "scepclient-2.1.0-pkcsreq-des-sha1.der",
            "privca-certrep-to-scepclient-pkcsreq.der",
            "scepclient-TEST-ONLY-key.pk8.der",
        ),
        (
            "certmonger-0.79.17-pkcsreq-aes256-sha256.der",
            "privca-certrep-to-certmonger.der",
            "certmonger-cm1-TEST-ONLY-key.pk8.der",
        ),
    ] {
        let r = request(req, true);
        let key = key(k);
        assert_eq!(key.public_key_der(), r.signer.spki_der.as_slice());
        let reply = client::read_reply(
            &vector(rep),
            Identity {
                key: &key,
                cert_der: &r.signer.cert_der,
            },
        )
        .unwrap();
        assert_eq!(reply.status, PkiStatus::Success);
        assert_eq!(reply.transaction_id, r.reply_to.transaction_id);
        assert_eq!(reply.recipient_nonce, r.reply_to.sender_nonce);
        assert_eq!(
            reply.certs.len(),
            3,
            "issued certificate + issuing CA + root"
        );
    }
}

#[test]
fn every_truncation_of_a_real_message_fails_cleanly() {
    let ra = key("ra-TEST-ONLY-key.pk8.der");
    let ra_cert = vector("ra.crt.der");
    let msg = vector("certmonger-0.79.17-pkcsreq-aes256-sha256.der");
    for n in (0..msg.len()).step_by(7) {
        let _ = codec::decode_request(
            &msg[..n],
            &[Recipient {
                cert_der: &ra_cert,
                key: &ra,
            }],
            &DecodeOptions::default(),
        );
    }
}

/// Re-encodes a real message in BER the way Java/BouncyCastle and `openssl -stream`
/// write it: indefinite lengths on the outer structures and the eContent as a
/// constructed OCTET STRING in 100-byte segments. The signature (over the signed
/// attributes) and messageDigest (over the content octets) stay valid.
#[test]
fn ber_indefinite_lengths_and_constructed_octet_strings_decode() {
    use scep::ber::{self, tag};
    let der = vector("certmonger-0.79.17-pkcsreq-aes256-sha256.der");
    let indef = |t: u8, parts: &[&[u8]]| -> Vec<u8> {
        let mut v = vec![t, 0x80];
        for p in parts {
            v.extend_from_slice(p);
        }
        v.extend_from_slice(&[0, 0]);
        v
    };
    let ci = ber::read_all(&der).unwrap();
    let ci_kids = ci.children().unwrap();
    let sd = ci_kids[1].children().unwrap()[0];
    let sd_kids = sd.children().unwrap();
    let encap = sd_kids[2].children().unwrap();
    let content = encap[1].children().unwrap()[0]
        .octets(tag::OCTET_STRING)
        .unwrap();
    let segments: Vec<Vec<u8>> = content
        .chunks(100)
        .map(|c| ber::tlv(tag::OCTET_STRING, c))
        .collect();
    let seg_refs: Vec<&[u8]> = segments.iter().map(Vec::as_slice).collect();
    let constructed = indef(0x24, &seg_refs);
    let new_encap = indef(
        tag::SEQUENCE,
        &[encap[0].raw, &indef(tag::CTX0, &[&constructed])],
    );
    let mut parts: Vec<&[u8]> = vec![sd_kids[0].raw, sd_kids[1].raw, &new_encap];
    parts.extend(sd_kids[3..].iter().map(|e| e.raw));
    let new_sd = indef(tag::SEQUENCE, &parts);
    let ber_msg = indef(
        tag::SEQUENCE,
        &[ci_kids[0].raw, &indef(tag::CTX0, &[&new_sd])],
    );
    assert_ne!(ber_msg, der);

    let ra = key("ra-TEST-ONLY-key.pk8.der");
    let ra_cert = vector("ra.crt.der");
    let decoded = codec::decode_request(
        &ber_msg,
        &[Recipient {
            cert_der: &ra_cert,
            key: &ra,
        }],
        &DecodeOptions::default(),
    )
    .unwrap();
    let Decoded::Request(r) = decoded else {
        panic!("BER message refused: {decoded:?}")
    };
    assert_eq!(r.message_type, MessageType::PkcsReq);
    assert_eq!(r.reply_to.cipher, ContentCipher::Aes256);
}
