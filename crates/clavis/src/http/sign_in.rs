//! The sign-in log entry of one client authentication, the same at the
//! token, introspection and revocation endpoints: who presented which client
//! id, from where, with which user agent, and how it ended. A success names
//! the credential, so the store moves its `lastUsedDateTime` and the
//! compromise report sees the use. Entries go to
//! [`SignInLog::record`](crate::signin_log::SignInLog::record); nothing here
//! touches a secret.

use std::net::IpAddr;

use axum::http::{header, HeaderMap};
use clavis_store::{AuditResult, SignIn};
use time::OffsetDateTime;
use uuid::Uuid;

/// Longest user agent kept, in characters.
const MAX_USER_AGENT: usize = 256;

/// What is known of a client authentication before its outcome.
#[derive(Debug, Clone)]
pub struct Attempt {
    at: OffsetDateTime,
    /// The client id presented, when it was a GUID.
    app_id: Option<Uuid>,
    client_ip: Option<String>,
    user_agent: Option<String>,
}

impl Attempt {
    /// An attempt at `at` from `source` presenting `client_id`.
    pub fn new(
        headers: &HeaderMap,
        source: Option<IpAddr>,
        client_id: Option<&str>,
        at: OffsetDateTime,
    ) -> Self {
        Self {
            at,
            app_id: client_id.and_then(|c| Uuid::try_parse(c).ok()),
            client_ip: source.map(|ip| ip.to_string()),
            user_agent: headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(MAX_USER_AGENT).collect()),
        }
    }

    /// The client id is known only once the body is read.
    pub fn presenting(mut self, client_id: Option<&str>) -> Self {
        self.app_id = client_id.and_then(|c| Uuid::try_parse(c).ok());
        self
    }

    /// The client authenticated with credential `key_id` (and, at the token
    /// endpoint, got a token for `resource`; `None` at introspection and
    /// revocation, where no token is minted).
    pub fn succeeded(&self, tenant_id: Uuid, key_id: Uuid, resource: Option<Uuid>) -> SignIn {
        self.entry(
            tenant_id,
            AuditResult::Success,
            Some(key_id),
            resource,
            None,
        )
    }

    /// The request was refused with Entra's `error_code`.
    pub fn failed(&self, tenant_id: Uuid, error_code: u32) -> SignIn {
        self.entry(
            tenant_id,
            AuditResult::Failure,
            None,
            None,
            Some(error_code),
        )
    }

    fn entry(
        &self,
        tenant_id: Uuid,
        result: AuditResult,
        key_id: Option<Uuid>,
        resource: Option<Uuid>,
        error_code: Option<u32>,
    ) -> SignIn {
        SignIn {
            id: Uuid::new_v4(),
            tenant_id,
            at: self.at,
            last_at: self.at,
            count: 1,
            app_id: self.app_id,
            key_id,
            resource,
            client_ip: self.client_ip.clone(),
            user_agent: self.user_agent.clone(),
            result,
            error_code,
        }
    }
}
