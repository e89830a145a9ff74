//! A fresh schema in the test PostgreSQL (`KURA_TEST_POSTGRES_URL`, default
//! `postgres://root@127.0.0.1:5432/test`), dropped when its guard goes.

/// The test PostgreSQL database.
pub fn admin_url() -> String {
    std::env::var("KURA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".to_owned())
}

/// A schema of its own for one test; dropped (with everything in it) on drop.
pub struct PgSchema {
    admin_url: String,
    name: String,
}

impl PgSchema {
    /// Creates a schema named `PREFIX_<random>`.
    pub async fn create(prefix: &str) -> PgSchema {
        let admin_url = admin_url();
        let name = format!("{prefix}_{}", kura_server::secrets::random_hex(8));
        let admin = sqlx::PgPool::connect(&admin_url)
            .await
            .expect("PostgreSQL must be running for this test (127.0.0.1:5432, database test)");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        PgSchema { admin_url, name }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The test database with this schema first on the search path.
    pub fn url(&self) -> String {
        let separator = if self.admin_url.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}options=-c%20search_path%3D{}",
            self.admin_url, self.name
        )
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let statement = format!("DROP SCHEMA {} CASCADE", self.name);
        // Drop runs inside the test's runtime, so the cleanup gets its own thread.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let pool = sqlx::PgPool::connect(&admin_url).await?;
                    sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&pool).await
                })
        })
        .join();
        if !matches!(dropped, Ok(Ok(_))) {
            eprintln!("could not drop test schema {}", self.name);
        }
    }
}
