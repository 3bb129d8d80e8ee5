//! The Graph half of the replay's set-up: a recording reads directory objects its test made
//! before recording started (the signed-in user, a group it looks up, a service principal it
//! resolves). When Azure answered such a read with 2xx and the emulator has no such object,
//! the set-up creates it through the emulator's own APIs (Graph, or ARM for a user-assigned
//! identity's service principal) and maps the recorded id to the minted one, so that the
//! replayed read finds it. Likewise a relationship (a group's members or owners, an
//! application's owners) a recorded list shows and the recording never wrote is added by
//! `$ref` first.
//!
//! The set-up only creates preconditions from what the recording shows about them (names,
//! the object's type); the replayed answer is still the emulator's own, compared field by
//! field with Azure's.

use std::collections::BTreeSet;

use mlpolicy_emulator::recordings::Interaction;
use serde_json::{Value, json};

use super::{Replayer, Surface, is_guid, is_placeholder, split_url, substitute};

/// The directory object types the set-up can create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    User,
    Group,
    ServicePrincipal,
    Application,
}

impl Kind {
    /// From an `@odata.type` (`#microsoft.graph.user`) or an entity set name (`users`).
    fn from_name(name: &str) -> Option<Kind> {
        let name = name.trim_start_matches('#').trim_start_matches("microsoft.graph.").to_ascii_lowercase();
        match name.as_str() {
            "user" | "users" => Some(Kind::User),
            "group" | "groups" => Some(Kind::Group),
            "serviceprincipal" | "serviceprincipals" => Some(Kind::ServicePrincipal),
            "application" | "applications" => Some(Kind::Application),
            _ => None,
        }
    }
}

/// The entity set an answer's `@odata.context` names: `…/$metadata#users/$entity`,
/// `…#groups`, `…#users(id,displayName)`.
fn context_kind(answer: &Value) -> Option<Kind> {
    let context = answer.get("@odata.context")?.as_str()?;
    let fragment = context.rsplit_once('#')?.1;
    let set = fragment.split(['/', '(']).next()?;
    Kind::from_name(set)
}

/// The objects of an answer: the answer itself, or the items of its `value`.
fn objects(answer: &Value) -> Vec<&Value> {
    match answer.get("value") {
        Some(Value::Array(items)) => items.iter().filter(|v| v.is_object()).collect(),
        Some(_) => Vec::new(),
        None => vec![answer],
    }
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// `{entity}/{recorded id}/{relationship}` of a `$ref` write or a relationship list, lower-cased.
fn relationship(segs: &[&str]) -> Option<String> {
    match segs {
        ["v1.0", entity, id, rel, ..] if matches!(*rel, "members" | "owners") => {
            Some(format!("{entity}/{id}/{rel}").to_ascii_lowercase())
        }
        _ => None,
    }
}

/// A mail nickname Graph accepts, from a display name.
fn nickname(name: &str) -> String {
    let n: String = name.chars().filter(char::is_ascii_alphanumeric).take(64).collect();
    if n.is_empty() { "group".to_owned() } else { n }
}

impl Replayer {
    /// Creates the directory objects and relationships a recorded Graph read assumes.
    pub(super) async fn set_up_graph(&mut self, i: &Interaction, op: &str) {
        let Some((Surface::Graph, path, _)) = split_url(&i.url) else { return };
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let writes_ref = segs.last().is_some_and(|s| s.eq_ignore_ascii_case("$ref"));
        if writes_ref && let Some(rel) = relationship(&segs) {
            self.written.insert(rel);
        }
        // Only reads show what existed before: a create's answer is the recording's own doing.
        let reads = op.starts_with("GET ") || op == "POST directoryObjects/getByIds";
        if !reads || !(200..300).contains(&i.status) {
            return;
        }
        let Some(recorded) = i.response.as_deref().and_then(|r| serde_json::from_str::<Value>(r).ok()) else {
            return;
        };
        let hint = context_kind(&recorded);
        for object in objects(&recorded) {
            self.ensure_object(object, hint).await;
        }
        // The list itself, not a cast of it (`members/microsoft.graph.user`).
        if relationship(&segs).is_some_and(|r| segs.len() == 4 && !self.written.contains(&r)) {
            let members: Vec<String> =
                objects(&recorded).iter().filter_map(|o| text(o, "id")).map(str::to_owned).collect();
            self.ensure_related(&path, &members).await;
        }
    }

    /// Creates `object` (of its `@odata.type`, else of the answer's entity set) unless its id
    /// is mapped already or the emulator has it.
    async fn ensure_object(&mut self, object: &Value, hint: Option<Kind>) {
        let Some(id) = text(object, "id").filter(|id| is_guid(id) && !is_placeholder(id)) else { return };
        let kind = text(object, "@odata.type").and_then(Kind::from_name).or(hint);
        let Some(kind) = kind else { return };
        if self.ids.contains_key(&id.to_ascii_lowercase()) {
            return;
        }
        let (status, _, _) = self.send(Surface::Graph, "GET", &format!("/v1.0/directoryObjects/{id}"), None).await;
        if status == 200 {
            return;
        }
        let minted = match kind {
            Kind::User => self.set_up_user(object).await,
            Kind::Group => self.set_up_group(object).await,
            Kind::Application => self.set_up_application(object).await,
            Kind::ServicePrincipal => self.set_up_service_principal(object).await,
        };
        if std::env::var_os("PARITY_TRACE").is_some() {
            println!("  set-up: {kind:?} {id} -> {}", minted.as_deref().unwrap_or("(not created)"));
        }
        if let Some(minted) = minted {
            self.ids.insert(id.to_ascii_lowercase(), minted);
        }
    }

    /// POSTs a Graph object and returns its answer when created.
    async fn create(&self, entity: &str, body: &Value) -> Option<Value> {
        let (status, _, text) =
            self.send(Surface::Graph, "POST", &format!("/v1.0/{entity}"), Some(body.to_string().as_str())).await;
        (status == 201).then(|| text.and_then(|t| serde_json::from_str(&t).ok())).flatten()
    }

    async fn get(&self, path: &str) -> Option<Value> {
        let (status, _, text) = self.send(Surface::Graph, "GET", path, None).await;
        (status == 200).then(|| text.and_then(|t| serde_json::from_str(&t).ok())).flatten()
    }

    async fn set_up_user(&self, object: &Value) -> Option<String> {
        let id = text(object, "id").unwrap_or_default();
        let upn = text(object, "userPrincipalName").map_or_else(|| format!("{id}@parity.example"), str::to_owned);
        // A user of that name made earlier in the replay is the same user.
        let existing = self.get(&format!("/v1.0/users/{}", upn.replace('#', "%23"))).await;
        if let Some(user) = existing {
            return text(&user, "id").map(str::to_owned);
        }
        let body = json!({
            "userPrincipalName": upn,
            "displayName": text(object, "displayName").unwrap_or(&upn),
            "mailNickname": nickname(upn.split('@').next().unwrap_or_default()),
            "accountEnabled": true,
            "passwordProfile": {"password": "Parity-set-up-1", "forceChangePasswordNextSignIn": false},
        });
        let user = self.create("users", &body).await?;
        text(&user, "id").map(str::to_owned)
    }

    async fn set_up_group(&self, object: &Value) -> Option<String> {
        let name = text(object, "displayName").unwrap_or("parity-group");
        let mut body = json!({
            "displayName": name,
            "mailNickname": text(object, "mailNickname").map_or_else(|| nickname(name), str::to_owned),
            "mailEnabled": object.get("mailEnabled").and_then(Value::as_bool).unwrap_or(false),
            "securityEnabled": object.get("securityEnabled").and_then(Value::as_bool).unwrap_or(true),
        });
        for key in ["description", "uniqueName"] {
            if let Some(v) = text(object, key) {
                body[key] = json!(v);
            }
        }
        if let Some(types) = object.get("groupTypes").filter(|t| t.is_array()) {
            body["groupTypes"] = types.clone();
        }
        let group = self.create("groups", &body).await?;
        text(&group, "id").map(str::to_owned)
    }

    async fn set_up_application(&mut self, object: &Value) -> Option<String> {
        let mut body = json!({ "displayName": text(object, "displayName").unwrap_or("parity-app") });
        if let Some(uris) = object.get("identifierUris").filter(|u| u.as_array().is_some_and(|a| !a.is_empty())) {
            body["identifierUris"] = uris.clone();
        }
        let app = self.create("applications", &body).await?;
        if let (Some(recorded), Some(minted)) = (text(object, "appId"), text(&app, "appId")) {
            self.ids.entry(recorded.to_ascii_lowercase()).or_insert_with(|| minted.to_owned());
        }
        text(&app, "id").map(str::to_owned)
    }

    /// A managed identity's service principal comes from its user-assigned identity (ARM); any
    /// other from `POST /servicePrincipals` with its (mapped) `appId`.
    async fn set_up_service_principal(&mut self, object: &Value) -> Option<String> {
        let managed = text(object, "servicePrincipalType") == Some("ManagedIdentity");
        let identity = object.get("alternativeNames").and_then(Value::as_array).and_then(|names| {
            names.iter().filter_map(Value::as_str).find(|n| {
                n.to_ascii_lowercase().contains("/providers/microsoft.managedidentity/userassignedidentities/")
            })
        });
        if managed && let Some(identity) = identity {
            return self.set_up_identity(object, identity).await;
        }
        let app_id = substitute(text(object, "appId")?, &self.ids);
        let created = self.create("servicePrincipals", &json!({ "appId": app_id, "accountEnabled": true })).await;
        let sp = match created {
            Some(sp) => sp,
            None => self.get(&format!("/v1.0/servicePrincipals(appId='{app_id}')")).await?,
        };
        text(&sp, "id").map(str::to_owned)
    }

    async fn set_up_identity(&mut self, object: &Value, identity: &str) -> Option<String> {
        let id = substitute(identity, &self.ids);
        let segs: Vec<&str> = id.split('/').filter(|s| !s.is_empty()).collect();
        if let ["subscriptions", sub, _, rg, ..] = segs.as_slice() {
            let rg_path = format!("/subscriptions/{sub}/resourcegroups/{rg}");
            if self.known.insert(rg_path.to_ascii_lowercase()) {
                let body = r#"{"location":"westus"}"#;
                self.send(Surface::Arm, "PUT", &format!("{rg_path}?api-version=2025-04-01"), Some(body)).await;
            }
        }
        let (status, _, text_body) = self
            .send(Surface::Arm, "PUT", &format!("{id}?api-version=2023-01-31"), Some(r#"{"location":"westus"}"#))
            .await;
        self.known.insert(id.to_ascii_lowercase());
        let answer: Value = serde_json::from_str(&text_body?).ok()?;
        if !(200..300).contains(&status) {
            return None;
        }
        if let (Some(recorded), Some(minted)) = (text(object, "appId"), answer["properties"]["clientId"].as_str()) {
            self.ids.entry(recorded.to_ascii_lowercase()).or_insert_with(|| minted.to_owned());
        }
        answer["properties"]["principalId"].as_str().map(str::to_owned)
    }

    /// Adds by `$ref` each of `members` (recorded ids) that the emulator's relationship at
    /// `path` (the recorded list's path) lacks.
    async fn ensure_related(&self, path: &str, members: &[String]) {
        let list_path = substitute(path, &self.ids);
        let Some(current) = self.get(&format!("{list_path}?$top=999")).await else { return };
        let have: BTreeSet<String> =
            objects(&current).iter().filter_map(|o| text(o, "id")).map(str::to_ascii_lowercase).collect();
        for member in members {
            let mapped = substitute(member, &self.ids);
            if have.contains(&mapped.to_ascii_lowercase()) {
                continue;
            }
            let body = json!({ "@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{mapped}") });
            // A refusal is left for the replayed read to show.
            let (status, _, _) =
                self.send(Surface::Graph, "POST", &format!("{list_path}/$ref"), Some(body.to_string().as_str())).await;
            if std::env::var_os("PARITY_TRACE").is_some() {
                println!("  set-up: {mapped} added to {list_path} -> {status}");
            }
        }
    }
}
