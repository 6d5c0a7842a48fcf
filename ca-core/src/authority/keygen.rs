//! Server-side key generation as the authority sees it (RFC 7030 §4.4): the generator is
//! injected by the `server` crate, the only crate that names a key backend. Re-exported
//! from [`crate::enroll`], which uses it.

use hsm::{KeyAlgorithm, Secret};

use crate::Result;

/// A key pair generated for a client (RFC 7030 §4.4): the client receives the private
/// key, the server keeps nothing.
pub struct GeneratedKey {
    /// The private key, unencrypted PKCS#8 DER. Wiped on drop; never log it.
    pub pkcs8_der: Secret,
    /// Its SubjectPublicKeyInfo, DER.
    pub spki_der: Vec<u8>,
    /// Its algorithm.
    pub algorithm: KeyAlgorithm,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Generates keys to hand out (server-side key generation). The `server` crate injects
/// the implementation ([`Authority::set_key_generator`](crate::authority::Authority::set_key_generator)); protocol crates never name a
/// key backend.
pub trait KeyGenerator: Send + Sync {
    /// A fresh key pair of `algorithm`.
    fn generate(&self, algorithm: KeyAlgorithm) -> Result<GeneratedKey>;
}
