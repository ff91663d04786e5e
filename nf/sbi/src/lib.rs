//! Shared 3GPP-style SBI plumbing used by every NetGPT network function.
//!
//! - [`problem`]: ProblemDetails (TS 29.571), the one error type.
//! - [`config`]: the testbed configuration with environment overrides.
//! - [`extract`]: JSON/query extractors that reject with ProblemDetails.

pub mod config;
pub mod extract;
pub mod problem;
pub mod server;

pub use extract::{SbiJson, SbiQuery};
pub use problem::{InvalidParam, ProblemDetails, PROBLEM_JSON};
