//! Key custody for privca.
//!
//! Every private-key operation of the CA goes through this crate: signing certificates,
//! CRLs and OCSP responses, and (for SCEP) decrypting RSA key-transport envelopes.
//! The traits here are synchronous because PKCS#11 calls block; callers that live on an
//! async runtime move calls to a blocking pool.
//!
//! Private-key operations never use the `rsa` crate (RUSTSEC-2023-0071, docs/architecture.md,
//! decision 4): the software backend ([`soft`]) signs and decrypts with aws-lc-rs, the
//! PKCS#11 backend ([`pkcs11`]) asks a hardware security module through `cryptoki`.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub mod deferred;
pub mod pkcs11;
pub mod probe;
pub mod public;
pub mod soft;

mod error;
mod secret;

pub use deferred::DeferredKey;
pub use error::Error;
pub use public::{rsa_modulus_bits, spki_algorithm, verify, verify_received};
pub use secret::{Secret, SecretSource, check_private_file, ct_eq, read_private_file};

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Test support (feature `testing`).
#[cfg(any(test, feature = "testing"))]
pub mod testing;

/// A key pair type the CA can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyAlgorithm {
    /// RSA with a 2048-bit modulus.
    #[serde(rename = "rsa-2048", alias = "rsa2048")]
    Rsa2048,
    /// RSA with a 3072-bit modulus.
    #[serde(rename = "rsa-3072", alias = "rsa3072")]
    Rsa3072,
    /// RSA with a 4096-bit modulus.
    #[serde(rename = "rsa-4096", alias = "rsa4096")]
    Rsa4096,
    /// ECDSA on NIST P-256 (secp256r1).
    EcdsaP256,
    /// ECDSA on NIST P-384 (secp384r1).
    EcdsaP384,
}

impl KeyAlgorithm {
    /// All algorithms, in the order they are listed to users.
    pub const ALL: [KeyAlgorithm; 5] = [
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa3072,
        KeyAlgorithm::Rsa4096,
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
    ];

    /// The name used in configuration files and on the command line (`rsa-2048`, `ecdsa-p256`).
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::Rsa2048 => "rsa-2048",
            KeyAlgorithm::Rsa3072 => "rsa-3072",
            KeyAlgorithm::Rsa4096 => "rsa-4096",
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::EcdsaP384 => "ecdsa-p384",
        }
    }

    /// Parses a name as produced by [`KeyAlgorithm::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// True for the RSA algorithms.
    pub fn is_rsa(self) -> bool {
        matches!(
            self,
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096
        )
    }

    /// The signature scheme a CA with this key uses unless told otherwise:
    /// RSA PKCS#1 v1.5 with SHA-256, ECDSA with the hash matching the curve.
    pub fn default_scheme(self) -> SignatureScheme {
        match self {
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                SignatureScheme::RsaPkcs1Sha256
            }
            KeyAlgorithm::EcdsaP256 => SignatureScheme::EcdsaP256Sha256,
            KeyAlgorithm::EcdsaP384 => SignatureScheme::EcdsaP384Sha384,
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A signature scheme: the key type, padding and digest of a signature.
///
/// ECDSA signatures are returned DER-encoded (`Ecdsa-Sig-Value`, RFC 3279 §2.2.3), which is
/// what X.509, CRLs, OCSP and CMS carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureScheme {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 §8.2).
    RsaPkcs1Sha256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RsaPkcs1Sha384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RsaPkcs1Sha512,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256, 32-byte salt (RFC 8017 §8.1, RFC 4055).
    RsaPssSha256,
    /// RSASSA-PSS with SHA-384, MGF1-SHA-384, 48-byte salt.
    RsaPssSha384,
    /// RSASSA-PSS with SHA-512, MGF1-SHA-512, 64-byte salt.
    RsaPssSha512,
    /// ECDSA on P-256 with SHA-256 (RFC 5758 §3.2).
    EcdsaP256Sha256,
    /// ECDSA on P-384 with SHA-384.
    EcdsaP384Sha384,
}

impl SignatureScheme {
    /// The curve an ECDSA scheme needs; `None` for the RSA schemes.
    pub fn fits_key_type(self) -> Option<KeyAlgorithm> {
        match self {
            SignatureScheme::EcdsaP256Sha256 => Some(KeyAlgorithm::EcdsaP256),
            SignatureScheme::EcdsaP384Sha384 => Some(KeyAlgorithm::EcdsaP384),
            _ => None,
        }
    }

    /// The same scheme described as a received signature algorithm.
    pub fn received(self) -> ReceivedSignature {
        match self {
            SignatureScheme::RsaPkcs1Sha256 => ReceivedSignature::RsaPkcs1(Digest::Sha256),
            SignatureScheme::RsaPkcs1Sha384 => ReceivedSignature::RsaPkcs1(Digest::Sha384),
            SignatureScheme::RsaPkcs1Sha512 => ReceivedSignature::RsaPkcs1(Digest::Sha512),
            SignatureScheme::RsaPssSha256 => ReceivedSignature::RsaPss(Digest::Sha256),
            SignatureScheme::RsaPssSha384 => ReceivedSignature::RsaPss(Digest::Sha384),
            SignatureScheme::RsaPssSha512 => ReceivedSignature::RsaPss(Digest::Sha512),
            SignatureScheme::EcdsaP256Sha256 => ReceivedSignature::Ecdsa(Digest::Sha256),
            SignatureScheme::EcdsaP384Sha384 => ReceivedSignature::Ecdsa(Digest::Sha384),
        }
    }

    /// True when a key of `alg` can make signatures of this scheme.
    pub fn fits(self, alg: KeyAlgorithm) -> bool {
        match self {
            SignatureScheme::RsaPkcs1Sha256
            | SignatureScheme::RsaPkcs1Sha384
            | SignatureScheme::RsaPkcs1Sha512
            | SignatureScheme::RsaPssSha256
            | SignatureScheme::RsaPssSha384
            | SignatureScheme::RsaPssSha512 => alg.is_rsa(),
            SignatureScheme::EcdsaP256Sha256 => alg == KeyAlgorithm::EcdsaP256,
            SignatureScheme::EcdsaP384Sha384 => alg == KeyAlgorithm::EcdsaP384,
        }
    }
}

/// Hash used by RSAES-OAEP (both the label hash and MGF1), RFC 8017 §7.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OaepHash {
    /// SHA-1: the default of RFC 8017 and what Windows SCEP clients send.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

/// Public facts about a stored key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// The label the key is found by.
    pub label: String,
    /// Its algorithm.
    pub algorithm: KeyAlgorithm,
    /// Its SubjectPublicKeyInfo, DER.
    pub public_key_der: Vec<u8>,
}

/// A private key held by a backend. The private half never leaves the backend through
/// this trait.
pub trait PrivateKey: Send + Sync + fmt::Debug {
    /// The label the key is stored under.
    fn label(&self) -> &str;

    /// The key's algorithm.
    fn algorithm(&self) -> KeyAlgorithm;

    /// The SubjectPublicKeyInfo (RFC 5280 §4.1.2.7), DER-encoded.
    fn public_key_der(&self) -> &[u8];

    /// Signs `message` (the whole message, hashed inside) with `scheme`.
    ///
    /// Fails with [`Error::Unsupported`] when the scheme does not fit the key.
    fn sign(&self, scheme: SignatureScheme, message: &[u8]) -> Result<Vec<u8>>;

    /// RSAES-PKCS1-v1_5 decryption (RFC 8017 §7.2.2) of a key-transport block.
    ///
    /// Callers must not reveal to a peer whether the padding was good: on any error they
    /// continue with a random key and fail later on the same path (Bleichenbacher).
    fn decrypt_pkcs1v15(&self, ciphertext: &[u8]) -> Result<Vec<u8>>;

    /// RSAES-OAEP decryption (RFC 8017 §7.1.2) with the given hash and an empty label.
    fn decrypt_oaep(&self, hash: OaepHash, ciphertext: &[u8]) -> Result<Vec<u8>>;
}

/// What a generated key may be used for. A PKCS#11 token enforces it (`CKA_SIGN`,
/// `CKA_DECRYPT`); a software key can do whatever its algorithm can.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyUse {
    /// Signatures only: CA, OCSP responder and TLS server keys.
    Sign,
    /// Signatures and RSA decryption: the SCEP RA key, which signs replies and decrypts
    /// the requests' pkcsPKIEnvelope (RFC 8894 §3.2.2).
    SignAndDecrypt,
}

/// A place keys live: files on disk (software backend) or a token (PKCS#11).
pub trait KeyStore: Send + Sync {
    /// Creates a new signing key under `label` ([`KeyUse::Sign`]). Fails with
    /// [`Error::Exists`] if the label is taken.
    fn generate(&self, label: &str, algorithm: KeyAlgorithm) -> Result<Arc<dyn PrivateKey>>;

    /// Creates a new key under `label` for `uses`.
    fn generate_for(
        &self,
        label: &str,
        algorithm: KeyAlgorithm,
        uses: KeyUse,
    ) -> Result<Arc<dyn PrivateKey>> {
        let _ = uses;
        self.generate(label, algorithm)
    }

    /// Imports an unencrypted PKCS#8 `PrivateKeyInfo` (DER) under `label`.
    fn import_pkcs8(&self, label: &str, pkcs8_der: &[u8]) -> Result<Arc<dyn PrivateKey>>;

    /// Opens the key stored under `label`. Fails with [`Error::NotFound`] if there is none.
    fn open(&self, label: &str) -> Result<Arc<dyn PrivateKey>>;

    /// Lists the stored keys.
    fn list(&self) -> Result<Vec<KeyInfo>>;

    /// A short name of the backend (`soft`, `pkcs11`), for health reports.
    fn backend_name(&self) -> &'static str {
        "soft"
    }

    /// Checks that the backend can serve key operations now (for `/healthz`). A backend
    /// that can lose its device (PKCS#11) probes it, within bounded time; files are always
    /// there.
    fn health(&self) -> Result<()> {
        Ok(())
    }
}

/// A digest named by a received signature algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Digest {
    /// SHA-1: only where a caller accepts legacy signatures.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

/// How a signature someone else made was computed, as its AlgorithmIdentifier says
/// (RFC 4055, RFC 5758). Unlike [`SignatureScheme`] the hash need not match the curve:
/// OpenSSL, for one, signs P-384 CSRs with ecdsa-with-SHA256.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceivedSignature {
    /// RSASSA-PKCS1-v1_5.
    RsaPkcs1(Digest),
    /// RSASSA-PSS with MGF1 of the same digest.
    RsaPss(Digest),
    /// ECDSA on the key's curve.
    Ecdsa(Digest),
}

#[cfg(test)]
mod key_algorithm_names {
    use super::KeyAlgorithm;

    /// The configuration, the admin API and the CLI spell algorithms the same way
    /// (`rsa-2048`); the spelling `rsa2048` that earlier files used still parses.
    #[test]
    fn serde_names_are_the_cli_names() {
        for alg in KeyAlgorithm::ALL {
            let json = serde_json::to_string(&alg).expect("serialise");
            assert_eq!(json, format!("\"{}\"", alg.name()));
            let back: KeyAlgorithm = serde_json::from_str(&json).expect("parse");
            assert_eq!(back, alg);
        }
        let old: KeyAlgorithm = serde_json::from_str("\"rsa3072\"").expect("alias");
        assert_eq!(old, KeyAlgorithm::Rsa3072);
    }
}
