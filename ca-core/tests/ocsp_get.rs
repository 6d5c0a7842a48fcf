//! The `GET /ocsp/{request}` decoding (RFC 6960 Appendix A.1) on the shapes clients send.
#![allow(clippy::unwrap_used, missing_docs)]

use ca_core::ocsp::{decode_get_request, parse_request};

/// An `openssl ocsp -reqout -no_nonce` request (SHA-1 CertID); its base64 has `+` and `/`.
const B64: &str = "MFIwUDBOMEwwSjAJBgUrDgMCGgUABBTYUAl46phf/yBxPthd0zUq+IcQ9gQUh7Qq2G4D+sQm5fsjO9Wdht0h7GUCEQDDofDi1LaomQARIjNEVWZ3";

fn der() -> Vec<u8> {
    decode_get_request(B64).unwrap()
}

#[test]
fn every_spelling_of_the_base64_decodes_to_the_same_request() {
    let der = der();
    parse_request(&der).unwrap();
    let url_safe = B64.replace('+', "-").replace('/', "_");
    let wrapped = format!("{}\r\n{}\n", &B64[..40], &B64[40..]);
    for spelling in [
        B64.to_string(),
        format!("{B64}=="),
        url_safe,
        wrapped,
        // A form decoder on the way turned each `+` into a space.
        B64.replace('+', " "),
    ] {
        assert_eq!(decode_get_request(&spelling).unwrap(), der, "{spelling:?}");
    }
}

#[test]
fn garbage_and_oversized_paths_are_refused() {
    assert!(decode_get_request("!!!").is_err());
    assert!(decode_get_request("MFIw=UDBO").is_err());
    let huge = "A".repeat(ca_core::ocsp::MAX_REQUEST_BYTES * 2);
    assert!(decode_get_request(&huge).is_err());
}
