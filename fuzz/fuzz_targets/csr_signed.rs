//! Fuzz target `csr_signed` (body: `privca_fuzz::csr_signed`, see fuzz/src/lib.rs).
//! Structure-aware: the input CSR is re-signed with the key it is made to name, so the
//! signature passes and mutations reach the content parsing through the full decoder.
//! It must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| privca_fuzz::csr_signed(data));
