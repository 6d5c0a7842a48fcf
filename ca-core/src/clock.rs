//! The source of "now", replaceable in tests.

use std::sync::atomic::{AtomicI64, Ordering};

use store::UnixTime;

/// Tells the current time in Unix seconds.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> UnixTime;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }
}

/// A clock that says what it is told; for tests.
#[derive(Debug)]
pub struct FixedClock(AtomicI64);

impl FixedClock {
    /// A clock stopped at `t`.
    pub fn new(t: UnixTime) -> Self {
        FixedClock(AtomicI64::new(t))
    }

    /// Moves the clock to `t`.
    pub fn set(&self, t: UnixTime) {
        self.0.store(t, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> UnixTime {
        self.0.load(Ordering::SeqCst)
    }
}

/// A Unix time as RFC 3339 text in UTC (`2026-01-02T03:04:05Z`), for audit details,
/// messages and the admin API; the number itself when it is out of range.
pub fn rfc3339(t: UnixTime) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

/// Parses an RFC 3339 date-time (`2026-01-02T03:04:05Z`, any offset) into a Unix time,
/// as `privca revoke --invalidity-date` and the admin API take it.
pub fn parse_rfc3339(text: &str) -> crate::Result<UnixTime> {
    time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
        .map(|d| d.unix_timestamp())
        .map_err(|e| {
            crate::Error::BadRequest(format!(
                "{text:?} is not an RFC 3339 date-time (like 2026-01-02T03:04:05Z): {e}"
            ))
        })
}
