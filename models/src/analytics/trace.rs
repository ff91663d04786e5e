//! Viewing traces for content popularity prediction: the [`ViewEvent`] record (the layout of
//! the Netflix audience-behaviour CSV), a seeded generator of synthetic traces
//! ([`generate`]), and a loader/writer for that CSV layout ([`read_csv`], [`write_csv`]).
//!
//! # The generator
//!
//! Views are drawn hour by hour. Item `i` gets a Poisson number of views per hour with mean
//!
//! `λ_i(t) = V/24 · daily(hour) · weekly_i(day of week) · pop_i(day) · mood_i(day)`
//!
//! - `daily`: a fixed 24-hour profile (mean 1) with an evening peak (19-22 h, up to 1.9x)
//!   and a night trough (2-5 h, under 0.1x), so time of day is a strong predictor.
//! - `pop_i`: Zipf weights `1 / rank^s` over the catalogue, normalised to sum 1, so a few
//!   items take most views ([`TraceConfig::zipf_s`]).
//! - trends: [`TraceConfig::new_releases`] items are released during the trace (evenly
//!   spaced, the last one in the final week); before release they get no views, after it
//!   their weight rises to a peak of [`TraceConfig::release_boost`] times their Zipf weight
//!   on day 3 and fades back (gamma-shaped curve), so recent history matters.
//! - `weekly_i`: [`TraceConfig::weekend_items`] items are "weekend titles": 2.2x on Friday to
//!   Sunday, 0.4x on the other days; all others get 1.15x at weekends.
//! - `mood_i`: a per-item day-to-day log-normal AR(1) factor (sd [`TraceConfig::mood_sd`],
//!   correlation 0.7), so yesterday's level says something about today's.
//!
//! Each view gets a user (Zipf-active users), a minute and second within the hour, and a
//! watch duration. Everything is drawn from one `StdRng` seeded with [`TraceConfig::seed`]:
//! the same config gives the same trace.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, Datelike, Duration, NaiveDateTime, TimeZone, Timelike, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Datetime format of the Netflix audience-behaviour CSV (`2017-01-01 01:15:09`, UTC).
pub const DATETIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// The CSV columns, in the order [`write_csv`] writes them.
pub const COLUMNS: [&str; 7] = [
    "datetime",
    "duration",
    "title",
    "genres",
    "release_date",
    "movie_id",
    "user_id",
];

/// One viewing event, as in the Netflix audience-behaviour data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewEvent {
    /// When the view started (UTC).
    pub datetime: DateTime<Utc>,
    /// Seconds watched.
    pub duration_s: f64,
    /// Title of the movie or show.
    pub title: String,
    /// Genres as in the file, comma-separated (`Action, Drama`), or `NOT AVAILABLE`.
    pub genres: String,
    /// Release date as in the file (`2008-02-20`), or `NOT AVAILABLE`.
    pub release_date: String,
    /// Item id (hex in the original data).
    pub movie_id: String,
    /// User id (hex in the original data).
    pub user_id: String,
}

/// Settings of the synthetic viewing-trace generator (see the module docs for the model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceConfig {
    /// Seed of every random draw.
    pub seed: u64,
    /// First day of the trace (UTC midnight).
    pub start: DateTime<Utc>,
    /// Days covered.
    pub days: usize,
    /// Distinct users.
    pub users: usize,
    /// Items in the catalogue.
    pub items: usize,
    /// Mean views per day over the whole catalogue (before weekly, trend and mood factors).
    pub views_per_day: f64,
    /// Zipf exponent of item popularity.
    pub zipf_s: f64,
    /// Items released during the trace (rise and fade).
    pub new_releases: usize,
    /// Peak multiplier of a new release's weight, reached on day 3 after release.
    pub release_boost: f64,
    /// Items with a weekend pattern.
    pub weekend_items: usize,
    /// Standard deviation of the daily log-normal popularity noise.
    pub mood_sd: f64,
}

impl Default for TraceConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            start: Utc.with_ymd_and_hms(2017, 1, 2, 0, 0, 0).unwrap(),
            days: 60,
            users: 800,
            items: 150,
            views_per_day: 160.0,
            zipf_s: 0.9,
            new_releases: 8,
            release_boost: 4.0,
            weekend_items: 6,
            mood_sd: 0.6,
        }
    }
}

/// Relative views per hour of day (UTC), mean 1: evening peak, night trough.
pub const DAILY_PROFILE: [f64; 24] = [
    0.40, 0.22, 0.09, 0.06, 0.06, 0.08, 0.15, 0.35, 0.50, 0.60, 0.70, 0.80, //
    0.95, 1.00, 0.95, 0.95, 1.10, 1.35, 1.65, 1.85, 1.90, 1.80, 1.45, 0.90,
];

/// Title words used to invent plausible titles (not a real catalogue).
const ADJ: [&str; 24] = [
    "Silent", "Crimson", "Lost", "Hidden", "Broken", "Golden", "Last", "Frozen", "Wild", "Dark",
    "Electric", "Secret", "Endless", "Hollow", "Iron", "Northern", "Burning", "Quiet", "Savage",
    "Distant", "Paper", "Glass", "Midnight", "Scarlet",
];
const NOUN: [&str; 24] = [
    "Harbor", "Kingdom", "Protocol", "Garden", "Frontier", "Signal", "Empire", "River", "Horizon",
    "Witness", "Orchard", "Machine", "Voyage", "Summer", "Tide", "Letters", "Circuit", "Island",
    "Crown", "Station", "Forest", "Archive", "Canyon", "Lantern",
];
const GENRES: [&str; 12] = [
    "Action",
    "Adventure",
    "Comedy",
    "Drama",
    "Thriller",
    "Horror",
    "Romance",
    "Sci-Fi",
    "Animation",
    "Family",
    "Documentary",
    "Crime",
];
/// A few real famous titles, given to some of the most popular items.
const FAMOUS: [&str; 6] = [
    "Iron Man 2",
    "Stranger Things",
    "The Crown",
    "Toy Story",
    "Inception",
    "Frozen",
];

/// One catalogue item of the generator.
struct Item {
    title: String,
    genres: String,
    movie_id: String,
    release: Option<usize>,
    release_date: String,
    weight: f64,
    weekend: bool,
}

/// Poisson sample (Knuth for small means, normal approximation above 30).
fn poisson(rng: &mut StdRng, mean: f64) -> usize {
    if mean <= 0.0 {
        return 0;
    }
    if mean > 30.0 {
        return (mean + normal(rng) * mean.sqrt()).round().max(0.0) as usize;
    }
    let l = (-mean).exp();
    let (mut k, mut p) = (0usize, 1.0f64);
    loop {
        p *= rng.random::<f64>();
        if p <= l {
            return k;
        }
        k += 1;
    }
}

/// Standard normal sample (Box-Muller) from `rng`.
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn hex_id(rng: &mut StdRng) -> String {
    format!("{:010x}", rng.random::<u64>() & 0xff_ffff_ffff)
}

/// Trend multiplier of a new release `x` days after release: gamma-shaped, 0 at release,
/// `boost` at day 3, back near 1 after about three weeks.
fn release_curve(x: f64, boost: f64) -> f64 {
    let peak = 3.0;
    let r = (x + 0.5) / peak;
    0.3 + boost * r * (1.0 - r).exp()
}

fn catalogue(cfg: &TraceConfig, rng: &mut StdRng) -> Vec<Item> {
    let mut items = Vec::with_capacity(cfg.items);
    let mut used = std::collections::HashSet::new();
    let total: f64 = (1..=cfg.items).map(|r| (r as f64).powf(-cfg.zipf_s)).sum();
    // New releases get ranks spread over the head (2, 5, 8, ...) so they enter the top items;
    // weekend titles take ranks 3, 7, 11, ...
    let release_ranks: Vec<usize> = (0..cfg.new_releases).map(|i| 2 + 3 * i).collect();
    let weekend_ranks: Vec<usize> = (0..cfg.weekend_items).map(|i| 3 + 4 * i).collect();
    let mut famous = FAMOUS.iter();
    let mut n_release = 0;
    for rank in 1..=cfg.items {
        let title = loop {
            let t = if rank % 7 == 1 {
                famous.next().map(|s| s.to_string())
            } else {
                None
            };
            let t = t.unwrap_or_else(|| {
                let a = ADJ[rng.random_range(0..ADJ.len())];
                let n = NOUN[rng.random_range(0..NOUN.len())];
                match rng.random_range(0..6) {
                    0 => format!("The {a} {n}"),
                    1 => format!("{a} {n} 2"),
                    2 => format!("{n} of the {a}"),
                    3 => format!("{a} {n}: Season {}", rng.random_range(1..5)),
                    _ => format!("{a} {n}"),
                }
            });
            if used.insert(t.clone()) {
                break t;
            }
        };
        let g1 = GENRES[rng.random_range(0..GENRES.len())];
        let g2 = GENRES[rng.random_range(0..GENRES.len())];
        let genres = if g1 == g2 {
            g1.to_string()
        } else {
            format!("{g1}, {g2}")
        };
        let is_release = release_ranks.contains(&rank) && n_release < cfg.new_releases;
        let release = if is_release {
            // Evenly spaced over the trace, the last one 4 days before its end.
            let span = cfg.days.saturating_sub(4).max(1) as f64;
            let d = (span * (n_release as f64 + 1.0) / cfg.new_releases as f64) as usize;
            n_release += 1;
            Some(d.min(cfg.days.saturating_sub(1)))
        } else {
            None
        };
        let release_date = match release {
            Some(d) => (cfg.start + Duration::days(d as i64))
                .format("%Y-%m-%d")
                .to_string(),
            None => {
                let y = rng.random_range(1995..2017);
                format!(
                    "{y}-{:02}-{:02}",
                    rng.random_range(1..13),
                    rng.random_range(1..29)
                )
            }
        };
        items.push(Item {
            title,
            genres,
            movie_id: hex_id(rng),
            release,
            release_date,
            weight: (rank as f64).powf(-cfg.zipf_s) / total,
            weekend: weekend_ranks.contains(&rank),
        });
    }
    items
}

/// Generates a viewing trace from `cfg`, sorted by time. Deterministic in `cfg`.
pub fn generate(cfg: &TraceConfig) -> Result<Vec<ViewEvent>> {
    if cfg.items == 0 || cfg.users == 0 || cfg.days == 0 {
        return Err(Error::Invalid(
            "trace needs at least one item, user and day".into(),
        ));
    }
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let items = catalogue(cfg, &mut rng);
    let users: Vec<String> = (0..cfg.users).map(|_| hex_id(&mut rng)).collect();
    let user_total: f64 = (1..=cfg.users).map(|r| (r as f64).powf(-0.8)).sum();
    let user_cdf: Vec<f64> = (1..=cfg.users)
        .scan(0.0, |acc, r| {
            *acc += (r as f64).powf(-0.8) / user_total;
            Some(*acc)
        })
        .collect();
    let mut mood = vec![0.0f64; items.len()];
    let rho: f64 = 0.7;
    let mut events = Vec::new();
    for day in 0..cfg.days {
        let date = cfg.start + Duration::days(day as i64);
        let dow = date.weekday().num_days_from_monday(); // 0 = Monday
        let weekend = dow >= 4; // Friday to Sunday
        for m in mood.iter_mut() {
            *m = rho * *m + (1.0 - rho * rho).sqrt() * cfg.mood_sd * normal(&mut rng);
        }
        for (hour, daily) in DAILY_PROFILE.iter().enumerate() {
            let t0 = date + Duration::hours(hour as i64);
            for (i, it) in items.iter().enumerate() {
                let trend = match it.release {
                    Some(r) if day < r => continue,
                    Some(r) => release_curve((day - r) as f64, cfg.release_boost),
                    None => 1.0,
                };
                let weekly = match (it.weekend, weekend) {
                    (true, true) => 2.2,
                    (true, false) => 0.4,
                    (false, true) => 1.15,
                    (false, false) => 1.0,
                };
                // exp(mood - sd^2/2) has mean 1.
                let noise = (mood[i] - cfg.mood_sd * cfg.mood_sd / 2.0).exp();
                let mean = cfg.views_per_day / 24.0 * daily * weekly * it.weight * trend * noise;
                for _ in 0..poisson(&mut rng, mean) {
                    let secs = rng.random_range(0..3600);
                    let u = rng.random::<f64>();
                    let ui = user_cdf.partition_point(|c| *c < u).min(users.len() - 1);
                    // Watch time: mostly a full episode or film, sometimes abandoned.
                    let duration_s = if rng.random::<f64>() < 0.15 {
                        0.0
                    } else {
                        (rng.random_range(300.0..7200.0f64)).round()
                    };
                    events.push(ViewEvent {
                        datetime: t0 + Duration::seconds(secs),
                        duration_s,
                        title: it.title.clone(),
                        genres: it.genres.clone(),
                        release_date: it.release_date.clone(),
                        movie_id: it.movie_id.clone(),
                        user_id: users[ui].clone(),
                    });
                }
            }
        }
    }
    events.sort_by(|a, b| {
        a.datetime
            .cmp(&b.datetime)
            .then_with(|| a.movie_id.cmp(&b.movie_id))
    });
    Ok(events)
}

/// Quotes a CSV field when it holds a comma, quote or line break.
fn csv_field(out: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// Renders events in the Netflix audience-behaviour CSV layout (header + one row each).
pub fn to_csv(events: &[ViewEvent]) -> String {
    let mut out = COLUMNS.join(",");
    out.push('\n');
    for e in events {
        let _ = write!(
            out,
            "{},{},",
            e.datetime.format(DATETIME_FORMAT),
            e.duration_s
        );
        csv_field(&mut out, &e.title);
        out.push(',');
        csv_field(&mut out, &e.genres);
        out.push(',');
        csv_field(&mut out, &e.release_date);
        out.push(',');
        csv_field(&mut out, &e.movie_id);
        out.push(',');
        csv_field(&mut out, &e.user_id);
        out.push('\n');
    }
    out
}

/// Writes events to `path` in the Netflix audience-behaviour CSV layout.
pub fn write_csv(path: &Path, events: &[ViewEvent]) -> Result<()> {
    std::fs::write(path, to_csv(events))?;
    Ok(())
}

/// Splits CSV text into records: `(line number where the record starts, fields)`. Handles
/// quoted fields with commas, doubled quotes and line breaks; skips blank lines.
fn csv_records(text: &str) -> Result<Vec<(usize, Vec<String>)>> {
    let mut records = Vec::new();
    let (mut fields, mut field) = (Vec::new(), String::new());
    let (mut line, mut start_line) = (1usize, 1usize);
    let (mut in_quotes, mut quoted, mut any) = (false, false, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() && !quoted => {
                in_quotes = true;
                quoted = true;
                any = true;
            }
            '"' => {
                return Err(Error::Invalid(format!(
                    "line {line}: stray quote inside an unquoted field"
                )))
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                quoted = false;
                any = true;
            }
            '\r' => {}
            '\n' => {
                if any || !field.is_empty() {
                    fields.push(std::mem::take(&mut field));
                    records.push((start_line, std::mem::take(&mut fields)));
                }
                quoted = false;
                any = false;
                line += 1;
                start_line = line;
            }
            _ => {
                if quoted {
                    return Err(Error::Invalid(format!(
                        "line {line}: text after a closing quote"
                    )));
                }
                field.push(c);
                any = true;
            }
        }
    }
    if in_quotes {
        return Err(Error::Invalid(format!(
            "line {start_line}: unterminated quoted field"
        )));
    }
    if any || !field.is_empty() {
        fields.push(field);
        records.push((start_line, fields));
    }
    Ok(records)
}

/// Parses CSV text in the Netflix audience-behaviour layout. The header names the columns in
/// any order (extra columns, such as the unnamed index column of the original file, are
/// ignored); every one of [`COLUMNS`] must be present. A bad row is an error naming its line.
pub fn parse_csv(text: &str) -> Result<Vec<ViewEvent>> {
    let mut records = csv_records(text)?.into_iter();
    let (_, header) = records
        .next()
        .ok_or_else(|| Error::Invalid("line 1: empty file, expected a header".into()))?;
    let pos: HashMap<&str, usize> = header
        .iter()
        .enumerate()
        .map(|(i, h)| (h.trim().trim_start_matches('\u{feff}'), i))
        .collect();
    let mut idx = [0usize; 7];
    for (k, col) in COLUMNS.iter().enumerate() {
        idx[k] = *pos.get(col).ok_or_else(|| {
            Error::Invalid(format!(
                "line 1: header lacks column '{col}' (has {header:?})"
            ))
        })?;
    }
    let mut out = Vec::new();
    for (line, f) in records {
        if f.len() != header.len() {
            return Err(Error::Invalid(format!(
                "line {line}: {} fields, the header has {}",
                f.len(),
                header.len()
            )));
        }
        let get = |k: usize| f[idx[k]].trim();
        let datetime = NaiveDateTime::parse_from_str(get(0), DATETIME_FORMAT)
            .map(|d| d.and_utc())
            .or_else(|_| DateTime::parse_from_rfc3339(get(0)).map(|d| d.with_timezone(&Utc)))
            .map_err(|_| {
                Error::Invalid(format!(
                    "line {line}: bad datetime '{}' (expected YYYY-MM-DD HH:MM:SS)",
                    get(0)
                ))
            })?;
        let duration_s: f64 = get(1)
            .parse()
            .map_err(|_| Error::Invalid(format!("line {line}: bad duration '{}'", get(1))))?;
        if !duration_s.is_finite() || duration_s < 0.0 {
            return Err(Error::Invalid(format!(
                "line {line}: duration must be a non-negative number of seconds"
            )));
        }
        if get(5).is_empty() {
            return Err(Error::Invalid(format!("line {line}: empty movie_id")));
        }
        out.push(ViewEvent {
            datetime,
            duration_s,
            title: get(2).to_string(),
            genres: get(3).to_string(),
            release_date: get(4).to_string(),
            movie_id: get(5).to_string(),
            user_id: get(6).to_string(),
        });
    }
    Ok(out)
}

/// Reads a Netflix audience-behaviour CSV file (see [`parse_csv`]); events come back sorted
/// by time.
pub fn read_csv(path: &Path) -> Result<Vec<ViewEvent>> {
    let text = std::fs::read_to_string(path)?;
    let mut events = parse_csv(&text).map_err(|e| match e {
        Error::Invalid(m) => Error::Invalid(format!("{}: {m}", path.display())),
        e => e,
    })?;
    events.sort_by_key(|e| e.datetime);
    Ok(events)
}

/// Hour of day (UTC) of an event, e.g. to check the daily cycle.
pub fn hour_of(e: &ViewEvent) -> u32 {
    e.datetime.hour()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_with_commas_quotes_and_newlines_round_trip() {
        let e = ViewEvent {
            datetime: Utc.with_ymd_and_hms(2017, 3, 4, 5, 6, 7).unwrap(),
            duration_s: 12.5,
            title: "Say \"Hi\", Bob\nPart 2".into(),
            genres: "Action, Drama".into(),
            release_date: "NOT AVAILABLE".into(),
            movie_id: "ab12".into(),
            user_id: "cd34".into(),
        };
        let back = parse_csv(&to_csv(std::slice::from_ref(&e))).unwrap();
        assert_eq!(back, vec![e]);
    }

    #[test]
    fn release_curve_rises_then_fades() {
        let c: Vec<f64> = (0..30).map(|d| release_curve(d as f64, 4.0)).collect();
        assert!(c[2] > c[0] && c[2] > c[10] && c[10] > c[29]);
    }
}
