//! Revocation (RFC 5280 §5.3.1, §5.3.2): the reasons an operator may give, revoking by
//! serial, by certificate and by public key, the keyCompromise blocklist, invalidity
//! dates, and certificateHold with its release.

use der::Decode;
use store::{AuditEvent, CertRecord, Revocation};

use super::Authority;
use crate::{Error, ErrorKind, Result, asn1};

/// What a client is told when its request carries a blocked key.
pub const BLOCKED_KEY_MESSAGE: &str =
    "the public key of this request was revoked for key compromise";

/// Revocation reasons an operator may give (RFC 5280 §5.3.1). `certificateHold` only for
/// certificates whose profile says `allow_hold = true`; `removeFromCRL` is not a reason
/// one revokes with (it belongs to delta CRLs; a release simply leaves the next complete
/// CRL).
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
    /// certificateHold (6): reversible ([`Authority::release`]).
    CertificateHold,
    /// privilegeWithdrawn (9).
    PrivilegeWithdrawn,
}

impl RevocationReason {
    /// All reasons with their names.
    pub const ALL: [(RevocationReason, &'static str); 8] = [
        (RevocationReason::Unspecified, "unspecified"),
        (RevocationReason::KeyCompromise, "keyCompromise"),
        (RevocationReason::CaCompromise, "cACompromise"),
        (RevocationReason::AffiliationChanged, "affiliationChanged"),
        (RevocationReason::Superseded, "superseded"),
        (
            RevocationReason::CessationOfOperation,
            "cessationOfOperation",
        ),
        (RevocationReason::CertificateHold, "certificateHold"),
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
            RevocationReason::CertificateHold => 6,
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

/// How to revoke: the reason and, optionally, the invalidity date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevokeOptions {
    /// The CRLReason.
    pub reason: RevocationReason,
    /// RFC 5280 §5.3.2 invalidityDate: when the key is known or suspected to have been
    /// compromised or the certificate otherwise became invalid. Not in the future.
    pub invalidity_date: Option<i64>,
}

impl RevokeOptions {
    /// A revocation for `reason` without an invalidity date.
    pub fn reason(reason: RevocationReason) -> RevokeOptions {
        RevokeOptions {
            reason,
            invalidity_date: None,
        }
    }
}

/// The SubjectPublicKeyInfo DER of key material an operator hands in to revoke by key:
/// a PEM (or DER) public key (`PUBLIC KEY`), certificate request (`CERTIFICATE REQUEST`,
/// RFC 2986) or certificate (`CERTIFICATE`). Anything else is a bad request.
pub fn spki_of_key_material(bytes: &[u8]) -> Result<Vec<u8>> {
    use der::Encode;
    let der_bytes = match std::str::from_utf8(bytes) {
        Ok(text) if text.contains("-----BEGIN") => {
            let (label, der_bytes) = der::pem::decode_vec(text.trim().as_bytes())
                .map_err(|e| Error::BadRequest(format!("key file: not PEM: {e}")))?;
            match label {
                "PUBLIC KEY"
                | "CERTIFICATE REQUEST"
                | "NEW CERTIFICATE REQUEST"
                | "CERTIFICATE" => der_bytes,
                other => {
                    return Err(Error::BadRequest(format!(
                        "key file: a PEM {other:?} is not a public key, certificate request \
                         or certificate"
                    )));
                }
            }
        }
        _ => bytes.to_vec(),
    };
    if let Ok(spki) = spki::SubjectPublicKeyInfoOwned::from_der(&der_bytes) {
        return Ok(spki.to_der()?);
    }
    if let Ok(cert) = x509_cert::Certificate::from_der(&der_bytes) {
        return Ok(cert.tbs_certificate().subject_public_key_info().to_der()?);
    }
    if let Ok(req) = x509_cert::request::CertReq::from_der(&der_bytes) {
        return Ok(req.info.public_key.to_der()?);
    }
    Err(Error::BadRequest(
        "key file: neither a public key, a certificate request nor a certificate".into(),
    ))
}

impl Authority {
    /// Revokes a certificate for `reason`, then re-publishes its issuer's CRL.
    pub fn revoke(
        &self,
        serial: &[u8],
        reason: RevocationReason,
        actor: &str,
    ) -> Result<CertRecord> {
        self.revoke_with(serial, RevokeOptions::reason(reason), actor)
    }

    /// Revokes a certificate ([`Authority::revoke_one`]), then re-publishes its issuer's
    /// CRL. Refusals are audited.
    pub fn revoke_with(
        &self,
        serial: &[u8],
        options: RevokeOptions,
        actor: &str,
    ) -> Result<CertRecord> {
        let record = self.revoke_one(serial, options, actor)?;
        self.publish_after_revocation(&record.issuer, actor);
        Ok(record)
    }

    /// Revokes the certificate in `cert_der` (DER or PEM), which must be one this CA
    /// issued (byte-equal to its record): another certificate, even with a serial privca
    /// knows, is refused as unknown and nothing changes.
    pub fn revoke_certificate(
        &self,
        cert_bytes: &[u8],
        options: RevokeOptions,
        actor: &str,
    ) -> Result<CertRecord> {
        let found = super::cert_der_from_bytes(cert_bytes)
            .map_err(|e| Error::BadRequest(format!("certificate file: {}", e.reason())))
            .and_then(|der| self.issued_certificate(&der));
        match found {
            Ok(Some(record)) => self.revoke_with(&record.serial, options, actor),
            Ok(None) => {
                let e = Error::UnknownCertificate(
                    "the certificate was not issued by this CA (no record is byte-equal to it)"
                        .into(),
                );
                self.audit_refusal("revoke-refused", actor, "certificate", &e);
                Err(e)
            }
            Err(e) => {
                self.audit_refusal("revoke-refused", actor, "certificate", &e);
                Err(e)
            }
        }
    }

    /// Revokes every certificate with the public key `spki_der` (a SubjectPublicKeyInfo,
    /// [`spki_of_key_material`]) that is not revoked yet (a certificate on hold counts as
    /// not revoked for a permanent reason), found through the store's key index. A key
    /// that matches no such certificate is [`Error::NotFound`] and nothing changes
    /// (keyCompromise blocks the key only by revoking a certificate of it). Returns the
    /// revoked records in serial order; the CRL of each issuer is re-published once.
    pub fn revoke_by_key(
        &self,
        spki_der: &[u8],
        options: RevokeOptions,
        actor: &str,
    ) -> Result<Vec<CertRecord>> {
        let hash = asn1::spki_sha256(spki_der);
        let subject = format!("key:{}", hex::encode(&hash));
        // Certificates recorded before the key index existed are indexed first (once per
        // database), so that no certificate with this key is missed.
        let indexed = self
            .store
            .index_missing_keys(&|der| asn1::cert_spki_sha256(der).ok())
            .and_then(|_| self.store.certs_by_spki(&hash));
        let targets = match indexed {
            Ok(found) => found
                .into_iter()
                .filter(|r| match r.revocation {
                    None => true,
                    Some(rv) => rv.is_hold() && options.reason != RevocationReason::CertificateHold,
                })
                .collect::<Vec<_>>(),
            Err(e) => {
                let e = Error::Store(e);
                self.audit_refusal("revoke-refused", actor, &subject, &e);
                return Err(e);
            }
        };
        if targets.is_empty() {
            let e = Error::NotFound(format!(
                "no unrevoked certificate has this public key (SPKI SHA-256 {})",
                hex::encode(&hash)
            ));
            self.audit_refusal("revoke-refused", actor, &subject, &e);
            return Err(e);
        }
        // Checked for all before any is revoked, so that a refusal changes nothing.
        for record in &targets {
            if let Err(e) = self.check_revocation(record, options) {
                self.audit_refusal(
                    "revoke-refused",
                    actor,
                    &asn1::serial_hex(&record.serial),
                    &e,
                );
                return Err(e);
            }
        }
        let mut revoked = Vec::with_capacity(targets.len());
        for record in &targets {
            revoked.push(self.revoke_one(&record.serial, options, actor)?);
        }
        let issuers: std::collections::BTreeSet<&str> =
            revoked.iter().map(|r| r.issuer.as_str()).collect();
        for issuer in issuers {
            self.publish_after_revocation(issuer, actor);
        }
        Ok(revoked)
    }

    /// Releases a certificate from hold (RFC 5280 §5.3.1 certificateHold): it is valid
    /// again, its pre-signed OCSP answers are dropped (the next answer is "good") and its
    /// issuer's CRL is re-published without it. Refusals are audited: an unknown serial
    /// is not found, a certificate not on hold a conflict.
    pub fn release(&self, serial: &[u8], actor: &str) -> Result<CertRecord> {
        let now = self.clock.now();
        let audit = AuditEvent {
            time: now,
            action: "release".into(),
            actor: actor.to_string(),
            subject: asn1::serial_hex(serial),
            detail: "released from certificateHold".into(),
        };
        let result = self.store.release_hold(serial, &audit);
        // Dropped either way: a release that committed must not be answered "revoked"
        // from a response signed before it.
        self.ocsp_cache.revoked(serial);
        let record = match result {
            Ok(r) => r,
            Err(e) => {
                let e = match e {
                    store::Error::NotFound(_) => Error::NotFound(format!(
                        "no certificate with serial {}",
                        asn1::serial_hex(serial)
                    )),
                    store::Error::Conflict(_) => Error::Conflict(format!(
                        "certificate {} is not on hold (only a certificateHold can be released)",
                        asn1::serial_hex(serial)
                    )),
                    other => Error::Store(other),
                };
                self.audit_refusal("release-refused", actor, &asn1::serial_hex(serial), &e);
                return Err(e);
            }
        };
        tracing::info!(serial = %asn1::serial_hex(serial), actor, "certificate released from hold");
        self.publish_after_revocation(&record.issuer, actor);
        Ok(record)
    }

    /// Whether a public key (SubjectPublicKeyInfo DER) is on the keyCompromise blocklist:
    /// the one check of the issuance pipeline ([`Authority::issue_bound`], step 2), so
    /// every channel (CLI, admin API, SCEP, EST, approval of held requests) refuses it
    /// with [`ErrorKind::CompromisedKey`].
    pub fn check_key_not_blocked(&self, spki_der: &[u8]) -> Result<()> {
        match self.store.blocked_key(&asn1::spki_sha256(spki_der))? {
            None => Ok(()),
            Some(_) => Err(Error::CompromisedKey(BLOCKED_KEY_MESSAGE.into())),
        }
    }

    /// The rules a revocation of `record` must pass before anything is written: an
    /// invalidity date is not in the future (RFC 5280 §5.3.2 gives a time the compromise
    /// is known or suspected to have happened); certificateHold only where the profile
    /// says `allow_hold = true`.
    fn check_revocation(&self, record: &CertRecord, options: RevokeOptions) -> Result<()> {
        let now = self.clock.now();
        if let Some(date) = options.invalidity_date
            && date > now
        {
            return Err(Error::BadTime(format!(
                "the invalidity date {} is in the future (RFC 5280 §5.3.2: it says when the \
                 certificate became invalid)",
                crate::clock::rfc3339(date)
            )));
        }
        if options.reason == RevocationReason::CertificateHold
            && !self
                .profiles
                .get(&record.profile)
                .is_some_and(|p| p.config.allow_hold)
        {
            return Err(Error::PolicyRefused(format!(
                "profile {} does not allow certificateHold (set allow_hold = true in the \
                 profile to put its certificates on hold)",
                record.profile
            )));
        }
        Ok(())
    }

    /// Revokes one certificate after [`Authority::check_revocation`]; for keyCompromise its
    /// key goes on the blocklist in the same store commit. Drops its pre-signed OCSP
    /// answers. Does not publish a CRL. Refusals are audited.
    fn revoke_one(&self, serial: &[u8], options: RevokeOptions, actor: &str) -> Result<CertRecord> {
        let subject = asn1::serial_hex(serial);
        let refuse = |e: Error| {
            self.audit_refusal("revoke-refused", actor, &subject, &e);
            e
        };
        let existing = match self.store.get_cert(serial) {
            Ok(Some(r)) => r,
            Ok(None) => {
                return Err(refuse(Error::NotFound(format!(
                    "no certificate with serial {subject}"
                ))));
            }
            Err(e) => return Err(refuse(Error::Store(e))),
        };
        self.check_revocation(&existing, options).map_err(refuse)?;
        let block = if options.reason == RevocationReason::KeyCompromise {
            Some(asn1::cert_spki_sha256(&existing.der).map_err(refuse)?)
        } else {
            None
        };
        let now = self.clock.now();
        let mut detail = format!(
            "reason={}",
            RevocationReason::name_of(options.reason.code())
        );
        if let Some(date) = options.invalidity_date {
            detail.push_str(&format!(" invalidity_date={}", crate::clock::rfc3339(date)));
        }
        if let Some(hash) = &block {
            detail.push_str(&format!(" blocked_key={}", hex::encode(hash)));
        }
        let audit = AuditEvent {
            time: now,
            action: "revoke".into(),
            actor: actor.to_string(),
            subject: subject.clone(),
            detail,
        };
        let revocation = Revocation {
            time: now,
            reason: options.reason.code(),
            invalidity_date: options.invalidity_date,
        };
        let result = self
            .store
            .revoke_with(serial, revocation, block.as_deref(), &audit);
        // Durable (or refused): no pre-signed "good" may be served from here on.
        self.ocsp_cache.revoked(serial);
        match result {
            Ok(r) => {
                tracing::info!(serial = %subject, reason = options.reason.code(), actor, "certificate revoked");
                Ok(r)
            }
            Err(e) => {
                let e = match e {
                    store::Error::NotFound(_) => {
                        Error::NotFound(format!("no certificate with serial {subject}"))
                    }
                    store::Error::Conflict(_) => {
                        Error::Conflict(format!("certificate {subject} is already revoked"))
                    }
                    other => Error::Store(other),
                };
                let e = refuse(e);
                if e.kind() == ErrorKind::Conflict {
                    // A retry after a crash between the revocation and its CRL: make sure
                    // the CRL lists it before saying "already revoked".
                    self.republish_revoked(serial, actor);
                }
                Err(e)
            }
        }
    }

    /// Re-publishes the CRL of `issuer` after a revocation or release; a failure is
    /// logged (the change is durable; the scheduled refresh publishes it).
    fn publish_after_revocation(&self, issuer: &str, actor: &str) {
        if self.cas.contains_key(issuer)
            && let Err(e) = self.generate_crl(issuer, actor)
        {
            tracing::error!(error = %e, issuer = %issuer, "CRL regeneration after a revocation change failed");
        }
    }
}
