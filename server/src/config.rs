//! privca.toml: one file composed of each crate's section (docs/architecture.md, decision 9).
//! Unknown fields are errors; secrets are references to files or environment variables;
//! relative paths are relative to the directory of the configuration file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ca_core::config::{CaConfig, ProfileConfig};
use hsm::SecretSource;
use serde::{Deserialize, Serialize};

use crate::Error;

/// The whole configuration file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[store]`.
    pub store: StoreConfig,
    /// `[keys]`.
    pub keys: KeysConfig,
    /// `[ca]`.
    pub ca: CaConfig,
    /// `[profiles.<name>]`.
    #[serde(default)]
    pub profiles: BTreeMap<String, ProfileConfig>,
    /// `[scep.endpoints.<name>]` (owned by the scep crate).
    #[serde(default)]
    pub scep: scep::config::ScepConfig,
    /// `[est]`: EST endpoints (served on the HTTPS listener, `[server.tls]`).
    #[serde(default)]
    pub est: est::EstConfig,
    /// `[acme]`: ACME endpoints (served on the HTTPS listener, `[server.tls]`).
    #[serde(default)]
    pub acme: acme::AcmeConfig,
    /// `[notify]`: webhooks and expiry reminders (docs/notifications.md).
    #[serde(default)]
    pub notify: crate::notify::NotifyConfig,
    /// The directory relative paths are resolved against (the config file's directory).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `[server]`: listeners and the admin API.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Plain-HTTP listener for CRLs, CA certificates, OCSP, health and the admin API.
    pub listen: SocketAddr,
    /// Bearer token of the admin API.
    pub admin_token: SecretSource,
    /// Serve the admin API only to loopback peers (default true).
    #[serde(default = "default_true")]
    pub admin_loopback_only: bool,
    /// Largest request body accepted, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Time allowed for a client to send its request headers, in seconds.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_seconds: u64,
    /// Time allowed for a whole request, in seconds.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_seconds: u64,
    /// Time a connection may stay open with no request in progress (before its first
    /// request and between keep-alive requests, HTTP/1 and HTTP/2), in seconds.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_seconds: u64,
    /// Most connections each listener holds open at once; more wait in the listen
    /// backlog until one closes.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Most connections each listener holds open from one client address (IPv6: one
    /// /64); more are closed at once. 0 (the default): no per-client limit.
    #[serde(default)]
    pub max_connections_per_client: usize,
    /// Log format: `text` or `json`.
    #[serde(default = "default_log_format")]
    pub log_format: String,
    /// `[server.tls]`: the HTTPS listener (EST, and everything the plain one serves).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// `[server.metrics]`: `/metrics` on the plain listener.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// `[server.renewal]`: privca's own certificates renewed before they expire.
    #[serde(default)]
    pub renewal: RenewalConfig,
}

/// `[server.renewal]`: the OCSP responder, SCEP RA and HTTPS listener certificates are
/// renewed by the running server once they expire within `margin` (issue 15 item 5;
/// docs/operations.md, "privca's own certificates"), and every CA certificate that
/// expires within `margin` is reported in `/healthz` and the log.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewalConfig {
    /// Renew automatically (default true); when false, expiry is only reported.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How long before notAfter a certificate is renewed (or reported): a number with
    /// `d`, `h`, `m` or `s` (default `30d`).
    #[serde(default = "default_margin")]
    pub margin: String,
    /// How often the certificates are checked (default `1h`).
    #[serde(default = "default_check_interval")]
    pub check_interval: String,
    /// Generate a new key for each renewal (default true), on the token when keys are
    /// in an HSM; false keeps the current key.
    #[serde(default = "default_true")]
    pub new_key: bool,
    /// Validity of a renewed HTTPS listener certificate, days (default 90, at most 366
    /// like `privca init --tls-days`). The OCSP and RA certificates get their profile's
    /// validity.
    #[serde(default = "default_renewal_tls_days")]
    pub tls_days: u32,
}

impl Default for RenewalConfig {
    fn default() -> Self {
        RenewalConfig {
            enabled: true,
            margin: default_margin(),
            check_interval: default_check_interval(),
            new_key: true,
            tls_days: default_renewal_tls_days(),
        }
    }
}

impl RenewalConfig {
    /// The margin, seconds.
    pub fn margin_seconds(&self) -> Result<i64, Error> {
        parse_span("[server.renewal] margin", &self.margin)
    }

    /// The check interval, seconds.
    pub fn check_interval_seconds(&self) -> Result<i64, Error> {
        parse_span("[server.renewal] check_interval", &self.check_interval)
    }

    fn validate(&self) -> Result<(), Error> {
        let margin = self.margin_seconds()?;
        self.check_interval_seconds()?;
        if !(1..=crate::init::MAX_TLS_DAYS).contains(&self.tls_days) {
            return Err(Error::Config(format!(
                "[server.renewal] tls_days must be 1 to {}",
                crate::init::MAX_TLS_DAYS
            )));
        }
        if margin >= i64::from(self.tls_days) * 86_400 {
            return Err(Error::Config(
                "[server.renewal] margin must be shorter than tls_days (a renewed certificate would be due again at once)".into(),
            ));
        }
        Ok(())
    }
}

fn default_margin() -> String {
    "30d".into()
}
fn default_check_interval() -> String {
    "1h".into()
}
fn default_renewal_tls_days() -> u32 {
    crate::init::DEFAULT_TLS_DAYS
}

/// A span of time written `<number><unit>`, unit `d`, `h`, `m` or `s`: seconds, at least
/// 1 and at most ten years.
pub fn parse_span(what: &str, text: &str) -> Result<i64, Error> {
    let bad = || {
        Error::Config(format!(
            "{what} {text:?}: write a number and a unit, d, h, m or s (\"30d\", \"12h\")"
        ))
    };
    let t = text.trim();
    let (num, unit) = t.split_at(t.len().saturating_sub(1));
    let n: i64 = num.parse().map_err(|_| bad())?;
    let mult = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(bad()),
    };
    let secs = n.checked_mul(mult).ok_or_else(bad)?;
    if !(1..=10 * 366 * 86_400).contains(&secs) {
        return Err(Error::Config(format!(
            "{what} {text:?}: must be between 1 second and ten years"
        )));
    }
    Ok(secs)
}

/// `[server.metrics]`: Prometheus metrics at `/metrics` on the plain HTTP listener
/// (docs/metrics.md). Like the admin API it is an operator endpoint: loopback clients
/// only unless `loopback_only = false` (then put it behind a firewall or a proxy that
/// authenticates the scraper). The metrics hold counts and expiry dates, no secrets.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `/metrics` (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Only to loopback clients (default true).
    #[serde(default = "default_true")]
    pub loopback_only: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            loopback_only: true,
        }
    }
}

/// `[server.tls]`: the HTTPS listener. It serves the same routes as the plain listener
/// plus EST, asks clients for a certificate (optional) whose trust anchors are collected
/// from the EST endpoints, and uses the same body limit and timeouts.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// PEM certificate chain, leaf first (`privca init` writes `ca/tls-server.crt`).
    pub certificate: PathBuf,
    /// Label of the key in the key store (`privca init` makes `tls-server`).
    #[serde(default)]
    pub key: Option<String>,
    /// Or: an unencrypted PKCS#8 PEM key file (mode 0600) for a certificate the operator
    /// brings.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Seconds a client has to finish the TLS handshake.
    #[serde(default = "default_header_timeout")]
    pub handshake_timeout_seconds: u64,
}

fn default_true() -> bool {
    true
}
fn default_max_body() -> usize {
    256 * 1024
}
fn default_header_timeout() -> u64 {
    10
}
fn default_request_timeout() -> u64 {
    30
}
fn default_idle_timeout() -> u64 {
    10
}
/// Well below the common service limit of 1,024 file descriptors, which the store, the
/// key backend and a second listener share.
fn default_max_connections() -> usize {
    256
}
fn default_log_format() -> String {
    "text".into()
}

/// `[store]`: where records live.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `redb` (one embedded file, one process) or `postgres` (several nodes on one
    /// PostgreSQL database, docs/scale-out.md).
    #[serde(default = "default_store_backend")]
    pub backend: String,
    /// `redb`: the database file.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `redb`: memory the database may keep for cached pages, in MiB: the bound on what
    /// the store adds to the server's resident memory however many certificates it
    /// holds. Default 256 (`store::DEFAULT_CACHE_BYTES`).
    #[serde(default)]
    pub cache_mb: Option<u64>,
    /// `postgres`: the `[store.postgres]` table.
    #[serde(default)]
    pub postgres: Option<PostgresConfig>,
}

fn default_store_backend() -> String {
    "redb".into()
}

/// `[store.postgres]`: how a node reaches the shared database (docs/scale-out.md).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// Connection URL (`postgresql://privca@db.example:5432/privca`) without a password;
    /// the fields below override its parts.
    #[serde(default)]
    pub url: Option<String>,
    /// Host name, address, or Unix socket directory.
    #[serde(default)]
    pub host: Option<String>,
    /// TCP port (default 5432).
    #[serde(default)]
    pub port: Option<u16>,
    /// User name.
    #[serde(default)]
    pub user: Option<String>,
    /// Database name.
    #[serde(default)]
    pub dbname: Option<String>,
    /// Secret: the password (`{ file = ... }` or `{ env = ... }`); none for trust or
    /// peer authentication.
    #[serde(default)]
    pub password: Option<SecretSource>,
    /// Most connections this node opens.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Time to connect, and to wait for a free pooled connection, in milliseconds.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// PostgreSQL `statement_timeout`, milliseconds.
    #[serde(default = "default_statement_timeout_ms")]
    pub statement_timeout_ms: u64,
    /// PostgreSQL `lock_timeout`, milliseconds: how long a write waits for a row another
    /// node holds before it fails (retryably).
    #[serde(default = "default_lock_timeout_ms")]
    pub lock_timeout_ms: u64,
    /// `disable` or `verify-full` (TLS, the server certificate checked against
    /// `ca_file` and the host name).
    #[serde(default = "default_pg_tls")]
    pub tls: String,
    /// PEM file of the CA certificates that sign the database server's certificate.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// This node's name in the audit log (letters, digits, `-`, `_`, `.`); default empty.
    #[serde(default)]
    pub node_id: Option<String>,
}

fn default_pool_size() -> usize {
    16
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}
fn default_statement_timeout_ms() -> u64 {
    30_000
}
fn default_lock_timeout_ms() -> u64 {
    5_000
}
fn default_pg_tls() -> String {
    "disable".into()
}

/// `[keys]`: the key backend.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// Backend: `soft` (encrypted PKCS#8 files) or `pkcs11` (a hardware security module).
    #[serde(default = "default_backend")]
    pub backend: String,
    /// `soft`: directory of the key files.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// `soft`: passphrase of the key files.
    #[serde(default)]
    pub passphrase: Option<SecretSource>,
    /// `pkcs11`: the `[keys.pkcs11]` table (module, token, PIN, session pool).
    #[serde(default)]
    pub pkcs11: Option<hsm::pkcs11::Pkcs11Config>,
}

fn default_backend() -> String {
    "soft".into()
}

impl Config {
    /// Reads and validates a configuration file.
    ///
    /// The file must not be writable by group or others (whoever can write it decides
    /// trust anchors, profiles and where secrets are read from), and when it holds
    /// verifiers (EST password hashes, which allow offline guessing) it must not be
    /// readable by them either; both are refused with a message naming the file.
    /// Secrets themselves are never inline (they are file or environment references,
    /// and secret files are checked by `hsm::read_private_file`).
    pub fn load(path: &Path) -> Result<Config, Error> {
        use std::io::Read;
        use std::os::unix::fs::PermissionsExt;
        let read_err =
            |e: std::io::Error| Error::Config(format!("reading {}: {e}", path.display()));
        let mut file = std::fs::File::open(path).map_err(read_err)?;
        let mode = file.metadata().map_err(read_err)?.permissions().mode() & 0o7777;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(read_err)?;
        if mode & 0o022 != 0 {
            return Err(Error::Config(format!(
                "configuration file {} has mode {mode:o}; it must not be writable by group or others (chmod 600 {})",
                path.display(),
                path.display()
            )));
        }
        let mut cfg: Config =
            toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        if mode & 0o044 != 0 && cfg.est.endpoints.values().any(|e| !e.accounts.is_empty()) {
            return Err(Error::Config(format!(
                "configuration file {} has mode {mode:o} and holds EST password hashes; it must not be readable by group or others (chmod 600 {})",
                path.display(),
                path.display()
            )));
        }
        cfg.base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks what serde cannot: backend names, URLs, authority names.
    pub fn validate(&self) -> Result<(), Error> {
        self.validate_keys()?;
        if self
            .store
            .cache_mb
            .is_some_and(|mb| !(8..=1 << 20).contains(&mb))
        {
            return Err(Error::Config(
                "[store] cache_mb must be between 8 and 1048576 (MiB)".into(),
            ));
        }
        self.validate_store()?;
        if !(self.ca.base_url.starts_with("http://") || self.ca.base_url.starts_with("https://")) {
            return Err(Error::Config(format!(
                "[ca] base_url {:?} must start with http:// or https://",
                self.ca.base_url
            )));
        }
        if !matches!(self.server.log_format.as_str(), "text" | "json") {
            return Err(Error::Config(
                "[server] log_format must be text or json".into(),
            ));
        }
        if self.server.max_body_bytes < 1024 {
            return Err(Error::Config(
                "[server] max_body_bytes must be at least 1024".into(),
            ));
        }
        if self.server.idle_timeout_seconds == 0 || self.server.header_timeout_seconds == 0 {
            return Err(Error::Config(
                "[server] idle_timeout_seconds and header_timeout_seconds must be at least 1"
                    .into(),
            ));
        }
        if !(1..=65_536).contains(&self.server.max_connections) {
            return Err(Error::Config(
                "[server] max_connections must be between 1 and 65536".into(),
            ));
        }
        if self.server.max_connections_per_client > self.server.max_connections {
            return Err(Error::Config(
                "[server] max_connections_per_client must not exceed max_connections (0: no per-client limit)".into(),
            ));
        }
        if self.ca.crl_validity_hours == 0 || self.ca.ocsp_validity_hours == 0 {
            return Err(Error::Config(
                "[ca] validity hours must be at least 1".into(),
            ));
        }
        self.scep
            .validate()
            .map_err(|e| Error::Config(e.to_string()))?;
        if let Some(t) = &self.server.tls
            && t.key.is_some() == t.key_file.is_some()
        {
            return Err(Error::Config(
                "[server.tls] needs exactly one of key (key store label) and key_file".into(),
            ));
        }
        self.server.renewal.validate()?;
        self.est.validate()?;
        if !self.est.endpoints.is_empty() && self.server.tls.is_none() {
            return Err(Error::Config(
                "[est] endpoints need the HTTPS listener: add [server.tls]".into(),
            ));
        }
        self.acme
            .validate()
            .map_err(|e| Error::Config(e.to_string()))?;
        if !self.acme.endpoints.is_empty() && self.server.tls.is_none() {
            return Err(Error::Config(
                "[acme] endpoints need the HTTPS listener: add [server.tls]".into(),
            ));
        }
        for (name, p) in &self.profiles {
            ca_core::profile::Profile::from_config(name, p.clone(), &self.ca.default_issuer)?;
        }
        Ok(())
    }

    /// Resolves a path from the file against the config directory.
    pub fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// A secret source with a relative file path resolved.
    pub fn secret(&self, s: &SecretSource) -> SecretSource {
        match s {
            SecretSource::File(p) => SecretSource::File(self.path(p)),
            other => other.clone(),
        }
    }

    /// Checks `[store]`: the backend's own settings are present and only those, and
    /// (for PostgreSQL) that they describe a connection, without connecting.
    fn validate_store(&self) -> Result<(), Error> {
        let s = &self.store;
        match s.backend.as_str() {
            "redb" => {
                if s.path.is_none() {
                    return Err(Error::Config("[store] backend \"redb\" needs path".into()));
                }
                if s.postgres.is_some() {
                    return Err(Error::Config(
                        "[store.postgres] is set but backend is \"redb\"".into(),
                    ));
                }
                Ok(())
            }
            "postgres" => {
                if s.path.is_some() {
                    return Err(Error::Config(
                        "[store] path belongs to the redb backend; remove it".into(),
                    ));
                }
                self.postgres_options(false).map(|_| ())
            }
            other => Err(Error::Config(format!(
                "[store] backend {other:?} is not supported (supported: redb, postgres)"
            ))),
        }
    }

    /// The PostgreSQL settings of `[store.postgres]` with relative paths resolved and,
    /// when `load_password`, the password read from its file or variable.
    pub fn postgres_options(&self, load_password: bool) -> Result<store::PgOptions, Error> {
        let Some(p) = &self.store.postgres else {
            return Err(Error::Config(
                "[store] backend \"postgres\" needs a [store.postgres] table".into(),
            ));
        };
        let ms = std::time::Duration::from_millis;
        let tls = match (p.tls.as_str(), &p.ca_file) {
            ("disable", None) => store::PgTls::Disable,
            ("disable", Some(_)) => {
                return Err(Error::Config(
                    "[store.postgres] ca_file is set but tls is \"disable\"; set tls = \"verify-full\""
                        .into(),
                ));
            }
            ("verify-full", Some(ca)) => store::PgTls::VerifyFull(self.path(ca)),
            ("verify-full", None) => {
                return Err(Error::Config(
                    "[store.postgres] tls = \"verify-full\" needs ca_file".into(),
                ));
            }
            (other, _) => {
                return Err(Error::Config(format!(
                    "[store.postgres] tls {other:?} is not supported (supported: disable, verify-full)"
                )));
            }
        };
        let password = match (&p.password, load_password) {
            (Some(source), true) => Some(self.secret(source).load()?.expose().to_vec()),
            _ => None,
        };
        let options = store::PgOptions {
            url: p.url.clone(),
            host: p.host.clone(),
            port: p.port,
            user: p.user.clone(),
            dbname: p.dbname.clone(),
            password,
            pool_size: p.pool_size,
            connect_timeout: ms(p.connect_timeout_ms),
            statement_timeout: ms(p.statement_timeout_ms),
            lock_timeout: ms(p.lock_timeout_ms),
            tls,
            node: p.node_id.clone().unwrap_or_default(),
        };
        options
            .validate()
            .map_err(|e| Error::Config(format!("[store.postgres]: {e}")))?;
        Ok(options)
    }

    /// `privca store migrate`: applies the PostgreSQL schema migrations the database
    /// lacks; returns their versions. The redb backend migrates itself at open.
    pub fn migrate_store(&self) -> Result<Vec<i32>, Error> {
        if self.store.backend != "postgres" {
            return Err(Error::Config(
                "privca store migrate is for [store] backend = \"postgres\"; a redb file is prepared when it is opened".into(),
            ));
        }
        Ok(store::PgStore::migrate(&self.postgres_options(true)?)?)
    }

    /// Checks `[keys]`: the backend's own settings are present and only those.
    fn validate_keys(&self) -> Result<(), Error> {
        let k = &self.keys;
        match k.backend.as_str() {
            "soft" => {
                if k.dir.is_none() || k.passphrase.is_none() {
                    return Err(Error::Config(
                        "[keys] backend \"soft\" needs dir and passphrase".into(),
                    ));
                }
                if k.pkcs11.is_some() {
                    return Err(Error::Config(
                        "[keys.pkcs11] is set but backend is \"soft\"".into(),
                    ));
                }
                Ok(())
            }
            "pkcs11" => {
                let Some(p) = &k.pkcs11 else {
                    return Err(Error::Config(
                        "[keys] backend \"pkcs11\" needs a [keys.pkcs11] table".into(),
                    ));
                };
                if k.dir.is_some() || k.passphrase.is_some() {
                    return Err(Error::Config(
                        "[keys] dir and passphrase belong to the soft backend; remove them".into(),
                    ));
                }
                p.validate().map_err(|e| Error::Config(e.to_string()))
            }
            other => Err(Error::Config(format!(
                "[keys] backend {other:?} is not supported (supported: soft, pkcs11)"
            ))),
        }
    }

    /// The `[keys.pkcs11]` settings with relative paths resolved, when that is the backend.
    pub fn pkcs11_config(&self) -> Option<hsm::pkcs11::Pkcs11Config> {
        let p = self
            .keys
            .pkcs11
            .as_ref()
            .filter(|_| self.keys.backend == "pkcs11")?;
        let mut p = p.clone();
        p.module = self.path(&p.module);
        p.pin = self.secret(&p.pin);
        Some(p)
    }

    /// Opens the key store of the configured backend.
    pub fn open_keys(&self) -> Result<Arc<dyn hsm::KeyStore>, Error> {
        if let Some(p) = self.pkcs11_config() {
            return Ok(Arc::new(hsm::pkcs11::Pkcs11KeyStore::open(p)?));
        }
        let (Some(dir), Some(pass)) = (&self.keys.dir, &self.keys.passphrase) else {
            return Err(Error::Config(
                "[keys] backend \"soft\" needs dir and passphrase".into(),
            ));
        };
        let pass = self.secret(pass).load()?;
        Ok(Arc::new(hsm::soft::SoftKeyStore::open(
            self.path(dir),
            pass,
        )?))
    }

    /// Opens the store (fails with `store::Error::Locked` while a server holds it).
    pub fn open_store(&self) -> Result<Arc<dyn store::Store>, Error> {
        if self.store.backend == "postgres" {
            return Ok(Arc::new(store::PgStore::open(
                &self.postgres_options(true)?,
            )?));
        }
        let Some(path) = &self.store.path else {
            return Err(Error::Config("[store] backend \"redb\" needs path".into()));
        };
        let mut options = store::StoreOptions::default();
        if let Some(mb) = self.store.cache_mb {
            options.cache_bytes = usize::try_from(mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
        }
        let s = store::RedbStore::open(&self.path(path), options)?;
        Ok(Arc::new(s))
    }

    /// Opens store and keys and loads the authority.
    pub fn load_authority(&self) -> Result<ca_core::Authority, Error> {
        Ok(self.load_authority_and_keys()?.0)
    }

    /// Opens store and keys and loads the authority; also returns the key store (the
    /// server reports its health).
    pub fn load_authority_and_keys(
        &self,
    ) -> Result<(ca_core::Authority, Arc<dyn hsm::KeyStore>), Error> {
        // The store first: when a server holds it, the CLI learns so before it spends
        // time decrypting keys.
        let store = self.open_store()?;
        let keys = self.open_keys()?;
        let auth = ca_core::Authority::load(
            &self.ca,
            &self.profiles,
            &self.base_dir,
            &*keys,
            store,
            Arc::new(ca_core::SystemClock),
        )?;
        Ok((auth, keys))
    }

    /// Opens store and keys and loads the authority without opening (decrypting) any
    /// key until it is used ([`ca_core::Authority::load_deferred`]): what offline CLI
    /// commands use, so that a read-only `privca show` or `list` does not spend a PBKDF2
    /// per CA key (issue 13 item 6). A wrong key passphrase is reported by the command
    /// that signs. `serve` and `config check` load keys up front
    /// ([`Config::load_authority_and_keys`]).
    pub fn load_authority_deferred(&self) -> Result<ca_core::Authority, Error> {
        let store = self.open_store()?;
        let keys = self.open_keys()?;
        Ok(ca_core::Authority::load_deferred(
            &self.ca,
            &self.profiles,
            &self.base_dir,
            keys,
            store,
            Arc::new(ca_core::SystemClock),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_have_a_unit_and_sane_bounds() {
        assert_eq!(parse_span("m", "30d").expect("30d"), 30 * 86_400);
        assert_eq!(parse_span("m", " 12h ").expect(" 12h "), 12 * 3600);
        assert_eq!(parse_span("m", "90m").expect("90m"), 5400);
        assert_eq!(parse_span("m", "1s").expect("1s"), 1);
        for bad in [
            "",
            "30",
            "d",
            "-1d",
            "0s",
            "1.5d",
            "30w",
            "99999999999999d",
            "4000d",
        ] {
            let e = parse_span("[server.renewal] margin", bad)
                .expect_err("refused")
                .to_string();
            assert!(e.contains("[server.renewal] margin"), "{bad}: {e}");
        }
        let mut r = RenewalConfig::default();
        r.validate().expect("defaults");
        r.margin = "90d".into();
        assert!(
            r.validate()
                .expect_err("refused")
                .to_string()
                .contains("tls_days")
        );
        r.margin = "30d".into();
        r.tls_days = 400;
        assert!(r.validate().is_err());
        let unknown: Result<RenewalConfig, _> = toml::from_str("margn = \"3d\"");
        assert!(unknown.is_err());
    }

    /// The annotated configuration `privca init` writes must load, so it cannot rot.
    #[test]
    fn the_annotated_config_init_writes_loads() {
        let text = crate::init::render_config(
            "127.0.0.1:8080",
            "http://ca.example:8080",
            "{ env = \"PRIVCA_KEY_PASSPHRASE\" }",
        );
        let cfg: Config = toml::from_str(&text).expect("parses");
        cfg.validate().expect("valid");
        assert_eq!(cfg.ca.authorities.len(), 2);
        assert_eq!(cfg.ca.authorities[1].parent.as_deref(), Some("root"));
        let r = &cfg.server.renewal;
        assert!(r.enabled && r.new_key);
        assert_eq!(r.margin_seconds().expect("margin"), 30 * 86_400);
        assert_eq!(r.check_interval_seconds().expect("interval"), 3600);
        assert_eq!(r.tls_days, crate::init::DEFAULT_TLS_DAYS);
        assert_eq!(
            cfg.keys.passphrase,
            Some(SecretSource::Env("PRIVCA_KEY_PASSPHRASE".into()))
        );
        // The commented PKCS#11 example is valid once uncommented in place of the soft lines.
        let hsm_example: String = text
            .lines()
            .skip_while(|l| !l.starts_with("# backend = \"pkcs11\""))
            .take_while(|l| l.starts_with('#'))
            .map(|l| l.trim_start_matches('#').trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(hsm_example.contains("[keys.pkcs11]"), "{hsm_example}");
        let soft_lines = "backend = \"soft\"\ndir = \"keys\"\npassphrase = { env = \"PRIVCA_KEY_PASSPHRASE\" }\n";
        assert!(text.contains(soft_lines));
        let (head, tail) = text.split_once(soft_lines).expect("soft lines");
        let (_, after_keys) = tail.split_once("\n[ca]\n").expect("[ca] follows");
        let with_hsm: Config =
            toml::from_str(&format!("{head}{hsm_example}\n\n[ca]\n{after_keys}"))
                .expect("hsm example parses");
        with_hsm.validate().expect("hsm example valid");
        let p = with_hsm.pkcs11_config().expect("pkcs11 backend");
        assert_eq!(p.token_label.as_deref(), Some("privca"));
        assert_eq!(p.pin, SecretSource::Env("PRIVCA_HSM_PIN".into()));
        // The commented example profile is valid once uncommented.
        let example: String = text
            .lines()
            .skip_while(|l| !l.starts_with("# [profiles."))
            .take_while(|l| !l.starts_with("# EST (RFC 7030)"))
            .map(|l| l.trim_start_matches('#').trim_start())
            // Prose between the examples stays out.
            .filter(|l| l.is_empty() || l.starts_with('[') || l.contains(" = "))
            .collect::<Vec<_>>()
            .join("\n");
        let with_example: Config =
            toml::from_str(&format!("{text}\n{example}")).expect("example parses");
        with_example.validate().expect("example profile valid");
        assert!(with_example.profiles.contains_key("corp-server"));
        assert_eq!(
            with_example.scep.endpoints.len(),
            4,
            "the SCEP examples parse"
        );
    }

    /// The commented PostgreSQL example is valid once uncommented in place of `path`, and
    /// bad `[store]` settings are refused with messages that say what to change.
    #[test]
    #[allow(clippy::unwrap_used)]
    fn the_postgres_store_example_loads_and_bad_store_settings_are_refused() {
        let text = crate::init::render_config("127.0.0.1:8080", "http://x", "{ file = \"p\" }");
        let example: String = text
            .lines()
            .skip_while(|l| !l.starts_with("# backend = \"postgres\""))
            .take_while(|l| l.starts_with('#'))
            .map(|l| l.trim_start_matches('#').trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        let (head, tail) = text
            .split_once("path = \"privca.redb\"\n")
            .expect("the redb path line");
        let (_, rest) = tail.split_once("\n[keys]\n").expect("[keys] follows");
        let with = |store: &str| -> Result<Config, String> {
            let mut cfg: Config = toml::from_str(&format!("{head}{store}\n\n[keys]\n{rest}"))
                .map_err(|e| e.to_string())?;
            cfg.base_dir = PathBuf::from("/etc/privca");
            Ok(cfg)
        };
        let cfg = with(&example).expect("example parses");
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("db-ca.pem");
        // Not a certificate: the CA file is read and refused at validation.
        std::fs::write(&ca, "not pem").unwrap();
        let mut pg = cfg.store.postgres.clone().unwrap();
        pg.ca_file = Some(ca.clone());
        let err = |store: StoreConfig| {
            let mut c = cfg.clone();
            c.store = store;
            c.validate().unwrap_err().to_string()
        };
        let bad_ca = err(StoreConfig {
            postgres: Some(pg.clone()),
            ..cfg.store.clone()
        });
        assert!(bad_ca.contains("CA file"), "{bad_ca}");
        // A real CA certificate is accepted.
        use base64::Engine as _;
        let der = include_bytes!("../../tests/vectors/scep/ra.crt.der");
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        std::fs::write(
            &ca,
            format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n"),
        )
        .unwrap();
        let mut good = cfg.clone();
        good.store.postgres = Some(pg.clone());
        good.validate().expect("example valid");
        let opts = good.postgres_options(false).unwrap();
        assert_eq!(opts.node, "node-a");
        assert_eq!(opts.pool_size, 16);
        assert!(opts.password.is_none(), "not loaded while validating");

        let cases: Vec<(StoreConfig, &str)> = vec![
            (
                StoreConfig {
                    backend: "sqlite".into(),
                    ..good.store.clone()
                },
                "not supported",
            ),
            (
                StoreConfig {
                    postgres: None,
                    ..good.store.clone()
                },
                "needs a [store.postgres] table",
            ),
            (
                StoreConfig {
                    path: Some("x.redb".into()),
                    ..good.store.clone()
                },
                "path belongs to the redb backend",
            ),
            (
                StoreConfig {
                    postgres: Some(PostgresConfig {
                        url: Some("postgresql://privca:secret@db/privca".into()),
                        ..pg.clone()
                    }),
                    ..good.store.clone()
                },
                "holds a password",
            ),
            (
                StoreConfig {
                    postgres: Some(PostgresConfig {
                        url: None,
                        ..pg.clone()
                    }),
                    ..good.store.clone()
                },
                "no host",
            ),
            (
                StoreConfig {
                    postgres: Some(PostgresConfig {
                        pool_size: 0,
                        ..pg.clone()
                    }),
                    ..good.store.clone()
                },
                "pool_size",
            ),
            (
                StoreConfig {
                    postgres: Some(PostgresConfig {
                        lock_timeout_ms: 0,
                        ..pg.clone()
                    }),
                    ..good.store.clone()
                },
                "lock_timeout",
            ),
            (
                StoreConfig {
                    postgres: Some(PostgresConfig {
                        ca_file: None,
                        ..pg.clone()
                    }),
                    ..good.store.clone()
                },
                "needs ca_file",
            ),
            (
                StoreConfig {
                    postgres: Some(PostgresConfig {
                        tls: "prefer".into(),
                        ..pg.clone()
                    }),
                    ..good.store.clone()
                },
                "tls \"prefer\" is not supported",
            ),
            (
                StoreConfig {
                    postgres: Some(PostgresConfig {
                        node_id: Some("node a/1".into()),
                        ..pg.clone()
                    }),
                    ..good.store.clone()
                },
                "node name",
            ),
            (
                StoreConfig {
                    backend: "redb".into(),
                    path: Some("x.redb".into()),
                    cache_mb: None,
                    postgres: Some(pg.clone()),
                },
                "backend is \"redb\"",
            ),
            (
                StoreConfig {
                    backend: "redb".into(),
                    path: None,
                    cache_mb: None,
                    postgres: None,
                },
                "needs path",
            ),
        ];
        for (store, want) in cases {
            let got = err(store);
            assert!(got.contains(want), "{got:?} should say {want:?}");
        }
        // An inline password is not a field.
        let inline =
            with(&example.replace("password = { file = \"pg-password\" }", "password = \"x\""));
        assert!(inline.is_err());
    }

    /// The commented ACME example is valid once uncommented, with `[server.tls]`; ACME
    /// without TLS is refused.
    #[test]
    fn the_acme_example_loads() {
        let text = crate::init::render_config("127.0.0.1:8080", "http://x", "{ file = \"p\" }");
        let example: String = text
            .lines()
            .skip_while(|l| !l.starts_with("# [acme]"))
            .map(|l| l.trim_start_matches('#').trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        let base = text
            .lines()
            .take_while(|l| !l.starts_with("# [profiles."))
            .collect::<Vec<_>>()
            .join("\n");
        let no_tls: Config = toml::from_str(&format!("{base}\n{example}")).expect("parses");
        assert!(no_tls.validate().is_err(), "ACME needs [server.tls]");
        let tls = crate::init::render_tls_section("127.0.0.1:8443");
        let cfg: Config =
            toml::from_str(&format!("{base}\n{tls}\n{example}")).expect("example parses");
        cfg.validate().expect("valid");
        let ep = &cfg.acme.endpoints["servers"];
        assert!(ep.eab_required);
        assert_eq!(ep.http01_port, 80);
        assert_eq!(ep.profile, "tls-server");
        // Unknown fields are errors.
        let bad = format!("{base}\n{tls}\n{example}\nhttp01_prot = 80");
        assert!(toml::from_str::<Config>(&bad).is_err());
    }

    /// The commented EST example is valid once uncommented, with the `[server.tls]`
    /// section `init --tls-listen` writes; EST without TLS is refused.
    #[test]
    fn the_est_example_and_tls_section_load() {
        let text = crate::init::render_config("127.0.0.1:8080", "http://x", "{ file = \"p\" }");
        let example: String = text
            .lines()
            .skip_while(|l| !l.starts_with("# [est]"))
            .take_while(|l| !l.starts_with("# ACME "))
            .map(|l| l.trim_start_matches('#').trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        let base = text
            .lines()
            .take_while(|l| !l.starts_with("# [profiles."))
            .collect::<Vec<_>>()
            .join("\n");
        let no_tls: Config = toml::from_str(&format!("{base}\n{example}")).expect("parses");
        assert!(no_tls.validate().is_err(), "EST needs [server.tls]");
        let tls = crate::init::render_tls_section("127.0.0.1:8443");
        let cfg: Config =
            toml::from_str(&format!("{base}\n{tls}\n{example}")).expect("example parses");
        cfg.validate().expect("valid");
        assert_eq!(cfg.est.default_label(), Some("devices"));
        let ep = &cfg.est.endpoints["devices"];
        assert_eq!(ep.auth, est::config::AuthMode::Either);
        assert!(!ep.has_ra());
        assert_eq!(
            cfg.est.password_limits,
            est::config::PasswordLimits::default()
        );
        assert_eq!(
            cfg.est.password_cache,
            est::config::PasswordCacheConfig::default()
        );
        assert_eq!(cfg.server.tls.as_ref().map(|t| t.listen.port()), Some(8443));
    }

    #[test]
    fn keys_sections_are_checked() {
        let base = crate::init::render_config("127.0.0.1:8080", "http://x", "{ file = \"p\" }");
        let soft = "backend = \"soft\"\ndir = \"keys\"\npassphrase = { file = \"p\" }\n";
        let with = |keys: &str| base.replace(soft, keys);
        let table =
            "[keys.pkcs11]\nmodule = \"/m.so\"\ntoken_label = \"t\"\npin = { env = \"PIN\" }\n";
        // pkcs11 with its table: fine; relative module paths resolve against the file.
        let cfg: Config =
            toml::from_str(&with(&format!("backend = \"pkcs11\"\n{table}"))).expect("parses");
        cfg.validate().expect("valid");
        assert_eq!(cfg.pkcs11_config().expect("pkcs11").sessions, 4);
        // pkcs11 without the table, soft with it, soft settings with pkcs11: refused.
        for bad in [
            "backend = \"pkcs11\"\n".to_string(),
            format!("{soft}{table}"),
            format!("backend = \"pkcs11\"\ndir = \"keys\"\n{table}"),
            format!(
                "backend = \"pkcs11\"\n{}",
                table.replace("token_label = \"t\"\n", "")
            ),
        ] {
            let cfg: Config = toml::from_str(&with(&bad)).expect("parses");
            assert!(cfg.validate().is_err(), "{bad}");
        }
        // Inline PINs and unknown fields do not parse.
        for bad in [
            table.replace("{ env = \"PIN\" }", "\"1234\""),
            table.replace("[keys.pkcs11]\n", "[keys.pkcs11]\nbogus = 1\n"),
        ] {
            assert!(
                toml::from_str::<Config>(&with(&format!("backend = \"pkcs11\"\n{bad}"))).is_err()
            );
        }
    }

    #[test]
    fn unknown_fields_are_errors() {
        let text = crate::init::render_config("127.0.0.1:8080", "http://x", "{ file = \"p\" }")
            .replace("[store]\n", "[store]\nbogus = 1\n");
        let e = toml::from_str::<Config>(&text).expect_err("unknown field");
        assert!(e.to_string().contains("bogus"), "{e}");
    }

    #[test]
    fn inline_secrets_are_rejected() {
        let text = crate::init::render_config("127.0.0.1:8080", "http://x", "\"hunter2\"");
        assert!(toml::from_str::<Config>(&text).is_err());
    }

    #[test]
    fn bad_values_are_reported() {
        let base = crate::init::render_config("127.0.0.1:8080", "http://x", "{ file = \"p\" }");
        let cfg: Config =
            toml::from_str(&base.replace("base_url = \"http://x\"", "base_url = \"ftp://x\""))
                .expect("parses");
        assert!(cfg.validate().is_err());
        let cfg: Config = toml::from_str(&base.replace("backend = \"soft\"", "backend = \"nope\""))
            .expect("parses");
        assert!(cfg.validate().is_err());
        // The store's page cache: the commented default is valid uncommented, 0 is not.
        for (line, ok) in [("cache_mb = 256", true), ("cache_mb = 0", false)] {
            let cfg: Config =
                toml::from_str(&base.replace("# cache_mb = 256", line)).expect("parses");
            assert_eq!(cfg.validate().is_ok(), ok, "{line}");
            assert!(cfg.store.cache_mb.is_some(), "{line}");
        }
    }
}
