//! EST payload encodings (RFC 7030 §4, RFC 8951 §3): base64 bodies, certs-only PKCS#7,
//! and the multipart/mixed answer of serverkeygen.
//!
//! Liberal in what is accepted (whitespace, CRLF, PEM armour, with or without
//! `Content-Transfer-Encoding`), conservative in what is sent: base64 in 64-column lines
//! (libest needs line breaks) with `Content-Transfer-Encoding: base64`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::{Error, Result};

/// Largest EST request body accepted before decoding (a CSR is at most
/// [`ca_core::csr::MAX_CSR_BYTES`] DER, a third more in base64, plus line breaks).
pub const MAX_BODY_BYTES: usize = ca_core::csr::MAX_CSR_BYTES * 3 / 2;

/// `application/pkcs7-mime; smime-type=certs-only` (RFC 7030 §4.1.3, §4.2.3, RFC 8551).
pub const CT_CERTS_ONLY: &str = "application/pkcs7-mime; smime-type=certs-only";
/// `application/csrattrs` (RFC 7030 §4.5.2).
pub const CT_CSRATTRS: &str = "application/csrattrs";
/// `application/pkcs8` (RFC 7030 §4.4.2, RFC 5958).
pub const CT_PKCS8: &str = "application/pkcs8";

/// Decodes an EST request body to DER. Accepts base64 with any whitespace (RFC 8951 §3),
/// PEM armour (any label, as Azure IoT Edge sends `CERTIFICATE REQUEST`), and raw DER
/// (a body that starts with a SEQUENCE tag and is not base64 text).
pub fn decode_body(body: &[u8]) -> Result<Vec<u8>> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Error::BadRequest(format!(
            "body is {} bytes; the limit is {MAX_BODY_BYTES}",
            body.len()
        )));
    }
    if body.first() == Some(&0x30) {
        return Ok(raw_der(body).to_vec());
    }
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Err(Error::BadRequest("empty body".into()));
    }
    let text = std::str::from_utf8(trimmed)
        .map_err(|_| Error::BadRequest("body is neither base64 text nor DER".into()))?;
    let inner = if text.starts_with("-----BEGIN ") {
        let after = text
            .find('\n')
            .map(|i| &text[i + 1..])
            .ok_or_else(|| Error::BadRequest("PEM armour without content".into()))?;
        let end = after
            .find("-----END ")
            .ok_or_else(|| Error::BadRequest("PEM armour without an END line".into()))?;
        &after[..end]
    } else {
        text
    };
    let compact: String = inner.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return Err(Error::BadRequest("empty body".into()));
    }
    STANDARD
        .decode(&compact)
        .or_else(|_| {
            base64::engine::general_purpose::STANDARD_NO_PAD.decode(compact.trim_end_matches('='))
        })
        .map_err(|_| Error::BadRequest("body is not valid base64".into()))
}

/// A raw DER body as sent, without the whitespace some clients append after it. Only
/// bytes past the outer TLV's own length are dropped, and only when they are all
/// whitespace: a DER value whose last octets happen to be 0x09–0x0d or 0x20 is kept whole
/// (trimming the body would cut them off). Anything else is left for the DER decoder to
/// refuse.
fn raw_der(body: &[u8]) -> &[u8] {
    use der::Encode;
    let Ok(reader) = der::SliceReader::new(body) else {
        return body;
    };
    let Ok(header) = der::Header::peek(&reader) else {
        return body;
    };
    let Ok(header_len) = header.encoded_len() else {
        return body;
    };
    let Ok(total) = header_len + header.length() else {
        return body;
    };
    let Ok(total) = usize::try_from(total) else {
        return body;
    };
    match body.split_at_checked(total) {
        Some((value, rest)) if rest.iter().all(u8::is_ascii_whitespace) => value,
        _ => body,
    }
}

/// base64 in 64-column lines, each ended by CRLF (RFC 2045 §6.8 line length).
pub fn base64_lines(der: &[u8]) -> String {
    let b = STANDARD.encode(der);
    let mut out = String::with_capacity(b.len() + b.len() / 32 + 2);
    for chunk in b.as_bytes().chunks(64) {
        // base64 output is ASCII.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push_str("\r\n");
    }
    out
}

/// A degenerate certs-only SignedData (RFC 5652 §5, RFC 8551 §3.2.2 "certs-only"): no
/// signers, no content, the certificates in the order given. The one builder, shared
/// with SCEP (`ca_core::asn1::certs_only`).
pub fn certs_only(certs: &[Vec<u8>]) -> Vec<u8> {
    let refs: Vec<&[u8]> = certs.iter().map(Vec::as_slice).collect();
    ca_core::asn1::certs_only(&refs, &[])
}

/// The serverkeygen answer (RFC 7030 §4.4.2): multipart/mixed with the PKCS#8 private
/// key and the certs-only certificate, each base64. Returns the content type (with its
/// boundary) and the body.
pub fn serverkeygen_multipart(pkcs8_der: &[u8], certs_only_der: &[u8]) -> (String, String) {
    let mut r = [0u8; 12];
    let _ = aws_lc_rs::rand::fill(&mut r);
    let boundary = format!("privca-est-{}", hex::encode(r));
    let mut body = String::new();
    for (ct, der) in [(CT_PKCS8, pkcs8_der), (CT_CERTS_ONLY, certs_only_der)] {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Type: {ct}\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        ));
        body.push_str(&base64_lines(der));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (format!("multipart/mixed; boundary={boundary}"), body)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn raw_der_ending_in_a_whitespace_byte_is_kept_whole() {
        // INTEGER 0x20 inside a SEQUENCE: the last octet is an ASCII space, and one
        // ending in 0x0a is a newline; both are part of the value.
        for last in [0x20u8, 0x0a, 0x09, 0x0d] {
            let der = vec![0x30, 0x03, 0x02, 0x01, last];
            assert_eq!(decode_body(&der).unwrap(), der);
            // A newline a client appended after the DER is dropped.
            let mut sent = der.clone();
            sent.extend_from_slice(b"\r\n");
            assert_eq!(decode_body(&sent).unwrap(), der);
        }
        // Bytes after the value that are not whitespace are left for the decoder.
        let odd = vec![0x30, 0x03, 0x02, 0x01, 0x05, 0x00];
        assert_eq!(decode_body(&odd).unwrap(), odd);
    }

    #[test]
    fn bodies_in_every_shape_decode_to_the_same_der() {
        let der = vec![0x30, 0x03, 0x02, 0x01, 0x05];
        let b64 = STANDARD.encode(&der);
        let shapes = [
            b64.clone(),
            format!("{b64}\n"),
            format!("{}\r\n{}\r\n", &b64[..3], &b64[3..]),
            format!(
                "-----BEGIN CERTIFICATE REQUEST-----\r\n{b64}\r\n-----END CERTIFICATE REQUEST-----\r\n"
            ),
            format!(" {} ", b64.trim_end_matches('=')),
        ];
        for s in shapes {
            assert_eq!(decode_body(s.as_bytes()).unwrap(), der, "{s:?}");
        }
        assert_eq!(decode_body(&der).unwrap(), der);
        assert!(decode_body(b"").is_err());
        assert!(decode_body(b"  \r\n").is_err());
        assert!(decode_body(b"!!!!").is_err());
        assert!(decode_body(&[0xff, 0xfe]).is_err());
        assert!(decode_body(b"-----BEGIN X-----\nAAAA").is_err());
        assert!(decode_body(&vec![b'A'; MAX_BODY_BYTES + 1]).is_err());
    }

    #[test]
    fn output_lines_are_64_columns() {
        let text = base64_lines(&[7u8; 200]);
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert!(lines.iter().all(|l| l.len() <= 64));
        assert_eq!(lines[0].len(), 64);
        assert_eq!(decode_body(text.as_bytes()).unwrap(), vec![7u8; 200]);
    }

    #[test]
    fn certs_only_is_der_signed_data() {
        use der::Decode;
        let p7 = certs_only(&[vec![0x30, 0x00], vec![0x30, 0x01, 0x00]]);
        let any = der::Any::from_der(&p7).unwrap();
        assert_eq!(der::Tagged::tag(&any), der::Tag::Sequence);
        assert_eq!(
            &p7[p7.len() - 7..],
            &[0x30, 0x00, 0x30, 0x01, 0x00, 0x31, 0x00]
        );
    }
}
