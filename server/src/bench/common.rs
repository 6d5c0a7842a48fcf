//! What the benchmarks share: raw signing speed and latency percentiles.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hsm::{KeyAlgorithm, PrivateKey};

use crate::Error;

/// A benchmark's request for an end-entity certificate with a P-256 key from the default
/// issuing CA.
pub(crate) fn leaf_request(
    profile: &str,
    subject: x509_cert::name::Name,
    sans: Vec<ca_core::profile::San>,
    spki_der: Vec<u8>,
) -> ca_core::IssueRequest {
    ca_core::IssueRequest {
        profile: profile.into(),
        subject,
        sans,
        spki_der,
        key_algorithm: KeyAlgorithm::EcdsaP256,
        extensions: Vec::new(),
        requester: "bench".into(),
        validity_days: None,
        issuer: None,
    }
}

/// Signatures per second of `key` over a certificate-sized message with `threads` threads.
pub(crate) fn raw_sign_rate(
    key: &Arc<dyn PrivateKey>,
    threads: usize,
    dur: Duration,
) -> Result<f64, Error> {
    let msg = vec![0x5au8; 600];
    let scheme = key.algorithm().default_scheme();
    let count = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let errors = Arc::new(Mutex::new(None));
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (key, msg, count, errors) = (key.clone(), &msg, count.clone(), errors.clone());
            s.spawn(move || {
                while start.elapsed() < dur {
                    if let Err(e) = key.sign(scheme, msg) {
                        if let Ok(mut g) = errors.lock() {
                            *g = Some(e.to_string());
                        }
                        return;
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    if let Ok(Some(e)) = errors.lock().map(|g| g.clone()) {
        return Err(Error::Io(format!("signing failed: {e}")));
    }
    Ok(count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

/// The `p` quantile (0 to 1) of sorted latencies; zero when there are none.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// A duration in milliseconds.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The key algorithm named `name` (`ecdsa-p256`, `rsa-2048`, …).
pub(crate) fn algorithm(name: &str) -> Result<KeyAlgorithm, Error> {
    KeyAlgorithm::from_name(name).ok_or_else(|| Error::Usage(format!("unknown algorithm {name}")))
}

/// What a closed-loop run measured: the latencies of the operations that succeeded
/// (sorted), how many failed, and the wall time.
pub(crate) struct Load {
    /// Latencies of the successful operations, shortest first.
    pub latencies: Vec<Duration>,
    /// Operations that failed.
    pub failures: usize,
    /// Seconds the run took.
    pub elapsed: f64,
}

impl Load {
    /// Successful operations per second.
    pub(crate) fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed
    }

    /// The `q` latency quantile in milliseconds.
    pub(crate) fn ms(&self, q: f64) -> f64 {
        ms(percentile(&self.latencies, q))
    }
}

/// Runs `count` operations on `threads` threads, each thread taking the next index until
/// all are taken. Each thread first builds its own context with `setup` (a thread whose
/// setup fails counts one failure and stops); `op` returns whether the operation worked.
pub(crate) fn load<C>(
    threads: usize,
    count: usize,
    setup: impl Fn() -> Option<C> + Sync,
    op: impl Fn(&C, usize) -> bool + Sync,
) -> Load {
    let next = AtomicUsize::new(0);
    let failures = AtomicUsize::new(0);
    let latencies = Mutex::new(Vec::with_capacity(count));
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            let (next, failures, latencies, setup, op) =
                (&next, &failures, &latencies, &setup, &op);
            s.spawn(move || {
                let Some(ctx) = setup() else {
                    failures.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                let mut local = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let t = Instant::now();
                    if op(&ctx, i) {
                        local.push(t.elapsed());
                    } else {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if let Ok(mut g) = latencies.lock() {
                    g.extend(local);
                }
            });
        }
    });
    let elapsed = start.elapsed().as_secs_f64();
    let mut latencies = latencies.into_inner().unwrap_or_default();
    latencies.sort();
    Load {
        latencies,
        failures: failures.load(Ordering::Relaxed),
        elapsed,
    }
}

/// The parameters of a throw-away CA for a benchmark: root, issuing and OCSP keys of
/// `alg`, an RSA RA key, listening on `listen` (and with HTTPS on `tls_listen`), its
/// certificates pointing at `base_url`.
pub(crate) fn bench_ca(
    data_dir: std::path::PathBuf,
    alg: KeyAlgorithm,
    listen: &str,
    base_url: String,
    tls_listen: Option<String>,
) -> crate::init::InitParams {
    crate::init::InitParams {
        data_dir,
        root_key: alg,
        issuing_key: alg,
        ocsp_key: alg,
        ra_key: KeyAlgorithm::Rsa2048,
        root_subject: "CN=Bench Root".into(),
        issuing_subject: "CN=Bench Issuing".into(),
        root_days: 3650,
        issuing_days: 1825,
        base_url,
        listen: listen.to_string(),
        passphrase: None,
        import_root: None,
        import_issuing: None,
        tls_listen,
        hostnames: vec!["127.0.0.1".into()],
        tls_days: crate::init::DEFAULT_TLS_DAYS,
        hsm: None,
    }
}
