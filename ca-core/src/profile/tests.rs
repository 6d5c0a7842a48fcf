//! Unit tests of the profile checks, the SAN kinds and the subject names.

use super::*;
use std::str::FromStr;

fn profile(name: &str) -> Profile {
    Profile::from_config(name, built_in(name).expect("built-in"), "issuing").expect("valid")
}

#[test]
fn all_built_ins_validate() {
    for name in BUILT_IN {
        profile(name);
    }
}

#[test]
fn dns_syntax() {
    assert!(check_dns_syntax("a.example.com", false).is_ok());
    assert!(check_dns_syntax("*.example.com", true).is_ok());
    assert!(check_dns_syntax("*.example.com", false).is_err());
    assert!(check_dns_syntax("*", true).is_err());
    assert!(check_dns_syntax("a..b", false).is_err());
    assert!(check_dns_syntax("-a.b", false).is_err());
    assert!(check_dns_syntax("a_b.c", false).is_err());
    assert!(check_dns_syntax(&"a".repeat(64), false).is_err());
}

#[test]
fn san_rules() {
    let mut cfg = built_in("tls-server").expect("built-in");
    cfg.san.any_dns = false;
    cfg.san.dns = vec![".corp.example".into(), "exact.example".into()];
    cfg.san.ip_ranges = vec!["10.0.0.0/8".into()];
    let p = Profile::from_config("t", cfg, "issuing").expect("valid");
    let subject = Name::from_str("CN=x").expect("name");
    assert!(
        p.check_sans(&[San::Dns("a.corp.example".into())], &subject)
            .is_ok()
    );
    assert!(
        p.check_sans(&[San::Dns("exact.example".into())], &subject)
            .is_ok()
    );
    assert!(
        p.check_sans(&[San::Dns("corp.example.evil".into())], &subject)
            .is_err()
    );
    assert!(
        p.check_sans(&[San::Dns("xcorp.example".into())], &subject)
            .is_err()
    );
    assert!(
        p.check_sans(&[San::Dns("*.corp.example".into())], &subject)
            .is_ok()
    );
    assert!(
        p.check_sans(&[San::Ip("10.1.2.3".parse().expect("ip"))], &subject)
            .is_ok()
    );
    assert!(
        p.check_sans(&[San::Ip("11.1.2.3".parse().expect("ip"))], &subject)
            .is_err()
    );
    assert!(
        p.check_sans(&[San::Ip("::1".parse().expect("ip"))], &subject)
            .is_err()
    );
    assert!(
        p.check_sans(&[San::Email("a@b.example".into())], &subject)
            .is_err()
    );
    // required
    assert!(p.check_sans(&[], &subject).is_err());
    // cn_as_dns
    let subject = Name::from_str("CN=www.corp.example").expect("name");
    assert_eq!(
        p.check_sans(&[], &subject).expect("ok"),
        vec![San::Dns("www.corp.example".into())]
    );
    // An address in the CN is not copied as a DNS name (issue 9 item 24).
    let subject = Name::from_str("CN=10.1.2.3").expect("name");
    let ip = San::Ip("10.1.2.3".parse().expect("ip"));
    assert_eq!(
        p.check_sans(std::slice::from_ref(&ip), &subject)
            .expect("ok"),
        vec![ip]
    );
}

#[test]
fn names_are_classified_by_form() {
    use NameShape::*;
    let ip = |s: &str| Ip(s.parse().expect("ip"));
    for (text, shape) in [
        ("www.example.com", Dns("www.example.com".into())),
        ("WWW.Example.COM", Dns("www.example.com".into())),
        ("*.example.com", Dns("*.example.com".into())),
        ("a_b.example", Dns("a_b.example".into())),
        ("10.0.0.1", ip("10.0.0.1")),
        ("::1", ip("::1")),
        ("alice@example.com", Email("alice@example.com".into())),
        ("spiffe://trust/x", Uri("spiffe://trust/x".into())),
        (
            "10.1",
            Malformed("is a dotted number but not an IP address"),
        ),
        (
            "host.example.",
            Malformed("is a DNS name with a trailing dot"),
        ),
        ("Jane Doe", Text),
        ("phone-17", Text),
        ("v1.2 beta", Text),
        ("alice@localhost", Text),
        ("", Text),
    ] {
        assert_eq!(classify_name(text), shape, "{text:?}");
    }
}

#[test]
fn renewals_compare_subjects_and_sans_in_any_order() {
    let p = Profile::from_config("device", built_in("device").expect("built-in"), "issuing")
        .expect("valid");
    let cert = Name::from_str("O=Example,CN=phone-1").expect("name");
    // The certificate's attributes in another RDN order (issued before the subject
    // kept the request's order), and the same as sent.
    for req in ["CN=phone-1,O=Example", "O=Example,CN=phone-1"] {
        let req = Name::from_str(req).expect("name");
        assert!(p.renewal_keeps_subject(&req, &cert), "{req}");
    }
    for req in ["CN=phone-2,O=Example", "CN=phone-1", "CN=phone-1,O=Other"] {
        let req = Name::from_str(req).expect("name");
        assert!(!p.renewal_keeps_subject(&req, &cert), "{req}");
    }
    let a = San::Dns("a.example".into());
    let b = San::Dns("b.example".into());
    let subject = Name::from_str("CN=phone-1").expect("name");
    assert!(p.renewal_keeps_sans(&[b.clone(), a.clone()], &subject, &[a.clone(), b.clone()]));
    assert!(!p.renewal_keeps_sans(std::slice::from_ref(&a), &subject, &[a.clone(), b]));
}

#[test]
fn subject_template() {
    let mut cfg = built_in("device").expect("built-in");
    cfg.subject.fixed.insert("O".into(), "Example Corp".into());
    let p = Profile::from_config("d", cfg, "issuing").expect("valid");
    let req = Name::from_str("CN=phone1,O=Evil,L=Nowhere").expect("name");
    let s = p.build_subject(&req).expect("subject");
    assert_eq!(s.to_string(), "CN=phone1,O=Example Corp");
}

#[test]
fn key_policy() {
    let p = profile("ra");
    assert!(p.check_key(KeyAlgorithm::Rsa2048).is_ok());
    assert!(p.check_key(KeyAlgorithm::EcdsaP256).is_err());
    assert_eq!(
        profile("tls-server").key_usage_for(KeyAlgorithm::EcdsaP256),
        FlagSet::from(KeyUsages::DigitalSignature)
    );
}

#[test]
fn bad_profile_configs_are_refused() {
    let mut cfg = built_in("tls-server").expect("built-in");
    cfg.key_usage = vec!["keyCertSign".into()];
    assert!(Profile::from_config("x", cfg, "i").is_err());
    let mut cfg = built_in("tls-server").expect("built-in");
    cfg.extended_key_usage = vec!["nonsense".into()];
    assert!(Profile::from_config("x", cfg, "i").is_err());
    let mut cfg = built_in("tls-server").expect("built-in");
    cfg.san.ip_ranges = vec!["10.0.0.0/33".into()];
    assert!(Profile::from_config("x", cfg, "i").is_err());
    let mut cfg = built_in("tls-server").expect("built-in");
    cfg.validity_days = 0;
    assert!(Profile::from_config("x", cfg, "i").is_err());
}

fn other_names_profile() -> Profile {
    let mut cfg = built_in("tls-client").expect("built-in");
    cfg.san.upn_suffixes = vec!["@corp.example".into()];
    cfg.san.permanent_identifier_values = vec!["SN-*".into()];
    cfg.san.permanent_identifier_assigners = vec!["1.3.6.1.4.1.99999.1".into()];
    cfg.san.hardware_module_types = vec!["1.3.6.1.4.1.99999.2".into()];
    Profile::from_config("users", cfg, "i").expect("profile")
}

#[test]
fn other_names_round_trip_through_der_and_the_display_form() {
    for text in [
        "upn:jane@corp.example",
        "permanentId:SN-0017",
        "permanentId:SN-0017;assigner=1.3.6.1.4.1.99999.1",
        "hardwareModuleName:1.3.6.1.4.1.99999.2:0A0B0C",
    ] {
        let san = San::parse(text).expect(text);
        assert_eq!(san.display(), text);
        let g = san.to_general_name().expect("encode");
        let der = g.to_der().expect("der");
        let back = GeneralName::from_der(&der).expect("decode");
        assert_eq!(San::from_general_name(&back).expect("read"), san, "{text}");
    }
    // The UPN is [0] { OID 1.3.6.1.4.1.311.20.2.3, [0] EXPLICIT UTF8String }.
    let der = San::Upn("u@c.example".into())
        .to_general_name()
        .and_then(|g| Ok(g.to_der()?))
        .expect("der");
    let mut want = vec![0xA0, 0x1B, 0x06, 0x0A];
    want.extend([0x2B, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x14, 0x02, 0x03]);
    want.extend([0xA0, 0x0D, 0x0C, 0x0B]);
    want.extend(b"u@c.example");
    assert_eq!(der, want);
}

#[test]
fn other_names_are_refused_unless_the_profile_allows_them() {
    let subject = Name::default();
    let plain = Profile::from_config("p", built_in("tls-client").expect("b"), "i").expect("p");
    let upn = San::Upn("jane@corp.example".into());
    let e = plain
        .check_sans(std::slice::from_ref(&upn), &subject)
        .expect_err("refused");
    assert!(e.to_string().contains("issues no UPNs"), "{e}");
    let p = other_names_profile();
    assert!(p.check_sans(std::slice::from_ref(&upn), &subject).is_ok());
    for (san, why) in [
        (San::Upn("jane@evil.example".into()), "not allowed"),
        (San::Upn("jane@CORP.example.evil".into()), "not allowed"),
        (San::Upn("no-at".into()), "is not a UPN"),
        (San::Upn("a@b@corp.example".into()), "is not a UPN"),
        (San::Upn("".into()), "is empty"),
        (
            San::PermanentId {
                value: "XX-1".into(),
                assigner: None,
            },
            "does not match",
        ),
        (
            San::PermanentId {
                value: "SN-1".into(),
                assigner: Some(ObjectIdentifier::new_unwrap("1.2.3")),
            },
            "assigner 1.2.3",
        ),
        (
            San::HardwareModule {
                hw_type: ObjectIdentifier::new_unwrap("1.2.3"),
                serial: vec![1],
            },
            "hwType 1.2.3",
        ),
    ] {
        let e = p
            .check_sans(std::slice::from_ref(&san), &subject)
            .expect_err("refused");
        assert!(e.to_string().contains(why), "{san:?}: {e}");
    }
    // The UPN suffix compares ignoring case.
    assert!(
        p.check_sans(&[San::Upn("jane@Corp.Example".into())], &subject)
            .is_ok()
    );
}

#[test]
fn glob_patterns() {
    for (p, t, m) in [
        ("*", "", true),
        ("SN-*", "SN-1", true),
        ("SN-*", "XSN-1", false),
        ("*-01", "a-01", true),
        ("a*b*c", "abc", true),
        ("a*b*c", "acb", false),
        ("a*a", "a", false),
        ("exact", "exact", true),
        ("exact", "exact2", false),
    ] {
        assert_eq!(glob_match(p, t), m, "{p:?} {t:?}");
    }
}

#[test]
fn other_name_profile_settings_are_validated() {
    for (field, value) in [
        ("upn", "corp.example"),
        ("assigner", "not-an-oid"),
        ("hw", "x"),
        ("require", "phone"),
    ] {
        let mut cfg = built_in("tls-client").expect("built-in");
        match field {
            "upn" => cfg.san.upn_suffixes = vec![value.into()],
            "assigner" => cfg.san.permanent_identifier_assigners = vec![value.into()],
            "hw" => cfg.san.hardware_module_types = vec![value.into()],
            _ => cfg.san.require = vec![value.into()],
        }
        assert!(Profile::from_config("x", cfg, "i").is_err(), "{field}");
    }
}

/// rfc822Name syntax (RFC 5321 §4.1.2 Mailbox, RFC 5322 §3.2.3 atext): the addresses
/// devices and mail clients use pass; two "@", empty or doubled dots, spaces, quoted
/// local parts and over-long local parts are refused.
#[test]
fn mailbox_syntax() {
    for ok in [
        "a@example.com",
        "first.last+tag@sub.example.com",
        "o'neil@example.com",
        "x_y-z@example.com",
        "UPPER@EXAMPLE.COM",
    ] {
        assert!(names::check_mailbox_syntax(ok).is_ok(), "{ok}");
    }
    let long = format!("{}@example.com", "a".repeat(65));
    for (bad, why) in [
        ("bad@@x.example", "more than one"),
        ("a@b@example.com", "more than one"),
        ("@example.com", "1 to 64"),
        (long.as_str(), "1 to 64"),
        (".a@example.com", "dot-separated"),
        ("a.@example.com", "dot-separated"),
        ("a..b@example.com", "dot-separated"),
        ("\"a b\"@example.com", "dot-separated"),
        ("a(b)@example.com", "dot-separated"),
        ("noat.example.com", "no \"@\""),
        ("a@", "DNS name"),
        ("a@exa_mple.com", "DNS name"),
    ] {
        let e = names::check_mailbox_syntax(bad).expect_err(bad).to_string();
        assert!(e.contains(why), "{bad}: {e}");
    }
}
