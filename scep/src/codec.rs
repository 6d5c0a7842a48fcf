//! The sans-I/O pkiMessage codec (RFC 8894 §3): bytes in, verified and decrypted request
//! out; CertRep (and the other bodies) out as bytes. No I/O, no policy.
//!
//! Decoding is a hand walk over BER ([`crate::ber`]) rather than a decode-and-re-encode
//! library, because the signed attributes must be verified over the bytes as received
//! (RFC 5652 §5.4) and the reply envelopes must mirror DES/3DES, which the `cms` builder
//! cannot produce (protocols.md E.3).

use std::sync::Arc;

use const_oid::ObjectIdentifier as Oid;
use der::Decode;
use hsm::{Digest, OaepHash, PrivateKey, ReceivedSignature, SignatureScheme};
use sha2::Digest as _;
use x509_cert::Certificate;

use crate::ber::{self, Element, tag};
use crate::challenge::FailInfo;
use crate::{Error, Result};

/// Object identifiers used by SCEP (RFC 8894 §3, RFC 5652, RFC 3565, RFC 8017).
pub mod oid {
    use const_oid::ObjectIdentifier as Oid;
    /// id-data (RFC 5652 §4).
    pub const DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.1");
    /// id-signedData (RFC 5652 §5.1).
    pub const SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
    /// id-envelopedData (RFC 5652 §6.1).
    pub const ENVELOPED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.3");
    /// contentType attribute (RFC 5652 §11.1).
    pub const CONTENT_TYPE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.3");
    /// messageDigest attribute (RFC 5652 §11.2).
    pub const MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");
    /// signingTime attribute (RFC 5652 §11.3).
    pub const SIGNING_TIME: Oid = Oid::new_unwrap("1.2.840.113549.1.9.5");
    /// rsaEncryption (RFC 8017 A.1).
    pub const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
    /// id-RSAES-OAEP (RFC 8017 A.2.1).
    pub const RSAES_OAEP: Oid = Oid::new_unwrap("1.2.840.113549.1.1.7");
    /// id-mgf1.
    pub const MGF1: Oid = Oid::new_unwrap("1.2.840.113549.1.1.8");
    /// id-pSpecified (RFC 8017 A.2.1).
    pub const P_SPECIFIED: Oid = Oid::new_unwrap("1.2.840.113549.1.1.9");
    /// md5WithRSAEncryption.
    pub const MD5_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.4");
    /// sha1WithRSAEncryption.
    pub const SHA1_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.5");
    /// sha256WithRSAEncryption.
    pub const SHA256_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
    /// sha384WithRSAEncryption.
    pub const SHA384_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.12");
    /// sha512WithRSAEncryption.
    pub const SHA512_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.13");
    /// ecdsa-with-SHA256.
    pub const ECDSA_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
    /// ecdsa-with-SHA384.
    pub const ECDSA_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
    /// ecdsa-with-SHA512.
    pub const ECDSA_SHA512: Oid = Oid::new_unwrap("1.2.840.10045.4.3.4");
    /// id-ecPublicKey used as a signatureAlgorithm by some signers.
    pub const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
    /// MD5.
    pub const MD5: Oid = Oid::new_unwrap("1.2.840.113549.2.5");
    /// SHA-1.
    pub const SHA1: Oid = Oid::new_unwrap("1.3.14.3.2.26");
    /// SHA-256.
    pub const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
    /// SHA-384.
    pub const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
    /// SHA-512.
    pub const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");
    /// DES-CBC.
    pub const DES_CBC: Oid = Oid::new_unwrap("1.3.14.3.2.7");
    /// des-ede3-cbc.
    pub const DES_EDE3_CBC: Oid = Oid::new_unwrap("1.2.840.113549.3.7");
    /// aes128-CBC (RFC 3565).
    pub const AES128_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.2");
    /// aes192-CBC.
    pub const AES192_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.22");
    /// aes256-CBC.
    pub const AES256_CBC: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.42");
    /// messageType (RFC 8894 §3.2.1.2).
    pub const MESSAGE_TYPE: Oid = Oid::new_unwrap("2.16.840.1.113733.1.9.2");
    /// pkiStatus (§3.2.1.3).
    pub const PKI_STATUS: Oid = Oid::new_unwrap("2.16.840.1.113733.1.9.3");
    /// failInfo (§3.2.1.4).
    pub const FAIL_INFO: Oid = Oid::new_unwrap("2.16.840.1.113733.1.9.4");
    /// senderNonce (§3.2.1.5).
    pub const SENDER_NONCE: Oid = Oid::new_unwrap("2.16.840.1.113733.1.9.5");
    /// recipientNonce (§3.2.1.5).
    pub const RECIPIENT_NONCE: Oid = Oid::new_unwrap("2.16.840.1.113733.1.9.6");
    /// transactionID (§3.2.1.1).
    pub const TRANSACTION_ID: Oid = Oid::new_unwrap("2.16.840.1.113733.1.9.7");
    /// id-scep-failInfoText (RFC 8894 §3.2.1.4.6): id-pkix 24 1.
    pub const FAIL_INFO_TEXT: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.24.1");
}

/// Largest pkiMessage accepted (a PKCSReq with an RSA-4096 CSR and its signer is ~6 KB).
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;

/// messageType values (RFC 8894 §3.2.1.2), PrintableString decimal on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    /// CertRep (3).
    CertRep,
    /// RenewalReq (17).
    RenewalReq,
    /// UpdateReq (18), drafts only: treated like RenewalReq.
    UpdateReq,
    /// PKCSReq (19).
    PkcsReq,
    /// CertPoll, formerly GetCertInitial (20).
    CertPoll,
    /// GetCert (21).
    GetCert,
    /// GetCRL (22).
    GetCrl,
}

/// The names RFC 8894 §3.2.1.2 gives them (`PKCSReq`, `CertPoll`, …), for logs and
/// audit entries.
impl std::fmt::Display for MessageType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MessageType::CertRep => "CertRep",
            MessageType::RenewalReq => "RenewalReq",
            MessageType::UpdateReq => "UpdateReq",
            MessageType::PkcsReq => "PKCSReq",
            MessageType::CertPoll => "CertPoll",
            MessageType::GetCert => "GetCert",
            MessageType::GetCrl => "GetCRL",
        })
    }
}

impl MessageType {
    /// The wire value.
    pub fn code(self) -> &'static str {
        match self {
            MessageType::CertRep => "3",
            MessageType::RenewalReq => "17",
            MessageType::UpdateReq => "18",
            MessageType::PkcsReq => "19",
            MessageType::CertPoll => "20",
            MessageType::GetCert => "21",
            MessageType::GetCrl => "22",
        }
    }

    fn from_code(s: &str) -> Option<MessageType> {
        Some(match s.trim() {
            "3" => MessageType::CertRep,
            "17" => MessageType::RenewalReq,
            "18" => MessageType::UpdateReq,
            "19" => MessageType::PkcsReq,
            "20" => MessageType::CertPoll,
            "21" => MessageType::GetCert,
            "22" => MessageType::GetCrl,
            _ => return None,
        })
    }
}

/// Content-encryption algorithms (RFC 8894 §3.5.2, protocols.md A.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentCipher {
    /// DES-CBC: only when the endpoint enables it.
    Des,
    /// Triple-DES (EDE3) CBC.
    Des3,
    /// AES-128-CBC.
    Aes128,
    /// AES-192-CBC.
    Aes192,
    /// AES-256-CBC.
    Aes256,
}

impl ContentCipher {
    /// Its algorithm OID.
    pub fn oid(self) -> Oid {
        match self {
            ContentCipher::Des => oid::DES_CBC,
            ContentCipher::Des3 => oid::DES_EDE3_CBC,
            ContentCipher::Aes128 => oid::AES128_CBC,
            ContentCipher::Aes192 => oid::AES192_CBC,
            ContentCipher::Aes256 => oid::AES256_CBC,
        }
    }

    fn from_oid(o: &Oid) -> Option<ContentCipher> {
        Some(match *o {
            oid::DES_CBC => ContentCipher::Des,
            oid::DES_EDE3_CBC => ContentCipher::Des3,
            oid::AES128_CBC => ContentCipher::Aes128,
            oid::AES192_CBC => ContentCipher::Aes192,
            oid::AES256_CBC => ContentCipher::Aes256,
            _ => return None,
        })
    }

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            ContentCipher::Des => 8,
            ContentCipher::Des3 | ContentCipher::Aes192 => 24,
            ContentCipher::Aes128 => 16,
            ContentCipher::Aes256 => 32,
        }
    }

    /// Block (and IV) length in bytes.
    pub fn block_len(self) -> usize {
        match self {
            ContentCipher::Des | ContentCipher::Des3 => 8,
            _ => 16,
        }
    }

    /// CBC with PKCS#7 padding (RFC 5652 §6.3).
    pub fn encrypt(self, key: &[u8], iv: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        use cbc::cipher::{BlockModeEncrypt, KeyIvInit, block_padding::Pkcs7};
        fn enc<C>(key: &[u8], iv: &[u8], pt: &[u8]) -> Result<Vec<u8>>
        where
            cbc::Encryptor<C>: KeyIvInit + BlockModeEncrypt,
            C: cbc::cipher::BlockCipherEncrypt,
        {
            let e = cbc::Encryptor::<C>::new_from_slices(key, iv)
                .map_err(|_| Error::Reply("content key or IV has the wrong length".into()))?;
            Ok(e.encrypt_padded_vec::<Pkcs7>(pt))
        }
        match self {
            ContentCipher::Des => enc::<des::Des>(key, iv, plaintext),
            ContentCipher::Des3 => enc::<des::TdesEde3>(key, iv, plaintext),
            ContentCipher::Aes128 => enc::<aes::Aes128>(key, iv, plaintext),
            ContentCipher::Aes192 => enc::<aes::Aes192>(key, iv, plaintext),
            ContentCipher::Aes256 => enc::<aes::Aes256>(key, iv, plaintext),
        }
    }

    /// CBC decryption without unpadding, then a PKCS#7 padding check (RFC 5652 §6.3)
    /// that reads the whole last block whatever it finds: the plaintext with the padding
    /// removed when it is good, the whole decrypted text when it is not, and whether it
    /// was good. A ciphertext that is empty or not a whole number of blocks (visible to
    /// anyone) decrypts to nothing, not good.
    pub fn decrypt_uniform(self, key: &[u8], iv: &[u8], ciphertext: &[u8]) -> (Vec<u8>, bool) {
        use cbc::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::NoPadding};
        fn dec<C>(key: &[u8], iv: &[u8], ct: &[u8]) -> Option<Vec<u8>>
        where
            cbc::Decryptor<C>: KeyIvInit + BlockModeDecrypt,
            C: cbc::cipher::BlockCipherDecrypt,
        {
            let d = cbc::Decryptor::<C>::new_from_slices(key, iv).ok()?;
            d.decrypt_padded_vec::<NoPadding>(ct).ok()
        }
        let block = self.block_len();
        if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(block) {
            return (Vec::new(), false);
        }
        let raw = match self {
            ContentCipher::Des => dec::<des::Des>(key, iv, ciphertext),
            ContentCipher::Des3 => dec::<des::TdesEde3>(key, iv, ciphertext),
            ContentCipher::Aes128 => dec::<aes::Aes128>(key, iv, ciphertext),
            ContentCipher::Aes192 => dec::<aes::Aes192>(key, iv, ciphertext),
            ContentCipher::Aes256 => dec::<aes::Aes256>(key, iv, ciphertext),
        };
        let Some(mut raw) = raw else {
            return (Vec::new(), false);
        };
        let (len, good) = pkcs7_unpadded_len(&raw, block);
        raw.truncate(len);
        (raw, bool::from(good))
    }

    /// CBC decryption and PKCS#7 unpadding; `None` on any failure (one uniform outcome).
    pub fn decrypt(self, key: &[u8], iv: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>> {
        use cbc::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::Pkcs7};
        fn dec<C>(key: &[u8], iv: &[u8], ct: &[u8]) -> Option<Vec<u8>>
        where
            cbc::Decryptor<C>: KeyIvInit + BlockModeDecrypt,
            C: cbc::cipher::BlockCipherDecrypt,
        {
            let d = cbc::Decryptor::<C>::new_from_slices(key, iv).ok()?;
            d.decrypt_padded_vec::<Pkcs7>(ct).ok()
        }
        match self {
            ContentCipher::Des => dec::<des::Des>(key, iv, ciphertext),
            ContentCipher::Des3 => dec::<des::TdesEde3>(key, iv, ciphertext),
            ContentCipher::Aes128 => dec::<aes::Aes128>(key, iv, ciphertext),
            ContentCipher::Aes192 => dec::<aes::Aes192>(key, iv, ciphertext),
            ContentCipher::Aes256 => dec::<aes::Aes256>(key, iv, ciphertext),
        }
    }
}

/// The length of `raw` (a whole number of `block`-byte blocks, at least one) without its
/// PKCS#7 padding, and whether the padding is good, computed without branching on the
/// padding bytes: every byte of the last block is examined whatever the first bad one is.
/// When the padding is bad the length is that of `raw`.
fn pkcs7_unpadded_len(raw: &[u8], block: usize) -> (usize, subtle::Choice) {
    use subtle::{ConditionallySelectable, ConstantTimeEq, ConstantTimeGreater, ConstantTimeLess};
    let n = raw.len();
    let Some(&pad) = raw.last() else {
        return (0, subtle::Choice::from(0));
    };
    let block_u8 = u8::try_from(block).unwrap_or(u8::MAX);
    let mut good = pad.ct_gt(&0) & !pad.ct_gt(&block_u8);
    for i in 0..block.min(n) {
        let byte = raw[n - 1 - i];
        let inside = u8::try_from(i).unwrap_or(u8::MAX).ct_lt(&pad);
        good &= !inside | byte.ct_eq(&pad);
    }
    let strip = u64::conditional_select(&0, &u64::from(pad), good);
    let len = n.saturating_sub(usize::try_from(strip).unwrap_or(0));
    (len, good)
}

/// Digest algorithms of SignerInfos (protocols.md A.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestAlg {
    /// MD5: recognised so that it can be refused with badAlg unless enabled.
    Md5,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

/// Every digest the request verifier knows, strongest last. [`DigestAlg::accepted`] says
/// which of them an endpoint accepts, and GetCACaps advertises exactly those
/// ([`DigestAlg::caps_keyword`]), so the two cannot drift apart.
pub const DIGESTS: [DigestAlg; 5] = [
    DigestAlg::Md5,
    DigestAlg::Sha1,
    DigestAlg::Sha256,
    DigestAlg::Sha384,
    DigestAlg::Sha512,
];

impl DigestAlg {
    /// Whether a request signed with this digest is accepted under `options`: MD5 only
    /// where the endpoint enables it, the SHA family always (RFC 8894 §3.5.2).
    pub fn accepted(self, options: &DecodeOptions) -> bool {
        match self {
            DigestAlg::Md5 => options.allow_md5,
            DigestAlg::Sha1 | DigestAlg::Sha256 | DigestAlg::Sha384 | DigestAlg::Sha512 => true,
        }
    }

    /// The GetCACaps keyword of the digest (RFC 8894 §3.5.2 names SHA-1, SHA-256 and
    /// SHA-512; SHA-384 is spelled the same way, as other servers and clients do). MD5
    /// has none: clients use it only when a server advertises nothing.
    pub fn caps_keyword(self) -> Option<&'static str> {
        match self {
            DigestAlg::Md5 => None,
            DigestAlg::Sha1 => Some("SHA-1"),
            DigestAlg::Sha256 => Some("SHA-256"),
            DigestAlg::Sha384 => Some("SHA-384"),
            DigestAlg::Sha512 => Some("SHA-512"),
        }
    }

    /// The GetCACaps keywords of every digest accepted under `options`, in [`DIGESTS`]
    /// order.
    pub fn caps_keywords(options: &DecodeOptions) -> Vec<&'static str> {
        DIGESTS
            .iter()
            .filter(|d| d.accepted(options))
            .filter_map(|d| d.caps_keyword())
            .collect()
    }

    fn from_oid(o: &Oid) -> Option<DigestAlg> {
        Some(match *o {
            oid::MD5 => DigestAlg::Md5,
            oid::SHA1 => DigestAlg::Sha1,
            oid::SHA256 => DigestAlg::Sha256,
            oid::SHA384 => DigestAlg::Sha384,
            oid::SHA512 => DigestAlg::Sha512,
            _ => return None,
        })
    }

    /// Its OID.
    pub fn oid(self) -> Oid {
        match self {
            DigestAlg::Md5 => oid::MD5,
            DigestAlg::Sha1 => oid::SHA1,
            DigestAlg::Sha256 => oid::SHA256,
            DigestAlg::Sha384 => oid::SHA384,
            DigestAlg::Sha512 => oid::SHA512,
        }
    }

    /// Hashes `data`.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            DigestAlg::Md5 => md5::Md5::digest(data).to_vec(),
            DigestAlg::Sha1 => sha1::Sha1::digest(data).to_vec(),
            DigestAlg::Sha256 => sha2::Sha256::digest(data).to_vec(),
            DigestAlg::Sha384 => sha2::Sha384::digest(data).to_vec(),
            DigestAlg::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    fn hsm(self) -> Option<Digest> {
        Some(match self {
            DigestAlg::Md5 => return None,
            DigestAlg::Sha1 => Digest::Sha1,
            DigestAlg::Sha256 => Digest::Sha256,
            DigestAlg::Sha384 => Digest::Sha384,
            DigestAlg::Sha512 => Digest::Sha512,
        })
    }

    /// The digest and RSA scheme a reply is signed with: the client's digest, raised to
    /// SHA-256 when it used SHA-1 or MD5 (our keys never sign with SHA-1).
    pub fn reply_scheme(self) -> (DigestAlg, SignatureScheme) {
        match self {
            DigestAlg::Sha384 => (DigestAlg::Sha384, SignatureScheme::RsaPkcs1Sha384),
            DigestAlg::Sha512 => (DigestAlg::Sha512, SignatureScheme::RsaPkcs1Sha512),
            _ => (DigestAlg::Sha256, SignatureScheme::RsaPkcs1Sha256),
        }
    }
}

/// pkiStatus (RFC 8894 §3.2.1.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PkiStatus {
    /// SUCCESS (0).
    Success,
    /// FAILURE (2) with failInfo and an optional failInfoText.
    Failure(FailInfo, Option<String>),
    /// PENDING (3).
    Pending,
}

/// What is needed to answer a request: echoed attributes and the key to encrypt to.
#[derive(Clone, Debug)]
pub struct ReplyTo {
    /// transactionID, echoed.
    pub transaction_id: String,
    /// The request's senderNonce, echoed as recipientNonce.
    pub sender_nonce: Vec<u8>,
    /// The certificate that signed the request (the reply is encrypted to it).
    pub signer_cert_der: Vec<u8>,
    /// The request's digest algorithm.
    pub digest: DigestAlg,
    /// The request's content-encryption algorithm, mirrored in the reply.
    pub cipher: ContentCipher,
}

/// Facts about the request's signer certificate (used only as a key container; never
/// path-validated: Windows signer certs carry a critical AKI, protocols.md A.11).
#[derive(Clone, Debug)]
pub struct SignerFacts {
    /// The certificate, DER as received.
    pub cert_der: Vec<u8>,
    /// Its SubjectPublicKeyInfo, DER.
    pub spki_der: Vec<u8>,
    /// Its serial (INTEGER contents).
    pub serial: Vec<u8>,
    /// Issuer equals subject.
    pub self_issued: bool,
}

impl SignerFacts {
    /// SHA-256 of the signer's SubjectPublicKeyInfo, hex: half of the transaction key.
    pub fn key_hash(&self) -> String {
        hex::encode(sha2::Sha256::digest(&self.spki_der))
    }
}

/// A verified and decrypted request.
#[derive(Clone, Debug)]
pub struct PkiRequest {
    /// Its messageType.
    pub message_type: MessageType,
    /// How to answer it.
    pub reply_to: ReplyTo,
    /// Who signed it.
    pub signer: SignerFacts,
    /// The decrypted messageData: a PKCS#10 CSR, IssuerAndSubject or
    /// IssuerAndSerialNumber (RFC 8894 §3.3).
    pub message_data: Vec<u8>,
}

/// What decoding produced: a request, or a refusal that can still be answered with a
/// CertRep FAILURE (signature bad, algorithm refused, envelope not for us).
#[derive(Clone, Debug)]
pub enum Decoded {
    /// A good request.
    Request(Box<PkiRequest>),
    /// Answer with FAILURE.
    Refused {
        /// How to answer.
        reply_to: Box<ReplyTo>,
        /// The messageType, if it was readable.
        message_type: Option<MessageType>,
        /// failInfo.
        fail_info: FailInfo,
        /// What went wrong (safe for client and log).
        text: String,
        /// What went wrong in more detail, for the audit log only (for an envelope that
        /// does not yield a valid messageData the client sees [`UNREADABLE_REQUEST`]).
        detail: String,
    },
}

/// Options of the decoder, from the endpoint configuration.
#[derive(Clone, Copy, Debug, Default)]
pub struct DecodeOptions {
    /// Accept single-DES content encryption.
    pub allow_des: bool,
    /// Accept MD5 digests (not implemented: such requests are refused with badAlg).
    pub allow_md5: bool,
}

/// A key that can open request envelopes: the RA (or CA) certificate and its key.
#[derive(Clone, Debug)]
pub struct Recipient<'a> {
    /// The certificate, DER.
    pub cert_der: &'a [u8],
    /// Its key (RSA).
    pub key: &'a dyn PrivateKey,
}

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
fn content_info(input: &[u8]) -> Result<(Oid, Element<'_>)> {
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
fn issuer_and_serial<'a>(e: &Element<'a>) -> Result<(&'a [u8], &'a [u8])> {
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
    let _sig = f
        .next()
        .ok_or_else(|| Error::malformed("TBSCertificate is short"))?;
    let issuer = f
        .next()
        .ok_or_else(|| Error::malformed("TBSCertificate is short"))?;
    let _validity = f
        .next()
        .ok_or_else(|| Error::malformed("TBSCertificate is short"))?;
    let subject = f
        .next()
        .ok_or_else(|| Error::malformed("TBSCertificate is short"))?;
    let spki = f
        .next()
        .ok_or_else(|| Error::malformed("TBSCertificate is short"))?
        .expect(tag::SEQUENCE, "subjectPublicKeyInfo")?;
    Ok(CertParts {
        issuer: issuer.expect(tag::SEQUENCE, "issuer")?.raw,
        serial: serial.content,
        subject: subject.expect(tag::SEQUENCE, "subject")?.raw,
        spki: spki.raw,
    })
}

/// (issuer Name DER, serial contents, subjectKeyIdentifier).
type CertIds = (Vec<u8>, Vec<u8>, Option<Vec<u8>>);

fn cert_ids(der: &[u8]) -> Result<CertIds> {
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
fn int_eq(a: &[u8], b: &[u8]) -> bool {
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
        let received = match salg {
            oid::RSA_ENCRYPTION => ReceivedSignature::RsaPkcs1(hd),
            oid::SHA1_WITH_RSA => ReceivedSignature::RsaPkcs1(Digest::Sha1),
            oid::SHA256_WITH_RSA => ReceivedSignature::RsaPkcs1(Digest::Sha256),
            oid::SHA384_WITH_RSA => ReceivedSignature::RsaPkcs1(Digest::Sha384),
            oid::SHA512_WITH_RSA => ReceivedSignature::RsaPkcs1(Digest::Sha512),
            oid::ECDSA_SHA256 => ReceivedSignature::Ecdsa(Digest::Sha256),
            oid::ECDSA_SHA384 => ReceivedSignature::Ecdsa(Digest::Sha384),
            oid::ECDSA_SHA512 => ReceivedSignature::Ecdsa(Digest::Sha512),
            oid::EC_PUBLIC_KEY => ReceivedSignature::Ecdsa(hd),
            other => {
                return Err((
                    FailInfo::BadAlg,
                    format!("signature algorithm {other} is not supported"),
                ));
            }
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
/// without telling apart how decryption went (DESIGN.md decision 4).
///
/// Refusals here depend only on what the envelope says in the clear (its algorithms,
/// IV length, recipient identifiers), which the sender knows anyway. From the RSA step
/// on there is one path: whatever the key transport reports, a content key of the right
/// length goes on to the same CBC decryption and the same padding check, and the result
/// is an [`Opened`] whose `intact` the caller folds into its messageData check
/// ([`decode_request`]), so that bad padding, a failed key transport and a plaintext that
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
/// [`open_envelope_uniform`] through [`decode_request`].
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

/// DER PKCS#10 whose self-signature verifies (RFC 2986 §4.2): what ca-core's CSR parser
/// checks before it reads the CSR's content.
fn csr_signature_verifies(data: &[u8]) -> std::result::Result<(), String> {
    use der::Encode;
    use hsm::ReceivedSignature as R;
    const SHA1_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.5");
    const ECDSA_WITH_SHA1: Oid = Oid::new_unwrap("1.2.840.10045.4.1");
    if data.len() > ca_core::csr::MAX_CSR_BYTES {
        return Err("the CSR is too large".into());
    }
    let outer =
        ca_core::asn1::SignedObject::from_der(data).map_err(|e| format!("CSR is not DER: {e}"))?;
    let req = x509_cert::request::CertReq::from_der(data)
        .map_err(|e| format!("not a PKCS#10 CSR: {e}"))?;
    let spki = req
        .info
        .public_key
        .to_der()
        .map_err(|e| format!("CSR public key: {e}"))?;
    let alg = spki::AlgorithmIdentifierRef {
        oid: req.algorithm.oid,
        parameters: req.algorithm.parameters.as_ref().map(der::AnyRef::from),
    };
    let received = match req.algorithm.oid {
        SHA1_WITH_RSA => Some(R::RsaPkcs1(Digest::Sha1)),
        ECDSA_WITH_SHA1 => Some(R::Ecdsa(Digest::Sha1)),
        _ => ca_core::asn1::received_algorithm(&alg),
    }
    .ok_or_else(|| format!("CSR signature algorithm {} is not supported", alg.oid))?;
    let tbs = outer.tbs.to_der().map_err(|e| format!("CSR: {e}"))?;
    let sig = req
        .signature
        .as_bytes()
        .ok_or_else(|| "CSR signature has unused bits".to_string())?;
    hsm::verify_received(received, &spki, &tbs, sig)
        .map_err(|_| "CSR signature does not verify".to_string())
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

// ------------------------------------------------------------------------------------
// Encoding

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

fn attribute(o: &Oid, value: &[u8]) -> Vec<u8> {
    ber::seq(&[&ber::oid(o), &ber::tlv(tag::SET, value)])
}

fn wrap_content_info(ct: &Oid, content: &[u8]) -> Vec<u8> {
    ber::seq(&[&ber::oid(ct), &ber::tlv(tag::CTX0, content)])
}

/// A degenerate certs-only SignedData (RFC 8894 §3.4, RFC 5652 §5.2) holding `certs` in
/// the given order (not sorted: some clients take the first certificate, protocols.md
/// A.7) and `crls`.
pub fn certs_only(certs: &[&[u8]], crls: &[&[u8]]) -> Vec<u8> {
    let mut parts: Vec<Vec<u8>> = vec![
        ber::small_int(1),
        ber::tlv(tag::SET, &[]),
        ber::seq(&[&ber::oid(&oid::DATA)]),
    ];
    if !certs.is_empty() {
        parts.push(ber::tlv(tag::CTX0, &certs.concat()));
    }
    if !crls.is_empty() {
        parts.push(ber::tlv(tag::CTX1, &crls.concat()));
    }
    parts.push(ber::tlv(tag::SET, &[]));
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    wrap_content_info(&oid::SIGNED_DATA, &ber::seq(&refs))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pkcs7_padding_check_agrees_with_the_cbc_crate() {
        let key = [7u8; 16];
        let iv = [9u8; 16];
        for len in 0..40 {
            let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let ct = ContentCipher::Aes128.encrypt(&key, &iv, &pt).unwrap();
            assert_eq!(
                ContentCipher::Aes128.decrypt_uniform(&key, &iv, &ct),
                (pt.clone(), true),
                "{len}"
            );
            // Any change of the last plaintext byte (through the previous ciphertext
            // block or the IV) is judged as the cbc crate judges it.
            let at = ct.len().saturating_sub(17);
            for x in [0x01u8, 0x02, 0x10, 0x11, 0x80] {
                let mut bad = ct.clone();
                let mut bad_iv = iv;
                if ct.len() > 16 {
                    bad[at] ^= x;
                } else {
                    bad_iv[15] ^= x;
                }
                let want = ContentCipher::Aes128.decrypt(&key, &bad_iv, &bad);
                let (got, good) = ContentCipher::Aes128.decrypt_uniform(&key, &bad_iv, &bad);
                assert_eq!(good, want.is_some(), "{len} {x:02x}");
                if let Some(w) = want {
                    assert_eq!(got, w);
                } else {
                    assert_eq!(got.len(), ct.len(), "bad padding keeps the whole text");
                }
            }
        }
        // Not a whole number of blocks, or empty: nothing, not good.
        assert_eq!(
            ContentCipher::Aes128.decrypt_uniform(&key, &iv, &[1u8; 17]),
            (Vec::new(), false)
        );
        assert_eq!(
            ContentCipher::Aes128.decrypt_uniform(&key, &iv, &[]),
            (Vec::new(), false)
        );
    }

    #[test]
    fn caps_keywords_follow_the_accepted_digests() {
        let plain = DecodeOptions::default();
        assert_eq!(
            DigestAlg::caps_keywords(&plain),
            ["SHA-1", "SHA-256", "SHA-384", "SHA-512"]
        );
        assert!(!DigestAlg::Md5.accepted(&plain));
        let md5 = DecodeOptions {
            allow_md5: true,
            ..plain
        };
        assert!(DigestAlg::Md5.accepted(&md5));
        assert_eq!(
            DigestAlg::caps_keywords(&md5),
            DigestAlg::caps_keywords(&plain)
        );
    }
}
