//! Content popularity prediction: the trace generator's stated properties, the Netflix CSV
//! layout, interval cutting and labels, top-item selection, the shipped artefacts' figures
//! and the runtime predictor.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Device;
use chrono::{Duration, TimeZone, Utc};
use netgpt_models::analytics::popularity::{
    self, build_dataset, intervals, split_chronological, top_items, PopularityPredictor,
    PopularitySettings, GPT_ROW, GRU_ROW, LSTM_ROW, MAJORITY_ROW, PREVIOUS_ROW,
};
use netgpt_models::analytics::trace::{self, TraceConfig, ViewEvent};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn ev(y: i32, mo: u32, d: u32, h: u32, mi: u32, id: &str) -> ViewEvent {
    ViewEvent {
        datetime: Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap(),
        duration_s: 60.0,
        title: format!("Title {id}"),
        genres: "Drama".into(),
        release_date: "2010-01-01".into(),
        movie_id: id.into(),
        user_id: "u1".into(),
    }
}

#[test]
fn generator_is_deterministic_by_seed() {
    let cfg = TraceConfig {
        days: 10,
        ..Default::default()
    };
    let a = trace::generate(&cfg).unwrap();
    assert_eq!(a, trace::generate(&cfg).unwrap());
    let b = trace::generate(&TraceConfig { seed: 7, ..cfg }).unwrap();
    assert_ne!(a, b);
    assert!(a.windows(2).all(|w| w[0].datetime <= w[1].datetime));
}

#[test]
fn generated_trace_has_a_daily_cycle_zipf_head_and_releases() {
    let cfg = TraceConfig::default();
    let events = trace::generate(&cfg).unwrap();
    let evening = events.iter().filter(|e| trace::hour_of(e) >= 18).count();
    let night = events.iter().filter(|e| trace::hour_of(e) < 6).count();
    assert!(evening > 5 * night, "evening {evening} vs night {night}");
    // Zipf: the 10 % most viewed items take far more than 10 % of the views.
    let top = top_items(&events, cfg.items / 10);
    let share = top.iter().map(|t| t.views).sum::<usize>() as f64 / events.len() as f64;
    assert!(share > 0.4, "head share {share}");
    // New releases: no view before the release date, and some inside the trace.
    let start = cfg.start.format("%Y-%m-%d").to_string();
    let released: Vec<&ViewEvent> = events.iter().filter(|e| e.release_date > start).collect();
    assert!(!released.is_empty());
    for e in released {
        assert!(e.datetime.format("%Y-%m-%d").to_string() >= e.release_date);
    }
    // Plausible records: hex ids, durations within a film's length.
    assert!(events
        .iter()
        .all(|e| e.movie_id.len() == 10 && e.duration_s <= 7200.0));
    assert!(events.iter().any(|e| e.title == "Iron Man 2"));
}

#[test]
fn labels_are_balanced_enough_and_not_trivially_predictable() {
    let s = PopularitySettings::default();
    let events = trace::generate(&s.trace).unwrap();
    let ds = build_dataset(&events, s.top_n, s.history).unwrap();
    let pos = ds.samples.iter().filter(|x| x.label).count() as f64 / ds.samples.len() as f64;
    assert!((0.25..0.75).contains(&pos), "positive rate {pos}");
    let prev = ds
        .samples
        .iter()
        .filter(|x| x.history.last() == Some(&x.label))
        .count() as f64
        / ds.samples.len() as f64;
    assert!(prev < 0.8, "previous-interval accuracy {prev}");
    let (train, test) = split_chronological(&ds, s.test_frac);
    assert_eq!(train.len() + test.len(), ds.samples.len());
    assert!(train.iter().all(|a| a.interval < test[0].interval));
    assert_eq!(test.len(), 12 * s.top_n);
}

#[test]
fn csv_round_trips_through_the_netflix_layout() {
    let events = trace::generate(&TraceConfig {
        days: 3,
        ..Default::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("viewing.csv");
    trace::write_csv(&path, &events).unwrap();
    assert_eq!(trace::read_csv(&path).unwrap(), events);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("datetime,duration,title,genres,release_date,movie_id,user_id\n"));
}

#[test]
fn csv_loader_takes_columns_in_any_order_with_quoted_commas() {
    // The original file's layout: an unnamed index column, quoted multi-genre fields.
    let text = ",user_id,movie_id,datetime,duration,title,genres,release_date\n\
        0,1dea19f6fe,26bd5987e8,2017-01-01 01:15:09,0.0,\"Angus, Thongs and Perfect Snogging\",\"Comedy, Drama, Romance\",2008-07-25\n\
        1,544dcbc510,f26ed2675e,2017-01-01 13:56:02,4903.0,The Curse of Sleeping Beauty,\"Fantasy, Horror, Mystery, Thriller\",2016-06-02\n";
    let ev = trace::parse_csv(text).unwrap();
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0].title, "Angus, Thongs and Perfect Snogging");
    assert_eq!(ev[0].genres, "Comedy, Drama, Romance");
    assert_eq!(ev[1].duration_s, 4903.0);
    assert_eq!(ev[1].movie_id, "f26ed2675e");
    assert_eq!(ev[0].user_id, "1dea19f6fe");
    assert_eq!(
        ev[1].datetime,
        Utc.with_ymd_and_hms(2017, 1, 1, 13, 56, 2).unwrap()
    );
}

#[test]
fn csv_loader_names_the_line_of_a_bad_row() {
    let head = "datetime,duration,title,genres,release_date,movie_id,user_id\n";
    let good = "2017-01-01 01:00:00,10,A,Drama,2010-01-01,m1,u1\n";
    let cases = [
        (
            "2017-13-01 01:00:00,10,A,Drama,2010-01-01,m1,u1\n",
            "bad datetime",
        ),
        (
            "2017-01-01 01:00:00,ten,A,Drama,2010-01-01,m1,u1\n",
            "bad duration",
        ),
        ("2017-01-01 01:00:00,10,A,Drama,2010-01-01,m1\n", "fields"),
        (
            "2017-01-01 01:00:00,10,\"A,Drama,2010-01-01,m1,u1\n",
            "unterminated",
        ),
    ];
    for (bad, what) in cases {
        let err = trace::parse_csv(&format!("{head}{good}{bad}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3") && err.contains(what), "{err}");
    }
    let err = trace::parse_csv("datetime,title\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 1") && err.contains("duration"), "{err}");
}

#[test]
fn intervals_and_labels_on_a_hand_built_trace() {
    // First event Monday 2017-01-02 05:30 -> interval 0 is 00-06h of that day.
    let events = vec![
        ev(2017, 1, 2, 5, 30, "a"),
        ev(2017, 1, 2, 6, 0, "a"),   // interval 1
        ev(2017, 1, 2, 11, 59, "b"), // interval 1
        ev(2017, 1, 2, 18, 0, "a"),  // interval 3
        ev(2017, 1, 3, 0, 10, "b"),  // interval 4
        ev(2017, 1, 3, 0, 20, "b"),
    ];
    assert_eq!(intervals(&events), 5);
    assert_eq!(intervals(&[]), 0);
    let ds = build_dataset(&events, 20, 2).unwrap();
    assert_eq!(ds.items.len(), 2);
    assert_eq!(ds.items[0].movie_id, "a"); // 3 views vs 3: tie broken by id
    let get = |k: usize, id: &str| {
        ds.samples
            .iter()
            .find(|s| s.interval == k && s.movie_id == id)
            .unwrap()
            .clone()
    };
    assert_eq!(ds.samples.len(), 3 * 2); // intervals 2, 3, 4 have 2 past intervals
    let s = get(2, "a");
    assert_eq!((s.history.clone(), s.label), (vec![true, true], false));
    assert_eq!(s.start, Utc.with_ymd_and_hms(2017, 1, 2, 12, 0, 0).unwrap());
    assert_eq!((get(3, "a").label, get(3, "b").label), (true, false));
    assert_eq!(get(4, "b").history, vec![false, false]);
    assert!(get(4, "b").label);
    assert_eq!(
        get(3, "a").prompt(),
        "In interval 3 (Mon 18-24h, last 2: 1,0), movie 'Title a' appear:"
    );
}

#[test]
fn top_items_are_the_most_viewed() {
    let mut events = Vec::new();
    for i in 0..25u32 {
        for k in 0..=i {
            events.push(ev(2017, 1, 2, 1, k % 60, &format!("m{i:02}")));
        }
    }
    let top = top_items(&events, 20);
    assert_eq!(top.len(), 20);
    assert_eq!(top[0].movie_id, "m24");
    assert_eq!(top[0].views, 25);
    assert_eq!(top[19].movie_id, "m05");
    assert!(top.windows(2).all(|w| w[0].views > w[1].views));
}

/// The figures stated in models/analytics/popularity/README.md: (row, accuracy, F1).
const README_FIGURES: [(&str, f64, f64); 5] = [
    (GPT_ROW, 0.7333, 0.6484),
    (LSTM_ROW, 0.7458, 0.6258),
    (GRU_ROW, 0.7458, 0.6303),
    (MAJORITY_ROW, 0.6292, 0.0),
    (PREVIOUS_ROW, 0.6000, 0.4545),
];

#[test]
fn shipped_artefacts_give_the_readme_figures_and_beat_the_baselines() {
    let r = popularity::evaluate_shipped(&repo_root()).unwrap();
    assert_eq!((r.split.train, r.split.test), (4400, 240));
    for (name, acc, f1) in README_FIGURES {
        let row = r.row(name).unwrap();
        assert!(
            (row.accuracy - acc).abs() < 1e-3 && (row.f1 - f1).abs() < 1e-3,
            "{name}: measured {row:?}, README says accuracy {acc} F1 {f1}"
        );
    }
    let gpt = r.row(GPT_ROW).unwrap();
    for base in [MAJORITY_ROW, PREVIOUS_ROW] {
        let b = r.row(base).unwrap();
        assert!(gpt.accuracy > b.accuracy, "{gpt:?} vs {b:?}");
    }
    assert!(gpt.f1 > r.row(PREVIOUS_ROW).unwrap().f1);
    // The committed report.json holds the same table.
    let shipped: popularity::Report = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("models/analytics/popularity/report.json"))
            .unwrap(),
    )
    .unwrap();
    for row in &shipped.rows {
        let now = r.row(&row.model).unwrap();
        assert_eq!(
            (now.tp, now.fp, now.tn, now.fn_),
            (row.tp, row.fp, row.tn, row.fn_)
        );
    }
    assert!(r.to_markdown().contains("| edge GPT-2 (fine-tuned) |"));
}

#[test]
fn predictor_forecasts_the_top_items_from_past_events_only() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PopularityPredictor>();
    let models = repo_root().join("models");
    let p = PopularityPredictor::load(&models, &Device::Cpu).unwrap();
    let s = PopularitySettings::default();
    let events = trace::generate(&s.trace).unwrap();
    let n = PopularityPredictor::intervals(&events);
    assert_eq!(n, s.trace.days * 4);
    let k = n - 3;
    let f = p.forecast(&events, k).unwrap();
    assert_eq!(f.len(), 20);
    assert!(f.iter().all(|x| (0.0..=1.0).contains(&x.probability)));
    assert!(f.iter().all(|x| x.appears == (x.probability > 0.5)));
    assert!(f.iter().any(|x| x.appears) && f.iter().any(|x| !x.appears));
    // Events at or after the interval change nothing.
    let cut = events[0].datetime + Duration::hours(6 * k as i64 + 100);
    let mut more: Vec<ViewEvent> = events
        .iter()
        .filter(|e| e.datetime < cut)
        .cloned()
        .collect();
    more.push(ViewEvent {
        datetime: cut,
        ..events[0].clone()
    });
    assert_eq!(p.forecast(&more, k).unwrap(), f);
    // Same prompt as the evaluation's sample for items followed in both.
    let ds = build_dataset(&events, 20, p.history()).unwrap();
    let by_id: HashMap<&str, &popularity::Sample> = ds
        .samples
        .iter()
        .filter(|x| x.interval == k)
        .map(|x| (x.movie_id.as_str(), x))
        .collect();
    let dir = models.join(popularity::ARTEFACT_DIR);
    let gpt = netgpt_models::gpt2::Gpt2::load(&dir, &Device::Cpu).unwrap();
    let tok = netgpt_models::bpe::load(&models.join("edge/tokenizer.json")).unwrap();
    let ids = popularity::label_ids(&tok).unwrap();
    let mut shared = 0;
    for x in &f {
        if let Some(sample) = by_id.get(x.movie_id.as_str()) {
            shared += 1;
            assert_eq!(x.title, sample.title);
            let q = popularity::gpt_probabilities(&gpt, &tok, ids, &[sample.prompt()]).unwrap();
            assert!((q[0] - x.probability).abs() < 1e-4, "{x:?} vs {q:?}");
        }
    }
    assert!(shared >= 15, "only {shared} items in common");
    let json = serde_json::to_value(&f[0]).unwrap();
    assert!(json.get("movieId").is_some() && json.get("appears").is_some());
    assert!(p.forecast(&events, 0).is_err());
    assert!(p.forecast(&[], 3).is_err());
}
