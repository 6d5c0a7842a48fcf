//! Two `privca serve` processes ("nodes") on one PostgreSQL database (issue 12): both
//! issue, a revocation through node B is answered `revoked` by node A's OCSP at once and
//! listed in the CRL node A serves, the audit log is one chain that verifies, and when
//! the database stops `/healthz` answers 503 and turns to 200 by itself when it returns.
//!
//! Runs with `PRIVCA_INTEROP=1` (scripts/test.sh installs PostgreSQL and OpenSSL); the
//! cluster is a throw-away one (`store::testsuite::pg_cluster`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use privca_tests::{TestCa, free_port, interop_enabled, ok, openssl, run, serial_of};
use store::testsuite::pg_cluster::PgCluster;

const BIN: &str = env!("CARGO_BIN_EXE_privca-under-test");

/// A second node: `privca serve` on its own port with its own config file.
struct Node {
    child: Child,
    config: PathBuf,
    port: u16,
    log: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn health(port: u16) -> u16 {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

fn wait_healthy(port: u16, what: &str, log: &dyn Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if health(port) == 200 {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not answer 200 on /healthz:\n{}", log());
}

fn ocsp_status(data: &Path, port: u16, cert: &Path) -> String {
    let out = run(openssl()
        .args(["ocsp", "-no_nonce", "-issuer"])
        .arg(data.join("ca/issuing.crt"))
        .arg("-cert")
        .arg(cert)
        .args(["-url", &format!("http://127.0.0.1:{port}/ocsp"), "-CAfile"])
        .arg(data.join("ca/root.crt")));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Response verify OK"), "{text}");
    text
}

fn issue(config: &Path, dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    ok(Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(["issue", "--profile", "tls-server", "--generate-key"])
        .args(["--subject", &format!("CN={name}.example")])
        .args(["--dns", &format!("{name}.example"), "--out"])
        .arg(&out)
        .current_dir(dir));
    out.with_extension("crt")
}

#[test]
fn two_nodes_on_one_database_share_certificates_revocations_and_the_audit_chain() {
    if !interop_enabled("e2e_postgres") {
        return;
    }
    let cluster = PgCluster::start().expect("PostgreSQL (scripts/test.sh installs it)");
    let dbname = cluster.create_database();

    // Node A: a CA from `privca init`, its [store] moved to PostgreSQL.
    let mut a = TestCa::init(Path::new(BIN), &[]);
    let text = std::fs::read_to_string(a.config()).expect("config");
    let pg = |node: &str| {
        format!(
            "backend = \"postgres\"\n[store.postgres]\nhost = \"127.0.0.1\"\nport = {}\n\
             user = \"privca\"\ndbname = \"{dbname}\"\npool_size = 4\nnode_id = \"{node}\"\n",
            cluster.port()
        )
    };
    let redb_line = "path = \"privca.redb\"\n";
    assert!(text.contains(redb_line));
    std::fs::write(a.config(), text.replacen(redb_line, &pg("node-a"), 1)).expect("write");

    // Not migrated: refused with what to do; then migrate (twice: idempotent).
    let refused = run(a.cmd().arg("list"));
    let said = String::from_utf8_lossy(&refused.stderr).to_string();
    assert!(
        !refused.status.success() && said.contains("privca store migrate"),
        "{said}"
    );
    let first = ok(a.cmd().args(["store", "migrate"]));
    assert!(first.contains("applied migrations 1"), "{first}");
    let again = ok(a.cmd().args(["store", "migrate"]));
    assert!(again.contains("current"), "{again}");

    // Node B: the same keys and CA files, its own port and node id.
    let b_port = free_port();
    let b_config = a.data.join("node-b.toml");
    let b_text = text.replacen(redb_line, &pg("node-b"), 1).replacen(
        &format!("listen = \"127.0.0.1:{}\"", a.port),
        &format!("listen = \"127.0.0.1:{b_port}\""),
        1,
    );
    assert!(b_text.contains(&format!("127.0.0.1:{b_port}")));
    std::fs::write(&b_config, b_text).expect("write");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&b_config, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    ok(Command::new(BIN)
        .arg("--config")
        .arg(&b_config)
        .args(["config", "check"]));

    a.start();
    let b_log = a.path("node-b.log");
    let b = Node {
        child: Command::new(BIN)
            .arg("--config")
            .arg(&b_config)
            // The command line names the node, over the configuration's `node-b`.
            .args(["serve", "--node-id", "node-b-cli"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&b_log).expect("log"))
            .spawn()
            .expect("start node B"),
        config: b_config,
        port: b_port,
        log: b_log,
    };
    let b_log_text = || std::fs::read_to_string(&b.log).unwrap_or_default();
    wait_healthy(b.port, "node B", &b_log_text);

    // Both nodes issue; each sees the other's certificate.
    let on_a = issue(&a.config(), a.dir.path(), "on-a");
    let on_b = issue(&b.config, a.dir.path(), "on-b");
    let (serial_a, serial_b) = (serial_of(&on_a), serial_of(&on_b));
    assert_ne!(serial_a, serial_b);
    let shown = ok(Command::new(BIN)
        .arg("--config")
        .arg(&b.config)
        .args(["show", &serial_a]));
    assert!(shown.contains("on-a.example"), "{shown}");
    assert!(ocsp_status(&a.data, a.port, &on_b).contains(": good"));
    // Asked at node A before the revocation (twice: a node with a pre-signed cache would
    // keep answering "good" from it after another node revokes).
    for _ in 0..2 {
        assert!(ocsp_status(&a.data, a.port, &on_a).contains(": good"));
    }

    // Revoked through node B: node A's OCSP answers revoked at once (status is read from
    // the database on every request), and the CRL node A serves lists it.
    ok(Command::new(BIN).arg("--config").arg(&b.config).args([
        "revoke",
        &serial_a,
        "--reason",
        "superseded",
    ]));
    let status = ocsp_status(&a.data, a.port, &on_a);
    assert!(status.contains(": revoked"), "{status}");
    let status = ocsp_status(&a.data, b.port, &on_a);
    assert!(status.contains(": revoked"), "{status}");
    let crl = a.path("a.crl");
    ok(Command::new("curl")
        .args(["-sS", "-f", "-o"])
        .arg(&crl)
        .arg(a.url("/crl/issuing.crl")));
    let crl_text = ok(openssl()
        .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
        .arg(&crl));
    assert!(crl_text.contains(&serial_a), "{crl_text}");

    // One chain across both nodes.
    let verified = ok(a.cmd().args(["audit", "verify"]));
    assert!(verified.contains("intact"), "{verified}");
    // Each entry names the node that wrote it: an issuance through node B's admin API is
    // recorded under its --node-id (the CLI, which opens the database itself, under the
    // configuration's `node-b`).
    let token = std::fs::read_to_string(a.data.join("admin-token")).expect("token");
    let r = privca_tests::admin_issue_tls_server(
        &reqwest::blocking::Client::new(),
        format!("127.0.0.1:{b_port}").parse().expect("addr"),
        token.trim(),
        "via-b.example.com",
    );
    assert_eq!(r.status(), 201);
    let bin = store::testsuite::pg_cluster::find_bin().expect("PostgreSQL bin");
    let nodes = ok(Command::new(bin.join("psql"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &cluster.port().to_string(),
            "-U",
            "privca",
        ])
        .args([
            "-d",
            &dbname,
            "-At",
            "-c",
            "SELECT DISTINCT node FROM audit ORDER BY 1",
        ]));
    let nodes: Vec<&str> = nodes.lines().collect();
    assert!(nodes.contains(&"node-b-cli"), "{nodes:?}");

    // The database goes away: 503, then 200 again by itself, and issuance works again.
    cluster.pause();
    assert_eq!(health(a.port), 503);
    assert_eq!(health(b.port), 503);
    cluster.resume();
    wait_healthy(a.port, "node A after the database returned", &|| {
        a.server_log()
    });
    wait_healthy(b.port, "node B after the database returned", &b_log_text);
    let after = issue(&b.config, a.dir.path(), "after");
    assert!(ocsp_status(&a.data, a.port, &after).contains(": good"));
    let verified = ok(a.cmd().args(["audit", "verify"]));
    assert!(verified.contains("intact"), "{verified}");
}
