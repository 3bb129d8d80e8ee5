//! The Microsoft Graph v1.0 surface: groups (create, upsert by `uniqueName`, update, delete,
//! members and owners with `$ref`), users, service principals, applications (with
//! `addPassword` and owners), directory objects, membership queries and JSON `$batch`. Lists
//! support `$filter`, `$search`, `$orderby`, `$select`, `$top`, `$count` and
//! `@odata.nextLink` paging (`query`); errors carry `innerError`. Objects created less than
//! the replication delay ago answer 404 to reads by id and cannot be added as members yet
//! (`replication_delay_ms` in `docs/emulator.md`).

mod applications;
mod batch;
mod directory;
mod groups;
#[cfg(test)]
mod http_tests;
mod membership;
mod query;
mod render;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value, json};

use super::realism::Realism;
use super::state::{ObjectKind, Tenant};
use super::util::{eq_ci, is_guid};
use super::{Ctx, Reply, Shared};
use applications::applications;
use directory::{directory_objects, service_principals, users};
use groups::{groups, upsert_group};
use membership::{MEMBERSHIP_QUERIES, membership_query};
use query::{counting, eventual, select};
use render::object_json;

pub use batch::batch;

/// The Graph 429 answer.
pub fn throttled(ctx: &Ctx, secs: u64) -> Reply {
    Reply::graph_error(
        ctx,
        429,
        "TooManyRequests",
        "Too many requests are being made. Please retry after the time given in the Retry-After header.",
    )
    .header("Retry-After", secs.to_string())
}

/// Graph's directory-budget headers (azure-wire.md §7.6): what the request cost
/// (`x-ms-resource-unit`; the emulator charges 1 per request), and from 80% of the budget on
/// the share spent (`x-ms-throttle-limit-percentage`). `remaining` is what the bucket holds
/// after this request; without throttling the bucket is full and Graph never warns.
pub fn budget_headers(reply: Reply, realism: &Realism, remaining: u32) -> Reply {
    let reply = reply.header("x-ms-resource-unit", "1");
    let Some(t) = &realism.throttle else { return reply };
    let used = 1.0 - f64::from(remaining.min(t.graph_capacity)) / f64::from(t.graph_capacity.max(1));
    if used < 0.8 {
        return reply;
    }
    reply.header("x-ms-throttle-limit-percentage", format!("{used:.2}"))
}

fn not_found(ctx: &Ctx, id: &str) -> Reply {
    Reply::graph_error(
        ctx,
        404,
        "Request_ResourceNotFound",
        format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
    )
}

fn bad_request(ctx: &Ctx, message: impl Into<String>) -> Reply {
    Reply::graph_error(ctx, 400, "Request_BadRequest", message)
}

fn context_url(shared: &Shared, what: &str) -> String {
    format!("{}/v1.0/$metadata#{what}", shared.base_url)
}

fn single(shared: &Shared, ctx: &Ctx, entity: &str, v: Value) -> Reply {
    let mut v = select(ctx, v);
    if let Value::Object(m) = &mut v {
        m.insert("@odata.context".into(), json!(context_url(shared, &format!("{entity}/$entity"))));
    }
    Reply::json(200, v)
}

/// Parses `key='value'` (the inside of `entity(key='value')`) into (key, value).
fn alternate_key(inner: &str) -> Option<(String, String)> {
    let (k, v) = inner.split_once('=')?;
    Some((k.trim().to_owned(), unquote(v)?))
}

fn body_object(ctx: &Ctx) -> Result<Map<String, Value>, Reply> {
    match ctx.json() {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Reply::graph_error(ctx, 400, "BadRequest", "Empty Payload. JSON content expected.")),
        Err(e) => Err(Reply::graph_error(
            ctx,
            400,
            "BadRequest",
            format!(
                "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format. {e}"
            ),
        )),
    }
}

/// Serves one authenticated, unthrottled Graph request (also used for `$batch` items).
pub async fn handle(shared: &Shared, ctx: &Ctx) -> Reply {
    let mut t = shared.state.lock().await;
    // Only to tell whether to save (see `arm::handle`).
    let before = if ctx.is_read() || shared.state_file.is_none() { None } else { Some(t.clone()) };
    let mut reply = route(shared, ctx, &mut t).unwrap_or_else(|e| e);
    // Graph answers every POST that returns a body with a `Location`: the new object's for a
    // create, its own base for an action (`addPassword`, `getByIds`).
    let has_location = reply.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("location"));
    if ctx.method == "POST" && (200..300).contains(&reply.status) && reply.has_body() && !has_location {
        reply = reply.header("Location", shared.base_url.clone());
    }
    if !ctx.is_read() {
        shared.state_changed();
    }
    if before.is_some_and(|b| b != *t) {
        shared.persist(&t).await;
    }
    reply
}

/// Routes a Graph request to the handler of its resource collection. An alternate key
/// (`groups(uniqueName='x')`, `servicePrincipals(appId='x')`, `applications(appId='x')`) or a
/// key in parentheses (`users('alice@contoso.com')`) in the first segment stands for the
/// object's id; a final `$count` segment counts the collection it ends.
fn route(shared: &Shared, ctx: &Ctx, t: &mut Tenant) -> Result<Reply, Reply> {
    let mut segs: Vec<String> = ctx.segs.iter().skip(1).cloned().collect();
    if let Some(first) = segs.first().cloned()
        && let Some((entity, key)) = first.split_once('(').and_then(|(e, rest)| Some((e, rest.strip_suffix(')')?)))
    {
        let entity = entity.to_owned();
        let id = match alternate_key(key) {
            Some((name, value)) => {
                let upsert = segs.len() == 1 && ctx.method == "PATCH";
                if upsert && eq_ci(&entity, "groups") && eq_ci(&name, "uniqueName") {
                    let existing = resolve_alternate(t, &entity, &name, &value);
                    return upsert_group(shared, ctx, t, &value, existing);
                }
                resolve_alternate(t, &entity, &name, &value).ok_or_else(|| not_found(ctx, &value))?
            }
            None => unquote(key).ok_or_else(|| no_route(ctx))?,
        };
        segs.splice(..1, [entity, id]);
    }
    if counting(ctx) {
        segs.pop();
    }
    let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let path: Vec<&str> = lower.iter().map(String::as_str).collect();
    let method = ctx.method.as_str();
    if counting(ctx) {
        check_count(ctx, method, &path)?;
    }
    if let [entity, id, query, rest @ ..] = path.as_slice()
        && matches!(*entity, "users" | "groups" | "serviceprincipals" | "directoryobjects")
        && MEMBERSHIP_QUERIES.contains(query)
        && rest.len() <= 1
    {
        return membership_query(shared, ctx, t, entity, id, query, rest.first().copied());
    }
    match path.first().copied() {
        Some("organization") => organization(shared, ctx, t, method, &path),
        Some("groups") => groups(shared, ctx, t, method, &path),
        Some("users") => users(shared, ctx, t, method, &path),
        Some("serviceprincipals") => service_principals(shared, ctx, t, method, &path),
        Some("applications") => applications(shared, ctx, t, method, &path),
        Some("directoryobjects") => directory_objects(shared, ctx, t, method, &path),
        _ => Err(no_route(ctx)),
    }
}

/// The `$count` segment ends a collection of directory objects (an entity set or a
/// relationship, optionally cast to a type) and, as every advanced query, needs
/// `ConsistencyLevel: eventual`.
fn check_count(ctx: &Ctx, method: &str, path: &[&str]) -> Result<(), Reply> {
    let relation =
        |r: &str| matches!(r, "members" | "owners" | "memberof" | "transitivememberof" | "transitivemembers");
    let cast = |s: &str| s.starts_with("microsoft.graph.");
    let collection = match path {
        [set] => matches!(*set, "users" | "groups" | "serviceprincipals" | "applications"),
        [_, _, r] => relation(r),
        [_, _, r, c] => relation(r) && cast(c),
        _ => false,
    };
    if method != "GET" || !collection {
        return Err(Reply::graph_error(ctx, 400, "BadRequest", "Resource not found for the segment '$count'."));
    }
    if !eventual(ctx) {
        return Err(bad_request(ctx, "$count is not currently supported."));
    }
    Ok(())
}

/// `'value'` (quotes doubled inside) → `value`; a bare GUID stays as it is.
fn unquote(key: &str) -> Option<String> {
    let key = key.trim();
    match key.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        Some(inner) => Some(inner.replace("''", "'")),
        None => is_guid(key).then(|| key.to_owned()),
    }
}

/// The answer to a path no route serves: Graph names its first segment.
fn no_route(ctx: &Ctx) -> Reply {
    let first = ctx.segs.get(1).map_or("", String::as_str);
    Reply::graph_error(ctx, 400, "BadRequest", format!("Resource not found for the segment '{first}'."))
}

/// `/organization`: the tenant.
fn organization(shared: &Shared, ctx: &Ctx, t: &Tenant, method: &str, path: &[&str]) -> Result<Reply, Reply> {
    match (method, path) {
        ("GET", ["organization"]) => Ok(Reply::json(
            200,
            json!({
                "@odata.context": context_url(shared, "organization"),
                "value": [{"id": t.tenant_id, "displayName": "Emulated tenant", "verifiedDomains": [{"name": "emulator.onmicrosoft.com", "isDefault": true, "isInitial": true}]}],
            }),
        )),
        _ => Err(no_route(ctx)),
    }
}

/// A 201 for a created object, with the `Location` Graph sends:
/// `{graph}/v2/{tenant}/directoryObjects/{id}/Microsoft.DirectoryServices.{Type}`.
fn created(shared: &Shared, tenant: &str, entity: &str, mut v: Value) -> Reply {
    v["@odata.context"] = json!(context_url(shared, &format!("{entity}/$entity")));
    let kind = match entity {
        "users" => "User",
        "groups" => "Group",
        "servicePrincipals" => "ServicePrincipal",
        _ => "Application",
    };
    let id = v["id"].as_str().unwrap_or_default().to_owned();
    let location = format!("{}/v2/{tenant}/directoryObjects/{id}/Microsoft.DirectoryServices.{kind}", shared.base_url);
    Reply::json(201, v).header("Location", location)
}

fn resolve_alternate(t: &Tenant, entity: &str, key: &str, value: &str) -> Option<String> {
    match (entity.to_ascii_lowercase().as_str(), key.to_ascii_lowercase().as_str()) {
        ("groups", "uniquename") => {
            t.groups.iter().find(|g| g.unique_name.as_deref().is_some_and(|u| eq_ci(u, value))).map(|g| g.id.clone())
        }
        ("serviceprincipals", "appid") => {
            t.service_principals.iter().find(|s| eq_ci(&s.app_id, value)).map(|s| s.id.clone())
        }
        ("applications", "appid") => t.applications.iter().find(|a| eq_ci(&a.app_id, value)).map(|a| a.id.clone()),
        _ => None,
    }
}

/// GET of one object by id, honouring the replication delay and the entity set's type.
fn get_object(shared: &Shared, ctx: &Ctx, t: &Tenant, entity: &str, id: &str) -> Result<Reply, Reply> {
    let Some((kind, created)) = t.directory_object(id) else {
        return Err(not_found(ctx, id));
    };
    let type_ok = match entity {
        "users" => kind == ObjectKind::User,
        "groups" => kind == ObjectKind::Group,
        "servicePrincipals" => kind == ObjectKind::ServicePrincipal,
        "applications" => kind == ObjectKind::Application,
        _ => true,
    };
    if !type_ok || !shared.replicated(created, ctx.now_ms) {
        return Err(not_found(ctx, id));
    }
    let mut v = object_json(t, id).ok_or_else(|| not_found(ctx, id))?;
    if entity != "directoryObjects"
        && let Value::Object(m) = &mut v
    {
        m.remove("@odata.type");
    }
    Ok(single(shared, ctx, entity, v))
}

fn visible_group(shared: &Shared, ctx: &Ctx, t: &Tenant, id: &str) -> Result<usize, Reply> {
    // `find_object` scans every collection itself when its index misses.
    match t.find_object(id) {
        Some((ObjectKind::Group, at)) if shared.replicated(t.groups[at].created_ms, ctx.now_ms) => Ok(at),
        _ => Err(not_found(ctx, id)),
    }
}

/// The object id a `$ref` body names: `{"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/{id}"}`.
fn ref_target(ctx: &Ctx) -> Result<String, Reply> {
    let body = body_object(ctx)?;
    let Some(target) = body.get("@odata.id").and_then(Value::as_str) else {
        return Err(bad_request(ctx, "The request body must contain '@odata.id'."));
    };
    Ok(target.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_owned())
}

/// Checks that `member` can join the relationship `rel` whose current ids are `list`: a GUID
/// of a replicated directory object of an `allowed` kind (else 400 `kind_error`), not in the
/// list yet. Returns the object's id as stored.
#[expect(clippy::too_many_arguments, reason = "one check, shared by groups and applications")]
fn new_reference(
    shared: &Shared,
    ctx: &Ctx,
    t: &Tenant,
    list: &[String],
    rel: &str,
    allowed: &[ObjectKind],
    kind_error: &str,
    member: &str,
) -> Result<String, Reply> {
    if !is_guid(member) {
        return Err(bad_request(ctx, format!("Invalid object identifier '{member}'.")));
    }
    let Some((kind, created)) = t.directory_object(member) else {
        return Err(not_found(ctx, member));
    };
    if !shared.replicated(created, ctx.now_ms) {
        return Err(not_found(ctx, member));
    }
    if !allowed.contains(&kind) {
        return Err(bad_request(ctx, kind_error));
    }
    if list.iter().any(|m| eq_ci(m, member)) {
        return Err(bad_request(
            ctx,
            format!(
                "One or more added object references already exist for the following modified properties: '{rel}'."
            ),
        ));
    }
    Ok(t.find_object(member).and_then(|(k, at)| t.object_id(k, at)).unwrap_or(member).to_owned())
}

/// Removes a deleted object from every group's members and owners and every application's
/// owners.
fn remove_everywhere(t: &mut Tenant, id: &str) {
    for g in &mut t.groups {
        g.members.retain(|m| !eq_ci(m, id));
        g.owners.retain(|m| !eq_ci(m, id));
    }
    for a in &mut t.applications {
        a.owners.retain(|m| !eq_ci(m, id));
    }
}
