//! Durable ACME records (RFC 8555 §7.1): accounts, orders, authorizations with their
//! challenges, and External Account Binding keys (§7.3.4).
//!
//! They sit behind their own trait, [`AcmeStore`], beside [`crate::Store`]: a backend
//! that does not hold ACME records yet answers `None` from [`crate::Store::acme`] and
//! keeps compiling. Identifiers (account, order, authorization ids) are chosen by the
//! caller (random, URL-safe); the store refuses a duplicate.
//!
//! Atomicity the ACME service relies on:
//! - an EAB key binds to exactly one account, in the commit that creates the account,
//!   even when two newAccount requests race ([`AcmeStore::create_account`]);
//! - one account per key thumbprint;
//! - order and authorization updates are compare-and-set on the status they expect, so
//!   that of two concurrent finalize requests exactly one moves an order on, and an order
//!   becomes `valid` exactly once ([`AcmeStore::update_order`]).

use serde::{Deserialize, Serialize};

pub use crate::{AuditEvent, Error as StoreError};
use crate::{Result, UnixTime};

/// Status of an account (RFC 8555 §7.1.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    /// Usable.
    Valid,
    /// Deactivated by its holder (§7.3.6).
    Deactivated,
    /// Revoked by the server (an administrator, or its EAB key was disabled).
    Revoked,
}

/// An ACME account (RFC 8555 §7.1.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeAccount {
    /// Its id (the last segment of the account URL).
    pub id: String,
    /// The endpoint it was created on.
    pub endpoint: String,
    /// RFC 7638 SHA-256 thumbprint of the account key, base64url; unique.
    pub thumbprint: String,
    /// The account key, as a public JWK in JSON.
    pub jwk: String,
    /// `mailto:` contacts (§7.3).
    pub contacts: Vec<String>,
    /// Status.
    pub status: AccountStatus,
    /// The EAB key it was bound with (§7.3.4).
    pub eab_kid: Option<String>,
    /// When it was created.
    pub created_at: UnixTime,
}

/// An identifier of an order or authorization (RFC 8555 §7.1.3; `ip`: RFC 8738).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AcmeIdentifier {
    /// `dns` or `ip`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The name (lowercase) or the address in its canonical text form.
    pub value: String,
}

/// Status of an order (RFC 8555 §7.1.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// Authorizations outstanding.
    Pending,
    /// Every authorization is valid; it may be finalized.
    Ready,
    /// Finalize accepted; the certificate is being issued (or awaits approval).
    Processing,
    /// The certificate is issued.
    Valid,
    /// Failed (an authorization failed, issuance refused, expired).
    Invalid,
}

/// An order (RFC 8555 §7.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeOrder {
    /// Its id.
    pub id: String,
    /// The endpoint.
    pub endpoint: String,
    /// The account that owns it.
    pub account: String,
    /// Status.
    pub status: OrderStatus,
    /// When it expires.
    pub expires: UnixTime,
    /// The identifiers.
    pub identifiers: Vec<AcmeIdentifier>,
    /// Its authorizations, by id.
    pub authorizations: Vec<String>,
    /// The profile it issues under, when the client named one.
    pub profile: Option<String>,
    /// The SHA-256 of the DER CSR of an accepted finalize (hex): set when the order
    /// moves to `processing`.
    pub csr_sha256: Option<String>,
    /// The issued certificate's serial, once `valid`.
    pub certificate: Option<Vec<u8>>,
    /// The pending-request id while the issuance waits for an administrator.
    pub pending_id: Option<u64>,
    /// The problem document (JSON) that made it `invalid`.
    pub error: Option<String>,
    /// When it was created.
    pub created_at: UnixTime,
    /// The certificate it replaces (RFC 9773 §5, newOrder `replaces`), as its ARI
    /// certID (`base64url(AKI keyIdentifier).base64url(serial)`). Absent in records
    /// written before ARI.
    #[serde(default)]
    pub replaces: Option<String>,
}

/// Status of an authorization (RFC 8555 §7.1.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthzStatus {
    /// Waiting for a challenge to succeed.
    Pending,
    /// A challenge succeeded.
    Valid,
    /// A challenge failed.
    Invalid,
    /// Deactivated by the client (§7.5.2).
    Deactivated,
    /// Expired.
    Expired,
    /// Revoked by the server.
    Revoked,
}

/// Status of a challenge (RFC 8555 §7.1.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChallengeStatus {
    /// Not started.
    Pending,
    /// Being validated.
    Processing,
    /// Validated.
    Valid,
    /// Validation failed.
    Invalid,
}

/// A challenge of an authorization (RFC 8555 §7.1.5, §8).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeChallenge {
    /// `http-01`, `dns-01`, `tls-alpn-01`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The token (§8.1), base64url of at least 128 random bits.
    pub token: String,
    /// Status.
    pub status: ChallengeStatus,
    /// When it was validated.
    pub validated: Option<UnixTime>,
    /// The problem document (JSON) of a failed validation.
    pub error: Option<String>,
}

/// An authorization (RFC 8555 §7.1.4). Its challenges are addressed as
/// `<authz id>/<index>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeAuthz {
    /// Its id.
    pub id: String,
    /// The endpoint.
    pub endpoint: String,
    /// The account that owns it.
    pub account: String,
    /// The identifier.
    pub identifier: AcmeIdentifier,
    /// Status.
    pub status: AuthzStatus,
    /// When it expires.
    pub expires: UnixTime,
    /// The challenges offered.
    pub challenges: Vec<AcmeChallenge>,
}

/// An External Account Binding key (RFC 8555 §7.3.4): the key id and MAC key an
/// administrator hands to one ACME client.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EabKey {
    /// The key id.
    pub kid: String,
    /// The HMAC key, as given out. It must stay recoverable to verify MACs; it is never
    /// logged ([`std::fmt::Debug`] leaves it out).
    pub hmac_key: Vec<u8>,
    /// The endpoint it is valid for.
    pub endpoint: String,
    /// Who created it.
    pub created_by: String,
    /// When it was created.
    pub created_at: UnixTime,
    /// The account bound with it; `None` while unused.
    pub account: Option<String>,
    /// When it was bound.
    pub used_at: Option<UnixTime>,
}

impl std::fmt::Debug for EabKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EabKey")
            .field("kid", &self.kid)
            .field("hmac_key", &"<redacted>")
            .field("endpoint", &self.endpoint)
            .field("created_by", &self.created_by)
            .field("created_at", &self.created_at)
            .field("account", &self.account)
            .field("used_at", &self.used_at)
            .finish()
    }
}

/// The ACME records of a store. Every write is atomic and durable as [`crate::Store`]'s
/// are, with its audit event in the same commit.
pub trait AcmeStore: Send + Sync {
    /// Stores a new EAB key. [`crate::Error::Conflict`] if the kid exists.
    fn put_eab_key(&self, key: &EabKey, audit: &AuditEvent) -> Result<()>;

    /// The EAB key `kid`.
    fn eab_key(&self, kid: &str) -> Result<Option<EabKey>>;

    /// Every EAB key, by kid.
    fn list_eab_keys(&self) -> Result<Vec<EabKey>>;

    /// Creates `account`, and when `eab_kid` is set binds that key to it in the same
    /// commit. Refused, with nothing written: [`crate::Error::Conflict`] if the id or the
    /// thumbprint has an account, or the key is bound already (of two racing requests
    /// with one key exactly one succeeds); [`crate::Error::NotFound`] if the key is
    /// unknown or belongs to another endpoint.
    fn create_account(
        &self,
        account: &AcmeAccount,
        eab_kid: Option<&str>,
        audit: &AuditEvent,
    ) -> Result<()>;

    /// The account `id`.
    fn account(&self, id: &str) -> Result<Option<AcmeAccount>>;

    /// The account whose key has `thumbprint` (RFC 8555 §7.3.1).
    fn account_by_thumbprint(&self, thumbprint: &str) -> Result<Option<AcmeAccount>>;

    /// Replaces an existing account (contacts, status; a new key moves the thumbprint
    /// index, refused as [`crate::Error::Conflict`] when another account holds it).
    /// [`crate::Error::NotFound`] if there is none.
    fn update_account(&self, account: &AcmeAccount, audit: &AuditEvent) -> Result<()>;

    /// Creates an order with its new authorizations, all in one commit.
    /// [`crate::Error::Conflict`] if any id exists.
    fn create_order(
        &self,
        order: &AcmeOrder,
        authzs: &[AcmeAuthz],
        audit: &AuditEvent,
    ) -> Result<()>;

    /// The order `id`.
    fn order(&self, id: &str) -> Result<Option<AcmeOrder>>;

    /// The orders of `account`, oldest first.
    fn orders_of(&self, account: &str) -> Result<Vec<AcmeOrder>>;

    /// Replaces an order if its stored status is `expected` (compare-and-set), with
    /// `audit` when given. [`crate::Error::Conflict`] if the status differs,
    /// [`crate::Error::NotFound`] if there is none; then nothing is written.
    fn update_order(
        &self,
        order: &AcmeOrder,
        expected: OrderStatus,
        audit: Option<&AuditEvent>,
    ) -> Result<()>;

    /// The authorization `id`.
    fn authz(&self, id: &str) -> Result<Option<AcmeAuthz>>;

    /// Replaces an authorization if its stored form equals `expected` in status and
    /// challenge statuses (compare-and-set), with `audit` when given.
    /// [`crate::Error::Conflict`] if it changed, [`crate::Error::NotFound`] if none.
    fn update_authz(
        &self,
        authz: &AcmeAuthz,
        expected: &AcmeAuthz,
        audit: Option<&AuditEvent>,
    ) -> Result<()>;
}

/// Whether two forms of an authorization agree in the statuses a compare-and-set checks.
pub fn same_state(a: &AcmeAuthz, b: &AcmeAuthz) -> bool {
    a.status == b.status
        && a.challenges.len() == b.challenges.len()
        && a.challenges
            .iter()
            .zip(&b.challenges)
            .all(|(x, y)| x.status == y.status)
}
