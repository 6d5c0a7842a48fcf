//! Test support for code that holds keys (behind the `testing` feature; crates turn it on
//! in their `[dev-dependencies]`, the `privca` binary never has it).
//!
//! * [`FaultyKey`] and [`FaultyKeyStore`]: keys whose backend can be taken away, made to
//!   hang or slowed down while a test runs, switched through one shared [`FaultSwitch`].
//!   They stand for a PKCS#11 token that is unplugged or stops answering.
//! * [`keystore_suite`]: the contract every [`KeyStore`] backend passes, run against the
//!   software keys and SoftHSM2 by this crate's tests (`hsm::keystore_suite!`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{
    Error, KeyAlgorithm, KeyInfo, KeyStore, KeyUse, OaepHash, PrivateKey, Result, SignatureScheme,
};

pub mod keystore_suite;

/// What keys behind a [`FaultSwitch`] do on their private-key operations (signing and
/// decryption). Public-key facts (label, algorithm, SPKI) are always answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Fault {
    /// Every operation goes through to the real key.
    #[default]
    None,
    /// Every operation fails with [`Error::Unavailable`] carrying this text, as a key whose
    /// token is gone.
    Gone(String),
    /// Every operation blocks until the fault is switched to something else, as a token
    /// that stops answering.
    Hang,
    /// Every operation sleeps this long, then goes through (a slow token).
    Delay(Duration),
}

#[derive(Debug, Default)]
struct SwitchState {
    fault: Mutex<Fault>,
    signatures: AtomicUsize,
}

/// One switch shared by any number of [`FaultyKey`]s: clone it, hand it to the keys, and
/// change the [`Fault`] from the test.
#[derive(Clone, Debug, Default)]
pub struct FaultSwitch {
    state: Arc<SwitchState>,
}

impl FaultSwitch {
    /// A switch with no fault.
    pub fn new() -> FaultSwitch {
        FaultSwitch::default()
    }

    /// Sets what the keys do from their next operation on (a hanging operation notices
    /// within 10 ms).
    pub fn set(&self, fault: Fault) {
        *self.lock() = fault;
    }

    /// The fault in force.
    pub fn fault(&self) -> Fault {
        self.lock().clone()
    }

    /// Signatures that went through to a real key and came back (successful or not) so far.
    pub fn signatures(&self) -> usize {
        self.state.signatures.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Fault> {
        self.state.fault.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies the fault in force before an operation: `Err` when the key is gone,
    /// after the delay or once a hang is lifted otherwise.
    fn before_operation(&self) -> Result<()> {
        loop {
            match self.fault() {
                Fault::None => return Ok(()),
                Fault::Gone(why) => return Err(Error::Unavailable(why)),
                Fault::Delay(d) => {
                    std::thread::sleep(d);
                    return Ok(());
                }
                Fault::Hang => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

/// A key whose private-key operations obey a [`FaultSwitch`].
#[derive(Debug)]
pub struct FaultyKey {
    inner: Arc<dyn PrivateKey>,
    switch: FaultSwitch,
}

impl FaultyKey {
    /// Wraps `inner`; its operations obey `switch`.
    pub fn new(inner: Arc<dyn PrivateKey>, switch: &FaultSwitch) -> FaultyKey {
        FaultyKey {
            inner,
            switch: switch.clone(),
        }
    }

    /// A fresh software key under `label` (never written anywhere), wrapped.
    pub fn ephemeral(
        label: &str,
        algorithm: KeyAlgorithm,
        switch: &FaultSwitch,
    ) -> Result<Arc<dyn PrivateKey>> {
        let key = crate::soft::SoftKey::generate_ephemeral(label, algorithm)?;
        Ok(Arc::new(FaultyKey::new(Arc::new(key), switch)))
    }
}

impl PrivateKey for FaultyKey {
    fn label(&self) -> &str {
        self.inner.label()
    }
    fn algorithm(&self) -> KeyAlgorithm {
        self.inner.algorithm()
    }
    fn public_key_der(&self) -> &[u8] {
        self.inner.public_key_der()
    }
    fn sign(&self, scheme: SignatureScheme, message: &[u8]) -> Result<Vec<u8>> {
        self.switch.before_operation()?;
        let signature = self.inner.sign(scheme, message);
        self.switch.state.signatures.fetch_add(1, Ordering::SeqCst);
        signature
    }
    fn decrypt_pkcs1v15(&self, ciphertext: &[u8]) -> Result<Vec<u8>> {
        self.switch.before_operation()?;
        self.inner.decrypt_pkcs1v15(ciphertext)
    }
    fn decrypt_oaep(&self, hash: OaepHash, ciphertext: &[u8]) -> Result<Vec<u8>> {
        self.switch.before_operation()?;
        self.inner.decrypt_oaep(hash, ciphertext)
    }
}

/// A [`KeyStore`] that opens every key of another one as a [`FaultyKey`] sharing one
/// switch, as a server opens its CA keys by label. Keys it generates or imports are
/// returned as the inner store made them.
pub struct FaultyKeyStore {
    inner: Arc<dyn KeyStore>,
    switch: FaultSwitch,
}

impl FaultyKeyStore {
    /// Wraps `inner`; the keys it opens obey `switch`.
    pub fn new(inner: Arc<dyn KeyStore>, switch: &FaultSwitch) -> FaultyKeyStore {
        FaultyKeyStore {
            inner,
            switch: switch.clone(),
        }
    }
}

impl KeyStore for FaultyKeyStore {
    fn generate(&self, label: &str, algorithm: KeyAlgorithm) -> Result<Arc<dyn PrivateKey>> {
        self.inner.generate(label, algorithm)
    }
    fn generate_for(
        &self,
        label: &str,
        algorithm: KeyAlgorithm,
        uses: KeyUse,
    ) -> Result<Arc<dyn PrivateKey>> {
        self.inner.generate_for(label, algorithm, uses)
    }
    fn import_pkcs8(&self, label: &str, pkcs8_der: &[u8]) -> Result<Arc<dyn PrivateKey>> {
        self.inner.import_pkcs8(label, pkcs8_der)
    }
    fn open(&self, label: &str) -> Result<Arc<dyn PrivateKey>> {
        Ok(Arc::new(FaultyKey::new(
            self.inner.open(label)?,
            &self.switch,
        )))
    }
    fn list(&self) -> Result<Vec<KeyInfo>> {
        self.inner.list()
    }
    fn backend_name(&self) -> &'static str {
        self.inner.backend_name()
    }
    fn health(&self) -> Result<()> {
        self.inner.health()
    }
}
