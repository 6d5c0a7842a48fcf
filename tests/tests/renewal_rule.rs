//! The renewal rule is one rule (ca-core's `Authority::check_renewal`, RFC 8894 §3.3.1.2,
//! RFC 7030 §4.2.2): one table of cases run through an in-process SCEP RenewalReq and an
//! in-process EST simplereenroll over the same authority. Each row gets a fresh
//! certificate to renew; both protocols must agree on issued or refused, and each answers
//! with the value the error-kind table gives (SCEP failInfo, EST HTTP status).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use ca_core::ceremony::{RootSpec, create_root};
use ca_core::profile::San;
use ca_core::{Authority, CaEntity, FixedClock, IssueRequest, KeyWithCert, Settings};
use der::Encode;
use der::asn1::SetOfVec;
use der::oid::AssociatedOid;
use est::service::{EstAnswer, EstRequest, EstService, Operation};
use hsm::{KeyAlgorithm, PrivateKey};
use scep::challenge::FailInfo;
use scep::client::{self, Identity};
use scep::codec::{ContentCipher, MessageType, PkiStatus};
use scep::service::Endpoint;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::request::{CertReq, CertReqInfo, ExtensionReq};

const NOW: i64 = 1_790_000_000;
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

fn settings() -> Settings {
    Settings {
        base_url: "http://127.0.0.1:9".into(),
        default_issuer: "root".into(),
        crl_validity: 7 * 86_400,
        crl_refresh: 3600,
        ocsp_validity: 86_400,
    }
}

fn key(alg: KeyAlgorithm) -> Arc<dyn PrivateKey> {
    Arc::new(hsm::soft::SoftKey::generate_ephemeral("k", alg).unwrap())
}

fn fixture() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn store::Store> = Arc::new(store::RedbStore::in_memory().unwrap());
    let clock = Arc::new(FixedClock::new(NOW));
    let root_key = key(KeyAlgorithm::EcdsaP256);
    let spec = RootSpec {
        name: "root".into(),
        subject: "CN=Renewal Rule Root,O=Test".parse().unwrap(),
        validity_days: 3650,
        scheme: None,
    };
    let root_der = create_root(&store, &root_key, &spec, NOW, "test").unwrap();
    let a0 = Authority::from_parts(
        vec![CaEntity::new("root", root_der.clone(), root_key.clone(), None, None).unwrap()],
        &BTreeMap::new(),
        settings(),
        store.clone(),
        clock.clone(),
    )
    .unwrap();
    let ra_key = key(KeyAlgorithm::Rsa2048);
    let ra_der = a0
        .issue(&IssueRequest {
            profile: "ra".into(),
            subject: "CN=Renewal Rule RA,O=Test".parse().unwrap(),
            sans: vec![],
            spki_der: ra_key.public_key_der().to_vec(),
            key_algorithm: KeyAlgorithm::Rsa2048,
            extensions: vec![],
            requester: "test".into(),
            validity_days: None,
            issuer: None,
        })
        .unwrap()
        .record
        .der;
    drop(a0);
    let mut root = CaEntity::new("root", root_der, root_key, None, None).unwrap();
    root.ra = Some(KeyWithCert {
        cert_der: ra_der.clone(),
        key: ra_key,
    });
    let auth = Arc::new(
        Authority::from_parts(
            vec![root],
            &BTreeMap::new(),
            settings(),
            store,
            clock.clone(),
        )
        .unwrap(),
    );
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
    let mut attributes = SetOfVec::new();
    if !dns.is_empty() {
        let names = dns
            .iter()
            .map(|d| GeneralName::DnsName(der::asn1::Ia5String::new(d).unwrap()))
            .collect();
        let ext =
            ca_core::asn1::extension(SubjectAltName::OID, false, &SubjectAltName(names)).unwrap();
        attributes
            .insert(ExtensionReq(vec![ext]).try_into().unwrap())
            .unwrap();
    }
    let info = CertReqInfo {
        version: x509_cert::request::Version::V1,
        subject: subject.parse().unwrap(),
        public_key: <x509_cert::spki::SubjectPublicKeyInfoOwned as der::Decode>::from_der(
            key.public_key_der(),
        )
        .unwrap(),
        attributes,
    };
    let tbs = info.to_der().unwrap();
    let scheme = key.algorithm().default_scheme();
    let sig = key.sign(scheme, &tbs).unwrap();
    CertReq {
        info,
        algorithm: ca_core::asn1::signature_algorithm(scheme).unwrap(),
        signature: der::asn1::BitString::from_bytes(&sig).unwrap(),
    }
    .to_der()
    .unwrap()
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
            profile: "tls-server".into(),
            subject: SUBJECT.parse().unwrap(),
            sans: SANS.iter().map(|d| San::Dns((*d).to_string())).collect(),
            spki_der: k.public_key_der().to_vec(),
            key_algorithm: KeyAlgorithm::Rsa2048,
            extensions: vec![],
            requester: "test".into(),
            validity_days: Some(1),
            issuer: None,
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
