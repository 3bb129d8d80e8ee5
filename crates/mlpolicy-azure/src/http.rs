//! The HTTP core every ARM and Graph call goes through.
//!
//! One `reqwest` client (rustls, optional extra root CA), a semaphore bounding requests in
//! flight, a bearer token per audience, an `x-ms-client-request-id` per logical request, and the
//! retry policy: 429 waits for `Retry-After-Ms`/`Retry-After`; 5xx, timeouts and dropped
//! connections get jittered exponential backoff, but only when the caller marked the request
//! idempotent; a connection that never opened is retried for any method because nothing was
//! sent. A 401 for an expired or invalid token drops the cached token and retries once.
//! ARM requests are paced from `x-ms-ratelimit-remaining-subscription-*` so a busy run spends
//! no faster than the bucket refills once the budget runs low (Graph `$batch` items by
//! `budget.rs`). Retries are reported to the
//! verbose sink; tokens never are.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use reqwest::{Method, header::HeaderMap};
use tokio::{sync::Semaphore, time::Instant};
use url::Url;
use uuid::Uuid;

use super::{
    auth::TokenProvider,
    budget::GraphBudget,
    cloud::{Audience, Cloud, same_origin},
    error::{AzureError, parse_error_body},
};

/// Callback receiving verbose log lines.
pub type LogFn = Arc<dyn Fn(&str) + Send + Sync>;

/// Optional verbose sink.
#[derive(Clone, Default)]
pub(crate) struct Sink(pub(crate) Option<LogFn>);

impl Sink {
    pub(crate) fn log(&self, line: &str) {
        if let Some(f) = &self.0 {
            f(line);
        }
    }
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Sink(on)" } else { "Sink(off)" })
    }
}

/// Retry limits for throttling, server errors and transport failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included.
    pub max_attempts: u32,
    /// First backoff step; doubles per attempt.
    pub base_delay: Duration,
    /// Largest backoff step.
    pub max_delay: Duration,
    /// Largest `Retry-After` honoured; longer waits are cut to this.
    pub max_retry_after: Duration,
    /// How long a request answered 429 is waited out (each wait as `Retry-After` asks) before
    /// giving up; 429s do not count against `max_attempts`, since the service did not act.
    pub throttle_budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::from_millis(800),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
            throttle_budget: Duration::from_secs(300),
        }
    }
}

/// Whether a request may be sent again after it may have reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// GET, PUT, DELETE, upsert PATCH, and POSTs whose repeat is harmless.
    Safe,
    /// Only retried when the connection never opened or the service answered 429.
    Unsafe,
}

/// Request ids of one HTTP exchange, for logs and support tickets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestIds {
    /// The `x-ms-client-request-id` mlpolicy sent.
    pub client_request_id: String,
    /// `x-ms-request-id` (ARM) or `request-id` (Graph).
    pub request_id: Option<String>,
    /// `x-ms-correlation-request-id` (ARM).
    pub correlation_id: Option<String>,
}

tokio::task_local! {
    static CAPTURED: Arc<Mutex<Option<(bool, RequestIds)>>>;
}

/// Runs `fut` and returns, with its output, the request ids of the last write (PUT, PATCH,
/// POST, DELETE) it sent, or of its last request when it wrote nothing: the ids an audit trail
/// quotes to Azure support.
pub async fn capture_request_ids<F: std::future::Future>(fut: F) -> (F::Output, Option<RequestIds>) {
    let cell: Arc<Mutex<Option<(bool, RequestIds)>>> = Arc::default();
    let out = CAPTURED.scope(cell.clone(), fut).await;
    let ids = cell.lock().ok().and_then(|mut c| c.take()).map(|(_, ids)| ids);
    (out, ids)
}

fn record_ids(method: &Method, ids: &RequestIds) {
    let write = *method != Method::GET && *method != Method::HEAD;
    let _ = CAPTURED.try_with(|cell| {
        if let Ok(mut c) = cell.lock()
            && (write || c.as_ref().is_none_or(|(w, _)| !w))
        {
            *c = Some((write, ids.clone()));
        }
    });
}

/// A response after the retry policy ran.
#[derive(Debug, Clone)]
pub(crate) struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub ids: RequestIds,
}

impl Resp {
    pub(crate) fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(crate) fn error(&self, op: &str) -> AzureError {
        AzureError::from_response(
            op,
            self.status,
            &self.body,
            self.ids.request_id.clone(),
            self.ids.correlation_id.clone(),
        )
    }

    pub(crate) fn json<T: serde::de::DeserializeOwned>(&self, op: &str) -> Result<T, AzureError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            let mut err = AzureError::local(op, "MalformedResponse", format!("unexpected response body: {e}"));
            err.status = self.status;
            err.request_id.clone_from(&self.ids.request_id);
            err.correlation_id.clone_from(&self.ids.correlation_id);
            err
        })
    }
}

/// One logical request.
pub(crate) struct Call<'a> {
    pub audience: Audience,
    pub method: Method,
    pub url: Url,
    pub body: Option<&'a serde_json::Value>,
    pub headers: Vec<(&'static str, String)>,
    pub replay: Replay,
    pub op: &'a str,
}

impl<'a> Call<'a> {
    pub(crate) fn new(audience: Audience, method: Method, url: Url, op: &'a str) -> Self {
        let replay = if method == Method::POST { Replay::Unsafe } else { Replay::Safe };
        Self { audience, method, url, body: None, headers: Vec::new(), replay, op }
    }

    pub(crate) fn body(mut self, body: &'a serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn replay(mut self, replay: Replay) -> Self {
        self.replay = replay;
        self
    }
}

/// Shared state behind every `AzureClient` clone.
pub(crate) struct Core {
    pub http: reqwest::Client,
    pub cloud: Cloud,
    pub tokens: TokenProvider,
    pub sink: Sink,
    pub retry: RetryPolicy,
    semaphore: Semaphore,
    pacer: Option<Pacer>,
    graph_budget: Option<GraphBudget>,
    /// Record mode's cassette.
    pub recorder: Option<crate::record::Recorder>,
}

/// Builds the `reqwest` client, trusting `extra_ca_pem` in addition to the system roots.
pub(crate) fn build_http(extra_ca_pem: Option<&[u8]>, timeout: Duration) -> Result<reqwest::Client, AzureError> {
    let fail = |m: String| AzureError::local("build HTTP client", "HttpClient", m);
    let base = || {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(20))
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mlpolicy/", env!("CARGO_PKG_VERSION")))
    };
    let Some(pem) = extra_ca_pem else {
        return base().build().map_err(|e| fail(e.to_string()));
    };
    let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| fail(format!("invalid CA PEM: {e}")))?;
    if certs.is_empty() {
        return Err(fail("the CA PEM holds no certificate".to_string()));
    }
    match base().tls_certs_merge(certs.clone()).build() {
        Ok(client) => Ok(client),
        // Some verifiers cannot merge roots; trusting only the given CA still reaches the emulator.
        Err(_) => base().tls_certs_only(certs).build().map_err(|e| fail(e.to_string())),
    }
}

/// The `--verbose` line of one request: API, method, path and query (never a header or a
/// body: tokens and secrets travel there), status, duration and Azure's request id.
fn request_line(call: &Call<'_>, resp: &Resp, took: Duration) -> String {
    let mut target = call.url.path().to_owned();
    if let Some(q) = call.url.query() {
        target.push('?');
        target.push_str(q);
    }
    let id = resp.ids.request_id.as_deref().unwrap_or("-");
    format!(
        "{} {} {target} -> {} in {}ms (request id {id})",
        call.audience.name(),
        call.method,
        resp.status,
        took.as_millis()
    )
}

impl Core {
    pub(crate) fn new(
        http: reqwest::Client,
        cloud: Cloud,
        tokens: TokenProvider,
        sink: Sink,
        retry: RetryPolicy,
        concurrency: usize,
        pacing: bool,
    ) -> Self {
        Self {
            http,
            cloud,
            tokens,
            sink,
            retry,
            semaphore: Semaphore::new(concurrency.max(1)),
            pacer: pacing.then(Pacer::default),
            graph_budget: pacing.then(GraphBudget::default),
            recorder: None,
        }
    }

    /// The Graph directory budget `$batch` items are paced by, unless pacing is off.
    pub(crate) fn graph_budget(&self) -> Option<&GraphBudget> {
        self.graph_budget.as_ref()
    }

    /// Sends `call` and returns an error for any non-2xx outcome.
    pub(crate) async fn send_ok(&self, call: Call<'_>) -> Result<Resp, AzureError> {
        let op = call.op.to_string();
        let resp = self.send(call).await?;
        if resp.ok() { Ok(resp) } else { Err(resp.error(&op)) }
    }

    /// Sends `call` under the retry policy; returns the final response whatever its status.
    pub(crate) async fn send(&self, call: Call<'_>) -> Result<Resp, AzureError> {
        let base = self.cloud.base(call.audience);
        if !same_origin(&call.url, &base) {
            return Err(AzureError::local(
                call.op,
                "UnexpectedHost",
                format!("refusing to send a {} token to {} (expected {base})", call.audience.name(), call.url),
            ));
        }
        let client_request_id = Uuid::new_v4().to_string();
        let pace_key = pace_key(call.audience, &call.method, &call.url);
        let mut refreshed = false;
        let mut attempt: u32 = 0;
        let started = std::time::Instant::now();
        loop {
            attempt += 1;
            let outcome = {
                let _permit = self
                    .semaphore
                    .acquire()
                    .await
                    .map_err(|_| AzureError::local(call.op, "Closed", "client is shutting down"))?;
                // Pace after taking a permit: requests waiting for a permit have not spent a
                // token yet, so a burst of queued tasks cannot slip past the pacer.
                if let (Some(pacer), Some(key)) = (&self.pacer, &pace_key) {
                    pacer.wait(key).await;
                }
                // The token is taken last, so waiting for a permit, the pacer or a retry never
                // sends one that expired meanwhile.
                let token = self.tokens.token(call.audience).await.map_err(|e| e.with_op(call.op))?;
                let sent = std::time::Instant::now();
                (self.exchange(&call, &token, &client_request_id).await, token, sent)
            };
            let (outcome, token, sent) = outcome;
            let resp = match outcome {
                Ok(resp) => resp,
                Err(failure) => {
                    let retry = match failure.kind {
                        FailureKind::NotSent => true,
                        FailureKind::MaybeSent => call.replay == Replay::Safe,
                    };
                    if retry && attempt < self.retry.max_attempts {
                        let delay = backoff_delay(attempt, &self.retry, jitter());
                        self.sink.log(&format!(
                            "retry {attempt}/{} {} {} in {delay:?}: {}",
                            self.retry.max_attempts - 1,
                            call.method,
                            call.url,
                            failure.message
                        ));
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    let mut err = AzureError::local(call.op, "ConnectionFailed", failure.message);
                    err.correlation_id = Some(client_request_id.clone());
                    return Err(err);
                }
            };
            if self.sink.0.is_some() {
                self.sink.log(&request_line(&call, &resp, sent.elapsed()));
            }
            if let (Some(pacer), Some(key)) = (&self.pacer, &pace_key) {
                pacer.observe(key, &resp.headers);
            }
            record_ids(&call.method, &resp.ids);
            if resp.status == 401 && !refreshed && is_stale_token(&resp) {
                refreshed = true;
                if self.tokens.invalidate(call.audience, &token).await {
                    self.sink.log(&format!(
                        "{} token rejected ({}); acquiring a new one and retrying {} {}",
                        call.audience.name(),
                        parse_error_body(&resp.body).code,
                        call.method,
                        call.url
                    ));
                    attempt -= 1;
                    continue;
                }
            }
            if decide(resp.status, call.replay) == Decision::Done {
                return Ok(resp);
            }
            let delay = retry_after(&resp.headers)
                .map_or_else(|| backoff_delay(attempt, &self.retry, jitter()), |d| d.min(self.retry.max_retry_after));
            // Throttling is waited out within a time budget; other failures get a few attempts.
            let (again, of) = if resp.status == 429 {
                (
                    started.elapsed() + delay <= self.retry.throttle_budget,
                    format!("{:?} budget", self.retry.throttle_budget),
                )
            } else {
                (attempt < self.retry.max_attempts, (self.retry.max_attempts - 1).to_string())
            };
            if !again {
                return Ok(resp);
            }
            self.sink.log(&format!(
                "retry {attempt}/{of} {} {} in {delay:?}: HTTP {} {}",
                call.method,
                call.url,
                resp.status,
                parse_error_body(&resp.body).code
            ));
            tokio::time::sleep(delay).await;
        }
    }

    async fn exchange(
        &self,
        call: &Call<'_>,
        token: &super::auth::SecretString,
        client_request_id: &str,
    ) -> Result<Resp, Failure> {
        let mut builder = self
            .http
            .request(call.method.clone(), call.url.clone())
            .bearer_auth(token.expose())
            .header("x-ms-client-request-id", client_request_id)
            .header("client-request-id", client_request_id)
            .header("Accept", "application/json");
        for (name, value) in &call.headers {
            builder = builder.header(*name, value);
        }
        if let Some(body) = call.body {
            builder = builder.header("Content-Type", "application/json").body(body.to_string());
        } else if matches!(call.method, Method::POST | Method::PUT | Method::PATCH) {
            builder = builder.header("Content-Length", "0");
        }
        let response = builder.send().await.map_err(|e| Failure {
            kind: if e.is_connect() { FailureKind::NotSent } else { FailureKind::MaybeSent },
            message: describe_reqwest(&e),
        })?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| Failure {
            kind: FailureKind::MaybeSent,
            message: format!("response body lost: {}", describe_reqwest(&e)),
        })?;
        if let Some(recorder) = &self.recorder
            && let Err(e) = recorder.record(call.method.as_str(), call.url.as_str(), call.body, status, &headers, &body)
        {
            self.sink.log(&format!("record: {}", e.message));
        }
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let ids = RequestIds {
            client_request_id: client_request_id.to_string(),
            request_id: text("x-ms-request-id").or_else(|| text("request-id")),
            correlation_id: text("x-ms-correlation-request-id").or_else(|| text("client-request-id")),
        };
        Ok(Resp { status, headers, body: body.to_vec(), ids })
    }
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailureKind {
    NotSent,
    MaybeSent,
}

#[derive(Debug)]
struct Failure {
    kind: FailureKind,
    message: String,
}

/// What to do with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Done,
    Retry,
}

/// 429 is always retried (the service did not act on it); 5xx only when replay is safe.
pub(crate) fn decide(status: u16, replay: Replay) -> Decision {
    match status {
        429 => Decision::Retry,
        500 | 502 | 503 | 504 if replay == Replay::Safe => Decision::Retry,
        _ => Decision::Done,
    }
}

fn is_stale_token(resp: &Resp) -> bool {
    let parsed = parse_error_body(&resp.body);
    match parsed.code.as_str() {
        "ExpiredAuthenticationToken" | "InvalidAuthenticationToken" => true,
        "" => resp
            .header("www-authenticate")
            .is_some_and(|h| h.contains("invalid_token") && !h.contains("insufficient_claims")),
        _ => false,
    }
}

/// The wait a 429/503 asks for: `Retry-After-Ms`, `x-ms-retry-after-ms`, or `Retry-After` seconds.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) = text(name).and_then(|v| v.parse::<f64>().ok())
            && ms.is_finite()
            && ms >= 0.0
        {
            return Some(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    let secs = text("retry-after")?.parse::<f64>().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// Jittered exponential backoff for `attempt` (1-based): uniformly within `[d/2, d]` where
/// `d = min(base · 2^(attempt-1), max)`; `jitter` is in `[0, 1)`.
pub(crate) fn backoff_delay(attempt: u32, policy: &RetryPolicy, jitter: f64) -> Duration {
    let exp = policy
        .base_delay
        .checked_mul(1u32 << attempt.saturating_sub(1).min(20))
        .unwrap_or(policy.max_delay)
        .min(policy.max_delay);
    let half = exp / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

/// A number in `[0, 1)` from the random part of a v4 UUID.
pub(crate) fn jitter() -> f64 {
    let bits = Uuid::new_v4().as_u128() >> 75;
    #[expect(clippy::cast_precision_loss, reason = "53 random bits fit an f64 mantissa")]
    let value = bits as f64 / (1u64 << 53) as f64;
    value
}

/// Which ARM token bucket a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Bucket {
    Reads,
    Writes,
}

impl Bucket {
    /// Size and refill rate per second (ARM token bucket, per subscription and principal).
    pub(crate) fn limits(self) -> (u32, f64) {
        match self {
            Bucket::Reads => (250, 25.0),
            Bucket::Writes => (200, 10.0),
        }
    }
}

type PaceKey = (String, Bucket);

fn pace_key(audience: Audience, method: &Method, url: &Url) -> Option<PaceKey> {
    if audience != Audience::Arm {
        return None;
    }
    let mut segments = url.path_segments()?;
    let sub = loop {
        let s = segments.next()?;
        if s.eq_ignore_ascii_case("subscriptions") {
            break segments.next()?.to_ascii_lowercase();
        }
    };
    let bucket = if *method == Method::GET { Bucket::Reads } else { Bucket::Writes };
    Some((sub, bucket))
}

/// Share of Azure's refill rate the client spends once the bucket is empty, so clock drift and
/// other callers do not push it into 429s.
const PACE_SHARE: f64 = 0.95;

/// Takes one token from the client's mirror of the ARM bucket: `tokens` as estimated
/// `elapsed_s` seconds ago, in a bucket of `capacity` (Azure's size, or more when the headers
/// have reported more). Returns the new estimate (negative: requests queued ahead) and how
/// long this request waits so that spend never outruns the refill.
pub(crate) fn take_token(tokens: f64, elapsed_s: f64, bucket: Bucket, capacity: f64) -> (f64, Duration) {
    let (_, refill) = bucket.limits();
    let refill = refill * PACE_SHARE;
    let now = (tokens + elapsed_s.max(0.0) * refill).min(capacity) - 1.0;
    let wait = if now >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-now / refill) };
    (now, wait)
}

/// The client's mirror of one ARM bucket: spent by every request it sends, refilled at (a
/// share of) Azure's rate, and lowered to what `x-ms-ratelimit-remaining-*` reports. Requests
/// in flight are already counted, so a concurrent client does not overshoot the bucket.
#[derive(Debug)]
struct PaceState {
    tokens: Option<f64>,
    capacity: f64,
    last: Instant,
    /// Requests sent whose answer has not reported the budget yet.
    in_flight: f64,
}

/// Per-subscription pacing from the remaining-budget headers.
#[derive(Debug, Default)]
pub(crate) struct Pacer {
    state: Mutex<HashMap<PaceKey, PaceState>>,
}

impl Pacer {
    async fn wait(&self, key: &PaceKey) {
        let slot = {
            let Ok(mut state) = self.state.lock() else {
                return;
            };
            let now = Instant::now();
            let Some(entry) = state.get_mut(key) else {
                return;
            };
            let Some(tokens) = entry.tokens else {
                return;
            };
            let (left, wait) = take_token(tokens, now.duration_since(entry.last).as_secs_f64(), key.1, entry.capacity);
            entry.tokens = Some(left);
            entry.last = now;
            entry.in_flight += 1.0;
            if wait.is_zero() {
                return;
            }
            now + wait
        };
        tokio::time::sleep_until(slot).await;
    }

    fn observe(&self, key: &PaceKey, headers: &HeaderMap) {
        let names: &[&str] = match key.1 {
            Bucket::Reads => &["x-ms-ratelimit-remaining-subscription-reads"],
            Bucket::Writes => {
                &["x-ms-ratelimit-remaining-subscription-writes", "x-ms-ratelimit-remaining-subscription-deletes"]
            }
        };
        let remaining = names
            .iter()
            .filter_map(|n| headers.get(*n).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u32>().ok()))
            .min();
        let Some(remaining) = remaining else { return };
        if let Ok(mut state) = self.state.lock() {
            let now = Instant::now();
            let entry = state.entry(key.clone()).or_insert_with(|| PaceState {
                tokens: None,
                capacity: f64::from(key.1.limits().0),
                last: now,
                in_flight: 0.0,
            });
            let reported = f64::from(remaining);
            entry.capacity = entry.capacity.max(reported + 1.0);
            // Azure's figure is the truth after this request; requests sent since and not yet
            // answered will spend from it too. Trusting it both ways lets the client run at
            // full speed when the service reports budget, and slow down as soon as it reports
            // little.
            entry.in_flight = (entry.in_flight - 1.0).max(0.0);
            entry.tokens = Some(reported - entry.in_flight);
            entry.last = now;
        }
    }
}
