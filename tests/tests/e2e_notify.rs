//! Notifications (issue 14 item 5) from `privca serve` to a webhook receiver on
//! loopback. The receiver checks each signature with OpenSSL's HMAC-SHA256 and fails its
//! first two requests. The test expects:
//! - the issuance and revocation events after retries, once each;
//! - one expiry reminder per certificate and tier, also after a restart;
//! - nothing re-sent after the restart;
//! - `privca notify log` showing the retries and the deliveries.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use privca_tests::{TestCa, ok, openssl};

const BIN: &str = env!("CARGO_BIN_EXE_privca-under-test");
const SECRET: &str = "webhook-secret-of-the-test-0123456789";

/// What the receiver saw: each accepted event by id (with how often), and the number of
/// requests it refused on purpose or for a bad signature.
#[derive(Default)]
struct Seen {
    events: BTreeMap<String, (serde_json::Value, u32)>,
    failed_on_purpose: u32,
    bad_signatures: u32,
}

/// A minimal HTTP/1.1 receiver: one request per connection, Content-Length bodies.
fn receiver(dir: &Path, fail_first: u32) -> (u16, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut headers = BTreeMap::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    headers.insert(k.trim().to_lowercase(), v.trim().to_string());
                }
            }
            let len: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let status = {
                let mut seen = s.lock().expect("seen");
                let id = headers.get("webhook-id").cloned().unwrap_or_default();
                let ts = headers
                    .get("webhook-timestamp")
                    .cloned()
                    .unwrap_or_default();
                let sig = headers
                    .get("webhook-signature")
                    .cloned()
                    .unwrap_or_default();
                if !signature_holds(&dir, &id, &ts, &body, &sig) {
                    seen.bad_signatures += 1;
                    "401 Unauthorized"
                } else if seen.failed_on_purpose < fail_first {
                    seen.failed_on_purpose += 1;
                    "500 Internal Server Error"
                } else {
                    let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
                    let entry = seen.events.entry(id).or_insert((v, 0));
                    entry.1 += 1;
                    "204 No Content"
                }
            };
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (port, seen)
}

/// The Standard Webhooks signature checked with `openssl dgst -mac HMAC`.
fn signature_holds(dir: &Path, id: &str, ts: &str, body: &[u8], sig: &str) -> bool {
    let signed = dir.join(format!("signed-{}", rand_name()));
    let mut content = format!("{id}.{ts}.").into_bytes();
    content.extend_from_slice(body);
    std::fs::write(&signed, content).expect("write");
    let out = openssl()
        .args(["dgst", "-sha256", "-mac", "HMAC", "-macopt"])
        .arg(format!("key:{SECRET}"))
        .arg("-binary")
        .arg(&signed)
        .output()
        .expect("openssl");
    let _ = std::fs::remove_file(&signed);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(out.stdout)
    );
    out.status.success() && sig == expected
}

fn rand_name() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}

fn wait_for(seen: &Arc<Mutex<Seen>>, what: &str, done: impl Fn(&Seen) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if done(&seen.lock().expect("seen")) {
            return;
        }
        if Instant::now() > deadline {
            let s = seen.lock().expect("seen");
            panic!(
                "{what} never arrived; seen {:?}",
                s.events.keys().collect::<Vec<_>>()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn issue(ca: &TestCa, token: &str, dns: &str, days: u32) -> String {
    let r = reqwest::blocking::Client::new()
        .post(ca.url("/admin/v1/certificates"))
        .bearer_auth(token)
        .json(&serde_json::json!({
            "profile": "tls-server", "generate_key": "ecdsa-p256", "sans": [dns],
            "validity_days": days,
        }))
        .send()
        .expect("issue");
    assert_eq!(r.status(), 201);
    r.json::<serde_json::Value>().expect("JSON")["serial"]
        .as_str()
        .expect("serial")
        .to_string()
}

#[test]
fn webhooks_get_every_event_once_after_retries_and_reminders_once_per_tier() {
    let mut ca = TestCa::init(Path::new(BIN), &[]);
    let (port, seen) = receiver(ca.dir.path(), 2);
    privca_tests::write_secret(&ca.data.join("hook.secret"), SECRET);
    let mut cfg = std::fs::read_to_string(ca.config()).expect("config");
    cfg.push_str(&format!(
        r#"
[notify]
poll_seconds = 1
reminder_days = [30, 7]

[[notify.webhooks]]
name = "ops"
url = "http://127.0.0.1:{port}/hook"
secret = {{ file = "hook.secret" }}
events = ["issue", "revoke", "expiry-reminder"]
"#
    ));
    std::fs::write(ca.config(), cfg).expect("config");
    ca.start();
    let token = std::fs::read_to_string(ca.data.join("admin-token")).expect("token");
    let token = token.trim();

    // A certificate for 10 days (inside the 30-day tier, not the 7-day one), one for a
    // year (no reminder), and a revocation.
    let short = issue(&ca, token, "short.example.com", 10);
    let long = issue(&ca, token, "long.example.com", 365);
    ok(ca.cmd().args(["revoke", &long, "--reason", "superseded"]));

    let reminder = format!("reminder-{short}-30");
    wait_for(&seen, "the events and the reminder", |s| {
        s.events.contains_key(&reminder)
            && s.events
                .values()
                .filter(|(v, _)| v["type"] == "issue")
                .count()
                == 2
            && s.events.values().any(|(v, _)| v["type"] == "revoke")
    });
    {
        let s = seen.lock().expect("seen");
        assert_eq!(
            s.failed_on_purpose, 2,
            "the first two attempts were refused"
        );
        assert_eq!(s.bad_signatures, 0);
        assert!(
            s.events.values().all(|(_, n)| *n == 1),
            "an event came twice"
        );
        let (r, _) = &s.events[&reminder];
        assert_eq!(r["detail"]["tier_days"], 30);
        assert_eq!(r["detail"]["days_left"], 9);
        assert!(!s.events.contains_key(&format!("reminder-{short}-7")));
        assert!(
            !s.events
                .keys()
                .any(|k| k.contains(&long) && k.starts_with("reminder"))
        );
        // Only the configured kinds: no CRL or token events.
        assert!(s.events.values().all(|(v, _)| {
            ["issue", "revoke", "expiry-reminder"].contains(&v["type"].as_str().unwrap_or(""))
        }));
    }

    // After a restart: nothing is sent again; new events still come.
    ca.stop();
    ca.start();
    let third = issue(&ca, token, "third.example.com", 5);
    wait_for(&seen, "the reminders of the new certificate", |s| {
        s.events.contains_key(&format!("reminder-{third}-7"))
            && s.events.contains_key(&format!("reminder-{third}-30"))
    });
    std::thread::sleep(Duration::from_secs(3));
    {
        let s = seen.lock().expect("seen");
        assert!(
            s.events.values().all(|(_, n)| *n == 1),
            "an event was sent again after the restart: {:?}",
            s.events
                .iter()
                .filter(|(_, (_, n))| *n > 1)
                .map(|(k, _)| k)
                .collect::<Vec<_>>()
        );
        assert_eq!(
            s.events
                .values()
                .filter(|(v, _)| v["type"] == "issue")
                .count(),
            3
        );
    }

    // The delivery log shows the retries and the deliveries.
    let log = ok(ca
        .cmd()
        .args(["notify", "log", "--json", "--limit", "1000"]));
    let lines: Vec<serde_json::Value> = serde_json::from_str(&log).expect("JSON");
    assert_eq!(
        lines.iter().filter(|l| l["outcome"] == "retrying").count(),
        2,
        "{log}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["outcome"] == "delivered" && l["event"] == reminder.as_str()),
        "{log}"
    );
    assert!(!log.contains(SECRET));
}
