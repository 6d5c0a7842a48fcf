//! The HTTPS listener's TLS side (rustls with the aws-lc-rs provider; docs/architecture.md,
//! decision 8): TLS 1.2 and 1.3 with ECDHE + AEAD suites only, Extended Master Secret required
//! for TLS 1.2 (RFC 7627; needed before trusting an RFC 9266 exporter value), the server
//! key held by the key store (`hsm`), and an optional client certificate whose chain is
//! validated per request by the service that uses it (EST: `est::peer`).

use std::sync::Arc;

use hsm::{KeyAlgorithm, PrivateKey};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureAlgorithm, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::Error;

/// A key-store key as a rustls signing key: every TLS signature is made by `hsm`.
#[derive(Debug)]
struct StoreSigningKey {
    key: Arc<dyn PrivateKey>,
}

#[derive(Debug)]
struct StoreSigner {
    key: Arc<dyn PrivateKey>,
    tls: SignatureScheme,
    ours: hsm::SignatureScheme,
}

impl Signer for StoreSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.key
            .sign(self.ours, message)
            .map_err(|e| rustls::Error::General(format!("signing failed: {e}")))
    }
    fn scheme(&self) -> SignatureScheme {
        self.tls
    }
}

impl SigningKey for StoreSigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        use hsm::SignatureScheme as H;
        let candidates: &[(SignatureScheme, H)] = match self.key.algorithm() {
            KeyAlgorithm::EcdsaP256 => {
                &[(SignatureScheme::ECDSA_NISTP256_SHA256, H::EcdsaP256Sha256)]
            }
            KeyAlgorithm::EcdsaP384 => {
                &[(SignatureScheme::ECDSA_NISTP384_SHA384, H::EcdsaP384Sha384)]
            }
            _ => &[
                (SignatureScheme::RSA_PSS_SHA256, H::RsaPssSha256),
                (SignatureScheme::RSA_PSS_SHA384, H::RsaPssSha384),
                (SignatureScheme::RSA_PSS_SHA512, H::RsaPssSha512),
                (SignatureScheme::RSA_PKCS1_SHA256, H::RsaPkcs1Sha256),
                (SignatureScheme::RSA_PKCS1_SHA384, H::RsaPkcs1Sha384),
                (SignatureScheme::RSA_PKCS1_SHA512, H::RsaPkcs1Sha512),
            ],
        };
        candidates
            .iter()
            .find(|(s, _)| offered.contains(s))
            .map(|(tls, ours)| {
                Box::new(StoreSigner {
                    key: self.key.clone(),
                    tls: *tls,
                    ours: *ours,
                }) as Box<dyn Signer>
            })
    }
    fn algorithm(&self) -> SignatureAlgorithm {
        if self.key.algorithm().is_rsa() {
            SignatureAlgorithm::RSA
        } else {
            SignatureAlgorithm::ECDSA
        }
    }
}

/// The HTTPS listener's certificate chain and key, replaceable while it serves: the
/// renewal task ([`crate::renewal`]) swaps in a renewed certificate, and every handshake
/// after that presents it (connections already open keep theirs).
#[derive(Debug)]
pub struct TlsIdentity {
    current: std::sync::RwLock<Current>,
}

/// What a [`TlsIdentity`] presents now.
#[derive(Debug)]
struct Current {
    certified: Arc<CertifiedKey>,
    chain: Vec<Vec<u8>>,
    key: Arc<dyn PrivateKey>,
}

impl TlsIdentity {
    fn certified(chain: &[Vec<u8>], key: Arc<dyn PrivateKey>) -> Result<Arc<CertifiedKey>, Error> {
        use der::{Decode, Encode};
        let leaf = chain.first().ok_or_else(|| {
            Error::Config("[server.tls] certificate file holds no certificate".into())
        })?;
        let leaf_cert = x509_cert::Certificate::from_der(leaf)
            .map_err(|e| Error::Config(format!("[server.tls] certificate: {e}")))?;
        let spki = leaf_cert
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(|e| Error::Config(format!("[server.tls] certificate: {e}")))?;
        if spki != key.public_key_der() {
            return Err(Error::Config(
                "[server.tls] the certificate does not match the key".into(),
            ));
        }
        Ok(Arc::new(CertifiedKey {
            cert: chain.iter().cloned().map(CertificateDer::from).collect(),
            key: Arc::new(StoreSigningKey { key }),
            ocsp: None,
        }))
    }

    /// An identity from a chain (leaf first, DER) and the leaf's key; they must match.
    pub fn new(chain: Vec<Vec<u8>>, key: Arc<dyn PrivateKey>) -> Result<TlsIdentity, Error> {
        let certified = Self::certified(&chain, key.clone())?;
        Ok(TlsIdentity {
            current: std::sync::RwLock::new(Current {
                certified,
                chain,
                key,
            }),
        })
    }

    /// Presents `chain` with `key` from the next handshake on; they must match.
    pub fn replace(&self, chain: Vec<Vec<u8>>, key: Arc<dyn PrivateKey>) -> Result<(), Error> {
        let certified = Self::certified(&chain, key.clone())?;
        let mut g = self.current.write().unwrap_or_else(|p| p.into_inner());
        *g = Current {
            certified,
            chain,
            key,
        };
        Ok(())
    }

    /// The chain presented now, leaf first (DER).
    pub fn chain(&self) -> Vec<Vec<u8>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .chain
            .clone()
    }

    /// The key presented now.
    pub fn key(&self) -> Arc<dyn PrivateKey> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .key
            .clone()
    }
}

impl rustls::server::ResolvesServerCert for TlsIdentity {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .certified
                .clone(),
        )
    }
}

/// Asks for a client certificate without requiring one. The handshake proves that the
/// client holds the certificate's key; the chain itself is **not** judged here, because
/// which anchors count depends on the endpoint a request names. Services read the chain
/// from `est::TlsInfo::unverified_chain` and validate it before trusting it.
#[derive(Debug)]
struct DeferredClientAuth {
    hints: Vec<DistinguishedName>,
    algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for DeferredClientAuth {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// The crypto provider: aws-lc-rs with only ECDHE + AEAD suites (RFC 9325 §4.2).
pub fn provider() -> rustls::crypto::CryptoProvider {
    use rustls::crypto::aws_lc_rs::cipher_suite as cs;
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    p.cipher_suites = vec![
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ];
    p
}

/// Builds the server configuration: `identity` (the chain and its key, replaceable while
/// serving), and the subjects of `client_anchors` as acceptable client CA names (none:
/// client certificates are not asked for).
pub fn server_config(
    identity: Arc<TlsIdentity>,
    client_anchors: &[Vec<u8>],
) -> Result<rustls::ServerConfig, Error> {
    use der::{Decode, Encode};
    let provider = Arc::new(provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Error::Config(format!("TLS: {e}")))?;
    let resolver = identity;
    let mut cfg = if client_anchors.is_empty() {
        builder.with_no_client_auth().with_cert_resolver(resolver)
    } else {
        let mut hints = Vec::new();
        for a in client_anchors {
            let c = x509_cert::Certificate::from_der(a)
                .map_err(|e| Error::Config(format!("client CA certificate: {e}")))?;
            let name = c
                .tbs_certificate()
                .subject()
                .to_der()
                .map_err(|e| Error::Config(format!("client CA certificate: {e}")))?;
            hints.push(DistinguishedName::from(name));
        }
        builder
            .with_client_cert_verifier(Arc::new(DeferredClientAuth {
                hints,
                algs: provider.signature_verification_algorithms,
            }))
            .with_cert_resolver(resolver)
    };
    cfg.require_ems = true;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    cfg.ignore_client_order = true;
    Ok(cfg)
}

/// What the connection tells a handler: the client's chain as sent, the RFC 9266
/// tls-exporter value and the protocol version.
pub fn connection_info(conn: &rustls::ServerConnection) -> est::TlsInfo {
    let unverified_chain = conn
        .peer_certificates()
        .map(|c| c.iter().map(|d| d.as_ref().to_vec()).collect())
        .unwrap_or_default();
    let exporter = conn
        .export_keying_material(
            [0u8; est::peer::EXPORTER_LEN],
            est::peer::EXPORTER_LABEL,
            Some(&[]),
        )
        .ok();
    let protocol = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "unknown",
    }
    .to_string();
    est::TlsInfo {
        unverified_chain,
        exporter,
        protocol,
    }
}

/// Reads the listener's certificate chain (leaf first): one or more PEM `CERTIFICATE`
/// blocks (RFC 7468 §5; other blocks are skipped), or one DER certificate. Every
/// certificate is checked to decode (RFC 5280 §4.1); every failure names the file.
pub fn read_chain(path: &std::path::Path) -> Result<Vec<Vec<u8>>, Error> {
    ca_core::authority::read_cert_bundle(path).map_err(|e| match e {
        ca_core::Error::Config(m) => Error::Config(m),
        other => other.into(),
    })
}
