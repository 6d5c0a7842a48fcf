//! The privca authority: CA hierarchy, profiles and policy, serials, the issuance
//! pipeline, lints, CRLs and OCSP.
//!
//! All issuance policy lives here (DESIGN.md decision 1). Protocol front ends and the
//! CLI authenticate and translate, then hand an [`IssueRequest`] to
//! [`Authority::issue`]. There is no HTTP in this crate.

pub mod asn1;
pub mod authority;
pub mod ceremony;
pub mod clock;
pub mod config;
pub mod crl;
pub mod csr;
pub mod deadline;
pub mod enrollment;
pub mod lint;
pub mod ocsp;
pub mod pending;
pub mod profile;
pub mod refusals;

mod error;

pub use authority::{
    Authority, CaEntity, IssueBinding, IssueRequest, Issued, KeyWithCert, Recorded,
    RevocationReason, Settings,
};
pub use clock::{Clock, FixedClock, SystemClock};
pub use error::{Error, ErrorKind, RETRY_AFTER_SECONDS, Result, UNAVAILABLE_MESSAGE};
