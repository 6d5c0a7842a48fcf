//! `privca init` and the files it makes, as an operator meets them (issue 9 items 7, 21,
//! 22 and 24): the base URL follows `--listen` and the URLs baked into the certificates
//! are printed; the HTTPS certificate lives 90 days and carries IP addresses as iPAddress
//! SANs; the database and data directory are private; secret files and configurations
//! that others may read are refused with a message naming the file; an empty client CA
//! file is named by `config check`. Runs the `privca` binary only (no third-party tools).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use der::Decode;
use privca_tests::{fails, free_port, ok};
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

const BIN: &str = env!("CARGO_BIN_EXE_privca-under-test");

fn cert(path: &Path) -> Certificate {
    let text = std::fs::read_to_string(path).expect("certificate file");
    let first = text
        .split_inclusive("-----END CERTIFICATE-----")
        .next()
        .expect("a PEM block");
    let (_, der) = der::pem::decode_vec(first.trim().as_bytes()).expect("PEM");
    Certificate::from_der(&der).expect("certificate")
}

fn sans(c: &Certificate) -> Vec<String> {
    let mut out = Vec::new();
    for ext in c.tbs_certificate().extensions().into_iter().flatten() {
        if ext.extn_id == ca_core::asn1::oid::SUBJECT_ALT_NAME {
            let san = SubjectAltName::from_der(ext.extn_value.as_bytes()).expect("SAN");
            for g in san.0 {
                out.push(match g {
                    GeneralName::DnsName(d) => format!("DNS:{d}"),
                    GeneralName::IpAddress(ip) => format!("IP:{}", hex::encode(ip.as_bytes())),
                    other => format!("{other:?}"),
                });
            }
        }
    }
    out
}

/// (CRL | OCSP | CA issuers, URL) of a certificate's CRL DP and AIA extensions.
fn cert_urls(c: &Certificate) -> Vec<(String, String)> {
    use x509_cert::ext::pkix::name::DistributionPointName;
    use x509_cert::ext::pkix::{AuthorityInfoAccessSyntax, CrlDistributionPoints};
    let oid = der::asn1::ObjectIdentifier::new_unwrap;
    let uri = |g: &GeneralName| match g {
        GeneralName::UniformResourceIdentifier(u) => Some(u.to_string()),
        _ => None,
    };
    let mut out = Vec::new();
    for ext in c.tbs_certificate().extensions().into_iter().flatten() {
        if ext.extn_id == oid("2.5.29.31") {
            let dps = CrlDistributionPoints::from_der(ext.extn_value.as_bytes()).expect("CRL DP");
            for dp in dps.0 {
                if let Some(DistributionPointName::FullName(names)) = dp.distribution_point {
                    out.extend(names.iter().filter_map(uri).map(|u| ("CRL".to_string(), u)));
                }
            }
        } else if ext.extn_id == oid("1.3.6.1.5.5.7.1.1") {
            let aia = AuthorityInfoAccessSyntax::from_der(ext.extn_value.as_bytes()).expect("AIA");
            for ad in aia.0 {
                let what = if ad.access_method == oid("1.3.6.1.5.5.7.48.1") {
                    "OCSP"
                } else {
                    "CA issuers"
                };
                out.extend(uri(&ad.access_location).map(|u| (what.to_string(), u)));
            }
        }
    }
    out
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

fn chmod(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod");
}

/// Runs `privca serve`, which must exit with an error within 60 s; returns its stderr.
fn serve_refuses(config: &Path) -> String {
    let log = config.with_file_name("serve.log");
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            assert!(!status.success(), "serve exited successfully");
            return std::fs::read_to_string(&log).unwrap_or_default();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "serve started although it should have refused:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn init(dir: &Path, args: &[&str]) -> (PathBuf, String) {
    let data = dir.join("data");
    let out = ok(Command::new(BIN)
        .arg("init")
        .arg("--data-dir")
        .arg(&data)
        .args(args));
    (data, out)
}

/// Items 22, 21, 24 and the file modes of item 7: `init --listen` on another port,
/// without `--base-url`, puts that port into the issuing CA's CRL DP and AIA and into
/// the URLs later certificates carry, and prints them; the HTTPS certificate lives 90
/// days (or `--tls-days`) with 127.0.0.1 and ::1 as iPAddress SANs and no DNS SAN.
#[test]
fn init_derives_urls_from_listen_and_makes_a_90_day_tls_certificate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let tls_port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let tls_listen = format!("127.0.0.1:{tls_port}");
    let (data, out) = init(
        tmp.path(),
        &[
            "--listen",
            &listen,
            "--tls-listen",
            &tls_listen,
            "--hostname",
            "127.0.0.1",
            "--hostname",
            "::1",
        ],
    );
    let base = format!("http://127.0.0.1:{port}");
    let config = std::fs::read_to_string(data.join("privca.toml")).expect("config");
    assert!(
        config.contains(&format!("base_url = \"{base}\"")),
        "{config}"
    );
    // What the issuing CA certificate carries (from the root) and what the certificates
    // it signs carry, both printed.
    let urls = cert_urls(&cert(&data.join("ca/issuing.crt")));
    let want = [
        ("CRL", format!("{base}/crl/root.crl")),
        ("OCSP", format!("{base}/ocsp")),
        ("CA issuers", format!("{base}/ca/root.crt")),
    ];
    for (what, url) in &want {
        assert!(
            urls.iter().any(|(w, u)| w == what && u == url),
            "{what} {url} not in the issuing CA certificate: {urls:?}"
        );
        assert!(out.contains(url.as_str()), "{url} not printed:\n{out}");
    }
    for url in [
        format!("{base}/crl/issuing.crl"),
        format!("{base}/ca/issuing.crt"),
    ] {
        assert!(out.contains(&url), "{url} not printed:\n{out}");
    }
    assert!(!out.contains(":8080"), "{out}");

    // The HTTPS certificate: 90 days (plus the profile's 60 s backdating), addresses as
    // iPAddress SANs, no DNS name made of an address.
    let tls = cert(&data.join("ca/tls-server.crt"));
    let v = tls.tbs_certificate().validity();
    let days = (v.not_after.to_unix_duration().as_secs()
        - v.not_before.to_unix_duration().as_secs())
        / 86_400;
    assert_eq!(days, 90, "HTTPS certificate lifetime");
    let names = sans(&tls);
    assert_eq!(
        names,
        vec![
            "IP:7f000001".to_string(),
            "IP:00000000000000000000000000000001".to_string()
        ],
        "{names:?}"
    );

    // Item 7: the database and the data directory are the owner's only.
    assert_eq!(mode(&data.join("privca.redb")), 0o600, "privca.redb");
    assert_eq!(mode(&data), 0o700, "data directory");
    assert_eq!(mode(&data.join("privca.toml")), 0o600, "privca.toml");

    // --tls-days sets the lifetime, within Mozilla's intermediate maximum of 366.
    let tmp2 = tempfile::tempdir().expect("tempdir");
    let (data2, _) = init(
        tmp2.path(),
        &[
            "--listen",
            &listen,
            "--tls-listen",
            &tls_listen,
            "--tls-days",
            "30",
        ],
    );
    let v = *cert(&data2.join("ca/tls-server.crt"))
        .tbs_certificate()
        .validity();
    let days = (v.not_after.to_unix_duration().as_secs()
        - v.not_before.to_unix_duration().as_secs())
        / 86_400;
    assert_eq!(days, 30);
    let tmp3 = tempfile::tempdir().expect("tempdir");
    let refused = fails(
        Command::new(BIN)
            .arg("init")
            .arg("--data-dir")
            .arg(tmp3.path().join("data"))
            .args(["--tls-listen", &tls_listen, "--tls-days", "400"]),
    );
    assert!(refused.contains("366"), "{refused}");
    assert!(!tmp3.path().join("data/privca.toml").exists());
}

/// Item 7: every secret file the server reads is refused when group or others may read
/// it, with a message naming the file, and so is a configuration that others may write
/// or that holds EST password hashes and others may read. Item 24: an empty
/// client_ca_files file is named by `config check`.
#[test]
fn loose_secret_files_and_configurations_are_refused_naming_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let listen = format!("127.0.0.1:{}", free_port());
    let tls_listen = format!("127.0.0.1:{}", free_port());
    let (data, _) = init(
        tmp.path(),
        &["--listen", &listen, "--tls-listen", &tls_listen],
    );
    let config = data.join("privca.toml");
    let original = std::fs::read_to_string(&config).expect("config");

    // A SCEP endpoint with a static secret file, written private first.
    let secret = data.join("scep-mdm.secret");
    privca_tests::write_secret(&secret, "s3cret-challenge\n");
    let with_scep = format!(
        "{original}\n[scep.endpoints.devices]\nprofile = \"device\"\nchallenge = {{ method = \"static\", accounts = [{{ name = \"mdm\", secret = {{ file = \"scep-mdm.secret\" }} }}] }}\n"
    );
    std::fs::write(&config, &with_scep).expect("config");
    ok(Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(["config", "check"]));

    for (file, name) in [
        (data.join("keys/passphrase"), "keys/passphrase"),
        (data.join("admin-token"), "admin-token"),
        (secret.clone(), "scep-mdm.secret"),
    ] {
        for m in [0o644, 0o640, 0o666] {
            chmod(&file, m);
            let log = serve_refuses(&config);
            assert!(
                log.contains(name) && log.contains(&format!("{m:o}")) && log.contains("chmod 600"),
                "{name} at {m:o}: {log}"
            );
            assert!(!log.contains("s3cret-challenge"), "{log}");
        }
        chmod(&file, 0o600);
    }

    // The configuration: writable by others is refused; readable by others is refused
    // once it holds EST password hashes, and fine without.
    chmod(&config, 0o666);
    let log = serve_refuses(&config);
    assert!(
        log.contains("privca.toml") && log.contains("writable"),
        "{log}"
    );
    chmod(&config, 0o644);
    ok(Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(["config", "check"]));
    let hash = "$pbkdf2-sha256$i=1000$c2FsdHNhbHRzYWx0$PWKc7tv9UlQAHvfXVLV8vqFz0jkuqP8RHhuZEUCfCXI";
    let with_est = format!(
        "{with_scep}\n[est.endpoints.basic]\nprofile = \"tls-client\"\nauth = \"basic\"\naccounts = [{{ username = \"alice\", password_hash = \"{hash}\" }}]\n"
    );
    std::fs::write(&config, &with_est).expect("config");
    let log = serve_refuses(&config);
    assert!(
        log.contains("privca.toml") && log.contains("password hashes") && log.contains("644"),
        "{log}"
    );
    chmod(&config, 0o600);
    ok(Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(["config", "check"]));

    // Item 24: an empty client CA file is named.
    let empty = data.join("empty-ca.pem");
    std::fs::write(&empty, "").expect("empty file");
    std::fs::write(
        &config,
        format!(
            "{with_scep}\n[est.endpoints.certs]\nprofile = \"device\"\nauth = \"client-cert\"\nclient_ca_files = [\"empty-ca.pem\"]\n"
        ),
    )
    .expect("config");
    let out = fails(
        Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .args(["config", "check"]),
    );
    assert!(out.contains("empty-ca.pem"), "{out}");
    std::fs::write(&empty, "not a certificate\n").expect("garbage file");
    let out = fails(
        Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .args(["config", "check"]),
    );
    assert!(out.contains("empty-ca.pem"), "{out}");
}

/// Issue 13 item 6: offline commands open a key only when they use it. With a wrong key
/// passphrase, `show` and `list` (which sign nothing) work; `issue` fails naming the key
/// file and the wrong passphrase, and writes no certificate; `config check` and `serve`
/// still decrypt every key up front and refuse at once.
#[test]
fn offline_commands_decrypt_keys_only_when_they_sign() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let listen = format!("127.0.0.1:{}", free_port());
    let (data, _) = init(tmp.path(), &["--listen", &listen]);
    let config = data.join("privca.toml");
    let cli = |args: &[&str]| {
        let mut c = Command::new(BIN);
        c.arg("--config").arg(&config).args(args);
        c
    };
    let out = ok(cli(&[
        "issue",
        "--profile",
        "tls-server",
        "--generate-key",
        "--dns",
        "a.example",
        "--out",
    ])
    .arg(tmp.path().join("a")));
    let serial = out
        .split_whitespace()
        .skip_while(|w| *w != "serial")
        .nth(1)
        .expect("serial in the output")
        .to_string();
    let listed = ok(&mut cli(&["list"]));

    privca_tests::write_secret(&data.join("keys/passphrase"), "not the passphrase\n");
    let shown = ok(&mut cli(&["show", &serial]));
    assert!(shown.contains("CN=a.example"), "{shown}");
    assert_eq!(ok(&mut cli(&["list"])), listed);
    let err = fails(
        cli(&[
            "issue",
            "--profile",
            "tls-server",
            "--generate-key",
            "--dns",
            "b.example",
            "--out",
        ])
        .arg(tmp.path().join("b")),
    );
    assert!(
        err.contains("keys/issuing.key") && err.contains("wrong passphrase"),
        "{err}"
    );
    assert!(!tmp.path().join("b.crt").exists());
    assert_eq!(ok(&mut cli(&["list"])), listed, "nothing was issued");
    let err = fails(&mut cli(&["config", "check"]));
    assert!(err.contains("wrong passphrase"), "{err}");
    let log = serve_refuses(&config);
    assert!(log.contains("wrong passphrase"), "{log}");
}

/// A reader that stops early (`privca list | head -1`) closes the pipe; the command ends
/// quietly with success instead of panicking on the failed write. The read end is closed
/// before privca writes, so the first line already meets EPIPE.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let listen = format!("127.0.0.1:{}", free_port());
    let (data, _) = init(tmp.path(), &["--listen", &listen]);
    for args in [&["list"][..], &["profiles"][..], &["audit", "verify"][..]] {
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(data.join("privca.toml"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn privca");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
    }
}
