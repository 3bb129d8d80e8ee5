//! Authentication: which credential to use, tokens per audience, and refresh.
//!
//! [`TokenSource::from_env`] picks the credential from the environment in a fixed order
//! (pre-acquired tokens, workload identity file, GitHub Actions OIDC, Azure Pipelines, managed
//! identity, Azure CLI, client secret) and can describe its choice without revealing a secret.
//! The credentials themselves are `azure_identity`'s, pointed at the cloud's authority and sent
//! through mlpolicy's own `reqwest` client (so an extra root CA reaches them too). `azure_identity`
//! only accepts `https` authorities; for a loopback `http://` authority (the emulator without
//! `--tls`) the credential is given the `https` form of the same origin and the transport sends
//! it as `http`, for that one origin only.
//!
//! Tokens are cached per audience and refreshed 5 minutes before expiry, or at half-life when
//! the token lives under 10 minutes. Secrets live in [`SecretString`], whose `Debug` and
//! `Display` print `***`.

use std::{
    fmt,
    future::Future,
    path::{Path, PathBuf},
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use azure_core::{
    cloud::{CloudConfiguration, CustomConfiguration},
    credentials::{Secret, TokenCredential},
    error::ErrorKind,
    http::{AsyncRawResponse, Body, ClientMethodOptions, HttpClient, Request, StatusCode, Transport, headers::Headers},
};
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, AzurePipelinesCredential, AzurePipelinesCredentialOptions,
    ClientAssertion, ClientAssertionCredential, ClientAssertionCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions, ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use url::Url;

use super::{
    cloud::{Audience, Cloud, is_loopback, same_origin},
    error::AzureError,
    http::Sink,
};

/// A secret string (token, client secret, assertion) that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret text, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Audience of GitHub/Kubernetes/Pipelines ID tokens exchanged with Entra.
pub const FEDERATION_AUDIENCE: &str = "api://AzureADTokenExchange";

/// Environment variable forcing a credential: `workload`, `github`, `pipelines`, `msi`, `cli`, `secret`.
pub const ENV_AUTH: &str = "MLPOLICY_AUTH";
/// Pre-acquired ARM access token (air-gapped runs); it cannot be refreshed.
pub const ENV_ARM_TOKEN: &str = "MLPOLICY_ARM_TOKEN";
/// Pre-acquired Graph access token (air-gapped runs); it cannot be refreshed.
pub const ENV_GRAPH_TOKEN: &str = "MLPOLICY_GRAPH_TOKEN";

/// The credential behind a [`TokenSource`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// Workload identity federation: an ID token read from `AZURE_FEDERATED_TOKEN_FILE`.
    WorkloadIdentity {
        /// App or UAI client id (`AZURE_CLIENT_ID`).
        client_id: String,
        /// File holding the federated token.
        token_file: PathBuf,
    },
    /// GitHub Actions OIDC: an ID token for `api://AzureADTokenExchange` used as client assertion.
    GitHubOidc {
        /// App or UAI client id (`AZURE_CLIENT_ID`).
        client_id: String,
        /// `ACTIONS_ID_TOKEN_REQUEST_URL`.
        request_url: String,
        /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
        request_token: SecretString,
    },
    /// Azure Pipelines service connection (`AzurePipelinesCredential`).
    AzurePipelines {
        /// `AZURESUBSCRIPTION_CLIENT_ID` (or `AZURE_CLIENT_ID`).
        client_id: String,
        /// `AZURESUBSCRIPTION_SERVICE_CONNECTION_ID`.
        service_connection_id: String,
        /// `SYSTEM_ACCESSTOKEN`.
        system_access_token: SecretString,
    },
    /// Managed identity (App Service, VM/IMDS, ...); user-assigned when a client id is given.
    ManagedIdentity {
        /// `AZURE_CLIENT_ID` of a user-assigned identity.
        client_id: Option<String>,
    },
    /// `az account get-access-token`.
    AzureCli,
    /// Client secret (`AZURE_CLIENT_ID` + `AZURE_CLIENT_SECRET`); a federated credential should replace it.
    ClientSecret {
        /// App client id.
        client_id: String,
        /// The secret.
        secret: SecretString,
    },
}

/// Where access tokens come from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenSource {
    /// Fixed ARM token (`MLPOLICY_ARM_TOKEN`).
    pub arm_token: Option<SecretString>,
    /// Fixed Graph token (`MLPOLICY_GRAPH_TOKEN`).
    pub graph_token: Option<SecretString>,
    /// Credential for audiences without a fixed token.
    pub credential: Option<Credential>,
}

/// Choices `from_env` cannot read from the environment.
#[derive(Debug, Clone, Default)]
pub struct AuthOptions {
    /// Use managed identity even without `IDENTITY_ENDPOINT`/`MSI_ENDPOINT` (IMDS on a VM).
    pub managed_identity: bool,
}

fn auth_error(message: impl Into<String>) -> AzureError {
    AzureError::local("choose credential", "CredentialUnavailable", message)
}

impl TokenSource {
    /// Fixed tokens only (tests, air-gapped runs).
    pub fn fixed(arm: Option<&str>, graph: Option<&str>) -> Self {
        Self { arm_token: arm.map(SecretString::new), graph_token: graph.map(SecretString::new), credential: None }
    }

    /// A credential alone.
    pub fn credential(credential: Credential) -> Self {
        Self { credential: Some(credential), ..Self::default() }
    }

    /// Picks the credential from the process environment.
    pub fn from_env(options: &AuthOptions) -> Result<Self, AzureError> {
        Self::from_lookup(options, |key| std::env::var(key).ok().filter(|v| !v.is_empty()))
    }

    /// Picks the credential from `lookup` (the environment, or a map in tests).
    pub fn from_lookup(options: &AuthOptions, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, AzureError> {
        let get = |key: &str| lookup(key).filter(|v| !v.trim().is_empty());
        let mut source = Self {
            arm_token: get(ENV_ARM_TOKEN).map(SecretString::new),
            graph_token: get(ENV_GRAPH_TOKEN).map(SecretString::new),
            credential: None,
        };
        let forced = get(ENV_AUTH).map(|v| v.to_ascii_lowercase());
        let client_id = get("AZURE_CLIENT_ID");
        let need = |what: &str, var: &str| auth_error(format!("{what} needs {var}"));

        let workload = || -> Result<Option<Credential>, AzureError> {
            let Some(file) = get("AZURE_FEDERATED_TOKEN_FILE") else {
                return Ok(None);
            };
            let client_id = client_id.clone().ok_or_else(|| need("workload identity", "AZURE_CLIENT_ID"))?;
            Ok(Some(Credential::WorkloadIdentity { client_id, token_file: PathBuf::from(file) }))
        };
        let github = || -> Result<Option<Credential>, AzureError> {
            let (Some(url), Some(token)) = (get("ACTIONS_ID_TOKEN_REQUEST_URL"), get("ACTIONS_ID_TOKEN_REQUEST_TOKEN"))
            else {
                return Ok(None);
            };
            let client_id = client_id.clone().ok_or_else(|| need("GitHub Actions OIDC", "AZURE_CLIENT_ID"))?;
            Ok(Some(Credential::GitHubOidc { client_id, request_url: url, request_token: SecretString::new(token) }))
        };
        let pipelines = || -> Result<Option<Credential>, AzureError> {
            let (Some(conn), Some(token)) = (get("AZURESUBSCRIPTION_SERVICE_CONNECTION_ID"), get("SYSTEM_ACCESSTOKEN"))
            else {
                return Ok(None);
            };
            let client_id = get("AZURESUBSCRIPTION_CLIENT_ID")
                .or_else(|| client_id.clone())
                .ok_or_else(|| need("Azure Pipelines", "AZURESUBSCRIPTION_CLIENT_ID"))?;
            Ok(Some(Credential::AzurePipelines {
                client_id,
                service_connection_id: conn,
                system_access_token: SecretString::new(token),
            }))
        };
        let msi_env = get("IDENTITY_ENDPOINT").is_some() || get("MSI_ENDPOINT").is_some();
        let msi = || Credential::ManagedIdentity { client_id: client_id.clone() };
        let cli_present = get("PATH").is_some_and(|path| on_path(&path, "az"));
        let secret = || -> Option<Credential> {
            let secret = get("AZURE_CLIENT_SECRET")?;
            Some(Credential::ClientSecret { client_id: client_id.clone()?, secret: SecretString::new(secret) })
        };

        source.credential = match forced.as_deref() {
            Some("workload") => {
                Some(workload()?.ok_or_else(|| need("workload identity", "AZURE_FEDERATED_TOKEN_FILE"))?)
            }
            Some("github") => Some(github()?.ok_or_else(|| {
                need(
                    "GitHub Actions OIDC",
                    "ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN (permissions: id-token: write)",
                )
            })?),
            Some("pipelines") => Some(pipelines()?.ok_or_else(|| {
                need("Azure Pipelines", "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID and SYSTEM_ACCESSTOKEN")
            })?),
            Some("msi" | "managed-identity" | "managedidentity") => Some(msi()),
            Some("cli" | "az") => Some(Credential::AzureCli),
            Some("secret" | "client-secret") => {
                Some(secret().ok_or_else(|| need("client secret", "AZURE_CLIENT_ID and AZURE_CLIENT_SECRET"))?)
            }
            Some("static" | "token") => None,
            Some(other) => {
                return Err(auth_error(format!(
                    "unknown {ENV_AUTH} value `{other}` (use workload, github, pipelines, msi, cli, secret or static)"
                )));
            }
            None => {
                if let Some(c) = workload()? {
                    Some(c)
                } else if let Some(c) = github()? {
                    Some(c)
                } else if let Some(c) = pipelines()? {
                    Some(c)
                } else if msi_env || options.managed_identity {
                    Some(msi())
                } else if cli_present {
                    Some(Credential::AzureCli)
                } else {
                    secret()
                }
            }
        };
        if source.credential.is_none() && source.arm_token.is_none() && source.graph_token.is_none() {
            return Err(auth_error(
                "no Azure credential found: set AZURE_CLIENT_ID with AZURE_FEDERATED_TOKEN_FILE, run in GitHub Actions \
                 with `id-token: write`, use an Azure Pipelines service connection, a managed identity, `az login`, \
                 AZURE_CLIENT_ID with AZURE_CLIENT_SECRET, or MLPOLICY_ARM_TOKEN/MLPOLICY_GRAPH_TOKEN",
            ));
        }
        Ok(source)
    }

    /// One line for `--verbose`: which credential, for which client id; never a secret.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.arm_token.is_some() {
            parts.push(format!("ARM token from {ENV_ARM_TOKEN}"));
        }
        if self.graph_token.is_some() {
            parts.push(format!("Graph token from {ENV_GRAPH_TOKEN}"));
        }
        if let Some(c) = &self.credential {
            parts.push(match c {
                Credential::WorkloadIdentity { client_id, token_file } => {
                    format!("workload identity federation (client id {client_id}, token file {})", token_file.display())
                }
                Credential::GitHubOidc { client_id, .. } => {
                    format!("GitHub Actions OIDC federation (client id {client_id})")
                }
                Credential::AzurePipelines { client_id, service_connection_id, .. } => {
                    format!("Azure Pipelines service connection {service_connection_id} (client id {client_id})")
                }
                Credential::ManagedIdentity { client_id: Some(id) } => {
                    format!("user-assigned managed identity (client id {id})")
                }
                Credential::ManagedIdentity { client_id: None } => "system-assigned managed identity".to_string(),
                Credential::AzureCli => "Azure CLI (`az account get-access-token`)".to_string(),
                Credential::ClientSecret { client_id, .. } => format!("client secret (client id {client_id})"),
            });
        }
        if parts.is_empty() { "no credential".to_string() } else { parts.join("; ") }
    }

    /// Advice about the choice, e.g. to replace a client secret by a federated credential.
    pub fn warnings(&self) -> Vec<String> {
        match &self.credential {
            Some(Credential::ClientSecret { .. }) => vec![
                "authenticating with AZURE_CLIENT_SECRET: replace the secret with a federated identity credential \
                 (GitHub Actions OIDC, workload identity) so no long-lived secret exists"
                    .to_string(),
            ],
            _ => Vec::new(),
        }
    }
}

fn on_path(path: &str, program: &str) -> bool {
    std::env::split_paths(path).any(|dir| {
        let candidate = dir.join(program);
        candidate.is_file()
            || dir.join(format!("{program}.cmd")).is_file()
            || dir.join(format!("{program}.exe")).is_file()
    })
}

/// The payload claims of a JWT, without checking the signature.
pub fn jwt_claims(token: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = azure_core::base64::decode_url_safe(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The `oid` claim of an access token (the acting principal's object id).
pub fn token_object_id(token: &str) -> Option<String> {
    jwt_claims(token)?.get("oid")?.as_str().map(str::to_string)
}

/// When to refresh a token valid until `expires_at`, acquired at `now`.
pub(crate) fn refresh_time(now: SystemTime, expires_at: SystemTime) -> SystemTime {
    let lifetime = expires_at.duration_since(now).unwrap_or_default();
    let early = if lifetime < Duration::from_secs(600) { lifetime / 2 } else { Duration::from_secs(300) };
    expires_at.checked_sub(early).unwrap_or(now)
}

#[derive(Clone)]
struct CachedToken {
    token: SecretString,
    refresh_at: SystemTime,
}

/// Per-audience token cache over one credential.
pub(crate) struct TokenProvider {
    cloud: Cloud,
    tenant_id: String,
    source: TokenSource,
    http: reqwest::Client,
    sink: Sink,
    credential: Mutex<Option<Arc<dyn TokenCredential>>>,
    arm: tokio::sync::Mutex<Option<CachedToken>>,
    graph: tokio::sync::Mutex<Option<CachedToken>>,
}

impl TokenProvider {
    pub(crate) fn new(cloud: Cloud, tenant_id: String, source: TokenSource, http: reqwest::Client, sink: Sink) -> Self {
        Self {
            cloud,
            tenant_id,
            source,
            http,
            sink,
            credential: Mutex::new(None),
            arm: tokio::sync::Mutex::new(None),
            graph: tokio::sync::Mutex::new(None),
        }
    }

    pub(crate) fn source(&self) -> &TokenSource {
        &self.source
    }

    fn fixed(&self, audience: Audience) -> Option<&SecretString> {
        match audience {
            Audience::Arm => self.source.arm_token.as_ref(),
            Audience::Graph => self.source.graph_token.as_ref(),
        }
    }

    fn slot(&self, audience: Audience) -> &tokio::sync::Mutex<Option<CachedToken>> {
        match audience {
            Audience::Arm => &self.arm,
            Audience::Graph => &self.graph,
        }
    }

    /// A valid token for `audience`, from cache or freshly acquired.
    pub(crate) async fn token(&self, audience: Audience) -> Result<SecretString, AzureError> {
        if let Some(t) = self.fixed(audience) {
            return Ok(t.clone());
        }
        let mut slot = self.slot(audience).lock().await;
        if let Some(cached) = slot.as_ref()
            && SystemTime::now() < cached.refresh_at
        {
            return Ok(cached.token.clone());
        }
        let credential = self.live_credential()?;
        let scope = self.cloud.scope(audience);
        let op = format!("get {} token", audience.name());
        self.sink.log(&format!("acquiring {} token for scope {scope}", audience.name()));
        let access = credential.get_token(&[scope.as_str()], None).await.map_err(|e| credential_error(&op, &e))?;
        let now = SystemTime::now();
        let expires_at = SystemTime::UNIX_EPOCH
            + Duration::from_secs(u64::try_from(access.expires_on.unix_timestamp()).unwrap_or(0));
        let token = SecretString::new(access.token.secret());
        *slot = Some(CachedToken { token: token.clone(), refresh_at: refresh_time(now, expires_at) });
        Ok(token)
    }

    /// Drops `used` from the cache after a 401; false when the token cannot be refreshed.
    pub(crate) async fn invalidate(&self, audience: Audience, used: &SecretString) -> bool {
        if self.fixed(audience).is_some() {
            return false;
        }
        let mut slot = self.slot(audience).lock().await;
        if slot.as_ref().is_some_and(|c| &c.token == used) {
            *slot = None;
            // azure_identity keeps its own cache; a new credential instance starts empty.
            if let Ok(mut guard) = self.credential.lock() {
                *guard = None;
            }
        }
        true
    }

    fn live_credential(&self) -> Result<Arc<dyn TokenCredential>, AzureError> {
        let mut guard = self.credential.lock().map_err(|_| auth_error("credential lock poisoned"))?;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let Some(kind) = &self.source.credential else {
            return Err(auth_error(
                "no credential for this audience: set both MLPOLICY_ARM_TOKEN and MLPOLICY_GRAPH_TOKEN, or configure a credential",
            ));
        };
        let built = build_credential(kind, &self.cloud, &self.tenant_id, &self.http)?;
        *guard = Some(built.clone());
        Ok(built)
    }
}

fn credential_error(op: &str, err: &azure_core::Error) -> AzureError {
    let status = match err.kind() {
        ErrorKind::HttpResponse { status, .. } => u16::from(*status),
        _ => 0,
    };
    let code = match err.kind() {
        ErrorKind::HttpResponse { error_code: Some(c), .. } => c.clone(),
        _ => "CredentialUnavailable".to_string(),
    };
    let mut e = AzureError::local(op, &code, err.to_string());
    e.status = status;
    e
}

fn build_credential(
    kind: &Credential,
    cloud: &Cloud,
    tenant_id: &str,
    http: &reqwest::Client,
) -> Result<Arc<dyn TokenCredential>, AzureError> {
    let authority = cloud.authority();
    let (cloud_config, rewrite) = identity_cloud(cloud, &authority)?;
    let transport = Transport::new(Arc::new(IdentityTransport { http: http.clone(), rewrite }));
    let client_options = azure_core::http::ClientOptions {
        transport: Some(transport),
        cloud: Some(Arc::new(cloud_config)),
        ..Default::default()
    };
    let map = |e: azure_core::Error| auth_error(e.to_string());
    let credential: Arc<dyn TokenCredential> = match kind {
        Credential::WorkloadIdentity { client_id, token_file } => {
            WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                credential_options: ClientAssertionCredentialOptions { client_options },
                client_id: Some(client_id.clone()),
                tenant_id: Some(tenant_id.to_string()),
                token_file_path: Some(token_file.clone()),
            }))
            .map_err(map)?
        }
        Credential::GitHubOidc { client_id, request_url, request_token } => {
            let assertion = GitHubAssertion {
                http: http.clone(),
                request_url: request_url.clone(),
                request_token: request_token.clone(),
            };
            ClientAssertionCredential::new(
                tenant_id.to_string(),
                client_id.clone(),
                assertion,
                Some(ClientAssertionCredentialOptions { client_options }),
            )
            .map_err(map)?
        }
        Credential::AzurePipelines { client_id, service_connection_id, system_access_token } => {
            AzurePipelinesCredential::new(
                tenant_id.to_string(),
                client_id.clone(),
                service_connection_id,
                Secret::new(system_access_token.expose().to_string()),
                Some(AzurePipelinesCredentialOptions {
                    credential_options: ClientAssertionCredentialOptions { client_options },
                }),
            )
            .map_err(map)?
        }
        Credential::ManagedIdentity { client_id } => {
            ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                client_options,
            }))
            .map_err(map)?
        }
        Credential::AzureCli => AzureCliCredential::new(Some(AzureCliCredentialOptions {
            tenant_id: Some(tenant_id.to_string()),
            ..Default::default()
        }))
        .map_err(map)?,
        Credential::ClientSecret { client_id, secret } => ClientSecretCredential::new(
            tenant_id,
            client_id.clone(),
            Secret::new(secret.expose().to_string()),
            Some(ClientSecretCredentialOptions { client_options }),
        )
        .map_err(map)?,
    };
    Ok(credential)
}

/// The `azure_identity` cloud for `cloud`, and the `https`→`http` origin rewrite a loopback
/// `http://` authority needs.
fn identity_cloud(cloud: &Cloud, authority: &Url) -> Result<(CloudConfiguration, Option<Url>), AzureError> {
    match cloud {
        Cloud::Public => Ok((CloudConfiguration::AzurePublic, None)),
        Cloud::UsGovernment => Ok((CloudConfiguration::AzureGovernment, None)),
        Cloud::China => Ok((CloudConfiguration::AzureChina, None)),
        Cloud::Custom { .. } => {
            let mut custom = CustomConfiguration::default();
            match authority.scheme() {
                "https" => {
                    custom.authority_host = authority.as_str().trim_end_matches('/').to_string();
                    Ok((CloudConfiguration::Custom(custom), None))
                }
                "http" if is_loopback(authority) => {
                    let mut https = authority.clone();
                    https.set_scheme("https").map_err(|()| auth_error(format!("cannot use authority {authority}")))?;
                    if https.port().is_none() {
                        https
                            .set_port(Some(80))
                            .map_err(|()| auth_error(format!("cannot use authority {authority}")))?;
                    }
                    custom.authority_host = https.as_str().trim_end_matches('/').to_string();
                    Ok((CloudConfiguration::Custom(custom), Some(https)))
                }
                _ => Err(auth_error(format!(
                    "refusing to send credentials to {authority}: the authority must be https, or http on a loopback address"
                ))),
            }
        }
    }
}

/// `azure_core` transport over mlpolicy's `reqwest` client.
#[derive(Debug)]
struct IdentityTransport {
    http: reqwest::Client,
    /// Requests to this `https` origin go out as `http` (loopback emulator only).
    rewrite: Option<Url>,
}

impl IdentityTransport {
    async fn execute(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let mut url = request.url().clone();
        if let Some(origin) = &self.rewrite
            && same_origin(&url, origin)
        {
            url.set_scheme("http")
                .map_err(|()| azure_core::Error::with_message(ErrorKind::Other, "cannot rewrite scheme"))?;
        }
        let method = reqwest::Method::from_bytes(request.method().as_ref().as_bytes())
            .map_err(|e| azure_core::Error::with_message(ErrorKind::Other, e.to_string()))?;
        let mut builder = self.http.request(method, url);
        for (name, value) in request.headers().iter() {
            builder = builder.header(name.as_str(), value.as_str());
        }
        match request.body() {
            Body::Bytes(bytes) => builder = builder.body(bytes.to_vec()),
            Body::SeekableStream(_) => {
                return Err(azure_core::Error::with_message(ErrorKind::Other, "streaming bodies are not supported"));
            }
        }
        let response = builder.send().await.map_err(|e| {
            let kind = if e.is_connect() { ErrorKind::Connection } else { ErrorKind::Io };
            azure_core::Error::with_message(kind, e.to_string())
        })?;
        let status = StatusCode::from(response.status().as_u16());
        let mut headers = Headers::new();
        for (name, value) in response.headers() {
            if let Ok(v) = value.to_str() {
                headers.insert(name.as_str().to_string(), v.to_string());
            }
        }
        let bytes =
            response.bytes().await.map_err(|e| azure_core::Error::with_message(ErrorKind::Io, e.to_string()))?;
        Ok(AsyncRawResponse::from_bytes(status, headers, bytes.to_vec()))
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl HttpClient for IdentityTransport {
    fn execute_request<'life0, 'life1, 'async_trait>(
        &'life0 self,
        request: &'life1 Request,
    ) -> BoxFuture<'async_trait, azure_core::Result<AsyncRawResponse>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(self.execute(request))
    }
}

/// Client assertion from the GitHub Actions OIDC endpoint.
#[derive(Debug)]
struct GitHubAssertion {
    http: reqwest::Client,
    request_url: String,
    request_token: SecretString,
}

impl GitHubAssertion {
    async fn fetch(&self) -> azure_core::Result<String> {
        let fail = |m: String| azure_core::Error::with_message(ErrorKind::Credential, m);
        let mut url =
            Url::parse(&self.request_url).map_err(|e| fail(format!("invalid ACTIONS_ID_TOKEN_REQUEST_URL: {e}")))?;
        url.query_pairs_mut().append_pair("audience", FEDERATION_AUDIENCE);
        let response = self
            .http
            .get(url)
            .bearer_auth(self.request_token.expose())
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| fail(format!("GitHub OIDC token request failed: {e}")))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| fail(format!("GitHub OIDC token response unreadable: {e}")))?;
        if !status.is_success() {
            return Err(fail(format!(
                "GitHub OIDC token request returned HTTP {}; does the workflow have `permissions: id-token: write`?",
                status.as_u16()
            )));
        }
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| fail(format!("GitHub OIDC token response is not JSON: {e}")))?;
        value
            .get("value")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| fail("GitHub OIDC token response has no `value`".to_string()))
    }
}

impl ClientAssertion for GitHubAssertion {
    fn secret<'life0, 'life1, 'async_trait>(
        &'life0 self,
        _options: Option<ClientMethodOptions<'life1>>,
    ) -> BoxFuture<'async_trait, azure_core::Result<String>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(self.fetch())
    }
}

/// Reads a PEM file for [`super::ClientOptions::extra_ca_pem`].
pub fn read_pem(path: &Path) -> Result<Vec<u8>, AzureError> {
    std::fs::read(path).map_err(|e| {
        AzureError::local("read CA certificate", "InvalidCertificate", format!("cannot read {}: {e}", path.display()))
    })
}
