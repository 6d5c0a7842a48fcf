//! `privca bench …`: benchmark programs that print figures beside a baseline measured in
//! the same run. Nothing here asserts on speed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ca_core::ceremony::{RootSpec, create_root};
use ca_core::profile::San;
use ca_core::{Authority, CaEntity, IssueRequest, Settings, SystemClock};
use clap::Subcommand;
use hsm::{KeyAlgorithm, KeyStore, PrivateKey, Secret};
use store::{CertRecord, CertStatus, Revocation, Store};

use crate::Error;
use common::{algorithm, load, raw_sign_rate};

mod common;
pub mod est;
pub mod ocsp;
pub mod scep;
pub mod store_list;

/// Which benchmark.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Issue certificates in-process through the whole pipeline (durable redb store),
    /// beside the raw signing speed of the same key.
    Issue {
        /// Certificates per key algorithm.
        #[arg(long, default_value_t = 5000)]
        count: usize,
        /// Concurrent issuing threads.
        #[arg(long, default_value_t = 16)]
        threads: usize,
        /// Key algorithms of the issuing CA.
        #[arg(long, value_delimiter = ',', default_value = "ecdsa-p256,rsa-2048")]
        algs: Vec<String>,
        /// Seconds spent measuring the raw signing speed.
        #[arg(long, default_value_t = 3)]
        sign_seconds: u64,
        /// Keep the root and issuing CA keys on this PKCS#11 token.
        #[command(flatten)]
        hsm: BenchHsm,
    },
    /// SCEP enrollments per second against a running server (see `bench_scep`).
    Scep(scep::ScepBenchArgs),
    /// Raw signing speed through each key backend, measured in one run: the software
    /// backend (aws-lc-rs in process) and, with --hsm, a PKCS#11 token.
    Sign {
        /// Key algorithms.
        #[arg(long, value_delimiter = ',', default_value = "rsa-2048,ecdsa-p256")]
        algs: Vec<String>,
        /// Signing threads (the PKCS#11 session pool gets as many sessions unless
        /// --hsm-sessions says otherwise).
        #[arg(long, default_value_t = 4)]
        threads: usize,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 3)]
        seconds: u64,
        /// The PKCS#11 token.
        #[command(flatten)]
        hsm: BenchHsm,
    },
    /// EST enrollments per second over HTTPS (new TLS connection each, and keep-alive).
    Est(est::EstBenchArgs),
    /// OCSP responses per second over HTTP (new connection each; GET, POST, nonced)
    /// against `privca serve` and `openssl ocsp`, beside the responder key's raw
    /// signing speed.
    Ocsp(ocsp::OcspBenchArgs),
    /// Fill a store with many certificate records, then time the first page of each
    /// `list` filter, opening the store, and the bytes per certificate on disk.
    Store(store_list::StoreBenchArgs),
    /// Build a CRL with many revoked entries.
    Crl {
        /// Entry counts.
        #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
        entries: Vec<usize>,
        /// Key algorithm of the CA.
        #[arg(long, default_value = "ecdsa-p256")]
        alg: String,
    },
}

/// `--hsm …` of the benchmarks: a PKCS#11 token to make throw-away keys on (they are
/// deleted afterwards).
#[derive(Debug, Default, clap::Args)]
pub struct BenchHsm {
    /// PKCS#11 module path, e.g. /usr/lib/softhsm/libsofthsm2.so.
    #[arg(long = "hsm", value_name = "MODULE")]
    pub module: Option<std::path::PathBuf>,
    /// Token label.
    #[arg(long = "hsm-token-label", default_value = "privca")]
    pub token_label: String,
    /// Environment variable holding the user PIN.
    #[arg(long = "hsm-pin-env", default_value = "PRIVCA_HSM_PIN")]
    pub pin_env: String,
    /// Session pool size (default: the thread count).
    #[arg(long = "hsm-sessions")]
    pub sessions: Option<usize>,
}

impl BenchHsm {
    fn open(&self, threads: usize) -> Result<Option<hsm::pkcs11::Pkcs11KeyStore>, Error> {
        let Some(module) = &self.module else {
            return Ok(None);
        };
        let mut prefix = [0u8; 4];
        rand::fill(&mut prefix);
        Ok(Some(hsm::pkcs11::Pkcs11KeyStore::open(
            hsm::pkcs11::Pkcs11Config {
                module: module.clone(),
                token_label: Some(self.token_label.clone()),
                slot: None,
                pin: hsm::SecretSource::Env(self.pin_env.clone()),
                sessions: self.sessions.unwrap_or(threads).max(1),
                // Throw-away keys under a random prefix, never clashing with real ones.
                label_prefix: format!("bench-{}.", hex::encode(prefix)),
                wait_timeout_seconds: 30,
            },
        )?))
    }
}

/// Deletes the throw-away token keys when the benchmark ends, however it ends.
struct TokenCleanup(hsm::pkcs11::Pkcs11KeyStore, Vec<String>);

impl Drop for TokenCleanup {
    fn drop(&mut self) {
        for label in &self.1 {
            if let Err(e) = self.0.delete(label) {
                eprintln!("could not delete bench key {label} from the token: {e}");
            }
        }
    }
}

/// Runs a benchmark.
pub fn run(cmd: BenchCommand) -> Result<(), Error> {
    match cmd {
        BenchCommand::Issue {
            count,
            threads,
            algs,
            sign_seconds,
            hsm,
        } => {
            let token = hsm.open(threads.max(1))?;
            for a in algs {
                let alg = algorithm(&a)?;
                bench_issue(
                    alg,
                    count,
                    threads.max(1),
                    Duration::from_secs(sign_seconds.max(1)),
                    token.as_ref(),
                )?;
            }
            Ok(())
        }
        BenchCommand::Scep(a) => scep::run(a),
        BenchCommand::Sign {
            algs,
            threads,
            seconds,
            hsm,
        } => {
            let token = hsm.open(threads.max(1))?;
            for a in algs {
                let alg = algorithm(&a)?;
                bench_sign(
                    alg,
                    threads.max(1),
                    Duration::from_secs(seconds.max(1)),
                    token.as_ref(),
                )?;
            }
            Ok(())
        }
        BenchCommand::Est(a) => est::run(&a),
        BenchCommand::Ocsp(a) => ocsp::run(&a),
        BenchCommand::Store(a) => store_list::run(&a),
        BenchCommand::Crl { entries, alg } => {
            let alg = algorithm(&alg)?;
            for n in entries {
                bench_crl(alg, n)?;
            }
            Ok(())
        }
    }
}

/// A throw-away CA hierarchy in a temporary directory with a durable store.
struct Fixture {
    _dir: tempfile::TempDir,
    auth: Authority,
    issuing_key: Arc<dyn PrivateKey>,
}

fn fixture(alg: KeyAlgorithm) -> Result<Fixture, Error> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("temporary directory", e))?;
    let keys = hsm::soft::SoftKeyStore::open(
        dir.path().join("keys"),
        Secret::new(b"bench passphrase".to_vec()),
    )?;
    fixture_in(dir, &keys, alg)
}

/// [`fixture`] with the CA keys in `keys` (a PKCS#11 token for `bench issue --hsm`).
fn fixture_in(
    dir: tempfile::TempDir,
    keys: &dyn KeyStore,
    alg: KeyAlgorithm,
) -> Result<Fixture, Error> {
    let store: Arc<dyn Store> = Arc::new(store::RedbStore::open(
        &dir.path().join("bench.redb"),
        store::StoreOptions::default(),
    )?);
    let clock: Arc<dyn ca_core::Clock> = Arc::new(SystemClock);
    let now = clock.now();
    let root_key = keys.generate(&format!("root-{alg}"), alg)?;
    let spec = RootSpec {
        name: "root".into(),
        subject: "CN=Bench Root"
            .parse()
            .map_err(|e| Error::Usage(format!("{e}")))?,
        validity_days: 3650,
        scheme: None,
    };
    let root_der = create_root(&store, &root_key, &spec, now, "bench")?;
    let settings = |issuer: &str| Settings {
        base_url: "http://127.0.0.1:8080".into(),
        default_issuer: issuer.into(),
        crl_validity: 86_400,
        crl_refresh: 3600,
        ocsp_validity: 86_400,
    };
    let no_profiles = BTreeMap::new();
    let root_auth = Authority::from_parts(
        vec![CaEntity::new(
            "root",
            root_der.clone(),
            root_key.clone(),
            None,
            None,
        )?],
        &no_profiles,
        settings("root"),
        store.clone(),
        clock.clone(),
    )?;
    let issuing_key = keys.generate(&format!("issuing-{alg}"), alg)?;
    let req = IssueRequest {
        profile: "sub-ca".into(),
        subject: "CN=Bench Issuing"
            .parse()
            .map_err(|e| Error::Usage(format!("{e}")))?,
        sans: Vec::new(),
        spki_der: issuing_key.public_key_der().to_vec(),
        key_algorithm: alg,
        extensions: Vec::new(),
        requester: "bench".into(),
        validity_days: None,
        issuer: Some("root".into()),
    };
    let issuing_der = root_auth.issue(&req)?.record.der;
    drop(root_auth);
    let auth = Authority::from_parts(
        vec![
            CaEntity::new("root", root_der, root_key, None, None)?,
            CaEntity::new(
                "issuing",
                issuing_der,
                issuing_key.clone(),
                Some("root".into()),
                None,
            )?,
        ],
        &no_profiles,
        settings("issuing"),
        store,
        clock,
    )?;
    Ok(Fixture {
        _dir: dir,
        auth,
        issuing_key,
    })
}

/// `bench sign`: the same algorithm through the software backend and (with a token)
/// through PKCS#11, on 1 and on `threads` threads, in one run.
fn bench_sign(
    alg: KeyAlgorithm,
    threads: usize,
    dur: Duration,
    token: Option<&hsm::pkcs11::Pkcs11KeyStore>,
) -> Result<(), Error> {
    let soft: Arc<dyn PrivateKey> = Arc::new(hsm::soft::SoftKey::generate_ephemeral("bench", alg)?);
    outln!(
        "== bench sign: {alg} ({:?}), 600-byte message, {:.0} s per figure ==",
        alg.default_scheme(),
        dur.as_secs_f64()
    );
    let soft_1 = raw_sign_rate(&soft, 1, dur)?;
    let soft_n = raw_sign_rate(&soft, threads, dur)?;
    outln!(
        "software (aws-lc-rs):   {soft_1:>9.0}/s on 1 thread, {soft_n:>9.0}/s on {threads} threads"
    );
    if let Some(t) = token {
        let label = format!("sign-{alg}");
        let _cleanup = TokenCleanup(t.clone(), vec![label.clone()]);
        let key: Arc<dyn PrivateKey> = t.generate_key(&label, alg)?;
        let sessions = t.config().sessions;
        // The figures are of real signatures: check one first.
        let scheme = alg.default_scheme();
        let sig = key.sign(scheme, b"bench check")?;
        hsm::verify(scheme, key.public_key_der(), b"bench check", &sig)?;
        let hsm_1 = raw_sign_rate(&key, 1, dur)?;
        let hsm_n = raw_sign_rate(&key, threads, dur)?;
        outln!(
            "PKCS#11 ({}): {hsm_1:>9.0}/s on 1 thread, {hsm_n:>9.0}/s on {threads} threads ({sessions} sessions)",
            t.config().module.display()
        );
        outln!(
            "software/PKCS#11 ratio: {:.2}x on 1 thread, {:.2}x on {threads} threads",
            soft_1 / hsm_1,
            soft_n / hsm_n
        );
    }
    Ok(())
}

fn bench_issue(
    alg: KeyAlgorithm,
    count: usize,
    threads: usize,
    sign_dur: Duration,
    token: Option<&hsm::pkcs11::Pkcs11KeyStore>,
) -> Result<(), Error> {
    let (fx, _cleanup) = match token {
        Some(t) => {
            let cleanup = TokenCleanup(
                t.clone(),
                vec![format!("root-{alg}"), format!("issuing-{alg}")],
            );
            let dir = tempfile::tempdir().map_err(|e| Error::io("temporary directory", e))?;
            (fixture_in(dir, t, alg)?, Some(cleanup))
        }
        None => (fixture(alg)?, None),
    };
    let backend = if token.is_some() {
        "PKCS#11 token"
    } else {
        "software"
    };
    let leaf = hsm::soft::generate_exportable(KeyAlgorithm::EcdsaP256)?;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let raw_1 = raw_sign_rate(&fx.issuing_key, 1, sign_dur)?;
    let raw_n = raw_sign_rate(&fx.issuing_key, cores, sign_dur)?;

    let (auth, spki) = (&fx.auth, &leaf.spki_der);
    let run = load(
        threads,
        count,
        || Some(()),
        |(), i| {
            let req = common::leaf_request(
                "tls-server",
                x509_cert::name::Name::default(),
                vec![San::Dns(format!("host{i}.bench.example"))],
                spki.clone(),
            );
            auth.issue(&req).is_ok()
        },
    );
    let rate = run.rate();
    outln!(
        "== bench issue: issuing CA key {alg} ({backend} backend), {count} certificates, {threads} threads, durable redb store =="
    );
    outln!(
        "raw signing ({alg}, 600-byte message): {raw_1:.0}/s on 1 thread, {raw_n:.0}/s on {cores} threads"
    );
    outln!(
        "issuance through the pipeline: {rate:.0} certificates/s ({:.0}% of raw signing on {cores} threads), failures {}",
        100.0 * rate / raw_n,
        run.failures
    );
    outln!(
        "issuance latency: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms",
        run.ms(0.5),
        run.ms(0.9),
        run.ms(0.99)
    );
    Ok(())
}

fn bench_crl(alg: KeyAlgorithm, entries: usize) -> Result<(), Error> {
    let fx = fixture(alg)?;
    let store = fx.auth.store().clone();
    let now = fx.auth.now();
    let t = Instant::now();
    let chunk = 50_000;
    let mut done = 0;
    while done < entries {
        let n = chunk.min(entries - done);
        let records: Vec<CertRecord> = (0..n)
            .map(|_| {
                let serial = ca_core::asn1::random_serial();
                let reason = [0u8, 1, 4, 5][serial[serial.len() - 1] as usize % 4];
                CertRecord {
                    serial,
                    issuer: "issuing".into(),
                    subject: String::new(),
                    sans: Vec::new(),
                    profile: "bench".into(),
                    requester: "bench".into(),
                    not_before: now - 86_400,
                    not_after: now + 86_400 * 30,
                    issued_at: now - 86_400,
                    status: CertStatus::Revoked,
                    revocation: Some(Revocation {
                        time: now - 3600,
                        reason,
                        invalidity_date: None,
                    }),
                    spki_sha256: Vec::new(),
                    der: Vec::new(),
                }
            })
            .collect();
        let audit = store::AuditEvent {
            time: now,
            action: "bench-import".into(),
            actor: "bench".into(),
            subject: "issuing".into(),
            detail: format!("{n} revoked records"),
        };
        store.import_certificates(&records, &audit)?;
        done += n;
    }
    let fill = t.elapsed();
    let mut size = 0;
    let build = measure_runs(3, || {
        let crl = fx.auth.generate_crl("issuing", "bench")?;
        size = crl.der.len();
        Ok(())
    })?;
    // The minute-by-minute staleness check walks the stored CRL in place; beside it, the
    // full decode of the same CRL that the check did before (x509-cert, one heap object
    // per entry), as the baseline.
    let walk = measure_runs(3, || {
        if fx.auth.crl_is_stale("issuing")? {
            return Err(
                ca_core::Error::Internal("the CRL just built is reported stale".into()).into(),
            );
        }
        Ok(())
    })?;
    let stored = fx.auth.current_crl("issuing")?;
    let decode = measure_runs(3, || {
        use der::Decode;
        use x509_cert::crl::CertificateList;
        let list = CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&stored.der)
            .map_err(|e| {
                ca_core::Error::Internal(format!("the stored CRL does not decode: {e}"))
            })?;
        std::hint::black_box(list.tbs_cert_list.revoked_certificates.map(|r| r.len()));
        Ok(())
    })?;
    drop(stored);
    outln!("== bench crl: {entries} revoked entries, CA key {alg} ==");
    outln!(
        "store filled in {:.1} s (bulk import, not part of the figure)",
        fill.as_secs_f64()
    );
    outln!(
        "{size} bytes DER; peak RSS is VmHWM minus VmRSS before each run (target <= 3x the DER)"
    );
    for (what, runs) in [
        (
            "CRL build (read store, encode, lint, sign, verify, store)",
            &build,
        ),
        (
            "staleness check (store walk beside the stored CRL, in place)",
            &walk,
        ),
        (
            "baseline: full decode of the stored CRL (x509-cert)",
            &decode,
        ),
    ] {
        outln!("{what}: {}", runs.summary(size));
    }
    Ok(())
}

/// Times and peak resident sizes of repeated runs of one operation.
struct Runs {
    times: Vec<Duration>,
    peak_kib: Vec<u64>,
}

impl Runs {
    /// "median … s (min, max) over N runs; peak median … MB, … x the DER size".
    fn summary(&self, size: usize) -> String {
        let mid = self.times.len() / 2;
        let mut line = format!(
            "median {:.3} s, min {:.3} s, max {:.3} s over {} runs",
            self.times[mid].as_secs_f64(),
            self.times[0].as_secs_f64(),
            self.times[self.times.len() - 1].as_secs_f64(),
            self.times.len()
        );
        match self.peak_kib.get(self.peak_kib.len() / 2) {
            Some(&kib) if self.peak_kib.len() == self.times.len() => {
                let bytes = kib as f64 * 1024.0;
                line.push_str(&format!(
                    "; peak RSS median {:.1} MB ({:.2}x the DER size)",
                    bytes / 1e6,
                    bytes / size.max(1) as f64
                ));
            }
            _ => line.push_str("; peak RSS: /proc/self/status or clear_refs is not available"),
        }
        line
    }
}

/// Runs `op` `n` times (n >= 1), each with the high-water mark reset first (Linux
/// clear_refs 5) and the resident size before the run as its baseline.
fn measure_runs(n: usize, mut op: impl FnMut() -> Result<(), Error>) -> Result<Runs, Error> {
    let mut times = Vec::with_capacity(n);
    let mut peak_kib = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        reset_peak_rss();
        let before = proc_status_kib("VmRSS:");
        let t = Instant::now();
        op()?;
        times.push(t.elapsed());
        if let Some(p) = proc_status_kib("VmHWM:")
            .zip(before)
            .map(|(p, b)| p.saturating_sub(b))
        {
            peak_kib.push(p);
        }
    }
    times.sort();
    peak_kib.sort_unstable();
    Ok(Runs { times, peak_kib })
}

/// A `kB` field of /proc/self/status (`VmRSS:`, `VmHWM:`), in KiB.
fn proc_status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Resets the peak resident size (VmHWM) to the current one (Linux: `5` to clear_refs).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
