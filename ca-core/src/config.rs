//! The `[ca]` and `[profiles.*]` sections of privca.toml (docs/architecture.md, decision 9).
//!
//! These are the raw, serialisable forms; [`crate::profile::Profile::from_config`] turns a
//! [`ProfileConfig`] into a validated profile at start-up. Unknown fields are errors.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[ca]`: the hierarchy and revocation publishing.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaConfig {
    /// Base URL under which this server publishes CRLs (`<base>/crl/<ca>.crl`), CA
    /// certificates (`<base>/ca/<ca>.crt`) and OCSP (`<base>/ocsp`). Certificates carry
    /// these URLs, so it must be reachable by relying parties.
    pub base_url: String,
    /// Authority used when a profile names none.
    pub default_issuer: String,
    /// CRL validity (thisUpdate to nextUpdate), in hours.
    #[serde(default = "default_crl_validity_hours")]
    pub crl_validity_hours: u32,
    /// How often the CRL is re-signed even without revocations, in minutes.
    #[serde(default = "default_crl_refresh_minutes")]
    pub crl_refresh_minutes: u32,
    /// OCSP response validity (thisUpdate to nextUpdate), in hours.
    #[serde(default = "default_ocsp_validity_hours")]
    pub ocsp_validity_hours: u32,
    /// Most certificates whose pre-signed OCSP responses are kept in memory (RFC 9919
    /// §6); the oldest is evicted beyond it, 0 signs every response live.
    #[serde(default = "default_ocsp_cache_entries")]
    pub ocsp_cache_entries: usize,
    /// The certificate authorities, roots first.
    #[serde(rename = "authority")]
    pub authorities: Vec<AuthorityConfig>,
}

fn default_crl_validity_hours() -> u32 {
    168
}
fn default_crl_refresh_minutes() -> u32 {
    60
}
fn default_ocsp_validity_hours() -> u32 {
    24
}
fn default_ocsp_cache_entries() -> usize {
    crate::ocsp::DEFAULT_CACHE_ENTRIES
}

/// `[[ca.authority]]`: one CA.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorityConfig {
    /// Short name used in URLs and records (`root`, `issuing`).
    pub name: String,
    /// The CA certificate (PEM or DER), relative to the data directory.
    pub certificate: PathBuf,
    /// Label of the CA key in the key store.
    pub key: String,
    /// Name of the issuing authority for a subordinate CA; absent for a root.
    #[serde(default)]
    pub parent: Option<String>,
    /// Signature scheme (`rsa-pkcs1-sha256`, `rsa-pss-sha256`, `ecdsa-p256-sha256`, …);
    /// defaults to the key's usual one.
    #[serde(default)]
    pub signature: Option<hsm::SignatureScheme>,
    /// Delegated OCSP responder certificate issued by this CA (RFC 6960 §4.2.2.2).
    #[serde(default)]
    pub ocsp_certificate: Option<PathBuf>,
    /// Label of the delegated OCSP responder key.
    #[serde(default)]
    pub ocsp_key: Option<String>,
    /// SCEP RA certificate issued by this CA.
    #[serde(default)]
    pub ra_certificate: Option<PathBuf>,
    /// Label of the SCEP RA key.
    #[serde(default)]
    pub ra_key: Option<String>,
}

/// `[profiles.<name>]`: what a certificate issued under this profile contains and which
/// requests it accepts. A profile with the name of a built-in one replaces it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    /// Issuing authority; defaults to `[ca] default_issuer`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Validity in days (clamped to the issuer's notAfter).
    pub validity_days: u32,
    /// Backdate notBefore by this many seconds to absorb client clock skew.
    #[serde(default = "default_backdate")]
    pub backdate_seconds: u32,
    /// Key usage bits (RFC 5280 §4.2.1.3 names: `digitalSignature`, `keyEncipherment`,
    /// `keyAgreement`, `keyCertSign`, `cRLSign`, `nonRepudiation`, `dataEncipherment`).
    /// Empty: chosen from the key type (RSA: digitalSignature + keyEncipherment;
    /// ECDSA: digitalSignature).
    #[serde(default)]
    pub key_usage: Vec<String>,
    /// Extended key usages: `serverAuth`, `clientAuth`, `codeSigning`, `emailProtection`,
    /// `timeStamping`, `OCSPSigning`, or dotted OIDs.
    #[serde(default)]
    pub extended_key_usage: Vec<String>,
    /// Issue CA certificates (basicConstraints cA=TRUE).
    #[serde(default)]
    pub ca: bool,
    /// pathLenConstraint for CA profiles.
    #[serde(default)]
    pub path_len: Option<u8>,
    /// Allowed key algorithms (`rsa-2048`, `rsa-3072`, `rsa-4096`, `ecdsa-p256`,
    /// `ecdsa-p384`). Empty: all of them.
    #[serde(default)]
    pub key_algorithms: Vec<hsm::KeyAlgorithm>,
    /// Subject template.
    #[serde(default)]
    pub subject: SubjectConfig,
    /// Subject alternative name rules.
    #[serde(default)]
    pub san: SanConfig,
    /// Copy extensions the CSR requests that the profile does not set itself. Only
    /// extensions from a safe list are copied (SAN is governed by `san`).
    #[serde(default)]
    pub copy_csr_extensions: bool,
    /// Add the id-pkix-ocsp-nocheck extension (for OCSP signing certificates).
    #[serde(default)]
    pub ocsp_nocheck: bool,
    /// Put CRL Distribution Points, AIA OCSP and caIssuers URLs in certificates.
    #[serde(default = "default_true")]
    pub revocation_urls: bool,
    /// Override of the CRL URL (default `<base_url>/crl/<issuer>.crl`).
    #[serde(default)]
    pub crl_url: Option<String>,
    /// Override of the OCSP URL (default `<base_url>/ocsp`).
    #[serde(default)]
    pub ocsp_url: Option<String>,
    /// Override of the caIssuers URL (default `<base_url>/ca/<issuer>.crt`).
    #[serde(default)]
    pub ca_issuers_url: Option<String>,
    /// Certificate policy OIDs.
    #[serde(default)]
    pub policy_oids: Vec<String>,
    /// Smallest RSA public exponent accepted (FIPS 186-5 §A.1.1 and the CA/Browser Forum
    /// BR §6.1.6 want 65537 or more; an exponent of 3 makes textbook-RSA and padding
    /// mistakes exploitable). A profile may opt in to smaller odd exponents (at least 3)
    /// for legacy devices. Even exponents and exponents of 2^256 or more are always
    /// refused.
    #[serde(default = "default_rsa_min_exponent")]
    pub rsa_min_exponent: u32,
    /// Certificates of this profile may be put on hold (RFC 5280 §5.3.1
    /// certificateHold: a device reported lost) and released again. Off by default: a
    /// revocation is then always permanent.
    #[serde(default)]
    pub allow_hold: bool,
}

fn default_backdate() -> u32 {
    60
}
/// 65537 (F4), the smallest exponent FIPS 186-5 allows.
pub fn default_rsa_min_exponent() -> u32 {
    65537
}
fn default_true() -> bool {
    true
}

/// Which subject attributes a certificate gets.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectConfig {
    /// Attribute types taken from the request (`CN`, `O`, `OU`, `C`, `ST`, `L`,
    /// `serialNumber`, `emailAddress`…), in the order given. Others in the request are
    /// dropped. Empty: only `CN`.
    #[serde(default)]
    pub from_request: Vec<String>,
    /// Attributes set by the profile whatever the request says (`O = "Example Corp"`).
    #[serde(default)]
    pub fixed: BTreeMap<String, String>,
    /// Refuse requests without a common name.
    #[serde(default)]
    pub require_cn: bool,
}

/// Subject alternative name rules (RFC 5280 §4.2.1.6).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SanConfig {
    /// The certificate must carry at least one SAN.
    #[serde(default)]
    pub required: bool,
    /// Allowed DNS names: exact names or suffixes written `.example.com` (matches any
    /// name below it). Empty: DNS names are refused unless `any_dns` is set.
    #[serde(default)]
    pub dns: Vec<String>,
    /// Allow any syntactically valid DNS name.
    #[serde(default)]
    pub any_dns: bool,
    /// Allow a wildcard left-most label (`*.example.com`).
    #[serde(default)]
    pub wildcards: bool,
    /// Allowed IP ranges in CIDR form (`10.0.0.0/8`, `::1/128`).
    #[serde(default)]
    pub ip_ranges: Vec<String>,
    /// Allowed email domains (`example.com`); `*` allows any.
    #[serde(default)]
    pub email_domains: Vec<String>,
    /// Allowed URI prefixes (`https://`, `tag:microsoft.com,2022-09-14:sid:`); `*` allows any.
    #[serde(default)]
    pub uri_prefixes: Vec<String>,
    /// Allowed user principal name otherNames (Microsoft 1.3.6.1.4.1.311.20.2.3): UPN
    /// suffixes written `@corp.example` (the part after the `@`, compared ignoring
    /// case), or `*` for any. Empty: UPNs are refused.
    #[serde(default)]
    pub upn_suffixes: Vec<String>,
    /// Allowed permanentIdentifier otherName values (RFC 4043 §2): patterns in which
    /// `*` stands for any run of characters (`*` allows any). Empty: refused.
    #[serde(default)]
    pub permanent_identifier_values: Vec<String>,
    /// Allowed permanentIdentifier assigner OIDs. A permanentIdentifier without an
    /// assigner (assigned by the issuer, RFC 4043 §2) passes whatever this says; one
    /// with an assigner needs it listed.
    #[serde(default)]
    pub permanent_identifier_assigners: Vec<String>,
    /// Allowed hardwareModuleName otherName hwType OIDs (RFC 4108 §5). Empty: refused.
    #[serde(default)]
    pub hardware_module_types: Vec<String>,
    /// SAN kinds the certificate must carry at least one of each: `dns`, `ip`, `email`,
    /// `uri`, `upn`, `permanent_identifier`, `hardware_module_name`.
    #[serde(default)]
    pub require: Vec<String>,
    /// When the request has no DNS SAN but its CN is a DNS name, add it as a SAN.
    #[serde(default)]
    pub cn_as_dns: bool,
    /// Most SANs one certificate may carry.
    #[serde(default = "default_max_sans")]
    pub max: usize,
}

fn default_max_sans() -> usize {
    100
}

impl Default for SanConfig {
    fn default() -> Self {
        SanConfig {
            required: false,
            dns: Vec::new(),
            any_dns: false,
            wildcards: false,
            ip_ranges: Vec::new(),
            email_domains: Vec::new(),
            uri_prefixes: Vec::new(),
            upn_suffixes: Vec::new(),
            permanent_identifier_values: Vec::new(),
            permanent_identifier_assigners: Vec::new(),
            hardware_module_types: Vec::new(),
            require: Vec::new(),
            cn_as_dns: false,
            max: default_max_sans(),
        }
    }
}
