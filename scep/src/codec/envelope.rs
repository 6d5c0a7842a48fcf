//! EnvelopedData (RFC 5652 §6): opening a request's envelope without telling apart how
//! decryption went, and building the envelopes of replies and test requests.

use std::sync::Arc;

use ca_core::asn1::pkcs7::content_info as wrap_content_info;
use const_oid::ObjectIdentifier as Oid;
use hsm::OaepHash;

use super::signed::{cert_ids, content_info, int_eq, issuer_and_serial};
use super::{
    ContentCipher, DecodeOptions, Recipient, UNREADABLE_REQUEST, cert_parts, issuer_and_serial_of,
    oid,
};
use crate::ber::{self, Element, tag};
use crate::challenge::FailInfo;
use crate::{Error, Result};

/// A KeyTransRecipientInfo: (issuer and serial | subjectKeyIdentifier, key-encryption
/// algorithm, its parameters DER, encryptedKey).
type Ktri = (
    Option<(Vec<u8>, Vec<u8>)>,
    Option<Vec<u8>>,
    Oid,
    Vec<u8>,
    Vec<u8>,
);

/// A decoded EnvelopedData (RFC 5652 §6) before decryption.
struct Envelope {
    recipients: Vec<Ktri>,
    cipher: Option<ContentCipher>,
    cipher_oid: Oid,
    iv: Vec<u8>,
    ciphertext: Vec<u8>,
}

fn parse_envelope(input: &[u8]) -> Result<Envelope> {
    let (ct, ed) = content_info(input)?;
    if ct != oid::ENVELOPED_DATA {
        return Err(Error::malformed(format!(
            "envelope content type {ct} is not envelopedData"
        )));
    }
    let kids = ed.expect(tag::SEQUENCE, "EnvelopedData")?.children()?;
    let mut it = kids.into_iter();
    let _version = it
        .next()
        .ok_or_else(|| Error::malformed("empty EnvelopedData"))?;
    let mut ris = it
        .next()
        .ok_or_else(|| Error::malformed("EnvelopedData has no recipients"))?;
    if ris.tag == tag::CTX0 {
        // originatorInfo
        ris = it
            .next()
            .ok_or_else(|| Error::malformed("EnvelopedData has no recipients"))?;
    }
    let mut recipients = Vec::new();
    for ri in ris.expect(tag::SET, "recipientInfos")?.children()? {
        if ri.tag != tag::SEQUENCE {
            continue; // not a KeyTransRecipientInfo
        }
        let k = ri.children()?;
        let [_v, rid, kalg, ekey, ..] = k.as_slice() else {
            return Err(Error::malformed("bad KeyTransRecipientInfo"));
        };
        let (ias, ski) = if rid.tag == tag::SEQUENCE {
            let (i, s) = issuer_and_serial(rid)?;
            (Some((i.to_vec(), s.to_vec())), None)
        } else if rid.tag == tag::CTX0_PRIM {
            (None, Some(rid.content.to_vec()))
        } else {
            return Err(Error::malformed("bad RecipientIdentifier"));
        };
        let kalg_kids = kalg
            .expect(tag::SEQUENCE, "keyEncryptionAlgorithm")?
            .children()?;
        let koid = ber::parse_oid(
            kalg_kids
                .first()
                .ok_or_else(|| Error::malformed("empty keyEncryptionAlgorithm"))?,
        )?;
        let params = kalg_kids.get(1).map(|p| p.raw.to_vec()).unwrap_or_default();
        recipients.push((ias, ski, koid, params, ekey.octets(tag::OCTET_STRING)?));
    }
    let eci = it
        .next()
        .ok_or_else(|| Error::malformed("EnvelopedData has no encryptedContentInfo"))?
        .expect(tag::SEQUENCE, "encryptedContentInfo")?
        .children()?;
    let calg = eci
        .get(1)
        .ok_or_else(|| Error::malformed("no contentEncryptionAlgorithm"))?
        .expect(tag::SEQUENCE, "contentEncryptionAlgorithm")?
        .children()?;
    let cipher_oid = ber::parse_oid(
        calg.first()
            .ok_or_else(|| Error::malformed("empty contentEncryptionAlgorithm"))?,
    )?;
    let iv = match calg.get(1) {
        Some(p) if p.tag == tag::OCTET_STRING || p.tag == 0x24 => p.octets(tag::OCTET_STRING)?,
        _ => Vec::new(),
    };
    let ciphertext = match eci.get(2) {
        Some(e) => e.octets(tag::CTX0_PRIM)?,
        None => return Err(Error::malformed("the envelope has no encrypted content")),
    };
    Ok(Envelope {
        recipients,
        cipher: ContentCipher::from_oid(&cipher_oid),
        cipher_oid,
        iv,
        ciphertext,
    })
}

/// The hash of RSAES-OAEP-params (RFC 8017 A.2.1, RFC 4055 §4.1), when the key backend
/// can decrypt with them: MGF1 over the same hash and an empty label. The defaults apply
/// to each absent field on its own (hashAlgorithm sha1, maskGenAlgorithm mgf1SHA1,
/// pSourceAlgorithm pSpecifiedEmpty), so `{ [0] sha256 }` alone means MGF1 with SHA-1,
/// which no backend offers with SHA-256: such parameters are refused (badAlg) before any
/// decryption rather than failing in it.
fn oaep_hash(params: &[u8]) -> Option<OaepHash> {
    // RSAES-OAEP-params ::= SEQUENCE { [0] hashAlgorithm DEFAULT sha1, [1] mgf, [2] pSource }
    if params.is_empty() || params == [tag::NULL, 0] {
        return Some(OaepHash::Sha1);
    }
    let hash_of = |alg: &Element<'_>| -> Option<OaepHash> {
        let a = alg.children().ok()?;
        Some(match ber::parse_oid(a.first()?).ok()? {
            oid::SHA1 => OaepHash::Sha1,
            oid::SHA256 => OaepHash::Sha256,
            oid::SHA384 => OaepHash::Sha384,
            oid::SHA512 => OaepHash::Sha512,
            _ => return None,
        })
    };
    let seq = ber::read_all(params).ok()?;
    if seq.tag != tag::SEQUENCE {
        return None;
    }
    let mut hash = OaepHash::Sha1;
    let mut mgf_hash = OaepHash::Sha1;
    for p in seq.children().ok()? {
        let inner = p.children().ok()?;
        let alg = inner.first()?;
        match p.tag {
            tag::CTX0 => hash = hash_of(alg)?,
            tag::CTX1 => {
                // MaskGenAlgorithm: { id-mgf1, hash AlgorithmIdentifier }.
                let m = alg.children().ok()?;
                if ber::parse_oid(m.first()?).ok()? != oid::MGF1 {
                    return None;
                }
                mgf_hash = hash_of(m.get(1)?)?;
            }
            tag::CTX2 => {
                // pSourceAlgorithm: { id-pSpecified, OCTET STRING }: only the empty label.
                let s = alg.children().ok()?;
                if ber::parse_oid(s.first()?).ok()? != oid::P_SPECIFIED {
                    return None;
                }
                match s.get(1) {
                    None => {}
                    Some(l) if l.octets(tag::OCTET_STRING).ok()?.is_empty() => {}
                    Some(_) => return None,
                }
            }
            _ => return None,
        }
    }
    (hash == mgf_hash).then_some(hash)
}

/// Why an envelope could not be opened.
#[derive(Clone, Debug)]
pub struct EnvelopeFailure {
    /// failInfo to answer with.
    pub fail_info: FailInfo,
    /// Text for client and log.
    pub text: String,
    /// The content cipher, when it was recognised.
    pub cipher: Option<ContentCipher>,
    /// The RA key could not be used at all (the token is gone): not the client's fault and
    /// says nothing about the ciphertext. Set only for key errors other than
    /// [`hsm::Error::Decrypt`]; the server answers it as a retryable error (HTTP 503).
    pub key_backend: Option<Arc<hsm::Error>>,
}

/// Opens an EnvelopedData addressed to one of `recipients` (RFC 5652 §6.2.1, RFC 8017),
/// without telling apart how decryption went (docs/architecture.md, decision 4).
///
/// Refusals here depend only on what the envelope says in the clear (its algorithms,
/// IV length, recipient identifiers), which the sender knows anyway. From the RSA step
/// on there is one path: whatever the key transport reports, a content key of the right
/// length goes on to the same CBC decryption and the same padding check, and the result
/// is an [`Opened`] whose `intact` the caller folds into its messageData check
/// ([`decode_request`](super::decode_request)), so that bad padding, a failed key transport and a plaintext that
/// does not parse end in the same answer, [`UNREADABLE_REQUEST`].
pub fn open_envelope_uniform(
    input: &[u8],
    recipients: &[Recipient<'_>],
    options: &DecodeOptions,
) -> Result<Opened, EnvelopeFailure> {
    let fail = |fi, text: &str, cipher| EnvelopeFailure {
        fail_info: fi,
        text: text.to_string(),
        cipher,
        key_backend: None,
    };
    let env =
        parse_envelope(input).map_err(|e| fail(FailInfo::BadRequest, &e.to_string(), None))?;
    let Some(cipher) = env.cipher else {
        return Err(fail(
            FailInfo::BadAlg,
            &format!("content encryption {} is not supported", env.cipher_oid),
            None,
        ));
    };
    if cipher == ContentCipher::Des && !options.allow_des {
        return Err(fail(
            FailInfo::BadAlg,
            "single DES is not accepted by this endpoint",
            Some(cipher),
        ));
    }
    if env.iv.len() != cipher.block_len() {
        return Err(fail(
            FailInfo::BadRequest,
            "bad content-encryption IV",
            Some(cipher),
        ));
    }
    // Find the recipient info addressed to one of our certificates.
    let mut chosen = None;
    'outer: for r in recipients {
        let Ok((issuer, serial, ski)) = cert_ids(r.cert_der) else {
            continue;
        };
        for (ias, rski, koid, params, ekey) in &env.recipients {
            let hit = match (ias, rski) {
                (Some((i, s)), _) => *i == issuer && int_eq(s, &serial),
                (None, Some(k)) => ski.as_deref() == Some(k.as_slice()),
                _ => false,
            };
            if hit {
                chosen = Some((r.key, koid, params, ekey));
                break 'outer;
            }
        }
    }
    let Some((key, koid, params, ekey)) = chosen else {
        return Err(fail(
            FailInfo::BadMessageCheck,
            "the request is not encrypted to this endpoint's RA certificate",
            Some(cipher),
        ));
    };
    let decrypted = match *koid {
        oid::RSA_ENCRYPTION => key.decrypt_pkcs1v15(ekey),
        oid::RSAES_OAEP => match oaep_hash(params) {
            Some(h) => key.decrypt_oaep(h, ekey),
            None => {
                return Err(fail(
                    FailInfo::BadAlg,
                    "unsupported RSAES-OAEP parameters",
                    Some(cipher),
                ));
            }
        },
        other => {
            return Err(fail(
                FailInfo::BadAlg,
                &format!("key transport {other} is not supported"),
                Some(cipher),
            ));
        }
    };
    // A key that cannot be used at all (the token is gone, the backend refuses the
    // mechanism) is a server-side failure whatever the ciphertext: every key backend
    // reports a bad ciphertext as `Error::Decrypt` and nothing else.
    let decrypted = match decrypted {
        Ok(k) => Some(k),
        Err(hsm::Error::Decrypt) => None,
        Err(e) => {
            let mut f = fail(
                FailInfo::BadMessageCheck,
                "the RA key is unavailable",
                Some(cipher),
            );
            f.key_backend = Some(Arc::new(e));
            return Err(f);
        }
    };
    // Uniform path: a failed or wrong-length key transport selects a random key of the
    // right length (without a branch on the outcome), which goes on to the same CBC
    // decryption and padding check.
    use subtle::{ConditionallySelectable, ConstantTimeEq};
    let key_len = cipher.key_len();
    let mut random = zeroize::Zeroizing::new(vec![0u8; key_len]);
    rand::fill(&mut random[..]);
    let (candidate, transported) = match decrypted {
        Some(k) => (zeroize::Zeroizing::new(k), subtle::Choice::from(1)),
        None => (zeroize::Zeroizing::new(Vec::new()), subtle::Choice::from(0)),
    };
    let transported = transported
        & u64::try_from(candidate.len())
            .unwrap_or(u64::MAX)
            .ct_eq(&u64::try_from(key_len).unwrap_or(0));
    let mut cek = zeroize::Zeroizing::new(vec![0u8; key_len]);
    for (i, b) in cek.iter_mut().enumerate() {
        let c = candidate.get(i).copied().unwrap_or(0);
        *b = u8::conditional_select(&random[i], &c, transported);
    }
    let (plaintext, padded) = cipher.decrypt_uniform(&cek, &env.iv, &env.ciphertext);
    Ok(Opened {
        cipher,
        plaintext,
        intact: bool::from(transported) & padded,
    })
}

/// An opened envelope ([`open_envelope_uniform`]): the decrypted content and whether the
/// key transport and the padding were both good. When `intact` is false the plaintext is
/// whatever the (possibly random) key produced, and must be treated exactly like a
/// plaintext that does not parse.
#[derive(Clone)]
pub struct Opened {
    /// The content cipher.
    pub cipher: ContentCipher,
    /// The decrypted content (unpadded when the padding was good).
    pub plaintext: Vec<u8>,
    /// Key transport and padding were good.
    pub intact: bool,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("cipher", &self.cipher)
            .field("plaintext_len", &self.plaintext.len())
            .field("intact", &self.intact)
            .finish()
    }
}

/// Opens an EnvelopedData addressed to one of `recipients` (RFC 5652 §6.2.1, RFC 8017)
/// and insists that it was intact: the client side, reading replies. The server side uses
/// [`open_envelope_uniform`] through [`decode_request`](super::decode_request).
pub fn open_envelope(
    input: &[u8],
    recipients: &[Recipient<'_>],
    options: &DecodeOptions,
) -> Result<(ContentCipher, Vec<u8>), EnvelopeFailure> {
    let o = open_envelope_uniform(input, recipients, options)?;
    if o.intact {
        Ok((o.cipher, o.plaintext))
    } else {
        Err(EnvelopeFailure {
            fail_info: FailInfo::BadMessageCheck,
            text: UNREADABLE_REQUEST.into(),
            cipher: Some(o.cipher),
            key_backend: None,
        })
    }
}

/// Encrypts `content` to the holder of `recipient_cert_der` with `cipher` and RSA
/// PKCS#1 v1.5 key transport (a public-key operation) — an EnvelopedData ContentInfo.
pub fn envelope(
    content: &[u8],
    recipient_cert_der: &[u8],
    cipher: ContentCipher,
) -> Result<Vec<u8>> {
    envelope_with(content, recipient_cert_der, cipher, KeyTransport::Pkcs1v15)
}

/// Key transport of an envelope (RFC 8017 §7): what replies use, and what requesters
/// may choose (Windows clients use OAEP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyTransport {
    /// RSAES-PKCS1-v1_5 (rsaEncryption).
    Pkcs1v15,
    /// RSAES-OAEP with SHA-1 and MGF1-SHA-1, the default parameters (empty SEQUENCE).
    OaepSha1,
    /// RSAES-OAEP with SHA-256 and MGF1-SHA-256, parameters written out.
    OaepSha256,
}

/// [`envelope`] with a chosen key transport.
pub fn envelope_with(
    content: &[u8],
    recipient_cert_der: &[u8],
    cipher: ContentCipher,
    transport: KeyTransport,
) -> Result<Vec<u8>> {
    use rsa::pkcs8::DecodePublicKey;
    let spki = cert_parts(recipient_cert_der)?.spki;
    let pk = rsa::RsaPublicKey::from_public_key_der(spki)
        .map_err(|_| Error::Reply("the recipient key is not RSA".into()))?;
    let mut cek = zeroize::Zeroizing::new(vec![0u8; cipher.key_len()]);
    rand::fill(&mut cek[..]);
    let mut iv = vec![0u8; cipher.block_len()];
    rand::fill(&mut iv[..]);
    let (encrypted_key, key_alg) = match transport {
        KeyTransport::Pkcs1v15 => (
            pk.encrypt(&mut rand::rng(), rsa::Pkcs1v15Encrypt, &cek),
            ber::alg(&oid::RSA_ENCRYPTION, true),
        ),
        KeyTransport::OaepSha1 => (
            pk.encrypt(&mut rand::rng(), rsa::Oaep::<sha1::Sha1>::new(), &cek),
            ber::seq(&[&ber::oid(&oid::RSAES_OAEP), &ber::seq(&[])]),
        ),
        KeyTransport::OaepSha256 => {
            let sha256 = ber::alg(&oid::SHA256, true);
            let params = ber::seq(&[
                &ber::tlv(tag::CTX0, &sha256),
                &ber::tlv(tag::CTX1, &ber::seq(&[&ber::oid(&oid::MGF1), &sha256])),
            ]);
            (
                pk.encrypt(&mut rand::rng(), rsa::Oaep::<sha2::Sha256>::new(), &cek),
                ber::seq(&[&ber::oid(&oid::RSAES_OAEP), &params]),
            )
        }
    };
    let encrypted_key = encrypted_key.map_err(|e| Error::Reply(format!("key transport: {e}")))?;
    let ciphertext = cipher.encrypt(&cek, &iv, content)?;
    let ktri = ber::seq(&[
        &ber::small_int(0),
        &issuer_and_serial_of(recipient_cert_der)?,
        &key_alg,
        &ber::tlv(tag::OCTET_STRING, &encrypted_key),
    ]);
    let eci = ber::seq(&[
        &ber::oid(&oid::DATA),
        &ber::seq(&[&ber::oid(&cipher.oid()), &ber::tlv(tag::OCTET_STRING, &iv)]),
        &ber::tlv(tag::CTX0_PRIM, &ciphertext),
    ]);
    let ed = ber::seq(&[&ber::small_int(0), &ber::set_of(vec![ktri]), &eci]);
    Ok(wrap_content_info(&oid::ENVELOPED_DATA, &ed))
}
