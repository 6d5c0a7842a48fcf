//! The algorithms of SCEP messages (RFC 8894 §3.5.2): content ciphers of the envelopes
//! and digests of the SignerInfos.

use const_oid::ObjectIdentifier as Oid;
use hsm::{Digest, SignatureScheme};
use sha2::Digest as _;

use super::{DecodeOptions, oid};
use crate::{Error, Result};

/// Content-encryption algorithms (RFC 8894 §3.5.2; docs/client-quirks.md, "Algorithms clients use").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentCipher {
    /// DES-CBC: only when the endpoint enables it.
    Des,
    /// Triple-DES (EDE3) CBC.
    Des3,
    /// AES-128-CBC.
    Aes128,
    /// AES-192-CBC.
    Aes192,
    /// AES-256-CBC.
    Aes256,
}

impl ContentCipher {
    /// Its algorithm OID.
    pub fn oid(self) -> Oid {
        match self {
            ContentCipher::Des => oid::DES_CBC,
            ContentCipher::Des3 => oid::DES_EDE3_CBC,
            ContentCipher::Aes128 => oid::AES128_CBC,
            ContentCipher::Aes192 => oid::AES192_CBC,
            ContentCipher::Aes256 => oid::AES256_CBC,
        }
    }

    pub(super) fn from_oid(o: &Oid) -> Option<ContentCipher> {
        Some(match *o {
            oid::DES_CBC => ContentCipher::Des,
            oid::DES_EDE3_CBC => ContentCipher::Des3,
            oid::AES128_CBC => ContentCipher::Aes128,
            oid::AES192_CBC => ContentCipher::Aes192,
            oid::AES256_CBC => ContentCipher::Aes256,
            _ => return None,
        })
    }

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            ContentCipher::Des => 8,
            ContentCipher::Des3 | ContentCipher::Aes192 => 24,
            ContentCipher::Aes128 => 16,
            ContentCipher::Aes256 => 32,
        }
    }

    /// Block (and IV) length in bytes.
    pub fn block_len(self) -> usize {
        match self {
            ContentCipher::Des | ContentCipher::Des3 => 8,
            _ => 16,
        }
    }

    /// CBC with PKCS#7 padding (RFC 5652 §6.3).
    pub fn encrypt(self, key: &[u8], iv: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        use cbc::cipher::{BlockModeEncrypt, KeyIvInit, block_padding::Pkcs7};
        fn enc<C>(key: &[u8], iv: &[u8], pt: &[u8]) -> Result<Vec<u8>>
        where
            cbc::Encryptor<C>: KeyIvInit + BlockModeEncrypt,
            C: cbc::cipher::BlockCipherEncrypt,
        {
            let e = cbc::Encryptor::<C>::new_from_slices(key, iv)
                .map_err(|_| Error::Reply("content key or IV has the wrong length".into()))?;
            Ok(e.encrypt_padded_vec::<Pkcs7>(pt))
        }
        match self {
            ContentCipher::Des => enc::<des::Des>(key, iv, plaintext),
            ContentCipher::Des3 => enc::<des::TdesEde3>(key, iv, plaintext),
            ContentCipher::Aes128 => enc::<aes::Aes128>(key, iv, plaintext),
            ContentCipher::Aes192 => enc::<aes::Aes192>(key, iv, plaintext),
            ContentCipher::Aes256 => enc::<aes::Aes256>(key, iv, plaintext),
        }
    }

    /// CBC decryption without unpadding, then a PKCS#7 padding check (RFC 5652 §6.3)
    /// that reads the whole last block whatever it finds: the plaintext with the padding
    /// removed when it is good, the whole decrypted text when it is not, and whether it
    /// was good. A ciphertext that is empty or not a whole number of blocks (visible to
    /// anyone) decrypts to nothing, not good.
    pub fn decrypt_uniform(self, key: &[u8], iv: &[u8], ciphertext: &[u8]) -> (Vec<u8>, bool) {
        use cbc::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::NoPadding};
        fn dec<C>(key: &[u8], iv: &[u8], ct: &[u8]) -> Option<Vec<u8>>
        where
            cbc::Decryptor<C>: KeyIvInit + BlockModeDecrypt,
            C: cbc::cipher::BlockCipherDecrypt,
        {
            let d = cbc::Decryptor::<C>::new_from_slices(key, iv).ok()?;
            d.decrypt_padded_vec::<NoPadding>(ct).ok()
        }
        let block = self.block_len();
        if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(block) {
            return (Vec::new(), false);
        }
        let raw = match self {
            ContentCipher::Des => dec::<des::Des>(key, iv, ciphertext),
            ContentCipher::Des3 => dec::<des::TdesEde3>(key, iv, ciphertext),
            ContentCipher::Aes128 => dec::<aes::Aes128>(key, iv, ciphertext),
            ContentCipher::Aes192 => dec::<aes::Aes192>(key, iv, ciphertext),
            ContentCipher::Aes256 => dec::<aes::Aes256>(key, iv, ciphertext),
        };
        let Some(mut raw) = raw else {
            return (Vec::new(), false);
        };
        let (len, good) = pkcs7_unpadded_len(&raw, block);
        raw.truncate(len);
        (raw, bool::from(good))
    }

    /// CBC decryption and PKCS#7 unpadding; `None` on any failure (one uniform outcome).
    pub fn decrypt(self, key: &[u8], iv: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>> {
        use cbc::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::Pkcs7};
        fn dec<C>(key: &[u8], iv: &[u8], ct: &[u8]) -> Option<Vec<u8>>
        where
            cbc::Decryptor<C>: KeyIvInit + BlockModeDecrypt,
            C: cbc::cipher::BlockCipherDecrypt,
        {
            let d = cbc::Decryptor::<C>::new_from_slices(key, iv).ok()?;
            d.decrypt_padded_vec::<Pkcs7>(ct).ok()
        }
        match self {
            ContentCipher::Des => dec::<des::Des>(key, iv, ciphertext),
            ContentCipher::Des3 => dec::<des::TdesEde3>(key, iv, ciphertext),
            ContentCipher::Aes128 => dec::<aes::Aes128>(key, iv, ciphertext),
            ContentCipher::Aes192 => dec::<aes::Aes192>(key, iv, ciphertext),
            ContentCipher::Aes256 => dec::<aes::Aes256>(key, iv, ciphertext),
        }
    }
}

/// The length of `raw` (a whole number of `block`-byte blocks, at least one) without its
/// PKCS#7 padding, and whether the padding is good, computed without branching on the
/// padding bytes: every byte of the last block is examined whatever the first bad one is.
/// When the padding is bad the length is that of `raw`.
fn pkcs7_unpadded_len(raw: &[u8], block: usize) -> (usize, subtle::Choice) {
    use subtle::{ConditionallySelectable, ConstantTimeEq, ConstantTimeGreater, ConstantTimeLess};
    let n = raw.len();
    let Some(&pad) = raw.last() else {
        return (0, subtle::Choice::from(0));
    };
    let block_u8 = u8::try_from(block).unwrap_or(u8::MAX);
    let mut good = pad.ct_gt(&0) & !pad.ct_gt(&block_u8);
    for i in 0..block.min(n) {
        let byte = raw[n - 1 - i];
        let inside = u8::try_from(i).unwrap_or(u8::MAX).ct_lt(&pad);
        good &= !inside | byte.ct_eq(&pad);
    }
    let strip = u64::conditional_select(&0, &u64::from(pad), good);
    let len = n.saturating_sub(usize::try_from(strip).unwrap_or(0));
    (len, good)
}

/// Digest algorithms of SignerInfos (docs/client-quirks.md, "Algorithms clients use").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestAlg {
    /// MD5: recognised so that it can be refused with badAlg unless enabled.
    Md5,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

/// Every digest the request verifier knows, strongest last. [`DigestAlg::accepted`] says
/// which of them an endpoint accepts, and GetCACaps advertises exactly those
/// ([`DigestAlg::caps_keyword`]), so the two cannot drift apart.
pub const DIGESTS: [DigestAlg; 5] = [
    DigestAlg::Md5,
    DigestAlg::Sha1,
    DigestAlg::Sha256,
    DigestAlg::Sha384,
    DigestAlg::Sha512,
];

impl DigestAlg {
    /// Whether a request signed with this digest is accepted under `options`: MD5 only
    /// where the endpoint enables it, the SHA family always (RFC 8894 §3.5.2).
    pub fn accepted(self, options: &DecodeOptions) -> bool {
        match self {
            DigestAlg::Md5 => options.allow_md5,
            DigestAlg::Sha1 | DigestAlg::Sha256 | DigestAlg::Sha384 | DigestAlg::Sha512 => true,
        }
    }

    /// The GetCACaps keyword of the digest (RFC 8894 §3.5.2 names SHA-1, SHA-256 and
    /// SHA-512; SHA-384 is spelled the same way, as other servers and clients do). MD5
    /// has none: clients use it only when a server advertises nothing.
    pub fn caps_keyword(self) -> Option<&'static str> {
        match self {
            DigestAlg::Md5 => None,
            DigestAlg::Sha1 => Some("SHA-1"),
            DigestAlg::Sha256 => Some("SHA-256"),
            DigestAlg::Sha384 => Some("SHA-384"),
            DigestAlg::Sha512 => Some("SHA-512"),
        }
    }

    /// The GetCACaps keywords of every digest accepted under `options`, in [`DIGESTS`]
    /// order.
    pub fn caps_keywords(options: &DecodeOptions) -> Vec<&'static str> {
        DIGESTS
            .iter()
            .filter(|d| d.accepted(options))
            .filter_map(|d| d.caps_keyword())
            .collect()
    }

    pub(super) fn from_oid(o: &Oid) -> Option<DigestAlg> {
        Some(match *o {
            oid::MD5 => DigestAlg::Md5,
            oid::SHA1 => DigestAlg::Sha1,
            oid::SHA256 => DigestAlg::Sha256,
            oid::SHA384 => DigestAlg::Sha384,
            oid::SHA512 => DigestAlg::Sha512,
            _ => return None,
        })
    }

    /// Its OID.
    pub fn oid(self) -> Oid {
        match self {
            DigestAlg::Md5 => oid::MD5,
            DigestAlg::Sha1 => oid::SHA1,
            DigestAlg::Sha256 => oid::SHA256,
            DigestAlg::Sha384 => oid::SHA384,
            DigestAlg::Sha512 => oid::SHA512,
        }
    }

    /// Hashes `data`.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            DigestAlg::Md5 => md5::Md5::digest(data).to_vec(),
            DigestAlg::Sha1 => sha1::Sha1::digest(data).to_vec(),
            DigestAlg::Sha256 => sha2::Sha256::digest(data).to_vec(),
            DigestAlg::Sha384 => sha2::Sha384::digest(data).to_vec(),
            DigestAlg::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    pub(super) fn hsm(self) -> Option<Digest> {
        Some(match self {
            DigestAlg::Md5 => return None,
            DigestAlg::Sha1 => Digest::Sha1,
            DigestAlg::Sha256 => Digest::Sha256,
            DigestAlg::Sha384 => Digest::Sha384,
            DigestAlg::Sha512 => Digest::Sha512,
        })
    }

    /// The digest and RSA scheme a reply is signed with: the client's digest, raised to
    /// SHA-256 when it used SHA-1 or MD5 (our keys never sign with SHA-1).
    pub fn reply_scheme(self) -> (DigestAlg, SignatureScheme) {
        match self.rsa_scheme() {
            Some(scheme) => (self, scheme),
            None => (DigestAlg::Sha256, SignatureScheme::RsaPkcs1Sha256),
        }
    }

    /// The RSASSA-PKCS1-v1_5 scheme (RFC 8017 §8.2) our keys sign a message with this
    /// digest in: SHA-256, SHA-384 and SHA-512 only (never SHA-1 or MD5).
    pub fn rsa_scheme(self) -> Option<SignatureScheme> {
        match self {
            DigestAlg::Sha256 => Some(SignatureScheme::RsaPkcs1Sha256),
            DigestAlg::Sha384 => Some(SignatureScheme::RsaPkcs1Sha384),
            DigestAlg::Sha512 => Some(SignatureScheme::RsaPkcs1Sha512),
            DigestAlg::Md5 | DigestAlg::Sha1 => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pkcs7_padding_check_agrees_with_the_cbc_crate() {
        let key = [7u8; 16];
        let iv = [9u8; 16];
        for len in 0..40 {
            let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let ct = ContentCipher::Aes128.encrypt(&key, &iv, &pt).unwrap();
            assert_eq!(
                ContentCipher::Aes128.decrypt_uniform(&key, &iv, &ct),
                (pt.clone(), true),
                "{len}"
            );
            // Any change of the last plaintext byte (through the previous ciphertext
            // block or the IV) is judged as the cbc crate judges it.
            let at = ct.len().saturating_sub(17);
            for x in [0x01u8, 0x02, 0x10, 0x11, 0x80] {
                let mut bad = ct.clone();
                let mut bad_iv = iv;
                if ct.len() > 16 {
                    bad[at] ^= x;
                } else {
                    bad_iv[15] ^= x;
                }
                let want = ContentCipher::Aes128.decrypt(&key, &bad_iv, &bad);
                let (got, good) = ContentCipher::Aes128.decrypt_uniform(&key, &bad_iv, &bad);
                assert_eq!(good, want.is_some(), "{len} {x:02x}");
                if let Some(w) = want {
                    assert_eq!(got, w);
                } else {
                    assert_eq!(got.len(), ct.len(), "bad padding keeps the whole text");
                }
            }
        }
        // Not a whole number of blocks, or empty: nothing, not good.
        assert_eq!(
            ContentCipher::Aes128.decrypt_uniform(&key, &iv, &[1u8; 17]),
            (Vec::new(), false)
        );
        assert_eq!(
            ContentCipher::Aes128.decrypt_uniform(&key, &iv, &[]),
            (Vec::new(), false)
        );
    }

    #[test]
    fn caps_keywords_follow_the_accepted_digests() {
        let plain = DecodeOptions::default();
        assert_eq!(
            DigestAlg::caps_keywords(&plain),
            ["SHA-1", "SHA-256", "SHA-384", "SHA-512"]
        );
        assert!(!DigestAlg::Md5.accepted(&plain));
        let md5 = DecodeOptions {
            allow_md5: true,
            ..plain
        };
        assert!(DigestAlg::Md5.accepted(&md5));
        assert_eq!(
            DigestAlg::caps_keywords(&md5),
            DigestAlg::caps_keywords(&plain)
        );
    }
}
