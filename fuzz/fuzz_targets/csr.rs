//! Fuzz target: the CSR decoder (PKCS#10, DER or PEM) that takes network input from the
//! admin API, and later SCEP and EST. It must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ca_core::csr::parse(data);
});
