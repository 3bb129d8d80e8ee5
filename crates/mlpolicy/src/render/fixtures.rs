//! Hand-built plans for the renderers' tests: a small builder and one plan per case.

use mlpolicy_engine::plan::{
    AccessChange, Action, AttrChange, AttrValue, Attrs, Change, Drift, DriftKind, FORMAT_VERSION, Fingerprints,
    LiveRef, ObjectKind, Plan, PlanWaiver,
};

pub fn s(v: &str) -> AttrValue {
    AttrValue::Str(v.to_owned())
}

pub fn list(items: &[&str]) -> AttrValue {
    AttrValue::List(items.iter().map(|&i| i.to_owned()).collect())
}

pub fn map(pairs: &[(&str, &str)]) -> AttrValue {
    AttrValue::Map(pairs.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())).collect())
}

fn attrs(pairs: Vec<(&str, AttrValue)>) -> Attrs {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// A change under construction.
pub struct C(Change);

impl C {
    pub fn new(action: Action, kind: ObjectKind, address: &str, display: &str) -> Self {
        C(Change {
            address: address.to_owned(),
            kind,
            azure_id: format!("/fake/{address}"),
            display: display.to_owned(),
            action,
            reason: None,
            before: None,
            after: None,
            changes: Vec::new(),
            blast_radius: Vec::new(),
            desired: None,
            live_ref: LiveRef::default(),
            depends_on: None,
            moved_from: None,
        })
    }

    pub fn id(mut self, id: &str) -> Self {
        id.clone_into(&mut self.0.azure_id);
        self
    }

    pub fn before(mut self, pairs: Vec<(&str, AttrValue)>) -> Self {
        self.0.before = Some(attrs(pairs));
        self
    }

    pub fn after(mut self, pairs: Vec<(&str, AttrValue)>) -> Self {
        self.0.after = Some(attrs(pairs));
        self
    }

    pub fn change(mut self, name: &str, before: Option<AttrValue>, after: Option<AttrValue>) -> Self {
        self.0.changes.push(AttrChange { name: name.to_owned(), before, after, forces_replacement: false });
        self
    }

    pub fn forcing(mut self, name: &str, before: AttrValue, after: AttrValue) -> Self {
        self.0.changes.push(AttrChange {
            name: name.to_owned(),
            before: Some(before),
            after: Some(after),
            forces_replacement: true,
        });
        self
    }

    pub fn reason(mut self, r: &str) -> Self {
        self.0.reason = Some(r.to_owned());
        self
    }

    pub fn removes(mut self, item: &str) -> Self {
        self.0.blast_radius.push(item.to_owned());
        self
    }
}

/// A plan under construction; [`B::build`] fills in the summary.
#[derive(Default)]
pub struct B {
    changes: Vec<Change>,
    drift: Vec<Drift>,
    access: Vec<AccessChange>,
    waivers: Vec<PlanWaiver>,
    findings: Vec<String>,
    denied: bool,
}

impl B {
    pub fn change(mut self, c: C) -> Self {
        self.changes.push(c.0);
        self
    }

    pub fn drift(mut self, widens_access: bool, kind: DriftKind, summary: &str) -> Self {
        self.drift.push(Drift {
            widens_access,
            kind,
            summary: summary.to_owned(),
            azure_id: format!("/fake/drift/{}", self.drift.len()),
        });
        self
    }

    pub fn access(mut self, gain: bool, principals: &[&str], role: &str, scope: &str, via: Option<&str>) -> Self {
        self.access.push(AccessChange {
            gain,
            principals: principals.iter().map(|&p| p.to_owned()).collect(),
            role: role.to_owned(),
            scope: scope.to_owned(),
            via: via.map(str::to_owned),
        });
        self
    }

    pub fn waiver(mut self, address: &str, policy: &str, reason: &str) -> Self {
        self.waivers.push(PlanWaiver { address: address.into(), policy: policy.into(), reason: reason.into() });
        self
    }

    pub fn finding(mut self, f: &str) -> Self {
        self.findings.push(f.to_owned());
        self
    }

    pub fn deny(mut self) -> Self {
        self.denied = true;
        self
    }

    pub fn build(self) -> Plan {
        Plan {
            format_version: FORMAT_VERSION,
            summary: Plan::summarize(&self.changes),
            changes: self.changes,
            drift: self.drift,
            access_changes: self.access,
            waivers: self.waivers,
            policy_findings: self.findings,
            denied: self.denied,
            fingerprints: Fingerprints::default(),
        }
    }
}

fn create_group() -> C {
    C::new(Action::Create, ObjectKind::Group, "group.fraud_ds", "group \"ml-fraud-data-scientists\"")
        .id("mlpolicy.mlpolicy.fraud_ds")
        .after(vec![
            ("description", s("Data scientists of the fraud team")),
            ("members", list(&["alice@contoso.com", "bob@contoso.com"])),
        ])
}

fn update_members() -> C {
    C::new(Action::Update, ObjectKind::Group, "group.risk_ds", "group \"ml-risk-data-scientists\"")
        .id("mlpolicy.mlpolicy.risk_ds")
        .change(
            "members",
            Some(list(&["alice@contoso.com", "mallory@contoso.com"])),
            Some(list(&["alice@contoso.com", "carol@contoso.com"])),
        )
}

fn create_grant() -> C {
    C::new(
        Action::Create,
        ObjectKind::RoleAssignment,
        "grant \"AzureML Data Scientist\" to group.fraud_ds on workspace.fraud",
        "role assignment AzureML Data Scientist → ml-fraud-data-scientists @ mlw-fraud-prod",
    )
    .after(vec![
        ("principal", s("ml-fraud-data-scientists")),
        ("role", s("AzureML Data Scientist")),
        ("scope", s("mlw-fraud-prod")),
    ])
}

/// The example of cli.md, "The plan, as text".
pub fn cli_example() -> Plan {
    B::default()
        .change(create_group())
        .change(update_members())
        .change(create_grant())
        .access(
            true,
            &["alice@contoso.com", "bob@contoso.com"],
            "AzureML Data Scientist",
            "mlw-fraud-prod",
            Some("ml-fraud-data-scientists"),
        )
        .access(false, &["mallory@contoso.com"], "AzureML Data Scientist", "mlw-risk-prod", None)
        .build()
}

pub fn empty() -> Plan {
    B::default()
        .change(C::new(Action::NoOp, ObjectKind::ResourceGroup, "resource_group.ml", "resource group \"rg-ml\""))
        .build()
}

fn update_in_place() -> Plan {
    let old = "Data scientists of the risk team.\nThey train the scoring models.\nAsk #risk-ml for access.";
    let new =
        "Data scientists of the risk team.\nThey train and evaluate the scoring models.\nAsk #risk-ml for access.";
    B::default()
        .change(
            update_members()
                .change("description", Some(s(old)), Some(s(new)))
                .change("display_name", Some(s("ml-risk-ds")), Some(s("ml-risk-data-scientists")))
                .change("owners", None, Some(list(&["dana@contoso.com"])))
                .change("mail_nickname", Some(s("old")), None),
        )
        .change(
            C::new(Action::Update, ObjectKind::Workspace, "workspace.risk", "workspace \"mlw-risk-prod\"")
                .change(
                    "tags",
                    Some(map(&[("cost-center", "42"), ("env", "prod"), ("legacy", "yes")])),
                    Some(map(&[("cost-center", "43"), ("env", "prod"), ("team", "risk")])),
                )
                .change("public_network_access", Some(AttrValue::Bool(true)), Some(AttrValue::Bool(false)))
                .change("friendly_name", Some(s("Risk \"prod\" \\ main")), Some(s("Risk production"))),
        )
        .access(
            false,
            &["mallory@contoso.com"],
            "AzureML Data Scientist",
            "mlw-risk-prod",
            Some("ml-risk-data-scientists"),
        )
        .access(
            true,
            &["carol@contoso.com"],
            "AzureML Data Scientist",
            "mlw-risk-prod",
            Some("ml-risk-data-scientists"),
        )
        .build()
}

fn replace_workspace() -> Plan {
    B::default()
        .change(
            C::new(Action::Replace, ObjectKind::Workspace, "workspace.fraud", "workspace \"mlw-fraud-prod\"")
                .reason("location")
                .forcing("location", s("westeurope"), s("northeurope"))
                .change("description", Some(s("Fraud models")), Some(s("Fraud detection models")))
                .removes("grant \"AzureML Data Scientist\" to group.fraud_ds on workspace.fraud")
                .removes("the workspace's system-assigned identity"),
        )
        .build()
}

fn delete_identity() -> Plan {
    B::default()
        .change(
            C::new(Action::Delete, ObjectKind::Identity, "identity.trainer", "identity \"id-trainer\"")
                .reason("no longer in configuration")
                .before(vec![
                    ("location", s("westeurope")),
                    ("resource_group", s("rg-ml")),
                    ("tags", map(&[("mlpolicy-owner", "mlpolicy")])),
                ])
                .removes("federated.trainer_github")
                .removes("grant \"AzureML Compute Operator\" to identity.trainer on workspace.fraud"),
        )
        .access(false, &["id-trainer"], "AzureML Compute Operator", "mlw-fraud-prod", None)
        .build()
}

fn create_role_assignment() -> Plan {
    B::default()
        .change(create_grant())
        .change(C::new(Action::Read, ObjectKind::Group, "existing_group.platform", "group \"platform-admins\""))
        .access(
            true,
            &["alice@contoso.com", "bob@contoso.com"],
            "AzureML Data Scientist",
            "mlw-fraud-prod",
            Some("ml-fraud-data-scientists"),
        )
        .build()
}

fn drift() -> Plan {
    B::default()
        .drift(false, DriftKind::Attribute, "workspace mlw-fraud-prod: tag owner = \"someone\" (not in configuration)")
        .drift(
            true,
            DriftKind::RoleAssignment,
            "role assignment Owner → mallory@contoso.com @ mlw-fraud-prod (not in configuration)",
        )
        .drift(
            true,
            DriftKind::GroupMember,
            "group ml-fraud-data-scientists: member eve@contoso.com (not in configuration)",
        )
        .build()
}

pub fn nested_access() -> Plan {
    B::default()
        .change(C::new(Action::Update, ObjectKind::Group, "group.inner", "group \"ml-inner\"").change(
            "members",
            Some(list(&[])),
            Some(list(&["ml-outer"])),
        ))
        .access(
            true,
            &["alice@contoso.com", "bob@contoso.com", "carol@contoso.com"],
            "AzureML Data Scientist",
            "mlw-fraud-prod",
            Some("ml-outer → ml-inner"),
        )
        .access(true, &["dana@contoso.com"], "Reader", "rg-ml", Some("ml-outer → ml-inner"))
        .build()
}

fn waivers_and_findings() -> Plan {
    B::default()
        .change(C::new(
            Action::Create,
            ObjectKind::RoleAssignment,
            "grant \"Owner\" to user.dana on workspace.fraud",
            "role assignment Owner → dana@contoso.com @ mlw-fraud-prod",
        ))
        .access(true, &["dana@contoso.com"], "Owner", "mlw-fraud-prod", None)
        .waiver(
            "grant \"Contributor\" to user.erin on workspace.risk",
            "no_direct_user_grants",
            "break-glass account, reviewed by \"security\"",
        )
        .finding("warn no_direct_user_grants: grant \"Owner\" to user.dana on workspace.fraud assigns a role to a user")
        .finding("deny no_owner_on_workspaces: grant \"Owner\" to user.dana on workspace.fraud")
        .deny()
        .build()
}

/// Strings carrying terminal escapes, as a hostile tenant could.
pub fn hostile() -> Plan {
    B::default()
        .change(
            C::new(Action::Create, ObjectKind::Group, "group.x", "group \"evil\u{1b}[2J\"")
                .after(vec![("description", s("clear\u{1b}[2J screen")), ("members", list(&["a\u{7}b"]))]),
        )
        .drift(true, DriftKind::Attribute, "tag \u{1b}]0;title\u{7}")
        .finding("finding\u{1b}[31m red")
        .build()
}

/// Every case, by snapshot name.
pub fn all() -> Vec<(&'static str, Plan)> {
    vec![
        ("empty", empty()),
        ("cli_example", cli_example()),
        ("update_in_place", update_in_place()),
        ("replace_workspace", replace_workspace()),
        ("delete_identity", delete_identity()),
        ("create_role_assignment", create_role_assignment()),
        ("drift", drift()),
        ("nested_access", nested_access()),
        ("waivers_and_findings", waivers_and_findings()),
        ("adoptions", adoptions()),
    ]
}

/// Objects made outside mlpolicy: three only lack the ownership marker, one also changes.
fn adoptions() -> Plan {
    B::default()
        .change(
            C::new(
                Action::Adopt,
                ObjectKind::ResourceGroup,
                "resource_group.shared",
                "resource group \"rg-ml-shared\"",
            )
            .reason("ownership marker only")
            .change(
                "tags",
                Some(map(&[("env", "prod")])),
                Some(map(&[("env", "prod"), ("mlpolicy-owner", "contoso")])),
            ),
        )
        .change(
            C::new(Action::Adopt, ObjectKind::Group, "group.ml_admins", "group \"ml-admins\"")
                .reason("ownership marker only")
                .change("unique_name", None, Some(s("mlpolicy.contoso.ml_admins"))),
        )
        .change(
            C::new(Action::Update, ObjectKind::Group, "group.ml_readers", "group \"ml-readers\"")
                .reason("adopts a group made outside mlpolicy")
                .change(
                    "members",
                    Some(list(&["alice@contoso.com"])),
                    Some(list(&["alice@contoso.com", "bob@contoso.com"])),
                )
                .change("unique_name", None, Some(s("mlpolicy.contoso.ml_readers"))),
        )
        .change(
            C::new(
                Action::Adopt,
                ObjectKind::RoleAssignment,
                "grant \"Reader\" to group.ml_admins on resource_group.shared",
                "role assignment Reader → ml-admins @ rg-ml-shared",
            )
            .reason("ownership marker only")
            .change("description", Some(s("")), Some(s("Managed by mlpolicy [mlpolicy:contoso]"))),
        )
        .access(true, &["bob@contoso.com"], "Reader", "rg-ml-shared", Some("ml-readers"))
        .build()
}

/// `n` group creations and `access` access changes, for the size limit.
pub fn large(n: usize, access: usize) -> Plan {
    let mut b = B::default();
    for i in 0..n {
        b = b.change(
            C::new(
                Action::Create,
                ObjectKind::Group,
                &format!("group.team[\"{i:05}\"]"),
                &format!("group \"ml-team-{i:05}\""),
            )
            .after(vec![
                ("description", s(&format!("Team {i:05} of the platform"))),
                ("members", list(&["alice@contoso.com", "bob@contoso.com"])),
            ]),
        );
    }
    for i in 0..access {
        b = b.access(true, &["alice@contoso.com", "bob@contoso.com"], "Reader", &format!("mlw-{i:05}"), None);
    }
    b.drift(
        true,
        DriftKind::RoleAssignment,
        "role assignment Owner → mallory@contoso.com @ mlw-fraud-prod (not in configuration)",
    )
    .build()
}
