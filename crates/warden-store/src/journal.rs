//! The journal a change writes in its own transaction — the idempotent answer and the audit
//! outbox row — and the outbox's reads, written once for both backends: the SQL is the
//! dialect SQLite and PostgreSQL share, and the code is generic over [`SqlDb`].
//!
//! Statements that must say whether they touched a row use `RETURNING` and look for the row,
//! since sqlx has no backend-neutral affected-row count.

use crate::change::{Applied, ChangeRecord, OutboxEntry};
use crate::sql::{Arg, SqlDb};
use crate::{Result, StoreError};

/// Completes a reservation with its answer; only the holder's, only once (see
/// [`crate::IdempotentAnswer::reserved_at`]).
const COMPLETE_IDEMPOTENCY: &str = "UPDATE idempotency_keys \
     SET state = 'done', status = $1, response = $2 \
     WHERE key = $3 AND state = 'pending' AND created_at = $4 RETURNING key";

const RELEASE_IDEMPOTENCY: &str = "DELETE FROM idempotency_keys \
     WHERE key = $1 AND state = 'pending' AND created_at = $2 RETURNING key";

const INSERT_OUTBOX: &str = "INSERT INTO audit_outbox (id, entry, due_at) VALUES ($1, $2, $3)";

const OUTBOX_ENTRY: &str = "SELECT id, entry, due_at FROM audit_outbox WHERE id = $1";

const DUE_OUTBOX: &str = "SELECT id, entry, due_at FROM audit_outbox WHERE due_at <= $1 \
     ORDER BY due_at, id LIMIT $2";

/// Takes a due entry by moving its due time on: of two drainers, one moves it and the other
/// finds it moved.
const CLAIM_OUTBOX: &str =
    "UPDATE audit_outbox SET due_at = $1 WHERE id = $2 AND due_at = $3 RETURNING id";

const REMOVE_OUTBOX: &str = "DELETE FROM audit_outbox WHERE id = $1";

/// Writes `record` with the change that produced `applied`, in the caller's transaction. A
/// reservation that is no longer the caller's fails the whole transaction.
pub(crate) async fn write<DB: SqlDb>(
    conn: &mut DB::Connection,
    record: &ChangeRecord<'_>,
    applied: &Applied,
) -> Result<()> {
    if let Some(answer) = &record.answer {
        let body = (answer.body)(applied).map_err(|e| {
            StoreError::Corrupt(format!("idempotent answer does not serialize: {e}"))
        })?;
        let done =
            complete::<DB>(conn, answer.key, answer.reserved_at, answer.status, &body).await?;
        if !done {
            return Err(StoreError::ReservationLost);
        }
    }
    if let Some(outbox) = &record.audit {
        let args = [
            Arg::Text(&outbox.id),
            Arg::Text(&outbox.entry),
            Arg::Int(outbox.due_at),
        ];
        DB::execute(conn, INSERT_OUTBOX, &args).await?;
    }
    Ok(())
}

/// Completes the reservation held since `reserved_at`; false when it is not pending under
/// that reservation (already completed, released, or taken over).
pub(crate) async fn complete<DB: SqlDb>(
    conn: &mut DB::Connection,
    key: &str,
    reserved_at: i64,
    status: u16,
    body: &str,
) -> Result<bool> {
    // `status INTEGER` is 32 bits on PostgreSQL; SQLite takes an i32 as well.
    let args = [
        Arg::Int32(i32::from(status)),
        Arg::Text(body),
        Arg::Text(key),
        Arg::Int(reserved_at),
    ];
    Ok(DB::fetch_optional(conn, COMPLETE_IDEMPOTENCY, &args)
        .await?
        .is_some())
}

/// Forgets the reservation held since `reserved_at`, if it is still pending.
pub(crate) async fn release<DB: SqlDb>(
    conn: &mut DB::Connection,
    key: &str,
    reserved_at: i64,
) -> Result<bool> {
    let args = [Arg::Text(key), Arg::Int(reserved_at)];
    Ok(DB::fetch_optional(conn, RELEASE_IDEMPOTENCY, &args)
        .await?
        .is_some())
}

pub(crate) async fn outbox_entry<DB: SqlDb>(
    conn: &mut DB::Connection,
    id: &str,
) -> Result<Option<OutboxEntry>> {
    DB::fetch_optional(conn, OUTBOX_ENTRY, &[Arg::Text(id)])
        .await?
        .as_ref()
        .map(outbox_from_row::<DB>)
        .transpose()
}

/// Takes up to `limit` entries due at `now`, oldest first, each held until `hold_until`
/// (when it is due again, should its taker not remove it).
pub(crate) async fn claim_outbox<DB: SqlDb>(
    conn: &mut DB::Connection,
    now: i64,
    hold_until: i64,
    limit: u32,
) -> Result<Vec<OutboxEntry>> {
    let due = DB::fetch_all(
        conn,
        DUE_OUTBOX,
        &[Arg::Int(now), Arg::Int(i64::from(limit))],
    )
    .await?
    .iter()
    .map(outbox_from_row::<DB>)
    .collect::<Result<Vec<_>>>()?;
    let mut claimed = Vec::with_capacity(due.len());
    for mut entry in due {
        let args = [
            Arg::Int(hold_until),
            Arg::Text(&entry.id),
            Arg::Int(entry.due_at),
        ];
        if DB::fetch_optional(conn, CLAIM_OUTBOX, &args)
            .await?
            .is_some()
        {
            entry.due_at = hold_until;
            claimed.push(entry);
        }
    }
    Ok(claimed)
}

pub(crate) async fn remove_outbox<DB: SqlDb>(conn: &mut DB::Connection, id: &str) -> Result<()> {
    DB::execute(conn, REMOVE_OUTBOX, &[Arg::Text(id)]).await?;
    Ok(())
}

fn outbox_from_row<DB: SqlDb>(row: &DB::Row) -> Result<OutboxEntry> {
    Ok(OutboxEntry {
        id: DB::text(row, "id")?,
        entry: DB::text(row, "entry")?,
        due_at: DB::int(row, "due_at")?,
    })
}
