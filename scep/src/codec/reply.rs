//! Messages out (RFC 8894 §3.2, §3.3.2): signed pkiMessages, CertReps, and reading the
//! certs-only content of a reply.

use hsm::{PrivateKey, SignatureScheme};

use ca_core::asn1::pkcs7::content_info as wrap_content_info;
use ca_core::asn1::write::attribute;

use super::signed::content_info;
use super::{DigestAlg, MessageType, PkiStatus, ReplyTo, cert_parts, envelope, oid};
use crate::ber::{self, tag};
use crate::{Error, Result};

/// A certificate with its key that signs replies (RA, or the CA itself).
#[derive(Clone, Debug)]
pub struct ReplySigner<'a> {
    /// The certificate, DER.
    pub cert_der: &'a [u8],
    /// Its key.
    pub key: &'a dyn PrivateKey,
}

/// DER IssuerAndSerialNumber of a certificate.
pub fn issuer_and_serial_of(cert_der: &[u8]) -> Result<Vec<u8>> {
    let p = cert_parts(cert_der)?;
    Ok(ber::seq(&[p.issuer, &ber::tlv(tag::INTEGER, p.serial)]))
}

/// A degenerate certs-only SignedData (RFC 8894 §3.4, RFC 5652 §5.2): the one builder,
/// shared with EST.
pub use ca_core::asn1::certs_only;

/// SCEP attributes of an outgoing message.
#[derive(Clone, Debug)]
pub struct OutAttributes<'a> {
    /// messageType.
    pub message_type: MessageType,
    /// transactionID.
    pub transaction_id: &'a str,
    /// senderNonce (fresh).
    pub sender_nonce: &'a [u8],
    /// recipientNonce (replies).
    pub recipient_nonce: Option<&'a [u8]>,
    /// pkiStatus (replies).
    pub status: Option<&'a PkiStatus>,
}

/// Builds a signed pkiMessage (RFC 8894 §3.2): SignedData over `content` (absent for
/// FAILURE/PENDING: messageDigest is then the digest of empty content), with the SCEP
/// attributes, signed by `signer` with `digest`'s RSA scheme, carrying `extra_certs`
/// after the signer's certificate.
pub fn sign_message(
    content: Option<&[u8]>,
    attrs: &OutAttributes<'_>,
    signer: &ReplySigner<'_>,
    digest: DigestAlg,
    scheme: SignatureScheme,
    extra_certs: &[&[u8]],
) -> Result<Vec<u8>> {
    sign_message_with(
        content,
        attrs,
        signer.cert_der,
        digest,
        extra_certs,
        |tbs| Ok(signer.key.sign(scheme, tbs)?),
    )
}

/// [`sign_message`] with the signature made by `sign` over the DER signed attributes
/// (tests use it for digests our keys never sign with, such as MD5).
pub fn sign_message_with(
    content: Option<&[u8]>,
    attrs: &OutAttributes<'_>,
    signer_cert_der: &[u8],
    digest: DigestAlg,
    extra_certs: &[&[u8]],
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    let printable = |s: &str| ber::tlv(tag::PRINTABLE_STRING, s.as_bytes());
    let mut list = vec![
        attribute(&oid::CONTENT_TYPE, &ber::oid(&oid::DATA)),
        attribute(
            &oid::MESSAGE_DIGEST,
            &ber::tlv(tag::OCTET_STRING, &digest.hash(content.unwrap_or_default())),
        ),
        attribute(&oid::MESSAGE_TYPE, &printable(attrs.message_type.code())),
        attribute(&oid::TRANSACTION_ID, &printable(attrs.transaction_id)),
        attribute(
            &oid::SENDER_NONCE,
            &ber::tlv(tag::OCTET_STRING, attrs.sender_nonce),
        ),
    ];
    if let Some(n) = attrs.recipient_nonce {
        list.push(attribute(
            &oid::RECIPIENT_NONCE,
            &ber::tlv(tag::OCTET_STRING, n),
        ));
    }
    if let Some(s) = attrs.status {
        let code = match s {
            PkiStatus::Success => "0",
            PkiStatus::Failure(..) => "2",
            PkiStatus::Pending => "3",
        };
        list.push(attribute(&oid::PKI_STATUS, &printable(code)));
        if let PkiStatus::Failure(fi, text) = s {
            list.push(attribute(
                &oid::FAIL_INFO,
                &printable(&(*fi as u8).to_string()),
            ));
            if let Some(t) = text {
                list.push(attribute(
                    &oid::FAIL_INFO_TEXT,
                    &ber::tlv(tag::UTF8_STRING, t.as_bytes()),
                ));
            }
        }
    }
    let signed_set = ber::set_of(list);
    let signature = sign(&signed_set)?;
    let mut implicit = signed_set.clone();
    implicit[0] = tag::CTX0;
    let si = ber::seq(&[
        &ber::small_int(1),
        &issuer_and_serial_of(signer_cert_der)?,
        &ber::alg(&digest.oid(), true),
        &implicit,
        &ber::alg(&oid::RSA_ENCRYPTION, true),
        &ber::tlv(tag::OCTET_STRING, &signature),
    ]);
    let encap = match content {
        Some(c) => ber::seq(&[
            &ber::oid(&oid::DATA),
            &ber::tlv(tag::CTX0, &ber::tlv(tag::OCTET_STRING, c)),
        ]),
        None => ber::seq(&[&ber::oid(&oid::DATA)]),
    };
    let mut certs: Vec<&[u8]> = vec![signer_cert_der];
    certs.extend_from_slice(extra_certs);
    let sd = ber::seq(&[
        &ber::small_int(1),
        &ber::set_of(vec![ber::alg(&digest.oid(), true)]),
        &encap,
        &ber::tlv(tag::CTX0, &certs.concat()),
        &ber::tlv(tag::SET, &si),
    ]);
    Ok(wrap_content_info(&oid::SIGNED_DATA, &sd))
}

/// A fresh 16-byte senderNonce (RFC 8894 §3.2.1.5).
pub fn fresh_nonce() -> Vec<u8> {
    let mut n = vec![0u8; 16];
    rand::fill(&mut n[..]);
    n
}

/// Builds a CertRep (RFC 8894 §3.3.2). For SUCCESS, `degenerate` (a certs-only
/// SignedData with the certificate or the CRL) is encrypted to the request's signer with
/// the request's content cipher.
pub fn cert_rep(
    reply_to: &ReplyTo,
    status: &PkiStatus,
    degenerate: Option<&[u8]>,
    signer: &ReplySigner<'_>,
) -> Result<Vec<u8>> {
    let content = match (status, degenerate) {
        (PkiStatus::Success, Some(d)) => {
            Some(envelope(d, &reply_to.signer_cert_der, reply_to.cipher)?)
        }
        (PkiStatus::Success, None) => {
            return Err(Error::Reply("a SUCCESS CertRep needs content".into()));
        }
        _ => None,
    };
    let nonce = fresh_nonce();
    let (digest, scheme) = reply_to.digest.reply_scheme();
    sign_message(
        content.as_deref(),
        &OutAttributes {
            message_type: MessageType::CertRep,
            transaction_id: &reply_to.transaction_id,
            sender_nonce: &nonce,
            recipient_nonce: Some(&reply_to.sender_nonce),
            status: Some(status),
        },
        signer,
        digest,
        scheme,
        &[],
    )
}

/// Certificates and CRLs (DER), in order.
pub type CertsAndCrls = (Vec<Vec<u8>>, Vec<Vec<u8>>);

/// Certificates (DER) in a degenerate certs-only SignedData, in order.
pub fn certs_from_degenerate(input: &[u8]) -> Result<CertsAndCrls> {
    let (ct, sd) = content_info(input)?;
    if ct != oid::SIGNED_DATA {
        return Err(Error::malformed("not a SignedData"));
    }
    let mut certs = Vec::new();
    let mut crls = Vec::new();
    for e in sd.expect(tag::SEQUENCE, "SignedData")?.children()? {
        if e.tag == tag::CTX0 {
            certs.extend(e.children()?.iter().map(|c| c.raw.to_vec()));
        } else if e.tag == tag::CTX1 {
            crls.extend(e.children()?.iter().map(|c| c.raw.to_vec()));
        }
    }
    Ok((certs, crls))
}
