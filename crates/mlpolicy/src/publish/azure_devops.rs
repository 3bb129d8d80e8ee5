//! Azure DevOps: the plan as a pull-request thread (Git REST API, version 7.1).
//!
//! From the predefined pipeline variables: `SYSTEM_COLLECTIONURI` (`https://dev.azure.com/org/`),
//! `SYSTEM_TEAMPROJECT`, `BUILD_REPOSITORY_ID`, `SYSTEM_PULLREQUEST_PULLREQUESTID` (set only in
//! pull-request validation runs) and `SYSTEM_ACCESSTOKEN` as a bearer token (map it into the
//! step's `env`; the build service needs "Contribute to pull requests").
//!
//! `GET {collection}{project}/_apis/git/repositories/{repo}/pullRequests/{id}/threads` finds the
//! thread whose first comment holds the marker; `PATCH .../threads/{thread}/comments/{comment}`
//! edits that comment, else `POST .../threads` creates an active thread with one text comment.

use reqwest::Method;
use serde_json::json;

use super::http::{call, client};
use super::{Env, PublishError, Upserted};

const API: &str = "Azure DevOps API";
const API_VERSION: &str = "7.1";

fn var(env: Env<'_>, name: &str) -> Result<String, PublishError> {
    env(name).ok_or_else(|| PublishError(format!("{name} is not set (a predefined Azure Pipelines variable)")))
}

/// Creates or edits the thread comment holding `marker`; `None` when the run is not a
/// pull-request validation run.
pub async fn upsert(env: Env<'_>, marker: &str, body: &str) -> Result<Option<Upserted>, PublishError> {
    let Some(pr) = env("SYSTEM_PULLREQUEST_PULLREQUESTID") else {
        return Ok(None);
    };
    let pr: u64 = pr
        .trim()
        .parse()
        .map_err(|_| PublishError(format!("SYSTEM_PULLREQUEST_PULLREQUESTID is `{pr}`, not a number")))?;
    let collection = var(env, "SYSTEM_COLLECTIONURI")?;
    let project = var(env, "SYSTEM_TEAMPROJECT")?;
    let repo = var(env, "BUILD_REPOSITORY_ID")?;
    let token = env("SYSTEM_ACCESSTOKEN").ok_or_else(|| {
        PublishError(
            "SYSTEM_ACCESSTOKEN is not set: map it into the step (`env: SYSTEM_ACCESSTOKEN: $(System.AccessToken)`)"
                .into(),
        )
    })?;
    let base = url::Url::parse(&collection)
        .map_err(|e| PublishError(format!("SYSTEM_COLLECTIONURI `{collection}` is not a URL: {e}")))?;
    let url = |extra: &[&str]| -> url::Url {
        let mut u = base.clone();
        if let Ok(mut p) = u.path_segments_mut() {
            p.pop_if_empty().extend([project.as_str(), "_apis", "git", "repositories", repo.as_str(), "pullRequests"]);
            p.push(&pr.to_string()).push("threads").extend(extra);
        }
        u.query_pairs_mut().append_pair("api-version", API_VERSION);
        u
    };
    let headers = [("authorization", format!("Bearer {token}")), ("accept", "application/json".to_owned())];
    let client = client()?;
    let hint = |e: PublishError| {
        if e.0.contains(" 401 ") || e.0.contains(" 403 ") {
            PublishError(format!(
                "{e} (map SYSTEM_ACCESSTOKEN into the step and allow the project's build service to contribute to pull requests)"
            ))
        } else {
            e
        }
    };
    let threads = call(&client, API, Method::GET, &url(&[]), &headers, None).await.map_err(hint)?;
    let found = threads.body["value"].as_array().into_iter().flatten().find_map(|t| {
        let first = t["comments"].as_array()?.iter().find(|c| c["isDeleted"] != true)?;
        let holds = first["content"].as_str().is_some_and(|c| c.contains(marker));
        (holds && t["isDeleted"] != true).then(|| (t["id"].as_u64(), first["id"].as_u64()))
    });
    let answer = if let Some((Some(thread), Some(comment))) = found {
        let path = [thread.to_string(), "comments".to_owned(), comment.to_string()];
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        call(&client, API, Method::PATCH, &url(&path), &headers, Some(&json!({ "content": body })))
            .await
            .map_err(hint)?;
        Upserted::Updated(format!("thread {thread}"))
    } else {
        let doc = json!({
            "comments": [{ "parentCommentId": 0, "content": body, "commentType": 1 }],
            "status": 1,
        });
        let r = call(&client, API, Method::POST, &url(&[]), &headers, Some(&doc)).await.map_err(hint)?;
        Upserted::Created(format!("thread {}", r.body["id"].as_u64().map_or_else(|| "?".to_owned(), |i| i.to_string())))
    };
    Ok(Some(answer))
}
