//! JSON Schemas (draft 2020-12) of the JSON outputs, generated from the very types the
//! renderers serialise, so a schema cannot say what the output does not do. The files under
//! `docs/schema/` are these, byte for byte (a test checks it; `UPDATE_SCHEMAS=1` rewrites them).

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};

/// `(file name under docs/schema/, schema text)` of every JSON output: the plan
/// (`plan`/`show --format json`), findings (`validate`/`audit --format json`) and access
/// answers (`access --format json`). Pretty-printed, keys sorted, ending with a newline.
pub fn schemas() -> Vec<(&'static str, String)> {
    vec![
        ("plan.schema.json", text(&generate::<super::json::JsonPlan<'static>>())),
        ("findings.schema.json", text(&generate::<super::findings::JsonReport<'static>>())),
        ("access.schema.json", text(&generate::<super::access::JsonReport<'static>>())),
    ]
}

/// The schema of what `T` serialises to (serialisation contract: a key that is always written
/// is required, `null` included).
fn generate<T: JsonSchema>() -> Schema {
    SchemaSettings::draft2020_12().for_serialize().into_generator().into_root_schema_for::<T>()
}

fn text(schema: &Schema) -> String {
    // INVARIANT: a schema is a JSON value with string keys.
    let mut s = serde_json::to_string_pretty(&schema).expect("a schema serialises");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{access_json, findings_json, fixtures, json};

    fn validator(name: &str) -> jsonschema::Validator {
        let (_, text) = schemas().into_iter().find(|(n, _)| *n == name).unwrap();
        let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
        jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{name} compiles: {e}"))
    }

    fn assert_valid(v: &jsonschema::Validator, what: &str, text: &str) {
        let doc: serde_json::Value = serde_json::from_str(text).unwrap();
        let errors: Vec<String> = v.iter_errors(&doc).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "{what}: {errors:#?}");
    }

    #[test]
    fn every_fixture_plan_is_valid() {
        let v = validator("plan.schema.json");
        for (name, plan) in fixtures::all() {
            assert_valid(&v, name, &json(&plan));
        }
    }

    #[test]
    fn the_plan_schema_rejects_what_the_output_never_is() {
        let v = validator("plan.schema.json");
        let mut doc: serde_json::Value = serde_json::from_str(&json(&fixtures::cli_example())).unwrap();
        assert!(v.is_valid(&doc));
        doc["format_version"] = 2.into();
        assert!(!v.is_valid(&doc), "another version");
        doc["format_version"] = 1.into();
        doc["access_changes"][0]["change"] = "maybe".into();
        assert!(!v.is_valid(&doc), "an access change that is neither gain nor lose");
        doc["access_changes"][0]["change"] = "gain".into();
        doc["changes"][0].as_object_mut().unwrap().remove("reason");
        assert!(!v.is_valid(&doc), "a key that is always written, missing");
    }

    #[test]
    fn findings_and_access_outputs_are_valid() {
        let report = mlpolicy_lang::findings::Report {
            command: "audit".into(),
            config_dir: ".".into(),
            now: Some("2025-06-01T00:00:00Z".into()),
            findings: vec![mlpolicy_lang::findings::Finding {
                rule: "audit/orphaned-assignment".into(),
                level: mlpolicy_lang::findings::Level::Warn,
                message: "m".into(),
                subject: "s".into(),
                location: Some(mlpolicy_lang::findings::Location {
                    file: "main.mlp".into(),
                    line: 1,
                    column: 2,
                    end_line: 1,
                    end_column: 5,
                }),
                azure_id: None,
                also: vec![],
                properties: [("role".to_owned(), "Owner".to_owned())].into(),
            }],
            rules: vec![],
            examined: [("role assignments".to_owned(), 3)].into(),
        };
        assert_valid(&validator("findings.schema.json"), "findings", &findings_json(&report));
        let access = mlpolicy_engine::access::Report {
            query: "scope",
            subject: "workspace.fraud".into(),
            subject_kind: "workspace".into(),
            source: "configuration",
            at: None,
            entries: vec![],
        };
        assert_valid(&validator("access.schema.json"), "access", &access_json(&access));
    }

    #[test]
    fn schemas_are_deterministic_and_draft_2020_12() {
        let a = schemas();
        assert_eq!(a, schemas());
        for (name, text) in a {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["$schema"], "https://json-schema.org/draft/2020-12/schema", "{name}");
            assert!(v["title"].as_str().unwrap().starts_with("mlpolicy "), "{name}");
        }
    }
}
