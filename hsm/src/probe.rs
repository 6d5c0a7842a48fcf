//! A bounded health probe of keys: proves that keys can sign, without making the caller
//! (a `/healthz` request) wait for the key backend.
//!
//! A background thread signs a short fixed message with every registered key, verifies
//! the signature, and records the outcome; then it waits [`ProbeOptions::interval`] and
//! does it again. [`KeyProbe::report`] only reads what the thread recorded, so it answers
//! at once even when every PKCS#11 session is busy or a signature hangs: a probe that has
//! not finished after [`ProbeOptions::timeout`] is reported as a failure of that key, and
//! so is a result older than [`ProbeOptions::max_age`] (the thread is stuck further back).
//! Signing through the key is the only proof that counts: a session or a login can look
//! fine while the key operation fails.

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::PrivateKey;

/// How often and how patiently keys are probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeOptions {
    /// Pause between two rounds of probes (at most one signature per key per interval).
    pub interval: Duration,
    /// A probe still running after this long counts as a failure.
    pub timeout: Duration,
    /// A recorded result older than this counts as a failure (no newer round finished).
    pub max_age: Duration,
}

impl ProbeOptions {
    /// When a key is probed again: after the interval, or sooner (at most 2 s) after a
    /// failure, so that a key that works again is reported so soon.
    fn retry_after(&self, last: &Result<(), String>) -> Duration {
        match last {
            Ok(()) => self.interval,
            Err(_) => self.interval.min(Duration::from_secs(2)),
        }
    }
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            max_age: Duration::from_secs(30),
        }
    }
}

/// The message every probe signs. Not a certificate, CRL or OCSP structure, so the
/// signature cannot be mistaken for one.
const PROBE_MESSAGE: &[u8] = b"privca key health probe (not a certificate, CRL or OCSP response)";

/// The state of one probed key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyHealth {
    /// The name it was registered under (`ca:issuing`, `https`, `scep-ra:default`).
    pub name: String,
    /// True when its last probe signed and verified, recently enough.
    pub ok: bool,
    /// Why not (backend messages: module, token and `CKR_…` codes, never secrets).
    pub error: Option<String>,
}

/// What [`KeyProbe::report`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeReport {
    /// Every registered key, in registration order.
    pub keys: Vec<KeyHealth>,
}

impl ProbeReport {
    /// True when every key is usable.
    pub fn ok(&self) -> bool {
        self.keys.iter().all(|k| k.ok)
    }

    /// The first failure, as `name: why`.
    pub fn first_error(&self) -> Option<String> {
        self.keys
            .iter()
            .find(|k| !k.ok)
            .map(|k| format!("{}: {}", k.name, k.error.as_deref().unwrap_or("not usable")))
    }
}

struct Entry {
    name: String,
    key: Arc<dyn PrivateKey>,
    /// Outcome and end time of the last finished probe.
    last: Option<(Instant, Result<(), String>)>,
    /// Start of the probe running now.
    running_since: Option<Instant>,
}

struct Inner {
    options: ProbeOptions,
    entries: Mutex<Vec<Entry>>,
    /// Wakes the thread early (a key was added).
    wake: Condvar,
}

/// Periodic signing probes of a set of keys (see the [module docs](self)).
pub struct KeyProbe {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KeyProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyProbe")
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl KeyProbe {
    /// Starts the probe thread. It stops by itself once the `KeyProbe` is dropped.
    pub fn start(options: ProbeOptions) -> std::io::Result<KeyProbe> {
        let inner = Arc::new(Inner {
            options,
            entries: Mutex::new(Vec::new()),
            wake: Condvar::new(),
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("privca-key-probe".into())
            .spawn(move || run(weak))?;
        Ok(KeyProbe { inner })
    }

    /// Adds a key to probe (probed at once, then every interval). A name registered
    /// before is replaced.
    pub fn add(&self, name: &str, key: Arc<dyn PrivateKey>) {
        let mut entries = self.inner.lock();
        entries.retain(|e| e.name != name);
        entries.push(Entry {
            name: name.to_string(),
            key,
            last: None,
            running_since: None,
        });
        drop(entries);
        self.inner.wake.notify_all();
    }

    /// The state of every key, from what the probe thread recorded: never waits for the
    /// key backend.
    pub fn report(&self) -> ProbeReport {
        let o = self.inner.options;
        let now = Instant::now();
        let entries = self.inner.lock();
        let keys = entries
            .iter()
            .map(|e| {
                let error = if let Some(since) = e.running_since
                    && now.duration_since(since) >= o.timeout
                {
                    Some(format!(
                        "a test signature has not answered for {} s",
                        now.duration_since(since).as_secs()
                    ))
                } else {
                    match &e.last {
                        None if e.running_since.is_some() => None, // first probe running
                        None => Some("not probed yet".to_string()),
                        Some((at, _)) if now.duration_since(*at) > o.max_age => Some(format!(
                            "no test signature finished for {} s",
                            now.duration_since(*at).as_secs()
                        )),
                        Some((_, Ok(()))) => None,
                        Some((_, Err(why))) => Some(why.clone()),
                    }
                };
                KeyHealth {
                    name: e.name.clone(),
                    ok: error.is_none(),
                    error,
                }
            })
            .collect();
        ProbeReport { keys }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Signs and verifies the probe message with `key`.
pub fn probe_key(key: &dyn PrivateKey) -> Result<(), String> {
    let scheme = key.algorithm().default_scheme();
    let sig = key.sign(scheme, PROBE_MESSAGE).map_err(|e| e.to_string())?;
    crate::verify(scheme, key.public_key_der(), PROBE_MESSAGE, &sig)
        .map_err(|_| "the test signature does not verify with the key's public key".to_string())
}

fn run(weak: Weak<Inner>) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        // One round: every key that has not been probed within the interval.
        loop {
            let next = {
                let mut entries = inner.lock();
                let now = Instant::now();
                let options = inner.options;
                let due = entries.iter_mut().find(|e| {
                    e.running_since.is_none()
                        && e.last
                            .as_ref()
                            .is_none_or(|(at, r)| now.duration_since(*at) >= options.retry_after(r))
                });
                due.map(|e| {
                    e.running_since = Some(now);
                    (e.name.clone(), e.key.clone())
                })
            };
            let Some((name, key)) = next else { break };
            let outcome = probe_key(key.as_ref());
            if let Err(why) = &outcome {
                tracing::warn!(key = %name, error = %why, "key health probe failed");
            }
            let mut entries = inner.lock();
            if let Some(e) = entries.iter_mut().find(|e| e.name == name) {
                e.running_since = None;
                e.last = Some((Instant::now(), outcome));
            }
        }
        // Sleep until the next key is due (or a key is added, or we are dropped).
        let entries = inner.lock();
        let now = Instant::now();
        let wait = entries
            .iter()
            .filter_map(|e| {
                e.last
                    .as_ref()
                    .map(|(at, r)| *at + inner.options.retry_after(r))
            })
            .min()
            .map_or(inner.options.interval, |t| t.saturating_duration_since(now))
            .clamp(Duration::from_millis(10), inner.options.interval);
        let (entries, _) = inner
            .wake
            .wait_timeout(entries, wait.min(Duration::from_secs(1)))
            .unwrap_or_else(|p| p.into_inner());
        drop(entries);
        drop(inner);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::KeyAlgorithm;
    use crate::testing::{Fault, FaultSwitch, FaultyKey};

    fn wait_for(probe: &KeyProbe, ok: bool) -> ProbeReport {
        let t = Instant::now();
        loop {
            let r = probe.report();
            if r.ok() == ok && !r.keys.is_empty() && r.keys.iter().all(|k| k.ok == ok) {
                return r;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "never {ok}: {r:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn reports_failing_and_hanging_keys_without_waiting_for_them() {
        let switch = FaultSwitch::new();
        let probe = KeyProbe::start(ProbeOptions {
            interval: Duration::from_millis(50),
            timeout: Duration::from_millis(300),
            max_age: Duration::from_secs(5),
        })
        .unwrap();
        let key = FaultyKey::ephemeral("ca", KeyAlgorithm::EcdsaP256, &switch).unwrap();
        probe.add("ca:test", key);
        wait_for(&probe, true);
        // Signing fails: reported down with the backend's reason.
        switch.set(Fault::Gone("token gone".into()));
        let r = wait_for(&probe, false);
        assert!(r.first_error().unwrap().contains("token gone"), "{r:?}");
        // Works again: reported up.
        switch.set(Fault::None);
        wait_for(&probe, true);
        // Signing hangs: reported down once the probe has run past its timeout, and the
        // report never waits for the hanging signature.
        switch.set(Fault::Hang);
        let r = wait_for(&probe, false);
        assert!(
            r.first_error().unwrap().contains("has not answered"),
            "{r:?}"
        );
        switch.set(Fault::None);
        wait_for(&probe, true);
    }
}
