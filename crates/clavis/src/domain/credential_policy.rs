//! The rules an application's new client secrets must follow: its tenant's
//! credential policy with the application's exceptions applied (Entra's app
//! management policy), and the check `addPassword` runs against them. Every
//! refusal names the rule and where it was set, so the caller knows whom to
//! ask.

use clavis_store::{Application, CredentialPolicy, Tenant};
use time::{Duration, OffsetDateTime};

use super::secret_lifetime;

/// Largest number of days a lifetime rule may be set to (ten years).
pub const MAX_DAYS: i64 = 3650;
/// Largest value of the "most secrets per application" rule.
pub const MAX_SECRETS_LIMIT: i64 = 100;

/// Where a rule's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Tenant,
    Application,
}

impl Source {
    /// How a refusal names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Tenant => "tenant",
            Source::Application => "application",
        }
    }
}

/// One rule's value and where it was set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule<T> {
    pub value: T,
    pub source: Source,
}

fn rule<T>(tenant: T, application: Option<T>) -> Rule<T> {
    match application {
        Some(value) => Rule {
            value,
            source: Source::Application,
        },
        None => Rule {
            value: tenant,
            source: Source::Tenant,
        },
    }
}

/// The rules in force for one application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EffectivePolicy {
    /// Longest lifetime of a new secret, in seconds.
    pub max_lifetime_secs: Rule<i64>,
    /// Lifetime of a new secret whose request names no end, in seconds.
    pub default_lifetime_secs: Rule<i64>,
    /// The most secrets the application may hold at once.
    pub max_secrets: Rule<i64>,
    /// Whether the application may be given secrets at all.
    pub password_credentials_allowed: Rule<bool>,
}

impl EffectivePolicy {
    /// The tenant's rules with `overrides` (an application's) applied.
    pub fn of(tenant: &Tenant, overrides: &CredentialPolicy) -> Self {
        EffectivePolicy {
            max_lifetime_secs: rule(tenant.max_secret_lifetime_secs, overrides.max_lifetime_secs),
            default_lifetime_secs: rule(
                tenant.default_secret_lifetime_secs,
                overrides.default_lifetime_secs,
            ),
            max_secrets: rule(tenant.max_secrets_per_application, overrides.max_secrets),
            password_credentials_allowed: rule(
                tenant.password_credentials_allowed,
                overrides.password_credentials_allowed,
            ),
        }
    }

    /// The validity window of a new secret on `app`, or why it may not
    /// have one (the text names the rule and where it was set).
    pub fn admit(
        &self,
        app: &Application,
        now: OffsetDateTime,
        start: Option<OffsetDateTime>,
        end: Option<OffsetDateTime>,
    ) -> Result<(OffsetDateTime, OffsetDateTime), String> {
        let allowed = self.password_credentials_allowed;
        if !allowed.value {
            return Err(format!(
                "Client secrets are not allowed for this application: the {} credential policy sets passwordCredentialsAllowed to false. An administrator can change it with {}.",
                allowed.source.as_str(),
                patch_hint(allowed.source),
            ));
        }
        let most = self.max_secrets;
        let held = i64::try_from(app.password_credentials.len()).unwrap_or(i64::MAX);
        if held >= most.value {
            return Err(format!(
                "This application already holds {held} client secret(s), the most the {} credential policy allows (maxSecretsPerApplication = {}). Remove one it no longer uses with removePassword first.",
                most.source.as_str(),
                most.value,
            ));
        }
        let max = self.max_lifetime_secs;
        let max_lifetime = Duration::seconds(max.value);
        if let Some(end) = end {
            // Counted from now, whenever the secret starts (a later start
            // does not buy a later end).
            if end - now > max_lifetime + secret_lifetime::CLOCK_SKEW {
                return Err(format!(
                    "endDateTime is too far in the future: the {} credential policy allows client secrets to live at most {} days from now (maxSecretLifetimeDays). Choose an earlier endDateTime.",
                    max.source.as_str(),
                    max_lifetime.whole_days(),
                ));
            }
        }
        secret_lifetime::window(
            now,
            start,
            end,
            Duration::seconds(self.default_lifetime_secs.value),
            max_lifetime,
        )
    }
}

fn patch_hint(source: Source) -> &'static str {
    match source {
        Source::Tenant => "PATCH /v1.0/policies/tenantPolicy",
        Source::Application => "PATCH /v1.0/applications/{id}/credentialPolicy",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clavis_store::PasswordCredential;
    use time::macros::datetime;
    use uuid::Uuid;

    const NOW: OffsetDateTime = datetime!(2026-01-01 0:00 UTC);
    const DAY: i64 = 86_400;

    fn tenant() -> Tenant {
        Tenant {
            id: Uuid::nil(),
            name: "t".into(),
            signing_alg: "ES256".into(),
            max_secret_lifetime_secs: 730 * DAY,
            default_secret_lifetime_secs: 180 * DAY,
            max_secrets_per_application: 2,
            password_credentials_allowed: true,
            created_at: NOW,
        }
    }

    fn app(secrets: usize) -> Application {
        let credential = |n: u128| PasswordCredential {
            key_id: Uuid::from_u128(n),
            display_name: String::new(),
            hint: "abc".into(),
            secret_hash: [n as u8; 32],
            start_at: NOW,
            end_at: NOW + Duration::days(1),
            created_at: NOW,
            last_used_at: None,
        };
        Application {
            id: Uuid::nil(),
            tenant_id: Uuid::nil(),
            app_id: Uuid::nil(),
            service_principal_id: Uuid::nil(),
            display_name: "a".into(),
            identifier_uris: vec![],
            app_roles: vec![],
            owners: vec![],
            password_credentials: (0..secrets as u128).map(credential).collect(),
            credential_policy: CredentialPolicy::default(),
            builtin: false,
            created_at: NOW,
        }
    }

    #[test]
    fn tenant_rules_apply_where_the_application_sets_none() {
        let policy = EffectivePolicy::of(&tenant(), &CredentialPolicy::default());
        assert_eq!(policy.max_secrets.source, Source::Tenant);
        let (start, end) = policy.admit(&app(0), NOW, None, None).unwrap();
        assert_eq!((start, end), (NOW, NOW + Duration::days(180)));
        let err = policy.admit(&app(2), NOW, None, None).unwrap_err();
        assert!(err.contains("maxSecretsPerApplication = 2"), "{err}");
        assert!(err.contains("tenant credential policy"), "{err}");
        let err = policy
            .admit(&app(0), NOW, None, Some(NOW + Duration::days(731)))
            .unwrap_err();
        assert!(err.contains("at most 730 days"), "{err}");
        assert!(err.contains("tenant credential policy"), "{err}");
    }

    #[test]
    fn application_overrides_win_and_are_named() {
        let overrides = CredentialPolicy {
            max_lifetime_secs: Some(30 * DAY),
            default_lifetime_secs: Some(7 * DAY),
            max_secrets: Some(5),
            password_credentials_allowed: None,
        };
        let policy = EffectivePolicy::of(&tenant(), &overrides);
        let (_, end) = policy.admit(&app(3), NOW, None, None).unwrap();
        assert_eq!(end, NOW + Duration::days(7));
        let err = policy
            .admit(&app(0), NOW, None, Some(NOW + Duration::days(31)))
            .unwrap_err();
        assert!(err.contains("application credential policy"), "{err}");
        assert!(err.contains("30 days"), "{err}");
        let err = policy.admit(&app(5), NOW, None, None).unwrap_err();
        assert!(err.contains("maxSecretsPerApplication = 5"), "{err}");
        assert!(err.contains("application credential policy"), "{err}");
        // A longer lifetime than the tenant's is an exception an
        // administrator may grant.
        let long = CredentialPolicy {
            max_lifetime_secs: Some(1000 * DAY),
            ..CredentialPolicy::default()
        };
        let policy = EffectivePolicy::of(&tenant(), &long);
        assert!(policy
            .admit(&app(0), NOW, None, Some(NOW + Duration::days(900)))
            .is_ok());
    }

    #[test]
    fn a_later_start_does_not_buy_a_later_end() {
        let policy = EffectivePolicy::of(&tenant(), &CredentialPolicy::default());
        let start = NOW + Duration::days(700);
        let err = policy
            .admit(&app(0), NOW, Some(start), Some(start + Duration::days(730)))
            .unwrap_err();
        assert!(err.contains("730 days from now"), "{err}");
        assert!(err.contains("tenant credential policy"), "{err}");
        let (_, end) = policy.admit(&app(0), NOW, Some(start), None).unwrap();
        assert_eq!(end, NOW + Duration::days(730));
    }

    #[test]
    fn no_secrets_at_all() {
        let mut t = tenant();
        t.password_credentials_allowed = false;
        let err = EffectivePolicy::of(&t, &CredentialPolicy::default())
            .admit(&app(0), NOW, None, None)
            .unwrap_err();
        assert!(err.contains("passwordCredentialsAllowed"), "{err}");
        assert!(err.contains("tenantPolicy"), "{err}");
        // The application may be the exception, either way round.
        let allow = CredentialPolicy {
            password_credentials_allowed: Some(true),
            ..CredentialPolicy::default()
        };
        assert!(EffectivePolicy::of(&t, &allow)
            .admit(&app(0), NOW, None, None)
            .is_ok());
        let forbid = CredentialPolicy {
            password_credentials_allowed: Some(false),
            ..CredentialPolicy::default()
        };
        let err = EffectivePolicy::of(&tenant(), &forbid)
            .admit(&app(0), NOW, None, None)
            .unwrap_err();
        assert!(err.contains("application credential policy"), "{err}");
        assert!(err.contains("credentialPolicy"), "{err}");
    }
}
