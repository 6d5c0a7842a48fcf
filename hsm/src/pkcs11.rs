//! The PKCS#11 key backend: CA, RA and OCSP keys on a hardware security module (or
//! SoftHSM2), through the `cryptoki` crate (PKCS#11 v2.40 / v3 base specification).
//!
//! # Keys
//!
//! A key is a pair of token objects (`CKO_PRIVATE_KEY` and `CKO_PUBLIC_KEY`) that share a
//! `CKA_LABEL` (the privca label, with the configured prefix in front) and a `CKA_ID`.
//! [`KeyStore::open`] finds a key by label, or by ID when given `id:<hex>`. Keys generated
//! here are `CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE` and not `CKA_EXTRACTABLE`: the
//! private half never leaves the token. They get only the uses their role needs
//! ([`KeyUse`]): CA, OCSP and TLS keys `CKA_SIGN` only, the SCEP RA key `CKA_SIGN` and
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
//! Decryption fails uniformly with [`Error::Decrypt`] whatever the token says about the
//! padding, as the software backend does; only a token that cannot be reached at all is
//! reported differently ([`Error::Unavailable`]), which says nothing about the ciphertext.
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
//! [`Error::Unavailable`] until a backoff delay has passed (doubling from
//! [`BACKOFF_START`] to [`BACKOFF_MAX`]), so a token that never comes back gives prompt,
//! clear errors instead of hangs or a storm of login attempts.
//!
//! A wrong PIN is never retried with the same PIN: a real HSM locks the user after a few
//! failures. Once the token said `CKR_PIN_INCORRECT` (or the PIN is locked or expired),
//! every later connection attempt fails at once until the PIN source holds a different PIN.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{
    Arc, Condvar, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard,
};
use std::time::{Duration, Instant};

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5912::{ID_EC_PUBLIC_KEY, RSA_ENCRYPTION, SECP_256_R_1, SECP_384_R_1};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Function, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::{RawAuthPin, Ulong};
use der::asn1::{Any, OctetStringRef, UintRef};
use der::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::soft::{build_spki, ec_algorithm, rsa_algorithm, uint_bits, validate_label};
use crate::{
    Error, KeyAlgorithm, KeyInfo, KeyStore, KeyUse, OaepHash, PrivateKey, Result, SecretSource,
    SignatureScheme,
};

/// How many times one operation is tried when the connection to the token breaks under it.
pub const OP_ATTEMPTS: u32 = 3;
/// First delay before reconnecting after a failed reconnection.
pub const BACKOFF_START: Duration = Duration::from_millis(200);
/// Longest delay between reconnection attempts: a token that comes back is used again
/// at most this long after its return.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Longest wait, before re-initialising the module, for PKCS#11 calls of this process that
/// are still running (C_Finalize while other threads are inside calls is undefined,
/// PKCS#11 §5.4).
pub const QUIESCE_MAX: Duration = Duration::from_secs(5);

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

    fn token_desc(&self) -> String {
        match (&self.token_label, self.slot) {
            (Some(l), _) => format!("token {l:?}"),
            (None, Some(s)) => format!("slot {s}"),
            (None, None) => "token".into(),
        }
    }
}

/// A PKCS#11 error as one line: function and `CKR_…` code (the crate's own texts are long).
fn ck(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, f) => format!("C_{f:?}: {}", rv_name(*rv)),
        other => other.to_string(),
    }
}

fn rv_name(rv: RvError) -> String {
    // `SessionHandleInvalid` → `CKR_SESSION_HANDLE_INVALID`
    let mut out = String::from("CKR_");
    for (i, c) in format!("{rv:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Errors that mean the connection (module, token, sessions or login) is gone, or that
/// the token is in a state only a new connection can fix.
///
/// `CKR_GENERAL_ERROR` ("the token may be in an inconsistent state", PKCS#11 §5.1.6) counts
/// too (SoftHSM answers it to a signature started while the user is being logged out),
/// except from `C_Decrypt`: there a token might use it to reject a ciphertext, and
/// reconnecting (slower, a different error) would tell an attacker so.
fn connection_lost(e: &CkError) -> bool {
    if let CkError::Pkcs11(RvError::GeneralError, f) = e {
        return !matches!(
            f,
            Function::Decrypt | Function::DecryptUpdate | Function::DecryptFinal
        );
    }
    matches!(
        e,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::TokenNotPresent
                | RvError::TokenNotRecognized
                | RvError::DeviceRemoved
                | RvError::DeviceError
                | RvError::UserNotLoggedIn
                | RvError::CryptokiNotInitialized,
            _
        )
    )
}

/// Errors that mean a cached object handle is stale.
fn stale_handle(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid, _)
    )
}

// ---------------------------------------------------------------------------------------------
// Connection and session pool
// ---------------------------------------------------------------------------------------------

/// What every user of one PKCS#11 module in this process shares: `C_Initialize` and
/// `C_Finalize` are process-wide (PKCS#11 §5.4), so the key store of the CA keys and the
/// one of the HTTPS listener key, when they use the same module, must agree on when the
/// module is re-initialised.
struct ModuleGate {
    /// Held shared by every PKCS#11 call of privca, exclusively while the module is
    /// finalised and initialised again.
    calls: RwLock<()>,
    /// Bumped at every re-initialisation: session handles of an older value are gone (and
    /// their numbers may name new sessions), so they are never used or closed again.
    generation: AtomicU64,
}

impl ModuleGate {
    /// The gate of `module` (one per module path in the process).
    fn of(module: &Path) -> Arc<ModuleGate> {
        static GATES: OnceLock<Mutex<HashMap<PathBuf, Arc<ModuleGate>>>> = OnceLock::new();
        let mut gates = GATES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        gates
            .entry(module.to_path_buf())
            .or_insert_with(|| {
                Arc::new(ModuleGate {
                    calls: RwLock::new(()),
                    generation: AtomicU64::new(0),
                })
            })
            .clone()
    }

    fn call(&self) -> RwLockReadGuard<'_, ()> {
        self.calls.read().unwrap_or_else(|p| p.into_inner())
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Waits (at most [`QUIESCE_MAX`]) until no PKCS#11 call of this process is running
    /// and keeps new ones out while the guard lives.
    fn exclusive(&self) -> Option<RwLockWriteGuard<'_, ()>> {
        let until = Instant::now() + QUIESCE_MAX;
        loop {
            match self.calls.try_write() {
                Ok(g) => return Some(g),
                Err(std::sync::TryLockError::Poisoned(p)) => return Some(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) if Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(std::sync::TryLockError::WouldBlock) => return None,
            }
        }
    }
}

/// A session with the module generation it was opened in.
struct Pooled {
    session: Session,
    module_generation: u64,
}

struct Pool {
    cfg: Pkcs11Config,
    gate: Arc<ModuleGate>,
    state: Mutex<State>,
    freed: Condvar,
}

#[derive(Default)]
struct State {
    /// The loaded module; kept across reconnections (it is re-initialised as needed).
    module: Option<Pkcs11>,
    /// The current connection: the slot we are logged in on.
    slot: Option<Slot>,
    /// Idle sessions of the current connection.
    idle: Vec<Pooled>,
    /// Sessions of the current connection lent out.
    lent: usize,
    /// Bumped whenever the connection is dropped; sessions and handles of older
    /// generations are never used again.
    generation: u64,
    /// Failed reconnections in a row, the earliest time of the next attempt, and why.
    failures: u32,
    next_attempt: Option<Instant>,
    last_error: Option<String>,
    /// SHA-256 of a PIN the token rejected: never tried again.
    rejected_pin: Option<[u8; 32]>,
    /// The next connection attempt finalises and initialises the module first: the token
    /// went away (SoftHSM, like many libraries, only finds a token that came back, and only
    /// forgets one that left, in `C_Initialize`), or a plain reconnection did not help.
    reinit: bool,
    /// When the current connection was made.
    connected_at: Option<Instant>,
    /// The module generation of the current connection.
    module_generation: u64,
}

/// A borrowed session; goes back to the pool on drop unless its connection is gone.
struct Lease<'a> {
    pool: &'a Pool,
    session: Option<Pooled>,
    generation: u64,
}

impl Lease<'_> {
    fn session(&self) -> &Session {
        // Present until drop.
        &self
            .session
            .as_ref()
            .unwrap_or_else(|| unreachable!())
            .session
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(pooled) = self.session.take() else {
            return;
        };
        let mut st = self.pool.lock();
        if st.generation == self.generation {
            st.lent = st.lent.saturating_sub(1);
            st.idle.push(pooled);
        } else {
            // The connection this session belonged to was dropped (the login was lost, the
            // token went away): close it, unless the module was re-initialised since.
            self.pool.dispose(pooled);
        }
        drop(st);
        self.pool.freed.notify_one();
    }
}

fn backoff(failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(10);
    BACKOFF_START.saturating_mul(factor).min(BACKOFF_MAX)
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state inconsistent in a way that
        // matters more than refusing service forever would.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Borrows a session, connecting first if needed.
    fn acquire(&self) -> Result<Lease<'_>> {
        let deadline = Instant::now() + Duration::from_secs(self.cfg.wait_timeout_seconds);
        let mut st = self.lock();
        loop {
            if st.slot.is_none() {
                self.connect(&mut st)?;
            }
            if st.slot.is_some() && st.module_generation != self.gate.generation() {
                // Another user of the module re-initialised it: every session of this
                // connection is gone (and their handle numbers may be reused).
                for pooled in std::mem::take(&mut st.idle) {
                    std::mem::forget(pooled.session);
                }
                st.slot = None;
                st.lent = 0;
                st.connected_at = None;
                st.generation += 1;
                self.freed.notify_all();
                continue;
            }
            let generation = st.generation;
            if let Some(session) = st.idle.pop() {
                st.lent += 1;
                return Ok(Lease {
                    pool: self,
                    session: Some(session),
                    generation,
                });
            }
            if st.lent < self.cfg.sessions {
                let (Some(module), Some(slot)) = (st.module.clone(), st.slot) else {
                    return Err(Error::Unavailable("not connected to the token".into()));
                };
                st.lent += 1;
                drop(st);
                let opened = {
                    let _call = self.gate.call();
                    let module_generation = self.gate.generation();
                    module.open_rw_session_no_drop(slot).map(|session| Pooled {
                        session,
                        module_generation,
                    })
                };
                st = self.lock();
                match opened {
                    Ok(pooled) => {
                        if st.generation == generation {
                            return Ok(Lease {
                                pool: self,
                                session: Some(pooled),
                                generation,
                            });
                        }
                        // Reconnected meanwhile: this session is of the old connection.
                        self.dispose(pooled);
                        continue;
                    }
                    Err(e) => {
                        if st.generation == generation {
                            st.lent = st.lent.saturating_sub(1);
                        }
                        if connection_lost(&e) {
                            self.drop_connection(&mut st, generation, &e);
                            continue;
                        }
                        return Err(Error::Token(ck(&e)));
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Unavailable(format!(
                    "all {} PKCS#11 sessions stayed busy for {} s",
                    self.cfg.sessions, self.cfg.wait_timeout_seconds
                )));
            }
            st = self
                .freed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Closes a session that will not be used again. A session opened before the module was
    /// re-initialised is gone already, and its handle number may name a newer session of
    /// someone else: that one is only forgotten.
    fn dispose(&self, pooled: Pooled) {
        let _call = self.gate.call();
        if pooled.module_generation == self.gate.generation() {
            // The login may be lost but the handle is still ours: close it so that sessions
            // do not pile up on the token (each lost login used to leak one per pool slot).
            let _ = pooled.session.close();
        } else {
            std::mem::forget(pooled.session);
        }
    }

    /// Forgets the connection of `generation` (if it is still the current one).
    fn drop_connection(&self, st: &mut State, generation: u64, why: &CkError) {
        if st.generation != generation {
            return;
        }
        tracing::warn!(token = %self.cfg.token_desc(), error = %ck(why), "PKCS#11 connection lost; reconnecting on next use");
        // A lost login or session is fixed by a new session and login; a token that went
        // away (or a connection that broke again right after it was made) needs the module
        // initialised again.
        let light = matches!(
            why,
            CkError::Pkcs11(
                RvError::SessionHandleInvalid
                    | RvError::SessionClosed
                    | RvError::UserNotLoggedIn
                    | RvError::CryptokiNotInitialized,
                _
            )
        );
        let fresh = st
            .connected_at
            .is_some_and(|t| t.elapsed() < Duration::from_secs(2));
        if !light || fresh {
            st.reinit = true;
        }
        for pooled in std::mem::take(&mut st.idle) {
            self.dispose(pooled);
        }
        st.slot = None;
        st.lent = 0;
        st.connected_at = None;
        st.generation += 1;
        self.freed.notify_all();
    }

    /// Loads/initialises the module, finds the token, logs in. On failure the error is
    /// remembered and further attempts wait for the backoff delay.
    fn connect(&self, st: &mut State) -> Result<()> {
        if let Some(at) = st.next_attempt {
            let now = Instant::now();
            if now < at {
                return Err(Error::Unavailable(format!(
                    "{} (next reconnection attempt in {} ms)",
                    st.last_error
                        .as_deref()
                        .unwrap_or("PKCS#11 token unavailable"),
                    (at - now).as_millis()
                )));
            }
        }
        match self.try_connect(st) {
            Ok(()) => {
                if st.failures > 0 {
                    tracing::info!(token = %self.cfg.token_desc(), "PKCS#11 token reconnected");
                }
                st.failures = 0;
                st.next_attempt = None;
                st.last_error = None;
                Ok(())
            }
            Err(e) => {
                st.failures = st.failures.saturating_add(1);
                st.next_attempt = Some(Instant::now() + backoff(st.failures));
                st.last_error = Some(match &e {
                    Error::Unavailable(m) => m.clone(),
                    other => other.to_string(),
                });
                // A plain reconnection failed: the next one starts from C_Initialize.
                st.reinit = !matches!(e, Error::Secret(_));
                tracing::warn!(token = %self.cfg.token_desc(), error = %e, failures = st.failures, "PKCS#11 connection failed");
                Err(e)
            }
        }
    }

    fn try_connect(&self, st: &mut State) -> Result<()> {
        let module = match &st.module {
            Some(m) => m.clone(),
            None => {
                let m = Pkcs11::new(&self.cfg.module).map_err(|e| {
                    Error::Unavailable(format!(
                        "cannot load PKCS#11 module {}: {e}",
                        self.cfg.module.display()
                    ))
                })?;
                st.module = Some(m.clone());
                m
            }
        };
        if st.reinit {
            self.reinitialise(&module)?;
            st.reinit = false;
        }
        let _call = self.gate.call();
        let module_generation = self.gate.generation();
        // Initialise (again): the module may have been finalised under us.
        match module.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => {
                return Err(Error::Unavailable(format!(
                    "initialising PKCS#11 module {}: {}",
                    self.cfg.module.display(),
                    ck(&e)
                )));
            }
        }
        let slot = self.find_slot(&module)?;
        let pin = self.cfg.pin.load()?;
        let pin_hash: [u8; 32] = {
            let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, pin.expose());
            let mut h = [0u8; 32];
            h.copy_from_slice(d.as_ref());
            h
        };
        if st.rejected_pin == Some(pin_hash) {
            return Err(Error::Secret(format!(
                "the {} rejected this PIN before; not trying it again (fix the PIN source)",
                self.cfg.token_desc()
            )));
        }
        let session = module
            .open_rw_session_no_drop(slot)
            .map_err(|e| Error::Unavailable(format!("opening a session: {}", ck(&e))))?;
        let raw = RawAuthPin::new(Box::new(pin.expose().to_vec()));
        match session.login_with_raw(UserType::User, &raw) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(
                e @ CkError::Pkcs11(
                    RvError::PinIncorrect | RvError::PinLocked | RvError::PinExpired,
                    _,
                ),
            ) => {
                st.rejected_pin = Some(pin_hash);
                let _ = session.close();
                return Err(Error::Secret(format!(
                    "PKCS#11 login to the {} failed: wrong or locked PIN ({})",
                    self.cfg.token_desc(),
                    ck(&e)
                )));
            }
            Err(e) => {
                let _ = session.close();
                return Err(Error::Unavailable(format!(
                    "PKCS#11 login to the {} failed: {}",
                    self.cfg.token_desc(),
                    ck(&e)
                )));
            }
        }
        st.rejected_pin = None;
        st.slot = Some(slot);
        st.lent = 0;
        st.connected_at = Some(Instant::now());
        st.module_generation = module_generation;
        st.idle.push(Pooled {
            session,
            module_generation,
        });
        Ok(())
    }

    /// `C_Finalize` then `C_Initialize`, once no PKCS#11 call of this process is running.
    /// Every session of every user of the module in this process is gone afterwards (they
    /// notice by their module generation).
    fn reinitialise(&self, module: &Pkcs11) -> Result<()> {
        let Some(_exclusive) = self.gate.exclusive() else {
            return Err(Error::Unavailable(format!(
                "PKCS#11 calls to module {} did not finish within {} s; not re-initialising it under them",
                self.cfg.module.display(),
                QUIESCE_MAX.as_secs()
            )));
        };
        self.gate.generation.fetch_add(1, Ordering::SeqCst);
        match module.clone().finalize() {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiNotInitialized, _)) => {}
            Err(e) => {
                tracing::warn!(module = %self.cfg.module.display(), error = %ck(&e), "C_Finalize failed; initialising anyway");
            }
        }
        tracing::info!(module = %self.cfg.module.display(), "PKCS#11 module re-initialised to find the token again");
        // C_Initialize follows in try_connect (under a shared guard, like every call).
        Ok(())
    }

    fn find_slot(&self, module: &Pkcs11) -> Result<Slot> {
        let unavailable =
            |e: CkError| Error::Unavailable(format!("listing PKCS#11 slots: {}", ck(&e)));
        let slots = module.get_slots_with_token().map_err(unavailable)?;
        if let Some(id) = self.cfg.slot {
            return slots
                .into_iter()
                .find(|s| s.id() == id)
                .ok_or_else(|| Error::Unavailable(format!("no token in PKCS#11 slot {id}")));
        }
        let want = self.cfg.token_label.as_deref().unwrap_or_default();
        for slot in slots {
            match module.get_token_info(slot) {
                Ok(info) if info.label().trim_end() == want => return Ok(slot),
                _ => {}
            }
        }
        Err(Error::Unavailable(format!(
            "no PKCS#11 token labelled {want:?} in module {}",
            self.cfg.module.display()
        )))
    }

    /// Runs `f` on a borrowed session; retries on a fresh connection when the connection
    /// breaks, at most [`OP_ATTEMPTS`] times in all.
    fn run<T>(&self, mut f: impl FnMut(&Session, u64) -> Result<T, CkError>) -> Result<T, OpError> {
        let mut last = None;
        for attempt in 0..OP_ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(20u64 << attempt));
            }
            let lease = self.acquire().map_err(OpError::Backend)?;
            let result = {
                let _call = self.gate.call();
                f(lease.session(), lease.generation)
            };
            match result {
                Ok(v) => return Ok(v),
                Err(e) if connection_lost(&e) => {
                    let generation = lease.generation;
                    // Do not return the broken session to the pool: close it.
                    let mut lease = lease;
                    let session = lease.session.take();
                    let mut st = self.lock();
                    if st.generation == generation {
                        st.lent = st.lent.saturating_sub(1);
                    }
                    self.drop_connection(&mut st, generation, &e);
                    drop(st);
                    if let Some(s) = session {
                        self.dispose(s);
                    }
                    last = Some(e);
                }
                Err(e) => return Err(OpError::Token(e)),
            }
        }
        Err(OpError::Backend(Error::Unavailable(format!(
            "the token failed {OP_ATTEMPTS} times in a row: {}",
            last.as_ref().map(ck).unwrap_or_default()
        ))))
    }
}

/// Why an operation failed: the backend (already an [`Error`]) or the token's answer.
enum OpError {
    Backend(Error),
    Token(CkError),
}

impl OpError {
    fn into_error(self, what: &str) -> Error {
        match self {
            OpError::Backend(e) => e,
            OpError::Token(e) => Error::Token(format!("{what}: {}", ck(&e))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The key store
// ---------------------------------------------------------------------------------------------

/// Keys on a PKCS#11 token (see the [module docs](self)).
#[derive(Clone)]
pub struct Pkcs11KeyStore {
    pool: Arc<Pool>,
}

impl fmt::Debug for Pkcs11KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11KeyStore")
            .field("module", &self.pool.cfg.module)
            .field("token", &self.pool.cfg.token_desc())
            .finish_non_exhaustive()
    }
}

/// What `privca keys list` shows of a token key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenKeyInfo {
    /// Label, algorithm and public key.
    #[serde(flatten)]
    pub info: KeyInfo,
    /// `CKA_ID`, hex.
    pub id: String,
    /// `CKA_SENSITIVE` of the private key.
    pub sensitive: bool,
    /// `CKA_EXTRACTABLE` of the private key.
    pub extractable: bool,
    /// `CKA_LOCAL`: generated on the token (false for imported keys).
    pub local: bool,
}

/// How a key is named when opened.
enum KeyRef {
    Label(String),
    Id(Vec<u8>),
}

impl Pkcs11KeyStore {
    /// Connects to the token described by `cfg` and logs in. Fails when the module cannot be
    /// loaded, the token is absent or the PIN is wrong.
    pub fn open(cfg: Pkcs11Config) -> Result<Self> {
        cfg.validate()?;
        let pool = Arc::new(Pool {
            gate: ModuleGate::of(&cfg.module),
            cfg,
            state: Mutex::new(State::default()),
            freed: Condvar::new(),
        });
        {
            let mut st = pool.lock();
            pool.connect(&mut st)?;
        }
        Ok(Pkcs11KeyStore { pool })
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &Pkcs11Config {
        &self.pool.cfg
    }

    fn token_label(&self, label: &str) -> Result<String> {
        validate_label(label)?;
        Ok(format!("{}{label}", self.pool.cfg.label_prefix))
    }

    fn parse_ref(&self, name: &str) -> Result<KeyRef> {
        if let Some(hex) = name.strip_prefix("id:") {
            let id = decode_hex(hex).ok_or_else(|| {
                Error::InvalidLabel(format!("{name:?}: id: must be followed by hex digits"))
            })?;
            Ok(KeyRef::Id(id))
        } else {
            Ok(KeyRef::Label(self.token_label(name)?))
        }
    }

    /// Generates a signing-only key on the token and returns it as its concrete type.
    pub fn generate_key(&self, label: &str, algorithm: KeyAlgorithm) -> Result<Arc<Pkcs11Key>> {
        self.generate_key_for(label, algorithm, KeyUse::Sign)
    }

    /// Generates a key on the token for `uses` and returns it as its concrete type.
    ///
    /// The private key gets only the uses its role needs: `CKA_SIGN`, and `CKA_DECRYPT`
    /// only for [`KeyUse::SignAndDecrypt`] (an RSA SCEP RA key); never `CKA_UNWRAP` or
    /// `CKA_DERIVE`. Both objects are `CKA_MODIFIABLE` and `CKA_COPYABLE` false (PKCS#11
    /// v2.40 §4.4: the uses cannot be widened later, and no copy with other attributes can
    /// be made); the private key is sensitive and not extractable.
    pub fn generate_key_for(
        &self,
        label: &str,
        algorithm: KeyAlgorithm,
        uses: KeyUse,
    ) -> Result<Arc<Pkcs11Key>> {
        let token_label = self.token_label(label)?;
        let decrypt = uses == KeyUse::SignAndDecrypt;
        if decrypt && !algorithm.is_rsa() {
            return Err(Error::Unsupported(format!(
                "key {label:?}: only RSA keys decrypt, not {algorithm}"
            )));
        }
        let mut id = vec![0u8; 16];
        aws_lc_rs::rand::fill(&mut id)
            .map_err(|_| Error::Crypto("random number generator failed".into()))?;
        let (mech, pub_extra, priv_extra) = match algorithm {
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                let bits: u64 = match algorithm {
                    KeyAlgorithm::Rsa2048 => 2048,
                    KeyAlgorithm::Rsa3072 => 3072,
                    _ => 4096,
                };
                (
                    Mechanism::RsaPkcsKeyPairGen,
                    vec![
                        Attribute::ModulusBits(Ulong::new(bits)),
                        Attribute::PublicExponent(vec![1, 0, 1]),
                    ],
                    vec![],
                )
            }
            // Tokens default CKA_DECRYPT and CKA_DERIVE of EC keys to true (SoftHSM does).
            KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => (
                Mechanism::EccKeyPairGen,
                vec![Attribute::EcParams(curve_params(algorithm)?)],
                vec![Attribute::Derive(false)],
            ),
        };
        let mut pub_t = vec![
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::Encrypt(decrypt),
            Attribute::Wrap(false),
            Attribute::Modifiable(false),
            Attribute::Copyable(false),
            Attribute::Label(token_label.clone().into_bytes()),
            Attribute::Id(id.clone()),
        ];
        pub_t.extend(pub_extra);
        let mut priv_t = private_template(&token_label, &id);
        priv_t.push(Attribute::Decrypt(decrypt));
        priv_t.extend(priv_extra);
        let tl = token_label.clone();
        self.pool
            .run(|s, _| {
                if !find(s, ObjectClass::PRIVATE_KEY, &KeyRef::Label(tl.clone()))?.is_empty() {
                    return Ok(false);
                }
                s.generate_key_pair(&mech, &pub_t, &priv_t)?;
                Ok(true)
            })
            .map_err(|e| e.into_error("generating a key pair"))
            .and_then(|made| {
                if made {
                    Ok(())
                } else {
                    Err(Error::Exists(label.to_owned()))
                }
            })?;
        tracing::info!(label, %algorithm, "generated key on PKCS#11 token");
        let key = self.open_key(label)?;
        if key.algorithm != algorithm {
            return Err(Error::Crypto(format!(
                "the token made a {} key when {algorithm} was asked for",
                key.algorithm
            )));
        }
        Ok(key)
    }

    /// Imports an unencrypted PKCS#8 key onto the token (as a sensitive, non-extractable
    /// private key plus its public key) and returns it as its concrete type. Fails with
    /// [`Error::Token`] when the token does not allow creating private-key objects.
    pub fn import_key(&self, label: &str, pkcs8_der: &[u8]) -> Result<Arc<Pkcs11Key>> {
        let token_label = self.token_label(label)?;
        // Parse and check with the software backend: same algorithms, same error messages.
        let soft = crate::soft::SoftKey::from_pkcs8(label, pkcs8_der)?;
        let algorithm = soft.algorithm();
        let spki = soft.public_key_der().to_vec();
        drop(soft);
        let pki = pkcs8::PrivateKeyInfoRef::from_der(pkcs8_der)
            .map_err(|e| Error::BadKey(format!("key {label:?}: {e}")))?;
        let mut id = vec![0u8; 16];
        aws_lc_rs::rand::fill(&mut id)
            .map_err(|_| Error::Crypto("random number generator failed".into()))?;
        let mut priv_t = private_template(&token_label, &id);
        let mut pub_t = vec![
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::Label(token_label.clone().into_bytes()),
            Attribute::Id(id.clone()),
        ];
        priv_t.push(Attribute::Class(ObjectClass::PRIVATE_KEY));
        if algorithm.is_rsa() {
            let k = pkcs1::RsaPrivateKeyRef::from_der(pki.private_key.as_bytes())
                .map_err(|e| Error::BadKey(format!("key {label:?}: {e}")))?;
            let b = |u: UintRef<'_>| u.as_bytes().to_vec();
            priv_t.extend([
                Attribute::KeyType(KeyType::RSA),
                Attribute::Decrypt(true),
                Attribute::Modulus(b(k.modulus)),
                Attribute::PublicExponent(b(k.public_exponent)),
                Attribute::PrivateExponent(b(k.private_exponent)),
                Attribute::Prime1(b(k.prime1)),
                Attribute::Prime2(b(k.prime2)),
                Attribute::Exponent1(b(k.exponent1)),
                Attribute::Exponent2(b(k.exponent2)),
                Attribute::Coefficient(b(k.coefficient)),
            ]);
            pub_t.extend([
                Attribute::KeyType(KeyType::RSA),
                Attribute::Encrypt(true),
                Attribute::Modulus(b(k.modulus)),
                Attribute::PublicExponent(b(k.public_exponent)),
            ]);
        } else {
            let ec = EcPrivateKey::from_der(pki.private_key.as_bytes())
                .map_err(|e| Error::BadKey(format!("key {label:?}: bad SEC1 ECPrivateKey: {e}")))?;
            let params = curve_params(algorithm)?;
            let point = spki::SubjectPublicKeyInfoRef::from_der(&spki)
                .ok()
                .and_then(|s| s.subject_public_key.as_bytes().map(<[u8]>::to_vec))
                .ok_or_else(|| Error::BadKey(format!("key {label:?}: no public point")))?;
            let point_der = OctetStringRef::new(&point)
                .and_then(|o| o.to_der())
                .map_err(|e| Error::Crypto(format!("encoding EC point: {e}")))?;
            priv_t.extend([
                Attribute::KeyType(KeyType::EC),
                Attribute::EcParams(params.clone()),
                Attribute::Value(ec.private_key.as_bytes().to_vec()),
            ]);
            pub_t.extend([
                Attribute::KeyType(KeyType::EC),
                Attribute::EcParams(params),
                Attribute::EcPoint(point_der),
            ]);
        }
        let priv_t = WipeOnDrop(priv_t);
        let tl = token_label.clone();
        let made = self
            .pool
            .run(|s, _| {
                if !find(s, ObjectClass::PRIVATE_KEY, &KeyRef::Label(tl.clone()))?.is_empty() {
                    return Ok(false);
                }
                let private = s.create_object(&priv_t.0)?;
                if let Err(e) = s.create_object(&pub_t) {
                    let _ = s.destroy_object(private);
                    return Err(e);
                }
                Ok(true)
            })
            .map_err(|e| e.into_error("importing the key (the token may not allow key import)"))?;
        if !made {
            return Err(Error::Exists(label.to_owned()));
        }
        tracing::info!(label, %algorithm, "imported key onto PKCS#11 token");
        let key = self.open_key(label)?;
        if key.spki != spki {
            return Err(Error::Crypto(format!(
                "key {label:?}: the token holds a different public key than the one imported"
            )));
        }
        Ok(key)
    }

    /// Opens a key by label (or `id:<hex>`) and returns it as its concrete type.
    pub fn open_key(&self, name: &str) -> Result<Arc<Pkcs11Key>> {
        let key_ref = self.parse_ref(name)?;
        let found = self
            .pool
            .run(|s, generation| {
                let handles = find(s, ObjectClass::PRIVATE_KEY, &key_ref)?;
                match handles.as_slice() {
                    [] => Ok(None),
                    [h] => Ok(Some((describe(s, *h)?, *h, generation))),
                    _ => Ok(Some((Err(Error::Exists(format!(
                        "{name} names {} private keys on the token; labels and IDs must be unique",
                        handles.len()
                    ))), handles[0], generation))),
                }
            })
            .map_err(|e| e.into_error("finding the key"))?;
        let Some((described, handle, generation)) = found else {
            return Err(Error::NotFound(name.to_owned()));
        };
        let d = described?;
        let label = d
            .label
            .strip_prefix(&self.pool.cfg.label_prefix)
            .unwrap_or(&d.label)
            .to_owned();
        Ok(Arc::new(Pkcs11Key {
            pool: self.pool.clone(),
            label,
            id: d.id,
            algorithm: d.algorithm,
            spki: d.spki,
            handle: Mutex::new(Some((generation, handle))),
        }))
    }

    /// Lists the keys with their token attributes, sorted by label.
    pub fn list_details(&self) -> Result<Vec<TokenKeyInfo>> {
        let prefix = self.pool.cfg.label_prefix.clone();
        let mut out = self
            .pool
            .run(|s, _| {
                let handles = s.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])?;
                let mut out = Vec::new();
                for h in handles {
                    let d = match describe(s, h)? {
                        Ok(d) => d,
                        Err(e) => {
                            tracing::warn!(error = %e, "skipping a token key privca cannot use");
                            continue;
                        }
                    };
                    let Some(label) = d.label.strip_prefix(&prefix) else {
                        continue;
                    };
                    let flags = s.get_attributes(
                        h,
                        &[
                            AttributeType::Sensitive,
                            AttributeType::Extractable,
                            AttributeType::Local,
                        ],
                    )?;
                    let flag = |t: AttributeType| {
                        flags.iter().any(|a| match (a, t) {
                            (Attribute::Sensitive(v), AttributeType::Sensitive)
                            | (Attribute::Extractable(v), AttributeType::Extractable)
                            | (Attribute::Local(v), AttributeType::Local) => *v,
                            _ => false,
                        })
                    };
                    out.push(TokenKeyInfo {
                        info: KeyInfo {
                            label: label.to_owned(),
                            algorithm: d.algorithm,
                            public_key_der: d.spki,
                        },
                        id: hex(&d.id),
                        sensitive: flag(AttributeType::Sensitive),
                        extractable: flag(AttributeType::Extractable),
                        local: flag(AttributeType::Local),
                    });
                }
                Ok(out)
            })
            .map_err(|e| e.into_error("listing keys"))?;
        out.sort_by(|a, b| a.info.label.cmp(&b.info.label));
        Ok(out)
    }

    /// Destroys both objects of a key (for `privca bench sign`, which makes throw-away keys).
    pub fn delete(&self, label: &str) -> Result<()> {
        let token_label = self.token_label(label)?;
        self.pool
            .run(|s, _| {
                for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
                    for h in find(s, class, &KeyRef::Label(token_label.clone()))? {
                        s.destroy_object(h)?;
                    }
                }
                Ok(())
            })
            .map_err(|e| e.into_error("deleting the key"))
    }

    /// The connection's state, at once and without a PKCS#11 call: fails while the last
    /// reconnection failed (with its error). It does not wait for a session or for a
    /// reconnection under way (then it reports what was known before). Whether keys
    /// actually sign is what [`crate::probe::KeyProbe`] finds out.
    pub fn probe(&self) -> Result<()> {
        let st = match self.pool.state.try_lock() {
            Ok(st) => st,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Ok(()),
        };
        if st.slot.is_none()
            && st.failures > 0
            && let Some(why) = &st.last_error
        {
            return Err(Error::Unavailable(why.clone()));
        }
        Ok(())
    }
}

/// A template holding private key material, wiped when dropped.
struct WipeOnDrop(Vec<Attribute>);

impl Drop for WipeOnDrop {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for a in &mut self.0 {
            match a {
                Attribute::PrivateExponent(v)
                | Attribute::Prime1(v)
                | Attribute::Prime2(v)
                | Attribute::Exponent1(v)
                | Attribute::Exponent2(v)
                | Attribute::Coefficient(v)
                | Attribute::Value(v) => v.zeroize(),
                _ => {}
            }
        }
    }
}

fn private_template(token_label: &str, id: &[u8]) -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Unwrap(false),
        Attribute::Modifiable(false),
        Attribute::Copyable(false),
        Attribute::Label(token_label.as_bytes().to_vec()),
        Attribute::Id(id.to_vec()),
    ]
}

fn curve_params(algorithm: KeyAlgorithm) -> Result<Vec<u8>> {
    let oid = match algorithm {
        KeyAlgorithm::EcdsaP256 => SECP_256_R_1,
        KeyAlgorithm::EcdsaP384 => SECP_384_R_1,
        other => return Err(Error::Unsupported(format!("{other} is not an EC key"))),
    };
    oid.to_der()
        .map_err(|e| Error::Crypto(format!("encoding curve OID: {e}")))
}

/// SEC1 `ECPrivateKey` (RFC 5915 §3), as carried inside PKCS#8.
#[derive(der::Sequence)]
struct EcPrivateKey<'a> {
    _version: u8,
    private_key: &'a OctetStringRef,
    #[asn1(context_specific = "0", optional = "true")]
    _parameters: Option<Any>,
    #[asn1(context_specific = "1", optional = "true")]
    _public_key: Option<Any>,
}

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

fn find(s: &Session, class: ObjectClass, key: &KeyRef) -> Result<Vec<ObjectHandle>, CkError> {
    let mut t = vec![Attribute::Class(class)];
    match key {
        KeyRef::Label(l) => t.push(Attribute::Label(l.as_bytes().to_vec())),
        KeyRef::Id(id) => t.push(Attribute::Id(id.clone())),
    }
    s.find_objects(&t)
}

struct Described {
    label: String,
    id: Vec<u8>,
    algorithm: KeyAlgorithm,
    spki: Vec<u8>,
}

/// Reads what privca needs of a private key (and its public key object): label, ID, type
/// and the public key as a SubjectPublicKeyInfo. The outer error is the token's, the inner
/// one says the key is not usable by privca.
fn describe(s: &Session, h: ObjectHandle) -> Result<Result<Described>, CkError> {
    let attrs = s.get_attributes(
        h,
        &[
            AttributeType::Label,
            AttributeType::Id,
            AttributeType::KeyType,
        ],
    )?;
    let mut label = None;
    let mut id = Vec::new();
    let mut key_type = None;
    for a in attrs {
        match a {
            Attribute::Label(l) => label = Some(String::from_utf8_lossy(&l).into_owned()),
            Attribute::Id(i) => id = i,
            Attribute::KeyType(k) => key_type = Some(k),
            _ => {}
        }
    }
    let label = label.unwrap_or_default();
    let bad = |m: String| Ok(Err(Error::BadKey(format!("token key {label:?}: {m}"))));
    // The public key object with the same ID (or label when the ID is empty).
    let pub_ref = if id.is_empty() {
        KeyRef::Label(label.clone())
    } else {
        KeyRef::Id(id.clone())
    };
    let public = find(s, ObjectClass::PUBLIC_KEY, &pub_ref)?.first().copied();
    let spki = match key_type {
        Some(KeyType::RSA) => {
            // The modulus and exponent are public attributes of the private key too.
            let src = public.unwrap_or(h);
            let a = s.get_attributes(
                src,
                &[AttributeType::Modulus, AttributeType::PublicExponent],
            )?;
            let (mut n, mut e) = (None, None);
            for a in a {
                match a {
                    Attribute::Modulus(v) => n = Some(v),
                    Attribute::PublicExponent(v) => e = Some(v),
                    _ => {}
                }
            }
            let (Some(n), Some(e)) = (n, e) else {
                return bad("no modulus or public exponent".into());
            };
            let alg = match rsa_algorithm(uint_bits(&n)) {
                Ok(a) => a,
                Err(e) => return Ok(Err(e)),
            };
            let enc = (|| {
                let pk = pkcs1::RsaPublicKey {
                    modulus: UintRef::new(&n)?,
                    public_exponent: UintRef::new(&e)?,
                };
                pk.to_der()
            })();
            match enc
                .map_err(|e| Error::Crypto(format!("encoding RSA public key: {e}")))
                .and_then(|der| build_spki(RSA_ENCRYPTION, Any::null(), &der))
            {
                Ok(spki) => (alg, spki),
                Err(e) => return Ok(Err(e)),
            }
        }
        Some(KeyType::EC) => {
            let Some(public) = public else {
                return bad("no public key object with the same ID".into());
            };
            let a = s.get_attributes(public, &[AttributeType::EcParams, AttributeType::EcPoint])?;
            let (mut params, mut point) = (None, None);
            for a in a {
                match a {
                    Attribute::EcParams(v) => params = Some(v),
                    Attribute::EcPoint(v) => point = Some(v),
                    _ => {}
                }
            }
            let (Some(params), Some(point)) = (params, point) else {
                return bad("no EC parameters or point".into());
            };
            let Ok(curve) = ObjectIdentifier::from_der(&params) else {
                return bad("EC parameters are not a named curve".into());
            };
            let alg = match ec_algorithm(curve) {
                Ok(a) => a,
                Err(e) => return Ok(Err(e)),
            };
            let coord = if alg == KeyAlgorithm::EcdsaP256 {
                32
            } else {
                48
            };
            // CKA_EC_POINT is a DER OCTET STRING (PKCS#11 §2.3.3); some tokens give the raw
            // point. The lengths tell them apart.
            let raw = if point.len() == 1 + 2 * coord {
                point
            } else {
                match <&OctetStringRef>::from_der(&point) {
                    Ok(o) => o.as_bytes().to_vec(),
                    Err(_) => return bad("CKA_EC_POINT does not parse".into()),
                }
            };
            let params_any = match Any::encode_from(&curve) {
                Ok(a) => a,
                Err(e) => return Ok(Err(Error::Crypto(e.to_string()))),
            };
            match build_spki(ID_EC_PUBLIC_KEY, params_any, &raw) {
                Ok(spki) => (alg, spki),
                Err(e) => return Ok(Err(e)),
            }
        }
        _ => return bad("not an RSA or EC key".into()),
    };
    Ok(Ok(Described {
        label,
        id,
        algorithm: spki.0,
        spki: spki.1,
    }))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|p| u8::from_str_radix(p, 16).ok()))
        .collect()
}

impl KeyStore for Pkcs11KeyStore {
    fn generate(&self, label: &str, algorithm: KeyAlgorithm) -> Result<Arc<dyn PrivateKey>> {
        Ok(self.generate_key(label, algorithm)?)
    }

    fn generate_for(
        &self,
        label: &str,
        algorithm: KeyAlgorithm,
        uses: KeyUse,
    ) -> Result<Arc<dyn PrivateKey>> {
        Ok(self.generate_key_for(label, algorithm, uses)?)
    }

    fn import_pkcs8(&self, label: &str, pkcs8_der: &[u8]) -> Result<Arc<dyn PrivateKey>> {
        Ok(self.import_key(label, pkcs8_der)?)
    }

    fn open(&self, label: &str) -> Result<Arc<dyn PrivateKey>> {
        Ok(self.open_key(label)?)
    }

    fn list(&self) -> Result<Vec<KeyInfo>> {
        Ok(self.list_details()?.into_iter().map(|k| k.info).collect())
    }

    fn backend_name(&self) -> &'static str {
        "pkcs11"
    }

    fn health(&self) -> Result<()> {
        self.probe()
    }
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

/// A private key on the token.
pub struct Pkcs11Key {
    pool: Arc<Pool>,
    label: String,
    id: Vec<u8>,
    algorithm: KeyAlgorithm,
    spki: Vec<u8>,
    /// The object handle, valid for one connection generation.
    handle: Mutex<Option<(u64, ObjectHandle)>>,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
