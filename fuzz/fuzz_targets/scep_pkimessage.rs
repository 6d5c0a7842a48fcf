//! Fuzz target: the SCEP pkiMessage decoder (RFC 8894 §3) — BER walk, signature check
//! over the signed attributes as received, envelope opening with a real (test-only) RA
//! key — plus the GET query/base64 decoding. It must never panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

static RA: OnceLock<hsm::soft::SoftKey> = OnceLock::new();
const RA_CERT: &[u8] = include_bytes!("../../tests/vectors/scep/ra.crt.der");
const RA_KEY: &[u8] = include_bytes!("../../tests/vectors/scep/ra-TEST-ONLY-key.pk8.der");

fuzz_target!(|data: &[u8]| {
    let key = RA.get_or_init(|| {
        hsm::soft::SoftKey::from_pkcs8("ra", RA_KEY).expect("test RA key")
    });
    let recipients = [scep::codec::Recipient { cert_der: RA_CERT, key }];
    let options = scep::codec::DecodeOptions { allow_des: true, allow_md5: false };
    let _ = scep::codec::decode_request(data, &recipients, &options);
    let _ = scep::codec::certs_from_degenerate(data);
    let _ = scep::codec::parse_issuer_and_subject(data);
    if let Ok(q) = std::str::from_utf8(data) {
        let p = scep::http::query_params(q);
        if let Some(m) = p.get("message") {
            let _ = scep::http::lenient_base64(m);
        }
    }
});
