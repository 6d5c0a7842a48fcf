//! A key on the token and its operations: signing (RSA PKCS#1 v1.5 and PSS on the token,
//! ECDSA over a digest made here) and RSA decryption with one uniform failure.

use std::fmt;
use std::sync::{Arc, Mutex};

use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState};
use cryptoki::types::Ulong;
use der::Encode;
use der::asn1::UintRef;

use super::pool::{OpError, Pool, ck, stale_handle};
use super::store::{KeyRef, find, hex};
use crate::{Error, KeyAlgorithm, OaepHash, PrivateKey, Result, SignatureScheme};

/// `Ecdsa-Sig-Value` (RFC 3279 §2.2.3).
#[derive(der::Sequence)]
struct EcdsaSigValue<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

/// Converts the raw `r‖s` of `CKM_ECDSA` (PKCS#11 §2.3.1) into DER.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Result<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return Err(Error::Crypto(format!(
            "ECDSA signature from the token has odd length {}",
            raw.len()
        )));
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let enc = |e: der::Error| Error::Crypto(format!("encoding ECDSA signature: {e}"));
    EcdsaSigValue {
        r: UintRef::new(r).map_err(enc)?,
        s: UintRef::new(s).map_err(enc)?,
    }
    .to_der()
    .map_err(enc)
}

/// A private key on the token.
pub struct Pkcs11Key {
    pub(super) pool: Arc<Pool>,
    pub(super) label: String,
    pub(super) id: Vec<u8>,
    pub(super) algorithm: KeyAlgorithm,
    pub(super) spki: Vec<u8>,
    /// The object handle, valid for one connection generation.
    pub(super) handle: Mutex<Option<(u64, ObjectHandle)>>,
}

impl fmt::Debug for Pkcs11Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Key")
            .field("label", &self.label)
            .field("id", &hex(&self.id))
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Key {
    /// The key's `CKA_ID`.
    pub fn id(&self) -> &[u8] {
        &self.id
    }

    /// Reads attributes of the private key object (for tests and audits).
    pub fn private_attributes(&self, types: &[AttributeType]) -> Result<Vec<Attribute>> {
        self.with_key(|s, h| s.get_attributes(h, types))
            .map_err(|e| e.into_error("reading key attributes"))
    }

    /// Runs `f` with the key's handle in a borrowed session, finding the handle again
    /// when the connection changed or the handle went stale.
    fn with_key<T>(
        &self,
        mut f: impl FnMut(&Session, ObjectHandle) -> Result<T, CkError>,
    ) -> Result<T, OpError> {
        let key_ref = KeyRef::Id(self.id.clone());
        self.pool.run(|s, generation| {
            let cached = *self.handle.lock().unwrap_or_else(|p| p.into_inner());
            let h = match cached {
                Some((g, h)) if g == generation => h,
                _ => self.find_handle(s, &key_ref, generation)?,
            };
            match f(s, h) {
                Err(e) if stale_handle(&e) => {
                    let h = self.find_handle(s, &key_ref, generation)?;
                    f(s, h)
                }
                other => other,
            }
        })
    }

    fn find_handle(
        &self,
        s: &Session,
        key_ref: &KeyRef,
        generation: u64,
    ) -> Result<ObjectHandle, CkError> {
        let Some(h) = find(s, ObjectClass::PRIVATE_KEY, key_ref)?.first().copied() else {
            // Private objects are invisible without a login: when the login was lost
            // (someone called C_Logout, the token was reset) say so, so that the caller
            // reconnects. Logged in and still not found: the key was there when it was
            // opened, so the token most likely went away under the module (SoftHSM then
            // finds nothing, even after the token is back, until the module is initialised
            // again): report it as a removed device, which re-initialises the module. A key
            // that was really deleted then fails as "backend unavailable" after the retries.
            let state = s.get_session_info()?.session_state();
            let rv = if matches!(state, SessionState::RwUser | SessionState::RoUser) {
                tracing::warn!(key = %self.label, "key no longer found on the token; treating the token as gone");
                RvError::DeviceRemoved
            } else {
                RvError::UserNotLoggedIn
            };
            return Err(CkError::Pkcs11(rv, Function::FindObjects));
        };
        *self.handle.lock().unwrap_or_else(|p| p.into_inner()) = Some((generation, h));
        Ok(h)
    }

    fn unfit(&self, scheme: SignatureScheme) -> Error {
        Error::Unsupported(format!(
            "signature scheme {scheme:?} cannot be used with {} key {:?}",
            self.algorithm, self.label
        ))
    }

    fn decrypt(&self, mechanism: &Mechanism<'_>, ciphertext: &[u8]) -> Result<Vec<u8>> {
        if !self.algorithm.is_rsa() {
            return Err(Error::Unsupported(format!(
                "key {:?} is {}; only RSA keys decrypt",
                self.label, self.algorithm
            )));
        }
        match self.with_key(|s, h| s.decrypt(mechanism, h, ciphertext)) {
            Ok(plain) => Ok(plain),
            // C_DecryptInit never sees the ciphertext: a refusal there (mechanism or
            // parameters not supported by the token) is a configuration matter.
            Err(OpError::Token(e @ CkError::Pkcs11(_, Function::DecryptInit))) => {
                Err(Error::Unsupported(format!(
                    "the token refuses {} decryption with key {:?}: {}",
                    mechanism.mechanism_type(),
                    self.label,
                    ck(&e)
                )))
            }
            // Whatever the token said about the ciphertext: one answer (Bleichenbacher).
            Err(OpError::Token(_)) => Err(Error::Decrypt),
            Err(OpError::Backend(e)) => Err(e),
        }
    }
}

fn pss(hash: MechanismType, mgf: PkcsMgfType, salt: u64) -> PkcsPssParams {
    PkcsPssParams {
        hash_alg: hash,
        mgf,
        s_len: Ulong::new(salt),
    }
}

impl PrivateKey for Pkcs11Key {
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
        use aws_lc_rs::digest;
        // RSA mechanisms hash on the token; CKM_ECDSA signs a digest made here.
        let ecdsa_digest;
        let (mechanism, data): (Mechanism<'_>, &[u8]) = match scheme {
            SignatureScheme::RsaPkcs1Sha256 => (Mechanism::Sha256RsaPkcs, message),
            SignatureScheme::RsaPkcs1Sha384 => (Mechanism::Sha384RsaPkcs, message),
            SignatureScheme::RsaPkcs1Sha512 => (Mechanism::Sha512RsaPkcs, message),
            SignatureScheme::RsaPssSha256 => (
                Mechanism::Sha256RsaPkcsPss(pss(
                    MechanismType::SHA256,
                    PkcsMgfType::MGF1_SHA256,
                    32,
                )),
                message,
            ),
            SignatureScheme::RsaPssSha384 => (
                Mechanism::Sha384RsaPkcsPss(pss(
                    MechanismType::SHA384,
                    PkcsMgfType::MGF1_SHA384,
                    48,
                )),
                message,
            ),
            SignatureScheme::RsaPssSha512 => (
                Mechanism::Sha512RsaPkcsPss(pss(
                    MechanismType::SHA512,
                    PkcsMgfType::MGF1_SHA512,
                    64,
                )),
                message,
            ),
            SignatureScheme::EcdsaP256Sha256 => {
                ecdsa_digest = digest::digest(&digest::SHA256, message);
                (Mechanism::Ecdsa, ecdsa_digest.as_ref())
            }
            SignatureScheme::EcdsaP384Sha384 => {
                ecdsa_digest = digest::digest(&digest::SHA384, message);
                (Mechanism::Ecdsa, ecdsa_digest.as_ref())
            }
        };
        let signature = self
            .with_key(|s, h| s.sign(&mechanism, h, data))
            .map_err(|e| e.into_error(&format!("signing with key {:?}", self.label)))?;
        if matches!(
            scheme,
            SignatureScheme::EcdsaP256Sha256 | SignatureScheme::EcdsaP384Sha384
        ) {
            ecdsa_raw_to_der(&signature)
        } else {
            Ok(signature)
        }
    }

    fn decrypt_pkcs1v15(&self, ciphertext: &[u8]) -> Result<Vec<u8>> {
        self.decrypt(&Mechanism::RsaPkcs, ciphertext)
    }

    fn decrypt_oaep(&self, hash: OaepHash, ciphertext: &[u8]) -> Result<Vec<u8>> {
        let (h, mgf) = match hash {
            OaepHash::Sha1 => (MechanismType::SHA1, PkcsMgfType::MGF1_SHA1),
            OaepHash::Sha256 => (MechanismType::SHA256, PkcsMgfType::MGF1_SHA256),
            OaepHash::Sha384 => (MechanismType::SHA384, PkcsMgfType::MGF1_SHA384),
            OaepHash::Sha512 => (MechanismType::SHA512, PkcsMgfType::MGF1_SHA512),
        };
        let params = PkcsOaepParams::new(h, mgf, PkcsOaepSource::empty());
        self.decrypt(&Mechanism::RsaPkcsOaep(params), ciphertext)
    }
}
