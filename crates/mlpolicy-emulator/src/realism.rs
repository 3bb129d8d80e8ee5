//! Realism switches and their machinery: the [`Realism`] and [`Throttle`] settings, a seedable
//! random generator (`rand`'s `StdRng`, so fault injection is reproducible), Azure-style token
//! buckets (ARM reads 250 refilling 25/s and writes 200 refilling 10/s per subscription; Graph
//! separately), the fault plan for one request, and the request counters behind `/_emulator/stats`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng as _, RngExt as _, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Runtime behaviour switches, settable at start and through `PUT /_emulator/realism`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Realism {
    /// Added latency per request, in milliseconds.
    pub latency_ms: u64,
    /// Page size for ARM and Graph lists (0 means Azure's default, 100).
    pub page_size: usize,
    /// Token-bucket throttling; `None` never throttles (the buckets still feed the headers).
    pub throttle: Option<Throttle>,
    /// Probability of an injected 500/503 per request.
    pub fault_rate: f64,
    /// Probability of a dropped connection (no response) per request.
    pub drop_rate: f64,
    /// How long a new principal stays invisible to ARM principal lookups and Graph reads.
    pub replication_delay_ms: u64,
    /// Access token lifetime in seconds (0 means 3599).
    pub token_lifetime_s: u64,
    /// Number of 202 `InProgress` polls before an LRO is terminal; 0 completes at once.
    pub lro_polls: u32,
    /// Random seed; `Some` makes faults, throttling and minted ids reproducible.
    pub seed: Option<u64>,
    /// ARM echoes resource ids re-cased (`resourcegroups`, lower-case provider namespaces and
    /// types), one stable variant per id and seed.
    pub recase_ids: bool,
    /// JSON object keys come in no fixed order.
    pub shuffle_keys: bool,
}

impl Default for Realism {
    fn default() -> Self {
        Realism {
            latency_ms: 0,
            page_size: 100,
            throttle: None,
            fault_rate: 0.0,
            drop_rate: 0.0,
            replication_delay_ms: 0,
            token_lifetime_s: 3599,
            lro_polls: 0,
            seed: None,
            recase_ids: false,
            shuffle_keys: false,
        }
    }
}

/// A named set of realism switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Profile {
    /// Everything at once: no latency, no throttling, no replication delay, LROs that end at
    /// once. For fast tests and demos.
    #[default]
    Quick,
    /// What a real tenant does, together: new principals invisible for 5 s (to role
    /// assignments and Graph reads, a new group's members and owners included), Azure's ARM
    /// and Graph throttling buckets, long-running operations that take two polls, ARM ids
    /// echoed re-cased and JSON keys in no fixed order.
    Azure,
}

impl Profile {
    /// The profile's switches.
    pub fn realism(self) -> Realism {
        match self {
            Profile::Quick => Realism::default(),
            Profile::Azure => Realism {
                throttle: Some(Throttle::default()),
                replication_delay_ms: 5_000,
                lro_polls: 2,
                recase_ids: true,
                shuffle_keys: true,
                ..Realism::default()
            },
        }
    }
}

/// The largest added latency, replication delay and list page a realism may ask for.
pub const MAX_LATENCY_MS: u64 = 60_000;
/// See [`MAX_LATENCY_MS`].
pub const MAX_REPLICATION_DELAY_MS: u64 = 3_600_000;
/// See [`MAX_LATENCY_MS`].
pub const MAX_PAGE_SIZE: usize = 10_000;

/// `Ok` when `rate` is a probability.
fn rate(name: &str, rate: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&rate) { Ok(()) } else { Err(format!("`{name}` must be between 0 and 1, not {rate}")) }
}

fn at_most(name: &str, value: u64, max: u64, unit: &str) -> Result<(), String> {
    if value <= max { Ok(()) } else { Err(format!("`{name}` must be at most {max}{unit}, not {value}")) }
}

impl Realism {
    /// Refuses values no test of a real tenant needs and that would make the emulator hang,
    /// fail every request or answer absurd pages: rates outside 0..=1, latency over 60 s,
    /// a replication delay over an hour, a page over 10,000 items, and bad throttle buckets.
    pub fn validate(&self) -> Result<(), String> {
        rate("fault_rate", self.fault_rate)?;
        rate("drop_rate", self.drop_rate)?;
        at_most("latency_ms", self.latency_ms, MAX_LATENCY_MS, " ms")?;
        at_most("replication_delay_ms", self.replication_delay_ms, MAX_REPLICATION_DELAY_MS, " ms")?;
        at_most("page_size", u64::try_from(self.page_size).unwrap_or(u64::MAX), 10_000, "")?;
        at_most("token_lifetime_s", self.token_lifetime_s, 86_400, " s")?;
        at_most("lro_polls", u64::from(self.lro_polls), 1_000, "")?;
        if let Some(t) = &self.throttle {
            t.validate()?;
        }
        Ok(())
    }

    /// Effective page size.
    pub fn page(&self) -> usize {
        if self.page_size == 0 { 100 } else { self.page_size }
    }

    /// Effective token lifetime.
    pub fn lifetime_s(&self) -> u64 {
        if self.token_lifetime_s == 0 { 3599 } else { self.token_lifetime_s }
    }
}

/// Token-bucket parameters, Azure's by default.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Throttle {
    /// ARM read bucket size per subscription.
    pub arm_read_capacity: u32,
    /// ARM read refill per second.
    pub arm_read_refill: f64,
    /// ARM write bucket size per subscription.
    pub arm_write_capacity: u32,
    /// ARM write refill per second.
    pub arm_write_refill: f64,
    /// Graph bucket size (one per tenant).
    pub graph_capacity: u32,
    /// Graph refill per second.
    pub graph_refill: f64,
    /// Extra probability of a random 429 on any ARM or Graph request.
    pub random_rate: f64,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            arm_read_capacity: 250,
            arm_read_refill: 25.0,
            arm_write_capacity: 200,
            arm_write_refill: 10.0,
            graph_capacity: 3500,
            graph_refill: 350.0,
            random_rate: 0.0,
        }
    }
}

impl Throttle {
    /// Bucket sizes 1 to 1,000,000, refills 0 to 1,000,000 per second, `random_rate` 0 to 1.
    pub fn validate(&self) -> Result<(), String> {
        for (name, cap) in [
            ("arm_read_capacity", self.arm_read_capacity),
            ("arm_write_capacity", self.arm_write_capacity),
            ("graph_capacity", self.graph_capacity),
        ] {
            if !(1..=1_000_000).contains(&cap) {
                return Err(format!("`throttle.{name}` must be 1 to 1000000, not {cap}"));
            }
        }
        for (name, refill) in [
            ("arm_read_refill", self.arm_read_refill),
            ("arm_write_refill", self.arm_write_refill),
            ("graph_refill", self.graph_refill),
        ] {
            if !(0.0..=1_000_000.0).contains(&refill) {
                return Err(format!("`throttle.{name}` must be 0 to 1000000 per second, not {refill}"));
            }
        }
        rate("throttle.random_rate", self.random_rate)
    }
}

impl std::str::FromStr for Throttle {
    type Err = String;

    /// `azure` (the defaults) or comma-separated `read=CAP/REFILL`, `write=CAP/REFILL`,
    /// `graph=CAP/REFILL`, `random=RATE`, e.g. `read=10/1,random=0.05`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut t = Throttle::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty() && *p != "azure") {
            let (key, value) = part.split_once('=').ok_or_else(|| format!("expected KEY=VALUE in `{part}`"))?;
            let bucket = || -> Result<(u32, f64), String> {
                let (cap, refill) = value.split_once('/').ok_or_else(|| format!("expected CAP/REFILL in `{part}`"))?;
                Ok((
                    cap.parse().map_err(|_| format!("invalid capacity in `{part}`"))?,
                    refill.parse().map_err(|_| format!("invalid refill in `{part}`"))?,
                ))
            };
            match key {
                "read" => (t.arm_read_capacity, t.arm_read_refill) = bucket()?,
                "write" => (t.arm_write_capacity, t.arm_write_refill) = bucket()?,
                "graph" => (t.graph_capacity, t.graph_refill) = bucket()?,
                "random" => {
                    t.random_rate = value.parse().map_err(|_| format!("invalid rate in `{part}`"))?;
                }
                other => return Err(format!("unknown throttle key `{other}`")),
            }
        }
        t.validate()?;
        Ok(t)
    }
}

/// The emulator's random source: `StdRng` from `rand`, seeded for reproducible runs or from
/// the operating system otherwise.
#[derive(Debug)]
pub struct Rng(StdRng);

impl Rng {
    /// A generator from a seed, or from operating-system entropy when `None`.
    pub fn new(seed: Option<u64>) -> Rng {
        Rng(seed.map_or_else(rand::make_rng, StdRng::seed_from_u64))
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `[0, 1)`.
    #[cfg(test)]
    pub fn next_f64(&mut self) -> f64 {
        self.0.random()
    }

    /// True with probability `p` (clamped to `[0, 1]`).
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.0.random_bool(p.min(1.0))
    }

    /// A random (version 4) UUID drawn from this generator.
    pub fn uuid(&mut self) -> String {
        let bytes: [u8; 16] = self.0.random();
        uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
    }

    /// Shuffles a slice in place.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        items.shuffle(&mut self.0);
    }
}

#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Which bucket a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BucketKind {
    /// ARM reads.
    Read,
    /// ARM writes (and deletes).
    Write,
    /// Graph.
    Graph,
}

/// Outcome of drawing a token.
#[derive(Debug, Clone, Copy)]
pub struct Draw {
    /// Tokens left after this request (what the `x-ms-ratelimit-remaining-*` headers report).
    pub remaining: u32,
    /// `Some(seconds)` when the request is throttled.
    pub throttled: Option<u64>,
}

/// Token buckets keyed by (kind, subscription).
#[derive(Debug, Default)]
pub struct Buckets {
    map: HashMap<(BucketKind, String), Bucket>,
}

impl Buckets {
    /// Draws one token. With `enforce` false the bucket is tracked but never refuses.
    pub fn draw(&mut self, kind: BucketKind, key: &str, t: &Throttle, enforce: bool) -> Draw {
        let (cap, refill) = match kind {
            BucketKind::Read => (t.arm_read_capacity, t.arm_read_refill),
            BucketKind::Write => (t.arm_write_capacity, t.arm_write_refill),
            BucketKind::Graph => (t.graph_capacity, t.graph_refill),
        };
        let cap = f64::from(cap.max(1));
        let now = Instant::now();
        let b = self.map.entry((kind, key.to_ascii_lowercase())).or_insert(Bucket { tokens: cap, last: now });
        let elapsed = now.duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * refill).min(cap);
        b.last = now;
        if b.tokens >= 1.0 || !enforce {
            b.tokens = (b.tokens - 1.0).max(0.0);
            return Draw { remaining: floor_u32(b.tokens), throttled: None };
        }
        let wait = if refill > 0.0 { ((1.0 - b.tokens) / refill).ceil() } else { 60.0 };
        Draw { remaining: 0, throttled: Some(floor_u64(wait).max(1)) }
    }
}

fn floor_u32(v: f64) -> u32 {
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "clamped to range")]
    let r = v.clamp(0.0, f64::from(u32::MAX)).floor() as u32;
    r
}

fn floor_u64(v: f64) -> u64 {
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "clamped to range")]
    let r = v.clamp(0.0, 1.0e12).floor() as u64;
    r
}

/// What goes wrong with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Nothing.
    None,
    /// Close the connection before the request is handled.
    DropBefore,
    /// Close the connection after the state change is applied.
    DropAfter,
    /// Answer 500/503 without handling the request.
    FailBefore(u16),
    /// Apply the change, then answer 500/503.
    FailAfter(u16),
}

impl Fault {
    /// Chooses the fault for one request.
    pub fn choose(rng: &mut Rng, r: &Realism, is_write: bool) -> Fault {
        let after = is_write && rng.next_u64().is_multiple_of(2);
        if rng.chance(r.drop_rate) {
            return if after { Fault::DropAfter } else { Fault::DropBefore };
        }
        if rng.chance(r.fault_rate) {
            let status = if rng.next_u64().is_multiple_of(2) { 500 } else { 503 };
            return if after { Fault::FailAfter(status) } else { Fault::FailBefore(status) };
        }
        Fault::None
    }
}

/// Request kinds counted by `/_emulator/stats`.
#[derive(Debug, Clone, Copy)]
pub enum Counter {
    /// ARM GET/HEAD.
    ArmRead,
    /// ARM PUT/PATCH/POST/DELETE.
    ArmWrite,
    /// Graph GET.
    GraphRead,
    /// Graph writes.
    GraphWrite,
    /// Graph `$batch` envelopes.
    GraphBatch,
    /// Requests inside batches.
    GraphBatchItem,
    /// Token requests.
    Token,
    /// 429 answers.
    Throttled,
    /// Injected 5xx answers.
    Faults,
    /// Dropped connections.
    Dropped,
    /// 429 answers to ARM requests (also counted in `Throttled`).
    ArmThrottled,
}

const COUNTER_NAMES: [&str; 11] = [
    "arm_read",
    "arm_write",
    "graph_read",
    "graph_write",
    "graph_batch",
    "graph_batch_items",
    "token",
    "throttled",
    "faults",
    "dropped",
    "arm_throttled",
];

/// Atomic request counters.
#[derive(Debug, Default)]
pub struct Stats {
    counts: [AtomicU64; 11],
}

impl Stats {
    /// Adds one.
    pub fn bump(&self, c: Counter) {
        self.counts[c as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Zeroes every counter.
    pub fn reset(&self) {
        for c in &self.counts {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// The counters as a JSON object.
    pub fn to_json(&self) -> Value {
        let mut map = serde_json::Map::new();
        for (name, c) in COUNTER_NAMES.iter().zip(&self.counts) {
            map.insert((*name).to_owned(), json!(c.load(Ordering::Relaxed)));
        }
        Value::Object(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_rng_is_deterministic() {
        let mut a = Rng::new(Some(7));
        let mut b = Rng::new(Some(7));
        assert_eq!(a.next_u64(), b.next_u64());
        assert_eq!(a.uuid(), b.uuid());
        let f = a.next_f64();
        assert!((0.0..1.0).contains(&f));
    }

    #[test]
    fn bucket_empties_then_throttles() {
        let t = Throttle { arm_read_capacity: 2, arm_read_refill: 0.5, ..Throttle::default() };
        let mut b = Buckets::default();
        assert_eq!(b.draw(BucketKind::Read, "s", &t, true).remaining, 1);
        assert_eq!(b.draw(BucketKind::Read, "S", &t, true).remaining, 0);
        let d = b.draw(BucketKind::Read, "s", &t, true);
        assert_eq!(d.throttled, Some(2));
        assert!(b.draw(BucketKind::Write, "s", &t, true).throttled.is_none());
    }

    #[test]
    fn throttle_parses() {
        let t: Throttle = "read=10/1, graph=5/2,random=0.1".parse().unwrap();
        assert_eq!(t.arm_read_capacity, 10);
        assert_eq!(t.graph_capacity, 5);
        assert!((t.random_rate - 0.1).abs() < 1e-9);
        assert_eq!("azure".parse::<Throttle>().unwrap(), Throttle::default());
        assert!("nope=1".parse::<Throttle>().is_err());
    }

    #[test]
    fn realism_out_of_range_is_refused_by_name() {
        assert_eq!(Realism::default().validate(), Ok(()));
        assert_eq!(Profile::Azure.realism().validate(), Ok(()));
        for (r, field) in [
            (Realism { fault_rate: 1.5, ..Realism::default() }, "`fault_rate`"),
            (Realism { drop_rate: -0.1, ..Realism::default() }, "`drop_rate`"),
            (Realism { fault_rate: f64::NAN, ..Realism::default() }, "`fault_rate`"),
            (Realism { latency_ms: 60_001, ..Realism::default() }, "`latency_ms`"),
            (Realism { page_size: 10_001, ..Realism::default() }, "`page_size`"),
            (Realism { replication_delay_ms: u64::MAX, ..Realism::default() }, "`replication_delay_ms`"),
            (
                Realism {
                    throttle: Some(Throttle { arm_read_capacity: 0, ..Throttle::default() }),
                    ..Realism::default()
                },
                "`throttle.arm_read_capacity`",
            ),
            (
                Realism {
                    throttle: Some(Throttle { graph_refill: -1.0, ..Throttle::default() }),
                    ..Realism::default()
                },
                "`throttle.graph_refill`",
            ),
            (
                Realism { throttle: Some(Throttle { random_rate: 2.0, ..Throttle::default() }), ..Realism::default() },
                "`throttle.random_rate`",
            ),
        ] {
            let e = r.validate().unwrap_err();
            assert!(e.contains(field), "{e}");
        }
        assert!("random=1.5".parse::<Throttle>().unwrap_err().contains("random_rate"));
        assert!("read=0/1".parse::<Throttle>().unwrap_err().contains("arm_read_capacity"));
    }

    #[test]
    fn stats_count_and_reset() {
        let s = Stats::default();
        s.bump(Counter::Token);
        assert_eq!(s.to_json()["token"], 1);
        s.reset();
        assert_eq!(s.to_json()["token"], 0);
    }
}
