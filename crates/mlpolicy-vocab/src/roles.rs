//! Azure's built-in role definitions that mlpolicy knows by name without reading the tenant.
//! Built-in role GUIDs are the same in every tenant. Here names match exactly, as the
//! configuration spells them; the live catalogue read at plan time (where custom roles
//! resolve too) matches without regard to case, as ARM's `roleName eq '…'` filter does.

/// `(role name, role definition GUID)` for the built-in roles ML platforms use.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("Owner", "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"),
    ("Contributor", "b24988ac-6180-42a0-ab88-20f7382dd24c"),
    ("Reader", "acdd72a7-3385-48ef-bd42-f606fba81ae7"),
    ("User Access Administrator", "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"),
    ("Role Based Access Control Administrator", "f58310d9-a9f6-439a-9e8d-f62e7b41a168"),
    ("AzureML Data Scientist", "f6c7c914-8db3-469d-8ca1-694a8f32e121"),
    ("AzureML Compute Operator", "e503ece1-11d0-4e8e-8e2c-7a6c3bf38815"),
    ("AzureML Registry User", "1823dd4f-9b8c-4ab6-ab4e-7397a3684615"),
    ("AzureML Metrics Writer (preview)", "635dd51f-9968-44d3-b7fb-6d9a6bd613ae"),
    ("Storage Blob Data Reader", "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"),
    ("Storage Blob Data Contributor", "ba92f5b4-2d11-453d-a403-e96b0029c9fe"),
    ("Storage Blob Data Owner", "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"),
    ("Key Vault Secrets User", "4633458b-17de-408a-b874-0445c86b69e6"),
    ("Key Vault Secrets Officer", "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"),
    ("AcrPull", "7f951dda-4ed3-4680-a7ca-43fe172d538d"),
    ("AcrPush", "8311e382-0749-4cb8-b61a-304f252e45ec"),
    ("Managed Identity Operator", "f1a07417-d97a-45cb-824c-7a7467783830"),
];

/// The GUID of a built-in role, by exact name.
pub fn built_in_id(name: &str) -> Option<&'static str> {
    BUILT_IN.iter().find(|(n, _)| *n == name).map(|(_, id)| *id)
}

/// The name of a built-in role, by GUID (case-insensitive).
pub fn built_in_name(id: &str) -> Option<&'static str> {
    BUILT_IN.iter().find(|(_, g)| g.eq_ignore_ascii_case(id)).map(|(n, _)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_both_ways() {
        assert_eq!(built_in_id("AzureML Data Scientist"), Some("f6c7c914-8db3-469d-8ca1-694a8f32e121"));
        assert_eq!(built_in_name("ACDD72A7-3385-48EF-BD42-F606FBA81AE7"), Some("Reader"));
        assert_eq!(built_in_id("azureml data scientist"), None);
    }
}
