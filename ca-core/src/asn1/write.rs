//! The one DER writer for structures built from already-encoded parts (X.690 §8, §10):
//! SCEP's pkiMessages and envelopes, certs-only SignedData, EST's CsrAttrs.
//!
//! Why a hand writer beside `der`'s encoder: these builders assemble bytes that must stay
//! exactly as received or as signed (signed attributes, certificates taken from
//! requests), and most of them are infallible today. `der`'s encoder would need a
//! [`der::Tag`] (parsed, fallible) and a [`der::Length`] (bounded, fallible) for every
//! element, turning each builder into a `Result` for errors that cannot happen at these
//! sizes. The writer is one function, [`tlv`]; a test checks that its output is byte for
//! byte what `der` encodes, for every tag and length class in use.

use const_oid::ObjectIdentifier;

/// Identifier octets used by the builders and the SCEP BER reader (universal class
/// unless noted; X.690 §8.1.2).
pub mod tag {
    /// INTEGER.
    pub const INTEGER: u8 = 0x02;
    /// BIT STRING.
    pub const BIT_STRING: u8 = 0x03;
    /// OCTET STRING (primitive form).
    pub const OCTET_STRING: u8 = 0x04;
    /// NULL.
    pub const NULL: u8 = 0x05;
    /// OBJECT IDENTIFIER.
    pub const OID: u8 = 0x06;
    /// UTF8String.
    pub const UTF8_STRING: u8 = 0x0c;
    /// PrintableString.
    pub const PRINTABLE_STRING: u8 = 0x13;
    /// UTCTime.
    pub const UTC_TIME: u8 = 0x17;
    /// SEQUENCE (constructed).
    pub const SEQUENCE: u8 = 0x30;
    /// SET (constructed).
    pub const SET: u8 = 0x31;
    /// `[0]` constructed, context-specific.
    pub const CTX0: u8 = 0xa0;
    /// `[1]` constructed, context-specific.
    pub const CTX1: u8 = 0xa1;
    /// `[2]` constructed, context-specific.
    pub const CTX2: u8 = 0xa2;
    /// `[0]` primitive, context-specific.
    pub const CTX0_PRIM: u8 = 0x80;
}

/// A DER element: one identifier octet, the definite length in its shortest form
/// (X.690 §10.1, §8.1.3), then `content`.
pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = header(tag, content.len());
    out.extend_from_slice(content);
    out
}

/// The identifier and length octets of a DER element of `len` content octets (X.690
/// §8.1.3, shortest form): for content written separately, such as the streamed
/// entries of a CRL.
pub fn header(tag: u8, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out
}

/// A constructed element from already-encoded parts, in the given order.
pub fn cons(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    tlv(tag, &parts.concat())
}

/// A SEQUENCE of already-encoded parts.
pub fn seq(parts: &[&[u8]]) -> Vec<u8> {
    cons(tag::SEQUENCE, parts)
}

/// A DER SET OF: the encodings sorted (X.690 §11.6).
pub fn set_of(mut parts: Vec<Vec<u8>>) -> Vec<u8> {
    parts.sort();
    tlv(tag::SET, &parts.concat())
}

/// An OBJECT IDENTIFIER (X.690 §8.19).
pub fn oid(o: &ObjectIdentifier) -> Vec<u8> {
    tlv(tag::OID, o.as_bytes())
}

/// An INTEGER from a small non-negative value (X.690 §8.3).
pub fn small_int(v: u8) -> Vec<u8> {
    if v < 0x80 {
        tlv(tag::INTEGER, &[v])
    } else {
        tlv(tag::INTEGER, &[0, v])
    }
}

/// An AlgorithmIdentifier (RFC 5280 §4.1.1.2) with NULL parameters (RSA, digests) or
/// none.
pub fn alg(o: &ObjectIdentifier, null_params: bool) -> Vec<u8> {
    if null_params {
        seq(&[&oid(o), &[tag::NULL, 0]])
    } else {
        seq(&[&oid(o)])
    }
}

/// An Attribute (RFC 5652 §5.3, X.501): `SEQUENCE { type, SET { values } }`, the values
/// already encoded and in the order given.
pub fn attribute(o: &ObjectIdentifier, values: &[u8]) -> Vec<u8> {
    seq(&[&oid(o), &tlv(tag::SET, values)])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use der::Encode;

    /// The hand writers this one replaced: SCEP's `ber::tlv` moved here unchanged, and
    /// EST's `encoding::tlv` was the same code token for token; EST's `csrattrs::tlv`
    /// differed (it only handled lengths below 65,536, all it was used for) and is kept
    /// here verbatim as the reference for "the output did not change". The comparison
    /// with `der`'s encoder below covers every length class for all of them.
    fn old_csrattrs(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let n = content.len();
        if n < 0x80 {
            out.push(n as u8);
        } else if n < 0x100 {
            out.extend_from_slice(&[0x81, n as u8]);
        } else {
            out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
        }
        out.extend_from_slice(content);
        out
    }

    const TAGS: [u8; 14] = [
        tag::INTEGER,
        tag::BIT_STRING,
        tag::OCTET_STRING,
        tag::NULL,
        tag::OID,
        tag::UTF8_STRING,
        tag::PRINTABLE_STRING,
        tag::UTC_TIME,
        tag::SEQUENCE,
        tag::SET,
        tag::CTX0,
        tag::CTX1,
        tag::CTX2,
        tag::CTX0_PRIM,
    ];

    fn lengths() -> Vec<usize> {
        let mut v: Vec<usize> = (0..=300).collect();
        v.extend([0xfff, 0x1000, 0xffff, 0x1_0000, 0x1_0001, 70_000]);
        v
    }

    #[test]
    fn output_is_what_the_old_writers_made() {
        for len in lengths() {
            let content = vec![0x5au8; len];
            for t in TAGS {
                if len < 0x1_0000 {
                    assert_eq!(tlv(t, &content), old_csrattrs(t, &content), "{t:02x} {len}");
                }
            }
        }
    }

    #[test]
    fn output_is_what_der_encodes() {
        for len in lengths() {
            let content = vec![0xa5u8; len];
            for t in TAGS {
                let tag = <der::Tag as der::Decode>::from_der(&[t]).unwrap();
                let any = der::asn1::AnyRef::new(tag, &content).unwrap();
                assert_eq!(tlv(t, &content), any.to_der().unwrap(), "{t:02x} {len}");
            }
        }
        let o = crate::asn1::oid::SHA256_WITH_RSA;
        assert_eq!(oid(&o), o.to_der().unwrap());
        for v in [0u8, 1, 5, 0x7f, 0x80, 0xff] {
            assert_eq!(
                small_int(v),
                der::asn1::Uint::new(&[v]).unwrap().to_der().unwrap()
            );
        }
        let null_alg = spki::AlgorithmIdentifierOwned {
            oid: o,
            parameters: Some(der::asn1::Null.into()),
        };
        assert_eq!(alg(&o, true), null_alg.to_der().unwrap());
        let bare = spki::AlgorithmIdentifierOwned {
            oid: o,
            parameters: None,
        };
        assert_eq!(alg(&o, false), bare.to_der().unwrap());
    }

    #[test]
    fn set_of_sorts_and_attributes_keep_order() {
        let a = vec![0x02, 0x01, 0x02];
        let b = vec![0x02, 0x01, 0x01];
        assert_eq!(
            set_of(vec![a.clone(), b.clone()]),
            [&[0x31, 0x06][..], &b, &a].concat()
        );
        let o = crate::asn1::oid::DATA;
        assert_eq!(
            attribute(&o, &[a.clone(), b.clone()].concat()),
            seq(&[&oid(&o), &tlv(tag::SET, &[a, b].concat())])
        );
    }
}
