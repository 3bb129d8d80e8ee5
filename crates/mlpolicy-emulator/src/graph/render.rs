//! Graph's JSON for directory objects: each type with Graph v1.0's default property set
//! (unset properties `null` or `[]`, as Graph returns them).

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::super::state::{Application, Group, ObjectKind, PasswordCredential, ServicePrincipal, Tenant, User};
use super::super::util::{eq_ci, iso8601_secs};

/// 2024-01-01T00:00:00Z, the creation time shown for seeded objects.
const SEEDED_MS: u64 = 1_704_067_200_000;

fn created_time(ms: u64) -> String {
    iso8601_secs(if ms == 0 { SEEDED_MS } else { ms })
}

/// A user with Graph v1.0's default property set (`$select` picks from the same names).
pub(super) fn user_json(u: &User) -> Value {
    json!({
        "id": u.id,
        "businessPhones": [],
        "displayName": u.display_name,
        "givenName": null,
        "jobTitle": null,
        "mail": u.mail,
        "mobilePhone": null,
        "officeLocation": null,
        "preferredLanguage": null,
        "surname": null,
        "userPrincipalName": u.user_principal_name,
    })
}

/// A group with Graph v1.0's default property set; unset properties are `null` or `[]`, as
/// Graph returns them. `uniqueName` is the client-provided key mlpolicy upserts by.
pub(super) fn group_json(g: &Group) -> Value {
    json!({
        "id": g.id,
        "deletedDateTime": null,
        "classification": null,
        "createdDateTime": created_time(g.created_ms),
        "creationOptions": [],
        "description": g.description,
        "displayName": g.display_name,
        "expirationDateTime": null,
        "groupTypes": g.group_types,
        "isAssignableToRole": null,
        "mail": null,
        "mailEnabled": g.mail_enabled,
        "mailNickname": g.mail_nickname,
        "membershipRule": null,
        "membershipRuleProcessingState": null,
        "onPremisesDomainName": null,
        "onPremisesLastSyncDateTime": null,
        "onPremisesNetBiosName": null,
        "onPremisesSamAccountName": null,
        "onPremisesSecurityIdentifier": null,
        "onPremisesSyncEnabled": null,
        "preferredDataLocation": null,
        "preferredLanguage": null,
        "proxyAddresses": [],
        "renewedDateTime": created_time(g.created_ms),
        "resourceBehaviorOptions": [],
        "resourceProvisioningOptions": [],
        "securityEnabled": g.security_enabled,
        "securityIdentifier": security_identifier(&g.id),
        "theme": null,
        "uniqueName": g.unique_name,
        "visibility": null,
        "onPremisesProvisioningErrors": [],
        "serviceProvisioningErrors": [],
    })
}

/// A group's `securityIdentifier`: `S-1-12-1-` and the object id's 16 bytes (in .NET's GUID
/// byte order) as four little-endian 32-bit numbers.
pub(super) fn security_identifier(id: &str) -> Value {
    let hex: String = id.chars().filter(char::is_ascii_hexdigit).collect();
    if hex.len() != 32 {
        return Value::Null;
    }
    let word = |from: usize| u32::from_str_radix(&hex[from..from + 8], 16).unwrap_or(0);
    let half = |from: usize| u32::from_str_radix(&hex[from..from + 4], 16).unwrap_or(0);
    let d4 = |from: usize| word(from).swap_bytes();
    json!(format!("S-1-12-1-{}-{}-{}-{}", word(0), half(8) | (half(12) << 16), d4(16), d4(24)))
}

/// Graph's `verifiedPublisher` and `info` blocks when nothing is set.
fn unset_publisher() -> Value {
    json!({ "displayName": null, "verifiedPublisherId": null, "addedDateTime": null })
}

fn unset_info() -> Value {
    json!({ "logoUrl": null, "marketingUrl": null, "privacyStatementUrl": null, "supportUrl": null, "termsOfServiceUrl": null })
}

/// A service principal with Graph v1.0's default property set. An application's service
/// principal lists the application's `identifierUris` among its `servicePrincipalNames`; a
/// managed identity's carries the certificate Entra issues it and its
/// `https://identity.azure.net/…` name, as Graph shows them.
pub(super) fn sp_json(t: &Tenant, s: &ServicePrincipal) -> Value {
    let managed = s.service_principal_type == "ManagedIdentity";
    let tenant = &t.tenant_id;
    let mut names = vec![s.app_id.clone()];
    let mut keys = Vec::new();
    if managed {
        names.push(format!("https://identity.azure.net/{}", STANDARD_B64.encode(digest("identity", &s.id))));
        keys.push(managed_identity_certificate(s));
    } else if let Some(app) = t.applications.iter().find(|a| eq_ci(&a.app_id, &s.app_id)) {
        names.extend(app.identifier_uris.iter().cloned());
    }
    json!({
        "id": s.id,
        "deletedDateTime": null,
        "accountEnabled": true,
        "alternativeNames": s.alternative_names,
        "appDisplayName": s.display_name,
        "appDescription": null,
        "appId": s.app_id,
        "applicationTemplateId": null,
        "appOwnerOrganizationId": if managed { Value::Null } else { json!(tenant) },
        "appRoleAssignmentRequired": false,
        "createdDateTime": created_time(s.created_ms),
        "description": null,
        "disabledByMicrosoftStatus": null,
        "displayName": s.display_name,
        "homepage": null,
        "loginUrl": null,
        "logoutUrl": null,
        "notes": null,
        "notificationEmailAddresses": [],
        "preferredSingleSignOnMode": null,
        "preferredTokenSigningKeyThumbprint": null,
        "replyUrls": [],
        "servicePrincipalNames": names,
        "servicePrincipalType": s.service_principal_type,
        "signInAudience": if managed { Value::Null } else { json!("AzureADMyOrg") },
        "tags": [],
        "tokenEncryptionKeyId": null,
        "samlSingleSignOnSettings": null,
        "verifiedPublisher": unset_publisher(),
        "addIns": [],
        "appRoles": [],
        "info": unset_info(),
        "keyCredentials": keys,
        "oauth2PermissionScopes": [],
        "passwordCredentials": s.password_credentials.iter().map(|p| password_json(p, false)).collect::<Vec<_>>(),
        "resourceSpecificApplicationPermissions": [],
    })
}

const STANDARD_B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// SHA-256 of `kind:id`: stable material for what Entra mints at random.
fn digest(kind: &str, id: &str) -> [u8; 32] {
    Sha256::digest(format!("{kind}:{}", id.to_ascii_lowercase()).as_bytes()).into()
}

/// The certificate credential of a managed identity: `CN={appId}`, valid 90 days from its
/// creation, identified by a thumbprint.
fn managed_identity_certificate(s: &ServicePrincipal) -> Value {
    let start = if s.created_ms == 0 { SEEDED_MS } else { s.created_ms };
    let d = digest("certificate", &s.id);
    let mut key = [0u8; 16];
    key.copy_from_slice(&d[..16]);
    json!({
        "customKeyIdentifier": hex::encode_upper(&d[..20]),
        "displayName": format!("CN={}", s.app_id),
        "endDateTime": iso8601_secs(start + 90 * 86_400_000),
        "key": null,
        "keyId": uuid::Builder::from_random_bytes(key).into_uuid().to_string(),
        "startDateTime": iso8601_secs(start),
        "type": "AsymmetricX509Cert",
        "usage": "Verify",
    })
}

pub(super) fn password_json(p: &PasswordCredential, with_secret: bool) -> Value {
    json!({
        "customKeyIdentifier": null,
        "displayName": p.display_name,
        "endDateTime": p.end_date_time,
        "hint": p.secret_text.chars().take(3).collect::<String>(),
        "keyId": p.key_id,
        "secretText": if with_secret { json!(p.secret_text) } else { Value::Null },
        "startDateTime": p.start_date_time,
    })
}

/// An application with Graph v1.0's default property set; secret text is never returned here
/// (only `addPassword` answers it, once).
pub(super) fn app_json(a: &Application) -> Value {
    json!({
        "id": a.id,
        "deletedDateTime": null,
        "appId": a.app_id,
        "applicationTemplateId": null,
        "disabledByMicrosoftStatus": null,
        "createdDateTime": created_time(a.created_ms),
        "displayName": a.display_name,
        "description": null,
        "groupMembershipClaims": null,
        "identifierUris": a.identifier_uris,
        "isDeviceOnlyAuthSupported": null,
        "isFallbackPublicClient": null,
        "notes": null,
        "publisherDomain": null,
        "serviceManagementReference": null,
        "signInAudience": "AzureADMyOrg",
        "tags": [],
        "tokenEncryptionKeyId": null,
        "samlMetadataUrl": null,
        "defaultRedirectUri": null,
        "certification": null,
        "optionalClaims": null,
        "servicePrincipalLockConfiguration": null,
        "requestSignatureVerification": null,
        "addIns": [],
        "api": {
            "acceptMappedClaims": null,
            "knownClientApplications": [],
            "requestedAccessTokenVersion": null,
            "oauth2PermissionScopes": [],
            "preAuthorizedApplications": [],
        },
        "appRoles": [],
        "info": unset_info(),
        "keyCredentials": [],
        "parentalControlSettings": { "countriesBlockedForMinors": [], "legalAgeGroupRule": "Allow" },
        "passwordCredentials": a.password_credentials.iter().map(|p| password_json(p, false)).collect::<Vec<_>>(),
        "publicClient": { "redirectUris": [] },
        "requiredResourceAccess": [],
        "verifiedPublisher": unset_publisher(),
        "web": {
            "homePageUrl": null,
            "logoutUrl": null,
            "redirectUris": [],
            "implicitGrantSettings": { "enableAccessTokenIssuance": false, "enableIdTokenIssuance": false },
            "redirectUriSettings": [],
        },
        "spa": { "redirectUris": [] },
    })
}

/// JSON of any directory object, tagged with `@odata.type`.
pub(super) fn object_json(t: &Tenant, id: &str) -> Option<Value> {
    let (kind, at) = t.find_object(id)?;
    let mut v = match kind {
        ObjectKind::User => user_json(&t.users[at]),
        ObjectKind::Group => group_json(&t.groups[at]),
        ObjectKind::ServicePrincipal => sp_json(t, &t.service_principals[at]),
        ObjectKind::Application => app_json(&t.applications[at]),
    };
    if let Value::Object(m) = &mut v {
        m.insert("@odata.type".into(), json!(kind.odata_type()));
    }
    Some(v)
}
