//! The deployment files of `deploy/`, checked offline: no Docker engine and no Kubernetes
//! cluster run here, so nothing is built or started. What is checked instead:
//!
//! - `deploy/Dockerfile`: multi-stage, builds `-p netgpt`, pinned base images, the final
//!   stage runs `netgpt` (a real `docker build` cannot run here), and it ships the edge
//!   model, adapters and location profiles where the containers' `[edgeai]` paths resolve;
//! - `deploy/docker-compose.yml`: Debian's `docker-compose config -q` accepts it
//!   (`NETGPT_DOCKER_COMPOSE`) and a plain `up` starts every NF, and the file itself references
//!   only files of the repository, images built from the Dockerfile or pinned third-party
//!   images, NFs of the shared configuration, with healthchecks, waiting for healthy peers, on
//!   the fixed network;
//! - `deploy/compose/testbed.toml`: the project's own config validation passes and every NF
//!   advertises its compose service name and port;
//! - `deploy/prometheus/prometheus.yml`: a scrape target for every NF;
//! - `deploy/k8s/`: every manifest validates against the Kubernetes JSON schemas
//!   (`kubernetes-validate`, schemas bundled, `NETGPT_K8S_VALIDATE`), plus the structure the
//!   testbed relies on (every NF runs, GPU for the cloud NF, edge NFs pinned to their site,
//!   scrape annotations, PostgreSQL as a StatefulSet, the same configuration as compose).
//!
//! Tests that need a tool print a skip reason and return when its variable is unset;
//! `.ci/deploy-tools.sh` installs the tools and prints the variables.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use netgpt_sbi::config::{TestbedConfig, DEFAULT_TESTBED_TOML};
use serde_yaml_ng::Value;

/// Where the shared configuration is mounted in every NF container.
const CONFIG_IN_CONTAINER: &str = "/etc/netgpt/testbed.toml";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository root")
}

fn deploy() -> PathBuf {
    repo().join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One YAML document with `<<` merge keys applied (the compose file uses anchors).
fn yaml(path: &Path) -> Value {
    let mut v: Value = serde_yaml_ng::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
    v.apply_merge()
        .unwrap_or_else(|e| panic!("{}: merge keys: {e}", path.display()));
    v
}

/// Every document of a multi-document YAML file.
fn yaml_docs(path: &Path) -> Vec<Value> {
    use serde::Deserialize;
    let text = read(path);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| {
            Value::deserialize(d).unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()))
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn s<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, got {v:?}"))
}

fn strings(v: &Value, what: &str) -> Vec<String> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("{what}: expected a list, got {v:?}"))
        .iter()
        .map(|x| s(x, what).to_owned())
        .collect()
}

fn compose() -> Value {
    yaml(&deploy().join("docker-compose.yml"))
}

fn compose_toml() -> String {
    read(&deploy().join("compose/testbed.toml"))
}

fn compose_config() -> TestbedConfig {
    TestbedConfig::from_toml_str(&compose_toml(), [])
        .unwrap_or_else(|e| panic!("deploy/compose/testbed.toml: {e}"))
}

/// Services of the compose file by name.
fn services(c: &Value) -> BTreeMap<String, Value> {
    c["services"]
        .as_mapping()
        .expect("compose: services")
        .iter()
        .map(|(k, v)| (s(k, "service name").to_owned(), v.clone()))
        .collect()
}

/// Whether a compose service runs the NetGPT image (an NF).
fn is_nf_service(svc: &Value) -> bool {
    svc.get("build").is_some() || svc["image"].as_str() == Some("netgpt:latest")
}

/// `netgpt nf run <name>` of a compose service or container: the NF name.
fn nf_run_name(args: &[String], what: &str) -> String {
    match args {
        [nf, run, name] if nf == "nf" && run == "run" => name.clone(),
        other => panic!("{what}: expected [nf, run, <name>], got {other:?}"),
    }
}

/// `image:tag` with a tag that is not `latest` (a digest also pins).
fn is_pinned(image: &str) -> bool {
    if image.contains("@sha256:") {
        return true;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, tag)) => !tag.is_empty() && tag != "latest",
        None => false,
    }
}

/// A stage of deploy/Dockerfile: its name and instructions (continuation lines joined,
/// comments dropped).
struct Stage {
    name: String,
    body: Vec<String>,
}

/// The instructions of deploy/Dockerfile (continuation lines joined, comments dropped), and
/// its stages; every stage must be named and its base image pinned.
fn dockerfile() -> (Vec<String>, Vec<Stage>) {
    let text = read(&deploy().join("Dockerfile"));
    // Join continuation lines, drop comments.
    let mut lines = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') && cur.is_empty() {
            continue;
        }
        if let Some(body) = t.strip_suffix('\\') {
            cur.push_str(body);
            cur.push(' ');
        } else {
            cur.push_str(t);
            if !cur.trim().is_empty() {
                lines.push(cur.trim().to_owned());
            }
            cur.clear();
        }
    }
    let mut stages: Vec<Stage> = Vec::new();
    for l in &lines {
        let word = l
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        if word == "FROM" {
            let parts: Vec<&str> = l.split_whitespace().collect();
            assert!(
                parts.len() == 4 && parts[2].eq_ignore_ascii_case("AS"),
                "Dockerfile: every stage is named (FROM <image> AS <name>): {l}"
            );
            assert!(
                is_pinned(parts[1]),
                "Dockerfile: base image {} is not pinned by tag",
                parts[1]
            );
            stages.push(Stage {
                name: parts[3].to_owned(),
                body: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.body.push(l.clone());
        }
    }
    (lines, stages)
}

#[test]
fn dockerfile_is_multi_stage_and_runs_netgpt() {
    let (lines, stages) = dockerfile();
    assert!(
        stages.len() >= 2,
        "Dockerfile: {} stage(s), want a multi-stage build",
        stages.len()
    );
    let names: BTreeSet<&str> = stages.iter().map(|st| st.name.as_str()).collect();
    // Every COPY --from names an earlier stage.
    for st in &stages {
        for l in &st.body {
            if let Some(rest) = l.split_whitespace().find_map(|w| w.strip_prefix("--from=")) {
                assert!(
                    names.contains(rest),
                    "Dockerfile: COPY --from={rest}: no such stage"
                );
            }
        }
    }
    let builds = lines.iter().any(|l| {
        l.starts_with("RUN") && l.contains("cargo build") && l.contains("--release") && {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.windows(2).any(|p| p == ["-p", "netgpt"])
        }
    });
    assert!(
        builds,
        "Dockerfile: no `RUN cargo build --release -p netgpt`"
    );
    let final_stage = stages.last().unwrap();
    let (last_name, last) = (&final_stage.name, &final_stage.body);
    let instr = |kw: &str| {
        last.iter()
            .rev()
            .find(|l| l.split_whitespace().next() == Some(kw))
            .cloned()
    };
    assert_eq!(
        instr("ENTRYPOINT").as_deref(),
        Some(r#"ENTRYPOINT ["netgpt"]"#),
        "Dockerfile: final stage {last_name} must run netgpt"
    );
    assert_eq!(instr("CMD").as_deref(), Some(r#"CMD ["up"]"#));
    assert!(
        last.iter()
            .any(|l| l.starts_with("COPY --from=") && l.contains("netgpt")),
        "Dockerfile: final stage copies no netgpt binary from the build stage"
    );
    // The compose healthchecks run curl inside the NF containers.
    assert!(
        last.iter()
            .any(|l| l.starts_with("RUN") && l.contains("apt-get install") && l.contains(" curl")),
        "Dockerfile: the runtime stage must install curl (compose healthchecks use it)"
    );
    let ignore = read(&repo().join(".dockerignore"));
    for dir in ["target/", "data/"] {
        assert!(
            ignore.lines().any(|l| l.trim() == dir),
            ".dockerignore: {dir} is not excluded"
        );
    }
}

/// `*` of a `.dockerignore` pattern component: any run of characters within one component.
fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            name.starts_with(head) && (head.len()..=name.len()).any(|i| glob(tail, &name[i..]))
        }
    }
}

/// Whether `.dockerignore` keeps `path` (relative to the build context, `/`-separated) out of
/// the build context, for the pattern forms the file uses: `dir/` or `name` from the root
/// (excluding everything under it), and `**/<glob>` at any depth.
fn docker_ignored(ignore: &str, path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .any(|pattern| {
            assert!(
                !pattern.starts_with('!'),
                ".dockerignore: exception {pattern} is not understood by this check"
            );
            let pattern = pattern.trim_end_matches('/');
            match pattern.strip_prefix("**/") {
                Some(rest) => parts.iter().any(|p| glob(rest, p)),
                None => {
                    let pat: Vec<&str> = pattern.split('/').collect();
                    pat.len() <= parts.len() && pat.iter().zip(&parts).all(|(g, p)| glob(g, p))
                }
            }
        })
}

#[test]
fn dockerignore_patterns_match_as_docker_does() {
    let ignore = "target/\ndata/\n**/*.gguf\n";
    assert!(docker_ignored(ignore, "data/amf.db"));
    assert!(docker_ignored(ignore, "target/release/netgpt"));
    assert!(docker_ignored(ignore, "models/cache/smollm2.gguf"));
    assert!(!docker_ignored(
        ignore,
        "models/data/location_profiles.json"
    ));
    assert!(!docker_ignored(ignore, "models/edge/model.safetensors"));
}

/// The containers resolve `[edgeai]` paths relative to the image's working directory: the
/// final stage must copy the edge model (with the analytics models beside it, its adapters
/// and the location profiles the containers' configuration names) there, from repository
/// files the build context keeps, and what it copies must load.
#[test]
fn dockerfile_ships_the_edge_model_where_edgeai_resolves() {
    let (_, stages) = dockerfile();
    let last = &stages.last().unwrap().body;
    let workdir = last
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("WORKDIR "))
        .expect("Dockerfile: the final stage sets a WORKDIR")
        .trim()
        .trim_end_matches('/')
        .to_owned();
    // COPYs from the build context: (repository path, destination relative to WORKDIR).
    let copies: Vec<(String, String)> = last
        .iter()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from="))
        .map(|l| {
            let w: Vec<&str> = l
                .split_whitespace()
                .skip(1)
                .filter(|w| !w.starts_with("--"))
                .collect();
            assert_eq!(
                w.len(),
                2,
                "Dockerfile: {l}: want one source, one destination"
            );
            let dest = w[1].strip_prefix(&format!("{workdir}/")).unwrap_or(w[1]);
            (
                w[0].trim_end_matches('/').to_owned(),
                dest.trim_end_matches('/').to_owned(),
            )
        })
        .collect();
    let ignore = read(&repo().join(".dockerignore"));
    // The repository file that ends up at `path` (relative to WORKDIR) in the image.
    let source = |path: &Path, key: &str| -> PathBuf {
        assert!(
            path.is_relative(),
            "[edgeai] {key} = {}: containers resolve it against {workdir}; keep it relative",
            path.display()
        );
        let p = path.to_str().unwrap().trim_end_matches('/');
        let (src, dest) = copies
            .iter()
            .find(|(_, d)| p == d || p.starts_with(&format!("{d}/")))
            .unwrap_or_else(|| {
                panic!("[edgeai] {key} = {p}: the Dockerfile copies nothing to {workdir}/{p}")
            });
        let rel = format!("{src}{}", &p[dest.len()..]);
        assert!(
            !docker_ignored(&ignore, &rel),
            "[edgeai] {key}: {rel} is excluded from the build context by .dockerignore"
        );
        repo().join(rel)
    };
    let cfg = compose_config();
    let default = TestbedConfig::from_toml_str(DEFAULT_TESTBED_TOML, []).unwrap();
    let e = &cfg.edgeai;
    let model_dir = source(&e.model, "model");
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(
            model_dir.join(f).is_file(),
            "[edgeai] model: {} has no {f}",
            model_dir.display()
        );
    }
    let model = netgpt_models::edge::EdgeModel::load(&model_dir, &candle_core::Device::Cpu)
        .unwrap_or_else(|e| panic!("the shipped edge model does not load: {e}"));
    for name in default.edgeai.adapters.keys() {
        assert!(
            e.adapters.contains_key(name),
            "[edgeai.adapters] {name} of the embedded default is missing in the containers'"
        );
    }
    let edge_sites: BTreeSet<String> = cfg
        .nf
        .values()
        .filter(|nf| nf.nf_type == "EDGEAI")
        .filter_map(|nf| nf.locality.clone())
        .collect();
    assert!(
        !edge_sites.is_empty(),
        "no EDGEAI NF in the containers' config"
    );
    for (name, dir) in &e.adapters {
        let dir = source(dir, &format!("adapters.{name}"));
        model
            .load_adapter(name, &dir)
            .unwrap_or_else(|err| panic!("[edgeai.adapters] {name}: {err}"));
    }
    assert!(
        e.adapters.keys().any(|a| edge_sites.contains(a)),
        "no edge site of {edge_sites:?} gets its adapter ({:?})",
        e.adapters.keys().collect::<Vec<_>>()
    );
    // The analytics models beside the edge model (`<parent of model>/analytics/...`).
    let parent = e.model.parent().unwrap_or(Path::new(""));
    for dir in [
        netgpt_models::analytics::popularity::ARTEFACT_DIR,
        netgpt_models::analytics::intent::ARTEFACT_DIR,
    ] {
        let shipped = source(&parent.join(dir), &format!("model (beside it: {dir})"));
        assert!(shipped.is_dir(), "{}: no such folder", shipped.display());
    }
    let models_root = model_dir.parent().expect("the model folder's parent");
    netgpt_models::analytics::popularity::PopularityPredictor::load(
        models_root,
        &candle_core::Device::Cpu,
    )
    .unwrap_or_else(|err| panic!("the shipped popularity model does not load: {err}"));
    netgpt_models::analytics::intent::IntentModel::load(models_root, &candle_core::Device::Cpu)
        .unwrap_or_else(|err| panic!("the shipped intent model does not load: {err}"));
    let profiles = match &e.profiles {
        Some(p) => netgpt_models::data::profiles::load(&source(p, "profiles"))
            .unwrap_or_else(|err| panic!("[edgeai] profiles: {err}")),
        None => netgpt_models::data::profiles::builtin(),
    };
    for site in &edge_sites {
        assert!(
            profiles.contains_key(site),
            "no location profile for edge site {site}"
        );
    }
}

/// deploy/prometheus/prometheus.yml scrapes every NF of the containers' configuration at its
/// compose service and port, in a job named after its NF type.
#[test]
fn compose_prometheus_scrapes_every_nf() {
    let prom = yaml(&deploy().join("prometheus/prometheus.yml"));
    let mut targets: BTreeMap<String, String> = BTreeMap::new();
    for job in prom["scrape_configs"]
        .as_sequence()
        .expect("prometheus.yml: scrape_configs")
    {
        let name = s(&job["job_name"], "job_name");
        for sc in job["static_configs"].as_sequence().into_iter().flatten() {
            for t in strings(&sc["targets"], name) {
                let prev = targets.insert(t.clone(), name.to_owned());
                assert!(prev.is_none(), "prometheus.yml: target {t} twice");
            }
        }
    }
    let cfg = compose_config();
    let services = services(&compose());
    for (name, nf) in &cfg.nf {
        let target = format!("{name}:{}", nf.listen.port());
        assert_eq!(
            targets.remove(&target).as_deref(),
            Some(nf.nf_type.to_ascii_lowercase().as_str()),
            "prometheus.yml: NF {name} ({}) is not scraped at {target} in job {}",
            nf.nf_type,
            nf.nf_type.to_ascii_lowercase()
        );
    }
    for t in targets.keys() {
        let host = t.split(':').next().unwrap();
        assert!(
            services.contains_key(host),
            "prometheus.yml: target {t} is no compose service"
        );
    }
}

#[test]
fn compose_file_references_exist_images_pinned_nfs_checked() {
    let c = compose();
    let base = deploy();
    let config = compose_config();
    let services = services(&c);
    let named_volumes: BTreeSet<String> = c["volumes"]
        .as_mapping()
        .map(|m| m.keys().map(|k| s(k, "volume").to_owned()).collect())
        .unwrap_or_default();
    let network = c["networks"]
        .as_mapping()
        .expect("compose: a top-level network")
        .iter()
        .map(|(k, v)| (s(k, "network").to_owned(), v.clone()))
        .collect::<Vec<_>>();
    assert_eq!(network.len(), 1, "compose: one fixed network");
    let (net_name, net) = &network[0];
    let subnet = net["ipam"]["config"][0]["subnet"].as_str();
    assert!(
        subnet.is_some_and(|s| s.contains('/')),
        "compose: network {net_name} has no explicit subnet"
    );

    let mut nf_services = BTreeSet::new();
    for (name, svc) in &services {
        let what = format!("compose service {name}");
        // On the fixed network.
        let nets: Vec<String> = match &svc["networks"] {
            Value::Sequence(_) => strings(&svc["networks"], &what),
            Value::Mapping(m) => m.keys().map(|k| s(k, &what).to_owned()).collect(),
            other => panic!("{what}: not on a network ({other:?})"),
        };
        assert_eq!(nets, std::slice::from_ref(net_name), "{what}: networks");
        // Files it mounts or reads exist.
        if let Some(vols) = svc.get("volumes") {
            for v in strings(vols, &what) {
                let src = v.split(':').next().unwrap();
                if src.starts_with('.') || src.starts_with('/') {
                    let p = base.join(src);
                    assert!(
                        p.exists(),
                        "{what}: bind mount {src} ({}) does not exist",
                        p.display()
                    );
                } else {
                    assert!(
                        named_volumes.contains(src),
                        "{what}: volume {src} is not declared"
                    );
                }
            }
        }
        if let Some(files) = svc.get("env_file") {
            let files = match files {
                Value::String(f) => vec![f.clone()],
                _ => strings(files, &what),
            };
            for f in files {
                assert!(
                    base.join(&f).exists(),
                    "{what}: env_file {f} does not exist"
                );
            }
        }
        if let Some(deps) = svc.get("depends_on") {
            let deps: Vec<String> = match deps {
                Value::Mapping(m) => m.keys().map(|k| s(k, &what).to_owned()).collect(),
                _ => strings(deps, &what),
            };
            for d in deps {
                assert!(
                    services.contains_key(&d),
                    "{what}: depends on unknown service {d}"
                );
            }
        }
        let image = s(&svc["image"], &format!("{what}: image"));
        if !is_nf_service(svc) {
            assert!(
                is_pinned(image),
                "{what}: third-party image {image} is not pinned by tag"
            );
            continue;
        }
        nf_services.insert(name.clone());
        // Built from the one Dockerfile, one image name.
        assert_eq!(image, "netgpt:latest", "{what}: image");
        let build = &svc["build"];
        let ctx = base.join(s(&build["context"], &format!("{what}: build.context")));
        let dockerfile = s(&build["dockerfile"], &format!("{what}: build.dockerfile"));
        assert_eq!(
            ctx.join(dockerfile).canonicalize().ok(),
            Some(base.join("Dockerfile")),
            "{what}: must build deploy/Dockerfile from the repository root"
        );
        assert_eq!(
            ctx.canonicalize().ok(),
            Some(repo()),
            "{what}: build context"
        );
        // Runs an NF of the shared configuration, named like the service.
        let nf_name = nf_run_name(&strings(&svc["command"], &what), &what);
        assert_eq!(
            &nf_name, name,
            "{what}: runs NF {nf_name}; name services after their NF"
        );
        let nf = config.nf.get(&nf_name).unwrap_or_else(|| {
            panic!("{what}: NF {nf_name} is not in deploy/compose/testbed.toml")
        });
        let port = nf.listen.port();
        // Healthcheck on /healthz at the NF's port.
        let test = strings(
            &svc["healthcheck"]["test"],
            &format!("{what}: healthcheck.test"),
        );
        let url = format!("http://127.0.0.1:{port}/healthz");
        assert!(
            test.contains(&url),
            "{what}: healthcheck {test:?} does not GET {url}"
        );
        // The shared configuration is mounted where NETGPT_CONFIG points.
        let env = &svc["environment"];
        assert_eq!(
            env["NETGPT_CONFIG"].as_str(),
            Some(CONFIG_IN_CONTAINER),
            "{what}"
        );
        let mounts = strings(&svc["volumes"], &what);
        assert!(
            mounts
                .iter()
                .any(|m| m.starts_with(&format!("./compose/testbed.toml:{CONFIG_IN_CONTAINER}"))),
            "{what}: deploy/compose/testbed.toml is not mounted at {CONFIG_IN_CONTAINER}"
        );
        // Traces to Jaeger under the NF's name.
        assert_eq!(
            env["OTEL_SERVICE_NAME"].as_str(),
            Some(name.as_str()),
            "{what}"
        );
        let otlp = s(&env["OTEL_EXPORTER_OTLP_ENDPOINT"], &what);
        let otlp_host = otlp
            .trim_start_matches("http://")
            .split(':')
            .next()
            .unwrap();
        assert!(
            services.contains_key(otlp_host),
            "{what}: OTLP endpoint {otlp}: no such service"
        );
        // Every NF type is built: each starts with a plain `up`, no profile keeps it out.
        assert!(
            svc.get("profiles").is_none(),
            "{what}: an NF starts with a plain `up` (no profiles)"
        );
        // It starts once the NRF (and, for an NF that needs them, its peers) is healthy.
        let deps = svc["depends_on"].as_mapping();
        let healthy_dep = |peer: &str| {
            deps.and_then(|m| m.get(peer))
                .and_then(|d| d["condition"].as_str())
                == Some("service_healthy")
        };
        if nf.nf_type != "NRF" {
            assert!(
                healthy_dep("nrf"),
                "{what}: must depend on nrf with condition service_healthy"
            );
        }
        if nf.nf_type == "EDGEAI" {
            // The edge AI function asks the AMF where a UE is for every UE prompt.
            assert!(
                healthy_dep("amf"),
                "{what}: must depend on amf with condition service_healthy"
            );
        }
        for (peer, d) in deps.into_iter().flatten() {
            let peer = s(peer, &what);
            if services.get(peer).is_some_and(is_nf_service) {
                assert_eq!(
                    d["condition"].as_str(),
                    Some("service_healthy"),
                    "{what}: depends on NF {peer} before it is healthy"
                );
            }
        }
    }
    // Every NF of the configuration has its service.
    let configured: BTreeSet<String> = config.nf.keys().cloned().collect();
    assert_eq!(
        nf_services, configured,
        "compose NF services vs [nf.*] of the config"
    );
    for want in ["postgres", "prometheus", "grafana", "jaeger"] {
        assert!(services.contains_key(want), "compose: no {want} service");
    }
}

#[test]
fn compose_config_validates_and_advertises_service_names() {
    let cfg = compose_config();
    let c = compose();
    let services = services(&c);
    for (name, nf) in &cfg.nf {
        assert!(
            nf.listen.ip().is_unspecified(),
            "nf.{name}.listen {}: containers listen on all interfaces",
            nf.listen
        );
        let port = nf.listen.port();
        assert_eq!(
            nf.advertise.as_deref(),
            Some(format!("http://{name}:{port}").as_str()),
            "nf.{name}.advertise must be its compose service and port"
        );
        let svc = services
            .get(name)
            .unwrap_or_else(|| panic!("nf.{name}: no compose service {name}"));
        if let Some(ports) = svc.get("ports") {
            let ports = strings(ports, name);
            assert!(
                ports.iter().any(|p| p.ends_with(&format!(":{port}"))),
                "compose service {name}: publishes {ports:?}, not {port}"
            );
        }
    }
    let nrf = cfg
        .nf
        .iter()
        .find(|(_, nf)| nf.nf_type == "NRF")
        .expect("an NRF");
    assert_eq!(
        Some(cfg.nrf.uri.as_str()),
        nrf.1.advertise.as_deref(),
        "nrf.uri"
    );
    // The shared database is the compose PostgreSQL.
    let url = &cfg.database.url;
    let host = url
        .split('@')
        .nth(1)
        .and_then(|h| h.split([':', '/']).next())
        .unwrap_or_else(|| panic!("database.url {url}: no host"));
    assert!(url.starts_with("postgres://"), "database.url {url}");
    assert!(
        services.contains_key(host),
        "database.url host {host}: no compose service"
    );
    let pg = &services[host]["environment"];
    for (k, want) in [("POSTGRES_USER", "netgpt"), ("POSTGRES_DB", "netgpt")] {
        assert_eq!(pg[k].as_str(), Some(want), "postgres {k}");
    }
    assert!(
        url.ends_with(&format!("@{host}:5432/netgpt")),
        "database.url {url}"
    );
    // Apart from addresses, the testbed is the embedded default's.
    let default = TestbedConfig::from_toml_str(DEFAULT_TESTBED_TOML, []).unwrap();
    assert_eq!(cfg.plmn, default.plmn);
    assert_eq!(cfg.site, default.site);
    assert_eq!(cfg.cell, default.cell);
    assert_eq!(cfg.ue, default.ue);
    assert_eq!(cfg.node, default.node);
    assert_eq!(cfg.link, default.link);
    assert_eq!(cfg.cloudai, default.cloudai);
    // The edge settings too, except the model/adapter/profile paths, which are the image's
    // (dockerfile_ships_the_edge_model_where_edgeai_resolves checks those).
    let mut edgeai = cfg.edgeai.clone();
    edgeai.model = default.edgeai.model.clone();
    edgeai.profiles = default.edgeai.profiles.clone();
    edgeai.adapters = default.edgeai.adapters.clone();
    assert_eq!(edgeai, default.edgeai, "[edgeai] apart from paths");
    for (name, nf) in &default.nf {
        let mine = cfg
            .nf
            .get(name)
            .unwrap_or_else(|| panic!("the default's NF {name} is missing"));
        assert_eq!(mine.nf_type, nf.nf_type, "nf.{name}.type");
        assert_eq!(
            mine.listen.port(),
            nf.listen.port(),
            "nf.{name}.listen port"
        );
    }
    // Edge NFs are located at their site.
    for (name, nf) in &cfg.nf {
        if nf.nf_type == "EDGEAI" {
            assert_eq!(
                nf.locality.as_deref(),
                Some(name.as_str()),
                "nf.{name}.locality"
            );
            assert!(cfg.site(name).is_some(), "nf.{name}: no [[site]] {name}");
        }
    }
}

#[test]
fn docker_compose_config_accepts_the_testbed() {
    let Ok(tool) = std::env::var("NETGPT_DOCKER_COMPOSE") else {
        eprintln!("NETGPT_DOCKER_COMPOSE unset (bash .ci/deploy-tools.sh installs it): skipped");
        return;
    };
    let file = deploy().join("docker-compose.yml");
    let out = Command::new(&tool)
        .arg("-f")
        .arg(&file)
        .args(["config", "-q"])
        .output()
        .expect("run docker-compose");
    assert!(
        out.status.success(),
        "docker-compose config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What a plain `up` starts, as the tool itself resolves it: every NF of the configuration,
    // the edge AI functions included.
    let out = Command::new(&tool)
        .arg("-f")
        .arg(&file)
        .args(["config", "--services"])
        .output()
        .expect("run docker-compose");
    assert!(
        out.status.success(),
        "docker-compose config --services: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let started: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    for name in compose_config().nf.keys() {
        assert!(
            started.contains(name),
            "a plain `up` does not start NF {name}: {started:?}"
        );
    }
    // The same tool refuses a file with an unknown key: the check above can fail.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("docker-compose.yml");
    let good = read(&file);
    let text = good.replacen("    healthcheck:", "    health_check:", 1);
    assert_ne!(text, good, "no healthcheck to misspell");
    std::fs::write(&bad, text).unwrap();
    let out = Command::new(&tool)
        .arg("-f")
        .arg(&bad)
        .args(["config", "-q"])
        .output()
        .expect("run docker-compose");
    assert!(
        !out.status.success(),
        "docker-compose accepted an unknown key"
    );
}

/// The manifests of `deploy/k8s/kustomization.yaml`, in order.
fn k8s_files() -> Vec<PathBuf> {
    let dir = deploy().join("k8s");
    let k = yaml(&dir.join("kustomization.yaml"));
    assert_eq!(k["kind"].as_str(), Some("Kustomization"));
    let files: Vec<PathBuf> = strings(&k["resources"], "kustomization resources")
        .iter()
        .map(|r| dir.join(r))
        .collect();
    for f in &files {
        assert!(
            f.is_file(),
            "kustomization: resource {} does not exist",
            f.display()
        );
    }
    // No manifest left out of the kustomization.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        let yamlish = p.extension().is_some_and(|e| e == "yaml" || e == "yml");
        if yamlish && p.file_name().unwrap() != "kustomization.yaml" {
            assert!(
                files.contains(&p),
                "{} is not in kustomization.yaml",
                p.display()
            );
        }
    }
    files
}

#[test]
fn k8s_manifests_validate_against_kubernetes_schemas() {
    let files = k8s_files();
    let Ok(tool) = std::env::var("NETGPT_K8S_VALIDATE") else {
        eprintln!("NETGPT_K8S_VALIDATE unset (bash .ci/deploy-tools.sh installs it): skipped");
        return;
    };
    let validate = |files: &[PathBuf]| {
        Command::new(&tool)
            .args(["--strict", "--kubernetes-version", "1.30.0", "--quiet"])
            .args(files)
            .output()
            .expect("run kubernetes-validate")
    };
    let out = validate(&files);
    assert!(
        out.status.success(),
        "kubernetes-validate: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A Deployment with a misspelt field fails the same validation.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    let good = read(&deploy().join("k8s/nrf.yaml"));
    let text = good.replacen("containerPort:", "containerPrt:", 1);
    assert_ne!(text, good, "no containerPort to misspell");
    std::fs::write(&bad, text).unwrap();
    assert!(
        !validate(&[bad]).status.success(),
        "kubernetes-validate accepted a bad Deployment"
    );
}

#[test]
fn k8s_manifests_pin_edges_give_cloud_a_gpu_and_share_the_config() {
    let docs: Vec<Value> = k8s_files().iter().flat_map(|f| yaml_docs(f)).collect();
    let find = |kind: &str, name: &str| {
        docs.iter()
            .find(|d| {
                d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name)
            })
            .unwrap_or_else(|| panic!("k8s: no {kind} {name}"))
    };
    // One configuration, the same text as compose's.
    let cm = find("ConfigMap", "netgpt-config");
    assert_eq!(
        cm["data"]["testbed.toml"].as_str(),
        Some(compose_toml().as_str()),
        "k8s ConfigMap testbed.toml differs from deploy/compose/testbed.toml"
    );
    let cfg = compose_config();
    for (name, nf) in &cfg.nf {
        let what = format!("k8s Deployment {name}");
        let port = nf.listen.port();
        let dep = find("Deployment", name);
        let tpl = &dep["spec"]["template"];
        let pod = &tpl["spec"];
        // Prometheus scrape annotations.
        let ann = &tpl["metadata"]["annotations"];
        assert_eq!(ann["prometheus.io/scrape"].as_str(), Some("true"), "{what}");
        assert_eq!(
            ann["prometheus.io/port"].as_str(),
            Some(port.to_string().as_str()),
            "{what}"
        );
        assert_eq!(
            ann["prometheus.io/path"].as_str(),
            Some("/metrics"),
            "{what}"
        );
        // The selector picks this template.
        for (k, v) in dep["spec"]["selector"]["matchLabels"].as_mapping().unwrap() {
            assert_eq!(
                &tpl["metadata"]["labels"][s(k, &what)],
                v,
                "{what}: selector"
            );
        }
        let containers = pod["containers"].as_sequence().unwrap();
        assert_eq!(containers.len(), 1, "{what}: one container");
        let ctr = &containers[0];
        assert!(
            s(&ctr["image"], &what).starts_with("netgpt:"),
            "{what}: image"
        );
        assert_eq!(nf_run_name(&strings(&ctr["args"], &what), &what), *name);
        assert_eq!(
            ctr["ports"][0]["containerPort"].as_u64(),
            Some(port.into()),
            "{what}"
        );
        assert_eq!(
            ctr["readinessProbe"]["httpGet"]["path"].as_str(),
            Some("/healthz"),
            "{what}"
        );
        // NETGPT_CONFIG points into the ConfigMap volume.
        let env = ctr["env"].as_sequence().unwrap();
        let var = |n: &str| env.iter().find(|e| e["name"].as_str() == Some(n));
        let path = var("NETGPT_CONFIG").and_then(|e| e["value"].as_str());
        assert_eq!(path, Some(CONFIG_IN_CONTAINER), "{what}: NETGPT_CONFIG");
        let mount = ctr["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|m| m["mountPath"].as_str() == Some("/etc/netgpt"))
            .unwrap_or_else(|| panic!("{what}: nothing mounted at /etc/netgpt"));
        let vol = pod["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap();
        assert_eq!(
            vol["configMap"]["name"].as_str(),
            Some("netgpt-config"),
            "{what}"
        );
        let db = var("NETGPT__DATABASE__URL").expect("database URL from the Secret");
        let secret = &db["valueFrom"]["secretKeyRef"];
        let sec = find("Secret", s(&secret["name"], &what));
        let url = s(&sec["stringData"][s(&secret["key"], &what)], &what);
        assert!(
            url.starts_with("postgres://") && url.contains("@postgres:5432/"),
            "{what}: {url}"
        );
        // A Service under the advertised name and port.
        let svc = find("Service", name);
        assert_eq!(
            svc["spec"]["ports"][0]["port"].as_u64(),
            Some(port.into()),
            "Service {name}"
        );
        for (k, v) in svc["spec"]["selector"].as_mapping().unwrap() {
            assert_eq!(
                &tpl["metadata"]["labels"][s(k, name)],
                v,
                "Service {name}: selector"
            );
        }
        let limits = &ctr["resources"]["limits"];
        match nf.nf_type.as_str() {
            "CLOUDAI" => {
                assert!(
                    limits["nvidia.com/gpu"].as_u64().unwrap_or(0) >= 1,
                    "{what}: GPU"
                );
                let tolerates = pod["tolerations"].as_sequence().is_some_and(|t| {
                    t.iter()
                        .any(|t| t["key"].as_str() == Some("nvidia.com/gpu"))
                });
                assert!(
                    tolerates,
                    "{what}: no toleration for the nvidia.com/gpu taint"
                );
            }
            "EDGEAI" => {
                assert_eq!(
                    pod["nodeSelector"]["netgpt.io/site"].as_str(),
                    Some(name.as_str()),
                    "{what}: pinned to its site's nodes"
                );
                assert!(
                    limits.get("nvidia.com/gpu").is_none(),
                    "{what}: no GPU at the edge"
                );
            }
            _ => assert!(limits.get("nvidia.com/gpu").is_none(), "{what}: no GPU"),
        }
        // Every NF runs (an absent `replicas` means 1).
        let replicas = match dep["spec"].get("replicas") {
            None => 1,
            Some(r) => r
                .as_u64()
                .unwrap_or_else(|| panic!("{what}: replicas {r:?}")),
        };
        assert!(
            replicas >= 1,
            "{what}: {replicas} replicas, the NF does not run"
        );
    }
    // PostgreSQL for state: a StatefulSet with a persistent volume, behind Service postgres.
    let pg = find("StatefulSet", "postgres");
    assert!(
        pg["spec"]["volumeClaimTemplates"]
            .as_sequence()
            .is_some_and(|v| !v.is_empty()),
        "postgres: no volumeClaimTemplates"
    );
    let pg_svc = find("Service", "postgres");
    assert_eq!(pg_svc["spec"]["ports"][0]["port"].as_u64(), Some(5432));
    let image = s(
        &pg["spec"]["template"]["spec"]["containers"][0]["image"],
        "postgres",
    );
    assert!(is_pinned(image), "postgres image {image} is not pinned");
}
