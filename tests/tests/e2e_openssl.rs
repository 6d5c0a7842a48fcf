//! End to end with real third-party tools: `privca init`, `privca serve` on a free
//! loopback port, issuance and revocation from the CLI (through the admin API), then
//! OpenSSL (`verify -crl_check`, `ocsp`, `x509`, `crl`), curl and pkilint check every
//! artefact. Runs when `PRIVCA_INTEROP=1` (scripts/test.sh sets it after installing the
//! tools).

use std::process::Command;

use base64::Engine;
use privca_tests::{TestCa, fails, interop_enabled, ok, openssl, pkilint, run};

const BIN: &str = env!("CARGO_BIN_EXE_privca-under-test");

fn curl_to(url: &str, out: &std::path::Path) -> String {
    ok(Command::new("curl")
        .args(["-sS", "-f", "-D", "-", "-o"])
        .arg(out)
        .arg(url))
}

fn crl_number(ca: &TestCa, crl: &std::path::Path) -> u64 {
    let text = ok(openssl()
        .args(["crl", "-inform", "DER", "-noout", "-crlnumber", "-in"])
        .arg(crl));
    let hex = text
        .trim()
        .trim_start_matches("crlNumber=")
        .trim_start_matches("0x");
    let _ = ca;
    u64::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("crlNumber in {text:?}"))
}

fn ocsp_status(ca: &TestCa, cert_args: &[&str], extra: &[&str]) -> String {
    let chain = ca.data.join("ca/chain.pem");
    let mut cmd = openssl();
    // Options such as -sha256 must precede -cert/-serial.
    cmd.args(["ocsp"])
        .args(extra)
        .arg("-issuer")
        .arg(ca.data.join("ca/issuing.crt"))
        .args(cert_args)
        .args(["-url", &ca.url("/ocsp"), "-CAfile"])
        .arg(&chain);
    let out = run(&mut cmd);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "openssl ocsp failed: {text}");
    assert!(
        text.contains("Response verify OK"),
        "OCSP response did not verify: {text}"
    );
    text
}

#[test]
fn cli_server_openssl_end_to_end() {
    if !interop_enabled("cli_server_openssl_end_to_end") {
        return;
    }
    let mut ca = TestCa::init(std::path::Path::new(BIN), &[]);
    let ca_dir = ca.data.join("ca");
    // A chain file (root + issuing) for OpenSSL.
    ca.write_chain_pem();

    // Secrets written by init are private.
    for f in [
        "admin-token",
        "keys/passphrase",
        "keys/root.key",
        "keys/issuing.key",
        "privca.toml",
    ] {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(ca.data.join(f)).expect(f).permissions(),
        );
        assert_eq!(mode & 0o077, 0, "{f} has mode {mode:o}");
    }
    // init refuses to overwrite.
    let again = fails(Command::new(BIN).args(["init", "--data-dir"]).arg(&ca.data));
    assert!(again.contains("never overwrites"), "{again}");

    // Every CA-side certificate parses and verifies with OpenSSL.
    for c in ["root", "issuing", "issuing-ra", "issuing-ocsp"] {
        ok(openssl()
            .args(["x509", "-noout", "-text", "-in"])
            .arg(ca_dir.join(format!("{c}.crt"))));
    }
    let ver = ok(openssl()
        .args(["verify", "-CAfile"])
        .arg(ca_dir.join("root.crt"))
        .arg(ca_dir.join("issuing.crt")));
    assert!(ver.contains("OK"), "{ver}");
    let ocsp_text = ok(openssl()
        .args(["x509", "-noout", "-text", "-in"])
        .arg(ca_dir.join("issuing-ocsp.crt")));
    assert!(ocsp_text.contains("OCSP Signing"), "{ocsp_text}");
    assert!(ocsp_text.contains("OCSP No Check"), "{ocsp_text}");
    let ra_text = ok(openssl()
        .args(["x509", "-noout", "-text", "-in"])
        .arg(ca_dir.join("issuing-ra.crt")));
    assert!(
        ra_text.contains("Digital Signature, Key Encipherment"),
        "{ra_text}"
    );
    assert!(ra_text.contains("rsaEncryption"), "{ra_text}");

    ok(ca.cmd().args(["config", "check"]));
    ca.start();

    // Issue with a generated key (the CLI goes through the admin API: the server holds the store).
    let leaf = ca.path("leaf");
    let out = ok(ca
        .cmd()
        .args([
            "issue",
            "--profile",
            "tls-server",
            "--generate-key",
            "--dns",
            "www.example.com",
            "--ip",
            "127.0.0.1",
            "--out",
        ])
        .arg(&leaf));
    assert!(out.contains("issued serial"), "{out}");
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(ca.path("leaf.key"))
            .expect("key")
            .permissions(),
    );
    assert_eq!(key_mode & 0o777, 0o600);
    ok(openssl()
        .args(["pkey", "-noout", "-in"])
        .arg(ca.path("leaf.key")));
    let leaf_crt = ca.path("leaf.crt");
    let leaf_text = ok(openssl()
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&leaf_crt));
    assert!(leaf_text.contains("DNS:www.example.com"), "{leaf_text}");
    assert!(leaf_text.contains("IP Address:127.0.0.1"), "{leaf_text}");
    assert!(
        leaf_text.contains(&ca.url("/crl/issuing.crl")),
        "{leaf_text}"
    );
    assert!(
        leaf_text.contains(&format!("OCSP - URI:{}", ca.url("/ocsp"))),
        "{leaf_text}"
    );
    // The key and the certificate belong together.
    let a = ok(openssl()
        .args(["x509", "-noout", "-pubkey", "-in"])
        .arg(&leaf_crt));
    let b = ok(openssl()
        .args(["pkey", "-pubout", "-in"])
        .arg(ca.path("leaf.key")));
    assert_eq!(a, b);

    // A PKCS#12 bundle on request; OpenSSL opens it with the password.
    let bundle = ca.path("bundle");
    ok(ca
        .cmd()
        .env("PRIVCA_P12_PASSWORD", "bundle-password")
        .args([
            "issue",
            "--profile",
            "tls-client",
            "--generate-key",
            "--key-alg",
            "rsa-2048",
            "--subject",
            "CN=p12 user",
            "--p12",
            "--out",
        ])
        .arg(&bundle));
    let p12_text = ok(openssl()
        .args(["pkcs12", "-in"])
        .arg(ca.path("bundle.p12"))
        .args(["-passin", "pass:bundle-password", "-nodes", "-info"]));
    assert!(
        p12_text.contains("BEGIN PRIVATE KEY")
            && p12_text.matches("BEGIN CERTIFICATE").count() == 3,
        "{p12_text}"
    );
    let wrong = run(openssl()
        .args(["pkcs12", "-noout", "-in"])
        .arg(ca.path("bundle.p12"))
        .args(["-passin", "pass:wrong"]));
    assert!(
        !wrong.status.success(),
        "a wrong PKCS#12 password must fail"
    );

    // Issue from an OpenSSL CSR, one certificate per leaf profile.
    let mut issued = vec![("tls-server".to_string(), leaf_crt.clone())];
    for (profile, subj, ext, keyopt) in [
        ("tls-client", "/CN=client1/O=Example", "", "rsa:2048"),
        (
            "device",
            "/CN=device-42/serialNumber=SN42",
            "",
            "ec:prime256v1",
        ),
        (
            "email",
            "/CN=Alice/emailAddress=alice@example.com",
            "subjectAltName=email:alice@example.com",
            "rsa:3072",
        ),
        (
            "tls-server",
            "/CN=api.example.com",
            "subjectAltName=DNS:api.example.com,DNS:*.api.example.com",
            "ec:secp384r1",
        ),
    ] {
        let key = ca.path(&format!("{profile}-{}.key", issued.len()));
        let csr = ca.path(&format!("{profile}-{}.csr", issued.len()));
        let mut cmd = openssl();
        cmd.args(["req", "-new", "-nodes", "-subj", subj, "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&csr);
        if let Some(curve) = keyopt.strip_prefix("ec:") {
            let params = ca.path("ecparams.pem");
            ok(openssl()
                .args(["ecparam", "-name", curve, "-out"])
                .arg(&params));
            cmd.arg("-newkey").arg(format!("ec:{}", params.display()));
        } else {
            cmd.args(["-newkey", keyopt]);
        }
        if !ext.is_empty() {
            cmd.args(["-addext", ext]);
        }
        ok(&mut cmd);
        let out_prefix = ca.path(&format!("{profile}-{}", issued.len()));
        // OpenSSL's -addext cannot carry the comma of the Intune tag URI; privca adds it.
        let extra: &[&str] = if profile == "device" {
            &[
                "--uri",
                "tag:microsoft.com,2022-09-14:sid:S-1-5-21-1-2-3-1001",
            ]
        } else {
            &[]
        };
        ok(ca
            .cmd()
            .args(["issue", "--profile", profile, "--csr"])
            .arg(&csr)
            .args(extra)
            .arg("--out")
            .arg(&out_prefix));
        let crt = ca.path(&format!("{profile}-{}.crt", issued.len()));
        let v = ok(openssl()
            .args(["verify", "-CAfile"])
            .arg(ca_dir.join("chain.pem"))
            .arg(&crt));
        assert!(v.contains("OK"), "{v}");
        issued.push((profile.to_string(), crt));
    }
    let device_text = ok(openssl()
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&issued[2].1));
    assert!(
        device_text.contains("URI:tag:microsoft.com,2022-09-14:sid:S-1-5-21-1-2-3-1001"),
        "{device_text}"
    );
    assert!(
        device_text.contains("TLS Web Client Authentication"),
        "{device_text}"
    );

    // pkilint: RFC 5280 certificate lints over every kind of certificate issued.
    let mut all_certs: Vec<(String, std::path::PathBuf)> =
        ["root", "issuing", "issuing-ra", "issuing-ocsp"]
            .iter()
            .map(|c| (c.to_string(), ca_dir.join(format!("{c}.crt"))))
            .collect();
    all_certs.extend(issued.iter().cloned());
    for (what, path) in &all_certs {
        let mut f = pkilint("lint_pkix_cert", &[], path);
        // pkilint 0.13.3's URI check rejects RFC 4151 tag URIs; the Intune strong-mapping
        // SAN `tag:microsoft.com,2022-09-14:sid:<SID>` must be issued verbatim. Only that
        // finding on that value is accepted.
        f.retain(|x| {
            !(x.contains("pkix.invalid_uri_syntax")
                && x.contains("tag:microsoft.com,2022-09-14:sid:"))
        });
        // Likewise its RFC 5280 DNS syntax check rejects wildcard names (`*.` is defined by
        // RFC 6125/9525, not RFC 5280); only wildcard values are excused.
        f.retain(|x| !(x.contains("pkix.invalid_domain_name_syntax") && x.contains("\"*.")));
        assert!(f.is_empty(), "pkilint lint_pkix_cert on {what}: {f:?}");
    }
    let f = pkilint(
        "lint_pkix_signer_signee_cert_chain",
        &[ca_dir.join("root.crt").to_str().expect("path")],
        &ca_dir.join("issuing.crt"),
    );
    assert!(f.is_empty(), "chain root->issuing: {f:?}");
    let f = pkilint(
        "lint_pkix_signer_signee_cert_chain",
        &[ca_dir.join("issuing.crt").to_str().expect("path")],
        &leaf_crt,
    );
    assert!(f.is_empty(), "chain issuing->leaf: {f:?}");
    // CRL over HTTP: DER, parses and verifies, pkilint clean, leaf verifies against it.
    let crl1 = ca.path("crl1.der");
    let headers = curl_to(&ca.url("/crl/issuing.crl"), &crl1);
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("content-type: application/pkix-crl"),
        "{headers}"
    );
    let crl_text = ok(openssl()
        .args(["crl", "-inform", "DER", "-noout", "-text", "-CAfile"])
        .arg(ca_dir.join("chain.pem"))
        .arg("-in")
        .arg(&crl1));
    assert!(crl_text.contains("Next Update"), "{crl_text}");
    let f = pkilint("lint_crl", &["-t", "CRL", "-p", "PKIX"], &crl1);
    assert!(f.is_empty(), "pkilint lint_crl: {f:?}");
    let n1 = crl_number(&ca, &crl1);
    let crl_pem = ca.path("crl1.pem");
    ok(openssl()
        .args(["crl", "-inform", "DER", "-in"])
        .arg(&crl1)
        .arg("-out")
        .arg(&crl_pem));
    let root_crl = ca.path("root-crl.der");
    curl_to(&ca.url("/crl/root.crl"), &root_crl);
    let root_crl_pem = ca.path("root-crl.pem");
    ok(openssl()
        .args(["crl", "-inform", "DER", "-in"])
        .arg(&root_crl)
        .arg("-out")
        .arg(&root_crl_pem));
    let verify = |crl: &std::path::Path| {
        run(openssl()
            .args(["verify", "-crl_check_all", "-CAfile"])
            .arg(ca_dir.join("chain.pem"))
            .arg("-CRLfile")
            .arg(crl)
            .arg("-CRLfile")
            .arg(&root_crl_pem)
            .arg(&leaf_crt))
    };
    let v = verify(&crl_pem);
    assert!(
        v.status.success(),
        "verify -crl_check_all: {}",
        String::from_utf8_lossy(&v.stderr)
    );

    // CA certificate over HTTP (AIA caIssuers).
    let issuing_der = ca.path("issuing.der");
    let h = curl_to(&ca.url("/ca/issuing.crt"), &issuing_der);
    assert!(
        h.to_ascii_lowercase().contains("application/pkix-cert"),
        "{h}"
    );
    ok(openssl()
        .args(["x509", "-inform", "DER", "-noout", "-in"])
        .arg(&issuing_der));

    // OCSP: good, with a nonce, signed by the delegated responder.
    let resp_good = ca.path("ocsp-good.der");
    let t = ocsp_status(
        &ca,
        &["-cert", leaf_crt.to_str().expect("path")],
        &["-respout", resp_good.to_str().expect("path")],
    );
    assert!(t.contains(": good"), "{t}");
    let f = pkilint("lint_ocsp_response", &[], &resp_good);
    assert!(f.is_empty(), "pkilint lint_ocsp_response: {f:?}");
    // SHA-256 CertID.
    let t = ocsp_status(
        &ca,
        &["-cert", leaf_crt.to_str().expect("path")],
        &["-sha256"],
    );
    assert!(t.contains(": good"), "{t}");

    // OCSP over GET (RFC 9919): no nonce, cacheable.
    let req = ca.path("ocsp-req.der");
    ok(openssl()
        .args(["ocsp", "-issuer"])
        .arg(ca_dir.join("issuing.crt"))
        .arg("-cert")
        .arg(&leaf_crt)
        .args(["-no_nonce", "-reqout"])
        .arg(&req));
    let b64 = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&req).expect("req"));
    let get_resp = ca.path("ocsp-get.der");
    // Send the base64 with `/` and `+` unescaped, as many clients do.
    let h = curl_to(&ca.url(&format!("/ocsp/{b64}")), &get_resp);
    let hl = h.to_ascii_lowercase();
    assert!(
        hl.contains("content-type: application/ocsp-response"),
        "{h}"
    );
    assert!(hl.contains("cache-control: max-age="), "{h}");
    assert!(
        hl.contains("etag:") && hl.contains("expires:") && hl.contains("last-modified:"),
        "{h}"
    );
    let t = ok(openssl()
        .args(["ocsp", "-respin"])
        .arg(&get_resp)
        .args(["-issuer"])
        .arg(ca_dir.join("issuing.crt"))
        .arg("-cert")
        .arg(&leaf_crt)
        .arg("-CAfile")
        .arg(ca_dir.join("chain.pem")));
    assert!(t.contains(": good"), "{t}");

    // Pre-signed (RFC 9919 §6): the same GET again gets the same bytes and ETag, and
    // openssl's POST without a nonce (the same request) gets them too and verifies them.
    let get_again = ca.path("ocsp-get-again.der");
    let h2 = curl_to(&ca.url(&format!("/ocsp/{b64}")), &get_again);
    let etag = |h: &str| {
        h.lines()
            .find(|l| l.to_ascii_lowercase().starts_with("etag:"))
            .map(|l| l.trim().to_string())
            .unwrap_or_else(|| panic!("no ETag in {h}"))
    };
    assert_eq!(
        etag(&h2),
        etag(&h),
        "the ETag of a cached response is stable"
    );
    assert_eq!(
        std::fs::read(&get_again).expect("resp"),
        std::fs::read(&get_resp).expect("resp"),
        "the cached response is served byte for byte"
    );
    let resp_post = ca.path("ocsp-post-cached.der");
    let t = ocsp_status(
        &ca,
        &["-cert", leaf_crt.to_str().expect("path")],
        &["-no_nonce", "-respout", resp_post.to_str().expect("path")],
    );
    assert!(t.contains(": good"), "{t}");
    assert_eq!(
        std::fs::read(&resp_post).expect("resp"),
        std::fs::read(&get_resp).expect("resp"),
        "POST and GET of the same request get the same pre-signed response"
    );

    // Revoke, then CRL and OCSP both say so.
    let serial = ok(openssl()
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(&leaf_crt));
    let serial = serial.trim().trim_start_matches("serial=").to_string();
    let out = ok(ca
        .cmd()
        .args(["revoke", &serial, "--reason", "keyCompromise"]));
    assert!(out.contains("revoked"), "{out}");
    let crl2 = ca.path("crl2.der");
    curl_to(&ca.url("/crl/issuing.crl"), &crl2);
    let n2 = crl_number(&ca, &crl2);
    assert!(n2 > n1, "CRL number must increase: {n1} then {n2}");
    let crl2_text = ok(openssl()
        .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
        .arg(&crl2));
    assert!(crl2_text.contains(&serial), "{crl2_text}");
    assert!(crl2_text.contains("Key Compromise"), "{crl2_text}");
    let f = pkilint("lint_crl", &["-t", "CRL", "-p", "PKIX"], &crl2);
    assert!(f.is_empty(), "pkilint lint_crl with entries: {f:?}");
    let crl2_pem = ca.path("crl2.pem");
    ok(openssl()
        .args(["crl", "-inform", "DER", "-in"])
        .arg(&crl2)
        .arg("-out")
        .arg(&crl2_pem));
    let v = verify(&crl2_pem);
    assert!(!v.status.success(), "a revoked certificate must not verify");
    let msg = format!(
        "{}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
    assert!(msg.contains("certificate revoked"), "{msg}");
    let resp_revoked = ca.path("ocsp-revoked.der");
    let t = ocsp_status(
        &ca,
        &["-cert", leaf_crt.to_str().expect("path")],
        &["-respout", resp_revoked.to_str().expect("path")],
    );
    assert!(t.contains(": revoked"), "{t}");
    assert!(t.contains("keyCompromise"), "{t}");
    let f = pkilint("lint_ocsp_response", &[], &resp_revoked);
    assert!(f.is_empty(), "pkilint lint_ocsp_response (revoked): {f:?}");
    // The pre-signed "good" went with the revocation: the non-nonced request and the
    // GET now say revoked, under a new ETag.
    let t = ocsp_status(
        &ca,
        &["-cert", leaf_crt.to_str().expect("path")],
        &["-no_nonce"],
    );
    assert!(t.contains(": revoked"), "{t}");
    let get_revoked = ca.path("ocsp-get-revoked.der");
    let h3 = curl_to(&ca.url(&format!("/ocsp/{b64}")), &get_revoked);
    assert_ne!(etag(&h3), etag(&h), "a new response, a new ETag");
    let t = ok(openssl()
        .args(["ocsp", "-respin"])
        .arg(&get_revoked)
        .args(["-issuer"])
        .arg(ca_dir.join("issuing.crt"))
        .arg("-cert")
        .arg(&leaf_crt)
        .arg("-CAfile")
        .arg(ca_dir.join("chain.pem")));
    assert!(t.contains(": revoked"), "{t}");
    // A serial this CA never issued.
    let t = ocsp_status(&ca, &["-serial", "0x0123456789abcdef"], &[]);
    assert!(t.contains(": unknown"), "{t}");

    // Refusals: each a clear one-line error and a non-zero exit.
    let e = fails(ca.cmd().args(["revoke", &serial]));
    assert!(e.contains("already revoked"), "{e}");
    let e = fails(ca.cmd().args(["revoke", "0123456789ABCDEF"]));
    assert!(e.contains("no certificate with serial"), "{e}");
    let e = fails(ca.cmd().args(["revoke", &serial, "--reason", "bogus"]));
    assert!(e.contains("unknown revocation reason"), "{e}");
    let e = fails(
        ca.cmd()
            .args([
                "issue",
                "--profile",
                "nope",
                "--generate-key",
                "--dns",
                "a.example.com",
                "--out",
            ])
            .arg(ca.path("x")),
    );
    assert!(e.contains("no profile named"), "{e}");
    let garbage = ca.file(
        "garbage.csr",
        b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
    );
    let e = fails(
        ca.cmd()
            .args(["issue", "--profile", "tls-server", "--csr"])
            .arg(&garbage),
    );
    assert!(e.contains("CSR"), "{e}");
    let e = fails(
        ca.cmd()
            .args([
                "issue",
                "--profile",
                "tls-server",
                "--generate-key",
                "--email",
                "x@example.com",
                "--dns",
                "ok.example.com",
                "--out",
            ])
            .arg(ca.path("y")),
    );
    assert!(e.contains("not allowed"), "{e}");
    let e = fails(
        ca.cmd()
            .args([
                "issue",
                "--profile",
                "tls-server",
                "--generate-key",
                "--dns",
                "bad_name.example.com",
                "--out",
            ])
            .arg(ca.path("z")),
    );
    assert!(e.contains("invalid"), "{e}");
    // A CSR whose signature does not verify: flip a byte of the signature.
    let good_csr = ca.path("tls-client-1.csr");
    let der = ok(openssl()
        .args(["req", "-in"])
        .arg(&good_csr)
        .args(["-outform", "DER", "-out"])
        .arg(ca.path("csr.der")));
    let _ = der;
    let mut bytes = std::fs::read(ca.path("csr.der")).expect("csr der");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let bad_sig = ca.file("badsig.der", &bytes);
    let e = fails(
        ca.cmd()
            .args(["issue", "--profile", "tls-client", "--csr"])
            .arg(&bad_sig),
    );
    assert!(e.contains("signature does not verify"), "{e}");

    // HTTP refusals.
    let client = reqwest::blocking::Client::new();
    let r = client
        .post(ca.url("/ocsp"))
        .header("content-type", "application/ocsp-request")
        .body(vec![0x30, 0x03, 0x02, 0x01])
        .send()
        .expect("post");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.bytes().expect("body").as_ref(),
        &[0x30, 0x03, 0x0a, 0x01, 0x01],
        "malformedRequest"
    );
    // Its own connection: after a 413 for an unread body the server closes the
    // connection, which a pooled client could otherwise reuse for the next request.
    let r = reqwest::blocking::Client::new()
        .post(ca.url("/ocsp"))
        .header("content-type", "application/ocsp-request")
        .body(vec![0u8; 1024 * 1024])
        .send()
        .expect("post");
    assert_eq!(r.status().as_u16(), 413, "oversize body");
    let r = client
        .get(ca.url("/ocsp/%%%notbase64"))
        .send()
        .expect("get");
    assert_eq!(
        r.bytes().expect("body").as_ref(),
        &[0x30, 0x03, 0x0a, 0x01, 0x01],
        "malformedRequest on bad base64"
    );
    let r = client
        .get(ca.url("/admin/v1/certificates"))
        .send()
        .expect("get");
    assert_eq!(r.status().as_u16(), 401);
    let r = client
        .get(ca.url("/admin/v1/certificates"))
        .bearer_auth("wrong-token-wrong-token")
        .send()
        .expect("get");
    assert_eq!(r.status().as_u16(), 401);
    let r = client.get(ca.url("/crl/nope.crl")).send().expect("get");
    assert_eq!(r.status().as_u16(), 404);

    // Listing and showing.
    let list = ok(ca.cmd().args(["list", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&list).expect("json");
    assert!(v.as_array().expect("array").len() >= 8, "{list}");
    let revoked = ok(ca.cmd().args(["list", "--status", "revoked", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&revoked).expect("json");
    assert_eq!(v.as_array().expect("array").len(), 1, "{revoked}");
    let table = ok(ca.cmd().args(["list", "--subject", "api.example"]));
    assert!(table.contains("api.example.com"), "{table}");
    let show = ok(ca.cmd().args(["show", &serial]));
    assert!(
        show.contains("keyCompromise") && show.contains("BEGIN CERTIFICATE"),
        "{show}"
    );
    let profiles = ok(ca.cmd().args(["profiles"]));
    for p in [
        "tls-server",
        "tls-client",
        "device",
        "email",
        "ra",
        "ocsp-signing",
        "sub-ca",
    ] {
        assert!(profiles.contains(p), "{profiles}");
    }
    let a = ok(ca.cmd().args(["audit", "verify"]));
    assert!(a.contains("intact"), "{a}");

    // SIGTERM: clean exit. Then the CRL number survives a restart.
    let status = ca.stop();
    assert!(
        status.success(),
        "exit status {status}\n{}",
        ca.server_log()
    );
    let a = ok(ca.cmd().args(["audit", "verify"]));
    assert!(a.contains("intact"), "offline audit verify: {a}");
    let list = ok(ca.cmd().args(["list", "--json"]));
    assert!(list.contains(&serial), "offline list");
    ca.start();
    let crl3 = ca.path("crl3.der");
    ok(ca.cmd().args(["crl", "--ca", "issuing"]));
    curl_to(&ca.url("/crl/issuing.crl"), &crl3);
    let n3 = crl_number(&ca, &crl3);
    assert!(n3 > n2, "CRL number after restart: {n2} then {n3}");
    assert!(ca.stop().success());
    let log = ca.server_log();
    let token = std::fs::read_to_string(ca.data.join("admin-token")).expect("token");
    assert!(
        !log.contains(token.trim()),
        "the admin token appears in the log"
    );
}

/// An OpenSSL CSR (`openssl req -new -subj … [-addext …]`) with a new key of `newkey`
/// (`ec` for P-256, or `rsa:2048`, with `pkeyopt` when given); returns the CSR path.
fn openssl_csr(
    ca: &TestCa,
    name: &str,
    subj: &str,
    addext: Option<&str>,
    newkey: &str,
    pkeyopt: Option<&str>,
) -> std::path::PathBuf {
    let csr = ca.path(&format!("{name}.csr"));
    let mut cmd = openssl();
    cmd.args(["req", "-new", "-nodes", "-subj", subj, "-newkey", newkey])
        .arg("-keyout")
        .arg(ca.path(&format!("{name}.key")))
        .arg("-out")
        .arg(&csr);
    if newkey == "ec" {
        cmd.args(["-pkeyopt", "ec_paramgen_curve:P-256"]);
    }
    if let Some(o) = pkeyopt {
        cmd.args(["-pkeyopt", o]);
    }
    if let Some(e) = addext {
        cmd.args(["-addext", e]);
    }
    ok(&mut cmd);
    csr
}

/// Issue 9 items 1, 2, 8 and 19 through the CLI (which goes through the admin API) and
/// the admin API's JSON form, with OpenSSL-made CSRs: a CN outside the profile's DNS
/// rules or a wildcard CN is refused although the SAN is fine; control characters in
/// the subject are refused from a CSR, from `--subject` and from JSON; an RSA key with
/// e = 3 is refused; an accepted CSR keeps its subject's RDN order. Nothing refused is
/// issued.
#[test]
fn subject_names_strings_and_exponents_through_the_cli_and_admin_api() {
    if !interop_enabled("subject_names_strings_and_exponents_through_the_cli_and_admin_api") {
        return;
    }
    let mut ca = TestCa::init(std::path::Path::new(BIN), &[]);
    let mut text = std::fs::read_to_string(ca.config()).expect("config");
    // The issue's profile: DNS names below example.com only, wildcards off.
    text.push_str(
        r#"
[profiles.corp]
validity_days = 30
extended_key_usage = ["clientAuth"]
subject = { from_request = ["CN", "O", "OU"] }
san = { dns = [".example.com"] }
"#,
    );
    std::fs::write(ca.config(), text).expect("write config");
    ok(ca.cmd().args(["config", "check"]));
    ca.start();
    let count = || -> u64 {
        let h: serde_json::Value = reqwest::blocking::get(ca.url("/healthz"))
            .expect("healthz")
            .json()
            .expect("json");
        h["certificates"].as_u64().expect("certificates")
    };
    let before = count();
    let san_ok = Some("subjectAltName=DNS:ok.example.com");
    for (name, subj, addext, newkey, pkeyopt, profile, reason) in [
        (
            "evil",
            "/CN=www.evil.com",
            san_ok,
            "ec",
            None,
            "corp",
            "www.evil.com is not allowed",
        ),
        (
            "wild",
            "/CN=*.example.com",
            san_ok,
            "ec",
            None,
            "corp",
            "wildcard",
        ),
        (
            "notsan",
            "/CN=a.example.com",
            san_ok,
            "ec",
            None,
            "corp",
            "not one of the subjectAltNames",
        ),
        (
            "ctl",
            "/CN=a\r\nb\x1b",
            None,
            "ec",
            None,
            "tls-client",
            "control",
        ),
        (
            "e3",
            "/CN=legacy",
            None,
            "rsa:2048",
            Some("rsa_keygen_pubexp:3"),
            "tls-client",
            "exponent 3",
        ),
    ] {
        let csr = openssl_csr(&ca, name, subj, addext, newkey, pkeyopt);
        let out = fails(
            ca.cmd()
                .args(["issue", "--profile", profile, "--csr"])
                .arg(&csr)
                .arg("--out")
                .arg(ca.path(name)),
        );
        assert!(out.contains(reason), "{name}: {reason:?} not in {out}");
    }
    // A generated key with a subject given as text: the same rules.
    let out = fails(
        ca.cmd()
            .args(["issue", "--profile", "corp", "--generate-key"])
            .args(["--subject", "CN=www.evil.com", "--dns", "ok.example.com"])
            .arg("--out")
            .arg(ca.path("gen-evil")),
    );
    assert!(out.contains("www.evil.com is not allowed"), "{out}");
    let out = fails(
        ca.cmd()
            .args(["issue", "--profile", "tls-client", "--generate-key"])
            .args(["--subject", "CN=a\x1b[31mred"])
            .arg("--out")
            .arg(ca.path("gen-esc")),
    );
    assert!(out.contains("control"), "{out}");
    // The admin API's JSON: a NUL in the subject string is a 400, not a certificate.
    let token = std::fs::read_to_string(ca.data.join("admin-token")).expect("token");
    let r = reqwest::blocking::Client::new()
        .post(ca.url("/admin/v1/certificates"))
        .bearer_auth(token.trim())
        .json(&serde_json::json!({
            "profile": "device",
            "generate_key": "ecdsa-p256",
            "subject": "CN=a\u{0}b",
        }))
        .send()
        .expect("post");
    assert_eq!(r.status().as_u16(), 400);
    let body: serde_json::Value = r.json().expect("json");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("U+0000")),
        "{body}"
    );
    assert_eq!(count(), before, "a refused request was issued");

    // Accepted: the CN is an allowed SAN; the certificate keeps the CSR's RDN order
    // (OpenSSL prints both in DER order).
    let csr = openssl_csr(
        &ca,
        "good",
        "/CN=ok.example.com/O=Example/OU=Ops",
        san_ok,
        "ec",
        None,
    );
    ok(ca
        .cmd()
        .args(["issue", "--profile", "corp", "--csr"])
        .arg(&csr)
        .arg("--out")
        .arg(ca.path("good")));
    let want = ok(openssl()
        .args(["req", "-noout", "-subject", "-in"])
        .arg(&csr));
    let got = ok(openssl()
        .args(["x509", "-noout", "-subject", "-in"])
        .arg(ca.path("good.crt")));
    assert_eq!(got, want);
    assert!(
        got.contains("CN = ok.example.com, O = Example, OU = Ops"),
        "{got}"
    );
    assert_eq!(count(), before + 1);
}
