//! Notifications (docs/notifications.md): webhooks for what happens in the CA, and
//! reminders before certificates expire.
//!
//! **The outbox is the audit log.** Every change privca makes writes its audit entry in
//! the same store transaction as the change (issuance, revocation, approval, refusal,
//! token, CRL …), so a change that committed always has its entry, and an entry means the
//! change committed. Each webhook keeps a cursor, the sequence number of the last entry it
//! delivered, in the store's service state. The worker reads the entries after it,
//! delivers them in order, and advances the cursor after each success. A crash loses
//! nothing and re-sends at most the entry that was in flight. The receiver de-duplicates
//! with the `webhook-id` header.
//!
//! **Reminders.** On each round, for each configured tier (days before notAfter), the
//! worker lists the valid certificates expiring within it and sends one
//! `expiry-reminder` per certificate and tier. It marks that pair as sent in the service
//! state after the delivery, so a reminder goes out once per tier, also across restarts.
//!
//! **Signing** follows the Standard Webhooks scheme:
//! - headers `webhook-id`, `webhook-timestamp` (Unix seconds) and
//!   `webhook-signature: v1,<base64 HMAC-SHA256(secret, id "." timestamp "." body)>`;
//! - the secret comes from a file or an environment variable.
//!
//! **Failures** are retried with exponential backoff (1 s doubling to 5 min) up to
//! `max_attempts`. Then the event is logged as failed and skipped, so that one bad event
//! cannot stop the stream. Every attempt goes to the delivery log (`privca notify log`).

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::Error;
use hsm::SecretSource;

/// `[notify]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Where events go.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// Days before notAfter at which a reminder goes out (for example `[90, 30, 7, 1]`);
    /// empty: no reminders.
    #[serde(default)]
    pub reminder_days: Vec<u32>,
    /// Seconds between rounds (default 10).
    #[serde(default = "default_poll")]
    pub poll_seconds: u64,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            webhooks: Vec::new(),
            reminder_days: Vec::new(),
            poll_seconds: default_poll(),
        }
    }
}

fn default_poll() -> u64 {
    10
}

fn default_attempts() -> u32 {
    8
}

/// One webhook receiver.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Its name (cursor and log keys).
    pub name: String,
    /// `https://…` (plain `http://` to loopback only).
    pub url: String,
    /// The HMAC-SHA256 key, from a file or an environment variable.
    pub secret: SecretSource,
    /// Only these audit actions (for example `["issue", "revoke"]`), and `expiry-reminder`
    /// for reminders; empty: everything.
    #[serde(default)]
    pub events: Vec<String>,
    /// Attempts per event before it is logged as failed and skipped (default 8).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

/// Service-state namespaces.
const CURSORS: &str = "notify-cursor";
const SENT: &str = "notify-reminded";
const LOG: &str = "notify-log";
/// Entries read per round and webhook.
const BATCH: usize = 200;

/// One event as receivers get it (JSON body).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Event {
    /// Unique per event: `audit-<seq>` or `reminder-<serial>-<days>`.
    pub id: String,
    /// The audit action (`issue`, `revoke`, `approve`, `access-refused`, …) or
    /// `expiry-reminder`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened (RFC 3339).
    pub time: String,
    /// Who did it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub actor: String,
    /// What it concerns (a serial, a CA, an endpoint).
    pub subject: String,
    /// The audit entry's detail, or the reminder's.
    pub detail: serde_json::Value,
}

/// One line of the delivery log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Delivery {
    /// RFC 3339.
    pub time: String,
    /// The webhook's name.
    pub webhook: String,
    /// The event's id.
    pub event: String,
    /// The attempt number, from 1.
    pub attempt: u32,
    /// `delivered`, `retrying` or `failed`.
    pub outcome: String,
    /// The HTTP status or the connection error.
    pub detail: String,
}

/// A webhook ready to send to.
struct Hook {
    cfg: WebhookConfig,
    url: reqwest::Url,
    key: hmac::Key,
}

impl Hook {
    fn wants(&self, kind: &str) -> bool {
        self.cfg.events.is_empty() || self.cfg.events.iter().any(|e| e == kind)
    }
}

/// Checks `[notify]` and loads the webhook secrets; errors name the setting.
fn hooks(cfg: &crate::config::Config) -> Result<Vec<Hook>, Error> {
    let mut out: Vec<Hook> = Vec::new();
    for w in &cfg.notify.webhooks {
        if w.name.is_empty()
            || !w
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::Config(format!(
                "[notify] webhook name {:?}: letters, digits, '-' and '_' only",
                w.name
            )));
        }
        if out.iter().any(|h| h.cfg.name == w.name) {
            return Err(Error::Config(format!(
                "[notify] webhook {:?} is named twice",
                w.name
            )));
        }
        if w.max_attempts == 0 {
            return Err(Error::Config(format!(
                "[notify] webhook {}: max_attempts must be at least 1",
                w.name
            )));
        }
        let url = scep::outbound::check_url(&format!("[notify] webhook {} url", w.name), &w.url)
            .map_err(|e| Error::Config(e.to_string()))?;
        let secret = cfg.secret(&w.secret).load()?;
        if secret.expose().len() < 16 {
            return Err(Error::Config(format!(
                "[notify] webhook {}: the secret must be at least 16 bytes",
                w.name
            )));
        }
        out.push(Hook {
            cfg: w.clone(),
            url,
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.expose()),
        });
    }
    if cfg.notify.poll_seconds == 0 || cfg.notify.poll_seconds > 3600 {
        return Err(Error::Config(
            "[notify] poll_seconds must be 1 to 3600".into(),
        ));
    }
    if cfg
        .notify
        .reminder_days
        .iter()
        .any(|d| *d == 0 || *d > 3650)
    {
        return Err(Error::Config(
            "[notify] reminder_days must be 1 to 3650".into(),
        ));
    }
    Ok(out)
}

/// The `webhook-signature` value of `body` (Standard Webhooks: `v1,` then base64 of
/// HMAC-SHA256 over `id.timestamp.body`).
pub fn signature(key: &hmac::Key, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    let tag = hmac::sign(key, &signed);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
    )
}

/// Starts the worker when `[notify]` has a webhook; checks the section either way.
pub fn start(cfg: &crate::config::Config, auth: Arc<ca_core::Authority>) -> Result<(), Error> {
    let hooks = hooks(cfg)?;
    if hooks.is_empty() {
        return Ok(());
    }
    let client = scep::outbound::client(Duration::from_secs(10), "privca-notify")
        .map_err(|e| Error::Config(e.to_string()))?;
    // A new webhook starts at the end of the log as the server starts: it gets what
    // happens from now on, not the history.
    let store = auth.store();
    for hook in &hooks {
        if store.state_get(CURSORS, &hook.cfg.name)?.is_none() {
            let head = store.stats()?.audit_entries;
            store.state_put(CURSORS, &hook.cfg.name, head.to_string().as_bytes())?;
        }
    }
    let poll = Duration::from_secs(cfg.notify.poll_seconds);
    let tiers = cfg.notify.reminder_days.clone();
    tokio::spawn(async move {
        let worker = Worker {
            auth,
            hooks,
            client,
            tiers,
        };
        loop {
            if let Err(e) = worker.round().await {
                tracing::warn!(error = %e, "notification round failed; trying again next round");
            }
            tokio::time::sleep(poll).await;
        }
    });
    Ok(())
}

struct Worker {
    auth: Arc<ca_core::Authority>,
    hooks: Vec<Hook>,
    client: reqwest::Client,
    tiers: Vec<u32>,
}

impl Worker {
    /// Runs a store call on the blocking pool.
    async fn store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn store::Store) -> store::Result<T> + Send + 'static,
    ) -> Result<T, Error> {
        let auth = self.auth.clone();
        tokio::task::spawn_blocking(move || f(auth.store().as_ref()))
            .await
            .map_err(|e| Error::Io(format!("notification task: {e}")))?
            .map_err(Error::from)
    }

    async fn round(&self) -> Result<(), Error> {
        for hook in &self.hooks {
            self.deliver_audit(hook).await?;
        }
        self.remind().await
    }

    /// Delivers the audit entries after the hook's cursor.
    async fn deliver_audit(&self, hook: &Hook) -> Result<(), Error> {
        let name = hook.cfg.name.clone();
        let cursor = self
            .store(move |s| s.state_get(CURSORS, &name))
            .await?
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|v| v.parse::<u64>().ok());
        // Set by `start`; should it be gone, start again at the end of the log.
        let Some(mut cursor) = cursor else {
            let head = self.store(|s| s.stats()).await?.audit_entries;
            self.save_cursor(hook, head).await?;
            return Ok(());
        };
        let entries = self
            .store(move |s| s.audit_entries(cursor + 1, BATCH))
            .await?;
        for e in entries {
            if hook.wants(&e.event.action) {
                let event = Event {
                    id: format!("audit-{}", e.seq),
                    kind: e.event.action.clone(),
                    time: crate::admin::rfc3339(e.event.time),
                    actor: e.event.actor.clone(),
                    subject: e.event.subject.clone(),
                    detail: serde_json::Value::String(e.event.detail.clone()),
                };
                self.send(hook, &event).await?;
            }
            cursor = e.seq;
            self.save_cursor(hook, cursor).await?;
        }
        Ok(())
    }

    async fn save_cursor(&self, hook: &Hook, seq: u64) -> Result<(), Error> {
        let name = hook.cfg.name.clone();
        self.store(move |s| s.state_put(CURSORS, &name, seq.to_string().as_bytes()))
            .await
    }

    /// One reminder per certificate and tier.
    async fn remind(&self) -> Result<(), Error> {
        let mut tiers = self.tiers.clone();
        tiers.sort_unstable();
        tiers.dedup();
        for days in tiers {
            let now = self.auth.now();
            let mut after: Option<store::CertCursor> = None;
            loop {
                let filter = store::CertFilter {
                    status: Some(store::CertStatus::Valid),
                    expires_after: Some(now),
                    expires_before: Some(now + i64::from(days) * 86_400),
                    ..store::CertFilter::default()
                };
                let from = after.clone();
                let page = self
                    .store(move |s| s.list_cert_page(&filter, from.as_ref(), 500))
                    .await?;
                for r in &page.records {
                    self.remind_one(r, days, now).await?;
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
        Ok(())
    }

    async fn remind_one(&self, r: &store::CertRecord, days: u32, now: i64) -> Result<(), Error> {
        let serial = ca_core::asn1::serial_hex(&r.serial);
        let key = format!("{serial}/{days}");
        let k = key.clone();
        if self.store(move |s| s.state_get(SENT, &k)).await?.is_some() {
            return Ok(());
        }
        let event = Event {
            id: format!("reminder-{serial}-{days}"),
            kind: "expiry-reminder".into(),
            time: crate::admin::rfc3339(now),
            actor: String::new(),
            subject: serial.clone(),
            detail: serde_json::json!({
                "tier_days": days,
                "days_left": (r.not_after - now) / 86_400,
                "not_after": crate::admin::rfc3339(r.not_after),
                "subject": r.subject,
                "sans": r.sans,
                "profile": r.profile,
                "issuer": r.issuer,
            }),
        };
        for hook in self.hooks.iter().filter(|h| h.wants("expiry-reminder")) {
            self.send(hook, &event).await?;
        }
        self.store(move |s| s.state_put(SENT, &key, b"1")).await
    }

    /// POSTs one event, retrying with backoff; every attempt is logged. Returns when it
    /// was delivered or given up on.
    async fn send(&self, hook: &Hook, event: &Event) -> Result<(), Error> {
        let body = serde_json::to_vec(event)
            .map_err(|e| Error::Io(format!("encoding a notification: {e}")))?;
        let mut backoff = Duration::from_secs(1);
        for attempt in 1..=hook.cfg.max_attempts {
            let timestamp = self.auth.now();
            let result = self
                .client
                .post(hook.url.clone())
                .header("content-type", "application/json")
                .header("webhook-id", &event.id)
                .header("webhook-timestamp", timestamp.to_string())
                .header(
                    "webhook-signature",
                    signature(&hook.key, &event.id, timestamp, &body),
                )
                .body(body.clone())
                .send()
                .await;
            let (ok, detail) = match result {
                Ok(r) if r.status().is_success() => (true, r.status().as_u16().to_string()),
                Ok(r) => (false, r.status().as_u16().to_string()),
                Err(e) => (false, scep::outbound::describe(&e)),
            };
            let outcome = if ok {
                "delivered"
            } else if attempt == hook.cfg.max_attempts {
                "failed"
            } else {
                "retrying"
            };
            self.log(hook, event, attempt, outcome, &detail).await?;
            if ok {
                return Ok(());
            }
            if attempt < hook.cfg.max_attempts {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(300));
            }
        }
        tracing::warn!(webhook = %hook.cfg.name, event = %event.id, "notification given up after every attempt");
        Ok(())
    }

    async fn log(
        &self,
        hook: &Hook,
        event: &Event,
        attempt: u32,
        outcome: &str,
        detail: &str,
    ) -> Result<(), Error> {
        let now = self.auth.now();
        let line = Delivery {
            time: crate::admin::rfc3339(now),
            webhook: hook.cfg.name.clone(),
            event: event.id.clone(),
            attempt,
            outcome: outcome.into(),
            detail: detail.chars().take(200).collect(),
        };
        let json = serde_json::to_vec(&line)
            .map_err(|e| Error::Io(format!("encoding the delivery log: {e}")))?;
        // Keys sort by time, then a random tail keeps two lines of one second apart.
        let key = format!("{now:012}-{:016x}", rand::random::<u64>());
        self.store(move |s| s.state_put(LOG, &key, &json)).await
    }
}

/// The delivery log, oldest first, at most `limit` lines after `after` (a key).
pub fn delivery_log(store: &dyn store::Store, limit: usize) -> Result<Vec<Delivery>, Error> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.state_list(LOG, after.as_deref(), 1000)?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = Some(last.clone());
        for (_, v) in &page {
            if let Ok(d) = serde_json::from_slice::<Delivery>(v) {
                out.push(d);
            }
        }
    }
    let skip = out.len().saturating_sub(limit);
    Ok(out.split_off(skip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absent_section_has_working_defaults() {
        let cfg: NotifyConfig = toml::from_str("").expect("empty");
        assert_eq!(cfg.poll_seconds, 10);
        assert_eq!(NotifyConfig::default().poll_seconds, 10);
        assert!(cfg.webhooks.is_empty() && cfg.reminder_days.is_empty());
    }

    #[test]
    fn the_signature_is_hmac_sha256_over_id_timestamp_and_body() {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"0123456789abcdef");
        let sig = signature(&key, "audit-7", 1_700_000_000, b"{\"a\":1}");
        let expected = hmac::sign(&key, b"audit-7.1700000000.{\"a\":1}");
        assert_eq!(
            sig,
            format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(expected.as_ref())
            )
        );
        assert_ne!(sig, signature(&key, "audit-8", 1_700_000_000, b"{\"a\":1}"));
    }
}
