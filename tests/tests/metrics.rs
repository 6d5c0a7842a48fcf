//! `/metrics` after a run of real enrollments (issue 14 item 4): a quickstart CA, a SCEP
//! enrollment with micromdm `scepclient` and an EST enrollment with OpenSSL + curl (the
//! commands quickstart prints), refusals (a wrong EST password, a spent one-time SCEP
//! challenge, an EST request with a key the profile refuses), an OCSP query with
//! `openssl ocsp`; then `/metrics` fetched with curl passes `promtool check metrics` and
//! its counters equal what was done. Runs when `PRIVCA_INTEROP=1`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use privca_tests::quickstart::{Quickstart, run_script};
use privca_tests::{free_port, interop_enabled, ok, openssl, run};

const BIN: &str = env!("CARGO_BIN_EXE_privca-under-test");

/// `name{labels}` → value of every sample of a text exposition.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("sample line");
            (k.to_string(), v.parse::<f64>().expect("sample value"))
        })
        .collect()
}

fn value(s: &BTreeMap<String, f64>, key: &str) -> f64 {
    *s.get(key)
        .unwrap_or_else(|| panic!("{key} missing in {:#?}", s.keys().collect::<Vec<_>>()))
}

/// curl to the EST simpleenroll of the quickstart CA with `user:password` on stdin
/// (`-K -`) and the CSR `csr_b64`; returns the HTTP status.
fn est_enroll(data: &Path, tls: &str, user_password: &str, csr_b64: &Path) -> u16 {
    let script = format!(
        "printf 'user = \"%s\"\\n' '{user_password}' | curl -sS -o /dev/null -w '%{{http_code}}' --cacert '{}' -K - -H 'Content-Type: application/pkcs10' --data-binary @'{}' https://{tls}/.well-known/est/simpleenroll",
        data.join("ca/root.crt").display(),
        csr_b64.display()
    );
    let out = ok(Command::new("sh").args(["-e", "-c", &script]));
    out.trim().parse().expect("status")
}

#[test]
fn metrics_count_what_enrollments_did_and_pass_promtool() {
    if !interop_enabled("metrics_count_what_enrollments_did_and_pass_promtool") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("privca-data");
    let (port, tls_port) = (free_port(), free_port());
    let listen = format!("127.0.0.1:{port}");
    let tls = format!("127.0.0.1:{tls_port}");
    let log = tmp.path().join("quickstart.log");
    let qs = Quickstart::start(Path::new(BIN), &data, &listen, &tls, &log);
    let scep = qs.commands("SCEP");
    let est = qs.commands("EST");

    // One enrollment each over SCEP (scepclient) and EST (OpenSSL + curl).
    let d1 = tmp.path().join("scep");
    run_script(&d1, &scep);
    let d2 = tmp.path().join("est");
    run_script(&d2, &est);

    // Refusals. A wrong EST password: 401, before authentication.
    let csr = d2.join("est-device.csr.b64");
    assert_eq!(est_enroll(&data, &tls, "quickstart:wrong", &csr), 401);
    // With the right password: a key this CA does not support (RSA-1024, refused while
    // the CSR is decoded) and a DNS name that is no DNS name (refused by the profile
    // check of the enrollment core). Both are bad requests (400).
    let password = std::fs::read_to_string(data.join("est-password")).expect("password");
    let user = format!("quickstart:{}", password.trim());
    for (name, key, ext) in [
        ("weak", "rsa:1024", "subjectAltName=DNS:ok.example"),
        (
            "badname",
            "rsa:2048",
            "subjectAltName=DNS:bad_name..example",
        ),
    ] {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).expect("dir");
        ok(openssl()
            .current_dir(&dir)
            .args(["req", "-new", "-newkey", key, "-nodes", "-keyout", "k.pem"])
            .args(["-subj", "/CN=refused", "-addext", ext])
            .args(["-outform", "DER", "-out", "c.der"]));
        ok(openssl()
            .current_dir(&dir)
            .args(["base64", "-in", "c.der", "-out", "c.b64"]));
        let status = est_enroll(&data, &tls, &user, &dir.join("c.b64"));
        assert_eq!(status, 400, "{name} must be refused");
    }
    // The spent one-time challenge: scepclient gets no certificate.
    let d3 = tmp.path().join("scep-again");
    std::fs::create_dir_all(&d3).expect("dir");
    run(Command::new("sh")
        .args(["-c", &scep.join("\n")])
        .current_dir(&d3));
    assert!(!d3.join("scep-device.crt").exists());

    // One OCSP query for the EST certificate.
    let ocsp = ok(openssl()
        .args(["ocsp", "-issuer"])
        .arg(data.join("ca/issuing.crt"))
        .arg("-cert")
        .arg(d2.join("est-device.crt"))
        .arg("-CAfile")
        .arg(data.join("ca/root.crt"))
        .args(["-url", &format!("http://{listen}/ocsp")]));
    assert!(ocsp.contains(": good"), "{ocsp}");

    // /metrics with curl, checked by promtool.
    let file = tmp.path().join("metrics.txt");
    let headers = ok(Command::new("curl")
        .args(["-sS", "--fail", "-D", "-", "-o"])
        .arg(&file)
        .arg(format!("http://{listen}/metrics")));
    assert!(
        headers
            .to_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{headers}"
    );
    let out = run(Command::new("sh")
        .arg("-c")
        .arg(format!("promtool check metrics < '{}'", file.display())));
    let text = std::fs::read_to_string(&file).expect("metrics");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let s = samples(&text);

    // Issuances: one per protocol; the replayed or refused ones are not issuances.
    let issued = |ch: &str| {
        value(
            &s,
            &format!("privca_certificates_issued_total{{channel=\"{ch}\",profile=\"device\"}}"),
        )
    };
    assert_eq!(issued("scep"), 1.0);
    assert_eq!(issued("est"), 1.0);
    assert_eq!(
        value(
            &s,
            "privca_unauthenticated_refusals_total{action=\"est-refused\"}"
        ),
        1.0
    );
    let refused: Vec<(&String, &f64)> = s
        .iter()
        .filter(|(k, _)| k.starts_with("privca_enrollments_refused_total"))
        .collect();
    assert_eq!(
        value(
            &s,
            "privca_enrollments_refused_total{channel=\"est\",profile=\"device\",reason=\"bad_request\"}"
        ),
        2.0,
        "{refused:?}"
    );
    // The spent challenge: the SCEP service refuses it before it authenticates anyone.
    assert_eq!(
        value(
            &s,
            "privca_unauthenticated_refusals_total{action=\"scep-refused\"}"
        ),
        1.0
    );
    assert!(
        !refused.iter().any(|(k, _)| k.contains("channel=\"scep\"")),
        "{refused:?}"
    );

    // Latency histograms: every EST and OCSP request counted under its protocol.
    let count = |p: &str| {
        value(
            &s,
            &format!("privca_request_duration_seconds_count{{protocol=\"{p}\"}}"),
        )
    };
    assert_eq!(
        count("est"),
        4.0,
        "the enrollment, the wrong password, the weak key, the bad name"
    );
    assert_eq!(count("ocsp"), 1.0);
    // scepclient: GetCACaps, GetCACert and PKIOperation per run (two runs).
    assert!(count("scep") >= 4.0, "{}", count("scep"));
    assert_eq!(
        value(
            &s,
            "privca_request_duration_seconds_bucket{le=\"+Inf\",protocol=\"ocsp\"}"
        ),
        1.0
    );
    // Store commits: the two issuances (and nothing of a refusal).
    assert_eq!(value(&s, "privca_store_commit_duration_seconds_count"), 2.0);

    // Gauges: the CA, RA, OCSP and HTTPS certificates, CRL age, keys, expiring soon.
    let left = |kind: &str, ca: &str| {
        value(
            &s,
            &format!("privca_certificate_expires_in_seconds{{kind=\"{kind}\",ca=\"{ca}\"}}"),
        ) / 86_400.0
    };
    assert!((3649.0..=3650.0).contains(&left("ca", "root")));
    assert!((1824.0..=1825.0).contains(&left("ca", "issuing")));
    assert!((89.0..=90.0).contains(&left("tls", "https")));
    assert!(left("ra", "issuing") > 300.0);
    assert!(left("ocsp", "issuing") > 300.0);
    for ca in ["root", "issuing"] {
        let age = value(&s, &format!("privca_crl_age_seconds{{ca=\"{ca}\"}}"));
        assert!((0.0..3600.0).contains(&age), "{ca}: {age}");
    }
    for key in [
        "ca:root",
        "ca:issuing",
        "ra:issuing",
        "ocsp:issuing",
        "https",
    ] {
        assert_eq!(value(&s, &format!("privca_key_up{{key=\"{key}\"}}")), 1.0);
    }
    assert_eq!(value(&s, "privca_certificates_expiring_soon"), 0.0);
    // No serial, subject or address in any label.
    for k in s.keys() {
        assert!(!k.contains("device-1") && !k.contains("127.0.0.1"), "{k}");
    }

    // OpenMetrics when asked for.
    let om = ok(Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "-H",
            "Accept: application/openmetrics-text",
        ])
        .arg(format!("http://{listen}/metrics")));
    assert!(om.ends_with("# EOF\n"), "{om}");
    // Not on the HTTPS listener.
    let code = ok(Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(data.join("ca/root.crt"))
        .arg(format!("https://{tls}/metrics")));
    assert_eq!(code.trim(), "404");
    qs.stop();

    // `[server.metrics] enabled = false` turns it off.
    let cfg = data.join("privca.toml");
    let mut text = std::fs::read_to_string(&cfg).expect("config");
    text.push_str("\n[server.metrics]\nenabled = false\n");
    std::fs::write(&cfg, text).expect("config");
    let qs = Quickstart::start(Path::new(BIN), &data, &listen, &tls, &log);
    let code = ok(Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://{listen}/metrics")));
    assert_eq!(code.trim(), "404");
    qs.stop();
}
