//! The operation catalogue: what a workflow step's `operation` name means on the SBI —
//! which NF type offers it, under which service, with which HTTP call — and where the
//! step may be placed.

use std::collections::BTreeMap;

use axum::http::Method;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::wf::OperationCatalog;

/// Where a step of an operation may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Locality {
    /// On a node hosting an instance of the NF type (node id == the NF's locality); the
    /// call goes to that instance.
    Node,
    /// Like [`Locality::Node`], and a run that knows its UE's serving site (input `site`,
    /// or the AMF's answer for input `supi`) pins the step to that site's node.
    UeSite,
    /// On any node: the NF sits outside the compute inventory (the AMF at `core`); the
    /// call goes to whichever instance the NRF returns (the planned node's first).
    Anywhere,
    /// Executed inside the CmP itself (no SBI call).
    InProcess,
}

/// One operation of the catalogue.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// Operation name used in workflows (`edge.complete`).
    pub name: String,
    /// NF type offering it (`EDGEAI`); empty for in-process operations.
    pub nf_type: String,
    /// SBI service name (`nedgeai-prompt`).
    pub service: String,
    /// HTTP method.
    pub method: String,
    /// Path under the NF's API root; `{x}` is filled from step input `path_params[x]`.
    pub path: String,
    /// Path template parameter -> the step input that fills it (and leaves the body).
    pub path_params: BTreeMap<String, String>,
    /// Body fields sent when the step's inputs do not set them.
    pub default_body: Value,
    /// Whether a retry is safe by default (the workflow may say otherwise per step).
    pub idempotent: bool,
    /// Where a step of it may run.
    pub locality: Locality,
}

/// Every operation this CmP knows.
#[derive(Debug, Clone)]
pub struct Catalog {
    ops: BTreeMap<String, Operation>,
}

fn op(
    name: &str,
    nf_type: &str,
    service: &str,
    method: Method,
    path: &str,
    locality: Locality,
    idempotent: bool,
) -> Operation {
    Operation {
        name: name.into(),
        nf_type: nf_type.into(),
        service: service.into(),
        method: method.as_str().into(),
        path: path.into(),
        path_params: BTreeMap::new(),
        default_body: json!({}),
        idempotent,
        locality,
    }
}

impl Default for Catalog {
    fn default() -> Self {
        Self::netgpt()
    }
}

impl Catalog {
    /// The NetGPT operations: the AMF's location, the edge AI function's prompt
    /// pipeline (and the cloud model run at the edge, whole or split), the cloud AI
    /// function's generation, and `noop`.
    pub fn netgpt() -> Self {
        let mut amf_loc = op(
            "amf.location",
            "AMF",
            "namf-loc",
            Method::POST,
            "/namf-loc/v1/{ueContextId}/provide-loc-info",
            Locality::Anywhere,
            true,
        );
        amf_loc
            .path_params
            .insert("ueContextId".into(), "supi".into());
        amf_loc.default_body =
            json!({ "req5gsLoc": true, "reqTimeZone": true, "reqRatType": true });
        let mut generate = op(
            "cloud.generate",
            "CLOUDAI",
            "ncloudai-gen",
            Method::POST,
            "/ncloudai-gen/v1/generate",
            Locality::Node,
            // Generation has no side effect worth protecting: a retry only costs time.
            true,
        );
        generate.default_body = json!({ "maxTokens": 64 });
        let mut ops = vec![amf_loc, generate];
        for (name, path) in [
            ("edge.desensitize", "desensitize"),
            ("edge.dedup", "dedup"),
            ("edge.complete", "complete"),
            ("edge.policy", "policy"),
            ("edge.answer", "answer"),
            // The frameworks NetGPT is compared with: the cloud model at the edge (LLM
            // offload), and its first layers at the edge with the rest in the cloud (LLM
            // splitting).
            ("edge.generate", "generate"),
            ("edge.split-generate", "split-generate"),
        ] {
            ops.push(op(
                name,
                "EDGEAI",
                "nedgeai-prompt",
                Method::POST,
                &format!("/nedgeai-prompt/v1/{path}"),
                Locality::UeSite,
                // Dedup records what it has seen: a blind retry could count a prompt twice.
                name != "edge.dedup",
            ));
        }
        ops.push(op(
            "noop",
            "",
            "",
            Method::POST,
            "",
            Locality::InProcess,
            true,
        ));
        Self {
            ops: ops.into_iter().map(|o| (o.name.clone(), o)).collect(),
        }
    }

    /// The operation named `name`.
    pub fn get(&self, name: &str) -> Option<&Operation> {
        self.ops.get(name)
    }

    /// Every operation, by name.
    pub fn all(&self) -> impl Iterator<Item = &Operation> {
        self.ops.values()
    }
}

impl OperationCatalog for Catalog {
    fn contains(&self, operation: &str) -> bool {
        self.ops.contains_key(operation)
    }

    fn required_inputs(&self, operation: &str) -> Vec<String> {
        match self.ops.get(operation) {
            Some(op) if op.nf_type == "EDGEAI" || op.nf_type == "CLOUDAI" => vec!["prompt".into()],
            Some(op) => op.path_params.values().cloned().collect(),
            None => Vec::new(),
        }
    }
}

impl Operation {
    /// The request path and body for a step input (an object of named inputs): path
    /// parameters are taken out of the input, the rest over `default_body` is the body.
    pub fn request(&self, input: &Value) -> Result<(String, Value), String> {
        let mut body = self.default_body.clone();
        let mut path = self.path.clone();
        let fields = match input {
            Value::Object(m) => m.clone(),
            Value::Null => Default::default(),
            other => return Err(format!("step input must be an object, got {other}")),
        };
        let mut fields = fields;
        for (param, input_name) in &self.path_params {
            let v = fields
                .remove(input_name)
                .ok_or_else(|| format!("input '{input_name}' (path parameter) is missing"))?;
            let s = match v {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                other => {
                    return Err(format!(
                        "input '{input_name}' must be a string, got {other}"
                    ))
                }
            };
            if s.is_empty() || s.contains(['/', '?', '#']) {
                return Err(format!("input '{input_name}' is not a path segment: '{s}'"));
            }
            path = path.replace(&format!("{{{param}}}"), &s);
        }
        if let Value::Object(b) = &mut body {
            for (k, v) in fields {
                b.insert(k, v);
            }
        }
        Ok((path, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parameters_leave_the_body_and_defaults_fill_it() {
        let cat = Catalog::netgpt();
        let loc = cat.get("amf.location").unwrap();
        let (path, body) = loc
            .request(&json!({ "supi": "imsi-001010000000001", "reqCurrentLoc": true }))
            .unwrap();
        assert_eq!(path, "/namf-loc/v1/imsi-001010000000001/provide-loc-info");
        assert_eq!(body["req5gsLoc"], true);
        assert_eq!(body["reqCurrentLoc"], true);
        assert!(body.get("supi").is_none());
        assert!(loc.request(&json!({})).unwrap_err().contains("supi"));
        assert!(loc.request(&json!({ "supi": "a/b" })).is_err());
        let gen = cat.get("cloud.generate").unwrap();
        let (_, body) = gen
            .request(&json!({ "prompt": "hi", "maxTokens": 8 }))
            .unwrap();
        assert_eq!(body, json!({ "prompt": "hi", "maxTokens": 8 }));
        assert!(cat.contains("noop") && !cat.contains("edge.nothing"));
    }
}
