//! Shared 3GPP-style SBI plumbing used by every NetGPT network function.
//!
//! - [`problem`]: ProblemDetails (TS 29.571), the one error type.
//! - [`config`]: the testbed configuration with environment overrides.
//! - [`extract`]: JSON/query/path extractors that reject with ProblemDetails.
//! - [`server`]: [`NfApp`], one NF's services plus `/metrics`, `/openapi.json`, `/docs`;
//!   HTTP/1.1 and h2c on one port.
//! - [`client`]: [`SbiClient`], h2c with deadlines, retries, metrics and a token hook.
//! - [`nrf_client`]: [`NrfClient`], NFRegister/heartbeat/NFDeregister/NFDiscover (cached).
//! - [`nf`]: [`NfContext`] / [`RunningNf`], how an NF is started and stopped in-process.
//! - [`db`]: sqlx pool (SQLite file or PostgreSQL) and per-NF migrations.
//! - [`metrics`]: the process-wide Prometheus recorder.
//! - [`openapi`]: `sbi-specs/<service>.yaml` writer and the drift check.
//! - [`tls`]: optional TLS for the server (ALPN `h2`, HTTP/1.1 fallback).
//! - [`telemetry`]: stderr logs and OpenTelemetry traces over OTLP (`OTEL_*` variables),
//!   W3C `traceparent` on every SBI call.

pub mod client;
pub mod config;
pub mod db;
pub mod extract;
pub mod limits;
pub mod metrics;
pub mod models;
pub mod nf;
pub mod nrf_client;
pub mod oauth;
pub mod openapi;
pub mod problem;
pub mod server;
pub mod telemetry;
pub mod tls;

pub use client::{ClientError, SbiClient};
pub use extract::{SbiJson, SbiPath, SbiQuery};
pub use nf::{NfContext, NfError, RunningNf};
pub use nrf_client::{DiscoveryQuery, NrfClient};
pub use problem::{InvalidParam, ProblemDetails, PROBLEM_JSON};
pub use server::{serve, NfApp, SbiOperation};
