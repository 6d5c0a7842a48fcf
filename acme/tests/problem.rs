//! Problem documents (RFC 9457, RFC 8555 §6.7): each ACME refusal and each ca-core error
//! kind becomes a document with its type, status and a safe detail.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use acme::Error;
use acme::jws::ALGORITHMS;
use acme::problem::{Identifier, Problem, Subproblem};
use serde_json::{Value, json};

fn doc(p: &Problem) -> Value {
    serde_json::from_slice(&p.to_json()).unwrap()
}

#[test]
fn acme_refusals_become_problem_documents() {
    let cases = [
        (Error::Malformed("m".into()), "malformed", 400),
        (Error::BadPublicKey("k".into()), "badPublicKey", 400),
        (Error::BadNonce("n".into()), "badNonce", 400),
        (Error::Unauthorized("u".into()), "unauthorized", 403),
    ];
    for (e, kind, status) in cases {
        let d = doc(&Problem::from(&e));
        assert_eq!(d["type"], format!("urn:ietf:params:acme:error:{kind}"));
        assert_eq!(d["status"], status);
        assert_eq!(d["detail"], e.to_string());
        assert!(
            d.get("algorithms").is_none() && d.get("subproblems").is_none(),
            "{d}"
        );
    }
    // badSignatureAlgorithm lists the accepted algorithms (RFC 8555 §6.2).
    let e = Error::BadSignatureAlgorithm {
        alg: "HS256".into(),
        allowed: ALGORITHMS,
    };
    let d = doc(&Problem::from(&e));
    assert_eq!(
        d["type"],
        "urn:ietf:params:acme:error:badSignatureAlgorithm"
    );
    assert_eq!(
        d["algorithms"],
        json!(["RS256", "ES256", "ES384", "ES512", "EdDSA"])
    );
}

#[test]
fn ca_core_errors_take_their_type_and_status_from_the_one_table() {
    let cases = [
        (
            ca_core::Error::PolicyRefused("x".into()),
            "rejectedIdentifier",
            403,
        ),
        (ca_core::Error::BadSignature("x".into()), "badCSR", 400),
        (ca_core::Error::RefusedKey("x".into()), "badPublicKey", 403),
        (
            ca_core::Error::Unavailable("x".into()),
            "serverInternal",
            503,
        ),
    ];
    for (e, kind, status) in cases {
        let d = doc(&Problem::from_core(&e));
        assert_eq!(
            d["type"],
            format!("urn:ietf:params:acme:error:{kind}"),
            "{e}"
        );
        assert_eq!(d["status"], status, "{e}");
        assert_eq!(d["status"], e.answer().http_status);
    }
    // Internal detail stays out of the document.
    let e = ca_core::Error::Config("key file /secret/path unreadable".into());
    let d = doc(&Problem::from_core(&e));
    assert!(
        !d["detail"].as_str().unwrap().contains("/secret/path"),
        "{d}"
    );
}

#[test]
fn subproblems_name_their_identifier() {
    let p = Problem {
        kind: "urn:ietf:params:acme:error:rejectedIdentifier".into(),
        detail: "some names are refused".into(),
        status: 403,
        subproblems: vec![Subproblem {
            kind: "urn:ietf:params:acme:error:rejectedIdentifier".into(),
            detail: "not under .corp.example".into(),
            identifier: Some(Identifier {
                kind: "dns".into(),
                value: "evil.example".into(),
            }),
        }],
        algorithms: None,
    };
    let d = doc(&p);
    assert_eq!(
        d["subproblems"][0]["identifier"],
        json!({"type": "dns", "value": "evil.example"})
    );
}
