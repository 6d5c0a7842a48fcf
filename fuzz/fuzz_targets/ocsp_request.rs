//! Fuzz target: the OCSP request decoder (RFC 6960 §4.1.1) behind `POST /ocsp` and
//! `GET /ocsp/…`. It must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ca_core::ocsp::parse_request(data);
});
