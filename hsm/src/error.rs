//! The error type of the hsm crate.

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No key is stored under that label.
    #[error("no key labelled {0:?}")]
    NotFound(String),
    /// A key is already stored under that label.
    #[error("a key labelled {0:?} already exists")]
    Exists(String),
    /// A key label is not acceptable (see [`crate::soft::validate_label`]).
    #[error("invalid key label {0}")]
    InvalidLabel(String),
    /// The key or backend cannot do what was asked (for example RSA decryption with an EC key).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A key file is readable or writable by users other than its owner.
    #[error(
        "key file {path} has mode {mode:o}; it must not be accessible to group or others (chmod 600)"
    )]
    InsecurePermissions {
        /// The offending file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// A secret file (passphrase, PIN, token, challenge secret) or a configuration that
    /// holds verifiers is readable or writable by group or others.
    #[error(
        "{what} {path} has mode {mode:o}; it must not be accessible to group or others (chmod 600 {path})"
    )]
    InsecureFile {
        /// What the file is ("secret file", "configuration file").
        what: String,
        /// The offending file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// Key material could not be parsed or decrypted (wrong passphrase, corrupt file).
    #[error("bad key material: {0}")]
    BadKey(String),
    /// A secret (passphrase, PIN) could not be loaded.
    #[error("secret: {0}")]
    Secret(String),
    /// A signature did not verify.
    #[error("signature verification failed")]
    BadSignature,
    /// Decryption failed. Deliberately says nothing about why.
    #[error("decryption failed")]
    Decrypt,
    /// The cryptographic library reported a failure.
    #[error("crypto operation failed: {0}")]
    Crypto(String),
    /// The key backend cannot be reached (PKCS#11 module not loadable, token absent, all
    /// reconnection attempts failed). Retrying later may succeed.
    #[error("key backend unavailable: {0}")]
    Unavailable(String),
    /// The PKCS#11 token refused an operation (the message names the function and the
    /// `CKR_…` code).
    #[error("PKCS#11: {0}")]
    Token(String),
    /// File system error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}
