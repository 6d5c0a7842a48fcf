//! Certificate profiles: validated form of [`ProfileConfig`], the built-in profiles, and
//! the policy checks a request must pass (key algorithm, subject template, SAN rules).

use std::collections::BTreeMap;
use std::net::IpAddr;

use const_oid::ObjectIdentifier;
use der::asn1::{Any, Ia5String, OctetString, PrintableString, Utf8StringRef};
use der::flagset::FlagSet;
use der::{Decode, Encode, Tag, Tagged};
use hsm::KeyAlgorithm;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::ext::pkix::KeyUsages;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};

use crate::asn1::oid;
use crate::config::{ProfileConfig, SanConfig, SubjectConfig};
use crate::{Error, Result};

mod names;
mod san;

pub use names::*;
pub use san::*;

/// Names of the profiles privca ships with.
pub const BUILT_IN: [&str; 7] = [
    "tls-server",
    "tls-client",
    "device",
    "email",
    "ra",
    "ocsp-signing",
    "sub-ca",
];

/// The configuration of a built-in profile.
pub fn built_in(name: &str) -> Option<ProfileConfig> {
    let any_san = SanConfig {
        any_dns: true,
        ip_ranges: vec!["0.0.0.0/0".into(), "::/0".into()],
        email_domains: vec!["*".into()],
        uri_prefixes: vec!["*".into()],
        ..SanConfig::default()
    };
    let base = ProfileConfig {
        issuer: None,
        validity_days: 365,
        backdate_seconds: 60,
        key_usage: Vec::new(),
        extended_key_usage: Vec::new(),
        ca: false,
        path_len: None,
        key_algorithms: Vec::new(),
        subject: SubjectConfig::default(),
        san: SanConfig::default(),
        copy_csr_extensions: false,
        ocsp_nocheck: false,
        revocation_urls: true,
        crl_url: None,
        ocsp_url: None,
        ca_issuers_url: None,
        policy_oids: Vec::new(),
        rsa_min_exponent: crate::config::default_rsa_min_exponent(),
        allow_hold: false,
    };
    let p = match name {
        "tls-server" => ProfileConfig {
            validity_days: 397,
            extended_key_usage: vec!["serverAuth".into()],
            san: SanConfig {
                required: true,
                any_dns: true,
                wildcards: true,
                ip_ranges: vec!["0.0.0.0/0".into(), "::/0".into()],
                cn_as_dns: true,
                ..SanConfig::default()
            },
            ..base
        },
        "tls-client" => ProfileConfig {
            extended_key_usage: vec!["clientAuth".into()],
            subject: SubjectConfig {
                from_request: vec!["CN".into(), "O".into(), "OU".into()],
                require_cn: true,
                ..SubjectConfig::default()
            },
            san: any_san,
            ..base
        },
        "device" => ProfileConfig {
            extended_key_usage: vec!["clientAuth".into()],
            subject: SubjectConfig {
                from_request: vec!["CN".into(), "O".into(), "OU".into(), "serialNumber".into()],
                ..SubjectConfig::default()
            },
            san: any_san,
            ..base
        },
        "email" => ProfileConfig {
            extended_key_usage: vec!["emailProtection".into()],
            subject: SubjectConfig {
                from_request: vec!["CN".into(), "emailAddress".into()],
                ..SubjectConfig::default()
            },
            san: SanConfig {
                required: true,
                email_domains: vec!["*".into()],
                ..SanConfig::default()
            },
            ..base
        },
        "ra" => ProfileConfig {
            validity_days: 730,
            key_usage: vec!["digitalSignature".into(), "keyEncipherment".into()],
            key_algorithms: vec![
                KeyAlgorithm::Rsa2048,
                KeyAlgorithm::Rsa3072,
                KeyAlgorithm::Rsa4096,
            ],
            subject: SubjectConfig {
                from_request: vec!["CN".into(), "O".into(), "OU".into()],
                require_cn: true,
                ..SubjectConfig::default()
            },
            ..base
        },
        "ocsp-signing" => ProfileConfig {
            validity_days: 365,
            key_usage: vec!["digitalSignature".into()],
            extended_key_usage: vec!["OCSPSigning".into()],
            ocsp_nocheck: true,
            revocation_urls: false,
            subject: SubjectConfig {
                from_request: vec!["CN".into(), "O".into(), "OU".into()],
                require_cn: true,
                ..SubjectConfig::default()
            },
            ..base
        },
        "sub-ca" => ProfileConfig {
            validity_days: 1825,
            key_usage: vec![
                "digitalSignature".into(),
                "keyCertSign".into(),
                "cRLSign".into(),
            ],
            ca: true,
            path_len: Some(0),
            subject: SubjectConfig {
                from_request: vec!["C".into(), "O".into(), "OU".into(), "CN".into()],
                require_cn: true,
                ..SubjectConfig::default()
            },
            ..base
        },
        _ => return None,
    };
    Some(p)
}

/// A validated profile.
#[derive(Clone, Debug)]
pub struct Profile {
    /// Profile name.
    pub name: String,
    /// Issuing authority name.
    pub issuer: String,
    /// The configuration it was built from.
    pub config: ProfileConfig,
    key_usage: Option<FlagSet<KeyUsages>>,
    ekus: Vec<ObjectIdentifier>,
    policies: Vec<ObjectIdentifier>,
    ip_ranges: Vec<IpRange>,
    subject_from_request: Vec<ObjectIdentifier>,
    subject_fixed: Vec<(ObjectIdentifier, String)>,
    permanent_id_assigners: Vec<ObjectIdentifier>,
    hardware_module_types: Vec<ObjectIdentifier>,
}

impl Profile {
    /// Validates `config` as the profile `name`; `default_issuer` fills a missing issuer.
    pub fn from_config(name: &str, config: ProfileConfig, default_issuer: &str) -> Result<Profile> {
        let err = |m: String| Error::Config(format!("profile {name}: {m}"));
        if config.validity_days == 0 {
            return Err(err("validity_days must be at least 1".into()));
        }
        let key_usage = if config.key_usage.is_empty() {
            None
        } else {
            let mut bits = FlagSet::<KeyUsages>::default();
            for ku in &config.key_usage {
                bits |=
                    key_usage_bit(ku).ok_or_else(|| err(format!("unknown key usage {ku:?}")))?;
            }
            Some(bits)
        };
        if config.ca && key_usage.is_some_and(|b| !b.contains(KeyUsages::KeyCertSign)) {
            return Err(err("a CA profile needs keyCertSign".into()));
        }
        if !config.ca
            && key_usage.is_some_and(|b| {
                b.contains(KeyUsages::KeyCertSign) || b.contains(KeyUsages::CRLSign)
            })
        {
            return Err(err("keyCertSign/cRLSign need `ca = true`".into()));
        }
        let ekus = config
            .extended_key_usage
            .iter()
            .map(|e| eku_oid(e).ok_or_else(|| err(format!("unknown extended key usage {e:?}"))))
            .collect::<Result<Vec<_>>>()?;
        let policies = config
            .policy_oids
            .iter()
            .map(|p| {
                ObjectIdentifier::new(p).map_err(|_| err(format!("policy {p:?} is not an OID")))
            })
            .collect::<Result<Vec<_>>>()?;
        let ip_ranges = config
            .san
            .ip_ranges
            .iter()
            .map(|r| IpRange::parse(r))
            .collect::<Result<Vec<_>>>()?;
        let from = if config.subject.from_request.is_empty() {
            vec!["CN".to_string()]
        } else {
            config.subject.from_request.clone()
        };
        let subject_from_request = from
            .iter()
            .map(|a| {
                attribute_oid(a).ok_or_else(|| err(format!("unknown subject attribute {a:?}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let subject_fixed = config
            .subject
            .fixed
            .iter()
            .map(|(k, v)| {
                attribute_oid(k)
                    .map(|o| (o, v.clone()))
                    .ok_or_else(|| err(format!("unknown subject attribute {k:?}")))
            })
            .collect::<Result<Vec<_>>>()?;
        for d in &config.san.dns {
            let bare = d.strip_prefix('.').unwrap_or(d);
            check_dns_syntax(bare, false).map_err(|e| err(e.to_string()))?;
        }
        for u in &config.san.upn_suffixes {
            if u != "*" {
                let suffix = u.strip_prefix('@').ok_or_else(|| {
                    err(format!(
                        "upn_suffixes entry {u:?} must be `@suffix` (e.g. @corp.example) or `*`"
                    ))
                })?;
                check_dns_syntax(&suffix.to_ascii_lowercase(), false)
                    .map_err(|e| err(e.to_string()))?;
            }
        }
        let oids = |list: &[String], what: &str| {
            list.iter()
                .map(|o| {
                    ObjectIdentifier::new(o).map_err(|_| err(format!("{what} {o:?} is not an OID")))
                })
                .collect::<Result<Vec<_>>>()
        };
        let permanent_id_assigners = oids(
            &config.san.permanent_identifier_assigners,
            "permanent_identifier_assigners entry",
        )?;
        let hardware_module_types = oids(
            &config.san.hardware_module_types,
            "hardware_module_types entry",
        )?;
        for k in &config.san.require {
            if !SAN_KINDS.contains(&k.as_str()) {
                return Err(err(format!(
                    "san.require names {k:?}, not one of {}",
                    SAN_KINDS.join(", ")
                )));
            }
        }
        if config.path_len.is_some() && !config.ca {
            return Err(err("path_len needs `ca = true`".into()));
        }
        if config.rsa_min_exponent < 3 || config.rsa_min_exponent.is_multiple_of(2) {
            return Err(err(format!(
                "rsa_min_exponent must be an odd number of at least 3, not {}",
                config.rsa_min_exponent
            )));
        }
        Ok(Profile {
            name: name.to_string(),
            issuer: config
                .issuer
                .clone()
                .unwrap_or_else(|| default_issuer.to_string()),
            key_usage,
            ekus,
            policies,
            ip_ranges,
            subject_from_request,
            subject_fixed,
            permanent_id_assigners,
            hardware_module_types,
            config,
        })
    }

    /// Loads the built-in profiles, then the configured ones (replacing built-ins of the
    /// same name).
    pub fn load_all(
        configured: &BTreeMap<String, ProfileConfig>,
        default_issuer: &str,
    ) -> Result<BTreeMap<String, Profile>> {
        let mut out = BTreeMap::new();
        for name in BUILT_IN {
            if let Some(cfg) = built_in(name) {
                out.insert(
                    name.to_string(),
                    Profile::from_config(name, cfg, default_issuer)?,
                );
            }
        }
        for (name, cfg) in configured {
            out.insert(
                name.clone(),
                Profile::from_config(name, cfg.clone(), default_issuer)?,
            );
        }
        Ok(out)
    }

    /// Refuses a key algorithm the profile does not allow, and a key type the profile's
    /// configured key usage cannot go with (RFC 5480 §3 and RFC 8813: an EC key has no
    /// keyEncipherment or dataEncipherment; RFC 4055 §1.2: an RSA key has no
    /// keyAgreement). Refusing here makes it a policy answer to the client rather than
    /// a lint failure after the certificate was built.
    pub fn check_key(&self, alg: KeyAlgorithm) -> Result<()> {
        let bits = self.key_usage_for(alg);
        let clash = if alg.is_rsa() {
            bits.contains(KeyUsages::KeyAgreement)
                .then_some("keyAgreement")
        } else if bits.contains(KeyUsages::KeyEncipherment) {
            Some("keyEncipherment")
        } else {
            bits.contains(KeyUsages::DataEncipherment)
                .then_some("dataEncipherment")
        };
        if let Some(usage) = clash {
            return Err(Error::PolicyRefused(format!(
                "profile {} sets key usage {usage}, which a {alg} key cannot have",
                self.name
            )));
        }
        if self.config.key_algorithms.is_empty() || self.config.key_algorithms.contains(&alg) {
            Ok(())
        } else {
            let allowed: Vec<&str> = self
                .config
                .key_algorithms
                .iter()
                .map(|a| a.name())
                .collect();
            Err(Error::RefusedKey(format!(
                "profile {} does not accept {alg} keys (allowed: {})",
                self.name,
                allowed.join(", ")
            )))
        }
    }

    /// Refuses an RSA public key whose exponent is even, 2^256 or more, or below the
    /// profile's `rsa_min_exponent` (65537 unless the profile opts in to less; FIPS 186-5
    /// §A.1.1, CA/Browser Forum BR §6.1.6). Other keys pass.
    pub fn check_public_key(&self, spki_der: &[u8]) -> Result<()> {
        let spki = spki::SubjectPublicKeyInfoRef::from_der(spki_der)
            .map_err(|e| Error::BadRequest(format!("public key: {e}")))?;
        if spki.algorithm.oid != oid::RSA_ENCRYPTION {
            return Ok(());
        }
        let bits = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| Error::BadRequest("RSA public key has unused bits".into()))?;
        let key = pkcs1::RsaPublicKey::<der::asn1::UintRef<'_>>::from_der(bits)
            .map_err(|e| Error::BadRequest(format!("RSA public key: {e}")))?;
        let e = key.public_exponent.as_bytes();
        let e = match e.iter().position(|b| *b != 0) {
            Some(i) => &e[i..],
            None => &[][..],
        };
        let even = e.last().is_none_or(|b| b % 2 == 0);
        if even {
            return Err(Error::BadRequest(
                "the RSA public exponent is even, which no RSA key can have".into(),
            ));
        }
        if e.len() > 32 {
            return Err(Error::RefusedKey(format!(
                "profile {}: the RSA public exponent is 2^256 or more (FIPS 186-5 §A.1.1)",
                self.name
            )));
        }
        let min = self.config.rsa_min_exponent;
        let small = e.len() <= 4 && e.iter().fold(0u32, |a, b| (a << 8) | u32::from(*b)) < min;
        if small {
            let value = e.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b));
            return Err(Error::RefusedKey(format!(
                "profile {}: RSA public exponent {value} is below {min} (FIPS 186-5 §A.1.1; \
                 a profile may lower rsa_min_exponent)",
                self.name
            )));
        }
        Ok(())
    }

    /// Key usage bits for a key of `alg`: the configured ones, or the defaults for the
    /// key type (RFC 5280 §4.2.1.3; RFC 8813 for EC keys).
    pub fn key_usage_for(&self, alg: KeyAlgorithm) -> FlagSet<KeyUsages> {
        if let Some(bits) = self.key_usage {
            return bits;
        }
        let ds = FlagSet::from(KeyUsages::DigitalSignature);
        if self.config.ca {
            return ds | KeyUsages::KeyCertSign | KeyUsages::CRLSign;
        }
        if alg.is_rsa() {
            ds | KeyUsages::KeyEncipherment
        } else {
            ds
        }
    }

    /// Extended key usages.
    pub fn ekus(&self) -> &[ObjectIdentifier] {
        &self.ekus
    }

    /// Certificate policy OIDs.
    pub fn policies(&self) -> &[ObjectIdentifier] {
        &self.policies
    }

    /// Builds the certificate subject from the requested one by the template (issue 9
    /// item 19): first the profile's `fixed` attributes, one RDN each, in the order DC,
    /// C, ST, L, O, OU, others, CN; then the request's RDNs **in the request's order**,
    /// each keeping those of its attributes that are in `from_request` (and not fixed),
    /// with the value and string type as received. Attributes not in `from_request` are
    /// dropped. Every kept value must be a well-formed string of its type without control
    /// characters ([`check_attribute_value`]).
    pub fn build_subject(&self, requested: &Name) -> Result<Name> {
        let mut fixed: Vec<(ObjectIdentifier, Any)> = Vec::new();
        for (o, v) in &self.subject_fixed {
            fixed.push((*o, encode_attribute(*o, v)?));
        }
        fixed.sort_by_key(|(o, _)| attribute_rank(o));
        let mut seq = RdnSequence::default();
        let mut has_cn = false;
        for (o, value) in fixed {
            has_cn |= o == CN;
            let mut rdn = RelativeDistinguishedName::default();
            rdn.insert(AttributeTypeAndValue { oid: o, value })?;
            seq.push(rdn);
        }
        for requested_rdn in requested.iter_rdn() {
            let mut rdn = RelativeDistinguishedName::default();
            for atv in requested_rdn.iter() {
                if self.subject_from_request.contains(&atv.oid)
                    && !self.subject_fixed.iter().any(|(o, _)| *o == atv.oid)
                {
                    check_attribute_value(atv)?;
                    has_cn |= atv.oid == CN;
                    rdn.insert(atv.clone()).map_err(|_| {
                        Error::BadRequest(format!(
                            "subject attribute {} appears twice in one RDN",
                            atv.oid
                        ))
                    })?;
                }
            }
            if !rdn.is_empty() {
                seq.push(rdn);
            }
        }
        if self.config.subject.require_cn && !has_cn {
            return Err(Error::PolicyRefused(format!(
                "profile {} requires a common name (CN) in the subject",
                self.name
            )));
        }
        // Through DER: x509-cert only builds a Name from an RdnSequence by decoding.
        Ok(Name::from_der(&seq.to_der()?)?)
    }

    /// Whether a renewal request keeps the subject of the certificate it renews (RFC 8894
    /// §3.3.1.2, RFC 7030 §4.2.2): the request's subject equals the certificate's either
    /// as sent or as this profile builds it, compared attribute by attribute in any RDN
    /// order ([`same_subject`]), so that a certificate issued before the subject kept the
    /// request's order (issue 9 item 19), and a client that sends its request's subject
    /// rather than its certificate's, still renew.
    pub fn renewal_keeps_subject(&self, requested: &Name, certified: &Name) -> bool {
        same_subject(requested, certified)
            || self
                .build_subject(requested)
                .is_ok_and(|built| same_subject(&built, certified))
    }

    /// Whether a renewal request keeps the SANs of the certificate it renews (RFC 7030
    /// §4.2.2): the requested set equals the certificate's either as sent or as this
    /// profile completes it (`cn_as_dns` adds the CN as a SAN at issuance).
    pub fn renewal_keeps_sans(&self, requested: &[San], subject: &Name, certified: &[San]) -> bool {
        let sorted = |v: &[San]| {
            let mut v = v.to_vec();
            v.sort();
            v.dedup();
            v
        };
        let certified = sorted(certified);
        sorted(requested) == certified
            || self
                .check_sans(requested, subject)
                .is_ok_and(|completed| sorted(&completed) == certified)
    }

    /// Checks and normalises the requested SANs against the profile's rules; with
    /// `cn_as_dns`, adds a CN that is a DNS name (or an IP address) and is not among the
    /// requested SANs, so that the name rules and RFC 9525 clients see it as a SAN.
    pub fn check_sans(&self, requested: &[San], subject: &Name) -> Result<Vec<San>> {
        let rules = &self.config.san;
        let refuse = |m: String| Err(Error::PolicyRefused(format!("profile {}: {m}", self.name)));
        let mut requested = requested.to_vec();
        if rules.cn_as_dns {
            for cn in common_names(subject) {
                let san = match classify_name(&cn) {
                    NameShape::Dns(d) => San::Dns(d),
                    NameShape::Ip(ip) => San::Ip(ip),
                    _ => continue,
                };
                if !requested.contains(&san) {
                    requested.push(san);
                }
            }
        }
        let mut out: Vec<San> = Vec::new();
        for san in &requested {
            self.check_name(san)?;
            if !out.contains(san) {
                out.push(san.clone());
            }
        }
        if out.len() > rules.max {
            return refuse(format!(
                "{} SANs requested, at most {} allowed",
                out.len(),
                rules.max
            ));
        }
        if rules.required && out.is_empty() {
            return refuse("a subject alternative name is required".into());
        }
        for kind in &rules.require {
            if !out.iter().any(|s| s.kind() == kind) {
                return refuse(format!("a {kind} subject alternative name is required"));
            }
        }
        Ok(out)
    }

    /// Checks one name (a SAN, or a name carried by a subject attribute) against the
    /// profile's SAN rules (RFC 5280 §4.2.1.6 syntax; the profile's allow lists).
    /// Malformed names are `BadRequest`, names the rules do not allow `PolicyRefused`.
    pub fn check_name(&self, san: &San) -> Result<()> {
        let rules = &self.config.san;
        let refuse = |m: String| Err(Error::PolicyRefused(format!("profile {}: {m}", self.name)));
        match san {
            San::Dns(name) => {
                let is_wild = name.starts_with("*.");
                // Syntax first (a wildcard is well-formed); whether it is allowed is policy.
                check_dns_syntax(name, true)?;
                if is_wild && !rules.wildcards {
                    return refuse(format!("wildcard name {name} is not allowed"));
                }
                let base = name.strip_prefix("*.").unwrap_or(name);
                let allowed = rules.any_dns
                    || rules.dns.iter().any(|d| match d.strip_prefix('.') {
                        Some(suffix) => {
                            base.ends_with(&format!(".{suffix}")) || (is_wild && base == suffix)
                        }
                        None => !is_wild && name == d,
                    });
                if !allowed {
                    return refuse(format!("DNS name {name} is not allowed"));
                }
            }
            San::Ip(ip) => {
                if !self.ip_ranges.iter().any(|r| r.contains(ip)) {
                    return refuse(format!("IP address {ip} is not allowed"));
                }
            }
            San::Email(addr) => {
                check_mailbox_syntax(addr)?;
                let d = addr
                    .rsplit_once('@')
                    .map(|(_, d)| d.to_ascii_lowercase())
                    .unwrap_or_default();
                if !rules
                    .email_domains
                    .iter()
                    .any(|a| a == "*" || a.eq_ignore_ascii_case(&d))
                {
                    return refuse(format!("email address {addr} is not allowed"));
                }
            }
            San::Uri(uri) => {
                // IA5String without controls or spaces (RFC 3986 §2 has neither).
                if uri.is_empty()
                    || !uri.contains(':')
                    || !uri.bytes().all(|b| b.is_ascii_graphic())
                {
                    return Err(Error::BadRequest(format!("{uri:?} is not a URI")));
                }
                if !rules
                    .uri_prefixes
                    .iter()
                    .any(|p| p == "*" || uri.starts_with(p.as_str()))
                {
                    return refuse(format!("URI {uri} is not allowed"));
                }
            }
            San::Upn(upn) => {
                check_upn_syntax(upn)?;
                let suffix = upn.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
                let allowed = rules.upn_suffixes.iter().any(|a| {
                    a == "*"
                        || a.strip_prefix('@')
                            .is_some_and(|d| d.eq_ignore_ascii_case(suffix))
                });
                if !allowed {
                    return refuse(if rules.upn_suffixes.is_empty() {
                        format!("UPN {upn} is not allowed: the profile issues no UPNs")
                    } else {
                        format!(
                            "UPN {upn} is not allowed (allowed suffixes: {})",
                            rules.upn_suffixes.join(", ")
                        )
                    });
                }
            }
            San::PermanentId { value, assigner } => {
                check_other_name_text("permanentIdentifier value", value)?;
                if !rules
                    .permanent_identifier_values
                    .iter()
                    .any(|p| glob_match(p, value))
                {
                    return refuse(if rules.permanent_identifier_values.is_empty() {
                        format!(
                            "permanentIdentifier {value:?} is not allowed: the profile issues \
                             no permanentIdentifiers"
                        )
                    } else {
                        format!(
                            "permanentIdentifier {value:?} does not match the profile's patterns"
                        )
                    });
                }
                if let Some(a) = assigner
                    && !self.permanent_id_assigners.contains(a)
                {
                    return refuse(format!("permanentIdentifier assigner {a} is not allowed"));
                }
            }
            San::HardwareModule { hw_type, serial } => {
                if serial.is_empty() || serial.len() > MAX_HW_SERIAL {
                    return Err(Error::BadRequest(format!(
                        "the hardwareModuleName serial number is {} bytes, 1 to \
                         {MAX_HW_SERIAL} are accepted",
                        serial.len()
                    )));
                }
                if !self.hardware_module_types.contains(hw_type) {
                    return refuse(format!(
                        "hardwareModuleName of hwType {hw_type} is not allowed"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Applies the name rules to the names the subject carries (issue 9 item 1): a
    /// subject must not name what the profile would refuse as a SAN.
    ///
    /// - Every `CN` is classified by its form ([`classify_name`]). A CN that is a DNS
    ///   name or an IP address must pass the SAN rules for that kind (allowed DNS
    ///   suffixes, the wildcard rule, IP ranges) and must also be one of the SANs: RFC
    ///   9525 §6.2.1 clients ignore the CN when SANs are present, so a CN that is not a
    ///   SAN names something no relying party was asked to check (CA/Browser Forum BR
    ///   §7.1.4.3 requires the same). An email address must pass the email rules; a URI
    ///   the URI rules; other text (`Jane Doe`, `phone-17`) is not a name.
    /// - `emailAddress` (PKCS#9, deprecated by RFC 5280 §4.1.2.6 in favour of the
    ///   rfc822Name SAN, still read by legacy mail clients) must pass the email rules and
    ///   be one of the rfc822Name SANs.
    ///
    /// CA profiles are exempt: a CA certificate's CN is the CA's name, not a service
    /// identity (RFC 9525 §1.3 covers end-entity service certificates).
    pub fn check_subject_names(&self, subject: &Name, sans: &[San]) -> Result<()> {
        if self.config.ca {
            return Ok(());
        }
        let refuse = |m: String| Err(Error::PolicyRefused(format!("profile {}: {m}", self.name)));
        for atv in subject.iter() {
            let Some(text) = attribute_text(&atv.value) else {
                continue;
            };
            if atv.oid == CN {
                match classify_name(&text) {
                    NameShape::Dns(d) => {
                        let san = San::Dns(d);
                        self.check_name(&san)?;
                        if !sans.contains(&san) {
                            return refuse(format!(
                                "the common name {text} is a DNS name but not one of the \
                                 subjectAltNames (RFC 9525): request it as a DNS SAN too"
                            ));
                        }
                    }
                    NameShape::Ip(ip) => {
                        let san = San::Ip(ip);
                        self.check_name(&san)?;
                        if !sans.contains(&san) {
                            return refuse(format!(
                                "the common name {text} is an IP address but not one of \
                                 the subjectAltNames (RFC 9525): request it as an IP SAN too"
                            ));
                        }
                    }
                    NameShape::Email(e) => {
                        // A UPN-shaped CN (Intune user certificates write
                        // CN={{UserPrincipalName}}) passes when it is one of the UPN SANs,
                        // which check_sans has judged. Under a profile that issues UPNs it
                        // must be one of the UPN or email SANs, as a DNS-shaped CN must be a
                        // DNS SAN; elsewhere it is judged as an email address, as before.
                        let listed = |upn: bool| {
                            sans.iter().any(|s| match s {
                                San::Upn(u) => same_mailbox(u, &e),
                                San::Email(m) => !upn && same_mailbox(m, &e),
                                _ => false,
                            })
                        };
                        if !listed(true) {
                            if self.config.san.upn_suffixes.is_empty() {
                                self.check_name(&San::Email(e))?;
                            } else if !listed(false) {
                                return refuse(format!(
                                    "the common name {text} is shaped like a UPN or an email \
                                     address but is neither one of the UPN nor one of the \
                                     email subjectAltNames: request it as a UPN SAN too"
                                ));
                            }
                        }
                    }
                    NameShape::Uri(u) => self.check_name(&San::Uri(u))?,
                    NameShape::Malformed(why) => {
                        return Err(Error::BadRequest(format!("the common name {text:?} {why}")));
                    }
                    NameShape::Text => {}
                }
            } else if atv.oid == EMAIL_ADDRESS {
                let san = San::Email(text.clone());
                self.check_name(&san)?;
                let listed = sans.iter().any(|s| match s {
                    San::Email(e) => same_mailbox(e, &text),
                    _ => false,
                });
                if !listed {
                    return refuse(format!(
                        "the subject emailAddress {text} is not one of the rfc822Name \
                         subjectAltNames (RFC 5280 §4.1.2.6): request it as an email SAN too"
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
