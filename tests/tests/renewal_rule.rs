//! The renewal rule is one rule (ca-core's `Authority::check_renewal`, RFC 8894 §3.3.1.2,
//! RFC 7030 §4.2.2): one table of cases run through an in-process SCEP RenewalReq and an
//! in-process EST simplereenroll over the same authority. Each row gets a fresh
//! certificate to renew; both protocols must agree on issued or refused, and each answers
//! with the value the error-kind table gives (SCEP failInfo, EST HTTP status).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use base64::Engine;
use ca_core::profile::San;
use ca_core::testing::{self, NOW};
use ca_core::{Authority, FixedClock, IssueRequest};
use est::service::{EstAnswer, EstRequest, EstService, Operation};
use hsm::{KeyAlgorithm, PrivateKey};
use scep::challenge::FailInfo;
use scep::client::{self, Identity};
use scep::codec::{ContentCipher, MessageType, PkiStatus};
use scep::service::Endpoint;

const SUBJECT: &str = "CN=dev.example.com";
const SANS: [&str; 2] = ["dev.example.com", "alt.example.com"];

struct Fx {
    _dir: tempfile::TempDir,
    clock: Arc<FixedClock>,
    auth: Arc<Authority>,
    ra_der: Vec<u8>,
    scep: Arc<Endpoint>,
    est: EstService,
}

fn key(alg: KeyAlgorithm) -> Arc<dyn PrivateKey> {
    testing::soft_key("k", alg)
}

fn fixture() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let ca = testing::TestCa::builder()
        .root_subject("CN=Renewal Rule Root,O=Test")
        .ra("CN=Renewal Rule RA,O=Test")
        .build();
    let (clock, auth) = (ca.clock, ca.auth);
    let ra_der = ca.ra.expect("the root's RA").cert_der;
    let scep_cfg: scep::config::EndpointConfig = serde_json::from_value(serde_json::json!({
        "profile": "tls-server",
        "challenge": { "method": "none" },
    }))
    .unwrap();
    let scep = Arc::new(
        Endpoint::new(
            "renew",
            scep_cfg,
            auth.clone(),
            None,
            Arc::new(scep::methods::NoChallenge),
        )
        .unwrap(),
    );
    let est_cfg: est::EstConfig = serde_json::from_value(serde_json::json!({
        "endpoints": { "renew": { "profile": "tls-server", "auth": "client-cert" } },
    }))
    .unwrap();
    let est = EstService::new(&est_cfg, dir.path(), auth.clone()).unwrap();
    Fx {
        _dir: dir,
        clock,
        auth,
        ra_der,
        scep,
        est,
    }
}

/// A CSR (DER) for `subject` with DNS SANs, signed by `key`.
fn csr(key: &Arc<dyn PrivateKey>, subject: &str, dns: &[&str]) -> Vec<u8> {
    let sans: Vec<_> = dns.iter().map(|d| testing::dns(d)).collect();
    testing::csr(key.as_ref(), subject, &sans)
}

/// What a row does to the certificate being renewed before the renewal.
#[derive(Clone, Copy, Debug)]
enum Old {
    /// Valid, issued by this CA.
    Valid,
    /// Revoked.
    Revoked,
    /// Expired (the clock is moved past its notAfter).
    Expired,
    /// A certificate this CA never issued (self-signed, same names).
    Unknown,
}

struct Row {
    case: &'static str,
    old: Old,
    subject: &'static str,
    sans: &'static [&'static str],
    /// `None`: issued. `Some((failInfo, EST status))`: refused.
    refused: Option<(FailInfo, u16)>,
}

const ROWS: &[Row] = &[
    Row {
        case: "same subject and SANs, new key",
        old: Old::Valid,
        subject: SUBJECT,
        sans: &["dev.example.com", "alt.example.com"],
        refused: None,
    },
    Row {
        case: "same SANs in another order",
        old: Old::Valid,
        subject: SUBJECT,
        sans: &["alt.example.com", "dev.example.com"],
        refused: None,
    },
    Row {
        case: "a SAN dropped",
        old: Old::Valid,
        subject: SUBJECT,
        sans: &["dev.example.com"],
        refused: Some((FailInfo::BadRequest, 403)),
    },
    Row {
        case: "a SAN added",
        old: Old::Valid,
        subject: SUBJECT,
        sans: &["dev.example.com", "alt.example.com", "new.example.com"],
        refused: Some((FailInfo::BadRequest, 403)),
    },
    Row {
        case: "a different subject",
        old: Old::Valid,
        subject: "CN=other.example.com",
        sans: &["dev.example.com", "alt.example.com"],
        refused: Some((FailInfo::BadRequest, 403)),
    },
    Row {
        case: "the old certificate is revoked",
        old: Old::Revoked,
        subject: SUBJECT,
        sans: &["dev.example.com", "alt.example.com"],
        refused: Some((FailInfo::BadCertId, 403)),
    },
    Row {
        case: "the old certificate has expired",
        old: Old::Expired,
        subject: SUBJECT,
        sans: &["dev.example.com", "alt.example.com"],
        refused: Some((FailInfo::BadTime, 403)),
    },
    Row {
        case: "the old certificate is unknown to this CA",
        old: Old::Unknown,
        subject: SUBJECT,
        sans: &["dev.example.com", "alt.example.com"],
        refused: Some((FailInfo::BadCertId, 403)),
    },
];

/// The certificate to renew (DER) and its key, prepared as the row says.
fn old_certificate(fx: &Fx, old: Old) -> (Arc<dyn PrivateKey>, Vec<u8>) {
    let k = key(KeyAlgorithm::Rsa2048);
    if let Old::Unknown = old {
        return (k.clone(), client::self_signed(k.as_ref(), SUBJECT).unwrap());
    }
    let record = fx
        .auth
        .issue(&IssueRequest {
            sans: SANS.iter().map(|d| San::Dns((*d).to_string())).collect(),
            validity_days: Some(1),
            ..testing::issue_request("tls-server", testing::name(SUBJECT), k.as_ref())
        })
        .unwrap()
        .record;
    if let Old::Revoked = old {
        fx.auth
            .revoke(
                &record.serial,
                ca_core::RevocationReason::Superseded,
                "admin",
            )
            .unwrap();
    }
    (k, record.der)
}

/// SCEP RenewalReq signed by the old certificate: `None` when issued, else the failInfo.
async fn scep_renewal(fx: &Fx, row: &Row, i: usize) -> Option<FailInfo> {
    let (old_key, old_der) = old_certificate(fx, row.old);
    let new_key = key(KeyAlgorithm::EcdsaP256);
    let id = Identity {
        key: old_key.as_ref(),
        cert_der: &old_der,
    };
    let req = client::build_request(
        MessageType::RenewalReq,
        &format!("renewal-rule-{i}"),
        &csr(&new_key, row.subject, row.sans),
        id,
        &fx.ra_der,
        ContentCipher::Aes128,
    )
    .unwrap();
    if let Old::Expired = row.old {
        fx.clock.set(NOW + 3 * 86_400);
    }
    let rep = fx.scep.pki_operation(req.der).await.unwrap();
    fx.clock.set(NOW);
    match client::read_reply(&rep, id).unwrap().status {
        PkiStatus::Success => None,
        PkiStatus::Failure(fi, _) => Some(fi),
        other => panic!("{}: SCEP answered {other:?}", row.case),
    }
}

/// EST simplereenroll with the old certificate as TLS client certificate: `None` when
/// issued, else the HTTP status.
fn est_reenroll(fx: &Fx, row: &Row) -> Option<u16> {
    let (_, old_der) = old_certificate(fx, row.old);
    let new_key = key(KeyAlgorithm::EcdsaP256);
    let req = EstRequest {
        authorization: None,
        tls: Some(est::TlsInfo {
            unverified_chain: vec![old_der],
            exporter: None,
            protocol: "TLSv1.3".into(),
        }),
        // base64 (RFC 8951), as clients send it.
        body: base64::engine::general_purpose::STANDARD
            .encode(csr(&new_key, row.subject, row.sans))
            .into_bytes(),
        peer: "127.0.0.1:4433".into(),
    };
    if let Old::Expired = row.old {
        fx.clock.set(NOW + 3 * 86_400);
    }
    let answer = fx
        .est
        .handle(Some("renew"), Operation::SimpleReenroll, &req);
    fx.clock.set(NOW);
    match answer {
        Ok(EstAnswer::Certs(_)) => None,
        Ok(other) => panic!("{}: EST answered {other:?}", row.case),
        Err(e) => Some(est::http::status_of(&e).as_u16()),
    }
}

#[tokio::test]
async fn scep_and_est_apply_the_same_renewal_rule() {
    let fx = fixture();
    for (i, row) in ROWS.iter().enumerate() {
        let scep = scep_renewal(&fx, row, i).await;
        let est = est_reenroll(&fx, row);
        assert_eq!(
            scep.is_none(),
            est.is_none(),
            "{}: SCEP {scep:?}, EST {est:?}",
            row.case
        );
        assert_eq!(scep, row.refused.map(|r| r.0), "{}: SCEP", row.case);
        assert_eq!(est, row.refused.map(|r| r.1), "{}: EST", row.case);
    }
}
