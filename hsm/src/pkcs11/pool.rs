//! The connection to the token, the session pool, and recovery when the token, the
//! sessions or the login are lost (see the module docs of [`super`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Function, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::RawAuthPin;

use super::Pkcs11Config;
use crate::{Error, Result};

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

/// A PKCS#11 error as one line: function and `CKR_…` code (the crate's own texts are long).
pub(super) fn ck(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, f) => format!("C_{f:?}: {}", rv_name(*rv)),
        other => other.to_string(),
    }
}

pub(super) fn rv_name(rv: RvError) -> String {
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
pub(super) fn stale_handle(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(RvError::ObjectHandleInvalid | RvError::KeyHandleInvalid, _)
    )
}

/// What every user of one PKCS#11 module in this process shares: `C_Initialize` and
/// `C_Finalize` are process-wide (PKCS#11 §5.4), so the key store of the CA keys and the
/// one of the HTTPS listener key, when they use the same module, must agree on when the
/// module is re-initialised.
pub(super) struct ModuleGate {
    /// Held shared by every PKCS#11 call of privca, exclusively while the module is
    /// finalised and initialised again.
    calls: RwLock<()>,
    /// Bumped at every re-initialisation: session handles of an older value are gone (and
    /// their numbers may name new sessions), so they are never used or closed again.
    generation: AtomicU64,
}

impl ModuleGate {
    /// The gate of `module` (one per module path in the process).
    pub(super) fn of(module: &Path) -> Arc<ModuleGate> {
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

pub(super) struct Pool {
    pub(super) cfg: Pkcs11Config,
    pub(super) gate: Arc<ModuleGate>,
    pub(super) state: Mutex<State>,
    pub(super) freed: Condvar,
}

#[derive(Default)]
pub(super) struct State {
    /// The loaded module; kept across reconnections (it is re-initialised as needed).
    module: Option<Pkcs11>,
    /// The current connection: the slot we are logged in on.
    pub(super) slot: Option<Slot>,
    /// Idle sessions of the current connection.
    idle: Vec<Pooled>,
    /// Sessions of the current connection lent out.
    lent: usize,
    /// Bumped whenever the connection is dropped; sessions and handles of older
    /// generations are never used again.
    generation: u64,
    /// Failed reconnections in a row, the earliest time of the next attempt, and why.
    pub(super) failures: u32,
    next_attempt: Option<Instant>,
    pub(super) last_error: Option<String>,
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

pub(super) fn backoff(failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(10);
    BACKOFF_START.saturating_mul(factor).min(BACKOFF_MAX)
}

impl Pool {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
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
    pub(super) fn connect(&self, st: &mut State) -> Result<()> {
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
    pub(super) fn run<T>(
        &self,
        mut f: impl FnMut(&Session, u64) -> Result<T, CkError>,
    ) -> Result<T, OpError> {
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
pub(super) enum OpError {
    /// The backend failed (no session, no connection).
    Backend(Error),
    /// The token answered with an error.
    Token(CkError),
}

impl OpError {
    pub(super) fn into_error(self, what: &str) -> Error {
        match self {
            OpError::Backend(e) => e,
            OpError::Token(e) => Error::Token(format!("{what}: {}", ck(&e))),
        }
    }
}
