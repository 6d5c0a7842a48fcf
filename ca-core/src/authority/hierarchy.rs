//! The CA hierarchy: each CA's certificate and key (checked to match), its parent, its
//! delegated OCSP responder and SCEP RA; loading them from configuration, checking that
//! each subordinate is signed by its parent, and the chain above a CA.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use hsm::{KeyStore, PrivateKey, SignatureScheme};
use sha1::Digest as _;
use spki::SubjectPublicKeyInfoRef;
use store::Store;
use x509_cert::Certificate;
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::name::Name;

use super::{Authority, Settings};
use crate::asn1::{self, oid};
use crate::clock::Clock;
use crate::config::{CaConfig, ProfileConfig};
use crate::lint::IssuerFacts;
use crate::profile::Profile;
use crate::{Error, Result};

/// A key with the certificate that names it (OCSP responder, SCEP RA).
#[derive(Clone, Debug)]
pub struct KeyWithCert {
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The private key.
    pub key: Arc<dyn PrivateKey>,
}

/// A [`KeyWithCert`] that privca renews while it runs (the OCSP responder and the SCEP
/// RA, issue 15 item 5): readers take the current generation; a renewal replaces it, and
/// the replaced one stays as the previous generation so that SCEP clients that fetched
/// the old RA certificate can still be answered (RFC 8894 §2.1.2: the client encrypts
/// to the certificate it got from GetCACert) until the next renewal. Clones share the
/// same generations.
#[derive(Clone, Debug)]
pub struct Renewable {
    inner: Arc<std::sync::RwLock<Arc<Generations>>>,
}

/// The current and the previous key of a [`Renewable`].
#[derive(Debug)]
pub struct Generations {
    /// The one in use: it signs, and it is what is announced.
    pub current: KeyWithCert,
    /// The one it replaced in this process, if any (decrypts during the overlap).
    pub previous: Option<KeyWithCert>,
}

impl Renewable {
    /// One generation.
    pub fn new(current: KeyWithCert) -> Renewable {
        Renewable {
            inner: Arc::new(std::sync::RwLock::new(Arc::new(Generations {
                current,
                previous: None,
            }))),
        }
    }

    /// The current and previous generation, as one consistent snapshot.
    pub fn generations(&self) -> Arc<Generations> {
        match self.inner.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The current generation.
    pub fn current(&self) -> KeyWithCert {
        self.generations().current.clone()
    }

    /// Makes `next` current; the current one becomes the previous.
    pub fn replace(&self, next: KeyWithCert) {
        let mut g = match self.inner.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let previous = Some(g.current.clone());
        *g = Arc::new(Generations {
            current: next,
            previous,
        });
    }
}

impl From<KeyWithCert> for Renewable {
    fn from(k: KeyWithCert) -> Renewable {
        Renewable::new(k)
    }
}

/// The line above the PEM block of a certificate file that names the key-store label of
/// the certificate's key, written by the renewal of privca's own certificates (issue 15
/// item 5) so that the certificate and the name of its new key change in one atomic file
/// replacement; the configuration keeps its label. RFC 7468 §2 lets text precede the
/// encapsulation boundary, and OpenSSL skips it.
pub const KEY_LABEL_LINE: &str = "privca key: ";

/// The key label a certificate file names ([`KEY_LABEL_LINE`]), if any.
pub fn cert_file_key_label(bytes: &[u8]) -> Option<String> {
    let head = &bytes[..pem_start(bytes)?];
    let text = std::str::from_utf8(head).ok()?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(KEY_LABEL_LINE.trim_end()))
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

/// One certificate authority of the hierarchy.
#[derive(Debug)]
pub struct CaEntity {
    /// Its name (URLs, records).
    pub name: String,
    /// Its certificate, DER.
    pub cert_der: Vec<u8>,
    /// Its subject.
    pub subject: Name,
    /// Its SubjectPublicKeyInfo, DER.
    pub spki_der: Vec<u8>,
    /// Its key identifier (subjectKeyIdentifier of its certificate, or computed).
    pub key_id: Vec<u8>,
    /// Its key.
    pub key: Arc<dyn PrivateKey>,
    /// The scheme it signs with.
    pub scheme: SignatureScheme,
    /// notBefore.
    pub not_before: i64,
    /// notAfter.
    pub not_after: i64,
    /// Parent CA name; `None` for a root.
    pub parent: Option<String>,
    /// Delegated OCSP responder (renewed while the server runs).
    pub ocsp: Option<Renewable>,
    /// SCEP RA (renewed while the server runs).
    pub ra: Option<Renewable>,
}

impl CaEntity {
    /// A CA from its certificate and key. Checks that they match and that the signature
    /// scheme fits the key.
    pub fn new(
        name: &str,
        cert_der: Vec<u8>,
        key: Arc<dyn PrivateKey>,
        parent: Option<String>,
        scheme: Option<SignatureScheme>,
    ) -> Result<CaEntity> {
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(Error::Config(format!(
                "authority name {name:?} may only contain letters, digits, - and _"
            )));
        }
        let facts = cert_facts(&cert_der)?;
        if facts.spki_der != key.public_key_der() {
            return Err(Error::Config(format!(
                "authority {name}: its certificate does not match key {:?}",
                key.label()
            )));
        }
        let scheme = scheme.unwrap_or_else(|| key.algorithm().default_scheme());
        if !scheme.fits(key.algorithm()) {
            return Err(Error::Config(format!(
                "authority {name}: signature {scheme:?} does not fit a {} key",
                key.algorithm()
            )));
        }
        Ok(CaEntity {
            name: name.to_string(),
            cert_der,
            subject: facts.subject,
            spki_der: facts.spki_der,
            key_id: facts.key_id,
            key,
            scheme,
            not_before: facts.not_before,
            not_after: facts.not_after,
            parent,
            ocsp: None,
            ra: None,
        })
    }

    pub(crate) fn facts(&self) -> IssuerFacts<'_> {
        IssuerFacts {
            not_before: self.not_before,
            not_after: self.not_after,
            key_id: &self.key_id,
        }
    }
}

/// Reads a certificate file, PEM or DER.
pub fn read_cert_file(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::Config(format!("reading {}: {e}", path.display())))?;
    cert_der_from_bytes(&bytes).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

/// Reads every certificate of a PEM bundle (or a single DER certificate) file: EST's
/// client CA and RA files, the TLS listener's chain. Each certificate is checked to decode;
/// every failure names the file.
pub fn read_cert_bundle(path: &Path) -> Result<Vec<Vec<u8>>> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::Config(format!("reading {}: {e}", path.display())))?;
    // Every failure names the file (an empty file, say, is otherwise "certificate: …").
    if bytes.trim_ascii().is_empty() {
        return Err(Error::Config(format!(
            "{} is empty; it must hold one or more PEM certificates",
            path.display()
        )));
    }
    // PEM, possibly after explanatory text (RFC 7468 §2; [`KEY_LABEL_LINE`]), or DER.
    if !bytes.trim_ascii_start().starts_with(b"-----BEGIN") && pem_start(&bytes).is_none() {
        return Ok(vec![cert_der_from_bytes(&bytes).map_err(|e| {
            Error::Config(format!(
                "{}: neither PEM nor a DER certificate: {}",
                path.display(),
                e.client_message()
            ))
        })?]);
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut out = Vec::new();
    for block in text.split_inclusive("-----END CERTIFICATE-----") {
        let Some(start) = block.find("-----BEGIN CERTIFICATE-----") else {
            continue;
        };
        out.push(
            cert_der_from_bytes(&block.as_bytes()[start..])
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?,
        );
    }
    if out.is_empty() {
        return Err(Error::Config(format!(
            "{} holds no certificate",
            path.display()
        )));
    }
    Ok(out)
}

/// A certificate from PEM or DER bytes, as DER (checked to decode).
pub fn cert_der_from_bytes(bytes: &[u8]) -> Result<Vec<u8>> {
    // Explanatory text before the PEM block (RFC 7468 §2; [`KEY_LABEL_LINE`]) is skipped.
    let bytes = match pem_start(bytes) {
        Some(i) => &bytes[i..],
        None => bytes,
    };
    let der = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        let (label, der) = der::pem::decode_vec(bytes.trim_ascii())
            .map_err(|e| Error::BadRequest(format!("PEM: {e}")))?;
        if label != "CERTIFICATE" {
            return Err(Error::BadRequest(format!(
                "expected a CERTIFICATE, found {label}"
            )));
        }
        der
    } else {
        bytes.to_vec()
    };
    Certificate::from_der(&der).map_err(|e| Error::BadRequest(format!("certificate: {e}")))?;
    Ok(der)
}

/// Where the first PEM boundary starts when text lines precede it; `None` for DER or a
/// file that starts with the boundary.
fn pem_start(bytes: &[u8]) -> Option<usize> {
    if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        return None;
    }
    let head = &bytes[..bytes.len().min(4096)];
    let i = head.windows(11).position(|w| w == b"\n-----BEGIN")?;
    // Only text may precede it: a DER certificate is not touched.
    std::str::from_utf8(&head[..i]).ok()?;
    Some(i + 1)
}

/// Facts read from a certificate.
pub(crate) struct CertFacts {
    pub subject: Name,
    pub issuer: Name,
    pub spki_der: Vec<u8>,
    pub key_id: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    pub tbs_der: Vec<u8>,
    pub signature: Vec<u8>,
    pub sig_alg: spki::AlgorithmIdentifierOwned,
}

pub(crate) fn cert_facts(der_bytes: &[u8]) -> Result<CertFacts> {
    let cert = Certificate::from_der(der_bytes)
        .map_err(|e| Error::BadRequest(format!("certificate: {e}")))?;
    let tbs = cert.tbs_certificate();
    let spki_der = tbs.subject_public_key_info().to_der()?;
    let key_id = match tbs.get_extension::<SubjectKeyIdentifier>() {
        Ok(Some((_, ski))) => ski.0.as_bytes().to_vec(),
        _ => asn1::key_identifier(&spki_der)?,
    };
    let outer = asn1::SignedObject::from_der(der_bytes)
        .map_err(|e| Error::BadRequest(format!("certificate: {e}")))?;
    Ok(CertFacts {
        subject: tbs.subject().clone(),
        issuer: tbs.issuer().clone(),
        spki_der,
        key_id,
        not_before: asn1::unix_of(&tbs.validity().not_before),
        not_after: asn1::unix_of(&tbs.validity().not_after),
        tbs_der: outer.tbs.to_der()?,
        signature: cert.signature().raw_bytes().to_vec(),
        sig_alg: cert.signature_algorithm().clone(),
    })
}

/// How [`Authority::load_with`] gets the key of a label, given the DER certificate it
/// belongs to.
type OpenKey<'a> = dyn Fn(&str, &[u8]) -> Result<Arc<dyn PrivateKey>> + 'a;

fn load_key_with_cert(
    open: &OpenKey<'_>,
    data_dir: &Path,
    cert: &Option<std::path::PathBuf>,
    key: &Option<String>,
    what: &str,
    ca: &str,
) -> Result<Option<Renewable>> {
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(c), Some(k)) => {
            let path = data_dir.join(c);
            let bytes = std::fs::read(&path)
                .map_err(|e| Error::Config(format!("reading {}: {e}", path.display())))?;
            let cert_der = cert_der_from_bytes(&bytes)
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
            // A renewed certificate names its own key; the configured label otherwise.
            let k = &cert_file_key_label(&bytes).unwrap_or_else(|| k.clone());
            let key = open(k, &cert_der)?;
            if cert_facts(&cert_der)?.spki_der != key.public_key_der() {
                return Err(Error::Config(format!(
                    "authority {ca}: the {what} certificate does not match key {k:?}"
                )));
            }
            Ok(Some(KeyWithCert { cert_der, key }.into()))
        }
        _ => Err(Error::Config(format!(
            "authority {ca}: {what} certificate and key must be given together"
        ))),
    }
}

/// The issuer index OCSP answers from: precomputed CertID hashes for each CA, SHA-1 and SHA-256 (RFC 6960 §4.1.1,
/// RFC 9919 §2.2.1 recommends SHA-256; SHA-1 remains common).
#[derive(Debug, Default)]
pub struct IssuerIndex {
    entries: Vec<(ObjectIdentifier, Vec<u8>, Vec<u8>, String)>,
}

impl IssuerIndex {
    pub(crate) fn build(cas: &BTreeMap<String, Arc<CaEntity>>) -> Result<IssuerIndex> {
        let mut entries = Vec::new();
        for ca in cas.values() {
            let name_der = ca.subject.to_der()?;
            let spki = SubjectPublicKeyInfoRef::from_der(&ca.spki_der)
                .map_err(|e| Error::Internal(format!("CA key: {e}")))?;
            let key = spki.subject_public_key.raw_bytes();
            entries.push((
                oid::SHA1,
                sha1::Sha1::digest(&name_der).to_vec(),
                sha1::Sha1::digest(key).to_vec(),
                ca.name.clone(),
            ));
            entries.push((
                oid::SHA256,
                sha2::Sha256::digest(&name_der).to_vec(),
                sha2::Sha256::digest(key).to_vec(),
                ca.name.clone(),
            ));
        }
        Ok(IssuerIndex { entries })
    }

    /// The CA whose name and key hash to these values under hash algorithm `alg`.
    pub(crate) fn find(
        &self,
        alg: &ObjectIdentifier,
        name_hash: &[u8],
        key_hash: &[u8],
    ) -> Option<&str> {
        self.entries
            .iter()
            .find(|(a, n, k, _)| a == alg && n.as_slice() == name_hash && k.as_slice() == key_hash)
            .map(|(_, _, _, name)| name.as_str())
    }
}

impl Authority {
    /// Builds the authority from configuration: loads every CA certificate and key,
    /// checks that keys match certificates and that each subordinate is signed by its
    /// parent, and validates the profiles.
    pub fn load(
        config: &CaConfig,
        profiles: &BTreeMap<String, ProfileConfig>,
        data_dir: &Path,
        keys: &dyn KeyStore,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Authority> {
        let open = |label: &str, _cert_der: &[u8]| Ok(keys.open(label)?);
        Authority::load_with(config, profiles, data_dir, &open, store, clock)
    }

    /// [`Authority::load`], but no key is opened (for software keys: decrypted) until
    /// its first private-key operation ([`hsm::DeferredKey`]): each key's public key is
    /// taken from its certificate, and the key must match it when it is opened. For
    /// offline commands that may not sign at all (`privca show`, `list`); a wrong key
    /// passphrase is then reported by the operation that needs the key. `privca serve`
    /// and `privca config check` use [`Authority::load`], so that it is found at start.
    pub fn load_deferred(
        config: &CaConfig,
        profiles: &BTreeMap<String, ProfileConfig>,
        data_dir: &Path,
        keys: Arc<dyn KeyStore>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Authority> {
        let open = |label: &str, cert_der: &[u8]| -> Result<Arc<dyn PrivateKey>> {
            let spki = cert_facts(cert_der)?.spki_der;
            Ok(Arc::new(hsm::DeferredKey::new(keys.clone(), label, &spki)?))
        };
        Authority::load_with(config, profiles, data_dir, &open, store, clock)
    }

    /// The body of [`Authority::load`] and [`Authority::load_deferred`]: `open` gives
    /// the key of a label, given the certificate it belongs to.
    fn load_with(
        config: &CaConfig,
        profiles: &BTreeMap<String, ProfileConfig>,
        data_dir: &Path,
        open: &OpenKey<'_>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Authority> {
        let mut entities = Vec::new();
        for ac in &config.authorities {
            let cert_der = read_cert_file(&data_dir.join(&ac.certificate))?;
            let key = open(&ac.key, &cert_der)?;
            let ocsp = load_key_with_cert(
                open,
                data_dir,
                &ac.ocsp_certificate,
                &ac.ocsp_key,
                "OCSP",
                &ac.name,
            )?;
            let ra = load_key_with_cert(
                open,
                data_dir,
                &ac.ra_certificate,
                &ac.ra_key,
                "RA",
                &ac.name,
            )?;
            let mut e = CaEntity::new(&ac.name, cert_der, key, ac.parent.clone(), ac.signature)?;
            e.ocsp = ocsp;
            e.ra = ra;
            entities.push(e);
        }
        let auth = Authority::from_parts(
            entities,
            profiles,
            Settings::from_config(config),
            store,
            clock,
        )?;
        auth.set_ocsp_cache_entries(config.ocsp_cache_entries);
        Ok(auth)
    }

    /// Builds the authority from loaded CAs (parents before children). Checks that each
    /// subordinate names its parent as issuer and is signed by it, that a root is
    /// self-signed, and validates the profiles against the CAs.
    pub fn from_parts(
        entities: Vec<CaEntity>,
        profiles: &BTreeMap<String, ProfileConfig>,
        settings: Settings,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Authority> {
        let mut cas: BTreeMap<String, Arc<CaEntity>> = BTreeMap::new();
        for e in entities {
            if cas.contains_key(&e.name) {
                return Err(Error::Config(format!(
                    "authority {} is defined twice",
                    e.name
                )));
            }
            let facts = cert_facts(&e.cert_der)?;
            let verify_spki = match &e.parent {
                Some(p) => {
                    let parent = cas.get(p).ok_or_else(|| {
                        Error::Config(format!(
                            "authority {}: parent {p} is not defined before it",
                            e.name
                        ))
                    })?;
                    if parent.subject != facts.issuer {
                        return Err(Error::Config(format!(
                            "authority {}: its issuer name is not the subject of {p}",
                            e.name
                        )));
                    }
                    parent.spki_der.clone()
                }
                None => facts.spki_der.clone(),
            };
            verify_cert_signature(&facts, &verify_spki).map_err(|_| {
                Error::Config(format!(
                    "authority {}: certificate signature does not verify with its {}",
                    e.name,
                    if e.parent.is_some() {
                        "parent's key"
                    } else {
                        "own key (a root must be self-signed)"
                    }
                ))
            })?;
            cas.insert(e.name.clone(), Arc::new(e));
        }
        if !cas.contains_key(&settings.default_issuer) {
            return Err(Error::Config(format!(
                "default_issuer {} is not a configured authority",
                settings.default_issuer
            )));
        }
        let profiles = Profile::load_all(profiles, &settings.default_issuer)?;
        for p in profiles.values() {
            if !cas.contains_key(&p.issuer) {
                return Err(Error::Config(format!(
                    "profile {}: issuer {} is not a configured authority",
                    p.name, p.issuer
                )));
            }
        }
        let crl_locks = cas.keys().map(|k| (k.clone(), Mutex::new(()))).collect();
        let ocsp_index = IssuerIndex::build(&cas)?;
        Ok(Authority {
            cas,
            profiles,
            store,
            clock,
            settings,
            crl_locks,
            lease_holder: format!("{:016x}", rand::random::<u64>()),
            approvals: Mutex::new(()),
            ocsp_index,
            ocsp_cache: crate::ocsp::OcspCache::default(),
            refusals: crate::refusals::RefusalCounter::default(),
            key_generator: std::sync::OnceLock::new(),
            observer: std::sync::OnceLock::new(),
        })
    }

    /// The chain above a CA, that CA first, root last (DER).
    pub fn chain(&self, ca: &str) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut cur = Some(ca.to_string());
        while let Some(name) = cur {
            let e = self.ca(&name)?;
            out.push(e.cert_der.clone());
            cur = e.parent.clone();
            if out.len() > 8 {
                return Err(Error::Config("CA hierarchy has a loop".into()));
            }
        }
        Ok(out)
    }
}

pub(crate) fn verify_cert_signature(facts: &CertFacts, issuer_spki: &[u8]) -> Result<()> {
    let alg_ref = spki::AlgorithmIdentifierRef {
        oid: facts.sig_alg.oid,
        parameters: facts.sig_alg.parameters.as_ref().map(der::AnyRef::from),
    };
    let received = asn1::received_algorithm(&alg_ref).ok_or_else(|| {
        Error::UnsupportedAlgorithm(format!(
            "signature algorithm {} is not supported",
            facts.sig_alg.oid
        ))
    })?;
    hsm::verify_received(received, issuer_spki, &facts.tbs_der, &facts.signature)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_with_cert(cn: &str) -> KeyWithCert {
        let key: Arc<dyn PrivateKey> = Arc::new(
            hsm::soft::SoftKey::generate_ephemeral(cn, hsm::KeyAlgorithm::EcdsaP256).expect("key"),
        );
        KeyWithCert {
            cert_der: cn.as_bytes().to_vec(),
            key,
        }
    }

    #[test]
    fn a_renewal_keeps_the_replaced_generation_as_previous() {
        let r = Renewable::new(key_with_cert("one"));
        let shared = r.clone();
        assert!(r.generations().previous.is_none());
        shared.replace(key_with_cert("two"));
        let g = r.generations();
        assert_eq!(g.current.cert_der, b"two");
        assert_eq!(
            g.previous.as_ref().map(|p| p.cert_der.clone()),
            Some(b"one".to_vec())
        );
        r.replace(key_with_cert("three"));
        let g = shared.generations();
        assert_eq!(g.current.cert_der, b"three");
        assert_eq!(
            g.previous.as_ref().map(|p| p.cert_der.clone()),
            Some(b"two".to_vec())
        );
    }

    #[test]
    fn a_certificate_file_may_name_its_key_above_the_pem_block() {
        let ca = crate::testing::TestCa::builder().build();
        let der = ca.root_der.clone();
        let pem =
            der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, &der).expect("pem");
        let named = format!("{KEY_LABEL_LINE}issuing-ocsp.1796324622\n{pem}");
        assert_eq!(
            cert_file_key_label(named.as_bytes()).as_deref(),
            Some("issuing-ocsp.1796324622")
        );
        assert_eq!(cert_der_from_bytes(named.as_bytes()).expect("named"), der);
        // Plain PEM and DER name nothing and read as before.
        assert_eq!(cert_file_key_label(pem.as_bytes()), None);
        assert_eq!(cert_file_key_label(&der), None);
        assert_eq!(cert_der_from_bytes(&der).expect("der"), der);
        // A bundle after the label line: every certificate is read.
        let dir = tempfile::tempdir().expect("dir");
        let p = dir.path().join("chain.crt");
        std::fs::write(&p, format!("{named}{pem}")).expect("write");
        assert_eq!(
            read_cert_bundle(&p).expect("bundle"),
            vec![der.clone(), der]
        );
        // Text that is not a label line names nothing.
        assert_eq!(
            cert_file_key_label(format!("Subject: x\n{pem}").as_bytes()),
            None
        );
    }
}
