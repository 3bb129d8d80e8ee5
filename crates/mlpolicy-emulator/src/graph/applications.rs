//! `/applications`: create (the caller becomes the first owner), read, update, delete, the
//! `owners` relationship (listed with `@odata.type`, added and removed by `$ref`; an
//! application may end with no owner), and the `addPassword` / `removePassword` actions
//! that service principals share.

use serde_json::{Map, Value, json};

use super::super::state::{Application, PasswordCredential, Tenant};
use super::super::util::{eq_ci, iso8601_secs};
use super::super::{Ctx, Reply, Shared};
use super::groups::{OWNER_KINDS, related};
use super::query::{Listing, collection};
use super::render::{app_json, password_json};
use super::{
    bad_request, body_object, context_url, created, get_object, new_reference, no_route, not_found, ref_target,
    remove_everywhere,
};

/// What `$filter` accepts on `/applications`.
const FILTERABLE: &[&str] = &["appId", "displayName", "id", "identifierUris"];

/// `/applications`, one application, its owners, and its `addPassword` and `removePassword`
/// actions.
pub(super) fn applications(
    shared: &Shared,
    ctx: &Ctx,
    t: &mut Tenant,
    method: &str,
    path: &[&str],
) -> Result<Reply, Reply> {
    let position =
        |t: &Tenant, id: &str| t.applications.iter().position(|a| eq_ci(&a.id, id)).ok_or_else(|| not_found(ctx, id));
    match (method, path) {
        ("GET", ["applications"]) => {
            let items = t.applications.iter().map(app_json).collect();
            let listing = Listing { entity: "applications", resource: "Application", filterable: FILTERABLE };
            Ok(collection(shared, ctx, &listing, items))
        }
        ("POST", ["applications"]) => {
            let a = new_application(shared, ctx, t)?;
            let reply = created(shared, &t.tenant_id, "applications", app_json(&a));
            t.applications.push(a);
            Ok(reply)
        }
        ("GET", ["applications", id]) => get_object(shared, ctx, t, "applications", id),
        ("PATCH", ["applications", id]) => {
            let pos = position(t, id)?;
            let body = body_object(ctx)?;
            let uris = identifier_uris(ctx, t, &body, Some(pos))?;
            let a = &mut t.applications[pos];
            if let Some(name) = body.get("displayName").and_then(Value::as_str) {
                name.clone_into(&mut a.display_name);
            }
            if let Some(uris) = uris {
                a.identifier_uris = uris;
            }
            Ok(Reply::empty(204))
        }
        ("DELETE", ["applications", id]) => {
            let pos = position(t, id)?;
            delete_application(t, pos);
            Ok(Reply::empty(204))
        }
        ("GET", ["applications", id, "owners", cast @ ..]) if cast.len() <= 1 => {
            let pos = visible_application(shared, ctx, t, id)?;
            Ok(related(shared, ctx, t, &t.applications[pos].owners, cast.first().copied()))
        }
        ("POST", ["applications", id, "owners", "$ref"]) => {
            let pos = visible_application(shared, ctx, t, id)?;
            let owner = ref_target(ctx)?;
            let error = "Only users and service principals can be owners of an application.";
            let canonical =
                new_reference(shared, ctx, t, &t.applications[pos].owners, "owners", OWNER_KINDS, error, &owner)?;
            t.applications[pos].owners.push(canonical);
            Ok(Reply::empty(204))
        }
        ("DELETE", ["applications", id, "owners", owner, "$ref"]) => {
            let pos = visible_application(shared, ctx, t, id)?;
            let owners = &mut t.applications[pos].owners;
            let at = owners.iter().position(|o| eq_ci(o, owner)).ok_or_else(|| not_found(ctx, owner))?;
            owners.remove(at);
            Ok(Reply::empty(204))
        }
        ("POST", ["applications", id, "addpassword"]) => {
            let pos = position(t, id)?;
            Ok(add_password(shared, ctx, &mut t.applications[pos].password_credentials))
        }
        ("POST", ["applications", id, "removepassword"]) => {
            let pos = position(t, id)?;
            remove_password(ctx, &mut t.applications[pos].password_credentials)?;
            Ok(Reply::empty(204))
        }
        _ => Err(no_route(ctx)),
    }
}

/// The position of an application that exists and has replicated.
fn visible_application(shared: &Shared, ctx: &Ctx, t: &Tenant, id: &str) -> Result<usize, Reply> {
    t.applications
        .iter()
        .position(|a| eq_ci(&a.id, id) && shared.replicated(a.created_ms, ctx.now_ms))
        .ok_or_else(|| not_found(ctx, id))
}

/// The application a `POST /applications` body describes. The caller (the service principal
/// or user the token names) becomes its first owner, as Entra makes the creator of an
/// application its owner.
fn new_application(shared: &Shared, ctx: &Ctx, t: &Tenant) -> Result<Application, Reply> {
    let body = body_object(ctx)?;
    let Some(name) = body.get("displayName").and_then(Value::as_str).filter(|n| !n.is_empty()).map(str::to_owned)
    else {
        return Err(bad_request(ctx, "Invalid value specified for property 'displayName' of resource 'Application'."));
    };
    let identifier_uris = identifier_uris(ctx, t, &body, None)?.unwrap_or_default();
    let owners = ctx
        .caller
        .as_ref()
        .and_then(|c| t.find_object(&c.oid))
        .and_then(|(kind, at)| OWNER_KINDS.contains(&kind).then(|| t.object_id(kind, at)).flatten())
        .map(|id| vec![id.to_owned()])
        .unwrap_or_default();
    Ok(Application {
        id: shared.uuid(),
        app_id: shared.uuid(),
        display_name: name,
        identifier_uris,
        owners,
        created_ms: ctx.now_ms,
        ..Application::default()
    })
}

/// The body's `identifierUris`, if it sets them: strings no other application uses (`pos` is
/// the application being updated).
fn identifier_uris(
    ctx: &Ctx,
    t: &Tenant,
    body: &Map<String, Value>,
    pos: Option<usize>,
) -> Result<Option<Vec<String>>, Reply> {
    let invalid =
        || bad_request(ctx, "Invalid value specified for property 'identifierUris' of resource 'Application'.");
    let uris: Vec<String> = match body.get("identifierUris") {
        None => return Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(invalid)?,
        Some(_) => return Err(invalid()),
    };
    let taken = t
        .applications
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != pos)
        .any(|(_, a)| a.identifier_uris.iter().any(|u| uris.iter().any(|w| eq_ci(u, w))));
    if taken {
        return Err(bad_request(ctx, "Another object with the same value for property identifierUris already exists."));
    }
    Ok(Some(uris))
}

/// Deletes an application with its service principals, and those from every relationship.
fn delete_application(t: &mut Tenant, pos: usize) {
    let a = t.applications.remove(pos);
    let sp_ids: Vec<String> =
        t.service_principals.iter().filter(|s| eq_ci(&s.app_id, &a.app_id)).map(|s| s.id.clone()).collect();
    t.service_principals.retain(|s| !eq_ci(&s.app_id, &a.app_id));
    for id in sp_ids {
        remove_everywhere(t, &id);
    }
    remove_everywhere(t, &a.id);
}
/// `addPassword`: a new secret, shown once in the answer.
pub(super) fn add_password(shared: &Shared, ctx: &Ctx, creds: &mut Vec<PasswordCredential>) -> Reply {
    let body = body_object(ctx).unwrap_or_default();
    let cred = body.get("passwordCredential").cloned().unwrap_or(Value::Null);
    let secret = format!("emu~{}", shared.uuid().replace('-', ""));
    let p = PasswordCredential {
        key_id: shared.uuid(),
        display_name: cred.get("displayName").and_then(Value::as_str).map(str::to_owned),
        secret_text: secret,
        start_date_time: iso8601_secs(ctx.now_ms),
        end_date_time: cred
            .get("endDateTime")
            .and_then(Value::as_str)
            .map_or_else(|| iso8601_secs(ctx.now_ms + 2 * 365 * 86_400_000), str::to_owned),
    };
    let mut v = password_json(&p, true);
    v["@odata.context"] = json!(context_url(shared, "microsoft.graph.passwordCredential"));
    creds.push(p);
    Reply::json(200, v)
}

/// `removePassword`: the secret with the body's `keyId` must exist.
pub(super) fn remove_password(ctx: &Ctx, creds: &mut Vec<PasswordCredential>) -> Result<(), Reply> {
    let body = body_object(ctx)?;
    let key = body.get("keyId").and_then(Value::as_str).unwrap_or_default().to_owned();
    let before = creds.len();
    creds.retain(|p| !eq_ci(&p.key_id, &key));
    if creds.len() == before {
        return Err(bad_request(ctx, format!("No password credential found with keyId '{key}'.")));
    }
    Ok(())
}
