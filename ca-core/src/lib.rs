//! The privca authority: CA hierarchy, profiles and policy, serials, the issuance
//! pipeline, lints, CRLs and OCSP.
//!
//! All issuance policy lives here (docs/architecture.md). Enrollment protocols
//! authenticate and translate, then hand an [`enroll::EnrollmentRequest`] to
//! [`Authority::enroll`] and map its [`enroll::EnrollOutcome`]; the CLI and ceremonies
//! hand an [`IssueRequest`] to [`Authority::issue`]. There is no HTTP in this crate.

pub mod asn1;
pub mod authority;
pub mod ceremony;
pub mod clock;
pub mod config;
pub mod crl;
pub mod csr;
pub mod deadline;
pub mod enroll;
pub mod enrollment;
pub mod lint;
pub mod observe;
pub mod ocsp;
pub mod pending;
pub mod profile;
pub mod refusals;
#[cfg(feature = "testing")]
pub mod testing;

mod error;

/// The ACME records of the store (`store::acme`), re-exported so that the ACME crate, which
/// depends on ca-core and never on the store (docs/architecture.md), can name them.
pub use store::acme as acme_records;

pub use authority::{
    Authority, CaEntity, IssueBinding, IssueRequest, Issued, KeyWithCert, Recorded, Renewable,
    RevocationReason, RevokeOptions, Settings,
};
pub use clock::{Clock, FixedClock, SystemClock};
pub use enroll::{EnrollOutcome, EnrollmentPolicy, EnrollmentRequest};
pub use error::{
    Answer, Error, ErrorKind, FailInfo, RETRY_AFTER_SECONDS, Result, UNAVAILABLE_MESSAGE,
};
