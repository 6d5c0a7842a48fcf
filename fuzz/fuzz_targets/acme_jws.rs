//! Fuzz target `acme_jws` (body: `privca_fuzz::acme_jws`, see fuzz/src/lib.rs).
//! ACME request bodies through the JWS layer and the External Account Binding.
//! It must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| privca_fuzz::acme_jws(data));
