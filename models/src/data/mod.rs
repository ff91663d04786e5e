//! The project's own data sets: location profiles of the edge sites and concise ->
//! comprehensive prompt pairs generated from them (seeded, deterministic, no teacher LLM).

pub mod pairs;
pub mod profiles;

use std::io::{BufRead, Write};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::Error;

/// Writes `items` as JSON lines (the format of every data set file here).
pub fn write_jsonl<T: Serialize>(path: &Path, items: &[T]) -> crate::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for item in items {
        serde_json::to_writer(&mut f, item).map_err(|e| Error::Format(e.to_string()))?;
        f.write_all(b"\n")?;
    }
    f.flush()?;
    Ok(())
}

/// Reads JSON lines written by [`write_jsonl`] (blank lines skipped); errors name the file.
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> crate::Result<Vec<T>> {
    let f = std::io::BufReader::new(
        std::fs::File::open(path).map_err(|e| Error::Format(format!("{}: {e}", path.display())))?,
    );
    f.lines()
        .filter(|l| !matches!(l, Ok(s) if s.trim().is_empty()))
        .map(|l| {
            serde_json::from_str(&l?).map_err(|e| Error::Format(format!("{}: {e}", path.display())))
        })
        .collect()
}

/// Regenerates everything under `dir`: `location_profiles.json` (the built-in profiles) and
/// the train / held-out pair files (`n` pairs, 90/10, from `seed`). Returns the split sizes.
pub fn write_all(dir: &Path, n: usize, seed: u64) -> crate::Result<(usize, usize)> {
    let p = profiles::builtin();
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(&p).map_err(|e| crate::Error::Format(e.to_string()))?;
    std::fs::write(dir.join("location_profiles.json"), json + "\n")?;
    pairs::write_datasets(&p, dir, n, seed)
}
