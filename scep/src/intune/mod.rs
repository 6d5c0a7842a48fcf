//! The `intune` challenge method: Microsoft Intune validates each enrollment.
//!
//! Intune gives every managed device a challenge — an opaque, signed and encrypted blob
//! that names the CSR properties Intune expects — and the device sends it as the CSR's
//! challengePassword (PKCS#9, RFC 2985 §5.4.1). privca cannot read it; it asks Intune
//! (as microsoft/Intune-Resource-Access `src/CsrValidation` does; docs/client-quirks.md,
//! "Microsoft Intune"):
//!
//! 1. OAuth 2.0 client credentials (RFC 6749 §4.4) against Entra ID at
//!    `{login_url}/{tenant}/oauth2/v2.0/token`, one token for Microsoft Graph
//!    (`{graph_url}/.default`) and one for Intune (`{intune_resource_url}/.default`, which
//!    with the default resource is literally `https://api.manage.microsoft.com//.default`,
//!    the double slash both Microsoft libraries send). Tokens are cached and renewed
//!    before they expire; a 401 drops the token and retries once with a fresh one.
//! 2. Service discovery through Graph: `GET {graph_url}/v1.0/servicePrincipals/appId=
//!    {intune_app_id}/endpoints` lists Intune's services; privca keeps the URI of
//!    `ScepRequestValidationFEService` until a call to it fails at HTTP level.
//! 3. `POST {service}/ScepActions/validateRequest` before issuing; a `code` other than
//!    `Success` (or no answer) refuses the enrollment.
//! 4. `POST {service}/ScepActions/successNotification` after the certificate is durable;
//!    if it fails the certificate is withheld (the service revokes it).
//! 5. `POST {service}/ScepActions/failureNotification` when an enrollment is refused
//!    (with an HRESULT the Intune console shows), except when the refusal came from the
//!    Intune service being unavailable or from these notifications themselves.
//!
//! Every call carries `Authorization: Bearer`, `client-request-id` (a fresh GUID, logged),
//! `api-version` (default `2018-02-20`) and `UserAgent` (the caller info). The client
//! secret, the tokens and the challenge (hence the request bodies, which carry the CSR)
//! are never logged.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use base64::Engine;
use hsm::Secret;
use reqwest::{StatusCode, Url};

use tracing::{info, warn};

use crate::Error;
use crate::challenge::{
    Acceptance, BoxFuture, ChallengeMethod, EnrollmentContext, FailInfo, Rejection, Verdict,
};
use crate::error::Result;
use crate::outbound::{self, IssuedFacts, MAX_RESPONSE_BYTES};

mod config;
mod revocation;
mod wire;

pub use config::{IntuneConfig, IntuneRevocationConfig};
pub use revocation::{RevocationRound, revocation_error};
use wire::{
    ActionResponse, Audience, Token, TokenError, Unavailable, parse_action, parse_endpoints,
    parse_token,
};
pub use wire::{RevocationRequest, RevocationResult};

/// The service Intune lists in Graph for SCEP validation (docs/client-quirks.md, "Service discovery").
pub const VALIDATION_SERVICE: &str = "ScepRequestValidationFEService";

/// The service Intune lists in Graph for revocation requests (docs/intune.md, "Revocation").
pub const REVOCATION_SERVICE: &str = "PkiConnectorFEService";

/// Which of Intune's services a call goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Service {
    /// [`VALIDATION_SERVICE`].
    Validation,
    /// [`REVOCATION_SERVICE`].
    Revocation,
}

/// The result codes Intune documents for validateRequest and the notifications
/// (docs/client-quirks.md, "Calls and answers"). Any other code is a failure too; it is only logged as unknown.
pub const KNOWN_CODES: [&str; 24] = [
    "Success",
    "CertificateRequestDecodingFailed",
    "ChallengePasswordMissing",
    "ChallengeDeserializationError",
    "ChallengeDecryptionError",
    "ChallengeDecodingError",
    "ChallengeInvalidTimestamp",
    "ChallengeExpired",
    "SubjectNameMissing",
    "SubjectNameMismatch",
    "SubjectAltNameMissing",
    "SubjectAltNameMismatch",
    "KeyUsageMismatch",
    "KeyLengthMismatch",
    "EnhancedKeyUsageMissing",
    "EnhancedKeyUsageMismatch",
    "AadKeyIdentifierListMissing",
    "RegisteredKeyMismatch",
    "SigningCertThumbprintMismatch",
    "ScepProfileNoLongerTargetedToTheClient",
    "SignatureValidationFailed",
    "BadCertificateRequestIdInChallenge",
    "BadDeviceIdInChallenge",
    "BadUserIdInChallenge",
];

/// The SAN URI prefix Intune uses for strong certificate mapping (KB5014754,
/// docs/client-quirks.md): `tag:microsoft.com,2022-09-14:sid:<SID>`.
pub const STRONG_MAPPING_URI_PREFIX: &str = "tag:microsoft.com,2022-09-14:sid:";

/// HRESULTs sent in failureNotification (MS-ERREF §2.1), by failInfo of the refusal.
pub mod hresult {
    /// NTE_BAD_ALGID: badAlg.
    pub const BAD_ALGORITHM: u32 = 0x8009_0008;
    /// NTE_BAD_SIGNATURE: badMessageCheck.
    pub const BAD_SIGNATURE: u32 = 0x8009_0006;
    /// E_INVALIDARG: badRequest and badTime (the request or the policy refused it).
    pub const INVALID_REQUEST: u32 = 0x8007_0057;
    /// CRYPT_E_NOT_FOUND: badCertId.
    pub const NOT_FOUND: u32 = 0x8009_2004;
}

/// How many transactions each bookkeeping set remembers (validated and awaiting
/// issuance; refused without notification).
const MAX_REMEMBERED: usize = 4096;
/// errorDescription is limited to 255 characters by the Intune API.
const MAX_ERROR_DESCRIPTION: usize = 255;

/// The Intune challenge method. Keep one per endpoint configuration for the life of the
/// server: it caches tokens and the discovered service location.
pub struct Intune {
    tenant: String,
    client_id: String,
    client_secret: Secret,
    token_url: Url,
    graph_scope: String,
    intune_scope: String,
    discovery_url: Url,
    fixed_service: Option<Url>,
    api_version: String,
    caller_info: String,
    validate_retries: u32,
    ca_configuration: Option<String>,
    certificate_authority: Option<String>,
    client: reqwest::Client,
    graph_token: tokio::sync::Mutex<Option<Token>>,
    intune_token: tokio::sync::Mutex<Option<Token>>,
    service: tokio::sync::Mutex<Option<Url>>,
    /// Revocation: settings, the configured service URL, the discovered one.
    revocation: Option<IntuneRevocationConfig>,
    fixed_revocation_service: Option<Url>,
    revocation_service: tokio::sync::Mutex<Option<Url>>,
    /// Transactions whose refusal must not be reported (Intune unreachable, or the
    /// failure came from a notification call).
    suppressed: KeySet,
    /// Transactions Intune validated and that await their successNotification.
    validated: KeySet,
}

impl Intune {
    /// Builds the method from its settings and the loaded client secret
    /// ([`IntuneConfig::load_client_secret`]). Checks every URL (https, or http to a
    /// loopback address).
    pub fn new(config: &IntuneConfig, client_secret: Secret) -> Result<Intune> {
        let field = |name: &str, v: &str| -> Result<()> {
            if v.is_empty() || v.len() > 256 || v.chars().any(|c| c.is_control()) {
                return Err(Error::Config(format!("intune {name} is empty or invalid")));
            }
            Ok(())
        };
        field("tenant", &config.tenant)?;
        field("client_id", &config.client_id)?;
        field("intune_app_id", &config.intune_app_id)?;
        field("api_version", &config.api_version)?;
        field("caller_info", &config.caller_info)?;
        if config
            .tenant
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
        {
            return Err(Error::Config(
                "intune tenant must be a domain name or a GUID".into(),
            ));
        }
        if std::str::from_utf8(client_secret.expose()).is_err() {
            return Err(Error::Config("intune client_secret is not UTF-8".into()));
        }
        if config.timeout_ms == 0 || config.timeout_ms > 120_000 {
            return Err(Error::Config(
                "intune timeout_ms must be between 1 and 120000".into(),
            ));
        }
        if config.validate_retries > 5 {
            return Err(Error::Config("intune validate_retries is at most 5".into()));
        }
        let login = outbound::check_url("intune login_url", &config.login_url)?;
        let graph = outbound::check_url("intune graph_url", &config.graph_url)?;
        outbound::check_url("intune intune_resource_url", &config.intune_resource_url)?;
        let token_url = join(&login, &format!("{}/oauth2/v2.0/token", config.tenant))?;
        let discovery_url = join(
            &graph,
            &format!(
                "v1.0/servicePrincipals/appId={}/endpoints",
                config.intune_app_id
            ),
        )?;
        let fixed_service = config
            .validation_service_url
            .as_deref()
            .map(|u| outbound::check_url("intune validation_service_url", u))
            .transpose()?;
        let client = outbound::client(
            Duration::from_millis(config.timeout_ms),
            &config.caller_info,
        )?;
        if let Some(r) = &config.revocation {
            r.check()?;
        }
        let fixed_revocation_service = config
            .revocation
            .as_ref()
            .and_then(|r| r.service_url.as_deref())
            .map(|u| outbound::check_url("intune revocation service_url", u))
            .transpose()?;
        Ok(Intune {
            tenant: config.tenant.clone(),
            client_id: config.client_id.clone(),
            client_secret,
            token_url,
            graph_scope: format!("{}/.default", config.graph_url.trim_end_matches('/')),
            // Deliberately not trimmed: the default resource ends in '/', and Microsoft's
            // libraries send ".../.default" after it (docs/client-quirks.md, "Tokens").
            intune_scope: format!("{}/.default", config.intune_resource_url),
            discovery_url,
            fixed_service,
            api_version: config.api_version.clone(),
            caller_info: config.caller_info.clone(),
            validate_retries: config.validate_retries,
            ca_configuration: config.ca_configuration.clone(),
            certificate_authority: config.certificate_authority.clone(),
            client,
            graph_token: tokio::sync::Mutex::new(None),
            intune_token: tokio::sync::Mutex::new(None),
            service: tokio::sync::Mutex::new(None),
            revocation: config.revocation.clone(),
            fixed_revocation_service,
            revocation_service: tokio::sync::Mutex::new(None),
            suppressed: KeySet::default(),
            validated: KeySet::default(),
        })
    }

    /// Loads the client secret and builds the method: what the server calls for an
    /// endpoint with `challenge = { method = "intune", … }`.
    pub fn load(config: &IntuneConfig) -> Result<Intune> {
        Intune::new(config, config.load_client_secret()?)
    }

    fn token_slot(&self, audience: Audience) -> &tokio::sync::Mutex<Option<Token>> {
        match audience {
            Audience::Graph => &self.graph_token,
            Audience::Intune => &self.intune_token,
        }
    }

    /// A valid access token for `audience`, from the cache or fresh from Entra ID.
    async fn token(&self, audience: Audience) -> std::result::Result<Secret, Unavailable> {
        let mut slot = self.token_slot(audience).lock().await;
        if let Some(t) = slot.as_ref()
            && Instant::now() < t.renew_at
        {
            return Ok(t.value.clone());
        }
        let scope = match audience {
            Audience::Graph => self.graph_scope.as_str(),
            Audience::Intune => self.intune_scope.as_str(),
        };
        // Checked to be UTF-8 in `new`.
        let secret = std::str::from_utf8(self.client_secret.expose()).unwrap_or_default();
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", secret),
            ("scope", scope),
        ];
        let resp = self
            .client
            .post(self.token_url.clone())
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                Unavailable(format!(
                    "Entra ID token request: {}",
                    outbound::describe(&e)
                ))
            })?;
        let status = resp.status();
        let body = outbound::read_limited(resp, MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| Unavailable(format!("Entra ID token response: {e}")))?;
        if !status.is_success() {
            // The error JSON holds an AADSTS code and text, never the secret.
            let why = serde_json::from_slice::<TokenError>(&body)
                .map(|e| {
                    let first = e.error_description.lines().next().unwrap_or_default();
                    format!("{}: {}", e.error, clip(first, 200))
                })
                .unwrap_or_else(|_| "no error details".into());
            return Err(Unavailable(format!(
                "Entra ID refused the token request for tenant {} (HTTP {status}): {why}",
                self.tenant
            )));
        }
        let (value, lifetime, renew_after) = parse_token(&body)?;
        *slot = Some(Token {
            value: value.clone(),
            renew_at: Instant::now() + renew_after,
        });
        info!(audience = ?audience, lifetime_seconds = lifetime, "obtained an Entra ID token");
        Ok(value)
    }

    async fn drop_token(&self, audience: Audience) {
        *self.token_slot(audience).lock().await = None;
    }

    /// The URL of `which` service: configured, cached, or discovered through Graph.
    async fn service_url(&self, which: Service) -> std::result::Result<Url, Unavailable> {
        let (fixed, slot, name) = match which {
            Service::Validation => (&self.fixed_service, &self.service, VALIDATION_SERVICE),
            Service::Revocation => (
                &self.fixed_revocation_service,
                &self.revocation_service,
                REVOCATION_SERVICE,
            ),
        };
        if let Some(u) = fixed {
            return Ok(u.clone());
        }
        let mut cached = slot.lock().await;
        if let Some(u) = cached.as_ref() {
            return Ok(u.clone());
        }
        let mut refreshed = false;
        let body = loop {
            let token = self.token(Audience::Graph).await?;
            let request_id = outbound::request_id();
            let resp = self
                .client
                .get(self.discovery_url.clone())
                .bearer_auth(String::from_utf8_lossy(token.expose()))
                .header("client-request-id", &request_id)
                .send()
                .await
                .map_err(|e| {
                    Unavailable(format!(
                        "Graph service discovery ({request_id}): {}",
                        outbound::describe(&e)
                    ))
                })?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                refreshed = true;
                self.drop_token(Audience::Graph).await;
                continue;
            }
            if !status.is_success() {
                return Err(Unavailable(format!(
                    "Graph service discovery ({request_id}) answered HTTP {status}"
                )));
            }
            break outbound::read_limited(resp, MAX_RESPONSE_BYTES)
                .await
                .map_err(|e| Unavailable(format!("Graph service discovery: {e}")))?;
        };
        let url = parse_endpoints(&body, name)?;
        info!(service = %url, "discovered the Intune service {name}");
        *cached = Some(url.clone());
        Ok(url)
    }

    async fn forget_service(&self, which: Service) {
        let slot = match which {
            Service::Validation => &self.service,
            Service::Revocation => &self.revocation_service,
        };
        *slot.lock().await = None;
    }

    /// POSTs one ScepActions call and returns Intune's answer. `retries` extra attempts
    /// follow transport errors, 5xx and 429; a 401 renews the token once.
    async fn action(
        &self,
        suffix: &str,
        body: &serde_json::Value,
        transaction_id: &str,
        retries: u32,
    ) -> std::result::Result<ActionResponse, Unavailable> {
        let bytes = self
            .call(Service::Validation, suffix, body, transaction_id, retries)
            .await?;
        let answer = parse_action(&bytes).map_err(|e| Unavailable(format!("{suffix}: {}", e.0)))?;
        info!(
            transaction_id = %transaction_id,
            code = %clip(&answer.code, 64),
            "Intune {suffix}"
        );
        Ok(answer)
    }

    /// POSTs `body` to `suffix` of `which` service and returns the answer's body (at most
    /// [`MAX_RESPONSE_BYTES`]). `retries` extra attempts follow transport errors, 5xx and
    /// 429; a 401 renews the token once; an HTTP failure forgets the discovered location.
    /// `log_key` names what the call is about in the logs (a transaction, a round).
    async fn call(
        &self,
        which: Service,
        suffix: &str,
        body: &serde_json::Value,
        log_key: &str,
        retries: u32,
    ) -> std::result::Result<Vec<u8>, Unavailable> {
        let api_version = match (which, &self.revocation) {
            (Service::Revocation, Some(r)) => r.api_version.as_str(),
            _ => self.api_version.as_str(),
        };
        let mut attempt = 0;
        let mut refreshed = false;
        loop {
            let base = self.service_url(which).await?;
            let url = join(&base, suffix).map_err(|e| Unavailable(e.to_string()))?;
            let token = self.token(Audience::Intune).await?;
            let request_id = outbound::request_id();
            let sent = self
                .client
                .post(url)
                .bearer_auth(String::from_utf8_lossy(token.expose()))
                .header("client-request-id", &request_id)
                .header("api-version", api_version)
                .header("UserAgent", &self.caller_info)
                .json(body)
                .send()
                .await;
            let failure = match sent {
                Err(e) => format!("{} ({request_id}): {}", suffix, outbound::describe(&e)),
                Ok(resp) if resp.status().is_success() => {
                    let bytes = outbound::read_limited(resp, MAX_RESPONSE_BYTES)
                        .await
                        .map_err(|e| Unavailable(format!("{suffix} ({request_id}): {e}")))?;
                    info!(client_request_id = %request_id, about = %log_key, "Intune {suffix} answered");
                    return Ok(bytes);
                }
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && !refreshed => {
                    refreshed = true;
                    self.drop_token(Audience::Intune).await;
                    continue;
                }
                Ok(resp) => {
                    let status = resp.status();
                    let retryable =
                        status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
                    // The library clears the location on every HTTP failure (B.3).
                    self.forget_service(which).await;
                    if !retryable {
                        return Err(Unavailable(format!(
                            "{suffix} ({request_id}) answered HTTP {status}"
                        )));
                    }
                    format!("{suffix} ({request_id}) answered HTTP {status}")
                }
            };
            self.forget_service(which).await;
            warn!(about = %log_key, "Intune call failed: {failure}");
            if attempt >= retries {
                return Err(Unavailable(failure));
            }
            attempt += 1;
            // Short, jittered pause: the device is waiting for its answer.
            let jitter = u64::from(rand::random::<u8>());
            tokio::time::sleep(Duration::from_millis(100 + jitter)).await;
        }
    }

    async fn validate(&self, ctx: &EnrollmentContext) -> Verdict {
        if ctx
            .csr
            .challenge_password
            .as_deref()
            .is_none_or(|p| p.trim().is_empty())
        {
            // Not an Intune transaction: Intune is not told about it either.
            self.suppressed.insert(ctx);
            return Verdict::Reject(Rejection {
                fail_info: FailInfo::BadRequest,
                client_text: "the request has no Intune challenge".into(),
                detail: "Intune endpoint: the CSR has no challengePassword".into(),
            });
        }
        let body = serde_json::json!({
            "request": {
                "transactionId": ctx.transaction_id,
                "certificateRequest": base64::engine::general_purpose::STANDARD.encode(&ctx.csr.der),
                "callerInfo": self.caller_info,
            }
        });
        match self
            .action(
                "ScepActions/validateRequest",
                &body,
                &ctx.transaction_id,
                self.validate_retries,
            )
            .await
        {
            Ok(a) if a.code == "Success" => {
                self.validated.insert(ctx);
                Verdict::Accept(Acceptance {
                    profile: None,
                    requester: requester(ctx),
                    spend: None,
                })
            }
            Ok(a) => Verdict::Reject(refusal("validateRequest", &a)),
            Err(Unavailable(why)) => {
                self.suppressed.insert(ctx);
                Verdict::Reject(Rejection {
                    fail_info: FailInfo::BadRequest,
                    client_text: "Intune validation is unavailable; try again later".into(),
                    detail: format!("Intune validation unavailable: {why}"),
                })
            }
        }
    }

    async fn notify_success(
        &self,
        ctx: &EnrollmentContext,
        cert_der: &[u8],
    ) -> std::result::Result<(), Rejection> {
        let withheld = |detail: String| Rejection {
            fail_info: FailInfo::BadRequest,
            client_text: "Intune did not confirm the certificate; try again later".into(),
            detail,
        };
        let facts = IssuedFacts::read(cert_der).map_err(withheld)?;
        let mut n = serde_json::json!({
            "transactionId": ctx.transaction_id,
            "certificateRequest": base64::engine::general_purpose::STANDARD.encode(&ctx.csr.der),
            "certificateThumbprint": facts.thumbprint,
            "certificateSerialNumber": facts.serial_hex,
            "certificateExpirationDateUtc": facts.not_after,
            "issuingCertificateAuthority": facts.issuer,
            "callerInfo": self.caller_info,
        });
        if let Some(c) = &self.ca_configuration {
            n["caConfiguration"] = c.clone().into();
        }
        if let Some(c) = &self.certificate_authority {
            n["certificateAuthority"] = c.clone().into();
        }
        let body = serde_json::json!({ "notification": n });
        match self
            .action(
                "ScepActions/successNotification",
                &body,
                &ctx.transaction_id,
                0,
            )
            .await
        {
            Ok(a) if a.code == "Success" => Ok(()),
            Ok(a) => Err(withheld(refusal("successNotification", &a).detail)),
            Err(Unavailable(why)) => Err(withheld(format!(
                "Intune successNotification failed: {why}"
            ))),
        }
    }

    async fn notify_failure(&self, ctx: &EnrollmentContext, why: &Rejection) {
        let hresult = match why.fail_info {
            FailInfo::BadAlg => hresult::BAD_ALGORITHM,
            FailInfo::BadMessageCheck => hresult::BAD_SIGNATURE,
            FailInfo::BadRequest | FailInfo::BadTime => hresult::INVALID_REQUEST,
            FailInfo::BadCertId => hresult::NOT_FOUND,
        };
        let mut description = clip(&why.client_text, MAX_ERROR_DESCRIPTION);
        if description.is_empty() {
            description = "enrollment refused".into();
        }
        let body = serde_json::json!({
            "notification": {
                "transactionId": ctx.transaction_id,
                "certificateRequest": base64::engine::general_purpose::STANDARD.encode(&ctx.csr.der),
                "hResult": hresult,
                "errorDescription": description,
                "callerInfo": self.caller_info,
            }
        });
        match self
            .action(
                "ScepActions/failureNotification",
                &body,
                &ctx.transaction_id,
                0,
            )
            .await
        {
            Ok(a) if a.code == "Success" => {}
            Ok(a) => warn!(transaction_id = %ctx.transaction_id,
                "Intune failureNotification answered {}", clip(&a.code, 64)),
            Err(Unavailable(e)) => warn!(transaction_id = %ctx.transaction_id,
                "Intune failureNotification failed: {e}"),
        }
    }
}

impl ChallengeMethod for Intune {
    fn name(&self) -> &'static str {
        "intune"
    }

    fn verifies_renewals(&self) -> bool {
        true
    }

    fn verify<'a>(&'a self, ctx: &'a EnrollmentContext) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            let verdict = self.validate(ctx).await;
            if let Verdict::Reject(r) = &verdict {
                warn!(endpoint = %ctx.endpoint, transaction_id = %ctx.transaction_id,
                    "Intune refused the enrollment: {}", r.detail);
            }
            verdict
        })
    }

    fn issued<'a>(
        &'a self,
        ctx: &'a EnrollmentContext,
        cert_der: &'a [u8],
    ) -> BoxFuture<'a, std::result::Result<(), Rejection>> {
        Box::pin(async move {
            // Defence in depth: a certificate for a request Intune did not validate here
            // (for example a renewal the service let through without a challenge) is
            // never delivered, and Intune is not told about a transaction it never saw.
            if !self.validated.take(ctx) {
                self.suppressed.insert(ctx);
                warn!(endpoint = %ctx.endpoint, transaction_id = %ctx.transaction_id,
                    "certificate withheld: the request was not validated by Intune");
                return Err(Rejection {
                    fail_info: FailInfo::BadRequest,
                    client_text: "the request was not validated by Intune".into(),
                    detail: "Intune endpoint: issued() without a successful validateRequest \
                             (a renewal without challenge?)"
                        .into(),
                });
            }
            let r = self.notify_success(ctx, cert_der).await;
            if let Err(e) = &r {
                // Microsoft's rule: no failureNotification for a failed notification call.
                self.suppressed.insert(ctx);
                warn!(endpoint = %ctx.endpoint, transaction_id = %ctx.transaction_id,
                    "certificate withheld: {}", e.detail);
            }
            r
        })
    }

    fn failed<'a>(&'a self, ctx: &'a EnrollmentContext, why: &'a Rejection) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if self.suppressed.take(ctx) {
                return;
            }
            self.notify_failure(ctx, why).await;
        })
    }
}

/// Runs every parser of Microsoft's answers on `data` (for the fuzz target
/// `fuzz/fuzz_targets/challenge_answers.rs`); must never panic.
#[doc(hidden)]
pub fn fuzz_answers(data: &[u8]) {
    let _ = parse_token(data);
    let _ = parse_endpoints(data, VALIDATION_SERVICE);
    let _ = wire::parse_revocation_requests(data, 500);
    let _ = wire::parse_upload_answer(data);
    if let Ok(a) = parse_action(data) {
        let _ = refusal("validateRequest", &a);
    }
}

/// The audit requester: the endpoint, and the SID Intune vouched for when the CSR
/// carries the strong-mapping SAN URI (Intune checks the SAN against its challenge).
fn requester(ctx: &EnrollmentContext) -> String {
    let sid = ctx.csr.sans.iter().find_map(|s| match s {
        ca_core::profile::San::Uri(u) => u.strip_prefix(STRONG_MAPPING_URI_PREFIX),
        _ => None,
    });
    match sid {
        Some(sid) if !sid.is_empty() && sid.len() <= 184 => {
            format!("intune:{}:sid:{}", ctx.endpoint, sid)
        }
        _ => format!("intune:{}", ctx.endpoint),
    }
}

/// A refusal from Intune's answer code.
fn refusal(call: &str, a: &ActionResponse) -> Rejection {
    let code: String = clip(&a.code, 64)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let known = KNOWN_CODES.contains(&code.as_str());
    let description = a
        .error_description
        .as_deref()
        .map(|d| clip(d, 200))
        .unwrap_or_default();
    Rejection {
        fail_info: FailInfo::BadRequest,
        client_text: format!("Intune refused the request: {code}"),
        detail: format!(
            "Intune {call} answered {}{code}: {description}",
            if known { "" } else { "unknown code " }
        ),
    }
}

/// A bounded set of transactions, keyed on transaction ID and CSR (transaction IDs alone
/// are not unique in practice: docs/client-quirks.md).
#[derive(Default)]
struct KeySet(std::sync::Mutex<VecDeque<String>>);

impl KeySet {
    fn insert(&self, ctx: &EnrollmentContext) {
        if let Ok(mut s) = self.0.lock() {
            if s.len() >= MAX_REMEMBERED {
                s.pop_front();
            }
            s.push_back(transaction_key(ctx));
        }
    }

    /// Removes the transaction; true if it was there.
    fn take(&self, ctx: &EnrollmentContext) -> bool {
        let key = transaction_key(ctx);
        let Ok(mut s) = self.0.lock() else {
            return false;
        };
        match s.iter().position(|k| *k == key) {
            Some(i) => {
                s.remove(i);
                true
            }
            None => false,
        }
    }
}

fn transaction_key(ctx: &EnrollmentContext) -> String {
    use sha1::Digest;
    format!(
        "{}\u{0}{}",
        ctx.transaction_id,
        hex::encode(sha1::Sha1::digest(&ctx.csr.der))
    )
}

/// `base` + `/` + `path`, whatever `base` ends with.
fn join(base: &Url, path: &str) -> Result<Url> {
    let text = format!("{}/{}", base.as_str().trim_end_matches('/'), path);
    Url::parse(&text).map_err(|e| Error::Config(format!("URL {text:?}: {e}")))
}

/// Printable characters only, at most `max` of them.
fn clip(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::wire::MAX_TOKEN_LIFETIME;
    use super::*;

    fn config(json: &str) -> IntuneConfig {
        serde_json::from_str(json).expect("config parses")
    }

    #[test]
    fn scopes_and_urls_follow_microsofts_libraries() {
        let c = config(
            r#"{"tenant": "contoso.onmicrosoft.com", "client_id": "app",
                "client_secret": {"env": "X"}}"#,
        );
        let i = Intune::new(&c, Secret::new(b"s".to_vec())).expect("builds");
        assert_eq!(i.intune_scope, "https://api.manage.microsoft.com//.default");
        assert_eq!(i.graph_scope, "https://graph.microsoft.com/.default");
        assert_eq!(
            i.token_url.as_str(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(
            i.discovery_url.as_str(),
            "https://graph.microsoft.com/v1.0/servicePrincipals/appId=0000000a-0000-0000-c000-000000000000/endpoints"
        );
        assert_eq!(i.api_version, "2018-02-20");
    }

    #[test]
    fn bad_settings_are_refused() {
        let base = r#""client_id": "app", "client_secret": {"env": "X"}"#;
        let s = || Secret::new(b"s".to_vec());
        let c = config(&format!(r#"{{"tenant": "a/b", {base}}}"#));
        assert!(Intune::new(&c, s()).is_err());
        let c = config(&format!(
            r#"{{"tenant": "t", "login_url": "http://login.example", {base}}}"#
        ));
        assert!(Intune::new(&c, s()).is_err());
        let c = config(&format!(r#"{{"tenant": "t", "timeout_ms": 0, {base}}}"#));
        assert!(Intune::new(&c, s()).is_err());
        assert!(
            serde_json::from_str::<IntuneConfig>(&format!(
                r#"{{"tenant": "t", "secret": "inline", {base}}}"#
            ))
            .is_err()
        );
        let c = config(&format!(r#"{{"tenant": "t", {base}}}"#));
        assert!(Intune::new(&c, Secret::new(vec![0xff, 0xfe])).is_err());
    }

    #[test]
    fn token_lifetimes_are_bounded_and_renewed_early() {
        let (_, life, renew) =
            parse_token(br#"{"access_token":"t","expires_in":3599}"#).expect("token");
        assert_eq!((life, renew), (3599, Duration::from_secs(3299)));
        let (_, _, renew) =
            parse_token(br#"{"access_token":"t","expires_in":"10"}"#).expect("token");
        assert_eq!(renew, Duration::from_secs(5));
        // A huge lifetime must not overflow the clock arithmetic.
        let (_, life, _) =
            parse_token(br#"{"access_token":"t","expires_in":18446744073709551615}"#)
                .expect("token");
        assert_eq!(life, MAX_TOKEN_LIFETIME);
        assert!(parse_token(br#"{"access_token":"","expires_in":10}"#).is_err());
        assert!(parse_token(br#"{"access_token":"t","expires_in":0}"#).is_err());
        assert!(parse_token(br#"{"access_token":"t","expires_in":"soon"}"#).is_err());
        assert!(parse_token(b"<html>").is_err());
    }

    #[test]
    fn discovery_finds_the_service_case_insensitively_and_checks_its_url() {
        let list = br#"{"value":[{"providerName":"PkiConnectorFEService","uri":"https://a/x"},
                {"serviceName":"SCEPREQUESTVALIDATIONFESERVICE","uri":"https://b.example/svc"}]}"#;
        let u = parse_endpoints(list, VALIDATION_SERVICE).expect("found");
        assert_eq!(u.as_str(), "https://b.example/svc");
        let u = parse_endpoints(list, REVOCATION_SERVICE).expect("found");
        assert_eq!(u.as_str(), "https://a/x");
        assert!(parse_endpoints(br#"{"value":[]}"#, VALIDATION_SERVICE).is_err());
        assert!(
            parse_endpoints(
                br#"{"value":[{"providerName":"ScepRequestValidationFEService","uri":"http://evil.example/"}]}"#,
                VALIDATION_SERVICE,
            )
            .is_err(),
            "plain http to a remote host is refused"
        );
    }

    #[test]
    fn revocation_settings_are_checked() {
        let parse = |t: &str| toml::from_str::<IntuneRevocationConfig>(t).expect("parses");
        let ok = parse("");
        assert_eq!((ok.interval_seconds, ok.max_requests), (300, 100));
        assert!(ok.check().is_ok());
        for bad in [
            "interval_seconds = 5",
            "max_requests = 0",
            "max_requests = 501",
            "reason = \"certificateHold\"",
            "reason = \"bogus\"",
            "api_version = \"\"",
        ] {
            assert!(parse(bad).check().is_err(), "{bad}");
        }
        assert!(toml::from_str::<IntuneRevocationConfig>("bogus = 1").is_err());
    }

    #[test]
    fn revocation_answers_are_bounded_and_checked() {
        let one =
            br#"{"value":[{"requestContext":"c1","serialNumber":"0A1B","issuerName":"CN=x"}]}"#;
        let got = wire::parse_revocation_requests(one, 10).expect("parses");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].serial_number, "0A1B");
        assert!(
            wire::parse_revocation_requests(one, 0).is_err(),
            "more than asked for"
        );
        let long = format!(
            r#"{{"value":[{{"requestContext":"{}","serialNumber":"01"}}]}}"#,
            "c".repeat(wire::MAX_REQUEST_CONTEXT + 1)
        );
        assert!(wire::parse_revocation_requests(long.as_bytes(), 10).is_err());
        assert!(
            wire::parse_revocation_requests(
                br#"{"value":[{"requestContext":"","serialNumber":"01"}]}"#,
                10
            )
            .is_err()
        );
        assert!(wire::parse_revocation_requests(b"[]", 10).is_err());
        assert_eq!(
            wire::parse_upload_answer(br#"{"value":true}"#).ok(),
            Some(true)
        );
        assert!(wire::parse_upload_answer(br#"{"value":"yes"}"#).is_err());
        assert!(revocation::enrolled_by("intune:phones", "phones"));
        assert!(revocation::enrolled_by("intune:phones:sid:S-1-5", "phones"));
        assert!(!revocation::enrolled_by("intune:phones2", "phones"));
        assert!(!revocation::enrolled_by("scep:phones", "phones"));
        assert!(!revocation::enrolled_by("cli:root", "phones"));
    }

    #[test]
    fn unknown_codes_are_refusals_that_say_so() {
        let r = refusal(
            "validateRequest",
            &ActionResponse {
                code: "SomethingNew\n".into(),
                error_description: Some("x".into()),
            },
        );
        assert_eq!(r.client_text, "Intune refused the request: SomethingNew");
        assert!(r.detail.contains("unknown code SomethingNew"));
        let r = refusal(
            "validateRequest",
            &ActionResponse {
                code: "ChallengeExpired".into(),
                error_description: None,
            },
        );
        assert!(!r.detail.contains("unknown"));
    }
}
