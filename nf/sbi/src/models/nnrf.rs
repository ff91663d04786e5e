//! TS 29.510 (Nnrf_NFManagement, Nnrf_NFDiscovery) data types, Release 18 names.
//!
//! JSON field names are the spec's (camelCase, `nfInstanceId`, `heartBeatTimer`);
//! utoipa schema names are the spec's too (`NFProfile`, `SearchResult`), so the
//! generated OpenAPI documents read like TS 29.510.
//!
//! Decisions where the spec leaves room:
//! - [`NfType`] is an *open* string newtype. TS 29.510 defines `NFType` as
//!   `anyOf: [enum, string]`, i.e. extensible; NetGPT registers its own types
//!   (`EDGEAI`, `CLOUDAI`, `CMP`) next to the 3GPP ones. Constants name the
//!   3GPP values the project uses (`NfType::AMF`), and [`NfType::is_3gpp`]
//!   tells a 3GPP value from a NetGPT one. Any non-empty `[A-Z0-9_]` token up to
//!   64 characters is accepted ([`NfType::is_well_formed`]).
//! - [`NfStatus`] is closed: REGISTERED, SUSPENDED, UNDISCOVERABLE and
//!   CANARY_RELEASE; other strings are refused (400), so a JSON Patch cannot set
//!   a status the NRF does not understand.
//! - Services: both the Rel-18 map `nfServiceList` (keyed by serviceInstanceId)
//!   and the deprecated array `nfServices` are accepted and echoed as sent;
//!   [`NfProfile::services`] iterates over both.
//! - Profile attributes this crate does not model (`amfInfo`, `sNssais`, ...)
//!   are kept verbatim in `extra` and round-trip through the NRF unchanged.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

pub use super::common::PlmnId;

/// TS 29.510 `NFType`: an open set of strings (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(as = NFType, value_type = String, example = "AMF")]
pub struct NfType(Cow<'static, str>);

impl NfType {
    /// Network Repository Function.
    pub const NRF: NfType = NfType(Cow::Borrowed("NRF"));
    /// Access and Mobility Management Function.
    pub const AMF: NfType = NfType(Cow::Borrowed("AMF"));
    /// Session Management Function.
    pub const SMF: NfType = NfType(Cow::Borrowed("SMF"));
    /// Unified Data Management.
    pub const UDM: NfType = NfType(Cow::Borrowed("UDM"));
    /// Policy Control Function.
    pub const PCF: NfType = NfType(Cow::Borrowed("PCF"));
    /// Network Exposure Function.
    pub const NEF: NfType = NfType(Cow::Borrowed("NEF"));
    /// Network Data Analytics Function.
    pub const NWDAF: NfType = NfType(Cow::Borrowed("NWDAF"));
    /// Application Function.
    pub const AF: NfType = NfType(Cow::Borrowed("AF"));
    /// Location Management Function.
    pub const LMF: NfType = NfType(Cow::Borrowed("LMF"));
    /// NetGPT edge AI function (one per base station).
    pub const EDGEAI: NfType = NfType(Cow::Borrowed("EDGEAI"));
    /// NetGPT cloud AI function.
    pub const CLOUDAI: NfType = NfType(Cow::Borrowed("CLOUDAI"));
    /// NetGPT computing-plane controller.
    pub const CMP: NfType = NfType(Cow::Borrowed("CMP"));

    /// The NF type values TS 29.510 Rel-18 enumerates.
    pub const SPEC_VALUES: &'static [&'static str] = &[
        "NRF",
        "UDM",
        "AMF",
        "SMF",
        "AUSF",
        "NEF",
        "PCF",
        "SMSF",
        "NSSF",
        "UDR",
        "LMF",
        "GMLC",
        "5G_EIR",
        "SEPP",
        "UPF",
        "N3IWF",
        "AF",
        "UDSF",
        "BSF",
        "CHF",
        "NWDAF",
        "PCSCF",
        "CBCF",
        "HSS",
        "UCMF",
        "SOR_AF",
        "SPAF",
        "MME",
        "SCSAS",
        "SCEF",
        "SCP",
        "NSSAAF",
        "ICSCF",
        "SCSCF",
        "DRA",
        "IMS_AS",
        "AANF",
        "5G_DDNMF",
        "NSACF",
        "MFAF",
        "EASDF",
        "DCCF",
        "MB_SMF",
        "TSCTSF",
        "ADRF",
        "GBA_BSF",
        "CEF",
        "MB_UPF",
        "NSWOF",
        "PKMF",
        "MNPF",
        "SMS_GMSC",
        "SMS_IWMSC",
        "MBSF",
        "MBSTF",
        "PANF",
        "DCSF",
        "MRF",
        "MRFP",
        "MF",
        "SLPKMF",
    ];

    /// Any NF type string (3GPP or NetGPT-specific).
    pub fn new(s: impl Into<String>) -> Self {
        NfType(Cow::Owned(s.into()))
    }

    /// The type as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is one of the values TS 29.510 enumerates.
    pub fn is_3gpp(&self) -> bool {
        Self::SPEC_VALUES.contains(&self.as_str())
    }

    /// Non-empty, at most 64 characters, upper-case letters, digits and `_`.
    pub fn is_well_formed(&self) -> bool {
        !self.0.is_empty()
            && self.0.len() <= 64
            && self
                .0
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    }
}

impl Default for NfType {
    fn default() -> Self {
        NfType(Cow::Borrowed(""))
    }
}

impl fmt::Display for NfType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for NfType {
    fn from(s: &str) -> Self {
        NfType::new(s)
    }
}

impl From<String> for NfType {
    fn from(s: String) -> Self {
        NfType::new(s)
    }
}

impl PartialEq<str> for NfType {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for NfType {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// TS 29.510 `NFStatus` (also used as `NFServiceStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(as = NFStatus)]
pub enum NfStatus {
    /// Registered and discoverable.
    #[default]
    Registered,
    /// Registered but not operative (e.g. heartbeats stopped); not discovered.
    Suspended,
    /// Operative but must not be discovered.
    Undiscoverable,
    /// Discoverable only by requesters that ask for canary releases.
    CanaryRelease,
}

impl NfStatus {
    /// The wire value (`REGISTERED`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            NfStatus::Registered => "REGISTERED",
            NfStatus::Suspended => "SUSPENDED",
            NfStatus::Undiscoverable => "UNDISCOVERABLE",
            NfStatus::CanaryRelease => "CANARY_RELEASE",
        }
    }
}

impl fmt::Display for NfStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// TS 29.510 `NFServiceStatus`: the same values as [`NfStatus`].
pub type NfServiceStatus = NfStatus;

/// TS 29.510 `NFServiceVersion`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = NFServiceVersion)]
pub struct NfServiceVersion {
    /// Version as it appears in the URI (`v1`).
    #[schema(example = "v1")]
    pub api_version_in_uri: String,
    /// Full semantic version (`1.0.0`).
    #[schema(example = "1.0.0")]
    pub api_full_version: String,
    /// When this version expires (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<String>,
}

impl NfServiceVersion {
    /// `v{major}` in the URI and `{major}.0.0` as the full version.
    pub fn v(major: u32) -> Self {
        Self {
            api_version_in_uri: format!("v{major}"),
            api_full_version: format!("{major}.0.0"),
            expiry: None,
        }
    }
}

/// TS 29.510 `IpEndPoint`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IpEndPoint {
    /// IPv4 address in dotted-decimal notation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "127.0.0.1")]
    pub ipv4_address: Option<Ipv4Addr>,
    /// IPv6 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<String>,
    /// Transport protocol (`TCP`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// TCP port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// TS 29.510 `NFService`: one service instance of an NF instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = NFService)]
pub struct NfService {
    /// Unique within the NF instance; the key in `nfServiceList`.
    pub service_instance_id: String,
    /// Service name (`namf-loc`, `nnrf-disc`, or a NetGPT service name).
    #[schema(example = "namf-loc")]
    pub service_name: String,
    /// Supported API versions (at least one).
    pub versions: Vec<NfServiceVersion>,
    /// URI scheme: `http` or `https`.
    #[schema(example = "http")]
    pub scheme: String,
    /// Status of the service instance.
    pub nf_service_status: NfServiceStatus,
    /// FQDN of the service instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<String>,
    /// Where the service listens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_end_points: Option<Vec<IpEndPoint>>,
    /// Optional path prefix before `/{serviceName}/{version}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_prefix: Option<String>,
    /// Priority among service instances (lower is preferred), 0..=65535.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u16>,
    /// Static capacity, 0..=65535.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u16>,
    /// Dynamic load in percent, 0..=100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<u8>,
    /// Attributes not modelled here, kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl NfService {
    /// A REGISTERED `http` service at `ip:port`, version `v1`.
    pub fn http(
        service_instance_id: impl Into<String>,
        service_name: impl Into<String>,
        ip: Ipv4Addr,
        port: u16,
    ) -> Self {
        Self {
            service_instance_id: service_instance_id.into(),
            service_name: service_name.into(),
            versions: vec![NfServiceVersion::v(1)],
            scheme: "http".into(),
            nf_service_status: NfStatus::Registered,
            fqdn: None,
            ip_end_points: Some(vec![IpEndPoint {
                ipv4_address: Some(ip),
                ipv6_address: None,
                transport: Some("TCP".into()),
                port: Some(port),
            }]),
            api_prefix: None,
            priority: None,
            capacity: None,
            load: None,
            extra: BTreeMap::new(),
        }
    }

    /// The API root a consumer calls: `apiPrefix` when set, otherwise
    /// `{scheme}://{fqdn or first ipv4}:{port}`.
    pub fn api_root(&self) -> Option<String> {
        if let Some(prefix) = &self.api_prefix {
            if prefix.starts_with("http://") || prefix.starts_with("https://") {
                return Some(prefix.trim_end_matches('/').to_owned());
            }
        }
        let ep = self.ip_end_points.as_ref().and_then(|eps| eps.first());
        let host = match (&self.fqdn, ep.and_then(|e| e.ipv4_address)) {
            (_, Some(ip)) => ip.to_string(),
            (Some(fqdn), None) => fqdn.clone(),
            (None, None) => return None,
        };
        let port = ep.and_then(|e| e.port);
        let mut root = match port {
            Some(p) => format!("{}://{host}:{p}", self.scheme),
            None => format!("{}://{host}", self.scheme),
        };
        if let Some(prefix) = self.api_prefix.as_deref().filter(|p| !p.is_empty()) {
            root.push_str(prefix.trim_end_matches('/'));
        }
        Some(root)
    }
}

/// TS 29.510 `NFProfile`: what an NF instance registers in the NRF.
///
/// Build one with struct-update syntax over [`NfProfile::new`]:
/// `NfProfile { locality: Some("core".into()), ..NfProfile::new(id, NfType::AMF) }`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = NFProfile)]
pub struct NfProfile {
    /// UUID of the NF instance (TS 29.571 `NfInstanceId`).
    pub nf_instance_id: Uuid,
    /// Human-readable instance name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nf_instance_name: Option<String>,
    /// Type of the NF.
    pub nf_type: NfType,
    /// Status of the NF instance.
    pub nf_status: NfStatus,
    /// Seconds between heartbeats; the NRF may answer with the value it accepts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heart_beat_timer: Option<u32>,
    /// PLMNs the NF serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plmn_list: Option<Vec<PlmnId>>,
    /// FQDN of the NF instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fqdn: Option<String>,
    /// IPv4 addresses of the NF instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    pub ipv4_addresses: Option<Vec<Ipv4Addr>>,
    /// IPv6 addresses of the NF instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_addresses: Option<Vec<String>>,
    /// Operator-defined locality (NetGPT: an edge site id, `core` or `cloud`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    /// Priority among NF instances (lower is preferred), 0..=65535.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u16>,
    /// Static capacity, 0..=65535.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u16>,
    /// Dynamic load in percent, 0..=100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<u8>,
    /// Services (deprecated array form; still accepted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nf_services: Option<Vec<NfService>>,
    /// Services keyed by serviceInstanceId (Rel-18 form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nf_service_list: Option<BTreeMap<String, NfService>>,
    /// Free-form NF-specific information (a JSON object); NetGPT NFs put their
    /// own capabilities here (model names, devices, edge site).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub custom_info: Option<Value>,
    /// Attributes of TS 29.510 not modelled here (`amfInfo`, `sNssais`, ...), kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl NfProfile {
    /// A REGISTERED profile of the given instance and type, everything else empty.
    pub fn new(nf_instance_id: Uuid, nf_type: NfType) -> Self {
        Self {
            nf_instance_id,
            nf_type,
            nf_status: NfStatus::Registered,
            ..Default::default()
        }
    }

    /// All services, from `nfServiceList` and then the deprecated `nfServices`.
    pub fn services(&self) -> impl Iterator<Item = &NfService> {
        self.nf_service_list
            .iter()
            .flat_map(|m| m.values())
            .chain(self.nf_services.iter().flat_map(|v| v.iter()))
    }

    /// The first service with this name.
    pub fn service(&self, service_name: &str) -> Option<&NfService> {
        self.services().find(|s| s.service_name == service_name)
    }
}

/// TS 29.510 `SearchResult`: the NFDiscover answer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchResult {
    /// Seconds the consumer may cache this result.
    pub validity_period: u32,
    /// Matching profiles; an empty list when nothing matched, never absent or null.
    pub nf_instances: Vec<NfProfile>,
    /// Id of a stored search (not used by this NRF).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_id: Option<String>,
    /// How many instances matched before `limit` was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_nf_inst_complete: Option<u32>,
}

/// TS 29.571 `PatchOperation` (RFC 6902).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PatchOperation {
    /// Add a value.
    Add,
    /// Copy `from` to `path`.
    Copy,
    /// Move `from` to `path`.
    Move,
    /// Remove the value at `path`.
    Remove,
    /// Replace the value at `path`.
    Replace,
    /// Test that `path` equals `value`.
    Test,
}

/// TS 29.571 `PatchItem`: one RFC 6902 operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchItem {
    /// The operation.
    pub op: PatchOperation,
    /// JSON pointer (RFC 6901) of the target location.
    pub path: String,
    /// Source JSON pointer for `move`/`copy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The value for `add`/`replace`/`test` (a present JSON `null` is `Some(Value::Null)`).
    #[serde(
        default,
        deserialize_with = "present_value",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<Object>)]
    pub value: Option<Value>,
}

impl PatchItem {
    /// `{"op":"replace","path":path,"value":value}`.
    pub fn replace(path: impl Into<String>, value: Value) -> Self {
        Self {
            op: PatchOperation::Replace,
            path: path.into(),
            from: None,
            value: Some(value),
        }
    }

    /// The heartbeat of TS 29.510 §5.2.2.3.2: `replace /nfStatus REGISTERED`.
    pub fn heartbeat() -> Vec<PatchItem> {
        vec![Self::replace(
            "/nfStatus",
            Value::String(NfStatus::Registered.as_str().into()),
        )]
    }
}

fn present_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// TS 29.571 `Link`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Link {
    /// The URI of the linked resource.
    pub href: String,
}

/// TS 29.510 `UriList`: the NF-instance collection as 3GPP hypermedia links.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UriList {
    /// `item`: one link per NF instance; `self`: the collection.
    #[serde(rename = "_links")]
    #[schema(value_type = Object)]
    pub links: BTreeMap<String, Value>,
    /// Total number of matching NF instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_item_count: Option<u32>,
}

impl UriList {
    /// The `item` hrefs.
    pub fn items(&self) -> Vec<String> {
        match self.links.get("item") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|l| l.get("href")?.as_str().map(str::to_owned))
                .collect(),
            Some(Value::Object(o)) => o
                .get("href")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .into_iter()
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn profile_uses_ts29510_names_and_omits_absent_fields() {
        let id = Uuid::new_v4();
        let mut p = NfProfile::new(id, NfType::AMF);
        p.heart_beat_timer = Some(10);
        p.ipv4_addresses = Some(vec![Ipv4Addr::LOCALHOST]);
        let svc = NfService::http("loc-1", "namf-loc", Ipv4Addr::LOCALHOST, 8001);
        p.nf_service_list = Some(BTreeMap::from([("loc-1".to_owned(), svc)]));
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["nfInstanceId"], id.to_string());
        assert_eq!(v["nfType"], "AMF");
        assert_eq!(v["nfStatus"], "REGISTERED");
        assert_eq!(v["heartBeatTimer"], 10);
        assert_eq!(v["ipv4Addresses"][0], "127.0.0.1");
        assert_eq!(v["nfServiceList"]["loc-1"]["ipEndPoints"][0]["port"], 8001);
        assert_eq!(
            v["nfServiceList"]["loc-1"]["versions"][0]["apiVersionInUri"],
            "v1"
        );
        assert!(
            v.get("fqdn").is_none()
                && v.get("customInfo").is_none()
                && v.get("nfServices").is_none()
        );
    }

    #[test]
    fn unknown_attributes_and_custom_types_round_trip() {
        let body = json!({
            "nfInstanceId": "4947a69a-f61b-4bc1-b9da-47c9c5d14b64",
            "nfType": "EDGEAI", "nfStatus": "REGISTERED", "fqdn": "edge.example.org",
            "amfInfo": {"amfSetId": "3f8", "amfRegionId": "ca"},
            "customInfo": {"site": "edge-paris"},
            "nfServices": [{"serviceInstanceId": "p1", "serviceName": "nedgeai-prompt",
                "versions": [{"apiVersionInUri": "v1", "apiFullVersion": "1.0.0"}],
                "scheme": "http", "nfServiceStatus": "REGISTERED", "apiPrefix": "http://10.0.0.1:9000"}]
        });
        let p: NfProfile = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(p.nf_type, NfType::EDGEAI);
        assert!(!p.nf_type.is_3gpp() && p.nf_type.is_well_formed());
        assert_eq!(p.extra["amfInfo"]["amfSetId"], "3f8");
        assert_eq!(
            p.service("nedgeai-prompt").unwrap().api_root().as_deref(),
            Some("http://10.0.0.1:9000")
        );
        assert_eq!(serde_json::to_value(&p).unwrap(), body);
    }

    #[test]
    fn status_is_closed_and_type_is_open() {
        assert!(serde_json::from_value::<NfStatus>(json!("BOGUS")).is_err());
        assert_eq!(
            serde_json::from_value::<NfStatus>(json!("SUSPENDED")).unwrap(),
            NfStatus::Suspended
        );
        assert_eq!(
            serde_json::from_value::<NfType>(json!("AMF")).unwrap(),
            NfType::AMF
        );
        assert!(!NfType::new("amf lower").is_well_formed());
        assert!(NfType::new("5G_EIR").is_3gpp());
    }

    #[test]
    fn patch_item_keeps_explicit_null_and_heartbeat_shape() {
        let item: PatchItem =
            serde_json::from_value(json!({"op": "replace", "path": "/load", "value": null}))
                .unwrap();
        assert_eq!(item.value, Some(Value::Null));
        let item: PatchItem =
            serde_json::from_value(json!({"op": "remove", "path": "/load"})).unwrap();
        assert_eq!(item.value, None);
        assert_eq!(
            serde_json::to_value(PatchItem::heartbeat()).unwrap(),
            json!([{"op": "replace", "path": "/nfStatus", "value": "REGISTERED"}])
        );
    }

    #[test]
    fn search_result_always_has_a_list() {
        let v = serde_json::to_value(SearchResult {
            validity_period: 60,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(v, json!({"validityPeriod": 60, "nfInstances": []}));
    }

    #[test]
    fn service_api_root_from_endpoint() {
        let s = NfService::http("a", "namf-loc", Ipv4Addr::new(10, 0, 0, 2), 8001);
        assert_eq!(s.api_root().as_deref(), Some("http://10.0.0.2:8001"));
    }
}
