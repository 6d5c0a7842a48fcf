//! privca renews its own certificates while it runs (issue 15 item 5): a server started
//! with an OCSP responder, a SCEP RA and an HTTPS listener certificate that each expire
//! within `[server.renewal] margin` replaces all three without a restart.
//!
//! - `openssl ocsp` verifies answers before and after, and the responder certificate in
//!   the answer changes (also for a cached, nonce-less answer);
//! - micromdm `scepclient` enrolls after the renewal (it fetches the new RA), and a
//!   request our Rust client encrypted to the OLD RA certificate is still answered;
//! - `openssl s_client` sees the new HTTPS certificate serial;
//! - `/healthz` reports each certificate's days to expiry, before and after;
//! - a restart loads the renewed certificates and their new keys from the files.
//!
//! The short-lived certificates are made honestly: the HTTPS one with `privca init
//! --tls-days 1`, the responder and RA ones by re-issuing them for their keys with a
//! validity of one day through the issuance pipeline (what `init` does, with the
//! profile's validity overridden). Runs when `PRIVCA_INTEROP=1`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use privca_tests::output_text as text;
use privca_tests::{
    TestCa, free_port, healthz, hex_eq, interop_enabled, ocsp_good as ocsp, responder_serial,
    scepclient, serial_of, status_of, tls_serial,
};

const BIN: &str = env!("CARGO_BIN_EXE_privca-under-test");

const EXTRA: &str = r#"
[scep.endpoints.devices]
profile = "device"
default = true
allow_des = true            # micromdm scepclient 2.1.0 only encrypts with DES-CBC
challenge = { method = "static", accounts = [{ name = "mdm", secret = { file = "scep.secret" } }] }
"#;

#[test]
fn server_renews_its_own_certificates_without_a_restart() {
    if !interop_enabled("server_renews_its_own_certificates_without_a_restart") {
        return;
    }
    let tls_port = free_port();
    let tls_listen = format!("127.0.0.1:{tls_port}");
    let mut ca = TestCa::init(
        Path::new(BIN),
        &[
            "--root-key",
            "rsa-2048",
            "--issuing-key",
            "rsa-2048",
            "--tls-listen",
            &tls_listen,
            "--tls-days",
            "1",
        ],
    );
    privca_tests::reissue_for_one_day(&ca, "issuing-ocsp", "ocsp-signing");
    privca_tests::reissue_for_one_day(&ca, "issuing-ra", "ra");
    privca_tests::write_secret(&ca.data.join("scep.secret"), "s3cret\n");
    let mut cfg = std::fs::read_to_string(ca.config()).expect("config");
    cfg.push_str(EXTRA);
    // Checked every 15 seconds; the first check comes one interval after start.
    cfg = cfg.replace("check_interval = \"1h\"", "check_interval = \"15s\"");
    assert!(cfg.contains("check_interval = \"15s\""), "{cfg}");
    std::fs::write(ca.config(), &cfg).expect("config");
    ca.write_chain_pem();

    let old_ocsp = serial_of(&ca.data.join("ca/issuing-ocsp.crt"));
    let old_ra = serial_of(&ca.data.join("ca/issuing-ra.crt"));
    let old_tls = serial_of(&ca.data.join("ca/tls-server.crt"));
    ca.start();

    // Before the first check: the short-lived certificates are in use and due.
    let h = healthz(&ca);
    for name in ["ocsp:issuing", "ra:issuing", "https"] {
        let (status, days, _) = status_of(&h, name);
        assert_eq!(status, "renewal-due", "{name}: {h}");
        assert!((0..=1).contains(&days), "{name}: {h}");
    }
    let (status, days, _) = status_of(&h, "ca:issuing");
    assert!(status == "ok" && days > 30, "{h}");
    // A device certificate to ask OCSP about, from the Rust client (see below).
    let devices = ca.url("/scep/devices");
    let ra_before_pem = std::fs::read(ca.data.join("ca/issuing-ra.crt")).expect("RA");
    let ra_before = ca_core::authority::cert_der_from_bytes(&ra_before_pem).expect("RA DER");
    let device = ca.path("d0");
    let o = scepclient(&device, &devices, "device0", Some("s3cret"));
    assert!(
        o.status.success() && text(&o).contains("SUCCESS"),
        "{}",
        text(&o)
    );
    let device_cert = device.join("cert.pem");
    let t = ocsp(&ca, &device_cert, false);
    assert!(hex_eq(&responder_serial(&t), &old_ocsp), "{t}");
    // A nonce-less request: its answer is pre-signed and cached.
    let t = ocsp(&ca, &device_cert, true);
    assert!(hex_eq(&responder_serial(&t), &old_ocsp), "{t}");
    assert!(hex_eq(&tls_serial(&ca, tls_port, "before"), &old_tls));

    // The renewal task replaces all three.
    let deadline = Instant::now() + Duration::from_secs(60);
    let h = loop {
        let h = healthz(&ca);
        if ["ocsp:issuing", "ra:issuing", "https"]
            .iter()
            .all(|n| status_of(&h, n).0 == "ok")
        {
            break h;
        }
        assert!(
            Instant::now() < deadline,
            "not renewed: {h}\n{}",
            ca.server_log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let (_, ocsp_days, ocsp_serial) = status_of(&h, "ocsp:issuing");
    let (_, ra_days, ra_serial) = status_of(&h, "ra:issuing");
    let (_, tls_days, tls_serial_now) = status_of(&h, "https");
    // The profile's validity for the responder (365 days) and the RA (730), tls_days (90).
    assert!((363..=365).contains(&ocsp_days), "{h}");
    assert!((728..=730).contains(&ra_days), "{h}");
    assert!((88..=90).contains(&tls_days), "{h}");
    // The files a restart reads hold the new certificates, naming their new keys.
    let new_ocsp = serial_of(&ca.data.join("ca/issuing-ocsp.crt"));
    let new_ra = serial_of(&ca.data.join("ca/issuing-ra.crt"));
    let new_tls = serial_of(&ca.data.join("ca/tls-server.crt"));
    assert!(hex_eq(&new_ocsp, &ocsp_serial) && !hex_eq(&new_ocsp, &old_ocsp));
    assert!(hex_eq(&new_ra, &ra_serial) && !hex_eq(&new_ra, &old_ra));
    assert!(hex_eq(&new_tls, &tls_serial_now) && !hex_eq(&new_tls, &old_tls));
    for f in ["issuing-ocsp", "issuing-ra", "tls-server"] {
        let p = ca.data.join(format!("ca/{f}.crt"));
        let body = std::fs::read_to_string(&p).expect("cert file");
        assert!(body.starts_with(&format!("privca key: {f}.")), "{body}");
        ca.openssl_verify(&p);
    }
    let log = ca.server_log();
    assert!(log.contains("renewed"), "{log}");

    // OCSP: verified answers signed by the new responder, also for the nonce-less
    // request whose old answer was cached.
    let t = ocsp(&ca, &device_cert, false);
    assert!(hex_eq(&responder_serial(&t), &new_ocsp), "{t}");
    let t = ocsp(&ca, &device_cert, true);
    assert!(hex_eq(&responder_serial(&t), &new_ocsp), "{t}");
    // TLS: new handshakes get the new certificate.
    assert!(hex_eq(&tls_serial(&ca, tls_port, "after"), &new_tls));
    // SCEP: scepclient fetches the new RA and enrolls.
    let c1 = ca.path("c1");
    let o = scepclient(&c1, &devices, "client1", Some("s3cret"));
    assert!(
        o.status.success() && text(&o).contains("SUCCESS"),
        "{}",
        text(&o)
    );
    ca.openssl_verify(&c1.join("cert.pem"));
    let cacert = reqwest::blocking::get(format!("{devices}?operation=GetCACert"))
        .expect("GetCACert")
        .bytes()
        .expect("body");
    let new_ra_der =
        ca_core::authority::read_cert_file(&ca.data.join("ca/issuing-ra.crt")).expect("new RA");
    assert!(
        cacert
            .windows(new_ra_der.len())
            .any(|w| w == new_ra_der.as_slice()),
        "GetCACert does not carry the new RA"
    );
    // A client that fetched the old RA certificate before the renewal: its request,
    // encrypted to the old RA key, is still answered during the overlap.
    let key: Arc<dyn hsm::PrivateKey> = Arc::new(
        hsm::soft::SoftKey::generate_ephemeral("c", hsm::KeyAlgorithm::Rsa2048).expect("key"),
    );
    let cert = scep::client::self_signed(key.as_ref(), "CN=overlap").expect("self-signed");
    let id = scep::client::Identity {
        key: key.as_ref(),
        cert_der: &cert,
    };
    let csr = scep::client::csr(key.as_ref(), "CN=overlap", Some("s3cret")).expect("csr");
    let req = scep::client::build_request(
        scep::codec::MessageType::PkcsReq,
        "overlap-1",
        &csr,
        id,
        &ra_before,
        scep::codec::ContentCipher::Aes128,
    )
    .expect("request");
    let body = reqwest::blocking::Client::new()
        .post(format!("{devices}?operation=PKIOperation"))
        .body(req.der)
        .send()
        .expect("send")
        .bytes()
        .expect("body");
    let reply = scep::client::read_reply(&body, id).expect("reply");
    assert_eq!(reply.status, scep::codec::PkiStatus::Success);

    // The audit log names both serials of each renewal (read offline once stopped).
    assert!(ca.stop().success());
    {
        let cfg = privca_server::config::Config::load(&ca.config()).expect("config");
        let store = cfg.open_store().expect("store");
        let renewals: Vec<String> = store
            .audit_entries(1, 100_000)
            .expect("audit")
            .into_iter()
            .filter(|e| e.event.action == "renew-own-certificate")
            .map(|e| format!("{} {}", e.event.subject, e.event.detail))
            .collect();
        assert_eq!(renewals.len(), 3, "{renewals:?}");
        for (serial, old) in [
            (&new_ocsp, &old_ocsp),
            (&new_ra, &old_ra),
            (&new_tls, &old_tls),
        ] {
            assert!(
                renewals.iter().any(|r| {
                    let r = r.to_ascii_lowercase();
                    r.contains(&serial.to_ascii_lowercase())
                        && r.contains(&old.to_ascii_lowercase())
                }),
                "{serial} replacing {old}: {renewals:?}"
            );
        }
        let v = store.verify_audit().expect("audit chain");
        assert!(v.first_bad.is_none(), "{v:?}");
    }

    // A restart loads the renewed certificates with their new keys.
    ca.start();
    let h = healthz(&ca);
    assert!(hex_eq(&status_of(&h, "ocsp:issuing").2, &new_ocsp), "{h}");
    assert!(hex_eq(&status_of(&h, "ra:issuing").2, &new_ra), "{h}");
    let t = ocsp(&ca, &device_cert, false);
    assert!(hex_eq(&responder_serial(&t), &new_ocsp), "{t}");
    assert!(hex_eq(&tls_serial(&ca, tls_port, "restarted"), &new_tls));
    let c2 = ca.path("c2");
    let o = scepclient(&c2, &devices, "client2", Some("s3cret"));
    assert!(
        o.status.success() && text(&o).contains("SUCCESS"),
        "{}",
        text(&o)
    );
}

/// A CA certificate inside the margin is reported in `/healthz` (with a warning) and in
/// the log at each check; the responder and RA it issued are not renewed in a loop
/// (they cannot outlive it) but reported too. No third-party tool is needed.
#[test]
fn ca_certificate_near_expiry_is_reported() {
    let mut ca = TestCa::init(Path::new(BIN), &["--issuing-days", "20"]);
    let cfg = std::fs::read_to_string(ca.config()).expect("config");
    let cfg = cfg.replace("check_interval = \"1h\"", "check_interval = \"1s\"");
    std::fs::write(ca.config(), &cfg).expect("config");
    let old_ocsp = serial_of(&ca.data.join("ca/issuing-ocsp.crt"));
    ca.start();
    let h = healthz(&ca);
    let (status, days, _) = status_of(&h, "ca:issuing");
    assert_eq!(status, "expiring", "{h}");
    assert!((18..=20).contains(&days), "{h}");
    assert_eq!(status_of(&h, "ca:root").0, "ok", "{h}");
    let (status, _, _) = status_of(&h, "ocsp:issuing");
    assert_eq!(status, "expiring", "{h}");
    let warnings = h["warnings"].as_array().expect("warnings").clone();
    assert!(
        warnings.iter().any(|w| w
            .as_str()
            .is_some_and(|w| w.starts_with("ca:issuing: expires in"))),
        "{h}"
    );
    assert_eq!(h["status"], "ok", "a warning is not an outage: {h}");
    // Two checks later: logged, nothing renewed.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ca.server_log().contains("not renewed automatically") {
        assert!(Instant::now() < deadline, "{}", ca.server_log());
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    let log = ca.server_log();
    assert!(log.contains("certificate=ca:issuing"), "{log}");
    assert!(!log.contains("new_serial"), "{log}");
    assert!(hex_eq(
        &serial_of(&ca.data.join("ca/issuing-ocsp.crt")),
        &old_ocsp
    ));
}
