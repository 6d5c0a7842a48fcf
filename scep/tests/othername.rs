//! otherName SANs over SCEP in-process (issue 15 item 3): an Intune-user-style request
//! (CN and UPN SAN the user principal name) enrolls, renews with the same names and is
//! refused a renewal that changes the UPN; a UPN outside the profile's suffixes, an
//! otherName of an unknown type and a UPN that is not a UTF8String are refused with
//! badRequest and a failInfoText that says why. The real-tool checks are in
//! tests/tests/e2e_othername.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;

use ca_core::ceremony::{RootSpec, create_root};
use ca_core::config::ProfileConfig;
use ca_core::profile::San;
use ca_core::{Authority, CaEntity, FixedClock, IssueRequest, KeyWithCert, Settings};
use der::asn1::{Any, Ia5String};
use der::{Decode, Encode};
use hsm::{KeyAlgorithm, PrivateKey, Secret};
use scep::challenge::FailInfo;
use scep::client::{self, Identity};
use scep::codec::{ContentCipher, MessageType, PkiStatus};
use scep::config::EndpointConfig;
use scep::methods::StaticChallenge;
use scep::service::Endpoint;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::{GeneralName, OtherName};

const NOW: i64 = 1_790_000_000;

struct Fx {
    auth: Arc<Authority>,
    ra: KeyWithCert,
}

fn fixture() -> Fx {
    let store: Arc<dyn store::Store> = Arc::new(store::RedbStore::in_memory().unwrap());
    let clock = Arc::new(FixedClock::new(NOW));
    let root_key: Arc<dyn PrivateKey> =
        Arc::new(hsm::soft::SoftKey::generate_ephemeral("root", KeyAlgorithm::EcdsaP256).unwrap());
    let spec = RootSpec {
        name: "root".into(),
        subject: "CN=SCEP Test Root,O=Test".parse().unwrap(),
        validity_days: 3650,
        scheme: None,
    };
    let root_der = create_root(&store, &root_key, &spec, NOW, "test").unwrap();
    let settings = Settings {
        base_url: "http://127.0.0.1:9".into(),
        default_issuer: "root".into(),
        crl_validity: 7 * 86_400,
        crl_refresh: 3600,
        ocsp_validity: 86_400,
    };
    let profiles: BTreeMap<String, ProfileConfig> = toml::from_str(
        r#"
[intune-user]
validity_days = 30
extended_key_usage = ["clientAuth"]
san = { upn_suffixes = ["@corp.example"], dns = [".corp.example"], require = ["upn"] }
"#,
    )
    .unwrap();
    let a0 = Authority::from_parts(
        vec![CaEntity::new("root", root_der.clone(), root_key.clone(), None, None).unwrap()],
        &profiles,
        settings.clone(),
        store.clone(),
        clock.clone(),
    )
    .unwrap();
    let ra_key: Arc<dyn PrivateKey> =
        Arc::new(hsm::soft::SoftKey::generate_ephemeral("ra", KeyAlgorithm::Rsa2048).unwrap());
    let ra_der = a0
        .issue(&IssueRequest {
            profile: "ra".into(),
            subject: "CN=SCEP Test RA,O=Test".parse().unwrap(),
            sans: vec![],
            spki_der: ra_key.public_key_der().to_vec(),
            key_algorithm: KeyAlgorithm::Rsa2048,
            extensions: vec![],
            requester: "test".into(),
            validity_days: None,
            issuer: None,
        })
        .unwrap()
        .record
        .der;
    drop(a0);
    let ra = KeyWithCert {
        cert_der: ra_der,
        key: ra_key,
    };
    let mut root = CaEntity::new("root", root_der, root_key, None, None).unwrap();
    root.ra = Some(ra.clone().into());
    let auth =
        Arc::new(Authority::from_parts(vec![root], &profiles, settings, store, clock).unwrap());
    Fx { auth, ra }
}

fn endpoint(fx: &Fx) -> Arc<Endpoint> {
    let cfg: EndpointConfig =
        toml::from_str("profile = \"intune-user\"\nchallenge = { method = \"none\" }").unwrap();
    let method = StaticChallenge::new(
        "users",
        vec![("mdm".into(), Secret::new(b"s3cret".to_vec()), None)],
    );
    Arc::new(Endpoint::new("users", cfg, fx.auth.clone(), None, Arc::new(method)).unwrap())
}

/// The DER of an `Extensions` SEQUENCE holding one subjectAltName.
fn san_extensions(names: Vec<GeneralName>) -> Vec<u8> {
    let ext = x509_cert::ext::Extension {
        extn_id: ca_core::asn1::oid::SUBJECT_ALT_NAME,
        critical: false,
        extn_value: der::asn1::OctetString::new(SubjectAltName(names).to_der().unwrap()).unwrap(),
    };
    vec![ext].to_der().unwrap()
}

fn upn(u: &str) -> GeneralName {
    San::Upn(u.into()).to_general_name().unwrap()
}

struct Client {
    key: Arc<dyn PrivateKey>,
    cert: Vec<u8>,
}

fn new_client(cn: &str) -> Client {
    let key: Arc<dyn PrivateKey> =
        Arc::new(hsm::soft::SoftKey::generate_ephemeral("client", KeyAlgorithm::Rsa2048).unwrap());
    let cert = client::self_signed(key.as_ref(), &format!("CN={cn}")).unwrap();
    Client { key, cert }
}

#[allow(clippy::too_many_arguments)] // a test helper: one argument per request field
async fn send(
    ep: &Arc<Endpoint>,
    fx: &Fx,
    mt: MessageType,
    tid: &str,
    csr_key: &dyn PrivateKey,
    id: Identity<'_>,
    cn: &str,
    names: Vec<GeneralName>,
) -> client::Reply {
    let csr = client::csr_with_extensions(
        csr_key,
        &format!("CN={cn}"),
        (mt == MessageType::PkcsReq).then_some("s3cret"),
        Some(&san_extensions(names)),
    )
    .unwrap();
    let req =
        client::build_request(mt, tid, &csr, id, &fx.ra.cert_der, ContentCipher::Aes128).unwrap();
    client::read_reply(&ep.pki_operation(req.der).await.unwrap(), id).unwrap()
}

fn refused_with(reply: &client::Reply, reason: &str) {
    match &reply.status {
        PkiStatus::Failure(FailInfo::BadRequest, Some(text)) => {
            assert!(text.contains(reason), "{reason:?} not in {text:?}")
        }
        other => panic!("expected badRequest with {reason:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn an_intune_user_certificate_with_a_upn_enrolls_and_renews() {
    let fx = fixture();
    let ep = endpoint(&fx);
    let user = "jane@corp.example";
    let c = new_client(user);
    let id = Identity {
        key: c.key.as_ref(),
        cert_der: &c.cert,
    };
    let reply = send(
        &ep,
        &fx,
        MessageType::PkcsReq,
        "t1",
        c.key.as_ref(),
        id,
        user,
        vec![upn(user)],
    )
    .await;
    assert_eq!(reply.status, PkiStatus::Success, "{:?}", reply.status);
    let issued = reply.certs[0].clone();
    let cert = x509_cert::Certificate::from_der(&issued).unwrap();
    let (_, san) = cert
        .tbs_certificate()
        .get_extension::<SubjectAltName>()
        .unwrap()
        .unwrap();
    assert_eq!(san.0, vec![upn(user)]);

    // Renewal (RFC 8894 §3.3.1.2) signed by the issued certificate, with a new key and
    // the same UPN: issued. With another UPN: refused.
    let new_key: Arc<dyn PrivateKey> =
        Arc::new(hsm::soft::SoftKey::generate_ephemeral("n", KeyAlgorithm::Rsa2048).unwrap());
    let renew_id = Identity {
        key: c.key.as_ref(),
        cert_der: &issued,
    };
    let reply = send(
        &ep,
        &fx,
        MessageType::RenewalReq,
        "r1",
        new_key.as_ref(),
        renew_id,
        user,
        vec![upn(user)],
    )
    .await;
    assert_eq!(reply.status, PkiStatus::Success, "{:?}", reply.status);
    assert_ne!(reply.certs[0], issued);
    let reply = send(
        &ep,
        &fx,
        MessageType::RenewalReq,
        "r2",
        new_key.as_ref(),
        renew_id,
        user,
        vec![upn(user), upn("admin@corp.example")],
    )
    .await;
    assert!(
        matches!(reply.status, PkiStatus::Failure(FailInfo::BadRequest, _)),
        "{:?}",
        reply.status
    );
}

#[tokio::test]
async fn other_names_the_profile_does_not_allow_are_refused() {
    let fx = fixture();
    let ep = endpoint(&fx);
    let wrong_type = GeneralName::OtherName(OtherName {
        type_id: ca_core::asn1::oid::MS_UPN,
        value: Any::new(der::Tag::Ia5String, b"jane@corp.example".to_vec()).unwrap(),
    });
    let unknown = GeneralName::OtherName(OtherName {
        type_id: "1.2.3.4.5".parse().unwrap(),
        value: Any::new(der::Tag::Utf8String, b"x".to_vec()).unwrap(),
    });
    let control = GeneralName::OtherName(OtherName {
        type_id: ca_core::asn1::oid::MS_UPN,
        value: Any::new(der::Tag::Utf8String, b"ja\x1bne@corp.example".to_vec()).unwrap(),
    });
    let bad_utf8 = GeneralName::OtherName(OtherName {
        type_id: ca_core::asn1::oid::MS_UPN,
        value: Any::new(der::Tag::Utf8String, b"ja\xffne@corp.example".to_vec()).unwrap(),
    });
    let long = format!("{}@corp.example", "a".repeat(1100));
    for (i, (cn, names, reason)) in [
        (
            "jane@evil.example",
            vec![upn("jane@evil.example")],
            "UPN jane@evil.example is not allowed",
        ),
        (
            "jane",
            vec![GeneralName::DnsName(
                Ia5String::new("a.corp.example").unwrap(),
            )],
            "a upn subject alternative name is required",
        ),
        ("jane", vec![unknown], "of type 1.2.3.4.5"),
        (
            "jane",
            vec![wrong_type],
            "UPN (a UTF8String) otherName value is malformed",
        ),
        ("jane", vec![control], "control character"),
        (
            "jane",
            vec![bad_utf8],
            "UPN (a UTF8String) otherName value is malformed",
        ),
        ("jane", vec![upn(&long)], "at most 1024"),
        (
            "other@corp.example",
            vec![upn("jane@corp.example")],
            "request it as a UPN SAN too",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let c = new_client("x");
        let id = Identity {
            key: c.key.as_ref(),
            cert_der: &c.cert,
        };
        let reply = send(
            &ep,
            &fx,
            MessageType::PkcsReq,
            &format!("bad{i}"),
            c.key.as_ref(),
            id,
            cn,
            names,
        )
        .await;
        refused_with(&reply, reason);
    }
}

/// The UPN profile of docs/intune.md ("User certificates with a UPN") is a valid profile.
/// (Its block is fenced without `toml` so that the guide keeps the two blocks
/// tests/config.rs reads.)
#[test]
fn the_intune_guide_upn_profile_is_valid() {
    let guide =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/intune.md")).unwrap();
    let section = guide
        .split("### User certificates with a UPN")
        .nth(1)
        .unwrap();
    let block = section.split("```\n").nth(1).unwrap();
    let p: BTreeMap<String, BTreeMap<String, ProfileConfig>> = toml::from_str(block).unwrap();
    let cfg = p["profiles"]["intune-user"].clone();
    assert_eq!(cfg.san.upn_suffixes, vec!["@contoso.com".to_string()]);
    ca_core::profile::Profile::from_config("intune-user", cfg, "issuing").unwrap();
}
