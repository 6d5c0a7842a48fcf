//! privca's ACME server (RFC 8555), the third enrollment channel beside SCEP and EST
//! (docs/architecture.md, "Adding a protocol").
//!
//! This crate holds the layer every ACME request goes through first: the
//! verification of its JSON Web Signature ([`jws`]: RFC 8555 §6.2, RFC 7515, RFC 7518,
//! RFC 7638 thumbprints, RFC 8037 Ed25519) and of an External Account Binding (RFC 8555
//! §7.3.4), its anti-replay nonce ([`nonce`], §6.5), and the problem documents errors are answered
//! with ([`problem`], §6.7). It is sans-I/O: it reads bytes and returns verified values or an [`Error`]
//! that names its ACME problem type. On it sit the resources ([`service`]: directory,
//! nonces, accounts with EAB, orders, authorizations, http-01, dns-01 and tls-alpn-01
//! challenges, finalize,
//! certificate download, revocation), their configuration ([`config`]) and their HTTP
//! mapping ([`http`]), the DNS messages of dns-01 ([`dns`]) and the tls-alpn-01
//! certificate check ([`tls_alpn`]). Outbound validation requests go through a [`Validator`] the
//! server crate implements (it owns every socket).

pub mod config;
pub mod dns;
pub mod error;
pub mod http;
pub mod jws;
pub mod nonce;
pub mod problem;
pub mod service;
pub mod tls_alpn;

pub use config::{AcmeConfig, AcmeEndpointConfig};
pub use error::{Error, Result};
pub use service::{AcmeService, Dns01Check, Http01Check, TlsAlpn01Check, Validator};
