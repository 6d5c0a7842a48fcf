//! A one-CA authority (an ECDSA P-256 root with a software key, an in-memory store and a
//! fixed clock: `ca_core::testing::TestCa`) for the CRL and OCSP tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod ocsp;

use std::sync::Arc;

use ca_core::testing::TestCa;
use ca_core::{Authority, FixedClock};
use der::{Decode, Encode};
use store::{CertRecord, Store};
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectKeyIdentifier;

/// The fixed time the tests run at (2026-09).
pub const NOW: i64 = ca_core::testing::NOW;
/// CRL validity (nextUpdate - thisUpdate).
pub const CRL_VALIDITY: i64 = 7 * 86_400;
/// How long a stored CRL is served before a new one is made.
pub const CRL_REFRESH: i64 = 3600;
/// OCSP response validity (nextUpdate - thisUpdate).
pub const OCSP_VALIDITY: i64 = 86_400;

pub struct Fx {
    pub store: Arc<dyn Store>,
    pub clock: Arc<FixedClock>,
    pub auth: Arc<Authority>,
    /// The authority and its parts.
    pub ca: TestCa,
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
        self.ca.issue_device(cn).0
    }
}

pub fn fixture() -> Fx {
    let ca = TestCa::builder()
        .root_subject("CN=CRL and OCSP Test Root,O=Test")
        .settings(|s| {
            s.crl_validity = CRL_VALIDITY;
            s.crl_refresh = CRL_REFRESH;
            s.ocsp_validity = OCSP_VALIDITY;
        })
        .build();
    Fx {
        store: ca.store.clone(),
        clock: ca.clock.clone(),
        auth: ca.auth.clone(),
        root: ca.root_cert(),
        ca,
    }
}
