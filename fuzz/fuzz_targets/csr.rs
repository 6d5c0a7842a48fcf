//! Fuzz target `csr` (body: `privca_fuzz::csr`, see fuzz/src/lib.rs).
//! The CSR decoder (PKCS#10, DER or PEM) with its signature check: the admin API, SCEP and
//! EST all take CSRs from the network through it.
//! It must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| privca_fuzz::csr(data));
