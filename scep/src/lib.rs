//! SCEP (RFC 8894): a sans-I/O message codec (bytes in, bytes out), the enrollment
//! service, the challenge methods that authenticate requests, and a thin HTTP mapping.
//! Policy stays in ca-core (docs/architecture.md, decision 1).
//!
//! - [`codec`] (with [`ber`]): pkiMessage bytes → verified, decrypted request; CertRep
//!   and GetCACert bodies out.
//! - [`service`]: one [`service::Endpoint`] per `[scep.endpoints.<name>]`.
//! - [`challenge`]: the contract of challenge methods; [`methods`]: none, static,
//!   one-time.
//! - [`http`]: the axum routes; [`client`]: a small requester for tests and benchmarks.

pub mod ber;
pub mod challenge;
pub mod client;
pub mod codec;
pub mod config;
pub mod http;
pub mod intune;
pub mod methods;
pub mod service;
pub mod webhook;

mod error;
pub mod outbound;

pub use error::{Error, Result};
