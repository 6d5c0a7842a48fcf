//! privca's own certificates never expire unnoticed (issue 15 item 5): the delegated
//! OCSP responder (RFC 6960 §4.2.2.2), the SCEP RA (RFC 8894 §2.1.2) and the HTTPS
//! listener certificates are renewed by the running server once they expire within
//! `[server.renewal] margin`, and every CA certificate inside the margin is reported in
//! `/healthz` and the log (docs/operations.md, "privca's own certificates").
//!
//! A renewal, in this order:
//! 1. a new key under a new label (`<configured label>.<unix time>`), on the token when
//!    keys are in an HSM (or the current key with `new_key = false`);
//! 2. a replacement certificate under the same profile, subject and names, from the same
//!    CA, through the issuance pipeline: recorded durably and audited before anything
//!    else changes, plus a `renew-own-certificate` audit entry naming both serials;
//! 3. the certificate file replaced atomically (temporary file, fsync, rename), with a
//!    `privca key: <label>` line above the PEM block so that a restart opens the new key
//!    ([`ca_core::authority::KEY_LABEL_LINE`]); the configuration is not rewritten;
//! 4. the swap in memory: the OCSP responder (and its pre-signed answers dropped), the
//!    SCEP RA (the previous RA still decrypts), the TLS certificate resolver.
//!
//! A failure at any step is logged and retried at the next check; the certificate in use
//! stays in use until a replacement is complete.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ca_core::{Authority, IssueRequest, KeyWithCert, Renewable};
use der::Decode;
use serde::Serialize;

use crate::Error;
use crate::config::Config;
use crate::tls::TlsIdentity;

/// Where a renewed certificate goes in memory.
enum Target {
    /// The CA's delegated OCSP responder ([`Authority::replace_ocsp_responder`]).
    Ocsp,
    /// The CA's SCEP RA, shared with the SCEP endpoints.
    Ra(Renewable),
    /// The HTTPS listener's certificate resolver.
    Tls(Arc<TlsIdentity>),
}

/// One of privca's own certificates.
struct OwnCert {
    /// `ocsp:<ca>`, `ra:<ca>` or `https` (also its key probe name).
    name: String,
    /// `ocsp`, `ra` or `tls`.
    kind: &'static str,
    /// The CA that issues it.
    ca: Option<String>,
    /// The profile it is renewed under.
    profile: &'static str,
    /// Its certificate file.
    cert_path: PathBuf,
    /// The configured key label (renewed keys are named after it).
    key_label: Option<String>,
    target: Target,
    /// Why it is not renewed automatically, when it is not.
    manual: Option<String>,
    /// The last renewal failure, until a renewal succeeds.
    last_error: Mutex<Option<String>>,
}

/// One line of the expiry report (`/healthz` `certificates`).
#[derive(Clone, Debug, Serialize)]
pub struct Expiry {
    /// `ca:<name>`, `ocsp:<ca>`, `ra:<ca>` or `https`.
    pub name: String,
    /// `ca`, `ocsp`, `ra` or `tls`.
    pub kind: &'static str,
    /// Serial number, hex.
    pub serial: String,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// Whole days until notAfter (negative once expired).
    pub days_left: i64,
    /// `ok`; `renewal-due` (inside the margin, privca renews it); `expiring` (inside the
    /// margin, an operator must act); `expired`.
    pub status: &'static str,
    /// `automatic` or `manual`.
    pub renewal: &'static str,
    /// Why renewal is manual, or the last renewal failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The renewal task's state: the certificates it watches and how.
pub struct Renewer {
    auth: Arc<Authority>,
    keys: Arc<dyn hsm::KeyStore>,
    probe: Option<Arc<hsm::probe::KeyProbe>>,
    certs: Vec<OwnCert>,
    enabled: bool,
    new_key: bool,
    margin: i64,
    interval: i64,
    tls_days: u32,
}

impl std::fmt::Debug for Renewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renewer")
            .field(
                "certs",
                &self.certs.iter().map(|c| &c.name).collect::<Vec<_>>(),
            )
            .field("margin", &self.margin)
            .finish()
    }
}

fn facts(der: &[u8]) -> Option<(String, i64, String)> {
    let c = x509_cert::Certificate::from_der(der).ok()?;
    let t = c.tbs_certificate();
    Some((
        ca_core::asn1::serial_hex(t.serial_number().as_bytes()),
        ca_core::asn1::unix_of(&t.validity().not_after),
        t.issuer().to_string(),
    ))
}

impl Renewer {
    /// Collects the own certificates of `cfg` as the server loaded them: each CA's
    /// responder and RA, and the HTTPS listener's certificate (`tls`). A certificate
    /// privca did not issue (an operator's TLS certificate with `key_file`) is watched
    /// and reported, not renewed.
    pub fn new(
        cfg: &Config,
        auth: Arc<Authority>,
        keys: Arc<dyn hsm::KeyStore>,
        probe: Option<Arc<hsm::probe::KeyProbe>>,
        tls: Option<Arc<TlsIdentity>>,
    ) -> Result<Renewer, Error> {
        let r = &cfg.server.renewal;
        let margin = r.margin_seconds()?;
        let mut certs = Vec::new();
        for ac in &cfg.ca.authorities {
            let ca = auth.ca(&ac.name)?;
            if let (Some(_), Some(path), Some(label)) =
                (&ca.ocsp, &ac.ocsp_certificate, &ac.ocsp_key)
            {
                certs.push(OwnCert {
                    name: format!("ocsp:{}", ac.name),
                    kind: "ocsp",
                    ca: Some(ac.name.clone()),
                    profile: "ocsp-signing",
                    cert_path: cfg.path(path),
                    key_label: Some(label.clone()),
                    target: Target::Ocsp,
                    manual: None,
                    last_error: Mutex::new(None),
                });
            }
            if let (Some(ra), Some(path), Some(label)) = (&ca.ra, &ac.ra_certificate, &ac.ra_key) {
                certs.push(OwnCert {
                    name: format!("ra:{}", ac.name),
                    kind: "ra",
                    ca: Some(ac.name.clone()),
                    profile: "ra",
                    cert_path: cfg.path(path),
                    key_label: Some(label.clone()),
                    target: Target::Ra(ra.clone()),
                    manual: None,
                    last_error: Mutex::new(None),
                });
            }
        }
        if let (Some(t), Some(id)) = (&cfg.server.tls, tls) {
            let leaf = id.chain().into_iter().next().unwrap_or_default();
            // Renewed only when privca issued it: a CA whose subject is its issuer holds
            // its record.
            let issuer = facts(&leaf).and_then(|(_, _, issuer_name)| {
                let serial = x509_cert::Certificate::from_der(&leaf)
                    .ok()?
                    .tbs_certificate()
                    .serial_number()
                    .as_bytes()
                    .to_vec();
                let rec = auth.store().get_cert(&serial).ok()??;
                let ca = auth.ca(&rec.issuer).ok()?;
                (ca.subject.to_string() == issuer_name).then(|| rec.issuer.clone())
            });
            let manual = match (&t.key, &issuer) {
                (None, _) => Some("key_file: a certificate the operator brings".to_string()),
                (_, None) => Some("not issued by this privca".to_string()),
                _ => None,
            };
            certs.push(OwnCert {
                name: "https".into(),
                kind: "tls",
                ca: issuer,
                profile: "tls-server",
                cert_path: cfg.path(&t.certificate),
                key_label: t.key.clone(),
                target: Target::Tls(id),
                manual,
                last_error: Mutex::new(None),
            });
        }
        // A renewed certificate must leave the margin, or it would be renewed at every
        // check.
        if r.enabled {
            for c in &certs {
                if c.manual.is_some() || c.kind == "tls" {
                    continue;
                }
                if let Some(p) = auth.profiles().get(c.profile)
                    && i64::from(p.config.validity_days) * 86_400 <= margin
                {
                    return Err(Error::Config(format!(
                        "[server.renewal] margin {} is not shorter than the {} days of profile {}, which renews {}",
                        r.margin, p.config.validity_days, c.profile, c.name
                    )));
                }
            }
        }
        Ok(Renewer {
            auth,
            keys,
            probe,
            certs,
            enabled: r.enabled,
            new_key: r.new_key,
            margin,
            interval: r.check_interval_seconds()?,
            tls_days: r.tls_days,
        })
    }

    /// The certificate and key of `c` in use now.
    fn current(&self, c: &OwnCert) -> Result<KeyWithCert, Error> {
        Ok(match &c.target {
            Target::Ocsp => {
                let name = c.ca.as_deref().unwrap_or_default();
                self.auth
                    .ca(name)?
                    .ocsp
                    .as_ref()
                    .ok_or_else(|| Error::Config(format!("authority {name} has no responder")))?
                    .current()
            }
            Target::Ra(r) => r.current(),
            Target::Tls(id) => KeyWithCert {
                cert_der: id.chain().into_iter().next().unwrap_or_default(),
                key: id.key(),
            },
        })
    }

    /// Every CA certificate and own certificate with its time to expiry.
    pub fn report(&self) -> Vec<Expiry> {
        let now = self.auth.now();
        let mut out = Vec::new();
        let line = |name: String,
                    kind: &'static str,
                    der: &[u8],
                    automatic: bool,
                    note: Option<String>| {
            let (serial, not_after, _) = facts(der)?;
            let left = not_after - now;
            let status = if left <= 0 {
                "expired"
            } else if left < self.margin {
                if automatic { "renewal-due" } else { "expiring" }
            } else {
                "ok"
            };
            Some(Expiry {
                name,
                kind,
                serial,
                not_after,
                days_left: left.div_euclid(86_400),
                status,
                renewal: if automatic { "automatic" } else { "manual" },
                note,
            })
        };
        for (name, ca) in self.auth.authorities() {
            out.extend(line(format!("ca:{name}"), "ca", &ca.cert_der, false, None));
        }
        for c in &self.certs {
            let Ok(cur) = self.current(c) else { continue };
            // A certificate cannot outlive its CA (RFC 5280 §6.1.3): once the CA itself
            // expires within the margin, a renewal would be due again at once, so the
            // CA is what an operator must renew or roll over.
            let ca_expiring =
                c.ca.as_deref()
                    .and_then(|n| self.auth.ca(n).ok())
                    .filter(|ca| ca.not_after - now < self.margin)
                    .map(|ca| {
                        format!(
                            "its CA {} expires within the margin: renew or roll over the CA",
                            ca.name
                        )
                    });
            let manual = c.manual.clone().or(ca_expiring);
            let automatic = self.enabled && manual.is_none();
            let note = manual.or_else(|| {
                c.last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
            });
            out.extend(line(c.name.clone(), c.kind, &cur.cert_der, automatic, note));
        }
        out
    }

    /// One check (blocking: keys, the store, files): renews what is due and warns, once
    /// per check, of every certificate inside the margin that privca does not renew.
    /// Returns the names of the certificates renewed.
    pub fn check(&self) -> Vec<String> {
        let mut renewed = Vec::new();
        for e in self.report() {
            match e.status {
                "expiring" | "expired" => tracing::warn!(
                    certificate = %e.name,
                    serial = %e.serial,
                    days_left = e.days_left,
                    note = e.note.as_deref().unwrap_or("-"),
                    "certificate expires within the renewal margin and is not renewed automatically"
                ),
                "renewal-due" => {
                    let Some(c) = self.certs.iter().find(|c| c.name == e.name) else {
                        continue;
                    };
                    match self.renew(c) {
                        Ok((old, new)) => {
                            *c.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
                            tracing::info!(certificate = %c.name, old_serial = %old, new_serial = %new, "renewed");
                            renewed.push(c.name.clone());
                        }
                        Err(err) => {
                            tracing::error!(certificate = %c.name, error = %err, "renewal failed; the current certificate stays in use, retrying at the next check");
                            *c.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
                                Some(format!("renewal failed: {}", safe_message(&err)));
                        }
                    }
                }
                _ => {}
            }
        }
        renewed
    }

    /// Renews one certificate (the steps in the module comment). Returns the old and
    /// the new serial, hex.
    fn renew(&self, c: &OwnCert) -> Result<(String, String), Error> {
        let ca =
            c.ca.clone()
                .ok_or_else(|| Error::Config(format!("{}: no issuing CA", c.name)))?;
        let cur = self.current(c)?;
        let cert = x509_cert::Certificate::from_der(&cur.cert_der)
            .map_err(|e| Error::Config(format!("{}: certificate: {e}", c.name)))?;
        let old_serial =
            ca_core::asn1::serial_hex(cert.tbs_certificate().serial_number().as_bytes());
        let algorithm = cur.key.algorithm();
        // 1. The key.
        let (key, label) = match (&c.key_label, self.new_key) {
            (Some(base), true) => {
                let label = format!("{base}.{}", self.auth.now());
                let uses = if c.kind == "ra" {
                    hsm::KeyUse::SignAndDecrypt
                } else {
                    hsm::KeyUse::Sign
                };
                (self.keys.generate_for(&label, algorithm, uses)?, label)
            }
            _ => (cur.key.clone(), cur.key.label().to_string()),
        };
        // 2. The certificate, durable and audited by the pipeline.
        let req = IssueRequest {
            profile: c.profile.to_string(),
            subject: cert.tbs_certificate().subject().clone(),
            sans: ca_core::enroll::cert_sans(&cert)?,
            spki_der: key.public_key_der().to_vec(),
            key_algorithm: algorithm,
            extensions: Vec::new(),
            requester: "renewal".into(),
            validity_days: (c.kind == "tls").then_some(self.tls_days),
            issuer: Some(ca.clone()),
        };
        let issued = self.auth.issue(&req)?;
        let new_der = issued.record.der.clone();
        let new_serial = ca_core::asn1::serial_hex(&issued.record.serial);
        self.auth.store().append_audit(&store::AuditEvent {
            time: self.auth.now(),
            action: "renew-own-certificate".into(),
            actor: "privca".into(),
            subject: new_serial.clone(),
            detail: format!(
                "{}: replaces {old_serial}; key {label}{}",
                c.name,
                if self.new_key { " (new)" } else { " (kept)" }
            ),
        })?;
        // 3. The file a restart reads.
        let mut text = format!("{}{label}\n", ca_core::authority::KEY_LABEL_LINE);
        text.push_str(&crate::admin::pem("CERTIFICATE", &new_der));
        let mut chain = vec![new_der.clone()];
        if c.kind == "tls" {
            // Leaf and the CAs above it, without the self-signed root (as `init` writes).
            let mut above = issued.chain.clone();
            if above.len() > 1 {
                above.pop();
            }
            for der in &above {
                text.push_str(&crate::admin::pem("CERTIFICATE", der));
            }
            chain.extend(above);
        }
        replace_file(&c.cert_path, text.as_bytes(), 0o644)?;
        // 4. In memory.
        let next = KeyWithCert {
            cert_der: new_der,
            key: key.clone(),
        };
        match &c.target {
            Target::Ocsp => self.auth.replace_ocsp_responder(&ca, next)?,
            Target::Ra(r) => r.replace(next),
            Target::Tls(id) => id.replace(chain, key.clone())?,
        }
        if let Some(p) = &self.probe {
            p.add(&c.name, key);
        }
        Ok((old_serial, new_serial))
    }

    /// Seconds between checks.
    pub fn interval(&self) -> i64 {
        self.interval
    }
}

/// The message of an error that is safe to show on `/healthz` (no paths or OS detail
/// for internal failures).
fn safe_message(e: &Error) -> String {
    match e {
        Error::Core(c) => c.client_message(),
        Error::Key(_) => "key backend error (see the log)".into(),
        Error::Store(_) => "store error (see the log)".into(),
        _ => "see the log".into(),
    }
}

/// Replaces `path` atomically: the bytes go to a temporary file beside it (mode `mode`),
/// which is synced and renamed over it; then the directory is synced, so that a crash
/// leaves the old or the new file, never a torn one.
pub fn replace_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.new"));
    let _ = std::fs::remove_file(&tmp);
    crate::init::write_new(&tmp, bytes, mode)?;
    std::fs::rename(&tmp, path)
        .map_err(|e| Error::io(format!("replacing {}", path.display()), e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("syncing {}", dir.display()), e))
}

/// Runs [`Renewer::check`] every check interval, on the blocking pool; the first check
/// comes one interval (at most a minute) after start, once the listeners serve.
pub async fn run(renewer: Arc<Renewer>) {
    let secs = u64::try_from(renewer.interval()).unwrap_or(3600);
    let every = std::time::Duration::from_secs(secs);
    let first = tokio::time::Instant::now() + std::time::Duration::from_secs(secs.min(60));
    let mut tick = tokio::time::interval_at(first, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let r = renewer.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || r.check()).await {
            tracing::error!(error = %e, "renewal check task failed");
        }
    }
}
