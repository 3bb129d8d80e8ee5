//! A local Azure for mlpolicy: one loopback port serving ARM (`/subscriptions/...`,
//! `/providers/...`), Microsoft Graph (`/v1.0/...`), the Entra token endpoint
//! (`/{tenant}/oauth2/v2.0/token`) and a control API (`/_emulator/...`), behaving as Azure
//! does: status codes, envelopes, LROs, paging, errors, throttling, replication delay and
//! injected faults (`docs/emulator.md` lists what is served; Microsoft's references are
//! <https://learn.microsoft.com/rest/api/azure/> and <https://learn.microsoft.com/graph/api/overview>).
//! Connections are served with hyper directly so that a "dropped connection" fault can close
//! the socket without an answer ([`server`]: connection limit, header-read and idle timeouts).
//! State lives in one [`state::Tenant`] behind a mutex and is saved atomically after every
//! change when a state file is configured; the file is locked for one emulator at a time
//! ([`lock`]).

mod arm;
pub mod cli;
mod control;
mod graph;
pub mod lock;
pub mod realism;
pub mod recordings;
pub mod roles;
pub mod server;
mod shapes;
pub mod state;
pub mod strict;
mod tls;
mod token;
mod util;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_arm;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

pub use control::parse_realism;
pub use lock::DEFAULT_LOCK_TIMEOUT;
pub use realism::{Profile, Realism, Throttle};
pub use server::Limits;
pub use state::Tenant;

use realism::{BucketKind, Buckets, Counter, Fault, Rng, Stats};
use token::{Audience, Caller, TokenProblem};
use util::{compact_timestamp, eq_ci, iso8601_secs, now_ms, us_datetime};

/// How to run the emulator.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// YAML state file: loaded at start (when it exists) and saved after every change.
    pub state_file: Option<PathBuf>,
    /// YAML seed used when the state file does not exist.
    pub seed_file: Option<PathBuf>,
    /// Tenant id; empty means the state's, or a fixed default.
    pub tenant: String,
    /// Accept only applications and subscriptions present in the state.
    pub strict_auth: bool,
    /// Serve HTTPS with a certificate from a throwaway CA; the CA PEM is written next to the
    /// state file (`STATE.ca.pem`) or to the temp directory, and returned by
    /// [`Emulator::ca_cert_pem`].
    pub tls: bool,
    /// Realism switches.
    pub realism: Realism,
    /// How long to wait for another emulator to release the state file
    /// ([`DEFAULT_LOCK_TIMEOUT`] by default).
    pub lock_timeout: Duration,
    /// Connection limit and timeouts.
    pub limits: Limits,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            state_file: None,
            seed_file: None,
            tenant: String::new(),
            strict_auth: false,
            tls: false,
            realism: Realism::default(),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            limits: Limits::default(),
        }
    }
}

/// Errors starting the emulator.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The listen address could not be bound.
    #[error("cannot listen on `{addr}`: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The state or seed file could not be loaded or saved.
    #[error(transparent)]
    State(#[from] state::StateError),
    /// The TLS certificate could not be made or written.
    #[error("cannot set up tls: {0}")]
    Tls(String),
    /// A realism value or a server limit is out of range.
    #[error("{0}")]
    Config(String),
}

/// The default tenant id when neither the flag nor the state names one.
pub const DEFAULT_TENANT: &str = "72f988bf-0000-4000-8000-00000000e1a7";

/// A running emulator.
pub struct Emulator {
    base_url: String,
    ca_pem: Option<String>,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Emulator {
    /// Takes the state file's lock (waiting up to `lock_timeout` for another emulator to
    /// release it), loads state, binds the port and starts serving.
    pub async fn start(cfg: EmulatorConfig) -> Result<Emulator, EmulatorError> {
        cfg.realism.validate().map_err(EmulatorError::Config)?;
        cfg.limits.validate().map_err(EmulatorError::Config)?;
        let state_lock = match &cfg.state_file {
            Some(path) => {
                Some(lock::StateLock::acquire(path, cfg.lock_timeout, &|m| eprintln!("mlpolicy emulator: {m}")).await?)
            }
            None => None,
        };
        let mut tenant = match (&cfg.state_file, &cfg.seed_file) {
            (Some(state), _) if state.exists() => Tenant::load(state)?,
            (_, Some(seed)) => Tenant::load(seed)?,
            _ => Tenant::default(),
        };
        if !cfg.tenant.is_empty() {
            tenant.tenant_id.clone_from(&cfg.tenant);
        } else if tenant.tenant_id.is_empty() {
            DEFAULT_TENANT.clone_into(&mut tenant.tenant_id);
        }
        tenant.normalize();
        let listener =
            TcpListener::bind(cfg.listen).await.map_err(|source| EmulatorError::Bind { addr: cfg.listen, source })?;
        let addr = listener.local_addr().map_err(|source| EmulatorError::Bind { addr: cfg.listen, source })?;
        let tls = if cfg.tls { Some(tls::self_signed(cfg.state_file.as_deref(), addr.port())?) } else { None };
        let base_url = format!("{}://{addr}", if tls.is_some() { "https" } else { "http" });
        let ca_pem = tls.as_ref().map(|t| t.ca_pem.clone());
        let mut rng = Rng::new(cfg.realism.seed);
        let secret: Vec<u8> = (0..4).flat_map(|_| rng.next_u64().to_le_bytes()).collect();
        if let Some(path) = &cfg.state_file {
            tenant.save(path).await?;
        }
        let shared = Arc::new(Shared {
            tenant_id: tenant.tenant_id.clone(),
            strict_auth: cfg.strict_auth,
            base_url: base_url.clone(),
            state: tokio::sync::Mutex::new(tenant),
            state_file: cfg.state_file.clone(),
            realism: Mutex::new(cfg.realism.clone()),
            rng: Mutex::new(rng),
            buckets: Mutex::new(Buckets::default()),
            stats: Stats::default(),
            secret,
            fic_locks: Mutex::new(HashSet::new()),
            ops: Mutex::new(HashMap::new()),
            issued: Mutex::new(Vec::new()),
            generation: std::sync::atomic::AtomicU64::new(0),
            identity_index: Mutex::new(None),
            closed: std::sync::atomic::AtomicBool::new(false),
            state_lock: Mutex::new(state_lock),
        });
        let (shutdown, rx) = watch::channel(false);
        let acceptor = tls.map(|t| t.acceptor);
        let task = tokio::spawn(server::accept_loop(listener, acceptor, Arc::clone(&shared), cfg.limits, rx));
        Ok(Emulator { base_url, ca_pem, shared, shutdown, task })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// The PEM of the CA that signed the server certificate, when serving TLS.
    pub fn ca_cert_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// A snapshot of the current tenant state.
    pub async fn tenant(&self) -> Tenant {
        self.shared.state.lock().await.clone()
    }

    /// Every access token this emulator has issued, oldest first (for no-leak tests).
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.shared.issued).clone()
    }

    /// Stops serving, closes every connection, saves the state a last time and releases the
    /// state file's lock: after this no write of this emulator reaches the file.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        let state = self.shared.state.lock().await;
        // A handler cancelled by the shutdown may have changed the state without saving it.
        self.shared.persist(&state).await;
        self.shared.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        drop(lock(&self.shared.state_lock).take());
    }
}

/// Starts the emulator, prints `mlpolicy emulator listening on URL`, and serves until Ctrl-C.
pub async fn run_cli(cfg: EmulatorConfig) -> Result<(), EmulatorError> {
    let emulator = Emulator::start(cfg).await?;
    println!("mlpolicy emulator listening on {}", emulator.base_url());
    let _ = tokio::signal::ctrl_c().await;
    emulator.shutdown().await;
    Ok(())
}

/// State shared by every request.
pub(crate) struct Shared {
    pub tenant_id: String,
    pub strict_auth: bool,
    pub base_url: String,
    pub state: tokio::sync::Mutex<Tenant>,
    pub state_file: Option<PathBuf>,
    pub realism: Mutex<Realism>,
    pub rng: Mutex<Rng>,
    pub buckets: Mutex<Buckets>,
    pub stats: Stats,
    pub secret: Vec<u8>,
    pub fic_locks: Mutex<HashSet<String>>,
    pub ops: Mutex<HashMap<String, arm::Operation>>,
    /// Every access token minted, so leak tests can look for them.
    pub issued: Mutex<Vec<String>>,
    /// Counts the requests that may have changed the state (bumped under the state lock), so
    /// that lookup tables derived from it are rebuilt exactly when they may be stale.
    pub generation: std::sync::atomic::AtomicU64,
    /// Identities and federated credentials by parent, for the generation it was built at.
    pub identity_index: Mutex<Option<(u64, Arc<arm::IdentityIndex>)>>,
    /// Set (under the state lock) once shut down: nothing is saved any more.
    pub closed: std::sync::atomic::AtomicBool,
    /// The state file's lock, released at shutdown (or when the last handle drops).
    pub state_lock: Mutex<Option<lock::StateLock>>,
}

/// Locks a std mutex, ignoring poisoning (no handler panics while holding one).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn realism(&self) -> Realism {
        lock(&self.realism).clone()
    }

    pub fn uuid(&self) -> String {
        lock(&self.rng).uuid()
    }

    /// True once an object created at `created_ms` has replicated.
    pub fn replicated(&self, created_ms: u64, now: u64) -> bool {
        created_ms == 0 || now >= created_ms.saturating_add(self.realism().replication_delay_ms)
    }

    /// Records that the state may have changed; call with the state lock held.
    pub fn state_changed(&self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Saves the state when a state file is configured, unless shut down (call it with the
    /// state lock held). Errors are reported on stderr: the in-memory state stays authoritative.
    pub async fn persist(&self, tenant: &Tenant) {
        if let Some(path) = &self.state_file
            && !self.closed.load(std::sync::atomic::Ordering::SeqCst)
            && let Err(e) = tenant.save(path).await
        {
            eprintln!("mlpolicy emulator: {e}");
        }
    }
}

/// One parsed request.
pub(crate) struct Ctx {
    pub method: Method,
    pub segs: Vec<String>,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub request_id: String,
    pub correlation_id: String,
    pub client_request_id: Option<String>,
    pub now_ms: u64,
    pub caller: Option<Caller>,
}

impl Ctx {
    pub fn new(method: Method, path_and_query: &str, headers: HeaderMap, body: Bytes, request_id: String) -> Ctx {
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        let segs = path.split('/').filter(|s| !s.is_empty()).map(util::percent_decode).collect();
        let query = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let client_request_id = header("x-ms-client-request-id").or_else(|| header("client-request-id"));
        let correlation_id = header("x-ms-correlation-request-id")
            .or_else(|| client_request_id.clone())
            .unwrap_or_else(|| request_id.clone());
        Ctx {
            method,
            segs,
            path: path.to_owned(),
            query,
            headers,
            body,
            request_id,
            correlation_id,
            client_request_id,
            now_ms: now_ms(),
            caller: None,
        }
    }

    /// A query parameter, matched case-insensitively.
    pub fn q(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| eq_ci(k, name)).map(|(_, v)| v.as_str())
    }

    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn is_read(&self) -> bool {
        self.method == Method::GET || self.method == Method::HEAD
    }

    /// The request body as JSON (`Null` when empty).
    pub fn json(&self) -> Result<Value, String> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(|e| e.to_string())
    }

    /// The path plus the query with `$skiptoken`-like keys replaced: the base of a next link.
    pub fn next_link(&self, base_url: &str, token_key: &str, token: &str) -> String {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.query {
            if !eq_ci(k, token_key) {
                ser.append_pair(k, v);
            }
        }
        ser.append_pair(token_key, token);
        format!("{base_url}{}?{}", self.path, ser.finish())
    }
}

/// A response being built.
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: ReplyBody,
    /// With `shuffle_keys`, the draw that orders the keys of JSON objects.
    pub key_order: Option<u64>,
}

pub(crate) enum ReplyBody {
    Empty,
    Json(Value),
    Text(&'static str, String),
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Reply {
        Reply { status, headers: Vec::new(), body: ReplyBody::Json(body), key_order: None }
    }

    pub fn empty(status: u16) -> Reply {
        Reply { status, headers: Vec::new(), body: ReplyBody::Empty, key_order: None }
    }

    /// The text of a JSON body, its keys ordered as `key_order` says.
    fn json_text(&self, v: &Value) -> String {
        match self.key_order {
            Some(draw) => shapes::to_string_shuffled(v, draw),
            None => serde_json::to_string(v).unwrap_or_default(),
        }
    }

    /// Whether the reply carries a body.
    pub fn has_body(&self) -> bool {
        !matches!(self.body, ReplyBody::Empty)
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// ARM error envelope.
    pub fn arm_error(status: u16, code: &str, message: impl Into<String>) -> Reply {
        Reply::json(status, json!({"error": {"code": code, "message": message.into()}}))
    }

    /// Graph error envelope with `innerError`.
    pub fn graph_error(ctx: &Ctx, status: u16, code: &str, message: impl Into<String>) -> Reply {
        Reply::json(
            status,
            json!({"error": {
                "code": code,
                "message": message.into(),
                "innerError": {
                    "date": iso8601_secs(ctx.now_ms).trim_end_matches('Z'),
                    "request-id": ctx.request_id,
                    "client-request-id": ctx.client_request_id.clone().unwrap_or_else(|| ctx.request_id.clone()),
                }
            }}),
        )
    }

    fn into_response(self) -> Response<Body> {
        let mut builder = Response::builder().status(StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK));
        for (k, v) in &self.headers {
            if let Ok(v) = HeaderValue::from_str(v) {
                builder = builder.header(k.as_str(), v);
            }
        }
        let body = match self.body {
            ReplyBody::Empty => Body::empty(),
            ReplyBody::Json(v) => {
                builder = builder.header("content-type", "application/json; charset=utf-8");
                Body::from(match self.key_order {
                    Some(draw) => shapes::to_string_shuffled(&v, draw).into_bytes(),
                    None => serde_json::to_vec(&v).unwrap_or_default(),
                })
            }
            ReplyBody::Text(ct, t) => {
                builder = builder.header("content-type", ct);
                Body::from(t)
            }
        };
        builder.body(body).unwrap_or_else(|_| Response::new(Body::empty()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Surface {
    Control,
    Token,
    Arm,
    Graph,
}

fn classify(segs: &[String]) -> Surface {
    match segs.first().map(String::as_str) {
        Some("_emulator") => Surface::Control,
        Some(v) if eq_ci(v, "v1.0") => Surface::Graph,
        _ if token::token_path(segs).is_some() => Surface::Token,
        _ => Surface::Arm,
    }
}

/// The largest request body read; a larger one answers 413.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Reads a request body: 413 past [`MAX_BODY`], 400 when it cannot be read (a malformed
/// chunked encoding, a connection cut mid-body). Either answer closes the connection.
async fn read_body(body: Incoming) -> Result<Bytes, Response<Body>> {
    match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => {
            let reply = if e.is::<http_body_util::LengthLimitError>() {
                Reply::arm_error(413, "RequestEntityTooLarge", "The request body is too large.")
            } else {
                Reply::arm_error(400, "InvalidRequestContent", format!("The request body could not be read: {e}."))
            };
            Err(reply.header("Connection", "close").into_response())
        }
    }
}

async fn serve(
    shared: Arc<Shared>,
    kill: Arc<Notify>,
    activity: Arc<server::Activity>,
    req: Request<Incoming>,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let request_id = shared.uuid();
    let bytes = match read_body(body).await {
        Ok(b) => b,
        Err(answer) => return answer,
    };
    let _busy = activity.busy();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut ctx = Ctx::new(parts.method, &path, parts.headers, bytes, request_id);
    let surface = classify(&ctx.segs);
    if surface == Surface::Control {
        return control::handle(&shared, &ctx).await.into_response();
    }
    let realism = shared.realism();
    let is_write = !ctx.is_read();
    shared.stats.bump(match (surface, is_write) {
        (Surface::Token, _) => Counter::Token,
        (Surface::Graph, _) if ctx.segs.get(1).is_some_and(|s| s == "$batch") => Counter::GraphBatch,
        (Surface::Graph, false) => Counter::GraphRead,
        (Surface::Graph, true) => Counter::GraphWrite,
        (_, false) => Counter::ArmRead,
        (_, true) => Counter::ArmWrite,
    });
    let fault = Fault::choose(&mut lock(&shared.rng), &realism, is_write);
    let fic_guard = if surface == Surface::Arm {
        match arm::FicLock::acquire(&shared, &ctx) {
            Ok(g) => g,
            Err(reply) => return finish(&ctx, surface, reply, None).into_response(),
        }
    } else {
        None
    };
    if realism.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(realism.latency_ms)).await;
    }
    match fault {
        Fault::DropBefore => return drop_connection(&shared, &kill).await,
        Fault::FailBefore(status) => {
            shared.stats.bump(Counter::Faults);
            return finish(&ctx, surface, fault_reply(&ctx, surface, status), None).into_response();
        }
        _ => {}
    }
    let (reply, draw) = match surface {
        Surface::Token => {
            let tenant = token::token_path(&ctx.segs).unwrap_or_default().to_owned();
            (token::handle(&shared, &ctx, &tenant).await, None)
        }
        Surface::Arm => match authenticate(&shared, &ctx, Audience::Arm) {
            Err(r) => (r, None),
            Ok(caller) => {
                ctx.caller = Some(caller);
                let kind = if is_write { BucketKind::Write } else { BucketKind::Read };
                let key = arm::throttle_key(&ctx);
                match throttle(&shared, &realism, kind, &key) {
                    (Some(r), d) => (arm::throttled(&ctx, kind, &key, r), Some((kind, d))),
                    (None, d) => (arm::handle(&shared, &ctx).await, Some((kind, d))),
                }
            }
        },
        Surface::Graph => match authenticate(&shared, &ctx, Audience::Graph) {
            Err(r) => (r, None),
            Ok(caller) => {
                ctx.caller = Some(caller);
                if ctx.segs.get(1).is_some_and(|s| s == "$batch") {
                    (graph::batch(&shared, &ctx).await, None)
                } else {
                    match throttle(&shared, &realism, BucketKind::Graph, "graph") {
                        (Some(secs), remaining) => {
                            (graph::budget_headers(graph::throttled(&ctx, secs), &realism, remaining), None)
                        }
                        (None, remaining) => {
                            (graph::budget_headers(graph::handle(&shared, &ctx).await, &realism, remaining), None)
                        }
                    }
                }
            }
        },
        Surface::Control => unreachable_control(),
    };
    drop(fic_guard);
    match fault {
        Fault::DropAfter => drop_connection(&shared, &kill).await,
        Fault::FailAfter(status) => {
            shared.stats.bump(Counter::Faults);
            finish(&ctx, surface, fault_reply(&ctx, surface, status), None).into_response()
        }
        _ => {
            if reply.status == 429 {
                shared.stats.bump(Counter::Throttled);
                if surface == Surface::Arm {
                    shared.stats.bump(Counter::ArmThrottled);
                }
            }
            let key_draw = if realism.shuffle_keys { lock(&shared.rng).next_u64() } else { 0 };
            finish(&ctx, surface, shapes::apply(&realism, key_draw, surface, reply), draw).into_response()
        }
    }
}

fn unreachable_control() -> (Reply, Option<(BucketKind, u32)>) {
    (Reply::empty(404), None)
}

async fn drop_connection(shared: &Shared, kill: &Notify) -> Response<Body> {
    shared.stats.bump(Counter::Dropped);
    kill.notify_one();
    std::future::pending::<Response<Body>>().await
}

/// Draws a token; returns `Some(retry_after)` when throttled, and the remaining count.
pub(crate) fn throttle(shared: &Shared, realism: &Realism, kind: BucketKind, key: &str) -> (Option<u64>, u32) {
    let Some(params) = realism.throttle.clone() else {
        // Throttling switched off: the headers report a full bucket, so a client that paces
        // itself from them runs at full speed.
        let t = Throttle::default();
        let cap = match kind {
            BucketKind::Read => t.arm_read_capacity,
            BucketKind::Write => t.arm_write_capacity,
            BucketKind::Graph => t.graph_capacity,
        };
        return (None, cap.saturating_sub(1));
    };
    let draw = lock(&shared.buckets).draw(kind, key, &params, true);
    if draw.throttled.is_some() {
        return (draw.throttled, 0);
    }
    if realism.throttle.is_some() && lock(&shared.rng).chance(params.random_rate) {
        return (Some(1), draw.remaining);
    }
    (None, draw.remaining)
}

fn fault_reply(ctx: &Ctx, surface: Surface, status: u16) -> Reply {
    match surface {
        Surface::Token => token::fault(ctx, status),
        Surface::Graph => {
            let (code, msg) = if status == 503 {
                ("serviceNotAvailable", "Service is unavailable. Please try again later.")
            } else {
                ("UnknownError", "An unexpected error occurred.")
            };
            Reply::graph_error(ctx, status, code, msg).header("Retry-After", "1")
        }
        _ => {
            let sub = arm::throttle_key(ctx);
            if status == 503 {
                Reply::arm_error(
                    503,
                    "ServiceUnavailable",
                    "The server is currently unable to handle the request. Please retry.",
                )
                .header("Retry-After", "1")
            } else {
                Reply::arm_error(
                    500,
                    "InternalServerError",
                    format!(
                        "Encountered internal server error. Diagnostic information: timestamp '{}', subscription id '{sub}', tracking id '{}', request correlation id '{}'.",
                        compact_timestamp(ctx.now_ms),
                        ctx.request_id,
                        ctx.correlation_id
                    ),
                )
            }
        }
    }
}

/// Graph's `x-ms-ags-diagnostic` header, the same on every answer.
static AGS_DIAGNOSTIC: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    json!({"ServerInfo": {"DataCenter": "Emulator", "Slice": "E", "Ring": "1", "ScaleUnit": "000", "RoleInstance": "EMU"}})
        .to_string()
});

/// Adds the headers every answer of a surface carries.
/// The content type of Graph's JSON answers.
const GRAPH_CONTENT_TYPE: &str =
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

fn finish(ctx: &Ctx, surface: Surface, mut reply: Reply, draw: Option<(BucketKind, u32)>) -> Reply {
    match surface {
        Surface::Graph => {
            reply.headers.push(("request-id".into(), ctx.request_id.clone()));
            reply.headers.push((
                "client-request-id".into(),
                ctx.client_request_id.clone().unwrap_or_else(|| ctx.request_id.clone()),
            ));
            reply.headers.push(("x-ms-ags-diagnostic".into(), AGS_DIAGNOSTIC.clone()));
            // Graph is an OData v4 service and says so in every answer.
            reply.headers.push(("odata-version".into(), "4.0".into()));
            if let ReplyBody::Json(v) = &reply.body {
                let text = reply.json_text(v);
                reply.body = ReplyBody::Text(GRAPH_CONTENT_TYPE, text);
            }
        }
        Surface::Token => {
            reply.headers.push(("x-ms-request-id".into(), ctx.request_id.clone()));
            if let Some(c) = &ctx.client_request_id {
                reply.headers.push(("client-request-id".into(), c.clone()));
            }
        }
        _ => {
            reply.headers.push(("x-ms-request-id".into(), ctx.request_id.clone()));
            reply.headers.push(("x-ms-correlation-request-id".into(), ctx.correlation_id.clone()));
            reply.headers.push((
                "x-ms-routing-request-id".into(),
                format!("EASTUS:{}:{}", compact_timestamp(ctx.now_ms), ctx.request_id),
            ));
            if let Some(c) = &ctx.client_request_id {
                reply.headers.push(("x-ms-client-request-id".into(), c.clone()));
            }
            if let Some((kind, remaining)) = draw {
                let scope = if arm::throttle_key(ctx) == "tenant" { "tenant" } else { "subscription" };
                let global = remaining.saturating_mul(15).saturating_add(if remaining > 0 { 14 } else { 0 });
                if kind == BucketKind::Read {
                    reply.headers.push((format!("x-ms-ratelimit-remaining-{scope}-reads"), remaining.to_string()));
                    reply.headers.push((format!("x-ms-ratelimit-remaining-{scope}-global-reads"), global.to_string()));
                } else {
                    reply.headers.push((format!("x-ms-ratelimit-remaining-{scope}-writes"), remaining.to_string()));
                    reply.headers.push((format!("x-ms-ratelimit-remaining-{scope}-global-writes"), global.to_string()));
                    if ctx.method == Method::DELETE {
                        reply
                            .headers
                            .push((format!("x-ms-ratelimit-remaining-{scope}-deletes"), remaining.to_string()));
                        reply
                            .headers
                            .push((format!("x-ms-ratelimit-remaining-{scope}-global-deletes"), global.to_string()));
                    }
                }
            }
        }
    }
    reply
}

fn authenticate(shared: &Shared, ctx: &Ctx, aud: Audience) -> Result<Caller, Reply> {
    let problem = match token::verify(&shared.secret, ctx.header("authorization"), aud, &shared.base_url, ctx.now_ms) {
        Ok(c) => return Ok(c),
        Err(p) => p,
    };
    if aud == Audience::Graph {
        let msg = match &problem {
            TokenProblem::Missing => "Access token is empty.".to_owned(),
            TokenProblem::Invalid => "Access token validation failure.".to_owned(),
            TokenProblem::WrongAudience(_) => "Access token validation failure. Invalid audience.".to_owned(),
            TokenProblem::Expired { .. } => "Lifetime validation failed, the token is expired.".to_owned(),
        };
        return Err(Reply::graph_error(ctx, 401, "InvalidAuthenticationToken", msg).header(
            "WWW-Authenticate",
            format!(
                "Bearer realm=\"\", authorization_uri=\"{}/{}/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
                shared.base_url, shared.tenant_id
            ),
        ));
    }
    let (code, message, description) = match &problem {
        TokenProblem::Missing => (
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.".to_owned(),
            "The authentication failed because of missing 'Authorization' header.".to_owned(),
        ),
        TokenProblem::Invalid => (
            "InvalidAuthenticationToken",
            "The access token is invalid.".to_owned(),
            "The access token is invalid.".to_owned(),
        ),
        TokenProblem::WrongAudience(aud) => {
            let m = format!(
                "The access token has been obtained for wrong audience or resource '{aud}'. It should exactly match with one of the allowed audiences 'https://management.core.windows.net/','https://management.core.windows.net','https://management.azure.com/','https://management.azure.com'."
            );
            ("InvalidAuthenticationTokenAudience", m.clone(), m)
        }
        TokenProblem::Expired { exp_ms, now_ms } => {
            let m = format!(
                "The access token expiry UTC time '{}' is earlier than current UTC time '{}'.",
                us_datetime(*exp_ms),
                us_datetime(*now_ms)
            );
            ("ExpiredAuthenticationToken", m.clone(), m)
        }
    };
    Err(Reply::arm_error(401, code, message).header(
        "WWW-Authenticate",
        format!(
            "Bearer authorization_uri=\"{}/{}\", error=\"invalid_token\", error_description=\"{description}\"",
            shared.base_url, shared.tenant_id
        ),
    ))
}
