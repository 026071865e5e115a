//! The server's Graph error messages speak to API users (`removePassword`,
//! `endDateTime`, `PATCH /v1.0/policies/tenantPolicy`); the CLI's users typed
//! commands and flags. This table turns the one into the other in what the
//! CLI prints; the server's messages themselves stay as API users read them.

/// API words and the CLI words that replace them, longest phrases first so a
/// whole phrase is replaced before any word inside it.
const TABLE: &[(&str, &str)] = &[
    (
        "PATCH /v1.0/applications/{id}/credentialPolicy",
        "`clavis policy set --app APP`",
    ),
    ("PATCH /v1.0/policies/tenantPolicy", "`clavis policy set`"),
    (
        "sets passwordCredentialsAllowed to false",
        "says --secrets deny",
    ),
    ("maxSecretsPerApplication = ", "--max-secrets "),
    (
        "with removePassword first",
        "with `clavis secret remove` first",
    ),
    (
        "Choose an earlier endDateTime",
        "Choose an earlier --expires",
    ),
    (
        "appRoleId is not one of the resource's appRoles",
        "the role is not one of the resource's app roles (see `clavis app role list`)",
    ),
    ("No password credential with keyId", "No secret with key id"),
    ("removePassword", "`clavis secret remove`"),
    ("addPassword", "`clavis secret add`"),
    ("reportCompromisedPassword", "`clavis secret compromised`"),
    ("passwordCredentialsAllowed", "--secrets"),
    ("maxSecretsPerApplication", "--max-secrets"),
    ("maxSecretLifetimeDays", "--max-secret-lifetime"),
    ("defaultSecretLifetimeDays", "--default-secret-lifetime"),
    ("signingAlgorithm", "--signing-algorithm"),
    ("activateAfterMinutes", "--activate-after"),
    ("thresholdDays", "--threshold-days"),
    ("endDateTime", "--expires"),
    ("appRoles value", "app role value"),
    ("appRoles '", "app role '"),
    (
        "appRoles contains the value",
        "the app roles contain the value",
    ),
    ("identifierUris", "--identifier-uri"),
    ("password credential", "secret"),
];

/// `message` with every API word of [`TABLE`] replaced by its CLI word.
pub fn cli_words(message: &str) -> String {
    let mut text = message.to_owned();
    for (api, cli) in TABLE {
        if text.contains(api) {
            text = text.replace(api, cli);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's own messages (`domain/credential_policy.rs`,
    /// `domain/secret_lifetime.rs`, `graph/`), as the CLI shows them.
    #[test]
    fn the_servers_policy_messages_read_in_cli_words() {
        let cases = [
            (
                "This application already holds 1 client secret(s), the most the application credential policy allows (maxSecretsPerApplication = 1). Remove one it no longer uses with removePassword first.",
                "This application already holds 1 client secret(s), the most the application credential policy allows (--max-secrets 1). Remove one it no longer uses with `clavis secret remove` first.",
            ),
            (
                "endDateTime is too far in the future: the tenant credential policy allows client secrets to live at most 30 days from now (maxSecretLifetimeDays). Choose an earlier endDateTime.",
                "--expires is too far in the future: the tenant credential policy allows client secrets to live at most 30 days from now (--max-secret-lifetime). Choose an earlier --expires.",
            ),
            (
                "Client secrets are not allowed for this application: the tenant credential policy sets passwordCredentialsAllowed to false. An administrator can change it with PATCH /v1.0/policies/tenantPolicy.",
                "Client secrets are not allowed for this application: the tenant credential policy says --secrets deny. An administrator can change it with `clavis policy set`.",
            ),
            (
                "An administrator can change it with PATCH /v1.0/applications/{id}/credentialPolicy.",
                "An administrator can change it with `clavis policy set --app APP`.",
            ),
            (
                "defaultSecretLifetimeDays must not exceed maxSecretLifetimeDays.",
                "--default-secret-lifetime must not exceed --max-secret-lifetime.",
            ),
            (
                "No password credential with keyId 0b9f on this application.",
                "No secret with key id 0b9f on this application.",
            ),
        ];
        for (api, cli) in cases {
            assert_eq!(cli_words(api), cli);
        }
    }

    #[test]
    fn app_role_and_uri_messages() {
        assert_eq!(
            cli_words("appRoles contains the value 'Orders.Read' twice."),
            "the app roles contain the value 'Orders.Read' twice."
        );
        assert_eq!(
            cli_words("appRoles value 'a b' is not valid: 1 to 120 characters, no spaces, not starting with '.'."),
            "app role value 'a b' is not valid: 1 to 120 characters, no spaces, not starting with '.'."
        );
    }

    #[test]
    fn messages_without_api_words_are_unchanged() {
        let text = "Resource 'x' does not exist or one of its queried reference-property objects are not present.";
        assert_eq!(cli_words(text), text);
    }
}
