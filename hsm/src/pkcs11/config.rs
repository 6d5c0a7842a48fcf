//! `[keys.pkcs11]`: where the token is and how to log in.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::soft::validate_label;
use crate::{Error, Result, SecretSource};

/// `[keys.pkcs11]`: where the token is and how to log in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Config {
    /// Path of the PKCS#11 module (shared library), e.g.
    /// `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// Label of the token to use. Either this or `slot` must be given.
    #[serde(default)]
    pub token_label: Option<String>,
    /// Slot ID of the token to use (when `token_label` is not given).
    #[serde(default)]
    pub slot: Option<u64>,
    /// The user PIN: `{ file = "…" }` or `{ env = "…" }`, never inline.
    pub pin: SecretSource,
    /// Size of the session pool: how many operations may run on the token at once.
    #[serde(default = "default_sessions")]
    pub sessions: usize,
    /// Prefix put in front of every privca key label on the token (`CKA_LABEL`), so that
    /// several CAs can share a token.
    #[serde(default)]
    pub label_prefix: String,
    /// Longest wait for a free session, in seconds.
    #[serde(default = "default_wait")]
    pub wait_timeout_seconds: u64,
}

fn default_sessions() -> usize {
    4
}
fn default_wait() -> u64 {
    30
}

impl Pkcs11Config {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<()> {
        match (&self.token_label, self.slot) {
            (Some(_), Some(_)) => Err(Error::Unsupported(
                "[keys.pkcs11]: give token_label or slot, not both".into(),
            )),
            (None, None) => Err(Error::Unsupported(
                "[keys.pkcs11]: token_label or slot is required".into(),
            )),
            _ if self.sessions == 0 || self.sessions > 256 => Err(Error::Unsupported(
                "[keys.pkcs11]: sessions must be between 1 and 256".into(),
            )),
            _ if self.wait_timeout_seconds == 0 => Err(Error::Unsupported(
                "[keys.pkcs11]: wait_timeout_seconds must be at least 1".into(),
            )),
            _ if !self.label_prefix.is_empty() && validate_label(&self.label_prefix).is_err() => {
                Err(Error::InvalidLabel(format!(
                    "label_prefix {:?}: characters from [A-Za-z0-9._-], not starting with '.'",
                    self.label_prefix
                )))
            }
            _ => Ok(()),
        }
    }

    pub(super) fn token_desc(&self) -> String {
        match (&self.token_label, self.slot) {
            (Some(l), _) => format!("token {l:?}"),
            (None, Some(s)) => format!("slot {s}"),
            (None, None) => "token".into(),
        }
    }
}
