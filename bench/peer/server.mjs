// The benchmark's peer: panva's oidc-provider (OpenID Certified), set up for
// the client credentials grant with JWT access tokens, over HTTPS, with
// CLIENTS registered clients. Started by clavis-bench; not part of Clavis.
//
// Environment: PORT, ALG (ES256 | EdDSA | RS256), CLIENTS, SECRET_SEED,
// TLS_CERT, TLS_KEY (PEM paths). Client i is `bench-{i}` with secret
// `{SECRET_SEED}-{i}`. Prints "listening" once ready.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT ?? 9443);
const alg = process.env.ALG ?? 'ES256';
const count = Number(process.env.CLIENTS ?? 10);
const seed = process.env.SECRET_SEED ?? 'seed';

const keyOptions = {
  ES256: ['ec', { namedCurve: 'P-256' }],
  EdDSA: ['ed25519', {}],
  RS256: ['rsa', { modulusLength: 2048 }],
}[alg];
const { privateKey } = generateKeyPairSync(...keyOptions);
const jwk = { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid: 'bench' };

const clients = [];
for (let i = 0; i < count; i += 1) {
  clients.push({
    client_id: `bench-${i}`,
    client_secret: `${seed}-${i}`,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_post',
    id_token_signed_response_alg: alg,
  });
}

const resource = 'api://bench';
const provider = new Provider(`https://127.0.0.1:${port}`, {
  clients,
  jwks: { keys: [jwk] },
  cookies: { keys: ['bench-cookie-key'] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'read',
        audience: resource,
        accessTokenTTL: 3600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg } },
      }),
    },
  },
  enabledJWA: {
    authorizationSigningAlgValues: [alg],
    idTokenSigningAlgValues: [alg],
  },
});
provider.proxy = false;

const server = https.createServer(
  { cert: readFileSync(process.env.TLS_CERT), key: readFileSync(process.env.TLS_KEY) },
  provider.callback(),
);
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => {
  console.log('listening');
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
