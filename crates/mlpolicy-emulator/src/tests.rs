//! HTTP tests: each starts an emulator on port 0 and talks to it with plain reqwest, checking
//! the wire behaviour of azure-wire.md (status codes, envelopes, headers, paging, LROs).

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::{Emulator, EmulatorConfig, Realism, Throttle};

pub(crate) const SUB: &str = "00000000-0000-0000-0000-0000000000aa";
const ARM: &str = "https://management.azure.com/.default";
const GRAPH: &str = "https://graph.microsoft.com/.default";
pub(crate) const RG_PATH: &str = "/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/rg1";

pub(crate) struct Harness {
    emu: Emulator,
    http: reqwest::Client,
    pub(crate) base: String,
    pub(crate) arm: String,
    graph: String,
}

pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Value,
}

impl Answer {
    pub(crate) fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
}

async fn token(http: &reqwest::Client, base: &str, scope: &str) -> reqwest::Response {
    http.post(format!("{base}/tenant-x/oauth2/v2.0/token"))
        .form(&[
            ("client_id", "11111111-2222-3333-4444-555555555555"),
            ("client_secret", "anything"),
            ("scope", scope),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap()
}

async fn access_token(http: &reqwest::Client, base: &str, scope: &str) -> String {
    let v: Value = token(http, base, scope).await.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_owned()
}

pub(crate) async fn start_with(cfg: EmulatorConfig) -> Harness {
    let emu = Emulator::start(cfg).await.unwrap();
    let base = emu.base_url();
    let http = reqwest::Client::new();
    let arm = access_token(&http, &base, ARM).await;
    let graph = access_token(&http, &base, GRAPH).await;
    Harness { emu, http, base, arm, graph }
}

pub(crate) async fn start(realism: Realism) -> Harness {
    start_with(EmulatorConfig { realism, ..EmulatorConfig::default() }).await
}

impl Harness {
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let url = if url.starts_with("http") { url.to_owned() } else { format!("{}{url}", self.base) };
        let mut req = self.http.request(method, url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, headers, body }
    }

    pub(crate) async fn arm(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.send(method, path, Some(&self.arm), body, &[]).await
    }

    pub(crate) async fn graph(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.send(method, &format!("/v1.0{path}"), Some(&self.graph), body, &[]).await
    }

    pub(crate) async fn realism(&self, r: &Realism) {
        let resp = self.http.put(format!("{}/_emulator/realism", self.base)).json(r).send().await.unwrap();
        assert_eq!(resp.status(), 200);
    }

    pub(crate) async fn rg(&self) {
        let a = self
            .arm(Method::PUT, &format!("{RG_PATH}?api-version=2025-04-01"), Some(json!({"location": "eastus"})))
            .await;
        assert!(a.status == 201 || a.status == 200, "{}", a.body);
    }

    pub(crate) async fn uai(&self, name: &str) -> Value {
        let a = self
            .arm(
                Method::PUT,
                &format!(
                    "{RG_PATH}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}?api-version=2024-11-30"
                ),
                Some(json!({"location": "eastus"})),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        a.body
    }
}

#[tokio::test]
async fn token_endpoint_issues_jwts_and_rejects_bad_requests() {
    let h = start(Realism::default()).await;
    let resp = token(&h.http, &h.base, ARM).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3599);
    assert_eq!(v["ext_expires_in"], 3599);
    let jwt = v["access_token"].as_str().unwrap();
    assert_eq!(jwt.split('.').count(), 3);
    let claims = super::token::payload_unverified(jwt).unwrap();
    assert_eq!(claims["aud"], "https://management.azure.com");
    assert_eq!(claims["appid"], "11111111-2222-3333-4444-555555555555");
    let oid = claims["oid"].as_str().unwrap().to_owned();
    let again = super::token::payload_unverified(&access_token(&h.http, &h.base, GRAPH).await).unwrap();
    assert_eq!(again["oid"], oid.as_str(), "the caller's object id is stable per client id");

    let bad = token(&h.http, &h.base, "https://management.azure.com/user_impersonation").await;
    assert_eq!(bad.status(), 400);
    let v: Value = bad.json().await.unwrap();
    assert_eq!(v["error"], "invalid_scope");
    assert!(v["error_description"].as_str().unwrap().starts_with("AADSTS70011:"));
    assert_eq!(v["error_codes"][0], 70011);

    let two = token(&h.http, &h.base, &format!("{ARM} {GRAPH}")).await;
    assert_eq!(two.status(), 400);
    let custom = token(&h.http, &h.base, &format!("{}/.default", h.base)).await;
    assert_eq!(custom.status(), 200, "the emulator's own base URL is an ARM audience");

    let basic = h
        .http
        .post(format!("{}/t/oauth2/v2.0/token", h.base))
        .basic_auth("app-basic", Some("pw"))
        .form(&[("scope", GRAPH), ("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 200);
    h.emu.shutdown().await;
}

#[tokio::test]
async fn apis_reject_missing_wrong_audience_malformed_and_expired_tokens() {
    let h = start(Realism::default()).await;
    let path = format!("/subscriptions/{SUB}/resourcegroups?api-version=2025-04-01");
    let ok = h.arm(Method::GET, &path, None).await;
    assert_eq!(ok.status, 200);
    assert!(!ok.header("x-ms-request-id").is_empty());
    assert!(ok.header("x-ms-routing-request-id").starts_with("EASTUS:"));
    assert!(ok.header("x-ms-ratelimit-remaining-subscription-reads").parse::<u32>().is_ok());

    let missing = h.send(Method::GET, &path, None, None, &[]).await;
    assert_eq!(missing.status, 401);
    assert!(missing.header("www-authenticate").contains("error=\"invalid_token\""));
    assert!(missing.header("www-authenticate").contains("missing 'Authorization' header"));

    let wrong = h.send(Method::GET, &path, Some(&h.graph), None, &[]).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.code(), "InvalidAuthenticationTokenAudience");

    let forged = h.send(Method::GET, &path, Some("eyJhbGciOiJub25lIn0.e30.x"), None, &[]).await;
    assert_eq!(forged.code(), "InvalidAuthenticationToken");

    let graph_wrong = h.send(Method::GET, "/v1.0/groups", Some(&h.arm), None, &[]).await;
    assert_eq!(graph_wrong.status, 401);
    assert_eq!(graph_wrong.code(), "InvalidAuthenticationToken");
    assert!(graph_wrong.body["error"]["innerError"]["request-id"].is_string());

    h.realism(&Realism { token_lifetime_s: 1, ..Realism::default() }).await;
    let short = access_token(&h.http, &h.base, ARM).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let expired = h.send(Method::GET, &path, Some(&short), None, &[]).await;
    assert_eq!(expired.status, 401);
    assert_eq!(expired.code(), "ExpiredAuthenticationToken");
    let msg = expired.body["error"]["message"].as_str().unwrap();
    assert!(msg.starts_with("The access token expiry UTC time '"), "{msg}");
    assert!(msg.contains("' is earlier than current UTC time '") && (msg.ends_with("M'.")), "{msg}");
    assert!(expired.header("www-authenticate").contains("error=\"invalid_token\""));

    let no_version = h.arm(Method::GET, &format!("/subscriptions/{SUB}/resourcegroups"), None).await;
    assert_eq!((no_version.status, no_version.code()), (400, "MissingApiVersionParameter"));
    let bad_version =
        h.arm(Method::GET, &format!("/subscriptions/{SUB}/resourcegroups?api-version=2099-01-01"), None).await;
    assert_eq!((bad_version.status, bad_version.code()), (400, "InvalidApiVersionParameter"));
    let echoed = h.send(Method::GET, &path, Some(&h.arm), None, &[("x-ms-correlation-request-id", "corr-1")]).await;
    assert_eq!(echoed.header("x-ms-correlation-request-id"), "corr-1");
    h.emu.shutdown().await;
}

pub(crate) async fn poll(h: &Harness, location: &str) -> Answer {
    h.arm(Method::GET, location, None).await
}

#[tokio::test]
async fn workspace_put_and_delete_are_location_lros_with_soft_delete() {
    let h = start(Realism { lro_polls: 2, ..Realism::default() }).await;
    h.rg().await;
    let uai = h.uai("uai-ws").await;
    let uai_id = uai["id"].as_str().unwrap().to_owned();
    assert!(uai_id.contains("/resourcegroups/rg1/"), "MSI echoes lower-case resourcegroups: {uai_id}");
    let ws = format!("{RG_PATH}/providers/Microsoft.MachineLearningServices/workspaces/mlw-one?api-version=2025-06-01");
    let body = json!({
        "location": "eastus",
        "identity": {"type": "SystemAssigned,UserAssigned", "userAssignedIdentities": {uai_id.clone(): {}}},
        "properties": {"storageAccount": "/subscriptions/x/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/st"},
    });
    let put = h.arm(Method::PUT, &ws, Some(body.clone())).await;
    assert_eq!(put.status, 202, "{}", put.body);
    let location = put.header("location").to_owned();
    assert!(location.starts_with(&h.base), "absolute Location: {location}");
    assert!(location.contains("/workspaceOperationsStatus/") && location.contains("type=location"), "{location}");
    assert_eq!(put.header("retry-after"), "", "Azure ML sends no Retry-After");
    let status_url = put.header("azure-asyncoperation").to_owned();
    assert_eq!(status_url, location.replace("type=location", "type=async"), "both LRO headers, as Azure ML");
    assert_eq!(h.arm(Method::GET, &ws, None).await.status, 404, "404 until created");
    let running = poll(&h, &status_url).await;
    assert_eq!((running.status, running.body["status"].as_str()), (200, Some("InProgress")));
    let succeeded = poll(&h, &status_url).await;
    assert_eq!((succeeded.status, succeeded.body["status"].as_str()), (200, Some("Succeeded")));
    let done = poll(&h, &location).await;
    assert_eq!(done.status, 200, "the Location poll of a finished operation answers the workspace");
    assert_eq!(done.body["properties"]["provisioningState"], "Succeeded");
    let principal = done.body["identity"]["principalId"].as_str().unwrap().to_owned();
    assert_eq!(done.body["identity"]["userAssignedIdentities"][&uai_id]["clientId"], uai["properties"]["clientId"]);
    let got = h.arm(Method::GET, &ws, None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["identity"]["type"], "SystemAssigned,UserAssigned");
    let sp = h.graph(Method::GET, &format!("/servicePrincipals/{principal}"), None).await;
    assert_eq!(sp.body["servicePrincipalType"], "ManagedIdentity");
    let listed = h
        .arm(
            Method::GET,
            &format!(
                "/subscriptions/{SUB}/providers/Microsoft.MachineLearningServices/workspaces?api-version=2025-06-01"
            ),
            None,
        )
        .await;
    assert_eq!(listed.body["value"].as_array().unwrap().len(), 1);

    let del = h.arm(Method::DELETE, &ws, None).await;
    assert_eq!(del.status, 202);
    let del_loc = del.header("location").to_owned();
    assert_eq!(poll(&h, &del_loc).await.status, 202);
    assert_eq!(poll(&h, &del_loc).await.status, 204);
    assert_eq!(h.arm(Method::GET, &ws, None).await.status, 404);
    let reuse = h.arm(Method::PUT, &ws, Some(body.clone())).await;
    assert_eq!(reuse.status, 409, "soft delete blocks the name: {}", reuse.body);

    h.realism(&Realism::default()).await;
    let purge = h.arm(Method::DELETE, &format!("{ws}&forceToPurge=true"), None).await;
    assert_eq!(purge.status, 202);
    assert_eq!(purge.header("retry-after"), "0");
    assert_eq!(poll(&h, purge.header("location")).await.status, 204);
    let again = h.arm(Method::PUT, &ws, Some(body)).await;
    assert_eq!(again.status, 202);
    assert_eq!(h.arm(Method::GET, &ws, None).await.status, 200, "lro_polls=0 completes at once");
    assert_eq!(h.arm(Method::DELETE, &ws.replace("mlw-one", "mlw-none"), None).await.status, 204);
    h.emu.shutdown().await;
}

pub(crate) fn ra_body(role: &str, principal: &str, kind: Option<&str>) -> Value {
    let mut props = json!({
        "roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{role}"),
        "principalId": principal,
    });
    if let Some(k) = kind {
        props["principalType"] = json!(k);
    }
    json!({"properties": props})
}

const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
const DS: &str = "f6c7c914-8db3-469d-8ca1-694a8f32e121";

#[tokio::test]
async fn role_assignment_semantics_follow_arm() {
    let h = start(Realism::default()).await;
    h.rg().await;
    let uai = h.uai("uai-ra").await;
    let pid = uai["properties"]["principalId"].as_str().unwrap().to_owned();
    let ra = |name: &str| {
        format!("{RG_PATH}/providers/Microsoft.Authorization/roleAssignments/{name}?api-version=2022-04-01")
    };
    let n1 = "3fa85f64-5717-4562-b3fc-2c963f66afa6";
    let n2 = "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d";
    let created = h.arm(Method::PUT, &ra(n1), Some(ra_body(READER, &pid, Some("ServicePrincipal")))).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["properties"]["scope"], RG_PATH);
    assert_eq!(
        created.body["properties"]["roleDefinitionId"],
        format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{READER}")
    );
    // A repeat answers 201 as well: every recorded successful PUT of an assignment is a 201.
    assert_eq!(h.arm(Method::PUT, &ra(n1), Some(ra_body(READER, &pid, Some("ServicePrincipal")))).await.status, 201);

    let exists = h.arm(Method::PUT, &ra(n2), Some(ra_body(READER, &pid, Some("ServicePrincipal")))).await;
    assert_eq!((exists.status, exists.code()), (409, "RoleAssignmentExists"));
    let msg = exists.body["error"]["message"].as_str().unwrap();
    assert_eq!(
        msg,
        format!(
            "The role assignment already exists. The ID of the existing role assignment is {}.",
            n1.replace('-', "")
        )
    );

    let update = h.arm(Method::PUT, &ra(n1), Some(ra_body(DS, &pid, Some("ServicePrincipal")))).await;
    assert_eq!((update.status, update.code()), (400, "RoleAssignmentUpdateNotPermitted"));
    let elsewhere = h
        .arm(
            Method::PUT,
            &format!(
                "/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments/{n1}?api-version=2022-04-01"
            ),
            Some(ra_body(READER, &pid, Some("ServicePrincipal"))),
        )
        .await;
    assert_eq!(elsewhere.code(), "RoleAssignmentUpdateNotPermitted", "names are unique tenant-wide");

    let ghost = "0b5d4a7e-1111-4222-8333-944444444444";
    let unknown = h.arm(Method::PUT, &ra(n2), Some(ra_body(DS, ghost, None))).await;
    assert_eq!((unknown.status, unknown.code()), (400, "PrincipalNotFound"));
    let looked_up = h.arm(Method::PUT, &ra(n2), Some(ra_body(DS, &pid, None))).await;
    assert_eq!(looked_up.status, 201, "without principalType ARM looks the principal up");
    assert_eq!(looked_up.body["properties"]["principalType"], "ServicePrincipal", "an identity is a service principal");
    let wrong = h.arm(Method::PUT, &ra(n2), Some(ra_body(DS, &pid, Some("User")))).await;
    assert_eq!(wrong.code(), "UnmatchedPrincipalType", "a principalType that is not the principal's");
    assert_eq!(h.arm(Method::DELETE, &ra(n2), None).await.status, 200);

    h.realism(&Realism { replication_delay_ms: 60_000, ..Realism::default() }).await;
    let fresh = h.uai("uai-fresh").await;
    let fresh_pid = fresh["properties"]["principalId"].as_str().unwrap().to_owned();
    let n3 = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
    let lagging = h.arm(Method::PUT, &ra(n3), Some(ra_body(READER, &fresh_pid, None))).await;
    assert_eq!(lagging.code(), "PrincipalNotFound", "replication delay hides new principals");
    assert!(lagging.body["error"]["message"].as_str().unwrap().contains("replication delay"));
    let typed = h.arm(Method::PUT, &ra(n3), Some(ra_body(READER, &fresh_pid, Some("ServicePrincipal")))).await;
    assert_eq!(typed.status, 201, "principalType skips the lookup");

    let sub_scope =
        format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01");
    let all = h.arm(Method::GET, &sub_scope, None).await;
    assert_eq!(all.body["value"].as_array().unwrap().len(), 2, "subscription list includes descendants");
    let at = h.arm(Method::GET, &format!("{sub_scope}&$filter=atScope()"), None).await;
    assert_eq!(at.body["value"].as_array().unwrap().len(), 0, "atScope() excludes below");
    let by_principal = h
        .arm(Method::GET, &format!("{RG_PATH}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=principalId%20eq%20'{pid}'"), None)
        .await;
    assert_eq!(by_principal.body["value"].as_array().unwrap().len(), 1);

    let del = h.arm(Method::DELETE, &ra(n1), None).await;
    assert_eq!(del.status, 200);
    assert_eq!(del.body["name"], n1);
    assert_eq!(h.arm(Method::DELETE, &ra(n1), None).await.status, 204);
    assert_eq!(h.arm(Method::GET, &ra(n1), None).await.code(), "RoleAssignmentNotFound");

    let defs = h
        .arm(Method::GET, &format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions?api-version=2022-04-01&$filter=roleName%20eq%20'AzureML%20Data%20Scientist'"), None)
        .await;
    assert_eq!(defs.body["value"][0]["name"], DS);
    let by_id = h
        .arm(
            Method::GET,
            &format!("/providers/Microsoft.Authorization/roleDefinitions/{READER}?api-version=2022-04-01"),
            None,
        )
        .await;
    assert_eq!(by_id.body["properties"]["roleName"], "Reader");
    h.emu.shutdown().await;
}

#[tokio::test]
async fn federated_credentials_enforce_limits_and_serialize_writes() {
    let h = start(Realism::default()).await;
    h.rg().await;
    h.uai("uai-fic").await;
    let fic = |n: &str| {
        format!(
            "{RG_PATH}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai-fic/federatedIdentityCredentials/{n}?api-version=2024-11-30"
        )
    };
    let body = |subject: &str| json!({"properties": {"issuer": "https://token.actions.githubusercontent.com", "subject": subject, "audiences": ["api://AzureADTokenExchange"]}});
    for i in 0..20 {
        let a = h.arm(Method::PUT, &fic(&format!("fic-{i}")), Some(body(&format!("repo:o/r:env:{i}")))).await;
        assert_eq!(a.status, 201, "{}", a.body);
    }
    assert_eq!(h.arm(Method::PUT, &fic("fic-0"), Some(body("repo:o/r:env:0"))).await.status, 200);
    let cap = h.arm(Method::PUT, &fic("fic-20"), Some(body("repo:o/r:env:20"))).await;
    assert_eq!(cap.status, 400);
    let dup = h.arm(Method::PUT, &fic("fic-1"), Some(body("repo:o/r:env:2"))).await;
    assert_eq!(
        dup.body["error"]["message"],
        "Issuer and subject combination already exists for this Managed Identity."
    );
    let mut two = body("repo:o/r:env:x");
    two["properties"]["audiences"] = json!(["a", "b"]);
    assert_eq!(
        h.arm(Method::PUT, &fic("fic-1"), Some(two)).await.body["error"]["message"],
        "Federated identity credentials must have exactly one audience."
    );
    assert_eq!(h.arm(Method::PUT, &fic("-bad"), Some(body("x"))).await.status, 400);
    let orphan = h.arm(Method::PUT, &fic("ok1").replace("uai-fic", "nope"), Some(body("x"))).await;
    assert_eq!((orphan.status, orphan.code()), (404, "ParentResourceNotFound"));

    let mut seen = 0;
    let mut url = format!(
        "{RG_PATH}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai-fic/federatedIdentityCredentials?api-version=2024-11-30&$top=7"
    );
    loop {
        let page = h.arm(Method::GET, &url, None).await;
        seen += page.body["value"].as_array().unwrap().len();
        match page.body["nextLink"].as_str() {
            Some(next) => url = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, 20);

    assert_eq!(h.arm(Method::DELETE, &fic("fic-19"), None).await.status, 200);
    assert_eq!(h.arm(Method::DELETE, &fic("fic-19"), None).await.status, 204);
    h.realism(&Realism { latency_ms: 300, ..Realism::default() }).await;
    let (url_a, url_b) = (fic("fic-a"), fic("fic-b"));
    let (a, b) = tokio::join!(
        h.arm(Method::PUT, &url_a, Some(body("repo:o/r:a"))),
        h.arm(Method::PUT, &url_b, Some(body("repo:o/r:b")))
    );
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409]);
    let conflict = if a.status == 409 { a } else { b };
    assert_eq!(conflict.code(), "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity");
    h.emu.shutdown().await;
}

/// The lookup tables behind the lists (credentials by identity, directory objects by id and
/// UPN) must follow every change: positions shift when something earlier is deleted, and a
/// deleted object's id or UPN may come back as another object.
#[tokio::test]
async fn lists_and_lookups_follow_every_change() {
    let h = start(Realism::default()).await;
    h.rg().await;
    h.uai("uai-a").await;
    h.uai("uai-b").await;
    let fic = |uai: &str, n: &str| {
        format!(
            "{RG_PATH}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{uai}/federatedIdentityCredentials/{n}?api-version=2024-11-30"
        )
    };
    let body = |subject: &str| json!({"properties": {"issuer": "https://token.actions.githubusercontent.com", "subject": subject, "audiences": ["api://AzureADTokenExchange"]}});
    let names = |uai: &'static str| {
        let h = &h;
        async move {
            let url = format!(
                "{RG_PATH}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{uai}/federatedIdentityCredentials?api-version=2024-11-30"
            );
            let a = h.arm(Method::GET, &url, None).await;
            assert_eq!(a.status, 200, "{}", a.body);
            a.body["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    for (uai, n) in [("uai-a", "fic-a1"), ("uai-b", "fic-b1"), ("uai-a", "fic-a2")] {
        assert_eq!(h.arm(Method::PUT, &fic(uai, n), Some(body(n))).await.status, 201);
    }
    assert_eq!(names("uai-a").await, ["fic-a1", "fic-a2"]);
    assert_eq!(names("uai-b").await, ["fic-b1"]);
    // Deleting an earlier credential shifts the later ones; the count comes back with a new one.
    assert_eq!(h.arm(Method::DELETE, &fic("uai-b", "fic-b1"), None).await.status, 200);
    assert_eq!(h.arm(Method::PUT, &fic("uai-a", "fic-a3"), Some(body("fic-a3"))).await.status, 201);
    assert_eq!(names("uai-a").await, ["fic-a1", "fic-a2", "fic-a3"]);
    assert!(names("uai-b").await.is_empty());
    // An identity deleted and made again has no credentials.
    let uai_a =
        format!("{RG_PATH}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai-a?api-version=2024-11-30");
    assert_eq!(h.arm(Method::DELETE, &uai_a, None).await.status, 200);
    let gone = h.arm(Method::GET, &fic("uai-a", "fic-a1").replace("/fic-a1?", "?"), None).await;
    assert_eq!((gone.status, gone.code()), (404, "ParentResourceNotFound"));
    h.uai("uai-a").await;
    assert!(names("uai-a").await.is_empty());

    // Users: a deleted user's UPN can name a new user, whose id is what lookups find.
    let user = |upn: &str| json!({"userPrincipalName": upn, "displayName": upn});
    let first = h.graph(Method::POST, "/users", Some(user("ann@contoso.com"))).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let other = h.graph(Method::POST, "/users", Some(user("bob@contoso.com"))).await;
    let first_id = first.body["id"].as_str().unwrap().to_owned();
    assert_eq!(h.graph(Method::GET, "/users/ann@contoso.com", None).await.body["id"], first_id.as_str());
    assert_eq!(h.graph(Method::DELETE, &format!("/users/{first_id}"), None).await.status, 204);
    assert_eq!(h.graph(Method::GET, "/users/ann@contoso.com", None).await.status, 404);
    assert_eq!(h.graph(Method::GET, &format!("/directoryObjects/{first_id}"), None).await.status, 404);
    let again = h.graph(Method::POST, "/users", Some(user("ann@contoso.com"))).await;
    let again_id = again.body["id"].as_str().unwrap();
    assert_ne!(again_id, first_id);
    assert_eq!(h.graph(Method::GET, "/users/ANN@contoso.com", None).await.body["id"], again_id);
    assert_eq!(h.graph(Method::GET, &format!("/users/{}", other.body["id"].as_str().unwrap()), None).await.status, 200);
    h.emu.shutdown().await;
}

fn group_body(name: &str) -> Value {
    json!({"displayName": name, "mailEnabled": false, "mailNickname": name, "securityEnabled": true})
}

#[tokio::test]
async fn graph_groups_upsert_members_and_owners() {
    let h = start(Realism::default()).await;
    let path = "/v1.0/groups(uniqueName='ml-admins')";
    let missing = h.send(Method::PATCH, path, Some(&h.graph), Some(group_body("ml-admins")), &[]).await;
    assert_eq!((missing.status, missing.code()), (404, "Request_ResourceNotFound"));
    let created = h
        .send(Method::PATCH, path, Some(&h.graph), Some(group_body("ml-admins")), &[("Prefer", "create-if-missing")])
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["uniqueName"], "ml-admins");
    let gid = created.body["id"].as_str().unwrap().to_owned();
    let again = h
        .send(
            Method::PATCH,
            path,
            Some(&h.graph),
            Some(json!({"description": "d"})),
            &[("Prefer", "create-if-missing")],
        )
        .await;
    assert_eq!(again.status, 204);
    let found =
        h.graph(Method::GET, "/groups?$filter=uniqueName%20eq%20'ml-admins'&$select=id,description", None).await;
    assert_eq!(found.body["value"][0]["description"], "d");
    assert!(found.body["value"][0].get("displayName").is_none(), "$select projects");

    let p1 = h.graph(Method::POST, "/groups", Some(group_body("dup"))).await;
    let p2 = h.graph(Method::POST, "/groups", Some(group_body("dup"))).await;
    assert_eq!((p1.status, p2.status), (201, 201));
    assert_ne!(p1.body["id"], p2.body["id"], "POST /groups is not idempotent");

    let user = h
        .graph(
            Method::POST,
            "/users",
            Some(json!({"userPrincipalName": "guest_x.com#EXT#@t.onmicrosoft.com", "displayName": "Guest"})),
        )
        .await;
    assert_eq!(user.status, 201);
    let uid = user.body["id"].as_str().unwrap().to_owned();
    let by_upn = h.graph(Method::GET, "/users/guest_x.com%23EXT%23@t.onmicrosoft.com", None).await;
    assert_eq!(by_upn.body["id"], uid.as_str());

    let reference = json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{uid}")});
    let add = h.graph(Method::POST, &format!("/groups/{gid}/members/$ref"), Some(reference.clone())).await;
    assert_eq!(add.status, 204);
    let dup = h.graph(Method::POST, &format!("/groups/{gid}/members/$ref"), Some(reference.clone())).await;
    assert_eq!((dup.status, dup.code()), (400, "Request_BadRequest"));
    assert_eq!(
        dup.body["error"]["message"],
        "One or more added object references already exist for the following modified properties: 'members'."
    );
    assert!(dup.body["error"]["innerError"]["date"].is_string());
    let ghost =
        json!({"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/0b5d4a7e-1111-4222-8333-944444444444"});
    assert_eq!(h.graph(Method::POST, &format!("/groups/{gid}/members/$ref"), Some(ghost)).await.status, 404);
    let members = h.graph(Method::GET, &format!("/groups/{gid}/members"), None).await;
    assert_eq!(members.body["value"][0]["@odata.type"], "#microsoft.graph.user");
    assert_eq!(h.graph(Method::DELETE, &format!("/groups/{gid}/members/{uid}/$ref"), None).await.status, 204);
    assert_eq!(h.graph(Method::DELETE, &format!("/groups/{gid}/members/{uid}/$ref"), None).await.status, 404);

    assert_eq!(h.graph(Method::POST, &format!("/groups/{gid}/owners/$ref"), Some(reference)).await.status, 204);
    let last = h.graph(Method::DELETE, &format!("/groups/{gid}/owners/{uid}/$ref"), None).await;
    assert_eq!(last.status, 400);
    assert_eq!(
        last.body["error"]["message"],
        "The group must have at least one owner, hence this owner cannot be removed."
    );
    h.emu.shutdown().await;
}

#[tokio::test]
async fn graph_batch_limits_dependencies_and_inner_failures() {
    let h = start(Realism::default()).await;
    let too_many: Vec<Value> =
        (0..21).map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/groups"})).collect();
    let big = h.graph(Method::POST, "/$batch", Some(json!({"requests": too_many}))).await;
    assert_eq!(big.status, 400);
    let dup = h.graph(Method::POST, "/$batch", Some(json!({"requests": [{"id": "a", "method": "GET", "url": "/groups"}, {"id": "A", "method": "GET", "url": "/users"}]}))).await;
    assert_eq!(dup.status, 400);
    let batch = json!({"requests": [
        {"id": "1", "method": "POST", "url": "/groups", "headers": {"Content-Type": "application/json"}, "body": group_body("b1")},
        {"id": "2", "method": "GET", "url": "/groups/0b5d4a7e-1111-4222-8333-944444444444"},
        {"id": "3", "method": "GET", "url": "/groups?$top=1", "dependsOn": ["2"]},
        {"id": "4", "method": "GET", "url": "/groups", "dependsOn": ["1"]},
    ]});
    let r = h.graph(Method::POST, "/$batch", Some(batch)).await;
    assert_eq!(r.status, 200);
    let status = |id: &str| {
        r.body["responses"].as_array().unwrap().iter().find(|x| x["id"] == id).unwrap()["status"].as_u64().unwrap()
    };
    assert_eq!((status("1"), status("2"), status("3"), status("4")), (201, 404, 424, 200));

    h.realism(&Realism {
        throttle: Some(Throttle { graph_capacity: 1, graph_refill: 0.001, ..Throttle::default() }),
        ..Realism::default()
    })
    .await;
    let r = h.graph(Method::POST, "/$batch", Some(json!({"requests": [{"id": "1", "method": "GET", "url": "/users"}, {"id": "2", "method": "GET", "url": "/users"}]}))).await;
    assert_eq!(r.status, 200);
    let throttled: Vec<&Value> =
        r.body["responses"].as_array().unwrap().iter().filter(|x| x["status"] == 429).collect();
    assert_eq!(throttled.len(), 1);
    assert!(throttled[0]["headers"]["Retry-After"].is_string());
    // Both items spent the one-unit budget: each says so (docs/azure-wire.md §7.6).
    for item in r.body["responses"].as_array().unwrap() {
        assert_eq!(item["headers"]["x-ms-resource-unit"], "1");
        assert_eq!(item["headers"]["x-ms-throttle-limit-percentage"], "1.00");
    }
    h.emu.shutdown().await;
}

#[tokio::test]
async fn lists_page_with_absolute_next_links_and_empty_pages() {
    let h = start(Realism { page_size: 2, ..Realism::default() }).await;
    for i in 0..4 {
        assert_eq!(h.graph(Method::POST, "/groups", Some(group_body(&format!("g{i}")))).await.status, 201);
    }
    let mut sizes = Vec::new();
    let mut url = format!("{}/v1.0/groups", h.base);
    loop {
        let page = h.send(Method::GET, &url, Some(&h.graph), None, &[]).await;
        sizes.push(page.body["value"].as_array().unwrap().len());
        match page.body["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(next.starts_with(&h.base));
                url = next.to_owned();
            }
            None => break,
        }
    }
    assert_eq!(sizes, [2, 2, 0]);
    let top = h.graph(Method::GET, "/groups?$top=1000", None).await;
    assert_eq!(top.status, 400);
    assert_eq!(
        top.body["error"]["message"],
        "Invalid page size specified: '1000'. Must be between 1 and 999 inclusive."
    );

    h.rg().await;
    for name in ["uai-a", "uai-b", "uai-c"] {
        h.uai(name).await;
    }
    let first = h
        .arm(
            Method::GET,
            &format!("{RG_PATH}/providers/Microsoft.ManagedIdentity/userAssignedIdentities?api-version=2024-11-30"),
            None,
        )
        .await;
    assert_eq!(first.body["value"].as_array().unwrap().len(), 2);
    let next = first.body["nextLink"].as_str().unwrap();
    assert!(next.starts_with(&h.base) && next.contains("api-version=2024-11-30"));
    let second = h.arm(Method::GET, next, None).await;
    assert_eq!(second.body["value"].as_array().unwrap().len(), 1);
    assert!(second.body.get("nextLink").is_none());
    h.emu.shutdown().await;
}

#[tokio::test]
async fn throttling_answers_429_with_retry_after() {
    let throttle = Throttle { arm_read_capacity: 2, arm_read_refill: 0.01, ..Throttle::default() };
    let h = start(Realism { throttle: Some(throttle), ..Realism::default() }).await;
    let path = format!("/subscriptions/{SUB}/resourcegroups?api-version=2025-04-01");
    assert_eq!(h.arm(Method::GET, &path, None).await.header("x-ms-ratelimit-remaining-subscription-reads"), "1");
    assert_eq!(h.arm(Method::GET, &path, None).await.status, 200);
    let t = h.arm(Method::GET, &path, None).await;
    assert_eq!((t.status, t.code()), (429, "SubscriptionRequestsThrottled"));
    assert!(t.header("retry-after").parse::<u64>().unwrap() >= 1);
    assert!(
        h.arm(Method::PUT, &format!("{RG_PATH}?api-version=2025-04-01"), Some(json!({"location": "eastus"})))
            .await
            .status
            < 300,
        "writes have their own bucket"
    );

    h.realism(&Realism {
        throttle: Some(Throttle { graph_capacity: 1, graph_refill: 0.01, ..Throttle::default() }),
        ..Realism::default()
    })
    .await;
    let first = h.graph(Method::GET, "/groups", None).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-ms-resource-unit"), "1");
    assert_eq!(first.header("x-ms-throttle-limit-percentage"), "1.00", "the budget of one unit is spent");
    let g = h.graph(Method::GET, "/groups", None).await;
    assert_eq!((g.status, g.code()), (429, "TooManyRequests"));
    assert!(!g.header("retry-after").is_empty());
    let stats: Value = h.http.get(format!("{}/_emulator/stats", h.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats["throttled"], 2);
    assert_eq!(stats["arm_throttled"], 1, "the Graph 429 is not an ARM one");
    assert!(stats["arm_read"].as_u64().unwrap() >= 3);
    h.emu.shutdown().await;
}

#[tokio::test]
async fn faults_and_dropped_connections_are_injected() {
    let h = start(Realism::default()).await;
    h.realism(&Realism { fault_rate: 1.0, seed: Some(3), ..Realism::default() }).await;
    let a = h.arm(Method::GET, &format!("/subscriptions/{SUB}/resourcegroups?api-version=2025-04-01"), None).await;
    assert!(a.status == 500 || a.status == 503);
    assert!(a.code() == "InternalServerError" || a.code() == "ServiceUnavailable");
    h.realism(&Realism { drop_rate: 1.0, seed: Some(3), ..Realism::default() }).await;
    let err = h.http.get(format!("{}/v1.0/groups", h.base)).bearer_auth(&h.graph).send().await;
    assert!(err.is_err(), "connection closed without a response");
    h.realism(&Realism::default()).await;
    assert_eq!(h.graph(Method::GET, "/groups", None).await.status, 200);
    h.emu.shutdown().await;
}

#[tokio::test]
async fn replication_delay_hides_new_graph_objects() {
    let h = start(Realism { replication_delay_ms: 400, ..Realism::default() }).await;
    let g = h.graph(Method::POST, "/groups", Some(group_body("late"))).await;
    let gid = g.body["id"].as_str().unwrap().to_owned();
    assert_eq!(h.graph(Method::GET, &format!("/groups/{gid}"), None).await.status, 404);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(h.graph(Method::GET, &format!("/groups/{gid}"), None).await.status, 200);
    h.emu.shutdown().await;
}

#[tokio::test]
async fn state_is_saved_and_loaded_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("emulator.yaml");
    let seed = dir.path().join("seed.yaml");
    std::fs::write(
        &seed,
        format!("subscriptions:\n  - id: {SUB}\n    display_name: prod\nusers:\n  - user_principal_name: alice@contoso.com\ngroups:\n  - display_name: ml-admins\n    members: [alice@contoso.com]\n"),
    )
    .unwrap();
    let cfg = EmulatorConfig {
        state_file: Some(state.clone()),
        seed_file: Some(seed),
        strict_auth: false,
        ..EmulatorConfig::default()
    };
    let h = start_with(cfg.clone()).await;
    h.rg().await;
    h.uai("uai-keep").await;
    let alice = h.graph(Method::GET, "/users/alice@contoso.com", None).await;
    assert_eq!(alice.status, 200);
    let dump = h.http.get(format!("{}/_emulator/state", h.base)).send().await.unwrap().text().await.unwrap();
    assert!(dump.contains("uai-keep"));
    let before = h.emu.tenant().await;
    h.emu.shutdown().await;
    assert!(state.exists());

    std::fs::write(dir.path().join("seed.yaml"), "users: []\n").unwrap();
    let h2 = start_with(cfg).await;
    assert_eq!(h2.emu.tenant().await, before, "the state file wins over the seed");
    let got = h2
        .arm(
            Method::GET,
            &format!(
                "{RG_PATH}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai-keep?api-version=2024-11-30"
            ),
            None,
        )
        .await;
    assert_eq!(got.status, 200);
    let members = h2.graph(Method::GET, &format!("/groups/{}/members", before.groups[0].id), None).await;
    assert_eq!(members.body["value"][0]["userPrincipalName"], "alice@contoso.com");
    h2.emu.shutdown().await;
}

#[tokio::test]
async fn strict_auth_accepts_only_known_apps_and_subscriptions() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.yaml");
    std::fs::write(
        &seed,
        format!("tenant_id: 5f3c9a52-0000-4000-8000-000000000001\nsubscriptions:\n  - id: {SUB}\napplications:\n  - display_name: deployer\n    app_id: 11111111-2222-3333-4444-555555555555\n    password_credentials:\n      - secret_text: anything\n"),
    )
    .unwrap();
    let cfg = EmulatorConfig { seed_file: Some(seed), strict_auth: true, ..EmulatorConfig::default() };
    let emu = Emulator::start(cfg).await.unwrap();
    let base = emu.base_url();
    let http = reqwest::Client::new();
    let form = |id: &'static str, secret: &'static str| {
        [("client_id", id), ("client_secret", secret), ("scope", ARM), ("grant_type", "client_credentials")]
    };
    let url = format!("{base}/5f3c9a52-0000-4000-8000-000000000001/oauth2/v2.0/token");
    let ok = http.post(&url).form(&form("11111111-2222-3333-4444-555555555555", "anything")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let tok: Value = ok.json().await.unwrap();
    let wrong = http.post(&url).form(&form("11111111-2222-3333-4444-555555555555", "nope")).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let v: Value = wrong.json().await.unwrap();
    assert_eq!(v["error"], "invalid_client");
    let stranger = http.post(&url).form(&form("99999999-2222-3333-4444-555555555555", "x")).send().await.unwrap();
    assert_eq!(stranger.status(), 400);
    let other_sub = http
        .get(format!("{base}/subscriptions/00000000-0000-0000-0000-0000000000bb/resourcegroups?api-version=2025-04-01"))
        .bearer_auth(tok["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(other_sub.status(), 404);
    emu.shutdown().await;
}

#[tokio::test]
async fn tls_serves_with_a_ca_clients_can_trust() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.yaml");
    let emu =
        Emulator::start(EmulatorConfig { tls: true, state_file: Some(state.clone()), ..EmulatorConfig::default() })
            .await
            .unwrap();
    let base = emu.base_url();
    assert!(base.starts_with("https://127.0.0.1:"));
    let pem = emu.ca_cert_pem().unwrap();
    assert_eq!(std::fs::read_to_string(dir.path().join("state.yaml.ca.pem")).unwrap(), pem);
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let tok = token(&http, &base, ARM).await;
    assert_eq!(tok.status(), 200);
    emu.shutdown().await;
}

#[tokio::test]
async fn malformed_input_gets_azure_shaped_4xx() {
    let h = start(Realism::default()).await;
    h.rg().await;
    let raw = |method: Method, path: &str, body: &'static str, token: &str| {
        h.http
            .request(method, format!("{}{path}", h.base))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let cases: Vec<(Method, String, &'static str, &str)> = vec![
        (Method::PUT, format!("{RG_PATH}?api-version=2025-04-01"), "{not json", &h.arm),
        (Method::PUT, format!("{RG_PATH}?api-version=2025-04-01"), "[]", &h.arm),
        (
            Method::PUT,
            format!("{RG_PATH}/providers/Microsoft.Authorization/roleAssignments/not-a-guid?api-version=2022-04-01"),
            "{}",
            &h.arm,
        ),
        (
            Method::PUT,
            format!("{RG_PATH}/providers/Microsoft.MachineLearningServices/workspaces/ws1?api-version=2025-06-01"),
            "{\"location\":\"eastus\"}",
            &h.arm,
        ),
        (
            Method::GET,
            format!(
                "{RG_PATH}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=%E2%82%AC%E2%82%AC%E2%82%AC%E2%82%AC"
            ),
            "",
            &h.arm,
        ),
        (Method::GET, format!("/subscriptions/{SUB}/resourcegroups?api-version=2025-04-01&$skipToken=%%%"), "", &h.arm),
        (Method::GET, "/v1.0/groups?$filter=%E2%82%AC%E2%82%AC%E2%82%AC%E2%82%AC(".to_owned(), "", &h.graph),
        (Method::GET, "/v1.0/groups?$filter=nope%20eq%20'x'".to_owned(), "", &h.graph),
        (Method::POST, "/v1.0/groups".to_owned(), "{\"displayName\": 3}", &h.graph),
        (Method::POST, "/v1.0/$batch".to_owned(), "{\"requests\": 5}", &h.graph),
        (Method::PATCH, "/v1.0/groups(uniqueName='x".to_owned(), "{}", &h.graph),
        (Method::GET, "/v1.0/nothing/here".to_owned(), "", &h.graph),
    ];
    for (method, path, body, token) in cases {
        let resp = raw(method, &path, body, token).await.unwrap();
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!((400..500).contains(&status), "{path}: {status}");
        assert!(v["error"]["code"].is_string(), "{path}: {v}");
    }
    let form = h.http.post(format!("{}/t/oauth2/v2.0/token", h.base)).body("%%%&&==").send().await.unwrap();
    assert_eq!(form.status(), 400);
    h.emu.shutdown().await;
}
