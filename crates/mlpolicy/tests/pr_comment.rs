//! `plan --pr-comment` end to end: the real binary plans an example against the in-process
//! emulator and talks over HTTP to fake GitHub and Azure DevOps APIs served here (axum). The
//! first run creates the comment, the second edits the same one; API errors are reported and
//! leave the plan and its exit code alone; a plan too long for a comment is cut with a pointer.

use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use serde_json::{Value, json};

use crate::support::{Run, copy_to_temp, mlpolicy_env, root, tests_dir};

const TOKEN: &str = "test-token-4f1d9c";

/// What a fake API holds and saw.
#[derive(Default)]
struct Fake {
    /// GitHub: issue comments `(id, body)`; Azure DevOps: threads `(id, first comment)`.
    items: Vec<(u64, String)>,
    /// `METHOD path?query` of every request.
    log: Vec<String>,
    /// Answer every request with this status and message.
    fail: Option<(StatusCode, &'static str)>,
    base: String,
}

type Shared = Arc<Mutex<Fake>>;

fn authorised(fake: &Shared, method: &str, path: &str, query: &str, headers: &HeaderMap) -> Option<Response> {
    let mut f = fake.lock().unwrap();
    f.log.push(format!("{method} {path}{query}"));
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {TOKEN}")) {
        return Some((StatusCode::UNAUTHORIZED, Json(json!({"message": "Bad credentials"}))).into_response());
    }
    f.fail.map(|(status, message)| (status, Json(json!({"message": message}))).into_response())
}

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

// ---- fake GitHub ----------------------------------------------------------------------------

/// Two comments a page, so finding the marker needs the `Link` header.
const GH_PAGE: usize = 2;

async fn gh_list(
    State(fake): State<Shared>,
    UrlPath((owner, repo, n)): UrlPath<(String, String, u64)>,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/repos/{owner}/{repo}/issues/{n}/comments");
    let page: usize = q.iter().find(|(k, _)| k == "page").map_or(1, |(_, v)| v.parse().unwrap());
    if let Some(r) = authorised(&fake, "GET", &path, &format!("?page={page}"), &headers) {
        return r;
    }
    let f = fake.lock().unwrap();
    let items: Vec<Value> = f
        .items
        .iter()
        .skip((page - 1) * GH_PAGE)
        .take(GH_PAGE)
        .map(|(id, body)| json!({"id": id, "body": body, "html_url": format!("{}/c/{id}", f.base)}))
        .collect();
    let mut resp = Json(Value::Array(items)).into_response();
    if page * GH_PAGE < f.items.len() {
        let next = format!("<{}{path}?per_page=100&page={}>; rel=\"next\"", f.base, page + 1);
        resp.headers_mut().insert("link", next.parse().unwrap());
    }
    resp
}

async fn gh_create(
    State(fake): State<Shared>,
    UrlPath((owner, repo, n)): UrlPath<(String, String, u64)>,
    headers: HeaderMap,
    Json(doc): Json<Value>,
) -> Response {
    if let Some(r) = authorised(&fake, "POST", &format!("/repos/{owner}/{repo}/issues/{n}/comments"), "", &headers) {
        return r;
    }
    let mut f = fake.lock().unwrap();
    let id = 1000 + f.items.len() as u64;
    f.items.push((id, doc["body"].as_str().unwrap().to_owned()));
    (StatusCode::CREATED, Json(json!({"id": id, "html_url": format!("{}/c/{id}", f.base)}))).into_response()
}

async fn gh_update(
    State(fake): State<Shared>,
    UrlPath((owner, repo, id)): UrlPath<(String, String, u64)>,
    headers: HeaderMap,
    Json(doc): Json<Value>,
) -> Response {
    if let Some(r) = authorised(&fake, "PATCH", &format!("/repos/{owner}/{repo}/issues/comments/{id}"), "", &headers) {
        return r;
    }
    let mut f = fake.lock().unwrap();
    let base = f.base.clone();
    match f.items.iter_mut().find(|(i, _)| *i == id) {
        Some(c) => {
            doc["body"].as_str().unwrap().clone_into(&mut c.1);
            Json(json!({"id": id, "html_url": format!("{base}/c/{id}")})).into_response()
        }
        None => (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response(),
    }
}

async fn fake_github() -> (Shared, String) {
    let fake: Shared = Arc::default();
    // Other people's comments come first.
    fake.lock().unwrap().items = (1..=3).map(|i| (i, format!("LGTM {i} <!-- mlpolicy:plan dir=other -->"))).collect();
    let router = axum::Router::new()
        .route("/repos/{owner}/{repo}/issues/{n}/comments", get(gh_list).post(gh_create))
        .route("/repos/{owner}/{repo}/issues/comments/{id}", patch(gh_update))
        .with_state(fake.clone());
    let url = serve(router).await;
    fake.lock().unwrap().base.clone_from(&url);
    (fake, url)
}

// ---- fake Azure DevOps ----------------------------------------------------------------------

type ThreadPath = UrlPath<(String, String, String, u64)>;

async fn ado_list(
    State(fake): State<Shared>,
    UrlPath((org, project, repo, pr)): ThreadPath,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/{org}/{project}/_apis/git/repositories/{repo}/pullRequests/{pr}/threads");
    let query = format!("?{}", q.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&"));
    if let Some(r) = authorised(&fake, "GET", &path, &query, &headers) {
        return r;
    }
    let f = fake.lock().unwrap();
    let value: Vec<Value> = f
        .items
        .iter()
        .map(|(id, content)| json!({"id": id, "status": "active", "comments": [{"id": 1, "parentCommentId": 0, "content": content, "commentType": "text"}]}))
        .collect();
    Json(json!({"value": value, "count": value.len()})).into_response()
}

async fn ado_create(
    State(fake): State<Shared>,
    UrlPath((org, project, repo, pr)): ThreadPath,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    Json(doc): Json<Value>,
) -> Response {
    let path = format!("/{org}/{project}/_apis/git/repositories/{repo}/pullRequests/{pr}/threads");
    let query = format!("?{}", q.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&"));
    if let Some(r) = authorised(&fake, "POST", &path, &query, &headers) {
        return r;
    }
    assert_eq!(doc["status"], 1);
    assert_eq!(doc["comments"][0]["parentCommentId"], 0);
    assert_eq!(doc["comments"][0]["commentType"], 1);
    let mut f = fake.lock().unwrap();
    let id = 50 + f.items.len() as u64;
    f.items.push((id, doc["comments"][0]["content"].as_str().unwrap().to_owned()));
    Json(json!({"id": id})).into_response()
}

async fn ado_update(
    State(fake): State<Shared>,
    UrlPath((org, project, repo, pr, thread, comment)): UrlPath<(String, String, String, u64, u64, u64)>,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    Json(doc): Json<Value>,
) -> Response {
    let path =
        format!("/{org}/{project}/_apis/git/repositories/{repo}/pullRequests/{pr}/threads/{thread}/comments/{comment}");
    let query = format!("?{}", q.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&"));
    if let Some(r) = authorised(&fake, "PATCH", &path, &query, &headers) {
        return r;
    }
    assert_eq!(comment, 1, "the thread's first comment is edited");
    let mut f = fake.lock().unwrap();
    let t = f.items.iter_mut().find(|(i, _)| *i == thread).expect("the thread exists");
    doc["content"].as_str().unwrap().clone_into(&mut t.1);
    Json(json!({"id": comment})).into_response()
}

async fn fake_azure_devops() -> (Shared, String) {
    let fake: Shared = Arc::default();
    fake.lock().unwrap().items = vec![(7, "Please add a test.".into())];
    let threads = "/{org}/{project}/_apis/git/repositories/{repo}/pullRequests/{pr}/threads";
    let router = axum::Router::new()
        .route(threads, get(ado_list).post(ado_create))
        .route(&format!("{threads}/{{thread}}/comments/{{comment}}"), patch(ado_update))
        .with_state(fake.clone());
    let url = serve(router).await;
    fake.lock().unwrap().base.clone_from(&url);
    (fake, url)
}

// ---- runs -----------------------------------------------------------------------------------

/// Runs `mlpolicy ARGS` off the async runtime (the fake API runs on it).
async fn run(dir: &Path, args: &[&str], env: Vec<(String, String)>) -> Run {
    let dir = dir.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        mlpolicy_env(&dir, &args, &env)
    })
    .await
    .unwrap()
}

fn github_env(api: &str, dir: &Path) -> Vec<(String, String)> {
    let event = dir.join("event.json");
    std::fs::write(&event, r#"{"action": "synchronize", "number": 7, "pull_request": {"number": 7}}"#).unwrap();
    [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_EVENT_PATH", event.to_str().unwrap()),
        ("GITHUB_REPOSITORY", "contoso/ml"),
        ("GITHUB_TOKEN", TOKEN),
        ("GITHUB_API_URL", api),
        ("GITHUB_SERVER_URL", "https://github.example"),
        ("GITHUB_RUN_ID", "42"),
        ("GITHUB_STEP_SUMMARY", dir.join("summary.md").to_str().unwrap()),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

fn ado_env(collection: &str) -> Vec<(String, String)> {
    [
        ("TF_BUILD", "True"),
        ("SYSTEM_COLLECTIONURI", collection),
        ("SYSTEM_TEAMPROJECT", "ML Platform"),
        ("BUILD_REPOSITORY_ID", "8d3c3d2e-5b6a-4f0e-9f43-0c9e2b1a7d55"),
        ("SYSTEM_PULLREQUEST_PULLREQUESTID", "314"),
        ("SYSTEM_ACCESSTOKEN", TOKEN),
        ("BUILD_BUILDID", "99"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

/// The example estate, with its emulator seed (the people its groups name).
fn contoso() -> tempfile::TempDir {
    copy_to_temp(&root().join("examples/contoso-ml"))
}

fn no_token(run: &Run) {
    assert!(!run.stdout.contains(TOKEN) && !run.stderr.contains(TOKEN), "{}", run.transcript());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_first_run_creates_the_comment_and_later_runs_edit_it() {
    let (fake, api) = fake_github().await;
    let dir = contoso();
    let env = github_env(&api, dir.path());
    let first = run(dir.path(), &["plan", ".", "--emulator", "--pr-comment"], env.clone()).await;
    assert_eq!(first.code, 0, "{}", first.transcript());
    assert!(first.stdout.starts_with("mlpolicy will perform"), "the plan still prints:\n{}", first.transcript());
    assert!(
        first.stderr.contains(&format!("mlpolicy: posted the plan as a new pull-request comment ({api}/c/1003)")),
        "{}",
        first.transcript()
    );
    assert!(first.stderr.contains("mlpolicy: wrote the plan to the job summary"), "{}", first.transcript());
    no_token(&first);
    let body = {
        let f = fake.lock().unwrap();
        assert_eq!(f.items.len(), 4, "one new comment");
        f.items[3].1.clone()
    };
    assert!(body.starts_with("<!-- mlpolicy:plan dir=. -->\n#### mlpolicy plan · `.`\n\n**Plan:** "), "{body}");
    assert!(body.contains("```mermaid\nflowchart LR\n"), "{body}");
    assert!(body.contains("gain **AzureML Data Scientist** on `"), "{body}");

    // The second run, with --detailed-exitcode: the same comment is edited, found on page 2.
    let second = run(dir.path(), &["plan", ".", "--emulator", "--pr-comment", "--detailed-exitcode"], env).await;
    assert_eq!(second.code, 2, "{}", second.transcript());
    assert!(
        second.stderr.contains(&format!("mlpolicy: updated the plan's pull-request comment ({api}/c/1003)")),
        "{}",
        second.transcript()
    );
    no_token(&second);
    let f = fake.lock().unwrap();
    assert_eq!(f.items.len(), 4, "never a second comment");
    assert_eq!(f.items[3].1, body, "the same plan, the same comment text");
    let calls: Vec<&str> = f.log.iter().map(String::as_str).collect();
    assert_eq!(
        calls,
        [
            "GET /repos/contoso/ml/issues/7/comments?page=1",
            "GET /repos/contoso/ml/issues/7/comments?page=2",
            "POST /repos/contoso/ml/issues/7/comments",
            "GET /repos/contoso/ml/issues/7/comments?page=1",
            "GET /repos/contoso/ml/issues/7/comments?page=2",
            "PATCH /repos/contoso/ml/issues/comments/1003",
        ]
    );
    let summary = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert_eq!(summary.matches("**Plan:** ").count(), 2, "each run appends its plan to the job summary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_are_reported_and_the_plan_keeps_its_exit_code() {
    let (fake, api) = fake_github().await;
    fake.lock().unwrap().fail = Some((StatusCode::FORBIDDEN, "Resource not accessible by integration"));
    let dir = contoso();
    let run1 = run(
        dir.path(),
        &["plan", ".", "--emulator", "--pr-comment", "--detailed-exitcode"],
        github_env(&api, dir.path()),
    )
    .await;
    assert_eq!(run1.code, 2, "the plan's exit code:\n{}", run1.transcript());
    assert!(run1.stdout.contains("Plan: 31 to add"), "{}", run1.transcript());
    assert!(
        run1.stderr.contains(
            "error: --pr-comment: GitHub API: GET /repos/contoso/ml/issues/7/comments returned 403 Forbidden: \
             Resource not accessible by integration (the job needs `permissions: pull-requests: write`"
        ),
        "{}",
        run1.transcript()
    );
    no_token(&run1);

    // A wrong token is the API's 401, said as such.
    fake.lock().unwrap().fail = None;
    let mut env = github_env(&api, dir.path());
    env.retain(|(k, _)| k != "GITHUB_TOKEN");
    env.push(("GITHUB_TOKEN".into(), "wrong".into()));
    let run2 = run(dir.path(), &["plan", ".", "--emulator", "--pr-comment"], env).await;
    assert_eq!(run2.code, 0, "{}", run2.transcript());
    assert!(run2.stderr.contains("returned 401 Unauthorized: Bad credentials"), "{}", run2.transcript());

    // Nothing listens: the connection error, and still the plan.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let run3 = run(dir.path(), &["plan", ".", "--emulator", "--pr-comment"], github_env(&closed, dir.path())).await;
    assert_eq!(run3.code, 0, "{}", run3.transcript());
    assert!(run3.stdout.contains("Plan: 31 to add"), "{}", run3.transcript());
    assert!(
        run3.stderr.contains("error: --pr-comment: GitHub API: GET /repos/contoso/ml/issues/7/comments failed: "),
        "{}",
        run3.transcript()
    );

    // Outside CI: said, and the plan is unchanged.
    let run4 = run(dir.path(), &["plan", ".", "--emulator", "--pr-comment"], Vec::new()).await;
    assert_eq!(run4.code, 0, "{}", run4.transcript());
    assert!(run4.stderr.contains("error: --pr-comment: --pr-comment works in GitHub Actions"), "{}", run4.transcript());
    assert_eq!(fake.lock().unwrap().items.len(), 3, "nothing was posted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_is_not_a_pull_request() {
    let (fake, api) = fake_github().await;
    let dir = contoso();
    let mut env = github_env(&api, dir.path());
    std::fs::write(dir.path().join("event.json"), r#"{"ref": "refs/heads/main"}"#).unwrap();
    env.push(("GITHUB_EVENT_NAME".into(), "push".into()));
    let r = run(dir.path(), &["plan", ".", "--emulator", "--pr-comment"], env).await;
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(
        r.stderr.contains("mlpolicy: this run is not for a pull request: no comment was posted"),
        "{}",
        r.transcript()
    );
    assert!(fake.lock().unwrap().log.is_empty());
    // The job summary still gets the plan.
    assert!(std::fs::read_to_string(dir.path().join("summary.md")).unwrap().starts_with("**Plan:** "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_devops_thread_is_created_then_its_first_comment_edited() {
    let (fake, url) = fake_azure_devops().await;
    let collection = format!("{url}/contoso/");
    let dir = contoso();
    let first = run(dir.path(), &["plan", ".", "--emulator", "--pr-comment"], ado_env(&collection)).await;
    assert_eq!(first.code, 0, "{}", first.transcript());
    assert!(
        first.stderr.contains("mlpolicy: posted the plan as a new pull-request comment (thread 51)"),
        "{}",
        first.transcript()
    );
    no_token(&first);
    let second = run(dir.path(), &["plan", ".", "--emulator", "--pr-comment"], ado_env(&collection)).await;
    assert!(
        second.stderr.contains("mlpolicy: updated the plan's pull-request comment (thread 51)"),
        "{}",
        second.transcript()
    );
    let f = fake.lock().unwrap();
    assert_eq!(f.items.len(), 2, "one thread of ours beside the reviewer's");
    assert!(f.items[1].1.starts_with("<!-- mlpolicy:plan dir=. -->\n"), "{}", f.items[1].1);
    let threads =
        "/contoso/ML Platform/_apis/git/repositories/8d3c3d2e-5b6a-4f0e-9f43-0c9e2b1a7d55/pullRequests/314/threads";
    let calls: Vec<String> = f.log.clone();
    assert_eq!(
        calls,
        [
            format!("GET {threads}?api-version=7.1"),
            format!("POST {threads}?api-version=7.1"),
            format!("GET {threads}?api-version=7.1"),
            format!("PATCH {threads}/51/comments/1?api-version=7.1"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_devops_errors_and_findings_as_logging_commands() {
    let (fake, url) = fake_azure_devops().await;
    fake.lock().unwrap().fail =
        Some((StatusCode::FORBIDDEN, "TF401027: You need the Git 'PullRequestContribute' permission"));
    let dir = contoso();
    let r = run(dir.path(), &["plan", ".", "--emulator", "--pr-comment"], ado_env(&format!("{url}/contoso/"))).await;
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(r.stderr.contains("error: --pr-comment: Azure DevOps API: GET /contoso/ML%20Platform/_apis/git/repositories/8d3c3d2e-5b6a-4f0e-9f43-0c9e2b1a7d55/pullRequests/314/threads returned 403 Forbidden: TF401027"), "{}", r.transcript());
    no_token(&r);

    // TF_BUILD: findings are logging commands on stderr.
    let policies = tests_dir().join("cases/policies");
    let v = run(&policies, &["validate", "baseline-no_standing_admin-fail"], vec![("TF_BUILD".into(), "True".into())])
        .await;
    assert_eq!(v.code, 3, "{}", v.transcript());
    let issues: Vec<&str> = v.stderr.lines().filter(|l| l.starts_with("##vso[")).collect();
    assert!(!issues.is_empty(), "{}", v.transcript());
    assert!(
        issues[0].starts_with(
            "##vso[task.logissue type=error;sourcepath=baseline-no_standing_admin-fail/main.mlp;linenumber="
        ),
        "{issues:?}"
    );
    assert!(issues[0].contains(";code=baseline/no_standing_admin]mlpolicy baseline/no_standing_admin: "), "{issues:?}");
    assert!(!v.stderr.contains("::error"), "no GitHub annotations outside GitHub");
}

/// A configuration of `n` teams, each with a group: a plan far longer than a comment.
fn many_teams(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(root().join("examples/contoso-ml/emulator-seed.yaml"), dir.path().join("emulator-seed.yaml"))
        .unwrap();
    std::fs::write(
        dir.path().join("mlpolicy.yaml"),
        "tenant: 0f3c8a71-52d4-4b9e-8e16-7a2d9c4b5e03\nsubscriptions:\n  main: 9a4e2c18-7b3f-4d60-a5c1-2e8f6b0d4a97\nowner: big\nvars:\n  teams: [".to_owned()
            + &(0..n).map(|i| format!("\"t{i:04}\"")).collect::<Vec<_>>().join(", ")
            + "]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("main.mlp"),
        "for team in var.teams {\n  group ds {\n    name        = \"ml-${team}-data-scientists\"\n    description = \"Data scientists of team ${team}, who train and evaluate its models\"\n    members     = [user(\"alice.martin@contoso.com\")]\n  }\n}\n",
    )
    .unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_longer_than_a_comment_is_cut_with_counts_and_a_pointer() {
    let (fake, api) = fake_github().await;
    let dir = many_teams(600);
    let r = run(dir.path(), &["plan", ".", "--emulator", "--pr-comment"], github_env(&api, dir.path())).await;
    assert_eq!(r.code, 0, "{}", r.transcript());
    assert!(r.stdout.len() > 100_000, "the printed plan is whole: {} bytes", r.stdout.len());
    assert!(r.stdout.contains("ml-t0599-data-scientists"), "the printed plan is whole");
    let f = fake.lock().unwrap();
    let body = &f.items[3].1;
    assert!(body.chars().count() < 65_536, "{} chars", body.chars().count());
    assert!(body.contains("**Plan:** 600 to add, 0 to change, 0 to destroy"), "the counts are kept");
    let shown: usize = body.lines().filter(|l| l.starts_with("+   group \"ml-t")).count();
    assert!(shown > 100 && shown < 600, "{shown}");
    assert!(body.contains(&format!("<summary>Changes (600, {shown} shown)</summary>")), "{}", &body[..500]);
    assert!(
        body.contains(&format!(
            "_{} more changes not shown here (comment size limit); the full plan is in the job log and the \
             [run's plan artifact](https://github.example/contoso/ml/actions/runs/42)._",
            600 - shown
        )),
        "{}",
        &body[body.len() - 600..]
    );
    // Cut between two changes: the last one shown is whole.
    assert!(body.contains("```\n\n_"), "the diff block is closed before the note");
}
