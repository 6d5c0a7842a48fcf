//! The extensions a certificate gets (RFC 5280 §4.2): from its profile (constraints, key
//! usage, EKUs, policies, revocation URLs), its key (identifiers) and its SANs.

use const_oid::AssociatedOid;
use der::asn1::{Ia5String, Null, OctetString};
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

use super::{Authority, CaEntity, IssueRequest};
use crate::asn1::{self, oid};
use crate::profile::{Profile, San};
use crate::{Error, Result};

impl Authority {
    pub(super) fn extensions_for(
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
}

/// Extensions a CSR may carry into a certificate when the profile copies them. The CA's
/// own extensions (key usage, constraints, identifiers, URLs) are never taken from a CSR.
const COPYABLE: [const_oid::ObjectIdentifier; 1] = [oid::MS_NTDS_CA_SECURITY_EXT];

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
