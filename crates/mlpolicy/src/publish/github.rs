//! GitHub: the plan as an issue comment of the pull request (REST API, version 2022-11-28).
//!
//! - the pull request: `GITHUB_REPOSITORY` (`owner/repo`) and the number in the event payload
//!   at `GITHUB_EVENT_PATH` (`pull_request.number`; `issue.number` for a comment on a pull
//!   request);
//! - `GITHUB_TOKEN` as a bearer token (the workflow needs `permissions: pull-requests: write`);
//! - `GITHUB_API_URL` (default `https://api.github.com`), so GitHub Enterprise Server and the
//!   tests' fake API work.
//!
//! `GET /repos/{owner}/{repo}/issues/{n}/comments?per_page=100` (following `Link: rel="next"`)
//! finds the comment holding the marker; `PATCH /repos/{owner}/{repo}/issues/comments/{id}`
//! edits it, else `POST /repos/{owner}/{repo}/issues/{n}/comments` creates it.

use reqwest::Method;
use serde_json::{Value, json};

use super::http::{call, client};
use super::{Env, PublishError, Upserted};

const API: &str = "GitHub API";
/// Pages of comments read at most (100 each).
const MAX_PAGES: usize = 100;
/// An event payload larger than this is refused.
const MAX_EVENT: u64 = 64 << 20;

/// The pull request this run is for, or `None` when the event is not about one.
pub fn pull_request_number(env: Env<'_>) -> Result<Option<u64>, PublishError> {
    let path = env("GITHUB_EVENT_PATH").ok_or_else(|| {
        PublishError("GITHUB_EVENT_PATH is not set: cannot tell which pull request to comment on".into())
    })?;
    let read = || -> std::io::Result<String> {
        use std::io::Read as _;
        let mut text = String::new();
        std::fs::File::open(&path)?.take(MAX_EVENT).read_to_string(&mut text)?;
        Ok(text)
    };
    let text =
        read().map_err(|e| PublishError(format!("cannot read the event payload `{path}` (GITHUB_EVENT_PATH): {e}")))?;
    let event: Value = serde_json::from_str(&text)
        .map_err(|e| PublishError(format!("the event payload `{path}` (GITHUB_EVENT_PATH) is not JSON: {e}")))?;
    let number = event["pull_request"]["number"]
        .as_u64()
        .or_else(|| event["issue"]["pull_request"].is_object().then(|| event["issue"]["number"].as_u64()).flatten());
    Ok(number)
}

/// Creates or edits the comment holding `marker` on the run's pull request; `None` when the run
/// is not for a pull request.
pub async fn upsert(env: Env<'_>, marker: &str, body: &str) -> Result<Option<Upserted>, PublishError> {
    let Some(number) = pull_request_number(env)? else {
        return Ok(None);
    };
    let repo =
        env("GITHUB_REPOSITORY").ok_or_else(|| PublishError("GITHUB_REPOSITORY is not set (owner/repo)".into()))?;
    let (owner, name) = repo
        .split_once('/')
        .filter(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/'))
        .ok_or_else(|| PublishError(format!("GITHUB_REPOSITORY is `{repo}`, not `owner/repo`")))?;
    let token = env("GITHUB_TOKEN").ok_or_else(|| {
        PublishError(
            "GITHUB_TOKEN is not set: pass it to the step (`env: GITHUB_TOKEN: ${{ github.token }}`) and give the job \
             `permissions: pull-requests: write`"
                .into(),
        )
    })?;
    let api = env("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".to_owned());
    let base = url::Url::parse(api.trim_end_matches('/'))
        .map_err(|e| PublishError(format!("GITHUB_API_URL `{api}` is not a URL: {e}")))?;
    let headers = [
        ("authorization", format!("Bearer {token}")),
        ("accept", "application/vnd.github+json".to_owned()),
        ("x-github-api-version", "2022-11-28".to_owned()),
    ];
    let client = client()?;
    let url = |segments: &[&str]| -> url::Url {
        let mut u = base.clone();
        if let Ok(mut p) = u.path_segments_mut() {
            p.pop_if_empty().extend(segments);
        }
        u
    };
    let n = number.to_string();
    let comments = url(&["repos", owner, name, "issues", &n, "comments"]);
    let hint = |e: PublishError| {
        if e.0.contains(" 403 ") || e.0.contains(" 404 ") || e.0.contains(" 401 ") {
            PublishError(format!(
                "{e} (the job needs `permissions: pull-requests: write`, and GITHUB_TOKEN must be the job's token)"
            ))
        } else {
            e
        }
    };
    let existing = find(&client, &headers, &base, &comments, marker).await.map_err(hint)?;
    let doc = json!({ "body": body });
    let answer = if let Some(id) = existing {
        let edit = url(&["repos", owner, name, "issues", "comments", &id.to_string()]);
        let r = call(&client, API, Method::PATCH, &edit, &headers, Some(&doc)).await.map_err(hint)?;
        Upserted::Updated(link_of(&r.body, id))
    } else {
        let r = call(&client, API, Method::POST, &comments, &headers, Some(&doc)).await.map_err(hint)?;
        Upserted::Created(link_of(&r.body, r.body["id"].as_u64().unwrap_or(0)))
    };
    Ok(Some(answer))
}

/// The id of the first comment whose body holds `marker`, reading every page.
async fn find(
    client: &reqwest::Client,
    headers: &[(&str, String)],
    base: &url::Url,
    comments: &url::Url,
    marker: &str,
) -> Result<Option<u64>, PublishError> {
    let mut next = comments.clone();
    next.query_pairs_mut().append_pair("per_page", "100");
    for _ in 0..MAX_PAGES {
        let page = call(client, API, Method::GET, &next, headers, None).await?;
        let items = page
            .body
            .as_array()
            .ok_or_else(|| PublishError(format!("{API}: GET {} did not answer a list of comments", comments.path())))?;
        let hit = items.iter().find(|c| c["body"].as_str().is_some_and(|b| b.contains(marker)));
        if let Some(c) = hit {
            return Ok(c["id"].as_u64());
        }
        match page.link.as_deref().and_then(next_link) {
            // The token goes only to the API the environment names.
            Some(url) if url.origin() == base.origin() => next = url,
            Some(url) => {
                return Err(PublishError(format!(
                    "{API}: the next page of comments is on another host ({}); not following it with the token",
                    url.origin().ascii_serialization()
                )));
            }
            None => return Ok(None),
        }
    }
    Err(PublishError(format!("{API}: more than {MAX_PAGES} pages of comments; not looking further")))
}

/// The `rel="next"` URL of a `Link` header.
fn next_link(header: &str) -> Option<url::Url> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let next = params.split(';').any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
        next.then(|| url::Url::parse(target.trim().trim_start_matches('<').trim_end_matches('>')).ok()).flatten()
    })
}

fn link_of(comment: &Value, id: u64) -> String {
    comment["html_url"].as_str().map_or_else(|| format!("comment {id}"), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_is_read_from_the_header() {
        let h = r#"<https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=2>; rel="next", <https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=5>; rel="last""#;
        assert_eq!(
            next_link(h).unwrap().as_str(),
            "https://api.github.com/repositories/1/issues/2/comments?per_page=100&page=2"
        );
        assert!(next_link(r#"<https://x/y?page=1>; rel="prev""#).is_none());
        assert!(next_link("garbage").is_none());
    }

    #[test]
    fn the_pull_request_number_comes_from_the_event() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p.display().to_string()
        };
        let pr = at("pr.json", r#"{"action": "synchronize", "number": 7, "pull_request": {"number": 7}}"#);
        let comment = at("c.json", r#"{"issue": {"number": 9, "pull_request": {"url": "x"}}}"#);
        let issue = at("i.json", r#"{"issue": {"number": 9}}"#);
        let push = at("push.json", r#"{"ref": "refs/heads/main"}"#);
        let bad = at("bad.json", "{");
        let number = |p: &str| {
            let p = p.to_owned();
            pull_request_number(&move |k: &str| (k == "GITHUB_EVENT_PATH").then(|| p.clone()))
        };
        assert_eq!(number(&pr), Ok(Some(7)));
        assert_eq!(number(&comment), Ok(Some(9)));
        assert_eq!(number(&issue), Ok(None));
        assert_eq!(number(&push), Ok(None));
        assert!(number(&bad).unwrap_err().0.contains("is not JSON"));
        assert!(pull_request_number(&|_: &str| None).unwrap_err().0.contains("GITHUB_EVENT_PATH is not set"));
    }
}
