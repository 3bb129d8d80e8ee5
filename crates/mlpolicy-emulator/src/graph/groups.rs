//! `/groups`: create, upsert by `uniqueName`, update, delete, and the `members` and `owners`
//! relationships (listed, added and removed by `$ref`).

use serde_json::{Map, Value};

use super::super::state::{Group, ObjectKind, Tenant};
use super::super::util::eq_ci;
use super::super::{Ctx, Reply, Shared};
use super::query::{Listing, collection};
use super::render::{group_json, object_json};
use super::{
    bad_request, body_object, created, get_object, new_reference, no_route, not_found, ref_target, remove_everywhere,
    visible_group,
};

/// What `$filter` accepts on `/groups`.
const FILTERABLE: &[&str] =
    &["displayName", "uniqueName", "mailNickname", "securityEnabled", "mailEnabled", "id", "description"];

/// `/groups`, one group, and its `members` and `owners` (listed, added and removed by `$ref`).
pub(super) fn groups(shared: &Shared, ctx: &Ctx, t: &mut Tenant, method: &str, path: &[&str]) -> Result<Reply, Reply> {
    match (method, path) {
        ("GET", ["groups"]) => {
            let items = t.groups.iter().map(group_json).collect();
            Ok(collection(shared, ctx, &Listing { entity: "groups", resource: "Group", filterable: FILTERABLE }, items))
        }
        ("POST", ["groups"]) => {
            let body = body_object(ctx)?;
            let g = create_group(shared, ctx, t, &body, None)?;
            Ok(created(shared, &t.tenant_id, "groups", group_json(&g)))
        }
        ("GET", ["groups", id]) => get_object(shared, ctx, t, "groups", id),
        ("PATCH", ["groups", id]) => {
            let idx = visible_group(shared, ctx, t, id)?;
            let body = body_object(ctx)?;
            patch_group(shared, ctx, t, idx, &body)?;
            Ok(Reply::empty(204))
        }
        ("DELETE", ["groups", id]) => {
            let idx = visible_group(shared, ctx, t, id)?;
            let g = t.groups.remove(idx);
            remove_everywhere(t, &g.id);
            Ok(Reply::empty(204))
        }
        ("GET", ["groups", id, rel @ ("members" | "owners"), cast @ ..]) if cast.len() <= 1 => {
            let idx = visible_group(shared, ctx, t, id)?;
            let g = &t.groups[idx];
            let ids = if *rel == "members" { &g.members } else { &g.owners };
            Ok(related(shared, ctx, t, ids, cast.first().copied()))
        }
        ("POST", ["groups", id, rel @ ("members" | "owners"), "$ref"]) => {
            let idx = visible_group(shared, ctx, t, id)?;
            let member = ref_target(ctx)?;
            let g = &t.groups[idx];
            let (list, allowed, error) = if *rel == "members" {
                (&g.members, ALL_KINDS, "")
            } else {
                (&g.owners, OWNER_KINDS, "Only users and service principals can be owners of a group.")
            };
            let canonical = new_reference(shared, ctx, t, list, rel, allowed, error, &member)?;
            let g = &mut t.groups[idx];
            if *rel == "members" { &mut g.members } else { &mut g.owners }.push(canonical);
            Ok(Reply::empty(204))
        }
        ("DELETE", ["groups", id, rel @ ("members" | "owners"), member, "$ref"]) => {
            let idx = visible_group(shared, ctx, t, id)?;
            remove_reference(ctx, t, idx, rel, member)?;
            Ok(Reply::empty(204))
        }
        _ => Err(no_route(ctx)),
    }
}

/// Removes a member or owner from a group; a group keeps at least one owner.
fn remove_reference(ctx: &Ctx, t: &mut Tenant, idx: usize, rel: &str, member: &str) -> Result<(), Reply> {
    let g = &mut t.groups[idx];
    let list = if rel == "members" { &mut g.members } else { &mut g.owners };
    let Some(pos) = list.iter().position(|m| eq_ci(m, member)) else {
        return Err(not_found(ctx, member));
    };
    if rel == "owners" && list.len() == 1 {
        return Err(bad_request(ctx, "The group must have at least one owner, hence this owner cannot be removed."));
    }
    list.remove(pos);
    Ok(())
}

const GROUP_PROPERTIES: &[&str] = &[
    "displayName",
    "description",
    "mailNickname",
    "mailEnabled",
    "securityEnabled",
    "groupTypes",
    "uniqueName",
    "visibility",
    "isAssignableToRole",
    "classification",
    "members@odata.bind",
    "owners@odata.bind",
];

fn valid_mail_nickname(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars().all(|c| c.is_ascii() && !c.is_ascii_control() && !"@()\\[]\";:.<>, ".contains(c))
}

/// Object ids from `members@odata.bind` / `owners@odata.bind`.
fn binds(ctx: &Ctx, body: &Map<String, Value>, key: &str) -> Result<Vec<String>, Reply> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(|s| s.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_owned())
                    .ok_or_else(|| bad_request(ctx, format!("Invalid value specified for property '{key}'.")))
            })
            .collect(),
        Some(_) => Err(bad_request(ctx, format!("Invalid value specified for property '{key}'."))),
    }
}

fn check_bound(shared: &Shared, ctx: &Ctx, t: &Tenant, ids: &[String]) -> Result<(), Reply> {
    for id in ids {
        let visible = t.directory_object(id).is_some_and(|(_, c)| shared.replicated(c, ctx.now_ms));
        if !visible {
            return Err(not_found(ctx, id));
        }
    }
    Ok(())
}

pub(super) fn create_group(
    shared: &Shared,
    ctx: &Ctx,
    t: &mut Tenant,
    body: &Map<String, Value>,
    unique: Option<&str>,
) -> Result<Group, Reply> {
    if let Some(unknown) =
        body.keys().find(|k| !k.starts_with("@odata") && !GROUP_PROPERTIES.iter().any(|p| eq_ci(p, k)))
    {
        return Err(bad_request(
            ctx,
            format!("Property '{unknown}' does not exist on type 'Microsoft.DirectoryServices.Group'."),
        ));
    }
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    let invalid =
        |p: &str| bad_request(ctx, format!("Invalid value specified for property '{p}' of resource 'Group'."));
    let display_name =
        text("displayName").filter(|d| !d.is_empty() && d.len() <= 256).ok_or_else(|| invalid("displayName"))?;
    let mail_nickname =
        text("mailNickname").filter(|n| valid_mail_nickname(n)).ok_or_else(|| invalid("mailNickname"))?;
    let mail_enabled = body.get("mailEnabled").and_then(Value::as_bool).ok_or_else(|| invalid("mailEnabled"))?;
    let security_enabled =
        body.get("securityEnabled").and_then(Value::as_bool).ok_or_else(|| invalid("securityEnabled"))?;
    let unique_name = unique.map(str::to_owned).or_else(|| text("uniqueName"));
    if let Some(u) = &unique_name
        && t.groups.iter().any(|g| g.unique_name.as_deref().is_some_and(|x| eq_ci(x, u)))
    {
        return Err(bad_request(ctx, "Another object with the same value for property uniqueName already exists."));
    }
    let members = binds(ctx, body, "members@odata.bind")?;
    let owners = binds(ctx, body, "owners@odata.bind")?;
    if members.len() + owners.len() > 20 {
        return Err(bad_request(
            ctx,
            "A maximum of 20 relationships (owners and members combined) can be added when creating a group.",
        ));
    }
    check_bound(shared, ctx, t, &members)?;
    check_bound(shared, ctx, t, &owners)?;
    let g = Group {
        id: shared.uuid(),
        display_name,
        unique_name,
        mail_nickname,
        description: text("description"),
        security_enabled,
        mail_enabled,
        group_types: body
            .get("groupTypes")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default(),
        members,
        owners,
        created_ms: ctx.now_ms,
    };
    t.groups.push(g.clone());
    Ok(g)
}

fn patch_group(shared: &Shared, ctx: &Ctx, t: &mut Tenant, idx: usize, body: &Map<String, Value>) -> Result<(), Reply> {
    if let Some(unknown) =
        body.keys().find(|k| !k.starts_with("@odata") && !GROUP_PROPERTIES.iter().any(|p| eq_ci(p, k)))
    {
        return Err(bad_request(
            ctx,
            format!("Property '{unknown}' does not exist on type 'Microsoft.DirectoryServices.Group'."),
        ));
    }
    let invalid =
        |p: &str| bad_request(ctx, format!("Invalid value specified for property '{p}' of resource 'Group'."));
    let members = binds(ctx, body, "members@odata.bind")?;
    if members.len() > 20 {
        return Err(bad_request(ctx, "A maximum of 20 members can be added in a single request."));
    }
    check_bound(shared, ctx, t, &members)?;
    if let Some(u) = body.get("uniqueName").and_then(Value::as_str) {
        let current = t.groups[idx].unique_name.clone();
        match current {
            Some(c) if !eq_ci(&c, u) => {
                return Err(bad_request(ctx, "Property 'uniqueName' cannot be changed once it is set."));
            }
            None if t.groups.iter().any(|g| g.unique_name.as_deref().is_some_and(|x| eq_ci(x, u))) => {
                return Err(bad_request(
                    ctx,
                    "Another object with the same value for property uniqueName already exists.",
                ));
            }
            _ => {}
        }
    }
    let g = &mut t.groups[idx];
    if members.iter().any(|m| g.members.iter().any(|x| eq_ci(x, m))) {
        return Err(bad_request(
            ctx,
            "One or more added object references already exist for the following modified properties: 'members'.",
        ));
    }
    for (k, v) in body {
        match k.as_str() {
            "displayName" => {
                v.as_str()
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| invalid("displayName"))?
                    .clone_into(&mut g.display_name);
            }
            "description" => g.description = v.as_str().map(str::to_owned),
            "mailNickname" => {
                v.as_str()
                    .filter(|n| valid_mail_nickname(n))
                    .ok_or_else(|| invalid("mailNickname"))?
                    .clone_into(&mut g.mail_nickname);
            }
            "securityEnabled" => {
                g.security_enabled = v.as_bool().ok_or_else(|| invalid("securityEnabled"))?;
            }
            "mailEnabled" => g.mail_enabled = v.as_bool().ok_or_else(|| invalid("mailEnabled"))?,
            "uniqueName" => g.unique_name = v.as_str().map(str::to_owned),
            _ => {}
        }
    }
    g.members.extend(members);
    Ok(())
}

pub(super) fn upsert_group(
    shared: &Shared,
    ctx: &Ctx,
    t: &mut Tenant,
    unique: &str,
    existing: Option<String>,
) -> Result<Reply, Reply> {
    let body = body_object(ctx)?;
    if let Some(id) = existing {
        let idx = t.groups.iter().position(|g| eq_ci(&g.id, &id)).ok_or_else(|| not_found(ctx, unique))?;
        patch_group(shared, ctx, t, idx, &body)?;
        return Ok(Reply::empty(204));
    }
    let create = ctx.header("prefer").is_some_and(|p| p.split(',').any(|x| eq_ci(x.trim(), "create-if-missing")));
    if !create {
        return Err(not_found(ctx, unique));
    }
    let g = create_group(shared, ctx, t, &body, Some(unique))?;
    Ok(created(shared, &t.tenant_id, "groups", group_json(&g)).header("Preference-Applied", "create-if-missing"))
}

/// Kinds of object that can be members of a group.
const ALL_KINDS: &[ObjectKind] =
    &[ObjectKind::User, ObjectKind::Group, ObjectKind::ServicePrincipal, ObjectKind::Application];

/// Kinds of object that can own a group or an application.
pub(super) const OWNER_KINDS: &[ObjectKind] = &[ObjectKind::User, ObjectKind::ServicePrincipal];

/// A relationship's objects as a `directoryObjects` collection, each tagged with
/// `@odata.type`, optionally cast to one type (`members/microsoft.graph.user`).
pub(super) fn related(shared: &Shared, ctx: &Ctx, t: &Tenant, ids: &[String], cast: Option<&str>) -> Reply {
    let items = ids
        .iter()
        .filter_map(|m| object_json(t, m))
        .filter(|v| cast.is_none_or(|c| v["@odata.type"].as_str().is_some_and(|ty| eq_ci(&ty[1..], c))))
        .collect();
    let listing =
        Listing { entity: "directoryObjects", resource: "DirectoryObject", filterable: &["id", "displayName"] };
    collection(shared, ctx, &listing, items)
}
