//! The challenge methods' HTTPS calls verify the server certificate against the system
//! trust store (rustls-platform-verifier; on Linux it honours `SSL_CERT_FILE`): a server
//! whose CA is trusted is reached, the same server is refused when its CA is not. The
//! test re-runs itself as a child process to set `SSL_CERT_FILE` (the workspace forbids
//! the `unsafe` that `std::env::set_var` needs); the parent runs the TLS server.

mod support;

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::routing::post;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use scep::challenge::{ChallengeMethod, Verdict};
use scep::webhook::{Webhook, WebhookConfig};
use serde_json::json;
use support::{Pki, context};

const TEST: &str = "https_needs_a_trusted_server_certificate";
const CHILD_URL: &str = "PRIVCA_HTTPS_TEST_URL";
const CHILD_EXPECT: &str = "PRIVCA_HTTPS_TEST_EXPECT";

fn openssl(dir: &Path, args: &[&str]) {
    support::openssl(args, dir);
}

/// A CA and a server certificate for localhost / 127.0.0.1, made by OpenSSL.
fn tls_material(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=webhook test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    );
    // An unrelated CA, for the "not trusted" run.
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=some other CA",
            "-keyout",
            "other.key",
            "-out",
            "other.pem",
            "-days",
            "2",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n\
         keyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "0x1001",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ],
    );
}

/// Serves `{"allow": true}` at /decide over TLS; returns the port.
async fn tls_server(dir: &Path) -> u16 {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .expect("server.pem")
        .collect::<Result<_, _>>()
        .expect("certs");
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).expect("server.key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let app = Router::new().route(
        "/decide",
        post(|| async { axum::Json(json!({"allow": true})) }),
    );
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                // A client that refuses our certificate ends the handshake: ignore that.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                    .await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_needs_a_trusted_server_certificate() {
    if let Ok(url) = std::env::var(CHILD_URL) {
        return child(&url, std::env::var(CHILD_EXPECT).as_deref() == Ok("accept")).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    tls_material(dir.path());
    let port = tls_server(dir.path()).await;
    let url = format!("https://localhost:{port}/decide");
    let exe = std::env::current_exe().expect("test binary");
    let run = |trust: &Path, expect: &str| {
        let mut c = tokio::process::Command::new(&exe);
        c.args(["--exact", TEST, "--nocapture"])
            .env(CHILD_URL, &url)
            .env(CHILD_EXPECT, expect)
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy");
        // Only this file is trusted (no system directory).
        c.env("SSL_CERT_FILE", trust)
            .env("SSL_CERT_DIR", "/nonexistent");
        c.output()
    };
    let trusted = run(&dir.path().join("ca.pem"), "accept")
        .await
        .expect("child");
    assert!(
        trusted.status.success(),
        "trusted CA:\n{}{}",
        String::from_utf8_lossy(&trusted.stdout),
        String::from_utf8_lossy(&trusted.stderr)
    );
    let untrusted = run(&dir.path().join("other.pem"), "reject")
        .await
        .expect("child");
    assert!(
        untrusted.status.success(),
        "untrusted CA:\n{}{}",
        String::from_utf8_lossy(&untrusted.stdout),
        String::from_utf8_lossy(&untrusted.stderr)
    );
}

async fn child(url: &str, accept: bool) {
    let cfg: WebhookConfig =
        serde_json::from_value(json!({"url": url, "timeout_ms": 5000})).expect("config");
    let hook = Webhook::new(&cfg, None).expect("webhook");
    let pki = Pki::new();
    let csr = pki.csr("t", "tls-client", Some("pw"), None);
    let ctx = context("net", "TXTLS", &csr);
    match (hook.verify(&ctx).await, accept) {
        (Verdict::Accept(_), true) => {}
        (Verdict::Reject(r), false) => {
            eprintln!("refused as expected: {}", r.detail);
            assert!(r.detail.contains("webhook call"), "{}", r.detail);
            // The cause is named, for the operator.
            assert!(r.detail.contains("certificate"), "{}", r.detail);
        }
        (v, _) => panic!("unexpected verdict {v:?} (expected accept = {accept})"),
    }
}
