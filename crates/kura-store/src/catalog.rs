//! The catalog database of vaults: SQLite (a local vault's `catalog.db`) or PostgreSQL (the
//! service: many servers, many vaults, one database). This module owns the connection
//! pools, the migrations and the only way to run a statement.
//!
//! **One vault per statement.** Every table holds the rows of many vaults, keyed by a
//! `vault` column. A statement is always run for the vault of a [`Catalog`], whose id is
//! bound as parameter `$1`, and a statement that does not use `$1` trips an assertion in
//! debug builds, so a query that forgets its vault fails the tests instead of leaking rows.
//!
//! **One dialect.** The vault logic (sessions, commit, GC, verify) is written once, in the
//! SQL both databases understand (`ON CONFLICT`, `CAST(… AS BIGINT)`, `TRUE`/`FALSE`,
//! `LIKE`); the backends differ only in their migrations (`migrations/sqlite`,
//! `migrations/postgres`: `BLOB`/`BYTEA`, `WITHOUT ROWID`). The `dispatch!` macro compiles each
//! statement for both drivers from one source.

use std::borrow::Cow;
use std::sync::Arc;

use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{AssertSqlSafe, FromRow, Postgres, SqlSafeStr, SqlStr, Sqlite, Transaction};

use crate::Result;

/// The table recording applied migrations of this crate. Not sqlx's default
/// `_sqlx_migrations`: the server keeps its own migrations in the same database.
const MIGRATIONS_TABLE: &str = "_kura_store_migrations";

/// Creates or upgrades the catalog tables (`vault_*`) in a SQLite database.
pub async fn migrate_sqlite(pool: &SqlitePool) -> Result<()> {
    let mut migrator = sqlx::migrate!("./migrations/sqlite");
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator.run(pool).await?;
    Ok(())
}

/// Creates or upgrades the catalog tables (`vault_*`) in the first schema of the pool's
/// `search_path`. Run once at server start; safe to run from several servers at once.
pub async fn migrate_postgres(pool: &PgPool) -> Result<()> {
    let mut migrator = sqlx::migrate!("./migrations/postgres");
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator.run(pool).await?;
    Ok(())
}

/// The catalog of one vault: a database plus the vault's id within it. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Catalog {
    pool: Pool,
    vault: Arc<str>,
}

#[derive(Clone, Debug)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Catalog {
    /// Vault `vault_id` in a SQLite database migrated by [`migrate_sqlite`].
    pub fn sqlite(pool: SqlitePool, vault_id: &str) -> Catalog {
        Catalog {
            pool: Pool::Sqlite(pool),
            vault: vault_id.into(),
        }
    }

    /// Vault `vault_id` in a PostgreSQL database migrated by [`migrate_postgres`].
    pub fn postgres(pool: PgPool, vault_id: &str) -> Catalog {
        Catalog {
            pool: Pool::Postgres(pool),
            vault: vault_id.into(),
        }
    }

    /// The vault's id within the database.
    pub fn vault_id(&self) -> &str {
        &self.vault
    }

    /// Starts a transaction on this vault's rows.
    pub(crate) async fn begin(&self) -> Result<Tx> {
        let conn = match &self.pool {
            // Every catalog transaction writes: taking the write lock up front lets SQLite's
            // busy timeout wait for it, where a deferred transaction that reads first fails
            // at once with "database is locked" when another connection wrote meanwhile.
            Pool::Sqlite(p) => TxConn::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(p) => TxConn::Postgres(p.begin().await?),
        };
        Ok(Tx {
            conn,
            vault: self.vault.clone(),
        })
    }
}

/// A transaction on one vault's rows; dropped without [`Tx::commit`], it rolls back.
pub(crate) struct Tx {
    conn: TxConn,
    vault: Arc<str>,
}

enum TxConn {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    pub(crate) async fn commit(self) -> Result<()> {
        match self.conn {
            TxConn::Sqlite(t) => t.commit().await?,
            TxConn::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }
}

/// Where a statement runs: a catalog's pool or an open transaction.
pub(crate) trait Target<'c> {
    fn target(self) -> (&'c str, Exec<'c>);
}

pub(crate) enum Exec<'c> {
    SqlitePool(&'c SqlitePool),
    Sqlite(&'c mut SqliteConnection),
    PgPool(&'c PgPool),
    Postgres(&'c mut PgConnection),
}

impl<'c> Target<'c> for &'c Catalog {
    fn target(self) -> (&'c str, Exec<'c>) {
        let exec = match &self.pool {
            Pool::Sqlite(p) => Exec::SqlitePool(p),
            Pool::Postgres(p) => Exec::PgPool(p),
        };
        (&self.vault, exec)
    }
}

impl<'c> Target<'c> for &'c mut Tx {
    fn target(self) -> (&'c str, Exec<'c>) {
        let exec = match &mut self.conn {
            TxConn::Sqlite(t) => Exec::Sqlite(t),
            TxConn::Postgres(t) => Exec::Postgres(t),
        };
        (&self.vault, exec)
    }
}

/// A row type both drivers can decode (tuples of `i64`, `bool`, `String`, `Vec<u8>`, …).
pub(crate) trait Record:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

impl<T> Record for T where T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin {}

/// A value bound to a statement parameter.
pub(crate) enum Value<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    Text(Cow<'a, str>),
    OptText(Option<String>),
    OptInt(Option<i64>),
}

impl From<i64> for Value<'_> {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(v: &'a [u8]) -> Self {
        Value::Bytes(v)
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
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
        Value::OptText(v)
    }
}

impl From<Option<i64>> for Value<'_> {
    fn from(v: Option<i64>) -> Self {
        Value::OptInt(v)
    }
}

/// A statement of one vault: its SQL uses `$1` for the vault id and `$2…` for the values
/// bound with [`Query::bind`] and [`Query::bind_ids`], in order.
pub(crate) struct Query<'a> {
    sql: SqlStr,
    args: Vec<Value<'a>>,
}

/// A statement; see [`Query`].
pub(crate) fn query<'a>(sql: impl SqlSafeStr) -> Query<'a> {
    let sql = sql.into_sql_str();
    debug_assert!(
        uses_vault_id(sql.as_str()),
        "statement ignores its vault: {}",
        sql.as_str()
    );
    Query {
        sql,
        args: Vec::new(),
    }
}

/// Whether `sql` refers to parameter `$1` (not just `$10`…), itself or through `{rows}`,
/// whose every row [`Query::bind_rows`] leads with it.
fn uses_vault_id(sql: &str) -> bool {
    sql.contains("{rows}")
        || sql
            .match_indices("$1")
            .any(|(at, _)| !sql[at + 2..].starts_with(|c: char| c.is_ascii_digit()))
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

/// Binds the vault id and the values to a sqlx query of either driver.
macro_rules! bind_all {
    ($query:expr, $vault:expr, $args:expr) => {{
        let mut q = $query.bind($vault);
        for arg in $args {
            q = match arg {
                Value::Int(v) => q.bind(*v),
                Value::Bytes(v) => q.bind(*v),
                Value::Text(v) => q.bind(v.as_ref()),
                Value::OptText(v) => q.bind(v.as_deref()),
                Value::OptInt(v) => q.bind(*v),
            };
        }
        q
    }};
}

impl<'a> Query<'a> {
    /// Binds the next parameter.
    pub(crate) fn bind(mut self, value: impl Into<Value<'a>>) -> Self {
        self.args.push(value.into());
        self
    }

    /// Binds a list of ids (raw chunk ids, or snapshot ids as text) to the statement's
    /// `{ids}` (as in `id IN ({ids})`), numbered
    /// after the values bound so far. Bind at most [`crate::vault::BATCH`] at once.
    pub(crate) fn bind_ids<V: Into<Value<'a>>>(mut self, ids: impl IntoIterator<Item = V>) -> Self {
        let first = self.args.len() + 2;
        self.args.extend(ids.into_iter().map(Into::into));
        let list = (first..self.args.len() + 2)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(",");
        // Only parameter numbers are spliced into the SQL, never a value.
        let sql = self.sql.as_str().replace("{ids}", &list);
        self.sql = AssertSqlSafe(sql).into_sql_str();
        self
    }

    /// Binds rows of `N` values to the statement's `{rows}` (as in `INSERT ... VALUES
    /// {rows}`), each row led by the vault id `$1`, numbered after the values bound so far.
    /// Bind at most [`crate::vault::BATCH`] values at once.
    pub(crate) fn bind_rows<const N: usize>(
        mut self,
        rows: impl IntoIterator<Item = [Value<'a>; N]>,
    ) -> Self {
        let mut list = Vec::new();
        for row in rows {
            let first = self.args.len() + 2;
            self.args.extend(row);
            let params: Vec<String> = (first..first + N).map(|i| format!("${i}")).collect();
            list.push(format!("($1, {})", params.join(", ")));
        }
        // Only parameter numbers are spliced into the SQL, never a value.
        let sql = self.sql.as_str().replace("{rows}", &list.join(", "));
        self.sql = AssertSqlSafe(sql).into_sql_str();
        self
    }

    /// Runs the statement; returns the number of rows it changed.
    pub(crate) async fn execute<'c>(self, to: impl Target<'c>) -> Result<u64> {
        let (vault, exec) = to.target();
        let args = &self.args;
        Ok(dispatch!(exec, e => bind_all!(sqlx::query(self.sql), vault, args)
            .execute(e)
            .await?
            .rows_affected()))
    }

    /// All rows.
    pub(crate) async fn fetch_all<'c, T: Record>(self, to: impl Target<'c>) -> Result<Vec<T>> {
        let (vault, exec) = to.target();
        let args = &self.args;
        Ok(
            dispatch!(exec, e => bind_all!(sqlx::query_as::<_, T>(self.sql), vault, args)
            .fetch_all(e)
            .await?),
        )
    }

    /// The first row, if any.
    pub(crate) async fn fetch_optional<'c, T: Record>(self, to: impl Target<'c>) -> Result<Option<T>> {
        let (vault, exec) = to.target();
        let args = &self.args;
        Ok(
            dispatch!(exec, e => bind_all!(sqlx::query_as::<_, T>(self.sql), vault, args)
            .fetch_optional(e)
            .await?),
        )
    }

    /// The first row; a statement that yields none is a catalog error.
    pub(crate) async fn fetch_one<'c, T: Record>(self, to: impl Target<'c>) -> Result<T> {
        Ok(self.fetch_optional(to).await?.ok_or(sqlx::Error::RowNotFound)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_numbered_after_earlier_values_and_lead_with_the_vault() {
        let q = query("INSERT INTO t (vault, a, b) VALUES {rows} ON CONFLICT DO NOTHING")
            .bind(7i64)
            .bind_rows([[1i64.into(), 2i64.into()], [3i64.into(), 4i64.into()]]);
        assert_eq!(
            q.sql.as_str(),
            "INSERT INTO t (vault, a, b) VALUES ($1, $3, $4), ($1, $5, $6) ON CONFLICT DO NOTHING"
        );
        assert_eq!(q.args.len(), 5);
    }
}
