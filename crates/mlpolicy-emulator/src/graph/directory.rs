//! `/users`, `/servicePrincipals` and `/directoryObjects` (one object, `getByIds`).

use serde_json::{Map, Value, json};

use super::super::state::{ServicePrincipal, Tenant, User};
use super::super::util::eq_ci;
use super::super::{Ctx, Reply, Shared};
use super::applications::{add_password, remove_password};
use super::query::{Listing, collection};
use super::render::{object_json, sp_json, user_json};
use super::{bad_request, body_object, context_url, created, get_object, no_route, not_found, remove_everywhere};

/// `/users` and one user, by id or `userPrincipalName`.
pub(super) fn users(shared: &Shared, ctx: &Ctx, t: &mut Tenant, method: &str, path: &[&str]) -> Result<Reply, Reply> {
    match (method, path) {
        ("GET", ["users"]) => {
            let items = t.users.iter().map(user_json).collect();
            let filterable = &["userPrincipalName", "displayName", "mail", "id"];
            Ok(collection(shared, ctx, &Listing { entity: "users", resource: "User", filterable }, items))
        }
        ("POST", ["users"]) => {
            let u = new_user(shared, ctx, t)?;
            let reply = created(shared, &t.tenant_id, "users", user_json(&u));
            t.users.push(u);
            Ok(reply)
        }
        ("GET", ["users", key]) => {
            let id = t.find_user(key).map(|at| t.users[at].id.clone()).ok_or_else(|| not_found(ctx, key))?;
            get_object(shared, ctx, t, "users", &id)
        }
        ("PATCH", ["users", key]) => {
            let pos = t.find_user(key).ok_or_else(|| not_found(ctx, key))?;
            let body = body_object(ctx)?;
            let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
            if let Some(name) = text("displayName") {
                t.users[pos].display_name = name;
            }
            if let Some(mail) = text("mail") {
                t.users[pos].mail = Some(mail);
            }
            Ok(Reply::empty(204))
        }
        ("DELETE", ["users", key]) => {
            let pos = t.find_user(key).ok_or_else(|| not_found(ctx, key))?;
            let u = t.users.remove(pos);
            remove_everywhere(t, &u.id);
            Ok(Reply::empty(204))
        }
        _ => Err(no_route(ctx)),
    }
}

/// The user a `POST /users` body describes; its `userPrincipalName` must be new.
fn new_user(shared: &Shared, ctx: &Ctx, t: &Tenant) -> Result<User, Reply> {
    let body = body_object(ctx)?;
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned).filter(|s| !s.is_empty());
    let Some(upn) = text("userPrincipalName") else {
        return Err(bad_request(ctx, "Invalid value specified for property 'userPrincipalName' of resource 'User'."));
    };
    if t.users.iter().any(|u| eq_ci(&u.user_principal_name, &upn)) {
        return Err(bad_request(
            ctx,
            "Another object with the same value for property userPrincipalName already exists.",
        ));
    }
    Ok(User {
        id: shared.uuid(),
        display_name: text("displayName").unwrap_or_else(|| upn.split('@').next().unwrap_or_default().to_owned()),
        mail: text("mail"),
        user_principal_name: upn,
        created_ms: ctx.now_ms,
    })
}

/// `/servicePrincipals` and one service principal.
pub(super) fn service_principals(
    shared: &Shared,
    ctx: &Ctx,
    t: &mut Tenant,
    method: &str,
    path: &[&str],
) -> Result<Reply, Reply> {
    match (method, path) {
        ("GET", ["serviceprincipals"]) => {
            let items = t.service_principals.iter().map(|s| sp_json(t, s)).collect();
            let filterable = &["appId", "displayName", "servicePrincipalType", "id", "servicePrincipalNames"];
            let listing = Listing { entity: "servicePrincipals", resource: "ServicePrincipal", filterable };
            Ok(collection(shared, ctx, &listing, items))
        }
        ("POST", ["serviceprincipals"]) => {
            let sp = new_service_principal(shared, ctx, t)?;
            let reply = created(shared, &t.tenant_id, "servicePrincipals", sp_json(t, &sp));
            t.service_principals.push(sp);
            Ok(reply)
        }
        ("GET", ["serviceprincipals", id]) => get_object(shared, ctx, t, "servicePrincipals", id),
        ("PATCH", ["serviceprincipals", id]) => {
            let pos = t.service_principals.iter().position(|s| eq_ci(&s.id, id)).ok_or_else(|| not_found(ctx, id))?;
            let body = body_object(ctx)?;
            if let Some(name) = body.get("displayName").and_then(Value::as_str) {
                name.clone_into(&mut t.service_principals[pos].display_name);
            }
            Ok(Reply::empty(204))
        }
        ("POST", ["serviceprincipals", id, action @ ("addpassword" | "removepassword")]) => {
            let pos = t.service_principals.iter().position(|s| eq_ci(&s.id, id)).ok_or_else(|| not_found(ctx, id))?;
            let creds = &mut t.service_principals[pos].password_credentials;
            if *action == "addpassword" {
                Ok(add_password(shared, ctx, creds))
            } else {
                remove_password(ctx, creds)?;
                Ok(Reply::empty(204))
            }
        }
        ("DELETE", ["serviceprincipals", id]) => {
            let pos = t.service_principals.iter().position(|s| eq_ci(&s.id, id)).ok_or_else(|| not_found(ctx, id))?;
            let sp = t.service_principals.remove(pos);
            remove_everywhere(t, &sp.id);
            Ok(Reply::empty(204))
        }
        _ => Err(no_route(ctx)),
    }
}

/// The service principal a `POST /servicePrincipals` body describes: one per `appId`, of an
/// existing application when authentication is strict.
fn new_service_principal(shared: &Shared, ctx: &Ctx, t: &Tenant) -> Result<ServicePrincipal, Reply> {
    let body = body_object(ctx)?;
    let Some(app_id) = body.get("appId").and_then(Value::as_str).map(str::to_owned) else {
        return Err(bad_request(ctx, "Invalid value specified for property 'appId' of resource 'ServicePrincipal'."));
    };
    if t.service_principals.iter().any(|s| eq_ci(&s.app_id, &app_id)) {
        return Err(Reply::graph_error(
            ctx,
            409,
            "Request_MultipleObjectsWithSameKeyValue",
            "The service principal cannot be created, updated, or restored because the service principal appId is already in use.",
        ));
    }
    let app = t.applications.iter().find(|a| eq_ci(&a.app_id, &app_id));
    if app.is_none() && shared.strict_auth {
        return Err(bad_request(
            ctx,
            format!("The appId '{app_id}' of the service principal does not reference a valid application object."),
        ));
    }
    Ok(ServicePrincipal {
        id: shared.uuid(),
        display_name: app.map_or_else(|| app_id.clone(), |a| a.display_name.clone()),
        app_id,
        service_principal_type: "Application".to_owned(),
        alternative_names: Vec::new(),
        password_credentials: Vec::new(),
        created_ms: ctx.now_ms,
    })
}

/// `/directoryObjects/getByIds` and one directory object.
pub(super) fn directory_objects(
    shared: &Shared,
    ctx: &Ctx,
    t: &Tenant,
    method: &str,
    path: &[&str],
) -> Result<Reply, Reply> {
    match (method, path) {
        ("POST", ["directoryobjects", "getbyids"]) => get_by_ids(shared, ctx, t),
        ("GET", ["directoryobjects", id]) => get_object(shared, ctx, t, "directoryObjects", id),
        _ => Err(no_route(ctx)),
    }
}

/// `getByIds`: the replicated objects among the body's `ids`, of the body's `types` if any.
fn get_by_ids(shared: &Shared, ctx: &Ctx, t: &Tenant) -> Result<Reply, Reply> {
    let body = body_object(ctx)?;
    let ids: Vec<String> = body
        .get("ids")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    let types: Vec<String> = body
        .get("types")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_ascii_lowercase).collect())
        .unwrap_or_default();
    let value: Vec<Value> = ids
        .iter()
        .filter(|id| t.directory_object(id).is_some_and(|(_, c)| shared.replicated(c, ctx.now_ms)))
        .filter_map(|id| object_json(t, id))
        .filter(|v| {
            types.is_empty()
                || v["@odata.type"]
                    .as_str()
                    .is_some_and(|ty| types.iter().any(|w| ty.to_ascii_lowercase().ends_with(w.as_str())))
        })
        .collect();
    let mut body = Map::new();
    body.insert("@odata.context".to_owned(), json!(context_url(shared, "directoryObjects")));
    body.insert("value".to_owned(), Value::Array(value));
    Ok(Reply::json(200, Value::Object(body)))
}
