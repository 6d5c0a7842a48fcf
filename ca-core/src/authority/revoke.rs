//! Revocation (RFC 5280 §5.3.1): the reasons an operator may give, and revoking.

use store::{AuditEvent, CertRecord, Revocation};

use super::Authority;
use crate::{Error, Result, asn1};

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

impl Authority {
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
                invalidity_date: None,
            },
            &audit,
        ) {
            Ok(r) => {
                // Durable now: no pre-signed "good" may be served from here on.
                self.ocsp_cache.revoked(serial);
                r
            }
            Err(e) => {
                self.ocsp_cache.revoked(serial);
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
}
