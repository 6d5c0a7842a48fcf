//! Enrollment requests held for an administrator's decision: SCEP answers PENDING and the
//! client polls (RFC 8894 §3.3.2, §3.3.3); EST answers 202 with Retry-After and the client
//! repeats its request (RFC 7030 §4.2.3).
//!
//! A held request is durable in the store from the moment the client is told "pending".
//! An administrator approves it (the certificate is issued through the ordinary pipeline,
//! [`Authority::issue`], so every policy check runs at approval time) or rejects it. The
//! protocol front end finds the request again by its lookup key when the client asks.

use store::{AuditEvent, PendingRequest, PendingState};

use crate::authority::{Authority, IssueRequest, Issued};
use crate::{Error, Result, asn1, csr};

/// A request to hold, as a protocol front end hands it over after authenticating it.
#[derive(Clone, Debug)]
pub struct HoldRequest {
    /// How the front end finds the request again: for SCEP the transaction ID plus a hash
    /// of the signer's key, for EST a hash of the CSR. Unique among pending requests.
    pub lookup_key: String,
    /// The endpoint it came through (`scep:<name>`, `est:<label>`).
    pub endpoint: String,
    /// The profile the certificate will be issued under.
    pub profile: String,
    /// Who asks (for the record and the audit log).
    pub requester: String,
    /// The CSR, DER, as received. Its proof of possession has been verified.
    pub csr_der: Vec<u8>,
}

impl Authority {
    /// Holds a request for approval. If a request with the same lookup key exists (the
    /// client repeated itself), that one is returned unchanged, whatever its state; the
    /// caller answers from its state (pending, issued or rejected).
    pub fn hold(&self, req: HoldRequest) -> Result<PendingRequest> {
        if let Some(existing) = self.store.find_pending(&req.lookup_key)? {
            return Ok(existing);
        }
        if !self.profiles().contains_key(&req.profile) {
            return Err(Error::NotFound(format!(
                "no profile named {:?}",
                req.profile
            )));
        }
        // Refuse what cannot be decoded now, not at approval time.
        csr::decode_held(&req.csr_der)?;
        let mut pending = PendingRequest {
            id: 0,
            lookup_key: req.lookup_key,
            endpoint: req.endpoint,
            profile: req.profile,
            requester: req.requester,
            csr_der: req.csr_der,
            created_at: self.clock.now(),
            state: PendingState::Pending,
            serial: None,
            note: None,
        };
        let audit = AuditEvent {
            time: pending.created_at,
            action: "hold".into(),
            actor: pending.requester.clone(),
            subject: pending.endpoint.clone(),
            detail: format!("profile={}", pending.profile),
        };
        match self.store.put_pending(&pending, &audit) {
            Ok(id) => {
                pending.id = id;
                tracing::info!(id, endpoint = %pending.endpoint, profile = %pending.profile, "request held for approval");
                Ok(pending)
            }
            // A concurrent repeat of the same request won the race: answer from it.
            Err(store::Error::Conflict(_)) => self
                .store
                .find_pending(&pending.lookup_key)?
                .ok_or_else(|| Error::Internal("held request vanished".into())),
            Err(e) => Err(e.into()),
        }
    }

    /// The held request with this lookup key, if any.
    pub fn find_held(&self, lookup_key: &str) -> Result<Option<PendingRequest>> {
        Ok(self.store.find_pending(lookup_key)?)
    }

    /// The held request with this id.
    pub fn held(&self, id: u64) -> Result<PendingRequest> {
        self.store
            .get_pending(id)?
            .ok_or_else(|| Error::NotFound(format!("no request with id {id}")))
    }

    /// Held requests, optionally only those in `state`, oldest first.
    pub fn list_held(&self, state: Option<PendingState>) -> Result<Vec<PendingRequest>> {
        Ok(self.store.list_pending(state)?)
    }

    /// Approves a held request: issues its certificate through the pipeline and marks the
    /// request issued. A request that is not pending is a conflict. If policy refuses the
    /// certificate, the request stays pending (reject it, or fix the profile and retry).
    pub fn approve(&self, id: u64, actor: &str) -> Result<Issued> {
        // One approval at a time, so that a request can never be issued twice.
        let _guard = self
            .approvals
            .lock()
            .map_err(|_| Error::Internal("approval lock poisoned".into()))?;
        let mut pending = self.held(id)?;
        if pending.state != PendingState::Pending {
            let e = Error::Conflict(format!(
                "request {id} is already {}",
                state_name(pending.state)
            ));
            self.audit_refusal("approve-refused", actor, &format!("request {id}"), &e);
            return Err(e);
        }
        let csr = csr::decode_held(&pending.csr_der)?;
        let mut request = IssueRequest::from_csr(&csr, &pending.profile, &pending.requester);
        request.requester = format!("{} (approved by {actor})", pending.requester);
        let issued = self.issue(&request)?;
        pending.state = PendingState::Issued;
        pending.serial = Some(issued.record.serial.clone());
        let audit = AuditEvent {
            time: self.clock.now(),
            action: "approve".into(),
            actor: actor.to_string(),
            subject: format!("request {id}"),
            detail: format!("serial={}", asn1::serial_hex(&issued.record.serial)),
        };
        // The certificate is durable; if this update failed the request would show as
        // pending although issued, so report it loudly (the serial is in the audit log).
        if let Err(e) = self.store.update_pending(&pending, &audit) {
            tracing::error!(id, error = %e, serial = %asn1::serial_hex(&issued.record.serial), "certificate issued but the request could not be marked issued");
            return Err(e.into());
        }
        Ok(issued)
    }

    /// Rejects a held request with a reason the client may be told.
    pub fn reject(&self, id: u64, actor: &str, note: &str) -> Result<PendingRequest> {
        let _guard = self
            .approvals
            .lock()
            .map_err(|_| Error::Internal("approval lock poisoned".into()))?;
        let mut pending = self.held(id)?;
        if pending.state != PendingState::Pending {
            let e = Error::Conflict(format!(
                "request {id} is already {}",
                state_name(pending.state)
            ));
            self.audit_refusal("reject-refused", actor, &format!("request {id}"), &e);
            return Err(e);
        }
        pending.state = PendingState::Rejected;
        pending.note = Some(note.to_string());
        let audit = AuditEvent {
            time: self.clock.now(),
            action: "reject".into(),
            actor: actor.to_string(),
            subject: format!("request {id}"),
            detail: format!("reason={note}"),
        };
        self.store.update_pending(&pending, &audit)?;
        Ok(pending)
    }
}

/// The lower-case name of a state, as the CLI and API show it.
pub fn state_name(state: PendingState) -> &'static str {
    match state {
        PendingState::Pending => "pending",
        PendingState::Issued => "issued",
        PendingState::Rejected => "rejected",
    }
}

/// Parses a state name (`pending`, `issued`, `rejected`).
pub fn parse_state(name: &str) -> Result<PendingState> {
    match name {
        "pending" => Ok(PendingState::Pending),
        "issued" => Ok(PendingState::Issued),
        "rejected" => Ok(PendingState::Rejected),
        other => Err(Error::BadRequest(format!(
            "unknown request state {other:?} (pending, issued, rejected)"
        ))),
    }
}
