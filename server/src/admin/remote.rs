//! The remote transport: every admin operation sent to a running server's admin API
//! (`/admin/v1`, docs/admin-api.md). This is the one place that builds its URLs: path
//! segments and query strings are percent-encoded by [`reqwest::Url`], and an error
//! answer becomes [`Error::Api`] with the server's status and message.

use std::time::Duration;

use reqwest::{Method, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use store::AuditVerification;

use super::Admin;
use super::types::{
    CertListPage, CertView, CrlView, IssueInput, IssueOutput, ListQuery, ProfileView, RejectInput,
    RequestView, RequestsQuery, RevokeCertInput, RevokeInput, RevokeKeyInput, RevokedList,
};
use crate::Error;
use crate::acme_wiring::{EabCreateInput, EabCreateOutput, EabView};
use crate::scep_wiring::{ChallengeInput, ChallengeOutput};

/// How long one admin API call may take (issuing with a generated RSA-4096 key, or a CRL
/// of many entries, takes a while).
const TIMEOUT: Duration = Duration::from_secs(120);

/// [`Admin`] over a running server's admin API, with its bearer token
/// (RFC 6750 §2.1).
pub struct RemoteAdmin {
    /// `…/admin/v1`, without a trailing slash.
    base: Url,
    token: hsm::Secret,
    client: reqwest::blocking::Client,
}

impl std::fmt::Debug for RemoteAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteAdmin")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

/// One argument of a call: the parts of the URL below `/admin/v1`.
struct Call<'a> {
    method: Method,
    path: &'a [&'a str],
    query: Vec<(&'static str, String)>,
}

impl<'a> Call<'a> {
    fn new(method: Method, path: &'a [&'a str]) -> Call<'a> {
        Call {
            method,
            path,
            query: Vec::new(),
        }
    }

    /// Adds `name=value` when there is a value.
    fn param(mut self, name: &'static str, value: Option<impl ToString>) -> Call<'a> {
        if let Some(v) = value {
            self.query.push((name, v.to_string()));
        }
        self
    }
}

impl RemoteAdmin {
    /// A client of the admin API of the server listening on `addr` (an unspecified
    /// address is reached over loopback), authenticating with `token`.
    pub fn new(addr: std::net::SocketAddr, token: hsm::Secret) -> Result<RemoteAdmin, Error> {
        if std::str::from_utf8(token.expose()).is_err() {
            return Err(Error::Config("admin token is not text".into()));
        }
        let base = Url::parse(&format!("http://{}/admin/v1", loopback_of(addr)))
            .map_err(|e| Error::Config(format!("admin API address: {e}")))?;
        let client = reqwest::blocking::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| Error::io("HTTP client", e))?;
        Ok(RemoteAdmin {
            base,
            token,
            client,
        })
    }

    /// The URL of a call: the base, each path element as one percent-encoded segment,
    /// and the query parameters (`application/x-www-form-urlencoded`, which the server
    /// decodes).
    fn url(&self, call: &Call<'_>) -> Result<Url, Error> {
        // URL parsing drops `.` and `..` segments (RFC 3986 §5.2.4): such a serial or name
        // would name another route.
        if let Some(dots) = call.path.iter().find(|s| matches!(**s, "." | "..")) {
            return Err(Error::Usage(format!("{dots:?} is not a serial or name")));
        }
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| Error::Config("the admin API URL cannot take a path".into()))?
            .extend(call.path);
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&call.query);
        }
        Ok(url)
    }

    /// Sends a call with an optional JSON body and reads the JSON answer. An answer that
    /// is not a success is [`Error::Api`] with the `error` of its JSON body, or its text.
    fn call<T: DeserializeOwned, B: Serialize>(
        &self,
        call: Call<'_>,
        body: Option<&B>,
    ) -> Result<T, Error> {
        let token = String::from_utf8_lossy(self.token.expose());
        let mut req = self
            .client
            .request(call.method.clone(), self.url(&call)?)
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().map_err(|e| Error::io("admin API", e))?;
        let status = resp.status();
        let bytes = resp.bytes().map_err(|e| Error::io("admin API", e))?;
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string());
            return Err(Error::Api {
                status: status.as_u16(),
                message,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| Error::io("admin API answer", e))
    }

    /// A call without a body.
    fn get<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, Error> {
        self.call::<T, ()>(call, None)
    }
}

impl Admin for RemoteAdmin {
    fn issue(&self, input: &IssueInput) -> Result<IssueOutput, Error> {
        self.call(Call::new(Method::POST, &["certificates"]), Some(input))
    }

    fn list(&self, q: &ListQuery) -> Result<CertListPage, Error> {
        // Every field of the query, under its JSON name (the server refuses others).
        let ListQuery {
            status,
            expiring_days,
            profile,
            issuer,
            text,
            limit,
            cursor,
        } = q;
        self.get(
            Call::new(Method::GET, &["certificates"])
                .param("status", status.as_ref())
                .param("expiring_days", *expiring_days)
                .param("profile", profile.as_ref())
                .param("issuer", issuer.as_ref())
                .param("text", text.as_ref())
                .param("limit", *limit)
                .param("cursor", cursor.as_ref()),
        )
    }

    fn show(&self, serial: &str) -> Result<CertView, Error> {
        self.get(Call::new(Method::GET, &["certificates", serial]))
    }

    fn revoke(&self, serial: &str, input: &RevokeInput) -> Result<CertView, Error> {
        self.call(
            Call::new(Method::POST, &["certificates", serial, "revoke"]),
            Some(input),
        )
    }

    fn release(&self, serial: &str) -> Result<CertView, Error> {
        self.get(Call::new(
            Method::POST,
            &["certificates", serial, "release"],
        ))
    }

    fn revoke_by_certificate(&self, input: &RevokeCertInput) -> Result<CertView, Error> {
        self.call(
            Call::new(Method::POST, &["revocations", "by-certificate"]),
            Some(input),
        )
    }

    fn revoke_by_key(&self, input: &RevokeKeyInput) -> Result<RevokedList, Error> {
        self.call(
            Call::new(Method::POST, &["revocations", "by-key"]),
            Some(input),
        )
    }

    fn crl(&self, ca: Option<&str>) -> Result<Vec<CrlView>, Error> {
        match ca {
            Some(c) => self.get(Call::new(Method::POST, &["crl", c])),
            None => self.get(Call::new(Method::POST, &["crl"])),
        }
    }

    fn profiles(&self) -> Result<Vec<ProfileView>, Error> {
        self.get(Call::new(Method::GET, &["profiles"]))
    }

    fn audit_verify(&self) -> Result<AuditVerification, Error> {
        self.get(Call::new(Method::GET, &["audit", "verify"]))
    }

    fn scep_challenge(&self, input: &ChallengeInput) -> Result<ChallengeOutput, Error> {
        self.call(
            Call::new(Method::POST, &["scep", "challenges"]),
            Some(input),
        )
    }

    fn acme_eab_create(&self, input: &EabCreateInput) -> Result<EabCreateOutput, Error> {
        self.call(Call::new(Method::POST, &["acme", "eab"]), Some(input))
    }

    fn acme_eab_list(&self) -> Result<Vec<EabView>, Error> {
        self.get(Call::new(Method::GET, &["acme", "eab"]))
    }

    fn requests(&self, q: &RequestsQuery) -> Result<Vec<RequestView>, Error> {
        self.get(Call::new(Method::GET, &["requests"]).param("state", q.state.as_ref()))
    }

    fn approve(&self, id: u64) -> Result<CertView, Error> {
        let id = id.to_string();
        self.get(Call::new(Method::POST, &["requests", &id, "approve"]))
    }

    fn reject(&self, id: u64, input: &RejectInput) -> Result<RequestView, Error> {
        let id = id.to_string();
        self.call(
            Call::new(Method::POST, &["requests", &id, "reject"]),
            Some(input),
        )
    }

    fn console_login_link(&self) -> Result<super::LoginLinkOutput, Error> {
        self.get(Call::new(Method::POST, &["console", "login-links"]))
    }

    fn token_create(
        &self,
        input: &super::TokenCreateInput,
    ) -> Result<super::TokenCreateOutput, Error> {
        self.call(Call::new(Method::POST, &["tokens"]), Some(input))
    }

    fn token_list(&self) -> Result<Vec<super::TokenView>, Error> {
        self.get(Call::new(Method::GET, &["tokens"]))
    }

    fn token_revoke(&self, id: &str) -> Result<super::TokenView, Error> {
        self.get(Call::new(Method::POST, &["tokens", id, "revoke"]))
    }

    fn notify_log(&self, limit: usize) -> Result<Vec<crate::notify::Delivery>, Error> {
        let limit = limit.to_string();
        self.get(Call::new(Method::GET, &["notify", "log"]).param("limit", Some(&limit)))
    }
}

/// The address to reach a listener bound to `addr` from this host.
fn loopback_of(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    if addr.ip().is_unspecified() {
        let ip = if addr.is_ipv4() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
        };
        std::net::SocketAddr::new(ip, addr.port())
    } else {
        addr
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn admin(addr: &str) -> RemoteAdmin {
        RemoteAdmin::new(addr.parse().unwrap(), hsm::Secret::new(b"t".to_vec())).unwrap()
    }

    #[test]
    fn each_path_element_is_one_encoded_segment() {
        let a = admin("0.0.0.0:8080");
        let url = a
            .url(&Call::new(
                Method::POST,
                &["certificates", "0a:1B/../x y", "revoke"],
            ))
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8080/admin/v1/certificates/0a:1B%2F..%2Fx%20y/revoke"
        );
        let url = admin("[::]:9000")
            .url(&Call::new(Method::POST, &["crl"]))
            .unwrap();
        assert_eq!(url.as_str(), "http://[::1]:9000/admin/v1/crl");
        assert!(matches!(
            a.url(&Call::new(Method::GET, &["certificates", ".."])),
            Err(Error::Usage(_))
        ));
    }

    #[test]
    fn query_parameters_are_form_encoded_and_absent_ones_left_out() {
        let a = admin("127.0.0.1:8080");
        let call = Call::new(Method::GET, &["certificates"])
            .param("status", Some("valid"))
            .param("profile", None::<String>)
            .param("text", Some("a&b=c d"))
            .param("limit", Some(5));
        assert_eq!(
            a.url(&call).unwrap().as_str(),
            "http://127.0.0.1:8080/admin/v1/certificates?status=valid&text=a%26b%3Dc+d&limit=5"
        );
        let bare = a.url(&Call::new(Method::GET, &["requests"])).unwrap();
        assert_eq!(bare.as_str(), "http://127.0.0.1:8080/admin/v1/requests");
    }

    #[test]
    fn a_token_that_is_not_text_is_refused() {
        let e = RemoteAdmin::new(
            "127.0.0.1:1".parse().unwrap(),
            hsm::Secret::new(vec![0xff, 0xfe]),
        );
        assert!(matches!(e, Err(Error::Config(_))));
    }
}
