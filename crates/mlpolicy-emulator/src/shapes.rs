//! What real Azure does to the shape of its answers that a client must not depend on, as
//! realism switches (both on in `--profile azure`):
//!
//! - **Id re-casing** (`recase_ids`): ARM echoes resource ids in another casing than they were
//!   sent in: `resourcegroups` for `resourceGroups`, lower-case provider namespaces and resource
//!   types (a recorded workspace names its key vault `Microsoft.Keyvault/vaults` and its
//!   Application Insights `Microsoft.insights/components`). Each id gets one variant, chosen by
//!   a hash of the id and the seed, so answers are stable for a run and reproducible under
//!   `--seed`.
//! - **Key order** (`shuffle_keys`): JSON object keys come in no fixed order (a recorded role
//!   definition starts with `properties`, a role assignment with `id`).

use serde_json::Value;

use crate::realism::Realism;
use crate::{Reply, ReplyBody, Surface};

/// Applies the switches that are on to an answer of `surface`.
pub(crate) fn apply(realism: &Realism, draw: u64, surface: Surface, mut reply: Reply) -> Reply {
    if !matches!(surface, Surface::Arm | Surface::Graph) {
        return reply;
    }
    let seed = realism.seed.unwrap_or(0);
    if let ReplyBody::Json(v) = &mut reply.body {
        if realism.recase_ids && surface == Surface::Arm {
            recase_ids(v, seed);
        }
        if realism.shuffle_keys {
            reply.key_order = Some(draw);
        }
    }
    reply
}

/// FNV-1a: a stable hash (std's `DefaultHasher` may change between Rust releases).
fn fnv(seed: u64, text: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64 ^ seed;
    for b in text.bytes() {
        h ^= u64::from(b.to_ascii_lowercase());
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Whether a string is an ARM resource id (not a URL, not a bare GUID).
fn is_resource_id(s: &str) -> bool {
    s.len() > 15 && s.get(..15).is_some_and(|p| p.eq_ignore_ascii_case("/subscriptions/"))
}

/// The casing ARM echoes `id` in: by the id's hash, `resourcegroups` in lower case, provider
/// namespaces in lower case (`microsoft.managedidentity`), resource types in lower case, or as
/// sent; names (of groups, resources) keep their case.
pub(crate) fn recase(id: &str, seed: u64) -> String {
    let h = fnv(seed, id);
    let segs: Vec<&str> = id.split('/').collect();
    let mut out: Vec<String> = Vec::with_capacity(segs.len());
    let mut i = 0;
    while i < segs.len() {
        let s = segs[i];
        let lower_rg = s.eq_ignore_ascii_case("resourceGroups") && h & 1 == 1;
        out.push(if lower_rg { "resourcegroups".to_owned() } else { s.to_owned() });
        if s.eq_ignore_ascii_case("providers") && i + 2 < segs.len() {
            let ns = segs[i + 1];
            let kind = segs[i + 2];
            out.push(if h & 2 == 2 { ns.to_ascii_lowercase() } else { ns.to_owned() });
            out.push(if h & 4 == 4 { kind.to_ascii_lowercase() } else { kind.to_owned() });
            i += 3;
            continue;
        }
        i += 1;
    }
    out.join("/")
}

/// Re-cases every ARM id in a document: string values and object keys (the ids keying
/// `userAssignedIdentities`).
pub(crate) fn recase_ids(v: &mut Value, seed: u64) {
    match v {
        Value::String(s) if is_resource_id(s) => *s = recase(s, seed),
        Value::Array(items) => items.iter_mut().for_each(|x| recase_ids(x, seed)),
        Value::Object(m) => {
            let keys: Vec<String> = m.keys().filter(|k| is_resource_id(k)).cloned().collect();
            for k in keys {
                if let Some(inner) = m.remove(&k) {
                    m.insert(recase(&k, seed), inner);
                }
            }
            m.values_mut().for_each(|x| recase_ids(x, seed));
        }
        _ => {}
    }
}

/// Serialises `v` with every object's keys in an order drawn from `draw`.
pub(crate) fn to_string_shuffled(v: &Value, draw: u64) -> String {
    let mut out = String::new();
    write_shuffled(v, draw, &mut out);
    out
}

fn write_shuffled(v: &Value, draw: u64, out: &mut String) {
    match v {
        Value::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_shuffled(x, draw, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by_key(|k| fnv(draw, k));
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_shuffled(&m[k], draw, out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ids_are_recased_stably_and_names_keep_their_case() {
        let id = "/subscriptions/s/resourceGroups/RG-ML/providers/Microsoft.KeyVault/vaults/KV-One";
        let variants: std::collections::BTreeSet<String> = (0..64).map(|seed| recase(id, seed)).collect();
        assert!(variants.len() > 1, "some seeds re-case: {variants:?}");
        for v in &variants {
            assert!(v.eq_ignore_ascii_case(id), "{v}");
            assert!(v.contains("/RG-ML/") && v.ends_with("/KV-One"), "{v}");
        }
        assert_eq!(recase(id, 7), recase(id, 7), "the same id and seed give the same casing");
    }

    #[test]
    fn documents_are_recased_in_values_and_keys_only_where_ids_are() {
        let mut doc = json!({
            "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u",
            "nextLink": "https://management.azure.com/subscriptions/s/resourceGroups/rg?x=1",
            "identity": {"userAssignedIdentities": {"/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u": {}}},
        });
        let before = doc.clone();
        let seed =
            (0..64).find(|&s| recase(before["id"].as_str().unwrap(), s) != before["id"].as_str().unwrap()).unwrap();
        recase_ids(&mut doc, seed);
        assert_ne!(doc["id"], before["id"]);
        assert_eq!(doc["nextLink"], before["nextLink"], "URLs are not ids");
        let key = doc["identity"]["userAssignedIdentities"].as_object().unwrap().keys().next().unwrap().clone();
        assert_eq!(key, doc["id"].as_str().unwrap(), "a key re-cases as the same id does");
    }

    #[test]
    fn shuffled_documents_parse_back_equal() {
        let doc = json!({"a": 1, "b": [ {"x": null, "y": "z\"q"} ], "c": {"d": true, "e": 1.5}, "f": "g"});
        let orders: std::collections::BTreeSet<String> = (0..16).map(|d| to_string_shuffled(&doc, d)).collect();
        assert!(orders.len() > 1, "key order varies");
        for text in orders {
            assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), doc);
        }
    }
}
