//! Revocation as operators need it (docs/lifecycle.md), end to end with real tools:
//! a keyCompromise revocation blocks the key for micromdm `scepclient` (reusing its key),
//! curl over EST and the CLI; `openssl crl -text` shows the invalidity date and the hold;
//! `openssl ocsp` shows revoked/certificateHold, then good after `privca release`.
//! Runs when `PRIVCA_INTEROP=1`.

use std::path::{Path, PathBuf};
use std::process::Command;

use privca_tests::output_text as text;
use privca_tests::{
    TestCa, fails, free_port, interop_enabled, ok, openssl, run, scepclient, serial_of,
};

const BIN: &str = env!("CARGO_BIN_EXE_privca-under-test");
const PASSWORD: &str = "est-password-1";

const SCEP: &str = r#"
[scep.endpoints.devices]
profile = "device"
default = true
allow_des = true            # micromdm scepclient 2.1.0 only encrypts with DES-CBC
challenge = { method = "static", accounts = [{ name = "mdm", secret = { file = "scep.secret" } }] }
"#;

/// A profile for devices that may be reported lost: holds allowed.
const HOLD_PROFILE: &str = r#"
[profiles.lost-devices]
validity_days = 30
extended_key_usage = ["clientAuth"]
allow_hold = true

[profiles.lost-devices.san]
dns = [".example"]
"#;

/// `openssl crl -text` of the issuing CA's current CRL.
fn crl_text(ca: &TestCa) -> String {
    let der = ca.path("issuing.crl");
    ok(Command::new("curl")
        .args(["-sS", "-f", "-o"])
        .arg(&der)
        .arg(ca.url("/crl/issuing.crl")));
    ok(openssl()
        .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
        .arg(&der))
}

/// `openssl ocsp` for `cert` against the server, verified against the chain, with the
/// response printed (`-resp_text`: its singleExtensions too).
fn ocsp_text(ca: &TestCa, cert: &Path) -> String {
    let out = run(openssl()
        .args(["ocsp", "-resp_text"])
        .arg("-issuer")
        .arg(ca.data.join("ca/issuing.crt"))
        .arg("-cert")
        .arg(cert)
        .args(["-url", &ca.url("/ocsp"), "-CAfile"])
        .arg(ca.data.join("ca/chain.pem")));
    let t = text(&out);
    assert!(out.status.success(), "openssl ocsp failed: {t}");
    assert!(t.contains("Response verify OK"), "{t}");
    t
}

/// A PEM CSR for `subj` signed by the existing key `key`.
fn csr_with_key(ca: &TestCa, name: &str, subj: &str, key: &Path) -> PathBuf {
    let out = ca.path(&format!("{name}.csr.pem"));
    ok(openssl()
        .args(["req", "-new", "-subj", subj, "-key"])
        .arg(key)
        .arg("-out")
        .arg(&out));
    out
}

/// The base64 DER body of a CSR as EST wants it.
fn est_body(ca: &TestCa, csr_pem: &Path) -> PathBuf {
    let der = ca.path("est.csr.der");
    ok(openssl()
        .args(["req", "-outform", "DER", "-in"])
        .arg(csr_pem)
        .arg("-out")
        .arg(&der));
    let b64 = ca.path("est.csr.b64");
    ok(openssl()
        .args(["base64", "-in"])
        .arg(&der)
        .arg("-out")
        .arg(&b64));
    b64
}

#[test]
fn a_compromised_key_is_refused_over_scep_est_and_the_cli() {
    if !interop_enabled("a_compromised_key_is_refused_over_scep_est_and_the_cli") {
        return;
    }
    let tls_port = free_port();
    let tls_listen = format!("127.0.0.1:{tls_port}");
    // An RSA hierarchy: scepclient encrypts to every certificate GetCACert returns.
    let mut ca = TestCa::init(
        Path::new(BIN),
        &[
            "--root-key",
            "rsa-2048",
            "--issuing-key",
            "rsa-2048",
            "--tls-listen",
            &tls_listen,
            "--hostname",
            "localhost",
        ],
    );
    ca.write_chain_pem();
    privca_tests::write_secret(&ca.data.join("scep.secret"), "s3cret\n");
    let hash = ca.est_password_hash(PASSWORD);
    let mut cfg = std::fs::read_to_string(ca.config()).expect("config");
    cfg.push_str(SCEP);
    cfg.push_str(&privca_tests::est_basic_endpoints(&hash));
    std::fs::write(ca.config(), cfg).expect("config");
    ok(ca.cmd().args(["config", "check"]));
    ca.start();
    let devices = ca.url("/scep/devices");

    // 1. scepclient enrolls with its RSA key.
    let c1 = ca.path("c1");
    let o = scepclient(&c1, &devices, "laptop-1", Some("s3cret"));
    assert!(
        o.status.success() && text(&o).contains("SUCCESS"),
        "{}",
        text(&o)
    );
    let cert = c1.join("cert.pem");

    // 2. The laptop is stolen: revoked by certificate file, keyCompromise, with the time
    //    the key was exposed.
    let future = fails(ca.cmd().arg("revoke").arg("--cert").arg(&cert).args([
        "--reason",
        "keyCompromise",
        "--invalidity-date",
        "2999-01-01T00:00:00Z",
    ]));
    assert!(future.contains("in the future"), "{future}");
    let out = ok(ca.cmd().arg("revoke").arg("--cert").arg(&cert).args([
        "--reason",
        "keyCompromise",
        "--invalidity-date",
        "2026-01-02T03:04:05Z",
    ]));
    assert!(out.contains("keyCompromise"), "{out}");
    let crl = crl_text(&ca);
    let serial = serial_of(&cert);
    assert!(crl.contains(&serial), "{crl}");
    assert!(crl.contains("Key Compromise"), "{crl}");
    assert!(crl.contains("Invalidity Date"), "{crl}");
    assert!(crl.contains("Jan  2 03:04:05 2026 GMT"), "{crl}");
    let shown = ok(ca.cmd().args(["show", &serial]));
    assert!(
        shown.contains("invalid since: 2026-01-02T03:04:05Z"),
        "{shown}"
    );
    let ocsp = ocsp_text(&ca, &cert);
    assert!(
        ocsp.contains(": revoked") && ocsp.contains("keyCompromise"),
        "{ocsp}"
    );
    assert!(ocsp.contains("Invalidity Date"), "{ocsp}");

    // 3. SCEP: a new enrollment with the same key (scepclient reuses key.pem; without the
    //    revoked cert.pem it sends a PKCSReq) is refused with failInfo badRequest.
    std::fs::remove_file(&cert).expect("remove cert");
    let o = scepclient(&c1, &devices, "laptop-1-again", Some("s3cret"));
    assert!(
        !o.status.success() && text(&o).contains("badRequest"),
        "{}",
        text(&o)
    );
    assert!(!cert.exists());

    // 4. EST (curl): the same key in a new CSR is refused with 403 and the reason.
    let key = c1.join("key.pem");
    let csr = csr_with_key(&ca, "est", "/CN=laptop-1-est", &key);
    let body = est_body(&ca, &csr);
    let out_file = ca.path("est.out");
    let code = ok(Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(ca.data.join("ca/root.crt"))
        .args(["--resolve", &format!("localhost:{tls_port}:127.0.0.1")])
        .args(["-o"])
        .arg(&out_file)
        .args(["-w", "%{http_code}", "--user", &format!("alice:{PASSWORD}")])
        .args([
            "-H",
            "Content-Type: application/pkcs10",
            "-H",
            "Content-Transfer-Encoding: base64",
            "--data-binary",
        ])
        .arg(format!("@{}", body.display()))
        .arg(format!(
            "https://localhost:{tls_port}/.well-known/est/simpleenroll"
        )));
    let answer = std::fs::read_to_string(&out_file).unwrap_or_default();
    assert_eq!(code.trim(), "403", "{answer}");
    assert!(answer.contains("revoked for key compromise"), "{answer}");

    // 5. The CLI (through the admin API): refused with the same reason.
    let e = fails(
        ca.cmd()
            .args(["issue", "--profile", "tls-client", "--csr"])
            .arg(&csr),
    );
    assert!(e.contains("revoked for key compromise"), "{e}");

    // 6. Revoking by that key again: nothing left to revoke, a clear error.
    let e = fails(ca.cmd().arg("revoke").arg("--key").arg(&csr));
    assert!(
        e.contains("no unrevoked certificate has this public key"),
        "{e}"
    );
    let log = ca.server_log();
    assert!(
        !log.contains("s3cret") && !log.contains(PASSWORD),
        "secrets in the log"
    );
}

#[test]
fn a_hold_shows_in_the_crl_and_ocsp_and_a_release_makes_it_good() {
    if !interop_enabled("a_hold_shows_in_the_crl_and_ocsp_and_a_release_makes_it_good") {
        return;
    }
    let mut ca = TestCa::init(Path::new(BIN), &[]);
    ca.write_chain_pem();
    let mut cfg = std::fs::read_to_string(ca.config()).expect("config");
    cfg.push_str(HOLD_PROFILE);
    std::fs::write(ca.config(), cfg).expect("config");
    ca.start();
    let issue = |profile: &str, name: &str| {
        let prefix = ca.path(name);
        ok(ca
            .cmd()
            .args(["issue", "--profile", profile, "--generate-key"])
            .args(["--subject", &format!("CN={name}")])
            .args(["--dns", &format!("{name}.example")])
            .arg("--out")
            .arg(&prefix));
        ca.path(&format!("{name}.crt"))
    };
    let phone = issue("lost-devices", "phone");
    let server = issue("tls-server", "server");
    let serial = serial_of(&phone);

    // A hold where the profile does not allow it: refused, nothing changed.
    let e = fails(
        ca.cmd()
            .args(["revoke", &serial_of(&server), "--reason", "certificateHold"]),
    );
    assert!(e.contains("allow_hold"), "{e}");
    assert!(ocsp_text(&ca, &server).contains(": good"));

    // Reported lost: on hold.
    assert!(ocsp_text(&ca, &phone).contains(": good"));
    ok(ca
        .cmd()
        .args(["revoke", &serial, "--reason", "certificateHold"]));
    let crl = crl_text(&ca);
    assert!(
        crl.contains(&serial) && crl.contains("Certificate Hold"),
        "{crl}"
    );
    let ocsp = ocsp_text(&ca, &phone);
    assert!(
        ocsp.contains(": revoked") && ocsp.contains("certificateHold"),
        "{ocsp}"
    );

    // Found again: released. OCSP is good at once and the next CRL no longer lists it.
    let out = ok(ca.cmd().args(["release", &serial]));
    assert!(out.contains("released"), "{out}");
    assert!(ocsp_text(&ca, &phone).contains(": good"));
    let crl = crl_text(&ca);
    assert!(!crl.contains(&serial), "{crl}");
    // Released twice: refused.
    let e = fails(ca.cmd().args(["release", &serial]));
    assert!(e.contains("not on hold"), "{e}");

    // Lost again, then the key turned out compromised: revoked for good without a release.
    ok(ca
        .cmd()
        .args(["revoke", &serial, "--reason", "certificateHold"]));
    ok(ca
        .cmd()
        .args(["revoke", &serial, "--reason", "keyCompromise"]));
    let crl = crl_text(&ca);
    assert!(
        crl.contains("Key Compromise") && !crl.contains("Certificate Hold"),
        "{crl}"
    );
    let ocsp = ocsp_text(&ca, &phone);
    assert!(ocsp.contains("keyCompromise"), "{ocsp}");
    let e = fails(ca.cmd().args(["release", &serial]));
    assert!(e.contains("not on hold"), "{e}");
}
