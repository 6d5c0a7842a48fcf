//! Fuzz target `scep_pkimessage` (body: `privca_fuzz::scep_pkimessage`, see fuzz/src/lib.rs).
//! The SCEP pkiMessage decoder (RFC 8894 §3): BER walk, signature check over the signed
//! attributes as received, envelope opening with the test RA key; plus the GET
//! query/base64 decoding.
//! It must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| privca_fuzz::scep_pkimessage(data));
