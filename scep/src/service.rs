//! The SCEP service of one endpoint (RFC 8894 §3.3, §4): decodes a pkiMessage, checks
//! who may enroll, hands a normalised request to ca-core, and builds the CertRep.
//! Blocking work (RSA, the store) runs on the blocking pool.

use std::sync::Arc;

use ca_core::csr::{Csr, CsrOptions};
use ca_core::{Authority, CaEntity, IssueRequest, KeyWithCert, RevocationReason};
use der::{Decode, Encode};
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
    auth: Arc<Authority>,
    ca: Arc<CaEntity>,
    /// Signs replies and opens envelopes: the RA, or the CA itself.
    ra: KeyWithCert,
    ra_is_ca: bool,
    next: Option<(Arc<CaEntity>, Option<KeyWithCert>)>,
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
        let profile = auth.profiles().get(&config.profile).ok_or_else(|| {
            Error::Config(format!(
                "SCEP endpoint {name}: no profile named {}",
                config.profile
            ))
        })?;
        for p in config.profiles() {
            if !auth.profiles().contains_key(p) {
                return Err(Error::Config(format!(
                    "SCEP endpoint {name}: no profile named {p}"
                )));
            }
        }
        let ca_name = config.ca.clone().unwrap_or_else(|| profile.issuer.clone());
        let ca = auth.ca(&ca_name)?.clone();
        // GetCACert must announce the CA that actually issues.
        for p in config.profiles() {
            if let Some(pr) = auth.profiles().get(p)
                && pr.issuer != ca.name
            {
                return Err(Error::Config(format!(
                    "SCEP endpoint {name}: profile {p} issues from {}, not from the endpoint's CA {}",
                    pr.issuer, ca.name
                )));
            }
        }
        let (ra, ra_is_ca) = match ra.or_else(|| ca.ra.clone()) {
            Some(ra) => (ra, false),
            None => (
                KeyWithCert {
                    cert_der: ca.cert_der.clone(),
                    key: ca.key.clone(),
                },
                true,
            ),
        };
        if !ra.key.algorithm().is_rsa() {
            return Err(Error::Config(format!(
                "SCEP endpoint {name}: the RA (or CA) key must be RSA to decrypt requests; \
                 configure an RA certificate"
            )));
        }
        let ra_cert = facts(&ra.cert_der)?;
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
    /// encrypt to it, protocols.md A.7).
    pub fn ca_cert(&self) -> Result<CaCertAnswer> {
        if self.ra_is_ca && self.ca.parent.is_none() {
            return Ok(CaCertAnswer {
                content_type: "application/x-x509-ca-cert".into(),
                body: self.ca.cert_der.clone(),
            });
        }
        let chain = self.auth.chain(&self.ca.name)?;
        let mut certs: Vec<&[u8]> = Vec::new();
        if !self.ra_is_ca {
            certs.push(&self.ra.cert_der);
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
        let mut certs: Vec<&[u8]> = Vec::new();
        if let Some(r) = next_ra {
            certs.push(&r.cert_der);
        }
        certs.push(&next.cert_der);
        let inner = codec::certs_only(&certs, &[]);
        let ra = self.ra.clone();
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
    /// CertRep can be built (the HTTP layer answers 400).
    pub async fn pki_operation(self: &Arc<Self>, body: Vec<u8>) -> Result<Vec<u8>> {
        let me = self.clone();
        let decoded = tokio::task::spawn_blocking(move || {
            let mut recipients = vec![Recipient {
                cert_der: &me.ra.cert_der,
                key: me.ra.key.as_ref(),
            }];
            if let Some((_, Some(r))) = &me.next {
                recipients.push(Recipient {
                    cert_der: &r.cert_der,
                    key: r.key.as_ref(),
                });
            }
            codec::decode_request(&body, &recipients, &me.decode_options())
        })
        .await
        .map_err(|e| Error::Reply(format!("task: {e}")));
        let decoded = match decoded.and_then(|d| d) {
            Ok(d) => d,
            Err(e) if e.is_unavailable() => {
                // The RA key could not be used (token gone): the server's failure, not a
                // bad request.
                self.auth.audit_refusal(
                    "scep-key-backend-unavailable",
                    &format!("scep:{}", self.name),
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
                    .await
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
                self.handle(*req).await
            }
        }
    }

    /// A refusal before the request authenticated (undecodable message, bad signature,
    /// wrong challenge, unknown transaction: anyone can send those): counted per endpoint
    /// and summarised in the audit log, not audited one by one (issue item 6).
    fn audit(&self, action: &str, transaction: &str, detail: &str) {
        self.auth.note_unauthenticated(
            action,
            &format!("scep:{}", self.name),
            &format!("transaction {transaction}: {detail}"),
        );
    }

    /// A refusal of a request that passed its challenge (or renewal) check: audited.
    fn audit_authenticated(&self, action: &str, transaction: &str, detail: &str) {
        self.auth.audit_refusal(
            action,
            &format!("scep:{}", self.name),
            transaction,
            &ca_core::Error::BadRequest(detail.to_string()),
        );
    }

    async fn reply(
        &self,
        reply_to: &ReplyTo,
        status: PkiStatus,
        degenerate: Option<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        let ra = self.ra.clone();
        let reply_to = reply_to.clone();
        tokio::task::spawn_blocking(move || {
            codec::cert_rep(
                &reply_to,
                &status,
                degenerate.as_deref(),
                &ReplySigner {
                    cert_der: &ra.cert_der,
                    key: ra.key.as_ref(),
                },
            )
        })
        .await
        .map_err(|e| Error::Reply(format!("task: {e}")))?
    }

    async fn fail(&self, req: &PkiRequest, why: &Rejection) -> Result<Vec<u8>> {
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
        .await
    }

    /// [`Self::fail`] for a request that authenticated: the refusal is audited.
    async fn fail_authenticated(&self, req: &PkiRequest, why: &Rejection) -> Result<Vec<u8>> {
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
        .await
    }

    async fn success_with_cert(&self, req: &PkiRequest, cert_der: &[u8]) -> Result<Vec<u8>> {
        let chain = self.auth.chain(&self.ca.name)?;
        let mut certs: Vec<&[u8]> = vec![cert_der];
        certs.extend(chain.iter().map(Vec::as_slice));
        let d = codec::certs_only(&certs, &[]);
        self.reply(&req.reply_to, PkiStatus::Success, Some(d)).await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Authority) -> ca_core::Result<T> + Send + 'static,
    ) -> ca_core::Result<T> {
        let auth = self.auth.clone();
        ca_core::deadline::spawn_blocking(move || f(&auth))
            .await
            .map_err(|e| ca_core::Error::Internal(format!("task: {e}")))?
    }

    /// The durable key of a transaction: endpoint, transactionID and signer key hash
    /// (transaction IDs are not unique in the wild, protocols.md A.4).
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

    async fn handle(&self, req: PkiRequest) -> Result<Vec<u8>> {
        match req.message_type {
            MessageType::PkcsReq | MessageType::RenewalReq | MessageType::UpdateReq => {
                self.enroll(req).await
            }
            MessageType::CertPoll => self.poll(req).await,
            MessageType::GetCert => self.get_cert(req).await,
            MessageType::GetCrl => self.get_crl(req).await,
            MessageType::CertRep => {
                self.fail(&req, &Rejection::bad_request("a CertRep is not a request"))
                    .await
            }
        }
    }

    async fn enroll(&self, req: PkiRequest) -> Result<Vec<u8>> {
        let key = self.transaction_key(&req);
        let replay = self.replay_key(&req);
        // A replay of a completed request gets the same certificate.
        // One trip to the blocking pool: the replay lookup, the CSR (its signature check
        // is public-key work) and whether a certificate we issued signed the request.
        let k2 = replay.clone();
        let data = req.message_data.clone();
        let serial = req.signer.serial.clone();
        let der = req.signer.cert_der.clone();
        let (done, csr, ours) = self
            .blocking(move |a| {
                // A transaction whose certificate was revoked (withheld, or revoked by an
                // administrator) is finished: repeating it starts over.
                let done = a.find_transaction(&k2)?.filter(|r| r.revocation.is_none());
                let csr = ca_core::csr::parse_with(&data, CsrOptions { allow_sha1: true });
                // Initial enrollment or renewal: a request signed by a certificate we
                // issued is a renewal whatever its messageType (macOS and certnanny renew
                // with PKCSReq).
                let ours = match a.get(&ca_core::asn1::minimal_positive(&serial)) {
                    Ok(r) if r.der == der => Some(r),
                    Ok(_) => None,
                    Err(e) if e.kind() == ca_core::ErrorKind::NotFound => None,
                    Err(e) => return Err(e),
                };
                Ok((done, csr, ours))
            })
            .await?;
        // The codec has checked the CSR's DER and signature; what fails here concerns
        // what the (unaltered) CSR asks for.
        let csr = match csr {
            Ok(c) => c,
            Err(e) => {
                return self
                    .fail(
                        &req,
                        &Rejection::bad_request(format!("CSR: {}", e.reason())),
                    )
                    .await;
            }
        };
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
            csr: csr.clone(),
        };
        if let Some(record) = done {
            tracing::info!(transaction = %req.reply_to.transaction_id, "replayed SCEP transaction answered with its certificate");
            return self.deliver(&req, &ctx, &record.serial, &record.der).await;
        }
        let refuse = |why: Rejection| why;
        // Checks that do not involve the method.
        let pre = match (&ours, req.message_type) {
            (None, MessageType::RenewalReq | MessageType::UpdateReq) => {
                Some(refuse(Rejection::bad_request(
                    "a renewal must be signed by a valid certificate this CA issued",
                )))
            }
            (None, _) if req.signer.spki_der != csr.spki_der => {
                Some(refuse(Rejection::bad_request(
                    "the request must be signed with the key of the CSR (proof of possession)",
                )))
            }
            (Some(_), _) if !self.config.renewal => Some(Rejection::bad_request(
                "this endpoint does not accept renewals",
            )),
            (Some(old), _) => {
                let now = self.auth.now();
                if old.revocation.is_some() {
                    Some(Rejection::bad_request("the signing certificate is revoked"))
                } else if old.not_after < now {
                    Some(Rejection::bad_request(
                        "the signing certificate has expired",
                    ))
                } else if !self.auth.profiles().get(&old.profile).is_some_and(|p| {
                    x509_cert::Certificate::from_der(&old.der).is_ok_and(|c| {
                        p.renewal_keeps_subject(&csr.subject, c.tbs_certificate().subject())
                    })
                }) {
                    // Compared as sent or as the profile builds it, in any RDN order: the
                    // certificate's subject is what the profile made of the original
                    // request (ca_core::profile::Profile::renewal_keeps_subject).
                    Some(Rejection::bad_request(
                        "a renewal must keep the subject of the certificate being renewed",
                    ))
                } else {
                    None
                }
            }
            _ => None,
        };
        if let Some(why) = pre {
            self.method.failed(&ctx, &why).await;
            return self.fail(&req, &why).await;
        }
        // Authentication: the challenge method; a renewal without a (non-blank) challenge
        // is authenticated by its signer certificate alone, unless the method wants to see
        // every enrollment (Intune, webhook).
        let blank = csr
            .challenge_password
            .as_deref()
            .is_none_or(|p| p.trim().is_empty());
        let acceptance = if kind == EnrollKind::Renewal && blank && !self.method.verifies_renewals()
        {
            ctx.csr.challenge_password = None;
            crate::challenge::Acceptance {
                profile: ours.as_ref().map(|r| r.profile.clone()),
                requester: format!(
                    "scep:{}:renewal-of:{}",
                    self.name,
                    ctx.renewal_of.clone().unwrap_or_default()
                ),
                spend: None,
            }
        } else {
            match self.method.verify(&ctx).await {
                Verdict::Accept(a) => a,
                Verdict::Reject(why) => {
                    self.method.failed(&ctx, &why).await;
                    return self.fail(&req, &why).await;
                }
            }
        };
        let profile = acceptance
            .profile
            .clone()
            .unwrap_or_else(|| self.config.profile.clone());
        if !self.config.profiles().contains(&profile.as_str()) {
            let why = Rejection::bad_request(format!(
                "profile {profile} is not offered by this endpoint"
            ));
            self.method.failed(&ctx, &why).await;
            return self.fail_authenticated(&req, &why).await;
        }
        if self.config.require_approval && kind == EnrollKind::Initial {
            return self
                .hold(&req, &ctx, &csr, &profile, &acceptance, &key)
                .await;
        }
        let binding = ca_core::IssueBinding {
            replay_key: Some(replay),
            transaction_keys: vec![key],
            challenge: acceptance.spend.clone(),
        };
        self.issue_and_deliver(&req, &ctx, &csr, &profile, &acceptance.requester, binding)
            .await
    }

    /// Delivers a recorded certificate: the method may still withhold it (Intune
    /// successNotification), then it is revoked and the client told FAILURE. A replayed
    /// transaction goes through here too, since its first delivery may not have finished.
    async fn deliver(
        &self,
        req: &PkiRequest,
        ctx: &EnrollmentContext,
        serial: &[u8],
        der: &[u8],
    ) -> Result<Vec<u8>> {
        if let Err(why) = self.method.issued(ctx, der).await {
            let serial = serial.to_vec();
            let actor = format!("scep:{}", self.name);
            if let Err(e) = self
                .blocking(move |a| {
                    a.revoke(&serial, RevocationReason::CessationOfOperation, &actor)
                })
                .await
                && e.kind() != ca_core::ErrorKind::Conflict
            {
                tracing::error!(error = %e, "revoking a withheld certificate failed");
            }
            self.method.failed(ctx, &why).await;
            return self.fail_authenticated(req, &why).await;
        }
        self.success_with_cert(req, der).await
    }

    async fn issue_and_deliver(
        &self,
        req: &PkiRequest,
        ctx: &EnrollmentContext,
        csr: &Csr,
        profile: &str,
        requester: &str,
        binding: ca_core::IssueBinding,
    ) -> Result<Vec<u8>> {
        let ir = IssueRequest::from_csr(csr, profile, requester);
        // The certificate, its transaction keys and the spent challenge: one commit.
        let recorded = match self.blocking(move |a| a.issue_bound(&ir, &binding)).await {
            Ok(r) => r,
            // The key backend is down or the request's time ran out: nothing was issued and
            // the client should retry (HTTP 503), not be told its request is bad.
            Err(e) if e.kind() == ca_core::ErrorKind::Unavailable => return Err(e.into()),
            Err(e) => {
                let why = Rejection {
                    fail_info: FailInfo::BadRequest,
                    client_text: e
                        .client_message()
                        .trim_start_matches("unauthorized: ")
                        .to_string(),
                    detail: e.to_string(),
                };
                self.method.failed(ctx, &why).await;
                return self.fail_authenticated(req, &why).await;
            }
        };
        let record = match recorded {
            ca_core::Recorded::Issued(i) => i.record,
            ca_core::Recorded::Replayed(r) => r,
        };
        self.deliver(req, ctx, &record.serial, &record.der).await
    }

    /// Holds an initial enrollment for an administrator (RFC 8894 §3.3.2: PENDING, then
    /// CertPoll). Idempotent per transaction: a repeated PKCSReq is answered from the
    /// held request's state.
    async fn hold(
        &self,
        req: &PkiRequest,
        ctx: &EnrollmentContext,
        csr: &Csr,
        profile: &str,
        acceptance: &crate::challenge::Acceptance,
        key: &str,
    ) -> Result<Vec<u8>> {
        let hr = ca_core::pending::HoldRequest {
            lookup_key: key.to_string(),
            endpoint: format!("scep:{}", self.name),
            profile: profile.to_string(),
            requester: acceptance.requester.clone(),
            csr_der: csr.der.clone(),
        };
        // A held request spends its one-time challenge when it is held (the certificate
        // comes later, from an administrator's approval).
        let spend = acceptance.spend.clone();
        let actor = acceptance.requester.clone();
        let held = self
            .blocking(move |a| {
                if let Some(s) = &spend {
                    a.consume_spend(s, &actor)?;
                }
                match a.hold(hr) {
                    Ok(h) => Ok(h),
                    Err(e) => {
                        if let Some(s) = &spend
                            && let Err(re) = a.release_spend(s, &actor)
                        {
                            tracing::warn!(error = %re, "could not release a one-time challenge");
                        }
                        Err(e)
                    }
                }
            })
            .await;
        match held {
            Ok(_) => self.answer_held(req, key).await,
            Err(e) if e.kind() == ca_core::ErrorKind::Unavailable => Err(Error::Authority(e)),
            Err(e) => {
                let why = Rejection {
                    fail_info: FailInfo::BadRequest,
                    client_text: e
                        .client_message()
                        .trim_start_matches("unauthorized: ")
                        .to_string(),
                    detail: e.to_string(),
                };
                self.method.failed(ctx, &why).await;
                self.fail_authenticated(req, &why).await
            }
        }
    }

    /// Answers from a held request's state: PENDING, the certificate, or FAILURE.
    async fn answer_held(&self, req: &PkiRequest, key: &str) -> Result<Vec<u8>> {
        let k = key.to_string();
        let held = self.blocking(move |a| a.find_held(&k)).await?;
        let Some(held) = held else {
            let why = Rejection {
                fail_info: FailInfo::BadCertId,
                client_text: "no request is known for this transaction".into(),
                detail: "CertPoll for an unknown transaction".into(),
            };
            return self.fail(req, &why).await;
        };
        match ca_core::pending::state_name(held.state) {
            "pending" => self.reply(&req.reply_to, PkiStatus::Pending, None).await,
            "issued" => {
                let Some(serial) = held.serial.clone() else {
                    return Err(Error::Reply("an issued request has no serial".into()));
                };
                let (k, s2) = (key.to_string(), serial.clone());
                let (delivered, record) = self
                    .blocking(move |a| Ok((a.find_transaction(&k)?.is_some(), a.get(&s2)?)))
                    .await?;
                if !delivered {
                    // First delivery of an approved certificate: the method may still
                    // withhold it (Intune successNotification), as for direct issuance.
                    let csr = ca_core::csr::decode_held(&held.csr_der)?;
                    let ctx = EnrollmentContext {
                        endpoint: self.name.clone(),
                        transaction_id: req.reply_to.transaction_id.clone(),
                        kind: EnrollKind::Initial,
                        renewal_of: None,
                        csr,
                    };
                    if let Err(why) = self.method.issued(&ctx, &record.der).await {
                        let actor = format!("scep:{}", self.name);
                        let s3 = serial.clone();
                        if let Err(e) = self
                            .blocking(move |a| {
                                a.revoke(&s3, RevocationReason::CessationOfOperation, &actor)
                            })
                            .await
                        {
                            tracing::error!(error = %e, "revoking a withheld certificate failed");
                        }
                        self.method.failed(&ctx, &why).await;
                        return self.fail(req, &why).await;
                    }
                    let (k, s2) = (key.to_string(), serial.clone());
                    self.blocking(move |a| a.record_transaction(&[k], &s2))
                        .await?;
                }
                if record.revocation.is_some() {
                    let why = Rejection::bad_request("the certificate was revoked");
                    return self.fail(req, &why).await;
                }
                self.success_with_cert(req, &record.der).await
            }
            _ => {
                let note = held.note.clone().unwrap_or_default();
                let why = Rejection {
                    fail_info: FailInfo::BadRequest,
                    client_text: format!("the request was rejected: {note}"),
                    detail: format!("held request {} was rejected", held.id),
                };
                self.fail(req, &why).await
            }
        }
    }

    async fn poll(&self, req: PkiRequest) -> Result<Vec<u8>> {
        if let Err(e) = codec::parse_issuer_and_subject(&req.message_data) {
            return self
                .fail(&req, &Rejection::bad_request(e.to_string()))
                .await;
        }
        let key = self.transaction_key(&req);
        let k2 = key.clone();
        match self.blocking(move |a| a.find_transaction(&k2)).await? {
            Some(record) if record.revocation.is_some() => {
                // Withheld by the method, or revoked since: not delivered.
                let why = Rejection::bad_request("the certificate of this transaction was revoked");
                self.fail(&req, &why).await
            }
            Some(record) => self.success_with_cert(&req, &record.der).await,
            None if self.config.require_approval => self.answer_held(&req, &key).await,
            None => {
                let why = Rejection {
                    fail_info: FailInfo::BadCertId,
                    client_text: "no request is known for this transaction".into(),
                    detail: "CertPoll for an unknown transaction".into(),
                };
                self.fail(&req, &why).await
            }
        }
    }

    async fn get_cert(&self, req: PkiRequest) -> Result<Vec<u8>> {
        let (issuer, serial) = match codec::parse_issuer_and_serial(&req.message_data) {
            Ok(v) => v,
            Err(e) => {
                return self
                    .fail(&req, &Rejection::bad_request(e.to_string()))
                    .await;
            }
        };
        let s = ca_core::asn1::minimal_positive(&serial);
        let found = self
            .blocking(move |a| match a.get(&s) {
                Ok(r) => Ok(Some(r)),
                Err(e) if e.kind() == ca_core::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            })
            .await?;
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
                self.reply(&req.reply_to, PkiStatus::Success, Some(d)).await
            }
            None => {
                let why = Rejection {
                    fail_info: FailInfo::BadCertId,
                    client_text: "no such certificate".into(),
                    detail: "GetCert for an unknown certificate".into(),
                };
                self.fail(&req, &why).await
            }
        }
    }

    async fn get_crl(&self, req: PkiRequest) -> Result<Vec<u8>> {
        let (issuer, _) = match codec::parse_issuer_and_serial(&req.message_data) {
            Ok(v) => v,
            Err(e) => {
                return self
                    .fail(&req, &Rejection::bad_request(e.to_string()))
                    .await;
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
            return self.fail(&req, &why).await;
        };
        let crl = self.blocking(move |a| a.current_crl(&ca)).await?;
        let d = codec::certs_only(&[], &[&crl.der]);
        self.reply(&req.reply_to, PkiStatus::Success, Some(d)).await
    }
}
