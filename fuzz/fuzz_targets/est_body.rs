//! Fuzz target `est_body` (body: `privca_fuzz::est_body`, see fuzz/src/lib.rs).
//! EST request bodies (base64 with and without CRLF, PEM, DER) into the CSR content and
//! the profile policy.
//! It must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| privca_fuzz::est_body(data));
