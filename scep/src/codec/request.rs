//! The server side of a request (RFC 8894 §3.2, §3.3): verify, open, and check that the
//! messageData is what the messageType calls for, with one answer for every envelope that
//! does not yield a valid messageData.

use std::sync::Arc;

use der::Decode;

use super::signed::issuer_and_serial;
use super::{
    ContentCipher, DecodeOptions, Decoded, EnvelopeFailure, MessageType, PkiRequest, Recipient,
    ReplyTo, open_envelope_uniform, verify_signed,
};
use crate::ber::{self, tag};
use crate::challenge::FailInfo;
use crate::{Error, Result};

/// The one answer (failInfo `badMessageCheck`, RFC 8894 §3.2.1.4) to every request whose
/// envelope does not decrypt to a well-formed messageData: a failed key transport, bad
/// padding, content that is not DER, not the structure the messageType calls for, or a
/// CSR whose signature does not verify. An attacker who re-wraps a captured envelope in
/// a message of their own and flips IV or ciphertext bytes must learn nothing about the
/// plaintext from the answer (a padding/format oracle), so these are never told apart to
/// the client; the audit log gets the detail.
pub const UNREADABLE_REQUEST: &str =
    "the request cannot be decrypted or does not hold a valid request";

/// Checks that `data`, a decrypted messageData, is what `message_type` calls for
/// (RFC 8894 §3.3): a PKCS#10 CSR whose self-signature verifies (SHA-1 allowed, as SCEP
/// clients sign with it), an IssuerAndSubject, or an IssuerAndSerialNumber with real
/// Names. What a verified CSR asks for is the service's and ca-core's business; a CSR
/// whose signature verifies was not altered on the way.
pub fn check_message_data(
    message_type: MessageType,
    data: &[u8],
) -> std::result::Result<(), String> {
    use x509_cert::name::Name;
    let name = |der: &[u8], what: &str| {
        Name::from_der(der)
            .map(|_| ())
            .map_err(|e| format!("{what} is not a Name: {e}"))
    };
    match message_type {
        MessageType::PkcsReq | MessageType::RenewalReq | MessageType::UpdateReq => {
            csr_signature_verifies(data)
        }
        MessageType::CertPoll => {
            let (i, s) = parse_issuer_and_subject(data).map_err(|e| e.to_string())?;
            name(&i, "issuer")?;
            name(&s, "subject")
        }
        MessageType::GetCert | MessageType::GetCrl => {
            let (i, _) = parse_issuer_and_serial(data).map_err(|e| e.to_string())?;
            name(&i, "issuer")
        }
        MessageType::CertRep => Err("a CertRep is not a request".into()),
    }
}

/// DER PKCS#10 whose self-signature verifies (RFC 2986 §4.2): the check ca-core's CSR
/// parser makes before it reads the CSR's content (`ca_core::asn1::verify_csr_signature`),
/// with SHA-1 allowed, as SCEP clients sign with it (RFC 8894 §3.5.2).
fn csr_signature_verifies(data: &[u8]) -> std::result::Result<(), String> {
    if data.len() > ca_core::csr::MAX_CSR_BYTES {
        return Err("the CSR is too large".into());
    }
    let legacy = ca_core::asn1::Legacy {
        sha1_rsa: true,
        sha1_ecdsa: true,
        key_only_digest: None,
    };
    ca_core::asn1::verify_csr_signature(data, legacy).map_err(|e| e.reason())
}

/// Decodes a request pkiMessage (server side): parse, verify the signature over the
/// signed attributes as received, then open the envelope with one of `recipients`.
pub fn decode_request(
    input: &[u8],
    recipients: &[Recipient<'_>],
    options: &DecodeOptions,
) -> Result<Decoded> {
    let v = verify_signed(input, options)?;
    let transaction_id = v
        .transaction_id
        .clone()
        .filter(|t| !t.is_empty() && t.len() <= 256)
        .ok_or_else(|| Error::malformed("no usable transactionID"))?;
    let sender_nonce = v
        .sender_nonce
        .clone()
        .filter(|n| !n.is_empty() && n.len() <= 64)
        .ok_or_else(|| Error::malformed("no usable senderNonce"))?;
    let mut reply_to = ReplyTo {
        transaction_id,
        sender_nonce,
        signer_cert_der: v.signer.cert_der.clone(),
        digest: v.digest,
        cipher: ContentCipher::Aes128,
    };
    let refused = |reply_to: ReplyTo, fi, text: String| {
        Ok(Decoded::Refused {
            reply_to: Box::new(reply_to),
            message_type: v.message_type,
            fail_info: fi,
            detail: text.clone(),
            text,
        })
    };
    if let Err((fi, text)) = v.verified.clone() {
        return refused(reply_to, fi, text);
    }
    let Some(message_type) = v.message_type else {
        return refused(
            reply_to,
            FailInfo::BadRequest,
            "unknown or missing messageType".into(),
        );
    };
    if message_type == MessageType::CertRep {
        return refused(
            reply_to,
            FailInfo::BadRequest,
            "a CertRep is not a request".into(),
        );
    }
    if !hsm::spki_algorithm(&v.signer.spki_der).is_ok_and(|a| a.is_rsa()) {
        // The reply is encrypted to the signer's key (RSA key transport).
        return refused(
            reply_to,
            FailInfo::BadAlg,
            "the request signer's key must be RSA".into(),
        );
    }
    let Some(content) = v.content.as_deref() else {
        return refused(
            reply_to,
            FailInfo::BadRequest,
            "the request has no content".into(),
        );
    };
    match open_envelope_uniform(content, recipients, options) {
        Ok(opened) => {
            reply_to.cipher = opened.cipher;
            // One check whatever the decryption reported: the padding verdict is folded
            // in after the messageData was examined, so that both take the same path.
            let checked = check_message_data(message_type, &opened.plaintext);
            match (opened.intact, checked) {
                (true, Ok(())) => Ok(Decoded::Request(Box::new(PkiRequest {
                    message_type,
                    reply_to,
                    signer: v.signer,
                    message_data: opened.plaintext,
                }))),
                (intact, checked) => {
                    let detail = match (intact, checked) {
                        (false, _) => {
                            "the envelope does not decrypt (key transport or padding)".to_string()
                        }
                        (true, Err(why)) => {
                            format!("the decrypted messageData is not valid: {why}")
                        }
                        (true, Ok(())) => String::new(),
                    };
                    Ok(Decoded::Refused {
                        reply_to: Box::new(reply_to),
                        message_type: Some(message_type),
                        fail_info: FailInfo::BadMessageCheck,
                        text: UNREADABLE_REQUEST.into(),
                        detail,
                    })
                }
            }
        }
        Err(EnvelopeFailure {
            key_backend: Some(e),
            ..
        }) => Err(Error::Key(
            Arc::try_unwrap(e).unwrap_or_else(|e| hsm::Error::Unavailable(e.to_string())),
        )),
        Err(f) => {
            if let Some(c) = f.cipher {
                reply_to.cipher = c;
            }
            refused(reply_to, f.fail_info, f.text)
        }
    }
}

/// IssuerAndSubject (RFC 8894 §3.3.3): (issuer Name DER, subject Name DER).
pub fn parse_issuer_and_subject(input: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let e = ber::read_all(input)?.expect(tag::SEQUENCE, "IssuerAndSubject")?;
    match e.children()?.as_slice() {
        [i, s] if i.tag == tag::SEQUENCE && s.tag == tag::SEQUENCE => {
            Ok((i.raw.to_vec(), s.raw.to_vec()))
        }
        _ => Err(Error::malformed("bad IssuerAndSubject")),
    }
}

/// IssuerAndSerialNumber (RFC 8894 §3.3.4): (issuer Name DER, serial contents).
pub fn parse_issuer_and_serial(input: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let e = ber::read_all(input)?.expect(tag::SEQUENCE, "IssuerAndSerialNumber")?;
    let (i, s) = issuer_and_serial(&e)?;
    Ok((i.to_vec(), s.to_vec()))
}
