//! The SBI step executor: runs one workflow step by calling the NF instance that the plan's
//! node designates, found by NRF discovery (NFDiscover of the operation's NF type and
//! service; the instance whose locality is the planned node).
//!
//! Errors: a 4xx answer (bad input, unknown UE) will not get better by retrying and is
//! `Fatal` — except 408 and 429; a 5xx answer, a timeout, an unreachable peer or a
//! missing instance is `Retryable` (the NF may be restarting or re-registering).

use std::sync::Arc;

use axum::http::Method;
use futures::future::BoxFuture;
use futures::FutureExt;
use netgpt_sbi::models::nnrf::NfProfile;
use netgpt_sbi::{ClientError, DiscoveryQuery, NrfClient, SbiClient};
use serde_json::Value;
use tracing::Instrument;

use crate::ops::{Catalog, Locality, Operation};
use crate::wf::{StepCall, StepError, StepExecutor};

/// The NF type the CmP declares as requester in NFDiscover.
pub const REQUESTER_NF_TYPE: &str = "CMP";

/// Executes steps over SBI (see the module doc).
#[derive(Debug, Clone)]
pub struct SbiExecutor {
    catalog: Arc<Catalog>,
    client: SbiClient,
    nrf: NrfClient,
}

impl SbiExecutor {
    /// An executor calling NFs with `client`, found through `nrf`.
    pub fn new(catalog: Arc<Catalog>, client: SbiClient, nrf: NrfClient) -> Self {
        Self {
            catalog,
            client,
            nrf,
        }
    }

    /// One attempt of a step as a span (exported as a trace span when telemetry is on):
    /// run, step, operation, node, device, attempt and, once it ends, its outcome
    /// (`ok`, `retryable`, `fatal`). The SBI call it makes is its child.
    async fn call(&self, call: StepCall) -> Result<Value, StepError> {
        let span = tracing::info_span!(
            "step_execute",
            otel.status_code = tracing::field::Empty,
            run = %call.run_id,
            step = %call.step_id,
            operation = %call.operation,
            node = call.node.as_deref().unwrap_or("-"),
            device = call.device.as_deref().unwrap_or("-"),
            attempt = call.attempt,
            outcome = tracing::field::Empty,
        );
        let result = self.attempt(call).instrument(span.clone()).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(StepError::Retryable(_)) => "retryable",
            Err(StepError::Fatal(_)) => "fatal",
        };
        span.record("outcome", outcome);
        if result.is_err() {
            span.record("otel.status_code", "error");
        }
        result
    }

    async fn attempt(&self, call: StepCall) -> Result<Value, StepError> {
        let op = self
            .catalog
            .get(&call.operation)
            .ok_or_else(|| StepError::Fatal(format!("unknown operation '{}'", call.operation)))?
            .clone();
        if op.locality == Locality::InProcess {
            // `noop` echoes its input: the engine's own cost, measurable without any NF.
            return Ok(call.input);
        }
        let (path, body) = op.request(&call.input).map_err(StepError::Fatal)?;
        // A retry rediscovers: the instance that failed may have been replaced.
        if call.attempt > 1 {
            self.nrf.invalidate();
        }
        let api_root = self.instance(&op, call.node.as_deref()).await?;
        let method = Method::from_bytes(op.method.as_bytes())
            .map_err(|e| StepError::Fatal(format!("operation '{}': {e}", op.name)))?;
        let resp = self
            .client
            .request(method, format!("{api_root}{path}"))
            .service(op.service.clone())
            .operation(op.name.clone())
            .target_nf_type(op.nf_type.clone())
            .deadline(call.timeout)
            // The engine owns retries (with its own policy and attempt records).
            .retries(0)
            .json(&body)
            .send()
            .await
            .map_err(classify)?;
        if resp.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&resp.body).map_err(|e| {
            StepError::Fatal(format!("{} answered a body that is not JSON: {e}", op.name))
        })
    }

    /// The API root of the instance serving `op` for a step placed on `node`.
    async fn instance(&self, op: &Operation, node: Option<&str>) -> Result<String, StepError> {
        let mut query =
            DiscoveryQuery::new(op.nf_type.clone(), REQUESTER_NF_TYPE).service(op.service.clone());
        if let Some(n) = node {
            query = query.locality(n);
        }
        let found = self.nrf.discover(&query).await.map_err(|e| {
            StepError::Retryable(format!("NFDiscover of {} failed: {e}", op.nf_type))
        })?;
        let root_of = |p: &NfProfile| p.service(&op.service).and_then(|s| s.api_root());
        let pick = match (op.locality, node) {
            (Locality::Node | Locality::UeSite, Some(n)) => found
                .nf_instances
                .iter()
                .filter(|p| p.locality.as_deref() == Some(n))
                .find_map(root_of),
            // Outside the inventory, or no plan: the NRF's order (preferred locality first).
            _ => found.nf_instances.iter().find_map(root_of),
        };
        pick.ok_or_else(|| {
            StepError::Retryable(format!(
                "no {} instance offering {} at {}",
                op.nf_type,
                op.service,
                node.unwrap_or("any locality")
            ))
        })
    }
}

/// 4xx (but 408/429) and malformed requests are fatal; the rest may pass on a retry.
fn classify(e: ClientError) -> StepError {
    match &e {
        ClientError::Status { problem, .. } => {
            let s = problem.status;
            if (400..500).contains(&s) && s != 408 && s != 429 {
                StepError::Fatal(e.to_string())
            } else {
                StepError::Retryable(e.to_string())
            }
        }
        ClientError::Request(_) | ClientError::Decode { .. } => StepError::Fatal(e.to_string()),
        _ => StepError::Retryable(e.to_string()),
    }
}

impl StepExecutor for SbiExecutor {
    fn execute(&self, call: StepCall) -> BoxFuture<'static, Result<Value, StepError>> {
        let this = self.clone();
        async move { this.call(call).await }.boxed()
    }
}
