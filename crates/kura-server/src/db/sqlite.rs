//! [`ServiceDb`](super::ServiceDb) on SQLite: the embedded default, one file in the data
//! directory, nothing else to run.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::DbResult;

/// The service database in a SQLite file.
pub struct SqliteServiceDb {
    pool: sqlx::SqlitePool,
}

impl SqliteServiceDb {
    /// Opens `sqlite://PATH` (creating the file and its directory) and migrates it.
    pub async fn connect(url: &str) -> DbResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .foreign_keys(true)
            // WAL lets readers run while a writer commits; NORMAL is durable in WAL mode
            // except for the last transactions before a power loss.
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
        Ok(SqliteServiceDb { pool })
    }
}

super::sql::impl_service_db!(
    SqliteServiceDb,
    backend = "sqlite",
    lock_tenant = "SELECT status, max_machines, agent_networks FROM tenants WHERE id = $1"
);
