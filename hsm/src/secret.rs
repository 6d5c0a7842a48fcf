//! Secrets (key passphrases, PINs): loaded from a file or an environment variable, never
//! from the command line or inline configuration, never printed.

use std::fmt;
use std::path::PathBuf;

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
                let mut raw = std::fs::read(path).map_err(|e| Error::Io {
                    context: format!("reading secret file {}", path.display()),
                    source: e,
                })?;
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
