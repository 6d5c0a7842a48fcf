//! The lints (`ca_core::lint`) through their public API: a good certificate and a good
//! CRL pass, and every finding is triggered by one change to them, alone, with the error
//! kind it must have (RFC 5280 §4.1, §4.2, §5.1 to §5.3).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use ca_core::ErrorKind;
use ca_core::asn1::TbsCertificate;
use ca_core::lint::{IssuerFacts, lint_certificate, lint_crl};
use const_oid::AssociatedOid;
use const_oid::db::rfc5280::ID_KP_SERVER_AUTH;
use const_oid::db::rfc5912::ECDSA_WITH_SHA_256;
use der::Encode;
use der::asn1::{Ia5String, OctetString, UtcTime};
use der::flagset::FlagSet;
use hsm::KeyAlgorithm;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::Version;
use x509_cert::crl::{RevokedCert, TbsCertList};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, CrlNumber, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

const ISSUER_KEY_ID: [u8; 20] = [7; 20];

const ISSUER: IssuerFacts<'static> = IssuerFacts {
    not_before: 0,
    not_after: 10_000,
    key_id: &ISSUER_KEY_ID,
};

fn time(t: u64) -> Time {
    Time::UtcTime(UtcTime::from_unix_duration(Duration::from_secs(t)).unwrap())
}

fn ext<T: Encode>(oid: const_oid::ObjectIdentifier, critical: bool, value: &T) -> Extension {
    raw_ext(oid, critical, &value.to_der().unwrap())
}

fn raw_ext(oid: const_oid::ObjectIdentifier, critical: bool, value: &[u8]) -> Extension {
    Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value).unwrap(),
    }
}

fn key_usage(bits: FlagSet<KeyUsages>) -> Extension {
    ext(KeyUsage::OID, true, &KeyUsage(bits))
}

fn aki(key_id: &[u8]) -> Extension {
    ext(
        AuthorityKeyIdentifier::OID,
        false,
        &AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(key_id).unwrap()),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        },
    )
}

fn san(names: &[&str]) -> Extension {
    ext(
        SubjectAltName::OID,
        false,
        &SubjectAltName(
            names
                .iter()
                .map(|n| GeneralName::DnsName(Ia5String::new(n).unwrap()))
                .collect(),
        ),
    )
}

fn spki(alg: KeyAlgorithm) -> SubjectPublicKeyInfoOwned {
    let key = hsm::soft::generate_exportable(alg).unwrap();
    der::Decode::from_der(&key.spki_der).unwrap()
}

/// A leaf certificate every lint accepts: v3, 16-octet serial, inside the issuer's
/// validity, SKI, AKI of the issuer, critical keyUsage, an EKU, a SAN.
fn good_leaf() -> TbsCertificate {
    TbsCertificate {
        version: 2,
        serial_number: SerialNumber::new(&[0x42; 16]).unwrap(),
        signature: AlgorithmIdentifierOwned {
            oid: ECDSA_WITH_SHA_256,
            parameters: None,
        },
        issuer: "CN=issuer".parse().unwrap(),
        validity: Validity::new(time(1_000), time(2_000)),
        subject: "CN=device-1".parse().unwrap(),
        subject_public_key_info: spki(KeyAlgorithm::EcdsaP256),
        extensions: vec![
            key_usage(KeyUsages::DigitalSignature.into()),
            ext(
                SubjectKeyIdentifier::OID,
                false,
                &SubjectKeyIdentifier(OctetString::new([1u8; 20]).unwrap()),
            ),
            aki(&ISSUER_KEY_ID),
            ext(
                ExtendedKeyUsage::OID,
                false,
                &ExtendedKeyUsage(vec![ID_KP_SERVER_AUTH]),
            ),
            san(&["device-1.example"]),
        ],
    }
}

/// A CA certificate every lint accepts: critical basicConstraints cA, keyCertSign.
fn good_ca() -> TbsCertificate {
    let mut tbs = good_leaf();
    replace(
        &mut tbs,
        key_usage(KeyUsages::KeyCertSign | KeyUsages::CRLSign),
    );
    tbs.extensions.push(ext(
        BasicConstraints::OID,
        true,
        &BasicConstraints {
            ca: true,
            path_len_constraint: Some(0),
        },
    ));
    tbs
}

/// Replaces the extension of the same OID as `e` (or adds it).
fn replace(tbs: &mut TbsCertificate, e: Extension) {
    match tbs.extensions.iter_mut().find(|x| x.extn_id == e.extn_id) {
        Some(x) => *x = e,
        None => tbs.extensions.push(e),
    }
}

fn remove(tbs: &mut TbsCertificate, oid: const_oid::ObjectIdentifier) {
    tbs.extensions.retain(|x| x.extn_id != oid);
}

fn critical(tbs: &mut TbsCertificate, oid: const_oid::ObjectIdentifier, yes: bool) {
    for x in tbs.extensions.iter_mut().filter(|x| x.extn_id == oid) {
        x.critical = yes;
    }
}

/// The one error a linted TBS gives: its kind and its whole text.
fn refusal(tbs: TbsCertificate, self_signed: bool) -> (ErrorKind, String) {
    let e = lint_certificate(tbs, &ISSUER, self_signed).expect_err("refused");
    (e.kind(), e.to_string())
}

fn ca_finding(findings: &str) -> (ErrorKind, String) {
    (
        ErrorKind::Internal,
        format!("lint refused the certificate: {findings}"),
    )
}

fn request_finding(findings: &str) -> (ErrorKind, String) {
    (
        ErrorKind::BadRequest,
        format!("bad request: the request cannot be issued: {findings}"),
    )
}

#[test]
fn good_certificates_pass() {
    lint_certificate(good_leaf(), &ISSUER, false).expect("leaf");
    lint_certificate(good_ca(), &ISSUER, false).expect("CA");
    // A leaf with an empty subject is fine when its SAN is critical (RFC 5280 §4.2.1.6).
    let mut tbs = good_leaf();
    tbs.subject = Name::default();
    critical(&mut tbs, SubjectAltName::OID, true);
    lint_certificate(tbs, &ISSUER, false).expect("empty subject, critical SAN");
    // A self-signed certificate is not held to an issuer's validity.
    let mut tbs = good_ca();
    tbs.validity = Validity::new(time(1_000), time(20_000));
    lint_certificate(tbs, &ISSUER, true).expect("self-signed root");
    // An RSA key may encipher keys.
    let mut tbs = good_leaf();
    tbs.subject_public_key_info = spki(KeyAlgorithm::Rsa2048);
    replace(
        &mut tbs,
        key_usage(KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment),
    );
    lint_certificate(tbs, &ISSUER, false).expect("RSA keyEncipherment");
}

/// Each change to a good certificate and the one finding it must cause.
#[test]
fn each_certificate_finding_is_reported_alone_with_its_kind() {
    type Change = fn(&mut TbsCertificate);
    let leaf: &[(&str, Change, (ErrorKind, String))] = &[
        (
            "version",
            |t| t.version = 0,
            ca_finding("version is not v3"),
        ),
        (
            "21-octet serial",
            |t| {
                t.serial_number =
                    der::Decode::from_der(&[[0x02, 21, 0x01].as_slice(), &[0x55; 20]].concat())
                        .unwrap()
            },
            ca_finding("serial number is 21 octets (1 to 20 allowed)"),
        ),
        (
            "negative serial",
            |t| t.serial_number = der::Decode::from_der(&[0x02, 0x02, 0x80, 0x01]).unwrap(),
            ca_finding("serial number is negative"),
        ),
        (
            "zero serial",
            |t| t.serial_number = SerialNumber::new(&[0]).unwrap(),
            ca_finding("serial number is zero"),
        ),
        (
            "empty validity",
            |t| t.validity = Validity::new(time(2_000), time(2_000)),
            ca_finding("notBefore is not before notAfter"),
        ),
        (
            "validity past the issuer's",
            |t| t.validity = Validity::new(time(1_000), time(10_001)),
            ca_finding("validity is not inside the issuer's validity"),
        ),
        (
            "duplicate extension",
            |t| t.extensions.push(san(&["other.example"])),
            ca_finding("extension 2.5.29.17 appears twice"),
        ),
        (
            "no SKI",
            |t| remove(t, SubjectKeyIdentifier::OID),
            ca_finding("subjectKeyIdentifier is missing"),
        ),
        (
            "critical SKI",
            |t| critical(t, SubjectKeyIdentifier::OID, true),
            ca_finding("subjectKeyIdentifier is critical"),
        ),
        (
            "no AKI",
            |t| remove(t, AuthorityKeyIdentifier::OID),
            ca_finding("authorityKeyIdentifier is missing"),
        ),
        (
            "critical AKI",
            |t| critical(t, AuthorityKeyIdentifier::OID, true),
            ca_finding("authorityKeyIdentifier is critical"),
        ),
        (
            "AKI of another key",
            |t| replace(t, aki(&[8; 20])),
            ca_finding("authorityKeyIdentifier does not match the issuer key"),
        ),
        (
            "AKI garbage",
            |t| replace(t, raw_ext(AuthorityKeyIdentifier::OID, false, b"\x04\x00")),
            ca_finding("authorityKeyIdentifier does not decode"),
        ),
        (
            "pathLen on a leaf",
            |t| {
                t.extensions.push(ext(
                    BasicConstraints::OID,
                    true,
                    &BasicConstraints {
                        ca: false,
                        path_len_constraint: Some(1),
                    },
                ))
            },
            ca_finding("pathLenConstraint on a non-CA certificate"),
        ),
        (
            "basicConstraints garbage",
            |t| {
                t.extensions
                    .push(raw_ext(BasicConstraints::OID, true, b"\x02\x01\x00"))
            },
            ca_finding("basicConstraints does not decode"),
        ),
        (
            "no keyUsage",
            |t| remove(t, KeyUsage::OID),
            ca_finding("keyUsage is missing"),
        ),
        (
            "keyUsage not critical",
            |t| critical(t, KeyUsage::OID, false),
            ca_finding("keyUsage is not critical"),
        ),
        (
            "keyUsage without bits",
            |t| replace(t, key_usage(FlagSet::default())),
            ca_finding("keyUsage has no bits"),
        ),
        (
            "keyCertSign on a leaf",
            |t| {
                replace(
                    t,
                    key_usage(KeyUsages::DigitalSignature | KeyUsages::KeyCertSign),
                )
            },
            ca_finding("keyCertSign must be set exactly when basicConstraints cA is true"),
        ),
        (
            "keyUsage garbage",
            |t| replace(t, raw_ext(KeyUsage::OID, true, b"\x30\x00")),
            ca_finding("keyUsage does not decode"),
        ),
        (
            "empty EKU",
            |t| {
                replace(
                    t,
                    ext(ExtendedKeyUsage::OID, false, &ExtendedKeyUsage(vec![])),
                )
            },
            ca_finding("extendedKeyUsage is empty"),
        ),
        (
            "EKU garbage",
            |t| replace(t, raw_ext(ExtendedKeyUsage::OID, false, b"\x04\x00")),
            ca_finding("extendedKeyUsage does not decode"),
        ),
        (
            "empty SAN",
            |t| replace(t, san(&[])),
            ca_finding("subjectAltName is empty"),
        ),
        (
            "empty subject, SAN not critical",
            |t| t.subject = Name::default(),
            ca_finding("subjectAltName must be critical when the subject is empty"),
        ),
        (
            "SAN garbage",
            |t| replace(t, raw_ext(SubjectAltName::OID, false, b"\x04\x00")),
            ca_finding("subjectAltName does not decode"),
        ),
        // What the request put in: the client's fault.
        (
            "key encipherment on an EC key",
            |t| {
                replace(
                    t,
                    key_usage(KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment),
                )
            },
            request_finding("key encipherment on an EC key"),
        ),
        (
            "data encipherment on an EC key",
            |t| {
                replace(
                    t,
                    key_usage(KeyUsages::DigitalSignature | KeyUsages::DataEncipherment),
                )
            },
            request_finding("key encipherment on an EC key"),
        ),
        (
            "keyAgreement on an RSA key",
            |t| {
                t.subject_public_key_info = spki(KeyAlgorithm::Rsa2048);
                replace(
                    t,
                    key_usage(KeyUsages::DigitalSignature | KeyUsages::KeyAgreement),
                );
            },
            request_finding("keyAgreement on an RSA key"),
        ),
        (
            "empty subject and no SAN",
            |t| {
                t.subject = Name::default();
                remove(t, SubjectAltName::OID);
            },
            request_finding("the subject is empty and there is no subjectAltName"),
        ),
        // A CA finding with a request finding: internal, both listed, the CA's first.
        (
            "no SKI, empty subject and no SAN",
            |t| {
                remove(t, SubjectKeyIdentifier::OID);
                t.subject = Name::default();
                remove(t, SubjectAltName::OID);
            },
            ca_finding(
                "subjectKeyIdentifier is missing; the subject is empty and there is no subjectAltName",
            ),
        ),
    ];
    for (what, change, want) in leaf {
        let mut tbs = good_leaf();
        change(&mut tbs);
        assert_eq!(&refusal(tbs, false), want, "{what}");
    }

    let ca: &[(&str, Change, (ErrorKind, String))] = &[
        (
            "CA basicConstraints not critical",
            |t| critical(t, BasicConstraints::OID, false),
            ca_finding("basicConstraints of a CA is not critical"),
        ),
        (
            "CA without keyCertSign",
            |t| replace(t, key_usage(KeyUsages::CRLSign.into())),
            ca_finding("keyCertSign must be set exactly when basicConstraints cA is true"),
        ),
    ];
    for (what, change, want) in ca {
        let mut tbs = good_ca();
        change(&mut tbs);
        assert_eq!(&refusal(tbs, false), want, "{what}");
    }
}

/// Several findings are all reported, joined, in the order the lints run.
#[test]
fn every_finding_of_a_certificate_is_listed() {
    let mut tbs = good_leaf();
    tbs.version = 0;
    remove(&mut tbs, KeyUsage::OID);
    remove(&mut tbs, AuthorityKeyIdentifier::OID);
    assert_eq!(
        refusal(tbs, false),
        ca_finding("version is not v3; authorityKeyIdentifier is missing; keyUsage is missing")
    );
}

/// A CRL every lint accepts: v2, nextUpdate after thisUpdate, cRLNumber, AKI of the
/// issuer, one revoked entry.
fn good_crl() -> TbsCertList {
    TbsCertList {
        version: Version::V2,
        signature: AlgorithmIdentifierOwned {
            oid: ECDSA_WITH_SHA_256,
            parameters: None,
        },
        issuer: "CN=issuer".parse().unwrap(),
        this_update: time(1_000),
        next_update: Some(time(2_000)),
        revoked_certificates: Some(vec![RevokedCert {
            serial_number: SerialNumber::new(&[0x01, 0x02]).unwrap(),
            revocation_date: time(1_500),
            crl_entry_extensions: None,
        }]),
        crl_extensions: Some(vec![
            aki(&ISSUER_KEY_ID),
            ext(
                CrlNumber::OID,
                false,
                &CrlNumber(der::asn1::Uint::new(&[1]).unwrap()),
            ),
        ]),
    }
}

fn crl_exts(tbs: &mut TbsCertList) -> &mut Vec<Extension> {
    tbs.crl_extensions.as_mut().unwrap()
}

#[test]
fn a_good_crl_passes_and_each_crl_finding_is_reported_alone() {
    lint_crl(&good_crl(), &ISSUER_KEY_ID).expect("good CRL");
    // No revoked certificates: the list is left out, which is fine.
    let mut empty = good_crl();
    empty.revoked_certificates = None;
    lint_crl(&empty, &ISSUER_KEY_ID).expect("CRL without entries");

    type Change = fn(&mut TbsCertList);
    let cases: &[(&str, Change, &str)] = &[
        ("v1", |t| t.version = Version::V1, "version is not v2"),
        (
            "no nextUpdate",
            |t| t.next_update = None,
            "nextUpdate is missing",
        ),
        (
            "nextUpdate = thisUpdate",
            |t| t.next_update = Some(time(1_000)),
            "nextUpdate is not after thisUpdate",
        ),
        (
            "no cRLNumber",
            |t| crl_exts(t).retain(|e| e.extn_id != CrlNumber::OID),
            "cRLNumber is missing",
        ),
        (
            "critical cRLNumber",
            |t| {
                for e in crl_exts(t)
                    .iter_mut()
                    .filter(|e| e.extn_id == CrlNumber::OID)
                {
                    e.critical = true;
                }
            },
            "cRLNumber is critical",
        ),
        (
            "21-octet cRLNumber",
            |t| {
                crl_exts(t).retain(|e| e.extn_id != CrlNumber::OID);
                crl_exts(t).push(ext(
                    CrlNumber::OID,
                    false,
                    &CrlNumber(der::asn1::Uint::new(&[0x01; 21]).unwrap()),
                ));
            },
            "cRLNumber is over 20 octets",
        ),
        (
            "cRLNumber garbage",
            |t| {
                crl_exts(t).retain(|e| e.extn_id != CrlNumber::OID);
                crl_exts(t).push(raw_ext(CrlNumber::OID, false, b"\x04\x00"));
            },
            "cRLNumber does not decode",
        ),
        (
            "no AKI",
            |t| crl_exts(t).retain(|e| e.extn_id != AuthorityKeyIdentifier::OID),
            "authorityKeyIdentifier is missing",
        ),
        (
            "AKI of another key",
            |t| {
                crl_exts(t).retain(|e| e.extn_id != AuthorityKeyIdentifier::OID);
                crl_exts(t).push(aki(&[8; 20]));
            },
            "authorityKeyIdentifier does not match the issuer key",
        ),
        (
            "empty revoked list",
            |t| t.revoked_certificates = Some(vec![]),
            "revokedCertificates is present but empty",
        ),
        (
            "revoked entry with serial zero",
            |t| {
                t.revoked_certificates.as_mut().unwrap()[0].serial_number =
                    SerialNumber::new(&[0]).unwrap()
            },
            "revoked entry: serial number is zero",
        ),
    ];
    for (what, change, finding) in cases {
        let mut tbs = good_crl();
        change(&mut tbs);
        let e = lint_crl(&tbs, &ISSUER_KEY_ID).expect_err(what);
        assert_eq!(e.kind(), ErrorKind::Internal, "{what}");
        assert_eq!(
            e.to_string(),
            format!("lint refused the CRL: {finding}"),
            "{what}"
        );
    }
}
