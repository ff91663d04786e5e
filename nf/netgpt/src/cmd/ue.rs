//! CLI: drive UEs in the mock AMF — list, register, move (handover), locate
//! (Namf_Location ProvideLocationInfo), deregister, random walk — and show the cells.
//!
//! The AMF is found through the NRF (NFDiscover, target AMF, service `namf-comm`) unless
//! `--amf` names it. A ProblemDetails answer becomes a one-line error (exit status 1).

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use netgpt_sbi::models::namf::{
    CellInfo, HandoverRequest, HandoverResult, ProvideLocInfo, RandomWalkRequest, RandomWalkStatus,
    RequestLocInfo, UeContext, UeRegistration,
};
use netgpt_sbi::{ClientError, DiscoveryQuery, NrfClient, SbiClient};
use serde::de::DeserializeOwned;

/// `netgpt ue ...`
#[derive(Subcommand)]
pub enum Cmd {
    /// Drive UEs in the AMF: register, move, locate, random-walk.
    #[command(subcommand)]
    Ue(UeCmd),
}

/// Where the AMF is.
#[derive(Args, Clone)]
pub struct Target {
    /// NRF to discover the AMF through.
    #[arg(
        long,
        global = true,
        env = "NETGPT_NRF",
        default_value = "http://127.0.0.1:8000"
    )]
    nrf: String,
    /// AMF API root (skips NRF discovery), e.g. http://127.0.0.1:8001.
    #[arg(long, global = true, env = "NETGPT_AMF")]
    amf: Option<String>,
    /// Print the AMF's JSON answer instead of a summary.
    #[arg(long, global = true)]
    json: bool,
}

/// The UE subcommands.
#[derive(Subcommand)]
pub enum UeCmd {
    /// List the registered UEs and their serving cells.
    List(Target),
    /// List the gNB cells: NCGI, TAI, place, position and serving edge site.
    Cells(Target),
    /// Register a UE at a cell (or re-register it).
    Register {
        /// SUPI, imsi-<5..15 digits>.
        supi: String,
        /// NR Cell Identity of the serving cell (9 hex digits).
        #[arg(long)]
        cell: String,
        /// PEI (imei-<15 digits>).
        #[arg(long)]
        pei: Option<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Deregister a UE.
    Deregister {
        /// SUPI.
        supi: String,
        #[command(flatten)]
        target: Target,
    },
    /// Hand a UE over to another cell (subscribers get a LOCATION_REPORT).
    Move {
        /// SUPI.
        supi: String,
        /// NR Cell Identity of the target cell.
        #[arg(long)]
        cell: String,
        #[command(flatten)]
        target: Target,
    },
    /// Locate a UE (Namf_Location ProvideLocationInfo): cell, site, TAI, NCGI, position.
    Locate {
        /// SUPI.
        supi: String,
        /// Ask for the last known location instead of the current one.
        #[arg(long)]
        last_known: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Ask NetGPT as this UE: the edge AI function of the UE's serving site runs the whole
    /// chain (location, desensitisation, dedup, completion, policy, edge or cloud answer).
    Ask {
        /// SUPI.
        supi: String,
        /// The concise prompt, e.g. "Recommend libraries".
        prompt: String,
        /// Tokens the cloud may generate.
        #[arg(long)]
        max_tokens: Option<usize>,
        #[command(flatten)]
        target: Target,
    },
    /// Start (or stop, or show) a random walk of UEs between cells.
    Walk {
        /// How many registered UEs walk (the first N by SUPI; default all).
        #[arg(long)]
        count: Option<u32>,
        /// Milliseconds between handovers.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        /// Random seed (same seed, same walk).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Stop after this many handovers.
        #[arg(long)]
        steps: Option<u64>,
        /// Stop the running walk instead.
        #[arg(long, conflicts_with_all = ["status", "count", "steps"])]
        stop: bool,
        /// Show the walk's status instead.
        #[arg(long)]
        status: bool,
        #[command(flatten)]
        target: Target,
    },
}

/// Runs a `netgpt ue` command.
pub async fn run(cmd: Cmd) -> anyhow::Result<()> {
    let Cmd::Ue(cmd) = cmd;
    match cmd {
        UeCmd::List(t) => {
            let amf = Amf::find(&t).await?;
            let ues: Vec<UeContext> = amf.get("/namf-comm/v1/ue-contexts").await?;
            if t.json {
                return print_json(&ues);
            }
            println!(
                "{:<22} {:<10} {:<15} {:<8} PLACE",
                "SUPI", "CELL", "SITE", "TAC"
            );
            for ue in &ues {
                match &ue.serving_cell {
                    Some(c) => println!(
                        "{:<22} {:<10} {:<15} {:<8} {}",
                        ue.supi, c.ncgi.nr_cell_id, c.site, c.tai.tac, c.name
                    ),
                    None => println!("{:<22} -", ue.supi),
                }
            }
            println!("{} UE(s) registered", ues.len());
        }
        UeCmd::Ask {
            supi,
            prompt,
            max_tokens,
            target,
        } => ask(&target, &supi, &prompt, max_tokens).await?,
        UeCmd::Cells(t) => {
            let amf = Amf::find(&t).await?;
            let cells: Vec<CellInfo> = amf.get("/namf-comm/v1/cells").await?;
            if t.json {
                return print_json(&cells);
            }
            println!(
                "{:<10} {:<8} {:<15} {:>10} {:>11}  PLACE",
                "CELL", "TAC", "SITE", "LAT", "LON"
            );
            for c in &cells {
                let p = c.geo_info.coordinates();
                println!(
                    "{:<10} {:<8} {:<15} {:>10.4} {:>11.4}  {}",
                    c.ncgi.nr_cell_id, c.tai.tac, c.site, p.lat, p.lon, c.name
                );
            }
        }
        UeCmd::Register {
            supi,
            cell,
            pei,
            target,
        } => {
            let amf = Amf::find(&target).await?;
            let body = UeRegistration {
                supi: Some(supi.clone()),
                pei,
                ncgi: None,
                nr_cell_id: Some(cell),
            };
            let ue: UeContext = amf
                .send(
                    amf.client
                        .put(amf.url(&format!("/namf-comm/v1/ue-contexts/{supi}")))
                        .json(&body),
                )
                .await?;
            if target.json {
                return print_json(&ue);
            }
            println!(
                "{} registered at {}",
                ue.supi,
                describe_cell(ue.serving_cell.as_ref())
            );
        }
        UeCmd::Deregister { supi, target } => {
            let amf = Amf::find(&target).await?;
            amf.client
                .delete(amf.url(&format!("/namf-comm/v1/ue-contexts/{supi}")))
                .send()
                .await
                .map_err(problem_line)?;
            println!("{supi} deregistered");
        }
        UeCmd::Move { supi, cell, target } => {
            let amf = Amf::find(&target).await?;
            let body = HandoverRequest {
                target_ncgi: None,
                nr_cell_id: Some(cell),
            };
            let res: HandoverResult = amf
                .send(
                    amf.client
                        .post(amf.url(&format!("/namf-comm/v1/ue-contexts/{supi}/handover")))
                        .json(&body),
                )
                .await?;
            if target.json {
                return print_json(&res);
            }
            let to = describe_cell(res.ue_context.serving_cell.as_ref());
            if res.notifications == 0
                && res.source_ncgi.nr_cell_id
                    == res
                        .ue_context
                        .serving_cell
                        .as_ref()
                        .map_or("", |c| &c.ncgi.nr_cell_id)
            {
                println!("{supi} already in {to}");
            } else {
                println!(
                    "{supi}: {} -> {to} ({} location report(s) sent)",
                    res.source_ncgi.nr_cell_id, res.notifications
                );
            }
        }
        UeCmd::Locate {
            supi,
            last_known,
            target,
        } => {
            let amf = Amf::find(&target).await?;
            let req = RequestLocInfo {
                req5gs_loc: true,
                req_current_loc: !last_known,
                req_rat_type: true,
                req_time_zone: true,
                supported_features: None,
            };
            let info: ProvideLocInfo = amf
                .send(
                    amf.client
                        .post(amf.url(&format!("/namf-loc/v1/{supi}/provide-loc-info")))
                        .json(&req),
                )
                .await?;
            if target.json {
                return print_json(&info);
            }
            let nr = info
                .location
                .as_ref()
                .and_then(|l| l.nr_location.as_ref())
                .ok_or_else(|| anyhow!("the AMF returned no NR location for {supi}"))?;
            let cell: Option<CellInfo> = amf
                .get(&format!("/namf-comm/v1/cells/{}", nr.ncgi.nr_cell_id))
                .await
                .ok();
            println!("SUPI      {supi}");
            if let Some(c) = &cell {
                println!("cell      {} ({})", c.name, c.ncgi.nr_cell_id);
                println!(
                    "site      {}{}",
                    c.site,
                    c.site_name
                        .as_ref()
                        .map(|n| format!(" — {n}"))
                        .unwrap_or_default()
                );
            }
            println!("NCGI      {}/{}", nr.ncgi.plmn_id, nr.ncgi.nr_cell_id);
            println!("TAI       {}/{}", nr.tai.plmn_id, nr.tai.tac);
            if let Some(g) = &info.geo_info {
                let p = g.coordinates();
                println!("position  lat {:.4}, lon {:.4}", p.lat, p.lon);
            }
            if let Some(ts) = nr.ue_location_timestamp {
                println!(
                    "located   {} ({}, age {} min)",
                    ts.to_rfc3339(),
                    if info.current_loc == Some(true) {
                        "current"
                    } else {
                        "last known"
                    },
                    nr.age_of_location_information.unwrap_or(0)
                );
            }
            if let Some(tz) = &info.timezone {
                println!("timezone  {tz}");
            }
        }
        UeCmd::Walk {
            count,
            interval_ms,
            seed,
            steps,
            stop,
            status,
            target,
        } => {
            let amf = Amf::find(&target).await?;
            let url = amf.url("/namf-comm/v1/mobility/random-walk");
            let st: RandomWalkStatus = if stop {
                amf.send(amf.client.delete(url)).await?
            } else if status {
                amf.send(amf.client.get(url)).await?
            } else {
                let body = RandomWalkRequest {
                    supis: None,
                    count,
                    interval_ms,
                    seed,
                    steps,
                };
                amf.send(amf.client.post(url).json(&body)).await?
            };
            if target.json {
                return print_json(&st);
            }
            println!(
                "random walk {}: {} UE(s), every {} ms, seed {}, {} handover(s){}",
                if st.running { "running" } else { "stopped" },
                st.supis.len(),
                st.interval_ms,
                st.seed,
                st.handovers,
                st.steps.map(|s| format!(" of {s}")).unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// `netgpt ue ask`: finds the UE's serving site in the AMF, that site's edge AI function in
/// the NRF, and sends it the prompt.
async fn ask(
    t: &Target,
    supi: &str,
    prompt: &str,
    max_tokens: Option<usize>,
) -> anyhow::Result<()> {
    let amf = Amf::find(t).await?;
    let ue: UeContext = amf
        .get(&format!("/namf-comm/v1/ue-contexts/{supi}"))
        .await?;
    let site = ue
        .serving_cell
        .map(|c| c.site)
        .ok_or_else(|| anyhow!("UE {supi} has no serving cell"))?;
    let nrf = NrfClient::new(amf.client.clone(), t.nrf.clone());
    let query = DiscoveryQuery::new("EDGEAI", "AF")
        .service("nedgeai-prompt")
        .locality(site.clone());
    let found = nrf
        .discover(&query)
        .await
        .map_err(problem_line)
        .with_context(|| {
            format!(
                "finding the edge AI function of {site} through the NRF at {}",
                t.nrf
            )
        })?;
    let root = found
        .nf_instances
        .iter()
        .filter(|p| p.locality.as_deref() == Some(site.as_str()))
        .find_map(|p| p.service("nedgeai-prompt").and_then(|s| s.api_root()))
        .ok_or_else(|| anyhow!("no edge AI function of {site} is registered in the NRF"))?;
    let mut body = serde_json::json!({ "supi": supi, "prompt": prompt });
    if let Some(n) = max_tokens {
        body["maxTokens"] = n.into();
    }
    let v: serde_json::Value = amf
        .send(
            amf.client
                .post(format!("{root}/nedgeai-prompt/v1/ue-prompts"))
                .deadline(std::time::Duration::from_secs(180))
                .json(&body),
        )
        .await?;
    if t.json {
        return print_json(&v);
    }
    let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
    println!(
        "served by      {} (cell {} {})",
        s("servedBy"),
        v["cell"]["nrCellId"].as_str().unwrap_or(""),
        v["cell"]["name"].as_str().unwrap_or("")
    );
    println!("concise        {}", s("concisePrompt"));
    println!("comprehensive  {}", s("comprehensivePrompt"));
    if let Some(pii) = v["pii"].as_object().filter(|m| !m.is_empty()) {
        let kinds: Vec<String> = pii.iter().map(|(k, n)| format!("{k} x{n}")).collect();
        println!("kept at edge   {}", kinds.join(", "));
    }
    println!(
        "duplicate      {}{}",
        s("duplicate"),
        if v["coalesced"] == true {
            " (coalesced)"
        } else {
            ""
        }
    );
    println!(
        "answered by    {} in {:.0} ms",
        s("answeredBy"),
        v["timings"]["totalMs"].as_f64().unwrap_or(0.0)
    );
    println!();
    println!("{}", s("answer"));
    Ok(())
}

/// The AMF found for this command.
struct Amf {
    client: SbiClient,
    root: String,
}

impl Amf {
    async fn find(t: &Target) -> anyhow::Result<Self> {
        // Access tokens come from the same NRF (the embedded `[oauth2]` settings, with
        // NETGPT__OAUTH2__* overrides).
        let mut cfg = netgpt_sbi::config::TestbedConfig::load_default()?;
        cfg.nrf.uri = t.nrf.clone();
        let client = netgpt_sbi::oauth::consumer_client(&cfg, "netgpt-cli")?;
        let root = match &t.amf {
            Some(root) => root.trim_end_matches('/').to_owned(),
            None => {
                let nrf = NrfClient::new(client.clone(), t.nrf.clone());
                let query = DiscoveryQuery::new("AMF", "AF").service("namf-comm");
                nrf.api_root_of(&query, "namf-comm")
                    .await
                    .map_err(problem_line)
                    .with_context(|| format!("finding the AMF through the NRF at {}", t.nrf))?
            }
        };
        Ok(Self { client, root })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.root)
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.send(self.client.get(self.url(path))).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: netgpt_sbi::client::SbiRequest,
    ) -> anyhow::Result<T> {
        req.send_json().await.map_err(problem_line)
    }
}

/// One line for an SBI failure: the AMF's ProblemDetails when it sent one, with the
/// invalid parameters its detail does not already name.
fn problem_line(e: ClientError) -> anyhow::Error {
    match e.problem() {
        Some(p) => {
            let detail = p.detail.as_deref().unwrap_or("");
            let params: Vec<String> = p
                .invalid_params
                .iter()
                .filter(|ip| !detail.contains(&ip.param))
                .map(|ip| {
                    format!(
                        "{} ({})",
                        ip.param,
                        ip.reason.as_deref().unwrap_or("invalid")
                    )
                })
                .collect();
            if params.is_empty() {
                anyhow!("{p}")
            } else {
                anyhow!("{p} [{}]", params.join("; "))
            }
        }
        None => anyhow!("{e}"),
    }
}

fn describe_cell(c: Option<&CellInfo>) -> String {
    match c {
        Some(c) => format!("{} ({}, {})", c.ncgi.nr_cell_id, c.name, c.site),
        None => "an unknown cell".to_owned(),
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
