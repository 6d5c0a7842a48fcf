//! Lints run on every to-be-signed certificate and CRL before the real signature
//! (docs/architecture.md, decision 2). A finding refuses the object: nothing is signed.
//!
//! Only [`lint_certificate`] can make a [`LintedTbs`], and only the issuance pipeline can
//! consume one, so an unlinted TBS cannot reach the signer.

use std::collections::BTreeSet;

use const_oid::AssociatedOid;
use der::Decode;
use x509_cert::crl::TbsCertList;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, CrlNumber, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};

use crate::asn1::{TbsCertificate, unix_of};
use crate::{Error, Result};

/// Facts about the issuer the lints check the TBS against.
pub struct IssuerFacts<'a> {
    /// Issuer notBefore.
    pub not_before: i64,
    /// Issuer notAfter.
    pub not_after: i64,
    /// Issuer key identifier (must equal the AKI keyIdentifier).
    pub key_id: &'a [u8],
}

/// A TBSCertificate that passed every lint. Only this module creates it.
#[derive(Debug)]
pub struct LintedTbs(TbsCertificate);

impl LintedTbs {
    /// Hands the TBS to the signer.
    pub(crate) fn into_inner(self) -> TbsCertificate {
        self.0
    }
}

fn serial_findings(contents: &[u8], findings: &mut Vec<String>) {
    if contents.is_empty() || contents.len() > 20 {
        findings.push(format!(
            "serial number is {} octets (1 to 20 allowed)",
            contents.len()
        ));
    }
    if contents.first().is_some_and(|b| b & 0x80 != 0) {
        findings.push("serial number is negative".into());
    }
    if contents.iter().all(|b| *b == 0) {
        findings.push("serial number is zero".into());
    }
}

/// Lints a TBSCertificate (RFC 5280 §4.1 and §4.2 rules the CA relies on).
///
/// A finding about what the request put in (its subject, names or key type; policy
/// checks normally refuse these first) is the client's fault: when every finding is of
/// that kind the error is [`Error::BadRequest`], so that every channel answers a client
/// error (HTTP 400, SCEP badRequest). Any other finding is a CA bug or a bad profile:
/// [`Error::Lint`], an internal error.
pub fn lint_certificate(
    tbs: TbsCertificate,
    issuer: &IssuerFacts<'_>,
    self_signed: bool,
) -> Result<LintedTbs> {
    let mut f: Vec<String> = Vec::new();
    // Findings about request content.
    let mut r: Vec<String> = Vec::new();
    if tbs.version != 2 {
        f.push("version is not v3".into());
    }
    serial_findings(tbs.serial_number.as_bytes(), &mut f);
    let nb = unix_of(&tbs.validity.not_before);
    let na = unix_of(&tbs.validity.not_after);
    if nb >= na {
        f.push("notBefore is not before notAfter".into());
    }
    if !self_signed && (nb < issuer.not_before || na > issuer.not_after) {
        f.push("validity is not inside the issuer's validity".into());
    }
    let mut seen = BTreeSet::new();
    for e in &tbs.extensions {
        if !seen.insert(e.extn_id) {
            f.push(format!("extension {} appears twice", e.extn_id));
        }
    }
    let find = |oid| tbs.extensions.iter().find(|e| e.extn_id == oid);

    match find(SubjectKeyIdentifier::OID) {
        None => f.push("subjectKeyIdentifier is missing".into()),
        Some(e) if e.critical => f.push("subjectKeyIdentifier is critical".into()),
        Some(_) => {}
    }
    match find(AuthorityKeyIdentifier::OID) {
        None => f.push("authorityKeyIdentifier is missing".into()),
        Some(e) => {
            if e.critical {
                f.push("authorityKeyIdentifier is critical".into());
            }
            match AuthorityKeyIdentifier::from_der(e.extn_value.as_bytes()) {
                Ok(aki) => {
                    if aki.key_identifier.as_ref().map(|k| k.as_bytes()) != Some(issuer.key_id) {
                        f.push("authorityKeyIdentifier does not match the issuer key".into());
                    }
                }
                Err(_) => f.push("authorityKeyIdentifier does not decode".into()),
            }
        }
    }

    let is_ca = match find(BasicConstraints::OID) {
        Some(e) => match BasicConstraints::from_der(e.extn_value.as_bytes()) {
            Ok(bc) => {
                if bc.ca && !e.critical {
                    f.push("basicConstraints of a CA is not critical".into());
                }
                if !bc.ca && bc.path_len_constraint.is_some() {
                    f.push("pathLenConstraint on a non-CA certificate".into());
                }
                bc.ca
            }
            Err(_) => {
                f.push("basicConstraints does not decode".into());
                false
            }
        },
        None => false,
    };

    let rsa = tbs.subject_public_key_info.algorithm.oid == crate::asn1::oid::RSA_ENCRYPTION;
    match find(KeyUsage::OID) {
        None => f.push("keyUsage is missing".into()),
        Some(e) => match KeyUsage::from_der(e.extn_value.as_bytes()) {
            Ok(ku) => {
                if !e.critical {
                    f.push("keyUsage is not critical".into());
                }
                let bits = ku.0;
                if bits.is_empty() {
                    f.push("keyUsage has no bits".into());
                }
                if is_ca != bits.contains(KeyUsages::KeyCertSign) {
                    f.push(
                        "keyCertSign must be set exactly when basicConstraints cA is true".into(),
                    );
                }
                if !rsa
                    && (bits.contains(KeyUsages::KeyEncipherment)
                        || bits.contains(KeyUsages::DataEncipherment))
                {
                    r.push("key encipherment on an EC key".into());
                }
                if rsa && bits.contains(KeyUsages::KeyAgreement) {
                    r.push("keyAgreement on an RSA key".into());
                }
            }
            Err(_) => f.push("keyUsage does not decode".into()),
        },
    }
    if let Some(e) = find(ExtendedKeyUsage::OID) {
        match ExtendedKeyUsage::from_der(e.extn_value.as_bytes()) {
            Ok(eku) if eku.0.is_empty() => f.push("extendedKeyUsage is empty".into()),
            Ok(_) => {}
            Err(_) => f.push("extendedKeyUsage does not decode".into()),
        }
    }
    match find(SubjectAltName::OID) {
        Some(e) => match SubjectAltName::from_der(e.extn_value.as_bytes()) {
            Ok(san) if san.0.is_empty() => f.push("subjectAltName is empty".into()),
            Ok(_) => {
                if tbs.subject.is_empty() && !e.critical {
                    f.push("subjectAltName must be critical when the subject is empty".into());
                }
            }
            Err(_) => f.push("subjectAltName does not decode".into()),
        },
        None => {
            if tbs.subject.is_empty() {
                r.push("the subject is empty and there is no subjectAltName".into());
            }
        }
    }
    if f.is_empty() && r.is_empty() {
        Ok(LintedTbs(tbs))
    } else if f.is_empty() {
        Err(Error::BadRequest(format!(
            "the request cannot be issued: {}",
            r.join("; ")
        )))
    } else {
        f.extend(r);
        Err(Error::Lint {
            object: "certificate",
            findings: f.join("; "),
        })
    }
}

/// Lints a TBSCertList (RFC 5280 §5.1, §5.2, §5.3).
pub fn lint_crl(tbs: &TbsCertList, issuer_key_id: &[u8]) -> Result<()> {
    let mut f: Vec<String> = Vec::new();
    if tbs.version != x509_cert::Version::V2 {
        f.push("version is not v2".into());
    }
    match &tbs.next_update {
        None => f.push("nextUpdate is missing".into()),
        Some(n) if unix_of(n) <= unix_of(&tbs.this_update) => {
            f.push("nextUpdate is not after thisUpdate".into())
        }
        Some(_) => {}
    }
    let exts = tbs.crl_extensions.as_deref().unwrap_or_default();
    match exts.iter().find(|e| e.extn_id == CrlNumber::OID) {
        None => f.push("cRLNumber is missing".into()),
        Some(e) => {
            if e.critical {
                f.push("cRLNumber is critical".into());
            }
            match CrlNumber::from_der(e.extn_value.as_bytes()) {
                Ok(n) if n.0.as_bytes().len() > 20 => f.push("cRLNumber is over 20 octets".into()),
                Ok(_) => {}
                Err(_) => f.push("cRLNumber does not decode".into()),
            }
        }
    }
    match exts
        .iter()
        .find(|e| e.extn_id == AuthorityKeyIdentifier::OID)
    {
        None => f.push("authorityKeyIdentifier is missing".into()),
        Some(e) => match AuthorityKeyIdentifier::from_der(e.extn_value.as_bytes()) {
            Ok(aki) if aki.key_identifier.as_ref().map(|k| k.as_bytes()) == Some(issuer_key_id) => {
            }
            _ => f.push("authorityKeyIdentifier does not match the issuer key".into()),
        },
    }
    if let Some(list) = &tbs.revoked_certificates {
        if list.is_empty() {
            f.push("revokedCertificates is present but empty".into());
        }
        if let Some(Err(Error::Lint { findings, .. })) = list
            .iter()
            .map(|rc| lint_crl_entry_serial(rc.serial_number.as_bytes()))
            .find(Result::is_err)
        {
            f.push(findings);
        }
    }
    if f.is_empty() {
        Ok(())
    } else {
        Err(Error::Lint {
            object: "CRL",
            findings: f.join("; "),
        })
    }
}

/// Lints the serial number of one CRL entry (RFC 5280 §5.1.2.6, §4.1.2.2): the CRL of a
/// million entries is linted entry by entry as it is streamed ([`crate::crl`]).
pub(crate) fn lint_crl_entry_serial(contents: &[u8]) -> Result<()> {
    let mut f = Vec::new();
    serial_findings(contents, &mut f);
    if f.is_empty() {
        Ok(())
    } else {
        Err(Error::Lint {
            object: "CRL",
            findings: format!("revoked entry: {}", f.join(", ")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use der::Decode;
    use hsm::{KeyAlgorithm, SignatureScheme};
    use spki::SubjectPublicKeyInfoOwned;
    use x509_cert::name::Name;
    use x509_cert::time::Validity;

    fn tbs(subject: Name, with_ski: bool) -> TbsCertificate {
        let key = hsm::soft::generate_exportable(KeyAlgorithm::EcdsaP256).expect("key");
        let mut extensions = vec![
            crate::authority::key_usage_ext(KeyUsages::DigitalSignature.into()).expect("ku"),
            crate::authority::aki_ext(&[7; 20]).expect("aki"),
        ];
        if with_ski {
            extensions.push(crate::authority::ski_ext(&key.spki_der).expect("ski"));
        }
        TbsCertificate {
            version: 2,
            serial_number: crate::asn1::serial_number(&[0x42; 16]).expect("serial"),
            signature: crate::asn1::signature_algorithm(SignatureScheme::EcdsaP256Sha256)
                .expect("alg"),
            issuer: "CN=issuer".parse().expect("issuer"),
            validity: Validity::new(
                crate::asn1::x509_time(1_000).expect("nb"),
                crate::asn1::x509_time(2_000).expect("na"),
            ),
            subject,
            subject_public_key_info: SubjectPublicKeyInfoOwned::from_der(&key.spki_der)
                .expect("spki"),
            extensions,
        }
    }

    const ISSUER: IssuerFacts<'static> = IssuerFacts {
        not_before: 0,
        not_after: 10_000,
        key_id: &[7; 20],
    };

    /// Issue 9 item 15: a finding about request content is a client error; a finding
    /// about what the CA built stays internal, whatever else is found with it.
    #[test]
    fn request_findings_are_client_errors_and_ca_findings_internal() {
        let named: Name = "CN=device-1".parse().expect("name");
        assert!(lint_certificate(tbs(named.clone(), true), &ISSUER, false).is_ok());
        let e = lint_certificate(tbs(Name::default(), true), &ISSUER, false).expect_err("empty");
        assert_eq!(e.kind(), ErrorKind::BadRequest, "{e}");
        assert!(e.to_string().contains("the subject is empty"), "{e}");
        let e = lint_certificate(tbs(named, false), &ISSUER, false).expect_err("no SKI");
        assert_eq!(e.kind(), ErrorKind::Internal, "{e}");
        let e = lint_certificate(tbs(Name::default(), false), &ISSUER, false).expect_err("both");
        assert_eq!(e.kind(), ErrorKind::Internal, "{e}");
        assert!(
            e.to_string().contains("subjectKeyIdentifier is missing")
                && e.to_string().contains("the subject is empty"),
            "{e}"
        );
    }
}
