//! EST request decoders (RFC 7030 §4.2, RFC 8951): body decoding (base64 with any
//! whitespace, PEM armour, raw DER) followed by the CSR parse, and the HTTP Basic
//! `Authorization` header parse. None may panic on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(der) = est::encoding::decode_body(data) {
        let _ = ca_core::csr::parse(&der);
    }
    let _ = est::password::parse_basic(data);
});
