//! The edge AI function's procedures, without HTTP: each service operation, and the UE-facing
//! chain that runs them all for one concise prompt.
//!
//! The chain for a UE's prompt: the UE's serving cell from the AMF (Namf_Location
//! ProvideLocationInfo) -> when that cell belongs to another site, the request moves to that
//! site's edge function (found in the NRF by locality) -> desensitise -> dedup (within the
//! window; duplicates carry on with their representative) -> complete with the edge model
//! (concurrent identical completions share one decode; the decode is batched with other
//! requests') -> data policy -> answer at the edge (cache, place lookup) -> else the cloud AI
//! function (concurrent identical calls share one call; the answer is cached) -> the user's
//! own values restored in the answer.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use netgpt_sbi::client::ClientError;
use netgpt_sbi::models::namf::{ProvideLocInfo, RequestLocInfo};
use netgpt_sbi::{DiscoveryQuery, ProblemDetails};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::context::{EdgeAiContext, SharedCompletion};
use crate::dedup::{self, DuplicateKind};
use crate::directory;
use crate::pii;
use crate::policy::{self, PolicyDecision};
use crate::types::*;
use crate::SERVICE_PROMPT;

/// Longest prompt accepted, in characters.
pub const MAX_PROMPT_CHARS: usize = 2000;
/// Deadline of a call to the AMF or to another edge function's chain.
pub const PEER_DEADLINE: Duration = Duration::from_secs(10);
/// Deadline of a cloud generation.
pub const CLOUD_DEADLINE: Duration = Duration::from_secs(120);
/// Header marking a chain request forwarded by another site's edge function (no second hop).
pub const FORWARDED_HEADER: &str = "x-netgpt-forwarded-by";

/// Checks a prompt field: not blank, not too long.
pub fn check_prompt(param: &str, text: &str) -> Result<(), ProblemDetails> {
    if text.trim().is_empty() {
        return Err(ProblemDetails::invalid_param(param, "must not be empty"));
    }
    let n = text.chars().count();
    if n > MAX_PROMPT_CHARS {
        return Err(ProblemDetails::invalid_param(
            param,
            format!("{n} characters, at most {MAX_PROMPT_CHARS} are accepted"),
        ));
    }
    Ok(())
}

fn check_supi(param: &str, supi: &str) -> Result<(), ProblemDetails> {
    if netgpt_sbi::config::is_imsi_supi(supi) {
        Ok(())
    } else {
        Err(ProblemDetails::invalid_param(
            param,
            format!("'{supi}' is not an imsi-<5..15 digits> SUPI"),
        ))
    }
}

/// A peer's failure as this function's answer: its own 4xx/5xx where it sent one, 504 on a
/// timeout, 503 when unreachable.
fn upstream(peer: &str, e: ClientError) -> ProblemDetails {
    match e {
        ClientError::Status { problem, .. } if problem.status == 503 => ProblemDetails::new(
            StatusCode::SERVICE_UNAVAILABLE,
            problem
                .cause
                .clone()
                .unwrap_or_else(|| "NF_CONGESTION".into()),
            format!("{peer}: {}", problem.detail.clone().unwrap_or_default()),
        )
        .with_retry_after(1),
        ClientError::Timeout { .. } => ProblemDetails::new(
            StatusCode::GATEWAY_TIMEOUT,
            "TIMED_OUT_REQUEST",
            format!("{peer}: {e}"),
        ),
        other => ProblemDetails::new(
            StatusCode::BAD_GATEWAY,
            "UPSTREAM_FAILURE",
            format!("{peer}: {other}"),
        ),
    }
}

// ------------------------------------------------------------------------- desensitize

/// Desensitises a prompt; the restore map stays here, under the returned `restoreId`.
pub fn desensitize(
    ctx: &EdgeAiContext,
    req: &DesensitizeRequest,
) -> Result<DesensitizeResponse, ProblemDetails> {
    check_prompt("prompt", &req.prompt)?;
    let d = pii::desensitize(&req.prompt);
    let counts = pii::counts(&d.findings);
    count_pii(ctx, &counts);
    let restore_id = (!d.findings.is_empty()).then(|| ctx.keep_restore(d.restore.clone()));
    Ok(DesensitizeResponse {
        prompt: d.text,
        findings: d.findings,
        counts,
        restore_id,
    })
}

fn count_pii(ctx: &EdgeAiContext, counts: &BTreeMap<pii::PiiKind, usize>) {
    for (kind, n) in counts {
        metrics::counter!("edgeai_pii_findings_total", "nf" => ctx.name.clone(), "kind" => kind.as_str())
            .increment(*n as u64);
    }
}

/// Puts the values of a kept restore map back into `text`.
pub fn restore(
    ctx: &EdgeAiContext,
    req: &RestoreRequest,
) -> Result<RestoreResponse, ProblemDetails> {
    let map = ctx.restore_map(&req.restore_id).ok_or_else(|| {
        ProblemDetails::not_found(
            "RESOURCE_NOT_FOUND",
            format!(
                "no restore map '{}' (unknown, or older than {} s)",
                req.restore_id,
                crate::context::RESTORE_TTL.as_secs()
            ),
        )
    })?;
    Ok(RestoreResponse {
        text: pii::restore(&req.text, &map),
    })
}

// ------------------------------------------------------------------------------- dedup

/// Checks a prompt against the site's window.
pub fn dedup(ctx: &EdgeAiContext, req: &DedupRequest) -> Result<DedupResponse, ProblemDetails> {
    check_prompt("prompt", &req.prompt)?;
    let v = ctx.window.check(&ctx.site, &req.prompt);
    count_duplicate(ctx, v.kind);
    Ok(DedupResponse {
        prompt: v.canonical,
        duplicate: v.kind,
        similarity: v.similarity,
        seen_count: v.seen_count,
        key: v.key,
    })
}

fn count_duplicate(ctx: &EdgeAiContext, kind: DuplicateKind) {
    ctx.stats.record_duplicate(kind);
    let label = match kind {
        DuplicateKind::Unique => "unique",
        DuplicateKind::Exact => "exact",
        DuplicateKind::Normalized => "normalized",
        DuplicateKind::Near => "near",
    };
    metrics::counter!("edgeai_duplicates_total", "nf" => ctx.name.clone(), "kind" => label)
        .increment(1);
}

// ---------------------------------------------------------------------------- complete

/// Where the UE is: its serving cell, which must be one of this site's.
/// The NR Cell Identity of a ProvideLocationInfo answer, if it carries an NR location.
fn serving_cell_id(loc: &ProvideLocInfo) -> Option<String> {
    loc.location
        .as_ref()
        .and_then(|l| l.nr_location.as_ref())
        .map(|n| n.ncgi.nr_cell_id.clone())
}

fn cell_of(
    ctx: &EdgeAiContext,
    loc: &ProvideLocInfo,
    param: &str,
) -> Result<CellRef, ProblemDetails> {
    let id = serving_cell_id(loc).ok_or_else(|| {
        ProblemDetails::invalid_param(param, "carries no NR location (location.nrLocation.ncgi)")
    })?;
    let cell = ctx.cell(&id).ok_or_else(|| {
        ProblemDetails::invalid_param(param, format!("cell {id} is not a cell of the testbed"))
    })?;
    if cell.site != ctx.site {
        return Err(ProblemDetails::invalid_param(
            param,
            format!(
                "cell {id} is served by {}, not by this edge function ({})",
                cell.site, ctx.site
            ),
        ));
    }
    Ok(CellRef {
        nr_cell_id: cell.nr_cell_id.clone(),
        name: cell.name.clone(),
    })
}

/// Asks the AMF where `supi` is (Namf_Location ProvideLocationInfo).
pub async fn locate(ctx: &EdgeAiContext, supi: &str) -> Result<ProvideLocInfo, ProblemDetails> {
    let q = DiscoveryQuery::new("AMF", "EDGEAI").service("namf-loc");
    let root = ctx
        .nrf
        .api_root_of(&q, "namf-loc")
        .await
        .map_err(|e| upstream("AMF discovery", e))?;
    let body = RequestLocInfo {
        req5gs_loc: true,
        req_current_loc: true,
        req_rat_type: false,
        req_time_zone: true,
        supported_features: None,
    };
    ctx.client
        .post(format!("{root}/namf-loc/v1/{supi}/provide-loc-info"))
        .service("namf-loc")
        .operation("ProvideLocationInfo")
        .target_nf_type("AMF")
        .deadline(PEER_DEADLINE)
        .json(&body)
        .send_json()
        .await
        .map_err(|e| match e.status().map(|s| s.as_u16()) {
            Some(404) => ProblemDetails::not_found(
                "USER_NOT_FOUND",
                format!("UE '{supi}' is not registered in the AMF"),
            ),
            _ => upstream("AMF", e),
        })
}

/// The comprehensive prompt: what the edge model wrote for the site, the UE's cell, the
/// user's preferences when a profile exists, and the user's own (desensitised) words — the
/// small edge model maps a request it has not seen onto the nearest category it knows, and
/// the cloud must still see what was asked.
fn compose(
    model_text: &str,
    concise: &str,
    cell: Option<&CellRef>,
    profile: Option<&UserProfile>,
) -> String {
    let mut out = model_text.trim().to_owned();
    if let Some(c) = cell {
        out.push_str(&format!(" I am at {} right now.", c.name));
    }
    if let Some(p) = profile {
        if !p.preferences.is_empty() {
            out.push_str(&format!(" My preferences: {}.", p.preferences.join(", ")));
        }
        if let Some(l) = &p.language {
            out.push_str(&format!(" Please answer in {l}."));
        }
    }
    let asked = concise.trim();
    if !asked.is_empty() && !dedup::normalize(&out).contains(&dedup::normalize(asked)) {
        out.push_str(&format!(" My request: {asked}"));
    }
    out
}

fn key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

/// The edge model's completion of `concise` for this site, shared with concurrent identical
/// requests and batched with other requests'. Returns it and whether it was shared.
async fn completion(
    ctx: &EdgeAiContext,
    concise: &str,
) -> Result<(SharedCompletion, bool), ProblemDetails> {
    let k = key(&["complete", &ctx.site, &dedup::normalize(concise)]);
    let (r, coalesced) = ctx
        .completions
        .run(&k, || async {
            let start = Instant::now();
            ctx.batcher
                .complete(&ctx.site, concise, ctx.adapter.as_deref())
                .await
                .map(|c| SharedCompletion {
                    text: c.text,
                    batch_size: c.batch_size,
                    ms: start.elapsed().as_secs_f64() * 1e3,
                })
                .map_err(|e| match e {
                    crate::batcher::BatchError::Invalid(m) => {
                        ProblemDetails::invalid_param("prompt", m)
                    }
                    crate::batcher::BatchError::Failed(m) => ProblemDetails::internal(m),
                })
        })
        .await;
    if coalesced {
        metrics::counter!("edgeai_coalesced_total", "nf" => ctx.name.clone(), "stage" => "completion").increment(1);
    }
    Ok((r?, coalesced))
}

async fn user_profile(
    ctx: &EdgeAiContext,
    supi: Option<&str>,
) -> Result<Option<UserProfile>, ProblemDetails> {
    match supi {
        None => Ok(None),
        Some(s) => ctx
            .profiles
            .get(s)
            .await
            .map_err(|e| ProblemDetails::internal(e.to_string())),
    }
}

/// Completes a concise prompt into a comprehensive one for this site.
pub async fn complete(
    ctx: &EdgeAiContext,
    req: &CompleteRequest,
) -> Result<CompleteResponse, ProblemDetails> {
    check_prompt("prompt", &req.prompt)?;
    if let Some(s) = &req.supi {
        check_supi("supi", s)?;
    }
    let location = match (&req.location, &req.supi) {
        (Some(l), _) => Some(l.clone()),
        (None, Some(s)) => Some(locate(ctx, s).await?),
        (None, None) => None,
    };
    let cell = location
        .as_ref()
        .map(|l| cell_of(ctx, l, "location"))
        .transpose()?;
    let profile = user_profile(ctx, req.supi.as_deref()).await?;
    let (c, coalesced) = completion(ctx, &req.prompt).await?;
    Ok(CompleteResponse {
        prompt: compose(&c.text, &req.prompt, cell.as_ref(), profile.as_ref()),
        concise: req.prompt.clone(),
        site: ctx.site.clone(),
        cell,
        user_profile_applied: profile.as_ref().is_some_and(UserProfile::applies),
        batch_size: c.batch_size,
        coalesced,
        completion_ms: c.ms,
    })
}

// ------------------------------------------------------------------------------ policy

/// The locality of the cloud AI function (the default destination of a prompt).
async fn cloud_locality(ctx: &EdgeAiContext) -> Result<(String, String), ProblemDetails> {
    let q = DiscoveryQuery::new("CLOUDAI", "EDGEAI").service("ncloudai-gen");
    let found = ctx
        .nrf
        .discover(&q)
        .await
        .map_err(|e| upstream("cloud AI function discovery", e))?;
    found
        .nf_instances
        .iter()
        .find_map(|p| {
            let root = p.service("ncloudai-gen").and_then(|s| s.api_root())?;
            Some((root, p.locality.clone().unwrap_or_else(|| "cloud".into())))
        })
        .ok_or_else(|| {
            ProblemDetails::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "NF_NOT_FOUND",
                "no cloud AI function (CLOUDAI, ncloudai-gen) is registered in the NRF",
            )
        })
}

/// ISO 3166-1 alpha-2 code of a site profile's country (policy rules name countries so);
/// other names pass unchanged.
fn iso_country(name: &str) -> &str {
    match name {
        "China" => "CN",
        "United Kingdom" => "GB",
        "France" => "FR",
        "United States" => "US",
        other => other,
    }
}

/// Checks a prompt against the data policy for `destination`: Ok when allowed, else a 403
/// `POLICY_DENIED` naming every rule that matched.
pub fn check_policy(
    ctx: &EdgeAiContext,
    prompt: &str,
    destination: &str,
) -> Result<PolicyResponse, ProblemDetails> {
    let v = policy::evaluate(
        &ctx.policy,
        &policy::PolicyRequest {
            prompt,
            site: &ctx.site,
            country: Some(iso_country(&ctx.profile.country)),
            destination,
        },
    );
    let label = match v.decision {
        PolicyDecision::Allow => "allow",
        PolicyDecision::Deny => "deny",
    };
    metrics::counter!("edgeai_policy_decisions_total", "nf" => ctx.name.clone(), "decision" => label).increment(1);
    match v.decision {
        PolicyDecision::Allow => Ok(PolicyResponse {
            decision: v.decision,
            reason: v.reason,
            hits: v.hits,
            prompt: prompt.to_owned(),
            destination: destination.to_owned(),
        }),
        PolicyDecision::Deny => {
            let mut p = ProblemDetails::new(StatusCode::FORBIDDEN, "POLICY_DENIED", v.reason);
            for h in v.hits {
                p = p.with_invalid_param("prompt", format!("rule '{}': {}", h.rule, h.reason));
            }
            Err(p)
        }
    }
}

/// The policy operation.
pub async fn policy_op(
    ctx: &EdgeAiContext,
    req: &PolicyRequest,
) -> Result<PolicyResponse, ProblemDetails> {
    check_prompt("prompt", &req.prompt)?;
    if let Some(l) = &req.location {
        cell_of(ctx, l, "location")?;
    }
    let destination = match &req.destination {
        Some(d) if d.trim().is_empty() => {
            return Err(ProblemDetails::invalid_param(
                "destination",
                "must not be empty",
            ))
        }
        Some(d) => d.clone(),
        None => cloud_locality(ctx).await?.1,
    };
    check_policy(ctx, &req.prompt, &destination)
}

// ------------------------------------------------------------------------------ answer

fn cache_key(ctx: &EdgeAiContext, comprehensive: &str) -> String {
    key(&["answer", &ctx.site, &dedup::normalize(comprehensive)])
}

/// The edge's own answer, when the configured rules allow one.
pub fn answer_at_edge(
    ctx: &EdgeAiContext,
    comprehensive: &str,
    concise: Option<&str>,
) -> Option<(String, AnsweredBy)> {
    use netgpt_sbi::config::EdgeAnswerMode as M;
    let mode = ctx.settings.edge_answer;
    if mode == M::Off {
        return None;
    }
    if mode == M::CacheDirectory {
        if let Some(text) = concise
            .and_then(|c| directory::lookup_category(c, &ctx.profile))
            .and_then(|cat| directory::answer(cat, &ctx.profile))
        {
            return Some((text, AnsweredBy::EdgeDirectory));
        }
    }
    let hit = ctx.cache.get(&cache_key(ctx, comprehensive));
    if hit.is_some() {
        ctx.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
    } else {
        ctx.stats.cache_misses.fetch_add(1, Ordering::Relaxed);
    }
    metrics::counter!("edgeai_cache_lookups_total", "nf" => ctx.name.clone(), "result" => if hit.is_some() { "hit" } else { "miss" })
        .increment(1);
    hit.map(|t| (t, AnsweredBy::EdgeCache))
}

/// The answer operation.
pub fn answer(ctx: &EdgeAiContext, req: &AnswerRequest) -> Result<AnswerResponse, ProblemDetails> {
    check_prompt("prompt", &req.prompt)?;
    let found = answer_at_edge(ctx, &req.prompt, req.concise.as_deref());
    if let Some((_, by)) = &found {
        count_answer(ctx, *by);
    }
    Ok(match found {
        Some((text, by)) => AnswerResponse {
            answered_at_edge: true,
            text: Some(text),
            answered_by: Some(by),
        },
        None => AnswerResponse {
            answered_at_edge: false,
            text: None,
            answered_by: None,
        },
    })
}

fn count_answer(ctx: &EdgeAiContext, by: AnsweredBy) {
    let label = match by {
        AnsweredBy::EdgeCache => "edge_cache",
        AnsweredBy::EdgeDirectory => "edge_directory",
        AnsweredBy::Cloud => "cloud",
    };
    metrics::counter!("edgeai_answers_total", "nf" => ctx.name.clone(), "answered_by" => label)
        .increment(1);
}

// ------------------------------------------------------------------------------- cloud

/// The cloud's answer to a comprehensive prompt: concurrent identical prompts of this site
/// share one call; the answer is cached. Returns it and whether it was shared.
async fn ask_cloud(
    ctx: &EdgeAiContext,
    root: &str,
    comprehensive: &str,
    max_tokens: usize,
) -> Result<(String, bool), ProblemDetails> {
    let k = cache_key(ctx, comprehensive);
    let (r, coalesced) = ctx
        .cloud_calls
        .run(&k, || async {
            // A follower that arrives after the leader finished finds the answer cached.
            if let Some(t) = ctx.cache.get(&k) {
                return Ok::<_, ProblemDetails>(t);
            }
            ctx.stats.upstream_calls.fetch_add(1, Ordering::Relaxed);
            let body = json!({ "prompt": comprehensive, "maxTokens": max_tokens });
            let r: Result<serde_json::Value, _> = ctx
                .client
                .post(format!("{root}/ncloudai-gen/v1/generate"))
                .service("ncloudai-gen")
                .operation("Generate")
                .target_nf_type("CLOUDAI")
                .deadline(CLOUD_DEADLINE)
                .json(&body)
                .send_json()
                .await;
            let outcome = if r.is_ok() { "ok" } else { "error" };
            metrics::counter!("edgeai_upstream_calls_total", "nf" => ctx.name.clone(), "outcome" => outcome).increment(1);
            let v = r.map_err(|e| upstream("cloud AI function", e))?;
            let text = v["text"].as_str().unwrap_or_default().to_owned();
            ctx.cache.insert(k.clone(), text.clone());
            metrics::gauge!("edgeai_cached_answers", "nf" => ctx.name.clone()).set(ctx.cache.len() as f64);
            Ok(text)
        })
        .await;
    if coalesced {
        ctx.stats.coalesced.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("edgeai_coalesced_total", "nf" => ctx.name.clone(), "stage" => "cloud")
            .increment(1);
    }
    Ok((r?, coalesced))
}

// -------------------------------------------------------------------------- the chain

/// The whole chain for a UE's concise prompt (see the module doc). `forwarded` is set when
/// another site's edge function sent the request here.
pub async fn ue_prompt(
    ctx: &EdgeAiContext,
    req: &UePromptRequest,
    forwarded: bool,
) -> Result<UePromptResponse, ProblemDetails> {
    let start = Instant::now();
    check_supi("supi", &req.supi)?;
    check_prompt("prompt", &req.prompt)?;
    let limit = ctx.config.limits.max_prompt_chars;
    let n = req.prompt.chars().count();
    if n > limit {
        return Err(ProblemDetails::invalid_param(
            "prompt",
            format!("{n} characters, a UE may send at most {limit} ([limits] max_prompt_chars)"),
        ));
    }
    // A request forwarded after a handover was counted at the site the UE asked.
    if !forwarded {
        ctx.ue_rate.admit(&req.supi, "UE")?;
    }
    let max_tokens = req.max_tokens.unwrap_or(ctx.settings.cloud_max_tokens);
    if max_tokens == 0 || max_tokens > 4096 {
        return Err(ProblemDetails::invalid_param(
            "maxTokens",
            "must be between 1 and 4096",
        ));
    }
    let loc = locate(ctx, &req.supi).await?;
    let location_ms = start.elapsed().as_secs_f64() * 1e3;
    let cell_id = serving_cell_id(&loc).unwrap_or_default();
    let serving_site = ctx.cell(&cell_id).map(|c| c.site.clone());
    match serving_site {
        Some(s) if s != ctx.site => {
            if forwarded {
                return Err(ProblemDetails::new(
                    StatusCode::CONFLICT,
                    "UE_MOVED",
                    format!(
                        "UE '{}' moved to {s} while its request was forwarded here",
                        req.supi
                    ),
                ));
            }
            return forward(ctx, &s, req).await;
        }
        Some(_) => {}
        None => {
            return Err(ProblemDetails::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "SYSTEM_FAILURE",
                format!(
                    "the AMF placed UE '{}' in cell '{cell_id}', which no site serves",
                    req.supi
                ),
            ))
        }
    }
    let cell = cell_of(ctx, &loc, "supi")?;

    // Personal data never leaves the edge: everything after this uses the placeholders.
    let d = pii::desensitize(&req.prompt);
    let pii_counts = pii::counts(&d.findings);
    count_pii(ctx, &pii_counts);
    let v = ctx.window.check(&ctx.site, &d.text);
    count_duplicate(ctx, v.kind);
    let concise = v.canonical.clone();

    let profile = user_profile(ctx, Some(&req.supi)).await?;
    let t = Instant::now();
    let (c, coalesced_completion) = completion(ctx, &concise).await?;
    let complete_ms = t.elapsed().as_secs_f64() * 1e3;
    let comprehensive = compose(&c.text, &concise, Some(&cell), profile.as_ref());

    let (root, destination) = cloud_locality(ctx).await?;
    check_policy(ctx, &comprehensive, &destination)?;

    let (answer, by, coalesced_cloud, cloud_ms) =
        match answer_at_edge(ctx, &comprehensive, Some(&concise)) {
            Some((text, by)) => (text, by, false, 0.0),
            None => {
                let t = Instant::now();
                let (text, coalesced) = ask_cloud(ctx, &root, &comprehensive, max_tokens).await?;
                (
                    text,
                    AnsweredBy::Cloud,
                    coalesced,
                    t.elapsed().as_secs_f64() * 1e3,
                )
            }
        };
    count_answer(ctx, by);
    Ok(UePromptResponse {
        answer: pii::restore(&answer, &d.restore),
        answered_by: by,
        served_by: ctx.site.clone(),
        cell,
        concise_prompt: d.text,
        comprehensive_prompt: comprehensive,
        pii: pii_counts,
        duplicate: v.kind,
        coalesced: coalesced_completion || coalesced_cloud,
        user_profile_applied: profile.as_ref().is_some_and(UserProfile::applies),
        timings: StageTimes {
            location_ms,
            complete_ms,
            cloud_ms,
            total_ms: start.elapsed().as_secs_f64() * 1e3,
        },
    })
}

/// Sends the chain request to the edge function of `site` (the UE's serving site).
async fn forward(
    ctx: &EdgeAiContext,
    site: &str,
    req: &UePromptRequest,
) -> Result<UePromptResponse, ProblemDetails> {
    let q = DiscoveryQuery::new("EDGEAI", "EDGEAI")
        .service(SERVICE_PROMPT)
        .locality(site);
    let found = ctx
        .nrf
        .discover(&q)
        .await
        .map_err(|e| upstream("edge AI function discovery", e))?;
    let root = found
        .nf_instances
        .iter()
        .filter(|p| p.locality.as_deref() == Some(site))
        .find_map(|p| p.service(SERVICE_PROMPT).and_then(|s| s.api_root()))
        .ok_or_else(|| {
            ProblemDetails::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "NF_NOT_FOUND",
                format!("the UE is at {site}, whose edge AI function is not registered in the NRF"),
            )
        })?;
    metrics::counter!("edgeai_forwarded_total", "nf" => ctx.name.clone()).increment(1);
    // The UE's preferences move with it (a context transfer on handover): the serving
    // site's function gets this site's profile unless it already has one of its own.
    if let Some(profile) = user_profile(ctx, Some(&req.supi)).await? {
        let url = format!("{root}/{SERVICE_PROMPT}/v1/user-profiles/{}", req.supi);
        let theirs = ctx
            .client
            .get(&url)
            .service(SERVICE_PROMPT)
            .operation("UserProfileGet")
            .target_nf_type("EDGEAI")
            .deadline(PEER_DEADLINE)
            .send()
            .await;
        if matches!(&theirs, Err(e) if e.status().map(|s| s.as_u16()) == Some(404)) {
            ctx.client
                .put(&url)
                .service(SERVICE_PROMPT)
                .operation("UserProfilePut")
                .target_nf_type("EDGEAI")
                .deadline(PEER_DEADLINE)
                .json(&profile)
                .send()
                .await
                .map_err(|e| upstream(&format!("edge AI function of {site}"), e))?;
        }
    }
    ctx.client
        .post(format!("{root}/{SERVICE_PROMPT}/v1/ue-prompts"))
        .service(SERVICE_PROMPT)
        .operation("UePrompt")
        .target_nf_type("EDGEAI")
        .header(FORWARDED_HEADER, &ctx.site)
        .deadline(CLOUD_DEADLINE)
        .retries(0)
        .json(req)
        .send_json()
        .await
        .map_err(|e| match e {
            ClientError::Status { problem, .. } => problem,
            other => upstream(&format!("edge AI function of {site}"), other),
        })
}

// ---------------------------------------------------------------------- user profiles

/// Stores a user profile; `true` when it is new.
pub async fn put_profile(
    ctx: &EdgeAiContext,
    supi: &str,
    p: &UserProfile,
) -> Result<bool, ProblemDetails> {
    check_supi("supi", supi)?;
    if p.preferences.len() > 16 {
        return Err(ProblemDetails::invalid_param(
            "preferences",
            "at most 16 preferences",
        ));
    }
    if let Some(i) = p
        .preferences
        .iter()
        .position(|s| s.trim().is_empty() || s.chars().count() > 80)
    {
        return Err(ProblemDetails::invalid_param(
            &format!("preferences[{i}]"),
            "must be 1 to 80 characters",
        ));
    }
    if let Some(l) = &p.language {
        let ok =
            (2..=35).contains(&l.len()) && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok {
            return Err(ProblemDetails::invalid_param(
                "language",
                "must be a BCP 47 tag such as 'en' or 'fr-FR'",
            ));
        }
    }
    // Preferences reach the cloud inside comprehensive prompts: no personal data in them.
    if let Some(f) = p
        .preferences
        .iter()
        .find(|s| !pii::desensitize(s).findings.is_empty())
    {
        return Err(ProblemDetails::invalid_param(
            "preferences",
            format!(
                "'{}' holds personal data; preferences may not",
                pii::desensitize(f).text
            ),
        ));
    }
    ctx.profiles
        .put(supi, p)
        .await
        .map_err(|e| ProblemDetails::internal(e.to_string()))
}

/// The stored profile of `supi`.
pub async fn get_profile(ctx: &EdgeAiContext, supi: &str) -> Result<UserProfile, ProblemDetails> {
    check_supi("supi", supi)?;
    ctx.profiles
        .get(supi)
        .await
        .map_err(|e| ProblemDetails::internal(e.to_string()))?
        .ok_or_else(|| {
            ProblemDetails::not_found(
                "RESOURCE_NOT_FOUND",
                format!("no profile for '{supi}' at this site"),
            )
        })
}

/// Deletes the profile of `supi`.
pub async fn delete_profile(ctx: &EdgeAiContext, supi: &str) -> Result<(), ProblemDetails> {
    check_supi("supi", supi)?;
    match ctx.profiles.delete(supi).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(ProblemDetails::not_found(
            "RESOURCE_NOT_FOUND",
            format!("no profile for '{supi}' at this site"),
        )),
        Err(e) => Err(ProblemDetails::internal(e.to_string())),
    }
}

/// The function's status.
pub fn status(ctx: &EdgeAiContext) -> EdgeStatus {
    EdgeStatus {
        site: ctx.site.clone(),
        cells: ctx
            .cells
            .iter()
            .map(|c| CellRef {
                nr_cell_id: c.nr_cell_id.clone(),
                name: c.name.clone(),
            })
            .collect(),
        model_parameters: ctx
            .model
            .model()
            .config()
            .tensor_shapes()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum(),
        adapters: ctx.model.adapters().names(),
        max_batch: ctx.batcher.max_batch(),
        stats: ctx.stats.snapshot(),
        cached_answers: ctx.cache.len(),
        policy_rules: ctx.policy.rules.len(),
    }
}
