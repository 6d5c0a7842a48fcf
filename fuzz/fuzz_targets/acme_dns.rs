//! Fuzz target `acme_dns` (body: `privca_fuzz::acme_dns`, see fuzz/src/lib.rs).
//! DNS answers to the dns-01 TXT question through `acme::dns::parse_txt_answer`.
//! It must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| privca_fuzz::acme_dns(data));
