//! The authority's public API end to end, in process: hierarchy, issuance pipeline,
//! refusals, revocation, CRLs and OCSP, with an in-memory store and software keys.

use std::collections::BTreeMap;
use std::sync::Arc;

use ca_core::ceremony::{RootSpec, create_root};
use ca_core::config::ProfileConfig;
use ca_core::ocsp::{CertStatus, ResponseStatus};
use ca_core::profile::San;
use ca_core::testing::{TestCa, dns, issue_request, name};
use ca_core::{Authority, CaEntity, ErrorKind, FixedClock, IssueRequest, RevocationReason};
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
use x509_cert::request::ExtensionReq;

const NOW: i64 = 1_790_000_000; // 2026-09

struct Fx {
    _dir: tempfile::TempDir,
    keys: hsm::soft::SoftKeyStore,
    store: Arc<dyn Store>,
    clock: Arc<FixedClock>,
    auth: Arc<Authority>,
}

fn fixture_with(profiles: BTreeMap<String, ProfileConfig>, issuing_alg: KeyAlgorithm) -> Fx {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = hsm::soft::SoftKeyStore::open(
        dir.path().join("keys"),
        Secret::new(b"test passphrase".to_vec()),
    )
    .expect("keys");
    let ca = TestCa::builder()
        .root_key(
            keys.generate("root", KeyAlgorithm::EcdsaP384)
                .expect("root key"),
        )
        .issuing(
            "CN=Test Issuing,O=Test",
            keys.generate("issuing", issuing_alg).expect("issuing key"),
        )
        .profiles(profiles)
        .build();
    Fx {
        _dir: dir,
        keys,
        store: ca.store,
        clock: ca.clock,
        auth: ca.auth,
    }
}

fn fixture() -> Fx {
    fixture_with(BTreeMap::new(), KeyAlgorithm::EcdsaP256)
}

/// A PKCS#10 CSR signed by `key`.
fn csr(key: &Arc<dyn PrivateKey>, subject: &str, sans: &[GeneralName]) -> Vec<u8> {
    ca_core::testing::csr(key.as_ref(), subject, sans)
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
fn a_key_usage_the_key_cannot_have_is_refused_before_signing() {
    // A profile that would put keyEncipherment on an EC key: policy refuses it (the lint
    // would too), as a client error naming the clash.
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
    assert_eq!(e.kind(), ErrorKind::PolicyRefused, "{e}");
    assert!(e.to_string().contains("keyEncipherment"), "{e}");
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

    // a's key was revoked for keyCompromise: it is blocked (docs/lifecycle.md).
    let e =
        issue_csr(&fx, "tls-server", &csr(&key, "CN=c.example.com", &[])).expect_err("blocked key");
    assert_eq!(e.precise_kind(), ErrorKind::CompromisedKey);
    // OCSP: revoked for a, unknown for a foreign serial, good for a fresh one.
    let key = fx
        .keys
        .generate("tls-c", KeyAlgorithm::EcdsaP256)
        .expect("key");
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
        ca_core::testing::settings("issuing"),
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
        sans: vec![
            San::Uri("tag:microsoft.com,2022-09-14:sid:S-1-5-21-1".into()),
            San::Email("u@example.com".into()),
            San::Ip("::1".parse().expect("ip")),
        ],
        validity_days: Some(30),
        ..issue_request("device", name("CN=phone-1"), key.as_ref())
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

// --- Names in the subject, subject strings, RSA exponents, lint kinds, RDN order -------
// (issue 9 items 1, 2, 8, 15, 19). Every channel (CLI, admin API, EST, SCEP) hands the
// authority an IssueRequest, from a CSR or from a subject and SANs given as text, so the
// policy is proved here on both forms.

/// A profile like the issue's: `san = { dns = [".example.com"] }`, wildcards off; plus
/// IPs in 10.0.0.0/8 and email addresses at example.com.
fn names_fixture() -> Fx {
    let mut profiles = BTreeMap::new();
    let mut p = ca_core::profile::built_in("tls-client").expect("built-in");
    p.subject.from_request = vec!["CN".into(), "O".into(), "emailAddress".into()];
    p.subject.require_cn = false;
    p.san = ca_core::config::SanConfig {
        dns: vec![".example.com".into()],
        ip_ranges: vec!["10.0.0.0/8".into()],
        email_domains: vec!["example.com".into()],
        ..ca_core::config::SanConfig::default()
    };
    profiles.insert("corp".to_string(), p);
    fixture_with(profiles, KeyAlgorithm::EcdsaP256)
}

fn text_request(fx: &Fx, profile: &str, subject: Name, sans: Vec<San>) -> IssueRequest {
    let key = match fx.keys.open("names") {
        Ok(k) => k,
        Err(_) => fx
            .keys
            .generate("names", KeyAlgorithm::EcdsaP256)
            .expect("key"),
    };
    IssueRequest {
        sans,
        ..issue_request(profile, subject, key.as_ref())
    }
}

/// The error of a refused issuance; a certificate issued instead fails the test, naming
/// its subject and SANs (not its DER).
trait Refused {
    fn refused(self, what: &str) -> ca_core::Error;
}

impl Refused for ca_core::Result<ca_core::Issued> {
    fn refused(self, what: &str) -> ca_core::Error {
        match self {
            Ok(i) => panic!(
                "{what} was issued: subject {:?}, SANs {:?}",
                i.record.subject, i.record.sans
            ),
            Err(e) => e,
        }
    }
}

fn cert_count(fx: &Fx) -> u64 {
    fx.store.stats().expect("stats").certificates
}

#[test]
fn the_common_name_obeys_the_profile_name_rules() {
    let fx = names_fixture();
    let key = fx
        .keys
        .generate("leaf", KeyAlgorithm::EcdsaP256)
        .expect("key");
    let before = cert_count(&fx);
    // (subject, SANs, expected kind) through a CSR, as EST and SCEP hand it over.
    let refused: &[(&str, &[&str], ErrorKind)] = &[
        // The issue's case: a CN outside the allowed suffix beside an allowed SAN.
        (
            "CN=www.evil.com",
            &["ok.example.com"],
            ErrorKind::PolicyRefused,
        ),
        // A wildcard CN with wildcards off.
        (
            "CN=*.example.com",
            &["ok.example.com"],
            ErrorKind::PolicyRefused,
        ),
        // Allowed, but not one of the SANs (RFC 9525).
        (
            "CN=a.example.com",
            &["b.example.com"],
            ErrorKind::PolicyRefused,
        ),
        // No SAN at all.
        ("CN=a.example.com", &[], ErrorKind::PolicyRefused),
        // Upper case does not hide it.
        (
            "CN=WWW.EVIL.COM",
            &["ok.example.com"],
            ErrorKind::PolicyRefused,
        ),
        // A second CN (some clients read the last one).
        (
            "CN=www.evil.com,CN=ok.example.com",
            &["ok.example.com"],
            ErrorKind::PolicyRefused,
        ),
        // An IP address outside the ranges, and one inside that is not a SAN.
        (
            "CN=192.168.1.1",
            &["ok.example.com"],
            ErrorKind::PolicyRefused,
        ),
        ("CN=10.1.2.3", &["ok.example.com"], ErrorKind::PolicyRefused),
        // An email address outside the allowed domains.
        (
            "CN=ceo@evil.com",
            &["ok.example.com"],
            ErrorKind::PolicyRefused,
        ),
        // Forms that name something ambiguously or invalidly.
        ("CN=10.1", &["ok.example.com"], ErrorKind::BadRequest),
        (
            "CN=ok.example.com.",
            &["ok.example.com"],
            ErrorKind::BadRequest,
        ),
        (
            "CN=w*.example.com",
            &["ok.example.com"],
            ErrorKind::BadRequest,
        ),
        (
            "CN=a_b.example.com",
            &["ok.example.com"],
            ErrorKind::BadRequest,
        ),
    ];
    for (subject, sans, kind) in refused {
        let names: Vec<GeneralName> = sans.iter().map(|d| dns(d)).collect();
        let e = issue_csr(&fx, "corp", &csr(&key, subject, &names))
            .refused(&format!("{subject} with {sans:?} must be refused"));
        assert_eq!(e.kind(), *kind, "{subject} with {sans:?}: {e}");
    }
    assert_eq!(cert_count(&fx), before, "a refused request was issued");

    // Allowed: the CN is an allowed SAN (any case), an IP SAN, or not a name at all.
    let allowed: &[(&str, Vec<GeneralName>)] = &[
        ("CN=ok.example.com", vec![dns("ok.example.com")]),
        ("CN=WWW.Example.COM", vec![dns("www.example.com")]),
        (
            "CN=10.1.2.3",
            vec![GeneralName::IpAddress(
                OctetString::new(vec![10, 1, 2, 3]).expect("ip"),
            )],
        ),
        ("CN=Jane Doe", vec![dns("ok.example.com")]),
        ("CN=phone-17", vec![]),
        ("CN=alice@example.com", vec![]),
    ];
    for (subject, names) in allowed {
        issue_csr(&fx, "corp", &csr(&key, subject, names))
            .unwrap_or_else(|e| panic!("{subject}: {e}"));
    }
    assert_eq!(cert_count(&fx), before + allowed.len() as u64);
}

#[test]
fn names_given_as_text_obey_the_same_rules() {
    // The admin API and the CLI pass a subject and SANs as text, not a CSR.
    let fx = names_fixture();
    let before = cert_count(&fx);
    for (subject, sans) in [
        ("CN=www.evil.com", vec![San::Dns("ok.example.com".into())]),
        ("CN=*.example.com", vec![San::Dns("ok.example.com".into())]),
        // emailAddress must be an allowed rfc822Name SAN too (RFC 5280 §4.1.2.6).
        (
            "emailAddress=ceo@example.com,CN=Jane",
            vec![San::Email("jane@example.com".into())],
        ),
        (
            "emailAddress=jane@evil.com,CN=Jane",
            vec![San::Email("jane@evil.com".into())],
        ),
    ] {
        let e = fx
            .auth
            .issue(&text_request(&fx, "corp", name(subject), sans))
            .refused(subject);
        assert_eq!(e.kind(), ErrorKind::PolicyRefused, "{subject}: {e}");
    }
    assert_eq!(cert_count(&fx), before);
    fx.auth
        .issue(&text_request(
            &fx,
            "corp",
            name("emailAddress=Jane@EXAMPLE.com,CN=Jane"),
            vec![San::Email("Jane@example.com".into())],
        ))
        .expect("emailAddress that is a SAN");
    // A profile that copies the CN as SAN (tls-server) adds it when missing, and the
    // rules then judge it: a wildcard CN is refused when wildcards are off.
    let mut profiles = BTreeMap::new();
    let mut p = ca_core::profile::built_in("tls-server").expect("built-in");
    p.san.any_dns = false;
    p.san.wildcards = false;
    p.san.dns = vec![".example.com".into()];
    profiles.insert("srv".to_string(), p);
    let fx = fixture_with(profiles, KeyAlgorithm::EcdsaP256);
    let issued = fx
        .auth
        .issue(&text_request(
            &fx,
            "srv",
            name("CN=a.example.com"),
            vec![San::Dns("b.example.com".into())],
        ))
        .expect("cn_as_dns adds the CN");
    assert_eq!(
        issued.record.sans,
        vec!["DNS:b.example.com".to_string(), "DNS:a.example.com".into()]
    );
    for subject in ["CN=*.example.com", "CN=www.evil.com"] {
        let e = fx
            .auth
            .issue(&text_request(
                &fx,
                "srv",
                name(subject),
                vec![San::Dns("ok.example.com".into())],
            ))
            .refused(subject);
        assert_eq!(e.kind(), ErrorKind::PolicyRefused, "{subject}: {e}");
    }
}

/// A Name of one RDN holding one attribute with the given string type and raw bytes.
fn raw_name(oid: &str, tag: der::Tag, bytes: &[u8]) -> Name {
    let atv = x509_cert::attr::AttributeTypeAndValue {
        oid: const_oid::ObjectIdentifier::new(oid).expect("oid"),
        value: der::asn1::Any::new(tag, bytes.to_vec()).expect("any"),
    };
    let mut rdn = x509_cert::name::RelativeDistinguishedName::default();
    rdn.insert(atv).expect("rdn");
    let mut seq = x509_cert::name::RdnSequence::default();
    seq.push(rdn);
    Name::from_der(&seq.to_der().expect("der")).expect("name")
}

#[test]
fn control_characters_and_foreign_characters_are_refused_in_subjects_and_sans() {
    let fx = fixture();
    let key = fx
        .keys
        .generate("leaf", KeyAlgorithm::EcdsaP256)
        .expect("key");
    let before = cert_count(&fx);
    use der::Tag;
    const CN: &str = "2.5.4.3";
    let bad_subjects: Vec<(&str, Name)> = vec![
        (
            "NUL in a UTF8String CN",
            raw_name(CN, Tag::Utf8String, b"www.example.com\0.evil.com"),
        ),
        ("CR LF ESC", raw_name(CN, Tag::Utf8String, b"a\r\nb\x1b")),
        ("DEL", raw_name(CN, Tag::Utf8String, b"a\x7fb")),
        (
            "C1 control (U+0085)",
            raw_name(CN, Tag::Utf8String, "a\u{85}b".as_bytes()),
        ),
        (
            "right-to-left override",
            raw_name(CN, Tag::Utf8String, "evil\u{202e}moc.elpmaxe".as_bytes()),
        ),
        ("invalid UTF-8", raw_name(CN, Tag::Utf8String, b"a\xffb")),
        (
            "@ in a PrintableString",
            raw_name(CN, Tag::PrintableString, b"a@b"),
        ),
        (
            "* in a PrintableString",
            raw_name(CN, Tag::PrintableString, b"*.example"),
        ),
        (
            "non-ASCII in an IA5String",
            raw_name(CN, Tag::Ia5String, b"caf\xc3\xa9"),
        ),
        ("NUL in an IA5String", raw_name(CN, Tag::Ia5String, b"a\0b")),
        (
            "odd-length BMPString",
            raw_name(CN, Tag::BmpString, b"\0a\0"),
        ),
        (
            "lone surrogate in a BMPString",
            raw_name(CN, Tag::BmpString, b"\xd8\x00"),
        ),
        (
            "NUL in a BMPString",
            raw_name(CN, Tag::BmpString, b"\0a\0\0\0b"),
        ),
        // Through the RFC 4514 text form the admin API and the CLI parse.
        ("NUL through RFC 4514 text", name("CN=a\u{0}b")),
        ("ESC through RFC 4514 text", name("CN=a\u{1b}[31mred")),
    ];
    for (what, subject) in bad_subjects {
        // As text (admin API, CLI) ...
        let e = fx
            .auth
            .issue(&text_request(&fx, "device", subject.clone(), vec![]))
            .refused(what);
        assert_eq!(e.kind(), ErrorKind::BadRequest, "{what}: {e}");
        // ... and in a CSR (EST, SCEP).
        let info_der = {
            // Re-sign a CSR with this subject.
            ca_core::testing::sign_csr(key.as_ref(), subject.clone(), SetOfVec::new())
        };
        let e = issue_csr(&fx, "device", &info_der).refused(what);
        assert_eq!(e.kind(), ErrorKind::BadRequest, "{what} in a CSR: {e}");
    }
    // Attributes whose type fixes the repertoire: C is two letters, emailAddress ASCII.
    let mut profiles = BTreeMap::new();
    let mut p = ca_core::profile::built_in("device").expect("built-in");
    p.subject.from_request = vec!["CN".into(), "C".into(), "emailAddress".into()];
    profiles.insert("wide".to_string(), p);
    let fx2 = fixture_with(profiles, KeyAlgorithm::EcdsaP256);
    for (what, subject) in [
        (
            "three-letter country",
            raw_name("2.5.4.6", Tag::PrintableString, b"USA"),
        ),
        (
            "UTF-8 country",
            raw_name("2.5.4.6", Tag::Utf8String, "D\u{c9}".as_bytes()),
        ),
        (
            "non-ASCII emailAddress",
            raw_name(
                "1.2.840.113549.1.9.1",
                Tag::Utf8String,
                "j\u{f6}@example.com".as_bytes(),
            ),
        ),
    ] {
        let e = fx2
            .auth
            .issue(&text_request(&fx2, "wide", subject, vec![]))
            .refused(what);
        assert_eq!(e.kind(), ErrorKind::BadRequest, "{what}: {e}");
    }
    // SAN values: rfc822Name and URI without NUL or controls, dNSName LDH only.
    for san in [
        San::Email("a\0@example.com".into()),
        San::Email("a\r\nb@example.com".into()),
        San::Uri("https://example.com/\0x".into()),
        San::Uri("https://example.com/\x1b[2J".into()),
        San::Dns("a\0.example.com".into()),
        San::Dns("a b.example.com".into()),
    ] {
        let e = fx
            .auth
            .issue(&text_request(
                &fx,
                "device",
                name("CN=phone"),
                vec![san.clone()],
            ))
            .refused(&format!("{san:?}"));
        assert_eq!(e.kind(), ErrorKind::BadRequest, "{san:?}: {e}");
    }
    // A NUL in a CSR's rfc822Name SAN.
    let nul_email =
        GeneralName::Rfc822Name(der::asn1::Ia5String::new("a\0@example.com").expect("ia5"));
    let e = issue_csr(&fx, "device", &csr(&key, "CN=phone", &[nul_email])).refused("NUL email");
    assert_eq!(e.kind(), ErrorKind::BadRequest, "{e}");
    assert_eq!(cert_count(&fx), before, "a refused request was issued");
    // Ordinary international text is fine.
    fx.auth
        .issue(&text_request(
            &fx,
            "device",
            name("CN=Jürgen Müller,O=Ça va"),
            vec![],
        ))
        .expect("UTF-8 text");
}

/// The SubjectPublicKeyInfo of `spki_der` (RSA) with its public exponent replaced.
fn with_exponent(spki_der: &[u8], exponent: &[u8]) -> Vec<u8> {
    let spki = spki::SubjectPublicKeyInfoOwned::from_der(spki_der).expect("spki");
    let key = pkcs1::RsaPublicKey::<der::asn1::UintRef<'_>>::from_der(
        spki.subject_public_key.raw_bytes(),
    )
    .expect("rsa key");
    let modulus = key.modulus.as_bytes().to_vec();
    let new = pkcs1::RsaPublicKey {
        modulus: der::asn1::UintRef::new(&modulus).expect("n"),
        public_exponent: der::asn1::UintRef::new(exponent).expect("e"),
    }
    .to_der()
    .expect("der");
    spki::SubjectPublicKeyInfoOwned {
        algorithm: spki.algorithm.clone(),
        subject_public_key: der::asn1::BitString::from_bytes(&new).expect("bits"),
    }
    .to_der()
    .expect("spki der")
}

#[test]
fn rsa_public_exponents_below_65537_or_even_are_refused() {
    let fx = fixture();
    let key = fx.keys.generate("rsa", KeyAlgorithm::Rsa2048).expect("key");
    let before = cert_count(&fx);
    let request = |spki_der: Vec<u8>| IssueRequest {
        spki_der,
        ..issue_request("tls-client", name("CN=client"), key.as_ref())
    };
    for (e, kind) in [
        (&[3u8][..], ErrorKind::PolicyRefused),
        (&[0xff, 0xff][..], ErrorKind::PolicyRefused), // 65535
        (&[0x01, 0x00, 0x00][..], ErrorKind::BadRequest), // 65536: even
        (&[4u8][..], ErrorKind::BadRequest),
        (&[1u8][..], ErrorKind::PolicyRefused),
        (&[0x01; 33][..], ErrorKind::PolicyRefused), // 2^256 or more
    ] {
        let err = fx
            .auth
            .issue(&request(with_exponent(key.public_key_der(), e)))
            .refused(&format!("exponent {e:02x?}"));
        assert_eq!(err.kind(), kind, "exponent {e:02x?}: {err}");
    }
    assert_eq!(cert_count(&fx), before);
    // 65537 and larger odd exponents are fine.
    fx.auth
        .issue(&request(key.public_key_der().to_vec()))
        .expect("e = 65537");
    fx.auth
        .issue(&request(with_exponent(
            key.public_key_der(),
            &[0x01, 0x00, 0x03],
        )))
        .expect("e = 65539");
}

#[test]
fn a_profile_may_opt_in_to_small_rsa_exponents() {
    let mut profiles = BTreeMap::new();
    let mut p = ca_core::profile::built_in("tls-client").expect("built-in");
    p.rsa_min_exponent = 3;
    profiles.insert("legacy".to_string(), p.clone());
    let fx = fixture_with(profiles, KeyAlgorithm::EcdsaP256);
    let key = fx.keys.generate("rsa", KeyAlgorithm::Rsa2048).expect("key");
    let mut req = IssueRequest {
        spki_der: with_exponent(key.public_key_der(), &[3]),
        ..issue_request("legacy", name("CN=old device"), key.as_ref())
    };
    fx.auth
        .issue(&req)
        .expect("e = 3 where the profile allows it");
    // Even exponents stay refused; so does an even or too small minimum in the config.
    req.spki_der = with_exponent(key.public_key_der(), &[4]);
    assert_eq!(
        fx.auth.issue(&req).refused("even").kind(),
        ErrorKind::BadRequest
    );
    for bad in [0, 1, 2, 4, 65536] {
        p.rsa_min_exponent = bad;
        assert!(
            ca_core::profile::Profile::from_config("x", p.clone(), "issuing").is_err(),
            "rsa_min_exponent = {bad} accepted"
        );
    }
}

#[test]
fn a_request_that_names_nobody_is_a_client_error() {
    // Empty subject, no SAN, profile device: once a lint failure answered as internal
    // (HTTP 500); it is the request's fault.
    let fx = fixture();
    let key = fx
        .keys
        .generate("leaf", KeyAlgorithm::EcdsaP256)
        .expect("key");
    let before = cert_count(&fx);
    let e = issue_csr(&fx, "device", &csr(&key, "", &[])).refused("empty");
    assert_eq!(e.kind(), ErrorKind::BadRequest, "{e}");
    // Also when the template drops everything the request has.
    let e = issue_csr(&fx, "device", &csr(&key, "L=Nowhere", &[])).refused("dropped");
    assert_eq!(e.kind(), ErrorKind::BadRequest, "{e}");
    assert_eq!(cert_count(&fx), before);
}

/// A CSR with the given attributes (already built), signed by `key`.
fn csr_with_attributes(
    key: &Arc<dyn PrivateKey>,
    subject: &str,
    attributes: SetOfVec<x509_cert::attr::Attribute>,
) -> Vec<u8> {
    ca_core::testing::sign_csr(key.as_ref(), name(subject), attributes)
}

fn san_ext(names: &[&str]) -> x509_cert::ext::Extension {
    ca_core::asn1::extension(
        SubjectAltName::OID,
        false,
        &SubjectAltName(names.iter().map(|n| dns(n)).collect()),
    )
    .expect("ext")
}

#[test]
fn duplicated_subject_alt_names_and_extension_requests_are_refused() {
    let fx = fixture();
    let key = fx
        .keys
        .generate("leaf", KeyAlgorithm::EcdsaP256)
        .expect("key");
    // Two subjectAltName extensions in one extensionRequest.
    let mut attrs = SetOfVec::new();
    attrs
        .insert(
            ExtensionReq(vec![
                san_ext(&["a.example.com"]),
                san_ext(&["b.example.com"]),
            ])
            .try_into()
            .expect("attr"),
        )
        .expect("insert");
    let two_sans = csr_with_attributes(&key, "CN=a.example.com", attrs);
    // Two extensionRequest attributes, each with one subjectAltName.
    let mut attrs = SetOfVec::new();
    for n in ["a.example.com", "b.example.com"] {
        attrs
            .insert(ExtensionReq(vec![san_ext(&[n])]).try_into().expect("attr"))
            .expect("insert");
    }
    let two_attrs = csr_with_attributes(&key, "CN=a.example.com", attrs);
    // One extensionRequest attribute with two values.
    let mut values = SetOfVec::new();
    for n in ["a.example.com", "b.example.com"] {
        values
            .insert(der::asn1::Any::encode_from(&ExtensionReq(vec![san_ext(&[n])])).expect("any"))
            .expect("insert");
    }
    let mut attrs = SetOfVec::new();
    attrs
        .insert(x509_cert::attr::Attribute {
            oid: const_oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.14"),
            values,
        })
        .expect("insert");
    let two_values = csr_with_attributes(&key, "CN=a.example.com", attrs);
    let before = cert_count(&fx);
    for (what, der) in [
        ("two subjectAltName extensions", two_sans),
        ("two extensionRequest attributes", two_attrs),
        ("an extensionRequest with two values", two_values),
    ] {
        let e = ca_core::csr::parse(&der)
            .err()
            .unwrap_or_else(|| panic!("{what} parsed"));
        assert_eq!(e.kind(), ErrorKind::BadRequest, "{what}: {e}");
        assert!(issue_csr(&fx, "tls-server", &der).is_err(), "{what} issued");
    }
    assert_eq!(cert_count(&fx), before);
    // One of each still works.
    let mut attrs = SetOfVec::new();
    attrs
        .insert(
            ExtensionReq(vec![san_ext(&["a.example.com", "b.example.com"])])
                .try_into()
                .expect("attr"),
        )
        .expect("insert");
    issue_csr(
        &fx,
        "tls-server",
        &csr_with_attributes(&key, "CN=a.example.com", attrs),
    )
    .expect("one SAN extension");
}

#[test]
fn the_subject_keeps_the_order_of_the_request() {
    let fx = fixture();
    let key = fx
        .keys
        .generate("leaf", KeyAlgorithm::EcdsaP256)
        .expect("key");
    // `openssl req -subj /CN=x/O=y` puts CN first in the DER; RFC 4514 text lists RDNs
    // last first, so that is "O=y,CN=x".
    for subject in [
        "O=Example,CN=client-1",
        "CN=client-1,O=Example",
        "OU=Ops,CN=c,O=Example,OU=Dev",
    ] {
        let der = csr(&key, subject, &[]);
        let issued = issue_csr(&fx, "tls-client", &der).expect(subject);
        let cert = Certificate::from_der(&issued.record.der).expect("decodes");
        assert_eq!(
            cert.tbs_certificate().subject().to_der().expect("der"),
            name(subject).to_der().expect("der"),
            "{subject}"
        );
    }
    // Attributes the template drops leave the order of the others; a multi-valued RDN
    // stays one RDN.
    let issued = issue_csr(
        &fx,
        "tls-client",
        &csr(&key, "CN=a+OU=b,L=Nowhere,O=y", &[]),
    )
    .expect("multi");
    let cert = Certificate::from_der(&issued.record.der).expect("decodes");
    assert_eq!(
        cert.tbs_certificate().subject().to_der().expect("der"),
        name("CN=a+OU=b,O=y").to_der().expect("der")
    );
    // Fixed attributes come first (C, ST, L, O, OU, others, CN), then the request's.
    let mut profiles = BTreeMap::new();
    let mut p = ca_core::profile::built_in("tls-client").expect("built-in");
    p.subject.fixed.insert("O".into(), "Example Corp".into());
    p.subject.fixed.insert("C".into(), "DE".into());
    profiles.insert("fixed".to_string(), p);
    let fx = fixture_with(profiles, KeyAlgorithm::EcdsaP256);
    let key = fx
        .keys
        .generate("leaf", KeyAlgorithm::EcdsaP256)
        .expect("key");
    let issued =
        issue_csr(&fx, "fixed", &csr(&key, "O=Evil,OU=Dev,CN=client-2", &[])).expect("fixed");
    let cert = Certificate::from_der(&issued.record.der).expect("decodes");
    assert_eq!(
        cert.tbs_certificate().subject().to_string(),
        "OU=Dev,CN=client-2,O=Example Corp,C=DE"
    );
}

#[test]
fn a_root_subject_with_control_characters_is_refused() {
    // `privca init --root-subject` makes the root outside the issuance pipeline; the
    // subject string rules apply there too.
    let fx = fixture();
    let key = fx
        .keys
        .generate("root2", KeyAlgorithm::EcdsaP256)
        .expect("key");
    let before = cert_count(&fx);
    for subject in [
        name("CN=Root\u{0}CA"),
        raw_name("2.5.4.3", der::Tag::Utf8String, b"a\x1bb"),
    ] {
        let spec = RootSpec {
            name: "root2".into(),
            subject,
            validity_days: 10,
            scheme: None,
        };
        let e = create_root(&fx.store, &key, &spec, NOW, "test").expect_err("control");
        assert_eq!(e.kind(), ErrorKind::BadRequest, "{e}");
    }
    assert_eq!(cert_count(&fx), before);
}

/// A key whose backend is gone (a PKCS#11 token that went away).
#[derive(Debug)]
struct GoneKey(Arc<dyn PrivateKey>);

impl PrivateKey for GoneKey {
    fn label(&self) -> &str {
        self.0.label()
    }
    fn algorithm(&self) -> KeyAlgorithm {
        self.0.algorithm()
    }
    fn public_key_der(&self) -> &[u8] {
        self.0.public_key_der()
    }
    fn sign(&self, _: hsm::SignatureScheme, _: &[u8]) -> hsm::Result<Vec<u8>> {
        Err(hsm::Error::Unavailable(
            "no PKCS#11 token labelled \"t\"".into(),
        ))
    }
    fn decrypt_pkcs1v15(&self, _: &[u8]) -> hsm::Result<Vec<u8>> {
        Err(hsm::Error::Unavailable(
            "no PKCS#11 token labelled \"t\"".into(),
        ))
    }
    fn decrypt_oaep(&self, _: hsm::OaepHash, _: &[u8]) -> hsm::Result<Vec<u8>> {
        Err(hsm::Error::Unavailable(
            "no PKCS#11 token labelled \"t\"".into(),
        ))
    }
}

/// While the signing key's backend is unavailable, OCSP answers `tryLater` (RFC 6960
/// §2.3: retry) rather than `internalError`, and issuance fails with the retryable kind.
#[test]
fn an_unavailable_key_backend_is_try_later_and_retryable() {
    let ca = TestCa::builder()
        .root_subject("CN=Gone Root")
        .wrap_root_key(|key| Arc::new(GoneKey(key)))
        .build();
    let (auth, root_der) = (ca.auth, ca.root_der);
    let answer = auth.ocsp(&ocsp_request(&root_der, &[&[0x01]], None));
    assert_eq!(answer.status, ResponseStatus::TryLater);
    let e = auth
        .issue(&IssueRequest {
            spki_der: root_der_spki(&root_der),
            key_algorithm: KeyAlgorithm::EcdsaP256,
            ..issue_request("sub-ca", name("CN=Sub"), ca.root_key.as_ref())
        })
        .expect_err("cannot sign");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
}

fn root_der_spki(cert_der: &[u8]) -> Vec<u8> {
    Certificate::from_der(cert_der)
        .expect("cert")
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .expect("der")
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
                invalidity_date: None,
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

/// The staleness check walks the stored CRL and the store's revocations side by side
/// (both in serial order): an entry only the CRL still lists (a released hold) is
/// stepped over, and a revocation missing anywhere in the order is found.
#[test]
fn the_staleness_walk_steps_over_released_holds_and_finds_a_gap_anywhere() {
    let fx = fixture();
    let key = fx
        .keys
        .generate("leaf", KeyAlgorithm::EcdsaP256)
        .expect("key");
    let mut serials = Vec::new();
    for i in 0..12 {
        let name = format!("CN=n{i}.example.com");
        let issued = issue_csr(&fx, "tls-server", &csr(&key, &name, &[])).expect("issue");
        serials.push(issued.record.serial);
    }
    let audit = |action: &str, serial: &[u8]| store::AuditEvent {
        time: fx.auth.now(),
        action: action.into(),
        actor: "test".into(),
        subject: ca_core::asn1::serial_hex(serial),
        detail: String::new(),
    };
    // Eight revoked (one of them on hold), all on the CRL.
    for (i, serial) in serials.iter().take(8).enumerate() {
        let reason = if i == 3 { 6 } else { 1 };
        let revocation = store::Revocation {
            time: fx.auth.now(),
            reason,
            invalidity_date: None,
        };
        fx.store
            .revoke(serial, revocation, &audit("revoke", serial))
            .expect("revoke");
    }
    fx.auth.generate_crl("issuing", "test").expect("crl");
    assert_eq!(
        crl_serials(&fx.auth.current_crl("issuing").expect("crl").der).len(),
        8
    );
    assert!(!fx.auth.crl_is_stale("issuing").expect("stale?"));
    // The hold is released in the store only: the CRL lists more than the store holds.
    fx.store
        .release_hold(&serials[3], &audit("release", &serials[3]))
        .expect("release");
    assert!(!fx.auth.crl_is_stale("issuing").expect("stale?"));
    // Each of the other four, revoked in the store only, is found wherever it falls in
    // the serial order; a re-signed CRL is complete again.
    for serial in &serials[8..] {
        fx.clock.set(fx.auth.now() + 10);
        revoke_in_store_only(&fx, serial);
        assert!(fx.auth.crl_is_stale("issuing").expect("stale?"));
        let crl = fx
            .auth
            .republish_if_stale("issuing", "test")
            .expect("republish")
            .expect("re-signed");
        assert!(crl_serials(&crl.der).contains(serial));
        assert!(!crl_serials(&crl.der).contains(&serials[3]));
        assert!(!fx.auth.crl_is_stale("issuing").expect("stale?"));
    }
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
