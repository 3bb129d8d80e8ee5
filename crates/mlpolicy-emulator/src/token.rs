//! The Entra v2 token endpoint (`POST /{tenant}/oauth2/v2.0/token`, client credentials with a
//! secret or a JWT client assertion) and the bearer-token checks the ARM and Graph surfaces run
//! on every request. Tokens are JWT-shaped, signed with HMAC-SHA256 over a per-process secret,
//! and carry `aud`, `iss`, `iat`, `nbf`, `exp`, `tid`, `oid` (the caller's service principal,
//! minted once per client id), `appid` and `sub`. Errors use the AADSTS envelope (docs/azure-wire.md §8).

use serde_json::{Value, json};

use super::state::{Application, Identity, ServicePrincipal, Tenant, stable_id};
use super::util::{b64_decode, b64url_encode, eq_ci, hmac_sha256, hmac_sha256_verify, iso8601_secs, percent_decode};
use super::{Ctx, Reply, Shared};

/// The Graph resource app id, also accepted as a Graph audience.
const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The authenticated caller of an ARM or Graph request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Object id of the caller's service principal.
    pub oid: String,
}

/// Which API a token is presented to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Azure Resource Manager.
    Arm,
    /// Microsoft Graph.
    Graph,
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenProblem {
    /// No `Authorization: Bearer` header.
    Missing,
    /// Not a JWT we signed.
    Invalid,
    /// Signed by us for another API.
    WrongAudience(String),
    /// Past `exp`.
    Expired {
        /// Token expiry, ms since the epoch.
        exp_ms: u64,
        /// Now, ms since the epoch.
        now_ms: u64,
    },
}

fn trim_resource(r: &str) -> String {
    r.trim_end_matches('/').to_ascii_lowercase()
}

/// Which API a token resource (scope without `/.default`) belongs to, if any.
fn audience_of(resource: &str, base_url: &str) -> Option<Audience> {
    let r = trim_resource(resource);
    let arm = ["https://management.azure.com", "https://management.core.windows.net"];
    if arm.contains(&r.as_str()) || r == trim_resource(base_url) {
        return Some(Audience::Arm);
    }
    if r == "https://graph.microsoft.com" || r == GRAPH_APP_ID {
        return Some(Audience::Graph);
    }
    None
}

/// Mints a signed access token.
pub fn mint(secret: &[u8], claims: &Value) -> String {
    let header = json!({"typ": "JWT", "alg": "HS256", "kid": "mlpolicy-emulator"});
    let signing_input =
        format!("{}.{}", b64url_encode(header.to_string().as_bytes()), b64url_encode(claims.to_string().as_bytes()));
    let sig = hmac_sha256(secret, signing_input.as_bytes());
    format!("{signing_input}.{}", b64url_encode(&sig))
}

/// Decodes the payload of a JWT without checking its signature.
pub fn payload_unverified(token: &str) -> Option<Value> {
    let mut parts = token.split('.');
    let _header = parts.next()?;
    let payload = parts.next()?;
    parts.next()?;
    serde_json::from_slice(&b64_decode(payload)?).ok()
}

/// Checks an `Authorization` header value for `aud`.
pub fn verify(
    secret: &[u8],
    authorization: Option<&str>,
    aud: Audience,
    base_url: &str,
    now_ms: u64,
) -> Result<Caller, TokenProblem> {
    let value = authorization.ok_or(TokenProblem::Missing)?.trim();
    let (scheme, token) = value.split_once(' ').ok_or(TokenProblem::Missing)?;
    if !eq_ci(scheme, "bearer") || token.trim().is_empty() {
        return Err(TokenProblem::Missing);
    }
    let token = token.trim();
    let (signing_input, sig) = token.rsplit_once('.').ok_or(TokenProblem::Invalid)?;
    let sig = b64_decode(sig).ok_or(TokenProblem::Invalid)?;
    if !hmac_sha256_verify(secret, signing_input.as_bytes(), &sig) {
        return Err(TokenProblem::Invalid);
    }
    let claims = payload_unverified(token).ok_or(TokenProblem::Invalid)?;
    let token_aud = claims.get("aud").and_then(Value::as_str).unwrap_or_default();
    if audience_of(token_aud, base_url) != Some(aud) {
        return Err(TokenProblem::WrongAudience(token_aud.to_owned()));
    }
    let exp = claims.get("exp").and_then(Value::as_u64).ok_or(TokenProblem::Invalid)?;
    if exp.saturating_mul(1000) <= now_ms {
        return Err(TokenProblem::Expired { exp_ms: exp * 1000, now_ms });
    }
    let oid = claims.get("oid").and_then(Value::as_str).unwrap_or_default().to_owned();
    Ok(Caller { oid })
}

/// An AADSTS-style error answer.
fn aad_error(ctx: &Ctx, status: u16, error: &str, code: u32, text: &str) -> Reply {
    let ts = iso8601_secs(ctx.now_ms).replace('T', " ");
    let trace = ctx.request_id.clone();
    let correlation = ctx.correlation_id.clone();
    Reply::json(
        status,
        json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {ts}"),
            "error_codes": [code],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        }),
    )
}

/// A 5xx from the token endpoint, for fault injection.
pub fn fault(ctx: &Ctx, status: u16) -> Reply {
    aad_error(ctx, status, "temporarily_unavailable", 90033, "A transient error has occurred. Please try again.")
}

/// Whether `path` is the token endpoint; returns the tenant segment.
pub fn token_path(segs: &[String]) -> Option<&str> {
    match segs {
        [tenant, a, b, c] if eq_ci(a, "oauth2") && eq_ci(b, "v2.0") && eq_ci(c, "token") => Some(tenant),
        _ => None,
    }
}

/// Handles `POST /{tenant}/oauth2/v2.0/token`.
pub async fn handle(shared: &Shared, ctx: &Ctx, tenant_segment: &str) -> Reply {
    match issue(shared, ctx, tenant_segment).await {
        Ok(reply) | Err(reply) => reply,
    }
}

/// Checks the request, then the client against the tenant, and answers with a token.
async fn issue(shared: &Shared, ctx: &Ctx, tenant_segment: &str) -> Result<Reply, Reply> {
    let request = TokenRequest::read(shared, ctx)?;
    let mut tenant = shared.state.lock().await;
    if shared.strict_auth {
        authenticate(shared, ctx, &tenant, tenant_segment, &request)?;
    }
    let oid = service_principal_id(shared, &mut tenant, &request.client_id).await;
    drop(tenant);
    Ok(token_reply(shared, ctx, &request, &oid))
}

/// A token request that passed the checks made before the tenant is read.
struct TokenRequest {
    client_id: String,
    client_secret: Option<String>,
    /// The resource of the request's single `RESOURCE/.default` scope.
    resource: String,
    assertion: Option<String>,
    /// The claims of the client assertion, read without checking its signature.
    assertion_claims: Option<Value>,
}

impl TokenRequest {
    /// Reads the form (client credentials may also come as HTTP basic authentication): the
    /// grant type, the client, the scope, then how the client proves itself.
    fn read(shared: &Shared, ctx: &Ctx) -> Result<TokenRequest, Reply> {
        if ctx.method != "POST" {
            return Err(aad_error(ctx, 405, "invalid_request", 900_561, "The endpoint only accepts POST requests."));
        }
        let form: Vec<(String, String)> = url::form_urlencoded::parse(&ctx.body).into_owned().collect();
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let missing = |name: &str| {
            aad_error(
                ctx,
                400,
                "invalid_request",
                900_144,
                &format!("The request body must contain the following parameter: '{name}'."),
            )
        };
        let mut client_id = get("client_id");
        let mut client_secret = get("client_secret");
        if let Some((id, secret)) = basic_credentials(ctx) {
            client_id.get_or_insert(id);
            client_secret.get_or_insert(secret);
        }
        let Some(grant) = get("grant_type") else {
            return Err(missing("grant_type"));
        };
        if grant != "client_credentials" {
            return Err(aad_error(
                ctx,
                400,
                "unsupported_grant_type",
                70003,
                &format!("The app requested an unsupported grant type '{grant}'."),
            ));
        }
        let Some(client_id) = client_id.filter(|c| !c.is_empty()) else {
            return Err(missing("client_id"));
        };
        let Some(scope) = get("scope") else {
            return Err(missing("scope"));
        };
        let resource = requested_resource(shared, ctx, &scope)?;
        let assertion = get("client_assertion");
        let assertion_claims = assertion_claims(
            ctx,
            assertion.as_deref(),
            get("client_assertion_type").as_deref(),
            client_secret.is_some(),
        )?;
        Ok(TokenRequest { client_id, client_secret, resource, assertion, assertion_claims })
    }
}

/// The resource of the single `RESOURCE/.default` scope; it must be one the emulator serves.
fn requested_resource(shared: &Shared, ctx: &Ctx, scope: &str) -> Result<String, Reply> {
    let bad_scope = || {
        aad_error(
            ctx,
            400,
            "invalid_scope",
            70011,
            &format!(
                "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
            ),
        )
    };
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    let [single] = scopes.as_slice() else {
        return Err(bad_scope());
    };
    let Some(resource) = single.strip_suffix("/.default") else {
        return Err(bad_scope());
    };
    if audience_of(resource, &shared.base_url).is_none() {
        return Err(aad_error(
            ctx,
            400,
            "invalid_resource",
            500_011,
            &format!(
                "The resource principal named {resource} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
                shared.tenant_id
            ),
        ));
    }
    Ok(resource.to_owned())
}

/// The claims of the client assertion, if one is sent; without one, a secret is required.
fn assertion_claims(
    ctx: &Ctx,
    assertion: Option<&str>,
    assertion_type: Option<&str>,
    has_secret: bool,
) -> Result<Option<Value>, Reply> {
    if assertion.is_some() && assertion_type != Some(JWT_BEARER) {
        return Err(aad_error(
            ctx,
            400,
            "invalid_request",
            700_023,
            "Client assertion type must be 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'.",
        ));
    }
    if assertion.is_none() && !has_secret {
        return Err(aad_error(
            ctx,
            401,
            "invalid_client",
            7_000_216,
            "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
        ));
    }
    match assertion {
        Some(a) => match payload_unverified(a) {
            Some(c) => Ok(Some(c)),
            None => Err(aad_error(ctx, 400, "invalid_client", 50027, "JWT token is invalid or malformed.")),
        },
        None => Ok(None),
    }
}

/// With strict authentication: the tenant segment names this tenant, the client is a known
/// application or managed identity, and its assertion or secret matches one it has.
fn authenticate(
    shared: &Shared,
    ctx: &Ctx,
    tenant: &Tenant,
    tenant_segment: &str,
    request: &TokenRequest,
) -> Result<(), Reply> {
    let client_id = &request.client_id;
    if !eq_ci(tenant_segment, &shared.tenant_id) {
        return Err(aad_error(
            ctx,
            400,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant_segment}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        ));
    }
    let app = tenant.applications.iter().find(|a| eq_ci(&a.app_id, client_id));
    let uai = tenant.identities.iter().find(|i| eq_ci(&i.client_id, client_id));
    if app.is_none() && uai.is_none() {
        return Err(aad_error(
            ctx,
            400,
            "unauthorized_client",
            700_016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
                shared.tenant_id
            ),
        ));
    }
    if let Some(claims) = &request.assertion_claims {
        check_assertion(ctx, tenant, app, uai, claims)
    } else {
        check_secret(ctx, app, request)
    }
}

/// A client assertion matches a federated credential of the application or identity.
fn check_assertion(
    ctx: &Ctx,
    tenant: &Tenant,
    app: Option<&Application>,
    uai: Option<&Identity>,
    claims: &Value,
) -> Result<(), Reply> {
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or_default();
    let sub = claims.get("sub").and_then(Value::as_str).unwrap_or_default();
    let aud = claims.get("aud").and_then(Value::as_str).unwrap_or_default();
    let mut creds = app.map(|a| a.federated_credentials.clone()).unwrap_or_default();
    if let Some(i) = uai {
        let id = i.id();
        creds.extend(tenant.federated_credentials.iter().filter(|f| eq_ci(&f.identity, &id)).cloned());
    }
    if !creds.iter().any(|f| f.issuer == iss && f.subject == sub) {
        return Err(aad_error(
            ctx,
            400,
            "invalid_client",
            70021,
            &format!(
                "No matching federated identity record found for presented assertion. Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: '{aud}'."
            ),
        ));
    }
    Ok(())
}

/// A client secret is one of the application's passwords.
fn check_secret(ctx: &Ctx, app: Option<&Application>, request: &TokenRequest) -> Result<(), Reply> {
    let secret = request.client_secret.clone().unwrap_or_default();
    let ok = app.is_some_and(|a| a.password_credentials.iter().any(|p| p.secret_text == secret));
    if !ok {
        return Err(aad_error(
            ctx,
            401,
            "invalid_client",
            7_000_215,
            &format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                request.client_id
            ),
        ));
    }
    Ok(())
}

/// The object id of the client's service principal, made (and saved) the first time the
/// client asks for a token.
async fn service_principal_id(shared: &Shared, tenant: &mut Tenant, client_id: &str) -> String {
    if let Some(sp) = tenant.service_principals.iter().find(|s| eq_ci(&s.app_id, client_id)) {
        return sp.id.clone();
    }
    let id = stable_id("sp", client_id);
    tenant.service_principals.push(ServicePrincipal {
        id: id.clone(),
        app_id: client_id.to_owned(),
        display_name: client_id.to_owned(),
        service_principal_type: "Application".to_owned(),
        alternative_names: Vec::new(),
        password_credentials: Vec::new(),
        created_ms: 0,
    });
    shared.persist(tenant).await;
    id
}

/// A signed access token for the requested resource, recorded as issued.
fn token_reply(shared: &Shared, ctx: &Ctx, request: &TokenRequest, oid: &str) -> Reply {
    let lifetime = shared.realism().lifetime_s();
    let now = ctx.now_ms / 1000;
    let claims = json!({
        "aud": request.resource.trim_end_matches('/'),
        "iss": format!("https://sts.windows.net/{}/", shared.tenant_id),
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "tid": shared.tenant_id,
        "oid": oid,
        "sub": oid,
        "appid": request.client_id,
        "appidacr": if request.assertion.is_some() { "2" } else { "1" },
        "idtyp": "app",
        "ver": "1.0",
    });
    let access_token = mint(&shared.secret, &claims);
    super::lock(&shared.issued).push(access_token.clone());
    Reply::json(
        200,
        json!({
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access_token,
        }),
    )
}

fn basic_credentials(ctx: &Ctx) -> Option<(String, String)> {
    let value = ctx.header("authorization")?;
    let (scheme, rest) = value.split_once(' ')?;
    if !eq_ci(scheme, "basic") {
        return None;
    }
    let raw = String::from_utf8(b64_decode(rest.trim())?).ok()?;
    let (id, secret) = raw.split_once(':')?;
    let decode = |s: &str| percent_decode(&s.replace('+', " "));
    Some((decode(id), decode(secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_verify_for_their_audience_only() {
        let secret = b"k";
        let claims = json!({"aud": "https://management.azure.com", "exp": 2_000_000_000u64, "oid": "o", "appid": "a"});
        let t = format!("Bearer {}", mint(secret, &claims));
        let ok = verify(secret, Some(&t), Audience::Arm, "http://127.0.0.1:1", 1_000).unwrap();
        assert_eq!(ok.oid, "o");
        assert_eq!(
            verify(secret, Some(&t), Audience::Graph, "http://127.0.0.1:1", 1_000).unwrap_err(),
            TokenProblem::WrongAudience("https://management.azure.com".into())
        );
        assert_eq!(verify(b"other", Some(&t), Audience::Arm, "x", 1_000).unwrap_err(), TokenProblem::Invalid);
        assert!(matches!(
            verify(secret, Some(&t), Audience::Arm, "x", 2_000_000_000_000).unwrap_err(),
            TokenProblem::Expired { .. }
        ));
        assert_eq!(verify(secret, None, Audience::Arm, "x", 0).unwrap_err(), TokenProblem::Missing);
        assert_eq!(verify(secret, Some("Bearer abc"), Audience::Arm, "x", 0).unwrap_err(), TokenProblem::Invalid);
    }

    #[test]
    fn base_url_is_an_arm_audience() {
        assert_eq!(audience_of("http://127.0.0.1:8080/", "http://127.0.0.1:8080"), Some(Audience::Arm));
        assert_eq!(audience_of("https://graph.microsoft.com", "x"), Some(Audience::Graph));
        assert_eq!(audience_of("https://vault.azure.net", "x"), None);
    }
}
