//! The EST service (RFC 7030 §4): endpoints, authentication and the operations, free of
//! HTTP so that it can be tested directly. [`crate::http`] maps it onto axum.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use ca_core::enroll::{Authentication, EnrollOutcome, EnrollmentRequest, HeldState, Requester};
use ca_core::{Authority, EnrollmentPolicy};

use crate::config::{AuthMode, ChannelBinding, EndpointConfig, EstConfig};
use crate::limits::PasswordLimiter;
use crate::password::{BasicCredentials, PasswordHash, parse_basic};
use crate::password_cache::PasswordCache;
use crate::peer::{ClientIdentity, TlsInfo, validate_client};
use crate::{Error, Result, encoding};

pub use crate::operation::{OPERATIONS, Operation};

/// One request as the HTTP layer hands it over.
#[derive(Clone, Debug, Default)]
pub struct EstRequest {
    /// The `Authorization` header, as received.
    pub authorization: Option<Vec<u8>>,
    /// The TLS connection facts (`None` on plain HTTP).
    pub tls: Option<TlsInfo>,
    /// The body.
    pub body: Vec<u8>,
    /// The peer address, for the audit log.
    pub peer: String,
}

/// What an operation answers.
#[derive(Debug)]
pub enum EstAnswer {
    /// certs-only PKCS#7, DER (cacerts, simpleenroll, simplereenroll).
    Certs(Vec<u8>),
    /// CsrAttrs, DER.
    CsrAttrs(Vec<u8>),
    /// serverkeygen: the PKCS#8 key (wiped on drop) and the certs-only PKCS#7.
    KeyAndCert {
        /// Unencrypted PKCS#8 PrivateKeyInfo (protected by TLS only, RFC 7030 §4.4.2).
        pkcs8: hsm::Secret,
        /// certs-only PKCS#7, DER.
        certs: Vec<u8>,
    },
    /// Held for approval: 202 with Retry-After (RFC 7030 §4.2.3).
    Pending {
        /// Seconds.
        retry_after: u32,
    },
}

/// A configured endpoint, ready to serve.
struct Endpoint {
    label: String,
    cfg: EndpointConfig,
    /// The enrollment policy ca-core applies to the endpoint's requests.
    policy: EnrollmentPolicy,
    accounts: Vec<BasicAccount>,
    /// What an unknown user name is checked against (as costly as the dearest account).
    decoy: Option<PasswordHash>,
    /// The decoy's PHC string (what an unknown user name is looked up in the password
    /// cache with; it never has an entry).
    decoy_phc: String,
    extra_anchors: Vec<Vec<u8>>,
    /// Certificates accepted as registration authorities (`ra_certificates`), DER.
    ra_certs: Vec<Vec<u8>>,
    cacerts: Vec<u8>,
    csrattrs: Vec<u8>,
}

/// One HTTP Basic account of an endpoint.
struct BasicAccount {
    username: String,
    hash: PasswordHash,
    /// The hash in PHC string form: what a cached check was made against.
    phc: String,
}

/// The EST service: every endpoint, over one authority.
pub struct EstService {
    auth: Arc<Authority>,
    endpoints: BTreeMap<String, Endpoint>,
    default_label: Option<String>,
    limiter: PasswordLimiter,
    password_cache: PasswordCache,
}

impl std::fmt::Debug for EstService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EstService")
            .field("endpoints", &self.endpoints.keys().collect::<Vec<_>>())
            .field("default", &self.default_label)
            .finish()
    }
}

/// Every certificate (DER) of the PEM bundles `files`; a relative path is taken from
/// `base_dir` (`Path::join` keeps an absolute one as it is).
fn read_cert_bundles(base_dir: &Path, files: &[std::path::PathBuf]) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for f in files {
        out.extend(read_cert_bundle(&base_dir.join(f))?);
    }
    Ok(out)
}

/// Reads every certificate of a PEM (or single DER) file
/// ([`ca_core::authority::read_cert_bundle`]), as an EST configuration error.
pub fn read_cert_bundle(path: &Path) -> Result<Vec<Vec<u8>>> {
    ca_core::authority::read_cert_bundle(path).map_err(|e| match e {
        ca_core::Error::Config(m) => Error::Config(m),
        other => other.into(),
    })
}

impl EstService {
    /// Builds the service: checks profiles against the authority, reads the client CA
    /// files (relative to `base_dir`), prepares cacerts and csrattrs.
    pub fn new(cfg: &EstConfig, base_dir: &Path, auth: Arc<Authority>) -> Result<EstService> {
        cfg.validate()?;
        let mut endpoints = BTreeMap::new();
        for (label, ep) in &cfg.endpoints {
            let profile = auth.profiles().get(&ep.profile).ok_or_else(|| {
                Error::Config(format!(
                    "endpoint {label}: no profile named {:?}",
                    ep.profile
                ))
            })?;
            // An enrollment channel never issues CA certificates (ca-core's rule).
            ep.policy(label).validate(&auth).map_err(|e| match e {
                ca_core::Error::Config(m) => Error::Config(m),
                other => Error::Core(other),
            })?;
            let chain = auth.chain(&profile.issuer)?;
            let extra = read_cert_bundles(base_dir, &ep.client_ca_files)?;
            let accounts = ep
                .accounts
                .iter()
                .map(|a| {
                    let hash = PasswordHash::parse(&a.password_hash)?;
                    Ok(BasicAccount {
                        username: a.username.clone(),
                        phc: hash.to_string(),
                        hash,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            // An unknown user costs one hash like the dearest known one; accounts with
            // different iteration counts can be told apart by timing, so say so.
            let decoy = accounts
                .iter()
                .map(|a| &a.hash)
                .max_by_key(|h| h.iterations())
                .map(PasswordHash::decoy);
            let decoy_phc = decoy.as_ref().map(|d| d.to_string()).unwrap_or_default();
            if accounts
                .iter()
                .any(|a| Some(a.hash.iterations()) != decoy.as_ref().map(|d| d.iterations()))
            {
                tracing::warn!(
                    endpoint = %label,
                    "EST accounts use different PBKDF2 iteration counts; response times tell them apart (re-hash them with one count)"
                );
            }
            let ra_certs = read_cert_bundles(base_dir, &ep.ra_certificates)?;
            endpoints.insert(
                label.clone(),
                Endpoint {
                    label: label.clone(),
                    cfg: ep.clone(),
                    policy: ep.policy(label),
                    accounts,
                    decoy,
                    decoy_phc,
                    ra_certs,
                    extra_anchors: extra,
                    cacerts: encoding::certs_only(&chain),
                    csrattrs: crate::csrattrs::for_profile(profile)?,
                },
            );
        }
        Ok(EstService {
            auth,
            endpoints,
            default_label: cfg.default_label().map(str::to_string),
            limiter: PasswordLimiter::new(cfg.password_limits.clone()),
            password_cache: PasswordCache::new(cfg.password_cache.clone())?,
        })
    }

    /// The authority.
    pub fn authority(&self) -> &Arc<Authority> {
        &self.auth
    }

    /// Every certificate a client certificate may chain to on some endpoint: privca's
    /// CAs (when an endpoint trusts them) and the configured client CA files. The HTTPS
    /// listener sends their subjects as acceptable CA names (RFC 8446 §4.2.4).
    pub fn client_trust_anchors(&self) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        if self.endpoints.values().any(|e| e.cfg.trust_privca) {
            out.extend(self.auth.authorities().values().map(|c| c.cert_der.clone()));
        }
        for e in self.endpoints.values() {
            for a in &e.extra_anchors {
                if !out.contains(a) {
                    out.push(a.clone());
                }
            }
        }
        out
    }

    /// Labels of the configured endpoints.
    pub fn labels(&self) -> Vec<String> {
        self.endpoints.keys().cloned().collect()
    }

    fn endpoint(&self, label: Option<&str>) -> Result<&Endpoint> {
        let label = match label {
            Some(l) => l,
            None => self.default_label.as_deref().ok_or_else(|| {
                Error::NotFound("no default EST endpoint; use /.well-known/est/<label>/".into())
            })?,
        };
        self.endpoints
            .get(label)
            .ok_or_else(|| Error::NotFound(format!("no EST endpoint {label:?}")))
    }

    /// Handles one operation; refusals are audited. Blocking (password hashing,
    /// signing, the store): call it from a blocking pool.
    pub fn handle(
        &self,
        label: Option<&str>,
        op: Operation,
        req: &EstRequest,
    ) -> Result<EstAnswer> {
        let subject = format!("{}/{}", label.unwrap_or("-"), op.name());
        let authenticated = std::cell::Cell::new(false);
        let result = self
            .endpoint(label)
            .and_then(|ep| self.handle_at(ep, op, req, &authenticated));
        if let Err(e) = &result {
            // ca-core audits its own refusals (issue-refused); audit the rest here. A
            // refusal before authentication succeeded (anyone can send those) is only
            // counted and summarised, so that it cannot fill the disk (issue item 6). A
            // rate-limited attempt is not even counted there: the limit itself is logged
            // when it starts, and each refusal at debug level.
            if matches!(e, Error::RateLimited { .. }) {
                tracing::debug!(peer = %req.peer, %subject, "EST password check refused: limited");
            } else if !authenticated.get() {
                self.auth.note_unauthenticated(
                    "est-refused",
                    &peer_source(&req.peer),
                    &format!("{subject}: {e}"),
                );
            } else if !matches!(e, Error::Core(_)) {
                let actor = format!("est peer {}", req.peer);
                self.auth
                    .audit_refusal("est-refused", &actor, &subject, &e.to_core());
            }
        }
        result
    }

    fn handle_at(
        &self,
        ep: &Endpoint,
        op: Operation,
        req: &EstRequest,
        authenticated: &std::cell::Cell<bool>,
    ) -> Result<EstAnswer> {
        match op {
            Operation::CaCerts => Ok(EstAnswer::Certs(ep.cacerts.clone())),
            Operation::CsrAttrs => Ok(EstAnswer::CsrAttrs(ep.csrattrs.clone())),
            Operation::FullCmc => Err(Error::NotImplemented(
                "fullcmc is not offered by this server (RFC 7030 §4.3 is optional)".into(),
            )),
            Operation::SimpleEnroll | Operation::SimpleReenroll | Operation::ServerKeyGen => {
                self.enroll(ep, op, req, authenticated)
            }
        }
    }

    fn enroll(
        &self,
        ep: &Endpoint,
        op: Operation,
        req: &EstRequest,
        authenticated: &std::cell::Cell<bool>,
    ) -> Result<EstAnswer> {
        if op == Operation::ServerKeyGen && !ep.cfg.server_keygen {
            return Err(Error::NotImplemented(format!(
                "serverkeygen is turned off on endpoint {}",
                ep.label
            )));
        }
        if op == Operation::ServerKeyGen && ep.cfg.require_approval {
            return Err(Error::NotImplemented(format!(
                "serverkeygen is not offered on endpoint {} because it holds requests for approval (the server keeps no private keys)",
                ep.label
            )));
        }
        let tls = req.tls.as_ref().ok_or_else(|| {
            Error::Forbidden("EST enrollment is served over HTTPS only (RFC 7030 §3.3)".into())
        })?;
        // 1. Authenticate (RFC 7030 §3.2.3, §3.3).
        let who = self.authenticate(ep, op, req, tls)?;
        authenticated.set(true);
        // 2. Decode and verify the CSR (proof of possession by its self-signature).
        let der = encoding::decode_body(&req.body)?;
        let csr = ca_core::csr::parse(&der).map_err(|e| {
            self.auth.observe_refusal(&ep.policy, e.kind());
            Error::BadRequest(e.client_message())
        })?;
        // 3. Channel binding (RFC 7030 §3.5 with RFC 9266 tls-exporter). A CSR that a
        //    registration authority forwards was bound (if at all) to the device's TLS
        //    session with the RA, which the RA checked (RFC 7030 §3.7); it cannot carry
        //    this connection's value.
        if !who.ra {
            check_binding(
                ep.cfg.channel_binding,
                csr.challenge_password.as_deref(),
                tls,
            )?;
        }
        // 4. Re-enrollment (RFC 7030 §4.2.2): the TLS client certificate is the one
        //    being renewed; ca-core applies the renewal rule. A registration authority
        //    re-enrolls on behalf of others (RFC 7030 §3.7): its CSRs carry the device's
        //    subject, not its own, so its certificate is not the one being renewed.
        let renewing = if op == Operation::SimpleReenroll && !who.ra {
            let id = who.cert.as_ref().ok_or_else(|| {
                Error::Forbidden(
                    "re-enrollment needs the current certificate as TLS client certificate".into(),
                )
            })?;
            Some(id.cert_der.clone())
        } else {
            None
        };
        let requester = format!("est:{}/{}", ep.label, who.name());
        if who.ra {
            tracing::info!(
                endpoint = %ep.label,
                ra = %who.name(),
                operation = op.name(),
                subject = %csr.subject,
                "EST request by a registration authority on behalf of another subject"
            );
        }
        // 5. One call to the enrollment core: renewal rule, approval, server-side key
        //    generation, issuance (all policy lives there).
        let hold_key = ep
            .cfg
            .require_approval
            .then(|| crate::approval::lookup_key(&ep.label, &csr.der));
        let outcome = self.auth.enroll(EnrollmentRequest {
            policy: &ep.policy,
            requester: Requester {
                name: requester,
                authentication: who.authentication(),
            },
            csr,
            renewing,
            replay_key: None,
            transaction_keys: Vec::new(),
            hold_key,
            profile: None,
            server_keygen: op == Operation::ServerKeyGen,
            challenge: None,
            hook: None,
        });
        // 6. The outcome in EST terms.
        match outcome {
            EnrollOutcome::Issued(issued) => {
                let certs = encoding::certs_only(&[issued.record.der]);
                Ok(match issued.key {
                    Some(key) => EstAnswer::KeyAndCert {
                        pkcs8: key.pkcs8_der,
                        certs,
                    },
                    None => EstAnswer::Certs(certs),
                })
            }
            EnrollOutcome::Pending(held) => match held.state {
                HeldState::Waiting => Ok(EstAnswer::Pending {
                    retry_after: ep.cfg.retry_after_seconds,
                }),
                HeldState::Rejected { note } => Err(Error::Forbidden(format!(
                    "the request was rejected by an administrator{}",
                    note.map(|n| format!(": {n}")).unwrap_or_default()
                ))),
            },
            EnrollOutcome::Refused(r) => Err(match r.error {
                // The pipeline's own refusal (audited there) or failure.
                Some(e) => Error::Core(e),
                None => Error::Refused(r),
            }),
        }
    }

    fn authenticate(
        &self,
        ep: &Endpoint,
        op: Operation,
        req: &EstRequest,
        tls: &TlsInfo,
    ) -> Result<Who> {
        let basic = match &req.authorization {
            Some(v) => parse_basic(v)?,
            None => None,
        };
        let ip = req
            .peer
            .parse::<SocketAddr>()
            .map(|a| a.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        // A registration authority (RFC 7030 §2.2, §3.7) authenticates by its TLS client
        // certificate and may then enroll and re-enroll for others; with auth = "both"
        // it also needs an account.
        if ep.cfg.has_ra()
            && let Some(ra) = self.ra_identity(ep, &tls.unverified_chain)?
        {
            let user = if ep.cfg.auth == AuthMode::Both {
                Some(self.check_basic(ep, basic, ip)?)
            } else {
                None
            };
            return Ok(Who {
                cert: Some(ra),
                user,
                ra: true,
            });
        }
        let uses_cert = op == Operation::SimpleReenroll || ep.cfg.auth != AuthMode::Basic;
        let cert = if tls.unverified_chain.is_empty() || !uses_cert {
            None
        } else {
            Some(validate_client(
                &self.auth,
                &tls.unverified_chain,
                ep.cfg.trust_privca || op == Operation::SimpleReenroll,
                if op == Operation::SimpleReenroll {
                    &[]
                } else {
                    &ep.extra_anchors
                },
            )?)
        };
        if op == Operation::SimpleReenroll {
            // RFC 7030 §4.2.2 / §3.3.2: the certificate being renewed authenticates.
            let Some(id) = cert else {
                return Err(Error::Unauthenticated(
                    "re-enrollment needs the current certificate as TLS client certificate".into(),
                ));
            };
            if id.privca_serial.is_none() {
                return Err(Error::Forbidden(
                    "re-enrollment needs a certificate issued by this CA".into(),
                ));
            }
            let user = if ep.cfg.auth == AuthMode::Both {
                Some(self.check_basic(ep, basic, ip)?)
            } else {
                None
            };
            return Ok(Who {
                cert: Some(id),
                user,
                ra: false,
            });
        }
        match ep.cfg.auth {
            AuthMode::ClientCert => match cert {
                Some(id) => Ok(Who {
                    cert: Some(id),
                    user: None,
                    ra: false,
                }),
                None => Err(Error::Forbidden(
                    "this endpoint needs a TLS client certificate".into(),
                )),
            },
            AuthMode::Basic => Ok(Who {
                cert: None,
                user: Some(self.check_basic(ep, basic, ip)?),
                ra: false,
            }),
            AuthMode::Both => {
                let user = self.check_basic(ep, basic, ip)?;
                let id = cert.ok_or_else(|| {
                    Error::Forbidden("this endpoint needs a TLS client certificate as well".into())
                })?;
                Ok(Who {
                    cert: Some(id),
                    user: Some(user),
                    ra: false,
                })
            }
            AuthMode::Either => match cert {
                Some(id) => Ok(Who {
                    cert: Some(id),
                    user: None,
                    ra: false,
                }),
                None => Ok(Who {
                    cert: None,
                    user: Some(self.check_basic(ep, basic, ip)?),
                    ra: false,
                }),
            },
        }
    }

    /// Checks HTTP Basic credentials (RFC 7617) against the endpoint's accounts, under
    /// the password limits (issue 9 item 5): a limited address or account is refused
    /// with 429 before any hashing; an unknown user name costs one hash like a known one.
    fn check_basic(
        &self,
        ep: &Endpoint,
        basic: Option<BasicCredentials>,
        ip: IpAddr,
    ) -> Result<String> {
        let creds = basic
            .ok_or_else(|| Error::Unauthenticated("HTTP Basic credentials are required".into()))?;
        if let Err(l) = self
            .limiter
            .check(&ep.label, &creds.username, ip, Instant::now())
        {
            return Err(Error::RateLimited {
                retry_after: l.retry_after,
            });
        }
        let found = ep.accounts.iter().find(|a| a.username == creds.username);
        let password = creds.password.as_bytes();
        // A password PBKDF2 verified before for this account, against its current hash
        // and within the TTL, is not hashed again (issue 13 item 3). The lookup runs for
        // unknown user names too (with the decoy's hash string; they never have an
        // entry), so that both take the same steps up to the full hash.
        let tag = self.password_cache.tag(password);
        let phc = found.map_or(ep.decoy_phc.as_str(), |a| a.phc.as_str());
        let cached = self
            .password_cache
            .hit(&ep.label, &creds.username, phc, &tag, Instant::now());
        // Otherwise hash, even for an unknown user, so that timing does not tell which
        // users exist; a wrong password costs the full hash whatever the cache holds.
        let ok = match found {
            Some(_) if cached => true,
            Some(a) => {
                let ok = a.hash.verify(password);
                if ok {
                    self.password_cache.insert(
                        &ep.label,
                        &creds.username,
                        &a.phc,
                        &tag,
                        Instant::now(),
                    );
                }
                ok
            }
            None => {
                if let Some(d) = &ep.decoy {
                    let _ = d.verify(password);
                }
                false
            }
        };
        let now = Instant::now();
        if ok {
            self.limiter.succeeded(&ep.label, &creds.username, ip, now);
            Ok(creds.username)
        } else {
            for kind in self.limiter.failed(&ep.label, &creds.username, ip, now) {
                let limits = self.limiter.settings();
                if kind == "address" {
                    tracing::warn!(
                        endpoint = %ep.label,
                        %ip,
                        failures = limits.address_failures,
                        seconds = limits.window_seconds,
                        "EST password checks from this address are limited after repeated failures"
                    );
                } else {
                    tracing::warn!(
                        endpoint = %ep.label,
                        user = ?creds.username,
                        failures = limits.account_failures,
                        seconds = limits.window_seconds,
                        "EST password checks for this account are limited after repeated failures (its known clients may still log in)"
                    );
                }
            }
            Err(Error::Unauthenticated("wrong user name or password".into()))
        }
    }

    /// The registration authority a client chain identifies on this endpoint, if any:
    /// a leaf listed in `ra_certificates` (within its validity; not revoked when privca
    /// issued it), or, with `ra_eku`, a certificate that passes the endpoint's client
    /// checks and carries id-kp-cmcRA (RFC 6402 §2.10).
    fn ra_identity(&self, ep: &Endpoint, chain: &[Vec<u8>]) -> Result<Option<ClientIdentity>> {
        let Some(leaf) = chain.first() else {
            return Ok(None);
        };
        if ep.ra_certs.contains(leaf) {
            let cert = <x509_cert::Certificate as der::Decode>::from_der(leaf)
                .map_err(|_| Error::Forbidden("the client certificate does not decode".into()))?;
            let tbs = cert.tbs_certificate();
            let now = self.auth.now();
            let (nb, na) = (
                ca_core::asn1::unix_of(&tbs.validity().not_before),
                ca_core::asn1::unix_of(&tbs.validity().not_after),
            );
            if now < nb || now > na {
                return Err(Error::Forbidden(
                    "the registration authority certificate is expired or not yet valid".into(),
                ));
            }
            let serial = tbs.serial_number().as_bytes().to_vec();
            let mut privca_serial = None;
            if let Ok(Some(record)) = self.auth.issued_certificate(leaf) {
                if record.revocation.is_some() {
                    return Err(Error::Forbidden(
                        "the registration authority certificate is revoked".into(),
                    ));
                }
                privca_serial = Some(ca_core::asn1::serial_hex(&serial));
            }
            return Ok(Some(ClientIdentity {
                cert_der: leaf.clone(),
                subject: tbs.subject().to_string(),
                privca_serial,
                cert,
            }));
        }
        if ep.cfg.ra_eku
            && let Ok(id) =
                validate_client(&self.auth, chain, ep.cfg.trust_privca, &ep.extra_anchors)
            && crate::peer::has_eku(&id.cert, crate::peer::ID_KP_CMC_RA)
        {
            return Ok(Some(id));
        }
        Ok(None)
    }
}

/// Who an enrollment was authenticated as.
struct Who {
    cert: Option<ClientIdentity>,
    user: Option<String>,
    /// The certificate is an authorised registration authority's (RFC 7030 §3.7).
    ra: bool,
}

impl Who {
    /// How the requester authenticated, for the enrollment core.
    fn authentication(&self) -> Authentication {
        match (self.ra, &self.cert, &self.user) {
            (true, _, _) => Authentication::RegistrationAuthority,
            (false, Some(_), Some(_)) => Authentication::ClientCertificateAndPassword,
            (false, Some(_), None) => Authentication::ClientCertificate,
            (false, None, _) => Authentication::Password,
        }
    }

    fn name(&self) -> String {
        if self.ra
            && let Some(c) = &self.cert
        {
            let id = match &c.privca_serial {
                Some(s) => format!("ra:cert:{s}"),
                None => format!("ra:cert:{}", c.subject),
            };
            return match &self.user {
                Some(u) => format!("{id}+{u}"),
                None => id,
            };
        }
        match (&self.user, &self.cert) {
            (Some(u), _) => u.clone(),
            (None, Some(c)) => match &c.privca_serial {
                Some(s) => format!("cert:{s}"),
                None => format!("cert:{}", c.subject),
            },
            (None, None) => "anonymous".into(),
        }
    }
}

/// Checks a CSR's challengePassword against the connection's RFC 9266 tls-exporter
/// value (base64, the form RFC 7030 §3.5 uses for tls-unique).
pub fn check_binding(policy: ChannelBinding, challenge: Option<&str>, tls: &TlsInfo) -> Result<()> {
    if policy == ChannelBinding::Off {
        return Ok(());
    }
    let Some(value) = challenge else {
        return if policy == ChannelBinding::Required {
            Err(Error::Forbidden(
                "this endpoint requires the tls-exporter channel binding in challengePassword (see docs/est.md)".into(),
            ))
        } else {
            Ok(())
        };
    };
    let Some(exporter) = tls.exporter else {
        return Err(Error::Forbidden(
            "the CSR carries a channel binding but this connection has no tls-exporter value"
                .into(),
        ));
    };
    let presented = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| {
            Error::Forbidden("challengePassword is not a base64 tls-exporter value".into())
        })?;
    if !hsm::ct_eq(&presented, &exporter) {
        return Err(Error::Forbidden(
            "channel binding mismatch: challengePassword is not this connection's tls-exporter value".into(),
        ));
    }
    Ok(())
}

/// The source of an unauthenticated refusal: the client's IP address (without the port,
/// so that one client's connections count together).
pub(crate) fn peer_source(peer: &str) -> String {
    peer.parse::<std::net::SocketAddr>()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| peer.chars().take(64).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn binding_rules() {
        let tls = TlsInfo {
            exporter: Some([7u8; 32]),
            ..TlsInfo::default()
        };
        let good = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let bad = base64::engine::general_purpose::STANDARD.encode([8u8; 32]);
        assert!(check_binding(ChannelBinding::Optional, None, &tls).is_ok());
        assert!(check_binding(ChannelBinding::Required, None, &tls).is_err());
        assert!(check_binding(ChannelBinding::Required, Some(&good), &tls).is_ok());
        assert!(check_binding(ChannelBinding::Optional, Some(&bad), &tls).is_err());
        assert!(check_binding(ChannelBinding::Optional, Some("x"), &tls).is_err());
        assert!(check_binding(ChannelBinding::Off, Some("x"), &tls).is_ok());
        assert!(check_binding(ChannelBinding::Optional, Some(&good), &TlsInfo::default()).is_err());
    }

    /// A service with one HTTP Basic endpoint `basic` (account `alice`, password
    /// `right`) over an in-memory authority, with these password limits.
    fn basic_service(limits: crate::config::PasswordLimits) -> EstService {
        let ca = ca_core::testing::TestCa::new();
        let hash = PasswordHash::new(b"right", crate::password::MIN_ITERATIONS).unwrap();
        let ep = EndpointConfig {
            profile: "tls-server".into(),
            auth: AuthMode::Basic,
            accounts: vec![crate::config::Account {
                username: "alice".into(),
                password_hash: hash.to_string(),
            }],
            trust_privca: true,
            client_ca_files: Vec::new(),
            require_approval: false,
            retry_after_seconds: 60,
            server_keygen: true,
            channel_binding: ChannelBinding::Optional,
            ra_eku: false,
            ra_certificates: Vec::new(),
        };
        let cfg = EstConfig {
            default_endpoint: None,
            endpoints: [("basic".to_string(), ep)].into(),
            password_limits: limits,
            password_cache: Default::default(),
        };
        EstService::new(&cfg, Path::new("."), ca.auth).unwrap()
    }

    fn creds(user: &str, password: &str) -> Option<BasicCredentials> {
        Some(BasicCredentials {
            username: user.into(),
            password: zeroize::Zeroizing::new(password.into()),
        })
    }

    const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

    #[test]
    fn a_wrong_password_after_a_cached_good_one_is_refused() {
        let svc = basic_service(Default::default());
        let ep = svc.endpoint(Some("basic")).unwrap();
        assert!(svc.password_cache.is_empty());
        assert_eq!(
            svc.check_basic(ep, creds("alice", "right"), IP).unwrap(),
            "alice"
        );
        assert_eq!(svc.password_cache.len(), 1, "the success is remembered");
        assert_eq!(
            svc.check_basic(ep, creds("alice", "right"), IP).unwrap(),
            "alice"
        );
        for wrong in ["wrong", "right ", "", "Right"] {
            let e = svc.check_basic(ep, creds("alice", wrong), IP).unwrap_err();
            assert!(
                matches!(&e, Error::Unauthenticated(m) if m == "wrong user name or password"),
                "{e:?}"
            );
        }
        // Failures are not remembered, and the good entry stays.
        assert_eq!(svc.password_cache.len(), 1);
        assert_eq!(
            svc.check_basic(ep, creds("alice", "right"), IP).unwrap(),
            "alice"
        );
    }

    #[test]
    fn an_unknown_user_is_refused_like_a_wrong_password_and_never_cached() {
        let svc = basic_service(Default::default());
        let ep = svc.endpoint(Some("basic")).unwrap();
        svc.check_basic(ep, creds("alice", "right"), IP).unwrap();
        let wrong = svc.check_basic(ep, creds("alice", "x"), IP).unwrap_err();
        // The unknown user presents alice's (cached) password, twice.
        for _ in 0..2 {
            let unknown = svc
                .check_basic(ep, creds("mallory", "right"), IP)
                .unwrap_err();
            assert_eq!(format!("{unknown:?}"), format!("{wrong:?}"));
        }
        assert_eq!(svc.password_cache.len(), 1, "only alice's success is kept");
    }

    #[test]
    fn failures_stay_limited_when_the_password_is_cached() {
        let svc = basic_service(crate::config::PasswordLimits {
            address_failures: 3,
            ..Default::default()
        });
        let ep = svc.endpoint(Some("basic")).unwrap();
        svc.check_basic(ep, creds("alice", "right"), IP).unwrap();
        for _ in 0..3 {
            assert!(matches!(
                svc.check_basic(ep, creds("alice", "wrong"), IP),
                Err(Error::Unauthenticated(_))
            ));
        }
        // The limited address is refused before the cache is consulted, even with the
        // right password.
        assert!(matches!(
            svc.check_basic(ep, creds("alice", "right"), IP),
            Err(Error::RateLimited { .. })
        ));
        let other = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 99));
        assert_eq!(
            svc.check_basic(ep, creds("alice", "right"), other).unwrap(),
            "alice"
        );
    }
}
