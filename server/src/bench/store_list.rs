//! `privca bench store`: a redb store filled with many certificate records through the
//! record path issuance uses, then the time of the first page of every `list` filter the
//! CLI offers, the time to open the store, and the bytes on disk per certificate
//! (issue 13 item 6).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ca_core::profile::San;
use hsm::KeyAlgorithm;
use store::{AuditEvent, CertFilter, CertRecord, CertStatus, Revocation, Store};

use super::common::ms;
use crate::Error;

/// Arguments of `privca bench store`.
#[derive(Debug, clap::Args)]
pub struct StoreBenchArgs {
    /// Certificate records to fill the store with.
    #[arg(long, default_value_t = 1_000_000)]
    pub certificates: usize,
    /// Threads recording certificates concurrently (they share commits, as issuances do).
    #[arg(long, default_value_t = 16)]
    pub threads: usize,
    /// Records per page of each listing.
    #[arg(long, default_value_t = 50)]
    pub page: usize,
    /// Runs of each query; the median is printed.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
}

/// Profiles the records are spread over, with their share in per mille.
const PROFILES: [(&str, usize); 5] = [
    ("device", 600),
    ("tls-server", 250),
    ("tls-client", 100),
    ("email", 49),
    ("rare", 1),
];

/// Which record `i` is: its profile, issuer, subject, lifetime and status, spread so that
/// every filter has matches (1% revoked, 10% from a second issuer, 0.1% of profile
/// `rare`, lifetimes of 1 to 398 days).
fn record(i: usize, now: i64, der: &[u8]) -> CertRecord {
    let per_mille = (i * 7919) % 1000;
    let mut acc = 0;
    let mut profile = PROFILES[0].0;
    for (name, share) in PROFILES {
        acc += share;
        if per_mille < acc {
            profile = name;
            break;
        }
    }
    let revoked = i % 100 == 7;
    let name = format!("host-{i}.bench.example");
    CertRecord {
        serial: ca_core::asn1::random_serial(),
        issuer: if i % 10 == 3 { "issuing2" } else { "issuing" }.into(),
        subject: format!("CN={name}"),
        sans: vec![format!("DNS:{name}")],
        profile: profile.into(),
        requester: "bench".into(),
        not_before: now - 3600,
        not_after: now + 86_400 * (1 + (i % 398) as i64),
        issued_at: now,
        status: if revoked {
            CertStatus::Revoked
        } else {
            CertStatus::Valid
        },
        revocation: revoked.then(|| Revocation::new(now, 1)),
        spki_sha256: vec![(i % 251) as u8; store::SPKI_HASH_LEN],
        der: der.to_vec(),
    }
}

/// `privca bench store`.
pub fn run(a: &StoreBenchArgs) -> Result<(), Error> {
    let fx = super::fixture(KeyAlgorithm::EcdsaP256)?;
    let leaf = hsm::soft::generate_exportable(KeyAlgorithm::EcdsaP256)?;
    let template = fx
        .auth
        .issue(&super::common::leaf_request(
            "tls-server",
            x509_cert::name::Name::default(),
            vec![San::Dns("template.bench.example".into())],
            leaf.spki_der.clone(),
        ))?
        .record
        .der;
    let now = fx.auth.now();
    drop(fx);

    let dir = tempfile::tempdir().map_err(|e| Error::io("temporary directory", e))?;
    let path = dir.path().join("bench.redb");
    let store: Arc<dyn Store> = Arc::new(store::RedbStore::open(
        &path,
        store::StoreOptions::default(),
    )?);
    let n = a.certificates;
    outln!(
        "== bench store: {n} certificate records ({} bytes of DER each), {} threads ==",
        template.len(),
        a.threads.max(1)
    );

    // Fill: reserve the serial, then record the certificate with its audit entry, as
    // the issuance pipeline does (concurrent recordings share a commit).
    let next = AtomicUsize::new(0);
    let failures = AtomicUsize::new(0);
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..a.threads.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let rec = record(i, now, &template);
                    let audit = AuditEvent {
                        time: now,
                        action: "issue".into(),
                        actor: "bench".into(),
                        subject: hex::encode(&rec.serial),
                        detail: format!("profile {} subject {}", rec.profile, rec.subject),
                    };
                    let done = store
                        .reserve_serial(&rec.serial, &rec.issuer)
                        .and_then(|()| store.record_issuance(&rec, &audit));
                    if done.is_err() {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let fill = t.elapsed();
    outln!(
        "filled through reserve_serial + record_issuance in {:.1} s ({:.0} records/s), failures {}",
        fill.as_secs_f64(),
        n as f64 / fill.as_secs_f64(),
        failures.load(Ordering::Relaxed)
    );
    let bytes = std::fs::metadata(&path)
        .map_err(|e| Error::io("store file", e))?
        .len();
    outln!(
        "on disk: {:.0} MB, {:.0} bytes per certificate (record, DER, indexes and its audit entry)",
        bytes as f64 / 1e6,
        bytes as f64 / n.max(1) as f64
    );
    outln!(
        "process peak RSS so far: {} MB",
        peak_rss_kb().unwrap_or(0) / 1024
    );

    let day = 86_400;
    let queries: Vec<(&str, CertFilter)> = vec![
        ("no filter", CertFilter::default()),
        (
            "--status revoked",
            CertFilter {
                status: Some(CertStatus::Revoked),
                ..CertFilter::default()
            },
        ),
        (
            "--status valid",
            CertFilter {
                status: Some(CertStatus::Valid),
                ..CertFilter::default()
            },
        ),
        (
            "--expiring 30",
            CertFilter {
                expires_after: Some(now),
                expires_before: Some(now + 30 * day),
                ..CertFilter::default()
            },
        ),
        (
            "--profile rare (0.1%)",
            CertFilter {
                profile: Some("rare".into()),
                ..CertFilter::default()
            },
        ),
        (
            "--issuer issuing2 (10%)",
            CertFilter {
                issuer: Some("issuing2".into()),
                ..CertFilter::default()
            },
        ),
        (
            "--profile rare --status revoked",
            CertFilter {
                profile: Some("rare".into()),
                status: Some(CertStatus::Revoked),
                ..CertFilter::default()
            },
        ),
        (
            "--text host-4242. (one match)",
            CertFilter {
                text: Some(format!("host-{}.", n / 2 + 42)),
                ..CertFilter::default()
            },
        ),
        (
            "--text no-such-host (no match)",
            CertFilter {
                text: Some("no-such-host".into()),
                ..CertFilter::default()
            },
        ),
    ];
    outln!(
        "first page of {} records, median of {} runs:",
        a.page,
        a.runs.max(1)
    );
    for (name, filter) in &queries {
        let mut times = Vec::new();
        let mut found = 0;
        for _ in 0..a.runs.max(1) {
            let t = Instant::now();
            let page = store.list_cert_page(filter, None, a.page)?;
            times.push(t.elapsed());
            found = page.records.len();
        }
        outln!(
            "  {name:<34} {:>9.2} ms  ({found} records)",
            ms(median(&mut times))
        );
    }
    let t = Instant::now();
    let stats = store.stats()?;
    outln!("store stats: {:.2} ms ({stats:?})", ms(t.elapsed()));

    drop(store);
    let mut times = Vec::new();
    for _ in 0..a.runs.max(1) {
        let t = Instant::now();
        let s = store::RedbStore::open(&path, store::StoreOptions::default())?;
        times.push(t.elapsed());
        drop(s);
    }
    outln!(
        "open the store (as an offline command does): median {:.2} ms",
        ms(median(&mut times))
    );
    Ok(())
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// Peak resident set size of this process (VmHWM), in KiB.
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
