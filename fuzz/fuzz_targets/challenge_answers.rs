//! Answers from outside to the SCEP challenge methods: a webhook's decision, and Entra ID
//! token, Graph discovery and Intune ScepActions responses (bodies are capped at 64 KiB
//! before parsing).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() > 64 * 1024 {
        return;
    }
    scep::webhook::fuzz_answer(data);
    scep::intune::fuzz_answers(data);
});
