//! `privca bench scep`: SCEP enrollments per second against a running server, beside
//! the raw RSA private-key speed of the RA's key size measured in the same run (each
//! enrollment costs the server about two RSA private operations: opening the request's
//! envelope and signing the CertRep; plus the issuing CA's signature).
//!
//! Requests are pre-built with the scep crate's client (a few client keys, a fresh
//! transaction per request), so the run measures the server, not request building.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hsm::{KeyAlgorithm, PrivateKey};
use scep::codec::{ContentCipher, MessageType};

use super::common::{ms, percentile, raw_sign_rate};
use crate::Error;

/// Arguments of `privca bench scep`.
#[derive(Debug, clap::Args)]
pub struct ScepBenchArgs {
    /// The endpoint URL, e.g. `http://127.0.0.1:8080/scep/devices`.
    #[arg(long)]
    pub url: String,
    /// Concurrent requests in flight.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Enrollments per run.
    #[arg(long, default_value_t = 500)]
    pub requests: usize,
    /// Runs (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// File holding the endpoint's static challenge password.
    #[arg(long)]
    pub challenge_file: Option<PathBuf>,
    /// Environment variable holding the challenge password.
    #[arg(long, default_value = "PRIVCA_SCEP_CHALLENGE")]
    pub challenge_env: String,
    /// Content encryption of the requests: aes128, aes256 or des3.
    #[arg(long, default_value = "aes128")]
    pub cipher: String,
    /// Seconds spent measuring the raw RSA private-key speed.
    #[arg(long, default_value_t = 3)]
    pub rsa_seconds: u64,
}

/// RSA private operations per second of `bits`-bit keys (PKCS#1 v1.5 signing with
/// SHA-256 through the soft backend, the operation the RA performs), on `threads` threads.
fn rsa_speed(alg: KeyAlgorithm, threads: usize, dur: Duration) -> Result<f64, Error> {
    let key: Arc<dyn PrivateKey> = Arc::new(hsm::soft::SoftKey::generate_ephemeral("b", alg)?);
    raw_sign_rate(&key, threads, dur)
}

struct Run {
    per_sec: f64,
    ok: usize,
    failed: usize,
    p50: Duration,
    p90: Duration,
    p99: Duration,
}

/// Runs the benchmark.
pub fn run(a: ScepBenchArgs) -> Result<(), Error> {
    let challenge = match &a.challenge_file {
        Some(p) => hsm::SecretSource::File(p.clone()).load()?,
        None => hsm::SecretSource::Env(a.challenge_env.clone()).load()?,
    };
    let challenge = String::from_utf8(challenge.expose().to_vec())
        .map_err(|_| Error::Usage("the challenge is not text".into()))?;
    let cipher = match a.cipher.as_str() {
        "aes128" => ContentCipher::Aes128,
        "aes256" => ContentCipher::Aes256,
        "des3" => ContentCipher::Des3,
        other => return Err(Error::Usage(format!("unknown cipher {other}"))),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("runtime", e))?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(a.concurrency.max(1))
        .build()
        .map_err(|e| Error::io("HTTP client", e))?;

    // The RA certificate: first of the CA+RA answer (privca puts the RA first).
    let body = rt
        .block_on(async {
            http.get(format!("{}?operation=GetCACert", a.url))
                .send()
                .await?
                .bytes()
                .await
        })
        .map_err(|e| Error::io("GetCACert", e))?;
    let ra = match scep::codec::certs_from_degenerate(&body) {
        Ok((certs, _)) if !certs.is_empty() => certs[0].clone(),
        _ => body.to_vec(),
    };
    let ra_alg = scep::codec::cert_parts(&ra)
        .ok()
        .and_then(|p| hsm::spki_algorithm(p.spki).ok())
        .ok_or_else(|| Error::Usage("GetCACert did not return an RSA certificate".into()))?;

    outln!(
        "SCEP bench: {} ({} RA), {} requests x {} runs, concurrency {}, {:?}",
        a.url,
        ra_alg,
        a.requests,
        a.runs,
        a.concurrency,
        cipher
    );
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rsa1 = rsa_speed(ra_alg, 1, Duration::from_secs(a.rsa_seconds.max(1)))?;
    let rsa_n = rsa_speed(ra_alg, threads, Duration::from_secs(a.rsa_seconds.max(1)))?;
    outln!(
        "raw {ra_alg} private-key operations: {rsa1:.0}/s on 1 thread, {rsa_n:.0}/s on {threads} threads \
         -> crypto limit ~{:.0} enrollments/s at 2 RSA operations each",
        rsa_n / 2.0
    );

    // Pre-built requests: 8 client keys, a fresh transaction per request.
    let keys: Vec<(Arc<dyn PrivateKey>, Vec<u8>)> = (0..8)
        .map(|i| {
            let k: Arc<dyn PrivateKey> = Arc::new(hsm::soft::SoftKey::generate_ephemeral(
                "c",
                KeyAlgorithm::Rsa2048,
            )?);
            let cert = scep::client::self_signed(k.as_ref(), &format!("CN=bench{i}"))
                .map_err(|e| Error::Usage(e.to_string()))?;
            Ok((k, cert))
        })
        .collect::<Result<_, Error>>()?;
    let mut runs = Vec::new();
    for run in 0..a.runs.max(1) {
        let mut reqs = Vec::with_capacity(a.requests);
        for i in 0..a.requests {
            let (k, cert) = &keys[i % keys.len()];
            let csr = scep::client::csr(
                k.as_ref(),
                &format!("CN=bench{}", i % keys.len()),
                Some(&challenge),
            )
            .map_err(|e| Error::Usage(e.to_string()))?;
            let tid = format!("bench-{}-{run}-{i}", std::process::id());
            let r = scep::client::build_request(
                MessageType::PkcsReq,
                &tid,
                &csr,
                scep::client::Identity {
                    key: k.as_ref(),
                    cert_der: cert,
                },
                &ra,
                cipher,
            )
            .map_err(|e| Error::Usage(e.to_string()))?;
            reqs.push(r.der);
        }
        let reqs = Arc::new(reqs);
        let next = Arc::new(AtomicUsize::new(0));
        let url = format!("{}?operation=PKIOperation", a.url);
        let start = Instant::now();
        let results: Vec<(Duration, bool)> = rt.block_on(async {
            let mut tasks = Vec::new();
            for _ in 0..a.concurrency.max(1) {
                let (reqs, next, http, url) =
                    (reqs.clone(), next.clone(), http.clone(), url.clone());
                tasks.push(tokio::spawn(async move {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(body) = reqs.get(i) else { break };
                        let t = Instant::now();
                        let ok = match http.post(&url).body(body.clone()).send().await {
                            Ok(r) => match r.bytes().await {
                                // Check the signature and pkiStatus (public-key work only).
                                Ok(b) => scep::codec::verify_signed(&b, &Default::default())
                                    .is_ok_and(|v| {
                                        v.verified.is_ok() && v.pki_status.as_deref() == Some("0")
                                    }),
                                Err(_) => false,
                            },
                            Err(_) => false,
                        };
                        out.push((t.elapsed(), ok));
                    }
                    out
                }));
            }
            let mut all = Vec::new();
            for t in tasks {
                if let Ok(v) = t.await {
                    all.extend(v);
                }
            }
            all
        });
        let elapsed = start.elapsed();
        let ok = results.iter().filter(|r| r.1).count();
        let mut lat: Vec<Duration> = results.iter().map(|r| r.0).collect();
        lat.sort();
        let r = Run {
            per_sec: ok as f64 / elapsed.as_secs_f64(),
            ok,
            failed: results.len() - ok,
            p50: percentile(&lat, 0.5),
            p90: percentile(&lat, 0.9),
            p99: percentile(&lat, 0.99),
        };
        outln!(
            "run {}: {:.1} enrollments/s ({} ok, {} failed), latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms",
            run + 1,
            r.per_sec,
            r.ok,
            r.failed,
            ms(r.p50),
            ms(r.p90),
            ms(r.p99)
        );
        runs.push(r);
    }
    runs.sort_by(|x, y| x.per_sec.total_cmp(&y.per_sec));
    let m = &runs[runs.len() / 2];
    outln!(
        "median: {:.1} enrollments/s, p50 {:.1} ms, p99 {:.1} ms; {:.0}% of the crypto limit ({:.0}/s)",
        m.per_sec,
        ms(m.p50),
        ms(m.p99),
        100.0 * m.per_sec / (rsa_n / 2.0),
        rsa_n / 2.0
    );
    Ok(())
}
