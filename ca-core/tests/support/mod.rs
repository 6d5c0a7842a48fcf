//! A one-CA authority (an ECDSA P-256 root with a software key, an in-memory store and a
//! fixed clock) for the CRL and OCSP tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use ca_core::ceremony::{RootSpec, create_root};
use ca_core::{Authority, CaEntity, FixedClock, IssueRequest, Settings};
use der::{Decode, Encode};
use hsm::{KeyAlgorithm, PrivateKey};
use store::{CertRecord, Store};
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectKeyIdentifier;

/// The fixed time the tests run at (2026-09).
pub const NOW: i64 = 1_790_000_000;
/// CRL validity (nextUpdate - thisUpdate).
pub const CRL_VALIDITY: i64 = 7 * 86_400;
/// How long a stored CRL is served before a new one is made.
pub const CRL_REFRESH: i64 = 3600;
/// OCSP response validity (nextUpdate - thisUpdate).
pub const OCSP_VALIDITY: i64 = 86_400;

pub struct Fx {
    pub store: Arc<dyn Store>,
    pub clock: Arc<FixedClock>,
    pub auth: Authority,
    /// The root's certificate.
    pub root: Certificate,
}

impl Fx {
    /// The root's subjectKeyIdentifier.
    pub fn root_key_id(&self) -> Vec<u8> {
        let ext = self
            .root
            .tbs_certificate()
            .extensions()
            .into_iter()
            .flatten()
            .find(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER)
            .expect("root SKI");
        SubjectKeyIdentifier::from_der(ext.extn_value.as_bytes())
            .unwrap()
            .0
            .as_bytes()
            .to_vec()
    }

    /// The root's SubjectPublicKeyInfo, DER.
    pub fn root_spki(&self) -> Vec<u8> {
        self.root
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .unwrap()
    }

    /// Issues a `device` certificate for `CN=<cn>` from the root.
    pub fn issue(&self, cn: &str) -> CertRecord {
        let key = hsm::soft::SoftKey::generate_ephemeral("leaf", KeyAlgorithm::EcdsaP256).unwrap();
        self.auth
            .issue(&IssueRequest {
                profile: "device".into(),
                subject: format!("CN={cn}").parse().unwrap(),
                sans: vec![],
                spki_der: key.public_key_der().to_vec(),
                key_algorithm: KeyAlgorithm::EcdsaP256,
                extensions: vec![],
                requester: "test".into(),
                validity_days: None,
                issuer: None,
            })
            .expect("issue")
            .record
    }
}

pub fn fixture() -> Fx {
    let store: Arc<dyn Store> = Arc::new(store::RedbStore::in_memory().unwrap());
    let clock = Arc::new(FixedClock::new(NOW));
    let root_key: Arc<dyn PrivateKey> =
        Arc::new(hsm::soft::SoftKey::generate_ephemeral("root", KeyAlgorithm::EcdsaP256).unwrap());
    let spec = RootSpec {
        name: "root".into(),
        subject: "CN=CRL and OCSP Test Root,O=Test".parse().unwrap(),
        validity_days: 3650,
        scheme: None,
    };
    let root_der = create_root(&store, &root_key, &spec, NOW, "test").unwrap();
    let settings = Settings {
        base_url: "http://127.0.0.1:9".into(),
        default_issuer: "root".into(),
        crl_validity: CRL_VALIDITY,
        crl_refresh: CRL_REFRESH,
        ocsp_validity: OCSP_VALIDITY,
    };
    let auth = Authority::from_parts(
        vec![CaEntity::new("root", root_der.clone(), root_key, None, None).unwrap()],
        &BTreeMap::new(),
        settings,
        store.clone(),
        clock.clone(),
    )
    .unwrap();
    Fx {
        store,
        clock,
        auth,
        root: Certificate::from_der(&root_der).unwrap(),
    }
}
