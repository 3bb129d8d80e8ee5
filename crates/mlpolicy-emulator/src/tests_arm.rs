//! HTTP tests of ARM behaviours measured against recorded Azure traffic: resource-group
//! deletion as a long-running operation, custom role definitions, location normalisation,
//! id re-casing, volatile fields and RBAC limits.

use std::str::FromStr as _;

use reqwest::Method;
use serde_json::json;

use super::Realism;
use super::tests::{RG_PATH, SUB, poll, start};

const RG_VERSION: &str = "api-version=2025-04-01";

#[tokio::test]
async fn resource_group_delete_is_an_lro_during_which_the_group_reads_as_deleting() {
    let h = start(Realism { lro_polls: 1, ..Realism::default() }).await;
    h.rg().await;
    let uai = h.uai("uai-doomed").await;
    let rg = format!("{RG_PATH}?{RG_VERSION}");
    let del = h.arm(Method::DELETE, &rg, None).await;
    assert_eq!(del.status, 202);
    assert!(del.header("location").contains("/operationresults/"), "{:?}", del.headers);
    assert!(del.header("retry-after").is_empty(), "ARM's resource-group delete sends no Retry-After (as recorded)");

    // While it is being deleted the group still reads, as `Deleting`, and takes no writes.
    let get = h.arm(Method::GET, &rg, None).await;
    assert_eq!(get.status, 200);
    assert_eq!(get.body["properties"]["provisioningState"], "Deleting");
    let put = h.arm(Method::PUT, &rg, Some(json!({"location": "eastus"}))).await;
    assert_eq!((put.status, put.code()), (409, "ResourceGroupBeingDeleted"), "{}", put.body);
    let uai_path = format!("{}?api-version=2024-11-30", uai["id"].as_str().unwrap());
    let write_inside = h.arm(Method::PUT, &uai_path, Some(json!({"location": "eastus"}))).await;
    assert_eq!(write_inside.code(), "ResourceGroupBeingDeleted");

    // The operation answers 202 until it has taken its polls (four times a workspace's: Azure
    // deletes every resource first; the read above counted as one), then 200; the group and
    // its contents are gone.
    let location = del.header("location").to_owned();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let p = poll(&h, &location).await;
        statuses.push(p.status);
        if p.status != 202 {
            break;
        }
    }
    assert_eq!(statuses, [202, 202, 200]);
    assert_eq!(h.arm(Method::GET, &rg, None).await.status, 404);
    assert_eq!(h.arm(Method::GET, &uai_path, None).await.code(), "ResourceGroupNotFound");
    // The name is free again.
    assert_eq!(h.arm(Method::PUT, &rg, Some(json!({"location": "eastus"}))).await.status, 201);
}

#[tokio::test]
async fn reads_of_a_deleting_group_move_its_deletion_on() {
    // `az group wait --deleted` reads the group until it is gone; each read stands for one
    // `Retry-After` interval, so a waiter that never polls the operation still sees the end.
    let h = start(Realism { lro_polls: 1, ..Realism::default() }).await;
    h.rg().await;
    let rg = format!("/subscriptions/{SUB}/resourcegroups/RG1?{RG_VERSION}");
    assert_eq!(h.arm(Method::DELETE, &rg, None).await.status, 202);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let s = h.arm(Method::GET, &rg, None).await.status;
        statuses.push(s);
        if s == 404 {
            break;
        }
    }
    assert_eq!(statuses, [200, 200, 200, 404]);
}

#[tokio::test]
async fn workspace_patch_is_an_lro_and_reads_carry_what_azure_ml_fills_in() {
    let h = start(Realism { lro_polls: 1, ..Realism::default() }).await;
    h.rg().await;
    let ws =
        format!("{RG_PATH}/providers/Microsoft.MachineLearningServices/workspaces/mlw-filled?api-version=2025-06-01");
    let put = h.arm(Method::PUT, &ws, Some(json!({"location": "eastus", "properties": {}}))).await;
    assert_eq!(put.status, 202);
    poll(&h, put.header("location")).await;

    let patch = h.arm(Method::PATCH, &ws, Some(json!({"properties": {"description": "d2"}}))).await;
    assert_eq!(patch.status, 202, "Azure ML answers a PATCH as a long-running operation");
    assert!(patch.header("location").contains("/workspaceOperationsStatus/"));
    assert!(patch.header("azure-asyncoperation").contains("type=async"));
    assert!(patch.header("retry-after").is_empty(), "Azure ML sends no Retry-After");
    let status = poll(&h, patch.header("azure-asyncoperation")).await;
    assert_eq!(status.body["status"], "Succeeded");

    let got = h.arm(Method::GET, &ws, None).await;
    assert_eq!(got.status, 200);
    let p = &got.body["properties"];
    assert_eq!(p["description"], "d2");
    assert_eq!(p["provisioningState"], "Succeeded");
    for field in [
        "workspaceId",
        "discoveryUrl",
        "mlFlowTrackingUri",
        "creationTime",
        "sdkTelemetryAppInsightsKey",
        "systemDatastoresAuthMode",
    ] {
        assert!(p[field].is_string(), "{field}: {p}");
    }
    assert!(p["notebookInfo"]["fqdn"].as_str().unwrap().ends_with(".eastus.notebooks.azure.net"));
    assert_eq!(p["managedNetwork"]["isolationMode"], "Disabled");
    assert_eq!(p["ipAllowlist"], json!([]));
    assert!(p.as_object().unwrap().contains_key("applicationInsights"), "unset dependencies read as null");
    assert_eq!(got.body["sku"], json!({"name": "Basic", "tier": "Basic"}));
    assert!(got.body["etag"].is_null());
    let sd = &got.body["systemData"];
    assert_eq!(sd["createdByType"], "Application");
    // Azure ML's times: up to seven fractional digits, trailing zeros dropped.
    let created = sd["createdAt"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() <= 28, "{sd}");
    assert!(!(created.contains('.') && created.ends_with("0Z")), "trailing zeros are dropped: {created}");
    assert!(jiff::Timestamp::from_str(created).is_ok(), "{created}");
    assert!(sd["lastModifiedAt"].as_str().unwrap()[..19] >= created[..19]);
}

const CUSTOM: &str = "88888888-0000-0000-0000-000000000001";

fn custom_role(name: &str, scopes: &[String]) -> serde_json::Value {
    json!({"properties": {
        "roleName": name,
        "description": "reads workspaces",
        "permissions": [{"actions": ["Microsoft.MachineLearningServices/workspaces/read"]}],
        "assignableScopes": scopes,
    }})
}

#[tokio::test]
async fn custom_role_definitions_are_created_listed_assigned_and_deleted() {
    let h = start(Realism::default()).await;
    h.rg().await;
    let sub_scope = format!("/subscriptions/{SUB}");
    let rd = format!("{sub_scope}/providers/Microsoft.Authorization/roleDefinitions/{CUSTOM}?api-version=2022-04-01");
    let put = h.arm(Method::PUT, &rd, Some(custom_role("ml-reader", std::slice::from_ref(&RG_PATH.to_owned())))).await;
    assert_eq!(put.status, 201, "{}", put.body);
    let p = &put.body["properties"];
    assert_eq!(p["type"], "CustomRole");
    assert!(p["createdBy"].is_null(), "a create response has no creator yet: {p}");
    assert!(p["updatedBy"].is_string());
    assert_eq!(p["permissions"][0]["notDataActions"], json!([]), "all four lists are stored");
    assert_eq!(put.body["id"], format!("{sub_scope}/providers/Microsoft.Authorization/roleDefinitions/{CUSTOM}"));

    // Reads fill in the creator; an update answers 201 again and moves `updatedOn`.
    let read = h.arm(Method::GET, &rd, None).await;
    assert_eq!(read.body["properties"]["createdBy"], p["updatedBy"]);
    let again =
        h.arm(Method::PUT, &rd, Some(custom_role("ml-reader", std::slice::from_ref(&RG_PATH.to_owned())))).await;
    assert_eq!(again.status, 201);

    // Listed where assignable (the resource group), not at the subscription above it, unless
    // asked for `atScopeAndBelow()`; filtered by name and type.
    let list = |scope: &str, filter: &str| {
        format!("{scope}/providers/Microsoft.Authorization/roleDefinitions?api-version=2022-04-01&$filter={filter}")
    };
    let at_rg = h.arm(Method::GET, &list(RG_PATH, "type eq 'CustomRole'"), None).await;
    assert_eq!(at_rg.body["value"].as_array().unwrap().len(), 1, "{}", at_rg.body);
    let at_sub = h.arm(Method::GET, &list(&sub_scope, "roleName eq 'ML-READER'"), None).await;
    assert_eq!(at_sub.body["value"], json!([]));
    let below = h.arm(Method::GET, &list(&sub_scope, "atScopeAndBelow() and roleName eq 'ml-reader'"), None).await;
    assert_eq!(below.body["value"].as_array().unwrap().len(), 1);

    // Another role may not take the name.
    let other = format!(
        "{sub_scope}/providers/Microsoft.Authorization/roleDefinitions/88888888-0000-0000-0000-000000000002?api-version=2022-04-01"
    );
    let dup = h.arm(Method::PUT, &other, Some(custom_role("ML-Reader", std::slice::from_ref(&sub_scope)))).await;
    assert_eq!((dup.status, dup.code()), (409, "RoleDefinitionWithSameNameExists"));
    let no_scopes = h.arm(Method::PUT, &other, Some(custom_role("x", &[]))).await;
    assert_eq!(no_scopes.status, 400);

    // Assignable in the resource group, not at the subscription.
    let principal = h.uai("uai-custom").await["properties"]["principalId"].as_str().unwrap().to_owned();
    let ra = |scope: &str, name: &str| {
        format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}?api-version=2022-04-01")
    };
    let at_sub = h
        .arm(
            Method::PUT,
            &ra(&sub_scope, "77777777-0000-0000-0000-000000000001"),
            Some(super::tests::ra_body(CUSTOM, &principal, None)),
        )
        .await;
    assert_eq!(at_sub.code(), "RoleDefinitionDoesNotExist", "{}", at_sub.body);
    let assigned = h
        .arm(
            Method::PUT,
            &ra(RG_PATH, "77777777-0000-0000-0000-000000000002"),
            Some(super::tests::ra_body(CUSTOM, &principal, None)),
        )
        .await;
    assert_eq!(assigned.status, 201, "{}", assigned.body);

    // In use, it cannot be deleted; once free, DELETE answers the role, then 204.
    let in_use = h.arm(Method::DELETE, &rd, None).await;
    assert_eq!((in_use.status, in_use.code()), (409, "RoleDefinitionHasAssignments"));
    h.arm(Method::DELETE, &ra(RG_PATH, "77777777-0000-0000-0000-000000000002"), None).await;
    let deleted = h.arm(Method::DELETE, &rd, None).await;
    assert_eq!(deleted.status, 200);
    assert!(deleted.body["properties"]["createdBy"].is_string());
    assert_eq!(h.arm(Method::DELETE, &rd, None).await.status, 204);
    assert_eq!(h.arm(Method::GET, &rd, None).await.code(), "RoleDefinitionDoesNotExist");
}

#[tokio::test]
async fn role_assignment_writes_answer_201_with_volatile_fields_as_azure() {
    let h = start(Realism::default()).await;
    h.rg().await;
    let principal = h.uai("uai-ra").await["properties"]["principalId"].as_str().unwrap().to_owned();
    let ra = format!(
        "{RG_PATH}/providers/Microsoft.Authorization/roleAssignments/77777777-0000-0000-0000-000000000003?api-version=2022-04-01"
    );
    let reader = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
    let created = h.arm(Method::PUT, &ra, Some(super::tests::ra_body(reader, &principal, None))).await;
    assert_eq!(created.status, 201);
    let c = &created.body["properties"];
    assert!(c["createdBy"].is_null(), "{c}");
    assert_ne!(c["createdOn"], c["updatedOn"], "the create answer stamps arrival and commit apart");
    let read = h.arm(Method::GET, &ra, None).await;
    let r = &read.body["properties"];
    assert!(r["createdBy"].is_string());
    assert_eq!(r["createdOn"], c["updatedOn"], "reads show the commit time");

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let mut body = super::tests::ra_body(reader, &principal, None);
    body["properties"]["description"] = json!("changed");
    let updated = h.arm(Method::PUT, &ra, Some(body)).await;
    assert_eq!(updated.status, 201, "ARM answers an update with 201 too");
    let after = h.arm(Method::GET, &ra, None).await;
    assert_eq!(after.body["properties"]["createdOn"], r["createdOn"]);
    assert_ne!(after.body["properties"]["updatedOn"], r["updatedOn"]);
}

#[tokio::test]
async fn locations_are_normalised_and_the_azure_shapes_recase_ids_and_shuffle_keys() {
    let h = start(Realism { recase_ids: true, shuffle_keys: true, seed: Some(3), ..Realism::default() }).await;
    let rg = h.arm(Method::PUT, &format!("{RG_PATH}?{RG_VERSION}"), Some(json!({"location": "West Europe"}))).await;
    assert_eq!(rg.body["location"], "westeurope", "ARM stores and echoes the normalised name");
    // The same resource group under another spelling of its location is the same place.
    let again = h.arm(Method::PUT, &format!("{RG_PATH}?{RG_VERSION}"), Some(json!({"location": "westEurope"}))).await;
    assert_eq!(again.status, 200);

    // Over a handful of identities some ids come back re-cased; every one equals the sent id
    // case-insensitively, and re-reading gives the same casing.
    let mut recased = 0;
    for n in 0..8 {
        let path = format!("{RG_PATH}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai-{n}");
        let put = h
            .arm(Method::PUT, &format!("{path}?api-version=2024-11-30"), Some(json!({"location": "westeurope"})))
            .await;
        let id = put.body["id"].as_str().unwrap().to_owned();
        assert!(id.eq_ignore_ascii_case(&path), "{id}");
        recased += usize::from(id != path);
        let read = h.arm(Method::GET, &format!("{path}?api-version=2024-11-30"), None).await;
        assert_eq!(read.body["id"], id.as_str());
    }
    assert!(recased > 0, "with re-casing on, some ids differ from what was sent");

    // Keys come in more than one order, and the documents are the same.
    let url = format!("{RG_PATH}?{RG_VERSION}");
    let mut texts = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let resp = reqwest::Client::new().get(format!("{}{url}", h.base)).bearer_auth(&h.arm).send().await.unwrap();
        texts.insert(resp.text().await.unwrap());
    }
    assert!(texts.len() > 1, "key order varies: {texts:?}");
}

#[tokio::test]
async fn a_subscription_takes_at_most_4000_role_assignments() {
    use crate::state::{RoleAssignment, Tenant};
    // A tenant one short of the limit, spread over the subscription and a resource group.
    let mut tenant = Tenant::default();
    tenant.ensure_subscription(SUB);
    for n in 0..3_999_u32 {
        let scope = if n % 2 == 0 { format!("/subscriptions/{SUB}") } else { RG_PATH.to_owned() };
        tenant.role_assignments.push(RoleAssignment {
            name: format!("00000000-0000-4000-8000-{n:012}"),
            scope,
            role_definition_id: "acdd72a7-3385-48ef-bd42-f606fba81ae7".into(),
            principal_id: format!("10000000-0000-4000-8000-{n:012}"),
            principal_type: "User".into(),
            ..RoleAssignment::default()
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.yaml");
    std::fs::write(&state, serde_norway::to_string(&tenant).unwrap()).unwrap();
    let h =
        super::tests::start_with(crate::EmulatorConfig { state_file: Some(state), ..crate::EmulatorConfig::default() })
            .await;
    h.rg().await;
    let ra = |n: u32| {
        format!(
            "{RG_PATH}/providers/Microsoft.Authorization/roleAssignments/20000000-0000-4000-8000-{n:012}?api-version=2022-04-01"
        )
    };
    let body = |p: &str| super::tests::ra_body("acdd72a7-3385-48ef-bd42-f606fba81ae7", p, Some("User"));
    let last = h.arm(Method::PUT, &ra(1), Some(body("30000000-0000-4000-8000-000000000001"))).await;
    assert_eq!(last.status, 201, "the 4,000th fits: {}", last.body);
    let over = h.arm(Method::PUT, &ra(2), Some(body("30000000-0000-4000-8000-000000000002"))).await;
    assert_eq!((over.status, over.code()), (400, "RoleAssignmentLimitExceeded"));
    assert_eq!(over.body["error"]["message"], "No more role assignments can be created.");
    // Another subscription is not affected.
    let other = "/subscriptions/00000000-0000-0000-0000-0000000000bb";
    let elsewhere = h
        .arm(
            Method::PUT,
            &format!("{other}/providers/Microsoft.Authorization/roleAssignments/20000000-0000-4000-8000-000000000003?api-version=2022-04-01"),
            Some(body("30000000-0000-4000-8000-000000000003")),
        )
        .await;
    assert_eq!(elsewhere.status, 201, "{}", elsewhere.body);
}
