//! The built-in management API application `api://clavis` and its app roles
//! (the management roles). Role ids are Microsoft Graph's own, so tooling
//! that knows Graph's role GUIDs recognises them.

use clavis_store::AppRole;
use uuid::{uuid, Uuid};

/// Identifier URI of the management API; tokens for it use `api://clavis/.default`.
pub const MANAGEMENT_API_URI: &str = "api://clavis";
/// Other names of the management API in a client-credentials scope: what
/// Microsoft Graph is called in Azure (its URL, with or without the trailing
/// `/` the Azure CLI adds, and its well-known appId), so Graph clients such
/// as `msgraph-sdk` and `az account get-access-token --resource-type ms-graph`
/// get a token for Clavis's `/v1.0` with no change of scope. The token is
/// the management API's own (`aud` is its appId), so `/v1.0` accepts it and
/// nothing else does.
pub const MANAGEMENT_API_ALIASES: [&str; 3] = [
    "https://graph.microsoft.com",
    "https://graph.microsoft.com/",
    "00000003-0000-0000-c000-000000000000",
];

/// The resource a scope's `{resource}` names: the management API for any of
/// its [aliases](MANAGEMENT_API_ALIASES) (compared without case), else itself.
pub fn canonical_resource(resource: &str) -> &str {
    if MANAGEMENT_API_ALIASES
        .iter()
        .any(|alias| alias.eq_ignore_ascii_case(resource))
    {
        MANAGEMENT_API_URI
    } else {
        resource
    }
}

/// Display name of the built-in management application.
pub const MANAGEMENT_API_NAME: &str = "Clavis Management API";

/// A management role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Create, read, change and delete every application of the tenant.
    ApplicationReadWriteAll,
    /// Create applications, and manage only those the caller owns.
    ApplicationReadWriteOwnedBy,
    /// Read every application (never a secret value).
    ApplicationReadAll,
    /// Read the audit log.
    AuditLogReadAll,
    /// Add and remove the caller's own application's client secrets, and
    /// nothing else (what `clavis agent` needs to rotate its own secret).
    ApplicationCredentialsRotateSelf,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::ApplicationReadWriteAll,
        Role::ApplicationReadWriteOwnedBy,
        Role::ApplicationReadAll,
        Role::AuditLogReadAll,
        Role::ApplicationCredentialsRotateSelf,
    ];

    /// The value in the `roles` claim.
    pub fn value(self) -> &'static str {
        match self {
            Role::ApplicationReadWriteAll => "Application.ReadWrite.All",
            Role::ApplicationReadWriteOwnedBy => "Application.ReadWrite.OwnedBy",
            Role::ApplicationReadAll => "Application.Read.All",
            Role::AuditLogReadAll => "AuditLog.Read.All",
            Role::ApplicationCredentialsRotateSelf => "Application.Credentials.RotateSelf",
        }
    }

    /// The app role id (Microsoft Graph's id for the same permission; Graph
    /// has no self-rotation permission, so that one is Clavis's own).
    pub fn id(self) -> Uuid {
        match self {
            Role::ApplicationReadWriteAll => uuid!("1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9"),
            Role::ApplicationReadWriteOwnedBy => uuid!("18a4783c-866b-4cc7-a460-3d5e5662c884"),
            Role::ApplicationReadAll => uuid!("9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30"),
            Role::AuditLogReadAll => uuid!("b0afded3-3588-46d8-8b3d-9842eff778da"),
            Role::ApplicationCredentialsRotateSelf => {
                uuid!("fca169e4-045d-4142-b6d4-6eab3273c845")
            }
        }
    }

    fn description(self) -> &'static str {
        match self {
            Role::ApplicationReadWriteAll => "Create, read, update and delete all applications and their secrets, and grant app roles.",
            Role::ApplicationReadWriteOwnedBy => "Create applications and manage only the applications this app owns.",
            Role::ApplicationReadAll => "Read all applications and service principals, without secret values.",
            Role::AuditLogReadAll => "Read the audit log.",
            Role::ApplicationCredentialsRotateSelf => {
                "Add and remove this application's own client secrets, and nothing else."
            }
        }
    }

    /// Parse a `roles` claim value.
    pub fn parse(value: &str) -> Option<Role> {
        Self::ALL.into_iter().find(|r| r.value() == value)
    }

    /// The role as an app role of the management API.
    pub fn app_role(self) -> AppRole {
        AppRole {
            id: self.id(),
            value: self.value().into(),
            display_name: self.value().into(),
            description: self.description().into(),
            allowed_member_types: vec!["Application".into()],
            is_enabled: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_names_are_the_management_api() {
        for alias in [
            "https://graph.microsoft.com",
            "https://graph.microsoft.com/",
            "HTTPS://Graph.Microsoft.com/",
            "00000003-0000-0000-C000-000000000000",
        ] {
            assert_eq!(canonical_resource(alias), MANAGEMENT_API_URI, "{alias}");
        }
        for other in [
            "api://orders",
            "https://graph.microsoft.com//",
            "https://graph.microsoft.com.evil",
            "https://graph.microsoft.us",
        ] {
            assert_eq!(canonical_resource(other), other);
        }
    }
}
