//! The fuzzing entry points, one per kind of untrusted input mlpolicy reads: `.mlp` source,
//! `mlpolicy.yaml` (with `--var`), saved plan files, the emulator's seed and state files and
//! realism bodies, and the bodies of Azure's answers. Each takes arbitrary bytes, runs them
//! through the real code path, and panics only when an invariant fails (a formatted file that
//! no longer parses, a saved state that does not read back, a plan that does not survive its
//! own file format). The cargo-fuzz targets in `fuzz/` call these, and so do the bounded
//! stable runs in `crates/mlpolicy/tests/fuzz.rs` (docs/fuzzing.md).

use std::path::{Path, PathBuf};

use mlpolicy_lang::diagnostics::{RenderOptions, render_all};
use mlpolicy_lang::settings::Overrides;
use mlpolicy_lang::source::Sources;

/// The targets, by name: the names of `fuzz/fuzz_targets/*.rs` and of `fuzz/corpus/*`.
pub const TARGETS: [&str; 5] = ["parser", "settings", "saved_plan", "emulator_state", "azure_response"];

fn render(diags: &mlpolicy_lang::diagnostics::Diagnostics, sources: &Sources) -> String {
    render_all(diags, sources, RenderOptions { color: false, width: 100 })
}

/// `.mlp` source: parse, render the diagnostics; when it parses cleanly, format it and check
/// that the result parses cleanly and formats to itself.
pub fn parser(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut sources = Sources::default();
    let id = sources.add("fuzz.mlp", PathBuf::from("fuzz.mlp"), text.as_ref());
    let (file, diags) = mlpolicy_lang::syntax::parse(id, &text);
    let _ = render(&diags, &sources);
    if diags.has_errors() {
        return;
    }
    let formatted = mlpolicy_lang::fmt::format(&file, &text);
    let again = sources.add("formatted.mlp", PathBuf::from("formatted.mlp"), formatted.as_str());
    let (file2, diags2) = mlpolicy_lang::syntax::parse(again, &formatted);
    assert!(
        !diags2.has_errors(),
        "formatting made a clean file unparsable:\n--- input\n{text}\n--- formatted\n{formatted}\n--- errors\n{}",
        render(&diags2, &sources)
    );
    let twice = mlpolicy_lang::fmt::format(&file2, &formatted);
    assert_eq!(formatted, twice, "formatting is not idempotent on:\n{text}");
}

/// `mlpolicy.yaml` in `dir` (overwritten with `data`), and the first line of `data` as a
/// `--var`: load, apply the override, render the diagnostics.
pub fn settings(dir: &Path, data: &[u8]) {
    if std::fs::write(dir.join(mlpolicy_lang::settings::FILE_NAME), data).is_err() {
        return;
    }
    let first_line = String::from_utf8_lossy(data.split(|b| *b == b'\n').next().unwrap_or_default()).into_owned();
    for overrides in [Overrides::default(), Overrides { vars: vec![first_line], var_files: Vec::new() }] {
        let mut sources = Sources::default();
        let (_, diags) = mlpolicy_lang::settings::load(dir, &overrides, &mut sources);
        let _ = render(&diags, &sources);
    }
}

/// A saved plan file: read it as is; then, so that mutations reach past the integrity check,
/// with its integrity recomputed. A plan that reads is rendered in every format and must
/// survive its own file format unchanged.
pub fn saved_plan(data: &[u8]) {
    use mlpolicy_engine::plan::SavedPlan;
    let text = String::from_utf8_lossy(data);
    let mut candidates = vec![text.to_string()];
    if let Ok(mut file) = serde_json::from_str::<serde_json::Value>(&text)
        && let Some(content) = file.get("content")
    {
        use sha2::Digest as _;
        let bytes = serde_json::to_vec(content).unwrap_or_default();
        file["integrity"] = serde_json::Value::String(hex::encode(sha2::Sha256::digest(&bytes)));
        candidates.push(file.to_string());
    }
    for candidate in candidates {
        let Ok(plan) = SavedPlan::from_file_text(&candidate) else { continue };
        let _ = crate::render::text(&plan.plan, &crate::render::Style { color: false, width: 100 });
        let _ = crate::render::markdown(&plan.plan);
        let _ = crate::render::json(&plan.plan);
        let back = SavedPlan::from_file_text(&plan.to_file_text());
        assert_eq!(back.as_ref().ok(), Some(&plan), "a saved plan does not read back: {back:?}");
    }
}

/// An emulator seed or state file, and a realism body: a tenant that reads must normalise,
/// save, and read back equal (else the emulator could write a state it cannot restart from).
pub fn emulator_state(data: &[u8]) {
    use mlpolicy_emulator::Tenant;
    let _ = mlpolicy_emulator::parse_realism(data);
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(mut tenant) = Tenant::from_yaml(text, "fuzz.yaml") else { return };
    tenant.normalize();
    let saved = tenant.to_yaml();
    match Tenant::from_yaml(&saved, "saved.yaml") {
        Ok(back) => assert!(back == tenant, "a saved state reads back different:\n{saved}"),
        Err(e) => panic!("a saved state does not read back: {e}\n--- input\n{text}\n--- saved\n{saved}"),
    }
}

/// A body as Azure might answer it: the error envelope (ARM and Graph), a 409's existing
/// assignment id, a token's claims, and every resource and directory type the client decodes.
pub fn azure_response(data: &[u8]) {
    use mlpolicy_azure as az;
    fn decode<T: serde::de::DeserializeOwned + serde::Serialize>(data: &[u8]) -> Option<T> {
        let value: T = serde_json::from_slice(data).ok()?;
        let _ = serde_json::to_string(&value);
        Some(value)
    }
    for status in [400, 404, 409, 429] {
        let err = az::AzureError::from_response("fuzz", status, data, None, None);
        let _ = err.existing_role_assignment_name();
        let _ = err.to_string();
    }
    let text = String::from_utf8_lossy(data);
    let _ = az::parse_existing_assignment_id(&text);
    let _ = az::token_object_id(&text);
    let _ = decode::<az::ResourceGroup>(data);
    let _ = decode::<az::Workspace>(data);
    let _ = decode::<az::UserAssignedIdentity>(data);
    let _ = decode::<az::FederatedCredential>(data);
    let _ = decode::<az::RoleDefinition>(data);
    if let Some(r) = decode::<az::RoleAssignment>(data) {
        let _ = r.role_guid();
    }
    if let Some(o) = decode::<az::DirectoryObject>(data) {
        let _ = o.kind();
    }
    let _ = decode::<az::Group>(data);
    let _ = decode::<az::User>(data);
    let _ = decode::<az::ServicePrincipal>(data);
    let _ = decode::<az::Application>(data);
    let _ = decode::<az::Subscription>(data);
    let _ = serde_json::from_slice::<az::BatchResponse>(data);
}
