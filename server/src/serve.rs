//! `privca serve`: wiring (config → store, keys, authority) and the listener, the CRL
//! refresh task, and signal handling.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::Error;
use crate::config::Config;
use crate::http::{self, AppState, Limits};

/// A running server (for tests and `serve`).
pub struct Running {
    /// The bound address.
    pub addr: std::net::SocketAddr,
    /// The bound address of the HTTPS listener, when `[server.tls]` is configured.
    pub tls_addr: Option<std::net::SocketAddr>,
    /// Stops the server when sent to.
    pub shutdown: tokio::sync::oneshot::Sender<()>,
    /// Finishes when the server has stopped.
    pub done: tokio::task::JoinHandle<()>,
    /// The handlers' state (the console, for a login link at start).
    pub state: Arc<AppState>,
}

/// Generates the keys of server-side key generation with the software backend (the
/// client receives the key; the server keeps nothing, RFC 7030 §4.4).
struct SoftKeyGenerator;

impl ca_core::enroll::KeyGenerator for SoftKeyGenerator {
    fn generate(
        &self,
        algorithm: hsm::KeyAlgorithm,
    ) -> ca_core::Result<ca_core::enroll::GeneratedKey> {
        let key = hsm::soft::generate_exportable(algorithm)?;
        Ok(ca_core::enroll::GeneratedKey {
            pkcs8_der: key.pkcs8_der,
            spki_der: key.spki_der,
            algorithm: key.algorithm,
        })
    }
}

/// Loads the configuration, opens everything and starts serving on the configured
/// listener (or `listen_override`). Must be called inside a tokio runtime.
pub async fn start(
    cfg: &Config,
    listen_override: Option<std::net::SocketAddr>,
) -> Result<Running, Error> {
    let cfg2 = cfg.clone();
    let (auth, keys) = tokio::task::spawn_blocking(move || cfg2.load_authority_and_keys())
        .await
        .map_err(|e| Error::io("loading", e))??;
    let auth = Arc::new(auth);
    // With several nodes on one database, a revocation through another node would not
    // reach this node's pre-signed OCSP answers (there is no cross-node invalidation
    // yet): every OCSP answer is then built from the database (docs/scale-out.md).
    if cfg.store.backend == "postgres" {
        tracing::info!("the pre-signed OCSP cache is off with the postgres store backend");
        auth.set_ocsp_cache_entries(0);
    }
    // Server-side key generation (EST serverkeygen) hands out software keys; only this
    // crate names the backend (docs/architecture.md).
    auth.set_key_generator(Arc::new(SoftKeyGenerator))?;
    // Metrics: ca-core reports issuances, refusals and commit times to this observer.
    let metrics = if cfg.server.metrics.enabled {
        let m = Arc::new(crate::metrics::Metrics::new());
        auth.set_observer(m.clone())?;
        Some(m)
    } else {
        None
    };
    // A revocation committed just before a crash (or whose CRL could not be signed) is
    // missing from the stored CRL: re-sign such CRLs before serving them (issue item 9).
    // A failure here is logged; the refresher tries again every minute.
    let a2 = auth.clone();
    let _ = tokio::task::spawn_blocking(move || a2.republish_stale_crls("startup")).await;
    let token = cfg.secret(&cfg.server.admin_token).load()?;
    if token.expose().len() < 16 {
        return Err(Error::Config(
            "the admin token must be at least 16 bytes".into(),
        ));
    }
    let key_probe = Arc::new(start_key_probe(cfg, &auth, keys.as_ref())?);
    // The HTTPS listener's certificate, replaceable while serving (renewal).
    let tls_identity = match &cfg.server.tls {
        Some(t) => Some(Arc::new(tls_identity(cfg, t)?)),
        None => None,
    };
    if let Some(id) = &tls_identity {
        key_probe.add("https", id.key());
    }
    let renewer = Arc::new(crate::renewal::Renewer::new(
        cfg,
        auth.clone(),
        keys.clone(),
        Some(key_probe.clone()),
        tls_identity.clone(),
    )?);
    let state = Arc::new(AppState {
        auth: auth.clone(),
        admin_token_hash: http::token_hash(token.expose()),
        admin_loopback_only: cfg.server.admin_loopback_only,
        scep: cfg.scep.clone(),
        acme: cfg.acme.clone(),
        keys: Some(keys.clone()),
        key_probe: Some(key_probe.clone()),
        renewer: Some(renewer.clone()),
        console: http::console::Console::new(),
    });
    // SCEP on every listener (the HTTPS one clones this router).
    let scep_routes = scep::http::router(crate::scep_wiring::endpoints(
        cfg,
        &auth,
        Some(keys.as_ref()),
    )?);
    let intune_revocation = crate::scep_wiring::start_intune_revocation(cfg, &auth)?;
    crate::notify::start(cfg, auth.clone())?;
    let limits = Limits {
        max_body_bytes: cfg.server.max_body_bytes,
        header_timeout: Duration::from_secs(cfg.server.header_timeout_seconds),
        request_timeout: Duration::from_secs(cfg.server.request_timeout_seconds),
        idle_timeout: Duration::from_secs(cfg.server.idle_timeout_seconds),
        max_connections: cfg.server.max_connections,
        max_connections_per_client: cfg.server.max_connections_per_client,
    };
    let addr = listen_override.unwrap_or(cfg.server.listen);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::io(format!("binding {addr}"), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("local address", e))?;
    let router = http::router_with(state.clone(), limits, scep_routes);
    // `/metrics` on the plain listener only (an operator endpoint, like the admin API).
    let plain_router = match &metrics {
        Some(m) => {
            let mstate = Arc::new(crate::metrics::MetricsState {
                metrics: m.clone(),
                auth: auth.clone(),
                key_probe: Some(key_probe.clone()),
                tls: tls_identity.clone(),
                loopback_only: cfg.server.metrics.loopback_only,
                scrape: std::sync::Mutex::new(()),
            });
            let route = axum::Router::new()
                .route("/metrics", axum::routing::get(crate::metrics::handler))
                .with_state(mstate);
            timed(router.clone().merge(http::with_limits(route, limits)), m)
        }
        None => router.clone(),
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    // One stop signal for every listener.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let https = match &cfg.server.tls {
        Some(t) => Some(
            start_tls(
                cfg,
                t,
                auth.clone(),
                router.clone(),
                limits,
                stop_rx.clone(),
                tls_identity
                    .clone()
                    .ok_or_else(|| Error::Config("[server.tls]".into()))?,
                metrics.as_ref(),
            )
            .await?,
        ),
        None => None,
    };
    let tls_addr = https.as_ref().map(|(a, _)| *a);
    let refresher = tokio::spawn(crl_refresher(auth.clone()));
    let renewal = tokio::spawn(crate::renewal::run(renewer));
    let auth_for_stop = auth.clone();
    let done = tokio::spawn(async move {
        let mut plain_stop = stop_rx;
        tokio::spawn(async move {
            let _ = rx.await;
            let _ = stop_tx.send(true);
        });
        crate::listener::serve(
            listener,
            plain_router,
            limits,
            async move {
                let _ = plain_stop.wait_for(|s| *s).await;
            },
            Duration::from_secs(20),
        )
        .await;
        if let Some((_, h)) = https {
            let _ = h.await;
        }
        refresher.abort();
        for task in intune_revocation {
            task.abort();
        }
        renewal.abort();
        // The refusals counted since the last summary go into the audit log.
        let a = auth_for_stop;
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = a.flush_refusals(true) {
                tracing::error!(error = %e, "could not audit the summary of refusals");
            }
        })
        .await;
    });
    Ok(Running {
        addr,
        tls_addr,
        shutdown: tx,
        done,
        state,
    })
}

/// `router` with every request timed into `privca_request_duration_seconds`.
fn timed(router: axum::Router, m: &Arc<crate::metrics::Metrics>) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(
        m.clone(),
        crate::metrics::time_request,
    ))
}

/// Starts the HTTPS listener (`[server.tls]`): the plain listener's routes plus EST,
/// through the same accept loop with a TLS handshake timeout.
#[allow(clippy::too_many_arguments)] // the listener's parts, each used once
async fn start_tls(
    cfg: &Config,
    t: &crate::config::TlsConfig,
    auth: Arc<ca_core::Authority>,
    router: axum::Router,
    limits: Limits,
    mut stop: tokio::sync::watch::Receiver<bool>,
    identity: Arc<crate::tls::TlsIdentity>,
    metrics: Option<&Arc<crate::metrics::Metrics>>,
) -> Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>), Error> {
    let est = Arc::new(est::EstService::new(&cfg.est, &cfg.base_dir, auth.clone())?);
    let server_cfg = crate::tls::server_config(identity, &est.client_trust_anchors())?;
    let listener = tokio::net::TcpListener::bind(t.listen)
        .await
        .map_err(|e| Error::io(format!("binding {}", t.listen), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("local address", e))?;
    let router = router.merge(http::with_limits(est::http::router(est), limits));
    // ACME resource URLs are computed from the external URL (RFC 8555 §6.4), by default
    // the bound address of this listener.
    let base = cfg
        .acme
        .external_url
        .clone()
        .unwrap_or_else(|| format!("https://{addr}"));
    let acme = Arc::new(
        acme::AcmeService::new(
            &cfg.acme,
            &base,
            auth.clone(),
            Arc::new(crate::acme_wiring::HttpValidator),
        )
        .map_err(|e| Error::Config(format!("[acme]: {e}")))?,
    );
    let router = router.merge(http::with_limits(acme::http::router(acme), limits));
    let router = match metrics {
        Some(m) => timed(router, m),
        None => router,
    };
    let tls = crate::listener::TlsAccept {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server_cfg)),
        handshake_timeout: Duration::from_secs(t.handshake_timeout_seconds.max(1)),
    };
    let handle = tokio::spawn(async move {
        crate::listener::serve_with(
            listener,
            router,
            limits,
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
            Duration::from_secs(20),
            Some(tls),
        )
        .await;
    });
    tracing::info!(%addr, "privca HTTPS listening");
    Ok((addr, handle))
}

/// The HTTPS listener's chain and key (`[server.tls]`). A certificate file renewed by
/// privca names its key ([`ca_core::authority::KEY_LABEL_LINE`]); otherwise the
/// configured label, or the key file.
fn tls_identity(
    cfg: &Config,
    t: &crate::config::TlsConfig,
) -> Result<crate::tls::TlsIdentity, Error> {
    let cert_path = cfg.path(&t.certificate);
    let chain = crate::tls::read_chain(&cert_path)?;
    let named = std::fs::read(&cert_path)
        .ok()
        .and_then(|b| ca_core::authority::cert_file_key_label(&b));
    let key: Arc<dyn hsm::PrivateKey> = match (&t.key, &t.key_file) {
        (Some(label), _) => cfg.open_keys()?.open(named.as_deref().unwrap_or(label))?,
        (None, Some(file)) => {
            let path = cfg.path(file);
            let bytes = hsm::read_private_file(&path, "TLS key file")?;
            let text = String::from_utf8_lossy(&bytes);
            let (label, der) = der::pem::decode_vec(text.trim().as_bytes())
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
            if label != "PRIVATE KEY" {
                return Err(Error::Config(format!(
                    "{}: expected an unencrypted PKCS#8 PRIVATE KEY",
                    path.display()
                )));
            }
            Arc::new(hsm::soft::SoftKey::from_pkcs8("tls-server-file", &der)?)
        }
        (None, None) => {
            return Err(Error::Config("[server.tls] needs key or key_file".into()));
        }
    };
    crate::tls::TlsIdentity::new(chain, key)
}

/// Starts the periodic test signatures behind `/healthz` with every online key: each CA's
/// key, OCSP responder and RA keys, and each SCEP endpoint's own RA key (the HTTPS
/// listener's key is added by [`start`]). The renewal task replaces a renewed key.
fn start_key_probe(
    cfg: &Config,
    auth: &ca_core::Authority,
    keys: &dyn hsm::KeyStore,
) -> Result<hsm::probe::KeyProbe, Error> {
    let probe = hsm::probe::KeyProbe::start(hsm::probe::ProbeOptions::default())
        .map_err(|e| Error::io("starting the key probe thread", e))?;
    for (name, ca) in auth.authorities() {
        probe.add(&format!("ca:{name}"), ca.key.clone());
        if let Some(o) = &ca.ocsp {
            probe.add(&format!("ocsp:{name}"), o.current().key);
        }
        if let Some(r) = &ca.ra {
            probe.add(&format!("ra:{name}"), r.current().key);
        }
    }
    for (name, ec) in &cfg.scep.endpoints {
        if let (Some(_), Some(k)) = (&ec.ra_certificate, &ec.ra_key) {
            probe.add(&format!("scep-ra:{name}"), keys.open(k)?);
        }
    }
    Ok(probe)
}

/// Keeps every CA's CRL fresh: checks once a minute, re-signs when the stored one is
/// older than the refresh period or misses a revocation (revocations re-sign at once, in
/// `Authority::revoke`; this catches those whose signing failed). Also writes the summary
/// of unauthenticated refusals when its window is over.
async fn crl_refresher(auth: Arc<ca_core::Authority>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let a = auth.clone();
        match tokio::task::spawn_blocking(move || a.flush_refusals(false)).await {
            Ok(Err(e)) => tracing::error!(error = %e, "could not audit the summary of refusals"),
            Err(e) => tracing::error!(error = %e, "refusal summary task failed"),
            Ok(Ok(_)) => {}
        }
        let names: Vec<String> = auth.authorities().keys().cloned().collect();
        for name in names {
            let a = auth.clone();
            let n = name.clone();
            match tokio::task::spawn_blocking(move || {
                a.republish_if_stale(&n, "scheduler")?;
                a.current_crl(&n)
            })
            .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(ca = %name, error = %e, "CRL refresh failed"),
                Err(e) => tracing::error!(ca = %name, error = %e, "CRL refresh task failed"),
            }
        }
    }
}

/// The log filter: `PRIVCA_LOG` (default `info`), plus `rustls::msgs::handshake=error`
/// unless `PRIVCA_LOG` says something about rustls itself. That module warns once per
/// handshake about what a client put in its hello (an IP address as SNI, which
/// RFC 6066 §3 forbids but OpenSSL-based clients send when told to reach an address):
/// noise a client can repeat at will, not something an operator can act on.
pub fn log_filter(env: Option<&str>) -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::EnvFilter;
    let spec = env
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("info");
    let filter = EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new("info"));
    if spec.contains("rustls") {
        return filter;
    }
    match "rustls::msgs::handshake=error".parse() {
        Ok(d) => filter.add_directive(d),
        Err(_) => filter,
    }
}

fn init_logging(format: &str) {
    use std::io::IsTerminal;
    let env = std::env::var("PRIVCA_LOG").ok();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(log_filter(env.as_deref()))
        // Colour only on a terminal: escape codes in a log file or journal are garbage.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Makes the text a server prints once it listens, from its configuration, the bound
/// plain and HTTPS addresses, and the path of a one-time console login link.
pub type Banner =
    dyn Fn(&Config, std::net::SocketAddr, Option<std::net::SocketAddr>, &str) -> String;

/// `privca serve` / `quickstart`: runs until SIGTERM or Ctrl-C, then finishes in-flight
/// requests and exits. Once the listeners are bound, `banner` (given the configuration
/// and the bound plain and HTTPS addresses) makes the text printed on standard output.
pub fn serve_blocking(
    config_path: &Path,
    banner: Option<&Banner>,
    node_id: Option<String>,
) -> Result<(), Error> {
    let mut cfg = Config::load(config_path)?;
    if let Some(id) = node_id {
        // Checked with the rest of the PostgreSQL options when the store opens.
        match cfg.store.postgres.as_mut() {
            Some(pg) if cfg.store.backend == "postgres" => pg.node_id = Some(id),
            _ => {
                return Err(Error::Usage(
                    "--node-id names a node of a PostgreSQL store; [store] backend is not postgres"
                        .into(),
                ));
            }
        }
    }
    init_logging(&cfg.server.log_format);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("runtime", e))?;
    rt.block_on(async {
        let running = start(&cfg, None).await?;
        tracing::info!(addr = %running.addr, "privca listening");
        if let Some(b) = banner {
            use std::io::Write;
            let link = format!("/ui/login?link={}", running.state.console.new_login_link());
            let text = b(&cfg, running.addr, running.tls_addr, &link);
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
        }
        wait_for_signal().await;
        tracing::info!("signal received, stopping");
        let _ = running.shutdown.send(());
        let _ = running.done.await;
        tracing::info!("stopped");
        Ok(())
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
