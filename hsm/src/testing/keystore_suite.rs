//! The contract every [`KeyStore`] backend passes, whatever holds its keys: each case
//! takes a fresh, empty store and what the backend is expected to support.
//!
//! [`keystore_suite!`](crate::keystore_suite) stamps out one `#[test]` per case; the
//! runner it is given opens the fresh store (a temporary directory for the software keys,
//! a new SoftHSM2 token in a child process for PKCS#11). The cases use only the trait and
//! the crate's public-key functions ([`crate::verify`], [`crate::spki_algorithm`]).

use aws_lc_rs::rsa::{
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OAEP_SHA384_MGF1SHA384, OAEP_SHA512_MGF1SHA512,
    OaepAlgorithm, OaepPublicEncryptingKey, Pkcs1PublicEncryptingKey, PublicEncryptingKey,
};
use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoRef;

use crate::{Error, KeyAlgorithm, KeyStore, KeyUse, OaepHash, SignatureScheme};

/// What a backend supports beyond what every backend must.
#[derive(Clone, Copy, Debug)]
pub struct Expectations {
    /// The algorithms the suite generates keys of (RSA-4096 generation is slow on some
    /// tokens, so a backend may leave it out).
    pub algorithms: &'static [KeyAlgorithm],
    /// The RSAES-OAEP hashes (RFC 8017 §7.1) the backend must decrypt with; it may refuse
    /// the others with [`Error::Unsupported`] (SoftHSM 2.6 implements SHA-1 only).
    pub oaep_hashes: &'static [OaepHash],
    /// True when the backend enforces [`KeyUse`]: a key made by [`KeyStore::generate`]
    /// cannot decrypt, and [`KeyUse::SignAndDecrypt`] is refused for an EC key (a PKCS#11
    /// token's `CKA_DECRYPT`). A software key can do whatever its algorithm can.
    pub enforces_key_use: bool,
}

/// One case of the suite.
pub type Case = fn(&dyn KeyStore, &Expectations);

/// Every signature scheme.
pub const ALL_SCHEMES: [SignatureScheme; 8] = [
    SignatureScheme::RsaPkcs1Sha256,
    SignatureScheme::RsaPkcs1Sha384,
    SignatureScheme::RsaPkcs1Sha512,
    SignatureScheme::RsaPssSha256,
    SignatureScheme::RsaPssSha384,
    SignatureScheme::RsaPssSha512,
    SignatureScheme::EcdsaP256Sha256,
    SignatureScheme::EcdsaP384Sha384,
];

const ALL_OAEP: [OaepHash; 4] = [
    OaepHash::Sha1,
    OaepHash::Sha256,
    OaepHash::Sha384,
    OaepHash::Sha512,
];

/// Stamps out one `#[test]` per case of [`keystore_suite`](crate::testing::keystore_suite)
/// in a module named `$module`. `$run` (evaluated inside that module, so write
/// `super::run`) is a `fn(&str, Case)`: it gets the test's path inside the test binary
/// (`module::case`, for a runner that re-runs the test in a child process) and the case,
/// and calls the case with a fresh, empty store.
#[macro_export]
macro_rules! keystore_suite {
    ($module:ident, $run:expr) => {
        $crate::keystore_suite!(@cases $module, $run,
            every_algorithm_signs_and_verifies,
            rsa_decryption_round_trips_and_fails_uniformly,
            wrong_key_use_is_refused,
            missing_key_is_not_found,
            duplicate_label_is_exists,
            bad_labels_are_refused,
            list_returns_every_key_sorted,
            pkcs8_keys_import,
            verify_rejects_wrong_key_and_bad_input,
        );
    };
    (@cases $module:ident, $run:expr, $($case:ident),* $(,)?) => {
        mod $module {
            $(
                #[test]
                fn $case() {
                    let run: fn(&str, $crate::testing::keystore_suite::Case) = $run;
                    run(
                        concat!(stringify!($module), "::", stringify!($case)),
                        $crate::testing::keystore_suite::$case,
                    );
                }
            )*
        }
    };
}

/// Generates a key of each algorithm; it signs with every scheme that fits and verifies,
/// refuses the others ([`Error::Unsupported`]), reports a canonical SPKI of its algorithm,
/// and opens again by its label as the same key.
pub fn every_algorithm_signs_and_verifies(store: &dyn KeyStore, x: &Expectations) {
    let mut signed = 0;
    let mut expected = 0;
    for &alg in x.algorithms {
        let label = format!("k-{alg}");
        let key = store.generate(&label, alg).unwrap();
        assert_eq!(key.label(), label);
        assert_eq!(key.algorithm(), alg);

        // The SPKI is well-formed DER and says what we think it says.
        let spki_der = key.public_key_der().to_vec();
        let spki = SubjectPublicKeyInfoRef::from_der(&spki_der).unwrap();
        assert_eq!(
            spki.to_der().unwrap(),
            spki_der,
            "SPKI must be canonical DER"
        );
        assert_eq!(crate::spki_algorithm(&spki_der).unwrap(), alg);
        match alg {
            KeyAlgorithm::Rsa2048 => assert_eq!(crate::rsa_modulus_bits(&spki_der).unwrap(), 2048),
            KeyAlgorithm::Rsa3072 => assert_eq!(crate::rsa_modulus_bits(&spki_der).unwrap(), 3072),
            KeyAlgorithm::Rsa4096 => assert_eq!(crate::rsa_modulus_bits(&spki_der).unwrap(), 4096),
            KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => {
                assert!(matches!(
                    crate::rsa_modulus_bits(&spki_der),
                    Err(Error::Unsupported(_))
                ));
            }
        }
        // aws-lc agrees with the SPKI.
        if alg.is_rsa() {
            PublicEncryptingKey::from_der(&spki_der).unwrap();
        }

        for scheme in ALL_SCHEMES {
            let msg = format!("message for {scheme:?}");
            if !scheme.fits(alg) {
                assert!(
                    matches!(key.sign(scheme, msg.as_bytes()), Err(Error::Unsupported(_))),
                    "{scheme:?} with {alg}"
                );
                assert!(matches!(
                    crate::verify(scheme, &spki_der, msg.as_bytes(), b"whatever"),
                    Err(Error::Unsupported(_))
                ));
                continue;
            }
            let sig = key
                .sign(scheme, msg.as_bytes())
                .unwrap_or_else(|e| panic!("{alg} {scheme:?}: {e}"));
            crate::verify(scheme, &spki_der, msg.as_bytes(), &sig)
                .unwrap_or_else(|e| panic!("{alg} {scheme:?} does not verify: {e}"));
            // A different message must not verify: the check can fail.
            assert!(matches!(
                crate::verify(scheme, &spki_der, b"another message", &sig),
                Err(Error::BadSignature)
            ));
            let mut bad = sig.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(matches!(
                crate::verify(scheme, &spki_der, msg.as_bytes(), &bad),
                Err(Error::BadSignature)
            ));
            signed += 1;
        }
        // RSA keys make all six RSA schemes, EC keys the one of their curve.
        expected += if alg.is_rsa() { 6 } else { 1 };

        // By label: the same key, and it signs.
        let again = store.open(&label).unwrap();
        assert_eq!(again.algorithm(), alg);
        assert_eq!(again.public_key_der(), spki_der.as_slice());
        let scheme = alg.default_scheme();
        let sig = again.sign(scheme, b"x").unwrap();
        crate::verify(scheme, &spki_der, b"x", &sig).unwrap();
    }
    assert_eq!(signed, expected);
}

fn oaep_alg(hash: OaepHash) -> &'static OaepAlgorithm {
    match hash {
        OaepHash::Sha1 => &OAEP_SHA1_MGF1SHA1,
        OaepHash::Sha256 => &OAEP_SHA256_MGF1SHA256,
        OaepHash::Sha384 => &OAEP_SHA384_MGF1SHA384,
        OaepHash::Sha512 => &OAEP_SHA512_MGF1SHA512,
    }
}

/// An RSA key made for decryption opens PKCS#1 v1.5 (RFC 8017 §7.2) and OAEP (§7.1)
/// blocks, and every bad block (bad padding, wrong length, garbage, the wrong scheme or
/// hash) fails with the one uniform [`Error::Decrypt`] (Bleichenbacher).
pub fn rsa_decryption_round_trips_and_fails_uniformly(store: &dyn KeyStore, x: &Expectations) {
    let key = store
        .generate_for("ra", KeyAlgorithm::Rsa2048, KeyUse::SignAndDecrypt)
        .unwrap();
    let public = || PublicEncryptingKey::from_der(key.public_key_der()).unwrap();
    let secret = b"0123456789abcdef0123456789abcdef"; // an AES-256 content-encryption key

    // PKCS#1 v1.5
    let pkcs1 = Pkcs1PublicEncryptingKey::new(public()).unwrap();
    let mut buf = vec![0u8; pkcs1.ciphertext_size()];
    let ct = pkcs1.encrypt(secret, &mut buf).unwrap().to_vec();
    assert_eq!(key.decrypt_pkcs1v15(&ct).unwrap(), secret);

    // OAEP with each hash the backend supports; the wrong hash fails without detail. A
    // hash it does not support is refused as unsupported (it never saw the ciphertext).
    let oaep = OaepPublicEncryptingKey::new(public()).unwrap();
    for hash in ALL_OAEP {
        let mut buf = vec![0u8; oaep.ciphertext_size()];
        let oaep_ct = oaep
            .encrypt(oaep_alg(hash), secret, &mut buf, None)
            .unwrap()
            .to_vec();
        if x.oaep_hashes.contains(&hash) {
            assert_eq!(
                key.decrypt_oaep(hash, &oaep_ct).unwrap(),
                secret,
                "{hash:?}"
            );
        } else {
            match key.decrypt_oaep(hash, &oaep_ct) {
                Ok(p) => assert_eq!(p, secret),
                Err(Error::Unsupported(m)) => eprintln!("OAEP-{hash:?}: {m}"),
                Err(e) => panic!("OAEP-{hash:?}: {e:?}"),
            }
            continue;
        }
        let other = if hash == OaepHash::Sha1 {
            OaepHash::Sha256
        } else {
            OaepHash::Sha1
        };
        if x.oaep_hashes.contains(&other) {
            assert!(matches!(
                key.decrypt_oaep(other, &oaep_ct),
                Err(Error::Decrypt)
            ));
        }
        // OAEP ciphertext is not PKCS#1 v1.5 ciphertext.
        assert!(matches!(
            key.decrypt_pkcs1v15(&oaep_ct),
            Err(Error::Decrypt)
        ));
    }
    // The PKCS#1 v1.5 ciphertext is bad OAEP: the same error.
    assert!(matches!(
        key.decrypt_oaep(OaepHash::Sha1, &ct),
        Err(Error::Decrypt)
    ));

    // Bad padding, wrong length, garbage, all ones (>= modulus): always the one error.
    let mut bad = ct.clone();
    bad[10] ^= 0x55;
    let mut random = vec![0u8; 256];
    aws_lc_rs::rand::fill(&mut random).unwrap();
    random[0] = 0x01; // below the modulus, so it reaches the padding check
    for c in [
        bad.clone(),
        ct[..100].to_vec(),
        random.clone(),
        vec![],
        vec![0xff; 256],
        vec![0; 257],
    ] {
        assert!(
            matches!(key.decrypt_pkcs1v15(&c), Err(Error::Decrypt)),
            "pkcs1 {}",
            c.len()
        );
        for &hash in x.oaep_hashes {
            assert!(
                matches!(key.decrypt_oaep(hash, &c), Err(Error::Decrypt)),
                "oaep {hash:?} {}",
                c.len()
            );
        }
    }
    assert_eq!(Error::Decrypt.to_string(), "decryption failed");
    // The same inputs fail the same way in the software backend.
    let soft = crate::soft::SoftKey::generate_ephemeral("soft", KeyAlgorithm::Rsa2048).unwrap();
    assert!(matches!(
        crate::PrivateKey::decrypt_pkcs1v15(&soft, &random),
        Err(Error::Decrypt)
    ));

    // The key still works afterwards, and opened again by its label it decrypts too.
    assert_eq!(key.decrypt_pkcs1v15(&ct).unwrap(), secret);
    let reopened = store.open("ra").unwrap();
    assert_eq!(reopened.decrypt_pkcs1v15(&ct).unwrap(), secret);
}

/// An EC key does not decrypt ([`Error::Unsupported`]); where the backend enforces key
/// use, a signing key does not decrypt either and an EC key cannot be made for decryption.
pub fn wrong_key_use_is_refused(store: &dyn KeyStore, x: &Expectations) {
    let ec = store.generate("ec", KeyAlgorithm::EcdsaP256).unwrap();
    assert!(matches!(
        ec.decrypt_pkcs1v15(&[0x01; 256]),
        Err(Error::Unsupported(_))
    ));
    assert!(matches!(
        ec.decrypt_oaep(OaepHash::Sha1, &[0x01; 256]),
        Err(Error::Unsupported(_))
    ));
    if x.enforces_key_use {
        // The token enforces it: a sign-only RSA key refuses to decrypt.
        let sign_only = store.generate("ca-rsa", KeyAlgorithm::Rsa2048).unwrap();
        assert!(sign_only.decrypt_pkcs1v15(&[0u8; 256]).is_err());
        // Key use that does not fit the algorithm is refused.
        assert!(matches!(
            store.generate_for("ec-ra", KeyAlgorithm::EcdsaP256, KeyUse::SignAndDecrypt),
            Err(Error::Unsupported(_))
        ));
    }
}

/// Opening a label nothing is stored under is [`Error::NotFound`] naming the label.
pub fn missing_key_is_not_found(store: &dyn KeyStore, _: &Expectations) {
    assert!(matches!(store.open("nope"), Err(Error::NotFound(l)) if l == "nope"));
    assert!(matches!(store.open("missing"), Err(Error::NotFound(_))));
}

fn p256_pkcs8() -> Vec<u8> {
    aws_lc_rs::signature::EcdsaKeyPair::generate(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
    )
    .unwrap()
    .to_pkcs8v1()
    .unwrap()
    .as_ref()
    .to_vec()
}

/// A label is taken once: generating or importing under it again is [`Error::Exists`]
/// and leaves the first key as it was.
pub fn duplicate_label_is_exists(store: &dyn KeyStore, _: &Expectations) {
    let key = store.generate("ca", KeyAlgorithm::EcdsaP256).unwrap();
    assert!(matches!(
        store.generate("ca", KeyAlgorithm::EcdsaP256),
        Err(Error::Exists(l)) if l == "ca"
    ));
    assert!(matches!(
        store.generate("ca", KeyAlgorithm::Rsa2048),
        Err(Error::Exists(_))
    ));
    assert!(matches!(
        store.import_pkcs8("ca", &p256_pkcs8()),
        Err(Error::Exists(_))
    ));
    // The original key is untouched.
    assert_eq!(
        store.open("ca").unwrap().public_key_der(),
        key.public_key_der()
    );
}

/// Labels that are not 1 to 64 of `[A-Za-z0-9._-]` (not starting with a dot), refused by
/// every operation that takes one ([`Error::InvalidLabel`]).
pub fn bad_labels() -> Vec<String> {
    [
        "",
        ".",
        "..",
        ".hidden",
        "../escape",
        "../x",
        "a/b",
        "/abs",
        "a b",
        "tab\t",
        "nul\0",
        "é",
        "semi;colon",
    ]
    .into_iter()
    .map(String::from)
    .chain(["x".repeat(65)])
    .collect()
}

/// Generating, opening and importing under each of [`bad_labels`] is refused.
pub fn refuse_bad_labels(store: &dyn KeyStore) {
    let pkcs8 = p256_pkcs8();
    for label in bad_labels() {
        let label = label.as_str();
        assert!(
            matches!(
                store.generate(label, KeyAlgorithm::EcdsaP256),
                Err(Error::InvalidLabel(_))
            ),
            "{label:?}"
        );
        assert!(
            matches!(store.open(label), Err(Error::InvalidLabel(_))),
            "{label:?}"
        );
        assert!(
            matches!(
                store.import_pkcs8(label, &pkcs8),
                Err(Error::InvalidLabel(_))
            ),
            "{label:?}"
        );
    }
}

/// [`refuse_bad_labels`], and the edge cases of good labels work.
pub fn bad_labels_are_refused(store: &dyn KeyStore, _: &Expectations) {
    refuse_bad_labels(store);
    let max = "y".repeat(64);
    for label in ["a", "Z", "0", "ca-root_2025.v1", "a..b", "x.", max.as_str()] {
        store.generate(label, KeyAlgorithm::EcdsaP256).unwrap();
        store.open(label).unwrap();
    }
}

/// [`KeyStore::list`] returns every key, sorted by label, with its algorithm and SPKI.
pub fn list_returns_every_key_sorted(store: &dyn KeyStore, _: &Expectations) {
    assert!(store.list().unwrap().is_empty());
    let b = store
        .generate("b-issuing", KeyAlgorithm::EcdsaP384)
        .unwrap();
    let a = store.generate("a-root", KeyAlgorithm::EcdsaP256).unwrap();
    let list = store.list().unwrap();
    let labels: Vec<_> = list.iter().map(|k| k.label.as_str()).collect();
    assert_eq!(labels, ["a-root", "b-issuing"]);
    assert_eq!(list[0].algorithm, KeyAlgorithm::EcdsaP256);
    assert_eq!(list[0].public_key_der, a.public_key_der());
    assert_eq!(list[1].algorithm, KeyAlgorithm::EcdsaP384);
    assert_eq!(list[1].public_key_der, b.public_key_der());
}

/// Software keys (PKCS#8, RFC 5208) import: the same public key, they sign, the label is
/// then taken; a blob that is no key is [`Error::BadKey`].
pub fn pkcs8_keys_import(store: &dyn KeyStore, _: &Expectations) {
    for alg in [
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
    ] {
        let soft = crate::soft::generate_exportable(alg).unwrap();
        let label = format!("imported-{alg}");
        let key = store.import_pkcs8(&label, soft.pkcs8_der.expose()).unwrap();
        assert_eq!(key.algorithm(), alg);
        assert_eq!(key.public_key_der(), soft.spki_der.as_slice());
        let scheme = alg.default_scheme();
        let sig = key.sign(scheme, b"imported").unwrap();
        crate::verify(scheme, &soft.spki_der, b"imported", &sig).unwrap();
        assert!(matches!(
            store.import_pkcs8(&label, soft.pkcs8_der.expose()),
            Err(Error::Exists(_))
        ));
    }
    assert!(matches!(
        store.import_pkcs8("junk", b"not a key"),
        Err(Error::BadKey(_))
    ));
}

/// A signature does not verify with another key, an empty signature or a broken SPKI, and
/// a scheme of another curve does not fit.
pub fn verify_rejects_wrong_key_and_bad_input(store: &dyn KeyStore, _: &Expectations) {
    let k1 = store.generate("k1", KeyAlgorithm::EcdsaP256).unwrap();
    let k2 = store.generate("k2", KeyAlgorithm::EcdsaP256).unwrap();
    let s = SignatureScheme::EcdsaP256Sha256;
    let sig = k1.sign(s, b"m").unwrap();
    crate::verify(s, k1.public_key_der(), b"m", &sig).unwrap();
    assert!(matches!(
        crate::verify(s, k2.public_key_der(), b"m", &sig),
        Err(Error::BadSignature)
    ));
    assert!(matches!(
        crate::verify(s, k1.public_key_der(), b"m", b""),
        Err(Error::BadSignature)
    ));
    assert!(matches!(
        crate::verify(s, b"\x30\x00", b"m", &sig),
        Err(Error::BadKey(_))
    ));
    // P-384 scheme with a P-256 key does not fit.
    assert!(matches!(
        crate::verify(
            SignatureScheme::EcdsaP384Sha384,
            k1.public_key_der(),
            b"m",
            &sig
        ),
        Err(Error::Unsupported(_))
    ));
}
