//! Edge AI function of the NetGPT testbed: one per edge site (base station).
//!
//! Text processing with no HTTP: [`pii`] (desensitisation), [`policy`] (data policy),
//! [`dedup`] (duplicate detection, single flight, response cache).

// ProblemDetails is the one SBI error type by convention; it is returned by value.
#![allow(clippy::result_large_err)]

pub mod dedup;
pub mod pii;
pub mod policy;
