//! otherName SANs (issue 15 item 3) end to end with real tools: the Microsoft UPN
//! (1.3.6.1.4.1.311.20.2.3), permanentIdentifier (RFC 4043) and hardwareModuleName
//! (RFC 4108 §5), issued through the CLI (which goes through the admin API) from OpenSSL
//! CSRs and generated keys; `openssl x509 -text` shows them and pkilint accepts them;
//! the profile's rules refuse what they do not allow, with a reason naming the name.
//! Runs when `PRIVCA_INTEROP=1`.

use privca_tests::{TestCa, fails, interop_enabled, ok, openssl, pkilint};

const BIN: &str = env!("CARGO_BIN_EXE_privca-under-test");

/// A profile for Intune user certificates and one for devices.
const PROFILES: &str = r#"
[profiles.intune-user]
validity_days = 30
extended_key_usage = ["clientAuth"]
san = { upn_suffixes = ["@corp.example"], email_domains = ["corp.example"], require = ["upn"] }

[profiles.device-id]
validity_days = 30
extended_key_usage = ["clientAuth"]
san = { permanent_identifier_values = ["SN-*"], permanent_identifier_assigners = ["1.3.6.1.4.1.99999.1"], hardware_module_types = ["1.3.6.1.4.1.99999.2"] }
"#;

fn csr(ca: &TestCa, name: &str, subj: &str, san: &str) -> std::path::PathBuf {
    let path = ca.path(&format!("{name}.csr"));
    ok(openssl()
        .args(["req", "-new", "-nodes", "-subj", subj, "-newkey", "ec"])
        .args(["-pkeyopt", "ec_paramgen_curve:P-256", "-keyout"])
        .arg(ca.path(&format!("{name}.key")))
        .arg("-out")
        .arg(&path)
        .args(["-addext", &format!("subjectAltName={san}")]));
    path
}

/// The subjectAltName extension's value as `openssl asn1parse` dumps it: OpenSSL 3.0's
/// `x509 -text` names permanentIdentifier and hardwareModuleName but prints their values
/// as `<unsupported>`, so the values are read from its ASN.1 parser.
fn san_asn1(cert: &std::path::Path) -> String {
    let dump = ok(openssl().args(["asn1parse", "-in"]).arg(cert));
    let mut lines = dump
        .lines()
        .skip_while(|l| !l.contains("Subject Alternative Name"));
    let octets = lines
        .find(|l| l.contains("OCTET STRING"))
        .unwrap_or_else(|| panic!("no subjectAltName in {dump}"));
    let offset = octets.split(':').next().unwrap_or_default().trim();
    ok(openssl()
        .args(["asn1parse", "-strparse", offset, "-in"])
        .arg(cert))
}

fn pkilint_clean(path: &std::path::Path, what: &str) {
    let f = pkilint("lint_pkix_cert", &[], path);
    assert!(f.is_empty(), "pkilint lint_pkix_cert on {what}: {f:?}");
}

#[test]
fn other_names_issued_shown_by_openssl_linted_and_refused() {
    if !interop_enabled("other_names_issued_shown_by_openssl_linted_and_refused") {
        return;
    }
    let mut ca = TestCa::init(std::path::Path::new(BIN), &[]);
    let mut text = std::fs::read_to_string(ca.config()).expect("config");
    text.push_str(PROFILES);
    std::fs::write(ca.config(), text).expect("write config");
    ok(ca.cmd().args(["config", "check"]));
    ca.start();

    // (1) An Intune-user-style CSR: CN and UPN are the user principal name.
    let upn = "user@corp.example";
    let req = csr(
        &ca,
        "upn",
        &format!("/CN={upn}"),
        &format!("otherName:1.3.6.1.4.1.311.20.2.3;UTF8:{upn}"),
    );
    let out = ok(ca
        .cmd()
        .args(["issue", "--profile", "intune-user", "--csr"])
        .arg(&req)
        .arg("--out")
        .arg(ca.path("upn")));
    assert!(out.contains("issued serial"), "{out}");
    let cert = ca.path("upn.crt");
    let shown = ok(openssl()
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(&cert));
    assert!(
        shown.contains(&format!("othername: UPN::{upn}")),
        "openssl shows {shown}"
    );
    pkilint_clean(&cert, "the UPN certificate");
    // `privca show` records the name in the display form.
    let serial = out
        .split_whitespace()
        .skip_while(|w| *w != "serial")
        .nth(1)
        .expect("serial")
        .trim_end_matches(|c: char| !c.is_ascii_hexdigit())
        .to_string();
    let show = ok(ca.cmd().args(["show", &serial]));
    assert!(show.contains(&format!("upn:{upn}")), "{show}");

    // (2) permanentIdentifier and hardwareModuleName from the CLI with a generated key.
    let out = ok(ca
        .cmd()
        .args(["issue", "--profile", "device-id", "--generate-key"])
        .args(["--subject", "CN=device 17"])
        .args(["--permanent-id", "SN-0017;assigner=1.3.6.1.4.1.99999.1"])
        .args(["--hardware-module", "1.3.6.1.4.1.99999.2:0A0B0C"])
        .arg("--out")
        .arg(ca.path("dev")));
    assert!(out.contains("issued serial"), "{out}");
    let dev = ca.path("dev.crt");
    let shown = ok(openssl()
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(&dev));
    assert!(
        shown.contains("othername: Permanent Identifier::"),
        "{shown}"
    );
    assert!(shown.contains("othername: 1.3.6.1.5.5.7.8.4::"), "{shown}");
    let asn1 = san_asn1(&dev);
    for want in [
        ":Permanent Identifier",
        "UTF8STRING        :SN-0017",
        ":1.3.6.1.4.1.99999.1",
        ":1.3.6.1.5.5.7.8.4",
        ":1.3.6.1.4.1.99999.2",
        "[HEX DUMP]:0A0B0C",
    ] {
        assert!(asn1.contains(want), "{want:?} not in {asn1}");
    }
    pkilint_clean(&dev, "the device certificate");
    // The same from an OpenSSL CSR (ASN.1 built by OpenSSL's generator).
    let cfg = ca.path("pi.cnf");
    std::fs::write(
        &cfg,
        "[req]\ndistinguished_name=dn\n[dn]\n[ext]\n\
         subjectAltName=otherName:1.3.6.1.5.5.7.8.3;SEQUENCE:pi,otherName:1.3.6.1.5.5.7.8.4;SEQUENCE:hw\n\
         [pi]\nvalue=UTF8:SN-0042\n\
         [hw]\ntype=OID:1.3.6.1.4.1.99999.2\nserial=FORMAT:HEX,OCTETSTRING:DEADBEEF\n",
    )
    .expect("cnf");
    let dev_csr = ca.path("dev2.csr");
    ok(openssl()
        .args([
            "req",
            "-new",
            "-nodes",
            "-subj",
            "/CN=device 42",
            "-newkey",
            "ec",
        ])
        .args(["-pkeyopt", "ec_paramgen_curve:P-256", "-keyout"])
        .arg(ca.path("dev2.key"))
        .arg("-config")
        .arg(&cfg)
        .args(["-reqexts", "ext", "-out"])
        .arg(&dev_csr));
    ok(ca
        .cmd()
        .args(["issue", "--profile", "device-id", "--csr"])
        .arg(&dev_csr)
        .arg("--out")
        .arg(ca.path("dev2")));
    let asn1 = san_asn1(&ca.path("dev2.crt"));
    assert!(asn1.contains(":SN-0042"), "{asn1}");
    assert!(asn1.contains("[HEX DUMP]:DEADBEEF"), "{asn1}");
    pkilint_clean(&ca.path("dev2.crt"), "the device certificate from a CSR");

    // (3) Refusals, each with its reason; nothing refused is issued.
    for (name, profile, subj, san, reason) in [
        (
            "suffix",
            "intune-user",
            "/CN=user@evil.example",
            "otherName:1.3.6.1.4.1.311.20.2.3;UTF8:user@evil.example",
            "UPN user@evil.example is not allowed",
        ),
        (
            "forbidden",
            "tls-client",
            "/CN=someone",
            "otherName:1.3.6.1.4.1.311.20.2.3;UTF8:user@corp.example",
            "the profile issues no UPNs",
        ),
        (
            "unknown",
            "intune-user",
            "/CN=someone",
            "otherName:1.2.3.4.5;UTF8:x",
            "otherName subject alternative name of type 1.2.3.4.5",
        ),
        (
            "wrongtype",
            "intune-user",
            "/CN=someone",
            "otherName:1.3.6.1.4.1.311.20.2.3;IA5STRING:user@corp.example",
            "UPN (a UTF8String) otherName value is malformed",
        ),
        (
            "empty",
            "intune-user",
            "/CN=someone",
            "otherName:1.3.6.1.4.1.311.20.2.3;UTF8:",
            "the UPN is empty",
        ),
        (
            "notupn",
            "intune-user",
            "/CN=someone",
            "otherName:1.3.6.1.4.1.311.20.2.3;UTF8:no-at-sign",
            "is not a UPN",
        ),
        (
            "cn-not-san",
            "intune-user",
            "/CN=other@corp.example",
            "otherName:1.3.6.1.4.1.311.20.2.3;UTF8:user@corp.example",
            "request it as a UPN SAN too",
        ),
        (
            "required",
            "intune-user",
            "/CN=user@corp.example",
            "email:user@corp.example",
            "a upn subject alternative name is required",
        ),
    ] {
        let req = csr(&ca, name, subj, san);
        let out = fails(
            ca.cmd()
                .args(["issue", "--profile", profile, "--csr"])
                .arg(&req)
                .arg("--out")
                .arg(ca.path(name)),
        );
        assert!(out.contains(reason), "{name}: {reason:?} not in {out}");
        assert!(!ca.path(&format!("{name}.crt")).exists(), "{name} issued");
    }
    // From the CLI flags: a pattern the profile does not match, an assigner and a
    // hwType it does not list.
    for (name, flag, value, reason) in [
        (
            "pi-pattern",
            "--permanent-id",
            "XX-1",
            "does not match the profile's patterns",
        ),
        (
            "pi-assigner",
            "--permanent-id",
            "SN-1;assigner=1.2.3.4",
            "assigner 1.2.3.4 is not allowed",
        ),
        (
            "hw-type",
            "--hardware-module",
            "1.2.3.4:01",
            "hwType 1.2.3.4 is not allowed",
        ),
        (
            "hw-hex",
            "--hardware-module",
            "1.3.6.1.4.1.99999.2:XYZ",
            "is not hardwareModuleName:OID:HEXSERIAL",
        ),
    ] {
        let out = fails(
            ca.cmd()
                .args(["issue", "--profile", "device-id", "--generate-key"])
                .args(["--subject", "CN=device", flag, value])
                .arg("--out")
                .arg(ca.path(name)),
        );
        assert!(out.contains(reason), "{name}: {reason:?} not in {out}");
    }
}
