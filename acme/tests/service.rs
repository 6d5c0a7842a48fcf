//! The ACME service driven directly (no HTTP), by a client written here that signs with
//! a P-256 account key: the whole flow (EAB account, order, http-01 through a validator
//! that checks the key authorization, finalize, download, revocation) and the refusals
//! (bad and reused nonces, wrong `url`, unknown `kid`, EAB with a wrong MAC or missing,
//! out-of-policy names, CSRs that disagree with the order or carry the account key,
//! finalize before the order is ready, a wrong media type, a failed validation), each
//! with its problem type and nothing issued.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use acme::jws::b64_encode;
use acme::service::{AcmeRequest, AcmeResponse, Method};
use acme::{
    AcmeConfig, AcmeEndpointConfig, AcmeService, Dns01Check, Http01Check, TlsAlpn01Check, Validator,
};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair};
use ca_core::acme_records::{AuditEvent, EabKey};
use ca_core::testing::{self, TestCa};
use serde_json::{Value, json};

const BASE: &str = "https://ca.test:8443";

/// Answers http-01 as the client's web server would: valid when the key authorization
/// the service expects is what the client published for the token.
/// Likewise dns-01 as the client's DNS zone (TXT records by name) and tls-alpn-01 as
/// its TLS server (the acmeIdentifier digest it would present, by SNI).
#[derive(Default)]
struct Published {
    answers: Mutex<Vec<(String, String)>>,
    txt: Mutex<Vec<(String, String)>>,
    alpn: Mutex<Vec<(String, [u8; 32])>>,
    dns_checks: Mutex<Vec<Dns01Check>>,
}

impl Validator for Published {
    fn http01(&self, check: &Http01Check) -> Result<(), String> {
        let answers = self.answers.lock().unwrap();
        match answers.iter().find(|(t, _)| *t == check.token) {
            Some((_, body)) if *body == check.key_authorization => Ok(()),
            Some(_) => Err("the body is not the key authorization".into()),
            None => Err("connection: refused".into()),
        }
    }

    fn dns01(&self, check: &Dns01Check) -> Result<(), String> {
        self.dns_checks.lock().unwrap().push(check.clone());
        let txt = self.txt.lock().unwrap();
        if txt
            .iter()
            .any(|(n, v)| *n == check.name && *v == check.expected)
        {
            Ok(())
        } else {
            Err(format!("no TXT record of {} matches", check.name))
        }
    }

    fn tls_alpn01(&self, check: &TlsAlpn01Check) -> Result<(), String> {
        let alpn = self.alpn.lock().unwrap();
        match alpn.iter().find(|(sni, _)| *sni == check.sni) {
            Some((_, d)) if *d == check.digest => Ok(()),
            Some(_) => Err("the acmeIdentifier is not the key authorization's".into()),
            None => Err("connection: refused".into()),
        }
    }
}

fn sha256_b64(s: &str) -> String {
    b64_encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes()).as_ref())
}

struct Client {
    pkcs8: Vec<u8>,
    key: EcdsaKeyPair,
    jwk: Value,
    nonce: Option<String>,
    kid: Option<String>,
}

impl Client {
    fn new() -> Client {
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new())
            .unwrap()
            .as_ref()
            .to_vec();
        let key = EcdsaKeyPair::from_pkcs8(alg, &pkcs8).unwrap();
        let point = key.public_key().as_ref().to_vec();
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64_encode(&point[1..33]), "y": b64_encode(&point[33..])});
        Client {
            pkcs8,
            key,
            jwk,
            nonce: None,
            kid: None,
        }
    }

    fn thumbprint(&self) -> String {
        acme::jws::Jwk::from_value(&self.jwk)
            .unwrap()
            .thumbprint_b64()
    }

    fn sign(&self, header: Value, payload: &str) -> Value {
        let protected = b64_encode(header.to_string().as_bytes());
        let payload = b64_encode(payload.as_bytes());
        let sig = self
            .key
            .sign(
                &SystemRandom::new(),
                format!("{protected}.{payload}").as_bytes(),
            )
            .unwrap();
        json!({"protected": protected, "payload": payload, "signature": b64_encode(sig.as_ref())})
    }
}

struct Fixture {
    ca: TestCa,
    service: Arc<AcmeService>,
    published: Arc<Published>,
}

fn url(path: &str) -> String {
    format!("{BASE}/acme/servers/{path}")
}

impl Fixture {
    fn new() -> Fixture {
        let mut profile = ca_core::profile::built_in("tls-server").unwrap();
        profile.san.any_dns = false;
        profile.san.dns = vec![".acme.test".into()];
        profile.san.ip_ranges = vec!["127.0.0.0/8".into()];
        profile.san.wildcards = false;
        let mut wild = profile.clone();
        wild.san.wildcards = true;
        let ca = TestCa::builder()
            .profile("acme-server", profile)
            .profile("acme-wild", wild)
            .build();
        let mut cfg = AcmeConfig::default();
        cfg.endpoints.insert(
            "servers".into(),
            serde_json::from_value::<AcmeEndpointConfig>(json!({
                "profile": "acme-server",
                "profiles": ["acme-wild"],
                "dns_resolver": "127.0.0.1:5353",
            }))
            .unwrap(),
        );
        let published = Arc::new(Published::default());
        let service =
            Arc::new(AcmeService::new(&cfg, BASE, ca.auth.clone(), published.clone()).unwrap());
        Fixture {
            ca,
            service,
            published,
        }
    }

    fn eab_key(&self, kid: &str) -> Vec<u8> {
        let key = vec![0x5a; 32];
        self.ca
            .auth
            .acme_records()
            .unwrap()
            .put_eab_key(
                &EabKey {
                    kid: kid.into(),
                    hmac_key: key.clone(),
                    endpoint: "servers".into(),
                    created_by: "test".into(),
                    created_at: 0,
                    account: None,
                    used_at: None,
                },
                &AuditEvent {
                    time: 0,
                    action: "acme-eab-create".into(),
                    actor: "test".into(),
                    subject: kid.into(),
                    detail: String::new(),
                },
            )
            .unwrap();
        key
    }

    fn send(&self, method: Method, path: &str, content_type: &str, body: Vec<u8>) -> AcmeResponse {
        self.service.handle(&AcmeRequest {
            method,
            endpoint: "servers".into(),
            path: path.into(),
            content_type: Some(content_type.into()),
            body,
            peer: "127.0.0.1:1".into(),
        })
    }

    fn fresh_nonce(&self, c: &mut Client) -> String {
        if let Some(n) = c.nonce.take() {
            return n;
        }
        let r = self.send(Method::Head, "new-nonce", "", Vec::new());
        assert_eq!(r.status, 200);
        assert_eq!(r.header_value("Cache-Control"), Some("no-store"));
        r.header_value("Replay-Nonce").unwrap().to_string()
    }

    /// POSTs `payload` ("" for POST-as-GET) to `path`, signed by `c` (its `kid` once it
    /// has an account, else its `jwk`), with `header` fields overriding.
    fn post_with(
        &self,
        c: &mut Client,
        path: &str,
        payload: &str,
        header: Value,
    ) -> (u16, AcmeResponse, Value) {
        let nonce = self.fresh_nonce(c);
        let mut h = json!({"alg": "ES256", "nonce": nonce, "url": url(path)});
        match &c.kid {
            Some(kid) => h["kid"] = json!(kid),
            None => h["jwk"] = c.jwk.clone(),
        }
        for (k, v) in header.as_object().unwrap() {
            if v.is_null() {
                h.as_object_mut().unwrap().remove(k);
            } else {
                h[k] = v.clone();
            }
        }
        let body = c.sign(h, payload).to_string().into_bytes();
        let r = self.send(Method::Post, path, "application/jose+json", body);
        c.nonce = r.header_value("Replay-Nonce").map(str::to_owned);
        assert!(c.nonce.is_some(), "every answer carries a nonce");
        let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        (r.status, r, v)
    }

    fn post(&self, c: &mut Client, path: &str, payload: &str) -> (u16, AcmeResponse, Value) {
        self.post_with(c, path, payload, json!({}))
    }

    fn eab(&self, c: &Client, kid: &str, key: &[u8]) -> Value {
        let protected = b64_encode(
            json!({"alg": "HS256", "kid": kid, "url": url("new-account")})
                .to_string()
                .as_bytes(),
        );
        let payload = b64_encode(c.jwk.to_string().as_bytes());
        let mac = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key),
            format!("{protected}.{payload}").as_bytes(),
        );
        json!({"protected": protected, "payload": payload, "signature": b64_encode(mac.as_ref())})
    }

    fn account(&self, c: &mut Client) {
        let key = self.eab_key(&format!("kid-{}", c.thumbprint()));
        let eab = self.eab(c, &format!("kid-{}", c.thumbprint()), &key);
        let payload = json!({"termsOfServiceAgreed": true, "contact": ["mailto:ops@acme.test"], "externalAccountBinding": eab});
        let (status, r, v) = self.post(c, "new-account", &payload.to_string());
        assert_eq!(status, 201, "{v}");
        assert_eq!(v["status"], "valid");
        c.kid = Some(r.header_value("Location").unwrap().to_string());
    }

    /// newOrder for `names`: (order URL, order JSON).
    fn order(&self, c: &mut Client, names: &[&str]) -> (String, Value) {
        let ids: Vec<Value> = names
            .iter()
            .map(|n| json!({"type": "dns", "value": n}))
            .collect();
        let (status, r, v) = self.post(c, "new-order", &json!({"identifiers": ids}).to_string());
        assert_eq!(status, 201, "{v}");
        (r.header_value("Location").unwrap().to_string(), v)
    }

    /// Publishes the key authorizations of every authorization of `order`, starts its
    /// challenges and waits until they are valid.
    fn authorize(&self, c: &mut Client, order: &Value) {
        for a in order["authorizations"].as_array().unwrap() {
            let path = rel(a.as_str().unwrap());
            let (_, _, authz) = self.post(c, &path, "");
            let types: Vec<&str> = authz["challenges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["type"].as_str().unwrap())
                .collect();
            assert_eq!(types, ["http-01", "dns-01", "tls-alpn-01"]);
            let ch = &authz["challenges"][0];
            let token = ch["token"].as_str().unwrap().to_string();
            self.published
                .answers
                .lock()
                .unwrap()
                .push((token.clone(), format!("{token}.{}", c.thumbprint())));
            let (status, r, _) = self.post(c, &rel(ch["url"].as_str().unwrap()), "{}");
            assert_eq!(status, 200);
            assert!(r.header_value("Link").is_some());
            assert_eq!(self.wait_authz(c, &path), "valid");
        }
    }

    fn wait_authz(&self, c: &mut Client, path: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, _, a) = self.post(c, path, "");
            let s = a["status"].as_str().unwrap().to_string();
            if s != "pending" || Instant::now() > deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn csr(&self, names: &[&str]) -> String {
        let key = testing::soft_key("leaf", hsm::KeyAlgorithm::EcdsaP256);
        let sans: Vec<_> = names.iter().map(|n| testing::dns(n)).collect();
        b64_encode(&testing::csr(key.as_ref(), "", &sans))
    }

    fn issued(&self) -> u64 {
        self.ca.store.stats().unwrap().certificates
    }
}

fn rel(u: &str) -> String {
    u.strip_prefix(&format!("{BASE}/acme/servers/"))
        .unwrap()
        .to_string()
}

fn problem(v: &Value) -> &str {
    v["type"].as_str().unwrap_or("")
}

#[test]
fn an_order_is_authorized_finalized_downloaded_and_revoked() {
    let f = Fixture::new();
    let dir = f.send(Method::Get, "directory", "", Vec::new());
    let d: Value = serde_json::from_slice(&dir.body).unwrap();
    assert_eq!(d["newAccount"], url("new-account"));
    assert_eq!(d["meta"]["externalAccountRequired"], true);
    assert!(d["meta"]["profiles"]["acme-server"].is_string());
    assert_eq!(f.send(Method::Get, "new-nonce", "", Vec::new()).status, 204);

    let mut c = Client::new();
    f.account(&mut c);
    // The same key again: the existing account, 200.
    let kid = c.kid.take();
    let (status, r, _) = f.post(&mut c, "new-account", r#"{"onlyReturnExisting":true}"#);
    assert_eq!(status, 200);
    assert_eq!(r.header_value("Location"), kid.as_deref());
    c.kid = kid;

    let names = ["www.acme.test", "api.acme.test"];
    let (order_url, order) = f.order(&mut c, &names);
    assert_eq!(order["status"], "pending");
    // Finalize before the authorizations are valid: orderNotReady.
    let fin = rel(order["finalize"].as_str().unwrap());
    let (status, _, v) = f.post(&mut c, &fin, &json!({"csr": f.csr(&names)}).to_string());
    assert_eq!(
        (status, problem(&v)),
        (403, "urn:ietf:params:acme:error:orderNotReady")
    );
    f.authorize(&mut c, &order);
    let (_, _, o) = f.post(&mut c, &rel(&order_url), "");
    assert_eq!(o["status"], "ready");

    // A CSR for other names, or for fewer, is badCSR; nothing is issued.
    let before = f.issued();
    for bad in [
        &["www.acme.test"][..],
        &["www.acme.test", "x.acme.test"][..],
    ] {
        let (status, _, v) = f.post(&mut c, &fin, &json!({"csr": f.csr(bad)}).to_string());
        assert_eq!(
            (status, problem(&v)),
            (400, "urn:ietf:params:acme:error:badCSR"),
            "{v}"
        );
    }
    assert_eq!(f.issued(), before);

    let (status, _, o) = f.post(
        &mut c,
        &fin,
        &json!({"csr": f.csr(&["API.acme.test", "www.acme.test"])}).to_string(),
    );
    assert_eq!(status, 200, "{o}");
    assert_eq!(o["status"], "valid");
    assert_eq!(f.issued(), before + 1);
    // Finalize again: the valid order, unchanged, and still one certificate.
    let (status, _, again) = f.post(&mut c, &fin, &json!({"csr": f.csr(&names)}).to_string());
    assert_eq!((status, &again["certificate"]), (200, &o["certificate"]));
    assert_eq!(f.issued(), before + 1);

    let (status, r, _) = f.post(&mut c, &rel(o["certificate"].as_str().unwrap()), "");
    assert_eq!(status, 200);
    assert_eq!(
        r.header_value("Content-Type"),
        Some("application/pem-certificate-chain")
    );
    let pem = String::from_utf8(r.body.clone()).unwrap();
    assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 2, "leaf and root");
    let end = "-----END CERTIFICATE-----";
    let first = &pem[..pem.find(end).unwrap() + end.len()];
    let leaf = der::pem::decode_vec(first.as_bytes()).unwrap().1;

    // The list of orders names it.
    let acct_path = rel(c.kid.as_deref().unwrap());
    let (_, _, list) = f.post(&mut c, &format!("{acct_path}/orders"), "");
    assert_eq!(list["orders"][0], order_url);

    // Another account may not revoke it; the ordering account may, once.
    let mut other = Client::new();
    f.account(&mut other);
    let revoke = json!({"certificate": b64_encode(&leaf), "reason": 4}).to_string();
    let (status, _, v) = f.post(&mut other, "revoke-cert", &revoke);
    assert_eq!(
        (status, problem(&v)),
        (403, "urn:ietf:params:acme:error:unauthorized")
    );
    let (status, _, v) = f.post(
        &mut c,
        "revoke-cert",
        &json!({"certificate": b64_encode(&leaf), "reason": 7}).to_string(),
    );
    assert_eq!(
        problem(&v),
        "urn:ietf:params:acme:error:badRevocationReason",
        "{status}"
    );
    let (status, _, _) = f.post(&mut c, "revoke-cert", &revoke);
    assert_eq!(status, 200);
    let (_, _, v) = f.post(&mut c, "revoke-cert", &revoke);
    assert_eq!(problem(&v), "urn:ietf:params:acme:error:alreadyRevoked");

    // Deactivation: the account is refused afterwards.
    let (status, _, v) = f.post(&mut c, &acct_path, r#"{"status":"deactivated"}"#);
    assert_eq!((status, v["status"].as_str()), (200, Some("deactivated")));
    let (status, _, v) = f.post(
        &mut c,
        "new-order",
        r#"{"identifiers":[{"type":"dns","value":"www.acme.test"}]}"#,
    );
    assert_eq!(
        (status, problem(&v)),
        (403, "urn:ietf:params:acme:error:unauthorized")
    );
}

#[test]
fn bad_requests_get_their_problem_types_and_issue_nothing() {
    let f = Fixture::new();
    let mut c = Client::new();
    let issued_before = f.issued();

    // No EAB where it is required.
    let (status, _, v) = f.post(&mut c, "new-account", r#"{"termsOfServiceAgreed":true}"#);
    assert_eq!(
        (status, problem(&v)),
        (400, "urn:ietf:params:acme:error:externalAccountRequired")
    );
    // EAB with a wrong MAC key, and with an unknown kid.
    f.eab_key("k1");
    let wrong = f.eab(&c, "k1", &[1; 32]);
    let (status, _, v) = f.post(
        &mut c,
        "new-account",
        &json!({"externalAccountBinding": wrong}).to_string(),
    );
    assert_eq!(
        (status, problem(&v)),
        (403, "urn:ietf:params:acme:error:unauthorized"),
        "{v}"
    );
    let unknown = f.eab(&c, "nope", &[0x5a; 32]);
    let (status, _, _) = f.post(
        &mut c,
        "new-account",
        &json!({"externalAccountBinding": unknown}).to_string(),
    );
    assert_eq!(status, 403);
    // onlyReturnExisting without an account.
    let (_, _, v) = f.post(&mut c, "new-account", r#"{"onlyReturnExisting":true}"#);
    assert_eq!(
        problem(&v),
        "urn:ietf:params:acme:error:accountDoesNotExist"
    );
    // A contact that is not mailto:, or not one address.
    for contact in ["tel:+1555", "mailto:a@b.example,c@d.example"] {
        let eab = f.eab(&c, "k1", &[0x5a; 32]);
        let (_, _, v) = f.post(
            &mut c,
            "new-account",
            &json!({"contact": [contact], "externalAccountBinding": eab}).to_string(),
        );
        assert!(problem(&v).ends_with("Contact"), "{contact}: {v}");
    }
    assert!(
        f.ca.auth
            .acme_records()
            .unwrap()
            .eab_key("k1")
            .unwrap()
            .unwrap()
            .account
            .is_none()
    );

    f.account(&mut c);
    // A reused nonce, a made-up nonce, no nonce: badNonce.
    let used = f.fresh_nonce(&mut c);
    let (s1, _, _) = f.post_with(&mut c, "new-order", "", json!({"nonce": used}));
    let (s2, _, v) = f.post_with(&mut c, "new-order", "", json!({"nonce": used}));
    assert!(s1 == 400 || s1 == 200);
    assert_eq!(
        (s2, problem(&v)),
        (400, "urn:ietf:params:acme:error:badNonce")
    );
    let (_, _, v) = f.post_with(&mut c, "new-order", "", json!({"nonce": "AAAA"}));
    assert_eq!(problem(&v), "urn:ietf:params:acme:error:badNonce");
    let (_, _, v) = f.post_with(&mut c, "new-order", "", json!({"nonce": null}));
    assert_eq!(problem(&v), "urn:ietf:params:acme:error:badNonce");
    // A url that is not the request's.
    let (status, _, v) = f.post_with(
        &mut c,
        "new-order",
        "{}",
        json!({"url": url("new-account")}),
    );
    assert_eq!(
        (status, problem(&v)),
        (403, "urn:ietf:params:acme:error:unauthorized")
    );
    let (status, _, _) = f.post_with(
        &mut c,
        "new-order",
        "{}",
        json!({"url": "https://evil.test/acme/servers/new-order"}),
    );
    assert_eq!(status, 403);
    // An unknown kid, and a kid of another server.
    for kid in [
        url("acct/AAAAAAAAAAAAAAAAAAAAAA"),
        "https://evil.test/acct/1".to_string(),
    ] {
        let (status, _, v) = f.post_with(&mut c, "new-order", "{}", json!({"kid": kid}));
        assert_eq!(
            (status, problem(&v)),
            (400, "urn:ietf:params:acme:error:accountDoesNotExist")
        );
    }
    // A wrong media type.
    let r = f.send(
        Method::Post,
        "new-order",
        "application/json",
        b"{}".to_vec(),
    );
    assert_eq!(r.status, 415);
    assert!(r.header_value("Replay-Nonce").is_some());
    // Garbage.
    let r = f.send(
        Method::Post,
        "new-order",
        "application/jose+json",
        b"\xff{".to_vec(),
    );
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        (r.status, problem(&v)),
        (400, "urn:ietf:params:acme:error:malformed")
    );

    // Names outside the profile: rejectedIdentifier with one subproblem each, before any
    // authorization exists.
    let ids = json!({"identifiers": [
        {"type": "dns", "value": "www.acme.test"},
        {"type": "dns", "value": "www.other.example"},
        {"type": "ip", "value": "10.1.2.3"},
        {"type": "dns", "value": "*.acme.test"},
    ]});
    let (status, _, v) = f.post(&mut c, "new-order", &ids.to_string());
    assert_eq!(
        (status, problem(&v)),
        (400, "urn:ietf:params:acme:error:rejectedIdentifier"),
        "{v}"
    );
    let subs: Vec<&str> = v["subproblems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["identifier"]["value"].as_str().unwrap())
        .collect();
    let mut subs = subs;
    subs.sort();
    assert_eq!(subs, ["*.acme.test", "10.1.2.3", "www.other.example"]);
    let (_, _, v) = f.post(
        &mut c,
        "new-order",
        r#"{"identifiers":[{"type":"email","value":"a@b.example"}]}"#,
    );
    assert_eq!(
        problem(&v),
        "urn:ietf:params:acme:error:unsupportedIdentifier"
    );
    let (_, _, v) = f.post(
        &mut c,
        "new-order",
        r#"{"identifiers":[{"type":"dns","value":"www.acme.test"}],"profile":"nope"}"#,
    );
    assert_eq!(problem(&v), "urn:ietf:params:acme:error:invalidProfile");

    // An IP identifier (RFC 8738) inside the profile is ordered; a failed validation
    // makes the authorization and the order invalid.
    let (status, _, order) = f.post(
        &mut c,
        "new-order",
        r#"{"identifiers":[{"type":"ip","value":"127.0.0.1"}]}"#,
    );
    assert_eq!(status, 201, "{order}");
    let authz = rel(order["authorizations"][0].as_str().unwrap());
    let (_, _, a) = f.post(&mut c, &authz, "");
    let token = a["challenges"][0]["token"].as_str().unwrap().to_string();
    f.published
        .answers
        .lock()
        .unwrap()
        .push((token, "wrong".into()));
    let (_, _, _) = f.post(
        &mut c,
        &rel(a["challenges"][0]["url"].as_str().unwrap()),
        "{}",
    );
    assert_eq!(f.wait_authz(&mut c, &authz), "invalid");
    let (_, _, a) = f.post(&mut c, &authz, "");
    assert_eq!(
        problem(&a["challenges"][0]["error"]),
        "urn:ietf:params:acme:error:incorrectResponse"
    );
    let (_, _, o) = f.post(
        &mut c,
        rel(order["finalize"].as_str().unwrap()).trim_end_matches("/finalize"),
        "",
    );
    assert_eq!(o["status"], "invalid");

    // The CSR key must not be the account key: an order whose CSR is signed by it.
    let (_, order) = f.order(&mut c, &["k.acme.test"]);
    f.authorize(&mut c, &order);
    let acct_key = account_key_csr(&c, "k.acme.test");
    let (status, _, v) = f.post(
        &mut c,
        &rel(order["finalize"].as_str().unwrap()),
        &json!({"csr": acct_key}).to_string(),
    );
    assert_eq!(
        (status, problem(&v)),
        (400, "urn:ietf:params:acme:error:badCSR"),
        "{v}"
    );
    assert_eq!(f.issued(), issued_before, "nothing was issued");
}

/// A CSR for `name` signed with the client's account key.
fn account_key_csr(c: &Client, name: &str) -> String {
    let key: Arc<dyn hsm::PrivateKey> =
        Arc::new(hsm::soft::SoftKey::from_pkcs8("acct", &c.pkcs8).unwrap());
    b64_encode(&testing::csr(key.as_ref(), "", &[testing::dns(name)]))
}

#[test]
fn the_certificate_key_may_revoke_its_certificate() {
    let f = Fixture::new();
    let mut c = Client::new();
    f.account(&mut c);
    let (_, order) = f.order(&mut c, &["k.acme.test"]);
    f.authorize(&mut c, &order);
    // The certificate's key is a second client key (no account), used in the CSR.
    let mut holder = Client::new();
    let key: Arc<dyn hsm::PrivateKey> =
        Arc::new(hsm::soft::SoftKey::from_pkcs8("leaf", &holder.pkcs8).unwrap());
    let csr = b64_encode(&testing::csr(
        key.as_ref(),
        "",
        &[testing::dns("k.acme.test")],
    ));
    let (status, _, o) = f.post(
        &mut c,
        &rel(order["finalize"].as_str().unwrap()),
        &json!({ "csr": csr }).to_string(),
    );
    assert_eq!((status, o["status"].as_str()), (200, Some("valid")), "{o}");
    let (_, r, _) = f.post(&mut c, &rel(o["certificate"].as_str().unwrap()), "");
    let pem = String::from_utf8(r.body).unwrap();
    let end = "-----END CERTIFICATE-----";
    let first = &pem[..pem.find(end).unwrap() + end.len()];
    let leaf = der::pem::decode_vec(first.as_bytes()).unwrap().1;
    let revoke = json!({"certificate": b64_encode(&leaf), "reason": 1}).to_string();
    // Signed by a key that is neither the account's nor the certificate's: refused.
    let mut stranger = Client::new();
    let (status, _, v) = f.post(&mut stranger, "revoke-cert", &revoke);
    assert_eq!(
        (status, problem(&v)),
        (403, "urn:ietf:params:acme:error:unauthorized"),
        "{v}"
    );
    // Signed by the certificate's own key (jwk): revoked (RFC 8555 §7.6).
    let (status, _, v) = f.post(&mut holder, "revoke-cert", &revoke);
    assert_eq!(status, 200, "{v}");
    let record = f.ca.auth.issued_certificate(&leaf).unwrap().unwrap();
    assert_eq!(record.revocation.map(|r| r.reason), Some(1));
}

/// A JWK's SubjectPublicKeyInfo is byte-equal to the one the key's owner encodes (RSA,
/// EC P-256/P-384), so revocation by the certificate key and the account-key check of
/// finalize compare like with like.
#[test]
fn jwk_spki_matches_the_keys_own_encoding() {
    use der::Decode;
    use x509_cert::spki::SubjectPublicKeyInfoOwned;
    for alg in [
        hsm::KeyAlgorithm::Rsa2048,
        hsm::KeyAlgorithm::EcdsaP256,
        hsm::KeyAlgorithm::EcdsaP384,
    ] {
        let key = testing::soft_key("k", alg);
        let spki = key.public_key_der().to_vec();
        let info = SubjectPublicKeyInfoOwned::from_der(&spki).unwrap();
        let bits = info.subject_public_key.raw_bytes().to_vec();
        let jwk = match alg {
            hsm::KeyAlgorithm::Rsa2048 => {
                #[derive(der::Sequence)]
                struct Rsa<'a> {
                    n: der::asn1::UintRef<'a>,
                    e: der::asn1::UintRef<'a>,
                }
                let rsa = Rsa::from_der(&bits).unwrap();
                json!({"kty": "RSA", "n": b64_encode(rsa.n.as_bytes()), "e": b64_encode(rsa.e.as_bytes())})
            }
            _ => {
                let half = (bits.len() - 1) / 2;
                let crv = if half == 32 { "P-256" } else { "P-384" };
                json!({"kty": "EC", "crv": crv, "x": b64_encode(&bits[1..1 + half]), "y": b64_encode(&bits[1 + half..])})
            }
        };
        let jwk = acme::jws::Jwk::from_value(&jwk).unwrap();
        assert_eq!(jwk.spki_der().unwrap(), spki, "{alg:?}");
    }
}

/// A wildcard order (RFC 8555 §7.1.3): its authorization names the base domain with
/// `"wildcard": true` and offers dns-01 alone; the TXT value is base64url(SHA-256(key
/// authorization)) at `_acme-challenge.<base>` (§8.4), looked up at the endpoint's
/// `dns_resolver`. The plain name's authorization offers all three types and is
/// validated here with tls-alpn-01 (RFC 8737), whose digest must be the same hash.
#[test]
fn a_wildcard_order_is_validated_with_dns_01_and_its_base_name_with_tls_alpn_01() {
    let f = Fixture::new();
    let mut c = Client::new();
    f.account(&mut c);
    let ids = json!({"identifiers": [
        {"type": "dns", "value": "*.x.acme.test"},
        {"type": "dns", "value": "x.acme.test"},
    ], "profile": "acme-wild"});
    let (status, r, order) = f.post(&mut c, "new-order", &ids.to_string());
    assert_eq!(status, 201, "{order}");
    let order_url = r.header_value("Location").unwrap().to_string();
    let mut seen_wildcard = false;
    for a in order["authorizations"].as_array().unwrap() {
        let path = rel(a.as_str().unwrap());
        let (_, _, authz) = f.post(&mut c, &path, "");
        assert_eq!(authz["identifier"]["value"], "x.acme.test", "{authz}");
        let challenges = authz["challenges"].as_array().unwrap();
        let pick = |t: &str| challenges.iter().find(|c| c["type"] == t).cloned();
        let key_auth = |ch: &Value| format!("{}.{}", ch["token"].as_str().unwrap(), c.thumbprint());
        let ch = if authz["wildcard"] == true {
            seen_wildcard = true;
            assert_eq!(
                challenges.len(),
                1,
                "a wildcard offers dns-01 only: {authz}"
            );
            let ch = pick("dns-01").unwrap();
            // A wrong TXT value first would fail the challenge for good (no retry, §8.2),
            // so the right one is published; the lookup's parameters are checked below.
            f.published.txt.lock().unwrap().push((
                "_acme-challenge.x.acme.test".into(),
                sha256_b64(&key_auth(&ch)),
            ));
            ch
        } else {
            assert!(authz.get("wildcard").is_none(), "{authz}");
            let ch = pick("tls-alpn-01").unwrap();
            let digest =
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_auth(&ch).as_bytes());
            f.published
                .alpn
                .lock()
                .unwrap()
                .push(("x.acme.test".into(), digest.as_ref().try_into().unwrap()));
            ch
        };
        let (status, _, _) = f.post(&mut c, &rel(ch["url"].as_str().unwrap()), "{}");
        assert_eq!(status, 200);
        assert_eq!(f.wait_authz(&mut c, &path), "valid");
        let (_, _, authz) = f.post(&mut c, &path, "");
        let done: Vec<&Value> = authz["challenges"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["status"] == "valid")
            .collect();
        assert_eq!(done.len(), 1, "{authz}");
        assert_eq!(done[0]["type"], ch["type"]);
    }
    assert!(seen_wildcard);
    let checks = f.published.dns_checks.lock().unwrap().clone();
    assert_eq!(checks.len(), 1);
    assert_eq!(checks[0].resolver, Some("127.0.0.1:5353".parse().unwrap()));
    let (_, _, o) = f.post(&mut c, &rel(&order_url), "");
    assert_eq!(o["status"], "ready", "{o}");
    let fin = rel(o["finalize"].as_str().unwrap());
    let names = ["*.x.acme.test", "x.acme.test"];
    let (status, _, o) = f.post(&mut c, &fin, &json!({"csr": f.csr(&names)}).to_string());
    assert_eq!(status, 200, "{o}");
    assert_eq!(o["status"], "valid");
}

/// A TXT record that is not the key authorization's hash fails dns-01, and with it the
/// authorization and the order (§8.2: no retry); wildcards in the wrong place, and in a
/// profile without wildcards, are refused at newOrder.
#[test]
fn a_wrong_txt_record_fails_and_misplaced_wildcards_are_refused() {
    let f = Fixture::new();
    let mut c = Client::new();
    f.account(&mut c);
    let ids =
        json!({"identifiers": [{"type": "dns", "value": "*.y.acme.test"}], "profile": "acme-wild"});
    let (status, _, order) = f.post(&mut c, "new-order", &ids.to_string());
    assert_eq!(status, 201, "{order}");
    let path = rel(order["authorizations"][0].as_str().unwrap());
    let (_, _, authz) = f.post(&mut c, &path, "");
    let ch = &authz["challenges"][0];
    assert_eq!(ch["type"], "dns-01");
    f.published.txt.lock().unwrap().push((
        "_acme-challenge.y.acme.test".into(),
        sha256_b64("some.other-key-authorization"),
    ));
    f.post(&mut c, &rel(ch["url"].as_str().unwrap()), "{}");
    assert_eq!(f.wait_authz(&mut c, &path), "invalid");
    let (_, _, authz) = f.post(&mut c, &path, "");
    assert_eq!(
        authz["challenges"][0]["error"]["type"], "urn:ietf:params:acme:error:incorrectResponse",
        "{authz}"
    );
    for bad in ["a.*.acme.test", "*", "*.", "**.acme.test"] {
        let ids = json!({"identifiers": [{"type": "dns", "value": bad}], "profile": "acme-wild"});
        let (status, _, v) = f.post(&mut c, "new-order", &ids.to_string());
        assert_eq!(
            (status, problem(&v)),
            (400, "urn:ietf:params:acme:error:rejectedIdentifier"),
            "{bad}: {v}"
        );
    }
    // The default profile has no wildcards.
    let ids = json!({"identifiers": [{"type": "dns", "value": "*.y.acme.test"}]});
    let (status, _, v) = f.post(&mut c, "new-order", &ids.to_string());
    assert_eq!(
        (status, problem(&v)),
        (400, "urn:ietf:params:acme:error:rejectedIdentifier"),
        "{v}"
    );
}

/// keyChange (RFC 8555 §7.3.5): the inner JWS, signed by the new key, names the account
/// and its old key; afterwards only the new key signs for the account. Refused: an
/// `oldKey` that is not the account's, an inner `url` other than the outer, an inner
/// signature by another key, and a new key that is already an account's (409 with that
/// account's URL). Then the account deactivates itself (§7.3.6) and can do nothing more.
#[test]
fn the_account_key_changes_once_and_the_old_key_is_refused_after() {
    let f = Fixture::new();
    let d: Value =
        serde_json::from_slice(&f.send(Method::Get, "directory", "", Vec::new()).body).unwrap();
    assert_eq!(d["keyChange"], url("key-change"));
    let mut c = Client::new();
    f.account(&mut c);
    let kid = c.kid.clone().unwrap();
    let mut new = Client::new();
    let inner = |signer: &Client, jwk: &Value, url_: &str, old: &Value| {
        signer
            .sign(
                json!({"alg": "ES256", "jwk": jwk, "url": url_}),
                &json!({"account": kid, "oldKey": old}).to_string(),
            )
            .to_string()
    };
    let malformed = "urn:ietf:params:acme:error:malformed";
    // Wrong oldKey.
    let other = Client::new();
    let body = inner(&new, &new.jwk, &url("key-change"), &other.jwk);
    let (status, _, v) = f.post(&mut c, "key-change", &body);
    assert_eq!((status, problem(&v)), (400, malformed), "{v}");
    // The inner url is another.
    let body = inner(&new, &new.jwk, &url("new-order"), &c.jwk);
    let (status, _, v) = f.post(&mut c, "key-change", &body);
    assert_eq!((status, problem(&v)), (400, malformed), "{v}");
    // The inner JWS names the new key but another key signed it.
    let body = inner(&other, &new.jwk, &url("key-change"), &c.jwk);
    let (status, _, v) = f.post(&mut c, "key-change", &body);
    assert_ne!(status, 200, "{v}");
    // The new key is another account's already: 409 and where it is.
    let mut taken = Client::new();
    f.account(&mut taken);
    let body = inner(&taken, &taken.jwk, &url("key-change"), &c.jwk);
    let (status, r, v) = f.post(&mut c, "key-change", &body);
    assert_eq!(status, 409, "{v}");
    assert_eq!(r.header_value("Location"), taken.kid.as_deref());
    // The right one.
    let body = inner(&new, &new.jwk, &url("key-change"), &c.jwk);
    let (status, r, v) = f.post(&mut c, "key-change", &body);
    assert_eq!(status, 200, "{v}");
    assert_eq!(r.header_value("Location"), Some(kid.as_str()));
    // The old key no longer signs for the account; the new one does, and finds it.
    let acct = rel(&kid);
    let (status, _, v) = f.post(&mut c, &acct, "");
    assert_ne!(status, 200, "the old key still works: {v}");
    new.kid = Some(kid.clone());
    let (status, _, v) = f.post(&mut new, &acct, "");
    assert_eq!(status, 200, "{v}");
    new.kid = None;
    let (status, r, _) = f.post(&mut new, "new-account", r#"{"onlyReturnExisting":true}"#);
    assert_eq!(status, 200);
    assert_eq!(r.header_value("Location"), Some(kid.as_str()));
    // Deactivation (§7.3.6): afterwards the account is refused.
    new.kid = Some(kid.clone());
    let (status, _, v) = f.post(&mut new, &acct, r#"{"status":"deactivated"}"#);
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("deactivated")),
        "{v}"
    );
    let (status, _, v) = f.post(
        &mut new,
        "new-order",
        &json!({"identifiers": [{"type": "dns", "value": "www.acme.test"}]}).to_string(),
    );
    assert_eq!(
        (status, problem(&v)),
        (403, "urn:ietf:params:acme:error:unauthorized"),
        "{v}"
    );
}

/// The orders list pages (RFC 8555 §7.1.2.1): ORDERS_PER_PAGE URLs a page,
/// `Link: rel="next"` on every page but the last; following the links lists each valid
/// order exactly once; invalid orders are left out; another account's list is refused.
#[test]
fn the_orders_list_is_paginated_with_link_next() {
    let f = Fixture::new();
    let mut c = Client::new();
    f.account(&mut c);
    let per_page = acme::service::ORDERS_PER_PAGE;
    let mut made = Vec::new();
    for i in 0..per_page + 3 {
        let (u, _) = f.order(&mut c, &[&format!("n{i}.acme.test")]);
        made.push(u);
    }
    // One order made invalid: its challenge fails (nothing published).
    let (bad_url, bad) = f.order(&mut c, &["bad.acme.test"]);
    let authz = rel(bad["authorizations"][0].as_str().unwrap());
    let (_, _, a) = f.post(&mut c, &authz, "");
    f.post(
        &mut c,
        &rel(a["challenges"][0]["url"].as_str().unwrap()),
        "{}",
    );
    assert_eq!(f.wait_authz(&mut c, &authz), "invalid");
    f.post(&mut c, &rel(&bad_url), "");

    let acct = rel(c.kid.as_deref().unwrap());
    let mut page = format!("{acct}/orders");
    let mut listed = Vec::new();
    let mut pages = 0;
    loop {
        let (status, r, v) = f.post(&mut c, &page, "");
        assert_eq!(status, 200, "{v}");
        let urls: Vec<String> = v["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap().to_string())
            .collect();
        assert!(urls.len() <= per_page);
        listed.extend(urls);
        pages += 1;
        let next = r.header_values("Link").find_map(|l| {
            l.strip_prefix('<')
                .and_then(|l| l.strip_suffix(">;rel=\"next\""))
        });
        match next {
            Some(next) => page = rel(next),
            None => break,
        }
    }
    assert_eq!(pages, 2);
    // Each valid order exactly once (the test clock stands still, so the store's order,
    // creation time then id, is the ids' order here), the invalid one left out.
    made.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), listed.len(), "an order listed twice");
    assert_eq!(sorted, made);
    // Past the last page, and a page of another account's list: refused.
    let (status, _, _) = f.post(&mut c, &format!("{acct}/orders/2"), "");
    assert_eq!(status, 404);
    let (status, _, _) = f.post(&mut c, &format!("{acct}/orders/01"), "");
    assert_eq!(status, 404);
    let mut other = Client::new();
    f.account(&mut other);
    let (status, _, v) = f.post(&mut other, &format!("{acct}/orders/1"), "");
    assert_eq!(
        (status, problem(&v)),
        (403, "urn:ietf:params:acme:error:unauthorized"),
        "{v}"
    );
}

/// The ARI certID of a certificate, computed here from its fields (RFC 9773 §4.1).
fn ari_id(der: &[u8]) -> String {
    use der::Decode;
    use x509_cert::ext::pkix::AuthorityKeyIdentifier;
    let cert = x509_cert::Certificate::from_der(der).unwrap();
    let tbs = cert.tbs_certificate();
    let ext = tbs
        .extensions()
        .unwrap()
        .iter()
        .find(|e| e.extn_id.to_string() == "2.5.29.35")
        .unwrap();
    let aki = AuthorityKeyIdentifier::from_der(ext.extn_value.as_bytes()).unwrap();
    format!(
        "{}.{}",
        b64_encode(aki.key_identifier.unwrap().as_bytes()),
        b64_encode(tbs.serial_number().as_bytes())
    )
}

/// Issues a certificate for `names` to `c`: its DER.
fn issue(f: &Fixture, c: &mut Client, names: &[&str]) -> Vec<u8> {
    let (order_url, order) = f.order(c, names);
    f.authorize(c, &order);
    let fin = rel(order["finalize"].as_str().unwrap());
    let (status, _, o) = f.post(c, &fin, &json!({"csr": f.csr(names)}).to_string());
    assert_eq!(status, 200, "{o}");
    let (_, _, o) = f.post(c, &rel(&order_url), "");
    let (status, r, _) = f.post(c, &rel(o["certificate"].as_str().unwrap()), "");
    assert_eq!(status, 200);
    let pem = String::from_utf8(r.body).unwrap();
    let b64: String = pem
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

fn get(f: &Fixture, path: &str) -> (u16, AcmeResponse, Value) {
    let r = f.send(Method::Get, path, "", Vec::new());
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, r, v)
}

/// ARI (RFC 9773): the directory names renewalInfo; GET renewal-info/<certID> answers
/// a suggested window inside the validity (in the past once the certificate is
/// revoked) with Retry-After; unknown and malformed certIDs are refused. newOrder's
/// `replaces` must name a certificate of the same account sharing an identifier, once.
#[test]
fn renewal_info_and_replaces() {
    let f = Fixture::new();
    let (_, _, d) = get(&f, "directory");
    assert_eq!(d["renewalInfo"], url("renewal-info"));
    let mut c = Client::new();
    f.account(&mut c);
    let der = issue(&f, &mut c, &["www.acme.test"]);
    let id = ari_id(&der);
    let (status, r, v) = get(&f, &format!("renewal-info/{id}"));
    assert_eq!(status, 200, "{v}");
    assert!(r.header_value("Retry-After").is_some());
    let parse = |s: &Value| {
        time::OffsetDateTime::parse(
            s.as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
        .unix_timestamp()
    };
    let start = parse(&v["suggestedWindow"]["start"]);
    let end = parse(&v["suggestedWindow"]["end"]);
    let record = f.ca.auth.list(&Default::default()).unwrap();
    let rec = record.iter().find(|r| r.der == der).unwrap();
    assert!(
        rec.not_before < start && start < end && end < rec.not_after,
        "{v}"
    );
    // Unknown serial, unknown AKI, malformed.
    let (aki, serial) = id.split_once('.').unwrap();
    for bad in [
        format!("{aki}.AQID"),
        format!("{}.{serial}", b64_encode(b"other key id")),
    ] {
        let (status, _, v) = get(&f, &format!("renewal-info/{bad}"));
        assert_eq!(status, 404, "{bad}: {v}");
    }
    for bad in ["nodot", ".", "a.", "!!.AQ", &"A".repeat(300)] {
        let (status, _, v) = get(&f, &format!("renewal-info/{bad}"));
        assert_eq!(status, 400, "{bad}: {v}");
    }

    // replaces: another account may not name this certificate.
    let mut other = Client::new();
    f.account(&mut other);
    let order = |c: &mut Client, names: &[&str], replaces: &str| {
        let ids: Vec<Value> = names
            .iter()
            .map(|n| json!({"type": "dns", "value": n}))
            .collect();
        f.post(
            c,
            "new-order",
            &json!({"identifiers": ids, "replaces": replaces}).to_string(),
        )
    };
    let (status, _, v) = order(&mut other, &["www.acme.test"], &id);
    assert_eq!(
        (status, problem(&v)),
        (400, "urn:ietf:params:acme:error:malformed"),
        "{v}"
    );
    // Sharing no identifier.
    let (status, _, v) = order(&mut c, &["api.acme.test"], &id);
    assert_eq!(status, 400, "{v}");
    // The first replacement is accepted and shown; a second is alreadyReplaced.
    let (status, _, v) = order(&mut c, &["www.acme.test", "api.acme.test"], &id);
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["replaces"], id);
    let (status, _, v) = order(&mut c, &["www.acme.test"], &id);
    assert_eq!(
        (status, problem(&v)),
        (409, "urn:ietf:params:acme:error:alreadyReplaced"),
        "{v}"
    );

    // Revoked: the window is in the past, so a client renews at once.
    let (status, _, v) = f.post(
        &mut c,
        "revoke-cert",
        &json!({"certificate": b64_encode(&der), "reason": 4}).to_string(),
    );
    assert_eq!(status, 200, "{v}");
    let (_, _, v) = get(&f, &format!("renewal-info/{id}"));
    let now = f.ca.auth.now();
    assert!(parse(&v["suggestedWindow"]["end"]) < now, "{v}");
}

/// What each identifier is offered (RFC 8555 §7.1.3, RFC 8738 §7) and the tls-alpn-01
/// SNI of an address (RFC 8738 §6: its reverse name).
#[test]
fn challenge_types_per_identifier_and_reverse_names() {
    use acme::service::{challenge_types, reverse_name};
    use ca_core::acme_records::AcmeIdentifier;
    let id = |kind: &str, value: &str| AcmeIdentifier {
        kind: kind.into(),
        value: value.into(),
    };
    assert_eq!(
        challenge_types(&id("dns", "www.acme.test")),
        ["http-01", "dns-01", "tls-alpn-01"]
    );
    assert_eq!(challenge_types(&id("dns", "*.acme.test")), ["dns-01"]);
    assert_eq!(
        challenge_types(&id("ip", "127.0.0.1")),
        ["http-01", "tls-alpn-01"]
    );
    assert_eq!(
        reverse_name("192.0.2.7".parse().unwrap()),
        "7.2.0.192.in-addr.arpa"
    );
    assert_eq!(
        reverse_name("2001:db8::567:89ab".parse().unwrap()),
        "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
    );
}
