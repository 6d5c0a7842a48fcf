//! A small SCEP client (RFC 8894 §3 from the requester's side): builds signed and
//! encrypted requests and reads CertReps. Used by the tests as a second check beside real
//! clients, and by `privca bench scep`. Its private-key operations go through `hsm`.

use std::str::FromStr;

use ca_core::asn1::oid::CHALLENGE_PASSWORD;
use der::Encode;
use hsm::{PrivateKey, SignatureScheme};
use x509_cert::name::Name;

use crate::ber::{self, tag};
use crate::challenge::FailInfo;
use crate::codec::{
    self, ContentCipher, DecodeOptions, DigestAlg, KeyTransport, MessageType, OutAttributes,
    PkiStatus, Recipient, ReplySigner, oid,
};
use crate::{Error, Result};

fn name_der(dn: &str) -> Result<Vec<u8>> {
    let name = Name::from_str(dn).map_err(|e| Error::Reply(format!("name {dn:?}: {e}")))?;
    name.to_der()
        .map_err(|e| Error::Reply(format!("name {dn:?}: {e}")))
}

fn sign_wrap(key: &dyn PrivateKey, tbs: &[u8]) -> Result<Vec<u8>> {
    let sig = key.sign(SignatureScheme::RsaPkcs1Sha256, tbs)?;
    let mut bits = vec![0u8];
    bits.extend_from_slice(&sig);
    Ok(ber::seq(&[
        tbs,
        &ber::alg(&oid::SHA256_WITH_RSA, true),
        &ber::tlv(tag::BIT_STRING, &bits),
    ]))
}

/// A self-signed certificate for `key` with subject `dn` (the requester's transient
/// signer certificate, RFC 8894 §2.3), valid for a day.
pub fn self_signed(key: &dyn PrivateKey, dn: &str) -> Result<Vec<u8>> {
    let name = name_der(dn)?;
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!(
        "[year repr:last_two][month][day][hour][minute][second]Z"
    );
    let t = |d: time::OffsetDateTime| -> Result<Vec<u8>> {
        let s = d.format(fmt).map_err(|e| Error::Reply(e.to_string()))?;
        Ok(ber::tlv(tag::UTC_TIME, s.as_bytes()))
    };
    let mut serial = codec::fresh_nonce();
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    let tbs = ber::seq(&[
        &ber::tlv(tag::CTX0, &ber::small_int(2)),
        &ber::tlv(tag::INTEGER, &serial),
        &ber::alg(&oid::SHA256_WITH_RSA, true),
        &name,
        &ber::seq(&[
            &t(now - time::Duration::minutes(5))?,
            &t(now + time::Duration::days(1))?,
        ]),
        &name,
        key.public_key_der(),
    ]);
    sign_wrap(key, &tbs)
}

/// A PKCS#10 request (RFC 2986) for `key` with subject `dn` and an optional
/// challengePassword (RFC 2985 §5.4.1).
pub fn csr(key: &dyn PrivateKey, dn: &str, challenge: Option<&str>) -> Result<Vec<u8>> {
    csr_with_extensions(key, dn, challenge, None)
}

/// [`csr`] with an extensionRequest attribute (RFC 2985 §5.4.2) carrying `extensions`,
/// the DER of an `Extensions` SEQUENCE (RFC 5280 §4.1), as MDM profiles put the
/// subjectAltName there.
pub fn csr_with_extensions(
    key: &dyn PrivateKey,
    dn: &str,
    challenge: Option<&str>,
    extensions: Option<&[u8]>,
) -> Result<Vec<u8>> {
    let mut attrs = Vec::new();
    if let Some(e) = extensions {
        attrs.push(ber::seq(&[
            &ber::oid(&ca_core::asn1::oid::EXTENSION_REQUEST),
            &ber::tlv(tag::SET, e),
        ]));
    }
    if let Some(c) = challenge {
        attrs.push(ber::seq(&[
            &ber::oid(&CHALLENGE_PASSWORD),
            &ber::tlv(tag::SET, &ber::tlv(tag::UTF8_STRING, c.as_bytes())),
        ]));
    }
    let info = ber::seq(&[
        &ber::small_int(0),
        &name_der(dn)?,
        key.public_key_der(),
        &ber::tlv(tag::CTX0, &attrs.concat()),
    ]);
    sign_wrap(key, &info)
}

/// The requester's identity: the key and the certificate that signs requests (self-signed
/// for an initial enrollment, the current certificate for a renewal).
#[derive(Clone, Copy, Debug)]
pub struct Identity<'a> {
    /// The key.
    pub key: &'a dyn PrivateKey,
    /// The certificate, DER.
    pub cert_der: &'a [u8],
}

/// A built request and the nonce to expect back.
#[derive(Clone, Debug)]
pub struct BuiltRequest {
    /// The pkiMessage, DER.
    pub der: Vec<u8>,
    /// Its senderNonce (the reply's recipientNonce must equal it).
    pub sender_nonce: Vec<u8>,
}

/// Builds a request pkiMessage: `message_data` encrypted to `ra_cert_der` with `cipher`,
/// signed by `identity` with SHA-256.
pub fn build_request(
    message_type: MessageType,
    transaction_id: &str,
    message_data: &[u8],
    identity: Identity<'_>,
    ra_cert_der: &[u8],
    cipher: ContentCipher,
) -> Result<BuiltRequest> {
    build_request_with(
        message_type,
        transaction_id,
        message_data,
        identity,
        ra_cert_der,
        cipher,
        KeyTransport::Pkcs1v15,
        DigestAlg::Sha256,
    )
}

/// [`build_request`] with a chosen key transport and digest (SHA-256/384/512).
#[allow(clippy::too_many_arguments)]
pub fn build_request_with(
    message_type: MessageType,
    transaction_id: &str,
    message_data: &[u8],
    identity: Identity<'_>,
    ra_cert_der: &[u8],
    cipher: ContentCipher,
    transport: KeyTransport,
    digest: DigestAlg,
) -> Result<BuiltRequest> {
    let scheme = digest
        .rsa_scheme()
        .ok_or_else(|| Error::Reply(format!("{digest:?} requests are not built here")))?;
    let env = codec::envelope_with(message_data, ra_cert_der, cipher, transport)?;
    let nonce = codec::fresh_nonce();
    let der = codec::sign_message(
        Some(&env),
        &OutAttributes {
            message_type,
            transaction_id,
            sender_nonce: &nonce,
            recipient_nonce: None,
            status: None,
        },
        &ReplySigner {
            cert_der: identity.cert_der,
            key: identity.key,
        },
        digest,
        scheme,
        &[],
    )?;
    Ok(BuiltRequest {
        der,
        sender_nonce: nonce,
    })
}

/// A transaction ID as the micromdm client makes it: hex SHA-256 of the public key.
pub fn transaction_id_for(key: &dyn PrivateKey) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(key.public_key_der()))
}

/// IssuerAndSubject (RFC 8894 §3.3.3) for a CertPoll.
pub fn issuer_and_subject(issuer_name_der: &[u8], subject_dn: &str) -> Result<Vec<u8>> {
    Ok(ber::seq(&[issuer_name_der, &name_der(subject_dn)?]))
}

/// A CertRep as the client sees it.
#[derive(Clone, Debug)]
pub struct Reply {
    /// pkiStatus.
    pub status: PkiStatus,
    /// transactionID.
    pub transaction_id: String,
    /// recipientNonce.
    pub recipient_nonce: Vec<u8>,
    /// senderNonce.
    pub sender_nonce: Vec<u8>,
    /// Certificates of a SUCCESS, in order.
    pub certs: Vec<Vec<u8>>,
    /// CRLs of a SUCCESS (GetCRL).
    pub crls: Vec<Vec<u8>>,
    /// The certificate that signed the reply.
    pub signer_cert_der: Vec<u8>,
}

/// Reads and verifies a CertRep, decrypting its content with `identity`'s key.
pub fn read_reply(input: &[u8], identity: Identity<'_>) -> Result<Reply> {
    let v = codec::verify_signed(input, &DecodeOptions::default())?;
    if let Err((_, text)) = &v.verified {
        return Err(Error::Reply(format!("reply does not verify: {text}")));
    }
    if v.message_type != Some(MessageType::CertRep) {
        return Err(Error::Reply("not a CertRep".into()));
    }
    let status = match v.pki_status.as_deref() {
        Some("0") => PkiStatus::Success,
        Some("3") => PkiStatus::Pending,
        Some("2") => {
            let fi = match v.fail_info.as_deref() {
                Some("0") => FailInfo::BadAlg,
                Some("1") => FailInfo::BadMessageCheck,
                Some("3") => FailInfo::BadTime,
                Some("4") => FailInfo::BadCertId,
                _ => FailInfo::BadRequest,
            };
            PkiStatus::Failure(fi, v.fail_info_text.clone())
        }
        other => return Err(Error::Reply(format!("bad pkiStatus {other:?}"))),
    };
    let (mut certs, mut crls) = (Vec::new(), Vec::new());
    if status == PkiStatus::Success {
        let content = v
            .content
            .as_deref()
            .ok_or_else(|| Error::Reply("SUCCESS without content".into()))?;
        let (_, degenerate) = codec::open_envelope(
            content,
            &[Recipient {
                cert_der: identity.cert_der,
                key: identity.key,
            }],
            &DecodeOptions {
                allow_des: true,
                allow_md5: false,
            },
        )
        .map_err(|f| Error::Reply(format!("cannot open the reply envelope: {}", f.text)))?;
        (certs, crls) = codec::certs_from_degenerate(&degenerate)?;
    }
    Ok(Reply {
        status,
        transaction_id: v.transaction_id.unwrap_or_default(),
        recipient_nonce: v.recipient_nonce.unwrap_or_default(),
        sender_nonce: v.sender_nonce.unwrap_or_default(),
        certs,
        crls,
        signer_cert_der: v.signer.cert_der,
    })
}
