//! What a lifecycle change leaves on record in its own transaction, and the audit outbox.
//!
//! The idempotency middleware reserves the `Idempotency-Key` ([`Reservation`]); the audit
//! middleware prepares the change's audit entry ([`PendingAudit`]). Both ride on the request
//! to the handler, whose final store write takes them through [`Journal::commit`]: the
//! answer to replay and the entry for the outbox commit in the transaction of the change.
//! A process killed between that commit and the answer therefore leaves a change that a
//! retry replays (never applies twice), and whose audit entry is still in the outbox.
//!
//! After the commit the audit middleware appends the entry to the audit log and removes it
//! from the outbox. Entries left behind — the process died, the log was failing — are
//! drained by [`Authority::drain_audit_outbox`]: at start, and by maintenance. A drainer
//! takes only entries past a grace period ([`AuthorityConfig::audit_outbox_grace_secs`])
//! unless it knows that no other process writes to the store, so that it does not append
//! an entry that a live replica's request is about to append itself.
//!
//! This module must not decide what a change is or how it is answered: handlers do.
//!
//! [`AuthorityConfig::audit_outbox_grace_secs`]: crate::AuthorityConfig::audit_outbox_grace_secs

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use warden_store::{
    Applied, Change, ChangeRecord, IdempotentAnswer, OutboxEntry, RenderAnswer, StoreError,
};

use crate::config::Fault;
use crate::Authority;

/// Outbox entries taken per store round trip while draining.
const DRAIN_BATCH: u32 = 100;

/// The `Idempotency-Key` this request holds, reserved with `reserved_at`.
#[derive(Debug, Clone)]
pub(crate) struct Reservation {
    pub key: String,
    pub reserved_at: i64,
}

/// The audit entry this request's change is to leave in the outbox, under `outbox_id`; its
/// time and answer status are filled in at commit.
#[derive(Debug, Clone)]
pub(crate) struct PendingAudit {
    pub outbox_id: String,
    pub entry: warden_audit::Entry,
}

/// A lifecycle handler's means of committing its change together with the change's record.
/// Without an `Idempotency-Key` it records no answer; without a pending entry (outside the
/// audit middleware, which prepares one for every call but a read) no outbox entry.
pub(crate) struct Journal {
    reservation: Option<Reservation>,
    audit: Option<PendingAudit>,
}

impl<S: Send + Sync> FromRequestParts<S> for Journal {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self {
            reservation: parts.extensions.get::<Reservation>().cloned(),
            audit: parts.extensions.get::<PendingAudit>().cloned(),
        })
    }
}

/// A lifecycle answer: a status and a JSON body, sent as it was recorded for replay.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: String,
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut res = (self.status, self.body).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        res
    }
}

impl Journal {
    /// Makes `change` in one transaction with its record: the answer (`status`, and the
    /// body `render` makes of what the change produced) for the `Idempotency-Key`, and the
    /// audit entry for the outbox. Returns what the change produced and the answer to send,
    /// rendered by the same `render`, so that a replay is the answer byte for byte. The
    /// store's error is the caller's to map, as it knows what a conflict means for it.
    pub async fn commit(
        &self,
        a: &Authority,
        change: Change<'_>,
        status: StatusCode,
        render: RenderAnswer<'_>,
    ) -> Result<(Applied, Answer), StoreError> {
        let now = a.now();
        let record = ChangeRecord {
            answer: self.reservation.as_ref().map(|r| IdempotentAnswer {
                key: &r.key,
                reserved_at: r.reserved_at,
                status: status.as_u16(),
                body: render,
            }),
            audit: self
                .audit
                .as_ref()
                .map(|pending| outbox_entry(a, pending, now, status))
                .transpose()?,
        };
        let applied = a.store.apply(change, &record).await?;
        if let (Some(Fault::HoldAnswerAfterCommit { key_prefix }), Some(r)) =
            (&a.config.fault, &self.reservation)
        {
            // The stored key is `CALLER KEY`; the fault names the key the client sent.
            let sent = r.key.split_once(' ').map_or(r.key.as_str(), |(_, k)| k);
            if sent.starts_with(key_prefix.as_str()) {
                hold_answer(&r.key).await;
            }
        }
        let body = render(&applied).map_err(unserializable("a lifecycle answer"))?;
        Ok((applied, Answer { status, body }))
    }
}

fn unserializable(what: &'static str) -> impl FnOnce(serde_json::Error) -> StoreError {
    move |e| StoreError::Corrupt(format!("{what} does not serialize: {e}"))
}

/// Renders a value as the JSON body of an answer.
pub(crate) fn json<T: serde::Serialize + ?Sized>(v: &T) -> Result<String, serde_json::Error> {
    serde_json::to_string(v)
}

fn outbox_entry(
    a: &Authority,
    pending: &PendingAudit,
    now: i64,
    status: StatusCode,
) -> Result<OutboxEntry, StoreError> {
    let mut entry = pending.entry.clone();
    entry.time = now.saturating_mul(1000);
    entry.reasons = vec![status.as_u16().to_string()];
    Ok(OutboxEntry {
        id: pending.outbox_id.clone(),
        entry: serde_json::to_string(&entry).map_err(unserializable("an audit entry"))?,
        due_at: now.saturating_add(a.config.audit_outbox_grace_secs),
    })
}

/// The injected fault: the change has committed, and its answer never leaves (the request
/// timeout ends the request with a `503` after all, should the test not kill the process).
async fn hold_answer(key: &str) {
    tracing::error!(
        fault = "hold-answer-after-commit",
        key,
        "fault injected: the change committed; its answer is held until the process is killed"
    );
    std::future::pending::<()>().await;
}

/// Which outbox entries [`Authority::drain_audit_outbox`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxDrain {
    /// Entries past their grace period, whose call is presumed dead.
    Due,
    /// Every entry, at once. Only for a process that knows no other process writes to its
    /// store (embedded SQLite) and that is not yet serving, so no call of its own is still
    /// to append its entry.
    All,
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("reading the audit outbox: {0}")]
    Store(#[from] StoreError),
    #[error("appending an outbox entry to the audit log: {0}")]
    Append(#[from] warden_audit::AppendError),
}

impl Authority {
    /// Appends the outbox entries that no call appended itself to the audit log, and
    /// removes them from the outbox; how many. Stops at the first failing append (the
    /// entries stay, due again after the grace period).
    pub async fn drain_audit_outbox(&self, which: OutboxDrain) -> Result<usize, OutboxError> {
        let mut drained = 0;
        loop {
            let now = self.now();
            let due = match which {
                OutboxDrain::Due => now,
                OutboxDrain::All => i64::MAX,
            };
            let hold_until = now.saturating_add(self.config.audit_outbox_grace_secs);
            let batch = self
                .store
                .claim_audit_outbox(due, hold_until, DRAIN_BATCH)
                .await?;
            let mut progress = false;
            for row in &batch {
                if self.append_outbox_entry(row).await? {
                    drained += 1;
                    progress = true;
                }
            }
            // A batch that moved nothing (entries that do not parse, taken again by `All`)
            // would be taken forever.
            if batch.len() < DRAIN_BATCH as usize || !progress {
                return Ok(drained);
            }
        }
    }

    /// Appends one outbox entry to the audit log, then removes it from the outbox; false
    /// for an entry that does not parse, which is left where it is for an operator.
    pub(crate) async fn append_outbox_entry(&self, row: &OutboxEntry) -> Result<bool, OutboxError> {
        let entry: warden_audit::Entry = match serde_json::from_str(&row.entry) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(id = %row.id, error = %e, "an audit outbox entry does not parse; left in the outbox");
                return Ok(false);
            }
        };
        self.audit(entry).await?;
        // Appended but not yet removed, a crash here appends it once more: the entry's
        // `request_id` (the outbox id) tells the two apart.
        self.store.remove_audit_outbox(&row.id).await?;
        Ok(true)
    }
}
