//! `/metrics`: Prometheus metrics (prometheus-client), served on the plain HTTP listener
//! to loopback clients unless `[server.metrics]` says otherwise (docs/metrics.md lists
//! every metric and its labels).
//!
//! The counters are fed by ca-core through its [`Observer`] trait (ca-core names no
//! metrics library), the request latencies by a middleware on both listeners; the
//! gauges (expiring certificates, CRL age, time to expiry of the CA, RA, OCSP and HTTPS
//! certificates, key state) are read from the authority, the store and the key probe
//! when `/metrics` is fetched. Every label value comes from a bounded set: protocols,
//! configured profile and CA names, error-kind labels, key names from the configuration.
//! Never a serial, a subject or a client address.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ca_core::ErrorKind;
use ca_core::observe::Observer;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::Error;

/// Records per store page while the expiring certificates are counted.
const COUNT_PAGE: usize = 5_000;

/// Certificates expiring within this many days are counted by
/// `privca_certificates_expiring_soon`.
pub const EXPIRING_DAYS: i64 = 30;

/// The content type of the Prometheus text exposition format 0.0.4.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The content type of OpenMetrics 1.0 text, served when the client asks for it.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuedLabels {
    channel: String,
    profile: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusedLabels {
    channel: String,
    profile: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabels {
    protocol: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CaLabels {
    ca: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertLabels {
    kind: String,
    ca: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabels {
    key: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Latency buckets, seconds: 1 ms to about 33 s.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.001, 2.0, 16)
}

/// The metrics of one server.
pub struct Metrics {
    registry: Registry,
    issued: Family<IssuedLabels, Counter>,
    refused: Family<RefusedLabels, Counter>,
    unauthenticated: Family<ActionLabels, Counter>,
    latency: Family<ProtocolLabels, Histogram>,
    store_commit: Histogram,
    expiring: Gauge,
    crl_age: Family<CaLabels, FloatGauge>,
    cert_expiry: Family<CertLabels, FloatGauge>,
    key_up: Family<KeyLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric, registered and at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let issued = Family::<IssuedLabels, Counter>::default();
        registry.register(
            "privca_certificates_issued",
            "Certificates issued, by channel (scep, est, acme, admin) and profile",
            issued.clone(),
        );
        let refused = Family::<RefusedLabels, Counter>::default();
        registry.register(
            "privca_enrollments_refused",
            "Issuances refused, by channel, profile and reason (the ca-core error kind)",
            refused.clone(),
        );
        let unauthenticated = Family::<ActionLabels, Counter>::default();
        registry.register(
            "privca_unauthenticated_refusals",
            "Requests refused before they authenticated (wrong password, token or challenge; malformed message), by action",
            unauthenticated.clone(),
        );
        let latency = Family::<ProtocolLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(latency_buckets())) as fn() -> Histogram,
        );
        registry.register(
            "privca_request_duration_seconds",
            "Time to answer an HTTP request, by protocol (scep, est, ocsp, crl, admin, other)",
            latency.clone(),
        );
        let store_commit = Histogram::new(latency_buckets());
        registry.register(
            "privca_store_commit_duration_seconds",
            "Time of the durable store commit of one issuance",
            store_commit.clone(),
        );
        let expiring = Gauge::default();
        registry.register(
            "privca_certificates_expiring_soon",
            "Valid certificates whose notAfter is within the next 30 days",
            expiring.clone(),
        );
        let crl_age = Family::<CaLabels, FloatGauge>::default();
        registry.register(
            "privca_crl_age_seconds",
            "Seconds since the thisUpdate of each CA's latest CRL",
            crl_age.clone(),
        );
        let cert_expiry = Family::<CertLabels, FloatGauge>::default();
        registry.register(
            "privca_certificate_expires_in_seconds",
            "Seconds until notAfter of each CA, SCEP RA, OCSP responder and HTTPS listener certificate (negative: expired; divide by 86400 for days)",
            cert_expiry.clone(),
        );
        let key_up = Family::<KeyLabels, Gauge>::default();
        registry.register(
            "privca_key_up",
            "1 when the key's last probe signature succeeded, else 0 (the key backend's state, as /healthz reports it)",
            key_up.clone(),
        );
        Metrics {
            registry,
            issued,
            refused,
            unauthenticated,
            latency,
            store_commit,
            expiring,
            crl_age,
            cert_expiry,
            key_up,
        }
    }

    /// Records the latency of one request to `path`.
    pub fn observe_request(&self, path: &str, took: Duration) {
        self.latency
            .get_or_create(&ProtocolLabels {
                protocol: protocol_of(path).to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// The metrics in OpenMetrics text.
    pub fn encode_openmetrics(&self) -> Result<String, Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .map_err(|e| Error::io("encoding the metrics", e))?;
        Ok(out)
    }
}

impl Observer for Metrics {
    fn issued(&self, channel: &str, profile: &str) {
        self.issued
            .get_or_create(&IssuedLabels {
                channel: channel.to_string(),
                profile: profile.to_string(),
            })
            .inc();
    }

    fn refused(&self, channel: &str, profile: &str, kind: ErrorKind) {
        self.refused
            .get_or_create(&RefusedLabels {
                channel: channel.to_string(),
                profile: profile.to_string(),
                reason: kind.label().to_string(),
            })
            .inc();
    }

    fn unauthenticated(&self, action: &str) {
        self.unauthenticated
            .get_or_create(&ActionLabels {
                action: action.to_string(),
            })
            .inc();
    }

    fn store_commit(&self, took: Duration) {
        self.store_commit.observe(took.as_secs_f64());
    }
}

/// The protocol label of a request path: a bounded set whatever the client sends.
pub fn protocol_of(path: &str) -> &'static str {
    let under = |p: &str| path == p || path.starts_with(&format!("{p}/"));
    if under("/scep") || under("/cgi-bin/pkiclient.exe") {
        "scep"
    } else if under("/.well-known/est") {
        "est"
    } else if under("/ocsp") {
        "ocsp"
    } else if under("/crl") {
        "crl"
    } else if under("/admin") {
        "admin"
    } else {
        "other"
    }
}

/// notAfter of a DER certificate, Unix seconds.
fn not_after(der: &[u8]) -> Option<i64> {
    let cert = <x509_cert::Certificate as der::Decode>::from_der(der).ok()?;
    Some(ca_core::asn1::unix_of(
        &cert.tbs_certificate().validity().not_after,
    ))
}

/// What `/metrics` reads when it is fetched.
pub struct MetricsState {
    /// The counters and histograms.
    pub metrics: Arc<Metrics>,
    /// The authority (CAs, store).
    pub auth: Arc<ca_core::Authority>,
    /// The key probe (`privca_key_up`).
    pub key_probe: Option<Arc<hsm::probe::KeyProbe>>,
    /// The HTTPS listener's certificate (renewed while serving), when there is one.
    pub tls: Option<Arc<crate::tls::TlsIdentity>>,
    /// Only loopback clients may fetch `/metrics`.
    pub loopback_only: bool,
    /// Held while the gauges are set and encoded, so that concurrent scrapes do not
    /// see each other's half-set families.
    pub scrape: std::sync::Mutex<()>,
}

impl MetricsState {
    /// Sets the gauges from the authority, the store and the key probe (blocking: the
    /// store is read).
    pub fn refresh(&self) -> Result<(), Error> {
        let m = &self.metrics;
        let now = self.auth.now();
        let left = |t: i64| (t - now) as f64;
        m.cert_expiry.clear();
        m.crl_age.clear();
        for (name, ca) in self.auth.authorities() {
            let set = |kind: &str, value: f64| {
                m.cert_expiry
                    .get_or_create(&CertLabels {
                        kind: kind.to_string(),
                        ca: name.clone(),
                    })
                    .set(value);
            };
            set("ca", left(ca.not_after));
            if let Some(t) = ca
                .ra
                .as_ref()
                .and_then(|r| not_after(&r.current().cert_der))
            {
                set("ra", left(t));
            }
            if let Some(t) = ca
                .ocsp
                .as_ref()
                .and_then(|o| not_after(&o.current().cert_der))
            {
                set("ocsp", left(t));
            }
            if let Some(crl) = self.auth.store().latest_crl(name)? {
                m.crl_age
                    .get_or_create(&CaLabels { ca: name.clone() })
                    .set((now - crl.this_update) as f64);
            }
        }
        let tls_leaf = self.tls.as_ref().and_then(|t| t.chain().into_iter().next());
        if let Some(t) = tls_leaf.as_deref().and_then(not_after) {
            m.cert_expiry
                .get_or_create(&CertLabels {
                    kind: "tls".into(),
                    ca: "https".into(),
                })
                .set(left(t));
        }
        // Counted page by page without the certificates' DER, so a scrape holds at most
        // one page of records however many expire soon.
        let filter = store::CertFilter {
            status: Some(store::CertStatus::Valid),
            expires_after: Some(now),
            expires_before: Some(now + EXPIRING_DAYS * 86_400),
            ..store::CertFilter::default()
        };
        let (mut soon, mut after) = (0usize, None);
        loop {
            let page = self
                .auth
                .store()
                .list_cert_page(&filter, after.as_ref(), COUNT_PAGE)?;
            soon += page.records.len();
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        m.expiring.set(i64::try_from(soon).unwrap_or(i64::MAX));
        m.key_up.clear();
        if let Some(p) = &self.key_probe {
            for k in p.report().keys {
                m.key_up
                    .get_or_create(&KeyLabels { key: k.name })
                    .set(i64::from(k.ok));
            }
        }
        Ok(())
    }
}

/// `GET /metrics`: the Prometheus text format 0.0.4, or OpenMetrics when the client's
/// `Accept` asks for `application/openmetrics-text`.
pub async fn handler(
    State(state): State<Arc<MetricsState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if state.loopback_only && !peer.ip().is_loopback() {
        return crate::http::plain(
            StatusCode::FORBIDDEN,
            "/metrics is served to loopback clients only",
        );
    }
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let s = state.clone();
    let text = tokio::task::spawn_blocking(move || {
        let _one_at_a_time = s.scrape.lock().unwrap_or_else(|p| p.into_inner());
        s.refresh()?;
        s.metrics.encode_openmetrics()
    })
    .await;
    match text {
        Ok(Ok(text)) => {
            let (body, ct) = if openmetrics {
                (text, OPENMETRICS_CONTENT_TYPE)
            } else {
                (openmetrics_to_text(&text), TEXT_CONTENT_TYPE)
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, HeaderValue::from_static(ct))],
                body,
            )
                .into_response()
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "could not gather the metrics");
            crate::http::plain(StatusCode::SERVICE_UNAVAILABLE, "metrics unavailable")
        }
        Err(e) => {
            tracing::error!(error = %e, "the metrics task failed");
            crate::http::plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// The middleware that times every request (`privca_request_duration_seconds`).
pub async fn time_request(State(m): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let started = Instant::now();
    let resp = next.run(req).await;
    if path != "/metrics" {
        m.observe_request(&path, started.elapsed());
    }
    resp
}

/// OpenMetrics text (what prometheus-client writes) as the Prometheus text format 0.0.4,
/// which Prometheus servers before 2.x's OpenMetrics negotiation and `promtool check
/// metrics` read: a counter's family is named after its samples (`x_total`, where
/// OpenMetrics 1.0 §4.1.1 names the family `x`), and `# UNIT` and `# EOF` go.
pub fn openmetrics_to_text(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    let mut help: Option<(&str, &str)> = None;
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some((name, text)) = help.take() {
                // A HELP without TYPE: kept as it was.
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            help = Some((name, text));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let family = if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_string()
            };
            if let Some((h, text)) = help.take()
                && h == name
            {
                out.push_str(&format!("# HELP {family} {text}\n"));
            }
            out.push_str(&format!("# TYPE {family} {kind}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exposition of a few events: the counters, histogram and gauges in the text
    /// format 0.0.4 with the values recorded, the counter families named `_total`.
    #[test]
    fn exposition_carries_the_recorded_values() {
        let m = Metrics::new();
        m.issued("est", "device");
        m.issued("est", "device");
        m.issued("scep", "device");
        m.refused("est", "device", ErrorKind::PolicyRefused);
        m.unauthenticated("est-refused");
        m.store_commit(Duration::from_millis(3));
        m.observe_request("/scep/devices", Duration::from_millis(20));
        m.observe_request("/.well-known/est/simpleenroll", Duration::from_millis(5));
        m.observe_request("/ocsp/MEow", Duration::from_millis(1));
        m.expiring.set(4);
        let om = m.encode_openmetrics().expect("encode");
        assert!(om.ends_with("# EOF\n"), "{om}");
        let text = openmetrics_to_text(&om);
        assert!(!text.contains("# EOF"));
        for want in [
            "# TYPE privca_certificates_issued_total counter",
            "# HELP privca_certificates_issued_total Certificates issued",
            "privca_certificates_issued_total{channel=\"est\",profile=\"device\"} 2",
            "privca_certificates_issued_total{channel=\"scep\",profile=\"device\"} 1",
            "privca_enrollments_refused_total{channel=\"est\",profile=\"device\",reason=\"policy_refused\"} 1",
            "privca_unauthenticated_refusals_total{action=\"est-refused\"} 1",
            "# TYPE privca_request_duration_seconds histogram",
            "privca_request_duration_seconds_count{protocol=\"scep\"} 1",
            "privca_request_duration_seconds_count{protocol=\"est\"} 1",
            "privca_request_duration_seconds_count{protocol=\"ocsp\"} 1",
            "privca_request_duration_seconds_bucket{le=\"+Inf\",protocol=\"scep\"} 1",
            "privca_store_commit_duration_seconds_count 1",
            "# TYPE privca_certificates_expiring_soon gauge",
            "privca_certificates_expiring_soon 4",
        ] {
            assert!(text.contains(want), "{want:?} missing in:\n{text}");
        }
        // Every sample line belongs to the family declared before it.
        let mut family = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split(' ').next().unwrap_or("").to_string();
            } else if !line.starts_with('#') {
                assert!(line.starts_with(&family), "{line} outside {family}");
            }
        }
    }

    #[test]
    fn protocols_are_a_bounded_set() {
        assert_eq!(protocol_of("/scep"), "scep");
        assert_eq!(protocol_of("/scep/devices"), "scep");
        assert_eq!(protocol_of("/cgi-bin/pkiclient.exe"), "scep");
        assert_eq!(protocol_of("/.well-known/est/a/simpleenroll"), "est");
        assert_eq!(protocol_of("/ocsp"), "ocsp");
        assert_eq!(protocol_of("/crl/issuing.crl"), "crl");
        assert_eq!(protocol_of("/admin/v1/certificates"), "admin");
        assert_eq!(protocol_of("/scepx"), "other");
        assert_eq!(protocol_of("/anything/else"), "other");
    }
}
