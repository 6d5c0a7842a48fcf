//! privca's ACME server (RFC 8555), the third enrollment channel beside SCEP and EST
//! (docs/architecture.md, "Adding a protocol").
//!
//! This crate holds, so far, the layer every ACME request goes through first: the
//! verification of its JSON Web Signature ([`jws`]: RFC 8555 §6.2, RFC 7515, RFC 7518,
//! RFC 7638 thumbprints, RFC 8037 Ed25519) and of an External Account Binding (RFC 8555
//! §7.3.4), its anti-replay nonce ([`nonce`], §6.5), and the problem documents errors are answered
//! with ([`problem`], §6.7). It is sans-I/O: it reads bytes and returns verified values or an [`Error`]
//! that names its ACME problem type. Resources, orders, challenges and the HTTP mapping
//! are not built yet.

pub mod error;
pub mod jws;
pub mod nonce;
pub mod problem;

pub use error::{Error, Result};
