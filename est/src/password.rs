//! HTTP Basic credentials (RFC 7617) and password hashes (PBKDF2-HMAC-SHA256, RFC 8018
//! §5.2, through aws-lc-rs) in PHC string form. Passwords are never stored or logged.

use std::num::NonZeroU32;

use aws_lc_rs::pbkdf2;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

use crate::{Error, Result};

/// Iterations `privca est hash-password` uses unless told otherwise (OWASP 2023 for
/// PBKDF2-HMAC-SHA256).
pub const DEFAULT_ITERATIONS: u32 = 600_000;
/// Fewest iterations a configured hash may use.
pub const MIN_ITERATIONS: u32 = 1_000;
/// Most iterations accepted (a hash with more would let a config stall every request).
pub const MAX_ITERATIONS: u32 = 10_000_000;
/// Longest `Authorization` header value accepted.
pub const MAX_AUTH_HEADER: usize = 1024;

const PREFIX: &str = "$pbkdf2-sha256$i=";

/// A parsed password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    iterations: NonZeroU32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHash")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl PasswordHash {
    /// Hashes `password` with a fresh 16-byte salt.
    pub fn new(password: &[u8], iterations: u32) -> Result<PasswordHash> {
        let iterations = check_iterations(iterations)?;
        let mut salt = vec![0u8; 16];
        aws_lc_rs::rand::fill(&mut salt)
            .map_err(|_| Error::Config("no randomness for the salt".into()))?;
        let mut hash = vec![0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            &salt,
            password,
            &mut hash,
        );
        Ok(PasswordHash {
            iterations,
            salt,
            hash,
        })
    }

    /// Parses `$pbkdf2-sha256$i=<n>$<salt b64>$<hash b64>`.
    pub fn parse(text: &str) -> Result<PasswordHash> {
        let bad = || {
            Error::Config(
                "password_hash must look like $pbkdf2-sha256$i=600000$<salt>$<hash> (use `privca est hash-password`)"
                    .into(),
            )
        };
        let rest = text.trim().strip_prefix(PREFIX).ok_or_else(bad)?;
        let mut parts = rest.split('$');
        let (Some(i), Some(salt), Some(hash), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let iterations = check_iterations(i.parse().map_err(|_| bad())?)?;
        let dec = |s: &str| {
            STANDARD_NO_PAD
                .decode(s.trim_end_matches('='))
                .map_err(|_| bad())
        };
        let (salt, hash) = (dec(salt)?, dec(hash)?);
        if salt.len() < 8 || hash.len() < 16 || hash.len() > 64 {
            return Err(bad());
        }
        Ok(PasswordHash {
            iterations,
            salt,
            hash,
        })
    }

    /// A hash no password matches, costing what `self` costs to check: what an unknown
    /// user name is checked against, so that its answer takes as long as a known one's.
    pub fn decoy(&self) -> PasswordHash {
        let mut salt = vec![0u8; self.salt.len()];
        // Without randomness the salt stays zero; the decoy still matches nothing
        // (its hash is all zero bytes, which no PBKDF2 output is expected to be).
        let _ = aws_lc_rs::rand::fill(&mut salt);
        PasswordHash {
            iterations: self.iterations,
            salt,
            hash: vec![0u8; self.hash.len()],
        }
    }

    /// PBKDF2 iterations.
    pub fn iterations(&self) -> u32 {
        self.iterations.get()
    }

    /// Checks `password` in constant time.
    pub fn verify(&self, password: &[u8]) -> bool {
        pbkdf2::verify(
            pbkdf2::PBKDF2_HMAC_SHA256,
            self.iterations,
            &self.salt,
            password,
            &self.hash,
        )
        .is_ok()
    }
}

impl std::fmt::Display for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{PREFIX}{}${}${}",
            self.iterations,
            STANDARD_NO_PAD.encode(&self.salt),
            STANDARD_NO_PAD.encode(&self.hash)
        )
    }
}

fn check_iterations(i: u32) -> Result<NonZeroU32> {
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&i) {
        return Err(Error::Config(format!(
            "iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}"
        )));
    }
    NonZeroU32::new(i).ok_or_else(|| Error::Config("iterations must not be 0".into()))
}

/// Credentials from an `Authorization: Basic` header (RFC 7617 §2). The password's
/// `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    /// User name.
    pub username: String,
    /// Password (never logged; wiped when dropped).
    pub password: zeroize::Zeroizing<String>,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Parses an `Authorization` header value. `Ok(None)` when it is another scheme.
pub fn parse_basic(value: &[u8]) -> Result<Option<BasicCredentials>> {
    if value.len() > MAX_AUTH_HEADER {
        return Err(Error::BadRequest("Authorization header too long".into()));
    }
    let text = std::str::from_utf8(value)
        .map_err(|_| Error::BadRequest("Authorization header is not text".into()))?
        .trim();
    let Some((scheme, rest)) = text.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    // The decoded bytes hold the password: wiped when dropped.
    let raw = zeroize::Zeroizing::new(
        STANDARD
            .decode(rest.trim())
            .or_else(|_| STANDARD_NO_PAD.decode(rest.trim().trim_end_matches('=')))
            .map_err(|_| Error::BadRequest("Basic credentials are not base64".into()))?,
    );
    let raw = std::str::from_utf8(&raw)
        .map_err(|_| Error::BadRequest("Basic credentials are not UTF-8".into()))?;
    let (user, pass) = raw
        .split_once(':')
        .ok_or_else(|| Error::BadRequest("Basic credentials lack ':'".into()))?;
    Ok(Some(BasicCredentials {
        username: user.to_string(),
        password: zeroize::Zeroizing::new(pass.to_string()),
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hash_round_trip_and_wrong_password() {
        let h = PasswordHash::new(b"s3cret", MIN_ITERATIONS).unwrap();
        let text = h.to_string();
        assert!(text.starts_with("$pbkdf2-sha256$i=1000$"), "{text}");
        let p = PasswordHash::parse(&text).unwrap();
        assert!(p.verify(b"s3cret"));
        assert!(!p.verify(b"s3cret "));
        assert!(!p.verify(b""));
        assert!(!format!("{p:?}").contains(&text[25..]));
    }

    #[test]
    fn bad_hashes_are_refused() {
        for t in [
            "",
            "s3cret",
            "$pbkdf2-sha256$i=10$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
            "$pbkdf2-sha256$i=1000$AAAAAAAAAAA",
            "$pbkdf2-sha256$i=x$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
            "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        ] {
            assert!(PasswordHash::parse(t).is_err(), "{t}");
        }
    }

    #[test]
    fn basic_header() {
        let v = format!("Basic {}", STANDARD.encode("alice:pa:ss"));
        let c = parse_basic(v.as_bytes()).unwrap().unwrap();
        assert_eq!(c.username, "alice");
        assert_eq!(c.password.as_str(), "pa:ss");
        assert!(!format!("{c:?}").contains("pa:ss"));
        assert_eq!(parse_basic(b"Bearer x").unwrap(), None);
        assert!(parse_basic(b"Basic !!!").is_err());
        assert!(parse_basic(format!("Basic {}", STANDARD.encode("nocolon")).as_bytes()).is_err());
        assert!(parse_basic(&[b'a'; 2000]).is_err());
    }
}
