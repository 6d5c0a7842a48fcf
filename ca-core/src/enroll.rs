//! The enrollment core (docs/architecture.md): [`Authority::enroll`] is the one entry point
//! every enrollment protocol uses (SCEP, EST, and ACME next). A protocol front end
//! authenticates the requester and verifies the CSR, then hands over an
//! [`EnrollmentRequest`] and maps the [`EnrollOutcome`] to its wire format. Everything
//! else is decided here, in this order:
//!
//! 1. replay: a request the channel has answered before gets the same certificate
//!    ([`Authority::replayed`]; RFC 8894 §3.3.1: a repeated PKCSReq must not issue twice);
//! 2. the profile: the requested one or the channel's default, among the channel's
//!    admitted profiles ([`EnrollmentPolicy`]), never a CA profile;
//! 3. renewal: the one renewal rule ([`Authority::check_renewal`], RFC 8894 §3.3.1.2,
//!    RFC 7030 §4.2.2);
//! 4. approval: a request the channel holds for an administrator is held durably and
//!    answered from its state ([`Authority::held_outcome`]; RFC 8894 §3.3.2, RFC 7030
//!    §4.2.3);
//! 5. server-side key generation (RFC 7030 §4.4) and its algorithm choice;
//! 6. issuance through the pipeline ([`Authority::issue_bound`]);
//! 7. delivery: the protocol's [`IssuanceHook`] may still withhold the certificate, which
//!    is then revoked and the request refused.

use std::sync::Arc;

use hsm::KeyAlgorithm;
use store::{CertRecord, PendingState};
use x509_cert::Certificate;

use crate::authority::{IssueBinding, IssueRequest, Recorded, RevocationReason};
use crate::csr::Csr;
use crate::enrollment::ChallengeSpend;
use crate::pending::HoldRequest;
use crate::{Authority, Error, ErrorKind, Result, asn1};

/// The channel a request came through, as records and audit entries name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Channel {
    /// A SCEP endpoint (`scep:<endpoint>`).
    Scep(String),
    /// An EST endpoint (`est:<label>`).
    Est(String),
    /// An ACME account of an endpoint (`acme:<endpoint>/<account>`).
    Acme {
        /// The endpoint.
        endpoint: String,
        /// The account.
        account: String,
    },
}

impl Channel {
    /// The protocol of the channel (`scep`, `est`, `acme`): the channel label of the
    /// metrics, which never carry an endpoint or account name a client could vary.
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Scep(_) => "scep",
            Channel::Est(_) => "est",
            Channel::Acme { .. } => "acme",
        }
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Channel::Scep(e) => write!(f, "scep:{e}"),
            Channel::Est(l) => write!(f, "est:{l}"),
            Channel::Acme { endpoint, account } => write!(f, "acme:{endpoint}/{account}"),
        }
    }
}

/// How the requester was authenticated (for the record and the audit log; what it may
/// do follows from the channel's [`EnrollmentPolicy`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authentication {
    /// A challenge method of the channel accepted it (`static`, `one-time`, `webhook`,
    /// `intune`: the method's name). A one-time challenge is spent with the certificate
    /// ([`EnrollmentRequest::challenge`]).
    Challenge(&'static str),
    /// The certificate being renewed authenticates the request (RFC 8894 §3.3.1.2,
    /// RFC 7030 §3.3.2).
    RenewedCertificate,
    /// A TLS client certificate (RFC 7030 §3.3.2).
    ClientCertificate,
    /// HTTP Basic credentials (RFC 7030 §3.2.3).
    Password,
    /// A client certificate and a password.
    ClientCertificateAndPassword,
    /// A registration authority enrolling for others (RFC 7030 §3.7).
    RegistrationAuthority,
    /// An ACME account key (RFC 8555 §6.2).
    AccountKey,
}

/// Who asks, and how that was established.
#[derive(Clone, Debug)]
pub struct Requester {
    /// The name the certificate record and audit entries carry (for example
    /// `scep:<endpoint>:<account>` or `est:<label>/<user>`).
    pub name: String,
    /// How the requester authenticated.
    pub authentication: Authentication,
}

/// The enrollment policy of one channel, built from its endpoint's configuration.
#[derive(Clone, Debug)]
pub struct EnrollmentPolicy {
    /// The channel.
    pub channel: Channel,
    /// The profile a request gets when it names none.
    pub default_profile: String,
    /// Further profiles a request (or its authentication) may choose.
    pub admitted_profiles: Vec<String>,
    /// Whether the channel accepts renewals.
    pub renewals: bool,
    /// Whether requests are held for an administrator's approval.
    pub require_approval: bool,
    /// Whether renewals are held too when `require_approval` is on (EST holds every
    /// request; SCEP holds initial enrollments only and lets a renewal through, RFC 8894
    /// §3.3.1.2).
    pub hold_renewals: bool,
    /// The algorithm of keys the server generates (RFC 7030 §4.4); `None`: the CSR's
    /// algorithm when the profile admits it, else the profile's first.
    pub keygen_algorithm: Option<KeyAlgorithm>,
}

impl EnrollmentPolicy {
    /// A policy that admits `default_profile` only; no renewals, no approval.
    pub fn new(channel: Channel, default_profile: &str) -> EnrollmentPolicy {
        EnrollmentPolicy {
            channel,
            default_profile: default_profile.to_string(),
            admitted_profiles: Vec::new(),
            renewals: false,
            require_approval: false,
            hold_renewals: false,
            keygen_algorithm: None,
        }
    }

    /// Whether the channel may issue under `profile`.
    pub fn admits(&self, profile: &str) -> bool {
        self.default_profile == profile || self.admitted_profiles.iter().any(|p| p == profile)
    }

    /// Every profile the channel may issue under, the default first.
    pub fn profiles(&self) -> Vec<&str> {
        let mut v = vec![self.default_profile.as_str()];
        v.extend(self.admitted_profiles.iter().map(String::as_str));
        v
    }

    /// Checks the policy against the authority: every profile exists and none issues CA
    /// certificates (an enrollment channel never does).
    pub fn validate(&self, auth: &Authority) -> Result<()> {
        for p in self.profiles() {
            let profile = auth
                .profiles()
                .get(p)
                .ok_or_else(|| Error::Config(format!("{}: no profile named {p}", self.channel)))?;
            if profile.config.ca {
                return Err(Error::Config(format!(
                    "{}: profile {p} issues CA certificates; enrollment channels may not",
                    self.channel
                )));
            }
        }
        Ok(())
    }
}

/// A refusal: its kind (for [`ErrorKind::answer`]), what the client is told, and what
/// only the audit log and the server log see.
#[derive(Debug)]
pub struct Refusal {
    /// The kind.
    pub kind: ErrorKind,
    /// Safe to send to the client.
    pub client_text: String,
    /// For the logs (never a secret either).
    pub detail: String,
    /// The authority's error, when the refusal is one (the pipeline refused, the store
    /// failed); `None` for the refusals of the enrollment rules and of the hook. The
    /// pipeline audits its own refusals; the others are for the front end to audit.
    pub error: Option<Error>,
}

impl Refusal {
    /// A refusal of the enrollment rules, with the same text for the client and the log.
    pub fn new(kind: ErrorKind, text: impl Into<String>) -> Refusal {
        let text = text.into();
        Refusal {
            kind,
            client_text: text.clone(),
            detail: text,
            error: None,
        }
    }
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Refusal {
        Refusal {
            kind: e.kind(),
            client_text: e.client_message(),
            detail: e.to_string(),
            error: Some(e),
        }
    }
}

/// A hook a protocol passes to [`Authority::enroll`]: called after a certificate is
/// durable and before it is delivered. An error withholds the certificate: it is revoked
/// (cessationOfOperation, audited) and the request refused. Microsoft Intune requires
/// this when its successNotification fails.
pub trait IssuanceHook: Send + Sync {
    /// `cert_der` is the certificate about to be delivered, `csr` the request it was
    /// issued for.
    fn issued(&self, cert_der: &[u8], csr: &Csr) -> std::result::Result<(), Refusal>;
}

pub use crate::authority::keygen::{GeneratedKey, KeyGenerator};

/// One enrollment, as a protocol front end hands it over after authenticating it.
pub struct EnrollmentRequest<'a> {
    /// The channel's policy (its [`EnrollmentPolicy::channel`] is the channel).
    pub policy: &'a EnrollmentPolicy,
    /// Who asks.
    pub requester: Requester,
    /// The CSR; its proof of possession has been verified.
    pub csr: Csr,
    /// The certificate being renewed, DER, as the protocol found it (SCEP: the signer
    /// certificate of a renewal; EST: the TLS client certificate of simplereenroll).
    pub renewing: Option<Vec<u8>>,
    /// The protocol's key for exactly this request (SCEP: transaction, signer and
    /// message); a retransmission has the same key. `None` when the protocol has none
    /// (EST).
    pub replay_key: Option<String>,
    /// Further keys that find the certificate again (SCEP CertPoll).
    pub transaction_keys: Vec<String>,
    /// The key a held request is found again by when the client asks again (SCEP: the
    /// transaction key; EST: a hash of the CSR). Needed when the channel holds requests.
    pub hold_key: Option<String>,
    /// The profile the request (or its authentication) names; `None`: the default.
    pub profile: Option<String>,
    /// Generate the key on the server (EST serverkeygen); the CSR's key is replaced.
    pub server_keygen: bool,
    /// The one-time challenge this enrollment spends (with the certificate, or when the
    /// request is held).
    pub challenge: Option<ChallengeSpend>,
    /// The protocol's delivery hook.
    pub hook: Option<&'a dyn IssuanceHook>,
}

impl std::fmt::Debug for EnrollmentRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollmentRequest")
            .field("channel", &self.policy.channel)
            .field("requester", &self.requester)
            .field("csr", &self.csr)
            .field("renewal", &self.renewing.is_some())
            .field("profile", &self.profile)
            .field("server_keygen", &self.server_keygen)
            .finish_non_exhaustive()
    }
}

/// A delivered certificate.
#[derive(Debug)]
pub struct Enrolled {
    /// Its record (the DER, the serial).
    pub record: CertRecord,
    /// The issuer chain, issuing CA first, root last (DER).
    pub chain: Vec<Vec<u8>>,
    /// The key the server generated, for server-side key generation.
    pub key: Option<GeneratedKey>,
    /// True when the request had been answered before and this is its certificate.
    pub replayed: bool,
}

/// The state of a held request that has no certificate (yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeldState {
    /// Waiting for an administrator.
    Waiting,
    /// Rejected by an administrator, with the note the client may be told.
    Rejected {
        /// The administrator's note.
        note: Option<String>,
    },
}

/// A request held durably for approval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// Its id (`privca requests approve <id>`).
    pub id: u64,
    /// Its state.
    pub state: HeldState,
}

/// What became of an enrollment.
// Returned once per request and matched at once, never kept in collections: boxing the
// certificate would only add an allocation per enrollment.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum EnrollOutcome {
    /// A certificate, delivered.
    Issued(Enrolled),
    /// Held for approval (or rejected by an administrator).
    Pending(Held),
    /// Refused.
    Refused(Refusal),
}

impl Authority {
    /// Injects the generator of keys for server-side key generation (the `server` crate
    /// does; without one, such requests are refused as internal errors). Once only.
    pub fn set_key_generator(&self, generator: Arc<dyn KeyGenerator>) -> Result<()> {
        self.key_generator
            .set(generator)
            .map_err(|_| Error::Internal("the key generator is set already".into()))
    }

    /// Enrolls: the one entry point of every enrollment protocol (see the module
    /// documentation for the steps). Never panics on input; every failure is a
    /// [`EnrollOutcome::Refused`] with its kind.
    pub fn enroll(&self, req: EnrollmentRequest<'_>) -> EnrollOutcome {
        let channel = req.policy.channel.kind();
        let profile = req
            .profile
            .clone()
            .unwrap_or_else(|| req.policy.default_profile.clone());
        let outcome = match self.enroll_inner(req) {
            Ok(outcome) => outcome,
            Err(e) => EnrollOutcome::Refused(Refusal::from(e)),
        };
        if let Some(o) = self.observer() {
            // A client-named profile this CA lacks is not a label (crate::observe).
            let profile = self.profile_label(&profile);
            match &outcome {
                EnrollOutcome::Issued(e) if !e.replayed => o.issued(channel, profile),
                EnrollOutcome::Refused(r) => o.refused(channel, profile, r.kind),
                _ => {}
            }
        }
        outcome
    }

    fn enroll_inner(&self, req: EnrollmentRequest<'_>) -> Result<EnrollOutcome> {
        let policy = req.policy;
        // 1. Replay: the same request again gets the same answer.
        if let Some(key) = &req.replay_key
            && let Some(outcome) = self.replayed(&policy.channel, key, &req.csr, req.hook)?
        {
            return Ok(outcome);
        }
        // 2. The profile: admitted by the channel, never a CA profile.
        let profile_name = req
            .profile
            .clone()
            .unwrap_or_else(|| policy.default_profile.clone());
        if !policy.admits(&profile_name) {
            return Ok(refused(
                ErrorKind::PolicyRefused,
                format!("profile {profile_name} is not offered by this endpoint"),
            ));
        }
        let profile = self
            .profiles()
            .get(&profile_name)
            .ok_or_else(|| Error::NotFound(format!("no profile named {profile_name:?}")))?;
        if profile.config.ca {
            return Ok(refused(
                ErrorKind::PolicyRefused,
                format!(
                    "profile {profile_name} issues CA certificates; an enrollment channel may not"
                ),
            ));
        }
        // 3. Renewal: the one rule.
        if let Some(old) = &req.renewing
            && let Err(r) = self.check_renewal(policy, old, &req.csr)
        {
            return Ok(EnrollOutcome::Refused(r));
        }
        // 4. Approval: hold, or answer from the held request. A key on the keyCompromise
        //    blocklist is refused on arrival, not first held for an administrator (its
        //    approval would be refused anyway); a server-generated key is a fresh one.
        if policy.require_approval && (req.renewing.is_none() || policy.hold_renewals) {
            if !req.server_keygen {
                self.check_key_not_blocked(&req.csr.spki_der)?;
            }
            return self.hold_enrollment(&req, &profile_name);
        }
        // 5. Server-side key generation: the algorithm of the CSR when the profile
        //    admits it, else the profile's first (RFC 7030 §4.4.1 lets the server choose).
        let mut ir = IssueRequest::from_csr(&req.csr, &profile_name, &req.requester.name);
        let key = if req.server_keygen {
            let algorithm = policy.keygen_algorithm.unwrap_or_else(|| {
                let admitted = &profile.config.key_algorithms;
                if admitted.is_empty() || admitted.contains(&req.csr.key_algorithm) {
                    req.csr.key_algorithm
                } else {
                    admitted[0]
                }
            });
            let generator = self.key_generator.get().ok_or_else(|| {
                Error::Internal("server-side key generation has no key generator".into())
            })?;
            let key = generator.generate(algorithm)?;
            ir.spki_der = key.spki_der.clone();
            ir.key_algorithm = key.algorithm;
            Some(key)
        } else {
            None
        };
        tracing::debug!(
            channel = %policy.channel,
            requester = %req.requester.name,
            authentication = ?req.requester.authentication,
            profile = %profile_name,
            renewal = req.renewing.is_some(),
            "enrollment"
        );
        // 6. Issue: the certificate, its transaction keys and the spent challenge in one
        //    commit.
        let binding = IssueBinding {
            replay_key: req.replay_key.clone(),
            transaction_keys: req.transaction_keys.clone(),
            challenge: req.challenge.clone(),
        };
        let (record, replayed) = match self.issue_bound(&ir, &binding)? {
            Recorded::Issued(i) => (i.record, false),
            Recorded::Replayed(r) => (r, true),
        };
        // 7. Deliver, unless the hook withholds it.
        self.deliver(record, &req.csr, req.hook, key, replayed, &policy.channel)
    }

    /// The answer to a request whose replay key was recorded with a certificate that is
    /// not revoked: that certificate, delivered again (the hook runs again, since the
    /// first delivery may not have finished). `None` when the key is unknown or its
    /// certificate was revoked (withheld, or revoked since: the request starts over).
    pub fn replayed(
        &self,
        channel: &Channel,
        replay_key: &str,
        csr: &Csr,
        hook: Option<&dyn IssuanceHook>,
    ) -> Result<Option<EnrollOutcome>> {
        let Some(record) = self
            .find_transaction(replay_key)?
            .filter(|r| r.revocation.is_none())
        else {
            return Ok(None);
        };
        tracing::info!(serial = %asn1::serial_hex(&record.serial), "replayed request answered with its certificate");
        self.deliver(record, csr, hook, None, true, channel)
            .map(Some)
    }

    /// The record of a certificate this CA issued, if `cert_der` is one (byte-equal to
    /// its record); `None` for any other certificate.
    pub fn issued_certificate(&self, cert_der: &[u8]) -> Result<Option<CertRecord>> {
        let Ok(cert) = <Certificate as der::Decode>::from_der(cert_der) else {
            return Ok(None);
        };
        let serial = asn1::minimal_positive(cert.tbs_certificate().serial_number().as_bytes());
        match self.get(&serial) {
            Ok(r) if r.der == cert_der => Ok(Some(r)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The renewal rule (RFC 8894 §3.3.1.2, RFC 7030 §4.2.2), the same for every
    /// protocol: the channel accepts renewals; the certificate being renewed is one this
    /// CA issued (byte-equal to its record), valid now and not revoked; the request keeps
    /// its subject (as sent or after the template of the profile it was issued under, in
    /// any RDN order) and its set of subjectAltNames; a new key is allowed. Returns the
    /// record of the certificate being renewed.
    pub fn check_renewal(
        &self,
        policy: &EnrollmentPolicy,
        cert_der: &[u8],
        csr: &Csr,
    ) -> std::result::Result<CertRecord, Refusal> {
        if !policy.renewals {
            return Err(Refusal::new(
                ErrorKind::PolicyRefused,
                "this endpoint does not accept renewals",
            ));
        }
        let unknown = || {
            Refusal::new(
                ErrorKind::UnknownCertificate,
                "a renewal must be signed by a valid certificate this CA issued",
            )
        };
        let cert = <Certificate as der::Decode>::from_der(cert_der).map_err(|_| unknown())?;
        let tbs = cert.tbs_certificate();
        let record = self
            .issued_certificate(cert_der)
            .map_err(Refusal::from)?
            .ok_or_else(unknown)?;
        if record.revocation.is_some() {
            return Err(Refusal::new(
                ErrorKind::UnknownCertificate,
                "the certificate being renewed (the signing certificate) is revoked",
            ));
        }
        let now = self.now();
        if now > record.not_after || now < record.not_before {
            return Err(Refusal::new(
                ErrorKind::BadTime,
                "the certificate being renewed (the signing certificate) has expired or is not yet valid",
            ));
        }
        let keeps_subject =
            |p: &crate::profile::Profile| p.renewal_keeps_subject(&csr.subject, tbs.subject());
        let profile = self.profiles().get(&record.profile);
        if !profile.is_some_and(keeps_subject) {
            return Err(Refusal::new(
                ErrorKind::PolicyRefused,
                "a renewal must keep the subject of the certificate being renewed: the request's subject differs (RFC 8894 §3.3.1.2, RFC 7030 §4.2.2)",
            ));
        }
        let certified = cert_sans(&cert).map_err(Refusal::from)?;
        if !profile.is_some_and(|p| p.renewal_keeps_sans(&csr.sans, &csr.subject, &certified)) {
            return Err(Refusal::new(
                ErrorKind::PolicyRefused,
                "a renewal must keep the subjectAltNames of the certificate being renewed: the request's subjectAltName differs (RFC 7030 §4.2.2)",
            ));
        }
        Ok(record)
    }

    /// The answer from the request held under `hold_key`, if any: its state, or its
    /// certificate once approved. The first delivery of an approved certificate runs the
    /// hook (which may withhold it) and records `transaction_keys` for it.
    pub fn held_outcome(
        &self,
        hold_key: &str,
        transaction_keys: &[String],
        hook: Option<&dyn IssuanceHook>,
    ) -> Result<Option<EnrollOutcome>> {
        let Some(held) = self.find_held(hold_key)? else {
            return Ok(None);
        };
        let state = match held.state {
            PendingState::Pending => HeldState::Waiting,
            PendingState::Rejected => HeldState::Rejected {
                note: held.note.clone(),
            },
            PendingState::Issued => {
                let Some(serial) = held.serial.clone() else {
                    return Err(Error::Internal(format!(
                        "held request {} is issued without a serial",
                        held.id
                    )));
                };
                let record = self.get(&serial)?;
                let first = match transaction_keys.first() {
                    Some(k) => self.find_transaction(k)?.is_none(),
                    None => false,
                };
                if first {
                    // First delivery of an approved certificate: the hook may still
                    // withhold it, as for direct issuance.
                    if let Some(h) = hook {
                        let csr = crate::csr::decode_held(&held.csr_der)?;
                        if let Err(r) = h.issued(&record.der, &csr) {
                            self.withhold(&record.serial, &held.endpoint);
                            return Ok(Some(EnrollOutcome::Refused(r)));
                        }
                    }
                    self.record_transaction(transaction_keys, &serial)?;
                }
                if record.revocation.is_some() {
                    return Ok(Some(refused(
                        ErrorKind::PolicyRefused,
                        "the certificate was revoked",
                    )));
                }
                let chain = self.chain(&record.issuer)?;
                return Ok(Some(EnrollOutcome::Issued(Enrolled {
                    record,
                    chain,
                    key: None,
                    replayed: true,
                })));
            }
        };
        Ok(Some(EnrollOutcome::Pending(Held { id: held.id, state })))
    }

    fn hold_enrollment(&self, req: &EnrollmentRequest<'_>, profile: &str) -> Result<EnrollOutcome> {
        let key = req.hold_key.clone().ok_or_else(|| {
            Error::Internal("a channel that holds requests gave no hold key".into())
        })?;
        if let Some(outcome) = self.held_outcome(&key, &req.transaction_keys, req.hook)? {
            return Ok(outcome);
        }
        // A held request spends its one-time challenge when it is held (the certificate
        // comes later, from an administrator's approval).
        let actor = &req.requester.name;
        if let Some(s) = &req.challenge {
            self.consume_spend(s, actor)?;
        }
        let hr = HoldRequest {
            lookup_key: key.clone(),
            endpoint: req.policy.channel.to_string(),
            profile: profile.to_string(),
            requester: actor.clone(),
            csr_der: req.csr.der.clone(),
        };
        if let Err(e) = self.hold(hr) {
            if let Some(s) = &req.challenge
                && let Err(re) = self.release_spend(s, actor)
            {
                tracing::warn!(error = %re, "could not release a one-time challenge");
            }
            return Err(e);
        }
        Ok(self
            .held_outcome(&key, &req.transaction_keys, req.hook)?
            .unwrap_or(EnrollOutcome::Pending(Held {
                id: 0,
                state: HeldState::Waiting,
            })))
    }

    fn deliver(
        &self,
        record: CertRecord,
        csr: &Csr,
        hook: Option<&dyn IssuanceHook>,
        key: Option<GeneratedKey>,
        replayed: bool,
        channel: &Channel,
    ) -> Result<EnrollOutcome> {
        if let Some(h) = hook
            && let Err(r) = h.issued(&record.der, csr)
        {
            self.withhold(&record.serial, &channel.to_string());
            return Ok(EnrollOutcome::Refused(r));
        }
        let chain = self.chain(&record.issuer)?;
        Ok(EnrollOutcome::Issued(Enrolled {
            record,
            chain,
            key,
            replayed,
        }))
    }

    /// Revokes a certificate the hook withheld (cessationOfOperation, audited).
    fn withhold(&self, serial: &[u8], actor: &str) {
        if let Err(e) = self.revoke(serial, RevocationReason::CessationOfOperation, actor)
            && e.kind() != ErrorKind::Conflict
        {
            tracing::error!(error = %e, "revoking a withheld certificate failed");
        }
    }
}

fn refused(kind: ErrorKind, text: impl Into<String>) -> EnrollOutcome {
    EnrollOutcome::Refused(Refusal::new(kind, text))
}

/// The subjectAltNames of a certificate, sorted.
pub fn cert_sans(cert: &Certificate) -> Result<Vec<crate::profile::San>> {
    use const_oid::AssociatedOid;
    use der::Decode;
    use x509_cert::ext::pkix::SubjectAltName;
    let mut out = Vec::new();
    for ext in cert.tbs_certificate().extensions().into_iter().flatten() {
        if ext.extn_id == SubjectAltName::OID {
            let san = SubjectAltName::from_der(ext.extn_value.as_bytes())
                .map_err(|e| Error::BadRequest(format!("subjectAltName: {e}")))?;
            out.extend(crate::profile::sans_from_general_names(&san.0)?);
        }
    }
    out.sort();
    Ok(out)
}
