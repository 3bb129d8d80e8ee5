//! `mlpolicy lsp` through a real client: the built binary is started as a process and driven
//! over JSON-RPC on stdio, as an editor does. Every request must be answered within a second.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{copy_to_temp, root, tests_dir};

/// The longest any request may take.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);
/// The longest the test waits for diagnostics after a change (the debounce included).
const DIAGNOSTICS_WITHIN: Duration = Duration::from_secs(5);

struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    messages: Receiver<Value>,
    next_id: i64,
    /// Notifications received and not yet looked at.
    pending: Vec<Value>,
}

impl Client {
    fn start(capabilities: Value) -> Client {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mlpolicy"))
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start mlpolicy lsp");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let mut length = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(n) = line.strip_prefix("Content-Length: ") {
                        length = n.parse::<usize>().ok();
                    }
                }
                let mut body = vec![0; length.expect("Content-Length header")];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let msg: Value = serde_json::from_slice(&body).expect("JSON body");
                if tx.send(msg).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        let mut client = Client { child, stdin, messages: rx, next_id: 0, pending: Vec::new() };
        let mut init = json!({ "processId": null, "rootUri": null });
        init["capabilities"] = capabilities;
        let init = client.request("initialize", init);
        assert_eq!(init["serverInfo"]["name"], "mlpolicy", "{init}");
        client.notify("initialized", json!({}));
        client
    }

    fn send(&mut self, msg: &Value) {
        let body = msg.to_string();
        let stdin = self.stdin.as_mut().expect("stdin open");
        write!(stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).expect("write to the server");
        stdin.flush().expect("flush");
    }

    fn notify(&mut self, method: &str, params: Value) {
        let mut msg = json!({ "jsonrpc": "2.0", "method": method });
        msg["params"] = params;
        self.send(&msg);
    }

    /// Sends a request and returns its answer (or error object), asserting it came within
    /// [`ANSWER_WITHIN`].
    fn call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let started = Instant::now();
        let mut msg = json!({ "jsonrpc": "2.0", "id": id, "method": method });
        msg["params"] = params;
        self.send(&msg);
        loop {
            let left = ANSWER_WITHIN.saturating_sub(started.elapsed());
            match self.messages.recv_timeout(left) {
                Ok(msg) if msg["id"] == id && msg.get("method").is_none() => {
                    let took = started.elapsed();
                    assert!(took < ANSWER_WITHIN, "`{method}` took {took:?}");
                    return match msg.get("error") {
                        Some(e) => Err(e.clone()),
                        None => Ok(msg["result"].clone()),
                    };
                }
                Ok(msg) => self.pending.push(msg),
                Err(RecvTimeoutError::Timeout) => panic!("`{method}` not answered within {ANSWER_WITHIN:?}"),
                Err(RecvTimeoutError::Disconnected) => panic!("the server died on `{method}`"),
            }
        }
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        self.call(method, params).unwrap_or_else(|e| panic!("`{method}` failed: {e}"))
    }

    /// Waits for the diagnostics of `uri` at `version` (any version when `None`).
    fn diagnostics(&mut self, uri: &str, version: Option<i64>) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let found = self.pending.iter().rposition(|m| {
                m["method"] == "textDocument/publishDiagnostics"
                    && m["params"]["uri"] == uri
                    && version.is_none_or(|v| m["params"]["version"] == v)
            });
            if let Some(i) = found {
                let msg = self.pending.remove(i);
                return msg["params"]["diagnostics"].as_array().cloned().unwrap_or_default();
            }
            let left = DIAGNOSTICS_WITHIN.saturating_sub(started.elapsed());
            match self.messages.recv_timeout(left) {
                Ok(msg) => self.pending.push(msg),
                Err(e) => panic!("no diagnostics for {uri} (version {version:?}): {e}"),
            }
        }
    }

    /// Every diagnostic published so far, by file name (the last publication of each file).
    fn published(&mut self) -> Vec<(String, Value)> {
        let mut last: std::collections::BTreeMap<String, Vec<Value>> = std::collections::BTreeMap::new();
        for m in self.pending.drain(..).filter(|m| m["method"] == "textDocument/publishDiagnostics") {
            let uri = m["params"]["uri"].as_str().unwrap_or_default();
            let name = uri.rsplit('/').next().unwrap_or_default().to_owned();
            last.insert(name, m["params"]["diagnostics"].as_array().cloned().unwrap_or_default());
        }
        last.into_iter().flat_map(|(n, ds)| ds.into_iter().map(move |d| (n.clone(), d))).collect()
    }

    fn open(&mut self, path: &Path, text: &str) -> String {
        let uri = uri(path);
        self.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": uri, "languageId": "mlpolicy", "version": 1, "text": text } }),
        );
        uri
    }

    fn change(&mut self, uri: &str, version: i64, text: &str) {
        self.notify(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": uri, "version": version }, "contentChanges": [{ "text": text }] }),
        );
    }

    fn at(&mut self, method: &str, uri: &str, (line, character): (usize, usize)) -> Value {
        self.request(
            method,
            json!({ "textDocument": { "uri": uri }, "position": { "line": line, "character": character } }),
        )
    }

    /// `shutdown`, `exit`, and the exit code.
    fn stop(mut self) -> i32 {
        assert_eq!(self.request("shutdown", Value::Null), Value::Null);
        self.notify("exit", Value::Null);
        drop(self.stdin.take());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code().unwrap_or(-1);
            }
            assert!(started.elapsed() < ANSWER_WITHIN, "the server did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// The (line, character) of the `nth` occurrence of `needle` in `text`, plus `shift` characters.
fn pos(text: &str, needle: &str, shift: usize) -> (usize, usize) {
    let at = text.find(needle).unwrap_or_else(|| panic!("`{needle}` not in the text")) + shift;
    let line = text[..at].matches('\n').count();
    let col = at - text[..at].rfind('\n').map_or(0, |i| i + 1);
    (line, col)
}

fn labels(items: &Value) -> Vec<String> {
    let items = items.get("items").unwrap_or(items);
    items
        .as_array()
        .expect("completion items")
        .iter()
        .map(|i| i["label"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn example() -> tempfile::TempDir {
    copy_to_temp(&root().join("examples/contoso-ml"))
}

type Seen = (String, String, String);
type Place = (String, usize, usize, String);

fn run_validate(dir: &Path, format: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mlpolicy"))
        .args(["validate", ".", "--format", format])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100000")
        .env_remove("GITHUB_ACTIONS")
        .output()
        .expect("run validate");
    let stream = if format == "text" { out.stderr } else { out.stdout };
    String::from_utf8(stream).expect("UTF-8")
}

/// What `mlpolicy validate` says in `dir`: (code, message, help) of every diagnostic, read
/// off its text output, and (file, line, column, code) of every one, off its JSON output
/// (policy violations under E0401/W0401, as the text shows them).
fn validate(dir: &Path) -> (Vec<Seen>, Vec<Place>) {
    let mut seen = Vec::new();
    let mut current: Option<Seen> = None;
    for line in run_validate(dir, "text").lines() {
        let trimmed = line.trim();
        if trimmed.len() == 5 && trimmed.starts_with(['E', 'W']) && trimmed[1..].chars().all(|c| c.is_ascii_digit()) {
            seen.extend(current.take());
            current = Some((trimmed.to_owned(), String::new(), String::new()));
        } else if let Some(c) = current.as_mut() {
            if let Some(m) = trimmed.strip_prefix("× ").or(trimmed.strip_prefix("⚠ ")).filter(|_| c.1.is_empty()) {
                c.1 = m.to_owned();
            } else if let Some(h) = trimmed.strip_prefix("help: ") {
                h.clone_into(&mut c.2);
            } else if trimmed.starts_with("Advice:") {
                seen.extend(current.take());
            }
        }
    }
    seen.extend(current);
    seen.sort();
    let report: Value = serde_json::from_str(&run_validate(dir, "json")).expect("JSON findings");
    let mut places: Vec<Place> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            let rule = f["rule"].as_str().unwrap_or_default();
            let code = match (rule.contains('/'), f["level"].as_str()) {
                (false, _) => rule.to_owned(),
                (true, Some("deny")) => "E0401".to_owned(),
                (true, _) => "W0401".to_owned(),
            };
            let l = &f["location"];
            let n = |k: &str| usize::try_from(l[k].as_u64().unwrap_or(0)).unwrap_or(0);
            (l["file"].as_str().unwrap_or_default().to_owned(), n("line"), n("column"), code)
        })
        .collect();
    places.sort();
    (seen, places)
}

/// The published diagnostics in the shapes of [`validate`]'s.
fn as_validate(published: &[(String, Value)]) -> (Vec<Seen>, Vec<Place>) {
    let mut seen = Vec::new();
    let mut places = Vec::new();
    for (file, d) in published {
        let message = d["message"].as_str().unwrap_or_default();
        let first = message.lines().next().unwrap_or_default().to_owned();
        let help = message.rsplit_once("\nhelp: ").map(|(_, h)| h.to_owned()).unwrap_or_default();
        let code = d["code"].as_str().unwrap_or_default().to_owned();
        let place = |key: &str| usize::try_from(d["range"]["start"][key].as_i64().unwrap_or(0) + 1).unwrap_or(0);
        seen.push((code.clone(), first, help));
        places.push((file.clone(), place("line"), place("character"), code));
    }
    seen.sort();
    places.sort();
    (seen, places)
}

#[test]
fn lsp_diagnostics_are_those_of_validate() {
    let mut cases: Vec<std::path::PathBuf> = crate::support::subdirs(&tests_dir().join("cases/diagnostics"))
        .into_iter()
        .chain(crate::support::subdirs(&tests_dir().join("cases/policies")))
        .filter(|d| !d.join("args").exists())
        .collect();
    cases.push(root().join("examples/contoso-ml"));
    let mut client = Client::start(json!({}));
    let mut compared = 0;
    for dir in cases {
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "mlp"))
            .collect();
        files.sort();
        let Some(file) = files.first() else { continue };
        let text = std::fs::read_to_string(file).unwrap();
        let uri = client.open(file, &text);
        // A request on the directory is answered after its analysis is published.
        client.request("textDocument/documentSymbol", json!({ "textDocument": { "uri": uri } }));
        let mut published = client.published();
        let (seen, mut places) = validate(&dir);
        // Diagnostics without a place are shown at the start of the open file.
        for (file, d) in &mut published {
            if !places.iter().any(|p| &p.0 == file) && d["range"]["start"]["line"] == 0 {
                file.clear();
                d["range"]["start"] = json!({ "line": -1, "character": -1 });
            }
        }
        let (got_seen, mut got_places) = as_validate(&published);
        assert_eq!(got_seen, seen, "{}", dir.display());
        // `--format json` reports one finding per object: several policies matching one
        // object are one finding there.
        places.dedup();
        got_places.dedup();
        assert_eq!(got_places, places, "{}", dir.display());
        compared += seen.len();
        client.notify("textDocument/didClose", json!({ "textDocument": { "uri": uri } }));
    }
    assert!(compared > 50, "only {compared} diagnostics compared");
    assert_eq!(client.stop(), 0);
}

#[test]
fn lsp_answers_on_the_example() {
    let dir = example();
    let teams = dir.path().join("teams.mlp");
    let text = std::fs::read_to_string(&teams).unwrap();
    let snippets = json!({ "textDocument": { "completion": { "completionItem": { "snippetSupport": true } } } });
    let mut c = Client::start(snippets);
    let uri = c.open(&teams, &text);
    assert_eq!(c.diagnostics(&uri, Some(1)), Vec::<Value>::new(), "the example is valid");

    // Completion: attributes of the enclosing kind, declared names, variables, roles.
    let attrs = labels(&c.at("textDocument/completion", &uri, pos(&text, "    public_network_access", 4)));
    for a in ["storage_account", "key_vault", "container_registry", "prevent_destroy", "allow"] {
        assert!(attrs.contains(&a.to_owned()), "{a} in {attrs:?}");
    }
    assert!(!attrs.contains(&"members".to_owned()), "a group's attribute offered in a workspace: {attrs:?}");
    let names = labels(&c.at(
        "textDocument/completion",
        &uri,
        pos(&text, "group.data_scientists[team] on workspace.shared", 6),
    ));
    assert!(
        names.contains(&"platform_admins".to_owned()) && names.contains(&"data_scientists[…]".to_owned()),
        "{names:?}"
    );
    assert!(names.contains(&"data_scientists[\"fraud\"]".to_owned()), "{names:?}");
    let vars = labels(&c.at("textDocument/completion", &uri, pos(&text, "var.teams", 4)));
    for v in ["env", "location", "members", "teams"] {
        assert!(vars.contains(&v.to_owned()), "{v} in {vars:?}");
    }
    let roles = c.at("textDocument/completion", &uri, pos(&text, "\"AzureML Compute Operator\" to identity", 6));
    let role = roles
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["label"] == "AzureML Compute Operator")
        .expect("the role is offered")
        .clone();
    assert!(roles.as_array().unwrap().len() > 900, "the whole built-in catalogue");
    assert!(role["detail"].as_str().unwrap().len() > 10, "{role}");
    let resolved = c.request("completionItem/resolve", role);
    assert!(
        resolved["documentation"]["value"].as_str().unwrap().contains("Microsoft.MachineLearningServices"),
        "{resolved}"
    );

    // Hover: a role, a reference's declaration, a variable's and a `let`'s value, a loop variable.
    let hover = |c: &mut Client, needle: &str, shift: usize| -> String {
        let h = c.at("textDocument/hover", &uri, pos(&text, needle, shift));
        h["contents"]["value"].as_str().unwrap_or_else(|| panic!("no hover at {needle}: {h}")).to_owned()
    };
    assert!(hover(&mut c, "\"AzureML Compute Operator\"", 3).contains("e503ece1-11d0-4e8e-8e2c-7a6c3bf38815"));
    assert!(hover(&mut c, "resource_group.teams", 16).contains("rg-ml-teams-${var.env}"));
    assert!(hover(&mut c, "var.env", 5).contains("\"prod\""));
    assert!(hover(&mut c, "user(platform_admins)", 6).contains("\"dana.fischer@contoso.com\""));
    let team = hover(&mut c, "${team}", 3);
    assert!(team.contains("loop variable") && team.contains("[\"fraud\", \"risk\", \"pricing\"]"), "{team}");

    // Definition and references, across files and into mlpolicy.yaml.
    let def = c.at("textDocument/definition", &uri, pos(&text, "resource_group.teams", 16));
    let main = std::fs::read_to_string(dir.path().join("main.mlp")).unwrap();
    assert_eq!(def[0]["uri"], self::uri(&dir.path().join("main.mlp")), "{def}");
    assert_eq!(def[0]["range"]["start"]["line"], pos(&main, "resource_group teams", 0).0, "{def}");
    let def = c.at("textDocument/definition", &uri, pos(&text, "var.env", 5));
    assert_eq!(def[0]["uri"], self::uri(&dir.path().join("mlpolicy.yaml")), "{def}");
    let refs = c.request(
        "textDocument/references",
        json!({ "textDocument": { "uri": uri }, "position": pos_json(pos(&text, "group data_scientists", 7)), "context": { "includeDeclaration": true } }),
    );
    assert_eq!(refs.as_array().unwrap().len(), 3, "declaration and two grants: {refs}");

    // Document symbols.
    let symbols = c.request("textDocument/documentSymbol", json!({ "textDocument": { "uri": uri } }));
    assert_eq!(symbols[0]["name"], "for team in var.teams", "{symbols}");
    let inner: Vec<&str> =
        symbols[0]["children"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert!(inner.starts_with(&["data_scientists", "training", "team"]), "{inner:?}");

    // Rename of a `let` used in two files.
    let platform = dir.path().join("platform.mlp");
    let platform_text = std::fs::read_to_string(&platform).unwrap();
    let edit = c.at("textDocument/prepareRename", &uri, pos(&text, "user(platform_admins)", 6));
    assert_eq!(edit["placeholder"], "platform_admins");
    let edit = c.request(
        "textDocument/rename",
        json!({ "textDocument": { "uri": uri }, "position": pos_json(pos(&text, "user(platform_admins)", 6)), "newName": "admins" }),
    );
    let changes = &edit["changes"];
    assert_eq!(changes[&uri].as_array().unwrap().len(), 1, "{edit}");
    assert_eq!(changes[self::uri(&platform)].as_array().unwrap().len(), 3, "the let and two uses: {edit}");
    assert!(platform_text.contains("let platform_admins"));
    // Renaming a group changes its uniqueName: the server warns that the plan will replace it.
    let edit = c.request(
        "textDocument/rename",
        json!({ "textDocument": { "uri": uri }, "position": pos_json(pos(&text, "group data_scientists", 7)), "newName": "scientists" }),
    );
    assert_eq!(edit["changes"][&uri].as_array().unwrap().len(), 3, "{edit}");
    let warning = c.pending.iter().find(|m| m["method"] == "window/showMessage").expect("a warning");
    assert!(warning["params"]["message"].as_str().unwrap().contains("uniqueName"), "{warning}");
    let refused = c.call(
        "textDocument/rename",
        json!({ "textDocument": { "uri": uri }, "position": pos_json(pos(&text, "var.env", 5)), "newName": "stage" }),
    );
    assert!(refused.is_err(), "variables live in mlpolicy.yaml: {refused:?}");

    // Formatting is `mlpolicy fmt`'s.
    let messy = text
        .replace("    name           =", "    name =")
        .replace("  group data_scientists {", "  group   data_scientists {");
    c.change(&uri, 2, &messy);
    let edits = c.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": uri }, "options": { "tabSize": 2, "insertSpaces": true } }),
    );
    assert_eq!(edits[0]["newText"], text, "{edits}");
    c.change(&uri, 3, &text);
    let edits = c.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": uri }, "options": { "tabSize": 2, "insertSpaces": true } }),
    );
    assert_eq!(edits, json!([]));

    // A misspelt role: W0201 with a quick fix.
    let typo = text.replace("\"AzureML Compute Operator\"", "\"AzureML Compute Operatr\"");
    c.change(&uri, 4, &typo);
    let diags = c.diagnostics(&uri, Some(4));
    let w = diags.iter().find(|d| d["code"] == "W0201").unwrap_or_else(|| panic!("{diags:?}"));
    assert!(w["message"].as_str().unwrap().contains("help: did you mean `AzureML Compute Operator`?"), "{w}");
    let actions = c.request(
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": uri }, "range": w["range"], "context": { "diagnostics": [w] } }),
    );
    assert_eq!(actions[0]["edit"]["changes"][&uri][0]["newText"], "\"AzureML Compute Operator\"", "{actions}");

    assert_eq!(c.stop(), 0);
}

fn pos_json((line, character): (usize, usize)) -> Value {
    json!({ "line": line, "character": character })
}

/// Asks everything at `at` of the current text; each answer must come within a second.
fn ask_everything(c: &mut Client, uri: &str, at: (usize, usize)) {
    for method in ["textDocument/completion", "textDocument/hover", "textDocument/definition"] {
        c.at(method, uri, at);
    }
    let refs =
        json!({ "textDocument": { "uri": uri }, "position": pos_json(at), "context": { "includeDeclaration": true } });
    c.request("textDocument/references", refs);
    c.request("textDocument/documentSymbol", json!({ "textDocument": { "uri": uri } }));
    let fmt = json!({ "textDocument": { "uri": uri }, "options": { "tabSize": 2, "insertSpaces": true } });
    c.request("textDocument/formatting", fmt);
    let range = json!({ "start": pos_json((0, 0)), "end": pos_json(at) });
    c.request(
        "textDocument/codeAction",
        json!({ "textDocument": { "uri": uri }, "range": range, "context": { "diagnostics": [] } }),
    );
    let _ = c.call("textDocument/prepareRename", json!({ "textDocument": { "uri": uri }, "position": pos_json(at) }));
}

fn end_of(text: &str) -> (usize, usize) {
    (text.matches('\n').count(), text.rsplit('\n').next().unwrap_or_default().encode_utf16().count())
}

#[test]
fn lsp_survives_half_typed_files() {
    let dir = example();
    let teams = dir.path().join("teams.mlp");
    let text = std::fs::read_to_string(&teams).unwrap();
    let mut c = Client::start(json!({}));
    let uri = c.open(&teams, "");
    let mut version = 1;
    // Typing the file from the start, a few characters at a time.
    let cuts: Vec<usize> = (0..text.len()).step_by(29).chain([text.len()]).collect();
    for cut in cuts {
        version += 1;
        let typed = &text[..cut];
        c.change(&uri, version, typed);
        ask_everything(&mut c, &uri, end_of(typed));
    }
    assert_eq!(c.diagnostics(&uri, Some(version)), Vec::<Value>::new(), "the whole file typed is valid again");
    // Completion in the middle of a half-typed item still knows the rest of the configuration.
    let typing = format!("{text}\ngrant \"AzureML Data Scientist\" to group.");
    version += 1;
    c.change(&uri, version, &typing);
    let names = labels(&c.at("textDocument/completion", &uri, end_of(&typing)));
    assert!(names.contains(&"platform_admins".to_owned()), "{names:?}");
    let typing = format!("{text}\ngrant \"AzureML Dat");
    version += 1;
    c.change(&uri, version, &typing);
    let roles = labels(&c.at("textDocument/completion", &uri, end_of(&typing)));
    assert!(roles.contains(&"AzureML Data Scientist".to_owned()), "{} items", roles.len());
    let typing = format!("{text}\nworkspace w {{\n  allow ");
    version += 1;
    c.change(&uri, version, &typing);
    let policies = labels(&c.at("textDocument/completion", &uri, end_of(&typing)));
    assert!(
        policies.contains(&"contoso_no_standing_admin".to_owned())
            && policies.contains(&"no_standing_admin".to_owned()),
        "{policies:?}"
    );
    // Input no editor should send, and the server must survive anyway.
    let nasty = [
        "[".repeat(100_000),
        "{".repeat(5_000),
        "grant \"${\"${\"${".repeat(300),
        format!("let x = \"{}\"", "a".repeat(1_000_000)),
        "group g {\n  name = \"\u{0}\u{1F600}\u{FEFF}\"\n".to_owned(),
        "for a in [1] { for b in [2] { let".to_owned(),
        "policy p {\n  deny grant when principal.".to_owned(),
        "\u{1F600}".repeat(1000),
        "\r\n\r\n\t\t}}}]]])))".to_owned(),
    ];
    for bad in &nasty {
        version += 1;
        c.change(&uri, version, bad);
        ask_everything(&mut c, &uri, end_of(bad));
        ask_everything(&mut c, &uri, (0, 1));
        ask_everything(&mut c, &uri, (99, 99));
    }
    let diags = c.diagnostics(&uri, Some(version));
    assert!(!diags.is_empty(), "the last input is broken");
    assert_eq!(c.stop(), 0);
}

#[test]
fn lsp_diagnostics_follow_typing_quickly() {
    let dir = example();
    let teams = dir.path().join("teams.mlp");
    let text = std::fs::read_to_string(&teams).unwrap();
    let mut c = Client::start(json!({}));
    let uri = c.open(&teams, &text);
    c.diagnostics(&uri, Some(1));
    let mut took = Vec::new();
    for version in 2..12 {
        let edited = if version % 2 == 0 { text.replace("var.teams", "var.teamz") } else { text.clone() };
        let started = Instant::now();
        c.change(&uri, version, &edited);
        let diags = c.diagnostics(&uri, Some(version));
        took.push(started.elapsed());
        assert_eq!(diags.is_empty(), version % 2 == 1, "{diags:?}");
    }
    took.sort();
    let median = took[took.len() / 2];
    // The server logs how long each analysis (compile + index) took.
    let mut analyses: Vec<f64> = c
        .pending
        .iter()
        .filter(|m| m["method"] == "window/logMessage")
        .filter_map(|m| m["params"]["message"].as_str()?.split(" in ").nth(1)?.split(" ms").next()?.parse().ok())
        .collect();
    analyses.sort_by(f64::total_cmp);
    assert!(analyses.len() >= 10, "{analyses:?}");
    let analysis_ms = analyses[analyses.len() / 2];
    eprintln!(
        "lsp: contoso-ml analysed in {analysis_ms:.1} ms (median of {}); diagnostics after a change: median {median:?}, max {:?} (the {:?} debounce included)",
        analyses.len(),
        took[took.len() - 1],
        mlpolicy_lsp::DEBOUNCE
    );
    assert!(analysis_ms < 100.0, "the example takes {analysis_ms} ms to analyse");
    assert!(took.iter().all(|t| *t < ANSWER_WITHIN), "{took:?}");
    // Typing faster than the debounce analyses once, after the last change.
    let before = c.pending.len();
    for version in 12..20 {
        c.change(&uri, version, &format!("{text}# {version}\n"));
    }
    c.diagnostics(&uri, Some(19));
    let stale = c.pending[before.min(c.pending.len())..]
        .iter()
        .filter(|m| m["method"] == "textDocument/publishDiagnostics" && m["params"]["uri"] == uri.as_str())
        .count();
    assert!(stale < 7, "{stale} of 7 intermediate versions were analysed: no debounce");
    assert_eq!(c.stop(), 0);
}

#[test]
fn lsp_exit_without_shutdown_is_an_error() {
    let mut c = Client::start(json!({}));
    c.notify("exit", Value::Null);
    drop(c.stdin.take());
    let status = c.child.wait().expect("wait");
    assert_eq!(status.code(), Some(1));
}
