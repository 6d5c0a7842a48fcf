//! `privca bench ocsp`: OCSP responses per second over plain HTTP with a new TCP
//! connection per request, at a given concurrency, for a set of issued certificates
//! (some revoked): GET and POST without a nonce (RFC 9919 §5, answered from the
//! pre-signed responses once warm) and POST with a nonce (RFC 9654, signed live).
//!
//! The server is `privca serve` started as a child process on a fresh CA in a temporary
//! directory (or a running one with `--url`), so that its CPU time per response comes
//! from the kernel's counters of that process (`/proc/PID/stat` utime + stime). The
//! same requests go to `openssl ocsp -index … -port …` (a real peer, also a child
//! process) in the same run, and the raw signing speed of the responder key is measured
//! beside them. Nothing is asserted.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use der::Encode;
use der::asn1::OctetString;
use hsm::{KeyAlgorithm, PrivateKey};
use x509_cert::ext::Extension;

use super::common::{algorithm, bench_ca, load, raw_sign_rate};
use crate::Error;
use ca_core::ocsp::{CertId, OcspRequest, Request, TbsRequest};

/// Options of `privca bench ocsp`.
#[derive(Debug, clap::Args)]
pub struct OcspBenchArgs {
    /// Requests per mode and server.
    #[arg(long, default_value_t = 20_000)]
    pub count: usize,
    /// Concurrent clients (each request on a new TCP connection).
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Certificates issued for the run (every tenth is revoked).
    #[arg(long, default_value_t = 200)]
    pub certs: usize,
    /// Key algorithm of the CA and of the OCSP responder.
    #[arg(long, default_value = "ecdsa-p256")]
    pub alg: String,
    /// Modes: get, post (both without a nonce), nonced (POST with a nonce).
    #[arg(long, value_delimiter = ',', default_value = "get,post,nonced")]
    pub modes: Vec<String>,
    /// Seconds spent measuring the raw signing speed.
    #[arg(long, default_value_t = 3)]
    pub sign_seconds: u64,
    /// Skip the `openssl ocsp` peer.
    #[arg(long)]
    pub no_peer: bool,
    /// The openssl binary of the peer.
    #[arg(long, default_value = "openssl")]
    pub openssl: PathBuf,
}

/// One server under load: its OCSP URL and the process whose CPU time is counted.
struct Target {
    name: &'static str,
    url: String,
    child: Child,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Get,
    Post,
    Nonced,
}

impl Mode {
    fn parse(s: &str) -> Result<Mode, Error> {
        match s {
            "get" => Ok(Mode::Get),
            "post" => Ok(Mode::Post),
            "nonced" => Ok(Mode::Nonced),
            other => Err(Error::Usage(format!(
                "unknown mode {other:?} (get, post, nonced)"
            ))),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Mode::Get => "GET, no nonce      ",
            Mode::Post => "POST, no nonce     ",
            Mode::Nonced => "POST, with a nonce ",
        }
    }
}

/// utime + stime of process `pid`, in seconds (`/proc/PID/stat` fields 14 and 15, in
/// clock ticks of 1/100 s, the value of `_SC_CLK_TCK` on Linux).
fn cpu_seconds(pid: u32) -> Result<f64, Error> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| Error::io(format!("reading /proc/{pid}/stat"), e))?;
    // The command name may contain spaces; the fields after it start at the last ')'.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| Error::Usage(format!("/proc/{pid}/stat: {text:?}")))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> Result<f64, Error> {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| Error::Usage(format!("/proc/{pid}/stat field {}", i + 3)))
    };
    Ok((tick(11)? + tick(12)?) / 100.0)
}

fn cert_id(issuer_der: &[u8], serial: &[u8]) -> Result<CertId, Error> {
    Ok(CertId::sha1(issuer_der, serial)?)
}

/// A DER OCSPRequest for one CertID, with a 16-octet nonce (RFC 9654 §2.1) or none.
fn request(id: &CertId, nonce: Option<[u8; 16]>) -> Result<Vec<u8>, Error> {
    let bad = |e: der::Error| Error::Usage(format!("OCSP request: {e}"));
    let extensions = match nonce {
        Some(n) => Some(vec![Extension {
            extn_id: ca_core::asn1::oid::OCSP_NONCE,
            critical: false,
            extn_value: OctetString::new(
                OctetString::new(n.to_vec())
                    .map_err(bad)?
                    .to_der()
                    .map_err(bad)?,
            )
            .map_err(bad)?,
        }]),
        None => None,
    };
    OcspRequest {
        tbs_request: TbsRequest {
            version: 0,
            requestor_name: None,
            request_list: vec![Request {
                req_cert: id.clone(),
                single_request_extensions: None,
            }],
            request_extensions: extensions,
        },
        optional_signature: None,
    }
    .to_der()
    .map_err(bad)
}

/// True when `der` is a successful OCSPResponse (SEQUENCE, then ENUMERATED 0).
fn successful(der: &[u8]) -> bool {
    let body = match der {
        [0x30, 0x82, _, _, rest @ ..] => rest,
        [0x30, 0x81, _, rest @ ..] => rest,
        [0x30, _, rest @ ..] => rest,
        _ => return false,
    };
    body.starts_with(&[0x0a, 0x01, 0x00])
}

/// A free loopback port (bound and released; the child binds it right after).
fn free_port() -> Result<u16, Error> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io("binding", e))?;
    Ok(l.local_addr().map_err(|e| Error::io("binding", e))?.port())
}

/// Waits until something accepts on `port`.
fn wait_for(port: u16, child: &mut Child, what: &str) -> Result<(), Error> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::Usage(format!("{what} exited: {status}")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(Error::Usage(format!("{what} did not listen on {port}")))
}

/// An OpenSSL `index.txt` line (the `openssl ca` database) for one certificate.
fn index_line(rec: &store::CertRecord) -> Result<String, Error> {
    let t = |unix: i64| -> Result<String, Error> {
        let d = time::OffsetDateTime::from_unix_timestamp(unix)
            .map_err(|e| Error::Usage(format!("time: {e}")))?;
        Ok(format!(
            "{:02}{:02}{:02}{:02}{:02}{:02}Z",
            d.year() % 100,
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute(),
            d.second()
        ))
    };
    let serial = hex::encode_upper(&rec.serial);
    Ok(match &rec.revocation {
        Some(r) => format!(
            "R\t{}\t{},keyCompromise\t{serial}\tunknown\t/CN=bench-{serial}\n",
            t(rec.not_after)?,
            t(r.time)?
        ),
        None => format!(
            "V\t{}\t\t{serial}\tunknown\t/CN=bench-{serial}\n",
            t(rec.not_after)?
        ),
    })
}

/// Runs the benchmark.
pub fn run(a: &OcspBenchArgs) -> Result<(), Error> {
    let alg = algorithm(&a.alg)?;
    let modes = a
        .modes
        .iter()
        .map(|m| Mode::parse(m))
        .collect::<Result<Vec<_>, _>>()?;
    let dir = tempfile::tempdir().map_err(|e| Error::io("temporary directory", e))?;
    let (privca, responder_key, issuing_der, serials) = start_privca(a, alg, dir.path())?;
    let ids = serials
        .iter()
        .map(|r| cert_id(&issuing_der, &r.serial))
        .collect::<Result<Vec<_>, _>>()?;
    let plain = ids
        .iter()
        .map(|id| request(id, None))
        .collect::<Result<Vec<_>, _>>()?;
    let mut targets = vec![privca];
    if !a.no_peer {
        let probe = plain
            .first()
            .ok_or_else(|| Error::Usage("no certificates".into()))?;
        targets.push(start_openssl(a, alg, dir.path(), &serials, probe)?);
    }

    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let dur = Duration::from_secs(a.sign_seconds.max(1));
    let raw_1 = raw_sign_rate(&responder_key, 1, dur)?;
    let raw_n = raw_sign_rate(&responder_key, cores, dur)?;
    let load_avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    outln!(
        "== bench ocsp: {} certificates ({} revoked), {} requests per mode, {} clients, new TCP connection per request; load average {} ==",
        ids.len(),
        serials.iter().filter(|r| r.revocation.is_some()).count(),
        a.count,
        a.clients,
        load_avg
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    outln!(
        "raw signing of the OCSP responder key ({alg}, 600-byte message): {raw_1:.0}/s on 1 thread, {raw_n:.0}/s on {cores} threads"
    );
    for mode in modes {
        let mut first: Option<(f64, f64)> = None;
        for t in &mut targets {
            // Warm up: one pass over the certificates (fills privca's cache; openssl
            // keeps none).
            let warm = one_load(t, mode, &plain, &ids, a.clients, ids.len())?;
            let before = cpu_seconds(t.child.id())?;
            let run = one_load(t, mode, &plain, &ids, a.clients, a.count)?;
            let cpu = cpu_seconds(t.child.id())? - before;
            let n = run.latencies.len().max(1) as f64;
            let rate = run.rate();
            let cpu_ms = 1000.0 * cpu / n;
            let cmp = match first {
                None => {
                    first = Some((rate, cpu_ms));
                    String::new()
                }
                Some((r0, c0)) => format!(
                    " | privca/{}: {:.2}x the rate, {:.2}x the CPU per response",
                    t.name,
                    r0 / rate.max(f64::MIN_POSITIVE),
                    c0 / cpu_ms.max(f64::MIN_POSITIVE)
                ),
            };
            outln!(
                "{:7} {}: {rate:.0} responses/s, p50 {:.2} ms, p99 {:.2} ms, server CPU {cpu_ms:.4} ms/response, failures {} (warm-up failures {}){cmp}",
                t.name,
                mode.label(),
                run.ms(0.5),
                run.ms(0.99),
                run.failures,
                warm.failures
            );
        }
    }
    drop(targets);
    drop(dir);
    Ok(())
}

/// `count` requests of `mode` against `t`, over the certificates in turn.
fn one_load(
    t: &Target,
    mode: Mode,
    plain: &[Vec<u8>],
    ids: &[CertId],
    clients: usize,
    count: usize,
) -> Result<super::common::Load, Error> {
    let url = t.url.trim_end_matches('/').to_string();
    let gets: Vec<String> = plain
        .iter()
        .map(|der| {
            // RFC 6960 Appendix A.1: the URL-encoded base64 of the DER request.
            let b64 = base64::engine::general_purpose::STANDARD.encode(der);
            let enc = b64
                .replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3D");
            format!("{url}/{enc}")
        })
        .collect();
    Ok(load(
        clients,
        count,
        || {
            reqwest::blocking::Client::builder()
                .pool_max_idle_per_host(0)
                .timeout(Duration::from_secs(30))
                .build()
                .ok()
        },
        |client, i| {
            let k = i % plain.len().max(1);
            let sent = match mode {
                Mode::Get => client.get(gets[k].as_str()).send(),
                Mode::Post => client
                    .post(url.as_str())
                    .header("Content-Type", "application/ocsp-request")
                    .body(plain[k].clone())
                    .send(),
                Mode::Nonced => {
                    let mut nonce = [0u8; 16];
                    rand::fill(&mut nonce);
                    let Ok(body) = request(&ids[k], Some(nonce)) else {
                        return false;
                    };
                    client
                        .post(url.as_str())
                        .header("Content-Type", "application/ocsp-request")
                        .body(body)
                        .send()
                }
            };
            sent.and_then(|r| {
                let ok = r.status().is_success();
                r.bytes().map(|b| ok && successful(&b))
            })
            .unwrap_or(false)
        },
    ))
}

/// A fresh CA (`privca init`), `certs` certificates issued and every tenth revoked, then
/// `privca serve` as a child process. Returns the target, the responder key, the issuing
/// CA's certificate and the records of the certificates.
#[allow(clippy::type_complexity)]
fn start_privca(
    a: &OcspBenchArgs,
    alg: KeyAlgorithm,
    dir: &Path,
) -> Result<(Target, Arc<dyn PrivateKey>, Vec<u8>, Vec<store::CertRecord>), Error> {
    let data = dir.join("data");
    let port = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let params = bench_ca(data.clone(), alg, &listen, format!("http://{listen}"), None);
    let out = crate::init::init(&params)?;
    let cfg = crate::config::Config::load(&out.config_path)?;
    let responder_key = cfg.open_keys()?.open("issuing-ocsp")?;
    let issuing_der = ca_core::authority::read_cert_file(&data.join("ca/issuing.crt"))?;
    let mut serials = Vec::new();
    {
        let auth = cfg.load_authority()?;
        for i in 0..a.certs.max(1) {
            let key =
                hsm::soft::SoftKey::generate_ephemeral("bench-leaf", KeyAlgorithm::EcdsaP256)?;
            let rec = auth
                .issue(&super::common::leaf_request(
                    "device",
                    format!("CN=bench-ocsp-{i}")
                        .parse()
                        .map_err(|e| Error::Usage(format!("{e}")))?,
                    Vec::new(),
                    key.public_key_der().to_vec(),
                ))?
                .record;
            let revoked = i % 10 == 9;
            let rec = if revoked {
                auth.revoke(
                    &rec.serial,
                    ca_core::RevocationReason::KeyCompromise,
                    "bench",
                )?
            } else {
                rec
            };
            serials.push(rec);
        }
    }
    let exe = std::env::current_exe().map_err(|e| Error::io("finding privca", e))?;
    let mut child = Command::new(exe)
        .arg("--config")
        .arg(&out.config_path)
        .arg("serve")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::io("starting privca serve", e))?;
    wait_for(port, &mut child, "privca serve")?;
    Ok((
        Target {
            name: "privca",
            url: format!("http://{listen}/ocsp"),
            child,
        },
        responder_key,
        issuing_der,
        serials,
    ))
}

/// `openssl ocsp -index … -port …` over the same certificates: an OpenSSL index file,
/// and a responder key of the same algorithm made by openssl (the peer cannot read
/// privca's encrypted key store; clients of the bench do not check the signer).
fn start_openssl(
    a: &OcspBenchArgs,
    alg: KeyAlgorithm,
    dir: &Path,
    serials: &[store::CertRecord],
    probe: &[u8],
) -> Result<Target, Error> {
    let peer = dir.join("openssl");
    std::fs::create_dir_all(&peer).map_err(|e| Error::io("peer directory", e))?;
    let mut index =
        std::fs::File::create(peer.join("index.txt")).map_err(|e| Error::io("index.txt", e))?;
    for rec in serials {
        index
            .write_all(index_line(rec)?.as_bytes())
            .map_err(|e| Error::io("index.txt", e))?;
    }
    drop(index);
    let newkey: Vec<&str> = match alg {
        KeyAlgorithm::EcdsaP256 => vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        KeyAlgorithm::EcdsaP384 => vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
        KeyAlgorithm::Rsa2048 => vec!["-newkey", "rsa:2048"],
        KeyAlgorithm::Rsa3072 => vec!["-newkey", "rsa:3072"],
        KeyAlgorithm::Rsa4096 => vec!["-newkey", "rsa:4096"],
    };
    let status = Command::new(&a.openssl)
        .args([
            "req",
            "-x509",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=bench openssl responder",
        ])
        .args(&newkey)
        .arg("-keyout")
        .arg(peer.join("responder.key"))
        .arg("-out")
        .arg(peer.join("responder.crt"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| Error::io("running openssl req", e))?;
    if !status.success() {
        return Err(Error::Usage(format!("openssl req failed: {status}")));
    }
    let port = free_port()?;
    let mut child = Command::new(&a.openssl)
        .arg("ocsp")
        .arg("-index")
        .arg(peer.join("index.txt"))
        .args(["-port", &port.to_string(), "-ndays", "1", "-ignore_err"])
        .arg("-rsigner")
        .arg(peer.join("responder.crt"))
        .arg("-rkey")
        .arg(peer.join("responder.key"))
        .arg("-CA")
        .arg(dir.join("data/ca/issuing.crt"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(peer.join("openssl.log"))
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null()),
        )
        .spawn()
        .map_err(|e| Error::io("starting openssl ocsp", e))?;
    // A bare TCP probe would stall it: `openssl ocsp` serves one connection at a time
    // and waits for that one's request. Poll with a real request instead.
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::blocking::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| Error::Usage(format!("HTTP client: {e}")))?;
    let start = Instant::now();
    loop {
        let ok = client
            .post(url.as_str())
            .header("Content-Type", "application/ocsp-request")
            .body(probe.to_vec())
            .send()
            .and_then(|r| r.bytes())
            .map(|b| successful(&b))
            .unwrap_or(false);
        if ok {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::Usage(format!(
                "openssl ocsp exited: {status}: {}",
                std::fs::read_to_string(peer.join("openssl.log")).unwrap_or_default()
            )));
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            return Err(Error::Usage("openssl ocsp did not answer".into()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(Target {
        name: "openssl",
        url: format!("http://127.0.0.1:{port}"),
        child,
    })
}
