//! The authority's public API end to end, in process: hierarchy, issuance pipeline,
//! refusals, revocation, CRLs and OCSP, with an in-memory store and software keys.

use std::collections::BTreeMap;
use std::sync::Arc;

use ca_core::ceremony::{RootSpec, create_root};
use ca_core::config::ProfileConfig;
use ca_core::ocsp::{CertStatus, ResponseStatus};
use ca_core::profile::San;
use ca_core::{
    Authority, CaEntity, ErrorKind, FixedClock, IssueRequest, RevocationReason, Settings,
};
use const_oid::AssociatedOid;
use der::asn1::{OctetString, SetOfVec};
use der::{Decode, Encode};
use hsm::{KeyAlgorithm, KeyStore, PrivateKey, Secret};
use sha1::Digest;
use store::Store;
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{CrlNumber, SubjectAltName};
use x509_cert::name::Name;
use x509_cert::request::{CertReq, CertReqInfo, ExtensionReq};

const NOW: i64 = 1_790_000_000; // 2026-09

struct Fx {
    _dir: tempfile::TempDir,
    keys: hsm::soft::SoftKeyStore,
    store: Arc<dyn Store>,
    clock: Arc<FixedClock>,
    auth: Authority,
}

fn settings(issuer: &str) -> Settings {
    Settings {
        base_url: "http://127.0.0.1:9".into(),
        default_issuer: issuer.into(),
        crl_validity: 7 * 86_400,
        crl_refresh: 3600,
        ocsp_validity: 86_400,
    }
}

fn name(s: &str) -> Name {
    s.parse().expect("name")
}

fn fixture_with(profiles: BTreeMap<String, ProfileConfig>, issuing_alg: KeyAlgorithm) -> Fx {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = hsm::soft::SoftKeyStore::open(
        dir.path().join("keys"),
        Secret::new(b"test passphrase".to_vec()),
    )
    .expect("keys");
    let store: Arc<dyn Store> = Arc::new(store::RedbStore::in_memory().expect("store"));
    let clock = Arc::new(FixedClock::new(NOW));
    let root_key = keys
        .generate("root", KeyAlgorithm::EcdsaP384)
        .expect("root key");
    let spec = RootSpec {
        name: "root".into(),
        subject: name("CN=Test Root,O=Test"),
        validity_days: 3650,
        scheme: None,
    };
    let root_der = create_root(&store, &root_key, &spec, NOW, "test").expect("root");
    let root_auth = Authority::from_parts(
        vec![
            CaEntity::new("root", root_der.clone(), root_key.clone(), None, None)
                .expect("root entity"),
        ],
        &BTreeMap::new(),
        settings("root"),
        store.clone(),
        clock.clone(),
    )
    .expect("root authority");
    let issuing_key = keys.generate("issuing", issuing_alg).expect("issuing key");
    let req = IssueRequest {
        profile: "sub-ca".into(),
        subject: name("CN=Test Issuing,O=Test"),
        sans: vec![],
        spki_der: issuing_key.public_key_der().to_vec(),
        key_algorithm: issuing_alg,
        extensions: vec![],
        requester: "test".into(),
        validity_days: Some(1000),
        issuer: Some("root".into()),
    };
    let issuing_der = root_auth.issue(&req).expect("issuing cert").record.der;
    drop(root_auth);
    let auth = Authority::from_parts(
        vec![
            CaEntity::new("root", root_der, root_key, None, None).expect("root entity"),
            CaEntity::new(
                "issuing",
                issuing_der,
                issuing_key,
                Some("root".into()),
                None,
            )
            .expect("issuing entity"),
        ],
        &profiles,
        settings("issuing"),
        store.clone(),
        clock.clone(),
    )
    .expect("authority");
    Fx {
        _dir: dir,
        keys,
        store,
        clock,
        auth,
    }
}

fn fixture() -> Fx {
    fixture_with(BTreeMap::new(), KeyAlgorithm::EcdsaP256)
}

/// A PKCS#10 CSR signed by `key`.
fn csr(key: &Arc<dyn PrivateKey>, subject: &str, sans: &[GeneralName]) -> Vec<u8> {
    let mut attributes = SetOfVec::new();
    if !sans.is_empty() {
        let ext =
            ca_core::asn1::extension(SubjectAltName::OID, false, &SubjectAltName(sans.to_vec()))
                .expect("ext");
        attributes
            .insert(ExtensionReq(vec![ext]).try_into().expect("attr"))
            .expect("insert");
    }
    let info = CertReqInfo {
        version: x509_cert::request::Version::V1,
        subject: name(subject),
        public_key: spki::SubjectPublicKeyInfoOwned::from_der(key.public_key_der()).expect("spki"),
        attributes,
    };
    let tbs = info.to_der().expect("der");
    let scheme = key.algorithm().default_scheme();
    let sig = key.sign(scheme, &tbs).expect("sign");
    CertReq {
        info,
        algorithm: ca_core::asn1::signature_algorithm(scheme).expect("alg"),
        signature: der::asn1::BitString::from_bytes(&sig).expect("bits"),
    }
    .to_der()
    .expect("csr der")
}

fn dns(s: &str) -> GeneralName {
    GeneralName::DnsName(der::asn1::Ia5String::new(s).expect("ia5"))
}

fn issue_csr(fx: &Fx, profile: &str, der: &[u8]) -> ca_core::Result<ca_core::Issued> {
    let csr = ca_core::csr::parse(der)?;
    fx.auth
        .issue(&IssueRequest::from_csr(&csr, profile, "test"))
}

#[test]
fn issues_from_a_csr_and_records_it() {
    let fx = fixture();
    let key = fx
        .keys
        .generate("leaf", KeyAlgorithm::Rsa2048)
        .expect("key");
    let issued = issue_csr(
        &fx,
        "tls-server",
        &csr(
            &key,
            "CN=www.example.com,O=Ignored",
            &[dns("www.example.com")],
        ),
    )
    .expect("issued");
    let cert = Certificate::from_der(&issued.record.der).expect("decodes");
    let tbs = cert.tbs_certificate();
    // Subject template of tls-server keeps CN only.
    assert_eq!(tbs.subject().to_string(), "CN=www.example.com");
    assert_eq!(issued.record.sans, vec!["DNS:www.example.com".to_string()]);
    assert_eq!(issued.chain.len(), 2);
    // Serial: positive, at most 20 octets, 128 random bits.
    let serial = tbs.serial_number().as_bytes();
    assert!(serial.len() <= 17 && serial[0] & 0x80 == 0);
    // Durable record, audit entry in the chain.
    let rec = fx.store.get_cert(serial).expect("get").expect("present");
    assert_eq!(rec.der, issued.record.der);
    assert_eq!(fx.store.verify_audit().expect("verify").first_bad, None);
    let entries = fx.store.audit_entries(1, 100).expect("audit");
    assert!(
        entries
            .iter()
            .any(|e| e.event.action == "issue"
                && e.event.subject == ca_core::asn1::serial_hex(serial))
    );
    // Validity: 397 days from now, backdated 60 s.
    assert_eq!(issued.record.not_after - NOW, 397 * 86_400);
    assert_eq!(NOW - issued.record.not_before, 60);
}

#[test]
fn validity_is_clamped_to_the_issuer() {
    let mut profiles = BTreeMap::new();
    let mut p = ca_core::profile::built_in("tls-client").expect("built-in");
    p.validity_days = 5000;
    profiles.insert("long".to_string(), p);
    let fx = fixture_with(profiles, KeyAlgorithm::EcdsaP256);
    let key = fx
        .keys
        .generate("leaf", KeyAlgorithm::EcdsaP256)
        .expect("key");
    let issued = issue_csr(&fx, "long", &csr(&key, "CN=client", &[])).expect("issued");
    let issuer = fx.auth.ca("issuing").expect("issuing");
    assert_eq!(issued.record.not_after, issuer.not_after);
}

#[test]
fn refusals_are_audited_and_never_signed() {
    let fx = fixture();
    let before = fx.store.stats().expect("stats").certificates;
    let key = fx
        .keys
        .generate("leaf", KeyAlgorithm::EcdsaP256)
        .expect("key");
    // Unknown profile.
    let e =
        issue_csr(&fx, "nope", &csr(&key, "CN=a.example.com", &[])).expect_err("unknown profile");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    // No SAN for tls-server and a CN that is not a DNS name.
    let e = issue_csr(&fx, "tls-server", &csr(&key, "CN=not a name", &[])).expect_err("no SAN");
    assert_eq!(e.kind(), ErrorKind::PolicyRefused);
    // Key algorithm the profile does not allow.
    let e = issue_csr(&fx, "ra", &csr(&key, "CN=ra", &[])).expect_err("EC RA");
    assert_eq!(e.kind(), ErrorKind::PolicyRefused);
    // Wildcard below a disallowed level / bad syntax.
    let e = issue_csr(
        &fx,
        "tls-server",
        &csr(&key, "CN=x", &[dns("a..example.com")]),
    )
    .expect_err("bad dns");
    assert_eq!(e.kind(), ErrorKind::BadRequest);
    // Corrupt signature.
    let mut bad = csr(&key, "CN=a.example.com", &[dns("a.example.com")]);
    let n = bad.len();
    bad[n - 2] ^= 0x55;
    assert_eq!(
        ca_core::csr::parse(&bad).expect_err("bad sig").kind(),
        ErrorKind::BadRequest
    );
    // Garbage and oversize CSRs.
    assert!(ca_core::csr::parse(b"\x30\x03\x02\x01\x01").is_err());
    assert!(ca_core::csr::parse(&vec![0x30; 70_000]).is_err());
    assert_eq!(
        fx.store.stats().expect("stats").certificates,
        before,
        "nothing recorded"
    );
    let refused = fx
        .store
        .audit_entries(1, 1000)
        .expect("audit")
        .into_iter()
        .filter(|e| e.event.action == "issue-refused")
        .count();
    assert_eq!(refused, 4);
}

#[test]
fn a_lint_finding_refuses_before_signing() {
    // A profile that would put keyEncipherment on an EC key: the lint refuses it.
    let mut profiles = BTreeMap::new();
    let mut p = ca_core::profile::built_in("tls-client").expect("built-in");
    p.key_usage = vec!["digitalSignature".into(), "keyEncipherment".into()];
    profiles.insert("bad".to_string(), p);
    let fx = fixture_with(profiles, KeyAlgorithm::EcdsaP256);
    let before = fx.store.stats().expect("stats").certificates;
    let key = fx
        .keys
        .generate("leaf", KeyAlgorithm::EcdsaP256)
        .expect("key");
    let e = issue_csr(&fx, "bad", &csr(&key, "CN=client", &[])).expect_err("lint");
    assert!(
        e.to_string().contains("key encipherment on an EC key"),
        "{e}"
    );
    assert_eq!(fx.store.stats().expect("stats").certificates, before);
}

#[test]
fn revocation_reaches_crl_and_ocsp() {
    let fx = fixture_with(BTreeMap::new(), KeyAlgorithm::Rsa2048);
    let key = fx
        .keys
        .generate("leaf", KeyAlgorithm::EcdsaP256)
        .expect("key");
    let a = issue_csr(&fx, "tls-server", &csr(&key, "CN=a.example.com", &[])).expect("a");
    let b = issue_csr(&fx, "tls-server", &csr(&key, "CN=b.example.com", &[])).expect("b");
    let crl0 = fx.auth.generate_crl("issuing", "test").expect("crl");
    fx.clock.set(NOW + 10);
    fx.auth
        .revoke(&a.record.serial, RevocationReason::KeyCompromise, "test")
        .expect("revoke");
    fx.auth
        .revoke(&b.record.serial, RevocationReason::Unspecified, "test")
        .expect("revoke");
    let e = fx
        .auth
        .revoke(&a.record.serial, RevocationReason::Superseded, "test")
        .expect_err("twice");
    assert_eq!(e.kind(), ErrorKind::Conflict);
    let e = fx
        .auth
        .revoke(&[0x01, 0x02], RevocationReason::Superseded, "test")
        .expect_err("unknown");
    assert_eq!(e.kind(), ErrorKind::NotFound);

    // The CRL published by the revocation lists both, with reasonCode only for a.
    let crl = fx.auth.current_crl("issuing").expect("crl");
    assert!(crl.number > crl0.number);
    let list = CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&crl.der)
        .expect("crl decodes");
    let revoked = list
        .tbs_cert_list
        .revoked_certificates
        .clone()
        .expect("entries");
    assert_eq!(revoked.len(), 2);
    let ea = revoked
        .iter()
        .find(|r| r.serial_number.as_bytes() == a.record.serial.as_slice())
        .expect("a listed");
    assert!(ea.crl_entry_extensions.is_some());
    let eb = revoked
        .iter()
        .find(|r| r.serial_number.as_bytes() == b.record.serial.as_slice())
        .expect("b listed");
    assert!(
        eb.crl_entry_extensions.is_none(),
        "unspecified carries no reasonCode"
    );
    let num = list
        .tbs_cert_list
        .crl_extensions
        .as_ref()
        .expect("exts")
        .iter()
        .find(|e| e.extn_id == CrlNumber::OID)
        .expect("number");
    let num = CrlNumber::from_der(num.extn_value.as_bytes()).expect("decodes");
    assert_eq!(
        num.0.as_bytes(),
        ca_core::asn1::minimal_positive(&crl.number.to_be_bytes()).as_slice()
    );
    assert!(list.tbs_cert_list.next_update.is_some());

    // OCSP: revoked for a, unknown for a foreign serial, good for a fresh one.
    let c = issue_csr(&fx, "tls-server", &csr(&key, "CN=c.example.com", &[])).expect("c");
    let issuing = fx.auth.ca("issuing").expect("issuing");
    let answer = fx.auth.ocsp(&ocsp_request(
        &issuing.cert_der,
        &[&a.record.serial, &c.record.serial, &[0x42]],
        Some(b"0123456789abcdef"),
    ));
    assert_eq!(answer.status, ResponseStatus::Successful);
    assert!(answer.nonced);
    assert_eq!(
        answer.statuses[0],
        CertStatus::Revoked {
            time: NOW + 10,
            reason: 1
        }
    );
    assert_eq!(answer.statuses[1], CertStatus::Good);
    assert_eq!(answer.statuses[2], CertStatus::Unknown);
    // The nonce is echoed verbatim.
    assert!(answer.der.windows(16).any(|w| w == b"0123456789abcdef"));

    // Garbage and foreign issuers.
    assert_eq!(
        fx.auth.ocsp(b"garbage").status,
        ResponseStatus::MalformedRequest
    );
    assert_eq!(
        fx.auth.ocsp(&vec![0u8; 20_000]).status,
        ResponseStatus::MalformedRequest
    );
    let other = fx
        .keys
        .generate("other", KeyAlgorithm::EcdsaP256)
        .expect("key");
    let spec = RootSpec {
        name: "other".into(),
        subject: name("CN=Other"),
        validity_days: 10,
        scheme: None,
    };
    let other_store: Arc<dyn Store> = Arc::new(store::RedbStore::in_memory().expect("store"));
    let other_der = create_root(&other_store, &other, &spec, NOW, "test").expect("other root");
    let answer = fx.auth.ocsp(&ocsp_request(&other_der, &[&[0x01]], None));
    assert_eq!(answer.status, ResponseStatus::Unauthorized);
    // Oversize nonce.
    let answer = fx.auth.ocsp(&ocsp_request(
        &issuing.cert_der,
        &[&c.record.serial],
        Some(&[7u8; 200]),
    ));
    assert_eq!(answer.status, ResponseStatus::MalformedRequest);
}

#[test]
fn crl_numbers_increase_across_calls() {
    let fx = fixture();
    let mut last = 0;
    for _ in 0..5 {
        let c = fx.auth.generate_crl("issuing", "test").expect("crl");
        assert!(c.number > last);
        last = c.number;
    }
    // The root has its own sequence and its CRL verifies against the root key.
    let r = fx.auth.generate_crl("root", "test").expect("root crl");
    assert_eq!(r.number, 1);
}

#[test]
fn a_mismatched_key_is_refused_at_load() {
    let fx = fixture();
    let root = fx.auth.ca("root").expect("root");
    let wrong = fx
        .keys
        .generate("wrong", KeyAlgorithm::EcdsaP384)
        .expect("key");
    let e = CaEntity::new("root", root.cert_der.clone(), wrong, None, None).expect_err("mismatch");
    assert!(e.to_string().contains("does not match"), "{e}");
    // A subordinate whose parent did not sign it.
    let issuing = fx.auth.ca("issuing").expect("issuing");
    let fake_root_key = fx
        .keys
        .generate("fake-root", KeyAlgorithm::EcdsaP384)
        .expect("key");
    let spec = RootSpec {
        name: "fake".into(),
        subject: name("CN=Test Root,O=Test"),
        validity_days: 10,
        scheme: None,
    };
    let fake_der = create_root(&fx.store, &fake_root_key, &spec, NOW, "test").expect("fake root");
    let e = Authority::from_parts(
        vec![
            CaEntity::new("root", fake_der, fake_root_key, None, None).expect("entity"),
            CaEntity::new(
                "issuing",
                issuing.cert_der.clone(),
                issuing.key.clone(),
                Some("root".into()),
                None,
            )
            .expect("entity"),
        ],
        &BTreeMap::new(),
        settings("issuing"),
        fx.store.clone(),
        fx.clock.clone(),
    )
    .expect_err("wrong parent");
    assert!(e.to_string().contains("does not verify"), "{e}");
}

#[test]
fn sans_and_generated_requests() {
    let fx = fixture();
    let key = fx
        .keys
        .generate("leaf", KeyAlgorithm::EcdsaP256)
        .expect("key");
    let req = IssueRequest {
        profile: "device".into(),
        subject: name("CN=phone-1"),
        sans: vec![
            San::Uri("tag:microsoft.com,2022-09-14:sid:S-1-5-21-1".into()),
            San::Email("u@example.com".into()),
            San::Ip("::1".parse().expect("ip")),
        ],
        spki_der: key.public_key_der().to_vec(),
        key_algorithm: KeyAlgorithm::EcdsaP256,
        extensions: vec![],
        requester: "test".into(),
        validity_days: Some(30),
        issuer: None,
    };
    let issued = fx.auth.issue(&req).expect("issued");
    assert_eq!(issued.record.not_after - NOW, 30 * 86_400);
    let cert = Certificate::from_der(&issued.record.der).expect("decodes");
    let (_, san) = cert
        .tbs_certificate()
        .get_extension::<SubjectAltName>()
        .expect("ok")
        .expect("san");
    assert_eq!(san.0.len(), 3);
    // A validity longer than the profile's is refused.
    let mut long = req.clone();
    long.validity_days = Some(10_000);
    assert_eq!(
        fx.auth.issue(&long).expect_err("too long").kind(),
        ErrorKind::PolicyRefused
    );
    // A stated algorithm that does not match the key is refused.
    let mut lie = req;
    lie.key_algorithm = KeyAlgorithm::Rsa2048;
    assert_eq!(
        fx.auth.issue(&lie).expect_err("lie").kind(),
        ErrorKind::BadRequest
    );
}

// --- OCSP request builder (RFC 6960 §4.1.1), only for the tests -----------------------

fn ocsp_request(issuer_der: &[u8], serials: &[&[u8]], nonce: Option<&[u8]>) -> Vec<u8> {
    let issuer = Certificate::from_der(issuer_der).expect("issuer");
    let name_hash =
        sha1::Sha1::digest(issuer.tbs_certificate().subject().to_der().expect("der")).to_vec();
    let key_hash = sha1::Sha1::digest(
        issuer
            .tbs_certificate()
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes(),
    )
    .to_vec();
    let list = serials
        .iter()
        .map(|s| ca_core::ocsp::Request {
            req_cert: ca_core::ocsp::CertId {
                hash_algorithm: spki::AlgorithmIdentifierOwned {
                    oid: ca_core::asn1::oid::SHA1,
                    parameters: Some(der::asn1::Null.into()),
                },
                issuer_name_hash: OctetString::new(name_hash.clone()).expect("os"),
                issuer_key_hash: OctetString::new(key_hash.clone()).expect("os"),
                serial_number: ca_core::asn1::serial_number(&ca_core::asn1::minimal_positive(s))
                    .expect("serial"),
            },
            single_request_extensions: None,
        })
        .collect();
    let request_extensions = nonce.map(|n| {
        vec![x509_cert::ext::Extension {
            extn_id: ca_core::asn1::oid::OCSP_NONCE,
            critical: false,
            extn_value: OctetString::new(
                OctetString::new(n.to_vec())
                    .expect("os")
                    .to_der()
                    .expect("der"),
            )
            .expect("os"),
        }]
    });
    ca_core::ocsp::OcspRequest {
        tbs_request: ca_core::ocsp::TbsRequest {
            version: 0,
            requestor_name: None,
            request_list: list,
            request_extensions,
        },
        optional_signature: None,
    }
    .to_der()
    .expect("request der")
}

fn hold(fx: &Fx, key_name: &str, profile: &str, dns_name: &str) -> store::PendingRequest {
    let key = match fx.keys.open(key_name) {
        Ok(k) => k,
        Err(_) => fx
            .keys
            .generate(key_name, KeyAlgorithm::EcdsaP256)
            .expect("key"),
    };
    fx.auth
        .hold(ca_core::pending::HoldRequest {
            lookup_key: format!("tx-{key_name}"),
            endpoint: "est:test".into(),
            profile: profile.into(),
            requester: "device-1".into(),
            csr_der: csr(&key, &format!("CN={dns_name}"), &[dns(dns_name)]),
        })
        .expect("held")
}

#[test]
fn held_requests_are_approved_once_or_rejected() {
    use store::PendingState;
    let fx = fixture();
    let before = fx.store.stats().expect("stats").certificates;
    let held = hold(&fx, "a", "tls-server", "a.example.com");
    assert_eq!(held.state, PendingState::Pending);
    // The client repeats itself: the same request comes back, nothing new is stored.
    let again = hold(&fx, "a", "tls-server", "a.example.com");
    assert_eq!(again.id, held.id);
    assert_eq!(fx.auth.list_held(None).expect("list").len(), 1);
    assert_eq!(fx.store.stats().expect("stats").certificates, before);

    let issued = fx.auth.approve(held.id, "admin").expect("approved");
    let found = fx.auth.find_held("tx-a").expect("find").expect("present");
    assert_eq!(found.state, PendingState::Issued);
    assert_eq!(
        found.serial.as_deref(),
        Some(issued.record.serial.as_slice())
    );
    assert_eq!(issued.record.sans, vec!["DNS:a.example.com".to_string()]);
    // A second approval is a conflict and issues nothing.
    let e = fx.auth.approve(held.id, "admin").expect_err("twice");
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert_eq!(fx.store.stats().expect("stats").certificates, before + 1);

    let other = hold(&fx, "b", "tls-server", "b.example.com");
    let rejected = fx
        .auth
        .reject(other.id, "admin", "unknown device")
        .expect("rejected");
    assert_eq!(rejected.state, PendingState::Rejected);
    assert_eq!(rejected.note.as_deref(), Some("unknown device"));
    assert_eq!(
        fx.auth
            .approve(other.id, "admin")
            .expect_err("rejected")
            .kind(),
        ErrorKind::Conflict
    );
    assert_eq!(
        fx.auth.approve(99, "admin").expect_err("missing").kind(),
        ErrorKind::NotFound
    );
    let pending = fx
        .auth
        .list_held(Some(PendingState::Pending))
        .expect("list");
    assert!(pending.is_empty());
    let actions: Vec<String> = fx
        .store
        .audit_entries(1, 1000)
        .expect("audit")
        .into_iter()
        .map(|e| e.event.action)
        .collect();
    for a in ["hold", "approve", "reject", "approve-refused"] {
        assert!(actions.iter().any(|x| x == a), "audit has {a}");
    }
}

#[test]
fn a_held_request_that_policy_refuses_stays_pending() {
    let fx = fixture();
    // The email profile refuses a DNS SAN: approval fails, the request stays pending.
    let held = hold(&fx, "c", "email", "c.example.com");
    let e = fx.auth.approve(held.id, "admin").expect_err("refused");
    assert_ne!(e.kind(), ErrorKind::Conflict);
    assert_eq!(
        fx.auth.held(held.id).expect("held").state,
        store::PendingState::Pending
    );
    // Unknown profiles and garbage CSRs are refused before anything is held.
    let refused = fx.auth.hold(ca_core::pending::HoldRequest {
        lookup_key: "x".into(),
        endpoint: "est:test".into(),
        profile: "nope".into(),
        requester: "r".into(),
        csr_der: vec![0x30, 0x00],
    });
    assert_eq!(refused.expect_err("profile").kind(), ErrorKind::NotFound);
    let refused = fx.auth.hold(ca_core::pending::HoldRequest {
        lookup_key: "y".into(),
        endpoint: "est:test".into(),
        profile: "tls-server".into(),
        requester: "r".into(),
        csr_der: vec![0x30, 0x00],
    });
    assert_eq!(refused.expect_err("garbage").kind(), ErrorKind::BadRequest);
    assert_eq!(fx.auth.list_held(None).expect("list").len(), 1);
}

/// The serials a CRL lists.
fn crl_serials(der: &[u8]) -> Vec<Vec<u8>> {
    CertificateList::<x509_cert::certificate::Rfc5280>::from_der(der)
        .expect("crl decodes")
        .tbs_cert_list
        .revoked_certificates
        .unwrap_or_default()
        .iter()
        .map(|r| r.serial_number.as_bytes().to_vec())
        .collect()
}

/// A revocation committed by the store whose CRL was never signed (the process died
/// between the two): what a crash leaves behind.
fn revoke_in_store_only(fx: &Fx, serial: &[u8]) {
    fx.store
        .revoke(
            serial,
            store::Revocation {
                time: fx.auth.now(),
                reason: 1,
            },
            &store::AuditEvent {
                time: fx.auth.now(),
                action: "revoke".into(),
                actor: "test".into(),
                subject: ca_core::asn1::serial_hex(serial),
                detail: "reason=keyCompromise".into(),
            },
        )
        .expect("store revoke");
}

#[test]
fn a_crl_missing_a_revocation_is_resigned_at_startup() {
    let fx = fixture();
    let key = fx
        .keys
        .generate("leaf", KeyAlgorithm::EcdsaP256)
        .expect("key");
    let a = issue_csr(&fx, "tls-server", &csr(&key, "CN=a.example.com", &[])).expect("a");
    let crl0 = fx.auth.generate_crl("issuing", "test").expect("crl");
    fx.clock.set(NOW + 10);
    revoke_in_store_only(&fx, &a.record.serial);
    // The stored CRL is fresh but misses the revocation.
    assert!(fx.auth.crl_is_stale("issuing").expect("stale?"));
    assert!(!fx.auth.crl_is_stale("root").expect("stale?"));
    let failed = fx.auth.republish_stale_crls("startup");
    assert!(failed.is_empty(), "{failed:?}");
    let crl = fx.auth.current_crl("issuing").expect("crl");
    assert!(crl.number > crl0.number);
    assert!(crl_serials(&crl.der).contains(&a.record.serial));
    assert!(!fx.auth.crl_is_stale("issuing").expect("stale?"));
    // A complete CRL is left alone.
    assert!(
        fx.auth
            .republish_if_stale("issuing", "test")
            .expect("ok")
            .is_none()
    );
}

#[test]
fn a_repeated_revocation_resigns_a_crl_that_misses_it() {
    let fx = fixture();
    let key = fx
        .keys
        .generate("leaf", KeyAlgorithm::EcdsaP256)
        .expect("key");
    let a = issue_csr(&fx, "tls-server", &csr(&key, "CN=a.example.com", &[])).expect("a");
    let crl0 = fx.auth.generate_crl("issuing", "test").expect("crl");
    fx.clock.set(NOW + 10);
    revoke_in_store_only(&fx, &a.record.serial);
    // The client retries: "already revoked", and the served CRL now lists it.
    let e = fx
        .auth
        .revoke(&a.record.serial, RevocationReason::KeyCompromise, "test")
        .expect_err("already revoked");
    assert_eq!(e.kind(), ErrorKind::Conflict);
    let crl = fx.auth.current_crl("issuing").expect("crl");
    assert!(crl.number > crl0.number, "re-signed");
    assert!(
        crl_serials(&crl.der).contains(&a.record.serial),
        "the served CRL lists the revocation"
    );
}

#[test]
fn unauthenticated_refusals_grow_the_audit_log_by_one_summary_per_window() {
    use ca_core::refusals::{SUMMARY_ACTION, SUMMARY_WINDOW_SECONDS};
    let fx = fixture();
    let before = fx.store.stats().expect("stats").audit_entries;
    for i in 0..2_000u32 {
        fx.auth.note_unauthenticated(
            if i % 2 == 0 {
                "admin-refused"
            } else {
                "est-refused"
            },
            &format!("10.0.{}.{}", i % 7, i % 251),
            "wrong admin token",
        );
    }
    assert_eq!(
        fx.store.stats().expect("stats").audit_entries,
        before,
        "refusals within the window write nothing"
    );
    // The window ends: the next refusal writes one summary.
    fx.clock.set(NOW + SUMMARY_WINDOW_SECONDS);
    fx.auth
        .note_unauthenticated("admin-refused", "10.9.9.9", "wrong admin token");
    assert_eq!(fx.store.stats().expect("stats").audit_entries, before + 1);
    let entries = fx.store.audit_entries(before + 1, 10).expect("audit");
    assert_eq!(entries.len(), 1);
    let e = &entries[0].event;
    assert_eq!(e.action, SUMMARY_ACTION);
    assert!(e.detail.starts_with("total=2001 "), "{}", e.detail);
    assert!(e.detail.contains("wrong admin token"), "{}", e.detail);
    assert!(
        e.detail.len() < 8 * 1024,
        "bounded detail: {}",
        e.detail.len()
    );
    assert_eq!(fx.store.verify_audit().expect("verify").first_bad, None);
    // Nothing new: a forced flush writes nothing.
    assert_eq!(fx.auth.flush_refusals(true).expect("flush"), None);
    // One more, flushed at shutdown.
    fx.auth
        .note_unauthenticated("scep-refused", "scep:default", "bad message");
    let seq = fx
        .auth
        .flush_refusals(true)
        .expect("flush")
        .expect("written");
    assert_eq!(seq, before + 2);
    assert_eq!(fx.store.verify_audit().expect("verify").first_bad, None);
}
