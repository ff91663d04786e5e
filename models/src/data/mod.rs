//! The project's own data sets: location profiles of the edge sites and concise ->
//! comprehensive prompt pairs generated from them (seeded, deterministic, no teacher LLM).

pub mod pairs;
pub mod profiles;

use std::path::Path;

/// Regenerates everything under `dir`: `location_profiles.json` (the built-in profiles) and
/// the train / held-out pair files (`n` pairs, 90/10, from `seed`). Returns the split sizes.
pub fn write_all(dir: &Path, n: usize, seed: u64) -> crate::Result<(usize, usize)> {
    let p = profiles::builtin();
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(&p).map_err(|e| crate::Error::Format(e.to_string()))?;
    std::fs::write(dir.join("location_profiles.json"), json + "\n")?;
    pairs::write_datasets(&p, dir, n, seed)
}
