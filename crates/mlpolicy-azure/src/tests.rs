//! Tests for the Azure client: pure parts directly, wire handling against a scripted axum
//! server that replays canned Azure responses in order.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use axum::{Router, extract::State, response::Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{
    arm::{encode_component, odata_quote},
    auth::refresh_time,
    error::parse_error_body,
    http::{Bucket, Decision, Replay, backoff_delay, decide, retry_after, take_token},
    *,
};

// ---- pure parts ------------------------------------------------------------------------------

#[test]
fn parses_arm_error_with_details() {
    let body = br#"{"error":{"code":"InvalidTemplateDeployment","message":"outer",
        "details":[{"code":"LinkedAuthorizationFailed","message":"inner"}]}}"#;
    let p = parse_error_body(body);
    assert_eq!(p.code, "InvalidTemplateDeployment");
    assert_eq!(p.detail_codes, vec!["LinkedAuthorizationFailed"]);
    let err = AzureError::from_response("op", 400, body, None, None);
    assert!(err.has_code("linkedauthorizationfailed"));
    assert!(err.hint.as_deref().unwrap_or("").contains("linked"));
}

#[test]
fn parses_graph_error_with_inner_ids() {
    let body = br#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation.",
        "innerError":{"request-id":"r-1","client-request-id":"c-1"}}}"#;
    let err = AzureError::from_response("op", 403, body, None, None);
    assert_eq!(err.code, "Authorization_RequestDenied");
    assert_eq!(err.request_id.as_deref(), Some("r-1"));
    assert!(err.hint.as_deref().unwrap_or("").contains("GroupMember.ReadWrite.All"));
}

#[test]
fn parses_token_endpoint_error() {
    let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret.","trace_id":"t","correlation_id":"c"}"#;
    let err = AzureError::from_response("get token", 401, body, None, None);
    assert_eq!(err.code, "invalid_client");
    assert!(err.message.starts_with("AADSTS7000215"));
    assert_eq!(err.correlation_id.as_deref(), Some("c"));
}

#[test]
fn malformed_bodies_do_not_panic() {
    for body in [&b""[..], b"<html>bad gateway</html>", b"{", b"[1,2]", b"{\"error\":42}", &[0xff, 0xfe]] {
        let err = AzureError::from_response("op", 502, body, Some("rid".into()), None);
        assert_eq!(err.status, 502);
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn parses_existing_assignment_id() {
    let m = "The role assignment already exists. The ID of the existing role assignment is 716c4d159bc8476da3c16ccb70082517.";
    assert_eq!(
        parse_existing_assignment_id(m).map(|u| u.hyphenated().to_string()).as_deref(),
        Some("716c4d15-9bc8-476d-a3c1-6ccb70082517")
    );
    let dashed = "exists: 716c4d15-9bc8-476d-a3c1-6ccb70082517";
    assert!(parse_existing_assignment_id(dashed).is_some());
    assert_eq!(parse_existing_assignment_id("The role assignment already exists."), None);
    assert_eq!(parse_existing_assignment_id("id 716c4d159bc8476da3c16ccb7008251"), None);
}

#[test]
fn retry_after_headers() {
    let mut h = reqwest::header::HeaderMap::new();
    assert_eq!(retry_after(&h), None);
    h.insert("retry-after", "7".parse().unwrap());
    assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
    h.insert("retry-after-ms", "250".parse().unwrap());
    assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
    let mut d = reqwest::header::HeaderMap::new();
    d.insert("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
    assert_eq!(retry_after(&d), None);
}

#[test]
fn backoff_is_bounded_and_grows() {
    let policy = RetryPolicy::default();
    for attempt in 1..=40 {
        for jitter in [0.0, 0.5, 0.999] {
            let d = backoff_delay(attempt, &policy, jitter);
            assert!(d <= policy.max_delay, "attempt {attempt}: {d:?}");
            assert!(d >= policy.base_delay / 2);
        }
    }
    assert!(backoff_delay(3, &policy, 0.0) > backoff_delay(1, &policy, 0.999));
}

#[test]
fn retry_decisions() {
    assert_eq!(decide(429, Replay::Unsafe), Decision::Retry);
    assert_eq!(decide(503, Replay::Safe), Decision::Retry);
    assert_eq!(decide(503, Replay::Unsafe), Decision::Done);
    assert_eq!(decide(500, Replay::Unsafe), Decision::Done);
    assert_eq!(decide(404, Replay::Safe), Decision::Done);
    assert_eq!(decide(409, Replay::Safe), Decision::Done);
}

#[test]
fn pacing_holds_throttles_under_five_percent() {
    assert_eq!(take_token(10.0, 0.0, Bucket::Reads, 250.0).1, Duration::ZERO);
    let (left, wait) = take_token(0.0, 0.0, Bucket::Reads, 250.0);
    assert!(left < 0.0 && wait > Duration::from_millis(40) && wait < Duration::from_millis(45));

    // Simulate a 250/25 bucket against a client that wants 200 req/s with 16 requests in
    // flight: the headers it sees lag 16 requests behind.
    let (size, refill) = Bucket::Reads.limits();
    let mut server = f64::from(size);
    let mut mirror: Option<f64> = None;
    let mut t = 0.0_f64;
    let mut last = 0.0_f64;
    let mut observed: VecDeque<u32> = VecDeque::new();
    let (mut sent, mut throttled) = (0u32, 0u32);
    while sent < 5000 {
        let mut gap = 1.0 / 200.0;
        if let Some(m) = mirror {
            let (left, wait) = take_token(m, t + gap - last, Bucket::Reads, 250.0);
            mirror = Some(left);
            last = t + gap;
            gap += wait.as_secs_f64();
        }
        t += gap;
        server = (server + gap * refill).min(f64::from(size));
        sent += 1;
        if server >= 1.0 {
            server -= 1.0;
        } else {
            throttled += 1;
        }
        #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "bounded 0..=250")]
        observed.push_back(server.floor() as u32);
        if observed.len() > 16 {
            let seen = f64::from(observed.pop_front().unwrap_or(size));
            mirror = Some(mirror.map_or(seen, |m| m.min(seen)));
        }
    }
    assert!(f64::from(throttled) / f64::from(sent) < 0.05, "{throttled} of {sent} throttled");
    // Close to the bucket's own pace: (5000 - 250) / 25 s.
    assert!(t < 190.0 * 1.15, "{t}");
}

#[test]
fn refresh_before_expiry() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    assert_eq!(refresh_time(now, now + Duration::from_secs(3600)), now + Duration::from_secs(3300));
    assert_eq!(refresh_time(now, now + Duration::from_secs(120)), now + Duration::from_secs(60));
}

#[test]
fn secrets_never_print() {
    let s = SecretString::new("hunter2");
    assert_eq!(format!("{s:?}"), "***");
    assert_eq!(format!("{s}"), "***");
    let source = TokenSource {
        arm_token: Some(SecretString::new("arm-token-value")),
        graph_token: None,
        credential: Some(Credential::ClientSecret { client_id: "app".into(), secret: SecretString::new("pa55") }),
    };
    let debug = format!("{source:?} {}", source.describe());
    assert!(!debug.contains("arm-token-value") && !debug.contains("pa55"), "{debug}");
    let opts = ClientOptions::default();
    let client = AzureClient::new(Cloud::Public, "t", source, opts).unwrap();
    let debug = format!("{client:?}");
    assert!(!debug.contains("pa55") && !debug.contains("arm-token-value"), "{debug}");
}

fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect();
    move |k| map.get(k).cloned()
}

#[test]
fn credential_order_from_environment() {
    let opts = AuthOptions::default();
    let all = [
        ("AZURE_CLIENT_ID", "app"),
        ("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token"),
        ("ACTIONS_ID_TOKEN_REQUEST_URL", "https://gh/x?api-version=2.0"),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "gh-secret"),
        ("AZURE_CLIENT_SECRET", "s3cret"),
    ];
    let s = TokenSource::from_lookup(&opts, lookup(&all)).unwrap();
    assert!(matches!(s.credential, Some(Credential::WorkloadIdentity { .. })));
    let s = TokenSource::from_lookup(&opts, lookup(&all[..1].iter().chain(&all[2..]).copied().collect::<Vec<_>>()))
        .unwrap();
    assert!(matches!(s.credential, Some(Credential::GitHubOidc { .. })));
    let s = TokenSource::from_lookup(&opts, lookup(&[("AZURE_CLIENT_ID", "app"), ("AZURE_CLIENT_SECRET", "s3cret")]))
        .unwrap();
    assert!(matches!(s.credential, Some(Credential::ClientSecret { .. })));
    assert_eq!(s.warnings().len(), 1);
    let s = TokenSource::from_lookup(
        &opts,
        lookup(&[("AZURE_CLIENT_ID", "app"), ("AZURE_CLIENT_SECRET", "s3cret"), ("IDENTITY_ENDPOINT", "http://x")]),
    )
    .unwrap();
    assert!(matches!(s.credential, Some(Credential::ManagedIdentity { client_id: Some(_) })));
    let s = TokenSource::from_lookup(
        &opts,
        lookup(&[
            ("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID", "sc"),
            ("SYSTEM_ACCESSTOKEN", "x"),
            ("AZURESUBSCRIPTION_CLIENT_ID", "a"),
        ]),
    )
    .unwrap();
    assert!(matches!(s.credential, Some(Credential::AzurePipelines { .. })));
    let s =
        TokenSource::from_lookup(&opts, lookup(&[("MLPOLICY_ARM_TOKEN", "a"), ("MLPOLICY_GRAPH_TOKEN", "g")])).unwrap();
    assert!(s.credential.is_none() && s.arm_token.is_some());
    assert!(TokenSource::from_lookup(&opts, lookup(&[])).is_err());
    assert!(TokenSource::from_lookup(&opts, lookup(&[("MLPOLICY_AUTH", "github")])).is_err());
    let s = TokenSource::from_lookup(&opts, lookup(&[("MLPOLICY_AUTH", "cli")])).unwrap();
    assert_eq!(s.credential, Some(Credential::AzureCli));
}

#[test]
fn ids_and_names() {
    let a = role_assignment_name("/subscriptions/S/resourceGroups/RG", "P", "F6C7C914-8db3-469d-8ca1-694a8f32e121");
    let b = role_assignment_name("/subscriptions/s/resourcegroups/rg", "p", "f6c7c914-8db3-469d-8ca1-694a8f32e121");
    let c = role_assignment_name("/subscriptions/s/resourcegroups/rg2", "p", "f6c7c914-8db3-469d-8ca1-694a8f32e121");
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.get_version_num(), 5);
    assert_eq!(odata_quote("O'Brien"), "'O''Brien'");
    assert_eq!(encode_component("principalId eq 'x'"), "principalId%20eq%20%27x%27");
    assert_eq!(
        super::graph::encode_segment("bob_x.com#EXT#@t.onmicrosoft.com"),
        "bob_x.com%23EXT%23@t.onmicrosoft.com"
    );
}

#[test]
fn jwt_oid() {
    let payload = azure_core::base64::encode_url_safe(br#"{"oid":"0000-oid","tid":"t"}"#);
    let token = format!("eyJhbGciOiJub25lIn0.{payload}.sig");
    assert_eq!(token_object_id(&token).as_deref(), Some("0000-oid"));
    assert_eq!(token_object_id("not-a-jwt"), None);
}

// ---- scripted server -------------------------------------------------------------------------

#[derive(Clone)]
struct Canned {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

fn canned(status: u16, body: &str) -> Canned {
    Canned { status, headers: Vec::new(), body: body.to_string() }
}

impl Canned {
    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    headers: BTreeMap<String, String>,
    body: String,
}

#[derive(Default)]
struct Script {
    base: Mutex<String>,
    responses: Mutex<VecDeque<Canned>>,
    seen: Mutex<Vec<Seen>>,
}

impl Script {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn handle(State(script): State<Arc<Script>>, req: axum::extract::Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    script.seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: String::from_utf8_lossy(&body).to_string(),
    });
    let base = script.base.lock().unwrap().clone();
    let next = script.responses.lock().unwrap().pop_front();
    let c =
        next.unwrap_or_else(|| canned(599, r#"{"error":{"code":"ScriptExhausted","message":"no more responses"}}"#));
    let mut builder = Response::builder().status(c.status);
    for (k, v) in &c.headers {
        builder = builder.header(k, v.replace("{base}", &base));
    }
    if !c.body.is_empty() {
        builder = builder.header("content-type", "application/json");
    }
    builder.body(axum::body::Body::from(c.body.replace("{base}", &base))).unwrap()
}

async fn serve(responses: Vec<Canned>) -> (String, Arc<Script>) {
    let script = Arc::new(Script::default());
    *script.responses.lock().unwrap() = responses.into();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    *script.base.lock().unwrap() = base.clone();
    let app = Router::new().fallback(handle).with_state(script.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, script)
}

fn fast_options(log: Option<LogFn>) -> ClientOptions {
    ClientOptions {
        log,
        retry: RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            max_retry_after: Duration::from_millis(10),
            throttle_budget: Duration::from_millis(100),
        },
        lro: LroPolicy {
            default_interval: Duration::from_millis(1),
            max_interval: Duration::from_millis(5),
            timeout: Duration::from_secs(10),
        },
        replication: ReplicationPolicy {
            rbac_budget: Duration::from_millis(3),
            rbac_delay: Duration::from_millis(1),
            graph_budget: Duration::from_millis(3),
            graph_delay: Duration::from_millis(1),
        },
        ..ClientOptions::default()
    }
}

fn client(base: &str) -> AzureClient {
    AzureClient::new(
        Cloud::single_endpoint(base).unwrap(),
        "tenant-1",
        TokenSource::fixed(Some("arm-tok"), Some("graph-tok")),
        fast_options(None),
    )
    .unwrap()
}

const SUB: &str = "00000000-0000-0000-0000-000000000001";

#[tokio::test]
async fn throttled_read_is_retried_after_retry_after() {
    let (base, script) = serve(vec![
        canned(429, r#"{"error":{"code":"SubscriptionRequestsThrottled","message":"slow down"}}"#)
            .header("Retry-After", "30"),
        canned(200, r#"{"id":"/subscriptions/x/resourceGroups/rg","name":"rg","location":"westeurope"}"#)
            .header("x-ms-request-id", "req-2")
            .header("x-ms-ratelimit-remaining-subscription-reads", "249"),
    ])
    .await;
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    let log: LogFn = Arc::new(move |l: &str| sink.lock().unwrap().push(l.to_string()));
    let c = AzureClient::new(
        Cloud::single_endpoint(&base).unwrap(),
        "t",
        TokenSource::fixed(Some("arm-secret-token"), None),
        fast_options(Some(log)),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let rg = c.get_resource_group(SUB, "rg").await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "Retry-After must be capped in tests");
    assert_eq!(rg.location, "westeurope");
    let seen = script.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen[0].uri.contains("api-version=2025-04-01"));
    assert_eq!(seen[0].headers["authorization"], "Bearer arm-secret-token");
    assert_eq!(seen[0].headers["x-ms-client-request-id"], seen[1].headers["x-ms-client-request-id"]);
    let lines = lines.lock().unwrap();
    assert!(lines.iter().any(|l| l.contains("retry 1/") && l.contains("429")), "{lines:?}");
    assert!(lines.iter().all(|l| !l.contains("arm-secret-token")));
}

#[tokio::test]
async fn throttling_is_waited_out_within_a_time_budget_not_an_attempt_count() {
    let throttle = canned(429, r#"{"error":{"code":"SubscriptionRequestsThrottled","message":"slow"}}"#)
        .header("Retry-After", "1");
    let (base, script) = serve(vec![throttle; 200]).await;
    let started = std::time::Instant::now();
    let err = client(&base).get_resource_group(SUB, "rg").await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err.status, 429);
    assert!(err.hint.is_some());
    // Retry-After (capped at 10 ms in tests) is honoured until the 100 ms budget would pass:
    // more attempts than `max_attempts` (4), and none after the budget.
    let sent = script.seen().len();
    assert!((5..=12).contains(&sent), "{sent} requests");
    assert!(elapsed >= Duration::from_millis(80) && elapsed < Duration::from_secs(2), "{elapsed:?}");
}

#[tokio::test]
async fn server_errors_still_give_up_after_max_attempts() {
    let unavailable = canned(503, r#"{"error":{"code":"ServiceUnavailable","message":"later"}}"#);
    let (base, script) = serve(vec![unavailable; 10]).await;
    let err = client(&base).get_resource_group(SUB, "rg").await.unwrap_err();
    assert_eq!(err.status, 503);
    assert_eq!(script.seen().len(), 4);
}

#[tokio::test]
async fn server_error_not_replayed_for_unsafe_post() {
    let (base, script) = serve(vec![canned(503, r#"{"error":{"code":"ServiceUnavailable","message":"x"}}"#)]).await;
    let c = client(&base);
    let err = c
        .graph_batch(vec![BatchRequest {
            id: "1".into(),
            method: "POST".into(),
            url: "/groups".into(),
            body: Some(serde_json::json!({})),
            headers: BTreeMap::new(),
        }])
        .await
        .unwrap_err();
    assert_eq!(err.status, 503);
    assert_eq!(script.seen().len(), 1);
}

#[tokio::test]
async fn lists_follow_next_link_through_empty_pages() {
    let ra = |n: &str| {
        format!(
            r#"{{"id":"/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/{n}","name":"{n}","properties":{{"roleDefinitionId":"/providers/Microsoft.Authorization/roleDefinitions/ACDD72A7-3385-48ef-bd42-f606fba81ae7","principalId":"p","scope":"/subscriptions/s"}}}}"#
        )
    };
    let (base, script) = serve(vec![
        canned(200, &format!(r#"{{"value":[{}],"nextLink":"{{base}}/page2?$skipToken=a%20b"}}"#, ra("a"))),
        canned(200, r#"{"value":[],"nextLink":"{base}/page3?$skipToken=c"}"#),
        canned(200, &format!(r#"{{"value":[{},{}],"nextLink":null}}"#, ra("b"), ra("c"))),
    ])
    .await;
    let list = client(&base).list_role_assignments_for_subscription(SUB).await.unwrap();
    assert_eq!(list.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!(list[0].role_guid(), "acdd72a7-3385-48ef-bd42-f606fba81ae7");
    let seen = script.seen();
    assert_eq!(seen[1].uri, "/page2?$skipToken=a%20b");
    assert_eq!(seen[2].uri, "/page3?$skipToken=c");
}

#[tokio::test]
async fn next_link_to_another_host_is_refused() {
    let (base, _script) = serve(vec![canned(200, r#"{"value":[],"nextLink":"https://evil.example/steal"}"#)]).await;
    let err = client(&base).list_resource_groups(SUB).await.unwrap_err();
    assert_eq!(err.code, "UnexpectedHost");
}

#[tokio::test]
async fn workspace_put_polls_location_then_reads_resource() {
    let ws = r#"{"id":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w","name":"w","location":"westeurope","identity":{"type":"SystemAssigned","principalId":"sp-1"},"properties":{"provisioningState":"Succeeded"}}"#;
    let (base, script) = serve(vec![
        canned(202, "").header("Location", "{base}/ops/1").header("Retry-After", "10"),
        canned(202, "").header("Retry-After", "10"),
        canned(200, ws),
        canned(200, ws),
    ])
    .await;
    let w = client(&base)
        .put_workspace(SUB, "rg", "w", &serde_json::json!({"location":"westeurope","properties":{}}))
        .await
        .unwrap();
    assert_eq!(w.identity.unwrap().principal_id.as_deref(), Some("sp-1"));
    let seen = script.seen();
    assert_eq!(seen.iter().map(|s| s.method.as_str()).collect::<Vec<_>>(), ["PUT", "GET", "GET", "GET"]);
    assert!(seen[1].uri.starts_with("/ops/1"));
    assert!(seen[3].uri.contains("/workspaces/w?api-version=2025-06-01"));
}

#[tokio::test]
async fn async_operation_failure_is_reported() {
    let (base, _script) = serve(vec![
        canned(201, r#"{"properties":{"provisioningState":"Creating"}}"#)
            .header("Azure-AsyncOperation", "{base}/status/9"),
        canned(200, r#"{"status":"InProgress"}"#),
        canned(200, r#"{"status":"Failed","error":{"code":"QuotaExceeded","message":"no quota"}}"#),
    ])
    .await;
    let err = client(&base).put_workspace(SUB, "rg", "w", &serde_json::json!({})).await.unwrap_err();
    assert_eq!(err.code, "QuotaExceeded");
}

#[tokio::test]
async fn workspace_delete_with_purge_polls_to_204() {
    let (base, script) =
        serve(vec![canned(202, "").header("Location", "{base}/ops/del"), canned(202, ""), canned(204, "")]).await;
    assert!(client(&base).delete_workspace(SUB, "rg", "w", true).await.unwrap());
    let seen = script.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen[0].uri.contains("forceToPurge=true"));
}

#[tokio::test]
async fn role_assignment_exists_is_adopted() {
    let existing = r#"{"id":"/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/716c4d15-9bc8-476d-a3c1-6ccb70082517","name":"716c4d15-9bc8-476d-a3c1-6ccb70082517","properties":{"roleDefinitionId":"/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/f6c7c914-8db3-469d-8ca1-694a8f32e121","principalId":"p1","principalType":"Group","scope":"/subscriptions/s"}}"#;
    let (base, script) = serve(vec![
        canned(409, r#"{"error":{"code":"RoleAssignmentExists","message":"The role assignment already exists. The ID of the existing role assignment is 716c4d159bc8476da3c16ccb70082517."}}"#),
        canned(200, existing),
    ])
    .await;
    let request = RoleAssignmentRequest {
        scope: "/subscriptions/s".into(),
        role_definition_id: "f6c7c914-8db3-469d-8ca1-694a8f32e121".into(),
        principal_id: "p1".into(),
        principal_type: PrincipalType::Group,
        description: Some("managed by mlpolicy".into()),
        condition: None,
        name: None,
    };
    let out = client(&base).put_role_assignment(&request).await.unwrap();
    assert!(out.adopted);
    assert_eq!(out.assignment.name, "716c4d15-9bc8-476d-a3c1-6ccb70082517");
    let seen = script.seen();
    let expected_name = role_assignment_name("/subscriptions/s", "p1", "f6c7c914-8db3-469d-8ca1-694a8f32e121");
    assert!(seen[0].uri.contains(&expected_name.to_string()));
    let body: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(body["properties"]["principalType"], "Group");
    assert_eq!(
        body["properties"]["roleDefinitionId"],
        "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/f6c7c914-8db3-469d-8ca1-694a8f32e121"
    );
    assert!(seen[1].uri.contains("roleAssignments/716c4d15-9bc8-476d-a3c1-6ccb70082517"));
}

#[tokio::test]
async fn principal_not_found_is_retried() {
    let ok = r#"{"id":"/x","name":"n","properties":{"roleDefinitionId":"/r/acdd72a7-3385-48ef-bd42-f606fba81ae7","principalId":"p","scope":"/subscriptions/s"}}"#;
    let (base, script) = serve(vec![
        canned(
            400,
            r#"{"error":{"code":"PrincipalNotFound","message":"Principal p does not exist in the directory t."}}"#,
        ),
        canned(201, ok),
    ])
    .await;
    let request = RoleAssignmentRequest {
        scope: "/subscriptions/s".into(),
        role_definition_id: "acdd72a7-3385-48ef-bd42-f606fba81ae7".into(),
        principal_id: "p".into(),
        principal_type: PrincipalType::ServicePrincipal,
        description: None,
        condition: None,
        name: None,
    };
    let out = client(&base).put_role_assignment(&request).await.unwrap();
    assert!(!out.adopted);
    assert_eq!(script.seen().len(), 2);
}

#[test]
fn replication_patience_is_a_time_budget() {
    let policy = ReplicationPolicy {
        rbac_budget: Duration::from_millis(50),
        rbac_delay: Duration::from_millis(20),
        graph_budget: Duration::ZERO,
        graph_delay: Duration::from_millis(1),
    };
    let mut rbac = policy.rbac();
    assert_eq!(rbac.next(), Some(Duration::from_millis(20)), "a wait that ends within the budget");
    std::thread::sleep(Duration::from_millis(40));
    assert_eq!(rbac.next(), None, "a wait that would end past the budget");
    assert_eq!(rbac.attempts(), 2);
    assert_eq!(policy.graph().next(), None, "a zero budget never waits");
}

#[tokio::test]
async fn group_members_of_a_group_not_yet_replicated_are_read_after_the_delay() {
    let (base, script) = serve(vec![
        canned(404, r#"{"error":{"code":"Request_ResourceNotFound","message":"Resource 'g' does not exist"}}"#),
        canned(200, r##"{"value":[{"@odata.type":"#microsoft.graph.user","id":"u1"}]}"##),
    ])
    .await;
    let members = client(&base).list_group_members("g").await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(script.seen().len(), 2);
}

#[tokio::test]
async fn explicit_name_updates_an_adopted_assignment_in_place() {
    let ok = r#"{"id":"/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/716c4d15-9bc8-476d-a3c1-6ccb70082517","name":"716c4d15-9bc8-476d-a3c1-6ccb70082517","properties":{"roleDefinitionId":"/r/acdd72a7-3385-48ef-bd42-f606fba81ae7","principalId":"p","scope":"/subscriptions/s","description":"new [mlpolicy:o]"}}"#;
    let (base, script) = serve(vec![canned(200, ok)]).await;
    let request = RoleAssignmentRequest {
        scope: "/subscriptions/s".into(),
        role_definition_id: "acdd72a7-3385-48ef-bd42-f606fba81ae7".into(),
        principal_id: "p".into(),
        principal_type: PrincipalType::User,
        description: Some("new [mlpolicy:o]".into()),
        condition: None,
        name: Some("716c4d15-9bc8-476d-a3c1-6ccb70082517".into()),
    };
    let (out, ids) = crate::capture_request_ids(client(&base).put_role_assignment(&request)).await;
    assert!(!out.unwrap().adopted);
    let seen = script.seen();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].uri.contains("roleAssignments/716c4d15-9bc8-476d-a3c1-6ccb70082517"), "{}", seen[0].uri);
    let body: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(body["properties"]["description"], "new [mlpolicy:o]");
    assert!(ids.is_some_and(|i| !i.client_request_id.is_empty()));
}

fn jwt(oid: &str) -> String {
    format!("h.{}.s", azure_core::base64::encode_url_safe(format!(r#"{{"oid":"{oid}"}}"#)))
}

#[tokio::test]
async fn expired_token_is_refreshed_once_through_azure_identity() {
    let token = |t: &str| canned(200, &format!(r#"{{"token_type":"Bearer","expires_in":3599,"access_token":"{t}"}}"#));
    let expired = canned(401, r#"{"error":{"code":"ExpiredAuthenticationToken","message":"The access token expiry UTC time '11/24/2025 11:31:00 PM' is earlier than current UTC time."}}"#)
        .header("WWW-Authenticate", r#"Bearer authorization_uri="https://login.windows.net/", error="invalid_token""#);
    let (base, script) = serve(vec![
        token(&jwt("oid-1")),
        expired.clone(),
        token(&jwt("oid-2")),
        canned(200, r#"{"value":[]}"#),
        expired.clone(),
        token(&jwt("oid-3")),
        expired,
    ])
    .await;
    let source =
        TokenSource::credential(Credential::ClientSecret { client_id: "app".into(), secret: SecretString::new("pw") });
    let c = AzureClient::new(Cloud::single_endpoint(&base).unwrap(), "tenant-1", source, fast_options(None)).unwrap();
    assert!(c.list_resource_groups(SUB).await.unwrap().is_empty());
    let seen = script.seen();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].uri, "/tenant-1/oauth2/v2.0/token");
    assert!(seen[0].body.contains("grant_type=client_credentials"));
    assert!(seen[0].body.contains("scope=https%3A%2F%2Fmanagement.azure.com%2F.default"));
    assert_eq!(seen[2].uri, "/tenant-1/oauth2/v2.0/token");
    assert_eq!(seen[3].headers["authorization"], format!("Bearer {}", jwt("oid-2")));
    assert_eq!(c.principal_object_id().await.unwrap().as_deref(), Some("oid-2"));
    // A second 401 right after a refresh is fatal.
    let err = c.list_resource_groups(SUB).await.unwrap_err();
    assert_eq!(err.status, 401);
    assert_eq!(err.code, "ExpiredAuthenticationToken");
}

#[tokio::test]
async fn dropped_connection_is_retried_for_reads() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut n = 0;
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            n += 1;
            let mut buf = vec![0u8; 8192];
            let _ = sock.read(&mut buf).await;
            if n == 1 {
                drop(sock);
                continue;
            }
            let body = r#"{"value":[{"id":"/subscriptions/s/resourceGroups/a","name":"a","location":"x"}]}"#;
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(reply.as_bytes()).await;
        }
    });
    let groups = client(&base).list_resource_groups(SUB).await.unwrap();
    assert_eq!(groups.len(), 1);
}

#[tokio::test]
async fn group_upsert_uses_unique_name_and_prefer_header() {
    let (base, script) = serve(vec![canned(
        201,
        r#"{"id":"g-1","displayName":"ML Admins","uniqueName":"mlpolicy-admins","securityEnabled":true}"#,
    )])
    .await;
    let out = client(&base)
        .upsert_group(&GroupUpsert::security_group("mlpolicy-admins", "ML Admins", "ml-admins", None))
        .await
        .unwrap();
    assert!(out.created);
    assert_eq!(out.group.id, "g-1");
    let seen = script.seen();
    assert_eq!(seen[0].method, "PATCH");
    assert_eq!(seen[0].uri, "/v1.0/groups(uniqueName='mlpolicy-admins')");
    assert_eq!(seen[0].headers["prefer"], "create-if-missing");
    assert_eq!(seen[0].headers["authorization"], "Bearer graph-tok");
}

#[tokio::test]
async fn member_add_is_idempotent_and_waits_for_replication() {
    let (base, script) = serve(vec![
        canned(404, r#"{"error":{"code":"Request_ResourceNotFound","message":"Resource 'p' does not exist"}}"#),
        canned(204, ""),
        canned(400, r#"{"error":{"code":"Request_BadRequest","message":"One or more added object references already exist for the following modified properties: 'members'."}}"#),
        canned(400, r#"{"error":{"code":"Request_BadRequest","message":"One or more removed object references do not exist for the following modified properties: 'members'."}}"#),
    ])
    .await;
    let c = client(&base);
    assert_eq!(c.add_group_member("g", "p").await.unwrap(), MembershipChange::Changed);
    assert_eq!(c.add_group_member("g", "p").await.unwrap(), MembershipChange::Unchanged);
    assert_eq!(c.remove_group_member("g", "p").await.unwrap(), MembershipChange::Unchanged);
    let seen = script.seen();
    assert_eq!(seen[0].uri, "/v1.0/groups/g/members/$ref");
    let body: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(body["@odata.id"], format!("{base}/v1.0/directoryObjects/p"));
    assert_eq!(seen[3].method, "DELETE");
    assert_eq!(seen[3].uri, "/v1.0/groups/g/members/p/$ref");
}

#[tokio::test]
async fn batch_retries_only_throttled_ids_and_follows_member_next_links() {
    let (base, script) = serve(vec![
        canned(
            200,
            r##"{"responses":[
              {"id":"o0","status":200,"body":{"value":[{"@odata.type":"#microsoft.graph.user","id":"owner"}]}},
              {"id":"m0","status":429,"headers":{"Retry-After":"5"},"body":{"error":{"code":"TooManyRequests","message":"x"}}},
              {"id":"m1","status":404,"body":{"error":{"code":"Request_ResourceNotFound","message":"x"}}},
              {"id":"o1","status":404,"body":{"error":{"code":"Request_ResourceNotFound","message":"x"}}}]}"##,
        ),
        canned(
            200,
            r##"{"responses":[{"id":"m0","status":200,"body":{"value":[{"@odata.type":"#microsoft.graph.user","id":"u1"}],
                 "@odata.nextLink":"{base}/v1.0/groups/g0/members?$skiptoken=2"}}]}"##,
        ),
        canned(200, r##"{"value":[{"@odata.type":"#microsoft.graph.servicePrincipal","id":"sp1","appId":"a"}]}"##),
    ])
    .await;
    let out = client(&base).batch_group_members(&["g0".to_string(), "g1".to_string()]).await.unwrap();
    let g0 = out["g0"].as_ref().unwrap();
    assert_eq!(g0.members.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["u1", "sp1"]);
    assert_eq!(g0.members[1].kind(), DirectoryObjectKind::ServicePrincipal);
    assert_eq!(g0.owners.len(), 1);
    assert!(out["g1"].is_none());
    let seen = script.seen();
    assert_eq!(seen[0].uri, "/v1.0/$batch");
    let first: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(first["requests"].as_array().unwrap().len(), 4);
    assert_eq!(first["requests"][0]["url"], "/groups/g0/members?$top=999");
    let second: serde_json::Value = serde_json::from_str(&seen[1].body).unwrap();
    assert_eq!(second["requests"].as_array().unwrap().len(), 1);
    assert_eq!(second["requests"][0]["id"], "m0");
    assert_eq!(seen[2].uri, "/v1.0/groups/g0/members?$skiptoken=2");
}

#[tokio::test]
async fn resolve_upns_in_batches_of_twenty() {
    let upns: Vec<String> = (0..25).map(|i| format!("user{i}@contoso.com")).collect();
    let answer = |ids: std::ops::Range<usize>| {
        let items: Vec<String> = ids
            .map(|i| {
                if i == 3 {
                    format!(r#"{{"id":"u{i}","status":404,"body":{{"error":{{"code":"Request_ResourceNotFound","message":"x"}}}}}}"#)
                } else {
                    format!(r#"{{"id":"u{i}","status":200,"body":{{"id":"oid-{i}","userPrincipalName":"user{i}@contoso.com"}}}}"#)
                }
            })
            .rev()
            .collect();
        canned(200, &format!(r#"{{"responses":[{}]}}"#, items.join(",")))
    };
    // Each canned answer covers all 25 ids (extra ids are ignored), so the two concurrent
    // chunks may be served in either order.
    let (base, script) = serve(vec![answer(0..25), answer(0..25)]).await;
    let map = client(&base).resolve_upns(&upns).await.unwrap();
    assert_eq!(map.len(), 25);
    assert_eq!(map["user20@contoso.com"].as_ref().unwrap().id, "oid-20");
    assert!(map["user3@contoso.com"].is_none());
    let seen = script.seen();
    assert_eq!(seen.len(), 2);
    let sizes: Vec<usize> = seen
        .iter()
        .map(|s| serde_json::from_str::<serde_json::Value>(&s.body).unwrap()["requests"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes.iter().sum::<usize>(), 25);
    assert!(sizes.contains(&20));
    let body: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap();
    assert!(body["requests"][0]["url"].as_str().unwrap().starts_with("/users/user"));
}

#[tokio::test]
async fn fic_conflict_is_retried() {
    let fic = r#"{"id":"/x/federatedIdentityCredentials/gh","name":"gh","properties":{"issuer":"https://token.actions.githubusercontent.com","subject":"repo:o/r:environment:prod","audiences":["api://AzureADTokenExchange"]}}"#;
    let (base, script) = serve(vec![
        canned(409, r#"{"error":{"code":"ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity","message":"Too many concurrent writes"}}"#),
        canned(201, fic),
    ])
    .await;
    let id = format!(
        "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai"
    );
    let props = FederatedCredentialProperties {
        issuer: "https://token.actions.githubusercontent.com".into(),
        subject: "repo:o/r:environment:prod".into(),
        audiences: vec![FEDERATION_AUDIENCE.into()],
    };
    let out = client(&base).put_federated_credential(&id, "gh", &props).await.unwrap();
    assert_eq!(out.properties, props);
    let seen = script.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen[0].uri.contains("/userAssignedIdentities/uai/federatedIdentityCredentials/gh?api-version=2024-11-30"));
}

#[test]
fn plain_http_authority_only_on_loopback() {
    let cloud = Cloud::Custom {
        arm: url::Url::parse("http://10.0.0.5:8080").unwrap(),
        graph: url::Url::parse("http://10.0.0.5:8080").unwrap(),
        authority: url::Url::parse("http://10.0.0.5:8080").unwrap(),
        arm_scope: None,
        graph_scope: None,
    };
    let source =
        TokenSource::credential(Credential::ClientSecret { client_id: "a".into(), secret: SecretString::new("s") });
    let c = AzureClient::new(cloud, "t", source, fast_options(None)).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let err = rt.block_on(c.principal_object_id()).unwrap_err();
    assert!(err.message.contains("loopback"), "{err}");
}

// ---- secrets in error text ---------------------------------------------------------------------

const A_JWT: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJyZXBvOmNvbnRvc28veCJ9.c2lnbmF0dXJlLXZhbHVl";

#[test]
fn secrets_in_error_text_are_redacted() {
    let text = format!(
        "AADSTS700024: Client assertion {A_JWT} is not within its valid time range. Request: \
         grant_type=client_credentials&client_id=app&client_secret=s3cr3t~Q8x.y&client_assertion={A_JWT}\
         &client_assertion_type=urn%3Aietf%3Aparams; echo {{\"access_token\":\"tok123\", \"refresh_token\" : \"r3fr\"}} \
         Authorization: Bearer abc.def-ghi password=hunter2 PASSWORD: hunter3; signature: kept"
    );
    let out = redact_secrets(&text);
    for secret in [A_JWT, "s3cr3t", "Q8x", "tok123", "r3fr", "abc.def", "hunter2", "hunter3"] {
        assert!(!out.contains(secret), "{secret} survived: {out}");
    }
    for kept in ["AADSTS700024", "client_id=app", "client_assertion_type=urn%3Aietf%3Aparams", "signature: kept"] {
        assert!(out.contains(kept), "{kept} lost: {out}");
    }
    assert_eq!(redact_secrets("The role assignment already exists."), "The role assignment already exists.");
    assert_eq!(redact_secrets("eyJ alone and a.b.c"), "eyJ alone and a.b.c");
    // Parsed bodies pass through it too.
    let body =
        format!(r#"{{"error":"invalid_request","error_description":"AADSTS90014: bad client_assertion={A_JWT}"}}"#);
    let err = AzureError::from_response("get ARM token", 400, body.as_bytes(), None, None);
    assert!(!err.to_string().contains(A_JWT) && err.to_string().contains(REDACTED), "{err}");
}

#[tokio::test]
async fn token_endpoint_errors_are_printed_without_secrets() {
    let body = format!(
        r#"{{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Received client_secret=pa55w0rd-XYZ and client_assertion={A_JWT}","trace_id":"t-1","correlation_id":"c-1"}}"#
    );
    let (base, script) = serve((0..8).map(|_| canned(401, &body)).collect()).await;
    let source = TokenSource::credential(Credential::ClientSecret {
        client_id: "app".into(),
        secret: SecretString::new("pa55w0rd-XYZ"),
    });
    let c = AzureClient::new(Cloud::single_endpoint(&base).unwrap(), "tenant-1", source, fast_options(None)).unwrap();
    let err = c.list_resource_groups(SUB).await.unwrap_err();
    assert_eq!(script.seen()[0].uri, "/tenant-1/oauth2/v2.0/token");
    let shown = format!("{err}\n{err:?}");
    assert!(shown.contains("AADSTS7000215"), "the endpoint's text is shown: {shown}");
    assert!(shown.contains(REDACTED), "{shown}");
    assert!(!shown.contains("pa55w0rd") && !shown.contains(A_JWT), "a secret was printed: {shown}");
}
