//! The PKCS#11 key backend: CA, RA and OCSP keys on a hardware security module (or
//! SoftHSM2), through the `cryptoki` crate (PKCS#11 v2.40 / v3 base specification).
//!
//! # Keys
//!
//! A key is a pair of token objects (`CKO_PRIVATE_KEY` and `CKO_PUBLIC_KEY`) that share a
//! `CKA_LABEL` (the privca label, with the configured prefix in front) and a `CKA_ID`.
//! [`KeyStore::open`](crate::KeyStore::open) finds a key by label, or by ID when given `id:<hex>`. Keys generated
//! here are `CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE` and not `CKA_EXTRACTABLE`: the
//! private half never leaves the token. They get only the uses their role needs
//! ([`KeyUse`](crate::KeyUse)): CA, OCSP and TLS keys `CKA_SIGN` only, the SCEP RA key `CKA_SIGN` and
//! `CKA_DECRYPT`; never `CKA_UNWRAP` or `CKA_DERIVE`, and `CKA_MODIFIABLE` and
//! `CKA_COPYABLE` false so that nobody can widen them later. Imported keys get the same attributes (the token
//! then reports them as not `CKA_LOCAL` and not `CKA_ALWAYS_SENSITIVE`, which is the truth).
//!
//! # Operations
//!
//! | privca scheme | mechanism |
//! |---|---|
//! | RSA PKCS#1 v1.5 + SHA-256/384/512 | `CKM_SHA256_RSA_PKCS` … (hashing on the token) |
//! | RSA-PSS + SHA-256/384/512 | `CKM_SHA256_RSA_PKCS_PSS` …, MGF1 of the same hash, salt = hash length (RFC 4055 §3.1) |
//! | ECDSA P-256/P-384 | `CKM_ECDSA` over a SHA-256/384 digest computed here; the raw `r‖s` is re-encoded as DER `Ecdsa-Sig-Value` (RFC 3279 §2.2.3) |
//! | RSA decryption | `CKM_RSA_PKCS` (RFC 8017 §7.2.2), `CKM_RSA_PKCS_OAEP` (RFC 8017 §7.1.2, empty label) |
//!
//! Raw `CKM_ECDSA` is used because SoftHSM 2.6 and many HSMs lack `CKM_ECDSA_SHA256`.
//! Decryption fails uniformly with [`Error::Decrypt`](crate::Error::Decrypt) whatever the token says about the
//! padding, as the software backend does; only a token that cannot be reached at all is
//! reported differently ([`Error::Unavailable`](crate::Error::Unavailable)), which says nothing about the ciphertext.
//!
//! # Sessions, concurrency and recovery
//!
//! The store keeps a pool of up to `sessions` read/write sessions on one slot. Each
//! operation borrows one session, so up to `sessions` signatures run at once and there is
//! no global lock around signing; a caller that finds every session busy waits (bounded by
//! `wait_timeout_seconds`). PKCS#11 calls block, so callers run them on a blocking thread
//! (the server runs every authority call through `tokio::task::spawn_blocking`).
//!
//! The user login is shared by all sessions of the application (PKCS#11 §5.6), so the store
//! logs in once per connection. When a call fails in a way that means the token or the
//! sessions are gone (`CKR_SESSION_HANDLE_INVALID`, `CKR_SESSION_CLOSED`,
//! `CKR_TOKEN_NOT_PRESENT`, `CKR_DEVICE_REMOVED`, `CKR_DEVICE_ERROR`,
//! `CKR_USER_NOT_LOGGED_IN`, `CKR_CRYPTOKI_NOT_INITIALIZED`, `CKR_TOKEN_NOT_RECOGNIZED`), or
//! a key that was found before is not found any more while the session is logged in (what
//! SoftHSM answers after its token directory went away), the whole connection is dropped
//! (its sessions closed, so that none leak) and the operation retried on a fresh one: the
//! token found again by label or slot, the PIN read again from its source, and the user
//! logged in again. A lost login or session needs no more; when the token went away, or a
//! reconnection failed, the module is first finalised and initialised again (SoftHSM, like
//! many libraries, only notices a token that left or came back in `C_Initialize`). Every
//! PKCS#11 call of the process holds a shared guard of its module, and re-initialisation
//! takes it exclusively (waiting at most [`QUIESCE_MAX`]): `C_Finalize` while other threads
//! are inside calls is undefined (PKCS#11 §5.4). The guard and a module generation are
//! shared by every store on the same module (the CA keys' and the HTTPS listener's), so a
//! session of an older generation is never used or closed again. An operation is tried at most
//! [`OP_ATTEMPTS`] times. When reconnecting fails, later calls fail at once with
//! [`Error::Unavailable`](crate::Error::Unavailable) until a backoff delay has passed (doubling from
//! [`BACKOFF_START`] to [`BACKOFF_MAX`]), so a token that never comes back gives prompt,
//! clear errors instead of hangs or a storm of login attempts.
//!
//! A wrong PIN is never retried with the same PIN: a real HSM locks the user after a few
//! failures. Once the token said `CKR_PIN_INCORRECT` (or the PIN is locked or expired),
//! every later connection attempt fails at once until the PIN source holds a different PIN.

//!
//! # Layout
//!
//! - `config`: the `[keys.pkcs11]` section ([`Pkcs11Config`]);
//! - `pool`: the connection, the session pool and recovery from a lost token;
//! - `store`: the key store (generate, import, open, list, delete: token objects);
//! - `key`: a key's operations (sign, decrypt).

mod config;
mod key;
mod pool;
mod store;

pub use config::Pkcs11Config;
pub use key::{Pkcs11Key, ecdsa_raw_to_der};
pub use pool::{BACKOFF_MAX, BACKOFF_START, OP_ATTEMPTS, QUIESCE_MAX};
pub use store::{Pkcs11KeyStore, TokenKeyInfo};

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::pool::{backoff, rv_name};
    use super::store::{decode_hex, hex};
    use super::*;
    use crate::SecretSource;
    use cryptoki::error::RvError;

    #[test]
    fn raw_ecdsa_becomes_der() {
        // r with the high bit set gets a 0x00; s with leading zeros loses them.
        let mut raw = vec![0x80; 32];
        raw.extend([0u8; 31]);
        raw.push(5);
        let der = ecdsa_raw_to_der(&raw).unwrap();
        assert_eq!(&der[..4], &[0x30, 0x26, 0x02, 0x21]);
        assert_eq!(der[4], 0);
        assert_eq!(&der[der.len() - 3..], &[0x02, 0x01, 0x05]);
        assert!(ecdsa_raw_to_der(&[1, 2, 3]).is_err());
        assert!(ecdsa_raw_to_der(&[]).is_err());
    }

    #[test]
    fn names_and_hex() {
        assert_eq!(
            rv_name(RvError::SessionHandleInvalid),
            "CKR_SESSION_HANDLE_INVALID"
        );
        assert_eq!(decode_hex("0aff").unwrap(), vec![0x0a, 0xff]);
        assert!(decode_hex("0").is_none());
        assert!(decode_hex("zz").is_none());
        assert_eq!(hex(&[1, 0xab]), "01ab");
        assert_eq!(backoff(1), BACKOFF_START);
        assert_eq!(backoff(2), BACKOFF_START * 2);
        assert_eq!(backoff(40), BACKOFF_MAX);
    }

    #[test]
    fn config_checks() {
        let base = Pkcs11Config {
            module: "/m.so".into(),
            token_label: Some("t".into()),
            slot: None,
            pin: SecretSource::Env("PIN".into()),
            sessions: 4,
            label_prefix: String::new(),
            wait_timeout_seconds: 30,
        };
        base.validate().unwrap();
        let mut c = base.clone();
        c.slot = Some(1);
        assert!(c.validate().is_err());
        let mut c = base.clone();
        c.token_label = None;
        assert!(c.validate().is_err());
        let mut c = base.clone();
        c.sessions = 0;
        assert!(c.validate().is_err());
        let mut c = base;
        c.label_prefix = "a/b".into();
        assert!(c.validate().is_err());
    }
}
