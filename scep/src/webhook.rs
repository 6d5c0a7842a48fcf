//! The `webhook` challenge method: an external HTTP service decides each enrollment.
//!
//! privca POSTs a JSON description of the enrollment (RFC 8894 §3.3.1 PKCSReq/RenewalReq
//! after decryption and verification) to the configured URL and accepts only on a 2xx
//! answer whose JSON body says `"allow": true`. Anything else — another status, a
//! timeout, a body that is not that JSON, `"allow": false` — is a refusal (fail closed).
//!
//! Request body (`Content-Type: application/json`):
//!
//! ```json
//! { "endpoint": "devices", "transaction_id": "…", "kind": "initial" | "renewal",
//!   "renewal_of": null | "<hex serial>", "csr": "<base64 DER>", "csr_pem": "-----BEGIN…",
//!   "challenge": null | "<challengePassword>", "subject": "CN=…", "sans": ["DNS:…"] }
//! ```
//!
//! Answer: `{"allow": true, "profile": "…"?, "requester": "…"?}` or
//! `{"allow": false, "reason": "…"?}`. With `notify_url` set, privca also POSTs
//! `{"event": "issued", …}` after issuance and `{"event": "failed", …}` after a refusal;
//! those notifications are best effort (logged when they fail, never withholding a
//! certificate).

use std::time::Duration;

use base64::Engine;
use hsm::{Secret, SecretSource};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::Error;
use crate::challenge::{
    Acceptance, BoxFuture, ChallengeMethod, EnrollKind, EnrollmentContext, FailInfo, Rejection,
    Verdict,
};
use crate::error::Result;
use crate::outbound::{self, IssuedFacts, MAX_RESPONSE_BYTES};

/// Longest profile name or requester a webhook may return.
const MAX_NAME: usize = 128;
/// Longest refusal reason kept from a webhook answer.
const MAX_REASON: usize = 200;

/// `challenge = "webhook"` settings of a SCEP endpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where enrollments are POSTed for a decision (https, or http to a loopback address).
    pub url: String,
    /// Bearer token sent as `Authorization: Bearer …` (`{ file = … }` or `{ env = … }`).
    #[serde(default)]
    pub bearer_token: Option<SecretSource>,
    /// Time limit for one call, in milliseconds (connect included).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Optional URL that receives `issued` and `failed` events (best effort).
    #[serde(default)]
    pub notify_url: Option<String>,
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl WebhookConfig {
    /// Loads the bearer token, if one is configured.
    pub fn load_bearer_token(&self) -> Result<Option<Secret>> {
        self.bearer_token
            .as_ref()
            .map(|s| {
                s.load()
                    .map_err(|e| Error::Config(format!("webhook bearer_token: {e}")))
            })
            .transpose()
    }
}

/// The webhook challenge method.
pub struct Webhook {
    url: Url,
    notify_url: Option<Url>,
    bearer: Option<Secret>,
    client: reqwest::Client,
}

/// What the webhook receives.
#[derive(Serialize)]
struct DecisionRequest<'a> {
    endpoint: &'a str,
    transaction_id: &'a str,
    kind: &'static str,
    renewal_of: Option<&'a str>,
    csr: String,
    csr_pem: String,
    challenge: Option<&'a str>,
    subject: String,
    sans: Vec<String>,
}

/// What the webhook answers. Unknown fields are ignored so that webhooks can add their own.
#[derive(Deserialize)]
struct DecisionResponse {
    allow: bool,
    #[serde(default)]
    profile: Option<String>,
    #[serde(default)]
    requester: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

impl Webhook {
    /// Builds the method from its settings and the loaded bearer token
    /// ([`WebhookConfig::load_bearer_token`]).
    pub fn new(config: &WebhookConfig, bearer_token: Option<Secret>) -> Result<Webhook> {
        if config.bearer_token.is_some() != bearer_token.is_some() {
            return Err(Error::Config(
                "webhook: bearer_token configured but not loaded (or the reverse)".into(),
            ));
        }
        if bearer_token
            .as_ref()
            .is_some_and(|t| !t.expose().iter().all(|b| b.is_ascii_graphic()))
        {
            return Err(Error::Config(
                "webhook bearer_token must be printable ASCII without spaces".into(),
            ));
        }
        if config.timeout_ms == 0 || config.timeout_ms > 120_000 {
            return Err(Error::Config(
                "webhook timeout_ms must be between 1 and 120000".into(),
            ));
        }
        let url = outbound::check_url("webhook url", &config.url)?;
        let notify_url = config
            .notify_url
            .as_deref()
            .map(|u| outbound::check_url("webhook notify_url", u))
            .transpose()?;
        let client = outbound::client(
            Duration::from_millis(config.timeout_ms),
            concat!("privca/", env!("CARGO_PKG_VERSION")),
        )?;
        Ok(Webhook {
            url,
            notify_url,
            bearer: bearer_token,
            client,
        })
    }

    /// Loads the bearer token (if any) and builds the method: what the server calls for
    /// an endpoint with `challenge = { method = "webhook", … }`.
    pub fn load(config: &WebhookConfig) -> Result<Webhook> {
        Webhook::new(config, config.load_bearer_token()?)
    }

    fn post(&self, url: &Url, body: &impl Serialize) -> reqwest::RequestBuilder {
        let mut req = self.client.post(url.clone()).json(body);
        if let Some(token) = &self.bearer {
            req = req.bearer_auth(String::from_utf8_lossy(token.expose()));
        }
        req
    }

    async fn decide(&self, ctx: &EnrollmentContext) -> std::result::Result<Acceptance, Rejection> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let csr_pem = der::pem::encode_string(
            "CERTIFICATE REQUEST",
            der::pem::LineEnding::LF,
            &ctx.csr.der,
        )
        .map_err(|e| unavailable(format!("PEM encoding of the CSR: {e}")))?;
        let body = DecisionRequest {
            endpoint: &ctx.endpoint,
            transaction_id: &ctx.transaction_id,
            kind: match ctx.kind {
                EnrollKind::Initial => "initial",
                EnrollKind::Renewal => "renewal",
            },
            renewal_of: ctx.renewal_of.as_deref(),
            csr: b64.encode(&ctx.csr.der),
            csr_pem,
            challenge: ctx.csr.challenge_password.as_deref(),
            subject: ctx.csr.subject.to_string(),
            sans: ctx.csr.sans.iter().map(|s| s.display()).collect(),
        };
        let resp = self
            .post(&self.url, &body)
            .send()
            .await
            .map_err(|e| unavailable(format!("webhook call: {}", outbound::describe(&e))))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(unavailable(format!("webhook answered HTTP {status}")));
        }
        let bytes = outbound::read_limited(resp, MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| unavailable(format!("webhook answer: {e}")))?;
        parse_decision(&bytes, &ctx.endpoint)
    }

    async fn notify(&self, ctx: &EnrollmentContext, event: serde_json::Value) {
        let Some(url) = &self.notify_url else {
            return;
        };
        let outcome = match self.post(url, &event).send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => format!("HTTP {}", r.status()),
            Err(e) => outbound::describe(&e),
        };
        warn!(
            endpoint = %ctx.endpoint,
            transaction_id = %ctx.transaction_id,
            "webhook notification failed: {outcome}"
        );
    }
}

impl ChallengeMethod for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn verifies_renewals(&self) -> bool {
        true
    }

    fn verify<'a>(&'a self, ctx: &'a EnrollmentContext) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            match self.decide(ctx).await {
                Ok(a) => {
                    info!(endpoint = %ctx.endpoint, transaction_id = %ctx.transaction_id,
                        requester = %a.requester, "webhook allowed the enrollment");
                    Verdict::Accept(a)
                }
                Err(r) => {
                    warn!(endpoint = %ctx.endpoint, transaction_id = %ctx.transaction_id,
                        "webhook refused the enrollment: {}", r.detail);
                    Verdict::Reject(r)
                }
            }
        })
    }

    fn issued<'a>(
        &'a self,
        ctx: &'a EnrollmentContext,
        cert_der: &'a [u8],
    ) -> BoxFuture<'a, std::result::Result<(), Rejection>> {
        Box::pin(async move {
            if self.notify_url.is_none() {
                return Ok(());
            }
            let facts = IssuedFacts::read(cert_der).ok();
            let event = serde_json::json!({
                "event": "issued",
                "endpoint": ctx.endpoint,
                "transaction_id": ctx.transaction_id,
                "serial": facts.as_ref().map(|f| f.serial_hex.clone()),
                "not_after": facts.as_ref().map(|f| f.not_after.clone()),
                "certificate": base64::engine::general_purpose::STANDARD.encode(cert_der),
            });
            self.notify(ctx, event).await;
            Ok(())
        })
    }

    fn failed<'a>(&'a self, ctx: &'a EnrollmentContext, why: &'a Rejection) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if self.notify_url.is_none() {
                return;
            }
            let event = serde_json::json!({
                "event": "failed",
                "endpoint": ctx.endpoint,
                "transaction_id": ctx.transaction_id,
                "fail_info": fail_info_name(why.fail_info),
                "reason": why.client_text,
            });
            self.notify(ctx, event).await;
        })
    }
}

/// Reads the webhook's answer: only `{"allow": true, …}` with sane names accepts.
fn parse_decision(bytes: &[u8], endpoint: &str) -> std::result::Result<Acceptance, Rejection> {
    let answer: DecisionResponse = serde_json::from_slice(bytes)
        .map_err(|e| unavailable(format!("webhook answer is not the expected JSON: {e}")))?;
    if !answer.allow {
        let reason = answer
            .reason
            .map(|r| clean(&r, MAX_REASON))
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "enrollment refused".into());
        return Err(Rejection {
            fail_info: FailInfo::BadRequest,
            client_text: reason.clone(),
            detail: format!("webhook refused: {reason}"),
        });
    }
    let profile = match answer.profile {
        Some(p) if !valid_name(&p) => {
            return Err(unavailable(
                "webhook answer has an invalid profile name".into(),
            ));
        }
        p => p,
    };
    let requester = match answer.requester {
        Some(r) if !valid_name(&r) => {
            return Err(unavailable(
                "webhook answer has an invalid requester".into(),
            ));
        }
        Some(r) => format!("webhook:{}:{r}", endpoint),
        None => format!("webhook:{}", endpoint),
    };
    Ok(Acceptance {
        profile,
        requester,
        spend: None,
    })
}

/// Runs the answer parser on `data` (for the fuzz target
/// `fuzz/fuzz_targets/challenge_answers.rs`); must never panic.
#[doc(hidden)]
pub fn fuzz_answer(data: &[u8]) {
    let _ = parse_decision(data, "fuzz");
}

fn fail_info_name(f: FailInfo) -> &'static str {
    match f {
        FailInfo::BadAlg => "badAlg",
        FailInfo::BadMessageCheck => "badMessageCheck",
        FailInfo::BadRequest => "badRequest",
        FailInfo::BadTime => "badTime",
        FailInfo::BadCertId => "badCertId",
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME && s.chars().all(|c| !c.is_control())
}

/// Keeps printable characters only and caps the length (text from outside goes to the
/// client and the log).
fn clean(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// The method could not get a decision: the client sees a generic text.
fn unavailable(detail: String) -> Rejection {
    Rejection {
        fail_info: FailInfo::BadRequest,
        client_text: "enrollment could not be authorized".into(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_rejects_plain_http_and_unknown_fields() {
        let c: WebhookConfig = toml_like(r#"{"url": "http://hooks.example/x"}"#).expect("parses");
        assert!(Webhook::new(&c, None).is_err());
        assert!(toml_like(r#"{"url": "https://h/x", "secret": "s"}"#).is_err());
        let c: WebhookConfig = toml_like(r#"{"url": "https://h.example/x"}"#).expect("parses");
        assert_eq!(c.timeout_ms, 10_000);
        assert!(Webhook::new(&c, None).is_ok());
        // A token that cannot go into an HTTP header is refused at start.
        let with_token: WebhookConfig =
            toml_like(r#"{"url": "https://h.example/x", "bearer_token": {"env": "X"}}"#)
                .expect("parses");
        assert!(Webhook::new(&with_token, Some(Secret::new(b"a\nb".to_vec()))).is_err());
        assert!(Webhook::new(&with_token, Some(Secret::new(b"abc".to_vec()))).is_ok());
        // A configured token that was not loaded is a wiring error.
        let c: WebhookConfig =
            toml_like(r#"{"url": "https://h.example/x", "bearer_token": {"env": "X"}}"#)
                .expect("parses");
        assert!(Webhook::new(&c, None).is_err());
    }

    fn toml_like(json: &str) -> serde_json::Result<WebhookConfig> {
        serde_json::from_str(json)
    }

    #[test]
    fn names_and_reasons_are_sanitised() {
        assert!(valid_name("tls-client"));
        assert!(!valid_name(""));
        assert!(!valid_name("a\nb"));
        assert!(!valid_name(&"x".repeat(MAX_NAME + 1)));
        assert_eq!(clean("no\r\nway", 10), "noway");
    }
}
