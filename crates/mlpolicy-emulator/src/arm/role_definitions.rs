//! Role definitions: Azure's 928 built-in roles (read-only, from the vendored catalogue) and
//! custom roles (`PUT`, `GET`, `DELETE`, lists) with their `assignableScopes`, the tenant's limit
//! of 5,000 custom roles, unique role names, and the volatile `createdOn`/`createdBy` Azure
//! answers with (a create response says `createdBy: null`; reads fill it in).

use super::authorization::{eq_clause, is_ancestor_or_self, split_and, unsupported_filter};
use super::{Ctx, Reply, Tenant, Value, bad_content, body_object, eq_ci, is_guid, iso8601_ticks, json, roles};
use crate::state::CustomRole;

/// Azure's fixed limit of custom roles per tenant.
pub(crate) const CUSTOM_ROLE_LIMIT: usize = 5_000;

const RD_TYPE: &str = "Microsoft.Authorization/roleDefinitions";

/// The ARM JSON of a custom role; `fresh` is the answer to the write that made it, which
/// carries the request's time and no creator yet, as Azure's does.
pub(super) fn custom_json(r: &CustomRole, scope: &str, fresh: Option<u64>) -> Value {
    let (created_on, created_by) = match fresh {
        Some(now) => (iso8601_ticks(now), Value::Null),
        None => (r.created_on.clone(), json!(r.created_by)),
    };
    json!({
        "properties": {
            "roleName": r.role_name,
            "type": "CustomRole",
            "description": r.description,
            "assignableScopes": r.assignable_scopes,
            "permissions": r.permissions,
            "createdOn": created_on,
            "updatedOn": r.updated_on,
            "createdBy": created_by,
            "updatedBy": r.updated_by,
        },
        "id": roles::definition_id(scope, &r.name),
        "type": RD_TYPE,
        "name": r.name,
    })
}

fn does_not_exist(id: &str) -> Reply {
    Reply::arm_error(
        404,
        "RoleDefinitionDoesNotExist",
        format!("The specified role definition with ID '{id}' does not exist."),
    )
}

/// Whether a custom role may be assigned at `scope`: one of its assignable scopes is the scope
/// or above it.
pub(crate) fn assignable_at(r: &CustomRole, scope: &str) -> bool {
    r.assignable_scopes.iter().any(|a| is_ancestor_or_self(a, scope))
}

/// Whether a role definition GUID names a role assignable at `scope`: any built-in role, or a
/// custom role whose assignable scopes cover it.
pub(crate) fn role_exists_at(t: &Tenant, guid: &str, scope: &str) -> bool {
    roles::by_guid(guid).is_some() || t.role_definitions.iter().any(|r| eq_ci(&r.name, guid) && assignable_at(r, scope))
}

/// `GET {scope}/providers/Microsoft.Authorization/roleDefinitions`: built-in roles and the custom
/// roles assignable at the scope (or, with `atScopeAndBelow()`, below it too), filtered by
/// `roleName eq '…'` (case-insensitive) and `type eq 'BuiltInRole' | 'CustomRole'`. ARM answers
/// the whole list at once (a recorded list of 452 definitions has no `nextLink`).
pub(super) fn list(ctx: &Ctx, t: &Tenant, scope: &str) -> Result<Reply, Reply> {
    if ctx.method != "GET" {
        return Err(super::method_not_allowed(ctx));
    }
    let (mut name, mut kind, mut below) = (None, None, false);
    if let Some(filter) = ctx.q("$filter") {
        for clause in split_and(filter) {
            if eq_ci(&clause, "atScopeAndBelow()") {
                below = true;
                continue;
            }
            match eq_clause(&clause) {
                Some((k, v)) if eq_ci(&k, "roleName") => name = Some(v),
                Some((k, v)) if eq_ci(&k, "type") => kind = Some(v),
                _ => return Err(unsupported_filter(filter)),
            }
        }
    }
    let named = |n: &str| name.as_deref().is_none_or(|want| eq_ci(want, n));
    let of_kind = |k: &str| kind.as_deref().is_none_or(|want| eq_ci(want, k));
    let mut items: Vec<Value> = if of_kind("BuiltInRole") {
        roles::BUILT_IN.iter().filter(|r| named(&r.name)).map(|r| roles::to_json(r, scope)).collect()
    } else {
        Vec::new()
    };
    if of_kind("CustomRole") {
        items.extend(
            t.role_definitions
                .iter()
                .filter(|r| named(&r.role_name))
                .filter(|r| {
                    assignable_at(r, scope)
                        || (below && r.assignable_scopes.iter().any(|a| is_ancestor_or_self(scope, a)))
                })
                .map(|r| custom_json(r, scope, None)),
        );
    }
    Ok(Reply::json(200, json!({ "value": items })))
}

/// `GET`, `PUT` and `DELETE` of one role definition.
pub(super) fn one(ctx: &Ctx, t: &mut Tenant, scope: &str, guid: &str) -> Result<Reply, Reply> {
    match ctx.method.as_str() {
        "GET" => {
            if let Some(r) = roles::by_guid(guid) {
                return Ok(Reply::json(200, roles::to_json(r, scope)));
            }
            t.role_definitions
                .iter()
                .find(|r| eq_ci(&r.name, guid))
                .map(|r| Reply::json(200, custom_json(r, scope, None)))
                .ok_or_else(|| does_not_exist(guid))
        }
        "PUT" => put(ctx, t, scope, guid),
        "DELETE" => delete(ctx, t, scope, guid),
        _ => Err(super::method_not_allowed(ctx)),
    }
}

/// The caller's object id, as `updatedBy` and (later) `createdBy` name it.
fn caller(ctx: &Ctx) -> Option<String> {
    ctx.caller.as_ref().map(|c| c.oid.clone())
}

fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    v?.as_array()?.iter().map(|s| s.as_str().map(str::to_owned)).collect()
}

/// `PUT`: creates or replaces a custom role. Azure answers 201 to both.
fn put(ctx: &Ctx, t: &mut Tenant, scope: &str, guid: &str) -> Result<Reply, Reply> {
    if !is_guid(guid) {
        return Err(Reply::arm_error(
            400,
            "InvalidRoleDefinitionId",
            format!("The role definition ID '{guid}' is not valid. The role definition ID must be a GUID."),
        ));
    }
    if roles::by_guid(guid).is_some() {
        return Err(Reply::arm_error(
            403,
            "BuiltInRoleDefinitionCannotBeModified",
            "Built-in role definitions cannot be created, modified or deleted.",
        ));
    }
    let body = body_object(ctx)?;
    let Some(Value::Object(props)) = body.get("properties") else {
        return Err(bad_content("Required property 'properties' not found in JSON."));
    };
    let Some(role_name) = props.get("roleName").and_then(Value::as_str).filter(|n| !n.trim().is_empty()) else {
        return Err(bad_content("Required property 'roleName' not found in JSON."));
    };
    let assignable = strings(props.get("assignableScopes")).filter(|s| !s.is_empty()).ok_or_else(|| {
        Reply::arm_error(400, "InvalidAssignableScopes", "At least one assignable scope must be specified.")
    })?;
    let permissions: Vec<Value> = match props.get("permissions") {
        Some(Value::Array(blocks)) => blocks.iter().map(complete_permissions).collect(),
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err(bad_content("'permissions' must be an array.")),
    };
    if let Some(other) = t.role_definitions.iter().find(|r| eq_ci(&r.role_name, role_name) && !eq_ci(&r.name, guid)) {
        return Err(Reply::arm_error(
            409,
            "RoleDefinitionWithSameNameExists",
            format!(
                "A custom role with the same name already exists in this directory (role definition '{}'). Use a different name.",
                other.name
            ),
        ));
    }
    let description = props.get("description").and_then(Value::as_str).unwrap_or_default().to_owned();
    let now = ctx.now_ms;
    // Azure stamps `updatedOn` when the write commits, a moment after the request arrived.
    let committed = iso8601_ticks(now + 1);
    let existing = t.role_definitions.iter().position(|r| eq_ci(&r.name, guid));
    if existing.is_none() && t.role_definitions.len() >= CUSTOM_ROLE_LIMIT {
        return Err(Reply::arm_error(
            400,
            "RoleDefinitionLimitExceeded",
            format!(
                "Role definition limit exceeded. No more role definitions can be created: a tenant holds at most {CUSTOM_ROLE_LIMIT} custom roles."
            ),
        ));
    }
    let record = CustomRole {
        name: guid.to_ascii_lowercase(),
        role_name: role_name.to_owned(),
        description,
        permissions,
        assignable_scopes: assignable,
        created_on: existing.map_or_else(|| committed.clone(), |i| t.role_definitions[i].created_on.clone()),
        updated_on: committed,
        created_by: existing.map_or_else(|| caller(ctx), |i| t.role_definitions[i].created_by.clone()),
        updated_by: caller(ctx),
    };
    let reply = Reply::json(201, custom_json(&record, scope, Some(now)));
    match existing {
        Some(i) => t.role_definitions[i] = record,
        None => t.role_definitions.push(record),
    }
    Ok(reply)
}

/// A permission block as Azure stores it: all four lists present.
fn complete_permissions(block: &Value) -> Value {
    let mut b = block.as_object().cloned().unwrap_or_default();
    for k in ["actions", "notActions", "dataActions", "notDataActions"] {
        b.entry(k).or_insert(json!([]));
    }
    Value::Object(b)
}

/// `DELETE`: 200 with the role as it was (its `updatedOn` the time of the delete), 204 when
/// there is none; refused while assignments use it.
fn delete(ctx: &Ctx, t: &mut Tenant, scope: &str, guid: &str) -> Result<Reply, Reply> {
    let Some(i) = t.role_definitions.iter().position(|r| eq_ci(&r.name, guid)) else {
        return Ok(Reply::empty(204));
    };
    if t.role_assignments.iter().any(|a| eq_ci(roles::guid_of(&a.role_definition_id), guid)) {
        return Err(Reply::arm_error(
            409,
            "RoleDefinitionHasAssignments",
            "There are existing role assignments referencing role. Remove the role assignments first.",
        ));
    }
    let mut gone = t.role_definitions.remove(i);
    gone.updated_on = iso8601_ticks(ctx.now_ms);
    Ok(Reply::json(200, custom_json(&gone, scope, None)))
}
