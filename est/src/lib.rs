//! EST (RFC 7030, RFC 8951): the enrollment service, its encodings and authentication,
//! and the HTTP mapping. Policy stays in ca-core (docs/architecture.md, decision 1).
//!
//! * [`config`]: `[est.endpoints.<label>]` (profile, authentication, approval).
//! * [`encoding`]: base64/PEM bodies in, 64-column base64 and certs-only PKCS#7 out.
//! * [`password`]: HTTP Basic and PBKDF2 password hashes.
//! * [`password_cache`]: successful password checks, remembered (bounded, with a TTL).
//! * [`limits`]: limits on failed password checks per client address and account.
//! * [`peer`]: TLS connection facts and client-certificate validation.
//! * [`csrattrs`]: the csrattrs answer derived from the profile.
//! * [`operation`]: the operation names.
//! * [`service`]: the operations; [`http`]: their axum routes.

pub mod approval;
pub mod config;
pub mod csrattrs;
pub mod encoding;
pub mod http;
pub mod limits;
pub mod operation;
pub mod password;
pub mod password_cache;
pub mod peer;
pub mod service;

mod error;

pub use config::{EndpointConfig, EstConfig};
pub use error::{Error, Result};
pub use peer::TlsInfo;
pub use service::{EstService, Operation};
