//! `netgpt experiment personalisation`: the same concise prompts from UEs at the four edge
//! sites, under LLM synergy and cloud-only, on the experiments' testbed (real edge and cloud
//! models, emulated links). Per site it measures how often what the cloud was sent, and
//! the answer, name a fact of the UE's own site (the site profiles the edge model was
//! trained on, `check_completion`), and how often the answers to one prompt differ by site.
//! Writes `<out>/report.md`, `<out>/results.json` and an SVG plot.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;
use netgpt_models::data::pairs::check_completion;
use netgpt_models::data::profiles;
use serde_json::json;

use super::fig3::{base_prompts, run_framework, Framework, FrameworkRun, Item};
use super::harness::{Harness, HarnessOptions};
use super::report::{self, table};
use super::svg::{self, Series};

/// Arguments of `netgpt experiment personalisation`.
#[derive(Args, Debug, Clone)]
pub struct PersonalisationArgs {
    /// Distinct concise prompts, each sent by a UE at every site.
    #[arg(long, default_value_t = 8)]
    pub prompts: usize,
    /// Tokens the cloud model generates per answer.
    #[arg(long, default_value_t = 24)]
    pub max_tokens: usize,
    /// Report folder.
    #[arg(long, default_value = "reports/personalisation")]
    pub out: PathBuf,
    /// Testbed configuration; the embedded default when absent.
    #[arg(long, short, env = "NETGPT_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Per site and framework: how many prompts, and how many times the cloud's input and the
/// answer named a fact of the site.
#[derive(Debug, Clone, Default, serde::Serialize)]
struct SiteRate {
    requests: usize,
    sent_names_site_fact: usize,
    answer_names_site_fact: usize,
    sent_names_other_site: usize,
}

/// Runs the experiment and writes its report.
pub async fn run(a: PersonalisationArgs) -> anyhow::Result<()> {
    if a.prompts == 0 || a.max_tokens == 0 {
        anyhow::bail!("--prompts and --max-tokens must be at least 1");
    }
    let config = crate::cmd::nf::load_config(a.config.as_deref())?;
    // One prompt per category first (so the sample covers categories), then the rest.
    let base = base_prompts()?;
    let mut cats = BTreeSet::new();
    let (first, rest): (Vec<_>, Vec<_>) = base
        .into_iter()
        .partition(|p| cats.insert(p.category.clone()));
    let chosen: Vec<_> = first.into_iter().chain(rest).take(a.prompts).collect();
    let mut h = Harness::start(
        config,
        HarnessOptions {
            max_tokens: a.max_tokens,
            offload_site: None,
        },
    )
    .await?;
    let sites: Vec<String> = h.edges.keys().cloned().collect();
    let mut items = Vec::new();
    for p in &chosen {
        for s in &sites {
            items.push(Item {
                site: s.clone(),
                category: p.category.clone(),
                concise: p.concise.clone(),
                dup_of: None,
            });
        }
    }
    let result = async {
        let n = items.len();
        let mut runs = Vec::new();
        for fw in [Framework::Synergy, Framework::CloudOnly] {
            eprintln!("personalisation: {} ({n} requests)", fw.name());
            runs.push(run_framework(&mut h, fw, &items, n, a.max_tokens).await?);
        }
        anyhow::Ok(runs)
    }
    .await;
    let model = h.model.clone();
    h.stop().await;
    let runs = result?;
    write_report(&a, &sites, &items, &runs, &model)
}

fn write_report(
    a: &PersonalisationArgs,
    sites: &[String],
    items: &[Item],
    runs: &[FrameworkRun],
    model: &std::path::Path,
) -> anyhow::Result<()> {
    let profiles = profiles::builtin();
    let mut rates: BTreeMap<(&str, &str), SiteRate> = BTreeMap::new();
    // Per framework: prompts whose answers differ between sites.
    let mut differ: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for r in runs {
        let fw = r.framework.name();
        let mut by_prompt: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for ans in &r.answers {
            let it = &items[ans.item];
            let rate = rates.entry((fw, it.site.as_str())).or_default();
            rate.requests += 1;
            let sent = check_completion(&profiles, &it.site, &it.category, &ans.sent);
            let got = check_completion(&profiles, &it.site, &it.category, &ans.answer);
            rate.sent_names_site_fact += usize::from(sent.right_site_fact);
            rate.sent_names_other_site += usize::from(sent.other_site);
            rate.answer_names_site_fact += usize::from(got.right_site_fact);
            by_prompt
                .entry(it.concise.as_str())
                .or_default()
                .insert(ans.answer.trim().to_owned());
        }
        let d = by_prompt.values().filter(|s| s.len() > 1).count();
        differ.insert(fw, (d, by_prompt.len()));
    }
    let mut md = String::new();
    let _ = writeln!(md, "# Personalisation: the same prompt from four sites\n");
    let _ = writeln!(md, "- date: {}", report::now_utc());
    let _ = writeln!(md, "- machine: {}", report::machine());
    let _ = writeln!(
        md,
        "- settings: {} concise prompts (held-out pairs, one per category first) x {} sites = {} requests per \
         framework, cloud maxTokens {}, cloud model {}",
        items.len() / sites.len().max(1),
        sites.len(),
        items.len(),
        a.max_tokens,
        model.display()
    );
    let _ = writeln!(
        md,
        "- a text names a site fact when it contains the name of a place of that site's profile \
         (`check_completion` on the built-in profiles)\n"
    );
    let _ = writeln!(md, "## Rate of site facts, per site\n");
    let mut rows = Vec::new();
    for r in runs {
        let fw = r.framework.name();
        for s in sites {
            let x = rates.get(&(fw, s.as_str())).cloned().unwrap_or_default();
            let pct = |k: usize| {
                format!(
                    "{:.0}% ({k}/{})",
                    100.0 * k as f64 / x.requests.max(1) as f64,
                    x.requests
                )
            };
            rows.push(vec![
                fw.to_owned(),
                s.clone(),
                pct(x.sent_names_site_fact),
                pct(x.answer_names_site_fact),
                pct(x.sent_names_other_site),
            ]);
        }
    }
    md += &table(
        &[
            "framework",
            "UE's site",
            "cloud was sent a fact of the site",
            "answer names a fact of the site",
            "cloud was sent another site's fact",
        ],
        &rows,
    );
    let _ = writeln!(md, "\n## Do answers differ by site?\n");
    for (fw, (d, n)) in &differ {
        let _ = writeln!(
            md,
            "- {fw}: answers differ between sites for {d} of {n} prompts"
        );
    }
    let _ = writeln!(
        md,
        "\nCloud-only sends the concise prompt as typed: the cloud cannot know where the UE is, so \
         one prompt gets one answer wherever it comes from (greedy decoding). Under synergy the edge \
         AI function of the UE's site completes the prompt with its location and local places, so \
         the cloud answers about the site. The answers are short (maxTokens {}) and from a 135M \
         model, so they name a site fact less often than the prompt the cloud received does.\n",
        a.max_tokens
    );
    let _ = writeln!(md, "## Examples\n");
    if let Some(first) = items.first() {
        for r in runs {
            for ans in r
                .answers
                .iter()
                .filter(|x| items[x.item].concise == first.concise)
            {
                let _ = writeln!(
                    md,
                    "- {} at {}: asked `{}`; cloud received `{}`; answer `{}`",
                    r.framework.name(),
                    items[ans.item].site,
                    first.concise,
                    ans.sent.replace('`', "'").replace('\n', " "),
                    ans.answer.replace('`', "'").replace('\n', " ")
                );
            }
        }
    }
    let series: Vec<Series> = runs
        .iter()
        .flat_map(|r| {
            let fw = r.framework.name();
            let rate = |f: fn(&SiteRate) -> usize| -> Vec<f64> {
                sites
                    .iter()
                    .map(|s| {
                        let x = rates.get(&(fw, s.as_str())).cloned().unwrap_or_default();
                        100.0 * f(&x) as f64 / x.requests.max(1) as f64
                    })
                    .collect()
            };
            [
                Series {
                    name: format!("{fw}: sent"),
                    values: rate(|x| x.sent_names_site_fact),
                },
                Series {
                    name: format!("{fw}: answer"),
                    values: rate(|x| x.answer_names_site_fact),
                },
            ]
        })
        .collect();
    let plot = svg::bars(
        "Site facts named, per UE site (%)",
        "% of requests",
        sites,
        &series,
    );
    report::write(&a.out, "site_facts.svg", &plot)?;
    let _ = writeln!(md, "\n![site facts](site_facts.svg)");
    for r in runs {
        for e in r.errors.iter().take(3) {
            let _ = writeln!(md, "- error ({}): {e}", r.framework.name());
        }
    }
    report::write(&a.out, "report.md", &md)?;
    let per_site: Vec<_> = rates
        .iter()
        .map(|((fw, s), x)| json!({ "framework": fw, "site": s, "rate": x }))
        .collect();
    let results = json!({
        "sites": sites,
        "perSite": per_site,
        "differ": differ.iter().map(|(fw, (d, n))| json!({"framework": fw, "differ": d, "prompts": n})).collect::<Vec<_>>(),
        "errors": runs.iter().map(|r| r.errors.len()).sum::<usize>(),
    });
    report::write(
        &a.out,
        "results.json",
        &serde_json::to_string_pretty(&results)?,
    )?;
    println!(
        "personalisation: report written to {}",
        a.out.join("report.md").display()
    );
    Ok(())
}
