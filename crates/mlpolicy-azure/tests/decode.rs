//! Every response body real Azure sent for an operation the client uses (the recordings of
//! `tests/data/azure/recordings/`) decodes into the client's types without loss: decoding never
//! fails, and every field the type keeps serialises back to the value Azure sent.

use std::path::Path;

use mlpolicy_azure::{
    Application, DirectoryObject, FederatedCredential, Group, PasswordCredential, ResourceGroup, RoleAssignment,
    RoleDefinition, ServicePrincipal, User, UserAssignedIdentity, Workspace,
};
use mlpolicy_emulator::recordings::{Interaction, load};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Decodes `body` as `T`, and checks that what `T` keeps equals what was sent.
fn round_trip<T: DeserializeOwned + Serialize>(body: &Value, what: &str) -> Result<(), String> {
    let decoded: T = serde_json::from_value(body.clone()).map_err(|e| format!("{what}: does not decode: {e}"))?;
    let kept = serde_json::to_value(&decoded).map_err(|e| format!("{what}: {e}"))?;
    kept_fields_equal(&kept, body, what)
}

/// Every non-empty field of `kept` has the same value in `sent` (an empty or default field may
/// stand for one Azure left out).
fn kept_fields_equal(kept: &Value, sent: &Value, path: &str) -> Result<(), String> {
    match kept {
        Value::Object(m) => {
            for (k, v) in m {
                let here = format!("{path}.{k}");
                match sent.get(k) {
                    Some(s) => kept_fields_equal(v, s, &here)?,
                    None if is_empty(v) => {}
                    None => return Err(format!("{here}: kept {v} but Azure sent nothing")),
                }
            }
            Ok(())
        }
        Value::Array(a) => {
            let Value::Array(b) = sent else {
                return if a.is_empty() { Ok(()) } else { Err(format!("{path}: kept a list, Azure sent {sent}")) };
            };
            if a.len() != b.len() {
                return Err(format!("{path}: kept {} items of {}", a.len(), b.len()));
            }
            a.iter().zip(b).enumerate().try_for_each(|(i, (x, y))| kept_fields_equal(x, y, &format!("{path}[{i}]")))
        }
        v if is_empty(v) && sent.is_null() => Ok(()),
        v if v == sent => Ok(()),
        v => Err(format!("{path}: kept {v}, Azure sent {sent}")),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.values().all(is_empty),
        Value::Bool(b) => !b,
        Value::Number(_) => false,
    }
}

/// Decodes one body and checks it lost nothing.
type Check = fn(&Value, &str) -> Result<(), String>;

/// The decoder for a recorded request, when the client reads that operation.
fn decoder(i: &Interaction) -> Option<(&'static str, Check)> {
    let url = i.url.split('?').next()?.to_ascii_lowercase();
    let m = i.method.as_str();
    let last = url.rsplit('/').next()?;
    let parent = url.rsplit('/').nth(1)?;
    let single_or_list = |name| Some(name);
    let kind = if url.contains("/providers/microsoft.authorization/roleassignments") {
        single_or_list("roleAssignment")
    } else if url.contains("/providers/microsoft.authorization/roledefinitions") {
        single_or_list("roleDefinition")
    } else if url.contains("/federatedidentitycredentials") {
        single_or_list("federatedCredential")
    } else if url.contains("/providers/microsoft.managedidentity/userassignedidentities") {
        single_or_list("identity")
    } else if url.contains("/providers/microsoft.machinelearningservices/workspaces") && !url.contains("/workspaces/")
        || (parent == "workspaces" && m != "POST")
    {
        single_or_list("workspace")
    } else if url.contains("management.azure.com") || url.contains("localhost:1234") {
        (parent == "resourcegroups" || last == "resourcegroups").then_some("resourceGroup")
    } else if url.contains("graph.microsoft.com/v1.0/") {
        match (parent, last) {
            (_, "addpassword") => Some("passwordCredential"),
            ("directoryobjects", "getbyids") | (_, "members" | "owners") => Some("directoryObject"),
            (_, "users") | ("users", _) => Some("user"),
            (_, "groups") | ("groups", _) => Some("group"),
            (_, "serviceprincipals") | ("serviceprincipals", _) => Some("servicePrincipal"),
            (_, "applications") | ("applications", _) => Some("application"),
            _ => None,
        }
    } else {
        None
    }?;
    let f: Check = match kind {
        "roleAssignment" => round_trip::<RoleAssignment>,
        "roleDefinition" => round_trip::<RoleDefinition>,
        "federatedCredential" => round_trip::<FederatedCredential>,
        "identity" => round_trip::<UserAssignedIdentity>,
        "workspace" => round_trip::<Workspace>,
        "resourceGroup" => round_trip::<ResourceGroup>,
        "passwordCredential" => round_trip::<PasswordCredential>,
        "directoryObject" => round_trip::<DirectoryObject>,
        "user" => round_trip::<User>,
        "group" => round_trip::<Group>,
        "servicePrincipal" => round_trip::<ServicePrincipal>,
        _ => round_trip::<Application>,
    };
    Some((kind, f))
}

#[test]
fn every_recorded_answer_decodes_without_loss() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/azure/recordings");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.retain(|p| p.extension().is_some_and(|x| x == "json" || x == "yaml"));
    files.sort();
    let (mut decoded, mut problems) = (0, Vec::new());
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy();
        for i in load(f).unwrap() {
            if !(200..300).contains(&i.status) {
                continue;
            }
            let Some((kind, check)) = decoder(&i) else { continue };
            let Some(body) = i.response.as_deref().and_then(|b| serde_json::from_str::<Value>(b).ok()) else {
                continue;
            };
            // A list answers `{value: [...]}`; each item decodes on its own.
            let items: Vec<&Value> = match body.get("value") {
                Some(Value::Array(a)) => a.iter().collect(),
                _ => vec![&body],
            };
            for item in items {
                decoded += 1;
                if let Err(e) = check(item, &format!("{name} {} {kind}", i.method)) {
                    problems.push(e);
                }
            }
        }
    }
    println!("{decoded} recorded bodies decoded");
    assert!(decoded > 300, "only {decoded} recorded bodies decoded");
    assert!(problems.is_empty(), "{} of {decoded} bodies lose data:\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn a_changed_or_invented_value_is_a_loss() {
    let sent = serde_json::json!({"id": "/x", "properties": {"principalType": "User", "scope": "/s"}});
    assert!(round_trip::<RoleAssignment>(&sent, "same").is_ok());
    let kept = serde_json::json!({"id": "/x", "properties": {"principalType": "user"}});
    assert!(kept_fields_equal(&kept, &sent, "").unwrap_err().contains("principalType"));
    let invented = serde_json::json!({"id": "/x", "name": "n"});
    assert!(kept_fields_equal(&invented, &sent, "").unwrap_err().contains(".name"));
}
