//! The certs-only ("degenerate") SignedData that SCEP and EST both answer with.

use super::oid;
use super::write::{self, tag};

/// A degenerate certs-only SignedData ContentInfo (RFC 5652 §5.1, §5.2; RFC 8894 §3.4;
/// RFC 7030 §4.1.3; RFC 8551 §3.2.2 "certs-only"): version 1, no digest algorithms, an
/// encapContentInfo of type id-data without content, `certs` in the order given (not
/// sorted: some clients take the first certificate), `crls` in the order given, and no
/// signers. An empty `certs` or `crls` list leaves its `[0]`/`[1]` field out (both are
/// OPTIONAL, §5.1).
pub fn certs_only(certs: &[&[u8]], crls: &[&[u8]]) -> Vec<u8> {
    let mut parts: Vec<Vec<u8>> = vec![
        write::small_int(1),
        write::tlv(tag::SET, &[]),
        write::seq(&[&write::oid(&oid::DATA)]),
    ];
    if !certs.is_empty() {
        parts.push(write::tlv(tag::CTX0, &certs.concat()));
    }
    if !crls.is_empty() {
        parts.push(write::tlv(tag::CTX1, &crls.concat()));
    }
    parts.push(write::tlv(tag::SET, &[]));
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    content_info(&oid::SIGNED_DATA, &write::seq(&refs))
}

/// A ContentInfo (RFC 5652 §3): `SEQUENCE { contentType, [0] EXPLICIT content }`.
pub fn content_info(content_type: &const_oid::ObjectIdentifier, content: &[u8]) -> Vec<u8> {
    write::seq(&[&write::oid(content_type), &write::tlv(tag::CTX0, content)])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// EST's former builder (`est::encoding::certs_only`), verbatim but for its writer:
    /// the reference the shared builder is compared with.
    fn old_est(certs: &[Vec<u8>]) -> Vec<u8> {
        let tlv = write::tlv;
        const SIGNED_DATA: [u8; 11] = [
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02,
        ];
        const DATA: [u8; 11] = [
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01,
        ];
        let mut sd = Vec::new();
        sd.extend_from_slice(&[0x02, 0x01, 0x01]);
        sd.extend_from_slice(&[0x31, 0x00]);
        sd.extend(tlv(0x30, &DATA));
        sd.extend(tlv(0xa0, &certs.concat()));
        sd.extend_from_slice(&[0x31, 0x00]);
        let signed = tlv(0x30, &sd);
        let mut ci = SIGNED_DATA.to_vec();
        ci.extend(tlv(0xa0, &signed));
        tlv(0x30, &ci)
    }

    #[test]
    fn same_bytes_as_the_est_builder_for_every_chain() {
        let a = vec![0x30, 0x00];
        let b = vec![0x30, 0x01, 0x00];
        let big = [&[0x30, 0x82, 0x01, 0x2c][..], &[7u8; 300]].concat();
        for chain in [
            vec![a.clone()],
            vec![a.clone(), b.clone()],
            vec![big.clone(), a.clone(), big.clone()],
        ] {
            let refs: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
            assert_eq!(certs_only(&refs, &[]), old_est(&chain));
        }
    }

    #[test]
    fn crls_only_and_both() {
        use der::Decode;
        let cert = [0x30, 0x00];
        let crl = [0x30, 0x01, 0x05];
        let only = certs_only(&[], &[&crl]);
        // No [0] at all, the CRL under [1], then the empty signerInfos.
        assert_eq!(
            &only[only.len() - 7..],
            &[0xa1, 0x03, 0x30, 0x01, 0x05, 0x31, 0x00]
        );
        assert!(!only.windows(2).any(|w| w == [0xa0, 0x00]));
        let both = certs_only(&[&cert], &[&crl]);
        assert_eq!(
            der::Tagged::tag(&der::Any::from_der(&both).unwrap()),
            der::Tag::Sequence
        );
        assert_eq!(
            &both[both.len() - 11..],
            &[
                0xa0, 0x02, 0x30, 0x00, 0xa1, 0x03, 0x30, 0x01, 0x05, 0x31, 0x00
            ]
        );
    }
}
