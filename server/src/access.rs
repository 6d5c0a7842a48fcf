//! Who may do what on the admin API and in the console (docs/admin-api.md, "Roles and
//! tokens"): roles, the rights each grants, scoped API tokens, and the one check every
//! front end calls ([`Principal::check`]).
//!
//! - The configured admin token (`[server] admin_token`) is the bootstrap administrator.
//! - Other credentials are API tokens made with `privca token create`: `pca_<id>_<secret>`,
//!   where the store keeps the id and the SHA-256 of the 32-byte secret
//!   ([`store::tokens::ApiToken`]). A token has a role, may be limited to profiles (what
//!   it may issue under) and SCEP endpoints (what it may make challenges for), may expire,
//!   and may be revoked. Its last use is recorded at most once a minute.

use base64::Engine;
use store::tokens::ApiToken;

/// What an operation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Right {
    /// List and show certificates, profiles and held requests.
    Read,
    /// Issue a certificate (scoped by profile).
    Issue,
    /// Revoke or release certificates.
    Revoke,
    /// Approve or reject held requests.
    Approve,
    /// Make one-time SCEP challenges (scoped by endpoint).
    Challenge,
    /// Sign a CRL now.
    Crl,
    /// Verify the audit log.
    Audit,
    /// Manage ACME EAB keys.
    Eab,
    /// Manage API tokens and console login links.
    Tokens,
}

/// The roles of issue 14 item 3, and two narrow ones for automation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Everything.
    Administrator,
    /// Issue, revoke, approve, challenges, CRLs, reading and the audit check.
    Operator,
    /// Read only, and the audit check.
    Auditor,
    /// One-time SCEP challenges only (an MDM's token), usually for listed endpoints.
    Challenges,
    /// Issuance only (an automation's token), usually under listed profiles.
    Issuer,
}

/// Every role name `privca token create --role` takes.
pub const ROLE_NAMES: &[&str] = &[
    "administrator",
    "operator",
    "auditor",
    "challenges",
    "issuer",
];

impl Role {
    /// The role named `name`.
    pub fn parse(name: &str) -> Result<Role, crate::Error> {
        Ok(match name {
            "administrator" => Role::Administrator,
            "operator" => Role::Operator,
            "auditor" => Role::Auditor,
            "challenges" => Role::Challenges,
            "issuer" => Role::Issuer,
            other => {
                return Err(crate::Error::Usage(format!(
                    "role {other:?} is not one of {}",
                    ROLE_NAMES.join(", ")
                )));
            }
        })
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Administrator => "administrator",
            Role::Operator => "operator",
            Role::Auditor => "auditor",
            Role::Challenges => "challenges",
            Role::Issuer => "issuer",
        }
    }

    /// Whether the role grants `right` (before any scope).
    pub fn grants(self, right: Right) -> bool {
        use Right::*;
        match self {
            Role::Administrator => true,
            Role::Operator => matches!(
                right,
                Read | Issue | Revoke | Approve | Challenge | Crl | Audit
            ),
            Role::Auditor => matches!(right, Read | Audit),
            Role::Challenges => right == Challenge,
            Role::Issuer => right == Issue,
        }
    }
}

/// What an operation acts on, for scoped tokens.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// Nothing a scope names.
    Any,
    /// Issuance under this profile.
    Profile(&'a str),
    /// One-time challenges for this SCEP endpoint.
    ScepEndpoint(&'a str),
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// How audit entries and issued certificates name the caller: `admin-api` for the
    /// configured admin token, `token:<name>/<id>` for an API token.
    pub actor: String,
    /// Its role.
    pub role: Role,
    /// Only these profiles, when not empty.
    pub profiles: Vec<String>,
    /// Only these SCEP endpoints, when not empty.
    pub scep_endpoints: Vec<String>,
}

impl Principal {
    /// The holder of the configured admin token.
    pub fn bootstrap(actor: &str) -> Principal {
        Principal {
            actor: actor.to_string(),
            role: Role::Administrator,
            profiles: Vec::new(),
            scep_endpoints: Vec::new(),
        }
    }

    /// The holder of a stored token.
    pub fn of_token(token: &ApiToken) -> Result<Principal, crate::Error> {
        Ok(Principal {
            actor: format!("token:{}/{}", token.name, token.id),
            role: Role::parse(&token.role)?,
            profiles: token.profiles.clone(),
            scep_endpoints: token.scep_endpoints.clone(),
        })
    }

    /// Whether the caller may do what needs `right` on `target`; the refusal says what is
    /// missing (for a 403 answer).
    pub fn check(&self, right: Right, target: Target<'_>) -> Result<(), String> {
        if !self.role.grants(right) {
            return Err(format!(
                "{} (role {}) may not do this: it needs the {right:?} right",
                self.actor,
                self.role.name()
            ));
        }
        match target {
            Target::Profile(p)
                if !self.profiles.is_empty() && !self.profiles.iter().any(|x| x == p) =>
            {
                Err(format!(
                    "{} may issue under profiles {} only, not {p:?}",
                    self.actor,
                    self.profiles.join(", ")
                ))
            }
            Target::ScepEndpoint(e)
                if !self.scep_endpoints.is_empty()
                    && !self.scep_endpoints.iter().any(|x| x == e) =>
            {
                Err(format!(
                    "{} may make challenges for SCEP endpoints {} only, not {e:?}",
                    self.actor,
                    self.scep_endpoints.join(", ")
                ))
            }
            _ => Ok(()),
        }
    }
}

/// The prefix of every API token.
const PREFIX: &str = "pca_";

/// A new token's id and the whole token text (shown once).
pub fn new_token() -> (String, String, [u8; 32]) {
    let id = hex::encode(rand::random::<[u8; 6]>());
    let secret: [u8; 32] = rand::random();
    let text = format!(
        "{PREFIX}{id}_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    (id, text, crate::http::token_hash(&secret))
}

/// The id and the SHA-256 of the secret of a presented token, if it has the token shape.
pub fn parse_token(text: &str) -> Option<(&str, [u8; 32])> {
    let rest = text.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(secret)
        .ok()?;
    (secret.len() == 32).then(|| (id, crate::http::token_hash(&secret)))
}

/// Why a presented API token is refused (401), or its principal.
pub fn authenticate(
    store: &dyn store::Store,
    presented: &str,
    now: i64,
) -> Result<Option<(Principal, ApiToken)>, crate::Error> {
    let Some((id, hash)) = parse_token(presented.trim()) else {
        return Ok(None);
    };
    let Some(token) = store.api_token(id)? else {
        return Ok(None);
    };
    if !hsm::ct_eq(&hash, &token.secret_sha256) {
        return Ok(None);
    }
    if token.revoked_at.is_some() || token.expires_at.is_some_and(|e| e <= now) {
        return Ok(None);
    }
    Ok(Some((Principal::of_token(&token)?, token)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scoped(role: Role, profiles: &[&str], endpoints: &[&str]) -> Principal {
        Principal {
            actor: "token:t/0".into(),
            role,
            profiles: profiles.iter().map(|s| s.to_string()).collect(),
            scep_endpoints: endpoints.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn roles_grant_their_rights_and_scopes_narrow_them() {
        let auditor = scoped(Role::Auditor, &[], &[]);
        assert!(auditor.check(Right::Read, Target::Any).is_ok());
        assert!(auditor.check(Right::Audit, Target::Any).is_ok());
        for r in [
            Right::Issue,
            Right::Revoke,
            Right::Approve,
            Right::Challenge,
            Right::Tokens,
        ] {
            assert!(auditor.check(r, Target::Any).is_err(), "{r:?}");
        }
        let operator = scoped(Role::Operator, &[], &[]);
        assert!(operator.check(Right::Revoke, Target::Any).is_ok());
        assert!(operator.check(Right::Tokens, Target::Any).is_err());
        assert!(operator.check(Right::Eab, Target::Any).is_err());
        let mdm = scoped(Role::Challenges, &[], &["devices"]);
        assert!(
            mdm.check(Right::Challenge, Target::ScepEndpoint("devices"))
                .is_ok()
        );
        let e = mdm
            .check(Right::Challenge, Target::ScepEndpoint("servers"))
            .expect_err("another endpoint");
        assert!(e.contains("devices") && e.contains("servers"), "{e}");
        assert!(mdm.check(Right::Read, Target::Any).is_err());
        let ci = scoped(Role::Issuer, &["tls-server"], &[]);
        assert!(
            ci.check(Right::Issue, Target::Profile("tls-server"))
                .is_ok()
        );
        assert!(ci.check(Right::Issue, Target::Profile("device")).is_err());
        assert!(ci.check(Right::Revoke, Target::Any).is_err());
        assert!(
            Principal::bootstrap("admin-api")
                .check(Right::Tokens, Target::Any)
                .is_ok()
        );
    }

    #[test]
    fn tokens_parse_only_in_their_shape() {
        let (id, text, hash) = new_token();
        assert_eq!(parse_token(&text), Some((id.as_str(), hash)));
        assert!(parse_token("pca_short_abc").is_none());
        assert!(parse_token(&text.replace("pca_", "pcb_")).is_none());
        assert!(parse_token(&format!("{text}x")).is_none());
        assert!(parse_token("").is_none());
        assert!(Role::parse("root").is_err());
        for name in ROLE_NAMES {
            assert_eq!(Role::parse(name).expect("role").name(), *name);
        }
    }
}
