//! The enrollment core in process: replay, held requests, the CA-profile ban, admitted
//! profiles, the withhold hook, server-side key generation and its algorithm choice;
//! and the one mapping of error kinds to each protocol's answer, row by row.

use std::sync::Arc;

use ca_core::csr::Csr;
use ca_core::enroll::{
    Authentication, Channel, EnrollOutcome, EnrollmentPolicy, EnrollmentRequest, GeneratedKey,
    HeldState, IssuanceHook, KeyGenerator, Refusal, Requester,
};
use ca_core::testing::TestCa;
use ca_core::{Authority, ErrorKind, FailInfo};
use hsm::{KeyAlgorithm, PrivateKey};
use store::Store;

struct Fx {
    store: Arc<dyn Store>,
    auth: Arc<Authority>,
}

fn fixture() -> Fx {
    let ca = TestCa::builder()
        .root_subject("CN=Enroll Test Root,O=Test")
        .build();
    Fx {
        store: ca.store,
        auth: ca.auth,
    }
}

fn new_key(alg: KeyAlgorithm) -> Arc<dyn PrivateKey> {
    ca_core::testing::soft_key("leaf", alg)
}

/// A verified CSR for `subject` with DNS SANs, signed by `key`.
fn csr(key: &Arc<dyn PrivateKey>, subject: &str, dns: &[&str]) -> Csr {
    let sans: Vec<_> = dns.iter().map(|d| ca_core::testing::dns(d)).collect();
    let der = ca_core::testing::csr(key.as_ref(), subject, &sans);
    ca_core::csr::parse(&der).expect("the CSR verifies")
}

fn policy(default_profile: &str) -> EnrollmentPolicy {
    let mut p = EnrollmentPolicy::new(Channel::Est("test".into()), default_profile);
    p.renewals = true;
    p
}

fn request<'a>(policy: &'a EnrollmentPolicy, csr: Csr) -> EnrollmentRequest<'a> {
    EnrollmentRequest {
        policy,
        requester: Requester {
            name: "est:test/alice".into(),
            authentication: Authentication::Password,
        },
        csr,
        renewing: None,
        replay_key: None,
        transaction_keys: Vec::new(),
        hold_key: None,
        profile: None,
        server_keygen: false,
        challenge: None,
        hook: None,
    }
}

fn certificates(fx: &Fx) -> u64 {
    fx.store.stats().expect("stats").certificates
}

fn issued(o: EnrollOutcome) -> ca_core::enroll::Enrolled {
    match o {
        EnrollOutcome::Issued(e) => e,
        other => panic!("not issued: {other:?}"),
    }
}

fn refused(o: EnrollOutcome) -> Refusal {
    match o {
        EnrollOutcome::Refused(r) => r,
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn every_error_kind_has_one_answer_per_protocol() {
    use ErrorKind as K;
    use FailInfo as F;
    let acme = |t: &str| format!("urn:ietf:params:acme:error:{t}");
    let table: [(K, Option<F>, u16, String); 15] = [
        (K::BadRequest, Some(F::BadRequest), 400, acme("malformed")),
        (
            K::BadSignature,
            Some(F::BadMessageCheck),
            400,
            acme("badCSR"),
        ),
        (
            K::UnsupportedAlgorithm,
            Some(F::BadAlg),
            400,
            acme("badSignatureAlgorithm"),
        ),
        (K::RefusedKey, Some(F::BadAlg), 403, acme("badPublicKey")),
        (
            K::CompromisedKey,
            Some(F::BadRequest),
            403,
            acme("badPublicKey"),
        ),
        (K::BadTime, Some(F::BadTime), 403, acme("malformed")),
        (
            K::UnknownCertificate,
            Some(F::BadCertId),
            403,
            acme("unauthorized"),
        ),
        (
            K::Unauthorized,
            Some(F::BadRequest),
            401,
            acme("unauthorized"),
        ),
        (
            K::PolicyRefused,
            Some(F::BadRequest),
            403,
            acme("rejectedIdentifier"),
        ),
        (K::NotFound, Some(F::BadRequest), 404, acme("malformed")),
        (K::Conflict, Some(F::BadRequest), 409, acme("malformed")),
        (K::Unavailable, None, 503, acme("serverInternal")),
        (
            K::Internal,
            Some(F::BadRequest),
            500,
            acme("serverInternal"),
        ),
        (
            K::RateLimited,
            Some(F::BadRequest),
            429,
            acme("rateLimited"),
        ),
        (K::Unsupported, Some(F::BadRequest), 501, acme("malformed")),
    ];
    assert_eq!(
        table.iter().map(|r| r.0).collect::<Vec<_>>(),
        ErrorKind::ALL.to_vec(),
        "the table lists every kind"
    );
    for (kind, scep, http, acme) in &table {
        let a = kind.answer();
        assert_eq!(a.scep, *scep, "{kind:?}: SCEP failInfo");
        assert_eq!(a.http_status, *http, "{kind:?}: HTTP status");
        assert_eq!(a.acme, acme, "{kind:?}: ACME problem type");
        // A precise kind answers HTTP like its class (the statuses clients saw before).
        assert_eq!(kind.class().answer().http_status, *http, "{kind:?}: class");
    }
    // The errors that carry the precise kinds keep their classes.
    let e = ca_core::Error::RefusedKey("weak".into());
    assert_eq!(e.kind(), ErrorKind::PolicyRefused);
    assert_eq!(e.precise_kind(), ErrorKind::RefusedKey);
    assert_eq!(e.answer().scep, Some(FailInfo::BadAlg));
    let e = ca_core::Error::BadSignature("bad".into());
    assert_eq!(e.kind(), ErrorKind::BadRequest);
    assert_eq!(e.answer().scep, Some(FailInfo::BadMessageCheck));
}

#[test]
fn a_replayed_request_gets_the_same_certificate() {
    let fx = fixture();
    let p = policy("device");
    let key = new_key(KeyAlgorithm::EcdsaP256);
    let mut r = request(&p, csr(&key, "CN=dev1", &[]));
    r.replay_key = Some("replay-1".into());
    r.transaction_keys = vec!["tx-1".into()];
    let first = issued(fx.auth.enroll(r));
    assert!(!first.replayed);
    assert_eq!(first.chain.len(), 1);
    let before = certificates(&fx);
    let mut again = request(&p, csr(&key, "CN=dev1", &[]));
    again.replay_key = Some("replay-1".into());
    let second = issued(fx.auth.enroll(again));
    assert!(second.replayed);
    assert_eq!(second.record.serial, first.record.serial);
    assert_eq!(certificates(&fx), before, "a replay issues nothing");
    // The transaction key finds it too (SCEP CertPoll).
    assert_eq!(
        fx.auth
            .find_transaction("tx-1")
            .expect("find")
            .expect("recorded")
            .serial,
        first.record.serial
    );
}

#[test]
fn a_held_request_is_pending_then_issued_or_rejected() {
    let fx = fixture();
    let mut p = policy("device");
    p.require_approval = true;
    p.hold_renewals = true;
    let key = new_key(KeyAlgorithm::EcdsaP256);
    let held = |cn: &str, hold_key: &str| {
        let mut r = request(&p, csr(&key, cn, &[]));
        r.hold_key = Some(hold_key.into());
        match fx.auth.enroll(r) {
            EnrollOutcome::Pending(h) => h,
            other => panic!("not held: {other:?}"),
        }
    };
    let h = held("CN=held1", "k1");
    assert_eq!(h.state, HeldState::Waiting);
    // Asked again: the same held request.
    assert_eq!(held("CN=held1", "k1"), h);
    assert_eq!(certificates(&fx), 1, "only the root");
    let approved = fx.auth.approve(h.id, "admin").expect("approve");
    let mut r = request(&p, csr(&key, "CN=held1", &[]));
    r.hold_key = Some("k1".into());
    let e = issued(fx.auth.enroll(r));
    assert_eq!(e.record.serial, approved.record.serial);
    // Rejected: the state and the note, typed.
    let h2 = held("CN=held2", "k2");
    fx.auth.reject(h2.id, "admin", "not ours").expect("reject");
    assert_eq!(
        held("CN=held2", "k2").state,
        HeldState::Rejected {
            note: Some("not ours".into())
        }
    );
    // A renewal is held as well only when the policy says so (EST: yes, SCEP: no).
    let mut r = request(&p, csr(&key, "CN=held1", &[]));
    r.renewing = Some(e.record.der.clone());
    r.hold_key = Some("k3".into());
    assert!(matches!(fx.auth.enroll(r), EnrollOutcome::Pending(_)));
    let mut scep_like = p.clone();
    scep_like.hold_renewals = false;
    let mut r = request(&scep_like, csr(&key, "CN=held1", &[]));
    r.renewing = Some(e.record.der.clone());
    r.hold_key = Some("k4".into());
    assert!(matches!(fx.auth.enroll(r), EnrollOutcome::Issued(_)));
}

#[test]
fn an_enrollment_channel_never_issues_a_ca_certificate() {
    let fx = fixture();
    let p = policy("sub-ca");
    let before = certificates(&fx);
    let key = new_key(KeyAlgorithm::EcdsaP256);
    let r = refused(fx.auth.enroll(request(&p, csr(&key, "CN=Sub CA", &[]))));
    assert_eq!(r.kind, ErrorKind::PolicyRefused);
    assert!(
        r.client_text.contains("CA certificates"),
        "{}",
        r.client_text
    );
    assert_eq!(certificates(&fx), before);
    assert!(p.validate(&fx.auth).is_err());
    assert!(policy("device").validate(&fx.auth).is_ok());
}

#[test]
fn only_admitted_profiles_are_issued() {
    let fx = fixture();
    let mut p = policy("device");
    let key = new_key(KeyAlgorithm::EcdsaP256);
    let mut r = request(&p, csr(&key, "CN=a.example.com", &["a.example.com"]));
    r.profile = Some("tls-server".into());
    let refusal = refused(fx.auth.enroll(r));
    assert_eq!(refusal.kind, ErrorKind::PolicyRefused);
    assert!(
        refusal.client_text.contains("not offered"),
        "{}",
        refusal.client_text
    );
    p.admitted_profiles.push("tls-server".into());
    let mut r = request(&p, csr(&key, "CN=a.example.com", &["a.example.com"]));
    r.profile = Some("tls-server".into());
    assert_eq!(issued(fx.auth.enroll(r)).record.profile, "tls-server");
}

struct Withhold;

impl IssuanceHook for Withhold {
    fn issued(&self, _cert_der: &[u8], _csr: &Csr) -> Result<(), Refusal> {
        Err(Refusal::new(
            ErrorKind::PolicyRefused,
            "the notification failed",
        ))
    }
}

#[test]
fn a_withheld_certificate_is_revoked_and_refused() {
    let fx = fixture();
    let p = policy("device");
    let key = new_key(KeyAlgorithm::EcdsaP256);
    let mut r = request(&p, csr(&key, "CN=withheld", &[]));
    r.hook = Some(&Withhold);
    r.replay_key = Some("w".into());
    let refusal = refused(fx.auth.enroll(r));
    assert_eq!(refusal.client_text, "the notification failed");
    let record = fx
        .auth
        .find_transaction("w")
        .expect("find")
        .expect("recorded");
    let revocation = record.revocation.expect("revoked");
    assert_eq!(revocation.reason, 5, "cessationOfOperation");
}

struct SoftGenerator;

impl KeyGenerator for SoftGenerator {
    fn generate(&self, algorithm: KeyAlgorithm) -> ca_core::Result<GeneratedKey> {
        let k = hsm::soft::generate_exportable(algorithm)?;
        Ok(GeneratedKey {
            pkcs8_der: k.pkcs8_der,
            spki_der: k.spki_der,
            algorithm: k.algorithm,
        })
    }
}

#[test]
fn server_side_keys_follow_the_request_or_the_profile() {
    let fx = fixture();
    let ec = new_key(KeyAlgorithm::EcdsaP256);
    let mut p = policy("device");
    // Without a generator injected the request cannot be served.
    let mut r = request(&p, csr(&ec, "CN=keygen", &[]));
    r.server_keygen = true;
    assert_eq!(refused(fx.auth.enroll(r)).kind, ErrorKind::Internal);
    fx.auth
        .set_key_generator(Arc::new(SoftGenerator))
        .expect("generator");
    // The profile admits the CSR's algorithm: a key of it.
    let mut r = request(&p, csr(&ec, "CN=keygen", &[]));
    r.server_keygen = true;
    let e = issued(fx.auth.enroll(r));
    let key = e.key.expect("a generated key");
    assert_eq!(key.algorithm, KeyAlgorithm::EcdsaP256);
    assert_ne!(key.spki_der, ec.public_key_der(), "not the CSR's key");
    // The profile admits RSA only (ra): the profile's first algorithm.
    p.admitted_profiles.push("ra".into());
    let mut r = request(&p, csr(&ec, "CN=keygen-ra", &[]));
    r.server_keygen = true;
    r.profile = Some("ra".into());
    let key = issued(fx.auth.enroll(r)).key.expect("a generated key");
    assert!(key.algorithm.is_rsa(), "{:?}", key.algorithm);
    // A policy may fix the algorithm.
    p.keygen_algorithm = Some(KeyAlgorithm::EcdsaP384);
    let mut r = request(&p, csr(&ec, "CN=keygen-384", &[]));
    r.server_keygen = true;
    let key = issued(fx.auth.enroll(r)).key.expect("a generated key");
    assert_eq!(key.algorithm, KeyAlgorithm::EcdsaP384);
}

#[test]
fn the_renewal_rule() {
    let fx = fixture();
    let p = policy("tls-server");
    let key = new_key(KeyAlgorithm::EcdsaP256);
    let old = issued(fx.auth.enroll(request(
        &p,
        csr(
            &key,
            "CN=r.example.com",
            &["r.example.com", "s.example.com"],
        ),
    )))
    .record;
    let renew = |subject: &str, dns: &[&str]| {
        let mut r = request(&p, csr(&new_key(KeyAlgorithm::EcdsaP256), subject, dns));
        r.renewing = Some(old.der.clone());
        fx.auth.enroll(r)
    };
    // Same names in another order, new key: issued.
    issued(renew(
        "CN=r.example.com",
        &["s.example.com", "r.example.com"],
    ));
    let kind = |o: EnrollOutcome| refused(o).kind;
    assert_eq!(
        kind(renew("CN=r.example.com", &["r.example.com"])),
        ErrorKind::PolicyRefused
    );
    assert_eq!(
        kind(renew(
            "CN=x.example.com",
            &["r.example.com", "s.example.com"]
        )),
        ErrorKind::PolicyRefused
    );
    let mut no_renewals = p.clone();
    no_renewals.renewals = false;
    let mut r = request(
        &no_renewals,
        csr(
            &key,
            "CN=r.example.com",
            &["r.example.com", "s.example.com"],
        ),
    );
    r.renewing = Some(old.der.clone());
    assert_eq!(kind(fx.auth.enroll(r)), ErrorKind::PolicyRefused);
    fx.auth
        .revoke(&old.serial, ca_core::RevocationReason::Superseded, "admin")
        .expect("revoke");
    assert_eq!(
        kind(renew(
            "CN=r.example.com",
            &["r.example.com", "s.example.com"]
        )),
        ErrorKind::UnknownCertificate
    );
}

/// What an observer was told, one line per event.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<String>>);

impl ca_core::observe::Observer for Recorder {
    fn issued(&self, channel: &str, profile: &str) {
        self.push(format!("issued {channel} {profile}"));
    }
    fn refused(&self, channel: &str, profile: &str, kind: ErrorKind) {
        self.push(format!("refused {channel} {profile} {}", kind.label()));
    }
    fn unauthenticated(&self, action: &str) {
        self.push(format!("unauthenticated {action}"));
    }
    fn store_commit(&self, _took: std::time::Duration) {
        self.push("commit".into());
    }
}

impl Recorder {
    fn push(&self, s: String) {
        self.0.lock().expect("lock").push(s);
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().expect("lock"))
    }
}

/// The observer (the server's metrics) hears of every issuance once, not of replays,
/// of refusals with their kind, and a client-named profile this CA lacks is "other".
#[test]
fn the_observer_counts_issuances_and_refusals_with_bounded_labels() {
    let fx = fixture();
    let rec = Arc::new(Recorder::default());
    fx.auth.set_observer(rec.clone()).expect("set observer");
    assert!(fx.auth.set_observer(rec.clone()).is_err(), "once only");
    let p = policy("device");
    let key = new_key(KeyAlgorithm::EcdsaP256);
    let mut r = request(&p, csr(&key, "CN=dev1", &[]));
    r.replay_key = Some("replay-obs".into());
    issued(fx.auth.enroll(r));
    assert_eq!(rec.take(), ["commit", "issued est device"]);
    let mut again = request(&p, csr(&key, "CN=dev1", &[]));
    again.replay_key = Some("replay-obs".into());
    assert!(issued(fx.auth.enroll(again)).replayed);
    assert!(rec.take().is_empty(), "a replay is not an issuance");
    let mut r = request(&p, csr(&key, "CN=dev2", &[]));
    r.profile = Some("tls-server".into());
    refused(fx.auth.enroll(r));
    assert_eq!(rec.take(), ["refused est tls-server policy_refused"]);
    let mut r = request(&p, csr(&key, "CN=dev3", &[]));
    r.profile = Some("serial-0123-from-the-client".into());
    refused(fx.auth.enroll(r));
    assert_eq!(rec.take(), ["refused est other policy_refused"]);
    fx.auth.observe_refusal(&p, ErrorKind::UnsupportedAlgorithm);
    assert_eq!(rec.take(), ["refused est device unsupported_algorithm"]);
    fx.auth
        .note_unauthenticated("est-refused", "127.0.0.1", "wrong password");
    assert_eq!(rec.take(), ["unauthenticated est-refused"]);
    // The reason labels: one per kind, snake_case.
    let labels: std::collections::BTreeSet<_> = ErrorKind::ALL.iter().map(|k| k.label()).collect();
    assert_eq!(labels.len(), ErrorKind::ALL.len());
    assert!(
        labels
            .iter()
            .all(|l| l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
    );
}

/// A request with a key on the keyCompromise blocklist is refused when it arrives at a
/// channel that holds requests for approval: nothing is held for an administrator.
#[test]
fn a_blocked_key_is_refused_on_arrival_not_held() {
    let fx = fixture();
    let mut p = policy("device");
    let key = new_key(KeyAlgorithm::EcdsaP256);
    let first = issued(fx.auth.enroll(request(&p, csr(&key, "CN=lost", &[]))));
    fx.auth
        .revoke(
            &first.record.serial,
            ca_core::RevocationReason::KeyCompromise,
            "test",
        )
        .expect("revoke");
    p.require_approval = true;
    let mut r = request(&p, csr(&key, "CN=lost-again", &[]));
    r.hold_key = Some("lost-again".into());
    let refusal = refused(fx.auth.enroll(r));
    assert_eq!(
        refusal.error.as_ref().map(|e| e.precise_kind()),
        Some(ErrorKind::CompromisedKey),
        "{refusal:?}"
    );
    assert!(
        fx.store.list_pending(None).expect("pending").is_empty(),
        "nothing held"
    );
    // Another key is held as usual.
    let other = new_key(KeyAlgorithm::EcdsaP256);
    let mut r = request(&p, csr(&other, "CN=new-key", &[]));
    r.hold_key = Some("new-key".into());
    assert!(matches!(fx.auth.enroll(r), EnrollOutcome::Pending(_)));
}
