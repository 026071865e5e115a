"""Verify Clavis tokens as a resource server written for Entra does.

PyJWT with PyJWKClient and ``algorithms=["RS256"]``, as Microsoft's Python
samples have it, changed in nothing but the JWKS URL, the issuer and the CA.
Also checks the JWKS entry's certificate: ``x5c[0]`` holds the JWK's own
public key (n, e), is self-signed by it, and ``x5t`` is its SHA-1
thumbprint (the token header's ``x5t`` too). Prints one JSON line per token,
exits non-zero on any surprise.

Environment: CLAVIS_JWKS_URL, CLAVIS_ISSUER, CLAVIS_AUDIENCE, CLAVIS_CA,
CLAVIS_RS256_TOKEN (must verify), CLAVIS_ES256_TOKEN (must be refused: an
RS256-only resource server is why RS256 is the default).
"""

import base64
import hashlib
import json
import os
import ssl
import sys

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding


def b64url_uint(value: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


def check_certificate(client: jwt.PyJWKClient, token: str) -> None:
    header = jwt.get_unverified_header(token)
    jwk = next(k for k in client.fetch_data()["keys"] if k["kid"] == header["kid"])
    der = base64.b64decode(jwk["x5c"][0], validate=True)  # standard base64, not url-safe
    cert = x509.load_der_x509_certificate(der)
    numbers = cert.public_key().public_numbers()
    assert numbers.n == b64url_uint(jwk["n"]), "x5c's modulus differs from n"
    assert numbers.e == b64url_uint(jwk["e"]), "x5c's exponent differs from e"
    cert.public_key().verify(
        cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm
    )
    thumbprint = base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode()
    assert jwk["x5t"] == thumbprint, "x5t is not the certificate's SHA-1 thumbprint"
    assert header["x5t"] == thumbprint, "the token header's x5t names another certificate"


def main() -> int:
    context = ssl.create_default_context(cafile=os.environ["CLAVIS_CA"])
    client = jwt.PyJWKClient(os.environ["CLAVIS_JWKS_URL"], ssl_context=context)
    options = dict(
        algorithms=["RS256"],
        audience=os.environ["CLAVIS_AUDIENCE"],
        issuer=os.environ["CLAVIS_ISSUER"],
    )

    token = os.environ["CLAVIS_RS256_TOKEN"]
    key = client.get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key.key, **options)
    check_certificate(client, token)
    print(json.dumps({"library": "pyjwt", "claims": claims}), flush=True)

    es256 = os.environ["CLAVIS_ES256_TOKEN"]
    try:
        jwt.decode(es256, client.get_signing_key_from_jwt(es256).key, **options)
    except jwt.InvalidAlgorithmError as e:
        print(json.dumps({"library": "pyjwt", "refused": type(e).__name__}), flush=True)
    else:
        print(json.dumps({"library": "pyjwt", "error": "an ES256 token passed an RS256-only check"}))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
