//! The in-process transport: every admin operation carried out over the authority.
//! The admin API's handlers run these, and so does the CLI when no server holds the
//! database.

use ca_core::asn1::{parse_serial_hex, serial_hex};
use ca_core::profile::San;
use ca_core::{Authority, IssueRequest, RevocationReason};
use store::{AuditVerification, CertFilter, CertStatus};

use super::Admin;
use super::types::{
    self, CertListPage, CertView, CrlView, IssueInput, IssueOutput, LIST_DEFAULT_LIMIT,
    LIST_MAX_LIMIT, ListQuery, ProfileView, RejectInput, RequestView, RequestsQuery,
    RevokeCertInput, RevokeInput, RevokeKeyInput, RevokedList, pem, rfc3339, view,
};
use crate::Error;
use crate::acme_wiring::{EabCreateInput, EabCreateOutput, EabView};
use crate::scep_wiring::{ChallengeInput, ChallengeOutput};

/// [`Admin`] over an [`Authority`] in this process. Each operation is recorded (audit
/// log, requester of issued certificates) under `actor`: `admin-api` for the admin API,
/// `cli:<user>` for the CLI.
#[derive(Clone, Copy)]
pub struct LocalAdmin<'a> {
    auth: &'a Authority,
    scep: &'a scep::config::ScepConfig,
    acme: Option<&'a acme::AcmeConfig>,
    actor: &'a str,
}

impl<'a> LocalAdmin<'a> {
    /// The operations over `auth`, with the `[scep]` configuration (for one-time
    /// challenges), recorded under `actor`.
    pub fn new(
        auth: &'a Authority,
        scep: &'a scep::config::ScepConfig,
        actor: &'a str,
    ) -> LocalAdmin<'a> {
        LocalAdmin {
            auth,
            scep,
            acme: None,
            actor,
        }
    }

    /// The same with the `[acme]` configuration (for EAB keys, whose endpoint must exist).
    pub fn with_acme(mut self, acme: &'a acme::AcmeConfig) -> LocalAdmin<'a> {
        self.acme = Some(acme);
        self
    }

    /// Makes an API token (docs/admin-api.md, "Roles and tokens").
    fn do_token_create(
        &self,
        input: &super::TokenCreateInput,
    ) -> Result<super::TokenCreateOutput, ca_core::Error> {
        let bad = |m: String| ca_core::Error::BadRequest(m);
        let name = input.name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(bad("a token name is 1 to 64 printable characters".into()));
        }
        let role = crate::access::Role::parse(&input.role).map_err(|e| bad(e.to_string()))?;
        if let Some(p) = input
            .profiles
            .iter()
            .find(|p| !self.auth.profiles().contains_key(*p))
        {
            return Err(bad(format!("no profile named {p:?}")));
        }
        if let Some(e) = input
            .scep_endpoints
            .iter()
            .find(|e| !self.scep.endpoints.contains_key(*e))
        {
            return Err(bad(format!("no SCEP endpoint named {e:?}")));
        }
        let now = self.auth.now();
        let expires_at = match &input.expires {
            Some(t) => match crate::scep_wiring::parse_ttl(t)? {
                secs if secs > 0 => Some(now.saturating_add(secs)),
                _ => return Err(bad("a token's lifetime must be positive".into())),
            },
            None => None,
        };
        let (id, text, secret_sha256) = crate::access::new_token();
        let token = store::tokens::ApiToken {
            id: id.clone(),
            name: name.to_string(),
            secret_sha256: secret_sha256.to_vec(),
            role: role.name().into(),
            profiles: input.profiles.clone(),
            scep_endpoints: input.scep_endpoints.clone(),
            created_at: now,
            created_by: self.actor.to_string(),
            expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        let audit = store::AuditEvent {
            time: now,
            action: "token-create".into(),
            actor: self.actor.to_string(),
            subject: id,
            detail: format!(
                "name={name} role={} profiles={} scep_endpoints={}",
                role.name(),
                input.profiles.join(","),
                input.scep_endpoints.join(",")
            ),
        };
        self.auth.store().put_api_token(&token, &audit)?;
        Ok(super::TokenCreateOutput {
            token: text,
            view: super::token_view(&token, now),
        })
    }

    /// Revokes an API token: it is refused from its next use.
    fn do_token_revoke(&self, id: &str) -> Result<super::TokenView, ca_core::Error> {
        let store = self.auth.store();
        let now = self.auth.now();
        let mut token = store
            .api_token(id.trim())?
            .ok_or_else(|| ca_core::Error::NotFound(format!("no API token {id}")))?;
        if token.revoked_at.is_some() {
            return Err(ca_core::Error::Conflict(format!(
                "API token {id} is revoked already"
            )));
        }
        token.revoked_at = Some(now);
        let audit = store::AuditEvent {
            time: now,
            action: "token-revoke".into(),
            actor: self.actor.to_string(),
            subject: token.id.clone(),
            detail: format!("name={}", token.name),
        };
        store.update_api_token(&token, &audit)?;
        Ok(super::token_view(&token, now))
    }

    /// Creates a one-time SCEP challenge.
    fn do_scep_challenge(&self, input: &ChallengeInput) -> Result<ChallengeOutput, ca_core::Error> {
        crate::scep_wiring::create_challenge(self.auth, self.scep, input, self.actor)
    }

    /// Issues a certificate from a CSR or a server-generated key.
    fn do_issue(&self, input: &IssueInput) -> Result<IssueOutput, ca_core::Error> {
        let (auth, requester) = (self.auth, self.actor);
        let extra = input
            .sans
            .iter()
            .map(|s| San::parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        let (mut req, key_pem) = match (&input.csr_pem, input.generate_key) {
            (Some(csr), None) => {
                let csr = ca_core::csr::parse(csr.as_bytes())?;
                if input.subject.is_some() {
                    return Err(ca_core::Error::BadRequest(
                        "give the subject in the CSR, not beside it".into(),
                    ));
                }
                (
                    IssueRequest::from_csr(&csr, &input.profile, requester),
                    None,
                )
            }
            (None, Some(alg)) => {
                let subject_text = input.subject.clone().unwrap_or_default();
                let subject: x509_cert::name::Name = if subject_text.is_empty() {
                    x509_cert::name::Name::default()
                } else {
                    subject_text.parse().map_err(|e| {
                        ca_core::Error::BadRequest(format!("subject {subject_text:?}: {e}"))
                    })?
                };
                let generated = hsm::soft::generate_exportable(alg)?;
                let req = IssueRequest {
                    profile: input.profile.clone(),
                    subject,
                    sans: Vec::new(),
                    spki_der: generated.spki_der.clone(),
                    key_algorithm: alg,
                    extensions: Vec::new(),
                    requester: requester.to_string(),
                    validity_days: None,
                    issuer: None,
                };
                (req, Some(pem("PRIVATE KEY", generated.pkcs8_der.expose())))
            }
            _ => {
                return Err(ca_core::Error::BadRequest(
                    "give either a CSR or a key algorithm to generate".into(),
                ));
            }
        };
        for s in extra {
            if !req.sans.contains(&s) {
                req.sans.push(s);
            }
        }
        req.validity_days = input.validity_days;
        let issued = auth.issue(&req)?;
        Ok(IssueOutput {
            serial: serial_hex(&issued.record.serial),
            certificate_pem: pem("CERTIFICATE", &issued.record.der),
            chain_pem: issued.chain.iter().map(|c| pem("CERTIFICATE", c)).collect(),
            private_key_pem: key_pem,
        })
    }

    /// One page of certificates (memory bounded by the page size: records are read without
    /// their DER).
    fn do_list(&self, q: &ListQuery) -> Result<CertListPage, ca_core::Error> {
        let auth = self.auth;
        let now = auth.now();
        let limit = q.limit.unwrap_or(LIST_DEFAULT_LIMIT);
        if limit == 0 || limit > LIST_MAX_LIMIT {
            return Err(ca_core::Error::BadRequest(format!(
                "limit must be between 1 and {LIST_MAX_LIMIT}; page with cursor for more"
            )));
        }
        let after = q.cursor.as_deref().map(types::decode_cursor).transpose()?;
        let mut filter = CertFilter {
            profile: q.profile.clone(),
            issuer: q.issuer.clone(),
            text: q.text.clone(),
            ..CertFilter::default()
        };
        match q.status.as_deref() {
            None => {}
            Some("valid") => {
                filter.status = Some(CertStatus::Valid);
                filter.expires_after = Some(now);
            }
            Some("revoked") => filter.status = Some(CertStatus::Revoked),
            Some("expired") => {
                filter.status = Some(CertStatus::Valid);
                filter.expires_before = Some(now);
            }
            Some(other) => {
                return Err(ca_core::Error::BadRequest(format!(
                    "status {other:?} is not one of valid, revoked, expired"
                )));
            }
        }
        if let Some(days) = q.expiring_days {
            filter.expires_after = Some(now);
            filter.expires_before = Some(now + i64::from(days) * 86_400);
            filter.status.get_or_insert(CertStatus::Valid);
        }
        let page = auth.list_page(&filter, after.as_ref(), limit)?;
        Ok(CertListPage {
            certificates: page.records.iter().map(|r| view(r, now, false)).collect(),
            next_cursor: page.next.as_ref().map(types::encode_cursor),
        })
    }

    /// Shows one certificate.
    fn do_show(&self, serial: &str) -> Result<CertView, ca_core::Error> {
        let auth = self.auth;
        let serial = parse_serial_hex(serial)?;
        Ok(view(&auth.get(&serial)?, auth.now(), true))
    }

    /// Revokes one certificate.
    fn do_revoke(&self, serial: &str, input: &RevokeInput) -> Result<CertView, ca_core::Error> {
        let (auth, actor) = (self.auth, self.actor);
        let serial = parse_serial_hex(serial)?;
        let rec = auth.revoke_with(&serial, revoke_options(input)?, actor)?;
        Ok(view(&rec, auth.now(), false))
    }

    /// Releases a certificate from hold.
    fn do_release(&self, serial: &str) -> Result<CertView, ca_core::Error> {
        let (auth, actor) = (self.auth, self.actor);
        let serial = parse_serial_hex(serial)?;
        let rec = auth.release(&serial, actor)?;
        Ok(view(&rec, auth.now(), false))
    }

    /// Revokes the certificate given.
    fn do_revoke_by_certificate(
        &self,
        input: &RevokeCertInput,
    ) -> Result<CertView, ca_core::Error> {
        let (auth, actor) = (self.auth, self.actor);
        let options = revoke_options(&input.revoke())?;
        let rec = auth.revoke_certificate(input.certificate_pem.as_bytes(), options, actor)?;
        Ok(view(&rec, auth.now(), false))
    }

    /// Revokes every unrevoked certificate of a key.
    fn do_revoke_by_key(&self, input: &RevokeKeyInput) -> Result<RevokedList, ca_core::Error> {
        let (auth, actor) = (self.auth, self.actor);
        let options = revoke_options(&input.revoke())?;
        let spki = ca_core::authority::spki_of_key_material(input.key_pem.as_bytes())?;
        let now = auth.now();
        let revoked = auth.revoke_by_key(&spki, options, actor)?;
        Ok(RevokedList {
            certificates: revoked.iter().map(|r| view(r, now, false)).collect(),
        })
    }

    /// Forces a new CRL for `ca` (all CAs when `None`).
    fn do_crl(&self, ca: Option<&str>) -> Result<Vec<CrlView>, ca_core::Error> {
        let (auth, actor) = (self.auth, self.actor);
        let names: Vec<String> = match ca {
            Some(c) => vec![auth.ca(c)?.name.clone()],
            None => auth.authorities().keys().cloned().collect(),
        };
        names
            .iter()
            .map(|n| {
                let c = auth.generate_crl(n, actor)?;
                Ok(CrlView {
                    ca: n.clone(),
                    number: c.number,
                    this_update: rfc3339(c.this_update),
                    next_update: rfc3339(c.next_update),
                    url: auth.settings().crl_url(n),
                    bytes: c.der.len(),
                })
            })
            .collect()
    }

    /// Lists profiles.
    fn do_profiles(&self) -> Vec<ProfileView> {
        self.auth
            .profiles()
            .values()
            .map(|p| ProfileView {
                name: p.name.clone(),
                issuer: p.issuer.clone(),
                validity_days: p.config.validity_days,
                extended_key_usage: p.config.extended_key_usage.clone(),
                ca: p.config.ca,
                key_algorithms: p
                    .config
                    .key_algorithms
                    .iter()
                    .map(|a| a.name().to_string())
                    .collect(),
            })
            .collect()
    }

    /// Verifies the audit chain.
    fn do_audit_verify(&self) -> Result<AuditVerification, ca_core::Error> {
        Ok(self.auth.store().verify_audit()?)
    }

    /// Lists held requests, optionally in one state (`pending`, `issued`, `rejected`).
    fn do_list_requests(&self, q: &RequestsQuery) -> Result<Vec<RequestView>, ca_core::Error> {
        let auth = self.auth;
        let state = q
            .state
            .as_deref()
            .map(ca_core::pending::parse_state)
            .transpose()?;
        Ok(auth
            .list_held(state)?
            .iter()
            .map(types::request_view)
            .collect())
    }

    /// Approves a held request; returns the issued certificate's view.
    fn do_approve_request(&self, id: u64) -> Result<CertView, ca_core::Error> {
        let (auth, actor) = (self.auth, self.actor);
        let issued = auth.approve(id, actor)?;
        Ok(view(&issued.record, auth.now(), false))
    }

    /// Rejects a held request.
    fn do_reject_request(
        &self,
        id: u64,
        input: &RejectInput,
    ) -> Result<RequestView, ca_core::Error> {
        let (auth, actor) = (self.auth, self.actor);
        if input.reason.trim().is_empty() || input.reason.len() > 200 {
            return Err(ca_core::Error::BadRequest(
                "give a reason of 1 to 200 characters".into(),
            ));
        }
        Ok(types::request_view(&auth.reject(
            id,
            actor,
            input.reason.trim(),
        )?))
    }
}

/// The authority's operations are the in-process transport; its refusals become
/// [`Error::Core`], whose kind the admin API turns into the status.
/// The reason (default `unspecified`) and invalidity date (RFC 3339) of a revocation
/// request, checked.
fn revoke_options(input: &RevokeInput) -> Result<ca_core::RevokeOptions, ca_core::Error> {
    Ok(ca_core::RevokeOptions {
        reason: RevocationReason::parse(input.reason.as_deref().unwrap_or("unspecified"))?,
        invalidity_date: input
            .invalidity_date
            .as_deref()
            .map(ca_core::clock::parse_rfc3339)
            .transpose()?,
    })
}

impl Admin for LocalAdmin<'_> {
    fn issue(&self, input: &IssueInput) -> Result<IssueOutput, Error> {
        Ok(self.do_issue(input)?)
    }
    fn list(&self, query: &ListQuery) -> Result<CertListPage, Error> {
        Ok(self.do_list(query)?)
    }
    fn show(&self, serial: &str) -> Result<CertView, Error> {
        Ok(self.do_show(serial)?)
    }
    fn revoke(&self, serial: &str, input: &RevokeInput) -> Result<CertView, Error> {
        Ok(self.do_revoke(serial, input)?)
    }
    fn release(&self, serial: &str) -> Result<CertView, Error> {
        Ok(self.do_release(serial)?)
    }
    fn revoke_by_certificate(&self, input: &RevokeCertInput) -> Result<CertView, Error> {
        Ok(self.do_revoke_by_certificate(input)?)
    }
    fn revoke_by_key(&self, input: &RevokeKeyInput) -> Result<RevokedList, Error> {
        Ok(self.do_revoke_by_key(input)?)
    }
    fn crl(&self, ca: Option<&str>) -> Result<Vec<CrlView>, Error> {
        Ok(self.do_crl(ca)?)
    }
    fn profiles(&self) -> Result<Vec<ProfileView>, Error> {
        Ok(self.do_profiles())
    }
    fn audit_verify(&self) -> Result<AuditVerification, Error> {
        Ok(self.do_audit_verify()?)
    }
    fn scep_challenge(&self, input: &ChallengeInput) -> Result<ChallengeOutput, Error> {
        Ok(self.do_scep_challenge(input)?)
    }
    fn acme_eab_create(&self, input: &EabCreateInput) -> Result<EabCreateOutput, Error> {
        let none = acme::AcmeConfig::default();
        Ok(crate::acme_wiring::create_eab(
            self.auth,
            self.acme.unwrap_or(&none),
            input,
            self.actor,
        )?)
    }
    fn acme_eab_list(&self) -> Result<Vec<EabView>, Error> {
        Ok(crate::acme_wiring::list_eab(self.auth)?)
    }
    fn requests(&self, query: &RequestsQuery) -> Result<Vec<RequestView>, Error> {
        Ok(self.do_list_requests(query)?)
    }
    fn approve(&self, id: u64) -> Result<CertView, Error> {
        Ok(self.do_approve_request(id)?)
    }
    fn reject(&self, id: u64, input: &RejectInput) -> Result<RequestView, Error> {
        Ok(self.do_reject_request(id, input)?)
    }
    fn token_create(
        &self,
        input: &super::TokenCreateInput,
    ) -> Result<super::TokenCreateOutput, Error> {
        Ok(self.do_token_create(input)?)
    }

    fn token_list(&self) -> Result<Vec<super::TokenView>, Error> {
        let now = self.auth.now();
        let tokens = self
            .auth
            .store()
            .list_api_tokens()
            .map_err(ca_core::Error::from)?;
        Ok(tokens.iter().map(|t| super::token_view(t, now)).collect())
    }

    fn token_revoke(&self, id: &str) -> Result<super::TokenView, Error> {
        Ok(self.do_token_revoke(id)?)
    }

    fn notify_log(&self, limit: usize) -> Result<Vec<crate::notify::Delivery>, Error> {
        crate::notify::delivery_log(self.auth.store().as_ref(), limit)
    }

    fn console_login_link(&self) -> Result<super::LoginLinkOutput, Error> {
        Err(Error::Usage(
            "the console is served by `privca serve`: start the server, then ask for a login link again".into(),
        ))
    }
}
