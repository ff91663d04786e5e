//! Workflow definitions registered with the CmP (persisted through sqlx), the shipped
//! ones (`cmp/workflows/*.yaml`, loaded at start), and the plan each run was started with.
//!
//! A shipped workflow is rewritten at every start (a new build may ship a new version),
//! unless a user registered their own under the same name: the user's version stays.

use std::collections::BTreeMap;
use std::sync::RwLock;

use chrono::{DateTime, TimeZone, Utc};
use netgpt_sbi::db::{Db, Migration};
use netgpt_sbi::{InvalidParam, ProblemDetails};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;

use crate::inventory::InventoryError;
use crate::ops::Catalog;
use crate::planner::Plan;
use crate::wf::spec::{parse_workflow, validate, SpecErrors, WorkflowSpec};

/// The workflows shipped with the CmP: (file name, YAML text).
pub const SHIPPED: &[(&str, &str)] = &[
    ("netgpt.yaml", include_str!("../workflows/netgpt.yaml")),
    (
        "cloud-only.yaml",
        include_str!("../workflows/cloud-only.yaml"),
    ),
    ("offload.yaml", include_str!("../workflows/offload.yaml")),
    (
        "splitting.yaml",
        include_str!("../workflows/splitting.yaml"),
    ),
];

/// Where a workflow definition came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WorkflowSource {
    /// Shipped with the CmP (`cmp/workflows/`).
    Shipped,
    /// Registered over `ncmp-wf`.
    Registered,
}

/// A registered workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowDocument {
    /// Workflow name (its key).
    pub name: String,
    /// Where it came from.
    pub source: WorkflowSource,
    /// The parsed definition.
    pub spec: WorkflowSpec,
    /// When it was (last) registered.
    pub registered_at: DateTime<Utc>,
}

/// Schema under the NF key `cmp-workflows`.
pub const MIGRATIONS: &[Migration] = &[Migration::new(
    1,
    "workflow definitions and run plans",
    "CREATE TABLE cmp_workflows (
        name TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        spec TEXT NOT NULL,
        registered_at_ms BIGINT NOT NULL
    );
    CREATE TABLE cmp_run_plans (
        run_id TEXT PRIMARY KEY,
        plan TEXT NOT NULL
    );",
)];

/// The registered workflows (cached in memory, written through to the database).
#[derive(Debug)]
pub struct WorkflowRegistry {
    db: Db,
    cache: RwLock<BTreeMap<String, WorkflowDocument>>,
}

/// Turns workflow spec errors into a 400 ProblemDetails naming every step and field.
pub fn spec_problem(errors: SpecErrors) -> ProblemDetails {
    let mut p = ProblemDetails::bad_request(
        "MANDATORY_IE_INCORRECT",
        format!("invalid workflow: {errors}"),
    );
    p.invalid_params = errors
        .0
        .into_iter()
        .map(|e| InvalidParam {
            param: if e.field.is_empty() {
                "body".to_owned()
            } else {
                e.field
            },
            reason: Some(match e.step {
                Some(s) => format!("step '{s}': {}", e.reason),
                None => e.reason,
            }),
        })
        .collect();
    p
}

/// Parses and validates a workflow text (YAML or JSON) against `catalog`.
pub fn parse_and_validate(text: &str, catalog: &Catalog) -> Result<WorkflowSpec, ProblemDetails> {
    let spec = parse_workflow(text).map_err(spec_problem)?;
    validate(&spec, catalog).map_err(spec_problem)?;
    // The name is a path segment of the API (`/workflows/{name}`).
    let ok = !spec.name.is_empty()
        && spec.name.len() <= 64
        && spec
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(ProblemDetails::invalid_param(
            "name",
            format!(
                "'{}' must be 1 to 64 letters, digits, '-', '_' or '.'",
                spec.name
            ),
        ));
    }
    Ok(spec)
}

fn source_str(s: WorkflowSource) -> &'static str {
    match s {
        WorkflowSource::Shipped => "shipped",
        WorkflowSource::Registered => "registered",
    }
}

impl WorkflowRegistry {
    /// Migrates `db`, loads the stored workflows and (re)writes the shipped ones.
    pub async fn open(db: Db, catalog: &Catalog) -> Result<Self, InventoryError> {
        db.migrate("cmp-workflows", MIGRATIONS).await?;
        let rows = sqlx::query("SELECT name, source, spec, registered_at_ms FROM cmp_workflows")
            .fetch_all(db.pool())
            .await?;
        let mut cache = BTreeMap::new();
        for row in rows {
            let name: String = row.try_get("name")?;
            let source: String = row.try_get("source")?;
            let spec: String = row.try_get("spec")?;
            let at: i64 = row.try_get("registered_at_ms")?;
            let spec: WorkflowSpec = serde_json::from_str(&spec)
                .map_err(|e| InventoryError::Corrupt(name.clone(), e.to_string()))?;
            let doc = WorkflowDocument {
                name: name.clone(),
                source: if source == "shipped" {
                    WorkflowSource::Shipped
                } else {
                    WorkflowSource::Registered
                },
                spec,
                registered_at: Utc.timestamp_millis_opt(at).single().unwrap_or_default(),
            };
            cache.insert(name, doc);
        }
        let reg = Self {
            db,
            cache: RwLock::new(cache),
        };
        for (file, text) in SHIPPED {
            // A shipped file that does not validate is a build defect: the tests catch it.
            let spec = parse_and_validate(text, catalog)
                .map_err(|p| InventoryError::Corrupt(format!("workflows/{file}"), p.to_string()))?;
            let user_owned = reg
                .get(&spec.name)
                .is_some_and(|d| d.source == WorkflowSource::Registered);
            if !user_owned {
                reg.put(spec, WorkflowSource::Shipped).await?;
            }
        }
        Ok(reg)
    }

    async fn put(
        &self,
        spec: WorkflowSpec,
        source: WorkflowSource,
    ) -> Result<(WorkflowDocument, bool), InventoryError> {
        let doc = WorkflowDocument {
            name: spec.name.clone(),
            source,
            registered_at: Utc
                .timestamp_millis_opt(Utc::now().timestamp_millis())
                .single()
                .unwrap_or_default(),
            spec,
        };
        sqlx::query(
            "INSERT INTO cmp_workflows (name, source, spec, registered_at_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET source = excluded.source, spec = excluded.spec,
             registered_at_ms = excluded.registered_at_ms",
        )
        .bind(doc.name.clone())
        .bind(source_str(source))
        .bind(serde_json::to_string(&doc.spec).expect("spec serialises"))
        .bind(doc.registered_at.timestamp_millis())
        .execute(self.db.pool())
        .await?;
        let created = self
            .cache
            .write()
            .expect("workflow lock")
            .insert(doc.name.clone(), doc.clone())
            .is_none();
        Ok((doc, created))
    }

    /// Registers (or replaces) a validated workflow; `true` when the name is new.
    pub async fn register(
        &self,
        spec: WorkflowSpec,
    ) -> Result<(WorkflowDocument, bool), InventoryError> {
        self.put(spec, WorkflowSource::Registered).await
    }

    /// The workflow `name`.
    pub fn get(&self, name: &str) -> Option<WorkflowDocument> {
        self.cache.read().expect("workflow lock").get(name).cloned()
    }

    /// Every workflow, by name.
    pub fn list(&self) -> Vec<WorkflowDocument> {
        self.cache
            .read()
            .expect("workflow lock")
            .values()
            .cloned()
            .collect()
    }

    /// Records the plan run `run_id` was started with.
    pub async fn put_plan(&self, run_id: &str, plan: &Plan) -> Result<(), InventoryError> {
        sqlx::query("INSERT INTO cmp_run_plans (run_id, plan) VALUES ($1, $2)")
            .bind(run_id.to_owned())
            .bind(serde_json::to_string(plan).expect("plan serialises"))
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// The plan run `run_id` was started with.
    pub async fn plan_of(&self, run_id: &str) -> Result<Option<Plan>, InventoryError> {
        let row = sqlx::query("SELECT plan FROM cmp_run_plans WHERE run_id = $1")
            .bind(run_id.to_owned())
            .fetch_optional(self.db.pool())
            .await?;
        match row {
            None => Ok(None),
            Some(r) => {
                let text: String = r.try_get("plan")?;
                serde_json::from_str(&text)
                    .map(Some)
                    .map_err(|e| InventoryError::Corrupt(run_id.to_owned(), e.to_string()))
            }
        }
    }
}
