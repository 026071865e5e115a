//! Validation of an application's display name, identifier URIs and app
//! roles. Errors are sentences for the caller, naming the rule broken.

use std::collections::HashSet;

use clavis_store::AppRole;

use crate::builtin::MANAGEMENT_API_URI;

/// Most identifier URIs per application (Entra allows 50).
pub const MAX_IDENTIFIER_URIS: usize = 50;
/// Most app roles per application.
pub const MAX_APP_ROLES: usize = 250;

/// A display name: 1–256 characters, no control characters.
pub fn display_name(name: &str) -> Result<String, String> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err("displayName must not be empty.".into());
    }
    if trimmed.chars().count() > 256 {
        return Err("displayName must be at most 256 characters.".into());
    }
    if trimmed
        .chars()
        .any(|c| c.is_control() || is_bidi_or_invisible(c))
    {
        return Err(
            "displayName must not contain control, bidirectional or invisible formatting characters."
                .into(),
        );
    }
    Ok(trimmed.to_owned())
}

/// Characters that reorder or hide text (they can make a name in a list or
/// an audit view read as something else, e.g. "evil\u{202E}txt.exe").
fn is_bidi_or_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{061C}' | '\u{FEFF}')
}

/// Identifier URIs: `api://…`, `https://…` or `urn:…`, ASCII, at most 256
/// characters, no whitespace, query, fragment or `/.default` suffix, no
/// duplicates, and never the built-in `api://clavis` or one of its names
/// ([`crate::builtin::MANAGEMENT_API_ALIASES`]).
pub fn identifier_uris(uris: &[String]) -> Result<Vec<String>, String> {
    if uris.len() > MAX_IDENTIFIER_URIS {
        return Err(format!(
            "An application can have at most {MAX_IDENTIFIER_URIS} identifierUris."
        ));
    }
    let mut seen = HashSet::new();
    for uri in uris {
        let shown: String = uri.chars().take(80).collect();
        let has_scheme = ["api://", "https://", "urn:"].iter().any(|s| {
            uri.len() > s.len()
                && uri
                    .get(..s.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(s))
        });
        if !has_scheme {
            return Err(format!(
                "identifierUris value '{shown}' is not valid: use api://<name>, https://<host>/<path> or urn:<name>."
            ));
        }
        if !uri.is_ascii() {
            return Err(format!(
                "identifierUris value '{shown}' is not valid: use ASCII only (percent-encode other characters)."
            ));
        }
        if uri.len() > 256
            || uri.chars().any(|c| c.is_whitespace() || c.is_control())
            || uri.contains(['?', '#', '*'])
        {
            return Err(format!(
                "identifierUris value '{shown}' is not valid: at most 256 characters, with no spaces, '?', '#' or '*'."
            ));
        }
        if uri.ends_with("/.default") || uri.ends_with('/') {
            return Err(format!(
                "identifierUris value '{shown}' must not end with '/' or '/.default': clients add '/.default' to it in the scope."
            ));
        }
        if crate::builtin::canonical_resource(uri).eq_ignore_ascii_case(MANAGEMENT_API_URI) {
            return Err(format!(
                "'{shown}' is reserved for the Clavis management API ({MANAGEMENT_API_URI})."
            ));
        }
        if !seen.insert(uri.to_ascii_lowercase()) {
            return Err(format!("identifierUris lists '{shown}' twice."));
        }
    }
    Ok(uris.to_vec())
}

/// App roles: unique ids and values, values without spaces (1–120
/// characters, not starting with '.'), member types `Application`/`User`;
/// and an enabled role cannot be removed (disable it first, as in Entra).
pub fn app_roles(new: &[AppRole], old: &[AppRole]) -> Result<(), String> {
    if new.len() > MAX_APP_ROLES {
        return Err(format!(
            "An application can have at most {MAX_APP_ROLES} appRoles."
        ));
    }
    let mut ids = HashSet::new();
    let mut values = HashSet::new();
    for role in new {
        if !ids.insert(role.id) {
            return Err(format!("appRoles contains the id {} twice.", role.id));
        }
        let v = &role.value;
        if v.is_empty()
            || v.chars().count() > 120
            || v.starts_with('.')
            || v.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "appRoles value '{}' is not valid: 1 to 120 characters, no spaces, not starting with '.'.",
                v.chars().take(80).collect::<String>()
            ));
        }
        if !values.insert(v.to_ascii_lowercase()) {
            return Err(format!("appRoles contains the value '{v}' twice."));
        }
        display_name(&role.display_name).map_err(|e| format!("appRoles '{v}': {e}"))?;
        if role.allowed_member_types.is_empty()
            || role
                .allowed_member_types
                .iter()
                .any(|t| t != "Application" && t != "User")
        {
            return Err(format!(
                "appRoles '{v}': allowedMemberTypes must list 'Application' and/or 'User'."
            ));
        }
    }
    for role in old.iter().filter(|r| r.is_enabled) {
        match new.iter().find(|r| r.id == role.id) {
            None => {
                return Err(format!(
                    "CannotDeleteOrUpdateEnabledEntitlement: the app role '{}' must be disabled (isEnabled false) before it can be removed.",
                    role.value
                ))
            }
            Some(r) if r.value != role.value && r.is_enabled => {
                return Err(format!(
                    "CannotDeleteOrUpdateEnabledEntitlement: the value of the enabled app role '{}' cannot change; disable it first.",
                    role.value
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn role(value: &str, enabled: bool) -> AppRole {
        AppRole {
            id: Uuid::new_v4(),
            value: value.into(),
            display_name: value.into(),
            description: String::new(),
            allowed_member_types: vec!["Application".into()],
            is_enabled: enabled,
        }
    }

    #[test]
    fn uris() {
        assert!(identifier_uris(&[
            "api://orders".into(),
            "https://x.example/api".into(),
            "urn:x".into()
        ])
        .is_ok());
        for bad in [
            "€€€€",
            "api:/éxx",
            "ur€x",
            "api://bücher",
            "orders",
            "api://",
            "api://a b",
            "api://x/.default",
            "api://x?y",
            "api://clavis",
            "API://CLAVIS",
            "https://graph.microsoft.com",
        ] {
            assert!(identifier_uris(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(identifier_uris(&["api://a".into(), "API://A".into()]).is_err());
    }

    #[test]
    fn roles() {
        let read = role("Orders.Read", true);
        assert!(app_roles(std::slice::from_ref(&read), &[]).is_ok());
        assert!(app_roles(&[read.clone(), read.clone()], &[]).is_err());
        assert!(app_roles(&[role("has space", true)], &[]).is_err());
        assert!(app_roles(&[], std::slice::from_ref(&read))
            .unwrap_err()
            .contains("disabled"));
        let disabled = AppRole {
            is_enabled: false,
            ..read.clone()
        };
        assert!(app_roles(&[], &[disabled]).is_ok());
        let mut bad_type = role("X", true);
        bad_type.allowed_member_types = vec!["Robot".into()];
        assert!(app_roles(&[bad_type], &[]).is_err());
    }

    #[test]
    fn names() {
        assert_eq!(display_name("  orders ").unwrap(), "orders");
        assert!(display_name("").is_err());
        assert!(display_name("a\u{0}b").is_err());
        assert!(display_name("evil\u{202E}txt.exe").is_err());
        assert!(display_name("Bücher API").is_ok());
        assert!(display_name(&"x".repeat(257)).is_err());
    }
}
