//! Fuzz target `csr_content` (body: `privca_fuzz::csr_content`, see fuzz/src/lib.rs).
//! CSR content after the signature check (subject, extensionRequest, subjectAltName,
//! challengePassword), entered directly, then the profile policy.
//! It must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| privca_fuzz::csr_content(data));
