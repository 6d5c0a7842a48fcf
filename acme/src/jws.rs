//! JSON Web Signatures as ACME uses them (RFC 8555 §6.2).
//!
//! ACME's JWS profile is narrow, and this module accepts only it:
//! - the flattened JSON serialization (RFC 7515 §7.2.2) with exactly one signature and a
//!   protected header only (an unprotected `header` or a `signatures` array is refused);
//! - the algorithms of [`ALGORITHMS`]: RS256 with a 2048–8192-bit key, ES256/ES384/ES512
//!   with the raw `r‖s` signature form (RFC 7518 §3.4), and EdDSA with Ed25519
//!   (RFC 8037). `none`, HMAC (outside an External Account Binding) and everything else
//!   are refused as `badSignatureAlgorithm` with the list of accepted ones;
//! - `jwk` xor `kid` (RFC 8555 §6.2), a `url` (§6.4), no `crit` (RFC 7515 §4.1.11: this
//!   server understands no extension), no private key members in a `jwk`;
//! - base64url without padding and without non-zero trailing bits (RFC 7515 §2), and no
//!   duplicate member names in the header, the JWK or the JWS object (RFC 7515 §5.2).
//!
//! All signature checks run through aws-lc-rs. The account key's identity is its RFC 7638
//! thumbprint ([`Jwk::thumbprint`]).

use aws_lc_rs::{digest, hmac, signature};
use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;
use serde_json::Value;

use crate::{Error, Result};

/// The largest JWS request body accepted (a finalize with an 8192-bit RSA CSR is under
/// 8 KiB; RFC 8555 sets no limit).
pub const MAX_JWS_BYTES: usize = 64 * 1024;

/// The signature algorithms accepted on account requests (RFC 8555 §6.2: ES256 MUST,
/// EdDSA SHOULD; certbot and cert-manager sign with RS256, lego with ES256 by default).
pub const ALGORITHMS: &[&str] = &["RS256", "ES256", "ES384", "ES512", "EdDSA"];

/// The MAC algorithms accepted inside an External Account Binding (RFC 8555 §7.3.4,
/// RFC 7518 §3.2).
pub const EAB_ALGORITHMS: &[&str] = &["HS256", "HS384", "HS512"];

/// base64url without padding (RFC 7515 §2); padding and non-canonical trailing bits are
/// refused.
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// Decodes the base64url value of `field`.
pub fn b64_decode(field: &str, value: &str) -> Result<Vec<u8>> {
    B64.decode(value)
        .map_err(|_| Error::malformed(format!("{field} is not base64url without padding")))
}

/// Encodes `bytes` as base64url without padding.
pub fn b64_encode(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// A signature algorithm of an account request (RFC 7518 §3.1, RFC 8037 §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// ECDSA P-384 with SHA-384.
    Es384,
    /// ECDSA P-521 with SHA-512.
    Es512,
    /// EdDSA; only Ed25519 keys are accepted.
    EdDsa,
}

impl Alg {
    /// The algorithm named `name`, or `badSignatureAlgorithm`.
    pub fn from_name(name: &str) -> Result<Alg> {
        Ok(match name {
            "RS256" => Alg::Rs256,
            "ES256" => Alg::Es256,
            "ES384" => Alg::Es384,
            "ES512" => Alg::Es512,
            "EdDSA" => Alg::EdDsa,
            _ => {
                return Err(Error::BadSignatureAlgorithm {
                    alg: name.to_owned(),
                    allowed: ALGORITHMS,
                });
            }
        })
    }

    /// Its JWS name.
    pub fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::Es512 => "ES512",
            Alg::EdDsa => "EdDSA",
        }
    }

    /// Whether `key` is of the type this algorithm signs with (RFC 7518 §3.1).
    fn fits(self, key: &Jwk) -> bool {
        matches!(
            (self, key),
            (Alg::Rs256, Jwk::Rsa { .. })
                | (
                    Alg::Es256,
                    Jwk::Ec {
                        curve: Curve::P256,
                        ..
                    }
                )
                | (
                    Alg::Es384,
                    Jwk::Ec {
                        curve: Curve::P384,
                        ..
                    }
                )
                | (
                    Alg::Es512,
                    Jwk::Ec {
                        curve: Curve::P521,
                        ..
                    }
                )
                | (Alg::EdDsa, Jwk::Ed25519 { .. })
        )
    }
}

/// An elliptic curve of an `EC` JWK (RFC 7518 §6.2.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    /// P-256.
    P256,
    /// P-384.
    P384,
    /// P-521.
    P521,
}

impl Curve {
    fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
        }
    }

    /// The length of a coordinate, which RFC 7518 §6.2.1.2 fixes.
    fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }
}

/// A public key as a JWK (RFC 7517), of the types ACME accounts use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Jwk {
    /// RSA (RFC 7518 §6.3.1): modulus and exponent, big-endian, without leading zeros.
    Rsa {
        /// Modulus.
        n: Vec<u8>,
        /// Public exponent.
        e: Vec<u8>,
    },
    /// An EC public point (RFC 7518 §6.2.1).
    Ec {
        /// Its curve.
        curve: Curve,
        /// x coordinate, full length.
        x: Vec<u8>,
        /// y coordinate, full length.
        y: Vec<u8>,
    },
    /// An Ed25519 public key (RFC 8037 §2).
    Ed25519 {
        /// The 32-byte public key.
        x: Vec<u8>,
    },
}

/// A JWK's members as received. Deserializing into a struct refuses duplicate member names.
#[derive(Deserialize)]
struct RawJwk {
    kty: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    alg: Option<String>,
    /// Private members (RFC 7518 §6.2.2, §6.3.2, RFC 8037 §2): an account key JWK must not
    /// carry them.
    d: Option<Value>,
    p: Option<Value>,
    k: Option<Value>,
}

fn required<'a>(field: &str, v: &'a Option<String>) -> Result<&'a str> {
    v.as_deref()
        .ok_or_else(|| Error::malformed(format!("the JWK has no \"{field}\"")))
}

/// The smallest RSA modulus accepted (RFC 8555 does not set one; 2048 bits is the floor
/// of aws-lc-rs's RS256 verifier and of CA/Browser Forum practice).
const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus accepted.
const MAX_RSA_BITS: usize = 8192;

impl Jwk {
    /// Reads a public JWK (RFC 7517 §4). Structure errors are `malformed`; keys this server
    /// does not accept (private members, an RSA modulus under 2048 bits, a coordinate of the
    /// wrong length, an unknown curve) are `badPublicKey`.
    pub fn from_value(value: &Value) -> Result<Jwk> {
        let raw = RawJwk::deserialize(value)
            .map_err(|e| Error::malformed(format!("the JWK is not valid: {e}")))?;
        if raw.d.is_some() || raw.p.is_some() || raw.k.is_some() {
            return Err(Error::BadPublicKey(
                "the JWK holds private or secret key material".into(),
            ));
        }
        let key = match required("kty", &raw.kty)? {
            "RSA" => {
                let n = b64_decode("the JWK's \"n\"", required("n", &raw.n)?)?;
                let e = b64_decode("the JWK's \"e\"", required("e", &raw.e)?)?;
                // RFC 7518 §6.3.1.1/§6.3.1.2: the minimal big-endian form.
                if n.first().is_none_or(|b| *b == 0) || e.first().is_none_or(|b| *b == 0) {
                    return Err(Error::BadPublicKey(
                        "the RSA modulus and exponent must be minimal and non-zero".into(),
                    ));
                }
                let bits = n.len() * 8 - n[0].leading_zeros() as usize;
                if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                    return Err(Error::BadPublicKey(format!(
                        "an RSA account key must have {MIN_RSA_BITS} to {MAX_RSA_BITS} bits, not {bits}"
                    )));
                }
                Jwk::Rsa { n, e }
            }
            "EC" => {
                let curve = match required("crv", &raw.crv)? {
                    "P-256" => Curve::P256,
                    "P-384" => Curve::P384,
                    "P-521" => Curve::P521,
                    other => {
                        return Err(Error::BadPublicKey(format!(
                            "the curve {other:?} is not accepted (P-256, P-384, P-521)"
                        )));
                    }
                };
                let x = b64_decode("the JWK's \"x\"", required("x", &raw.x)?)?;
                let y = b64_decode("the JWK's \"y\"", required("y", &raw.y)?)?;
                let len = curve.coordinate_len();
                if x.len() != len || y.len() != len {
                    return Err(Error::BadPublicKey(format!(
                        "{} coordinates must be {len} bytes each",
                        curve.name()
                    )));
                }
                Jwk::Ec { curve, x, y }
            }
            "OKP" => {
                let crv = required("crv", &raw.crv)?;
                if crv != "Ed25519" {
                    return Err(Error::BadPublicKey(format!(
                        "the OKP curve {crv:?} is not accepted (Ed25519)"
                    )));
                }
                let x = b64_decode("the JWK's \"x\"", required("x", &raw.x)?)?;
                if x.len() != 32 {
                    return Err(Error::BadPublicKey(
                        "an Ed25519 key must be 32 bytes".into(),
                    ));
                }
                Jwk::Ed25519 { x }
            }
            other => {
                return Err(Error::BadPublicKey(format!(
                    "the key type {other:?} is not accepted (RSA, EC, OKP)"
                )));
            }
        };
        // RFC 7517 §4.4: an "alg" member, when present, names the algorithm the key is for.
        if let Some(alg) = &raw.alg {
            let alg = Alg::from_name(alg)?;
            if !alg.fits(&key) {
                return Err(Error::BadSignatureAlgorithm {
                    alg: alg.name().to_owned(),
                    allowed: ALGORITHMS,
                });
            }
        }
        Ok(key)
    }

    /// The JSON the RFC 7638 thumbprint is computed over: the required members only, in
    /// lexicographic order, without whitespace (RFC 7638 §3.2, RFC 8037 §2 for OKP).
    fn thumbprint_input(&self) -> String {
        match self {
            Jwk::Rsa { n, e } => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                b64_encode(e),
                b64_encode(n)
            ),
            Jwk::Ec { curve, x, y } => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                curve.name(),
                b64_encode(x),
                b64_encode(y)
            ),
            Jwk::Ed25519 { x } => {
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64_encode(x))
            }
        }
    }

    /// The key as an X.509 SubjectPublicKeyInfo, DER (RFC 5280 §4.1.2.7; RSA: RFC 3279
    /// §2.3.1, EC: RFC 5480 §2, Ed25519: RFC 8410 §4), to compare it with the key of a
    /// certificate or CSR (RFC 8555 §7.6 revocation by the certificate key, §11.1).
    pub fn spki_der(&self) -> Result<Vec<u8>> {
        use ca_core::asn1::oid;
        use der::Encode;
        use der::asn1::{AnyRef, BitString, ObjectIdentifier, UintRef};
        use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
        #[derive(der::Sequence)]
        struct RsaPublicKey<'a> {
            n: UintRef<'a>,
            e: UintRef<'a>,
        }
        let bad = |e: der::Error| Error::BadPublicKey(format!("the JWK cannot be encoded: {e}"));
        let (algorithm, key): (AlgorithmIdentifierOwned, Vec<u8>) = match self {
            Jwk::Rsa { n, e } => {
                let rsa = RsaPublicKey {
                    n: UintRef::new(n).map_err(bad)?,
                    e: UintRef::new(e).map_err(bad)?,
                };
                (
                    AlgorithmIdentifierOwned {
                        oid: oid::RSA_ENCRYPTION,
                        parameters: Some(AnyRef::NULL.into()),
                    },
                    rsa.to_der().map_err(bad)?,
                )
            }
            Jwk::Ec { curve, x, y } => {
                let named: ObjectIdentifier = match curve {
                    Curve::P256 => oid::SECP256R1,
                    Curve::P384 => oid::SECP384R1,
                    Curve::P521 => oid::SECP521R1,
                };
                let mut point = Vec::with_capacity(1 + x.len() + y.len());
                point.push(4);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                (
                    AlgorithmIdentifierOwned {
                        oid: oid::EC_PUBLIC_KEY,
                        parameters: Some(der::Any::encode_from(&named).map_err(bad)?),
                    },
                    point,
                )
            }
            Jwk::Ed25519 { x } => (
                AlgorithmIdentifierOwned {
                    oid: oid::ED25519,
                    parameters: None,
                },
                x.clone(),
            ),
        };
        SubjectPublicKeyInfoOwned {
            algorithm,
            subject_public_key: BitString::from_bytes(&key).map_err(bad)?,
        }
        .to_der()
        .map_err(bad)
    }

    /// The RFC 7638 SHA-256 thumbprint: the account key's identity, and the second half
    /// of a challenge's key authorization (RFC 8555 §8.1).
    pub fn thumbprint(&self) -> [u8; 32] {
        let d = digest::digest(&digest::SHA256, self.thumbprint_input().as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }

    /// The key as a public JWK in JSON: its required members (RFC 7638 §3.2), what an
    /// account record keeps and the account resource shows (RFC 8555 §7.1.2).
    pub fn to_json(&self) -> String {
        self.thumbprint_input()
    }

    /// The thumbprint, base64url (as in a key authorization).
    pub fn thumbprint_b64(&self) -> String {
        b64_encode(&self.thumbprint())
    }

    /// Verifies `signature` over `signing_input` with this key under `alg`. A key of
    /// another type than `alg` signs with is `badSignatureAlgorithm`; a signature that does
    /// not verify is `unauthorized`.
    pub fn verify(&self, alg: Alg, signing_input: &[u8], signature: &[u8]) -> Result<()> {
        if !alg.fits(self) {
            return Err(Error::BadSignatureAlgorithm {
                alg: alg.name().to_owned(),
                allowed: ALGORITHMS,
            });
        }
        let ok = match self {
            Jwk::Rsa { n, e } => signature::RsaPublicKeyComponents { n, e }
                .verify(
                    &signature::RSA_PKCS1_2048_8192_SHA256,
                    signing_input,
                    signature,
                )
                .is_ok(),
            Jwk::Ec { curve, x, y } => {
                let verifier: &'static dyn signature::VerificationAlgorithm = match curve {
                    Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED,
                    Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
                    Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED,
                };
                // The uncompressed point (SEC 1 §2.3.3) of the coordinates.
                let mut point = Vec::with_capacity(1 + x.len() + y.len());
                point.push(0x04);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                signature::UnparsedPublicKey::new(verifier, &point)
                    .verify(signing_input, signature)
                    .is_ok()
            }
            Jwk::Ed25519 { x } => signature::UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(signing_input, signature)
                .is_ok(),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::Unauthorized(
                "the JWS signature does not verify".into(),
            ))
        }
    }
}

/// How a request names its key (RFC 8555 §6.2: exactly one of the two).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRef {
    /// The key itself (newAccount, and revokeCert signed with the certificate's key).
    Jwk(Jwk),
    /// An account URL (every other request).
    Kid(String),
}

/// The protected header of an account request (RFC 8555 §6.2).
#[derive(Clone, Debug)]
pub struct Protected {
    /// The signature algorithm.
    pub alg: Alg,
    /// The key, or the account that holds it.
    pub key: KeyRef,
    /// The anti-replay nonce (RFC 8555 §6.5); the server must refuse a request without
    /// one as `badNonce`. Absent in the inner JWS of a key change (§7.3.5).
    pub nonce: Option<String>,
    /// The URL the request is for (RFC 8555 §6.4).
    pub url: String,
}

/// The members of a flattened JWS (RFC 7515 §7.2.2). A struct, so that duplicate member
/// names are refused; `header` and `signatures` are read only to be refused by name.
#[derive(Deserialize)]
struct RawJws {
    protected: Option<String>,
    payload: Option<String>,
    signature: Option<String>,
    header: Option<Value>,
    signatures: Option<Value>,
}

/// The header members ACME uses (RFC 8555 §6.2, RFC 7515 §4.1). Other registered members
/// are ignored, as RFC 7515 §4 allows, except `crit`.
#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    jwk: Option<Value>,
    kid: Option<String>,
    nonce: Option<String>,
    url: Option<String>,
    crit: Option<Value>,
}

/// A flattened JWS split into its parts, the header decoded, nothing verified yet.
struct Parts {
    header: RawHeader,
    payload: Vec<u8>,
    /// `BASE64URL(protected) || '.' || BASE64URL(payload)` (RFC 7515 §5.1 step 8).
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

fn split(value: &Value) -> Result<Parts> {
    let raw = RawJws::deserialize(value)
        .map_err(|e| Error::malformed(format!("the request is not a flattened JWS: {e}")))?;
    if raw.signatures.is_some() {
        return Err(Error::malformed(
            "the JWS must use the flattened serialization with one signature (RFC 8555 §6.2)",
        ));
    }
    if raw.header.is_some() {
        return Err(Error::malformed(
            "the JWS must not have an unprotected header (RFC 8555 §6.2)",
        ));
    }
    let (Some(protected), Some(payload), Some(signature)) =
        (raw.protected, raw.payload, raw.signature)
    else {
        return Err(Error::malformed(
            "the JWS needs \"protected\", \"payload\" and \"signature\"",
        ));
    };
    let header_json = b64_decode("the protected header", &protected)?;
    let header: RawHeader = serde_json::from_slice(&header_json)
        .map_err(|e| Error::malformed(format!("the protected header is not valid: {e}")))?;
    if header.crit.is_some() {
        return Err(Error::malformed(
            "the protected header names critical extensions this server does not understand (\"crit\")",
        ));
    }
    let payload_bytes = b64_decode("the payload", &payload)?;
    let signature = b64_decode("the signature", &signature)?;
    let mut signing_input = Vec::with_capacity(protected.len() + 1 + payload.len());
    signing_input.extend_from_slice(protected.as_bytes());
    signing_input.push(b'.');
    signing_input.extend_from_slice(payload.as_bytes());
    Ok(Parts {
        header,
        payload: payload_bytes,
        signing_input,
        signature,
    })
}

/// A parsed account request: its header read and checked, its signature not yet verified
/// (a `kid` request needs the account's key first).
#[derive(Debug)]
pub struct Jws {
    /// The protected header.
    pub protected: Protected,
    /// The decoded payload; empty for POST-as-GET (RFC 8555 §6.3).
    pub payload: Vec<u8>,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

impl Jws {
    /// Parses a request body (RFC 8555 §6.2). Refuses bodies over [`MAX_JWS_BYTES`].
    pub fn parse(body: &[u8]) -> Result<Jws> {
        if body.len() > MAX_JWS_BYTES {
            return Err(Error::malformed(format!(
                "the request body is over {MAX_JWS_BYTES} bytes"
            )));
        }
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| Error::malformed(format!("the request body is not JSON: {e}")))?;
        Jws::from_value(&value)
    }

    /// Parses a JWS already read as JSON (the inner JWS of a key change, RFC 8555 §7.3.5).
    pub fn from_value(value: &Value) -> Result<Jws> {
        let parts = split(value)?;
        let h = parts.header;
        let alg = Alg::from_name(
            h.alg
                .as_deref()
                .ok_or_else(|| Error::malformed("the protected header has no \"alg\""))?,
        )?;
        let key = match (h.jwk, h.kid) {
            (Some(jwk), None) => KeyRef::Jwk(Jwk::from_value(&jwk)?),
            (None, Some(kid)) => KeyRef::Kid(kid),
            _ => {
                return Err(Error::malformed(
                    "the protected header must have exactly one of \"jwk\" and \"kid\" (RFC 8555 §6.2)",
                ));
            }
        };
        if let KeyRef::Jwk(jwk) = &key
            && !alg.fits(jwk)
        {
            return Err(Error::BadSignatureAlgorithm {
                alg: alg.name().to_owned(),
                allowed: ALGORITHMS,
            });
        }
        let url = h.url.ok_or_else(|| {
            Error::malformed("the protected header has no \"url\" (RFC 8555 §6.4)")
        })?;
        Ok(Jws {
            protected: Protected {
                alg,
                key,
                nonce: h.nonce,
                url,
            },
            payload: parts.payload,
            signing_input: parts.signing_input,
            signature: parts.signature,
        })
    }

    /// Whether this is a POST-as-GET (an empty payload, RFC 8555 §6.3).
    pub fn is_post_as_get(&self) -> bool {
        self.payload.is_empty()
    }

    /// Refuses the request unless its `url` is `expected` (RFC 8555 §6.4: computed from
    /// the configured external URL, not from the Host header).
    pub fn check_url(&self, expected: &str) -> Result<()> {
        if self.protected.url == expected {
            Ok(())
        } else {
            Err(Error::Unauthorized(format!(
                "the JWS \"url\" is not the URL of this request ({expected})"
            )))
        }
    }

    /// Verifies the signature with `key`: the request's own `jwk`, or the key of the
    /// account its `kid` names.
    pub fn verify(&self, key: &Jwk) -> Result<()> {
        key.verify(self.protected.alg, &self.signing_input, &self.signature)
    }
}

/// A MAC algorithm of an External Account Binding (RFC 7518 §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacAlg {
    /// HMAC-SHA-256.
    Hs256,
    /// HMAC-SHA-384.
    Hs384,
    /// HMAC-SHA-512.
    Hs512,
}

impl MacAlg {
    /// The MAC algorithm named `name`, or `badSignatureAlgorithm` listing
    /// [`EAB_ALGORITHMS`].
    pub fn from_name(name: &str) -> Result<MacAlg> {
        Ok(match name {
            "HS256" => MacAlg::Hs256,
            "HS384" => MacAlg::Hs384,
            "HS512" => MacAlg::Hs512,
            _ => {
                return Err(Error::BadSignatureAlgorithm {
                    alg: name.to_owned(),
                    allowed: EAB_ALGORITHMS,
                });
            }
        })
    }

    /// Verifies `mac` over `signing_input` with `key`, in constant time; a MAC that does
    /// not verify is `unauthorized`.
    pub fn verify(self, key: &[u8], signing_input: &[u8], mac: &[u8]) -> Result<()> {
        let alg = match self {
            MacAlg::Hs256 => hmac::HMAC_SHA256,
            MacAlg::Hs384 => hmac::HMAC_SHA384,
            MacAlg::Hs512 => hmac::HMAC_SHA512,
        };
        hmac::verify(&hmac::Key::new(alg, key), signing_input, mac).map_err(|_| {
            Error::Unauthorized("the external account binding's MAC does not verify".into())
        })
    }
}

/// The `externalAccountBinding` of a newAccount request (RFC 8555 §7.3.4), its structure
/// checked against the outer request, its MAC not yet verified (that needs the key of
/// [`ExternalAccountBinding::key_id`]).
#[derive(Debug)]
pub struct ExternalAccountBinding {
    /// The key identifier the CA gave out with the MAC key.
    pub key_id: String,
    alg: MacAlg,
    signing_input: Vec<u8>,
    mac: Vec<u8>,
}

impl ExternalAccountBinding {
    /// Reads the binding of a newAccount request whose outer JWS is `outer`, signed with
    /// `account_key` (RFC 8555 §7.3.4): a flattened JWS with an HMAC `alg`, a `kid`, no
    /// `nonce`, the same `url` as the outer JWS, and the account key as its payload.
    pub fn parse(value: &Value, outer: &Jws, account_key: &Jwk) -> Result<ExternalAccountBinding> {
        let parts = split(value)?;
        let h = parts.header;
        let alg = MacAlg::from_name(
            h.alg
                .as_deref()
                .ok_or_else(|| Error::malformed("the external account binding has no \"alg\""))?,
        )?;
        if h.jwk.is_some() {
            return Err(Error::malformed(
                "the external account binding must name its key by \"kid\", not \"jwk\"",
            ));
        }
        let key_id = h
            .kid
            .ok_or_else(|| Error::malformed("the external account binding has no \"kid\""))?;
        if h.nonce.is_some() {
            return Err(Error::malformed(
                "the external account binding must not have a \"nonce\" (RFC 8555 §7.3.4)",
            ));
        }
        if h.url.as_deref() != Some(outer.protected.url.as_str()) {
            return Err(Error::Unauthorized(
                "the external account binding's \"url\" is not the newAccount URL".into(),
            ));
        }
        let payload: Value = serde_json::from_slice(&parts.payload)
            .map_err(|_| Error::malformed("the external account binding's payload is not a JWK"))?;
        if Jwk::from_value(&payload)?.thumbprint() != account_key.thumbprint() {
            return Err(Error::Unauthorized(
                "the external account binding is for another account key".into(),
            ));
        }
        Ok(ExternalAccountBinding {
            key_id,
            alg,
            signing_input: parts.signing_input,
            mac: parts.signature,
        })
    }

    /// Verifies the MAC with the key of [`Self::key_id`], in constant time.
    pub fn verify(&self, mac_key: &[u8]) -> Result<()> {
        self.alg.verify(mac_key, &self.signing_input, &self.mac)
    }
}
