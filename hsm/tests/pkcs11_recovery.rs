//! The PKCS#11 backend survives its sessions, its login and the module itself going away,
//! and fails fast and clearly while the token is gone. Runs in its own process (it
//! finalises the module, which is process-wide).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use hsm::pkcs11::Pkcs11KeyStore;
use hsm::{Error, KeyAlgorithm, KeyStore, PrivateKey, SignatureScheme};

/// A second handle on the same module, as another part of the process would have.
fn other_handle(module: &std::path::Path) -> Pkcs11 {
    let p = Pkcs11::new(module).unwrap();
    match p.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(
            cryptoki::error::RvError::CryptokiAlreadyInitialized,
            _,
        )) => {}
        Err(e) => panic!("initialize: {e}"),
    }
    p
}

fn signs(key: &dyn PrivateKey, what: &str) {
    let sig = key
        .sign(SignatureScheme::RsaPkcs1Sha256, what.as_bytes())
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    hsm::verify(
        SignatureScheme::RsaPkcs1Sha256,
        key.public_key_der(),
        what.as_bytes(),
        &sig,
    )
    .unwrap();
}

#[test]
fn the_backend_reconnects_and_fails_fast_while_the_token_is_gone() {
    common::with_softhsm(
        "the_backend_reconnects_and_fails_fast_while_the_token_is_gone",
        |env| {
            let store = Pkcs11KeyStore::open(env.config()).unwrap();
            let key = store.generate("ca", KeyAlgorithm::Rsa2048).unwrap();
            signs(&*key, "before");

            // 1. Someone logs the application out (C_Logout ends the login of every session).
            let other = other_handle(&env.module);
            let slot = other.get_slots_with_token().unwrap()[0];
            let s = other.open_rw_session(slot).unwrap();
            s.logout().unwrap();
            drop(s);
            signs(&*key, "after logout");
            eprintln!("recovered from CKR_USER_NOT_LOGGED_IN");

            // 2. The module is finalised under us: every session handle is gone and every call
            //    says CKR_CRYPTOKI_NOT_INITIALIZED until someone initialises it again.
            other.finalize().unwrap();
            signs(&*key, "after finalize");
            store.health().unwrap();
            eprintln!("recovered from CKR_CRYPTOKI_NOT_INITIALIZED");

            // 3. The token disappears (its directory is emptied while the module is down).
            let tokens = env.dir.join("tokens");
            let away = env.dir.join("tokens.away");
            other_handle(&env.module).finalize().unwrap();
            std::fs::rename(&tokens, &away).unwrap();
            std::fs::create_dir(&tokens).unwrap();
            let t = Instant::now();
            let e = key
                .sign(SignatureScheme::RsaPkcs1Sha256, b"gone")
                .unwrap_err();
            let took = t.elapsed();
            eprintln!("token gone: {e} (after {took:?})");
            assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
            assert!(
                e.to_string()
                    .contains("no PKCS#11 token labelled \"privca-test\""),
                "{e}"
            );
            assert!(took < Duration::from_secs(10), "took {took:?}");
            // While backing off, calls fail at once, and health says so.
            let t = Instant::now();
            let e = key
                .sign(SignatureScheme::RsaPkcs1Sha256, b"gone")
                .unwrap_err();
            assert!(
                e.to_string().contains("next reconnection attempt in"),
                "{e}"
            );
            assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
            assert!(store.health().is_err());

            // 4. The token comes back: the next use after the backoff delay reconnects.
            other_handle(&env.module).finalize().unwrap();
            std::fs::remove_dir(&tokens).unwrap();
            std::fs::rename(&away, &tokens).unwrap();
            let t = Instant::now();
            loop {
                match key.sign(SignatureScheme::RsaPkcs1Sha256, b"back") {
                    Ok(_) => break,
                    Err(e) => {
                        assert!(
                            t.elapsed() < Duration::from_secs(30),
                            "never came back: {e}"
                        );
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
            eprintln!("token back after {:?}", t.elapsed());
            signs(&*key, "after the token came back");
            store.health().unwrap();

            // 5. Under load: four threads sign while the application is logged out three
            //    times under them. Every signature must still succeed and verify.
            //    (Not C_Finalize: finalising while other threads are inside calls is
            //    undefined in PKCS#11 §5.4, and SoftHSM then crashes.)
            let other = other_handle(&env.module);
            let slot = other.get_slots_with_token().unwrap()[0];
            let stop = AtomicBool::new(false);
            let signed = AtomicUsize::new(0);
            std::thread::scope(|sc| {
                for t in 0..4 {
                    let (key, stop, signed) = (&key, &stop, &signed);
                    sc.spawn(move || {
                        let mut i = 0;
                        while !stop.load(Ordering::Relaxed) {
                            signs(&**key, &format!("load {t} {i}"));
                            signed.fetch_add(1, Ordering::Relaxed);
                            i += 1;
                        }
                    });
                }
                for _ in 0..3 {
                    std::thread::sleep(Duration::from_millis(150));
                    let s = other.open_rw_session(slot).unwrap();
                    // May race with a reconnection that has not logged in yet.
                    let _ = s.logout();
                }
                std::thread::sleep(Duration::from_millis(150));
                stop.store(true, Ordering::Relaxed);
            });
            let n = signed.load(Ordering::Relaxed);
            eprintln!("{n} signatures by 4 threads across 3 logouts, none failed");
            assert!(n > 0);

            // 6. The PIN changes under a running store to a wrong one: the reconnection
            //    fails with a clear error, and the same wrong PIN is not tried again (a real
            //    HSM locks the user after a few failures) until the PIN source changes.
            let pin_file = env.dir.join("pin");
            std::fs::write(&pin_file, format!("{}\n", common::PIN)).unwrap();
            std::fs::set_permissions(
                &pin_file,
                <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
            )
            .unwrap();
            let mut cfg = env.config();
            cfg.pin = hsm::SecretSource::File(pin_file.clone());
            let filed = Pkcs11KeyStore::open(cfg).unwrap();
            let key = filed.open("ca").unwrap();
            signs(&*key, "file PIN");
            std::fs::write(&pin_file, "0000\n").unwrap();
            other_handle(&env.module).finalize().unwrap();
            let e = key.sign(SignatureScheme::RsaPkcs1Sha256, b"x").unwrap_err();
            assert!(
                matches!(e, Error::Secret(_)) || e.to_string().contains("CKR_PIN_INCORRECT"),
                "{e:?}"
            );
            eprintln!("wrong PIN: {e}");
            std::thread::sleep(hsm::pkcs11::BACKOFF_START * 2);
            let e = key.sign(SignatureScheme::RsaPkcs1Sha256, b"x").unwrap_err();
            assert!(
                e.to_string()
                    .contains("rejected this PIN before; not trying it again"),
                "{e}"
            );
            eprintln!("same wrong PIN again: {e}");
            std::fs::write(&pin_file, format!("{}\n", common::PIN)).unwrap();
            let t = Instant::now();
            while key.sign(SignatureScheme::RsaPkcs1Sha256, b"x").is_err() {
                assert!(
                    t.elapsed() < Duration::from_secs(30),
                    "the fixed PIN was never used"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            signs(&*key, "fixed PIN");
        },
    );
}

/// Moves the token away and back under a signing load, without anyone finalising the
/// module (what a network HSM restart or a USB token re-plug looks like to the library):
/// signing fails while it is gone and resumes by itself, within a bound, once it is back.
fn token_away_and_back_under_load(env: &common::Env, what: &str, away: impl Fn(bool)) {
    let store = Pkcs11KeyStore::open(env.config()).unwrap();
    let key = store.generate(what, KeyAlgorithm::Rsa2048).unwrap();
    signs(&*key, "before");
    let stop = AtomicBool::new(false);
    let gone = AtomicBool::new(false);
    let (ok_before, failed_while_gone, ok_after) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    let back_at = std::sync::Mutex::new(None::<Instant>);
    let first_ok_after = std::sync::Mutex::new(None::<Duration>);
    let last_error = std::sync::Mutex::new(String::new());
    std::thread::scope(|sc| {
        for t in 0..4 {
            let key = &key;
            let (stop, gone, ok_before, failed_while_gone, ok_after) =
                (&stop, &gone, &ok_before, &failed_while_gone, &ok_after);
            let (back_at, first_ok_after, last_error) = (&back_at, &first_ok_after, &last_error);
            sc.spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let msg = format!("load {t} {i}");
                    i += 1;
                    let was_gone = gone.load(Ordering::SeqCst);
                    let back = *back_at.lock().unwrap();
                    match key.sign(SignatureScheme::RsaPkcs1Sha256, msg.as_bytes()) {
                        Ok(sig) => {
                            hsm::verify(
                                SignatureScheme::RsaPkcs1Sha256,
                                key.public_key_der(),
                                msg.as_bytes(),
                                &sig,
                            )
                            .unwrap();
                            if let Some(b) = back {
                                ok_after.fetch_add(1, Ordering::SeqCst);
                                first_ok_after.lock().unwrap().get_or_insert(b.elapsed());
                            } else if !was_gone {
                                ok_before.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        Err(e) => {
                            if was_gone && back.is_none() {
                                failed_while_gone.fetch_add(1, Ordering::SeqCst);
                            }
                            *last_error.lock().unwrap() = e.to_string();
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(500));
        gone.store(true, Ordering::SeqCst);
        away(true);
        eprintln!("{what}: token moved away");
        std::thread::sleep(Duration::from_secs(5));
        away(false);
        *back_at.lock().unwrap() = Some(Instant::now());
        eprintln!("{what}: token moved back");
        // Liveness bound: signing must resume within 30 s of the token's return.
        let t = Instant::now();
        while ok_after.load(Ordering::SeqCst) < 20 && t.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(100));
        }
        stop.store(true, Ordering::SeqCst);
    });
    let (b, g, a) = (
        ok_before.load(Ordering::SeqCst),
        failed_while_gone.load(Ordering::SeqCst),
        ok_after.load(Ordering::SeqCst),
    );
    eprintln!(
        "{what}: {b} signatures before, {g} failures while gone, {a} signatures after the return \
         (first after {:?}); last error: {}",
        first_ok_after.lock().unwrap(),
        last_error.lock().unwrap()
    );
    assert!(b > 0, "no signature before the token went away");
    assert!(g > 0, "signing did not fail while the token was gone");
    assert!(
        a >= 20,
        "signing did not resume within 30 s after the token came back: {}",
        last_error.lock().unwrap()
    );
    store.health().unwrap();
}

#[test]
fn signing_resumes_after_the_token_directory_went_away_and_came_back() {
    common::with_softhsm(
        "signing_resumes_after_the_token_directory_went_away_and_came_back",
        |env| {
            let tokens = env.dir.join("tokens");
            let away = env.dir.join("tokens.away");
            token_away_and_back_under_load(env, "whole-dir", |go| {
                if go {
                    std::fs::rename(&tokens, &away).unwrap();
                } else {
                    std::fs::rename(&away, &tokens).unwrap();
                }
            });
        },
    );
}

#[test]
fn signing_resumes_after_the_token_went_away_and_came_back() {
    common::with_softhsm(
        "signing_resumes_after_the_token_went_away_and_came_back",
        |env| {
            // The token's own directory (tokens/<uuid>), as a re-plugged token would be.
            let tokens = env.dir.join("tokens");
            let token = std::fs::read_dir(&tokens)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.is_dir())
                .unwrap();
            let away = env.dir.join("token.away");
            token_away_and_back_under_load(env, "token-dir", |go| {
                if go {
                    std::fs::rename(&token, &away).unwrap();
                } else {
                    std::fs::rename(&away, &token).unwrap();
                }
            });
        },
    );
}

/// Sessions open on the token in this process. SoftHSM does not report
/// `ulSessionCount`, but it gives a new session the lowest free handle number (its
/// SessionManager reuses the first empty place): after opening `K` more sessions than the
/// highest handle in use, the highest handle is the number open before plus `K`.
fn open_sessions(p: &Pkcs11) -> u64 {
    const K: u64 = 512;
    let slot = p.get_slots_with_token().unwrap()[0];
    let probes: Vec<_> = (0..K).map(|_| p.open_ro_session(slot).unwrap()).collect();
    let highest = probes.iter().map(|s| s.handle()).max().unwrap();
    drop(probes);
    highest - K
}

#[test]
fn lost_logins_do_not_leak_sessions() {
    common::with_softhsm("lost_logins_do_not_leak_sessions", |env| {
        let store = Pkcs11KeyStore::open(env.config()).unwrap();
        let key = store.generate("ca", KeyAlgorithm::Rsa2048).unwrap();
        let other = other_handle(&env.module);
        let slot = other.get_slots_with_token().unwrap()[0];
        // Use every session of the pool (4) at once, so that the pool is full.
        let load = |round: usize| {
            std::thread::scope(|sc| {
                for t in 0..4 {
                    let key = &key;
                    sc.spawn(move || {
                        for i in 0..10 {
                            signs(&**key, &format!("round {round} thread {t} {i}"));
                        }
                    });
                }
            });
        };
        load(0);
        let before = open_sessions(&other);
        eprintln!("open sessions after the first load: {before}");
        for round in 1..=5 {
            // Someone logs the application out: every session loses its login.
            let s = other.open_rw_session(slot).unwrap();
            s.logout().unwrap();
            drop(s);
            load(round);
            let now = open_sessions(&other);
            eprintln!("open sessions after lost login {round}: {now}");
            assert!(
                now <= before,
                "sessions leak: {before} before, {now} after {round} lost logins"
            );
        }
    });
}
