//! The OCSP responder of the hierarchy (RFC 6960): which CA answers a request, the
//! status of each certificate from the store, and the pre-signed answers of
//! [`OcspCache`](crate::ocsp::OcspCache). The wire structures and the signing of a
//! response are in [`crate::ocsp`], which knows nothing of the authority.

use crate::Result;
use crate::authority::Authority;
use crate::ocsp::{
    CertStatus, OcspAnswer, OcspRequest, ResponseStatus, Signer, error_response, parse_request,
    sign_response,
};

impl Authority {
    /// Answers an OCSP request (DER). Never fails: malformed input gets a
    /// `malformedRequest` response, internal failures `internalError`.
    pub fn ocsp(&self, request_der: &[u8]) -> OcspAnswer {
        let now = self.clock.now();
        let plain = |status| OcspAnswer {
            der: error_response(status),
            status,
            this_update: now,
            next_update: now,
            nonced: false,
            statuses: Vec::new(),
        };
        let req = match parse_request(request_der) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "malformed OCSP request");
                return plain(ResponseStatus::MalformedRequest);
            }
        };
        if let Some(a) = self.ocsp_cache.lookup(&req, now) {
            return a;
        }
        match self.ocsp_answer(&req, now) {
            Ok(Some(a)) => a,
            Ok(None) => plain(ResponseStatus::Unauthorized),
            // The key backend is unavailable for now: `tryLater` (RFC 6960 §2.3), which
            // tells the client to retry rather than that the responder is broken.
            Err(e) if e.kind() == crate::ErrorKind::Unavailable => {
                tracing::warn!(error = %e, "OCSP response deferred: key backend unavailable");
                plain(ResponseStatus::TryLater)
            }
            Err(e) => {
                tracing::error!(error = %e, "OCSP response failed");
                plain(ResponseStatus::InternalError)
            }
        }
    }

    /// The fast path: the pre-signed answer to `request_der` when the cache holds a fresh
    /// one (RFC 9919 §6), without touching the store or the key; `None` means the caller
    /// must call [`Authority::ocsp`] (on the blocking pool).
    pub fn ocsp_cached(&self, request_der: &[u8]) -> Option<OcspAnswer> {
        let req = parse_request(request_der).ok()?;
        self.ocsp_cache.lookup(&req, self.clock.now())
    }

    /// Sets the most certificates whose pre-signed OCSP responses are kept (`[ca]
    /// ocsp_cache_entries`); 0 turns the cache off. Takes effect on the next insertion.
    pub fn set_ocsp_cache_entries(&self, entries: usize) {
        self.ocsp_cache.set_capacity(entries);
    }

    /// Puts a renewed delegated responder of CA `ca` in service (issue 15 item 5): new
    /// answers are signed by it, and every pre-signed answer (signed by the old one) is
    /// dropped in the same step as the cache's generation is bumped, so that no answer
    /// signed by the old responder is kept afterwards. The caller records the new
    /// certificate durably first.
    pub fn replace_ocsp_responder(&self, ca: &str, next: crate::KeyWithCert) -> Result<()> {
        let entity = self.ca(ca)?;
        let Some(r) = &entity.ocsp else {
            return Err(crate::Error::Config(format!(
                "authority {ca} has no delegated OCSP responder"
            )));
        };
        r.replace(next);
        self.ocsp_cache.clear();
        Ok(())
    }

    /// Certificates with a pre-signed OCSP response in the cache now.
    pub fn ocsp_cache_len(&self) -> usize {
        self.ocsp_cache.len()
    }

    fn ocsp_answer(&self, req: &OcspRequest, now: i64) -> Result<Option<OcspAnswer>> {
        // Read before the store: a revocation committed after this point bumps the
        // generation, and the cache then refuses the answer built from the older read.
        let generation = self.ocsp_cache.generation();
        // All CertIDs of one request must belong to one CA, which signs the answer.
        let mut ca_name: Option<&str> = None;
        for r in &req.tbs_request.request_list {
            match self.ocsp_index.find(
                &r.req_cert.hash_algorithm.oid,
                r.req_cert.issuer_name_hash.as_bytes(),
                r.req_cert.issuer_key_hash.as_bytes(),
            ) {
                Some(n) if ca_name.is_none() || ca_name == Some(n) => ca_name = Some(n),
                _ => return Ok(None),
            }
        }
        let Some(ca_name) = ca_name else {
            return Ok(None);
        };
        let ca = self.ca(ca_name)?;
        let next_update = now + self.settings.ocsp_validity;
        let mut entries = Vec::with_capacity(req.tbs_request.request_list.len());
        for r in &req.tbs_request.request_list {
            let serial = r.req_cert.serial_number.as_bytes();
            entries.push(match self.store.get_cert(serial)? {
                Some(rec) if rec.issuer == ca.name => match rec.revocation {
                    Some(rv) => (
                        CertStatus::Revoked {
                            time: rv.time,
                            reason: rv.reason,
                        },
                        rv.invalidity_date,
                    ),
                    None => (CertStatus::Good, None),
                },
                _ => (CertStatus::Unknown, None),
            });
        }
        let responder = ca.ocsp.as_ref().map(|r| r.current());
        let signer = match &responder {
            Some(d) => Signer {
                key: d.key.as_ref(),
                spki_der: d.key.public_key_der(),
                cert_der: Some(&d.cert_der),
            },
            None => Signer {
                key: ca.key.as_ref(),
                spki_der: &ca.spki_der,
                cert_der: None,
            },
        };
        let answer = sign_response(req, entries, now, next_update, &signer)?;
        // Only one-certificate requests without a nonce, and only good or revoked
        // answers: see `OcspCache::insert` for why "unknown" is never kept.
        if !answer.nonced
            && let [r] = req.tbs_request.request_list.as_slice()
            && req.tbs_request.request_extensions.is_none()
            && r.single_request_extensions.is_none()
        {
            self.ocsp_cache.insert(&r.req_cert, &answer, generation);
        }
        Ok(Some(answer))
    }
}
