//! Fuzz target `ocsp_request` (body: `privca_fuzz::ocsp_request`, see fuzz/src/lib.rs).
//! The OCSP request decoder (RFC 6960 §4.1.1) behind `POST /ocsp`.
//! It must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| privca_fuzz::ocsp_request(data));
