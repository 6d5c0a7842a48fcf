//! ACME requests signed by josepy, the JOSE library certbot signs with, verified by
//! privca's JWS layer (RFC 8555 §6.2, §7.3.4): RS256 (2048 and 4096 bits), ES256, ES384
//! and ES512 account keys, each newAccount with an External Account Binding made as
//! certbot's `acme` package makes it. The signer is `tests/clients/josepy_requests.py`;
//! scripts/test.sh installs josepy into the project's venv.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;

use acme::Error;
use acme::jws::{self, ExternalAccountBinding, Jws, KeyRef};
use serde_json::Value;

const URL: &str = "https://127.0.0.1:8443/acme/servers/new-account";

#[test]
fn requests_signed_by_josepy_verify_and_tampered_ones_do_not() {
    if !privca_tests::interop_enabled("requests_signed_by_josepy_verify_and_tampered_ones_do_not") {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/josepy_requests.py");
    let out = Command::new("python3")
        .args([script, URL])
        .output()
        .expect("python3 (scripts/test.sh puts the project venv first on PATH)");
    assert!(
        out.status.success(),
        "josepy signer failed (is josepy installed in .venv?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "one request per account key type");
    for l in &lines {
        let name = l["alg"].as_str().unwrap();
        let body = l["body"].as_str().unwrap();
        let req = Jws::parse(body.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let KeyRef::Jwk(key) = &req.protected.key else {
            panic!("{name}: a newAccount carries its jwk")
        };
        req.verify(key).unwrap_or_else(|e| panic!("{name}: {e}"));
        req.check_url(URL).unwrap();
        // josepy's RFC 7638 thumbprint and privca's agree.
        assert_eq!(
            key.thumbprint_b64(),
            l["thumbprint"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            req.protected.nonce.as_deref(),
            Some(l["nonce"].as_str().unwrap()),
            "{name}"
        );
        // The External Account Binding, as certbot's acme package builds it.
        let payload: Value = serde_json::from_slice(&req.payload).unwrap();
        let eab = ExternalAccountBinding::parse(&payload["externalAccountBinding"], &req, key)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(eab.key_id, l["eab_kid"].as_str().unwrap());
        let mac_key = jws::b64_decode("eab key", l["eab_key"].as_str().unwrap()).unwrap();
        eab.verify(&mac_key)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(matches!(
            eab.verify(&mac_key[1..]),
            Err(Error::Unauthorized(_))
        ));

        // The same request with its payload swapped for another one: refused.
        let mut v: Value = serde_json::from_str(body).unwrap();
        v["payload"] = Value::String(jws::b64_encode(br#"{"termsOfServiceAgreed":true}"#));
        let tampered = Jws::parse(v.to_string().as_bytes()).unwrap();
        assert!(
            matches!(tampered.verify(key), Err(Error::Unauthorized(_))),
            "{name}: a tampered payload must not verify"
        );
    }
}
