//! Refusals of requests that never authenticated: a wrong admin token, a wrong EST
//! password, an unknown EST label, a malformed or unauthenticated SCEP message, a wrong
//! SCEP challenge.
//!
//! Anyone can send those, so they must not each append a durable, fsynced audit entry:
//! an anonymous client could fill the disk at the rate it can send requests. They stay
//! auditable: each is counted per action and source (client address, or SCEP endpoint)
//! in a bounded table, and one summary entry per window of
//! [`SUMMARY_WINDOW_SECONDS`] goes into the hash-chained audit log, so the store grows by
//! at most one entry per window whatever the request rate. Each refusal is also written
//! to the tracing log, at most [`LOG_LINES_PER_WINDOW`] lines per action and window; the
//! number left out is in the summary.
//!
//! Refusals of authenticated requests (a policy refusal of an issuance, an admin's
//! revocation of an unknown serial) are still audited one by one
//! ([`crate::Authority::audit_refusal`]).

use std::collections::HashMap;
use std::sync::Mutex;

use store::AuditEvent;

/// Length of a summary window, seconds.
pub const SUMMARY_WINDOW_SECONDS: i64 = 300;
/// Distinct (action, source) pairs counted by name per window; refusals from further
/// pairs are counted together.
pub const MAX_SOURCES: usize = 256;
/// Pairs listed by name in a summary entry (the most frequent); the rest are summed.
pub const LISTED_SOURCES: usize = 16;
/// Log lines per action and window; further refusals of that action are only counted.
pub const LOG_LINES_PER_WINDOW: u64 = 20;
/// Longest detail kept per pair (characters).
const DETAIL_CHARS: usize = 120;
/// The audit action of a summary entry.
pub const SUMMARY_ACTION: &str = "unauthenticated-refusals";

/// (action, source) of a refusal.
type Pair = (String, String);

#[derive(Default)]
struct Window {
    /// Time of the first refusal of the window.
    start: Option<i64>,
    /// (action, source) → (count, last detail).
    counts: HashMap<Pair, (u64, String)>,
    /// Refusals from pairs beyond [`MAX_SOURCES`].
    overflow: u64,
    total: u64,
    /// Log lines written per action in this window.
    logged: HashMap<String, u64>,
    /// Log lines left out.
    suppressed: u64,
}

/// The bounded counters of unauthenticated refusals (one per [`crate::Authority`]).
#[derive(Default)]
pub struct RefusalCounter {
    window: Mutex<Window>,
}

impl std::fmt::Debug for RefusalCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefusalCounter").finish_non_exhaustive()
    }
}

fn shorten(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(DETAIL_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().count() > DETAIL_CHARS {
        out.push('…');
    }
    out
}

impl RefusalCounter {
    /// Counts one refusal at `now` and logs it unless its action's log budget for the
    /// window is spent. Returns true when the window is over (time for a summary).
    pub fn note(&self, now: i64, action: &str, source: &str, detail: &str) -> bool {
        let Ok(mut w) = self.window.lock() else {
            return false;
        };
        let start = *w.start.get_or_insert(now);
        w.total = w.total.saturating_add(1);
        let key = (action.to_string(), source.to_string());
        let room = w.counts.len() < MAX_SOURCES;
        match w.counts.get_mut(&key) {
            Some((n, last)) => {
                *n = n.saturating_add(1);
                *last = shorten(detail);
            }
            None if room => {
                w.counts.insert(key, (1, shorten(detail)));
            }
            None => w.overflow = w.overflow.saturating_add(1),
        }
        let logged = w.logged.entry(action.to_string()).or_insert(0);
        if *logged < LOG_LINES_PER_WINDOW {
            *logged += 1;
            tracing::warn!(action, source, detail = %shorten(detail), "refused unauthenticated request");
        } else {
            w.suppressed = w.suppressed.saturating_add(1);
        }
        now >= start.saturating_add(SUMMARY_WINDOW_SECONDS)
    }

    /// Whether a window with refusals has lasted [`SUMMARY_WINDOW_SECONDS`] by `now`.
    pub fn due(&self, now: i64) -> bool {
        self.window.lock().is_ok_and(|w| {
            w.start
                .is_some_and(|s| now >= s.saturating_add(SUMMARY_WINDOW_SECONDS))
        })
    }

    /// Takes the counts of the current window as a summary audit event (`None` when
    /// there were no refusals) and starts a new window. If the event cannot be written,
    /// give it back with [`RefusalCounter::restore`].
    pub fn take(&self, now: i64, actor: &str) -> Option<(AuditEvent, Taken)> {
        let mut w = self.window.lock().ok()?;
        let start = w.start?;
        let old = std::mem::take(&mut *w);
        drop(w);
        let mut pairs: Vec<_> = old.counts.iter().collect();
        pairs.sort_by(|a, b| b.1.0.cmp(&a.1.0).then_with(|| a.0.cmp(b.0)));
        let mut listed = Vec::new();
        let mut rest = old.overflow;
        for (i, ((action, source), (n, last))) in pairs.iter().enumerate() {
            if i < LISTED_SOURCES {
                listed.push(format!("{action} from {source}: {n} (last: {last})"));
            } else {
                rest = rest.saturating_add(*n);
            }
        }
        let detail = format!(
            "total={} window={}..{} log_lines_suppressed={} other_sources={}; {}",
            old.total,
            start,
            now,
            old.suppressed,
            rest,
            listed.join("; ")
        );
        let event = AuditEvent {
            time: now,
            action: SUMMARY_ACTION.into(),
            actor: actor.to_string(),
            subject: format!("{} refusals", old.total),
            detail,
        };
        Some((event, Taken(old)))
    }

    /// Puts the counts of a summary that could not be written back into the current
    /// window, so they are reported with the next one.
    pub fn restore(&self, taken: Taken) {
        let Ok(mut w) = self.window.lock() else {
            return;
        };
        let old = taken.0;
        if let Some(s) = old.start {
            w.start = Some(w.start.map_or(s, |c| c.min(s)));
        }
        w.total = w.total.saturating_add(old.total);
        w.overflow = w.overflow.saturating_add(old.overflow);
        w.suppressed = w.suppressed.saturating_add(old.suppressed);
        for (key, (n, last)) in old.counts {
            let room = w.counts.len() < MAX_SOURCES;
            match w.counts.get_mut(&key) {
                Some((c, _)) => *c = c.saturating_add(n),
                None if room => {
                    w.counts.insert(key, (n, last));
                }
                None => w.overflow = w.overflow.saturating_add(n),
            }
        }
    }
}

/// The counts behind a summary taken by [`RefusalCounter::take`].
pub struct Taken(Window);
