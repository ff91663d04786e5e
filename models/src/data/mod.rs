//! The project's own data sets: location profiles of the edge sites and concise ->
//! comprehensive prompt pairs generated from them (seeded, deterministic, no teacher LLM).

pub mod pairs;
pub mod profiles;
