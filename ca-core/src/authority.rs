//! The authority: the CA hierarchy, the issuance pipeline (DESIGN.md decision 2) and
//! revocation. CRLs are in [`crate::crl`], OCSP in [`crate::ocsp`].

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use const_oid::AssociatedOid;
use der::asn1::{Ia5String, Null, OctetString};
use der::{Decode, Encode};
use hsm::{KeyAlgorithm, KeyStore, PrivateKey, SignatureScheme};
use spki::SubjectPublicKeyInfoOwned;
use store::{AuditEvent, CertFilter, CertRecord, CertStatus, Revocation, Store};
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::certpolicy::PolicyInformation;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints,
    CertificatePolicies, CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use x509_cert::time::Validity;

use crate::asn1::{self, TbsCertificate, oid};
use crate::clock::Clock;
use crate::config::{CaConfig, ProfileConfig};
use crate::csr::Csr;
use crate::lint::{self, IssuerFacts};
use crate::profile::{Profile, San};
use crate::{Error, Result};

/// A key with the certificate that names it (OCSP responder, SCEP RA).
#[derive(Clone, Debug)]
pub struct KeyWithCert {
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The private key.
    pub key: Arc<dyn PrivateKey>,
}

/// One certificate authority of the hierarchy.
#[derive(Debug)]
pub struct CaEntity {
    /// Its name (URLs, records).
    pub name: String,
    /// Its certificate, DER.
    pub cert_der: Vec<u8>,
    /// Its subject.
    pub subject: Name,
    /// Its SubjectPublicKeyInfo, DER.
    pub spki_der: Vec<u8>,
    /// Its key identifier (subjectKeyIdentifier of its certificate, or computed).
    pub key_id: Vec<u8>,
    /// Its key.
    pub key: Arc<dyn PrivateKey>,
    /// The scheme it signs with.
    pub scheme: SignatureScheme,
    /// notBefore.
    pub not_before: i64,
    /// notAfter.
    pub not_after: i64,
    /// Parent CA name; `None` for a root.
    pub parent: Option<String>,
    /// Delegated OCSP responder.
    pub ocsp: Option<KeyWithCert>,
    /// SCEP RA.
    pub ra: Option<KeyWithCert>,
}

impl CaEntity {
    /// A CA from its certificate and key. Checks that they match and that the signature
    /// scheme fits the key.
    pub fn new(
        name: &str,
        cert_der: Vec<u8>,
        key: Arc<dyn PrivateKey>,
        parent: Option<String>,
        scheme: Option<SignatureScheme>,
    ) -> Result<CaEntity> {
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::Config(format!(
                "authority name {name:?} may only contain letters, digits, - and _"
            )));
        }
        let facts = cert_facts(&cert_der)?;
        if facts.spki_der != key.public_key_der() {
            return Err(Error::Config(format!(
                "authority {name}: its certificate does not match key {:?}",
                key.label()
            )));
        }
        let scheme = scheme.unwrap_or_else(|| key.algorithm().default_scheme());
        if !scheme.fits(key.algorithm()) {
            return Err(Error::Config(format!(
                "authority {name}: signature {scheme:?} does not fit a {} key",
                key.algorithm()
            )));
        }
        Ok(CaEntity {
            name: name.to_string(),
            cert_der,
            subject: facts.subject,
            spki_der: facts.spki_der,
            key_id: facts.key_id,
            key,
            scheme,
            not_before: facts.not_before,
            not_after: facts.not_after,
            parent,
            ocsp: None,
            ra: None,
        })
    }

    fn facts(&self) -> IssuerFacts<'_> {
        IssuerFacts {
            not_before: self.not_before,
            not_after: self.not_after,
            key_id: &self.key_id,
        }
    }
}

/// Settings of the authority that are not per CA.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Base URL of the publishing endpoints.
    pub base_url: String,
    /// Default issuer.
    pub default_issuer: String,
    /// CRL validity in seconds.
    pub crl_validity: i64,
    /// CRL refresh period in seconds.
    pub crl_refresh: i64,
    /// OCSP response validity in seconds.
    pub ocsp_validity: i64,
}

impl Settings {
    /// From the `[ca]` section.
    pub fn from_config(c: &CaConfig) -> Settings {
        Settings {
            base_url: c.base_url.trim_end_matches('/').to_string(),
            default_issuer: c.default_issuer.clone(),
            crl_validity: i64::from(c.crl_validity_hours) * 3600,
            crl_refresh: i64::from(c.crl_refresh_minutes) * 60,
            ocsp_validity: i64::from(c.ocsp_validity_hours) * 3600,
        }
    }

    /// URL of the CRL of CA `name`.
    pub fn crl_url(&self, name: &str) -> String {
        format!("{}/crl/{name}.crl", self.base_url)
    }

    /// URL of the certificate of CA `name`.
    pub fn ca_cert_url(&self, name: &str) -> String {
        format!("{}/ca/{name}.crt", self.base_url)
    }

    /// URL of the OCSP responder.
    pub fn ocsp_url(&self) -> String {
        format!("{}/ocsp", self.base_url)
    }
}

/// A normalised request for a certificate, as protocol front ends and the CLI hand it
/// to the authority (DESIGN.md decision 1).
#[derive(Clone, Debug)]
pub struct IssueRequest {
    /// Profile name.
    pub profile: String,
    /// Requested subject.
    pub subject: Name,
    /// Requested SANs.
    pub sans: Vec<San>,
    /// The subject public key, DER SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
    /// Its algorithm.
    pub key_algorithm: KeyAlgorithm,
    /// Extensions the request asks for (copied only when the profile allows).
    pub extensions: Vec<Extension>,
    /// Who asks.
    pub requester: String,
    /// Shorter validity than the profile's, in days.
    pub validity_days: Option<u32>,
    /// Issue from this CA instead of the profile's. For administrative ceremonies
    /// (`privca init`, `privca ca add`) only; protocol front ends leave it `None`.
    pub issuer: Option<String>,
}

impl IssueRequest {
    /// A request from a verified CSR.
    pub fn from_csr(csr: &Csr, profile: &str, requester: &str) -> IssueRequest {
        IssueRequest {
            profile: profile.to_string(),
            subject: csr.subject.clone(),
            sans: csr.sans.clone(),
            spki_der: csr.spki_der.clone(),
            key_algorithm: csr.key_algorithm,
            extensions: csr.extensions.clone(),
            requester: requester.to_string(),
            validity_days: None,
            issuer: None,
        }
    }
}

/// An issued certificate.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The stored record (includes the DER).
    pub record: CertRecord,
    /// The issuer chain, issuing CA first, root last (DER).
    pub chain: Vec<Vec<u8>>,
}

/// What an issuance records in the same commit as its certificate
/// ([`Authority::issue_bound`]).
#[derive(Clone, Debug, Default)]
pub struct IssueBinding {
    /// Identifies exactly this request; a retransmission has the same key.
    pub replay_key: Option<String>,
    /// Further keys that find the certificate again (SCEP CertPoll).
    pub transaction_keys: Vec<String>,
    /// The one-time challenge the issuance spends.
    pub challenge: Option<crate::enrollment::ChallengeSpend>,
}

/// The outcome of [`Authority::issue_bound`].
#[derive(Clone, Debug)]
pub enum Recorded {
    /// A new certificate.
    Issued(Issued),
    /// The request had been recorded already (a concurrent copy won): its certificate.
    Replayed(CertRecord),
}

/// Revocation reasons an operator may give (RFC 5280 §5.3.1). `certificateHold` and
/// `removeFromCRL` are not offered: privca revocation is permanent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevocationReason {
    /// unspecified (0): the reasonCode extension is omitted.
    Unspecified,
    /// keyCompromise (1).
    KeyCompromise,
    /// cACompromise (2).
    CaCompromise,
    /// affiliationChanged (3).
    AffiliationChanged,
    /// superseded (4).
    Superseded,
    /// cessationOfOperation (5).
    CessationOfOperation,
    /// privilegeWithdrawn (9).
    PrivilegeWithdrawn,
}

impl RevocationReason {
    /// All reasons with their names.
    pub const ALL: [(RevocationReason, &'static str); 7] = [
        (RevocationReason::Unspecified, "unspecified"),
        (RevocationReason::KeyCompromise, "keyCompromise"),
        (RevocationReason::CaCompromise, "cACompromise"),
        (RevocationReason::AffiliationChanged, "affiliationChanged"),
        (RevocationReason::Superseded, "superseded"),
        (
            RevocationReason::CessationOfOperation,
            "cessationOfOperation",
        ),
        (RevocationReason::PrivilegeWithdrawn, "privilegeWithdrawn"),
    ];

    /// Parses an RFC 5280 reason name (case-insensitive).
    pub fn parse(name: &str) -> Result<RevocationReason> {
        Self::ALL
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(r, _)| *r)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|(_, n)| *n).collect();
                Error::BadRequest(format!(
                    "unknown revocation reason {name:?} (one of: {})",
                    names.join(", ")
                ))
            })
    }

    /// The CRLReason code.
    pub fn code(self) -> u8 {
        match self {
            RevocationReason::Unspecified => 0,
            RevocationReason::KeyCompromise => 1,
            RevocationReason::CaCompromise => 2,
            RevocationReason::AffiliationChanged => 3,
            RevocationReason::Superseded => 4,
            RevocationReason::CessationOfOperation => 5,
            RevocationReason::PrivilegeWithdrawn => 9,
        }
    }

    /// Name of a CRLReason code.
    pub fn name_of(code: u8) -> &'static str {
        Self::ALL
            .iter()
            .find(|(r, _)| r.code() == code)
            .map(|(_, n)| *n)
            .unwrap_or("unknown")
    }
}

/// The certificate authority: hierarchy, profiles and the store it records into.
pub struct Authority {
    pub(crate) cas: BTreeMap<String, Arc<CaEntity>>,
    profiles: BTreeMap<String, Profile>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: Settings,
    pub(crate) crl_locks: BTreeMap<String, Mutex<()>>,
    pub(crate) ocsp_index: crate::ocsp::OcspIndex,
    /// Serialises approvals of held requests so that one request is issued once.
    pub(crate) approvals: Mutex<()>,
    /// Counts of unauthenticated refusals, summarised into the audit log.
    pub(crate) refusals: crate::refusals::RefusalCounter,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("cas", &self.cas.keys().collect::<Vec<_>>())
            .field("profiles", &self.profiles.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Reads a certificate file, PEM or DER.
pub fn read_cert_file(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::Config(format!("reading {}: {e}", path.display())))?;
    cert_der_from_bytes(&bytes).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

/// A certificate from PEM or DER bytes, as DER (checked to decode).
pub fn cert_der_from_bytes(bytes: &[u8]) -> Result<Vec<u8>> {
    let der = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        let (label, der) = der::pem::decode_vec(bytes.trim_ascii())
            .map_err(|e| Error::BadRequest(format!("PEM: {e}")))?;
        if label != "CERTIFICATE" {
            return Err(Error::BadRequest(format!(
                "expected a CERTIFICATE, found {label}"
            )));
        }
        der
    } else {
        bytes.to_vec()
    };
    Certificate::from_der(&der).map_err(|e| Error::BadRequest(format!("certificate: {e}")))?;
    Ok(der)
}

/// Facts read from a certificate.
pub(crate) struct CertFacts {
    pub subject: Name,
    pub issuer: Name,
    pub spki_der: Vec<u8>,
    pub key_id: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    pub tbs_der: Vec<u8>,
    pub signature: Vec<u8>,
    pub sig_alg: spki::AlgorithmIdentifierOwned,
}

pub(crate) fn cert_facts(der_bytes: &[u8]) -> Result<CertFacts> {
    let cert = Certificate::from_der(der_bytes)
        .map_err(|e| Error::BadRequest(format!("certificate: {e}")))?;
    let tbs = cert.tbs_certificate();
    let spki_der = tbs.subject_public_key_info().to_der()?;
    let key_id = match tbs.get_extension::<SubjectKeyIdentifier>() {
        Ok(Some((_, ski))) => ski.0.as_bytes().to_vec(),
        _ => asn1::key_identifier(&spki_der)?,
    };
    let outer = asn1::SignedObject::from_der(der_bytes)
        .map_err(|e| Error::BadRequest(format!("certificate: {e}")))?;
    Ok(CertFacts {
        subject: tbs.subject().clone(),
        issuer: tbs.issuer().clone(),
        spki_der,
        key_id,
        not_before: asn1::unix_of(&tbs.validity().not_before),
        not_after: asn1::unix_of(&tbs.validity().not_after),
        tbs_der: outer.tbs.to_der()?,
        signature: cert.signature().raw_bytes().to_vec(),
        sig_alg: cert.signature_algorithm().clone(),
    })
}

fn load_key_with_cert(
    keys: &dyn KeyStore,
    data_dir: &Path,
    cert: &Option<std::path::PathBuf>,
    key: &Option<String>,
    what: &str,
    ca: &str,
) -> Result<Option<KeyWithCert>> {
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(c), Some(k)) => {
            let cert_der = read_cert_file(&data_dir.join(c))?;
            let key = keys.open(k)?;
            if cert_facts(&cert_der)?.spki_der != key.public_key_der() {
                return Err(Error::Config(format!(
                    "authority {ca}: the {what} certificate does not match key {k:?}"
                )));
            }
            Ok(Some(KeyWithCert { cert_der, key }))
        }
        _ => Err(Error::Config(format!(
            "authority {ca}: {what} certificate and key must be given together"
        ))),
    }
}

impl Authority {
    /// Builds the authority from configuration: loads every CA certificate and key,
    /// checks that keys match certificates and that each subordinate is signed by its
    /// parent, and validates the profiles.
    pub fn load(
        config: &CaConfig,
        profiles: &BTreeMap<String, ProfileConfig>,
        data_dir: &Path,
        keys: &dyn KeyStore,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Authority> {
        let mut entities = Vec::new();
        for ac in &config.authorities {
            let cert_der = read_cert_file(&data_dir.join(&ac.certificate))?;
            let key = keys.open(&ac.key)?;
            let ocsp = load_key_with_cert(
                keys,
                data_dir,
                &ac.ocsp_certificate,
                &ac.ocsp_key,
                "OCSP",
                &ac.name,
            )?;
            let ra = load_key_with_cert(
                keys,
                data_dir,
                &ac.ra_certificate,
                &ac.ra_key,
                "RA",
                &ac.name,
            )?;
            let mut e = CaEntity::new(&ac.name, cert_der, key, ac.parent.clone(), ac.signature)?;
            e.ocsp = ocsp;
            e.ra = ra;
            entities.push(e);
        }
        Authority::from_parts(
            entities,
            profiles,
            Settings::from_config(config),
            store,
            clock,
        )
    }

    /// Builds the authority from loaded CAs (parents before children). Checks that each
    /// subordinate names its parent as issuer and is signed by it, that a root is
    /// self-signed, and validates the profiles against the CAs.
    pub fn from_parts(
        entities: Vec<CaEntity>,
        profiles: &BTreeMap<String, ProfileConfig>,
        settings: Settings,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Authority> {
        let mut cas: BTreeMap<String, Arc<CaEntity>> = BTreeMap::new();
        for e in entities {
            if cas.contains_key(&e.name) {
                return Err(Error::Config(format!(
                    "authority {} is defined twice",
                    e.name
                )));
            }
            let facts = cert_facts(&e.cert_der)?;
            let verify_spki = match &e.parent {
                Some(p) => {
                    let parent = cas.get(p).ok_or_else(|| {
                        Error::Config(format!(
                            "authority {}: parent {p} is not defined before it",
                            e.name
                        ))
                    })?;
                    if parent.subject != facts.issuer {
                        return Err(Error::Config(format!(
                            "authority {}: its issuer name is not the subject of {p}",
                            e.name
                        )));
                    }
                    parent.spki_der.clone()
                }
                None => facts.spki_der.clone(),
            };
            verify_cert_signature(&facts, &verify_spki).map_err(|_| {
                Error::Config(format!(
                    "authority {}: certificate signature does not verify with its {}",
                    e.name,
                    if e.parent.is_some() {
                        "parent's key"
                    } else {
                        "own key (a root must be self-signed)"
                    }
                ))
            })?;
            cas.insert(e.name.clone(), Arc::new(e));
        }
        if !cas.contains_key(&settings.default_issuer) {
            return Err(Error::Config(format!(
                "default_issuer {} is not a configured authority",
                settings.default_issuer
            )));
        }
        let profiles = Profile::load_all(profiles, &settings.default_issuer)?;
        for p in profiles.values() {
            if !cas.contains_key(&p.issuer) {
                return Err(Error::Config(format!(
                    "profile {}: issuer {} is not a configured authority",
                    p.name, p.issuer
                )));
            }
        }
        let crl_locks = cas.keys().map(|k| (k.clone(), Mutex::new(()))).collect();
        let ocsp_index = crate::ocsp::OcspIndex::build(&cas)?;
        Ok(Authority {
            cas,
            profiles,
            store,
            clock,
            settings,
            crl_locks,
            approvals: Mutex::new(()),
            ocsp_index,
            refusals: crate::refusals::RefusalCounter::default(),
        })
    }

    /// The configured profiles, by name.
    pub fn profiles(&self) -> &BTreeMap<String, Profile> {
        &self.profiles
    }

    /// The CAs, by name.
    pub fn authorities(&self) -> &BTreeMap<String, Arc<CaEntity>> {
        &self.cas
    }

    /// One CA by name.
    pub fn ca(&self, name: &str) -> Result<&Arc<CaEntity>> {
        self.cas
            .get(name)
            .ok_or_else(|| Error::NotFound(format!("no authority named {name}")))
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The current time by the authority's clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The chain above a CA, that CA first, root last (DER).
    pub fn chain(&self, ca: &str) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut cur = Some(ca.to_string());
        while let Some(name) = cur {
            let e = self.ca(&name)?;
            out.push(e.cert_der.clone());
            cur = e.parent.clone();
            if out.len() > 8 {
                return Err(Error::Config("CA hierarchy has a loop".into()));
            }
        }
        Ok(out)
    }

    /// Issues a certificate. Refusals are audited; on success the record and its audit
    /// entry are durable before this returns.
    pub fn issue(&self, req: &IssueRequest) -> Result<Issued> {
        match self.issue_bound(req, &IssueBinding::default())? {
            Recorded::Issued(issued) => Ok(issued),
            // Without a replay key no earlier certificate can be found.
            Recorded::Replayed(_) => Err(Error::Internal(
                "an unbound issuance found an earlier transaction".into(),
            )),
        }
    }

    /// Issues a certificate and records with it, in the same durable commit, what
    /// `binding` names: the protocol transaction keys (so that a repeated request is
    /// answered with this certificate) and the one-time challenge it spends. A crash can
    /// therefore never leave a certificate without its transaction, nor a spent challenge
    /// without its certificate (RFC 8894 §3.3.1).
    ///
    /// If the replay key already names a valid certificate (a concurrent copy of the same
    /// request was recorded first), nothing is recorded and that certificate is returned as
    /// [`Recorded::Replayed`]. If the challenge was spent meanwhile, or is wrong or
    /// expired, nothing is recorded and the answer is `Unauthorized`.
    pub fn issue_bound(&self, req: &IssueRequest, binding: &IssueBinding) -> Result<Recorded> {
        match self.issue_inner(req, binding) {
            Ok(Recorded::Replayed(record)) => {
                tracing::info!(
                    serial = %asn1::serial_hex(&record.serial),
                    "a concurrent copy of the request was recorded first; answering with its certificate"
                );
                Ok(Recorded::Replayed(record))
            }
            Ok(Recorded::Issued(issued)) => {
                tracing::info!(
                    serial = %asn1::serial_hex(&issued.record.serial),
                    profile = %req.profile,
                    requester = %req.requester,
                    "certificate issued"
                );
                Ok(Recorded::Issued(issued))
            }
            Err(e) => {
                self.audit_refusal("issue-refused", &req.requester, &req.profile, &e);
                Err(e)
            }
        }
    }

    /// Appends an audit entry for a refused operation; failure to audit is logged.
    pub fn audit_refusal(&self, action: &str, actor: &str, subject: &str, e: &Error) {
        let event = AuditEvent {
            time: self.clock.now(),
            action: action.to_string(),
            actor: actor.to_string(),
            subject: subject.to_string(),
            detail: format!("{}: {}", e.kind(), e.reason()),
        };
        if let Err(ae) = self.store.append_audit(&event) {
            tracing::error!(error = %ae, "could not audit a refusal");
        }
        tracing::warn!(action, actor, subject, error = %e, "refused");
    }

    /// Notes the refusal of a request that never authenticated (wrong admin token, wrong
    /// EST password, malformed SCEP message, wrong challenge). It is counted per `action`
    /// and `source` and logged with a rate limit, not audited one by one; once a window
    /// is over, one summary entry goes into the audit log ([`crate::refusals`]).
    pub fn note_unauthenticated(&self, action: &str, source: &str, detail: &str) {
        if self.refusals.note(self.clock.now(), action, source, detail)
            && let Err(e) = self.flush_refusals(false)
        {
            tracing::error!(error = %e, "could not audit the summary of refusals");
        }
    }

    /// Writes the summary of unauthenticated refusals into the audit log: when its
    /// window is over, or at once with `force` (shutdown). Returns its sequence number,
    /// `None` when there was nothing (or nothing due) to write. On failure the counts are
    /// kept for the next summary.
    pub fn flush_refusals(&self, force: bool) -> Result<Option<u64>> {
        let now = self.clock.now();
        if !force && !self.refusals.due(now) {
            return Ok(None);
        }
        let Some((event, taken)) = self.refusals.take(now, "privca") else {
            return Ok(None);
        };
        match self.store.append_audit(&event) {
            Ok(seq) => {
                tracing::info!(seq, summary = %event.subject, "unauthenticated refusals audited");
                Ok(Some(seq))
            }
            Err(e) => {
                self.refusals.restore(taken);
                Err(e.into())
            }
        }
    }

    fn issue_inner(&self, req: &IssueRequest, binding: &IssueBinding) -> Result<Recorded> {
        // 1. Normalise the request: profile, issuer, key.
        let profile = self.profiles.get(&req.profile).ok_or_else(|| {
            Error::NotFound(format!(
                "no profile named {:?} (see `privca profiles`)",
                req.profile
            ))
        })?;
        let ca = self
            .ca(req.issuer.as_deref().unwrap_or(&profile.issuer))?
            .clone();
        let spki_alg = hsm::spki_algorithm(&req.spki_der)
            .map_err(|e| Error::BadRequest(format!("public key: {e}")))?;
        if spki_alg != req.key_algorithm {
            return Err(Error::BadRequest(
                "public key does not match its stated algorithm".into(),
            ));
        }

        // 2. Check profile and policy: key, subject template, names (the SANs and the
        //    names the subject carries), validity.
        profile.check_key(req.key_algorithm)?;
        profile.check_public_key(&req.spki_der)?;
        let subject = profile.build_subject(&req.subject)?;
        let sans = profile.check_sans(&req.sans, &subject)?;
        profile.check_subject_names(&subject, &sans)?;
        if subject.is_empty() && sans.is_empty() {
            // RFC 5280 §4.1.2.6: a certificate must name its subject somewhere.
            return Err(Error::BadRequest(format!(
                "the certificate would name nobody: the request has no subject attribute \
                 profile {} keeps and no subjectAltName",
                profile.name
            )));
        }
        let now = self.clock.now();
        if now >= ca.not_after {
            return Err(Error::PolicyRefused(format!(
                "authority {} has expired",
                ca.name
            )));
        }
        let mut days = profile.config.validity_days;
        if let Some(d) = req.validity_days {
            if d == 0 || d > days {
                return Err(Error::PolicyRefused(format!(
                    "validity of {d} days is outside 1..={days} allowed by profile {}",
                    profile.name
                )));
            }
            days = d;
        }
        let not_before = (now - i64::from(profile.config.backdate_seconds)).max(ca.not_before);
        let not_after = (now + i64::from(days) * 86_400).min(ca.not_after);

        // 3. Reserve a fresh serial in the store.
        let serial = self.reserve_serial(&ca.name)?;

        // 4. Build the TBS certificate.
        let extensions = self.extensions_for(profile, &ca, req, &subject, &sans)?;
        let tbs = TbsCertificate {
            version: 2,
            serial_number: asn1::serial_number(&serial)?,
            signature: asn1::signature_algorithm(ca.scheme)?,
            issuer: ca.subject.clone(),
            validity: Validity::new(asn1::x509_time(not_before)?, asn1::x509_time(not_after)?),
            subject: subject.clone(),
            subject_public_key_info: SubjectPublicKeyInfoOwned::from_der(&req.spki_der)
                .map_err(|e| Error::BadRequest(format!("public key: {e}")))?,
            extensions,
        };

        // 5.–7. Lint, sign through hsm, verify the signature (not for a request whose
        // time already ran out: nobody waits for it).
        let linted = lint::lint_certificate(tbs, &ca.facts(), false)?;
        crate::deadline::check()?;
        let der = sign_linted(linted, &ca.key, ca.scheme, &ca.spki_der)?;

        // 8.–9. Record durably together with the audit entry.
        let record = CertRecord {
            serial: serial.clone(),
            issuer: ca.name.clone(),
            subject: subject.to_string(),
            sans: sans.iter().map(San::display).collect(),
            profile: profile.name.clone(),
            requester: req.requester.clone(),
            not_before,
            not_after,
            issued_at: now,
            status: CertStatus::Valid,
            revocation: None,
            der,
        };
        let audit = AuditEvent {
            time: now,
            action: "issue".into(),
            actor: req.requester.clone(),
            subject: asn1::serial_hex(&serial),
            detail: format!(
                "profile={} issuer={} subject={}",
                profile.name, ca.name, record.subject
            ),
        };
        // A request the HTTP layer already answered "timed out" must not be recorded; once
        // claimed here, the HTTP layer waits for this commit instead (deadline.rs).
        crate::deadline::begin_commit()?;
        // The transaction keys and the spent challenge go into the same commit.
        let store_binding = store::IssuanceBinding {
            replay_key: binding.replay_key.clone(),
            transaction_keys: binding.transaction_keys.clone(),
            challenge: binding.challenge.as_ref().map(|c| store::ChallengeUse {
                hash: c.hash.clone(),
                endpoint: c.endpoint.clone(),
                now,
                audit: AuditEvent {
                    time: now,
                    action: "challenge-use".into(),
                    actor: req.requester.clone(),
                    subject: c.endpoint.clone(),
                    detail: format!("serial={}", asn1::serial_hex(&serial)),
                },
            }),
        };
        match self
            .store
            .record_issuance_bound(&record, &audit, &store_binding)
        {
            Ok(_) => {}
            Err(store::Error::Conflict(e)) => {
                // Either a copy of this request was recorded first, or the challenge was
                // spent by another request meanwhile.
                if let Some(key) = &binding.replay_key
                    && let Some(earlier) = self.find_transaction(key)?
                    && earlier.revocation.is_none()
                {
                    return Ok(Recorded::Replayed(earlier));
                }
                if binding.challenge.is_some() {
                    return Err(crate::enrollment::challenge_refusal(
                        &store::Error::Conflict(e),
                    ));
                }
                return Err(Error::Store(store::Error::Conflict(e)));
            }
            Err(e @ (store::Error::NotFound(_) | store::Error::Invalid(_)))
                if binding.challenge.is_some() =>
            {
                return Err(crate::enrollment::challenge_refusal(&e));
            }
            Err(e) => return Err(e.into()),
        }

        // 10. Return.
        Ok(Recorded::Issued(Issued {
            record,
            chain: self.chain(&ca.name)?,
        }))
    }

    /// Reserves a fresh random serial; retries on the (astronomically unlikely) collision.
    fn reserve_serial(&self, issuer: &str) -> Result<Vec<u8>> {
        for _ in 0..4 {
            let serial = asn1::random_serial();
            match self.store.reserve_serial(&serial, issuer) {
                Ok(()) => return Ok(serial),
                Err(store::Error::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Internal("could not reserve a unique serial".into()))
    }

    fn extensions_for(
        &self,
        profile: &Profile,
        ca: &CaEntity,
        req: &IssueRequest,
        subject: &Name,
        sans: &[San],
    ) -> Result<Vec<Extension>> {
        let mut exts = Vec::new();
        if profile.config.ca {
            let bc = BasicConstraints {
                ca: true,
                path_len_constraint: profile.config.path_len,
            };
            exts.push(asn1::extension(BasicConstraints::OID, true, &bc)?);
        }
        exts.push(key_usage_ext(profile.key_usage_for(req.key_algorithm))?);
        if !profile.ekus().is_empty() {
            exts.push(asn1::extension(
                ExtendedKeyUsage::OID,
                false,
                &ExtendedKeyUsage(profile.ekus().to_vec()),
            )?);
        }
        exts.push(ski_ext(&req.spki_der)?);
        exts.push(aki_ext(&ca.key_id)?);
        if !sans.is_empty() {
            let names = sans
                .iter()
                .map(San::to_general_name)
                .collect::<Result<Vec<_>>>()?;
            // RFC 5280 §4.2.1.6: critical when the subject is empty.
            exts.push(asn1::extension(
                SubjectAltName::OID,
                subject.is_empty(),
                &SubjectAltName(names),
            )?);
        }
        if profile.config.revocation_urls {
            let crl = profile
                .config
                .crl_url
                .clone()
                .unwrap_or_else(|| self.settings.crl_url(&ca.name));
            let ocsp = profile
                .config
                .ocsp_url
                .clone()
                .unwrap_or_else(|| self.settings.ocsp_url());
            let issuers = profile
                .config
                .ca_issuers_url
                .clone()
                .unwrap_or_else(|| self.settings.ca_cert_url(&ca.name));
            exts.push(cdp_ext(&crl)?);
            exts.push(aia_ext(Some(&ocsp), &issuers)?);
        }
        if !profile.policies().is_empty() {
            let policies = CertificatePolicies(
                profile
                    .policies()
                    .iter()
                    .map(|o| PolicyInformation {
                        policy_identifier: *o,
                        policy_qualifiers: None,
                    })
                    .collect(),
            );
            exts.push(asn1::extension(CertificatePolicies::OID, false, &policies)?);
        }
        if profile.config.ocsp_nocheck {
            exts.push(asn1::extension(oid::OCSP_NOCHECK, false, &Null)?);
        }
        if profile.config.copy_csr_extensions {
            for e in &req.extensions {
                if COPYABLE.contains(&e.extn_id) && !exts.iter().any(|x| x.extn_id == e.extn_id) {
                    exts.push(e.clone());
                }
            }
        }
        Ok(exts)
    }

    /// Revokes a certificate, then re-publishes its issuer's CRL.
    pub fn revoke(
        &self,
        serial: &[u8],
        reason: RevocationReason,
        actor: &str,
    ) -> Result<CertRecord> {
        let now = self.clock.now();
        let audit = AuditEvent {
            time: now,
            action: "revoke".into(),
            actor: actor.to_string(),
            subject: asn1::serial_hex(serial),
            detail: format!("reason={}", RevocationReason::name_of(reason.code())),
        };
        let record = match self.store.revoke(
            serial,
            Revocation {
                time: now,
                reason: reason.code(),
            },
            &audit,
        ) {
            Ok(r) => r,
            Err(e) => {
                let e = match e {
                    store::Error::NotFound(_) => Error::NotFound(format!(
                        "no certificate with serial {}",
                        asn1::serial_hex(serial)
                    )),
                    store::Error::Conflict(_) => Error::Conflict(format!(
                        "certificate {} is already revoked",
                        asn1::serial_hex(serial)
                    )),
                    other => Error::Store(other),
                };
                self.audit_refusal("revoke-refused", actor, &asn1::serial_hex(serial), &e);
                if e.kind() == crate::ErrorKind::Conflict {
                    // A retry after a crash between the revocation and its CRL: make sure
                    // the CRL lists it before saying "already revoked".
                    self.republish_revoked(serial, actor);
                }
                return Err(e);
            }
        };
        tracing::info!(serial = %asn1::serial_hex(serial), reason = reason.code(), actor, "certificate revoked");
        if self.cas.contains_key(&record.issuer)
            && let Err(e) = self.generate_crl(&record.issuer, actor)
        {
            // The revocation is durable; the scheduled refresh will publish it.
            tracing::error!(error = %e, issuer = %record.issuer, "CRL regeneration after revocation failed");
        }
        Ok(record)
    }

    /// A certificate record by serial.
    pub fn get(&self, serial: &[u8]) -> Result<CertRecord> {
        self.store.get_cert(serial)?.ok_or_else(|| {
            Error::NotFound(format!(
                "no certificate with serial {}",
                asn1::serial_hex(serial)
            ))
        })
    }

    /// Lists certificate records.
    pub fn list(&self, filter: &CertFilter) -> Result<Vec<CertRecord>> {
        Ok(self.store.list_certs(filter)?)
    }

    /// One page of certificate records without their DER ([`Store::list_cert_page`]).
    pub fn list_page(
        &self,
        filter: &CertFilter,
        after: Option<&store::CertCursor>,
        page_size: usize,
    ) -> Result<store::CertPage> {
        Ok(self.store.list_cert_page(filter, after, page_size)?)
    }
}

/// Extensions a CSR may carry into a certificate when the profile copies them. The CA's
/// own extensions (key usage, constraints, identifiers, URLs) are never taken from a CSR.
const COPYABLE: [const_oid::ObjectIdentifier; 1] = [oid::MS_NTDS_CA_SECURITY_EXT];

pub(crate) fn sign_linted(
    linted: lint::LintedTbs,
    key: &Arc<dyn PrivateKey>,
    scheme: SignatureScheme,
    verify_spki: &[u8],
) -> Result<Vec<u8>> {
    let tbs_der = linted.into_inner().to_der()?;
    let der = asn1::sign_and_wrap(key.as_ref(), scheme, verify_spki, &tbs_der)?;
    // The result must decode as a certificate.
    Certificate::from_der(&der)
        .map_err(|e| Error::Internal(format!("issued certificate does not decode: {e}")))?;
    Ok(der)
}

pub(crate) fn verify_cert_signature(facts: &CertFacts, issuer_spki: &[u8]) -> Result<()> {
    let alg_ref = spki::AlgorithmIdentifierRef {
        oid: facts.sig_alg.oid,
        parameters: facts.sig_alg.parameters.as_ref().map(der::AnyRef::from),
    };
    let received = asn1::received_algorithm(&alg_ref).ok_or_else(|| {
        Error::BadRequest(format!(
            "signature algorithm {} is not supported",
            facts.sig_alg.oid
        ))
    })?;
    hsm::verify_received(received, issuer_spki, &facts.tbs_der, &facts.signature)?;
    Ok(())
}

pub(crate) fn key_usage_ext(bits: der::flagset::FlagSet<KeyUsages>) -> Result<Extension> {
    asn1::extension(KeyUsage::OID, true, &KeyUsage(bits))
}

pub(crate) fn ski_ext(spki_der: &[u8]) -> Result<Extension> {
    let ski = SubjectKeyIdentifier(OctetString::new(asn1::key_identifier(spki_der)?)?);
    asn1::extension(SubjectKeyIdentifier::OID, false, &ski)
}

pub(crate) fn aki_ext(key_id: &[u8]) -> Result<Extension> {
    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(key_id.to_vec())?),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    asn1::extension(AuthorityKeyIdentifier::OID, false, &aki)
}

fn uri(u: &str) -> Result<GeneralName> {
    Ok(GeneralName::UniformResourceIdentifier(
        Ia5String::new(u).map_err(|_| Error::Config(format!("URL {u:?} is not ASCII")))?,
    ))
}

pub(crate) fn cdp_ext(url: &str) -> Result<Extension> {
    let dp = CrlDistributionPoints(vec![DistributionPoint {
        distribution_point: Some(DistributionPointName::FullName(vec![uri(url)?])),
        reasons: None,
        crl_issuer: None,
    }]);
    asn1::extension(CrlDistributionPoints::OID, false, &dp)
}

pub(crate) fn aia_ext(ocsp: Option<&str>, ca_issuers: &str) -> Result<Extension> {
    let mut v = Vec::new();
    if let Some(o) = ocsp {
        v.push(AccessDescription {
            access_method: oid::AD_OCSP,
            access_location: uri(o)?,
        });
    }
    v.push(AccessDescription {
        access_method: oid::AD_CA_ISSUERS,
        access_location: uri(ca_issuers)?,
    });
    asn1::extension(
        AuthorityInfoAccessSyntax::OID,
        false,
        &AuthorityInfoAccessSyntax(v),
    )
}
