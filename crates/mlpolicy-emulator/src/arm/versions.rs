//! The api-versions Azure's REST specifications publish for each operation group the emulator
//! serves, previews included (the `stable/` and `preview/` folders of
//! Azure/azure-rest-api-specs, cross-checked with Azure/azure-resource-manager-schemas; folders
//! the readme tags no longer list are kept, since ARM still answers them). Real ARM accepts
//! every one of them and answers any other with 400 `InvalidApiVersionParameter`.

/// `Microsoft.Resources/subscriptions`.
pub const SUBSCRIPTIONS: &[&str] = &["2022-12-01", "2021-01-01", "2020-01-01", "2016-06-01"];

/// `Microsoft.Resources/resourceGroups` (and the `operationresults` of their deletion).
pub const RESOURCE_GROUPS: &[&str] = &[
    "2025-04-01",
    "2025-03-01",
    "2024-11-01",
    "2024-07-01",
    "2024-03-01",
    "2023-07-01",
    "2022-09-01",
    "2021-04-01",
    "2021-04-01-preview",
    "2021-03-01-preview",
    "2021-01-01",
    "2020-10-01",
    "2020-08-01",
    "2020-06-01",
    "2019-10-01",
    "2019-08-01",
    "2019-07-01",
    "2019-05-10",
    "2019-05-01",
    "2019-03-01",
    "2018-05-01",
    "2018-02-01",
    "2017-05-10",
    "2016-09-01",
    "2016-07-01",
    "2016-02-01",
    "2015-11-01",
];

/// `Microsoft.ManagedIdentity/userAssignedIdentities`.
pub const IDENTITIES: &[&str] = &[
    "2026-05-31",
    "2026-04-30",
    "2025-05-31-preview",
    "2025-01-31-preview",
    "2024-11-30",
    "2023-07-31-preview",
    "2023-01-31",
    "2022-01-31-preview",
    "2021-09-30-preview",
    "2018-11-30",
    "2015-08-31-preview",
];

/// `Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials`.
pub const FEDERATED_CREDENTIALS: &[&str] = &[
    "2026-05-31",
    "2026-04-30",
    "2025-05-31-preview",
    "2025-01-31-preview",
    "2024-11-30",
    "2023-07-31-preview",
    "2023-01-31",
    "2022-01-31-preview",
];

/// `Microsoft.Authorization/roleAssignments`.
pub const ROLE_ASSIGNMENTS: &[&str] = &[
    "2026-08-01",
    "2022-04-01",
    "2022-03-01",
    "2022-01-01-preview",
    "2020-10-01-preview",
    "2020-08-01-preview",
    "2020-04-01-preview",
    "2020-03-01-preview",
    "2018-09-01-preview",
    "2018-01-01-preview",
    "2017-10-01-preview",
    "2015-07-01",
];

/// `Microsoft.Authorization/roleDefinitions`.
pub const ROLE_DEFINITIONS: &[&str] =
    &["2022-05-01-preview", "2022-04-01", "2022-03-01", "2018-01-01-preview", "2015-07-01"];

/// `Microsoft.MachineLearningServices/workspaces`.
pub const ML_WORKSPACES: &[&str] = &[
    "2026-07-15-preview",
    "2026-07-01",
    "2026-05-01",
    "2026-03-15-preview",
    "2026-03-01",
    "2026-01-15-preview",
    "2025-12-01",
    "2025-10-01-preview",
    "2025-09-01",
    "2025-07-01-preview",
    "2025-06-01",
    "2025-04-01-preview",
    "2025-04-01",
    "2025-01-01-preview",
    "2024-10-01-preview",
    "2024-10-01",
    "2024-07-01-preview",
    "2024-04-01-preview",
    "2024-04-01",
    "2024-01-01-preview",
    "2023-10-01",
    "2023-08-01-preview",
    "2023-06-01-preview",
    "2023-04-01-preview",
    "2023-04-01",
    "2023-02-01-preview",
    "2022-12-01-preview",
    "2022-10-01-preview",
    "2022-10-01",
    "2022-06-01-preview",
    "2022-05-01",
    "2022-02-01-preview",
    "2022-01-01-preview",
    "2021-07-01",
    "2021-04-01",
    "2021-03-01-preview",
    "2021-01-01",
    "2020-09-01-preview",
    "2020-08-01",
    "2020-06-01",
    "2020-05-15-preview",
    "2020-05-01-preview",
    "2020-04-01",
    "2020-03-01",
    "2020-02-18-preview",
    "2020-01-01",
    "2019-11-01",
    "2019-06-01",
    "2019-05-01",
    "2018-11-19",
    "2018-03-01-preview",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_hold_what_the_specs_publish_and_nothing_twice() {
        for (name, list, count) in [
            ("resource groups", RESOURCE_GROUPS, 27),
            ("identities", IDENTITIES, 11),
            ("federated credentials", FEDERATED_CREDENTIALS, 8),
            ("role assignments", ROLE_ASSIGNMENTS, 12),
            ("role definitions", ROLE_DEFINITIONS, 5),
            ("ML workspaces", ML_WORKSPACES, 51),
        ] {
            assert_eq!(list.len(), count, "{name}");
            let mut sorted = list.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), list.len(), "{name} has a duplicate");
        }
        assert!(ROLE_ASSIGNMENTS.contains(&"2018-01-01-preview"));
        assert!(!FEDERATED_CREDENTIALS.contains(&"2018-11-30"), "FICs did not exist in 2018-11-30");
    }
}
