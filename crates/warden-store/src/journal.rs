//! The journal a change writes in its own transaction — the idempotent answer and the audit
//! outbox row — and the outbox's reads, written once for both backends: the SQL is the
//! dialect SQLite and PostgreSQL share, and the code is generic over the sqlx database.
//!
//! Statements that must say whether they touched a row use `RETURNING` and look for the row,
//! since sqlx has no backend-neutral affected-row count.

use sqlx::{Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use crate::change::{Applied, ChangeRecord, OutboxEntry};
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
pub(crate) async fn write<DB>(
    conn: &mut DB::Connection,
    record: &ChangeRecord<'_>,
    applied: &Applied,
) -> Result<()>
where
    DB: Database,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
{
    if let Some(answer) = &record.answer {
        let body = (answer.body)(applied).map_err(|e| {
            StoreError::Corrupt(format!("idempotent answer does not serialize: {e}"))
        })?;
        let done = complete(
            &mut *conn,
            answer.key,
            answer.reserved_at,
            answer.status,
            body,
        )
        .await?;
        if !done {
            return Err(StoreError::ReservationLost);
        }
    }
    if let Some(outbox) = &record.audit {
        sqlx::query::<DB>(INSERT_OUTBOX)
            .bind(outbox.id.clone())
            .bind(outbox.entry.clone())
            .bind(outbox.due_at)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Completes the reservation held since `reserved_at`; false when it is not pending under
/// that reservation (already completed, released, or taken over).
pub(crate) async fn complete<DB>(
    conn: &mut DB::Connection,
    key: &str,
    reserved_at: i64,
    status: u16,
    body: String,
) -> Result<bool>
where
    DB: Database,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
{
    // `status INTEGER` is 32 bits on PostgreSQL; SQLite takes an i32 as well.
    let row = sqlx::query::<DB>(COMPLETE_IDEMPOTENCY)
        .bind(i32::from(status))
        .bind(body)
        .bind(key.to_owned())
        .bind(reserved_at)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.is_some())
}

/// Forgets the reservation held since `reserved_at`, if it is still pending.
pub(crate) async fn release<DB>(
    conn: &mut DB::Connection,
    key: &str,
    reserved_at: i64,
) -> Result<bool>
where
    DB: Database,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    let row = sqlx::query::<DB>(RELEASE_IDEMPOTENCY)
        .bind(key.to_owned())
        .bind(reserved_at)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.is_some())
}

pub(crate) async fn outbox_entry<DB>(
    conn: &mut DB::Connection,
    id: &str,
) -> Result<Option<OutboxEntry>>
where
    DB: Database,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'c> &'c str: sqlx::ColumnIndex<DB::Row>,
{
    sqlx::query::<DB>(OUTBOX_ENTRY)
        .bind(id.to_owned())
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(outbox_from_row::<DB>)
        .transpose()
}

/// Takes up to `limit` entries due at `now`, oldest first, each held until `hold_until`
/// (when it is due again, should its taker not remove it).
pub(crate) async fn claim_outbox<DB>(
    conn: &mut DB::Connection,
    now: i64,
    hold_until: i64,
    limit: u32,
) -> Result<Vec<OutboxEntry>>
where
    DB: Database,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB>,
    for<'r> i64: Decode<'r, DB>,
    for<'c> &'c str: sqlx::ColumnIndex<DB::Row>,
{
    let due = sqlx::query::<DB>(DUE_OUTBOX)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(outbox_from_row::<DB>)
        .collect::<Result<Vec<_>>>()?;
    let mut claimed = Vec::with_capacity(due.len());
    for mut entry in due {
        let taken = sqlx::query::<DB>(CLAIM_OUTBOX)
            .bind(hold_until)
            .bind(entry.id.clone())
            .bind(entry.due_at)
            .fetch_optional(&mut *conn)
            .await?;
        if taken.is_some() {
            entry.due_at = hold_until;
            claimed.push(entry);
        }
    }
    Ok(claimed)
}

pub(crate) async fn remove_outbox<DB>(conn: &mut DB::Connection, id: &str) -> Result<()>
where
    DB: Database,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    sqlx::query::<DB>(REMOVE_OUTBOX)
        .bind(id.to_owned())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

fn outbox_from_row<DB>(row: &DB::Row) -> Result<OutboxEntry>
where
    DB: Database,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'c> &'c str: sqlx::ColumnIndex<DB::Row>,
{
    Ok(OutboxEntry {
        id: row.try_get("id")?,
        entry: row.try_get("entry")?,
        due_at: row.try_get("due_at")?,
    })
}
