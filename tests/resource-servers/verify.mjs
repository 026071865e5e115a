// A resource server written for Entra, as jose's documentation and
// Microsoft's samples have it: the tenant's JWKS URL, RS256 only, issuer
// and audience checked. Changed in nothing but the URLs; the CA comes from
// NODE_EXTRA_CA_CERTS (Clavis's local CA). Prints one JSON line per token
// and exits non-zero on any surprise.
//
// Environment: CLAVIS_JWKS_URL, CLAVIS_ISSUER, CLAVIS_AUDIENCE,
// CLAVIS_RS256_TOKEN (must verify), CLAVIS_ES256_TOKEN (must be refused:
// an RS256-only resource server is why RS256 is the default).
import { createHash, X509Certificate } from 'node:crypto';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const jwksUrl = new URL(env('CLAVIS_JWKS_URL'));
const JWKS = createRemoteJWKSet(jwksUrl);
const options = {
  algorithms: ['RS256'],
  issuer: env('CLAVIS_ISSUER'),
  audience: env('CLAVIS_AUDIENCE'),
};

// The published key's certificate holds the JWK's own key, and x5t is its thumbprint.
async function checkCertificate(token) {
  const { kid, x5t } = decodeProtectedHeader(token);
  const jwks = await (await fetch(jwksUrl)).json();
  const jwk = jwks.keys.find((k) => k.kid === kid);
  const der = Buffer.from(jwk.x5c[0], 'base64');
  const cert = new X509Certificate(der);
  const fromCert = cert.publicKey.export({ format: 'jwk' });
  if (fromCert.n !== jwk.n || fromCert.e !== jwk.e) throw new Error('x5c key differs from n/e');
  if (!cert.verify(cert.publicKey)) throw new Error('x5c is not self-signed by its key');
  const thumbprint = createHash('sha1').update(der).digest('base64url');
  if (thumbprint !== jwk.x5t || thumbprint !== x5t) throw new Error('x5t is not the thumbprint');
}

const good = env('CLAVIS_RS256_TOKEN');
const { payload, protectedHeader } = await jwtVerify(good, JWKS, options);
await checkCertificate(good);
console.log(JSON.stringify({ library: 'jose', alg: protectedHeader.alg, claims: payload }));

try {
  await jwtVerify(env('CLAVIS_ES256_TOKEN'), JWKS, options);
  console.log(JSON.stringify({ library: 'jose', error: 'an ES256 token passed an RS256-only check' }));
  process.exit(1);
} catch (e) {
  console.log(JSON.stringify({ library: 'jose', refused: e.code }));
}
