"""Get tokens from a running Clavis with the clients our users run.

MSAL Python (ConfidentialClientApplication) and azure-identity
(ClientSecretCredential), changed in nothing but the authority and the CA
to trust. Reads its inputs from the environment, prints one JSON line per
client with the token's claims, exits non-zero on any failure.
"""

import base64
import json
import os
import sys

import msal
from azure.identity import ClientSecretCredential


def claims(token: str) -> dict:
    body = token.split(".")[1]
    body += "=" * (-len(body) % 4)
    return json.loads(base64.urlsafe_b64decode(body))


def main() -> int:
    host = os.environ["CLAVIS_HOST"]  # e.g. 127.0.0.1:8443
    tenant = os.environ["CLAVIS_TENANT"]  # name or GUID
    client_id = os.environ["CLAVIS_CLIENT_ID"]
    secret = os.environ["CLAVIS_CLIENT_SECRET"]
    scope = os.environ["CLAVIS_SCOPE"]  # e.g. api://orders/.default
    ca = os.environ["CLAVIS_CA"]

    app = msal.ConfidentialClientApplication(
        client_id,
        client_credential=secret,
        authority=f"https://{host}/{tenant}",
        instance_discovery=False,
        verify=ca,
    )
    result = app.acquire_token_for_client(scopes=[scope])
    if "access_token" not in result:
        print(json.dumps({"client": "msal", "error": result}), flush=True)
        return 1
    print(json.dumps({"client": "msal", "claims": claims(result["access_token"])}), flush=True)
    # MSAL caches the token: a second call must not need the server.
    again = app.acquire_token_for_client(scopes=[scope])
    if again.get("token_source") != "cache":
        print(json.dumps({"client": "msal", "error": "second call did not come from the cache"}))
        return 1

    credential = ClientSecretCredential(
        tenant,
        client_id,
        secret,
        authority=host,
        disable_instance_discovery=True,
        connection_verify=ca,
    )
    token = credential.get_token(scope)
    print(json.dumps({"client": "azure-identity", "claims": claims(token.token),
                      "expires_on": token.expires_on}), flush=True)

    # A wrong secret must fail with Entra's code, through MSAL's own error path.
    bad = msal.ConfidentialClientApplication(
        client_id,
        client_credential=secret + "x",
        authority=f"https://{host}/{tenant}",
        instance_discovery=False,
        verify=ca,
    )
    failed = bad.acquire_token_for_client(scopes=[scope])
    print(json.dumps({"client": "msal-wrong-secret", "error": failed.get("error"),
                      "error_codes": failed.get("error_codes")}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
