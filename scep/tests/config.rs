//! The webhook and Intune settings as they appear in privca.toml: inside an endpoint's
//! `challenge` table, tagged by `method` (the shape of the SCEP endpoint configuration).

use scep::intune::{Intune, IntuneConfig};
use scep::webhook::{Webhook, WebhookConfig};
use serde::Deserialize;

/// The same tagging as the endpoint configuration's challenge enum.
#[derive(Debug, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case", deny_unknown_fields)]
enum Challenge {
    Webhook(WebhookConfig),
    Intune(Box<IntuneConfig>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Endpoint {
    profile: String,
    challenge: Challenge,
}

const EXAMPLE: &str = r#"
[intune]
profile = "intune-device"
[intune.challenge]
method = "intune"
tenant = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret = { file = "SECRET_FILE" }

[hook]
profile = "device"
challenge = { method = "webhook", url = "https://nac.example.com/privca/decide", bearer_token = { env = "PRIVCA_TEST_HOOK_TOKEN" }, timeout_ms = 5000 }
"#;

#[test]
fn example_parses_and_loads_its_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("intune-client-secret");
    std::fs::write(&secret, "s3cret\n").expect("write");
    // Secret files must be private to their owner (issue 9 item 7).
    std::fs::set_permissions(
        &secret,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
    )
    .expect("chmod");
    let text = EXAMPLE.replace("SECRET_FILE", &secret.display().to_string());
    let endpoints: std::collections::BTreeMap<String, Endpoint> =
        toml::from_str(&text).expect("parses");
    assert_eq!(endpoints["intune"].profile, "intune-device");
    let Challenge::Intune(i) = &endpoints["intune"].challenge else {
        panic!("intune")
    };
    assert_eq!(i.login_url, "https://login.microsoftonline.com");
    assert_eq!(i.api_version, "2018-02-20");
    assert_eq!(i.validate_retries, 1);
    assert_eq!(i.load_client_secret().expect("secret").expose(), b"s3cret");
    Intune::load(i).expect("builds");

    let Challenge::Webhook(w) = &endpoints["hook"].challenge else {
        panic!("webhook")
    };
    assert_eq!(w.timeout_ms, 5000);
    // The token's variable is unset: loading fails with a clear message.
    let e = Webhook::load(w).err().expect("missing token");
    assert!(e.to_string().contains("PRIVCA_TEST_HOOK_TOKEN"), "{e}");
}

#[test]
fn unknown_fields_and_inline_secrets_are_refused() {
    let typo = EXAMPLE.replace("tenant =", "tennant =");
    assert!(toml::from_str::<std::collections::BTreeMap<String, Endpoint>>(&typo).is_err());
    let inline = EXAMPLE.replace("{ file = \"SECRET_FILE\" }", "\"s3cret\"");
    assert!(toml::from_str::<std::collections::BTreeMap<String, Endpoint>>(&inline).is_err());
    let extra = EXAMPLE.replace("timeout_ms = 5000", "timeout_ms = 5000, retries = 3");
    assert!(toml::from_str::<std::collections::BTreeMap<String, Endpoint>>(&extra).is_err());
}

/// The TOML blocks of docs/intune.md parse: the profile with ca-core's rules, the
/// endpoint's challenge with the Intune settings (so the guide cannot rot).
#[test]
fn the_intune_guide_examples_parse() {
    let guide = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/intune.md"))
        .expect("docs/intune.md");
    let blocks: Vec<&str> = guide
        .split("```toml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .collect();
    assert_eq!(blocks.len(), 2, "a profile block and an endpoint block");

    #[derive(Deserialize)]
    struct Profiles {
        profiles: std::collections::BTreeMap<String, ca_core::config::ProfileConfig>,
    }
    let p: Profiles = toml::from_str(blocks[0]).expect("profile block parses");
    let cfg = p.profiles["intune-device"].clone();
    let profile =
        ca_core::profile::Profile::from_config("intune-device", cfg, "issuing").expect("valid");
    drop(profile);

    #[derive(Deserialize)]
    struct Scep {
        scep: ScepSection,
    }
    #[derive(Deserialize)]
    struct ScepSection {
        endpoints: std::collections::BTreeMap<String, Endpoint>,
    }
    let s: Scep = toml::from_str(blocks[1]).expect("endpoint block parses");
    let e = &s.scep.endpoints["intune"];
    assert_eq!(e.profile, "intune-device");
    let Challenge::Intune(i) = &e.challenge else {
        panic!("intune")
    };
    let secret = hsm::Secret::new(b"x".to_vec());
    Intune::new(i, secret).expect("the documented settings build a method");
}
