//! Subject alternative names (RFC 5280 §4.2.1.6): the kinds privca issues, how each is
//! read from a request and written into a certificate, and their syntax checks.

use super::*;

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
pub(crate) struct PermanentIdentifierRef<'a> {
    #[asn1(optional = "true")]
    identifier_value: Option<Utf8StringRef<'a>>,
    #[asn1(optional = "true")]
    assigner: Option<ObjectIdentifier>,
}

/// HardwareModuleName ::= SEQUENCE { hwType OBJECT IDENTIFIER, hwSerialNum OCTET STRING }
/// (RFC 4108 §5).
#[derive(Clone, Debug, der::Sequence)]
pub(crate) struct HardwareModuleNameDer {
    hw_type: ObjectIdentifier,
    hw_serial_num: OctetString,
}

/// Checks the text of a UPN or a permanentIdentifier value: not empty, at most
/// [`MAX_OTHER_NAME_TEXT`] bytes, no control characters (which would let a name rewrite
/// a log line or a display).
pub(crate) fn check_other_name_text(what: &str, text: &str) -> Result<()> {
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
pub(crate) fn check_upn_syntax(upn: &str) -> Result<()> {
    check_other_name_text("UPN", upn)?;
    let bad = || Error::BadRequest(format!("{upn:?} is not a UPN (user@suffix)"));
    let (user, suffix) = upn.split_once('@').ok_or_else(bad)?;
    if user.is_empty() || suffix.contains('@') || user.chars().any(char::is_whitespace) {
        return Err(bad());
    }
    check_dns_syntax(&suffix.to_ascii_lowercase(), false)
}

pub(crate) fn parse_oid(text: &str) -> Result<ObjectIdentifier> {
    ObjectIdentifier::new(text.trim())
        .map_err(|_| Error::BadRequest(format!("{text:?} is not an OID")))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
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
pub(crate) struct IpRange {
    net: IpAddr,
    prefix: u8,
}

impl IpRange {
    pub(crate) fn parse(text: &str) -> Result<IpRange> {
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

    pub(crate) fn contains(&self, ip: &IpAddr) -> bool {
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

/// Whether `text` matches `pattern`, in which `*` stands for any run of characters
/// (including none) and every other character for itself.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
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
