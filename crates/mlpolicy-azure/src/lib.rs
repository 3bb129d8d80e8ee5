//! The Azure client: ARM and Microsoft Graph over `reqwest`, authenticated through
//! `azure_identity`.
//!
//! [`AzureClient`] is cheap to clone (an `Arc` inside) and safe to share across tasks. It is
//! built from a [`Cloud`], a tenant id, a [`TokenSource`] and [`ClientOptions`]; the same code
//! path serves real Azure and the local emulator (a custom cloud on one base URL). Operations
//! live in `arm.rs` and `graph.rs`; retry, pacing and request ids in `http.rs`; long-running
//! operations in `lro.rs`. Wire facts follow `docs/azure-wire.md`; `docs/azure.md` is the
//! user-facing summary.

#![expect(
    clippy::result_large_err,
    reason = "AzureError carries ids and a hint for the user; errors are the slow path"
)]

mod arm;
mod auth;
mod budget;
mod cloud;
mod error;
mod graph;
mod http;
mod lro;
mod model;
mod record;

#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

pub use arm::{
    API_AUTHORIZATION, API_MANAGED_IDENTITY, API_ML, API_RESOURCES, PrincipalType, PutRoleAssignmentOutcome,
    RoleAssignmentRequest, RoleCatalog, role_assignment_name,
};
pub use auth::{
    AuthOptions, Credential, ENV_ARM_TOKEN, ENV_AUTH, ENV_GRAPH_TOKEN, FEDERATION_AUDIENCE, SecretString, TokenSource,
    jwt_claims, read_pem, token_object_id,
};
pub use cloud::{Audience, Cloud};
pub use error::{AzureError, REDACTED, parse_existing_assignment_id, redact_secrets};
pub use graph::{BatchRequest, BatchResponse, GroupMembership, GroupUpsert, MembershipChange, UpsertOutcome};
pub use http::{LogFn, RequestIds, RetryPolicy, capture_request_ids};
pub use lro::LroPolicy;
pub use model::*;

/// Bounded retries for directory replication delays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationPolicy {
    /// How long a role assignment answered with `PrincipalNotFound` (a principal created
    /// moments ago, not yet replicated to ARM) is tried again.
    pub rbac_budget: Duration,
    /// Wait between those attempts.
    pub rbac_delay: Duration,
    /// How long a Graph read or membership change of an object created moments ago that
    /// answers 404 is tried again.
    pub graph_budget: Duration,
    /// Wait between those attempts.
    pub graph_delay: Duration,
}

impl ReplicationPolicy {
    /// Patience for role assignments.
    pub(crate) fn rbac(&self) -> Patience {
        Patience::new(self.rbac_budget, self.rbac_delay)
    }

    /// Patience for Graph reads and writes.
    pub(crate) fn graph(&self) -> Patience {
        Patience::new(self.graph_budget, self.graph_delay)
    }
}

/// Waiting out replication delay within a time budget (not a count of attempts: how long
/// replication takes does not depend on how often one asks).
#[derive(Debug)]
pub(crate) struct Patience {
    deadline: std::time::Instant,
    delay: Duration,
    attempt: u32,
}

impl Patience {
    fn new(budget: Duration, delay: Duration) -> Patience {
        Patience { deadline: std::time::Instant::now() + budget, delay, attempt: 0 }
    }

    /// The attempt just made failed: the wait before the next one, or `None` when that wait
    /// would end past the budget.
    pub(crate) fn next(&mut self) -> Option<Duration> {
        self.attempt += 1;
        (std::time::Instant::now() + self.delay <= self.deadline).then_some(self.delay)
    }

    /// Attempts made so far.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempt
    }
}

impl Default for ReplicationPolicy {
    fn default() -> Self {
        Self {
            rbac_budget: Duration::from_secs(600),
            rbac_delay: Duration::from_secs(15),
            graph_budget: Duration::from_secs(300),
            graph_delay: Duration::from_secs(2),
        }
    }
}

/// Options for [`AzureClient::new`].
#[derive(Clone)]
pub struct ClientOptions {
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Receives verbose log lines (retries, token acquisition); never tokens.
    pub log: Option<LogFn>,
    /// Extra trusted root CA(s), PEM (the emulator's `--tls` certificate).
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Throttling and transient-failure retries.
    pub retry: RetryPolicy,
    /// Long-running operation polling.
    pub lro: LroPolicy,
    /// Replication-delay retries.
    pub replication: ReplicationPolicy,
    /// Pace ARM requests from the remaining-budget headers.
    pub pacing: bool,
    /// Timeout of one HTTP exchange.
    pub request_timeout: Duration,
    /// Record mode: write every exchange, sanitised, to a cassette in this folder
    /// (`MLPOLICY_RECORD=DIR` on the command line).
    pub record: Option<std::path::PathBuf>,
    /// In record mode, replace the tenant id and subscription ids by zeros (the default).
    pub record_replace_ids: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            concurrency: 64,
            log: None,
            extra_ca_pem: None,
            retry: RetryPolicy::default(),
            lro: LroPolicy::default(),
            replication: ReplicationPolicy::default(),
            pacing: true,
            request_timeout: Duration::from_secs(120),
            record: None,
            record_replace_ids: true,
        }
    }
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("concurrency", &self.concurrency)
            .field("log", &self.log.is_some())
            .field("extra_ca_pem", &self.extra_ca_pem.is_some())
            .field("retry", &self.retry)
            .field("lro", &self.lro)
            .field("replication", &self.replication)
            .field("pacing", &self.pacing)
            .field("request_timeout", &self.request_timeout)
            .field("record", &self.record)
            .field("record_replace_ids", &self.record_replace_ids)
            .finish()
    }
}

pub(crate) struct Inner {
    pub(crate) core: http::Core,
    pub(crate) tenant_id: String,
    pub(crate) lro: LroPolicy,
    pub(crate) replication: ReplicationPolicy,
    pub(crate) role_catalogs: tokio::sync::Mutex<HashMap<String, Arc<RoleCatalog>>>,
    pub(crate) fic_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Client for ARM and Microsoft Graph. Clones share connections, tokens and caches.
#[derive(Clone)]
pub struct AzureClient {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for AzureClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureClient")
            .field("cloud", &self.inner.core.cloud)
            .field("tenant_id", &self.inner.tenant_id)
            .field("auth", &self.inner.core.tokens.source().describe())
            .finish_non_exhaustive()
    }
}

impl AzureClient {
    /// Builds a client. No request is sent until the first operation.
    pub fn new(cloud: Cloud, tenant_id: &str, source: TokenSource, options: ClientOptions) -> Result<Self, AzureError> {
        let http = http::build_http(options.extra_ca_pem.as_deref(), options.request_timeout)?;
        let sink = http::Sink(options.log.clone());
        for warning in source.warnings() {
            sink.log(&format!("warning: {warning}"));
        }
        sink.log(&format!("authentication: {}", source.describe()));
        let tokens = auth::TokenProvider::new(cloud.clone(), tenant_id.to_string(), source, http.clone(), sink.clone());
        let recorder = match &options.record {
            Some(dir) => {
                let r = record::Recorder::create(dir, tenant_id, options.record_replace_ids)?;
                sink.log(&format!("recording to {}", r.path().display()));
                Some(r)
            }
            None => None,
        };
        let mut core = http::Core::new(http, cloud, tokens, sink, options.retry, options.concurrency, options.pacing);
        core.recorder = recorder;
        Ok(Self {
            inner: Arc::new(Inner {
                core,
                tenant_id: tenant_id.to_string(),
                lro: options.lro,
                replication: options.replication,
                role_catalogs: tokio::sync::Mutex::new(HashMap::new()),
                fic_locks: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The tenant this client works in.
    pub fn tenant_id(&self) -> &str {
        &self.inner.tenant_id
    }

    /// The cloud this client talks to.
    pub fn cloud(&self) -> &Cloud {
        &self.inner.core.cloud
    }

    /// One line naming the credential in use, for `--verbose`.
    pub fn describe_auth(&self) -> String {
        self.inner.core.tokens.source().describe()
    }

    /// Object id (`oid` claim) of the principal behind the ARM token, so apply can record who acted.
    pub async fn principal_object_id(&self) -> Result<Option<String>, AzureError> {
        let token = self.inner.core.tokens.token(Audience::Arm).await?;
        Ok(token_object_id(token.expose()))
    }

    pub(crate) fn core(&self) -> &http::Core {
        &self.inner.core
    }

    pub(crate) fn log(&self, line: &str) {
        self.inner.core.sink.log(line);
    }
}
