//! A small, strict-where-it-matters BER reader and DER writer (X.690).
//!
//! SCEP clients send BER: indefinite lengths and constructed OCTET STRINGs are normal
//! (Java/BouncyCastle, OpenSSL `-stream`; docs/client-quirks.md). The reader keeps every
//! element's raw bytes so that signed attributes can be verified over the bytes as
//! received (RFC 5652 §5.4), which a decode-and-re-encode library cannot promise.
//! The writer emits DER only; it is the workspace's one writer, `ca_core::asn1::write`,
//! re-exported here.

use crate::Error as DecodeError;

/// Deepest nesting accepted; pkiMessages nest about 12 levels.
pub const MAX_DEPTH: usize = 40;

/// Identifier octets and the DER writer are the shared ones (`ca_core::asn1::write`),
/// re-exported so that `scep::ber::…` paths stay as they were.
pub use ca_core::asn1::write::{alg, cons, oid, seq, set_of, small_int, tag, tlv};

/// One decoded element. `raw` is the whole encoding as received (header, content, and
/// the end-of-contents octets of an indefinite length).
#[derive(Clone, Copy, Debug)]
pub struct Element<'a> {
    /// The identifier octet (class, constructed bit, tag number < 31).
    pub tag: u8,
    /// The content octets (for an indefinite length: up to, not including, the EOC).
    pub content: &'a [u8],
    /// The whole element as received.
    pub raw: &'a [u8],
    /// True for an indefinite-length encoding.
    pub indefinite: bool,
}

impl<'a> Element<'a> {
    /// True when the constructed bit is set.
    pub fn constructed(&self) -> bool {
        self.tag & 0x20 != 0
    }

    /// The children of a constructed element.
    pub fn children(&self) -> Result<Vec<Element<'a>>, DecodeError> {
        if !self.constructed() {
            return Err(DecodeError::malformed("expected a constructed element"));
        }
        children(self.content, 1)
    }

    /// Checks the tag and returns the element.
    pub fn expect(self, tag: u8, what: &str) -> Result<Element<'a>, DecodeError> {
        if self.tag == tag {
            Ok(self)
        } else {
            Err(DecodeError::malformed(format!(
                "{what}: expected tag 0x{tag:02x}, found 0x{:02x}",
                self.tag
            )))
        }
    }

    /// The value of an OCTET STRING, joining the segments of a constructed one (BER).
    /// `expect_tag` is the primitive tag to accept (0x04, or an implicit context tag).
    pub fn octets(&self, expect_tag: u8) -> Result<Vec<u8>, DecodeError> {
        let mut out = Vec::new();
        self.collect_octets(expect_tag, &mut out, 0)?;
        Ok(out)
    }

    fn collect_octets(
        &self,
        expect_tag: u8,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::malformed("OCTET STRING nested too deeply"));
        }
        if self.tag == expect_tag {
            out.extend_from_slice(self.content);
            Ok(())
        } else if self.tag == expect_tag | 0x20 {
            for c in children(self.content, depth + 1)? {
                // Segments of a constructed string are universal OCTET STRINGs.
                c.collect_octets(tag::OCTET_STRING, out, depth + 1)?;
            }
            Ok(())
        } else {
            Err(DecodeError::malformed(format!(
                "expected an OCTET STRING, found tag 0x{:02x}",
                self.tag
            )))
        }
    }
}

/// Reads one element from the front of `input`; returns it and the rest.
pub fn read(input: &[u8]) -> Result<(Element<'_>, &[u8]), DecodeError> {
    read_at(input, 0)
}

/// Reads exactly one element that fills `input`.
pub fn read_all(input: &[u8]) -> Result<Element<'_>, DecodeError> {
    let (e, rest) = read(input)?;
    if !rest.is_empty() {
        return Err(DecodeError::malformed("trailing bytes after the element"));
    }
    Ok(e)
}

/// The elements that make up `content`.
pub fn children(content: &[u8], depth: usize) -> Result<Vec<Element<'_>>, DecodeError> {
    let mut out = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        let (e, r) = read_at(rest, depth)?;
        out.push(e);
        rest = r;
    }
    Ok(out)
}

fn read_at(input: &[u8], depth: usize) -> Result<(Element<'_>, &[u8]), DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::malformed("nested too deeply"));
    }
    let short = || DecodeError::malformed("truncated element");
    let &tag = input.first().ok_or_else(short)?;
    if tag & 0x1f == 0x1f {
        return Err(DecodeError::malformed(
            "high tag numbers are not used in SCEP",
        ));
    }
    let &first = input.get(1).ok_or_else(short)?;
    let mut pos = 2usize;
    if first == 0x80 {
        // Indefinite length: only for constructed encodings (X.690 §8.1.3.6).
        if tag & 0x20 == 0 {
            return Err(DecodeError::malformed("indefinite length on a primitive"));
        }
        let body = &input[pos..];
        let mut rest = body;
        loop {
            if rest.len() >= 2 && rest[0] == 0 && rest[1] == 0 {
                let content_len = body.len() - rest.len();
                let total = pos + content_len + 2;
                let e = Element {
                    tag,
                    content: &body[..content_len],
                    raw: &input[..total],
                    indefinite: true,
                };
                return Ok((e, &input[total..]));
            }
            if rest.is_empty() {
                return Err(short());
            }
            let (_, r) = read_at(rest, depth + 1)?;
            rest = r;
        }
    }
    let len = if first & 0x80 == 0 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n > 4 {
            return Err(DecodeError::malformed("length too large"));
        }
        let bytes = input.get(pos..pos + n).ok_or_else(short)?;
        pos += n;
        bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    let end = pos.checked_add(len).ok_or_else(short)?;
    let content = input.get(pos..end).ok_or_else(short)?;
    Ok((
        Element {
            tag,
            content,
            raw: &input[..end],
            indefinite: false,
        },
        &input[end..],
    ))
}

/// Parses an OBJECT IDENTIFIER element.
pub fn parse_oid(e: &Element<'_>) -> Result<const_oid::ObjectIdentifier, DecodeError> {
    if e.tag != tag::OID {
        return Err(DecodeError::malformed("expected an OBJECT IDENTIFIER"));
    }
    const_oid::ObjectIdentifier::from_bytes(e.content)
        .map_err(|_| DecodeError::malformed("invalid OBJECT IDENTIFIER"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indefinite_and_constructed_octets() {
        // [0] indefinite { OCTET STRING constructed indefinite { 04 02 'ab', 04 01 'c' } }
        let input = [
            0xa0, 0x80, 0x24, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c', 0, 0, 0, 0,
        ];
        let e = read_all(&input).expect("decodes");
        assert!(e.indefinite);
        let kids = e.children().expect("children");
        assert_eq!(kids.len(), 1);
        assert_eq!(kids[0].octets(tag::OCTET_STRING).expect("octets"), b"abc");
    }

    #[test]
    fn truncated_and_hostile_inputs_fail_cleanly() {
        for bad in [
            &[0x30][..],
            &[0x30, 0x05, 0x01],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x80, 0x04, 0x01],
            &[0x04, 0x80, 0, 0],
            &[0x1f, 0x01, 0x00],
        ] {
            assert!(read_all(bad).is_err(), "{bad:?}");
        }
        // Deep nesting is refused, not a stack overflow.
        let mut deep = Vec::new();
        for _ in 0..10_000 {
            deep.extend_from_slice(&[0x30, 0x80]);
        }
        assert!(read_all(&deep).is_err());
    }

    #[test]
    fn long_lengths_round_trip() {
        let content = vec![7u8; 300];
        let enc = tlv(tag::OCTET_STRING, &content);
        assert_eq!(&enc[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let e = read_all(&enc).expect("decodes");
        assert_eq!(e.content, &content[..]);
    }
}
