//! What lets the store's SQL be written once for SQLite and PostgreSQL: statements take their
//! values as [`Arg`]s and rows are read through [`SqlDb`]'s cell readers, so the code that
//! uses them is generic over one bound, `DB: SqlDb`, instead of a dozen `Encode`/`Decode`
//! bounds per function. [`Backend`] is what a store gives the shared code: its pools, how it
//! opens a write transaction, how its migrations are serialized, its revocation watch.
//!
//! This module holds no statement of its own beyond the migration bookkeeping; the tables'
//! SQL lives with the areas that own it.

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use crate::{ChangeStore, Result, StoreError};

/// A value bound to a statement's next `$n`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    Text(&'a str),
    OptText(Option<&'a str>),
    Int(i64),
    OptInt(Option<i64>),
    /// A 32-bit integer column (`INTEGER` is 32 bits on PostgreSQL).
    Int32(i32),
    Bool(bool),
}

/// A statement's count of the rows it changed, which sqlx gives each backend's result type
/// but no trait.
pub(crate) trait Affected {
    fn affected(&self) -> u64;
}

impl Affected for sqlx::sqlite::SqliteQueryResult {
    fn affected(&self) -> u64 {
        self.rows_affected()
    }
}

impl Affected for sqlx::postgres::PgQueryResult {
    fn affected(&self) -> u64 {
        self.rows_affected()
    }
}

/// A sqlx database the shared SQL runs on. Implemented once, below, for every database that
/// has the encoders and decoders the store's columns need: SQLite and PostgreSQL.
#[async_trait]
pub(crate) trait SqlDb: Database {
    async fn fetch_all(
        conn: &mut Self::Connection,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Vec<Self::Row>, sqlx::Error>;
    async fn fetch_one(
        conn: &mut Self::Connection,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Self::Row, sqlx::Error>;
    async fn fetch_optional(
        conn: &mut Self::Connection,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<Self::Row>, sqlx::Error>;
    /// Runs the statement; the rows it changed.
    async fn execute(
        conn: &mut Self::Connection,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<u64, sqlx::Error>;
    /// Runs statements without arguments, as a migration file holds them.
    async fn execute_script(conn: &mut Self::Connection, sql: &str) -> Result<(), sqlx::Error>;

    fn text(row: &Self::Row, column: &str) -> Result<String, sqlx::Error>;
    fn opt_text(row: &Self::Row, column: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(row: &Self::Row, column: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(row: &Self::Row, column: &str) -> Result<Option<i64>, sqlx::Error>;
    fn opt_int32(row: &Self::Row, column: &str) -> Result<Option<i32>, sqlx::Error>;
    fn flag(row: &Self::Row, column: &str) -> Result<bool, sqlx::Error>;
}

#[async_trait]
impl<DB> SqlDb for DB
where
    DB: Database,
    DB::QueryResult: Affected,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> i32: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB>,
    for<'r> Option<String>: Decode<'r, DB>,
    for<'r> i64: Decode<'r, DB>,
    for<'r> Option<i64>: Decode<'r, DB>,
    for<'r> Option<i32>: Decode<'r, DB>,
    for<'r> bool: Decode<'r, DB>,
    for<'c> &'c str: ColumnIndex<DB::Row>,
{
    async fn fetch_all(
        conn: &mut DB::Connection,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Vec<DB::Row>, sqlx::Error> {
        bind(sqlx::query::<DB>(sql), args).fetch_all(conn).await
    }

    async fn fetch_one(
        conn: &mut DB::Connection,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<DB::Row, sqlx::Error> {
        bind(sqlx::query::<DB>(sql), args).fetch_one(conn).await
    }

    async fn fetch_optional(
        conn: &mut DB::Connection,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<DB::Row>, sqlx::Error> {
        bind(sqlx::query::<DB>(sql), args)
            .fetch_optional(conn)
            .await
    }

    async fn execute(
        conn: &mut DB::Connection,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<u64, sqlx::Error> {
        let done = bind(sqlx::query::<DB>(sql), args).execute(conn).await?;
        Ok(done.affected())
    }

    async fn execute_script(conn: &mut DB::Connection, sql: &str) -> Result<(), sqlx::Error> {
        Executor::execute(conn, sqlx::raw_sql(sql)).await.map(drop)
    }

    fn text(row: &DB::Row, column: &str) -> Result<String, sqlx::Error> {
        row.try_get(column)
    }
    fn opt_text(row: &DB::Row, column: &str) -> Result<Option<String>, sqlx::Error> {
        row.try_get(column)
    }
    fn int(row: &DB::Row, column: &str) -> Result<i64, sqlx::Error> {
        row.try_get(column)
    }
    fn opt_int(row: &DB::Row, column: &str) -> Result<Option<i64>, sqlx::Error> {
        row.try_get(column)
    }
    fn opt_int32(row: &DB::Row, column: &str) -> Result<Option<i32>, sqlx::Error> {
        row.try_get(column)
    }
    fn flag(row: &DB::Row, column: &str) -> Result<bool, sqlx::Error> {
        row.try_get(column)
    }
}

fn bind<'q, DB>(
    query: sqlx::query::Query<'q, DB, DB::Arguments<'q>>,
    args: &[Arg<'_>],
) -> sqlx::query::Query<'q, DB, DB::Arguments<'q>>
where
    DB: Database,
    String: Encode<'q, DB> + Type<DB>,
    Option<String>: Encode<'q, DB>,
    i64: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB>,
    i32: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
{
    args.iter().fold(query, |q, arg| match *arg {
        Arg::Text(s) => q.bind(s.to_owned()),
        Arg::OptText(s) => q.bind(s.map(str::to_owned)),
        Arg::Int(n) => q.bind(n),
        Arg::OptInt(n) => q.bind(n),
        Arg::Int32(n) => q.bind(n),
        Arg::Bool(b) => q.bind(b),
    })
}

/// What a store gives the SQL it shares with the other backend. Every area trait is
/// implemented once for every `Backend` (see `crate::shared`).
#[async_trait]
pub(crate) trait Backend: ChangeStore {
    type Db: SqlDb;

    /// The statement that opens a write transaction; `None` for the database's `BEGIN`.
    const BEGIN_WRITE: Option<&'static str>;

    /// Lifecycle state: everything but the assertion `jti`s.
    fn pool(&self) -> &Pool<Self::Db>;
    /// Client-assertion `jti`s, which may be kept with less durability (SQLite).
    fn jti_pool(&self) -> &Pool<Self::Db>;
    /// See [`crate::RevocationStore::revocation_watch`].
    fn revocation_watch(&self) -> tokio::sync::watch::Receiver<i64>;

    /// Taken at the start of each migration's transaction, so that stores opening one
    /// database at once apply each migration once. Nothing by default.
    async fn lock_migrations(_conn: &mut <Self::Db as Database>::Connection) -> Result<()> {
        Ok(())
    }
}

/// A connection from the lifecycle pool.
pub(crate) async fn conn<B: Backend>(store: &B) -> Result<PoolConnection<B::Db>> {
    Ok(store.pool().acquire().await?)
}

/// Opens a write transaction the backend's way.
pub(crate) async fn begin_write<B: Backend>(
    pool: &Pool<B::Db>,
) -> Result<sqlx::Transaction<'static, B::Db>> {
    Ok(match B::BEGIN_WRITE {
        Some(statement) => pool.begin_with(statement).await?,
        None => pool.begin().await?,
    })
}

/// Applies the migrations `pool` has not seen, in order, each in its own transaction.
pub(crate) async fn migrate<B: Backend>(
    pool: &Pool<B::Db>,
    migrations: &[(i64, &str)],
) -> Result<()> {
    // Concurrent `CREATE TABLE IF NOT EXISTS` can still collide in PostgreSQL's catalog, so
    // even this runs under the lock.
    let mut tx = begin_write::<B>(pool).await?;
    B::lock_migrations(&mut tx).await?;
    B::Db::execute(
        &mut tx,
        "CREATE TABLE IF NOT EXISTS warden_migrations \
         (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        &[],
    )
    .await?;
    tx.commit().await?;
    for (version, sql) in migrations {
        let mut tx = begin_write::<B>(pool).await?;
        // A store that waited here sees the version the holder recorded, and skips it.
        B::lock_migrations(&mut tx).await?;
        let done = B::Db::fetch_optional(
            &mut tx,
            "SELECT version FROM warden_migrations WHERE version = $1",
            &[Arg::Int(*version)],
        )
        .await?;
        if done.is_none() {
            B::Db::execute_script(&mut tx, sql).await?;
            B::Db::execute(
                &mut tx,
                "INSERT INTO warden_migrations (version, applied_at) VALUES ($1, $2)",
                &[Arg::Int(*version), Arg::Int(unix_now())],
            )
            .await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

/// The newest revocation `seq` in the log, 0 when it is empty.
pub(crate) async fn newest_seq<DB: SqlDb>(pool: &Pool<DB>) -> Result<i64> {
    let mut conn = pool.acquire().await?;
    let row =
        DB::fetch_optional(&mut conn, "SELECT MAX(seq) AS head FROM revocations", &[]).await?;
    Ok(match row {
        Some(row) => DB::opt_int(&row, "head")?.unwrap_or(0),
        None => 0,
    })
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}
