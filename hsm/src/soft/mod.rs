//! The software key backend: keys as passphrase-encrypted PKCS#8 files, operations with
//! aws-lc-rs.
//!
//! # Layout on disk
//!
//! A [`SoftKeyStore`] is a directory (mode 0700 when this crate creates it). Each key is one
//! file `<dir>/<label>.key` holding a PEM `ENCRYPTED PRIVATE KEY` document: a PKCS#8
//! `EncryptedPrivateKeyInfo` (RFC 5958 §3) protected with PBES2 (RFC 8018 §6.2). OpenSSL
//! reads these files directly (`openssl pkey -in ca.key -passin file:pass`), so keys can be
//! inspected, backed up or moved into a hardware module with standard tools.
//!
//! Key files are written with mode 0600, atomically: the document goes to a temporary file
//! in the same directory (created 0600), is fsynced, linked to its final name, and the
//! directory is fsynced. Linking instead of renaming makes creation no-clobber: two
//! processes that generate the same label at once cannot overwrite each other's key; one
//! of them gets [`Error::Exists`]. A key file whose mode lets group or others in is
//! refused with [`Error::InsecurePermissions`].
//!
//! # Operations
//!
//! Every private-key operation uses aws-lc-rs (docs/architecture.md, decision 4); the `rsa` crate is not
//! used anywhere in this crate. Supported keys: RSA 2048/3072/4096 and ECDSA P-256/P-384.
//!
//! # Layout
//!
//! - `store`: the key directory ([`SoftKeyStore`]): reading, encrypting and writing key
//!   files;
//! - `key`: a key in memory ([`SoftKey`]) and its operations, key generation, and keys
//!   made to be handed out ([`ExportableKey`]).
//!
//! SPKI parsing and signature verification are the same for every backend and live in
//! [`crate::public`].

use std::io;

use crate::{Error, Result};

mod key;
mod store;

pub use key::{ExportableKey, SoftKey, generate_exportable};
pub use store::SoftKeyStore;

/// SPKI inspection moved to [`crate::public`]; these stay reachable here.
pub use crate::public::{rsa_modulus_bits, spki_algorithm};

/// PBKDF2-HMAC-SHA256 iteration count for newly written key files.
///
/// Key files are protected with PBES2 = PBKDF2-HMAC-SHA256 (600,000 iterations, 16-byte
/// random salt) + AES-256-CBC (random IV). Why this choice:
///
/// - 600,000 is the OWASP (2023) recommendation for PBKDF2-HMAC-SHA256, and what the
///   `pkcs5` crate itself uses for PBKDF2. Opening a key (one derivation plus parsing)
///   measured about 0.10 s on the development machine (x86-64 with SHA-NI, dependencies
///   built at opt-level 2 as the workspace profile does), for RSA-4096 and P-256 alike, so
///   it stays well below 0.3 s and `list` over a handful of keys is still quick.
/// - PBKDF2 is the most widely readable PBES2 KDF: OpenSSL (every version since 1.0),
///   Java, .NET/Windows and HSM vendors' import tools all read it, which matters for
///   backups and for moving a CA key into a hardware module later. scrypt (the `pkcs5`
///   default) is memory-hard and therefore stronger against GPU guessing, but it is not
///   understood by several of those tools and costs 16 MiB per opening.
/// - The passphrase is an operator-chosen secret loaded from a file or the environment
///   (never typed interactively at every start), so it can and should be long and random;
///   the KDF is a second line of defence, not the only one.
///
/// Reading accepts any PBES2 parameters the `pkcs5` crate supports (PBKDF2 with
/// SHA-224/256/384/512 or scrypt, AES-CBC or AES-GCM), so keys encrypted by OpenSSL with its
/// defaults load too.
pub const PBKDF2_ITERATIONS: u32 = 600_000;

/// File name suffix of key files.
pub(super) const KEY_SUFFIX: &str = ".key";

/// Longest accepted label.
const MAX_LABEL_LEN: usize = 64;

/// Largest key file read. An RSA-4096 key file is about 3.4 KiB; anything far bigger is not
/// a key file and is refused before it is read into memory.
pub(super) const MAX_KEY_FILE_LEN: u64 = 64 * 1024;

/// Checks that `label` can name a key: 1 to 64 characters from `[A-Za-z0-9._-]`, not
/// starting with a dot. This keeps labels safe as file names (no path separators, no `..`,
/// no hidden files) and as PKCS#11 labels.
pub fn validate_label(label: &str) -> Result<()> {
    let ok = !label.is_empty()
        && label.len() <= MAX_LABEL_LEN
        && !label.starts_with('.')
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidLabel(format!(
            "{label:?}: a label is 1 to {MAX_LABEL_LEN} characters from [A-Za-z0-9._-] and does not start with '.'"
        )))
    }
}

pub(super) fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::key::Inner;
    use super::*;
    use crate::public::verify;
    use crate::{KeyAlgorithm, PrivateKey};
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair as _;

    #[test]
    fn labels() {
        for ok in ["a", "ca-root_2025.v1", "x.", "A.b-C_d", &"z".repeat(64)] {
            validate_label(ok).unwrap();
        }
        for bad in ["", ".x", "..", "a/b", "a\\b", "a b", "ü", &"z".repeat(65)] {
            assert!(
                matches!(validate_label(bad), Err(Error::InvalidLabel(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ephemeral_keys_sign_and_build_the_same_spki_as_aws_lc() {
        for alg in [
            KeyAlgorithm::Rsa2048,
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
        ] {
            let key = SoftKey::generate_ephemeral("eph", alg).unwrap();
            assert_eq!(key.algorithm(), alg);
            // aws-lc-rs's own SPKI encoding is byte-identical to ours.
            let theirs = match &key.inner {
                Inner::Rsa { signing, .. } => {
                    AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(signing.public_key())
                        .unwrap()
                        .as_ref()
                        .to_vec()
                }
                Inner::Ecdsa(kp) => {
                    AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(kp.public_key())
                        .unwrap()
                        .as_ref()
                        .to_vec()
                }
            };
            assert_eq!(key.public_key_der(), theirs.as_slice(), "{alg}");
            let scheme = alg.default_scheme();
            let sig = key.sign(scheme, b"hello").unwrap();
            verify(scheme, key.public_key_der(), b"hello", &sig).unwrap();
        }
    }
}
