//! A key backend outage (the token holding the RA or CA key is gone) reaches SCEP clients
//! as a retryable HTTP 503, and is audited as a key-backend failure, never as the client's
//! fault ("cannot be decrypted", "CSR is not valid DER").
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use ca_core::Authority;
use ca_core::testing::TestCa;
use hsm::testing::{Fault, FaultSwitch, FaultyKey};
use hsm::{KeyAlgorithm, PrivateKey};
use scep::client::{self, Identity};
use scep::codec::{ContentCipher, MessageType, PkiStatus};
use scep::config::EndpointConfig;
use scep::service::Endpoint;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a key on a token that was taken away answers.
fn token_gone() -> Fault {
    Fault::Gone("no PKCS#11 token labelled \"test\"".into())
}

struct Fx {
    auth: Arc<Authority>,
    store: Arc<dyn store::Store>,
    ra_cert: Vec<u8>,
    ra_gone: FaultSwitch,
    ca_gone: FaultSwitch,
    ep: Arc<Endpoint>,
}

/// A software key on a "token" that `gone` can take away.
fn token_key(label: &str, alg: KeyAlgorithm, gone: &FaultSwitch) -> Arc<dyn PrivateKey> {
    FaultyKey::ephemeral(label, alg, gone).unwrap()
}

fn fixture() -> Fx {
    let (ra_gone, ca_gone) = (FaultSwitch::new(), FaultSwitch::new());
    let ca = TestCa::builder()
        .root_subject("CN=SCEP Backend Test Root")
        .root_key(token_key("root", KeyAlgorithm::EcdsaP256, &ca_gone))
        .build();
    let auth = ca.auth.clone();
    let ra = ca.issue_ra(
        "CN=SCEP Backend Test RA",
        token_key("ra", KeyAlgorithm::Rsa2048, &ra_gone),
    );
    let ra_cert = ra.cert_der.clone();
    let cfg: EndpointConfig =
        toml::from_str("profile = \"device\"\nchallenge = { method = \"none\" }").unwrap();
    let ep = Arc::new(
        Endpoint::new(
            "devices",
            cfg,
            auth.clone(),
            Some(ra),
            Arc::new(scep::methods::StaticChallenge::new(
                "devices",
                vec![("mdm".into(), hsm::Secret::new(b"s3cret".to_vec()), None)],
            )),
        )
        .unwrap(),
    );
    Fx {
        auth,
        store: ca.store,
        ra_cert,
        ra_gone,
        ca_gone,
        ep,
    }
}

fn request(fx: &Fx, cn: &str) -> (Vec<u8>, Arc<dyn PrivateKey>, Vec<u8>) {
    let key: Arc<dyn PrivateKey> =
        Arc::new(hsm::soft::SoftKey::generate_ephemeral("client", KeyAlgorithm::Rsa2048).unwrap());
    let cert = client::self_signed(key.as_ref(), &format!("CN={cn}")).unwrap();
    let csr = client::csr(key.as_ref(), &format!("CN={cn}"), Some("s3cret")).unwrap();
    let tid = client::transaction_id_for(key.as_ref());
    let req = client::build_request(
        MessageType::PkcsReq,
        &tid,
        &csr,
        Identity {
            key: key.as_ref(),
            cert_der: &cert,
        },
        &fx.ra_cert,
        ContentCipher::Aes128,
    )
    .unwrap();
    (req.der, key, cert)
}

/// POSTs a PKIOperation over HTTP/1.1 to a router served on loopback; returns the status
/// line and the raw head.
async fn post(addr: std::net::SocketAddr, body: &[u8]) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /scep/devices?operation=PKIOperation HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: application/x-pki-message\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(20), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn last_audit(store: &Arc<dyn store::Store>) -> store::AuditEvent {
    let n = store.stats().unwrap().audit_entries;
    store.audit_entries(n, 1).unwrap().pop().unwrap().event
}

#[tokio::test]
async fn a_key_backend_outage_is_a_retryable_503_audited_as_such() {
    let fx = fixture();
    let mut eps = scep::http::Endpoints::default();
    eps.by_name.insert("devices".into(), fx.ep.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, scep::http::router(eps))
            .await
            .unwrap();
    });

    // Token present: enrolled.
    let (der, key, cert) = request(&fx, "up");
    let rep = fx.ep.pki_operation(der).await.unwrap();
    let reply = client::read_reply(
        &rep,
        Identity {
            key: key.as_ref(),
            cert_der: &cert,
        },
    )
    .unwrap();
    assert_eq!(reply.status, PkiStatus::Success);

    // The RA key's token is gone: the envelope cannot be opened, but that is the server's
    // failure: 503 with Retry-After, audited as a key-backend failure.
    fx.ra_gone.set(token_gone());
    let issued_before = fx.store.stats().unwrap().certificates;
    let (der, _, _) = request(&fx, "ra-gone");
    let e = fx.ep.pki_operation(der.clone()).await.unwrap_err();
    assert!(e.is_unavailable(), "{e:?}");
    let (status, head) = post(addr, &der).await;
    eprintln!("RA key gone: {}", head.lines().next().unwrap_or_default());
    assert_eq!(status, 503, "{head}");
    assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
    let a = last_audit(&fx.store);
    eprintln!("audited: {} / {}", a.action, a.detail);
    assert_eq!(a.action, "scep-key-backend-unavailable");
    assert!(a.detail.contains("key backend"), "{}", a.detail);
    assert!(!a.detail.contains("decrypt"), "{}", a.detail);
    assert!(!a.detail.contains("CSR"), "{}", a.detail);
    fx.ra_gone.set(Fault::None);

    // The CA key's token is gone (the RA key works): issuance fails, answered 503 too,
    // not a CertRep failure that makes the client give up.
    fx.ca_gone.set(token_gone());
    let (der, _, _) = request(&fx, "ca-gone");
    let (status, head) = post(addr, &der).await;
    eprintln!("CA key gone: {}", head.lines().next().unwrap_or_default());
    assert_eq!(status, 503, "{head}");
    assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
    let a = last_audit(&fx.store);
    eprintln!("audited: {} / {}", a.action, a.detail);
    assert!(a.detail.contains("temporarily unavailable"), "{}", a.detail);
    assert_eq!(fx.store.stats().unwrap().certificates, issued_before);
    fx.ca_gone.set(Fault::None);

    // Back: the same request enrolls.
    let rep = fx.ep.pki_operation(der).await.unwrap();
    assert!(!rep.is_empty());
    assert_eq!(fx.store.stats().unwrap().certificates, issued_before + 1);
    drop(fx.auth);
}
