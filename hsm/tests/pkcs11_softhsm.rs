//! The PKCS#11 backend against SoftHSM2: the KeyStore contract suite (every algorithm signs
//! and verifies, RSA decryption round-trips with uniform failures, refusals, listing,
//! import), then what is the token's own: key attributes, lookup by ID, label prefixes,
//! wrong PIN, and concurrent signing through a small session pool. Each test runs in its
//! own process with its own token (see `common`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use cryptoki::object::{Attribute, AttributeType};
use hsm::pkcs11::{Pkcs11Config, Pkcs11KeyStore};
use hsm::testing::keystore_suite::{self, Expectations};
use hsm::{Error, KeyAlgorithm, KeyStore, KeyUse, OaepHash, PrivateKey, SignatureScheme};

use common::with_softhsm;

fn open(cfg: Pkcs11Config) -> Pkcs11KeyStore {
    Pkcs11KeyStore::open(cfg).expect("open the token")
}

/// SoftHSM2: RSA-4096 generation is left out (slow on a token), OAEP with SHA-1 only
/// (SoftHSM 2.6 refuses the other hashes at C_DecryptInit), and the token enforces key
/// use (CKA_DECRYPT).
const SOFTHSM: Expectations = Expectations {
    algorithms: &[
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa3072,
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
    ],
    oaep_hashes: &[OaepHash::Sha1],
    enforces_key_use: true,
};

/// Runs `case` in a child process with a fresh token (see `common`).
fn run_case(test: &str, case: keystore_suite::Case) {
    with_softhsm(test, |env| case(&open(env.config()), &SOFTHSM));
}

// The KeyStore contract (hsm::testing::keystore_suite), each case on its own new token.
hsm::keystore_suite!(contract, super::run_case);

fn flag(attrs: &[Attribute], t: AttributeType) -> Option<bool> {
    attrs.iter().find_map(|a| match (a, t) {
        (Attribute::Sensitive(v), AttributeType::Sensitive)
        | (Attribute::Extractable(v), AttributeType::Extractable)
        | (Attribute::NeverExtractable(v), AttributeType::NeverExtractable)
        | (Attribute::AlwaysSensitive(v), AttributeType::AlwaysSensitive)
        | (Attribute::Local(v), AttributeType::Local)
        | (Attribute::Private(v), AttributeType::Private)
        | (Attribute::Token(v), AttributeType::Token) => Some(*v),
        _ => None,
    })
}

const FLAGS: [AttributeType; 7] = [
    AttributeType::Sensitive,
    AttributeType::Extractable,
    AttributeType::NeverExtractable,
    AttributeType::AlwaysSensitive,
    AttributeType::Local,
    AttributeType::Private,
    AttributeType::Token,
];

#[test]
fn generated_keys_are_sensitive_and_not_extractable_and_found_by_label_and_id() {
    with_softhsm(
        "generated_keys_are_sensitive_and_not_extractable_and_found_by_label_and_id",
        |env| {
            let store = open(env.config());
            for alg in [KeyAlgorithm::Rsa2048, KeyAlgorithm::EcdsaP256] {
                let label = format!("ca-{alg}");
                let key = store.generate_key(&label, alg).unwrap();
                let attrs = key.private_attributes(&FLAGS).unwrap();
                for (t, want) in [
                    (AttributeType::Sensitive, true),
                    (AttributeType::Extractable, false),
                    (AttributeType::NeverExtractable, true),
                    (AttributeType::AlwaysSensitive, true),
                    (AttributeType::Local, true),
                    (AttributeType::Private, true),
                    (AttributeType::Token, true),
                ] {
                    assert_eq!(flag(&attrs, t), Some(want), "{alg} {t:?}");
                }
                // The private value cannot be read.
                let secret_attr = if alg.is_rsa() {
                    AttributeType::PrivateExponent
                } else {
                    AttributeType::Value
                };
                let read = key.private_attributes(&[secret_attr]);
                assert!(
                    read.as_ref().map(|v| v.is_empty()).unwrap_or(true),
                    "{alg}: the private value was readable: {read:?}"
                );

                // By label and by ID: the same key.
                let by_label = store.open(&label).unwrap();
                let id: String = key.id().iter().map(|b| format!("{b:02x}")).collect();
                let by_id = store.open(&format!("id:{id}")).unwrap();
                assert_eq!(by_label.public_key_der(), key.public_key_der());
                assert_eq!(by_id.public_key_der(), key.public_key_der());
                assert_eq!(by_id.label(), label);
                let sig = by_id.sign(alg.default_scheme(), b"x").unwrap();
                hsm::verify(alg.default_scheme(), key.public_key_der(), b"x", &sig).unwrap();
            }
            // (A taken label, a missing one and "../x": the contract cases.)
            assert!(matches!(store.open("id:0badc0de"), Err(Error::NotFound(_))));
            assert!(matches!(store.open("id:xyz"), Err(Error::InvalidLabel(_))));

            let list = store.list_details().unwrap();
            let labels: Vec<_> = list.iter().map(|k| k.info.label.as_str()).collect();
            assert_eq!(labels, ["ca-ecdsa-p256", "ca-rsa-2048"]);
            assert!(
                list.iter()
                    .all(|k| k.sensitive && !k.extractable && k.local)
            );

            // A prefix keeps two CAs apart on one token.
            let mut cfg = env.config();
            cfg.label_prefix = "other.".into();
            let other = open(cfg);
            assert!(other.list().unwrap().is_empty());
            other
                .generate("ca-rsa-2048", KeyAlgorithm::EcdsaP256)
                .unwrap();
            assert_eq!(other.list().unwrap().len(), 1);
            assert_eq!(
                store.open("ca-rsa-2048").unwrap().algorithm(),
                KeyAlgorithm::Rsa2048
            );
            // An empty prefix means the whole token.
            assert_eq!(store.list().unwrap().len(), 3);
        },
    );
}

#[test]
fn wrong_pin_is_a_clear_error() {
    with_softhsm("wrong_pin_is_a_clear_error", |env| {
        let dir = tempfile::tempdir().unwrap();
        let pin = dir.path().join("pin");
        std::fs::write(&pin, "9999\n").unwrap();
        std::fs::set_permissions(
            &pin,
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
        )
        .unwrap();
        let mut cfg = env.config();
        cfg.pin = hsm::SecretSource::File(pin.clone());
        let e = Pkcs11KeyStore::open(cfg.clone()).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::Secret(_)), "{e:?}");
        assert!(
            msg.contains("wrong or locked PIN") && msg.contains("CKR_PIN_INCORRECT"),
            "{msg}"
        );
        assert!(
            !msg.contains("9999"),
            "the PIN leaked into the message: {msg}"
        );
        // The right PIN in the file works.
        std::fs::write(&pin, format!("{}\n", common::PIN)).unwrap();
        Pkcs11KeyStore::open(cfg.clone()).unwrap();
        // A missing token and a missing module are clear too.
        let mut c = cfg.clone();
        c.token_label = Some("no-such-token".into());
        let e = Pkcs11KeyStore::open(c).unwrap_err().to_string();
        assert!(
            e.contains("no PKCS#11 token labelled \"no-such-token\""),
            "{e}"
        );
        let mut c = cfg;
        c.module = "/nonexistent/libnothing.so".into();
        let e = Pkcs11KeyStore::open(c).unwrap_err().to_string();
        assert!(
            e.contains("cannot load PKCS#11 module /nonexistent/libnothing.so"),
            "{e}"
        );
    });
}

#[test]
fn software_keys_import_onto_the_token() {
    with_softhsm("software_keys_import_onto_the_token", |env| {
        let store = open(env.config());
        for alg in [
            KeyAlgorithm::Rsa2048,
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
        ] {
            let soft = hsm::soft::generate_exportable(alg).unwrap();
            let label = format!("imported-{alg}");
            let key = store.import_key(&label, soft.pkcs8_der.expose()).unwrap();
            assert_eq!(key.public_key_der(), soft.spki_der.as_slice());
            let scheme = alg.default_scheme();
            let sig = key.sign(scheme, b"imported").unwrap();
            hsm::verify(scheme, &soft.spki_der, b"imported", &sig).unwrap();
            let attrs = key.private_attributes(&FLAGS).unwrap();
            assert_eq!(flag(&attrs, AttributeType::Sensitive), Some(true));
            assert_eq!(flag(&attrs, AttributeType::Extractable), Some(false));
            assert_eq!(
                flag(&attrs, AttributeType::Local),
                Some(false),
                "imported keys are not local"
            );
        }
        // (A taken label and a blob that is no key: contract::pkcs8_keys_import.)
    });
}

#[test]
fn many_threads_sign_through_a_small_pool() {
    with_softhsm("many_threads_sign_through_a_small_pool", |env| {
        let mut cfg = env.config();
        cfg.sessions = 2;
        let store = open(cfg);
        let key: Arc<dyn PrivateKey> = store.generate("p256", KeyAlgorithm::EcdsaP256).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let key = key.clone();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let msg = format!("{t}-{i}");
                        let sig = key
                            .sign(SignatureScheme::EcdsaP256Sha256, msg.as_bytes())
                            .unwrap();
                        hsm::verify(
                            SignatureScheme::EcdsaP256Sha256,
                            key.public_key_der(),
                            msg.as_bytes(),
                            &sig,
                        )
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    });
}

/// Generated keys get only the uses their role needs, read back from the token: CA and
/// OCSP keys sign only, the RA key signs and decrypts; none unwraps or derives, none can be
/// modified or copied, all are sensitive and not extractable.
#[test]
fn generated_keys_get_only_the_uses_of_their_role() {
    with_softhsm("generated_keys_get_only_the_uses_of_their_role", |env| {
        let store = open(env.config());
        let flag = |key: &hsm::pkcs11::Pkcs11Key, t: AttributeType| -> bool {
            let a = key.private_attributes(&[t]).unwrap();
            match a.as_slice() {
                [Attribute::Sign(v)]
                | [Attribute::Decrypt(v)]
                | [Attribute::Unwrap(v)]
                | [Attribute::Derive(v)]
                | [Attribute::Modifiable(v)]
                | [Attribute::Copyable(v)]
                | [Attribute::Sensitive(v)]
                | [Attribute::Extractable(v)] => *v,
                other => panic!("{t:?}: {other:?}"),
            }
        };
        let cases = [
            ("ca-rsa", KeyAlgorithm::Rsa2048, KeyUse::Sign),
            ("ca-ec", KeyAlgorithm::EcdsaP256, KeyUse::Sign),
            ("ocsp", KeyAlgorithm::EcdsaP384, KeyUse::Sign),
            ("ra", KeyAlgorithm::Rsa2048, KeyUse::SignAndDecrypt),
        ];
        for (label, alg, uses) in cases {
            let key = store.generate_key_for(label, alg, uses).unwrap();
            let decrypts = uses == KeyUse::SignAndDecrypt;
            let got = [
                ("CKA_SIGN", flag(&key, AttributeType::Sign), true),
                ("CKA_DECRYPT", flag(&key, AttributeType::Decrypt), decrypts),
                ("CKA_UNWRAP", flag(&key, AttributeType::Unwrap), false),
                ("CKA_DERIVE", flag(&key, AttributeType::Derive), false),
                (
                    "CKA_MODIFIABLE",
                    flag(&key, AttributeType::Modifiable),
                    false,
                ),
                ("CKA_COPYABLE", flag(&key, AttributeType::Copyable), false),
                ("CKA_SENSITIVE", flag(&key, AttributeType::Sensitive), true),
                (
                    "CKA_EXTRACTABLE",
                    flag(&key, AttributeType::Extractable),
                    false,
                ),
            ];
            eprintln!("{label} ({alg}, {uses:?}): {got:?}");
            for (name, have, want) in got {
                assert_eq!(have, want, "{label}: {name}");
            }
            // (That the token enforces it, and refuses an EC key for decryption:
            // contract::wrong_key_use_is_refused.)
        }
        // And the trait's plain `generate` makes signing-only keys.
        let plain = store.generate("plain", KeyAlgorithm::Rsa2048).unwrap();
        let plain = store.open_key(plain.label()).unwrap();
        assert!(!flag(&plain, AttributeType::Decrypt));
    });
}
