//! The online commands, each written once over [`Admin`]: [`connect`] picks the
//! transport (the database here when it is free, else the running server's admin API).

use std::path::PathBuf;

use super::args::*;
use super::commands::{print_json, write_out};
use crate::Error;
use crate::admin::{
    Admin, IssueInput, IssueOutput, LIST_MAX_LIMIT, ListQuery, LocalAdmin, RejectInput,
    RemoteAdmin, RequestsQuery, RevokeCertInput, RevokeInput, RevokeKeyInput,
};
use crate::config::Config;
use crate::scep_wiring::ChallengeInput;

/// Where online commands are carried out.
pub(super) enum Connection {
    /// The store was free: run here.
    Local(Box<ca_core::Authority>),
    /// A server holds the store: use its admin API.
    Remote(RemoteAdmin),
}

/// Opens the database, or, when a running server holds it, connects to that server's
/// admin API on its configured listener with the configured admin token. Keys are
/// opened only when the command uses them ([`Config::load_authority_deferred`]).
pub(super) fn connect(cfg: &Config) -> Result<Connection, Error> {
    match cfg.load_authority_deferred() {
        Ok(a) => Ok(Connection::Local(Box::new(a))),
        Err(e) if e.is_store_locked() => {
            let token = cfg.secret(&cfg.server.admin_token).load()?;
            Ok(Connection::Remote(RemoteAdmin::new(
                cfg.server.listen,
                token,
            )?))
        }
        Err(e) => Err(e),
    }
}

/// Runs an online command through the transport [`connect`] chooses.
pub(super) fn run(cmd: Command, cfg: &Config) -> Result<(), Error> {
    let actor = cli_actor();
    let local_auth;
    let local;
    let remote;
    let admin: &dyn Admin = match connect(cfg)? {
        Connection::Local(auth) => {
            local_auth = auth;
            local = LocalAdmin::new(&local_auth, &cfg.scep, &actor).with_acme(&cfg.acme);
            &local
        }
        Connection::Remote(r) => {
            remote = r;
            &remote
        }
    };
    match cmd {
        Command::Issue(a) => {
            let input = issue_input(&a)?;
            let out = admin.issue(&input)?;
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
                    outln!("issued serial {} -> {}", out.serial, p(".crt").display());
                }
                None => {
                    if out.private_key_pem.is_some() {
                        return Err(Error::Usage("--generate-key needs --out (the key is written to a 0600 file, never to the terminal)".into()));
                    }
                    eprintln!("issued serial {}", out.serial);
                    out!("{}", out.certificate_pem);
                }
            }
            Ok(())
        }
        Command::Revoke(a) => {
            let revoked = |v: &crate::admin::CertView| {
                outln!(
                    "revoked {} ({})",
                    v.serial,
                    v.reason.clone().unwrap_or_default()
                );
            };
            // --cert takes PEM or DER: DER is sent as PEM.
            let read = |path: &PathBuf, label: &str| -> Result<String, Error> {
                let bytes = std::fs::read(path)
                    .map_err(|e| Error::Usage(format!("{}: {e}", path.display())))?;
                Ok(match String::from_utf8(bytes) {
                    Ok(text) => text,
                    Err(e) => crate::admin::pem(label, e.as_bytes()),
                })
            };
            if let Some(path) = &a.cert {
                let input = RevokeCertInput {
                    certificate_pem: read(path, "CERTIFICATE")?,
                    reason: Some(a.reason.clone()),
                    invalidity_date: a.invalidity_date.clone(),
                };
                revoked(&admin.revoke_by_certificate(&input)?);
            } else if let Some(path) = &a.key {
                let input = RevokeKeyInput {
                    key_pem: read(path, "PUBLIC KEY")?,
                    reason: Some(a.reason.clone()),
                    invalidity_date: a.invalidity_date.clone(),
                };
                for v in &admin.revoke_by_key(&input)?.certificates {
                    revoked(v);
                }
            } else if let Some(serial) = &a.serial {
                let input = RevokeInput {
                    reason: Some(a.reason.clone()),
                    invalidity_date: a.invalidity_date.clone(),
                };
                revoked(&admin.revoke(serial, &input)?);
            }
            Ok(())
        }
        Command::Release { serial } => {
            let v = admin.release(&serial)?;
            outln!("released {} ({})", v.serial, v.status);
            Ok(())
        }
        Command::List(a) => {
            // Pages through the list (bounded memory on both sides) and prints each page
            // as it arrives; --limit caps the total.
            let mut q = ListQuery {
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
                outln!("[");
            } else {
                outln!(
                    "{:<34} {:<8} {:<12} {:<20} SUBJECT",
                    "SERIAL",
                    "STATUS",
                    "PROFILE",
                    "NOT AFTER"
                );
            }
            while remaining > 0 {
                q.limit = Some(remaining.min(LIST_MAX_LIMIT));
                let page = admin.list(&q)?;
                for c in &page.certificates {
                    if a.json {
                        let s =
                            serde_json::to_string_pretty(c).map_err(|e| Error::io("JSON", e))?;
                        let sep = if shown == 0 { "" } else { ",\n" };
                        out!("{sep}{s}");
                    } else {
                        outln!(
                            "{:<34} {:<8} {:<12} {:<20} {}",
                            c.serial,
                            c.status,
                            c.profile,
                            c.not_after,
                            c.subject
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
                outln!("\n]");
            }
            eprintln!("{shown} certificate(s)");
            Ok(())
        }
        Command::Show { serial, json } => {
            let v = admin.show(&serial)?;
            if json {
                return print_json(&v);
            }
            outln!("serial:     {}", v.serial);
            outln!("status:     {}", v.status);
            outln!("subject:    {}", v.subject);
            outln!("SANs:       {}", v.sans.join(", "));
            outln!("issuer:     {}", v.issuer);
            outln!("profile:    {}", v.profile);
            outln!("requester:  {}", v.requester);
            outln!("not before: {}", v.not_before);
            outln!("not after:  {}", v.not_after);
            if let Some(r) = &v.revoked_at {
                outln!("revoked:    {r} ({})", v.reason.clone().unwrap_or_default());
                if let Some(d) = &v.invalidity_date {
                    outln!("invalid since: {d}");
                }
            }
            out!("{}", v.pem.unwrap_or_default());
            Ok(())
        }
        Command::Crl { ca } => {
            for c in admin.crl(ca.as_deref())? {
                outln!(
                    "{}: CRL number {} ({} bytes), next update {} — {}",
                    c.ca,
                    c.number,
                    c.bytes,
                    c.next_update,
                    c.url
                );
            }
            Ok(())
        }
        Command::Requests { action } => requests(action, admin),
        Command::Token { action } => match action {
            TokenAction::Create {
                name,
                role,
                profiles,
                scep_endpoints,
                expires,
            } => {
                let out = admin.token_create(&crate::admin::TokenCreateInput {
                    name,
                    role,
                    profiles,
                    scep_endpoints,
                    expires,
                })?;
                outln!("{}", out.token);
                eprintln!(
                    "API token {} ({}, role {}); shown only now: use it as `Authorization: Bearer <token>`",
                    out.view.id, out.view.name, out.view.role
                );
                Ok(())
            }
            TokenAction::List { json } => {
                let v = admin.token_list()?;
                if json {
                    return print_json(&v);
                }
                outln!(
                    "{:<13} {:<20} {:<14} {:<8} {:<21} {:<21} SCOPE",
                    "ID",
                    "NAME",
                    "ROLE",
                    "STATE",
                    "EXPIRES",
                    "LAST USE"
                );
                for t in v {
                    let mut scope: Vec<String> =
                        t.profiles.iter().map(|p| format!("profile:{p}")).collect();
                    scope.extend(t.scep_endpoints.iter().map(|e| format!("scep:{e}")));
                    outln!(
                        "{:<13} {:<20} {:<14} {:<8} {:<21} {:<21} {}",
                        t.id,
                        t.name,
                        t.role,
                        t.state,
                        t.expires_at.as_deref().unwrap_or("-"),
                        t.last_used_at.as_deref().unwrap_or("-"),
                        scope.join(" ")
                    );
                }
                Ok(())
            }
            TokenAction::Revoke { id } => {
                let t = admin.token_revoke(&id)?;
                outln!("revoked API token {} ({})", t.id, t.name);
                Ok(())
            }
        },
        Command::Notify {
            action: NotifyAction::Log { limit, json },
        } => {
            let log = admin.notify_log(limit.clamp(1, 10_000))?;
            if json {
                return print_json(&log);
            }
            for d in log {
                outln!(
                    "{} {:<12} {:<40} #{} {:<9} {}",
                    d.time,
                    d.webhook,
                    d.event,
                    d.attempt,
                    d.outcome,
                    d.detail
                );
            }
            Ok(())
        }
        Command::Console {
            action: ConsoleAction::LoginLink,
        } => {
            let out = admin.console_login_link()?;
            if let Some(tls) = &cfg.server.tls {
                outln!("https://{}{}", tls.listen, out.path);
            }
            outln!("http://{}{}", cfg.server.listen, out.path);
            eprintln!(
                "one-time console login link, valid for {} s; open it in a browser on this machine (the console answers loopback clients only by default)",
                out.expires_in
            );
            Ok(())
        }
        Command::Scep {
            action: ScepAction::Challenge { endpoint, ttl },
        } => {
            let out = admin.scep_challenge(&ChallengeInput { endpoint, ttl })?;
            outln!("{}", out.challenge);
            eprintln!(
                "one-time challenge for SCEP endpoint {} (expires {}); it is shown only now",
                out.endpoint, out.expires_at
            );
            Ok(())
        }
        Command::Acme {
            action: AcmeAction::Eab { action },
        } => match action {
            EabAction::Create { endpoint } => {
                let out =
                    admin.acme_eab_create(&crate::acme_wiring::EabCreateInput { endpoint })?;
                println!("kid: {}", out.kid);
                println!("hmac_key: {}", out.hmac_key);
                eprintln!(
                    "EAB key for ACME endpoint {}; the HMAC key is shown only now. certbot: --eab-kid '{}' --eab-hmac-key '<hmac_key>'; lego: --eab --kid '{}' --hmac '<hmac_key>'",
                    out.endpoint, out.kid, out.kid
                );
                Ok(())
            }
            EabAction::List { json } => {
                let v = admin.acme_eab_list()?;
                if json {
                    return print_json(&v);
                }
                println!("{:<18} {:<14} {:<22} ACCOUNT", "KID", "ENDPOINT", "CREATED");
                for k in v {
                    println!(
                        "{:<18} {:<14} {:<22} {}",
                        k.kid,
                        k.endpoint,
                        k.created_at,
                        k.account.as_deref().unwrap_or("-")
                    );
                }
                Ok(())
            }
        },
        Command::Profiles { json } => {
            let v = admin.profiles()?;
            if json {
                return print_json(&v);
            }
            outln!(
                "{:<16} {:<10} {:>6}  {:<4} EKU",
                "PROFILE",
                "ISSUER",
                "DAYS",
                "CA"
            );
            for p in v {
                outln!(
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
            let v = admin.audit_verify()?;
            match v.first_bad {
                None => {
                    outln!("audit log intact: {} entries verified", v.entries);
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

fn requests(action: RequestsAction, admin: &dyn Admin) -> Result<(), Error> {
    match action {
        RequestsAction::List { state, json } => {
            let v = admin.requests(&RequestsQuery { state })?;
            if json {
                return print_json(&v);
            }
            outln!(
                "{:>6} {:<9} {:<16} {:<12} {:<20} SUBJECT / SANS",
                "ID",
                "STATE",
                "ENDPOINT",
                "PROFILE",
                "RECEIVED"
            );
            for r in &v {
                outln!(
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
            let v = admin.approve(id)?;
            outln!("approved request {id}: issued serial {}", v.serial);
            Ok(())
        }
        RequestsAction::Reject { id, reason } => {
            let v = admin.reject(id, &RejectInput { reason })?;
            outln!("rejected request {}", v.id);
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
    out: &IssueOutput,
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

fn cli_actor() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

fn issue_input(a: &IssueArgs) -> Result<IssueInput, Error> {
    let mut sans: Vec<String> = Vec::new();
    sans.extend(a.dns.iter().map(|d| format!("dns:{d}")));
    sans.extend(a.ip.iter().map(|d| format!("ip:{d}")));
    sans.extend(a.email.iter().map(|d| format!("email:{d}")));
    sans.extend(a.uri.iter().map(|d| format!("uri:{d}")));
    sans.extend(a.upn.iter().map(|d| format!("upn:{d}")));
    sans.extend(a.permanent_id.iter().map(|d| format!("permanentId:{d}")));
    sans.extend(
        a.hardware_module
            .iter()
            .map(|d| format!("hardwareModuleName:{d}")),
    );
    let mut input = IssueInput {
        profile: a.profile.clone(),
        sans,
        validity_days: a.days,
        ..IssueInput::default()
    };
    match (&a.csr, a.generate_key) {
        (Some(path), false) => {
            let bytes = std::fs::read(path)
                .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            let pem_text = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
                String::from_utf8(bytes).map_err(|_| Error::Usage("CSR file is not text".into()))?
            } else {
                crate::admin::pem("CERTIFICATE REQUEST", &bytes)
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
