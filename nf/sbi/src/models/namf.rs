//! TS 29.518 Namf types: Namf_Location (RequestLocInfo, ProvideLocInfo), Namf_EventExposure
//! (AmfEventSubscription, AmfEventNotification, AmfEventReport) and a documented subset of
//! the Namf_Communication UE context, plus the NetGPT testbed extensions (cell topology,
//! UE registration, handover, random walk), each marked as such.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::common::{GeographicArea, Ncgi, RatType, Supi, Tai, UserLocation};

// ---------------------------------------------------------------- Namf_Location

/// Data within a Provide Location Information request (TS 29.518 `RequestLocInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestLocInfo {
    /// Request the 5GS (cell level) location.
    #[serde(default)]
    pub req5gs_loc: bool,
    /// Request the current location (active location retrieval) rather than the last known one.
    #[serde(default)]
    pub req_current_loc: bool,
    /// Request the RAT type.
    #[serde(default)]
    pub req_rat_type: bool,
    /// Request the UE's time zone.
    #[serde(default)]
    pub req_time_zone: bool,
    /// Supported features (hex bitmask, TS 29.500 §6.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[A-Fa-f0-9]*$")]
    pub supported_features: Option<String>,
}

/// Data within a Provide Location Information response (TS 29.518 `ProvideLocInfo`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProvideLocInfo {
    /// Whether `location` is the current location (true) or the last known one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_loc: Option<bool>,
    /// The UE's (NR) location: TAI, NCGI, timestamp and age.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<UserLocation>,
    /// Geographic position of the serving cell (TS 29.572 `GeographicArea`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo_info: Option<GeographicArea>,
    /// Age of the location estimate in minutes (TS 29.572 `AgeOfLocationEstimate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 32767)]
    pub location_age: Option<u16>,
    /// Radio access type of the UE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rat_type: Option<RatType>,
    /// Time zone of the serving cell (TS 29.571 `TimeZone`, e.g. `+08:00`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Supported features (hex bitmask).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported_features: Option<String>,
}

// ---------------------------------------------------------------- Namf_EventExposure

/// AMF event type (TS 29.518 `AmfEventType`). This mock AMF reports `LOCATION_REPORT` only;
/// the other values parse so that a subscription asking for them gets a precise refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AmfEventType {
    /// The UE's location (serving cell) changed.
    LocationReport,
    /// UE moved in or out of an area of interest.
    PresenceInAoiReport,
    /// The UE's time zone changed.
    TimezoneReport,
    /// Access type changed.
    AccessTypeReport,
    /// Registration state changed.
    RegistrationStateReport,
    /// Connectivity state changed.
    ConnectivityStateReport,
    /// Reachability changed.
    ReachabilityReport,
    /// Communication failure.
    CommunicationFailureReport,
    /// Number of UEs in an area.
    UesInAreaReport,
    /// Subscription identifier changed.
    SubscriptionIdChange,
    /// Subscription identifier added.
    SubscriptionIdAddition,
    /// Subscription terminated.
    SubscriptionTermination,
    /// Loss of connectivity.
    LossOfConnectivity,
}

/// One event of a subscription (TS 29.518 `AmfEvent`, the attributes this AMF honours).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AmfEvent {
    /// Event type.
    #[serde(rename = "type")]
    pub event_type: AmfEventType,
    /// Report the current state at subscription time (in the 201 response's `reportList`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immediate_flag: Option<bool>,
    /// Maximum number of reports for this event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_reports: Option<u32>,
}

/// Reporting trigger (TS 29.518 `AmfEventTrigger`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AmfEventTrigger {
    /// One report, then the subscription ends.
    OneTime,
    /// Reports until unsubscribed, `maxReports` or `expiry`.
    Continuous,
    /// Periodic reports (not supported by this AMF).
    Periodic,
}

/// Event reporting mode (TS 29.518 `AmfEventMode`, the attributes this AMF honours).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AmfEventMode {
    /// Trigger.
    pub trigger: AmfEventTrigger,
    /// Maximum number of reports, after which the subscription ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_reports: Option<u32>,
    /// When the subscription ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<DateTime<Utc>>,
}

/// An event subscription (TS 29.518 `AmfEventSubscription`, the attributes this AMF honours).
/// Target: one UE (`supi`) or every UE (`anyUE: true`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AmfEventSubscription {
    /// Events subscribed to (at least one).
    pub event_list: Vec<AmfEvent>,
    /// Callback URI receiving `AmfEventNotification` POSTs.
    #[schema(example = "http://127.0.0.1:9000/notify")]
    pub event_notify_uri: String,
    /// Correlation identifier echoed in every notification.
    pub notify_correlation_id: String,
    /// NF instance id of the subscriber.
    pub nf_id: Uuid,
    /// The UE subscribed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supi: Option<Supi>,
    /// Subscribe for every UE.
    #[serde(default, rename = "anyUE", skip_serializing_if = "Option::is_none")]
    pub any_ue: Option<bool>,
    /// Reporting mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<AmfEventMode>,
}

/// Body of `POST /namf-evts/v1/subscriptions` (TS 29.518 `AmfCreateEventSubscription`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AmfCreateEventSubscription {
    /// The subscription.
    pub subscription: AmfEventSubscription,
    /// Supported features (hex bitmask).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported_features: Option<String>,
}

/// Answer to a created subscription (TS 29.518 `AmfCreatedEventSubscription`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AmfCreatedEventSubscription {
    /// The subscription as stored.
    pub subscription: AmfEventSubscription,
    /// Subscription identifier (the last path segment of the Location header).
    pub subscription_id: String,
    /// Immediate reports (when an event had `immediateFlag`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_list: Option<Vec<AmfEventReport>>,
    /// Supported features (hex bitmask).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supported_features: Option<String>,
}

/// State of an event (TS 29.518 `AmfEventState`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AmfEventState {
    /// Whether the subscription is still active after this report.
    pub active: bool,
    /// Reports left when `maxReports` was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remain_reports: Option<u32>,
}

/// One event report (TS 29.518 `AmfEventReport`, the attributes this AMF produces).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AmfEventReport {
    /// Event type.
    #[serde(rename = "type")]
    pub event_type: AmfEventType,
    /// Event state.
    pub state: AmfEventState,
    /// When the event happened.
    pub time_stamp: DateTime<Utc>,
    /// The subscription this report belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    /// Whether the subscription is for any UE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any_ue: Option<bool>,
    /// The UE concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supi: Option<Supi>,
    /// The UE's new location (LOCATION_REPORT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<UserLocation>,
    /// Time zone of the new serving cell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

/// Body POSTed to `eventNotifyUri` (TS 29.518 `AmfEventNotification`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AmfEventNotification {
    /// The subscription's `notifyCorrelationId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_correlation_id: Option<String>,
    /// Reports (at least one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_list: Option<Vec<AmfEventReport>>,
}

// ---------------------------------------------------------------- Namf_Communication (subset)

/// A UE context: a documented **subset** of TS 29.518 `UeContext` (which has ~80 attributes):
/// `supi` and `pei` keep their 3GPP names; `ratType`, `userLocation`, `servingCell` and
/// `registrationTime` are NetGPT testbed attributes describing the UE's registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UeContext {
    /// The UE's SUPI.
    #[schema(example = "imsi-001010000000001")]
    pub supi: Supi,
    /// Permanent equipment identifier (`imei-...`/`imeisv-...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pei: Option<String>,
    /// Radio access type (always NR in the testbed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rat_type: Option<RatType>,
    /// Last known location (NetGPT extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_location: Option<UserLocation>,
    /// The serving cell with its place and edge site (NetGPT extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_cell: Option<CellInfo>,
    /// When the UE registered (NetGPT extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_time: Option<DateTime<Utc>>,
}

// ---------------------------------------------------------------- NetGPT testbed extensions

/// A gNB cell of the testbed topology (NetGPT extension): identities, place and serving edge site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CellInfo {
    /// NR cell global identity.
    pub ncgi: Ncgi,
    /// Tracking area identity.
    pub tai: Tai,
    /// Human-readable place name.
    #[schema(example = "Zhejiang University Yuquan campus")]
    pub name: String,
    /// Cell position (a `POINT`).
    pub geo_info: GeographicArea,
    /// Id of the edge site serving the cell.
    #[schema(example = "edge-hangzhou")]
    pub site: String,
    /// Name of that edge site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site_name: Option<String>,
    /// Time zone of the cell (TS 29.571 `TimeZone`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

/// Body of `PUT /namf-comm/v1/ue-contexts/{ueContextId}` (NetGPT extension in place of
/// TS 29.518 `UeContextCreateData`): the UE and its serving cell, given as `ncgi` or `nrCellId`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UeRegistration {
    /// SUPI; when present it must equal the path's `ueContextId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supi: Option<Supi>,
    /// Permanent equipment identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pei: Option<String>,
    /// Serving cell as an NCGI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ncgi: Option<Ncgi>,
    /// Serving cell as an NR Cell Identity of the testbed PLMN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "000001001")]
    pub nr_cell_id: Option<String>,
}

/// Body of `POST /namf-comm/v1/ue-contexts/{ueContextId}/handover` (NetGPT extension):
/// the target cell as `targetNcgi` or `nrCellId`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HandoverRequest {
    /// Target cell as an NCGI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ncgi: Option<Ncgi>,
    /// Target cell as an NR Cell Identity of the testbed PLMN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "000001002")]
    pub nr_cell_id: Option<String>,
}

/// Outcome of a handover (NetGPT extension).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HandoverResult {
    /// The UE context after the move.
    pub ue_context: UeContext,
    /// The cell the UE left.
    pub source_ncgi: Ncgi,
    /// Number of LOCATION_REPORT notifications dispatched (0 when the cell did not change).
    pub notifications: u32,
}

/// Body of `POST /namf-comm/v1/mobility/random-walk` (NetGPT extension): start moving a set
/// of UEs between cells, one handover every `intervalMs`, reproducibly from `seed`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RandomWalkRequest {
    /// UEs to move; when absent, the first `count` registered UEs by SUPI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supis: Option<Vec<Supi>>,
    /// How many registered UEs to move when `supis` is absent (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Milliseconds between two handovers (>= 10).
    pub interval_ms: u64,
    /// Seed of the walk's random generator.
    #[serde(default)]
    pub seed: u64,
    /// Stop after this many handovers (default: until stopped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
}

/// State of the random walk (NetGPT extension).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RandomWalkStatus {
    /// Whether a walk is running.
    pub running: bool,
    /// The UEs moved by the current (or last) walk.
    pub supis: Vec<Supi>,
    /// Milliseconds between handovers.
    pub interval_ms: u64,
    /// Seed.
    pub seed: u64,
    /// Step limit, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
    /// Handovers performed so far by this walk.
    pub handovers: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_loc_info_defaults_to_false_and_uses_spec_names() {
        let r: RequestLocInfo = serde_json::from_str(r#"{"req5gsLoc":true}"#).unwrap();
        assert!(r.req5gs_loc && !r.req_current_loc && !r.req_rat_type);
        let v = serde_json::to_value(RequestLocInfo {
            req_current_loc: true,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(v["reqCurrentLoc"], true);
        assert_eq!(v["req5gsLoc"], false);
    }

    #[test]
    fn subscription_uses_spec_names() {
        let body = serde_json::json!({
            "subscription": {
                "eventList": [{"type": "LOCATION_REPORT", "immediateFlag": true}],
                "eventNotifyUri": "http://127.0.0.1:9/n",
                "notifyCorrelationId": "c1",
                "nfId": "6f1a1c2e-0000-4000-8000-000000000001",
                "anyUE": true,
                "options": {"trigger": "CONTINUOUS", "maxReports": 3}
            }
        });
        let s: AmfCreateEventSubscription = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(
            s.subscription.event_list[0].event_type,
            AmfEventType::LocationReport
        );
        assert_eq!(s.subscription.any_ue, Some(true));
        assert_eq!(serde_json::to_value(&s).unwrap(), body);
    }
}
