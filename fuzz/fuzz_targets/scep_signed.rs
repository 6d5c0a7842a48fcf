//! Fuzz target `scep_signed` (body: `privca_fuzz::scep_signed`, see fuzz/src/lib.rs).
//! Structure-aware: the input becomes the content of a pkiMessage signed by a known key, so
//! the signature passes and every input reaches envelope opening.
//! It must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| privca_fuzz::scep_signed(data));
