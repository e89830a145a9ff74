//! Roles and what each may do: the one table ([`TENANT_ROLE_TABLE`],
//! [`PROVIDER_ROLE_TABLE`]) that the API enforces and `docs/roles.md` is generated from
//! ([`roles_markdown`]; a test keeps the file in step).
//!
//! A route declares the [`Permission`] it needs (in `kura-server`'s route tables); a
//! principal passes when its role's row holds that permission. Tenant roles exist on the customer listener only, provider roles on the
//! management listener only.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::db::DbError;

/// Something a route lets its caller do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Tenant: see the tenant's status; manage one's own sessions, password, API tokens
    /// and TOTP.
    ViewStatus,
    /// Tenant: manage machines, plans and backups.
    OperateBackups,
    /// Tenant: restore data.
    Restore,
    /// Tenant: create, disable and delete users and change their roles.
    ManageUsers,
    /// Tenant: the admin IP allow-list, the TOTP policy and support access.
    ManageSecurity,
    /// Tenant: read and download the event log.
    ReadEvents,
    /// Provider: list and show tenants.
    ReadTenants,
    /// Provider: create tenants, change contracts, suspend and resume.
    ManageTenants,
    /// Provider: issue registration tokens and revoke machines.
    ManageMachines,
    /// Provider: run a service job now (gc or verify of a tenant's vault, expiry, mail).
    RunJobs,
    /// Provider: use the console; manage one's own sessions, API tokens and TOTP.
    OwnAccount,
    /// Provider: create, disable and enable operator accounts; reset their TOTP.
    ManageOperators,
    /// Provider: publish and update notices to tenants; answer support requests.
    Communicate,
    /// Provider: approve or reject another operator-admin's destructive request (the
    /// two-person rule).
    Approve,
    /// Provider: read, download and check the operator work log.
    ReadWorkLog,
}

/// The permissions tenant roles hold, in the order the role matrix shows them.
pub const TENANT_PERMISSIONS: [Permission; 6] = [
    Permission::ViewStatus,
    Permission::OperateBackups,
    Permission::Restore,
    Permission::ManageUsers,
    Permission::ManageSecurity,
    Permission::ReadEvents,
];

impl Permission {
    /// What the permission allows, in the words of `docs/roles.md`.
    pub fn description(self) -> &'static str {
        match self {
            Permission::ViewStatus => {
                "see the tenant's status; manage one's own sessions, password, API tokens and TOTP"
            }
            Permission::OperateBackups => "manage machines, plans and backups",
            Permission::Restore => "restore data",
            Permission::ManageUsers => "create, disable, unlock and delete users; change roles; reset TOTP",
            Permission::ManageSecurity => {
                "set the admin IP allow-list and the TOTP policy; grant and withdraw support access"
            }
            Permission::ReadEvents => "read and download the tenant's event log",
            Permission::ReadTenants => {
                "list and show tenants; see a tenant's snapshots while it grants support access"
            }
            Permission::ManageTenants => "create tenants, change contracts, suspend, resume and terminate",
            Permission::ManageMachines => "issue registration tokens, revoke machines",
            Permission::RunJobs => {
                "run a service job now: gc or verify of a tenant's vault, expiry, mail delivery"
            }
            Permission::OwnAccount => "use the console; manage one's own sessions, API tokens and TOTP",
            Permission::ManageOperators => {
                "create, disable and enable operator accounts; reset an operator's TOTP"
            }
            Permission::Communicate => "publish and update notices to tenants; answer support requests",
            Permission::Approve => {
                "approve or reject another operator-admin's destructive request (two-person rule: terminate, purge now, lower immutability, delete an operator)"
            }
            Permission::ReadWorkLog => {
                "read, download and check the operator work log (and every event chain)"
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ViewStatus => "view-status",
            Permission::OperateBackups => "operate-backups",
            Permission::Restore => "restore",
            Permission::ManageUsers => "manage-users",
            Permission::ManageSecurity => "manage-security",
            Permission::ReadEvents => "read-events",
            Permission::ReadTenants => "read-tenants",
            Permission::ManageTenants => "manage-tenants",
            Permission::ManageMachines => "manage-machines",
            Permission::RunJobs => "run-jobs",
            Permission::OwnAccount => "own-account",
            Permission::ManageOperators => "manage-operators",
            Permission::Communicate => "communicate",
            Permission::Approve => "approve",
            Permission::ReadWorkLog => "read-work-log",
        }
    }
}

/// A tenant user's role (customer listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TenantRole {
    Admin,
    Operator,
    RestoreOperator,
    Auditor,
}

/// Provider staff's role (management listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderRole {
    OperatorAdmin,
    Operator,
}

/// The tenant roles and their permissions. The single source of truth.
pub const TENANT_ROLE_TABLE: &[(TenantRole, &[Permission])] = &[
    (
        TenantRole::Admin,
        &[
            Permission::ViewStatus,
            Permission::OperateBackups,
            Permission::Restore,
            Permission::ManageUsers,
            Permission::ManageSecurity,
            Permission::ReadEvents,
        ],
    ),
    (
        TenantRole::Operator,
        &[
            Permission::ViewStatus,
            Permission::OperateBackups,
            Permission::Restore,
        ],
    ),
    (
        TenantRole::RestoreOperator,
        &[Permission::ViewStatus, Permission::Restore],
    ),
    (
        TenantRole::Auditor,
        &[Permission::ViewStatus, Permission::ReadEvents],
    ),
];

/// The provider roles and their permissions.
pub const PROVIDER_ROLE_TABLE: &[(ProviderRole, &[Permission])] = &[
    (
        ProviderRole::OperatorAdmin,
        &[
            Permission::ReadTenants,
            Permission::ManageTenants,
            Permission::ManageMachines,
            Permission::RunJobs,
            Permission::OwnAccount,
            Permission::ManageOperators,
            Permission::Communicate,
            Permission::Approve,
            Permission::ReadWorkLog,
        ],
    ),
    (
        ProviderRole::Operator,
        &[
            Permission::ReadTenants,
            Permission::ManageMachines,
            Permission::RunJobs,
            Permission::OwnAccount,
            Permission::Communicate,
        ],
    ),
];

fn permissions_of<R: PartialEq + Copy>(
    table: &[(R, &'static [Permission])],
    role: R,
) -> &'static [Permission] {
    table
        .iter()
        .find(|(candidate, _)| *candidate == role)
        .map_or(&[], |(_, permissions)| permissions)
}

impl TenantRole {
    pub const ALL: [TenantRole; 4] = [
        TenantRole::Admin,
        TenantRole::Operator,
        TenantRole::RestoreOperator,
        TenantRole::Auditor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TenantRole::Admin => "admin",
            TenantRole::Operator => "operator",
            TenantRole::RestoreOperator => "restore-operator",
            TenantRole::Auditor => "auditor",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == text)
    }

    pub fn permissions(self) -> &'static [Permission] {
        permissions_of(TENANT_ROLE_TABLE, self)
    }

    pub fn allows(self, permission: Permission) -> bool {
        self.permissions().contains(&permission)
    }

    /// Whether everything `other` may do, this role may do too: an API token's role must
    /// be covered by its owner's.
    pub fn covers(self, other: TenantRole) -> bool {
        other.permissions().iter().all(|p| self.allows(*p))
    }
}

impl FromStr for TenantRole {
    type Err = DbError;

    fn from_str(text: &str) -> Result<Self, DbError> {
        TenantRole::parse(text).ok_or_else(|| DbError::Corrupt(format!("unknown tenant role {text:?}")))
    }
}

impl ProviderRole {
    pub const ALL: [ProviderRole; 2] = [ProviderRole::OperatorAdmin, ProviderRole::Operator];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderRole::OperatorAdmin => "operator-admin",
            ProviderRole::Operator => "operator",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == text)
    }

    pub fn allows(self, permission: Permission) -> bool {
        permissions_of(PROVIDER_ROLE_TABLE, self).contains(&permission)
    }

    /// Whether everything `other` may do, this role may do too: an operator's API token
    /// never holds more than its owner.
    pub fn covers(self, other: ProviderRole) -> bool {
        permissions_of(PROVIDER_ROLE_TABLE, other)
            .iter()
            .all(|p| self.allows(*p))
    }
}

impl FromStr for ProviderRole {
    type Err = DbError;

    fn from_str(text: &str) -> Result<Self, DbError> {
        ProviderRole::parse(text).ok_or_else(|| DbError::Corrupt(format!("unknown provider role {text:?}")))
    }
}

/// `docs/roles.md`: the role tables and what each route needs (a permission's name, or
/// the credential of a route without a role).
pub fn roles_markdown(
    customer_routes: &[(String, String)],
    management_routes: &[(String, String)],
) -> String {
    let mut out = String::from(
        "# Roles\n\n\
         Generated from `crates/kura-service/src/authz/roles.rs` and the route tables of \
         `kura-server` (`cargo test -p kura-server roles_doc` checks it; set `KURA_WRITE_ROLES_DOC=1` to rewrite it). The server enforces exactly \
         this table.\n\n\
         ## Tenant roles (customer listener)\n\n",
    );
    let tenant_roles: Vec<&str> = TenantRole::ALL.iter().map(|r| r.as_str()).collect();
    push_matrix(&mut out, &tenant_roles, &TENANT_PERMISSIONS, |role, p| {
        TenantRole::parse(role).is_some_and(|r| r.allows(p))
    });
    out.push_str("\n## Provider roles (management listener)\n\n");
    let provider_roles: Vec<&str> = ProviderRole::ALL.iter().map(|r| r.as_str()).collect();
    let provider_permissions = [
        Permission::ReadTenants,
        Permission::ManageTenants,
        Permission::ManageMachines,
        Permission::RunJobs,
        Permission::OwnAccount,
        Permission::ManageOperators,
        Permission::Communicate,
        Permission::Approve,
    ];
    push_matrix(&mut out, &provider_roles, &provider_permissions, |role, p| {
        ProviderRole::parse(role).is_some_and(|r| r.allows(p))
    });
    for (title, routes) in [
        ("Customer routes", customer_routes),
        ("Management routes", management_routes),
    ] {
        out.push_str(&format!("\n## {title}\n\n| route | needs |\n|---|---|\n"));
        for (route, needs) in routes {
            out.push_str(&format!("| `{route}` | {needs} |\n"));
        }
    }
    out.push_str(
        "\nRoutes with no role: sign-in (throttled) and the password reset routes are open to \
         anyone, `POST /api/v1/agents/register` takes a registration token in its body, and \
         `/healthz` and the management API's OpenAPI document are reachable on the management \
         network only; `/metrics` wants the scrape token (`metrics_token_file`) or, without \
         one, a caller inside `operator_networks`; the customer API's OpenAPI document describes the API to \
         anyone (it holds no data). The portal's sign-in, password reissue and language forms \
         are open too (each checks the browser's own double-submit token), as are its style \
         sheet and scripts (`/static/…`) and the service's CA certificate (`/ca.pem`, public). \
         A portal page a role may not use answers `403`; without a session it sends the browser \
         to `/login`. There is no flag, variable or route that skips these checks.\n",
    );
    out
}

fn push_matrix(
    out: &mut String,
    roles: &[&str],
    permissions: &[Permission],
    allows: impl Fn(&str, Permission) -> bool,
) {
    out.push_str("| permission | meaning |");
    for role in roles {
        out.push_str(&format!(" {role} |"));
    }
    out.push_str("\n|---|---|");
    for _ in roles {
        out.push_str("---|");
    }
    out.push('\n');
    for permission in permissions {
        out.push_str(&format!(
            "| {} | {} |",
            permission.as_str(),
            permission.description()
        ));
        for role in roles {
            out.push_str(if allows(role, *permission) {
                " yes |"
            } else {
                " – |"
            });
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_order() {
        for role in TenantRole::ALL {
            assert_eq!(TenantRole::parse(role.as_str()), Some(role));
            assert!(TenantRole::Admin.covers(role));
        }
        assert!(!TenantRole::Auditor.covers(TenantRole::Operator));
        assert!(!TenantRole::RestoreOperator.covers(TenantRole::Auditor));
        assert!(ProviderRole::OperatorAdmin.allows(Permission::ManageTenants));
        assert!(!ProviderRole::Operator.allows(Permission::ManageTenants));
    }
}
