//! ACME (RFC 8555) end to end with a real client: `privca serve` with an ACME endpoint
//! that requires External Account Binding, an EAB key from `privca acme eab create`
//! (through the running server's admin API), and certbot (PyPI, in the project venv)
//! obtaining a certificate with `certonly --standalone` (http-01 answered by certbot's
//! own listener on a loopback port), which is then checked with `openssl verify` and
//! pkilint, revoked with `certbot revoke` and seen revoked over OCSP and in the CRL.
//! Refusals are checked with certbot too (no EAB, a name outside the profile). A second
//! test does the same with lego (Debian; the ACME library inside Traefik): `run` with
//! `--eab` and its own http-01 listener, then `revoke`. Further tests: lego and
//! certbot-dns-rfc2136 with dns-01 through Knot DNS for a wildcard, lego with tls-alpn-01, Go's x/crypto/acme rolling the
//! account key over, Caddy getting and serving a certificate. Runs when
//! `PRIVCA_INTEROP=1`.

use std::path::{Path, PathBuf};
use std::process::Command;

use privca_tests::{TestCa, free_port, interop_enabled, ok, openssl, pkilint, run};

const BIN: &str = env!("CARGO_BIN_EXE_privca-under-test");

struct Acme {
    ca: TestCa,
    tls_port: u16,
    http01_port: u16,
    tls_alpn01_port: u16,
}

impl Acme {
    fn start() -> Acme {
        Acme::start_with("")
    }

    /// The server with `endpoint_extra` added to `[acme.endpoints.servers]`.
    fn start_with(endpoint_extra: &str) -> Acme {
        Acme::start_full(endpoint_extra, None)
    }

    /// The same, its store on the database `dbname` of `cluster` when given (migrated
    /// with `privca store migrate`).
    fn start_full(
        endpoint_extra: &str,
        pg: Option<(&store::testsuite::pg_cluster::PgCluster, &str)>,
    ) -> Acme {
        let tls_port = free_port();
        let http01_port = free_port();
        let tls_alpn01_port = free_port();
        let listen = format!("127.0.0.1:{tls_port}");
        let mut ca = TestCa::init(
            Path::new(BIN),
            &["--tls-listen", &listen, "--hostname", "127.0.0.1"],
        );
        ca.write_chain_pem();
        let cfg = ca.config();
        let mut text = std::fs::read_to_string(&cfg).expect("config");
        text.push_str(&format!(
            r#"
[profiles.acme-server]
validity_days = 30
extended_key_usage = ["serverAuth"]
san = {{ required = true, dns = [".acme.test"], ip_ranges = ["127.0.0.0/8"], cn_as_dns = true, wildcards = true }}

[acme]
# One good nonce in five is refused with badNonce, so the clients' retries run.
reject_nonce_every = 5

[acme.endpoints.servers]
profile = "acme-server"
http01_port = {http01_port}
tls_alpn01_port = {tls_alpn01_port}
resolve = {{ "www.acme.test" = "127.0.0.1", "api.acme.test" = "127.0.0.1", "tls.acme.test" = "127.0.0.1" }}
{endpoint_extra}
"#
        ));
        if let Some((cluster, dbname)) = pg {
            let redb_line = "path = \"privca.redb\"\n";
            assert!(text.contains(redb_line));
            text = text.replacen(
                redb_line,
                &format!(
                    "backend = \"postgres\"\n[store.postgres]\nhost = \"127.0.0.1\"\nport = {}\n\
                     user = \"privca\"\ndbname = \"{dbname}\"\npool_size = 4\n",
                    cluster.port()
                ),
                1,
            );
        }
        std::fs::write(&cfg, text).expect("write config");
        if pg.is_some() {
            ok(ca.cmd().args(["store", "migrate"]));
        }
        ok(ca.cmd().args(["config", "check"]));
        ca.start();
        Acme {
            ca,
            tls_port,
            http01_port,
            tls_alpn01_port,
        }
    }

    fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/acme/servers/directory", self.tls_port)
    }

    /// `privca acme eab create`: (kid, hmac key).
    fn eab(&self) -> (String, String) {
        let out = ok(self
            .ca
            .cmd()
            .args(["acme", "eab", "create", "--endpoint", "servers"]));
        let field = |name: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| panic!("no {name} in {out}"))
        };
        (field("kid:"), field("hmac_key:"))
    }

    /// certbot with its directories under `dir` and the privca root trusted.
    fn certbot(&self, dir: &Path) -> Command {
        let mut c = Command::new("certbot");
        c.env("REQUESTS_CA_BUNDLE", self.ca.data.join("ca/root.crt"))
            .args(["--non-interactive", "--server", &self.directory()])
            .arg("--config-dir")
            .arg(dir.join("conf"))
            .arg("--work-dir")
            .arg(dir.join("work"))
            .arg("--logs-dir")
            .arg(dir.join("logs"));
        c
    }

    fn certonly(
        &self,
        dir: &Path,
        name: &str,
        eab: Option<&(String, String)>,
    ) -> std::process::Output {
        let mut c = self.certbot(dir);
        c.args([
            "certonly",
            "--standalone",
            "--agree-tos",
            "-m",
            "a@b.example",
        ])
        .args(["--http-01-address", "127.0.0.1"])
        .args(["--http-01-port", &self.http01_port.to_string()])
        .args(["-d", name]);
        if let Some((kid, hmac)) = eab {
            // "=" form: a base64url key may begin with "-", which the option parser would
            // take for an option.
            c.arg(format!("--eab-kid={kid}"))
                .arg(format!("--eab-hmac-key={hmac}"));
        }
        run(&mut c)
    }
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `openssl ocsp` status line of `cert`.
fn ocsp_status(ca: &TestCa, cert: &Path) -> String {
    let out = run(openssl()
        .args(["ocsp", "-issuer"])
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

#[test]
fn certbot_obtains_verifies_and_revokes_with_eab() {
    if !interop_enabled("certbot_obtains_verifies_and_revokes_with_eab") {
        return;
    }
    let mut acme = Acme::start();
    let dir = acme.ca.path("certbot");

    // Without EAB the endpoint refuses the account: nothing is issued.
    let out = acme.certonly(&acme.ca.path("certbot-noeab"), "www.acme.test", None);
    let t = text(&out);
    assert!(!out.status.success(), "certbot without EAB succeeded: {t}");
    assert!(
        t.contains("externalAccountRequired") || t.contains("external account"),
        "{t}"
    );

    let eab = acme.eab();
    let out = acme.certonly(&dir, "www.acme.test", Some(&eab));
    assert!(
        out.status.success(),
        "certbot certonly failed: {}\nserver log:\n{}",
        text(&out),
        acme.ca.server_log()
    );
    let live: PathBuf = dir.join("conf/live/www.acme.test");
    let cert = live.join("cert.pem");
    let fullchain = live.join("fullchain.pem");
    let v = acme.ca.openssl_verify(&fullchain);
    assert!(v.contains(": OK"), "{v}");
    let shown = ok(openssl()
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(&cert));
    assert!(shown.contains("DNS:www.acme.test"), "{shown}");
    // The chain served is the certificate, then the issuing CA, then the root.
    let chain = std::fs::read_to_string(&fullchain).expect("fullchain");
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 3, "{chain}");
    let findings = pkilint("lint_pkix_cert", &[], &cert);
    assert!(findings.is_empty(), "pkilint: {findings:?}");
    assert!(ocsp_status(&acme.ca, &cert).contains(": good"));

    // ARI (RFC 9773): `certbot renew` reads the certificate's renewalInfo; its window is
    // still ahead, so certbot does not renew.
    let mut c = acme.certbot(&dir);
    c.args(["renew", "--cert-name", "www.acme.test"]);
    let out = run(&mut c);
    let t = text(&out);
    assert!(out.status.success(), "certbot renew failed: {t}");
    assert!(t.contains("not due for renewal"), "{t}");
    let log = acme.ca.server_log();
    assert!(
        log.lines().any(
            |l| l.contains("method=GET path=/acme/servers/renewal-info/")
                && l.contains("status=200")
        ),
        "certbot did not fetch renewalInfo: {log}"
    );
    let certbot_log = std::fs::read_to_string(dir.join("logs/letsencrypt.log")).unwrap_or_default();
    assert!(
        !certbot_log
            .to_lowercase()
            .contains("failed to fetch renewal"),
        "{certbot_log}"
    );

    // The EAB key is bound now: a second account with it is refused.
    let out = acme.certonly(&acme.ca.path("certbot-reuse"), "www.acme.test", Some(&eab));
    assert!(
        !out.status.success(),
        "a bound EAB key was accepted again: {}",
        text(&out)
    );
    let keys = ok(acme.ca.cmd().args(["acme", "eab", "list"]));
    assert!(keys.contains(&eab.0), "{keys}");
    assert!(
        !keys.contains(&eab.1),
        "eab list shows the HMAC key: {keys}"
    );

    // A name outside the profile is refused at newOrder.
    let out = acme.certonly(&dir, "www.other.example", None);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("rejectedIdentifier") || t.contains("not allowed"),
        "{t}"
    );

    // certbot revoke with the account key (kid); OCSP and the CRL say revoked.
    let mut c = acme.certbot(&dir);
    c.args([
        "revoke",
        "--no-delete-after-revoke",
        "--reason",
        "superseded",
        "--cert-path",
    ])
    .arg(&cert);
    let out = run(&mut c);
    assert!(
        out.status.success(),
        "certbot revoke failed: {}\n{}",
        text(&out),
        acme.ca.server_log()
    );
    let status = ocsp_status(&acme.ca, &cert);
    assert!(status.contains(": revoked"), "{status}");
    let serial = ok(openssl()
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(&cert));
    let serial = serial.trim().trim_start_matches("serial=").to_string();
    let der = acme.ca.path("issuing.crl");
    ok(Command::new("curl")
        .args(["-sS", "-f", "-o"])
        .arg(&der)
        .arg(acme.ca.url("/crl/issuing.crl")));
    let crl = ok(openssl()
        .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
        .arg(&der));
    assert!(
        crl.to_uppercase().contains(&serial.to_uppercase()),
        "{serial} not in {crl}"
    );

    // The audit log recorded the binding, the order and the issuance, and still verifies.
    let audit = ok(acme.ca.cmd().args(["audit", "verify"]));
    assert!(audit.contains("audit log intact"), "{audit}");
    acme.ca.stop();
}

#[test]
fn lego_obtains_and_revokes_with_eab() {
    if !interop_enabled("lego_obtains_and_revokes_with_eab") {
        return;
    }
    lego_obtains_and_revokes(Acme::start());
}

/// The same with the store on PostgreSQL: accounts, orders, authorizations and EAB keys
/// in the database (issue 12).
#[test]
fn lego_obtains_and_revokes_with_the_store_on_postgresql() {
    if !interop_enabled("lego_obtains_and_revokes_with_the_store_on_postgresql") {
        return;
    }
    let cluster = store::testsuite::pg_cluster::PgCluster::start()
        .expect("PostgreSQL (scripts/test.sh installs it)");
    let dbname = cluster.create_database();
    lego_obtains_and_revokes(Acme::start_full("", Some((&cluster, &dbname))));
}

/// lego against `acme`: obtain over http-01, verify, pkilint, OCSP good, revoke, OCSP
/// revoked.
fn lego_obtains_and_revokes(mut acme: Acme) {
    let (kid, hmac) = acme.eab();
    let dir = acme.ca.path("lego");
    let lego = |action: &str, extra: &[&str]| {
        let mut c = Command::new("lego");
        c.env("LEGO_CA_CERTIFICATES", acme.ca.data.join("ca/root.crt"))
            .args([
                "--accept-tos",
                "--email",
                "a@b.example",
                "--server",
                &acme.directory(),
            ])
            .args(["--eab", &format!("--kid={kid}"), &format!("--hmac={hmac}")])
            .args([
                "--http",
                "--http.port",
                &format!("127.0.0.1:{}", acme.http01_port),
            ])
            .args(["--domains", "api.acme.test", "--path"])
            .arg(&dir)
            .arg(action)
            .args(extra);
        run(&mut c)
    };
    let out = lego("run", &["--no-bundle"]);
    assert!(
        out.status.success(),
        "lego run failed: {}\nserver log:\n{}",
        text(&out),
        acme.ca.server_log()
    );
    let cert = dir.join("certificates/api.acme.test.crt");
    let v = acme.ca.openssl_verify(&cert);
    assert!(v.contains(": OK"), "{v}");
    let findings = pkilint("lint_pkix_cert", &[], &cert);
    assert!(findings.is_empty(), "pkilint: {findings:?}");
    assert!(ocsp_status(&acme.ca, &cert).contains(": good"));
    // lego moves what it revoked into an archive directory: keep a copy.
    let kept = acme.ca.path("lego-api.crt");
    std::fs::copy(&cert, &kept).expect("copy");
    let cert = kept;
    let out = lego("revoke", &[]);
    assert!(
        out.status.success(),
        "lego revoke failed: {}\n{}",
        text(&out),
        acme.ca.server_log()
    );
    assert!(ocsp_status(&acme.ca, &cert).contains(": revoked"));
    acme.ca.stop();
}

/// Knot DNS (Debian `knot`) authoritative for `acme.test.` on a loopback port, in a
/// temporary directory, accepting dynamic updates (RFC 2136) signed with a TSIG key
/// (RFC 8945, hmac-sha256). Stopped when dropped.
struct Knot {
    child: std::process::Child,
    port: u16,
    secret: String,
    dir: PathBuf,
}

impl Knot {
    fn start(dir: &Path) -> Knot {
        std::fs::create_dir_all(dir.join("db")).expect("knot dir");
        let port = free_port();
        let secret = base64_of(&rand_bytes());
        let conf = format!(
            r#"server:
    rundir: "{d}"
    listen: 127.0.0.1@{port}
log:
  - target: stderr
    any: info
database:
    storage: "{d}/db"
key:
  - id: privca-test
    algorithm: hmac-sha256
    secret: {secret}
acl:
  - id: update
    key: privca-test
    action: update
template:
  - id: default
    storage: "{d}"
    file: "%s.zone"
zone:
  - domain: acme.test
    acl: update
"#,
            d = dir.display()
        );
        std::fs::write(dir.join("knot.conf"), conf).expect("knot.conf");
        std::fs::write(
            dir.join("acme.test.zone"),
            "$ORIGIN acme.test.\n$TTL 60\n@ SOA ns admin 1 60 60 600 60\n@ NS ns\nns A 127.0.0.1\n",
        )
        .expect("zone");
        let log = std::fs::File::create(dir.join("knotd.log")).expect("log");
        let child = Command::new("knotd")
            .arg("-c")
            .arg(dir.join("knot.conf"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start knotd (Debian package knot)");
        let knot = Knot {
            child,
            port,
            secret,
            dir: dir.to_path_buf(),
        };
        // Ready when the zone's SOA is served.
        for _ in 0..100 {
            let out = run(Command::new("kdig")
                .args(["@127.0.0.1", "-p", &port.to_string(), "+short", "+time=1"])
                .args(["acme.test", "SOA"]));
            if out.status.success() && !out.stdout.is_empty() {
                return knot;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("knotd did not serve acme.test: {}", knot.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("knotd.log")).unwrap_or_default()
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    let mut f = std::fs::File::open("/dev/urandom").expect("urandom");
    std::io::Read::read_exact(&mut f, &mut b).expect("random");
    b
}

fn base64_of(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// dns-01 (RFC 8555 §8.4) with a wildcard (§7.1.3): lego's `rfc2136` provider writes the
/// TXT records into Knot with TSIG-signed dynamic updates, privca reads them from Knot
/// (`dns_resolver`), and lego gets one certificate for `*.x.acme.test` and
/// `x.acme.test`.
#[test]
fn lego_gets_a_wildcard_certificate_with_dns_01_through_knot() {
    if !interop_enabled("lego_gets_a_wildcard_certificate_with_dns_01_through_knot") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let knot = Knot::start(&tmp.path().join("knot"));
    let mut acme = Acme::start_with(&format!("dns_resolver = \"{}\"", knot.addr()));
    let (kid, hmac) = acme.eab();
    let dir = acme.ca.path("lego-dns");
    let mut c = Command::new("lego");
    c.env("LEGO_CA_CERTIFICATES", acme.ca.data.join("ca/root.crt"))
        .env("RFC2136_NAMESERVER", knot.addr())
        .env("RFC2136_TSIG_KEY", "privca-test")
        .env("RFC2136_TSIG_SECRET", &knot.secret)
        .env("RFC2136_TSIG_ALGORITHM", "hmac-sha256.")
        .env("RFC2136_PROPAGATION_TIMEOUT", "30")
        .env("RFC2136_POLLING_INTERVAL", "1")
        .env("RFC2136_SEQUENCE_INTERVAL", "1")
        .env("RFC2136_TTL", "10")
        .args([
            "--accept-tos",
            "--email",
            "a@b.example",
            "--server",
            &acme.directory(),
        ])
        .args(["--eab", &format!("--kid={kid}"), &format!("--hmac={hmac}")])
        .args(["--dns", "rfc2136", "--dns.resolvers", &knot.addr()])
        .arg("--dns.disable-cp")
        .args(["--domains", "*.x.acme.test", "--domains", "x.acme.test"])
        .arg("--path")
        .arg(&dir)
        .args(["run", "--no-bundle"]);
    let out = run(&mut c);
    assert!(
        out.status.success(),
        "lego run failed: {}\nserver log:\n{}\nknot log:\n{}",
        text(&out),
        acme.ca.server_log(),
        knot.log()
    );
    // lego names the files after the first domain, "*" written as "_".
    let cert = dir.join("certificates/_.x.acme.test.crt");
    let v = acme.ca.openssl_verify(&cert);
    assert!(v.contains(": OK"), "{v}");
    let shown = ok(openssl()
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(&cert));
    assert!(
        shown.contains("DNS:*.x.acme.test") && shown.contains("DNS:x.acme.test"),
        "{shown}"
    );
    // pkilint's RFC 5280 name syntax check does not know wildcards (RFC 9525 defines
    // them); that one finding on the wildcard name is expected, nothing else.
    let findings: Vec<String> = pkilint("lint_pkix_cert", &[], &cert)
        .into_iter()
        .filter(|x| !(x.contains("pkix.invalid_domain_name_syntax") && x.contains("\"*.")))
        .collect();
    assert!(findings.is_empty(), "pkilint: {findings:?}");
    acme.ca.stop();
}

/// tls-alpn-01 (RFC 8737): lego answers on its own TLS listener (`--tls --tls.port`)
/// with the acmeIdentifier certificate; privca connects with ALPN `acme-tls/1`.
#[test]
fn lego_obtains_with_tls_alpn_01() {
    if !interop_enabled("lego_obtains_with_tls_alpn_01") {
        return;
    }
    let mut acme = Acme::start();
    let (kid, hmac) = acme.eab();
    let dir = acme.ca.path("lego-tls");
    let mut c = Command::new("lego");
    c.env("LEGO_CA_CERTIFICATES", acme.ca.data.join("ca/root.crt"))
        .args([
            "--accept-tos",
            "--email",
            "a@b.example",
            "--server",
            &acme.directory(),
        ])
        .args(["--eab", &format!("--kid={kid}"), &format!("--hmac={hmac}")])
        .args([
            "--tls",
            "--tls.port",
            &format!("127.0.0.1:{}", acme.tls_alpn01_port),
        ])
        .args(["--domains", "tls.acme.test", "--path"])
        .arg(&dir)
        .args(["run", "--no-bundle"]);
    let out = run(&mut c);
    assert!(
        out.status.success(),
        "lego run failed: {}\nserver log:\n{}",
        text(&out),
        acme.ca.server_log()
    );
    let cert = dir.join("certificates/tls.acme.test.crt");
    let v = acme.ca.openssl_verify(&cert);
    assert!(v.contains(": OK"), "{v}");
    let findings = pkilint("lint_pkix_cert", &[], &cert);
    assert!(findings.is_empty(), "pkilint: {findings:?}");
    acme.ca.stop();
}

/// keyChange (RFC 8555 §7.3.5) and deactivation (§7.3.6) with a real client: Debian's
/// golang.org/x/crypto/acme (cert-manager's ACME library), built in GOPATH mode from
/// tests/clients/go_keyrollover, registers with EAB, rolls its key over, finds the
/// account with the new key and not with the old one, and deactivates it.
#[test]
fn go_x_crypto_acme_rolls_the_account_key_over() {
    if !interop_enabled("go_x_crypto_acme_rolls_the_account_key_over") {
        return;
    }
    let mut acme = Acme::start();
    let (kid, hmac) = acme.eab();
    let bin = acme.ca.path("go_keyrollover");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/go_keyrollover");
    let out = run(Command::new("go")
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOCACHE", acme.ca.path("gocache"))
        .env("GOFLAGS", "")
        .current_dir(&src)
        .arg("build")
        .arg("-o")
        .arg(&bin)
        .arg("."));
    assert!(out.status.success(), "go build: {}", text(&out));
    let out = run(Command::new(&bin)
        .env("SSL_CERT_FILE", acme.ca.data.join("ca/root.crt"))
        .env("PRIVCA_EAB_KID", &kid)
        .env("PRIVCA_EAB_HMAC", &hmac)
        .arg(acme.directory()));
    let t = text(&out);
    assert!(
        out.status.success(),
        "the Go client failed: {t}\nserver log:\n{}",
        acme.ca.server_log()
    );
    for line in [
        "registered ",
        "rolled over",
        "new key finds ",
        "old key refused",
        "deactivated",
    ] {
        assert!(t.contains(line), "{line:?} missing: {t}");
    }
    acme.ca.stop();
}

/// Caddy (Debian; its ACME code is acmez/certmagic) as a client: a Caddyfile with
/// `acme_ca`, `acme_ca_root` and `acme_eab`, its HTTP and HTTPS ports on loopback (the
/// endpoint's http01_port and tls_alpn01_port), gets a certificate for its site and
/// serves it, as `openssl s_client` sees.
#[test]
fn caddy_gets_and_serves_a_certificate() {
    if !interop_enabled("caddy_gets_and_serves_a_certificate") {
        return;
    }
    let mut acme = Acme::start();
    let (kid, hmac) = acme.eab();
    let dir = acme.ca.path("caddy");
    std::fs::create_dir_all(&dir).expect("caddy dir");
    let caddyfile = dir.join("Caddyfile");
    privca_tests::write_secret(
        &caddyfile,
        format!(
            r#"{{
	admin off
	default_bind 127.0.0.1
	http_port {http}
	https_port {https}
	storage file_system {storage}
	skip_install_trust
	email a@b.example
	acme_ca {directory}
	acme_ca_root {root}
	acme_eab {{
		key_id {kid}
		mac_key {hmac}
	}}
}}

tls.acme.test {{
	respond "served by caddy"
}}
"#,
            http = acme.http01_port,
            https = acme.tls_alpn01_port,
            storage = dir.join("data").display(),
            directory = acme.directory(),
            root = acme.ca.data.join("ca/root.crt").display(),
        ),
    );
    let log = std::fs::File::create(dir.join("caddy.log")).expect("log");
    let mut child = Command::new("caddy")
        .env("HOME", &dir)
        .env("XDG_DATA_HOME", dir.join("xdg-data"))
        .env("XDG_CONFIG_HOME", dir.join("xdg-config"))
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&caddyfile)
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start caddy (Debian package caddy)");
    let caddy_log = || std::fs::read_to_string(dir.join("caddy.log")).unwrap_or_default();
    // Caddy obtains the certificate in the background; wait until it serves one of
    // privca's.
    let served = dir.join("served.pem");
    let mut got = false;
    for _ in 0..60 {
        let out = run(openssl()
            .args(["s_client", "-connect"])
            .arg(format!("127.0.0.1:{}", acme.tls_alpn01_port))
            .args(["-servername", "tls.acme.test", "-showcerts"])
            .stdin(std::process::Stdio::null()));
        let t = String::from_utf8_lossy(&out.stdout).to_string();
        if let (Some(a), Some(b)) = (
            t.find("-----BEGIN CERTIFICATE-----"),
            t.find("-----END CERTIFICATE-----"),
        ) {
            std::fs::write(&served, &t[a..b + "-----END CERTIFICATE-----".len()]).expect("pem");
            let v = acme.ca.openssl_verify(&served);
            if v.contains(": OK") {
                got = true;
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        got,
        "caddy did not serve a privca certificate\ncaddy log:\n{}\nserver log:\n{}",
        caddy_log(),
        acme.ca.server_log()
    );
    let shown = ok(openssl()
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(&served));
    assert!(shown.contains("DNS:tls.acme.test"), "{shown}");
    acme.ca.stop();
}

/// dns-01 with certbot: the certbot-dns-rfc2136 plugin (PyPI, in the project venv)
/// writes the TXT records into Knot with TSIG, privca reads them from Knot, and certbot
/// gets one certificate for `*.c.acme.test` and `c.acme.test`.
#[test]
fn certbot_dns_rfc2136_gets_a_wildcard_certificate_through_knot() {
    if !interop_enabled("certbot_dns_rfc2136_gets_a_wildcard_certificate_through_knot") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let knot = Knot::start(&tmp.path().join("knot"));
    let mut acme = Acme::start_with(&format!("dns_resolver = \"{}\"", knot.addr()));
    let eab = acme.eab();
    let dir = acme.ca.path("certbot-dns");
    let ini = acme.ca.path("rfc2136.ini");
    privca_tests::write_secret(
        &ini,
        format!(
            "dns_rfc2136_server = 127.0.0.1\ndns_rfc2136_port = {}\ndns_rfc2136_name = privca-test.\ndns_rfc2136_secret = {}\ndns_rfc2136_algorithm = HMAC-SHA256\n",
            knot.port, knot.secret
        ),
    );
    let mut c = acme.certbot(&dir);
    c.args(["certonly", "--agree-tos", "-m", "a@b.example"])
        .args(["--dns-rfc2136", "--dns-rfc2136-credentials"])
        .arg(&ini)
        .args(["--dns-rfc2136-propagation-seconds", "1"])
        .args(["-d", "*.c.acme.test", "-d", "c.acme.test"])
        .arg(format!("--eab-kid={}", eab.0))
        .arg(format!("--eab-hmac-key={}", eab.1));
    let out = run(&mut c);
    assert!(
        out.status.success(),
        "certbot failed: {}\nserver log:\n{}\nknot log:\n{}",
        text(&out),
        acme.ca.server_log(),
        knot.log()
    );
    let cert = dir.join("conf/live/c.acme.test/cert.pem");
    let v = acme
        .ca
        .openssl_verify(&dir.join("conf/live/c.acme.test/fullchain.pem"));
    assert!(v.contains(": OK"), "{v}");
    let shown = ok(openssl()
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(&cert));
    assert!(
        shown.contains("DNS:*.c.acme.test") && shown.contains("DNS:c.acme.test"),
        "{shown}"
    );
    acme.ca.stop();
}
