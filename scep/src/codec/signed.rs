//! SignedData pkiMessages (RFC 8894 §3.1, RFC 5652 §5): parsing, finding the signer, and
//! verifying the signature over the signed attributes as received.

use const_oid::ObjectIdentifier as Oid;
use der::Decode;
use sha2::Digest as _;
use x509_cert::Certificate;

use super::{DecodeOptions, DigestAlg, MAX_MESSAGE_BYTES, MessageType, SignerFacts, oid};
use crate::ber::{self, Element, tag};
use crate::challenge::FailInfo;
use crate::{Error, Result};

/// A signed message's parts after signature verification (requests and replies).
#[derive(Clone, Debug)]
pub struct VerifiedSignedData {
    /// messageType.
    pub message_type: Option<MessageType>,
    /// transactionID.
    pub transaction_id: Option<String>,
    /// senderNonce.
    pub sender_nonce: Option<Vec<u8>>,
    /// recipientNonce.
    pub recipient_nonce: Option<Vec<u8>>,
    /// pkiStatus as text.
    pub pki_status: Option<String>,
    /// failInfo as text.
    pub fail_info: Option<String>,
    /// failInfoText.
    pub fail_info_text: Option<String>,
    /// The signer.
    pub signer: SignerFacts,
    /// The SignerInfo digest algorithm.
    pub digest: DigestAlg,
    /// The encapsulated content (an EnvelopedData ContentInfo), if any.
    pub content: Option<Vec<u8>>,
    /// Every certificate carried, DER, in the order received.
    pub certificates: Vec<Vec<u8>>,
    /// `Ok` when the signature and messageDigest verified; the reason otherwise.
    pub verified: std::result::Result<(), (FailInfo, String)>,
}

fn printable(e: &Element<'_>) -> Option<String> {
    match e.tag {
        tag::PRINTABLE_STRING | tag::UTF8_STRING | 0x16 | 0x14 | 0x1e => {
            if e.tag == 0x1e {
                // BMPString
                let units: Vec<u16> = e
                    .content
                    .chunks(2)
                    .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                    .collect();
                String::from_utf16(&units).ok()
            } else {
                String::from_utf8(e.content.to_vec()).ok()
            }
        }
        _ => None,
    }
}

/// Reads a CMS ContentInfo and returns (contentType, the [0] EXPLICIT content element).
pub(super) fn content_info(input: &[u8]) -> Result<(Oid, Element<'_>)> {
    let ci = ber::read_all(input)?.expect(tag::SEQUENCE, "ContentInfo")?;
    let kids = ci.children()?;
    let ct = ber::parse_oid(
        kids.first()
            .ok_or_else(|| Error::malformed("empty ContentInfo"))?,
    )?;
    let wrapped = kids
        .get(1)
        .ok_or_else(|| Error::malformed("ContentInfo has no content"))?
        .expect(tag::CTX0, "ContentInfo content")?;
    let inner = wrapped.children()?;
    let content = *inner
        .first()
        .ok_or_else(|| Error::malformed("ContentInfo content is empty"))?;
    Ok((ct, content))
}

/// (issuer Name DER, serial contents) of an IssuerAndSerialNumber element.
pub(super) fn issuer_and_serial<'a>(e: &Element<'a>) -> Result<(&'a [u8], &'a [u8])> {
    let kids = e.children()?;
    match kids.as_slice() {
        [name, serial] if name.tag == tag::SEQUENCE && serial.tag == tag::INTEGER => {
            Ok((name.raw, serial.content))
        }
        _ => Err(Error::malformed("bad IssuerAndSerialNumber")),
    }
}

/// The parts of a certificate SCEP needs, read leniently (RFC 5280 §4.1): request signer
/// certificates are only key containers and are often odd (certmonger: v1 with a 32-byte
/// serial; Windows: critical AKI), so no profile checks apply here.
#[derive(Clone, Copy, Debug)]
pub struct CertParts<'a> {
    /// issuer Name, DER as received.
    pub issuer: &'a [u8],
    /// serialNumber contents.
    pub serial: &'a [u8],
    /// subject Name, DER as received.
    pub subject: &'a [u8],
    /// SubjectPublicKeyInfo, DER as received.
    pub spki: &'a [u8],
}

/// Reads [`CertParts`] from a certificate.
pub fn cert_parts(der: &[u8]) -> Result<CertParts<'_>> {
    let cert = ber::read_all(der)?.expect(tag::SEQUENCE, "Certificate")?;
    let kids = cert.children()?;
    let tbs = kids
        .first()
        .ok_or_else(|| Error::malformed("empty Certificate"))?
        .expect(tag::SEQUENCE, "TBSCertificate")?;
    let mut f = tbs.children()?.into_iter();
    let mut serial = f
        .next()
        .ok_or_else(|| Error::malformed("empty TBSCertificate"))?;
    if serial.tag == tag::CTX0 {
        serial = f
            .next()
            .ok_or_else(|| Error::malformed("TBSCertificate has no serial"))?;
    }
    let serial = serial.expect(tag::INTEGER, "serialNumber")?;
    let mut next = || {
        f.next()
            .ok_or_else(|| Error::malformed("TBSCertificate is short"))
    };
    let _sig = next()?;
    let issuer = next()?;
    let _validity = next()?;
    let subject = next()?;
    let spki = next()?.expect(tag::SEQUENCE, "subjectPublicKeyInfo")?;
    Ok(CertParts {
        issuer: issuer.expect(tag::SEQUENCE, "issuer")?.raw,
        serial: serial.content,
        subject: subject.expect(tag::SEQUENCE, "subject")?.raw,
        spki: spki.raw,
    })
}

/// (issuer Name DER, serial contents, subjectKeyIdentifier).
pub(super) type CertIds = (Vec<u8>, Vec<u8>, Option<Vec<u8>>);

pub(super) fn cert_ids(der: &[u8]) -> Result<CertIds> {
    let p = cert_parts(der)?;
    let ski = Certificate::from_der(der).ok().and_then(|c| {
        c.tbs_certificate()
            .get_extension::<x509_cert::ext::pkix::SubjectKeyIdentifier>()
            .ok()
            .flatten()
            .map(|(_, s)| s.0.as_bytes().to_vec())
    });
    Ok((p.issuer.to_vec(), p.serial.to_vec(), ski))
}

/// Strips leading zero octets of an INTEGER's contents for comparison.
pub(super) fn int_eq(a: &[u8], b: &[u8]) -> bool {
    let strip = |x: &[u8]| -> Vec<u8> {
        let n = x.iter().take_while(|&&b| b == 0).count();
        x[n.min(x.len().saturating_sub(1))..].to_vec()
    };
    strip(a) == strip(b)
}

fn signer_facts(cert_der: &[u8]) -> Result<SignerFacts> {
    let p = cert_parts(cert_der)?;
    Ok(SignerFacts {
        cert_der: cert_der.to_vec(),
        spki_der: p.spki.to_vec(),
        serial: p.serial.to_vec(),
        self_issued: p.issuer == p.subject,
    })
}

/// Parses and verifies a SignedData pkiMessage (RFC 8894 §3.1, RFC 5652 §5). Structural
/// problems are errors; a bad signature is reported in `verified` so that the caller can
/// still answer.
pub fn verify_signed(input: &[u8], options: &DecodeOptions) -> Result<VerifiedSignedData> {
    if input.len() > MAX_MESSAGE_BYTES {
        return Err(Error::malformed(format!(
            "message is {} bytes; the limit is {MAX_MESSAGE_BYTES}",
            input.len()
        )));
    }
    let (ct, sd) = content_info(input)?;
    if ct != oid::SIGNED_DATA {
        return Err(Error::malformed(format!(
            "content type {ct} is not signedData"
        )));
    }
    let sd = sd.expect(tag::SEQUENCE, "SignedData")?;
    let mut kids = sd.children()?.into_iter();
    let _version = kids
        .next()
        .ok_or_else(|| Error::malformed("SignedData is empty"))?
        .expect(tag::INTEGER, "SignedData version")?;
    let _digest_algs = kids
        .next()
        .ok_or_else(|| Error::malformed("SignedData has no digestAlgorithms"))?
        .expect(tag::SET, "digestAlgorithms")?;
    let encap = kids
        .next()
        .ok_or_else(|| Error::malformed("SignedData has no encapContentInfo"))?
        .expect(tag::SEQUENCE, "encapContentInfo")?;
    let encap_kids = encap.children()?;
    let econtent_type = ber::parse_oid(
        encap_kids
            .first()
            .ok_or_else(|| Error::malformed("empty encapContentInfo"))?,
    )?;
    let content = match encap_kids.get(1) {
        None => None,
        Some(w) => {
            let w = w.expect(tag::CTX0, "eContent")?;
            let inner = w.children()?;
            let os = inner
                .first()
                .ok_or_else(|| Error::malformed("eContent is empty"))?;
            Some(os.octets(tag::OCTET_STRING)?)
        }
    };
    let mut certificates = Vec::new();
    let mut signer_infos = None;
    for e in kids {
        match e.tag {
            tag::CTX0 => {
                for c in e.children()? {
                    if c.tag == tag::SEQUENCE {
                        certificates.push(c.raw.to_vec());
                    }
                }
            }
            tag::CTX1 => {}
            tag::SET => signer_infos = Some(e),
            t => {
                return Err(Error::malformed(format!(
                    "unexpected tag 0x{t:02x} in SignedData"
                )));
            }
        }
    }
    let signer_infos = signer_infos
        .ok_or_else(|| Error::malformed("SignedData has no signerInfos"))?
        .children()?;
    let si = match signer_infos.as_slice() {
        [si] => si.expect(tag::SEQUENCE, "SignerInfo")?,
        _ => return Err(Error::malformed("expected exactly one SignerInfo")),
    };
    let si_kids = si.children()?;
    let (sid, digest_alg, signed_attrs, sig_alg, signature) = match si_kids.as_slice() {
        [_v, sid, dalg, attrs, salg, sig, ..] if attrs.tag == tag::CTX0 => {
            (*sid, *dalg, *attrs, *salg, *sig)
        }
        _ => return Err(Error::malformed("SignerInfo lacks signed attributes")),
    };

    // The signer certificate: by IssuerAndSerialNumber or subjectKeyIdentifier.
    let mut signer = None;
    for der in &certificates {
        let Ok((issuer, serial, ski)) = cert_ids(der) else {
            continue;
        };
        let matches = if sid.tag == tag::SEQUENCE {
            let (i, s) = issuer_and_serial(&sid)?;
            i == issuer.as_slice() && int_eq(s, &serial)
        } else if sid.tag == tag::CTX0_PRIM {
            ski.as_deref() == Some(sid.content)
        } else {
            false
        };
        if matches {
            signer = Some(der.clone());
            break;
        }
    }
    let signer_der =
        signer.ok_or_else(|| Error::malformed("the signer's certificate is not in the message"))?;
    let signer = signer_facts(&signer_der)?;

    // Signed attributes, kept as received.
    let mut v = VerifiedSignedData {
        message_type: None,
        transaction_id: None,
        sender_nonce: None,
        recipient_nonce: None,
        pki_status: None,
        fail_info: None,
        fail_info_text: None,
        signer,
        digest: DigestAlg::Sha256,
        content,
        certificates,
        verified: Ok(()),
    };
    let mut message_digest = None;
    let mut content_type = None;
    for attr in signed_attrs.children()? {
        let a = attr.expect(tag::SEQUENCE, "Attribute")?.children()?;
        let (Some(aoid), Some(values)) = (a.first(), a.get(1)) else {
            return Err(Error::malformed("bad Attribute"));
        };
        let aoid = ber::parse_oid(aoid)?;
        let values = values.expect(tag::SET, "Attribute values")?.children()?;
        let Some(val) = values.first() else {
            return Err(Error::malformed("Attribute without a value"));
        };
        match aoid {
            oid::MESSAGE_TYPE => {
                v.message_type = printable(val).and_then(|s| MessageType::from_code(&s))
            }
            oid::TRANSACTION_ID => v.transaction_id = printable(val),
            oid::SENDER_NONCE => v.sender_nonce = Some(val.octets(tag::OCTET_STRING)?),
            oid::RECIPIENT_NONCE => v.recipient_nonce = Some(val.octets(tag::OCTET_STRING)?),
            oid::PKI_STATUS => v.pki_status = printable(val),
            oid::FAIL_INFO => v.fail_info = printable(val),
            oid::FAIL_INFO_TEXT => v.fail_info_text = printable(val),
            oid::MESSAGE_DIGEST => message_digest = Some(val.octets(tag::OCTET_STRING)?),
            oid::CONTENT_TYPE => content_type = Some(ber::parse_oid(val)?),
            _ => {}
        }
    }

    // Digest, messageDigest, then the signature over the attributes as received.
    let dalg_oid = ber::parse_oid(
        digest_alg
            .children()?
            .first()
            .ok_or_else(|| Error::malformed("empty digestAlgorithm"))?,
    )?;
    v.verified = (|| {
        let digest = DigestAlg::from_oid(&dalg_oid).ok_or((
            FailInfo::BadAlg,
            format!("digest algorithm {dalg_oid} is not supported"),
        ))?;
        v.digest = digest;
        if !digest.accepted(options) {
            return Err((
                FailInfo::BadAlg,
                format!("{digest:?} signatures are not accepted by this endpoint"),
            ));
        }
        if content_type.is_some_and(|c| c != econtent_type) {
            return Err((
                FailInfo::BadMessageCheck,
                "contentType attribute does not match".into(),
            ));
        }
        let expected = digest.hash(v.content.as_deref().unwrap_or_default());
        if message_digest.as_deref() != Some(expected.as_slice()) {
            return Err((
                FailInfo::BadMessageCheck,
                "messageDigest does not match the content".into(),
            ));
        }
        let salg = ber::parse_oid(
            sig_alg
                .children()
                .map_err(|_| (FailInfo::BadAlg, "bad signatureAlgorithm".to_string()))?
                .first()
                .ok_or((FailInfo::BadAlg, "empty signatureAlgorithm".to_string()))?,
        )
        .map_err(|_| (FailInfo::BadAlg, "bad signatureAlgorithm".to_string()))?;
        let sig = signature
            .octets(tag::OCTET_STRING)
            .map_err(|_| (FailInfo::BadMessageCheck, "bad signature value".to_string()))?;
        let mut signed = signed_attrs.raw.to_vec();
        signed[0] = tag::SET;
        if digest == DigestAlg::Md5 {
            // Legacy clients only, where the endpoint enables it: a public-key check.
            return if matches!(salg, oid::RSA_ENCRYPTION | oid::MD5_WITH_RSA)
                && verify_rsa_md5(&v.signer.spki_der, &signed, &sig)
            {
                Ok(())
            } else {
                Err((
                    FailInfo::BadMessageCheck,
                    "the message signature does not verify".to_string(),
                ))
            };
        }
        let hd = digest
            .hsm()
            .ok_or((FailInfo::BadAlg, "digest".to_string()))?;
        // The one AlgorithmIdentifier mapping (ca-core's), with SCEP's legacy forms:
        // sha1WithRSAEncryption, and a signatureAlgorithm naming only the key type with
        // the SignerInfo's digest. Parameters are not read: RSASSA-PSS (which needs them)
        // and ecdsa-with-SHA1 are not SCEP signature algorithms.
        let legacy = ca_core::asn1::Legacy {
            sha1_rsa: true,
            sha1_ecdsa: false,
            key_only_digest: Some(hd),
        };
        let named = spki::AlgorithmIdentifierRef {
            oid: salg,
            parameters: None,
        };
        let Some(received) = ca_core::asn1::received_algorithm_with(&named, legacy) else {
            return Err((
                FailInfo::BadAlg,
                format!("signature algorithm {salg} is not supported"),
            ));
        };
        // RFC 5652 §5.4: the signature covers the DER SET OF; the [0] IMPLICIT tag is
        // replaced by the SET tag, the rest verified exactly as received.
        hsm::verify_received(received, &v.signer.spki_der, &signed, &sig).map_err(|_| {
            (
                FailInfo::BadMessageCheck,
                "the message signature does not verify".to_string(),
            )
        })
    })();
    Ok(v)
}

/// RSASSA-PKCS1-v1_5 with MD5 (RFC 8017 §9.2), a public-key operation with `rsa`.
fn verify_rsa_md5(spki: &[u8], message: &[u8], sig: &[u8]) -> bool {
    use rsa::pkcs8::DecodePublicKey;
    const MD5_PREFIX: [u8; 18] = [
        0x30, 0x20, 0x30, 0x0c, 0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x05, 0x05,
        0x00, 0x04, 0x10,
    ];
    let Ok(pk) = rsa::RsaPublicKey::from_public_key_der(spki) else {
        return false;
    };
    let scheme = rsa::Pkcs1v15Sign {
        hash_len: Some(16),
        prefix: Box::new(MD5_PREFIX),
    };
    pk.verify(scheme, &md5::Md5::digest(message), sig).is_ok()
}
