//! Parity with real Azure: replays every recorded interaction of `tests/data/azure/recordings/`
//! (real ARM and Graph traffic recorded by Microsoft's own test suites; sources and licences in
//! that folder's `SOURCES.md`) that touches an operation the emulator serves, against a fresh
//! emulator per recording over HTTP, and compares what came back with what Azure answered:
//!
//! - the status code;
//! - the response's fields, by path and JSON type (a recorded `null` matches any type; values
//!   are not compared, so volatile fields such as timestamps, request ids and etags only need
//!   to be present);
//! - the headers clients depend on: `Location`, `Azure-AsyncOperation` and `Retry-After`
//!   (present or not) and the media type of `Content-Type`.
//!
//! Ids the server mints (object ids, principal ids, polling URLs) are mapped as they appear:
//! where the recorded and the emulated answers hold different GUIDs at the same place, later
//! requests use the emulator's. Objects a recording reads but never creates (the setup its test
//! made before recording) are created first from the recorded answer. Azure is right where the
//! two differ: `docs/emulator.md` lists every known difference with its reason.
//!
//! The test prints a table per operation (calls, status match %, field match %, header match %)
//! and fails when the totals fall below the thresholds at the end of this file.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use mlpolicy_emulator::recordings::{Interaction, load, non_empty};
use mlpolicy_emulator::{Emulator, EmulatorConfig, Realism};
use serde_json::Value;

#[path = "parity/graph.rs"]
mod graph;

fn recordings_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/azure/recordings")
}

/// Which surface a URL belongs to, and its path (without host) and query.
fn split_url(url: &str) -> Option<(Surface, String, String)> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (host, path_query) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
    let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
    let surface = match host.to_ascii_lowercase().as_str() {
        "management.azure.com" | "localhost:1234" => Surface::Arm,
        "graph.microsoft.com" => Surface::Graph,
        _ => return None,
    };
    Some((surface, format!("/{path}"), query.to_owned()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Surface {
    Arm,
    Graph,
}

/// The operation an interaction exercises, when the emulator serves it: `GET workspaces`,
/// `PUT roleAssignments`, `POST users/{id}/getMemberGroups`, ...
fn operation(i: &Interaction) -> Option<String> {
    let (surface, path, query) = split_url(&i.url)?;
    let segs: Vec<String> = path.split('/').filter(|s| !s.is_empty()).map(str::to_ascii_lowercase).collect();
    let m = i.method.to_ascii_uppercase();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let op = match surface {
        Surface::Arm => arm_operation(&s, &query)?,
        Surface::Graph => graph_operation(&s)?,
    };
    Some(format!("{m} {op}"))
}

fn arm_operation(s: &[&str], query: &str) -> Option<String> {
    // `{scope}/providers/Microsoft.Authorization/{roleAssignments|roleDefinitions}[/{name}]` at any scope.
    if let Some(p) = s.windows(2).rposition(|w| w[0] == "providers" && w[1] == "microsoft.authorization") {
        let rest = &s[p + 2..];
        return match rest {
            ["roleassignments"] => Some("roleAssignments (list)".into()),
            ["roleassignments", _] => Some("roleAssignments".into()),
            ["roledefinitions"] => Some(
                if query.contains("filter") { "roleDefinitions (list, $filter)" } else { "roleDefinitions (list)" }
                    .into(),
            ),
            ["roledefinitions", _] => Some("roleDefinitions".into()),
            _ => None,
        };
    }
    match s {
        ["subscriptions"] => Some("subscriptions (list)".into()),
        ["subscriptions", _] => Some("subscriptions".into()),
        ["subscriptions", _, "resourcegroups"] => Some("resourceGroups (list)".into()),
        ["subscriptions", _, "resourcegroups", _] => Some("resourceGroups".into()),
        ["subscriptions", _, "operationresults", _] => Some("operationResults".into()),
        ["subscriptions", _, "resourcegroups", _, "providers", ns, rest @ ..] => match (*ns, rest) {
            ("microsoft.managedidentity", ["userassignedidentities"]) => Some("userAssignedIdentities (list)".into()),
            ("microsoft.managedidentity", ["userassignedidentities", _]) => Some("userAssignedIdentities".into()),
            ("microsoft.managedidentity", ["userassignedidentities", _, "federatedidentitycredentials"]) => {
                Some("federatedIdentityCredentials (list)".into())
            }
            ("microsoft.managedidentity", ["userassignedidentities", _, "federatedidentitycredentials", _]) => {
                Some("federatedIdentityCredentials".into())
            }
            ("microsoft.machinelearningservices", ["workspaces"]) => Some("workspaces (list)".into()),
            ("microsoft.machinelearningservices", ["workspaces", _]) => Some("workspaces".into()),
            ("microsoft.machinelearningservices", ["locations", _, "workspaceoperationsstatus", _]) => {
                Some("workspaceOperationsStatus".into())
            }
            _ => None,
        },
        ["subscriptions", _, "providers", "microsoft.managedidentity", "userassignedidentities"] => {
            Some("userAssignedIdentities (list)".into())
        }
        ["subscriptions", _, "providers", "microsoft.machinelearningservices", "workspaces"] => {
            Some("workspaces (list)".into())
        }
        _ => None,
    }
}

fn graph_operation(s: &[&str]) -> Option<String> {
    let [version, rest @ ..] = s else { return None };
    if *version != "v1.0" {
        return None;
    }
    let entity = |e: &str| matches!(e, "users" | "groups" | "serviceprincipals" | "applications" | "directoryobjects");
    let name = |e: &str| match e {
        "serviceprincipals" => "servicePrincipals".to_owned(),
        "directoryobjects" => "directoryObjects".to_owned(),
        other => other.to_owned(),
    };
    // `users('alice@contoso.com')`, `applications(appId='…')`: a key in the first segment.
    let keyed: Vec<&str>;
    let rest = match rest.split_first() {
        Some((first, tail)) if first.contains('(') => {
            let (set, _) = first.split_once('(').unwrap_or_default();
            keyed = [set, "{key}"].into_iter().chain(tail.iter().copied()).collect();
            keyed.as_slice()
        }
        _ => rest,
    };
    match rest {
        ["directoryobjects", "getbyids"] => Some("directoryObjects/getByIds".into()),
        [e] if entity(e) => Some(name(e)),
        [e, "$count"] if entity(e) => Some(format!("{}/$count", name(e))),
        [e, _] if entity(e) => Some(format!("{}/{{id}}", name(e))),
        [e, _, rel @ ("members" | "owners" | "memberof" | "transitivememberof" | "transitivemembers"), "$count"]
            if entity(e) =>
        {
            Some(format!("{}/{{id}}/{rel}/$count", name(e)))
        }
        [
            e,
            _,
            action @ ("getmembergroups" | "checkmembergroups" | "getmemberobjects" | "addpassword" | "removepassword"),
        ] if entity(e) => {
            let action = match *action {
                "getmembergroups" => "getMemberGroups",
                "checkmembergroups" => "checkMemberGroups",
                "getmemberobjects" => "getMemberObjects",
                "addpassword" => "addPassword",
                _ => "removePassword",
            };
            Some(format!("{}/{{id}}/{action}", name(e)))
        }
        [e, _, rel @ ("members" | "owners" | "memberof" | "transitivememberof" | "transitivemembers")] if entity(e) => {
            Some(format!("{}/{{id}}/{rel}", name(e)))
        }
        [e, _, rel @ ("members" | "owners"), "$ref"] if entity(e) => Some(format!("{}/{{id}}/{rel}/$ref", name(e))),
        [e, _, rel @ ("members" | "owners"), _, "$ref"] if entity(e) => {
            Some(format!("{}/{{id}}/{rel}/{{id}}/$ref", name(e)))
        }
        ["$batch"] => Some("$batch".into()),
        _ => None,
    }
}

/// Strings that look like server-minted ids.
fn is_guid(s: &str) -> bool {
    s.len() == 36
        && s.split('-').map(str::len).eq([8, 4, 4, 4, 12])
        && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// A GUID of one repeated digit, as recorders write sanitised ids.
fn is_placeholder(s: &str) -> bool {
    let mut digits = s.bytes().filter(|b| *b != b'-');
    let first = digits.next();
    digits.all(|d| Some(d) == first)
}

/// Records, for each place where both answers hold a GUID and they differ, recorded → emulated.
fn learn_ids(recorded: &Value, emulated: &Value, map: &mut HashMap<String, String>) {
    match (recorded, emulated) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                if let Some(w) = b.get(k) {
                    learn_ids(v, w, map);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (v, w) in a.iter().zip(b) {
                learn_ids(v, w, map);
            }
        }
        // A recorder's placeholder (`00000000-0000-…`) stands for many values: never mapped.
        (Value::String(a), Value::String(b)) if a != b && is_guid(a) && is_guid(b) && !is_placeholder(a) => {
            map.entry(a.to_ascii_lowercase()).or_insert_with(|| b.clone());
        }
        _ => {}
    }
}

/// Replaces every mapped id in `text` (case-insensitively for GUIDs).
fn substitute(text: &str, map: &HashMap<String, String>) -> String {
    let mut out = text.to_owned();
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_by_key(|k| std::cmp::Reverse(k.len()));
    for k in keys {
        let v = &map[k];
        let lower = out.to_ascii_lowercase();
        if lower.contains(k.as_str()) {
            let mut rebuilt = String::with_capacity(out.len());
            let mut last = 0;
            for (at, _) in lower.match_indices(k.as_str()) {
                rebuilt.push_str(&out[last..at]);
                rebuilt.push_str(v);
                last = at + k.len();
            }
            rebuilt.push_str(&out[last..]);
            out = rebuilt;
        }
    }
    out
}

/// `(path, type)` of every field of a JSON document; array elements share the path `[]`.
fn fields(v: &Value, path: &str, out: &mut BTreeMap<String, &'static str>) {
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    if !path.is_empty() {
        out.entry(path.to_owned()).or_insert(kind);
    }
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                // Keys that are data (ARM ids keying `userAssignedIdentities`, GUIDs, the rule
                // names keying a managed network's `outboundRules`) are one field.
                let key = if k.starts_with("@odata.") && k != "@odata.type" {
                    "@odata.*"
                } else if k.contains('/') || is_guid(k) || path.ends_with(".outboundRules") {
                    "{key}"
                } else {
                    k.as_str()
                };
                fields(v, &format!("{path}.{key}"), out);
            }
        }
        Value::Array(a) => {
            for v in a {
                fields(v, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
}

/// How many of the recorded fields the emulated answer has, with the same type.
fn field_match(recorded: &Value, emulated: &Value) -> (usize, usize, Vec<String>) {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    fields(recorded, "", &mut a);
    fields(emulated, "", &mut b);
    let mut missing = Vec::new();
    let matched = a
        .iter()
        .filter(|(p, t)| {
            let ok = b.get(*p).is_some_and(|u| *t == u || **t == "null" || *u == "null");
            if !ok {
                missing.push((*p).clone());
            }
            ok
        })
        .count();
    (matched, a.len(), missing)
}

/// The headers clients depend on, as compared: presence of the LRO and retry headers, and the
/// media type of the body.
fn header_view(headers: &BTreeMap<String, String>, has_body: bool, retry_after: bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let compared: &[&str] = if retry_after {
        &["location", "azure-asyncoperation", "retry-after"]
    } else {
        &["location", "azure-asyncoperation"]
    };
    for &h in compared {
        out.push((h.to_owned(), if headers.contains_key(h) { "present" } else { "absent" }.to_owned()));
    }
    let media = headers
        .get("content-type")
        .filter(|_| has_body)
        .map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default();
    out.push(("content-type".into(), media));
    out
}

/// Published api-versions replace the recorder's sanitised `0000-00-00`.
fn fix_api_version(query: &str, path: &str) -> String {
    if !query.contains("api-version=0000-00-00") {
        return query.to_owned();
    }
    let version = if path.to_ascii_lowercase().contains("microsoft.machinelearningservices") {
        "2025-06-01"
    } else {
        "2025-04-01"
    };
    query.replace("api-version=0000-00-00", &format!("api-version={version}"))
}

#[derive(Default, Debug, Clone)]
struct Tally {
    calls: usize,
    status_ok: usize,
    fields_matched: usize,
    fields_total: usize,
    headers_ok: usize,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.calls += other.calls;
        self.status_ok += other.status_ok;
        self.fields_matched += other.fields_matched;
        self.fields_total += other.fields_total;
        self.headers_ok += other.headers_ok;
    }
}

#[expect(clippy::cast_precision_loss, reason = "counts of recorded calls are far below 2^52")]
fn pct(a: usize, b: usize) -> f64 {
    if b == 0 { 100.0 } else { 100.0 * a as f64 / b as f64 }
}

struct Replayer {
    http: reqwest::Client,
    base: String,
    arm_token: String,
    graph_token: String,
    ids: HashMap<String, String>,
    /// Lower-cased ARM ids this replay created or set up, and Graph objects by recorded id.
    known: BTreeSet<String>,
    /// Graph relationships (`groups/{recorded id}/members`) the recording writes by `$ref`: the
    /// set-up never supplies them.
    written: BTreeSet<String>,
}

impl Replayer {
    async fn start(emulator: &Emulator) -> Replayer {
        let http = reqwest::Client::new();
        let base = emulator.base_url();
        let token = |scope: &'static str| {
            let http = http.clone();
            let url = format!("{base}/00000000-0000-0000-0000-000000000000/oauth2/v2.0/token");
            async move {
                let form = [
                    ("grant_type", "client_credentials"),
                    ("client_id", "00000000-0000-0000-0000-0000000000aa"),
                    ("client_secret", "parity"),
                    ("scope", scope),
                ];
                let v: Value = http.post(url).form(&form).send().await.unwrap().json().await.unwrap();
                v["access_token"].as_str().unwrap().to_owned()
            }
        };
        let arm_token = token("https://management.azure.com/.default").await;
        let graph_token = token("https://graph.microsoft.com/.default").await;
        Replayer {
            http,
            base,
            arm_token,
            graph_token,
            ids: HashMap::new(),
            known: BTreeSet::new(),
            written: BTreeSet::new(),
        }
    }

    async fn send(
        &self,
        surface: Surface,
        method: &str,
        path_query: &str,
        body: Option<&str>,
    ) -> (u16, BTreeMap<String, String>, Option<String>) {
        self.send_with(surface, method, path_query, body, &BTreeMap::new()).await
    }

    /// Sends a request with the recorded request headers that change what Graph answers
    /// (`ConsistencyLevel` for advanced queries, `Prefer`).
    async fn send_with(
        &self,
        surface: Surface,
        method: &str,
        path_query: &str,
        body: Option<&str>,
        recorded_headers: &BTreeMap<String, String>,
    ) -> (u16, BTreeMap<String, String>, Option<String>) {
        let url = format!("{}{path_query}", self.base);
        let token = if surface == Surface::Arm { &self.arm_token } else { &self.graph_token };
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, url).bearer_auth(token);
        for (k, v) in recorded_headers {
            if surface == Surface::Graph && matches!(k.as_str(), "consistencylevel" | "prefer") {
                req = req.header(k, v);
            }
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_owned());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let text = resp.text().await.unwrap_or_default();
        (status, headers, non_empty(Some(text)))
    }

    /// Creates what a recorded interaction needs and the recording did not create before it:
    /// its resource group, and the resource itself when Azure answered a read of it with 2xx.
    async fn set_up(&mut self, i: &Interaction, op: &str) {
        let Some((surface, path, _)) = split_url(&i.url) else { return };
        if surface == Surface::Graph {
            self.set_up_graph(i, op).await;
            return;
        }
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        if segs.len() >= 4
            && segs[0].eq_ignore_ascii_case("subscriptions")
            && segs[2].eq_ignore_ascii_case("resourcegroups")
        {
            let rg = format!("/subscriptions/{}/resourcegroups/{}", segs[1], segs[3]).to_ascii_lowercase();
            let creates_rg = segs.len() == 4 && i.method.eq_ignore_ascii_case("PUT");
            if !creates_rg && !self.known.contains(&rg) {
                let body = r#"{"location":"westus"}"#;
                self.send(Surface::Arm, "PUT", &format!("{rg}?api-version=2025-04-01"), Some(body)).await;
                self.known.insert(rg);
            }
        }
        // A federated credential's identity.
        if segs.len() >= 9 && segs[8].eq_ignore_ascii_case("federatedIdentityCredentials") {
            let parent = substitute(&format!("/{}", segs[..8].join("/")), &self.ids);
            if self.known.insert(parent.to_ascii_lowercase()) {
                let body = r#"{"location":"westus"}"#;
                self.send(Surface::Arm, "PUT", &format!("{parent}?api-version=2023-01-31"), Some(body)).await;
            }
        }
        // Azure found it: a read, a delete or an update (PUT answered 200, not 201).
        let reads_existing =
            (200..300).contains(&i.status) && !(i.method.eq_ignore_ascii_case("PUT") && i.status == 201);
        let is_resource = matches!(
            op.split_once(' ').map(|(_, o)| o),
            Some("userAssignedIdentities" | "federatedIdentityCredentials" | "workspaces")
        );
        let id = substitute(&path, &self.ids).to_ascii_lowercase();
        if reads_existing && is_resource && !self.known.contains(&id) {
            let recorded: Value =
                i.response.as_deref().and_then(|r| serde_json::from_str(r).ok()).unwrap_or(Value::Null);
            let body = put_body(&recorded, op);
            let version = if op.contains("workspaces") { "2025-06-01" } else { "2023-01-31" };
            let (status, headers, _) = self
                .send(
                    Surface::Arm,
                    "PUT",
                    &format!("{}?api-version={version}", substitute(&path, &self.ids)),
                    Some(&body),
                )
                .await;
            // A workspace PUT is a long-running operation: poll it to the end.
            if let Some(loc) = headers.get("location").filter(|_| status == 202) {
                let loc = loc.strip_prefix(&self.base).unwrap_or(loc).to_owned();
                for _ in 0..20 {
                    let (s, _, _) = self.send(Surface::Arm, "GET", &loc, None).await;
                    if s != 202 {
                        break;
                    }
                }
            }
            self.known.insert(id);
        }
    }
}

/// A PUT body for a resource that must exist before a recording reads it: the recorded
/// answer without its read-only parts, or a minimal valid body.
fn put_body(recorded: &Value, op: &str) -> String {
    let mut body = serde_json::json!({ "location": recorded.get("location").cloned().unwrap_or("westus".into()) });
    if op.contains("federatedIdentityCredentials") {
        let p = recorded.get("properties").cloned().unwrap_or_default();
        body = serde_json::json!({ "properties": {
            "issuer": p.get("issuer").cloned().unwrap_or("https://token.actions.githubusercontent.com".into()),
            "subject": p.get("subject").cloned().unwrap_or("repo:contoso/ml:environment:prod".into()),
            "audiences": p.get("audiences").cloned().unwrap_or(serde_json::json!(["api://AzureADTokenExchange"])),
        }});
    } else if op.contains("workspaces") {
        let p = recorded.get("properties").cloned().unwrap_or_default();
        let mut props = serde_json::Map::new();
        for k in [
            "storageAccount",
            "keyVault",
            "applicationInsights",
            "containerRegistry",
            "friendlyName",
            "description",
            "encryption",
            "managedNetwork",
            "workspaceHubConfig",
        ] {
            if let Some(v) = p.get(k).filter(|v| !v.is_null()) {
                props.insert(k.into(), v.clone());
            }
        }
        body["properties"] = Value::Object(props);
        body["identity"] = recorded.get("identity").cloned().unwrap_or(serde_json::json!({"type": "SystemAssigned"}));
        if let Some(kind) = recorded.get("kind") {
            body["kind"] = kind.clone();
        }
    }
    if let Some(tags) = recorded.get("tags") {
        body["tags"] = tags.clone();
    }
    body.to_string()
}

/// A request body for a recording that kept none (the Java recorder): the recorded answer's
/// writable parts.
fn body_from_response(i: &Interaction, op: &str) -> Option<String> {
    if !matches!(i.method.as_str(), "PUT" | "PATCH") {
        return None;
    }
    let recorded: Value = serde_json::from_str(i.response.as_deref()?).ok()?;
    if op.ends_with("roleAssignments") {
        let p = recorded.get("properties")?;
        return Some(
            serde_json::json!({ "properties": {
                "roleDefinitionId": p.get("roleDefinitionId"),
                "principalId": p.get("principalId"),
            }})
            .to_string(),
        );
    }
    Some(put_body(&recorded, op))
}

async fn replay(path: &Path, table: &mut BTreeMap<String, Tally>, misses: &mut BTreeMap<String, BTreeSet<String>>) {
    let interactions = load(path).expect("a readable recording");
    // Long-running operations take a poll, as in Azure (the quick default finishes them at once).
    let realism = Realism { lro_polls: 1, ..Realism::default() };
    let emulator =
        Emulator::start(EmulatorConfig { realism, ..EmulatorConfig::default() }).await.expect("start the emulator");
    let mut r = Replayer::start(&emulator).await;
    let file = path.file_name().unwrap().to_string_lossy().into_owned();
    for i in &interactions {
        let Some(op) = operation(i) else { continue };
        let (surface, path, query) = split_url(&i.url).unwrap();
        r.set_up(i, &op).await;
        let query = fix_api_version(&query, &path);
        let path_query = substitute(&if query.is_empty() { path.clone() } else { format!("{path}?{query}") }, &r.ids);
        let body = i.body.clone().or_else(|| body_from_response(i, &op)).map(|b| substitute(&b, &r.ids));
        let (status, headers, text) =
            r.send_with(surface, &i.method, &path_query, body.as_deref(), &i.request_headers).await;
        if std::env::var_os("PARITY_TRACE").is_some() {
            println!("{file}: {} {path_query} -> {status} (Azure {})", i.method, i.status);
        }
        if i.method == "PUT" && (200..300).contains(&status) {
            r.known.insert(substitute(&path, &r.ids).to_ascii_lowercase());
        }
        // Learn minted ids, and where polling URLs lead.
        let recorded: Option<Value> = i.response.as_deref().and_then(|t| serde_json::from_str(t).ok());
        let emulated: Option<Value> = text.as_deref().and_then(|t| serde_json::from_str(t).ok());
        if let (Some(a), Some(b)) = (&recorded, &emulated) {
            learn_ids(a, b, &mut r.ids);
        }
        for h in ["location", "azure-asyncoperation"] {
            // Polling URLs (ARM's) lead somewhere; Graph's `Location` only names what was made.
            if let (Some(a), Some(b)) = (i.headers.get(h), headers.get(h))
                && let (Some((Surface::Arm, pa, qa)), Some(b)) = (split_url(a), b.strip_prefix(&r.base))
                && pa.len() > 1
                && !b.is_empty()
            {
                let from = if qa.is_empty() { pa } else { format!("{pa}?{qa}") };
                r.ids.insert(from.to_ascii_lowercase(), b.to_owned());
            }
        }
        let t = table.entry(op.clone()).or_default();
        t.calls += 1;
        if status == i.status {
            t.status_ok += 1;
        } else {
            let code = emulated.as_ref().and_then(|e| e["error"]["code"].as_str()).unwrap_or_default().to_owned();
            misses.entry(op.clone()).or_default().insert(format!("{file}: status {status} {code}, Azure {}", i.status));
        }
        if let Some(a) = &recorded {
            let (m, n, missing) = field_match(a, emulated.as_ref().unwrap_or(&Value::Null));
            t.fields_matched += m;
            t.fields_total += n;
            let shown = if std::env::var_os("PARITY_MISSES").is_some_and(|v| v == "all") { usize::MAX } else { 8 };
            for f in missing.into_iter().take(shown) {
                misses.entry(op.clone()).or_default().insert(format!("field {f}"));
            }
        }
        // The Java recorder rewrote `Retry-After` (see `Interaction::retry_after_unknown`).
        let want = header_view(&i.headers, i.response.is_some(), !i.retry_after_unknown);
        let got = header_view(&headers, text.is_some(), !i.retry_after_unknown);
        if want == got {
            t.headers_ok += 1;
        } else {
            let diff: Vec<String> = want
                .iter()
                .zip(&got)
                .filter(|(a, b)| a != b)
                .map(|(a, b)| format!("{} {} vs Azure {}", a.0, b.1, a.1))
                .collect();
            misses.entry(op.clone()).or_default().insert(format!("header {}", diff.join(", ")));
        }
    }
    emulator.shutdown().await;
}

/// The parity table of every recording, and the misses behind it.
async fn measure() -> (BTreeMap<String, Tally>, BTreeMap<String, BTreeSet<String>>) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(recordings_dir())
        .expect("the recordings folder")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json" || x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "recordings missing: {files:?}");
    let (mut table, mut misses) = (BTreeMap::new(), BTreeMap::new());
    for f in &files {
        replay(f, &mut table, &mut misses).await;
    }
    (table, misses)
}

fn render(table: &BTreeMap<String, Tally>) -> (String, Tally) {
    let mut out =
        String::from("| operation | calls | status match | field match | header match |\n|---|---:|---:|---:|---:|\n");
    let mut total = Tally::default();
    for (op, t) in table {
        total.add(t);
        let _ = writeln!(
            out,
            "| `{op}` | {} | {:.0}% | {:.0}% | {:.0}% |",
            t.calls,
            pct(t.status_ok, t.calls),
            pct(t.fields_matched, t.fields_total),
            pct(t.headers_ok, t.calls)
        );
    }
    let _ = writeln!(
        out,
        "| **all** | {} | {:.1}% | {:.1}% | {:.1}% |",
        total.calls,
        pct(total.status_ok, total.calls),
        pct(total.fields_matched, total.fields_total),
        pct(total.headers_ok, total.calls)
    );
    (out, total)
}

/// Thresholds: raised as the emulator gets closer to Azure, never lowered.
const MIN_STATUS_PCT: f64 = 99.0;
const MIN_FIELD_PCT: f64 = 98.0;
const MIN_CALLS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_answers_as_recorded_azure_traffic() {
    let (table, misses) = measure().await;
    let (text, total) = render(&table);
    println!("{text}");
    if std::env::var_os("PARITY_MISSES").is_some() {
        for (op, m) in &misses {
            let t = &table[op];
            println!("{op}: fields {}/{}", t.fields_matched, t.fields_total);
            for x in m {
                println!("  {x}");
            }
        }
    }
    assert!(total.calls >= MIN_CALLS, "only {} recorded calls replayed", total.calls);
    let status = pct(total.status_ok, total.calls);
    let fields = pct(total.fields_matched, total.fields_total);
    assert!(status >= MIN_STATUS_PCT, "status codes match {status:.1}% < {MIN_STATUS_PCT}%\n{text}");
    assert!(fields >= MIN_FIELD_PCT, "response fields match {fields:.1}% < {MIN_FIELD_PCT}%\n{text}");
}

#[test]
fn every_recording_format_loads() {
    for name in [
        "test_resource_group.yaml",
        "canCreateResourceGroup.json",
        "Remove-AzFederatedIdentityCredential.Recording.json",
    ] {
        let i = load(&recordings_dir().join(name)).unwrap();
        assert!(!i.is_empty(), "{name}");
        assert!(i.iter().all(|i| !i.method.is_empty() && i.url.starts_with("http") && i.status >= 200), "{name}");
    }
    let ps = load(&recordings_dir().join("Remove-AzFederatedIdentityCredential.Recording.json")).unwrap();
    let methods: Vec<&str> = ps.iter().map(|i| i.method.as_str()).collect();
    assert_eq!(methods, ["DELETE", "GET", "PUT", "DELETE", "GET"], "recorded order is kept");
    // The Java recorder's `retry-after: 0` on every answer is its own, not Azure's.
    let java = load(&recordings_dir().join("canCreateResourceGroup.json")).unwrap();
    assert!(java.iter().all(|i| i.retry_after_unknown && !i.headers.contains_key("retry-after")));
}

#[test]
fn operations_are_named_by_route() {
    let i = |m: &str, url: &str| Interaction {
        method: m.into(),
        url: url.into(),
        body: None,
        request_headers: BTreeMap::new(),
        status: 200,
        headers: BTreeMap::new(),
        response: None,
        retry_after_unknown: false,
    };
    let rg = "https://management.azure.com/subscriptions/s/resourceGroups/rg";
    assert_eq!(operation(&i("PUT", &format!("{rg}?api-version=2022-09-01"))).as_deref(), Some("PUT resourceGroups"));
    assert_eq!(
        operation(&i("PUT", &format!("{rg}/providers/Microsoft.Authorization/roleAssignments/x"))).as_deref(),
        Some("PUT roleAssignments")
    );
    assert_eq!(
        operation(&i("POST", "https://graph.microsoft.com/v1.0/users/u/getMemberGroups")).as_deref(),
        Some("POST users/{id}/getMemberGroups")
    );
    assert_eq!(
        operation(&i("POST", "https://graph.microsoft.com/v1.0/users('a%23b@c.com')/getMemberGroups")).as_deref(),
        Some("POST users/{id}/getMemberGroups"),
        "a key in parentheses names the object as an id segment does"
    );
    assert_eq!(
        operation(&i("GET", "https://graph.microsoft.com/v1.0/applications(appId='x')/owners")).as_deref(),
        Some("GET applications/{id}/owners")
    );
    assert_eq!(operation(&i("GET", "https://login.microsoftonline.com/t/oauth2/v2.0/token")), None);
    assert_eq!(operation(&i("PUT", &format!("{rg}/providers/Microsoft.Web/sites/x"))), None);
}

#[test]
fn fields_compare_by_path_and_type() {
    let a = serde_json::json!({"id": "x", "properties": {"n": 1, "tags": null}, "list": [{"a": true}]});
    let b = serde_json::json!({"id": "y", "properties": {"n": "1", "tags": {"k": "v"}}, "list": []});
    let (m, n, missing) = field_match(&a, &b);
    assert_eq!((m, n), (4, 7), "{missing:?}");
    assert_eq!(missing, [".list[]", ".list[].a", ".properties.n"]);
}
