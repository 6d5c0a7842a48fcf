//! The command line's arguments: every sub-command and its options (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use hsm::KeyAlgorithm;

use crate::Error;

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
    Serve {
        /// This node's name in the audit log of a PostgreSQL store (overrides
        /// `[store.postgres] node_id`; letters, digits, '-', '_', '.').
        #[arg(long)]
        node_id: Option<String>,
    },
    /// Issue a certificate from a CSR or a key generated here.
    Issue(IssueArgs),
    /// Revoke a certificate by serial, by certificate file (`--cert`), or every
    /// certificate of a public key (`--key`). keyCompromise also blocks the key for every
    /// later enrollment (docs/lifecycle.md).
    Revoke(RevokeArgs),
    /// Release a certificate from hold (certificateHold, RFC 5280 §5.3.1): it is valid
    /// again, OCSP answers good and the next CRL no longer lists it.
    Release {
        /// Serial number, hex.
        serial: String,
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
    /// Store operations: `privca store migrate` applies the PostgreSQL schema.
    Store {
        /// What to do.
        #[command(subcommand)]
        action: StoreAction,
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
    /// ACME operations (External Account Binding keys).
    Acme {
        /// What to do.
        #[command(subcommand)]
        action: AcmeAction,
    },
    /// API tokens with roles and scopes for the admin API and the console
    /// (docs/admin-api.md, "Roles and tokens").
    Token {
        /// What to do.
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Notifications (docs/notifications.md).
    Notify {
        /// What to do.
        #[command(subcommand)]
        action: NotifyAction,
    },
    /// The web console (docs/console.md).
    Console {
        /// What to do.
        #[command(subcommand)]
        action: ConsoleAction,
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

/// `privca token …`.
#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Make a token; prints it once (only its SHA-256 is kept).
    Create {
        /// What to call it (audit entries name it).
        #[arg(long)]
        name: String,
        /// administrator, operator, auditor, challenges (one-time SCEP challenges only) or
        /// issuer (issuance only).
        #[arg(long)]
        role: String,
        /// Only under this profile (repeat for more).
        #[arg(long = "profile")]
        profiles: Vec<String>,
        /// Only for this SCEP endpoint (repeat for more).
        #[arg(long = "scep-endpoint")]
        scep_endpoints: Vec<String>,
        /// Lifetime (`3600`, `30m`, `12h`, `90d`); default: until revoked.
        #[arg(long)]
        expires: Option<String>,
    },
    /// List the tokens (never their secrets), with last use and state.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id.
    Revoke {
        /// The token's id (the 12 hex digits after `pca_`).
        id: String,
    },
}

/// `privca notify …`.
#[derive(Debug, Subcommand)]
pub enum NotifyAction {
    /// The last deliveries (webhook, event, attempt, outcome), oldest first.
    Log {
        /// How many lines (default 100).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

/// `privca console …`.
#[derive(Debug, Subcommand)]
pub enum ConsoleAction {
    /// Print a one-time login link for the console of the running server (valid for
    /// 10 minutes, spent by its first use).
    LoginLink,
}

/// `privca acme …`.
#[derive(Debug, Subcommand)]
pub enum AcmeAction {
    /// External Account Binding keys (RFC 8555 §7.3.4).
    Eab {
        /// What to do.
        #[command(subcommand)]
        action: EabAction,
    },
}

/// `privca acme eab …`.
#[derive(Debug, Subcommand)]
pub enum EabAction {
    /// Create a key for an endpoint: prints the key id and the HMAC key (base64url, no
    /// padding) once.
    Create {
        /// The ACME endpoint name.
        #[arg(long)]
        endpoint: String,
    },
    /// List the keys (never their HMAC keys) and the accounts bound with them.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
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

/// `privca store …`.
#[derive(Debug, Subcommand)]
pub enum StoreAction {
    /// Apply the schema migrations a PostgreSQL database lacks (`[store] backend =
    /// "postgres"`); safe to run from several nodes at once. Nodes refuse to start on a
    /// database that is not migrated, or migrated by a newer privca.
    Migrate,
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
    /// Listener address (plain HTTP: CRLs, OCSP, SCEP, admin API), for a new CA.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// HTTPS listener address (EST), for a new CA; its certificate names localhost and
    /// the address.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub tls_listen: String,
}

/// `privca revoke` options: exactly one of a serial, `--cert` and `--key`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["serial", "cert", "key"])))]
pub struct RevokeArgs {
    /// Serial number, hex.
    pub serial: Option<String>,
    /// A certificate file (PEM or DER) this CA issued.
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// A public key, certificate request or certificate (PEM): revokes every unrevoked
    /// certificate with that public key.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// RFC 5280 §5.3.1 reason: unspecified, keyCompromise, cACompromise,
    /// affiliationChanged, superseded, cessationOfOperation, certificateHold (profiles with
    /// allow_hold = true), privilegeWithdrawn.
    #[arg(long, default_value = "unspecified")]
    pub reason: String,
    /// RFC 5280 §5.3.2 invalidity date, RFC 3339 (2026-01-02T03:04:05Z): when the key
    /// was compromised or the certificate became invalid; not in the future.
    #[arg(long, value_name = "RFC3339")]
    pub invalidity_date: Option<String>,
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
    /// User principal name otherName SAN, `user@suffix` (repeatable; Microsoft
    /// 1.3.6.1.4.1.311.20.2.3).
    #[arg(long)]
    pub upn: Vec<String>,
    /// permanentIdentifier otherName SAN (RFC 4043), `VALUE` or `VALUE;assigner=OID`
    /// (repeatable).
    #[arg(long)]
    pub permanent_id: Vec<String>,
    /// hardwareModuleName otherName SAN (RFC 4108 §5), `HWTYPE-OID:HEXSERIAL`
    /// (repeatable).
    #[arg(long)]
    pub hardware_module: Vec<String>,
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

impl InitArgs {
    /// The options of `privca init` with their defaults, for `privca quickstart`.
    pub(crate) fn parse_defaults(q: &QuickstartArgs) -> InitArgs {
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
            tls_listen: Some(q.tls_listen.clone()),
            hostnames: Vec::new(),
            tls_days: crate::init::DEFAULT_TLS_DAYS,
            hsm: HsmArgs::default(),
        }
    }
}
