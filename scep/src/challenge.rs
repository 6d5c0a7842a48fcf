//! How an enrollment is authenticated: the contract between the SCEP service and its
//! challenge methods (none, static passwords, one-time challenges, a webhook, Microsoft
//! Intune).
//!
//! The service decodes and verifies the pkiMessage, then asks the endpoint's method for a
//! [`Verdict`] before it hands anything to ca-core. A method only authenticates and may
//! choose among the endpoint's allowed profiles; what goes into the certificate is
//! decided by ca-core (docs/architecture.md, decision 1).
//!
//! Call order for one PKCSReq/RenewalReq (RFC 8894 §3.3.1):
//! 1. [`ChallengeMethod::verify`]; a [`Verdict::Reject`] ends the transaction with a
//!    CertRep FAILURE and an audit entry, then [`ChallengeMethod::failed`] is called.
//! 2. The enrollment core issues ([`ca_core::Authority::enroll`]; its refusals also lead
//!    to `failed`).
//! 3. [`ChallengeMethod::issued`] runs after the certificate is durable and before it is
//!    delivered: the service passes the method to the enrollment core as its
//!    [`ca_core::enroll::IssuanceHook`]. If it returns an error the certificate is **not
//!    delivered**: ca-core revokes it (reason `cessationOfOperation`, audited) and the
//!    service answers FAILURE. Intune requires this for a failed successNotification.

use std::future::Future;
use std::pin::Pin;

/// A boxed future, so that methods can be stored as `Box<dyn ChallengeMethod>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which request message the enrollment came in (RFC 8894 §3.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnrollKind {
    /// PKCSReq (messageType 19) signed by a self-signed certificate.
    Initial,
    /// RenewalReq (17), or a PKCSReq signed by a valid certificate this CA issued
    /// (macOS and certnanny renew that way).
    Renewal,
}

/// What a challenge method sees of one enrollment. Everything here has been decoded and
/// the request's signature and the CSR's proof of possession have been verified.
#[derive(Clone, Debug)]
pub struct EnrollmentContext {
    /// The endpoint's configured name (`[scep.endpoints.<name>]`).
    pub endpoint: String,
    /// The transactionID attribute (RFC 8894 §3.2.1.1), as received.
    pub transaction_id: String,
    /// Initial enrollment or renewal.
    pub kind: EnrollKind,
    /// For a renewal: the hex serial of the certificate that signed the request.
    pub renewal_of: Option<String>,
    /// The parsed, verified CSR: `csr.der` holds it as received, and
    /// `csr.challenge_password` the challengePassword attribute (PKCS#9, RFC 2985 §5.4.1),
    /// whose `Debug` is redacted.
    pub csr: ca_core::csr::Csr,
}

/// failInfo values (RFC 8894 §3.2.1.4.5): the one definition is ca-core's, whose
/// [`ca_core::ErrorKind::answer`] maps every error kind to one.
pub use ca_core::FailInfo;

/// A refusal: what the client is told, and what only the audit log sees.
#[derive(Clone, Debug)]
pub struct Rejection {
    /// failInfo of the CertRep FAILURE.
    pub fail_info: FailInfo,
    /// failInfoText (id-scep-failInfoText, 1.3.6.1.5.5.7.24.1) for the client: short and
    /// safe, never a secret or internal detail.
    pub client_text: String,
    /// Detail for the audit log and the server log (never a secret either).
    pub detail: String,
}

impl Rejection {
    /// A `badRequest` refusal with the same text for client and log.
    pub fn bad_request(text: impl Into<String>) -> Rejection {
        let text = text.into();
        Rejection {
            fail_info: FailInfo::BadRequest,
            client_text: text.clone(),
            detail: text,
        }
    }
}

/// What an accepted enrollment may carry over from its authentication.
#[derive(Clone, Debug, Default)]
pub struct Acceptance {
    /// Use this profile instead of the endpoint's default (must be among the endpoint's
    /// allowed profiles; the service checks).
    pub profile: Option<String>,
    /// Who the requester is, for the audit log and the certificate record (for example
    /// `scep:<endpoint>:<account>` or `intune:<device id>`).
    pub requester: String,
    /// A one-time challenge that was checked but not yet spent: the service spends it in
    /// the same store commit as the certificate ([`ca_core::IssueBinding`]).
    pub spend: Option<ca_core::enrollment::ChallengeSpend>,
}

/// The outcome of [`ChallengeMethod::verify`].
#[derive(Clone, Debug)]
pub enum Verdict {
    /// Go on and issue.
    Accept(Acceptance),
    /// Refuse with a CertRep FAILURE.
    Reject(Rejection),
}

/// One way of authenticating enrollments. Implementations must never log the challenge.
pub trait ChallengeMethod: Send + Sync + 'static {
    /// A short name for logs and audit entries (`static`, `one-time`, `webhook`, `intune`).
    fn name(&self) -> &'static str;

    /// Whether renewals must pass [`ChallengeMethod::verify`] too. When false (the
    /// default), a renewal without a challenge is authenticated by its signer certificate
    /// alone (RFC 8894 §3.3.1.2). Methods whose service must see every enrollment (Intune,
    /// a webhook) return true, so that such a renewal is refused up front instead of being
    /// issued and then withheld.
    fn verifies_renewals(&self) -> bool {
        false
    }

    /// Decides whether the enrollment may proceed. Errors of the method itself (a
    /// webhook that times out, Intune unreachable) are rejections, never acceptances.
    fn verify<'a>(&'a self, ctx: &'a EnrollmentContext) -> BoxFuture<'a, Verdict>;

    /// Called after the certificate is durable, before delivery; an error withholds it
    /// (see the module documentation). `cert_der` is the issued certificate.
    fn issued<'a>(
        &'a self,
        ctx: &'a EnrollmentContext,
        cert_der: &'a [u8],
    ) -> BoxFuture<'a, Result<(), Rejection>> {
        let _ = (ctx, cert_der);
        Box::pin(async { Ok(()) })
    }

    /// Called when the enrollment was refused after `verify` accepted it, or by `verify`
    /// itself, so that the method can report the failure (Intune failureNotification).
    fn failed<'a>(&'a self, ctx: &'a EnrollmentContext, why: &'a Rejection) -> BoxFuture<'a, ()> {
        let _ = (ctx, why);
        Box::pin(async {})
    }
}
