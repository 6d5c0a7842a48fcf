//! What a tls-alpn-01 validation certificate must be (RFC 8737 §3): the server crate
//! makes the TLS connection (ALPN `acme-tls/1`, SNI the identifier) and hands the
//! certificate the client presented to [`check_certificate`].

use ca_core::asn1::oid;
use ca_core::profile::San;
use der::Decode;
use der::asn1::OctetString;
use x509_cert::Certificate;

/// The ALPN protocol of tls-alpn-01 (RFC 8737 §6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The largest certificate read (a validation certificate is self-signed and small).
pub const MAX_CERTIFICATE: usize = 16 * 1024;

/// Checks a tls-alpn-01 certificate (RFC 8737 §3): exactly one subjectAltName, equal to
/// `identifier` (a dNSName, or an iPAddress for RFC 8738 §6), and a critical
/// id-pe-acmeIdentifier extension whose value is the OCTET STRING `digest`
/// (SHA-256 of the key authorization). `Err` says what is wrong, for the challenge's
/// problem document.
pub fn check_certificate(
    der: &[u8],
    identifier: &San,
    digest: &[u8; 32],
) -> std::result::Result<(), String> {
    if der.len() > MAX_CERTIFICATE {
        return Err(format!(
            "the certificate is larger than {MAX_CERTIFICATE} bytes"
        ));
    }
    let cert =
        Certificate::from_der(der).map_err(|e| format!("the certificate does not parse: {e}"))?;
    let sans = ca_core::enroll::cert_sans(&cert)
        .map_err(|e| format!("the certificate's subjectAltName: {}", e.client_message()))?;
    let same = match (sans.as_slice(), identifier) {
        ([San::Dns(got)], San::Dns(want)) => got.eq_ignore_ascii_case(want),
        ([got], want) => got == want,
        _ => false,
    };
    if !same {
        return Err(format!(
            "the certificate must name exactly {identifier:?} in its subjectAltName, it names {sans:?}"
        ));
    }
    let exts: Vec<_> = cert
        .tbs_certificate()
        .extensions()
        .into_iter()
        .flatten()
        .filter(|e| e.extn_id == oid::ACME_IDENTIFIER)
        .collect();
    let [ext] = exts.as_slice() else {
        return Err("the certificate must carry one acmeIdentifier extension".into());
    };
    if !ext.critical {
        return Err("the acmeIdentifier extension must be critical (RFC 8737 §3)".into());
    }
    let value = OctetString::from_der(ext.extn_value.as_bytes())
        .map_err(|e| format!("the acmeIdentifier extension is not an OCTET STRING: {e}"))?;
    if value.as_bytes() != digest.as_slice() {
        return Err(
            "the acmeIdentifier extension is not the SHA-256 of the key authorization".into(),
        );
    }
    Ok(())
}
