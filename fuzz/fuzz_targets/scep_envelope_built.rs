//! Fuzz target `scep_envelope_built` (body: `privca_fuzz::scep_envelope_built`, see fuzz/src/lib.rs).
//! Structure-aware: the input is encrypted to the RA certificate (cipher, key transport and
//! a tampering chosen by the first byte), opened again and decoded as messageData.
//! It must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| privca_fuzz::scep_envelope_built(data));
