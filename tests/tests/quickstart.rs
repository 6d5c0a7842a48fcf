//! `privca quickstart` as a new user meets it (issue 14 item 1): on a fresh data
//! directory (whose path holds a space, so the printed commands must quote it) it serves
//! a CA with a SCEP endpoint (one-time challenges) and an EST endpoint (HTTP Basic) and
//! prints commands that enroll a device; this test runs those commands verbatim with
//! `sh` (micromdm `scepclient`, OpenSSL and curl) and checks the certificates with
//! `openssl verify`. A second quickstart on the same directory reuses the CA and prints
//! commands that work again (a fresh one-time challenge); the used challenge is refused.
//! Runs when `PRIVCA_INTEROP=1`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use privca_tests::quickstart::{Quickstart, run_script};
use privca_tests::{free_port, interop_enabled, ok, openssl, run};

const BIN: &str = env!("CARGO_BIN_EXE_privca-under-test");

fn verify(data: &Path, cert: &Path) -> String {
    let out = ok(openssl()
        .args(["verify", "-CAfile"])
        .arg(data.join("ca/root.crt"))
        .arg("-untrusted")
        .arg(data.join("ca/issuing.crt"))
        .arg(cert));
    assert!(out.contains(": OK"), "{out}");
    out
}

fn subject_and_eku(cert: &Path) -> String {
    ok(openssl()
        .args([
            "x509",
            "-noout",
            "-subject",
            "-ext",
            "extendedKeyUsage",
            "-in",
        ])
        .arg(cert))
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn quickstart_prints_commands_that_enroll_over_scep_and_est() {
    if !interop_enabled("quickstart_prints_commands_that_enroll_over_scep_and_est") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("my ca").join("privca-data");
    let (port, tls_port) = (free_port(), free_port());
    let listen = format!("127.0.0.1:{port}");
    let tls_listen = format!("127.0.0.1:{tls_port}");
    let log = tmp.path().join("quickstart.log");
    let qs = Quickstart::start(Path::new(BIN), &data, &listen, &tls_listen, &log);
    assert!(qs.stdout.contains("initialised a new CA"), "{}", qs.stdout);
    for url in [
        format!("http://{listen}/scep/devices"),
        format!("https://{tls_listen}/.well-known/est/"),
        format!("http://{listen}/ocsp"),
        format!("http://{listen}/metrics"),
    ] {
        assert!(
            qs.stdout.contains(&url),
            "{url} not printed:\n{}",
            qs.stdout
        );
    }

    // The printed console link logs in once.
    let link = qs
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("console:"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no console link:\n{}", qs.stdout))
        .to_string();
    let browser = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let r = browser.get(&link).send().expect("console link");
    assert_eq!(r.status(), 303, "{link}");
    assert!(r.headers().contains_key(reqwest::header::SET_COOKIE));
    assert_eq!(browser.get(&link).send().expect("again").status(), 401);

    // Secrets: the EST password and the challenge are in 0600 files, the configuration
    // holds only the password's PBKDF2 hash, and the password is on no command line.
    let password = std::fs::read_to_string(data.join("est-password")).expect("password");
    let challenge = std::fs::read_to_string(data.join("scep-challenge")).expect("challenge");
    assert_eq!(mode(&data.join("est-password")), 0o600);
    assert_eq!(mode(&data.join("scep-challenge")), 0o600);
    let config = std::fs::read_to_string(data.join("privca.toml")).expect("config");
    assert!(config.contains("password_hash = \"$pbkdf2-sha256$i=600000$"));
    assert!(!config.contains(password.trim()));
    assert!(!qs.stdout.contains(password.trim()), "password printed");
    assert!(!qs.stdout.contains(challenge.trim()), "challenge printed");
    let scep = qs.commands("SCEP");
    let est = qs.commands("EST");
    assert!(est.iter().all(|c| !c.contains(password.trim())));
    assert!(
        scep.iter()
            .chain(&est)
            .all(|c| !c.contains(&data.display().to_string())
                || c.contains(&format!("'{}", data.display()))),
        "paths with a space must be quoted: {scep:?} {est:?}"
    );

    // The printed SCEP commands enroll with scepclient (and check with openssl verify).
    let d1 = tmp.path().join("scep1");
    let out = run_script(&d1, &scep);
    assert!(out.contains(": OK"), "{out}");
    verify(&data, &d1.join("scep-device.crt"));
    let s = subject_and_eku(&d1.join("scep-device.crt"));
    assert!(
        s.contains("CN=scep-device-1") || s.contains("CN = scep-device-1"),
        "{s}"
    );
    assert!(s.contains("TLS Web Client Authentication"), "{s}");
    // The one-time challenge is spent: the same commands from a fresh directory fail.
    let d1b = tmp.path().join("scep1b");
    std::fs::create_dir_all(&d1b).expect("dir");
    run(Command::new("sh")
        .args(["-e", "-c", &scep.join("\n")])
        .current_dir(&d1b));
    assert!(
        !d1b.join("scep-device.crt").exists(),
        "a one-time challenge enrolled twice"
    );

    // The printed EST commands enroll with OpenSSL and curl.
    let d2 = tmp.path().join("est1");
    let out = run_script(&d2, &est);
    assert!(out.contains(": OK"), "{out}");
    verify(&data, &d2.join("est-device.crt"));
    let s = subject_and_eku(&d2.join("est-device.crt"));
    assert!(s.contains("est-device-1"), "{s}");
    qs.stop();

    // A second quickstart reuses the CA (same root) and its commands work again.
    let root = std::fs::read(data.join("ca/root.crt")).expect("root");
    let qs = Quickstart::start(Path::new(BIN), &data, &listen, &tls_listen, &log);
    assert!(qs.stdout.contains("reusing the CA"), "{}", qs.stdout);
    assert_eq!(std::fs::read(data.join("ca/root.crt")).expect("root"), root);
    let challenge2 = std::fs::read_to_string(data.join("scep-challenge")).expect("challenge");
    assert_ne!(challenge, challenge2, "a fresh challenge on each run");
    let d3 = tmp.path().join("scep2");
    run_script(&d3, &qs.commands("SCEP"));
    verify(&data, &d3.join("scep-device.crt"));
    let d4 = tmp.path().join("est2");
    run_script(&d4, &qs.commands("EST"));
    verify(&data, &d4.join("est-device.crt"));
    qs.stop();
}
