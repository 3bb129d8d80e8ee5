//! The Microsoft Graph v1.0 surface: groups (create, upsert by `uniqueName`, update, delete,
//! members and owners with `$ref`), users, service principals, applications (with
//! `addPassword`), directory objects and JSON `$batch`. Lists support `$filter` (`eq`,
//! `startswith`), `$select`, `$top` and `@odata.nextLink` paging; errors carry `innerError`.
//! Objects created less than the replication delay ago answer 404 to reads by id and cannot be
//! added as members yet (`replication_delay_ms` in `docs/emulator.md`).

use serde_json::{Map, Value, json};

use super::realism::{BucketKind, Counter, Realism};
use super::state::{Application, Group, ObjectKind, PasswordCredential, ServicePrincipal, Tenant, User};
use super::util::{decode_skip_token, encode_skip_token, eq_ci, is_guid, iso8601_secs};
use super::{Ctx, Reply, ReplyBody, Shared, lock, throttle};

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

fn created_time(ms: u64) -> String {
    if ms == 0 { "2024-01-01T00:00:00Z".to_owned() } else { iso8601_secs(ms) }
}

/// A user with Graph v1.0's default property set (`$select` picks from the same names).
fn user_json(u: &User) -> Value {
    json!({
        "id": u.id,
        "businessPhones": [],
        "displayName": u.display_name,
        "givenName": null,
        "jobTitle": null,
        "mail": u.mail,
        "mobilePhone": null,
        "officeLocation": null,
        "preferredLanguage": null,
        "surname": null,
        "userPrincipalName": u.user_principal_name,
    })
}

/// A group with Graph v1.0's default property set; unset properties are `null` or `[]`, as
/// Graph returns them. `uniqueName` is the client-provided key mlpolicy upserts by.
fn group_json(g: &Group) -> Value {
    json!({
        "id": g.id,
        "deletedDateTime": null,
        "classification": null,
        "createdDateTime": created_time(g.created_ms),
        "creationOptions": [],
        "description": g.description,
        "displayName": g.display_name,
        "expirationDateTime": null,
        "groupTypes": g.group_types,
        "isAssignableToRole": null,
        "mail": null,
        "mailEnabled": g.mail_enabled,
        "mailNickname": g.mail_nickname,
        "membershipRule": null,
        "membershipRuleProcessingState": null,
        "onPremisesDomainName": null,
        "onPremisesLastSyncDateTime": null,
        "onPremisesNetBiosName": null,
        "onPremisesSamAccountName": null,
        "onPremisesSecurityIdentifier": null,
        "onPremisesSyncEnabled": null,
        "preferredDataLocation": null,
        "preferredLanguage": null,
        "proxyAddresses": [],
        "renewedDateTime": created_time(g.created_ms),
        "resourceBehaviorOptions": [],
        "resourceProvisioningOptions": [],
        "securityEnabled": g.security_enabled,
        "securityIdentifier": security_identifier(&g.id),
        "theme": null,
        "uniqueName": g.unique_name,
        "visibility": null,
        "onPremisesProvisioningErrors": [],
        "serviceProvisioningErrors": [],
    })
}

/// A group's `securityIdentifier`: `S-1-12-1-` and the object id's 16 bytes (in .NET's GUID
/// byte order) as four little-endian 32-bit numbers.
fn security_identifier(id: &str) -> Value {
    let hex: String = id.chars().filter(char::is_ascii_hexdigit).collect();
    if hex.len() != 32 {
        return Value::Null;
    }
    let word = |from: usize| u32::from_str_radix(&hex[from..from + 8], 16).unwrap_or(0);
    let half = |from: usize| u32::from_str_radix(&hex[from..from + 4], 16).unwrap_or(0);
    let d4 = |from: usize| word(from).swap_bytes();
    json!(format!("S-1-12-1-{}-{}-{}-{}", word(0), half(8) | (half(12) << 16), d4(16), d4(24)))
}

/// Graph's `verifiedPublisher` and `info` blocks when nothing is set.
fn unset_publisher() -> Value {
    json!({ "displayName": null, "verifiedPublisherId": null, "addedDateTime": null })
}

fn unset_info() -> Value {
    json!({ "logoUrl": null, "marketingUrl": null, "privacyStatementUrl": null, "supportUrl": null, "termsOfServiceUrl": null })
}

/// A service principal with Graph v1.0's default property set.
fn sp_json(s: &ServicePrincipal, tenant: &str) -> Value {
    let managed = s.service_principal_type == "ManagedIdentity";
    json!({
        "id": s.id,
        "deletedDateTime": null,
        "accountEnabled": true,
        "alternativeNames": s.alternative_names,
        "appDisplayName": s.display_name,
        "appDescription": null,
        "appId": s.app_id,
        "applicationTemplateId": null,
        "appOwnerOrganizationId": if managed { Value::Null } else { json!(tenant) },
        "appRoleAssignmentRequired": false,
        "createdDateTime": created_time(s.created_ms),
        "description": null,
        "disabledByMicrosoftStatus": null,
        "displayName": s.display_name,
        "homepage": null,
        "loginUrl": null,
        "logoutUrl": null,
        "notes": null,
        "notificationEmailAddresses": [],
        "preferredSingleSignOnMode": null,
        "preferredTokenSigningKeyThumbprint": null,
        "replyUrls": [],
        "servicePrincipalNames": [s.app_id],
        "servicePrincipalType": s.service_principal_type,
        "signInAudience": if managed { Value::Null } else { json!("AzureADMyOrg") },
        "tags": [],
        "tokenEncryptionKeyId": null,
        "samlSingleSignOnSettings": null,
        "verifiedPublisher": unset_publisher(),
        "addIns": [],
        "appRoles": [],
        "info": unset_info(),
        "keyCredentials": [],
        "oauth2PermissionScopes": [],
        "passwordCredentials": s.password_credentials.iter().map(|p| password_json(p, false)).collect::<Vec<_>>(),
        "resourceSpecificApplicationPermissions": [],
    })
}

fn password_json(p: &PasswordCredential, with_secret: bool) -> Value {
    json!({
        "customKeyIdentifier": null,
        "displayName": p.display_name,
        "endDateTime": p.end_date_time,
        "hint": p.secret_text.chars().take(3).collect::<String>(),
        "keyId": p.key_id,
        "secretText": if with_secret { json!(p.secret_text) } else { Value::Null },
        "startDateTime": p.start_date_time,
    })
}

/// An application with Graph v1.0's default property set; secret text is never returned here
/// (only `addPassword` answers it, once).
fn app_json(a: &Application) -> Value {
    json!({
        "id": a.id,
        "deletedDateTime": null,
        "appId": a.app_id,
        "applicationTemplateId": null,
        "disabledByMicrosoftStatus": null,
        "createdDateTime": created_time(a.created_ms),
        "displayName": a.display_name,
        "description": null,
        "groupMembershipClaims": null,
        "identifierUris": [],
        "isDeviceOnlyAuthSupported": null,
        "isFallbackPublicClient": null,
        "notes": null,
        "publisherDomain": null,
        "serviceManagementReference": null,
        "signInAudience": "AzureADMyOrg",
        "tags": [],
        "tokenEncryptionKeyId": null,
        "samlMetadataUrl": null,
        "defaultRedirectUri": null,
        "certification": null,
        "optionalClaims": null,
        "servicePrincipalLockConfiguration": null,
        "requestSignatureVerification": null,
        "addIns": [],
        "api": {
            "acceptMappedClaims": null,
            "knownClientApplications": [],
            "requestedAccessTokenVersion": null,
            "oauth2PermissionScopes": [],
            "preAuthorizedApplications": [],
        },
        "appRoles": [],
        "info": unset_info(),
        "keyCredentials": [],
        "parentalControlSettings": { "countriesBlockedForMinors": [], "legalAgeGroupRule": "Allow" },
        "passwordCredentials": a.password_credentials.iter().map(|p| password_json(p, false)).collect::<Vec<_>>(),
        "publicClient": { "redirectUris": [] },
        "requiredResourceAccess": [],
        "verifiedPublisher": unset_publisher(),
        "web": {
            "homePageUrl": null,
            "logoutUrl": null,
            "redirectUris": [],
            "implicitGrantSettings": { "enableAccessTokenIssuance": false, "enableIdTokenIssuance": false },
            "redirectUriSettings": [],
        },
        "spa": { "redirectUris": [] },
    })
}

/// JSON of any directory object, tagged with `@odata.type`.
fn object_json(t: &Tenant, id: &str) -> Option<Value> {
    let (kind, at) = t.find_object(id)?;
    let mut v = match kind {
        ObjectKind::User => user_json(&t.users[at]),
        ObjectKind::Group => group_json(&t.groups[at]),
        ObjectKind::ServicePrincipal => sp_json(&t.service_principals[at], &t.tenant_id),
        ObjectKind::Application => app_json(&t.applications[at]),
    };
    if let Value::Object(m) = &mut v {
        m.insert("@odata.type".into(), json!(kind.odata_type()));
    }
    Some(v)
}

fn context_url(shared: &Shared, what: &str) -> String {
    format!("{}/v1.0/$metadata#{what}", shared.base_url)
}

/// Applies `$select`, keeping `@odata.*` annotations.
fn select(ctx: &Ctx, v: Value) -> Value {
    let Some(sel) = ctx.q("$select") else {
        return v;
    };
    let wanted: Vec<&str> = sel.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter().filter(|(k, _)| k.starts_with("@odata") || wanted.iter().any(|w| eq_ci(w, k))).collect(),
        ),
        other => other,
    }
}

fn single(shared: &Shared, ctx: &Ctx, entity: &str, v: Value) -> Reply {
    let mut v = select(ctx, v);
    if let Value::Object(m) = &mut v {
        m.insert("@odata.context".into(), json!(context_url(shared, &format!("{entity}/$entity"))));
    }
    Reply::json(200, v)
}

#[derive(Debug)]
enum Clause {
    Eq(String, Value),
    StartsWith(String, String),
    /// `prop in ('a', 'b')`.
    In(String, Vec<Value>),
    /// A lambda over a collection: `servicePrincipalNames/any(c:c eq 'x')`.
    Any(String, Value),
}

impl Clause {
    fn property(&self) -> &str {
        let (Clause::Eq(p, _) | Clause::StartsWith(p, _) | Clause::In(p, _) | Clause::Any(p, _)) = self;
        p
    }
}

fn parse_literal(s: &str) -> Option<Value> {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        return Some(json!(inner.replace("''", "'")));
    }
    match s {
        "true" => Some(json!(true)),
        "false" => Some(json!(false)),
        "null" => Some(Value::Null),
        _ if is_guid(s) => Some(json!(s)),
        _ => None,
    }
}

fn parse_filter(filter: &str) -> Option<Vec<Clause>> {
    let mut out = Vec::new();
    for raw in split_and(filter) {
        let c = raw.trim();
        if c.get(..11).is_some_and(|p| p.eq_ignore_ascii_case("startswith(")) {
            let inner = c.get(11..)?.strip_suffix(')')?;
            let (prop, lit) = inner.split_once(',')?;
            let Value::String(v) = parse_literal(lit)? else {
                return None;
            };
            out.push(Clause::StartsWith(prop.trim().to_owned(), v));
        } else if let Some((prop, lambda)) = c.split_once("/any(").or_else(|| c.split_once("/ANY(")) {
            // `prop/any(x:x eq 'v')`: the variable, then a comparison of it.
            let body = lambda.strip_suffix(')')?;
            let (var, cond) = body.split_once(':')?;
            let (lhs, lit) = cond.split_once(" eq ")?;
            if lhs.trim() != var.trim() {
                return None;
            }
            out.push(Clause::Any(prop.trim().to_owned(), parse_literal(lit)?));
        } else if let Some((prop, list)) = c.split_once(" in ") {
            let inner = list.trim().strip_prefix('(')?.strip_suffix(')')?;
            let values = inner.split(',').map(parse_literal).collect::<Option<Vec<_>>>()?;
            out.push(Clause::In(prop.trim().to_owned(), values));
        } else {
            let (prop, lit) = c.split_once(" eq ")?;
            out.push(Clause::Eq(prop.trim().to_owned(), parse_literal(lit)?));
        }
    }
    Some(out)
}

fn split_and(filter: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let chars: Vec<char> = filter.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\'' {
            quoted = !quoted;
        }
        if !quoted && chars[i..].iter().take(5).collect::<String>().eq_ignore_ascii_case(" and ") {
            parts.push(std::mem::take(&mut current));
            i += 5;
            continue;
        }
        current.push(chars[i]);
        i += 1;
    }
    parts.push(current);
    parts
}

fn clause_matches(obj: &Value, clause: &Clause) -> bool {
    let get = |p: &str| obj.as_object().and_then(|m| m.iter().find(|(k, _)| eq_ci(k, p)).map(|(_, v)| v));
    match clause {
        Clause::Eq(p, Value::String(s)) => get(p).and_then(|v| v.as_str().map(|x| eq_ci(x, s))).unwrap_or(false),
        Clause::Eq(p, v) => get(p) == Some(v),
        Clause::StartsWith(p, s) => get(p)
            .and_then(|v| v.as_str().map(|x| x.to_ascii_lowercase().starts_with(&s.to_ascii_lowercase())))
            .unwrap_or(false),
        Clause::In(p, values) => values.iter().any(|v| clause_matches(obj, &Clause::Eq(p.clone(), v.clone()))),
        Clause::Any(p, v) => get(p).and_then(Value::as_array).is_some_and(|items| {
            items.iter().any(|item| match (item, v) {
                (Value::String(a), Value::String(b)) => eq_ci(a, b),
                (a, b) => a == b,
            })
        }),
    }
}

/// Filters, pages and wraps a collection.
fn collection(
    shared: &Shared,
    ctx: &Ctx,
    entity: &str,
    resource: &str,
    filterable: &[&str],
    items: Vec<Value>,
) -> Reply {
    let mut items = items;
    if let Some(filter) = ctx.q("$filter") {
        let Some(clauses) = parse_filter(filter) else {
            return Reply::graph_error(ctx, 400, "BadRequest", format!("Invalid filter clause: {filter}"));
        };
        for c in &clauses {
            let p = c.property();
            if !filterable.iter().any(|f| eq_ci(f, p)) {
                return Reply::graph_error(
                    ctx,
                    400,
                    "Request_UnsupportedQuery",
                    format!(
                        "Unsupported or invalid query filter clause specified for property '{p}' of resource '{resource}'."
                    ),
                );
            }
        }
        items.retain(|o| clauses.iter().all(|c| clause_matches(o, c)));
    }
    let mut size = shared.realism().page();
    if let Some(top) = ctx.q("$top") {
        match top.parse::<usize>() {
            Ok(n) if (1..=999).contains(&n) => size = n,
            _ => {
                return bad_request(
                    ctx,
                    format!("Invalid page size specified: '{top}'. Must be between 1 and 999 inclusive."),
                );
            }
        }
    }
    let offset = match ctx.q("$skiptoken") {
        None => 0,
        Some(t) => match decode_skip_token(t) {
            Some(o) => o,
            None => {
                return Reply::graph_error(
                    ctx,
                    400,
                    "Directory_ExpiredPageToken",
                    "The specified page token value has expired and can no longer be included in your request.",
                );
            }
        },
    };
    let end = offset.saturating_add(size).min(items.len());
    let page: Vec<Value> = items.drain(offset.min(end)..end).map(|v| select(ctx, v)).collect();
    // Built by hand: `json!` would copy every item through `to_value`.
    let mut body = Map::new();
    body.insert("@odata.context".to_owned(), json!(context_url(shared, entity)));
    body.insert("value".to_owned(), Value::Array(page));
    let mut body = Value::Object(body);
    if size > 0 && end.saturating_sub(offset) == size {
        body["@odata.nextLink"] = json!(ctx.next_link(&shared.base_url, "$skiptoken", &encode_skip_token(end)));
    }
    Reply::json(200, body)
}

/// Parses `name(key='value')` into (name, key, value).
fn alternate_key(seg: &str) -> Option<(String, String, String)> {
    let (name, rest) = seg.split_once('(')?;
    let inner = rest.strip_suffix(')')?;
    let (k, v) = inner.split_once('=')?;
    let v = v.trim().strip_prefix('\'')?.strip_suffix('\'')?.replace("''", "'");
    Some((name.to_owned(), k.trim().to_owned(), v))
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

/// Routes a Graph request to the handler of its resource collection.
fn route(shared: &Shared, ctx: &Ctx, t: &mut Tenant) -> Result<Reply, Reply> {
    if let Some(first) = ctx.segs.get(1)
        && let Some((entity, key, value)) = alternate_key(first)
    {
        return by_alternate_key(shared, ctx, t, &entity, &key, &value);
    }
    let lower: Vec<String> = ctx.segs.iter().skip(1).map(|s| s.to_ascii_lowercase()).collect();
    let path: Vec<&str> = lower.iter().map(String::as_str).collect();
    let method = ctx.method.as_str();
    if let [entity, id, query] = path.as_slice()
        && matches!(*entity, "users" | "groups" | "serviceprincipals" | "directoryobjects")
        && MEMBERSHIP_QUERIES.contains(query)
    {
        return membership_query(shared, ctx, t, entity, id, query);
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

/// Questions about an object's groups and a group's members, answered through nesting.
const MEMBERSHIP_QUERIES: &[&str] = &[
    "memberof",
    "transitivememberof",
    "transitivemembers",
    "getmembergroups",
    "getmemberobjects",
    "checkmembergroups",
];

/// `memberOf`, `transitiveMemberOf`, `transitiveMembers` (GET, collections of objects) and
/// `getMemberGroups`, `getMemberObjects`, `checkMemberGroups` (POST, lists of ids).
fn membership_query(
    shared: &Shared,
    ctx: &Ctx,
    t: &Tenant,
    entity: &str,
    key: &str,
    query: &str,
) -> Result<Reply, Reply> {
    let id = match entity {
        "users" => t.find_user(key).map(|at| t.users[at].id.clone()),
        _ => t.find_object(key).map(|_| key.to_owned()),
    }
    .filter(|id| t.directory_object(id).is_some_and(|(_, c)| shared.replicated(c, ctx.now_ms)))
    .ok_or_else(|| not_found(ctx, key))?;
    let objects = |ids: Vec<String>| -> Reply {
        let items = ids.iter().filter_map(|g| object_json(t, g)).collect();
        collection(shared, ctx, "directoryObjects", "DirectoryObject", &["id", "displayName"], items)
    };
    let ids = |value: Vec<String>| -> Reply {
        Reply::json(200, json!({ "@odata.context": context_url(shared, "Collection(Edm.String)"), "value": value }))
    };
    match (ctx.method.as_str(), query) {
        ("GET", "memberof") => Ok(objects(
            t.groups.iter().filter(|g| g.members.iter().any(|m| eq_ci(m, &id))).map(|g| g.id.clone()).collect(),
        )),
        ("GET", "transitivememberof") => Ok(objects(t.transitive_groups(&id))),
        ("GET", "transitivemembers") if entity == "groups" => Ok(objects(transitive_members(t, &id))),
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
fn transitive_members(t: &Tenant, group: &str) -> Vec<String> {
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

/// The answer to a path no route serves: Graph names its first segment.
fn no_route(ctx: &Ctx) -> Reply {
    let first = ctx.segs.get(1).map_or("", String::as_str);
    Reply::graph_error(ctx, 400, "BadRequest", format!("Resource not found for the segment '{first}'."))
}

/// `/groups(uniqueName='…')`, `/servicePrincipals(appId='…')`, `/applications(appId='…')`.
fn by_alternate_key(
    shared: &Shared,
    ctx: &Ctx,
    t: &mut Tenant,
    entity: &str,
    key: &str,
    value: &str,
) -> Result<Reply, Reply> {
    let id = resolve_alternate(t, entity, key, value);
    let alone = ctx.segs.len() == 2;
    match (entity.to_ascii_lowercase().as_str(), key.to_ascii_lowercase().as_str(), ctx.method.as_str(), alone) {
        ("groups", "uniquename", "PATCH", true) => upsert_group(shared, ctx, t, value, id),
        ("groups", "uniquename", "GET", true) => {
            id.map_or_else(|| Err(not_found(ctx, value)), |id| get_object(shared, ctx, t, "groups", &id))
        }
        ("serviceprincipals", "appid", "GET", true) => {
            id.map_or_else(|| Err(not_found(ctx, value)), |id| get_object(shared, ctx, t, "servicePrincipals", &id))
        }
        ("applications", "appid", "GET", true) => {
            id.map_or_else(|| Err(not_found(ctx, value)), |id| get_object(shared, ctx, t, "applications", &id))
        }
        _ => Err(no_route(ctx)),
    }
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

/// `/groups`, one group, and its `members` and `owners` (listed, added and removed by `$ref`).
fn groups(shared: &Shared, ctx: &Ctx, t: &mut Tenant, method: &str, path: &[&str]) -> Result<Reply, Reply> {
    match (method, path) {
        ("GET", ["groups"]) => {
            let items = t.groups.iter().map(group_json).collect();
            Ok(collection(
                shared,
                ctx,
                "groups",
                "Group",
                &["displayName", "uniqueName", "mailNickname", "securityEnabled", "mailEnabled", "id", "description"],
                items,
            ))
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
            remove_from_groups(t, &g.id);
            Ok(Reply::empty(204))
        }
        ("GET", ["groups", id, rel @ ("members" | "owners")]) => {
            let idx = visible_group(shared, ctx, t, id)?;
            let g = &t.groups[idx];
            let ids = if *rel == "members" { &g.members } else { &g.owners };
            let items = ids.iter().filter_map(|m| object_json(t, m)).collect();
            Ok(collection(shared, ctx, "directoryObjects", "DirectoryObject", &["id", "displayName"], items))
        }
        ("POST", ["groups", id, rel @ ("members" | "owners"), "$ref"]) => {
            let idx = visible_group(shared, ctx, t, id)?;
            let body = body_object(ctx)?;
            let Some(target) = body.get("@odata.id").and_then(Value::as_str) else {
                return Err(bad_request(ctx, "The request body must contain '@odata.id'."));
            };
            let member = target.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_owned();
            add_reference(shared, ctx, t, idx, rel, &member)?;
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

/// `/users` and one user, by id or `userPrincipalName`.
fn users(shared: &Shared, ctx: &Ctx, t: &mut Tenant, method: &str, path: &[&str]) -> Result<Reply, Reply> {
    match (method, path) {
        ("GET", ["users"]) => {
            let items = t.users.iter().map(user_json).collect();
            Ok(collection(shared, ctx, "users", "User", &["userPrincipalName", "displayName", "mail", "id"], items))
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
            remove_from_groups(t, &u.id);
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
fn service_principals(shared: &Shared, ctx: &Ctx, t: &mut Tenant, method: &str, path: &[&str]) -> Result<Reply, Reply> {
    match (method, path) {
        ("GET", ["serviceprincipals"]) => {
            let items = t.service_principals.iter().map(|s| sp_json(s, &t.tenant_id)).collect();
            Ok(collection(
                shared,
                ctx,
                "servicePrincipals",
                "ServicePrincipal",
                &["appId", "displayName", "servicePrincipalType", "id", "servicePrincipalNames"],
                items,
            ))
        }
        ("POST", ["serviceprincipals"]) => {
            let sp = new_service_principal(shared, ctx, t)?;
            let reply = created(shared, &t.tenant_id, "servicePrincipals", sp_json(&sp, &t.tenant_id));
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
            remove_from_groups(t, &sp.id);
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

/// `/applications`, one application, and its `addPassword` and `removePassword` actions.
fn applications(shared: &Shared, ctx: &Ctx, t: &mut Tenant, method: &str, path: &[&str]) -> Result<Reply, Reply> {
    let position =
        |t: &Tenant, id: &str| t.applications.iter().position(|a| eq_ci(&a.id, id)).ok_or_else(|| not_found(ctx, id));
    match (method, path) {
        ("GET", ["applications"]) => {
            let items = t.applications.iter().map(app_json).collect();
            Ok(collection(
                shared,
                ctx,
                "applications",
                "Application",
                &["appId", "displayName", "id", "identifierUris"],
                items,
            ))
        }
        ("POST", ["applications"]) => {
            let body = body_object(ctx)?;
            let Some(name) = body.get("displayName").and_then(Value::as_str).map(str::to_owned) else {
                return Err(bad_request(
                    ctx,
                    "Invalid value specified for property 'displayName' of resource 'Application'.",
                ));
            };
            let a = Application {
                id: shared.uuid(),
                app_id: shared.uuid(),
                display_name: name,
                password_credentials: Vec::new(),
                federated_credentials: Vec::new(),
                created_ms: ctx.now_ms,
            };
            let reply = created(shared, &t.tenant_id, "applications", app_json(&a));
            t.applications.push(a);
            Ok(reply)
        }
        ("GET", ["applications", id]) => get_object(shared, ctx, t, "applications", id),
        ("PATCH", ["applications", id]) => {
            let pos = position(t, id)?;
            let body = body_object(ctx)?;
            if let Some(name) = body.get("displayName").and_then(Value::as_str) {
                name.clone_into(&mut t.applications[pos].display_name);
            }
            Ok(Reply::empty(204))
        }
        ("DELETE", ["applications", id]) => {
            let pos = position(t, id)?;
            delete_application(t, pos);
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

/// Deletes an application with its service principals, and those from every group.
fn delete_application(t: &mut Tenant, pos: usize) {
    let a = t.applications.remove(pos);
    let sp_ids: Vec<String> =
        t.service_principals.iter().filter(|s| eq_ci(&s.app_id, &a.app_id)).map(|s| s.id.clone()).collect();
    t.service_principals.retain(|s| !eq_ci(&s.app_id, &a.app_id));
    for id in sp_ids {
        remove_from_groups(t, &id);
    }
}

/// `addPassword`: a new secret, shown once in the answer.
fn add_password(shared: &Shared, ctx: &Ctx, creds: &mut Vec<PasswordCredential>) -> Reply {
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
fn remove_password(ctx: &Ctx, creds: &mut Vec<PasswordCredential>) -> Result<(), Reply> {
    let body = body_object(ctx)?;
    let key = body.get("keyId").and_then(Value::as_str).unwrap_or_default().to_owned();
    let before = creds.len();
    creds.retain(|p| !eq_ci(&p.key_id, &key));
    if creds.len() == before {
        return Err(bad_request(ctx, format!("No password credential found with keyId '{key}'.")));
    }
    Ok(())
}

/// `/directoryObjects/getByIds` and one directory object.
fn directory_objects(shared: &Shared, ctx: &Ctx, t: &Tenant, method: &str, path: &[&str]) -> Result<Reply, Reply> {
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

fn remove_from_groups(t: &mut Tenant, id: &str) {
    for g in &mut t.groups {
        g.members.retain(|m| !eq_ci(m, id));
        g.owners.retain(|m| !eq_ci(m, id));
    }
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

fn create_group(
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

fn upsert_group(
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

fn add_reference(shared: &Shared, ctx: &Ctx, t: &mut Tenant, idx: usize, rel: &str, member: &str) -> Result<(), Reply> {
    if !is_guid(member) {
        return Err(bad_request(ctx, format!("Invalid object identifier '{member}'.")));
    }
    let Some((kind, created)) = t.directory_object(member) else {
        return Err(not_found(ctx, member));
    };
    if !shared.replicated(created, ctx.now_ms) {
        return Err(not_found(ctx, member));
    }
    if rel == "owners" && !matches!(kind, ObjectKind::User | ObjectKind::ServicePrincipal) {
        return Err(bad_request(ctx, "Only users and service principals can be owners of a group."));
    }
    let canonical = match t.find_object(member) {
        Some((k, at)) if k != ObjectKind::Application => t.object_id(k, at).unwrap_or(member).to_owned(),
        _ => member.to_owned(),
    };
    let g = &mut t.groups[idx];
    let list = if rel == "members" { &mut g.members } else { &mut g.owners };
    if list.iter().any(|m| eq_ci(m, member)) {
        return Err(bad_request(
            ctx,
            format!(
                "One or more added object references already exist for the following modified properties: '{rel}'."
            ),
        ));
    }
    list.push(canonical);
    Ok(())
}

/// One request of a `$batch`.
struct Item {
    id: String,
    method: String,
    url: String,
    headers: Map<String, Value>,
    body: Option<Value>,
    depends: Vec<String>,
}

/// Serves `POST /v1.0/$batch`.
pub async fn batch(shared: &Shared, ctx: &Ctx) -> Reply {
    if ctx.method != "POST" {
        return Reply::graph_error(ctx, 405, "Request_BadRequest", "The $batch endpoint only accepts POST.");
    }
    let items = match batch_items(ctx) {
        Ok(items) => items,
        Err(reply) => return reply,
    };
    let realism = shared.realism();
    let mut statuses: Vec<(String, u16)> = Vec::new();
    let mut responses: Vec<Value> = Vec::new();
    let mut pending: Vec<usize> = (0..items.len()).collect();
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .position(|&i| items[i].depends.iter().all(|d| statuses.iter().any(|(s, _)| eq_ci(s, d))))
            .unwrap_or(0);
        let item = &items[pending.remove(ready)];
        shared.stats.bump(Counter::GraphBatchItem);
        let failed_dep = item.depends.iter().any(|d| statuses.iter().all(|(s, st)| !eq_ci(s, d) || *st >= 400));
        let reply = batch_item_reply(shared, ctx, &realism, item, failed_dep).await;
        statuses.push((item.id.clone(), reply.status));
        responses.push(batch_entry(&item.id, reply));
    }
    lock(&shared.rng).shuffle(&mut responses);
    let mut body = Map::new();
    body.insert("responses".to_owned(), Value::Array(responses));
    Reply::json(200, Value::Object(body))
}

/// The requests of a `$batch` body: 1 to 20, with unique ids, a method and a URL each, a
/// `Content-Type` header with a body, and `dependsOn` naming requests of the batch.
fn batch_items(ctx: &Ctx) -> Result<Vec<Item>, Reply> {
    let invalid = |m: &str| Reply::graph_error(ctx, 400, "BadRequest", m.to_owned());
    let Ok(Value::Object(body)) = ctx.json() else {
        return Err(invalid("Invalid batch payload format."));
    };
    let Some(Value::Array(requests)) = body.get("requests") else {
        return Err(invalid("Invalid batch payload format."));
    };
    if requests.is_empty() {
        return Err(invalid("Invalid batch payload format. The batch must contain at least one request."));
    }
    if requests.len() > 20 {
        return Err(invalid("Invalid batch payload format. The number of requests in a batch must not exceed 20."));
    }
    let mut items: Vec<Item> = Vec::new();
    for r in requests {
        let Some(id) = r.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()) else {
            return Err(invalid("Invalid batch payload format. Every request needs a string 'id'."));
        };
        if items.iter().any(|i| eq_ci(&i.id, id)) {
            return Err(invalid(&format!("Invalid batch payload format. Request id '{id}' is duplicated.")));
        }
        let (Some(method), Some(url)) = (r.get("method").and_then(Value::as_str), r.get("url").and_then(Value::as_str))
        else {
            return Err(invalid(&format!("Invalid batch payload format. Request '{id}' needs 'method' and 'url'.")));
        };
        let headers = r.get("headers").and_then(Value::as_object).cloned().unwrap_or_default();
        let body = r.get("body").filter(|b| !b.is_null()).cloned();
        if body.is_some() && !headers.keys().any(|k| eq_ci(k, "content-type")) {
            return Err(invalid(&format!("Write request id : {id} does not contain Content-Type header or body.")));
        }
        let depends = r
            .get("dependsOn")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        items.push(Item {
            id: id.to_owned(),
            method: method.to_ascii_uppercase(),
            url: url.to_owned(),
            headers,
            body,
            depends,
        });
    }
    for i in &items {
        if let Some(missing) = i.depends.iter().find(|d| !items.iter().any(|j| eq_ci(&j.id, d))) {
            return Err(invalid(&format!(
                "Invalid batch payload format. Request '{}' depends on unknown request '{missing}'.",
                i.id
            )));
        }
    }
    Ok(items)
}

/// The answer to one batch request: 424 when a request it depends on failed, 400 for an
/// absolute or versioned URL, else the request served as if sent alone (throttled included).
async fn batch_item_reply(shared: &Shared, ctx: &Ctx, realism: &Realism, item: &Item, failed_dep: bool) -> Reply {
    if failed_dep {
        return Reply::graph_error(
            ctx,
            424,
            "FailedDependency",
            "The request could not be completed because a request it depends on failed.",
        );
    }
    if item.url.starts_with("http") || item.url.to_ascii_lowercase().starts_with("/v1.0") {
        return Reply::graph_error(
            ctx,
            400,
            "BadRequest",
            format!(
                "Invalid request URL '{}'. Batch request URLs must be relative, without the version segment.",
                item.url
            ),
        );
    }
    let mut headers = ctx.headers.clone();
    for (k, v) in &item.headers {
        if let (Ok(name), Some(Ok(val))) =
            (axum::http::HeaderName::from_bytes(k.as_bytes()), v.as_str().map(axum::http::HeaderValue::from_str))
        {
            headers.insert(name, val);
        }
    }
    let body = item.body.as_ref().map(Value::to_string).unwrap_or_default();
    let method = axum::http::Method::from_bytes(item.method.as_bytes()).unwrap_or(axum::http::Method::GET);
    let url = if item.url.starts_with('/') { item.url.clone() } else { format!("/{}", item.url) };
    let mut inner = Ctx::new(method, &format!("/v1.0{url}"), headers, body.into(), shared.uuid());
    inner.caller.clone_from(&ctx.caller);
    match throttle(shared, realism, BucketKind::Graph, "graph") {
        (Some(secs), remaining) => {
            shared.stats.bump(Counter::Throttled);
            budget_headers(throttled(&inner, secs), realism, remaining)
        }
        (None, remaining) => budget_headers(handle(shared, &inner).await, realism, remaining),
    }
}

/// One entry of the `$batch` answer: id, status, headers and body.
fn batch_entry(id: &str, reply: Reply) -> Value {
    let mut headers = Map::new();
    for (k, v) in &reply.headers {
        headers.insert(k.clone(), json!(v));
    }
    let mut entry = json!({"id": id, "status": reply.status});
    match reply.body {
        ReplyBody::Json(v) => {
            headers.insert("Content-Type".into(), json!("application/json"));
            entry["body"] = v;
        }
        ReplyBody::Text(_, s) => entry["body"] = json!(s),
        ReplyBody::Empty => {}
    }
    entry["headers"] = Value::Object(headers);
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_match() {
        let c = parse_filter("displayName eq 'ml ''admins''' and startswith(uniqueName,'ml-')").unwrap();
        let g = json!({"displayName": "ML 'admins'", "uniqueName": "ml-admins"});
        assert!(c.iter().all(|c| clause_matches(&g, c)));
        assert!(parse_filter("displayName eq").is_none());
        assert!(parse_filter("securityEnabled eq true").is_some());
    }

    #[test]
    fn transitive_members_follow_nesting_once() {
        let mut t = Tenant::default();
        for (id, members) in [("outer", vec!["inner", "alice"]), ("inner", vec!["bob", "outer"])] {
            t.groups.push(crate::state::Group {
                id: id.into(),
                members: members.into_iter().map(str::to_owned).collect(),
                ..crate::state::Group::default()
            });
        }
        let mut found = transitive_members(&t, "outer");
        found.sort();
        assert_eq!(found, ["alice", "bob", "inner"], "a cycle back to the group ends the walk");
        let mut of_bob = t.transitive_groups("bob");
        of_bob.sort();
        assert_eq!(of_bob, ["inner", "outer"]);
    }

    #[test]
    fn lambda_and_in_filters_match_collections() {
        let sp = json!({"appId": "a1", "servicePrincipalNames": ["a1", "api://ml-train"]});
        let any = parse_filter("servicePrincipalNames/any(c:c eq 'API://ml-train')").unwrap();
        assert!(any.iter().all(|c| clause_matches(&sp, c)));
        let other = parse_filter("servicePrincipalNames/any(c:c eq 'api://other')").unwrap();
        assert!(!other.iter().all(|c| clause_matches(&sp, c)));
        let within = parse_filter("appId in ('a0', 'a1')").unwrap();
        assert!(within.iter().all(|c| clause_matches(&sp, c)));
        assert!(parse_filter("servicePrincipalNames/any(c:x eq 'a')").is_none(), "the lambda compares its variable");
    }

    #[test]
    fn alternate_keys_parse() {
        assert_eq!(
            alternate_key("groups(uniqueName='a''b')"),
            Some(("groups".into(), "uniqueName".into(), "a'b".into()))
        );
        assert_eq!(alternate_key("groups"), None);
    }
}

#[cfg(test)]
mod property_tests {
    use super::security_identifier;

    #[test]
    fn security_identifiers_follow_the_object_id() {
        // Recorded by azure-cli: group 00e7bb05-86a1-49e2-bb6e-3dd60ab63a3a.
        assert_eq!(
            security_identifier("00e7bb05-86a1-49e2-bb6e-3dd60ab63a3a"),
            "S-1-12-1-15186693-1239582369-3594350267-976926218"
        );
        assert!(security_identifier("not-a-guid").is_null());
    }
}
