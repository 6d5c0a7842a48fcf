//! The authority: the CA hierarchy, the issuance pipeline (docs/architecture.md) and
//! revocation, one module per seam:
//!
//! - [`hierarchy`]: the CAs (their certificates, keys, parents), loading and checking them,
//!   the chain above a CA;
//! - [`issue`]: the issuance pipeline, one function commented step by step;
//! - [`extensions`]: the builders of the extensions a certificate gets from its profile;
//! - [`revoke`]: revocation reasons and revoking;
//! - [`keygen`]: the injected generator of server-side keys;
//! - `ocsp` (private): the OCSP responder over the hierarchy and the store.
//!
//! CRLs are in [`crate::crl`], the OCSP wire structures and response signing in
//! [`crate::ocsp`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use store::{AuditEvent, CertFilter, CertRecord, Store};

use crate::clock::Clock;
use crate::config::CaConfig;
use crate::profile::Profile;
use crate::{Error, Result, asn1};

pub mod extensions;
pub mod hierarchy;
pub mod issue;
pub mod keygen;
mod ocsp;
pub mod revoke;

pub(crate) use extensions::{aki_ext, key_usage_ext, ski_ext};
pub use hierarchy::{
    CaEntity, Generations, IssuerIndex, KEY_LABEL_LINE, KeyWithCert, Renewable,
    cert_der_from_bytes, cert_file_key_label, read_cert_bundle, read_cert_file,
};
pub(crate) use issue::sign_linted;
pub use issue::{IssueBinding, IssueRequest, Issued, Recorded};
pub use revoke::{BLOCKED_KEY_MESSAGE, RevocationReason, RevokeOptions, spki_of_key_material};

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

/// The certificate authority: hierarchy, profiles and the store it records into.
pub struct Authority {
    pub(crate) cas: BTreeMap<String, Arc<CaEntity>>,
    profiles: BTreeMap<String, Profile>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: Settings,
    pub(crate) crl_locks: BTreeMap<String, Mutex<()>>,
    /// This process's name as a CRL-lease holder (random per process, so that two nodes
    /// with the same configured name still exclude each other).
    pub(crate) lease_holder: String,
    pub(crate) ocsp_index: IssuerIndex,
    /// Pre-signed OCSP responses ([`crate::ocsp::OcspCache`]).
    pub(crate) ocsp_cache: crate::ocsp::OcspCache,
    /// Serialises approvals of held requests so that one request is issued once.
    pub(crate) approvals: Mutex<()>,
    /// Counts of unauthenticated refusals, summarised into the audit log.
    pub(crate) refusals: crate::refusals::RefusalCounter,
    /// Generates keys for server-side key generation; injected by the `server` crate.
    pub(crate) key_generator: std::sync::OnceLock<Arc<dyn keygen::KeyGenerator>>,
    /// Receives issuances, refusals and commit times (metrics); injected by `server`.
    pub(crate) observer: std::sync::OnceLock<Arc<dyn crate::observe::Observer>>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("cas", &self.cas.keys().collect::<Vec<_>>())
            .field("profiles", &self.profiles.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Authority {
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

    /// The ACME records of the store (RFC 8555 accounts, orders, authorizations, EAB
    /// keys). [`Error::Config`] when the store backend does not hold them.
    pub fn acme_records(&self) -> Result<&dyn store::acme::AcmeStore> {
        self.store
            .acme()
            .ok_or_else(|| Error::Config("the store backend does not hold ACME records".into()))
    }

    /// Settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The current time by the authority's clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Injects the observer of issuances, refusals and commit times (the `server`
    /// crate's metrics). Once only.
    pub fn set_observer(&self, observer: Arc<dyn crate::observe::Observer>) -> Result<()> {
        self.observer
            .set(observer)
            .map_err(|_| Error::Internal("the observer is set already".into()))
    }

    /// The observer, when one is set.
    pub(crate) fn observer(&self) -> Option<&dyn crate::observe::Observer> {
        self.observer.get().map(|o| o.as_ref())
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
        if let Some(o) = self.observer() {
            o.unauthenticated(action);
        }
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
