//! Microsoft Graph v1.0 operations: groups (created only by upsert on `uniqueName`), members
//! and owners, users, service principals, applications, and JSON `$batch`.
//!
//! Membership writes are idempotent in effect: "already exist" on add and "do not exist" on
//! remove count as success, which is also what makes retrying a member add safe. A 404 on add
//! (a principal created moments ago) is retried with bounded backoff. Batches hold at most 20
//! requests, match responses by id in any order, retry only the inner 429s, and member lists
//! whose first page has a next link continue with plain GETs.

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
};

use reqwest::Method;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio::task::JoinSet;
use url::Url;

use super::{
    AzureClient,
    arm::{odata_quote, set_query},
    cloud::Audience,
    error::AzureError,
    http::{Call, Replay, backoff_delay, jitter},
    model::{Application, DirectoryObject, Group, Page, ServicePrincipal, User},
};

const BATCH_LIMIT: usize = 20;
const USER_SELECT: &str = "id,userPrincipalName,displayName,mail,userType,accountEnabled";

/// Desired state of a security group, keyed by its tenant-unique `uniqueName`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupUpsert {
    /// Tenant-unique key; goes in the URL, not the body.
    #[serde(skip)]
    pub unique_name: String,
    /// Display name.
    pub display_name: String,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Mail nickname (required at creation; ASCII, no spaces or `@()\[]";:.<>,`).
    pub mail_nickname: String,
    /// Always false for security groups.
    pub mail_enabled: bool,
    /// Always true for security groups.
    pub security_enabled: bool,
}

impl GroupUpsert {
    /// A plain security group.
    pub fn security_group(
        unique_name: &str,
        display_name: &str,
        mail_nickname: &str,
        description: Option<&str>,
    ) -> Self {
        Self {
            unique_name: unique_name.to_string(),
            display_name: display_name.to_string(),
            description: description.map(str::to_string),
            mail_nickname: mail_nickname.to_string(),
            mail_enabled: false,
            security_enabled: true,
        }
    }
}

/// Result of [`AzureClient::upsert_group`].
#[derive(Debug, Clone, PartialEq)]
pub struct UpsertOutcome {
    /// The group after the call.
    pub group: Group,
    /// True when Graph created it (201), false when it existed and was updated (204).
    pub created: bool,
}

/// What a member/owner add or remove did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipChange {
    /// The reference was added or removed.
    Changed,
    /// Nothing to do: already a member (add) or not a member (remove).
    Unchanged,
}

/// Direct members and owners of one group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupMembership {
    /// Direct members.
    pub members: Vec<DirectoryObject>,
    /// Owners.
    pub owners: Vec<DirectoryObject>,
}

/// One request inside a `$batch`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchRequest {
    /// Unique within the batch.
    pub id: String,
    /// HTTP method.
    pub method: String,
    /// Relative URL without `/v1.0`, e.g. `/users/alice@contoso.com`.
    pub url: String,
    /// JSON body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// Headers (`Content-Type` is added when there is a body).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl BatchRequest {
    /// A GET.
    pub fn get(id: impl Into<String>, url: impl Into<String>) -> Self {
        Self { id: id.into(), method: "GET".to_string(), url: url.into(), body: None, headers: BTreeMap::new() }
    }
}

/// One response from a `$batch`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BatchResponse {
    /// The request id it answers.
    pub id: String,
    /// HTTP status.
    pub status: u16,
    /// Headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON body (null when absent).
    #[serde(default)]
    pub body: serde_json::Value,
}

/// A `$batch` response as received: the body stays raw JSON text until a caller reads it,
/// so a list body is parsed once, straight into its items.
#[derive(Debug, Deserialize)]
struct RawBatchResponse {
    id: String,
    status: u16,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<Box<serde_json::value::RawValue>>,
}

impl RawBatchResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn body_text(&self) -> &str {
        self.body.as_deref().map_or("null", serde_json::value::RawValue::get)
    }

    fn error(&self, op: &str) -> AzureError {
        AzureError::from_response(op, self.status, self.body_text().as_bytes(), None, None)
    }

    fn parse<T: DeserializeOwned>(&self, op: &str) -> Result<T, AzureError> {
        serde_json::from_str(self.body_text()).map_err(|e| AzureError::local(op, "MalformedResponse", e.to_string()))
    }

    fn into_public(self) -> BatchResponse {
        let body = serde_json::from_str(self.body_text()).unwrap_or(serde_json::Value::Null);
        BatchResponse { id: self.id, status: self.status, headers: self.headers, body }
    }
}

#[derive(Debug, Deserialize)]
struct BatchEnvelope {
    #[serde(default)]
    responses: Vec<RawBatchResponse>,
}

/// Percent-encodes one path segment (`#` → `%23`, `/` → `%2F`); keeps `@` and `OData` punctuation.
pub(crate) fn encode_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@!$&'()*+,;=:".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// How much of Graph's directory budget a batch's answers say is spent: the highest
/// `x-ms-throttle-limit-percentage` among them, `None` when Graph did not warn (it does from
/// 80% on). A 429 without the header says nothing of the budget (other limits throttle too)
/// and is only waited out.
fn budget_used(answers: &[RawBatchResponse]) -> Option<f64> {
    answers
        .iter()
        .filter_map(|a| a.header("x-ms-throttle-limit-percentage").and_then(|v| v.trim().parse::<f64>().ok()))
        .filter(|p| p.is_finite())
        .reduce(f64::max)
}

fn relative(path: &str, query: &[(&str, &str)]) -> String {
    let Ok(mut url) = Url::parse(&format!("http://x{path}")) else {
        return path.to_string();
    };
    set_query(&mut url, query);
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

fn is_already_exists(err: &AzureError) -> bool {
    err.status == 400 && err.message.to_ascii_lowercase().contains("already exist")
}

fn is_does_not_exist(err: &AzureError) -> bool {
    err.status == 404
        || (err.status == 400 && {
            let m = err.message.to_ascii_lowercase();
            m.contains("do not exist") || m.contains("does not exist")
        })
}

impl AzureClient {
    pub(crate) fn graph_url(&self, relative: &str) -> Result<Url, AzureError> {
        let base = self.core().cloud.graph_base();
        let raw = format!("{}/v1.0{relative}", base.as_str().trim_end_matches('/'));
        Url::parse(&raw)
            .map_err(|e| AzureError::local("build Graph URL", "InvalidUrl", format!("invalid URL `{raw}`: {e}")))
    }

    async fn graph_get_opt<T: DeserializeOwned>(&self, relative: &str, op: &str) -> Result<Option<T>, AzureError> {
        let url = self.graph_url(relative)?;
        let resp = self.core().send(Call::new(Audience::Graph, Method::GET, url, op)).await?;
        match resp.status {
            404 => Ok(None),
            _ if resp.ok() => resp.json(op).map(Some),
            _ => Err(resp.error(op)),
        }
    }

    async fn graph_list<T: DeserializeOwned>(&self, relative: &str, op: &str) -> Result<Vec<T>, AzureError> {
        let url = self.graph_url(relative)?;
        self.list_pages(Audience::Graph, url, op).await
    }

    // ---- groups ----------------------------------------------------------------------------

    /// Groups whose `uniqueName` starts with `prefix` (mlpolicy's ownership namespace).
    pub async fn list_groups_by_unique_name_prefix(&self, prefix: &str) -> Result<Vec<Group>, AzureError> {
        let filter = format!("startswith(uniqueName,{})", odata_quote(prefix));
        self.graph_list(
            &relative("/groups", &[("$filter", &filter), ("$top", "999")]),
            &format!("list groups with uniqueName prefix {prefix}"),
        )
        .await
    }

    /// Groups whose display name starts with `prefix`.
    pub async fn list_groups_by_display_name_prefix(&self, prefix: &str) -> Result<Vec<Group>, AzureError> {
        let filter = format!("startswith(displayName,{})", odata_quote(prefix));
        self.graph_list(
            &relative("/groups", &[("$filter", &filter), ("$top", "999")]),
            &format!("list groups named {prefix}*"),
        )
        .await
    }

    /// Groups with this display name (not unique: may be several).
    pub async fn find_groups_by_display_name(&self, display_name: &str) -> Result<Vec<Group>, AzureError> {
        let filter = format!("displayName eq {}", odata_quote(display_name));
        self.graph_list(&relative("/groups", &[("$filter", &filter)]), &format!("find groups named {display_name}"))
            .await
    }

    /// One group by object id; `None` when missing.
    pub async fn get_group(&self, id: &str) -> Result<Option<Group>, AzureError> {
        self.graph_get_opt(&format!("/groups/{}", encode_segment(id)), &format!("read group {id}")).await
    }

    fn unique_name_path(unique_name: &str) -> String {
        format!("/groups(uniqueName={})", encode_segment(&odata_quote(unique_name)))
    }

    /// One group by `uniqueName`; `None` when missing.
    pub async fn get_group_by_unique_name(&self, unique_name: &str) -> Result<Option<Group>, AzureError> {
        self.graph_get_opt(&Self::unique_name_path(unique_name), &format!("read group {unique_name}")).await
    }

    /// Creates or updates a group with `PATCH /groups(uniqueName='..')` and
    /// `Prefer: create-if-missing`: idempotent, so safe to retry, unlike `POST /groups`.
    pub async fn upsert_group(&self, desired: &GroupUpsert) -> Result<UpsertOutcome, AzureError> {
        let op = format!("create or update group {}", desired.unique_name);
        let url = self.graph_url(&Self::unique_name_path(&desired.unique_name))?;
        let body =
            serde_json::to_value(desired).map_err(|e| AzureError::local(&op, "InvalidRequest", e.to_string()))?;
        let resp = self
            .core()
            .send_ok(
                Call::new(Audience::Graph, Method::PATCH, url, &op)
                    .body(&body)
                    .header("Prefer", "create-if-missing")
                    .replay(Replay::Safe),
            )
            .await?;
        if resp.status == 201 || (resp.ok() && !resp.body.is_empty()) {
            let group: Group = resp.json(&op)?;
            return Ok(UpsertOutcome { group, created: resp.status == 201 });
        }
        // 204: the group existed. When an earlier attempt created it and its answer was lost,
        // the read can still miss it for a few seconds (directory replication): wait it out.
        let mut patience = self.inner.replication.graph();
        loop {
            if let Some(group) = self.get_group_by_unique_name(&desired.unique_name).await? {
                return Ok(UpsertOutcome { group, created: false });
            }
            let Some(delay) = patience.next() else { break };
            self.log(&format!(
                "{op}: updated but not yet readable (attempt {}); retrying in {delay:?}",
                patience.attempts()
            ));
            tokio::time::sleep(delay).await;
        }
        Err(AzureError::local(&op, "Request_ResourceNotFound", "the group was updated but cannot be read back"))
    }

    /// `PATCH /groups/{id}` with a partial body.
    pub async fn patch_group(&self, id: &str, patch: &serde_json::Value) -> Result<(), AzureError> {
        let op = format!("update group {id}");
        let url = self.graph_url(&format!("/groups/{}", encode_segment(id)))?;
        self.core().send_ok(Call::new(Audience::Graph, Method::PATCH, url, &op).body(patch)).await?;
        Ok(())
    }

    /// Deletes a group; false when it was already gone.
    pub async fn delete_group(&self, id: &str) -> Result<bool, AzureError> {
        let op = format!("delete group {id}");
        let url = self.graph_url(&format!("/groups/{}", encode_segment(id)))?;
        let resp = self.core().send(Call::new(Audience::Graph, Method::DELETE, url, &op)).await?;
        match resp.status {
            404 => Ok(false),
            _ if resp.ok() => Ok(true),
            _ => Err(resp.error(&op)),
        }
    }

    /// Direct members of a group (a group created moments ago may answer 404 until it has
    /// replicated: that is waited out).
    pub async fn list_group_members(&self, group_id: &str) -> Result<Vec<DirectoryObject>, AzureError> {
        self.list_group_relation(group_id, "members").await
    }

    /// Owners of a group (waiting out replication as [`Self::list_group_members`] does).
    pub async fn list_group_owners(&self, group_id: &str) -> Result<Vec<DirectoryObject>, AzureError> {
        self.list_group_relation(group_id, "owners").await
    }

    async fn list_group_relation(&self, group_id: &str, relation: &str) -> Result<Vec<DirectoryObject>, AzureError> {
        let op = format!("list {relation} of group {group_id}");
        let path = relative(&format!("/groups/{}/{relation}", encode_segment(group_id)), &[("$top", "999")]);
        let mut patience = self.inner.replication.graph();
        loop {
            match self.graph_list(&path, &op).await {
                Err(e) if e.status == 404 => {
                    let Some(delay) = patience.next() else { return Err(e) };
                    self.log(&format!(
                        "{op}: not found yet (replication, attempt {}); retrying in {delay:?}",
                        patience.attempts()
                    ));
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    /// Adds a direct member.
    pub async fn add_group_member(&self, group_id: &str, object_id: &str) -> Result<MembershipChange, AzureError> {
        self.add_reference(group_id, "members", object_id).await
    }

    /// Adds an owner.
    pub async fn add_group_owner(&self, group_id: &str, object_id: &str) -> Result<MembershipChange, AzureError> {
        self.add_reference(group_id, "owners", object_id).await
    }

    /// Removes a direct member.
    pub async fn remove_group_member(&self, group_id: &str, object_id: &str) -> Result<MembershipChange, AzureError> {
        self.remove_reference(group_id, "members", object_id).await
    }

    /// Removes an owner (Graph refuses to remove the last one).
    pub async fn remove_group_owner(&self, group_id: &str, object_id: &str) -> Result<MembershipChange, AzureError> {
        self.remove_reference(group_id, "owners", object_id).await
    }

    async fn add_reference(
        &self,
        group_id: &str,
        relation: &str,
        object_id: &str,
    ) -> Result<MembershipChange, AzureError> {
        let op = format!("add {object_id} to {relation} of group {group_id}");
        let url = self.graph_url(&format!("/groups/{}/{relation}/$ref", encode_segment(group_id)))?;
        let graph_base = self.core().cloud.graph_base();
        let body = serde_json::json!({
            "@odata.id": format!("{}/v1.0/directoryObjects/{object_id}", graph_base.as_str().trim_end_matches('/'))
        });
        let mut patience = self.inner.replication.graph();
        loop {
            // A repeated add answers 400 "already exist", which counts as success, so replaying
            // this POST after a lost response is safe.
            let resp = self
                .core()
                .send(Call::new(Audience::Graph, Method::POST, url.clone(), &op).body(&body).replay(Replay::Safe))
                .await?;
            if resp.ok() {
                return Ok(MembershipChange::Changed);
            }
            let err = resp.error(&op);
            if is_already_exists(&err) {
                return Ok(MembershipChange::Unchanged);
            }
            if err.status == 404
                && let Some(delay) = patience.next()
            {
                self.log(&format!(
                    "{op}: not found yet (replication, attempt {}); retrying in {delay:?}",
                    patience.attempts()
                ));
                tokio::time::sleep(delay).await;
                continue;
            }
            return Err(err);
        }
    }

    async fn remove_reference(
        &self,
        group_id: &str,
        relation: &str,
        object_id: &str,
    ) -> Result<MembershipChange, AzureError> {
        let op = format!("remove {object_id} from {relation} of group {group_id}");
        let url = self.graph_url(&format!(
            "/groups/{}/{relation}/{}/$ref",
            encode_segment(group_id),
            encode_segment(object_id)
        ))?;
        let resp = self.core().send(Call::new(Audience::Graph, Method::DELETE, url, &op)).await?;
        if resp.ok() {
            return Ok(MembershipChange::Changed);
        }
        let err = resp.error(&op);
        if is_does_not_exist(&err) { Ok(MembershipChange::Unchanged) } else { Err(err) }
    }

    // ---- users, service principals, applications -------------------------------------------

    /// A user by UPN or object id; `None` when missing. Guest UPNs (`#EXT#`) are encoded.
    pub async fn get_user(&self, upn_or_id: &str) -> Result<Option<User>, AzureError> {
        self.graph_get_opt(
            &relative(&format!("/users/{}", encode_segment(upn_or_id)), &[("$select", USER_SELECT)]),
            &format!("read user {upn_or_id}"),
        )
        .await
    }

    /// A service principal by object id; `None` when missing.
    pub async fn get_service_principal(&self, id: &str) -> Result<Option<ServicePrincipal>, AzureError> {
        self.graph_get_opt(
            &format!("/servicePrincipals/{}", encode_segment(id)),
            &format!("read service principal {id}"),
        )
        .await
    }

    /// Applications with their password credentials (secret metadata), optionally filtered.
    pub async fn list_applications(&self, filter: Option<&str>) -> Result<Vec<Application>, AzureError> {
        let mut query = vec![("$select", "id,appId,displayName,passwordCredentials")];
        if let Some(f) = filter {
            query.push(("$filter", f));
        }
        self.graph_list(&relative("/applications", &query), "list applications").await
    }

    /// One application by object id; `None` when missing.
    pub async fn get_application(&self, id: &str) -> Result<Option<Application>, AzureError> {
        self.graph_get_opt(
            &relative(
                &format!("/applications/{}", encode_segment(id)),
                &[("$select", "id,appId,displayName,passwordCredentials")],
            ),
            &format!("read application {id}"),
        )
        .await
    }

    /// Applications by application (client) id through `$batch`
    /// (`/applications(appId='...')`), with their secrets' metadata; `None` for an app id with
    /// no registration in this tenant (a managed identity, another tenant's app).
    pub async fn batch_applications_by_app_id(
        &self,
        app_ids: &[String],
    ) -> Result<BTreeMap<String, Option<Application>>, AzureError> {
        let requests = app_ids
            .iter()
            .map(|app_id| {
                let key = encode_segment(&super::arm::odata_quote(app_id));
                (
                    relative(
                        &format!("/applications(appId={key})"),
                        &[("$select", "id,appId,displayName,passwordCredentials")],
                    ),
                    format!("read application {app_id}"),
                )
            })
            .collect();
        let found = self.batch_get_optional("a", requests).await?;
        Ok(app_ids.iter().cloned().zip(found).collect())
    }

    // ---- $batch ----------------------------------------------------------------------------

    /// Sends requests through `$batch`, 20 per call (calls run concurrently), retrying inner
    /// 429s for just those ids; responses come back in request order.
    pub async fn graph_batch(&self, requests: Vec<BatchRequest>) -> Result<Vec<BatchResponse>, AzureError> {
        Ok(self.graph_batch_raw(requests).await?.into_iter().map(RawBatchResponse::into_public).collect())
    }

    /// [`Self::graph_batch`] with the bodies left as raw JSON.
    async fn graph_batch_raw(&self, requests: Vec<BatchRequest>) -> Result<Vec<RawBatchResponse>, AzureError> {
        let mut set = JoinSet::new();
        let chunks: Vec<Vec<BatchRequest>> = requests.chunks(BATCH_LIMIT).map(<[BatchRequest]>::to_vec).collect();
        for (index, chunk) in chunks.into_iter().enumerate() {
            let client = self.clone();
            set.spawn(async move { (index, client.batch_chunk(chunk).await) });
        }
        let mut parts = Vec::new();
        while let Some(joined) = set.join_next().await {
            let (index, result) =
                joined.map_err(|e| AzureError::local("send Graph batch", "Internal", e.to_string()))?;
            parts.push((index, result?));
        }
        parts.sort_by_key(|(i, _)| *i);
        Ok(parts.into_iter().flat_map(|(_, r)| r).collect())
    }

    async fn batch_chunk(&self, chunk: Vec<BatchRequest>) -> Result<Vec<RawBatchResponse>, AzureError> {
        let op = "send Graph batch";
        let url = self.graph_url("/$batch")?;
        let all_get = chunk.iter().all(|r| r.method.eq_ignore_ascii_case("GET"));
        let mut done: BTreeMap<String, RawBatchResponse> = BTreeMap::new();
        let mut pending: Vec<BatchRequest> = chunk.clone();
        let policy = self.core().retry.clone();
        let mut attempt = 0;
        while !pending.is_empty() {
            attempt += 1;
            let requests: Vec<serde_json::Value> = pending
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    if r.body.is_some() && !r.headers.keys().any(|k| k.eq_ignore_ascii_case("content-type")) {
                        r.headers.insert("Content-Type".to_string(), "application/json".to_string());
                    }
                    serde_json::to_value(r).unwrap_or(serde_json::Value::Null)
                })
                .collect();
            let body = serde_json::json!({ "requests": requests });
            let replay = if all_get { Replay::Safe } else { Replay::Unsafe };
            let budget = self.core().graph_budget();
            let permit = match budget {
                Some(b) => b.acquire(pending.len()).await,
                None => None,
            };
            let envelope = self
                .core()
                .send_ok(Call::new(Audience::Graph, Method::POST, url.clone(), op).body(&body).replay(replay))
                .await
                .and_then(|resp| resp.json::<BatchEnvelope>(op));
            if let Some(b) = budget {
                b.observe(pending.len(), envelope.as_ref().ok().and_then(|e| budget_used(&e.responses)));
            }
            drop(permit);
            let envelope = envelope?;
            // By id (case-insensitive; the first answer of an id counts), moved out once used.
            let mut answers: HashMap<String, RawBatchResponse> = HashMap::with_capacity(envelope.responses.len());
            for r in envelope.responses {
                answers.entry(r.id.to_ascii_lowercase()).or_insert(r);
            }
            let mut retry = Vec::new();
            let mut wait = std::time::Duration::ZERO;
            for request in pending {
                let Some(answer) = answers.remove(&request.id.to_ascii_lowercase()) else {
                    return Err(AzureError::local(
                        op,
                        "MalformedResponse",
                        format!("no response for batch request {}", request.id),
                    ));
                };
                let transient = answer.status == 429
                    || (request.method.eq_ignore_ascii_case("GET") && matches!(answer.status, 500 | 502 | 503 | 504));
                if transient && attempt < policy.max_attempts {
                    let asked = answer
                        .header("Retry-After")
                        .and_then(|v| v.trim().parse::<f64>().ok())
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .map(std::time::Duration::from_secs_f64);
                    let delay = asked
                        .map_or_else(|| backoff_delay(attempt, &policy, jitter()), |d| d.min(policy.max_retry_after));
                    wait = wait.max(delay);
                    retry.push(request);
                } else {
                    done.insert(request.id.clone(), answer);
                }
            }
            if !retry.is_empty() {
                self.log(&format!(
                    "retry {attempt}/{} {} of the batch requests in {wait:?}: throttled or failed inside $batch",
                    policy.max_attempts - 1,
                    retry.len()
                ));
                tokio::time::sleep(wait).await;
            }
            pending = retry;
        }
        chunk
            .iter()
            .map(|r| {
                done.remove(&r.id).ok_or_else(|| {
                    AzureError::local(op, "MalformedResponse", format!("no response for batch request {}", r.id))
                })
            })
            .collect()
    }

    async fn finish_page<T: DeserializeOwned>(&self, r: &RawBatchResponse, op: &str) -> Result<Vec<T>, AzureError> {
        let page: Page<T> = serde_json::from_str(r.body_text())
            .map_err(|e| AzureError::local(op, "MalformedResponse", format!("unexpected list body: {e}")))?;
        let mut items = page.value;
        if let Some(link) = page.next_link.filter(|l| !l.is_empty()) {
            let url = Url::parse(&link)
                .map_err(|e| AzureError::local(op, "MalformedResponse", format!("invalid next link `{link}`: {e}")))?;
            items.extend(self.list_pages(Audience::Graph, url, op).await?);
        }
        Ok(items)
    }

    /// Direct members and owners of many groups through `$batch`; `None` for a missing group.
    pub async fn batch_group_members(
        &self,
        group_ids: &[String],
    ) -> Result<BTreeMap<String, Option<GroupMembership>>, AzureError> {
        let mut requests = Vec::with_capacity(group_ids.len() * 2);
        for (i, id) in group_ids.iter().enumerate() {
            let g = encode_segment(id);
            requests.push(BatchRequest::get(
                format!("m{i}"),
                relative(&format!("/groups/{g}/members"), &[("$top", "999")]),
            ));
            requests
                .push(BatchRequest::get(format!("o{i}"), relative(&format!("/groups/{g}/owners"), &[("$top", "999")])));
        }
        let responses = self.graph_batch_raw(requests).await?;
        let mut out = BTreeMap::new();
        // Answers come back in request order: each group's members, then its owners.
        for (id, pair) in group_ids.iter().zip(responses.chunks(2)) {
            let op = format!("list members and owners of group {id}");
            let [m, o] = pair else {
                return Err(AzureError::local(&op, "MalformedResponse", "missing batch response"));
            };
            if m.status == 404 || o.status == 404 {
                out.insert(id.clone(), None);
                continue;
            }
            for r in [m, o] {
                if !(200..300).contains(&r.status) {
                    return Err(r.error(&op));
                }
            }
            let members = self.finish_page(m, &op).await?;
            let owners = self.finish_page(o, &op).await?;
            out.insert(id.clone(), Some(GroupMembership { members, owners }));
        }
        Ok(out)
    }

    /// Lists through `$batch` (20 per batch, batches concurrent): one list per relative URL,
    /// each continued with plain GETs past its first page; results in URL order.
    async fn batch_lists<T: DeserializeOwned>(&self, urls: Vec<(String, String)>) -> Result<Vec<Vec<T>>, AzureError> {
        let requests = urls.iter().enumerate().map(|(i, (url, _))| BatchRequest::get(format!("l{i}"), url)).collect();
        let responses = self.graph_batch_raw(requests).await?;
        let mut out = Vec::with_capacity(urls.len());
        for (r, (_, op)) in responses.iter().zip(&urls) {
            if !(200..300).contains(&r.status) {
                return Err(r.error(op));
            }
            out.push(self.finish_page(r, op).await?);
        }
        Ok(out)
    }

    /// One GET per `(relative URL, operation)` through `$batch` (ids `{prefix}{index}`), in
    /// order: the object, `None` for a 404, an error naming the operation for any other failure.
    async fn batch_get_optional<T: DeserializeOwned>(
        &self,
        prefix: &str,
        gets: Vec<(String, String)>,
    ) -> Result<Vec<Option<T>>, AzureError> {
        let requests =
            gets.iter().enumerate().map(|(i, (url, _))| BatchRequest::get(format!("{prefix}{i}"), url)).collect();
        let responses = self.graph_batch_raw(requests).await?;
        responses
            .iter()
            .zip(&gets)
            .map(|(r, (_, op))| match r.status {
                404 => Ok(None),
                s if (200..300).contains(&s) => r.parse(op).map(Some),
                _ => Err(r.error(op)),
            })
            .collect()
    }

    /// [`Self::find_groups_by_display_name`] for many names through `$batch`.
    pub async fn find_groups_by_display_names(
        &self,
        names: &[String],
    ) -> Result<BTreeMap<String, Vec<Group>>, AzureError> {
        let urls = names
            .iter()
            .map(|name| {
                let filter = format!("displayName eq {}", odata_quote(name));
                (relative("/groups", &[("$filter", &filter)]), format!("find groups named {name}"))
            })
            .collect();
        let found = self.batch_lists(urls).await?;
        Ok(names.iter().cloned().zip(found).collect())
    }

    /// The service principals a configuration's name means, in one request: see
    /// [`service_principal_query`]. By app id there is at most one.
    pub async fn find_service_principal(&self, name: &str) -> Result<Vec<ServicePrincipal>, AzureError> {
        let (path, op) = service_principal_query(name);
        let found: Vec<ServicePrincipal> = self.graph_list(&path, &op).await?;
        Ok(if mlpolicy_vocab::guid::is_guid(name) { found.into_iter().take(1).collect() } else { found })
    }

    /// Service principals for many names through `$batch`, by the rule of
    /// [`service_principal_query`].
    pub async fn find_service_principals(
        &self,
        names: &[String],
    ) -> Result<BTreeMap<String, Vec<ServicePrincipal>>, AzureError> {
        let urls = names.iter().map(|name| service_principal_query(name)).collect();
        let found: Vec<Vec<ServicePrincipal>> = self.batch_lists(urls).await?;
        Ok(names
            .iter()
            .cloned()
            .zip(found)
            .map(|(name, list)| {
                // By app id there is at most one, as the single lookup answers.
                let list = if mlpolicy_vocab::guid::is_guid(&name) { list.into_iter().take(1).collect() } else { list };
                (name, list)
            })
            .collect())
    }

    /// UPN → user for many users through `$batch`; `None` for a UPN that does not exist.
    pub async fn resolve_upns(&self, upns: &[String]) -> Result<BTreeMap<String, Option<User>>, AzureError> {
        let requests = upns
            .iter()
            .map(|upn| {
                (
                    relative(&format!("/users/{}", encode_segment(upn)), &[("$select", USER_SELECT)]),
                    format!("resolve user {upn}"),
                )
            })
            .collect();
        let found = self.batch_get_optional("u", requests).await?;
        Ok(upns.iter().cloned().zip(found).collect())
    }
}

/// How a configuration names a service principal: a GUID is its application (client) id,
/// anything else its exact display name. The list request and its operation name.
pub(crate) fn service_principal_query(name: &str) -> (String, String) {
    let (filter, op) = if mlpolicy_vocab::guid::is_guid(name) {
        (format!("appId eq {}", odata_quote(name)), format!("find service principal of app {name}"))
    } else {
        (format!("displayName eq {}", odata_quote(name)), format!("find service principals named {name}"))
    };
    (relative("/servicePrincipals", &[("$filter", &filter)]), op)
}
