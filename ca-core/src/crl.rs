//! CRLs (RFC 5280 §5): complete CRLs per issuing CA, numbered from the store so that
//! cRLNumber strictly increases across restarts, always with nextUpdate.

use const_oid::AssociatedOid;
use der::Encode;
use der::asn1::Uint;
use store::{AuditEvent, StoredCrl};
use x509_cert::Version;
use x509_cert::crl::{RevokedCert, TbsCertList};
use x509_cert::ext::pkix::{CrlNumber, CrlReason};

use crate::asn1;
use crate::authority::{Authority, aki_ext};
use crate::lint;
use crate::{Error, Result};

/// How long a CRL-signing lease lasts: longer than building, signing and storing a CRL
/// of ten million entries takes, short enough that a node that died holding it delays
/// the next CRL by little.
const CRL_LEASE_SECONDS: i64 = 120;

/// How long a node waits for another node's CRL lease before giving up.
const CRL_LEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

impl Authority {
    /// The CRL-signing lease of `ca` for this process, waiting up to [`CRL_LEASE_WAIT`]
    /// while another node holds it.
    fn take_crl_lease(&self, ca: &str) -> Result<u64> {
        let started = std::time::Instant::now();
        loop {
            let now = self.clock.now();
            if let Some(fence) =
                self.store
                    .crl_lease(ca, &self.lease_holder, now, CRL_LEASE_SECONDS)?
            {
                return Ok(fence);
            }
            if started.elapsed() >= CRL_LEASE_WAIT {
                return Err(Error::Unavailable(format!(
                    "another node has held the lease to sign the CRL of {ca} for {} s",
                    CRL_LEASE_WAIT.as_secs()
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    /// Builds, lints, signs and stores a new CRL for CA `ca`; returns it.
    ///
    /// The entries are streamed from the store straight into the DER of the
    /// TBSCertList (RFC 5280 §5.1): each revoked certificate is encoded into one growing
    /// buffer as it is read, and nothing per entry is kept, so that a CRL of a million
    /// entries takes about its own size in memory (issue 13 item 5). The SEQUENCE headers
    /// whose lengths are known only at the end are inserted in front afterwards (one move
    /// of the buffer each), and the signature is appended to the same buffer.
    pub fn generate_crl(&self, ca: &str, actor: &str) -> Result<StoredCrl> {
        use crate::asn1::write::{header, tag};
        let entity = self.ca(ca)?.clone();
        let lock = self
            .crl_locks
            .get(ca)
            .ok_or_else(|| Error::NotFound(format!("no authority named {ca}")))?;
        // One CRL per CA at a time, so numbers and the stored "latest" agree.
        let _guard = lock
            .lock()
            .map_err(|_| Error::Internal("CRL lock poisoned".into()))?;
        let now = self.clock.now();
        let next_update = now + self.settings.crl_validity;
        // With several nodes on one database, one signs a CA's CRL at a time: the lease
        // is held while this CRL is built and stored, then released; its token fences out
        // a signer whose lease ran out before it stored its CRL. A node that finds the
        // lease taken waits for it (a signing takes about a second per million entries).
        let fence = self.take_crl_lease(ca)?;
        // The number first, then the revocations: with several nodes on one database a
        // CRL with a higher number then always lists every revocation committed before
        // its number was allocated, so the newest CRL can never miss one that an older
        // CRL lists (RFC 5280 §5.2.3 allows the gap a failed signing leaves).
        let number = self.store.next_crl_number(ca)?;
        let number_bytes = asn1::minimal_positive(&number.to_be_bytes());
        let crl_number = CrlNumber(Uint::new(&number_bytes)?);
        // Everything but the entries, linted as one TBSCertList (§5.1.2).
        let head = TbsCertList {
            version: Version::V2,
            signature: asn1::signature_algorithm(entity.scheme)?,
            issuer: entity.subject.clone(),
            this_update: asn1::x509_time(now)?,
            next_update: Some(asn1::x509_time(next_update)?),
            revoked_certificates: None,
            crl_extensions: Some(vec![
                aki_ext(&entity.key_id)?,
                asn1::extension(CrlNumber::OID, false, &crl_number)?,
            ]),
        };
        lint::lint_crl(&head, &entity.key_id)?;

        // version, signature, issuer, thisUpdate, nextUpdate: then the entries.
        let mut out: Vec<u8> = Vec::new();
        head.version.encode_to_vec(&mut out)?;
        head.signature.encode_to_vec(&mut out)?;
        head.issuer.encode_to_vec(&mut out)?;
        head.this_update.encode_to_vec(&mut out)?;
        if let Some(n) = &head.next_update {
            n.encode_to_vec(&mut out)?;
        }
        let entries_at = out.len();
        let mut count = 0usize;
        let mut lint_failure: Option<Error> = None;
        let read = self.store.for_each_revoked(ca, &mut |entry| {
            let corrupt = |e: &dyn std::fmt::Display| store::Error::Corrupt(e.to_string());
            let mut extensions = Vec::new();
            // RFC 5280 §5.3.1: omit reasonCode rather than use unspecified.
            if entry.revocation.reason != 0 {
                let reason = crl_reason(entry.revocation.reason).ok_or_else(|| {
                    store::Error::Corrupt(format!("revocation reason {}", entry.revocation.reason))
                })?;
                extensions.push(
                    asn1::extension(CrlReason::OID, false, &reason).map_err(|e| corrupt(&e))?,
                );
            }
            // RFC 5280 §5.3.2: the invalidity date, when the operator gave one.
            if let Some(date) = entry.revocation.invalidity_date {
                extensions.push(asn1::invalidity_date_ext(date).map_err(|e| corrupt(&e))?);
            }
            let serial_number = asn1::serial_number(&entry.serial).map_err(|e| corrupt(&e))?;
            if let Err(e) = lint::lint_crl_entry_serial(serial_number.as_bytes()) {
                let stop = store::Error::Corrupt(e.to_string());
                lint_failure = Some(e);
                return Err(stop);
            }
            let rc = RevokedCert {
                serial_number,
                revocation_date: asn1::x509_time(entry.revocation.time).map_err(|e| corrupt(&e))?,
                crl_entry_extensions: (!extensions.is_empty()).then_some(extensions),
            };
            rc.encode_to_vec(&mut out).map_err(|e| corrupt(&e))?;
            count += 1;
            Ok(())
        });
        if let Some(e) = lint_failure {
            return Err(e);
        }
        read?;
        // revokedCertificates is absent rather than empty (§5.1.2.6).
        if count > 0 {
            let h = header(tag::SEQUENCE, out.len() - entries_at);
            out.splice(entries_at..entries_at, h);
        }
        // crlExtensions [0] EXPLICIT Extensions.
        let exts = head
            .crl_extensions
            .as_ref()
            .map(|e| e.to_der())
            .transpose()?;
        if let Some(exts) = exts {
            out.extend_from_slice(&header(tag::CTX0, exts.len()));
            out.extend_from_slice(&exts);
        }
        let h = header(tag::SEQUENCE, out.len());
        out.splice(0..0, h);

        // CertificateList (§5.1.1): the TBS as built, the algorithm, the signature.
        let signature =
            asn1::sign_verified(entity.key.as_ref(), entity.scheme, &entity.spki_der, &out)?;
        let alg = head.signature.to_der()?;
        let sig = der::asn1::BitString::from_bytes(&signature)?.to_der()?;
        out.reserve_exact(alg.len() + sig.len() + 8);
        out.extend_from_slice(&alg);
        out.extend_from_slice(&sig);
        let h = header(tag::SEQUENCE, out.len());
        out.splice(0..0, h);
        let der = out;
        let crl = StoredCrl {
            number,
            this_update: now,
            next_update,
            der,
        };
        let audit = AuditEvent {
            time: now,
            action: "crl".into(),
            actor: actor.to_string(),
            subject: ca.to_string(),
            detail: format!("number={number} entries={count}"),
        };
        let stored = self.store.put_crl_fenced(ca, &crl, fence, &audit);
        if let Err(e) = self.store.crl_lease_release(ca, &self.lease_holder, fence) {
            tracing::warn!(ca, error = %e, "releasing the CRL lease failed; it runs out by itself");
        }
        stored?;
        tracing::info!(ca, number, entries = count, "CRL published");
        Ok(crl)
    }

    /// Whether the stored CRL of `ca` misses a revocation the store holds: there is no CRL
    /// while certificates are revoked, or a revoked serial is not on it. That happens when
    /// the process stopped (or signing failed) between a revocation's commit and its CRL
    /// (RFC 5280 §5: a complete CRL lists every revoked, unexpired certificate).
    ///
    /// The server asks this every minute, so it reads the stored CRL without decoding it
    /// ([`ListedSerials`]) and keeps nothing per entry: the store yields revocations in
    /// serial order ([`store::Store::for_each_revoked`]) and [`Authority::generate_crl`]
    /// wrote the CRL in that same order, so one forward walk of both answers. An entry the
    /// CRL lists and the store no longer holds (a released hold) is stepped over. A CRL in
    /// another order (one copied from another backend) makes the walk run off its end and
    /// is reported stale, which re-signs it once; a missing revocation is never passed over.
    pub fn crl_is_stale(&self, ca: &str) -> Result<bool> {
        self.ca(ca)?;
        let stored = self.store.latest_crl(ca)?;
        let mut listed = match &stored {
            Some(crl) => ListedSerials::new(&crl.der)
                .map_err(|e| Error::Internal(format!("stored CRL of {ca}: {e}")))?,
            None => ListedSerials::empty(),
        };
        let mut missing = false;
        self.store.for_each_revoked(ca, &mut |entry| {
            if missing {
                return Ok(());
            }
            let serial = asn1::serial_number(&entry.serial)
                .map_err(|e| store::Error::Corrupt(e.to_string()))?;
            loop {
                match listed.next() {
                    None => {
                        missing = true;
                        break;
                    }
                    Some(Ok(on_crl)) if on_crl == serial.as_bytes() => break,
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        return Err(store::Error::Corrupt(format!("stored CRL of {ca}: {e}")));
                    }
                }
            }
            Ok(())
        })?;
        Ok(missing)
    }

    /// Re-signs the CRL of `ca` when it misses a revocation ([`Authority::crl_is_stale`]);
    /// returns the new CRL, or `None` when the stored one was complete.
    pub fn republish_if_stale(&self, ca: &str, actor: &str) -> Result<Option<StoredCrl>> {
        if !self.crl_is_stale(ca)? {
            return Ok(None);
        }
        tracing::warn!(ca, "the stored CRL misses a revocation; re-signing it");
        self.generate_crl(ca, actor).map(Some)
    }

    /// [`Authority::republish_if_stale`] for every CA (at start-up); failures are logged
    /// and returned by CA name.
    pub fn republish_stale_crls(&self, actor: &str) -> Vec<(String, Error)> {
        let mut failed = Vec::new();
        for ca in self.cas.keys() {
            if let Err(e) = self.republish_if_stale(ca, actor) {
                tracing::error!(ca = %ca, error = %e, "re-signing a stale CRL failed");
                failed.push((ca.clone(), e));
            }
        }
        failed
    }

    /// After a repeated revocation of `serial`: re-signs its issuer's CRL if the CRL
    /// misses a revocation. Failures are logged (the answer stays "already revoked").
    pub(crate) fn republish_revoked(&self, serial: &[u8], actor: &str) {
        let issuer = match self.store.get_cert(serial) {
            Ok(Some(r)) if self.cas.contains_key(&r.issuer) => r.issuer,
            Ok(_) => return,
            Err(e) => {
                tracing::error!(error = %e, "reading a revoked certificate failed");
                return;
            }
        };
        if let Err(e) = self.republish_if_stale(&issuer, actor) {
            tracing::error!(error = %e, issuer = %issuer, "re-signing the CRL after a repeated revocation failed");
        }
    }

    /// The CRL to serve for `ca`: the stored one while it is fresh, else a new one.
    /// "Fresh" means younger than the refresh period and not past nextUpdate. While
    /// another node holds the signing lease, the stored CRL is served as long as it is
    /// before its nextUpdate (the holder is replacing it).
    pub fn current_crl(&self, ca: &str) -> Result<StoredCrl> {
        self.ca(ca)?;
        let now = self.clock.now();
        let stored = self.store.latest_crl(ca)?;
        if let Some(crl) = &stored
            && now < crl.this_update + self.settings.crl_refresh
            && now < crl.next_update
        {
            return Ok(crl.clone());
        }
        match self.generate_crl(ca, "scheduler") {
            Err(Error::Unavailable(why)) => match stored {
                Some(crl) if now < crl.next_update => {
                    tracing::info!(ca, reason = %why, "serving the stored CRL while another node signs");
                    Ok(crl)
                }
                _ => Err(Error::Unavailable(why)),
            },
            other => other,
        }
    }
}

/// The CRLReason for a stored code.
fn crl_reason(code: u8) -> Option<CrlReason> {
    Some(match code {
        0 => CrlReason::Unspecified,
        1 => CrlReason::KeyCompromise,
        2 => CrlReason::CaCompromise,
        3 => CrlReason::AffiliationChanged,
        4 => CrlReason::Superseded,
        5 => CrlReason::CessationOfOperation,
        6 => CrlReason::CertificateHold,
        9 => CrlReason::PrivilegeWithdrawn,
        10 => CrlReason::AaCompromise,
        _ => return None,
    })
}

/// The serial numbers a DER CRL lists, in the order it lists them, read in place: the
/// contents octets of each entry's userCertificate INTEGER (RFC 5280 §5.1.2.6), the same
/// bytes as `x509_cert::serial_number::SerialNumber::as_bytes`. Nothing is allocated.
pub(crate) struct ListedSerials<'a> {
    entries: Option<der::SliceReader<'a>>,
}

impl<'a> ListedSerials<'a> {
    /// Finds revokedCertificates in `crl`: the first SEQUENCE of the TBSCertList after
    /// thisUpdate (§5.1: version, signature, issuer, thisUpdate, nextUpdate, then it).
    pub(crate) fn new(crl: &'a [u8]) -> der::Result<Self> {
        use der::asn1::AnyRef;
        use der::{Decode, Reader, Tag, Tagged};
        let list = AnyRef::from_der(crl)?;
        let mut outer = der::SliceReader::new(list.value())?;
        let tbs = AnyRef::decode(&mut outer)?;
        let mut fields = der::SliceReader::new(tbs.value())?;
        let mut after_this_update = false;
        while !fields.is_finished() {
            let field = AnyRef::decode(&mut fields)?;
            match field.tag() {
                Tag::UtcTime | Tag::GeneralizedTime => after_this_update = true,
                Tag::Sequence if after_this_update => {
                    return Ok(ListedSerials {
                        entries: Some(der::SliceReader::new(field.value())?),
                    });
                }
                _ => {}
            }
        }
        Ok(Self::empty())
    }

    /// A CRL that lists nothing.
    pub(crate) fn empty() -> Self {
        ListedSerials { entries: None }
    }
}

impl<'a> Iterator for ListedSerials<'a> {
    type Item = der::Result<&'a [u8]>;

    fn next(&mut self) -> Option<Self::Item> {
        use der::asn1::AnyRef;
        use der::{Decode, Reader, Tag, Tagged};
        let entries = self.entries.as_mut()?;
        if entries.is_finished() {
            return None;
        }
        let serial = (|| {
            let entry = AnyRef::decode(entries)?;
            let mut inner = der::SliceReader::new(entry.value())?;
            let serial = AnyRef::decode(&mut inner)?;
            if serial.tag() != Tag::Integer {
                return Err(der::Error::from(der::ErrorKind::TagUnexpected {
                    expected: Some(Tag::Integer),
                    actual: serial.tag(),
                }));
            }
            Ok(serial.value())
        })();
        if serial.is_err() {
            // A malformed entry ends the walk after reporting it.
            self.entries = None;
        }
        Some(serial)
    }
}
