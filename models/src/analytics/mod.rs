//! Edge analytics, the by-products of NetGPT's edge model: content popularity prediction
//! ([`trace`], [`popularity`], with [`rnn`] baselines) and network intent inference
//! ([`intent`]).

pub mod intent;
pub mod popularity;
pub mod rnn;
pub mod trace;
