//! The sans-I/O pkiMessage codec (RFC 8894 §3): bytes in, verified and decrypted request
//! out; CertRep (and the other bodies) out as bytes. No I/O, no policy.
//!
//! Decoding is a hand walk over BER ([`crate::ber`]) rather than a decode-and-re-encode
//! library, because the signed attributes must be verified over the bytes as received
//! (RFC 5652 §5.4) and the reply envelopes must mirror DES/3DES, which the `cms` builder
//! cannot produce (docs/client-quirks.md, "Why the CMS code is hand-written").
//!
//! The codec's rooms, all re-exported here so that `scep::codec::…` paths stay as they
//! were:
//!
//! - [`oid`]: the OIDs SCEP names (from the shared table in `ca_core::asn1::oid`);
//! - `algorithms`: content ciphers and digests ([`ContentCipher`], [`DigestAlg`]);
//! - `signed`: SignedData parsing and signature verification ([`verify_signed`]);
//! - `envelope`: EnvelopedData, opened ([`open_envelope_uniform`]) and built
//!   ([`envelope_with`]);
//! - `request`: the server side of a request ([`decode_request`], [`check_message_data`]);
//! - `reply`: signed messages and CertReps out ([`sign_message`], [`cert_rep`]).

mod algorithms;
mod envelope;
pub mod oid;
mod reply;
mod request;
mod signed;

pub use algorithms::{ContentCipher, DIGESTS, DigestAlg};
pub use envelope::{
    EnvelopeFailure, KeyTransport, Opened, envelope, envelope_with, open_envelope,
    open_envelope_uniform,
};
pub use reply::{
    CertsAndCrls, OutAttributes, ReplySigner, cert_rep, certs_from_degenerate, certs_only,
    fresh_nonce, issuer_and_serial_of, sign_message, sign_message_with,
};
pub use request::{
    UNREADABLE_REQUEST, check_message_data, decode_request, parse_issuer_and_serial,
    parse_issuer_and_subject,
};
pub use signed::{CertParts, VerifiedSignedData, cert_parts, verify_signed};

use hsm::PrivateKey;
use sha2::Digest as _;

use crate::challenge::FailInfo;

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

    pub(crate) fn from_code(s: &str) -> Option<MessageType> {
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
/// path-validated: Windows signer certs carry a critical AKI; docs/client-quirks.md).
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
