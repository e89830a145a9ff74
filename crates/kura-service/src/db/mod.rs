//! The service database: SQLite (the embedded default) or PostgreSQL (several servers
//! sharing one metadata store), with one SQL text for both, one transaction type, and
//! one file of statements per area.
//!
//! **One dialect.** Every statement is written once in the SQL both engines accept
//! (`$n` parameters, `RETURNING`, `ON CONFLICT`, `BIGINT` milliseconds, `BOOLEAN`); the
//! engines differ only in their migrations (`migrations/sqlite`, `migrations/postgres`).
//! The `dispatch!` macro compiles each statement for both drivers from one source.
//!
//! **One transaction.** An operation opens a [`Tx`], writes its change, its event-log
//! row and any outbox rows, and commits once: either all of it happened or none. SQLite
//! transactions take the write lock up front (`BEGIN IMMEDIATE`), so the busy timeout
//! queues writers instead of failing them half-way.
//!
//! **Tenant data carries its tenant.** A statement about a tenant's rows is built with
//! [`Query::tenant`] from a scope ([`TenantKey`]), which binds the tenant id as `$1`; one
//! that does not use `$1` trips an assertion in debug builds, so a query that forgets its
//! tenant fails the tests instead of leaking rows. Service-wide statements (operator
//! tokens, lookups of a credential by its hash, failed sign-ins) use [`Query::service`].

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, FromRow, Postgres, SqlSafeStr, SqlStr, Sqlite, Transaction};

use crate::authz::TenantKey;

pub mod alerts;
pub mod approvals;
pub mod drills;
pub mod events;
pub mod jobs;
pub mod logins;
pub mod machines;
pub mod metering;
pub mod monitoring;
pub mod notices;
pub mod operators;
pub mod outbox;
pub mod plans;
pub mod requests;
pub mod resets;
pub mod restores;
pub mod runs;
pub mod sessions;
pub mod snapshots;
pub mod tenants;
pub mod terminations;
#[cfg(test)]
mod tests;
pub mod tokens;
pub mod usage;
pub mod users;

/// What went wrong in the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A unique value (service code, login) is already taken.
    #[error("{0}")]
    Conflict(String),
    /// Carries only the URL's scheme: the rest may hold a password.
    #[error("unsupported database URL scheme {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("{0} is too large to store")]
    OutOfRange(String),
    #[error("a stored value is invalid: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type DbResult<T> = Result<T, DbError>;

/// The service database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    pool: Pool,
}

#[derive(Clone, Debug)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Db {
    /// Opens (creating if needed) and migrates the database at `url`: `sqlite://PATH` or
    /// `postgres://…` (a schema may be chosen with `?options=-c%20search_path%3DNAME`).
    pub async fn connect(url: &str) -> DbResult<Db> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .foreign_keys(true)
                // WAL lets readers run while a writer commits; NORMAL is durable in WAL
                // mode except for the last transactions before a power loss.
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                // Writers queue instead of failing with SQLITE_BUSY.
                .busy_timeout(Duration::from_secs(10));
            if let Some(parent) = options.get_filename().parent() {
                std::fs::create_dir_all(parent).map_err(sqlx::Error::Io)?;
            }
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(options)
                .await?;
            sqlx::migrate!("migrations/sqlite").run(&pool).await?;
            Ok(Db {
                pool: Pool::Sqlite(pool),
            })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .connect_with(PgConnectOptions::from_str(url)?)
                .await?;
            sqlx::migrate!("migrations/postgres").run(&pool).await?;
            Ok(Db {
                pool: Pool::Postgres(pool),
            })
        } else {
            let scheme = url.split(':').next().unwrap_or_default();
            Err(DbError::UnsupportedUrl(scheme.to_owned()))
        }
    }

    /// `sqlite` or `postgres`, for logs and health output.
    pub fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Starts a transaction; dropped without [`Tx::commit`], it rolls back.
    pub async fn begin(&self) -> DbResult<Tx> {
        Ok(Tx {
            conn: match &self.pool {
                Pool::Sqlite(p) => TxConn::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
                Pool::Postgres(p) => TxConn::Postgres(p.begin().await?),
            },
        })
    }

    /// Runs raw SQL that is not part of the service's statements (tests that tamper
    /// with rows, health checks).
    pub async fn execute_raw(&self, sql: &'static str) -> DbResult<u64> {
        Query::service(sql).execute(self).await
    }
}

/// Copies the SQLite database in file `from` into a new file `to` while others use it:
/// `VACUUM INTO` reads in one transaction, so the copy is the database at one instant
/// (compacted). For the service's metadata backup: the service database and each local
/// vault's catalog.
pub async fn copy_sqlite(from: &std::path::Path, to: &std::path::Path) -> DbResult<()> {
    use sqlx::Connection;
    let options = SqliteConnectOptions::new()
        .filename(from)
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(30));
    let mut conn = SqliteConnection::connect_with(&options).await?;
    let target = to
        .to_str()
        .ok_or_else(|| DbError::Corrupt(format!("{} is not a UTF-8 path", to.display())))?;
    sqlx::query("VACUUM INTO ?")
        .bind(target)
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// A transaction of the service database.
pub struct Tx {
    conn: TxConn,
}

enum TxConn {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    pub async fn commit(self) -> DbResult<()> {
        match self.conn {
            TxConn::Sqlite(t) => t.commit().await?,
            TxConn::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    /// Whether this is PostgreSQL, for the one statement that differs (row locks).
    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self.conn, TxConn::Postgres(_))
    }
}

/// Where a statement runs: the pool or an open transaction.
pub trait Target<'c> {
    #[doc(hidden)]
    fn target(self) -> Exec<'c>;
}

#[doc(hidden)]
pub enum Exec<'c> {
    SqlitePool(&'c SqlitePool),
    Sqlite(&'c mut SqliteConnection),
    PgPool(&'c PgPool),
    Postgres(&'c mut PgConnection),
}

impl<'c> Target<'c> for &'c Db {
    fn target(self) -> Exec<'c> {
        match &self.pool {
            Pool::Sqlite(p) => Exec::SqlitePool(p),
            Pool::Postgres(p) => Exec::PgPool(p),
        }
    }
}

impl<'c> Target<'c> for &'c mut Tx {
    fn target(self) -> Exec<'c> {
        match &mut self.conn {
            TxConn::Sqlite(t) => Exec::Sqlite(t),
            TxConn::Postgres(t) => Exec::Postgres(t),
        }
    }
}

/// A row type both drivers can decode (tuples of `i64`, `bool`, `String`, …).
pub(crate) trait Record:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

impl<T> Record for T where T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin {}

/// A value bound to a statement parameter.
pub(crate) enum Value<'a> {
    Int(i64),
    OptInt(Option<i64>),
    Bool(bool),
    OptBool(Option<bool>),
    Text(Cow<'a, str>),
    OptText(Option<Cow<'a, str>>),
}

impl From<i64> for Value<'_> {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<Option<i64>> for Value<'_> {
    fn from(v: Option<i64>) -> Self {
        Value::OptInt(v)
    }
}

impl From<bool> for Value<'_> {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<Option<bool>> for Value<'_> {
    fn from(v: Option<bool>) -> Self {
        Value::OptBool(v)
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
        Value::Text(Cow::Borrowed(v))
    }
}

impl<'a> From<&'a String> for Value<'a> {
    fn from(v: &'a String) -> Self {
        Value::Text(Cow::Borrowed(v))
    }
}

impl From<String> for Value<'_> {
    fn from(v: String) -> Self {
        Value::Text(Cow::Owned(v))
    }
}

impl From<Option<String>> for Value<'_> {
    fn from(v: Option<String>) -> Self {
        Value::OptText(v.map(Cow::Owned))
    }
}

impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Value::OptText(v.map(Cow::Borrowed))
    }
}

/// A statement and the values bound to it so far.
pub(crate) struct Query<'a> {
    sql: SqlStr,
    args: Vec<Value<'a>>,
}

/// Runs `$body` with `$e` bound to the executor of either driver: the statement is written
/// once and compiled for both.
macro_rules! dispatch {
    ($exec:expr, $e:ident => $body:expr) => {
        match $exec {
            Exec::SqlitePool($e) => $body,
            Exec::Sqlite($e) => $body,
            Exec::PgPool($e) => $body,
            Exec::Postgres($e) => $body,
        }
    };
}

/// Binds the values to a sqlx query of either driver.
macro_rules! bind_values {
    ($query:expr, $args:expr) => {{
        let mut q = $query;
        for arg in $args {
            q = match arg {
                Value::Int(v) => q.bind(*v),
                Value::OptInt(v) => q.bind(*v),
                Value::Bool(v) => q.bind(*v),
                Value::OptBool(v) => q.bind(*v),
                Value::Text(v) => q.bind(v.as_ref()),
                Value::OptText(v) => q.bind(v.as_deref()),
            };
        }
        q
    }};
}

impl<'a> Query<'a> {
    /// A service-wide statement: no tenant's rows, or rows found by a secret's hash.
    pub(crate) fn service(sql: impl SqlSafeStr) -> Self {
        Query {
            sql: sql.into_sql_str(),
            args: Vec::new(),
        }
    }

    /// A statement about one tenant's rows: `$1` is the tenant id, and the SQL must use it.
    pub(crate) fn tenant(scope: &'a impl TenantKey, sql: impl SqlSafeStr) -> Self {
        let sql = sql.into_sql_str();
        debug_assert!(
            uses_first_parameter(sql.as_str()),
            "statement ignores its tenant: {}",
            sql.as_str()
        );
        Query {
            sql,
            args: vec![Value::from(scope.tenant_id().as_str())],
        }
    }

    /// Binds the next parameter.
    pub(crate) fn bind(mut self, value: impl Into<Value<'a>>) -> Self {
        self.args.push(value.into());
        self
    }

    /// Replaces `{params}` with parameters for `values`, numbered after those bound so far
    /// (as in `id IN ({params})`). Only parameter numbers are spliced into the SQL.
    pub(crate) fn bind_list(mut self, values: impl IntoIterator<Item = Value<'a>>) -> Self {
        let first = self.args.len() + 1;
        self.args.extend(values);
        let list = (first..=self.args.len())
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = self.sql.as_str().replace("{params}", &list);
        self.sql = AssertSqlSafe(sql).into_sql_str();
        self
    }

    /// Runs the statement; returns the number of rows it changed.
    pub(crate) async fn execute<'c>(self, on: impl Target<'c>) -> DbResult<u64> {
        let args = &self.args;
        Ok(
            dispatch!(on.target(), e => bind_values!(sqlx::query(self.sql), args)
            .execute(e)
            .await?
            .rows_affected()),
        )
    }

    /// All rows.
    pub(crate) async fn fetch_all<'c, T: Record>(self, on: impl Target<'c>) -> DbResult<Vec<T>> {
        let args = &self.args;
        Ok(
            dispatch!(on.target(), e => bind_values!(sqlx::query_as::<_, T>(self.sql), args)
            .fetch_all(e)
            .await?),
        )
    }

    /// The first row, if any.
    pub(crate) async fn fetch_optional<'c, T: Record>(self, on: impl Target<'c>) -> DbResult<Option<T>> {
        let args = &self.args;
        Ok(
            dispatch!(on.target(), e => bind_values!(sqlx::query_as::<_, T>(self.sql), args)
            .fetch_optional(e)
            .await?),
        )
    }

    /// The first row; none is an error.
    pub(crate) async fn fetch_one<'c, T: Record>(self, on: impl Target<'c>) -> DbResult<T> {
        let args = &self.args;
        Ok(
            dispatch!(on.target(), e => bind_values!(sqlx::query_as::<_, T>(self.sql), args)
            .fetch_one(e)
            .await?),
        )
    }
}

/// Whether `sql` refers to parameter `$1` itself (not just `$10`…).
fn uses_first_parameter(sql: &str) -> bool {
    sql.match_indices("$1")
        .any(|(at, _)| !sql[at + 2..].starts_with(|c: char| c.is_ascii_digit()))
}

/// Unsigned values are stored as `BIGINT`, which both databases have.
pub(crate) fn to_db_int(value: impl Into<u64>, what: &str) -> DbResult<i64> {
    i64::try_from(value.into()).map_err(|_| DbError::OutOfRange(what.to_owned()))
}

pub(crate) fn from_db_int<T: TryFrom<i64>>(value: i64, what: &str) -> DbResult<T> {
    T::try_from(value).map_err(|_| DbError::Corrupt(format!("{what} = {value} is out of range")))
}

/// Counts rows as `u32`, saturating.
pub(crate) fn count_u32(count: i64) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// Networks are stored as a JSON array of CIDR strings: portable, and readable in a dump.
pub(crate) fn networks_to_db(networks: &[IpNet]) -> String {
    let texts: Vec<String> = networks.iter().map(IpNet::to_string).collect();
    serde_json::Value::from(texts).to_string()
}

pub(crate) fn networks_from_db(text: &str) -> DbResult<Vec<IpNet>> {
    let texts: Vec<String> =
        serde_json::from_str(text).map_err(|err| DbError::Corrupt(format!("networks {text:?}: {err}")))?;
    texts
        .iter()
        .map(|net| {
            net.parse()
                .map_err(|err| DbError::Corrupt(format!("network {net:?}: {err}")))
        })
        .collect()
}

/// Turns a unique-key violation into [`DbError::Conflict`], naming what was taken.
pub(crate) fn map_unique_violation(err: DbError, service_code: &str, login: &str) -> DbError {
    let DbError::Sqlx(sqlx_err) = &err else {
        return err;
    };
    match sqlx_err.as_database_error() {
        Some(db_err) if db_err.is_unique_violation() => {
            if db_err.message().contains("service_code") {
                DbError::Conflict(format!("service code {service_code} is already in use"))
            } else if db_err.message().contains("login") {
                DbError::Conflict(format!("login {login} is already in use"))
            } else {
                DbError::Conflict(db_err.message().to_owned())
            }
        }
        _ => err,
    }
}

#[cfg(test)]
mod runner_tests {
    use super::uses_first_parameter;

    #[test]
    fn the_tenant_parameter_must_be_used() {
        assert!(uses_first_parameter("SELECT 1 FROM t WHERE tenant_id = $1"));
        assert!(uses_first_parameter("... $1, $2"));
        assert!(!uses_first_parameter("SELECT 1 FROM t WHERE id = $10"));
        assert!(!uses_first_parameter("SELECT 1"));
    }
}
