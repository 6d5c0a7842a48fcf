//! The store under a running `privca serve` (issue 9 items 6, 9, 11, 14): unauthenticated
//! requests do not grow the audit log per request; a revocation whose CRL was never
//! signed is on the CRL served after a restart; a full disk answers a retryable 503 and
//! recovers without a restart; the certificate list pages with a cursor.
//!
//! These need no third-party tool, so they are not behind `PRIVCA_INTEROP`. The full-disk
//! test mounts a tmpfs and skips (with a message) where that is not permitted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use privca_tests::{TestCa, free_port, ok};
use store::Store;

const BIN: &str = env!("CARGO_BIN_EXE_privca-under-test");

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

fn token(ca: &TestCa) -> String {
    std::fs::read_to_string(ca.data.join("admin-token"))
        .expect("token")
        .trim()
        .to_string()
}

fn health(ca: &TestCa) -> (u16, serde_json::Value) {
    let r = client().get(ca.url("/healthz")).send().expect("healthz");
    let status = r.status().as_u16();
    let text = r.text().expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

fn audit_entries(ca: &TestCa) -> u64 {
    let (status, h) = health(ca);
    assert_eq!(status, 200, "{h}");
    h["audit_entries"].as_u64().expect("audit_entries")
}

/// Issues a certificate through the admin API; returns the status and the JSON answer.
fn issue(ca: &TestCa, cn: &str) -> (u16, Option<String>, serde_json::Value) {
    let r = client()
        .post(ca.url("/admin/v1/certificates"))
        .bearer_auth(token(ca))
        .json(&serde_json::json!({
            "profile": "tls-server",
            "generate_key": "ecdsa-p256",
            "subject": format!("CN={cn}"),
            "sans": [cn],
        }))
        .send()
        .expect("issue");
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let v = r.json().unwrap_or(serde_json::Value::Null);
    (status, retry, v)
}

fn open_store(ca: &TestCa) -> store::RedbStore {
    store::RedbStore::open(&ca.data.join("privca.redb"), store::StoreOptions::default())
        .expect("open the store (no server running)")
}

#[test]
fn unauthenticated_requests_add_one_summary_not_one_entry_each() {
    let mut ca = TestCa::init(Path::new(BIN), &[]);
    ca.start();
    let before = audit_entries(&ca);
    let c = client();
    let n = 300;
    for i in 0..n {
        let r = c
            .get(ca.url("/admin/v1/certificates"))
            .bearer_auth(format!("wrong-token-number-{i:04}"))
            .send()
            .expect("get");
        assert_eq!(r.status().as_u16(), 401);
    }
    let during = audit_entries(&ca);
    assert!(
        during <= before + 1,
        "{n} wrong admin tokens grew the audit log from {before} to {during} entries"
    );
    // Stopping writes the summary of the open window.
    ca.stop();
    let store = open_store(&ca);
    let stats = store.stats().expect("stats");
    assert!(
        stats.audit_entries <= before + 2,
        "{} entries after {n} refusals (from {before})",
        stats.audit_entries
    );
    let tail = store.audit_entries(before + 1, 10).expect("audit entries");
    let summary = tail
        .iter()
        .find(|e| e.event.action == "unauthenticated-refusals")
        .unwrap_or_else(|| panic!("no summary entry in {tail:?}"));
    assert!(
        summary.event.detail.starts_with(&format!("total={n} ")),
        "{}",
        summary.event.detail
    );
    assert!(
        summary
            .event
            .detail
            .contains("admin-refused from 127.0.0.1: 300"),
        "{}",
        summary.event.detail
    );
    let v = store.verify_audit().expect("verify");
    assert_eq!(v.first_bad, None, "{v:?}");
}

#[test]
fn a_revocation_whose_crl_was_never_signed_is_on_the_crl_after_restart() {
    let mut ca = TestCa::init(Path::new(BIN), &[]);
    ca.start();
    let (status, _, v) = issue(&ca, "crash.example.com");
    assert_eq!(status, 201, "{v}");
    let serial_hex = v["serial"].as_str().expect("serial").to_string();
    let serial = ca_core::asn1::parse_serial_hex(&serial_hex).expect("hex");
    // Publish a CRL now, so the stored one is fresh when the server comes back.
    let r = client()
        .post(ca.url("/admin/v1/crl"))
        .bearer_auth(token(&ca))
        .send()
        .expect("crl");
    assert_eq!(r.status().as_u16(), 200);
    ca.stop();
    // The crash: the revocation is committed, its CRL never signed.
    {
        let store = open_store(&ca);
        store
            .revoke(
                &serial,
                store::Revocation {
                    time: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .expect("time")
                        .as_secs() as i64,
                    reason: 1,
                    invalidity_date: None,
                },
                &store::AuditEvent {
                    time: 0,
                    action: "revoke".into(),
                    actor: "test".into(),
                    subject: serial_hex.clone(),
                    detail: "reason=keyCompromise".into(),
                },
            )
            .expect("revoke in the store");
    }
    ca.start();
    let der = client()
        .get(ca.url("/crl/issuing.crl"))
        .send()
        .expect("crl")
        .bytes()
        .expect("body");
    let list = <x509_cert::crl::CertificateList as der::Decode>::from_der(&der).expect("CRL");
    let listed: Vec<Vec<u8>> = list
        .tbs_cert_list
        .revoked_certificates
        .unwrap_or_default()
        .iter()
        .map(|r| r.serial_number.as_bytes().to_vec())
        .collect();
    assert!(
        listed.contains(&serial),
        "the CRL served after restart omits {serial_hex}: {listed:?}"
    );
}

#[test]
fn the_certificate_list_pages_with_a_cursor() {
    let mut ca = TestCa::init(Path::new(BIN), &[]);
    // 2,400 records imported while no server runs (fixtures: the list does not parse DER).
    let total_before;
    {
        let store = open_store(&ca);
        total_before = store.stats().expect("stats").certificates;
        let records: Vec<store::CertRecord> = (0u32..2400)
            .map(|i| store::CertRecord {
                serial: vec![0x42, (i >> 8) as u8, (i & 0xff) as u8],
                issuer: "issuing".into(),
                subject: format!("CN=host{i}.example.com"),
                sans: vec![format!("DNS:host{i}.example.com")],
                profile: if i % 4 == 0 { "device" } else { "tls-server" }.into(),
                requester: "fixture".into(),
                not_before: 1_700_000_000,
                // Many share a notAfter: the cursor orders by serial within one.
                not_after: 4_000_000_000 + i64::from(i % 10),
                issued_at: 1_700_000_000,
                status: store::CertStatus::Valid,
                revocation: None,
                spki_sha256: Vec::new(),
                der: vec![0x30, 0x00],
            })
            .collect();
        store
            .import_certificates(
                &records,
                &store::AuditEvent {
                    time: 0,
                    action: "import".into(),
                    actor: "test".into(),
                    subject: "fixtures".into(),
                    detail: "2400".into(),
                },
            )
            .expect("import");
    }
    let total = total_before + 2400;
    ca.start();
    let c = client();
    let get = |query: &str| -> (u16, serde_json::Value) {
        let r = c
            .get(ca.url(&format!("/admin/v1/certificates{query}")))
            .bearer_auth(token(&ca))
            .send()
            .expect("list");
        (r.status().as_u16(), r.json().expect("json"))
    };
    // Without a limit: the default page size, and a cursor.
    let (status, first) = get("");
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["certificates"].as_array().expect("page").len(), 100);
    assert!(first["next_cursor"].is_string(), "{first}");

    let walk = |filters: &str, limit: usize| -> Vec<String> {
        let mut serials = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10_000 {
            let mut q = format!("?limit={limit}{filters}");
            if let Some(cur) = &cursor {
                q.push_str(&format!("&cursor={cur}"));
            }
            let (status, page) = get(&q);
            assert_eq!(status, 200, "{page}");
            let certs = page["certificates"].as_array().expect("page");
            assert!(certs.len() <= limit, "page of {} > {limit}", certs.len());
            serials.extend(
                certs
                    .iter()
                    .map(|c| c["serial"].as_str().expect("serial").to_string()),
            );
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => return serials,
            }
        }
        panic!("paging did not end");
    };
    let all = walk("", 250);
    let unique: std::collections::HashSet<&String> = all.iter().collect();
    assert_eq!(all.len() as u64, total, "every certificate once");
    assert_eq!(unique.len(), all.len(), "no certificate twice");
    // Filters still apply, across pages.
    let devices = walk("&profile=device&status=valid", 77);
    assert_eq!(devices.len(), 600);
    // Limits and cursors are checked.
    let (status, v) = get("?limit=1001");
    assert_eq!(status, 400, "{v}");
    let (status, v) = get("?cursor=not-a-cursor!");
    assert_eq!(status, 400, "{v}");

    // The CLI pages through the server and prints every one.
    let list = ok(ca.cmd().args(["list", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&list).expect("json");
    assert_eq!(v.as_array().expect("array").len() as u64, total);
    let list = ok(ca.cmd().args(["list", "--json", "--limit", "1234"]));
    let v: serde_json::Value = serde_json::from_str(&list).expect("json");
    assert_eq!(v.as_array().expect("array").len(), 1234);
    let table = ok(ca.cmd().args(["list", "--profile", "device"]));
    assert_eq!(table.lines().count(), 1 + 600, "header and 600 rows");
}

/// A tmpfs mounted for a test, unmounted on drop (after the server, which is declared
/// later and so dropped first).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).expect("mount point");
        match Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
        {
            Ok(o) if o.status.success() => Some(Tmpfs(at.to_path_buf())),
            Ok(o) => {
                eprintln!(
                    "full-disk test skipped: cannot mount a tmpfs (needs root): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("full-disk test skipped: cannot run mount: {e}");
                None
            }
        }
    }

    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.0.join("filler");
        let mut f = std::fs::File::create(&filler).expect("filler");
        let block = vec![0x5au8; 64 * 1024];
        for _ in 0..100_000 {
            if f.write_all(&block).is_err() {
                break;
            }
        }
        let _ = f.sync_all();
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_answers_503_and_recovers_without_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let Some(fs) = Tmpfs::mount(&data, "24m") else {
        return;
    };
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    ok(Command::new(BIN).args([
        "init",
        "--data-dir",
        data.to_str().expect("utf-8"),
        "--listen",
        &listen,
        "--base-url",
        &format!("http://{listen}"),
    ]));
    let mut ca = TestCa {
        dir,
        data,
        port,
        server: None,
        bin: PathBuf::from(BIN),
    };
    ca.start();
    let (status, _, v) = issue(&ca, "before.example.com");
    assert_eq!(status, 201, "{v}");

    let filler = fs.fill();
    // Issue until the store runs out of room (redb may have free pages in its file).
    let mut refused = None;
    for i in 0..500 {
        let (status, retry, v) = issue(&ca, &format!("full{i}.example.com"));
        match status {
            201 => continue,
            _ => {
                refused = Some((status, retry, v));
                break;
            }
        }
    }
    let (status, retry, v) = refused.expect("issuance kept working on a full disk");
    assert_eq!(status, 503, "a full disk is a retryable 503: {v}");
    assert!(retry.is_some(), "503 carries Retry-After");
    let text = v["error"].as_str().unwrap_or_default();
    assert!(text.contains("storage"), "the answer names storage: {v}");
    let (status, h) = health(&ca);
    assert_eq!(
        status,
        503,
        "healthz while writes fail: {h}\n{}",
        ca.server_log()
    );

    // Space again: no restart, writes work and healthz is ok.
    std::fs::remove_file(&filler).expect("free space");
    let (status, h) = health(&ca);
    assert_eq!(status, 200, "healthz once space is freed: {h}");
    assert_eq!(h["store"]["status"], "ok", "{h}");
    let (status, _, v) = issue(&ca, "after.example.com");
    assert_eq!(status, 201, "issuance once space is freed: {v}");
    let r = client()
        .get(ca.url("/admin/v1/audit/verify"))
        .bearer_auth(token(&ca))
        .send()
        .expect("verify");
    let v: serde_json::Value = r.json().expect("json");
    assert_eq!(v["first_bad"], serde_json::Value::Null, "{v}");
    ca.stop();
    drop(ca);
    drop(fs);
}
