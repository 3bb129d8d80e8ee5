use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::locate::byte_offset;
use super::*;
use crate::diagnostics::{Code, Diagnostics};
use crate::source::Sources;

const FULL: &str = "\
tenant: 72F988BF-86F1-41AF-91AB-2D7CD011DB47
cloud: public
subscriptions:
  prod: 11111111-2222-3333-4444-555555555555   # production
  dev: AAAAAAAA-2222-3333-4444-555555555555
vars:
  env: prod
  replicas: 3
  enabled: true
  teams: [fraud, risk]
  members: { fraud: [\"alice@contoso.com\"], risk: [] }
policies: [baseline]
owner: contoso-ml-prod
";

fn dir_with(yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(FILE_NAME), yaml).unwrap();
    dir
}

fn load_yaml(yaml: &str, overrides: &Overrides) -> (Settings, Diagnostics, Sources) {
    let dir = dir_with(yaml);
    let mut sources = Sources::default();
    let (settings, diags) = load(dir.path(), overrides, &mut sources);
    (settings, diags, sources)
}

fn codes(diags: &Diagnostics) -> Vec<Code> {
    diags.items.iter().map(|d| d.code).collect()
}

/// The underlined text of the single diagnostic.
fn underlined<'a>(diags: &Diagnostics, sources: &'a Sources) -> &'a str {
    assert_eq!(diags.items.len(), 1, "{diags:#?}");
    sources.text(diags.items[0].span().expect("a span"))
}

fn s(text: &str) -> VarValue {
    VarValue::Str(text.to_owned())
}

fn flags(vars: &[&str]) -> Overrides {
    Overrides { vars: vars.iter().map(|v| (*v).to_owned()).collect(), var_files: Vec::new() }
}

#[test]
fn absent_file_gives_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let mut sources = Sources::default();
    let (settings, diags) = load(dir.path(), &Overrides::default(), &mut sources);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(settings, Settings::default());
    assert_eq!(settings.cloud.endpoints().arm, "https://management.azure.com");
    assert!(sources.files.is_empty());
}

#[test]
fn empty_file_gives_defaults() {
    let (settings, diags, _) = load_yaml("# nothing yet\n", &Overrides::default());
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(settings.vars, BTreeMap::new());
    assert!(settings.file.is_some());
}

#[test]
fn full_file_is_read_and_normalized() {
    let (settings, diags, _) = load_yaml(FULL, &Overrides::default());
    assert!(diags.is_empty(), "{diags:#?}");
    assert_eq!(settings.tenant.as_deref(), Some("72f988bf-86f1-41af-91ab-2d7cd011db47"));
    assert_eq!(settings.cloud, CloudSetting::Public);
    assert_eq!(settings.subscriptions["dev"], "aaaaaaaa-2222-3333-4444-555555555555");
    assert_eq!(settings.policies, ["baseline"]);
    assert_eq!(settings.owner.as_deref(), Some("contoso-ml-prod"));
    assert_eq!(settings.vars["env"], s("prod"));
    assert_eq!(settings.vars["replicas"], VarValue::Int(3));
    assert_eq!(settings.vars["enabled"], VarValue::Bool(true));
    assert_eq!(settings.vars["teams"], VarValue::List(vec![s("fraud"), s("risk")]));
    assert_eq!(settings.vars["members"].to_string(), r#"{ "fraud" = ["alice@contoso.com"], "risk" = [] }"#);
}

#[test]
fn tenant_may_be_a_domain() {
    let (settings, diags, _) = load_yaml("tenant: Contoso.onmicrosoft.com\n", &Overrides::default());
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(settings.tenant.as_deref(), Some("contoso.onmicrosoft.com"));
}

#[test]
fn named_and_custom_clouds() {
    let (settings, diags, _) = load_yaml("cloud: USGovernment\n", &Overrides::default());
    assert!(diags.is_empty());
    assert_eq!(settings.cloud.endpoints().graph, "https://graph.microsoft.us");
    let yaml = "cloud:\n  arm: http://127.0.0.1:8443/\n  graph: https://graph.example.com\n  authority: http://localhost:9000\n";
    let (settings, diags, _) = load_yaml(yaml, &Overrides::default());
    assert!(diags.is_empty(), "{diags:#?}");
    assert_eq!(
        settings.cloud,
        CloudSetting::Custom {
            arm: "http://127.0.0.1:8443".to_owned(),
            graph: "https://graph.example.com".to_owned(),
            authority: "http://localhost:9000".to_owned(),
        }
    );
}

#[test]
fn e0020_syntax_error_points_at_line_and_column() {
    let (_, diags, sources) = load_yaml("owner: x\nvars:\n  env: [prod\n", &Overrides::default());
    assert_eq!(codes(&diags), [Code::E0020]);
    let span = diags.items[0].span().unwrap();
    assert!(sources.line_col(span.file, span.start).0 >= 3, "{:?}", sources.line_col(span.file, span.start));
    assert!(diags.items[0].message.starts_with("invalid YAML"), "{}", diags.items[0].message);
    assert!(!diags.items[0].message.contains("at line"), "{}", diags.items[0].message);
}

#[test]
fn e0020_tab_indentation_maps_to_the_exact_position() {
    let (_, diags, sources) = load_yaml("owner: a\n\tvars: 1\n", &Overrides::default());
    assert_eq!(codes(&diags), [Code::E0020]);
    let span = diags.items[0].span().unwrap();
    assert_eq!(sources.line_col(span.file, span.start).0, 2);
}

#[test]
fn e0020_duplicate_key() {
    let (_, diags, sources) = load_yaml("owner: a\nowner: b\n", &Overrides::default());
    assert_eq!(codes(&diags), [Code::E0020]);
    let span = diags.items[0].span().unwrap();
    assert_eq!(sources.line_col(span.file, span.start), (2, 1));
}

#[test]
fn e0020_wrong_type_underlines_the_value() {
    let (_, diags, sources) = load_yaml("owner: 42\n", &Overrides::default());
    assert_eq!(codes(&diags), [Code::E0020]);
    assert_eq!(underlined(&diags, &sources), "42");
    assert_eq!(diags.items[0].help.as_deref(), Some("quote it: \"42\""));
    let (_, diags, sources) = load_yaml("tenant: t.com\nsubscriptions: [a]\n", &Overrides::default());
    assert_eq!(codes(&diags), [Code::E0020]);
    assert_eq!(underlined(&diags, &sources), "subscriptions");
}

#[test]
fn e0020_floats_and_null_in_vars() {
    let yaml = "vars:\n  ratio: 0.5\n  nothing: ~\n  nested:\n    inner: [1, 2.5]\n";
    let (settings, diags, sources) = load_yaml(yaml, &Overrides::default());
    assert_eq!(codes(&diags), [Code::E0020, Code::E0020, Code::E0020]);
    let texts: Vec<&str> = diags.items.iter().map(|d| sources.text(d.span().unwrap())).collect();
    assert_eq!(texts, ["ratio", "nothing", "nested"]);
    assert!(diags.items[2].message.contains("`nested.inner[1]`"), "{}", diags.items[2].message);
    assert!(settings.vars.is_empty());
}

#[test]
fn e0021_unknown_key_suggests_closest() {
    let (_, diags, sources) = load_yaml("owner: a\nsubscription:\n  prod: x\n", &Overrides::default());
    assert_eq!(codes(&diags), [Code::E0021]);
    assert_eq!(underlined(&diags, &sources), "subscription");
    assert_eq!(diags.items[0].help.as_deref(), Some("did you mean `subscriptions`?"));
    let (_, diags, _) = load_yaml("xylophone: red\n", &Overrides::default());
    assert!(diags.items[0].help.as_deref().unwrap().starts_with("known keys:"));
}

#[test]
fn e0021_unknown_custom_cloud_key() {
    let yaml = "cloud:\n  arm: https://a.example\n  grpah: https://g.example\n  authority: https://l.example\n";
    let (settings, diags, sources) = load_yaml(yaml, &Overrides::default());
    assert_eq!(codes(&diags), [Code::E0021]);
    assert_eq!(underlined(&diags, &sources), "grpah");
    assert_eq!(diags.items[0].help.as_deref(), Some("did you mean `graph`?"));
    assert_eq!(settings.cloud, CloudSetting::Public);
}

#[test]
fn e0022_invalid_values() {
    let cases = [
        ("tenant: not a tenant\n", "not a tenant"),
        ("subscriptions:\n  prod: 1111-2222\n", "1111-2222"),
        ("subscriptions:\n  Prod: 11111111-2222-3333-4444-555555555555\n", "Prod"),
        ("owner: Contoso_ML\n", "Contoso_ML"),
        ("owner: ''\n", "''"),
        ("cloud: pubilc\n", "pubilc"),
        ("cloud: { arm: 'http://arm.example', graph: 'https://g', authority: 'https://l' }\n", "'http://arm.example'"),
        (
            "cloud:\n  arm: https://user:pw@a.example\n  graph: https://g\n  authority: https://l\n",
            // Shown with its credentials masked.
            "https://*******@a.example",
        ),
        ("cloud:\n  arm: https://a.example\n", "cloud"),
        ("vars:\n  Env: prod\n", "Env"),
        ("policies: [baseline, baseline]\n", "policies"),
    ];
    for (yaml, marked) in cases {
        let (_, diags, sources) = load_yaml(yaml, &Overrides::default());
        assert_eq!(codes(&diags), [Code::E0022], "{yaml}: {diags:#?}");
        assert_eq!(underlined(&diags, &sources), marked, "{yaml}");
    }
    let (_, diags, _) = load_yaml("cloud: pubilc\n", &Overrides::default());
    assert_eq!(diags.items[0].help.as_deref(), Some("did you mean `public`?"));
}

#[test]
fn owner_marker_bounds() {
    assert!(is_owner_marker("a"));
    assert!(is_owner_marker(&"a".repeat(64)));
    assert!(!is_owner_marker(&"a".repeat(65)));
    assert!(!is_owner_marker("a.b"));
}

#[test]
fn several_errors_in_one_run() {
    let (settings, diags, _) = load_yaml("owner: BAD\ntenant: nope\nextra: 1\n", &Overrides::default());
    assert_eq!(codes(&diags), [Code::E0022, Code::E0022, Code::E0021]);
    assert_eq!(settings.owner, None);
}

#[cfg(unix)]
#[test]
fn settings_file_may_not_link_outside() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.yaml"), "owner: x\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.yaml"), dir.path().join(FILE_NAME)).unwrap();
    let mut sources = Sources::default();
    let (settings, diags) = load(dir.path(), &Overrides::default(), &mut sources);
    assert_eq!(codes(&diags), [Code::E0004]);
    assert_eq!(settings.owner, None);
    assert!(sources.files.is_empty());
}

#[test]
fn var_flag_is_a_string_unless_a_collection() {
    let (settings, diags, _) =
        load_yaml("", &flags(&["env=prod", "count=3", "flag=true", "empty=", "eq=a=b", "list=[a, 1]", "map={k: v}"]));
    assert!(diags.is_empty(), "{diags:#?}");
    assert_eq!(settings.vars["env"], s("prod"));
    assert_eq!(settings.vars["count"], s("3"));
    assert_eq!(settings.vars["flag"], s("true"));
    assert_eq!(settings.vars["empty"], s(""));
    assert_eq!(settings.vars["eq"], s("a=b"));
    assert_eq!(settings.vars["list"], VarValue::List(vec![s("a"), VarValue::Int(1)]));
    assert_eq!(settings.vars["map"], VarValue::Map(BTreeMap::from([("k".to_owned(), s("v"))])));
}

#[test]
fn var_flag_takes_the_type_of_the_settings_value() {
    let (settings, diags, _) = load_yaml(FULL, &flags(&["replicas=5", "enabled=false", "env=[x]", "teams=[a]"]));
    assert!(diags.is_empty(), "{diags:#?}");
    assert_eq!(settings.vars["replicas"], VarValue::Int(5));
    assert_eq!(settings.vars["enabled"], VarValue::Bool(false));
    assert_eq!(settings.vars["env"], s("[x]"));
    assert_eq!(settings.vars["teams"], VarValue::List(vec![s("a")]));
}

#[test]
fn e0023_bad_var_flags() {
    let cases = ["noequals", "Bad=1", "=x", "replicas=many", "enabled=yes", "teams={a: 1}", "new=[unclosed", "f=[1.5]"];
    for flag in cases {
        let (settings, diags, _) = load_yaml(FULL, &flags(&[flag]));
        assert_eq!(codes(&diags), [Code::E0023], "{flag}: {diags:#?}");
        assert!(diags.items[0].span().is_none());
        assert_eq!(settings.vars.len(), 5, "{flag} left the variables alone");
    }
}

fn var_file(dir: &tempfile::TempDir, name: &str, yaml: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, yaml).unwrap();
    path
}

#[test]
fn precedence_yaml_then_files_in_order_then_flags_in_order() {
    let other = tempfile::tempdir().unwrap();
    let first = var_file(&other, "a.yaml", "env: from-a\nregion: from-a\nzone: from-a\n");
    let second = var_file(&other, "b.yaml", "region: from-b\nzone: from-b\n");
    let overrides =
        Overrides { vars: vec!["zone=flag-1".to_owned(), "zone=flag-2".to_owned()], var_files: vec![first, second] };
    let (settings, diags, _) = load_yaml("vars:\n  env: yaml\n  keep: yaml\n  members: {a: [x]}\n", &overrides);
    assert!(diags.is_empty(), "{diags:#?}");
    assert_eq!(settings.vars["keep"], s("yaml"));
    assert_eq!(settings.vars["env"], s("from-a"));
    assert_eq!(settings.vars["region"], s("from-b"));
    assert_eq!(settings.vars["zone"], s("flag-2"));
}

#[test]
fn later_source_replaces_a_map_whole() {
    let other = tempfile::tempdir().unwrap();
    let file = var_file(&other, "m.yaml", "members:\n  risk: [carol]\n");
    let overrides = Overrides { vars: Vec::new(), var_files: vec![file] };
    let (settings, _, _) = load_yaml("vars:\n  members: {fraud: [alice]}\n", &overrides);
    assert_eq!(settings.vars["members"].to_string(), r#"{ "risk" = ["carol"] }"#);
}

#[test]
fn e0024_var_file_problems() {
    let other = tempfile::tempdir().unwrap();
    let missing = other.path().join("missing.yaml");
    let list = var_file(&other, "list.yaml", "- a\n- b\n");
    let bad_name = var_file(&other, "name.yaml", "good: 1\nBad-Name: 2\n");
    for (path, underline) in [(missing, None), (list, Some("- a\n- b\n")), (bad_name, Some("Bad-Name"))] {
        let overrides = Overrides { vars: Vec::new(), var_files: vec![path.clone()] };
        let (_, diags, sources) = load_yaml("", &overrides);
        assert_eq!(codes(&diags), [Code::E0024], "{}: {diags:#?}", path.display());
        assert_eq!(diags.items[0].span().map(|s| sources.text(s)), underline);
    }
}

#[test]
fn var_file_syntax_error_points_into_that_file() {
    let other = tempfile::tempdir().unwrap();
    let file = var_file(&other, "v.yaml", "env: prod\nteams: [a\n");
    let overrides = Overrides { vars: Vec::new(), var_files: vec![file.clone()] };
    let (_, diags, sources) = load_yaml("owner: a\n", &overrides);
    assert_eq!(codes(&diags), [Code::E0020]);
    let span = diags.items[0].span().unwrap();
    assert_eq!(sources.get(span.file).path, file);
}

#[test]
fn span_of_finds_block_flow_and_quoted_keys() {
    let (settings, diags, sources) = load_yaml(FULL, &Overrides::default());
    assert!(diags.is_empty());
    let at =
        |path: &[&str]| settings.span_of(&sources, path).map(|s| (sources.text(s), sources.line_col(s.file, s.start)));
    assert_eq!(at(&["owner"]), Some(("owner", (13, 1))));
    assert_eq!(at(&["subscriptions", "dev"]), Some(("dev", (5, 3))));
    assert_eq!(at(&["vars", "members", "risk"]), Some(("risk", (11, 44))));
    assert_eq!(at(&["vars", "members", "pricing"]), None);
    assert_eq!(at(&["vars", "nope"]), None);
    let text = "vars:\n  a:\n    env: x\n  env: y\n  'quoted': z\n";
    let mut sources = Sources::default();
    let file = sources.add(FILE_NAME, PathBuf::new(), text);
    let settings = Settings { file: Some(file), ..Settings::default() };
    let line = |path: &[&str]| settings.span_of(&sources, path).map(|s| sources.line_col(file, s.start).0);
    assert_eq!(line(&["vars", "env"]), Some(4), "a direct child, not the nested one");
    assert_eq!(line(&["vars", "a", "env"]), Some(3));
    assert_eq!(line(&["vars", "quoted"]), Some(5));
}

#[test]
fn shipped_examples_load_cleanly() {
    for example in ["contoso-ml", "quickstart"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(example);
        let mut sources = Sources::default();
        let (settings, diags) = load(&dir, &Overrides::default(), &mut sources);
        assert!(diags.is_empty(), "{example}: {diags:#?}");
        assert!(settings.tenant.is_some() && settings.owner.is_some(), "{example}");
    }
}

#[test]
fn span_of_without_settings_file_is_none() {
    assert_eq!(Settings::default().span_of(&Sources::default(), &["owner"]), None);
}

#[test]
fn byte_offset_counts_characters() {
    let text = "a: é\nbé: [x\n";
    assert_eq!(byte_offset(text, 2, 1), 6);
    assert_eq!(&text[byte_offset(text, 2, 3)..=byte_offset(text, 2, 3)], ":");
    assert_eq!(byte_offset(text, 9, 1), text.len());
}

#[test]
fn limits_override_their_defaults_one_by_one() {
    let (settings, diags, _) =
        load_yaml("limits:\n  string_bytes: 4194304\n  objects: 500000\n", &Overrides::default());
    assert!(diags.items.is_empty(), "{diags:#?}");
    let expected =
        crate::limits::Limits { string_bytes: 4_194_304, objects: 500_000, ..crate::limits::Limits::default() };
    assert_eq!(settings.limits, expected);
    let (settings, diags, _) = load_yaml("tenant: contoso.com\n", &Overrides::default());
    assert!(diags.items.is_empty());
    assert_eq!(settings.limits, crate::limits::Limits::default());
}

#[test]
fn limits_refuse_unknown_keys_wrong_types_and_zero() {
    let (settings, diags, sources) = load_yaml("limits:\n  strng_bytes: 10\n", &Overrides::default());
    assert_eq!(codes(&diags), [Code::E0021]);
    assert_eq!(underlined(&diags, &sources), "strng_bytes");
    assert_eq!(diags.items[0].help.as_deref(), Some("did you mean `string_bytes`?"));
    assert_eq!(settings.limits, crate::limits::Limits::default());
    let (_, diags, sources) = load_yaml("limits:\n  objects: \"many\"\n", &Overrides::default());
    assert_eq!(codes(&diags), [Code::E0020]);
    assert_eq!(underlined(&diags, &sources), "\"many\"");
    for bad in ["0", "-5"] {
        let (settings, diags, sources) = load_yaml(&format!("limits:\n  objects: {bad}\n"), &Overrides::default());
        assert_eq!(codes(&diags), [Code::E0022], "{bad}");
        assert_eq!(underlined(&diags, &sources), bad);
        assert_eq!(settings.limits.objects, crate::limits::Limits::default().objects);
    }
    let (_, diags, _) = load_yaml("limits: 5\n", &Overrides::default());
    assert_eq!(codes(&diags), [Code::E0020]);
}

#[test]
fn yaml_tags_are_errors_at_the_tag() {
    for (yaml, tag) in [
        ("tenant: !!binary aGVsbG8=\n", "!!binary"),
        ("owner: !!python/object:os.system x\n", "!!python/object:os.system"),
        ("vars:\n  a: !!python/object/apply:os.system [\"ls\"]\n", "!!python/object/apply:os.system"),
        ("vars:\n  a: !!str x\n", "!!str"),
        ("vars: !!map\n  a: x\n", "!!map"),
        ("vars: { a: !custom x }\n", "!custom"),
        ("tenant: &t !<tag:yaml.org,2002:str> contoso.com\n", "!<tag:yaml.org,2002:str>"),
    ] {
        let (_, diags, sources) = load_yaml(yaml, &Overrides::default());
        // The value is then read without its tag (`aGVsbG8=` is no tenant: E0022 besides).
        let tags: Vec<_> = diags.items.iter().filter(|d| d.code == Code::E0020).collect();
        assert_eq!(tags.len(), 1, "{yaml}: {diags:#?}");
        let span = tags[0].span().unwrap();
        assert_eq!(sources.text(span), tag, "{yaml}");
        assert!(tags[0].message.contains("YAML tags are not supported"), "{yaml}");
        let line = 1 + yaml[..yaml.find(tag).unwrap()].matches('\n').count();
        assert_eq!(sources.line_col(span.file, span.start).0, line, "{yaml}");
    }
    // Tags in values that are not tags: text after `!` inside a scalar, quoted or not.
    let (settings, diags, _) = load_yaml("vars:\n  a: \"!!binary x\"\n  b: hello!world\n", &Overrides::default());
    assert!(diags.items.is_empty(), "{diags:#?}");
    assert_eq!(settings.vars["a"], s("!!binary x"));
    // In a `--vars` file and a `--var` flow value too.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("extra.yaml");
    std::fs::write(&file, "teams: !!python/tuple [a, b]\n").unwrap();
    let overrides = Overrides { vars: vec!["list=!!set [a]".into()], var_files: vec![file] };
    let (_, diags, _) = load_yaml("vars:\n  list: [x]\n", &overrides);
    assert_eq!(codes(&diags), [Code::E0020, Code::E0023], "{diags:#?}");
    assert!(diags.items.iter().all(|d| d.message.contains("YAML tags are not supported")), "{diags:#?}");
}

#[test]
fn credentials_in_urls_are_refused_and_never_shown() {
    let yaml = "tenant: contoso.com\ncloud:\n  arm: https://admin:hunter2@management.example.com\n  \
                graph: \"https://tok@en:p@ss@graph.example.com/\"\n  authority: https://login.example.com\n";
    let (_, diags, sources) = load_yaml(yaml, &Overrides::default());
    assert_eq!(codes(&diags), [Code::E0022, Code::E0022]);
    let shown = &sources.files.last().unwrap().text;
    assert_eq!(shown.len(), yaml.len(), "spans stay valid");
    for secret in ["admin", "hunter2", "tok@en", "p@ss", "ss@graph"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
        assert!(diags.items.iter().all(|d| !d.message.contains(secret) && !format!("{d:?}").contains(secret)));
    }
    assert!(shown.contains("https://*************@management.example.com"), "{shown}");
    assert!(shown.contains("\"https://***********@graph.example.com/\""), "{shown}");
    assert!(diags.items[0].message.contains("carries credentials"));
}
