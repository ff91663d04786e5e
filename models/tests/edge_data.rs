//! Data sets: the four sites' profiles, deterministic pair generation, the shipped files,
//! the fact check, the BPE tokenizer.

use std::path::PathBuf;

use netgpt_models::bpe;
use netgpt_models::data::pairs::{self, check_completion};
use netgpt_models::data::profiles;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data")
}

#[test]
fn profiles_cover_the_four_testbed_sites() {
    let p = profiles::builtin();
    assert_eq!(
        profiles::site_ids(&p),
        vec!["edge-hangzhou", "edge-london", "edge-newyork", "edge-paris"]
    );
    for (id, s) in &p {
        assert_eq!(s.categories.len(), 8, "{id}");
        for (cat, facts) in &s.categories {
            assert!(facts.len() >= 3, "{id} {cat}");
        }
    }
    assert!(p["edge-london"]
        .all_facts()
        .any(|f| f.name == "British Library"));
    assert!(p["edge-paris"]
        .all_facts()
        .any(|f| f.name == "Bibliothèque Sainte-Geneviève"));
    assert!(p["edge-newyork"]
        .all_facts()
        .any(|f| f.name == "New York Public Library Stephen A. Schwarzman Building"));
    assert!(p["edge-hangzhou"]
        .all_facts()
        .any(|f| f.name == "Zhejiang Library"));
    // The shipped JSON file is the compiled-in one.
    let shipped = profiles::load(&data_dir().join("location_profiles.json")).unwrap();
    assert_eq!(shipped, p);
}

#[test]
fn generation_is_deterministic_balanced_and_correct_by_construction() {
    let p = profiles::builtin();
    let a = pairs::generate(&p, 400, 7);
    assert_eq!(a, pairs::generate(&p, 400, 7));
    assert_ne!(a, pairs::generate(&p, 400, 8));
    for site in profiles::site_ids(&p) {
        assert_eq!(a.iter().filter(|x| x.site == site).count(), 100);
    }
    for x in &a {
        assert!(x.facts.len() >= 2);
        for f in &x.facts {
            assert!(
                x.completion.contains(f.as_str()),
                "{f} not in {}",
                x.completion
            );
        }
        let c = check_completion(&p, &x.site, &x.category, &x.completion);
        assert!(c.correct() && c.right_site_fact, "{x:?} -> {c:?}");
        assert!(x.completion.contains(&p[&x.site].city));
    }
    let (train, held) = pairs::split(a, 0.1, 7);
    assert_eq!((train.len(), held.len()), (360, 40));
}

#[test]
fn shipped_pairs_are_what_the_generator_writes() {
    let train = pairs::read_jsonl(&data_dir().join(pairs::TRAIN_FILE)).unwrap();
    let held = pairs::read_jsonl(&data_dir().join(pairs::HELDOUT_FILE)).unwrap();
    let (t, h) = pairs::split(pairs::generate(&profiles::builtin(), 4000, 42), 0.1, 42);
    assert_eq!((train.len(), held.len()), (3600, 400));
    assert!(
        train == t && held == h,
        "models/data differs from `netgpt gen-data --seed 42`"
    );
}

#[test]
fn fact_check_flags_other_sites() {
    let p = profiles::builtin();
    let c = check_completion(
        &p,
        "edge-london",
        "libraries",
        "I am near King's Cross in London. Recommend libraries, such as the British Library.",
    );
    assert!(c.correct());
    let c = check_completion(
        &p,
        "edge-london",
        "libraries",
        "Recommend libraries such as the British Library and Bibliothèque Mazarine.",
    );
    assert!(c.right_category_fact && c.other_site && !c.correct());
    let c = check_completion(
        &p,
        "edge-london",
        "libraries",
        "I am near King's Cross. Try the British Museum.",
    );
    assert!(c.right_site_fact && !c.right_category_fact);
}

#[test]
fn bpe_tokenizer_round_trips_and_keeps_special_tokens() {
    let p = profiles::builtin();
    let ps = pairs::generate(&p, 200, 1);
    let texts: Vec<String> = ps
        .iter()
        .map(|x| bpe::edge_example(&x.site, &x.concise, &x.completion))
        .collect();
    let tok = bpe::train_bpe(texts.iter(), 600).unwrap();
    assert!(tok.get_vocab_size(true) <= 600);
    for (i, s) in bpe::SPECIAL_TOKENS.iter().enumerate() {
        assert_eq!(bpe::special_id(&tok, s).unwrap(), i as u32);
    }
    let x = &ps[0];
    let full = bpe::encode(&tok, &texts[0]).unwrap();
    let prompt = bpe::encode(&tok, &bpe::edge_prompt(&x.site, &x.concise)).unwrap();
    assert_eq!(&full[..prompt.len()], prompt.as_slice());
    assert_eq!(
        *full.last().unwrap(),
        bpe::special_id(&tok, bpe::END).unwrap()
    );
    let text = "I am near the Latin Quarter in Paris: Bibliothèque Sainte-Geneviève, 42nd Street.";
    assert_eq!(
        bpe::decode(&tok, &bpe::encode(&tok, text).unwrap()).unwrap(),
        text
    );
    let dir = tempfile::tempdir().unwrap();
    bpe::save(&tok, &dir.path().join("tokenizer.json")).unwrap();
    let again = bpe::load(&dir.path().join("tokenizer.json")).unwrap();
    assert_eq!(
        bpe::encode(&again, text).unwrap(),
        bpe::encode(&tok, text).unwrap()
    );
}

#[test]
fn novel_probes_are_not_training_phrasings() {
    let train = pairs::read_jsonl(&data_dir().join(pairs::TRAIN_FILE)).unwrap();
    for (cat, probe) in pairs::NOVEL_PROBES {
        assert!(profiles::builtin()["edge-london"]
            .categories
            .contains_key(*cat));
        let probe = probe.to_lowercase();
        assert!(
            !train
                .iter()
                .any(|p| p.concise.to_lowercase().contains(&probe)),
            "{probe}"
        );
    }
}
