//! A software key in memory (aws-lc-rs objects) and its operations: signing with RSA
//! PKCS#1 v1.5 / PSS and ECDSA, RSA decryption (PKCS#1 v1.5 and OAEP), key generation,
//! and key pairs made to be handed out.

use std::fmt;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OAEP_SHA384_MGF1SHA384,
    OAEP_SHA512_MGF1SHA512, OaepAlgorithm, OaepPrivateDecryptingKey, Pkcs1PrivateDecryptingKey,
    PrivateDecryptingKey,
};
use aws_lc_rs::signature::{
    self as sig, EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair as _, RsaEncoding, RsaKeyPair,
};
use const_oid::ObjectIdentifier;
use const_oid::db::rfc5912::{ID_EC_PUBLIC_KEY, RSA_ENCRYPTION};
use der::Decode;
use pkcs8::PrivateKeyInfoRef;
use zeroize::Zeroizing;

use crate::public::{ec_algorithm, ec_spki, rsa_algorithm, rsa_spki, uint_bits};
use crate::{Error, KeyAlgorithm, OaepHash, PrivateKey, Result, Secret, SignatureScheme};

/// Generates a key with aws-lc-rs and returns its unencrypted PKCS#8 v1 DER.
pub(super) fn generate_pkcs8(algorithm: KeyAlgorithm) -> Result<Zeroizing<Vec<u8>>> {
    let crypto = |what: &str| {
        let what = what.to_owned();
        move |_| Error::Crypto(format!("generating {algorithm} key: {what}"))
    };
    let der = match algorithm {
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
            let size = match algorithm {
                KeyAlgorithm::Rsa2048 => KeySize::Rsa2048,
                KeyAlgorithm::Rsa3072 => KeySize::Rsa3072,
                _ => KeySize::Rsa4096,
            };
            let kp = RsaKeyPair::generate(size).map_err(crypto("key generation"))?;
            let der: Pkcs8V1Der<'static> = kp.as_der().map_err(crypto("PKCS#8 export"))?;
            der.as_ref().to_vec()
        }
        KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => {
            let kp = EcdsaKeyPair::generate(ecdsa_signing_alg(algorithm))
                .map_err(crypto("key generation"))?;
            kp.to_pkcs8v1()
                .map_err(crypto("PKCS#8 export"))?
                .as_ref()
                .to_vec()
        }
    };
    Ok(Zeroizing::new(der))
}

fn ecdsa_signing_alg(algorithm: KeyAlgorithm) -> &'static EcdsaSigningAlgorithm {
    if algorithm == KeyAlgorithm::EcdsaP384 {
        &sig::ECDSA_P384_SHA384_ASN1_SIGNING
    } else {
        &sig::ECDSA_P256_SHA256_ASN1_SIGNING
    }
}

/// A software private key, held in memory as aws-lc-rs objects.
pub struct SoftKey {
    pub(super) label: String,
    pub(super) algorithm: KeyAlgorithm,
    pub(super) spki: Vec<u8>,
    pub(super) inner: Inner,
}

/// The aws-lc-rs objects of a key.
pub(super) enum Inner {
    Rsa {
        signing: RsaKeyPair,
        pkcs1: Pkcs1PrivateDecryptingKey,
        oaep: OaepPrivateDecryptingKey,
    },
    /// aws-lc-rs binds the signing algorithm to the key pair; each curve has exactly one
    /// scheme here (P-256 with SHA-256, P-384 with SHA-384), so one key pair suffices.
    Ecdsa(EcdsaKeyPair),
}

impl fmt::Debug for SoftKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftKey")
            .field("label", &self.label)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl SoftKey {
    /// Generates a key that lives only in memory and is never written anywhere. Meant for
    /// tests (no passphrase derivation, no files) and for short-lived keys; a CA's keys belong
    /// in a [`SoftKeyStore`](super::SoftKeyStore).
    pub fn generate_ephemeral(label: &str, algorithm: KeyAlgorithm) -> Result<Self> {
        let pkcs8 = generate_pkcs8(algorithm)?;
        SoftKey::from_pkcs8(label, &pkcs8)
    }

    /// Loads a key from an unencrypted PKCS#8 `PrivateKeyInfo` (DER). The algorithm is taken
    /// from the PKCS#8 AlgorithmIdentifier: `rsaEncryption` (2048, 3072 or 4096 bits) or
    /// `id-ecPublicKey` on `prime256v1` / `secp384r1`. Anything else is
    /// [`Error::Unsupported`]; malformed or inconsistent keys are [`Error::BadKey`].
    pub fn from_pkcs8(label: &str, pkcs8_der: &[u8]) -> Result<Self> {
        let pki = PrivateKeyInfoRef::from_der(pkcs8_der).map_err(|e| {
            Error::BadKey(format!(
                "key {label:?}: not a PKCS#8 PrivateKeyInfo: {e}{}",
                not_pkcs8_hint(pkcs8_der)
            ))
        })?;
        let rejected = |e: aws_lc_rs::error::KeyRejected| {
            Error::BadKey(format!("key {label:?}: rejected by aws-lc: {e}"))
        };
        let oid = pki.algorithm.oid;
        let (algorithm, inner) = if oid == RSA_ENCRYPTION {
            // Size check first, so that an RSA-1024 key is reported as unsupported rather than
            // as a key aws-lc rejects.
            let rsa =
                pkcs1::RsaPrivateKeyRef::from_der(pki.private_key.as_bytes()).map_err(|e| {
                    Error::BadKey(format!("key {label:?}: bad PKCS#1 RSAPrivateKey: {e}"))
                })?;
            let algorithm =
                rsa_algorithm(uint_bits(rsa.modulus.as_bytes())).map_err(|e| in_key(label, e))?;
            let signing = RsaKeyPair::from_pkcs8(pkcs8_der).map_err(rejected)?;
            let decrypting = PrivateDecryptingKey::from_pkcs8(pkcs8_der).map_err(rejected)?;
            let crypto = |_| Error::Crypto("RSA decryption key setup failed".to_owned());
            let pkcs1 = Pkcs1PrivateDecryptingKey::new(decrypting.clone()).map_err(crypto)?;
            let oaep = OaepPrivateDecryptingKey::new(decrypting).map_err(crypto)?;
            (
                algorithm,
                Inner::Rsa {
                    signing,
                    pkcs1,
                    oaep,
                },
            )
        } else if oid == ID_EC_PUBLIC_KEY {
            let params = pki.algorithm.parameters.ok_or_else(|| {
                Error::BadKey(format!("key {label:?}: EC key without curve parameters"))
            })?;
            let curve = params.decode_as::<ObjectIdentifier>().map_err(|_| {
                Error::Unsupported(format!(
                    "key {label:?}: EC key with explicit curve parameters (only named curves are supported)"
                ))
            })?;
            let algorithm = ec_algorithm(curve).map_err(|e| in_key(label, e))?;
            let kp = EcdsaKeyPair::from_pkcs8(ecdsa_signing_alg(algorithm), pkcs8_der)
                .map_err(rejected)?;
            (algorithm, Inner::Ecdsa(kp))
        } else {
            return Err(Error::Unsupported(format!(
                "key {label:?}: key algorithm {oid} (only RSA and ECDSA P-256/P-384 are supported)"
            )));
        };

        let spki = match &inner {
            Inner::Rsa { signing, .. } => rsa_spki(signing.public_key().as_ref())?,
            Inner::Ecdsa(kp) => ec_spki(algorithm, kp.public_key().as_ref())?,
        };

        Ok(SoftKey {
            label: label.to_owned(),
            algorithm,
            spki,
            inner,
        })
    }
}

/// Prefixes an `Unsupported` message with the key's label.
fn in_key(label: &str, e: Error) -> Error {
    match e {
        Error::Unsupported(msg) => Error::Unsupported(format!("key {label:?}: {msg}")),
        other => other,
    }
}

/// Recognises the two "traditional" key formats people most often hand over by mistake
/// (OpenSSL 3 `genpkey -outform DER` writes SEC1 for EC keys) and says how to convert them.
fn not_pkcs8_hint(der_bytes: &[u8]) -> &'static str {
    if pkcs1::RsaPrivateKeyRef::from_der(der_bytes).is_ok() {
        return " (this is a PKCS#1 RSAPrivateKey, not PKCS#8; convert it with `openssl pkcs8 -topk8 -nocrypt -outform DER`)";
    }
    // SEC1 ECPrivateKey ::= SEQUENCE { version INTEGER (1), privateKey OCTET STRING, ... }
    // whereas PKCS#8 has an AlgorithmIdentifier SEQUENCE after the version.
    let sec1 = (|| -> der::Result<bool> {
        let mut reader = der::SliceReader::new(der_bytes)?;
        let header = der::Header::decode(&mut reader)?;
        if header.tag() != der::Tag::Sequence {
            return Ok(false);
        }
        let version = u8::decode(&mut reader)?;
        Ok(version == 1 && der::Tag::peek(&reader)? == der::Tag::OctetString)
    })()
    .unwrap_or(false);
    if sec1 {
        " (this is a SEC1 ECPrivateKey, not PKCS#8; convert it with `openssl pkcs8 -topk8 -nocrypt -outform DER`)"
    } else {
        ""
    }
}

fn rsa_encoding(scheme: SignatureScheme) -> Option<&'static dyn RsaEncoding> {
    Some(match scheme {
        SignatureScheme::RsaPkcs1Sha256 => &sig::RSA_PKCS1_SHA256,
        SignatureScheme::RsaPkcs1Sha384 => &sig::RSA_PKCS1_SHA384,
        SignatureScheme::RsaPkcs1Sha512 => &sig::RSA_PKCS1_SHA512,
        SignatureScheme::RsaPssSha256 => &sig::RSA_PSS_SHA256,
        SignatureScheme::RsaPssSha384 => &sig::RSA_PSS_SHA384,
        SignatureScheme::RsaPssSha512 => &sig::RSA_PSS_SHA512,
        SignatureScheme::EcdsaP256Sha256 | SignatureScheme::EcdsaP384Sha384 => return None,
    })
}

fn oaep_algorithm(hash: OaepHash) -> &'static OaepAlgorithm {
    match hash {
        OaepHash::Sha1 => &OAEP_SHA1_MGF1SHA1,
        OaepHash::Sha256 => &OAEP_SHA256_MGF1SHA256,
        OaepHash::Sha384 => &OAEP_SHA384_MGF1SHA384,
        OaepHash::Sha512 => &OAEP_SHA512_MGF1SHA512,
    }
}

impl SoftKey {
    fn unfit(&self, scheme: SignatureScheme) -> Error {
        Error::Unsupported(format!(
            "signature scheme {scheme:?} cannot be used with {} key {:?}",
            self.algorithm, self.label
        ))
    }

    fn no_decrypt(&self) -> Error {
        Error::Unsupported(format!(
            "key {:?} is {}; only RSA keys decrypt",
            self.label, self.algorithm
        ))
    }
}

impl PrivateKey for SoftKey {
    fn label(&self) -> &str {
        &self.label
    }

    fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    fn public_key_der(&self) -> &[u8] {
        &self.spki
    }

    fn sign(&self, scheme: SignatureScheme, message: &[u8]) -> Result<Vec<u8>> {
        if !scheme.fits(self.algorithm) {
            return Err(self.unfit(scheme));
        }
        let rng = SystemRandom::new();
        match &self.inner {
            Inner::Rsa { signing, .. } => {
                let encoding = rsa_encoding(scheme).ok_or_else(|| self.unfit(scheme))?;
                let mut signature = vec![0u8; signing.public_modulus_len()];
                signing
                    .sign(encoding, &rng, message, &mut signature)
                    .map_err(|_| Error::Crypto("RSA signing failed".to_owned()))?;
                Ok(signature)
            }
            Inner::Ecdsa(kp) => {
                // `fits` matched the scheme to the curve, and the key pair was built with the
                // one signing algorithm of that curve.
                let signature = kp
                    .sign(&rng, message)
                    .map_err(|_| Error::Crypto("ECDSA signing failed".to_owned()))?;
                Ok(signature.as_ref().to_vec())
            }
        }
    }

    fn decrypt_pkcs1v15(&self, ciphertext: &[u8]) -> Result<Vec<u8>> {
        let Inner::Rsa { pkcs1, .. } = &self.inner else {
            return Err(self.no_decrypt());
        };
        let mut out = Zeroizing::new(vec![0u8; pkcs1.min_output_size()]);
        let plaintext = pkcs1
            .decrypt(ciphertext, &mut out)
            .map_err(|_| Error::Decrypt)?;
        Ok(plaintext.to_vec())
    }

    fn decrypt_oaep(&self, hash: OaepHash, ciphertext: &[u8]) -> Result<Vec<u8>> {
        let Inner::Rsa { oaep, .. } = &self.inner else {
            return Err(self.no_decrypt());
        };
        let mut out = Zeroizing::new(vec![0u8; oaep.min_output_size()]);
        let plaintext = oaep
            .decrypt(oaep_algorithm(hash), ciphertext, &mut out, None)
            .map_err(|_| Error::Decrypt)?;
        Ok(plaintext.to_vec())
    }
}

/// A key pair made for a subscriber (`privca issue --generate-key`): the CA hands the
/// private key out once and keeps no copy.
pub struct ExportableKey {
    /// The private key, unencrypted PKCS#8 DER. Wiped on drop; never log it.
    pub pkcs8_der: Secret,
    /// Its SubjectPublicKeyInfo, DER.
    pub spki_der: Vec<u8>,
    /// Its algorithm.
    pub algorithm: KeyAlgorithm,
}

impl fmt::Debug for ExportableKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportableKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Generates a key pair to hand out (not stored, not a CA key).
pub fn generate_exportable(algorithm: KeyAlgorithm) -> Result<ExportableKey> {
    let pkcs8 = generate_pkcs8(algorithm)?;
    let key = SoftKey::from_pkcs8("exportable", &pkcs8)?;
    Ok(ExportableKey {
        spki_der: key.public_key_der().to_vec(),
        algorithm: key.algorithm(),
        pkcs8_der: Secret::new(pkcs8.to_vec()),
    })
}
