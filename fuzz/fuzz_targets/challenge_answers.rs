//! Fuzz target `challenge_answers` (body: `privca_fuzz::challenge_answers`, see fuzz/src/lib.rs).
//! Answers from outside to the SCEP challenge methods: a webhook's decision, and Entra ID
//! token, Graph discovery and Intune ScepActions responses.
//! It must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| privca_fuzz::challenge_answers(data));
