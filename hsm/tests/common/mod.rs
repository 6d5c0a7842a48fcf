//! SoftHSM2 fixtures for the PKCS#11 tests.
//!
//! SoftHSM reads `SOFTHSM2_CONF` once, when the module is initialised, and a process cannot
//! set its own environment safely; so every test re-runs itself as a child process with a
//! configuration of its own (a fresh token directory with one token).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Token label and PINs of the test token.
pub const TOKEN: &str = "privca-test";
/// User PIN (the child reads it from `PRIVCA_TEST_PIN`).
pub const PIN: &str = "1234";
const SO_PIN: &str = "5678";

/// The SoftHSM2 module, if installed.
pub fn module() -> Option<PathBuf> {
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

fn util_present() -> bool {
    Command::new("softhsm2-util")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// What a test body gets.
pub struct Env {
    /// The module path.
    pub module: PathBuf,
    /// The directory holding `softhsm2.conf` and `tokens/`.
    pub dir: PathBuf,
}

impl Env {
    /// A store configuration for the test token.
    pub fn config(&self) -> hsm::pkcs11::Pkcs11Config {
        hsm::pkcs11::Pkcs11Config {
            module: self.module.clone(),
            token_label: Some(TOKEN.into()),
            slot: None,
            pin: hsm::SecretSource::Env("PRIVCA_TEST_PIN".into()),
            sessions: 4,
            label_prefix: String::new(),
            wait_timeout_seconds: 10,
        }
    }
}

/// Creates a token directory with one initialised token.
pub fn make_token_dir(dir: &Path) -> PathBuf {
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let out = Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            TOKEN,
            "--pin",
            PIN,
            "--so-pin",
            SO_PIN,
        ])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .expect("run softhsm2-util");
    assert!(
        out.status.success(),
        "softhsm2-util --init-token failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    conf
}

/// Runs `body` in a child process with its own SoftHSM token. Skips (with a message) when
/// SoftHSM2 is missing and `PRIVCA_INTEROP` is unset; fails when it is missing and
/// `PRIVCA_INTEROP=1`.
pub fn with_softhsm(test: &str, body: impl FnOnce(&Env)) {
    if let Ok(dir) = std::env::var("PRIVCA_SOFTHSM_DIR") {
        let env = Env {
            module: module().expect("module"),
            dir: PathBuf::from(dir),
        };
        body(&env);
        return;
    }
    let (Some(_), true) = (module(), util_present()) else {
        if std::env::var("PRIVCA_INTEROP").is_ok_and(|v| v == "1") {
            panic!(
                "{test}: SoftHSM2 is not installed but PRIVCA_INTEROP=1 (apt-get install softhsm2)"
            );
        }
        eprintln!("{test}: skipped (SoftHSM2 not installed; scripts/test.sh installs it)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let conf = make_token_dir(dir.path());
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("SOFTHSM2_CONF", &conf)
        .env("PRIVCA_SOFTHSM_DIR", dir.path())
        .env("PRIVCA_TEST_PIN", PIN)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("--- {test} (child) ---\n{stdout}{stderr}");
    assert!(
        out.status.success(),
        "{test} failed in its SoftHSM child process ({})",
        out.status
    );
    assert!(stdout.contains("1 passed"), "{test}: the child ran no test");
}
