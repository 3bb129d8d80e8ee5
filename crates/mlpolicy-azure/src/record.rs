//! Record mode: every ARM and Graph exchange of a run written to a cassette, so that real traffic
//! becomes a test. The format is azure-cli's test recordings (vcrpy YAML: `interactions:`, each
//! with `request` and `response`), which the emulator's parity suite reads.
//!
//! Cassettes are sanitised as they are written: no `Authorization` header or any other request
//! header but the content type; response headers only from a list of harmless ones; every JSON
//! value under a key that names a secret (`secretText`, `password`, `clientSecret`, tokens,
//! keys, connection strings) replaced by `[Filtered]`; a body that is not JSON but mentions a
//! token or secret dropped. With `ids` on, the tenant id and every subscription id seen are
//! replaced by `00000000-0000-0000-0000-000000000000` everywhere. Token requests never reach
//! the recorder (they go through `azure_identity`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use reqwest::header::HeaderMap;
use serde::Serialize;
use serde_json::Value;

use crate::AzureError;

/// Response headers a cassette keeps; every other is left out.
const KEPT_HEADERS: &[&str] = &[
    "content-type",
    "location",
    "azure-asyncoperation",
    "retry-after",
    "odata-version",
    "preference-applied",
    "x-ms-request-id",
    "x-ms-correlation-request-id",
    "request-id",
    "x-ms-ratelimit-remaining-subscription-reads",
    "x-ms-ratelimit-remaining-subscription-writes",
    "x-ms-ratelimit-remaining-subscription-deletes",
    "x-ms-resource-unit",
    "x-ms-throttle-limit-percentage",
];

/// Parts of JSON keys whose values are secrets.
const SECRET_KEYS: &[&str] = &[
    "secret",
    "password",
    "token",
    "assertion",
    "connectionstring",
    "primarykey",
    "secondarykey",
    "accountkey",
    "sastoken",
    "credential_value",
];

/// The placeholder ids are replaced with.
const ZERO_GUID: &str = "00000000-0000-0000-0000-000000000000";

/// Writes one cassette.
#[derive(Debug)]
pub(crate) struct Recorder {
    path: PathBuf,
    file: Mutex<std::fs::File>,
    /// Ids to replace (lower-case), when `ids` is on.
    ids: Option<Mutex<Vec<String>>>,
}

#[derive(Serialize)]
struct Interaction {
    request: Request,
    response: Response,
}

#[derive(Serialize)]
struct Request {
    body: Option<String>,
    headers: std::collections::BTreeMap<String, Vec<String>>,
    method: String,
    uri: String,
}

#[derive(Serialize)]
struct Response {
    body: Body,
    headers: std::collections::BTreeMap<String, Vec<String>>,
    status: Status,
}

#[derive(Serialize)]
struct Body {
    string: String,
}

#[derive(Serialize)]
struct Status {
    code: u16,
}

impl Recorder {
    /// A new cassette in `dir` (created if missing), named after the time and process.
    pub(crate) fn create(dir: &Path, tenant_id: &str, replace_ids: bool) -> Result<Recorder, AzureError> {
        let fail = |e: std::io::Error| {
            AzureError::local("record", "RecordFailed", format!("cannot write a cassette in `{}`: {e}", dir.display()))
        };
        std::fs::create_dir_all(dir).map_err(fail)?;
        let stamp = mlpolicy_vocab::time::rfc3339_now().replace(':', "");
        let path = dir.join(format!("mlpolicy-{stamp}-{}.yaml", std::process::id()));
        let mut file = std::fs::OpenOptions::new().create_new(true).write(true).open(&path).map_err(fail)?;
        file.write_all(b"interactions:\n").map_err(fail)?;
        let ids = replace_ids.then(|| Mutex::new(vec![tenant_id.to_ascii_lowercase()]));
        Ok(Recorder { path, file: Mutex::new(file), ids })
    }

    /// Where the cassette is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one exchange.
    pub(crate) fn record(
        &self,
        method: &str,
        url: &str,
        request_body: Option<&Value>,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), AzureError> {
        self.learn_ids(url);
        let mut request_headers = std::collections::BTreeMap::new();
        if request_body.is_some() {
            request_headers.insert("Content-Type".to_owned(), vec!["application/json".to_owned()]);
        }
        let mut response_headers = std::collections::BTreeMap::new();
        for name in KEPT_HEADERS {
            if let Some(v) = headers.get(*name).and_then(|v| v.to_str().ok()) {
                response_headers.insert((*name).to_owned(), vec![self.replace_ids(v)]);
            }
        }
        let interaction = Interaction {
            request: Request {
                body: request_body.map(|b| self.replace_ids(&redact(b.clone()).to_string())),
                headers: request_headers,
                method: method.to_owned(),
                uri: self.replace_ids(url),
            },
            response: Response {
                body: Body { string: self.replace_ids(&sanitise_body(body)) },
                headers: response_headers,
                status: Status { code: status },
            },
        };
        let text = serde_norway::to_string(&[interaction])
            .map_err(|e| AzureError::local("record", "RecordFailed", e.to_string()))?;
        let mut file = self.file.lock().map_err(|_| AzureError::local("record", "RecordFailed", "poisoned"))?;
        file.write_all(text.as_bytes()).map_err(|e| {
            AzureError::local("record", "RecordFailed", format!("cannot write `{}`: {e}", self.path.display()))
        })
    }

    /// Subscription ids in `url`, to replace from now on.
    fn learn_ids(&self, url: &str) {
        let Some(ids) = &self.ids else { return };
        let mut segs = url.split(['/', '?']);
        while let Some(s) = segs.next() {
            if s.eq_ignore_ascii_case("subscriptions")
                && let Some(id) = segs.next().filter(|id| mlpolicy_vocab::guid::is_guid(id))
                && let Ok(mut known) = ids.lock()
                && !known.iter().any(|k| k.eq_ignore_ascii_case(id))
            {
                known.push(id.to_ascii_lowercase());
            }
        }
    }

    fn replace_ids(&self, text: &str) -> String {
        let Some(ids) = &self.ids else { return text.to_owned() };
        let Ok(known) = ids.lock() else { return text.to_owned() };
        let mut out = text.to_owned();
        for id in known.iter().filter(|id| !id.is_empty()) {
            let lower = out.to_ascii_lowercase();
            if !lower.contains(id.as_str()) {
                continue;
            }
            let mut rebuilt = String::with_capacity(out.len());
            let mut last = 0;
            for (at, _) in lower.match_indices(id.as_str()) {
                rebuilt.push_str(&out[last..at]);
                rebuilt.push_str(ZERO_GUID);
                last = at + id.len();
            }
            rebuilt.push_str(&out[last..]);
            out = rebuilt;
        }
        out
    }
}

/// Whether a JSON key names a secret.
fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace(['_', '-'], "");
    SECRET_KEYS.iter().any(|s| k.contains(&s.replace('_', "")))
}

/// Keys whose values are never secret, kept inside a secret-named container
/// (`passwordCredentials: [{keyId, hint, …, secretText}]`).
const PLAIN_KEYS: &[&str] =
    &["keyId", "hint", "displayName", "startDateTime", "endDateTime", "customKeyIdentifier", "type", "usage"];

/// `value` with every secret replaced by `[Filtered]`.
fn redact(value: Value) -> Value {
    redact_in(value, false)
}

/// Inside a container named like a secret, every leaf is filtered but the plain ones.
fn redact_in(value: Value, secret: bool) -> Value {
    match value {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let secret_here =
                        if PLAIN_KEYS.contains(&k.as_str()) { false } else { secret || is_secret_key(&k) };
                    (k, redact_in(v, secret_here))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(|v| redact_in(v, secret)).collect()),
        Value::Null => Value::Null,
        _ if secret => Value::String("[Filtered]".into()),
        other => other,
    }
}

/// A response body as a cassette keeps it: JSON redacted; other text only when it mentions no
/// secret.
fn sanitise_body(body: &[u8]) -> String {
    if body.is_empty() {
        return String::new();
    }
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return redact(v).to_string();
    }
    let text = String::from_utf8_lossy(body);
    let lower = text.to_ascii_lowercase();
    if ["token", "secret", "password", "assertion", "bearer"].iter().any(|w| lower.contains(w)) {
        "[Filtered]".to_owned()
    } else {
        text.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_filtered_at_any_depth() {
        let v = serde_json::json!({
            "secretText": "s3cr3t", "keyId": "k", "passwordCredentials": [{"secretText": "x", "hint": "abc"}],
            "properties": {"clientSecret": "y", "connectionString": "z", "principalId": "p"},
            "access_token": "t", "nothing": null
        });
        let text = redact(v).to_string();
        for secret in ["s3cr3t", "\"x\"", "\"y\"", "\"z\"", "\"t\""] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("\"principalId\":\"p\"") && text.contains("\"hint\":\"abc\""), "{text}");
        assert_eq!(sanitise_body(b"Bearer abc.def"), "[Filtered]");
        assert_eq!(sanitise_body(b"plain"), "plain");
    }

    #[test]
    fn tenant_and_subscription_ids_are_replaced() {
        let dir = std::env::temp_dir().join(format!("mlpolicy-record-test-{}", std::process::id()));
        let r = Recorder::create(&dir, "AAAAAAAA-0000-4000-8000-000000000001", true).unwrap();
        r.learn_ids("https://management.azure.com/subscriptions/bbbbbbbb-0000-4000-8000-000000000002/resourcegroups/x");
        let text = r.replace_ids(
            "/subscriptions/BBBBBBBB-0000-4000-8000-000000000002 in tenant aaaaaaaa-0000-4000-8000-000000000001",
        );
        assert_eq!(text, format!("/subscriptions/{ZERO_GUID} in tenant {ZERO_GUID}"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
