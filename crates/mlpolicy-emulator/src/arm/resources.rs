//! Subscriptions' resource groups (`2025-04-01`), long-running operations behind `Location`
//! URLs, and Azure ML workspaces (`2025-06-01`): PUT/DELETE as 202 LROs, soft delete and purge,
//! system- and user-assigned identity blocks.

use std::collections::BTreeMap;

use super::{
    Ctx, Identity, ML_PROVIDER, Map, OpKind, Operation, Reply, ResourceGroup, ServicePrincipal, Shared, SystemData,
    Tenant, Value, Workspace, bad_content, body_object, eq_ci, is_ancestor_or_self, iso8601_ticks_trimmed, json,
    location_conflict, location_of, lock, method_not_allowed, not_found, rg_not_found, same_location, tags_of,
};

pub(super) fn rg_json(g: &ResourceGroup) -> Value {
    json!({
        "id": format!("/subscriptions/{}/resourceGroups/{}", g.subscription, g.name),
        "name": g.name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": g.location,
        "tags": g.tags,
        "properties": {"provisioningState": if g.deleting { "Deleting" } else { "Succeeded" }},
    })
}

pub(super) fn valid_rg_name(name: &str) -> bool {
    (1..=90).contains(&name.chars().count())
        && !name.ends_with('.')
        && name.chars().all(|c| c.is_alphanumeric() || "-_.()".contains(c))
}

/// 409 for a write to a resource group (or into one) that is being deleted.
pub(super) fn rg_being_deleted(rg: &str) -> Reply {
    Reply::arm_error(
        409,
        "ResourceGroupBeingDeleted",
        format!("The resource group '{rg}' is in deprovisioning state and cannot perform this operation."),
    )
}

fn rg_key(sub: &str, rg: &str) -> String {
    format!("{sub}/{rg}").to_ascii_lowercase()
}

/// A read of a resource group that is being deleted observes its deletion: each read counts as
/// a poll of the delete operation (clients that wait with `GET`, as `az group wait --deleted`
/// does, read at the pace Azure's `Retry-After` sets), so the group disappears after as many
/// reads as its operation needs polls.
pub(super) fn observe_rg_deletion(shared: &Shared, t: &mut Tenant, sub: &str, rg: &str) {
    let key = rg_key(sub, rg);
    let mut ops = lock(&shared.ops);
    if let Some(op) = ops.values_mut().find(|o| o.kind == OpKind::ResourceGroupDelete && o.target == key && !o.done) {
        op.polls_done += 1;
        if op.polls_done >= op.polls_needed {
            complete(op, t);
        }
    }
}

pub(super) fn resource_group(shared: &Shared, ctx: &Ctx, t: &mut Tenant, sub: &str, rg: &str) -> Result<Reply, Reply> {
    if ctx.is_read() && t.resource_group(sub, rg).is_some_and(|g| g.deleting) {
        observe_rg_deletion(shared, t, sub, rg);
    }
    let idx = t.resource_groups.iter().position(|g| eq_ci(&g.subscription, sub) && eq_ci(&g.name, rg));
    if let Some(i) = idx.filter(|&i| t.resource_groups[i].deleting && !ctx.is_read()) {
        return Err(rg_being_deleted(&t.resource_groups[i].name));
    }
    match ctx.method.as_str() {
        "GET" => idx.map(|i| Reply::json(200, rg_json(&t.resource_groups[i]))).ok_or_else(|| rg_not_found(rg)),
        "HEAD" => Ok(Reply::empty(if idx.is_some() { 204 } else { 404 })),
        "PUT" => put_resource_group(t, idx, ctx, sub, rg),
        "PATCH" => {
            let i = idx.ok_or_else(|| rg_not_found(rg))?;
            let body = body_object(ctx)?;
            if let Some(tags) = tags_of(&body)? {
                t.resource_groups[i].tags = tags;
            }
            Ok(Reply::json(200, rg_json(&t.resource_groups[i])))
        }
        "DELETE" => {
            let i = idx.ok_or_else(|| rg_not_found(rg))?;
            t.resource_groups[i].deleting = true;
            let target = rg_key(sub, &t.resource_groups[i].name);
            let location = t.resource_groups[i].location.clone();
            Ok(start_operation(shared, ctx, sub, &location, OpKind::ResourceGroupDelete, target, t))
        }
        _ => Err(method_not_allowed(ctx)),
    }
}

fn put_resource_group(t: &mut Tenant, idx: Option<usize>, ctx: &Ctx, sub: &str, rg: &str) -> Result<Reply, Reply> {
    if !valid_rg_name(rg) {
        return Err(Reply::arm_error(
            400,
            "InvalidResourceGroupName",
            format!(
                "The resource group name '{rg}' is invalid. It can include alphanumeric, underscore, parentheses, hyphen, period (except at end), and Unicode characters that match the allowed characters."
            ),
        ));
    }
    let body = body_object(ctx)?;
    let location = location_of(&body)?;
    let tags = tags_of(&body)?.unwrap_or_default();
    if let Some(i) = idx {
        let g = &mut t.resource_groups[i];
        if !same_location(&g.location, &location) {
            return Err(Reply::arm_error(
                409,
                "InvalidResourceGroupLocation",
                format!(
                    "Invalid resource group location '{location}'. The Resource group already exists in location '{}'.",
                    g.location
                ),
            ));
        }
        g.tags = tags;
        Ok(Reply::json(200, rg_json(g)))
    } else {
        let g = ResourceGroup { subscription: sub.to_owned(), name: rg.to_owned(), location, tags, deleting: false };
        let reply = Reply::json(201, rg_json(&g));
        t.resource_groups.push(g);
        Ok(reply)
    }
}

/// Removes a resource group with everything in it: its identities (and their service
/// principals and federated credentials), its workspaces (and their system identities) and
/// every role assignment at or below it.
fn remove_resource_group(t: &mut Tenant, key: &str) {
    let Some(i) = t.resource_groups.iter().position(|g| rg_key(&g.subscription, &g.name) == key) else {
        return;
    };
    let g = t.resource_groups.remove(i);
    let in_rg = |s: &str, r: &str| eq_ci(s, &g.subscription) && eq_ci(r, &g.name);
    let doomed: Vec<String> = t
        .identities
        .iter()
        .filter(|i| in_rg(&i.subscription, &i.resource_group))
        .map(|i| i.principal_id.clone())
        .chain(
            t.workspaces
                .iter()
                .filter(|w| in_rg(&w.subscription, &w.resource_group))
                .filter_map(|w| w.principal_id.clone()),
        )
        .collect();
    t.service_principals.retain(|s| !doomed.iter().any(|d| eq_ci(d, &s.id)));
    let ids: Vec<String> =
        t.identities.iter().filter(|i| in_rg(&i.subscription, &i.resource_group)).map(Identity::id).collect();
    t.federated_credentials.retain(|f| !ids.iter().any(|id| eq_ci(id, &f.identity)));
    t.identities.retain(|i| !in_rg(&i.subscription, &i.resource_group));
    t.workspaces.retain(|w| !in_rg(&w.subscription, &w.resource_group));
    let prefix = format!("/subscriptions/{}/resourcegroups/{}", g.subscription, g.name).to_ascii_lowercase();
    t.role_assignments.retain(|r| !is_ancestor_or_self(&prefix, &r.scope));
}

/// How many times the polls of other long-running operations a resource-group delete takes.
const RG_DELETE_POLL_FACTOR: u32 = 4;

pub(super) fn start_operation(
    shared: &Shared,
    ctx: &Ctx,
    sub: &str,
    location: &str,
    kind: OpKind,
    target: String,
    t: &mut Tenant,
) -> Reply {
    let polls = shared.realism().lro_polls;
    // Azure deletes a resource group's resources one by one before the group: recorded
    // deletions take three to four polls where a workspace takes one or two.
    let polls = if kind == OpKind::ResourceGroupDelete { polls.saturating_mul(RG_DELETE_POLL_FACTOR) } else { polls };
    let id = shared.uuid();
    let mut op = Operation { kind, target, started_ms: ctx.now_ms, polls_done: 0, polls_needed: polls, done: false };
    if polls == 0 {
        complete(&mut op, t);
    }
    lock(&shared.ops).insert(id.clone(), op);
    let url = operation_url(shared, sub, location, kind, &id);
    let reply = Reply::empty(202).header("Location", url.clone());
    // Azure ML answers with both headers, ARM's resource-group delete with `Location` alone, and
    // neither with `Retry-After` (as recorded); the emulator's quick default (no polls needed)
    // still says `Retry-After: 0` so that clients do not wait.
    let reply = if kind == OpKind::ResourceGroupDelete {
        reply
    } else {
        reply.header("Azure-AsyncOperation", url.replace("type=location", "type=async"))
    };
    if polls == 0 { reply.header("Retry-After", "0") } else { reply }
}

pub(super) fn operation_url(shared: &Shared, sub: &str, location: &str, kind: OpKind, id: &str) -> String {
    match kind {
        OpKind::ResourceGroupDelete => {
            format!("{}/subscriptions/{sub}/operationresults/{id}?api-version=2025-04-01", shared.base_url)
        }
        _ => format!(
            "{}/subscriptions/{sub}/providers/Microsoft.MachineLearningServices/locations/{}/workspaceOperationsStatus/{id}?api-version=2025-06-01&type=location",
            shared.base_url,
            location.to_ascii_lowercase().replace(' ', "")
        ),
    }
}

pub(super) fn complete(op: &mut Operation, t: &mut Tenant) {
    op.done = true;
    if op.kind == OpKind::ResourceGroupDelete {
        remove_resource_group(t, &op.target);
        return;
    }
    let Some(i) = t.workspaces.iter().position(|w| ws_key(w) == op.target && !w.soft_deleted) else {
        return;
    };
    match op.kind {
        OpKind::WorkspacePut => "Succeeded".clone_into(&mut t.workspaces[i].provisioning_state),
        OpKind::WorkspaceDelete { purge } => {
            if let Some(pid) = t.workspaces[i].principal_id.take() {
                t.service_principals.retain(|s| !eq_ci(&s.id, &pid));
            }
            if purge {
                t.workspaces.remove(i);
            } else {
                let w = &mut t.workspaces[i];
                w.soft_deleted = true;
                "Succeeded".clone_into(&mut w.provisioning_state);
            }
        }
        OpKind::ResourceGroupDelete => {}
    }
}

/// Finishes deletions whose operation was lost (an emulator restarted mid-delete).
fn finish_orphaned_deletions(ops: &std::collections::HashMap<String, Operation>, t: &mut Tenant) -> bool {
    let orphaned: Vec<String> = t
        .resource_groups
        .iter()
        .filter(|g| g.deleting)
        .map(|g| rg_key(&g.subscription, &g.name))
        .filter(|k| !ops.values().any(|o| o.kind == OpKind::ResourceGroupDelete && &o.target == k && !o.done))
        .collect();
    for key in &orphaned {
        remove_resource_group(t, key);
    }
    !orphaned.is_empty()
}

/// Completes operations whose time is up (one `Retry-After` second per required poll).
pub(super) fn settle_ops(shared: &Shared, t: &mut Tenant, now: u64) -> bool {
    let mut ops = lock(&shared.ops);
    let mut changed = false;
    for op in ops.values_mut().filter(|o| !o.done) {
        if now >= op.started_ms + u64::from(op.polls_needed) * 1000 {
            complete(op, t);
            changed = true;
        }
    }
    finish_orphaned_deletions(&ops, t) || changed
}

pub(super) fn poll_operation(shared: &Shared, ctx: &Ctx, t: &mut Tenant, sub: &str, id: &str) -> Reply {
    if ctx.method != "GET" {
        return method_not_allowed(ctx);
    }
    let snapshot = {
        let mut ops = lock(&shared.ops);
        let Some(op) = ops.get_mut(id) else {
            return Reply::arm_error(404, "OperationNotFound", format!("The operation '{id}' could not be found."));
        };
        if !op.done {
            op.polls_done += 1;
            if op.polls_done >= op.polls_needed {
                complete(op, t);
            }
        }
        op.clone()
    };
    // `type=async`: the status document of `Azure-AsyncOperation`, 200 while running too.
    if ctx.q("type") == Some("async") {
        let status = if snapshot.done { "Succeeded" } else { "InProgress" };
        return Reply::json(200, serde_json::json!({ "status": status }));
    }
    if !snapshot.done {
        let location =
            t.workspaces.iter().find(|w| ws_key(w) == snapshot.target).map_or("eastus", |w| w.location.as_str());
        return Reply::empty(202).header("Location", operation_url(shared, sub, location, snapshot.kind, id));
    }
    match snapshot.kind {
        OpKind::WorkspacePut => match t.workspaces.iter().find(|w| ws_key(w) == snapshot.target && !w.soft_deleted) {
            Some(w) => Reply::json(200, workspace_json(t, w)),
            None => Reply::arm_error(404, "ResourceNotFound", "The workspace no longer exists."),
        },
        OpKind::WorkspaceDelete { .. } => Reply::empty(204),
        OpKind::ResourceGroupDelete => Reply::empty(200),
    }
}

pub(super) fn ws_key(w: &Workspace) -> String {
    format!("{}/{}/{}", w.subscription, w.resource_group, w.name).to_ascii_lowercase()
}

pub(super) fn listed(w: &Workspace) -> bool {
    !w.soft_deleted && w.provisioning_state != "Creating"
}

pub(super) fn workspace_id(w: &Workspace) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{}/providers/{ML_PROVIDER}/workspaces/{}",
        w.subscription, w.resource_group, w.name
    )
}

pub(super) fn identity_block(t: &Tenant, kind: &str, principal: Option<&String>, uais: &[String]) -> Value {
    let mut block = json!({"type": kind});
    if let Some(pid) = principal {
        block["principalId"] = json!(pid);
        block["tenantId"] = json!(t.tenant_id);
    }
    if !uais.is_empty() {
        let map: Map<String, Value> = uais
            .iter()
            .map(|id| {
                let found = t.identities.iter().find(|i| eq_ci(&i.id(), id));
                (
                    id.clone(),
                    json!({
                        "principalId": found.map(|i| i.principal_id.clone()),
                        "clientId": found.map(|i| i.client_id.clone()),
                    }),
                )
            })
            .collect();
        block["userAssignedIdentities"] = Value::Object(map);
    }
    block
}

pub(super) fn workspace_json(t: &Tenant, w: &Workspace) -> Value {
    let mut props = match &w.properties {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    if let Some(Value::String(ai)) = props.get("applicationInsights") {
        let lowered = ai.replace("/providers/Microsoft.Insights/", "/providers/microsoft.insights/");
        props.insert("applicationInsights".into(), json!(lowered));
    }
    let loc = w.location.to_ascii_lowercase().replace(' ', "");
    let created_ms = w.system_data.as_ref().map_or(0, |d| d.created_ms);
    for (k, v) in workspace_defaults(w) {
        props.entry(k).or_insert(v);
    }
    props.insert("provisioningState".into(), json!(w.provisioning_state));
    props.insert("workspaceId".into(), json!(w.workspace_id));
    props.insert("tenantId".into(), json!(t.tenant_id));
    props.insert("creationTime".into(), json!(iso8601_ticks_trimmed(created_ms)));
    props.insert("discoveryUrl".into(), json!(format!("https://{loc}.api.azureml.ms/discovery")));
    props.insert(
        "mlFlowTrackingUri".into(),
        json!(format!("azureml://{loc}.api.azureml.ms/mlflow/v1.0{}", workspace_id(w))),
    );
    props.insert("notebookInfo".into(), notebook_info(w, &loc));
    props.insert("sdkTelemetryAppInsightsKey".into(), json!(derived_guid(&w.workspace_id, "telemetry")));
    props.insert("privateLinkCount".into(), json!(0));
    props.insert("storageHnsEnabled".into(), json!(false));
    props.insert("managedNetwork".into(), managed_network(props.get("managedNetwork")));
    if let Some(encryption) = props.get("encryption").cloned() {
        props.insert("encryption".into(), encryption_status(&encryption));
        props.entry("serviceManagedResourcesSettings").or_insert(json!({"cosmosDb": {"collectionsThroughput": 4000}}));
        props
            .entry("serviceProvisionedResourceGroup")
            .or_insert(json!(format!("/subscriptions/{}/resourceGroups/{}", w.subscription, w.resource_group)));
    }
    let mut out = json!({
        "id": workspace_id(w),
        "name": w.name,
        "type": format!("{ML_PROVIDER}/workspaces"),
        "location": w.location,
        "tags": w.tags,
        "etag": null,
        "kind": w.kind.clone().unwrap_or_else(|| "Default".to_owned()),
        "sku": w.sku.clone().unwrap_or_else(|| json!({"name": "Basic", "tier": "Basic"})),
        "identity": identity_block(t, &w.identity_type, w.principal_id.as_ref(), &w.user_assigned),
        "properties": props,
    });
    if let Some(d) = &w.system_data {
        out["systemData"] = system_data_json(d);
    }
    out
}

/// What Azure ML fills in for a workspace when the client leaves it out (api-version
/// 2024-10-01 and later, as recorded).
fn workspace_defaults(w: &Workspace) -> Vec<(&'static str, Value)> {
    let kind = w.kind.as_deref().unwrap_or("Default");
    let mut defaults = vec![
        ("friendlyName", json!(w.name)),
        ("description", Value::Null),
        ("hbiWorkspace", json!(false)),
        ("publicNetworkAccess", json!("Enabled")),
        ("v1LegacyMode", json!(false)),
        ("enableDataIsolation", json!(false)),
        ("allowRoleAssignmentOnRG", json!(true)),
        ("applicationInsights", Value::Null),
        ("containerRegistry", Value::Null),
        ("imageBuildCompute", Value::Null),
        ("ipAllowlist", json!([])),
        ("linkedModelInventoryArmId", Value::Null),
        ("sasGetterUri", json!("")),
        ("softDeleteEnabled", json!(false)),
        ("systemDatastoresAuthMode", json!("accesskey")),
        ("EnableSoftwareBillOfMaterials", json!(false)),
        ("enableServiceSideCMKEncryption", json!(false)),
        (
            "serverlessComputeSettings",
            json!({"serverlessComputeCustomSubnet": null, "serverlessComputeNoPublicIP": false}),
        ),
    ];
    if eq_ci(kind, "Hub") {
        defaults.push((
            "workspaceHubConfig",
            json!({"additionalWorkspaceStorageAccounts": [], "defaultWorkspaceResourceGroup": null}),
        ));
    }
    if eq_ci(kind, "Hub") || eq_ci(kind, "Project") {
        defaults.push((
            "azureOpenAI",
            json!({"provisioningState": "NotStarted", "resourceId": null, "endpoint": null, "proxyResourceId": null, "failureReason": null}),
        ));
    }
    if eq_ci(kind, "FeatureStore") {
        defaults.push((
            "featureStoreSettings",
            json!({"computeRuntime": {"sparkRuntimeVersion": "3.2.0"}, "offlineStoreConnectionName": "", "onlineStoreConnectionName": ""}),
        ));
    }
    defaults
}

/// The notebook service Azure ML provisions with every workspace.
fn notebook_info(w: &Workspace, loc: &str) -> Value {
    let short: String =
        w.name.chars().filter(char::is_ascii_alphanumeric).take(12).collect::<String>().to_ascii_lowercase();
    json!({
        "resourceId": derived_guid(&w.workspace_id, "notebooks").replace('-', ""),
        "fqdn": format!("ml-{short}-{loc}-{}.{loc}.notebooks.azure.net", w.workspace_id),
        "isPrivateLinkEnabled": false,
        "notebookPreparationError": null,
    })
}

/// `managedNetwork` as sent, completed: isolation `Disabled` by default, the modes it may
/// change to, and a network id and rule status once isolation is on.
fn managed_network(sent: Option<&Value>) -> Value {
    let mut net = sent.and_then(Value::as_object).cloned().unwrap_or_default();
    let mode = net.get("isolationMode").and_then(Value::as_str).unwrap_or("Disabled").to_owned();
    let changeable: Vec<&str> = ["AllowInternetOutbound", "AllowOnlyApprovedOutbound"]
        .into_iter()
        .filter(|m| mode == "Disabled" || (mode == "AllowInternetOutbound" && *m == "AllowOnlyApprovedOutbound"))
        .collect();
    net.insert("isolationMode".into(), json!(mode));
    net.insert("changeableIsolationModes".into(), json!(changeable));
    if mode != "Disabled" {
        net.entry("networkId").or_insert_with(|| json!(derived_guid(&mode, "network")));
        net.entry("status").or_insert_with(|| json!({"status": "Inactive", "sparkReady": false}));
        if let Some(Value::Object(rules)) = net.get_mut("outboundRules") {
            for rule in rules.values_mut().filter_map(Value::as_object_mut) {
                rule.entry("status").or_insert(json!("Inactive"));
                rule.entry("category").or_insert(json!("UserDefined"));
            }
        }
    }
    Value::Object(net)
}

/// Customer-managed-key encryption as sent, with what the service fills in.
fn encryption_status(sent: &Value) -> Value {
    let mut e = sent.as_object().cloned().unwrap_or_default();
    e.entry("status").or_insert(json!("Enabled"));
    e.entry("identity").or_insert(json!({"userAssignedIdentity": null}));
    if let Some(Value::Object(kv)) = e.get_mut("keyVaultProperties") {
        kv.entry("identityClientId").or_insert(Value::Null);
    }
    for k in ["cosmosDbResourceId", "storageAccountResourceId", "searchAccountResourceId"] {
        e.entry(k).or_insert(Value::Null);
    }
    Value::Object(e)
}

/// ARM's `systemData` block, its times as Azure ML prints them (trailing zeros dropped).
pub(super) fn system_data_json(d: &SystemData) -> Value {
    json!({
        "createdAt": iso8601_ticks_trimmed(d.created_ms),
        "createdBy": d.created_by,
        "createdByType": d.created_by_type,
        "lastModifiedAt": iso8601_ticks_trimmed(d.modified_ms),
        "lastModifiedBy": d.modified_by,
        "lastModifiedByType": d.modified_by_type,
    })
}

/// A GUID derived from a seed string and a purpose: stable for a resource, different per use.
fn derived_guid(seed: &str, purpose: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{purpose}:{seed}").as_bytes()).to_string()
}

/// Records who wrote a resource and when, as ARM's `systemData` reports it.
pub(super) fn stamp(d: &mut Option<SystemData>, t: &Tenant, ctx: &Ctx) {
    let oid = ctx.caller.as_ref().map(|c| c.oid.as_str()).unwrap_or_default();
    // A service principal is named by its application id, as ARM names it.
    let who = t.service_principals.iter().find(|s| eq_ci(&s.id, oid)).map_or(oid, |s| s.app_id.as_str()).to_owned();
    match d {
        Some(d) => {
            d.modified_ms = ctx.now_ms;
            d.modified_by = who;
            "Application".clone_into(&mut d.modified_by_type);
        }
        None => {
            *d = Some(SystemData {
                created_ms: ctx.now_ms,
                created_by: who.clone(),
                created_by_type: "Application".to_owned(),
                modified_ms: ctx.now_ms,
                modified_by: who,
                modified_by_type: "Application".to_owned(),
            });
        }
    }
}

pub(super) fn valid_workspace_name(n: &str) -> bool {
    let len = n.len();
    (3..=33).contains(&len)
        && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Parses an `identity` block: (type, user-assigned ids).
pub(super) fn parse_identity(
    t: &Tenant,
    body: &Map<String, Value>,
    resource_id: &str,
) -> Result<Option<(String, Vec<String>)>, Reply> {
    let Some(identity) = body.get("identity").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let kind =
        identity.get("type").and_then(Value::as_str).ok_or_else(|| bad_content("'identity.type' is required"))?;
    let canonical = ["None", "SystemAssigned", "UserAssigned", "SystemAssigned,UserAssigned"]
        .into_iter()
        .find(|k| eq_ci(k, kind))
        .ok_or_else(|| {
            Reply::arm_error(400, "InvalidIdentityType", format!("The identity type '{kind}' is invalid. Allowed values are 'None', 'SystemAssigned', 'UserAssigned', 'SystemAssigned,UserAssigned'."))
        })?;
    let mut uais = Vec::new();
    if let Some(Value::Object(map)) = identity.get("userAssignedIdentities") {
        for key in map.keys() {
            if !t.identities.iter().any(|i| eq_ci(&i.id(), key)) {
                return Err(Reply::arm_error(
                    400,
                    "FailedIdentityOperation",
                    format!(
                        "Identity operation for resource '{resource_id}' failed with error 'Failed to perform resource identity operation. Status: 'NotFound'. Response: '{{\"error\":{{\"code\":\"NotFound\",\"message\":\"Resource '{key}' was not found.\"}}}}'.'."
                    ),
                ));
            }
            uais.push(key.clone());
        }
    }
    if canonical.contains("UserAssigned") && uais.is_empty() {
        return Err(Reply::arm_error(
            400,
            "BadRequest",
            "'userAssignedIdentities' must name at least one identity when the identity type includes 'UserAssigned'.",
        ));
    }
    if !canonical.contains("UserAssigned") && !uais.is_empty() {
        return Err(Reply::arm_error(
            400,
            "BadRequest",
            "'userAssignedIdentities' is only allowed when the identity type includes 'UserAssigned'.",
        ));
    }
    Ok(Some((canonical.to_owned(), uais)))
}

/// Creates or removes the system-assigned identity's service principal to match `kind`.
pub(super) fn sync_system_identity(shared: &Shared, ctx: &Ctx, t: &mut Tenant, idx: usize) {
    let wants = t.workspaces[idx].identity_type.starts_with("SystemAssigned");
    let has = t.workspaces[idx].principal_id.clone();
    match (wants, has) {
        (true, None) => {
            let pid = shared.uuid();
            let w = &t.workspaces[idx];
            let sp = ServicePrincipal {
                id: pid.clone(),
                app_id: shared.uuid(),
                display_name: w.name.clone(),
                service_principal_type: "ManagedIdentity".to_owned(),
                alternative_names: vec!["isExplicit=False".to_owned(), workspace_id(w)],
                password_credentials: Vec::new(),
                created_ms: ctx.now_ms,
            };
            t.service_principals.push(sp);
            t.workspaces[idx].principal_id = Some(pid);
        }
        (false, Some(pid)) => {
            t.service_principals.retain(|s| !eq_ci(&s.id, &pid));
            t.workspaces[idx].principal_id = None;
        }
        _ => {}
    }
}

/// Where a workspace request points.
#[derive(Clone, Copy)]
struct WorkspaceAt<'a> {
    sub: &'a str,
    rg: &'a str,
    name: &'a str,
}

impl WorkspaceAt<'_> {
    /// The index of the workspace here, live or soft-deleted.
    fn find(self, t: &Tenant, deleted: bool) -> Option<usize> {
        t.workspaces.iter().position(|w| {
            eq_ci(&w.subscription, self.sub)
                && eq_ci(&w.resource_group, self.rg)
                && eq_ci(&w.name, self.name)
                && w.soft_deleted == deleted
        })
    }

    fn not_found(self) -> Reply {
        not_found(&format!("{ML_PROVIDER}/workspaces"), self.name, self.rg)
    }
}

/// What a workspace PUT asks for.
struct WorkspacePut {
    location: String,
    properties: Value,
    identity: Option<(String, Vec<String>)>,
    tags: BTreeMap<String, String>,
    kind: Option<String>,
    sku: Option<Value>,
}

pub(super) fn workspace(
    shared: &Shared,
    ctx: &Ctx,
    t: &mut Tenant,
    sub: &str,
    rg: &str,
    name: &str,
) -> Result<Reply, Reply> {
    let at = WorkspaceAt { sub, rg, name };
    match ctx.method.as_str() {
        "GET" => get_workspace(t, at),
        "PUT" => put_workspace(shared, ctx, t, at),
        "PATCH" => patch_workspace(shared, ctx, t, at),
        "DELETE" => Ok(delete_workspace(shared, ctx, t, at)),
        _ => Err(method_not_allowed(ctx)),
    }
}

/// GET: a workspace still being created is not found yet.
fn get_workspace(t: &Tenant, at: WorkspaceAt) -> Result<Reply, Reply> {
    match at.find(t, false) {
        Some(i) if t.workspaces[i].provisioning_state != "Creating" => {
            Ok(Reply::json(200, workspace_json(t, &t.workspaces[i])))
        }
        _ => Err(at.not_found()),
    }
}

/// PUT: creates the workspace or replaces an existing one's settings, as a long-running
/// operation.
fn put_workspace(shared: &Shared, ctx: &Ctx, t: &mut Tenant, at: WorkspaceAt) -> Result<Reply, Reply> {
    let put = read_workspace_put(ctx, t, at)?;
    let location = put.location.clone();
    let idx = match at.find(t, false) {
        Some(i) => update_workspace(t, at, i, put)?,
        None => create_workspace(shared, t, at, put)?,
    };
    sync_system_identity(shared, ctx, t, idx);
    let mut stamped = t.workspaces[idx].system_data.take();
    stamp(&mut stamped, t, ctx);
    t.workspaces[idx].system_data = stamped;
    let key = ws_key(&t.workspaces[idx]);
    Ok(start_operation(shared, ctx, at.sub, &location, OpKind::WorkspacePut, key, t))
}

/// The body of a workspace PUT, checked: a valid name, a location, properties, and valid
/// identity and tags blocks.
fn read_workspace_put(ctx: &Ctx, t: &Tenant, at: WorkspaceAt) -> Result<WorkspacePut, Reply> {
    let WorkspaceAt { sub, rg, name } = at;
    if !valid_workspace_name(name) {
        return Err(Reply::arm_error(
            400,
            "BadRequest",
            format!(
                "Workspace name '{name}' is invalid. It must be 3-33 characters long, start with a letter or digit, and contain only letters, digits, '-' and '_'."
            ),
        ));
    }
    let body = body_object(ctx)?;
    let location = location_of(&body)?;
    let properties = match body.get("properties") {
        Some(Value::Object(m)) => Value::Object(m.clone()),
        _ => {
            return Err(bad_content("Required property 'properties' not found in JSON."));
        }
    };
    let resource_id = format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/{ML_PROVIDER}/workspaces/{name}");
    let identity = parse_identity(t, &body, &resource_id)?;
    let tags = tags_of(&body)?.unwrap_or_default();
    Ok(WorkspacePut {
        location,
        properties,
        identity,
        tags,
        kind: body.get("kind").and_then(Value::as_str).map(str::to_owned),
        sku: body.get("sku").filter(|s| !s.is_null()).cloned(),
    })
}

/// Replaces a live workspace's settings; its location, storage account and key vault stay.
fn update_workspace(t: &mut Tenant, at: WorkspaceAt, i: usize, put: WorkspacePut) -> Result<usize, Reply> {
    let WorkspaceAt { rg, name, .. } = at;
    let w = &mut t.workspaces[i];
    if !same_location(&w.location, &put.location) {
        return Err(location_conflict(name, &w.location, rg, &put.location));
    }
    if w.provisioning_state == "Deleting" {
        return Err(Reply::arm_error(409, "Conflict", format!("Workspace '{name}' is being deleted.")));
    }
    for immutable in ["storageAccount", "keyVault"] {
        let old = w.properties.get(immutable).and_then(Value::as_str);
        let new = put.properties.get(immutable).and_then(Value::as_str);
        if let (Some(o), Some(n)) = (old, new)
            && !eq_ci(o, n)
        {
            return Err(Reply::arm_error(
                400,
                "BadRequest",
                format!("Property '{immutable}' of an existing workspace cannot be changed."),
            ));
        }
    }
    w.properties = put.properties;
    w.tags = put.tags;
    if let Some(k) = put.kind {
        w.kind = Some(k);
    }
    if let Some(s) = put.sku {
        w.sku = Some(s);
    }
    let (kind, uais) = put.identity.unwrap_or_else(|| ("None".to_owned(), Vec::new()));
    w.identity_type = kind;
    w.user_assigned = uais;
    if w.provisioning_state != "Creating" {
        "Updating".clone_into(&mut w.provisioning_state);
    }
    Ok(i)
}

/// Adds a new workspace, in the `Creating` state; a soft-deleted one of that name must be
/// purged or recovered first.
fn create_workspace(shared: &Shared, t: &mut Tenant, at: WorkspaceAt, put: WorkspacePut) -> Result<usize, Reply> {
    let WorkspaceAt { sub, rg, name } = at;
    if at.find(t, true).is_some() {
        return Err(Reply::arm_error(
            409,
            "Conflict",
            format!("Soft-deleted workspace '{name}' exists. Please purge or recover it. https://aka.ms/wsoftdelete"),
        ));
    }
    let (kind, uais) = put.identity.unwrap_or_else(|| ("None".to_owned(), Vec::new()));
    t.workspaces.push(Workspace {
        subscription: sub.to_owned(),
        resource_group: rg.to_owned(),
        name: name.to_owned(),
        location: put.location,
        tags: put.tags,
        kind: put.kind,
        sku: put.sku,
        properties: put.properties,
        identity_type: kind,
        user_assigned: uais,
        principal_id: None,
        workspace_id: shared.uuid(),
        provisioning_state: "Creating".to_owned(),
        soft_deleted: false,
        system_data: None,
    });
    Ok(t.workspaces.len() - 1)
}

/// PATCH: merges properties and replaces tags and identity when given, as a long-running
/// operation.
fn patch_workspace(shared: &Shared, ctx: &Ctx, t: &mut Tenant, at: WorkspaceAt) -> Result<Reply, Reply> {
    let i = at
        .find(t, false)
        .filter(|&i| t.workspaces[i].provisioning_state != "Creating")
        .ok_or_else(|| at.not_found())?;
    let body = body_object(ctx)?;
    let resource_id = workspace_id(&t.workspaces[i]);
    let identity = parse_identity(t, &body, &resource_id)?;
    let tags = tags_of(&body)?;
    let w = &mut t.workspaces[i];
    if let Some(tags) = tags {
        w.tags = tags;
    }
    if let (Some(Value::Object(patch)), Value::Object(props)) = (body.get("properties"), &mut w.properties) {
        for (k, v) in patch {
            props.insert(k.clone(), v.clone());
        }
    }
    if let Some((kind, uais)) = identity {
        w.identity_type = kind;
        w.user_assigned = uais;
    }
    "Updating".clone_into(&mut w.provisioning_state);
    let (key, location) = (ws_key(w), w.location.clone());
    sync_system_identity(shared, ctx, t, i);
    let mut stamped = t.workspaces[i].system_data.take();
    stamp(&mut stamped, t, ctx);
    t.workspaces[i].system_data = stamped;
    // Azure ML runs an update as it runs a create: 202 with `Location` and
    // `Azure-AsyncOperation`, the result read by a GET of the workspace.
    Ok(start_operation(shared, ctx, at.sub, &location, OpKind::WorkspacePut, key, t))
}

/// DELETE: soft-deletes a live workspace, or purges one with `forceToPurge=true`, as a
/// long-running operation; nothing to delete answers 204.
fn delete_workspace(shared: &Shared, ctx: &Ctx, t: &mut Tenant, at: WorkspaceAt) -> Reply {
    let purge = ctx.q("forceToPurge").is_some_and(|v| eq_ci(v, "true"));
    if let Some(i) = at.find(t, false) {
        let w = &mut t.workspaces[i];
        "Deleting".clone_into(&mut w.provisioning_state);
        let key = ws_key(w);
        let location = w.location.clone();
        return start_operation(shared, ctx, at.sub, &location, OpKind::WorkspaceDelete { purge }, key, t);
    }
    match at.find(t, true) {
        Some(i) if purge => {
            let w = t.workspaces.remove(i);
            t.workspaces.push(Workspace {
                soft_deleted: false,
                provisioning_state: "Deleting".to_owned(),
                ..w.clone()
            });
            let key = ws_key(&w);
            start_operation(shared, ctx, at.sub, &w.location, OpKind::WorkspaceDelete { purge: true }, key, t)
        }
        _ => Reply::empty(204),
    }
}
