//! Fuzz target `ocsp_get` (body: `privca_fuzz::ocsp_get`, see fuzz/src/lib.rs).
//! The `GET /ocsp/{request}` path decoding (percent, base64) into the request decoder.
//! It must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| privca_fuzz::ocsp_get(data));
