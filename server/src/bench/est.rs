//! `privca bench est`: EST enrollments per second over HTTPS against a server started
//! in-process (a fresh CA in a temporary directory, durable store), once with a new TLS
//! connection per enrollment and once with keep-alive, beside the raw signing speed of
//! the issuing key and the raw PBKDF2 verification speed of the account's password hash,
//! measured in the same run. The in-process server runs twice: first with the password
//! cache off (`[est.password_cache] max_entries = 0`: every enrollment runs the full
//! PBKDF2, as before the cache existed), then with the default cache, so that the ratio
//! is visible; each run starts with one warm-up enrollment that is not counted (with the
//! cache on it is the one full PBKDF2 per account and TTL). Nothing is asserted.

use std::time::Duration;

use base64::Engine;
use der::Encode;
use hsm::{KeyAlgorithm, PrivateKey};

use super::common::{algorithm, bench_ca, load, raw_sign_rate};
use crate::Error;

/// Options of `privca bench est`.
#[derive(Debug, clap::Args)]
pub struct EstBenchArgs {
    /// Enrollments per mode.
    #[arg(long, default_value_t = 400)]
    pub count: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Issuing CA key algorithm.
    #[arg(long, default_value = "ecdsa-p256")]
    pub alg: String,
    /// PBKDF2 iterations of the bench account's password hash (HTTP Basic is checked on
    /// every enrollment); the default is what `privca est hash-password` uses.
    #[arg(long, default_value_t = est::password::DEFAULT_ITERATIONS)]
    pub pbkdf2_iterations: u32,
    /// Enrollments per mode of the baseline run with the password cache off (each costs
    /// a full PBKDF2); 0 skips that run.
    #[arg(long, default_value_t = 64)]
    pub baseline_count: usize,
    /// Seconds spent measuring the raw signing speed.
    #[arg(long, default_value_t = 3)]
    pub sign_seconds: u64,
    /// Enroll against a running server instead of one started in-process: the
    /// `simpleenroll` URL (e.g. `https://127.0.0.1:8443/.well-known/est/simpleenroll`).
    /// The raw-signing baseline then uses a fresh local key of `--alg`.
    #[arg(long, requires = "cacert")]
    pub url: Option<String>,
    /// With `--url`: the PEM root certificate that the server's chain ends in.
    #[arg(long)]
    pub cacert: Option<std::path::PathBuf>,
    /// With `--url`: the HTTP Basic user; the password is read from the environment
    /// variable PRIVCA_BENCH_EST_PASSWORD.
    #[arg(long, default_value = "bench")]
    pub user: String,
}

/// What the enrollments run against.
struct Target {
    url: String,
    root_pem: Vec<u8>,
    auth: String,
    key: std::sync::Arc<dyn PrivateKey>,
    what: String,
    /// In-process: the configuration file (without its `[est.password_cache]`) and the
    /// temporary directory it lives in.
    local: Option<(std::path::PathBuf, String, tempfile::TempDir)>,
}

/// A server started in-process, stopped by [`LocalServer::stop`].
struct LocalServer {
    rt: tokio::runtime::Runtime,
    running: crate::serve::Running,
}

impl LocalServer {
    /// Writes `config_text` to `path` and serves it.
    fn start(path: &std::path::Path, config_text: &str) -> Result<LocalServer, Error> {
        std::fs::write(path, config_text).map_err(|e| Error::io("writing the bench config", e))?;
        let cfg = crate::config::Config::load(path)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("runtime", e))?;
        let running = rt.block_on(crate::serve::start(&cfg, None))?;
        Ok(LocalServer { rt, running })
    }

    fn url(&self) -> Result<String, Error> {
        let tls_addr = self
            .running
            .tls_addr
            .ok_or_else(|| Error::Config("no HTTPS listener".into()))?;
        Ok(format!("https://{tls_addr}/.well-known/est/simpleenroll"))
    }

    fn stop(self) {
        let _ = self.running.shutdown.send(());
        let _ = self.rt.block_on(self.running.done);
    }
}

/// PBKDF2 verifications per second of `hash` (the right password) on `threads` threads.
fn raw_pbkdf2_rate(
    hash: &est::password::PasswordHash,
    password: &[u8],
    threads: usize,
    dur: Duration,
) -> f64 {
    let count = std::sync::atomic::AtomicUsize::new(0);
    let start = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            let count = &count;
            s.spawn(move || {
                while start.elapsed() < dur {
                    if hash.verify(password) {
                        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    count.load(std::sync::atomic::Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// A PKCS#10 CSR (RFC 2986) for `CN=<cn>` signed by an ephemeral P-256 key, with an
/// optional challengePassword attribute (PKCS#9, RFC 2985 §5.4.1) — used by the
/// benchmark and by the channel-binding test.
pub fn make_csr(cn: &str, challenge: Option<&str>) -> Result<Vec<u8>, Error> {
    use x509_cert::attr::Attribute;
    use x509_cert::request::{CertReq, CertReqInfo, Version};
    let key = hsm::soft::SoftKey::generate_ephemeral("bench-client", KeyAlgorithm::EcdsaP256)?;
    let bad = |e: der::Error| Error::Usage(format!("CSR: {e}"));
    let mut attributes = der::asn1::SetOfVec::new();
    if let Some(c) = challenge {
        let value =
            der::Any::encode_from(&der::asn1::Utf8StringRef::new(c).map_err(bad)?).map_err(bad)?;
        let mut values = der::asn1::SetOfVec::new();
        values.insert(value).map_err(bad)?;
        attributes
            .insert(Attribute {
                oid: ca_core::asn1::oid::CHALLENGE_PASSWORD,
                values,
            })
            .map_err(bad)?;
    }
    let info = CertReqInfo {
        version: Version::V1,
        subject: format!("CN={cn}")
            .parse()
            .map_err(|e| Error::Usage(format!("{e}")))?,
        public_key: der::Decode::from_der(key.public_key_der()).map_err(bad)?,
        attributes,
    };
    let tbs = info.to_der().map_err(bad)?;
    let sig = key.sign(hsm::SignatureScheme::EcdsaP256Sha256, &tbs)?;
    let req = CertReq {
        info,
        algorithm: ca_core::asn1::signature_algorithm(hsm::SignatureScheme::EcdsaP256Sha256)?,
        signature: der::asn1::BitString::from_bytes(&sig).map_err(bad)?,
    };
    req.to_der().map_err(bad)
}

/// Runs the benchmark.
pub fn run(a: &EstBenchArgs) -> Result<(), Error> {
    let alg = algorithm(&a.alg)?;
    let t = match &a.url {
        Some(url) => remote(a, url, alg)?,
        None => in_process(a, alg)?,
    };
    let issuing_key = t.key.clone();
    let auth = t.auth.clone();
    let root = reqwest::Certificate::from_pem(&t.root_pem)
        .map_err(|e| Error::Usage(format!("root certificate: {e}")))?;
    let body = {
        let der = make_csr("bench-client", None)?;
        est::encoding::base64_lines(&der)
    };

    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let sign_dur = Duration::from_secs(a.sign_seconds.max(1));
    let raw_1 = raw_sign_rate(&issuing_key, 1, sign_dur)?;
    let raw_n = raw_sign_rate(&issuing_key, cores, sign_dur)?;
    let bench_hash = est::password::PasswordHash::new(b"bench password", a.pbkdf2_iterations)?;
    let pbkdf2_1 = raw_pbkdf2_rate(&bench_hash, b"bench password", 1, sign_dur);
    let pbkdf2_n = raw_pbkdf2_rate(&bench_hash, b"bench password", cores, sign_dur);
    outln!(
        "== bench est: {}, issuing CA key {alg}, {} enrollments per mode ({} with the password cache off), {} clients ==",
        t.what,
        a.count,
        a.baseline_count,
        a.clients
    );
    outln!(
        "raw signing ({alg}, 600-byte message): {raw_1:.0}/s on 1 thread, {raw_n:.0}/s on {cores} threads"
    );
    outln!(
        "raw PBKDF2-HMAC-SHA256 verification (i={}): {pbkdf2_1:.1}/s on 1 thread, {pbkdf2_n:.1}/s on {cores} threads",
        a.pbkdf2_iterations
    );
    let measure = |url: &str, count: usize, label: &str| {
        // One enrollment before the timed runs, as a server in use has had: with the
        // cache on it runs the full PBKDF2 and enters the password (one per account and
        // TTL), so the figures below are the steady state, not 16 clients missing at once.
        let warm = std::time::Instant::now();
        let warm_ok = reqwest::blocking::Client::builder()
            .tls_certs_only([root.clone()])
            .timeout(Duration::from_secs(60))
            .build()
            .and_then(|c| {
                c.post(url)
                    .header("Content-Type", "application/pkcs10")
                    .header("Authorization", auth.as_str())
                    .body(body.clone())
                    .send()
            })
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        outln!(
            "{label}, warm-up enrollment (not counted): {:.1} ms{}",
            warm.elapsed().as_secs_f64() * 1000.0,
            if warm_ok { "" } else { ", FAILED" }
        );
        let mut rates = [0.0f64; 2];
        for (i, keep_alive) in [false, true].into_iter().enumerate() {
            let run = load(
                a.clients,
                count,
                || {
                    let mut b = reqwest::blocking::Client::builder()
                        .tls_certs_only([root.clone()])
                        .timeout(Duration::from_secs(60));
                    if !keep_alive {
                        b = b.pool_max_idle_per_host(0);
                    }
                    b.build().ok()
                },
                |client, _| {
                    client
                        .post(url)
                        .header("Content-Type", "application/pkcs10")
                        .header("Authorization", auth.as_str())
                        .body(body.clone())
                        .send()
                        .and_then(|r| {
                            let ok = r.status().is_success();
                            r.bytes().map(|_| ok)
                        })
                        .unwrap_or(false)
                },
            );
            let rate = run.rate();
            rates[i] = rate;
            let p = |q| run.ms(q);
            outln!(
                "{label}, {}: {rate:.0} enrollments/s ({:.1}% of raw signing on {cores} threads, {:.1}x raw PBKDF2), latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, failures {}",
                if keep_alive {
                    "keep-alive        "
                } else {
                    "new TLS conn each "
                },
                100.0 * rate / raw_n,
                rate / pbkdf2_n,
                p(0.5),
                p(0.9),
                p(0.99),
                run.failures
            );
        }
        rates
    };
    match &t.local {
        None => {
            measure(&t.url, a.count, "server");
        }
        Some((path, text, _dir)) => {
            let mut off = None;
            if a.baseline_count > 0 {
                let server = LocalServer::start(
                    path,
                    &format!("{text}\n[est.password_cache]\nmax_entries = 0\n"),
                )?;
                let url = server.url()?;
                off = Some(measure(&url, a.baseline_count, "password cache off"));
                server.stop();
            }
            let server = LocalServer::start(path, text)?;
            let url = server.url()?;
            let on = measure(&url, a.count, "password cache on ");
            server.stop();
            if let Some(off) = off {
                outln!(
                    "password cache on/off: {:.1}x with a new TLS connection each, {:.1}x with keep-alive",
                    on[0] / off[0],
                    on[1] / off[1]
                );
            }
        }
    }
    Ok(())
}

/// A fresh CA with an EST endpoint, served in-process.
fn in_process(a: &EstBenchArgs, alg: KeyAlgorithm) -> Result<Target, Error> {
    let dir = tempfile::tempdir().map_err(|e| Error::io("temporary directory", e))?;
    let data = dir.path().join("data");
    let params = bench_ca(
        data.clone(),
        alg,
        "127.0.0.1:0",
        "http://127.0.0.1:8080".into(),
        Some("127.0.0.1:0".into()),
    );
    let out = crate::init::init(&params)?;
    let password = "bench password";
    let hash = est::password::PasswordHash::new(password.as_bytes(), a.pbkdf2_iterations)?;
    let mut text = std::fs::read_to_string(&out.config_path)
        .map_err(|e| Error::io("reading the bench config", e))?;
    text.push_str(&format!(
        "\n[est]\ndefault_endpoint = \"bench\"\n[est.endpoints.bench]\nprofile = \"tls-client\"\nauth = \"basic\"\naccounts = [{{ username = \"bench\", password_hash = \"{hash}\" }}]\n"
    ));
    std::fs::write(&out.config_path, &text)
        .map_err(|e| Error::io("writing the bench config", e))?;
    let cfg = crate::config::Config::load(&out.config_path)?;
    let issuing_key = cfg.open_keys()?.open("issuing")?;
    let root_pem =
        std::fs::read(data.join("ca/root.crt")).map_err(|e| Error::io("reading the root", e))?;
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("bench:{password}"))
    );
    Ok(Target {
        url: String::new(),
        root_pem,
        auth,
        key: issuing_key,
        what: format!(
            "in-process server, HTTPS (rustls), HTTP Basic with PBKDF2 i={}, durable redb store",
            a.pbkdf2_iterations
        ),
        local: Some((out.config_path, text, dir)),
    })
}

/// A running server at `url`.
fn remote(a: &EstBenchArgs, url: &str, alg: KeyAlgorithm) -> Result<Target, Error> {
    let cacert = a
        .cacert
        .as_ref()
        .ok_or_else(|| Error::Usage("--url needs --cacert".into()))?;
    let root_pem =
        std::fs::read(cacert).map_err(|e| Error::io(format!("reading {}", cacert.display()), e))?;
    let password = hsm::SecretSource::Env("PRIVCA_BENCH_EST_PASSWORD".into()).load()?;
    let creds = [a.user.as_bytes(), b":", password.expose()].concat();
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(creds)
    );
    let key: std::sync::Arc<dyn PrivateKey> = std::sync::Arc::new(
        hsm::soft::SoftKey::generate_ephemeral("bench-baseline", alg)?,
    );
    Ok(Target {
        url: url.to_string(),
        root_pem,
        auth,
        key,
        what: format!("server at {url} (baseline: a local {alg} key)"),
        local: None,
    })
}
