//! Role assignments (`2022-04-01`) at any scope: scope ancestry, `$filter`
//! parsing, tenant-wide assignment names, `RoleAssignmentExists`, `RoleAssignmentUpdateNotPermitted`
//! and `PrincipalNotFound` with the replication delay.

use super::{
    Ctx, ML_PROVIDER, MSI_TYPE, RA_TYPE, Reply, Shared, Tenant, Value, bad_content, body_object, eq_ci, is_guid,
    iso8601_ticks, json, listed, method_not_allowed, not_found, page_with, rg_check, roles, subscription_check,
};

/// The non-empty segments of a scope, as written.
fn segments(scope: &str) -> impl Iterator<Item = &str> {
    scope.split('/').filter(|s| !s.is_empty())
}

/// Whether a scope is a management group or under one (case-insensitive).
fn under_management_groups(scope: &str) -> bool {
    // Most scopes are under `/subscriptions`: rule them out before splitting.
    if !scope.trim_start_matches('/').starts_with(['p', 'P']) {
        return false;
    }
    let mut s = segments(scope);
    matches!(
        (s.next(), s.next(), s.next()),
        (Some(a), Some(b), Some(c)) if a.eq_ignore_ascii_case("providers")
            && b.eq_ignore_ascii_case("microsoft.management")
            && c.eq_ignore_ascii_case("managementgroups")
    )
}

/// Whether the segments of `a` are a prefix of those of `b` (case-insensitive); with
/// `exact`, whether they are all of them.
fn segment_prefix(a: &str, b: &str, exact: bool) -> bool {
    let mut sb = segments(b);
    for x in segments(a) {
        match sb.next() {
            Some(y) if x.eq_ignore_ascii_case(y) => {}
            _ => return false,
        }
    }
    !exact || sb.next().is_none()
}

/// True when `a` is `b` or one of its ancestors (management groups sit above every subscription).
/// Called for every assignment of a list, so it compares segments in place.
pub(super) fn is_ancestor_or_self(a: &str, b: &str) -> bool {
    if under_management_groups(a) {
        return segment_prefix(a, b, true) || !under_management_groups(b);
    }
    segment_prefix(a, b, false)
}

pub(super) fn scope_check(shared: &Shared, ctx: &Ctx, t: &mut Tenant, scope: &str) -> Result<(), Reply> {
    let parts: Vec<&str> = scope.split('/').filter(|s| !s.is_empty()).collect();
    if parts.is_empty() || under_management_groups(scope) {
        return Ok(());
    }
    if !eq_ci(parts[0], "subscriptions") || parts.len() < 2 {
        return Err(Reply::arm_error(400, "InvalidScope", format!("The scope '{scope}' is not valid.")));
    }
    subscription_check(shared, ctx, t, parts[1])?;
    if parts.len() >= 4 && eq_ci(parts[2], "resourceGroups") {
        rg_check(ctx, t, parts[1], parts[3])?;
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
                    eq_ci(&i.subscription, parts[1]) && eq_ci(&i.resource_group, parts[3]) && eq_ci(&i.name, parts[7])
                }))
            } else {
                None
            };
            if exists == Some(false) {
                return Err(not_found(&ns_type, parts[7], parts[3]));
            }
        }
    } else if parts.len() > 2 && !eq_ci(parts[2], "providers") {
        return Err(Reply::arm_error(400, "InvalidScope", format!("The scope '{scope}' is not valid.")));
    }
    Ok(())
}

/// Parses `a eq 'b'` into (a, b), undoubling `''`.
pub(super) fn eq_clause(clause: &str) -> Option<(String, String)> {
    let (lhs, rhs) = clause.split_once(" eq ")?;
    let rhs = rhs.trim();
    let value = rhs.strip_prefix('\'')?.strip_suffix('\'')?.replace("''", "'");
    Some((lhs.trim().to_owned(), value))
}

pub(super) fn split_and(filter: &str) -> Vec<String> {
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
        if !in_quote && chars[i..].iter().take(5).collect::<String>().eq_ignore_ascii_case(" and ") {
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

pub(super) fn unsupported_filter(filter: &str) -> Reply {
    Reply::arm_error(400, "UnsupportedQuery", format!("The filter '{filter}' is not supported."))
}

pub(super) fn assignment_json(r: &crate::state::RoleAssignment) -> Value {
    assignment_json_at(r, None)
}

/// The JSON of a role assignment; `fresh` is the answer to the PUT that wrote it, which carries
/// the request's arrival time as `createdOn` and no `createdBy` yet, as Azure's does (reads
/// show the commit time and the creator).
pub(super) fn assignment_json_at(r: &crate::state::RoleAssignment, fresh: Option<u64>) -> Value {
    let (created_on, created_by) = match fresh {
        Some(now) => (iso8601_ticks(now), None),
        None => (r.created_on.clone(), r.created_by.as_deref()),
    };
    let prefix = if r.scope == "/" { String::new() } else { r.scope.clone() };
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
            "createdOn": created_on,
            "updatedOn": r.updated_on,
            "createdBy": created_by,
            "updatedBy": r.updated_by.as_ref().or(r.created_by.as_ref()),
            "delegatedManagedIdentityResourceId": null,
            "description": r.description,
        }
    })
}

pub(super) fn normalize_scope(scope: &str) -> String {
    normalized(scope).to_owned()
}

/// [`normalize_scope`] without a copy, for comparisons over every assignment.
fn normalized(scope: &str) -> &str {
    let trimmed = scope.trim_end_matches('/');
    if trimmed.is_empty() { "/" } else { trimmed }
}

pub(super) fn list_role_assignments(shared: &Shared, ctx: &Ctx, t: &Tenant, scope: &str) -> Result<Reply, Reply> {
    let scope = normalize_scope(scope);
    let mut at_scope = false;
    let mut principals: Option<Vec<String>> = None;
    if let Some(filter) = ctx.q("$filter") {
        for clause in split_and(filter) {
            if eq_ci(&clause, "atScope()") {
                at_scope = true;
            } else if let Some((k, v)) = eq_clause(&clause).filter(|(k, _)| eq_ci(k, "principalId")) {
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
    let matching: Vec<&crate::state::RoleAssignment> = t
        .role_assignments
        .iter()
        .filter(|r| is_ancestor_or_self(&r.scope, &scope) || (!at_scope && is_ancestor_or_self(&scope, &r.scope)))
        .filter(|r| principals.as_ref().is_none_or(|ps| ps.iter().any(|p| eq_ci(p, &r.principal_id))))
        .collect();
    // Only the page's assignments become JSON: a list of 10,000 answers in pages of 1,000.
    Ok(page_with(shared, ctx, matching.len(), "$skipToken", |range| {
        matching[range].iter().map(|r| assignment_json(r)).collect()
    }))
}

pub(super) fn role_assignment(
    shared: &Shared,
    ctx: &Ctx,
    t: &mut Tenant,
    scope: &str,
    name: &str,
) -> Result<Reply, Reply> {
    let scope = normalize_scope(scope);
    let at = |r: &crate::state::RoleAssignment| eq_ci(&r.name, name) && eq_ci(normalized(&r.scope), &scope);
    match ctx.method.as_str() {
        "GET" => {
            t.role_assignments.iter().find(|r| at(r)).map(|r| Reply::json(200, assignment_json(r))).ok_or_else(|| {
                Reply::arm_error(404, "RoleAssignmentNotFound", format!("The role assignment '{name}' is not found."))
            })
        }
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

pub(super) fn put_role_assignment(
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
            format!("The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID."),
        ));
    }
    let body = body_object(ctx)?;
    let Some(Value::Object(props)) = body.get("properties") else {
        return Err(bad_content("Required property 'properties' not found in JSON."));
    };
    let text = |k: &str| props.get(k).and_then(Value::as_str).map(str::to_owned).filter(|s| !s.is_empty());
    let Some(role_id) = text("roleDefinitionId") else {
        return Err(bad_content("Required property 'roleDefinitionId' not found in JSON."));
    };
    let Some(principal) = text("principalId") else {
        return Err(bad_content("Required property 'principalId' not found in JSON."));
    };
    let role_guid = roles::guid_of(&role_id).to_owned();
    if !super::role_definitions::role_exists_at(t, &role_guid, scope) {
        return Err(Reply::arm_error(
            400,
            "RoleDefinitionDoesNotExist",
            format!("The specified role definition with ID '{role_guid}' does not exist."),
        ));
    }
    let given_type = text("principalType");
    let object = t.directory_object(&principal).filter(|(_, created)| shared.replicated(*created, ctx.now_ms));
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
        // Without `principalType`, ARM looks the principal up in the directory and fills it in
        // (a managed identity is a `ServicePrincipal`).
        (None, Some((kind, _))) => principal_type_of(kind).to_owned(),
        (Some(given), _) => {
            let Some(canonical) =
                ["User", "Group", "ServicePrincipal", "ForeignGroup", "Device"].into_iter().find(|k| eq_ci(k, given))
            else {
                return Err(bad_content(&format!("Error converting value \"{given}\" to type 'PrincipalType'.")));
            };
            canonical.to_owned()
        }
    };
    if let Some((kind, _)) = object {
        let actual = principal_type_of(kind);
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
        let same = eq_ci(normalized(&existing.scope), scope)
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
        existing.updated_on = iso8601_ticks(ctx.now_ms + 1);
        existing.updated_by = ctx.caller.as_ref().map(|c| c.oid.clone());
        // ARM answers every successful PUT of an assignment with 201, an update included.
        return Ok(Reply::json(201, assignment_json_at(existing, Some(ctx.now_ms))));
    }
    if let Some(dup) = t.role_assignments.iter().find(|r| {
        eq_ci(&r.principal_id, &principal)
            && eq_ci(roles::guid_of(&r.role_definition_id), &role_guid)
            && eq_ci(normalized(&r.scope), scope)
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
    limit_check(t, scope)?;
    // Azure stamps the assignment when the write commits, a moment after the request arrived.
    let now = iso8601_ticks(ctx.now_ms + 1);
    let record = crate::state::RoleAssignment {
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
        updated_by: None,
    };
    let reply = Reply::json(201, assignment_json_at(&record, Some(ctx.now_ms)));
    t.role_assignments.push(record);
    Ok(reply)
}

/// Azure's fixed limit of role assignments per subscription: at the subscription, its resource
/// groups and resources (not management groups).
pub(crate) const SUBSCRIPTION_ASSIGNMENT_LIMIT: usize = 4_000;
/// Azure's fixed limit of role assignments at one management group.
pub(crate) const MANAGEMENT_GROUP_ASSIGNMENT_LIMIT: usize = 500;

/// Refuses a new assignment that would take its subscription (or management group) past
/// Azure's limit, with Azure's `RoleAssignmentLimitExceeded`.
fn limit_check(t: &Tenant, scope: &str) -> Result<(), Reply> {
    let (count, limit) = if under_management_groups(scope) {
        let n = t.role_assignments.iter().filter(|r| segment_prefix(scope, &r.scope, true)).count();
        (n, MANAGEMENT_GROUP_ASSIGNMENT_LIMIT)
    } else if let Some(sub) = roles::subscription_of(scope) {
        let n = t
            .role_assignments
            .iter()
            .filter(|r| roles::subscription_of(&r.scope).is_some_and(|s| eq_ci(s, sub)))
            .count();
        (n, SUBSCRIPTION_ASSIGNMENT_LIMIT)
    } else {
        return Ok(());
    };
    if count < limit {
        return Ok(());
    }
    Err(Reply::arm_error(400, "RoleAssignmentLimitExceeded", "No more role assignments can be created."))
}

/// The `principalType` ARM records for a directory object.
fn principal_type_of(kind: crate::state::ObjectKind) -> &'static str {
    match kind {
        crate::state::ObjectKind::User => "User",
        crate::state::ObjectKind::Group => "Group",
        _ => "ServicePrincipal",
    }
}
