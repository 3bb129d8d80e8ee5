//! Unit tests of the Graph surface's parsing and rendering (the HTTP behaviour is tested in
//! `http_tests`).

use serde_json::json;

use super::alternate_key;
use super::membership::transitive_members;
use super::query::{Clause, Filter, Test, parse_filter};
use super::render::{security_identifier, sp_json};
use crate::state::{Application, Group, ServicePrincipal, Tenant};

fn matches(filter: &str, obj: &serde_json::Value) -> bool {
    parse_filter(filter).unwrap_or_else(|| panic!("{filter} parses")).matches(obj)
}

#[test]
fn filters_parse_and_match() {
    let g = json!({"displayName": "ML 'admins'", "uniqueName": "ml-admins"});
    assert!(matches("displayName eq 'ml ''admins''' and startswith(uniqueName,'ml-')", &g));
    assert!(!matches("displayName eq 'ml' and startswith(uniqueName,'ml-')", &g));
    assert!(parse_filter("displayName eq").is_none());
    assert!(parse_filter("securityEnabled eq true").is_some());
}

#[test]
fn or_binds_looser_than_and_and_not_negates() {
    let g = json!({"displayName": "a", "mailNickname": "x", "securityEnabled": true});
    assert!(matches("displayName eq 'b' or displayName eq 'a' and mailNickname eq 'x'", &g));
    assert!(!matches("(displayName eq 'b' or displayName eq 'a') and mailNickname eq 'y'", &g));
    assert!(matches("not(displayName eq 'b')", &g));
    assert!(!matches("NOT startsWith(displayName, 'a')", &g));
    assert!(matches("displayName ne 'b' and endsWith(mailNickname,'X')", &g));
    let parsed = parse_filter("not(startswith(displayName,'a')) or mailNickname ne null").unwrap();
    assert_eq!(
        parsed,
        Filter(vec![
            vec![Clause { negated: true, test: Test::StartsWith("displayName".into(), "a".into()) }],
            vec![Clause { negated: false, test: Test::Ne("mailNickname".into(), serde_json::Value::Null) }],
        ])
    );
    // Words inside quotes and parentheses are not operators.
    assert!(matches("displayName in ('a or b', 'a')", &g));
    // Nesting is bounded: a hostile filter is refused, not a stack overflow.
    let deep = format!("{}displayName eq 'a'{}", "(".repeat(100_000), ")".repeat(100_000));
    assert!(parse_filter(&deep).is_none());
    assert!(parse_filter(&"not ".repeat(100_000)).is_none());
}

#[test]
fn lambda_and_in_filters_match_collections() {
    let sp = json!({"appId": "a1", "servicePrincipalNames": ["a1", "api://ml-train"]});
    assert!(matches("servicePrincipalNames/any(c:c eq 'API://ml-train')", &sp));
    assert!(!matches("servicePrincipalNames/any(c:c eq 'api://other')", &sp));
    assert!(matches("servicePrincipalNames/any(x:startswith(x, 'api://'))", &sp));
    assert!(matches("appId in ('a0', 'a1')", &sp));
    assert!(parse_filter("servicePrincipalNames/any(c:x eq 'a')").is_none(), "the lambda compares its variable");
}

#[test]
fn transitive_members_follow_nesting_once() {
    let mut t = Tenant::default();
    for (id, members) in [("outer", vec!["inner", "alice"]), ("inner", vec!["bob", "outer"])] {
        t.groups.push(Group {
            id: id.into(),
            members: members.into_iter().map(str::to_owned).collect(),
            ..Group::default()
        });
    }
    let mut found = transitive_members(&t, "outer");
    found.sort();
    assert_eq!(found, ["alice", "bob", "inner"], "a cycle back to the group ends the walk");
    let mut of_bob = t.transitive_groups("bob");
    of_bob.sort();
    assert_eq!(of_bob, ["inner", "outer"]);
}

#[test]
fn alternate_keys_parse() {
    assert_eq!(alternate_key("uniqueName='a''b'"), Some(("uniqueName".into(), "a'b".into())));
    assert_eq!(alternate_key("'alice@contoso.com'"), None, "a plain key is not an alternate key");
    assert_eq!(alternate_key("appId=nope"), None);
}

#[test]
fn security_identifiers_follow_the_object_id() {
    // Recorded by azure-cli: group 00e7bb05-86a1-49e2-bb6e-3dd60ab63a3a.
    assert_eq!(
        security_identifier("00e7bb05-86a1-49e2-bb6e-3dd60ab63a3a"),
        "S-1-12-1-15186693-1239582369-3594350267-976926218"
    );
    assert!(security_identifier("not-a-guid").is_null());
}

#[test]
fn service_principal_names_follow_the_application_and_the_identity() {
    let mut t = Tenant::default();
    t.applications.push(Application {
        id: "app".into(),
        app_id: "11111111-1111-4111-8111-111111111111".into(),
        identifier_uris: vec!["api://train".into()],
        ..Application::default()
    });
    let app_sp = ServicePrincipal {
        id: "sp".into(),
        app_id: "11111111-1111-4111-8111-111111111111".into(),
        service_principal_type: "Application".into(),
        ..ServicePrincipal::default()
    };
    let v = sp_json(&t, &app_sp);
    assert_eq!(v["servicePrincipalNames"], json!(["11111111-1111-4111-8111-111111111111", "api://train"]));
    assert_eq!(v["keyCredentials"], json!([]));
    let mi = ServicePrincipal {
        id: "7208cc97-4e0d-441d-be9f-341a8bd1b135".into(),
        app_id: "a44a82df-4827-46db-838e-649917e4525e".into(),
        service_principal_type: "ManagedIdentity".into(),
        created_ms: 1_691_558_040_000,
        ..ServicePrincipal::default()
    };
    let v = sp_json(&t, &mi);
    let names = v["servicePrincipalNames"].as_array().unwrap();
    assert_eq!(names.len(), 2);
    assert!(names[1].as_str().unwrap().starts_with("https://identity.azure.net/"));
    let cert = &v["keyCredentials"][0];
    assert_eq!(cert["displayName"], "CN=a44a82df-4827-46db-838e-649917e4525e");
    assert_eq!((cert["type"].as_str(), cert["usage"].as_str()), (Some("AsymmetricX509Cert"), Some("Verify")));
    assert_eq!(cert["startDateTime"], "2023-08-09T05:14:00Z");
    assert_eq!(cert["endDateTime"], "2023-11-07T05:14:00Z", "valid 90 days, as recorded");
    assert_eq!(cert["customKeyIdentifier"].as_str().map(str::len), Some(40));
    assert_eq!(sp_json(&t, &mi), v, "the same identity always shows the same certificate");
}
