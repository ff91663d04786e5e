//! Persistence: one `sqlx` pool over SQLite (a file, the default) or PostgreSQL (by URL),
//! and a small migrations runner keyed by NF so several NFs can share one database.
//!
//! The pool is sqlx's `Any` driver, so one store implementation runs on both back ends.
//! Write portable SQL:
//! - placeholders `$1, $2, ...` (both back ends accept them);
//! - integers as `BIGINT` and read as `i64`, reals as `DOUBLE PRECISION` / `f64`,
//!   text (JSON documents included) as `TEXT` / `String`, booleans as `BOOLEAN` / `bool`;
//! - upserts with `INSERT ... ON CONFLICT (key) DO UPDATE SET col = excluded.col`;
//! - where dialects differ, give the migration a PostgreSQL variant
//!   ([`Migration::postgres`]) or branch on [`Db::backend`].
//!
//! ```ignore
//! const MIGRATIONS: &[Migration] = &[
//!     Migration::new(1, "nf profiles", "CREATE TABLE nrf_profiles (id TEXT PRIMARY KEY, body TEXT NOT NULL)"),
//! ];
//! let db = netgpt_sbi::db::connect(&cfg.database.url).await?;
//! db.migrate("nrf", MIGRATIONS).await?;
//! ```
//!
//! Migrations applied are recorded in `netgpt_migrations(nf, version, description, applied_at)`;
//! running the same list again applies nothing. Table names should carry the NF's prefix
//! (`nrf_profiles`, `amf_ue_contexts`) since NFs may share a database.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Row};

/// Errors opening or migrating a database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL is neither `sqlite:` nor `postgres://`/`postgresql://`, or does not parse.
    #[error("database url '{url}': {reason}")]
    Url {
        /// The offending URL (password elided).
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// The folder of a SQLite file could not be created.
    #[error("cannot create database folder {path}: {error}")]
    Folder {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A migration failed; nothing of it was applied.
    #[error("migration {nf} v{version} ({description}): {error}")]
    Migration {
        /// The NF whose migration failed.
        nf: String,
        /// Its version.
        version: i64,
        /// Its description.
        description: String,
        /// The database error.
        error: sqlx::Error,
    },
    /// Any other database error.
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
}

/// Which database engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (file or memory).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A connection pool plus which engine is behind it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

/// One schema change of one NF.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Version, increasing from 1 per NF.
    pub version: i64,
    /// What it does, in a few words.
    pub description: &'static str,
    /// SQL run on every back end (several statements allowed) unless `postgres_sql` overrides it.
    pub sql: &'static str,
    /// PostgreSQL variant of `sql`, where the dialects differ.
    pub postgres_sql: Option<&'static str>,
}

impl Migration {
    /// A migration whose SQL is the same on SQLite and PostgreSQL.
    pub const fn new(version: i64, description: &'static str, sql: &'static str) -> Self {
        Self {
            version,
            description,
            sql,
            postgres_sql: None,
        }
    }

    /// Sets the PostgreSQL variant of the SQL.
    pub const fn postgres(mut self, sql: &'static str) -> Self {
        self.postgres_sql = Some(sql);
        self
    }

    fn sql_for(&self, backend: Backend) -> &'static str {
        match (backend, self.postgres_sql) {
            (Backend::Postgres, Some(pg)) => pg,
            _ => self.sql,
        }
    }
}

/// How long a request waits for a PostgreSQL connection before failing (the NF then answers
/// 500): below the SBI clients' default deadline, so an outage gives errors, not hangs.
pub const PG_ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// How long [`connect`] waits for a PostgreSQL server that refuses connections (starting).
const PG_STARTUP_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Key of the PostgreSQL advisory lock that serialises migrations of concurrent NFs.
const MIGRATION_LOCK_KEY: i64 = 0x6e65_7467_7074; // "netgpt"

/// Hides the password of a URL for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The file path of a `sqlite:` URL, `None` for in-memory databases.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    if path.is_empty() || path == ":memory:" || url.contains("mode=memory") {
        None
    } else {
        Some(PathBuf::from(path))
    }
}

/// Opens a pool on `url`: `sqlite://data/netgpt.db` (created with its parent folders when
/// missing; `?mode=rwc` is implied), `sqlite::memory:`, or `postgres://user:pw@host:port/db`.
pub async fn connect(url: &str) -> Result<Db, DbError> {
    sqlx::any::install_default_drivers();
    let bad = |reason: &str| DbError::Url {
        url: redact(url),
        reason: reason.to_owned(),
    };
    let (backend, url) = if url.starts_with("sqlite:") {
        let memory = sqlite_path(url).is_none();
        let mut url = url.to_owned();
        if let Some(path) = sqlite_path(&url) {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|error| DbError::Folder {
                    path: dir.to_owned(),
                    error,
                })?;
            }
        }
        if !memory && !url.contains("mode=") {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str("mode=rwc");
        }
        (Backend::Sqlite, url)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        (Backend::Postgres, url.to_owned())
    } else {
        return Err(bad("must start with sqlite:, postgres:// or postgresql://"));
    };
    let options = AnyConnectOptions::from_str(&url).map_err(|e| bad(&e.to_string()))?;
    let memory = backend == Backend::Sqlite && sqlite_path(&url).is_none();
    let pool = if memory {
        // Each SQLite memory connection is its own database: keep exactly one, forever.
        AnyPoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?
    } else if backend == Backend::Postgres {
        // A request waits at most PG_ACQUIRE_TIMEOUT for a connection. sqlx's default (30 s)
        // keeps retrying a refused connection that long: while the server is down (restart,
        // crash) every request hung past its consumer's SBI deadline (5 s) instead of getting
        // a 500 ProblemDetails from the NF.
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(PG_ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        // At start, wait for a server that is still starting as long as sqlx did before.
        let deadline = std::time::Instant::now() + PG_STARTUP_WAIT;
        loop {
            match pool.acquire().await {
                Ok(_) => break,
                // Refused for the whole acquire timeout: not up yet.
                Err(sqlx::Error::PoolTimedOut) if std::time::Instant::now() < deadline => {}
                Err(e) => return Err(e.into()),
            }
        }
        pool
    } else {
        AnyPoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?
    };
    if backend == Backend::Sqlite && !memory {
        // WAL lets readers and one writer proceed together: several NFs share the file.
        // Switching the mode needs the file to itself and SQLite answers SQLITE_BUSY at once,
        // without waiting on the busy timeout, while another process holds a write lock
        // (e.g. an NF migrating at the same start): retry for up to the same five seconds.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match sqlx::query("PRAGMA journal_mode=WAL").execute(&pool).await {
                Ok(_) => break,
                Err(sqlx::Error::Database(e))
                    if e.message().contains("locked") && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(Db { pool, backend })
}

impl Db {
    /// The pool, for `sqlx::query(...).execute(db.pool())`.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The engine behind the pool.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies `nf`'s migrations not yet recorded, in version order; returns how many were
    /// applied. Idempotent; safe when several NFs (or processes) migrate the same database
    /// at once. PostgreSQL commits each migration on its own (DDL is transactional);
    /// SQLite commits the pending batch as a whole, so a failure applies none of it.
    pub async fn migrate(&self, nf: &str, migrations: &[Migration]) -> Result<usize, DbError> {
        let mut conn = self.pool.acquire().await?;
        match self.backend {
            Backend::Postgres => {
                // Other processes wait here; each migration then commits on its own.
                sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(MIGRATION_LOCK_KEY)
                    .execute(&mut *conn)
                    .await?;
                let result = self.migrate_locked(&mut conn, nf, migrations, true).await;
                sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(MIGRATION_LOCK_KEY)
                    .execute(&mut *conn)
                    .await?;
                result
            }
            Backend::Sqlite => {
                // The write lock up front (waiting up to the busy timeout), so two processes
                // sharing the file never both see a migration as pending; the batch commits
                // as a whole.
                sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await?;
                let result = self.migrate_locked(&mut conn, nf, migrations, false).await;
                let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
                sqlx::raw_sql(end).execute(&mut *conn).await?;
                result
            }
        }
    }

    async fn migrate_locked(
        &self,
        conn: &mut sqlx::AnyConnection,
        nf: &str,
        migrations: &[Migration],
        tx_per_migration: bool,
    ) -> Result<usize, DbError> {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS netgpt_migrations (
                nf TEXT NOT NULL,
                version BIGINT NOT NULL,
                description TEXT NOT NULL,
                applied_at TEXT NOT NULL,
                PRIMARY KEY (nf, version)
            )",
        )
        .execute(&mut *conn)
        .await?;
        let applied: Vec<i64> = sqlx::query("SELECT version FROM netgpt_migrations WHERE nf = $1")
            .bind(nf)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()?;
        let mut todo: Vec<&Migration> = migrations
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .collect();
        todo.sort_by_key(|m| m.version);
        for m in &todo {
            let fail = |error| DbError::Migration {
                nf: nf.to_owned(),
                version: m.version,
                description: m.description.to_owned(),
                error,
            };
            let record = sqlx::query(
                "INSERT INTO netgpt_migrations (nf, version, description, applied_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(nf)
            .bind(m.version)
            .bind(m.description)
            .bind(chrono::Utc::now().to_rfc3339());
            if tx_per_migration {
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                sqlx::raw_sql(m.sql_for(self.backend))
                    .execute(&mut *tx)
                    .await
                    .map_err(fail)?;
                record.execute(&mut *tx).await.map_err(fail)?;
                tx.commit().await.map_err(fail)?;
            } else {
                sqlx::raw_sql(m.sql_for(self.backend))
                    .execute(&mut *conn)
                    .await
                    .map_err(fail)?;
                record.execute(&mut *conn).await.map_err(fail)?;
            }
            tracing::info!(
                nf,
                version = m.version,
                description = m.description,
                "migration applied"
            );
        }
        Ok(todo.len())
    }

    /// The versions recorded as applied for `nf`, ascending.
    pub async fn applied_migrations(&self, nf: &str) -> Result<Vec<i64>, DbError> {
        let rows =
            sqlx::query("SELECT version FROM netgpt_migrations WHERE nf = $1 ORDER BY version")
                .bind(nf)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()?)
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Environment variable naming a PostgreSQL server for persistence tests (`.ci/postgres.sh` sets it).
pub const TEST_POSTGRES_ENV: &str = "NETGPT_TEST_POSTGRES_URL";

/// Database URLs a persistence test should run against: a fresh SQLite file under `dir`
/// always, and, when `NETGPT_TEST_POSTGRES_URL` is set, a freshly created PostgreSQL
/// database on that server (so concurrent tests never see each other's rows).
pub async fn test_database_urls(dir: &Path) -> Result<Vec<String>, DbError> {
    let file = dir.join(format!("test-{}.db", uuid::Uuid::new_v4().simple()));
    let mut urls = vec![format!("sqlite://{}", file.display())];
    match std::env::var(TEST_POSTGRES_ENV) {
        Ok(admin) if !admin.trim().is_empty() => {
            urls.push(fresh_postgres_database(admin.trim()).await?);
        }
        _ => eprintln!(
            "{TEST_POSTGRES_ENV} is unset: PostgreSQL run skipped, SQLite only (tests/run.sh sets it)"
        ),
    }
    Ok(urls)
}

/// Creates a new, empty database on the server of `admin_url` and returns its URL.
pub async fn fresh_postgres_database(admin_url: &str) -> Result<String, DbError> {
    let name = format!("netgpt_t_{}", uuid::Uuid::new_v4().simple());
    let admin = connect(admin_url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(admin.pool())
        .await?;
    admin.close().await;
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin_url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    Ok(match query {
        Some(q) => format!("{host_part}/{name}?{q}"),
        None => format!("{host_part}/{name}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_and_redaction() {
        assert_eq!(
            sqlite_path("sqlite://data/netgpt.db?mode=rwc"),
            Some(PathBuf::from("data/netgpt.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:///tmp/x.db"),
            Some(PathBuf::from("/tmp/x.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(
            redact("postgres://u:secret@h:5/db"),
            "postgres://u:***@h:5/db"
        );
    }

    #[tokio::test]
    async fn unknown_scheme_is_refused_naming_the_url() {
        let err = connect("mysql://u:pw@h/db").await.unwrap_err().to_string();
        assert!(
            err.contains("mysql://u:***@h/db") && err.contains("sqlite:"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn sqlite_file_and_parent_folders_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a/b/netgpt.db");
        let db = connect(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (x BIGINT)")
            .execute(db.pool())
            .await
            .unwrap();
        assert!(file.exists());
        assert_eq!(db.backend(), Backend::Sqlite);
    }
}
