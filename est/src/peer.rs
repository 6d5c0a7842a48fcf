//! What the TLS listener tells a handler about the connection, and the checks of a TLS
//! client certificate against an endpoint's trust anchors (RFC 7030 §3.3.2).
//!
//! The listener (in `server`) asks for a client certificate without requiring one and
//! checks only that the client holds the certificate's key (the handshake signature).
//! Which anchors a certificate must chain to depends on the EST endpoint the request
//! names, so the chain is validated here, per request, before anything trusts it.

use der::Decode;
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_cert::Certificate;
use x509_cert::ext::pkix::ExtendedKeyUsage;

use crate::{Error, Result};

/// RFC 9266 §2: the exporter label of the tls-exporter channel binding.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";
/// RFC 9266 §2: its length.
pub const EXPORTER_LEN: usize = 32;

/// id-kp-cmcRA (RFC 6402 §2.10): the extended key usage of a registration authority
/// that RFC 7030 §3.7 lets enroll on behalf of others.
pub const ID_KP_CMC_RA: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.28");

/// Whether `cert` has an extendedKeyUsage extension that lists `oid`.
pub fn has_eku(cert: &Certificate, oid: const_oid::ObjectIdentifier) -> bool {
    cert.tbs_certificate()
        .extensions()
        .into_iter()
        .flatten()
        .filter(|e| e.extn_id == <ExtendedKeyUsage as const_oid::AssociatedOid>::OID)
        .filter_map(|e| ExtendedKeyUsage::from_der(e.extn_value.as_bytes()).ok())
        .any(|eku| eku.0.contains(&oid))
}

/// Facts of the TLS connection a request came in on; a request extension set by the
/// HTTPS listener.
#[derive(Clone, Debug, Default)]
pub struct TlsInfo {
    /// The client's certificate chain as sent, leaf first. **Not validated** beyond the
    /// client's proof that it holds the leaf's key: use [`validate_client`].
    pub unverified_chain: Vec<Vec<u8>>,
    /// The RFC 9266 tls-exporter value (32 bytes; TLS 1.3, or TLS 1.2 with Extended
    /// Master Secret, which the listener requires).
    pub exporter: Option<[u8; EXPORTER_LEN]>,
    /// The negotiated protocol (`TLSv1.3`, `TLSv1.2`).
    pub protocol: String,
}

/// A client certificate that passed the endpoint's checks.
#[derive(Clone, Debug)]
pub struct ClientIdentity {
    /// The leaf, DER.
    pub cert_der: Vec<u8>,
    /// Its subject (RFC 4514 form) for logs and audit.
    pub subject: String,
    /// Hex serial when privca issued it (and its record says valid).
    pub privca_serial: Option<String>,
    /// Its decoded form.
    pub cert: Certificate,
}

/// Validates a client chain for an endpoint: either the leaf is a certificate privca
/// issued (byte-equal to its record, within its validity, not revoked) and
/// `trust_privca` is on, or the chain validates (rustls-webpki: signatures, validity,
/// CA constraints, clientAuth EKU when present) to one of `extra_anchors`.
pub fn validate_client(
    auth: &ca_core::Authority,
    chain: &[Vec<u8>],
    trust_privca: bool,
    extra_anchors: &[Vec<u8>],
) -> Result<ClientIdentity> {
    let leaf_der = chain
        .first()
        .ok_or_else(|| Error::Unauthenticated("no client certificate".into()))?;
    let cert = Certificate::from_der(leaf_der)
        .map_err(|_| Error::Forbidden("the client certificate does not decode".into()))?;
    let subject = cert.tbs_certificate().subject().to_string();
    let now = auth.now();
    let serial = cert.tbs_certificate().serial_number().as_bytes().to_vec();
    // A certificate privca issued: byte-equal to its record (ca-core's one lookup).
    if let Ok(Some(record)) = auth.issued_certificate(leaf_der) {
        if !trust_privca {
            return Err(Error::Forbidden(
                "this endpoint does not accept privca-issued client certificates".into(),
            ));
        }
        if record.revocation.is_some() {
            return Err(Error::Forbidden("the client certificate is revoked".into()));
        }
        if now < record.not_before || now > record.not_after {
            return Err(Error::Forbidden(
                "the client certificate is expired or not yet valid".into(),
            ));
        }
        return Ok(ClientIdentity {
            cert_der: leaf_der.clone(),
            subject,
            privca_serial: Some(ca_core::asn1::serial_hex(&serial)),
            cert,
        });
    }
    if extra_anchors.is_empty() {
        return Err(Error::Forbidden(
            "the client certificate was not issued by this CA".into(),
        ));
    }
    let anchor_ders: Vec<CertificateDer<'_>> = extra_anchors
        .iter()
        .map(|d| CertificateDer::from(d.as_slice()))
        .collect();
    let anchors = anchor_ders
        .iter()
        .map(|d| webpki::anchor_from_trusted_cert(d).map(|a| a.to_owned()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Config(format!("a client CA certificate does not decode: {e}")))?;
    let leaf = CertificateDer::from(leaf_der.as_slice());
    let ee = webpki::EndEntityCert::try_from(&leaf)
        .map_err(|_| Error::Forbidden("the client certificate does not decode".into()))?;
    let intermediates: Vec<CertificateDer<'_>> = chain[1..]
        .iter()
        .map(|d| CertificateDer::from(d.as_slice()))
        .collect();
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(now).unwrap_or(0),
    ));
    let algs = rustls::crypto::aws_lc_rs::default_provider()
        .signature_verification_algorithms
        .all;
    ee.verify_for_usage(
        algs,
        &anchors,
        &intermediates,
        time,
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map_err(|e| {
        Error::Forbidden(match e {
            webpki::Error::CertExpired { .. } | webpki::Error::CertNotValidYet { .. } => {
                "the client certificate is expired or not yet valid".into()
            }
            webpki::Error::UnknownIssuer => {
                "the client certificate does not chain to a trust anchor of this endpoint".into()
            }
            other => format!("the client certificate is not acceptable: {other:?}"),
        })
    })?;
    Ok(ClientIdentity {
        cert_der: leaf_der.clone(),
        subject,
        privca_serial: None,
        cert,
    })
}
