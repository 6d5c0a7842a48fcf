//! SCEP (RFC 8894): a sans-I/O message codec (bytes in, bytes out), the enrollment
//! service, the challenge methods that authenticate requests, and a thin HTTP mapping.
//! Policy stays in ca-core (DESIGN.md decision 1).

pub mod challenge;
pub mod intune;
pub mod webhook;

mod error;
mod outbound;

pub use error::{Error, Result};
