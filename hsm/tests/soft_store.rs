//! Tests of the software key store through the crate's public API, with OpenSSL as an
//! independent check of what we write and sign.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use der::Decode;
use hsm::soft::{PBKDF2_ITERATIONS, SoftKeyStore};
use hsm::testing::keystore_suite::{self, Expectations};
use hsm::{Error, KeyAlgorithm, KeyStore, OaepHash, Secret, SignatureScheme};
use pkcs8::EncryptedPrivateKeyInfoRef;
use pkcs8::pkcs5::EncryptionScheme;
use pkcs8::pkcs5::pbes2::{self, Pbkdf2Prf};
use tempfile::TempDir;

const PASSPHRASE: &[u8] = b"correct horse battery staple";

fn new_store() -> (TempDir, SoftKeyStore) {
    let tmp = tempfile::tempdir().unwrap();
    let store =
        SoftKeyStore::open(tmp.path().join("keys"), Secret::new(PASSPHRASE.to_vec())).unwrap();
    (tmp, store)
}

/// Software keys: every algorithm, every OAEP hash; a key can do whatever its algorithm
/// can (no key use is enforced).
const SOFT: Expectations = Expectations {
    algorithms: &KeyAlgorithm::ALL,
    oaep_hashes: &[
        OaepHash::Sha1,
        OaepHash::Sha256,
        OaepHash::Sha384,
        OaepHash::Sha512,
    ],
    enforces_key_use: false,
};

fn run_case(_test: &str, case: keystore_suite::Case) {
    let (_tmp, store) = new_store();
    case(&store, &SOFT);
}

// The KeyStore contract (hsm::testing::keystore_suite), on a fresh key directory per case.
hsm::keystore_suite!(contract, super::run_case);

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Runs a command and returns its stdout; panics with stderr when it fails.
fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (is openssl installed?): {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn openssl() -> Command {
    Command::new("openssl")
}

/// Generates, writes one private encrypted key file, reopens it from disk, signs, lists.
fn roundtrip(algorithm: KeyAlgorithm) {
    let (_tmp, store) = new_store();
    let label = format!("test-{algorithm}");
    let key = store.generate(&label, algorithm).unwrap();
    assert_eq!(key.label(), label);
    assert_eq!(key.algorithm(), algorithm);

    // (The SPKI and signatures with every scheme: contract::every_algorithm_signs_and_verifies.)
    let spki_der = key.public_key_der().to_vec();
    let message = b"tbsCertificate stand-in";

    // The file on disk: mode 0600, encrypted PKCS#8 PEM, no temporary files left behind.
    let path = store.key_path(&label).unwrap();
    assert_eq!(mode_of(&path), 0o600);
    let pem = fs::read_to_string(&path).unwrap();
    assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
    let names: Vec<_> = fs::read_dir(store.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec![format!("{label}.key")]);

    // Reopen from disk (as a fresh store would) and sign again.
    drop(key);
    let store2 = SoftKeyStore::open(store.dir(), Secret::new(PASSPHRASE.to_vec())).unwrap();
    let key = store2.open(&label).unwrap();
    assert_eq!(key.algorithm(), algorithm);
    assert_eq!(key.public_key_der(), spki_der.as_slice());
    let scheme = algorithm.default_scheme();
    let sig = key.sign(scheme, message).unwrap();
    hsm::verify(scheme, &spki_der, message, &sig).unwrap();

    let listed = store2.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].label, label);
    assert_eq!(listed[0].algorithm, algorithm);
    assert_eq!(listed[0].public_key_der, spki_der);
}

#[test]
fn rsa2048_generate_sign_verify_reopen() {
    roundtrip(KeyAlgorithm::Rsa2048);
}

#[test]
fn rsa3072_generate_sign_verify_reopen() {
    roundtrip(KeyAlgorithm::Rsa3072);
}

#[test]
fn rsa4096_generate_sign_verify_reopen() {
    roundtrip(KeyAlgorithm::Rsa4096);
}

#[test]
fn ecdsa_p256_generate_sign_verify_reopen() {
    roundtrip(KeyAlgorithm::EcdsaP256);
}

#[test]
fn ecdsa_p384_generate_sign_verify_reopen() {
    roundtrip(KeyAlgorithm::EcdsaP384);
}

#[test]
fn key_file_uses_pbkdf2_sha256_aes256cbc() {
    let (_tmp, store) = new_store();
    store.generate("k", KeyAlgorithm::EcdsaP256).unwrap();
    let pem = fs::read_to_string(store.key_path("k").unwrap()).unwrap();
    let (label, doc) = der::Document::from_pem(&pem).unwrap();
    assert_eq!(label, "ENCRYPTED PRIVATE KEY");
    let epki = EncryptedPrivateKeyInfoRef::from_der(doc.as_bytes()).unwrap();
    let EncryptionScheme::Pbes2(params) = &epki.encryption_algorithm else {
        panic!("not PBES2: {:?}", epki.encryption_algorithm);
    };
    let pbkdf2 = params.kdf.pbkdf2().expect("PBKDF2");
    assert_eq!(pbkdf2.iteration_count, PBKDF2_ITERATIONS);
    assert_eq!(pbkdf2.prf, Pbkdf2Prf::HmacWithSha256);
    assert_eq!(pbkdf2.salt.as_ref().len(), 16);
    assert!(matches!(
        params.encryption,
        pbes2::EncryptionScheme::Aes256Cbc { .. }
    ));
}

/// Signatures verify with OpenSSL, key files decrypt with OpenSSL, and OpenSSL derives the
/// same public key from the file as the one we report.
#[test]
fn openssl_verifies_signatures_and_reads_key_files() {
    let (tmp, store) = new_store();
    let pass_file = tmp.path().join("pass");
    fs::write(&pass_file, PASSPHRASE).unwrap();
    let msg_file = tmp.path().join("msg");
    let message = b"signed by privca, checked by openssl";
    fs::write(&msg_file, message).unwrap();

    let cases: [(KeyAlgorithm, SignatureScheme, &str, &[&str]); 9] = [
        (
            KeyAlgorithm::Rsa2048,
            SignatureScheme::RsaPkcs1Sha256,
            "-sha256",
            &[],
        ),
        (
            KeyAlgorithm::Rsa2048,
            SignatureScheme::RsaPkcs1Sha384,
            "-sha384",
            &[],
        ),
        (
            KeyAlgorithm::Rsa2048,
            SignatureScheme::RsaPkcs1Sha512,
            "-sha512",
            &[],
        ),
        (
            KeyAlgorithm::Rsa2048,
            SignatureScheme::RsaPssSha256,
            "-sha256",
            &[
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:32",
            ],
        ),
        (
            KeyAlgorithm::Rsa2048,
            SignatureScheme::RsaPssSha384,
            "-sha384",
            &[
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:48",
            ],
        ),
        (
            KeyAlgorithm::Rsa2048,
            SignatureScheme::RsaPssSha512,
            "-sha512",
            &[
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:64",
            ],
        ),
        (
            KeyAlgorithm::Rsa3072,
            SignatureScheme::RsaPkcs1Sha256,
            "-sha256",
            &[],
        ),
        (
            KeyAlgorithm::EcdsaP256,
            SignatureScheme::EcdsaP256Sha256,
            "-sha256",
            &[],
        ),
        (
            KeyAlgorithm::EcdsaP384,
            SignatureScheme::EcdsaP384Sha384,
            "-sha384",
            &[],
        ),
    ];

    for (i, (algorithm, scheme, digest, sigopts)) in cases.into_iter().enumerate() {
        let label = format!("{algorithm}");
        let key = match store.open(&label) {
            Ok(k) => k,
            Err(Error::NotFound(_)) => store.generate(&label, algorithm).unwrap(),
            Err(e) => panic!("{e}"),
        };
        let key_file = store.key_path(&label).unwrap();

        // The encrypted PKCS#8 file is standard: OpenSSL decrypts it with the passphrase…
        let mut pass_arg = std::ffi::OsString::from("file:");
        pass_arg.push(&pass_file);
        run(openssl()
            .args(["pkey", "-noout", "-in"])
            .arg(&key_file)
            .arg("-passin")
            .arg(&pass_arg));
        // …and derives the same SubjectPublicKeyInfo from it that we built by hand.
        let openssl_spki = run(openssl()
            .args(["pkey", "-pubout", "-outform", "DER", "-in"])
            .arg(&key_file)
            .arg("-passin")
            .arg(&pass_arg));
        assert_eq!(openssl_spki, key.public_key_der(), "{algorithm}");

        let pub_pem =
            der::pem::encode_string("PUBLIC KEY", der::pem::LineEnding::LF, key.public_key_der())
                .unwrap();
        let pub_file = tmp.path().join(format!("pub{i}.pem"));
        fs::write(&pub_file, pub_pem).unwrap();
        let sig_file = tmp.path().join(format!("sig{i}"));
        fs::write(&sig_file, key.sign(scheme, message).unwrap()).unwrap();

        let out = run(openssl()
            .args(["dgst", digest])
            .args(sigopts)
            .arg("-verify")
            .arg(&pub_file)
            .arg("-signature")
            .arg(&sig_file)
            .arg(&msg_file));
        assert_eq!(
            String::from_utf8_lossy(&out).trim(),
            "Verified OK",
            "{scheme:?}"
        );
    }

    // A wrong passphrase is refused by OpenSSL too (the file really is encrypted).
    let wrong = tmp.path().join("wrong");
    fs::write(&wrong, b"not the passphrase").unwrap();
    let mut wrong_arg = std::ffi::OsString::from("file:");
    wrong_arg.push(&wrong);
    let status = openssl()
        .args(["pkey", "-noout", "-in"])
        .arg(store.key_path("ecdsa-p256").unwrap())
        .arg("-passin")
        .arg(&wrong_arg)
        .output()
        .unwrap()
        .status;
    assert!(!status.success());
}

#[test]
fn insecure_permissions_are_refused() {
    let (_tmp, store) = new_store();
    store.generate("ca", KeyAlgorithm::EcdsaP256).unwrap();
    let path = store.key_path("ca").unwrap();
    for mode in [0o644, 0o640, 0o604, 0o610, 0o601, 0o660] {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        match store.open("ca") {
            Err(Error::InsecurePermissions { path: p, mode: m }) => {
                assert_eq!(m, mode);
                assert_eq!(p, path.display().to_string());
            }
            other => panic!("mode {mode:o}: {other:?}"),
        }
        assert!(matches!(
            store.list(),
            Err(Error::InsecurePermissions { .. })
        ));
    }
    let msg = store.open("ca").unwrap_err().to_string();
    assert!(msg.contains("660") && msg.contains("chmod 600"), "{msg}");
    // Owner-only modes are fine (0400 is a reasonable hardening).
    for mode in [0o600, 0o400] {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        store.open("ca").unwrap();
    }
}

#[test]
fn wrong_passphrase_is_bad_key() {
    let (_tmp, store) = new_store();
    store.generate("ca", KeyAlgorithm::EcdsaP384).unwrap();
    let other = SoftKeyStore::open(store.dir(), Secret::new(b"wrong passphrase".to_vec())).unwrap();
    match other.open("ca") {
        Err(Error::BadKey(msg)) => {
            assert!(msg.contains("wrong passphrase"), "{msg}");
            assert!(msg.contains("ca.key"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(other.list(), Err(Error::BadKey(_))));
}

#[test]
fn empty_passphrase_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(matches!(
        SoftKeyStore::open(tmp.path(), Secret::new(Vec::new())),
        Err(Error::Secret(_))
    ));
}

#[test]
fn corrupt_key_file_is_bad_key() {
    let (_tmp, store) = new_store();
    store.generate("ca", KeyAlgorithm::EcdsaP256).unwrap();
    let path = store.key_path("ca").unwrap();

    fs::write(&path, "not a key").unwrap();
    assert!(matches!(store.open("ca"), Err(Error::BadKey(_))));

    // An unencrypted PKCS#8 PEM is refused: key files must be encrypted.
    let plain = aws_lc_rs::signature::EcdsaKeyPair::generate(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
    )
    .unwrap()
    .to_pkcs8v1()
    .unwrap();
    let pem =
        der::pem::encode_string("PRIVATE KEY", der::pem::LineEnding::LF, plain.as_ref()).unwrap();
    fs::write(&path, pem).unwrap();
    match store.open("ca") {
        Err(Error::BadKey(msg)) => assert!(msg.contains("ENCRYPTED PRIVATE KEY"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn duplicate_label_is_exists() {
    let (_tmp, store) = new_store();
    let key = store.generate("ca", KeyAlgorithm::EcdsaP256).unwrap();
    let before = fs::read(store.key_path("ca").unwrap()).unwrap();
    assert!(matches!(
        store.generate("ca", KeyAlgorithm::EcdsaP256),
        Err(Error::Exists(l)) if l == "ca"
    ));
    assert!(matches!(
        store.generate("ca", KeyAlgorithm::Rsa2048),
        Err(Error::Exists(_))
    ));
    let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
    )
    .unwrap()
    .to_pkcs8v1()
    .unwrap();
    assert!(matches!(
        store.import_pkcs8("ca", pkcs8.as_ref()),
        Err(Error::Exists(_))
    ));
    // The original key is untouched.
    assert_eq!(fs::read(store.key_path("ca").unwrap()).unwrap(), before);
    assert_eq!(
        store.open("ca").unwrap().public_key_der(),
        key.public_key_der()
    );
}

/// Concurrent creation of one label: exactly one winner, the file is the winner's key.
#[test]
fn concurrent_generate_same_label_has_one_winner() {
    let (_tmp, store) = new_store();
    let store = Arc::new(store);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || store.generate("race", KeyAlgorithm::EcdsaP256))
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, Error::Exists(_)), "{e}");
        }
    }
    assert_eq!(
        store.open("race").unwrap().public_key_der(),
        winners[0].public_key_der()
    );
    let names: Vec<_> = fs::read_dir(store.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "temporary files left: {names:?}");
}

/// Bad labels are refused before anything touches the disk (the refusals themselves:
/// contract::bad_labels_are_refused).
#[test]
fn bad_labels_are_refused() {
    let (tmp, store) = new_store();
    keystore_suite::refuse_bad_labels(&store);
    for label in keystore_suite::bad_labels() {
        assert!(matches!(
            store.key_path(&label),
            Err(Error::InvalidLabel(_))
        ));
    }
    // Nothing was written anywhere.
    assert_eq!(fs::read_dir(store.dir()).unwrap().count(), 0);
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1); // just "keys"
}

#[test]
fn store_creates_private_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b/keys");
    let store = SoftKeyStore::open(&dir, Secret::new(PASSPHRASE.to_vec())).unwrap();
    assert_eq!(store.dir(), dir);
    assert_eq!(mode_of(&dir), 0o700);
    // Opening an existing directory leaves it alone.
    SoftKeyStore::open(&dir, Secret::new(PASSPHRASE.to_vec())).unwrap();
    // A file is not a key directory.
    let file = tmp.path().join("file");
    fs::write(&file, b"").unwrap();
    assert!(matches!(
        SoftKeyStore::open(&file, Secret::new(PASSPHRASE.to_vec())),
        Err(Error::Io { .. })
    ));
}

#[test]
fn list_returns_every_key_sorted() {
    let (_tmp, store) = new_store();
    assert!(store.list().unwrap().is_empty());
    let b = store
        .generate("b-issuing", KeyAlgorithm::EcdsaP384)
        .unwrap();
    let a = store.generate("a-root", KeyAlgorithm::EcdsaP256).unwrap();
    // Stray files are ignored.
    fs::write(store.dir().join("README"), b"hello").unwrap();
    fs::write(
        store.dir().join(".a-root.key.tmp-0011223344556677"),
        b"partial",
    )
    .unwrap();
    let list = store.list().unwrap();
    let labels: Vec<_> = list.iter().map(|k| k.label.as_str()).collect();
    assert_eq!(labels, ["a-root", "b-issuing"]);
    assert_eq!(list[0].algorithm, KeyAlgorithm::EcdsaP256);
    assert_eq!(list[0].public_key_der, a.public_key_der());
    assert_eq!(list[1].algorithm, KeyAlgorithm::EcdsaP384);
    assert_eq!(list[1].public_key_der, b.public_key_der());
}

/// Generates a key with `openssl genpkey` and returns it as unencrypted PKCS#8 DER.
///
/// OpenSSL 3.0's `genpkey -outform DER` writes EC keys in the traditional SEC1 format, not
/// PKCS#8, so the PEM output (always PKCS#8) is converted with `openssl pkcs8 -topk8`.
fn openssl_genpkey(dir: &Path, name: &str, args: &[&str]) -> Vec<u8> {
    let pem = dir.join(format!("{name}.pem"));
    let out = dir.join(name);
    run(openssl().arg("genpkey").args(args).arg("-out").arg(&pem));
    run(openssl()
        .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"])
        .arg(&pem)
        .arg("-out")
        .arg(&out));
    fs::read(out).unwrap()
}

fn openssl_spki(dir: &Path, pkcs8_der: &[u8]) -> Vec<u8> {
    let inp = dir.join("spki-in.der");
    fs::write(&inp, pkcs8_der).unwrap();
    run(openssl()
        .args([
            "pkey", "-inform", "DER", "-pubout", "-outform", "DER", "-in",
        ])
        .arg(&inp))
}

#[test]
fn import_openssl_generated_keys() {
    let (tmp, store) = new_store();
    let dir = tmp.path();

    let ec = openssl_genpkey(
        dir,
        "p256.der",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    let key = store.import_pkcs8("imported-p256", &ec).unwrap();
    assert_eq!(key.algorithm(), KeyAlgorithm::EcdsaP256);
    assert_eq!(key.public_key_der(), openssl_spki(dir, &ec));
    let sig = key.sign(SignatureScheme::EcdsaP256Sha256, b"m").unwrap();
    hsm::verify(
        SignatureScheme::EcdsaP256Sha256,
        key.public_key_der(),
        b"m",
        &sig,
    )
    .unwrap();
    // Stored encrypted, reopens.
    assert_eq!(mode_of(&store.key_path("imported-p256").unwrap()), 0o600);
    let pem = fs::read_to_string(store.key_path("imported-p256").unwrap()).unwrap();
    assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    let reopened = store.open("imported-p256").unwrap();
    assert_eq!(reopened.public_key_der(), key.public_key_der());

    let ec384 = openssl_genpkey(
        dir,
        "p384.der",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
    );
    let key = store.import_pkcs8("imported-p384", &ec384).unwrap();
    assert_eq!(key.algorithm(), KeyAlgorithm::EcdsaP384);
    assert_eq!(key.public_key_der(), openssl_spki(dir, &ec384));

    let rsa = openssl_genpkey(
        dir,
        "rsa.der",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    );
    let key = store.import_pkcs8("imported-rsa", &rsa).unwrap();
    assert_eq!(key.algorithm(), KeyAlgorithm::Rsa2048);
    assert_eq!(key.public_key_der(), openssl_spki(dir, &rsa));
    let sig = key.sign(SignatureScheme::RsaPssSha256, b"m").unwrap();
    hsm::verify(
        SignatureScheme::RsaPssSha256,
        key.public_key_der(),
        b"m",
        &sig,
    )
    .unwrap();

    // Unsupported keys are refused and nothing is stored.
    let odd = openssl_genpkey(
        dir,
        "rsa2056.der",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2056"],
    );
    match store.import_pkcs8("odd", &odd) {
        Err(Error::Unsupported(msg)) => assert!(msg.contains("2056"), "{msg}"),
        other => panic!("{other:?}"),
    }
    let small = openssl_genpkey(
        dir,
        "rsa1024.der",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
    );
    assert!(matches!(
        store.import_pkcs8("small", &small),
        Err(Error::Unsupported(_))
    ));
    let p521 = openssl_genpkey(
        dir,
        "p521.der",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"],
    );
    assert!(matches!(
        store.import_pkcs8("p521", &p521),
        Err(Error::Unsupported(_))
    ));
    let ed = openssl_genpkey(dir, "ed25519.der", &["-algorithm", "ED25519"]);
    assert!(matches!(
        store.import_pkcs8("ed", &ed),
        Err(Error::Unsupported(_))
    ));
    assert!(matches!(
        store.import_pkcs8("junk", b"\x30\x03\x02\x01\x00"),
        Err(Error::BadKey(_))
    ));
    assert!(matches!(
        store.import_pkcs8("junk", b""),
        Err(Error::BadKey(_))
    ));
    for label in ["odd", "small", "p521", "ed", "junk"] {
        assert!(matches!(store.open(label), Err(Error::NotFound(_))));
    }

    // `openssl genpkey -outform DER` gives SEC1 for EC keys: refused with a conversion hint.
    let sec1 = dir.join("sec1.der");
    run(openssl()
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-outform", "DER", "-out"])
        .arg(&sec1));
    match store.import_pkcs8("sec1", &fs::read(&sec1).unwrap()) {
        Err(Error::BadKey(msg)) => assert!(msg.contains("SEC1") && msg.contains("-topk8"), "{msg}"),
        other => panic!("{other:?}"),
    }

    // The public-key helpers on OpenSSL-made SPKIs.
    let odd_spki = openssl_spki(dir, &odd);
    assert_eq!(hsm::rsa_modulus_bits(&odd_spki).unwrap(), 2056);
    match hsm::spki_algorithm(&odd_spki) {
        Err(Error::Unsupported(msg)) => assert!(msg.contains("2056"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        hsm::rsa_modulus_bits(&openssl_spki(dir, &small)).unwrap(),
        1024
    );
    assert!(matches!(
        hsm::spki_algorithm(&openssl_spki(dir, &p521)),
        Err(Error::Unsupported(_))
    ));
    assert!(matches!(
        hsm::spki_algorithm(&openssl_spki(dir, &ed)),
        Err(Error::Unsupported(_))
    ));
    assert!(matches!(
        hsm::spki_algorithm(b"garbage"),
        Err(Error::BadKey(_))
    ));
}

#[test]
fn debug_output_has_no_key_material() {
    let (_tmp, store) = new_store();
    let key = store.generate("debug-me", KeyAlgorithm::Rsa2048).unwrap();
    let shown = format!("{key:?}");
    assert!(
        shown.contains("debug-me") && shown.contains("Rsa2048"),
        "{shown}"
    );
    assert!(shown.len() < 100, "{shown}");
    let shown = format!("{store:?}");
    assert!(!shown.contains("horse"), "{shown}");
}

/// Not a timing assertion (tests never assert on speed); run with `--ignored --nocapture`
/// to see how long opening a key takes on this machine.
#[test]
#[ignore]
fn measure_open_time() {
    let (_tmp, store) = new_store();
    store.generate("t", KeyAlgorithm::EcdsaP256).unwrap();
    store.generate("r", KeyAlgorithm::Rsa4096).unwrap();
    for label in ["t", "r"] {
        for _ in 0..3 {
            let start = std::time::Instant::now();
            store.open(label).unwrap();
            eprintln!("open {label}: {:?}", start.elapsed());
        }
    }
}

/// Key files encrypted by OpenSSL itself (its default PBKDF2 parameters, and scrypt) load,
/// so an operator can place a key made with standard tools into the store.
#[test]
fn openssl_encrypted_key_files_load() {
    let (tmp, store) = new_store();
    let dir = tmp.path();
    let pass_file = dir.join("pass");
    fs::write(&pass_file, PASSPHRASE).unwrap();
    let mut pass_arg = std::ffi::OsString::from("file:");
    pass_arg.push(&pass_file);
    let plain = dir.join("plain.pem");
    run(openssl()
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
        ])
        .arg(&plain));

    for (label, extra) in [
        ("openssl-pbkdf2", &["-v2", "aes-256-cbc"][..]),
        ("openssl-scrypt", &["-scrypt"][..]),
    ] {
        let path = store.dir().join(format!("{label}.key"));
        run(openssl()
            .args(["pkcs8", "-topk8"])
            .args(extra)
            .arg("-in")
            .arg(&plain)
            .arg("-passout")
            .arg(&pass_arg)
            .arg("-out")
            .arg(&path));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let key = store.open(label).unwrap();
        assert_eq!(key.algorithm(), KeyAlgorithm::EcdsaP384, "{label}");
        let sig = key.sign(SignatureScheme::EcdsaP384Sha384, b"m").unwrap();
        hsm::verify(
            SignatureScheme::EcdsaP384Sha384,
            key.public_key_der(),
            b"m",
            &sig,
        )
        .unwrap();
    }
}

#[test]
fn exportable_keys_round_trip_through_pkcs8() {
    for alg in [hsm::KeyAlgorithm::EcdsaP256, hsm::KeyAlgorithm::Rsa2048] {
        let k = hsm::soft::generate_exportable(alg).expect("generate");
        assert_eq!(k.algorithm, alg);
        let again = hsm::soft::SoftKey::from_pkcs8("x", k.pkcs8_der.expose()).expect("loads");
        assert_eq!(
            hsm::PrivateKey::public_key_der(&again),
            k.spki_der.as_slice()
        );
        assert!(
            !format!("{k:?}").contains("pkcs8"),
            "Debug must not print the key"
        );
    }
}
