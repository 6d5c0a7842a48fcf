//! `privca init` and `privca ca add`: offline ceremonies that create (or import) CAs,
//! issue the SCEP RA and OCSP responder certificates, and write privca.toml.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use ca_core::ceremony::{RootSpec, create_root};
use ca_core::{Authority, CaEntity, IssueRequest, Settings, SystemClock};
use hsm::{KeyAlgorithm, KeyStore, PrivateKey, Secret};
use store::Store;

use crate::Error;
use crate::admin::pem;

/// Parameters of `privca init`.
#[derive(Clone, Debug)]
pub struct InitParams {
    /// Directory to create.
    pub data_dir: PathBuf,
    /// Root key algorithm.
    pub root_key: KeyAlgorithm,
    /// Issuing CA key algorithm.
    pub issuing_key: KeyAlgorithm,
    /// OCSP responder key algorithm.
    pub ocsp_key: KeyAlgorithm,
    /// RA key algorithm (RSA: SCEP clients encrypt to it).
    pub ra_key: KeyAlgorithm,
    /// Root subject (RFC 4514).
    pub root_subject: String,
    /// Issuing CA subject.
    pub issuing_subject: String,
    /// Root validity, days.
    pub root_days: u32,
    /// Issuing CA validity, days.
    pub issuing_days: u32,
    /// Base URL for CRL/OCSP/AIA.
    pub base_url: String,
    /// Listener address.
    pub listen: String,
    /// Key passphrase source: `None` generates one into `<data>/keys/passphrase`.
    pub passphrase: Option<hsm::SecretSource>,
    /// Import the root: certificate and PKCS#8 key files.
    pub import_root: Option<(PathBuf, PathBuf)>,
    /// Import the issuing CA: certificate and PKCS#8 key files.
    pub import_issuing: Option<(PathBuf, PathBuf)>,
    /// HTTPS listener address (`[server.tls]`); when set, init issues its certificate.
    pub tls_listen: Option<String>,
    /// Names for the HTTPS certificate (DNS names or IP addresses).
    pub hostnames: Vec<String>,
    /// Validity of the HTTPS listener's certificate, days (default
    /// [`DEFAULT_TLS_DAYS`], at most [`MAX_TLS_DAYS`]).
    pub tls_days: u32,
    /// Keep every key on this PKCS#11 token instead of in files (`--hsm`).
    pub hsm: Option<hsm::pkcs11::Pkcs11Config>,
}

/// Days the HTTPS listener certificate made by `init` is valid unless `--tls-days` says
/// otherwise: Mozilla's recommended certificate lifespan (server-side TLS guidelines 5.7,
/// `recommended_certificate_lifespan`, for the intermediate and modern profiles).
pub const DEFAULT_TLS_DAYS: u32 = 90;
/// Longest HTTPS listener certificate `init` makes: the `maximum_certificate_lifespan`
/// of Mozilla's intermediate profile (guidelines 5.7), which sslyze checks.
pub const MAX_TLS_DAYS: u32 = 366;

/// What `init` made.
#[derive(Debug)]
pub struct InitOutcome {
    /// The configuration file written.
    pub config_path: PathBuf,
    /// Root certificate, DER.
    pub root_der: Vec<u8>,
    /// Issuing certificate, DER.
    pub issuing_der: Vec<u8>,
    /// The revocation and issuer URLs the certificates carry, for the operator to check:
    /// (which certificates, what, URL).
    pub urls: Vec<(String, String, String)>,
}

/// The default `[ca] base_url` for a plain listener address (issue 9 item 22): the
/// listener itself, so that the CRL, OCSP and CA-certificate URLs baked into every CA
/// certificate point where privca will listen. An unspecified address (`0.0.0.0`, `::`)
/// says nothing about how clients reach the host: the first `--hostname` is used, or
/// loopback with a warning (the second value) that `--base-url` should be given.
pub fn default_base_url(
    listen: &str,
    hostnames: &[String],
) -> Result<(String, Option<String>), Error> {
    let addr: std::net::SocketAddr = listen
        .parse()
        .map_err(|e| Error::Usage(format!("--listen {listen:?}: {e}")))?;
    if !addr.ip().is_unspecified() {
        return Ok((format!("http://{addr}"), None));
    }
    let host = match hostnames.first() {
        Some(h) => match h
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
        {
            Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]"),
            Ok(ip) => ip.to_string(),
            Err(_) => h.clone(),
        },
        None => {
            let lo = if addr.is_ipv4() { "127.0.0.1" } else { "[::1]" };
            let url = format!("http://{lo}:{}", addr.port());
            return Ok((
                url.clone(),
                Some(format!(
                    "--listen {listen} binds every address; the certificates will point to {url}, which only this host can reach: give --base-url (or --hostname) with the name clients use"
                )),
            ));
        }
    };
    Ok((format!("http://{host}:{}", addr.port()), None))
}

/// The CRL distribution points (RFC 5280 §4.2.1.13) and authority information access
/// URLs (§4.2.2.1: OCSP, CA issuers) of a certificate, in that order.
pub fn cert_urls(der: &[u8]) -> Vec<(String, String)> {
    use const_oid::AssociatedOid;
    use der::Decode;
    use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
    use x509_cert::ext::pkix::{AuthorityInfoAccessSyntax, CrlDistributionPoints};
    let Ok(cert) = x509_cert::Certificate::from_der(der) else {
        return Vec::new();
    };
    let uri = |g: &GeneralName| match g {
        GeneralName::UniformResourceIdentifier(u) => Some(u.to_string()),
        _ => None,
    };
    let mut out = Vec::new();
    for ext in cert.tbs_certificate().extensions().into_iter().flatten() {
        if ext.extn_id == CrlDistributionPoints::OID {
            if let Ok(dps) = CrlDistributionPoints::from_der(ext.extn_value.as_bytes()) {
                for dp in &dps.0 {
                    if let Some(DistributionPointName::FullName(names)) = &dp.distribution_point {
                        out.extend(names.iter().filter_map(uri).map(|u| ("CRL".to_string(), u)));
                    }
                }
            }
        } else if ext.extn_id == AuthorityInfoAccessSyntax::OID
            && let Ok(aia) = AuthorityInfoAccessSyntax::from_der(ext.extn_value.as_bytes())
        {
            for ad in &aia.0 {
                let what = if ad.access_method == const_oid::db::rfc5280::ID_AD_OCSP {
                    "OCSP"
                } else if ad.access_method == const_oid::db::rfc5280::ID_AD_CA_ISSUERS {
                    "CA issuers"
                } else {
                    continue;
                };
                if let Some(u) = uri(&ad.access_location) {
                    out.push((what.to_string(), u));
                }
            }
        }
    }
    let rank = |w: &str| match w {
        "CRL" => 0,
        "OCSP" => 1,
        _ => 2,
    };
    out.sort_by_key(|(w, _)| rank(w));
    out
}

/// Creates a directory with mode 0700.
pub fn private_dir(p: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(p).map_err(|e| Error::io(format!("creating {}", p.display()), e))?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io(format!("chmod {}", p.display()), e))
}

/// Writes a file that must not exist yet, with `mode`.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// 32 random bytes from the OS CSPRNG, base64url: a generated passphrase, token or password.
pub(crate) fn random_secret() -> String {
    let mut b = [0u8; 32];
    rand::fill(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

pub(crate) fn read_key_file(path: &Path) -> Result<Secret, Error> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        let (label, der) = der::pem::decode_vec(bytes.trim_ascii())
            .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
        if label != "PRIVATE KEY" {
            return Err(Error::Usage(format!(
                "{}: expected an unencrypted PKCS#8 \"PRIVATE KEY\", found {label:?} (convert with `openssl pkcs8 -topk8 -nocrypt`)",
                path.display()
            )));
        }
        Ok(Secret::new(der))
    } else {
        Ok(Secret::new(bytes))
    }
}

fn settings(base_url: &str, default_issuer: &str) -> Settings {
    Settings {
        base_url: base_url.trim_end_matches('/').to_string(),
        default_issuer: default_issuer.to_string(),
        crl_validity: 7 * 86_400,
        crl_refresh: 3600,
        ocsp_validity: 86_400,
    }
}

/// Issues a certificate for a key held by `keys` through the normal pipeline.
fn issue_for_key(
    auth: &Authority,
    key: &Arc<dyn PrivateKey>,
    profile: &str,
    subject: &str,
    issuer: &str,
    validity_days: Option<u32>,
) -> Result<Vec<u8>, Error> {
    let subject = subject
        .parse()
        .map_err(|e| Error::Usage(format!("subject {subject:?}: {e}")))?;
    let req = IssueRequest {
        profile: profile.to_string(),
        subject,
        sans: Vec::new(),
        spki_der: key.public_key_der().to_vec(),
        key_algorithm: key.algorithm(),
        extensions: Vec::new(),
        requester: "init".into(),
        validity_days,
        issuer: Some(issuer.to_string()),
    };
    Ok(auth.issue(&req)?.record.der)
}

/// Runs the `init` ceremony.
pub fn init(p: &InitParams) -> Result<InitOutcome, Error> {
    let config_path = p.data_dir.join("privca.toml");
    let db_path = p.data_dir.join("privca.redb");
    if config_path.exists() || db_path.exists() {
        return Err(Error::Usage(format!(
            "{} already holds a CA; privca init never overwrites one",
            p.data_dir.display()
        )));
    }
    if p.tls_listen.is_some() && !(1..=MAX_TLS_DAYS).contains(&p.tls_days) {
        return Err(Error::Usage(format!(
            "--tls-days {}: the HTTPS certificate may live 1 to {MAX_TLS_DAYS} days (Mozilla's intermediate TLS profile allows at most {MAX_TLS_DAYS}; {DEFAULT_TLS_DAYS} is recommended)",
            p.tls_days
        )));
    }
    let root_subject: x509_cert::name::Name = p
        .root_subject
        .parse()
        .map_err(|e| Error::Usage(format!("root subject {:?}: {e}", p.root_subject)))?;
    if !p.ra_key.is_rsa() {
        return Err(Error::Usage(
            "the SCEP RA key must be RSA (clients encrypt to it)".into(),
        ));
    }
    private_dir(&p.data_dir)?;
    private_dir(&p.data_dir.join("ca"))?;
    // The key backend: a PKCS#11 token (`--hsm`) or encrypted files under keys/.
    let (keys, keys_toml): (Arc<dyn KeyStore>, String) = match &p.hsm {
        Some(h) => {
            let store = hsm::pkcs11::Pkcs11KeyStore::open(h.clone())?;
            (Arc::new(store), pkcs11_keys_toml(h))
        }
        None => {
            private_dir(&p.data_dir.join("keys"))?;
            let (pass_source, pass_toml) = match &p.passphrase {
                Some(s) => (s.clone(), secret_toml(s)),
                None => {
                    let path = p.data_dir.join("keys/passphrase");
                    write_new(&path, random_secret().as_bytes(), 0o600)?;
                    (
                        hsm::SecretSource::File(path),
                        "{ file = \"keys/passphrase\" }".to_string(),
                    )
                }
            };
            let store =
                hsm::soft::SoftKeyStore::open(p.data_dir.join("keys"), pass_source.load()?)?;
            (Arc::new(store), soft_keys_toml(&pass_toml))
        }
    };
    write_new(
        &p.data_dir.join("admin-token"),
        random_secret().as_bytes(),
        0o600,
    )?;
    let store: Arc<dyn Store> = Arc::new(store::RedbStore::open(
        &db_path,
        store::StoreOptions::default(),
    )?);
    let now = ca_core::Clock::now(&SystemClock);

    // Root: imported or created.
    let (root_key, root_der) = match &p.import_root {
        Some((cert, key)) => {
            let der = ca_core::authority::read_cert_file(cert)?;
            let key = keys.import_pkcs8("root", read_key_file(key)?.expose())?;
            import_record(&store, "root", &der, "root", now)?;
            (key, der)
        }
        None => {
            let key = keys.generate("root", p.root_key)?;
            let spec = RootSpec {
                name: "root".into(),
                subject: root_subject,
                validity_days: p.root_days,
                scheme: None,
            };
            let der = create_root(&store, &key, &spec, now, "init")?;
            (key, der)
        }
    };
    let root = CaEntity::new("root", root_der.clone(), root_key, None, None)?;
    let profiles = BTreeMap::new();
    let clock: Arc<dyn ca_core::Clock> = Arc::new(SystemClock);
    let auth = Authority::from_parts(
        vec![root],
        &profiles,
        settings(&p.base_url, "root"),
        store.clone(),
        clock.clone(),
    )?;

    // Issuing CA: imported or issued by the root through the pipeline.
    let (issuing_key, issuing_der) = match &p.import_issuing {
        Some((cert, key)) => {
            let der = ca_core::authority::read_cert_file(cert)?;
            let key = keys.import_pkcs8("issuing", read_key_file(key)?.expose())?;
            import_record(&store, "root", &der, "sub-ca", now)?;
            (key, der)
        }
        None => {
            let key = keys.generate("issuing", p.issuing_key)?;
            let der = issue_for_key(
                &auth,
                &key,
                "sub-ca",
                &p.issuing_subject,
                "root",
                Some(p.issuing_days),
            )?;
            (key, der)
        }
    };
    drop(auth);
    let root = CaEntity::new("root", root_der.clone(), keys.open("root")?, None, None)?;
    let issuing = CaEntity::new(
        "issuing",
        issuing_der.clone(),
        issuing_key,
        Some("root".into()),
        None,
    )?;
    let auth = Authority::from_parts(
        vec![root, issuing],
        &profiles,
        settings(&p.base_url, "issuing"),
        store.clone(),
        clock,
    )?;

    // RA and OCSP responder certificates from the issuing CA.
    let org = org_suffix(&p.issuing_subject);
    let ra_key = keys.generate_for("issuing-ra", p.ra_key, hsm::KeyUse::SignAndDecrypt)?;
    let ra_der = issue_for_key(
        &auth,
        &ra_key,
        "ra",
        &format!("CN=privca SCEP RA{org}"),
        "issuing",
        None,
    )?;
    let ocsp_key = keys.generate("issuing-ocsp", p.ocsp_key)?;
    let ocsp_der = issue_for_key(
        &auth,
        &ocsp_key,
        "ocsp-signing",
        &format!("CN=privca OCSP Responder{org}"),
        "issuing",
        None,
    )?;

    let ca_dir = p.data_dir.join("ca");
    for (file, der) in [
        ("root.crt", &root_der),
        ("issuing.crt", &issuing_der),
        ("issuing-ra.crt", &ra_der),
        ("issuing-ocsp.crt", &ocsp_der),
    ] {
        write_new(
            &ca_dir.join(file),
            pem("CERTIFICATE", der).as_bytes(),
            0o644,
        )?;
    }
    for name in ["root", "issuing"] {
        auth.generate_crl(name, "init")?;
    }
    let mut text = render_config_with_keys(&p.listen, &p.base_url, &keys_toml);
    if let Some(tls_listen) = &p.tls_listen {
        issue_tls_server(&auth, keys.as_ref(), &ca_dir, &issuing_der, tls_listen, p)?;
        text.push_str(&render_tls_section(tls_listen));
    }
    write_new(&config_path, text.as_bytes(), 0o600)?;
    let mut urls = Vec::new();
    for (which, der) in [
        ("issuing CA certificate", &issuing_der),
        ("certificates the issuing CA signs", &ra_der),
    ] {
        urls.extend(
            cert_urls(der)
                .into_iter()
                .map(|(what, u)| (which.to_string(), what, u)),
        );
    }
    Ok(InitOutcome {
        config_path,
        root_der,
        issuing_der,
        urls,
    })
}

/// Issues the HTTPS listener's certificate (profile tls-server) for a key made in the
/// key store (label `tls-server`), and writes the chain to `ca/tls-server.crt`.
fn issue_tls_server(
    auth: &Authority,
    keys: &dyn KeyStore,
    ca_dir: &Path,
    issuing_der: &[u8],
    tls_listen: &str,
    p: &InitParams,
) -> Result<(), Error> {
    let (hostnames, alg, days) = (&p.hostnames, p.issuing_key, p.tls_days);
    let mut names: Vec<String> = hostnames.to_vec();
    if names.is_empty() {
        names.push("localhost".into());
        if let Ok(addr) = tls_listen.parse::<std::net::SocketAddr>()
            && !addr.ip().is_unspecified()
        {
            names.push(addr.ip().to_string());
        }
    }
    // An IP address (also `[::1]`) is an iPAddress SAN, never a dNSName (RFC 5280
    // §4.2.1.6); everything else is a DNS name.
    let sans = names
        .iter()
        .map(|n| {
            match n
                .trim()
                .trim_matches(|c| c == '[' || c == ']')
                .parse::<std::net::IpAddr>()
            {
                Ok(ip) => Ok(ca_core::profile::San::Ip(ip)),
                Err(_) => ca_core::profile::San::parse(&format!("dns:{}", n.trim())),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let key = keys.generate("tls-server", alg)?;
    // The CN: the first DNS name when there is one (RFC 9525 clients look at the SANs
    // only), else the first address.
    let cn = sans
        .iter()
        .find_map(|s| match s {
            ca_core::profile::San::Dns(d) => Some(d.clone()),
            _ => None,
        })
        .or_else(|| {
            sans.iter().find_map(|s| match s {
                ca_core::profile::San::Ip(ip) => Some(ip.to_string()),
                _ => None,
            })
        })
        .unwrap_or_default();
    let req = IssueRequest {
        profile: "tls-server".into(),
        subject: format!("CN={cn}")
            .parse()
            .map_err(|e| Error::Usage(format!("hostname {cn:?}: {e}")))?,
        sans,
        spki_der: key.public_key_der().to_vec(),
        key_algorithm: key.algorithm(),
        extensions: Vec::new(),
        requester: "init".into(),
        validity_days: Some(days),
        issuer: Some("issuing".into()),
    };
    let der = auth.issue(&req)?.record.der;
    let chain = format!(
        "{}{}",
        pem("CERTIFICATE", &der),
        pem("CERTIFICATE", issuing_der)
    );
    write_new(&ca_dir.join("tls-server.crt"), chain.as_bytes(), 0o644)
}

/// The `[server.tls]` section `init --tls-listen` appends.
pub fn render_tls_section(tls_listen: &str) -> String {
    format!(
        r#"
[server.tls]
# HTTPS listener: everything the plain listener serves plus EST (/.well-known/est/).
# TLS 1.2 (with Extended Master Secret) and 1.3, ECDHE + AEAD suites only.
listen = "{tls_listen}"
# Chain, leaf first, issued by `privca init` (profile tls-server).
certificate = "ca/tls-server.crt"
# Key store label; or `key_file = "path.pem"` (unencrypted PKCS#8, mode 0600) for a
# certificate you bring.
key = "tls-server"
# Seconds a client has to finish the TLS handshake.
handshake_timeout_seconds = 10
"#
    )
}

/// `, O=…` of a subject, to name the RA and OCSP certificates after the organisation.
fn org_suffix(subject: &str) -> String {
    subject
        .split(',')
        .map(str::trim)
        .filter(|part| part.starts_with("O="))
        .map(|o| format!(",{o}"))
        .collect()
}

fn secret_toml(s: &hsm::SecretSource) -> String {
    match s {
        hsm::SecretSource::File(p) => format!("{{ file = {:?} }}", p.display().to_string()),
        hsm::SecretSource::Env(v) => format!("{{ env = {v:?} }}"),
    }
}

/// Records an imported CA certificate so that it can be revoked and listed like the rest.
fn import_record(
    store: &Arc<dyn Store>,
    issuer: &str,
    der: &[u8],
    profile: &str,
    now: i64,
) -> Result<(), Error> {
    use der::Decode;
    let cert = x509_cert::Certificate::from_der(der)
        .map_err(|e| Error::Usage(format!("imported certificate: {e}")))?;
    let tbs = cert.tbs_certificate();
    let serial = tbs.serial_number().as_bytes().to_vec();
    store.reserve_serial(&serial, issuer)?;
    let record = store::CertRecord {
        serial: serial.clone(),
        issuer: issuer.to_string(),
        subject: tbs.subject().to_string(),
        sans: Vec::new(),
        profile: profile.to_string(),
        requester: "import".into(),
        not_before: ca_core::asn1::unix_of(&tbs.validity().not_before),
        not_after: ca_core::asn1::unix_of(&tbs.validity().not_after),
        issued_at: now,
        status: store::CertStatus::Valid,
        revocation: None,
        spki_sha256: ca_core::asn1::cert_spki_sha256(der)
            .map_err(|e| Error::Usage(format!("imported certificate: {e}")))?,
        der: der.to_vec(),
    };
    let audit = store::AuditEvent {
        time: now,
        action: "import-ca".into(),
        actor: "init".into(),
        subject: ca_core::asn1::serial_hex(&serial),
        detail: format!("subject={}", record.subject),
    };
    store.record_issuance(&record, &audit)?;
    Ok(())
}

/// Parameters of `privca ca add`.
#[derive(Clone, Debug)]
pub struct AddCaParams {
    /// New authority name.
    pub name: String,
    /// Its subject.
    pub subject: String,
    /// Its key algorithm.
    pub key: KeyAlgorithm,
    /// Validity, days.
    pub days: u32,
    /// Parent (a root).
    pub parent: String,
}

/// Creates a further issuing CA under an existing CA and appends it to privca.toml.
pub fn add_ca(config_path: &Path, p: &AddCaParams) -> Result<Vec<u8>, Error> {
    let cfg = crate::config::Config::load(config_path)?;
    if cfg.ca.authorities.iter().any(|a| a.name == p.name) {
        return Err(Error::Usage(format!("authority {} already exists", p.name)));
    }
    let keys = cfg.open_keys()?;
    let auth = cfg.load_authority()?;
    let key = keys.generate(&p.name, p.key)?;
    let der = issue_for_key(&auth, &key, "sub-ca", &p.subject, &p.parent, Some(p.days))?;
    let rel = PathBuf::from("ca").join(format!("{}.crt", p.name));
    write_new(&cfg.path(&rel), pem("CERTIFICATE", &der).as_bytes(), 0o644)?;
    append_config(
        config_path,
        &format!(
            "\n# Added by `privca ca add`.\n[[ca.authority]]\nname = {:?}\ncertificate = {:?}\nkey = {:?}\nparent = {:?}\n",
            p.name,
            rel.display().to_string(),
            p.name,
            p.parent
        ),
    )?;
    Ok(der)
}

/// Appends `extra` to the configuration file, atomically: the new text goes to a 0600
/// file beside it, which then replaces it (a crash leaves the old or the new file).
pub fn append_config(config_path: &Path, extra: &str) -> Result<(), Error> {
    let mut text = std::fs::read_to_string(config_path)
        .map_err(|e| Error::io(format!("reading {}", config_path.display()), e))?;
    text.push_str(extra);
    let tmp = config_path.with_extension("toml.new");
    let _ = std::fs::remove_file(&tmp);
    write_new(&tmp, text.as_bytes(), 0o600)?;
    std::fs::rename(&tmp, config_path).map_err(|e| Error::io("replacing the configuration", e))
}

/// The commented configuration `init` writes, with software keys (`passphrase` is the
/// TOML of the passphrase's secret source).
pub fn render_config(listen: &str, base_url: &str, passphrase: &str) -> String {
    render_config_with_keys(listen, base_url, &soft_keys_toml(passphrase))
}

/// The body of `[keys]` for the software backend, with a commented PKCS#11 example.
pub fn soft_keys_toml(passphrase: &str) -> String {
    format!(
        r#"# soft: encrypted PKCS#8 files (mode 0600) under `dir`.
backend = "soft"
dir = "keys"
passphrase = {passphrase}
# pkcs11: keys on a hardware security module (see docs/operations.md, "Keys in an HSM").
# The CA, RA and OCSP keys are then generated on the token (sensitive, not extractable).
# backend = "pkcs11"
# [keys.pkcs11]
# module = "/usr/lib/softhsm/libsofthsm2.so"
# token_label = "privca"            # or: slot = 0
# pin = {{ env = "PRIVCA_HSM_PIN" }}  # or {{ file = "hsm-pin" }}; never inline
# sessions = 4                      # concurrent operations on the token
# label_prefix = ""                 # put in front of every key label on the token
# wait_timeout_seconds = 30         # longest wait for a free session
"#
    )
}

/// The body of `[keys]` for a PKCS#11 token (written by `privca init --hsm`).
pub fn pkcs11_keys_toml(p: &hsm::pkcs11::Pkcs11Config) -> String {
    let mut t = String::from(
        "# pkcs11: the CA, RA and OCSP keys live on a hardware security module\n\
         # (see docs/operations.md, \"Keys in an HSM\").\n\
         backend = \"pkcs11\"\n\n[keys.pkcs11]\n",
    );
    t.push_str(&format!("module = {:?}\n", p.module.display().to_string()));
    if let Some(l) = &p.token_label {
        t.push_str(&format!("token_label = {l:?}\n"));
    }
    if let Some(s) = p.slot {
        t.push_str(&format!("slot = {s}\n"));
    }
    t.push_str(&format!("pin = {}\n", secret_toml(&p.pin)));
    t.push_str("# Concurrent operations on the token.\n");
    t.push_str(&format!("sessions = {}\n", p.sessions));
    t.push_str(&format!("label_prefix = {:?}\n", p.label_prefix));
    t.push_str(&format!(
        "wait_timeout_seconds = {}\n",
        p.wait_timeout_seconds
    ));
    t
}

/// The commented configuration `init` writes, with `keys` as the body of `[keys]`.
pub fn render_config_with_keys(listen: &str, base_url: &str, keys: &str) -> String {
    format!(
        r#"# privca configuration, written by `privca init`.
# Relative paths are relative to this file's directory. Secrets are never written inline:
# they are `{{ file = "path" }}` or `{{ env = "VARIABLE" }}` references.
# Check a change with `privca config check --config <this file>`.

[server]
# Plain-HTTP listener for CRLs (/crl/<ca>.crl), CA certificates (/ca/<ca>.crt),
# OCSP (/ocsp), /healthz and the admin API (/admin/v1, bearer token).
listen = "{listen}"
admin_token = {{ file = "admin-token" }}
# The admin API answers loopback clients only.
admin_loopback_only = true
# Largest request body, bytes.
max_body_bytes = 262144
# Seconds a client has to send its request headers, and to finish a request.
header_timeout_seconds = 10
request_timeout_seconds = 30
# Seconds a connection may stay open with no request in progress (before the first,
# between keep-alive requests; HTTP/1 and HTTP/2).
idle_timeout_seconds = 10
# Connections each listener holds at once (more wait in the listen backlog), and per
# client address (0: no limit; keep 0 behind a reverse proxy or NAT).
max_connections = 256
max_connections_per_client = 0
# text or json
log_format = "text"

# Prometheus metrics at /metrics on this listener (docs/metrics.md): loopback clients
# only, like the admin API. `enabled = false` turns them off.
# [server.metrics]
# enabled = true
# loopback_only = true

# privca's own certificates: the OCSP responder, SCEP RA and HTTPS listener certificates
# are renewed by the running server once they expire within `margin`, with a new key (on
# the token when keys are in an HSM), without a restart; each renewed certificate file
# then names its key on a `privca key:` line. CA certificates inside the margin are
# reported in /healthz and the log (docs/operations.md, "privca's own certificates").
[server.renewal]
enabled = true
margin = "30d"             # d, h, m or s
check_interval = "1h"
new_key = true             # false: the renewed certificate keeps the current key
tls_days = 90              # validity of a renewed HTTPS certificate (at most 366)

[store]
# The record database (redb). Only one process opens it at a time.
path = "privca.redb"
# Memory for cached database pages, in MiB: what the store adds to the server's resident
# memory at most, however many certificates it holds.
# cache_mb = 256
# Several nodes on one PostgreSQL database instead (docs/scale-out.md): replace the
# path line with these, then run `privca store migrate` once.
# backend = "postgres"
# [store.postgres]
# url = "postgresql://privca@db.example:5432/privca"
# password = {{ file = "pg-password" }}
# pool_size = 16
# statement_timeout_ms = 30000
# lock_timeout_ms = 5000
# tls = "verify-full"
# ca_file = "db-ca.pem"
# node_id = "node-a"

[keys]
{keys}
[ca]
# Certificates point relying parties here for CRLs, OCSP and issuer certificates.
base_url = "{base_url}"
default_issuer = "issuing"
# CRL: valid for a week, re-signed every hour and on every revocation.
crl_validity_hours = 168
crl_refresh_minutes = 60
# OCSP responses are valid for a day.
ocsp_validity_hours = 24

[[ca.authority]]
name = "root"
certificate = "ca/root.crt"
key = "root"

[[ca.authority]]
name = "issuing"
certificate = "ca/issuing.crt"
key = "issuing"
parent = "root"
# Delegated OCSP responder (id-kp-OCSPSigning + id-pkix-ocsp-nocheck).
ocsp_certificate = "ca/issuing-ocsp.crt"
ocsp_key = "issuing-ocsp"
# SCEP registration authority (RSA; digitalSignature + keyEncipherment).
ra_certificate = "ca/issuing-ra.crt"
ra_key = "issuing-ra"

# Built-in profiles: tls-server, tls-client, device, email, ra, ocsp-signing, sub-ca
# (`privca profiles` lists them). A profile here with the same name replaces the built-in.
# Example: servers under corp.example only, 90 days, ECDSA keys only.
#
# [profiles.corp-server]
# validity_days = 90
# extended_key_usage = ["serverAuth"]
# key_algorithms = ["ecdsa-p256", "ecdsa-p384"]
# subject = {{ from_request = ["CN"], fixed = {{ O = "Example Corp" }} }}
# san = {{ required = true, dns = [".corp.example"], cn_as_dns = true }}
#
# SCEP endpoints (RFC 8894), each served at /scep/<name> (and .../pkiclient.exe). They
# decrypt with the issuing CA's RA above unless ra_certificate/ra_key are given.
# Example: devices with a static password kept in a file (several accounts may each pick
# a profile), and an endpoint for one-time challenges made by `privca scep challenge`.
#
# [scep.endpoints.devices]
# profile = "device"
# default = true            # also at /cgi-bin/pkiclient.exe and /scep
# allow_des = false         # single-DES envelopes (old Cisco, micromdm scepclient)
# require_approval = false
# challenge = {{ method = "static", accounts = [{{ name = "mdm", secret = {{ file = "scep-mdm.secret" }} }}] }}
#
# [scep.endpoints.enroll-once]
# profile = "device"
# challenge = {{ method = "one-time", default_ttl_seconds = 3600 }}
#
# Microsoft Intune validates each request's challenge and, every five minutes, asks for
# the certificates of wiped or retired devices to be revoked (see docs/intune.md), and an
# external decision service (webhook) that gets every enrollment as JSON.
#
# [scep.endpoints.intune]
# profile = "device"
# challenge = {{ method = "intune", tenant = "contoso.onmicrosoft.com", client_id = "11111111-2222-3333-4444-555555555555", client_secret = {{ file = "intune-client.secret" }}, revocation = {{ interval_seconds = 300 }} }}
#
# [scep.endpoints.nac]
# profile = "device"
# challenge = {{ method = "webhook", url = "https://nac.example/privca/decide", bearer_token = {{ file = "nac-hook.token" }}, timeout_ms = 5000 }}

# EST (RFC 7030) endpoints, served on the HTTPS listener ([server.tls]) at
# /.well-known/est/<label>/ and, for `default_endpoint`, /.well-known/est/.
# auth: client-cert, basic, both or either. Password hashes come from
# `privca est hash-password` (never plain passwords). simplereenroll always needs the
# current privca certificate as TLS client certificate. See docs/est.md.
#
# [est]
# default_endpoint = "devices"
# [est.endpoints.devices]
# profile = "device"
# auth = "either"
# accounts = [{{ username = "provisioner", password_hash = "$pbkdf2-sha256$i=600000$c2FsdHNhbHRzYWx0$PWKc7tv9UlQAHvfXVLV8vqFz0jkuqP8RHhuZEUCfCXI" }}]
# trust_privca = true
# client_ca_files = ["ca/manufacturer.pem"]
# require_approval = false
# retry_after_seconds = 60
# server_keygen = true
# channel_binding = "optional"
# ra_eku = false            # true: client certificates with id-kp-cmcRA are EST proxies (RAs)
# ra_certificates = []      # or these certificates (PEM files); see docs/est.md
# [est.password_limits]
# address_failures = 10     # wrong passwords from one address (IPv6: /64) ...
# account_failures = 30     # ... or for one account, within the window: then 429
# window_seconds = 300
# max_entries = 10000
# [est.password_cache]
# max_entries = 1000        # successful password checks remembered (0: off) ...
# ttl_seconds = 300         # ... for this long; wrong passwords always run the full hash

# ACME (RFC 8555) endpoints, served on the HTTPS listener ([server.tls]) at
# /acme/<name>/directory. Accounts need an External Account Binding key from
# `privca acme eab create --endpoint <name>` unless eab_required = false; orders are
# checked against the profile's SAN rules before any challenge; http-01 validates on
# port 80. See docs/acme.md.
#
# [acme]
# external_url = "https://ca.corp.example:8443"   # default: https:// + the TLS listen address
# [acme.endpoints.servers]
# profile = "tls-server"
# profiles = []             # further profiles an order may name (directory meta.profiles)
# eab_required = true
# order_lifetime_seconds = 86400
# validation_timeout_seconds = 10
# http01_port = 80          # another port is a test/lab setting
# tls_alpn01_port = 443     # another port is a test/lab setting
# dns_resolver = "127.0.0.1:5353"   # dns-01: default the first nameserver of /etc/resolv.conf
# resolve = {{}}              # test/lab: static names for validation, {{ "host.test" = "127.0.0.1" }}
"#
    )
}
