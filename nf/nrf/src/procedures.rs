//! The NRF procedures of TS 29.510, one function per service operation, no HTTP in them:
//! each takes the [`NrfContext`] and the decoded request and returns the result or a
//! ProblemDetails. A refused request never changes what is stored.
//!
//! | operation (TS 29.510) | function |
//! | --- | --- |
//! | NFRegister (§5.2.2.2) | [`nf_register`] |
//! | NFUpdate (§5.2.2.3), heartbeat included | [`nf_update`] |
//! | NFDeregister (§5.2.2.4) | [`nf_deregister`] |
//! | NFProfileRetrieval (§5.2.2.5) | [`nf_profile_retrieval`] |
//! | NFListRetrieval (§5.2.2.6) | [`nf_list_retrieval`] |
//! | NFDiscover (§5.3.2.2) | [`nf_discover`] |
//! | heartbeat expiry (§5.2.2.3.2) | [`heartbeat_expiry`] |

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use axum::http::StatusCode;
use netgpt_sbi::extract::parse_json;
use netgpt_sbi::models::nnrf::{
    NfProfile, NfService, NfStatus, NfType, PatchItem, PatchOperation, SearchResult, UriList,
};
use netgpt_sbi::{InvalidParam, ProblemDetails};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::context::{
    now_ms, NrfContext, NrfOptions, DEREGISTRATIONS_TOTAL, DISCOVERIES_TOTAL,
    HEARTBEAT_EXPIRIES_TOTAL, REGISTRATIONS_TOTAL,
};
use crate::store::StoreError;

/// Attributes a heartbeat-like NFUpdate may touch and still be answered `204 No Content`.
pub const HEARTBEAT_PATHS: &[&str] = &["/nfStatus", "/load", "/loadTimeStamp"];

/// How many times [`nf_update`] retries when a concurrent write moved the profile.
const UPDATE_ATTEMPTS: usize = 5;

/// The result of [`nf_register`].
#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    /// The profile as stored (with the `heartBeatTimer` the NRF accepted).
    pub profile: NfProfile,
    /// `true` for a new registration (201), `false` for a replacement (200).
    pub created: bool,
}

/// The result of [`nf_update`].
#[derive(Debug, Clone, PartialEq)]
pub struct Updated {
    /// The profile as stored after the patch.
    pub profile: NfProfile,
    /// The patch only touched [`HEARTBEAT_PATHS`]: answer `204 No Content`.
    pub heartbeat_only: bool,
}

/// NFDiscover query parameters (TS 29.510 §6.2.3.2.3.1) this NRF evaluates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiscoverQuery {
    /// `target-nf-type` (mandatory).
    pub target_nf_type: NfType,
    /// `requester-nf-type` (mandatory); checked against a profile's `allowedNfTypes`.
    pub requester_nf_type: NfType,
    /// `service-names`: a profile matches when it offers any of them; only those
    /// services are returned.
    pub service_names: Vec<String>,
    /// `target-nf-instance-id`.
    pub target_nf_instance_id: Option<Uuid>,
    /// `preferred-locality`: profiles of that locality come first.
    pub preferred_locality: Option<String>,
    /// `limit`: at most this many profiles.
    pub limit: Option<u32>,
}

fn store_failure(e: StoreError) -> ProblemDetails {
    tracing::error!("{e}");
    ProblemDetails::internal("the NRF could not read or write its profile store")
}

fn not_found(id: Uuid) -> ProblemDetails {
    ProblemDetails::not_found(
        "CONTEXT_NOT_FOUND",
        format!("no NF instance {id} is registered"),
    )
}

/// 400 naming every offending attribute: `MANDATORY_IE_MISSING` when one is missing,
/// otherwise `MANDATORY_IE_INCORRECT`.
fn invalid(params: Vec<InvalidParam>) -> ProblemDetails {
    let missing = params.iter().any(|p| {
        p.reason
            .as_deref()
            .is_some_and(|r| r.starts_with("missing"))
    });
    let detail = params
        .iter()
        .map(|p| format!("{}: {}", p.param, p.reason.as_deref().unwrap_or("invalid")))
        .collect::<Vec<_>>()
        .join("; ");
    let cause = if missing {
        "MANDATORY_IE_MISSING"
    } else {
        "MANDATORY_IE_INCORRECT"
    };
    let mut problem = ProblemDetails::bad_request(cause, detail);
    problem.invalid_params = params;
    problem
}

fn param(param: impl Into<String>, reason: impl Into<String>) -> InvalidParam {
    InvalidParam {
        param: param.into(),
        reason: Some(reason.into()),
    }
}

/// The `nfInstanceID` path parameter as a UUID (400 naming it otherwise).
pub fn parse_instance_id(raw: &str) -> Result<Uuid, ProblemDetails> {
    Uuid::parse_str(raw).map_err(|e| {
        ProblemDetails::invalid_param("nfInstanceID", format!("'{raw}' is not a UUID ({e})"))
    })
}

/// Whether `s` is a fully qualified domain name as TS 29.571 `Fqdn` has it.
pub fn is_fqdn(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    let labels: Vec<&str> = s.split('.').collect();
    let tld = labels.last().copied().unwrap_or("");
    labels.len() >= 2
        && (4..=253).contains(&s.len())
        && (2..=63).contains(&tld.len())
        && tld.chars().all(|c| c.is_ascii_alphabetic())
        && labels.iter().all(|l| is_label(l))
}

fn is_label(l: &str) -> bool {
    (1..=63).contains(&l.len())
        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

/// What the NRF accepts as `fqdn`: a TS 29.571 FQDN, or a single-label host name
/// (`amf`: a docker-compose or Kubernetes service name) so containerised NFs can
/// register by name. Such a profile is not valid against the 3GPP `Fqdn` pattern.
pub fn is_host_name(s: &str) -> bool {
    is_fqdn(s) || (is_label(s) && !s.chars().all(|c| c.is_ascii_digit()))
}

fn check_service(at: &str, s: &NfService, out: &mut Vec<InvalidParam>) {
    if s.service_instance_id.is_empty() {
        out.push(param(
            format!("{at}.serviceInstanceId"),
            "must not be empty",
        ));
    }
    if s.service_name.is_empty() {
        out.push(param(format!("{at}.serviceName"), "must not be empty"));
    }
    if s.versions.is_empty() {
        out.push(param(
            format!("{at}.versions"),
            "at least one version is required",
        ));
    }
    for (i, v) in s.versions.iter().enumerate() {
        if v.api_version_in_uri.is_empty() || v.api_full_version.is_empty() {
            out.push(param(
                format!("{at}.versions[{i}]"),
                "apiVersionInUri and apiFullVersion must not be empty",
            ));
        }
    }
    if s.scheme != "http" && s.scheme != "https" {
        out.push(param(
            format!("{at}.scheme"),
            format!("'{}' is not http or https", s.scheme),
        ));
    }
    if s.load.is_some_and(|l| l > 100) {
        out.push(param(format!("{at}.load"), "must be within 0..=100"));
    }
    if let Some(f) = s.fqdn.as_deref().filter(|f| !is_host_name(f)) {
        out.push(param(
            format!("{at}.fqdn"),
            format!("'{f}' is not an FQDN or host name"),
        ));
    }
    match &s.ip_end_points {
        Some(eps) if eps.is_empty() => out.push(param(
            format!("{at}.ipEndPoints"),
            "must not be an empty list",
        )),
        Some(eps) => {
            for (i, ep) in eps.iter().enumerate() {
                if ep.ipv4_address.is_some() && ep.ipv6_address.is_some() {
                    out.push(param(
                        format!("{at}.ipEndPoints[{i}]"),
                        "ipv4Address and ipv6Address are exclusive",
                    ));
                }
                if let Some(v6) = ep
                    .ipv6_address
                    .as_deref()
                    .filter(|a| a.parse::<Ipv6Addr>().is_err())
                {
                    out.push(param(
                        format!("{at}.ipEndPoints[{i}].ipv6Address"),
                        format!("'{v6}' is not an IPv6 address"),
                    ));
                }
            }
        }
        None => {}
    }
}

/// Every reason `p` is not an acceptable NFProfile (empty when it is).
pub fn check_profile(p: &NfProfile) -> Vec<InvalidParam> {
    let mut out = Vec::new();
    if !p.nf_type.is_well_formed() {
        out.push(param(
            "nfType",
            format!(
                "'{}' is not an NF type (A-Z, 0-9, _; at most 64)",
                p.nf_type
            ),
        ));
    }
    if p.heart_beat_timer == Some(0) {
        out.push(param("heartBeatTimer", "must be at least 1 second"));
    }
    if p.fqdn.is_none() && p.ipv4_addresses.is_none() && p.ipv6_addresses.is_none() {
        out.push(param(
            "fqdn",
            "missing: one of fqdn, ipv4Addresses or ipv6Addresses is required",
        ));
    }
    if let Some(f) = p.fqdn.as_deref().filter(|f| !is_host_name(f)) {
        out.push(param("fqdn", format!("'{f}' is not an FQDN or host name")));
    }
    if p.ipv4_addresses.as_ref().is_some_and(Vec::is_empty) {
        out.push(param("ipv4Addresses", "must not be an empty list"));
    }
    match &p.ipv6_addresses {
        Some(v) if v.is_empty() => out.push(param("ipv6Addresses", "must not be an empty list")),
        Some(v) => {
            for (i, a) in v.iter().enumerate() {
                if a.parse::<Ipv6Addr>().is_err() {
                    out.push(param(
                        format!("ipv6Addresses[{i}]"),
                        format!("'{a}' is not an IPv6 address"),
                    ));
                }
            }
        }
        None => {}
    }
    match &p.plmn_list {
        Some(v) if v.is_empty() => out.push(param("plmnList", "must not be an empty list")),
        Some(v) => {
            for (i, plmn) in v.iter().enumerate() {
                if !plmn.is_valid() {
                    out.push(param(
                        format!("plmnList[{i}]"),
                        "mcc must be 3 digits and mnc 2 or 3 digits",
                    ));
                }
            }
        }
        None => {}
    }
    if p.load.is_some_and(|l| l > 100) {
        out.push(param("load", "must be within 0..=100"));
    }
    if p.custom_info.as_ref().is_some_and(|c| !c.is_object()) {
        out.push(param("customInfo", "must be a JSON object"));
    }
    match &p.nf_services {
        Some(v) if v.is_empty() => out.push(param("nfServices", "must not be an empty list")),
        Some(v) => {
            for (i, s) in v.iter().enumerate() {
                check_service(&format!("nfServices[{i}]"), s, &mut out);
            }
        }
        None => {}
    }
    match &p.nf_service_list {
        Some(m) if m.is_empty() => out.push(param("nfServiceList", "must not be an empty map")),
        Some(m) => {
            for (key, s) in m {
                let at = format!("nfServiceList.{key}");
                if *key != s.service_instance_id {
                    out.push(param(
                        format!("{at}.serviceInstanceId"),
                        "must equal the map key",
                    ));
                }
                check_service(&at, s, &mut out);
            }
        }
        None => {}
    }
    out
}

/// Gives a profile without `heartBeatTimer` the default and lowers one above the
/// maximum to it (TS 29.510 lets the NRF choose the value it accepts).
pub fn accept_heart_beat_timer(options: &NrfOptions, p: &mut NfProfile) {
    let hb = p
        .heart_beat_timer
        .unwrap_or(options.default_heart_beat_timer);
    p.heart_beat_timer = Some(hb.clamp(1, options.max_heart_beat_timer.max(1)));
}

fn deadline(ctx: &NrfContext, p: &NfProfile) -> i64 {
    let hb = p
        .heart_beat_timer
        .unwrap_or(ctx.options.default_heart_beat_timer);
    now_ms() + ctx.options.expiry_after_ms(hb)
}

async fn refresh_gauges(ctx: &NrfContext) {
    if let Err(e) = ctx.refresh_gauges().await {
        tracing::warn!("cannot refresh NRF gauges: {e}");
    }
}

/// NFRegister: creates or replaces the profile of `path_id`. The body's `nfInstanceId`
/// must equal the path's; the profile is checked ([`check_profile`]) and its
/// `heartBeatTimer` accepted ([`accept_heart_beat_timer`]) before anything is stored.
#[tracing::instrument(name = "nf_register", skip_all, fields(nf_instance_id = %path_id))]
pub async fn nf_register(
    ctx: &NrfContext,
    path_id: &str,
    mut profile: NfProfile,
) -> Result<Registered, ProblemDetails> {
    let id = parse_instance_id(path_id)?;
    let mut problems = Vec::new();
    if profile.nf_instance_id != id {
        problems.push(param(
            "nfInstanceId",
            format!(
                "'{}' differs from the nfInstanceID '{id}' of the URI",
                profile.nf_instance_id
            ),
        ));
    }
    problems.extend(check_profile(&profile));
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    accept_heart_beat_timer(&ctx.options, &mut profile);
    let written = ctx.store.upsert(&profile, deadline(ctx, &profile)).await;
    ctx.invalidate();
    let created = written.map_err(store_failure)?;
    let result = if created { "created" } else { "replaced" };
    metrics::counter!(REGISTRATIONS_TOTAL, "nf_type" => profile.nf_type.to_string(), "result" => result).increment(1);
    tracing::info!(nf_type = %profile.nf_type, status = %profile.nf_status, result, "NF registered");
    refresh_gauges(ctx).await;
    Ok(Registered { profile, created })
}

fn patch_problem(e: json_patch::PatchError) -> ProblemDetails {
    ProblemDetails::new(
        StatusCode::CONFLICT,
        "MODIFICATION_NOT_ALLOWED",
        format!(
            "JSON Patch operation {} on '{}' cannot be applied: {}",
            e.operation, e.path, e.kind
        ),
    )
    .with_invalid_param(format!("[{}].path", e.operation), e.kind.to_string())
}

/// NFUpdate: applies an RFC 6902 JSON Patch to the stored profile. The patched profile
/// must still be a valid profile of the same instance, otherwise nothing changes (400).
/// Every successful update counts as a heartbeat (the expiry deadline moves), so
/// `[{"op":"replace","path":"/nfStatus","value":"REGISTERED"}]` brings a suspended
/// profile back.
#[tracing::instrument(name = "nf_update", skip_all, fields(nf_instance_id = %path_id))]
pub async fn nf_update(
    ctx: &NrfContext,
    path_id: &str,
    patch: Vec<PatchItem>,
) -> Result<Updated, ProblemDetails> {
    let id = parse_instance_id(path_id)?;
    if patch.is_empty() {
        return Err(ProblemDetails::invalid_param(
            "body",
            "a JSON Patch needs at least one operation",
        ));
    }
    let mut problems = Vec::new();
    for (i, item) in patch.iter().enumerate() {
        let needs_value = matches!(
            item.op,
            PatchOperation::Add | PatchOperation::Replace | PatchOperation::Test
        );
        let needs_from = matches!(item.op, PatchOperation::Move | PatchOperation::Copy);
        if needs_value && item.value.is_none() {
            problems.push(param(format!("[{i}].value"), "missing"));
        }
        if needs_from && item.from.is_none() {
            problems.push(param(format!("[{i}].from"), "missing"));
        }
        if !(item.path.is_empty() || item.path.starts_with('/')) {
            problems.push(param(format!("[{i}].path"), "not a JSON pointer"));
        }
    }
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    let ops: json_patch::Patch =
        serde_json::from_value(serde_json::to_value(&patch).expect("PatchItem serialises"))
            .map_err(|e| {
                ProblemDetails::bad_request("INVALID_MSG_FORMAT", format!("not a JSON Patch: {e}"))
            })?;
    let heartbeat_only = patch
        .iter()
        .all(|p| HEARTBEAT_PATHS.contains(&p.path.as_str()) && p.from.is_none());

    for _ in 0..UPDATE_ATTEMPTS {
        let stored = ctx
            .store
            .get(id)
            .await
            .map_err(store_failure)?
            .ok_or_else(|| not_found(id))?;
        let mut doc = serde_json::to_value(&stored.profile).expect("NfProfile serialises");
        json_patch::patch(&mut doc, &ops).map_err(patch_problem)?;
        let bytes = serde_json::to_vec(&doc).expect("JSON value serialises");
        let mut next: NfProfile = parse_json(&bytes).map_err(|mut p| {
            p.detail = Some(format!(
                "the patched profile is invalid: {}",
                p.detail.unwrap_or_default()
            ));
            p
        })?;
        let mut problems = Vec::new();
        if next.nf_instance_id != id {
            problems.push(param("nfInstanceId", "cannot be changed"));
        }
        problems.extend(check_profile(&next));
        if !problems.is_empty() {
            let mut p = invalid(problems);
            p.detail = Some(format!(
                "the patched profile is invalid: {}",
                p.detail.unwrap_or_default()
            ));
            return Err(p);
        }
        accept_heart_beat_timer(&ctx.options, &mut next);
        let status_changed =
            next.nf_status != stored.profile.nf_status || next.nf_type != stored.profile.nf_type;
        let written = ctx
            .store
            .replace_if_version(&next, stored.version, deadline(ctx, &next))
            .await;
        ctx.invalidate();
        if written.map_err(store_failure)? {
            if status_changed {
                tracing::info!(from = %stored.profile.nf_status, to = %next.nf_status, "NF status changed");
                refresh_gauges(ctx).await;
            }
            let heartbeat_only =
                heartbeat_only && next.heart_beat_timer == stored.profile.heart_beat_timer;
            return Ok(Updated {
                profile: next,
                heartbeat_only,
            });
        }
        tracing::debug!("profile changed concurrently; retrying the patch");
    }
    Err(ProblemDetails::new(
        StatusCode::CONFLICT,
        "MODIFICATION_NOT_ALLOWED",
        "the profile kept changing concurrently; retry the update",
    ))
}

/// NFDeregister: removes the profile (404 when unknown).
#[tracing::instrument(name = "nf_deregister", skip_all, fields(nf_instance_id = %path_id))]
pub async fn nf_deregister(ctx: &NrfContext, path_id: &str) -> Result<(), ProblemDetails> {
    let id = parse_instance_id(path_id)?;
    let stored = ctx
        .store
        .get(id)
        .await
        .map_err(store_failure)?
        .ok_or_else(|| not_found(id))?;
    let deleted = ctx.store.delete(id).await;
    ctx.invalidate();
    if !deleted.map_err(store_failure)? {
        return Err(not_found(id));
    }
    metrics::counter!(DEREGISTRATIONS_TOTAL, "nf_type" => stored.profile.nf_type.to_string())
        .increment(1);
    tracing::info!(nf_type = %stored.profile.nf_type, "NF deregistered");
    refresh_gauges(ctx).await;
    Ok(())
}

/// NFProfileRetrieval: the stored profile (404 when unknown).
#[tracing::instrument(name = "nf_profile_retrieval", skip_all, fields(nf_instance_id = %path_id))]
pub async fn nf_profile_retrieval(
    ctx: &NrfContext,
    path_id: &str,
) -> Result<NfProfile, ProblemDetails> {
    let id = parse_instance_id(path_id)?;
    ctx.store
        .get(id)
        .await
        .map_err(store_failure)?
        .map(|s| s.profile)
        .ok_or_else(|| not_found(id))
}

/// NFListRetrieval: links to the registered instances (all statuses), optionally of one
/// `nf-type`, at most `limit` of them; `totalItemCount` counts all matches.
#[tracing::instrument(name = "nf_list_retrieval", skip_all)]
pub async fn nf_list_retrieval(
    ctx: &NrfContext,
    nf_type: Option<&str>,
    limit: Option<u32>,
) -> Result<UriList, ProblemDetails> {
    if limit == Some(0) {
        return Err(ProblemDetails::invalid_param("limit", "must be at least 1"));
    }
    let all = ctx.store.list(nf_type).await.map_err(store_failure)?;
    let total = all.len();
    let items: Vec<Value> = all
        .iter()
        .take(limit.map_or(usize::MAX, |l| l as usize))
        .map(|p| json!({ "href": ctx.instance_uri(p.nf_instance_id) }))
        .collect();
    let mut self_href = format!("{}/nnrf-nfm/v1/nf-instances", ctx.api_root);
    if let Some(t) = nf_type {
        self_href.push_str(&format!("?nf-type={t}"));
    }
    let mut links = BTreeMap::from([("self".to_owned(), json!({ "href": self_href }))]);
    // LinksValueSchema needs at least one link: leave `item` out when nothing matched.
    if !items.is_empty() {
        links.insert("item".to_owned(), Value::Array(items));
    }
    Ok(UriList {
        links,
        total_item_count: Some(u32::try_from(total).unwrap_or(u32::MAX)),
    })
}

/// Parses NFDiscover query pairs. `service-names` may be comma-separated (`explode: false`,
/// the spec's style) or repeated. Unknown parameters are ignored. Missing mandatory or
/// malformed parameters are all named in one 400.
pub fn parse_discover_query(pairs: &[(String, String)]) -> Result<DiscoverQuery, ProblemDetails> {
    let mut q = DiscoverQuery::default();
    let mut problems = Vec::new();
    let (mut target, mut requester) = (None, None);
    for (k, v) in pairs {
        match k.as_str() {
            "target-nf-type" => target = Some(v.clone()),
            "requester-nf-type" => requester = Some(v.clone()),
            "service-names" => q.service_names.extend(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            ),
            "target-nf-instance-id" => match Uuid::parse_str(v) {
                Ok(id) => q.target_nf_instance_id = Some(id),
                Err(_) => problems.push(param(k, format!("'{v}' is not a UUID"))),
            },
            "preferred-locality" => q.preferred_locality = Some(v.clone()),
            "limit" => match v.parse::<u32>() {
                Ok(l) if l >= 1 => q.limit = Some(l),
                _ => problems.push(param(k, format!("'{v}' is not an integer >= 1"))),
            },
            _ => {}
        }
    }
    for (name, value, slot) in [
        ("target-nf-type", target, &mut q.target_nf_type),
        ("requester-nf-type", requester, &mut q.requester_nf_type),
    ] {
        match value.map(NfType::new) {
            None => problems.push(param(name, "missing")),
            Some(t) if !t.is_well_formed() => {
                problems.push(param(name, format!("'{t}' is not an NF type")))
            }
            Some(t) => *slot = t,
        }
    }
    q.service_names.dedup();
    if problems.is_empty() {
        Ok(q)
    } else {
        Err(invalid(problems))
    }
}

/// Whether `p` lets `requester` discover it (`allowedNfTypes`, when present).
fn allows_requester(p: &NfProfile, requester: &NfType) -> bool {
    match p.extra.get("allowedNfTypes").and_then(Value::as_array) {
        Some(types) => types.iter().any(|t| t.as_str() == Some(requester.as_str())),
        None => true,
    }
}

/// Keeps only the REGISTERED services named in `names`; `None` when none is left.
fn keep_services(p: &mut NfProfile, names: &[String]) -> bool {
    let wanted = |s: &NfService| {
        names.contains(&s.service_name) && s.nf_service_status == NfStatus::Registered
    };
    if let Some(m) = p.nf_service_list.as_mut() {
        m.retain(|_, s| wanted(s));
        if m.is_empty() {
            p.nf_service_list = None;
        }
    }
    if let Some(v) = p.nf_services.as_mut() {
        v.retain(wanted);
        if v.is_empty() {
            p.nf_services = None;
        }
    }
    p.nf_service_list.is_some() || p.nf_services.is_some()
}

/// NFDiscover: the REGISTERED, not-expired profiles of `target-nf-type` matching the
/// query, those of `preferred-locality` first, then by `priority` (lower first);
/// `nfInstances` is an empty list when nothing matches.
#[tracing::instrument(name = "nf_discover", skip_all, fields(target = %q.target_nf_type, requester = %q.requester_nf_type))]
pub async fn nf_discover(
    ctx: &NrfContext,
    q: &DiscoverQuery,
) -> Result<SearchResult, ProblemDetails> {
    let candidates = ctx
        .registered(q.target_nf_type.as_str())
        .await
        .map_err(store_failure)?;
    let now = now_ms();
    let mut found: Vec<NfProfile> = candidates
        .iter()
        .filter(|(_, deadline)| *deadline >= now)
        .map(|(p, _)| p.clone())
        .filter(|p| {
            q.target_nf_instance_id
                .is_none_or(|id| p.nf_instance_id == id)
        })
        .filter(|p| allows_requester(p, &q.requester_nf_type))
        .filter_map(|mut p| {
            (q.service_names.is_empty() || keep_services(&mut p, &q.service_names)).then_some(p)
        })
        .collect();
    found.sort_by_key(|p| {
        let elsewhere = q
            .preferred_locality
            .as_ref()
            .is_some_and(|l| p.locality.as_ref() != Some(l));
        (elsewhere, p.priority.unwrap_or(u16::MAX), p.nf_instance_id)
    });
    let complete = found.len();
    if let Some(limit) = q.limit {
        found.truncate(limit as usize);
    }
    let result = if found.is_empty() { "empty" } else { "found" };
    metrics::counter!(DISCOVERIES_TOTAL, "target_nf_type" => q.target_nf_type.to_string(), "result" => result)
        .increment(1);
    Ok(SearchResult {
        validity_period: ctx.options.validity_period,
        nf_instances: found,
        search_id: None,
        num_nf_inst_complete: Some(u32::try_from(complete).unwrap_or(u32::MAX)),
    })
}

/// Heartbeat expiry: suspends every REGISTERED profile whose heartbeat deadline passed
/// before `now_ms`; returns them.
#[tracing::instrument(name = "nf_heartbeat_expiry", skip_all)]
pub async fn heartbeat_expiry(ctx: &NrfContext, now_ms: i64) -> Result<Vec<NfProfile>, StoreError> {
    let suspended = ctx.store.suspend_expired(now_ms).await;
    // Nothing suspended means nothing written: keep the discovery cache.
    if !matches!(&suspended, Ok(v) if v.is_empty()) {
        ctx.invalidate();
    }
    let suspended = suspended?;
    for p in &suspended {
        metrics::counter!(HEARTBEAT_EXPIRIES_TOTAL, "nf_type" => p.nf_type.to_string())
            .increment(1);
        tracing::warn!(nf_instance_id = %p.nf_instance_id, nf_type = %p.nf_type, "heartbeats stopped: NF SUSPENDED");
    }
    if !suspended.is_empty() {
        refresh_gauges(ctx).await;
    }
    Ok(suspended)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::NrfOptions;
    use crate::store::SqlNfStore;
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    async fn nrf() -> (NrfContext, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("nrf.db").display());
        let store = SqlNfStore::open(netgpt_sbi::db::connect(&url).await.unwrap())
            .await
            .unwrap();
        (
            NrfContext::new(
                Arc::new(store),
                NrfOptions::default(),
                "http://nrf.test:8000",
            ),
            dir,
        )
    }

    fn amf(locality: &str) -> NfProfile {
        let mut p = NfProfile::new(Uuid::new_v4(), NfType::AMF);
        p.ipv4_addresses = Some(vec![Ipv4Addr::LOCALHOST]);
        p.locality = Some(locality.into());
        let svc = NfService::http("loc", "namf-loc", Ipv4Addr::LOCALHOST, 8001);
        let evts = NfService::http("evts", "namf-evts", Ipv4Addr::LOCALHOST, 8001);
        p.nf_service_list = Some(BTreeMap::from([("loc".into(), svc), ("evts".into(), evts)]));
        p
    }

    async fn register(ctx: &NrfContext, p: &NfProfile) -> Registered {
        nf_register(ctx, &p.nf_instance_id.to_string(), p.clone())
            .await
            .unwrap()
    }

    fn query(pairs: &[(&str, &str)]) -> DiscoverQuery {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse_discover_query(&pairs).unwrap()
    }

    fn ids(r: &SearchResult) -> Vec<Uuid> {
        r.nf_instances.iter().map(|p| p.nf_instance_id).collect()
    }

    fn params(p: &ProblemDetails) -> Vec<&str> {
        p.invalid_params.iter().map(|i| i.param.as_str()).collect()
    }

    #[tokio::test]
    async fn register_creates_then_replaces_and_gives_the_default_heartbeat_timer() {
        let (ctx, _d) = nrf().await;
        let p = amf("core");
        let first = register(&ctx, &p).await;
        assert!(first.created);
        assert_eq!(
            first.profile.heart_beat_timer,
            Some(ctx.options.default_heart_beat_timer)
        );
        let again = register(&ctx, &p).await;
        assert!(!again.created);
        assert_eq!(
            nf_profile_retrieval(&ctx, &p.nf_instance_id.to_string())
                .await
                .unwrap(),
            again.profile
        );
    }

    #[tokio::test]
    async fn heartbeat_timer_zero_is_refused_and_too_large_is_lowered() {
        let (ctx, _d) = nrf().await;
        let mut p = amf("core");
        p.heart_beat_timer = Some(0);
        let err = nf_register(&ctx, &p.nf_instance_id.to_string(), p.clone())
            .await
            .unwrap_err();
        assert_eq!((err.status, params(&err)), (400, vec!["heartBeatTimer"]));
        p.heart_beat_timer = Some(999_999);
        let ok = register(&ctx, &p).await;
        assert_eq!(
            ok.profile.heart_beat_timer,
            Some(ctx.options.max_heart_beat_timer)
        );
    }

    #[tokio::test]
    async fn register_refuses_id_mismatch_and_bad_attributes_storing_nothing() {
        let (ctx, _d) = nrf().await;
        let mut p = amf("core");
        p.ipv4_addresses = None;
        p.load = Some(101);
        p.nf_type = NfType::new("not a type");
        let other = Uuid::new_v4();
        let err = nf_register(&ctx, &other.to_string(), p.clone())
            .await
            .unwrap_err();
        assert_eq!(err.status, 400);
        assert_eq!(
            err.cause.as_deref(),
            Some("MANDATORY_IE_MISSING"),
            "no address at all is a missing IE"
        );
        for want in ["nfInstanceId", "nfType", "fqdn", "load"] {
            assert!(
                params(&err).contains(&want),
                "{want} not in {:?}",
                params(&err)
            );
        }
        assert!(ctx.store.list(None).await.unwrap().is_empty());
        let err = nf_register(&ctx, "not-a-uuid", amf("core"))
            .await
            .unwrap_err();
        assert_eq!(params(&err), vec!["nfInstanceID"]);
    }

    #[tokio::test]
    async fn heartbeat_patch_is_heartbeat_only_and_revives_a_suspended_profile() {
        let (ctx, _d) = nrf().await;
        let p = amf("core");
        register(&ctx, &p).await;
        let id = p.nf_instance_id.to_string();
        // Far in the future: every deadline has passed.
        let suspended = heartbeat_expiry(&ctx, now_ms() + 10_000_000).await.unwrap();
        assert_eq!(suspended.len(), 1);
        assert_eq!(
            nf_profile_retrieval(&ctx, &id).await.unwrap().nf_status,
            NfStatus::Suspended
        );
        let hb = nf_update(&ctx, &id, PatchItem::heartbeat()).await.unwrap();
        assert!(hb.heartbeat_only);
        assert_eq!(
            nf_profile_retrieval(&ctx, &id).await.unwrap().nf_status,
            NfStatus::Registered
        );
        let change = nf_update(
            &ctx,
            &id,
            vec![PatchItem::replace("/locality", json!("edge-paris"))],
        )
        .await
        .unwrap();
        assert!(!change.heartbeat_only);
        assert_eq!(change.profile.locality.as_deref(), Some("edge-paris"));
    }

    #[tokio::test]
    async fn patch_to_an_invalid_profile_is_refused_and_the_profile_is_unchanged() {
        let (ctx, _d) = nrf().await;
        let p = amf("core");
        let stored = register(&ctx, &p).await.profile;
        let id = p.nf_instance_id.to_string();
        let cases = [
            (
                vec![PatchItem::replace("/nfStatus", json!("BOGUS"))],
                400,
                "nfStatus",
            ),
            (
                vec![PatchItem {
                    op: PatchOperation::Remove,
                    path: "/nfType".into(),
                    from: None,
                    value: None,
                }],
                400,
                "nfType",
            ),
            (
                vec![PatchItem::replace("/nfInstanceId", json!(Uuid::new_v4()))],
                400,
                "nfInstanceId",
            ),
            (
                vec![PatchItem {
                    op: PatchOperation::Add,
                    path: "/load".into(),
                    from: None,
                    value: Some(json!(101)),
                }],
                400,
                "load",
            ),
            (
                vec![PatchItem {
                    op: PatchOperation::Add,
                    path: "/load".into(),
                    from: None,
                    value: Some(json!(500)),
                }],
                400,
                "load",
            ),
            (
                vec![PatchItem {
                    op: PatchOperation::Remove,
                    path: "/ipv4Addresses".into(),
                    from: None,
                    value: None,
                }],
                400,
                "fqdn",
            ),
            (
                vec![PatchItem {
                    op: PatchOperation::Remove,
                    path: "/fqdn".into(),
                    from: None,
                    value: None,
                }],
                409,
                "[0].path",
            ),
            (
                vec![PatchItem {
                    op: PatchOperation::Replace,
                    path: "/load".into(),
                    from: None,
                    value: None,
                }],
                400,
                "[0].value",
            ),
        ];
        for (patch, status, param) in cases {
            let err = nf_update(&ctx, &id, patch.clone()).await.unwrap_err();
            assert_eq!(err.status, status, "{patch:?}: {err}");
            assert!(
                params(&err).contains(&param),
                "{patch:?}: {:?}",
                params(&err)
            );
            assert_eq!(
                nf_profile_retrieval(&ctx, &id).await.unwrap(),
                stored,
                "{patch:?} changed the profile"
            );
        }
        let err = nf_update(&ctx, &id, vec![]).await.unwrap_err();
        assert_eq!(err.status, 400);
    }

    #[tokio::test]
    async fn unknown_instances_are_404() {
        let (ctx, _d) = nrf().await;
        let id = Uuid::new_v4().to_string();
        assert_eq!(
            nf_update(&ctx, &id, PatchItem::heartbeat())
                .await
                .unwrap_err()
                .status,
            404
        );
        assert_eq!(nf_deregister(&ctx, &id).await.unwrap_err().status, 404);
        assert_eq!(
            nf_profile_retrieval(&ctx, &id).await.unwrap_err().status,
            404
        );
        let p = amf("core");
        register(&ctx, &p).await;
        nf_deregister(&ctx, &p.nf_instance_id.to_string())
            .await
            .unwrap();
        assert_eq!(
            nf_profile_retrieval(&ctx, &p.nf_instance_id.to_string())
                .await
                .unwrap_err()
                .status,
            404
        );
    }

    #[test]
    fn fqdns_and_container_host_names() {
        assert!(
            is_fqdn("amf.core.example.org") && is_fqdn("nrf.5gc.mnc001.mcc001.3gppnetwork.org.")
        );
        assert!(
            !is_fqdn("amf") && !is_fqdn("a.b.c.123") && !is_fqdn("-x.org") && !is_fqdn("a..org")
        );
        assert!(
            is_host_name("amf") && is_host_name("edge-paris") && is_host_name("amf.example.org")
        );
        assert!(
            !is_host_name("")
                && !is_host_name("amf_1")
                && !is_host_name("1234")
                && !is_host_name("a b")
        );
    }

    #[test]
    fn discovery_query_names_every_missing_or_bad_parameter() {
        let err = parse_discover_query(&[("limit".into(), "0".into())]).unwrap_err();
        assert_eq!(err.status, 400);
        assert_eq!(err.cause.as_deref(), Some("MANDATORY_IE_MISSING"));
        let mut p = params(&err);
        p.sort();
        assert_eq!(p, vec!["limit", "requester-nf-type", "target-nf-type"]);
        let q = query(&[
            ("target-nf-type", "AMF"),
            ("requester-nf-type", "EDGEAI"),
            ("service-names", "namf-loc,namf-evts"),
            ("service-names", "nx"),
        ]);
        assert_eq!(q.service_names, vec!["namf-loc", "namf-evts", "nx"]);
        assert_eq!(q.requester_nf_type, NfType::EDGEAI);
    }

    #[tokio::test]
    async fn discovery_skips_suspended_instances_and_answers_an_empty_list() {
        let (ctx, _d) = nrf().await;
        let p = amf("core");
        register(&ctx, &p).await;
        let q = query(&[("target-nf-type", "AMF"), ("requester-nf-type", "NEF")]);
        assert_eq!(
            ids(&nf_discover(&ctx, &q).await.unwrap()),
            vec![p.nf_instance_id]
        );
        heartbeat_expiry(&ctx, now_ms() + 10_000_000).await.unwrap();
        let r = nf_discover(&ctx, &q).await.unwrap();
        assert!(r.nf_instances.is_empty());
        assert_eq!(r.validity_period, ctx.options.validity_period);
        let none = nf_discover(
            &ctx,
            &query(&[("target-nf-type", "SMF"), ("requester-nf-type", "AMF")]),
        )
        .await
        .unwrap();
        assert!(none.nf_instances.is_empty());
    }

    #[tokio::test]
    async fn discovery_prefers_the_locality_filters_services_and_applies_the_limit() {
        let (ctx, _d) = nrf().await;
        let core = amf("core");
        let paris = amf("edge-paris");
        let mut only_evts = amf("edge-paris");
        only_evts.nf_service_list.as_mut().unwrap().remove("loc");
        for p in [&core, &paris, &only_evts] {
            register(&ctx, p).await;
        }
        let q = query(&[
            ("target-nf-type", "AMF"),
            ("requester-nf-type", "NEF"),
            ("service-names", "namf-loc"),
            ("preferred-locality", "edge-paris"),
        ]);
        let r = nf_discover(&ctx, &q).await.unwrap();
        assert_eq!(ids(&r), vec![paris.nf_instance_id, core.nf_instance_id]);
        let services: Vec<&str> = r.nf_instances[0]
            .services()
            .map(|s| s.service_name.as_str())
            .collect();
        assert_eq!(
            services,
            vec!["namf-loc"],
            "only the asked-for services are returned"
        );
        let mut limited = q.clone();
        limited.limit = Some(1);
        let r = nf_discover(&ctx, &limited).await.unwrap();
        assert_eq!(
            (ids(&r), r.num_nf_inst_complete),
            (vec![paris.nf_instance_id], Some(2))
        );
        let by_id = query(&[
            ("target-nf-type", "AMF"),
            ("requester-nf-type", "NEF"),
            ("target-nf-instance-id", &core.nf_instance_id.to_string()),
        ]);
        assert_eq!(
            ids(&nf_discover(&ctx, &by_id).await.unwrap()),
            vec![core.nf_instance_id]
        );
    }

    #[tokio::test]
    async fn discovery_sees_every_write_despite_its_cache() {
        let (ctx, _d) = nrf().await;
        let q = query(&[("target-nf-type", "AMF"), ("requester-nf-type", "NEF")]);
        assert!(nf_discover(&ctx, &q).await.unwrap().nf_instances.is_empty());
        let a = amf("core");
        register(&ctx, &a).await;
        assert_eq!(
            ids(&nf_discover(&ctx, &q).await.unwrap()),
            vec![a.nf_instance_id]
        );
        let id = a.nf_instance_id.to_string();
        nf_update(
            &ctx,
            &id,
            vec![PatchItem::replace("/nfStatus", json!("UNDISCOVERABLE"))],
        )
        .await
        .unwrap();
        assert!(nf_discover(&ctx, &q).await.unwrap().nf_instances.is_empty());
        nf_update(&ctx, &id, PatchItem::heartbeat()).await.unwrap();
        assert_eq!(
            ids(&nf_discover(&ctx, &q).await.unwrap()),
            vec![a.nf_instance_id]
        );
        nf_deregister(&ctx, &id).await.unwrap();
        assert!(nf_discover(&ctx, &q).await.unwrap().nf_instances.is_empty());
    }

    #[tokio::test]
    async fn discovery_honours_allowed_nf_types() {
        let (ctx, _d) = nrf().await;
        let mut p = amf("core");
        p.extra.insert("allowedNfTypes".into(), json!(["SMF"]));
        register(&ctx, &p).await;
        let nef = query(&[("target-nf-type", "AMF"), ("requester-nf-type", "NEF")]);
        let smf = query(&[("target-nf-type", "AMF"), ("requester-nf-type", "SMF")]);
        assert!(nf_discover(&ctx, &nef)
            .await
            .unwrap()
            .nf_instances
            .is_empty());
        assert_eq!(
            ids(&nf_discover(&ctx, &smf).await.unwrap()),
            vec![p.nf_instance_id]
        );
    }

    #[tokio::test]
    async fn list_retrieval_links_every_instance_and_filters_by_type() {
        let (ctx, _d) = nrf().await;
        let a = amf("core");
        let mut e = amf("edge-paris");
        e.nf_type = NfType::EDGEAI;
        register(&ctx, &a).await;
        register(&ctx, &e).await;
        let all = nf_list_retrieval(&ctx, None, None).await.unwrap();
        assert_eq!(all.total_item_count, Some(2));
        assert_eq!(all.items().len(), 2);
        let edge = nf_list_retrieval(&ctx, Some("EDGEAI"), None).await.unwrap();
        assert_eq!(
            edge.items(),
            vec![format!(
                "http://nrf.test:8000/nnrf-nfm/v1/nf-instances/{}",
                e.nf_instance_id
            )]
        );
        let none = nf_list_retrieval(&ctx, Some("SMF"), None).await.unwrap();
        assert!(none.items().is_empty() && none.links.contains_key("self"));
        assert_eq!(
            nf_list_retrieval(&ctx, None, Some(1))
                .await
                .unwrap()
                .items()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn registration_gauge_follows_status_changes() {
        netgpt_sbi::metrics::prometheus();
        let (ctx, _d) = nrf().await;
        let mut p = amf("core");
        p.nf_type = NfType::new("GAUGE_TEST");
        register(&ctx, &p).await;
        let line = |status: &str| {
            format!(
                "{}{{nf_type=\"GAUGE_TEST\",status=\"{status}\"}}",
                crate::context::REGISTERED_GAUGE
            )
        };
        let value = |text: &str, status: &str| {
            text.lines()
                .find(|l| l.starts_with(&line(status)))
                .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        };
        let text = netgpt_sbi::metrics::render();
        assert_eq!(value(&text, "REGISTERED"), Some(1.0), "{text}");
        heartbeat_expiry(&ctx, now_ms() + 10_000_000).await.unwrap();
        let text = netgpt_sbi::metrics::render();
        assert_eq!(value(&text, "REGISTERED"), Some(0.0), "{text}");
        assert_eq!(value(&text, "SUSPENDED"), Some(1.0), "{text}");
    }
}
