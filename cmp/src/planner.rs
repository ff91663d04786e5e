//! The planner: turns a workflow and a run input into a placement of every step on a
//! (node, device), with the predicted end-to-end latency, by building the scheduler's
//! [`Dag`](sched::Dag) and [`Platform`](sched::Platform) from the workflow, the inventory
//! and the NF instances the NRF knows, and calling [`sched::schedule`].
//!
//! Where a step may run (its cost entry on a device is `None` elsewhere):
//! - on a device of a kind its `costMs` names (empty `costMs`: any kind, 0 ms — a pure
//!   control call);
//! - for an operation of [`Locality::Node`]/[`Locality::UeSite`]: on a node where an NF
//!   of the operation's type offering its service is registered at that locality
//!   (node id == NF locality);
//! - for [`Locality::UeSite`] (the edge AI steps) of a run whose UE's serving site is
//!   known: on that site's node only. The site is the run input's `site`, else the
//!   serving cell's site that the AMF reports for the input's `supi`
//!   (`GET /namf-comm/v1/ue-contexts/{supi}`); with neither, any edge node with the NF.
//!
//! Every step is placed, conditional ones too: whether a `when` holds is known only at
//! run time, so the plan is the worst case.
//!
//! A step's execution time on a device is its `costMs` for the device's kind divided by
//! the device's effective speed (see [`Inventory::platform`] for the live-load
//! discount); an edge carries the producer's `outputBytes` (default [`DEFAULT_OUTPUT_BYTES`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use netgpt_sbi::models::namf::UeContext;
use netgpt_sbi::{DiscoveryQuery, NrfClient, ProblemDetails, SbiClient};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::executor::REQUESTER_NF_TYPE;
use crate::inventory::Inventory;
use crate::ops::{Catalog, Locality};
use crate::sched::{self, DeviceKind};
use crate::wf::engine::StepPlacement;
use crate::wf::spec::{step_edges, WorkflowSpec};

/// Transfer size assumed for a step's output when the workflow does not estimate it.
pub const DEFAULT_OUTPUT_BYTES: f64 = 1024.0;

/// The scheduler variant to plan with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlanAlgorithm {
    /// Plain HEFT (Topcuoglu et al. 2002).
    Heft,
    /// The scheduler's best variant (never worse than HEFT on an instance).
    #[default]
    Best,
}

/// Where one step goes and when it is predicted to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlannedStep {
    /// Step id.
    pub step_id: String,
    /// Its operation.
    pub operation: String,
    /// Node (edge site id or `cloud`).
    pub node: String,
    /// Device id on the node.
    pub device: String,
    /// Device kind.
    pub device_kind: DeviceKind,
    /// Predicted start, ms after the run starts.
    pub start_ms: f64,
    /// Predicted finish, ms after the run starts.
    pub finish_ms: f64,
    /// The step's condition, when it has one (it may be skipped at run time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
}

/// A dry run's answer: the placement and its predicted latency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Workflow name.
    pub workflow: String,
    /// Scheduler that produced it (as the scheduler names itself).
    pub algorithm: String,
    /// The UE's serving site the edge steps were pinned to, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Every step, in the workflow's order.
    pub steps: Vec<PlannedStep>,
    /// Predicted end-to-end latency (the schedule's makespan), ms.
    pub predicted_latency_ms: f64,
    /// The workflow's budget, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_ms: Option<u64>,
    /// Whether the prediction fits the budget (true without a budget).
    pub within_budget: bool,
    /// The DAG placed on nodes, Graphviz DOT (one cluster per node).
    pub dot: String,
    /// The same picture as a Mermaid flowchart (one subgraph per node).
    pub mermaid: String,
}

impl Plan {
    /// The placement the workflow engine takes: step id -> (node, device).
    pub fn placement(&self) -> BTreeMap<String, StepPlacement> {
        self.steps
            .iter()
            .map(|s| {
                (
                    s.step_id.clone(),
                    StepPlacement {
                        node: s.node.clone(),
                        device: s.device.clone(),
                    },
                )
            })
            .collect()
    }
}

/// What the planner knows about the world beyond the inventory.
#[derive(Debug, Clone, Default)]
pub struct World {
    /// The UE's serving site, when known.
    pub site: Option<String>,
    /// NF type -> localities where an instance offering the catalogue's service is registered.
    pub nf_localities: BTreeMap<String, BTreeSet<String>>,
}

/// Reads the run input's `site` (or asks the AMF for `supi`'s serving site) and the
/// localities of the NF types `spec` needs.
pub async fn gather(
    spec: &WorkflowSpec,
    catalog: &Catalog,
    input: &Value,
    nrf: &NrfClient,
    client: &SbiClient,
) -> Result<World, ProblemDetails> {
    let mut world = World::default();
    let needed: BTreeSet<(String, String)> = spec
        .steps
        .iter()
        .filter_map(|s| catalog.get(&s.operation))
        .filter(|o| matches!(o.locality, Locality::Node | Locality::UeSite))
        .map(|o| (o.nf_type.clone(), o.service.clone()))
        .collect();
    let ue_bound: BTreeSet<&str> = spec
        .steps
        .iter()
        .filter_map(|s| catalog.get(&s.operation))
        .filter(|o| o.locality == Locality::UeSite)
        .map(|o| o.nf_type.as_str())
        .collect();
    world.site = match (input.get("site"), input.get("supi")) {
        (Some(Value::String(s)), _) => Some(s.clone()),
        (Some(other), _) => {
            return Err(ProblemDetails::invalid_param(
                "input.site",
                format!("must be a site id string, got {other}"),
            ))
        }
        (None, Some(Value::String(supi))) => Some(serving_site(supi, nrf, client).await?),
        _ => None,
    };
    for (nf_type, service) in needed {
        let q = DiscoveryQuery::new(nf_type.clone(), REQUESTER_NF_TYPE).service(service.clone());
        let localities = |found: netgpt_sbi::models::nnrf::SearchResult| {
            found
                .nf_instances
                .into_iter()
                .filter(|p| p.service(&service).is_some())
                .filter_map(|p| p.locality)
                .collect::<BTreeSet<String>>()
        };
        let mut set = localities(nrf.discover(&q).await.map_err(|e| unavailable("NRF", &e))?);
        // A cached answer may predate an NF that just registered: ask again before
        // concluding that an instance is missing.
        let missing = set.is_empty()
            || (ue_bound.contains(nf_type.as_str())
                && world.site.as_ref().is_some_and(|s| !set.contains(s)));
        if missing {
            set = localities(
                nrf.discover_fresh(&q)
                    .await
                    .map_err(|e| unavailable("NRF", &e))?,
            );
        }
        world.nf_localities.insert(nf_type, set);
    }
    Ok(world)
}

fn unavailable(peer: &str, e: &dyn std::fmt::Display) -> ProblemDetails {
    ProblemDetails::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "NF_FAILURE",
        format!("{peer}: {e}"),
    )
}

/// The edge site serving `supi`, from the AMF's UE context.
async fn serving_site(
    supi: &str,
    nrf: &NrfClient,
    client: &SbiClient,
) -> Result<String, ProblemDetails> {
    if !netgpt_sbi::config::is_imsi_supi(supi) {
        return Err(ProblemDetails::invalid_param(
            "input.supi",
            format!("'{supi}' is not an imsi-<5..15 digits> SUPI"),
        ));
    }
    let q = DiscoveryQuery::new("AMF", REQUESTER_NF_TYPE).service("namf-comm");
    let roots = nrf
        .api_roots_of(&q, "namf-comm")
        .await
        .map_err(|e| unavailable("AMF discovery", &e))?;
    // Fail over: an AMF that cannot be reached (killed, its registration not yet expired)
    // gives way to the next one the NRF listed.
    let mut ue = None;
    let mut unreachable = None;
    for root in roots {
        let answer = client
            .get(format!("{root}/namf-comm/v1/ue-contexts/{supi}"))
            .service("namf-comm")
            .operation("ue_context_retrieve")
            .target_nf_type("AMF")
            .send_json::<UeContext>()
            .await;
        match answer {
            Ok(u) => {
                ue = Some(u);
                break;
            }
            Err(e) if e.status().is_none() => {
                nrf.invalidate();
                unreachable = Some(e);
            }
            Err(e) => {
                return Err(match e.status().map(|s| s.as_u16()) {
                    Some(404) => ProblemDetails::invalid_param(
                        "input.supi",
                        format!("UE '{supi}' is not registered in the AMF"),
                    ),
                    _ => unavailable("AMF", &e),
                })
            }
        }
    }
    let Some(ue) = ue else {
        return Err(match unreachable {
            Some(e) => unavailable("AMF", &e),
            None => unavailable("AMF", &"no AMF answered"),
        });
    };
    ue.serving_cell.map(|c| c.site).ok_or_else(|| {
        unavailable(
            "AMF",
            &format!("UE '{supi}' has no serving cell with a site"),
        )
    })
}

/// Plans `spec` on the inventory's current platform.
pub fn plan(
    spec: &WorkflowSpec,
    catalog: &Catalog,
    inventory: &Inventory,
    world: &World,
    algorithm: PlanAlgorithm,
) -> Result<Plan, ProblemDetails> {
    let (platform, ids) = inventory.platform();
    if let Some(site) = &world.site {
        if !platform.nodes.iter().any(|n| &n.id == site) {
            return Err(ProblemDetails::invalid_param(
                "input.site",
                format!("'{site}' is not a node of the inventory"),
            ));
        }
    }
    let mut tasks = Vec::with_capacity(spec.steps.len());
    for s in &spec.steps {
        let op = catalog.get(&s.operation).ok_or_else(|| {
            ProblemDetails::bad_request(
                "MANDATORY_IE_INCORRECT",
                format!("step '{}': unknown operation '{}'", s.id, s.operation),
            )
        })?;
        let cost = platform
            .devices
            .iter()
            .map(|d| {
                let node = &platform.nodes[d.node].id;
                let allowed = match op.locality {
                    Locality::InProcess | Locality::Anywhere => true,
                    Locality::Node => world
                        .nf_localities
                        .get(&op.nf_type)
                        .is_some_and(|l| l.contains(node)),
                    Locality::UeSite => {
                        world
                            .nf_localities
                            .get(&op.nf_type)
                            .is_some_and(|l| l.contains(node))
                            && world.site.as_ref().is_none_or(|site| site == node)
                    }
                };
                if !allowed {
                    return None;
                }
                if s.cost_ms.is_empty() {
                    return Some(0.0);
                }
                s.cost_ms.get(&d.kind).map(|ms| ms / 1000.0 / d.speed)
            })
            .collect::<Vec<Option<f64>>>();
        if cost.iter().all(Option::is_none) {
            return Err(infeasible(spec, s, op, world, &platform));
        }
        tasks.push(sched::Task {
            name: s.id.clone(),
            cost,
            units: s.demand.units,
            memory_mb: s.demand.memory_mb,
        });
    }
    let edges = step_edges(spec)
        .into_iter()
        .map(|(from, to)| sched::Edge {
            from,
            to,
            bytes: spec.steps[from]
                .output_bytes
                .unwrap_or(DEFAULT_OUTPUT_BYTES),
        })
        .collect();
    let dag = sched::Dag { tasks, edges };
    let opts = sched::Options {
        algorithm: match algorithm {
            PlanAlgorithm::Heft => sched::Algorithm::Heft,
            PlanAlgorithm::Best => sched::Algorithm::Best,
        },
        // The verdict is the planner's: a plan over budget is still shown.
        deadline_s: None,
    };
    let schedule = sched::schedule(&dag, &platform, &opts).map_err(|e| {
        let (param, why) = match &e {
            sched::SchedError::NoFeasibleDevice { task, reason } => {
                (format!("steps.{task}"), reason.clone())
            }
            sched::SchedError::Cycle { task } => (format!("steps.{task}"), "cycle".to_owned()),
            other => ("workflow".to_owned(), other.to_string()),
        };
        ProblemDetails::new(
            axum::http::StatusCode::CONFLICT,
            "NO_FEASIBLE_PLACEMENT",
            format!("no placement of workflow '{}': {e}", spec.name),
        )
        .with_invalid_param(param, why)
    })?;
    let steps: Vec<PlannedStep> = spec
        .steps
        .iter()
        .zip(&schedule.placements)
        .map(|(s, p)| {
            let (node, device) = ids[p.device].clone();
            PlannedStep {
                step_id: s.id.clone(),
                operation: s.operation.clone(),
                node,
                device,
                device_kind: platform.devices[p.device].kind,
                start_ms: p.start * 1000.0,
                finish_ms: p.finish * 1000.0,
                when: s.when.clone(),
            }
        })
        .collect();
    let predicted_latency_ms = schedule.makespan * 1000.0;
    let within_budget = spec
        .budget_ms
        .is_none_or(|b| predicted_latency_ms <= b as f64);
    let edges = step_edges(spec);
    Ok(Plan {
        workflow: spec.name.clone(),
        algorithm: schedule.algorithm.clone(),
        site: world.site.clone(),
        dot: render_dot(&spec.name, &steps, &edges),
        mermaid: render_mermaid(&steps, &edges),
        steps,
        predicted_latency_ms,
        budget_ms: spec.budget_ms,
        within_budget,
    })
}

/// Why step `s` fits no device at all, in the user's terms (which NF is missing where,
/// or which device kinds its cost estimates name).
fn infeasible(
    spec: &WorkflowSpec,
    s: &crate::wf::StepSpec,
    op: &crate::ops::Operation,
    world: &World,
    platform: &sched::Platform,
) -> ProblemDetails {
    let hosts: Vec<&str> = platform
        .nodes
        .iter()
        .map(|n| n.id.as_str())
        .filter(|n| {
            world
                .nf_localities
                .get(&op.nf_type)
                .is_some_and(|l| l.contains(*n))
        })
        .collect();
    let reason = match (op.locality, &world.site) {
        (Locality::Node | Locality::UeSite, _) if hosts.is_empty() => format!(
            "no {} instance offering {} is registered at a node of the inventory",
            op.nf_type, op.service
        ),
        (Locality::UeSite, Some(site)) if !hosts.contains(&site.as_str()) => format!(
            "the UE's site '{site}' has no {} instance offering {} (instances at: {})",
            op.nf_type,
            op.service,
            hosts.join(", ")
        ),
        _ => {
            let kinds: Vec<String> = s.cost_ms.keys().map(|k| kind_name(*k)).collect();
            format!(
                "costMs names device kinds [{}] but no free device of these kinds is where the step may run",
                kinds.join(", ")
            )
        }
    };
    ProblemDetails::new(
        axum::http::StatusCode::CONFLICT,
        "NO_FEASIBLE_PLACEMENT",
        format!(
            "no placement of workflow '{}': step '{}' ({}): {reason}",
            spec.name, s.id, s.operation
        ),
    )
    .with_invalid_param(format!("steps.{}", s.id), reason)
}

/// Steps grouped by node, nodes in first-use order.
fn by_node(steps: &[PlannedStep]) -> Vec<(&str, Vec<usize>)> {
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        match groups.iter_mut().find(|(n, _)| *n == s.node) {
            Some((_, v)) => v.push(i),
            None => groups.push((&s.node, vec![i])),
        }
    }
    groups
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn kind_name(k: DeviceKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Graphviz DOT of the placed DAG: a cluster per node, a box per step with its operation,
/// device and predicted times; cross-node edges dashed.
pub fn render_dot(name: &str, steps: &[PlannedStep], edges: &[(usize, usize)]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", dot_escape(name));
    out.push_str("  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n");
    for (ci, (node, members)) in by_node(steps).into_iter().enumerate() {
        let _ = writeln!(out, "  subgraph cluster_{ci} {{");
        let _ = writeln!(out, "    label=\"{}\";", dot_escape(node));
        for i in members {
            let s = &steps[i];
            let _ = writeln!(
                out,
                "    \"{}\" [label=\"{}\\n{}\\n{} ({}) {:.1}-{:.1} ms\"];",
                dot_escape(&s.step_id),
                dot_escape(&s.step_id),
                dot_escape(&s.operation),
                dot_escape(&s.device),
                kind_name(s.device_kind),
                s.start_ms,
                s.finish_ms
            );
        }
        out.push_str("  }\n");
    }
    for &(a, b) in edges {
        let style = if steps[a].node != steps[b].node {
            " [style=dashed]"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  \"{}\" -> \"{}\"{style};",
            dot_escape(&steps[a].step_id),
            dot_escape(&steps[b].step_id)
        );
    }
    out.push_str("}\n");
    out
}

fn mermaid_text(s: &str) -> String {
    s.replace('"', "#quot;")
}

/// Mermaid flowchart of the placed DAG: a subgraph per node; cross-node edges dotted.
pub fn render_mermaid(steps: &[PlannedStep], edges: &[(usize, usize)]) -> String {
    let mut out = String::from("flowchart LR\n");
    for (ci, (node, members)) in by_node(steps).into_iter().enumerate() {
        let _ = writeln!(out, "  subgraph n{ci}[\"{}\"]", mermaid_text(node));
        for i in members {
            let s = &steps[i];
            let _ = writeln!(
                out,
                "    s{i}[\"{}<br/>{}<br/>{} ({}) {:.1}-{:.1} ms\"]",
                mermaid_text(&s.step_id),
                mermaid_text(&s.operation),
                mermaid_text(&s.device),
                kind_name(s.device_kind),
                s.start_ms,
                s.finish_ms
            );
        }
        out.push_str("  end\n");
    }
    for &(a, b) in edges {
        let arrow = if steps[a].node != steps[b].node {
            "-.->"
        } else {
            "-->"
        };
        let _ = writeln!(out, "  s{a} {arrow} s{b}");
    }
    out
}
