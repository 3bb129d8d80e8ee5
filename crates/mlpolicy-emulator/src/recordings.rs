//! Recorded Azure traffic: the test recordings Azure's SDKs and CLI keep (azure-cli's vcrpy
//! YAML, the Java SDK's `networkCallRecords` and azure-powershell's `*.Recording.json`), read
//! into one shape, so that a test can replay them against the emulator or feed their bodies to
//! a client's decoders.

use std::collections::BTreeMap;
use std::path::Path;

use serde_norway::Value as Yaml;

/// One recorded request and Azure's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interaction {
    pub method: String,
    /// The request URL as recorded (any host).
    pub url: String,
    pub body: Option<String>,
    /// Request headers, names lower-cased (none in the Java SDK's format).
    pub request_headers: BTreeMap<String, String>,
    pub status: u16,
    /// Response headers, names lower-cased.
    pub headers: BTreeMap<String, String>,
    pub response: Option<String>,
    /// Whether Azure's `Retry-After` is unknown: the Java SDK's recorder replaces it with `0`
    /// and adds `retry-after: 0` to every answer that had none, so that playback never waits;
    /// such recordings say nothing about it (and the loader drops the header).
    pub retry_after_unknown: bool,
}

fn yaml_str(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A header value: a string or the first string of a list.
fn yaml_header(v: &Yaml) -> Option<String> {
    match v {
        Yaml::Sequence(s) => {
            let parts: Vec<String> = s.iter().filter_map(yaml_str).collect();
            (!parts.is_empty()).then(|| parts.join(", "))
        }
        other => yaml_str(other),
    }
}

fn headers_of(v: Option<&Yaml>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(Yaml::Mapping(m)) = v {
        for (k, v) in m {
            if let (Some(k), Some(v)) = (yaml_str(k), yaml_header(v)) {
                out.insert(k.to_ascii_lowercase(), v);
            }
        }
    }
    out
}

pub fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

/// Reads the three recording formats: azure-cli's vcrpy YAML (`interactions:`), the Java SDK's
/// `networkCallRecords` and azure-powershell's `{name+$METHOD+url: {Request, Response}}`.
pub fn load(path: &Path) -> Result<Vec<Interaction>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let doc: Yaml = serde_norway::from_str(&text).map_err(|e| format!("parse {}: {e}", path.display()))?;
    let mut out = Vec::new();
    if let Some(Yaml::Sequence(items)) = doc.get("interactions") {
        for i in items {
            let (req, resp) = (&i["request"], &i["response"]);
            out.push(Interaction {
                method: yaml_str(&req["method"]).unwrap_or_default(),
                url: yaml_str(&req["uri"]).unwrap_or_default(),
                body: non_empty(yaml_str(&req["body"])),
                request_headers: headers_of(req.get("headers")),
                status: resp["status"]["code"].as_u64().and_then(|c| u16::try_from(c).ok()).unwrap_or(0),
                headers: headers_of(resp.get("headers")),
                response: non_empty(yaml_str(&resp["body"]["string"])),
                retry_after_unknown: false,
            });
        }
    } else if let Some(Yaml::Sequence(items)) = doc.get("networkCallRecords") {
        for i in items {
            let resp = &i["Response"];
            let mut headers = headers_of(Some(resp));
            headers.remove("body");
            headers.remove("statuscode");
            headers.remove("retry-after");
            out.push(Interaction {
                method: yaml_str(&i["Method"]).unwrap_or_default(),
                url: yaml_str(&i["Uri"]).unwrap_or_default(),
                body: None,
                request_headers: BTreeMap::new(),
                status: yaml_str(&resp["StatusCode"]).and_then(|s| s.parse().ok()).unwrap_or(0),
                headers,
                response: non_empty(yaml_str(&resp["Body"])),
                retry_after_unknown: true,
            });
        }
    } else if let Yaml::Mapping(m) = &doc {
        for (_, i) in m {
            let (req, resp) = (&i["Request"], &i["Response"]);
            let mut headers = headers_of(resp.get("Headers"));
            headers.extend(headers_of(resp.get("ContentHeaders")));
            out.push(Interaction {
                method: yaml_str(&req["Method"]).unwrap_or_default(),
                url: yaml_str(&req["RequestUri"]).unwrap_or_default(),
                body: non_empty(yaml_str(&req["Content"])),
                request_headers: headers_of(req.get("Headers")),
                status: resp["StatusCode"].as_u64().and_then(|c| u16::try_from(c).ok()).unwrap_or(0),
                headers,
                response: non_empty(yaml_str(&resp["Content"])),
                retry_after_unknown: false,
            });
        }
    }
    Ok(out)
}
