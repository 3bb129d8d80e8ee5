//! Cloud endpoints: where ARM, Microsoft Graph and the Entra authority live, and which token
//! scopes each audience needs.
//!
//! A custom cloud is how the local emulator is addressed: ARM, Graph and the authority are one
//! base URL such as `http://127.0.0.1:PORT`, and the token scopes stay the public ones unless
//! configured.

use url::Url;

use super::error::AzureError;

const PUBLIC_ARM_SCOPE: &str = "https://management.azure.com/.default";
const PUBLIC_GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

/// A national cloud or a custom set of endpoints.
#[expect(clippy::large_enum_variant, reason = "built once per client")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cloud {
    /// Azure public cloud.
    Public,
    /// Azure US Government.
    UsGovernment,
    /// Azure operated by 21Vianet (China).
    China,
    /// Custom endpoints (the emulator, Azure Stack).
    Custom {
        /// ARM base URL, e.g. `http://127.0.0.1:8080`.
        arm: Url,
        /// Graph base URL without `/v1.0`.
        graph: Url,
        /// Entra authority host; tokens come from `{authority}/{tenant}/oauth2/v2.0/token`.
        authority: Url,
        /// ARM token scope; the public one when `None`.
        arm_scope: Option<String>,
        /// Graph token scope; the public one when `None`.
        graph_scope: Option<String>,
    },
}

/// Which API a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Audience {
    /// Azure Resource Manager.
    Arm,
    /// Microsoft Graph.
    Graph,
}

impl Audience {
    /// Short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Audience::Arm => "ARM",
            Audience::Graph => "Microsoft Graph",
        }
    }
}

fn fixed(url: &str) -> Url {
    // INVARIANT: the literals below are valid absolute URLs.
    Url::parse(url).expect("built-in cloud URL")
}

impl Cloud {
    /// A custom cloud whose ARM, Graph and authority endpoints all share one base URL.
    pub fn single_endpoint(base: &str) -> Result<Self, AzureError> {
        let url = Url::parse(base).map_err(|e| {
            AzureError::local("configure cloud", "InvalidEndpoint", format!("invalid base URL `{base}`: {e}"))
        })?;
        Ok(Cloud::Custom { arm: url.clone(), graph: url.clone(), authority: url, arm_scope: None, graph_scope: None })
    }

    /// Parses `public`, `usgovernment` or `china` (the names `mlpolicy.yaml` uses).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "public" | "azurecloud" | "azurepublic" => Some(Cloud::Public),
            "usgovernment" | "azureusgovernment" | "usgov" => Some(Cloud::UsGovernment),
            "china" | "azurechinacloud" | "azurechina" => Some(Cloud::China),
            _ => None,
        }
    }

    /// ARM base URL.
    pub fn arm_base(&self) -> Url {
        match self {
            Cloud::Public => fixed("https://management.azure.com"),
            Cloud::UsGovernment => fixed("https://management.usgovcloudapi.net"),
            Cloud::China => fixed("https://management.chinacloudapi.cn"),
            Cloud::Custom { arm, .. } => arm.clone(),
        }
    }

    /// Graph base URL (without `/v1.0`).
    pub fn graph_base(&self) -> Url {
        match self {
            Cloud::Public => fixed("https://graph.microsoft.com"),
            Cloud::UsGovernment => fixed("https://graph.microsoft.us"),
            Cloud::China => fixed("https://microsoftgraph.chinacloudapi.cn"),
            Cloud::Custom { graph, .. } => graph.clone(),
        }
    }

    /// Entra authority host.
    pub fn authority(&self) -> Url {
        match self {
            Cloud::Public => fixed("https://login.microsoftonline.com"),
            Cloud::UsGovernment => fixed("https://login.microsoftonline.us"),
            Cloud::China => fixed("https://login.chinacloudapi.cn"),
            Cloud::Custom { authority, .. } => authority.clone(),
        }
    }

    /// Token scope (`{resource}/.default`) for an audience.
    pub fn scope(&self, audience: Audience) -> String {
        match (self, audience) {
            (Cloud::Public, Audience::Arm) => PUBLIC_ARM_SCOPE.to_string(),
            (Cloud::Public, Audience::Graph) => PUBLIC_GRAPH_SCOPE.to_string(),
            (Cloud::UsGovernment, Audience::Arm) => "https://management.usgovcloudapi.net/.default".to_string(),
            (Cloud::UsGovernment, Audience::Graph) => "https://graph.microsoft.us/.default".to_string(),
            (Cloud::China, Audience::Arm) => "https://management.chinacloudapi.cn/.default".to_string(),
            (Cloud::China, Audience::Graph) => "https://microsoftgraph.chinacloudapi.cn/.default".to_string(),
            (Cloud::Custom { arm_scope, .. }, Audience::Arm) => {
                arm_scope.clone().unwrap_or_else(|| PUBLIC_ARM_SCOPE.to_string())
            }
            (Cloud::Custom { graph_scope, .. }, Audience::Graph) => {
                graph_scope.clone().unwrap_or_else(|| PUBLIC_GRAPH_SCOPE.to_string())
            }
        }
    }

    /// Base URL for an audience.
    pub fn base(&self, audience: Audience) -> Url {
        match audience {
            Audience::Arm => self.arm_base(),
            Audience::Graph => self.graph_base(),
        }
    }
}

/// True when two URLs share scheme, host and port (a next link or poll URL may only go there).
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme().eq_ignore_ascii_case(b.scheme())
        && a.host_str().map(str::to_ascii_lowercase) == b.host_str().map(str::to_ascii_lowercase)
        && a.port_or_known_default() == b.port_or_known_default()
}

/// True for `localhost`, `127.0.0.0/8` and `::1`.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}
