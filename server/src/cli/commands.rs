//! What each command does: the offline ceremonies (init, CA creation, key import),
//! serving, configuration checks, and the dispatch of online commands to [`super::online`].

use std::path::Path;

use serde::Serialize;

use super::args::*;
use super::online;
use crate::Error;
use crate::config::Config;
use crate::init::{AddCaParams, InitParams};

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

pub(super) fn print_json<T: Serialize>(v: &T) -> Result<(), Error> {
    let s = serde_json::to_string_pretty(v).map_err(|e| Error::io("JSON", e))?;
    outln!("{s}");
    Ok(())
}

pub(super) fn write_out(path: &Path, text: &str, mode: u32) -> Result<(), Error> {
    let _ = std::fs::remove_file(path);
    crate::init::write_new(path, text.as_bytes(), mode)
}

/// Runs the command line; returns the process exit code.
pub fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Init(a) => {
            let params = init_params(&a)?;
            let out = crate::init::init(&params)?;
            outln!("created {}", out.config_path.display());
            outln!("root CA:    {}", a.data_dir.join("ca/root.crt").display());
            outln!(
                "issuing CA: {}",
                a.data_dir.join("ca/issuing.crt").display()
            );
            outln!(
                "listener:   http://{} (base URL {})",
                a.listen,
                params.base_url
            );
            if let Some(l) = &a.tls_listen {
                outln!(
                    "HTTPS:      {l} (certificate {}, {} days; add [est.endpoints.<label>] for EST, see docs/est.md)",
                    a.data_dir.join("ca/tls-server.crt").display(),
                    a.tls_days
                );
            }
            outln!(
                "URLs the certificates carry (relying parties fetch them; they cannot be changed without re-issuing):"
            );
            for (which, what, url) in &out.urls {
                outln!("  {which}: {what} {url}");
            }
            outln!(
                "start it with: privca serve --config {}",
                out.config_path.display()
            );
            Ok(())
        }
        Command::Quickstart(q) => {
            let cfg_path = q.data_dir.join("privca.toml");
            if cfg_path.exists() {
                outln!(
                    "reusing the CA in {} (a new one-time SCEP challenge is made on each run)",
                    q.data_dir.display()
                );
            } else {
                let args = InitArgs::parse_defaults(&q);
                crate::quickstart::create(&init_params(&args)?)?;
                outln!(
                    "initialised a new CA in {} with a SCEP endpoint (one-time challenges) and an EST endpoint (HTTP Basic)",
                    q.data_dir.display()
                );
            }
            // Absolute paths in the printed commands: they run from any directory.
            let cfg_path = std::fs::canonicalize(&cfg_path)
                .map_err(|e| Error::io(format!("resolving {}", cfg_path.display()), e))?;
            let cfg = Config::load(&cfg_path)?;
            let enrollment = crate::quickstart::prepare(&cfg, &cfg_path)?;
            drop(cfg);
            let banner = move |cfg: &Config, plain, tls, login: &str| {
                crate::quickstart::banner(cfg, &enrollment, plain, tls, login)
            };
            crate::serve::serve_blocking(&cfg_path, Some(&banner), None)
        }
        Command::Serve { node_id } => crate::serve::serve_blocking(&cli.config, None, node_id),
        Command::Store {
            action: StoreAction::Migrate,
        } => {
            let cfg = Config::load(&cli.config)?;
            let applied = cfg.migrate_store()?;
            if applied.is_empty() {
                println!(
                    "the database schema is current (version {})",
                    store::latest_version()
                );
            } else {
                let list: Vec<String> = applied.iter().map(i32::to_string).collect();
                println!(
                    "applied migrations {}; the database schema is at version {}",
                    list.join(", "),
                    store::latest_version()
                );
            }
            Ok(())
        }
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
                    outln!(
                        "{}: valid ({cas} authorities, {profiles} profiles, {} SCEP endpoints, {} EST endpoints)",
                        cli.config.display(),
                        scep.by_name.len(),
                        est.labels().len()
                    )
                }
                Err(e) if e.is_store_locked() => outln!(
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
            outln!(
                "created authority {name} ({} bytes); restart the server to use it",
                der.len()
            );
            Ok(())
        }
        Command::Bench { which } => crate::bench::run(which),
        Command::Est {
            action: EstAction::HashPassword { file, iterations },
        } => {
            outln!("{}", hash_password(file.as_deref(), iterations)?);
            Ok(())
        }
        Command::Keys { action } => keys_command(&Config::load(&cli.config)?, action),
        other => online::run(other, &Config::load(&cli.config)?),
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
            outln!("backend: {}", cfg.keys.backend);
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
                outln!("{line}");
            }
            Ok(())
        }
        KeysAction::Import { label, key } => {
            let pkcs8 = crate::init::read_key_file(&key)?;
            let k = cfg.open_keys()?.import_pkcs8(&label, pkcs8.expose())?;
            outln!(
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
