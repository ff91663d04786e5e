//! Location profiles of the testbed's four edge sites: real, well-known public places by
//! category. The curated source is `models/data/location_profiles.json`, compiled in.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The profiles shipped with the crate (`models/data/location_profiles.json`).
pub const BUILTIN_JSON: &str = include_str!("../../data/location_profiles.json");

/// One real place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    /// Its proper name (what evaluation looks for in a completion).
    pub name: String,
    /// A short locating detail.
    pub detail: String,
}

impl Fact {
    /// `Name (detail)`.
    pub fn render(&self) -> String {
        format!("{} ({})", self.name, self.detail)
    }
}

/// What an edge site knows about its surroundings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteProfile {
    /// Descriptive name of the area served.
    pub name: String,
    /// Short area name used in prompts ("King's Cross").
    pub area: String,
    /// City.
    pub city: String,
    /// Country.
    pub country: String,
    /// Latitude of the site, degrees.
    pub lat: f64,
    /// Longitude of the site, degrees.
    pub lon: f64,
    /// Category (`libraries`, `hospitals`, ...) -> places.
    pub categories: BTreeMap<String, Vec<Fact>>,
}

impl SiteProfile {
    /// Every fact of the site, all categories.
    pub fn all_facts(&self) -> impl Iterator<Item = &Fact> {
        self.categories.values().flatten()
    }
}

/// Site id (`edge-london`, ...) -> profile.
pub type Profiles = BTreeMap<String, SiteProfile>;

/// Parses profiles from JSON text.
pub fn parse(json: &str) -> Result<Profiles> {
    serde_json::from_str(json).map_err(|e| Error::Format(format!("location profiles: {e}")))
}

/// The built-in profiles.
pub fn builtin() -> Profiles {
    parse(BUILTIN_JSON).expect("the shipped location_profiles.json parses")
}

/// Reads profiles from a file.
pub fn load(path: &Path) -> Result<Profiles> {
    parse(&std::fs::read_to_string(path)?)
}

/// The site ids, sorted.
pub fn site_ids(p: &Profiles) -> Vec<String> {
    p.keys().cloned().collect()
}
