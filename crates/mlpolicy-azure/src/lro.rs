//! ARM long-running operations (RPC async contract, docs/azure-wire.md §1.5).
//!
//! After a 200/201/202: poll `Azure-AsyncOperation` when present (200 with `status`, terminal
//! `Succeeded`/`Failed`/`Canceled`), else `Location` (202 while running, then 200 or 204), else
//! GET the resource while `properties.provisioningState` is not terminal. `Retry-After` is
//! honoured up to a cap; the whole wait is bounded. A PUT or PATCH ends with a GET of the
//! resource; a DELETE does not.

use std::time::Duration;

use reqwest::Method;
use tokio::time::Instant;
use url::Url;

use super::{
    cloud::Audience,
    error::AzureError,
    http::{Call, Core, Resp, retry_after},
};

/// Polling limits for long-running operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LroPolicy {
    /// Wait between polls when the service sends no `Retry-After`.
    pub default_interval: Duration,
    /// Longest wait between polls, whatever `Retry-After` says.
    pub max_interval: Duration,
    /// Longest total wait before giving up.
    pub timeout: Duration,
}

impl Default for LroPolicy {
    fn default() -> Self {
        Self {
            default_interval: Duration::from_secs(5),
            max_interval: Duration::from_secs(60),
            timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// Which kind of request started the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LroKind {
    Write,
    Delete,
}

/// True for `Succeeded`, `Failed`, `Canceled` (and a missing state, which counts as done).
pub(crate) fn is_terminal(state: Option<&str>) -> bool {
    match state {
        None => true,
        Some(s) => ["succeeded", "failed", "canceled", "cancelled"].contains(&s.to_ascii_lowercase().as_str()),
    }
}

pub(crate) fn provisioning_state(body: &serde_json::Value) -> Option<&str> {
    body.get("properties")?.get("provisioningState")?.as_str()
}

fn succeeded(state: &str) -> bool {
    state.eq_ignore_ascii_case("succeeded")
}

struct Poller<'a> {
    core: &'a Core,
    policy: &'a LroPolicy,
    op: &'a str,
    deadline: Instant,
}

impl Poller<'_> {
    async fn pause(&self, resp: &Resp) -> Result<(), AzureError> {
        let wait = retry_after(&resp.headers).unwrap_or(self.policy.default_interval).min(self.policy.max_interval);
        if Instant::now() + wait > self.deadline {
            return Err(AzureError::local(
                self.op,
                "OperationTimedOut",
                format!("the operation did not finish within {:?}", self.policy.timeout),
            ));
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }

    fn poll_url(&self, raw: &str) -> Result<Url, AzureError> {
        Url::parse(raw)
            .map_err(|e| AzureError::local(self.op, "MalformedResponse", format!("invalid poll URL `{raw}`: {e}")))
    }

    async fn get(&self, url: Url) -> Result<Resp, AzureError> {
        self.core.send(Call::new(Audience::Arm, Method::GET, url, self.op)).await
    }
}

/// Drives an operation to its end. Returns the final resource body for writes, `None` for deletes.
pub(crate) async fn complete(
    core: &Core,
    policy: &LroPolicy,
    op: &str,
    initial: Resp,
    resource_url: &Url,
    kind: LroKind,
) -> Result<Option<serde_json::Value>, AzureError> {
    if !initial.ok() {
        return Err(initial.error(op));
    }
    let poller = Poller { core, policy, op, deadline: Instant::now() + policy.timeout };
    let async_op = initial.header("azure-asyncoperation").map(str::to_string);
    let location = initial.header("location").map(str::to_string);

    if let Some(raw) = async_op {
        let url = poller.poll_url(&raw)?;
        let mut last = initial;
        loop {
            poller.pause(&last).await?;
            let resp = poller.get(url.clone()).await?;
            if !resp.ok() {
                return Err(resp.error(&format!("{op} (reading operation status)")));
            }
            let status: serde_json::Value = resp.json(op)?;
            let state = status.get("status").and_then(serde_json::Value::as_str).unwrap_or("");
            if is_terminal(Some(state)) && !state.is_empty() {
                if !succeeded(state) {
                    return Err(operation_failed(op, state, &status, &resp));
                }
                break;
            }
            last = resp;
        }
    } else if let (Some(raw), 202) = (location, initial.status) {
        let url = poller.poll_url(&raw)?;
        let mut last = initial;
        loop {
            poller.pause(&last).await?;
            let resp = poller.get(url.clone()).await?;
            match resp.status {
                202 => last = resp,
                204 => break,
                200 | 201 => {
                    if let Ok(body) = serde_json::from_slice::<serde_json::Value>(&resp.body)
                        && let Some(state) = provisioning_state(&body)
                        && is_terminal(Some(state))
                        && !succeeded(state)
                    {
                        return Err(operation_failed(op, state, &body, &resp));
                    }
                    break;
                }
                _ => return Err(resp.error(op)),
            }
        }
    } else if kind == LroKind::Write {
        let body: Option<serde_json::Value> = serde_json::from_slice(&initial.body).ok();
        let state = body.as_ref().and_then(provisioning_state).map(str::to_string);
        if !is_terminal(state.as_deref()) {
            let mut last = initial;
            loop {
                poller.pause(&last).await?;
                let resp = poller.get(resource_url.clone()).await?;
                if !resp.ok() {
                    return Err(resp.error(op));
                }
                let body: serde_json::Value = resp.json(op)?;
                let state = provisioning_state(&body).map(str::to_string);
                if is_terminal(state.as_deref()) {
                    break;
                }
                last = resp;
            }
        }
    }

    if kind == LroKind::Delete {
        return Ok(None);
    }
    let resp = poller.get(resource_url.clone()).await?;
    if !resp.ok() {
        return Err(resp.error(op));
    }
    let body: serde_json::Value = resp.json(op)?;
    if let Some(state) = provisioning_state(&body)
        && is_terminal(Some(state))
        && !succeeded(state)
    {
        return Err(operation_failed(op, state, &body, &resp));
    }
    Ok(Some(body))
}

fn operation_failed(op: &str, state: &str, body: &serde_json::Value, resp: &Resp) -> AzureError {
    let error = body.get("error").or_else(|| body.get("properties").and_then(|p| p.get("error")));
    let code = error.and_then(|e| e.get("code")).and_then(serde_json::Value::as_str).unwrap_or(state);
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(serde_json::Value::as_str)
        .map_or_else(|| format!("the operation ended in state {state}"), str::to_string);
    let mut err = AzureError::local(op, code, message);
    err.status = resp.status;
    err.request_id.clone_from(&resp.ids.request_id);
    err.correlation_id.clone_from(&resp.ids.correlation_id);
    err
}
