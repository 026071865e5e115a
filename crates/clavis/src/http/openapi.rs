//! The OpenAPI document served at `/openapi.json`: what the handlers'
//! annotations say, plus the rules they share and the grammar of the
//! strings the server parses (ids, names, URLs, `$filter`, `$skiptoken`),
//! so that the document states what the server accepts, no more and no
//! less. `tests/schemathesis/run` holds the server to it.
//!
//! The rules are kept here, next to each other, as JSON Schema: each entry
//! names the validator in the code whose rule it restates.

use serde_json::{json, Map, Value};

/// Characters a display name may not contain anywhere (control, bidi and
/// invisible formatting characters; `domain::registration::display_name`).
const NAME_FORBIDDEN: &str =
    r"\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff";

/// An RFC 3339 date-time as `OffsetDateTime::parse(.., &Rfc3339)` reads it
/// (days up to 28, so every month has them).
const DATE_TIME: &str = r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])";

/// A GUID as `Uuid::try_parse` reads it (hyphenated form).
const GUID: &str = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}";

/// An OData string literal: single quotes, a quote inside doubled (`json::quoted`).
const LITERAL: &str = "'([^']|'')*'";

/// The finished document.
pub fn document(doc: &utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(doc).expect("the OpenAPI document serializes");
    add_error_schemas(&mut doc);
    let paths: Vec<String> = doc["paths"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    for path in paths {
        for method in ["get", "post", "patch", "put", "delete"] {
            let Some(op) = doc["paths"][&path].get_mut(method) else {
                continue;
            };
            unique_operation_id(op);
            if path.starts_with("/v1.0/") {
                graph_errors(op);
            } else if path.starts_with("/{tenant}/") {
                oauth_errors(op);
            } else if crate::arm::is_arm_path(&path) {
                arm_errors(op);
            }
            let params = op.get_mut("parameters").and_then(Value::as_array_mut);
            for param in params.into_iter().flatten() {
                param_rule(&path, param);
            }
        }
    }
    body_rules(&mut doc["components"]["schemas"]);
    links(&mut doc["paths"]);
    doc
}

/// Graph's and OAuth's error bodies, referred to by every error response.
fn add_error_schemas(doc: &mut Value) {
    let schemas = &mut doc["components"]["schemas"];
    schemas["GraphError"] = json!({
        "type": "object",
        "description": "Microsoft Graph's error format.",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "innerError": {"type": "object"}
            }
        }}
    });
    schemas["ArmError"] = json!({
        "type": "object",
        "description": "Azure Resource Manager's error format.",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"}
            }
        }}
    });
    schemas["OAuthError"] = json!({
        "type": "object",
        "description": "RFC 6749 §5.2 error, with Entra ID's extra fields.",
        "required": ["error", "error_description"],
        "properties": {
            "error": {"type": "string"},
            "error_description": {"type": "string"},
            "error_codes": {"type": "array", "items": {"type": "integer"}},
            "timestamp": {"type": "string"},
            "trace_id": {"type": "string"},
            "correlation_id": {"type": "string"}
        }
    });
}

/// utoipa names an operation after its function (`list`, `get`, ...);
/// the tag makes it unique, as OpenAPI requires: `applications.list`.
fn unique_operation_id(op: &mut Value) {
    let tag = op["tags"][0].as_str().unwrap_or("clavis").to_owned();
    if let Some(id) = op["operationId"].as_str() {
        op["operationId"] = json!(format!("{tag}.{id}"));
    }
}

fn error_response(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    })
}

/// Every management call can answer 400 (a bad id, query or body), 401 and
/// 403; one with a body also 413 and 415; one naming an object also 404.
/// All in Graph's error format (`graph::error`).
fn graph_errors(op: &mut Value) {
    let has_body = op.get("requestBody").is_some();
    let has_path_id = op["parameters"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["in"] == "path"));
    let mut wanted = vec![
        ("400", "Request_BadRequest: the message says what to fix"),
        (
            "401",
            "InvalidAuthenticationToken: no, a malformed or an expired token",
        ),
        (
            "403",
            "Authorization_RequestDenied: the token lacks the role",
        ),
    ];
    if has_path_id {
        wanted.push(("404", "Request_ResourceNotFound"));
    }
    if has_body {
        wanted.push(("413", "Request_EntityTooLarge"));
        wanted.push(("415", "Request_UnsupportedMediaType: send application/json"));
    }
    let responses = op["responses"]
        .as_object_mut()
        .expect("operations have responses");
    for (status, description) in wanted {
        let entry = responses
            .entry(status)
            .or_insert_with(|| json!({"description": description}));
        if entry["description"].as_str().is_none_or(str::is_empty) {
            entry["description"] = json!(description);
        }
        entry["content"] = error_response("", "GraphError")["content"].clone();
    }
}

/// The Azure Resource Manager routes' errors are ARM's JSON (`arm::error`).
fn arm_errors(op: &mut Value) {
    let responses = op["responses"]
        .as_object_mut()
        .expect("operations have responses");
    for (status, response) in responses.iter_mut() {
        if status.starts_with('4') || status.starts_with('5') {
            response["content"] = error_response("", "ArmError")["content"].clone();
        }
    }
}

/// The protocol endpoints' errors are RFC 6749 §5.2 JSON (`oauth::error`);
/// an unknown tenant is 400 `invalid_tenant` as in Entra ID.
fn oauth_errors(op: &mut Value) {
    let responses = op["responses"]
        .as_object_mut()
        .expect("operations have responses");
    responses
        .entry("400")
        .or_insert_with(|| json!({"description": "invalid_request, invalid_tenant"}));
    for (status, response) in responses.iter_mut() {
        if status.starts_with('4') || status.starts_with('5') {
            response["content"] = error_response("", "OAuthError")["content"].clone();
        }
    }
}

fn merge(target: &mut Value, rule: Value) {
    if let (Some(t), Value::Object(r)) = (target.as_object_mut(), rule) {
        t.extend(r);
    }
}

/// Path and query parameters.
fn param_rule(path: &str, param: &mut Value) {
    let name = param["name"].as_str().unwrap_or_default().to_owned();
    let schema = &mut param["schema"];
    match name.as_str() {
        // A tenant's GUID or name (`Directory::tenant`): names are letters,
        // digits, '-', '_' and '.'.
        "tenant" => merge(
            schema,
            json!({"pattern": format!("^({GUID}|[A-Za-z0-9][A-Za-z0-9._-]{{0,63}})$")}),
        ),
        "$top" => merge(schema, json!({"minimum": 1, "maximum": 999})),
        // A date, optionally `-preview` (`arm::api_version`).
        "api-version" => merge(
            schema,
            json!({"pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}(-preview)?$"}),
        ),
        "$skiptoken" => {
            // Lists of applications page by the last object id; logs by
            // `{unix microseconds}_{id}` (`graph::listing`, `graph::audit_logs`).
            let pattern = if path.starts_with("/v1.0/applications")
                || path.starts_with("/v1.0/servicePrincipals")
            {
                format!("^{GUID}$")
            } else {
                format!("^-?[0-9]{{1,16}}_{GUID}$")
            };
            merge(schema, json!({"pattern": pattern}));
        }
        "$filter" => {
            if let Some((clause, joined)) = filter_clause(path) {
                let pattern = if joined {
                    format!("^{clause}( and {clause})*$")
                } else {
                    format!("^{clause}$")
                };
                merge(schema, json!({ "pattern": pattern }));
            }
        }
        "id" | "assignment_id" => merge(
            schema,
            json!({"format": "uuid", "pattern": format!("^{GUID}$")}),
        ),
        // A key's RFC 7638 thumbprint (base64url of SHA-256).
        "kid" => merge(schema, json!({"pattern": "^[A-Za-z0-9_-]{43}$"})),
        _ => {}
    }
}

/// The `$filter` clause a list understands, and whether it takes several
/// joined by `and` (`graph::listing`, `graph::audit_logs`).
fn filter_clause(path: &str) -> Option<(String, bool)> {
    match path {
        "/v1.0/applications" | "/v1.0/servicePrincipals" => Some((format!(
            "(appId eq '{GUID}'|displayName eq {LITERAL}|identifierUris/any\\(x:x eq {LITERAL}\\)|servicePrincipalNames/any\\(x:x eq {LITERAL}\\))"
        ), false)),
        "/v1.0/auditLogs/directoryAudits" => Some((format!(
            "(activityDateTime (ge|lt) {DATE_TIME}|activityDisplayName eq {LITERAL}|targetResources/any\\(t:t/id eq {LITERAL}\\))"
        ), true)),
        "/v1.0/auditLogs/signIns" => Some((format!(
            "(appId eq '{GUID}'|servicePrincipalCredentialKeyId eq '{GUID}'|status/errorCode (eq|ne) 0|createdDateTime (ge|lt) {DATE_TIME})"
        ), true)),
        _ => None,
    }
}

/// Request bodies.
fn body_rules(schemas: &mut Value) {
    let name = json!({
        "minLength": 1,
        "maxLength": 256,
        "pattern": format!("^[^{NAME_FORBIDDEN}]*[^\\s{NAME_FORBIDDEN}][^{NAME_FORBIDDEN}]*$")
    });
    // An optional name: empty or blank means "none" (`addPassword`).
    let optional_name = json!({
        "maxLength": 256,
        "pattern": format!("^[^{NAME_FORBIDDEN}]*$")
    });
    let days = json!({"minimum": 1, "maximum": crate::domain::credential_policy::MAX_DAYS});
    let secrets =
        json!({"minimum": 1, "maximum": crate::domain::credential_policy::MAX_SECRETS_LIMIT});
    let date_time = json!({"pattern": format!("^{DATE_TIME}$")});
    // `registration::identifier_uris`: api://, https:// or urn:, ASCII
    // without spaces, '?', '#' or '*', at most 256, no '/' or '/.default' at
    // the end.
    let identifier_uris = json!({
        "maxItems": crate::domain::registration::MAX_IDENTIFIER_URIS,
        "uniqueItems": true,
        "items": {
            "type": "string",
            "maxLength": 256,
            "pattern": "^(api://|https://|urn:)[!-\"$-)+->@-~]*[!-\"$-)+-.0->@-~]$"
        }
    });
    let app_roles =
        json!({"maxItems": crate::domain::registration::MAX_APP_ROLES, "uniqueItems": true});
    let rules: Vec<(&str, &str, Value)> = vec![
        ("CreateApplication", "displayName", name.clone()),
        (
            "CreateApplication",
            "identifierUris",
            identifier_uris.clone(),
        ),
        ("CreateApplication", "appRoles", app_roles.clone()),
        ("UpdateApplication", "displayName", name.clone()),
        ("UpdateApplication", "identifierUris", identifier_uris),
        ("UpdateApplication", "appRoles", app_roles),
        ("AppRoleDto", "displayName", name.clone()),
        (
            "AppRoleDto",
            "value",
            json!({"minLength": 1, "maxLength": 120, "pattern": "^[^.\\s\\x00-\\x1f\\x7f-\\x9f][^\\s\\x00-\\x1f\\x7f-\\x9f]*$"}),
        ),
        (
            "AppRoleDto",
            "allowedMemberTypes",
            json!({"minItems": 1, "items": {"type": "string", "enum": ["Application", "User"]}}),
        ),
        (
            "PasswordCredentialRequest",
            "displayName",
            optional_name.clone(),
        ),
        (
            "PasswordCredentialRequest",
            "startDateTime",
            date_time.clone(),
        ),
        ("PasswordCredentialRequest", "endDateTime", date_time),
        ("UpdateTenantPolicy", "maxSecretLifetimeDays", days.clone()),
        (
            "UpdateTenantPolicy",
            "defaultSecretLifetimeDays",
            days.clone(),
        ),
        (
            "UpdateTenantPolicy",
            "maxSecretsPerApplication",
            secrets.clone(),
        ),
        (
            "UpdateTenantPolicy",
            "signingAlgorithm",
            json!({"enum": ["ES256", "RS256", "EdDSA", null]}),
        ),
        (
            "UpdateApplicationCredentialPolicy",
            "maxSecretLifetimeDays",
            days.clone(),
        ),
        (
            "UpdateApplicationCredentialPolicy",
            "defaultSecretLifetimeDays",
            days,
        ),
        (
            "UpdateApplicationCredentialPolicy",
            "maxSecretsPerApplication",
            secrets,
        ),
        (
            "RotateSigningKey",
            "activateAfterMinutes",
            json!({"minimum": 0, "maximum": 525_600}),
        ),
        (
            "CreateWebhook",
            "url",
            json!({"maxLength": crate::domain::webhook::MAX_URL_LEN, "pattern": webhook_url()}),
        ),
        (
            "CreateWebhook",
            "thresholdDays",
            json!({
                "minItems": 1,
                "maxItems": crate::domain::webhook::MAX_THRESHOLDS,
                "items": {"type": "integer", "minimum": 1, "maximum": crate::domain::webhook::MAX_THRESHOLD_DAYS}
            }),
        ),
        ("CreateWebhook", "displayName", name),
        // OAuth forms: an empty value counts as absent (RFC 6749 §3.1).
        (
            "TokenForm",
            "grant_type",
            json!({"enum": ["client_credentials"]}),
        ),
        ("TokenForm", "client_id", json!({"minLength": 1})),
        ("TokenForm", "client_secret", json!({"minLength": 1})),
        (
            "TokenForm",
            "scope",
            json!({"pattern": "^[^\\s]+/\\.default$"}),
        ),
        ("TokenQueryForm", "token", json!({"minLength": 1})),
        ("TokenQueryForm", "client_id", json!({"minLength": 1})),
        ("TokenQueryForm", "client_secret", json!({"minLength": 1})),
    ];
    for (schema, property, rule) in rules {
        let target = &mut schemas[schema]["properties"][property];
        assert!(
            target.is_object(),
            "openapi rule for a missing property {schema}.{property}"
        );
        merge(target, rule);
    }
    // Secrets are generated by the server: a `secretText` is refused.
    if let Some(props) = schemas["PasswordCredentialRequest"]["properties"].as_object_mut() {
        props.remove("secretText");
    }
}

/// `domain::webhook::url` (its `well_formed`): https:// to a DNS name or an
/// IPv4 address, http:// only to this machine; an optional port, path and
/// query of URL characters.
fn webhook_url() -> String {
    // Labels without "--" (no punycode); the last one starts with a letter,
    // or URL parsers read the host as an IPv4 address.
    let label = "[A-Za-z0-9]+(-[A-Za-z0-9]+)*";
    let last = "[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*";
    let octet = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
    let port =
        "([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])";
    let chars = "A-Za-z0-9._~!$&'()*+,;=:@/-";
    format!(
        "^(https://(({label}\\.)*{last}|{octet}(\\.{octet}){{3}})|http://([lL][oO][cC][aA][lL][hH][oO][sS][tT]\\.?|127(\\.{octet}){{3}}|\\[::1\\]))(:{port})?(/[{chars}]*)?(\\?[?{chars}]*)?$"
    )
}

/// Links for the stateful phase: what a created object's id can be used for.
fn links(paths: &mut Value) {
    let app = "$response.body#/id";
    let add =
        |paths: &mut Value, path: &str, method: &str, status: &str, name: &str, link: Value| {
            let response = &mut paths[path][method]["responses"][status];
            if let Some(r) = response.as_object_mut() {
                r.entry("links")
                    .or_insert_with(|| Value::Object(Map::new()))
                    .as_object_mut()
                    .expect("links is an object")
                    .insert(name.to_owned(), link);
            }
        };
    for (name, operation) in [
        ("GetApplication", "applications.get"),
        ("UpdateApplication", "applications.update"),
        ("DeleteApplication", "applications.delete"),
        ("AddPassword", "applications.add_password"),
        ("RevokeTokens", "applications.revoke_tokens"),
        ("GetCredentialPolicy", "policies.get_application"),
    ] {
        add(
            paths,
            "/v1.0/applications",
            "post",
            "201",
            name,
            json!({"operationId": operation, "parameters": {"id": app}}),
        );
    }
    for (name, operation) in [
        ("RemovePassword", "applications.remove_password"),
        (
            "ReportCompromisedPassword",
            "applications.report_compromised_password",
        ),
    ] {
        add(
            paths,
            "/v1.0/applications/{id}/addPassword",
            "post",
            "200",
            name,
            json!({
                "operationId": operation,
                "parameters": {"id": "$request.path.id"},
                "requestBody": {"keyId": "$response.body#/keyId"}
            }),
        );
    }
    for (name, operation) in [
        ("GetWebhook", "webhooks.get"),
        ("DeleteWebhook", "webhooks.delete"),
        ("Deliveries", "webhooks.deliveries"),
    ] {
        add(
            paths,
            "/v1.0/webhooks",
            "post",
            "201",
            name,
            json!({"operationId": operation, "parameters": {"id": app}}),
        );
    }
    add(
        paths,
        "/v1.0/servicePrincipals/{id}/appRoleAssignedTo",
        "post",
        "201",
        "Unassign",
        json!({
            "operationId": "servicePrincipals.unassign",
            "parameters": {"id": "$request.path.id", "assignment_id": "$response.body#/id"}
        }),
    );
}
