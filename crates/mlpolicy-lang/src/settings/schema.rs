//! The settings schema: the types `mlpolicy.yaml` and the overrides become, and the reader
//! that validates them, with a diagnostic for each problem.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_norway::Value;

use super::locate::{byte_offset, locate_key, next_char_end, scalar_after_key, second_key};
use crate::diagnostics::Code;
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::limits::Limits;
use crate::source::{self, FileId, Sources, Span};

/// File name of the settings file inside a configuration directory.
pub const FILE_NAME: &str = "mlpolicy.yaml";

const TOP_LEVEL_KEYS: [&str; 7] = ["tenant", "cloud", "subscriptions", "vars", "policies", "owner", "limits"];
const CUSTOM_CLOUD_KEYS: [&str; 3] = ["arm", "graph", "authority"];
const NAMED_CLOUDS: [&str; 3] = ["public", "usgovernment", "china"];

/// Everything that differs between environments of one configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    /// `mlpolicy.yaml` in [`Sources`], when the directory has one.
    pub file: Option<FileId>,
    /// Tenant id (lower-case GUID) or verified domain (lower-case).
    pub tenant: Option<String>,
    pub cloud: CloudSetting,
    /// Alias (as in `sub.ALIAS`) to lower-case subscription GUID.
    pub subscriptions: BTreeMap<String, String>,
    /// Variables after every override.
    pub vars: BTreeMap<String, VarValue>,
    /// Built-in policy pack names, in the order written.
    pub policies: Vec<String>,
    /// Ownership marker written on what this configuration creates (`[a-z0-9-]{1,64}`).
    pub owner: Option<String>,
    /// Evaluation budgets (`limits:`), the defaults where not set.
    pub limits: Limits,
}

/// The Azure cloud whose endpoints are used.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CloudSetting {
    #[default]
    Public,
    UsGovernment,
    China,
    /// Explicit endpoints (an Azure Stack, or the emulator). Each is an `https` URL, or `http`
    /// for a loopback host, without a trailing slash.
    Custom {
        arm: String,
        graph: String,
        authority: String,
    },
}

/// The three endpoints a cloud is reached through, without trailing slashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudEndpoints {
    /// Azure Resource Manager, e.g. `https://management.azure.com`.
    pub arm: String,
    /// Microsoft Graph, e.g. `https://graph.microsoft.com`.
    pub graph: String,
    /// Entra ID token authority, e.g. `https://login.microsoftonline.com`.
    pub authority: String,
}

impl CloudSetting {
    /// The endpoints of this cloud.
    pub fn endpoints(&self) -> CloudEndpoints {
        let (arm, graph, authority) = match self {
            CloudSetting::Public => {
                ("https://management.azure.com", "https://graph.microsoft.com", "https://login.microsoftonline.com")
            }
            CloudSetting::UsGovernment => (
                "https://management.usgovcloudapi.net",
                "https://graph.microsoft.us",
                "https://login.microsoftonline.us",
            ),
            CloudSetting::China => (
                "https://management.chinacloudapi.cn",
                "https://microsoftgraph.chinacloudapi.cn",
                "https://login.chinacloudapi.cn",
            ),
            CloudSetting::Custom { arm, graph, authority } => (arm.as_str(), graph.as_str(), authority.as_str()),
        };
        CloudEndpoints { arm: arm.to_owned(), graph: graph.to_owned(), authority: authority.to_owned() }
    }
}

/// A variable's value: the part of YAML the language has values for (no floats, no null).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VarValue {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<VarValue>),
    Map(BTreeMap<String, VarValue>),
}

impl VarValue {
    /// The value as the language evaluates it.
    pub fn to_value(&self) -> crate::model::Value {
        use crate::model::Value;
        match self {
            VarValue::Str(s) => Value::Str(s.clone()),
            VarValue::Int(i) => Value::Int(*i),
            VarValue::Bool(b) => Value::Bool(*b),
            VarValue::List(items) => Value::List(items.iter().map(VarValue::to_value).collect()),
            VarValue::Map(m) => Value::Map(m.iter().map(|(k, v)| (k.clone(), v.to_value())).collect()),
        }
    }

    /// The type's name as diagnostics show it.
    pub fn type_name(&self) -> &'static str {
        match self {
            VarValue::Str(_) => "string",
            VarValue::Int(_) => "int",
            VarValue::Bool(_) => "bool",
            VarValue::List(_) => "list",
            VarValue::Map(_) => "map",
        }
    }
}

impl fmt::Display for VarValue {
    /// The value in `.mlp` literal syntax.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VarValue::Str(s) => write!(f, "{s:?}"),
            VarValue::Int(i) => write!(f, "{i}"),
            VarValue::Bool(b) => write!(f, "{b}"),
            VarValue::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            VarValue::Map(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    f.write_str(if i > 0 { ", " } else { " " })?;
                    write!(f, "{k:?} = {v}")?;
                }
                f.write_str(if entries.is_empty() { "}" } else { " }" })
            }
        }
    }
}

/// Variable overrides from the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--var NAME=VALUE`, in the order given.
    pub vars: Vec<String>,
    /// `--vars FILE.yaml`, in the order given.
    pub var_files: Vec<PathBuf>,
}

/// Loads `dir/mlpolicy.yaml` (if any) and applies `overrides`.
///
/// Always returns settings: whatever could not be read keeps its default, and every problem
/// is in the returned diagnostics.
pub fn load(dir: &Path, overrides: &Overrides, sources: &mut Sources) -> (Settings, Diagnostics) {
    load_with(dir, overrides, sources, &source::Overlay::new())
}

/// [`load`], reading `mlpolicy.yaml` from `overlay` when it holds that name.
pub fn load_with(
    dir: &Path,
    overrides: &Overrides,
    sources: &mut Sources,
    overlay: &source::Overlay,
) -> (Settings, Diagnostics) {
    let mut settings = Settings::default();
    let mut diags = Diagnostics::default();
    let path = dir.join(FILE_NAME);
    let unsaved = overlay.get(FILE_NAME);
    if unsaved.is_some() || path.symlink_metadata().is_ok() {
        let read = if let Some(text) = unsaved {
            Ok(text.to_string())
        } else {
            dir.canonicalize()
                .map_err(|e| Box::new(Diagnostic::error(Code::E0003, format!("cannot read `{FILE_NAME}`: {e}"))))
                .and_then(|canonical| source::read_inside(&canonical, &path))
        };
        match read {
            Ok(text) => {
                // Diagnostics show the file with credentials in URLs masked; it is read as written.
                let file = sources.add(FILE_NAME, path, redact_url_credentials(&text));
                settings.file = Some(file);
                let mut reader = Reader { text: &text, file, diags: &mut diags };
                reader.settings(&mut settings);
            }
            Err(d) => diags.push(*d),
        }
    }
    for var_file in &overrides.var_files {
        apply_var_file(var_file, &mut settings.vars, sources, &mut diags);
    }
    for arg in &overrides.vars {
        apply_var_flag(arg, &mut settings.vars, &mut diags);
    }
    (settings, diags)
}

impl Settings {
    /// Best-effort location of a key in `mlpolicy.yaml`, e.g. `["vars", "members", "fraud"]`.
    ///
    /// Finds block-style keys by indentation and falls back to flow-style (`{ key: ... }`)
    /// search; `None` when there is no settings file or the key is not written in it.
    pub fn span_of(&self, sources: &Sources, key_path: &[&str]) -> Option<Span> {
        let file = self.file?;
        locate_key(&sources.get(file).text, key_path).map(|(start, end)| Span::new(file, start, end))
    }
}

/// Reads the values of one YAML file, reporting against its text.
struct Reader<'a> {
    text: &'a str,
    file: FileId,
    diags: &'a mut Diagnostics,
}

impl Reader<'_> {
    /// Span of the key at `path`, or of the file's start when it cannot be found.
    fn key_span(&self, path: &[&str]) -> Span {
        let (start, end) = locate_key(self.text, path).unwrap_or((0, 0));
        Span::new(self.file, start, end)
    }

    /// Span of the scalar value written after the key at `path`, else of the key.
    fn value_span(&self, path: &[&str]) -> Span {
        match locate_key(self.text, path).and_then(|(_, end)| scalar_after_key(self.text, end)) {
            Some((start, end)) => Span::new(self.file, start, end),
            None => self.key_span(path),
        }
    }

    fn error(&mut self, code: Code, span: Span, message: String, label: &str, help: Option<String>) {
        let mut d = Diagnostic::error(code, message).with_label(span, label);
        if let Some(help) = help {
            d = d.with_help(help);
        }
        self.diags.push(d);
    }

    /// Parses the text; a syntax error becomes E0020 at its line and column, and so does
    /// every YAML tag (at the tag; the value is then read as if it had none).
    fn parse(&mut self) -> Option<Value> {
        match serde_norway::from_str::<Value>(self.text) {
            Ok(mut value) => match value.apply_merge() {
                Ok(()) => {
                    for (start, end) in yaml_tags(self.text).into_iter().take(MAX_TAGS_REPORTED) {
                        let tag = &self.text[start..end];
                        self.error(
                            Code::E0020,
                            Span::new(self.file, start, end),
                            format!("YAML tags are not supported: `{tag}`"),
                            "remove this tag",
                            Some(
                                "settings and variables are plain YAML values; a tag such as `!!binary` or \
                                 `!!python/...` would be dropped silently or change what the value means"
                                    .to_owned(),
                            ),
                        );
                    }
                    untag(&mut value);
                    Some(value)
                }
                Err(e) => {
                    self.yaml_error(&e);
                    None
                }
            },
            Err(e) => {
                self.yaml_error(&e);
                None
            }
        }
    }

    fn yaml_error(&mut self, e: &serde_norway::Error) {
        let span = e.location().map_or(Span::new(self.file, 0, 0), |loc| {
            let start = byte_offset(self.text, loc.line(), loc.column());
            let end = next_char_end(self.text, start);
            Span::new(self.file, start, end)
        });
        let full = e.to_string();
        let message = full.find(" at line ").map_or(full.as_str(), |i| &full[..i]);
        // A duplicate key is reported at the start of its mapping; underline the repeat.
        let repeated = message
            .strip_prefix("duplicate entry with key \"")
            .and_then(|k| k.strip_suffix('"'))
            .and_then(|key| second_key(self.text, span.start as usize, key));
        let span = repeated.map_or(span, |(start, end)| Span::new(self.file, start, end));
        self.error(Code::E0020, span, format!("invalid YAML: {message}"), "here", None);
    }

    fn settings(&mut self, settings: &mut Settings) {
        let Some(root) = self.parse() else { return };
        let map = match root {
            Value::Null => return,
            Value::Mapping(map) => map,
            other => {
                let span = Span::new(self.file, 0, self.text.len());
                self.error(
                    Code::E0020,
                    span,
                    format!("`{FILE_NAME}` must be a mapping of settings, not {}", yaml_type(&other)),
                    "expected `key: value` lines",
                    Some(format!("known keys: {}", TOP_LEVEL_KEYS.join(", "))),
                );
                return;
            }
        };
        for (key, value) in map {
            let Some(key) = key.as_str().map(str::to_owned) else {
                let shown = scalar_text(&key).unwrap_or_else(|| yaml_type(&key).to_owned());
                let span = Span::new(self.file, 0, 0);
                self.error(Code::E0021, span, format!("unknown setting `{shown}`"), "", None);
                continue;
            };
            if value.is_null() {
                continue;
            }
            match key.as_str() {
                "tenant" => settings.tenant = self.tenant(&value),
                "cloud" => settings.cloud = self.cloud(&value),
                "subscriptions" => settings.subscriptions = self.subscriptions(&value),
                "vars" => settings.vars = self.vars(&value, &["vars"], Code::E0022),
                "policies" => settings.policies = self.policies(&value),
                "owner" => settings.owner = self.owner(&value),
                "limits" => settings.limits = self.limits(&value),
                _ => {
                    let help = suggest(&key, &TOP_LEVEL_KEYS).map_or_else(
                        || format!("known keys: {}", TOP_LEVEL_KEYS.join(", ")),
                        |s| format!("did you mean `{s}`?"),
                    );
                    let span = self.key_span(&[&key]);
                    self.error(Code::E0021, span, format!("unknown setting `{key}`"), "not a setting", Some(help));
                }
            }
        }
    }

    /// A string, or E0020 at `path`.
    fn string(&mut self, value: &Value, path: &[&str]) -> Option<String> {
        if let Value::String(s) = value {
            return Some(s.clone());
        }
        let span = self.value_span(path);
        let help = scalar_text(value).map(|t| format!("quote it: \"{t}\""));
        self.error(
            Code::E0020,
            span,
            format!("`{}` must be a string, not {}", path.join("."), yaml_type(value)),
            "expected a string",
            help,
        );
        None
    }

    fn tenant(&mut self, value: &Value) -> Option<String> {
        let text = self.string(value, &["tenant"])?;
        if let Some(guid) = normalize_guid(&text) {
            return Some(guid);
        }
        if is_domain(&text) {
            return Some(text.to_ascii_lowercase());
        }
        let span = self.value_span(&["tenant"]);
        self.error(
            Code::E0022,
            span,
            format!("`tenant` is neither a tenant id nor a domain: `{text}`"),
            "not a GUID or domain",
            Some("write the directory (tenant) id, like `72f988bf-86f1-41af-91ab-2d7cd011db47`, or a verified domain, like `contoso.onmicrosoft.com`".to_owned()),
        );
        None
    }

    fn cloud(&mut self, value: &Value) -> CloudSetting {
        match value {
            Value::String(name) => match name.to_ascii_lowercase().as_str() {
                "public" => CloudSetting::Public,
                "usgovernment" => CloudSetting::UsGovernment,
                "china" => CloudSetting::China,
                _ => {
                    let help = suggest(&name.to_ascii_lowercase(), &NAMED_CLOUDS).map_or_else(
                        || {
                            "use `public`, `usgovernment`, `china`, or a map of `arm`, `graph` and `authority` URLs"
                                .to_owned()
                        },
                        |s| format!("did you mean `{s}`?"),
                    );
                    let span = self.value_span(&["cloud"]);
                    self.error(Code::E0022, span, format!("unknown cloud `{name}`"), "not a cloud", Some(help));
                    CloudSetting::Public
                }
            },
            Value::Mapping(map) => self.custom_cloud(map),
            other => {
                let span = self.value_span(&["cloud"]);
                self.error(
                    Code::E0020,
                    span,
                    format!("`cloud` must be a cloud name or a map of endpoints, not {}", yaml_type(other)),
                    "expected a name or a map",
                    None,
                );
                CloudSetting::Public
            }
        }
    }

    fn custom_cloud(&mut self, map: &serde_norway::Mapping) -> CloudSetting {
        let mut urls: BTreeMap<&str, String> = BTreeMap::new();
        let mut ok = true;
        for (key, value) in map {
            let key = key.as_str().unwrap_or("");
            let Some(known) = CUSTOM_CLOUD_KEYS.iter().copied().find(|k| *k == key) else {
                let help = suggest(key, &CUSTOM_CLOUD_KEYS).map_or_else(
                    || "a custom cloud has `arm`, `graph` and `authority`".to_owned(),
                    |s| format!("did you mean `{s}`?"),
                );
                let span = self.key_span(&["cloud", key]);
                self.error(Code::E0021, span, format!("unknown key `cloud.{key}`"), "not an endpoint", Some(help));
                ok = false;
                continue;
            };
            let path = ["cloud", known];
            let Some(text) = self.string(value, &path) else {
                ok = false;
                continue;
            };
            match check_endpoint(&text) {
                Ok(url) => {
                    urls.insert(known, url);
                }
                Err(why) => {
                    let span = self.value_span(&path);
                    self.error(
                        Code::E0022,
                        span,
                        format!("`cloud.{known}` is not a usable endpoint: {why}"),
                        "invalid endpoint",
                        Some("use an https URL, or http for a loopback address such as the emulator's".to_owned()),
                    );
                    ok = false;
                }
            }
        }
        let missing: Vec<&str> = CUSTOM_CLOUD_KEYS.iter().copied().filter(|k| !urls.contains_key(k)).collect();
        if ok && !missing.is_empty() {
            let span = self.key_span(&["cloud"]);
            let list = missing.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
            self.error(
                Code::E0022,
                span,
                format!("custom `cloud` lacks {list}"),
                "incomplete cloud",
                Some("a custom cloud has `arm`, `graph` and `authority` URLs".to_owned()),
            );
        }
        match (urls.remove("arm"), urls.remove("graph"), urls.remove("authority")) {
            (Some(arm), Some(graph), Some(authority)) => CloudSetting::Custom { arm, graph, authority },
            _ => CloudSetting::Public,
        }
    }

    fn subscriptions(&mut self, value: &Value) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Value::Mapping(map) = value else {
            let span = self.key_span(&["subscriptions"]);
            self.error(
                Code::E0020,
                span,
                format!("`subscriptions` must be a map of alias to subscription id, not {}", yaml_type(value)),
                "expected a map",
                Some(
                    "write `subscriptions:` followed by lines like `  prod: 11111111-2222-3333-4444-555555555555`"
                        .to_owned(),
                ),
            );
            return out;
        };
        for (key, value) in map {
            let Some(alias) = key_string(key) else {
                continue;
            };
            if !is_identifier(&alias) {
                let span = self.key_span(&["subscriptions", &alias]);
                self.error(
                    Code::E0022,
                    span,
                    format!("subscription alias `{alias}` is not a valid name"),
                    "invalid alias",
                    Some("aliases are written `sub.ALIAS` in `.mlp` files, so they use `[a-z_][a-z0-9_]*`".to_owned()),
                );
                continue;
            }
            let path = ["subscriptions", alias.as_str()];
            let Some(text) = self.string(value, &path) else {
                continue;
            };
            if let Some(guid) = normalize_guid(&text) {
                out.insert(alias, guid);
            } else {
                let span = self.value_span(&path);
                self.error(
                    Code::E0022,
                    span,
                    format!("subscription `{alias}` is not a subscription id: `{text}`"),
                    "not a GUID",
                    Some("a subscription id is a GUID like `11111111-2222-3333-4444-555555555555`".to_owned()),
                );
            }
        }
        out
    }

    fn policies(&mut self, value: &Value) -> Vec<String> {
        let Value::Sequence(items) = value else {
            let span = self.value_span(&["policies"]);
            self.error(
                Code::E0020,
                span,
                format!("`policies` must be a list of pack names, not {}", yaml_type(value)),
                "expected a list",
                Some("write `policies: [baseline]`".to_owned()),
            );
            return Vec::new();
        };
        let mut out: Vec<String> = Vec::new();
        for item in items {
            let Some(name) = self.string(item, &["policies"]) else {
                continue;
            };
            let valid = !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
            if !valid {
                let span = self.key_span(&["policies"]);
                self.error(Code::E0022, span, format!("`{name}` is not a policy pack name"), "invalid pack name", None);
            } else if out.contains(&name) {
                let span = self.key_span(&["policies"]);
                self.error(Code::E0022, span, format!("policy pack `{name}` is listed twice"), "duplicate pack", None);
            } else {
                out.push(name);
            }
        }
        out
    }

    /// `limits:`: a map of budget names to positive integers; the others keep their defaults.
    fn limits(&mut self, value: &Value) -> Limits {
        let mut limits = Limits::default();
        let Value::Mapping(map) = value else {
            let span = self.key_span(&["limits"]);
            self.error(
                Code::E0020,
                span,
                format!("`limits` must be a map of budget names to numbers, not {}", yaml_type(value)),
                "expected a map",
                Some(format!("known budgets: {}", Limits::KEYS.join(", "))),
            );
            return limits;
        };
        for (key, value) in map {
            let key = scalar_text(key).unwrap_or_default();
            let Some(slot) = limits.get_mut(&key) else {
                let help = suggest(&key, &Limits::KEYS).map_or_else(
                    || format!("known budgets: {}", Limits::KEYS.join(", ")),
                    |s| format!("did you mean `{s}`?"),
                );
                let span = self.key_span(&["limits", &key]);
                self.error(Code::E0021, span, format!("unknown key `limits.{key}`"), "not a budget", Some(help));
                continue;
            };
            let path = ["limits", key.as_str()];
            // A negative number is as unusable as 0.
            let number = value.as_u64().or_else(|| value.as_i64().map(|_| 0));
            match number {
                Some(n) if n > 0 => *slot = n,
                Some(_) => {
                    let span = self.value_span(&path);
                    self.error(
                        Code::E0022,
                        span,
                        format!("`limits.{key}` must be at least 1"),
                        "not a usable budget",
                        Some("remove the key to keep the default".to_owned()),
                    );
                }
                None => {
                    let span = self.value_span(&path);
                    self.error(
                        Code::E0020,
                        span,
                        format!("`limits.{key}` must be a whole number, not {}", yaml_type(value)),
                        "expected a number",
                        Some("write it without quotes or units, e.g. `2000000`".to_owned()),
                    );
                }
            }
        }
        limits
    }

    fn owner(&mut self, value: &Value) -> Option<String> {
        let text = self.string(value, &["owner"])?;
        if is_owner_marker(&text) {
            return Some(text);
        }
        let span = self.value_span(&["owner"]);
        self.error(
            Code::E0022,
            span,
            format!("`owner` must be 1 to 64 characters of `a-z`, `0-9` and `-`, not `{text}`"),
            "invalid ownership marker",
            Some(
                "the marker is written into tags, descriptions and group names; choose e.g. `contoso-ml-prod`"
                    .to_owned(),
            ),
        );
        None
    }

    /// Variables of a map at `path` (`["vars"]` in mlpolicy.yaml, `[]` for a `--vars` file).
    /// Bad variable names are reported with `name_code`.
    fn vars(&mut self, value: &Value, path: &[&str], name_code: Code) -> BTreeMap<String, VarValue> {
        let mut out = BTreeMap::new();
        let Value::Mapping(map) = value else {
            let span = if path.is_empty() { Span::new(self.file, 0, self.text.len()) } else { self.key_span(path) };
            let what = if path.is_empty() { "a `--vars` file".to_owned() } else { format!("`{}`", path.join(".")) };
            let code = if path.is_empty() { Code::E0024 } else { Code::E0020 };
            self.error(
                code,
                span,
                format!("{what} must be a map of variable names to values, not {}", yaml_type(value)),
                "expected a map",
                Some("write one `name: value` line per variable".to_owned()),
            );
            return out;
        };
        for (key, value) in map {
            let Some(name) = key_string(key) else {
                continue;
            };
            let mut here: Vec<&str> = path.to_vec();
            here.push(&name);
            if !is_identifier(&name) {
                let span = self.key_span(&here);
                self.error(
                    name_code,
                    span,
                    format!("`{name}` is not a valid variable name"),
                    "invalid name",
                    Some("variables are read as `var.NAME`, so names use `[a-z_][a-z0-9_]*`".to_owned()),
                );
                continue;
            }
            let mut errors = Vec::new();
            match convert(value, &name, &mut errors) {
                Some(v) if errors.is_empty() => {
                    out.insert(name, v);
                }
                _ => {
                    let span = self.key_span(&here);
                    for (message, help) in errors {
                        self.error(Code::E0020, span, message, "in this variable", help);
                    }
                }
            }
        }
        out
    }
}

/// Converts YAML to a [`VarValue`]; problems go to `errors` as (message, help), naming the
/// place with `at` (`members.fraud[2]`).
fn convert(value: &Value, at: &str, errors: &mut Vec<(String, Option<String>)>) -> Option<VarValue> {
    match value {
        Value::String(s) => Some(VarValue::Str(s.clone())),
        Value::Bool(b) => Some(VarValue::Bool(*b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(VarValue::Int(i))
            } else if n.is_f64() {
                errors.push((
                    format!(
                        "`{at}` is a number with a fraction ({n}); variables hold strings, ints, bools, lists and maps"
                    ),
                    Some(format!("quote it to keep it as text: \"{n}\"")),
                ));
                None
            } else {
                errors.push((
                    format!("`{at}` is out of the 64-bit integer range ({n})"),
                    Some(format!("quote it: \"{n}\"")),
                ));
                None
            }
        }
        Value::Null => {
            errors.push((
                format!("`{at}` has no value (null)"),
                Some("give it a value, or remove it; `\"\"` is the empty string".to_owned()),
            ));
            None
        }
        Value::Sequence(items) => {
            let list: Vec<Option<VarValue>> =
                items.iter().enumerate().map(|(i, item)| convert(item, &format!("{at}[{i}]"), errors)).collect();
            list.into_iter().collect::<Option<Vec<_>>>().map(VarValue::List)
        }
        Value::Mapping(map) => {
            let mut out = BTreeMap::new();
            let mut complete = true;
            for (k, v) in map {
                let Some(key) = scalar_text(k) else {
                    errors.push((format!("`{at}` has a key that is {}; map keys are strings", yaml_type(k)), None));
                    complete = false;
                    continue;
                };
                match convert(v, &format!("{at}.{key}"), errors) {
                    Some(v) => {
                        out.insert(key, v);
                    }
                    None => complete = false,
                }
            }
            complete.then_some(VarValue::Map(out))
        }
        Value::Tagged(t) => {
            errors.push((
                format!("`{at}` carries the YAML tag `{}`, which variables do not support", t.tag),
                Some("remove the `!tag`".to_owned()),
            ));
            None
        }
    }
}

/// Applies one `--vars FILE`.
fn apply_var_file(path: &Path, vars: &mut BTreeMap<String, VarValue>, sources: &mut Sources, diags: &mut Diagnostics) {
    let shown = path.display().to_string();
    let text = match read_operator_file(path) {
        Ok(text) => text,
        Err(why) => {
            diags.push(
                Diagnostic::error(Code::E0024, format!("cannot read `--vars` file `{shown}`: {why}"))
                    .with_help("pass a readable YAML file of `name: value` lines"),
            );
            return;
        }
    };
    let file = sources.add(shown, path.to_path_buf(), redact_url_credentials(&text));
    let mut reader = Reader { text: &text, file, diags };
    let Some(root) = reader.parse() else { return };
    if root.is_null() {
        return;
    }
    let file_vars = reader.vars(&root, &[], Code::E0024);
    vars.extend(file_vars);
}

/// Reads a file the operator named, with the same size limit as configuration files.
fn read_operator_file(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".to_owned());
    }
    if meta.len() > source::MAX_FILE_BYTES {
        return Err(format!("{} bytes, more than the {} allowed", meta.len(), source::MAX_FILE_BYTES));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|_| "not valid UTF-8".to_owned())
}

/// Applies one `--var NAME=VALUE`.
fn apply_var_flag(arg: &str, vars: &mut BTreeMap<String, VarValue>, diags: &mut Diagnostics) {
    let Some((name, raw)) = arg.split_once('=') else {
        diags.push(
            Diagnostic::error(Code::E0023, format!("`--var {arg}` is not of the form NAME=VALUE"))
                .with_help(format!("write `--var {arg}=VALUE`, or `--var 'name=text with spaces'`")),
        );
        return;
    };
    let name = name.trim();
    if !is_identifier(name) {
        diags.push(
            Diagnostic::error(Code::E0023, format!("`--var {arg}`: `{name}` is not a valid variable name"))
                .with_help("variables are read as `var.NAME`, so names use `[a-z_][a-z0-9_]*`"),
        );
        return;
    }
    match parse_flag_value(name, raw, vars.get(name)) {
        Ok(value) => {
            vars.insert(name.to_owned(), value);
        }
        Err((message, help)) => {
            let mut d = Diagnostic::error(Code::E0023, format!("`--var {name}=...`: {message}"));
            if let Some(help) = help {
                d = d.with_help(help);
            }
            diags.push(d);
        }
    }
}

/// The value of `--var NAME=RAW`, typed by the variable's current value (see the module docs).
fn parse_flag_value(name: &str, raw: &str, current: Option<&VarValue>) -> Result<VarValue, (String, Option<String>)> {
    let flow = |expected: Option<&'static str>| -> Result<VarValue, (String, Option<String>)> {
        if let Some((start, end)) = yaml_tags(raw).into_iter().next() {
            return Err((
                format!("YAML tags are not supported: `{}`", &raw[start..end]),
                Some("write the value without a `!tag`".to_owned()),
            ));
        }
        let value: Value = serde_norway::from_str(raw).map_err(|e| {
            let full = e.to_string();
            let message = full.find(" at line ").map_or(full.as_str(), |i| &full[..i]).to_owned();
            (format!("invalid YAML flow value: {message}"), Some(format!("write e.g. `--var '{name}=[\"a\", \"b\"]'`")))
        })?;
        let mut errors = Vec::new();
        let converted = convert(&value, name, &mut errors);
        if let Some((message, help)) = errors.into_iter().next() {
            return Err((message, help));
        }
        let converted = converted.ok_or_else(|| (format!("`{raw}` is not a value"), None))?;
        match expected {
            Some(ty) if converted.type_name() != ty => {
                Err((format!("`{name}` is a {ty} in the settings, but `{raw}` is a {}", converted.type_name()), None))
            }
            _ => Ok(converted),
        }
    };
    match current {
        None if raw.trim_start().starts_with(['[', '{']) => flow(None),
        Some(VarValue::Str(_)) | None => Ok(VarValue::Str(raw.to_owned())),
        Some(VarValue::Int(_)) => raw
            .trim()
            .parse::<i64>()
            .map(VarValue::Int)
            .map_err(|_| (format!("`{name}` is an int in the settings, but `{raw}` is not an integer"), None)),
        Some(VarValue::Bool(_)) => match raw.trim() {
            "true" => Ok(VarValue::Bool(true)),
            "false" => Ok(VarValue::Bool(false)),
            _ => Err((format!("`{name}` is a bool in the settings, but `{raw}` is not `true` or `false`"), None)),
        },
        Some(VarValue::List(_)) => flow(Some("list")),
        Some(VarValue::Map(_)) => flow(Some("map")),
    }
}

/// A map key as a string (strings, ints and bools, written as YAML shows them).
fn key_string(key: &Value) -> Option<String> {
    scalar_text(key)
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if !n.is_f64() => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn yaml_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(n) if n.is_f64() => "a float",
        Value::Number(_) => "an int",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a map",
        Value::Tagged(_) => "a tagged value",
    }
}

/// The closest of `candidates`, when close enough to be a likely typo (the one rule of
/// `mlpolicy_vocab::suggest`).
fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    mlpolicy_vocab::suggest::closest(word, candidates.iter().copied())
}

/// `[a-z_][a-z0-9_]*`
fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The lower-case form of a hyphenated GUID (`8-4-4-4-12` hex digits).
fn normalize_guid(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let ok = bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    ok.then(|| s.to_ascii_lowercase())
}

/// A DNS name with at least two labels, such as `contoso.onmicrosoft.com`.
fn is_domain(s: &str) -> bool {
    let labels: Vec<&str> = s.split('.').collect();
    s.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels.last().is_some_and(|tld| tld.bytes().any(|b| b.is_ascii_alphabetic()))
}

pub fn is_owner_marker(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Tags reported per file at most; the rest of the file's tags go unreported.
const MAX_TAGS_REPORTED: usize = 20;

/// The byte ranges of the YAML tags in `text` (`!!binary`, `!!python/object:x`, `!custom`,
/// `!<tag:...>`), in order. `serde_norway` resolves `!!` tags silently, so they are found with an
/// event parser; nothing when the text does not parse (`serde_norway` reports that).
fn yaml_tags(text: &str) -> Vec<(usize, usize)> {
    use saphyr_parser::{Event, Parser};
    let mut out = Vec::new();
    let mut parser = Parser::new_from_str(text);
    while let Some(Ok((event, span))) = parser.next_event() {
        let tagged = matches!(
            &event,
            Event::Scalar(_, _, _, Some(_)) | Event::SequenceStart(_, Some(_)) | Event::MappingStart(_, Some(_))
        );
        if !tagged {
            continue;
        }
        // The node's span starts at its properties (anchor, tag): the tag is the first `!`.
        let node = text.char_indices().nth(span.start.index()).map_or(text.len(), |(b, _)| b);
        let Some(start) = text[node..].find('!').map(|i| node + i) else { continue };
        let end = if text[start..].starts_with("!<") {
            text[start..].find('>').map_or(text.len(), |i| start + i + 1)
        } else {
            text[start..]
                .find(|c: char| c.is_whitespace() || matches!(c, ',' | ']' | '}'))
                .map_or(text.len(), |i| start + i)
        };
        out.push((start, end));
    }
    out
}

/// `value` without its tags (each already reported).
fn untag(value: &mut Value) {
    match value {
        Value::Tagged(t) => {
            let inner = std::mem::replace(&mut t.value, Value::Null);
            *value = inner;
            untag(value);
        }
        Value::Sequence(items) => items.iter_mut().for_each(untag),
        Value::Mapping(map) => map.values_mut().for_each(untag),
        _ => {}
    }
}

/// `text` with the user name and password of every `scheme://user:password@host` masked
/// (`*` for each byte, so that every span into the text stays valid): diagnostics show source
/// lines, and a URL with credentials is refused without quoting them.
pub fn redact_url_credentials(text: &str) -> String {
    let mut out = text.as_bytes().to_vec();
    let mut from = 0;
    while let Some(i) = text[from..].find("://") {
        let start = from + i + 3;
        let rest = &text.as_bytes()[start..];
        // The authority ends at the path, query or fragment; its user info at its last `@`.
        let authority = rest
            .iter()
            .position(|b| matches!(b, b'/' | b'?' | b'#' | b'"' | b'\'') || b.is_ascii_whitespace())
            .unwrap_or(rest.len());
        if let Some(at) = rest[..authority].iter().rposition(|b| *b == b'@') {
            out[start..start + at].fill(b'*');
        }
        from = start;
    }
    // INVARIANT: only whole runs of bytes between ASCII delimiters were replaced by ASCII.
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}

/// Checks an endpoint URL and returns it without a trailing slash.
fn check_endpoint(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text).map_err(|e| format!("{e}"))?;
    let host = url.host().ok_or_else(|| "it has no host".to_owned())?;
    let loopback = match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return Err("plain http is allowed only for loopback hosts".to_owned()),
        other => return Err(format!("scheme `{other}` is not https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("it carries credentials (a user name or password, not shown)".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("it has a query or fragment".to_owned());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}
