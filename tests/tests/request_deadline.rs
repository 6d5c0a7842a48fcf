//! A request answered 503 "request timed out" issues nothing: the request timeout is the
//! issuance pipeline's deadline, and a certificate whose signature comes back after it is
//! not recorded (ca_core::deadline). Tested through the HTTP layer with a CA key that
//! hangs (`hsm::testing::FaultyKeyStore`, which sleeps before every signature).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hsm::KeyStore;
use hsm::testing::{Fault, FaultSwitch, FaultyKeyStore};
use privca_tests::{InProcessServer, TestCa, admin_issue_tls_server, admin_state};

const BIN: &str = env!("CARGO_BIN_EXE_privca-under-test");
const TOKEN: &str = "0123456789abcdef-admin";

#[test]
fn a_timed_out_request_issues_nothing() {
    let ca = TestCa::init(Path::new(BIN), &[]);
    let cfg = privca_server::config::Config::load(&ca.config()).unwrap();
    // Every CA key opened through this store sleeps as long as `slow` says before each
    // signature (a hanging token), and `slow` counts the signatures that came back.
    let slow = FaultSwitch::new();
    let keys: Arc<dyn KeyStore> = Arc::new(FaultyKeyStore::new(cfg.open_keys().unwrap(), &slow));
    let auth = Arc::new(
        ca_core::Authority::load(
            &cfg.ca,
            &cfg.profiles,
            &cfg.base_dir,
            &*keys,
            cfg.open_store().unwrap(),
            Arc::new(ca_core::SystemClock),
        )
        .unwrap(),
    );
    let state = admin_state(auth.clone(), &cfg.scep, TOKEN, Some(keys));
    let server = InProcessServer::start(state, Duration::from_secs(2));
    let addr = server.addr;
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let issue = |dns: &str| {
        let r = admin_issue_tls_server(&client, addr, TOKEN, dns);
        (r.status().as_u16(), r.text().unwrap())
    };
    let count = || auth.store().stats().unwrap().certificates;

    // A working key: issued and recorded.
    let before = count();
    let (s, body) = issue("fast.example.com");
    assert_eq!(s, 201, "{body}");
    assert_eq!(count(), before + 1);

    // The key hangs past the request timeout (2 s): 503, and once the signature comes
    // back (3 s), nothing is recorded.
    slow.set(Fault::Delay(Duration::from_millis(3_000)));
    for i in 0..3 {
        let before = count();
        let signed_before = slow.signatures();
        let (s, body) = issue(&format!("slow{i}.example.com"));
        eprintln!("slow issuance {i}: {s} {}", body.trim());
        assert_eq!(s, 503, "{body}");
        assert!(body.contains("timed out"), "{body}");
        // Wait until the hanging signature has returned (bounded).
        let t = std::time::Instant::now();
        while slow.signatures() == signed_before {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the signature never returned"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            count(),
            before,
            "a certificate was recorded for a request answered 503"
        );
    }

    // The key recovers: issuance works again.
    slow.set(Fault::None);
    let before = count();
    let (s, body) = issue("again.example.com");
    assert_eq!(s, 201, "{body}");
    assert_eq!(count(), before + 1);
    server.stop();
}
