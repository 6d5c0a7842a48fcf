//! Test support: an authority in memory for other crates' tests and this crate's own
//! (behind the `testing` feature; crates turn it on in their `[dev-dependencies]`, the
//! `privca` binary never has it).
//!
//! * [`TestCa`] and its [`TestCaBuilder`]: an in-memory store, a [`FixedClock`] at
//!   [`NOW`], a root (an ephemeral software key unless one is given), optionally an
//!   issuing CA under it and a SCEP RA on the root, and the [`Authority`] over them; plus
//!   helpers that issue certificates from it.
//! * Free helpers for requests: [`soft_key`], [`issue_request`], [`csr`], [`sign_csr`],
//!   [`dns`], [`name`], [`settings`].
//!
//! This is test support only: unlike the rest of the crate, which sees only the traits of
//! `hsm` and `store`, it names their concrete backends (`store::RedbStore::in_memory`,
//! `hsm::soft::SoftKey`). Failures panic, with what failed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use const_oid::AssociatedOid;
use der::Encode;
use der::asn1::SetOfVec;
use hsm::{KeyAlgorithm, PrivateKey};
use store::{CertRecord, Store};
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::Name;
use x509_cert::request::{CertReq, CertReqInfo, ExtensionReq};

use crate::ceremony::{RootSpec, create_root};
use crate::config::ProfileConfig;
use crate::{Authority, CaEntity, FixedClock, IssueRequest, KeyWithCert, Settings};

/// The time a [`TestCa`]'s clock starts at, unless the builder says otherwise (2026-09).
pub const NOW: i64 = 1_790_000_000;

/// The settings the tests run with: `base_url` `http://127.0.0.1:9` (nothing listens
/// there), `issuer` as the default issuer, CRLs valid a week and refreshed hourly, OCSP
/// responses valid a day.
pub fn settings(issuer: &str) -> Settings {
    Settings {
        base_url: "http://127.0.0.1:9".into(),
        default_issuer: issuer.into(),
        crl_validity: 7 * 86_400,
        crl_refresh: 3600,
        ocsp_validity: 86_400,
    }
}

/// A new ephemeral software key.
pub fn soft_key(label: &str, algorithm: KeyAlgorithm) -> Arc<dyn PrivateKey> {
    Arc::new(hsm::soft::SoftKey::generate_ephemeral(label, algorithm).expect("software key"))
}

/// A name from its string form (`CN=x,O=y`); the empty string is the empty name.
pub fn name(s: &str) -> Name {
    if s.is_empty() {
        return Name::default();
    }
    s.parse()
        .unwrap_or_else(|e| panic!("name {s:?} does not parse: {e}"))
}

/// A DNS name SAN.
pub fn dns(s: &str) -> GeneralName {
    GeneralName::DnsName(der::asn1::Ia5String::new(s).expect("IA5 DNS name"))
}

/// The request the CLI would hand the authority: `profile`, `subject`, `key`'s public key
/// and algorithm, no SANs or extensions, requester `test`, the profile's validity, the
/// profile's issuer. Change fields with struct update syntax.
pub fn issue_request(profile: &str, subject: Name, key: &dyn PrivateKey) -> IssueRequest {
    IssueRequest {
        profile: profile.into(),
        subject,
        sans: vec![],
        spki_der: key.public_key_der().to_vec(),
        key_algorithm: key.algorithm(),
        extensions: vec![],
        requester: "test".into(),
        validity_days: None,
        issuer: None,
    }
}

/// A PKCS#10 CSR (DER) for `subject` (as [`name`] reads it) with `sans` in an
/// extensionRequest (none when empty), signed by `key` with its usual scheme.
pub fn csr(key: &dyn PrivateKey, subject: &str, sans: &[GeneralName]) -> Vec<u8> {
    let mut attributes = SetOfVec::new();
    if !sans.is_empty() {
        let ext =
            crate::asn1::extension(SubjectAltName::OID, false, &SubjectAltName(sans.to_vec()))
                .expect("SAN extension");
        attributes
            .insert(
                ExtensionReq(vec![ext])
                    .try_into()
                    .expect("extensionRequest"),
            )
            .expect("attribute");
    }
    sign_csr(key, name(subject), attributes)
}

/// A PKCS#10 CSR (DER) for `subject` with exactly `attributes`, signed by `key` with its
/// usual scheme.
pub fn sign_csr(key: &dyn PrivateKey, subject: Name, attributes: SetOfVec<Attribute>) -> Vec<u8> {
    let info = CertReqInfo {
        version: x509_cert::request::Version::V1,
        subject,
        public_key: <spki::SubjectPublicKeyInfoOwned as der::Decode>::from_der(
            key.public_key_der(),
        )
        .expect("key SPKI"),
        attributes,
    };
    let tbs = info.to_der().expect("CertReqInfo DER");
    let scheme = key.algorithm().default_scheme();
    let sig = key.sign(scheme, &tbs).expect("sign the CSR");
    CertReq {
        info,
        algorithm: crate::asn1::signature_algorithm(scheme).expect("signature algorithm"),
        signature: der::asn1::BitString::from_bytes(&sig).expect("signature bits"),
    }
    .to_der()
    .expect("CSR DER")
}

/// Passes the root's key through before the authority gets it (the root certificate is
/// made with the key itself), e.g. to make it fail.
type KeyWrap = Box<dyn FnOnce(Arc<dyn PrivateKey>) -> Arc<dyn PrivateKey>>;

/// Changes the settings after the defaults are filled in.
type SettingsTweak = Box<dyn FnOnce(&mut Settings)>;

/// Builds a [`TestCa`]. The defaults: a root `root` with subject `CN=Test Root,O=Test`,
/// an ephemeral ECDSA P-256 key, valid 3650 days from [`NOW`]; no issuing CA, no RA; the
/// built-in profiles only; [`settings`] with the root (or the issuing CA) as default
/// issuer.
pub struct TestCaBuilder {
    root_subject: String,
    root_algorithm: KeyAlgorithm,
    root_key: Option<Arc<dyn PrivateKey>>,
    wrap_root_key: Option<KeyWrap>,
    issuing: Option<(String, Arc<dyn PrivateKey>)>,
    ra: Option<(String, Arc<dyn PrivateKey>)>,
    profiles: BTreeMap<String, ProfileConfig>,
    tweak_settings: Option<SettingsTweak>,
    now: i64,
}

impl TestCaBuilder {
    /// The root's subject (`CN=…,O=…`).
    pub fn root_subject(mut self, subject: &str) -> Self {
        self.root_subject = subject.into();
        self
    }

    /// The algorithm of the root's ephemeral key.
    pub fn root_algorithm(mut self, algorithm: KeyAlgorithm) -> Self {
        self.root_algorithm = algorithm;
        self
    }

    /// The root's key, instead of an ephemeral one (a key store's, or a faulty key).
    pub fn root_key(mut self, key: Arc<dyn PrivateKey>) -> Self {
        self.root_key = Some(key);
        self
    }

    /// The authority gets the root's key through `wrap` (the root certificate is still
    /// signed by the key itself): a key that fails, hangs or counts.
    pub fn wrap_root_key(
        mut self,
        wrap: impl FnOnce(Arc<dyn PrivateKey>) -> Arc<dyn PrivateKey> + 'static,
    ) -> Self {
        self.wrap_root_key = Some(Box::new(wrap));
        self
    }

    /// An issuing CA `issuing` under the root, with `subject` and `key`, issued with the
    /// `sub-ca` profile for 1000 days; it becomes the default issuer.
    pub fn issuing(mut self, subject: &str, key: Arc<dyn PrivateKey>) -> Self {
        self.issuing = Some((subject.into(), key));
        self
    }

    /// A SCEP RA on the root: `subject`, an ephemeral RSA-2048 key, the `ra` profile
    /// ([`TestCa::ra`]).
    pub fn ra(self, subject: &str) -> Self {
        self.ra_key(subject, soft_key("ra", KeyAlgorithm::Rsa2048))
    }

    /// A SCEP RA on the root with `subject` and `key` ([`TestCa::ra`]).
    pub fn ra_key(mut self, subject: &str, key: Arc<dyn PrivateKey>) -> Self {
        self.ra = Some((subject.into(), key));
        self
    }

    /// The configured profiles (beside the built-in ones).
    pub fn profiles(mut self, profiles: BTreeMap<String, ProfileConfig>) -> Self {
        self.profiles = profiles;
        self
    }

    /// One configured profile.
    pub fn profile(mut self, name: &str, profile: ProfileConfig) -> Self {
        self.profiles.insert(name.into(), profile);
        self
    }

    /// Changes the settings after the defaults are filled in.
    pub fn settings(mut self, tweak: impl FnOnce(&mut Settings) + 'static) -> Self {
        self.tweak_settings = Some(Box::new(tweak));
        self
    }

    /// The clock's time (and the root's notBefore).
    pub fn now(mut self, now: i64) -> Self {
        self.now = now;
        self
    }

    /// Makes the root (recorded in the store), the issuing CA and the RA if asked for,
    /// and the authority.
    pub fn build(self) -> TestCa {
        let store: Arc<dyn Store> =
            Arc::new(store::RedbStore::in_memory().expect("in-memory store"));
        let clock = Arc::new(FixedClock::new(self.now));
        let root_key = self
            .root_key
            .unwrap_or_else(|| soft_key("root", self.root_algorithm));
        let spec = RootSpec {
            name: "root".into(),
            subject: name(&self.root_subject),
            validity_days: 3650,
            scheme: None,
        };
        let root_der = create_root(&store, &root_key, &spec, self.now, "test").expect("root");
        let mut settings = settings(if self.issuing.is_some() {
            "issuing"
        } else {
            "root"
        });
        if let Some(tweak) = self.tweak_settings {
            tweak(&mut settings);
        }
        let root_entity = |key: Arc<dyn PrivateKey>| {
            CaEntity::new("root", root_der.clone(), key, None, None).expect("root entity")
        };

        // The certificates the root signs (issuing CA, RA) come from a root-only authority.
        let mut issuing = None;
        let mut ra = None;
        if self.issuing.is_some() || self.ra.is_some() {
            let mut s = settings.clone();
            s.default_issuer = "root".into();
            let root_only = Authority::from_parts(
                vec![root_entity(root_key.clone())],
                &BTreeMap::new(),
                s,
                store.clone(),
                clock.clone(),
            )
            .expect("root-only authority");
            if let Some((subject, key)) = self.issuing {
                let req = IssueRequest {
                    validity_days: Some(1000),
                    issuer: Some("root".into()),
                    ..issue_request("sub-ca", name(&subject), key.as_ref())
                };
                let der = root_only.issue(&req).expect("issuing CA").record.der;
                issuing = Some(
                    CaEntity::new("issuing", der, key, Some("root".into()), None)
                        .expect("issuing entity"),
                );
            }
            if let Some((subject, key)) = self.ra {
                let req = issue_request("ra", name(&subject), key.as_ref());
                let cert_der = root_only.issue(&req).expect("RA").record.der;
                ra = Some(KeyWithCert { cert_der, key });
            }
        }

        let key = match self.wrap_root_key {
            Some(wrap) => wrap(root_key.clone()),
            None => root_key.clone(),
        };
        let mut root = root_entity(key);
        root.ra = ra.clone().map(Into::into);
        let mut entities = vec![root];
        entities.extend(issuing);
        let auth = Authority::from_parts(
            entities,
            &self.profiles,
            settings.clone(),
            store.clone(),
            clock.clone(),
        )
        .expect("authority");
        TestCa {
            store,
            clock,
            auth: Arc::new(auth),
            root_der,
            root_key,
            ra,
            settings,
        }
    }
}

/// An authority in memory: the parts a test looks at or moves (the clock) and the
/// authority over them. Made by [`TestCa::builder`] or [`TestCa::new`].
pub struct TestCa {
    /// The in-memory store the authority records in.
    pub store: Arc<dyn Store>,
    /// The authority's clock; tests move it.
    pub clock: Arc<FixedClock>,
    /// The authority.
    pub auth: Arc<Authority>,
    /// The root's certificate, DER.
    pub root_der: Vec<u8>,
    /// The root's key (as given or generated, before any [`TestCaBuilder::wrap_root_key`]).
    pub root_key: Arc<dyn PrivateKey>,
    /// The root's SCEP RA, when the builder made one.
    pub ra: Option<KeyWithCert>,
    /// The settings the authority was built with.
    pub settings: Settings,
}

impl TestCa {
    /// A builder with the defaults ([`TestCaBuilder`]).
    pub fn builder() -> TestCaBuilder {
        TestCaBuilder {
            root_subject: "CN=Test Root,O=Test".into(),
            root_algorithm: KeyAlgorithm::EcdsaP256,
            root_key: None,
            wrap_root_key: None,
            issuing: None,
            ra: None,
            profiles: BTreeMap::new(),
            tweak_settings: None,
            now: NOW,
        }
    }

    /// The defaults: a P-256 root and nothing else.
    pub fn new() -> TestCa {
        TestCa::builder().build()
    }

    /// The root's certificate, decoded.
    pub fn root_cert(&self) -> x509_cert::Certificate {
        <x509_cert::Certificate as der::Decode>::from_der(&self.root_der).expect("root cert")
    }

    /// Issues [`issue_request`]`(profile, subject, key)`; panics when it is refused.
    pub fn issue(&self, profile: &str, subject: &str, key: &dyn PrivateKey) -> CertRecord {
        self.auth
            .issue(&issue_request(profile, name(subject), key))
            .unwrap_or_else(|e| panic!("issue {profile} {subject}: {e}"))
            .record
    }

    /// Issues a `device` certificate for `CN=<cn>` to a new P-256 key; returns the record
    /// and the key.
    pub fn issue_device(&self, cn: &str) -> (CertRecord, Arc<dyn PrivateKey>) {
        let key = soft_key("leaf", KeyAlgorithm::EcdsaP256);
        (self.issue("device", &format!("CN={cn}"), key.as_ref()), key)
    }

    /// Issues an `ra` certificate for `subject` to `key` (an RA for one endpoint, not
    /// attached to the CA).
    pub fn issue_ra(&self, subject: &str, key: Arc<dyn PrivateKey>) -> KeyWithCert {
        let cert_der = self.issue("ra", subject, key.as_ref()).der;
        KeyWithCert { cert_der, key }
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}
