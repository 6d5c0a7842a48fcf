//! The SCEP service of one endpoint (RFC 8894 §3.3, §4): decodes a pkiMessage, checks
//! who may enroll, hands a normalised request to ca-core, and builds the CertRep.
//! Blocking work (RSA, the store) runs on the blocking pool.

use std::sync::Arc;

use std::sync::Mutex;

use ca_core::csr::{Csr, CsrOptions};
use ca_core::enroll::{
    Authentication, EnrollOutcome, EnrollmentRequest, Held, HeldState, IssuanceHook, Refusal,
    Requester,
};
use ca_core::{Authority, CaEntity, EnrollmentPolicy, KeyWithCert, Renewable};
use der::{Decode, Encode};
use tokio::runtime::Handle;
use x509_cert::Certificate;

use crate::challenge::{
    ChallengeMethod, EnrollKind, EnrollmentContext, FailInfo, Rejection, Verdict,
};
use crate::codec::{
    self, DecodeOptions, Decoded, MessageType, PkiRequest, PkiStatus, Recipient, ReplySigner,
    ReplyTo,
};
use crate::config::EndpointConfig;
use crate::{Error, Result};

/// The answer to GetCACert (RFC 8894 §4.2.1).
#[derive(Clone, Debug)]
pub struct CaCertAnswer {
    /// `application/x-x509-ca-cert` or the configured CA+RA type.
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
}

/// One configured SCEP endpoint, ready to serve.
pub struct Endpoint {
    name: String,
    config: EndpointConfig,
    /// The enrollment policy ca-core applies to the endpoint's requests.
    policy: EnrollmentPolicy,
    auth: Arc<Authority>,
    ca: Arc<CaEntity>,
    /// Signs replies and opens envelopes: the RA, or the CA itself. The CA's RA is
    /// shared with the server's renewal task: after a renewal the new RA is announced and
    /// signs, and the previous one still opens envelopes addressed to it.
    ra: Renewable,
    ra_is_ca: bool,
    next: Option<(Arc<CaEntity>, Option<Renewable>)>,
    method: Arc<dyn ChallengeMethod>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("ca", &self.ca.name)
            .field("method", &self.method.name())
            .finish()
    }
}

fn facts(der: &[u8]) -> Result<Certificate> {
    Certificate::from_der(der).map_err(|e| Error::Config(format!("certificate: {e}")))
}

/// keyUsage bits of a certificate (RFC 5280 §4.2.1.3), if it has the extension.
fn key_usage(cert: &Certificate) -> Option<der::flagset::FlagSet<x509_cert::ext::pkix::KeyUsages>> {
    cert.tbs_certificate()
        .get_extension::<x509_cert::ext::pkix::KeyUsage>()
        .ok()
        .flatten()
        .map(|(_, ku)| ku.0)
}

impl Endpoint {
    /// Builds an endpoint. `ra` is a per-endpoint RA (already loaded by the server); without
    /// one the CA's RA is used, and without that the CA's own key when it is RSA.
    pub fn new(
        name: &str,
        config: EndpointConfig,
        auth: Arc<Authority>,
        ra: Option<KeyWithCert>,
        method: Arc<dyn ChallengeMethod>,
    ) -> Result<Endpoint> {
        config.validate(name)?;
        let policy = config.policy(name);
        let profile = auth.profiles().get(&config.profile).ok_or_else(|| {
            Error::Config(format!(
                "SCEP endpoint {name}: no profile named {}",
                config.profile
            ))
        })?;
        for p in policy.profiles() {
            if !auth.profiles().contains_key(p) {
                return Err(Error::Config(format!(
                    "SCEP endpoint {name}: no profile named {p}"
                )));
            }
        }
        let ca_name = config.ca.clone().unwrap_or_else(|| profile.issuer.clone());
        let ca = auth.ca(&ca_name)?.clone();
        // GetCACert must announce the CA that actually issues.
        for p in policy.profiles() {
            if let Some(pr) = auth.profiles().get(p)
                && pr.issuer != ca.name
            {
                return Err(Error::Config(format!(
                    "SCEP endpoint {name}: profile {p} issues from {}, not from the endpoint's CA {}",
                    pr.issuer, ca.name
                )));
            }
        }
        let (ra, ra_is_ca) = match ra.map(Renewable::new).or_else(|| ca.ra.clone()) {
            Some(ra) => (ra, false),
            None => (
                Renewable::new(KeyWithCert {
                    cert_der: ca.cert_der.clone(),
                    key: ca.key.clone(),
                }),
                true,
            ),
        };
        let ra_now = ra.current();
        if !ra_now.key.algorithm().is_rsa() {
            return Err(Error::Config(format!(
                "SCEP endpoint {name}: the RA (or CA) key must be RSA to decrypt requests; \
                 configure an RA certificate"
            )));
        }
        let ra_cert = facts(&ra_now.cert_der)?;
        if let Some(ku) = key_usage(&ra_cert) {
            use x509_cert::ext::pkix::KeyUsages as K;
            if !ku.contains(K::DigitalSignature) || !ku.contains(K::KeyEncipherment) {
                return Err(Error::Config(format!(
                    "SCEP endpoint {name}: the RA certificate needs keyUsage digitalSignature \
                     and keyEncipherment (RFC 8894 §2.1.2)"
                )));
            }
        }
        let next = match &config.next_ca {
            Some(n) => {
                let e = auth.ca(n)?.clone();
                let r = e.ra.clone();
                Some((e, r))
            }
            None => None,
        };
        Ok(Endpoint {
            name: name.to_string(),
            policy,
            config,
            auth,
            ca,
            ra,
            ra_is_ca,
            next,
            method,
        })
    }

    /// The endpoint's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its configuration.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// GetCACaps (RFC 8894 §3.5.2), one keyword per line.
    pub fn caps(&self) -> String {
        let mut caps = if self.config.advertise_aes {
            vec!["AES", "DES3"]
        } else {
            vec!["DES3"]
        };
        if self.next.is_some() {
            caps.push("GetNextCACert");
        }
        caps.push("POSTPKIOperation");
        if self.config.renewal {
            caps.push("Renewal");
        }
        // Exactly the digests the request verifier accepts (one list, codec::DIGESTS).
        caps.extend(codec::DigestAlg::caps_keywords(&self.decode_options()));
        if self.config.advertise_aes {
            caps.push("SCEPStandard");
        }
        let mut s = caps.join("\n");
        s.push('\n');
        s
    }

    /// GetCACert (RFC 8894 §4.2.1): the CA certificate alone, or CA + RA (+ chain) as a
    /// certs-only SignedData with the RA first (clients that take the first certificate
    /// encrypt to it; docs/client-quirks.md).
    pub fn ca_cert(&self) -> Result<CaCertAnswer> {
        if self.ra_is_ca && self.ca.parent.is_none() {
            return Ok(CaCertAnswer {
                content_type: "application/x-x509-ca-cert".into(),
                body: self.ca.cert_der.clone(),
            });
        }
        let chain = self.auth.chain(&self.ca.name)?;
        let ra = self.ra.current();
        let mut certs: Vec<&[u8]> = Vec::new();
        if !self.ra_is_ca {
            certs.push(&ra.cert_der);
        }
        if self.config.ca_cert_chain || self.ra_is_ca {
            certs.extend(chain.iter().map(Vec::as_slice));
        }
        Ok(CaCertAnswer {
            content_type: self.config.ca_ra_content_type.clone(),
            body: codec::certs_only(&certs, &[]),
        })
    }

    /// GetNextCACert (RFC 8894 §4.6): the rollover CA (and its RA) in a certs-only
    /// SignedData, wrapped in a SignedData signed by the current RA. `None` when no next
    /// CA is configured.
    pub async fn next_ca_cert(&self) -> Result<Option<Vec<u8>>> {
        let Some((next, next_ra)) = &self.next else {
            return Ok(None);
        };
        let next_ra = next_ra.as_ref().map(Renewable::current);
        let mut certs: Vec<&[u8]> = Vec::new();
        if let Some(r) = &next_ra {
            certs.push(&r.cert_der);
        }
        certs.push(&next.cert_der);
        let inner = codec::certs_only(&certs, &[]);
        let ra = self.ra.current();
        let out = tokio::task::spawn_blocking(move || {
            let nonce = codec::fresh_nonce();
            codec::sign_message(
                Some(&inner),
                &codec::OutAttributes {
                    message_type: MessageType::CertRep,
                    transaction_id: "GetNextCACert",
                    sender_nonce: &nonce,
                    recipient_nonce: None,
                    status: None,
                },
                &ReplySigner {
                    cert_der: &ra.cert_der,
                    key: ra.key.as_ref(),
                },
                codec::DigestAlg::Sha256,
                hsm::SignatureScheme::RsaPkcs1Sha256,
                &[],
            )
        })
        .await
        .map_err(|e| Error::Reply(format!("task: {e}")))??;
        Ok(Some(out))
    }

    fn decode_options(&self) -> DecodeOptions {
        DecodeOptions {
            allow_des: self.config.allow_des,
            allow_md5: self.config.allow_md5,
        }
    }

    /// PKIOperation (RFC 8894 §4.3): a CertRep for the message, or an error when no
    /// CertRep can be built (the HTTP layer answers 400). One trip to the blocking pool
    /// per request: decoding, authentication, enrollment and the reply run in one blocking
    /// closure, which carries the request's deadline ([`ca_core::deadline`]); the
    /// challenge method's network calls are driven from there on the runtime.
    pub async fn pki_operation(self: &Arc<Self>, body: Vec<u8>) -> Result<Vec<u8>> {
        let me = self.clone();
        let handle = tokio::runtime::Handle::current();
        // The request's span (method, path, request id) goes along, so that everything
        // logged on the blocking thread belongs to the request.
        let span = tracing::Span::current();
        ca_core::deadline::spawn_blocking(move || span.in_scope(|| me.pki_blocking(&handle, &body)))
            .await
            .map_err(|e| Error::Reply(format!("task: {e}")))?
    }

    fn pki_blocking(&self, rt: &Handle, body: &[u8]) -> Result<Vec<u8>> {
        // The current RA, the one it replaced (clients that fetched GetCACert before the
        // renewal still encrypt to it), and the next CA's RA.
        let ra = self.ra.generations();
        let next_ra = match &self.next {
            Some((_, Some(r))) => Some(r.current()),
            _ => None,
        };
        let mut recipients = vec![Recipient {
            cert_der: &ra.current.cert_der,
            key: ra.current.key.as_ref(),
        }];
        for r in ra.previous.iter().chain(next_ra.iter()) {
            recipients.push(Recipient {
                cert_der: &r.cert_der,
                key: r.key.as_ref(),
            });
        }
        let decoded = match codec::decode_request(body, &recipients, &self.decode_options()) {
            Ok(d) => d,
            Err(e) if e.is_unavailable() => {
                // The RA key could not be used (token gone): the server's failure, not a
                // bad request.
                self.auth.audit_refusal(
                    "scep-key-backend-unavailable",
                    &self.policy.channel.to_string(),
                    "-",
                    &ca_core::Error::Unavailable(format!("key backend: {e}")),
                );
                return Err(e);
            }
            Err(e) => {
                let detail = match &e {
                    Error::Authority(c) => c.reason(),
                    other => other.to_string(),
                };
                self.audit("scep-refused", "-", &detail);
                return Err(e);
            }
        };
        match decoded {
            Decoded::Refused {
                reply_to,
                message_type,
                fail_info,
                text,
                detail,
            } => {
                // The audit entry gets the detail; the client gets `text` only.
                let what = message_type.map_or("-".to_string(), |m| m.to_string());
                self.audit(
                    "scep-refused",
                    &reply_to.transaction_id,
                    &format!("{what}: {detail}"),
                );
                self.reply(&reply_to, PkiStatus::Failure(fail_info, Some(text)), None)
            }
            Decoded::Request(req) => {
                tracing::info!(
                    endpoint = %self.name,
                    message_type = %req.message_type,
                    transaction = %req.reply_to.transaction_id,
                    cipher = ?req.reply_to.cipher,
                    digest = ?req.reply_to.digest,
                    "SCEP request"
                );
                self.handle(rt, *req)
            }
        }
    }

    /// A refusal before the request authenticated (undecodable message, bad signature,
    /// wrong challenge, unknown transaction: anyone can send those): counted per endpoint
    /// and summarised in the audit log, not audited one by one (issue item 6).
    fn audit(&self, action: &str, transaction: &str, detail: &str) {
        self.auth.note_unauthenticated(
            action,
            &self.policy.channel.to_string(),
            &format!("transaction {transaction}: {detail}"),
        );
    }

    /// A refusal of a request that passed its challenge (or renewal) check: audited.
    fn audit_authenticated(&self, action: &str, transaction: &str, detail: &str) {
        self.auth.audit_refusal(
            action,
            &self.policy.channel.to_string(),
            transaction,
            &ca_core::Error::BadRequest(detail.to_string()),
        );
    }

    fn reply(
        &self,
        reply_to: &ReplyTo,
        status: PkiStatus,
        degenerate: Option<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        let ra = self.ra.current();
        codec::cert_rep(
            reply_to,
            &status,
            degenerate.as_deref(),
            &ReplySigner {
                cert_der: &ra.cert_der,
                key: ra.key.as_ref(),
            },
        )
    }

    fn fail(&self, req: &PkiRequest, why: &Rejection) -> Result<Vec<u8>> {
        self.audit(
            "scep-refused",
            &req.reply_to.transaction_id,
            &format!("{}: {}", req.message_type, why.detail),
        );
        self.reply(
            &req.reply_to,
            PkiStatus::Failure(why.fail_info, Some(why.client_text.clone())),
            None,
        )
    }

    /// [`Self::fail`] for a request that authenticated: the refusal is audited.
    fn fail_authenticated(&self, req: &PkiRequest, why: &Rejection) -> Result<Vec<u8>> {
        self.audit_authenticated(
            "scep-refused",
            &req.reply_to.transaction_id,
            &format!("{:?}: {}", req.message_type, why.detail),
        );
        self.reply(
            &req.reply_to,
            PkiStatus::Failure(why.fail_info, Some(why.client_text.clone())),
            None,
        )
    }

    fn success_with_cert(&self, req: &PkiRequest, cert_der: &[u8]) -> Result<Vec<u8>> {
        let chain = self.auth.chain(&self.ca.name)?;
        let mut certs: Vec<&[u8]> = vec![cert_der];
        certs.extend(chain.iter().map(Vec::as_slice));
        let d = codec::certs_only(&certs, &[]);
        self.reply(&req.reply_to, PkiStatus::Success, Some(d))
    }

    /// The durable key of a transaction: endpoint, transactionID and signer key hash
    /// (transaction IDs are not unique in the wild; docs/client-quirks.md).
    fn transaction_key(&self, req: &PkiRequest) -> String {
        format!(
            "scep:{}:{}:{}",
            self.name,
            req.reply_to.transaction_id,
            req.signer.key_hash()
        )
    }

    /// The key that recognises a retransmission of the same request: the transaction key
    /// plus the hash of the signer certificate and of the CSR. A new request in the same
    /// transaction (micromdm's transactionID is the key hash, so a re-enrollment or a
    /// renewal with the same key reuses it) gets a new certificate.
    fn replay_key(&self, req: &PkiRequest) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update((req.signer.cert_der.len() as u64).to_be_bytes());
        h.update(&req.signer.cert_der);
        h.update(&req.message_data);
        format!(
            "{}:{}",
            self.transaction_key(req),
            hex::encode(h.finalize())
        )
    }

    fn handle(&self, rt: &Handle, req: PkiRequest) -> Result<Vec<u8>> {
        match req.message_type {
            MessageType::PkcsReq | MessageType::RenewalReq | MessageType::UpdateReq => {
                self.enroll(rt, req)
            }
            MessageType::CertPoll => self.poll(rt, req),
            MessageType::GetCert => self.get_cert(req),
            MessageType::GetCrl => self.get_crl(req),
            MessageType::CertRep => {
                self.fail(&req, &Rejection::bad_request("a CertRep is not a request"))
            }
        }
    }

    /// The SCEP answer to a refusal of the enrollment core: its failInfo from the one
    /// mapping of error kinds (or the method's own rejection when the method withheld
    /// the certificate); an error (HTTP 503) when the kind has no failInfo (the key
    /// backend is down, the request's time ran out: nothing was issued).
    fn rejection(&self, r: Refusal, withheld: Option<Rejection>) -> Result<Rejection> {
        if let Some(why) = withheld {
            return Ok(why);
        }
        let Some(fail_info) = r.kind.answer().scep else {
            return Err(Error::Authority(
                r.error
                    .unwrap_or_else(|| ca_core::Error::Unavailable(r.detail.clone())),
            ));
        };
        Ok(Rejection {
            fail_info,
            client_text: r
                .client_text
                .trim_start_matches("unauthorized: ")
                .to_string(),
            detail: r.detail,
        })
    }

    fn enroll(&self, rt: &Handle, req: PkiRequest) -> Result<Vec<u8>> {
        let key = self.transaction_key(&req);
        let replay = self.replay_key(&req);
        // The codec has checked the CSR's DER and signature; what fails here concerns
        // what the (unaltered) CSR asks for.
        let csr = match ca_core::csr::parse_with(&req.message_data, CsrOptions { allow_sha1: true })
        {
            Ok(c) => c,
            Err(e) => {
                self.auth.observe_refusal(&self.policy, e.kind());
                let mut why = Rejection::bad_request(format!("CSR: {}", e.reason()));
                why.fail_info = e.answer().scep.unwrap_or(FailInfo::BadRequest);
                return self.fail(&req, &why);
            }
        };
        // Initial enrollment or renewal: a request signed by a certificate we issued is a
        // renewal whatever its messageType (macOS and certnanny renew with PKCSReq).
        let ours = self.auth.issued_certificate(&req.signer.cert_der)?;
        let kind = if ours.is_some() {
            EnrollKind::Renewal
        } else {
            EnrollKind::Initial
        };
        let mut ctx = EnrollmentContext {
            endpoint: self.name.clone(),
            transaction_id: req.reply_to.transaction_id.clone(),
            kind,
            renewal_of: ours.as_ref().map(|r| ca_core::asn1::serial_hex(&r.serial)),
            csr,
        };
        let hook = MethodHook::new(self.method.as_ref(), rt, &ctx);
        // A replay of a completed request gets the same certificate (delivered again: the
        // method may still withhold it, since its first delivery may not have finished).
        // A transaction whose certificate was revoked (withheld, or revoked by an
        // administrator) is finished: repeating it starts over.
        match self
            .auth
            .replayed(&self.policy.channel, &replay, &ctx.csr, Some(&hook))?
        {
            Some(EnrollOutcome::Issued(e)) => {
                tracing::info!(transaction = %req.reply_to.transaction_id, "replayed SCEP transaction answered with its certificate");
                return self.success_with_cert(&req, &e.record.der);
            }
            Some(EnrollOutcome::Refused(r)) => {
                let why = self.rejection(r, hook.take_withheld().map(|w| w.0))?;
                rt.block_on(self.method.failed(&ctx, &why));
                return self.fail_authenticated(&req, &why);
            }
            Some(EnrollOutcome::Pending(_)) | None => {}
        }
        // Checks that do not involve the method: a renewal must be signed by a valid
        // certificate this CA issued and keep its names (the one renewal rule of
        // ca-core); an initial enrollment must be signed with the CSR's key.
        let renewing = ours.is_some()
            || matches!(
                req.message_type,
                MessageType::RenewalReq | MessageType::UpdateReq
            );
        let pre = if renewing {
            self.auth
                .check_renewal(&self.policy, &req.signer.cert_der, &ctx.csr)
                .err()
                .map(|r| self.rejection(r, None))
                .transpose()?
        } else if req.signer.spki_der != ctx.csr.spki_der {
            Some(Rejection::bad_request(
                "the request must be signed with the key of the CSR (proof of possession)",
            ))
        } else {
            None
        };
        if let Some(why) = pre {
            rt.block_on(self.method.failed(&ctx, &why));
            return self.fail(&req, &why);
        }
        // Authentication: the challenge method; a renewal without a (non-blank) challenge
        // is authenticated by its signer certificate alone, unless the method wants to see
        // every enrollment (Intune, webhook).
        let blank = ctx
            .csr
            .challenge_password
            .as_deref()
            .is_none_or(|p| p.trim().is_empty());
        let (acceptance, authentication) =
            if kind == EnrollKind::Renewal && blank && !self.method.verifies_renewals() {
                ctx.csr.challenge_password = None;
                let acceptance = crate::challenge::Acceptance {
                    profile: ours.as_ref().map(|r| r.profile.clone()),
                    requester: format!(
                        "scep:{}:renewal-of:{}",
                        self.name,
                        ctx.renewal_of.clone().unwrap_or_default()
                    ),
                    spend: None,
                };
                (acceptance, Authentication::RenewedCertificate)
            } else {
                match rt.block_on(self.method.verify(&ctx)) {
                    Verdict::Accept(a) => (a, Authentication::Challenge(self.method.name())),
                    Verdict::Reject(why) => {
                        rt.block_on(self.method.failed(&ctx, &why));
                        return self.fail(&req, &why);
                    }
                }
            };
        // One call to the enrollment core: the channel's profiles, approval, issuance
        // with the transaction keys and the spent challenge in one commit, and delivery
        // through the method (which may withhold the certificate).
        let hook = MethodHook::new(self.method.as_ref(), rt, &ctx);
        let outcome = self.auth.enroll(EnrollmentRequest {
            policy: &self.policy,
            requester: Requester {
                name: acceptance.requester.clone(),
                authentication,
            },
            csr: ctx.csr.clone(),
            renewing: renewing.then(|| req.signer.cert_der.clone()),
            replay_key: Some(replay),
            transaction_keys: vec![key.clone()],
            hold_key: Some(key),
            profile: acceptance.profile.clone(),
            server_keygen: false,
            challenge: acceptance.spend.clone(),
            hook: Some(&hook),
        });
        match outcome {
            EnrollOutcome::Issued(e) => self.success_with_cert(&req, &e.record.der),
            EnrollOutcome::Pending(held) => self.answer_held(&req, held),
            EnrollOutcome::Refused(r) => {
                let why = self.rejection(r, hook.take_withheld().map(|w| w.0))?;
                rt.block_on(self.method.failed(&ctx, &why));
                self.fail_authenticated(&req, &why)
            }
        }
    }

    /// Answers from a held request's state: PENDING, or FAILURE when an administrator
    /// rejected it (RFC 8894 §3.3.2).
    fn answer_held(&self, req: &PkiRequest, held: Held) -> Result<Vec<u8>> {
        match held.state {
            HeldState::Waiting => self.reply(&req.reply_to, PkiStatus::Pending, None),
            HeldState::Rejected { note } => {
                let why = Rejection {
                    fail_info: FailInfo::BadRequest,
                    client_text: format!("the request was rejected: {}", note.unwrap_or_default()),
                    detail: format!("held request {} was rejected", held.id),
                };
                self.fail(req, &why)
            }
        }
    }

    fn poll(&self, rt: &Handle, req: PkiRequest) -> Result<Vec<u8>> {
        if let Err(e) = codec::parse_issuer_and_subject(&req.message_data) {
            return self.fail(&req, &Rejection::bad_request(e.to_string()));
        }
        let key = self.transaction_key(&req);
        let unknown = Rejection {
            fail_info: FailInfo::BadCertId,
            client_text: "no request is known for this transaction".into(),
            detail: "CertPoll for an unknown transaction".into(),
        };
        match self.auth.find_transaction(&key)? {
            Some(record) if record.revocation.is_some() => {
                // Withheld by the method, or revoked since: not delivered.
                let why = Rejection::bad_request("the certificate of this transaction was revoked");
                self.fail(&req, &why)
            }
            Some(record) => self.success_with_cert(&req, &record.der),
            None if self.config.require_approval => {
                // The first delivery of an approved certificate goes through the method,
                // as for direct issuance.
                let hook = MethodHook::for_poll(self.method.as_ref(), rt, &self.name, &req);
                match self
                    .auth
                    .held_outcome(&key, std::slice::from_ref(&key), Some(&hook))?
                {
                    None => self.fail(&req, &unknown),
                    Some(EnrollOutcome::Issued(e)) => self.success_with_cert(&req, &e.record.der),
                    Some(EnrollOutcome::Pending(held)) => self.answer_held(&req, held),
                    Some(EnrollOutcome::Refused(r)) => match hook.take_withheld() {
                        Some((why, ctx)) => {
                            rt.block_on(self.method.failed(&ctx, &why));
                            self.fail(&req, &why)
                        }
                        None => {
                            let why = self.rejection(r, None)?;
                            self.fail(&req, &why)
                        }
                    },
                }
            }
            None => self.fail(&req, &unknown),
        }
    }

    fn get_cert(&self, req: PkiRequest) -> Result<Vec<u8>> {
        let (issuer, serial) = match codec::parse_issuer_and_serial(&req.message_data) {
            Ok(v) => v,
            Err(e) => {
                return self.fail(&req, &Rejection::bad_request(e.to_string()));
            }
        };
        let s = ca_core::asn1::minimal_positive(&serial);
        let found = match self.auth.get(&s) {
            Ok(r) => Some(r),
            Err(e) if e.kind() == ca_core::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        let matches = found.filter(|r| {
            self.auth
                .ca(&r.issuer)
                .ok()
                .and_then(|ca| ca.subject.to_der().ok())
                .is_some_and(|d| d == issuer)
        });
        match matches {
            Some(r) => {
                let d = codec::certs_only(&[&r.der], &[]);
                self.reply(&req.reply_to, PkiStatus::Success, Some(d))
            }
            None => {
                let why = Rejection {
                    fail_info: FailInfo::BadCertId,
                    client_text: "no such certificate".into(),
                    detail: "GetCert for an unknown certificate".into(),
                };
                self.fail(&req, &why)
            }
        }
    }

    fn get_crl(&self, req: PkiRequest) -> Result<Vec<u8>> {
        let (issuer, _) = match codec::parse_issuer_and_serial(&req.message_data) {
            Ok(v) => v,
            Err(e) => {
                return self.fail(&req, &Rejection::bad_request(e.to_string()));
            }
        };
        let ca = self
            .auth
            .authorities()
            .values()
            .find(|c| c.subject.to_der().is_ok_and(|d| d == issuer))
            .map(|c| c.name.clone());
        let Some(ca) = ca else {
            let why = Rejection {
                fail_info: FailInfo::BadCertId,
                client_text: "no CA with this issuer name".into(),
                detail: "GetCRL for an unknown issuer".into(),
            };
            return self.fail(&req, &why);
        };
        let crl = self.auth.current_crl(&ca)?;
        let d = codec::certs_only(&[], &[&crl.der]);
        self.reply(&req.reply_to, PkiStatus::Success, Some(d))
    }
}

/// The challenge method as the enrollment core's delivery hook: its
/// [`ChallengeMethod::issued`] may withhold a certificate (Intune successNotification);
/// the rejection is kept so that the client is answered with the method's own failInfo
/// and the method is told through [`ChallengeMethod::failed`].
struct MethodHook<'a> {
    method: &'a dyn ChallengeMethod,
    rt: &'a Handle,
    endpoint: String,
    transaction_id: String,
    kind: EnrollKind,
    renewal_of: Option<String>,
    withheld: Mutex<Option<(Rejection, EnrollmentContext)>>,
}

impl<'a> MethodHook<'a> {
    fn new(method: &'a dyn ChallengeMethod, rt: &'a Handle, ctx: &EnrollmentContext) -> Self {
        MethodHook {
            method,
            rt,
            endpoint: ctx.endpoint.clone(),
            transaction_id: ctx.transaction_id.clone(),
            kind: ctx.kind,
            renewal_of: ctx.renewal_of.clone(),
            withheld: Mutex::new(None),
        }
    }

    /// For CertPoll: an initial enrollment (approval holds initial enrollments only).
    fn for_poll(
        method: &'a dyn ChallengeMethod,
        rt: &'a Handle,
        endpoint: &str,
        req: &PkiRequest,
    ) -> Self {
        MethodHook {
            method,
            rt,
            endpoint: endpoint.to_string(),
            transaction_id: req.reply_to.transaction_id.clone(),
            kind: EnrollKind::Initial,
            renewal_of: None,
            withheld: Mutex::new(None),
        }
    }

    /// The method's rejection and the context it saw, when it withheld a certificate.
    fn take_withheld(&self) -> Option<(Rejection, EnrollmentContext)> {
        self.withheld.lock().ok().and_then(|mut w| w.take())
    }
}

impl IssuanceHook for MethodHook<'_> {
    fn issued(&self, cert_der: &[u8], csr: &Csr) -> std::result::Result<(), Refusal> {
        let ctx = EnrollmentContext {
            endpoint: self.endpoint.clone(),
            transaction_id: self.transaction_id.clone(),
            kind: self.kind,
            renewal_of: self.renewal_of.clone(),
            csr: csr.clone(),
        };
        match self.rt.block_on(self.method.issued(&ctx, cert_der)) {
            Ok(()) => Ok(()),
            Err(why) => {
                let refusal = Refusal {
                    kind: kind_of(why.fail_info),
                    client_text: why.client_text.clone(),
                    detail: why.detail.clone(),
                    error: None,
                };
                if let Ok(mut w) = self.withheld.lock() {
                    *w = Some((why, ctx));
                }
                Err(refusal)
            }
        }
    }
}

/// The error kind whose row of [`ca_core::ErrorKind::answer`] has this failInfo.
fn kind_of(fail_info: FailInfo) -> ca_core::ErrorKind {
    use ca_core::ErrorKind as K;
    match fail_info {
        FailInfo::BadAlg => K::UnsupportedAlgorithm,
        FailInfo::BadMessageCheck => K::BadSignature,
        FailInfo::BadRequest => K::PolicyRefused,
        FailInfo::BadTime => K::BadTime,
        FailInfo::BadCertId => K::UnknownCertificate,
    }
}
