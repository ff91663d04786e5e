//! Where the NRF keeps NF profiles: a small trait ([`NfStore`]) and its sqlx
//! implementation ([`SqlNfStore`]) over the shared [`netgpt_sbi::db::Db`] pool
//! (SQLite file by default, PostgreSQL by URL).
//!
//! One row per NF instance in `nrf_profiles`: the profile as JSON text plus the
//! columns discovery and expiry filter on (`nf_type`, `nf_status`) and the heartbeat
//! deadline `expires_at_ms` (Unix milliseconds, wall clock, so it survives a restart).
//! Every row has a `version` bumped on each write; updates are compare-and-swap on it
//! so two concurrent NFUpdates cannot lose one another.

use std::future::Future;
use std::pin::Pin;

use netgpt_sbi::db::{Db, DbError, Migration};
use netgpt_sbi::models::nnrf::{NfProfile, NfStatus};
use sqlx::Row;
use uuid::Uuid;

/// The NRF's migrations (run at start by [`crate::start`]).
pub const MIGRATIONS: &[Migration] = &[Migration::new(
    1,
    "nf profiles",
    "CREATE TABLE nrf_profiles (
        nf_instance_id TEXT PRIMARY KEY,
        nf_type TEXT NOT NULL,
        nf_status TEXT NOT NULL,
        heart_beat_timer BIGINT NOT NULL,
        expires_at_ms BIGINT NOT NULL,
        version BIGINT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX nrf_profiles_type ON nrf_profiles (nf_type, nf_status);
    CREATE INDEX nrf_profiles_expiry ON nrf_profiles (nf_status, expires_at_ms);",
)];

/// Errors of the profile store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("nrf store: {0}")]
    Db(#[from] sqlx::Error),
    /// Opening or migrating the database failed.
    #[error("nrf store: {0}")]
    Open(#[from] DbError),
    /// A stored profile no longer parses (written by an incompatible version).
    #[error("nrf store: stored profile {id} is corrupt: {source}")]
    Corrupt {
        /// The NF instance.
        id: String,
        /// The JSON error.
        source: serde_json::Error,
    },
}

/// A profile as stored, with its bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredProfile {
    /// The profile (its `nfStatus` is the current status, SUSPENDED after expiry).
    pub profile: NfProfile,
    /// Write counter for compare-and-swap updates.
    pub version: i64,
    /// Heartbeat deadline in Unix milliseconds; past it a REGISTERED profile is suspended.
    pub expires_at_ms: i64,
}

/// Boxed future returned by [`NfStore`] methods (keeps the trait object-safe).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The operations the NRF procedures need from persistent state.
pub trait NfStore: Send + Sync + 'static {
    /// The profile of `id`, if registered.
    fn get(&self, id: Uuid) -> StoreFuture<'_, Option<StoredProfile>>;

    /// Creates or replaces the profile of `profile.nf_instance_id` with heartbeat deadline
    /// `expires_at_ms`; returns `true` when it was created.
    fn upsert(&self, profile: &NfProfile, expires_at_ms: i64) -> StoreFuture<'_, bool>;

    /// Replaces the profile only if the stored version is still `version`; returns
    /// `false` when the row changed (or vanished) meanwhile.
    fn replace_if_version(
        &self,
        profile: &NfProfile,
        version: i64,
        expires_at_ms: i64,
    ) -> StoreFuture<'_, bool>;

    /// Removes the profile of `id`; returns `false` when there was none.
    fn delete(&self, id: Uuid) -> StoreFuture<'_, bool>;

    /// All profiles, optionally of one NF type, ordered by instance id.
    fn list(&self, nf_type: Option<&str>) -> StoreFuture<'_, Vec<NfProfile>>;

    /// The REGISTERED profiles of `nf_type` with their heartbeat deadlines (Unix ms), by
    /// instance id. Discovery drops those past their deadline itself, so it does not
    /// wait for the expiry task.
    fn find_registered(&self, nf_type: &str) -> StoreFuture<'_, Vec<(NfProfile, i64)>>;

    /// Marks SUSPENDED every REGISTERED profile whose heartbeat deadline is before
    /// `now_ms`; returns the profiles it suspended.
    fn suspend_expired(&self, now_ms: i64) -> StoreFuture<'_, Vec<NfProfile>>;

    /// Number of profiles per (NF type, status).
    fn counts(&self) -> StoreFuture<'_, Vec<(String, String, i64)>>;
}

/// [`NfStore`] over the shared sqlx pool (`Any` driver: SQLite or PostgreSQL).
#[derive(Debug, Clone)]
pub struct SqlNfStore {
    db: Db,
}

fn decode(id: &str, body: &str) -> Result<NfProfile, StoreError> {
    serde_json::from_str(body).map_err(|source| StoreError::Corrupt {
        id: id.to_owned(),
        source,
    })
}

fn encode(profile: &NfProfile) -> String {
    // Serialising our own types cannot fail (string keys, no non-finite floats).
    serde_json::to_string(profile).expect("NfProfile serialises")
}

impl SqlNfStore {
    /// Runs the NRF migrations on `db` and returns the store.
    pub async fn open(db: Db) -> Result<Self, StoreError> {
        db.migrate("nrf", MIGRATIONS).await?;
        Ok(Self { db })
    }

    /// The underlying database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    async fn get_impl(&self, id: Uuid) -> Result<Option<StoredProfile>, StoreError> {
        let key = id.to_string();
        let row = sqlx::query(
            "SELECT body, version, expires_at_ms FROM nrf_profiles WHERE nf_instance_id = $1",
        )
        .bind(&key)
        .fetch_optional(self.db.pool())
        .await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some(StoredProfile {
                profile: decode(&key, &r.try_get::<String, _>(0)?)?,
                version: r.try_get(1)?,
                expires_at_ms: r.try_get(2)?,
            })),
        }
    }

    async fn upsert_impl(
        &self,
        profile: &NfProfile,
        expires_at_ms: i64,
    ) -> Result<bool, StoreError> {
        let key = profile.nf_instance_id.to_string();
        // One statement, no read first: a SQLite transaction that reads and then writes
        // cannot wait for another writer (SQLITE_BUSY at once, not after the busy timeout),
        // so concurrent registrations failed with 500. The new row has version 1.
        let row = sqlx::query(
            "INSERT INTO nrf_profiles (nf_instance_id, nf_type, nf_status, heart_beat_timer, expires_at_ms, version, body)
             VALUES ($1, $2, $3, $4, $5, 1, $6)
             ON CONFLICT (nf_instance_id) DO UPDATE SET
                nf_type = excluded.nf_type, nf_status = excluded.nf_status,
                heart_beat_timer = excluded.heart_beat_timer, expires_at_ms = excluded.expires_at_ms,
                version = nrf_profiles.version + 1, body = excluded.body
             RETURNING version",
        )
        .bind(&key)
        .bind(profile.nf_type.as_str())
        .bind(profile.nf_status.as_str())
        .bind(i64::from(profile.heart_beat_timer.unwrap_or(0)))
        .bind(expires_at_ms)
        .bind(encode(profile))
        .fetch_one(self.db.pool())
        .await?;
        let version: i64 = row.try_get(0)?;
        Ok(version == 1)
    }

    async fn replace_impl(
        &self,
        profile: &NfProfile,
        version: i64,
        expires_at_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE nrf_profiles SET nf_type = $1, nf_status = $2, heart_beat_timer = $3, expires_at_ms = $4,
                version = version + 1, body = $5
             WHERE nf_instance_id = $6 AND version = $7",
        )
        .bind(profile.nf_type.as_str())
        .bind(profile.nf_status.as_str())
        .bind(i64::from(profile.heart_beat_timer.unwrap_or(0)))
        .bind(expires_at_ms)
        .bind(encode(profile))
        .bind(profile.nf_instance_id.to_string())
        .bind(version)
        .execute(self.db.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_impl(&self, id: Uuid) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM nrf_profiles WHERE nf_instance_id = $1")
            .bind(id.to_string())
            .execute(self.db.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    fn rows(rows: Vec<sqlx::any::AnyRow>) -> Result<Vec<NfProfile>, StoreError> {
        rows.iter()
            .map(|r| {
                let id: String = r.try_get(0)?;
                decode(&id, &r.try_get::<String, _>(1)?)
            })
            .collect()
    }

    async fn list_impl(&self, nf_type: Option<&str>) -> Result<Vec<NfProfile>, StoreError> {
        let rows = match nf_type {
            Some(t) => {
                sqlx::query("SELECT nf_instance_id, body FROM nrf_profiles WHERE nf_type = $1 ORDER BY nf_instance_id")
                    .bind(t.to_owned())
                    .fetch_all(self.db.pool())
                    .await?
            }
            None => {
                sqlx::query("SELECT nf_instance_id, body FROM nrf_profiles ORDER BY nf_instance_id")
                    .fetch_all(self.db.pool())
                    .await?
            }
        };
        Self::rows(rows)
    }

    async fn find_impl(&self, nf_type: &str) -> Result<Vec<(NfProfile, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT nf_instance_id, body, expires_at_ms FROM nrf_profiles
             WHERE nf_type = $1 AND nf_status = $2 ORDER BY nf_instance_id",
        )
        .bind(nf_type.to_owned())
        .bind(NfStatus::Registered.as_str())
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get(0)?;
                Ok((decode(&id, &r.try_get::<String, _>(1)?)?, r.try_get(2)?))
            })
            .collect()
    }

    async fn suspend_expired_impl(&self, now_ms: i64) -> Result<Vec<NfProfile>, StoreError> {
        let rows = sqlx::query(
            "SELECT nf_instance_id, body, version FROM nrf_profiles
             WHERE nf_status = $1 AND expires_at_ms < $2 ORDER BY nf_instance_id",
        )
        .bind(NfStatus::Registered.as_str())
        .bind(now_ms)
        .fetch_all(self.db.pool())
        .await?;
        let mut suspended = Vec::new();
        for r in rows {
            let id: String = r.try_get(0)?;
            let mut profile = decode(&id, &r.try_get::<String, _>(1)?)?;
            let version: i64 = r.try_get(2)?;
            profile.nf_status = NfStatus::Suspended;
            // Compare-and-swap: a heartbeat that arrived meanwhile wins.
            let done = sqlx::query(
                "UPDATE nrf_profiles SET nf_status = $1, body = $2, version = version + 1
                 WHERE nf_instance_id = $3 AND version = $4",
            )
            .bind(NfStatus::Suspended.as_str())
            .bind(encode(&profile))
            .bind(&id)
            .bind(version)
            .execute(self.db.pool())
            .await?;
            if done.rows_affected() == 1 {
                suspended.push(profile);
            }
        }
        Ok(suspended)
    }

    async fn counts_impl(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT nf_type, nf_status, COUNT(*) FROM nrf_profiles GROUP BY nf_type, nf_status ORDER BY nf_type, nf_status",
        )
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }
}

impl NfStore for SqlNfStore {
    fn get(&self, id: Uuid) -> StoreFuture<'_, Option<StoredProfile>> {
        Box::pin(self.get_impl(id))
    }

    fn upsert(&self, profile: &NfProfile, expires_at_ms: i64) -> StoreFuture<'_, bool> {
        let profile = profile.clone();
        Box::pin(async move { self.upsert_impl(&profile, expires_at_ms).await })
    }

    fn replace_if_version(
        &self,
        profile: &NfProfile,
        version: i64,
        expires_at_ms: i64,
    ) -> StoreFuture<'_, bool> {
        let profile = profile.clone();
        Box::pin(async move { self.replace_impl(&profile, version, expires_at_ms).await })
    }

    fn delete(&self, id: Uuid) -> StoreFuture<'_, bool> {
        Box::pin(self.delete_impl(id))
    }

    fn list(&self, nf_type: Option<&str>) -> StoreFuture<'_, Vec<NfProfile>> {
        let nf_type = nf_type.map(str::to_owned);
        Box::pin(async move { self.list_impl(nf_type.as_deref()).await })
    }

    fn find_registered(&self, nf_type: &str) -> StoreFuture<'_, Vec<(NfProfile, i64)>> {
        let nf_type = nf_type.to_owned();
        Box::pin(async move { self.find_impl(&nf_type).await })
    }

    fn suspend_expired(&self, now_ms: i64) -> StoreFuture<'_, Vec<NfProfile>> {
        Box::pin(self.suspend_expired_impl(now_ms))
    }

    fn counts(&self) -> StoreFuture<'_, Vec<(String, String, i64)>> {
        Box::pin(self.counts_impl())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netgpt_sbi::models::nnrf::NfType;

    fn profile(t: NfType) -> NfProfile {
        let mut p = NfProfile::new(Uuid::new_v4(), t);
        p.heart_beat_timer = Some(10);
        p.fqdn = Some("nf.example.org".into());
        p
    }

    async fn each_backend(check: impl AsyncFn(SqlNfStore)) {
        let dir = tempfile::tempdir().unwrap();
        for url in netgpt_sbi::db::test_database_urls(dir.path())
            .await
            .unwrap()
        {
            let db = netgpt_sbi::db::connect(&url).await.unwrap();
            check(SqlNfStore::open(db).await.unwrap()).await;
        }
    }

    #[tokio::test]
    async fn upsert_reports_creation_then_replacement_and_bumps_version() {
        each_backend(async |store: SqlNfStore| {
            let mut p = profile(NfType::AMF);
            assert!(store.upsert(&p, 1000).await.unwrap());
            let v1 = store.get(p.nf_instance_id).await.unwrap().unwrap();
            assert_eq!(v1.profile, p);
            p.locality = Some("core".into());
            assert!(!store.upsert(&p, 2000).await.unwrap());
            let v2 = store.get(p.nf_instance_id).await.unwrap().unwrap();
            assert_eq!(v2.profile.locality.as_deref(), Some("core"));
            assert_eq!(v2.expires_at_ms, 2000);
            assert!(v2.version > v1.version);
        })
        .await;
    }

    #[tokio::test]
    async fn replace_is_refused_when_the_version_moved() {
        each_backend(async |store: SqlNfStore| {
            let mut p = profile(NfType::SMF);
            store.upsert(&p, 1000).await.unwrap();
            let v = store.get(p.nf_instance_id).await.unwrap().unwrap().version;
            p.load = Some(10);
            assert!(store.replace_if_version(&p, v, 1000).await.unwrap());
            p.load = Some(20);
            assert!(
                !store.replace_if_version(&p, v, 1000).await.unwrap(),
                "stale version must lose"
            );
            assert_eq!(
                store
                    .get(p.nf_instance_id)
                    .await
                    .unwrap()
                    .unwrap()
                    .profile
                    .load,
                Some(10)
            );
        })
        .await;
    }

    #[tokio::test]
    async fn expired_profiles_are_suspended_and_no_longer_found_as_registered() {
        each_backend(async |store: SqlNfStore| {
            let late = profile(NfType::AMF);
            let fresh = profile(NfType::AMF);
            store.upsert(&late, 1_000).await.unwrap();
            store.upsert(&fresh, 10_000).await.unwrap();
            let suspended = store.suspend_expired(5_000).await.unwrap();
            assert_eq!(
                suspended
                    .iter()
                    .map(|p| p.nf_instance_id)
                    .collect::<Vec<_>>(),
                vec![late.nf_instance_id]
            );
            let found = store.find_registered("AMF").await.unwrap();
            assert_eq!(found, vec![(fresh.clone(), 10_000)]);
            let got = store.get(late.nf_instance_id).await.unwrap().unwrap();
            assert_eq!(got.profile.nf_status, NfStatus::Suspended);
            // Already suspended: not suspended twice.
            assert!(store.suspend_expired(5_000).await.unwrap().is_empty());
            let counts = store.counts().await.unwrap();
            assert!(
                counts.contains(&("AMF".into(), "SUSPENDED".into(), 1)),
                "{counts:?}"
            );
            assert!(
                counts.contains(&("AMF".into(), "REGISTERED".into(), 1)),
                "{counts:?}"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn delete_and_list_by_type() {
        each_backend(async |store: SqlNfStore| {
            let a = profile(NfType::AMF);
            let n = profile(NfType::new("EDGEAI"));
            store.upsert(&a, 0).await.unwrap();
            store.upsert(&n, 0).await.unwrap();
            assert_eq!(
                store.find_registered("EDGEAI").await.unwrap(),
                vec![(n.clone(), 0)]
            );
            assert_eq!(store.list(None).await.unwrap().len(), 2);
            assert_eq!(
                store.list(Some("EDGEAI")).await.unwrap()[0].nf_instance_id,
                n.nf_instance_id
            );
            assert!(store.delete(a.nf_instance_id).await.unwrap());
            assert!(!store.delete(a.nf_instance_id).await.unwrap());
            assert!(store.get(a.nf_instance_id).await.unwrap().is_none());
        })
        .await;
    }

    #[tokio::test]
    async fn profiles_survive_reopening_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("nrf.db").display());
        let p = profile(NfType::AMF);
        {
            let store = SqlNfStore::open(netgpt_sbi::db::connect(&url).await.unwrap())
                .await
                .unwrap();
            store.upsert(&p, 42).await.unwrap();
            store.db().close().await;
        }
        let store = SqlNfStore::open(netgpt_sbi::db::connect(&url).await.unwrap())
            .await
            .unwrap();
        assert_eq!(
            store.get(p.nf_instance_id).await.unwrap().unwrap().profile,
            p
        );
    }
}
