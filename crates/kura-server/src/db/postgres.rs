//! [`ServiceDb`](super::ServiceDb) on PostgreSQL, for several stateless servers sharing
//! one metadata store.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::DbResult;

/// The service database in PostgreSQL. The URL may choose a schema with
/// `?options=-c%20search_path%3DNAME`.
pub struct PostgresServiceDb {
    pool: sqlx::PgPool,
}

impl PostgresServiceDb {
    /// Connects to `postgres://…` and migrates the schema.
    pub async fn connect(url: &str) -> DbResult<Self> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(PostgresServiceDb { pool })
    }
}

super::sql::impl_service_db!(
    PostgresServiceDb,
    backend = "postgres",
    lock_tenant = "SELECT status, max_machines, agent_networks FROM tenants WHERE id = $1 FOR UPDATE"
);
