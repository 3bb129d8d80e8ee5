//! Questions about membership, answered through nested groups: an object's `memberOf` and
//! `transitiveMemberOf`, a group's `transitiveMembers` (collections of objects, optionally
//! cast: `transitiveMemberOf/microsoft.graph.group`), and the actions `getMemberGroups`,
//! `getMemberObjects` and `checkMemberGroups` (lists of ids).

use serde_json::{Value, json};

use super::super::state::Tenant;
use super::super::util::eq_ci;
use super::super::{Ctx, Reply, Shared};
use super::groups::related;
use super::{body_object, context_url, no_route, not_found};

/// Questions about an object's groups and a group's members, answered through nesting.
pub(super) const MEMBERSHIP_QUERIES: &[&str] = &[
    "memberof",
    "transitivememberof",
    "transitivemembers",
    "getmembergroups",
    "getmemberobjects",
    "checkmembergroups",
];

/// `memberOf`, `transitiveMemberOf`, `transitiveMembers` (GET, collections of objects) and
/// `getMemberGroups`, `getMemberObjects`, `checkMemberGroups` (POST, lists of ids).
pub(super) fn membership_query(
    shared: &Shared,
    ctx: &Ctx,
    t: &Tenant,
    entity: &str,
    key: &str,
    query: &str,
    cast: Option<&str>,
) -> Result<Reply, Reply> {
    let id = match entity {
        "users" => t.find_user(key).map(|at| t.users[at].id.clone()),
        _ => t.find_object(key).map(|_| key.to_owned()),
    }
    .filter(|id| t.directory_object(id).is_some_and(|(_, c)| shared.replicated(c, ctx.now_ms)))
    .ok_or_else(|| not_found(ctx, key))?;
    let objects = |ids: Vec<String>| -> Reply { related(shared, ctx, t, &ids, cast) };
    let ids = |value: Vec<String>| -> Reply {
        Reply::json(200, json!({ "@odata.context": context_url(shared, "Collection(Edm.String)"), "value": value }))
    };
    match (ctx.method.as_str(), query) {
        ("GET", "memberof") => Ok(objects(
            t.groups.iter().filter(|g| g.members.iter().any(|m| eq_ci(m, &id))).map(|g| g.id.clone()).collect(),
        )),
        ("GET", "transitivememberof") => Ok(objects(t.transitive_groups(&id))),
        ("GET", "transitivemembers") if entity == "groups" => Ok(objects(transitive_members(t, &id))),
        _ if cast.is_some() && ctx.method != "GET" => Err(no_route(ctx)),
        ("POST", "getmembergroups" | "getmemberobjects") => {
            let body = body_object(ctx)?;
            let security_only = body.get("securityEnabledOnly").and_then(Value::as_bool).unwrap_or(false);
            let groups = t
                .transitive_groups(&id)
                .into_iter()
                .filter(|g| !security_only || t.groups.iter().any(|x| eq_ci(&x.id, g) && x.security_enabled))
                .collect();
            Ok(ids(groups))
        }
        ("POST", "checkmembergroups") => {
            let body = body_object(ctx)?;
            let asked: Vec<String> = body
                .get("groupIds")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default();
            let mine = t.transitive_groups(&id);
            Ok(ids(asked.into_iter().filter(|g| mine.iter().any(|m| eq_ci(m, g))).collect()))
        }
        _ => Err(no_route(ctx)),
    }
}

/// Every member of a group, through nested groups (each once).
pub(super) fn transitive_members(t: &Tenant, group: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut frontier = vec![group.to_owned()];
    while let Some(g) = frontier.pop() {
        let Some(members) = t.groups.iter().find(|x| eq_ci(&x.id, &g)).map(|x| &x.members) else { continue };
        for m in members {
            if !found.iter().any(|f| eq_ci(f, m)) && !eq_ci(m, group) {
                found.push(m.clone());
                frontier.push(m.clone());
            }
        }
    }
    found
}
