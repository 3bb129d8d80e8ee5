//! The Azure Resource Manager surface: subscriptions, resource groups (`2025-04-01`), ML
//! workspaces (`2025-06-01`, PUT/DELETE as 202 + `Location` LROs with soft delete), user-assigned
//! identities and their federated credentials (`2024-11-30`), role definitions and role
//! assignments (`2022-04-01`) at any scope. Ids and names compare case-insensitively; lists page
//! with absolute `nextLink`s; errors use the `{"error":{code,message}}` envelope (wire §1–§6).

#![expect(
    clippy::too_many_lines,
    reason = "route tables and resource handlers read best whole"
)]

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::realism::BucketKind;
use super::roles;
use super::state::{
    FederatedCredential, Identity, ResourceGroup, ServicePrincipal, Tenant, Workspace,
};
use super::util::{decode_skip_token, encode_skip_token, eq_ci, is_guid, iso8601};
use super::{Ctx, Reply, Shared, lock};

const V_SUBSCRIPTIONS: &[&str] = &["2022-12-01", "2021-01-01", "2020-01-01", "2016-06-01"];
const V_RESOURCES: &[&str] = &[
    "2025-04-01",
    "2025-03-01",
    "2024-11-01",
    "2024-07-01",
    "2024-03-01",
    "2023-07-01",
    "2022-09-01",
    "2021-04-01",
    "2020-06-01",
    "2019-10-01",
];
const V_ML: &[&str] = &[
    "2025-06-01",
    "2025-04-01",
    "2025-01-01-preview",
    "2024-10-01",
    "2024-04-01",
    "2023-10-01",
    "2023-04-01",
];
const V_MSI: &[&str] = &["2024-11-30", "2023-01-31", "2018-11-30"];
const V_AUTHZ: &[&str] = &[
    "2022-04-01",
    "2020-10-01-preview",
    "2020-04-01-preview",
    "2018-09-01-preview",
    "2015-07-01",
];

const ML_PROVIDER: &str = "Microsoft.MachineLearningServices";
const MSI_TYPE: &str = "Microsoft.ManagedIdentity/userAssignedIdentities";
const FIC_TYPE: &str =
    "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials";
const RA_TYPE: &str = "Microsoft.Authorization/roleAssignments";

/// A long-running operation behind a `Location` URL.
#[derive(Debug, Clone)]
pub struct Operation {
    kind: OpKind,
    target: String,
    started_ms: u64,
    polls_done: u32,
    polls_needed: u32,
    done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    WorkspacePut,
    WorkspaceDelete { purge: bool },
    ResourceGroupDelete,
}

/// Holds the per-identity FIC write lock for the duration of one request.
pub struct FicLock<'a> {
    shared: &'a Shared,
    key: String,
}

impl<'a> FicLock<'a> {
    /// Takes the lock when `ctx` writes a FIC; answers 409 when another write holds it.
    pub fn acquire(shared: &'a Shared, ctx: &Ctx) -> Result<Option<FicLock<'a>>, Reply> {
        let l: Vec<String> = ctx.segs.iter().map(|s| s.to_ascii_lowercase()).collect();
        let is_fic_write = (ctx.method == "PUT" || ctx.method == "DELETE")
            && l.len() == 10
            && l[0] == "subscriptions"
            && l[2] == "resourcegroups"
            && l[5] == "microsoft.managedidentity"
            && l[6] == "userassignedidentities"
            && l[8] == "federatedidentitycredentials";
        if !is_fic_write {
            return Ok(None);
        }
        let key = l[..8].join("/");
        let mut held = lock(&shared.fic_locks);
        if !held.insert(key.clone()) {
            return Err(Reply::arm_error(
                409,
                "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity",
                format!(
                    "Too many Federated Identity Credentials are written concurrently for the managed identity '/subscriptions/{}/resourcegroups/{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{}'. Concurrent Federated Identity Credentials writes under the same managed identity are not supported.",
                    ctx.segs[1], ctx.segs[3], ctx.segs[7]
                ),
            ));
        }
        Ok(Some(FicLock { shared, key }))
    }
}

impl Drop for FicLock<'_> {
    fn drop(&mut self) {
        lock(&self.shared.fic_locks).remove(&self.key);
    }
}

/// The throttling key: the subscription in the path, or `tenant`.
pub fn throttle_key(ctx: &Ctx) -> String {
    match ctx.segs.as_slice() {
        [s, sub, ..] if eq_ci(s, "subscriptions") => sub.to_ascii_lowercase(),
        _ => "tenant".to_owned(),
    }
}

/// The 429 answer for an empty bucket.
pub fn throttled(ctx: &Ctx, kind: BucketKind, key: &str, secs: u64) -> Reply {
    let op = if kind == BucketKind::Read {
        "read"
    } else {
        "write"
    };
    let actor = ctx
        .caller
        .as_ref()
        .map(|c| c.oid.clone())
        .unwrap_or_default();
    let (code, msg) = if key == "tenant" {
        (
            "TenantRequestsThrottled",
            format!(
                "Number of '{op}' requests for tenant actor '{actor}' exceeded. Please try again after '{secs}' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling"
            ),
        )
    } else {
        (
            "SubscriptionRequestsThrottled",
            format!(
                "Number of '{op}' requests for subscription '{key}' actor '{actor}' exceeded. Please try again after '{secs}' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling"
            ),
        )
    };
    Reply::arm_error(429, code, msg).header("Retry-After", secs.to_string())
}

enum Route {
    Subscriptions,
    Subscription(String),
    ResourceGroups(String),
    ResourceGroup(String, String),
    Operation(String, String),
    WorkspacesBySub(String),
    WorkspacesByRg(String, String),
    Workspace(String, String, String),
    IdentitiesBySub(String),
    IdentitiesByRg(String, String),
    Identity(String, String, String),
    Fics(String, String, String),
    Fic(String, String, String, String),
    RoleAssignments(String),
    RoleAssignment(String, String),
    RoleDefinitions(String),
    RoleDefinition(String, String),
    Unknown,
}

fn route(segs: &[String]) -> Route {
    let lc: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lc.iter().map(String::as_str).collect();
    let s = |i: usize| segs[i].clone();
    if let Some(i) = (0..l.len().saturating_sub(1))
        .rev()
        .find(|&i| l[i] == "providers" && l[i + 1] == "microsoft.authorization")
    {
        let scope = format!("/{}", segs[..i].join("/"));
        return match &l[i + 2..] {
            ["roleassignments"] => Route::RoleAssignments(scope),
            ["roleassignments", _] => Route::RoleAssignment(scope, s(i + 3)),
            ["roledefinitions"] => Route::RoleDefinitions(scope),
            ["roledefinitions", _] => Route::RoleDefinition(scope, s(i + 3)),
            _ => Route::Unknown,
        };
    }
    match l.as_slice() {
        ["subscriptions"] => Route::Subscriptions,
        ["subscriptions", _] => Route::Subscription(s(1)),
        ["subscriptions", _, "resourcegroups"] => Route::ResourceGroups(s(1)),
        ["subscriptions", _, "resourcegroups", _] => Route::ResourceGroup(s(1), s(3)),
        ["subscriptions", _, "operationresults", _]
        | [
            "subscriptions",
            _,
            "providers",
            "microsoft.machinelearningservices",
            "locations",
            _,
            _,
            _,
        ] => Route::Operation(s(1), segs[segs.len() - 1].clone()),
        [
            "subscriptions",
            _,
            "providers",
            "microsoft.machinelearningservices",
            "workspaces",
        ] => Route::WorkspacesBySub(s(1)),
        [
            "subscriptions",
            _,
            "providers",
            "microsoft.managedidentity",
            "userassignedidentities",
        ] => Route::IdentitiesBySub(s(1)),
        [
            "subscriptions",
            _,
            "resourcegroups",
            _,
            "providers",
            "microsoft.machinelearningservices",
            "workspaces",
        ] => Route::WorkspacesByRg(s(1), s(3)),
        [
            "subscriptions",
            _,
            "resourcegroups",
            _,
            "providers",
            "microsoft.machinelearningservices",
            "workspaces",
            _,
        ] => Route::Workspace(s(1), s(3), s(7)),
        [
            "subscriptions",
            _,
            "resourcegroups",
            _,
            "providers",
            "microsoft.managedidentity",
            "userassignedidentities",
        ] => Route::IdentitiesByRg(s(1), s(3)),
        [
            "subscriptions",
            _,
            "resourcegroups",
            _,
            "providers",
            "microsoft.managedidentity",
            "userassignedidentities",
            _,
        ] => Route::Identity(s(1), s(3), s(7)),
        [
            "subscriptions",
            _,
            "resourcegroups",
            _,
            "providers",
            "microsoft.managedidentity",
            "userassignedidentities",
            _,
            "federatedidentitycredentials",
        ] => Route::Fics(s(1), s(3), s(7)),
        [
            "subscriptions",
            _,
            "resourcegroups",
            _,
            "providers",
            "microsoft.managedidentity",
            "userassignedidentities",
            _,
            "federatedidentitycredentials",
            _,
        ] => Route::Fic(s(1), s(3), s(7), s(9)),
        _ => Route::Unknown,
    }
}

fn check_version(ctx: &Ctx, allowed: &[&str]) -> Result<(), Reply> {
    match ctx.q("api-version") {
        None | Some("") => Err(Reply::arm_error(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )),
        Some(v) if allowed.iter().any(|a| eq_ci(a, v)) => Ok(()),
        Some(v) => Err(Reply::arm_error(
            400,
            "InvalidApiVersionParameter",
            format!(
                "The api-version '{v}' is invalid. The supported versions are '{}'.",
                allowed.join(",")
            ),
        )),
    }
}

fn not_found(kind: &str, name: &str, rg: &str) -> Reply {
    Reply::arm_error(
        404,
        "ResourceNotFound",
        format!(
            "The Resource '{kind}/{name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
        ),
    )
}

fn rg_not_found(rg: &str) -> Reply {
    Reply::arm_error(
        404,
        "ResourceGroupNotFound",
        format!("Resource group '{rg}' could not be found."),
    )
}

fn bad_content(e: &str) -> Reply {
    Reply::arm_error(
        400,
        "InvalidRequestContent",
        format!("The request content was invalid and could not be deserialized: '{e}'."),
    )
}

/// The request body as a JSON object, or an ARM 400.
fn body_object(ctx: &Ctx) -> Result<Map<String, Value>, Reply> {
    match ctx.json() {
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::Null) => Err(bad_content("The request body is empty.")),
        Ok(_) => Err(bad_content("The request body must be a JSON object.")),
        Err(e) => Err(bad_content(&e)),
    }
}

fn tags_of(body: &Map<String, Value>) -> Result<Option<BTreeMap<String, String>>, Reply> {
    match body.get("tags") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                    )
                })
                .collect(),
        )),
        Some(_) => Err(bad_content("'tags' must be an object of strings")),
    }
}

fn location_of(body: &Map<String, Value>) -> Result<String, Reply> {
    match body.get("location").and_then(Value::as_str) {
        Some(l) if !l.trim().is_empty() => Ok(l.to_owned()),
        _ => Err(Reply::arm_error(
            400,
            "LocationRequired",
            "The location property is required for this definition.",
        )),
    }
}

fn same_location(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase()
    };
    norm(a) == norm(b)
}

fn location_conflict(name: &str, old: &str, rg: &str, new: &str) -> Reply {
    Reply::arm_error(
        409,
        "InvalidResourceLocation",
        format!(
            "The resource '{name}' already exists in location '{old}' in resource group '{rg}'. A resource with the same name cannot be created in location '{new}'. Please select a new resource name."
        ),
    )
}

/// Serves one authenticated, unthrottled ARM request.
pub async fn handle(shared: &Shared, ctx: &Ctx) -> Reply {
    let mut t = shared.state.lock().await;
    let settled = settle_ops(shared, &mut t, ctx.now_ms);
    let route = route(&ctx.segs);
    let mutates = !ctx.is_read() || matches!(route, Route::Operation(..));
    let before = if mutates { Some(t.clone()) } else { None };
    let reply = dispatch(shared, ctx, &mut t, route);
    let changed = settled || before.is_some_and(|b| b != *t);
    if changed {
        shared.persist(&t).await;
    }
    reply
}

fn subscription_check(shared: &Shared, ctx: &Ctx, t: &mut Tenant, sub: &str) -> Result<(), Reply> {
    if t.has_subscription(sub) {
        return Ok(());
    }
    if shared.strict_auth {
        return Err(Reply::arm_error(
            404,
            "SubscriptionNotFound",
            format!("The subscription '{sub}' could not be found."),
        ));
    }
    if !ctx.is_read() {
        t.ensure_subscription(sub);
    }
    Ok(())
}

fn rg_check(t: &Tenant, sub: &str, rg: &str) -> Result<(), Reply> {
    if t.resource_group(sub, rg).is_some() {
        Ok(())
    } else {
        Err(rg_not_found(rg))
    }
}

fn dispatch(shared: &Shared, ctx: &Ctx, t: &mut Tenant, route: Route) -> Reply {
    let result = (|| -> Result<Reply, Reply> {
        match route {
            Route::Subscriptions => {
                check_version(ctx, V_SUBSCRIPTIONS)?;
                let items = t
                    .subscriptions
                    .iter()
                    .map(|s| subscription_json(&s.id, &s.display_name, &t.tenant_id))
                    .collect();
                Ok(page(shared, ctx, items, "$skipToken"))
            }
            Route::Subscription(sub) => {
                check_version(ctx, V_SUBSCRIPTIONS)?;
                if ctx.method != "GET" {
                    return Err(method_not_allowed(ctx));
                }
                subscription_check(shared, ctx, t, &sub)?;
                let name = t
                    .subscriptions
                    .iter()
                    .find(|s| eq_ci(&s.id, &sub))
                    .map_or_else(
                        || "Emulated subscription".to_owned(),
                        |s| s.display_name.clone(),
                    );
                Ok(Reply::json(
                    200,
                    subscription_json(&sub, &name, &t.tenant_id),
                ))
            }
            Route::ResourceGroups(sub) => {
                check_version(ctx, V_RESOURCES)?;
                subscription_check(shared, ctx, t, &sub)?;
                let items = t
                    .resource_groups
                    .iter()
                    .filter(|g| eq_ci(&g.subscription, &sub))
                    .map(rg_json)
                    .collect();
                Ok(page(shared, ctx, items, "$skipToken"))
            }
            Route::ResourceGroup(sub, rg) => {
                check_version(ctx, V_RESOURCES)?;
                subscription_check(shared, ctx, t, &sub)?;
                resource_group(shared, ctx, t, &sub, &rg)
            }
            Route::Operation(sub, id) => {
                subscription_check(shared, ctx, t, &sub)?;
                Ok(poll_operation(shared, ctx, t, &sub, &id))
            }
            Route::WorkspacesBySub(sub) => {
                check_version(ctx, V_ML)?;
                subscription_check(shared, ctx, t, &sub)?;
                let items = t
                    .workspaces
                    .iter()
                    .filter(|w| eq_ci(&w.subscription, &sub) && listed(w))
                    .map(|w| workspace_json(t, w))
                    .collect();
                Ok(page(shared, ctx, items, "$skip"))
            }
            Route::WorkspacesByRg(sub, rg) => {
                check_version(ctx, V_ML)?;
                subscription_check(shared, ctx, t, &sub)?;
                rg_check(t, &sub, &rg)?;
                let items = t
                    .workspaces
                    .iter()
                    .filter(|w| {
                        eq_ci(&w.subscription, &sub) && eq_ci(&w.resource_group, &rg) && listed(w)
                    })
                    .map(|w| workspace_json(t, w))
                    .collect();
                Ok(page(shared, ctx, items, "$skip"))
            }
            Route::Workspace(sub, rg, name) => {
                check_version(ctx, V_ML)?;
                subscription_check(shared, ctx, t, &sub)?;
                rg_check(t, &sub, &rg)?;
                workspace(shared, ctx, t, &sub, &rg, &name)
            }
            Route::IdentitiesBySub(sub) => {
                check_version(ctx, V_MSI)?;
                subscription_check(shared, ctx, t, &sub)?;
                let items = t
                    .identities
                    .iter()
                    .filter(|i| eq_ci(&i.subscription, &sub))
                    .map(|i| identity_json(t, i))
                    .collect();
                Ok(page(shared, ctx, items, "$skiptoken"))
            }
            Route::IdentitiesByRg(sub, rg) => {
                check_version(ctx, V_MSI)?;
                subscription_check(shared, ctx, t, &sub)?;
                rg_check(t, &sub, &rg)?;
                let items = t
                    .identities
                    .iter()
                    .filter(|i| eq_ci(&i.subscription, &sub) && eq_ci(&i.resource_group, &rg))
                    .map(|i| identity_json(t, i))
                    .collect();
                Ok(page(shared, ctx, items, "$skiptoken"))
            }
            Route::Identity(sub, rg, name) => {
                check_version(ctx, V_MSI)?;
                subscription_check(shared, ctx, t, &sub)?;
                rg_check(t, &sub, &rg)?;
                identity(shared, ctx, t, &sub, &rg, &name)
            }
            Route::Fics(sub, rg, name) => {
                check_version(ctx, V_MSI)?;
                subscription_check(shared, ctx, t, &sub)?;
                rg_check(t, &sub, &rg)?;
                list_fics(shared, ctx, t, &sub, &rg, &name)
            }
            Route::Fic(sub, rg, name, fic) => {
                check_version(ctx, V_MSI)?;
                subscription_check(shared, ctx, t, &sub)?;
                rg_check(t, &sub, &rg)?;
                federated_credential(ctx, t, &sub, &rg, &name, &fic)
            }
            Route::RoleDefinitions(scope) => {
                check_version(ctx, V_AUTHZ)?;
                scope_check(shared, ctx, t, &scope)?;
                list_role_definitions(shared, ctx, &scope)
            }
            Route::RoleDefinition(scope, id) => {
                check_version(ctx, V_AUTHZ)?;
                if ctx.method != "GET" {
                    return Err(method_not_allowed(ctx));
                }
                scope_check(shared, ctx, t, &scope)?;
                roles::by_guid(&id)
                    .map(|r| Reply::json(200, roles::to_json(r, &scope)))
                    .ok_or_else(|| {
                        Reply::arm_error(
                            404,
                            "RoleDefinitionDoesNotExist",
                            format!("The specified role definition with ID '{id}' does not exist."),
                        )
                    })
            }
            Route::RoleAssignments(scope) => {
                check_version(ctx, V_AUTHZ)?;
                if ctx.method != "GET" {
                    return Err(method_not_allowed(ctx));
                }
                scope_check(shared, ctx, t, &scope)?;
                list_role_assignments(shared, ctx, t, &scope)
            }
            Route::RoleAssignment(scope, name) => {
                check_version(ctx, V_AUTHZ)?;
                if ctx.method != "DELETE" {
                    scope_check(shared, ctx, t, &scope)?;
                }
                role_assignment(shared, ctx, t, &scope, &name)
            }
            Route::Unknown => Err(unknown_path(ctx)),
        }
    })();
    result.unwrap_or_else(|e| e)
}

fn method_not_allowed(ctx: &Ctx) -> Reply {
    Reply::arm_error(
        405,
        "MethodNotAllowed",
        format!(
            "The requested resource does not support http method '{}'.",
            ctx.method
        ),
    )
}

fn unknown_path(ctx: &Ctx) -> Reply {
    let segs = &ctx.segs;
    let rg = segs
        .iter()
        .position(|s| eq_ci(s, "resourceGroups"))
        .and_then(|i| segs.get(i + 1))
        .cloned()
        .unwrap_or_default();
    let tail = segs
        .iter()
        .rposition(|s| eq_ci(s, "providers"))
        .map_or_else(|| ctx.path.clone(), |i| segs[i + 1..].join("/"));
    Reply::arm_error(
        404,
        "ResourceNotFound",
        format!(
            "The Resource '{tail}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
        ),
    )
}

fn subscription_json(id: &str, name: &str, tenant: &str) -> Value {
    json!({
        "id": format!("/subscriptions/{id}"),
        "subscriptionId": id,
        "tenantId": tenant,
        "displayName": name,
        "state": "Enabled",
        "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"},
        "authorizationSource": "RoleBased",
    })
}

/// Pages `items` with the realism page size (or `$top`), emitting an absolute next link.
fn page(shared: &Shared, ctx: &Ctx, items: Vec<Value>, token_key: &str) -> Reply {
    let total = items.len();
    let mut size = shared.realism().page();
    if let Some(top) = ctx.q("$top") {
        match top.parse::<usize>() {
            Ok(n) if n >= 1 => size = n,
            _ => {
                return Reply::arm_error(
                    400,
                    "InvalidQueryParameterValue",
                    format!("The value '{top}' of query parameter '$top' is invalid."),
                );
            }
        }
    }
    let offset = match ctx.q(token_key) {
        None => 0,
        Some(tok) => match decode_skip_token(tok) {
            Some(o) => o,
            None => {
                return Reply::arm_error(
                    400,
                    "InvalidSkipToken",
                    format!("The skip token '{tok}' is invalid."),
                );
            }
        },
    };
    let end = (offset + size).min(total);
    let slice: Vec<Value> = items.into_iter().skip(offset).take(size).collect();
    let mut body = json!({"value": slice});
    if slice.len() == size && size > 0 {
        body["nextLink"] =
            json!(ctx.next_link(&shared.base_url, token_key, &encode_skip_token(end)));
    }
    Reply::json(200, body)
}

// ---------------------------------------------------------------- resource groups

fn rg_json(g: &ResourceGroup) -> Value {
    json!({
        "id": format!("/subscriptions/{}/resourceGroups/{}", g.subscription, g.name),
        "name": g.name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": g.location,
        "tags": g.tags,
        "properties": {"provisioningState": "Succeeded"},
    })
}

fn valid_rg_name(name: &str) -> bool {
    (1..=90).contains(&name.chars().count())
        && !name.ends_with('.')
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || "-_.()".contains(c))
}

fn resource_group(
    shared: &Shared,
    ctx: &Ctx,
    t: &mut Tenant,
    sub: &str,
    rg: &str,
) -> Result<Reply, Reply> {
    let idx = t
        .resource_groups
        .iter()
        .position(|g| eq_ci(&g.subscription, sub) && eq_ci(&g.name, rg));
    match ctx.method.as_str() {
        "GET" => idx
            .map(|i| Reply::json(200, rg_json(&t.resource_groups[i])))
            .ok_or_else(|| rg_not_found(rg)),
        "HEAD" => Ok(Reply::empty(if idx.is_some() { 204 } else { 404 })),
        "PUT" => {
            if !valid_rg_name(rg) {
                return Err(Reply::arm_error(
                    400,
                    "InvalidResourceGroupName",
                    format!(
                        "The resource group name '{rg}' is invalid. It can include alphanumeric, underscore, parentheses, hyphen, period (except at end), and Unicode characters that match the allowed characters."
                    ),
                ));
            }
            let body = body_object(ctx)?;
            let location = location_of(&body)?;
            let tags = tags_of(&body)?.unwrap_or_default();
            if let Some(i) = idx {
                let g = &mut t.resource_groups[i];
                if !same_location(&g.location, &location) {
                    return Err(Reply::arm_error(
                        409,
                        "InvalidResourceGroupLocation",
                        format!(
                            "Invalid resource group location '{location}'. The Resource group already exists in location '{}'.",
                            g.location
                        ),
                    ));
                }
                g.tags = tags;
                Ok(Reply::json(200, rg_json(g)))
            } else {
                let g = ResourceGroup {
                    subscription: sub.to_owned(),
                    name: rg.to_owned(),
                    location,
                    tags,
                };
                let reply = Reply::json(201, rg_json(&g));
                t.resource_groups.push(g);
                Ok(reply)
            }
        }
        "PATCH" => {
            let i = idx.ok_or_else(|| rg_not_found(rg))?;
            let body = body_object(ctx)?;
            if let Some(tags) = tags_of(&body)? {
                t.resource_groups[i].tags = tags;
            }
            Ok(Reply::json(200, rg_json(&t.resource_groups[i])))
        }
        "DELETE" => {
            let i = idx.ok_or_else(|| rg_not_found(rg))?;
            let g = t.resource_groups.remove(i);
            let in_rg = |s: &str, r: &str| eq_ci(s, &g.subscription) && eq_ci(r, &g.name);
            let doomed: Vec<String> = t
                .identities
                .iter()
                .filter(|i| in_rg(&i.subscription, &i.resource_group))
                .map(|i| i.principal_id.clone())
                .chain(
                    t.workspaces
                        .iter()
                        .filter(|w| in_rg(&w.subscription, &w.resource_group))
                        .filter_map(|w| w.principal_id.clone()),
                )
                .collect();
            t.service_principals
                .retain(|s| !doomed.iter().any(|d| eq_ci(d, &s.id)));
            let ids: Vec<String> = t
                .identities
                .iter()
                .filter(|i| in_rg(&i.subscription, &i.resource_group))
                .map(Identity::id)
                .collect();
            t.federated_credentials
                .retain(|f| !ids.iter().any(|id| eq_ci(id, &f.identity)));
            t.identities
                .retain(|i| !in_rg(&i.subscription, &i.resource_group));
            t.workspaces
                .retain(|w| !in_rg(&w.subscription, &w.resource_group));
            let prefix = format!(
                "/subscriptions/{}/resourcegroups/{}",
                g.subscription, g.name
            )
            .to_ascii_lowercase();
            t.role_assignments
                .retain(|r| !is_ancestor_or_self(&prefix, &r.scope));
            Ok(start_operation(
                shared,
                ctx,
                sub,
                "eastus",
                OpKind::ResourceGroupDelete,
                String::new(),
                t,
            ))
        }
        _ => Err(method_not_allowed(ctx)),
    }
}

// ---------------------------------------------------------------- operations

fn start_operation(
    shared: &Shared,
    ctx: &Ctx,
    sub: &str,
    location: &str,
    kind: OpKind,
    target: String,
    t: &mut Tenant,
) -> Reply {
    let polls = shared.realism().lro_polls;
    let id = shared.uuid();
    let mut op = Operation {
        kind,
        target,
        started_ms: ctx.now_ms,
        polls_done: 0,
        polls_needed: polls,
        done: false,
    };
    if polls == 0 {
        complete(&mut op, t);
    }
    lock(&shared.ops).insert(id.clone(), op);
    let url = operation_url(shared, sub, location, kind, &id);
    Reply::empty(202)
        .header("Location", url)
        .header("Retry-After", if polls == 0 { "0" } else { "1" })
}

fn operation_url(shared: &Shared, sub: &str, location: &str, kind: OpKind, id: &str) -> String {
    match kind {
        OpKind::ResourceGroupDelete => {
            format!(
                "{}/subscriptions/{sub}/operationresults/{id}?api-version=2025-04-01",
                shared.base_url
            )
        }
        _ => format!(
            "{}/subscriptions/{sub}/providers/Microsoft.MachineLearningServices/locations/{}/mfeOperationResults/{id}?api-version=2025-06-01&type=location",
            shared.base_url,
            location.to_ascii_lowercase().replace(' ', "")
        ),
    }
}

fn complete(op: &mut Operation, t: &mut Tenant) {
    op.done = true;
    let Some(i) = t
        .workspaces
        .iter()
        .position(|w| ws_key(w) == op.target && !w.soft_deleted)
    else {
        return;
    };
    match op.kind {
        OpKind::WorkspacePut => "Succeeded".clone_into(&mut t.workspaces[i].provisioning_state),
        OpKind::WorkspaceDelete { purge } => {
            if let Some(pid) = t.workspaces[i].principal_id.take() {
                t.service_principals.retain(|s| !eq_ci(&s.id, &pid));
            }
            if purge {
                t.workspaces.remove(i);
            } else {
                let w = &mut t.workspaces[i];
                w.soft_deleted = true;
                "Succeeded".clone_into(&mut w.provisioning_state);
            }
        }
        OpKind::ResourceGroupDelete => {}
    }
}

/// Completes operations whose time is up (one `Retry-After` second per required poll).
fn settle_ops(shared: &Shared, t: &mut Tenant, now: u64) -> bool {
    let mut ops = lock(&shared.ops);
    let mut changed = false;
    for op in ops.values_mut().filter(|o| !o.done) {
        if now >= op.started_ms + u64::from(op.polls_needed) * 1000 {
            complete(op, t);
            changed = true;
        }
    }
    changed
}

fn poll_operation(shared: &Shared, ctx: &Ctx, t: &mut Tenant, sub: &str, id: &str) -> Reply {
    if ctx.method != "GET" {
        return method_not_allowed(ctx);
    }
    let snapshot = {
        let mut ops = lock(&shared.ops);
        let Some(op) = ops.get_mut(id) else {
            return Reply::arm_error(
                404,
                "OperationNotFound",
                format!("The operation '{id}' could not be found."),
            );
        };
        if !op.done {
            op.polls_done += 1;
            if op.polls_done >= op.polls_needed {
                complete(op, t);
            }
        }
        op.clone()
    };
    if !snapshot.done {
        let location = t
            .workspaces
            .iter()
            .find(|w| ws_key(w) == snapshot.target)
            .map_or("eastus", |w| w.location.as_str());
        return Reply::empty(202)
            .header(
                "Location",
                operation_url(shared, sub, location, snapshot.kind, id),
            )
            .header("Retry-After", "1");
    }
    match snapshot.kind {
        OpKind::WorkspacePut => match t
            .workspaces
            .iter()
            .find(|w| ws_key(w) == snapshot.target && !w.soft_deleted)
        {
            Some(w) => Reply::json(200, workspace_json(t, w)),
            None => Reply::arm_error(404, "ResourceNotFound", "The workspace no longer exists."),
        },
        OpKind::WorkspaceDelete { .. } => Reply::empty(204),
        OpKind::ResourceGroupDelete => Reply::empty(200),
    }
}

// ---------------------------------------------------------------- workspaces

fn ws_key(w: &Workspace) -> String {
    format!("{}/{}/{}", w.subscription, w.resource_group, w.name).to_ascii_lowercase()
}

fn listed(w: &Workspace) -> bool {
    !w.soft_deleted && w.provisioning_state != "Creating"
}

fn workspace_id(w: &Workspace) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{}/providers/{ML_PROVIDER}/workspaces/{}",
        w.subscription, w.resource_group, w.name
    )
}

fn identity_block(t: &Tenant, kind: &str, principal: Option<&String>, uais: &[String]) -> Value {
    let mut block = json!({"type": kind});
    if let Some(pid) = principal {
        block["principalId"] = json!(pid);
        block["tenantId"] = json!(t.tenant_id);
    }
    if !uais.is_empty() {
        let map: Map<String, Value> = uais
            .iter()
            .map(|id| {
                let found = t.identities.iter().find(|i| eq_ci(&i.id(), id));
                (
                    id.clone(),
                    json!({
                        "principalId": found.map(|i| i.principal_id.clone()),
                        "clientId": found.map(|i| i.client_id.clone()),
                    }),
                )
            })
            .collect();
        block["userAssignedIdentities"] = Value::Object(map);
    }
    block
}

fn workspace_json(t: &Tenant, w: &Workspace) -> Value {
    let mut props = match &w.properties {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    if let Some(Value::String(ai)) = props.get("applicationInsights") {
        let lowered = ai.replace(
            "/providers/Microsoft.Insights/",
            "/providers/microsoft.insights/",
        );
        props.insert("applicationInsights".into(), json!(lowered));
    }
    let loc = w.location.to_ascii_lowercase().replace(' ', "");
    let defaults = [
        ("friendlyName", json!(w.name)),
        ("hbiWorkspace", json!(false)),
        ("publicNetworkAccess", json!("Enabled")),
        ("v1LegacyMode", json!(false)),
        ("enableDataIsolation", json!(false)),
    ];
    for (k, v) in defaults {
        props.entry(k).or_insert(v);
    }
    props.insert("provisioningState".into(), json!(w.provisioning_state));
    props.insert("workspaceId".into(), json!(w.workspace_id));
    props.insert("tenantId".into(), json!(t.tenant_id));
    props.insert(
        "discoveryUrl".into(),
        json!(format!("https://{loc}.api.azureml.ms/discovery")),
    );
    props.insert(
        "mlFlowTrackingUri".into(),
        json!(format!(
            "azureml://{loc}.api.azureml.ms/mlflow/v1.0{}",
            workspace_id(w)
        )),
    );
    props.insert("privateLinkCount".into(), json!(0));
    props.insert("storageHnsEnabled".into(), json!(false));
    json!({
        "id": workspace_id(w),
        "name": w.name,
        "type": format!("{ML_PROVIDER}/workspaces"),
        "location": w.location,
        "tags": w.tags,
        "kind": w.kind.clone().unwrap_or_else(|| "Default".to_owned()),
        "sku": w.sku.clone().unwrap_or_else(|| json!({"name": "Basic", "tier": "Basic"})),
        "identity": identity_block(t, &w.identity_type, w.principal_id.as_ref(), &w.user_assigned),
        "properties": props,
    })
}

fn valid_workspace_name(n: &str) -> bool {
    let len = n.len();
    (3..=33).contains(&len)
        && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Parses an `identity` block: (type, user-assigned ids).
fn parse_identity(
    t: &Tenant,
    body: &Map<String, Value>,
    resource_id: &str,
) -> Result<Option<(String, Vec<String>)>, Reply> {
    let Some(identity) = body.get("identity").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let kind = identity
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_content("'identity.type' is required"))?;
    let canonical = ["None", "SystemAssigned", "UserAssigned", "SystemAssigned,UserAssigned"]
        .into_iter()
        .find(|k| eq_ci(k, kind))
        .ok_or_else(|| {
            Reply::arm_error(400, "InvalidIdentityType", format!("The identity type '{kind}' is invalid. Allowed values are 'None', 'SystemAssigned', 'UserAssigned', 'SystemAssigned,UserAssigned'."))
        })?;
    let mut uais = Vec::new();
    if let Some(Value::Object(map)) = identity.get("userAssignedIdentities") {
        for key in map.keys() {
            if !t.identities.iter().any(|i| eq_ci(&i.id(), key)) {
                return Err(Reply::arm_error(
                    400,
                    "FailedIdentityOperation",
                    format!(
                        "Identity operation for resource '{resource_id}' failed with error 'Failed to perform resource identity operation. Status: 'NotFound'. Response: '{{\"error\":{{\"code\":\"NotFound\",\"message\":\"Resource '{key}' was not found.\"}}}}'.'."
                    ),
                ));
            }
            uais.push(key.clone());
        }
    }
    if canonical.contains("UserAssigned") && uais.is_empty() {
        return Err(Reply::arm_error(
            400,
            "BadRequest",
            "'userAssignedIdentities' must name at least one identity when the identity type includes 'UserAssigned'.",
        ));
    }
    if !canonical.contains("UserAssigned") && !uais.is_empty() {
        return Err(Reply::arm_error(
            400,
            "BadRequest",
            "'userAssignedIdentities' is only allowed when the identity type includes 'UserAssigned'.",
        ));
    }
    Ok(Some((canonical.to_owned(), uais)))
}

/// Creates or removes the system-assigned identity's service principal to match `kind`.
fn sync_system_identity(shared: &Shared, ctx: &Ctx, t: &mut Tenant, idx: usize) {
    let wants = t.workspaces[idx]
        .identity_type
        .starts_with("SystemAssigned");
    let has = t.workspaces[idx].principal_id.clone();
    match (wants, has) {
        (true, None) => {
            let pid = shared.uuid();
            let w = &t.workspaces[idx];
            let sp = ServicePrincipal {
                id: pid.clone(),
                app_id: shared.uuid(),
                display_name: w.name.clone(),
                service_principal_type: "ManagedIdentity".to_owned(),
                alternative_names: vec!["isExplicit=False".to_owned(), workspace_id(w)],
                created_ms: ctx.now_ms,
            };
            t.service_principals.push(sp);
            t.workspaces[idx].principal_id = Some(pid);
        }
        (false, Some(pid)) => {
            t.service_principals.retain(|s| !eq_ci(&s.id, &pid));
            t.workspaces[idx].principal_id = None;
        }
        _ => {}
    }
}

fn workspace(
    shared: &Shared,
    ctx: &Ctx,
    t: &mut Tenant,
    sub: &str,
    rg: &str,
    name: &str,
) -> Result<Reply, Reply> {
    let find = |t: &Tenant, deleted: bool| {
        t.workspaces.iter().position(|w| {
            eq_ci(&w.subscription, sub)
                && eq_ci(&w.resource_group, rg)
                && eq_ci(&w.name, name)
                && w.soft_deleted == deleted
        })
    };
    let live = find(t, false);
    let kind = format!("{ML_PROVIDER}/workspaces");
    match ctx.method.as_str() {
        "GET" => match live {
            Some(i) if t.workspaces[i].provisioning_state != "Creating" => {
                Ok(Reply::json(200, workspace_json(t, &t.workspaces[i])))
            }
            _ => Err(not_found(&kind, name, rg)),
        },
        "PUT" => {
            if !valid_workspace_name(name) {
                return Err(Reply::arm_error(
                    400,
                    "BadRequest",
                    format!(
                        "Workspace name '{name}' is invalid. It must be 3-33 characters long, start with a letter or digit, and contain only letters, digits, '-' and '_'."
                    ),
                ));
            }
            let body = body_object(ctx)?;
            let location = location_of(&body)?;
            let properties = match body.get("properties") {
                Some(Value::Object(m)) => Value::Object(m.clone()),
                _ => {
                    return Err(bad_content(
                        "Required property 'properties' not found in JSON.",
                    ));
                }
            };
            let resource_id = format!(
                "/subscriptions/{sub}/resourceGroups/{rg}/providers/{ML_PROVIDER}/workspaces/{name}"
            );
            let identity = parse_identity(t, &body, &resource_id)?;
            let tags = tags_of(&body)?.unwrap_or_default();
            let idx = if let Some(i) = live {
                let w = &mut t.workspaces[i];
                if !same_location(&w.location, &location) {
                    return Err(location_conflict(name, &w.location, rg, &location));
                }
                if w.provisioning_state == "Deleting" {
                    return Err(Reply::arm_error(
                        409,
                        "Conflict",
                        format!("Workspace '{name}' is being deleted."),
                    ));
                }
                for immutable in ["storageAccount", "keyVault"] {
                    let old = w.properties.get(immutable).and_then(Value::as_str);
                    let new = properties.get(immutable).and_then(Value::as_str);
                    if let (Some(o), Some(n)) = (old, new)
                        && !eq_ci(o, n)
                    {
                        return Err(Reply::arm_error(
                            400,
                            "BadRequest",
                            format!(
                                "Property '{immutable}' of an existing workspace cannot be changed."
                            ),
                        ));
                    }
                }
                w.properties = properties;
                w.tags = tags;
                if let Some(k) = body.get("kind").and_then(Value::as_str) {
                    w.kind = Some(k.to_owned());
                }
                if let Some(s) = body.get("sku").filter(|s| !s.is_null()) {
                    w.sku = Some(s.clone());
                }
                let (kind, uais) = identity.unwrap_or_else(|| ("None".to_owned(), Vec::new()));
                w.identity_type = kind;
                w.user_assigned = uais;
                if w.provisioning_state != "Creating" {
                    "Updating".clone_into(&mut w.provisioning_state);
                }
                i
            } else {
                if find(t, true).is_some() {
                    return Err(Reply::arm_error(
                        409,
                        "Conflict",
                        format!(
                            "Soft-deleted workspace '{name}' exists. Please purge or recover it. https://aka.ms/wsoftdelete"
                        ),
                    ));
                }
                let (kind, uais) = identity.unwrap_or_else(|| ("None".to_owned(), Vec::new()));
                t.workspaces.push(Workspace {
                    subscription: sub.to_owned(),
                    resource_group: rg.to_owned(),
                    name: name.to_owned(),
                    location: location.clone(),
                    tags,
                    kind: body.get("kind").and_then(Value::as_str).map(str::to_owned),
                    sku: body.get("sku").filter(|s| !s.is_null()).cloned(),
                    properties,
                    identity_type: kind,
                    user_assigned: uais,
                    principal_id: None,
                    workspace_id: shared.uuid(),
                    provisioning_state: "Creating".to_owned(),
                    soft_deleted: false,
                });
                t.workspaces.len() - 1
            };
            sync_system_identity(shared, ctx, t, idx);
            let key = ws_key(&t.workspaces[idx]);
            Ok(start_operation(
                shared,
                ctx,
                sub,
                &location,
                OpKind::WorkspacePut,
                key,
                t,
            ))
        }
        "PATCH" => {
            let i = live
                .filter(|&i| t.workspaces[i].provisioning_state != "Creating")
                .ok_or_else(|| not_found(&kind, name, rg))?;
            let body = body_object(ctx)?;
            let resource_id = workspace_id(&t.workspaces[i]);
            let identity = parse_identity(t, &body, &resource_id)?;
            let tags = tags_of(&body)?;
            let w = &mut t.workspaces[i];
            if let Some(tags) = tags {
                w.tags = tags;
            }
            if let (Some(Value::Object(patch)), Value::Object(props)) =
                (body.get("properties"), &mut w.properties)
            {
                for (k, v) in patch {
                    props.insert(k.clone(), v.clone());
                }
            }
            if let Some((kind, uais)) = identity {
                w.identity_type = kind;
                w.user_assigned = uais;
            }
            sync_system_identity(shared, ctx, t, i);
            Ok(Reply::json(200, workspace_json(t, &t.workspaces[i])))
        }
        "DELETE" => {
            let purge = ctx.q("forceToPurge").is_some_and(|v| eq_ci(v, "true"));
            if let Some(i) = live {
                let w = &mut t.workspaces[i];
                "Deleting".clone_into(&mut w.provisioning_state);
                let key = ws_key(w);
                let location = w.location.clone();
                return Ok(start_operation(
                    shared,
                    ctx,
                    sub,
                    &location,
                    OpKind::WorkspaceDelete { purge },
                    key,
                    t,
                ));
            }
            match find(t, true) {
                Some(i) if purge => {
                    let w = t.workspaces.remove(i);
                    t.workspaces.push(Workspace {
                        soft_deleted: false,
                        provisioning_state: "Deleting".to_owned(),
                        ..w.clone()
                    });
                    let key = ws_key(&w);
                    Ok(start_operation(
                        shared,
                        ctx,
                        sub,
                        &w.location,
                        OpKind::WorkspaceDelete { purge: true },
                        key,
                        t,
                    ))
                }
                _ => Ok(Reply::empty(204)),
            }
        }
        _ => Err(method_not_allowed(ctx)),
    }
}

// ---------------------------------------------------------------- identities

fn identity_arm_id(i: &Identity) -> String {
    format!(
        "/subscriptions/{}/resourcegroups/{}/providers/{MSI_TYPE}/{}",
        i.subscription, i.resource_group, i.name
    )
}

fn identity_json(t: &Tenant, i: &Identity) -> Value {
    let mut props =
        json!({"tenantId": t.tenant_id, "principalId": i.principal_id, "clientId": i.client_id});
    if let Some(scope) = &i.isolation_scope {
        props["isolationScope"] = json!(scope);
    }
    json!({
        "id": identity_arm_id(i),
        "name": i.name,
        "type": MSI_TYPE,
        "location": i.location,
        "tags": i.tags,
        "properties": props,
    })
}

fn valid_identity_name(n: &str) -> bool {
    (3..=128).contains(&n.len())
        && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn identity(
    shared: &Shared,
    ctx: &Ctx,
    t: &mut Tenant,
    sub: &str,
    rg: &str,
    name: &str,
) -> Result<Reply, Reply> {
    let idx = t.identities.iter().position(|i| {
        eq_ci(&i.subscription, sub) && eq_ci(&i.resource_group, rg) && eq_ci(&i.name, name)
    });
    match ctx.method.as_str() {
        "GET" => idx
            .map(|i| Reply::json(200, identity_json(t, &t.identities[i])))
            .ok_or_else(|| not_found(MSI_TYPE, name, rg)),
        "PUT" => {
            if !valid_identity_name(name) {
                return Err(Reply::arm_error(
                    400,
                    "InvalidResourceName",
                    format!(
                        "Resource name '{name}' is invalid. The name can contain only letters, numbers, underscores and hyphens, must start with a letter or number, and be 3 to 128 characters long."
                    ),
                ));
            }
            let body = body_object(ctx)?;
            let location = location_of(&body)?;
            let tags = tags_of(&body)?.unwrap_or_default();
            let isolation = body
                .get("properties")
                .and_then(|p| p.get("isolationScope"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            if let Some(i) = idx {
                let ident = &mut t.identities[i];
                if !same_location(&ident.location, &location) {
                    return Err(location_conflict(name, &ident.location, rg, &location));
                }
                ident.tags = tags;
                if isolation.is_some() {
                    ident.isolation_scope = isolation;
                }
                return Ok(Reply::json(200, identity_json(t, &t.identities[i])));
            }
            let ident = Identity {
                subscription: sub.to_owned(),
                resource_group: rg.to_owned(),
                name: name.to_owned(),
                location,
                tags,
                principal_id: shared.uuid(),
                client_id: shared.uuid(),
                isolation_scope: isolation,
            };
            t.service_principals.push(ServicePrincipal {
                id: ident.principal_id.clone(),
                app_id: ident.client_id.clone(),
                display_name: ident.name.clone(),
                service_principal_type: "ManagedIdentity".to_owned(),
                alternative_names: vec!["isExplicit=True".to_owned(), ident.id()],
                created_ms: ctx.now_ms,
            });
            let reply = Reply::json(201, identity_json(t, &ident));
            t.identities.push(ident);
            Ok(reply)
        }
        "PATCH" => {
            let i = idx.ok_or_else(|| not_found(MSI_TYPE, name, rg))?;
            let body = body_object(ctx)?;
            if let Some(tags) = tags_of(&body)? {
                t.identities[i].tags = tags;
            }
            Ok(Reply::json(200, identity_json(t, &t.identities[i])))
        }
        "DELETE" => {
            let Some(i) = idx else {
                return Ok(Reply::empty(204));
            };
            let ident = t.identities.remove(i);
            let id = ident.id();
            t.federated_credentials.retain(|f| !eq_ci(&f.identity, &id));
            t.service_principals
                .retain(|s| !eq_ci(&s.id, &ident.principal_id));
            Ok(Reply::empty(200))
        }
        _ => Err(method_not_allowed(ctx)),
    }
}

fn fic_json(identity: &Identity, f: &FederatedCredential) -> Value {
    json!({
        "id": format!("{}/federatedIdentityCredentials/{}", identity_arm_id(identity), f.name),
        "name": f.name,
        "type": FIC_TYPE,
        "properties": {"issuer": f.issuer, "subject": f.subject, "audiences": f.audiences},
    })
}

fn parent_identity(t: &Tenant, sub: &str, rg: &str, name: &str) -> Result<Identity, Reply> {
    t.identities
        .iter()
        .find(|i| eq_ci(&i.subscription, sub) && eq_ci(&i.resource_group, rg) && eq_ci(&i.name, name))
        .cloned()
        .ok_or_else(|| {
            Reply::arm_error(404, "ParentResourceNotFound", format!("Can not perform requested operation on nested resource. Parent resource '{name}' not found."))
        })
}

fn list_fics(
    shared: &Shared,
    ctx: &Ctx,
    t: &Tenant,
    sub: &str,
    rg: &str,
    name: &str,
) -> Result<Reply, Reply> {
    if ctx.method != "GET" {
        return Err(method_not_allowed(ctx));
    }
    let parent = parent_identity(t, sub, rg, name)?;
    let id = parent.id();
    let items = t
        .federated_credentials
        .iter()
        .filter(|f| eq_ci(&f.identity, &id))
        .map(|f| fic_json(&parent, f))
        .collect();
    Ok(page(shared, ctx, items, "$skiptoken"))
}

fn valid_fic_name(n: &str) -> bool {
    (3..=120).contains(&n.len())
        && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn federated_credential(
    ctx: &Ctx,
    t: &mut Tenant,
    sub: &str,
    rg: &str,
    name: &str,
    fic: &str,
) -> Result<Reply, Reply> {
    let parent = parent_identity(t, sub, rg, name)?;
    let pid = parent.id();
    let idx = t
        .federated_credentials
        .iter()
        .position(|f| eq_ci(&f.identity, &pid) && eq_ci(&f.name, fic));
    let fic_not_found = || not_found(FIC_TYPE, &format!("{name}/{fic}"), rg);
    match ctx.method.as_str() {
        "GET" => idx
            .map(|i| Reply::json(200, fic_json(&parent, &t.federated_credentials[i])))
            .ok_or_else(fic_not_found),
        "DELETE" => match idx {
            Some(i) => {
                t.federated_credentials.remove(i);
                Ok(Reply::empty(200))
            }
            None => Ok(Reply::empty(204)),
        },
        "PUT" => {
            if !valid_fic_name(fic) {
                return Err(Reply::arm_error(
                    400,
                    "BadRequest",
                    format!("Federated Identity Credential name '{fic}' is invalid."),
                ));
            }
            let body = body_object(ctx)?;
            let props = match body.get("properties") {
                Some(Value::Object(p)) if !p.is_empty() => p.clone(),
                _ => {
                    return Err(Reply::arm_error(
                        400,
                        "BadRequest",
                        "The request properties are empty or missing.",
                    ));
                }
            };
            let text = |k: &str| {
                props
                    .get(k)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .filter(|s| !s.is_empty())
            };
            let (Some(issuer), Some(subject)) = (text("issuer"), text("subject")) else {
                return Err(Reply::arm_error(
                    400,
                    "BadRequest",
                    "The properties 'issuer', 'subject' and 'audiences' are required.",
                ));
            };
            let audiences: Vec<String> = match props.get("audiences") {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                _ => Vec::new(),
            };
            if audiences.len() != 1 {
                return Err(Reply::arm_error(
                    400,
                    "BadRequest",
                    "Federated identity credentials must have exactly one audience.",
                ));
            }
            if !issuer.starts_with("https://") {
                return Err(Reply::arm_error(
                    400,
                    "BadRequest",
                    "Invalid issuer. The issuer must be a valid URL that starts with 'https://'.",
                ));
            }
            let duplicate = t.federated_credentials.iter().enumerate().any(|(j, f)| {
                Some(j) != idx
                    && eq_ci(&f.identity, &pid)
                    && f.issuer == issuer
                    && f.subject == subject
            });
            if duplicate {
                return Err(Reply::arm_error(
                    400,
                    "BadRequest",
                    "Issuer and subject combination already exists for this Managed Identity.",
                ));
            }
            let count = t
                .federated_credentials
                .iter()
                .filter(|f| eq_ci(&f.identity, &pid))
                .count();
            if idx.is_none() && count >= 20 {
                return Err(Reply::arm_error(
                    400,
                    "BadRequest",
                    format!(
                        "Too many Federated Identity Credentials are written to managed identity '{}'. A managed identity can have at most 20 federated identity credentials.",
                        identity_arm_id(&parent)
                    ),
                ));
            }
            let record = FederatedCredential {
                identity: pid,
                name: fic.to_owned(),
                issuer,
                subject,
                audiences,
            };
            let status = if idx.is_some() { 200 } else { 201 };
            let reply = Reply::json(status, fic_json(&parent, &record));
            match idx {
                Some(i) => {
                    t.federated_credentials[i] = FederatedCredential {
                        name: t.federated_credentials[i].name.clone(),
                        ..record
                    }
                }
                None => t.federated_credentials.push(record),
            }
            Ok(reply)
        }
        _ => Err(method_not_allowed(ctx)),
    }
}

// ---------------------------------------------------------------- scopes and roles

fn scope_segments(scope: &str) -> Vec<String> {
    scope
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

fn is_management_group(parts: &[String]) -> bool {
    parts.len() >= 3
        && parts[0] == "providers"
        && parts[1] == "microsoft.management"
        && parts[2] == "managementgroups"
}

/// True when `a` is `b` or one of its ancestors (management groups sit above every subscription).
fn is_ancestor_or_self(a: &str, b: &str) -> bool {
    let (pa, pb) = (scope_segments(a), scope_segments(b));
    if is_management_group(&pa) {
        return pa == pb || !is_management_group(&pb);
    }
    pa.len() <= pb.len() && pa.iter().zip(&pb).all(|(x, y)| x == y)
}

fn scope_check(shared: &Shared, ctx: &Ctx, t: &mut Tenant, scope: &str) -> Result<(), Reply> {
    let parts: Vec<&str> = scope.split('/').filter(|s| !s.is_empty()).collect();
    if parts.is_empty() || is_management_group(&scope_segments(scope)) {
        return Ok(());
    }
    if !eq_ci(parts[0], "subscriptions") || parts.len() < 2 {
        return Err(Reply::arm_error(
            400,
            "InvalidScope",
            format!("The scope '{scope}' is not valid."),
        ));
    }
    subscription_check(shared, ctx, t, parts[1])?;
    if parts.len() >= 4 && eq_ci(parts[2], "resourceGroups") {
        rg_check(t, parts[1], parts[3])?;
        if parts.len() >= 8 && eq_ci(parts[4], "providers") {
            let ns_type = format!("{}/{}", parts[5], parts[6]);
            let exists = if eq_ci(&ns_type, &format!("{ML_PROVIDER}/workspaces")) {
                Some(t.workspaces.iter().any(|w| {
                    eq_ci(&w.subscription, parts[1])
                        && eq_ci(&w.resource_group, parts[3])
                        && eq_ci(&w.name, parts[7])
                        && listed(w)
                }))
            } else if eq_ci(&ns_type, MSI_TYPE) {
                Some(t.identities.iter().any(|i| {
                    eq_ci(&i.subscription, parts[1])
                        && eq_ci(&i.resource_group, parts[3])
                        && eq_ci(&i.name, parts[7])
                }))
            } else {
                None
            };
            if exists == Some(false) {
                return Err(not_found(&ns_type, parts[7], parts[3]));
            }
        }
    } else if parts.len() > 2 && !eq_ci(parts[2], "providers") {
        return Err(Reply::arm_error(
            400,
            "InvalidScope",
            format!("The scope '{scope}' is not valid."),
        ));
    }
    Ok(())
}

/// Parses `a eq 'b'` into (a, b), undoubling `''`.
fn eq_clause(clause: &str) -> Option<(String, String)> {
    let (lhs, rhs) = clause.split_once(" eq ")?;
    let rhs = rhs.trim();
    let value = rhs
        .strip_prefix('\'')?
        .strip_suffix('\'')?
        .replace("''", "'");
    Some((lhs.trim().to_owned(), value))
}

fn split_and(filter: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_quote = false;
    let chars: Vec<char> = filter.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            in_quote = !in_quote;
        }
        if !in_quote
            && chars[i..]
                .iter()
                .take(5)
                .collect::<String>()
                .eq_ignore_ascii_case(" and ")
        {
            out.push(current.trim().to_owned());
            current.clear();
            i += 5;
            continue;
        }
        current.push(c);
        i += 1;
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_owned());
    }
    out
}

fn unsupported_filter(filter: &str) -> Reply {
    Reply::arm_error(
        400,
        "UnsupportedQuery",
        format!("The filter '{filter}' is not supported."),
    )
}

fn list_role_definitions(shared: &Shared, ctx: &Ctx, scope: &str) -> Result<Reply, Reply> {
    if ctx.method != "GET" {
        return Err(method_not_allowed(ctx));
    }
    let mut name = None;
    let mut kind = None;
    if let Some(filter) = ctx.q("$filter") {
        for clause in split_and(filter) {
            if eq_ci(&clause, "atScopeAndBelow()") {
                continue;
            }
            match eq_clause(&clause) {
                Some((k, v)) if eq_ci(&k, "roleName") => name = Some(v),
                Some((k, v)) if eq_ci(&k, "type") => kind = Some(v),
                _ => return Err(unsupported_filter(filter)),
            }
        }
    }
    let items = roles::BUILT_IN
        .iter()
        .filter(|r| name.as_deref().is_none_or(|n| eq_ci(n, r.name)))
        .filter(|_| kind.as_deref().is_none_or(|k| eq_ci(k, "BuiltInRole")))
        .map(|r| roles::to_json(r, scope))
        .collect();
    Ok(page(shared, ctx, items, "$skipToken"))
}

fn assignment_json(r: &super::state::RoleAssignment) -> Value {
    let prefix = if r.scope == "/" {
        String::new()
    } else {
        r.scope.clone()
    };
    json!({
        "id": format!("{prefix}/providers/{RA_TYPE}/{}", r.name),
        "name": r.name,
        "type": RA_TYPE,
        "properties": {
            "roleDefinitionId": roles::definition_id(&r.scope, roles::guid_of(&r.role_definition_id)),
            "principalId": r.principal_id,
            "principalType": r.principal_type,
            "scope": r.scope,
            "condition": r.condition,
            "conditionVersion": r.condition_version,
            "createdOn": r.created_on,
            "updatedOn": r.updated_on,
            "createdBy": r.created_by,
            "updatedBy": r.created_by,
            "delegatedManagedIdentityResourceId": null,
            "description": r.description,
        }
    })
}

fn normalize_scope(scope: &str) -> String {
    let trimmed = scope.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    }
}

fn list_role_assignments(
    shared: &Shared,
    ctx: &Ctx,
    t: &Tenant,
    scope: &str,
) -> Result<Reply, Reply> {
    let scope = normalize_scope(scope);
    let mut at_scope = false;
    let mut principals: Option<Vec<String>> = None;
    if let Some(filter) = ctx.q("$filter") {
        for clause in split_and(filter) {
            if eq_ci(&clause, "atScope()") {
                at_scope = true;
            } else if let Some((k, v)) = eq_clause(&clause).filter(|(k, _)| eq_ci(k, "principalId"))
            {
                let _ = k;
                principals = Some(vec![v]);
            } else if let Some(id) = clause
                .strip_prefix("assignedTo('")
                .or_else(|| clause.strip_prefix("assignedto('"))
                .and_then(|r| r.strip_suffix("')"))
            {
                let mut all = t.transitive_groups(id);
                all.push(id.to_owned());
                principals = Some(all);
            } else {
                return Err(unsupported_filter(filter));
            }
        }
    }
    let items = t
        .role_assignments
        .iter()
        .filter(|r| {
            is_ancestor_or_self(&r.scope, &scope)
                || (!at_scope && is_ancestor_or_self(&scope, &r.scope))
        })
        .filter(|r| {
            principals
                .as_ref()
                .is_none_or(|ps| ps.iter().any(|p| eq_ci(p, &r.principal_id)))
        })
        .map(assignment_json)
        .collect();
    Ok(page(shared, ctx, items, "$skipToken"))
}

fn role_assignment(
    shared: &Shared,
    ctx: &Ctx,
    t: &mut Tenant,
    scope: &str,
    name: &str,
) -> Result<Reply, Reply> {
    let scope = normalize_scope(scope);
    let at = |r: &super::state::RoleAssignment| {
        eq_ci(&r.name, name) && eq_ci(&normalize_scope(&r.scope), &scope)
    };
    match ctx.method.as_str() {
        "GET" => t
            .role_assignments
            .iter()
            .find(|r| at(r))
            .map(|r| Reply::json(200, assignment_json(r)))
            .ok_or_else(|| {
                Reply::arm_error(
                    404,
                    "RoleAssignmentNotFound",
                    format!("The role assignment '{name}' is not found."),
                )
            }),
        "DELETE" => match t.role_assignments.iter().position(at) {
            Some(i) => {
                let r = t.role_assignments.remove(i);
                Ok(Reply::json(200, assignment_json(&r)))
            }
            None => Ok(Reply::empty(204)),
        },
        "PUT" => put_role_assignment(shared, ctx, t, &scope, name),
        _ => Err(method_not_allowed(ctx)),
    }
}

fn put_role_assignment(
    shared: &Shared,
    ctx: &Ctx,
    t: &mut Tenant,
    scope: &str,
    name: &str,
) -> Result<Reply, Reply> {
    if !is_guid(name) {
        return Err(Reply::arm_error(
            400,
            "InvalidRoleAssignmentId",
            format!(
                "The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID."
            ),
        ));
    }
    let body = body_object(ctx)?;
    let Some(Value::Object(props)) = body.get("properties") else {
        return Err(bad_content(
            "Required property 'properties' not found in JSON.",
        ));
    };
    let text = |k: &str| {
        props
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .filter(|s| !s.is_empty())
    };
    let Some(role_id) = text("roleDefinitionId") else {
        return Err(bad_content(
            "Required property 'roleDefinitionId' not found in JSON.",
        ));
    };
    let Some(principal) = text("principalId") else {
        return Err(bad_content(
            "Required property 'principalId' not found in JSON.",
        ));
    };
    let role_guid = roles::guid_of(&role_id).to_owned();
    if roles::by_guid(&role_guid).is_none() {
        return Err(Reply::arm_error(
            400,
            "RoleDefinitionDoesNotExist",
            format!("The specified role definition with ID '{role_guid}' does not exist."),
        ));
    }
    let given_type = text("principalType");
    let object = t
        .directory_object(&principal)
        .filter(|(_, created)| shared.replicated(*created, ctx.now_ms));
    let principal_type = match (&given_type, object) {
        (None, None) => {
            return Err(Reply::arm_error(
                400,
                "PrincipalNotFound",
                format!(
                    "Principal {} does not exist in the directory {}. Check that you have the correct principal ID. If you are creating this principal and then immediately assigning a role, this error might be related to a replication delay. In this case, set the role assignment principalType property to a value, such as ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype",
                    principal.replace('-', ""),
                    t.tenant_id
                ),
            ));
        }
        (None, Some(_)) => "User".to_owned(),
        (Some(given), _) => {
            let Some(canonical) = [
                "User",
                "Group",
                "ServicePrincipal",
                "ForeignGroup",
                "Device",
            ]
            .into_iter()
            .find(|k| eq_ci(k, given)) else {
                return Err(bad_content(&format!(
                    "Error converting value \"{given}\" to type 'PrincipalType'."
                )));
            };
            canonical.to_owned()
        }
    };
    if let Some((kind, _)) = object {
        let actual = match kind {
            super::state::ObjectKind::User => "User",
            super::state::ObjectKind::Group => "Group",
            _ => "ServicePrincipal",
        };
        if actual != principal_type {
            return Err(Reply::arm_error(
                400,
                "UnmatchedPrincipalType",
                format!(
                    "The PrincipalId '{}' has type '{actual}' , which is different from specified PrincipalType '{principal_type}'.",
                    principal.replace('-', "")
                ),
            ));
        }
    }
    let description = text("description");
    let condition = text("condition");
    let condition_version = text("conditionVersion");
    if let Some(existing) = t.role_assignments.iter_mut().find(|r| eq_ci(&r.name, name)) {
        let same = eq_ci(&normalize_scope(&existing.scope), scope)
            && eq_ci(&existing.principal_id, &principal)
            && eq_ci(roles::guid_of(&existing.role_definition_id), &role_guid);
        if !same {
            return Err(Reply::arm_error(
                400,
                "RoleAssignmentUpdateNotPermitted",
                "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
            ));
        }
        existing.description = description;
        existing.condition = condition;
        existing.condition_version = condition_version;
        existing.updated_on = iso8601(ctx.now_ms);
        return Ok(Reply::json(200, assignment_json(existing)));
    }
    if let Some(dup) = t.role_assignments.iter().find(|r| {
        eq_ci(&normalize_scope(&r.scope), scope)
            && eq_ci(&r.principal_id, &principal)
            && eq_ci(roles::guid_of(&r.role_definition_id), &role_guid)
    }) {
        return Err(Reply::arm_error(
            409,
            "RoleAssignmentExists",
            format!(
                "The role assignment already exists. The ID of the existing role assignment is {}.",
                dup.name.replace('-', "").to_ascii_lowercase()
            ),
        ));
    }
    let now = iso8601(ctx.now_ms);
    let record = super::state::RoleAssignment {
        name: name.to_ascii_lowercase(),
        scope: scope.to_owned(),
        role_definition_id: roles::definition_id(scope, &role_guid),
        principal_id: principal,
        principal_type,
        description,
        condition,
        condition_version,
        created_on: now.clone(),
        updated_on: now,
        created_by: ctx.caller.as_ref().map(|c| c.oid.clone()),
    };
    let reply = Reply::json(201, assignment_json(&record));
    t.role_assignments.push(record);
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_ancestry_is_segment_based_and_case_insensitive() {
        assert!(is_ancestor_or_self(
            "/subscriptions/S",
            "/subscriptions/s/resourceGroups/rg"
        ));
        assert!(is_ancestor_or_self("/", "/subscriptions/s"));
        assert!(!is_ancestor_or_self(
            "/subscriptions/s/resourceGroups/rg",
            "/subscriptions/s/resourceGroups/rg2"
        ));
        assert!(!is_ancestor_or_self(
            "/subscriptions/s/resourceGroups/rg",
            "/subscriptions/s"
        ));
        assert!(is_ancestor_or_self(
            "/providers/Microsoft.Management/managementGroups/mg",
            "/subscriptions/s"
        ));
    }

    #[test]
    fn filters_parse() {
        assert_eq!(
            split_and("atScope() and principalId eq 'a and b'"),
            vec!["atScope()", "principalId eq 'a and b'"]
        );
        assert_eq!(
            eq_clause("roleName eq 'O''Brien'"),
            Some(("roleName".into(), "O'Brien".into()))
        );
        assert_eq!(eq_clause("roleName eq Reader"), None);
    }

    #[test]
    fn routes_are_case_insensitive() {
        let segs = |p: &str| {
            p.split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert!(matches!(
            route(&segs("/SUBSCRIPTIONS/s/resourcegroups/rg")),
            Route::ResourceGroup(_, _)
        ));
        assert!(matches!(
            route(&segs("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Authorization/roleAssignments/x")),
            Route::RoleAssignment(scope, _) if scope == "/subscriptions/s/resourceGroups/rg"
        ));
        assert!(
            matches!(route(&segs("/providers/Microsoft.Authorization/roleDefinitions/x")), Route::RoleDefinition(scope, _) if scope == "/")
        );
        assert!(valid_fic_name("gh-main_1"));
        assert!(!valid_fic_name("-bad"));
        assert!(valid_workspace_name("mlw-prod"));
        assert!(!valid_workspace_name("ab"));
    }
}
