//! Names in the subject (RFC 5280 §4.1.2.6, X.520): attribute types and values, their
//! syntax and length checks, what shape a name has (DNS, IP, email, UPN, URI), and name
//! comparison.

use super::*;

/// emailAddress (PKCS#9, RFC 2985 §5.2.1).
pub(crate) const EMAIL_ADDRESS: ObjectIdentifier = crate::asn1::oid::EMAIL_ADDRESS;

/// Two mailboxes are the same when the local parts are equal and the domains are equal
/// ignoring case (RFC 5280 §7.5).
pub(crate) fn same_mailbox(a: &str, b: &str) -> bool {
    match (a.rsplit_once('@'), b.rsplit_once('@')) {
        (Some((la, da)), Some((lb, db))) => la == lb && da.eq_ignore_ascii_case(db),
        _ => false,
    }
}

/// The longest local part of a mailbox (RFC 5321 §4.5.3.1.1).
const MAX_LOCAL_PART: usize = 64;

/// `atext` of RFC 5322 §3.2.3: the characters of an unquoted local-part atom.
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

/// Checks rfc822Name syntax (RFC 5280 §4.2.1.6: an IA5String Mailbox of RFC 5321
/// §4.1.2): `local@domain` with exactly one `@`, the local part a Dot-string (atoms of
/// `atext` joined by single dots, at most 64 octets), the domain a DNS name. Quoted local
/// parts (`"a b"@example.com`), which no device or mail client here needs, are refused
/// with the rest.
pub(crate) fn check_mailbox_syntax(addr: &str) -> Result<()> {
    let bad = |why: &str| Error::BadRequest(format!("{addr:?} is not an email address: {why}"));
    let (local, domain) = addr.split_once('@').ok_or_else(|| bad("it has no \"@\""))?;
    if domain.contains('@') {
        return Err(bad("it has more than one \"@\""));
    }
    if local.is_empty() || local.len() > MAX_LOCAL_PART {
        return Err(bad("the local part must be 1 to 64 characters"));
    }
    if !local
        .split('.')
        .all(|atom| !atom.is_empty() && atom.bytes().all(is_atext))
    {
        return Err(bad(
            "the local part must be dot-separated letters, digits and !#$%&'*+-/=?^_`{|}~",
        ));
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

pub(crate) const CN: ObjectIdentifier = crate::asn1::oid::COMMON_NAME;

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

pub(crate) fn attribute_rank(o: &ObjectIdentifier) -> u8 {
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
pub(crate) fn attribute_upper_bound(o: &ObjectIdentifier) -> Option<usize> {
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
pub(crate) fn is_printable_string_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            ' ' | '\'' | '(' | ')' | '+' | ',' | '-' | '.' | '/' | ':' | '=' | '?'
        )
}

/// Characters no subject attribute may carry: C0, DEL, C1, and the Unicode formatting
/// characters that reorder or hide text (bidi embeddings, overrides and isolates,
/// LRM/RLM/ALM, line and paragraph separators, zero-width no-break space / BOM).
pub(crate) fn is_forbidden_char(c: char) -> bool {
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
pub(crate) fn attribute_label(o: &ObjectIdentifier) -> String {
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

pub(crate) fn key_usage_bit(name: &str) -> Option<KeyUsages> {
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

pub(crate) fn eku_oid(name: &str) -> Option<ObjectIdentifier> {
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
