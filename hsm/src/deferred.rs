//! Keys opened when first used. Opening a software key decrypts its file (PBKDF2 with
//! 600,000 iterations, see [`crate::soft::PBKDF2_ITERATIONS`]), so an offline command
//! that loads every CA key up front spends a quarter of a second before it does
//! anything, even a read-only `privca show` (issue 13 item 6). A [`DeferredKey`] knows
//! its label and its public key (from the certificate that names it) and opens the key
//! from its [`KeyStore`] at the first private-key operation; a wrong passphrase is then
//! reported by that operation.

use std::fmt;
use std::sync::{Arc, OnceLock};

use crate::{Error, KeyAlgorithm, KeyStore, OaepHash, PrivateKey, Result, SignatureScheme};

/// A key of a [`KeyStore`], opened at its first private-key operation (see the
/// [module docs](self)). Its label, algorithm and public key are known without opening
/// it; once opened it must have the public key it was made with.
pub struct DeferredKey {
    label: String,
    algorithm: KeyAlgorithm,
    spki_der: Vec<u8>,
    keys: Arc<dyn KeyStore>,
    opened: OnceLock<Arc<dyn PrivateKey>>,
}

impl fmt::Debug for DeferredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeferredKey")
            .field("label", &self.label)
            .field("algorithm", &self.algorithm)
            .field("opened", &self.opened.get().is_some())
            .finish_non_exhaustive()
    }
}

impl DeferredKey {
    /// The key `label` of `keys`, whose public key is `spki_der` (a DER
    /// SubjectPublicKeyInfo, RFC 5280 §4.1.2.7, as its certificate carries it). Nothing
    /// is read from the key store yet.
    ///
    /// Fails with [`Error::BadKey`] or [`Error::Unsupported`] when `spki_der` is not a
    /// public key of a [`KeyAlgorithm`].
    pub fn new(keys: Arc<dyn KeyStore>, label: &str, spki_der: &[u8]) -> Result<DeferredKey> {
        let algorithm = crate::spki_algorithm(spki_der)?;
        Ok(DeferredKey {
            label: label.to_string(),
            algorithm,
            spki_der: spki_der.to_vec(),
            keys,
            opened: OnceLock::new(),
        })
    }

    /// Whether the key has been opened.
    pub fn is_open(&self) -> bool {
        self.opened.get().is_some()
    }

    /// The opened key: opens it on the first call. A failure (wrong passphrase, missing
    /// file, a key that does not have the expected public key) is returned to that
    /// operation and the next one tries again.
    pub fn key(&self) -> Result<&Arc<dyn PrivateKey>> {
        if let Some(k) = self.opened.get() {
            return Ok(k);
        }
        let key = self.keys.open(&self.label)?;
        if key.public_key_der() != self.spki_der.as_slice() {
            return Err(Error::BadKey(format!(
                "key {:?} is not the key of its certificate (its public key differs)",
                self.label
            )));
        }
        // Two threads may open it at once; both got the same key, one is kept.
        let _ = self.opened.set(key);
        self.opened
            .get()
            .ok_or_else(|| Error::Crypto(format!("key {:?} could not be kept", self.label)))
    }
}

impl PrivateKey for DeferredKey {
    fn label(&self) -> &str {
        &self.label
    }

    fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    fn public_key_der(&self) -> &[u8] {
        &self.spki_der
    }

    fn sign(&self, scheme: SignatureScheme, message: &[u8]) -> Result<Vec<u8>> {
        self.key()?.sign(scheme, message)
    }

    fn decrypt_pkcs1v15(&self, ciphertext: &[u8]) -> Result<Vec<u8>> {
        self.key()?.decrypt_pkcs1v15(ciphertext)
    }

    fn decrypt_oaep(&self, hash: OaepHash, ciphertext: &[u8]) -> Result<Vec<u8>> {
        self.key()?.decrypt_oaep(hash, ciphertext)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::soft::SoftKeyStore;

    fn store(dir: &std::path::Path, passphrase: &str) -> Arc<dyn KeyStore> {
        Arc::new(
            SoftKeyStore::open(dir, crate::Secret::new(passphrase.as_bytes().to_vec())).unwrap(),
        )
    }

    #[test]
    fn opens_at_the_first_signature_and_signs_like_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let keys = store(dir.path(), "pass");
        let real = keys.generate("ca", KeyAlgorithm::EcdsaP256).unwrap();
        let d = DeferredKey::new(keys, "ca", real.public_key_der()).unwrap();
        assert!(!d.is_open());
        assert_eq!(d.algorithm(), KeyAlgorithm::EcdsaP256);
        assert_eq!(d.label(), "ca");
        let sig = d.sign(SignatureScheme::EcdsaP256Sha256, b"msg").unwrap();
        assert!(d.is_open());
        crate::verify(
            SignatureScheme::EcdsaP256Sha256,
            real.public_key_der(),
            b"msg",
            &sig,
        )
        .unwrap();
    }

    #[test]
    fn a_wrong_passphrase_fails_the_operation_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let real = store(dir.path(), "right")
            .generate("ca", KeyAlgorithm::EcdsaP256)
            .unwrap();
        let d = DeferredKey::new(store(dir.path(), "wrong"), "ca", real.public_key_der()).unwrap();
        let e = d
            .sign(SignatureScheme::EcdsaP256Sha256, b"msg")
            .unwrap_err();
        assert!(e.to_string().contains("wrong passphrase"), "{e}");
        assert!(!d.is_open());
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let keys = store(dir.path(), "pass");
        keys.generate("ca", KeyAlgorithm::EcdsaP256).unwrap();
        let other = keys.generate("other", KeyAlgorithm::EcdsaP256).unwrap();
        let d = DeferredKey::new(keys, "ca", other.public_key_der()).unwrap();
        let e = d
            .sign(SignatureScheme::EcdsaP256Sha256, b"msg")
            .unwrap_err();
        assert!(matches!(e, Error::BadKey(_)), "{e}");
        assert!(!d.is_open());
    }
}
