//! The `privca` command line.
//!
//! Online commands (issue, revoke, list, show, crl, profiles, audit) open the store
//! directly when no server holds it, and otherwise go through the running server's
//! admin API (DESIGN.md decision 6). Both paths run the same [`crate::ops`] functions.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use hsm::KeyAlgorithm;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::config::Config;
use crate::init::{AddCaParams, InitParams};
use crate::ops;

/// privca: a private certificate authority and enrollment server.
#[derive(Debug, Parser)]
#[command(name = "privca", version, about)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        long,
        global = true,
        env = "PRIVCA_CONFIG",
        default_value = "privca-data/privca.toml"
    )]
    pub config: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Sub-commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a CA hierarchy (root, issuing CA, SCEP RA, OCSP responder) and privca.toml.
    Init(Box<InitArgs>),
    /// Init a CA in ./privca-data if there is none, then serve, printing the URLs.
    Quickstart(QuickstartArgs),
    /// Run the server.
    Serve,
    /// Issue a certificate from a CSR or a key generated here.
    Issue(IssueArgs),
    /// Revoke a certificate.
    Revoke {
        /// Serial number, hex.
        serial: String,
        /// RFC 5280 reason: unspecified, keyCompromise, cACompromise, affiliationChanged,
        /// superseded, cessationOfOperation, privilegeWithdrawn.
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
    /// List certificates.
    List(ListArgs),
    /// Show one certificate.
    Show {
        /// Serial number, hex.
        serial: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Publish a new CRL now.
    Crl {
        /// Only this authority.
        #[arg(long)]
        ca: Option<String>,
    },
    /// List profiles.
    Profiles {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Enrollment requests held for approval (SCEP PENDING, EST 202).
    Requests {
        /// What to do.
        #[command(subcommand)]
        action: RequestsAction,
    },
    /// Audit log operations.
    Audit {
        /// What to do.
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Configuration operations.
    Config {
        /// What to do.
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// CA hierarchy operations (offline: stop the server first).
    Ca {
        /// What to do.
        #[command(subcommand)]
        action: CaAction,
    },
    /// SCEP operations.
    Scep {
        /// What to do.
        #[command(subcommand)]
        action: ScepAction,
    },
    /// EST helpers.
    Est {
        /// What to do.
        #[command(subcommand)]
        action: EstAction,
    },
    /// Key backend operations: list keys, import a key (onto the HSM with pkcs11).
    Keys {
        /// What to do.
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Benchmarks (print figures; nothing is asserted).
    Bench {
        /// Which benchmark.
        #[command(subcommand)]
        which: crate::bench::BenchCommand,
    },
}

/// `privca scep …`.
#[derive(Debug, Subcommand)]
pub enum ScepAction {
    /// Create a one-time challenge password for an endpoint whose method is `one-time`
    /// (printed once; only its hash is stored).
    Challenge {
        /// The endpoint name.
        #[arg(long)]
        endpoint: String,
        /// Lifetime (`3600`, `30m`, `1h`, `7d`); default the endpoint's.
        #[arg(long)]
        ttl: Option<String>,
    },
}

/// `privca est …`.
#[derive(Debug, Subcommand)]
pub enum EstAction {
    /// Print a password hash for `[est.endpoints.<label>] accounts`; the password is read
    /// from standard input (first line) or from `--file`, never from the command line.
    HashPassword {
        /// Read the password from this file (first line) instead of standard input.
        #[arg(long)]
        file: Option<PathBuf>,
        /// PBKDF2 iterations.
        #[arg(long, default_value_t = est::password::DEFAULT_ITERATIONS)]
        iterations: u32,
    },
}

/// `privca est hash-password`.
pub fn hash_password(file: Option<&Path>, iterations: u32) -> Result<String, Error> {
    let text = match file {
        // A password file is a secret file: private to its owner (issue 9 item 7).
        Some(f) => String::from_utf8(hsm::read_private_file(f, "password file")?)
            .map_err(|_| Error::Usage(format!("{} is not UTF-8 text", f.display())))?,
        None => {
            let mut s = String::new();
            std::io::stdin()
                .read_line(&mut s)
                .map_err(|e| Error::io("reading standard input", e))?;
            s
        }
    };
    let password = text.lines().next().unwrap_or("");
    if password.is_empty() {
        return Err(Error::Usage("the password is empty".into()));
    }
    Ok(est::password::PasswordHash::new(password.as_bytes(), iterations)?.to_string())
}

/// `privca requests …`.
#[derive(Debug, Subcommand)]
pub enum RequestsAction {
    /// List held requests.
    List {
        /// Only requests in this state: pending, issued, rejected.
        #[arg(long)]
        state: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Approve a request: its certificate is issued and the client's next poll gets it.
    Approve {
        /// Request id (from `privca requests list`).
        id: u64,
    },
    /// Reject a request: the client's next poll gets a failure.
    Reject {
        /// Request id.
        id: u64,
        /// Why (the client may be told).
        #[arg(long)]
        reason: String,
    },
}

/// `privca audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Walk the hash chain of the audit log.
    Verify,
}

/// `privca config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Validate the configuration file (and that its certificates and keys load).
    Check,
}

/// `privca ca …`.
#[derive(Debug, Subcommand)]
pub enum CaAction {
    /// Create a further issuing CA under an existing CA.
    Add {
        /// Authority name.
        #[arg(long)]
        name: String,
        /// Subject, RFC 4514.
        #[arg(long)]
        subject: String,
        /// Key algorithm.
        #[arg(long, default_value = "ecdsa-p256", value_parser = parse_alg)]
        key_alg: KeyAlgorithm,
        /// Validity in days.
        #[arg(long, default_value_t = 1825)]
        days: u32,
        /// Parent authority.
        #[arg(long, default_value = "root")]
        parent: String,
    },
}

fn parse_alg(s: &str) -> Result<KeyAlgorithm, String> {
    KeyAlgorithm::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = KeyAlgorithm::ALL.iter().map(|a| a.name()).collect();
        format!("unknown key algorithm {s:?} (one of {})", names.join(", "))
    })
}

/// `privca init` options.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to create.
    #[arg(long, default_value = "privca-data")]
    pub data_dir: PathBuf,
    /// Root key algorithm.
    #[arg(long, default_value = "ecdsa-p384", value_parser = parse_alg)]
    pub root_key: KeyAlgorithm,
    /// Issuing CA key algorithm.
    #[arg(long, default_value = "ecdsa-p256", value_parser = parse_alg)]
    pub issuing_key: KeyAlgorithm,
    /// OCSP responder key algorithm (default: as the issuing CA).
    #[arg(long, value_parser = parse_alg)]
    pub ocsp_key: Option<KeyAlgorithm>,
    /// SCEP RA key algorithm (RSA).
    #[arg(long, default_value = "rsa-2048", value_parser = parse_alg)]
    pub ra_key: KeyAlgorithm,
    /// Root subject.
    #[arg(long, default_value = "CN=privca Root CA,O=privca")]
    pub root_subject: String,
    /// Issuing CA subject.
    #[arg(long, default_value = "CN=privca Issuing CA,O=privca")]
    pub issuing_subject: String,
    /// Root validity in days.
    #[arg(long, default_value_t = 3650)]
    pub root_days: u32,
    /// Issuing CA validity in days.
    #[arg(long, default_value_t = 1825)]
    pub issuing_days: u32,
    /// Base URL of the CRL, OCSP and CA certificate links baked into every certificate.
    /// Default: `http://<--listen>` (with the first --hostname, or loopback, when it
    /// listens on every address).
    #[arg(long)]
    pub base_url: Option<String>,
    /// Listener address written to the configuration.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Read the key passphrase from this file instead of generating one.
    #[arg(long, conflicts_with = "passphrase_env")]
    pub passphrase_file: Option<PathBuf>,
    /// Read the key passphrase from this environment variable instead of generating one.
    #[arg(long)]
    pub passphrase_env: Option<String>,
    /// Import an existing root: its certificate (PEM/DER).
    #[arg(long, requires = "import_root_key")]
    pub import_root_cert: Option<PathBuf>,
    /// Import an existing root: its unencrypted PKCS#8 key (PEM/DER).
    #[arg(long, requires = "import_root_cert")]
    pub import_root_key: Option<PathBuf>,
    /// Import an existing issuing CA (signed by the root): its certificate.
    #[arg(long, requires_all = ["import_issuing_key", "import_root_cert"])]
    pub import_issuing_cert: Option<PathBuf>,
    /// Import an existing issuing CA: its unencrypted PKCS#8 key.
    #[arg(long, requires = "import_issuing_cert")]
    pub import_issuing_key: Option<PathBuf>,
    /// HTTPS listener address ([server.tls], serves EST); init issues its certificate.
    #[arg(long)]
    pub tls_listen: Option<String>,
    /// Name for the HTTPS certificate (DNS name or IP; repeatable). Default: localhost
    /// and the listener's IP.
    #[arg(long = "hostname")]
    pub hostnames: Vec<String>,
    /// Validity of the HTTPS certificate in days (at most 366, Mozilla's intermediate
    /// TLS profile; the default 90 is its recommendation).
    #[arg(long, default_value_t = crate::init::DEFAULT_TLS_DAYS)]
    pub tls_days: u32,
    /// PKCS#11 options: keep every key on a hardware security module.
    #[command(flatten)]
    pub hsm: HsmArgs,
}

/// `privca init --hsm …`: the token the keys are generated on.
#[derive(Debug, Default, Args)]
pub struct HsmArgs {
    /// Generate (or import) the CA, RA and OCSP keys on a PKCS#11 token: the path of the
    /// module, e.g. /usr/lib/softhsm/libsofthsm2.so.
    #[arg(long = "hsm", value_name = "MODULE", conflicts_with_all = ["passphrase_file", "passphrase_env"])]
    pub module: Option<PathBuf>,
    /// Label of the token.
    #[arg(long = "hsm-token-label", requires = "module", conflicts_with = "slot")]
    pub token_label: Option<String>,
    /// Slot ID of the token (instead of its label).
    #[arg(long = "hsm-slot", requires = "module")]
    pub slot: Option<u64>,
    /// File holding the user PIN.
    #[arg(long = "hsm-pin-file", requires = "module", conflicts_with = "pin_env")]
    pub pin_file: Option<PathBuf>,
    /// Environment variable holding the user PIN.
    #[arg(long = "hsm-pin-env", requires = "module")]
    pub pin_env: Option<String>,
    /// Size of the session pool.
    #[arg(long = "hsm-sessions", default_value_t = 4)]
    pub sessions: usize,
    /// Prefix of the key labels on the token.
    #[arg(long = "hsm-label-prefix", default_value = "")]
    pub label_prefix: String,
}

impl HsmArgs {
    /// The `[keys.pkcs11]` configuration these options describe, when `--hsm` is given.
    pub fn config(&self) -> Result<Option<hsm::pkcs11::Pkcs11Config>, Error> {
        let Some(module) = &self.module else {
            return Ok(None);
        };
        let pin = match (&self.pin_file, &self.pin_env) {
            (Some(f), _) => hsm::SecretSource::File(
                std::path::absolute(f).map_err(|e| Error::io("PIN file path", e))?,
            ),
            (None, Some(v)) => hsm::SecretSource::Env(v.clone()),
            (None, None) => {
                return Err(Error::Usage(
                    "--hsm needs --hsm-pin-file or --hsm-pin-env (PINs are never given on the command line)".into(),
                ));
            }
        };
        let cfg = hsm::pkcs11::Pkcs11Config {
            module: std::path::absolute(module).map_err(|e| Error::io("module path", e))?,
            token_label: self.token_label.clone(),
            slot: self.slot,
            pin,
            sessions: self.sessions,
            label_prefix: self.label_prefix.clone(),
            wait_timeout_seconds: 30,
        };
        cfg.validate()?;
        Ok(Some(cfg))
    }
}

/// `privca keys …`: the key backend (offline; works beside a running server).
#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// List the keys of the configured backend.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Import an unencrypted PKCS#8 key (PEM or DER) under a label: onto the token with
    /// the pkcs11 backend (sensitive, not extractable; the token must allow key import).
    Import {
        /// Label to store it under.
        #[arg(long)]
        label: String,
        /// The key file.
        #[arg(long)]
        key: PathBuf,
    },
}

/// `privca quickstart` options.
#[derive(Debug, Args)]
pub struct QuickstartArgs {
    /// Data directory.
    #[arg(long, default_value = "privca-data")]
    pub data_dir: PathBuf,
    /// Listener address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
}

/// `privca issue` options.
#[derive(Debug, Args)]
pub struct IssueArgs {
    /// Profile.
    #[arg(long)]
    pub profile: String,
    /// CSR file (PEM or DER).
    #[arg(long, conflicts_with = "generate_key")]
    pub csr: Option<PathBuf>,
    /// Generate the key pair here.
    #[arg(long)]
    pub generate_key: bool,
    /// Algorithm of the generated key.
    #[arg(long, default_value = "ecdsa-p256", value_parser = parse_alg)]
    pub key_alg: KeyAlgorithm,
    /// Subject of a generated-key certificate (RFC 4514). Default: CN=<first DNS name>.
    #[arg(long)]
    pub subject: Option<String>,
    /// DNS SAN (repeatable).
    #[arg(long)]
    pub dns: Vec<String>,
    /// IP SAN (repeatable).
    #[arg(long)]
    pub ip: Vec<String>,
    /// Email SAN (repeatable).
    #[arg(long)]
    pub email: Vec<String>,
    /// URI SAN (repeatable).
    #[arg(long)]
    pub uri: Vec<String>,
    /// Validity in days (at most the profile's).
    #[arg(long)]
    pub days: Option<u32>,
    /// Output prefix: writes <out>.crt, <out>.chain.pem and, with --generate-key, <out>.key.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// With --generate-key: also write <out>.p12 (PKCS#12: key, certificate and chain;
    /// PBES2/AES-256, HMAC-SHA256). Its password is read from the file named by
    /// --p12-password-file or from the environment variable PRIVCA_P12_PASSWORD.
    #[arg(long, requires = "generate_key")]
    pub p12: bool,
    /// File holding the PKCS#12 password.
    #[arg(long, requires = "p12")]
    pub p12_password_file: Option<PathBuf>,
}

/// `privca list` options.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// valid, revoked or expired.
    #[arg(long)]
    pub status: Option<String>,
    /// Expiring within this many days.
    #[arg(long)]
    pub expiring: Option<u32>,
    /// Only this profile.
    #[arg(long)]
    pub profile: Option<String>,
    /// Only this issuer.
    #[arg(long)]
    pub issuer: Option<String>,
    /// Subject or SAN contains this text.
    #[arg(long)]
    pub subject: Option<String>,
    /// At most this many.
    #[arg(long)]
    pub limit: Option<usize>,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// Where online commands are carried out.
enum Target {
    /// The store was free: run here.
    Local(Box<ca_core::Authority>),
    /// A server holds the store: use its admin API.
    Remote {
        base: String,
        token: String,
        client: reqwest::blocking::Client,
    },
}

impl Target {
    fn open(cfg: &Config) -> Result<Target, Error> {
        match cfg.load_authority() {
            Ok(a) => Ok(Target::Local(Box::new(a))),
            Err(Error::Store(store::Error::Locked(_)))
            | Err(Error::Core(ca_core::Error::Store(store::Error::Locked(_)))) => {
                let token = cfg.secret(&cfg.server.admin_token).load()?;
                let token = String::from_utf8(token.expose().to_vec())
                    .map_err(|_| Error::Config("admin token is not text".into()))?;
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(120))
                    .build()
                    .map_err(|e| Error::io("HTTP client", e))?;
                Ok(Target::Remote {
                    base: format!("http://{}/admin/v1", loopback_of(cfg.server.listen)),
                    token,
                    client,
                })
            }
            Err(e) => Err(e),
        }
    }

    fn call<T: DeserializeOwned, B: Serialize>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, Error> {
        let Target::Remote {
            base,
            token,
            client,
        } = self
        else {
            return Err(Error::Usage("not connected to a server".into()));
        };
        let mut req = client
            .request(method, format!("{base}{path}"))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().map_err(|e| Error::io("admin API", e))?;
        let status = resp.status();
        let bytes = resp.bytes().map_err(|e| Error::io("admin API", e))?;
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string());
            return Err(Error::Api {
                status: status.as_u16(),
                message,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| Error::io("admin API answer", e))
    }
}

/// The address to reach a listener bound to `addr` from this host.
fn loopback_of(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    if addr.ip().is_unspecified() {
        let ip = if addr.is_ipv4() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
        };
        std::net::SocketAddr::new(ip, addr.port())
    } else {
        addr
    }
}

fn query_string(q: &ops::ListQuery) -> String {
    let mut parts = Vec::new();
    let mut push = |k: &str, v: String| {
        let enc: String = v
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        parts.push(format!("{k}={enc}"));
    };
    if let Some(v) = &q.status {
        push("status", v.clone());
    }
    if let Some(v) = q.expiring_days {
        push("expiring_days", v.to_string());
    }
    if let Some(v) = &q.profile {
        push("profile", v.clone());
    }
    if let Some(v) = &q.issuer {
        push("issuer", v.clone());
    }
    if let Some(v) = &q.text {
        push("text", v.clone());
    }
    if let Some(v) = q.limit {
        push("limit", v.to_string());
    }
    if let Some(v) = &q.cursor {
        push("cursor", v.clone());
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn print_json<T: Serialize>(v: &T) -> Result<(), Error> {
    let s = serde_json::to_string_pretty(v).map_err(|e| Error::io("JSON", e))?;
    println!("{s}");
    Ok(())
}

fn write_out(path: &Path, text: &str, mode: u32) -> Result<(), Error> {
    let _ = std::fs::remove_file(path);
    crate::init::write_new(path, text.as_bytes(), mode)
}

/// Runs the command line; returns the process exit code.
pub fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Init(a) => {
            let params = init_params(&a)?;
            let out = crate::init::init(&params)?;
            println!("created {}", out.config_path.display());
            println!("root CA:    {}", a.data_dir.join("ca/root.crt").display());
            println!(
                "issuing CA: {}",
                a.data_dir.join("ca/issuing.crt").display()
            );
            println!(
                "listener:   http://{} (base URL {})",
                a.listen, params.base_url
            );
            if let Some(l) = &a.tls_listen {
                println!(
                    "HTTPS:      {l} (certificate {}, {} days; add [est.endpoints.<label>] for EST, see docs/est.md)",
                    a.data_dir.join("ca/tls-server.crt").display(),
                    a.tls_days
                );
            }
            println!(
                "URLs the certificates carry (relying parties fetch them; they cannot be changed without re-issuing):"
            );
            for (which, what, url) in &out.urls {
                println!("  {which}: {what} {url}");
            }
            println!(
                "start it with: privca serve --config {}",
                out.config_path.display()
            );
            Ok(())
        }
        Command::Quickstart(q) => {
            let cfg_path = q.data_dir.join("privca.toml");
            if !cfg_path.exists() {
                let args = InitArgs::parse_defaults(&q);
                crate::init::init(&init_params(&args)?)?;
                println!("initialised a new CA in {}", q.data_dir.display());
            }
            crate::serve::serve_blocking(&cfg_path, true)
        }
        Command::Serve => crate::serve::serve_blocking(&cli.config, false),
        Command::Config {
            action: ConfigAction::Check,
        } => {
            let cfg = Config::load(&cli.config)?;
            match cfg.load_authority() {
                Ok(a) => {
                    let a = std::sync::Arc::new(a);
                    let (cas, profiles) = (a.authorities().len(), a.profiles().len());
                    // SCEP endpoints: profiles, RA keys and challenge secrets load.
                    let keys = if cfg.scep.endpoints.values().any(|e| e.ra_key.is_some()) {
                        Some(cfg.open_keys()?)
                    } else {
                        None
                    };
                    let scep = crate::scep_wiring::endpoints(&cfg, &a, keys.as_deref())?;
                    // EST endpoints name profiles and client CA files: check them too.
                    let est = est::EstService::new(&cfg.est, &cfg.base_dir, a.clone())?;
                    println!(
                        "{}: valid ({cas} authorities, {profiles} profiles, {} SCEP endpoints, {} EST endpoints)",
                        cli.config.display(),
                        scep.by_name.len(),
                        est.labels().len()
                    )
                }
                Err(Error::Store(store::Error::Locked(_)))
                | Err(Error::Core(ca_core::Error::Store(store::Error::Locked(_)))) => println!(
                    "{}: valid syntax (certificates and keys not loaded: the server holds the store)",
                    cli.config.display()
                ),
                Err(e) => return Err(e),
            }
            Ok(())
        }
        Command::Ca {
            action:
                CaAction::Add {
                    name,
                    subject,
                    key_alg,
                    days,
                    parent,
                },
        } => {
            let der = crate::init::add_ca(
                &cli.config,
                &AddCaParams {
                    name: name.clone(),
                    subject,
                    key: key_alg,
                    days,
                    parent,
                },
            )?;
            println!(
                "created authority {name} ({} bytes); restart the server to use it",
                der.len()
            );
            Ok(())
        }
        Command::Bench { which } => crate::bench::run(which),
        Command::Scep {
            action: ScepAction::Challenge { endpoint, ttl },
        } => {
            let cfg = Config::load(&cli.config)?;
            let target = Target::open(&cfg)?;
            let input = crate::scep_wiring::ChallengeInput { endpoint, ttl };
            let out: crate::scep_wiring::ChallengeOutput = match &target {
                Target::Local(auth) => {
                    crate::scep_wiring::create_challenge(auth, &cfg.scep, &input, &cli_actor())?
                }
                Target::Remote { .. } => {
                    target.call(reqwest::Method::POST, "/scep/challenges", Some(&input))?
                }
            };
            println!("{}", out.challenge);
            eprintln!(
                "one-time challenge for SCEP endpoint {} (expires {}); it is shown only now",
                out.endpoint, out.expires_at
            );
            Ok(())
        }
        Command::Est {
            action: EstAction::HashPassword { file, iterations },
        } => {
            println!("{}", hash_password(file.as_deref(), iterations)?);
            Ok(())
        }
        Command::Keys { action } => keys_command(&Config::load(&cli.config)?, action),
        other => {
            let cfg = Config::load(&cli.config)?;
            let target = Target::open(&cfg)?;
            online(other, &target)
        }
    }
}

impl InitArgs {
    fn parse_defaults(q: &QuickstartArgs) -> InitArgs {
        InitArgs {
            data_dir: q.data_dir.clone(),
            root_key: KeyAlgorithm::EcdsaP384,
            issuing_key: KeyAlgorithm::EcdsaP256,
            ocsp_key: None,
            ra_key: KeyAlgorithm::Rsa2048,
            root_subject: "CN=privca Root CA,O=privca".into(),
            issuing_subject: "CN=privca Issuing CA,O=privca".into(),
            root_days: 3650,
            issuing_days: 1825,
            base_url: None,
            listen: q.listen.clone(),
            passphrase_file: None,
            passphrase_env: None,
            import_root_cert: None,
            import_root_key: None,
            import_issuing_cert: None,
            import_issuing_key: None,
            tls_listen: None,
            hostnames: Vec::new(),
            tls_days: crate::init::DEFAULT_TLS_DAYS,
            hsm: HsmArgs::default(),
        }
    }
}

fn init_params(a: &InitArgs) -> Result<InitParams, Error> {
    let base_url = match &a.base_url {
        Some(b) => b.clone(),
        None => {
            let (url, warning) = crate::init::default_base_url(&a.listen, &a.hostnames)?;
            if let Some(w) = warning {
                eprintln!("warning: {w}");
            }
            url
        }
    };
    Ok(InitParams {
        data_dir: a.data_dir.clone(),
        root_key: a.root_key,
        issuing_key: a.issuing_key,
        ocsp_key: a.ocsp_key.unwrap_or(a.issuing_key),
        ra_key: a.ra_key,
        root_subject: a.root_subject.clone(),
        issuing_subject: a.issuing_subject.clone(),
        root_days: a.root_days,
        issuing_days: a.issuing_days,
        base_url,
        listen: a.listen.clone(),
        passphrase: match (&a.passphrase_file, &a.passphrase_env) {
            (Some(f), _) => Some(hsm::SecretSource::File(f.clone())),
            (None, Some(v)) => Some(hsm::SecretSource::Env(v.clone())),
            (None, None) => None,
        },
        import_root: a.import_root_cert.clone().zip(a.import_root_key.clone()),
        import_issuing: a
            .import_issuing_cert
            .clone()
            .zip(a.import_issuing_key.clone()),
        tls_listen: a.tls_listen.clone(),
        hostnames: a.hostnames.clone(),
        tls_days: a.tls_days,
        hsm: a.hsm.config()?,
    })
}

/// One row of `privca keys list`.
#[derive(Serialize)]
struct KeyRow {
    label: String,
    algorithm: String,
    /// SHA-256 of the SubjectPublicKeyInfo, hex.
    spki_sha256: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sensitive: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extractable: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generated_on_token: Option<bool>,
}

fn spki_sha256(spki: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(spki))
}

fn keys_command(cfg: &Config, action: KeysAction) -> Result<(), Error> {
    match action {
        KeysAction::List { json } => {
            let rows: Vec<KeyRow> = match cfg.pkcs11_config() {
                Some(p) => hsm::pkcs11::Pkcs11KeyStore::open(p)?
                    .list_details()?
                    .into_iter()
                    .map(|k| KeyRow {
                        spki_sha256: spki_sha256(&k.info.public_key_der),
                        label: k.info.label,
                        algorithm: k.info.algorithm.to_string(),
                        id: Some(k.id),
                        sensitive: Some(k.sensitive),
                        extractable: Some(k.extractable),
                        generated_on_token: Some(k.local),
                    })
                    .collect(),
                None => cfg
                    .open_keys()?
                    .list()?
                    .into_iter()
                    .map(|k| KeyRow {
                        spki_sha256: spki_sha256(&k.public_key_der),
                        label: k.label,
                        algorithm: k.algorithm.to_string(),
                        id: None,
                        sensitive: None,
                        extractable: None,
                        generated_on_token: None,
                    })
                    .collect(),
            };
            if json {
                return print_json(&rows);
            }
            println!("backend: {}", cfg.keys.backend);
            for r in rows {
                let mut line = format!(
                    "{:<24} {:<11} spki-sha256:{}",
                    r.label,
                    r.algorithm,
                    &r.spki_sha256[..16]
                );
                if let Some(id) = r.id {
                    line.push_str(&format!(" id:{id}"));
                }
                if let (Some(s), Some(e), Some(l)) =
                    (r.sensitive, r.extractable, r.generated_on_token)
                {
                    line.push_str(&format!(
                        " sensitive={s} extractable={e} {}",
                        if l { "generated-on-token" } else { "imported" }
                    ));
                }
                println!("{line}");
            }
            Ok(())
        }
        KeysAction::Import { label, key } => {
            let pkcs8 = crate::init::read_key_file(&key)?;
            let k = cfg.open_keys()?.import_pkcs8(&label, pkcs8.expose())?;
            println!(
                "imported {} key {:?} into the {} backend (spki-sha256:{})",
                k.algorithm(),
                k.label(),
                cfg.keys.backend,
                &spki_sha256(k.public_key_der())[..16]
            );
            Ok(())
        }
    }
}

fn online(cmd: Command, target: &Target) -> Result<(), Error> {
    use reqwest::Method;
    match cmd {
        Command::Issue(a) => {
            let input = issue_input(&a)?;
            let out: ops::IssueOutput = match target {
                Target::Local(auth) => ops::issue(auth, &input, &cli_actor())?,
                Target::Remote { .. } => {
                    target.call(Method::POST, "/certificates", Some(&input))?
                }
            };
            match &a.out {
                Some(prefix) => {
                    let p = |ext: &str| PathBuf::from(format!("{}{ext}", prefix.display()));
                    write_out(&p(".crt"), &out.certificate_pem, 0o644)?;
                    write_out(&p(".chain.pem"), &out.chain_pem, 0o644)?;
                    if let Some(k) = &out.private_key_pem {
                        write_out(&p(".key"), k, 0o600)?;
                        if a.p12 {
                            let password = p12_password(&a)?;
                            let bundle = pkcs12_bundle(&out, k, &password)?;
                            let _ = std::fs::remove_file(p(".p12"));
                            crate::init::write_new(&p(".p12"), &bundle, 0o600)?;
                        }
                    }
                    println!("issued serial {} -> {}", out.serial, p(".crt").display());
                }
                None => {
                    if out.private_key_pem.is_some() {
                        return Err(Error::Usage("--generate-key needs --out (the key is written to a 0600 file, never to the terminal)".into()));
                    }
                    eprintln!("issued serial {}", out.serial);
                    print!("{}", out.certificate_pem);
                }
            }
            Ok(())
        }
        Command::Revoke { serial, reason } => {
            let input = ops::RevokeInput {
                reason: Some(reason),
            };
            let v: ops::CertView = match target {
                Target::Local(auth) => ops::revoke(auth, &serial, &input, &cli_actor())?,
                Target::Remote { .. } => target.call(
                    Method::POST,
                    &format!("/certificates/{}/revoke", url_seg(&serial)),
                    Some(&input),
                )?,
            };
            println!("revoked {} ({})", v.serial, v.reason.unwrap_or_default());
            Ok(())
        }
        Command::List(a) => {
            // Pages through the list (bounded memory on both sides) and prints each page
            // as it arrives; --limit caps the total.
            let mut q = ops::ListQuery {
                status: a.status,
                expiring_days: a.expiring,
                profile: a.profile,
                issuer: a.issuer,
                text: a.subject,
                limit: None,
                cursor: None,
            };
            let mut remaining = a.limit.unwrap_or(usize::MAX);
            let mut shown = 0usize;
            if a.json {
                println!("[");
            } else {
                println!(
                    "{:<34} {:<8} {:<12} {:<20} SUBJECT",
                    "SERIAL", "STATUS", "PROFILE", "NOT AFTER"
                );
            }
            while remaining > 0 {
                q.limit = Some(remaining.min(ops::LIST_MAX_LIMIT));
                let page: ops::CertListPage = match target {
                    Target::Local(auth) => ops::list(auth, &q)?,
                    Target::Remote { .. } => target.call::<_, ()>(
                        Method::GET,
                        &format!("/certificates{}", query_string(&q)),
                        None,
                    )?,
                };
                for c in &page.certificates {
                    if a.json {
                        let s =
                            serde_json::to_string_pretty(c).map_err(|e| Error::io("JSON", e))?;
                        let sep = if shown == 0 { "" } else { ",\n" };
                        print!("{sep}{s}");
                    } else {
                        println!(
                            "{:<34} {:<8} {:<12} {:<20} {}",
                            c.serial, c.status, c.profile, c.not_after, c.subject
                        );
                    }
                    shown += 1;
                }
                remaining = remaining.saturating_sub(page.certificates.len());
                match page.next_cursor {
                    Some(next) if !page.certificates.is_empty() => q.cursor = Some(next),
                    _ => break,
                }
            }
            if a.json {
                println!("\n]");
            }
            eprintln!("{shown} certificate(s)");
            Ok(())
        }
        Command::Show { serial, json } => {
            let v: ops::CertView = match target {
                Target::Local(auth) => ops::show(auth, &serial)?,
                Target::Remote { .. } => target.call::<_, ()>(
                    Method::GET,
                    &format!("/certificates/{}", url_seg(&serial)),
                    None,
                )?,
            };
            if json {
                return print_json(&v);
            }
            println!("serial:     {}", v.serial);
            println!("status:     {}", v.status);
            println!("subject:    {}", v.subject);
            println!("SANs:       {}", v.sans.join(", "));
            println!("issuer:     {}", v.issuer);
            println!("profile:    {}", v.profile);
            println!("requester:  {}", v.requester);
            println!("not before: {}", v.not_before);
            println!("not after:  {}", v.not_after);
            if let Some(r) = &v.revoked_at {
                println!("revoked:    {r} ({})", v.reason.clone().unwrap_or_default());
            }
            print!("{}", v.pem.unwrap_or_default());
            Ok(())
        }
        Command::Crl { ca } => {
            let v: Vec<ops::CrlView> = match target {
                Target::Local(auth) => ops::crl(auth, ca.as_deref(), &cli_actor())?,
                Target::Remote { .. } => match &ca {
                    Some(c) => {
                        target.call::<_, ()>(Method::POST, &format!("/crl/{}", url_seg(c)), None)?
                    }
                    None => target.call::<_, ()>(Method::POST, "/crl", None)?,
                },
            };
            for c in v {
                println!(
                    "{}: CRL number {} ({} bytes), next update {} — {}",
                    c.ca, c.number, c.bytes, c.next_update, c.url
                );
            }
            Ok(())
        }
        Command::Requests { action } => requests(action, target),
        Command::Profiles { json } => {
            let v: Vec<ops::ProfileView> = match target {
                Target::Local(auth) => ops::profiles(auth),
                Target::Remote { .. } => target.call::<_, ()>(Method::GET, "/profiles", None)?,
            };
            if json {
                return print_json(&v);
            }
            println!(
                "{:<16} {:<10} {:>6}  {:<4} EKU",
                "PROFILE", "ISSUER", "DAYS", "CA"
            );
            for p in v {
                println!(
                    "{:<16} {:<10} {:>6}  {:<4} {}",
                    p.name,
                    p.issuer,
                    p.validity_days,
                    if p.ca { "yes" } else { "no" },
                    p.extended_key_usage.join(",")
                );
            }
            Ok(())
        }
        Command::Audit {
            action: AuditAction::Verify,
        } => {
            let v: store::AuditVerification = match target {
                Target::Local(auth) => ops::audit_verify(auth)?,
                Target::Remote { .. } => {
                    let j: serde_json::Value =
                        target.call::<_, ()>(Method::GET, "/audit/verify", None)?;
                    store::AuditVerification {
                        entries: j.get("entries").and_then(|e| e.as_u64()).unwrap_or(0),
                        first_bad: j.get("first_bad").and_then(|e| e.as_u64()),
                    }
                }
            };
            match v.first_bad {
                None => {
                    println!("audit log intact: {} entries verified", v.entries);
                    Ok(())
                }
                Some(seq) => Err(Error::Usage(format!(
                    "audit log is broken at entry {seq} ({} entries checked)",
                    v.entries
                ))),
            }
        }
        _ => Err(Error::Usage("unexpected command".into())),
    }
}

fn requests(action: RequestsAction, target: &Target) -> Result<(), Error> {
    use reqwest::Method;
    match action {
        RequestsAction::List { state, json } => {
            let v: Vec<ops::RequestView> = match target {
                Target::Local(auth) => ops::list_requests(auth, state.as_deref())?,
                Target::Remote { .. } => {
                    let q = state
                        .as_deref()
                        .map(|s| format!("?state={}", url_seg(s)))
                        .unwrap_or_default();
                    target.call::<_, ()>(Method::GET, &format!("/requests{q}"), None)?
                }
            };
            if json {
                return print_json(&v);
            }
            println!(
                "{:>6} {:<9} {:<16} {:<12} {:<20} SUBJECT / SANS",
                "ID", "STATE", "ENDPOINT", "PROFILE", "RECEIVED"
            );
            for r in &v {
                println!(
                    "{:>6} {:<9} {:<16} {:<12} {:<20} {} {}",
                    r.id,
                    r.state,
                    r.endpoint,
                    r.profile,
                    r.created_at,
                    r.subject,
                    r.sans.join(",")
                );
            }
            eprintln!("{} request(s)", v.len());
            Ok(())
        }
        RequestsAction::Approve { id } => {
            let v: ops::CertView = match target {
                Target::Local(auth) => ops::approve_request(auth, id, &cli_actor())?,
                Target::Remote { .. } => {
                    target.call::<_, ()>(Method::POST, &format!("/requests/{id}/approve"), None)?
                }
            };
            println!("approved request {id}: issued serial {}", v.serial);
            Ok(())
        }
        RequestsAction::Reject { id, reason } => {
            let input = ops::RejectInput { reason };
            let v: ops::RequestView = match target {
                Target::Local(auth) => ops::reject_request(auth, id, &input, &cli_actor())?,
                Target::Remote { .. } => target.call(
                    Method::POST,
                    &format!("/requests/{id}/reject"),
                    Some(&input),
                )?,
            };
            println!("rejected request {}", v.id);
            Ok(())
        }
    }
}

fn p12_password(a: &IssueArgs) -> Result<hsm::Secret, Error> {
    let source = match &a.p12_password_file {
        Some(f) => hsm::SecretSource::File(f.clone()),
        None => hsm::SecretSource::Env("PRIVCA_P12_PASSWORD".into()),
    };
    source.load().map_err(|e| {
        Error::Usage(format!(
            "PKCS#12 password: {e} (use --p12-password-file or PRIVCA_P12_PASSWORD)"
        ))
    })
}

/// A PKCS#12 file (RFC 7292) with the key, the certificate and its chain.
fn pkcs12_bundle(
    out: &ops::IssueOutput,
    key_pem: &str,
    password: &hsm::Secret,
) -> Result<Vec<u8>, Error> {
    let bad = |e: &dyn std::fmt::Display| Error::Io(format!("building the PKCS#12 bundle: {e}"));
    let password = std::str::from_utf8(password.expose())
        .map_err(|_| Error::Usage("the PKCS#12 password must be UTF-8".into()))?;
    let (_, key_der) = der::pem::decode_vec(key_pem.as_bytes()).map_err(|e| bad(&e))?;
    let mut certs = Vec::new();
    for pem_text in std::iter::once(out.certificate_pem.as_str()).chain(split_pem(&out.chain_pem)) {
        let (_, der_bytes) = der::pem::decode_vec(pem_text.as_bytes()).map_err(|e| bad(&e))?;
        certs.push(p12_keystore::Certificate::from_der(&der_bytes).map_err(|e| bad(&e))?);
    }
    let key = p12_keystore::PrivateKey::from_der(&key_der).map_err(|e| bad(&e))?;
    let local_id = hex::decode(&out.serial).unwrap_or_else(|_| out.serial.as_bytes().to_vec());
    let chain = p12_keystore::PrivateKeyChain::new(local_id, key, certs);
    let mut ks = p12_keystore::KeyStore::new();
    ks.add_entry(
        "privca",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
    );
    ks.writer(password)
        .encryption_iterations(600_000)
        .mac_algorithm(p12_keystore::MacAlgorithm::HmacSha256)
        .mac_iterations(600_000)
        .write()
        .map_err(|e| bad(&e))
}

fn split_pem(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive("-----END CERTIFICATE-----\n")
        .filter(|s| s.contains("BEGIN"))
}

fn url_seg(s: &str) -> String {
    s.chars()
        .filter(|c| {
            c.is_ascii_hexdigit()
                || *c == ':'
                || c.is_ascii_alphanumeric()
                || *c == '-'
                || *c == '_'
        })
        .collect()
}

fn cli_actor() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

fn issue_input(a: &IssueArgs) -> Result<ops::IssueInput, Error> {
    let mut sans: Vec<String> = Vec::new();
    sans.extend(a.dns.iter().map(|d| format!("dns:{d}")));
    sans.extend(a.ip.iter().map(|d| format!("ip:{d}")));
    sans.extend(a.email.iter().map(|d| format!("email:{d}")));
    sans.extend(a.uri.iter().map(|d| format!("uri:{d}")));
    let mut input = ops::IssueInput {
        profile: a.profile.clone(),
        sans,
        validity_days: a.days,
        ..ops::IssueInput::default()
    };
    match (&a.csr, a.generate_key) {
        (Some(path), false) => {
            let bytes = std::fs::read(path)
                .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            let pem_text = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
                String::from_utf8(bytes).map_err(|_| Error::Usage("CSR file is not text".into()))?
            } else {
                ops::pem("CERTIFICATE REQUEST", &bytes)
            };
            input.csr_pem = Some(pem_text);
            if a.subject.is_some() {
                return Err(Error::Usage(
                    "--subject goes with --generate-key; a CSR carries its own".into(),
                ));
            }
        }
        (None, true) => {
            input.generate_key = Some(a.key_alg);
            input.subject = Some(match &a.subject {
                Some(s) => s.clone(),
                None => match a.dns.first().or(a.email.first()) {
                    Some(d) => format!("CN={d}"),
                    None => String::new(),
                },
            });
            if a.out.is_none() {
                return Err(Error::Usage("--generate-key needs --out (the key is written to a 0600 file, never to the terminal)".into()));
            }
        }
        _ => return Err(Error::Usage("give --csr FILE or --generate-key".into())),
    }
    Ok(input)
}
