//! The AMF's procedures, named after the TS 29.518 operations: each takes the request,
//! returns the response or a ProblemDetails, and knows nothing of HTTP.
//!
//! Every mutation is validated completely before anything is written, then written to the
//! store, then made visible in memory: a refused request changes nothing.

use chrono::Utc;
use netgpt_sbi::config::is_imsi_supi;
use netgpt_sbi::models::common::{Ncgi, RatType, UserLocation};
use netgpt_sbi::models::namf::{
    AmfCreateEventSubscription, AmfCreatedEventSubscription, AmfEventNotification, AmfEventReport,
    AmfEventState, AmfEventTrigger, AmfEventType, CellInfo, HandoverRequest, HandoverResult,
    ProvideLocInfo, RequestLocInfo, UeContext, UeRegistration,
};
use netgpt_sbi::ProblemDetails;
use tracing::instrument;

use crate::context::{age_minutes, AmfContext, AmfStats, Cell, Subscription, UeState};
use crate::store::{StoreError, UeRecord};

/// Path of the subscriptions collection (Location headers are built on it).
pub const SUBSCRIPTIONS_PATH: &str = "/namf-evts/v1/subscriptions";

fn store_failure(e: StoreError) -> ProblemDetails {
    tracing::error!(error = %e, "AMF store failure");
    ProblemDetails::internal("the AMF could not persist the change")
}

/// 400 unless `id` is an `imsi-<5..15 digits>` SUPI (the only kind the testbed serves).
pub fn check_supi(param: &str, id: &str) -> Result<(), ProblemDetails> {
    if is_imsi_supi(id) {
        Ok(())
    } else {
        Err(ProblemDetails::invalid_param(
            param,
            format!("'{id}' is not a SUPI of the form imsi-<5 to 15 digits>"),
        ))
    }
}

fn context_not_found(supi: &str) -> ProblemDetails {
    ProblemDetails::not_found("CONTEXT_NOT_FOUND", format!("no UE context for '{supi}'"))
}

/// Resolves a cell given as an NCGI (`ncgi_param`) or a bare NR Cell Identity (`id_param`).
fn resolve_cell<'a>(
    ctx: &'a AmfContext,
    ncgi: Option<&Ncgi>,
    nr_cell_id: Option<&str>,
    ncgi_param: &str,
    id_param: &str,
) -> Result<&'a Cell, ProblemDetails> {
    let topo = &ctx.topology;
    let by_ncgi = match ncgi {
        Some(n) => {
            if !n.plmn_id.is_valid() {
                return Err(ProblemDetails::invalid_param(
                    &format!("{ncgi_param}.plmnId"),
                    "mcc must be 3 digits, mnc 2 or 3",
                ));
            }
            if !netgpt_sbi::models::common::is_nr_cell_id(&n.nr_cell_id) {
                return Err(ProblemDetails::invalid_param(
                    &format!("{ncgi_param}.nrCellId"),
                    "must be 9 hex digits",
                ));
            }
            Some(topo.cell_by_ncgi(n).ok_or_else(|| {
                ProblemDetails::invalid_param(
                    ncgi_param,
                    format!(
                        "no cell {}/{} in the testbed topology",
                        n.plmn_id, n.nr_cell_id
                    ),
                )
            })?)
        }
        None => None,
    };
    let by_id = match nr_cell_id {
        Some(id) => {
            if !netgpt_sbi::models::common::is_nr_cell_id(id) {
                return Err(ProblemDetails::invalid_param(
                    id_param,
                    format!("'{id}' is not 9 hex digits"),
                ));
            }
            Some(topo.cell(id).ok_or_else(|| {
                ProblemDetails::invalid_param(
                    id_param,
                    format!("no cell '{id}' in the testbed topology"),
                )
            })?)
        }
        None => None,
    };
    match (by_ncgi, by_id) {
        (Some(a), Some(b)) if a.nr_cell_id != b.nr_cell_id => Err(ProblemDetails::invalid_param(
            id_param,
            format!("names a different cell than {ncgi_param}"),
        )),
        (Some(c), _) | (None, Some(c)) => Ok(c),
        (None, None) => Err(ProblemDetails::missing_param(id_param).with_invalid_param(
            ncgi_param,
            format!("one of {id_param} or {ncgi_param} is required"),
        )),
    }
}

/// The testbed topology (NetGPT extension of Namf_Communication).
pub fn cells(ctx: &AmfContext) -> Vec<CellInfo> {
    ctx.topology
        .cells()
        .iter()
        .map(|c| c.info.clone())
        .collect()
}

/// One cell of the topology by NR Cell Identity; 404 `RESOURCE_NOT_FOUND` when unknown.
pub fn cell(ctx: &AmfContext, nr_cell_id: &str) -> Result<CellInfo, ProblemDetails> {
    if !netgpt_sbi::models::common::is_nr_cell_id(nr_cell_id) {
        return Err(ProblemDetails::invalid_param(
            "nrCellId",
            format!("'{nr_cell_id}' is not 9 hex digits"),
        ));
    }
    ctx.topology
        .cell(nr_cell_id)
        .map(|c| c.info.clone())
        .ok_or_else(|| {
            ProblemDetails::not_found("RESOURCE_NOT_FOUND", format!("no cell '{nr_cell_id}'"))
        })
}

/// Registers (201, `true`) or re-registers (200, `false`) a UE at a serving cell
/// (Namf_Communication CreateUEContext, reduced to what the testbed needs). A
/// re-registration at another cell is a location change and is reported to subscribers.
#[instrument(name = "ue_context_register", skip(ctx, req))]
pub async fn ue_context_register(
    ctx: &AmfContext,
    ue_context_id: &str,
    req: UeRegistration,
) -> Result<(UeContext, bool), ProblemDetails> {
    check_supi("ueContextId", ue_context_id)?;
    if let Some(s) = &req.supi {
        if s != ue_context_id {
            return Err(ProblemDetails::invalid_param(
                "supi",
                format!("'{s}' differs from ueContextId '{ue_context_id}'"),
            ));
        }
    }
    if let Some(pei) = &req.pei {
        let ok = pei
            .strip_prefix("imei-")
            .is_some_and(|d| d.len() == 15 && d.bytes().all(|b| b.is_ascii_digit()))
            || pei
                .strip_prefix("imeisv-")
                .is_some_and(|d| d.len() == 16 && d.bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            return Err(ProblemDetails::invalid_param(
                "pei",
                "must be imei-<15 digits> or imeisv-<16 digits>",
            ));
        }
    }
    let cell = resolve_cell(
        ctx,
        req.ncgi.as_ref(),
        req.nr_cell_id.as_deref(),
        "ncgi",
        "nrCellId",
    )?;
    let _w = ctx.write_lock.lock().await;
    let now = Utc::now();
    let previous = ctx.ues.read().await.get(ue_context_id).cloned();
    let moved = previous
        .as_ref()
        .is_some_and(|p| p.record.nr_cell_id != cell.nr_cell_id);
    let record = UeRecord {
        supi: ue_context_id.to_owned(),
        pei: req.pei.clone(),
        nr_cell_id: cell.nr_cell_id.clone(),
        registered_at: now,
        located_at: match &previous {
            Some(p) if !moved => p.record.located_at,
            _ => now,
        },
    };
    ctx.store
        .put_ue_context(&record)
        .await
        .map_err(store_failure)?;
    let state = UeState { record };
    let count = {
        let mut ues = ctx.ues.write().await;
        ues.insert(ue_context_id.to_owned(), state.clone());
        ues.len()
    };
    metrics::gauge!("amf_registered_ues").set(count as f64);
    if moved {
        notify_location_change(ctx, &state, cell).await;
    }
    tracing::info!(supi = ue_context_id, cell = %cell.nr_cell_id, created = previous.is_none(), "UE registered");
    Ok((ctx.ue_context(&state), previous.is_none()))
}

/// Reads a UE context; 404 `CONTEXT_NOT_FOUND` when the UE is not registered.
#[instrument(name = "ue_context_retrieve", skip(ctx))]
pub async fn ue_context_retrieve(
    ctx: &AmfContext,
    ue_context_id: &str,
) -> Result<UeContext, ProblemDetails> {
    check_supi("ueContextId", ue_context_id)?;
    let ues = ctx.ues.read().await;
    let ue = ues
        .get(ue_context_id)
        .ok_or_else(|| context_not_found(ue_context_id))?;
    Ok(ctx.ue_context(ue))
}

/// Every registered UE, by SUPI.
#[instrument(name = "ue_context_list", skip(ctx))]
pub async fn ue_context_list(ctx: &AmfContext) -> Vec<UeContext> {
    ctx.ues
        .read()
        .await
        .values()
        .map(|u| ctx.ue_context(u))
        .collect()
}

/// Deregisters a UE (its context is released); 404 `CONTEXT_NOT_FOUND` when unknown.
#[instrument(name = "ue_context_deregister", skip(ctx))]
pub async fn ue_context_deregister(
    ctx: &AmfContext,
    ue_context_id: &str,
) -> Result<(), ProblemDetails> {
    check_supi("ueContextId", ue_context_id)?;
    let _w = ctx.write_lock.lock().await;
    if !ctx.ues.read().await.contains_key(ue_context_id) {
        return Err(context_not_found(ue_context_id));
    }
    ctx.store
        .delete_ue_context(ue_context_id)
        .await
        .map_err(store_failure)?;
    let count = {
        let mut ues = ctx.ues.write().await;
        ues.remove(ue_context_id);
        ues.len()
    };
    metrics::gauge!("amf_registered_ues").set(count as f64);
    tracing::info!(supi = ue_context_id, "UE deregistered");
    Ok(())
}

/// Namf_Location ProvideLocationInfo: the UE's cell-level location (`req5gsLoc`/`reqCurrentLoc`),
/// the cell's position as `geoInfo`, the RAT type and time zone, each when requested.
/// With `reqCurrentLoc` the location is fresh (age 0, `currentLoc: true`, as after paging);
/// otherwise it is the last known one, timestamped when the UE entered the cell.
#[instrument(name = "provide_location_info", skip(ctx, req))]
pub async fn provide_location_info(
    ctx: &AmfContext,
    ue_context_id: &str,
    req: RequestLocInfo,
) -> Result<ProvideLocInfo, ProblemDetails> {
    metrics::counter!("amf_location_requests_total").increment(1);
    AmfStats::bump(&ctx.stats.location_requests);
    check_supi("ueContextId", ue_context_id)?;
    if let Some(f) = &req.supported_features {
        if !f.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ProblemDetails::invalid_param(
                "supportedFeatures",
                "must be hexadecimal digits",
            ));
        }
    }
    let record = ctx
        .ues
        .read()
        .await
        .get(ue_context_id)
        .map(|u| u.record.clone());
    let record = record.ok_or_else(|| context_not_found(ue_context_id))?;
    let cell = ctx.topology.cell(&record.nr_cell_id).ok_or_else(|| {
        ProblemDetails::internal(format!(
            "serving cell '{}' not in the topology",
            record.nr_cell_id
        ))
    })?;
    let now = Utc::now();
    let mut out = ProvideLocInfo::default();
    if req.req5gs_loc || req.req_current_loc {
        let (ts, age) = if req.req_current_loc {
            (now, 0)
        } else {
            (record.located_at, age_minutes(record.located_at, now))
        };
        out.current_loc = Some(req.req_current_loc);
        out.location = Some(UserLocation {
            nr_location: Some(cell.nr_location(ts, age)),
        });
        out.geo_info = Some(cell.info.geo_info.clone());
        out.location_age = Some(age);
    }
    if req.req_rat_type {
        out.rat_type = Some(RatType::Nr);
    }
    if req.req_time_zone {
        out.timezone = cell.info.timezone.clone();
    }
    Ok(out)
}

/// Moves a UE to another cell (NetGPT testbed extension: an Xn/N2 handover as the AMF sees
/// it) and reports the new location to the LOCATION_REPORT subscribers. Moving to the
/// serving cell changes nothing and notifies nobody.
#[instrument(name = "handover", skip(ctx, req))]
pub async fn handover(
    ctx: &AmfContext,
    ue_context_id: &str,
    req: HandoverRequest,
) -> Result<HandoverResult, ProblemDetails> {
    check_supi("ueContextId", ue_context_id)?;
    let target = resolve_cell(
        ctx,
        req.target_ncgi.as_ref(),
        req.nr_cell_id.as_deref(),
        "targetNcgi",
        "nrCellId",
    )?;
    move_ue(ctx, ue_context_id, target).await
}

/// The handover itself, on an already-resolved target cell (also used by the random walk).
pub async fn move_ue(
    ctx: &AmfContext,
    supi: &str,
    target: &Cell,
) -> Result<HandoverResult, ProblemDetails> {
    let _w = ctx.write_lock.lock().await;
    let current = ctx
        .ues
        .read()
        .await
        .get(supi)
        .cloned()
        .ok_or_else(|| context_not_found(supi))?;
    let source = ctx
        .topology
        .cell(&current.record.nr_cell_id)
        .map(|c| c.info.ncgi.clone())
        .ok_or_else(|| ProblemDetails::internal("serving cell not in the topology"))?;
    if current.record.nr_cell_id == target.nr_cell_id {
        return Ok(HandoverResult {
            ue_context: ctx.ue_context(&current),
            source_ncgi: source,
            notifications: 0,
        });
    }
    let mut record = current.record.clone();
    record.nr_cell_id = target.nr_cell_id.clone();
    record.located_at = Utc::now();
    ctx.store
        .put_ue_context(&record)
        .await
        .map_err(store_failure)?;
    let state = UeState { record };
    ctx.ues.write().await.insert(supi.to_owned(), state.clone());
    AmfStats::bump(&ctx.stats.handovers);
    metrics::counter!("amf_handovers_total").increment(1);
    tracing::info!(supi, from = %source.nr_cell_id, to = %target.nr_cell_id, "handover");
    let notifications = notify_location_change(ctx, &state, target).await;
    Ok(HandoverResult {
        ue_context: ctx.ue_context(&state),
        source_ncgi: source,
        notifications,
    })
}

/// Sends a LOCATION_REPORT to every subscription covering this UE; ends subscriptions whose
/// trigger, `maxReports` or `expiry` says so. Returns the number of notifications dispatched.
/// Called with the write lock held.
async fn notify_location_change(ctx: &AmfContext, ue: &UeState, cell: &Cell) -> u32 {
    let now = Utc::now();
    let supi = &ue.record.supi;
    let location = UserLocation {
        nr_location: Some(cell.nr_location(ue.record.located_at, 0)),
    };
    let mut subs = ctx.subscriptions.write().await;
    let mut sent = 0;
    let mut ended = Vec::new();
    for sub in subs.values_mut() {
        let doc = &sub.doc;
        let covers = doc.any_ue == Some(true) || doc.supi.as_deref() == Some(supi.as_str());
        if !covers
            || !doc
                .event_list
                .iter()
                .any(|e| e.event_type == AmfEventType::LocationReport)
        {
            continue;
        }
        let expiry = doc.options.as_ref().and_then(|o| o.expiry);
        if expiry.is_some_and(|t| t <= now) {
            ended.push(sub.id.clone());
            continue;
        }
        sub.reports_sent = sub.reports_sent.saturating_add(1);
        let max = doc
            .options
            .as_ref()
            .and_then(|o| o.max_reports)
            .or_else(|| doc.event_list.iter().find_map(|e| e.max_reports));
        let one_time = doc
            .options
            .as_ref()
            .is_some_and(|o| o.trigger == AmfEventTrigger::OneTime);
        let remain = max.map(|m| m.saturating_sub(sub.reports_sent));
        let active = !one_time && remain != Some(0);
        let report = AmfEventReport {
            event_type: AmfEventType::LocationReport,
            state: AmfEventState {
                active,
                remain_reports: remain,
            },
            time_stamp: now,
            subscription_id: Some(sub.id.clone()),
            any_ue: doc.any_ue,
            supi: Some(supi.clone()),
            location: Some(location.clone()),
            timezone: cell.info.timezone.clone(),
        };
        let body = AmfEventNotification {
            notify_correlation_id: Some(doc.notify_correlation_id.clone()),
            report_list: Some(vec![report]),
        };
        ctx.notifier
            .dispatch(doc.event_notify_uri.clone(), body, ctx.stats.clone());
        sent += 1;
        if active {
            if let Err(e) = ctx.store.put_subscription(&sub.record()).await {
                tracing::warn!(id = %sub.id, error = %e, "could not persist the report count");
            }
        } else {
            ended.push(sub.id.clone());
        }
    }
    for id in ended {
        subs.remove(&id);
        if let Err(e) = ctx.store.delete_subscription(&id).await {
            tracing::warn!(%id, error = %e, "could not delete an ended subscription");
        }
    }
    sent
}

/// Namf_EventExposure Subscribe: LOCATION_REPORT events for one UE (`supi`) or any UE
/// (`anyUE: true`). Returns the created subscription and its resource URI (Location header).
/// With `immediateFlag` on a one-UE subscription, the current location is in `reportList`.
#[instrument(name = "create_subscription", skip(ctx, req))]
pub async fn create_subscription(
    ctx: &AmfContext,
    req: AmfCreateEventSubscription,
) -> Result<(AmfCreatedEventSubscription, String), ProblemDetails> {
    let s = &req.subscription;
    if s.event_list.is_empty() {
        return Err(ProblemDetails::invalid_param(
            "subscription.eventList",
            "must hold at least one event",
        ));
    }
    for (i, e) in s.event_list.iter().enumerate() {
        if e.event_type != AmfEventType::LocationReport {
            return Err(ProblemDetails::invalid_param(
                &format!("subscription.eventList[{i}].type"),
                "this AMF reports LOCATION_REPORT only",
            ));
        }
    }
    match reqwest::Url::parse(&s.event_notify_uri) {
        Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => {}
        _ => {
            return Err(ProblemDetails::invalid_param(
                "subscription.eventNotifyUri",
                format!("'{}' is not an absolute http(s) URI", s.event_notify_uri),
            ))
        }
    }
    if s.options
        .as_ref()
        .is_some_and(|o| o.trigger == AmfEventTrigger::Periodic)
    {
        return Err(ProblemDetails::invalid_param(
            "subscription.options.trigger",
            "PERIODIC is not supported",
        ));
    }
    if let Some(f) = &req.supported_features {
        if !f.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ProblemDetails::invalid_param(
                "supportedFeatures",
                "must be hexadecimal digits",
            ));
        }
    }
    let any_ue = s.any_ue == Some(true);
    match (&s.supi, any_ue) {
        (Some(_), true) => {
            return Err(ProblemDetails::invalid_param(
                "subscription.anyUE",
                "give either supi or anyUE, not both",
            ))
        }
        (None, false) => {
            return Err(
                ProblemDetails::missing_param("subscription.supi").with_invalid_param(
                    "subscription.anyUE",
                    "either supi or anyUE: true is required",
                ),
            )
        }
        (Some(supi), false) => check_supi("subscription.supi", supi)?,
        (None, true) => {}
    }
    let _w = ctx.write_lock.lock().await;
    let immediate = match &s.supi {
        Some(supi) => {
            let ues = ctx.ues.read().await;
            let ue = ues.get(supi).ok_or_else(|| context_not_found(supi))?;
            s.event_list
                .iter()
                .any(|e| e.immediate_flag == Some(true))
                .then(|| ctx.ue_context(ue))
        }
        None => None,
    };
    let sub = Subscription {
        id: uuid::Uuid::new_v4().to_string(),
        doc: s.clone(),
        reports_sent: 0,
        created_at: Utc::now(),
    };
    ctx.store
        .put_subscription(&sub.record())
        .await
        .map_err(store_failure)?;
    ctx.subscriptions
        .write()
        .await
        .insert(sub.id.clone(), sub.clone());
    let report_list = immediate.map(|ue| {
        vec![AmfEventReport {
            event_type: AmfEventType::LocationReport,
            state: AmfEventState {
                active: true,
                remain_reports: None,
            },
            time_stamp: Utc::now(),
            subscription_id: Some(sub.id.clone()),
            any_ue: None,
            supi: Some(ue.supi.clone()),
            location: ue.user_location.clone(),
            timezone: ue.serving_cell.as_ref().and_then(|c| c.timezone.clone()),
        }]
    });
    let location = format!("{}{}/{}", ctx.api_root, SUBSCRIPTIONS_PATH, sub.id);
    tracing::info!(id = %sub.id, uri = %s.event_notify_uri, "subscription created");
    Ok((
        AmfCreatedEventSubscription {
            subscription: sub.doc,
            subscription_id: sub.id,
            report_list,
            supported_features: None,
        },
        location,
    ))
}

/// Namf_EventExposure Unsubscribe; 404 `SUBSCRIPTION_NOT_FOUND` when unknown.
#[instrument(name = "delete_subscription", skip(ctx))]
pub async fn delete_subscription(
    ctx: &AmfContext,
    subscription_id: &str,
) -> Result<(), ProblemDetails> {
    let _w = ctx.write_lock.lock().await;
    if !ctx.subscriptions.read().await.contains_key(subscription_id) {
        return Err(ProblemDetails::not_found(
            "SUBSCRIPTION_NOT_FOUND",
            format!("no subscription '{subscription_id}'"),
        ));
    }
    ctx.store
        .delete_subscription(subscription_id)
        .await
        .map_err(store_failure)?;
    ctx.subscriptions.write().await.remove(subscription_id);
    Ok(())
}
