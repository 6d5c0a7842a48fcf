//! Offline ceremonies: making a self-signed root. Subordinate CAs, RA and OCSP
//! certificates are issued through the normal pipeline ([`crate::Authority::issue`]) with
//! the `sub-ca`, `ra` and `ocsp-signing` profiles.

use std::sync::Arc;

use const_oid::AssociatedOid;
use der::Decode;
use hsm::{PrivateKey, SignatureScheme};
use spki::SubjectPublicKeyInfoOwned;
use store::{AuditEvent, CertRecord, CertStatus, Store};
use x509_cert::ext::pkix::{BasicConstraints, KeyUsages};
use x509_cert::name::Name;
use x509_cert::time::Validity;

use crate::asn1::{self, TbsCertificate};
use crate::authority::{aki_ext, key_usage_ext, sign_linted, ski_ext};
use crate::lint::{self, IssuerFacts};
use crate::{Error, Result};

/// What a new root looks like.
#[derive(Clone, Debug)]
pub struct RootSpec {
    /// The authority name (records, URLs).
    pub name: String,
    /// Subject (= issuer) name.
    pub subject: Name,
    /// Validity in days.
    pub validity_days: u32,
    /// Signature scheme; `None` for the key's usual one.
    pub scheme: Option<SignatureScheme>,
}

/// Creates a self-signed root certificate (RFC 5280 §3.2, §4.2.1.9: cA=TRUE, critical;
/// keyCertSign and cRLSign) with `key`, records it in `store` and returns its DER.
pub fn create_root(
    store: &Arc<dyn Store>,
    key: &Arc<dyn PrivateKey>,
    spec: &RootSpec,
    now: i64,
    actor: &str,
) -> Result<Vec<u8>> {
    if spec.subject.is_empty() {
        return Err(Error::BadRequest("a root needs a subject name".into()));
    }
    // The same string rules as every issued subject (no controls, type repertoires).
    for atv in spec.subject.iter() {
        crate::profile::check_attribute_value(atv)?;
    }
    if spec.validity_days == 0 {
        return Err(Error::BadRequest(
            "validity must be at least one day".into(),
        ));
    }
    let scheme = spec
        .scheme
        .unwrap_or_else(|| key.algorithm().default_scheme());
    if !scheme.fits(key.algorithm()) {
        return Err(Error::BadRequest(format!(
            "signature {scheme:?} does not fit a {} key",
            key.algorithm()
        )));
    }
    let spki_der = key.public_key_der().to_vec();
    let key_id = asn1::key_identifier(&spki_der)?;
    let not_before = now - 60;
    let not_after = now + i64::from(spec.validity_days) * 86_400;
    let serial = asn1::random_serial();
    store.reserve_serial(&serial, &spec.name)?;
    let bc = BasicConstraints {
        ca: true,
        path_len_constraint: None,
    };
    let extensions = vec![
        asn1::extension(BasicConstraints::OID, true, &bc)?,
        key_usage_ext(
            der::flagset::FlagSet::from(KeyUsages::DigitalSignature)
                | KeyUsages::KeyCertSign
                | KeyUsages::CRLSign,
        )?,
        ski_ext(&spki_der)?,
        aki_ext(&key_id)?,
    ];
    let tbs = TbsCertificate {
        version: 2,
        serial_number: asn1::serial_number(&serial)?,
        signature: asn1::signature_algorithm(scheme)?,
        issuer: spec.subject.clone(),
        validity: Validity::new(asn1::x509_time(not_before)?, asn1::x509_time(not_after)?),
        subject: spec.subject.clone(),
        subject_public_key_info: SubjectPublicKeyInfoOwned::from_der(&spki_der)
            .map_err(|e| Error::Internal(format!("key's public key: {e}")))?,
        extensions,
    };
    let facts = IssuerFacts {
        not_before,
        not_after,
        key_id: &key_id,
    };
    let linted = lint::lint_certificate(tbs, &facts, true)?;
    let der = sign_linted(linted, key, scheme, &spki_der)?;
    let record = CertRecord {
        serial: serial.clone(),
        issuer: spec.name.clone(),
        subject: spec.subject.to_string(),
        sans: Vec::new(),
        profile: "root".into(),
        requester: actor.to_string(),
        not_before,
        not_after,
        issued_at: now,
        status: CertStatus::Valid,
        revocation: None,
        spki_sha256: asn1::spki_sha256(&spki_der),
        der: der.clone(),
    };
    let audit = AuditEvent {
        time: now,
        action: "create-root".into(),
        actor: actor.to_string(),
        subject: asn1::serial_hex(&serial),
        detail: format!("authority={} subject={}", spec.name, record.subject),
    };
    store.record_issuance(&record, &audit)?;
    Ok(der)
}
