//! The durable logical AI workflow engine: workflows declared in YAML or JSON ([`spec`]),
//! executed as DAGs with per-step timeout, retry and conditions ([`engine`]), with every run
//! and step recorded in a [`store`] so that a restarted CmP resumes unfinished runs without
//! repeating a completed step.

pub mod bench;
pub mod engine;
pub mod spec;
pub mod store;

pub use engine::{
    Engine, EngineError, RunRecord, RunStatus, RunSummary, StepCall, StepError, StepExecutor,
    StepPlacement, StepRecord, StepStatus,
};
pub use spec::{
    parse_workflow, validate, Demand, OperationCatalog, RetryPolicy, SpecError, SpecErrors,
    StepSpec, WorkflowSpec,
};
pub use store::{MemoryStore, RunStore, SqlStore, StoreError};

#[cfg(test)]
mod tests;
