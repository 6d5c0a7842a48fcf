//! The bodies of privca's fuzz targets, shared by the cargo-fuzz binaries
//! (`fuzz_targets/*.rs`, one line each) and by `tests/corpus.rs`, which runs every
//! checked-in seed through its target once on stable Rust.
//!
//! None of them may panic on any input. Where a target builds its input into a valid
//! message itself (a CSR signed with the key it names, an envelope encrypted to the RA
//! key, a pkiMessage signed by a known signer), it also asserts what must then hold: the
//! signature verifies, the envelope opens to what was put in. Those asserts are the
//! oracles that make a fuzz run find wrong answers, not only crashes.
//!
//! The test-only keys come from `tests/vectors/scep/` (see its README): they protect
//! nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use ca_core::csr::{Csr, CsrOptions};
use ca_core::profile::Profile;
use der::{Decode, Encode};
use scep::codec::{self, ContentCipher, DecodeOptions, Decoded, KeyTransport, MessageType};

/// The SCEP RA certificate every captured request is encrypted to.
pub const RA_CERT: &[u8] = include_bytes!("../../tests/vectors/scep/ra.crt.der");
/// Its key (test only).
pub const RA_KEY: &[u8] = include_bytes!("../../tests/vectors/scep/ra-TEST-ONLY-key.pk8.der");

/// The test RA key, loaded once.
pub fn ra_key() -> &'static hsm::soft::SoftKey {
    static RA: OnceLock<hsm::soft::SoftKey> = OnceLock::new();
    RA.get_or_init(|| hsm::soft::SoftKey::from_pkcs8("ra", RA_KEY).expect("test RA key"))
}

fn recipients() -> [codec::Recipient<'static>; 1] {
    [codec::Recipient {
        cert_der: RA_CERT,
        key: ra_key(),
    }]
}

const SCEP_OPTIONS: DecodeOptions = DecodeOptions {
    allow_des: true,
    allow_md5: false,
};

/// The built-in profiles, the policy a decoded CSR meets next.
fn profiles() -> &'static [Profile] {
    static P: OnceLock<Vec<Profile>> = OnceLock::new();
    P.get_or_init(|| {
        ca_core::profile::BUILT_IN
            .iter()
            .filter_map(|n| {
                let cfg = ca_core::profile::built_in(n)?;
                Profile::from_config(n, cfg, "issuing").ok()
            })
            .chain(other_names_profile())
            .collect()
    })
}

/// A profile that admits the otherName SANs (UPN, permanentIdentifier,
/// hardwareModuleName), so that their rules run too: no built-in profile issues them.
fn other_names_profile() -> Option<Profile> {
    let mut cfg = ca_core::profile::built_in("tls-client")?;
    cfg.san.upn_suffixes = vec!["@corp.example".into()];
    cfg.san.email_domains = vec!["corp.example".into()];
    cfg.san.permanent_identifier_values = vec!["SN-*".into()];
    cfg.san.permanent_identifier_assigners = vec!["1.3.6.1.4.1.99999.1".into()];
    cfg.san.hardware_module_types = vec!["1.3.6.1.4.1.99999.2".into()];
    Profile::from_config("other-names", cfg, "issuing").ok()
}

/// What the authority does with a CSR's content before it builds a certificate: key
/// check, subject template, SAN rules (ca-core `profile`).
fn policy(csr: &Csr) {
    let _ = ca_core::profile::common_name(&csr.subject);
    for san in &csr.sans {
        let _ = san.to_general_name();
        let _ = san.display();
    }
    for p in profiles() {
        let _ = p.check_key(csr.key_algorithm);
        if let Ok(subject) = p.build_subject(&csr.subject)
            && let Ok(sans) = p.check_sans(&csr.sans, &subject)
        {
            let _ = p.check_subject_names(&subject, &sans);
        }
    }
}

/// The three kinds of SCEP messageData (RFC 8894 §3.3): PKCS#10, IssuerAndSubject,
/// IssuerAndSerialNumber.
fn message_data(data: &[u8]) {
    if let Ok(csr) = ca_core::csr::parse_with(data, CsrOptions { allow_sha1: true }) {
        policy(&csr);
    }
    let _ = codec::parse_issuer_and_subject(data);
    let _ = codec::parse_issuer_and_serial(data);
}

// ---------------------------------------------------------------------------------------
// The first five targets, unchanged.

/// `csr`: the CSR decoder (DER or PEM) with its signature check.
pub fn csr(data: &[u8]) {
    let _ = ca_core::csr::parse(data);
}

/// `ocsp_request`: the OCSP request decoder behind `POST /ocsp`.
pub fn ocsp_request(data: &[u8]) {
    let _ = ca_core::ocsp::parse_request(data);
}

/// `scep_pkimessage`: the whole pkiMessage decoder with the RA key, the degenerate and
/// messageData decoders, and the GET query/base64 decoding.
pub fn scep_pkimessage(data: &[u8]) {
    let _ = codec::decode_request(data, &recipients(), &SCEP_OPTIONS);
    let _ = codec::certs_from_degenerate(data);
    let _ = codec::parse_issuer_and_subject(data);
    if let Ok(q) = std::str::from_utf8(data) {
        let p = scep::http::query_params(q);
        if let Some(m) = p.get("message") {
            let _ = scep::http::lenient_base64(m);
        }
    }
}

/// `est_request`: body decoding then the CSR parse, and the Basic header parse.
pub fn est_request(data: &[u8]) {
    if let Ok(der) = est::encoding::decode_body(data) {
        let _ = ca_core::csr::parse(&der);
    }
    let _ = est::password::parse_basic(data);
}

/// `challenge_answers`: webhook and Intune/Entra ID answers (capped at 64 KiB).
pub fn challenge_answers(data: &[u8]) {
    if data.len() > 64 * 1024 {
        return;
    }
    scep::webhook::fuzz_answer(data);
    scep::intune::fuzz_answers(data);
}

// ---------------------------------------------------------------------------------------
// Targets that enter the inner layers directly.

/// `csr_content`: everything `ca_core::csr::parse` does after the signature check
/// (subject, extensionRequest, subjectAltName, challengePassword, key algorithm), through
/// [`ca_core::csr::decode_held`], which skips the check; then the profile policy.
pub fn csr_content(data: &[u8]) {
    if let Ok(csr) = ca_core::csr::decode_held(data) {
        policy(&csr);
    }
}

/// A P-256 key made once per process; [`csr_signed`] signs with it.
fn csr_key() -> &'static hsm::soft::SoftKey {
    static K: OnceLock<hsm::soft::SoftKey> = OnceLock::new();
    K.get_or_init(|| {
        hsm::soft::SoftKey::generate_ephemeral("fuzz-csr", hsm::KeyAlgorithm::EcdsaP256)
            .expect("P-256 key")
    })
}

/// Re-signs a CSR's `CertificationRequestInfo` with [`csr_key`]: its public key is
/// replaced by that key's and the signature made with it (ecdsa-with-SHA256). `None` when
/// `data` is not a CSR x509-cert can decode.
pub fn resign_csr(data: &[u8]) -> Option<Vec<u8>> {
    use hsm::PrivateKey;
    let req = x509_cert::request::CertReq::from_der(data).ok()?;
    let key = csr_key();
    let mut info = req.info;
    info.public_key = spki::SubjectPublicKeyInfoOwned::from_der(key.public_key_der()).ok()?;
    let tbs = info.to_der().ok()?;
    let sig = key
        .sign(hsm::SignatureScheme::EcdsaP256Sha256, &tbs)
        .expect("P-256 signature");
    let signed = x509_cert::request::CertReq {
        info,
        algorithm: spki::AlgorithmIdentifierOwned {
            oid: ca_core::asn1::oid::ECDSA_WITH_SHA256,
            parameters: None,
        },
        signature: der::asn1::BitString::from_bytes(&sig).ok()?,
    };
    signed.to_der().ok()
}

/// `csr_signed` (structure-aware): the input CSR is re-signed with a key the CSR then
/// names ([`resign_csr`]), so the signature check passes and every mutation reaches the
/// content parsing through the full [`ca_core::csr::parse`]. Oracle: a CSR whose content
/// decodes must also pass the signature check, with the same content.
pub fn csr_signed(data: &[u8]) {
    let Some(signed) = resign_csr(data) else {
        return;
    };
    let held = ca_core::csr::decode_held(&signed);
    let parsed = ca_core::csr::parse(&signed);
    match (held, parsed) {
        (Ok(h), Ok(p)) => {
            assert_eq!(h.subject, p.subject);
            assert_eq!(h.sans, p.sans);
            assert_eq!(h.extensions, p.extensions);
            assert_eq!(h.challenge_password, p.challenge_password);
            policy(&p);
        }
        (Ok(_), Err(e)) => panic!("a CSR signed with the key it names was refused: {e}"),
        (Err(_), _) => {}
    }
}

/// `ocsp_get`: the `GET /ocsp/{request}` path decoding, then the request decoder. The
/// input is tried as the handler receives it (axum has percent-decoded the path) and once
/// more percent-decoded the way axum does it (the `percent-encoding` crate).
pub fn ocsp_get(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let one = |path: &str| {
        if let Ok(der) = ca_core::ocsp::decode_get_request(path) {
            let _ = ca_core::ocsp::parse_request(&der);
        }
    };
    one(text);
    if let Ok(decoded) = percent_encoding::percent_decode_str(text).decode_utf8()
        && decoded != text
    {
        one(&decoded);
    }
}

/// `scep_envelope`: the EnvelopedData parser (recipient infos, key transport and OAEP
/// parameters, content encryption) and the decryption outcomes with the test RA key, then
/// the messageData decoders on whatever it opens to.
pub fn scep_envelope(data: &[u8]) {
    if let Ok((_, plain)) = codec::open_envelope(data, &recipients(), &SCEP_OPTIONS) {
        message_data(&plain);
    }
}

/// The ciphers and key transports [`scep_envelope_built`] and [`scep_signed`] choose from.
const CIPHERS: [ContentCipher; 5] = [
    ContentCipher::Aes128,
    ContentCipher::Aes256,
    ContentCipher::Des3,
    ContentCipher::Des,
    ContentCipher::Aes192,
];
const TRANSPORTS: [KeyTransport; 3] = [
    KeyTransport::Pkcs1v15,
    KeyTransport::OaepSha1,
    KeyTransport::OaepSha256,
];

/// `scep_envelope_built` (structure-aware): the first byte chooses the cipher (bits 0-2),
/// the key transport (bits 3-4) and a tampering (bits 5-7 modulo 5: none, last
/// ciphertext byte, a byte of the second-to-last block, a byte of the encrypted key, the
/// IV's first byte);
/// the rest is the plaintext, encrypted to the RA certificate with `scep::codec::
/// envelope_with`, then opened with the RA key and decoded as messageData. Oracle: an
/// untampered envelope opens to exactly its plaintext.
pub fn scep_envelope_built(data: &[u8]) {
    let Some((&sel, plain)) = data.split_first() else {
        return;
    };
    let cipher = CIPHERS[usize::from(sel & 7) % CIPHERS.len()];
    let transport = TRANSPORTS[usize::from((sel >> 3) & 3) % TRANSPORTS.len()];
    let mut env = codec::envelope_with(plain, RA_CERT, cipher, transport).expect("envelope");
    let n = env.len();
    let block = cipher.block_len();
    let tamper = (sel >> 5) % 5;
    match tamper {
        1 => env[n - 1] ^= 0x01,
        2 if n > 2 * block && plain.len() >= block => env[n - 1 - block] ^= 0x01,
        3 => {
            // The 256-octet encrypted key of the RSA-2048 RA key: OCTET STRING 04 82 01 00.
            if let Some(i) = env.windows(4).position(|w| w == [0x04, 0x82, 0x01, 0x00]) {
                env[i + 4 + 17] ^= 0x01;
            }
        }
        4 => {
            // The IV: an OCTET STRING of one block right after the cipher's OID.
            let oid = der::asn1::ObjectIdentifier::to_der(&cipher.oid()).expect("OID");
            if let Some(i) = env.windows(oid.len()).rposition(|w| w == oid.as_slice())
                && let Some(b) = env.get_mut(i + oid.len() + 2)
            {
                *b ^= 0x80;
            }
        }
        _ => {}
    }
    match codec::open_envelope(&env, &recipients(), &SCEP_OPTIONS) {
        Ok((c, opened)) => {
            assert_eq!(c, cipher);
            if tamper == 0 {
                assert_eq!(opened, plain, "an envelope opened to other bytes");
            }
            message_data(&opened);
        }
        Err(f) => assert!(
            tamper != 0,
            "an untampered envelope did not open: {:?} {}",
            f.fail_info,
            f.text
        ),
    }
}

/// The messageTypes [`scep_signed`] chooses from.
const MESSAGE_TYPES: [MessageType; 6] = [
    MessageType::PkcsReq,
    MessageType::RenewalReq,
    MessageType::CertPoll,
    MessageType::GetCert,
    MessageType::GetCrl,
    MessageType::UpdateReq,
];

/// `scep_signed` (structure-aware): the first byte chooses the messageType; the rest is
/// the pkiMessage's content (an EnvelopedData), signed here with the test RA key as the
/// requester so that the signature check passes and every input reaches envelope
/// opening, then messageData decoding as the service does it for that type. Oracle: a
/// message signed by that key verifies.
pub fn scep_signed(data: &[u8]) {
    let Some((&sel, content)) = data.split_first() else {
        return;
    };
    if content.len() > 64 * 1024 {
        return;
    }
    let message_type = MESSAGE_TYPES[usize::from(sel) % MESSAGE_TYPES.len()];
    let nonce = [sel; 16];
    let signer = codec::ReplySigner {
        cert_der: RA_CERT,
        key: ra_key(),
    };
    let msg = codec::sign_message(
        Some(content),
        &codec::OutAttributes {
            message_type,
            transaction_id: "fuzz-transaction",
            sender_nonce: &nonce,
            recipient_nonce: None,
            status: None,
        },
        &signer,
        codec::DigestAlg::Sha256,
        hsm::SignatureScheme::RsaPkcs1Sha256,
        &[],
    )
    .expect("signed pkiMessage");
    let v = codec::verify_signed(&msg, &SCEP_OPTIONS).expect("our own pkiMessage parses");
    assert!(
        v.verified.is_ok(),
        "a pkiMessage signed by the RA key did not verify: {:?}",
        v.verified
    );
    match codec::decode_request(&msg, &recipients(), &SCEP_OPTIONS) {
        Ok(Decoded::Request(r)) => {
            assert_eq!(r.message_type, message_type);
            match r.message_type {
                MessageType::PkcsReq | MessageType::RenewalReq | MessageType::UpdateReq => {
                    if let Ok(csr) =
                        ca_core::csr::parse_with(&r.message_data, CsrOptions { allow_sha1: true })
                    {
                        policy(&csr);
                    }
                }
                MessageType::CertPoll => {
                    let _ = codec::parse_issuer_and_subject(&r.message_data);
                }
                _ => {
                    let _ = codec::parse_issuer_and_serial(&r.message_data);
                }
            }
        }
        Ok(Decoded::Refused { .. }) | Err(_) => {}
    }
}

/// `est_body`: an EST request body (RFC 7030 §4.2.1, RFC 8951: base64 with or without
/// line breaks, PEM, DER) decoded, then the CSR content without and with its signature
/// check, then the profile policy. Oracle: what decodes survives the 64-column base64
/// privca itself writes.
pub fn est_body(data: &[u8]) {
    let Ok(der) = est::encoding::decode_body(data) else {
        return;
    };
    // Only for a SEQUENCE (every CSR): its base64 starts with `M`, while a body whose
    // first byte is `0` (0x30) is taken for raw DER.
    if der.first() == Some(&0x30) {
        let lines = est::encoding::base64_lines(&der);
        if lines.len() <= est::encoding::MAX_BODY_BYTES {
            assert_eq!(
                est::encoding::decode_body(lines.as_bytes()).ok().as_deref(),
                Some(der.as_slice()),
                "64-column base64 did not decode to its DER"
            );
        }
    }
    if let Ok(csr) = ca_core::csr::decode_held(&der) {
        policy(&csr);
    }
    let _ = ca_core::csr::parse(&der);
}

/// ACME request bodies (RFC 8555 §6.2) through the JWS layer: the flattened JWS, its
/// protected header and JWK, the signature check with the request's own key, and the
/// External Account Binding of a newAccount payload (§7.3.4) with its MAC check.
/// Asserts that a request that verifies still verifies after a second parse of the same
/// bytes (parsing keeps no state) and that its thumbprint is stable.
pub fn acme_jws(data: &[u8]) {
    let Ok(req) = acme::jws::Jws::parse(data) else {
        return;
    };
    let acme::jws::KeyRef::Jwk(key) = &req.protected.key else {
        return;
    };
    let _ = req.check_url("https://127.0.0.1:8443/acme/servers/new-account");
    if req.verify(key).is_ok() {
        let again = acme::jws::Jws::parse(data).expect("a parsed request parses again");
        assert!(
            again.verify(key).is_ok(),
            "a verified request verifies again"
        );
        assert_eq!(key.thumbprint(), key.clone().thumbprint());
    }
    if let Ok(payload) = serde_json::from_slice::<serde_json::Value>(&req.payload)
        && let Some(eab) = payload.get("externalAccountBinding")
        && let Ok(binding) = acme::jws::ExternalAccountBinding::parse(eab, &req, key)
    {
        let _ = binding.verify(&[0x5a; 32]);
    }
}

/// The question name of the `acme_dns` seeds.
pub const ACME_DNS_NAME: &str = "_acme-challenge.x.acme.test";

/// Body of `acme_dns`: a DNS answer (what the resolver named by `dns_resolver` sends
/// back) through `acme::dns::parse_txt_answer`, for the question the seeds answer, with
/// the message's own id (so that mutations get past the id check). Never panics; what
/// parses keeps the limits.
pub fn acme_dns(data: &[u8]) {
    let id = match data {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    };
    if let Ok(answer) = acme::dns::parse_txt_answer(id, ACME_DNS_NAME, data) {
        assert!(answer.records.len() <= acme::dns::MAX_RECORDS);
        let total: usize = answer.records.iter().map(Vec::len).sum();
        assert!(total <= data.len());
    }
}

/// Body of `acme_order`: newOrder and finalize payloads (JSON from the client) through
/// `acme::service::parse_new_order` and `parse_finalize`, ARI certIDs through
/// `parse_cert_id` (the canonical form parses to the same parts), and a parsed CSR's names
/// through the order check. Never panics; what parses keeps the normalisation promises.
pub fn acme_order(data: &[u8]) {
    // The ARI certID of renewal-info/<certID> and of newOrder's `replaces` (RFC 9773).
    if let Ok(id) = std::str::from_utf8(data)
        && let Ok((canonical, aki, serial)) = acme::service::parse_cert_id(id)
    {
        assert!(!aki.is_empty() && !serial.is_empty());
        let again = acme::service::parse_cert_id(&canonical).expect("canonical certID");
        assert_eq!((again.1, again.2), (aki, serial));
    }
    if let Ok(order) = acme::service::parse_new_order(data) {
        assert!(order.identifiers.len() <= acme::service::MAX_IDENTIFIERS);
        for (i, (ident, _)) in order.identifiers.iter().enumerate() {
            assert!(ident.kind == "dns" || ident.kind == "ip", "{ident:?}");
            if ident.kind == "dns" {
                assert_eq!(ident.value, ident.value.to_ascii_lowercase());
            }
            assert!(
                !order.identifiers[..i].iter().any(|(o, _)| o == ident),
                "duplicate {ident:?}"
            );
        }
    }
    if let Ok(csr) = acme::service::parse_finalize(data) {
        // The CSR's own DNS/IP names as an order: they must match unless the CSR
        // carries other kinds of names or a CN that is not among them.
        let idents: Vec<_> = csr
            .sans
            .iter()
            .filter_map(|s| match s {
                ca_core::profile::San::Dns(d) => Some(ca_core::acme_records::AcmeIdentifier {
                    kind: "dns".into(),
                    value: d.to_ascii_lowercase(),
                }),
                ca_core::profile::San::Ip(ip) => Some(ca_core::acme_records::AcmeIdentifier {
                    kind: "ip".into(),
                    value: ip.to_string(),
                }),
                _ => None,
            })
            .collect();
        let _ = acme::service::check_csr_names(&csr, &idents);
        let _ = acme::service::check_csr_names(&csr, &[]);
    }
}

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target by name, for the corpus test and tools.
pub const TARGETS: [(&str, Target); 15] = [
    ("csr", csr),
    ("ocsp_request", ocsp_request),
    ("scep_pkimessage", scep_pkimessage),
    ("est_request", est_request),
    ("challenge_answers", challenge_answers),
    ("csr_content", csr_content),
    ("csr_signed", csr_signed),
    ("ocsp_get", ocsp_get),
    ("scep_envelope", scep_envelope),
    ("scep_envelope_built", scep_envelope_built),
    ("scep_signed", scep_signed),
    ("est_body", est_body),
    ("acme_jws", acme_jws),
    ("acme_order", acme_order),
    ("acme_dns", acme_dns),
];
