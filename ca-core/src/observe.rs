//! What the authority reports to an observer (the `server` crate's Prometheus metrics):
//! issuances and refusals by channel, profile and error kind, refusals of requests that
//! never authenticated, and how long issuance commits take. ca-core names no metrics
//! library and no HTTP stack (docs/architecture.md); it calls the [`Observer`] the
//! server injects with [`crate::Authority::set_observer`].
//!
//! Every label is from a bounded set: channels are protocol kinds, profiles are the
//! configured ones (anything else a client names is [`OTHER_PROFILE`]), reasons are
//! [`ErrorKind::label`]s, actions are the fixed names the front ends pass to
//! [`crate::Authority::note_unauthenticated`]. Never a serial, subject or address.

use std::time::Duration;

use crate::{Authority, ErrorKind};

/// The profile label of a refusal that named a profile this CA does not have (the name
/// came from the client, so it is not used as a label).
pub const OTHER_PROFILE: &str = "other";

/// Receives the authority's events. Calls are made on the request's thread, after the
/// fact, and must not block.
pub trait Observer: Send + Sync {
    /// A certificate was issued (and recorded) through `channel` under `profile`.
    /// Replayed answers (the same certificate again) are not issuances.
    fn issued(&self, channel: &str, profile: &str);
    /// An enrollment through `channel` for `profile` was refused with `kind`.
    fn refused(&self, channel: &str, profile: &str, kind: ErrorKind);
    /// A request that never authenticated was refused (`action` as in the audit
    /// summary: `est-refused`, `scep-refused`, `admin-refused`, ...).
    fn unauthenticated(&self, action: &str);
    /// One issuance's durable store commit took `took`.
    fn store_commit(&self, took: Duration);
}

impl Authority {
    /// Counts the refusal of an enrollment that a protocol front end refused before
    /// handing it to [`Authority::enroll`] (its CSR did not decode or uses a key this CA
    /// does not support): `policy` is the channel's, the profile its default.
    pub fn observe_refusal(&self, policy: &crate::EnrollmentPolicy, kind: ErrorKind) {
        if let Some(o) = self.observer() {
            o.refused(
                policy.channel.kind(),
                self.profile_label(&policy.default_profile),
                kind,
            );
        }
    }

    /// The profile label of `name`: itself when this CA has the profile, else
    /// [`OTHER_PROFILE`].
    pub(crate) fn profile_label<'a>(&self, name: &'a str) -> &'a str {
        if self.profiles().contains_key(name) {
            name
        } else {
            OTHER_PROFILE
        }
    }
}
