//! The checked-in OpenAPI documents: `sbi-specs/<service>.yaml`, one per SBI service,
//! generated from the code's utoipa annotations, and the test that fails when they drift.
//!
//! Each NF crate has one test (the pattern):
//!
//! ```ignore
//! #[test]
//! fn sbi_specs_match_the_code() {
//!     netgpt_sbi::openapi::assert_specs_match("netgpt-nrf", &crate::api::service_docs());
//! }
//! ```
//!
//! where `service_docs()` returns `(service name, OpenApi)` pairs (e.g.
//! `NfApp::service_docs`). With `UPDATE_SPECS=1` in the environment the test writes the
//! files instead of comparing; a failing test prints that command.

use std::path::{Path, PathBuf};

use utoipa::openapi::OpenApi;

/// Environment variable that makes [`assert_specs_match`] (re)write the documents.
pub const UPDATE_ENV: &str = "UPDATE_SPECS";

/// First line of every generated document.
pub const HEADER: &str = "# Generated from the code's utoipa annotations; do not edit.\n";

/// Errors writing or checking the documents.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A document could not be rendered.
    #[error("{service}: cannot render YAML: {reason}")]
    Render {
        /// Service name.
        service: String,
        /// Why.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// Checked-in files differ from what the code generates.
    #[error("sbi-specs out of date: {files:?} differ from the code; regenerate with `{command}`")]
    Drift {
        /// The files that differ or are missing.
        files: Vec<PathBuf>,
        /// The command that regenerates them.
        command: String,
    },
}

/// The workspace's `sbi-specs/` folder.
pub fn specs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sbi-specs")
}

/// The YAML text of one service's document (with [`HEADER`], ending in a newline).
pub fn render_yaml(service: &str, doc: &OpenApi) -> Result<String, SpecError> {
    let yaml = doc.to_yaml().map_err(|e| SpecError::Render {
        service: service.to_owned(),
        reason: e.to_string(),
    })?;
    let mut text = String::with_capacity(HEADER.len() + yaml.len() + 1);
    text.push_str(HEADER);
    text.push_str(&yaml);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// Writes `<dir>/<service>.yaml` for every document; returns the paths written.
pub fn write_specs(dir: &Path, docs: &[(String, OpenApi)]) -> Result<Vec<PathBuf>, SpecError> {
    std::fs::create_dir_all(dir).map_err(|error| SpecError::Io {
        path: dir.to_owned(),
        error,
    })?;
    let mut written = Vec::new();
    for (service, doc) in docs {
        let path = dir.join(format!("{service}.yaml"));
        let text = render_yaml(service, doc)?;
        std::fs::write(&path, text).map_err(|error| SpecError::Io {
            path: path.clone(),
            error,
        })?;
        written.push(path);
    }
    Ok(written)
}

/// Compares `<dir>/<service>.yaml` with what the code generates; `command` is what the
/// error tells the reader to run.
pub fn check_specs(dir: &Path, docs: &[(String, OpenApi)], command: &str) -> Result<(), SpecError> {
    let mut drifted = Vec::new();
    for (service, doc) in docs {
        let path = dir.join(format!("{service}.yaml"));
        let expected = render_yaml(service, doc)?;
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        if actual.replace("\r\n", "\n") != expected {
            drifted.push(path);
        }
    }
    if drifted.is_empty() {
        Ok(())
    } else {
        Err(SpecError::Drift {
            files: drifted,
            command: command.to_owned(),
        })
    }
}

/// Test helper: with `UPDATE_SPECS=1` writes the documents of `crate_name`'s services into
/// `sbi-specs/`; otherwise panics when a checked-in document differs from the code,
/// printing `UPDATE_SPECS=1 cargo test -p <crate_name>` as the fix.
pub fn assert_specs_match(crate_name: &str, docs: &[(String, OpenApi)]) {
    let dir = specs_dir();
    if std::env::var(UPDATE_ENV).is_ok_and(|v| !v.is_empty() && v != "0") {
        let written = write_specs(&dir, docs).unwrap_or_else(|e| panic!("{e}"));
        eprintln!("wrote {written:?}");
        return;
    }
    let command = format!("{UPDATE_ENV}=1 cargo test -p {crate_name}");
    if let Err(e) = check_specs(&dir, docs, &command) {
        panic!("{e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::openapi::{Info, Paths};

    fn doc(title: &str) -> OpenApi {
        OpenApi::new(Info::new(title, "1.0.0"), Paths::new())
    }

    #[test]
    fn drift_is_detected_and_rewriting_fixes_it() {
        let dir = tempfile::tempdir().unwrap();
        let docs = vec![
            ("nunit-a".to_owned(), doc("A")),
            ("nunit-b".to_owned(), doc("B")),
        ];
        // Missing files are drift.
        let err = check_specs(dir.path(), &docs, "regen-cmd")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("regen-cmd") && err.contains("nunit-a.yaml"),
            "{err}"
        );
        write_specs(dir.path(), &docs).unwrap();
        check_specs(dir.path(), &docs, "regen-cmd").unwrap();
        let text = std::fs::read_to_string(dir.path().join("nunit-b.yaml")).unwrap();
        assert!(
            text.starts_with(HEADER) && text.contains("title: B"),
            "{text}"
        );
        // A changed document drifts again, naming only the changed file.
        let changed = vec![
            ("nunit-a".to_owned(), doc("A")),
            ("nunit-b".to_owned(), doc("B2")),
        ];
        match check_specs(dir.path(), &changed, "regen-cmd").unwrap_err() {
            SpecError::Drift { files, .. } => {
                assert_eq!(files, vec![dir.path().join("nunit-b.yaml")])
            }
            other => panic!("{other}"),
        }
    }
}
