//! The key store on the token: generating, importing, opening, listing and deleting key
//! objects, and reading what privca needs of them.

use std::fmt;
use std::sync::{Arc, Condvar, Mutex};

use const_oid::ObjectIdentifier;
use cryptoki::error::Error as CkError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki::types::Ulong;
use der::asn1::{Any, OctetStringRef, UintRef};
use der::{Decode, Encode};
use serde::Serialize;

use super::Pkcs11Config;
use super::key::Pkcs11Key;
use super::pool::{ModuleGate, Pool, State};
use crate::public::{
    curve_oid, ec_algorithm, ec_spki, rsa_algorithm, rsa_spki_from_parts, uint_bits,
};
use crate::soft::validate_label;
use crate::{Error, KeyAlgorithm, KeyInfo, KeyStore, KeyUse, PrivateKey, Result};

/// Keys on a PKCS#11 token (see the [module docs](super)).
#[derive(Clone)]
pub struct Pkcs11KeyStore {
    pool: Arc<Pool>,
}

impl fmt::Debug for Pkcs11KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11KeyStore")
            .field("module", &self.pool.cfg.module)
            .field("token", &self.pool.cfg.token_desc())
            .finish_non_exhaustive()
    }
}

/// What `privca keys list` shows of a token key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenKeyInfo {
    /// Label, algorithm and public key.
    #[serde(flatten)]
    pub info: KeyInfo,
    /// `CKA_ID`, hex.
    pub id: String,
    /// `CKA_SENSITIVE` of the private key.
    pub sensitive: bool,
    /// `CKA_EXTRACTABLE` of the private key.
    pub extractable: bool,
    /// `CKA_LOCAL`: generated on the token (false for imported keys).
    pub local: bool,
}

/// How a key is named when opened.
pub(super) enum KeyRef {
    /// By `CKA_LABEL` (with the prefix).
    Label(String),
    /// By `CKA_ID`.
    Id(Vec<u8>),
}

impl Pkcs11KeyStore {
    /// Connects to the token described by `cfg` and logs in. Fails when the module cannot be
    /// loaded, the token is absent or the PIN is wrong.
    pub fn open(cfg: Pkcs11Config) -> Result<Self> {
        cfg.validate()?;
        let pool = Arc::new(Pool {
            gate: ModuleGate::of(&cfg.module),
            cfg,
            state: Mutex::new(State::default()),
            freed: Condvar::new(),
        });
        {
            let mut st = pool.lock();
            pool.connect(&mut st)?;
        }
        Ok(Pkcs11KeyStore { pool })
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &Pkcs11Config {
        &self.pool.cfg
    }

    fn token_label(&self, label: &str) -> Result<String> {
        validate_label(label)?;
        Ok(format!("{}{label}", self.pool.cfg.label_prefix))
    }

    fn parse_ref(&self, name: &str) -> Result<KeyRef> {
        if let Some(hex) = name.strip_prefix("id:") {
            let id = decode_hex(hex).ok_or_else(|| {
                Error::InvalidLabel(format!("{name:?}: id: must be followed by hex digits"))
            })?;
            Ok(KeyRef::Id(id))
        } else {
            Ok(KeyRef::Label(self.token_label(name)?))
        }
    }

    /// Generates a signing-only key on the token and returns it as its concrete type.
    pub fn generate_key(&self, label: &str, algorithm: KeyAlgorithm) -> Result<Arc<Pkcs11Key>> {
        self.generate_key_for(label, algorithm, KeyUse::Sign)
    }

    /// Generates a key on the token for `uses` and returns it as its concrete type.
    ///
    /// The private key gets only the uses its role needs: `CKA_SIGN`, and `CKA_DECRYPT`
    /// only for [`KeyUse::SignAndDecrypt`] (an RSA SCEP RA key); never `CKA_UNWRAP` or
    /// `CKA_DERIVE`. Both objects are `CKA_MODIFIABLE` and `CKA_COPYABLE` false (PKCS#11
    /// v2.40 §4.4: the uses cannot be widened later, and no copy with other attributes can
    /// be made); the private key is sensitive and not extractable.
    pub fn generate_key_for(
        &self,
        label: &str,
        algorithm: KeyAlgorithm,
        uses: KeyUse,
    ) -> Result<Arc<Pkcs11Key>> {
        let token_label = self.token_label(label)?;
        let decrypt = uses == KeyUse::SignAndDecrypt;
        if decrypt && !algorithm.is_rsa() {
            return Err(Error::Unsupported(format!(
                "key {label:?}: only RSA keys decrypt, not {algorithm}"
            )));
        }
        let mut id = vec![0u8; 16];
        aws_lc_rs::rand::fill(&mut id)
            .map_err(|_| Error::Crypto("random number generator failed".into()))?;
        let (mech, pub_extra, priv_extra) = match algorithm {
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                let bits: u64 = match algorithm {
                    KeyAlgorithm::Rsa2048 => 2048,
                    KeyAlgorithm::Rsa3072 => 3072,
                    _ => 4096,
                };
                (
                    Mechanism::RsaPkcsKeyPairGen,
                    vec![
                        Attribute::ModulusBits(Ulong::new(bits)),
                        Attribute::PublicExponent(vec![1, 0, 1]),
                    ],
                    vec![],
                )
            }
            // Tokens default CKA_DECRYPT and CKA_DERIVE of EC keys to true (SoftHSM does).
            KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => (
                Mechanism::EccKeyPairGen,
                vec![Attribute::EcParams(curve_params(algorithm)?)],
                vec![Attribute::Derive(false)],
            ),
        };
        let mut pub_t = vec![
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::Encrypt(decrypt),
            Attribute::Wrap(false),
            Attribute::Modifiable(false),
            Attribute::Copyable(false),
            Attribute::Label(token_label.clone().into_bytes()),
            Attribute::Id(id.clone()),
        ];
        pub_t.extend(pub_extra);
        let mut priv_t = private_template(&token_label, &id);
        priv_t.push(Attribute::Decrypt(decrypt));
        priv_t.extend(priv_extra);
        let tl = token_label.clone();
        self.pool
            .run(|s, _| {
                if !find(s, ObjectClass::PRIVATE_KEY, &KeyRef::Label(tl.clone()))?.is_empty() {
                    return Ok(false);
                }
                s.generate_key_pair(&mech, &pub_t, &priv_t)?;
                Ok(true)
            })
            .map_err(|e| e.into_error("generating a key pair"))
            .and_then(|made| {
                if made {
                    Ok(())
                } else {
                    Err(Error::Exists(label.to_owned()))
                }
            })?;
        tracing::info!(label, %algorithm, "generated key on PKCS#11 token");
        let key = self.open_key(label)?;
        if key.algorithm != algorithm {
            return Err(Error::Crypto(format!(
                "the token made a {} key when {algorithm} was asked for",
                key.algorithm
            )));
        }
        Ok(key)
    }

    /// Imports an unencrypted PKCS#8 key onto the token (as a sensitive, non-extractable
    /// private key plus its public key) and returns it as its concrete type. Fails with
    /// [`Error::Token`] when the token does not allow creating private-key objects.
    pub fn import_key(&self, label: &str, pkcs8_der: &[u8]) -> Result<Arc<Pkcs11Key>> {
        let token_label = self.token_label(label)?;
        // Parse and check with the software backend: same algorithms, same error messages.
        let soft = crate::soft::SoftKey::from_pkcs8(label, pkcs8_der)?;
        let algorithm = soft.algorithm();
        let spki = soft.public_key_der().to_vec();
        drop(soft);
        let pki = pkcs8::PrivateKeyInfoRef::from_der(pkcs8_der)
            .map_err(|e| Error::BadKey(format!("key {label:?}: {e}")))?;
        let mut id = vec![0u8; 16];
        aws_lc_rs::rand::fill(&mut id)
            .map_err(|_| Error::Crypto("random number generator failed".into()))?;
        let mut priv_t = private_template(&token_label, &id);
        let mut pub_t = vec![
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::Label(token_label.clone().into_bytes()),
            Attribute::Id(id.clone()),
        ];
        priv_t.push(Attribute::Class(ObjectClass::PRIVATE_KEY));
        if algorithm.is_rsa() {
            let k = pkcs1::RsaPrivateKeyRef::from_der(pki.private_key.as_bytes())
                .map_err(|e| Error::BadKey(format!("key {label:?}: {e}")))?;
            let b = |u: UintRef<'_>| u.as_bytes().to_vec();
            priv_t.extend([
                Attribute::KeyType(KeyType::RSA),
                Attribute::Decrypt(true),
                Attribute::Modulus(b(k.modulus)),
                Attribute::PublicExponent(b(k.public_exponent)),
                Attribute::PrivateExponent(b(k.private_exponent)),
                Attribute::Prime1(b(k.prime1)),
                Attribute::Prime2(b(k.prime2)),
                Attribute::Exponent1(b(k.exponent1)),
                Attribute::Exponent2(b(k.exponent2)),
                Attribute::Coefficient(b(k.coefficient)),
            ]);
            pub_t.extend([
                Attribute::KeyType(KeyType::RSA),
                Attribute::Encrypt(true),
                Attribute::Modulus(b(k.modulus)),
                Attribute::PublicExponent(b(k.public_exponent)),
            ]);
        } else {
            let ec = EcPrivateKey::from_der(pki.private_key.as_bytes())
                .map_err(|e| Error::BadKey(format!("key {label:?}: bad SEC1 ECPrivateKey: {e}")))?;
            let params = curve_params(algorithm)?;
            let point = spki::SubjectPublicKeyInfoRef::from_der(&spki)
                .ok()
                .and_then(|s| s.subject_public_key.as_bytes().map(<[u8]>::to_vec))
                .ok_or_else(|| Error::BadKey(format!("key {label:?}: no public point")))?;
            let point_der = OctetStringRef::new(&point)
                .and_then(|o| o.to_der())
                .map_err(|e| Error::Crypto(format!("encoding EC point: {e}")))?;
            priv_t.extend([
                Attribute::KeyType(KeyType::EC),
                Attribute::EcParams(params.clone()),
                Attribute::Value(ec.private_key.as_bytes().to_vec()),
            ]);
            pub_t.extend([
                Attribute::KeyType(KeyType::EC),
                Attribute::EcParams(params),
                Attribute::EcPoint(point_der),
            ]);
        }
        let priv_t = WipeOnDrop(priv_t);
        let tl = token_label.clone();
        let made = self
            .pool
            .run(|s, _| {
                if !find(s, ObjectClass::PRIVATE_KEY, &KeyRef::Label(tl.clone()))?.is_empty() {
                    return Ok(false);
                }
                let private = s.create_object(&priv_t.0)?;
                if let Err(e) = s.create_object(&pub_t) {
                    let _ = s.destroy_object(private);
                    return Err(e);
                }
                Ok(true)
            })
            .map_err(|e| e.into_error("importing the key (the token may not allow key import)"))?;
        if !made {
            return Err(Error::Exists(label.to_owned()));
        }
        tracing::info!(label, %algorithm, "imported key onto PKCS#11 token");
        let key = self.open_key(label)?;
        if key.spki != spki {
            return Err(Error::Crypto(format!(
                "key {label:?}: the token holds a different public key than the one imported"
            )));
        }
        Ok(key)
    }

    /// Opens a key by label (or `id:<hex>`) and returns it as its concrete type.
    pub fn open_key(&self, name: &str) -> Result<Arc<Pkcs11Key>> {
        let key_ref = self.parse_ref(name)?;
        let found = self
            .pool
            .run(|s, generation| {
                let handles = find(s, ObjectClass::PRIVATE_KEY, &key_ref)?;
                match handles.as_slice() {
                    [] => Ok(None),
                    [h] => Ok(Some((describe(s, *h)?, *h, generation))),
                    _ => Ok(Some((Err(Error::Exists(format!(
                        "{name} names {} private keys on the token; labels and IDs must be unique",
                        handles.len()
                    ))), handles[0], generation))),
                }
            })
            .map_err(|e| e.into_error("finding the key"))?;
        let Some((described, handle, generation)) = found else {
            return Err(Error::NotFound(name.to_owned()));
        };
        let d = described?;
        let label = d
            .label
            .strip_prefix(&self.pool.cfg.label_prefix)
            .unwrap_or(&d.label)
            .to_owned();
        Ok(Arc::new(Pkcs11Key {
            pool: self.pool.clone(),
            label,
            id: d.id,
            algorithm: d.algorithm,
            spki: d.spki,
            handle: Mutex::new(Some((generation, handle))),
        }))
    }

    /// Lists the keys with their token attributes, sorted by label.
    pub fn list_details(&self) -> Result<Vec<TokenKeyInfo>> {
        let prefix = self.pool.cfg.label_prefix.clone();
        let mut out = self
            .pool
            .run(|s, _| {
                let handles = s.find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])?;
                let mut out = Vec::new();
                for h in handles {
                    let d = match describe(s, h)? {
                        Ok(d) => d,
                        Err(e) => {
                            tracing::warn!(error = %e, "skipping a token key privca cannot use");
                            continue;
                        }
                    };
                    let Some(label) = d.label.strip_prefix(&prefix) else {
                        continue;
                    };
                    let flags = s.get_attributes(
                        h,
                        &[
                            AttributeType::Sensitive,
                            AttributeType::Extractable,
                            AttributeType::Local,
                        ],
                    )?;
                    let flag = |t: AttributeType| {
                        flags.iter().any(|a| match (a, t) {
                            (Attribute::Sensitive(v), AttributeType::Sensitive)
                            | (Attribute::Extractable(v), AttributeType::Extractable)
                            | (Attribute::Local(v), AttributeType::Local) => *v,
                            _ => false,
                        })
                    };
                    out.push(TokenKeyInfo {
                        info: KeyInfo {
                            label: label.to_owned(),
                            algorithm: d.algorithm,
                            public_key_der: d.spki,
                        },
                        id: hex(&d.id),
                        sensitive: flag(AttributeType::Sensitive),
                        extractable: flag(AttributeType::Extractable),
                        local: flag(AttributeType::Local),
                    });
                }
                Ok(out)
            })
            .map_err(|e| e.into_error("listing keys"))?;
        out.sort_by(|a, b| a.info.label.cmp(&b.info.label));
        Ok(out)
    }

    /// Destroys both objects of a key (for `privca bench sign`, which makes throw-away keys).
    pub fn delete(&self, label: &str) -> Result<()> {
        let token_label = self.token_label(label)?;
        self.pool
            .run(|s, _| {
                for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
                    for h in find(s, class, &KeyRef::Label(token_label.clone()))? {
                        s.destroy_object(h)?;
                    }
                }
                Ok(())
            })
            .map_err(|e| e.into_error("deleting the key"))
    }

    /// The connection's state, at once and without a PKCS#11 call: fails while the last
    /// reconnection failed (with its error). It does not wait for a session or for a
    /// reconnection under way (then it reports what was known before). Whether keys
    /// actually sign is what [`crate::probe::KeyProbe`] finds out.
    pub fn probe(&self) -> Result<()> {
        let st = match self.pool.state.try_lock() {
            Ok(st) => st,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Ok(()),
        };
        if st.slot.is_none()
            && st.failures > 0
            && let Some(why) = &st.last_error
        {
            return Err(Error::Unavailable(why.clone()));
        }
        Ok(())
    }
}

/// A template holding private key material, wiped when dropped.
struct WipeOnDrop(Vec<Attribute>);

impl Drop for WipeOnDrop {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for a in &mut self.0 {
            match a {
                Attribute::PrivateExponent(v)
                | Attribute::Prime1(v)
                | Attribute::Prime2(v)
                | Attribute::Exponent1(v)
                | Attribute::Exponent2(v)
                | Attribute::Coefficient(v)
                | Attribute::Value(v) => v.zeroize(),
                _ => {}
            }
        }
    }
}

fn private_template(token_label: &str, id: &[u8]) -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Unwrap(false),
        Attribute::Modifiable(false),
        Attribute::Copyable(false),
        Attribute::Label(token_label.as_bytes().to_vec()),
        Attribute::Id(id.to_vec()),
    ]
}

fn curve_params(algorithm: KeyAlgorithm) -> Result<Vec<u8>> {
    let oid = curve_oid(algorithm)
        .ok_or_else(|| Error::Unsupported(format!("{algorithm} is not an EC key")))?;
    oid.to_der()
        .map_err(|e| Error::Crypto(format!("encoding curve OID: {e}")))
}

/// SEC1 `ECPrivateKey` (RFC 5915 §3), as carried inside PKCS#8.
#[derive(der::Sequence)]
struct EcPrivateKey<'a> {
    _version: u8,
    private_key: &'a OctetStringRef,
    #[asn1(context_specific = "0", optional = "true")]
    _parameters: Option<Any>,
    #[asn1(context_specific = "1", optional = "true")]
    _public_key: Option<Any>,
}

pub(super) fn find(
    s: &Session,
    class: ObjectClass,
    key: &KeyRef,
) -> Result<Vec<ObjectHandle>, CkError> {
    let mut t = vec![Attribute::Class(class)];
    match key {
        KeyRef::Label(l) => t.push(Attribute::Label(l.as_bytes().to_vec())),
        KeyRef::Id(id) => t.push(Attribute::Id(id.clone())),
    }
    s.find_objects(&t)
}

struct Described {
    label: String,
    id: Vec<u8>,
    algorithm: KeyAlgorithm,
    spki: Vec<u8>,
}

/// Reads what privca needs of a private key (and its public key object): label, ID, type
/// and the public key as a SubjectPublicKeyInfo. The outer error is the token's, the inner
/// one says the key is not usable by privca.
fn describe(s: &Session, h: ObjectHandle) -> Result<Result<Described>, CkError> {
    let attrs = s.get_attributes(
        h,
        &[
            AttributeType::Label,
            AttributeType::Id,
            AttributeType::KeyType,
        ],
    )?;
    let mut label = None;
    let mut id = Vec::new();
    let mut key_type = None;
    for a in attrs {
        match a {
            Attribute::Label(l) => label = Some(String::from_utf8_lossy(&l).into_owned()),
            Attribute::Id(i) => id = i,
            Attribute::KeyType(k) => key_type = Some(k),
            _ => {}
        }
    }
    let label = label.unwrap_or_default();
    let bad = |m: String| Ok(Err(Error::BadKey(format!("token key {label:?}: {m}"))));
    // The public key object with the same ID (or label when the ID is empty).
    let pub_ref = if id.is_empty() {
        KeyRef::Label(label.clone())
    } else {
        KeyRef::Id(id.clone())
    };
    let public = find(s, ObjectClass::PUBLIC_KEY, &pub_ref)?.first().copied();
    let spki = match key_type {
        Some(KeyType::RSA) => {
            // The modulus and exponent are public attributes of the private key too.
            let src = public.unwrap_or(h);
            let a = s.get_attributes(
                src,
                &[AttributeType::Modulus, AttributeType::PublicExponent],
            )?;
            let (mut n, mut e) = (None, None);
            for a in a {
                match a {
                    Attribute::Modulus(v) => n = Some(v),
                    Attribute::PublicExponent(v) => e = Some(v),
                    _ => {}
                }
            }
            let (Some(n), Some(e)) = (n, e) else {
                return bad("no modulus or public exponent".into());
            };
            let alg = match rsa_algorithm(uint_bits(&n)) {
                Ok(a) => a,
                Err(e) => return Ok(Err(e)),
            };
            match rsa_spki_from_parts(&n, &e) {
                Ok(spki) => (alg, spki),
                Err(e) => return Ok(Err(e)),
            }
        }
        Some(KeyType::EC) => {
            let Some(public) = public else {
                return bad("no public key object with the same ID".into());
            };
            let a = s.get_attributes(public, &[AttributeType::EcParams, AttributeType::EcPoint])?;
            let (mut params, mut point) = (None, None);
            for a in a {
                match a {
                    Attribute::EcParams(v) => params = Some(v),
                    Attribute::EcPoint(v) => point = Some(v),
                    _ => {}
                }
            }
            let (Some(params), Some(point)) = (params, point) else {
                return bad("no EC parameters or point".into());
            };
            let Ok(curve) = ObjectIdentifier::from_der(&params) else {
                return bad("EC parameters are not a named curve".into());
            };
            let alg = match ec_algorithm(curve) {
                Ok(a) => a,
                Err(e) => return Ok(Err(e)),
            };
            let coord = if alg == KeyAlgorithm::EcdsaP256 {
                32
            } else {
                48
            };
            // CKA_EC_POINT is a DER OCTET STRING (PKCS#11 §2.3.3); some tokens give the raw
            // point. The lengths tell them apart.
            let raw = if point.len() == 1 + 2 * coord {
                point
            } else {
                match <&OctetStringRef>::from_der(&point) {
                    Ok(o) => o.as_bytes().to_vec(),
                    Err(_) => return bad("CKA_EC_POINT does not parse".into()),
                }
            };
            match ec_spki(alg, &raw) {
                Ok(spki) => (alg, spki),
                Err(e) => return Ok(Err(e)),
            }
        }
        _ => return bad("not an RSA or EC key".into()),
    };
    Ok(Ok(Described {
        label,
        id,
        algorithm: spki.0,
        spki: spki.1,
    }))
}

/// A `CKA_ID` as lower-case hex (how `privca keys list` shows it).
pub(super) fn hex(b: &[u8]) -> String {
    hex::encode(b)
}

/// The `CKA_ID` of an `id:<hex>` key name: 1 to 64 bytes.
pub(super) fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || s.len() > 128 {
        return None;
    }
    hex::decode(s).ok()
}

impl KeyStore for Pkcs11KeyStore {
    fn generate(&self, label: &str, algorithm: KeyAlgorithm) -> Result<Arc<dyn PrivateKey>> {
        Ok(self.generate_key(label, algorithm)?)
    }

    fn generate_for(
        &self,
        label: &str,
        algorithm: KeyAlgorithm,
        uses: KeyUse,
    ) -> Result<Arc<dyn PrivateKey>> {
        Ok(self.generate_key_for(label, algorithm, uses)?)
    }

    fn import_pkcs8(&self, label: &str, pkcs8_der: &[u8]) -> Result<Arc<dyn PrivateKey>> {
        Ok(self.import_key(label, pkcs8_der)?)
    }

    fn open(&self, label: &str) -> Result<Arc<dyn PrivateKey>> {
        Ok(self.open_key(label)?)
    }

    fn list(&self) -> Result<Vec<KeyInfo>> {
        Ok(self.list_details()?.into_iter().map(|k| k.info).collect())
    }

    fn backend_name(&self) -> &'static str {
        "pkcs11"
    }

    fn health(&self) -> Result<()> {
        self.probe()
    }
}
