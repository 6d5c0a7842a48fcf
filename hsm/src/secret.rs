//! Secrets (key passphrases, PINs): loaded from a file or an environment variable, never
//! from the command line or inline configuration, never printed.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::{Error, Result};

/// Where a secret comes from. In TOML: `{ file = "/path" }` or `{ env = "VAR" }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum SecretSource {
    /// Read the secret from this file (trailing newline removed).
    File(PathBuf),
    /// Read the secret from this environment variable.
    Env(String),
}

impl SecretSource {
    /// Loads the secret.
    pub fn load(&self) -> Result<Secret> {
        match self {
            SecretSource::File(path) => {
                let mut raw = read_private_file(path, "secret file")?;
                while matches!(raw.last(), Some(b'\n' | b'\r')) {
                    raw.pop();
                }
                if raw.is_empty() {
                    return Err(Error::Secret(format!(
                        "secret file {} is empty",
                        path.display()
                    )));
                }
                Ok(Secret(raw))
            }
            SecretSource::Env(var) => match std::env::var_os(var) {
                Some(v) if !v.is_empty() => Ok(Secret(v.into_encoded_bytes())),
                _ => Err(Error::Secret(format!(
                    "environment variable {var} is not set or empty"
                ))),
            },
        }
    }
}

/// Reads a file that only its owner may access: every secret file privca reads (key
/// passphrase, admin token, PKCS#11 PIN, SCEP challenge secrets, Intune and webhook
/// secrets) comes through here, as key files go through the soft key store's check.
/// A file whose mode lets group or others read or write it is refused with
/// [`Error::InsecureFile`] naming it (`what` says what it is). The mode is taken from
/// the opened file, so a rename between the check and the read changes nothing.
pub fn read_private_file(path: &Path, what: &str) -> Result<Vec<u8>> {
    let io = |e: std::io::Error| Error::Io {
        context: format!("reading {what} {}", path.display()),
        source: e,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    check_private_metadata(&file.metadata().map_err(io)?, path, what)?;
    let mut raw = Vec::new();
    file.read_to_end(&mut raw).map_err(io)?;
    Ok(raw)
}

/// Refuses a file that group or others may access (see [`read_private_file`]).
pub fn check_private_file(path: &Path, what: &str) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::Io {
        context: format!("reading {what} {}", path.display()),
        source: e,
    })?;
    check_private_metadata(&meta, path, what)
}

fn check_private_metadata(meta: &std::fs::Metadata, path: &Path, what: &str) -> Result<()> {
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(Error::InsecureFile {
            what: what.to_string(),
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(())
}

/// A secret value. Its `Debug` output is redacted and its memory is wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps bytes as a secret.
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(bytes)
    }

    /// The secret bytes. Do not log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Equality of two secrets (passwords, tokens, channel-binding values) in time that
/// depends neither on where they differ nor on their lengths: both are hashed with SHA-256
/// and the digests compared with aws-lc-rs's constant-time comparison. The one comparison
/// of secrets in privca; everything that compares a secret a client sent uses it.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use aws_lc_rs::digest::{SHA256, digest};
    aws_lc_rs::constant_time::verify_slices_are_equal(
        digest(&SHA256, a).as_ref(),
        digest(&SHA256, b).as_ref(),
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Issue 9 item 7: a secret file group or others may read or write is refused with a
    /// message naming it; 0600 and 0400 load.
    #[test]
    fn loose_secret_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin-token");
        std::fs::write(&path, "s3cret-token\n").unwrap();
        for mode in [0o644, 0o666, 0o640, 0o604, 0o620, 0o602] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = SecretSource::File(path.clone()).load().unwrap_err();
            assert!(matches!(e, Error::InsecureFile { .. }), "{mode:o}: {e:?}");
            let msg = e.to_string();
            assert!(
                msg.contains(&path.display().to_string()) && msg.contains(&format!("{mode:o}")),
                "{msg}"
            );
            assert!(!msg.contains("s3cret"), "{msg}");
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let s = SecretSource::File(path.clone()).load().unwrap();
            assert_eq!(s.expose(), b"s3cret-token");
        }
        assert!(check_private_file(&path, "secret file").is_ok());
    }
}
