//! Errors from ARM, Microsoft Graph and the Entra token endpoint.
//!
//! Every failed call becomes one [`AzureError`]: what we were doing (`op`), the HTTP status (0
//! when no response arrived), the service's error code and message, the request ids to quote to
//! Azure support, and a hint for codes whose fix is known. Bodies are parsed leniently: ARM
//! `{"error":{code,message,details}}`, Graph `{"error":{code,message,innerError}}` and the token
//! endpoint's `{error,error_description}`; anything else keeps its first bytes as the message.
//! Messages pass through [`redact_secrets`]: a token endpoint (or a proxy in front of it) may
//! echo the request, and an error printed must not carry a JWT, a client secret or assertion.

use std::fmt;

use uuid::Uuid;

/// One failed Azure call, with enough context to act on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct AzureError {
    /// What mlpolicy was doing, e.g. `create role assignment Reader on /subscriptions/..`.
    pub op: String,
    /// HTTP status; 0 when the request never got a response (connection error, timeout).
    pub status: u16,
    /// Service error code (`AuthorizationFailed`, `Request_ResourceNotFound`, `invalid_client`, ...).
    pub code: String,
    /// Service error message.
    pub message: String,
    /// Codes found in ARM `error.details[]` (deployments wrap the real cause there).
    pub detail_codes: Vec<String>,
    /// `x-ms-request-id` (ARM) or `request-id` (Graph).
    pub request_id: Option<String>,
    /// `x-ms-correlation-request-id` (ARM) or `client-request-id` echoed by Graph.
    pub correlation_id: Option<String>,
    /// What to do about it, for known codes.
    pub hint: Option<String>,
}

impl fmt::Display for AzureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.op)?;
        if self.status == 0 {
            write!(f, "{}", self.message)?;
        } else if self.code.is_empty() {
            write!(f, "HTTP {}: {}", self.status, self.message)?;
        } else {
            write!(f, "{} (HTTP {}): {}", self.code, self.status, self.message)?;
        }
        match (&self.request_id, &self.correlation_id) {
            (Some(r), Some(c)) => write!(f, " [request id {r}, correlation id {c}]")?,
            (Some(r), None) => write!(f, " [request id {r}]")?,
            (None, Some(c)) => write!(f, " [correlation id {c}]")?,
            (None, None) => {}
        }
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

/// What replaces a secret in a message.
pub const REDACTED: &str = "[redacted]";

/// Parameters whose values are secrets, as `name=value` (a form body, a query) or
/// `"name": "value"` (JSON).
const SECRET_PARAMETERS: [&str; 9] = [
    "client_secret",
    "client_assertion",
    "assertion",
    "access_token",
    "refresh_token",
    "id_token",
    "password",
    "code_verifier",
    "sig",
];

/// `text` with anything that looks like a secret replaced by [`REDACTED`]: JWTs
/// (`eyJ….….…`), the values of [`SECRET_PARAMETERS`], and `Bearer` credentials.
pub fn redact_secrets(text: &str) -> String {
    let mut out = redact_jwts(text);
    for name in SECRET_PARAMETERS {
        out = redact_parameter(&out, name);
    }
    redact_after(&out, "bearer ")
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '+' | '/' | '=' | '%')
}

/// Replaces every run `eyJ…` of base64url characters with two dots or more (a JWT or JWS).
fn redact_jwts(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("eyJ") {
        let (before, from) = rest.split_at(i);
        out.push_str(before);
        let len =
            from.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))).unwrap_or(from.len());
        let run = &from[..len];
        if run.matches('.').count() >= 2 {
            out.push_str(REDACTED);
        } else {
            out.push_str(run);
        }
        rest = &from[len..];
    }
    out.push_str(rest);
    out
}

/// Replaces the value after `name=` or `"name": "` (name at a word start, any case).
fn redact_parameter(text: &str, name: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut search = 0;
    while let Some(i) = lower[search..].find(name).map(|i| search + i) {
        search = i + name.len();
        let word_start = lower[..i].chars().next_back().is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        if !word_start {
            continue;
        }
        // `name=value`, `name: value`, `"name":"value"`, `"name" : "value"`.
        let after = &text[search..];
        let skipped = after.len() - after.trim_start_matches(['"', '\'', ' ']).len();
        let Some(sep) = after[skipped..].chars().next().filter(|c| matches!(c, '=' | ':')) else { continue };
        let value_at = search + skipped + sep.len_utf8();
        let value = &text[value_at..];
        let lead = value.len() - value.trim_start_matches(['"', '\'', ' ']).len();
        let start = value_at + lead;
        let len = text[start..].find(|c: char| !is_token_char(c)).unwrap_or(text.len() - start);
        if len == 0 {
            continue;
        }
        out.push_str(&text[copied..start]);
        out.push_str(REDACTED);
        copied = start + len;
        search = copied;
    }
    out.push_str(&text[copied..]);
    out
}

/// Replaces the token after `prefix` (any case), e.g. `Bearer <token>`.
fn redact_after(text: &str, prefix: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut search = 0;
    while let Some(i) = lower[search..].find(prefix).map(|i| search + i) {
        let start = i + prefix.len();
        let len = text[start..].find(|c: char| !is_token_char(c)).unwrap_or(text.len() - start);
        search = start + len;
        if len == 0 || text[start..start + len] == *REDACTED {
            continue;
        }
        out.push_str(&text[copied..start]);
        out.push_str(REDACTED);
        copied = start + len;
    }
    out.push_str(&text[copied..]);
    out
}

impl AzureError {
    /// An error without an HTTP response (configuration, transport, malformed data).
    pub fn local(op: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        let mut err = Self {
            op: op.into(),
            status: 0,
            code: code.to_string(),
            message: redact_secrets(&message.into()),
            detail_codes: Vec::new(),
            request_id: None,
            correlation_id: None,
            hint: None,
        };
        err.hint = hint_for(&err);
        err
    }

    /// Builds the error for a non-success response from its status and body.
    pub fn from_response(
        op: impl Into<String>,
        status: u16,
        body: &[u8],
        request_id: Option<String>,
        correlation_id: Option<String>,
    ) -> Self {
        let parsed = parse_error_body(body);
        let mut err = Self {
            op: op.into(),
            status,
            code: parsed.code,
            message: redact_secrets(&parsed.message),
            detail_codes: parsed.detail_codes,
            request_id: request_id.or(parsed.request_id),
            correlation_id: correlation_id.or(parsed.correlation_id),
            hint: None,
        };
        err.hint = hint_for(&err);
        err
    }

    /// True when `code` is the top-level code or one of the detail codes (ASCII case-insensitive).
    pub fn has_code(&self, code: &str) -> bool {
        self.code.eq_ignore_ascii_case(code) || self.detail_codes.iter().any(|c| c.eq_ignore_ascii_case(code))
    }

    /// True for HTTP 404.
    pub fn is_not_found(&self) -> bool {
        self.status == 404
    }

    /// Replaces the operation text, keeping everything else.
    #[must_use]
    pub fn with_op(mut self, op: impl Into<String>) -> Self {
        self.op = op.into();
        self
    }

    /// For 409 `RoleAssignmentExists`: the name of the assignment that already holds the triple.
    pub fn existing_role_assignment_name(&self) -> Option<Uuid> {
        if !self.has_code("RoleAssignmentExists") {
            return None;
        }
        parse_existing_assignment_id(&self.message)
    }
}

/// Code, message and ids read from an error body.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ParsedError {
    pub code: String,
    pub message: String,
    pub detail_codes: Vec<String>,
    pub request_id: Option<String>,
    pub correlation_id: Option<String>,
}

/// Parses the three error shapes; never fails.
pub(crate) fn parse_error_body(body: &[u8]) -> ParsedError {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return ParsedError { message: snippet(body), ..ParsedError::default() };
    };
    let str_at = |v: &serde_json::Value, key: &str| v.get(key).and_then(serde_json::Value::as_str).map(str::to_string);
    match value.get("error") {
        Some(serde_json::Value::Object(_)) => {
            let error = &value["error"];
            let mut detail_codes = Vec::new();
            collect_detail_codes(error, &mut detail_codes, 0);
            let inner = error.get("innerError").or_else(|| error.get("innererror"));
            ParsedError {
                code: str_at(error, "code").unwrap_or_default(),
                message: str_at(error, "message").unwrap_or_default(),
                detail_codes,
                request_id: inner.and_then(|i| str_at(i, "request-id")),
                correlation_id: inner.and_then(|i| str_at(i, "client-request-id")),
            }
        }
        Some(serde_json::Value::String(code)) => ParsedError {
            code: code.clone(),
            message: str_at(&value, "error_description").unwrap_or_default(),
            detail_codes: Vec::new(),
            request_id: str_at(&value, "trace_id"),
            correlation_id: str_at(&value, "correlation_id"),
        },
        _ => ParsedError {
            code: str_at(&value, "code").unwrap_or_default(),
            message: str_at(&value, "message").unwrap_or_else(|| snippet(body)),
            ..ParsedError::default()
        },
    }
}

fn collect_detail_codes(error: &serde_json::Value, out: &mut Vec<String>, depth: usize) {
    if depth > 4 {
        return;
    }
    if let Some(details) = error.get("details").and_then(serde_json::Value::as_array) {
        for detail in details {
            if let Some(code) = detail.get("code").and_then(serde_json::Value::as_str) {
                out.push(code.to_string());
            }
            collect_detail_codes(detail, out, depth + 1);
        }
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "empty response body".to_string();
    }
    let mut out: String = text.chars().take(300).collect();
    if text.chars().count() > 300 {
        out.push('…');
    }
    out
}

/// Finds the existing assignment's name in a `RoleAssignmentExists` message: the last run of
/// exactly 32 hex digits (re-dashed 8-4-4-4-12), or an already dashed GUID.
pub fn parse_existing_assignment_id(message: &str) -> Option<Uuid> {
    let bytes = message.as_bytes();
    let mut found = None;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_hexdigit() || bytes[i] == b'-' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_hexdigit() || bytes[i] == b'-') {
                i += 1;
            }
            let run = &message[start..i];
            let hex: String = run.chars().filter(char::is_ascii_hexdigit).collect();
            let dashed_ok = !run.contains('-') || run.len() == 36;
            if hex.len() == 32 && dashed_ok {
                found = Uuid::parse_str(&hex).ok();
            }
        } else {
            i += 1;
        }
    }
    found
}

fn hint_for(err: &AzureError) -> Option<String> {
    let codes = std::iter::once(err.code.as_str()).chain(err.detail_codes.iter().map(String::as_str));
    for code in codes {
        let hint = match code {
            "AuthorizationFailed" => {
                "the signed-in principal lacks this action on the scope; role assignment writes need \
                 `Microsoft.Authorization/roleAssignments/write` (Owner, User Access Administrator or \
                 Role Based Access Control Administrator on the scope); if access was granted \
                 recently, wait a few minutes: ARM caches permissions for up to 10 minutes"
            }
            "LinkedAuthorizationFailed" => {
                "the principal may write the target but lacks an action on a linked resource \
                 (storage account, key vault, container registry, or `userAssignedIdentities/assign/action` \
                 on a referenced identity); grant it on the linked scope named in the message"
            }
            "Authorization_RequestDenied" => {
                "the Graph token lacks an application permission: groups need `Group.ReadWrite.All` \
                 (or `Group.Create` plus ownership), memberships `GroupMember.ReadWrite.All`, user \
                 look-ups `User.Read.All`, applications and service principals `Application.Read.All`; \
                 grant them with admin consent"
            }
            "PrincipalNotFound" => {
                "the principal is not yet visible to Azure RBAC (directory replication delay after \
                 creation); send `principalType` and retry in a minute, or check the object id"
            }
            "RoleAssignmentUpdateNotPermitted" => {
                "an assignment with this name exists with another principal, role or scope \
                 (often a principal that was deleted and recreated); delete the old assignment first"
            }
            "SubscriptionRequestsThrottled" | "TenantRequestsThrottled" | "TooManyRequests" => {
                "Azure Resource Manager is throttling this principal; lower --parallelism or retry later"
            }
            "Request_ThrottledTemporarily" => "Microsoft Graph is throttling this application; retry later",
            "ExpiredAuthenticationToken" | "InvalidAuthenticationToken" => {
                "the access token was rejected even after a refresh; check the credential and the clock"
            }
            "InvalidAuthenticationTokenAudience" | "InvalidAuthenticationTokenTenant" => {
                "the token was issued for another audience or tenant; check the tenant id and cloud"
            }
            "invalid_client" | "unauthorized_client" => {
                "the token endpoint rejected the client credential; check AZURE_CLIENT_ID, the tenant and \
                 the secret or federated credential (issuer, subject, audience `api://AzureADTokenExchange`)"
            }
            "MissingSubscriptionRegistration" => {
                "register the resource provider on the subscription (`az provider register --namespace ...`)"
            }
            _ => continue,
        };
        return Some(hint.to_string());
    }
    if err.message.contains("AADSTS70021") {
        return Some(
            "no federated credential matches the presented token (issuer/subject/audience); a FIC \
             created moments ago may still be propagating"
                .to_string(),
        );
    }
    None
}
