//! The management API's JSON bodies (graph/*.rs, domain/*.rs): the first
//! byte picks a request type (`0` create application, `1` update it, `2`
//! addPassword, `3` removePassword, `4` reportCompromisedPassword, `5`
//! appRoleAssignedTo, `6` tenant policy, `7` application credential policy,
//! `8` webhook, `9` signing key rotation), the rest is the body. Parsing
//! (strict, Graph errors) and the validation each handler runs never panic;
//! errors stay short; what validation accepts is stable (a second pass
//! accepts its own output unchanged), every accepted identifier URI can be
//! asked for as a scope, and every accepted secret lifetime obeys the policy.
#![no_main]

use clavis::domain::credential_policy::EffectivePolicy;
use clavis::domain::{registration, webhook};
use clavis::fuzzing;
use clavis::graph::applications::{
    AddPassword, CreateApplication, RemovePassword, UpdateApplication,
};
use clavis::graph::compromise::ReportCompromisedPassword;
use clavis::graph::error::GraphError;
use clavis::graph::json::parse_json;
use clavis::graph::policies::{UpdateApplicationCredentialPolicy, UpdateTenantPolicy};
use clavis::graph::service_principals::AssignRole;
use clavis::graph::shapes::AppRoleDto;
use clavis::graph::signing_keys::RotateSigningKey;
use clavis::graph::webhooks::CreateWebhook;
use clavis::keys::Algorithm;
use clavis::oauth::scope::resource_of;
use clavis_store::{Application, CredentialPolicy, Tenant};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

const NOW: OffsetDateTime = datetime!(2026-11-26 12:00 UTC);
const DAY: i64 = 86_400;
/// Longest error message: enough to name the field and the rule.
const MAX_MESSAGE: usize = 1024;

fn parse<T: DeserializeOwned>(body: &[u8]) -> Option<T> {
    match parse_json::<T>(body) {
        Ok(v) => Some(v),
        Err(GraphError::BadRequest(m)) => {
            assert!(m.len() <= MAX_MESSAGE, "error message of {} bytes", m.len());
            None
        }
        Err(other) => panic!("a body error that is not a 400: {other:?}"),
    }
}

fn short(result: Result<impl Sized, String>) {
    if let Err(m) = result {
        assert!(m.len() <= MAX_MESSAGE, "error message of {} bytes", m.len());
    }
}

fn display_name(name: &str) {
    let checked = registration::display_name(name);
    if let Ok(n) = &checked {
        assert_eq!(
            registration::display_name(n).as_ref(),
            Ok(n),
            "display name not stable"
        );
    }
    short(checked);
}

fn identifier_uris(uris: &[String]) {
    let checked = registration::identifier_uris(uris);
    if let Ok(accepted) = &checked {
        assert_eq!(accepted, uris);
        for uri in accepted {
            assert_eq!(
                resource_of(&format!("{uri}/.default")).ok(),
                Some(uri.as_str()),
                "identifier URI {uri:?} cannot be asked for as a scope"
            );
        }
    }
    short(checked);
}

fn app_roles(dtos: Vec<AppRoleDto>) {
    let roles = fuzzing::app_roles(dtos);
    let checked = registration::app_roles(&roles, &[]);
    if checked.is_ok() {
        // Sending the same roles again changes nothing and is accepted.
        assert_eq!(registration::app_roles(&roles, &roles), Ok(()));
    }
    short(checked);
}

fn tenant() -> Tenant {
    Tenant {
        id: Uuid::nil(),
        name: "default".into(),
        signing_alg: "ES256".into(),
        max_secret_lifetime_secs: 730 * DAY,
        default_secret_lifetime_secs: 180 * DAY,
        max_secrets_per_application: 2,
        password_credentials_allowed: true,
        created_at: NOW,
    }
}

fn application() -> Application {
    Application {
        id: Uuid::nil(),
        tenant_id: Uuid::nil(),
        app_id: Uuid::nil(),
        service_principal_id: Uuid::nil(),
        display_name: "orders".into(),
        identifier_uris: vec![],
        app_roles: vec![],
        owners: vec![],
        password_credentials: vec![],
        credential_policy: CredentialPolicy::default(),
        builtin: false,
        created_at: NOW,
    }
}

fn days(value: i64) {
    if let Ok(d) = fuzzing::policy_days(value) {
        assert!(d.checked_mul(DAY).is_some());
    }
}

fn secrets(value: i64) {
    if let Ok(n) = fuzzing::policy_secrets(value) {
        assert!(n >= 1);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    match kind.wrapping_sub(b'0') % 10 {
        0 => {
            let Some(b) = parse::<CreateApplication>(body) else {
                return;
            };
            display_name(&b.display_name);
            identifier_uris(&b.identifier_uris);
            app_roles(b.app_roles);
        }
        1 => {
            let Some(b) = parse::<UpdateApplication>(body) else {
                return;
            };
            if let Some(n) = &b.display_name {
                display_name(n);
            }
            if let Some(u) = &b.identifier_uris {
                identifier_uris(u);
            }
            if let Some(r) = b.app_roles {
                app_roles(r);
            }
        }
        2 => {
            let Some(b) = parse::<AddPassword>(body) else {
                return;
            };
            let request = b.password_credential.unwrap_or_default();
            if let Some(n) = &request.display_name {
                display_name(n);
            }
            let start = fuzzing::request_time("startDateTime", request.start_date_time.as_deref());
            let end = fuzzing::request_time("endDateTime", request.end_date_time.as_deref());
            let (Ok(start), Ok(end)) = (start, end) else {
                return;
            };
            let policy = EffectivePolicy::of(&tenant(), &CredentialPolicy::default());
            let admitted = policy.admit(&application(), NOW, start, end);
            if let Ok((s, e)) = admitted {
                assert!(s < e, "a secret that ends before it starts");
                assert!(
                    e - s <= Duration::seconds(730 * DAY),
                    "a secret longer than the policy"
                );
                assert!(
                    s >= NOW - Duration::minutes(5),
                    "a secret starting in the past"
                );
                assert_eq!(start.unwrap_or(NOW), s);
                if let Some(end) = end {
                    assert_eq!(end, e);
                }
            }
            short(admitted);
        }
        3 => {
            let _ = parse::<RemovePassword>(body);
        }
        4 => {
            let _ = parse::<ReportCompromisedPassword>(body);
        }
        5 => {
            let _ = parse::<AssignRole>(body);
        }
        6 => {
            let Some(b) = parse::<UpdateTenantPolicy>(body) else {
                return;
            };
            if let Some(alg) = &b.signing_algorithm {
                if let Some(a) = Algorithm::parse(alg) {
                    assert_eq!(a.as_str(), alg);
                }
            }
            for d in [b.max_secret_lifetime_days, b.default_secret_lifetime_days]
                .into_iter()
                .flatten()
            {
                days(d);
            }
            if let Some(n) = b.max_secrets_per_application {
                secrets(n);
            }
        }
        7 => {
            let Some(b) = parse::<UpdateApplicationCredentialPolicy>(body) else {
                return;
            };
            for d in [b.max_secret_lifetime_days, b.default_secret_lifetime_days]
                .into_iter()
                .flatten()
                .flatten()
            {
                days(d);
            }
            if let Some(Some(n)) = b.max_secrets_per_application {
                secrets(n);
            }
        }
        8 => {
            let Some(b) = parse::<CreateWebhook>(body) else {
                return;
            };
            let url = webhook::url(&b.url);
            if let Ok(u) = &url {
                assert!(
                    u.len() <= webhook::MAX_URL_LEN,
                    "an accepted URL of {} bytes",
                    u.len()
                );
                assert_eq!(webhook::url(u).as_ref(), Ok(u), "webhook URL not stable");
            }
            short(url);
            let thresholds = webhook::thresholds(b.threshold_days.as_deref());
            if let Ok(t) = &thresholds {
                assert!(!t.is_empty() && t.len() <= webhook::MAX_THRESHOLDS);
                assert!(
                    t.windows(2).all(|w| w[0] > w[1]),
                    "thresholds not strictly descending"
                );
                assert!(t.iter().all(|d| (1..=3650).contains(d)));
            }
            short(thresholds);
            short(webhook::display_name(b.display_name.as_deref()));
        }
        _ => {
            let _ = parse::<RotateSigningKey>(body);
        }
    }
});
