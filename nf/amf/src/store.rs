//! Persistence of the AMF's state: UE contexts and event subscriptions, behind the
//! [`AmfStore`] trait, with an sqlx implementation ([`SqlStore`]) on the shared
//! [`netgpt_sbi::db`] pool: SQLite (a file, the default) or PostgreSQL (by URL).
//! [`MIGRATIONS`] run at start.

use chrono::{DateTime, TimeZone, Utc};
use futures::future::BoxFuture;
use netgpt_sbi::db::{Db, DbError, Migration};
use sqlx::{AnyPool, Row};

/// A store failure (the procedures answer it as 500 `SYSTEM_FAILURE`).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A stored document no longer parses.
    #[error("stored document for '{key}' is corrupt: {reason}")]
    Corrupt {
        /// The record's key.
        key: String,
        /// Why it does not parse.
        reason: String,
    },
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Open(#[from] DbError),
}

/// One persisted UE context.
#[derive(Debug, Clone, PartialEq)]
pub struct UeRecord {
    /// SUPI (primary key).
    pub supi: String,
    /// Permanent equipment identifier.
    pub pei: Option<String>,
    /// NR Cell Identity of the serving cell (lower-case hex).
    pub nr_cell_id: String,
    /// When the UE registered.
    pub registered_at: DateTime<Utc>,
    /// When the serving cell was last set (registration or handover).
    pub located_at: DateTime<Utc>,
}

/// One persisted event subscription: the `AmfEventSubscription` document as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionRecord {
    /// Subscription id (primary key).
    pub id: String,
    /// The `AmfEventSubscription` JSON document.
    pub document: String,
    /// Reports delivered so far (for `maxReports`).
    pub reports_sent: u32,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Where the AMF keeps UE contexts and subscriptions.
pub trait AmfStore: Send + Sync + 'static {
    /// Every stored UE context.
    fn load_ue_contexts(&self) -> BoxFuture<'_, Result<Vec<UeRecord>, StoreError>>;
    /// Inserts or replaces a UE context.
    fn put_ue_context<'a>(&'a self, ue: &'a UeRecord) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Deletes a UE context; `false` when there was none.
    fn delete_ue_context<'a>(&'a self, supi: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Every stored subscription.
    fn load_subscriptions(&self) -> BoxFuture<'_, Result<Vec<SubscriptionRecord>, StoreError>>;
    /// Inserts or replaces a subscription.
    fn put_subscription<'a>(
        &'a self,
        sub: &'a SubscriptionRecord,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Deletes a subscription; `false` when there was none.
    fn delete_subscription<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
}

/// The AMF's schema, applied by [`netgpt_sbi::db::Db::migrate`] under the NF name `amf`.
/// Tables carry the `amf_` prefix since NFs may share one database.
pub const MIGRATIONS: &[Migration] = &[Migration::new(
    1,
    "UE contexts and event subscriptions",
    "CREATE TABLE amf_ue_contexts (
            supi TEXT PRIMARY KEY,
            pei TEXT NULL,
            nr_cell_id TEXT NOT NULL,
            registered_at_ms BIGINT NOT NULL,
            located_at_ms BIGINT NOT NULL
        );
        CREATE TABLE amf_event_subscriptions (
            id TEXT PRIMARY KEY,
            document TEXT NOT NULL,
            reports_sent BIGINT NOT NULL,
            created_at_ms BIGINT NOT NULL
        );",
)];

/// [`AmfStore`] on the shared sqlx pool (SQLite or PostgreSQL).
#[derive(Clone, Debug)]
pub struct SqlStore {
    db: Db,
}

impl SqlStore {
    /// Applies the AMF's [`MIGRATIONS`] to `db` and uses it.
    pub async fn new(db: Db) -> Result<Self, StoreError> {
        db.migrate("amf", MIGRATIONS).await?;
        Ok(Self { db })
    }

    /// Opens `url` (`sqlite://path`, `sqlite::memory:`, `postgres://...`) and migrates it.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::new(netgpt_sbi::db::connect(url).await?).await
    }

    fn pool(&self) -> &AnyPool {
        self.db.pool()
    }
}

fn ms(t: &DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(key: &str, v: i64) -> Result<DateTime<Utc>, StoreError> {
    Utc.timestamp_millis_opt(v)
        .single()
        .ok_or_else(|| StoreError::Corrupt {
            key: key.to_owned(),
            reason: format!("timestamp {v} out of range"),
        })
}

impl AmfStore for SqlStore {
    fn load_ue_contexts(&self) -> BoxFuture<'_, Result<Vec<UeRecord>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT supi, pei, nr_cell_id, registered_at_ms, located_at_ms FROM amf_ue_contexts ORDER BY supi",
            )
            .fetch_all(self.pool())
            .await?;
            rows.iter()
                .map(|r| {
                    let supi: String = r.try_get("supi")?;
                    Ok(UeRecord {
                        pei: r.try_get("pei")?,
                        nr_cell_id: r.try_get("nr_cell_id")?,
                        registered_at: from_ms(&supi, r.try_get("registered_at_ms")?)?,
                        located_at: from_ms(&supi, r.try_get("located_at_ms")?)?,
                        supi,
                    })
                })
                .collect()
        })
    }

    fn put_ue_context<'a>(&'a self, ue: &'a UeRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO amf_ue_contexts (supi, pei, nr_cell_id, registered_at_ms, located_at_ms)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (supi) DO UPDATE SET pei = excluded.pei, nr_cell_id = excluded.nr_cell_id,
                   registered_at_ms = excluded.registered_at_ms, located_at_ms = excluded.located_at_ms",
            )
            .bind(ue.supi.clone())
            .bind(ue.pei.clone())
            .bind(ue.nr_cell_id.clone())
            .bind(ms(&ue.registered_at))
            .bind(ms(&ue.located_at))
            .execute(self.pool())
            .await?;
            Ok(())
        })
    }

    fn delete_ue_context<'a>(&'a self, supi: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM amf_ue_contexts WHERE supi = $1")
                .bind(supi.to_owned())
                .execute(self.pool())
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn load_subscriptions(&self) -> BoxFuture<'_, Result<Vec<SubscriptionRecord>, StoreError>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT id, document, reports_sent, created_at_ms FROM amf_event_subscriptions ORDER BY created_at_ms, id",
            )
            .fetch_all(self.pool())
            .await?;
            rows.iter()
                .map(|r| {
                    let id: String = r.try_get("id")?;
                    let sent: i64 = r.try_get("reports_sent")?;
                    Ok(SubscriptionRecord {
                        document: r.try_get("document")?,
                        reports_sent: u32::try_from(sent).unwrap_or(u32::MAX),
                        created_at: from_ms(&id, r.try_get("created_at_ms")?)?,
                        id,
                    })
                })
                .collect()
        })
    }

    fn put_subscription<'a>(
        &'a self,
        sub: &'a SubscriptionRecord,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO amf_event_subscriptions (id, document, reports_sent, created_at_ms)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO UPDATE SET document = excluded.document,
                   reports_sent = excluded.reports_sent, created_at_ms = excluded.created_at_ms",
            )
            .bind(sub.id.clone())
            .bind(sub.document.clone())
            .bind(i64::from(sub.reports_sent))
            .bind(ms(&sub.created_at))
            .execute(self.pool())
            .await?;
            Ok(())
        })
    }

    fn delete_subscription<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let done = sqlx::query("DELETE FROM amf_event_subscriptions WHERE id = $1")
                .bind(id.to_owned())
                .execute(self.pool())
                .await?;
            Ok(done.rows_affected() > 0)
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Runs `f` against a fresh SQLite file store, and against PostgreSQL too when
    /// `NETGPT_TEST_POSTGRES_URL` is set.
    pub(crate) async fn each_backend<F, Fut>(f: F)
    where
        F: Fn(SqlStore, String) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let dir = tempfile::tempdir().unwrap();
        let urls = netgpt_sbi::db::test_database_urls(dir.path())
            .await
            .expect("test databases");
        if urls.len() == 1 {
            eprintln!("PostgreSQL leg skipped: NETGPT_TEST_POSTGRES_URL is not set");
        }
        for url in urls {
            f(SqlStore::connect(&url).await.unwrap(), url).await;
        }
    }

    fn t(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(ms).unwrap()
    }

    #[tokio::test]
    async fn ue_contexts_round_trip_and_survive_reconnect() {
        each_backend(|store, url| async move {
            let supi = format!("imsi-00101{:010}", rand::random::<u32>());
            let mut ue = UeRecord {
                supi: supi.clone(),
                pei: Some("imei-490154203237518".into()),
                nr_cell_id: "000001001".into(),
                registered_at: t(1_700_000_000_123),
                located_at: t(1_700_000_000_123),
            };
            store.put_ue_context(&ue).await.unwrap();
            ue.nr_cell_id = "000001002".into();
            ue.located_at = t(1_700_000_060_000);
            store.put_ue_context(&ue).await.unwrap();

            let again = SqlStore::connect(&url).await.unwrap();
            let found: Vec<_> = again
                .load_ue_contexts()
                .await
                .unwrap()
                .into_iter()
                .filter(|u| u.supi == supi)
                .collect();
            assert_eq!(found, vec![ue.clone()]);

            assert!(again.delete_ue_context(&supi).await.unwrap());
            assert!(!again.delete_ue_context(&supi).await.unwrap());
            assert!(!store
                .load_ue_contexts()
                .await
                .unwrap()
                .iter()
                .any(|u| u.supi == supi));
        })
        .await;
    }

    #[tokio::test]
    async fn subscriptions_round_trip_with_report_counts() {
        each_backend(|store, _url| async move {
            let id = uuid::Uuid::new_v4().to_string();
            let mut sub = SubscriptionRecord {
                id: id.clone(),
                document: r#"{"eventList":[{"type":"LOCATION_REPORT"}]}"#.into(),
                reports_sent: 0,
                created_at: t(1_700_000_000_000),
            };
            store.put_subscription(&sub).await.unwrap();
            sub.reports_sent = 2;
            store.put_subscription(&sub).await.unwrap();
            let found: Vec<_> = store
                .load_subscriptions()
                .await
                .unwrap()
                .into_iter()
                .filter(|s| s.id == id)
                .collect();
            assert_eq!(found, vec![sub]);
            assert!(store.delete_subscription(&id).await.unwrap());
            assert!(!store.delete_subscription(&id).await.unwrap());
        })
        .await;
    }

    #[tokio::test]
    async fn unsupported_url_is_refused() {
        assert!(matches!(
            SqlStore::connect("mysql://x").await,
            Err(StoreError::Open(_))
        ));
    }
}
