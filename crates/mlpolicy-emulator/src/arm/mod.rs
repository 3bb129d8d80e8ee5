//! The Azure Resource Manager surface: subscriptions, resource groups (`2025-04-01`), ML
//! workspaces (`2025-06-01`, PUT/DELETE as 202 + `Location` LROs with soft delete), user-assigned
//! identities and their federated credentials (`2024-11-30`), role definitions and role
//! assignments (`2022-04-01`) at any scope. Ids and names compare case-insensitively; lists page
//! with absolute `nextLink`s; errors use the `{"error":{code,message}}` envelope (see
//! <https://learn.microsoft.com/azure/azure-resource-manager/management/async-operations> and
//! <https://github.com/cloud-and-ai-microsoft/resource-provider-contract>).

mod authorization;
mod identities;
mod resources;
mod role_definitions;
mod versions;

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::realism::BucketKind;
use super::roles;
use super::state::{FederatedCredential, Identity, ResourceGroup, ServicePrincipal, SystemData, Tenant, Workspace};
use super::util::{decode_skip_token, encode_skip_token, eq_ci, is_guid, iso8601_ticks, iso8601_ticks_trimmed};
use super::{Ctx, Reply, Shared, lock};
use authorization::{is_ancestor_or_self, list_role_assignments, role_assignment, scope_check};
pub use identities::IdentityIndex;
use identities::{federated_credential, identity, identity_json, list_fics};
use resources::{listed, poll_operation, resource_group, rg_json, settle_ops, workspace, workspace_json};

const ML_PROVIDER: &str = "Microsoft.MachineLearningServices";
const MSI_TYPE: &str = "Microsoft.ManagedIdentity/userAssignedIdentities";
const FIC_TYPE: &str = "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials";
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
    let op = if kind == BucketKind::Read { "read" } else { "write" };
    let actor = ctx.caller.as_ref().map(|c| c.oid.clone()).unwrap_or_default();
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
    if let Some(i) =
        (0..l.len().saturating_sub(1)).rev().find(|&i| l[i] == "providers" && l[i + 1] == "microsoft.authorization")
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
        | ["subscriptions", _, "providers", "microsoft.machinelearningservices", "locations", _, _, _] => {
            Route::Operation(s(1), segs[segs.len() - 1].clone())
        }
        ["subscriptions", _, "providers", "microsoft.machinelearningservices", "workspaces"] => {
            Route::WorkspacesBySub(s(1))
        }
        ["subscriptions", _, "providers", "microsoft.managedidentity", "userassignedidentities"] => {
            Route::IdentitiesBySub(s(1))
        }
        ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.machinelearningservices", "workspaces"] => {
            Route::WorkspacesByRg(s(1), s(3))
        }
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
            format!("The api-version '{v}' is invalid. The supported versions are '{}'.", allowed.join(",")),
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
    Reply::arm_error(404, "ResourceGroupNotFound", format!("Resource group '{rg}' could not be found."))
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
            m.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect(),
        )),
        Some(_) => Err(bad_content("'tags' must be an object of strings")),
    }
}

/// The `location` of a PUT body, as ARM stores and echoes it: lower case without spaces
/// (`West Europe` → `westeurope`).
fn location_of(body: &Map<String, Value>) -> Result<String, Reply> {
    match body.get("location").and_then(Value::as_str) {
        Some(l) if !l.trim().is_empty() => {
            Ok(l.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase())
        }
        _ => Err(Reply::arm_error(400, "LocationRequired", "The location property is required for this definition.")),
    }
}

fn same_location(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
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
    if settled {
        // Before dispatch: lookup tables built before the operations settled are stale now.
        shared.state_changed();
    }
    let route = route(&ctx.segs);
    // Polls, and reads of a resource group being deleted, move long-running operations on.
    let observes_deletion = matches!(&route, Route::ResourceGroup(sub, rg)
        if t.resource_group(sub, rg).is_some_and(|g| g.deleting));
    let mutates = !ctx.is_read() || matches!(route, Route::Operation(..)) || observes_deletion;
    // The copy only serves to tell whether to save: without a state file there is nothing
    // to save, and copying a large tenant per write would cost more than the write.
    let before = if mutates && shared.state_file.is_some() { Some(t.clone()) } else { None };
    let reply = dispatch(shared, ctx, &mut t, route);
    if mutates {
        shared.state_changed();
    }
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

/// The resource group a resource lives in must exist, and take no writes while being deleted.
fn rg_check(ctx: &Ctx, t: &Tenant, sub: &str, rg: &str) -> Result<(), Reply> {
    match t.resource_group(sub, rg) {
        None => Err(rg_not_found(rg)),
        Some(g) if g.deleting && !ctx.is_read() => Err(resources::rg_being_deleted(&g.name)),
        Some(_) => Ok(()),
    }
}

fn dispatch(shared: &Shared, ctx: &Ctx, t: &mut Tenant, route: Route) -> Reply {
    let result = (|| -> Result<Reply, Reply> {
        match route {
            Route::Subscriptions => {
                check_version(ctx, versions::SUBSCRIPTIONS)?;
                let items =
                    t.subscriptions.iter().map(|s| subscription_json(&s.id, &s.display_name, &t.tenant_id)).collect();
                Ok(page(shared, ctx, items, "$skipToken"))
            }
            Route::Subscription(sub) => {
                check_version(ctx, versions::SUBSCRIPTIONS)?;
                if ctx.method != "GET" {
                    return Err(method_not_allowed(ctx));
                }
                subscription_check(shared, ctx, t, &sub)?;
                let name = t
                    .subscriptions
                    .iter()
                    .find(|s| eq_ci(&s.id, &sub))
                    .map_or_else(|| "Emulated subscription".to_owned(), |s| s.display_name.clone());
                Ok(Reply::json(200, subscription_json(&sub, &name, &t.tenant_id)))
            }
            Route::ResourceGroups(sub) => {
                check_version(ctx, versions::RESOURCE_GROUPS)?;
                subscription_check(shared, ctx, t, &sub)?;
                let items = t.resource_groups.iter().filter(|g| eq_ci(&g.subscription, &sub)).map(rg_json).collect();
                Ok(page(shared, ctx, items, "$skipToken"))
            }
            Route::ResourceGroup(sub, rg) => {
                check_version(ctx, versions::RESOURCE_GROUPS)?;
                subscription_check(shared, ctx, t, &sub)?;
                resource_group(shared, ctx, t, &sub, &rg)
            }
            Route::Operation(sub, id) => {
                subscription_check(shared, ctx, t, &sub)?;
                Ok(poll_operation(shared, ctx, t, &sub, &id))
            }
            Route::WorkspacesBySub(sub) => {
                check_version(ctx, versions::ML_WORKSPACES)?;
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
                check_version(ctx, versions::ML_WORKSPACES)?;
                subscription_check(shared, ctx, t, &sub)?;
                rg_check(ctx, t, &sub, &rg)?;
                let items = t
                    .workspaces
                    .iter()
                    .filter(|w| eq_ci(&w.subscription, &sub) && eq_ci(&w.resource_group, &rg) && listed(w))
                    .map(|w| workspace_json(t, w))
                    .collect();
                Ok(page(shared, ctx, items, "$skip"))
            }
            Route::Workspace(sub, rg, name) => {
                check_version(ctx, versions::ML_WORKSPACES)?;
                subscription_check(shared, ctx, t, &sub)?;
                rg_check(ctx, t, &sub, &rg)?;
                workspace(shared, ctx, t, &sub, &rg, &name)
            }
            Route::IdentitiesBySub(sub) => {
                check_version(ctx, versions::IDENTITIES)?;
                subscription_check(shared, ctx, t, &sub)?;
                let items =
                    t.identities.iter().filter(|i| eq_ci(&i.subscription, &sub)).map(|i| identity_json(t, i)).collect();
                Ok(page(shared, ctx, items, "$skiptoken"))
            }
            Route::IdentitiesByRg(sub, rg) => {
                check_version(ctx, versions::IDENTITIES)?;
                subscription_check(shared, ctx, t, &sub)?;
                rg_check(ctx, t, &sub, &rg)?;
                let items = t
                    .identities
                    .iter()
                    .filter(|i| eq_ci(&i.subscription, &sub) && eq_ci(&i.resource_group, &rg))
                    .map(|i| identity_json(t, i))
                    .collect();
                Ok(page(shared, ctx, items, "$skiptoken"))
            }
            Route::Identity(sub, rg, name) => {
                check_version(ctx, versions::IDENTITIES)?;
                subscription_check(shared, ctx, t, &sub)?;
                rg_check(ctx, t, &sub, &rg)?;
                identity(shared, ctx, t, &sub, &rg, &name)
            }
            Route::Fics(sub, rg, name) => {
                check_version(ctx, versions::FEDERATED_CREDENTIALS)?;
                subscription_check(shared, ctx, t, &sub)?;
                rg_check(ctx, t, &sub, &rg)?;
                list_fics(shared, ctx, t, &sub, &rg, &name)
            }
            Route::Fic(sub, rg, name, fic) => {
                check_version(ctx, versions::FEDERATED_CREDENTIALS)?;
                subscription_check(shared, ctx, t, &sub)?;
                rg_check(ctx, t, &sub, &rg)?;
                federated_credential(ctx, t, &sub, &rg, &name, &fic)
            }
            Route::RoleDefinitions(scope) => {
                check_version(ctx, versions::ROLE_DEFINITIONS)?;
                scope_check(shared, ctx, t, &scope)?;
                role_definitions::list(ctx, t, &scope)
            }
            Route::RoleDefinition(scope, id) => {
                check_version(ctx, versions::ROLE_DEFINITIONS)?;
                if ctx.method != "DELETE" {
                    scope_check(shared, ctx, t, &scope)?;
                }
                role_definitions::one(ctx, t, &scope, &id)
            }
            Route::RoleAssignments(scope) => {
                check_version(ctx, versions::ROLE_ASSIGNMENTS)?;
                if ctx.method != "GET" {
                    return Err(method_not_allowed(ctx));
                }
                scope_check(shared, ctx, t, &scope)?;
                list_role_assignments(shared, ctx, t, &scope)
            }
            Route::RoleAssignment(scope, name) => {
                check_version(ctx, versions::ROLE_ASSIGNMENTS)?;
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
        format!("The requested resource does not support http method '{}'.", ctx.method),
    )
}

fn unknown_path(ctx: &Ctx) -> Reply {
    let segs = &ctx.segs;
    let rg =
        segs.iter().position(|s| eq_ci(s, "resourceGroups")).and_then(|i| segs.get(i + 1)).cloned().unwrap_or_default();
    let tail =
        segs.iter().rposition(|s| eq_ci(s, "providers")).map_or_else(|| ctx.path.clone(), |i| segs[i + 1..].join("/"));
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
    let mut items = items;
    page_with(shared, ctx, items.len(), token_key, |range| items.drain(range).collect())
}

/// Pages a list of `total` items, building the JSON of only the items on the page: `build`
/// gets the page's index range.
fn page_with(
    shared: &Shared,
    ctx: &Ctx,
    total: usize,
    token_key: &str,
    build: impl FnOnce(std::ops::Range<usize>) -> Vec<Value>,
) -> Reply {
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
                return Reply::arm_error(400, "InvalidSkipToken", format!("The skip token '{tok}' is invalid."));
            }
        },
    };
    let end = offset.saturating_add(size).min(total);
    let start = offset.min(end);
    let slice = build(start..end);
    let full = slice.len() == size && size > 0;
    let mut body = Map::new();
    body.insert("value".to_owned(), Value::Array(slice));
    if full {
        body.insert("nextLink".to_owned(), json!(ctx.next_link(&shared.base_url, token_key, &encode_skip_token(end))));
    }
    Reply::json(200, Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::authorization::{eq_clause, split_and};
    use super::identities::valid_fic_name;
    use super::resources::valid_workspace_name;
    use super::*;

    #[test]
    fn scope_ancestry_is_segment_based_and_case_insensitive() {
        assert!(is_ancestor_or_self("/subscriptions/S", "/subscriptions/s/resourceGroups/rg"));
        assert!(is_ancestor_or_self("/", "/subscriptions/s"));
        assert!(!is_ancestor_or_self("/subscriptions/s/resourceGroups/rg", "/subscriptions/s/resourceGroups/rg2"));
        assert!(!is_ancestor_or_self("/subscriptions/s/resourceGroups/rg", "/subscriptions/s"));
        assert!(is_ancestor_or_self("/providers/Microsoft.Management/managementGroups/mg", "/subscriptions/s"));
    }

    #[test]
    fn filters_parse() {
        assert_eq!(split_and("atScope() and principalId eq 'a and b'"), vec!["atScope()", "principalId eq 'a and b'"]);
        assert_eq!(eq_clause("roleName eq 'O''Brien'"), Some(("roleName".into(), "O'Brien".into())));
        assert_eq!(eq_clause("roleName eq Reader"), None);
    }

    #[test]
    fn routes_are_case_insensitive() {
        let segs = |p: &str| p.split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect::<Vec<_>>();
        assert!(matches!(route(&segs("/SUBSCRIPTIONS/s/resourcegroups/rg")), Route::ResourceGroup(_, _)));
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
