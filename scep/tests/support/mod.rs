//! Test material made with the OpenSSL command line (a third-party tool): device CSRs with
//! a challengePassword and the Intune strong-mapping SAN URI, and certificates issued for
//! them by a throw-away CA, plus the facts OpenSSL reports about those certificates.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use scep::challenge::{EnrollKind, EnrollmentContext};

/// A SID as Intune puts it into the strong-mapping URI.
pub const SID: &str = "S-1-5-21-1004336348-1177238915-682003330-512";

/// A long opaque challenge shaped like Intune's (base64 of an encrypted, signed blob).
pub fn intune_challenge() -> String {
    let mut s = String::from("MIIFxQYJKoZIhvcNAQcDoIIFtjCCBbICAQAxggFZ");
    let mut n: u32 = 7;
    while s.len() < 1400 {
        n = n.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        s.push(char::from(alphabet[(n >> 16) as usize % 64]));
    }
    s.push_str("==");
    s
}

/// A temporary directory with a test CA made by OpenSSL.
pub struct Pki {
    dir: tempfile::TempDir,
}

/// A certificate issued by the test CA and what `openssl x509` says about it.
pub struct Issued {
    pub der: Vec<u8>,
    /// SHA-1 fingerprint, upper-case hex without colons.
    pub sha1: String,
    /// Serial, upper-case hex (as `openssl x509 -serial`).
    pub serial: String,
    /// notAfter as `YYYY-MM-DDThh:mm:ss.000Z`.
    pub not_after: String,
    /// Issuer DN in RFC 2253 form.
    pub issuer: String,
}

/// Runs `openssl` with `args` in `dir`; panics with its stderr when it fails.
pub fn openssl(args: &[&str], dir: &Path) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                "/O=privca tests/CN=Test Intune Issuing CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "30",
            ],
            dir.path(),
        );
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A CSR (DER) for `cn`, with `challenge` as challengePassword (if any) and the
    /// strong-mapping SAN URI for `sid` (if any), like an Intune-managed Windows device.
    pub fn csr(&self, name: &str, cn: &str, challenge: Option<&str>, sid: Option<&str>) -> Vec<u8> {
        let mut cfg = format!(
            "[req]\nprompt = no\ndistinguished_name = dn\nreq_extensions = ext\n\
             attributes = attrs\n[dn]\nCN = {cn}\n[attrs]\n"
        );
        if let Some(c) = challenge {
            cfg.push_str(&format!("challengePassword = {c}\n"));
        }
        cfg.push_str(
            "[ext]\nkeyUsage = critical, digitalSignature, keyEncipherment\n\
             extendedKeyUsage = clientAuth\nsubjectAltName = @alt\n[alt]\n",
        );
        cfg.push_str(&format!("DNS.1 = {cn}.devices.example\n"));
        if let Some(sid) = sid {
            cfg.push_str(&format!("URI.1 = tag:microsoft.com,2022-09-14:sid:{sid}\n"));
        }
        let cnf = format!("{name}.cnf");
        std::fs::write(self.path(&cnf), cfg).expect("write cnf");
        let key = format!("{name}.key");
        let out = format!("{name}.csr.der");
        openssl(
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-config",
                &cnf,
                "-outform",
                "DER",
                "-out",
                &out,
            ],
            self.dir.path(),
        );
        std::fs::read(self.path(&out)).expect("read csr")
    }

    /// Issues a certificate for a CSR with OpenSSL and reads its facts back with OpenSSL.
    pub fn issue(&self, name: &str, csr_der: &[u8], serial: &str) -> Issued {
        let csr = format!("{name}.csr.in.der");
        std::fs::write(self.path(&csr), csr_der).expect("write csr");
        let crt = format!("{name}.crt.der");
        openssl(
            &[
                "x509",
                "-req",
                "-inform",
                "DER",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                &format!("0x{serial}"),
                "-days",
                "20",
                "-outform",
                "DER",
                "-out",
                &crt,
            ],
            self.dir.path(),
        );
        let facts = |args: &[&str]| {
            let mut a = vec!["x509", "-inform", "DER", "-in", crt.as_str(), "-noout"];
            a.extend_from_slice(args);
            openssl(&a, self.dir.path()).trim().to_string()
        };
        let sha1 = facts(&["-fingerprint", "-sha1"]);
        let sha1 = sha1
            .split_once('=')
            .expect("fingerprint line")
            .1
            .replace(':', "");
        let serial_out = facts(&["-serial"]);
        let end = facts(&["-enddate", "-dateopt", "iso_8601"]);
        // "notAfter=2026-12-13 10:51:29Z"
        let end = end
            .split_once('=')
            .expect("enddate line")
            .1
            .replace(' ', "T");
        let not_after = end.replace('Z', ".000Z");
        let issuer = facts(&["-issuer", "-nameopt", "RFC2253"]);
        Issued {
            der: std::fs::read(self.path(&crt)).expect("read crt"),
            sha1,
            serial: serial_out
                .split_once('=')
                .expect("serial line")
                .1
                .to_string(),
            not_after,
            issuer: issuer.split_once('=').expect("issuer line").1.to_string(),
        }
    }
}

/// An enrollment context as the SCEP service builds it, from a real CSR.
pub fn context(endpoint: &str, transaction_id: &str, csr_der: &[u8]) -> EnrollmentContext {
    EnrollmentContext {
        endpoint: endpoint.into(),
        transaction_id: transaction_id.into(),
        kind: EnrollKind::Initial,
        renewal_of: None,
        csr: ca_core::csr::parse(csr_der).expect("the CSR parses and verifies"),
    }
}

/// Binds 127.0.0.1:0 and serves `router` in the background; returns the base URL.
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("serve");
    });
    format!("http://{addr}")
}
