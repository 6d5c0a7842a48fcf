//! Fuzz target `acme_order` (body: `privca_fuzz::acme_order`, see fuzz/src/lib.rs).
//! ACME newOrder and finalize payloads and the CSR-against-order check.
//! It must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| privca_fuzz::acme_order(data));
