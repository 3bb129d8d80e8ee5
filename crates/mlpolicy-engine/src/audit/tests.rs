use std::sync::Arc;

use super::*;
use crate::live::{PrincipalInfo, PrincipalKind};
use crate::lower::PrincipalRef;
use mlpolicy_azure::{
    PasswordCredential, RoleAssignmentProperties, RoleCatalog, RoleDefinition, RoleDefinitionProperties,
};
use mlpolicy_lang::diagnostics::Code;

const SUB: &str = "11111111-1111-1111-1111-111111111111";
const NOW: &str = "2025-06-01T00:00:00Z";

fn ws() -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg-ml/providers/Microsoft.MachineLearningServices/workspaces/mlw")
}

fn storage() -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg-ml/providers/Microsoft.Storage/storageAccounts/stml")
}

const MAIN: &str = r#"
resource_group ml {
  subscription = sub.prod
  name         = "rg-ml"
  location     = "westeurope"
}

workspace main {
  resource_group  = resource_group.ml
  name            = "mlw"
  storage_account = "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg-ml/providers/Microsoft.Storage/storageAccounts/stml"
  key_vault       = "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/rg-ml/providers/Microsoft.KeyVault/vaults/kvml"
}

group ds {
  name    = "ml-ds"
  members = [user("alice@contoso.com")]
  owners  = [user("alice@contoso.com")]
}

grant "AzureML Data Scientist" to group.ds on workspace.main

grant "AzureML Data Scientist" to service_principal("scoring") on workspace.main {
  allow no_client_secrets because "legacy"
}
"#;

struct Fixture {
    dir: tempfile::TempDir,
    compiled: Compiled,
    state: AuditState,
}

fn catalog() -> Arc<RoleCatalog> {
    Arc::new(RoleCatalog::new(
        mlpolicy_vocab::roles::BUILT_IN
            .iter()
            .map(|(name, guid)| RoleDefinition {
                id: format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{guid}"),
                name: (*guid).to_owned(),
                properties: RoleDefinitionProperties { role_name: (*name).to_owned(), ..Default::default() },
            })
            .collect(),
    ))
}

fn principal(id: &str, kind: PrincipalKind, display: &str, app_id: Option<&str>) -> PrincipalInfo {
    PrincipalInfo { id: id.into(), kind, display: display.into(), app_id: app_id.map(str::to_owned) }
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.mlp"), MAIN).unwrap();
    std::fs::write(dir.path().join("mlpolicy.yaml"), format!("subscriptions:\n  prod: {SUB}\npolicies: [baseline]\n"))
        .unwrap();
    let compiled = mlpolicy_lang::compile(dir.path(), &mlpolicy_lang::settings::Overrides::default());
    assert!(!compiled.has_errors(), "{:?}", compiled.diagnostics);
    let desired = crate::lower::lower(&compiled.model, "mlpolicy");
    let mut live = LiveState::default();
    live.owner = "mlpolicy".into();
    live.roles.insert(SUB.into(), catalog());
    for r in crate::live::principal_refs(&desired) {
        let id = match &r {
            PrincipalRef::Group { .. } => "g-ds",
            PrincipalRef::ServicePrincipal { .. } => "sp-scoring",
            _ => continue,
        };
        live.resolved.insert(r, Some(id.into()));
    }
    live.principals.insert("g-ds".into(), principal("g-ds", PrincipalKind::Group, "ml-ds", None));
    live.principals.insert(
        "sp-scoring".into(),
        principal("sp-scoring", PrincipalKind::ServicePrincipal, "scoring", Some("APP-1")),
    );
    live.principals
        .insert("u-mallory".into(), principal("u-mallory", PrincipalKind::User, "mallory@contoso.com", None));
    let scopes = audit_scopes(&desired);
    let mut state = AuditState { desired, live, scopes, ..AuditState::default() };
    assign(&mut state, "ra-ds", &ws(), "AzureML Data Scientist", "g-ds", "Managed by mlpolicy [mlpolicy:mlpolicy]");
    assign(
        &mut state,
        "ra-sp",
        &ws(),
        "AzureML Data Scientist",
        "sp-scoring",
        "Managed by mlpolicy [mlpolicy:mlpolicy]",
    );
    Fixture { dir, compiled, state }
}

fn assign(state: &mut AuditState, name: &str, scope: &str, role: &str, principal: &str, description: &str) {
    let guid = mlpolicy_vocab::roles::built_in_id(role).unwrap();
    let id = format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}");
    state.live.role_assignments.insert(
        canonical(&id),
        azure::RoleAssignment {
            id,
            name: name.into(),
            properties: RoleAssignmentProperties {
                role_definition_id: format!(
                    "/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{guid}"
                ),
                principal_id: principal.into(),
                principal_type: Some("User".into()),
                scope: scope.into(),
                description: Some(description.into()),
                ..Default::default()
            },
        },
    );
}

fn secret(name: &str, end: &str) -> PasswordCredential {
    PasswordCredential {
        key_id: Some(format!("key-{name}")),
        display_name: Some(name.into()),
        end_date_time: Some(end.into()),
        ..Default::default()
    }
}

fn run(f: &Fixture) -> Report {
    let options = AuditOptions { now: parse_rfc3339(NOW).unwrap(), expiring_within: DEFAULT_WINDOW };
    let (report, diags) = evaluate(&f.compiled, &f.state, &options, ".");
    assert!(diags.is_empty(), "{diags:?}");
    report
}

fn rules(r: &Report) -> Vec<&str> {
    r.findings.iter().map(|f| f.rule.as_str()).collect()
}

#[test]
fn a_compliant_estate_has_no_findings() {
    let f = fixture();
    let r = run(&f);
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert_eq!(r.examined.get("role assignments"), Some(&2));
}

#[test]
fn a_portal_owner_is_one_finding_under_the_most_specific_rule() {
    let mut f = fixture();
    assign(&mut f.state, "ra-owner", &ws(), "Owner", "u-mallory", "");
    let r = run(&f);
    assert_eq!(rules(&r), ["baseline/no_standing_admin"]);
    let finding = &r.findings[0];
    assert_eq!(finding.level, Level::Deny);
    assert_eq!(finding.also, ["baseline/grants_to_groups", UNEXPLAINED]);
    assert!(finding.location.is_none());
    assert!(finding.azure_id.as_deref().unwrap().ends_with("/roleAssignments/ra-owner"));
    assert!(finding.message.contains("Owner → mallory@contoso.com @ mlw"), "{}", finding.message);
    assert_eq!(r.denied(), 1);
}

#[test]
fn an_undeclared_narrow_grant_to_a_user_is_unexplained_access() {
    let mut f = fixture();
    assign(&mut f.state, "ra-reader", &storage(), "Storage Blob Data Reader", "u-mallory", "");
    let r = run(&f);
    assert_eq!(rules(&r), ["baseline/grants_to_groups"]);
    assert_eq!(r.findings[0].also, [UNEXPLAINED]);
    // A group that the configuration does not grant to: only unexplained.
    f.state.live.principals.insert("g-other".into(), principal("g-other", PrincipalKind::Group, "other", None));
    assign(&mut f.state, "ra-other", &ws(), "Reader", "g-other", "");
    let r = run(&f);
    assert_eq!(rules(&r), [UNEXPLAINED, "baseline/grants_to_groups"]);
    assert!(r.findings[0].message.contains("Reader → other @ mlw is not in the configuration"));
}

#[test]
fn an_orphaned_assignment_is_a_warning_and_nothing_else() {
    let mut f = fixture();
    assign(&mut f.state, "ra-orphan", &storage(), "Owner", "dead", "");
    f.state.deleted.insert("dead".into());
    f.state
        .live
        .principals
        .insert("dead".into(), principal("dead", PrincipalKind::Unknown, "unknown principal dead", None));
    let r = run(&f);
    assert_eq!(rules(&r), [ORPHANED]);
    assert_eq!(r.findings[0].level, Level::Warn);
    assert_eq!(r.findings[0].also, ["baseline/no_standing_admin"]);
    assert_eq!(r.denied(), 0);
}

#[test]
fn waivers_hold_for_the_live_object_and_lapse_without_them() {
    let mut f = fixture();
    let r = run(&f);
    assert!(r.findings.is_empty());
    // Without the waiver the same live grant warns, pointing at its declaration.
    let grant = f.compiled.model.grants.values_mut().find(|g| !g.meta.waivers.is_empty()).unwrap();
    grant.meta.waivers.clear();
    let r = run(&f);
    assert_eq!(rules(&r), ["baseline/no_client_secrets"]);
    assert_eq!(r.findings[0].level, Level::Warn);
    let loc = r.findings[0].location.as_ref().unwrap();
    assert_eq!((loc.file.as_str(), loc.line), ("main.mlp", 23));
    assert!(r.findings[0].subject.starts_with("grant"), "{}", r.findings[0].subject);
}

#[test]
fn secrets_of_apps_holding_roles_are_judged_against_now() {
    let mut f = fixture();
    f.state.applications.insert(
        "app-1".into(),
        azure::Application {
            id: "obj-1".into(),
            app_id: Some("APP-1".into()),
            display_name: Some("scoring".into()),
            password_credentials: vec![
                secret("old", "2025-05-01T00:00:00Z"),
                secret("soon", "2025-06-11T00:00:00.0000000Z"),
                secret("later", "2025-08-01T00:00:00Z"),
                secret("edge", NOW),
            ],
        },
    );
    f.state.applications.insert(
        "app-2".into(),
        azure::Application {
            id: "obj-2".into(),
            app_id: Some("APP-2".into()),
            display_name: Some("unrelated".into()),
            password_credentials: vec![secret("stale", "2020-01-01T00:00:00Z")],
        },
    );
    let r = run(&f);
    assert_eq!(rules(&r), [EXPIRED, EXPIRED, EXPIRING]);
    let soon = &r.findings[2];
    assert!(soon.message.contains("expires on 2025-06-11T00:00:00Z (in 10 days)"), "{}", soon.message);
    assert!(soon.message.contains("AzureML Data Scientist @ mlw"), "{}", soon.message);
    assert_eq!(soon.properties["key_id"], "key-soon");
    assert_eq!(soon.azure_id.as_deref(), Some("/applications/obj-1"));
    assert!(r.findings.iter().any(|x| x.message.contains("`old`") && x.message.contains("(31 days ago)")));
    assert_eq!(r.examined.get("applications"), Some(&1));
    // A shorter window leaves the secret expiring in 10 days out.
    let options = AuditOptions { now: parse_rfc3339(NOW).unwrap(), expiring_within: Duration::from_secs(7 * 86_400) };
    let (r, _) = evaluate(&f.compiled, &f.state, &options, ".");
    assert_eq!(rules(&r), [EXPIRED, EXPIRED]);
}

#[test]
fn scope_kinds_follow_the_resource_type() {
    assert_eq!(scope_kind(&format!("/subscriptions/{SUB}")), "subscription");
    assert_eq!(scope_kind(&format!("/subscriptions/{SUB}/resourceGroups/rg")), "resource_group");
    assert_eq!(scope_kind(&ws()), "workspace");
    assert_eq!(scope_kind(&storage().to_ascii_lowercase()), "storage_account");
    assert_eq!(scope_kind(&format!("{}/blobServices/default", storage())), "resource");
}

#[test]
fn attached_resources_are_audit_scopes() {
    let f = fixture();
    assert!(f.state.scopes.contains(&canonical(&storage())));
    assert!(f.state.scopes.contains(&canonical(&ws())));
}

#[test]
fn a_condition_that_is_not_a_bool_is_w0402_for_live_objects_too() {
    let mut f = fixture();
    std::fs::write(f.dir.path().join("odd.mlp"), "policy odd {\n  warn grant when role\n}\n").unwrap();
    f.compiled = mlpolicy_lang::compile(f.dir.path(), &mlpolicy_lang::settings::Overrides::default());
    assert!(!f.compiled.has_errors(), "{:?}", f.compiled.diagnostics);
    // A portal grant no declaration explains: only the audit sees it.
    assign(&mut f.state, "ra-reader", &storage(), "Storage Blob Data Reader", "u-mallory", "");
    let options = AuditOptions { now: parse_rfc3339(NOW).unwrap(), expiring_within: DEFAULT_WINDOW };
    let (report, diags) = evaluate(&f.compiled, &f.state, &options, ".");
    let w0402: Vec<&str> = diags.items.iter().filter(|d| d.code == Code::W0402).map(|d| d.message.as_str()).collect();
    assert!(
        w0402.contains(&"policy `odd` yields a string for `role assignment Storage Blob Data Reader → mallory@contoso.com @ stml`, not a bool"),
        "{w0402:#?}"
    );
    assert_eq!(w0402.len(), 3, "one per live grant: {w0402:#?}");
    assert!(!rules(&report).contains(&"odd"), "{:?}", rules(&report));
}
