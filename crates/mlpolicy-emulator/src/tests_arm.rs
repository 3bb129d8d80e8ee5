//! HTTP tests of ARM behaviours measured against recorded Azure traffic: resource-group
//! deletion as a long-running operation, custom role definitions, location normalisation,
//! id re-casing, volatile fields and RBAC limits.

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
    assert!(!del.header("retry-after").is_empty(), "ARM's resource-group delete says when to poll");

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
    assert!(sd["createdAt"].as_str().unwrap().len() == "2024-08-20T16:43:00.5779924Z".len(), "{sd}");
    assert!(sd["lastModifiedAt"].as_str().unwrap() >= sd["createdAt"].as_str().unwrap());
}
