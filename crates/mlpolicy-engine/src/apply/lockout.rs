//! The self-lock-out rail (E0702).

use std::collections::BTreeSet;

use super::schedule::contains;
use crate::plan::{Action, Change, ObjectKind};
use mlpolicy_azure::{AzureClient, AzureError};
use mlpolicy_lang::diagnostics::{Code, Diagnostic};
use mlpolicy_vocab::arm::canonical;

/// Roles that let a principal manage access (Owner, User Access Administrator, Role Based
/// Access Control Administrator), by definition GUID.
pub const ACCESS_ADMIN_ROLES: [&str; 3] = [
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
];

/// Refuses to delete the running principal's last role assignment that lets it manage access
/// at a scope (E0702). Assignments at or above the scope that survive the plan count as kept.
pub async fn check_self_lockout(
    changes: &[Change],
    client: &AzureClient,
    principal: &str,
) -> Result<(), Box<Diagnostic>> {
    let deleted: BTreeSet<String> = changes
        .iter()
        .filter(|c| c.kind == ObjectKind::RoleAssignment && c.action == Action::Delete)
        .map(|c| canonical(&c.azure_id))
        .collect();
    let fail = |e: &AzureError| {
        Box::new(
            Diagnostic::error(Code::E0702, format!("cannot check for self-lock-out: {e}"))
                .with_help("apply refuses to remove access-managing role assignments it cannot check"),
        )
    };
    let admin = |guid: &str| ACCESS_ADMIN_ROLES.iter().any(|g| g.eq_ignore_ascii_case(guid));
    let mut locked = Vec::new();
    for c in changes.iter().filter(|c| c.kind == ObjectKind::RoleAssignment && c.action == Action::Delete) {
        let Some(a) = client.get_role_assignment(&c.azure_id).await.map_err(|e| fail(&e))? else { continue };
        if !a.properties.principal_id.eq_ignore_ascii_case(principal) || !admin(&a.role_guid()) {
            continue;
        }
        let scope = canonical(&a.properties.scope);
        let others = client.list_role_assignments_for_principal(&scope, principal).await.map_err(|e| fail(&e))?;
        let kept = others.iter().any(|o| {
            admin(&o.role_guid())
                && !deleted.contains(&canonical(&o.id))
                && contains(&canonical(&o.properties.scope), &scope)
        });
        if !kept {
            locked.push(c.address.clone());
        }
    }
    if locked.is_empty() {
        return Ok(());
    }
    Err(Box::new(
        Diagnostic::error(
            Code::E0702,
            format!(
                "this apply would remove the role assignment that lets the running principal manage access: {}",
                locked.join(", ")
            ),
        )
        .with_help("nothing was applied; keep the grant, or pass `--allow-self-lockout` if another principal can restore access"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_admin_roles_are_the_built_in_ones() {
        let names = ["Owner", "User Access Administrator", "Role Based Access Control Administrator"];
        let guids: Vec<String> = names.iter().filter_map(|n| crate::roles::role_guid(None, n)).collect();
        assert_eq!(guids, ACCESS_ADMIN_ROLES);
    }
}
