//! Duplicate prompts at the edge: a window of recent prompts per scope (exact, normalised and
//! near duplicates), single flight (concurrent identical requests make one upstream call) and
//! a TTL- and size-bounded response cache, with counters of what they saved.
//!
//! Time is injected: the window and the cache take an [`Instant`] in their `*_at` methods
//! (the plain methods pass `Instant::now()`), so tests move the clock instead of sleeping.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use utoipa::ToSchema;

/// Locks a mutex, going on with the data if a panicking holder poisoned it: every critical
/// section here leaves the data consistent between statements.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Canonical form of a prompt: case-folded, quotes and apostrophes removed (`what's` ->
/// `whats`), other punctuation and symbols turned into spaces, whitespace collapsed, trimmed.
/// Stable: `normalize(normalize(x)) == normalize(x)`.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    // Lower-casing may yield several chars (`İ` -> `i` + U+0307); each is classified, which
    // keeps the function stable.
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push(c);
        } else if !matches!(
            c,
            '\'' | '"' | '`' | '´' | '‘' | '’' | '‚' | '“' | '”' | '„' | '«' | '»'
        ) {
            pending_space = true;
        }
    }
    out
}

/// Words that shape a request's phrasing but not what it asks for.
const STOP_WORDS: &[&str] = &[
    "a", "an", "the", "some", "any", "please", "pls", "kindly", "me", "my", "i", "im", "you", "we",
    "us", "our", "your", "can", "could", "would", "will", "should", "to", "for", "of", "in", "on",
    "at", "by", "with", "and", "or", "is", "are", "be", "do", "does", "what", "whats", "which",
    "it", "this", "that", "these", "those", "there", "here", "just", "also", "tell", "give",
    "show", "hi", "hello", "thanks", "thank",
];

/// What [`similarity`] compares, computed once per window entry.
#[derive(Debug, Clone)]
struct Features {
    words: HashSet<String>,
    shingles: HashSet<String>,
    numbers: BTreeSet<String>,
}

impl Features {
    fn of_normalized(normalized: &str) -> Self {
        let all: Vec<&str> = normalized.split(' ').filter(|w| !w.is_empty()).collect();
        let content: Vec<&str> = all
            .iter()
            .copied()
            .filter(|w| !STOP_WORDS.contains(w))
            .collect();
        // A prompt made only of stop words is compared on all of them.
        let content = if content.is_empty() { all } else { content };
        let text = content.join(" ");
        let chars: Vec<char> = text.chars().collect();
        let shingles = if chars.len() < 3 {
            HashSet::from([text.clone()])
        } else {
            chars.windows(3).map(|w| w.iter().collect()).collect()
        };
        Self {
            numbers: content
                .iter()
                .filter(|w| w.chars().any(|c| c.is_numeric()))
                .map(|w| w.to_string())
                .collect(),
            words: content.into_iter().map(str::to_string).collect(),
            shingles,
        }
    }

    fn similarity(&self, other: &Self) -> f64 {
        let s = 0.5 * jaccard(&self.words, &other.words)
            + 0.5 * jaccard(&self.shingles, &other.shingles);
        if self.numbers == other.numbers {
            s
        } else {
            s * 0.5
        }
    }
}

fn jaccard(a: &HashSet<String>, b: &HashSet<String>) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let inter = a.intersection(b).count();
    inter as f64 / (a.len() + b.len() - inter) as f64
}

/// Similarity of two prompts in `[0, 1]`, on their [`normalize`]d text with stop words
/// ("some", "please", "the", ...) removed: the mean of the Jaccard index of the word sets and
/// the Jaccard index of the character 3-gram shingles. Halved when the numbers differ.
///
/// Why this blend: word Jaccard sees which content words two prompts share whatever their
/// order or the filler around them; 3-gram shingles give partial credit for near-identical
/// words the word sets miss (plurals, typos, `wifi`/`wi fi`) and reward the same word order. Dropping stop
/// words makes "Please recommend some libraries" and "Recommend libraries" the same request
/// (1.0), while swapping one content word among five ("Italian" for "Chinese" restaurants near
/// King's Cross) stays near 0.69. Numbers carry the parameters of a request (10 vs 100 Gbps,
/// 10:30 vs 11:30), so prompts whose numbers differ are never near-duplicates at a sensible
/// threshold. Identical normalised texts score 1.0, prompts sharing nothing 0.0.
pub fn similarity(a: &str, b: &str) -> f64 {
    let (na, nb) = (normalize(a), normalize(b));
    if na == nb {
        return 1.0;
    }
    Features::of_normalized(&na).similarity(&Features::of_normalized(&nb))
}

/// Key of a prompt in a scope: hex SHA-256 of the scope, a NUL and the normalised text; the
/// same for every prompt that normalises alike. Also the natural response-cache key.
pub fn dedup_key(scope: &str, text: &str) -> String {
    key_of_normalized(scope, &normalize(text))
}

fn key_of_normalized(scope: &str, normalized: &str) -> String {
    let mut h = Sha256::new();
    h.update(scope.as_bytes());
    h.update([0u8]);
    h.update(normalized.as_bytes());
    hex::encode(h.finalize())
}

/// Settings of duplicate detection and the response cache.
#[derive(Debug, Clone, PartialEq)]
pub struct DedupConfig {
    /// How long a prompt stays in the window after it was last seen.
    pub window: Duration,
    /// Most prompts kept per scope; the least recently seen goes first.
    pub window_capacity: usize,
    /// [`similarity`] at or above which a prompt is a near duplicate.
    pub near_threshold: f64,
    /// How long a cached response is served.
    pub cache_ttl: Duration,
    /// Most responses cached; the least recently used goes first.
    pub cache_capacity: usize,
}

impl Default for DedupConfig {
    /// A minute of window, 1024 prompts per scope, near threshold 0.8 (see [`similarity`]:
    /// filler words removed stay above it, one content word changed falls below), five minutes
    /// of cache for 1024 responses.
    fn default() -> Self {
        Self {
            window: Duration::from_secs(60),
            window_capacity: 1024,
            near_threshold: 0.8,
            cache_ttl: Duration::from_secs(300),
            cache_capacity: 1024,
        }
    }
}

/// How a prompt relates to those in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DuplicateKind {
    /// Not seen in the window.
    Unique,
    /// The same text was seen.
    Exact,
    /// A text with the same normalised form was seen.
    Normalized,
    /// A text at least `nearThreshold` similar was seen.
    Near,
}

impl DuplicateKind {
    /// Whether the prompt duplicates an earlier one.
    pub fn is_duplicate(self) -> bool {
        self != DuplicateKind::Unique
    }
}

/// The window's verdict on one prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DedupVerdict {
    /// Unique, or which kind of duplicate.
    pub kind: DuplicateKind,
    /// Hex SHA-256 of the scope and the canonical prompt's normalised text.
    pub key: String,
    /// The prompt to use: the earlier representative for near and normalised duplicates,
    /// otherwise the input.
    pub canonical: String,
    /// Similarity to the closest prompt in the window (1 for exact and normalised
    /// duplicates; below the threshold, or 0 with an empty window, for unique prompts).
    pub similarity: f64,
    /// How many times the canonical prompt has been seen in the window, this one included.
    pub seen_count: u64,
}

struct WindowEntry {
    prompt: String,
    normalized: String,
    features: Features,
    last_seen: Instant,
    seen: u64,
}

/// Prompts seen in the last `window` (bounded by `window_capacity`, least recently seen
/// evicted), per scope (e.g. the site id). Thread-safe.
pub struct DedupWindow {
    window: Duration,
    capacity: usize,
    threshold: f64,
    scopes: Mutex<HashMap<String, VecDeque<WindowEntry>>>,
}

impl DedupWindow {
    /// An empty window with the window settings of `cfg`.
    pub fn new(cfg: &DedupConfig) -> Self {
        Self {
            window: cfg.window,
            capacity: cfg.window_capacity,
            threshold: cfg.near_threshold,
            scopes: Mutex::new(HashMap::new()),
        }
    }

    /// Classifies `prompt` against the prompts seen in `scope`, and records it.
    pub fn check(&self, scope: &str, prompt: &str) -> DedupVerdict {
        self.check_at(scope, prompt, Instant::now())
    }

    /// [`Self::check`] at a given time.
    pub fn check_at(&self, scope: &str, prompt: &str, now: Instant) -> DedupVerdict {
        let normalized = normalize(prompt);
        let mut scopes = lock(&self.scopes);
        let entries = scopes.entry(scope.to_string()).or_default();
        entries.retain(|e| now.saturating_duration_since(e.last_seen) < self.window);

        let mut hit = entries
            .iter()
            .position(|e| e.prompt == prompt)
            .map(|i| (i, DuplicateKind::Exact, 1.0))
            .or_else(|| {
                entries
                    .iter()
                    .position(|e| e.normalized == normalized)
                    .map(|i| (i, DuplicateKind::Normalized, 1.0))
            });
        let features = Features::of_normalized(&normalized);
        let mut best = 0.0_f64;
        if hit.is_none() {
            for (i, e) in entries.iter().enumerate() {
                let s = e.features.similarity(&features);
                if s > best {
                    best = s;
                    if s >= self.threshold {
                        hit = Some((i, DuplicateKind::Near, s));
                    }
                }
            }
        }

        if let Some((i, kind, similarity)) = hit {
            // Seen again: refresh it and move it to the back (most recently seen).
            let mut e = entries.remove(i).expect("index from the same deque");
            e.seen += 1;
            e.last_seen = now;
            let verdict = DedupVerdict {
                kind,
                key: key_of_normalized(scope, &e.normalized),
                canonical: if kind == DuplicateKind::Exact {
                    prompt.to_string()
                } else {
                    e.prompt.clone()
                },
                similarity,
                seen_count: e.seen,
            };
            entries.push_back(e);
            return verdict;
        }

        let verdict = DedupVerdict {
            kind: DuplicateKind::Unique,
            key: key_of_normalized(scope, &normalized),
            canonical: prompt.to_string(),
            similarity: best,
            seen_count: 1,
        };
        if self.capacity > 0 {
            while entries.len() >= self.capacity {
                entries.pop_front();
            }
            entries.push_back(WindowEntry {
                prompt: prompt.to_string(),
                normalized,
                features,
                last_seen: now,
                seen: 1,
            });
        }
        verdict
    }

    /// How many prompts `scope` holds (expired ones included until the next check there).
    pub fn len(&self, scope: &str) -> usize {
        lock(&self.scopes).get(scope).map_or(0, VecDeque::len)
    }

    /// Whether `scope` holds no prompt.
    pub fn is_empty(&self, scope: &str) -> bool {
        self.len(scope) == 0
    }
}

struct CacheEntry<V> {
    value: V,
    inserted: Instant,
    tick: u64,
}

struct CacheInner<V> {
    map: HashMap<String, CacheEntry<V>>,
    /// Use order: tick -> key; the smallest tick is the least recently used.
    order: BTreeMap<u64, String>,
    tick: u64,
}

impl<V> CacheInner<V> {
    fn touch(&mut self, key: &str) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(e) = self.map.get_mut(key) {
            self.order.remove(&e.tick);
            e.tick = tick;
            self.order.insert(tick, key.to_string());
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some(e) = self.map.remove(key) {
            self.order.remove(&e.tick);
        }
    }

    fn purge_expired(&mut self, ttl: Duration, now: Instant) {
        let expired: Vec<String> = self
            .map
            .iter()
            .filter(|(_, e)| now.saturating_duration_since(e.inserted) >= ttl)
            .map(|(k, _)| k.clone())
            .collect();
        for k in expired {
            self.remove(&k);
        }
    }
}

/// Responses by key, served for `ttl` after insertion, at most `capacity` of them (the least
/// recently used is evicted first, after expired ones). Thread-safe; values are cloned out.
pub struct ResponseCache<V: Clone> {
    ttl: Duration,
    capacity: usize,
    inner: Mutex<CacheInner<V>>,
}

impl<V: Clone> ResponseCache<V> {
    /// An empty cache.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            inner: Mutex::new(CacheInner {
                map: HashMap::new(),
                order: BTreeMap::new(),
                tick: 0,
            }),
        }
    }

    /// The live value under `key`, marking it used.
    pub fn get(&self, key: &str) -> Option<V> {
        self.get_at(key, Instant::now())
    }

    /// [`Self::get`] at a given time.
    pub fn get_at(&self, key: &str, now: Instant) -> Option<V> {
        let mut inner = lock(&self.inner);
        let expired = now.saturating_duration_since(inner.map.get(key)?.inserted) >= self.ttl;
        if expired {
            inner.remove(key);
            return None;
        }
        inner.touch(key);
        inner.map.get(key).map(|e| e.value.clone())
    }

    /// Stores `v` under `key` (replacing and re-timing any earlier value).
    pub fn insert(&self, key: String, v: V) {
        self.insert_at(key, v, Instant::now())
    }

    /// [`Self::insert`] at a given time.
    pub fn insert_at(&self, key: String, v: V, now: Instant) {
        if self.capacity == 0 {
            return;
        }
        let mut inner = lock(&self.inner);
        inner.remove(&key);
        if inner.map.len() >= self.capacity {
            inner.purge_expired(self.ttl, now);
        }
        while inner.map.len() >= self.capacity {
            let Some((_, lru)) = inner.order.pop_first() else {
                break;
            };
            inner.map.remove(&lru);
        }
        inner.map.insert(
            key.clone(),
            CacheEntry {
                value: v,
                inserted: now,
                tick: 0,
            },
        );
        inner.touch(&key);
    }

    /// How many live (unexpired) values the cache holds.
    pub fn len(&self) -> usize {
        self.len_at(Instant::now())
    }

    /// [`Self::len`] at a given time; drops the expired values.
    pub fn len_at(&self, now: Instant) -> usize {
        let mut inner = lock(&self.inner);
        inner.purge_expired(self.ttl, now);
        inner.map.len()
    }

    /// Whether the cache holds no live value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The result of a flight, type-erased so that one map serves every error type.
type Shared = Arc<dyn Any + Send + Sync>;

struct Flight {
    id: u64,
    result: watch::Receiver<Option<Shared>>,
    followers: Arc<AtomicUsize>,
}

/// Concurrent identical requests coalesce into one call: the first caller of a key (the
/// leader) runs `f`, the others (followers) await its result. Nothing is kept once the call
/// ends (errors included): caching is [`ResponseCache`]'s job.
///
/// Cancel-safe: if the leader's future is dropped (its client went away) or panics, its
/// followers wake up and one of them becomes the new leader and runs its own `f`.
pub struct SingleFlight<V: Clone> {
    flights: Mutex<HashMap<String, Flight>>,
    next_id: AtomicU64,
    _value: PhantomData<fn() -> V>,
}

impl<V: Clone + Send + Sync + 'static> Default for SingleFlight<V> {
    fn default() -> Self {
        Self::new()
    }
}

/// Removes the leader's flight when the leader finishes or is dropped.
struct LeaderGuard<'a> {
    flights: &'a Mutex<HashMap<String, Flight>>,
    key: &'a str,
    id: u64,
}

impl Drop for LeaderGuard<'_> {
    fn drop(&mut self) {
        let mut flights = lock(self.flights);
        // Only our own flight: a successor may already lead this key.
        if flights.get(self.key).is_some_and(|f| f.id == self.id) {
            flights.remove(self.key);
        }
    }
}

/// Counts a follower while it waits, also when its future is dropped.
struct FollowerGuard(Arc<AtomicUsize>);

impl Drop for FollowerGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

enum Role {
    Leader(watch::Sender<Option<Shared>>, u64),
    Follower(watch::Receiver<Option<Shared>>, FollowerGuard),
}

impl<V: Clone + Send + Sync + 'static> SingleFlight<V> {
    /// No flights.
    pub fn new() -> Self {
        Self {
            flights: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            _value: PhantomData,
        }
    }

    /// Runs `f` for `key` unless a call for `key` is in flight, in which case waits for that
    /// call's result. Returns the result and whether it was coalesced (`true` for followers).
    /// The error type must be `Send + Sync + 'static` so followers can share it.
    pub async fn run<F, Fut, E>(&self, key: &str, f: F) -> (Result<V, E>, bool)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        E: Clone + Send + Sync + 'static,
    {
        let mut f = Some(f);
        loop {
            let role = {
                let mut flights = lock(&self.flights);
                match flights.get(key) {
                    Some(flight) => {
                        flight.followers.fetch_add(1, Ordering::SeqCst);
                        Role::Follower(
                            flight.result.clone(),
                            FollowerGuard(flight.followers.clone()),
                        )
                    }
                    None => {
                        let (tx, rx) = watch::channel(None);
                        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                        flights.insert(
                            key.to_string(),
                            Flight {
                                id,
                                result: rx,
                                followers: Arc::new(AtomicUsize::new(0)),
                            },
                        );
                        Role::Leader(tx, id)
                    }
                }
            };
            match role {
                Role::Leader(tx, id) => {
                    let _guard = LeaderGuard {
                        flights: &self.flights,
                        key,
                        id,
                    };
                    let f = f
                        .take()
                        .expect("f is only taken by a leader, which returns");
                    let result = f().await;
                    // Publish before the guard removes the flight, so every follower that
                    // joined sees the result.
                    tx.send_replace(Some(Arc::new(result.clone()) as Shared));
                    return (result, false);
                }
                Role::Follower(mut rx, guard) => {
                    let outcome = rx.wait_for(Option::is_some).await.map(|r| r.clone());
                    drop(guard);
                    match outcome {
                        Ok(Some(shared)) => match shared.downcast_ref::<Result<V, E>>() {
                            Some(result) => return (result.clone(), true),
                            // A leader with another error type for the same key: not
                            // shareable, so make our own call.
                            None => {
                                let f = f.take().expect("f not taken by a follower");
                                return (f().await, false);
                            }
                        },
                        // The leader was dropped without a result: try again; the first
                        // follower back becomes the leader.
                        _ => continue,
                    }
                }
            }
        }
    }

    /// How many callers are waiting for the flight of `key`.
    pub fn waiting(&self, key: &str) -> usize {
        lock(&self.flights)
            .get(key)
            .map_or(0, |f| f.followers.load(Ordering::SeqCst))
    }

    /// How many keys have a call in flight.
    pub fn in_flight(&self) -> usize {
        lock(&self.flights).len()
    }
}

/// Counters of the edge's duplicate handling, shared by the request handlers.
#[derive(Debug, Default)]
pub struct DedupStats {
    /// Requests answered from the response cache.
    pub cache_hits: AtomicU64,
    /// Requests the cache could not answer.
    pub cache_misses: AtomicU64,
    /// Requests that waited for an identical request's upstream call.
    pub coalesced: AtomicU64,
    /// Calls made to the upstream (cloud) function.
    pub upstream_calls: AtomicU64,
    /// Exact duplicates seen in the window.
    pub exact: AtomicU64,
    /// Normalised duplicates seen in the window.
    pub normalized: AtomicU64,
    /// Near duplicates seen in the window.
    pub near: AtomicU64,
}

/// A consistent-enough copy of [`DedupStats`] for reporting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DedupStatsSnapshot {
    /// Requests answered from the response cache.
    pub cache_hits: u64,
    /// Requests the cache could not answer.
    pub cache_misses: u64,
    /// Requests that waited for an identical request's upstream call.
    pub coalesced: u64,
    /// Calls made to the upstream (cloud) function.
    pub upstream_calls: u64,
    /// Exact duplicates seen in the window.
    pub exact: u64,
    /// Normalised duplicates seen in the window.
    pub normalized: u64,
    /// Near duplicates seen in the window.
    pub near: u64,
    /// Upstream calls saved: cache hits plus coalesced requests.
    pub upstream_calls_saved: u64,
}

impl DedupStats {
    /// Counts a window verdict of `kind` (unique prompts are not counted).
    pub fn record_duplicate(&self, kind: DuplicateKind) {
        let counter = match kind {
            DuplicateKind::Unique => return,
            DuplicateKind::Exact => &self.exact,
            DuplicateKind::Normalized => &self.normalized,
            DuplicateKind::Near => &self.near,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The current values.
    pub fn snapshot(&self) -> DedupStatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DedupStatsSnapshot {
            cache_hits: get(&self.cache_hits),
            cache_misses: get(&self.cache_misses),
            coalesced: get(&self.coalesced),
            upstream_calls: get(&self.upstream_calls),
            exact: get(&self.exact),
            normalized: get(&self.normalized),
            near: get(&self.near),
            upstream_calls_saved: get(&self.cache_hits) + get(&self.coalesced),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_folds_case_punctuation_quotes_and_whitespace_stably() {
        assert_eq!(
            normalize("  Recommend   libraries!! "),
            "recommend libraries"
        );
        assert_eq!(
            normalize("What's \"the\" best—cafe?"),
            "whats the best cafe"
        );
        assert_eq!(
            normalize("Wi-Fi\tnear\nKing’s Cross"),
            "wi fi near kings cross"
        );
        assert_eq!(normalize("杭州 西湖，附近的餐厅？"), "杭州 西湖 附近的餐厅");
        assert_eq!(normalize("?!"), "");
        for s in [
            "İstanbul CAFÉS",
            "ǅemal",
            "a -- b",
            "''",
            "Straße ß",
            "x\u{0307}y",
            "10:30 £20",
        ] {
            let once = normalize(s);
            assert_eq!(normalize(&once), once, "unstable on {s:?}");
        }
    }

    #[test]
    fn similarity_separates_rephrasings_from_different_requests() {
        let s = |a, b| similarity(a, b);
        assert_eq!(s("Recommend libraries", "recommend libraries!!"), 1.0);
        let filler = s("Recommend some libraries", "Recommend libraries");
        let please = s("Please recommend some libraries", "recommend libraries");
        let polite = s(
            "Could you recommend some libraries near King's Cross, please?",
            "Recommend libraries near King's Cross",
        );
        let swap = s(
            "Recommend Italian restaurants near King's Cross",
            "Recommend Chinese restaurants near King's Cross",
        );
        let place = s(
            "Recommend restaurants near King's Cross",
            "Recommend restaurants near West Lake",
        );
        let numbers = s(
            "I want a 10 Gbps link from Access 1 to Cloud 2",
            "I want a 100 Gbps link from Access 1 to Cloud 2",
        );
        let unrelated = s("Recommend libraries", "What is the weather in Hangzhou");
        let threshold = DedupConfig::default().near_threshold;
        for (name, v) in [("filler", filler), ("please", please), ("polite", polite)] {
            assert!(v >= threshold, "{name}: {v}");
        }
        for (name, v) in [("swap", swap), ("place", place), ("numbers", numbers)] {
            assert!(v < threshold, "{name}: {v}");
        }
        assert_eq!(unrelated, 0.0);
        assert!(swap > place && place > unrelated);
        for (a, b) in [
            ("a b c", "c d"),
            ("Recommend libraries", "libraries recommend x"),
        ] {
            let v = s(a, b);
            assert!((0.0..=1.0).contains(&v));
            assert_eq!(v, s(b, a), "symmetric");
        }
    }

    fn cfg(window_s: u64, capacity: usize, threshold: f64) -> DedupConfig {
        DedupConfig {
            window: Duration::from_secs(window_s),
            window_capacity: capacity,
            near_threshold: threshold,
            ..DedupConfig::default()
        }
    }

    #[test]
    fn window_classifies_exact_normalized_near_and_unique() {
        let w = DedupWindow::new(&DedupConfig::default());
        let t = Instant::now();
        let first = w.check_at("site-a", "Recommend libraries", t);
        assert_eq!(first.kind, DuplicateKind::Unique);
        assert_eq!(first.seen_count, 1);
        assert_eq!(first.canonical, "Recommend libraries");
        assert_eq!(first.key, dedup_key("site-a", "recommend LIBRARIES"));
        assert_eq!(first.key.len(), 64);

        let v = w.check_at("site-a", "recommend libraries!!", t);
        assert_eq!(v.kind, DuplicateKind::Normalized);
        assert_eq!(v.canonical, "Recommend libraries");
        assert_eq!((v.similarity, v.seen_count), (1.0, 2));
        assert_eq!(v.key, first.key);

        let v = w.check_at("site-a", "Recommend some libraries", t);
        assert_eq!(v.kind, DuplicateKind::Near);
        assert_eq!(v.canonical, "Recommend libraries");
        assert_eq!(v.key, first.key);
        assert_eq!(v.seen_count, 3);

        let v = w.check_at("site-a", "Recommend libraries", t);
        assert_eq!(v.kind, DuplicateKind::Exact);
        assert_eq!(v.seen_count, 4);

        let v = w.check_at("site-a", "What is the weather in Hangzhou", t);
        assert_eq!(v.kind, DuplicateKind::Unique);
        assert_eq!(v.canonical, "What is the weather in Hangzhou");
        assert_ne!(v.key, first.key);
        assert_eq!(w.len("site-a"), 2);

        // Scopes are separate, and keys differ by scope.
        let v = w.check_at("site-b", "Recommend libraries", t);
        assert_eq!(v.kind, DuplicateKind::Unique);
        assert_ne!(v.key, first.key);
    }

    #[test]
    fn near_threshold_decides_near_duplicates() {
        let t = Instant::now();
        let (a, b) = ("Recommend some libraries", "Recommend libraries");
        let strict = DedupWindow::new(&cfg(60, 16, 1.01));
        strict.check_at("s", a, t);
        assert_eq!(strict.check_at("s", b, t).kind, DuplicateKind::Unique);

        let (x, y) = (
            "Recommend Italian restaurants near King's Cross",
            "Recommend Chinese restaurants near King's Cross",
        );
        let default = DedupWindow::new(&DedupConfig::default());
        default.check_at("s", x, t);
        let v = default.check_at("s", y, t);
        assert_eq!(v.kind, DuplicateKind::Unique);
        assert!(v.similarity > 0.5 && v.similarity < 0.8, "{}", v.similarity);
        let loose = DedupWindow::new(&cfg(60, 16, 0.5));
        loose.check_at("s", x, t);
        let v = loose.check_at("s", y, t);
        assert_eq!(v.kind, DuplicateKind::Near);
        assert_eq!(v.canonical, x);
    }

    #[test]
    fn window_forgets_after_the_window_and_refreshes_on_sight() {
        let w = DedupWindow::new(&cfg(10, 16, 0.8));
        let t = Instant::now();
        w.check_at("s", "Recommend libraries", t);
        // Seen again at 8 s: kept until 18 s.
        let at = |s: u64| t + Duration::from_secs(s);
        assert_eq!(
            w.check_at("s", "Recommend libraries", at(8)).kind,
            DuplicateKind::Exact
        );
        assert_eq!(
            w.check_at("s", "Recommend libraries", at(17)).kind,
            DuplicateKind::Exact
        );
        let v = w.check_at("s", "Recommend libraries", at(17) + Duration::from_secs(10));
        assert_eq!(v.kind, DuplicateKind::Unique);
        assert_eq!(v.seen_count, 1);
    }

    #[test]
    fn window_evicts_the_least_recently_seen_at_capacity() {
        let w = DedupWindow::new(&cfg(60, 2, 0.8));
        let t = Instant::now();
        w.check_at("s", "alpha request one", t);
        w.check_at("s", "beta request two", t);
        // Seeing alpha again makes beta the least recently seen.
        assert!(w.check_at("s", "alpha request one", t).kind.is_duplicate());
        w.check_at("s", "gamma request three", t);
        assert_eq!(w.len("s"), 2);
        assert_eq!(
            w.check_at("s", "alpha request one", t).kind,
            DuplicateKind::Exact
        );
        assert_eq!(
            w.check_at("s", "beta request two", t).kind,
            DuplicateKind::Unique
        );

        let none = DedupWindow::new(&cfg(60, 0, 0.8));
        none.check_at("s", "x", t);
        assert_eq!(none.check_at("s", "x", t).kind, DuplicateKind::Unique);
        assert!(none.is_empty("s"));
    }

    #[test]
    fn cache_expires_after_ttl() {
        let c = ResponseCache::new(Duration::from_secs(30), 8);
        let t = Instant::now();
        c.insert_at("k".into(), 1, t);
        assert_eq!(c.get_at("k", t + Duration::from_secs(29)), Some(1));
        assert_eq!(c.len_at(t + Duration::from_secs(29)), 1);
        assert_eq!(c.get_at("k", t + Duration::from_secs(30)), None);
        assert_eq!(c.len_at(t + Duration::from_secs(30)), 0);
        // Re-inserting restarts the TTL.
        c.insert_at("k".into(), 2, t + Duration::from_secs(40));
        assert_eq!(c.get_at("k", t + Duration::from_secs(60)), Some(2));
        // Through the real clock too, with a TTL of a few milliseconds.
        let real = ResponseCache::new(Duration::from_millis(5), 8);
        real.insert("k".into(), "v".to_string());
        assert_eq!(real.get("k").as_deref(), Some("v"));
        std::thread::sleep(Duration::from_millis(6));
        assert_eq!(real.get("k"), None);
        assert!(real.is_empty());
    }

    #[test]
    fn cache_evicts_least_recently_used_at_capacity() {
        let c = ResponseCache::new(Duration::from_secs(60), 2);
        let t = Instant::now();
        c.insert_at("a".into(), "A", t);
        c.insert_at("b".into(), "B", t);
        assert_eq!(c.get_at("a", t), Some("A")); // b is now the least recently used
        c.insert_at("c".into(), "C", t);
        assert_eq!(c.len_at(t), 2);
        assert_eq!(c.get_at("b", t), None);
        assert_eq!(c.get_at("a", t), Some("A"));
        assert_eq!(c.get_at("c", t), Some("C"));
        // Replacing a key does not evict anything.
        c.insert_at("c".into(), "C2", t);
        assert_eq!(c.len_at(t), 2);
        assert_eq!(c.get_at("a", t), Some("A"));
        // Expired entries go before live ones, whatever their use order.
        let d = ResponseCache::new(Duration::from_secs(10), 2);
        d.insert_at("old".into(), 1, t);
        d.insert_at("live".into(), 2, t + Duration::from_secs(9));
        d.get_at("old", t + Duration::from_secs(9)); // most recently used, but about to expire
        d.insert_at("new".into(), 3, t + Duration::from_secs(11));
        assert_eq!(d.get_at("live", t + Duration::from_secs(11)), Some(2));
        assert_eq!(d.get_at("new", t + Duration::from_secs(11)), Some(3));
        let zero = ResponseCache::new(Duration::from_secs(10), 0);
        zero.insert_at("x".into(), 1, t);
        assert_eq!(zero.get_at("x", t), None);
    }

    #[test]
    fn cache_is_shared_across_threads() {
        let c = Arc::new(ResponseCache::new(Duration::from_secs(60), 64));
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for j in 0..100 {
                        c.insert(format!("k{}", (i * 100 + j) % 50), j);
                        c.get(&format!("k{}", j % 50));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(c.len(), 50);
    }

    /// Waits (polling every millisecond, up to 10 s) until `cond` holds.
    async fn until(cond: impl Fn() -> bool) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while !cond() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("condition not reached in 10 s");
    }

    /// Runs `n` concurrent calls over `keys` distinct keys; each `f` waits for a gate that
    /// opens once every follower is waiting. Returns the calls of `f` and the coalesced count.
    async fn concurrent_calls(n: usize, keys: usize) -> (usize, usize) {
        let sf = Arc::new(SingleFlight::<String>::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let (gate_tx, gate_rx) = watch::channel(false);
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let (sf, calls, mut gate) = (sf.clone(), calls.clone(), gate_rx.clone());
                tokio::spawn(async move {
                    let key = format!("prompt-{}", i % keys);
                    let (res, coalesced) = sf
                        .run(&key, || async {
                            calls.fetch_add(1, Ordering::SeqCst);
                            gate.wait_for(|open| *open).await.unwrap();
                            Ok::<_, String>(format!("answer to {key}"))
                        })
                        .await;
                    assert_eq!(res.unwrap(), format!("answer to {key}"));
                    coalesced
                })
            })
            .collect();
        let waiting = |sf: &SingleFlight<String>| {
            (0..keys)
                .map(|k| sf.waiting(&format!("prompt-{k}")))
                .sum::<usize>()
        };
        until(|| waiting(&sf) == n - keys).await;
        gate_tx.send(true).unwrap();
        let mut coalesced = 0;
        for t in tasks {
            coalesced += usize::from(t.await.unwrap());
        }
        assert_eq!(sf.in_flight(), 0, "flights are removed when done");
        (calls.load(Ordering::SeqCst), coalesced)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn hundred_identical_requests_make_one_call() {
        assert_eq!(concurrent_calls(100, 1).await, (1, 99));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn hundred_requests_over_ten_keys_make_one_call_per_key() {
        assert_eq!(concurrent_calls(100, 10).await, (10, 90));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_failing_leader_shares_its_error_but_does_not_poison_later_calls() {
        let sf = Arc::new(SingleFlight::<u32>::new());
        let (gate_tx, gate_rx) = watch::channel(false);
        let leader = {
            let (sf, mut gate) = (sf.clone(), gate_rx.clone());
            tokio::spawn(async move {
                sf.run("k", || async move {
                    gate.wait_for(|open| *open).await.unwrap();
                    Err::<u32, String>("cloud unreachable".into())
                })
                .await
            })
        };
        until(|| sf.in_flight() == 1).await;
        let follower = {
            let sf = sf.clone();
            tokio::spawn(async move { sf.run("k", || async { Ok::<u32, String>(7) }).await })
        };
        until(|| sf.waiting("k") == 1).await;
        gate_tx.send(true).unwrap();
        assert_eq!(
            leader.await.unwrap(),
            (Err("cloud unreachable".into()), false)
        );
        assert_eq!(
            follower.await.unwrap(),
            (Err("cloud unreachable".into()), true)
        );
        // The error is not kept: the next call runs again.
        let calls = AtomicUsize::new(0);
        let (res, coalesced) = sf
            .run("k", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok::<u32, String>(42)
            })
            .await;
        assert_eq!((res, coalesced), (Ok(42), false));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_dropped_leader_hands_over_to_a_follower() {
        let sf = Arc::new(SingleFlight::<u32>::new());
        let calls = Arc::new(AtomicUsize::new(0));
        // The leader's call never completes; its client goes away.
        let leader = {
            let (sf, calls) = (sf.clone(), calls.clone());
            tokio::spawn(async move {
                sf.run("k", || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    std::future::pending::<Result<u32, String>>().await
                })
                .await
            })
        };
        until(|| calls.load(Ordering::SeqCst) == 1).await;
        let (gate_tx, gate_rx) = watch::channel(false);
        let followers: Vec<_> = (0..3)
            .map(|_| {
                let (sf, calls, mut gate) = (sf.clone(), calls.clone(), gate_rx.clone());
                tokio::spawn(async move {
                    sf.run("k", || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        gate.wait_for(|open| *open).await.unwrap();
                        Ok::<u32, String>(5)
                    })
                    .await
                })
            })
            .collect();
        until(|| sf.waiting("k") == 3).await;
        leader.abort();
        assert!(leader.await.unwrap_err().is_cancelled());
        // One follower takes over; the other two wait for it.
        until(|| sf.waiting("k") == 2 && calls.load(Ordering::SeqCst) == 2).await;
        gate_tx.send(true).unwrap();
        let mut results = Vec::new();
        for f in followers {
            results.push(
                tokio::time::timeout(Duration::from_secs(10), f)
                    .await
                    .expect("a follower hung after its leader was dropped")
                    .unwrap(),
            );
        }
        results.sort_by_key(|r| r.1);
        assert_eq!(results, vec![(Ok(5), false), (Ok(5), true), (Ok(5), true)]);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(sf.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_dropped_follower_is_no_longer_counted() {
        let sf = Arc::new(SingleFlight::<u32>::new());
        let (gate_tx, gate_rx) = watch::channel(false);
        let leader = {
            let (sf, mut gate) = (sf.clone(), gate_rx.clone());
            tokio::spawn(async move {
                sf.run("k", || async move {
                    gate.wait_for(|open| *open).await.unwrap();
                    Ok::<u32, String>(1)
                })
                .await
            })
        };
        until(|| sf.in_flight() == 1).await;
        let follower = {
            let sf = sf.clone();
            tokio::spawn(async move { sf.run("k", || async { Ok::<u32, String>(2) }).await })
        };
        until(|| sf.waiting("k") == 1).await;
        follower.abort();
        until(|| sf.waiting("k") == 0).await;
        gate_tx.send(true).unwrap();
        assert_eq!(leader.await.unwrap(), (Ok(1), false));
    }

    #[test]
    fn run_futures_are_send_so_handlers_can_await_them() {
        fn assert_send<T: Send>(_: &T) {}
        let sf = SingleFlight::<String>::new();
        let fut = sf.run("k", || async { Ok::<String, String>("v".into()) });
        assert_send(&fut);
    }

    #[test]
    fn stats_snapshot_counts_saved_calls() {
        let s = DedupStats::default();
        s.cache_hits.fetch_add(3, Ordering::Relaxed);
        s.coalesced.fetch_add(4, Ordering::Relaxed);
        s.upstream_calls.fetch_add(5, Ordering::Relaxed);
        s.record_duplicate(DuplicateKind::Near);
        s.record_duplicate(DuplicateKind::Unique);
        s.record_duplicate(DuplicateKind::Exact);
        let snap = s.snapshot();
        assert_eq!(snap.upstream_calls_saved, 7);
        assert_eq!((snap.near, snap.exact, snap.normalized), (1, 1, 0));
        let v = serde_json::to_value(&snap).unwrap();
        assert_eq!(v["upstreamCallsSaved"], 7);
        assert_eq!(v["cacheHits"], 3);
        let verdict = DedupWindow::new(&DedupConfig::default()).check("s", "x");
        let v = serde_json::to_value(&verdict).unwrap();
        assert_eq!(v["kind"], "UNIQUE");
        assert_eq!(v["seenCount"], 1);
    }
}
