//! The DNS messages dns-01 validation needs (RFC 8555 §8.4): one TXT question for
//! `_acme-challenge.<name>` and the reading of the answer (RFC 1035 §4.1), CNAMEs in the
//! answer section followed (the "delegated `_acme-challenge`" pattern). Sans-I/O: the
//! server crate sends the bytes (UDP, then TCP when the answer is truncated, RFC 7766).
//!
//! Limits: names of at most 255 octets (RFC 1035 §2.3.4), at most [`MAX_POINTERS`]
//! compression pointers per name and only pointing backwards, at most [`MAX_RECORDS`]
//! answer records read and [`MAX_CNAMES`] CNAME hops; anything else is an error, never a
//! panic.

use crate::{Error, Result};

/// Resource record type TXT (RFC 1035 §3.2.2).
pub const TYPE_TXT: u16 = 16;
/// Resource record type CNAME (RFC 1035 §3.2.2).
pub const TYPE_CNAME: u16 = 5;
/// Resource record type OPT (RFC 6891 §6.1.1).
const TYPE_OPT: u16 = 41;
/// The UDP payload size advertised with EDNS(0) (RFC 6891 §6.2.5; 1232 avoids IP
/// fragmentation) and the size of the receive buffer.
pub const EDNS_UDP_SIZE: u16 = 1232;
/// Most compression pointers followed in one name.
pub const MAX_POINTERS: usize = 16;
/// Most answer records read from one message.
pub const MAX_RECORDS: usize = 64;
/// Most CNAME hops followed from the question name.
pub const MAX_CNAMES: usize = 8;
/// The longest name, in wire octets (RFC 1035 §2.3.4).
const MAX_NAME: usize = 255;

/// A TXT query for `name` with message id `id`, recursion desired, with an EDNS(0) OPT
/// record. `name` is an ASCII domain name without a trailing dot; labels of 1 to 63
/// octets.
pub fn txt_query(id: u16, name: &str) -> Result<Vec<u8>> {
    let mut m = Vec::with_capacity(32 + name.len());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    m.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    m.extend_from_slice(&[0, 0, 0, 0]); // ANCOUNT, NSCOUNT
    m.extend_from_slice(&1u16.to_be_bytes()); // ARCOUNT: the OPT record
    encode_name(&mut m, name)?;
    m.extend_from_slice(&TYPE_TXT.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes()); // IN
    // OPT: root name, type, UDP size as class, extended rcode/version/flags 0, no data.
    m.push(0);
    m.extend_from_slice(&TYPE_OPT.to_be_bytes());
    m.extend_from_slice(&EDNS_UDP_SIZE.to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    Ok(m)
}

fn encode_name(m: &mut Vec<u8>, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 253 || !name.is_ascii() {
        return Err(Error::malformed(format!(
            "{name:?} is not a DNS name of 1 to 253 ASCII characters"
        )));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(Error::malformed(format!(
                "{name:?} has a label that is empty or longer than 63 octets"
            )));
        }
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    Ok(())
}

/// What a TXT answer says.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TxtAnswer {
    /// The TC bit: the answer did not fit; ask again over TCP.
    pub truncated: bool,
    /// The TXT records of the question name, or of the name its CNAME chain in the
    /// answer leads to; each record's character-strings concatenated (RFC 8555 §8.4
    /// values are short, but a server may split a string).
    pub records: Vec<Vec<u8>>,
}

/// Reads the answer to [`txt_query`]`(id, name)`. NXDOMAIN and an empty answer give no
/// records; another error code, a message that is not the answer to that question, or
/// a malformed message is an error.
pub fn parse_txt_answer(id: u16, name: &str, msg: &[u8]) -> Result<TxtAnswer> {
    let bad = |why: &str| Error::malformed(format!("the DNS answer is malformed: {why}"));
    if msg.len() < 12 {
        return Err(bad("shorter than a header"));
    }
    let u16_at = |i: usize| u16::from_be_bytes([msg[i], msg[i + 1]]);
    if u16_at(0) != id {
        return Err(bad("its id is not the query's"));
    }
    let flags = u16_at(2);
    if flags & 0x8000 == 0 || (flags >> 11) & 0xf != 0 {
        return Err(bad("not a standard query response"));
    }
    let truncated = flags & 0x0200 != 0;
    match flags & 0xf {
        0 => {}
        3 => {
            return Ok(TxtAnswer {
                truncated,
                records: Vec::new(),
            });
        }
        rcode => {
            return Err(Error::malformed(format!(
                "the DNS server answered error code {rcode} ({})",
                match rcode {
                    1 => "FORMERR",
                    2 => "SERVFAIL",
                    4 => "NOTIMP",
                    5 => "REFUSED",
                    _ => "other",
                }
            )));
        }
    }
    let qdcount = u16_at(4);
    let ancount = usize::from(u16_at(6));
    if qdcount != 1 {
        return Err(bad("it does not repeat the one question"));
    }
    let mut pos = 12;
    let (qname, next) = read_name(msg, pos)?;
    pos = next;
    if msg.len() < pos + 4 {
        return Err(bad("the question is cut short"));
    }
    if !qname.eq_ignore_ascii_case(name.as_bytes()) || u16_at(pos) != TYPE_TXT {
        return Err(bad("it answers another question"));
    }
    pos += 4;
    if truncated && ancount == 0 {
        return Ok(TxtAnswer {
            truncated,
            records: Vec::new(),
        });
    }
    // (owner, type, rdata start, rdata length)
    let mut rrs: Vec<(Vec<u8>, u16, usize, usize)> = Vec::new();
    for _ in 0..ancount.min(MAX_RECORDS) {
        let (owner, next) = match read_name(msg, pos) {
            Ok(v) => v,
            // A truncated message may stop inside a record: keep what was complete.
            Err(_) if truncated => break,
            Err(e) => return Err(e),
        };
        pos = next;
        if msg.len() < pos + 10 {
            if truncated {
                break;
            }
            return Err(bad("a record header is cut short"));
        }
        let rtype = u16_at(pos);
        let rdlen = usize::from(u16_at(pos + 8));
        pos += 10;
        if msg.len() < pos + rdlen {
            if truncated {
                break;
            }
            return Err(bad("a record's data is cut short"));
        }
        rrs.push((owner, rtype, pos, rdlen));
        pos += rdlen;
    }
    // The names the question leads to through CNAMEs.
    let mut chain: Vec<Vec<u8>> = vec![name.as_bytes().to_ascii_lowercase()];
    for _ in 0..MAX_CNAMES {
        let last = chain.last().cloned().unwrap_or_default();
        let target = rrs
            .iter()
            .find(|(owner, t, _, _)| *t == TYPE_CNAME && owner.eq_ignore_ascii_case(&last));
        match target {
            Some((_, _, start, _)) => {
                let (t, _) = read_name(msg, *start)?;
                let t = t.to_ascii_lowercase();
                if chain.contains(&t) {
                    return Err(bad("a CNAME loop"));
                }
                chain.push(t);
            }
            None => break,
        }
    }
    let mut records = Vec::new();
    for (owner, rtype, start, len) in &rrs {
        if *rtype != TYPE_TXT || !chain.iter().any(|c| c.eq_ignore_ascii_case(owner)) {
            continue;
        }
        let data = &msg[*start..start + len];
        let mut value = Vec::new();
        let mut i = 0;
        while i < data.len() {
            let n = usize::from(data[i]);
            let s = data
                .get(i + 1..i + 1 + n)
                .ok_or_else(|| bad("a TXT character-string is cut short"))?;
            value.extend_from_slice(s);
            i += 1 + n;
        }
        records.push(value);
    }
    Ok(TxtAnswer { truncated, records })
}

/// Reads the name at `pos` (RFC 1035 §4.1.4 compression allowed, pointers only
/// backwards): the name, lowercase-insensitive dotted form without the root dot, and the
/// position after it in the message.
fn read_name(msg: &[u8], mut pos: usize) -> Result<(Vec<u8>, usize)> {
    let bad = |why: &str| Error::malformed(format!("the DNS answer is malformed: {why}"));
    let mut name = Vec::new();
    let mut wire = 0usize;
    let mut end = None;
    let mut pointers = 0;
    loop {
        let len = *msg.get(pos).ok_or_else(|| bad("a name is cut short"))?;
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    return Ok((name, end.unwrap_or(pos + 1)));
                }
                let n = usize::from(len);
                let label = msg
                    .get(pos + 1..pos + 1 + n)
                    .ok_or_else(|| bad("a label is cut short"))?;
                wire += 1 + n;
                if wire + 1 > MAX_NAME {
                    return Err(bad("a name is longer than 255 octets"));
                }
                if !name.is_empty() {
                    name.push(b'.');
                }
                name.extend_from_slice(label);
                pos += 1 + n;
            }
            0xc0 => {
                let lo = *msg
                    .get(pos + 1)
                    .ok_or_else(|| bad("a pointer is cut short"))?;
                let target = (usize::from(len & 0x3f) << 8) | usize::from(lo);
                pointers += 1;
                if pointers > MAX_POINTERS || target >= pos {
                    return Err(bad("a compression pointer loops or points forward"));
                }
                if end.is_none() {
                    end = Some(pos + 2);
                }
                pos = target;
            }
            _ => return Err(bad("a label type that is not defined")),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// An answer to `txt_query(7, q)` with `answers` as (owner, type, rdata), owners
    /// written as a pointer to the question when equal to it.
    fn answer(q: &str, flags: u16, answers: &[(&str, u16, Vec<u8>)]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&7u16.to_be_bytes());
        m.extend_from_slice(&flags.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m.extend_from_slice(&(answers.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0]);
        encode_name(&mut m, q).unwrap();
        m.extend_from_slice(&TYPE_TXT.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        for (owner, t, rdata) in answers {
            if *owner == q {
                m.extend_from_slice(&[0xc0, 12]);
            } else {
                encode_name(&mut m, owner).unwrap();
            }
            m.extend_from_slice(&t.to_be_bytes());
            m.extend_from_slice(&1u16.to_be_bytes());
            m.extend_from_slice(&60u32.to_be_bytes());
            m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            m.extend_from_slice(rdata);
        }
        m
    }

    fn txt(parts: &[&str]) -> Vec<u8> {
        let mut v = Vec::new();
        for p in parts {
            v.push(p.len() as u8);
            v.extend_from_slice(p.as_bytes());
        }
        v
    }

    fn name(n: &str) -> Vec<u8> {
        let mut v = Vec::new();
        encode_name(&mut v, n).unwrap();
        v
    }

    #[test]
    fn the_query_is_a_txt_question_with_edns() {
        let q = txt_query(0x1234, "_acme-challenge.x.test").unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..13], &[15]);
        assert!(q.ends_with(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]));
        assert!(txt_query(1, "a..b").is_err());
        assert!(txt_query(1, &"a".repeat(64)).is_err());
        assert!(txt_query(1, "é.test").is_err());
    }

    #[test]
    fn txt_records_are_read_split_strings_joined_and_cnames_followed() {
        let q = "_acme-challenge.x.test";
        let m = answer(
            q,
            0x8180,
            &[
                (q, TYPE_TXT, txt(&["abc", "def"])),
                (q, TYPE_TXT, txt(&["second"])),
                ("other.test", TYPE_TXT, txt(&["not ours"])),
            ],
        );
        let a = parse_txt_answer(7, q, &m).unwrap();
        assert_eq!(a.records, vec![b"abcdef".to_vec(), b"second".to_vec()]);
        assert!(!a.truncated);
        let m = answer(
            q,
            0x8180,
            &[
                ("Delegated.Zone.test", TYPE_TXT, txt(&["via cname"])),
                (q, TYPE_CNAME, name("delegated.zone.test")),
            ],
        );
        assert_eq!(
            parse_txt_answer(7, q, &m).unwrap().records,
            vec![b"via cname".to_vec()]
        );
        // A CNAME loop is an error.
        let m = answer(
            q,
            0x8180,
            &[
                (q, TYPE_CNAME, name("a.test")),
                ("a.test", TYPE_CNAME, name(q)),
            ],
        );
        assert!(parse_txt_answer(7, q, &m).is_err());
    }

    #[test]
    fn errors_nxdomain_truncation_and_mismatches() {
        let q = "_acme-challenge.x.test";
        assert_eq!(
            parse_txt_answer(7, q, &answer(q, 0x8183, &[])).unwrap(),
            TxtAnswer::default()
        );
        let e = parse_txt_answer(7, q, &answer(q, 0x8185, &[])).unwrap_err();
        assert!(e.to_string().contains("REFUSED"), "{e}");
        assert!(
            parse_txt_answer(7, q, &answer(q, 0x8380, &[]))
                .unwrap()
                .truncated
        );
        assert!(parse_txt_answer(8, q, &answer(q, 0x8180, &[])).is_err());
        assert!(parse_txt_answer(7, "other.test", &answer(q, 0x8180, &[])).is_err());
        assert!(parse_txt_answer(7, q, &answer(q, 0x0100, &[])).is_err());
        // Cut anywhere, a message is an error (or, truncated, what was complete).
        let full = answer(q, 0x8180, &[(q, TYPE_TXT, txt(&["abc"]))]);
        for n in 0..full.len() {
            assert!(parse_txt_answer(7, q, &full[..n]).is_err(), "cut at {n}");
        }
    }

    #[test]
    fn pointer_loops_and_forward_pointers_are_refused() {
        let mut m = answer("x.test", 0x8180, &[]);
        m[6..8].copy_from_slice(&1u16.to_be_bytes());
        let here = m.len();
        m.extend_from_slice(&[0xc0, (here as u8) + 2, 0]); // points forward
        assert!(parse_txt_answer(7, "x.test", &m).is_err());
        let mut m = answer("x.test", 0x8180, &[]);
        m[6..8].copy_from_slice(&1u16.to_be_bytes());
        let here = m.len();
        m.extend_from_slice(&[0xc0, here as u8]); // points at itself
        assert!(parse_txt_answer(7, "x.test", &m).is_err());
    }
}
