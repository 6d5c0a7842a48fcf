//! `privca quickstart`: a CA that devices can enroll with at once. On a fresh data
//! directory it runs `init` with an HTTPS listener, adds a SCEP endpoint with one-time
//! challenges and an EST endpoint with HTTP Basic authentication (a generated password in
//! a 0600 file, only its PBKDF2 hash in the configuration); on every run it makes a fresh
//! one-time SCEP challenge and prints, beside the URLs, shell commands that enroll a
//! device over SCEP (micromdm `scepclient`) and over EST (OpenSSL and curl).
//!
//! It also prints a one-time login link for the web console (docs/console.md). It sets up
//! no ACME endpoint yet (docs/acme.md).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::Error;
use crate::config::Config;
use crate::init::{InitParams, write_new};

/// The SCEP endpoint quickstart adds (`/scep/devices`, also the default SCEP path).
pub const SCEP_ENDPOINT: &str = "devices";
/// The EST endpoint quickstart adds (also the default, `/.well-known/est/`).
pub const EST_ENDPOINT: &str = "devices";
/// The EST account quickstart adds.
pub const EST_USER: &str = "quickstart";
/// The file, in the data directory, holding the EST account's password (mode 0600).
pub const EST_PASSWORD_FILE: &str = "est-password";
/// The file, in the data directory, holding the latest one-time SCEP challenge (0600).
pub const SCEP_CHALLENGE_FILE: &str = "scep-challenge";
/// Lifetime of the challenge each quickstart run makes, seconds.
pub const CHALLENGE_TTL_SECONDS: i64 = 86_400;

/// The `[scep]` and `[est]` sections quickstart appends to the configuration `init`
/// wrote; `password_hash` is the PHC string of the EST account's password.
pub fn render_sections(password_hash: &str) -> String {
    format!(
        r#"
# Added by `privca quickstart`.
# SCEP (RFC 8894) at /scep/{SCEP_ENDPOINT} (and, as the default endpoint, /scep and
# /cgi-bin/pkiclient.exe), with one-time challenges: make one per device with
# `privca scep challenge --endpoint {SCEP_ENDPOINT}` (only its hash is stored).
[scep.endpoints.{SCEP_ENDPOINT}]
profile = "device"
default = true
challenge = {{ method = "one-time", default_ttl_seconds = {CHALLENGE_TTL_SECONDS} }}
# micromdm scepclient (the client the printed commands use) encrypts with single DES
# only. Set this to false once your devices use AES or triple DES (Intune, Apple, Jamf,
# sscep and certmonger do).
allow_des = true
# scepclient encrypts to every certificate GetCACert returns and fails on the ECDSA
# CA certificates: answer GetCACert with the RA certificate only. Other clients take
# either answer.
ca_cert_chain = false

# EST (RFC 7030) on the HTTPS listener at /.well-known/est/ (the default endpoint) and
# /.well-known/est/{EST_ENDPOINT}/. HTTP Basic: the password of "{EST_USER}" is in
# `{EST_PASSWORD_FILE}` (mode 0600); only its PBKDF2 hash is here. Renewals
# (simplereenroll) authenticate with the current certificate.
[est]
default_endpoint = "{EST_ENDPOINT}"

[est.endpoints.{EST_ENDPOINT}]
profile = "device"
auth = "basic"
accounts = [{{ username = "{EST_USER}", password_hash = "{password_hash}" }}]
"#
    )
}

/// Sets up a fresh data directory: the EST password (written first, so that a failure
/// leaves no CA behind that lacks it), `init` with its HTTPS listener, then the SCEP
/// and EST sections appended to privca.toml.
pub fn create(p: &InitParams) -> Result<(), Error> {
    if p.tls_listen.is_none() {
        return Err(Error::Usage(
            "quickstart needs an HTTPS listener (--tls-listen) for EST".into(),
        ));
    }
    crate::init::private_dir(&p.data_dir)?;
    let password_path = p.data_dir.join(EST_PASSWORD_FILE);
    let password = crate::init::random_secret();
    let hash =
        est::password::PasswordHash::new(password.as_bytes(), est::password::DEFAULT_ITERATIONS)?
            .to_string();
    write_new(&password_path, password.as_bytes(), 0o600)?;
    if let Err(e) = crate::init::init(p) {
        // `init` refused before making anything (or failed half-way; its files name
        // the cause): the password file is ours to take back.
        let _ = std::fs::remove_file(&password_path);
        return Err(e);
    }
    crate::init::append_config(&p.data_dir.join("privca.toml"), &render_sections(&hash))
}

/// What quickstart found configured for enrollment in a data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enrollment {
    /// The configuration file.
    pub config_path: PathBuf,
    /// The SCEP endpoint with one-time challenges, and the file holding a fresh one.
    pub scep: Option<(String, PathBuf)>,
    /// The EST endpoint (None: the default), its Basic-auth user and password file.
    pub est: Option<(Option<String>, String, PathBuf)>,
    /// Why a protocol has no commands (printed for the operator).
    pub notes: Vec<String>,
}

/// Finds the enrollment endpoints of `cfg` and makes a fresh one-time SCEP challenge,
/// written to [`SCEP_CHALLENGE_FILE`] (0600, replacing the previous one). The store
/// must be free (no server running on this directory).
pub fn prepare(cfg: &Config, config_path: &Path) -> Result<Enrollment, Error> {
    let mut notes = Vec::new();
    let one_time = |e: &scep::config::EndpointConfig| {
        matches!(e.challenge, scep::config::ChallengeConfig::OneTime { .. })
    };
    let scep_name = if cfg.scep.endpoints.get(SCEP_ENDPOINT).is_some_and(one_time) {
        Some(SCEP_ENDPOINT.to_string())
    } else {
        cfg.scep
            .endpoints
            .iter()
            .find(|(_, e)| one_time(e))
            .map(|(n, _)| n.clone())
    };
    let scep = match scep_name {
        Some(name) => {
            let auth = match cfg.load_authority() {
                Ok(a) => a,
                Err(e) if e.is_store_locked() => {
                    return Err(Error::Usage(format!(
                        "a privca server is already running on {} (it holds the store); stop it first",
                        config_path.display()
                    )));
                }
                Err(e) => return Err(e),
            };
            let admin = crate::admin::LocalAdmin::new(&auth, &cfg.scep, "quickstart");
            let out = crate::admin::Admin::scep_challenge(
                &admin,
                &crate::scep_wiring::ChallengeInput {
                    endpoint: name.clone(),
                    ttl: Some(CHALLENGE_TTL_SECONDS.to_string()),
                },
            )?;
            let path = cfg.path(Path::new(SCEP_CHALLENGE_FILE));
            let _ = std::fs::remove_file(&path);
            write_new(&path, out.challenge.as_bytes(), 0o600)?;
            Some((name, path))
        }
        None => {
            notes.push(format!(
                "no SCEP endpoint with one-time challenges in {}, so no SCEP command (see docs/configuration.md)",
                config_path.display()
            ));
            None
        }
    };
    let password_path = cfg.path(Path::new(EST_PASSWORD_FILE));
    let est = if cfg.server.tls.is_none() {
        notes.push("no HTTPS listener ([server.tls]), so no EST command".into());
        None
    } else {
        let basic = |e: &est::config::EndpointConfig| {
            !matches!(e.auth, est::config::AuthMode::ClientCert)
                && e.accounts.iter().any(|a| a.username == EST_USER)
        };
        let found = cfg
            .est
            .endpoints
            .iter()
            .find(|(n, e)| n.as_str() == EST_ENDPOINT && basic(e))
            .or_else(|| cfg.est.endpoints.iter().find(|(_, e)| basic(e)));
        match found {
            Some((label, _)) if password_path.exists() => {
                let label = if cfg.est.default_endpoint.as_deref() == Some(label.as_str()) {
                    None
                } else {
                    Some(label.clone())
                };
                Some((label, EST_USER.to_string(), password_path))
            }
            _ => {
                notes.push(format!(
                    "no EST endpoint with the Basic account {EST_USER:?} and its password in {}, so no EST command (see docs/est.md)",
                    password_path.display()
                ));
                None
            }
        }
    };
    Ok(Enrollment {
        config_path: config_path.to_path_buf(),
        scep,
        est,
        notes,
    })
}

/// `s` quoted for a POSIX shell: as it is when it holds only characters no shell
/// treats specially, else in single quotes (a `'` inside becomes `'\''`).
pub fn sh_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./:@%+=,-".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Where a client on this host reaches a listener bound to `addr`.
fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        let ip: std::net::IpAddr = if addr.is_ipv4() {
            [127, 0, 0, 1].into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        SocketAddr::new(ip, addr.port())
    } else {
        addr
    }
}

/// Marks the start of a block of commands in quickstart's output; the commands follow,
/// each indented by four spaces, up to the first line that is not.
pub const COMMANDS_MARK: &str = "Commands to run";

/// The text quickstart prints once the server listens: the URLs, then for each
/// configured protocol a block of commands that enroll a device, run from any
/// directory (they write their files into it).
pub fn banner(
    cfg: &Config,
    e: &Enrollment,
    plain: SocketAddr,
    tls: Option<SocketAddr>,
    login: &str,
) -> String {
    let q = |p: &Path| sh_quote(&p.display().to_string());
    let plain = reachable(plain);
    let base = cfg.ca.base_url.trim_end_matches('/');
    let root = cfg.path(Path::new("ca/root.crt"));
    let issuing = cfg.path(Path::new("ca/issuing.crt"));
    let mut t = String::new();
    let _ = writeln!(t, "privca is serving on http://{plain}");
    if let Some(tls) = tls {
        let _ = writeln!(t, "  HTTPS:          https://{} (EST)", reachable(tls));
    }
    for ca in cfg.ca.authorities.iter().map(|a| &a.name) {
        let _ = writeln!(
            t,
            "  CA certificate: {base}/ca/{ca}.crt   CRL: {base}/crl/{ca}.crl"
        );
    }
    let _ = writeln!(t, "  OCSP:           {base}/ocsp");
    if let Some((name, _)) = &e.scep {
        let _ = writeln!(
            t,
            "  SCEP:           http://{plain}/scep/{name} (one-time challenges)"
        );
    }
    if let (Some((label, user, pw)), Some(tls)) = (&e.est, tls) {
        let _ = writeln!(
            t,
            "  EST:            https://{}{} (HTTP Basic, user {user}, password in {})",
            reachable(tls),
            est_path(label.as_deref()),
            pw.display()
        );
    }
    let _ = writeln!(t, "  health:         http://{plain}/healthz");
    let _ = writeln!(
        t,
        "  console:        http://{plain}{login} (one-time login link, 10 minutes; later: privca console login-link)"
    );
    if cfg.server.metrics.enabled {
        let _ = writeln!(
            t,
            "  metrics:        http://{plain}/metrics (Prometheus{})",
            if cfg.server.metrics.loopback_only {
                ", loopback clients only"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        t,
        "  admin API:      http://{plain}/admin/v1 (token in {})",
        cfg.path(Path::new("admin-token")).display()
    );
    let _ = writeln!(t, "  configuration:  {}", e.config_path.display());
    for n in &e.notes {
        let _ = writeln!(t, "  note: {n}");
    }
    let verify = |cert: &str| {
        format!(
            "openssl verify -CAfile {} -untrusted {} {cert}",
            q(&root),
            q(&issuing)
        )
    };
    if let Some((name, challenge)) = &e.scep {
        let _ = writeln!(
            t,
            "\nEnroll a device over SCEP with micromdm scepclient (Debian package scep). \
             {} holds a one-time challenge, valid for a day and for one enrollment; \
             make more with `privca --config {} scep challenge --endpoint {name}`. \
             scepclient takes the challenge only as -challenge, so it is visible in the \
             process list while scepclient runs.",
            challenge.display(),
            q(&e.config_path),
        );
        let _ = writeln!(t, "{COMMANDS_MARK} (SCEP):");
        let _ = writeln!(
            t,
            "    scepclient -server-url http://{plain}/scep/{name} -private-key scep-device.key -certificate scep-device.crt -cn scep-device-1 -challenge \"$(cat {})\"",
            q(challenge)
        );
        let _ = writeln!(t, "    {}", verify("scep-device.crt"));
    }
    if let (Some((label, user, pw)), Some(tls)) = (&e.est, tls) {
        let url = format!(
            "https://{}{}simpleenroll",
            reachable(tls),
            est_path(label.as_deref())
        );
        let _ = writeln!(
            t,
            "\nEnroll a device over EST with OpenSSL and curl. The password of {user} is in \
             {} (mode 0600); printf, a shell built-in, hands it to curl on its standard \
             input (-K -), so it is on no command line. curl trusts the privca root for \
             the HTTPS certificate.",
            pw.display()
        );
        let _ = writeln!(t, "{COMMANDS_MARK} (EST):");
        for line in [
            "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout est-device.key -subj /CN=est-device-1 -outform DER -out est-device.csr".to_string(),
            "openssl base64 -in est-device.csr -out est-device.csr.b64".to_string(),
            format!(
                "printf 'user = \"{user}:%s\"\\n' \"$(cat {})\" | curl --fail -sS --cacert {} -K - -H 'Content-Type: application/pkcs10' --data-binary @est-device.csr.b64 -o est-device.p7.b64 {url}",
                q(pw),
                q(&root)
            ),
            "openssl base64 -d -in est-device.p7.b64 -out est-device.p7".to_string(),
            "openssl pkcs7 -inform DER -in est-device.p7 -print_certs -out est-device.crt".to_string(),
            verify("est-device.crt"),
        ] {
            let _ = writeln!(t, "    {line}");
        }
    }
    let _ = writeln!(t, "\nprivca quickstart is ready; Ctrl-C stops it.");
    t
}

/// The EST path prefix of endpoint `label` (None: the default endpoint).
fn est_path(label: Option<&str>) -> String {
    match label {
        Some(l) => format!("/.well-known/est/{l}/"),
        None => "/.well-known/est/".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_leaves_plain_words_and_single_quotes_the_rest() {
        assert_eq!(sh_quote("/tmp/a-b_c.d/e:1"), "/tmp/a-b_c.d/e:1");
        assert_eq!(sh_quote("/tmp/my data"), "'/tmp/my data'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote("$(x)"), "'$(x)'");
        assert_eq!(sh_quote(""), "''");
    }

    #[test]
    fn sections_parse_as_the_scep_and_est_configuration() {
        #[derive(serde::Deserialize)]
        struct Part {
            scep: scep::config::ScepConfig,
            est: est::EstConfig,
        }
        let hash = est::password::PasswordHash::new(b"pw", 1000)
            .expect("hash")
            .to_string();
        let p: Part = toml::from_str(&render_sections(&hash)).expect("sections parse");
        let ep = &p.scep.endpoints[SCEP_ENDPOINT];
        assert!(matches!(
            ep.challenge,
            scep::config::ChallengeConfig::OneTime { .. }
        ));
        assert_eq!(p.est.default_endpoint.as_deref(), Some(EST_ENDPOINT));
        let acct = &p.est.endpoints[EST_ENDPOINT].accounts[0];
        assert_eq!(acct.username, EST_USER);
        assert_eq!(acct.password_hash, hash);
    }
}
