//! The SCEP service end to end in-process: our own client builds requests, the endpoint
//! answers, the client verifies and decrypts the CertRep. Real clients are in
//! tests/tests/e2e_scep.rs; this is the second check and covers every refusal.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ca_core::testing::TestCa;
use ca_core::{Authority, KeyWithCert};
use hsm::{KeyAlgorithm, PrivateKey, Secret};
use scep::challenge::{
    BoxFuture, ChallengeMethod, EnrollmentContext, FailInfo, Rejection, Verdict,
};
use scep::client::{self, Identity};
use scep::codec::{ContentCipher, MessageType, PkiStatus};
use scep::config::{ChallengeConfig, EndpointConfig};
use scep::methods::{OneTimeChallenge, StaticChallenge};
use scep::service::Endpoint;

struct Fx {
    ca: TestCa,
    auth: Arc<Authority>,
    ra: KeyWithCert,
    store: Arc<dyn store::Store>,
}

fn fixture() -> Fx {
    let ca = TestCa::builder()
        .root_subject("CN=SCEP Test Root,O=Test")
        .ra("CN=SCEP Test RA,O=Test")
        .build();
    Fx {
        auth: ca.auth.clone(),
        ra: ca.ra.clone().expect("the root's RA"),
        store: ca.store.clone(),
        ca,
    }
}

fn endpoint_config(challenge: ChallengeConfig) -> EndpointConfig {
    toml::from_str::<EndpointConfig>("profile = \"device\"\nchallenge = { method = \"none\" }")
        .map(|mut c| {
            c.challenge = challenge;
            c
        })
        .unwrap()
}

fn static_endpoint(fx: &Fx, tweak: impl FnOnce(&mut EndpointConfig)) -> Arc<Endpoint> {
    let mut cfg = endpoint_config(ChallengeConfig::Static { accounts: vec![] });
    cfg.challenge = ChallengeConfig::None; // accounts are given to the method directly
    tweak(&mut cfg);
    let method = StaticChallenge::new(
        "devices",
        vec![("mdm".into(), Secret::new(b"s3cret".to_vec()), None)],
    );
    Arc::new(Endpoint::new("devices", cfg, fx.auth.clone(), None, Arc::new(method)).unwrap())
}

struct Requester {
    key: Arc<dyn PrivateKey>,
    cert: Vec<u8>,
}

fn requester(cn: &str) -> Requester {
    let key: Arc<dyn PrivateKey> =
        Arc::new(hsm::soft::SoftKey::generate_ephemeral("client", KeyAlgorithm::Rsa2048).unwrap());
    let cert = client::self_signed(key.as_ref(), &format!("CN={cn}")).unwrap();
    Requester { key, cert }
}

impl Requester {
    fn id(&self) -> Identity<'_> {
        Identity {
            key: self.key.as_ref(),
            cert_der: &self.cert,
        }
    }
}

async fn enroll(
    ep: &Arc<Endpoint>,
    fx: &Fx,
    r: &Requester,
    cn: &str,
    challenge: Option<&str>,
    cipher: ContentCipher,
    mt: MessageType,
) -> (client::Reply, Vec<u8>) {
    let csr = client::csr(r.key.as_ref(), &format!("CN={cn}"), challenge).unwrap();
    let tid = client::transaction_id_for(r.key.as_ref());
    let req = client::build_request(mt, &tid, &csr, r.id(), &fx.ra.cert_der, cipher).unwrap();
    let rep = ep.pki_operation(req.der.clone()).await.unwrap();
    let reply = client::read_reply(&rep, r.id()).unwrap();
    assert_eq!(reply.transaction_id, tid);
    assert_eq!(reply.recipient_nonce, req.sender_nonce);
    assert_eq!(reply.sender_nonce.len(), 16);
    (reply, req.der)
}

fn audit_count(fx: &Fx) -> u64 {
    fx.store.stats().unwrap().audit_entries
}

#[tokio::test]
async fn static_challenge_enrolls_with_every_cipher_and_replays_return_the_same_certificate() {
    let fx = fixture();
    let ep = static_endpoint(&fx, |c| c.allow_des = true);
    for cipher in [
        ContentCipher::Aes128,
        ContentCipher::Aes192,
        ContentCipher::Aes256,
        ContentCipher::Des3,
        ContentCipher::Des,
    ] {
        let r = requester("dev1");
        let (reply, req) = enroll(
            &ep,
            &fx,
            &r,
            "dev1",
            Some("s3cret"),
            cipher,
            MessageType::PkcsReq,
        )
        .await;
        assert_eq!(reply.status, PkiStatus::Success, "{cipher:?}");
        let cert = x509_cert::Certificate::from_der(&reply.certs[0]).unwrap();
        use der::{Decode, Encode};
        assert_eq!(
            cert.tbs_certificate()
                .subject_public_key_info()
                .to_der()
                .unwrap(),
            r.key.public_key_der()
        );
        // The same request again: the same certificate, not a second one.
        let before = fx.store.stats().unwrap().certificates;
        let rep2 = ep.pki_operation(req).await.unwrap();
        let reply2 = client::read_reply(&rep2, r.id()).unwrap();
        assert_eq!(reply2.certs[0], reply.certs[0]);
        assert_eq!(fx.store.stats().unwrap().certificates, before);
    }
}

#[tokio::test]
async fn refusals_answer_failure_and_are_audited() {
    let fx = fixture();
    let ep = static_endpoint(&fx, |_| {});
    let r = requester("dev2");

    // Wrong and missing challenge.
    for ch in [Some("wrong"), None] {
        let before = audit_count(&fx);
        let (reply, _) = enroll(
            &ep,
            &fx,
            &r,
            "dev2",
            ch,
            ContentCipher::Aes128,
            MessageType::PkcsReq,
        )
        .await;
        assert!(
            matches!(reply.status, PkiStatus::Failure(FailInfo::BadRequest, _)),
            "{:?}",
            reply.status
        );
        // Unauthenticated: counted for the summary entry, not one durable entry each.
        assert_eq!(
            audit_count(&fx),
            before,
            "a wrong challenge wrote an audit entry"
        );
    }
    // Single DES is off by default.
    let (reply, _) = enroll(
        &ep,
        &fx,
        &r,
        "dev2",
        Some("s3cret"),
        ContentCipher::Des,
        MessageType::PkcsReq,
    )
    .await;
    assert!(matches!(
        reply.status,
        PkiStatus::Failure(FailInfo::BadAlg, _)
    ));

    // A renewal request signed by a self-signed certificate.
    let (reply, _) = enroll(
        &ep,
        &fx,
        &r,
        "dev2",
        Some("s3cret"),
        ContentCipher::Aes128,
        MessageType::RenewalReq,
    )
    .await;
    assert!(matches!(
        reply.status,
        PkiStatus::Failure(FailInfo::BadCertId, _)
    ));

    // Proof of possession: a CSR for another key.
    let other = requester("other");
    let csr = client::csr(other.key.as_ref(), "CN=dev2", Some("s3cret")).unwrap();
    let req = client::build_request(
        MessageType::PkcsReq,
        "t-pop",
        &csr,
        r.id(),
        &fx.ra.cert_der,
        ContentCipher::Aes128,
    )
    .unwrap();
    let reply = client::read_reply(&ep.pki_operation(req.der).await.unwrap(), r.id()).unwrap();
    assert!(matches!(
        reply.status,
        PkiStatus::Failure(FailInfo::BadRequest, _)
    ));

    // A corrupt signature: flip a byte of the signature value at the end.
    let csr = client::csr(r.key.as_ref(), "CN=dev2", Some("s3cret")).unwrap();
    let mut req = client::build_request(
        MessageType::PkcsReq,
        "t-sig",
        &csr,
        r.id(),
        &fx.ra.cert_der,
        ContentCipher::Aes128,
    )
    .unwrap()
    .der;
    let n = req.len();
    req[n - 5] ^= 0x55;
    let reply = client::read_reply(&ep.pki_operation(req).await.unwrap(), r.id()).unwrap();
    assert!(matches!(
        reply.status,
        PkiStatus::Failure(FailInfo::BadMessageCheck, _)
    ));

    // An envelope for someone else's certificate.
    let req = client::build_request(
        MessageType::PkcsReq,
        "t-env",
        &csr,
        r.id(),
        &other.cert,
        ContentCipher::Aes128,
    )
    .unwrap();
    let reply = client::read_reply(&ep.pki_operation(req.der).await.unwrap(), r.id()).unwrap();
    assert!(matches!(
        reply.status,
        PkiStatus::Failure(FailInfo::BadMessageCheck, _)
    ));

    // Garbage: no CertRep can be built.
    for body in [
        vec![],
        vec![0x30, 0x03, 0x02, 0x01, 0x01],
        vec![0xff; 1000],
        vec![0x30; 200_000],
    ] {
        let before = audit_count(&fx);
        assert!(matches!(
            ep.pki_operation(body).await,
            Err(scep::Error::Malformed(_))
        ));
        assert_eq!(audit_count(&fx), before, "garbage wrote an audit entry");
    }
    assert_eq!(
        fx.store.stats().unwrap().certificates,
        2,
        "root + RA only: nothing was issued"
    );
    // Every refusal above is in one summary entry of the chain.
    let before = audit_count(&fx);
    let seq = fx.auth.flush_refusals(true).unwrap().expect("a summary");
    assert_eq!(audit_count(&fx), before + 1);
    let summary = &fx.store.audit_entries(seq, 1).unwrap()[0].event;
    assert_eq!(summary.action, "unauthenticated-refusals");
    let total: u64 = summary
        .detail
        .strip_prefix("total=")
        .and_then(|d| d.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // At least the two challenge refusals and the four garbage messages.
    assert!(total >= 6, "{}", summary.detail);
    assert!(
        summary.detail.contains("scep-refused from scep:"),
        "{}",
        summary.detail
    );
    assert_eq!(fx.store.verify_audit().unwrap().first_bad, None);
}

#[tokio::test]
async fn one_time_challenges_work_once() {
    let fx = fixture();
    let cfg = endpoint_config(ChallengeConfig::OneTime {
        default_ttl_seconds: 60,
    });
    let ep = Arc::new(
        Endpoint::new(
            "otp",
            cfg,
            fx.auth.clone(),
            None,
            Arc::new(OneTimeChallenge::new(fx.auth.clone())),
        )
        .unwrap(),
    );
    let ch = fx.auth.create_challenge("otp", 60, "admin").unwrap();
    let wrong_endpoint = fx.auth.create_challenge("elsewhere", 60, "admin").unwrap();
    let r = requester("otp1");
    let (reply, _) = enroll(
        &ep,
        &fx,
        &r,
        "otp1",
        Some(&ch.challenge),
        ContentCipher::Aes128,
        MessageType::PkcsReq,
    )
    .await;
    assert_eq!(reply.status, PkiStatus::Success);
    // A new transaction (another key) with the used challenge is refused.
    let r2 = requester("otp2");
    let (reply, _) = enroll(
        &ep,
        &fx,
        &r2,
        "otp2",
        Some(&ch.challenge),
        ContentCipher::Aes128,
        MessageType::PkcsReq,
    )
    .await;
    match reply.status {
        PkiStatus::Failure(FailInfo::BadRequest, Some(t)) => {
            assert!(t.contains("already used"), "{t}")
        }
        s => panic!("{s:?}"),
    }
    let (reply, _) = enroll(
        &ep,
        &fx,
        &r2,
        "otp2",
        Some(&wrong_endpoint.challenge),
        ContentCipher::Aes128,
        MessageType::PkcsReq,
    )
    .await;
    assert!(matches!(
        reply.status,
        PkiStatus::Failure(FailInfo::BadRequest, _)
    ));
}

#[tokio::test]
async fn renewals_poll_getcert_and_getcrl() {
    let fx = fixture();
    let ep = static_endpoint(&fx, |_| {});
    let r = requester("dev3");
    let (reply, _) = enroll(
        &ep,
        &fx,
        &r,
        "dev3",
        Some("s3cret"),
        ContentCipher::Aes128,
        MessageType::PkcsReq,
    )
    .await;
    assert_eq!(reply.status, PkiStatus::Success);
    let issued = reply.certs[0].clone();

    // CertPoll for the completed transaction returns the certificate.
    use der::{Decode, Encode};
    let root = x509_cert::Certificate::from_der(&fx.auth.ca("root").unwrap().cert_der).unwrap();
    let root_name = root.tbs_certificate().subject().to_der().unwrap();
    let ias = client::issuer_and_subject(&root_name, "CN=dev3").unwrap();
    let tid = client::transaction_id_for(r.key.as_ref());
    let req = client::build_request(
        MessageType::CertPoll,
        &tid,
        &ias,
        r.id(),
        &fx.ra.cert_der,
        ContentCipher::Aes128,
    )
    .unwrap();
    let reply = client::read_reply(&ep.pki_operation(req.der).await.unwrap(), r.id()).unwrap();
    assert_eq!(reply.certs.first(), Some(&issued));

    // Renewal with RenewalReq and with PKCSReq, both signed by the issued certificate.
    for mt in [MessageType::RenewalReq, MessageType::PkcsReq] {
        let new_key: Arc<dyn PrivateKey> =
            Arc::new(hsm::soft::SoftKey::generate_ephemeral("n", KeyAlgorithm::Rsa2048).unwrap());
        let csr = client::csr(new_key.as_ref(), "CN=dev3", None).unwrap();
        let id = Identity {
            key: r.key.as_ref(),
            cert_der: &issued,
        };
        let req = client::build_request(
            mt,
            &format!("renew-{mt:?}"),
            &csr,
            id,
            &fx.ra.cert_der,
            ContentCipher::Des3,
        )
        .unwrap();
        let reply = client::read_reply(&ep.pki_operation(req.der).await.unwrap(), id).unwrap();
        assert_eq!(reply.status, PkiStatus::Success, "{mt:?}");
        assert_ne!(reply.certs[0], issued);
        // A renewal may not change the subject.
        let csr = client::csr(new_key.as_ref(), "CN=someone-else", None).unwrap();
        let req = client::build_request(
            mt,
            &format!("renew2-{mt:?}"),
            &csr,
            id,
            &fx.ra.cert_der,
            ContentCipher::Aes128,
        )
        .unwrap();
        let reply = client::read_reply(&ep.pki_operation(req.der).await.unwrap(), id).unwrap();
        assert!(matches!(
            reply.status,
            PkiStatus::Failure(FailInfo::BadRequest, _)
        ));
    }

    // GetCert by issuer and serial; an unknown serial is badCertId.
    let cert = x509_cert::Certificate::from_der(&issued).unwrap();
    let ias = scep::ber::seq(&[
        &root_name,
        &cert.tbs_certificate().serial_number().to_der().unwrap(),
    ]);
    let req = client::build_request(
        MessageType::GetCert,
        "gc",
        &ias,
        r.id(),
        &fx.ra.cert_der,
        ContentCipher::Aes128,
    )
    .unwrap();
    let reply = client::read_reply(&ep.pki_operation(req.der).await.unwrap(), r.id()).unwrap();
    assert_eq!(reply.certs, vec![issued.clone()]);
    let bad = scep::ber::seq(&[&root_name, &scep::ber::small_int(7)]);
    let req = client::build_request(
        MessageType::GetCert,
        "gc2",
        &bad,
        r.id(),
        &fx.ra.cert_der,
        ContentCipher::Aes128,
    )
    .unwrap();
    let reply = client::read_reply(&ep.pki_operation(req.der).await.unwrap(), r.id()).unwrap();
    assert!(matches!(
        reply.status,
        PkiStatus::Failure(FailInfo::BadCertId, _)
    ));

    // GetCRL.
    let req = client::build_request(
        MessageType::GetCrl,
        "crl",
        &ias,
        r.id(),
        &fx.ra.cert_der,
        ContentCipher::Aes128,
    )
    .unwrap();
    let reply = client::read_reply(&ep.pki_operation(req.der).await.unwrap(), r.id()).unwrap();
    assert_eq!(reply.crls.len(), 1);
    <x509_cert::crl::CertificateList>::from_der(&reply.crls[0]).unwrap();
}

/// A method that accepts, then withholds the certificate in `issued` (like a failed
/// Intune successNotification), and records `failed` calls.
struct Withholding {
    failed: AtomicBool,
}

impl ChallengeMethod for Withholding {
    fn name(&self) -> &'static str {
        "withholding"
    }
    fn verify<'a>(&'a self, _ctx: &'a EnrollmentContext) -> BoxFuture<'a, Verdict> {
        Box::pin(async {
            Verdict::Accept(scep::challenge::Acceptance {
                profile: None,
                requester: "test".into(),
                spend: None,
            })
        })
    }
    fn issued<'a>(
        &'a self,
        _ctx: &'a EnrollmentContext,
        _der: &'a [u8],
    ) -> BoxFuture<'a, Result<(), Rejection>> {
        Box::pin(async { Err(Rejection::bad_request("notification failed")) })
    }
    fn failed<'a>(&'a self, _ctx: &'a EnrollmentContext, _why: &'a Rejection) -> BoxFuture<'a, ()> {
        self.failed.store(true, Ordering::SeqCst);
        Box::pin(async {})
    }
}

#[tokio::test]
async fn a_withheld_certificate_is_revoked_and_not_delivered() {
    let fx = fixture();
    let m = Arc::new(Withholding {
        failed: AtomicBool::new(false),
    });
    let ep = Arc::new(
        Endpoint::new(
            "w",
            endpoint_config(ChallengeConfig::None),
            fx.auth.clone(),
            None,
            m.clone(),
        )
        .unwrap(),
    );
    let r = requester("dev4");
    let (reply, _) = enroll(
        &ep,
        &fx,
        &r,
        "dev4",
        Some("x"),
        ContentCipher::Aes128,
        MessageType::PkcsReq,
    )
    .await;
    assert!(matches!(
        reply.status,
        PkiStatus::Failure(FailInfo::BadRequest, _)
    ));
    assert!(reply.certs.is_empty());
    assert!(m.failed.load(Ordering::SeqCst));
    let st = fx.store.stats().unwrap();
    assert_eq!((st.certificates, st.revoked), (3, 1));
}

#[tokio::test]
async fn getcacert_puts_the_ra_first_and_caps_are_advertised() {
    let fx = fixture();
    let ep = static_endpoint(&fx, |_| {});
    let a = ep.ca_cert().unwrap();
    assert_eq!(a.content_type, "application/x-x509-ca-ra-cert");
    let (certs, _) = scep::codec::certs_from_degenerate(&a.body).unwrap();
    assert_eq!(
        certs,
        vec![
            fx.ra.cert_der.clone(),
            fx.auth.ca("root").unwrap().cert_der.clone()
        ]
    );
    let caps = ep.caps();
    for c in [
        "AES",
        "DES3",
        "POSTPKIOperation",
        "Renewal",
        "SHA-1",
        "SHA-256",
        "SHA-512",
        "SCEPStandard",
    ] {
        assert!(caps.lines().any(|l| l == c), "{c}");
    }
    assert!(!caps.contains("GetNextCACert"));
}

#[tokio::test]
async fn approval_holds_then_polls_get_the_certificate_or_a_failure() {
    use der::{Decode, Encode};
    let fx = fixture();
    let ep = static_endpoint(&fx, |c| c.require_approval = true);
    let root = x509_cert::Certificate::from_der(&fx.auth.ca("root").unwrap().cert_der).unwrap();
    let root_name = root.tbs_certificate().subject().to_der().unwrap();
    let poll = |r: &Requester, cn: &str| {
        let ias = client::issuer_and_subject(&root_name, cn).unwrap();
        let tid = client::transaction_id_for(r.key.as_ref());
        client::build_request(
            MessageType::CertPoll,
            &tid,
            &ias,
            r.id(),
            &fx.ra.cert_der,
            ContentCipher::Aes128,
        )
        .unwrap()
    };

    let a = requester("held1");
    let (reply, again) = enroll(
        &ep,
        &fx,
        &a,
        "held1",
        Some("s3cret"),
        ContentCipher::Aes128,
        MessageType::PkcsReq,
    )
    .await;
    assert_eq!(reply.status, PkiStatus::Pending);
    // The same PKCSReq again, and a poll: still pending, nothing issued, one request held.
    let reply = client::read_reply(&ep.pki_operation(again).await.unwrap(), a.id()).unwrap();
    assert_eq!(reply.status, PkiStatus::Pending);
    let reply = client::read_reply(
        &ep.pki_operation(poll(&a, "CN=held1").der).await.unwrap(),
        a.id(),
    )
    .unwrap();
    assert_eq!(reply.status, PkiStatus::Pending);
    let held = fx.auth.list_held(None).unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(fx.store.stats().unwrap().certificates, 2);

    // Approved: the next poll gets the certificate for the held key.
    fx.auth.approve(held[0].id, "admin").unwrap();
    let reply = client::read_reply(
        &ep.pki_operation(poll(&a, "CN=held1").der).await.unwrap(),
        a.id(),
    )
    .unwrap();
    assert_eq!(reply.status, PkiStatus::Success);
    let cert = x509_cert::Certificate::from_der(&reply.certs[0]).unwrap();
    assert_eq!(
        cert.tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .unwrap(),
        a.key.public_key_der()
    );

    // Rejected: the next poll gets FAILURE with the reason.
    let b = requester("held2");
    let (reply, _) = enroll(
        &ep,
        &fx,
        &b,
        "held2",
        Some("s3cret"),
        ContentCipher::Aes128,
        MessageType::PkcsReq,
    )
    .await;
    assert_eq!(reply.status, PkiStatus::Pending);
    let id = fx
        .auth
        .list_held(None)
        .unwrap()
        .iter()
        .find(|h| h.id != held[0].id)
        .unwrap()
        .id;
    fx.auth.reject(id, "admin", "unknown device").unwrap();
    let reply = client::read_reply(
        &ep.pki_operation(poll(&b, "CN=held2").der).await.unwrap(),
        b.id(),
    )
    .unwrap();
    match reply.status {
        PkiStatus::Failure(FailInfo::BadRequest, Some(t)) => {
            assert!(t.contains("unknown device"), "{t}")
        }
        s => panic!("{s:?}"),
    }
    // A wrong challenge is refused before anything is held.
    let c = requester("held3");
    let (reply, _) = enroll(
        &ep,
        &fx,
        &c,
        "held3",
        Some("nope"),
        ContentCipher::Aes128,
        MessageType::PkcsReq,
    )
    .await;
    assert!(matches!(
        reply.status,
        PkiStatus::Failure(FailInfo::BadRequest, _)
    ));
    assert_eq!(fx.auth.list_held(None).unwrap().len(), 2);
}

#[tokio::test]
async fn a_new_request_in_the_same_transaction_gets_a_new_certificate() {
    // micromdm's transactionID is derived from the key: a second enrollment with the same
    // key but another CSR is a new request, not a replay.
    let fx = fixture();
    let ep = static_endpoint(&fx, |_| {});
    let r = requester("same");
    let (a, _) = enroll(
        &ep,
        &fx,
        &r,
        "same-a",
        Some("s3cret"),
        ContentCipher::Aes128,
        MessageType::PkcsReq,
    )
    .await;
    let (b, _) = enroll(
        &ep,
        &fx,
        &r,
        "same-b",
        Some("s3cret"),
        ContentCipher::Aes128,
        MessageType::PkcsReq,
    )
    .await;
    assert_eq!(
        (a.status.clone(), b.status.clone()),
        (PkiStatus::Success, PkiStatus::Success)
    );
    assert_ne!(a.certs[0], b.certs[0]);
}

/// A PKCSReq whose SignerInfo uses MD5, signed by `openssl pkeyutl` (our keys never sign
/// with MD5).
fn md5_request(fx: &Fx, dir: &std::path::Path) -> (Vec<u8>, Requester) {
    use std::process::Command;
    let pem = dir.join("k.pem");
    assert!(
        Command::new("openssl")
            .args(["genrsa", "-out"])
            .arg(&pem)
            .arg("2048")
            .output()
            .unwrap()
            .status
            .success()
    );
    let der = Command::new("openssl")
        .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"])
        .arg(&pem)
        .output()
        .unwrap()
        .stdout;
    let key: Arc<dyn PrivateKey> = Arc::new(hsm::soft::SoftKey::from_pkcs8("md5", &der).unwrap());
    let cert = client::self_signed(key.as_ref(), "CN=md5").unwrap();
    let csr = client::csr(key.as_ref(), "CN=md5", Some("s3cret")).unwrap();
    let env = scep::codec::envelope(&csr, &fx.ra.cert_der, ContentCipher::Aes128).unwrap();
    let nonce = scep::codec::fresh_nonce();
    let msg = scep::codec::sign_message_with(
        Some(&env),
        &scep::codec::OutAttributes {
            message_type: MessageType::PkcsReq,
            transaction_id: "md5",
            sender_nonce: &nonce,
            recipient_nonce: None,
            status: None,
        },
        &cert,
        scep::codec::DigestAlg::Md5,
        &[],
        |tbs| {
            let h = dir.join("h.bin");
            std::fs::write(&h, md5_digest(tbs)).unwrap();
            let out = Command::new("openssl")
                .args(["pkeyutl", "-sign", "-pkeyopt", "digest:md5", "-inkey"])
                .arg(&pem)
                .arg("-in")
                .arg(&h)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            Ok(out.stdout)
        },
    )
    .unwrap();
    (msg, Requester { key, cert })
}

fn md5_digest(data: &[u8]) -> Vec<u8> {
    let out = std::process::Command::new("openssl")
        .args(["dgst", "-md5", "-binary"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(data)?;
            c.wait_with_output()
        })
        .unwrap();
    out.stdout
}

#[tokio::test]
async fn md5_only_where_enabled() {
    let fx = fixture();
    let dir = tempfile::tempdir().unwrap();
    let (msg, r) = md5_request(&fx, dir.path());
    let off = static_endpoint(&fx, |_| {});
    let reply = client::read_reply(&off.pki_operation(msg.clone()).await.unwrap(), r.id()).unwrap();
    assert!(
        matches!(reply.status, PkiStatus::Failure(FailInfo::BadAlg, _)),
        "{:?}",
        reply.status
    );
    let on = static_endpoint(&fx, |c| c.allow_md5 = true);
    let reply = client::read_reply(&on.pki_operation(msg.clone()).await.unwrap(), r.id()).unwrap();
    assert_eq!(reply.status, PkiStatus::Success);
    // A corrupted MD5 signature still fails.
    let mut bad = msg;
    let n = bad.len();
    bad[n - 3] ^= 1;
    let reply = client::read_reply(&on.pki_operation(bad).await.unwrap(), r.id()).unwrap();
    assert!(matches!(
        reply.status,
        PkiStatus::Failure(FailInfo::BadMessageCheck, _)
    ));
}

#[tokio::test]
async fn get_next_ca_cert_is_signed_by_the_ra() {
    let fx = fixture();
    let ep = static_endpoint(&fx, |c| c.next_ca = Some("root".into()));
    assert!(ep.caps().lines().any(|l| l == "GetNextCACert"));
    let body = ep.next_ca_cert().await.unwrap().unwrap();
    let v = scep::codec::verify_signed(&body, &Default::default()).unwrap();
    assert!(v.verified.is_ok());
    assert_eq!(v.signer.cert_der, fx.ra.cert_der);
    let (certs, _) = scep::codec::certs_from_degenerate(v.content.as_deref().unwrap()).unwrap();
    assert_eq!(certs.last(), Some(&fx.auth.ca("root").unwrap().cert_der));
    assert!(
        static_endpoint(&fx, |_| {})
            .next_ca_cert()
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn oaep_key_transport_and_sha384_sha512_signatures() {
    use scep::codec::{DigestAlg, KeyTransport};
    let fx = fixture();
    let ep = static_endpoint(&fx, |_| {});
    for (i, (transport, digest)) in [
        (KeyTransport::OaepSha1, DigestAlg::Sha256),
        (KeyTransport::OaepSha256, DigestAlg::Sha384),
        (KeyTransport::Pkcs1v15, DigestAlg::Sha512),
    ]
    .into_iter()
    .enumerate()
    {
        let r = requester(&format!("o{i}"));
        let csr = client::csr(r.key.as_ref(), &format!("CN=o{i}"), Some("s3cret")).unwrap();
        let req = client::build_request_with(
            MessageType::PkcsReq,
            &format!("oaep-{i}"),
            &csr,
            r.id(),
            &fx.ra.cert_der,
            ContentCipher::Aes256,
            transport,
            digest,
        )
        .unwrap();
        let rep = ep.pki_operation(req.der).await.unwrap();
        let v = scep::codec::verify_signed(&rep, &Default::default()).unwrap();
        // The reply is signed with the client's SHA-384/512, or SHA-256.
        assert_eq!(
            v.digest,
            if digest == DigestAlg::Sha256 {
                DigestAlg::Sha256
            } else {
                digest
            }
        );
        let reply = client::read_reply(&rep, r.id()).unwrap();
        assert_eq!(reply.status, PkiStatus::Success, "{transport:?} {digest:?}");
    }
}

#[tokio::test]
async fn a_per_endpoint_ra_replaces_the_cas() {
    let fx = fixture();
    let own = fx.ca.issue_ra(
        "CN=Endpoint RA",
        ca_core::testing::soft_key("ra2", KeyAlgorithm::Rsa3072),
    );
    let der = own.cert_der.clone();
    let method = StaticChallenge::new(
        "own",
        vec![("mdm".into(), Secret::new(b"s3cret".to_vec()), None)],
    );
    let ep = Arc::new(
        Endpoint::new(
            "own",
            endpoint_config(ChallengeConfig::None),
            fx.auth.clone(),
            Some(own),
            Arc::new(method),
        )
        .unwrap(),
    );
    let (certs, _) = scep::codec::certs_from_degenerate(&ep.ca_cert().unwrap().body).unwrap();
    assert_eq!(certs[0], der);
    let r = requester("own1");
    let csr = client::csr(r.key.as_ref(), "CN=own1", Some("s3cret")).unwrap();
    // Encrypted to the CA's RA: not for this endpoint.
    let req = client::build_request(
        MessageType::PkcsReq,
        "own-a",
        &csr,
        r.id(),
        &fx.ra.cert_der,
        ContentCipher::Aes128,
    )
    .unwrap();
    let reply = client::read_reply(&ep.pki_operation(req.der).await.unwrap(), r.id()).unwrap();
    assert!(matches!(
        reply.status,
        PkiStatus::Failure(FailInfo::BadMessageCheck, _)
    ));
    // Encrypted to the endpoint's RA, and the reply is signed by it.
    let req = client::build_request(
        MessageType::PkcsReq,
        "own-b",
        &csr,
        r.id(),
        &der,
        ContentCipher::Aes128,
    )
    .unwrap();
    let reply = client::read_reply(&ep.pki_operation(req.der).await.unwrap(), r.id()).unwrap();
    assert_eq!(reply.status, PkiStatus::Success);
    assert_eq!(reply.signer_cert_der, der);
}

#[tokio::test]
async fn a_one_time_challenge_survives_a_failed_enrollment() {
    let fx = fixture();
    let cfg = endpoint_config(ChallengeConfig::OneTime {
        default_ttl_seconds: 60,
    });
    let ep = Arc::new(
        Endpoint::new(
            "otp",
            cfg,
            fx.auth.clone(),
            None,
            Arc::new(OneTimeChallenge::new(fx.auth.clone())),
        )
        .unwrap(),
    );
    let ch = fx.auth.create_challenge("otp", 60, "admin").unwrap();
    // The profile refuses this name (CN longer than 64 characters) after the challenge
    // was checked: it is spent only in the commit of a certificate, so nothing was spent.
    let r = requester("x");
    let long = "x".repeat(100);
    let (reply, _) = enroll(
        &ep,
        &fx,
        &r,
        &long,
        Some(&ch.challenge),
        ContentCipher::Aes128,
        MessageType::PkcsReq,
    )
    .await;
    assert!(
        matches!(reply.status, PkiStatus::Failure(FailInfo::BadRequest, _)),
        "{:?}",
        reply.status
    );
    let actions: Vec<String> = fx
        .store
        .audit_entries(1, 10_000)
        .unwrap()
        .into_iter()
        .map(|e| e.event.action)
        .collect();
    assert!(
        !actions.iter().any(|a| a == "challenge-use"),
        "nothing spent: {actions:?}"
    );
    let (reply, _) = enroll(
        &ep,
        &fx,
        &r,
        "fine",
        Some(&ch.challenge),
        ContentCipher::Aes128,
        MessageType::PkcsReq,
    )
    .await;
    assert_eq!(reply.status, PkiStatus::Success);
    // Now it is spent.
    let r2 = requester("y");
    let (reply, _) = enroll(
        &ep,
        &fx,
        &r2,
        "again",
        Some(&ch.challenge),
        ContentCipher::Aes128,
        MessageType::PkcsReq,
    )
    .await;
    assert!(matches!(
        reply.status,
        PkiStatus::Failure(FailInfo::BadRequest, _)
    ));
}

#[tokio::test]
async fn an_approved_certificate_is_still_withheld_when_the_method_says_so() {
    use der::{Decode, Encode};
    let fx = fixture();
    let m = Arc::new(Withholding {
        failed: AtomicBool::new(false),
    });
    let mut cfg = endpoint_config(ChallengeConfig::None);
    cfg.require_approval = true;
    let ep = Arc::new(Endpoint::new("w", cfg, fx.auth.clone(), None, m.clone()).unwrap());
    let r = requester("held-w");
    let (reply, _) = enroll(
        &ep,
        &fx,
        &r,
        "held-w",
        Some("x"),
        ContentCipher::Aes128,
        MessageType::PkcsReq,
    )
    .await;
    assert_eq!(reply.status, PkiStatus::Pending);
    let id = fx.auth.list_held(None).unwrap()[0].id;
    fx.auth.approve(id, "admin").unwrap();
    let root = x509_cert::Certificate::from_der(&fx.auth.ca("root").unwrap().cert_der).unwrap();
    let ias = client::issuer_and_subject(
        &root.tbs_certificate().subject().to_der().unwrap(),
        "CN=held-w",
    )
    .unwrap();
    let tid = client::transaction_id_for(r.key.as_ref());
    for _ in 0..2 {
        let req = client::build_request(
            MessageType::CertPoll,
            &tid,
            &ias,
            r.id(),
            &fx.ra.cert_der,
            ContentCipher::Aes128,
        )
        .unwrap();
        let reply = client::read_reply(&ep.pki_operation(req.der).await.unwrap(), r.id()).unwrap();
        assert!(
            matches!(reply.status, PkiStatus::Failure(FailInfo::BadRequest, _)),
            "{:?}",
            reply.status
        );
        assert!(reply.certs.is_empty());
    }
    assert!(m.failed.load(Ordering::SeqCst));
    assert_eq!(fx.store.stats().unwrap().revoked, 1);
}

fn vector(name: &str) -> Vec<u8> {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors/scep")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("pattern in the envelope")
}

/// Issue item 3: a captured request's envelope, re-wrapped by an attacker in a message
/// they sign themselves, with IV bytes, ciphertext bytes (bad padding) and the encrypted
/// key (failed key transport) altered: every answer is the same.
#[tokio::test]
async fn a_rewrapped_captured_envelope_gets_one_answer_whatever_is_flipped() {
    use scep::codec::{self, DigestAlg, OutAttributes, ReplySigner};
    let fx = fixture();
    // The endpoint owns the RA key the captured certmonger request was encrypted to.
    let ra_key: Arc<dyn PrivateKey> = Arc::new(
        hsm::soft::SoftKey::from_pkcs8("ra", &vector("ra-TEST-ONLY-key.pk8.der")).unwrap(),
    );
    let ra = KeyWithCert {
        cert_der: vector("ra.crt.der"),
        key: ra_key,
    };
    let cfg = endpoint_config(ChallengeConfig::None);
    let method = StaticChallenge::new(
        "devices",
        vec![("mdm".into(), Secret::new(b"s3cret".to_vec()), None)],
    );
    let ep = Arc::new(
        Endpoint::new("devices", cfg, fx.auth.clone(), Some(ra), Arc::new(method)).unwrap(),
    );

    let captured = vector("certmonger-0.79.17-pkcsreq-aes256-sha256.der");
    let envelope = codec::verify_signed(&captured, &Default::default())
        .unwrap()
        .content
        .unwrap();
    // aes256-CBC OID, then the 16-byte IV as an OCTET STRING.
    let aes256 = [
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a, 0x04, 0x10,
    ];
    let iv = find(&envelope, &aes256) + aes256.len();
    // The encryptedKey: an OCTET STRING of 256 bytes (RSA-2048).
    let ekey = find(&envelope, &[0x04, 0x82, 0x01, 0x00]) + 4;
    // The ciphertext ends the envelope; the block before the last one decides the padding.
    let n = envelope.len();
    assert!(ekey < iv && iv + 16 < n - 32, "layout as expected");

    let mut variants: Vec<(String, Vec<u8>)> = Vec::new();
    for pos in [0usize, 1, 2, 3, 4, 5, 6, 8, 11, 15] {
        for x in [0x01u8, 0x02, 0x80, 0xff] {
            let mut e = envelope.clone();
            e[iv + pos] ^= x;
            variants.push((format!("IV[{pos}]^{x:02x}"), e));
        }
    }
    for pos in [0usize, 7, 12, 14, 15] {
        for x in [0x01u8, 0x03, 0x10] {
            let mut e = envelope.clone();
            e[n - 32 + pos] ^= x;
            variants.push((format!("C[-2][{pos}]^{x:02x}"), e));
        }
    }
    for pos in [0usize, 1, 100, 255] {
        let mut e = envelope.clone();
        e[ekey + pos] ^= 0x01;
        variants.push((format!("encryptedKey[{pos}]^01"), e));
    }

    let attacker = requester("attacker");
    let mut answers = std::collections::BTreeMap::new();
    let mut signed = Vec::new();
    for (i, (what, env)) in variants.iter().enumerate() {
        let nonce = codec::fresh_nonce();
        let msg = codec::sign_message(
            Some(env),
            &OutAttributes {
                message_type: MessageType::PkcsReq,
                transaction_id: &format!("oracle-{i}"),
                sender_nonce: &nonce,
                recipient_nonce: None,
                status: None,
            },
            &ReplySigner {
                cert_der: &attacker.cert,
                key: attacker.key.as_ref(),
            },
            DigestAlg::Sha256,
            hsm::SignatureScheme::RsaPkcs1Sha256,
            &[],
        )
        .unwrap();
        signed.push(msg.clone());
        // Every one is answered with a CertRep (HTTP 200), never an error.
        let rep = ep
            .pki_operation(msg)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let reply = client::read_reply(&rep, attacker.id()).unwrap();
        assert!(reply.certs.is_empty(), "{what}");
        answers
            .entry(format!("{:?}", reply.status))
            .or_insert_with(Vec::new)
            .push(what.clone());
    }
    assert_eq!(
        answers.len(),
        1,
        "the answers tell the variants apart: {answers:#?}"
    );
    let (only, _) = answers.into_iter().next().unwrap();
    assert_eq!(
        only,
        format!(
            "{:?}",
            PkiStatus::Failure(
                FailInfo::BadMessageCheck,
                Some(codec::UNREADABLE_REQUEST.to_string())
            )
        )
    );
    // The variants did reach different failures (bad padding or key transport, and a
    // plaintext that is not a valid CSR): the codec's internal detail tells them apart,
    // the client not.
    let ra_key = hsm::soft::SoftKey::from_pkcs8("ra", &vector("ra-TEST-ONLY-key.pk8.der")).unwrap();
    let ra_cert = vector("ra.crt.der");
    let mut details = std::collections::BTreeSet::new();
    for (i, msg) in signed.iter().enumerate() {
        let decoded = codec::decode_request(
            msg,
            &[codec::Recipient {
                cert_der: &ra_cert,
                key: &ra_key,
            }],
            &Default::default(),
        )
        .unwrap();
        match decoded {
            codec::Decoded::Refused { detail, .. } => {
                details.insert(detail.split(':').next().unwrap_or_default().to_string());
            }
            other => panic!("variant {i} decoded: {other:?}"),
        }
    }
    assert!(
        details.iter().any(|d| d.contains("does not decrypt")),
        "{details:?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.contains("messageData is not valid")),
        "{details:?}"
    );
    // Anonymous refusals are counted, not audited one by one (issue 9 item 6): the
    // summary holds every variant.
    fx.auth.flush_refusals(true).unwrap();
    let summary = fx
        .store
        .audit_entries(1, 100_000)
        .unwrap()
        .into_iter()
        .map(|e| e.event.detail)
        .find(|d| d.contains("scep-refused from scep:devices"))
        .expect("a summary of the refusals");
    assert!(
        summary.contains(&format!(
            "scep-refused from scep:devices: {}",
            variants.len()
        )),
        "{summary}"
    );
    assert_eq!(fx.store.stats().unwrap().certificates, 2, "nothing issued");
}

/// Issue item 20: GetCACaps names every digest the verifier accepts, and each one it
/// names is accepted.
#[tokio::test]
async fn caps_advertise_exactly_the_accepted_digests() {
    use scep::codec::{DIGESTS, DecodeOptions, DigestAlg, KeyTransport};
    let fx = fixture();
    for allow_md5 in [false, true] {
        let ep = static_endpoint(&fx, |c| c.allow_md5 = allow_md5);
        let caps = ep.caps();
        let advertised: Vec<&str> = caps.lines().filter(|l| l.starts_with("SHA-")).collect();
        assert!(advertised.contains(&"SHA-384"), "{caps}");
        let options = DecodeOptions {
            allow_des: false,
            allow_md5,
        };
        let accepted: Vec<&str> = DIGESTS
            .iter()
            .filter(|d| d.accepted(&options))
            .filter_map(|d| d.caps_keyword())
            .collect();
        assert_eq!(advertised, accepted);
        // Each advertised SHA-2 digest enrolls (SHA-1 is covered by the captured
        // scepclient vector: our keys never sign with SHA-1).
        for (i, digest) in [DigestAlg::Sha256, DigestAlg::Sha384, DigestAlg::Sha512]
            .into_iter()
            .enumerate()
        {
            assert!(advertised.contains(&digest.caps_keyword().unwrap()));
            let r = requester(&format!("caps{i}"));
            let csr = client::csr(r.key.as_ref(), &format!("CN=caps{i}"), Some("s3cret")).unwrap();
            let req = client::build_request_with(
                MessageType::PkcsReq,
                &format!("caps-{allow_md5}-{i}"),
                &csr,
                r.id(),
                &fx.ra.cert_der,
                ContentCipher::Aes128,
                KeyTransport::Pkcs1v15,
                digest,
            )
            .unwrap();
            let reply =
                client::read_reply(&ep.pki_operation(req.der).await.unwrap(), r.id()).unwrap();
            assert_eq!(reply.status, PkiStatus::Success, "{digest:?}");
        }
    }
}

/// Accepts every enrollment, but only once `n` of them have been verified, so that they
/// all pass the replay lookup before any is recorded.
struct Gate {
    barrier: tokio::sync::Barrier,
}

impl ChallengeMethod for Gate {
    fn name(&self) -> &'static str {
        "gate"
    }
    fn verify<'a>(&'a self, _ctx: &'a EnrollmentContext) -> BoxFuture<'a, Verdict> {
        Box::pin(async {
            self.barrier.wait().await;
            Verdict::Accept(scep::challenge::Acceptance {
                profile: None,
                requester: "test".into(),
                spend: None,
            })
        })
    }
}

/// Issue item 10: two copies of one request in flight at once (a client that retries
/// while the first is still being answered) get one certificate, because the replay key
/// is checked in the commit that records the certificate.
#[tokio::test]
async fn concurrent_copies_of_one_request_get_one_certificate() {
    let fx = fixture();
    let ep = Arc::new(
        Endpoint::new(
            "gate",
            endpoint_config(ChallengeConfig::None),
            fx.auth.clone(),
            None,
            Arc::new(Gate {
                barrier: tokio::sync::Barrier::new(2),
            }),
        )
        .unwrap(),
    );
    let r = requester("twice");
    let csr = client::csr(r.key.as_ref(), "CN=twice", None).unwrap();
    let tid = client::transaction_id_for(r.key.as_ref());
    let req = client::build_request(
        MessageType::PkcsReq,
        &tid,
        &csr,
        r.id(),
        &fx.ra.cert_der,
        ContentCipher::Aes128,
    )
    .unwrap();
    let before = fx.store.stats().unwrap().certificates;
    let (a, b) = tokio::join!(
        ep.pki_operation(req.der.clone()),
        ep.pki_operation(req.der.clone())
    );
    let a = client::read_reply(&a.unwrap(), r.id()).unwrap();
    let b = client::read_reply(&b.unwrap(), r.id()).unwrap();
    assert_eq!(
        (&a.status, &b.status),
        (&PkiStatus::Success, &PkiStatus::Success)
    );
    assert_eq!(
        a.certs[0], b.certs[0],
        "the same certificate for both copies"
    );
    assert_eq!(fx.store.stats().unwrap().certificates, before + 1);
}

/// Wraps the one-time method and lets `n` verifications pass before any goes on.
struct GatedOneTime {
    inner: OneTimeChallenge,
    barrier: tokio::sync::Barrier,
}

impl ChallengeMethod for GatedOneTime {
    fn name(&self) -> &'static str {
        "one-time"
    }
    fn verify<'a>(&'a self, ctx: &'a EnrollmentContext) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            let v = self.inner.verify(ctx).await;
            self.barrier.wait().await;
            v
        })
    }
}

/// Issue item 10: the one-time challenge is spent in the commit that records the
/// certificate and its transaction: two enrollments that both passed the check race, one
/// is recorded, the other is refused with nothing recorded; a failed enrollment spends
/// nothing; a repeated request is answered with the same certificate.
#[tokio::test]
async fn a_one_time_challenge_is_spent_with_its_certificate() {
    let fx = fixture();
    let cfg = endpoint_config(ChallengeConfig::OneTime {
        default_ttl_seconds: 60,
    });
    let ep = Arc::new(
        Endpoint::new(
            "otp",
            cfg,
            fx.auth.clone(),
            None,
            Arc::new(GatedOneTime {
                inner: OneTimeChallenge::new(fx.auth.clone()),
                barrier: tokio::sync::Barrier::new(2),
            }),
        )
        .unwrap(),
    );
    let ch = fx.auth.create_challenge("otp", 60, "admin").unwrap();
    let (r1, r2) = (requester("race1"), requester("race2"));
    let before = fx.store.stats().unwrap().certificates;
    let ((a, req_a), (b, req_b)) = tokio::join!(
        enroll(
            &ep,
            &fx,
            &r1,
            "race1",
            Some(&ch.challenge),
            ContentCipher::Aes128,
            MessageType::PkcsReq
        ),
        enroll(
            &ep,
            &fx,
            &r2,
            "race2",
            Some(&ch.challenge),
            ContentCipher::Aes128,
            MessageType::PkcsReq
        ),
    );
    let statuses = [&a.status, &b.status];
    assert_eq!(
        statuses
            .iter()
            .filter(|s| ***s == PkiStatus::Success)
            .count(),
        1,
        "{statuses:?}"
    );
    let loser = if a.status == PkiStatus::Success {
        &b
    } else {
        &a
    };
    match &loser.status {
        PkiStatus::Failure(FailInfo::BadRequest, Some(t)) => {
            assert!(t.contains("already used"), "{t}")
        }
        s => panic!("{s:?}"),
    }
    assert_eq!(fx.store.stats().unwrap().certificates, before + 1);
    // The challenge-use entry sits right before the issue entry: one commit.
    let entries = fx.store.audit_entries(1, 100_000).unwrap();
    let use_at = entries
        .iter()
        .position(|e| e.event.action == "challenge-use")
        .expect("spent");
    assert_eq!(entries[use_at + 1].event.action, "issue");
    assert!(
        !entries
            .iter()
            .any(|e| e.event.action == "challenge-release"),
        "nothing to release: the loser spent nothing"
    );
    // A repeat of the winner's request (its reply lost) gets the same certificate.
    let plain = Arc::new(
        Endpoint::new(
            "otp",
            endpoint_config(ChallengeConfig::OneTime {
                default_ttl_seconds: 60,
            }),
            fx.auth.clone(),
            None,
            Arc::new(OneTimeChallenge::new(fx.auth.clone())),
        )
        .unwrap(),
    );
    let (winner, winner_req, winner_id) = if a.status == PkiStatus::Success {
        (&a, req_a, r1.id())
    } else {
        (&b, req_b, r2.id())
    };
    let again =
        client::read_reply(&plain.pki_operation(winner_req).await.unwrap(), winner_id).unwrap();
    assert_eq!(again.certs, winner.certs);
    assert_eq!(fx.store.stats().unwrap().certificates, before + 1);
}

/// Issue item 18: certmonger stores the one-time challenge of its enrollment and sends it
/// again with every renewal. A renewal signed by a valid certificate of the same subject
/// carrying the challenge that subject's enrollment spent is accepted (and so is the
/// renewal of the renewed certificate); the same spent challenge from another subject, a
/// wrong challenge or a revoked signer are still refused; a fresh challenge is spent.
#[tokio::test]
async fn a_renewal_may_resend_the_spent_one_time_challenge_of_its_enrollment() {
    use der::{Decode, Encode};
    let fx = fixture();
    let cfg = endpoint_config(ChallengeConfig::OneTime {
        default_ttl_seconds: 60,
    });
    let ep = Arc::new(
        Endpoint::new(
            "otp",
            cfg,
            fx.auth.clone(),
            None,
            Arc::new(OneTimeChallenge::new(fx.auth.clone())),
        )
        .unwrap(),
    );
    let ch = fx.auth.create_challenge("otp", 60, "admin").unwrap();
    let r = requester("cm1");
    let (reply, _) = enroll(
        &ep,
        &fx,
        &r,
        "cm1",
        Some(&ch.challenge),
        ContentCipher::Aes128,
        MessageType::PkcsReq,
    )
    .await;
    assert_eq!(reply.status, PkiStatus::Success);
    let mut current = (r.key.clone(), reply.certs[0].clone());

    let renew = |signer: &(Arc<dyn PrivateKey>, Vec<u8>),
                 cn: &str,
                 challenge: Option<&str>,
                 mt: MessageType,
                 tid: &str| {
        let new_key: Arc<dyn PrivateKey> =
            Arc::new(hsm::soft::SoftKey::generate_ephemeral("n", KeyAlgorithm::Rsa2048).unwrap());
        let csr = client::csr(new_key.as_ref(), &format!("CN={cn}"), challenge).unwrap();
        let id = Identity {
            key: signer.0.as_ref(),
            cert_der: &signer.1,
        };
        let req = client::build_request(mt, tid, &csr, id, &fx.ra.cert_der, ContentCipher::Aes128)
            .unwrap();
        (new_key, req.der)
    };
    // Renewals (RenewalReq, then PKCSReq as certmonger sends it), each signed by the
    // previous certificate, with the spent challenge: accepted, nothing else spent.
    for (i, mt) in [MessageType::RenewalReq, MessageType::PkcsReq]
        .into_iter()
        .enumerate()
    {
        let (new_key, msg) = renew(
            &current,
            "cm1",
            Some(&ch.challenge),
            mt,
            &format!("ren-{i}"),
        );
        let id = Identity {
            key: current.0.as_ref(),
            cert_der: &current.1,
        };
        let reply = client::read_reply(&ep.pki_operation(msg).await.unwrap(), id).unwrap();
        assert_eq!(reply.status, PkiStatus::Success, "{mt:?}");
        assert_ne!(reply.certs[0], current.1);
        current = (new_key, reply.certs[0].clone());
    }

    let refused = |reply: client::Reply, what: &str| match reply.status {
        PkiStatus::Failure(FailInfo::BadRequest, Some(t)) => t,
        s => panic!("{what}: {s:?}"),
    };
    // Another subject's valid certificate with cm1's spent challenge: refused.
    let ch2 = fx.auth.create_challenge("otp", 60, "admin").unwrap();
    let other = requester("cm2");
    let (reply, _) = enroll(
        &ep,
        &fx,
        &other,
        "cm2",
        Some(&ch2.challenge),
        ContentCipher::Aes128,
        MessageType::PkcsReq,
    )
    .await;
    assert_eq!(reply.status, PkiStatus::Success);
    let other_signer = (other.key.clone(), reply.certs[0].clone());
    let (_, msg) = renew(
        &other_signer,
        "cm2",
        Some(&ch.challenge),
        MessageType::RenewalReq,
        "x1",
    );
    let id = Identity {
        key: other_signer.0.as_ref(),
        cert_der: &other_signer.1,
    };
    let t = refused(
        client::read_reply(&ep.pki_operation(msg).await.unwrap(), id).unwrap(),
        "other subject",
    );
    assert!(t.contains("already used"), "{t}");
    // A wrong challenge on a renewal: refused.
    let (_, msg) = renew(
        &current,
        "cm1",
        Some("not-a-challenge"),
        MessageType::RenewalReq,
        "x2",
    );
    let id = Identity {
        key: current.0.as_ref(),
        cert_der: &current.1,
    };
    let t = refused(
        client::read_reply(&ep.pki_operation(msg).await.unwrap(), id).unwrap(),
        "wrong",
    );
    assert!(t.contains("wrong challenge"), "{t}");
    // A fresh challenge on a renewal is spent by it.
    let ch3 = fx.auth.create_challenge("otp", 60, "admin").unwrap();
    let (new_key, msg) = renew(
        &current,
        "cm1",
        Some(&ch3.challenge),
        MessageType::RenewalReq,
        "x3",
    );
    let reply = client::read_reply(&ep.pki_operation(msg).await.unwrap(), id).unwrap();
    assert_eq!(reply.status, PkiStatus::Success);
    let spent = fx.auth.check_challenge("otp", &ch3.challenge).unwrap_err();
    assert!(spent.client_message().contains("already used"), "{spent}");
    let renewed = (new_key, reply.certs[0].clone());
    // A revoked signer cannot renew, whatever it carries.
    let cert = x509_cert::Certificate::from_der(&renewed.1).unwrap();
    let serial = ca_core::asn1::minimal_positive(cert.tbs_certificate().serial_number().as_bytes());
    fx.auth
        .revoke(&serial, ca_core::RevocationReason::KeyCompromise, "admin")
        .unwrap();
    let (_, msg) = renew(
        &renewed,
        "cm1",
        Some(&ch.challenge),
        MessageType::RenewalReq,
        "x4",
    );
    let id = Identity {
        key: renewed.0.as_ref(),
        cert_der: &renewed.1,
    };
    let t = match client::read_reply(&ep.pki_operation(msg).await.unwrap(), id)
        .unwrap()
        .status
    {
        PkiStatus::Failure(FailInfo::BadCertId, Some(t)) => t,
        s => panic!("revoked: {s:?}"),
    };
    assert!(t.contains("revoked"), "{t}");
    let _ = cert.to_der();
}
