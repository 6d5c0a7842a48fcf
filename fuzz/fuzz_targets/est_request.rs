//! Fuzz target `est_request` (body: `privca_fuzz::est_request`, see fuzz/src/lib.rs).
//! EST request decoders (RFC 7030 §4.2, RFC 8951): body decoding then the CSR parse, and
//! the HTTP Basic `Authorization` header parse.
//! It must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| privca_fuzz::est_request(data));
