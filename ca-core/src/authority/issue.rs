//! The issuance pipeline (docs/architecture.md): one function, [`Authority::issue_bound`]
//! and its inner steps, commented in order: normalise the request, check profile and
//! policy, reserve a serial, build the TBS certificate, lint, sign, verify, record durably
//! with its audit entry, return.

use std::sync::Arc;

use der::{Decode, Encode};
use hsm::{KeyAlgorithm, PrivateKey, SignatureScheme};
use spki::SubjectPublicKeyInfoOwned;
use store::{AuditEvent, CertRecord, CertStatus};
use x509_cert::Certificate;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::time::Validity;

use super::Authority;
use crate::asn1::{self, TbsCertificate};
use crate::csr::Csr;
use crate::lint;
use crate::profile::San;
use crate::{Error, Result};

/// A normalised request for a certificate, as protocol front ends and the CLI hand it
/// to the authority (docs/architecture.md, decision 1).
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

impl Authority {
    /// Issues a certificate. Refusals are audited; on success the record and its audit
    /// entry are durable before this returns.
    /// The observer counts it under the channel `admin` (the admin API and the CLI,
    /// approvals of held requests included).
    pub fn issue(&self, req: &IssueRequest) -> Result<Issued> {
        let out = match self.issue_bound(req, &IssueBinding::default()) {
            Ok(Recorded::Issued(issued)) => Ok(issued),
            // Without a replay key no earlier certificate can be found.
            Ok(Recorded::Replayed(_)) => Err(Error::Internal(
                "an unbound issuance found an earlier transaction".into(),
            )),
            Err(e) => Err(e),
        };
        if let Some(o) = self.observer() {
            let profile = self.profile_label(&req.profile);
            match &out {
                Ok(_) => o.issued("admin", profile),
                Err(e) => o.refused("admin", profile, e.kind()),
            }
        }
        out
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
        // A key revoked for keyCompromise is never certified again (RFC 5280 §5.3.1),
        // whatever the channel: this is the one place that checks it.
        self.check_key_not_blocked(&req.spki_der)?;
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
                return Err(Error::BadTime(format!(
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
            spki_sha256: asn1::spki_sha256(&req.spki_der),
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
        let started = std::time::Instant::now();
        let committed = self
            .store
            .record_issuance_bound(&record, &audit, &store_binding);
        if let Some(o) = self.observer() {
            o.store_commit(started.elapsed());
        }
        match committed {
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
}

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
