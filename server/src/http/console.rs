//! The web console (`/ui`, docs/console.md): server-rendered pages over the same
//! [`Admin`] operations as the admin API, so that the console, the API and the CLI do
//! one thing one way.
//!
//! - **Login**: with the admin token (a form), or with a one-time login link that the
//!   admin API hands out (`POST /admin/v1/console/login-links`, `privca console
//!   login-link`), which is also how a headless browser logs in in the tests.
//! - **Session**: a cookie `privca_console` holding the principal, the expiry and the
//!   session's CSRF token, MACed with HMAC-SHA256 under a key drawn at start (a restart
//!   logs everyone out). `HttpOnly; Secure; SameSite=Strict; Path=/ui`.
//! - **CSRF**: every form carries the session's token; a POST without it, or with
//!   another, is refused with 403 and changes nothing. `SameSite=Strict` is the second
//!   line.
//! - **Headers**: a strict `Content-Security-Policy` (`default-src 'self'`, no inline
//!   script or style: the stylesheet is `/ui/console.css`, the chart is SVG attributes),
//!   `frame-ancestors 'none'`, `Cache-Control: no-store`, `Referrer-Policy: no-referrer`.
//! - Served to loopback clients only unless the admin API is opened up, like the API.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use askama::Template;
use aws_lc_rs::hmac;
use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{AppState, plain, token_hash};
use crate::Error;
use crate::access::Right;
use crate::admin::{
    Admin, CertView, ListQuery, LocalAdmin, RejectInput, RequestView, RequestsQuery, RevokeInput,
};

/// How long a console session lasts.
const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// How long a one-time login link may wait to be used.
pub(super) const LINK_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// Most login links outstanding at once (older ones are dropped first).
const MAX_LINKS: usize = 64;
/// The session cookie's name.
const COOKIE: &str = "privca_console";
/// Certificates per page in the list.
const PAGE: usize = 50;
/// Weeks shown in the expiry chart (the issue asks for the next 90 days).
const CHART_WEEKS: usize = 13;

/// The console's own state: the session key and the outstanding login links.
pub struct Console {
    key: hmac::Key,
    links: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Default for Console {
    fn default() -> Self {
        Console::new()
    }
}

impl Console {
    /// A console with a fresh session key.
    pub fn new() -> Console {
        let seed: [u8; 32] = rand::random();
        Console {
            key: hmac::Key::new(hmac::HMAC_SHA256, &seed),
            links: Mutex::new(HashMap::new()),
        }
    }

    /// A new one-time login link's secret (base64url), valid for [`LINK_LIFETIME`].
    pub fn new_login_link(&self) -> String {
        let secret: [u8; 32] = rand::random();
        let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        links.retain(|_, born| now.duration_since(*born) < LINK_LIFETIME);
        while links.len() >= MAX_LINKS {
            let Some(oldest) = links.iter().min_by_key(|(_, b)| **b).map(|(k, _)| *k) else {
                break;
            };
            links.remove(&oldest);
        }
        links.insert(token_hash(&secret), now);
        b64(&secret)
    }

    /// Spends a login link: true once for a live link, false afterwards and for anything else.
    fn spend_login_link(&self, secret: &str) -> bool {
        let Ok(raw) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(secret.trim()) else {
            return false;
        };
        let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        match links.remove(&token_hash(&raw)) {
            Some(born) => born.elapsed() < LINK_LIFETIME,
            None => false,
        }
    }

    /// The cookie value of a new session with credential `cred` ([`Ticket::cred`]).
    fn issue(&self, cred: &str, now: i64) -> String {
        let csrf: [u8; 16] = rand::random();
        let body = format!(
            "{}|{}|{}",
            now + SESSION_LIFETIME.as_secs() as i64,
            hex::encode(csrf),
            cred
        );
        let mac = hmac::sign(&self.key, body.as_bytes());
        format!("{}.{}", b64(body.as_bytes()), b64(mac.as_ref()))
    }

    /// The ticket a cookie value holds, if its MAC holds and it has not expired.
    fn open(&self, value: &str, now: i64) -> Option<Ticket> {
        let (body, mac) = value.split_once('.')?;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let body = engine.decode(body).ok()?;
        let mac = engine.decode(mac).ok()?;
        hmac::verify(&self.key, &body, &mac).ok()?;
        let body = String::from_utf8(body).ok()?;
        let mut parts = body.splitn(3, '|');
        let expires: i64 = parts.next()?.parse().ok()?;
        let csrf = parts.next()?.to_string();
        let cred = parts.next()?.to_string();
        (now < expires).then_some(Ticket { csrf, cred })
    }
}

/// What a session cookie holds besides its expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Ticket {
    /// The token every form of the session carries.
    csrf: String,
    /// How the session logged in: `admin-token`, `login-link` (both administrators) or
    /// `token:<id>` (an API token, looked up on every request, so that revoking the
    /// token ends its sessions at once).
    cred: String,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A logged-in console user.
#[derive(Clone, Debug)]
struct Session {
    /// Who, as audit entries name them: `console:admin-token`, `console:login-link` or
    /// `console:token:<name>/<id>`.
    who: String,
    /// The token every form of this session carries.
    csrf: String,
    /// Their role and scope ([`crate::access`]).
    principal: crate::access::Principal,
}

/// The principal of a session's credential, `None` when it no longer stands (an API
/// token revoked, expired or gone).
fn principal_of(
    store: &dyn store::Store,
    cred: &str,
    now: i64,
) -> Option<crate::access::Principal> {
    use crate::access::Principal;
    match cred {
        "admin-token" | "login-link" => Some(Principal::bootstrap(&format!("console:{cred}"))),
        _ => {
            let id = cred.strip_prefix("token:")?;
            let token = store.api_token(id).ok()??;
            if token.revoked_at.is_some() || token.expires_at.is_some_and(|e| e <= now) {
                return None;
            }
            let mut p = Principal::of_token(&token).ok()?;
            p.actor = format!("console:{}", p.actor);
            Some(p)
        }
    }
}

/// 403 as a page, audited, when the session may not do what needs `right`.
async fn need(
    state: &Arc<AppState>,
    session: &Session,
    right: crate::access::Right,
) -> Result<(), Response> {
    super::admin::checked(state, &session.principal, right, crate::access::Target::Any)
        .await
        .map_err(|why| page_with_status(StatusCode::FORBIDDEN, &why))
}

/// The routes under `/ui`.
pub(super) fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    let open = Router::new()
        .route("/login", get(login_page).post(login_with_token))
        .route("/console.css", get(stylesheet));
    let guarded = Router::new()
        .route("/", get(dashboard))
        .route("/certificates", get(certificates))
        .route("/certificates.csv", get(export_csv))
        .route("/certificates.json", get(export_json))
        .route("/certificates/{serial}", get(certificate))
        .route("/certificates/{serial}/pem", get(certificate_pem))
        .route("/certificates/{serial}/revoke", post(revoke))
        .route("/requests", get(requests))
        .route("/requests/{id}/approve", post(approve))
        .route("/requests/{id}/reject", post(reject))
        .route("/audit/verify", get(audit_verify))
        .route("/logout", post(logout))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_session,
        ));
    open.merge(guarded)
        .layer(middleware::from_fn_with_state(state, console_gate))
}

/// Loopback only (like the admin API) and the security headers on every answer.
async fn console_gate(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    if state.admin_loopback_only && !peer.ip().is_loopback() {
        return plain(
            StatusCode::FORBIDDEN,
            "the console is served to loopback clients only",
        );
    }
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// The ticket of a request's session cookie.
fn ticket_of(state: &AppState, headers: &axum::http::HeaderMap) -> Option<Ticket> {
    let now = state.auth.now();
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .find_map(|v| state.console.open(v, now))
}

/// Pages need a session: without one, a GET goes to the login page and anything else
/// is 401.
async fn require_session(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let session = match ticket_of(&state, req.headers()) {
        Some(t) => {
            let auth = state.auth.clone();
            let cred = t.cred.clone();
            let principal = tokio::task::spawn_blocking(move || {
                principal_of(auth.store().as_ref(), &cred, auth.now())
            })
            .await
            .ok()
            .flatten();
            principal.map(|principal| Session {
                who: principal.actor.clone(),
                csrf: t.csrf,
                principal,
            })
        }
        None => None,
    };
    match session {
        Some(s) => {
            req.extensions_mut().insert(s);
            next.run(req).await
        }
        None if req.method() == axum::http::Method::GET => {
            Redirect::to("/ui/login").into_response()
        }
        None => plain(StatusCode::UNAUTHORIZED, "log in to the console first"),
    }
}

/// Refuses a form whose CSRF token is not the session's.
#[allow(clippy::result_large_err)]
fn check_csrf(session: &Session, presented: &str) -> Result<(), Response> {
    if hsm::ct_eq(session.csrf.as_bytes(), presented.as_bytes()) {
        Ok(())
    } else {
        tracing::warn!(who = %session.who, "console form refused: CSRF token missing or wrong");
        Err(plain(
            StatusCode::FORBIDDEN,
            "this form is not one the console gave out (CSRF token missing or wrong); nothing was changed",
        ))
    }
}

fn page<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console page did not render");
            plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// Runs admin operations on the blocking pool under the session's name.
async fn admin<T, F>(state: &Arc<AppState>, who: &str, op: F) -> Result<T, Response>
where
    T: Send + 'static,
    F: FnOnce(&dyn Admin) -> Result<T, Error> + Send + 'static,
{
    let state = state.clone();
    let who = who.to_string();
    let done = ca_core::deadline::spawn_blocking(move || {
        op(&LocalAdmin::new(&state.auth, &state.scep, &who).with_acme(&state.acme))
    })
    .await;
    match done {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(Error::Core(e))) => {
            let status = StatusCode::from_u16(crate::admin::status_of(e.kind()))
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if status == StatusCode::INTERNAL_SERVER_ERROR {
                tracing::error!(error = %e, "console operation failed");
            }
            Err(page_with_status(status, &e.client_message()))
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "console operation failed");
            Err(plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))
        }
        Err(e) => Err(super::task_failed(&e)),
    }
}

#[derive(Template)]
#[template(path = "console/message.html")]
struct MessagePage<'a> {
    title: &'a str,
    message: &'a str,
}

fn page_with_status(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("error");
    let mut r = page(&MessagePage { title, message });
    *r.status_mut() = status;
    r
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../templates/console/console.css"),
    )
        .into_response()
}

// --- login ----------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage<'a> {
    error: &'a str,
}

#[derive(Deserialize)]
struct LinkQuery {
    #[serde(default)]
    link: Option<String>,
}

/// `GET /ui/login`: the form, or (with `?link=`) spends a one-time login link.
async fn login_page(State(state): State<Arc<AppState>>, Query(q): Query<LinkQuery>) -> Response {
    match q.link {
        None => page(&LoginPage { error: "" }),
        Some(link) if state.console.spend_login_link(&link) => {
            audit_login(&state, "console:login-link").await;
            start_session(&state, "login-link")
        }
        Some(_) => {
            let mut r = page(&LoginPage {
                error: "That login link is unknown, used or expired. Ask for a new one with `privca console login-link`.",
            });
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            r
        }
    }
}

#[derive(Deserialize)]
struct TokenForm {
    token: String,
}

/// `POST /ui/login`: the admin token, compared like the admin API compares it, or an API
/// token (its role then applies to everything the session does).
async fn login_with_token(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Form(form): Form<TokenForm>,
) -> Response {
    if hsm::ct_eq(
        &token_hash(form.token.trim().as_bytes()),
        &state.admin_token_hash,
    ) {
        audit_login(&state, "console:admin-token").await;
        return start_session(&state, "admin-token");
    }
    let auth = state.auth.clone();
    let presented = form.token.trim().to_string();
    let found = tokio::task::spawn_blocking(move || {
        crate::access::authenticate(auth.store().as_ref(), &presented, auth.now())
    })
    .await;
    if let Ok(Ok(Some((p, token)))) = found {
        audit_login(&state, &format!("console:{}", p.actor)).await;
        return start_session(&state, &format!("token:{}", token.id));
    }
    let auth = state.auth.clone();
    let source = peer.ip().to_string();
    let _ = tokio::task::spawn_blocking(move || {
        auth.note_unauthenticated("console-login-refused", &source, "wrong admin token")
    })
    .await;
    let mut r = page(&LoginPage {
        error: "That is neither the admin token nor a valid API token.",
    });
    *r.status_mut() = StatusCode::UNAUTHORIZED;
    r
}

/// Records a console login in the audit log.
async fn audit_login(state: &Arc<AppState>, who: &str) {
    let auth = state.auth.clone();
    let who = who.to_string();
    let done = tokio::task::spawn_blocking(move || {
        auth.store().append_audit(&store::AuditEvent {
            time: auth.now(),
            action: "console-login".into(),
            actor: who.clone(),
            subject: "console".into(),
            detail: String::new(),
        })
    })
    .await;
    if !matches!(done, Ok(Ok(_))) {
        tracing::error!("recording a console login in the audit log failed");
    }
}

fn start_session(state: &AppState, cred: &str) -> Response {
    let value = state.console.issue(cred, state.auth.now());
    let cookie = format!(
        "{COOKIE}={value}; Path=/ui; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
        SESSION_LIFETIME.as_secs()
    );
    let mut r = Redirect::to("/ui").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /ui/logout`: the cookie is cleared (the session key stays; a stolen cookie
/// lives until its expiry, which is why sessions are short).
async fn logout(
    axum::Extension(session): axum::Extension<Session>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(r) = check_csrf(&session, &form.csrf) {
        return r;
    }
    let mut r = Redirect::to("/ui/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "privca_console=; Path=/ui; HttpOnly; Secure; SameSite=Strict; Max-Age=0",
        ),
    );
    r
}

// --- dashboard --------------------------------------------------------------------

/// One CA's health line.
struct CaLine {
    name: String,
    subject: String,
    not_after: String,
    days_left: i64,
    crl: String,
}

/// One bar of the expiry chart.
struct Bar {
    label: String,
    count: u64,
    x: u32,
    y: u32,
    height: u32,
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct DashboardPage {
    who: String,
    csrf: String,
    certificates: u64,
    revoked: u64,
    active: u64,
    expiring_30: u64,
    pending: usize,
    audit_entries: u64,
    cas: Vec<CaLine>,
    bars: Vec<Bar>,
    chart_max: u64,
    /// The CA, OCSP responder, RA and HTTPS certificates with their days to expiry
    /// (the same report as `/healthz`).
    own: Vec<crate::renewal::Expiry>,
    /// The key backend, its state and why it is down.
    keys: String,
}

async fn dashboard(
    State(state): State<Arc<AppState>>,
    axum::Extension(session): axum::Extension<Session>,
) -> Response {
    if let Err(r) = need(&state, &session, Right::Read).await {
        return r;
    }
    let auth = state.auth.clone();
    let data = ca_core::deadline::spawn_blocking(move || {
        let store = auth.store();
        let now = auth.now();
        let stats = store.stats()?;
        let week = 7 * 86_400;
        let edges: Vec<i64> = (0..=CHART_WEEKS as i64).map(|w| now + w * week).collect();
        let weekly = store.count_expiring(&edges)?;
        let expiring_30 = store.count_expiring(&[now, now + 30 * 86_400])?;
        let pending = store
            .list_pending(Some(store::PendingState::Pending))?
            .len();
        let mut cas = Vec::new();
        for (name, ca) in auth.authorities() {
            let crl = match store.latest_crl(name)? {
                Some(c) => format!(
                    "number {}, next update {}",
                    c.number,
                    crate::admin::rfc3339(c.next_update)
                ),
                None => "none yet".into(),
            };
            cas.push(CaLine {
                name: name.clone(),
                subject: ca.subject.to_string(),
                not_after: crate::admin::rfc3339(ca.not_after),
                days_left: (ca.not_after - now) / 86_400,
                crl,
            });
        }
        Ok::<_, store::Error>((stats, weekly, expiring_30, pending, cas, edges))
    })
    .await;
    let (stats, weekly, expiring_30, pending, cas, edges) = match data {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "console dashboard: reading the store failed");
            return page_with_status(StatusCode::SERVICE_UNAVAILABLE, "the store cannot be read");
        }
        Err(e) => return super::task_failed(&e),
    };
    let chart_max = weekly.iter().copied().max().unwrap_or(0);
    let bars = weekly
        .iter()
        .zip(&edges)
        .enumerate()
        .map(|(i, (&count, &start))| {
            // 100 px of height for the fullest week; at least 1 px for a week with any.
            let height = if chart_max == 0 {
                0
            } else {
                ((count * 100).div_ceil(chart_max)) as u32
            };
            Bar {
                label: crate::admin::rfc3339(start)
                    .get(5..10)
                    .unwrap_or_default()
                    .to_string(),
                count,
                x: 40 + i as u32 * 44,
                y: 110 - height,
                height,
            }
        })
        .collect();
    let own = state
        .renewer
        .as_ref()
        .map(|r| r.report())
        .unwrap_or_default();
    let keys = match super::health::keys_health(&state) {
        Some(k) => match k.error {
            Some(e) => format!("{} backend {}: {e}", k.backend, k.status),
            None => format!("{} backend {}", k.backend, k.status),
        },
        None => "not probed".into(),
    };
    page(&DashboardPage {
        own,
        keys,
        who: session.who,
        csrf: session.csrf,
        certificates: stats.certificates,
        revoked: stats.revoked,
        active: stats.certificates.saturating_sub(stats.revoked),
        expiring_30: expiring_30.first().copied().unwrap_or(0),
        pending,
        audit_entries: stats.audit_entries,
        cas,
        bars,
        chart_max,
    })
}

// --- certificates -------------------------------------------------------------------

/// The list's filters as a form sends them: empty fields mean "any".
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
struct CertFilterForm {
    #[serde(default)]
    status: String,
    #[serde(default)]
    profile: String,
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    expiring_days: String,
    #[serde(default)]
    cursor: String,
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

impl CertFilterForm {
    #[allow(clippy::result_large_err)]
    fn query(&self) -> Result<ListQuery, Response> {
        let expiring_days = match non_empty(&self.expiring_days) {
            None => None,
            Some(d) => Some(d.parse::<u32>().map_err(|_| {
                page_with_status(StatusCode::BAD_REQUEST, "expiring within: a number of days")
            })?),
        };
        Ok(ListQuery {
            status: non_empty(&self.status),
            expiring_days,
            profile: non_empty(&self.profile),
            issuer: non_empty(&self.issuer),
            text: non_empty(&self.text),
            limit: Some(PAGE),
            cursor: non_empty(&self.cursor),
        })
    }

    /// The query string of the same filters from `cursor` (empty: from the start).
    fn next_page(&self, cursor: &str) -> String {
        let mut next = self.clone();
        next.cursor = cursor.to_string();
        serde_urlencoded::to_string(&next).unwrap_or_default()
    }
}

#[derive(Template)]
#[template(path = "console/certificates.html")]
struct CertificatesPage {
    who: String,
    csrf: String,
    /// The filters as a query string (for the export links).
    filters: String,
    filter: CertFilterForm,
    certificates: Vec<CertView>,
    next: String,
}

async fn certificates(
    State(state): State<Arc<AppState>>,
    axum::Extension(session): axum::Extension<Session>,
    Query(filter): Query<CertFilterForm>,
) -> Response {
    if let Err(r) = need(&state, &session, Right::Read).await {
        return r;
    }
    let query = match filter.query() {
        Ok(q) => q,
        Err(r) => return r,
    };
    match admin(&state, &session.who, move |a| a.list(&query)).await {
        Ok(list) => {
            let next = list
                .next_cursor
                .as_deref()
                .map(|c| filter.next_page(c))
                .unwrap_or_default();
            page(&CertificatesPage {
                who: session.who,
                csrf: session.csrf,
                filters: filter.next_page(""),
                filter,
                certificates: list.certificates,
                next,
            })
        }
        Err(r) => r,
    }
}

/// Rows per page read while exporting (the admin API's largest page).
const EXPORT_PAGE: usize = crate::admin::LIST_MAX_LIMIT;

/// The certificates a filter selects as CSV (RFC 4180), every page.
async fn export_csv(
    State(state): State<Arc<AppState>>,
    axum::Extension(session): axum::Extension<Session>,
    Query(filter): Query<CertFilterForm>,
) -> Response {
    if let Err(r) = need(&state, &session, Right::Read).await {
        return r;
    }
    export(state, session, filter, ExportFormat::Csv)
}

/// The certificates a filter selects as JSON lines (one certificate view per line).
async fn export_json(
    State(state): State<Arc<AppState>>,
    axum::Extension(session): axum::Extension<Session>,
    Query(filter): Query<CertFilterForm>,
) -> Response {
    if let Err(r) = need(&state, &session, Right::Read).await {
        return r;
    }
    export(state, session, filter, ExportFormat::JsonLines)
}

#[derive(Clone, Copy)]
enum ExportFormat {
    Csv,
    JsonLines,
}

/// One CSV field (RFC 4180 §2): quoted when it holds a quote, comma or line break, and
/// a leading `=`, `+`, `-` or `@` defused with a quote mark so that a spreadsheet does
/// not run a subject that looks like a formula.
fn csv_field(out: &mut String, value: &str) {
    let defuse = value.starts_with(['=', '+', '-', '@']);
    if defuse || value.contains(['"', ',', '\n', '\r']) {
        out.push('"');
        if defuse {
            out.push('\'');
        }
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

fn csv_row(out: &mut String, fields: &[&str]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(out, f);
    }
    out.push_str("\r\n");
}

/// Streams every page of the list: the blocking pool reads one page at a time and hands
/// it to the response body through a channel of one page, so an export of a million
/// certificates holds about one page in memory. A store error ends the body early (the
/// download is then visibly cut short), and is logged.
fn export(
    state: Arc<AppState>,
    session: Session,
    filter: CertFilterForm,
    format: ExportFormat,
) -> Response {
    let mut query = match filter.query() {
        Ok(q) => q,
        Err(r) => return r,
    };
    query.limit = Some(EXPORT_PAGE);
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(1);
    tokio::task::spawn_blocking(move || {
        let admin = LocalAdmin::new(&state.auth, &state.scep, &session.who);
        let mut chunk = String::new();
        if let ExportFormat::Csv = format {
            csv_row(
                &mut chunk,
                &[
                    "serial",
                    "subject",
                    "sans",
                    "profile",
                    "issuer",
                    "requester",
                    "not_before",
                    "not_after",
                    "status",
                    "revoked_at",
                    "reason",
                ],
            );
        }
        loop {
            let page = match admin.list(&query) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "console export: listing failed; the download ends here");
                    return;
                }
            };
            for c in &page.certificates {
                match format {
                    ExportFormat::Csv => csv_row(
                        &mut chunk,
                        &[
                            &c.serial,
                            &c.subject,
                            &c.sans.join(" "),
                            &c.profile,
                            &c.issuer,
                            &c.requester,
                            &c.not_before,
                            &c.not_after,
                            &c.status,
                            c.revoked_at.as_deref().unwrap_or(""),
                            c.reason.as_deref().unwrap_or(""),
                        ],
                    ),
                    ExportFormat::JsonLines => {
                        if let Ok(line) = serde_json::to_string(c) {
                            chunk.push_str(&line);
                            chunk.push('\n');
                        }
                    }
                }
            }
            if tx.blocking_send(std::mem::take(&mut chunk)).is_err() {
                return; // the client went away
            }
            match page.next_cursor {
                Some(next) => query.cursor = Some(next),
                None => return,
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), rx))
    });
    let (kind, name) = match format {
        ExportFormat::Csv => ("text/csv; charset=utf-8", "certificates.csv"),
        ExportFormat::JsonLines => ("application/jsonl", "certificates.jsonl"),
    };
    let mut r = axum::body::Body::from_stream(stream).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

#[derive(Template)]
#[template(path = "console/certificate.html")]
struct CertificatePage {
    who: String,
    csrf: String,
    cert: CertView,
    pem: String,
    reasons: &'static [&'static str],
    decoded: Decoded,
}

/// What the certificate page shows from the DER itself (RFC 5280 §4.1).
#[derive(Default)]
struct Decoded {
    /// The signature algorithm, by name where const-oid knows it.
    signature: String,
    /// The subject public key's algorithm (and curve).
    key: String,
    /// Each extension: name (or OID), critical, and its DER in hex, shortened.
    extensions: Vec<(String, bool, String)>,
    /// Why the DER could not be read, when it could not.
    error: String,
}

fn oid_name(oid: &const_oid::ObjectIdentifier) -> String {
    match const_oid::db::DB.by_oid(oid) {
        Some(name) => format!("{name} ({oid})"),
        None => oid.to_string(),
    }
}

/// Decodes the fields the page lists; a record without DER (an import) shows none.
fn decode(pem: &str) -> Decoded {
    use der::{Decode, Encode};
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let Ok(der) = base64::engine::general_purpose::STANDARD.decode(b64) else {
        return Decoded::default();
    };
    if der.is_empty() {
        return Decoded::default();
    }
    let cert = match x509_cert::Certificate::from_der(&der) {
        Ok(c) => c,
        Err(e) => {
            return Decoded {
                error: format!("the stored DER does not decode: {e}"),
                ..Decoded::default()
            };
        }
    };
    let tbs = cert.tbs_certificate();
    let spki = tbs.subject_public_key_info();
    let mut key = oid_name(&spki.algorithm.oid);
    if let Some(curve) = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok())
    {
        key.push_str(&format!(", {}", oid_name(&curve)));
    }
    let extensions = tbs
        .extensions()
        .map(|exts| {
            exts.iter()
                .map(|e| {
                    let value = e.extn_value.to_der().map(hex::encode).unwrap_or_default();
                    let shown = if value.len() > 96 {
                        format!("{}…", &value[..96])
                    } else {
                        value
                    };
                    (oid_name(&e.extn_id), e.critical, shown)
                })
                .collect()
        })
        .unwrap_or_default();
    Decoded {
        signature: oid_name(&cert.signature_algorithm().oid),
        key,
        extensions,
        error: String::new(),
    }
}

/// The reason names the revoke form offers (RFC 5280 §5.3.1, as `privca revoke` names them).
const REASONS: &[&str] = &[
    "unspecified",
    "keyCompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "certificateHold",
    "privilegeWithdrawn",
];

async fn certificate(
    State(state): State<Arc<AppState>>,
    axum::Extension(session): axum::Extension<Session>,
    Path(serial): Path<String>,
) -> Response {
    if let Err(r) = need(&state, &session, Right::Read).await {
        return r;
    }
    match admin(&state, &session.who, move |a| a.show(&serial)).await {
        Ok(cert) => {
            let pem = cert.pem.clone().unwrap_or_default();
            page(&CertificatePage {
                who: session.who,
                csrf: session.csrf,
                decoded: decode(&pem),
                pem,
                cert,
                reasons: REASONS,
            })
        }
        Err(r) => r,
    }
}

async fn certificate_pem(
    State(state): State<Arc<AppState>>,
    axum::Extension(session): axum::Extension<Session>,
    Path(serial): Path<String>,
) -> Response {
    if let Err(r) = need(&state, &session, Right::Read).await {
        return r;
    }
    match admin(&state, &session.who, move |a| a.show(&serial)).await {
        Ok(cert) => {
            let disposition = format!("attachment; filename=\"{}.pem\"", cert.serial);
            let mut r = (
                [(header::CONTENT_TYPE, "application/pem-certificate-chain")],
                cert.pem.unwrap_or_default(),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&disposition) {
                r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            r
        }
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct RevokeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

async fn revoke(
    State(state): State<Arc<AppState>>,
    axum::Extension(session): axum::Extension<Session>,
    Path(serial): Path<String>,
    Form(form): Form<RevokeForm>,
) -> Response {
    if let Err(r) = check_csrf(&session, &form.csrf) {
        return r;
    }
    if let Err(r) = need(&state, &session, Right::Revoke).await {
        return r;
    }
    let input = RevokeInput {
        reason: non_empty(&form.reason),
        invalidity_date: None,
    };
    match admin(&state, &session.who, move |a| a.revoke(&serial, &input)).await {
        Ok(cert) => Redirect::to(&format!("/ui/certificates/{}", cert.serial)).into_response(),
        Err(r) => r,
    }
}

// --- held requests ----------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/requests.html")]
struct RequestsPage {
    who: String,
    csrf: String,
    requests: Vec<RequestView>,
}

async fn requests(
    State(state): State<Arc<AppState>>,
    axum::Extension(session): axum::Extension<Session>,
) -> Response {
    if let Err(r) = need(&state, &session, Right::Read).await {
        return r;
    }
    let query = RequestsQuery {
        state: Some("pending".into()),
    };
    match admin(&state, &session.who, move |a| a.requests(&query)).await {
        Ok(requests) => page(&RequestsPage {
            who: session.who,
            csrf: session.csrf,
            requests,
        }),
        Err(r) => r,
    }
}

async fn approve(
    State(state): State<Arc<AppState>>,
    axum::Extension(session): axum::Extension<Session>,
    Path(id): Path<u64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(r) = check_csrf(&session, &form.csrf) {
        return r;
    }
    if let Err(r) = need(&state, &session, Right::Approve).await {
        return r;
    }
    match admin(&state, &session.who, move |a| a.approve(id)).await {
        Ok(cert) => Redirect::to(&format!("/ui/certificates/{}", cert.serial)).into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct RejectForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

async fn reject(
    State(state): State<Arc<AppState>>,
    axum::Extension(session): axum::Extension<Session>,
    Path(id): Path<u64>,
    Form(form): Form<RejectForm>,
) -> Response {
    if let Err(r) = check_csrf(&session, &form.csrf) {
        return r;
    }
    if let Err(r) = need(&state, &session, Right::Approve).await {
        return r;
    }
    let input = RejectInput {
        reason: non_empty(&form.reason).unwrap_or_else(|| "rejected in the console".into()),
    };
    match admin(&state, &session.who, move |a| a.reject(id, &input)).await {
        Ok(_) => Redirect::to("/ui/requests").into_response(),
        Err(r) => r,
    }
}

// --- audit ----------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    who: String,
    csrf: String,
    verdict: String,
}

async fn audit_verify(
    State(state): State<Arc<AppState>>,
    axum::Extension(session): axum::Extension<Session>,
) -> Response {
    if let Err(r) = need(&state, &session, Right::Audit).await {
        return r;
    }
    match admin(&state, &session.who, |a| a.audit_verify()).await {
        Ok(v) => page(&AuditPage {
            who: session.who,
            csrf: session.csrf,
            verdict: match v.first_bad {
                None => format!("the chain of {} entries verifies", v.entries),
                Some(seq) => format!(
                    "BROKEN: entry {seq} does not chain (of {} entries checked)",
                    v.entries
                ),
            },
        }),
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_cookie_opens_only_unaltered_and_unexpired() {
        let c = Console::new();
        let v = c.issue("admin-token", 1_000);
        let s = c.open(&v, 1_001).expect("opens");
        assert_eq!(s.cred, "admin-token");
        assert_eq!(s.csrf.len(), 32);
        assert!(
            c.open(&v, 1_000 + SESSION_LIFETIME.as_secs() as i64)
                .is_none()
        );
        // Another console's key (a restart) does not open it.
        assert!(Console::new().open(&v, 1_001).is_none());
        // A changed body does not open it.
        let (body, mac) = v.split_once('.').expect("two parts");
        let forged = b64(format!("99999999999|{}|admin-token", s.csrf).as_bytes());
        assert!(c.open(&format!("{forged}.{mac}"), 1_001).is_none());
        assert!(c.open(body, 1_001).is_none());
        assert!(c.open("", 1_001).is_none());
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        let mut out = String::new();
        csv_row(
            &mut out,
            &["plain", "a,b", "say \"hi\"", "=cmd()", "line\nbreak", ""],
        );
        assert_eq!(
            out,
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"'=cmd()\",\"line\nbreak\",\r\n"
        );
    }

    #[test]
    fn a_login_link_is_spent_once() {
        let c = Console::new();
        let link = c.new_login_link();
        assert!(!c.spend_login_link("not-a-link"));
        assert!(c.spend_login_link(&link));
        assert!(!c.spend_login_link(&link));
        for _ in 0..(MAX_LINKS + 5) {
            c.new_login_link();
        }
        assert!(c.links.lock().expect("links").len() <= MAX_LINKS);
    }
}
