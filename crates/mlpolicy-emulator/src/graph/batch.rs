//! JSON `$batch`: up to 20 requests served one by one (each drawing from the Graph bucket),
//! `dependsOn` honoured, answers in shuffled order.

use serde_json::{Map, Value, json};

use super::super::realism::{BucketKind, Counter, Realism};
use super::super::util::eq_ci;
use super::super::{Ctx, Reply, ReplyBody, Shared, lock, throttle};
use super::{budget_headers, handle, throttled};

/// One request of a `$batch`.
struct Item {
    id: String,
    method: String,
    url: String,
    headers: Map<String, Value>,
    body: Option<Value>,
    depends: Vec<String>,
}

/// Serves `POST /v1.0/$batch`.
pub async fn batch(shared: &Shared, ctx: &Ctx) -> Reply {
    if ctx.method != "POST" {
        return Reply::graph_error(ctx, 405, "Request_BadRequest", "The $batch endpoint only accepts POST.");
    }
    let items = match batch_items(ctx) {
        Ok(items) => items,
        Err(reply) => return reply,
    };
    let realism = shared.realism();
    let mut statuses: Vec<(String, u16)> = Vec::new();
    let mut responses: Vec<Value> = Vec::new();
    let mut pending: Vec<usize> = (0..items.len()).collect();
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .position(|&i| items[i].depends.iter().all(|d| statuses.iter().any(|(s, _)| eq_ci(s, d))))
            .unwrap_or(0);
        let item = &items[pending.remove(ready)];
        shared.stats.bump(Counter::GraphBatchItem);
        let failed_dep = item.depends.iter().any(|d| statuses.iter().all(|(s, st)| !eq_ci(s, d) || *st >= 400));
        let reply = batch_item_reply(shared, ctx, &realism, item, failed_dep).await;
        statuses.push((item.id.clone(), reply.status));
        responses.push(batch_entry(&item.id, reply));
    }
    lock(&shared.rng).shuffle(&mut responses);
    let mut body = Map::new();
    body.insert("responses".to_owned(), Value::Array(responses));
    Reply::json(200, Value::Object(body))
}

/// The requests of a `$batch` body: 1 to 20, with unique ids, a method and a URL each, a
/// `Content-Type` header with a body, and `dependsOn` naming requests of the batch.
fn batch_items(ctx: &Ctx) -> Result<Vec<Item>, Reply> {
    let invalid = |m: &str| Reply::graph_error(ctx, 400, "BadRequest", m.to_owned());
    let Ok(Value::Object(body)) = ctx.json() else {
        return Err(invalid("Invalid batch payload format."));
    };
    let Some(Value::Array(requests)) = body.get("requests") else {
        return Err(invalid("Invalid batch payload format."));
    };
    if requests.is_empty() {
        return Err(invalid("Invalid batch payload format. The batch must contain at least one request."));
    }
    if requests.len() > 20 {
        return Err(invalid("Invalid batch payload format. The number of requests in a batch must not exceed 20."));
    }
    let mut items: Vec<Item> = Vec::new();
    for r in requests {
        let Some(id) = r.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()) else {
            return Err(invalid("Invalid batch payload format. Every request needs a string 'id'."));
        };
        if items.iter().any(|i| eq_ci(&i.id, id)) {
            return Err(invalid(&format!("Invalid batch payload format. Request id '{id}' is duplicated.")));
        }
        let (Some(method), Some(url)) = (r.get("method").and_then(Value::as_str), r.get("url").and_then(Value::as_str))
        else {
            return Err(invalid(&format!("Invalid batch payload format. Request '{id}' needs 'method' and 'url'.")));
        };
        let headers = r.get("headers").and_then(Value::as_object).cloned().unwrap_or_default();
        let body = r.get("body").filter(|b| !b.is_null()).cloned();
        if body.is_some() && !headers.keys().any(|k| eq_ci(k, "content-type")) {
            return Err(invalid(&format!("Write request id : {id} does not contain Content-Type header or body.")));
        }
        let depends = r
            .get("dependsOn")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        items.push(Item {
            id: id.to_owned(),
            method: method.to_ascii_uppercase(),
            url: url.to_owned(),
            headers,
            body,
            depends,
        });
    }
    for i in &items {
        if let Some(missing) = i.depends.iter().find(|d| !items.iter().any(|j| eq_ci(&j.id, d))) {
            return Err(invalid(&format!(
                "Invalid batch payload format. Request '{}' depends on unknown request '{missing}'.",
                i.id
            )));
        }
    }
    Ok(items)
}

/// The answer to one batch request: 424 when a request it depends on failed, 400 for an
/// absolute or versioned URL, else the request served as if sent alone (throttled included).
async fn batch_item_reply(shared: &Shared, ctx: &Ctx, realism: &Realism, item: &Item, failed_dep: bool) -> Reply {
    if failed_dep {
        return Reply::graph_error(
            ctx,
            424,
            "FailedDependency",
            "The request could not be completed because a request it depends on failed.",
        );
    }
    if item.url.starts_with("http") || item.url.to_ascii_lowercase().starts_with("/v1.0") {
        return Reply::graph_error(
            ctx,
            400,
            "BadRequest",
            format!(
                "Invalid request URL '{}'. Batch request URLs must be relative, without the version segment.",
                item.url
            ),
        );
    }
    let mut headers = ctx.headers.clone();
    for (k, v) in &item.headers {
        if let (Ok(name), Some(Ok(val))) =
            (axum::http::HeaderName::from_bytes(k.as_bytes()), v.as_str().map(axum::http::HeaderValue::from_str))
        {
            headers.insert(name, val);
        }
    }
    let body = item.body.as_ref().map(Value::to_string).unwrap_or_default();
    let method = axum::http::Method::from_bytes(item.method.as_bytes()).unwrap_or(axum::http::Method::GET);
    let url = if item.url.starts_with('/') { item.url.clone() } else { format!("/{}", item.url) };
    let mut inner = Ctx::new(method, &format!("/v1.0{url}"), headers, body.into(), shared.uuid());
    inner.caller.clone_from(&ctx.caller);
    match throttle(shared, realism, BucketKind::Graph, "graph") {
        (Some(secs), remaining) => {
            shared.stats.bump(Counter::Throttled);
            budget_headers(throttled(&inner, secs), realism, remaining)
        }
        (None, remaining) => budget_headers(handle(shared, &inner).await, realism, remaining),
    }
}

/// One entry of the `$batch` answer: id, status, headers and body.
fn batch_entry(id: &str, reply: Reply) -> Value {
    let mut headers = Map::new();
    for (k, v) in &reply.headers {
        headers.insert(k.clone(), json!(v));
    }
    let mut entry = json!({"id": id, "status": reply.status});
    match reply.body {
        ReplyBody::Json(v) => {
            headers.insert("Content-Type".into(), json!("application/json"));
            entry["body"] = v;
        }
        ReplyBody::Text(_, s) => entry["body"] = json!(s),
        ReplyBody::Empty => {}
    }
    entry["headers"] = Value::Object(headers);
    entry
}
