//! Shared helpers for the end-to-end tests:
//!
//! - validation of JSON documents against the 3GPP Release 18 OpenAPI schemas in
//!   `../shared/3gpp` ([`assert_3gpp_schema`], [`validate_3gpp`]), `$ref`s across the
//!   YAML files resolved on demand; skipped, with the reason printed, where the folder
//!   is absent;
//! - starting an NRF in-process on `127.0.0.1:0` with a temporary SQLite database
//!   ([`start_nrf`]) and an HTTP/2 prior-knowledge client ([`h2_client`]).
//!
//! The 3GPP files are OpenAPI 3.0: their schemas are JSON Schema draft 4 plus
//! `nullable`. They are validated as draft 4 (boolean `exclusiveMinimum` and sibling-
//! ignoring `$ref` as OpenAPI 3.0 has them), with `nullable: true` rewritten to allow
//! `null`, and with `format` checked (`uuid`, `date-time`, ...; unknown formats such as
//! `int32` ignored).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::{Draft, Retrieve, Uri, Validator};
use netgpt_nrf::NrfOptions;
use netgpt_sbi::config::TestbedConfig;
use netgpt_sbi::nf::{NfContext, RunningNf};
use serde_json::{Map, Value};

/// Environment variable naming the folder of the 3GPP YAML files.
pub const SPEC_DIR_ENV: &str = "NETGPT_3GPP_DIR";

/// Base URI under which the 3GPP files are addressed inside the validator.
const BASE: &str = "file:///3gpp/";

/// The folder of the 3GPP OpenAPI files: `$NETGPT_3GPP_DIR`, else `../shared/3gpp`
/// beside the workspace. `Err` says why it is unusable (tests then skip validation).
pub fn spec_dir() -> Result<PathBuf, String> {
    let dir = match std::env::var(SPEC_DIR_ENV) {
        Ok(d) if !d.trim().is_empty() => PathBuf::from(d.trim()),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/3gpp"),
    };
    if dir.join("TS29571_CommonData.yaml").is_file() {
        Ok(dir)
    } else {
        Err(format!(
            "3GPP OpenAPI files not found in {} (set {SPEC_DIR_ENV} to the folder holding TS29571_CommonData.yaml)",
            dir.display()
        ))
    }
}

/// YAML (serde_yaml_ng) to JSON, with map keys as strings and OpenAPI 3.0
/// `nullable: true` turned into JSON Schema that accepts `null`.
fn to_json(v: serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64().map_or(Value::Null, Value::from)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(seq) => Value::Array(seq.into_iter().map(to_json).collect()),
        Y::Mapping(m) => {
            let mut obj = Map::new();
            for (k, v) in m {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => serde_yaml_ng::to_string(&other)
                        .unwrap_or_default()
                        .trim()
                        .to_owned(),
                };
                obj.insert(key, to_json(v));
            }
            nullable_to_json_schema(obj)
        }
        Y::Tagged(t) => to_json(t.value),
    }
}

fn nullable_to_json_schema(mut obj: Map<String, Value>) -> Value {
    if obj.get("nullable") != Some(&Value::Bool(true)) {
        return Value::Object(obj);
    }
    obj.remove("nullable");
    match obj.get("type").cloned() {
        Some(Value::String(t)) => {
            obj.insert(
                "type".into(),
                Value::Array(vec![Value::String(t), Value::String("null".into())]),
            );
            Value::Object(obj)
        }
        // `$ref`/`anyOf`/... with nullable: null or the schema.
        _ => {
            let mut wrapper = Map::new();
            wrapper.insert(
                "anyOf".into(),
                Value::Array(vec![
                    Value::Object(obj),
                    serde_json::json!({ "type": "null" }),
                ]),
            );
            Value::Object(wrapper)
        }
    }
}

type DocCache = Mutex<HashMap<String, Arc<Value>>>;

fn docs() -> &'static DocCache {
    static DOCS: OnceLock<DocCache> = OnceLock::new();
    DOCS.get_or_init(Default::default)
}

/// One 3GPP file as JSON (cached), by file name (`TS29571_CommonData.yaml`).
pub fn load_spec(dir: &Path, file: &str) -> Result<Arc<Value>, String> {
    if let Some(doc) = docs().lock().expect("spec cache").get(file) {
        return Ok(doc.clone());
    }
    if file.contains('/') || file.contains("..") {
        return Err(format!("'{file}' is not a file name of the 3GPP folder"));
    }
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    // Some 3GPP files indent comments with tabs, which YAML forbids: drop comment lines.
    let text: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| [l, "\n"])
        .collect();
    let yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: not YAML: {e}", path.display()))?;
    let doc = Arc::new(to_json(yaml));
    docs()
        .lock()
        .expect("spec cache")
        .insert(file.to_owned(), doc.clone());
    Ok(doc)
}

/// Serves `file:///3gpp/<file>` from the 3GPP folder.
struct SpecRetriever {
    dir: PathBuf,
}

impl Retrieve for SpecRetriever {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let path = uri.path().as_str();
        let file = path.rsplit('/').next().unwrap_or(path);
        load_spec(&self.dir, file)
            .map(|d| (*d).clone())
            .map_err(Into::into)
    }
}

/// `8-4-4-4-12` hexadecimal digits (RFC 4122 textual form).
fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// Names of the files `doc` refers to (`TS29571_CommonData.yaml#/...` -> `TS29571_CommonData.yaml`).
fn referenced_files(doc: &Value, out: &mut std::collections::BTreeSet<String>) {
    match doc {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        let file = r.split('#').next().unwrap_or("");
                        if !file.is_empty() {
                            out.insert(file.rsplit('/').next().unwrap_or(file).to_owned());
                        }
                    }
                    _ => referenced_files(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| referenced_files(v, out)),
        _ => {}
    }
}

/// `file` and every file it refers to, directly or not, loaded.
fn load_closure(dir: &Path, file: &str) -> Result<Vec<(String, Arc<Value>)>, String> {
    let mut todo = vec![file.to_owned()];
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    while let Some(f) = todo.pop() {
        if !seen.insert(f.clone()) {
            continue;
        }
        // The folder is a curated subset: a file only referenced by parts of a document
        // that the schema at hand never reaches may be absent.
        if f != file && !dir.join(&f).is_file() {
            continue;
        }
        let doc = load_spec(dir, &f)?;
        let mut refs = std::collections::BTreeSet::new();
        referenced_files(&doc, &mut refs);
        todo.extend(refs.into_iter().filter(|r| !seen.contains(r)));
        out.push((f, doc));
    }
    Ok(out)
}

type ValidatorCache = Mutex<HashMap<(String, String), Arc<Validator>>>;

fn validators() -> &'static ValidatorCache {
    static VALIDATORS: OnceLock<ValidatorCache> = OnceLock::new();
    VALIDATORS.get_or_init(Default::default)
}

/// The validator of `components.schemas.<schema>` in `file` (cached).
pub fn validator(dir: &Path, file: &str, schema: &str) -> Result<Arc<Validator>, String> {
    let key = (file.to_owned(), schema.to_owned());
    if let Some(v) = validators().lock().expect("validator cache").get(&key) {
        return Ok(v.clone());
    }
    let doc = load_spec(dir, file)?;
    if doc
        .pointer(&format!("/components/schemas/{schema}"))
        .is_none()
    {
        return Err(format!("{file} has no schema '{schema}'"));
    }
    let root = serde_json::json!({ "$ref": format!("{BASE}{file}#/components/schemas/{schema}") });
    // The registry must hold every file up front: it does not fetch lazily once built.
    let resources = load_closure(dir, file)?.into_iter().map(|(f, d)| {
        (
            format!("{BASE}{f}"),
            Draft::Draft4.create_resource((*d).clone()),
        )
    });
    let v = jsonschema::options()
        .with_draft(Draft::Draft4)
        .with_resources(resources)
        .with_retriever(SpecRetriever {
            dir: dir.to_owned(),
        })
        .should_validate_formats(true)
        .should_ignore_unknown_formats(true)
        // Draft 4 has no `uuid` format; OpenAPI 3.0 documents use it (NfInstanceId).
        .with_format("uuid", is_uuid)
        .build(&root)
        .map_err(|e| format!("cannot compile {file}#{schema}: {e}"))?;
    let v = Arc::new(v);
    validators()
        .lock()
        .expect("validator cache")
        .insert(key, v.clone());
    Ok(v)
}

/// Validates `value` against `components.schemas.<schema>` of the 3GPP file `file`.
///
/// `Ok(true)`: valid. `Ok(false)`: the 3GPP folder is absent (the reason is printed).
/// `Err`: every violation, one per line, with its JSON path.
pub fn validate_3gpp(file: &str, schema: &str, value: &Value) -> Result<bool, String> {
    let dir = match spec_dir() {
        Ok(d) => d,
        Err(reason) => {
            eprintln!("skipping 3GPP schema validation of {file}#{schema}: {reason}");
            return Ok(false);
        }
    };
    let v = validator(&dir, file, schema)?;
    let errors: Vec<String> = v
        .iter_errors(value)
        .map(|e| format!("at '{}': {e}", e.instance_path.as_str()))
        .collect();
    if errors.is_empty() {
        Ok(true)
    } else {
        Err(errors.join("\n"))
    }
}

/// Panics unless `value` validates against `file#/components/schemas/<schema>`; returns
/// without checking (printing why) where the 3GPP folder is absent.
#[track_caller]
pub fn assert_3gpp_schema(file: &str, schema: &str, value: &Value) {
    if let Err(e) = validate_3gpp(file, schema, value) {
        panic!(
            "document does not validate against {file}#/components/schemas/{schema}:\n{e}\ndocument: {}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    }
}

/// A reqwest client speaking HTTP/2 with prior knowledge (h2c), as SBI consumers do.
pub fn h2_client() -> reqwest::Client {
    h2_client_with_timeout(std::time::Duration::from_secs(20))
}

/// [`h2_client`] with another per-request timeout (e.g. for calls that run a model on a
/// loaded machine: the tests assert outcomes, not speed).
pub fn h2_client_with_timeout(timeout: std::time::Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(timeout)
        .build()
        .expect("h2c client")
}

/// An h2c test client that attaches to each request an OAuth2 access token for the
/// service its URL names (`/namf-comm/...` -> a token for the AMF's `namf-comm`), fetched
/// from the configuration's NRF as consumer `name` and cached; no token when
/// `[oauth2] enabled` is false or the path is no service (`/metrics`).
#[derive(Clone)]
pub struct TokenClient {
    http: reqwest::Client,
    cfg: Arc<TestbedConfig>,
    name: String,
    tokens: Arc<tokio::sync::Mutex<std::collections::HashMap<String, String>>>,
}

impl TokenClient {
    /// A client for `cfg` acting as `name`, with a per-request `timeout`.
    pub fn new(cfg: &TestbedConfig, name: &str, timeout: std::time::Duration) -> Self {
        Self {
            http: h2_client_with_timeout(timeout),
            cfg: Arc::new(cfg.clone()),
            name: name.to_owned(),
            tokens: Default::default(),
        }
    }

    /// A request to `url` carrying the token for its service.
    pub async fn request(
        &self,
        method: reqwest::Method,
        url: impl Into<String>,
    ) -> reqwest::RequestBuilder {
        let url = url.into();
        let service = netgpt_sbi::client::service_of_url(&url);
        let rb = self.http.request(method, &url);
        let Some(nf_type) = netgpt_sbi::oauth::nf_type_of_service(&service) else {
            return rb;
        };
        if !self.cfg.oauth2.enabled {
            return rb;
        }
        let mut tokens = self.tokens.lock().await;
        if !tokens.contains_key(&service) {
            let t = netgpt_sbi::oauth::request_token(&self.cfg, &self.name, &nf_type, &service)
                .await
                .unwrap_or_else(|e| panic!("access token for {service}: {e}"));
            tokens.insert(service.clone(), t);
        }
        rb.bearer_auth(&tokens[&service])
    }

    /// `GET url` with its token.
    pub async fn get(&self, url: impl Into<String>) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::GET, url).await
    }

    /// `POST url` with its token.
    pub async fn post(&self, url: impl Into<String>) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::POST, url).await
    }

    /// `PUT url` with its token.
    pub async fn put(&self, url: impl Into<String>) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::PUT, url).await
    }

    /// `DELETE url` with its token.
    pub async fn delete(&self, url: impl Into<String>) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::DELETE, url).await
    }
}

/// The default testbed configuration with the NRF at `nrf_uri`.
pub fn config_with_nrf(nrf_uri: &str) -> TestbedConfig {
    let mut cfg = TestbedConfig::load_default().expect("default testbed config");
    cfg.nrf.uri = nrf_uri.to_owned();
    cfg
}

/// An NRF running in-process for a test.
pub struct TestNrf {
    /// The running NF (stop it with [`TestNrf::stop`]).
    pub running: RunningNf,
    /// Its base URI, `http://127.0.0.1:<port>`.
    pub base: String,
    /// Its database URL (a SQLite file in [`TestNrf::dir`], unless given).
    pub db_url: String,
    /// The temporary folder holding the SQLite file; kept alive with the NRF.
    pub dir: Arc<tempfile::TempDir>,
}

impl TestNrf {
    /// Stops it gracefully; the database stays (start another on [`TestNrf::db_url`]).
    pub async fn stop(self) -> (String, Arc<tempfile::TempDir>) {
        self.running.stop().await;
        (self.db_url, self.dir)
    }
}

/// Options for tests: heartbeat expiry checked every 100 ms, validity period 1 s.
pub fn fast_nrf_options() -> NrfOptions {
    NrfOptions {
        expiry_check_interval: std::time::Duration::from_millis(100),
        validity_period: 1,
        ..NrfOptions::default()
    }
}

/// Starts an NRF on `127.0.0.1:0` with a fresh SQLite file in a temporary folder.
pub async fn start_nrf(options: NrfOptions) -> TestNrf {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let url = format!("sqlite://{}", dir.path().join("nrf.db").display());
    start_nrf_on(&url, dir, options).await
}

/// The default testbed configuration with the NRF at `nrf_uri` and OAuth2 off: for the
/// functional tests of one NF that call it with plain HTTP clients (`security.rs` and
/// `edge.rs` run with OAuth2 on).
pub fn open_config(nrf_uri: &str) -> TestbedConfig {
    let mut cfg = config_with_nrf(nrf_uri);
    cfg.oauth2.enabled = false;
    cfg
}

/// [`start_nrf`] with OAuth2 off ([`open_config`]).
pub async fn start_open_nrf(options: NrfOptions) -> TestNrf {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let url = format!("sqlite://{}", dir.path().join("nrf.db").display());
    start_open_nrf_on(&url, dir, options).await
}

/// [`start_nrf_on`] with OAuth2 off ([`open_config`]).
pub async fn start_open_nrf_on(
    db_url: &str,
    dir: Arc<tempfile::TempDir>,
    options: NrfOptions,
) -> TestNrf {
    start_nrf_with(open_config("http://127.0.0.1:8000"), db_url, dir, options).await
}

/// Starts an NRF on `127.0.0.1:0` over the database `db_url` (e.g. to restart one).
pub async fn start_nrf_on(
    db_url: &str,
    dir: Arc<tempfile::TempDir>,
    options: NrfOptions,
) -> TestNrf {
    start_nrf_with(
        config_with_nrf("http://127.0.0.1:8000"),
        db_url,
        dir,
        options,
    )
    .await
}

async fn start_nrf_with(
    cfg: TestbedConfig,
    db_url: &str,
    dir: Arc<tempfile::TempDir>,
    options: NrfOptions,
) -> TestNrf {
    let cfg = Arc::new(cfg);
    let db = netgpt_sbi::db::connect(db_url)
        .await
        .expect("open NRF database");
    let ctx = NfContext::ephemeral(cfg, "nrf", db)
        .await
        .expect("NRF context");
    let base = ctx.api_root.clone();
    let running = netgpt_nrf::start_with(ctx, options)
        .await
        .expect("start NRF");
    TestNrf {
        running,
        base,
        db_url: db_url.to_owned(),
        dir,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nullable_becomes_a_null_alternative() {
        let y: serde_yaml_ng::Value =
            serde_yaml_ng::from_str("type: string\nnullable: true\n").unwrap();
        assert_eq!(to_json(y), json!({"type": ["string", "null"]}));
        let y: serde_yaml_ng::Value =
            serde_yaml_ng::from_str("$ref: '#/x'\nnullable: true\n").unwrap();
        assert_eq!(
            to_json(y),
            json!({"anyOf": [{"$ref": "#/x"}, {"type": "null"}]})
        );
        let y: serde_yaml_ng::Value = serde_yaml_ng::from_str("200: ok\n").unwrap();
        assert_eq!(to_json(y), json!({"200": "ok"}));
    }

    #[test]
    fn schemas_resolve_across_files_and_reject_bad_documents() {
        if let Err(reason) = spec_dir() {
            eprintln!("skipping: {reason}");
            return;
        }
        // PlmnId lives in TS29571_CommonData.yaml, referenced from the NRF file.
        let good = json!({
            "nfInstanceId": "4947a69a-f61b-4bc1-b9da-47c9c5d14b64", "nfType": "AMF", "nfStatus": "REGISTERED",
            "ipv4Addresses": ["127.0.0.1"], "plmnList": [{"mcc": "001", "mnc": "01"}]
        });
        assert_eq!(
            validate_3gpp("TS29510_Nnrf_NFManagement.yaml", "NFProfile", &good),
            Ok(true)
        );
        let mut bad = good.clone();
        bad["plmnList"][0]["mcc"] = json!("1");
        bad["ipv4Addresses"][0] = json!("300.1.1.1");
        let err = validate_3gpp("TS29510_Nnrf_NFManagement.yaml", "NFProfile", &bad).unwrap_err();
        assert!(
            err.contains("/plmnList/0/mcc") && err.contains("/ipv4Addresses/0"),
            "{err}"
        );
        let mut no_id = good.clone();
        no_id.as_object_mut().unwrap().remove("nfInstanceId");
        assert!(validate_3gpp("TS29510_Nnrf_NFManagement.yaml", "NFProfile", &no_id).is_err());
        let mut not_uuid = good;
        not_uuid["nfInstanceId"] = json!("amf-1");
        assert!(
            validate_3gpp("TS29510_Nnrf_NFManagement.yaml", "NFProfile", &not_uuid).is_err(),
            "format: uuid"
        );
        assert!(validate_3gpp(
            "TS29510_Nnrf_NFDiscovery.yaml",
            "SearchResult",
            &json!({"validityPeriod": 5})
        )
        .is_err());
        assert!(
            validate_3gpp("TS29510_Nnrf_NFDiscovery.yaml", "NoSuchSchema", &json!({})).is_err()
        );
    }
}
