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

/// A subject alternative name the CA understands (RFC 5280 §4.2.1.6).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum San {
    /// dNSName, lower-cased.
    Dns(String),
    /// iPAddress.
    Ip(IpAddr),
    /// rfc822Name.
    Email(String),
    /// uniformResourceIdentifier.
    Uri(String),
    /// otherName user principal name (Microsoft szOID_NT_PRINCIPAL_NAME,
    /// 1.3.6.1.4.1.311.20.2.3, a UTF8String `user@suffix`), as received.
    Upn(String),
    /// otherName permanentIdentifier (RFC 4043 §2): an identifier that stays with the
    /// device for its life, with the OID of the authority that assigned it (absent: the
    /// issuer). privca issues it only with an identifierValue.
    PermanentId {
        /// identifierValue (UTF8String).
        value: String,
        /// assigner.
        assigner: Option<ObjectIdentifier>,
    },
    /// otherName hardwareModuleName (RFC 4108 §5): the type and serial number of a
    /// hardware module (a TPM, a secure element).
    HardwareModule {
        /// hwType.
        hw_type: ObjectIdentifier,
        /// hwSerialNum (OCTET STRING).
        serial: Vec<u8>,
    },
}

/// Longest UPN or permanentIdentifier value accepted, in bytes (Active Directory's
/// userPrincipalName has a rangeUpper of 1024 characters; nothing legitimate is longer).
pub const MAX_OTHER_NAME_TEXT: usize = 1024;
/// Longest hardwareModuleName serial number accepted, in bytes.
pub const MAX_HW_SERIAL: usize = 256;

/// PermanentIdentifier ::= SEQUENCE { identifierValue UTF8String OPTIONAL, assigner
/// OBJECT IDENTIFIER OPTIONAL } (RFC 4043 §2).
#[derive(Clone, Debug, der::Sequence)]
struct PermanentIdentifierRef<'a> {
    #[asn1(optional = "true")]
    identifier_value: Option<Utf8StringRef<'a>>,
    #[asn1(optional = "true")]
    assigner: Option<ObjectIdentifier>,
}

/// HardwareModuleName ::= SEQUENCE { hwType OBJECT IDENTIFIER, hwSerialNum OCTET STRING }
/// (RFC 4108 §5).
#[derive(Clone, Debug, der::Sequence)]
struct HardwareModuleNameDer {
    hw_type: ObjectIdentifier,
    hw_serial_num: OctetString,
}

/// Checks the text of a UPN or a permanentIdentifier value: not empty, at most
/// [`MAX_OTHER_NAME_TEXT`] bytes, no control characters (which would let a name rewrite
/// a log line or a display).
fn check_other_name_text(what: &str, text: &str) -> Result<()> {
    if text.is_empty() {
        return Err(Error::BadRequest(format!("the {what} is empty")));
    }
    if text.len() > MAX_OTHER_NAME_TEXT {
        return Err(Error::BadRequest(format!(
            "the {what} is {} bytes long, at most {MAX_OTHER_NAME_TEXT} are accepted",
            text.len()
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(Error::BadRequest(format!(
            "the {what} {text:?} contains a control character"
        )));
    }
    Ok(())
}

/// Checks UPN syntax: `user@suffix`, one `@`, a non-empty user part without spaces,
/// a DNS suffix (Active Directory's UPN suffixes are DNS names).
fn check_upn_syntax(upn: &str) -> Result<()> {
    check_other_name_text("UPN", upn)?;
    let bad = || Error::BadRequest(format!("{upn:?} is not a UPN (user@suffix)"));
    let (user, suffix) = upn.split_once('@').ok_or_else(bad)?;
    if user.is_empty() || suffix.contains('@') || user.chars().any(char::is_whitespace) {
        return Err(bad());
    }
    check_dns_syntax(&suffix.to_ascii_lowercase(), false)
}

fn parse_oid(text: &str) -> Result<ObjectIdentifier> {
    ObjectIdentifier::new(text.trim())
        .map_err(|_| Error::BadRequest(format!("{text:?} is not an OID")))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}

impl San {
    /// Parses the CLI form: `a.example` (DNS), `10.0.0.1` (IP), `me@a.example` (email),
    /// `scheme:…` (URI), or with explicit prefix `dns:`, `ip:`, `email:`, `uri:`; the
    /// otherNames only with their prefix: `upn:user@corp.example`,
    /// `permanentId:VALUE` or `permanentId:VALUE;assigner=OID`,
    /// `hardwareModuleName:OID:HEXSERIAL` (the forms [`San::display`] writes).
    pub fn parse(text: &str) -> Result<San> {
        let t = text.trim();
        let lower = t.to_ascii_lowercase();
        let rest = |prefix: &str| t.get(prefix.len()..).unwrap_or_default();
        if lower.starts_with("upn:") {
            let v = rest("upn:");
            check_upn_syntax(v)?;
            return Ok(San::Upn(v.to_string()));
        }
        if lower.starts_with("permanentid:") {
            let v = rest("permanentid:");
            let (value, assigner) = match v.rsplit_once(";assigner=") {
                Some((value, oid)) => (value, Some(parse_oid(oid)?)),
                None => (v, None),
            };
            check_other_name_text("permanentIdentifier value", value)?;
            return Ok(San::PermanentId {
                value: value.to_string(),
                assigner,
            });
        }
        if lower.starts_with("hardwaremodulename:") {
            let v = rest("hardwaremodulename:");
            let bad = || {
                Error::BadRequest(format!(
                    "{t:?} is not hardwareModuleName:OID:HEXSERIAL (RFC 4108 §5)"
                ))
            };
            let (oid, serial) = v.rsplit_once(':').ok_or_else(bad)?;
            let serial = unhex(serial).ok_or_else(bad)?;
            if serial.is_empty() || serial.len() > MAX_HW_SERIAL {
                return Err(bad());
            }
            return Ok(San::HardwareModule {
                hw_type: parse_oid(oid)?,
                serial,
            });
        }
        if let Some(v) = lower.strip_prefix("dns:") {
            return Ok(San::Dns(v.to_string()));
        }
        if let Some(v) = lower.strip_prefix("ip:") {
            return v
                .parse()
                .map(San::Ip)
                .map_err(|_| Error::BadRequest(format!("{t:?} is not an IP address")));
        }
        if let Some(v) = t.strip_prefix("email:") {
            return Ok(San::Email(v.to_string()));
        }
        if let Some(v) = t.strip_prefix("uri:") {
            return Ok(San::Uri(v.to_string()));
        }
        if let Ok(ip) = t.parse() {
            return Ok(San::Ip(ip));
        }
        if t.contains('@') {
            return Ok(San::Email(t.to_string()));
        }
        if t.contains(':') {
            return Ok(San::Uri(t.to_string()));
        }
        Ok(San::Dns(lower))
    }

    /// Reads a GeneralName (RFC 5280 §4.2.1.6). Kinds the CA does not issue (x400Address,
    /// directoryName, ediPartyName, registeredID, an otherName of another type) are
    /// `PolicyRefused` with a reason that names them; a known otherName whose value is
    /// malformed (wrong inner type, empty, control characters, over-long) is
    /// `BadRequest`.
    pub fn from_general_name(g: &GeneralName) -> Result<San> {
        let unsupported = |what: &str| {
            Err(Error::PolicyRefused(format!(
                "the request carries a {what} subject alternative name, which privca does not issue"
            )))
        };
        match g {
            GeneralName::DnsName(s) => Ok(San::Dns(s.to_string().to_ascii_lowercase())),
            GeneralName::Rfc822Name(s) => Ok(San::Email(s.to_string())),
            GeneralName::UniformResourceIdentifier(s) => Ok(San::Uri(s.to_string())),
            GeneralName::IpAddress(o) => match o.as_bytes().len() {
                4 => <[u8; 4]>::try_from(o.as_bytes())
                    .map(|b| San::Ip(IpAddr::from(b)))
                    .map_err(|_| Error::BadRequest("malformed iPAddress".into())),
                16 => <[u8; 16]>::try_from(o.as_bytes())
                    .map(|b| San::Ip(IpAddr::from(b)))
                    .map_err(|_| Error::BadRequest("malformed iPAddress".into())),
                n => Err(Error::BadRequest(format!(
                    "an iPAddress SAN of {n} bytes (RFC 5280 §4.2.1.6: 4 or 16)"
                ))),
            },
            GeneralName::OtherName(on) => San::from_other_name(on),
            GeneralName::DirectoryName(_) => unsupported("directoryName"),
            GeneralName::RegisteredId(o) => unsupported(&format!("registeredID ({o})")),
            GeneralName::EdiPartyName(_) => unsupported("ediPartyName"),
        }
    }

    /// Reads an otherName (RFC 5280 §4.2.1.6) of the three types privca issues.
    fn from_other_name(on: &x509_cert::ext::pkix::name::OtherName) -> Result<San> {
        let inner = |what: &str, e: der::Error| {
            Error::BadRequest(format!("the {what} otherName value is malformed: {e}"))
        };
        if on.type_id == oid::MS_UPN {
            let s: Utf8StringRef<'_> = on
                .value
                .decode_as()
                .map_err(|e| inner("UPN (a UTF8String)", e))?;
            check_upn_syntax(s.as_str())?;
            Ok(San::Upn(s.as_str().to_string()))
        } else if on.type_id == oid::PERMANENT_IDENTIFIER {
            let p: PermanentIdentifierRef<'_> = on
                .value
                .decode_as()
                .map_err(|e| inner("permanentIdentifier (RFC 4043 §2)", e))?;
            let value = p.identifier_value.ok_or_else(|| {
                Error::BadRequest(
                    "the permanentIdentifier has no identifierValue (RFC 4043 §2); privca                      issues it only with one"
                        .into(),
                )
            })?;
            check_other_name_text("permanentIdentifier value", value.as_str())?;
            Ok(San::PermanentId {
                value: value.as_str().to_string(),
                assigner: p.assigner,
            })
        } else if on.type_id == oid::HARDWARE_MODULE_NAME {
            let h: HardwareModuleNameDer = on
                .value
                .decode_as()
                .map_err(|e| inner("hardwareModuleName (RFC 4108 §5)", e))?;
            let serial = h.hw_serial_num.as_bytes();
            if serial.is_empty() || serial.len() > MAX_HW_SERIAL {
                return Err(Error::BadRequest(format!(
                    "the hardwareModuleName serial number is {} bytes, 1 to {MAX_HW_SERIAL} \
                     are accepted",
                    serial.len()
                )));
            }
            Ok(San::HardwareModule {
                hw_type: h.hw_type,
                serial: serial.to_vec(),
            })
        } else {
            Err(Error::PolicyRefused(format!(
                "the request carries an otherName subject alternative name of type {}, \
                 which privca does not issue (it issues UPN {}, permanentIdentifier {} and \
                 hardwareModuleName {})",
                on.type_id,
                oid::MS_UPN,
                oid::PERMANENT_IDENTIFIER,
                oid::HARDWARE_MODULE_NAME
            )))
        }
    }

    /// Encodes as a GeneralName; otherNames as `[0] EXPLICIT` of their DER value
    /// (RFC 5280 §4.2.1.6).
    pub fn to_general_name(&self) -> Result<GeneralName> {
        use x509_cert::ext::pkix::name::OtherName;
        let ia5 = |s: &str| {
            Ia5String::new(s).map_err(|_| Error::BadRequest(format!("{s:?} is not ASCII")))
        };
        let other = |type_id: ObjectIdentifier, der: Vec<u8>| -> Result<GeneralName> {
            Ok(GeneralName::OtherName(OtherName {
                type_id,
                value: Any::from_der(&der)?,
            }))
        };
        Ok(match self {
            San::Dns(s) => GeneralName::DnsName(ia5(s)?),
            San::Email(s) => GeneralName::Rfc822Name(ia5(s)?),
            San::Uri(s) => GeneralName::UniformResourceIdentifier(ia5(s)?),
            San::Ip(ip) => GeneralName::IpAddress(match ip {
                IpAddr::V4(v) => OctetString::new(v.octets().to_vec())?,
                IpAddr::V6(v) => OctetString::new(v.octets().to_vec())?,
            }),
            San::Upn(s) => other(oid::MS_UPN, Utf8StringRef::new(s)?.to_der()?)?,
            San::PermanentId { value, assigner } => other(
                oid::PERMANENT_IDENTIFIER,
                PermanentIdentifierRef {
                    identifier_value: Some(Utf8StringRef::new(value)?),
                    assigner: *assigner,
                }
                .to_der()?,
            )?,
            San::HardwareModule { hw_type, serial } => other(
                oid::HARDWARE_MODULE_NAME,
                HardwareModuleNameDer {
                    hw_type: *hw_type,
                    hw_serial_num: OctetString::new(serial.clone())?,
                }
                .to_der()?,
            )?,
        })
    }

    /// Display form stored in records: `DNS:…`, `IP:…`, `email:…`, `URI:…`,
    /// `upn:user@suffix`, `permanentId:VALUE[;assigner=OID]`,
    /// `hardwareModuleName:OID:HEXSERIAL` ([`San::parse`] reads them back).
    pub fn display(&self) -> String {
        match self {
            San::Dns(s) => format!("DNS:{s}"),
            San::Ip(ip) => format!("IP:{ip}"),
            San::Email(s) => format!("email:{s}"),
            San::Uri(s) => format!("URI:{s}"),
            San::Upn(s) => format!("upn:{s}"),
            San::PermanentId {
                value,
                assigner: None,
            } => format!("permanentId:{value}"),
            San::PermanentId {
                value,
                assigner: Some(a),
            } => format!("permanentId:{value};assigner={a}"),
            San::HardwareModule { hw_type, serial } => {
                format!("hardwareModuleName:{hw_type}:{}", hex(serial))
            }
        }
    }

    /// The kind's name as the profile's `require` list writes it.
    pub fn kind(&self) -> &'static str {
        match self {
            San::Dns(_) => "dns",
            San::Ip(_) => "ip",
            San::Email(_) => "email",
            San::Uri(_) => "uri",
            San::Upn(_) => "upn",
            San::PermanentId { .. } => "permanent_identifier",
            San::HardwareModule { .. } => "hardware_module_name",
        }
    }
}

/// The kinds a profile's `san.require` may name.
pub const SAN_KINDS: [&str; 7] = [
    "dns",
    "ip",
    "email",
    "uri",
    "upn",
    "permanent_identifier",
    "hardware_module_name",
];

/// An IP range in CIDR form.
#[derive(Clone, Debug, PartialEq, Eq)]
struct IpRange {
    net: IpAddr,
    prefix: u8,
}

impl IpRange {
    fn parse(text: &str) -> Result<IpRange> {
        let bad = || {
            Error::Config(format!(
                "{text:?} is not an IP range (CIDR, e.g. 10.0.0.0/8)"
            ))
        };
        let (addr, prefix) = text.split_once('/').ok_or_else(bad)?;
        let net: IpAddr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(bad());
        }
        Ok(IpRange { net, prefix })
    }

    fn contains(&self, ip: &IpAddr) -> bool {
        fn bits(a: &IpAddr) -> (u128, u32) {
            match a {
                IpAddr::V4(v) => (u128::from(u32::from(*v)), 32),
                IpAddr::V6(v) => (u128::from(*v), 128),
            }
        }
        let (n, nw) = bits(&self.net);
        let (i, iw) = bits(ip);
        if nw != iw {
            return false;
        }
        if self.prefix == 0 {
            return true;
        }
        let shift = nw - u32::from(self.prefix);
        (n >> shift) == (i >> shift)
    }
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

/// Whether `text` matches `pattern`, in which `*` stands for any run of characters
/// (including none) and every other character for itself.
fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return pattern == text;
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    for m in middle {
        match rest.find(m) {
            Some(i) => rest = &rest[i + m.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// emailAddress (PKCS#9, RFC 2985 §5.2.1).
const EMAIL_ADDRESS: ObjectIdentifier = crate::asn1::oid::EMAIL_ADDRESS;

/// Two mailboxes are the same when the local parts are equal and the domains are equal
/// ignoring case (RFC 5280 §7.5).
fn same_mailbox(a: &str, b: &str) -> bool {
    match (a.rsplit_once('@'), b.rsplit_once('@')) {
        (Some((la, da)), Some((lb, db))) => la == lb && da.eq_ignore_ascii_case(db),
        _ => false,
    }
}

/// Checks rfc822Name syntax: `local@domain`, printable ASCII without spaces in the local
/// part (RFC 5280 §4.2.1.6: an IA5String Mailbox of RFC 5321 §4.1.2), a DNS domain.
fn check_mailbox_syntax(addr: &str) -> Result<()> {
    let bad = || Error::BadRequest(format!("{addr:?} is not an email address"));
    let (local, domain) = addr.rsplit_once('@').ok_or_else(bad)?;
    if local.is_empty() || !local.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    check_dns_syntax(&domain.to_ascii_lowercase(), false)
}

/// What a text (a CN) names, judged by its form the way relying parties would read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameShape {
    /// A DNS name (lower-cased; a single trailing dot is removed).
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
    /// An email address.
    Email(String),
    /// A URI (`scheme://…`).
    Uri(String),
    /// Looks like a name but cannot be one (e.g. `10.1`, which resolvers read as an IPv4
    /// address in a legacy form); the text says why.
    Malformed(&'static str),
    /// Free text, not a name.
    Text,
}

/// Classifies a text by its form: an IP address; `local@domain` without spaces; a
/// `scheme://` URI; a dotted string of letters, digits, `-`, `_` and `*` (a DNS name,
/// perhaps malformed, which [`check_dns_syntax`] then judges); otherwise text.
pub fn classify_name(text: &str) -> NameShape {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return NameShape::Ip(ip);
    }
    if text.chars().any(char::is_whitespace) || text.is_empty() {
        return NameShape::Text;
    }
    if let Some((scheme, _)) = text.split_once("://")
        && !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return NameShape::Uri(text.to_string());
    }
    if let Some((local, domain)) = text.rsplit_once('@') {
        if !local.is_empty() && domain.contains('.') {
            return NameShape::Email(text.to_string());
        }
        return NameShape::Text;
    }
    let bare = text.strip_suffix('.').unwrap_or(text);
    if !bare.contains('.')
        || !bare
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '*'))
    {
        return NameShape::Text;
    }
    if bare
        .split('.')
        .all(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        // `10.1`, `1.2.3`: inet_aton reads these as IPv4 addresses.
        return NameShape::Malformed("is a dotted number but not an IP address");
    }
    if bare.len() != text.len() {
        // A trailing dot: the absolute form of a DNS name, never a valid SAN.
        return NameShape::Malformed("is a DNS name with a trailing dot");
    }
    NameShape::Dns(bare.to_lowercase())
}

/// Every common name of a Name, as text, in order.
pub fn common_names(name: &Name) -> Vec<String> {
    name.iter()
        .filter(|a| a.oid == CN)
        .filter_map(|a| attribute_text(&a.value))
        .collect()
}

const CN: ObjectIdentifier = crate::asn1::oid::COMMON_NAME;

/// The first common name of a Name, as text.
pub fn common_name(name: &Name) -> Option<String> {
    name.iter()
        .find(|a| a.oid == CN)
        .and_then(|a| attribute_text(&a.value))
}

/// The text of a DirectoryString-like attribute value.
pub fn attribute_text(value: &Any) -> Option<String> {
    match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::TeletexString => {
            std::str::from_utf8(value.value()).ok().map(str::to_string)
        }
        Tag::BmpString if value.value().len().is_multiple_of(2) => {
            let units: Vec<u16> = value
                .value()
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

fn attribute_rank(o: &ObjectIdentifier) -> u8 {
    match o.to_string().as_str() {
        "0.9.2342.19200300.100.1.25" => 0, // DC
        "2.5.4.6" => 1,                    // C
        "2.5.4.8" => 2,                    // ST
        "2.5.4.7" => 3,                    // L
        "2.5.4.10" => 4,                   // O
        "2.5.4.11" => 5,                   // OU
        "2.5.4.3" => 7,                    // CN
        _ => 6,
    }
}

/// Upper bounds of RFC 5280 Appendix A.1 (ub-*) for the attributes with one.
fn attribute_upper_bound(o: &ObjectIdentifier) -> Option<usize> {
    Some(match o.to_string().as_str() {
        "2.5.4.3" | "2.5.4.10" | "2.5.4.11" | "2.5.4.5" => 64,
        "2.5.4.7" | "2.5.4.8" => 128,
        "2.5.4.6" => 2,
        "1.2.840.113549.1.9.1" => 255,
        _ => return None,
    })
}

/// Checks a subject attribute value (issue 9 item 2): the bytes must be a well-formed
/// string of its ASN.1 type and carry only characters that type may carry and a
/// certificate should show, within the attribute's upper bound.
///
/// - PrintableString: `A–Z a–z 0–9 space ' ( ) + , - . / : = ?` (X.680 §41.4).
/// - IA5String: ASCII (X.680 §41.2), without controls.
/// - UTF8String: valid UTF-8 (RFC 3629); BMPString: UTF-16 without lone surrogates;
///   TeletexString: printable ASCII only (its T.61 repertoire is not Unicode).
/// - None of them may carry C0 or C1 controls or DEL (NUL truncates the name in C
///   clients, CR/LF and ESC forge log and terminal output), nor the bidirectional
///   overrides and isolates, line/paragraph separators and BOM, which make a displayed
///   name read differently from its bytes (Unicode TR 36 §2.1).
/// - `C` and `serialNumber` must be PrintableString characters and `emailAddress` and
///   `DC` IA5 characters whatever type carries them (RFC 5280 Appendix A.1); `C` is two
///   letters (ISO 3166-1 alpha-2).
pub fn check_attribute_value(atv: &AttributeTypeAndValue) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::BadRequest(format!(
            "subject attribute {} {why}",
            attribute_label(&atv.oid)
        )))
    };
    let bytes = atv.value.value();
    let text = match atv.value.tag() {
        Tag::PrintableString => match std::str::from_utf8(bytes) {
            Ok(t) if t.chars().all(is_printable_string_char) => t.to_string(),
            _ => return bad("has characters a PrintableString cannot carry"),
        },
        Tag::Ia5String => match std::str::from_utf8(bytes) {
            Ok(t) if t.is_ascii() => t.to_string(),
            _ => return bad("has characters an IA5String cannot carry"),
        },
        Tag::TeletexString => match std::str::from_utf8(bytes) {
            Ok(t) if t.bytes().all(|b| b.is_ascii_graphic() || b == b' ') => t.to_string(),
            _ => return bad("is a TeletexString with characters other than printable ASCII"),
        },
        Tag::Utf8String => match std::str::from_utf8(bytes) {
            Ok(t) => t.to_string(),
            Err(_) => return bad("is not valid UTF-8"),
        },
        Tag::BmpString => {
            if !bytes.len().is_multiple_of(2) {
                return bad("is a BMPString with an odd number of bytes");
            }
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            match String::from_utf16(&units) {
                Ok(t) => t,
                Err(_) => return bad("is not valid UTF-16"),
            }
        }
        _ => return bad("has an unsupported string type"),
    };
    if text.is_empty() {
        return bad("is empty");
    }
    if let Some(c) = text.chars().find(|c| is_forbidden_char(*c)) {
        return bad(&format!(
            "contains the control or formatting character U+{:04X}",
            u32::from(c)
        ));
    }
    match atv.oid.to_string().as_str() {
        "2.5.4.6" if !(text.len() == 2 && text.bytes().all(|b| b.is_ascii_alphabetic())) => {
            return bad("must be a two-letter country code");
        }
        "2.5.4.5" if !text.chars().all(is_printable_string_char) => {
            return bad("has characters a PrintableString cannot carry");
        }
        "1.2.840.113549.1.9.1" | "0.9.2342.19200300.100.1.25" if !text.is_ascii() => {
            return bad("has characters an IA5String cannot carry");
        }
        _ => {}
    }
    if let Some(max) = attribute_upper_bound(&atv.oid)
        && text.chars().count() > max
    {
        return Err(Error::PolicyRefused(format!(
            "subject attribute {} is longer than {max} characters",
            attribute_label(&atv.oid)
        )));
    }
    Ok(())
}

/// PrintableString's repertoire (X.680 §41.4, Table 10).
fn is_printable_string_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            ' ' | '\'' | '(' | ')' | '+' | ',' | '-' | '.' | '/' | ':' | '=' | '?'
        )
}

/// Characters no subject attribute may carry: C0, DEL, C1, and the Unicode formatting
/// characters that reorder or hide text (bidi embeddings, overrides and isolates,
/// LRM/RLM/ALM, line and paragraph separators, zero-width no-break space / BOM).
fn is_forbidden_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// A short name for an attribute type in messages (`CN`, `O`, …, or the OID).
fn attribute_label(o: &ObjectIdentifier) -> String {
    match o.to_string().as_str() {
        "2.5.4.3" => "CN".into(),
        "2.5.4.6" => "C".into(),
        "2.5.4.7" => "L".into(),
        "2.5.4.8" => "ST".into(),
        "2.5.4.10" => "O".into(),
        "2.5.4.11" => "OU".into(),
        "2.5.4.5" => "serialNumber".into(),
        "1.2.840.113549.1.9.1" => "emailAddress".into(),
        "0.9.2342.19200300.100.1.25" => "DC".into(),
        other => other.to_string(),
    }
}

/// Encodes a configured subject value with the string type RFC 5280 expects for it; the
/// value must pass [`check_attribute_value`].
pub fn encode_attribute(o: ObjectIdentifier, value: &str) -> Result<Any> {
    let bad = || Error::Config(format!("value {value:?} does not fit attribute {o}"));
    let any = match o.to_string().as_str() {
        "2.5.4.6" | "2.5.4.5" => {
            Any::encode_from(&PrintableString::new(value).map_err(|_| bad())?)?
        }
        "1.2.840.113549.1.9.1" | "0.9.2342.19200300.100.1.25" => {
            Any::encode_from(&Ia5String::new(value).map_err(|_| bad())?)?
        }
        _ => Any::encode_from(&Utf8StringRef::new(value).map_err(|_| bad())?)?,
    };
    check_attribute_value(&AttributeTypeAndValue {
        oid: o,
        value: any.clone(),
    })
    .map_err(|e| Error::Config(format!("value {value:?} of attribute {o}: {e}")))?;
    Ok(any)
}

/// OID of a subject attribute short name (RFC 4519 names).
pub fn attribute_oid(name: &str) -> Option<ObjectIdentifier> {
    let s = match name {
        "CN" | "commonName" => "2.5.4.3",
        "C" | "countryName" => "2.5.4.6",
        "L" | "localityName" => "2.5.4.7",
        "ST" | "stateOrProvinceName" => "2.5.4.8",
        "O" | "organizationName" => "2.5.4.10",
        "OU" | "organizationalUnitName" => "2.5.4.11",
        "serialNumber" => "2.5.4.5",
        "title" => "2.5.4.12",
        "GN" | "givenName" => "2.5.4.42",
        "SN" | "surname" => "2.5.4.4",
        "DC" | "domainComponent" => "0.9.2342.19200300.100.1.25",
        "UID" | "userId" => "0.9.2342.19200300.100.1.1",
        "emailAddress" => "1.2.840.113549.1.9.1",
        other => return ObjectIdentifier::new(other).ok(),
    };
    ObjectIdentifier::new(s).ok()
}

fn key_usage_bit(name: &str) -> Option<KeyUsages> {
    Some(match name {
        "digitalSignature" => KeyUsages::DigitalSignature,
        "nonRepudiation" | "contentCommitment" => KeyUsages::NonRepudiation,
        "keyEncipherment" => KeyUsages::KeyEncipherment,
        "dataEncipherment" => KeyUsages::DataEncipherment,
        "keyAgreement" => KeyUsages::KeyAgreement,
        "keyCertSign" => KeyUsages::KeyCertSign,
        "cRLSign" => KeyUsages::CRLSign,
        _ => return None,
    })
}

fn eku_oid(name: &str) -> Option<ObjectIdentifier> {
    Some(match name {
        "serverAuth" => oid::KP_SERVER_AUTH,
        "clientAuth" => oid::KP_CLIENT_AUTH,
        "codeSigning" => oid::KP_CODE_SIGNING,
        "emailProtection" => oid::KP_EMAIL_PROTECTION,
        "timeStamping" => oid::KP_TIME_STAMPING,
        "OCSPSigning" => oid::KP_OCSP_SIGNING,
        other => return ObjectIdentifier::new(other).ok(),
    })
}

/// Checks DNS name syntax (RFC 1034 §3.5 preferred syntax, RFC 5280 §4.2.1.6): LDH labels
/// of 1–63 octets, at most 253 octets, optionally a `*` as the whole left-most label.
pub fn check_dns_syntax(name: &str, allow_wildcard: bool) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::BadRequest(format!(
            "DNS name {name:?} is invalid: {why}"
        )))
    };
    if name.is_empty() || name.len() > 253 {
        return bad("length");
    }
    let mut labels = name.split('.').peekable();
    let mut first = true;
    while let Some(label) = labels.next() {
        if first && label == "*" {
            if !allow_wildcard {
                return bad("wildcards are not allowed");
            }
            if labels.peek().is_none() {
                return bad("a wildcard needs a parent domain");
            }
            first = false;
            continue;
        }
        first = false;
        if label.is_empty() || label.len() > 63 {
            return bad("empty or over-long label");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return bad("only letters, digits and hyphens are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label may not start or end with a hyphen");
        }
    }
    Ok(())
}

/// Parses a requested name list from decoded GeneralNames, refusing kinds the CA does not
/// issue ([`San::from_general_name`]).
pub fn sans_from_general_names(names: &[GeneralName]) -> Result<Vec<San>> {
    names.iter().map(San::from_general_name).collect()
}

/// Decodes a DER Name (for tests and tools).
pub fn name_from_der(der: &[u8]) -> Result<Name> {
    Name::from_der(der).map_err(|e| Error::BadRequest(format!("name: {e}")))
}

/// Encodes a Name to DER.
pub fn name_to_der(name: &Name) -> Result<Vec<u8>> {
    Ok(name.to_der()?)
}

/// Whether two names hold the same attributes (type and DER value), whatever the order
/// of their RDNs: a renewal compares subjects this way (RFC 5280 §7.1 compares names RDN
/// by RDN; privca's own reordering must not make a name differ from itself).
pub fn same_subject(a: &Name, b: &Name) -> bool {
    let atvs = |n: &Name| {
        let mut v: Vec<Vec<u8>> = n
            .iter_rdn()
            .flat_map(|rdn| rdn.iter())
            .filter_map(|atv| atv.to_der().ok())
            .collect();
        v.sort();
        v
    };
    atvs(a) == atvs(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn profile(name: &str) -> Profile {
        Profile::from_config(name, built_in(name).expect("built-in"), "issuing").expect("valid")
    }

    #[test]
    fn all_built_ins_validate() {
        for name in BUILT_IN {
            profile(name);
        }
    }

    #[test]
    fn dns_syntax() {
        assert!(check_dns_syntax("a.example.com", false).is_ok());
        assert!(check_dns_syntax("*.example.com", true).is_ok());
        assert!(check_dns_syntax("*.example.com", false).is_err());
        assert!(check_dns_syntax("*", true).is_err());
        assert!(check_dns_syntax("a..b", false).is_err());
        assert!(check_dns_syntax("-a.b", false).is_err());
        assert!(check_dns_syntax("a_b.c", false).is_err());
        assert!(check_dns_syntax(&"a".repeat(64), false).is_err());
    }

    #[test]
    fn san_rules() {
        let mut cfg = built_in("tls-server").expect("built-in");
        cfg.san.any_dns = false;
        cfg.san.dns = vec![".corp.example".into(), "exact.example".into()];
        cfg.san.ip_ranges = vec!["10.0.0.0/8".into()];
        let p = Profile::from_config("t", cfg, "issuing").expect("valid");
        let subject = Name::from_str("CN=x").expect("name");
        assert!(
            p.check_sans(&[San::Dns("a.corp.example".into())], &subject)
                .is_ok()
        );
        assert!(
            p.check_sans(&[San::Dns("exact.example".into())], &subject)
                .is_ok()
        );
        assert!(
            p.check_sans(&[San::Dns("corp.example.evil".into())], &subject)
                .is_err()
        );
        assert!(
            p.check_sans(&[San::Dns("xcorp.example".into())], &subject)
                .is_err()
        );
        assert!(
            p.check_sans(&[San::Dns("*.corp.example".into())], &subject)
                .is_ok()
        );
        assert!(
            p.check_sans(&[San::Ip("10.1.2.3".parse().expect("ip"))], &subject)
                .is_ok()
        );
        assert!(
            p.check_sans(&[San::Ip("11.1.2.3".parse().expect("ip"))], &subject)
                .is_err()
        );
        assert!(
            p.check_sans(&[San::Ip("::1".parse().expect("ip"))], &subject)
                .is_err()
        );
        assert!(
            p.check_sans(&[San::Email("a@b.example".into())], &subject)
                .is_err()
        );
        // required
        assert!(p.check_sans(&[], &subject).is_err());
        // cn_as_dns
        let subject = Name::from_str("CN=www.corp.example").expect("name");
        assert_eq!(
            p.check_sans(&[], &subject).expect("ok"),
            vec![San::Dns("www.corp.example".into())]
        );
        // An address in the CN is not copied as a DNS name (issue 9 item 24).
        let subject = Name::from_str("CN=10.1.2.3").expect("name");
        let ip = San::Ip("10.1.2.3".parse().expect("ip"));
        assert_eq!(
            p.check_sans(std::slice::from_ref(&ip), &subject)
                .expect("ok"),
            vec![ip]
        );
    }

    #[test]
    fn names_are_classified_by_form() {
        use NameShape::*;
        let ip = |s: &str| Ip(s.parse().expect("ip"));
        for (text, shape) in [
            ("www.example.com", Dns("www.example.com".into())),
            ("WWW.Example.COM", Dns("www.example.com".into())),
            ("*.example.com", Dns("*.example.com".into())),
            ("a_b.example", Dns("a_b.example".into())),
            ("10.0.0.1", ip("10.0.0.1")),
            ("::1", ip("::1")),
            ("alice@example.com", Email("alice@example.com".into())),
            ("spiffe://trust/x", Uri("spiffe://trust/x".into())),
            (
                "10.1",
                Malformed("is a dotted number but not an IP address"),
            ),
            (
                "host.example.",
                Malformed("is a DNS name with a trailing dot"),
            ),
            ("Jane Doe", Text),
            ("phone-17", Text),
            ("v1.2 beta", Text),
            ("alice@localhost", Text),
            ("", Text),
        ] {
            assert_eq!(classify_name(text), shape, "{text:?}");
        }
    }

    #[test]
    fn renewals_compare_subjects_and_sans_in_any_order() {
        let p = Profile::from_config("device", built_in("device").expect("built-in"), "issuing")
            .expect("valid");
        let cert = Name::from_str("O=Example,CN=phone-1").expect("name");
        // The certificate's attributes in another RDN order (issued before the subject
        // kept the request's order), and the same as sent.
        for req in ["CN=phone-1,O=Example", "O=Example,CN=phone-1"] {
            let req = Name::from_str(req).expect("name");
            assert!(p.renewal_keeps_subject(&req, &cert), "{req}");
        }
        for req in ["CN=phone-2,O=Example", "CN=phone-1", "CN=phone-1,O=Other"] {
            let req = Name::from_str(req).expect("name");
            assert!(!p.renewal_keeps_subject(&req, &cert), "{req}");
        }
        let a = San::Dns("a.example".into());
        let b = San::Dns("b.example".into());
        let subject = Name::from_str("CN=phone-1").expect("name");
        assert!(p.renewal_keeps_sans(&[b.clone(), a.clone()], &subject, &[a.clone(), b.clone()]));
        assert!(!p.renewal_keeps_sans(std::slice::from_ref(&a), &subject, &[a.clone(), b]));
    }

    #[test]
    fn subject_template() {
        let mut cfg = built_in("device").expect("built-in");
        cfg.subject.fixed.insert("O".into(), "Example Corp".into());
        let p = Profile::from_config("d", cfg, "issuing").expect("valid");
        let req = Name::from_str("CN=phone1,O=Evil,L=Nowhere").expect("name");
        let s = p.build_subject(&req).expect("subject");
        assert_eq!(s.to_string(), "CN=phone1,O=Example Corp");
    }

    #[test]
    fn key_policy() {
        let p = profile("ra");
        assert!(p.check_key(KeyAlgorithm::Rsa2048).is_ok());
        assert!(p.check_key(KeyAlgorithm::EcdsaP256).is_err());
        assert_eq!(
            profile("tls-server").key_usage_for(KeyAlgorithm::EcdsaP256),
            FlagSet::from(KeyUsages::DigitalSignature)
        );
    }

    #[test]
    fn bad_profile_configs_are_refused() {
        let mut cfg = built_in("tls-server").expect("built-in");
        cfg.key_usage = vec!["keyCertSign".into()];
        assert!(Profile::from_config("x", cfg, "i").is_err());
        let mut cfg = built_in("tls-server").expect("built-in");
        cfg.extended_key_usage = vec!["nonsense".into()];
        assert!(Profile::from_config("x", cfg, "i").is_err());
        let mut cfg = built_in("tls-server").expect("built-in");
        cfg.san.ip_ranges = vec!["10.0.0.0/33".into()];
        assert!(Profile::from_config("x", cfg, "i").is_err());
        let mut cfg = built_in("tls-server").expect("built-in");
        cfg.validity_days = 0;
        assert!(Profile::from_config("x", cfg, "i").is_err());
    }

    fn other_names_profile() -> Profile {
        let mut cfg = built_in("tls-client").expect("built-in");
        cfg.san.upn_suffixes = vec!["@corp.example".into()];
        cfg.san.permanent_identifier_values = vec!["SN-*".into()];
        cfg.san.permanent_identifier_assigners = vec!["1.3.6.1.4.1.99999.1".into()];
        cfg.san.hardware_module_types = vec!["1.3.6.1.4.1.99999.2".into()];
        Profile::from_config("users", cfg, "i").expect("profile")
    }

    #[test]
    fn other_names_round_trip_through_der_and_the_display_form() {
        for text in [
            "upn:jane@corp.example",
            "permanentId:SN-0017",
            "permanentId:SN-0017;assigner=1.3.6.1.4.1.99999.1",
            "hardwareModuleName:1.3.6.1.4.1.99999.2:0A0B0C",
        ] {
            let san = San::parse(text).expect(text);
            assert_eq!(san.display(), text);
            let g = san.to_general_name().expect("encode");
            let der = g.to_der().expect("der");
            let back = GeneralName::from_der(&der).expect("decode");
            assert_eq!(San::from_general_name(&back).expect("read"), san, "{text}");
        }
        // The UPN is [0] { OID 1.3.6.1.4.1.311.20.2.3, [0] EXPLICIT UTF8String }.
        let der = San::Upn("u@c.example".into())
            .to_general_name()
            .and_then(|g| Ok(g.to_der()?))
            .expect("der");
        let mut want = vec![0xA0, 0x1B, 0x06, 0x0A];
        want.extend([0x2B, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x14, 0x02, 0x03]);
        want.extend([0xA0, 0x0D, 0x0C, 0x0B]);
        want.extend(b"u@c.example");
        assert_eq!(der, want);
    }

    #[test]
    fn other_names_are_refused_unless_the_profile_allows_them() {
        let subject = Name::default();
        let plain = Profile::from_config("p", built_in("tls-client").expect("b"), "i").expect("p");
        let upn = San::Upn("jane@corp.example".into());
        let e = plain
            .check_sans(std::slice::from_ref(&upn), &subject)
            .expect_err("refused");
        assert!(e.to_string().contains("issues no UPNs"), "{e}");
        let p = other_names_profile();
        assert!(p.check_sans(std::slice::from_ref(&upn), &subject).is_ok());
        for (san, why) in [
            (San::Upn("jane@evil.example".into()), "not allowed"),
            (San::Upn("jane@CORP.example.evil".into()), "not allowed"),
            (San::Upn("no-at".into()), "is not a UPN"),
            (San::Upn("a@b@corp.example".into()), "is not a UPN"),
            (San::Upn("".into()), "is empty"),
            (
                San::PermanentId {
                    value: "XX-1".into(),
                    assigner: None,
                },
                "does not match",
            ),
            (
                San::PermanentId {
                    value: "SN-1".into(),
                    assigner: Some(ObjectIdentifier::new_unwrap("1.2.3")),
                },
                "assigner 1.2.3",
            ),
            (
                San::HardwareModule {
                    hw_type: ObjectIdentifier::new_unwrap("1.2.3"),
                    serial: vec![1],
                },
                "hwType 1.2.3",
            ),
        ] {
            let e = p
                .check_sans(std::slice::from_ref(&san), &subject)
                .expect_err("refused");
            assert!(e.to_string().contains(why), "{san:?}: {e}");
        }
        // The UPN suffix compares ignoring case.
        assert!(
            p.check_sans(&[San::Upn("jane@Corp.Example".into())], &subject)
                .is_ok()
        );
    }

    #[test]
    fn glob_patterns() {
        for (p, t, m) in [
            ("*", "", true),
            ("SN-*", "SN-1", true),
            ("SN-*", "XSN-1", false),
            ("*-01", "a-01", true),
            ("a*b*c", "abc", true),
            ("a*b*c", "acb", false),
            ("a*a", "a", false),
            ("exact", "exact", true),
            ("exact", "exact2", false),
        ] {
            assert_eq!(glob_match(p, t), m, "{p:?} {t:?}");
        }
    }

    #[test]
    fn other_name_profile_settings_are_validated() {
        for (field, value) in [
            ("upn", "corp.example"),
            ("assigner", "not-an-oid"),
            ("hw", "x"),
            ("require", "phone"),
        ] {
            let mut cfg = built_in("tls-client").expect("built-in");
            match field {
                "upn" => cfg.san.upn_suffixes = vec![value.into()],
                "assigner" => cfg.san.permanent_identifier_assigners = vec![value.into()],
                "hw" => cfg.san.hardware_module_types = vec![value.into()],
                _ => cfg.san.require = vec![value.into()],
            }
            assert!(Profile::from_config("x", cfg, "i").is_err(), "{field}");
        }
    }
}
