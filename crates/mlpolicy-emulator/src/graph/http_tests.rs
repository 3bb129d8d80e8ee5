//! HTTP tests of the Graph surface: each starts an emulator on port 0 and talks to it with
//! plain reqwest, as a client would.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{Emulator, EmulatorConfig};

struct Graph {
    emu: Emulator,
    http: reqwest::Client,
    base: String,
    token: String,
}

struct Answer {
    status: u16,
    content_type: String,
    text: String,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
    fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }
    fn ids(&self) -> Vec<&str> {
        self.body["value"].as_array().map(|a| a.iter().filter_map(|v| v["id"].as_str()).collect()).unwrap_or_default()
    }
}

/// Header that turns a query into an advanced query.
const EVENTUAL: (&str, &str) = ("ConsistencyLevel", "eventual");

impl Graph {
    async fn start() -> Graph {
        Graph::start_with(EmulatorConfig::default()).await
    }

    async fn start_with(cfg: EmulatorConfig) -> Graph {
        let emu = Emulator::start(cfg).await.unwrap();
        let base = emu.base_url();
        let http = reqwest::Client::new();
        let form = [
            ("client_id", "11111111-2222-3333-4444-555555555555"),
            ("client_secret", "anything"),
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ];
        let v: Value =
            http.post(format!("{base}/t/oauth2/v2.0/token")).form(&form).send().await.unwrap().json().await.unwrap();
        let token = v["access_token"].as_str().unwrap().to_owned();
        Graph { emu, http, base, token }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>, headers: &[(&str, &str)]) -> Answer {
        let mut req = self.http.request(method, format!("{}/v1.0{path}", self.base)).bearer_auth(&self.token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let content_type =
            resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, content_type, text, body }
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.send(Method::GET, path, None, headers).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(body), &[]).await
    }

    async fn delete(&self, path: &str) -> Answer {
        self.send(Method::DELETE, path, None, &[]).await
    }

    async fn create(&self, path: &str, body: Value) -> String {
        let a = self.send(Method::POST, path, Some(body), &[]).await;
        assert_eq!(a.status, 201, "{}", a.text);
        a.body["id"].as_str().unwrap().to_owned()
    }

    async fn user(&self, upn: &str) -> String {
        self.create("/users", json!({"userPrincipalName": upn, "displayName": upn.split('@').next()})).await
    }

    async fn group(&self, name: &str) -> String {
        let body = json!({"displayName": name, "mailEnabled": false, "mailNickname": name, "securityEnabled": true});
        self.create("/groups", body).await
    }

    async fn add(&self, path: &str, id: &str) -> Answer {
        let body = json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}")});
        self.send(Method::POST, path, Some(body), &[]).await
    }
}

#[tokio::test]
async fn application_owners_are_listed_added_and_removed_by_ref() {
    let g = Graph::start().await;
    let app = g.send(Method::POST, "/applications", Some(json!({"displayName": "deployer"})), &[]).await;
    assert_eq!(app.status, 201, "{}", app.text);
    let (app_id, client_id) = (app.body["id"].as_str().unwrap(), app.body["appId"].as_str().unwrap());
    let owners_path = format!("/applications/{app_id}/owners");

    // The creator (the caller's service principal) is the first owner.
    let owners = g.get(&owners_path, &[]).await;
    assert_eq!(owners.status, 200, "{}", owners.text);
    assert!(owners.body["@odata.context"].as_str().unwrap().ends_with("$metadata#directoryObjects"));
    assert_eq!(owners.body["value"].as_array().map(Vec::len), Some(1));
    assert_eq!(owners.body["value"][0]["@odata.type"], "#microsoft.graph.servicePrincipal");
    let caller = owners.body["value"][0]["id"].as_str().unwrap().to_owned();

    let alice = g.user("alice@contoso.com").await;
    let add = g.add(&format!("{owners_path}/$ref"), &alice).await;
    assert_eq!((add.status, add.text.as_str()), (204, ""));
    let dup = g.add(&format!("{owners_path}/$ref"), &alice).await;
    assert_eq!((dup.status, dup.code()), (400, "Request_BadRequest"));
    assert_eq!(
        dup.message(),
        "One or more added object references already exist for the following modified properties: 'owners'."
    );
    let group = g.group("admins").await;
    assert_eq!(g.add(&format!("{owners_path}/$ref"), &group).await.status, 400, "groups cannot own applications");
    let ghost = g.add(&format!("{owners_path}/$ref"), "0b5d4a7e-1111-4222-8333-944444444444").await;
    assert_eq!((ghost.status, ghost.code()), (404, "Request_ResourceNotFound"));
    let missing_app = g.add("/applications/0b5d4a7e-1111-4222-8333-944444444444/owners/$ref", &alice).await;
    assert_eq!(missing_app.status, 404);

    // Listed with each owner's type and default properties, also through the appId key.
    let owners = g.get(&format!("/applications(appId='{client_id}')/owners"), &[]).await;
    assert_eq!(owners.ids(), [caller.as_str(), alice.as_str()]);
    assert_eq!(owners.body["value"][1]["@odata.type"], "#microsoft.graph.user");
    assert_eq!(owners.body["value"][1]["userPrincipalName"], "alice@contoso.com");
    assert!(owners.body["value"][1]["businessPhones"].is_array());
    let users = g.get(&format!("{owners_path}/microsoft.graph.user"), &[]).await;
    assert_eq!(users.ids(), [alice.as_str()], "a cast keeps one type");

    // Removed by `$ref`; an application may be left without owners.
    assert_eq!(g.delete(&format!("{owners_path}/{caller}/$ref")).await.status, 204);
    let again = g.delete(&format!("{owners_path}/{caller}/$ref")).await;
    assert_eq!((again.status, again.code()), (404, "Request_ResourceNotFound"));
    assert_eq!(g.send(Method::DELETE, &format!("/users/{alice}"), None, &[]).await.status, 204);
    let none = g.get(&owners_path, &[]).await;
    assert_eq!(none.body["value"], json!([]), "a deleted user owns nothing");
    g.emu.shutdown().await;
}

#[tokio::test]
async fn count_needs_consistency_level_eventual() {
    let g = Graph::start().await;
    for name in ["ml-a", "ml-b", "ops"] {
        g.group(name).await;
    }
    let plain = g.get("/groups/$count", &[]).await;
    assert_eq!(
        (plain.status, plain.code(), plain.message()),
        (400, "Request_BadRequest", "$count is not currently supported.")
    );
    let count = g.get("/groups/$count", &[EVENTUAL]).await;
    assert_eq!((count.status, count.text.as_str()), (200, "3"));
    assert!(count.content_type.starts_with("text/plain"), "{}", count.content_type);
    let filtered = g.get("/groups/$count?$filter=startswith(displayName,'ml-')", &[EVENTUAL]).await;
    assert_eq!(filtered.text, "2");
    assert_eq!(g.get("/users/$count", &[EVENTUAL]).await.text, "0");
    let sps = g.get("/servicePrincipals/$count", &[EVENTUAL]).await;
    assert_eq!(sps.text, "1", "the caller's service principal");
    let not_a_collection =
        g.get(&format!("/servicePrincipals/{}/$count", "0b5d4a7e-1111-4222-8333-944444444444"), &[EVENTUAL]).await;
    assert_eq!(not_a_collection.status, 400);
    assert_eq!(g.get("/organization/$count", &[EVENTUAL]).await.status, 400, "not a directory collection");

    // `$count=true` adds `@odata.count` (of every match, not of the page) only with the
    // header; without it Graph silently ignores it.
    let ignored = g.get("/groups?$count=true", &[]).await;
    assert_eq!(ignored.status, 200);
    assert!(ignored.body.get("@odata.count").is_none(), "{}", ignored.text);
    let counted = g.get("/groups?$count=true&$top=1", &[EVENTUAL]).await;
    assert_eq!(counted.body["@odata.count"], 3);
    assert_eq!(counted.body["value"].as_array().map(Vec::len), Some(1));
    assert!(counted.body["@odata.nextLink"].as_str().unwrap().contains("%24count=true"));

    // Relationships count the same way.
    let gid = g.group("team").await;
    let bob = g.user("bob@contoso.com").await;
    assert_eq!(g.add(&format!("/groups/{gid}/members/$ref"), &bob).await.status, 204);
    assert_eq!(g.get(&format!("/groups/{gid}/members/$count"), &[EVENTUAL]).await.text, "1");
    assert_eq!(g.get(&format!("/users/{bob}/memberOf/$count"), &[EVENTUAL]).await.text, "1");
    assert_eq!(g.get(&format!("/groups/{gid}/members/$count"), &[]).await.status, 400);

    // Inside `$batch` the header goes with the request.
    let batch = json!({"requests": [
        {"id": "1", "method": "GET", "url": "/groups/$count", "headers": {"ConsistencyLevel": "eventual"}},
        {"id": "2", "method": "GET", "url": "/groups/$count"},
    ]});
    let answer = g.send(Method::POST, "/$batch", Some(batch), &[]).await;
    let by_id = |id: &str| answer.body["responses"].as_array().unwrap().iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!((by_id("1")["status"].as_u64(), by_id("1")["body"].as_str()), (Some(200), Some("4")));
    assert_eq!(by_id("2")["status"], 400);
    g.emu.shutdown().await;
}

#[tokio::test]
async fn advanced_queries_need_both_parameters() {
    let g = Graph::start().await;
    for name in ["ml-admins", "ml-readers", "ops-admins"] {
        g.group(name).await;
    }
    let names = |a: &Answer| -> Vec<String> {
        a.body["value"].as_array().unwrap().iter().map(|v| v["displayName"].as_str().unwrap().to_owned()).collect()
    };
    for (filter, op) in [
        ("displayName ne 'ops-admins'", "ne"),
        ("endsWith(displayName,'-admins')", "endsWith"),
        ("not(startswith(displayName,'ml-'))", "not"),
    ] {
        let path = format!("/groups?$filter={filter}");
        for headers in [&[][..], &[EVENTUAL][..]] {
            let refused = g.get(&path, headers).await;
            assert_eq!((refused.status, refused.code()), (400, "Request_UnsupportedQuery"), "{filter}");
            assert!(refused.message().starts_with(&format!("Operator '{op}' is not supported")), "{}", refused.text);
        }
        let served = g.get(&format!("{path}&$count=true"), &[EVENTUAL]).await;
        assert_eq!(served.status, 200, "{}", served.text);
    }
    let ends = g.get("/groups?$filter=endsWith(displayName,'-admins')&$count=true", &[EVENTUAL]).await;
    assert_eq!(names(&ends), ["ml-admins", "ops-admins"]);
    assert_eq!(ends.body["@odata.count"], 2);
    let either = g.get("/groups?$filter=displayName eq 'ops-admins' or displayName eq 'ml-readers'", &[]).await;
    assert_eq!(names(&either).len(), 2, "`or` works by default");

    // `$search` needs the header (not `$count`) and matches words by prefix.
    let refused = g.get("/groups?$search=\"displayName:admins\"", &[]).await;
    assert_eq!((refused.status, refused.code()), (400, "Request_UnsupportedQuery"));
    assert!(refused.message().contains("ConsistencyLevel: eventual"));
    let found = g.get("/groups?$search=\"displayName:admin\"", &[EVENTUAL]).await;
    assert_eq!(names(&found), ["ml-admins", "ops-admins"]);
    let both = g.get("/groups?$search=\"displayName:ml\" AND \"displayName:read\"", &[EVENTUAL]).await;
    assert_eq!(names(&both), ["ml-readers"]);

    // `$orderby` on displayName works by default; with a filter only in advanced queries.
    let sorted = g.get("/groups?$orderby=displayName desc", &[]).await;
    assert_eq!(names(&sorted), ["ops-admins", "ml-readers", "ml-admins"]);
    let mixed = "/groups?$orderby=displayName&$filter=startswith(displayName,'ml')";
    assert_eq!(g.get(mixed, &[]).await.code(), "Request_UnsupportedQuery");
    assert_eq!(g.get(&format!("{mixed}&$count=true"), &[EVENTUAL]).await.status, 200);
    g.emu.shutdown().await;
}

#[tokio::test]
async fn membership_queries_follow_nested_groups() {
    let g = Graph::start().await;
    let (outer, inner) = (g.group("outer").await, g.group("inner").await);
    let carol = g.user("carol@contoso.com").await;
    assert_eq!(g.add(&format!("/groups/{outer}/members/$ref"), &inner).await.status, 204);
    assert_eq!(g.add(&format!("/groups/{inner}/members/$ref"), &carol).await.status, 204);

    assert_eq!(g.get(&format!("/users/{carol}/memberOf"), &[]).await.ids(), [inner.as_str()]);
    let mut transitive = g
        .get("/users/carol@contoso.com/transitiveMemberOf", &[])
        .await
        .ids()
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    transitive.sort();
    let mut want = vec![outer.clone(), inner.clone()];
    want.sort();
    assert_eq!(transitive, want);
    let members = g.get(&format!("/groups/{outer}/transitiveMembers/microsoft.graph.user"), &[]).await;
    assert_eq!(members.ids(), [carol.as_str()]);
    assert_eq!(members.body["value"][0]["@odata.type"], "#microsoft.graph.user");

    let groups = g.post(&format!("/users/{carol}/getMemberGroups"), json!({"securityEnabledOnly": true})).await;
    assert!(groups.body["@odata.context"].as_str().unwrap().ends_with("#Collection(Edm.String)"));
    assert_eq!(groups.body["value"].as_array().map(Vec::len), Some(2));
    let check = g
        .post(
            &format!("/users/{carol}/checkMemberGroups"),
            json!({"groupIds": [outer, "0b5d4a7e-1111-4222-8333-944444444444"]}),
        )
        .await;
    assert_eq!(check.body["value"], json!([outer]));
    let objects = g.post(&format!("/users/{carol}/getMemberObjects"), json!({"securityEnabledOnly": false})).await;
    assert_eq!(objects.body["value"].as_array().map(Vec::len), Some(2));
    let nobody = g.post("/users/0b5d4a7e-1111-4222-8333-944444444444/getMemberGroups", json!({})).await;
    assert_eq!(nobody.status, 404);
    g.emu.shutdown().await;
}

#[tokio::test]
async fn identifier_uris_become_service_principal_names() {
    let g = Graph::start().await;
    let body = json!({"displayName": "train", "identifierUris": ["api://train"]});
    let app = g.send(Method::POST, "/applications", Some(body.clone()), &[]).await;
    assert_eq!(app.body["identifierUris"], json!(["api://train"]));
    let taken = g.send(Method::POST, "/applications", Some(body), &[]).await;
    assert_eq!((taken.status, taken.code()), (400, "Request_BadRequest"));
    let app_id = app.body["appId"].as_str().unwrap();
    let sp = g.send(Method::POST, "/servicePrincipals", Some(json!({"appId": app_id})), &[]).await;
    assert_eq!(sp.body["servicePrincipalNames"], json!([app_id, "api://train"]));
    let found = g.get("/servicePrincipals?$filter=servicePrincipalNames/any(c:c eq 'api://train')", &[]).await;
    assert_eq!(found.ids(), [sp.body["id"].as_str().unwrap()]);
    let by_uri = g.get("/applications?$filter=identifierUris/any(x:x eq 'api://train')", &[]).await;
    assert_eq!(by_uri.ids(), [app.body["id"].as_str().unwrap()]);

    let path = format!("/applications/{}", app.body["id"].as_str().unwrap());
    let renamed = json!({"identifierUris": ["api://train-2"]});
    assert_eq!(g.send(Method::PATCH, &path, Some(renamed), &[]).await.status, 204);
    let read = g.get(&format!("/servicePrincipals(appId='{app_id}')"), &[]).await;
    assert_eq!(read.body["servicePrincipalNames"], json!([app_id, "api://train-2"]));
    let bad = g.send(Method::PATCH, &path, Some(json!({"identifierUris": "api://x"})), &[]).await;
    assert_eq!(bad.status, 400);
    g.emu.shutdown().await;
}

#[tokio::test]
async fn keys_in_parentheses_address_objects() {
    let g = Graph::start().await;
    let id = g.user("$dana#1@contoso.com").await;
    let key = "/users('$dana%231@contoso.com')";
    let read = g.get(key, &[]).await;
    assert_eq!((read.status, read.body["id"].as_str()), (200, Some(id.as_str())), "{}", read.text);
    assert_eq!(g.send(Method::PATCH, key, Some(json!({"displayName": "Dana"})), &[]).await.status, 204);
    let groups =
        g.send(Method::POST, &format!("{key}/getMemberGroups"), Some(json!({"securityEnabledOnly": false})), &[]).await;
    assert_eq!((groups.status, groups.body["value"].clone()), (200, json!([])));
    assert_eq!(g.get(&format!("/users('{id}')"), &[]).await.body["displayName"], "Dana");
    assert_eq!(g.send(Method::DELETE, key, None, &[]).await.status, 204);
    assert_eq!(g.get(key, &[]).await.status, 404);
    assert_eq!(g.get("/users(nope)", &[]).await.status, 400, "a key must be quoted or a GUID");
    g.emu.shutdown().await;
}

/// The seed example of docs/emulator.md, as written there.
fn documented_seed() -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/emulator.md")).unwrap();
    let from = doc.find("## State and seed files").unwrap();
    let block = &doc[from..];
    let start = block.find("```yaml\n").unwrap() + "```yaml\n".len();
    block[start..start + block[start..].find("```").unwrap()].to_owned()
}

#[tokio::test]
async fn seeded_applications_keep_owners_and_identifier_uris() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.yaml");
    std::fs::write(&seed, documented_seed()).unwrap();
    let g = Graph::start_with(EmulatorConfig { seed_file: Some(seed), ..EmulatorConfig::default() }).await;
    let owners = g.get("/applications(appId='22222222-2222-2222-2222-222222222222')/owners", &[]).await;
    assert_eq!(owners.ids(), ["11111111-1111-1111-1111-111111111111"], "{}", owners.text);
    assert_eq!(owners.body["value"][0]["displayName"], "Bob");
    let sp = g.get("/servicePrincipals(appId='22222222-2222-2222-2222-222222222222')", &[]).await;
    assert_eq!(sp.body["servicePrincipalNames"], json!(["22222222-2222-2222-2222-222222222222", "api://deployer"]));
    g.emu.shutdown().await;
}
