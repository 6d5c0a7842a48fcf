//! What privca reads from Microsoft's answers: Entra ID tokens (RFC 6749 §5.1), Graph's
//! service list, the ScepActions answers and the revocation requests (docs/client-quirks.md, "Microsoft Intune").
//! Every parser takes a bounded body and never panics (fuzz target `challenge_answers`).

use std::time::{Duration, Instant};

use hsm::Secret;
use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::outbound;

/// Which token: Graph (discovery) or Intune (validation calls).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Audience {
    Graph,
    Intune,
}

pub(super) struct Token {
    pub(super) value: Secret,
    pub(super) renew_at: Instant,
}

/// Why a call to Microsoft did not produce an answer (never the answer "no").
#[derive(Debug)]
pub(super) struct Unavailable(pub(super) String);

/// The JSON answer of the ScepActions calls (docs/client-quirks.md, "Calls and answers").
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ActionResponse {
    pub(super) code: String,
    #[serde(default)]
    pub(super) error_description: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct TokenResponse {
    pub(super) access_token: String,
    pub(super) expires_in: ExpiresIn,
}

/// `expires_in` is a number in v2.0 responses; older endpoints sent a string.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum ExpiresIn {
    Number(u64),
    Text(String),
}

#[derive(Deserialize)]
pub(super) struct TokenError {
    #[serde(default)]
    pub(super) error: String,
    #[serde(default)]
    pub(super) error_description: String,
}

#[derive(Deserialize)]
pub(super) struct EndpointList {
    pub(super) value: Vec<ServiceEndpoint>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ServiceEndpoint {
    #[serde(default)]
    pub(super) provider_name: Option<String>,
    #[serde(default)]
    pub(super) service_name: Option<String>,
    #[serde(default)]
    pub(super) uri: Option<String>,
}

/// Longest token lifetime believed (Entra ID issues 60–90 minutes).
pub(super) const MAX_TOKEN_LIFETIME: u64 = 24 * 3600;

/// Reads a token response (RFC 6749 §5.1): the token, its lifetime in seconds, and when
/// to renew it: five minutes before expiry, or at half-life for short-lived tokens.
pub(super) fn parse_token(
    body: &[u8],
) -> std::result::Result<(Secret, u64, Duration), Unavailable> {
    let parsed: TokenResponse = serde_json::from_slice(body)
        .map_err(|e| Unavailable(format!("Entra ID token response is not valid: {e}")))?;
    let lifetime = match parsed.expires_in {
        ExpiresIn::Number(n) => n,
        ExpiresIn::Text(t) => t
            .trim()
            .parse()
            .map_err(|_| Unavailable("Entra ID token response has a bad expires_in".into()))?,
    };
    if parsed.access_token.is_empty() || lifetime == 0 {
        return Err(Unavailable(
            "Entra ID token response has no usable token".into(),
        ));
    }
    let lifetime = lifetime.min(MAX_TOKEN_LIFETIME);
    let margin = (lifetime / 2).min(300);
    Ok((
        Secret::new(parsed.access_token.into_bytes()),
        lifetime,
        Duration::from_secs(lifetime - margin),
    ))
}

/// Finds `service` in Graph's endpoint list (docs/client-quirks.md, "Service discovery"):
/// the entry whose providerName (or serviceName) is `service`, case-insensitively
/// ([`super::VALIDATION_SERVICE`] for enrollments, [`super::REVOCATION_SERVICE`] for revocation).
pub(super) fn parse_endpoints(body: &[u8], service: &str) -> std::result::Result<Url, Unavailable> {
    let list: EndpointList = serde_json::from_slice(body)
        .map_err(|e| Unavailable(format!("Graph service discovery answer: {e}")))?;
    let uri = list
        .value
        .iter()
        .find(|e| {
            e.provider_name
                .as_deref()
                .or(e.service_name.as_deref())
                .is_some_and(|n| n.eq_ignore_ascii_case(service))
        })
        .and_then(|e| e.uri.as_deref())
        .ok_or_else(|| {
            Unavailable(format!(
                "Graph lists no {service} for this tenant (is Intune licensed?)"
            ))
        })?;
    let url = Url::parse(uri).map_err(|e| Unavailable(format!("discovered {service} URI: {e}")))?;
    outbound::check_parsed(&format!("discovered {service}"), &url)
        .map_err(|e| Unavailable(e.to_string()))?;
    Ok(url)
}

/// One revocation request of `downloadRevocationRequests` (docs/intune.md, "Revocation").
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevocationRequest {
    /// Opaque to privca; sent back with the result.
    pub request_context: String,
    /// The certificate's serial number in hex, as privca reported it in successNotification.
    pub serial_number: String,
    /// The issuer's distinguished name, as privca reported it.
    #[serde(default)]
    pub issuer_name: Option<String>,
    /// The caConfiguration privca reported, if any.
    #[serde(default)]
    pub ca_configuration: Option<String>,
}

#[derive(Deserialize)]
struct RevocationRequests {
    value: Vec<RevocationRequest>,
}

/// The outcome of one request, as `uploadRevocationResults` takes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevocationResult {
    /// The request's context.
    pub request_context: String,
    /// Whether the certificate is now revoked by this request.
    pub succeeded: bool,
    /// 0, or one of [`super::revocation_error`].
    pub error_code: u32,
    /// Why it failed (empty on success).
    pub error_message: String,
}

/// Longest `requestContext` accepted (it is echoed back; Intune's are GUID-sized).
pub(super) const MAX_REQUEST_CONTEXT: usize = 1024;

/// Reads a `downloadRevocationRequests` answer: at most `max` requests, each with a
/// bounded context and a serial of at most 42 hex digits (21 octets).
pub(super) fn parse_revocation_requests(
    body: &[u8],
    max: usize,
) -> std::result::Result<Vec<RevocationRequest>, Unavailable> {
    let list: RevocationRequests = serde_json::from_slice(body)
        .map_err(|e| Unavailable(format!("downloadRevocationRequests answer: {e}")))?;
    if list.value.len() > max {
        return Err(Unavailable(format!(
            "downloadRevocationRequests returned {} requests, more than the {max} asked for",
            list.value.len()
        )));
    }
    if let Some(bad) = list.value.iter().find(|r| {
        r.request_context.is_empty()
            || r.request_context.len() > MAX_REQUEST_CONTEXT
            || r.request_context.chars().any(char::is_control)
    }) {
        return Err(Unavailable(format!(
            "downloadRevocationRequests returned a request with an unusable requestContext ({} bytes)",
            bad.request_context.len()
        )));
    }
    Ok(list.value)
}

/// Reads an `uploadRevocationResults` answer: `{"value": true}` when Intune took them.
pub(super) fn parse_upload_answer(body: &[u8]) -> std::result::Result<bool, Unavailable> {
    #[derive(Deserialize)]
    struct Answer {
        value: bool,
    }
    serde_json::from_slice::<Answer>(body)
        .map(|a| a.value)
        .map_err(|e| Unavailable(format!("uploadRevocationResults answer: {e}")))
}

/// Reads the answer of a ScepActions call (docs/client-quirks.md, "Calls and answers").
pub(super) fn parse_action(body: &[u8]) -> std::result::Result<ActionResponse, Unavailable> {
    serde_json::from_slice(body)
        .map_err(|e| Unavailable(format!("the answer is not the expected JSON: {e}")))
}
