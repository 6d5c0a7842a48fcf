//! Fuzz target `scep_envelope` (body: `privca_fuzz::scep_envelope`, see fuzz/src/lib.rs).
//! The SCEP EnvelopedData parser (RFC 5652 §6) and the decryption outcomes with the test RA
//! key, then the messageData decoders.
//! It must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| privca_fuzz::scep_envelope(data));
