//! The HTTP calls of the comment APIs: JSON in and out, bounded responses, errors that say
//! which call failed and what the API answered (never the token).

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use super::PublishError;

/// A response larger than this is refused (a page of comments is far smaller).
const MAX_RESPONSE: usize = 16 << 20;

/// One answered call.
pub struct Response {
    /// The `Link` header (GitHub paging), if any.
    pub link: Option<String>,
    pub body: Value,
}

/// The client of every call: a user agent (GitHub requires one), time limits, no redirects
/// (a redirect must not carry the token elsewhere).
pub fn client() -> Result<reqwest::Client, PublishError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(20))
        .timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("mlpolicy/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| PublishError(format!("cannot start an HTTP client: {e}")))
}

/// Sends one request with `headers` and an optional JSON body. `api` names the API in errors
/// ("GitHub API"); `what` is the call as people read it (`POST /repos/o/r/issues/1/comments`).
pub async fn call(
    client: &reqwest::Client,
    api: &str,
    method: Method,
    url: &url::Url,
    headers: &[(&str, String)],
    body: Option<&Value>,
) -> Result<Response, PublishError> {
    let what = format!("{method} {}", url.path());
    let mut req = client.request(method, url.clone());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let mut resp = req.send().await.map_err(|e| PublishError(format!("{api}: {what} failed: {}", plain(&e))))?;
    let status = resp.status();
    let link = resp.headers().get("link").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut bytes = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| PublishError(format!("{api}: {what}: reading the answer failed: {}", plain(&e))))?
    {
        if bytes.len() + chunk.len() > MAX_RESPONSE {
            return Err(PublishError(format!("{api}: {what}: the answer is larger than {MAX_RESPONSE} bytes")));
        }
        bytes.extend_from_slice(&chunk);
    }
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        let said = api_message(&body).or_else(|| {
            let text = String::from_utf8_lossy(&bytes);
            (!text.trim().is_empty()).then(|| text.into_owned())
        });
        let said = said.map(|m| format!(": {}", short(&m))).unwrap_or_default();
        return Err(PublishError(format!("{api}: {what} returned {status}{said}")));
    }
    Ok(Response { link, body })
}

/// The message an API puts in its error body (`message` for both GitHub and Azure DevOps).
fn api_message(body: &Value) -> Option<String> {
    body.get("message").and_then(Value::as_str).map(str::to_owned)
}

/// One line of at most 300 characters, control characters removed.
fn short(s: &str) -> String {
    let line: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let line = line.trim();
    if line.chars().count() > 300 {
        format!("{}…", line.chars().take(300).collect::<String>())
    } else {
        line.to_owned()
    }
}

/// A transport error with its causes, on one line.
fn plain(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    short(&msg)
}
