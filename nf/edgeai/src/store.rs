//! Persistence of the edge AI function's user profiles (preferences kept at the edge, never
//! sent as such to the cloud) on the shared [`netgpt_sbi::db`] pool: SQLite file by default,
//! PostgreSQL by URL. Edge functions of several sites may share one database: rows are keyed
//! by (site, SUPI).

use netgpt_sbi::db::{Db, DbError, Migration};
use sqlx::Row;

use crate::types::UserProfile;

/// A store failure (answered as 500 `SYSTEM_FAILURE`).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Open(#[from] DbError),
    /// A stored profile no longer parses.
    #[error("stored profile of '{0}' is corrupt: {1}")]
    Corrupt(String, String),
}

/// The edge AI function's schema, applied under the NF name `edgeai`.
pub const MIGRATIONS: &[Migration] = &[Migration::new(
    1,
    "user profiles per site",
    "CREATE TABLE edgeai_user_profiles (
            site TEXT NOT NULL,
            supi TEXT NOT NULL,
            document TEXT NOT NULL,
            updated_at_ms BIGINT NOT NULL,
            PRIMARY KEY (site, supi)
        );",
)];

/// User profiles of one site.
#[derive(Debug, Clone)]
pub struct ProfileStore {
    db: Db,
    site: String,
}

impl ProfileStore {
    /// Migrates `db` and serves the profiles of `site`.
    pub async fn new(db: Db, site: &str) -> Result<Self, StoreError> {
        db.migrate("edgeai", MIGRATIONS).await?;
        Ok(Self {
            db,
            site: site.to_owned(),
        })
    }

    /// The profile of `supi`, if one is stored.
    pub async fn get(&self, supi: &str) -> Result<Option<UserProfile>, StoreError> {
        let row =
            sqlx::query("SELECT document FROM edgeai_user_profiles WHERE site = $1 AND supi = $2")
                .bind(self.site.clone())
                .bind(supi.to_owned())
                .fetch_optional(self.db.pool())
                .await?;
        match row {
            None => Ok(None),
            Some(r) => {
                let doc: String = r.try_get("document")?;
                serde_json::from_str(&doc)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt(supi.to_owned(), e.to_string()))
            }
        }
    }

    /// Stores (or replaces) the profile of `supi`; `true` when it was new.
    pub async fn put(&self, supi: &str, profile: &UserProfile) -> Result<bool, StoreError> {
        let existed = self.get(supi).await?.is_some();
        let doc = serde_json::to_string(profile)
            .map_err(|e| StoreError::Corrupt(supi.to_owned(), e.to_string()))?;
        sqlx::query(
            "INSERT INTO edgeai_user_profiles (site, supi, document, updated_at_ms)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (site, supi) DO UPDATE SET document = excluded.document,
               updated_at_ms = excluded.updated_at_ms",
        )
        .bind(self.site.clone())
        .bind(supi.to_owned())
        .bind(doc)
        .bind(chrono::Utc::now().timestamp_millis())
        .execute(self.db.pool())
        .await?;
        Ok(!existed)
    }

    /// Deletes the profile of `supi`; `false` when there was none.
    pub async fn delete(&self, supi: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM edgeai_user_profiles WHERE site = $1 AND supi = $2")
            .bind(self.site.clone())
            .bind(supi.to_owned())
            .execute(self.db.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
