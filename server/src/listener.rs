//! The accept loop of every listener, plain or TLS (docs/architecture.md, decision 8), and what it
//! bounds: how many connections a listener holds (in all and per client address), how
//! long a connection may stay open with no request in progress, the TLS handshake, the
//! HTTP/1 header read, and graceful shutdown.
//!
//! A connection is *idle* while no request is in progress on it: from accept (for TLS,
//! from the end of the handshake) to its first request, and between keep-alive requests.
//! An idle connection is closed after `idle_timeout` whatever the client sends
//! meanwhile (a partial request line, an HTTP/2 preface, PINGs): at once if it never
//! made a request, else by a graceful shutdown (a response may still be draining) that
//! is cut short `request_timeout` later. Without that, sockets that send
//! nothing, or only an HTTP/2 preface, or stop after the TLS handshake, stay open for
//! ever and a few thousand of them exhaust the process's file descriptors.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Extensions;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

use crate::http::Limits;

/// How often a "limit reached" warning may be logged (with the count of the ones held
/// back meanwhile).
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Serves `router` on `listener` until `shutdown` resolves, then lets in-flight requests
/// finish (up to `grace`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
) {
    serve_with(listener, router, limits, shutdown, grace, None).await
}

/// TLS for [`serve_with`]: the acceptor and the time a client has for its handshake.
#[derive(Clone)]
pub struct TlsAccept {
    /// The rustls acceptor.
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// Handshake timeout (slow clients are dropped, others keep being served).
    pub handshake_timeout: Duration,
}

/// What every connection task of one listener shares.
struct Shared {
    router: Router,
    builder: auto::Builder<TokioExecutor>,
    limits: Limits,
    tls: Option<TlsAccept>,
    clients: Option<Arc<Clients>>,
    /// The response extension that makes HTTP/1 header names come out as libest wants.
    header_case: Option<Extensions>,
    /// Flips to true when the listener stops.
    stopping: watch::Receiver<bool>,
    grace: Duration,
}

/// The one accept loop of every listener, plain or TLS: per connection it (for TLS)
/// completes the handshake within its timeout and puts [`est::TlsInfo`] (peer chain,
/// RFC 9266 exporter) into each request's extensions, then serves HTTP/1 or HTTP/2 with
/// the header and idle timeouts, the connection caps and graceful shutdown of `limits`.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
    tls: Option<TlsAccept>,
) {
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true)
        // A client may shut down its sending side once the request is out (`nc -N`,
        // shutdown(SHUT_WR)); it still gets its answer (RFC 9112 §9.6).
        .half_close(true)
        // libest compares header names case-sensitively (see `header_case_template`).
        .title_case_headers(true);
    builder.http2().timer(TokioTimer::new());
    let shared = Arc::new(Shared {
        router,
        builder,
        limits,
        tls,
        clients: (limits.max_connections_per_client > 0)
            .then(|| Arc::new(Clients::new(limits.max_connections_per_client))),
        header_case: header_case_template().await,
        stopping: stop_rx,
        grace,
    });
    let full = Throttle::default();
    tokio::pin!(shutdown);
    loop {
        // A slot first: while the listener is full, new connections wait in the kernel's
        // listen backlog (and are served in order as slots free up) instead of costing a
        // file descriptor each.
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if let Some(held) = full.hit() {
                    tracing::warn!(
                        limit = max,
                        since_last_warning = held,
                        "connection limit reached; new connections wait until one closes (max_connections)"
                    );
                }
                tokio::select! {
                    p = slots.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let client = match &shared.clients {
                    Some(c) => match c.admit(peer.ip()) {
                        Some(slot) => Some(slot),
                        None => {
                            // Dropping the stream closes it: this client has its share.
                            drop(stream);
                            continue;
                        }
                    },
                    None => None,
                };
                // Without TCP_NODELAY the TLS handshake's several small writes meet the
                // client's delayed ACK: 40 ms per new connection (measured by bench est).
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "TCP_NODELAY");
                }
                let shared = shared.clone();
                tokio::spawn(async move {
                    connection(&shared, stream, peer).await;
                    // The socket is closed by now; only then is the slot given back.
                    drop(client);
                    drop(permit);
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    let _ = stop_tx.send(true);
    // Every connection holds a slot until its socket is closed.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish in time");
    }
}

/// One connection: the TLS handshake (bounded), then HTTP until the client closes, the
/// connection stays idle too long, or the listener stops.
async fn connection(shared: &Shared, stream: tokio::net::TcpStream, peer: SocketAddr) {
    let Some(tls) = &shared.tls else {
        serve_connection(shared, TokioIo::new(stream), peer, None).await;
        return;
    };
    let stream =
        match tokio::time::timeout(tls.handshake_timeout, tls.acceptor.accept(stream)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, %peer, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        };
    let info = crate::tls::connection_info(stream.get_ref().1);
    serve_connection(shared, TokioIo::new(stream), peer, Some(info)).await;
}

async fn serve_connection<I>(
    shared: &Shared,
    io: TokioIo<I>,
    peer: SocketAddr,
    tls: Option<est::TlsInfo>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let svc = {
        let activity = activity.clone();
        let router = shared.router.clone();
        let header_case = shared.header_case.clone();
        tower::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let busy = activity.begin();
            let router = router.clone();
            let tls = tls.clone();
            let header_case = header_case.clone();
            async move {
                let http1 = req.version() < axum::http::Version::HTTP_2;
                let mut req = req.map(axum::body::Body::new);
                req.extensions_mut().insert(ConnectInfo(peer));
                if let Some(info) = tls {
                    req.extensions_mut().insert(info);
                }
                let mut resp = match router.oneshot(req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                if http1 && let Some(h) = header_case {
                    resp.extensions_mut().extend(h);
                }
                drop(busy);
                Ok::<_, Infallible>(resp)
            }
        })
    };
    let conn = shared
        .builder
        .serve_connection(io, TowerToHyperService::new(svc))
        .into_owned();
    tokio::pin!(conn);
    let idle_timeout = shared.limits.idle_timeout;
    let mut stopping = shared.stopping.clone();
    // Set once a graceful shutdown has begun: when the connection is closed regardless.
    let mut close_by: Option<tokio::time::Instant> = None;
    loop {
        let wake = match close_by {
            Some(t) => t,
            None => tokio::time::Instant::now() + activity.idle_left(idle_timeout),
        };
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
                return;
            }
            _ = stopping.wait_for(|s| *s), if close_by.is_none() => {
                conn.as_mut().graceful_shutdown();
                close_by = Some(tokio::time::Instant::now() + shared.grace);
            }
            () = tokio::time::sleep_until(wake) => {
                if close_by.is_some() {
                    tracing::debug!(%peer, "connection did not finish its shutdown; closed");
                    return;
                }
                if activity.idle_left(idle_timeout).is_zero() {
                    tracing::debug!(%peer, "idle connection closed (idle_timeout_seconds)");
                    if activity.requests.load(Ordering::SeqCst) == 0 {
                        // Nothing was ever asked, so nothing is owed: close now (an
                        // HTTP/2 client would otherwise be waited for to ack a GOAWAY).
                        return;
                    }
                    // A response may still be draining to a slow reader: let it finish.
                    conn.as_mut().graceful_shutdown();
                    close_by = Some(tokio::time::Instant::now() + shared.limits.request_timeout);
                }
            }
        }
    }
}

/// Whether a request is in progress on a connection, and since when it is idle.
struct Activity {
    start: Instant,
    /// Requests begun on the connection so far.
    requests: AtomicU64,
    in_flight: AtomicUsize,
    /// Milliseconds after `start` when the connection last became idle.
    idle_since_ms: AtomicU64,
}

/// A request in progress; the connection is idle again when the last one is dropped.
struct Busy(Arc<Activity>);

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            requests: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

    /// How much of `timeout` an idle connection has left (zero: close it); a busy one
    /// has all of it (checked again then).
    fn idle_left(&self, timeout: Duration) -> Duration {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return timeout;
        }
        let idle = Duration::from_millis(
            self.now_ms()
                .saturating_sub(self.idle_since_ms.load(Ordering::SeqCst)),
        );
        timeout.saturating_sub(idle)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0
            .idle_since_ms
            .store(self.0.now_ms(), Ordering::SeqCst);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Open connections per client address. The table holds only addresses with an open
/// connection, so it never has more entries than the listener has connections.
struct Clients {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
    refused: Throttle,
}

/// One connection's place in [`Clients`], given back when dropped.
struct ClientSlot {
    clients: Arc<Clients>,
    key: IpAddr,
}

impl Clients {
    fn new(max: usize) -> Clients {
        Clients {
            max,
            open: Mutex::new(HashMap::new()),
            refused: Throttle::default(),
        }
    }

    /// A slot for a connection from `ip`, or `None` (logged, rate-limited) when that
    /// client already has its maximum.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        let key = client_key(ip);
        let admitted = {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            let n = open.entry(key).or_insert(0);
            if *n < self.max {
                *n += 1;
                true
            } else {
                false
            }
        };
        if admitted {
            return Some(ClientSlot {
                clients: self.clone(),
                key,
            });
        }
        if let Some(held) = self.refused.hit() {
            tracing::warn!(
                client = %key,
                limit = self.max,
                since_last_warning = held,
                "per-client connection limit reached; connection closed (max_connections_per_client)"
            );
        }
        None
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.clients.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// The address a per-client limit counts against: IPv4 addresses (also when mapped into
/// IPv6) as they are, IPv6 addresses by their /64, because one host usually holds a
/// whole /64 (RFC 4291 §2.5.4).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// At most one log line per [`WARN_EVERY`]; counts what it held back.
#[derive(Default)]
struct Throttle {
    last: Mutex<Option<Instant>>,
    held: AtomicU64,
}

impl Throttle {
    /// `Some(n)` when it is time to log (`n` warnings were held back since the last
    /// one), `None` otherwise.
    fn hit(&self) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < WARN_EVERY) {
            self.held.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.held.swap(0, Ordering::Relaxed))
    }
}

/// Header names as they must appear on HTTP/1 for libest, which compares them with
/// `strcmp`: `Content-Type` and `Content-Length` (`est_io_check_http_hdrs`) and
/// `WWW-Authenticate` (`est_io_parse_http_auth_request`); `Retry-After` for good
/// measure. RFC 9110 §5.1 makes names case-insensitive, so this only helps such clients.
/// `WWW-Authenticate` is listed twice so that a second challenge keeps the case too.
const CASED_NAMES: &[&str] = &[
    "Content-Type",
    "Content-Length",
    "WWW-Authenticate",
    "WWW-Authenticate",
    "Retry-After",
];

/// hyper writes HTTP/1 header names in title case with `title_case_headers`, which gives
/// `Www-Authenticate`. Its only way to write other cases is `preserve_header_case`: the
/// cases a parsed request arrived with are kept in a (private) request extension, and a
/// response that carries that extension is written with them ("forward the cases in a
/// proxy-like fashion", hyper's documentation). So hyper parses one request holding the
/// names of [`CASED_NAMES`] here, once per listener, and every HTTP/1 response gets a
/// copy of that request's extensions. Names not in it are title-cased. `None` if the
/// parse fails (names are then title-cased only).
async fn header_case_template() -> Option<Extensions> {
    use tokio::io::AsyncWriteExt;
    let (mut client, server) = tokio::io::duplex(4096);
    let (tx, rx) = tokio::sync::oneshot::channel::<Extensions>();
    let tx = Mutex::new(Some(tx));
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        if let Some(tx) = tx.lock().ok().and_then(|mut g| g.take()) {
            let _ = tx.send(req.extensions().clone());
        }
        async { Ok::<_, Infallible>(hyper::Response::new(axum::body::Body::empty())) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .preserve_header_case(true)
        .serve_connection(TokioIo::new(server), svc);
    let mut head = String::from("GET / HTTP/1.1\r\nHost: localhost\r\n");
    for name in CASED_NAMES {
        let value = if *name == "Content-Length" { "0" } else { "x" };
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    let send = async move {
        client.write_all(head.as_bytes()).await.ok()?;
        let ext = rx.await.ok();
        drop(client);
        ext
    };
    let run = async {
        let (_, ext) = tokio::join!(conn, send);
        ext
    };
    let ext = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .ok()
        .flatten();
    if ext.is_none() {
        tracing::warn!(
            "HTTP/1 header names will be title-cased only (WWW-Authenticate as Www-Authenticate)"
        );
    }
    ext
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_count_by_64_and_mapped_v4_as_v4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        assert_eq!(
            client_key(mapped),
            "192.0.2.7".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn the_client_table_counts_and_forgets() {
        let c = Arc::new(Clients::new(2));
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let a = c.admit(ip).expect("first");
        let b = c.admit(ip).expect("second");
        assert!(c.admit(ip).is_none(), "third is over the limit");
        assert!(c.admit("192.0.2.2".parse().expect("ip")).is_some());
        drop(a);
        let a2 = c.admit(ip).expect("a slot came back");
        drop((a2, b));
        assert!(
            c.open.lock().expect("lock").is_empty(),
            "no entry without a connection"
        );
    }

    #[test]
    fn the_throttle_lets_one_through_per_period() {
        let t = Throttle::default();
        assert_eq!(t.hit(), Some(0));
        assert_eq!(t.hit(), None);
        assert_eq!(t.hit(), None);
        assert_eq!(t.held.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn the_header_case_template_is_built() {
        assert!(header_case_template().await.is_some());
    }
}
