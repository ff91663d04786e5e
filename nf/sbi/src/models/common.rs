//! TS 29.571 common data types (and the TS 29.572 GAD shapes) used by the NetGPT NFs.
//!
//! Field names are the specification's (camelCase). Only the attributes the testbed
//! produces or consumes are modelled; optional attributes are omitted from the JSON
//! when absent, so every document stays valid against the 3GPP schemas.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A SUPI (`imsi-<5..15 digits>`, `nai-...`, ...; TS 29.571 `Supi`).
pub type Supi = String;

/// PLMN identity (TS 29.571 `PlmnId`): `mcc` 3 digits, `mnc` 2 or 3 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlmnId {
    /// Mobile Country Code, 3 digits.
    #[schema(example = "001", pattern = r"^\d{3}$")]
    pub mcc: String,
    /// Mobile Network Code, 2 or 3 digits.
    #[schema(example = "01", pattern = r"^\d{2,3}$")]
    pub mnc: String,
}

impl PlmnId {
    /// Builds a PLMN identity from its two parts.
    pub fn new(mcc: impl Into<String>, mnc: impl Into<String>) -> Self {
        Self {
            mcc: mcc.into(),
            mnc: mnc.into(),
        }
    }

    /// Whether `mcc` is 3 digits and `mnc` 2 or 3 digits.
    pub fn is_valid(&self) -> bool {
        let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
        self.mcc.len() == 3
            && digits(&self.mcc)
            && (2..=3).contains(&self.mnc.len())
            && digits(&self.mnc)
    }
}

impl std::fmt::Display for PlmnId {
    /// The string form TS 29.571 prescribes for map keys: `<mcc>-<mnc>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.mcc, self.mnc)
    }
}

/// Tracking area identity (TS 29.571 `Tai`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tai {
    /// PLMN of the tracking area.
    pub plmn_id: PlmnId,
    /// Tracking area code, 4 or 6 hex digits.
    #[schema(example = "000001", pattern = r"(^[A-Fa-f0-9]{4}$)|(^[A-Fa-f0-9]{6}$)")]
    pub tac: String,
    /// Network identifier of an SNPN (11 hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nid: Option<String>,
}

/// NR cell global identity (TS 29.571 `Ncgi`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ncgi {
    /// PLMN of the cell.
    pub plmn_id: PlmnId,
    /// 36-bit NR Cell Identity as 9 hex digits.
    #[schema(example = "000001001", pattern = r"^[A-Fa-f0-9]{9}$")]
    pub nr_cell_id: String,
    /// Network identifier of an SNPN (11 hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nid: Option<String>,
}

/// Whether `s` is a 36-bit NR Cell Identity in hex (9 hex digits).
pub fn is_nr_cell_id(s: &str) -> bool {
    s.len() == 9 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// NR user location (TS 29.571 `NrLocation`); `tai` and `ncgi` are mandatory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NrLocation {
    /// Tracking area of the serving cell.
    pub tai: Tai,
    /// Serving cell.
    pub ncgi: Ncgi,
    /// Minutes since the last network contact of the UE (0..32767); 0 means current.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 32767)]
    pub age_of_location_information: Option<u16>,
    /// When the location was obtained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ue_location_timestamp: Option<DateTime<Utc>>,
    /// TS 23.032 ellipsoid point with uncertainty circle, 16 upper-case hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[0-9A-F]{16}$")]
    pub geographical_information: Option<String>,
}

/// User location (TS 29.571 `UserLocation`). Only the NR variant is modelled:
/// the testbed has no E-UTRA, N3GA, UTRA or GERA access.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserLocation {
    /// NR location of the UE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nr_location: Option<NrLocation>,
}

/// Radio access type (TS 29.571 `RatType`); the testbed only serves NR but accepts the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum RatType {
    /// 5G New Radio.
    #[serde(rename = "NR")]
    Nr,
    /// LTE.
    #[serde(rename = "EUTRA")]
    Eutra,
    /// Untrusted WLAN.
    #[serde(rename = "WLAN")]
    Wlan,
    /// NR reduced capability.
    #[serde(rename = "NR_REDCAP")]
    NrRedcap,
}

/// Geographical coordinates (TS 29.572 `GeographicalCoordinates`), WGS 84 degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GeographicalCoordinates {
    /// Longitude, -180..180.
    #[schema(minimum = -180, maximum = 180)]
    pub lon: f64,
    /// Latitude, -90..90.
    #[schema(minimum = -90, maximum = 90)]
    pub lat: f64,
}

/// A geographic area (TS 29.572 `GeographicArea`, discriminated by `shape`). The
/// testbed reports a cell's position as a `POINT`, or a `POINT_UNCERTAINTY_CIRCLE`
/// when a radius is known.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "shape")]
pub enum GeographicArea {
    /// Ellipsoid point: `{"shape":"POINT","point":{"lon":..,"lat":..}}`.
    #[serde(rename = "POINT")]
    Point {
        /// The point.
        point: GeographicalCoordinates,
    },
    /// Ellipsoid point with an uncertainty circle of `uncertainty` metres.
    #[serde(rename = "POINT_UNCERTAINTY_CIRCLE")]
    PointUncertaintyCircle {
        /// The centre.
        point: GeographicalCoordinates,
        /// Radius in metres (TS 29.572 `Uncertainty`, >= 0).
        uncertainty: f32,
    },
}

impl GeographicArea {
    /// A `POINT` at `lat`, `lon`.
    pub fn point(lat: f64, lon: f64) -> Self {
        GeographicArea::Point {
            point: GeographicalCoordinates { lon, lat },
        }
    }

    /// The (centre) coordinates of the area.
    pub fn coordinates(&self) -> GeographicalCoordinates {
        match self {
            GeographicArea::Point { point }
            | GeographicArea::PointUncertaintyCircle { point, .. } => *point,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_serialises_with_shape_discriminator() {
        let v = serde_json::to_value(GeographicArea::point(30.26, 120.12)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"shape": "POINT", "point": {"lon": 120.12, "lat": 30.26}})
        );
        let back: GeographicArea = serde_json::from_value(v).unwrap();
        assert_eq!(back.coordinates().lat, 30.26);
    }

    #[test]
    fn nr_location_uses_spec_names_and_omits_absent_fields() {
        let plmn = PlmnId::new("001", "01");
        let loc = NrLocation {
            tai: Tai {
                plmn_id: plmn.clone(),
                tac: "000001".into(),
                nid: None,
            },
            ncgi: Ncgi {
                plmn_id: plmn,
                nr_cell_id: "000001001".into(),
                nid: None,
            },
            age_of_location_information: Some(0),
            ue_location_timestamp: None,
            geographical_information: None,
        };
        let v = serde_json::to_value(UserLocation {
            nr_location: Some(loc),
        })
        .unwrap();
        assert_eq!(v["nrLocation"]["ncgi"]["nrCellId"], "000001001");
        assert_eq!(v["nrLocation"]["tai"]["plmnId"]["mcc"], "001");
        assert_eq!(v["nrLocation"]["ageOfLocationInformation"], 0);
        assert!(v["nrLocation"].get("ueLocationTimestamp").is_none());
        assert!(v["nrLocation"]["tai"].get("nid").is_none());
    }

    #[test]
    fn plmn_and_cell_id_validation() {
        assert!(PlmnId::new("001", "01").is_valid());
        assert!(!PlmnId::new("01", "01").is_valid());
        assert!(!PlmnId::new("001", "0a").is_valid());
        assert!(is_nr_cell_id("00000100F"));
        assert!(!is_nr_cell_id("00000100"));
        assert!(!is_nr_cell_id("00000100g"));
    }
}
