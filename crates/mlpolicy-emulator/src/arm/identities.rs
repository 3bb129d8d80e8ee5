//! User-assigned managed identities and their federated identity credentials (`2024-11-30`):
//! synchronous 201/200, stable principal and client ids backed by a `ManagedIdentity` service
//! principal, the FIC name rule, 20-per-identity cap, issuer+subject uniqueness and one audience.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{
    Ctx, FIC_TYPE, FederatedCredential, Identity, MSI_TYPE, Reply, ServicePrincipal, Shared, Tenant, Value,
    body_object, eq_ci, json, location_conflict, location_of, lock, method_not_allowed, not_found, page, same_location,
    tags_of,
};

pub(super) fn identity_arm_id(i: &Identity) -> String {
    format!("/subscriptions/{}/resourcegroups/{}/providers/{MSI_TYPE}/{}", i.subscription, i.resource_group, i.name)
}

pub(super) fn identity_json(t: &Tenant, i: &Identity) -> Value {
    let mut props = json!({"tenantId": t.tenant_id, "principalId": i.principal_id, "clientId": i.client_id});
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

pub(super) fn valid_identity_name(n: &str) -> bool {
    (3..=128).contains(&n.len())
        && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

pub(super) fn identity(
    shared: &Shared,
    ctx: &Ctx,
    t: &mut Tenant,
    sub: &str,
    rg: &str,
    name: &str,
) -> Result<Reply, Reply> {
    let idx = t
        .identities
        .iter()
        .position(|i| eq_ci(&i.subscription, sub) && eq_ci(&i.resource_group, rg) && eq_ci(&i.name, name));
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
            let isolation =
                body.get("properties").and_then(|p| p.get("isolationScope")).and_then(Value::as_str).map(str::to_owned);
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
                password_credentials: Vec::new(),
                created_ms: ctx.now_ms,
            });
            // The managed identity RP names what it created in a relative `Location`.
            let reply = Reply::json(201, identity_json(t, &ident)).header("Location", identity_arm_id(&ident));
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
            t.service_principals.retain(|s| !eq_ci(&s.id, &ident.principal_id));
            Ok(Reply::empty(200))
        }
        _ => Err(method_not_allowed(ctx)),
    }
}

pub(super) fn fic_json(identity: &Identity, f: &FederatedCredential) -> Value {
    json!({
        "id": format!("{}/federatedIdentityCredentials/{}", identity_arm_id(identity), f.name),
        "name": f.name,
        "type": FIC_TYPE,
        "properties": {"issuer": f.issuer, "subject": f.subject, "audiences": f.audiences},
    })
}

pub(super) fn parent_identity(t: &Tenant, sub: &str, rg: &str, name: &str) -> Result<Identity, Reply> {
    find_parent(t, sub, rg, name).cloned()
}

/// The identity a FIC request names (its name compared first: it tells identities apart).
fn find_parent<'t>(t: &'t Tenant, sub: &str, rg: &str, name: &str) -> Result<&'t Identity, Reply> {
    t.identities
        .iter()
        .find(|i| eq_ci(&i.name, name) && eq_ci(&i.resource_group, rg) && eq_ci(&i.subscription, sub))
        .ok_or_else(|| {
            Reply::arm_error(
                404,
                "ParentResourceNotFound",
                format!("Can not perform requested operation on nested resource. Parent resource '{name}' not found."),
            )
        })
}

/// Where each identity and the federated credentials of each identity sit in the state, so
/// that a plan listing the credentials of thousands of identities does not scan them all per
/// identity. Built from the state of one generation ([`Shared::generation`]) and used only
/// while no request that may change the state has run since.
pub struct IdentityIndex {
    /// (subscription, resource group, name), lower-cased → the first identity with them.
    identities: HashMap<(String, String, String), usize>,
    /// Lower-cased parent identity id → its credentials' positions, in state order.
    credentials: HashMap<String, Vec<usize>>,
}

impl IdentityIndex {
    fn build(t: &Tenant) -> IdentityIndex {
        let mut identities = HashMap::with_capacity(t.identities.len());
        for (at, i) in t.identities.iter().enumerate() {
            let key = (
                i.subscription.to_ascii_lowercase(),
                i.resource_group.to_ascii_lowercase(),
                i.name.to_ascii_lowercase(),
            );
            identities.entry(key).or_insert(at);
        }
        let mut credentials: HashMap<String, Vec<usize>> = HashMap::with_capacity(t.identities.len());
        for (at, f) in t.federated_credentials.iter().enumerate() {
            credentials.entry(f.identity.to_ascii_lowercase()).or_default().push(at);
        }
        IdentityIndex { identities, credentials }
    }

    /// The index for the state `t` is in; call with the state lock held.
    fn of(shared: &Shared, t: &Tenant) -> Arc<IdentityIndex> {
        let generation = shared.generation.load(Ordering::SeqCst);
        let mut slot = lock(&shared.identity_index);
        if let Some((built, index)) = slot.as_ref()
            && *built == generation
        {
            return Arc::clone(index);
        }
        let index = Arc::new(IdentityIndex::build(t));
        *slot = Some((generation, Arc::clone(&index)));
        index
    }
}

pub(super) fn list_fics(
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
    let index = IdentityIndex::of(shared, t);
    let key = (sub.to_ascii_lowercase(), rg.to_ascii_lowercase(), name.to_ascii_lowercase());
    let indexed = index
        .identities
        .get(&key)
        .and_then(|&at| t.identities.get(at))
        .filter(|i| eq_ci(&i.name, name) && eq_ci(&i.resource_group, rg) && eq_ci(&i.subscription, sub));
    let parent = match indexed {
        Some(i) => i,
        None => find_parent(t, sub, rg, name)?,
    };
    let id = parent.id();
    // The table is exact for the state it was built from; checking each entry costs little and
    // keeps a stale table (a bug) from answering wrongly: the scan answers instead.
    let positions = index.credentials.get(&id.to_ascii_lowercase()).map_or(&[][..], Vec::as_slice);
    let checked: Option<Vec<&FederatedCredential>> =
        positions.iter().map(|&at| t.federated_credentials.get(at).filter(|f| eq_ci(&f.identity, &id))).collect();
    let items = match checked {
        Some(fics) => fics.into_iter().map(|f| fic_json(parent, f)).collect(),
        None => {
            t.federated_credentials.iter().filter(|f| eq_ci(&f.identity, &id)).map(|f| fic_json(parent, f)).collect()
        }
    };
    Ok(page(shared, ctx, items, "$skiptoken"))
}

pub(super) fn valid_fic_name(n: &str) -> bool {
    (3..=120).contains(&n.len())
        && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

pub(super) fn federated_credential(
    ctx: &Ctx,
    t: &mut Tenant,
    sub: &str,
    rg: &str,
    name: &str,
    fic: &str,
) -> Result<Reply, Reply> {
    let parent = parent_identity(t, sub, rg, name)?;
    let pid = parent.id();
    let idx = t.federated_credentials.iter().position(|f| eq_ci(&f.identity, &pid) && eq_ci(&f.name, fic));
    let fic_not_found = || not_found(FIC_TYPE, &format!("{name}/{fic}"), rg);
    match ctx.method.as_str() {
        "GET" => {
            idx.map(|i| Reply::json(200, fic_json(&parent, &t.federated_credentials[i]))).ok_or_else(fic_not_found)
        }
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
                    return Err(Reply::arm_error(400, "BadRequest", "The request properties are empty or missing."));
                }
            };
            let text = |k: &str| props.get(k).and_then(Value::as_str).map(str::to_owned).filter(|s| !s.is_empty());
            let (Some(issuer), Some(subject)) = (text("issuer"), text("subject")) else {
                return Err(Reply::arm_error(
                    400,
                    "BadRequest",
                    "The properties 'issuer', 'subject' and 'audiences' are required.",
                ));
            };
            let audiences: Vec<String> = match props.get("audiences") {
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
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
            let duplicate =
                t.federated_credentials.iter().enumerate().any(|(j, f)| {
                    Some(j) != idx && eq_ci(&f.identity, &pid) && f.issuer == issuer && f.subject == subject
                });
            if duplicate {
                return Err(Reply::arm_error(
                    400,
                    "BadRequest",
                    "Issuer and subject combination already exists for this Managed Identity.",
                ));
            }
            let count = t.federated_credentials.iter().filter(|f| eq_ci(&f.identity, &pid)).count();
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
            let record = FederatedCredential { identity: pid, name: fic.to_owned(), issuer, subject, audiences };
            let reply = if idx.is_some() {
                Reply::json(200, fic_json(&parent, &record))
            } else {
                let json = fic_json(&parent, &record);
                let location = json["id"].as_str().unwrap_or_default().to_owned();
                Reply::json(201, json).header("Location", location)
            };
            match idx {
                Some(i) => {
                    t.federated_credentials[i] =
                        FederatedCredential { name: t.federated_credentials[i].name.clone(), ..record }
                }
                None => t.federated_credentials.push(record),
            }
            Ok(reply)
        }
        _ => Err(method_not_allowed(ctx)),
    }
}
